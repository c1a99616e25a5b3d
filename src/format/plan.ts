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
  SharedPlanning,
} from '../srv6/pathcompute.ts';
import type { Scope } from '../srv6/scope.ts';
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

  /** Buffers filled since the last recycle() (their bytes may still be in a consumer's hands). */
  readonly #filled: Utf8Buffer[] = [];
  /** Buffers a consumer is done with (see recycle()). */
  readonly #spare: Utf8Buffer[] = [];

  #room(n: number): void {
    if (this.#buf.length - this.#pos >= n) return;
    this.#seal();
    this.#filled.push(this.#buf);
    const size = Math.max(this.#size, n);
    const spare = this.#spare.pop();
    this.#buf = spare !== undefined && spare.length >= size ? spare : allocate(size);
    this.#pos = 0;
    this.#start = 0;
  }

  /**
   * The consumer is done with every chunk taken so far (it wrote them synchronously, and keeps
   * none): their buffers are written again. A consumer that keeps chunks (a pipe's queue) must not
   * call this. Saves allocating (and the kernel zeroing) a fresh buffer per MiB of output.
   */
  recycle(): void {
    if (this.#ready.length > 0 || this.#pos > this.#start)
      throw new Error('ByteChunks.recycle: bytes not taken yet');
    for (const b of this.#filled.splice(0)) this.#spare.push(b);
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

  /**
   * One table row from encoded cells: a newline, six spaces of indent, `first`, `firstPad` spaces,
   * `second`, `secondPad` spaces, `last`. Bytes copied, nothing encoded or allocated: a plan is
   * millions of rows made of a few thousand distinct cells.
   */
  row(first: Uint8Array, firstPad: number, second: Uint8Array, secondPad: number, last: Uint8Array): void {
    this.#room(7 + first.length + firstPad + second.length + secondPad + last.length);
    const b = this.#buf;
    let p = this.#pos;
    b[p] = 10;
    for (let i = 1; i < 7; i++) b[p + i] = 32;
    p += 7;
    b.set(first, p);
    p += first.length;
    for (let i = 0; i < firstPad; i++) b[p++] = 32;
    b.set(second, p);
    p += second.length;
    for (let i = 0; i < secondPad; i++) b[p++] = 32;
    b.set(last, p);
    this.#pos = p + last.length;
  }

  /** Bytes copied as they are (a row encoded before). */
  bytes(b: Uint8Array): void {
    this.#room(b.length);
    this.#buf.set(b, this.#pos);
    this.#pos += b.length;
  }

  /** The bytes written since the last call, in order. */
  take(): Uint8Array[] {
    this.#seal();
    return this.#ready.splice(0);
  }
}

/** A cell of a table: its text (its length is the column width, as renderTable counts) and UTF-8 bytes. */
interface Cell {
  readonly text: string;
  readonly bytes: Uint8Array;
  /** As a line's last cell, renderTable's trimEnd would shorten the line (see endsBlank). */
  readonly blank: boolean;
}

/**
 * What the formatter knows of one prefix object of the model: its sort key and text, and the last
 * route printed to it (kind, next hop or segments), whose action and reason cells serve the next
 * route like it.
 */
interface Dest {
  /** rank * 256 + length (see #sortRoutes). */
  readonly key: number;
  readonly cell: Cell;
  kind: 'locator' | 'encap' | undefined;
  via: Ipv6Address;
  segments: readonly Ipv6Address[];
  mode: string;
  hmacKeyId: number | undefined;
  action: Cell;
  reasonText: string | undefined;
  why: Cell;
  /**
   * Whole rows to this destination encoded before, with the cells and column widths they were made
   * of: most rows repeat on every host (same action, reason and widths), so a row costs one copy.
   * A few per destination, as one prefix is printed in tables of different widths (a locator in the
   * main table and in every tenant's egress table).
   */
  rows: Row[];
}

/** One encoded table row (newline and indent included) and what it was made of. */
interface Row {
  readonly action: Cell;
  readonly why: Cell;
  readonly wd: number;
  readonly wa: number;
  readonly bytes: Uint8Array;
}

/** Rows kept per destination (see Dest.rows). */
const ROWS_PER_DEST = 4;

const NO_SEGMENTS: readonly Ipv6Address[] = [];

function sameSegments(a: readonly Ipv6Address[], b: readonly Ipv6Address[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function samePrefixes(a: readonly Ipv6Prefix[], b: readonly Ipv6Prefix[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.address !== b[i]!.address || a[i]!.length !== b[i]!.length) return false;
  }
  return true;
}

function cell(text: string): Cell {
  return { text, bytes: Buffer.from(text, 'utf8'), blank: endsBlank(text) };
}

/**
 * The encoded row to `d` with action `a`, reason `why` and column widths `wd`, `wa`: one of the rows
 * `d` keeps, or a new one (replacing its oldest when it keeps ROWS_PER_DEST already).
 */
function rowOf(d: Dest, a: Cell, why: Cell, wd: number, wa: number): Uint8Array {
  const rows = d.rows;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (r.action === a && r.why === why && r.wd === wd && r.wa === wa) return r.bytes;
  }
  const c = d.cell.bytes;
  const padD = wd - d.cell.text.length + 2;
  const padA = wa - a.text.length + 2;
  const bytes = new Uint8Array(7 + c.length + padD + a.bytes.length + padA + why.bytes.length);
  bytes[0] = 10;
  let p = 1;
  bytes.fill(32, p, p + 6);
  p += 6;
  bytes.set(c, p);
  p += c.length;
  bytes.fill(32, p, p + padD);
  p += padD;
  bytes.set(a.bytes, p);
  p += a.bytes.length;
  bytes.fill(32, p, p + padA);
  p += padA;
  bytes.set(why.bytes, p);
  if (rows.length >= ROWS_PER_DEST) rows.shift();
  rows.push({ action: a, why, wd, wa, bytes });
  return bytes;
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

  /**
   * What the formatter derived from each prefix object of the model: its rank and text, and the
   * action and reason of the last route to it. The model shares a locator's and a workload's prefix,
   * and the reason strings, between every host's plan, and a destination's action is the same on
   * almost every host (via the locator's underlay; encap to the delivery SID of the workload's host):
   * a route then costs a lookup and a few comparisons instead of BigInt arithmetic and new strings.
   * Grows with the fabric's prefixes, never with the output.
   */
  readonly #dests = new WeakMap<Ipv6Prefix, Dest>();
  /** Destination cells by rank * 256 + length: shared by equal prefixes that are different objects. */
  readonly #destCells = new Map<number, Cell>();

  #destOf(p: Ipv6Prefix): Dest | undefined {
    let d = this.#dests.get(p);
    if (d === undefined) {
      const rank = this.#rank.get(p.address ^ (p.address >> 64n));
      if (rank === undefined) return undefined;
      const key = rank * 256 + p.length;
      let c = this.#destCells.get(key);
      if (c === undefined) {
        c = cell(this.#at.prefix(p));
        this.#destCells.set(key, c);
      }
      d = {
        key,
        cell: c,
        kind: undefined,
        via: 0n,
        segments: NO_SEGMENTS,
        mode: '',
        hmacKeyId: undefined,
        action: c,
        reasonText: undefined,
        why: c,
        rows: [],
      };
      this.#dests.set(p, d);
    }
    return d;
  }

  /** A scope's kernel table and that table's index in table order, per scope object. */
  readonly #scopeTables = new WeakMap<Scope, { table: number; index: number } | undefined>();
  #scopeTable(scope: Scope): { table: number; index: number } | undefined {
    if (this.#scopeTables.has(scope)) return this.#scopeTables.get(scope);
    const table = tableOf(scope);
    const index = this.#tableIndex.get(table);
    const s = index === undefined ? undefined : { table, index };
    this.#scopeTables.set(scope, s);
    return s;
  }

  /** Bits of a rank, and of a table's index in table order (`#tableIndex`). */
  readonly #rankBits: number;
  readonly #tableBits: number;
  readonly #tableIndex = new Map<number, number>();

  /**
   * The routes in `compareRoutes` order (table, default route last, address, length; stable), by
   * rank; falls back to comparing bigints when a destination is not one the fabric names.
   * `dests`: per sorted route, what is known of its destination (none after the fallback);
   * `tables`: per sorted route, its table.
   *
   * Each route's order is one number, [table index | default flag | rank | length | input index],
   * and a Float64Array sorts those natively (no comparator call per comparison: the comparator sort
   * was a fifth of the formatting time); the input index makes keys unique and the sort stable.
   */
  #sortRoutes(routes: PlannedRoute[]): {
    sorted: PlannedRoute[];
    dests: (Dest | undefined)[];
    tables: Float64Array;
  } {
    const n = routes.length;
    const dests = new Array<Dest | undefined>(n);
    const tables = new Float64Array(n);
    const order = new Float64Array(n);
    const indexBits = 53 - this.#tableBits - this.#rankBits - 9;
    const fallback = () => {
      const sorted = routes.sort(compareRoutes);
      for (let i = 0; i < n; i++) tables[i] = tableOf(sorted[i]!.scope);
      return { sorted, dests: dests.fill(undefined), tables };
    };
    if (indexBits < 1 || n >= 2 ** indexBits) return fallback();
    const flag = 2 ** (this.#rankBits + 8);
    const tableUnit = flag * 2;
    const indexUnit = 2 ** indexBits;
    // Routes come grouped by scope: look a scope up when it changes.
    let scope: Scope | undefined;
    let s: { table: number; index: number } | undefined;
    for (let i = 0; i < n; i++) {
      const r = routes[i]!;
      const p = r.prefix;
      const d = this.#destOf(p);
      if (r.scope !== scope) {
        scope = r.scope;
        s = this.#scopeTable(scope);
      }
      if (d === undefined || s === undefined) return fallback();
      tables[i] = s.table;
      dests[i] = d;
      order[i] = (s.index * tableUnit + (p.length === 0 ? flag : 0) + d.key) * indexUnit + i;
    }
    order.sort();
    const sorted = new Array<PlannedRoute>(n);
    const sortedDests = new Array<Dest | undefined>(n);
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
                ? `${filter.source !== undefined ? `source only ${at.ip(filter.source)}` : 'any source'}; drop to ${this.#denyText(filter.denyDestinations)}`
                : '',
            ];
          }),
          '    ',
        ),
      );
    }
  }

  /**
   * A host's links share one deny list (the SID block and every underlay address): its text once per
   * fabric. Each host's plan has its own list object, with the same prefixes: compared by value
   * (BigInt comparisons allocate nothing), not formatted again per host.
   */
  #deny: { list: readonly Ipv6Prefix[]; text: string } | undefined;
  #denyText(list: readonly Ipv6Prefix[]): string {
    const last = this.#deny;
    if (last !== undefined && samePrefixes(last.list, list)) return last.text;
    const text = list.map((p) => this.#at.prefix(p)).join(' ');
    this.#deny = { list, text };
    return text;
  }

  /**
   * Cells by text: action texts and reasons not found through a Dest. Grows with the fabric's
   * distinct texts, never with the output.
   */
  readonly #cells = new Map<string, Cell>();
  #cell(text: string): Cell {
    let c = this.#cells.get(text);
    if (c === undefined) {
      c = cell(text);
      this.#cells.set(text, c);
    }
    return c;
  }

  /** The action cell of `r`, through its destination's last route when that route was alike. */
  #action(r: PlannedRoute, d: Dest | undefined): Cell {
    if (d === undefined) return this.#cell(routeAction(r, this.names, this.#at));
    if (r.kind === 'locator') {
      if (d.kind === 'locator' && d.via === r.via) return d.action;
      d.kind = 'locator';
      d.via = r.via;
    } else if (r.kind === 'encap') {
      if (
        d.kind === 'encap' &&
        d.mode === r.mode &&
        d.hmacKeyId === r.hmacKeyId &&
        sameSegments(d.segments, r.segments)
      )
        return d.action;
      d.kind = 'encap';
      d.mode = r.mode;
      d.hmacKeyId = r.hmacKeyId;
      d.segments = r.segments;
    } else return this.#cell(routeAction(r, this.names, this.#at));
    d.action = this.#cell(routeAction(r, this.names, this.#at));
    return d.action;
  }

  /**
   * Routes [from, to) of one table as `renderTable` would print them (same widths, same trimming),
   * each line preceded by a newline: this is where a large fabric's plan spends its time, so a row
   * is copied from cells encoded once per fabric (destination, action, reason), not built as text.
   */
  #routeRows(
    w: ByteChunks,
    routes: readonly PlannedRoute[],
    infos: readonly (Dest | undefined)[],
    from: number,
    to: number,
  ): void {
    const at = this.#at;
    const n = to - from;
    const dests = new Array<Cell>(n);
    const actions = new Array<Cell>(n);
    const whys = new Array<Cell>(n);
    let wd = 'DESTINATION'.length;
    let wa = 'ACTION'.length;
    for (let k = 0; k < n; k++) {
      const r = routes[from + k]!;
      const d = infos[from + k];
      const dc = r.from
        ? this.#cell(destination(at, r.prefix, r.from))
        : d !== undefined
          ? d.cell
          : cell(at.prefix(r.prefix));
      const a = this.#action(r, d);
      let why: Cell;
      if (d !== undefined && d.reasonText === r.reason) why = d.why;
      else {
        why = this.#cell(r.reason);
        if (d !== undefined) {
          d.reasonText = r.reason;
          d.why = why;
        }
      }
      dests[k] = dc;
      actions[k] = a;
      whys[k] = why;
      if (dc.text.length > wd) wd = dc.text.length;
      if (a.text.length > wa) wa = a.text.length;
    }
    w.text(
      `\n      DESTINATION${pad(wd - 'DESTINATION'.length + 2)}ACTION${pad(wa - 'ACTION'.length + 2)}WHY`,
    );
    for (let k = 0; k < n; k++) {
      const d = dests[k]!;
      const a = actions[k]!;
      const why = whys[k]!;
      if (why.blank) {
        // renderTable trims each line's end; only an empty or space-ended last cell leaves any.
        w.text(
          `\n      ${d.text}${pad(wd - d.text.length + 2)}${a.text}${pad(wa - a.text.length + 2)}${why.text}`.trimEnd(),
        );
        continue;
      }
      const info = infos[from + k];
      // Only a destination's own cell may be served from its rows (a source-specific route's is not).
      if (info === undefined || info.cell !== d) {
        w.row(d.bytes, wd - d.text.length + 2, a.bytes, wa - a.text.length + 2, why.bytes);
        continue;
      }
      w.bytes(rowOf(info, a, why, wd, wa));
    }
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
  opts: ChunkOptions = {},
): Generator<Uint8Array, void, undefined> {
  const f = new PlanFormatter(view);
  const shared = new SharedPlanning(view);
  const w = new ByteChunks();
  w.text(`${summary}\n\n`);
  yield* taken(w, opts);
  let first = true;
  for (const h of hosts) {
    if (!first) w.text('\n\n');
    f.writeText(computeHostPlan(view, h, shared), w);
    yield* taken(w, opts);
    first = false;
  }
  w.text('\n');
  yield* taken(w, opts);
}

export interface ChunkOptions {
  /**
   * The consumer writes each chunk before it asks for the next and keeps none (a synchronous write
   * to a file or /dev/null): a chunk's bytes may then be written over once the next is asked for.
   */
  readonly reuse?: boolean;
}

/** The chunks of `w` so far; with `reuse`, their buffers are recycled once the consumer had them all. */
function* taken(w: ByteChunks, opts: ChunkOptions): Generator<Uint8Array, void, undefined> {
  yield* w.take();
  if (opts.reuse) w.recycle();
}

/**
 * The plans of `hosts` as one JSON array (2-space indentation, as `JSON.stringify(plans, null, 2)`
 * would print it), in UTF-8 chunks: the array is written piecewise, one element per host.
 */
export function* planJsonChunks(
  view: FabricView,
  hosts: Iterable<string>,
  opts: ChunkOptions = {},
): Generator<Uint8Array, void, undefined> {
  const f = new PlanFormatter(view);
  const shared = new SharedPlanning(view);
  const w = new ByteChunks();
  let first = true;
  for (const h of hosts) {
    // An element of a top-level array, as JSON.stringify indents it there: the one-element array's
    // text without its brackets (no second pass over the text to indent it).
    const element = JSON.stringify([f.json(computeHostPlan(view, h, shared))], null, 2);
    w.text(first ? '[\n  ' : ',\n  ');
    w.text(element.slice(4, -2));
    yield* taken(w, opts);
    first = false;
  }
  w.text(first ? '[]\n' : '\n]\n');
  yield* taken(w, opts);
}
