import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, fabricInputFromSpec, parseConfig } from '../../../src/config/load.ts';
import { durationMs } from '../../../src/config/schema.ts';
import { buildFabricView } from '../../../src/srv6/fabric.ts';

const example = readFileSync(new URL('../../../examples/fabric.yaml', import.meta.url), 'utf8');

function problems(text: string): ConfigError {
  try {
    parseConfig(text, 'test.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration schemas', () => {
  it('accepts the shipped example and turns it into a valid fabric view', () => {
    const parsed = parseConfig(example, 'examples/fabric.yaml');
    expect(parsed.kind).toBe('Fabric');
    if (parsed.kind !== 'Fabric') return;
    const view = buildFabricView(fabricInputFromSpec(parsed.spec));
    expect([...view.hosts.keys()]).toEqual(['host1', 'host2', 'host3']);
    expect(view.workloads.size).toBe(5);
  });

  it('names the line, key, bad value and fix', () => {
    const err = problems(example.replace('underlay: 2001:db8:100::2', 'underlay: 2001:db8::zz'));
    expect(err.issues).toHaveLength(1);
    expect(err.issues[0]).toMatchObject({ key: 'hosts[1].underlay', value: '2001:db8::zz', line: 16 });
    expect(err.message).toMatch(/not an IPv6 address; write it like 2001:db8::1/);
  });

  it('explains a missing key, an unknown key and the YAML trailing "::" trap', () => {
    const err = problems(
      example
        .replace('prefixes: [2001:db8:b100::/64]', 'prefixes: [2001:db8:b100::]')
        .replace(
          '{ name: blue/web-1, tenant: blue, host: host1, labels: { app: web } }',
          '{ name: blue/web-1, tenant: blue, lables: {} }',
        ),
    );
    const text = err.message;
    expect(text).toMatch(/tenants\[0\]\.prefixes\[0\]: expected text, got a mapping: quote IPv6 addresses/);
    expect(text).toMatch(/workloads\[0\]\.host: missing: this key is required/);
    expect(text).toMatch(/test.yaml:40:39: workloads\[0\]\.lables: unknown key; check the spelling/);
  });

  it('requires apiVersion and a known kind', () => {
    expect(problems(example.replace('apiVersion: segmesh.io/v1alpha1', 'apiVersion: v1')).message).toMatch(
      /set apiVersion: segmesh.io\/v1alpha1/,
    );
    expect(problems(example.replace('kind: Fabric', 'kind: Fabrik')).message).toMatch(
      /set kind to Fabric or AgentConfig or Topology or FabricPolicy/,
    );
    expect(problems('a: [').message).toMatch(/YAML syntax/);
  });

  it('validates an agent config: exactly one of locator and locatorBlock', () => {
    const base = `apiVersion: segmesh.io/v1alpha1
kind: AgentConfig
host: { name: host1, underlay: { interface: eth0, address: "2001:db8:100::1" } }
`;
    const ok = parseConfig(`${base}locator: "fc00:0:1::/48"\n`, 'agent.yaml');
    expect(ok.kind).toBe('AgentConfig');
    if (ok.kind === 'AgentConfig') {
      expect(ok.spec.gossip.deadAfter).toBe('10s');
      expect(ok.spec.metrics.listen).toBe('127.0.0.1:9469');
    }
    expect(problems(base).message).toMatch(/set exactly one of locator/);
    expect(durationMs('1.5s')).toBe(1500);
    expect(durationMs('250ms')).toBe(250);
  });
});
