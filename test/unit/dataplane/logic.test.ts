import { describe, expect, it } from 'vitest';
import { ROUTE_PROTOCOL, TENANT_TABLE_BASE } from '../../../src/dataplane/constants.ts';
import { DataplaneInputError, NetlinkError, VrfUnsupportedError } from '../../../src/dataplane/errors.ts';
import { buildGetFamily, buildSetTunsrc } from '../../../src/dataplane/genl-seg6.ts';
import {
  mssFor,
  nftIsolationRuleset,
  nftMssClampRuleset,
  parseNftCounters,
  tenantUnreachable,
  workloadMtu,
} from '../../../src/dataplane/isolation.ts';
import { fromWireError, toWireError } from '../../../src/dataplane/netns.ts';
import { planReconcile } from '../../../src/dataplane/reconcile.ts';
import type { Route } from '../../../src/dataplane/route.ts';
import { hostSysctls, sysctlPath, workloadSysctls } from '../../../src/dataplane/sysctl.ts';
import { validateRoute } from '../../../src/dataplane/validate.ts';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { GOLDEN_GENL } from './iproute2-golden.ts';
import { kr } from './kernel-route.ts';

const ip = parseIpv6;
const ctx = { maxSegments: 4, vrf: false };

describe('reconcile plan', () => {
  const encap = (s: string) => ({ type: 'seg6' as const, mode: 'encap' as const, segments: [ip(s)] });
  const r1: Route = {
    dst: parsePrefix('2001:db8:1::/64'),
    table: 10001,
    oif: 2,
    encap: encap('fc00:0:1::d6'),
  };
  const r2: Route = {
    dst: parsePrefix('2001:db8:2::/64'),
    table: 10001,
    oif: 2,
    encap: encap('fc00:0:2::d6'),
  };
  const r3: Route = {
    dst: parsePrefix('2001:db8:3::/64'),
    table: 10001,
    oif: 2,
    encap: encap('fc00:0:3::d6'),
  };

  it('adds what is missing, replaces what differs, deletes only our stale routes', () => {
    const foreign = kr({ dst: parsePrefix('2001:db8:9::/64'), table: 10001, oif: 2 }, 4);
    const kernel = {
      routes: [
        kr(r1),
        kr({ ...r2, encap: encap('fc00:0:9::d6') }),
        kr({ dst: parsePrefix('2001:db8:8::/64'), table: 10001 }),
        foreign,
      ],
      rules: [],
      nexthops: [],
    };
    const plan = planReconcile({ routes: [r1, r2, r3] }, kernel);
    expect(plan.routes.add).toEqual([r3]);
    expect(plan.routes.replace).toEqual([r2]);
    expect(plan.routes.delete.map((r) => r.dst)).toEqual([parsePrefix('2001:db8:8::/64')]);
    expect(plan.unchanged).toBe(1);
    expect(plan.conflicts).toEqual([]);
  });

  it('a restart with the same desired state writes nothing', () => {
    const plan = planReconcile({ routes: [r1, r2] }, { routes: [kr(r1), kr(r2)], rules: [], nexthops: [] });
    expect([plan.routes.add, plan.routes.replace, plan.routes.delete]).toEqual([[], [], []]);
    expect(plan.unchanged).toBe(2);
  });

  it('never replaces a route held by another protocol: reports a conflict', () => {
    const plan = planReconcile({ routes: [r1] }, { routes: [kr(r1, 4)], rules: [], nexthops: [] });
    expect(plan.routes.replace).toEqual([]);
    expect(plan.routes.delete).toEqual([]);
    expect(plan.conflicts[0]!.reason).toContain('protocol 4');
  });

  it('leaves kinds that are not in the desired state alone', () => {
    const plan = planReconcile(
      { routes: [] },
      {
        routes: [],
        rules: [{ priority: 10000, table: 10001, action: 'lookup', protocol: ROUTE_PROTOCOL }],
        nexthops: [],
      },
    );
    expect(plan.rules.delete).toEqual([]);
  });

  it('rejects duplicates in the desired state', () => {
    expect(() => planReconcile({ routes: [r1, r1] }, { routes: [], rules: [], nexthops: [] })).toThrow(
      DataplaneInputError,
    );
  });
});

describe('validation (nothing is sent for a bad object)', () => {
  const base = { dst: parsePrefix('fc00:0:1::d6/128'), table: 254 };
  it('invalid SIDs', () => {
    for (const bad of [0n, 1n, ip('ff02::1'), ip('fe80::1'), 1n << 128n]) {
      expect(() =>
        validateRoute(
          {
            dst: parsePrefix('2001:db8::/64'),
            table: 254,
            encap: { type: 'seg6', mode: 'encap', segments: [bad] },
          },
          ctx,
        ),
      ).toThrow(DataplaneInputError);
    }
    expect(() =>
      validateRoute(
        { dst: parsePrefix('ff02::/128'), table: 254, encap: { type: 'seg6local', action: 'End' } },
        ctx,
      ),
    ).toThrow(/invalid SID/);
  });
  it('a segment list over the limit', () => {
    const segments = [1, 2, 3, 4, 5].map((i) => ip(`fc00:0:${i}::e`));
    expect(() =>
      validateRoute(
        { ...base, dst: parsePrefix('2001:db8::/64'), encap: { type: 'seg6', mode: 'encap', segments } },
        ctx,
      ),
    ).toThrow(/5 segments exceed the limit of 4/);
  });
  it('a missing table', () => {
    expect(() => validateRoute({ ...base, encap: { type: 'seg6local', action: 'End.DT6' } }, ctx)).toThrow(
      /needs a table/,
    );
    expect(() => validateRoute({ dst: parsePrefix('2001:db8::/64') } as Route, ctx)).toThrow(
      /a table is required/,
    );
  });
  it('DT4 / DT46 / vrftable without VRF devices name CONFIG_NET_VRF', () => {
    for (const action of ['End.DT4', 'End.DT46'] as const) {
      expect(() =>
        validateRoute({ ...base, encap: { type: 'seg6local', action, vrfTable: 100 } }, ctx),
      ).toThrow(VrfUnsupportedError);
      expect(() =>
        validateRoute({ ...base, encap: { type: 'seg6local', action, vrfTable: 100 } }, ctx),
      ).toThrow(/CONFIG_NET_VRF/);
    }
    expect(() =>
      validateRoute(
        { ...base, encap: { type: 'seg6local', action: 'End.DT46', vrfTable: 100 } },
        { ...ctx, vrf: true },
      ),
    ).not.toThrow();
  });
  it('inline cannot carry tenant traffic', () => {
    expect(() =>
      validateRoute(
        {
          dst: parsePrefix('2001:db8::/64'),
          table: TENANT_TABLE_BASE + 1,
          encap: { type: 'seg6', mode: 'inline', segments: [ip('fc00::e')] },
        },
        ctx,
      ),
    ).toThrow(/inline/);
  });
});

describe('isolation primitives', () => {
  it('MTU formula: 1500 - 40 - (8 + 16n) [- 40 with HMAC]', () => {
    expect(workloadMtu({ maxSegments: 2 })).toBe(1420); // measured: encap with 2 segments, pmtu 1420
    expect(workloadMtu({ maxSegments: 1 })).toBe(1436);
    expect(workloadMtu({ maxSegments: 2, hmac: true })).toBe(1380);
    expect(mssFor(1420)).toBe(1360);
    expect(() => workloadMtu({ maxSegments: 16, underlayMtu: 1500 })).toThrow(/below IPv6's 1280/);
  });
  it('tenant tables end in unreachable', () => {
    expect(tenantUnreachable(10001)).toMatchObject({ type: 'unreachable', table: 10001, dst: { length: 0 } });
  });
  it('nft ruleset: one ingress chain per workload veth, a named counter per reason', () => {
    const text = nftIsolationRuleset({
      workloads: [{ ifname: 'sm-w1', sources: [parsePrefix('2001:db8:5::1/128')] }],
      sidBlocks: [parsePrefix('fc00::/16')],
      hostAddresses: [ip('2001:db8:1::1')],
    });
    expect(text).toContain('type filter hook ingress device "sm-w1" priority -500; policy accept;');
    expect(text).toContain(
      'ip6 saddr != { 2001:db8:5::1/128, fe80::/10 } counter name "sm_w1_spoofed_source" drop',
    );
    expect(text).toContain('ip6 daddr fc00::/16 counter name "sm_w1_sid_block" drop');
    expect(text).toContain('ip6 daddr 2001:db8:1::1 counter name "sm_w1_host_address" drop');
    expect(text).toContain(
      'ip6 daddr fe80::/10 meta l4proto != ipv6-icmp counter name "sm_w1_host_address" drop',
    );
    expect(nftMssClampRuleset(['sm-w1'], 1360)).toContain('tcp option maxseg size set 1360');
    expect(
      parseNftCounters(
        '{"nftables":[{"metainfo":{}},{"counter":{"family":"netdev","name":"a_sid_block","table":"segmesh","handle":1,"packets":3,"bytes":312}}]}',
      ).get('a_sid_block'),
    ).toEqual({
      packets: 3,
      bytes: 312,
    });
  });
  it('host sysctls: accept_ra=2 before forwarding, seg6 on the underlay, HMAC only when asked', () => {
    const plan = hostSysctls({ underlay: ['eth0'], hmac: true });
    expect(plan.map(([k]) => k).indexOf('net.ipv6.conf.eth0.accept_ra')).toBeLessThan(
      plan.map(([k]) => k).indexOf('net.ipv6.conf.all.forwarding'),
    );
    expect(plan).toContainEqual(['net.ipv6.conf.eth0.seg6_require_hmac', '1']);
    expect(hostSysctls({ underlay: ['eth0'] }).some(([k]) => k.endsWith('seg6_require_hmac'))).toBe(false);
    expect(workloadSysctls('wa1')).toEqual([['net.ipv6.conf.wa1.seg6_enabled', '0']]);
  });
  it('sysctl paths keep dots in interface names', () => {
    expect(sysctlPath('net.ipv6.conf.eth0.100.seg6_enabled')).toBe(
      '/proc/sys/net/ipv6/conf/eth0.100/seg6_enabled',
    );
    expect(sysctlPath('net.ipv6.fib_multipath_hash_policy')).toBe(
      '/proc/sys/net/ipv6/fib_multipath_hash_policy',
    );
  });
});

describe('generic netlink SEG6 against iproute2 bytes', () => {
  const noSeq = (b: Buffer) => {
    const c = Buffer.from(b);
    c.writeUInt32LE(0, 8);
    c.writeUInt16LE(c.readUInt16LE(6) & ~0x4, 6);
    return c.toString('hex');
  };
  it('CTRL_CMD_GETFAMILY "SEG6"', () => {
    const ours = buildGetFamily('SEG6');
    const golden = Buffer.alloc(32);
    Buffer.from(GOLDEN_GENL.getFamily, 'hex').copy(golden);
    expect(noSeq(ours)).toBe(noSeq(golden));
  });
  it('SEG6_CMD_SET_TUNSRC', () => {
    expect(noSeq(buildSetTunsrc(0x1d, ip('fc00:0:2::1')))).toBe(
      noSeq(Buffer.from(GOLDEN_GENL.setTunsrc, 'hex')),
    );
  });
});

describe('errors across the worker boundary', () => {
  it('keep class, errno and object', () => {
    const e = fromWireError(toWireError(new NetlinkError('add route', '2001:db8::/64 table 254', 17)));
    expect(e).toBeInstanceOf(NetlinkError);
    expect(e).toMatchObject({ code: 'EEXIST', object: '2001:db8::/64 table 254', errno: 17 });
  });
});

describe('formatting (no I/O, iproute2-like)', () => {
  it('routes and encapsulations', async () => {
    const { formatRoute } = await import('../../../src/dataplane/route.ts');
    expect(
      formatRoute({
        dst: parsePrefix('2001:db8:a:2::/64'),
        table: 10001,
        oif: 2,
        encap: {
          type: 'seg6',
          mode: 'encap.red',
          segments: [ip('fc00:0:3::e'), ip('fc00:0:2::a6')],
          hmacKeyId: 7,
        },
      }),
    ).toBe(
      '2001:db8:a:2::/64 encap seg6 mode encap.red segs 2 [ fc00:0:3::e fc00:0:2::a6 ] hmac 7 dev #2 table 10001 proto 203',
    );
    expect(
      formatRoute({
        dst: parsePrefix('fc00:0:2::a6/128'),
        table: 254,
        encap: { type: 'seg6local', action: 'End.DT6', table: 10001, counters: true },
      }),
    ).toBe('fc00:0:2::a6/128 encap seg6local action End.DT6 table 10001 count table 254 proto 203');
    expect(formatRoute(tenantUnreachable(10001))).toBe(
      'unreachable default table 10001 metric 4294967295 proto 203',
    );
  });
});
