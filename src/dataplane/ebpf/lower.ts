/**
 * The eBPF lowering of a forwarding intent (pure): the map entries the datapath (bpf/segmesh.c) reads,
 * plus the few kernel routes its FIB lookups need, and the diff of two such states.
 *
 * - attachments with an egress scope -> `sm_endpoints` (ifindex -> tenant, source it may use), their
 *   denied destinations -> `sm_blocked` (a /128 is a host address, anything shorter the SID block);
 *   an SR-unaware function's attachment (ingress: its return scope) -> `sm_endpoints` with the
 *   function's return key space and no source check (it hands back others' packets);
 * - egress, forward and return entries -> `sm_policy` (a /128: `sm_exact`, the same key without its
 *   prefix length, a hash the programs look up first), each scope in its key space ({tenant, prefix},
 *   {tenant | TENANT_FORWARD, prefix}, {function index | TENANT_RETURN, prefix}): encap / encap.red,
 *   deliver (a workload on this host: mode local with its MACs), unreachable (mode drop); `locator`
 *   entries there need nothing (the outer packet is looked up in the main table, where the underlay
 *   entries are). A scope whole in the map: its longest prefix wins as in a routing table. An encap
 *   value carries the sm_nexthops slot of its first segment's locator (below), 0 when no `locator`
 *   entry of the underlay covers that segment (wl_in then looks the outer destination up). An egress or
 *   return entry (what wl_in looks up) whose prefix overlaps a denied destination carries POL_BLOCKED:
 *   wl_in reads sm_blocked only for such an entry or none (the denied destinations come with the
 *   attachments: a delta holding one is lowered whole, so every entry's flag follows the blocked set);
 * - the underlay's `locator` entries (routes the agent itself installs: prefix via a next hop on the
 *   underlay link) -> `sm_nexthops` too, one slot per locator prefix, kept for as long as the prefix is
 *   (a restart reads the slots back from the map): wl_in sends an encapsulation whose first segment is
 *   under one to its next hop without a FIB lookup. A next hop change rewrites the slot only; a locator
 *   that appears or goes changes which policies have a slot: the whole intent is lowered then;
 * - delivery entries that encapsulate (a workload that moved away) -> `sm_policy` in the delivery key
 *   space ({tenant | TENANT_DELIVERY, prefix}): ul_in re-encapsulates after End.DT* of a delivery SID;
 *   a local workload's /128 delivery entry there too, mode local with its MACs: End.DT* delivers from
 *   the one lookup it already makes, and looks the tenant's table up (bpf_fib_lookup) only on a miss;
 * - local SIDs -> `sm_sids`; End.DT4/6/46 name their lookup scope's routing table (and the delivery
 *   flag when that is the delivery scope, the forward flag when it is the forward scope); each SID's
 *   value carries its counter slot in sm_sid_stats (SidSlots: one per SID for as long as it stays, read
 *   back from the map after a restart; a slot new to a SID is listed for the backend to zero first);
 * - underlay and delivery entries -> kernel routes (main table; the tenant's delivery table, which
 *   End.DT6's `bpf_fib_lookup` reads on a miss, and the stack), as the kernel backend lowers them
 *   (kernel/lower.ts): a local workload's delivery keeps its route beside its map entry;
 * - what the programs cannot do (source-specific entries, encap from the underlay scope, End.T /
 *   End.B6.*) is listed in `skipped` with the reason, never half-programmed.
 */
import {
  type Ipv6Address,
  type Ipv6Prefix,
  ipv6FromBytes,
  ipv6ToBytes,
  networkMask,
} from '../../srv6/address.ts';
import type {
  Attachment,
  ForwardingIntent,
  IntentDelta,
  IntentItem,
  LocalSid,
  PrefixEntry,
} from '../intent.ts';
import { entryRoute } from '../kernel/lower.ts';
import { tableOf } from '../kernel/tables.ts';
import { type Route, routeKey } from '../route.ts';
import {
  addrKey,
  type BehaviorName,
  Behavior as BpfBehavior,
  CFG_FIB,
  CFG_VALIDATE,
  configValue,
  endpointValue,
  entryKey,
  exactKey,
  ifindexKey,
  MAP,
  NEXTHOP_SLOTS,
  nexthopValue,
  parseNexthopValue,
  parseSidSlot,
  policyValue,
  reasonValue,
  SID_SLOTS,
  SIZES,
  sidKey,
  sidValue,
  u32Key,
} from './abi.ts';

/**
 * The maps the backend owns entirely: every entry in them is the lowering's (the rest it never writes).
 * Written in this order. sm_policy and sm_exact before sm_blocked: a new blocked prefix finds the
 * entries over it flagged (POL_BLOCKED) already, so it drops from its own write on, as before the flag.
 */
export const OWNED_MAPS = [
  MAP.config,
  MAP.endpoints,
  MAP.sids,
  MAP.nexthops,
  MAP.exact,
  MAP.policy,
  MAP.blocked,
] as const;
export type OwnedMap = (typeof OWNED_MAPS)[number];

/** What the lowering needs to know about a link (read from the kernel by the backend). */
export interface LinkFacts {
  readonly index: number;
  /** The link's own MAC (a workload veth's host side). */
  readonly mac?: Uint8Array;
  /** The MAC of the workload behind the link (its neighbour entry), for local delivery. */
  readonly peerMac?: Uint8Array;
}

export interface EbpfLoweringOptions {
  readonly underlayDevice: string;
  /** Outer source of encapsulated packets: this host's SRv6 source address. */
  readonly source: Ipv6Address;
  /** Source of ICMPv4 "fragmentation needed" sent to workloads (their IPv4 gateway); none: not sent. */
  readonly icmp4Source?: string;
  readonly links: ReadonlyMap<string, LinkFacts>;
  /**
   * The sm_nexthops slots of an earlier lowering or of the pinned map (locator -> slot, see
   * {@link locatorId}): a locator still present keeps its slot, so that its policies' values stay.
   */
  readonly nexthopSlots?: NexthopSlots;
  /**
   * The sm_sid_stats slots of an earlier lowering or of the pinned sm_sids (SID -> slot, keyed by the
   * stateKey of its sm_sids key): a SID still present keeps its slot, and so its counts.
   */
  readonly sidSlots?: ReadonlyMap<string, number>;
}

/** Locator prefix (its {@link locatorId}) -> its sm_nexthops slot (from 1). */
export type NexthopSlots = ReadonlyMap<string, number>;

/** The id of a locator prefix among the slots. */
export function locatorId(p: Ipv6Prefix): string {
  return `${p.address.toString(16)}/${p.length}`;
}

/**
 * The slots the pinned sm_nexthops holds (adoption after a restart: each locator keeps its slot). An
 * empty slot of the array (oif 0) holds none.
 */
export function slotsOfMap(entries: Iterable<[Uint8Array, Uint8Array]>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of entries) {
    if (emptySlot(v)) continue;
    const slot = k[0]! | (k[1]! << 8) | (k[2]! << 16) | (k[3]! << 24);
    const { prefix, prefixLength } = parseNexthopValue(v);
    out.set(locatorId({ address: ipv6FromBytes(prefix), length: prefixLength }), slot >>> 0);
  }
  return out;
}

/** An sm_nexthops value with oif 0: an empty slot of the array (what the lowering never writes). */
export function emptySlot(v: Uint8Array): boolean {
  return v[0] === 0 && v[1] === 0 && v[2] === 0 && v[3] === 0;
}

/** The counter slots the pinned sm_sids names (adoption after a restart: each SID keeps its slot and
 * its counts, and no entry is rewritten). Slot 0 (an older agent's entry), out of range or taken twice:
 * none (the SID gets a fresh one). */
export function sidSlotsOfMap(entries: Iterable<[Uint8Array, Uint8Array]>): Map<string, number> {
  const out = new Map<string, number>();
  const taken = new Set<number>();
  for (const [k, v] of entries) {
    const slot = parseSidSlot(v);
    if (slot === 0 || slot > SID_SLOTS || taken.has(slot)) continue;
    taken.add(slot);
    out.set(stateKey(k), slot);
  }
  return out;
}

/**
 * The sm_sid_stats slots of the local SIDs: one per SID (by the stateKey of its sm_sids key), kept while
 * the SID is lowered. A slot a SID leaves is not handed out again in the same lowering or delta step
 * (the SID's old entry, deleted after the puts, still counts into it), and a slot handed to a SID that
 * did not have it is listed in `fresh` (the backend zeroes it on all CPUs before writing the entry that
 * names it: a new SID never inherits another's counts). Lowest free slot first; none left: 0.
 */
export class SidSlots {
  readonly #slots = new Map<string, number>();
  /** Slots held before this step by SIDs not (yet) lowered in it: theirs again if they come back. */
  #reserved: Map<string, number>;
  /** Every slot of #slots and #reserved. */
  readonly #used = new Set<number>();
  #next = 1;
  /** Slots given to a SID that did not hold them, since the last {@link settle}. */
  private fresh: number[] = [];

  constructor(prev: ReadonlyMap<string, number> | undefined) {
    this.#reserved = new Map(prev ?? []);
    for (const v of this.#reserved.values()) this.#used.add(v);
  }

  /** SID (stateKey of its key) -> slot. */
  get slots(): ReadonlyMap<string, number> {
    return this.#slots;
  }

  /** The SID's slot, given one if it has none. */
  slotOf(id: string): number {
    const had = this.#slots.get(id);
    if (had !== undefined) return had;
    let slot = this.#reserved.get(id);
    if (slot !== undefined) this.#reserved.delete(id);
    else {
      while (this.#used.has(this.#next)) this.#next++;
      if (this.#next > SID_SLOTS) return 0;
      slot = this.#next;
      this.#used.add(slot);
      this.fresh.push(slot);
    }
    this.#slots.set(id, slot);
    return slot;
  }

  /** The SID went (a delta step): its slot stays reserved until {@link settle}. */
  release(id: string): void {
    const slot = this.#slots.get(id);
    if (slot === undefined) return;
    this.#slots.delete(id);
    this.#reserved.set(id, slot);
  }

  /**
   * End of a lowering or step: reserved slots whose SID did not come back are free from now on.
   * Returns the step's fresh slots.
   */
  settle(): number[] {
    for (const v of this.#reserved.values()) this.#used.delete(v);
    this.#reserved = new Map();
    this.#next = 1;
    const fresh = this.fresh;
    this.fresh = [];
    return fresh;
  }
}

/** An underlay `locator` entry: a route the agent itself installs toward another host's or an edge's locator. */
function isUnderlayLocator(i: IntentItem): i is PrefixEntry {
  return i.kind === 'entry' && i.scope.kind === 'underlay' && i.action.kind === 'locator' && !i.from;
}

/**
 * The slots of the underlay's locators and the longest-prefix match of a segment among them (a first
 * segment's slot: the same few segments for every entry toward one host, so answers are kept).
 */
export class Locators {
  readonly slots: NexthopSlots;
  readonly #byLength = new Map<number, Map<bigint, number>>();
  readonly #lengths: number[];
  readonly #memo = new Map<bigint, number>();

  constructor(prefixes: readonly Ipv6Prefix[], prev: NexthopSlots | undefined) {
    const slots = new Map<string, number>();
    const used = new Set(prev?.values() ?? []);
    const fresh: [string, Ipv6Prefix][] = [];
    for (const p of prefixes) {
      const id = locatorId(p);
      const had = prev?.get(id);
      if (had !== undefined) slots.set(id, had);
      else fresh.push([id, p]);
    }
    // A new locator never takes a slot freed in the same lowering (policies of the old one may still
    // name it until their values are rewritten): lowest slot neither held before nor now. The array has
    // NEXTHOP_SLOTS slots: a locator past them gets none (its policies look the next hop up by FIB).
    fresh.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    let next = 1;
    for (const [id] of fresh) {
      if (slots.has(id)) continue;
      while (used.has(next)) next++;
      if (next >= NEXTHOP_SLOTS) break;
      slots.set(id, next);
      used.add(next);
    }
    for (const p of prefixes) {
      const slot = slots.get(locatorId(p));
      if (slot === undefined) continue;
      let m = this.#byLength.get(p.length);
      if (!m) {
        m = new Map();
        this.#byLength.set(p.length, m);
      }
      m.set(p.address & networkMask(p.length), slot);
    }
    this.slots = slots;
    this.#lengths = [...this.#byLength.keys()].sort((a, b) => b - a);
  }

  /** The slot of the longest locator covering `a`, 0 if none. */
  slotOf(a: Ipv6Address): number {
    const hit = this.#memo.get(a);
    if (hit !== undefined) return hit;
    let slot = 0;
    for (const len of this.#lengths) {
      const s = this.#byLength.get(len)!.get(a & networkMask(len));
      if (s !== undefined) {
        slot = s;
        break;
      }
    }
    this.#memo.set(a, slot);
    return slot;
  }
}

/**
 * The denied destinations of the attachments (what `sm_blocked` holds) and whether a prefix overlaps one
 * of them: one contains the other, either way, or both are equal. An entry of wl_in's key spaces that
 * overlaps none cannot match a blocked destination (a destination inside both prefixes would make them
 * overlap), so it goes without POL_BLOCKED and wl_in does not look sm_blocked up for it.
 */
export class BlockedPrefixes {
  /** Per prefix length: the blocked prefixes of that length (masked addresses). */
  readonly #byLength = new Map<number, Set<bigint>>();
  readonly #lengths: number[];
  /** Per prefix length L asked for: the blocked prefixes of length >= L, masked to L (built on demand). */
  readonly #within = new Map<number, Set<bigint>>();
  readonly size: number;

  constructor(prefixes: Iterable<Ipv6Prefix>) {
    let n = 0;
    for (const p of prefixes) {
      let m = this.#byLength.get(p.length);
      if (!m) {
        m = new Set();
        this.#byLength.set(p.length, m);
      }
      const a = p.address & networkMask(p.length);
      if (!m.has(a)) n++;
      m.add(a);
    }
    this.size = n;
    this.#lengths = [...this.#byLength.keys()].sort((a, b) => a - b);
  }

  /** Whether `p` overlaps a blocked prefix (POL_BLOCKED on its entry). */
  overlaps(p: Ipv6Prefix): boolean {
    if (this.size === 0) return false;
    // A blocked prefix contains p (or equals it).
    for (const len of this.#lengths) {
      if (len > p.length) break;
      if (this.#byLength.get(len)!.has(p.address & networkMask(len))) return true;
    }
    // p contains a longer blocked prefix.
    let w = this.#within.get(p.length);
    if (!w) {
      w = new Set();
      const mask = networkMask(p.length);
      for (const len of this.#lengths)
        if (len >= p.length) for (const a of this.#byLength.get(len)!) w.add(a & mask);
      this.#within.set(p.length, w);
    }
    return w.has(p.address & networkMask(p.length));
  }
}

/** One pass over the items: the underlay's locators (with their slots) and the blocked prefixes. */
function prepass(items: Iterable<IntentItem>, prev: NexthopSlots | undefined, sids: SidSlots): Shared {
  const prefixes: Ipv6Prefix[] = [];
  const denied: Ipv6Prefix[] = [];
  for (const i of items) {
    if (isUnderlayLocator(i)) prefixes.push(i.prefix);
    else if (i.kind === 'attachment' && i.restrict?.denyDestinations)
      for (const d of i.restrict.denyDestinations) denied.push(d);
  }
  return { loc: new Locators(prefixes, prev), blocked: new BlockedPrefixes(denied), sids };
}

export interface MapEntry {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  /** The intent item it comes from (for messages). */
  readonly item: string;
}

export interface EbpfState {
  /** Per owned map: stateKey(key) -> entry. */
  readonly maps: ReadonlyMap<OwnedMap, ReadonlyMap<string, MapEntry>>;
  readonly routes: readonly Route[];
  /** Items it cannot realise, with the reason. */
  readonly skipped: readonly string[];
  /** The same by intent item key (applyDelta replaces an item's reasons). */
  readonly skippedBy?: ReadonlyMap<string, readonly string[]>;
  /** The underlay's locators and their sm_nexthops slots (what encap values name). */
  readonly locators?: Locators;
  /** The denied destinations (sm_blocked): which entries of wl_in's key spaces carry POL_BLOCKED. */
  readonly blocked?: BlockedPrefixes;
  /** The local SIDs' sm_sid_stats slots (changed in place by the next {@link lowerDelta}). */
  readonly sidSlots?: SidSlots;
  /** Slots this lowering (or delta step) gave to a SID that did not hold them: zero them before the writes. */
  readonly freshSidSlots?: readonly number[];
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/**
 * A map key as the key of a state map: one char per byte (a one-byte string of the key's length). Half
 * the length of hex and no Buffer per key: 100,000 of them per bulk delta, each hashed by the Map.
 */
export function stateKey(b: Uint8Array): string {
  // sm_exact's 20-byte keys (every workload /128: the bulk of a large delta) by explicit arguments:
  // apply would copy the bytes into a list first. The other maps' keys are few.
  if (b.length === 20)
    return String.fromCharCode(
      b[0]!,
      b[1]!,
      b[2]!,
      b[3]!,
      b[4]!,
      b[5]!,
      b[6]!,
      b[7]!,
      b[8]!,
      b[9]!,
      b[10]!,
      b[11]!,
      b[12]!,
      b[13]!,
      b[14]!,
      b[15]!,
      b[16]!,
      b[17]!,
      b[18]!,
      b[19]!,
    );
  return String.fromCharCode.apply(null, b as unknown as number[]);
}

/** The bytes of a {@link stateKey}. */
export function stateKeyBytes(k: string): Uint8Array {
  const b = new Uint8Array(k.length);
  for (let i = 0; i < k.length; i++) b[i] = k.charCodeAt(i);
  return b;
}

const SUPPORTED: ReadonlySet<string> = new Set(Object.keys(BpfBehavior));

function lowerSid(s: LocalSid, o: EbpfLoweringOptions, slots: SidSlots): MapEntry | string {
  if (!SUPPORTED.has(s.behavior)) return `${s.key}: the BPF datapath has no ${s.behavior}`;
  const behavior = s.behavior as BehaviorName;
  const decap = behavior === 'End.DT6' || behavior === 'End.DT4' || behavior === 'End.DT46';
  if (decap && !s.lookup) return `${s.key}: ${behavior} without a lookup scope`;
  const lookup = decap && s.lookup ? s.lookup : undefined;
  let oif: number | undefined;
  if (behavior === 'End.X' || behavior === 'End.DX6' || behavior === 'End.DX4') {
    const dev = s.link ?? o.underlayDevice;
    oif = o.links.get(dev)?.index;
    if (oif === undefined) return `${s.key}: link ${dev} not found`;
  }
  if (lookup && lookup.kind !== 'delivery' && lookup.kind !== 'forward')
    return `${s.key}: ${behavior} into the ${lookup.kind} scope: the BPF datapath decapsulates only into a tenant's delivery or forward scope`;
  const tenantId = lookup && 'tenantId' in lookup ? lookup.tenantId : undefined;
  const delivery = lookup?.kind === 'delivery';
  const forward = lookup?.kind === 'forward';
  const key = sidKey(s.sid);
  return {
    key,
    value: sidValue({
      behavior,
      ...(lookup ? { table: tableOf(lookup) } : {}),
      ...(tenantId !== undefined ? { tenant: tenantId } : {}),
      ...(oif !== undefined ? { oif } : {}),
      ...(s.nextHop !== undefined ? { nexthop: s.nextHop } : {}),
      ...(delivery ? { delivery } : {}),
      ...(forward ? { forward } : {}),
      slot: slots.slotOf(stateKey(key)),
    }),
    item: s.key,
  };
}

export function parseMac(s: string): Uint8Array {
  return Uint8Array.from(s.split(':').map((x) => Number.parseInt(x, 16)));
}

/**
 * The last few encap values by content: entries toward one host share their segments, so a bulk of them
 * shares one value (164 bytes and 3 to 9 address conversions each otherwise). Values are never written
 * after lowering: sharing one is safe.
 */
const encapValues: {
  mode: 'encap' | 'encapRed';
  slot: number;
  blocked: boolean;
  source: Ipv6Address;
  segments: Ipv6Address[];
  value: Uint8Array;
}[] = [];
const ENCAP_VALUES = 8;

function encapValue(
  mode: 'encap' | 'encapRed',
  segments: readonly Ipv6Address[],
  source: Ipv6Address,
  slot: number,
  blocked: boolean,
): Uint8Array {
  for (const c of encapValues) {
    if (
      c.mode !== mode ||
      c.slot !== slot ||
      c.blocked !== blocked ||
      c.source !== source ||
      c.segments.length !== segments.length
    )
      continue;
    let same = true;
    for (let i = 0; i < segments.length && same; i++) same = c.segments[i] === segments[i];
    if (same) return c.value;
  }
  const value = policyValue({ mode, segments, source, slot, blocked });
  encapValues.unshift({ mode, slot, blocked, source, segments: [...segments], value });
  if (encapValues.length > ENCAP_VALUES) encapValues.pop();
  return value;
}

function encapPolicy(
  e: PrefixEntry,
  key: Uint8Array,
  o: EbpfLoweringOptions,
  loc: Locators,
  blocked: boolean,
): MapEntry | string {
  const a = e.action;
  if (a.kind !== 'encap') throw new TypeError(`${e.key}: not an encap entry`);
  if (a.hmacKeyId !== undefined) return `${e.key}: the BPF datapath adds no SRH HMAC`;
  const first = a.segments[0];
  const slot = first === undefined ? 0 : loc.slotOf(first);
  return {
    key,
    value: encapValue(a.mode === 'encap' ? 'encap' : 'encapRed', a.segments, o.source, slot, blocked),
    item: e.key,
  };
}

/** A locator the agent routes: its slot's next hop, on the underlay link (none while that is unknown). */
function lowerNexthop(e: PrefixEntry, o: EbpfLoweringOptions, loc: Locators): MapEntry | undefined {
  const a = e.action;
  const slot = loc.slots.get(locatorId(e.prefix));
  const oif = o.links.get(o.underlayDevice)?.index;
  if (a.kind !== 'locator' || slot === undefined || oif === undefined) return undefined;
  return {
    key: u32Key(slot),
    value: nexthopValue({ oif, via: a.via, prefix: e.prefix.address, prefixLength: e.prefix.length }),
    item: e.key,
  };
}

/** The context every item's lowering reads: the locators' slots, the blocked prefixes. */
interface Shared {
  readonly loc: Locators;
  readonly blocked: BlockedPrefixes;
  readonly sids: SidSlots;
}

function lowerPolicy(e: PrefixEntry, o: EbpfLoweringOptions, sh: Shared): MapEntry | string | undefined {
  const loc = sh.loc;
  const s = e.scope;
  // A delivery entry that encapsulates redirects a workload that moved away (make before break): ul_in
  // re-encapsulates what End.DT* of the delivery SID decapsulated for it, from the delivery key space.
  if (s.kind === 'delivery' && e.action.kind === 'encap') {
    if (e.from) return `${e.key}: the BPF datapath has no source-specific entries`;
    return encapPolicy(e, entryKey(s.tenantId, e.prefix.address, e.prefix.length, 'delivery'), o, loc, false);
  }
  if (s.kind === 'delivery' && e.action.kind === 'deliver') return deliveryLocal(e, e.action.link, o);
  // Scopes whole in sm_policy: egress and forward of a tenant, return of a network function.
  if (s.kind !== 'egress' && s.kind !== 'forward' && s.kind !== 'return') return undefined;
  const a = e.action;
  if (a.kind === 'locator') return undefined;
  if (e.from) return `${e.key}: the BPF datapath has no source-specific entries`;
  const key =
    s.kind === 'return'
      ? entryKey(s.functionIndex, e.prefix.address, e.prefix.length, 'return')
      : entryKey(s.tenantId, e.prefix.address, e.prefix.length, s.kind);
  // wl_in's key spaces (a workload's egress, a function's return): the blocked check's flag.
  const blocked = s.kind !== 'forward' && sh.blocked.overlaps(e.prefix);
  switch (a.kind) {
    case 'encap':
      return encapPolicy(e, key, o, loc, blocked);
    case 'deliver': {
      const l = o.links.get(a.link);
      if (!l) return `${e.key}: link ${a.link} not found`;
      if (!l.mac || !l.peerMac) return `${e.key}: the MACs of link ${a.link} are not known yet`;
      return {
        key,
        value: policyValue({ mode: 'local', oif: l.index, dmac: l.peerMac, smac: l.mac, blocked }),
        item: e.key,
      };
    }
    case 'unreachable':
      return { key, value: policyValue({ mode: 'drop', blocked }), item: e.key };
  }
}

/**
 * A local workload's delivery entry in the delivery key space (mode local, its MACs), beside its route:
 * End.DT* answers its delivery from the lookup it makes for redirects anyway, with no bpf_fib_lookup.
 * Only a /128 without a source: no entry of the tenant's table can be more specific, so the map answers
 * as the table would (a shorter prefix could hide a longer route of the table that the map lacks). Its
 * MACs not known yet: no entry, not a skip (the route delivers meanwhile).
 */
function deliveryLocal(e: PrefixEntry, link: string, o: EbpfLoweringOptions): MapEntry | undefined {
  const s = e.scope;
  if (s.kind !== 'delivery' || e.from || e.prefix.length !== 128) return undefined;
  const l = o.links.get(link);
  if (!l?.mac || !l.peerMac) return undefined;
  return {
    key: exactKey(s.tenantId, e.prefix.address, 'delivery'),
    value: policyValue({ mode: 'local', oif: l.index, dmac: l.peerMac, smac: l.mac }),
    item: e.key,
  };
}

function lowerRoute(e: PrefixEntry, o: EbpfLoweringOptions): Route | string | undefined {
  const k = e.scope.kind;
  // Egress, forward and return scopes: sm_policy only (lowerPolicy).
  if (k === 'egress' || k === 'forward' || k === 'return') return undefined;
  if (e.action.kind === 'encap') {
    // Delivery: an sm_policy entry (lowerPolicy); the underlay has no encap entries in BPF.
    if (k === 'delivery') return undefined;
    return `${e.key}: encapsulation from the ${k} scope needs seg6 routes; the BPF datapath encapsulates only at a workload's ingress or after End.DT* of a delivery SID`;
  }
  if (e.from) return `${e.key}: the BPF datapath has no source-specific entries`;
  return entryRoute(e, { underlayDevice: o.underlayDevice });
}

function lowerAttachment(a: Attachment, o: EbpfLoweringOptions): MapEntry | string | undefined {
  if (!a.ingress) return undefined; // SR-aware function: plain host forwarding, no wl_in
  const l = o.links.get(a.link);
  if (!l) return `${a.key}: link ${a.link} not found`;
  if (a.ingress.kind === 'return') {
    // An SR-unaware function hands back what End.DX6 gave it: others' sources, its return scope.
    return {
      key: ifindexKey(l.index),
      value: endpointValue({ returnOf: a.ingress.functionIndex }),
      item: a.key,
    };
  }
  if (a.ingress.kind !== 'egress')
    return `${a.key}: the BPF datapath looks up what arrives from a link only in an egress or return scope, not ${a.ingress.kind}`;
  const addr6 = a.restrict?.source ?? a.address;
  if (addr6 === undefined) return `${a.key}: no address`;
  return {
    key: ifindexKey(l.index),
    value: endpointValue({ tenant: a.ingress.tenantId, addr6 }),
    item: a.key,
  };
}

type Put = (m: OwnedMap, e: MapEntry) => void;

/** Lowers one intent item: its map entries, routes and reasons it cannot be realised go to the sinks. */
function lowerItem(
  i: IntentItem,
  o: EbpfLoweringOptions,
  sh: Shared,
  put: Put,
  route: (r: Route) => void,
  skip: (reason: string) => void,
): void {
  // No closure per item: 100,000 items per bulk delta.
  if (i.kind === 'sid') {
    const e = lowerSid(i, o, sh.sids);
    if (typeof e === 'string') skip(e);
    else put(MAP.sids, e);
  } else if (i.kind === 'entry') {
    const e = lowerPolicy(i, o, sh);
    if (typeof e === 'string') skip(e);
    // A /128 (the workloads, most entries) has sm_exact's key (entryKey): that hash, which the programs
    // look up before the trie.
    else if (e !== undefined) put(e.key.length === SIZES.sm_exact.key ? MAP.exact : MAP.policy, e);
    if (isUnderlayLocator(i)) {
      const n = lowerNexthop(i, o, sh.loc);
      if (n) put(MAP.nexthops, n);
    }
    const r = lowerRoute(i, o);
    if (typeof r === 'string') skip(r);
    else if (r !== undefined) route(r);
  } else if (i.kind === 'hmac-key') {
    // Nothing in BPF computes or checks an SRH HMAC: the key is refused, not dropped silently.
    skip(`${i.key}: the BPF datapath has no SRH HMAC; HMAC key ${i.keyId} is not installed`);
  } else {
    const e = lowerAttachment(i, o);
    if (typeof e === 'string') skip(e);
    else if (e !== undefined) put(MAP.endpoints, e);
    for (const d of i.restrict?.denyDestinations ?? []) {
      const reason = d.length === 128 ? 'drop_host_address' : 'drop_sid_block';
      put(MAP.blocked, {
        key: addrKey(ipv6ToBytes(d.address), d.length),
        value: reasonValue(reason),
        item: i.key,
      });
    }
  }
}

/** The whole eBPF state of an intent. */
export function lowerToEbpf(intent: ForwardingIntent, o: EbpfLoweringOptions): EbpfState {
  const maps = new Map<OwnedMap, Map<string, MapEntry>>(OWNED_MAPS.map((m) => [m, new Map()]));
  const put = (m: OwnedMap, e: MapEntry) => maps.get(m)!.set(stateKey(e.key), e);
  const routes: Route[] = [];
  const skippedBy = new Map<string, string[]>();
  put(MAP.config, {
    key: u32Key(0),
    value: configValue(CFG_VALIDATE | CFG_FIB, o.icmp4Source),
    item: 'config',
  });
  const route = (r: Route) => routes.push(r);
  let item = '';
  const skip = (reason: string) => {
    const l = skippedBy.get(item);
    if (l) l.push(reason);
    else skippedBy.set(item, [reason]);
  };
  const sh = prepass(intent.items.values(), o.nexthopSlots, new SidSlots(o.sidSlots));
  for (const i of intent.items.values()) {
    item = i.key;
    lowerItem(i, o, sh, put, route, skip);
  }
  const freshSidSlots = sh.sids.settle();
  return {
    maps,
    routes,
    skipped: [...skippedBy.values()].flat(),
    skippedBy,
    locators: sh.loc,
    blocked: sh.blocked,
    sidSlots: sh.sids,
    freshSidSlots,
  };
}

export interface MapWrites {
  /** New and changed entries (written first: no gap). */
  readonly put: MapEntry[];
  /** Keys to delete (last). */
  readonly delete: Uint8Array[];
  readonly added: number;
  readonly replaced: number;
}

/** Whether two byte strings are equal (values of 4 to 164 bytes: a loop beats two hex strings). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What turns `have` (stateKey(key) -> value, or a lowered state's entries) into `want`: the minimal writes. */
export function diffMap(
  want: ReadonlyMap<string, MapEntry>,
  have: ReadonlyMap<string, Uint8Array | MapEntry>,
): MapWrites {
  const out: MapWrites = { put: [], delete: [], added: 0, replaced: 0 };
  let added = 0;
  let replaced = 0;
  for (const [k, e] of want) {
    const cur = have.get(k);
    if (!cur) {
      out.put.push(e);
      added++;
    } else if (!sameBytes(cur instanceof Uint8Array ? cur : cur.value, e.value)) {
      out.put.push(e);
      replaced++;
    }
  }
  for (const [k, cur] of have)
    if (!want.has(k)) out.delete.push(cur instanceof Uint8Array ? stateKeyBytes(k) : cur.key);
  return { ...out, added, replaced };
}

/** A lowered state after a delta, with the writes that take the maps and routes there. */
export interface EbpfStep {
  readonly state: EbpfState;
  readonly maps: ReadonlyMap<OwnedMap, MapWrites>;
  readonly routes: { add: Route[]; replace: Route[]; delete: Route[] };
}

/**
 * The state after `delta`, lowering only the delta's items (their old versions for what goes, the new
 * for what comes), and the writes from `prev` to it. Undefined when the delta holds an attachment: the
 * link facts other items' lowering reads (MACs, ifindexes) may have changed with it, and denied
 * destinations are shared between attachments and decide every wl_in entry's POL_BLOCKED; the caller
 * lowers the whole intent then. Undefined too
 * when an underlay locator appears or goes (which encap values have a slot changes with it; a next hop
 * change of one is a delta like any other), or `prev` has no locators or blocked prefixes. `prev` must be
 * the lowering of the delta's `before` with the same options. Its maps are taken over and changed in
 * place (copying a 100,000-entry map per delta would cost more than a small delta's writes): do not use
 * `prev` afterwards.
 */
export function lowerDelta(
  prev: EbpfState,
  delta: IntentDelta,
  o: EbpfLoweringOptions,
  sameRoute: (a: Route, b: Route) => boolean,
): EbpfStep | undefined {
  const isAttachment = (i: IntentItem) => i.kind === 'attachment';
  if (
    delta.removed.some(isAttachment) ||
    delta.replaced.some(isAttachment) ||
    delta.added.some(isAttachment) ||
    delta.changed.some(isAttachment)
  )
    return undefined;
  const gone = delta.replaced.length === 0 ? delta.removed : [...delta.removed, ...delta.replaced];
  const come = delta.changed.length === 0 ? delta.added : [...delta.added, ...delta.changed];
  const loc = prev.locators;
  // The blocked set is unchanged (it comes with the attachments, none in the delta).
  const blocked = prev.blocked;
  const sids = prev.sidSlots;
  if (!loc || !blocked || !sids) return undefined;
  const sh: Shared = { loc, blocked, sids };
  const goneLocators = new Set(gone.filter(isUnderlayLocator).map((i) => i.key));
  const comeLocators = come.filter(isUnderlayLocator);
  if (goneLocators.size !== comeLocators.length || comeLocators.some((i) => !goneLocators.has(i.key)))
    return undefined;
  // Per map the delta touches: its entries (prev's, changed in place), what to write, and what the gone
  // items held that no coming item puts back (deleted at the end). One pass per side, no interim maps;
  // what went is listed, and made a map only when a coming item touches the same map (a bulk removal
  // then costs no second 100,000-entry map).
  interface Touched {
    after: Map<string, MapEntry>;
    put: MapEntry[];
    goneKeys: string[];
    goneEntries: MapEntry[];
    gone: Map<string, MapEntry> | undefined;
    added: number;
    replaced: number;
  }
  const touched = new Map<OwnedMap, Touched>();
  const touch = (m: OwnedMap): Touched => {
    let t = touched.get(m);
    if (!t) {
      const had = prev.maps.get(m);
      const after = had instanceof Map ? (had as Map<string, MapEntry>) : new Map(had);
      t = { after, put: [], goneKeys: [], goneEntries: [], gone: undefined, added: 0, replaced: 0 };
      touched.set(m, t);
    }
    return t;
  };
  const oldRoutes: Route[] = [];
  // The sinks made once (not per item).
  const putGone: Put = (m, e) => {
    const t = touch(m);
    const k = stateKey(e.key);
    // Only what the item itself put there: another item may hold the same key.
    const cur = t.after.get(k);
    if (cur?.item !== e.item) return;
    t.after.delete(k);
    t.goneKeys.push(k);
    t.goneEntries.push(cur);
  };
  const routeGone = (r: Route) => oldRoutes.push(r);
  const skipGone = () => {};
  for (const i of gone) lowerItem(i, o, sh, putGone, routeGone, skipGone);
  // A SID that went gives up its slot (reserved until the step ends: its entry is deleted last), unless
  // another item still holds its key.
  const sidEntries = touched.get(MAP.sids)?.after;
  for (const i of gone) {
    if (i.kind !== 'sid') continue;
    const k = stateKey(sidKey(i.sid));
    if (!sidEntries?.has(k)) sids.release(k);
  }
  const newRoutes: Route[] = [];
  const skippedBy = new Map(prev.skippedBy ?? []);
  for (const i of gone) skippedBy.delete(i.key);
  const putCome: Put = (m, e) => {
    const t = touch(m);
    const k = stateKey(e.key);
    let cur = t.after.get(k);
    if (t.goneKeys.length > 0) {
      t.gone ??= new Map(t.goneKeys.map((g, j) => [g, t.goneEntries[j]!]));
      const was = t.gone.get(k);
      if (was) {
        cur = was;
        t.gone.delete(k);
      }
    }
    t.after.set(k, e);
    if (!cur) t.added++;
    else if (!sameBytes(cur.value, e.value)) t.replaced++;
    else return;
    t.put.push(e);
  };
  const routeCome = (r: Route) => newRoutes.push(r);
  let item = '';
  const skipCome = (reason: string) => {
    const l = skippedBy.get(item);
    skippedBy.set(item, l ? [...l, reason] : [reason]);
  };
  for (const i of come) {
    item = i.key;
    lowerItem(i, o, sh, putCome, routeCome, skipCome);
  }
  const freshSidSlots = sids.settle();

  const maps = new Map(prev.maps);
  const writes = new Map<OwnedMap, MapWrites>();
  for (const [name, t] of touched) {
    maps.set(name, t.after);
    writes.set(name, {
      put: t.put,
      delete: t.gone ? [...t.gone.values()].map((e) => e.key) : t.goneEntries.map((e) => e.key),
      added: t.added,
      replaced: t.replaced,
    });
  }

  const rw = diffRoutes(oldRoutes, newRoutes, sameRoute);
  let routes: Route[] = [...prev.routes];
  if (rw.delete.length > 0 || rw.replace.length > 0) {
    const drop = new Set([...rw.delete, ...rw.replace].map(routeKey));
    routes = routes.filter((r) => !drop.has(routeKey(r)));
  }
  routes.push(...rw.replace, ...rw.add);
  return {
    state: {
      maps,
      routes,
      skipped: [...skippedBy.values()].flat(),
      skippedBy,
      locators: loc,
      blocked,
      sidSlots: sids,
      freshSidSlots,
    },
    maps: writes,
    routes: rw,
  };
}

/** Route diff of two lowered states (applyDelta: no read-back). */
export function diffRoutes(
  before: readonly Route[],
  after: readonly Route[],
  same: (a: Route, b: Route) => boolean,
): { add: Route[]; replace: Route[]; delete: Route[] } {
  const old = new Map(before.map((r) => [routeKey(r), r]));
  const out = { add: [] as Route[], replace: [] as Route[], delete: [] as Route[] };
  const seen = new Set<bigint>();
  for (const r of after) {
    const k = routeKey(r);
    seen.add(k);
    const was = old.get(k);
    if (!was) out.add.push(r);
    else if (!same(was, r)) out.replace.push(r);
  }
  for (const [k, r] of old) if (!seen.has(k)) out.delete.push(r);
  return out;
}

/** The map contents of a state as `have` maps (to diff two lowered states without the kernel). */
export function asHave(entries: ReadonlyMap<string, MapEntry>): Map<string, Uint8Array> {
  return new Map([...entries].map(([k, e]) => [k, e.value]));
}
