/**
 * Bad fabrics, agent configs, topologies and key material give errors that name the file, the line and
 * column, the key path, the value and the fix. Positions are found independently in the fixture text
 * (where the offending value is written), so a wrong line or column fails.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  type ConfigIssue,
  fabricInputFromSpec,
  formatIssue,
  parseConfig,
} from '../../../src/config/load.ts';
import {
  newOperatorKey,
  OperatorKeyError,
  operatorKeyFromText,
  operatorPrivateKeyFromBytes,
  privateKeyBytesProblem,
  publicKeyTextProblem,
} from '../../../src/gossip/identity.ts';
import { parseIpv6 } from '../../../src/srv6/address.ts';
import { buildFabricView, FabricError } from '../../../src/srv6/fabric.ts';
import { unicastProblem } from '../../../src/srv6/validate.ts';

const FIXTURES = 'test/fixtures/config';

function fixture(name: string): { file: string; text: string } {
  const file = `${FIXTURES}/${name}`;
  return { file, text: readFileSync(file, 'utf8') };
}

function problems(text: string, file: string): ConfigError {
  try {
    parseConfig(text, file);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error(`expected ${file} to be rejected`);
}

/** Line and column (1-based) of the `nth` occurrence of `needle` in `text` after the text `after`. */
function position(text: string, needle: string, nth = 1, after = ''): { line: number; column: number } {
  let at = text.indexOf(after) + after.length - 1;
  for (let i = 0; i < nth; i++) {
    at = text.indexOf(needle, at + 1);
    if (at < 0) throw new Error(`${needle} not in fixture`);
  }
  const before = text.slice(0, at).split('\n');
  return { line: before.length, column: before.at(-1)!.length + 1 };
}

function issue(err: ConfigError, key: string): ConfigIssue {
  const found = err.issues.filter((i) => i.key === key);
  expect(found, `${key} in\n${err.message}`).toHaveLength(1);
  return found[0]!;
}

/** The issue at `key` is located at `needle` in the text, names `value`, and its rendering has all parts. */
function expectIssue(
  err: ConfigError,
  text: string,
  key: string,
  needle: string,
  parts: { message: RegExp; fix: RegExp; value?: unknown; nth?: number; after?: string },
): void {
  const i = issue(err, key);
  const at = position(text, needle, parts.nth, parts.after);
  expect(i).toMatchObject({ line: at.line, column: at.column });
  expect(i.message).toMatch(parts.message);
  expect(i.fix).toMatch(parts.fix);
  if (parts.value !== undefined) expect(i.value).toBe(parts.value);
  const line = formatIssue(err.file, i);
  expect(line.startsWith(`${err.file}:${at.line}:${at.column}: ${key}: `)).toBe(true);
  expect(err.message).toContain(line);
}

describe('fabric validation, with file, line, key, value and fix', () => {
  it('rejects a tenant prefix inside the SID block and an NF address inside a workload prefix', () => {
    const { file, text } = fixture('tenant-in-sid-space.yaml');
    const err = problems(text, file);
    expect(err.issues).toHaveLength(2);
    expectIssue(err, text, 'tenants[0].prefixes[0]', '"fc00:0:b100::/64"', {
      message: /tenant blue prefix fc00:0:b100::\/64 overlaps the SID block fc00::\/32 \(locatorBlock\)/,
      fix: /move the tenant prefix out of the SID block and every locator/,
      value: 'fc00:0:b100::/64',
    });
    expectIssue(err, text, 'networkFunctions[0].address', '2001:db8:b200::fe', {
      message:
        /network function fw-red address 2001:db8:b200::fe lies in tenant red's workload prefix 2001:db8:b200::\/64/,
      fix: /outside every tenant prefix/,
      value: '2001:db8:b200::fe',
    });
    // Positive control: the same file with the prefix and the address moved is accepted and plans.
    const fixed = parseConfig(
      text.replace('"fc00:0:b100::/64"', '2001:db8:b100::/64').replace('2001:db8:b200::fe', 'fc00:99:f::2'),
      file,
    );
    if (fixed.kind !== 'Fabric') throw new Error('kind');
    expect(buildFabricView(fabricInputFromSpec(fixed.spec)).tenants.size).toBe(2);
  });

  it("rejects a tenant prefix inside a host's locator when there is no locator block", () => {
    const { file, text } = fixture('tenant-in-locator.yaml');
    const err = problems(text, file);
    expectIssue(err, text, 'tenants[0].prefixes[0]', '"fc00:0:1:b100::/64"', {
      message: /overlaps the SID block fc00::\/32 of host host1's locator/,
      fix: /out of the SID block/,
    });
    expect(() => parseConfig(text.replace('fc00:0:1:b100::/64', 'fc01::/64'), file)).not.toThrow();
  });

  it('rejects underlay addresses ::, multicast, v4-mapped, link-local and loopback, not 2001:db8::/32', () => {
    const { file, text } = fixture('bad-underlays.yaml');
    const err = problems(text, file);
    const cases: [number, string, RegExp][] = [
      [0, '"::"', /unspecified address/],
      [1, 'ff02::1', /multicast/],
      [2, '::ffff:1.2.3.4', /IPv4-mapped/],
      [3, 'fe80::4', /link-local/],
      [4, '::1', /loopback/],
    ];
    for (const [i, needle, what] of cases) {
      expectIssue(err, text, `hosts[${i}].underlay`, needle, {
        after: `name: host${i + 1}\n`,
        message: what,
        fix: /global \(2000::\/3\) or unique-local \(fc00::\/7\) unicast address/,
        value: needle.replaceAll('"', ''),
      });
    }
    // host6 (documentation space, as tests use) is fine: exactly the five above are reported.
    expect(err.issues).toHaveLength(5);
    expect(unicastProblem(parseIpv6('2001:db8:100::6'))).toBeUndefined();
    expect(unicastProblem(parseIpv6('fd00::1'))).toBeUndefined();
  });

  it('reports every broken cross reference and duplicate at its own key', () => {
    const { file, text } = fixture('cross-references.yaml');
    const err = problems(text, file);
    expectIssue(err, text, 'hosts[1].name', 'host1', {
      message: /host host1 is defined twice/,
      fix: /its own name/,
      nth: 2,
    });
    expectIssue(err, text, 'hosts[2].underlay', '2001:db8:100::1', {
      message: /host host3 and host host1 share underlay address/,
      fix: /its own underlay address/,
      nth: 2,
    });
    expectIssue(err, text, 'tenants[1].id', '100', {
      message: /both have id 100/,
      fix: /its own id/,
      after: 'name: red, id: ',
    });
    expectIssue(err, text, 'tenants[1].prefixes[0]', '2001:db8:b100:0:1::/80', {
      message: /tenant prefixes overlap: red .* and blue 2001:db8:b100::\/64/,
      fix: /disjoint prefixes/,
    });
    expectIssue(err, text, 'tenants[1].routeTarget', '"65000:100"', {
      message: /route target 65000:100/,
      fix: /its own route target/,
      nth: 2,
    });
    expectIssue(err, text, 'networkFunctions[0].host', 'host9', {
      message: /unknown host host9/,
      fix: /one of: host1, host3/,
    });
    expectIssue(err, text, 'workloads[0].host', 'host2', {
      message: /unknown host host2/,
      fix: /one of: host1, host3/,
    });
    expectIssue(err, text, 'policies[0].from.workloads[0]', 'blue/web-9', {
      message: /selects workload blue\/web-9, which the file does not define/,
      fix: /name a workload of tenant blue/,
    });
    expectIssue(err, text, 'policies[0].via[1]', 'fw-typo', {
      message: /unknown network function fw-typo/,
      fix: /one of: fw/,
    });
    expectIssue(err, text, 'edges[1].locators[0]', '"fc00:0:fe00:1::/64"', {
      message: /overlaps edge edge1 locator fc00:0:fe00:1::\/64/,
      fix: /its own locator/,
    });
    expect(err.issues).toHaveLength(10);
  });

  it('the model throws the same issues, with their key paths, for callers without a file (the agent)', () => {
    // A valid file, then a tenant prefix put into SID space behind the loader's back (as gossip could).
    const { text } = fixture('tenant-in-sid-space.yaml');
    const spec = parseConfig(
      text.replace('"fc00:0:b100::/64"', '2001:db8:b100::/64').replace('2001:db8:b200::fe', 'fc00:99:f::2'),
      'x.yaml',
    );
    if (spec.kind !== 'Fabric') throw new Error('kind');
    const input = fabricInputFromSpec(spec.spec);
    const bad = {
      ...input,
      tenants: input.tenants.map((t, i) => (i === 0 ? { ...t, prefixes: [input.locatorBlock!] } : t)),
    };
    try {
      buildFabricView(bad);
      throw new Error('expected a FabricError');
    } catch (e) {
      expect(e).toBeInstanceOf(FabricError);
      expect((e as FabricError).issues.map((i) => i.path)).toEqual([['tenants', 0, 'prefixes', 0]]);
      expect((e as Error).message).toMatch(
        /tenant blue prefix fc00::\/32 overlaps the SID block.*; move the tenant prefix/,
      );
    }
  });

  it('checks a topology: lab nodes name known tenants and attach to edge routers', () => {
    const { file, text } = fixture('topology-bad-nodes.yaml');
    const err = problems(text, file);
    expectIssue(err, text, 'nodes[0].tenant', 'green', {
      message: /unknown tenant green/,
      fix: /one of: blue/,
    });
    expectIssue(err, text, 'nodes[1].attach', 'host1', {
      message: /attaches to host1, which is not an edge-router node/,
      fix: /one of: edge1/,
      nth: 2,
    });
  });
});

describe('YAML errors, with file, line, key and fix', () => {
  it('a syntax error names its line, column, key path, the line and a fix', () => {
    const { file, text } = fixture('syntax-error.yaml.txt');
    const err = problems(text, file);
    // yaml reports the start of the offending line.
    expectIssue(err, text, 'hosts[0]', '   locator:', {
      message: /YAML syntax: Sequence item without - indicator/,
      fix: /line this key up with the other keys of its item/,
      value: 'locator: fc00:0:1::/48',
    });
    const unclosed = problems(
      'apiVersion: segmesh.io/v1alpha1\nkind: Fabric\nhosts: [ { name: a }\n',
      'u.yaml',
    );
    expect(unclosed.issues[0]).toMatchObject({ line: 4, key: 'hosts[0]' });
    expect(unclosed.issues[0]!.fix).toMatch(/close the \[ or \{/);
    const duplicate = problems('apiVersion: segmesh.io/v1alpha1\nkind: Fabric\nkind: Fabric\n', 'd.yaml');
    expect(duplicate.issues[0]).toMatchObject({ line: 3, column: 1, key: 'kind' });
    expect(duplicate.issues[0]!.fix).toMatch(/a key appears twice/);
  });

  it("an unknown key points at the key's own line, not its parent's", () => {
    const { file, text } = fixture('unknown-key.yaml');
    const err = problems(text, file);
    expectIssue(err, text, 'hosts[0].vfr', 'vfr', { message: /unknown key/, fix: /check the spelling/ });
    expect(() => parseConfig(text.replace('vfr', 'vrf'), file)).not.toThrow();
  });

  it('an undefined alias names the file, line, key and the anchor to define', () => {
    const { file, text } = fixture('undefined-alias.yaml');
    const err = problems(text, file);
    expectIssue(err, text, 'hosts[0].underlay', '*host1-underlay', {
      message: /alias \*host1-underlay refers to no anchor &host1-underlay/,
      fix: /define &host1-underlay on a value before this point/,
      value: '*host1-underlay',
    });
    const defined = text.replace(
      'locatorBlock: fc00:0::/32',
      'locatorBlock: fc00:0::/32\nx-underlay: &host1-underlay 2001:db8:100::1',
    );
    // The anchor resolves; what remains is the (positioned) unknown key that held it.
    expect(problems(defined, file).issues.map((i) => i.key)).toEqual(['x-underlay']);
  });
});

describe('agent config and operator keys', () => {
  it('a truncated operatorKeys entry says what is wrong with its bytes, at its line', () => {
    const { file, text } = fixture('agent-bad-operator-key.yaml');
    const err = problems(text, file);
    expectIssue(err, text, 'operatorKeys[0]', 'CAESIAAAAAAAAAAAAAAAAAAAAAA=', {
      message:
        /decodes to 20 bytes .*truncated: it declares 32 bytes of key data and has 16; an Ed25519 public key is 36 bytes/,
      fix: /public key line that segmesh keygen printed/,
    });
    expect(err.message).not.toMatch(/index out of range/);
  });

  it('names each way an operatorKeys entry can be wrong; a real key passes', async () => {
    const key = await newOperatorKey();
    expect(publicKeyTextProblem(key.publicKey)).toBeUndefined();
    expect(operatorKeyFromText(key.publicKey).type).toBe('Ed25519');
    expect(publicKeyTextProblem(`${key.publicKey.slice(0, 10)}!${key.publicKey.slice(11)}`)).toMatch(
      /not base64: character "!" at position 11/,
    );
    expect(publicKeyTextProblem(Buffer.from(key.privateKey).toString('base64'))).toMatch(/PRIVATE key/);
    expect(
      publicKeyTextProblem(Buffer.from([8, 2, 18, 33, ...new Uint8Array(33)]).toString('base64')),
    ).toMatch(/secp256k1 key; operator keys are Ed25519/);
    expect(() => operatorKeyFromText('abc')).toThrow(OperatorKeyError);
    const text = fixture('agent-bad-operator-key.yaml').text.replace(
      'CAESIAAAAAAAAAAAAAAAAAAAAAA=',
      key.publicKey,
    );
    expect(parseConfig(text, 'agent.yaml').kind).toBe('AgentConfig');
  });

  it('an --operator-key file that is not a private key says what it is', async () => {
    const key = await newOperatorKey();
    const other = await newOperatorKey();
    const file = '/etc/segmesh/operator.key';
    // Positive control: the real file gives the key whose public half the agents list.
    expect(
      operatorPrivateKeyFromBytes(key.privateKey, file).publicKey.equals(operatorKeyFromText(key.publicKey)),
    ).toBe(true);
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(), /is empty/],
      [
        Buffer.from(`${key.publicKey}\n`),
        /public key in base64 \(what keygen prints and operatorKeys lists\), not the private key/,
      ],
      [Buffer.from('-----BEGIN PRIVATE KEY-----\nMC4CAQ\n-----END PRIVATE KEY-----\n'), /is a PEM file/],
      [key.privateKey.slice(0, 40), /is truncated: it declares 64 bytes of key data and has 36/],
      [
        Buffer.concat([key.privateKey, other.privateKey]),
        /has 68 bytes after its 64 bytes of key data \(two keys in one file\?\)/,
      ],
      [
        Buffer.from(key.publicKey, 'base64'),
        /holds an Ed25519 public key \(36 bytes\), not the private key \(68 bytes\)/,
      ],
      [Buffer.from([0x08, 0x00, 0x12, 0x02, 0x30, 0x00]), /holds an RSA key; operator keys are Ed25519/],
      [Buffer.from([0x0a, 0x01, 0xff]), /starts with byte 0x0a, not 0x08/],
    ];
    for (const [bytes, why] of cases) {
      expect(privateKeyBytesProblem(bytes)).toMatch(why);
      expect(() => operatorPrivateKeyFromBytes(bytes, file)).toThrow(
        new RegExp(
          `^operator key file ${file} .*; pass the private key file that segmesh keygen --out wrote$`,
        ),
      );
    }
  });

  it('rejects an agent underlay address and locator outside unicast space, at their lines', () => {
    const { file, text } = fixture('agent-bad-addresses.yaml');
    const err = problems(text, file);
    expectIssue(err, text, 'host.underlay.address', '"::ffff:1.2.3.4"', {
      message: /IPv4-mapped/,
      fix: /global \(2000::\/3\) or unique-local/,
      value: '::ffff:1.2.3.4',
    });
    expectIssue(err, text, 'locator', '"ff00:0:1::/48"', { message: /multicast/, fix: /inside fc00::\/7/ });
  });
});
