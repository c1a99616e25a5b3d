/**
 * HMAC keys in the forwarding intent (issue 13): from the gossip view through the model's plan into
 * intent items, the kernel lowering's writes, the eBPF backend's refusal by name, and the agent config
 * option that a backend cannot honour refused at validation.
 */
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { buildFabricState } from '../../../src/agent/fabric-state.ts';
import { ConfigError, parseConfig } from '../../../src/config/load.ts';
import { unsupportedItems } from '../../../src/dataplane/backend.ts';
import { ebpfCapabilities } from '../../../src/dataplane/ebpf/backend.ts';
import { lowerToEbpf } from '../../../src/dataplane/ebpf/lower.ts';
import { diffIntents, hmacKeys, type IntentItem } from '../../../src/dataplane/intent.ts';
import { HostIntentComputer, intentOf } from '../../../src/dataplane/intent-lower.ts';
import { kernelCapabilities } from '../../../src/dataplane/kernel/backend.ts';
import { kernelDelta } from '../../../src/dataplane/kernel/delta.ts';
import { planToJson } from '../../../src/format/plan.ts';
import { HmacKeyRecordSchema } from '../../../src/gen/segmesh/v1/gossip_pb.js';
import { EMPTY_VIEW } from '../../../src/gossip/view.ts';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { buildFabricView, FabricError, type FabricInput } from '../../../src/srv6/fabric.ts';
import { computeHostPlan } from '../../../src/srv6/pathcompute.ts';
import { F3216 } from '../../../src/srv6/sid.ts';

const secret = (byte: number, n = 32) => new Uint8Array(n).fill(byte);

function fabric(keys: FabricInput['hmacKeys'], hmacKeyId?: number): FabricInput {
  return {
    ...(hmacKeyId !== undefined ? { hmacKeyId } : {}),
    ...(keys ? { hmacKeys: keys } : {}),
    hosts: [
      { name: 'h1', underlay: parseIpv6('2001:db8:100::1'), locator: parsePrefix('fc00:0:1::/48') },
      { name: 'h2', underlay: parseIpv6('2001:db8:100::2'), locator: parsePrefix('fc00:0:2::/48') },
    ],
    tenants: [{ name: 'blue', id: 100, prefixes: [parsePrefix('2001:db8:b100::/64')] }],
    workloads: [
      { id: 'a', tenant: 'blue', host: 'h1' },
      { id: 'b', tenant: 'blue', host: 'h2' },
    ],
  };
}

const intent = (input: FabricInput, host = 'h1') => intentOf(computeHostPlan(buildFabricView(input), host));

describe('HMAC keys in the forwarding intent', () => {
  it('the fabric view of two keys gives every host one item per key; a new secret changes it, a removed key removes it', () => {
    const k7 = { keyId: 7, algorithm: 'sha256' as const, secret: secret(1) };
    const k9 = { keyId: 9, algorithm: 'sha1' as const, secret: secret(2, 64) };
    for (const host of ['h1', 'h2']) {
      const keys = [...hmacKeys(intent(fabric([k7, k9]), host))];
      expect(keys.map((k) => [k.key, k.keyId, k.algorithm, k.secret.length])).toEqual([
        ['k|7', 7, 'sha256', 32],
        ['k|9', 9, 'sha1', 64],
      ]);
    }
    const before = intent(fabric([k7, k9])).items;
    const after = intent(fabric([{ ...k7, secret: secret(3) }])).items;
    const d = diffIntents(before, after);
    expect(d.added).toEqual([]);
    expect(d.changed.map((i) => i.key)).toEqual(['k|7']);
    expect(d.removed.map((i) => i.key)).toEqual(['k|9']);
    // The same secret in a new array is the same item (no rewrite on every reconcile).
    expect(diffIntents(before, intent(fabric([{ ...k7, secret: secret(1) }, k9])).items).changed).toEqual([]);
    // Workload changes on the incremental path leave the keys alone.
    const computer = new HostIntentComputer(buildFabricView(fabric([k7])), 'h1');
    const moved = computer.removeWorkload('b');
    expect([...moved.added, ...moved.changed, ...moved.removed].some((i) => i.kind === 'hmac-key')).toBe(
      false,
    );
    expect(computer.intent.items.has('k|7')).toBe(true);
  });

  it('refuses a key id outside 1..2^32-1, a secret the kernel does not take, and an id given twice', () => {
    const bad = (keys: NonNullable<FabricInput['hmacKeys']>) => {
      try {
        buildFabricView(fabric(keys));
      } catch (e) {
        if (e instanceof FabricError) return e.message;
        throw e;
      }
      return '';
    };
    expect(bad([{ keyId: 0, algorithm: 'sha256', secret: secret(1) }])).toMatch(
      /key id 0 is not in 1..4294967295/,
    );
    expect(bad([{ keyId: 1, algorithm: 'sha256', secret: secret(1, 65) }])).toMatch(/65-byte secret/);
    expect(bad([{ keyId: 1, algorithm: 'sha256', secret: new Uint8Array(0) }])).toMatch(/0-byte secret/);
    const twice = { keyId: 5, algorithm: 'sha256' as const, secret: secret(1) };
    expect(bad([twice, twice])).toMatch(/key id 5 is given twice/);
    expect(bad([twice])).toBe(''); // positive control
  });

  it('the kernel backend can install them; the eBPF backend refuses each by name and lowers the rest', () => {
    const it7 = intent(fabric([{ keyId: 7, algorithm: 'sha256', secret: secret(1) }]));
    expect(unsupportedItems(kernelCapabilities({ hmac: true }), it7)).toEqual([]);
    expect(unsupportedItems(kernelCapabilities({ hmac: false }), it7)).toEqual([
      expect.stringMatching(/^HMAC key 7: the kernel backend has no SRH HMAC/),
    ]);
    const ebpf = unsupportedItems(ebpfCapabilities(), it7);
    expect(ebpf).toEqual([
      expect.stringMatching(/^HMAC key 7: the ebpf backend has no SRH HMAC.*dataplane.backend: kernel/),
    ]);
    // Lowered anyway (a caller that did not filter): the key is skipped with its reason.
    const opts = {
      underlayDevice: 'ul0',
      source: parseIpv6('2001:db8:100::1'),
      links: new Map([['ul0', { index: 2 }]]),
    };
    const hmacSkips = (i: typeof it7) => lowerToEbpf(i, opts).skipped.filter((r) => /HMAC/.test(r));
    expect(hmacSkips(it7)).toEqual([expect.stringMatching(/^k\|7: the BPF datapath has no SRH HMAC/)]);
    expect(hmacSkips(intent(fabric(undefined)))).toEqual([]);
  });

  it('a delta that only changes a key writes no route or rule (the backend writes the key itself)', () => {
    const a = intent(fabric([{ keyId: 7, algorithm: 'sha256', secret: secret(1) }]));
    const b = intent(fabric([{ keyId: 7, algorithm: 'sha256', secret: secret(2) }]));
    const d = diffIntents(a.items, b.items);
    expect(d.changed.map((i: IntentItem) => i.key)).toEqual(['k|7']);
    expect(kernelDelta(a, b, d, { underlayDevice: 'eth0' })).toEqual({
      routes: { add: [], replace: [], delete: [] },
      rules: { add: [], delete: [] },
    });
  });

  it('with hmacKeyId the encapsulations toward other hosts sign with the key and keep their SRH', () => {
    const signed = intent(fabric([{ keyId: 7, algorithm: 'sha256', secret: secret(1) }], 7));
    const encaps = [...signed.items.values()].filter((i) => i.kind === 'entry' && i.action.kind === 'encap');
    expect(encaps.length).toBeGreaterThan(0);
    for (const e of encaps)
      expect(e.kind === 'entry' && e.action).toMatchObject({ kind: 'encap', mode: 'encap', hmacKeyId: 7 });
  });
});

describe('HMAC keys from gossip', () => {
  const state = (
    records: Array<{ keyId: string; secret: Uint8Array; notAfterMs?: bigint }>,
    nowMs = 10_000,
  ) =>
    buildFabricState({
      self: {
        name: 'host1',
        hostId: 'id-1',
        underlay: parseIpv6('2001:db8:100::1'),
        locator: parsePrefix('fc00:0:1::/48'),
      },
      structure: F3216,
      maxSegments: 4,
      underlayMtu: 1500,
      gossip: {
        ...EMPTY_VIEW,
        hmacKeys: new Map(
          records.map((r) => [
            r.keyId,
            { version: { wall: 1, counter: 0, origin: 'operator' }, record: create(HmacKeyRecordSchema, r) },
          ]),
        ),
      },
      local: [],
      external: [],
      edgePeers: [],
      hmacKeyId: 7,
      nowMs,
    });

  it('takes valid keys (also before their window opens), leaves out expired ones, skips bad ones with the reason', () => {
    const r = state([
      { keyId: '7', secret: secret(1) },
      { keyId: '8', secret: secret(2), notAfterMs: 20_000n },
      { keyId: '9', secret: secret(3), notAfterMs: 5_000n }, // expired
      { keyId: 'x', secret: secret(4) },
      { keyId: '10', secret: secret(5, 65) },
    ]);
    expect(r.input.hmacKeys?.map((k) => [k.keyId, k.algorithm])).toEqual([
      [7, 'sha256'],
      [8, 'sha256'],
    ]);
    expect(r.input.hmacKeyId).toBe(7);
    expect(r.skipped).toEqual([
      'HMAC key "x": its id is not in 1..4294967295',
      'HMAC key 10: a 65-byte secret; the kernel takes 1..64 bytes',
    ]);
  });
});

describe('dataplane.hmac in the agent config', () => {
  const config = (dataplane: string) => `apiVersion: segmesh.io/v1alpha1
kind: AgentConfig
host: { name: host1, underlay: { interface: eth0, address: "2001:db8:100::1" } }
locator: "fc00:0:1::/48"
dataplane: ${dataplane}
`;
  const error = (text: string): string => {
    try {
      parseConfig(text, 'agent.yaml');
    } catch (e) {
      if (e instanceof ConfigError) return e.message;
      throw e;
    }
    return '';
  };

  it('is refused on the eBPF backend, naming the backend, the key and the fix; accepted on kernel and auto', () => {
    const msg = error(config('{ backend: ebpf, hmac: { keyId: 7 } }'));
    expect(msg).toMatch(/dataplane\.hmac/);
    expect(msg).toMatch(/the ebpf backend has no SRH HMAC/);
    expect(msg).toMatch(/set dataplane\.backend: kernel/);
    expect(error(config('{ backend: kernel, hmac: { keyId: 7 } }'))).toBe('');
    expect(error(config('{ backend: auto, hmac: { keyId: 7 } }'))).toBe('');
    expect(error(config('{ backend: ebpf }'))).toBe('');
  });
});

describe('HMAC keys in a printed plan', () => {
  it('the JSON plan names the key and redacts its secret', () => {
    const view = buildFabricView(fabric([{ keyId: 7, algorithm: 'sha256', secret: secret(0x41) }]));
    const json = JSON.stringify(planToJson(view, computeHostPlan(view, 'h1')));
    expect(json).toContain('"keyId":7');
    expect(json).toContain('"secret":"<redacted>"');
    expect(json).not.toMatch(/AAAA|65,65/);
  });
});
