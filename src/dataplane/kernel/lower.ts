/**
 * The kernel lowering of a forwarding intent (pure): the routes, `ip rule`s, nftables filters and
 * links the kernel backend installs. Scopes become routing tables chosen by `ip rule iif <link>`,
 * local SIDs seg6local routes in the main table, prefix entries routes in their scope's table, and an
 * attachment's send restriction a netdev ingress chain.
 */
import type { Ipv6Address, Ipv6Prefix } from '../../srv6/address.ts';
import { formatIpv6 } from '../../srv6/address.ts';
import type { Behavior } from '../../srv6/behavior.ts';
import { TENANT_UNREACHABLE_METRIC } from '../constants.ts';
import type { Seg6LocalAction } from '../encap.ts';
import type { Attachment, ForwardingIntent, LocalSid, PrefixEntry } from '../intent.ts';
import type { DesiredState } from '../reconcile.ts';
import { coverSourceSubtrees, type Route } from '../route.ts';
import type { Rule } from '../rule.ts';
import { type IsolationSpec, nftIsolationRuleset, nftMssClampRuleset, type WorkloadFilter } from './nft.ts';
import { AGENT_SYSCTLS } from './sysctls.ts';
import { MAIN_TABLE, rulePriority, tableOf } from './tables.ts';

export interface KernelLoweringOptions {
  /** The underlay interface: locator routes, encapsulating routes and SIDs hang off it. */
  readonly underlayDevice: string;
  /** Count packets per SID (SEG6_LOCAL_COUNTERS): metrics and isolation checks read them. */
  readonly sidCounters?: boolean;
}

/** A link the kernel backend expects, with its MTU. */
export interface KernelLink {
  readonly link: string;
  readonly mtu: number;
  readonly tenant: string;
  readonly workload?: string;
  readonly networkFunction?: string;
  readonly address?: Ipv6Address;
}

export interface KernelState {
  readonly dataplane: DesiredState;
  readonly isolation: IsolationSpec;
  readonly links: readonly KernelLink[];
}

export class UnsupportedBehaviorError extends Error {
  override readonly name = 'UnsupportedBehaviorError';
}

/** The kernel's seg6local action for a behaviour the model allocated. */
export function kernelAction(behavior: Behavior, sid: Ipv6Address): Seg6LocalAction {
  if (behavior === 'End.B6.Encaps.Red') {
    throw new UnsupportedBehaviorError(
      `SID ${formatIpv6(sid)}: Linux has no End.B6.Encaps.Red (seg6local); allocate End.B6.Encaps instead`,
    );
  }
  return behavior;
}

export function sidRoute(s: LocalSid, opts: KernelLoweringOptions): Route {
  return {
    dst: { address: s.sid, length: 128 },
    table: MAIN_TABLE,
    // End.DX6 toward a function leaves on its link; every other SID hangs off the underlay.
    dev: s.link ?? opts.underlayDevice,
    encap: {
      type: 'seg6local',
      action: kernelAction(s.behavior, s.sid),
      ...(s.lookup !== undefined ? { table: tableOf(s.lookup) } : {}),
      ...(s.nextHop !== undefined ? { nh6: s.nextHop } : {}),
      ...(opts.sidCounters ? { counters: true } : {}),
    },
  };
}

/** The route of one entry, before source subtrees are covered (see {@link kernelRoutes}). */
export function entryRoute(e: PrefixEntry, opts: KernelLoweringOptions): Route {
  const table = tableOf(e.scope);
  const src: { src?: Ipv6Prefix } = e.from ? { src: e.from } : {};
  const a = e.action;
  switch (a.kind) {
    case 'locator':
      return { dst: e.prefix, ...src, table, gateway: a.via, dev: opts.underlayDevice };
    case 'encap':
      return {
        dst: e.prefix,
        ...src,
        table,
        dev: opts.underlayDevice,
        encap: {
          type: 'seg6',
          mode: a.mode,
          segments: a.segments,
          ...(a.hmacKeyId !== undefined ? { hmacKeyId: a.hmacKeyId } : {}),
        },
      };
    case 'deliver':
      return { dst: e.prefix, ...src, table, dev: a.link };
    case 'unreachable':
      return { dst: e.prefix, ...src, table, type: 'unreachable', metric: TENANT_UNREACHABLE_METRIC };
  }
}

/** The `ip rule` that sends what arrives from an attachment to its scope's table, if it has one. */
export function attachmentRule(a: Attachment): Rule | undefined {
  if (!a.ingress) return undefined;
  return { priority: rulePriority(a.ingress), iif: a.link, table: tableOf(a.ingress) };
}

export function kernelLink(a: Attachment): KernelLink {
  return {
    link: a.link,
    mtu: a.mtu,
    tenant: a.tenant,
    ...(a.workload !== undefined ? { workload: a.workload } : {}),
    ...(a.networkFunction !== undefined ? { networkFunction: a.networkFunction } : {}),
    ...(a.address !== undefined ? { address: a.address } : {}),
  };
}

/**
 * Every route of an intent's SIDs and entries. Source-specific entries hide a plain route to the same
 * destination in the same table from every other source: coverSourceSubtrees turns such plain routes
 * into two source halves the kernel does use.
 */
export function kernelRoutes(intent: ForwardingIntent, opts: KernelLoweringOptions): readonly Route[] {
  const routes: Route[] = [];
  for (const i of intent.items.values()) {
    if (i.kind === 'sid') routes.push(sidRoute(i, opts));
    else if (i.kind === 'entry') routes.push(entryRoute(i, opts));
  }
  return coverSourceSubtrees(routes);
}

export function isolationSpec(intent: ForwardingIntent): IsolationSpec {
  const filters: WorkloadFilter[] = [];
  const sidBlocks = new Map<string, Ipv6Prefix>();
  const hostAddresses = new Map<bigint, Ipv6Address>();
  for (const a of intent.items.values()) {
    if (a.kind !== 'attachment' || !a.restrict) continue;
    const source = a.restrict.source;
    filters.push({ ifname: a.link, sources: source !== undefined ? [{ address: source, length: 128 }] : [] });
    for (const d of a.restrict.denyDestinations) {
      if (d.length === 128) hostAddresses.set(d.address, d.address);
      else sidBlocks.set(`${d.address}/${d.length}`, d);
    }
  }
  return {
    workloads: filters,
    sidBlocks: [...sidBlocks.values()],
    hostAddresses: [...hostAddresses.values()],
  };
}

/** The whole kernel state of an intent. */
export function lowerToKernel(intent: ForwardingIntent, opts: KernelLoweringOptions): KernelState {
  const rules: Rule[] = [];
  const links: KernelLink[] = [];
  for (const a of intent.items.values()) {
    if (a.kind !== 'attachment') continue;
    links.push(kernelLink(a));
    const rule = attachmentRule(a);
    if (rule) rules.push(rule);
  }
  return {
    dataplane: { routes: kernelRoutes(intent, opts), rules },
    isolation: isolationSpec(intent),
    links,
  };
}

/**
 * The nftables text of a kernel state (one `nft -f -`, one transaction): the isolation chains of its
 * attachments and the MSS clamp `mss` toward its links.
 */
export function kernelRuleset(state: KernelState, mss: number): string {
  return (
    nftIsolationRuleset(state.isolation) +
    nftMssClampRuleset(
      state.links.map((l) => l.link),
      mss,
    )
  );
}

/**
 * The host sysctls the kernel backend sets before it installs anything, in order: IPv6 forwarding,
 * SRH processing on the underlay, and accept_ra 2 there (forwarding on turns router advertisements
 * off; 2 keeps the underlay's RA-learned routes).
 */
export function kernelSysctls(underlayDevice: string): [string, string][] {
  return [
    [AGENT_SYSCTLS.forwarding, '1'],
    [AGENT_SYSCTLS.seg6Enabled(underlayDevice), '1'],
    [AGENT_SYSCTLS.acceptRa(underlayDevice), '2'],
  ];
}
