/**
 * The BGP Prefix-SID attribute (type 40, RFC 8669) with the SRv6 Service TLVs of RFC 9252:
 *
 *   Prefix-SID attribute value = TLV*
 *     TLV 5 SRv6 L3 Service / TLV 6 SRv6 L2 Service (RFC 9252 section 2):
 *       type(1) length(2) reserved(1) sub-TLV*
 *       sub-TLV 1 SRv6 SID Information (section 3.1):
 *         type(1) length(2) reserved(1) SID(16) flags(1) behavior(2) reserved(1) sub-sub-TLV*
 *         sub-sub-TLV 1 SRv6 SID Structure (section 3.2.1):
 *           type(1) length(2)=6 LBL(1) LNL(1) FL(1) AL(1) TL(1) TO(1)
 *
 * Decoders take `(bytes, offset, end)`: they read one item starting at `offset` and never past `end`,
 * check every declared length against both the buffer and the parent's end, and return the item
 * with the offset after it. Unknown TLVs at every level are kept raw, so encode(decode(x)) == x.
 * Pure: no I/O.
 */
import { type Ipv6Address, ipv6FromBytes, ipv6ToBytes } from '../srv6/address.ts';
import { MalformedAttributeError, UpdateErrorSubcode } from './errors.ts';
import { concat, need, type RawTlv, tlv16, view } from './wire.ts';

/** Path attribute type code of the Prefix-SID attribute (RFC 8669, IANA). */
export const PREFIX_SID_ATTRIBUTE = 40;

/** Prefix-SID TLV types (IANA "BGP Prefix-SID TLV Types"). */
export const PrefixSidTlvType = {
  LabelIndex: 1,
  OriginatorSrgb: 3,
  Srv6L3Service: 5,
  Srv6L2Service: 6,
} as const;

/** SRv6 Service Sub-TLV types. */
export const Srv6ServiceSubTlvType = { SidInformation: 1 } as const;
/** SRv6 Service Data Sub-Sub-TLV types. */
export const Srv6ServiceSubSubTlvType = { SidStructure: 1 } as const;

/** Endpoint behaviour 0xFFFF: "opaque", what FRR 8.4 sends (research F2). */
export const OPAQUE_BEHAVIOR = 0xffff;

/** SRv6 SID Structure Sub-Sub-TLV (RFC 9252 section 3.2.1), all lengths in bits. */
export interface Srv6SidStructureTlv {
  readonly kind: 'sid-structure';
  readonly locatorBlockLength: number;
  readonly locatorNodeLength: number;
  readonly functionLength: number;
  readonly argumentLength: number;
  readonly transpositionLength: number;
  readonly transpositionOffset: number;
}

/** SRv6 SID Information Sub-TLV (RFC 9252 section 3.1). */
export interface Srv6SidInformationTlv {
  readonly kind: 'sid-information';
  /** The SID as carried: with transposition, the transposed bits are zero here (they ride in the label). */
  readonly sid: Ipv6Address;
  readonly flags: number;
  /** RFC 8986 endpoint behaviour codepoint (IANA), 0xFFFF = opaque. */
  readonly behavior: number;
  /** The two reserved octets (before the SID, after the behaviour); sent as 0, kept for exact re-encoding. */
  readonly reserved1: number;
  readonly reserved2: number;
  readonly subSubTlvs: readonly (Srv6SidStructureTlv | RawTlv)[];
}

/** SRv6 L3 (type 5) or L2 (type 6) Service TLV (RFC 9252 section 2). */
export interface Srv6ServiceTlv {
  readonly kind: 'srv6-service';
  readonly type: typeof PrefixSidTlvType.Srv6L3Service | typeof PrefixSidTlvType.Srv6L2Service;
  readonly reserved: number;
  readonly subTlvs: readonly (Srv6SidInformationTlv | RawTlv)[];
}

export type PrefixSidTlv = Srv6ServiceTlv | RawTlv;

/** The value of a Prefix-SID path attribute. */
export interface PrefixSidAttribute {
  readonly tlvs: readonly PrefixSidTlv[];
}

const STRUCTURE_LENGTH = 6;
/** reserved(1) + SID(16) + flags(1) + behavior(2) + reserved(1) */
const SID_INFORMATION_FIXED = 21;

function malformed(what: string, offset: number): MalformedAttributeError {
  // RFC 9252 section 6: a malformed SRv6 Service TLV makes the UPDATE "treat-as-withdraw".
  return new MalformedAttributeError(`Prefix-SID: ${what}`, {
    subcode: UpdateErrorSubcode.OptionalAttribute,
    handling: 'treat-as-withdraw',
    offset,
  });
}

/** Reads the 3-byte header (type, length) of a TLV at `offset` and returns where its value ends. */
function header(
  bytes: Uint8Array,
  offset: number,
  end: number,
  what: string,
): { type: number; valueEnd: number } {
  need(bytes, offset, end, 3, `${what} header`);
  const type = bytes[offset]!;
  const length = view(bytes).getUint16(offset + 1); // big-endian
  const valueEnd = offset + 3 + length;
  if (valueEnd > end) {
    throw malformed(`${what} type ${type} declares ${length} bytes, only ${end - offset - 3} left`, offset);
  }
  return { type, valueEnd };
}

function raw(bytes: Uint8Array, offset: number, type: number, valueEnd: number): RawTlv {
  return { kind: 'raw', type, value: bytes.slice(offset + 3, valueEnd) };
}

/** Decodes one SID Structure Sub-Sub-TLV (or an unknown sub-sub-TLV, kept raw). */
export function decodeSrv6SubSubTlv(
  bytes: Uint8Array,
  offset: number,
  end: number,
): [Srv6SidStructureTlv | RawTlv, number] {
  const { type, valueEnd } = header(bytes, offset, end, 'SRv6 sub-sub-TLV');
  if (type !== Srv6ServiceSubSubTlvType.SidStructure) return [raw(bytes, offset, type, valueEnd), valueEnd];
  if (valueEnd - offset - 3 !== STRUCTURE_LENGTH) {
    throw malformed(`SID Structure sub-sub-TLV length ${valueEnd - offset - 3}, must be 6`, offset);
  }
  const v = offset + 3;
  return [
    {
      kind: 'sid-structure',
      locatorBlockLength: bytes[v]!,
      locatorNodeLength: bytes[v + 1]!,
      functionLength: bytes[v + 2]!,
      argumentLength: bytes[v + 3]!,
      transpositionLength: bytes[v + 4]!,
      transpositionOffset: bytes[v + 5]!,
    },
    valueEnd,
  ];
}

/** Decodes one SID Information Sub-TLV (or an unknown sub-TLV, kept raw). */
export function decodeSrv6SubTlv(
  bytes: Uint8Array,
  offset: number,
  end: number,
): [Srv6SidInformationTlv | RawTlv, number] {
  const { type, valueEnd } = header(bytes, offset, end, 'SRv6 service sub-TLV');
  if (type !== Srv6ServiceSubTlvType.SidInformation) return [raw(bytes, offset, type, valueEnd), valueEnd];
  const v = offset + 3;
  if (valueEnd - v < SID_INFORMATION_FIXED) {
    throw malformed(`SID Information sub-TLV length ${valueEnd - v}, needs at least 21`, offset);
  }
  const dv = view(bytes);
  const subSubTlvs: (Srv6SidStructureTlv | RawTlv)[] = [];
  let at = v + SID_INFORMATION_FIXED;
  while (at < valueEnd) {
    const [item, next] = decodeSrv6SubSubTlv(bytes, at, valueEnd);
    subSubTlvs.push(item);
    at = next;
  }
  return [
    {
      kind: 'sid-information',
      reserved1: bytes[v]!,
      sid: ipv6FromBytes(bytes, v + 1),
      flags: bytes[v + 17]!,
      behavior: dv.getUint16(v + 18), // big-endian
      reserved2: bytes[v + 20]!,
      subSubTlvs,
    },
    valueEnd,
  ];
}

/** Decodes one Prefix-SID TLV: an SRv6 Service TLV, or any other TLV kept raw. */
export function decodePrefixSidTlv(bytes: Uint8Array, offset: number, end: number): [PrefixSidTlv, number] {
  const { type, valueEnd } = header(bytes, offset, end, 'Prefix-SID TLV');
  if (type !== PrefixSidTlvType.Srv6L3Service && type !== PrefixSidTlvType.Srv6L2Service) {
    return [raw(bytes, offset, type, valueEnd), valueEnd];
  }
  const v = offset + 3;
  if (valueEnd - v < 1) throw malformed(`SRv6 Service TLV ${type} has no reserved octet`, offset);
  const subTlvs: (Srv6SidInformationTlv | RawTlv)[] = [];
  let at = v + 1;
  while (at < valueEnd) {
    const [item, next] = decodeSrv6SubTlv(bytes, at, valueEnd);
    subTlvs.push(item);
    at = next;
  }
  return [{ kind: 'srv6-service', type, reserved: bytes[v]!, subTlvs }, valueEnd];
}

/** Decodes a Prefix-SID attribute value occupying [offset, end). */
export function decodePrefixSid(bytes: Uint8Array, offset = 0, end = bytes.length): PrefixSidAttribute {
  if (end > bytes.length)
    throw malformed(`attribute end ${end} is past the buffer (${bytes.length})`, offset);
  const tlvs: PrefixSidTlv[] = [];
  let at = offset;
  while (at < end) {
    const [item, next] = decodePrefixSidTlv(bytes, at, end);
    tlvs.push(item);
    at = next;
  }
  return { tlvs };
}

function checkByte(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xff)
    throw new RangeError(`${what} ${value} is not 0..255`);
  return value;
}

function encodeRaw(t: RawTlv): Uint8Array {
  return tlv16(t.type, t.value);
}

export function encodeSrv6SubSubTlv(t: Srv6SidStructureTlv | RawTlv): Uint8Array {
  if (t.kind === 'raw') return encodeRaw(t);
  return tlv16(
    Srv6ServiceSubSubTlvType.SidStructure,
    Uint8Array.of(
      checkByte(t.locatorBlockLength, 'locator block length'),
      checkByte(t.locatorNodeLength, 'locator node length'),
      checkByte(t.functionLength, 'function length'),
      checkByte(t.argumentLength, 'argument length'),
      checkByte(t.transpositionLength, 'transposition length'),
      checkByte(t.transpositionOffset, 'transposition offset'),
    ),
  );
}

export function encodeSrv6SubTlv(t: Srv6SidInformationTlv | RawTlv): Uint8Array {
  if (t.kind === 'raw') return encodeRaw(t);
  const fixed = new Uint8Array(SID_INFORMATION_FIXED);
  fixed[0] = checkByte(t.reserved1, 'reserved');
  fixed.set(ipv6ToBytes(t.sid), 1);
  fixed[17] = checkByte(t.flags, 'flags');
  if (!Number.isInteger(t.behavior) || t.behavior < 0 || t.behavior > 0xffff) {
    throw new RangeError(`endpoint behaviour ${t.behavior} is not 0..65535`);
  }
  view(fixed).setUint16(18, t.behavior); // big-endian
  fixed[20] = checkByte(t.reserved2, 'reserved');
  return tlv16(
    Srv6ServiceSubTlvType.SidInformation,
    concat([fixed, ...t.subSubTlvs.map(encodeSrv6SubSubTlv)]),
  );
}

export function encodePrefixSidTlv(t: PrefixSidTlv): Uint8Array {
  if (t.kind === 'raw') return encodeRaw(t);
  return tlv16(
    t.type,
    concat([Uint8Array.of(checkByte(t.reserved, 'reserved')), ...t.subTlvs.map(encodeSrv6SubTlv)]),
  );
}

/** Encodes the attribute value (without the path attribute header). */
export function encodePrefixSid(attr: PrefixSidAttribute): Uint8Array {
  return concat(attr.tlvs.map(encodePrefixSidTlv));
}

/** The SID structure as a plain record (the lengths of RFC 9252 section 3.2.1). */
export interface SidStructureFields {
  readonly locatorBlockLength: number;
  readonly locatorNodeLength: number;
  readonly functionLength: number;
  readonly argumentLength: number;
  readonly transpositionLength: number;
  readonly transpositionOffset: number;
}

/** Builds the usual one-SID L3 Service Prefix-SID. */
export function srv6L3ServicePrefixSid(opts: {
  sid: Ipv6Address;
  behavior: number;
  structure?: SidStructureFields | undefined;
  flags?: number;
}): PrefixSidAttribute {
  const subSubTlvs: Srv6SidStructureTlv[] = opts.structure
    ? [{ kind: 'sid-structure', ...opts.structure }]
    : [];
  return {
    tlvs: [
      {
        kind: 'srv6-service',
        type: PrefixSidTlvType.Srv6L3Service,
        reserved: 0,
        subTlvs: [
          {
            kind: 'sid-information',
            reserved1: 0,
            sid: opts.sid,
            flags: opts.flags ?? 0,
            behavior: opts.behavior,
            reserved2: 0,
            subSubTlvs,
          },
        ],
      },
    ],
  };
}

/** The first SRv6 SID of the L3 Service TLV, with its structure, if the attribute has one. */
export function firstL3ServiceSid(
  attr: PrefixSidAttribute,
): { info: Srv6SidInformationTlv; structure: Srv6SidStructureTlv | undefined } | undefined {
  for (const t of attr.tlvs) {
    if (t.kind !== 'srv6-service' || t.type !== PrefixSidTlvType.Srv6L3Service) continue;
    for (const s of t.subTlvs) {
      if (s.kind !== 'sid-information') continue;
      const structure = s.subSubTlvs.find((x): x is Srv6SidStructureTlv => x.kind === 'sid-structure');
      return { info: s, structure };
    }
  }
  return undefined;
}
