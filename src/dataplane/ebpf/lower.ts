/**
 * The eBPF lowering of a forwarding intent (pure): the map entries the datapath (bpf/segmesh.c) reads,
 * plus the few kernel routes its FIB lookups need, and the diff of two such states.
 *
 * - attachments with an egress scope -> `sm_endpoints` (ifindex -> tenant, source it may use), their
 *   denied destinations -> `sm_blocked` (a /128 is a host address, anything shorter the SID block);
 * - egress entries -> `sm_policy` ({tenant, prefix}): encap / encap.red, deliver (a workload on this
 *   host: mode local with its MACs), unreachable (mode drop); egress `locator` entries need nothing (the
 *   outer packet is looked up in the main table, where the underlay entries are);
 * - delivery entries that encapsulate (a workload that moved away) -> `sm_policy` in the delivery key
 *   space ({tenant | TENANT_DELIVERY, prefix}): ul_in re-encapsulates after End.DT* of a delivery SID;
 * - local SIDs -> `sm_sids`; End.DT4/6/46 name their lookup scope's routing table (and the delivery
 *   flag when that is the delivery scope);
 * - underlay and delivery entries -> kernel routes (main table; the tenant's delivery table, which
 *   End.DT6's `bpf_fib_lookup` reads), as the kernel backend lowers them (kernel/lower.ts);
 * - what the programs cannot do (source-specific entries, encap from the underlay scope, forward and
 *   return scopes, End.T / End.B6.*) is listed in `skipped` with the reason, never half-programmed.
 */
import { type Ipv6Address, ipv6ToBytes } from '../../srv6/address.ts';
import type { Attachment, ForwardingIntent, LocalSid, PrefixEntry } from '../intent.ts';
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
  ifindexKey,
  MAP,
  policyKey,
  policyValue,
  reasonValue,
  sidKey,
  sidValue,
  u32Key,
} from './abi.ts';

/** The maps the backend owns entirely: every entry in them is the lowering's (the rest it never writes). */
export const OWNED_MAPS = [MAP.config, MAP.endpoints, MAP.sids, MAP.blocked, MAP.policy] as const;
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
}

export interface MapEntry {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  /** The intent item it comes from (for messages). */
  readonly item: string;
}

export interface EbpfState {
  /** Per owned map: hex(key) -> entry. */
  readonly maps: ReadonlyMap<OwnedMap, ReadonlyMap<string, MapEntry>>;
  readonly routes: readonly Route[];
  /** Items it cannot realise, with the reason. */
  readonly skipped: readonly string[];
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

const SUPPORTED: ReadonlySet<string> = new Set(Object.keys(BpfBehavior));

function lowerSid(s: LocalSid, o: EbpfLoweringOptions): MapEntry | string {
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
  const tenantId = lookup && 'tenantId' in lookup ? lookup.tenantId : undefined;
  const delivery = lookup?.kind === 'delivery';
  return {
    key: sidKey(s.sid),
    value: sidValue({
      behavior,
      ...(lookup ? { table: tableOf(lookup) } : {}),
      ...(tenantId !== undefined ? { tenant: tenantId } : {}),
      ...(oif !== undefined ? { oif } : {}),
      ...(s.nextHop !== undefined ? { nexthop: s.nextHop } : {}),
      ...(delivery ? { delivery } : {}),
    }),
    item: s.key,
  };
}

export function parseMac(s: string): Uint8Array {
  return Uint8Array.from(s.split(':').map((x) => Number.parseInt(x, 16)));
}

function encapPolicy(e: PrefixEntry, key: Uint8Array, o: EbpfLoweringOptions): MapEntry | string {
  const a = e.action;
  if (a.kind !== 'encap') throw new TypeError(`${e.key}: not an encap entry`);
  if (a.hmacKeyId !== undefined) return `${e.key}: the BPF datapath adds no SRH HMAC`;
  return {
    key,
    value: policyValue({
      mode: a.mode === 'encap' ? 'encap' : 'encapRed',
      segments: a.segments,
      source: o.source,
    }),
    item: e.key,
  };
}

function lowerPolicy(e: PrefixEntry, o: EbpfLoweringOptions): MapEntry | string | undefined {
  const s = e.scope;
  // A delivery entry that encapsulates redirects a workload that moved away (make before break): ul_in
  // re-encapsulates what End.DT* of the delivery SID decapsulated for it, from the delivery key space.
  if (s.kind === 'delivery' && e.action.kind === 'encap') {
    if (e.from) return `${e.key}: the BPF datapath has no source-specific entries`;
    return encapPolicy(
      e,
      policyKey(s.tenantId, ipv6ToBytes(e.prefix.address), e.prefix.length, 'delivery'),
      o,
    );
  }
  if (s.kind !== 'egress') return undefined;
  if (e.from) return `${e.key}: the BPF datapath has no source-specific entries`;
  const key = policyKey(s.tenantId, ipv6ToBytes(e.prefix.address), e.prefix.length);
  const a = e.action;
  switch (a.kind) {
    case 'encap':
      return encapPolicy(e, key, o);
    case 'deliver': {
      const l = o.links.get(a.link);
      if (!l) return `${e.key}: link ${a.link} not found`;
      if (!l.mac || !l.peerMac) return `${e.key}: the MACs of link ${a.link} are not known yet`;
      return {
        key,
        value: policyValue({ mode: 'local', oif: l.index, dmac: l.peerMac, smac: l.mac }),
        item: e.key,
      };
    }
    case 'unreachable':
      return { key, value: policyValue({ mode: 'drop' }), item: e.key };
    case 'locator':
      return undefined;
  }
}

function lowerRoute(e: PrefixEntry, o: EbpfLoweringOptions): Route | string | undefined {
  const k = e.scope.kind;
  if (k === 'egress') return undefined;
  if (k === 'forward' || k === 'return') return `${e.key}: the BPF datapath has no ${k} scope yet`;
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
  if (a.ingress.kind !== 'egress') return `${a.key}: the BPF datapath has no ${a.ingress.kind} scope yet`;
  const l = o.links.get(a.link);
  if (!l) return `${a.key}: link ${a.link} not found`;
  const addr6 = a.restrict?.source ?? a.address;
  if (addr6 === undefined) return `${a.key}: no address`;
  return {
    key: ifindexKey(l.index),
    value: endpointValue({ tenant: a.ingress.tenantId, addr6 }),
    item: a.key,
  };
}

/** The whole eBPF state of an intent. */
export function lowerToEbpf(intent: ForwardingIntent, o: EbpfLoweringOptions): EbpfState {
  const maps = new Map<OwnedMap, Map<string, MapEntry>>(OWNED_MAPS.map((m) => [m, new Map()]));
  const put = (m: OwnedMap, e: MapEntry) => maps.get(m)!.set(hex(e.key), e);
  const routes: Route[] = [];
  const skipped: string[] = [];
  const take = <T>(r: T | string | undefined, use: (v: T) => void) => {
    if (typeof r === 'string') skipped.push(r);
    else if (r !== undefined) use(r);
  };
  put(MAP.config, {
    key: u32Key(0),
    value: configValue(CFG_VALIDATE | CFG_FIB, o.icmp4Source),
    item: 'config',
  });
  for (const i of intent.items.values()) {
    if (i.kind === 'sid') take(lowerSid(i, o), (e) => put(MAP.sids, e));
    else if (i.kind === 'entry') {
      take(lowerPolicy(i, o), (e) => put(MAP.policy, e));
      take(lowerRoute(i, o), (r) => routes.push(r));
    } else {
      take(lowerAttachment(i, o), (e) => put(MAP.endpoints, e));
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
  return { maps, routes, skipped };
}

export interface MapWrites {
  /** New and changed entries (written first: no gap). */
  readonly put: MapEntry[];
  /** Keys to delete (last). */
  readonly delete: Uint8Array[];
  readonly added: number;
  readonly replaced: number;
}

/** What turns `have` (hex(key) -> value) into `want`: the minimal writes. */
export function diffMap(
  want: ReadonlyMap<string, MapEntry>,
  have: ReadonlyMap<string, Uint8Array>,
): MapWrites {
  const out: MapWrites = { put: [], delete: [], added: 0, replaced: 0 };
  let added = 0;
  let replaced = 0;
  for (const [k, e] of want) {
    const cur = have.get(k);
    if (!cur) {
      out.put.push(e);
      added++;
    } else if (hex(cur) !== hex(e.value)) {
      out.put.push(e);
      replaced++;
    }
  }
  for (const k of have.keys()) if (!want.has(k)) out.delete.push(Uint8Array.from(Buffer.from(k, 'hex')));
  return { ...out, added, replaced };
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
