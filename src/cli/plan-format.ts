/**
 * Rendering a host plan for people (tables) and for programs (JSON with addresses as text).
 * Pure: returns strings and plain objects.
 */

import { MAIN_TABLE, rulePriority, scopeName, tableOf } from '../dataplane/kernel/tables.ts';
import { formatIpv6, formatPrefix, type Ipv6Prefix } from '../srv6/address.ts';
import type { SidEntry } from '../srv6/allocator.ts';
import type { FabricView } from '../srv6/fabric.ts';
import { type HostPlan, isRoute, type PlannedObject, type PlannedRoute } from '../srv6/pathcompute.ts';
import { renderTable } from './table.ts';

/** Human names of the tables a plan uses on a kernel host (the kernel backend's tables of its scopes). */
export function tableNames(view: FabricView): Map<number, string> {
  const names = new Map<number, string>([[MAIN_TABLE, 'main']]);
  for (const t of view.tenants.values()) {
    for (const scope of [t.scopes.egress, t.scopes.delivery, t.scopes.forward])
      names.set(tableOf(scope), scopeName(scope));
  }
  for (const h of view.hosts.values()) {
    for (const s of h.sids.networkFunctions.values()) {
      if (s.returns !== undefined) names.set(tableOf(s.returns), scopeName(s.returns));
    }
  }
  return names;
}

function sidDetail(s: SidEntry, names: Map<number, string>): string {
  const parts: string[] = [];
  if (s.tenant) parts.push(`tenant ${s.tenant}`);
  if (s.networkFunction) parts.push(`function ${s.networkFunction}`);
  if (s.lookup !== undefined && s.behavior === 'End.DT6') {
    const table = tableOf(s.lookup);
    parts.push(`lookup ${names.get(table) ?? table} (${table})`);
  }
  if (s.nextHop !== undefined) parts.push(`next hop ${formatIpv6(s.nextHop)}`);
  return parts.join(', ');
}

export function routeAction(r: PlannedRoute, names?: Map<number, string>): string {
  switch (r.kind) {
    case 'locator':
      return `via ${formatIpv6(r.via)}`;
    case 'encap':
      return `encap seg6 mode ${r.mode} segs [ ${r.segments.map(formatIpv6).join(' ')} ]${r.hmacKeyId !== undefined ? ` hmac ${r.hmacKeyId}` : ''}`;
    case 'deliver':
      return `dev ${r.link}`;
    case 'seg6local': {
      const lookup = r.lookup !== undefined ? tableOf(r.lookup) : undefined;
      const extra =
        lookup !== undefined
          ? ` table ${lookup}${names?.get(lookup) ? ` (${names.get(lookup)})` : ''}`
          : r.nextHop !== undefined
            ? ` nh6 ${formatIpv6(r.nextHop)}${r.link ? ` dev ${r.link}` : ''}`
            : '';
      return `encap seg6local action ${r.behavior}${extra}`;
    }
    case 'unreachable':
      return 'unreachable';
  }
}

function destination(prefix: Ipv6Prefix, from?: Ipv6Prefix): string {
  return from ? `${formatPrefix(prefix)} from ${formatPrefix(from)}` : formatPrefix(prefix);
}

function sortedRoutes(objects: Iterable<PlannedObject>): PlannedRoute[] {
  return [...objects].filter(isRoute).sort((a, b) => {
    if (tableOf(a.scope) !== tableOf(b.scope)) return tableOf(a.scope) - tableOf(b.scope);
    // The default route last: it is where a table ends.
    if (a.prefix.length !== b.prefix.length && (a.prefix.length === 0 || b.prefix.length === 0)) {
      return b.prefix.length - a.prefix.length;
    }
    return a.prefix.address < b.prefix.address
      ? -1
      : a.prefix.address > b.prefix.address
        ? 1
        : a.prefix.length - b.prefix.length;
  });
}

export function formatHostPlan(view: FabricView, plan: HostPlan): string {
  const host = view.hosts.get(plan.host)!;
  const names = tableNames(view);
  const out: string[] = [];
  out.push(`host ${host.name}  underlay ${formatIpv6(host.underlay)}  locator ${formatPrefix(host.locator)}`);
  out.push('  SIDs');
  out.push(
    renderTable(
      ['SID', 'BEHAVIOR', 'DETAIL'],
      host.sids.all.map((s) => [formatIpv6(s.sid), s.behavior, sidDetail(s, names)]),
      '    ',
    ),
  );
  const routes = sortedRoutes(plan.objects.values());
  out.push(`  Routes (${routes.length})`);
  let table = -1;
  let rows: string[][] = [];
  const flush = () => {
    if (rows.length > 0) out.push(renderTable(['DESTINATION', 'ACTION', 'WHY'], rows, '      '));
    rows = [];
  };
  for (const r of routes) {
    if (tableOf(r.scope) !== table) {
      flush();
      table = tableOf(r.scope);
      out.push(`    table ${table} (${names.get(table) ?? 'agent'})`);
    }
    rows.push([destination(r.prefix, r.from), routeAction(r, names), r.reason]);
  }
  flush();
  // The kernel's `ip rule`s: one per link with an ingress scope.
  const rules = [...plan.objects.values()].flatMap((o) =>
    o.kind === 'link' && o.ingress
      ? [
          {
            priority: rulePriority(o.ingress),
            iif: o.link,
            table: tableOf(o.ingress),
            reason: o.ingressReason ?? '',
          },
        ]
      : [],
  );
  if (rules.length > 0) {
    out.push('  Rules');
    out.push(
      renderTable(
        ['PRIORITY', 'MATCH', 'TABLE', 'WHY'],
        rules.map((r) => [
          String(r.priority),
          `iif ${r.iif}`,
          `${r.table} (${names.get(r.table) ?? ''})`,
          r.reason,
        ]),
        '    ',
      ),
    );
  }
  const links = [...plan.objects.values()].filter((o) => o.kind === 'link');
  if (links.length > 0) {
    out.push('  Links and ingress filters');
    out.push(
      renderTable(
        ['LINK', 'MTU', 'OF', 'ADDRESS', 'FILTER'],
        links.map((l) => {
          const filter = plan.objects.get(`f|${l.link}`);
          return [
            l.link,
            String(l.mtu),
            l.workload ? `workload ${l.workload}` : `function ${l.networkFunction}`,
            l.address !== undefined ? formatIpv6(l.address) : '',
            filter && filter.kind === 'filter'
              ? `source only ${formatIpv6(filter.source)}; drop to ${filter.denyDestinations.map(formatPrefix).join(' ')}`
              : '',
          ];
        }),
        '    ',
      ),
    );
  }
  return out.join('\n');
}

/** JSON-ready form of a plan (bigints as address text). */
export function planToJson(view: FabricView, plan: HostPlan): unknown {
  const host = view.hosts.get(plan.host)!;
  const text = (o: PlannedObject): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) {
      if (typeof v === 'bigint') out[k] = formatIpv6(v);
      else if (Array.isArray(v))
        out[k] = v.map((x) => (typeof x === 'bigint' ? formatIpv6(x) : formatPrefix(x)));
      else if (v && typeof v === 'object' && 'length' in v) out[k] = formatPrefix(v as Ipv6Prefix);
      else out[k] = v;
    }
    // The kernel table of the route's scope, as before scopes existed.
    if (isRoute(o)) out.table = tableOf(o.scope);
    return out;
  };
  return {
    host: host.name,
    underlay: formatIpv6(host.underlay),
    locator: formatPrefix(host.locator),
    sids: host.sids.all.map((s) => ({
      sid: formatIpv6(s.sid),
      behavior: s.behavior,
      key: s.key,
      ...(s.tenant ? { tenant: s.tenant } : {}),
      ...(s.lookup !== undefined || s.returns !== undefined
        ? { table: tableOf((s.lookup ?? s.returns)!) }
        : {}),
      ...(s.nextHop !== undefined ? { nextHop: formatIpv6(s.nextHop) } : {}),
    })),
    objects: [...plan.objects.values()].map(text),
  };
}
