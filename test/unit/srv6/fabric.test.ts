import { describe, expect, it } from 'vitest';
import { formatIpv6, formatPrefix, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { allocateHostSids, allocationMemory } from '../../../src/srv6/allocator.ts';
import { unsupportedReason } from '../../../src/srv6/behavior.ts';
import { buildFabricView, FabricError, type FabricInput, workloadMtu } from '../../../src/srv6/fabric.ts';
import { allocateAddress, preferredAddress } from '../../../src/srv6/ipam.ts';
import { computeHostPlan, type EncapRoute } from '../../../src/srv6/pathcompute.ts';
import { F3216 } from '../../../src/srv6/sid.ts';

const base: FabricInput = {
  locatorBlock: parsePrefix('fc00:0::/32'),
  hosts: [
    { name: 'h1', underlay: parseIpv6('2001:db8:1::1') },
    { name: 'h2', underlay: parseIpv6('2001:db8:1::2') },
  ],
  tenants: [{ name: 'blue', id: 100, prefixes: [parsePrefix('2001:db8:b::/64')] }],
  workloads: [
    { id: 'web', tenant: 'blue', host: 'h1' },
    { id: 'db', tenant: 'blue', host: 'h2' },
  ],
};

describe('fabric validation', () => {
  it('rejects overlapping locators naming both hosts', () => {
    expect(() =>
      buildFabricView({
        ...base,
        locatorBlock: undefined,
        hosts: [
          { name: 'h1', underlay: parseIpv6('2001:db8:1::1'), locator: parsePrefix('fc00:0:1::/48') },
          { name: 'h2', underlay: parseIpv6('2001:db8:1::2'), locator: parsePrefix('fc00:0:1::/48') },
        ],
      }),
    ).toThrow(/locators overlap: host h2 has fc00:0:1::\/48, as has host h1; give each host its own locator/);
  });

  it('rejects a locator that does not match the SID structure', () => {
    expect(() =>
      buildFabricView({
        ...base,
        hosts: [{ name: 'h1', underlay: 1n, locator: parsePrefix('fc00:0:1::/64') }],
      }),
    ).toThrow(/makes locators \/48/);
  });

  it('rejects a chain longer than maxSegments', () => {
    const nfs = ['a', 'b', 'c', 'd'].map((n) => ({
      name: n,
      tenant: 'blue',
      host: 'h1',
      mode: 'sr-aware' as const,
    }));
    expect(() =>
      buildFabricView({
        ...base,
        networkFunctions: nfs,
        policies: [{ name: 'long', tenant: 'blue', via: ['a', 'b', 'c', 'd'] }],
      }),
    ).toThrow(/needs a segment list of 5 segments, more than maxSegments 4/);
  });

  it('rejects a workload outside its tenant prefix, in an unknown tenant, or twice', () => {
    expect(() =>
      buildFabricView({
        ...base,
        workloads: [{ id: 'x', tenant: 'blue', host: 'h1', address: parseIpv6('2001:db8:c::1') }],
      }),
    ).toThrow(/outside tenant blue's prefixes/);
    expect(() => buildFabricView({ ...base, workloads: [{ id: 'x', tenant: 'red', host: 'h1' }] })).toThrow(
      /unknown tenant red/,
    );
    expect(() =>
      buildFabricView({
        ...base,
        workloads: [
          { id: 'x', tenant: 'blue', host: 'h1' },
          { id: 'x', tenant: 'blue', host: 'h2' },
        ],
      }),
    ).toThrow(FabricError);
  });

  it('rejects an SR-unaware function twice in one chain', () => {
    expect(() =>
      buildFabricView({
        ...base,
        networkFunctions: [
          { name: 'fw', tenant: 'blue', host: 'h1', mode: 'sr-unaware', address: parseIpv6('fc00:99::1') },
        ],
        policies: [{ name: 'p', tenant: 'blue', via: ['fw', 'fw'] }],
      }),
    ).toThrow(/passes SR-unaware network function fw twice/);
  });

  it('refuses End.DT4/DT46 on a kernel without VRF devices, naming CONFIG_NET_VRF', () => {
    expect(unsupportedReason('End.DT46', { vrf: false, hmac: true })).toMatch(/CONFIG_NET_VRF/);
    expect(unsupportedReason('End.DT46', { vrf: true, hmac: true })).toBeUndefined();
    const view = buildFabricView(base);
    expect(view.hosts.get('h1')!.sids.tenantDt46.size).toBe(0);
    const ipv4 = { ...base, tenants: base.tenants.map((t) => ({ ...t, ipv4: true })) };
    expect(() => buildFabricView(ipv4)).toThrow(
      /IPv4 tenant blue cannot run on host h1: End.DT46 needs Linux VRF devices \(CONFIG_NET_VRF\)/,
    );
    const vrf = buildFabricView({
      ...base,
      hosts: base.hosts.map((h) => ({ ...h, capabilities: { vrf: true, hmac: true } })),
    });
    expect(vrf.hosts.get('h1')!.sids.tenantDt46.get('blue')!.behavior).toBe('End.DT46');
  });
});

describe('SIDs, locators and addresses', () => {
  it('derives F3216 locators inside the block and SIDs inside the locator', () => {
    const view = buildFabricView(base);
    for (const h of view.hosts.values()) {
      expect(formatPrefix(h.locator)).toMatch(/^fc00:0:[0-9a-f]+::\/48$/);
      expect(h.sids.end.behavior).toBe('End');
      const dt6 = h.sids.tenantDelivery.get('blue')!;
      expect(dt6.behavior).toBe('End.DT6');
      expect(dt6.sid >> 80n).toBe(h.locator.address >> 80n);
    }
  });

  it('keeps an existing SID when a new function collides with it', () => {
    const req = {
      locator: parsePrefix('fc00:0:1::/48'),
      structure: { ...F3216, functionLength: 8 }, // 16 slots: collisions guaranteed
      capabilities: { vrf: false, hmac: true },
      tenants: [],
    };
    const names = Array.from({ length: 10 }, (_, i) => `nf${i}`);
    const nf = (n: string) => ({ name: n, tenant: 't', mode: 'sr-aware' as const });
    const first = allocateHostSids({ ...req, networkFunctions: names.slice(0, 9).map(nf) });
    const second = allocateHostSids({
      ...req,
      networkFunctions: names.map(nf),
      previous: allocationMemory(first),
    });
    for (const [name, entry] of first.networkFunctions)
      expect(second.networkFunctions.get(name)!.sid).toBe(entry.sid);
    const all = [...second.networkFunctions.values()].map((e) => e.sid);
    expect(new Set(all).size).toBe(all.length);
  });

  it('gives an identity the same opaque address wherever it runs, and probes past a taken one', () => {
    const prefix = parsePrefix('2001:db8:b::/64');
    const a = preferredAddress(prefix, 'default/web-1');
    expect(allocateAddress(prefix, 'default/web-1', () => false)).toBe(a);
    expect(allocateAddress(prefix, 'default/web-1', (x) => x === a)).toBe(a + 1n);
    const onH1 = buildFabricView(base).workloads.get('web')!.address;
    const onH2 = buildFabricView({
      ...base,
      workloads: [{ id: 'web', tenant: 'blue', host: 'h2' }],
    }).workloads.get('web')!;
    expect(onH2.address).toBe(onH1);
    expect(onH2.derivedAddress).toBe(true);
  });

  it('sizes workload links for the longest segment list and HMAC', () => {
    expect(workloadMtu(1500, 2, false)).toBe(1420);
    expect(workloadMtu(1500, 4, false)).toBe(1388);
    expect(workloadMtu(1500, 4, true)).toBe(1348);
  });
});

describe('host plan', () => {
  it('encapsulates toward the remote host delivery SID with reduced encapsulation, and delivers locally', () => {
    const view = buildFabricView(base);
    const plan = computeHostPlan(view, 'h1');
    const db = view.workloads.get('db')!;
    const web = view.workloads.get('web')!;
    const routes = [...plan.objects.values()];
    const toDb = routes.find((o): o is EncapRoute => o.kind === 'encap' && o.prefix.address === db.address)!;
    expect(toDb.mode).toBe('encap.red');
    expect(toDb.segments.map(formatIpv6)).toEqual([
      formatIpv6(view.hosts.get('h2')!.sids.tenantDelivery.get('blue')!.sid),
    ]);
    expect(routes.filter((o) => o.kind === 'deliver' && o.prefix.address === web.address)).toHaveLength(2);
    expect(routes.find((o) => o.kind === 'link')).toMatchObject({
      link: web.link,
      mtu: 1388,
      ingress: { kind: 'egress', tenant: 'blue' },
    });
  });

  it('uses full encapsulation with the HMAC key when HMAC is on', () => {
    const view = buildFabricView({ ...base, hmacKeyId: 5 });
    const plan = computeHostPlan(view, 'h1');
    const encap = [...plan.objects.values()].filter((o): o is EncapRoute => o.kind === 'encap');
    expect(encap.length).toBeGreaterThan(0);
    for (const r of encap) expect(r).toMatchObject({ mode: 'encap', hmacKeyId: 5 });
  });

  it('redirects from the delivery table of the host a workload just left, and only there', () => {
    const moved = {
      ...base,
      workloads: [
        { id: 'web', tenant: 'blue', host: 'h2', formerHosts: ['h1'] },
        { id: 'db', tenant: 'blue', host: 'h2' },
      ],
    };
    const view = buildFabricView(moved);
    const web = view.workloads.get('web')!;
    const delivery = view.tenants.get('blue')!.scopes.delivery;
    const onH1 = [...computeHostPlan(view, 'h1').objects.values()].find(
      (o): o is EncapRoute => o.kind === 'encap' && o.scope === delivery && o.prefix.address === web.address,
    );
    expect(onH1?.segments).toEqual([view.hosts.get('h2')!.sids.tenantDelivery.get('blue')!.sid]);
    expect(onH1?.reason).toMatch(/redirect: web moved to h2/);
    const settled = buildFabricView({
      ...moved,
      workloads: moved.workloads.map((w) => ({ ...w, formerHosts: [] })),
    });
    const after = [...computeHostPlan(settled, 'h1').objects.values()].filter(
      (o) => 'scope' in o && o.scope.kind === 'delivery',
    );
    expect(after).toEqual([]);
  });
});
