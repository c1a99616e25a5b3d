/**
 * From the model's plan to the data plane's desired state (pure). The plan speaks SRv6 (behaviours,
 * segment lists, why); the data plane speaks kernel objects (routes with encaps, rules, nft filters).
 */
import type { DesiredState, IsolationSpec, Route, Rule, Seg6LocalAction } from '../dataplane/index.ts';
import { coverSourceSubtrees, TENANT_UNREACHABLE_METRIC } from '../dataplane/index.ts';
import type { WorkloadFilter } from '../dataplane/isolation.ts';
import { formatIpv6, type Ipv6Address, type Ipv6Prefix } from '../srv6/address.ts';
import type { Behavior } from '../srv6/behavior.ts';
import type { HostPlan, PlannedLink, PlannedRoute } from '../srv6/pathcompute.ts';

export interface TranslateOptions {
  /** The underlay interface: locator routes and encapsulating routes leave through it. */
  readonly underlayDevice: string;
  /** Count packets per SID (SEG6_LOCAL_COUNTERS): metrics and isolation checks read them. */
  readonly sidCounters?: boolean;
}

export interface DesiredHost {
  readonly dataplane: DesiredState;
  readonly isolation: IsolationSpec;
  /** Workload and function links the plan expects, with their MTU. */
  readonly links: readonly PlannedLink[];
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

export function toKernelRoute(r: PlannedRoute, opts: TranslateOptions): Route {
  switch (r.kind) {
    case 'locator':
      return { dst: r.prefix, table: r.table, gateway: r.via, dev: opts.underlayDevice };
    case 'encap':
      return {
        dst: r.prefix,
        ...(r.from ? { src: r.from } : {}),
        table: r.table,
        dev: opts.underlayDevice,
        encap: {
          type: 'seg6',
          mode: r.mode,
          segments: r.segments,
          ...(r.hmacKeyId !== undefined ? { hmacKeyId: r.hmacKeyId } : {}),
        },
      };
    case 'deliver':
      return { dst: r.prefix, ...(r.from ? { src: r.from } : {}), table: r.table, dev: r.link };
    case 'seg6local':
      return {
        dst: r.prefix,
        table: r.table,
        // End.DX6 toward a function leaves on its link; every other SID hangs off the underlay.
        dev: r.link ?? opts.underlayDevice,
        encap: {
          type: 'seg6local',
          action: kernelAction(r.behavior, r.prefix.address),
          ...(r.lookupTable !== undefined ? { table: r.lookupTable } : {}),
          ...(r.nextHop !== undefined ? { nh6: r.nextHop } : {}),
          ...(opts.sidCounters ? { counters: true } : {}),
        },
      };
    case 'unreachable':
      return { dst: r.prefix, table: r.table, type: 'unreachable', metric: TENANT_UNREACHABLE_METRIC };
  }
}

export function toDesiredHost(plan: HostPlan, opts: TranslateOptions): DesiredHost {
  const routes: Route[] = [];
  const rules: Rule[] = [];
  const links: PlannedLink[] = [];
  const filters: WorkloadFilter[] = [];
  const sidBlocks = new Map<string, Ipv6Prefix>();
  const hostAddresses = new Map<bigint, Ipv6Address>();
  for (const o of plan.objects.values()) {
    switch (o.kind) {
      case 'rule':
        rules.push({ priority: o.priority, iif: o.iif, table: o.table });
        break;
      case 'link':
        links.push(o);
        break;
      case 'filter':
        filters.push({ ifname: o.link, sources: [{ address: o.source, length: 128 }] });
        for (const d of o.denyDestinations) {
          if (d.length === 128) hostAddresses.set(d.address, d.address);
          else sidBlocks.set(`${d.address}/${d.length}`, d);
        }
        break;
      default:
        routes.push(toKernelRoute(o, opts));
    }
  }
  return {
    // Source-specific routes (policies with `from`) hide a plain route to the same destination in the
    // same table from every other source: coverSourceSubtrees turns such plain routes into two
    // source halves the kernel does use.
    dataplane: { routes: coverSourceSubtrees(routes), rules },
    isolation: {
      workloads: filters,
      sidBlocks: [...sidBlocks.values()],
      hostAddresses: [...hostAddresses.values()],
    },
    links,
  };
}
