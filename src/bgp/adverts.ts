/**
 * From the fabric view to what this host advertises to the edge, and from what the edge advertises
 * to the fabric's external-route input. Pure.
 *
 * Per tenant with a route target (tenants without one are not exported to the edge):
 *  - `per-workload`: one /128 per workload on this host, toward the tenant's delivery SID (End.DT6
 *    into the tenant table): the edge gets a best path per workload; a workload that moved away while
 *    its old instance is still here (this host redirects to the new one) stays advertised, marked
 *    `movingAway` (make before break at the edge too);
 *  - `aggregate`: the tenant's prefixes from every host, toward the tenant's forward SID (End.DT6 into
 *    the forward table, which sends each packet on to the workload's current host): small edge tables.
 * RD = <router id>:<tenant id> (type 1), unique per host and tenant; RT = the tenant's.
 */

import { makePrefix } from '../srv6/address.ts';
import type { ExternalRouteInput, FabricView, WorkloadView } from '../srv6/fabric.ts';
import type { ExternalRoute, VpnAdvert } from './routes.ts';
import { parseRd, type RouteDistinguisher } from './update.ts';

export function hostTenantRd(routerId: string, tenantId: number): RouteDistinguisher {
  return { type: 1, admin: routerId, assigned: tenantId };
}

/**
 * The VPN routes `hostName` advertises for the fabric `view`. `onHost`: the view's workloads on this
 * host (and those moving away from it), when the caller keeps them apart (the agent does, per event);
 * else every workload is looked at.
 */
export function advertsForHost(
  view: FabricView,
  hostName: string,
  routerId: string,
  onHost?: Iterable<WorkloadView>,
): VpnAdvert[] {
  const host = view.hosts.get(hostName);
  if (!host) return [];
  const out: VpnAdvert[] = [];
  // This host's workloads by tenant, in the order given (one pass, whatever the number of tenants).
  const byTenant = new Map<string, WorkloadView[]>();
  for (const w of onHost ?? view.workloads.values()) {
    if (w.host !== hostName && !w.formerHosts?.includes(hostName)) continue;
    const list = byTenant.get(w.tenant);
    if (list) list.push(w);
    else byTenant.set(w.tenant, [w]);
  }
  for (const t of view.tenants.values()) {
    if (t.routeTarget === undefined) continue;
    const rts = [parseRd(t.routeTarget)];
    const rd = hostTenantRd(routerId, t.id);
    if (t.edgeMode === 'aggregate') {
      const sid = host.sids.tenantForward.get(t.name);
      if (!sid) continue;
      for (const prefix of t.prefixes) {
        out.push({
          tenant: t.name,
          rd,
          prefix,
          sid: sid.sid,
          behavior: sid.behavior,
          structure: view.structure,
          routeTargets: rts,
          nextHop: host.underlay,
        });
      }
      continue;
    }
    const sid = host.sids.tenantDelivery.get(t.name);
    if (!sid) continue;
    for (const w of byTenant.get(t.name) ?? []) {
      out.push({
        tenant: t.name,
        rd,
        prefix: makePrefix(w.address, 128),
        sid: sid.sid,
        behavior: sid.behavior,
        structure: view.structure,
        routeTargets: rts,
        nextHop: host.underlay,
        ...(w.host !== hostName ? { movingAway: true } : {}),
      });
    }
  }
  return out;
}

/** A learned route as the fabric's external-route input (one per tenant), naming the edge by peer. */
export function externalRouteInputs(r: ExternalRoute, edgeName: string): ExternalRouteInput[] {
  return r.tenants.map((tenant) => ({ tenant, prefix: r.prefix, sid: r.sid, edge: edgeName }));
}
