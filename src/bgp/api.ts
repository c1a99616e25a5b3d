/**
 * Mapping between the agent's BGP model (src/bgp/prefix-sid.ts, src/bgp/update.ts) and GoBGP 3.10's
 * API messages (apipb, generated from the Debian package's protos into src/gen/gobgp).
 *
 * Shapes follow what was measured against FRR 8.4 (../shared/research/bgp-srv6-interop.md 4.1, 4.2):
 * every `Any` has type URL `type.googleapis.com/apipb.<Message>`, the Prefix-SID's maps are keyed by
 * TLV type, `labels[]` are 20-bit label values (GoBGP strips TC and BoS), and locally originated paths
 * come back with `neighbor_ip` "<nil>" (G5).
 * Pure: no I/O.
 */
import { create } from '@bufbuild/protobuf';
import { type Any, anyIs, anyPack, anyUnpack } from '@bufbuild/protobuf/wkt';
import {
  AsPathAttributeSchema,
  CommunitiesAttributeSchema,
  type ExtendedCommunitiesAttribute,
  ExtendedCommunitiesAttributeSchema,
  FourOctetAsSpecificExtendedSchema,
  IPAddressPrefixSchema,
  IPv4AddressSpecificExtendedSchema,
  LabeledVPNIPAddressPrefixSchema,
  MpReachNLRIAttributeSchema,
  MpUnreachNLRIAttributeSchema,
  NextHopAttributeSchema,
  OriginAttributeSchema,
  type PrefixSID,
  PrefixSIDSchema,
  RouteDistinguisherFourOctetASNSchema,
  RouteDistinguisherIPAddressSchema,
  RouteDistinguisherTwoOctetASNSchema,
  SRv6InformationSubTLVSchema,
  SRv6L2ServiceTLVSchema,
  SRv6L3ServiceTLVSchema,
  SRv6StructureSubSubTLVSchema,
  type SRv6TLV,
  SRv6TLVSchema,
  TwoOctetAsSpecificExtendedSchema,
} from '../gen/gobgp/attribute_pb.js';
import { type Family, FamilySchema, type Path, PathSchema } from '../gen/gobgp/gobgp_pb.js';
import {
  formatIpv6,
  type Ipv6Address,
  type Ipv6Prefix,
  ipv6FromBytes,
  ipv6ToBytes,
  makePrefix,
  parseIpv6,
} from '../srv6/address.ts';
import {
  type PrefixSidAttribute,
  PrefixSidTlvType,
  type Srv6ServiceTlv,
  type Srv6SidInformationTlv,
  type Srv6SidStructureTlv,
} from './prefix-sid.ts';
import type { RouteDistinguisher, RouteTarget } from './update.ts';

export const AFI_IP6 = 2;
export const SAFI_UNICAST = 1;
export const SAFI_MPLS_VPN = 128;

export function family(safi: number, afi = AFI_IP6): Family {
  return create(FamilySchema, { afi, safi });
}
export const FAMILY_IPV6_UNICAST = family(SAFI_UNICAST);
export const FAMILY_VPNV6 = family(SAFI_MPLS_VPN);

/** The path came back in a shape this mapping does not understand. */
export class ApiShapeError extends Error {
  override readonly name = 'ApiShapeError';
}

// ---------------------------------------------------------------------------------------------
// Route distinguishers, route targets

export function rdToApi(rd: RouteDistinguisher): Any {
  switch (rd.type) {
    case 0:
      return anyPack(
        RouteDistinguisherTwoOctetASNSchema,
        create(RouteDistinguisherTwoOctetASNSchema, { admin: rd.admin, assigned: rd.assigned }),
      );
    case 1:
      return anyPack(
        RouteDistinguisherIPAddressSchema,
        create(RouteDistinguisherIPAddressSchema, { admin: rd.admin, assigned: rd.assigned }),
      );
    case 2:
      return anyPack(
        RouteDistinguisherFourOctetASNSchema,
        create(RouteDistinguisherFourOctetASNSchema, { admin: rd.admin, assigned: rd.assigned }),
      );
  }
}

export function rdFromApi(any: Any | undefined): RouteDistinguisher {
  if (!any) throw new ApiShapeError('VPN NLRI without a route distinguisher');
  const two = anyUnpack(any, RouteDistinguisherTwoOctetASNSchema);
  if (two) return { type: 0, admin: two.admin, assigned: two.assigned };
  const ip = anyUnpack(any, RouteDistinguisherIPAddressSchema);
  if (ip) return { type: 1, admin: ip.admin, assigned: ip.assigned };
  const four = anyUnpack(any, RouteDistinguisherFourOctetASNSchema);
  if (four) return { type: 2, admin: four.admin, assigned: four.assigned };
  throw new ApiShapeError(`unknown route distinguisher type ${any.typeUrl}`);
}

/** RFC 4360 route target sub-type. */
const RT_SUBTYPE = 2;

export function routeTargetToApi(rt: RouteTarget): Any {
  switch (rt.type) {
    case 0:
      return anyPack(
        TwoOctetAsSpecificExtendedSchema,
        create(TwoOctetAsSpecificExtendedSchema, {
          isTransitive: true,
          subType: RT_SUBTYPE,
          asn: rt.admin,
          localAdmin: rt.assigned,
        }),
      );
    case 1:
      return anyPack(
        IPv4AddressSpecificExtendedSchema,
        create(IPv4AddressSpecificExtendedSchema, {
          isTransitive: true,
          subType: RT_SUBTYPE,
          address: rt.admin,
          localAdmin: rt.assigned,
        }),
      );
    case 2:
      return anyPack(
        FourOctetAsSpecificExtendedSchema,
        create(FourOctetAsSpecificExtendedSchema, {
          isTransitive: true,
          subType: RT_SUBTYPE,
          asn: rt.admin,
          localAdmin: rt.assigned,
        }),
      );
  }
}

/** The route targets among an extended communities attribute; other communities are skipped. */
export function routeTargetsFromApi(attr: ExtendedCommunitiesAttribute): RouteTarget[] {
  const out: RouteTarget[] = [];
  for (const c of attr.communities) {
    const two = anyUnpack(c, TwoOctetAsSpecificExtendedSchema);
    if (two) {
      if (two.subType === RT_SUBTYPE) out.push({ type: 0, admin: two.asn, assigned: two.localAdmin });
      continue;
    }
    const ip = anyUnpack(c, IPv4AddressSpecificExtendedSchema);
    if (ip) {
      if (ip.subType === RT_SUBTYPE) out.push({ type: 1, admin: ip.address, assigned: ip.localAdmin });
      continue;
    }
    const four = anyUnpack(c, FourOctetAsSpecificExtendedSchema);
    if (four && four.subType === RT_SUBTYPE)
      out.push({ type: 2, admin: four.asn, assigned: four.localAdmin });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Prefix-SID

function structureToApi(s: Srv6SidStructureTlv): Any {
  return anyPack(
    SRv6StructureSubSubTLVSchema,
    create(SRv6StructureSubSubTLVSchema, {
      locatorBlockLength: s.locatorBlockLength,
      locatorNodeLength: s.locatorNodeLength,
      functionLength: s.functionLength,
      argumentLength: s.argumentLength,
      transpositionLength: s.transpositionLength,
      transpositionOffset: s.transpositionOffset,
    }),
  );
}

function informationToApi(info: Srv6SidInformationTlv): Any {
  const structures = info.subSubTlvs.filter((t): t is Srv6SidStructureTlv => t.kind === 'sid-structure');
  if (structures.length !== info.subSubTlvs.length) {
    throw new ApiShapeError('GoBGP 3.10 AddPath cannot carry unknown SRv6 sub-sub-TLVs; drop them first');
  }
  return anyPack(
    SRv6InformationSubTLVSchema,
    create(SRv6InformationSubTLVSchema, {
      sid: ipv6ToBytes(info.sid),
      flags: {},
      endpointBehavior: info.behavior,
      subSubTlvs:
        structures.length > 0 ? { 1: create(SRv6TLVSchema, { tlv: structures.map(structureToApi) }) } : {},
    }),
  );
}

/**
 * Our Prefix-SID model as GoBGP's `apipb.PrefixSID`. GoBGP 3.10's AddPath takes only the SRv6 L3
 * Service TLV (G3) and always sends SID flags 0; anything else is refused here with a reason.
 */
export function prefixSidToApi(attr: PrefixSidAttribute): PrefixSID {
  const tlvs: Any[] = [];
  for (const t of attr.tlvs) {
    if (t.kind !== 'srv6-service' || t.type !== PrefixSidTlvType.Srv6L3Service) {
      throw new ApiShapeError(
        `GoBGP 3.10 AddPath takes only the SRv6 L3 Service TLV in a Prefix-SID, not TLV ${t.type}`,
      );
    }
    const infos = t.subTlvs.filter((s): s is Srv6SidInformationTlv => s.kind === 'sid-information');
    if (infos.length !== t.subTlvs.length) {
      throw new ApiShapeError('GoBGP 3.10 AddPath cannot carry unknown SRv6 service sub-TLVs');
    }
    tlvs.push(
      anyPack(
        SRv6L3ServiceTLVSchema,
        create(SRv6L3ServiceTLVSchema, {
          subTlvs: { 1: create(SRv6TLVSchema, { tlv: infos.map(informationToApi) }) },
        }),
      ),
    );
  }
  return create(PrefixSIDSchema, { tlvs });
}

function serviceFromApi(type: 5 | 6, subTlvs: { [key: number]: SRv6TLV }): Srv6ServiceTlv {
  const infos: Srv6SidInformationTlv[] = [];
  for (const [key, group] of Object.entries(subTlvs)) {
    if (Number(key) !== 1) continue;
    for (const any of group.tlv) {
      const info = anyUnpack(any, SRv6InformationSubTLVSchema);
      if (!info) continue;
      if (info.sid.length !== 16) throw new ApiShapeError(`SRv6 SID of ${info.sid.length} bytes, must be 16`);
      const subSubTlvs: Srv6SidStructureTlv[] = [];
      for (const [k, g] of Object.entries(info.subSubTlvs)) {
        if (Number(k) !== 1) continue;
        for (const a of g.tlv) {
          const s = anyUnpack(a, SRv6StructureSubSubTLVSchema);
          if (s) subSubTlvs.push({ kind: 'sid-structure', ...pickStructure(s) });
        }
      }
      infos.push({
        kind: 'sid-information',
        reserved1: 0,
        sid: ipv6FromBytes(info.sid),
        flags: info.flags?.flag1 ? 0x80 : 0,
        behavior: info.endpointBehavior,
        reserved2: 0,
        subSubTlvs,
      });
    }
  }
  return { kind: 'srv6-service', type, reserved: 0, subTlvs: infos };
}

function pickStructure(s: {
  locatorBlockLength: number;
  locatorNodeLength: number;
  functionLength: number;
  argumentLength: number;
  transpositionLength: number;
  transpositionOffset: number;
}) {
  return {
    locatorBlockLength: s.locatorBlockLength,
    locatorNodeLength: s.locatorNodeLength,
    functionLength: s.functionLength,
    argumentLength: s.argumentLength,
    transpositionLength: s.transpositionLength,
    transpositionOffset: s.transpositionOffset,
  };
}

/** GoBGP's `apipb.PrefixSID` as our model (TLVs GoBGP does not map are not in the API: G3). */
export function prefixSidFromApi(msg: PrefixSID): PrefixSidAttribute {
  const tlvs: Srv6ServiceTlv[] = [];
  for (const any of msg.tlvs) {
    const l3 = anyUnpack(any, SRv6L3ServiceTLVSchema);
    if (l3) {
      tlvs.push(serviceFromApi(PrefixSidTlvType.Srv6L3Service, l3.subTlvs));
      continue;
    }
    const l2 = anyUnpack(any, SRv6L2ServiceTLVSchema);
    if (l2) tlvs.push(serviceFromApi(PrefixSidTlvType.Srv6L2Service, l2.subTlvs));
  }
  return { tlvs };
}

// ---------------------------------------------------------------------------------------------
// Paths the agent originates

/** Attributes shared by many paths, packed once (ORIGIN IGP, one RT set). */
export const ORIGIN_IGP: Any = anyPack(OriginAttributeSchema, create(OriginAttributeSchema, { origin: 0 }));

export function extCommunitiesToApi(rts: readonly RouteTarget[]): Any {
  return anyPack(
    ExtendedCommunitiesAttributeSchema,
    create(ExtendedCommunitiesAttributeSchema, { communities: rts.map(routeTargetToApi) }),
  );
}

/** RFC 8326 GRACEFUL_SHUTDOWN (65535:0): receivers lower the path's preference (FRR: local-pref 0). */
export const GRACEFUL_SHUTDOWN_COMMUNITY = 0xffff0000;

/** A COMMUNITIES attribute (RFC 1997) of 32-bit values. */
export function communitiesToApi(values: readonly number[]): Any {
  return anyPack(
    CommunitiesAttributeSchema,
    create(CommunitiesAttributeSchema, { communities: [...values] }),
  );
}

export interface VpnPathSpec {
  readonly rd: RouteDistinguisher;
  readonly prefix: Ipv6Prefix;
  /** 20-bit label values; `[3]` without transposition. */
  readonly labels: readonly number[];
  readonly nextHop: Ipv6Address;
  /** Pre-packed extended communities (see extCommunitiesToApi), or the route targets. */
  readonly extCommunities: Any | readonly RouteTarget[];
  /** The Prefix-SID: our model, GoBGP's message, or already packed in an Any (shared by many paths). */
  readonly prefixSid: PrefixSidAttribute | PrefixSID | Any;
}

function packedPrefixSid(x: PrefixSidAttribute | PrefixSID | Any): Any {
  if ((x as Any).$typeName === 'google.protobuf.Any') return x as Any;
  if ((x as PrefixSID).$typeName === 'apipb.PrefixSID') return anyPack(PrefixSIDSchema, x as PrefixSID);
  return anyPack(PrefixSIDSchema, prefixSidToApi(x as PrefixSidAttribute));
}

/** A VPNv6 path in the shape that FRR 8.4 accepted (research 4.1). */
export function vpnPathToApi(spec: VpnPathSpec): Path {
  const nlri = anyPack(
    LabeledVPNIPAddressPrefixSchema,
    create(LabeledVPNIPAddressPrefixSchema, {
      labels: [...spec.labels],
      rd: rdToApi(spec.rd),
      prefixLen: spec.prefix.length,
      prefix: formatIpv6(spec.prefix.address),
    }),
  );
  const mpReach = anyPack(
    MpReachNLRIAttributeSchema,
    create(MpReachNLRIAttributeSchema, {
      family: FAMILY_VPNV6,
      nextHops: [formatIpv6(spec.nextHop)],
      nlris: [nlri],
    }),
  );
  const ext = Array.isArray(spec.extCommunities)
    ? extCommunitiesToApi(spec.extCommunities as readonly RouteTarget[])
    : (spec.extCommunities as Any);
  return create(PathSchema, {
    family: FAMILY_VPNV6,
    nlri,
    pattrs: [ORIGIN_IGP, mpReach, ext, packedPrefixSid(spec.prefixSid)],
  });
}

/** An IPv6 unicast path (the host's locator). */
export function unicastPathToApi(prefix: Ipv6Prefix, nextHop: Ipv6Address): Path {
  const nlri = anyPack(
    IPAddressPrefixSchema,
    create(IPAddressPrefixSchema, { prefixLen: prefix.length, prefix: formatIpv6(prefix.address) }),
  );
  const mpReach = anyPack(
    MpReachNLRIAttributeSchema,
    create(MpReachNLRIAttributeSchema, {
      family: FAMILY_IPV6_UNICAST,
      nextHops: [formatIpv6(nextHop)],
      nlris: [nlri],
    }),
  );
  return create(PathSchema, { family: FAMILY_IPV6_UNICAST, nlri, pattrs: [ORIGIN_IGP, mpReach] });
}

// ---------------------------------------------------------------------------------------------
// Paths the agent receives

/** GoBGP marks paths it originated itself with neighbor_ip "<nil>" (G5) or leaves it empty. */
export function isLocalPath(path: Path): boolean {
  return path.neighborIp === '' || path.neighborIp === '<nil>';
}

export interface ReceivedVpnPath {
  readonly family: 'vpnv6';
  readonly peer: string;
  readonly withdraw: boolean;
  readonly rd: RouteDistinguisher;
  readonly prefix: Ipv6Prefix;
  readonly labels: readonly number[];
  readonly nextHops: readonly Ipv6Address[];
  readonly routeTargets: readonly RouteTarget[];
  readonly prefixSid: PrefixSidAttribute | undefined;
  readonly asPath: readonly number[];
  /** RFC 1997 communities as 32-bit values (`65535:0` = 0xffff0000); absent when none. */
  readonly communities?: readonly number[];
}

export interface ReceivedUnicastPath {
  readonly family: 'ipv6';
  readonly peer: string;
  readonly withdraw: boolean;
  readonly prefix: Ipv6Prefix;
  readonly nextHops: readonly Ipv6Address[];
  readonly communities?: readonly number[];
}

export type ReceivedPath = ReceivedVpnPath | ReceivedUnicastPath;

function parseAddr(text: string, what: string): Ipv6Address {
  try {
    return parseIpv6(text);
  } catch {
    throw new ApiShapeError(`${what} ${JSON.stringify(text)} is not an IPv6 address`);
  }
}

/**
 * Reads a path from ListPath/WatchEvent. Returns undefined for families the agent does not use;
 * throws ApiShapeError for a path of a used family that cannot be read.
 */
export function pathFromApi(path: Path): ReceivedPath | undefined {
  try {
    return readPath(path);
  } catch (e) {
    if (e instanceof ApiShapeError) throw e;
    // The attributes and NLRI are google.protobuf.Any values whose bytes are decoded here, late: a
    // malformed one must surface as what it is (a path that cannot be read), not as a protobuf
    // library error that callers do not expect (issue 12, found by fuzzing the own-path checks).
    const why = e instanceof Error ? e.message : String(e);
    throw new ApiShapeError(`path from ${path.neighborIp || 'this gobgpd'} cannot be read: ${why}`);
  }
}

function readPath(path: Path): ReceivedPath | undefined {
  const nlri = path.nlri;
  if (!nlri) throw new ApiShapeError('path without NLRI');
  const peer = path.neighborIp;
  const nextHops: Ipv6Address[] = [];
  let routeTargets: RouteTarget[] = [];
  let prefixSid: PrefixSidAttribute | undefined;
  const asPath: number[] = [];
  let communities: number[] | undefined;
  for (const a of path.pattrs) {
    const reach = anyUnpack(a, MpReachNLRIAttributeSchema);
    if (reach) {
      for (const nh of reach.nextHops) nextHops.push(parseAddr(nh, 'next hop'));
      continue;
    }
    if (anyIs(a, NextHopAttributeSchema)) continue; // IPv4 next hop: not ours
    const ext = anyUnpack(a, ExtendedCommunitiesAttributeSchema);
    if (ext) {
      routeTargets = routeTargetsFromApi(ext);
      continue;
    }
    const psid = anyUnpack(a, PrefixSIDSchema);
    if (psid) {
      prefixSid = prefixSidFromApi(psid);
      continue;
    }
    const comm = anyUnpack(a, CommunitiesAttributeSchema);
    if (comm) {
      communities = [...(communities ?? []), ...comm.communities];
      continue;
    }
    const ap = anyUnpack(a, AsPathAttributeSchema);
    if (ap) for (const s of ap.segments) asPath.push(...s.numbers);
    if (anyIs(a, MpUnreachNLRIAttributeSchema)) continue;
  }
  const vpn = anyUnpack(nlri, LabeledVPNIPAddressPrefixSchema);
  if (vpn) {
    if (vpn.prefixLen > 128) throw new ApiShapeError(`VPN prefix length ${vpn.prefixLen}`);
    return {
      family: 'vpnv6',
      peer,
      withdraw: path.isWithdraw,
      rd: rdFromApi(vpn.rd),
      prefix: makePrefix(parseAddr(vpn.prefix, 'VPN prefix'), vpn.prefixLen),
      labels: [...vpn.labels],
      nextHops,
      routeTargets,
      prefixSid,
      asPath,
      ...(communities ? { communities } : {}),
    };
  }
  const uni = anyUnpack(nlri, IPAddressPrefixSchema);
  if (uni) {
    if (!uni.prefix.includes(':')) return undefined; // IPv4
    if (uni.prefixLen > 128) throw new ApiShapeError(`IPv6 prefix length ${uni.prefixLen}`);
    return {
      family: 'ipv6',
      peer,
      withdraw: path.isWithdraw,
      prefix: makePrefix(parseAddr(uni.prefix, 'IPv6 prefix'), uni.prefixLen),
      nextHops,
      ...(communities ? { communities } : {}),
    };
  }
  return undefined;
}
