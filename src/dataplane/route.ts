/**
 * Routes: the Route type, `buildRouteRequest` (one builder for add / replace / delete, as
 * vishvananda/netlink's prepareRouteReq) and `decodeRoute` for dumps. IPv6 only.
 *
 * Twins: add = `ip -6 route add`, replace = `ip -6 route replace`, delete = `ip -6 route del`,
 * list = `ip -6 route show table all`.
 */
import { formatIpv6, formatPrefix, type Ipv6Address, type Ipv6Prefix } from '../srv6/address.ts';
import { DEFAULT_IPV6_METRIC, ROUTE_PROTOCOL } from './constants.ts';
import {
  decodeSeg6,
  decodeSeg6Local,
  type Encap,
  equalEncap,
  formatEncap,
  type Seg6LocalCounters,
  writeEncap,
} from './encap.ts';
import {
  forEachAttr,
  NetlinkDecodeError,
  type NlMessage,
  type NlWriter,
  readIpv6,
  readU32,
} from './nlattr.ts';
import {
  NLA_TYPE_MASK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
} from './uapi/netlink.ts';
import * as R from './uapi/rtnetlink.ts';

export const ROUTE_TYPES = ['unicast', 'local', 'blackhole', 'unreachable', 'prohibit', 'throw'] as const;
export type RouteType = (typeof ROUTE_TYPES)[number];

const TYPE_CODE = {
  unicast: R.RTN_UNICAST,
  local: R.RTN_LOCAL,
  blackhole: R.RTN_BLACKHOLE,
  unreachable: R.RTN_UNREACHABLE,
  prohibit: R.RTN_PROHIBIT,
  throw: R.RTN_THROW,
} as const satisfies Record<RouteType, number>;

/** A route as the agent wants it. Interfaces are by index (the Dataplane resolves names). */
export interface Route {
  readonly dst: Ipv6Prefix;
  /**
   * Source prefix (`ip -6 route ... from SRC`, rtm_src_len + RTA_SRC): the route matches only packets
   * from SRC. Part of the route's identity; `::/0` is the same as none. Needs CONFIG_IPV6_SUBTREES, and
   * beware: a plain route to the same destination in the same table is then not used for other
   * sources (see {@link coverSourceSubtrees}).
   */
  readonly src?: Ipv6Prefix;
  /** Required: a route is always in an explicit table (254 = main). */
  readonly table: number;
  readonly type?: RouteType;
  /** Defaults to ROUTE_PROTOCOL. */
  readonly protocol?: number;
  /** Defaults to the kernel's 1024. */
  readonly metric?: number;
  readonly oif?: number;
  /** Device name; the Dataplane resolves it to `oif` (the codec only uses `oif`). */
  readonly dev?: string;
  readonly gateway?: Ipv6Address;
  readonly encap?: Encap;
  readonly nhid?: number;
  /** RTAX_MTU. */
  readonly mtu?: number;
}

/** A route as read from the kernel. */
export interface KernelRoute extends Route {
  readonly type: RouteType;
  readonly protocol: number;
  readonly metric: number;
  readonly scope: number;
  readonly flags: number;
  /** SEG6_LOCAL_COUNTERS when enabled on the SID. */
  readonly counters?: Seg6LocalCounters;
}

const TYPE_BY_CODE: Record<number, RouteType> = Object.fromEntries(
  Object.entries(TYPE_CODE).map(([k, v]) => [v, k as RouteType]),
);

export type WriteOp = 'add' | 'replace' | 'delete';

export const OP_FLAGS = {
  add: NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL,
  replace: NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
  delete: NLM_F_REQUEST,
} as const satisfies Record<WriteOp, number>;

const MASK64 = (1n << 64n) - 1n;
const GOLDEN64 = 0x9e3779b97f4a7c15n;

/**
 * Identity of a route in the kernel (IPv6: table, destination, source, metric), packed into one bigint;
 * bigints compare by value as Map keys, and this is several times cheaper than building a string for
 * 100,000 routes. A plain route: table:32 | metric:32 | dst address:128 | dst length:8 (under 2^200).
 * A source-specific one: src address:128 | src length:8 | that | 64 bits of dst + src * 2^64/phi,
 * at least 2^264. V8 hashes a BigInt by its lowest 64 bits only, so those must vary from key to key (a key
 * ending in zeros made a 100,000-route Map quadratic: minutes instead of milliseconds); the trailing
 * bits are redundant, which keeps the key injective.
 */
export function routeKey(r: Route): bigint {
  const hi = (BigInt(r.table >>> 0) << 32n) | BigInt((r.metric ?? DEFAULT_IPV6_METRIC) >>> 0);
  const key = (hi << 136n) | (r.dst.address << 8n) | BigInt(r.dst.length);
  const src = r.src;
  if (src === undefined || src.length === 0) return key;
  const head = (((src.address << 8n) | BigInt(src.length)) << 200n) | key;
  return (head << 64n) | ((r.dst.address + src.address * GOLDEN64) & MASK64);
}

/** The route's source prefix, or undefined for none (`::/0` is none: the kernel keeps no src_len 0). */
export function routeSource(r: Route): Ipv6Prefix | undefined {
  return r.src === undefined || r.src.length === 0 ? undefined : r.src;
}

/**
 * Appends one RTM_NEWROUTE / RTM_DELROUTE message for `route` to `w`. Attribute order follows
 * iproute2 (RTA_DST, [RTA_SRC], [RTA_TABLE], [RTA_PRIORITY], ..., RTA_ENCAP, RTA_ENCAP_TYPE, RTA_OIF).
 */
export function buildRouteRequest(w: NlWriter, op: WriteOp, route: Route): void {
  const m = w.beginMessage(op === 'delete' ? R.RTM_DELROUTE : R.RTM_NEWROUTE, OP_FLAGS[op]);
  const type = route.type ?? 'unicast';
  w.u8(R.AF_INET6);
  const src = routeSource(route);
  w.u8(route.dst.length);
  w.u8(src?.length ?? 0); // src_len
  w.u8(0); // tos
  w.u8(route.table < 256 ? route.table : R.RT_TABLE_UNSPEC);
  w.u8(route.protocol ?? ROUTE_PROTOCOL);
  w.u8(R.RT_SCOPE_UNIVERSE);
  w.u8(op === 'delete' ? R.RTN_UNSPEC : TYPE_CODE[type]);
  w.u32(0); // rtm_flags
  w.attrIpv6(R.RTA_DST, route.dst.address); // also for ::/0, as iproute2
  if (src !== undefined) w.attrIpv6(R.RTA_SRC, src.address); // also on delete: part of the key
  if (route.table >= 256) w.attrU32(R.RTA_TABLE, route.table);
  if (route.metric !== undefined) w.attrU32(R.RTA_PRIORITY, route.metric);
  if (op !== 'delete') {
    if (route.gateway !== undefined) w.attrIpv6(R.RTA_GATEWAY, route.gateway);
    if (route.nhid !== undefined) w.attrU32(R.RTA_NH_ID, route.nhid);
    if (route.mtu !== undefined) {
      const a = w.beginAttr(R.RTA_METRICS); // iproute2 sends it without NLA_F_NESTED
      w.attrU32(R.RTAX_MTU, route.mtu);
      w.endAttr(a);
    }
    if (route.encap !== undefined) writeEncap(w, R.RTA_ENCAP, R.RTA_ENCAP_TYPE, route.encap);
    if (route.oif !== undefined) w.attrU32(R.RTA_OIF, route.oif);
  }
  w.endMessage(m);
}

/** A dump request for all IPv6 routes of all tables. */
export function buildRouteDump(w: NlWriter): void {
  const m = w.beginMessage(R.RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP);
  w.u8(R.AF_INET6);
  w.zeros(R.RTMSG_LEN - 1);
  w.endMessage(m);
}

/** Decodes one RTM_NEWROUTE message (from a dump or a monitor). */
export function decodeRoute(msg: NlMessage): KernelRoute {
  const b = msg.data;
  if (b.length < 16 + R.RTMSG_LEN) throw new NetlinkDecodeError(`RTM_NEWROUTE of ${b.length} bytes`);
  const family = b.readUInt8(16);
  if (family !== R.AF_INET6)
    throw new NetlinkDecodeError(`route family ${family}, only AF_INET6 is modelled`);
  const dstLen = b.readUInt8(17);
  const srcLen = b.readUInt8(18);
  let table = b.readUInt8(20);
  const protocol = b.readUInt8(21);
  const scope = b.readUInt8(22);
  const typeCode = b.readUInt8(23);
  const flags = b.readUInt32LE(24);
  let dst = 0n;
  let src = 0n;
  let metric = DEFAULT_IPV6_METRIC; // what the kernel assigns when a request carries none
  let oif: number | undefined;
  let gateway: Ipv6Address | undefined;
  let nhid: number | undefined;
  let mtu: number | undefined;
  let encapType = 0;
  let encapData: Buffer | undefined;
  // Hot path (dumps of 100,000 routes): walk the attributes by offset, without a view per attribute.
  const end = b.length;
  let off = 16 + R.RTMSG_LEN;
  while (off + 4 <= end) {
    const len = b.readUInt16LE(off);
    const type = b.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > end)
      throw new NetlinkDecodeError(`route attribute ${type}: length ${len} runs past ${end}`);
    const p = off + 4;
    const n = len - 4;
    switch (type) {
      case R.RTA_DST:
        if (n < 16) throw new NetlinkDecodeError('RTA_DST: need 16 bytes');
        dst = readIpv6(b, p);
        break;
      case R.RTA_SRC:
        if (n < 16) throw new NetlinkDecodeError('RTA_SRC: need 16 bytes');
        src = readIpv6(b, p);
        break;
      case R.RTA_TABLE:
        if (n >= 4) table = b.readUInt32LE(p);
        break;
      case R.RTA_PRIORITY:
        if (n >= 4) metric = b.readUInt32LE(p);
        break;
      case R.RTA_OIF:
        if (n >= 4) oif = b.readUInt32LE(p);
        break;
      case R.RTA_GATEWAY:
        if (n < 16) throw new NetlinkDecodeError('RTA_GATEWAY: need 16 bytes');
        gateway = readIpv6(b, p);
        break;
      case R.RTA_NH_ID:
        if (n >= 4) nhid = b.readUInt32LE(p);
        break;
      case R.RTA_METRICS:
        forEachAttr(b, p, p + n, (mt, md) => {
          if (mt === R.RTAX_MTU) mtu = readU32(md, 'RTAX_MTU');
        });
        break;
      case R.RTA_ENCAP_TYPE:
        if (n >= 2) encapType = b.readUInt16LE(p);
        break;
      case R.RTA_ENCAP:
        encapData = b.subarray(p, p + n);
        break;
      default:
        break;
    }
    off += (len + 3) & ~3;
  }
  const type = TYPE_BY_CODE[typeCode] ?? 'unicast';
  let encap: Encap | undefined;
  let counters: Seg6LocalCounters | undefined;
  if (encapData !== undefined && encapType === R.LWTUNNEL_ENCAP_SEG6) encap = decodeSeg6(encapData);
  else if (encapData !== undefined && encapType === R.LWTUNNEL_ENCAP_SEG6_LOCAL) {
    const d = decodeSeg6Local(encapData);
    encap = d.encap;
    counters = d.counters;
  }
  const out: {
    -readonly [K in keyof KernelRoute]: KernelRoute[K];
  } = { dst: { address: dst, length: dstLen }, table, type, protocol, metric, scope, flags };
  if (srcLen > 0) out.src = { address: src, length: srcLen };
  if (oif !== undefined) out.oif = oif;
  if (gateway !== undefined) out.gateway = gateway;
  if (nhid !== undefined) out.nhid = nhid;
  if (mtu !== undefined) out.mtu = mtu;
  if (encap !== undefined) out.encap = encap;
  if (counters !== undefined) out.counters = counters;
  return out;
}

/** Whether `kernel` already is what `desired` asks for (so no replace is needed). */
export function routeSatisfies(kernel: Route, desired: Route, defaultProtocol = ROUTE_PROTOCOL): boolean {
  return (
    kernel.table === desired.table &&
    kernel.dst.length === desired.dst.length &&
    kernel.dst.address === desired.dst.address &&
    sameSource(kernel, desired) &&
    (kernel.type ?? 'unicast') === (desired.type ?? 'unicast') &&
    (kernel.protocol ?? defaultProtocol) === (desired.protocol ?? defaultProtocol) &&
    (kernel.metric ?? DEFAULT_IPV6_METRIC) === (desired.metric ?? DEFAULT_IPV6_METRIC) &&
    (desired.oif === undefined || kernel.oif === desired.oif) &&
    kernel.gateway === desired.gateway &&
    kernel.nhid === desired.nhid &&
    kernel.mtu === desired.mtu &&
    equalEncap(kernel.encap, desired.encap)
  );
}

function sameSource(a: Route, b: Route): boolean {
  const x = routeSource(a);
  const y = routeSource(b);
  return x === y || (x !== undefined && y !== undefined && x.length === y.length && x.address === y.address);
}

export function formatRoute(r: Route): string {
  const parts: string[] = [];
  if (r.type && r.type !== 'unicast') parts.push(r.type);
  parts.push(r.dst.length === 0 ? 'default' : formatPrefix(r.dst));
  const src = routeSource(r);
  if (src !== undefined) parts.push(`from ${formatPrefix(src)}`);
  if (r.encap) parts.push(formatEncap(r.encap));
  if (r.gateway !== undefined) parts.push(`via ${formatIpv6(r.gateway)}`);
  if (r.nhid !== undefined) parts.push(`nhid ${r.nhid}`);
  if (r.oif !== undefined) parts.push(`dev #${r.oif}`);
  parts.push(`table ${r.table}`);
  if (r.metric !== undefined) parts.push(`metric ${r.metric}`);
  parts.push(`proto ${r.protocol ?? ROUTE_PROTOCOL}`);
  if (r.mtu !== undefined) parts.push(`mtu ${r.mtu}`);
  return parts.join(' ');
}

const SOURCE_HALVES: readonly Ipv6Prefix[] = [
  { address: 0n, length: 1 },
  { address: 1n << 127n, length: 1 },
];

/**
 * Makes plain routes visible next to source-specific ones. With CONFIG_IPV6_SUBTREES (measured on
 * kernel 6.18), once a table holds a source-specific route to a destination, a plain route to that
 * same destination is never used: a packet from any other source finds no match in the destination's
 * source subtree and the lookup backtracks to a less specific destination (in a tenant table, its
 * `unreachable` default). So each plain route whose (table, destination) also has a source route is
 * replaced by the same route twice, `from ::/1` and `from 8000::/1`: together every source, and
 * ranked below any real source prefix by the longest-source match. Routes come back in their order
 * (the halves where the plain route was); without source routes the input is returned as is.
 */
export function coverSourceSubtrees(routes: readonly Route[]): readonly Route[] {
  const subtrees = new Set<bigint>();
  const taken = new Set<bigint>();
  for (const r of routes) {
    if (routeSource(r) === undefined) continue;
    subtrees.add(destinationKey(r));
    taken.add(routeKey(r));
  }
  if (subtrees.size === 0) return routes;
  const out: Route[] = [];
  for (const r of routes) {
    if (routeSource(r) !== undefined || !subtrees.has(destinationKey(r))) {
      out.push(r);
      continue;
    }
    for (const src of SOURCE_HALVES) {
      const half = { ...r, src };
      // A real `from ::/1` route to the same destination keeps its place.
      if (!taken.has(routeKey(half))) out.push(half);
    }
  }
  return out;
}

/** (table, destination), without metric or source: the node that holds a source subtree. */
function destinationKey(r: Route): bigint {
  return (BigInt(r.table >>> 0) << 136n) | (r.dst.address << 8n) | BigInt(r.dst.length);
}
