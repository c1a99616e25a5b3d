/**
 * The BGP interop topology of ../shared/research/bgp-srv6-interop.md section 2, built in lab
 * namespaces: a host running the agent's BGP component (gobgpd sidecar), a workload behind it, an
 * FRR 8.4 edge, an external client behind the edge. The host's data plane is programmed with `ip`
 * here (the netlink data plane is tested in its own area).
 */

import type { ExternalRoute } from '../../../src/bgp/index.ts';
import { formatIpv6 } from '../../../src/srv6/address.ts';
import { type Frr, startFrr } from '../../harness/frr.ts';
import type { Lab, Netns } from '../../harness/index.ts';

export const HOST_ASN = 65101;
export const EDGE_ASN = 65000;

export interface HostSpec {
  readonly index: number; // 1, 2, ...
  readonly ns: Netns;
  /** Underlay address, 2001:db8:12::<index>. */
  readonly address: string;
  /** Locator fc00:0:<index>::/48 (F3216). */
  readonly locator: string;
  /** The tenant SID fc00:0:<index>:e000:: (End.DT6 table 100). */
  readonly sid: string;
  readonly workload: Netns;
  /** Workload address 2001:db8:c<index>::1. */
  readonly workloadAddress: string;
}

/** Builds a host namespace with one workload and the tenant table 100 (rule iif w1 lookup 100). */
export async function makeHost(lab: Lab, index: number): Promise<HostSpec> {
  const ns = await lab.netns(`h${index}`);
  const workload = await lab.netns(`w${index}`);
  const workloadAddress = `2001:db8:c${index}::1`;
  await lab.veth(ns, 'w1', workload, 'eth0');
  await ns.ip('addr', 'add', 'fe80::1/64', 'dev', 'w1', 'nodad');
  await workload.ip('addr', 'add', `${workloadAddress}/128`, 'dev', 'eth0', 'nodad');
  await workload.ip('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0');
  await ns.sysctl('net.ipv6.conf.all.forwarding', '1');
  await ns.sysctl('net.ipv6.conf.all.seg6_enabled', '1');
  await ns.ip('-6', 'rule', 'add', 'iif', 'w1', 'lookup', '100', 'pref', '1000');
  await ns.ip('-6', 'route', 'add', `${workloadAddress}/128`, 'dev', 'w1', 'table', '100');
  await ns.ip('-6', 'route', 'add', 'unreachable', 'default', 'table', '100', 'metric', '4000');
  const sid = `fc00:0:${index}:e000::`;
  return {
    index,
    ns,
    address: `2001:db8:12::${index}`,
    locator: `fc00:0:${index}::/48`,
    sid,
    workload,
    workloadAddress,
  };
}

/** The host side of the SRv6 data plane toward the edge (after the underlay link exists). */
export async function programHost(h: HostSpec, edgeAddress: string, edgeLocator: string): Promise<void> {
  await h.ns.ip(
    '-6',
    'route',
    'replace',
    `${h.sid}/128`,
    'encap',
    'seg6local',
    'action',
    'End.DT6',
    'table',
    '100',
    'dev',
    'eth0',
  );
  await h.ns.ip('-6', 'route', 'replace', edgeLocator, 'via', edgeAddress, 'dev', 'eth0');
  // The outer packet after H.Encaps is looked up with iif w1 again: table 100 needs the edge locator too.
  await h.ns.ip('-6', 'route', 'replace', edgeLocator, 'via', edgeAddress, 'dev', 'eth0', 'table', '100');
}

/** What the data plane would do with a learned external route: encap toward its rebuilt SID. */
export async function installExternal(h: HostSpec, r: ExternalRoute): Promise<void> {
  await h.ns.ip(
    '-6',
    'route',
    'replace',
    `${formatIpv6(r.prefix.address)}/${r.prefix.length}`,
    'encap',
    'seg6',
    'mode',
    'encap',
    'segs',
    formatIpv6(r.sid),
    'dev',
    'eth0',
    'table',
    '100',
  );
}

export interface EdgeSpec {
  readonly ns: Netns;
  readonly frr: Frr;
  readonly ext: Netns;
  readonly address: string;
  readonly locator: string;
  readonly extPrefix: string;
  readonly extAddress: string;
}

/**
 * An FRR edge (one tenant) with an external client. `index` picks its addresses:
 * edge 2001:db8:12::<100+index>, locator fc00:0:<100+index>::/64, external 2001:db8:e<index>::/64.
 */
export async function makeEdge(
  lab: Lab,
  index: number,
  opts: { hosts: readonly HostSpec[]; rt: string; uplink: (edge: Netns) => Promise<void>; password?: string },
): Promise<EdgeSpec> {
  const ns = await lab.netns(`e${index}`);
  const ext = await lab.netns(`x${index}`);
  const address = `2001:db8:12::${100 + index}`;
  const locator = `fc00:0:${100 + index}::/64`;
  const extPrefix = `2001:db8:e${index}::/64`;
  const extAddress = `2001:db8:e${index}::2`;
  await opts.uplink(ns);
  await lab.veth(ns, 'ext', ext, 'eth0');
  await ns.ip('addr', 'add', `2001:db8:e${index}::1/64`, 'dev', 'ext', 'nodad');
  await ext.ip('addr', 'add', `${extAddress}/64`, 'dev', 'eth0', 'nodad');
  await ext.ip('-6', 'route', 'add', 'default', 'via', `2001:db8:e${index}::1`);
  for (const h of opts.hosts) await ns.ip('-6', 'route', 'add', h.locator, 'via', h.address, 'dev', 'eth0');
  const frr = await startFrr(lab, {
    name: `e${index}`,
    netns: ns,
    asn: EDGE_ASN,
    routerId: `198.18.1.${index}`,
    neighbors: opts.hosts.map((h) => ({
      address: h.address,
      asn: HOST_ASN,
      ...(opts.password ? { password: opts.password } : {}),
    })),
    locator,
    tenant: { rd: `${EDGE_ASN}:${index}00`, rt: opts.rt, exportPrefixes: [extPrefix] },
    sidDevice: 'eth0',
  });
  return { ns, frr, ext, address, locator, extPrefix, extAddress };
}
