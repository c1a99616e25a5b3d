/**
 * What the agent advertises and what it accepts, as pure functions:
 *
 *  - advertise: a workload (or tenant aggregate) route with its SRv6 SID becomes a GoBGP VPNv6 path,
 *    with or without RFC 9252 transposition; the host's locator becomes an IPv6 unicast path;
 *  - learn: a path received from an edge is checked (RFC 9252 limits, SID inside the peer's locator,
 *    not inside the fabric, route targets of known tenants only) and its SID is rebuilt from the label.
 *
 * Gossip is the authority for the fabric: a route whose SID lies in a fabric locator, or that carries
 * the fabric's own route target, is dropped, so no host installs another host's workload via the edge.
 */

import type { Any } from '@bufbuild/protobuf/wkt';
import { anyPack } from '@bufbuild/protobuf/wkt';
import { PrefixSIDSchema } from '../gen/gobgp/attribute_pb.js';
import type { Path } from '../gen/gobgp/gobgp_pb.js';
import {
  formatIpv6,
  formatPrefix,
  type Ipv6Address,
  type Ipv6Prefix,
  prefixContains,
} from '../srv6/address.ts';
import { type Behavior, decapsulates, IANA_BEHAVIOR_CODEPOINT } from '../srv6/behavior.ts';
import {
  functionTransposition,
  NO_TRANSPOSITION,
  rebuildSid,
  type SidStructure,
  transposeSid,
} from '../srv6/sid.ts';
import {
  extCommunitiesToApi,
  prefixSidToApi,
  type ReceivedPath,
  type ReceivedUnicastPath,
  type ReceivedVpnPath,
  vpnPathToApi,
} from './api.ts';
import { BgpConfigError } from './errors.ts';
import { VpnPathWriter } from './path-bytes.ts';
import {
  encodePrefixSid,
  firstL3ServiceSid,
  type PrefixSidAttribute,
  srv6L3ServicePrefixSid,
} from './prefix-sid.ts';
import { formatRd, type RouteDistinguisher, type RouteTarget } from './update.ts';
import { hex } from './wire.ts';

/** A VPNv6 route the agent advertises: a workload /128, or a tenant aggregate. */
export interface VpnAdvert {
  readonly tenant: string;
  readonly rd: RouteDistinguisher;
  readonly prefix: Ipv6Prefix;
  /** The full SID (never transposed here). */
  readonly sid: Ipv6Address;
  /** Must decapsulate: an edge encapsulates with one segment, which End would drop. */
  readonly behavior: Behavior;
  readonly structure: SidStructure;
  readonly routeTargets: readonly RouteTarget[];
  readonly nextHop: Ipv6Address;
  /** Overrides the component's transposition setting for this route. */
  readonly transposition?: boolean;
  /**
   * The workload moved away and this host only redirects to its new host until the old instance goes:
   * advertised with GRACEFUL_SHUTDOWN (RFC 8326) so that the edge prefers the new host's path as soon
   * as it has it, and keeps this one until then (withdrawing it at the move would race the new
   * host's announcement: a gap with no route at the edge).
   */
  readonly movingAway?: boolean;
}

/** Identity of an advertised or learned VPN route: RD and prefix (what BGP keys a VPN route by). */
export function vpnKey(rd: RouteDistinguisher, prefix: Ipv6Prefix): string {
  return `${formatRd(rd)}|${formatPrefix(prefix)}`;
}

/** The Prefix-SID and label of an advert, with or without transposition of the function field. */
export function encodeAdvertSid(
  advert: Pick<VpnAdvert, 'sid' | 'behavior' | 'structure'>,
  transposition: boolean,
): { prefixSid: PrefixSidAttribute; label: number } {
  if (!decapsulates(advert.behavior)) {
    throw new BgpConfigError(
      `refusing to advertise SID ${formatIpv6(advert.sid)} with ${advert.behavior} to the edge: an edge ` +
        'encapsulates with a single segment, which only a decapsulating behaviour (End.DT6, End.DX6) accepts',
    );
  }
  const t = transposition ? functionTransposition(advert.structure) : NO_TRANSPOSITION;
  const { sid, label } = transposeSid(advert.sid, t);
  return {
    label,
    prefixSid: srv6L3ServicePrefixSid({
      sid,
      behavior: IANA_BEHAVIOR_CODEPOINT[advert.behavior],
      structure: { ...advert.structure, transpositionLength: t.length, transpositionOffset: t.offset },
    }),
  };
}

/** The GoBGP path of a VPN advert. `extCommunities` may be pre-packed once per tenant. */
export function advertToPath(advert: VpnAdvert, transposition: boolean, extCommunities?: Any): Path {
  const { prefixSid, label } = encodeAdvertSid(advert, advert.transposition ?? transposition);
  return vpnPathToApi({
    rd: advert.rd,
    prefix: advert.prefix,
    labels: [label],
    nextHop: advert.nextHop,
    extCommunities: extCommunities ?? advert.routeTargets,
    prefixSid,
  });
}

/**
 * What a path carries, as a string: tells an unchanged own path from one to replace (adopting a
 * running gobgpd compares ListPath's paths with the desired ones).
 */
export function pathSignature(p: ReceivedPath): string {
  const c = communitySignature(p.communities);
  if (p.family === 'ipv6') return `u|${p.nextHops.map(formatIpv6).join(',')}${c}`;
  const psid = p.prefixSid ? hex(encodePrefixSid(p.prefixSid)) : '';
  return vpnSignature(p.labels, p.nextHops, p.routeTargets, psid) + c;
}

/** The part of a signature that communities add (none: nothing, so older signatures stay equal). */
export function communitySignature(communities: readonly number[] | undefined): string {
  return communities && communities.length > 0
    ? `|c:${[...communities].sort((a, b) => a - b).join(',')}`
    : '';
}

function vpnSignature(
  labels: readonly number[],
  nextHops: readonly Ipv6Address[],
  rts: readonly RouteTarget[],
  psidHex: string,
): string {
  const r = rts.map(formatRd).sort().join(',');
  return `v|${labels.join(',')}|${nextHops.map(formatIpv6).join(',')}|${r}|${psidHex}`;
}

/**
 * Encodes adverts into GoBGP paths, packing the attributes that many routes share once: the route
 * targets of a tenant, and the Prefix-SID of a SID (every workload of a tenant on a host shares its
 * End.DT6 SID).
 */
export class AdvertEncoder {
  readonly transposition: boolean;
  readonly #ext = new Map<string, Any>();
  readonly #rtKeys = new WeakMap<readonly RouteTarget[], { key: string; ext: Any }>();
  readonly #psid = new Map<
    Ipv6Address,
    Map<string, { any: Any; label: number; hex: string; sigs: Map<string, string> }>
  >();
  readonly #writer = new VpnPathWriter();

  constructor(transposition: boolean) {
    this.transposition = transposition;
  }

  #parts(a: VpnAdvert): { ext: Any; psid: { any: Any; label: number; hex: string }; sig: string } {
    let rt = this.#rtKeys.get(a.routeTargets);
    if (!rt) {
      const key = a.routeTargets.map(formatRd).join(',');
      let ext = this.#ext.get(key);
      if (!ext) {
        ext = extCommunitiesToApi(a.routeTargets);
        this.#ext.set(key, ext);
      }
      rt = { key, ext };
      this.#rtKeys.set(a.routeTargets, rt);
    }
    const t = a.transposition ?? this.transposition;
    const s = a.structure;
    const sidKey = `${a.behavior}|${s.locatorBlockLength}/${s.locatorNodeLength}/${s.functionLength}/${s.argumentLength}|${t}`;
    let bySid = this.#psid.get(a.sid);
    if (!bySid) {
      bySid = new Map();
      this.#psid.set(a.sid, bySid);
    }
    let psid = bySid.get(sidKey);
    if (!psid) {
      const { prefixSid, label } = encodeAdvertSid(a, t);
      psid = {
        any: anyPack(PrefixSIDSchema, prefixSidToApi(prefixSid)),
        label,
        hex: hex(encodePrefixSid(prefixSid)),
        sigs: new Map(),
      };
      bySid.set(sidKey, psid);
    }
    // The signature does not depend on the prefix: cached per next hop and route targets.
    const sigKey = `${a.nextHop}|${rt.key}`;
    let sig = psid.sigs.get(sigKey);
    if (sig === undefined) {
      sig = vpnSignature([psid.label], [a.nextHop], a.routeTargets, psid.hex);
      psid.sigs.set(sigKey, sig);
    }
    return { ext: rt.ext, psid, sig };
  }

  /** The encoded `apipb.Path` of an advert and its signature. */
  encode(a: VpnAdvert): { bytes: Uint8Array; sig: string } {
    const { ext, psid, sig } = this.#parts(a);
    const bytes = this.#writer.path({
      rd: a.rd,
      prefix: a.prefix,
      labels: [psid.label],
      nextHop: a.nextHop,
      extCommunities: ext,
      prefixSid: psid.any,
    });
    return { bytes, sig };
  }

  /** The same path as a protobuf-es message (slow path: tests, one-off calls). */
  path(a: VpnAdvert): Path {
    const { ext, psid } = this.#parts(a);
    return vpnPathToApi({
      rd: a.rd,
      prefix: a.prefix,
      labels: [psid.label],
      nextHop: a.nextHop,
      extCommunities: ext,
      prefixSid: psid.any,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Learning

/** What the agent knows when it judges a received route. */
export interface LearnPolicy {
  /** Route target (formatRd) -> tenant name. */
  readonly tenantsByRouteTarget: ReadonlyMap<string, string>;
  /** The fabric's own route targets: routes carrying one are fabric routes reflected back. */
  readonly fabricRouteTargets: ReadonlySet<string>;
  /** Every locator of the fabric (all hosts, from gossip) and the fabric's SID block. */
  readonly fabricLocators: readonly Ipv6Prefix[];
  /** The locators of a peer: from config, or learned from its IPv6 unicast routes. */
  edgeLocators(peer: string): readonly Ipv6Prefix[];
}

export const InvalidReason = {
  NoSrv6Sid: 'no-srv6-sid',
  BadStructure: 'bad-structure',
  BadTransposition: 'bad-transposition',
  NoLabel: 'no-label',
  FabricRouteTarget: 'fabric-route-target',
  UnknownRouteTarget: 'unknown-route-target',
  FabricLocator: 'fabric-locator',
  OutsideEdgeLocators: 'outside-edge-locators',
  NoNextHop: 'no-next-hop',
  Malformed: 'malformed',
} as const;
export type InvalidReason = (typeof InvalidReason)[keyof typeof InvalidReason];

/** A route from an edge, validated, with its SID rebuilt: what the data plane installs per tenant. */
export interface ExternalRoute {
  readonly key: string;
  readonly peer: string;
  readonly tenants: readonly string[];
  readonly rd: RouteDistinguisher;
  readonly prefix: Ipv6Prefix;
  /** The SID rebuilt from the attribute's SID and the label (RFC 9252 section 4). */
  readonly sid: Ipv6Address;
  /** Endpoint behaviour codepoint as received (FRR: 0xFFFF; IOS-XR uSID: other values). */
  readonly behaviorCodepoint: number;
  readonly structure: SidStructure | undefined;
  readonly nextHop: Ipv6Address;
}

export type LearnOutcome =
  | { readonly ok: true; readonly route: ExternalRoute }
  | { readonly ok: false; readonly reason: InvalidReason; readonly detail: string };

function reject(reason: InvalidReason, detail: string): LearnOutcome {
  return { ok: false, reason, detail };
}

/** Judges one received (not withdrawn) VPNv6 path. Never throws on bad input. */
export function learnVpnPath(path: ReceivedVpnPath, policy: LearnPolicy): LearnOutcome {
  const where = `${path.peer} ${vpnKey(path.rd, path.prefix)}`;
  const rts = path.routeTargets.map(formatRd);
  const fabricRt = rts.find((rt) => policy.fabricRouteTargets.has(rt));
  if (fabricRt !== undefined) {
    return reject(InvalidReason.FabricRouteTarget, `${where} carries the fabric's route target ${fabricRt}`);
  }
  const tenants = [...new Set(rts.flatMap((rt) => policy.tenantsByRouteTarget.get(rt) ?? []))];
  if (tenants.length === 0) {
    return reject(
      InvalidReason.UnknownRouteTarget,
      `${where} has route targets [${rts.join(', ')}], none of a known tenant`,
    );
  }
  const found = path.prefixSid ? firstL3ServiceSid(path.prefixSid) : undefined;
  if (!found) return reject(InvalidReason.NoSrv6Sid, `${where} has no SRv6 L3 Service SID`);
  const s = found.structure;
  let structure: SidStructure | undefined;
  let t = NO_TRANSPOSITION;
  if (s) {
    const total = s.locatorBlockLength + s.locatorNodeLength + s.functionLength + s.argumentLength;
    if (total > 128) {
      return reject(
        InvalidReason.BadStructure,
        `${where}: SID structure ${s.locatorBlockLength}/${s.locatorNodeLength}/${s.functionLength}/${s.argumentLength} is ${total} bits`,
      );
    }
    if (s.transpositionLength > 20 || s.transpositionOffset + s.transpositionLength > 128) {
      return reject(
        InvalidReason.BadTransposition,
        `${where}: transposition length ${s.transpositionLength} offset ${s.transpositionOffset} ` +
          '(RFC 9252: length <= 20, offset + length <= 128)',
      );
    }
    structure = {
      locatorBlockLength: s.locatorBlockLength,
      locatorNodeLength: s.locatorNodeLength,
      functionLength: s.functionLength,
      argumentLength: s.argumentLength,
    };
    t = { offset: s.transpositionOffset, length: s.transpositionLength };
  }
  let sid = found.info.sid;
  if (t.length > 0) {
    const label = path.labels[0];
    if (label === undefined) return reject(InvalidReason.NoLabel, `${where}: transposition without a label`);
    try {
      sid = rebuildSid(sid, label, t);
    } catch (e) {
      return reject(InvalidReason.BadTransposition, `${where}: ${(e as Error).message}`);
    }
  }
  const fabric = policy.fabricLocators.find((l) => prefixContains(l, sid));
  if (fabric) {
    return reject(
      InvalidReason.FabricLocator,
      `${where}: SID ${formatIpv6(sid)} lies in fabric locator ${formatPrefix(fabric)}; gossip is the authority there`,
    );
  }
  const edge = policy.edgeLocators(path.peer);
  if (!edge.some((l) => prefixContains(l, sid))) {
    return reject(
      InvalidReason.OutsideEdgeLocators,
      `${where}: SID ${formatIpv6(sid)} is outside the locators known for ${path.peer} ` +
        `[${edge.map(formatPrefix).join(', ')}]`,
    );
  }
  const nextHop = path.nextHops[0];
  if (nextHop === undefined) return reject(InvalidReason.NoNextHop, `${where} has no next hop`);
  return {
    ok: true,
    route: {
      key: `${path.peer}|${vpnKey(path.rd, path.prefix)}`,
      peer: path.peer,
      tenants,
      rd: path.rd,
      prefix: path.prefix,
      sid,
      behaviorCodepoint: found.info.behavior,
      structure,
      nextHop,
    },
  };
}

/** Key of a received path (peer + RD + prefix), valid or not: what a withdrawal refers to. */
export function receivedKey(path: ReceivedVpnPath): string {
  return `${path.peer}|${vpnKey(path.rd, path.prefix)}`;
}

/**
 * Edge locators learned from a peer's IPv6 unicast routes. A peer's unicast prefix counts as a
 * locator when it is not longer than /64 and does not overlap the fabric.
 */
export class EdgeLocatorTable {
  readonly #configured: ReadonlyMap<string, readonly Ipv6Prefix[]>;
  readonly #learned = new Map<string, Map<string, Ipv6Prefix>>();

  constructor(configured: ReadonlyMap<string, readonly Ipv6Prefix[]>) {
    this.#configured = configured;
  }

  /** Applies an IPv6 unicast path; returns true when the peer's set changed. */
  apply(path: ReceivedUnicastPath, fabricLocators: readonly Ipv6Prefix[]): boolean {
    const key = formatPrefix(path.prefix);
    let m = this.#learned.get(path.peer);
    if (path.withdraw) return m?.delete(key) ?? false;
    if (path.prefix.length > 64 || path.prefix.length < 16) return false;
    if (
      fabricLocators.some(
        (f) => prefixContains(f, path.prefix.address) || prefixContains(path.prefix, f.address),
      )
    ) {
      return false;
    }
    if (!m) {
      m = new Map();
      this.#learned.set(path.peer, m);
    }
    if (m.has(key)) return false;
    m.set(key, path.prefix);
    return true;
  }

  forPeer(peer: string): readonly Ipv6Prefix[] {
    const conf = this.#configured.get(peer) ?? [];
    const learned = this.#learned.get(peer);
    return learned ? [...conf, ...learned.values()] : conf;
  }

  clearPeer(peer: string): void {
    this.#learned.delete(peer);
  }
}
