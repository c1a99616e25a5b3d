/** fast-check generators of valid fabric descriptions, shared by the model's property tests. */
import fc from 'fast-check';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import type {
  FabricInput,
  NetworkFunctionInput,
  PolicyInput,
  WorkloadInput,
} from '../../../src/srv6/fabric.ts';

export interface FabricShape {
  hosts: number;
  tenants: number;
  workloads: Array<{ tenant: number; host: number; app: number }>;
  nfs: Array<{ tenant: number; host: number; unaware: boolean }>;
  policies: Array<{ tenant: number; via: number[]; fromApp: number | null; toApp: number | null }>;
  hmac: boolean;
}

export const fabricShape: fc.Arbitrary<FabricShape> = fc.record({
  hosts: fc.integer({ min: 2, max: 6 }),
  tenants: fc.integer({ min: 1, max: 3 }),
  workloads: fc.array(fc.record({ tenant: fc.nat(2), host: fc.nat(5), app: fc.nat(2) }), {
    minLength: 1,
    maxLength: 24,
  }),
  nfs: fc.array(fc.record({ tenant: fc.nat(2), host: fc.nat(5), unaware: fc.boolean() }), { maxLength: 4 }),
  policies: fc.array(
    fc.record({
      tenant: fc.nat(2),
      via: fc.array(fc.nat(3), { minLength: 1, maxLength: 3 }),
      fromApp: fc.option(fc.nat(2)),
      toApp: fc.option(fc.nat(2)),
    }),
    { maxLength: 3 },
  ),
  hmac: fc.boolean(),
});

/** Turns a shape into a valid description (references clamped to what exists). */
export function fabricFromShape(shape: FabricShape): FabricInput {
  const hostNames = Array.from({ length: shape.hosts }, (_, i) => `h${i}`);
  const tenantNames = Array.from({ length: shape.tenants }, (_, i) => `t${i}`);
  const nfs: NetworkFunctionInput[] = shape.nfs.map((n, i) => ({
    name: `nf${i}`,
    tenant: tenantNames[n.tenant % shape.tenants]!,
    host: hostNames[n.host % shape.hosts]!,
    mode: n.unaware ? 'sr-unaware' : 'sr-aware',
    ...(n.unaware ? { address: parseIpv6(`fc00:99::${i + 1}`) } : {}),
  }));
  const workloads: WorkloadInput[] = shape.workloads.map((w, i) => ({
    id: `w${i}`,
    tenant: tenantNames[w.tenant % shape.tenants]!,
    host: hostNames[w.host % shape.hosts]!,
    labels: { app: `a${w.app}` },
  }));
  const policies: PolicyInput[] = [];
  shape.policies.forEach((p, i) => {
    const tenant = tenantNames[p.tenant % shape.tenants]!;
    const via = p.via
      .map((v) => nfs.filter((n) => n.tenant === tenant)[v]?.name)
      .filter((v) => v !== undefined);
    // An SR-unaware function may appear once per chain (buildFabricView rejects repeats).
    const seen = new Set<string>();
    const chain = via.filter((name) => {
      const unaware = nfs.find((n) => n.name === name)?.mode === 'sr-unaware';
      if (unaware && seen.has(name)) return false;
      seen.add(name);
      return true;
    });
    if (chain.length === 0) return;
    policies.push({
      name: `p${i}`,
      tenant,
      via: chain,
      ...(p.fromApp !== null ? { from: { labels: { app: `a${p.fromApp}` } } } : {}),
      ...(p.toApp !== null ? { to: { labels: { app: `a${p.toApp}` } } } : {}),
    });
  });
  return {
    locatorBlock: parsePrefix('fc00:0::/32'),
    maxSegments: 4,
    ...(shape.hmac ? { hmacKeyId: 7 } : {}),
    hosts: hostNames.map((name, i) => ({ name, underlay: parseIpv6(`2001:db8:1::${i + 1}`) })),
    tenants: tenantNames.map((name, i) => ({
      name,
      id: 100 + i,
      prefixes: [parsePrefix(`2001:db8:${(0xa0 + i).toString(16)}::/64`)],
      edgeMode: i % 2 === 0 ? 'per-workload' : 'aggregate',
    })),
    workloads,
    networkFunctions: nfs,
    policies,
    edges: [
      { name: 'edge1', underlay: parseIpv6('2001:db8:1::ff'), locators: [parsePrefix('fc00:0:ff:1::/64')] },
    ],
    externalRoutes: [
      {
        tenant: 't0',
        prefix: parsePrefix('2001:db8:e0::/64'),
        sid: parseIpv6('fc00:0:ff:1:100::'),
        edge: 'edge1',
      },
    ],
  };
}
