/**
 * The datapath's map layouts, byte for byte as bpf/lib/abi.h declares them (little-endian host fields,
 * network-order addresses and ports). Change both together: the system test compares these sizes with
 * the key and value sizes the loaded object reports.
 */
import { type Ipv6Address, ipv6IntoBytes } from '../../srv6/address.ts';

export const MAX_SEGS = 8;

/**
 * Zeroed bytes for a key or value, cut from a shared 64 KiB slab: lowering 100,000 entries made 100,000
 * ArrayBuffers otherwise (values are past V8's on-heap limit of 64 bytes), and most of its time went to
 * allocating and collecting them. A slab lives while any entry cut from it does.
 */
let slab = new Uint8Array(0);
let slabAt = 0;
function alloc(n: number): Uint8Array {
  if (slabAt + n > slab.length) {
    slab = new Uint8Array(Math.max(65536, n));
    slabAt = 0;
  }
  const b = slab.subarray(slabAt, slabAt + n);
  slabAt += (n + 7) & ~7;
  return b;
}

/** Little-endian u32 (the struct fields of bpf/lib/abi.h), without a DataView per write. */
function le32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = v >>> 24;
}

function be32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

export const MAP = {
  endpoints: 'sm_endpoints',
  policy: 'sm_policy',
  exact: 'sm_exact',
  sids: 'sm_sids',
  nexthops: 'sm_nexthops',
  blocked: 'sm_blocked',
  trusted: 'sm_trusted',
  counters: 'sm_counters',
  sidStats: 'sm_sid_stats',
  linkDrops: 'sm_link_drops',
  config: 'sm_config',
} as const;

export const SIZES = {
  sm_endpoints: { key: 4, value: 28 },
  sm_policy: { key: 24, value: 36 + 16 * MAX_SEGS },
  sm_exact: { key: 20, value: 36 + 16 * MAX_SEGS },
  sm_sids: { key: 16, value: 32 },
  sm_nexthops: { key: 4, value: 40 },
  sm_blocked: { key: 20, value: 4 },
  sm_trusted: { key: 20, value: 4 },
  sm_counters: { key: 4, value: 8 },
  sm_sid_stats: { key: 4, value: 16 },
  sm_link_drops: { key: 8, value: 8 },
  sm_config: { key: 4, value: 8 },
} as const;

export const Mode = { encap: 1, encapRed: 2, local: 3, drop: 4 } as const;
export const Behavior = {
  End: 1,
  'End.X': 2,
  'End.DT6': 3,
  'End.DT4': 4,
  'End.DT46': 5,
  'End.DX6': 6,
  'End.DX4': 7,
} as const;
export type BehaviorName = keyof typeof Behavior;

export const CFG_VALIDATE = 1;
export const CFG_FIB = 2;
export const CFG_TRUSTSRC = 4;
export const EP_V4 = 1;
/** sm_endpoint.flags: a network function's link (others' sources: no source check). */
export const EP_ANYSRC = 2;
export const POL_SRH = 1;
/**
 * sm_policy.flags: an entry of wl_in's key spaces (egress, return) whose prefix overlaps a prefix of
 * sm_blocked (one contains the other): wl_in looks sm_blocked up only for such an entry or none.
 */
export const POL_BLOCKED = 2;
/** sm_nexthops is an array of this many slots (SM_NEXTHOP_SLOTS); slot 0 stays empty. */
export const NEXTHOP_SLOTS = 16384;
/** sm_sid.flags: End.DT* into the tenant's delivery scope (its redirects apply). */
export const SID_DELIVERY = 1;
/** sm_sid.flags: End.DT* into the tenant's forward scope (edge aggregate mode; all in sm_policy). */
export const SID_FORWARD = 2;
/** sm_policy key: the tenant field of the delivery key space (redirects of moved workloads). */
export const TENANT_DELIVERY = 0x80000000;
/** sm_policy key: the tenant field of the forward key space. */
export const TENANT_FORWARD = 0x40000000;
/** sm_policy key: the return key spaces, of a network function's index (not a tenant id). */
export const TENANT_RETURN = 0x20000000;

/** The key spaces of sm_policy, one per lookup scope the programs look up there. */
export type PolicySpace = 'egress' | 'delivery' | 'forward' | 'return';
const SPACE_FLAG: Readonly<Record<PolicySpace, number>> = {
  egress: 0,
  delivery: TENANT_DELIVERY,
  forward: TENANT_FORWARD,
  return: TENANT_RETURN,
};

/** The key space id of a scope's entries (tenant id or function index, with the space's flag). */
export function policySpace(id: number, space: PolicySpace): number {
  if (!Number.isInteger(id) || id < 0 || id >= TENANT_RETURN)
    throw new RangeError(
      `${space === 'return' ? 'function index' : 'tenant id'} ${id} does not fit a policy key (0..${TENANT_RETURN - 1})`,
    );
  return (id | SPACE_FLAG[space]) >>> 0;
}

/** Counter slots (enum sm_reason). */
export const Reason = {
  encap: 0,
  encap_red: 1,
  encap_nosrh: 2,
  local: 3,
  end: 4,
  end_x: 5,
  dt6: 6,
  dt4: 7,
  dx6: 8,
  dx4: 9,
  redirect: 10,
  stack: 11,
  ptb: 12,
  pass: 13,
  redirect_move: 14,
  forward: 15,
  drop_spoof: 16,
  drop_sid_block: 17,
  drop_host_address: 18,
  drop_workload_srh: 20,
  drop_no_policy: 21,
  drop_policy: 22,
  drop_untrusted_source: 23,
  drop_srh_segments_left: 24,
  drop_srh_length: 25,
  drop_truncated: 26,
  drop_srh_type: 27,
  drop_segments_left_nonzero: 28,
  drop_segments_left_zero: 29,
  drop_inner_protocol: 30,
  drop_hop_limit: 31,
  drop_no_route: 32,
  drop_too_big: 33,
  drop_error: 34,
  drop_redirect_loop: 35,
  /** Redirected to an agent-resolved next hop (sm_nexthops), no FIB lookup. */
  redirect_nexthop: 36,
} as const;
export type ReasonName = keyof typeof Reason;
export const REASON_SLOTS = 40;

/** IPv4 addresses live in the LPM maps as ::ffff:a.b.c.d. */
export function v4Mapped(v4: string): Uint8Array {
  const b = new Uint8Array(16);
  b[10] = 0xff;
  b[11] = 0xff;
  b.set(ipv4Bytes(v4), 12);
  return b;
}

export function ipv4Bytes(v4: string): Uint8Array {
  const parts = v4.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: ${v4}`);
  }
  return Uint8Array.from(parts);
}

const u32 = (v: number): Uint8Array => {
  const b = alloc(4);
  le32(b, 0, v);
  return b;
};

export function ifindexKey(ifindex: number): Uint8Array {
  return u32(ifindex);
}

/** sm_link_drops key: {ifindex, reason}. */
export function linkDropKey(ifindex: number, reason: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, ifindex, true);
  v.setUint32(4, reason, true);
  return b;
}

export function parseLinkDropKey(key: Uint8Array): { ifindex: number; reason: number } {
  const v = new DataView(key.buffer, key.byteOffset, key.byteLength);
  return { ifindex: v.getUint32(0, true), reason: v.getUint32(4, true) };
}

/** A workload's link (its tenant's egress, its source) or an SR-unaware function's (its return scope). */
export type EndpointValue =
  | { readonly tenant: number; readonly addr6: Ipv6Address; readonly addr4?: string }
  | { readonly returnOf: number };

export function endpointValue(e: EndpointValue): Uint8Array {
  const b = alloc(SIZES.sm_endpoints.value);
  if ('returnOf' in e) {
    // The function's return key space; any source (it hands back other workloads' packets).
    le32(b, 0, policySpace(e.returnOf, 'return'));
    le32(b, 4, EP_ANYSRC);
    return b;
  }
  le32(b, 0, policySpace(e.tenant, 'egress'));
  le32(b, 4, e.addr4 ? EP_V4 : 0);
  if (e.addr4) b.set(ipv4Bytes(e.addr4), 8);
  ipv6IntoBytes(e.addr6, b, 12);
  return b;
}

/**
 * Policy key: the key space's bits lead the prefix (network order), then the destination (bytes or an
 * address). `id` is the tenant id, or for `return` the network function's index. Spaces: `egress` (wl_in
 * on a workload's link), `delivery` (End.DT* redirects toward a moved workload), `forward` (End.DT* of a
 * forward SID), `return` (wl_in on an SR-unaware function's link).
 */
export function policyKey(
  id: number,
  dst: Uint8Array | Ipv6Address,
  prefixLength: number,
  space: PolicySpace = 'egress',
): Uint8Array {
  const spaceId = policySpace(id, space);
  const b = alloc(SIZES.sm_policy.key);
  le32(b, 0, 32 + prefixLength);
  be32(b, 4, spaceId);
  if (typeof dst === 'bigint') ipv6IntoBytes(dst, b, 8);
  else b.set(dst, 8);
  return b;
}

/** sm_policy's prefixlen of a /128 (32 key space bits + 128): such an entry goes to sm_exact. */
export const EXACT_PREFIXLEN = 32 + 128;

/**
 * Whether a policy key (24 bytes, {@link policyKey}) is a /128: its entry belongs in sm_exact, keyed by
 * {@link exactOf}.
 */
export function isExactPolicy(k: Uint8Array): boolean {
  return k.length === 24 && k[0] === EXACT_PREFIXLEN && k[1] === 0 && k[2] === 0 && k[3] === 0;
}

/** The sm_exact key of a /128 policy key: its {key space, destination} tail (a view, no copy). */
export function exactOf(policy: Uint8Array): Uint8Array {
  return policy.subarray(4);
}

/** The sm_policy key of an sm_exact key (readers that show both maps as one table). */
export function policyOfExact(exact: Uint8Array): Uint8Array {
  const b = new Uint8Array(24);
  le32(b, 0, EXACT_PREFIXLEN);
  b.set(exact, 4);
  return b;
}

/** sm_exact key: a /128 of key space `space` ({@link policyKey} without its prefix length). */
export function exactKey(
  id: number,
  dst: Uint8Array | Ipv6Address,
  space: PolicySpace = 'egress',
): Uint8Array {
  const spaceId = policySpace(id, space);
  const b = alloc(SIZES.sm_exact.key);
  be32(b, 0, spaceId);
  if (typeof dst === 'bigint') ipv6IntoBytes(dst, b, 4);
  else b.set(dst, 4);
  return b;
}

/**
 * The key of a prefix of key space `space` in the map that holds it: a /128 in sm_exact (20 bytes,
 * {@link exactKey}), any other length in sm_policy (24 bytes, {@link policyKey}). The lowering's one
 * key per entry (no policy key cut down to an exact one per workload /128).
 */
export function entryKey(
  id: number,
  dst: Ipv6Address,
  prefixLength: number,
  space: PolicySpace = 'egress',
): Uint8Array {
  return prefixLength === 128 ? exactKey(id, dst, space) : policyKey(id, dst, prefixLength, space);
}

export interface PolicyValue {
  readonly mode: keyof typeof Mode;
  readonly segments?: readonly Ipv6Address[];
  readonly source?: Ipv6Address;
  /** Keep an SRH for a single segment. */
  readonly srh?: boolean;
  /** wl_in's key spaces: the prefix overlaps a blocked prefix (POL_BLOCKED; see {@link POL_BLOCKED}). */
  readonly blocked?: boolean;
  /** mode 'local': host-side veth of the destination, its workload's MAC, the veth's MAC. */
  readonly oif?: number;
  /** Encap modes: the sm_nexthops slot of the first segment's locator (0 or none: bpf_fib_lookup). */
  readonly slot?: number;
  readonly dmac?: Uint8Array;
  readonly smac?: Uint8Array;
}

export function policyValue(p: PolicyValue): Uint8Array {
  const segs = p.segments ?? [];
  if (segs.length > MAX_SEGS)
    throw new RangeError(`policy with ${segs.length} segments: the datapath takes at most ${MAX_SEGS}`);
  const b = alloc(SIZES.sm_policy.value);
  b[0] = Mode[p.mode];
  b[1] = segs.length;
  b[2] = (p.srh ? POL_SRH : 0) | (p.blocked ? POL_BLOCKED : 0);
  le32(b, 4, p.oif ?? p.slot ?? 0);
  if (p.dmac) b.set(p.dmac, 8);
  if (p.smac) b.set(p.smac, 14);
  if (p.source !== undefined) ipv6IntoBytes(p.source, b, 20);
  for (let i = 0; i < segs.length; i++) ipv6IntoBytes(segs[i]!, b, 36 + 16 * i);
  return b;
}

/** sm_nexthops value: the underlay link and next hop of a locator the agent routes, and the locator. */
export interface NexthopValue {
  readonly oif: number;
  readonly via: Ipv6Address;
  readonly prefix: Ipv6Address;
  readonly prefixLength: number;
}

export function nexthopValue(n: NexthopValue): Uint8Array {
  const b = alloc(SIZES.sm_nexthops.value);
  le32(b, 0, n.oif);
  le32(b, 4, n.prefixLength);
  ipv6IntoBytes(n.via, b, 8);
  ipv6IntoBytes(n.prefix, b, 24);
  return b;
}

/** The locator of an sm_nexthops value (adoption: a restarted agent keeps each locator's slot). */
export function parseNexthopValue(v: Uint8Array): { prefix: Uint8Array; prefixLength: number } {
  return { prefixLength: v[4]! | (v[5]! << 8), prefix: v.slice(24, 40) };
}

export function sidKey(sid: Ipv6Address): Uint8Array {
  const b = alloc(16);
  ipv6IntoBytes(sid, b, 0);
  return b;
}

export interface SidValue {
  readonly behavior: BehaviorName;
  readonly table?: number;
  readonly tenant?: number;
  readonly oif?: number;
  /** IPv6 next hop (End.X, End.DX6), or IPv4 (End.DX4). */
  readonly nexthop?: Ipv6Address | string;
  /** End.DT*: decapsulates into the tenant's delivery scope (its redirects apply). */
  readonly delivery?: boolean;
  /** End.DT*: decapsulates into the tenant's forward scope (looked up in sm_policy only). */
  readonly forward?: boolean;
  /** Its counters' index in sm_sid_stats (1..SID_SLOTS; 0 or none: counted in slot 0, never read). */
  readonly slot?: number;
}

/** Slots of sm_sid_stats a SID can have (SM_SID_SLOTS: one per entry sm_sids holds; slot 0 is no SID's). */
export const SID_SLOTS = 16384;

/** The counter slot of an sm_sids value (adoption: a restarted agent keeps each SID's slot). */
export function parseSidSlot(v: Uint8Array): number {
  return v[2]! | (v[3]! << 8);
}

export function sidValue(s: SidValue): Uint8Array {
  const b = alloc(SIZES.sm_sids.value);
  b[0] = Behavior[s.behavior];
  b[1] = (s.delivery ? SID_DELIVERY : 0) | (s.forward ? SID_FORWARD : 0);
  b[2] = (s.slot ?? 0) & 0xff;
  b[3] = (s.slot ?? 0) >>> 8;
  le32(b, 4, s.table ?? 0);
  le32(b, 8, s.tenant ?? 0);
  le32(b, 12, s.oif ?? 0);
  if (typeof s.nexthop === 'string') b.set(ipv4Bytes(s.nexthop), 16);
  else if (s.nexthop !== undefined) ipv6IntoBytes(s.nexthop, b, 16);
  return b;
}

/** blocked / trusted LPM key. */
export function addrKey(addr: Uint8Array, prefixLength: number): Uint8Array {
  const b = alloc(SIZES.sm_blocked.key);
  le32(b, 0, prefixLength);
  b.set(addr, 4);
  return b;
}

export function reasonValue(r: ReasonName): Uint8Array {
  return u32(Reason[r]);
}

/** cfg[0]: flags, and the source of ICMPv4 "fragmentation needed" (the workload gateway; none: not sent). */
export function configValue(flags: number, icmp4Source?: string): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(0, flags, true);
  if (icmp4Source) b.set(ipv4Bytes(icmp4Source), 4);
  return b;
}

export function u32Key(v: number): Uint8Array {
  return u32(v);
}
