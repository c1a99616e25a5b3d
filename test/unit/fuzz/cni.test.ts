/**
 * Fuzzing the CNI input decoders (issue 12): what the container runtime hands the plugin — the network
 * configuration on stdin (with a prevResult), CNI_ARGS and the CNI_* environment. Typed error: CniError;
 * what a parsed prevResult is then used for (CHECK's comparison) must not throw at all.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CniError,
  compareWithPrevious,
  parseArgs,
  parseEnvironment,
  parseNetConf,
  parseResult,
} from '../../../src/discovery/cni/spec.ts';
import { decodeChecked, fuzzParams, mutated, randomBytes } from './fuzz.ts';

const CNI = [CniError];
const prevResult = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x', mac: '02:00:00:00:00:01', mtu: 1400 }],
  ips: [{ address: '2001:db8:b100::7/128', interface: 0 }],
  routes: [{ dst: '::/0' }],
  dns: {},
};
const CONFS = [
  { cniVersion: '1.0.0', name: 'blue', type: 'segmesh-cni', tenant: 'blue' },
  {
    cniVersion: '0.4.0',
    name: 'blue',
    type: 'segmesh-cni',
    tenant: 'blue',
    labels: { app: 'web' },
    prevResult,
  },
].map((c) => JSON.stringify(c));
const enc = new TextEncoder();
const dec = new TextDecoder(); // replaces invalid UTF-8, as reading stdin as text does

/** Everything CHECK does with a configuration once parsed. */
function useConf(text: string): unknown {
  const conf = parseNetConf(text);
  if (conf.prevResult) {
    compareWithPrevious(conf.prevResult, { address: '2001:db8:b100::7', ifname: 'eth0', sandbox: '/x' });
    conf.prevResult.ips[0]?.address.split('/');
  }
  return conf;
}

describe('fuzz: CNI input', () => {
  it('network configuration: random and mutated JSON gives a configuration or CniError', () => {
    for (const c of CONFS) expect(decodeChecked('parseNetConf', c, CNI, () => useConf(c)).ok).toBe(true);
    const texts = fc.oneof(
      fc.oneof(randomBytes, mutated(CONFS.map((c) => enc.encode(c)))).map((b) => dec.decode(b)),
      // Structurally valid JSON with values of any type where the plugin expects particular ones.
      fc
        .tuple(
          fc.constantFrom(...CONFS),
          fc.constantFrom(
            'cniVersion',
            'name',
            'type',
            'tenant',
            'labels',
            'prevResult',
            'agentSocket',
            'mtu',
          ),
          fc.jsonValue(),
        )
        .map(([c, key, value]) => JSON.stringify({ ...JSON.parse(c), [key]: value })),
      fc
        .tuple(fc.constantFrom('interfaces', 'ips', 'routes', 'dns'), fc.jsonValue())
        .map(([key, value]) =>
          JSON.stringify({ ...JSON.parse(CONFS[1]!), prevResult: { ...prevResult, [key]: value } }),
        ),
      fc.tuple(fc.constantFrom('address', 'gateway', 'interface'), fc.jsonValue()).map(([key, value]) =>
        JSON.stringify({
          ...JSON.parse(CONFS[1]!),
          prevResult: { ...prevResult, ips: [{ ...prevResult.ips[0], [key]: value }] },
        }),
      ),
    );
    fc.assert(
      fc.property(texts, (t) => {
        decodeChecked('parseNetConf', t, CNI, () => useConf(t));
      }),
      fuzzParams,
    );
  });

  it('prevResult of any JSON shape gives a result or CniError', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v) ?? '';
        decodeChecked('parseResult', text, CNI, () => {
          const r = parseResult(v);
          compareWithPrevious(r, { address: '::1', ifname: 'eth0', sandbox: '/x' });
          return r;
        });
      }),
      fuzzParams,
    );
  });

  it('CNI_ARGS and the environment: random values give a value or CniError', () => {
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'c1',
      CNI_NETNS: '/var/run/netns/x',
      CNI_IFNAME: 'eth0',
      CNI_ARGS: 'K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-1',
      CNI_PATH: '/opt/cni/bin',
    };
    expect(decodeChecked('parseEnvironment', 'env', CNI, () => parseEnvironment(env)).ok).toBe(true);
    const value = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constant(undefined),
      fc.constantFrom('ADD', 'DEL', 'CHECK', 'VERSION'),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(env)),
        value,
        fc.string({ maxLength: 200 }),
        (key, v, args) => {
          decodeChecked('parseArgs', args, CNI, () => parseArgs(args));
          const e = { ...env, [key]: v };
          decodeChecked('parseEnvironment', JSON.stringify(e), CNI, () => parseEnvironment(e));
        },
      ),
      fuzzParams,
    );
  });
});
