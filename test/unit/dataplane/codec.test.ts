import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildAddressRequest, decodeAddress } from '../../../src/dataplane/address.ts';
import type { Encap, Seg6Encap, Seg6LocalEncap } from '../../../src/dataplane/encap.ts';
import {
  decodeSeg6,
  decodeSeg6Local,
  SEG6_MODES,
  writeSeg6,
  writeSeg6Local,
} from '../../../src/dataplane/encap.ts';
import { buildLinkSet, buildVethAdd } from '../../../src/dataplane/link.ts';
import { buildNexthopRequest, decodeNexthop, type Nexthop } from '../../../src/dataplane/nexthop.ts';
import { forEachAttr, NlWriter, splitMessages } from '../../../src/dataplane/nlattr.ts';
import {
  buildRouteRequest,
  decodeRoute,
  type Route,
  routeSatisfies,
  type WriteOp,
} from '../../../src/dataplane/route.ts';
import { buildRuleRequest, decodeRule, type Rule } from '../../../src/dataplane/rule.ts';
import { NLA_F_NESTED, NLM_F_ACK } from '../../../src/dataplane/uapi/netlink.ts';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { GOLDEN, GOLDEN_DUMP } from './iproute2-golden.ts';

const ip = parseIpv6;
const G0 = 3;

/** Canonical form: header type/flags (ACK ignored), fixed family header, attributes sorted by type. */
function canonical(msg: Buffer, familyHeaderLen: number): unknown {
  const attrs = (b: Buffer, start: number, end: number): unknown[] => {
    const out: { type: number; value: unknown }[] = [];
    let off = start;
    while (off + 4 <= end) {
      const len = b.readUInt16LE(off);
      const rawType = b.readUInt16LE(off + 2);
      const nested = (rawType & NLA_F_NESTED) !== 0;
      out.push({
        type: rawType,
        value: nested ? attrs(b, off + 4, off + len) : b.subarray(off + 4, off + len).toString('hex'),
      });
      off += (len + 3) & ~3;
    }
    return out.sort((x, y) => x.type - y.type);
  };
  return {
    type: msg.readUInt16LE(4),
    flags: msg.readUInt16LE(6) & ~NLM_F_ACK,
    len: msg.readUInt32LE(0),
    family: msg.subarray(16, 16 + familyHeaderLen).toString('hex'),
    attrs: attrs(msg, 16 + familyHeaderLen, msg.readUInt32LE(0)),
  };
}

function golden(name: keyof typeof GOLDEN): Buffer {
  return Buffer.from(GOLDEN[name].hex, 'hex');
}

function encodeRoute(op: WriteOp, r: Route): Buffer {
  const w = new NlWriter();
  buildRouteRequest(w, op, r);
  return w.take();
}

const msgOf = (b: Buffer) => splitMessages(b)[0]!;
const segs = (...s: string[]) => s.map(ip);
const P = 99; // the golden commands used `proto 99`

const ROUTE_CASES: [keyof typeof GOLDEN, WriteOp, Route][] = [
  [
    'encap2',
    'add',
    {
      dst: parsePrefix('2001:db8:200::1/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6', mode: 'encap', segments: segs('fc00:1::1', 'fc00:2::1') },
    },
  ],
  [
    'encapRed2',
    'add',
    {
      dst: parsePrefix('2001:db8:200::2/128'),
      table: 100,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6', mode: 'encap.red', segments: segs('fc00:1::1', 'fc00:2::1') },
    },
  ],
  [
    'inline1',
    'add',
    {
      dst: parsePrefix('2001:db8:200::3/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6', mode: 'inline', segments: segs('fc00:1::1') },
    },
  ],
  [
    'encapHmac',
    'add',
    {
      dst: parsePrefix('2001:db8:200::4/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6', mode: 'encap', segments: segs('fc00:1::1', 'fc00:2::1'), hmacKeyId: 7 },
    },
  ],
  [
    'replaceEncap3',
    'replace',
    {
      dst: parsePrefix('2001:db8:200::1/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6', mode: 'encap', segments: segs('fc00:1::1', 'fc00:3::1', 'fc00:2::1') },
    },
  ],
  [
    'end',
    'add',
    {
      dst: parsePrefix('fc00:6::1/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6local', action: 'End' },
    },
  ],
  [
    'endCount',
    'add',
    {
      dst: parsePrefix('fc00:6::11/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6local', action: 'End', counters: true },
    },
  ],
  [
    'endX',
    'add',
    {
      dst: parsePrefix('fc00:6::2/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6local', action: 'End.X', nh6: ip('fc00:0:2::2') },
    },
  ],
  [
    'endDT6',
    'add',
    {
      dst: parsePrefix('fc00:6::3/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6local', action: 'End.DT6', table: 100 },
    },
  ],
  [
    'endDT6Count',
    'add',
    {
      dst: parsePrefix('fc00:6::13/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6local', action: 'End.DT6', table: 100, counters: true },
    },
  ],
  [
    'endDT6Vrf',
    'add',
    {
      dst: parsePrefix('fc00:6::4/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6local', action: 'End.DT6', vrfTable: 100 },
    },
  ],
  [
    'endDT4Vrf',
    'add',
    {
      dst: parsePrefix('fc00:6::5/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6local', action: 'End.DT4', vrfTable: 100 },
    },
  ],
  [
    'endDT46Vrf',
    'add',
    {
      dst: parsePrefix('fc00:6::6/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6local', action: 'End.DT46', vrfTable: 100 },
    },
  ],
  [
    'endDX6',
    'add',
    {
      dst: parsePrefix('fc00:6::7/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6local', action: 'End.DX6', nh6: ip('fc00:0:2::2') },
    },
  ],
  [
    'endDX4',
    'add',
    {
      dst: parsePrefix('fc00:6::8/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6local', action: 'End.DX4', nh4: '198.18.0.2' },
    },
  ],
  [
    'endB6Encaps',
    'add',
    {
      dst: parsePrefix('fc00:6::9/128'),
      table: 254,
      protocol: P,
      oif: G0,
      encap: {
        type: 'seg6local',
        action: 'End.B6.Encaps',
        srh: { segments: segs('fc00:1::1', 'fc00:2::1') },
      },
    },
  ],
  [
    'unreachable',
    'add',
    { dst: parsePrefix('::/0'), table: 100, protocol: P, type: 'unreachable', metric: 4278198272 },
  ],
  ['routeNhid', 'add', { dst: parsePrefix('2001:db8:300::/48'), table: 100, protocol: P, nhid: 100 }],
  [
    'srcEncap',
    'add',
    {
      dst: parsePrefix('2001:db8:10::/64'),
      src: parsePrefix('2001:db8:20::/64'),
      table: 100,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6', mode: 'encap', segments: segs('fc00:1::1', 'fc00:2::1') },
    },
  ],
  [
    'srcEncapRed',
    'add',
    {
      dst: parsePrefix('2001:db8:10::/64'),
      src: parsePrefix('2001:db8:21::/64'),
      table: 100,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6', mode: 'encap.red', segments: segs('fc00:3::1') },
    },
  ],
  [
    'srcDeliver',
    'add',
    {
      dst: parsePrefix('2001:db8:10::5/128'),
      src: parsePrefix('2001:db8:20::7/128'),
      table: 100,
      protocol: P,
      oif: G0,
    },
  ],
  [
    'replaceSrcEncap',
    'replace',
    {
      dst: parsePrefix('2001:db8:10::5/128'),
      src: parsePrefix('2001:db8:20::7/128'),
      table: 100,
      protocol: P,
      oif: G0,
      encap: { type: 'seg6', mode: 'encap', segments: segs('fc00:1::1', 'fc00:2::1') },
    },
  ],
];

describe('routes against iproute2 bytes', () => {
  for (const [name, op, route] of ROUTE_CASES) {
    it(`${name}: encodes as \`${GOLDEN[name].command}\` and decodes back`, () => {
      expect(canonical(encodeRoute(op, route), 12)).toEqual(canonical(golden(name), 12));
      const decoded = decodeRoute(msgOf(golden(name)));
      expect(routeSatisfies(decoded, route)).toBe(true);
      if (route.encap) expect(decoded.encap).toEqual(route.encap);
    });
  }

  it('delete: same rtmsg as `ip -6 route del ... proto 99` (no encap, type unspec)', () => {
    type Canon = { type: number; flags: number; family: string; attrs: { type: number }[] };
    const ours = canonical(
      encodeRoute('delete', { dst: parsePrefix('2001:db8:200::1/128'), table: 254, protocol: P }),
      12,
    ) as Canon;
    const theirs = canonical(golden('delEncap'), 12) as Canon;
    // iproute2 adds RTA_OIF from `dev g0`; a delete by key does not need it.
    expect([ours.type, ours.flags, ours.family, ours.attrs]).toEqual([
      theirs.type,
      theirs.flags,
      theirs.family,
      theirs.attrs.filter((a) => a.type !== 4),
    ]);
  });

  it('delete of a source-specific route: exactly `ip -6 route del ... from ...` (the source is part of the key)', () => {
    const ours = encodeRoute('delete', {
      dst: parsePrefix('2001:db8:10::/64'),
      src: parsePrefix('2001:db8:20::/64'),
      table: 100,
      protocol: P,
    });
    expect(canonical(ours, 12)).toEqual(canonical(golden('delSrc'), 12));
  });

  it('decodes source-specific routes from a kernel dump (src_len + RTA_SRC, table, metric)', () => {
    const red = decodeRoute(msgOf(Buffer.from(GOLDEN_DUMP.srcEncapRed, 'hex')));
    expect(red).toEqual({
      dst: parsePrefix('2001:db8:10::/64'),
      src: parsePrefix('2001:db8:21::/64'),
      table: 100,
      type: 'unicast',
      protocol: P,
      metric: 1024,
      scope: 0,
      flags: 0,
      oif: G0,
      encap: { type: 'seg6', mode: 'encap.red', segments: segs('fc00:3::1') },
    });
    const host = decodeRoute(msgOf(Buffer.from(GOLDEN_DUMP.srcEncapHost, 'hex')));
    expect(host.dst).toEqual(parsePrefix('2001:db8:10::5/128'));
    expect(host.src).toEqual(parsePrefix('2001:db8:20::7/128'));
    expect(host.encap).toEqual({ type: 'seg6', mode: 'encap', segments: segs('fc00:1::1', 'fc00:2::1') });
    // A plain route decodes without `src` (src_len 0), so it never equals a source-specific one.
    expect(decodeRoute(msgOf(golden('encapRed2'))).src).toBeUndefined();
    expect(routeSatisfies(host, { ...host, src: parsePrefix('2001:db8:20::8/128') })).toBe(false);
    expect(routeSatisfies(host, { ...host, src: undefined })).toBe(false);
  });

  it('decodes SEG6_LOCAL_COUNTERS values', () => {
    const w = new NlWriter();
    const c = w.beginAttr(10, true);
    w.attrU64(2, 5n);
    w.attrU64(3, 640n);
    w.attrU64(4, 1n);
    w.endAttr(c);
    const payload = Buffer.concat([Buffer.from('0800010007000000', 'hex'), w.take()]);
    expect(decodeSeg6Local(payload)).toEqual({
      encap: { type: 'seg6local', action: 'End.DT6', counters: true },
      counters: { packets: 5n, bytes: 640n, errors: 1n },
    });
  });
});

describe('rules, nexthops, links, addresses against iproute2 bytes', () => {
  const rules: [keyof typeof GOLDEN, Rule][] = [
    ['ruleIif', { priority: 1000, iif: 'g1', table: 100, protocol: P }],
    ['ruleTo', { priority: 1001, dst: parsePrefix('2001:db8:5::/48'), table: 1000, protocol: P }],
  ];
  for (const [name, rule] of rules) {
    it(`${name}: ${GOLDEN[name].command}`, () => {
      const w = new NlWriter();
      buildRuleRequest(w, 'add', rule);
      expect(canonical(w.take(), 12)).toEqual(canonical(golden(name), 12));
      expect(decodeRule(msgOf(golden(name)))).toEqual({ action: 'lookup', ...rule });
    });
  }

  const nexthops: [keyof typeof GOLDEN, Nexthop][] = [
    [
      'nhEncap',
      {
        id: 10,
        protocol: P,
        oif: G0,
        encap: { type: 'seg6', mode: 'encap', segments: segs('fc00:1::1', 'fc00:2::1') },
      },
    ],
    ['nhVia', { id: 11, protocol: P, oif: G0, gateway: ip('fc00:0:2::2') }],
    [
      'nhGroup',
      {
        id: 100,
        protocol: P,
        group: [
          { id: 10, weight: 1 },
          { id: 11, weight: 2 },
        ],
        groupType: 'mpath',
      },
    ],
    [
      'nhResilient',
      {
        id: 101,
        protocol: P,
        group: [
          { id: 10, weight: 1 },
          { id: 11, weight: 1 },
        ],
        groupType: 'resilient',
        buckets: 32,
      },
    ],
  ];
  for (const [name, nh] of nexthops) {
    it(`${name}: ${GOLDEN[name].command}`, () => {
      const w = new NlWriter();
      buildNexthopRequest(w, 'add', nh);
      expect(canonical(w.take(), 8)).toEqual(canonical(golden(name), 8));
      expect(decodeNexthop(msgOf(golden(name)))).toEqual(nh);
    });
  }

  it('vethAdd: ip link add gw0 type veth peer name gw1', () => {
    const w = new NlWriter();
    buildVethAdd(w, { name: 'gw0', peerName: 'gw1' });
    expect(canonical(w.take(), 16)).toEqual(canonical(golden('vethAdd'), 16));
  });
  it('linkMtu / linkUp: ip link set dev g2 mtu 1420 / up', () => {
    const w = new NlWriter();
    buildLinkSet(w, 5, { mtu: 1420 });
    expect(canonical(w.take(), 16)).toEqual(canonical(golden('linkMtu'), 16));
    w.reset();
    buildLinkSet(w, 5, { up: true });
    expect(canonical(w.take(), 16)).toEqual(canonical(golden('linkUp'), 16));
  });
  it('addrAdd: ip -6 addr add fc00:0:4::1/64 dev g2 nodad', () => {
    const w = new NlWriter();
    const a = { index: 5, address: { address: ip('fc00:0:4::1'), length: 64 }, nodad: true };
    buildAddressRequest(w, 'add', a);
    expect(canonical(w.take(), 8)).toEqual(canonical(golden('addrAdd'), 8));
    expect(decodeAddress(msgOf(golden('addrAdd')))).toMatchObject(a);
  });
});

// ---- property tests: decode(encode(x)) == x ----

const arbAddr = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
const arbSegments = fc.array(arbAddr, { minLength: 1, maxLength: 12 });
const arbSeg6: fc.Arbitrary<Seg6Encap> = fc
  .record({
    mode: fc.constantFrom(...SEG6_MODES),
    segments: arbSegments,
    hmac: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
  })
  .map(({ mode, segments, hmac }) =>
    hmac === undefined ? { type: 'seg6', mode, segments } : { type: 'seg6', mode, segments, hmacKeyId: hmac },
  );
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const arbSeg6Local: fc.Arbitrary<Seg6LocalEncap> = fc.oneof(
  fc.constant<Seg6LocalEncap>({ type: 'seg6local', action: 'End' }),
  fc.record({ type: fc.constant('seg6local' as const), action: fc.constant('End.X' as const), nh6: arbAddr }),
  fc.record({
    type: fc.constant('seg6local' as const),
    action: fc.constant('End.DT6' as const),
    table: u32,
    counters: fc.boolean(),
  }),
  fc.record({
    type: fc.constant('seg6local' as const),
    action: fc.constantFrom('End.DT4' as const, 'End.DT46' as const),
    vrfTable: u32,
  }),
  fc.record({
    type: fc.constant('seg6local' as const),
    action: fc.constant('End.DX6' as const),
    nh6: arbAddr,
    oif: fc.option(u32, { nil: undefined }),
  }),
  fc.record({
    type: fc.constant('seg6local' as const),
    action: fc.constant('End.DX4' as const),
    nh4: fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join('.')),
  }),
  fc.record({
    type: fc.constant('seg6local' as const),
    action: fc.constant('End.B6.Encaps' as const),
    srh: fc.record({ segments: arbSegments }),
  }),
);

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

describe('round trips', () => {
  it('seg6 encap', () => {
    fc.assert(
      fc.property(arbSeg6, (e) => {
        const w = new NlWriter();
        writeSeg6(w, e);
        expect(decodeSeg6(w.take())).toEqual(e);
      }),
    );
  });
  it('seg6local encap', () => {
    fc.assert(
      fc.property(arbSeg6Local, (e) => {
        const w = new NlWriter();
        writeSeg6Local(w, e);
        const clean = stripUndefined(e);
        const expected = clean.counters === false ? (({ counters: _c, ...rest }) => rest)(clean) : clean;
        expect(decodeSeg6Local(w.take()).encap).toEqual(expected);
      }),
    );
  });
  it('route', () => {
    const arbPrefix = (min: number) =>
      fc.integer({ min, max: 128 }).chain((length) =>
        arbAddr.map((a) => ({
          address: length === 0 ? 0n : (a >> BigInt(128 - length)) << BigInt(128 - length),
          length,
        })),
      );
    const arbRoute: fc.Arbitrary<Route> = fc.record(
      {
        dst: arbPrefix(0),
        src: arbPrefix(1),
        table: fc.integer({ min: 1, max: 0xffffffff }),
        protocol: fc.integer({ min: 5, max: 255 }),
        metric: fc.integer({ min: 0, max: 0xffffffff }),
        oif: fc.integer({ min: 1, max: 0xffff }),
        encap: fc.oneof(arbSeg6 as fc.Arbitrary<Encap>, arbSeg6Local as fc.Arbitrary<Encap>),
      },
      { requiredKeys: ['dst', 'table', 'protocol', 'metric', 'oif', 'encap'] },
    );
    fc.assert(
      fc.property(arbRoute, fc.constantFrom<WriteOp>('add', 'replace'), (r, op) => {
        const d = decodeRoute(msgOf(encodeRoute(op, r)));
        expect(routeSatisfies(d, r)).toBe(true);
        expect(d.src).toEqual(r.src);
      }),
    );
  });
  it('attribute walker rejects lengths that run past the end', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const b = Buffer.from(bytes);
        try {
          forEachAttr(b, 0, b.length, () => {});
        } catch (e) {
          expect((e as Error).name).toBe('NetlinkDecodeError');
        }
      }),
    );
  });
});
