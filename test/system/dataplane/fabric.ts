/**
 * A small SRv6 fabric for data-plane system tests and benchmarks, programmed through the project's
 * Dataplane (netns workers), on namespaces made by the test harness:
 *
 *   h1, h2, h3 on one underlay switch (2001:db8:f::N/64); host N has locator fc00:0:N::/48,
 *   a host address 2001:db8:N::1 on lo, End SID fc00:0:N::e, End.DT6 SIDs fc00:0:N::a6 (tenant A,
 *   table 10001) and fc00:0:N::b6 (tenant B, table 10002), all with counters.
 *   Workloads: wa<N> (tenant A, 2001:db8:a:N::1) and wb<N> (tenant B, 2001:db8:b:N::1) on hosts 1 and 2,
 *   each behind a veth (host side `wa<N>` / `wb<N>` carrying fe80::1, MTU from the formula).
 */
import { TENANT_TABLE_BASE } from '../../../src/dataplane/constants.ts';
import type { Seg6Mode } from '../../../src/dataplane/encap.ts';
import { tenantUnreachable, workloadMtu } from '../../../src/dataplane/isolation.ts';
import { NetnsDataplane } from '../../../src/dataplane/netns.ts';
import type { Route } from '../../../src/dataplane/route.ts';
import type { Rule } from '../../../src/dataplane/rule.ts';
import { hostSysctls, workloadSysctls } from '../../../src/dataplane/sysctl.ts';
import { type Ipv6Address, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import type { Lab, Netns } from '../../harness/index.ts';

export const ip = parseIpv6;
export const TABLE = { a: TENANT_TABLE_BASE + 1, b: TENANT_TABLE_BASE + 2 } as const;
export type Tenant = keyof typeof TABLE;
export const MAX_SEGMENTS = 2;
export const WORKLOAD_MTU = workloadMtu({ maxSegments: MAX_SEGMENTS });

export const underlay = (n: number) => ip(`2001:db8:f::${n}`);
export const hostAddr = (n: number) => ip(`2001:db8:${n}::1`);
export const endSid = (n: number) => ip(`fc00:0:${n}::e`);
export const dt6Sid = (n: number, t: Tenant) => ip(`fc00:0:${n}::${t}6`);
export const workloadAddr = (n: number, t: Tenant) => ip(`2001:db8:${t}:${n}::1`);
export const workloadText = (n: number, t: Tenant) => `2001:db8:${t}:${n}::1`;

export interface Host {
  readonly n: number;
  readonly ns: Netns;
  readonly dp: NetnsDataplane;
}

export interface Fabric {
  readonly hosts: Host[];
  readonly workloads: Map<string, Netns>;
  /** How tenant traffic from host `from` reaches workload prefix on host `to`. */
  tenantRoutes(from: number, to: number, tenant: Tenant, mode: Seg6Mode, viaTransit: boolean): Route;
  /** Main + tenant tables of host n (desired state) for a given inter-host mode. */
  desiredRoutes(n: number, mode: Seg6Mode, viaTransit: boolean): Route[];
  desiredRules(n: number): Rule[];
  close(): Promise<void>;
}

const p = parsePrefix;
const r128 = (a: Ipv6Address) => ({ address: a, length: 128 });

export async function buildFabric(
  lab: Lab,
  opts: { workloadHosts?: number[]; hostCount?: number; workloadMtu?: number } = {},
): Promise<Fabric> {
  const hostCount = opts.hostCount ?? 3;
  const workloadHosts = opts.workloadHosts ?? [1, 2];
  const sw = await lab.underlaySwitch('sw');
  const hosts: Host[] = [];
  const workloads = new Map<string, Netns>();
  for (let n = 1; n <= hostCount; n++) {
    const ns = await lab.netns(`h${n}`);
    await sw.attach(ns, 'eth0', [`2001:db8:f::${n}/64`]);
    const dp = new NetnsDataplane({ netns: ns.name, maxSegments: MAX_SEGMENTS });
    await dp.whenReady();
    hosts.push({ n, ns, dp });
    for (const [k, v] of hostSysctls({ underlay: ['eth0'] })) await dp.setSysctl(k, v);
    await dp.addAddress('lo', r128(hostAddr(n)));
    await dp.setTunsrc(underlay(n));
    if (workloadHosts.includes(n)) {
      for (const t of ['a', 'b'] as const) {
        const w = await lab.netns(`w${t}${n}`);
        workloads.set(`${t}${n}`, w);
        await dp.addVeth({
          name: `w${t}${n}`,
          peerName: 'eth0',
          peerNetns: w.name,
          mtu: opts.workloadMtu ?? WORKLOAD_MTU,
        });
        for (const [k, v] of workloadSysctls(`w${t}${n}`)) await dp.setSysctl(k, v);
        await dp.addAddress(`w${t}${n}`, { address: ip('fe80::1'), length: 64 });
        await w.ip('link', 'set', 'eth0', 'up');
        await w.ip('-6', 'addr', 'add', `${workloadText(n, t)}/64`, 'dev', 'eth0', 'nodad');
        await w.ip('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0');
      }
    }
  }

  const locatorRoutes = (n: number, table: number): Route[] =>
    hosts
      .filter((h) => h.n !== n)
      .flatMap((h) => [
        { dst: p(`fc00:0:${h.n}::/48`), table, gateway: underlay(h.n), dev: 'eth0' },
        ...(table === 254
          ? [{ dst: p(`2001:db8:${h.n}::/64`), table, gateway: underlay(h.n), dev: 'eth0' }]
          : []),
      ]);

  const tenantRoutes = (
    _from: number,
    to: number,
    tenant: Tenant,
    mode: Seg6Mode,
    viaTransit: boolean,
  ): Route => ({
    dst: p(`2001:db8:${tenant}:${to}::/64`),
    table: TABLE[tenant],
    dev: 'eth0',
    encap: {
      type: 'seg6',
      mode,
      segments: viaTransit ? [endSid(3), dt6Sid(to, tenant)] : [dt6Sid(to, tenant)],
    },
  });

  const desiredRoutes = (n: number, mode: Seg6Mode, viaTransit: boolean): Route[] => {
    const routes: Route[] = [
      ...locatorRoutes(n, 254),
      {
        dst: r128(endSid(n)),
        table: 254,
        dev: 'eth0',
        encap: { type: 'seg6local', action: 'End', counters: true },
      },
    ];
    for (const t of ['a', 'b'] as const) {
      // Local SIDs are in main: packets from the fabric arrive on eth0 and use the main table.
      routes.push({
        dst: r128(dt6Sid(n, t)),
        table: 254,
        dev: 'eth0',
        encap: { type: 'seg6local', action: 'End.DT6', table: TABLE[t], counters: true },
      });
      if (!workloadHosts.includes(n)) continue;
      routes.push(...locatorRoutes(n, TABLE[t]), tenantUnreachable(TABLE[t]));
      routes.push({ dst: r128(workloadAddr(n, t)), table: TABLE[t], dev: `w${t}${n}` });
      for (const other of workloadHosts)
        if (other !== n) routes.push(tenantRoutes(n, other, t, mode, viaTransit));
    }
    return routes;
  };

  const desiredRules = (n: number): Rule[] =>
    workloadHosts.includes(n)
      ? (['a', 'b'] as const).map((t, i) => ({ priority: 10_000 + i, iif: `w${t}${n}`, table: TABLE[t] }))
      : [];

  return {
    hosts,
    workloads,
    tenantRoutes,
    desiredRoutes,
    desiredRules,
    close: async () => {
      for (const h of hosts) await h.dp.close().catch(() => undefined);
    },
  };
}
