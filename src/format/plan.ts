/**
 * Rendering a host plan for people (tables) and for programs (JSON with addresses as text), and the
 * whole fabric's plan as a stream of chunks, one host at a time, so that `segmesh plan` holds at most
 * one host's plan (not the fabric's) however large the fabric. Pure: returns strings and plain objects.
 */
import { MAIN_TABLE, rulePriority, scopeName, tableOf } from '../dataplane/kernel/tables.ts';
import { formatIpv6, type Ipv6Address, type Ipv6Prefix } from '../srv6/address.ts';
import type { SidEntry } from '../srv6/allocator.ts';
import type { FabricView } from '../srv6/fabric.ts';
import {
  computeHostPlan,
  type HostPlan,
  isRoute,
  type PlannedLink,
  type PlannedObject,
  type PlannedRoute,
} from '../srv6/pathcompute.ts';
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

/**
 * Address text, each address formatted once per fabric: a fabric's plan repeats the same few
 * thousand addresses (locators, underlays, SIDs) millions of times — every host routes to every
 * other host's locator. The cache grows with the fabric's distinct addresses, never with the output.
 */
export class AddressText {
  readonly #text = new Map<bigint, string>();
  /** Per shared prefix object (a locator): its text. */
  readonly #prefixes = new WeakMap<Ipv6Prefix, string>();
  /** Per shared segment list (pathcompute shares one per destination host and tenant). */
  readonly #segments = new WeakMap<readonly Ipv6Address[], string>();

  ip(address: Ipv6Address): string {
    // Keyed by hi:(lo^hi), a bijection of the address: V8 hashes a BigInt by its lowest 64-bit digit
    // only, which is zero in every locator and SID, so a Map keyed by the address itself degrades
    // to a list (quadratic in the fabric's size).
    const key = address ^ (address >> 64n);
    let t = this.#text.get(key);
    if (t === undefined) {
      t = formatIpv6(address);
      this.#text.set(key, t);
    }
    return t;
  }

  prefix(p: Ipv6Prefix): string {
    let t = this.#prefixes.get(p);
    if (t === undefined) {
      t = `${this.ip(p.address)}/${p.length}`;
      // Only /128s are built per route (host routes); anything shorter is a shared locator or block.
      if (p.length !== 128) this.#prefixes.set(p, t);
    }
    return t;
  }

  segments(list: readonly Ipv6Address[]): string {
    let t = this.#segments.get(list);
    if (t === undefined) {
      t = '';
      for (const s of list) t += `${this.ip(s)} `;
      this.#segments.set(list, t);
    }
    return t;
  }
}

const defaultText = (): AddressText => new AddressText();

const SPACES = ' '.repeat(256);
function pad(n: number): string {
  return n <= SPACES.length ? SPACES.slice(0, n) : ' '.repeat(n);
}

function sidDetail(s: SidEntry, names: ReadonlyMap<number, string>, at: AddressText): string {
  const parts: string[] = [];
  if (s.tenant) parts.push(`tenant ${s.tenant}`);
  if (s.networkFunction) parts.push(`function ${s.networkFunction}`);
  if (s.lookup !== undefined && s.behavior === 'End.DT6') {
    const table = tableOf(s.lookup);
    parts.push(`lookup ${names.get(table) ?? table} (${table})`);
  }
  if (s.nextHop !== undefined) parts.push(`next hop ${at.ip(s.nextHop)}`);
  return parts.join(', ');
}

export function routeAction(
  r: PlannedRoute,
  names?: ReadonlyMap<number, string>,
  at: AddressText = defaultText(),
): string {
  switch (r.kind) {
    case 'locator':
      return `via ${at.ip(r.via)}`;
    case 'encap':
      return `encap seg6 mode ${r.mode} segs [ ${at.segments(r.segments)}]${r.hmacKeyId !== undefined ? ` hmac ${r.hmacKeyId}` : ''}`;
    case 'deliver':
      return `dev ${r.link}`;
    case 'seg6local': {
      const lookup = r.lookup !== undefined ? tableOf(r.lookup) : undefined;
      const extra =
        lookup !== undefined
          ? ` table ${lookup}${names?.get(lookup) ? ` (${names.get(lookup)})` : ''}`
          : r.nextHop !== undefined
            ? ` nh6 ${at.ip(r.nextHop)}${r.link ? ` dev ${r.link}` : ''}`
            : '';
      return `encap seg6local action ${r.behavior}${extra}`;
    }
    case 'unreachable':
      return 'unreachable';
  }
}

function destination(at: AddressText, prefix: Ipv6Prefix, from?: Ipv6Prefix): string {
  return from ? `${at.prefix(prefix)} from ${at.prefix(from)}` : at.prefix(prefix);
}

function compareRoutes(a: PlannedRoute, b: PlannedRoute): number {
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
}

/** Formats the plans of one fabric; shares the table names and address texts between its hosts. */
export class PlanFormatter {
  readonly view: FabricView;
  readonly names: ReadonlyMap<number, string>;
  readonly #at = new AddressText();

  /**
   * Sort rank of every destination address the fabric can produce (SIDs, locators, workloads,
   * external prefixes), in address order: sorting a host's routes then compares numbers instead of
   * 128-bit bigints (the bigint sort was half the time of a large plan). Keyed like AddressText.
   */
  readonly #rank = new Map<bigint, number>();

  constructor(view: FabricView) {
    this.view = view;
    this.names = tableNames(view);
    const addresses: Ipv6Address[] = [0n];
    for (const h of view.hosts.values()) {
      addresses.push(h.locator.address);
      for (const s of h.sids.all) addresses.push(s.sid);
    }
    for (const e of view.edges.values()) for (const l of e.locators) addresses.push(l.address);
    for (const w of view.workloads.values()) addresses.push(w.address);
    for (const r of view.externalRoutes) addresses.push(r.prefix.address);
    addresses.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let rank = 0;
    for (const a of addresses) {
      const key = a ^ (a >> 64n);
      if (!this.#rank.has(key)) this.#rank.set(key, rank++);
    }
  }

  /**
   * The routes in `compareRoutes` order (table, default route last, address, length; stable), by
   * rank; falls back to comparing bigints when a destination is not one the fabric names.
   */
  #sortRoutes(routes: PlannedRoute[]): PlannedRoute[] {
    const n = routes.length;
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const p = routes[i]!.prefix;
      const rank = this.#rank.get(p.address ^ (p.address >> 64n));
      if (rank === undefined) return routes.sort(compareRoutes);
      // rank < 2^32 and length <= 128: exact in a double.
      keys[i] = (p.length === 0 ? 2 ** 41 : 0) + rank * 256 + p.length;
    }
    const tables = new Float64Array(n);
    for (let i = 0; i < n; i++) tables[i] = tableOf(routes[i]!.scope);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((i, j) => tables[i]! - tables[j]! || keys[i]! - keys[j]! || i - j);
    const sorted = new Array<PlannedRoute>(n);
    for (let i = 0; i < n; i++) sorted[i] = routes[order[i]!]!;
    return sorted;
  }

  /** One host's plan as tables (no trailing newline). */
  text(plan: HostPlan): string {
    const { view, names } = this;
    const at = this.#at;
    const host = view.hosts.get(plan.host)!;
    const out: string[] = [];
    out.push(`host ${host.name}  underlay ${at.ip(host.underlay)}  locator ${at.prefix(host.locator)}`);
    out.push('  SIDs');
    out.push(
      renderTable(
        ['SID', 'BEHAVIOR', 'DETAIL'],
        host.sids.all.map((s) => [at.ip(s.sid), s.behavior, sidDetail(s, names, at)]),
        '    ',
      ),
    );
    const routes: PlannedRoute[] = [];
    const links: PlannedLink[] = [];
    for (const o of plan.objects.values()) {
      if (isRoute(o)) routes.push(o);
      else if (o.kind === 'link') links.push(o);
    }
    // The kernel's `ip rule`s: one per link with an ingress scope.
    const rules = links.flatMap((o) =>
      o.ingress
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
    const sorted = this.#sortRoutes(routes);
    out.push(`  Routes (${sorted.length})`);
    for (let i = 0; i < sorted.length; ) {
      const table = tableOf(sorted[i]!.scope);
      let j = i;
      while (j < sorted.length && tableOf(sorted[j]!.scope) === table) j++;
      out.push(`    table ${table} (${names.get(table) ?? 'agent'})`);
      this.#routeRows(out, sorted, i, j);
      i = j;
    }
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
              l.address !== undefined ? at.ip(l.address) : '',
              filter && filter.kind === 'filter'
                ? `source only ${at.ip(filter.source)}; drop to ${filter.denyDestinations.map((p) => at.prefix(p)).join(' ')}`
                : '',
            ];
          }),
          '    ',
        ),
      );
    }
    return out.join('\n');
  }

  /**
   * Routes [from, to) of one table as `renderTable` would print them (same widths, same trimming),
   * without a row array per route: this is where a large fabric's plan spends its time.
   */
  #routeRows(out: string[], routes: readonly PlannedRoute[], from: number, to: number): void {
    const at = this.#at;
    const n = to - from;
    const dests = new Array<string>(n);
    const actions = new Array<string>(n);
    let wd = 'DESTINATION'.length;
    let wa = 'ACTION'.length;
    for (let k = 0; k < n; k++) {
      const r = routes[from + k]!;
      let d: string;
      let a: string;
      if (r.kind === 'locator') {
        // Every host routes to every other host's locator: one text per locator, shared.
        const cached = this.#locatorCells.get(r.prefix);
        if (cached && cached.via === r.via) {
          d = cached.destination;
          a = cached.action;
        } else {
          d = at.prefix(r.prefix);
          a = routeAction(r, this.names, at);
          this.#locatorCells.set(r.prefix, { via: r.via, destination: d, action: a });
        }
        if (r.from) d = destination(at, r.prefix, r.from);
      } else {
        d = destination(at, r.prefix, r.from);
        a = routeAction(r, this.names, at);
      }
      dests[k] = d;
      actions[k] = a;
      if (d.length > wd) wd = d.length;
      if (a.length > wa) wa = a.length;
    }
    const line = (d: string, a: string, why: string) => {
      const s = `      ${d}${pad(wd - d.length + 2)}${a}${pad(wa - a.length + 2)}${why}`;
      // renderTable trims each line's end; only an empty or space-ended last cell leaves any.
      return why === '' || /\s$/.test(why) ? s.trimEnd() : s;
    };
    out.push(line('DESTINATION', 'ACTION', 'WHY'));
    for (let k = 0; k < n; k++) out.push(line(dests[k]!, actions[k]!, routes[from + k]!.reason));
  }

  readonly #locatorCells = new WeakMap<
    Ipv6Prefix,
    { via: Ipv6Address; destination: string; action: string }
  >();

  /** JSON-ready form of one host's plan (bigints as address text). */
  json(plan: HostPlan): unknown {
    const at = this.#at;
    const host = this.view.hosts.get(plan.host)!;
    const text = (o: PlannedObject): Record<string, unknown> => {
      const out: Record<string, unknown> = {};
      for (const k in o) {
        const v = (o as unknown as Record<string, unknown>)[k];
        if (typeof v === 'bigint') out[k] = at.ip(v);
        else if (Array.isArray(v))
          out[k] = v.map((x: Ipv6Address | Ipv6Prefix) => (typeof x === 'bigint' ? at.ip(x) : at.prefix(x)));
        else if (v && typeof v === 'object' && 'length' in v) out[k] = at.prefix(v as Ipv6Prefix);
        else out[k] = v;
      }
      // The kernel table of the route's scope, as before scopes existed.
      if (isRoute(o)) out.table = tableOf(o.scope);
      return out;
    };
    const objects: Record<string, unknown>[] = [];
    for (const o of plan.objects.values()) objects.push(text(o));
    return {
      host: host.name,
      underlay: at.ip(host.underlay),
      locator: at.prefix(host.locator),
      sids: host.sids.all.map((s) => ({
        sid: at.ip(s.sid),
        behavior: s.behavior,
        key: s.key,
        ...(s.tenant ? { tenant: s.tenant } : {}),
        ...(s.lookup !== undefined || s.returns !== undefined
          ? { table: tableOf((s.lookup ?? s.returns)!) }
          : {}),
        ...(s.nextHop !== undefined ? { nextHop: at.ip(s.nextHop) } : {}),
      })),
      objects,
    };
  }
}

export function formatHostPlan(view: FabricView, plan: HostPlan): string {
  return new PlanFormatter(view).text(plan);
}

/** JSON-ready form of a plan (bigints as address text). */
export function planToJson(view: FabricView, plan: HostPlan): unknown {
  return new PlanFormatter(view).json(plan);
}

/**
 * The plans of `hosts` as text, in chunks: the fabric's summary line, then one chunk per host,
 * computed when the consumer asks for it. Concatenated, the chunks are exactly what the whole output
 * was when `segmesh plan` built it in one piece.
 */
export function* planTextChunks(
  view: FabricView,
  hosts: Iterable<string>,
  summary: string,
): Generator<string, void, undefined> {
  const f = new PlanFormatter(view);
  yield `${summary}\n\n`;
  let first = true;
  for (const h of hosts) {
    yield `${first ? '' : '\n\n'}${f.text(computeHostPlan(view, h))}`;
    first = false;
  }
  yield '\n';
}

/**
 * The plans of `hosts` as one JSON array (2-space indentation, as `JSON.stringify(plans, null, 2)`
 * would print it), in chunks: the array is written piecewise, one element per host.
 */
export function* planJsonChunks(
  view: FabricView,
  hosts: Iterable<string>,
): Generator<string, void, undefined> {
  const f = new PlanFormatter(view);
  let first = true;
  for (const h of hosts) {
    // An element of a top-level array: its own lines, each indented one more level.
    const element = JSON.stringify(f.json(computeHostPlan(view, h)), null, 2).replaceAll('\n', '\n  ');
    yield `${first ? '[\n  ' : ',\n  '}${element}`;
    first = false;
  }
  yield first ? '[]\n' : '\n]\n';
}
