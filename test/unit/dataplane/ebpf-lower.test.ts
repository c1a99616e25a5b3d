import { describe, expect, it } from 'vitest';
import { ALL_SCOPES, type BackendCapabilities, unsupportedItems } from '../../../src/dataplane/backend.ts';
import {
  addrKey,
  endpointValue,
  exactKey,
  ifindexKey,
  isExactPolicy,
  MAP,
  nexthopValue,
  POL_BLOCKED,
  policyKey,
  policyOfExact,
  policyValue,
  reasonValue,
  sidKey,
  sidValue,
  u32Key,
} from '../../../src/dataplane/ebpf/abi.ts';
import {
  asHave,
  BlockedPrefixes,
  diffMap,
  type EbpfState,
  hex,
  type LinkFacts,
  lowerDelta,
  lowerToEbpf,
  type MapEntry,
  OWNED_MAPS,
  sameBytes,
  sidSlotsOfMap,
  slotsOfMap,
  stateKey,
  stateKeyBytes,
} from '../../../src/dataplane/ebpf/lower.ts';
import {
  type Attachment,
  attachmentKey,
  diffIntents,
  entryKey,
  type ForwardingIntent,
  type IntentItem,
  sidKey as itemSidKey,
  type LocalSid,
  type PrefixEntry,
  type Scope,
  UNDERLAY,
} from '../../../src/dataplane/intent.ts';
import { sameRoute } from '../../../src/dataplane/kernel/delta.ts';
import { routeKey } from '../../../src/dataplane/route.ts';
import { ipv6ToBytes, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';

/**
 * A state's policy entries as one table keyed as sm_policy (what the programs answer from both maps):
 * sm_policy's, and sm_exact's given back their prefix length. Checks the split on the way: every /128 in
 * sm_exact (by its 20-byte {key space, destination}), none in sm_policy.
 */
function policyOf(st: EbpfState): Map<string, MapEntry> {
  const out = new Map<string, MapEntry>();
  for (const [k, e] of st.maps.get(MAP.policy)!) {
    expect(isExactPolicy(e.key)).toBe(false);
    out.set(k, e);
  }
  for (const e of st.maps.get(MAP.exact)!.values()) {
    expect(e.key.length).toBe(20);
    const key = policyOfExact(e.key);
    expect(out.has(stateKey(key))).toBe(false);
    out.set(stateKey(key), { ...e, key });
  }
  return out;
}

const ip = parseIpv6;
const egress: Scope = { kind: 'egress', tenant: 'blue', tenantId: 7 };
const delivery: Scope = { kind: 'delivery', tenant: 'blue', tenantId: 7 };
const forward: Scope = { kind: 'forward', tenant: 'blue', tenantId: 7 };
const nfReturn: Scope = { kind: 'return', tenant: 'blue', networkFunction: 'dx', functionIndex: 5 };
const mac = (s: string) => Uint8Array.from(s.split(':').map((x) => Number.parseInt(x, 16)));
const links = new Map<string, LinkFacts>([
  ['ul0', { index: 2 }],
  ['wb0', { index: 9, mac: mac('02:00:00:00:00:09'), peerMac: mac('02:00:00:00:01:09') }],
  ['wc0', { index: 10, mac: mac('02:00:00:00:00:0a') }],
  ['nf0', { index: 11, mac: mac('02:00:00:00:00:0b') }],
]);
const opts = { underlayDevice: 'ul0', source: ip('2001:db8:12::1'), links };

function entry(scope: Scope, prefix: string, action: PrefixEntry['action'], from?: string): PrefixEntry {
  const p = parsePrefix(prefix);
  const f = from ? parsePrefix(from) : undefined;
  return {
    kind: 'entry',
    key: entryKey(scope, p, f),
    scope,
    prefix: p,
    ...(f ? { from: f } : {}),
    action,
    reason: 't',
  };
}
function sid(s: string, behavior: LocalSid['behavior'], extra: Partial<LocalSid> = {}): LocalSid {
  return { kind: 'sid', key: itemSidKey(ip(s)), sid: ip(s), behavior, sidKey: s, reason: 't', ...extra };
}
const attachment: Attachment = {
  kind: 'attachment',
  key: attachmentKey('wb0'),
  link: 'wb0',
  mtu: 1500,
  tenant: 'blue',
  address: ip('fd07:1::10'),
  ingress: egress,
  restrict: {
    source: ip('fd07:1::10'),
    denyDestinations: [parsePrefix('fc00::/32'), parsePrefix('2001:db8:12::1/128')],
  },
};
function intent(items: IntentItem[]): ForwardingIntent {
  return { host: 'h1', items: new Map(items.map((i) => [i.key, i])) };
}
const segs = [ip('fc00:0:2::e'), ip('fc00:0:2::d6:7')];
const base = [
  attachment,
  sid('fc00:0:1::e', 'End'),
  sid('fc00:0:1::d6:7', 'End.DT6', { tenant: 'blue', lookup: delivery }),
  sid('fc00:0:1::5', 'End.X', { nextHop: ip('2001:db8:12::2') }),
  entry(UNDERLAY, 'fc00:0:2::/48', { kind: 'locator', via: ip('2001:db8:12::2') }),
  entry(egress, 'fc00:0:2::/48', { kind: 'locator', via: ip('2001:db8:12::2') }),
  entry(egress, 'fd07:2::/64', { kind: 'encap', mode: 'encap', segments: segs }),
  entry(egress, 'fd07:3::/64', { kind: 'encap', mode: 'encap.red', segments: segs }),
  entry(egress, 'fd07:1::10/128', { kind: 'deliver', link: 'wb0' }),
  entry(egress, '::/0', { kind: 'unreachable' }),
  entry(delivery, 'fd07:1::10/128', { kind: 'deliver', link: 'wb0' }),
  entry(delivery, '::/0', { kind: 'unreachable' }),
];
/** A state map as hex(key) -> hex(value). */
const hexes = (m: ReadonlyMap<string, { value: Uint8Array }> | undefined) =>
  new Map([...(m ?? new Map())].map(([k, e]) => [hex(stateKeyBytes(k)), hex(e.value)]));

describe('eBPF lowering of a forwarding intent', () => {
  const s = lowerToEbpf(intent(base), opts);

  it('attachments become endpoints keyed by ifindex (tenant id, allowed source) and their denied destinations blocked entries', () => {
    expect(hexes(s.maps.get(MAP.endpoints))).toStrictEqual(
      new Map([[hex(ifindexKey(9)), hex(endpointValue({ tenant: 7, addr6: ip('fd07:1::10') }))]]),
    );
    expect(hexes(s.maps.get(MAP.blocked))).toStrictEqual(
      new Map([
        [hex(addrKey(ipv6ToBytes(ip('fc00::')), 32)), hex(reasonValue('drop_sid_block'))],
        [hex(addrKey(ipv6ToBytes(ip('2001:db8:12::1')), 128)), hex(reasonValue('drop_host_address'))],
      ]),
    );
  });

  it("egress entries become policies: encap, encap.red, local delivery with the MACs, unreachable as drop; locators none; a local workload's /128 delivery entry the same local policy in the delivery key space (its unreachable ::/0 none: the table's)", () => {
    const src = ip('2001:db8:12::1');
    const k = (p: string, l: number) => hex(policyKey(7, ipv6ToBytes(ip(p)), l));
    const local = hex(
      policyValue({ mode: 'local', oif: 9, dmac: mac('02:00:00:00:01:09'), smac: mac('02:00:00:00:00:09') }),
    );
    expect(hexes(policyOf(s))).toStrictEqual(
      new Map([
        [hex(policyKey(7, ipv6ToBytes(ip('fd07:1::10')), 128, 'delivery')), local],
        // Slot 1: the underlay's locator fc00:0:2::/48 covers the first segment.
        [k('fd07:2::', 64), hex(policyValue({ mode: 'encap', segments: segs, source: src, slot: 1 }))],
        [k('fd07:3::', 64), hex(policyValue({ mode: 'encapRed', segments: segs, source: src, slot: 1 }))],
        [
          k('fd07:1::10', 128),
          hex(
            policyValue({
              mode: 'local',
              oif: 9,
              dmac: mac('02:00:00:00:01:09'),
              smac: mac('02:00:00:00:00:09'),
            }),
          ),
        ],
        // ::/0 contains the denied destinations: wl_in looks sm_blocked up for it (POL_BLOCKED).
        [k('::', 0), hex(policyValue({ mode: 'drop', blocked: true }))],
      ]),
    );
  });

  it("local SIDs: End, End.DT6 into its delivery scope's table with the tenant, End.X out of the underlay", () => {
    expect(hexes(s.maps.get(MAP.sids))).toStrictEqual(
      new Map([
        // Counter slots from 1, in the order of the intent's items.
        [hex(sidKey(ip('fc00:0:1::e'))), hex(sidValue({ behavior: 'End', slot: 1 }))],
        [
          hex(sidKey(ip('fc00:0:1::d6:7'))),
          hex(
            sidValue({
              behavior: 'End.DT6',
              table: 385024 + 4 * 7 + 1,
              tenant: 7,
              delivery: true,
              slot: 2,
            }),
          ),
        ],
        [
          hex(sidKey(ip('fc00:0:1::5'))),
          hex(sidValue({ behavior: 'End.X', oif: 2, nexthop: ip('2001:db8:12::2'), slot: 3 })),
        ],
      ]),
    );
  });

  it('underlay and delivery entries become routes (main table, the delivery table); nothing skipped', () => {
    expect(s.routes.map((r) => [r.table, r.dev, r.type ?? 'unicast'])).toStrictEqual([
      [254, 'ul0', 'unicast'],
      [385053, 'wb0', 'unicast'],
      [385053, undefined, 'unreachable'],
    ]);
    expect(s.skipped).toStrictEqual([]);
  });

  it('refuses with a reason what the programs cannot do, and programs nothing of it', () => {
    const bad = lowerToEbpf(
      intent([
        entry(egress, 'fd07:4::/64', { kind: 'encap', mode: 'encap', segments: segs }, 'fd07:1::/64'),
        entry(egress, 'fd07:5::/64', { kind: 'encap', mode: 'encap', segments: segs, hmacKeyId: 1 }),
        entry(UNDERLAY, 'fd07:6::/64', { kind: 'encap', mode: 'encap', segments: segs }),
        entry(delivery, 'fd07:8::/64', { kind: 'encap', mode: 'encap', segments: segs, hmacKeyId: 1 }),
        entry(egress, 'fd07:1::11/128', { kind: 'deliver', link: 'wc0' }),
        sid('fc00:0:1::b6', 'End.B6.Encaps'),
      ]),
      opts,
    );
    expect(bad.skipped).toHaveLength(6);
    expect(bad.skipped.join('\n')).toMatch(/source-specific/);
    expect(bad.skipped.join('\n')).toMatch(/encapsulation from the underlay scope/);
    expect(bad.skipped.join('\n')).toMatch(/HMAC/);
    expect(bad.skipped.join('\n')).toMatch(/MACs of link wc0/);
    expect(bad.skipped.join('\n')).toMatch(/no End.B6.Encaps/);
    expect(policyOf(bad).size).toBe(0);
    expect(bad.maps.get(MAP.sids)!.size).toBe(0);
    expect(bad.routes).toStrictEqual([]);
  });

  it('a delivery entry that encapsulates (a workload moved away) is a policy in the delivery key space, not a route; the egress key space keeps its own', () => {
    const src = ip('2001:db8:12::1');
    const to = [ip('fc00:0:3::d6:7')];
    const moved = lowerToEbpf(
      intent([
        ...base.filter((i) => i.key !== entryKey(delivery, parsePrefix('fd07:1::10/128'))),
        entry(delivery, 'fd07:1::10/128', { kind: 'encap', mode: 'encap.red', segments: to }),
      ]),
      opts,
    );
    expect(moved.skipped).toStrictEqual([]);
    const dk = hex(policyKey(7, ipv6ToBytes(ip('fd07:1::10')), 128, 'delivery'));
    const ek = hex(policyKey(7, ipv6ToBytes(ip('fd07:1::10')), 128));
    expect(dk).not.toBe(ek);
    const pol = hexes(policyOf(moved));
    expect(pol.get(dk)).toBe(hex(policyValue({ mode: 'encapRed', segments: to, source: src })));
    expect(pol.get(ek)).toBe(hexes(policyOf(s)).get(ek)); // egress untouched
    expect(pol.size).toBe(policyOf(s).size); // its local delivery entry replaced
    // The delivery table loses the moved workload's route (the redirect is BPF's); its unreachable stays.
    expect(moved.routes.map((r) => [r.table, r.dev, r.type ?? 'unicast'])).toStrictEqual([
      [254, 'ul0', 'unicast'],
      [385053, undefined, 'unreachable'],
    ]);
    // The delivery flag: the key's tenant field is the tenant id with its top bit set.
    expect(dk.slice(8, 16)).toBe('80000007');
  });

  it("a delivery entry becomes a local policy only for a /128 without a source, with its link's MACs known; otherwise the route alone, nothing skipped", () => {
    const dk = (p: string, l: number) => hex(policyKey(7, ipv6ToBytes(ip(p)), l, 'delivery'));
    const st = lowerToEbpf(
      intent([
        entry(delivery, 'fd07:1::10/128', { kind: 'deliver', link: 'wb0' }), // the one that is written
        entry(delivery, 'fd07:1:1::/64', { kind: 'deliver', link: 'wb0' }), // shorter: the table's
        entry(delivery, 'fd07:1::12/128', { kind: 'deliver', link: 'wc0' }), // no workload MAC yet
      ]),
      opts,
    );
    expect([...hexes(policyOf(st)).keys()]).toStrictEqual([dk('fd07:1::10', 128)]);
    expect(st.skipped).toStrictEqual([]);
    expect(st.routes.map((r) => [r.table, r.dev])).toStrictEqual([
      [385053, 'wb0'],
      [385053, 'wb0'],
      [385053, 'wc0'],
    ]);
  });

  it('diff: the same state writes nothing; a moved workload is one replaced policy, a gone one one delete', () => {
    const same = diffMap(policyOf(s), asHave(policyOf(s)));
    expect([same.put.length, same.delete.length]).toStrictEqual([0, 0]);
    const moved = lowerToEbpf(
      intent([
        ...base.filter((i) => i.key !== entryKey(egress, parsePrefix('fd07:3::/64'))),
        entry(egress, 'fd07:2::/64', { kind: 'encap', mode: 'encap', segments: [ip('fc00:0:3::d6:7')] }),
      ]),
      opts,
    );
    const w = diffMap(policyOf(moved), asHave(policyOf(s)));
    expect({ added: w.added, replaced: w.replaced, deleted: w.delete.length }).toStrictEqual({
      added: 0,
      replaced: 1,
      deleted: 1,
    });
    expect(hex(w.delete[0]!)).toBe(hex(policyKey(7, ipv6ToBytes(ip('fd07:3::')), 64)));
  });

  it('diff against a lowered state (its entries as have): the same writes as against the bytes', () => {
    const moved = lowerToEbpf(intent(base.slice(0, -3)), opts);
    for (const m of OWNED_MAPS) {
      const a = diffMap(moved.maps.get(m)!, asHave(s.maps.get(m)!));
      const b = diffMap(moved.maps.get(m)!, s.maps.get(m)!);
      expect(b.put).toStrictEqual(a.put);
      expect(b.delete.map(hex)).toStrictEqual(a.delete.map(hex));
    }
    expect(sameBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    expect(sameBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
    expect(sameBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0))).toBe(false);
  });
});

describe('eBPF lowering of the forward and return scopes (sm_policy key spaces)', () => {
  const src = ip('2001:db8:12::1');
  const edge = [ip('fc00:0:e::d6:7')];
  const nfAttachment: Attachment = {
    kind: 'attachment',
    key: attachmentKey('nf0'),
    link: 'nf0',
    mtu: 1500,
    tenant: 'blue',
    networkFunction: 'dx',
    ingress: nfReturn,
  };
  const scoped = [
    ...base,
    sid('fc00:0:1::f6:7', 'End.DT6', { tenant: 'blue', lookup: forward }),
    entry(forward, 'fc00:0:2::/48', { kind: 'locator', via: ip('2001:db8:12::2') }),
    entry(forward, 'fd07:1::10/128', { kind: 'deliver', link: 'wb0' }),
    entry(forward, 'fd07:2::/64', { kind: 'encap', mode: 'encap.red', segments: segs }),
    entry(forward, '::/0', { kind: 'encap', mode: 'encap', segments: edge }),
    nfAttachment,
    entry(nfReturn, 'fc00:0:2::/48', { kind: 'locator', via: ip('2001:db8:12::2') }),
    entry(nfReturn, 'fd07:1::10/128', { kind: 'deliver', link: 'wb0' }),
    entry(nfReturn, 'fd07:2::/64', { kind: 'encap', mode: 'encap', segments: segs }),
    entry(nfReturn, '::/0', { kind: 'unreachable' }),
  ];
  const s = lowerToEbpf(intent(scoped), opts);
  const plain = lowerToEbpf(intent(base), opts);
  const local = policyValue({
    mode: 'local',
    oif: 9,
    dmac: mac('02:00:00:00:01:09'),
    smac: mac('02:00:00:00:00:09'),
  });

  it('the /128s of every key space go to sm_exact, keyed {key space, destination} (no prefix length); shorter prefixes stay in sm_policy; POL_BLOCKED rides along', () => {
    const held = [...scoped, entry(egress, '2001:db8:12::1/128', { kind: 'unreachable' })]; // a denied host address
    const st = lowerToEbpf(intent(held), opts);
    const exact = hexes(st.maps.get(MAP.exact));
    const x = (id: number, a: string, sp: 'egress' | 'delivery' | 'forward' | 'return') =>
      hex(exactKey(id, ipv6ToBytes(ip(a)), sp));
    expect(new Set(exact.keys())).toStrictEqual(
      new Set([
        x(7, 'fd07:1::10', 'egress'),
        x(7, 'fd07:1::10', 'delivery'),
        x(7, 'fd07:1::10', 'forward'),
        x(5, 'fd07:1::10', 'return'),
        x(7, '2001:db8:12::1', 'egress'),
      ]),
    );
    // The key: the key space in network order, then the destination: sm_policy's key without its prefixlen.
    expect(x(7, 'fd07:1::10', 'delivery')).toBe(`80000007${'fd070001000000000000000000000010'}`);
    expect(exact.get(x(7, 'fd07:1::10', 'forward'))).toBe(hex(local));
    expect(
      st.maps.get(MAP.exact)!.get(stateKey(exactKey(7, ipv6ToBytes(ip('2001:db8:12::1')))))!.value[2],
    ).toBe(POL_BLOCKED);
    for (const e of st.maps.get(MAP.policy)!.values()) expect(e.key[0]).toBeLessThan(32 + 128);
    expect(st.maps.get(MAP.policy)!.size).toBeGreaterThan(4); // the shorter prefixes
  });

  it('forward entries: the whole scope in the forward key space (local delivery too: the edge default must not win over a /128), locators none; nothing skipped, no route', () => {
    expect(s.skipped).toStrictEqual([]);
    const pol = hexes(policyOf(s));
    const k = (p: string, l: number) => hex(policyKey(7, ipv6ToBytes(ip(p)), l, 'forward'));
    expect(pol.get(k('fd07:1::10', 128))).toBe(hex(local));
    expect(pol.get(k('fd07:2::', 64))).toBe(
      hex(policyValue({ mode: 'encapRed', segments: segs, source: src, slot: 1 })),
    );
    // The edge's locator is not one the underlay routes: no slot (wl_in's FIB lookup).
    expect(pol.get(k('::', 0))).toBe(hex(policyValue({ mode: 'encap', segments: edge, source: src })));
    expect(pol.has(k('fc00:0:2::', 48))).toBe(false);
    expect(k('::', 0).slice(8, 16)).toBe('40000007');
    // The egress key space beside it is what it was; forward and return add no kernel route.
    for (const [key, v] of hexes(policyOf(plain))) expect(pol.get(key)).toBe(v);
    expect(s.routes).toStrictEqual(plain.routes);
  });

  it('the forward SID: End.DT6 with the forward flag (and its tenant), not the delivery flag', () => {
    const v = s.maps.get(MAP.sids)!.get(stateKey(sidKey(ip('fc00:0:1::f6:7'))))!.value;
    expect(hex(v)).toBe(
      hex(sidValue({ behavior: 'End.DT6', table: 385024 + 4 * 7 + 2, tenant: 7, forward: true, slot: 4 })),
    );
    expect(v[1]).toBe(2); // SM_SID_F_FORWARD
  });

  it("an SR-unaware function's link: an endpoint in its return key space with no source check; its return entries in that key space", () => {
    const ep = s.maps.get(MAP.endpoints)!.get(stateKey(ifindexKey(11)))!.value;
    expect(hex(ep)).toBe(hex(endpointValue({ returnOf: 5 })));
    // key space: function index 5 | TENANT_RETURN; flags: EP_ANYSRC, no address.
    expect(hex(ep.subarray(0, 8))).toBe('0500002002000000');
    expect(ep.subarray(8).every((b) => b === 0)).toBe(true);
    const pol = hexes(policyOf(s));
    const k = (p: string, l: number) => hex(policyKey(5, ipv6ToBytes(ip(p)), l, 'return'));
    expect(pol.get(k('fd07:1::10', 128))).toBe(hex(local));
    expect(pol.get(k('fd07:2::', 64))).toBe(
      hex(policyValue({ mode: 'encap', segments: segs, source: src, slot: 1 })),
    );
    // The return key space is wl_in's too: its ::/0 contains the denied destinations.
    expect(pol.get(k('::', 0))).toBe(hex(policyValue({ mode: 'drop', blocked: true })));
    expect(pol.has(k('fc00:0:2::', 48))).toBe(false);
    expect(k('::', 0).slice(8, 16)).toBe('20000005');
    // 3 forward + 3 return entries more than the base; no blocked entries for the function (no restriction).
    expect(pol.size).toBe(policyOf(plain).size + 6);
    expect(s.maps.get(MAP.blocked)!.size).toBe(plain.maps.get(MAP.blocked)!.size);
  });

  it("a function's link restricted without a source (a host with no workload): still no source check, its denied destinations blocked", () => {
    const deny = [parsePrefix('fc00::/32'), parsePrefix('2001:db8:12::1/128')];
    const restricted: Attachment = { ...nfAttachment, restrict: { denyDestinations: deny } };
    const only = lowerToEbpf(intent([restricted, entry(nfReturn, '::/0', { kind: 'unreachable' })]), opts);
    expect(only.skipped).toEqual([]);
    expect(hex(only.maps.get(MAP.endpoints)!.get(stateKey(ifindexKey(11)))!.value)).toBe(
      hex(endpointValue({ returnOf: 5 })),
    );
    const blocked = hexes(only.maps.get(MAP.blocked));
    expect(blocked.get(hex(addrKey(ipv6ToBytes(ip('fc00::')), 32)))).toBe(hex(reasonValue('drop_sid_block')));
    expect(blocked.get(hex(addrKey(ipv6ToBytes(ip('2001:db8:12::1')), 128)))).toBe(
      hex(reasonValue('drop_host_address')),
    );
    expect(blocked.size).toBe(2);
    // Control: the same link unrestricted blocks nothing.
    const open = lowerToEbpf(intent([nfAttachment, entry(nfReturn, '::/0', { kind: 'unreachable' })]), opts);
    expect(open.maps.get(MAP.blocked)?.size ?? 0).toBe(0);
  });

  it('refuses by name what the return scope cannot take (a policy with from), programs the rest; key spaces never collide', () => {
    const r = lowerToEbpf(
      intent([
        ...scoped,
        entry(nfReturn, 'fd07:3::/64', { kind: 'encap', mode: 'encap', segments: segs }, 'fd07:1::10/128'),
        entry(forward, 'fd07:4::/64', { kind: 'encap', mode: 'encap', segments: segs, hmacKeyId: 3 }),
      ]),
      opts,
    );
    expect(r.skipped).toHaveLength(2);
    expect(r.skipped.join('\n')).toMatch(/e\|rt:dx\|.*source-specific/);
    expect(r.skipped.join('\n')).toMatch(/e\|fw:blue\|.*HMAC/);
    expect(policyOf(r).size).toBe(policyOf(s).size);
    const keys = (['egress', 'delivery', 'forward', 'return'] as const).map((sp) =>
      hex(policyKey(7, ipv6ToBytes(ip('fd07:1::10')), 128, sp)),
    );
    expect(new Set(keys).size).toBe(4);
    expect(() => policyKey(1 << 29, ipv6ToBytes(ip('::')), 0, 'return')).toThrow(/function index/);
  });

  it('capabilities: a backend without the forward and return scopes refuses their entries, SID and link by name; with them, nothing', () => {
    const caps: BackendCapabilities = {
      name: 'small',
      behaviors: new Set(['End', 'End.X', 'End.DT6']),
      encapModes: new Set(['encap', 'encap.red']),
      hmac: false,
      ipv4Inner: false,
      sourceSpecific: false,
      scopes: new Set(['underlay', 'egress', 'delivery']),
    };
    const i = intent(scoped);
    const reasons = unsupportedItems(caps, i);
    expect(reasons).toHaveLength(10); // 4 forward entries, its SID, 4 return entries, the link
    expect(reasons.filter((r) => /has no forward scope/.test(r))).toHaveLength(5);
    expect(reasons.filter((r) => /has no return scope/.test(r))).toHaveLength(5);
    expect(reasons.some((r) => /^link nf0: the small backend has no return scope/.test(r))).toBe(true);
    expect(unsupportedItems({ ...caps, scopes: ALL_SCOPES }, i)).toStrictEqual([]);
  });

  it('a delta that adds a forward entry and changes a return entry writes exactly those two policies', () => {
    const b = intent(scoped);
    const after = intent([
      ...scoped.filter((i) => i.key !== entryKey(nfReturn, parsePrefix('fd07:2::/64'))),
      entry(nfReturn, 'fd07:2::/64', { kind: 'deliver', link: 'wb0' }),
      entry(forward, 'fd07:5::/64', { kind: 'encap', mode: 'encap', segments: segs }),
    ]);
    const d = lowerDelta(lowerToEbpf(b, opts), diffIntents(b.items, after.items), opts, sameRoute)!;
    const w = d.maps.get(MAP.policy)!;
    expect([w.added, w.replaced, w.delete.length]).toStrictEqual([1, 1, 0]);
    expect(w.put.map((e) => hex(e.key)).sort()).toStrictEqual(
      [
        hex(policyKey(5, ipv6ToBytes(ip('fd07:2::')), 64, 'return')),
        hex(policyKey(7, ipv6ToBytes(ip('fd07:5::')), 64, 'forward')),
      ].sort(),
    );
    expect(hexes(policyOf(d.state))).toStrictEqual(hexes(policyOf(lowerToEbpf(after, opts))));
  });
});

describe('eBPF lowering of a delta (only its items)', () => {
  const bytesOf = (st: EbpfState) =>
    new Map(
      OWNED_MAPS.map((m) => [
        m,
        new Map([...st.maps.get(m)!].map(([k, e]) => [hex(stateKeyBytes(k)), hex(e.value)])),
      ]),
    );
  const routesOf = (st: EbpfState) => st.routes.map((r) => routeKey(r).toString(16)).sort();
  const step = (before: IntentItem[], after: IntentItem[]) => {
    const b = intent(before);
    const a = intent(after);
    // lowerDelta takes its `prev` over: the checks compare against a second lowering of `before`, and
    // the whole lowering of `after` keeps its SIDs' counter slots as the delta does.
    const d = lowerDelta(lowerToEbpf(b, opts), diffIntents(b.items, a.items), opts, sameRoute);
    const prev = lowerToEbpf(b, opts);
    return { prev, d, full: lowerToEbpf(a, { ...opts, sidSlots: prev.sidSlots!.slots }) };
  };
  const moves = [
    entry(egress, 'fd07:2::/64', { kind: 'deliver', link: 'wb0' }), // changed: encap -> deliver
    entry(egress, 'fd07:9::/64', { kind: 'encap', mode: 'encap', segments: segs }), // added
    entry(egress, 'fd07:a::/64', { kind: 'encap', mode: 'encap', segments: segs }, 'fd07:1::/64'), // skipped
    sid('fc00:0:1::b6', 'End.B6.Encaps'), // skipped
    entry(delivery, 'fd07:1::11/128', { kind: 'deliver', link: 'wb0' }), // a route added
    sid('fc00:0:1::e', 'End.X', { nextHop: ip('2001:db8:12::3') }), // changed sid
  ];
  const after = [
    ...base.filter(
      (i) =>
        ![
          entryKey(egress, parsePrefix('fd07:3::/64')), // removed policy
          entryKey(delivery, parsePrefix('::/0')), // removed route
          entryKey(egress, parsePrefix('fd07:2::/64')),
          itemSidKey(ip('fc00:0:1::e')),
        ].includes(i.key),
    ),
    ...moves,
  ];

  it('reaches the state of the whole lowering; its writes turn the old maps into the new', () => {
    for (const [from, to] of [
      [base, after],
      [after, base],
    ] as const) {
      const { prev, d, full } = step([...from], [...to]);
      expect(d).toBeDefined();
      expect(bytesOf(d!.state)).toStrictEqual(bytesOf(full));
      expect(routesOf(d!.state)).toStrictEqual(routesOf(full));
      expect([...d!.state.skipped].sort()).toStrictEqual([...full.skipped].sort());
      // The writes, applied to the maps as they were, give the maps as they should be.
      for (const m of OWNED_MAPS) {
        const kernel = new Map([...prev.maps.get(m)!].map(([k, e]) => [hex(stateKeyBytes(k)), hex(e.value)]));
        const w = d!.maps.get(m);
        for (const e of w?.put ?? []) kernel.set(hex(e.key), hex(e.value));
        for (const k of w?.delete ?? []) expect(kernel.delete(hex(k))).toBe(true);
        expect(kernel).toStrictEqual(bytesOf(full).get(m));
      }
      // The routes written: exactly the difference.
      const kr = new Map(prev.routes.map((r) => [routeKey(r), r]));
      for (const r of d!.routes.delete) expect(kr.delete(routeKey(r))).toBe(true);
      for (const r of [...d!.routes.replace, ...d!.routes.add]) kr.set(routeKey(r), r);
      expect([...kr.keys()].map((k) => k.toString(16)).sort()).toStrictEqual(routesOf(full));
    }
    // Counts of the forward step: policy 1 added (fd07:9), 1 replaced (fd07:2), 1 deleted (fd07:3);
    // sm_exact 1 added (fd07:1::11's delivery, a /128).
    const { d } = step(base, after);
    const p = d!.maps.get(MAP.policy)!;
    expect([p.added, p.replaced, p.delete.length]).toStrictEqual([1, 1, 1]);
    const x = d!.maps.get(MAP.exact)!;
    expect([x.added, x.replaced, x.delete.length]).toStrictEqual([1, 0, 0]);
    expect(hex(x.put[0]!.key)).toBe(hex(exactKey(7, ipv6ToBytes(ip('fd07:1::11')), 'delivery')));
    expect(d!.maps.get(MAP.sids)!.replaced).toBe(1);
    expect([d!.routes.add.length, d!.routes.delete.length]).toStrictEqual([1, 1]);
    // Nothing else written: maps the delta does not touch have no writes.
    expect(d!.maps.has(MAP.endpoints)).toBe(false);
  });

  it('an unchanged delta writes nothing; a delta with an attachment asks for the whole lowering', () => {
    const { d } = step(base, base);
    expect([...d!.maps.values()].every((w) => w.put.length + w.delete.length === 0)).toBe(true);
    const other: Attachment = { ...attachment, address: ip('fd07:1::12') };
    expect(step(base, [...base.filter((i) => i !== attachment), other]).d).toBeUndefined();
    expect(
      step(
        base,
        base.filter((i) => i !== attachment),
      ).d,
    ).toBeUndefined();
  });
});

describe('eBPF lowering: the next hops of the underlay locators (sm_nexthops) and the encap slots', () => {
  const src = ip('2001:db8:12::1');
  const via2 = ip('2001:db8:12::2');
  const loc = (prefix: string, via = via2) => entry(UNDERLAY, prefix, { kind: 'locator', via });
  const enc = (prefix: string, first: string) =>
    entry(egress, prefix, { kind: 'encap', mode: 'encap', segments: [ip(first), ip('fc00:0:9::d6:7')] });
  const slotOf = (st: EbpfState, prefix: string) =>
    policyOf(st).get(stateKey(policyKey(7, ipv6ToBytes(ip(prefix)), 64)))!.value[4];
  const items = [
    loc('fc00:0:2::/48'),
    loc('fc00:0:3::/48', ip('2001:db8:12::3')),
    loc('fc00:0:3:8000::/49', ip('2001:db8:12::4')), // more specific than fc00:0:3::/48
    entry(egress, 'fc00:0:4::/48', { kind: 'locator', via: via2 }), // a tenant scope's: no slot
    enc('fd07:2::/64', 'fc00:0:2::e'),
    enc('fd07:3::/64', 'fc00:0:3::e'),
    enc('fd07:4::/64', 'fc00:0:3:8000::e'),
    enc('fd07:5::/64', 'fc00:0:4::e'), // no underlay locator: the FIB lookup
  ];

  it('one slot per underlay locator (oif the underlay link, its next hop, the prefix); an encap value names the longest locator of its first segment, 0 when none', () => {
    const st = lowerToEbpf(intent(items), opts);
    expect(st.skipped).toStrictEqual([]);
    const slots = st.locators!.slots;
    expect([...slots.values()].sort()).toStrictEqual([1, 2, 3]);
    const n = (prefix: string, via: string): [string, string] => {
      const p = parsePrefix(prefix);
      return [
        hex(u32Key(slots.get(`${p.address.toString(16)}/${p.length}`)!)),
        hex(nexthopValue({ oif: 2, via: ip(via), prefix: p.address, prefixLength: p.length })),
      ];
    };
    expect(hexes(st.maps.get(MAP.nexthops))).toStrictEqual(
      new Map([
        n('fc00:0:2::/48', '2001:db8:12::2'),
        n('fc00:0:3::/48', '2001:db8:12::3'),
        n('fc00:0:3:8000::/49', '2001:db8:12::4'),
      ]),
    );
    const idOf = (prefix: string) => {
      const p = parsePrefix(prefix);
      return slots.get(`${p.address.toString(16)}/${p.length}`);
    };
    expect(slotOf(st, 'fd07:2::')).toBe(idOf('fc00:0:2::/48'));
    expect(slotOf(st, 'fd07:3::')).toBe(idOf('fc00:0:3::/48'));
    expect(slotOf(st, 'fd07:4::')).toBe(idOf('fc00:0:3:8000::/49'));
    expect(slotOf(st, 'fd07:5::')).toBe(0);
    const v = policyOf(st).get(stateKey(policyKey(7, ipv6ToBytes(ip('fd07:2::')), 64)))!.value;
    expect(hex(v)).toBe(
      hex(
        policyValue({
          mode: 'encap',
          segments: [ip('fc00:0:2::e'), ip('fc00:0:9::d6:7')],
          source: src,
          slot: idOf('fc00:0:2::/48')!,
        }),
      ),
    );
    // The underlay route stays: the stack and the FIB path still need it.
    expect(st.routes.filter((r) => r.table === 254)).toHaveLength(3);
  });

  it('without the underlay link known: no next hop written (the slot reads as none), policies the same', () => {
    const st = lowerToEbpf(intent(items), {
      ...opts,
      links: new Map([...links].filter(([k]) => k !== 'ul0')),
    });
    expect(st.maps.get(MAP.nexthops)!.size).toBe(0);
    expect(slotOf(st, 'fd07:2::')).toBe(slotOf(lowerToEbpf(intent(items), opts), 'fd07:2::'));
  });

  it('slots are stable: a locator keeps its slot when others come and go; a new one never takes a slot freed in the same lowering; the pinned map gives them back', () => {
    const first = lowerToEbpf(intent(items), opts);
    const slots = first.locators!.slots;
    const without2 = items.filter((i) => i.key !== loc('fc00:0:2::/48').key);
    const next = lowerToEbpf(intent([...without2, loc('fc00:0:5::/48')]), { ...opts, nexthopSlots: slots });
    const s2 = next.locators!.slots;
    for (const [id, slot] of s2) if (slots.has(id)) expect(slot).toBe(slots.get(id));
    const freed = slots.get(`${ip('fc00:0:2::').toString(16)}/48`);
    expect(s2.get(`${ip('fc00:0:5::').toString(16)}/48`)).toBe(4);
    expect([...s2.values()]).not.toContain(freed);
    // Its policies lose the slot (no locator covers them now): the FIB path.
    expect(slotOf(next, 'fd07:2::')).toBe(0);
    // Adoption: the slots read back from the map's entries are the ones it was written with.
    const dumped = [...next.maps.get(MAP.nexthops)!.values()].map(
      (e) => [e.key, e.value] as [Uint8Array, Uint8Array],
    );
    expect(slotsOfMap(dumped)).toStrictEqual(new Map(s2));
    const again = lowerToEbpf(intent([...without2, loc('fc00:0:5::/48')]), {
      ...opts,
      nexthopSlots: slotsOfMap(dumped),
    });
    for (const m of OWNED_MAPS) expect(diffMap(again.maps.get(m)!, next.maps.get(m)!).put).toStrictEqual([]);
  });

  it("a delta: a locator's next hop change rewrites its slot only; a locator that appears or goes asks for the whole lowering, which gives its policies the slot", () => {
    const b = intent(items);
    const moved = intent([
      ...items.filter((i) => i.key !== loc('fc00:0:2::/48').key),
      loc('fc00:0:2::/48', ip('2001:db8:12::9')),
      enc('fd07:6::/64', 'fc00:0:2::d6:1'), // a policy added in the same delta: the slot of its locator
    ]);
    const prev = lowerToEbpf(b, opts);
    const slots = prev.locators!.slots;
    const d = lowerDelta(prev, diffIntents(b.items, moved.items), opts, sameRoute)!;
    expect(d).toBeDefined();
    const nw = d.maps.get(MAP.nexthops)!;
    expect([nw.added, nw.replaced, nw.delete.length]).toStrictEqual([0, 1, 0]);
    expect(hex(nw.put[0]!.key)).toBe(hex(u32Key(slots.get(`${ip('fc00:0:2::').toString(16)}/48`)!)));
    const pw = d.maps.get(MAP.policy)!;
    expect([pw.added, pw.replaced, pw.delete.length]).toStrictEqual([1, 0, 0]);
    expect(slotOf(d.state, 'fd07:6::')).toBe(slotOf(d.state, 'fd07:2::'));
    const full = lowerToEbpf(moved, { ...opts, nexthopSlots: slots });
    for (const m of OWNED_MAPS) expect(hexes(d.state.maps.get(m))).toStrictEqual(hexes(full.maps.get(m)));

    // A locator that appears (fd07:5's first segment gets one) or goes: no delta lowering.
    const grown = intent([...items, loc('fc00:0:4::/48')]);
    expect(
      lowerDelta(lowerToEbpf(b, opts), diffIntents(b.items, grown.items), opts, sameRoute),
    ).toBeUndefined();
    const g = lowerToEbpf(grown, { ...opts, nexthopSlots: slots });
    expect(slotOf(g, 'fd07:5::')).toBe(4);
    // (lowerDelta took `prev` over: against a second lowering of `b`.)
    const w = diffMap(policyOf(g), policyOf(lowerToEbpf(b, opts)));
    expect([w.added, w.replaced, w.delete.length]).toStrictEqual([0, 1, 0]); // fd07:5 only
    const shrunk = intent(items.filter((i) => i.key !== loc('fc00:0:3:8000::/49').key));
    expect(
      lowerDelta(lowerToEbpf(b, opts), diffIntents(b.items, shrunk.items), opts, sameRoute),
    ).toBeUndefined();
    // A locator turned into another action under the same key counts as one that went.
    const turned = intent([
      ...items.filter((i) => i.key !== loc('fc00:0:2::/48').key),
      entry(UNDERLAY, 'fc00:0:2::/48', { kind: 'unreachable' }),
    ]);
    expect(
      lowerDelta(lowerToEbpf(b, opts), diffIntents(b.items, turned.items), opts, sameRoute),
    ).toBeUndefined();
  });
});

describe('eBPF lowering: POL_BLOCKED on the entries of wl_in that overlap a denied destination', () => {
  const P = (p: string) => parsePrefix(p);
  /** One contains the other (or both are equal): the definition, bit by bit. */
  const naive = (a: { address: bigint; length: number }, b: { address: bigint; length: number }) => {
    const l = Math.min(a.length, b.length);
    const shift = BigInt(128 - l);
    return l === 0 || a.address >> shift === b.address >> shift;
  };

  it('overlaps: containing, contained and equal prefixes, IPv4 as ::ffff:a.b.c.d; not the disjoint ones; as the definition on random prefixes', () => {
    const denied = [P('fc00::/32'), P('2001:db8:12::1/128'), P('::ffff:198.18.1.1/128')];
    const b = new BlockedPrefixes(denied);
    for (const p of [
      '::/0',
      'fc00::/16',
      'fc00::/32',
      'fc00:0:2::/48',
      'fc00:0:2::d6:1/128',
      '2001:db8:12::/64',
      '2001:db8:12::1/128',
      '::ffff:198.18.1.0/120',
      '::ffff:0:0/96',
    ])
      expect(b.overlaps(P(p)), p).toBe(true);
    for (const p of [
      'fd07:2::/64',
      'fc01::/32',
      '2001:db8:12::2/128',
      '2001:db8:13::/64',
      '::ffff:198.18.2.0/120',
      '::ffff:198.18.1.2/127',
    ])
      expect(b.overlaps(P(p)), p).toBe(false);
    expect(new BlockedPrefixes([]).overlaps(P('::/0'))).toBe(false);
    // Random prefixes in a small space (a /120 of 256 addresses) so that overlaps happen often.
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const some = () => {
      const length = 120 + rnd(9);
      const address = (ip('2001:db8::') | BigInt(rnd(256))) & ~((1n << BigInt(128 - length)) - 1n);
      return { address, length };
    };
    let yes = 0;
    let no = 0;
    for (let round = 0; round < 50; round++) {
      const set = Array.from({ length: 1 + rnd(6) }, some);
      const bp = new BlockedPrefixes(set);
      for (let i = 0; i < 40; i++) {
        const p = some();
        const want = set.some((d) => naive(p, d));
        if (want) yes++;
        else no++;
        expect(
          bp.overlaps(p),
          `${p.address.toString(16)}/${p.length} in ${JSON.stringify(set.map((d) => `${d.address.toString(16)}/${d.length}`))}`,
        ).toBe(want);
      }
    }
    // Both answers were asked for often (the check is not of one answer only).
    expect(Math.min(yes, no)).toBeGreaterThan(200);
  });

  const nfLink: Attachment = {
    kind: 'attachment',
    key: attachmentKey('nf0'),
    link: 'nf0',
    mtu: 1500,
    tenant: 'blue',
    ingress: nfReturn,
  };
  const items = [
    ...base,
    nfLink,
    entry(egress, '2001:db8:12::/64', { kind: 'encap', mode: 'encap', segments: segs }), // holds a host address
    entry(egress, 'fc00:0:9::/48', { kind: 'unreachable' }), // inside the SID block
    entry(nfReturn, 'fd07:2::/64', { kind: 'encap', mode: 'encap', segments: segs }),
    entry(nfReturn, '::/0', { kind: 'unreachable' }),
    entry(forward, '::/0', { kind: 'encap', mode: 'encap', segments: segs }), // ul_in's: never flagged
    entry(delivery, 'fd07:8::/64', { kind: 'encap', mode: 'encap', segments: segs }), // ul_in's too
  ];
  /** Policy key (hex) -> whether its value has POL_BLOCKED. */
  const flags = (st: EbpfState) =>
    new Map([...policyOf(st).values()].map((e) => [hex(e.key), (e.value[2]! & POL_BLOCKED) !== 0]));
  /** What the flags must be: an egress or return entry whose prefix overlaps one of `denied`. */
  const expected = (its: IntentItem[], denied: { address: bigint; length: number }[]) => {
    const st = lowerToEbpf(intent(its), opts);
    const out = new Map<string, boolean>();
    for (const i of its) {
      if (i.kind !== 'entry' || i.action.kind === 'locator') continue;
      const s = i.scope;
      let key: Uint8Array;
      if (s.kind === 'egress') key = policyKey(7, ipv6ToBytes(i.prefix.address), i.prefix.length);
      else if (s.kind === 'return')
        key = policyKey(5, ipv6ToBytes(i.prefix.address), i.prefix.length, 'return');
      else if (s.kind === 'forward')
        key = policyKey(7, ipv6ToBytes(i.prefix.address), i.prefix.length, 'forward');
      else if (s.kind === 'delivery')
        key = policyKey(7, ipv6ToBytes(i.prefix.address), i.prefix.length, 'delivery');
      else continue;
      if (!policyOf(st).has(stateKey(key))) continue; // the table's (delivery unreachable)
      out.set(
        hex(key),
        (s.kind === 'egress' || s.kind === 'return') && denied.some((d) => naive(i.prefix, d)),
      );
    }
    return out;
  };

  it('set exactly on the overlapping egress and return entries (any mode), never on forward or delivery ones', () => {
    const st = lowerToEbpf(intent(items), opts);
    const denied = attachment.restrict!.denyDestinations!;
    const got = flags(st);
    expect(got).toStrictEqual(expected(items, [...denied]));
    // Both ways, and the ones that must stay clear (the common path: no sm_blocked lookup).
    const k = (p: string, l: number) => hex(policyKey(7, ipv6ToBytes(ip(p)), l));
    expect(got.get(k('::', 0))).toBe(true);
    expect(got.get(k('2001:db8:12::', 64))).toBe(true);
    expect(got.get(k('fc00:0:9::', 48))).toBe(true);
    expect(got.get(k('fd07:2::', 64))).toBe(false);
    expect(got.get(k('fd07:1::10', 128))).toBe(false);
    expect(got.get(hex(policyKey(5, ipv6ToBytes(ip('::')), 0, 'return')))).toBe(true);
    expect(got.get(hex(policyKey(7, ipv6ToBytes(ip('::')), 0, 'forward')))).toBe(false);
    expect([...got.values()].filter(Boolean).length).toBe(4);
  });

  it('a change of the denied destinations (an attachment in the delta: the whole lowering) rewrites exactly the entries it overlaps; back again', () => {
    const hostAddr = P('fd07:2::1/128'); // a new host address inside fd07:2::/64
    const more: Attachment = {
      ...attachment,
      restrict: {
        ...attachment.restrict!,
        denyDestinations: [...attachment.restrict!.denyDestinations!, hostAddr],
      },
    };
    const grown = items.map((i) => (i === attachment ? more : i));
    const b = intent(items);
    const a = intent(grown);
    expect(lowerDelta(lowerToEbpf(b, opts), diffIntents(b.items, a.items), opts, sameRoute)).toBeUndefined();
    const before = lowerToEbpf(b, opts);
    const after = lowerToEbpf(a, opts);
    expect(flags(after)).toStrictEqual(expected(grown, [...more.restrict!.denyDestinations!]));
    const w = diffMap(policyOf(after), policyOf(before));
    // fd07:2::/64 of the egress and of the return key space; ::/0s were flagged already.
    expect([w.added, w.replaced, w.delete.length]).toStrictEqual([0, 2, 0]);
    expect(w.put.map((e) => hex(e.key)).sort()).toStrictEqual(
      [
        hex(policyKey(7, ipv6ToBytes(ip('fd07:2::')), 64)),
        hex(policyKey(5, ipv6ToBytes(ip('fd07:2::')), 64, 'return')),
      ].sort(),
    );
    for (const e of w.put) expect(e.value[2]! & POL_BLOCKED).toBe(POL_BLOCKED);
    expect(diffMap(after.maps.get(MAP.blocked)!, before.maps.get(MAP.blocked)!).added).toBe(1);
    // Back: the flag goes from the same two entries.
    const back = diffMap(policyOf(lowerToEbpf(b, opts)), policyOf(after));
    expect([back.added, back.replaced, back.delete.length]).toStrictEqual([0, 2, 0]);
    for (const e of back.put) expect(e.value[2]! & POL_BLOCKED).toBe(0);
  });

  it('a delta (no attachment in it) flags its new entries against the blocked set it had: equal to the whole lowering', () => {
    const more: Attachment = {
      ...attachment,
      restrict: { ...attachment.restrict!, denyDestinations: [P('fd07:9::5/128'), P('fc00::/32')] },
    };
    const b = items.map((i) => (i === attachment ? more : i));
    const a = [
      ...b.filter((i) => i.key !== entryKey(egress, P('fd07:2::/64'))),
      entry(egress, 'fd07:9::/64', { kind: 'encap', mode: 'encap', segments: segs }), // added, overlaps
      entry(egress, 'fd07:a::/64', { kind: 'encap', mode: 'encap', segments: segs }), // added, clear
      entry(egress, 'fd07:2::/64', { kind: 'unreachable' }), // changed, clear
      entry(egress, 'fd07:9:0:0:8000::/65', { kind: 'unreachable' }), // added, clear (the other half)
    ];
    const bi = intent(b);
    const ai = intent(a);
    const d = lowerDelta(lowerToEbpf(bi, opts), diffIntents(bi.items, ai.items), opts, sameRoute)!;
    expect(d).toBeDefined();
    const full = lowerToEbpf(ai, opts);
    for (const m of OWNED_MAPS) expect(hexes(d.state.maps.get(m))).toStrictEqual(hexes(full.maps.get(m)));
    const got = flags(d.state);
    expect(got).toStrictEqual(expected(a, [...more.restrict!.denyDestinations!]));
    expect(got.get(hex(policyKey(7, ipv6ToBytes(ip('fd07:9::')), 64)))).toBe(true);
    expect(got.get(hex(policyKey(7, ipv6ToBytes(ip('fd07:a::')), 64)))).toBe(false);
    expect(got.get(hex(policyKey(7, ipv6ToBytes(ip('fd07:9:0:0:8000::')), 65)))).toBe(false);
    expect(got.get(hex(policyKey(7, ipv6ToBytes(ip('fd07:2::')), 64)))).toBe(false);
  });
});

describe('counter slots of the local SIDs (sm_sid_stats by slot)', () => {
  const slotOf = (st: EbpfState, a: string) =>
    st.maps.get(MAP.sids)!.get(stateKey(sidKey(ip(a))))!.value[2]! |
    (st.maps.get(MAP.sids)!.get(stateKey(sidKey(ip(a))))!.value[3]! << 8);
  const dt6 = (a: string) => sid(a, 'End.DT6', { tenant: 'blue', lookup: delivery });
  const a = sid('fc00:0:1::e', 'End');
  const b = dt6('fc00:0:1::d6:1');
  const c = dt6('fc00:0:1::d6:2');
  const d = dt6('fc00:0:1::d6:3');
  const next = (st: EbpfState, from: IntentItem[], to: IntentItem[]) => {
    const step = lowerDelta(st, diffIntents(intent(from).items, intent(to).items), opts, sameRoute);
    expect(step).toBeDefined();
    return step!;
  };

  it('one stable slot per SID across deltas; a freed slot waits one step, then goes to a new SID, listed to be zeroed', () => {
    const s0 = lowerToEbpf(intent([a, b, c]), opts);
    expect([
      slotOf(s0, 'fc00:0:1::e'),
      slotOf(s0, 'fc00:0:1::d6:1'),
      slotOf(s0, 'fc00:0:1::d6:2'),
    ]).toStrictEqual([1, 2, 3]);
    expect(s0.freshSidSlots).toStrictEqual([1, 2, 3]);
    // b goes and d comes in one step: d does not take b's slot (b's entry, deleted last, counts into it).
    const s1 = next(s0, [a, b, c], [a, c, d]);
    expect(s1.state.freshSidSlots).toStrictEqual([4]);
    expect(slotOf(s1.state, 'fc00:0:1::d6:3')).toBe(4);
    expect(s1.maps.get(MAP.sids)!.put.map((e) => hex(e.key))).toStrictEqual([
      hex(sidKey(ip('fc00:0:1::d6:3'))),
    ]);
    // A SID whose item changes keeps its slot (and its counts); the others are not rewritten.
    const a2 = sid('fc00:0:1::e', 'End.X', { nextHop: ip('2001:db8:12::3') });
    const s2 = next(s1.state, [a, c, d], [a2, c, d]);
    expect(s2.state.freshSidSlots).toStrictEqual([]);
    expect(slotOf(s2.state, 'fc00:0:1::e')).toBe(1);
    expect(s2.maps.get(MAP.sids)!.replaced).toBe(1);
    // Later, b (back, or any new SID) takes the lowest free slot, 2, listed fresh: the backend zeroes it.
    const s3 = next(s2.state, [a2, c, d], [a2, c, d, b]);
    expect(s3.state.freshSidSlots).toStrictEqual([2]);
    expect(slotOf(s3.state, 'fc00:0:1::d6:1')).toBe(2);
    expect([slotOf(s3.state, 'fc00:0:1::d6:2'), slotOf(s3.state, 'fc00:0:1::d6:3')]).toStrictEqual([3, 4]);
  });

  it('adoption after a restart: the slots read back from the map give the same values (no entry rewritten, none zeroed)', () => {
    const first = lowerToEbpf(intent([a, b, c]), opts);
    const s1 = next(first, [a, b, c], [a, c, d]); // slots with a gap: a 1, c 3, d 4
    const pinned = [...s1.state.maps.get(MAP.sids)!.values()].map(
      (e) => [e.key, e.value] as [Uint8Array, Uint8Array],
    );
    const adopted = lowerToEbpf(intent([a, c, d]), { ...opts, sidSlots: sidSlotsOfMap(pinned) });
    expect(adopted.freshSidSlots).toStrictEqual([]);
    const w = diffMap(adopted.maps.get(MAP.sids)!, new Map(pinned.map(([k, v]) => [stateKey(k), v])));
    expect([w.put.length, w.delete.length]).toStrictEqual([0, 0]);
    // Control: without the slots (a fresh lowering) the same intent numbers them anew, and rewrites.
    const fresh = lowerToEbpf(intent([a, c, d]), opts);
    expect(
      diffMap(fresh.maps.get(MAP.sids)!, new Map(pinned.map(([k, v]) => [stateKey(k), v]))).replaced,
    ).toBe(2);
    // An older agent's entries (slot 0) or a slot named twice: no slot adopted, a fresh one given.
    const old = pinned.map(
      ([k, v]) => [k, Uint8Array.from(v, (x, i) => (i === 2 || i === 3 ? 0 : x))] as [Uint8Array, Uint8Array],
    );
    expect(sidSlotsOfMap(old).size).toBe(0);
    const twice = pinned.map(
      ([k, v]) =>
        [k, Uint8Array.from(v, (x, i) => (i === 2 ? 7 : i === 3 ? 0 : x))] as [Uint8Array, Uint8Array],
    );
    expect(sidSlotsOfMap(twice).size).toBe(1);
  });
});
