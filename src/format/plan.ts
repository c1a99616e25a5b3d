/**
 * Rendering a host plan for people (tables) and for programs (JSON with addresses as text), and the
 * whole fabric's plan as a stream of UTF-8 chunks, one host at a time, so that `segmesh plan` holds at
 * most one host's plan (not the fabric's) however large the fabric. Pure: returns strings, bytes and
 * plain objects; writes nothing.
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

/**
 * Routes are shown (`segmesh routes`, `segmesh explain`) with the routing table and name the kernel
 * backend gives each lookup scope: the numbers people find with `ip route show table N`.
 */
export { scopeName, tableOf };

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
/** Runs of spaces, one string per length: padding a cell allocates nothing. */
const PADS = Array.from({ length: SPACES.length + 1 }, (_, n) => SPACES.slice(0, n));
function pad(n: number): string {
  return n < PADS.length ? PADS[n]! : ' '.repeat(n);
}

/** Node's Buffer method that encodes a string at an offset without argument juggling (not in @types/node). */
type Utf8Buffer = Buffer & { utf8Write(text: string, offset: number): number };

const allocate = (size: number): Utf8Buffer => Buffer.allocUnsafeSlow(size) as Utf8Buffer;

/**
 * Text encoded straight into large buffers: a plan is gigabytes of short cells, and building a host's
 * text as one string (an array of lines, joined) then encoding it again per write cost more than
 * computing the plan. `take()`
 * hands out what was written since the last call; those bytes are never written again, so a consumer
 * may keep them (a pipe's queue does).
 */
export class ByteChunks {
  readonly #size: number;
  #buf: Utf8Buffer;
  #pos = 0;
  #start = 0;
  readonly #ready: Uint8Array[] = [];

  constructor(size = 1 << 20) {
    this.#size = size;
    this.#buf = allocate(size);
  }

  #room(n: number): void {
    if (this.#buf.length - this.#pos >= n) return;
    this.#seal();
    this.#buf = allocate(Math.max(this.#size, n));
    this.#pos = 0;
    this.#start = 0;
  }

  #seal(): void {
    if (this.#pos > this.#start) this.#ready.push(this.#buf.subarray(this.#start, this.#pos));
    this.#start = this.#pos;
  }

  text(s: string): void {
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    this.#room(s.length * 3);
    this.#pos += this.#buf.utf8Write(s, this.#pos);
  }

  spaces(n: number): void {
    if (n < PADS.length) this.text(PADS[n]!);
    else this.text(' '.repeat(n));
  }

  /** The bytes written since the last call, in order. */
  take(): Uint8Array[] {
    this.#seal();
    return this.#ready.splice(0);
  }
}

/** True if renderTable's trimEnd would shorten a line whose last cell is `why`. */
function endsBlank(why: string): boolean {
  if (why === '') return true;
  const c = why.charCodeAt(why.length - 1);
  return c === 32 || (c >= 9 && c <= 13) || (c > 127 && /\s$/.test(why));
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
    this.#rankBits = Math.max(1, Math.ceil(Math.log2(rank + 1)));
    const tables = [...this.names.keys()].sort((a, b) => a - b);
    for (let i = 0; i < tables.length; i++) this.#tableIndex.set(tables[i]!, i);
    this.#tableBits = Math.max(1, Math.ceil(Math.log2(tables.length + 1)));
  }

  /** Bits of a rank, and of a table's index in table order (`#tableIndex`). */
  readonly #rankBits: number;
  readonly #tableBits: number;
  readonly #tableIndex = new Map<number, number>();

  /**
   * The routes in `compareRoutes` order (table, default route last, address, length; stable), by
   * rank; falls back to comparing bigints when a destination is not one the fabric names.
   * `dests`: per sorted route, rank * 256 + prefix length (a key of its destination's text), or -1;
   * `tables`: per sorted route, its table.
   *
   * Each route's order is one number, [table index | default flag | rank | length | input index],
   * and a Float64Array sorts those natively (no comparator call per comparison: the comparator sort
   * was a fifth of the formatting time); the input index makes keys unique and the sort stable.
   */
  #sortRoutes(routes: PlannedRoute[]): { sorted: PlannedRoute[]; dests: Int32Array; tables: Float64Array } {
    const n = routes.length;
    const dests = new Int32Array(n);
    const tables = new Float64Array(n);
    const order = new Float64Array(n);
    const indexBits = 53 - this.#tableBits - this.#rankBits - 9;
    const fallback = () => {
      const sorted = routes.sort(compareRoutes);
      for (let i = 0; i < n; i++) tables[i] = tableOf(sorted[i]!.scope);
      return { sorted, dests: dests.fill(-1), tables };
    };
    if (indexBits < 1 || n >= 2 ** indexBits) return fallback();
    const flag = 2 ** (this.#rankBits + 8);
    const tableUnit = flag * 2;
    const indexUnit = 2 ** indexBits;
    for (let i = 0; i < n; i++) {
      const r = routes[i]!;
      const p = r.prefix;
      const rank = this.#rank.get(p.address ^ (p.address >> 64n));
      const table = tableOf(r.scope);
      const t = this.#tableIndex.get(table);
      if (rank === undefined || t === undefined) return fallback();
      tables[i] = table;
      dests[i] = rank * 256 + p.length;
      order[i] = (t * tableUnit + (p.length === 0 ? flag : 0) + dests[i]!) * indexUnit + i;
    }
    order.sort();
    const sorted = new Array<PlannedRoute>(n);
    const sortedDests = new Int32Array(n);
    const sortedTables = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const i = order[k]! % indexUnit;
      sorted[k] = routes[i]!;
      sortedDests[k] = dests[i]!;
      sortedTables[k] = tables[i]!;
    }
    return { sorted, dests: sortedDests, tables: sortedTables };
  }

  /** One host's plan as tables (no trailing newline). */
  text(plan: HostPlan): string {
    const w = new ByteChunks(1 << 16);
    this.writeText(plan, w);
    return Buffer.concat(w.take()).toString('utf8');
  }

  /** One host's plan as tables (no trailing newline), encoded into `w`. */
  writeText(plan: HostPlan, w: ByteChunks): void {
    const { view, names } = this;
    const at = this.#at;
    const host = view.hosts.get(plan.host)!;
    w.text(
      `host ${host.name}  underlay ${at.ip(host.underlay)}  locator ${at.prefix(host.locator)}\n  SIDs\n`,
    );
    w.text(
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
    const { sorted, dests, tables } = this.#sortRoutes(routes);
    w.text(`\n  Routes (${sorted.length})`);
    for (let i = 0; i < sorted.length; ) {
      const table = tables[i]!;
      let j = i;
      while (j < sorted.length && tables[j] === table) j++;
      w.text(`\n    table ${table} (${names.get(table) ?? 'agent'})`);
      this.#routeRows(w, sorted, dests, i, j);
      i = j;
    }
    if (rules.length > 0) {
      w.text('\n  Rules\n');
      w.text(
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
      w.text('\n  Links and ingress filters\n');
      w.text(
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
                ? `source only ${at.ip(filter.source)}; drop to ${this.#denyText(filter.denyDestinations)}`
                : '',
            ];
          }),
          '    ',
        ),
      );
    }
  }

  /** A host's links share one deny list (every underlay address): its text once per host. */
  readonly #deny = new WeakMap<readonly Ipv6Prefix[], string>();
  #denyText(list: readonly Ipv6Prefix[]): string {
    let t = this.#deny.get(list);
    if (t === undefined) {
      t = list.map((p) => this.#at.prefix(p)).join(' ');
      this.#deny.set(list, t);
    }
    return t;
  }

  /** Destination texts by `#sortRoutes` key (rank * 256 + length): the fabric's, not the output's. */
  readonly #destText = new Map<number, string>();

  /** Action texts of locator routes per locator, and of encap routes per shared segment list. */
  readonly #locatorAction = new WeakMap<Ipv6Prefix, { via: Ipv6Address; action: string }>();
  readonly #singleSegmentAction = new Map<number, string>();
  readonly #encapAction = new WeakMap<
    readonly Ipv6Address[],
    { mode: string; hmacKeyId: number | undefined; action: string }
  >();

  #action(r: PlannedRoute): string {
    if (r.kind === 'locator') {
      // Every host routes to every other host's locator: one text per locator.
      const c = this.#locatorAction.get(r.prefix);
      if (c !== undefined && c.via === r.via) return c.action;
      const action = routeAction(r, this.names, this.#at);
      this.#locatorAction.set(r.prefix, { via: r.via, action });
      return action;
    }
    if (r.kind === 'encap') {
      // Every workload behind the same host and tenant has that host's delivery SID as its one
      // segment (a list per host computed): one text per SID and mode, by the SID's rank.
      if (r.segments.length === 1 && r.hmacKeyId === undefined) {
        const sid = r.segments[0]!;
        const rank = this.#rank.get(sid ^ (sid >> 64n));
        if (rank !== undefined) {
          const key = rank * 2 + (r.mode === 'encap' ? 1 : 0);
          let action = this.#singleSegmentAction.get(key);
          if (action === undefined) {
            action = routeAction(r, this.names, this.#at);
            this.#singleSegmentAction.set(key, action);
          }
          return action;
        }
      }
      const c = this.#encapAction.get(r.segments);
      if (c !== undefined && c.mode === r.mode && c.hmacKeyId === r.hmacKeyId) return c.action;
      const action = routeAction(r, this.names, this.#at);
      this.#encapAction.set(r.segments, { mode: r.mode, hmacKeyId: r.hmacKeyId, action });
      return action;
    }
    return routeAction(r, this.names, this.#at);
  }

  /**
   * Routes [from, to) of one table as `renderTable` would print them (same widths, same trimming),
   * each line preceded by a newline: this is where a large fabric's plan spends its time.
   */
  #routeRows(
    w: ByteChunks,
    routes: readonly PlannedRoute[],
    keys: Int32Array,
    from: number,
    to: number,
  ): void {
    const at = this.#at;
    const n = to - from;
    const dests = new Array<string>(n);
    const actions = new Array<string>(n);
    let wd = 'DESTINATION'.length;
    let wa = 'ACTION'.length;
    for (let k = 0; k < n; k++) {
      const r = routes[from + k]!;
      let d: string | undefined;
      if (r.from) d = destination(at, r.prefix, r.from);
      else {
        const key = keys[from + k]!;
        d = key >= 0 ? this.#destText.get(key) : undefined;
        if (d === undefined) {
          d = at.prefix(r.prefix);
          if (key >= 0) this.#destText.set(key, d);
        }
      }
      const a = this.#action(r);
      dests[k] = d;
      actions[k] = a;
      if (d.length > wd) wd = d.length;
      if (a.length > wa) wa = a.length;
    }
    // Lines are joined into a rope of about 32 K characters and encoded in one call: encoding each
    // cell on its own was slower, as most reasons are ropes themselves (built per route by the model)
    // and each would be flattened on its own.
    let rope = '';
    const line = (d: string, a: string, why: string) => {
      const row = `\n      ${d}${pad(wd - d.length + 2)}${a}${pad(wa - a.length + 2)}${why}`;
      // renderTable trims each line's end; only an empty or space-ended last cell leaves any.
      rope += endsBlank(why) ? row.trimEnd() : row;
      if (rope.length > 32_768) {
        w.text(rope);
        rope = '';
      }
    };
    line('DESTINATION', 'ACTION', 'WHY');
    for (let k = 0; k < n; k++) line(dests[k]!, actions[k]!, routes[from + k]!.reason);
    w.text(rope);
  }

  /** JSON-ready form of one host's plan (bigints as address text). */
  json(plan: HostPlan): unknown {
    const at = this.#at;
    const host = this.view.hosts.get(plan.host)!;
    const text = (o: PlannedObject): Record<string, unknown> => {
      // A key's secret never leaves the agent's memory and the kernel (as gossip redacts it).
      if (o.kind === 'hmac-key')
        return {
          kind: o.kind,
          key: o.key,
          keyId: o.keyId,
          algorithm: o.algorithm,
          secret: '<redacted>',
          reason: o.reason,
        };
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
 * The plans of `hosts` as UTF-8 text, in chunks: the fabric's summary line, then each host's plan,
 * computed when the consumer asks for it (a host's first chunk starts with its header, after the
 * blank line between hosts; a large host spans several chunks of about 1 MiB). Concatenated, the
 * chunks are exactly what the whole output was when `segmesh plan` built it in one piece.
 */
export function* planTextChunks(
  view: FabricView,
  hosts: Iterable<string>,
  summary: string,
): Generator<Uint8Array, void, undefined> {
  const f = new PlanFormatter(view);
  const w = new ByteChunks();
  w.text(`${summary}\n\n`);
  yield* w.take();
  let first = true;
  for (const h of hosts) {
    if (!first) w.text('\n\n');
    f.writeText(computeHostPlan(view, h), w);
    yield* w.take();
    first = false;
  }
  w.text('\n');
  yield* w.take();
}

/**
 * The plans of `hosts` as one JSON array (2-space indentation, as `JSON.stringify(plans, null, 2)`
 * would print it), in UTF-8 chunks: the array is written piecewise, one element per host.
 */
export function* planJsonChunks(
  view: FabricView,
  hosts: Iterable<string>,
): Generator<Uint8Array, void, undefined> {
  const f = new PlanFormatter(view);
  const w = new ByteChunks();
  let first = true;
  for (const h of hosts) {
    // An element of a top-level array, as JSON.stringify indents it there: the one-element array's
    // text without its brackets (no second pass over the text to indent it).
    const element = JSON.stringify([f.json(computeHostPlan(view, h))], null, 2);
    w.text(first ? '[\n  ' : ',\n  ');
    w.text(element.slice(4, -2));
    yield* w.take();
    first = false;
  }
  w.text(first ? '[]\n' : '\n]\n');
  yield* w.take();
}
