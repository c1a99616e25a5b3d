/**
 * `segmesh path FROM TO`: the segment list traffic from a workload to an address takes, and why,
 * followed hop by hop through the plans of the hosts on the way (pure).
 */

import { scopeName, tableOf } from '../format/plan.ts';
import { formatIpv6, formatPrefix, type Ipv6Address, parseIpv6, prefixContains } from '../srv6/address.ts';
import type { FabricView, WorkloadView } from '../srv6/fabric.ts';
import { computeHostPlan, type HostPlan, isRoute, type PlannedRoute } from '../srv6/pathcompute.ts';
import { type Scope, sameScope } from '../srv6/scope.ts';
import { AgentError } from './errors.ts';

export interface PathExplanation {
  readonly segments: string[];
  readonly mode: string;
  readonly table: number;
  readonly reason: string;
  readonly steps: string[];
}

/** The route a scope holds for `dst` from `src`: source-specific first, then longest prefix. */
export function lookup(
  plan: HostPlan,
  scope: Scope,
  dst: Ipv6Address,
  src: Ipv6Address,
): PlannedRoute | undefined {
  let best: PlannedRoute | undefined;
  for (const o of plan.objects.values()) {
    if (!isRoute(o) || !sameScope(o.scope, scope) || !prefixContains(o.prefix, dst)) continue;
    if (o.from && !prefixContains(o.from, src)) continue;
    if (
      !best ||
      o.prefix.length > best.prefix.length ||
      (o.prefix.length === best.prefix.length && (o.from?.length ?? -1) > (best.from?.length ?? -1))
    ) {
      best = o;
    }
  }
  return best;
}

function findWorkload(view: FabricView, text: string): WorkloadView | undefined {
  const byId = view.workloads.get(text);
  if (byId) return byId;
  let address: Ipv6Address;
  try {
    address = parseIpv6(text);
  } catch {
    return undefined;
  }
  for (const w of view.workloads.values()) if (w.address === address) return w;
  return undefined;
}

export function explainPath(view: FabricView, _self: string, from: string, to: string): PathExplanation {
  const src = findWorkload(view, from);
  if (!src)
    throw new AgentError(
      'not-found',
      `no workload ${from} in the fabric view (give an identity or its address)`,
    );
  let dst: Ipv6Address;
  try {
    dst = findWorkload(view, to)?.address ?? parseIpv6(to);
  } catch {
    throw new AgentError('invalid', `${to} is neither a workload nor an IPv6 address`);
  }
  const plans = new Map<string, HostPlan>();
  const planOf = (host: string) => {
    let p = plans.get(host);
    if (!p) {
      p = computeHostPlan(view, host);
      plans.set(host, p);
    }
    return p;
  };
  const tenant = view.tenants.get(src.tenant)!;
  const first = lookup(planOf(src.host), tenant.scopes.egress, dst, src.address);
  if (!first) throw new AgentError('not-found', `host ${src.host} has no route for ${formatIpv6(dst)}`);
  const steps: string[] = [
    `${src.id} (${formatIpv6(src.address)}) on ${src.host}: table ${tableOf(tenant.scopes.egress)} (${scopeName(tenant.scopes.egress)}) -> ${formatPrefix(first.prefix)}: ${first.reason}`,
  ];
  let route: PlannedRoute = first;
  for (let hop = 0; hop < 16; hop++) {
    if (route.kind === 'deliver') {
      steps.push(`delivered on link ${route.link}`);
      break;
    }
    if (route.kind === 'unreachable') {
      steps.push('dropped: unreachable (no route in the tenant)');
      break;
    }
    if (route.kind !== 'encap') {
      steps.push(`${route.kind} route`);
      break;
    }
    steps.push(`encapsulated (${route.mode}) with segments [ ${route.segments.map(formatIpv6).join(' ')} ]`);
    const last = route.segments[route.segments.length - 1]!;
    let next: PlannedRoute | undefined;
    for (const h of view.hosts.values()) {
      const sid = h.sids.all.find((s) => s.sid === last);
      if (!sid) continue;
      for (const seg of route.segments.slice(0, -1)) {
        const owner = [...view.hosts.values()].find((x) => x.sids.all.some((s) => s.sid === seg));
        steps.push(`${formatIpv6(seg)}: transit at ${owner?.name ?? 'unknown host'}`);
      }
      steps.push(
        `${formatIpv6(last)}: ${sid.behavior} at ${h.name}${sid.networkFunction ? ` (function ${sid.networkFunction})` : ''}`,
      );
      if (sid.behavior === 'End.DT6' && sid.lookup !== undefined) {
        next = lookup(planOf(h.name), sid.lookup, dst, src.address);
      } else if (sid.behavior === 'End.DX6' && sid.networkFunction) {
        steps.push(`handed to ${sid.networkFunction}; what it returns continues from its return table`);
        next = lookup(planOf(h.name), sid.returns!, dst, src.address);
      }
      break;
    }
    if (!next) {
      steps.push(view.edges.size > 0 ? 'leaves the fabric toward the edge' : 'no further hop known');
      break;
    }
    route = next;
  }
  return {
    segments: first.kind === 'encap' ? first.segments.map(formatIpv6) : [],
    mode: first.kind === 'encap' ? first.mode : first.kind,
    table: tableOf(first.scope),
    reason: first.reason,
    steps,
  };
}
