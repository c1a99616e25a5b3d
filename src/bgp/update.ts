/**
 * A BGP UPDATE decoder/encoder for what the agent and its edges exchange (RFC 4271, RFC 4760 MP-BGP,
 * RFC 4364/4659 VPN-IPv6 NLRI, RFC 4360 extended communities, RFC 9252 Prefix-SID).
 *
 * GoBGP speaks BGP for the agent; this codec is for checking bytes: golden UPDATEs captured between
 * GoBGP 3.10 and FRR 8.4 (docs/edge/, test/unit/bgp/), and captures in system tests, without tshark.
 * Unknown attributes and NLRI of other families are kept raw, so encode(decode(x)) == x.
 * AS_PATH is read with 4-octet AS numbers (every modern session negotiates them, RFC 6793).
 * Pure: no I/O.
 */
import {
  formatIpv6,
  type Ipv6Address,
  type Ipv6Prefix,
  ipv6FromBytes,
  ipv6ToBytes,
  makePrefix,
} from '../srv6/address.ts';
import { type ErrorHandling, MalformedAttributeError, UpdateErrorSubcode } from './errors.ts';
import {
  decodePrefixSid,
  encodePrefixSid,
  PREFIX_SID_ATTRIBUTE,
  type PrefixSidAttribute,
} from './prefix-sid.ts';
import { concat, need, view } from './wire.ts';

export const BGP_HEADER_LENGTH = 19;
export const BgpMessageType = { Open: 1, Update: 2, Notification: 3, Keepalive: 4, RouteRefresh: 5 } as const;

export const AttrType = {
  Origin: 1,
  AsPath: 2,
  NextHop: 3,
  Med: 4,
  LocalPref: 5,
  MpReach: 14,
  MpUnreach: 15,
  ExtendedCommunities: 16,
  PrefixSid: PREFIX_SID_ATTRIBUTE,
} as const;

export const AttrFlag = { Optional: 0x80, Transitive: 0x40, Partial: 0x20, ExtendedLength: 0x10 } as const;

export const Afi = { Ipv4: 1, Ipv6: 2 } as const;
export const Safi = { Unicast: 1, MplsVpn: 128 } as const;

/** Route distinguisher (RFC 4364 section 4.2); also the shape of a route target's global/local parts. */
export type RouteDistinguisher =
  | { readonly type: 0; readonly admin: number; readonly assigned: number } // 2-octet AS : 4-octet number
  | { readonly type: 1; readonly admin: string; readonly assigned: number } // IPv4 : 2-octet number
  | { readonly type: 2; readonly admin: number; readonly assigned: number }; // 4-octet AS : 2-octet number

/** A route target is an extended community of the same three shapes (RFC 4360 section 4, sub-type 2). */
export type RouteTarget = RouteDistinguisher;

export type ExtendedCommunity =
  | { readonly kind: 'route-target'; readonly transitive: boolean; readonly rt: RouteTarget }
  | { readonly kind: 'raw'; readonly bytes: Uint8Array };

/** One labelled VPN-IPv6 NLRI. `labels` are the raw 24-bit label fields (label << 4 | TC << 1 | BoS). */
export interface VpnNlri {
  readonly kind: 'vpn';
  readonly labels: readonly number[];
  readonly rd: RouteDistinguisher;
  readonly prefix: Ipv6Prefix;
}

export interface Ipv6UnicastNlri {
  readonly kind: 'ipv6';
  readonly prefix: Ipv6Prefix;
}

export type MpNlri = VpnNlri | Ipv6UnicastNlri;

export type PathAttribute =
  | { readonly kind: 'origin'; readonly flags: number; readonly origin: number }
  | {
      readonly kind: 'as-path';
      readonly flags: number;
      readonly segments: readonly { readonly type: number; readonly asns: readonly number[] }[];
    }
  | { readonly kind: 'med'; readonly flags: number; readonly value: number }
  | { readonly kind: 'local-pref'; readonly flags: number; readonly value: number }
  | {
      readonly kind: 'mp-reach';
      readonly flags: number;
      readonly afi: number;
      readonly safi: number;
      /** The next hop field as sent (for VPN-IPv6: RD 0 + global [+ RD 0 + link-local]). */
      readonly nextHop: Uint8Array;
      readonly reserved: number;
      /** Decoded NLRI for AFI 2 / SAFI 1 and 128; otherwise empty and `rawNlri` holds the bytes. */
      readonly nlri: readonly MpNlri[];
      readonly rawNlri?: Uint8Array;
    }
  | {
      readonly kind: 'mp-unreach';
      readonly flags: number;
      readonly afi: number;
      readonly safi: number;
      readonly nlri: readonly MpNlri[];
      readonly rawNlri?: Uint8Array;
    }
  | {
      readonly kind: 'ext-communities';
      readonly flags: number;
      readonly communities: readonly ExtendedCommunity[];
    }
  | { readonly kind: 'prefix-sid'; readonly flags: number; readonly value: PrefixSidAttribute }
  | { readonly kind: 'raw'; readonly flags: number; readonly type: number; readonly value: Uint8Array };

export interface UpdateMessage {
  /** IPv4 withdrawn routes and NLRI are not used by the agent: kept raw. */
  readonly withdrawnRoutes: Uint8Array;
  readonly attributes: readonly PathAttribute[];
  readonly nlri: Uint8Array;
}

function bad(
  what: string,
  offset: number,
  subcode: number = UpdateErrorSubcode.AttributeLength,
  handling: ErrorHandling = 'treat-as-withdraw',
): MalformedAttributeError {
  return new MalformedAttributeError(`UPDATE: ${what}`, { subcode, handling, offset });
}

// ---------------------------------------------------------------------------------------------
// Route distinguishers and route targets

/** Decodes the 6 bytes after an RD's type (or an extended community's type and sub-type). */
function decodeRdValue(type: 0 | 1 | 2, bytes: Uint8Array, at: number): RouteDistinguisher {
  const dv = view(bytes);
  if (type === 0) return { type, admin: dv.getUint16(at), assigned: dv.getUint32(at + 2) };
  if (type === 1) return { type, admin: bytes.slice(at, at + 4).join('.'), assigned: dv.getUint16(at + 4) };
  return { type, admin: dv.getUint32(at), assigned: dv.getUint16(at + 4) };
}

function encodeRdValue(rd: RouteDistinguisher): Uint8Array {
  const out = new Uint8Array(6);
  const dv = view(out);
  if (rd.type === 0) {
    dv.setUint16(0, rd.admin);
    dv.setUint32(2, rd.assigned);
  } else if (rd.type === 1) {
    out.set(parseIpv4(rd.admin), 0);
    dv.setUint16(4, rd.assigned);
  } else {
    dv.setUint32(0, rd.admin);
    dv.setUint16(4, rd.assigned);
  }
  return out;
}

function parseIpv4(text: string): Uint8Array {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: ${JSON.stringify(text)}`);
  }
  return Uint8Array.from(parts);
}

export function decodeRouteDistinguisher(bytes: Uint8Array, offset: number): RouteDistinguisher {
  need(
    bytes,
    offset,
    bytes.length,
    8,
    'route distinguisher',
    'treat-as-withdraw',
    UpdateErrorSubcode.OptionalAttribute,
  );
  const type = view(bytes).getUint16(offset);
  if (type > 2)
    throw bad(`route distinguisher type ${type} unknown`, offset, UpdateErrorSubcode.OptionalAttribute);
  return decodeRdValue(type as 0 | 1 | 2, bytes, offset + 2);
}

export function encodeRouteDistinguisher(rd: RouteDistinguisher): Uint8Array {
  const out = new Uint8Array(8);
  view(out).setUint16(0, rd.type);
  out.set(encodeRdValue(rd), 2);
  return out;
}

/** `65101:100`, `198.18.0.1:7`, `4200000000:7` (type 2 when the AS does not fit 16 bits). */
export function formatRd(rd: RouteDistinguisher): string {
  return `${rd.admin}:${rd.assigned}`;
}

/** Parses `ASN:number` or `IPv4:number`; a 16-bit AS gives type 0, a larger one type 2. */
export function parseRd(text: string): RouteDistinguisher {
  const colon = text.lastIndexOf(':');
  const admin = text.slice(0, colon);
  const assigned = Number(text.slice(colon + 1));
  if (colon <= 0 || !/^[0-9]+$/.test(text.slice(colon + 1))) {
    throw new RangeError(`not a route distinguisher/target ${JSON.stringify(text)}: write ASN:N or IPv4:N`);
  }
  if (admin.includes('.')) {
    parseIpv4(admin);
    if (assigned > 0xffff) throw new RangeError(`${text}: the number after an IPv4 admin must be <= 65535`);
    return { type: 1, admin, assigned };
  }
  if (!/^[0-9]+$/.test(admin))
    throw new RangeError(`not a route distinguisher/target ${JSON.stringify(text)}`);
  const asn = Number(admin);
  if (asn <= 0xffff) {
    if (assigned > 0xffffffff) throw new RangeError(`${text}: number too large`);
    return { type: 0, admin: asn, assigned };
  }
  if (asn > 0xffffffff || assigned > 0xffff)
    throw new RangeError(`${text}: 4-octet AS needs a number <= 65535`);
  return { type: 2, admin: asn, assigned };
}

export function rdEquals(a: RouteDistinguisher, b: RouteDistinguisher): boolean {
  return a.type === b.type && a.admin === b.admin && a.assigned === b.assigned;
}

function decodeExtCommunity(bytes: Uint8Array, at: number): ExtendedCommunity {
  const type = bytes[at]!;
  const sub = bytes[at + 1]!;
  const high = type & 0x3f; // strip the IANA authority and non-transitive bits
  if (sub === 0x02 && high <= 2) {
    return {
      kind: 'route-target',
      transitive: (type & 0x40) === 0,
      rt: decodeRdValue(high as 0 | 1 | 2, bytes, at + 2),
    };
  }
  return { kind: 'raw', bytes: bytes.slice(at, at + 8) };
}

function encodeExtCommunity(c: ExtendedCommunity): Uint8Array {
  if (c.kind === 'raw') return c.bytes;
  const out = new Uint8Array(8);
  out[0] = c.rt.type | (c.transitive ? 0 : 0x40);
  out[1] = 0x02;
  out.set(encodeRdValue(c.rt), 2);
  return out;
}

export function routeTarget(rt: RouteTarget): ExtendedCommunity {
  return { kind: 'route-target', transitive: true, rt };
}

// ---------------------------------------------------------------------------------------------
// NLRI

const BOS = 1;
/** RFC 8277 section 2.4: the label 0x800000 marks a withdrawal, in place of the stack. */
const WITHDRAW_LABEL = 0x800000;

function decodePrefixBits(bytes: Uint8Array, at: number, bits: number): Ipv6Address {
  const buf = new Uint8Array(16);
  buf.set(bytes.subarray(at, at + Math.ceil(bits / 8)));
  return ipv6FromBytes(buf);
}

function decodeMpNlri(
  bytes: Uint8Array,
  offset: number,
  end: number,
  safi: number,
  withdraw: boolean,
): MpNlri[] {
  const out: MpNlri[] = [];
  let at = offset;
  while (at < end) {
    const bits = bytes[at]!;
    const nbytes = Math.ceil(bits / 8);
    need(bytes, at + 1, end, nbytes, 'NLRI', 'session-reset', UpdateErrorSubcode.InvalidNetworkField);
    const start = at + 1;
    const stop = start + nbytes;
    if (safi === Safi.Unicast) {
      if (bits > 128)
        throw bad(`IPv6 prefix length ${bits}`, at, UpdateErrorSubcode.InvalidNetworkField, 'session-reset');
      const addr = decodePrefixBits(bytes, start, bits);
      out.push({ kind: 'ipv6', prefix: makePrefix(addr, bits) });
    } else {
      const labels: number[] = [];
      let p = start;
      let remaining = bits;
      for (;;) {
        if (remaining < 24 || p + 3 > stop)
          throw bad(
            'VPN NLRI label stack runs past the prefix',
            at,
            UpdateErrorSubcode.InvalidNetworkField,
            'session-reset',
          );
        const field = (bytes[p]! << 16) | (bytes[p + 1]! << 8) | bytes[p + 2]!;
        labels.push(field);
        p += 3;
        remaining -= 24;
        if ((field & BOS) !== 0 || (withdraw && field === WITHDRAW_LABEL)) break;
      }
      if (remaining < 64)
        throw bad(
          'VPN NLRI shorter than its route distinguisher',
          at,
          UpdateErrorSubcode.InvalidNetworkField,
          'session-reset',
        );
      const rd = decodeRouteDistinguisher(bytes, p);
      p += 8;
      remaining -= 64;
      if (remaining > 128)
        throw bad(
          `VPN-IPv6 prefix length ${remaining}`,
          at,
          UpdateErrorSubcode.InvalidNetworkField,
          'session-reset',
        );
      const addr = decodePrefixBits(bytes, p, remaining);
      out.push({ kind: 'vpn', labels, rd, prefix: makePrefix(addr, remaining) });
    }
    at = stop;
  }
  return out;
}

function prefixBytes(prefix: Ipv6Prefix): Uint8Array {
  return ipv6ToBytes(prefix.address).slice(0, Math.ceil(prefix.length / 8));
}

function encodeMpNlri(n: MpNlri): Uint8Array {
  if (n.kind === 'ipv6') return concat([Uint8Array.of(n.prefix.length), prefixBytes(n.prefix)]);
  const labels = new Uint8Array(3 * n.labels.length);
  n.labels.forEach((f, i) => {
    labels[3 * i] = (f >>> 16) & 0xff;
    labels[3 * i + 1] = (f >>> 8) & 0xff;
    labels[3 * i + 2] = f & 0xff;
  });
  const bits = 24 * n.labels.length + 64 + n.prefix.length;
  if (bits > 255) throw new RangeError(`VPN NLRI of ${bits} bits does not fit`);
  return concat([Uint8Array.of(bits), labels, encodeRouteDistinguisher(n.rd), prefixBytes(n.prefix)]);
}

/** The 20-bit label value of a raw label field. */
export function labelValue(field: number): number {
  return field >>> 4;
}

/** A raw label field with bottom-of-stack set. */
export function labelField(label: number): number {
  if (!Number.isInteger(label) || label < 0 || label > 0xfffff)
    throw new RangeError(`label ${label} is not 20 bits`);
  return (label << 4) | BOS;
}

/** The addresses in an MP_REACH next hop: for VPN, each is preceded by an 8-byte zero RD. */
export function mpNextHops(attr: Extract<PathAttribute, { kind: 'mp-reach' }>): Ipv6Address[] {
  const nh = attr.nextHop;
  const stride = attr.safi === Safi.MplsVpn ? 24 : 16;
  const skip = attr.safi === Safi.MplsVpn ? 8 : 0;
  const out: Ipv6Address[] = [];
  if (attr.afi !== Afi.Ipv6 || nh.length % stride !== 0) return out;
  for (let at = 0; at < nh.length; at += stride) out.push(ipv6FromBytes(nh, at + skip));
  return out;
}

export function vpnNextHop(addresses: readonly Ipv6Address[]): Uint8Array {
  return concat(addresses.map((a) => concat([new Uint8Array(8), ipv6ToBytes(a)])));
}

// ---------------------------------------------------------------------------------------------
// Path attributes

function decodeAttribute(bytes: Uint8Array, offset: number, end: number): [PathAttribute, number] {
  need(
    bytes,
    offset,
    end,
    3,
    'path attribute header',
    'session-reset',
    UpdateErrorSubcode.MalformedAttributeList,
  );
  const flags = bytes[offset]!;
  const type = bytes[offset + 1]!;
  const extended = (flags & AttrFlag.ExtendedLength) !== 0;
  need(
    bytes,
    offset,
    end,
    extended ? 4 : 3,
    'path attribute header',
    'session-reset',
    UpdateErrorSubcode.MalformedAttributeList,
  );
  const length = extended ? view(bytes).getUint16(offset + 2) : bytes[offset + 2]!;
  const v = offset + (extended ? 4 : 3);
  const vEnd = v + length;
  if (vEnd > end) {
    throw bad(
      `attribute ${type} declares ${length} bytes, ${end - v} left`,
      offset,
      UpdateErrorSubcode.AttributeLength,
      'session-reset',
    );
  }
  const dv = view(bytes);
  const fixed = (n: number) => {
    if (length !== n) throw bad(`attribute ${type} length ${length}, must be ${n}`, offset);
  };
  switch (type) {
    case AttrType.Origin:
      fixed(1);
      return [{ kind: 'origin', flags, origin: bytes[v]! }, vEnd];
    case AttrType.Med:
      fixed(4);
      return [{ kind: 'med', flags, value: dv.getUint32(v) }, vEnd];
    case AttrType.LocalPref:
      fixed(4);
      return [{ kind: 'local-pref', flags, value: dv.getUint32(v) }, vEnd];
    case AttrType.AsPath: {
      const segments: { type: number; asns: number[] }[] = [];
      let at = v;
      while (at < vEnd) {
        need(bytes, at, vEnd, 2, 'AS_PATH segment');
        const count = bytes[at + 1]!;
        need(bytes, at + 2, vEnd, 4 * count, 'AS_PATH segment');
        const asns: number[] = [];
        for (let i = 0; i < count; i++) asns.push(dv.getUint32(at + 2 + 4 * i));
        segments.push({ type: bytes[at]!, asns });
        at += 2 + 4 * count;
      }
      return [{ kind: 'as-path', flags, segments }, vEnd];
    }
    case AttrType.MpReach: {
      need(bytes, v, vEnd, 5, 'MP_REACH_NLRI', 'session-reset');
      const afi = dv.getUint16(v);
      const safi = bytes[v + 2]!;
      const nhLen = bytes[v + 3]!;
      need(bytes, v + 4, vEnd, nhLen + 1, 'MP_REACH_NLRI next hop', 'session-reset');
      const nextHop = bytes.slice(v + 4, v + 4 + nhLen);
      const reserved = bytes[v + 4 + nhLen]!;
      const nStart = v + 5 + nhLen;
      const known = afi === Afi.Ipv6 && (safi === Safi.Unicast || safi === Safi.MplsVpn);
      return [
        known
          ? {
              kind: 'mp-reach',
              flags,
              afi,
              safi,
              nextHop,
              reserved,
              nlri: decodeMpNlri(bytes, nStart, vEnd, safi, false),
            }
          : {
              kind: 'mp-reach',
              flags,
              afi,
              safi,
              nextHop,
              reserved,
              nlri: [],
              rawNlri: bytes.slice(nStart, vEnd),
            },
        vEnd,
      ];
    }
    case AttrType.MpUnreach: {
      need(bytes, v, vEnd, 3, 'MP_UNREACH_NLRI', 'session-reset');
      const afi = dv.getUint16(v);
      const safi = bytes[v + 2]!;
      const known = afi === Afi.Ipv6 && (safi === Safi.Unicast || safi === Safi.MplsVpn);
      return [
        known
          ? { kind: 'mp-unreach', flags, afi, safi, nlri: decodeMpNlri(bytes, v + 3, vEnd, safi, true) }
          : { kind: 'mp-unreach', flags, afi, safi, nlri: [], rawNlri: bytes.slice(v + 3, vEnd) },
        vEnd,
      ];
    }
    case AttrType.ExtendedCommunities: {
      if (length % 8 !== 0) throw bad(`extended communities length ${length} not a multiple of 8`, offset);
      const communities: ExtendedCommunity[] = [];
      for (let at = v; at < vEnd; at += 8) communities.push(decodeExtCommunity(bytes, at));
      return [{ kind: 'ext-communities', flags, communities }, vEnd];
    }
    case AttrType.PrefixSid:
      return [{ kind: 'prefix-sid', flags, value: decodePrefixSid(bytes, v, vEnd) }, vEnd];
    default:
      return [{ kind: 'raw', flags, type, value: bytes.slice(v, vEnd) }, vEnd];
  }
}

function attributeValue(a: PathAttribute): [number, Uint8Array] {
  switch (a.kind) {
    case 'origin':
      return [AttrType.Origin, Uint8Array.of(a.origin)];
    case 'med':
    case 'local-pref': {
      const out = new Uint8Array(4);
      view(out).setUint32(0, a.value);
      return [a.kind === 'med' ? AttrType.Med : AttrType.LocalPref, out];
    }
    case 'as-path':
      return [
        AttrType.AsPath,
        concat(
          a.segments.map((s) => {
            const out = new Uint8Array(2 + 4 * s.asns.length);
            out[0] = s.type;
            out[1] = s.asns.length;
            for (const [i, asn] of s.asns.entries()) view(out).setUint32(2 + 4 * i, asn);
            return out;
          }),
        ),
      ];
    case 'mp-reach': {
      const head = new Uint8Array(4);
      view(head).setUint16(0, a.afi);
      head[2] = a.safi;
      head[3] = a.nextHop.length;
      const nlri = a.rawNlri ?? concat(a.nlri.map(encodeMpNlri));
      return [AttrType.MpReach, concat([head, a.nextHop, Uint8Array.of(a.reserved), nlri])];
    }
    case 'mp-unreach': {
      const head = new Uint8Array(3);
      view(head).setUint16(0, a.afi);
      head[2] = a.safi;
      return [AttrType.MpUnreach, concat([head, a.rawNlri ?? concat(a.nlri.map(encodeMpNlri))])];
    }
    case 'ext-communities':
      return [AttrType.ExtendedCommunities, concat(a.communities.map(encodeExtCommunity))];
    case 'prefix-sid':
      return [AttrType.PrefixSid, encodePrefixSid(a.value)];
    case 'raw':
      return [a.type, a.value];
  }
}

export function encodeAttribute(a: PathAttribute): Uint8Array {
  const [type, value] = attributeValue(a);
  const extended = (a.flags & AttrFlag.ExtendedLength) !== 0 || value.length > 255;
  const flags = extended ? a.flags | AttrFlag.ExtendedLength : a.flags;
  const head = extended ? new Uint8Array(4) : new Uint8Array(3);
  head[0] = flags;
  head[1] = type;
  if (extended) view(head).setUint16(2, value.length);
  else head[2] = value.length;
  return concat([head, value]);
}

export function decodeAttributes(bytes: Uint8Array, offset: number, end: number): PathAttribute[] {
  const out: PathAttribute[] = [];
  let at = offset;
  while (at < end) {
    const [a, next] = decodeAttribute(bytes, at, end);
    out.push(a);
    at = next;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Messages

/** Decodes an UPDATE body (the bytes after the 19-byte header). */
export function decodeUpdate(bytes: Uint8Array, offset = 0, end = bytes.length): UpdateMessage {
  const dv = view(bytes);
  need(
    bytes,
    offset,
    end,
    2,
    'UPDATE withdrawn length',
    'session-reset',
    UpdateErrorSubcode.MalformedAttributeList,
  );
  const wLen = dv.getUint16(offset);
  need(
    bytes,
    offset + 2,
    end,
    wLen + 2,
    'UPDATE withdrawn routes',
    'session-reset',
    UpdateErrorSubcode.MalformedAttributeList,
  );
  const withdrawnRoutes = bytes.slice(offset + 2, offset + 2 + wLen);
  const aOff = offset + 2 + wLen;
  const aLen = dv.getUint16(aOff);
  need(
    bytes,
    aOff + 2,
    end,
    aLen,
    'UPDATE path attributes',
    'session-reset',
    UpdateErrorSubcode.MalformedAttributeList,
  );
  const attributes = decodeAttributes(bytes, aOff + 2, aOff + 2 + aLen);
  return { withdrawnRoutes, attributes, nlri: bytes.slice(aOff + 2 + aLen, end) };
}

export function encodeUpdate(u: UpdateMessage): Uint8Array {
  const attrs = concat(u.attributes.map(encodeAttribute));
  const w = new Uint8Array(2);
  view(w).setUint16(0, u.withdrawnRoutes.length);
  const a = new Uint8Array(2);
  view(a).setUint16(0, attrs.length);
  return concat([w, u.withdrawnRoutes, a, attrs, u.nlri]);
}

/** A whole BGP message: 16-byte marker, length, type, body. */
export interface BgpMessage {
  readonly type: number;
  readonly body: Uint8Array;
}

/** Decodes one BGP message at `offset` and returns it with the offset of the next one. */
export function decodeBgpMessage(bytes: Uint8Array, offset = 0): [BgpMessage, number] {
  need(bytes, offset, bytes.length, BGP_HEADER_LENGTH, 'BGP header', 'session-reset', 0);
  for (let i = 0; i < 16; i++) {
    if (bytes[offset + i] !== 0xff) throw bad('BGP marker is not all ones', offset, 0, 'session-reset');
  }
  const length = view(bytes).getUint16(offset + 16);
  if (length < BGP_HEADER_LENGTH || length > 65535)
    throw bad(`BGP message length ${length}`, offset, 0, 'session-reset');
  need(bytes, offset, bytes.length, length, 'BGP message', 'session-reset', 0);
  return [
    { type: bytes[offset + 18]!, body: bytes.slice(offset + BGP_HEADER_LENGTH, offset + length) },
    offset + length,
  ];
}

export function encodeBgpMessage(type: number, body: Uint8Array): Uint8Array {
  const head = new Uint8Array(BGP_HEADER_LENGTH).fill(0xff);
  view(head).setUint16(16, BGP_HEADER_LENGTH + body.length);
  head[18] = type;
  return concat([head, body]);
}

/** Human-readable one-line summary of a VPN NLRI, e.g. for logs and test failures. */
export function formatVpnNlri(n: VpnNlri): string {
  return `${formatRd(n.rd)}:[${formatIpv6(n.prefix.address)}/${n.prefix.length}] labels=${n.labels.map(labelValue).join(',')}`;
}
