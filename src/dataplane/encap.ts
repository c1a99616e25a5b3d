/**
 * seg6 and seg6local lightweight-tunnel encapsulations (RTA_ENCAP / NHA_ENCAP payloads), encoded
 * and decoded from the kernel uapi (`linux/seg6_iptunnel.h`, `linux/seg6_local.h`, `linux/seg6.h`,
 * `linux/seg6_hmac.h`).
 *
 * Segment lists are held in **travel order** (first segment visited first). Only the encoder reverses
 * them into SRH order (segments[0] = last segment), as iproute2's parse_srh does; in `inline` mode
 * segments[0] is reserved for the packet's final destination and left as `::` (the kernel fills it).
 * The SRH is network byte order; netlink attributes around it are host order (LE).
 */
import { formatIpv6, type Ipv6Address } from '../srv6/address.ts';
import { forEachAttr, NetlinkDecodeError, type NlWriter, readIpv6, readU32, readU64 } from './nlattr.ts';
import { LWTUNNEL_ENCAP_SEG6, LWTUNNEL_ENCAP_SEG6_LOCAL } from './uapi/rtnetlink.ts';
import * as S from './uapi/seg6.ts';

export const SEG6_MODES = ['inline', 'encap', 'l2encap', 'encap.red', 'l2encap.red'] as const;
export type Seg6Mode = (typeof SEG6_MODES)[number];

const MODE_CODE = {
  inline: S.SEG6_IPTUN_MODE_INLINE,
  encap: S.SEG6_IPTUN_MODE_ENCAP,
  l2encap: S.SEG6_IPTUN_MODE_L2ENCAP,
  'encap.red': S.SEG6_IPTUN_MODE_ENCAP_RED,
  'l2encap.red': S.SEG6_IPTUN_MODE_L2ENCAP_RED,
} as const satisfies Record<Seg6Mode, number>;

/** H.Encaps / H.Encaps.Red / H.Insert: `ip route ... encap seg6 mode M segs S1,S2 [hmac K]`. */
export interface Seg6Encap {
  readonly type: 'seg6';
  readonly mode: Seg6Mode;
  /** Travel order. */
  readonly segments: readonly Ipv6Address[];
  /** HMAC key id (an HMAC TLV is added; the kernel computes it with the key set through genl SEG6). */
  readonly hmacKeyId?: number;
}

export const SEG6LOCAL_ACTIONS = [
  'End',
  'End.X',
  'End.T',
  'End.DX2',
  'End.DX6',
  'End.DX4',
  'End.DT6',
  'End.DT4',
  'End.B6',
  'End.B6.Encaps',
  'End.BM',
  'End.S',
  'End.AS',
  'End.AM',
  'End.BPF',
  'End.DT46',
] as const;
export type Seg6LocalAction = (typeof SEG6LOCAL_ACTIONS)[number];

/** Kernel action codes (not IANA codepoints: IANA End.DT6 is 18, the kernel's END_DT6 is 7). */
export const SEG6LOCAL_ACTION_CODE = {
  End: S.SEG6_LOCAL_ACTION_END,
  'End.X': S.SEG6_LOCAL_ACTION_END_X,
  'End.T': S.SEG6_LOCAL_ACTION_END_T,
  'End.DX2': S.SEG6_LOCAL_ACTION_END_DX2,
  'End.DX6': S.SEG6_LOCAL_ACTION_END_DX6,
  'End.DX4': S.SEG6_LOCAL_ACTION_END_DX4,
  'End.DT6': S.SEG6_LOCAL_ACTION_END_DT6,
  'End.DT4': S.SEG6_LOCAL_ACTION_END_DT4,
  'End.B6': S.SEG6_LOCAL_ACTION_END_B6,
  'End.B6.Encaps': S.SEG6_LOCAL_ACTION_END_B6_ENCAP,
  'End.BM': S.SEG6_LOCAL_ACTION_END_BM,
  'End.S': S.SEG6_LOCAL_ACTION_END_S,
  'End.AS': S.SEG6_LOCAL_ACTION_END_AS,
  'End.AM': S.SEG6_LOCAL_ACTION_END_AM,
  'End.BPF': S.SEG6_LOCAL_ACTION_END_BPF,
  'End.DT46': S.SEG6_LOCAL_ACTION_END_DT46,
} as const satisfies Record<Seg6LocalAction, number>;

const ACTION_BY_CODE = new Map<number, Seg6LocalAction>(
  Object.entries(SEG6LOCAL_ACTION_CODE).map(([k, v]) => [v, k as Seg6LocalAction]),
);

/** A segment list carried by End.B6 / End.B6.Encaps (travel order). */
export interface SrhSpec {
  readonly segments: readonly Ipv6Address[];
  readonly hmacKeyId?: number;
}

/** `ip route ... encap seg6local action A [table T | vrftable T | nh6 X | nh4 X | oif D | srh segs ...] [count]`. */
export interface Seg6LocalEncap {
  readonly type: 'seg6local';
  readonly action: Seg6LocalAction;
  readonly table?: number;
  readonly vrfTable?: number;
  readonly nh6?: Ipv6Address;
  /** Dotted quad. */
  readonly nh4?: string;
  readonly iif?: number;
  readonly oif?: number;
  readonly srh?: SrhSpec;
  /** Per-SID counters (SEG6_LOCAL_COUNTERS) enabled. */
  readonly counters?: boolean;
}

export type Encap = Seg6Encap | Seg6LocalEncap;

/** Values read back from SEG6_LOCAL_COUNTERS. */
export interface Seg6LocalCounters {
  readonly packets: bigint;
  readonly bytes: bigint;
  readonly errors: bigint;
}

export function encapTypeCode(e: Encap): number {
  return e.type === 'seg6' ? LWTUNNEL_ENCAP_SEG6 : LWTUNNEL_ENCAP_SEG6_LOCAL;
}

/** Bytes of the SRH for `segments` (travel order), as iproute2's parse_srh builds it. */
export function srhLength(segmentCount: number, hmac: boolean, inline = false): number {
  return 8 + 16 * (segmentCount + (inline ? 1 : 0)) + (hmac ? S.SR6_TLV_HMAC_LEN : 0);
}

/** Writes struct ipv6_sr_hdr + segments (+ HMAC TLV). */
export function writeSrh(
  w: NlWriter,
  segments: readonly Ipv6Address[],
  hmacKeyId: number | undefined,
  inline: boolean,
): void {
  const n = segments.length + (inline ? 1 : 0);
  const len = srhLength(segments.length, hmacKeyId !== undefined, inline);
  w.u8(0); // nexthdr: filled by the kernel
  w.u8(len / 8 - 1); // hdrlen in 8-octet units, not counting the first 8
  w.u8(S.IPV6_SRCRT_TYPE_4);
  w.u8(n - 1); // segments_left
  w.u8(n - 1); // first_segment (last_entry)
  w.u8(hmacKeyId !== undefined ? S.SR6_FLAG1_HMAC : 0);
  w.u16(0); // tag
  if (inline) w.ipv6(0n);
  for (let i = segments.length - 1; i >= 0; i--) w.ipv6(segments[i]!);
  if (hmacKeyId !== undefined) {
    w.u8(S.SR6_TLV_HMAC);
    w.u8(S.SR6_TLV_HMAC_LEN - 2);
    w.u16(0); // reserved
    w.u32be(hmacKeyId); // hmackeyid is __be32
    w.zeros(S.SEG6_HMAC_FIELD_LEN);
  }
}

/** Reads an SRH (network order) back into travel order. */
export function readSrh(b: Buffer, inline: boolean): SrhSpec {
  if (b.length < S.IPV6_SR_HDR_LEN) throw new NetlinkDecodeError(`SRH: ${b.length} bytes, need at least 8`);
  const hdrlen = b.readUInt8(1);
  const total = (hdrlen + 1) * 8;
  if (total > b.length)
    throw new NetlinkDecodeError(`SRH: hdrlen ${hdrlen} says ${total} bytes, have ${b.length}`);
  if (b.readUInt8(2) !== S.IPV6_SRCRT_TYPE_4)
    throw new NetlinkDecodeError(`SRH: routing type ${b.readUInt8(2)}, want 4`);
  const first = b.readUInt8(4);
  const flags = b.readUInt8(5);
  const n = first + 1;
  const segEnd = 8 + 16 * n;
  if (segEnd > total) throw new NetlinkDecodeError(`SRH: ${n} segments do not fit in ${total} bytes`);
  const srhOrder: Ipv6Address[] = [];
  for (let i = 0; i < n; i++) srhOrder.push(readIpv6(b, 8 + 16 * i));
  const travel = srhOrder.reverse();
  if (inline) travel.pop(); // segments[0] is the final destination placeholder
  let hmacKeyId: number | undefined;
  let off = segEnd;
  while (off + 2 <= total) {
    const t = b.readUInt8(off);
    if (t === 0) {
      off += 1; // Pad1
      continue;
    }
    const l = b.readUInt8(off + 1);
    if (off + 2 + l > total) throw new NetlinkDecodeError(`SRH: TLV ${t} of ${l} bytes runs past the header`);
    if (t === S.SR6_TLV_HMAC && l >= 6) hmacKeyId = b.readUInt32BE(off + 4);
    off += 2 + l;
  }
  if ((flags & S.SR6_FLAG1_HMAC) !== 0 && hmacKeyId === undefined) {
    throw new NetlinkDecodeError('SRH: HMAC flag set without an HMAC TLV');
  }
  return hmacKeyId === undefined ? { segments: travel } : { segments: travel, hmacKeyId };
}

/** Writes the seg6 encap as the payload of an already opened RTA_ENCAP/NHA_ENCAP. */
export function writeSeg6(w: NlWriter, e: Seg6Encap): void {
  const a = w.beginAttr(S.SEG6_IPTUNNEL_SRH);
  w.i32(MODE_CODE[e.mode]);
  writeSrh(w, e.segments, e.hmacKeyId, e.mode === 'inline');
  w.endAttr(a);
}

export function writeSeg6Local(w: NlWriter, e: Seg6LocalEncap): void {
  w.attrU32(S.SEG6_LOCAL_ACTION, SEG6LOCAL_ACTION_CODE[e.action]);
  if (e.srh !== undefined) {
    const a = w.beginAttr(S.SEG6_LOCAL_SRH);
    writeSrh(w, e.srh.segments, e.srh.hmacKeyId, false);
    w.endAttr(a);
  }
  if (e.table !== undefined) w.attrU32(S.SEG6_LOCAL_TABLE, e.table);
  if (e.nh4 !== undefined) w.attrBytes(S.SEG6_LOCAL_NH4, ipv4Bytes(e.nh4));
  if (e.nh6 !== undefined) w.attrIpv6(S.SEG6_LOCAL_NH6, e.nh6);
  if (e.iif !== undefined) w.attrU32(S.SEG6_LOCAL_IIF, e.iif);
  if (e.oif !== undefined) w.attrU32(S.SEG6_LOCAL_OIF, e.oif);
  if (e.vrfTable !== undefined) w.attrU32(S.SEG6_LOCAL_VRFTABLE, e.vrfTable);
  if (e.counters) {
    const c = w.beginAttr(S.SEG6_LOCAL_COUNTERS, true);
    w.attrU64(S.SEG6_LOCAL_CNT_PACKETS, 0n);
    w.attrU64(S.SEG6_LOCAL_CNT_BYTES, 0n);
    w.attrU64(S.SEG6_LOCAL_CNT_ERRORS, 0n);
    w.endAttr(c);
  }
}

/** Writes RTA_ENCAP (nested, NLA_F_NESTED set as iproute2 does) then RTA_ENCAP_TYPE. */
export function writeEncap(w: NlWriter, encapAttr: number, encapTypeAttr: number, e: Encap): void {
  const a = w.beginAttr(encapAttr, true);
  if (e.type === 'seg6') writeSeg6(w, e);
  else writeSeg6Local(w, e);
  w.endAttr(a);
  w.attrU16(encapTypeAttr, encapTypeCode(e));
}

export function decodeSeg6(payload: Buffer): Seg6Encap {
  let out: Seg6Encap | undefined;
  forEachAttr(payload, 0, payload.length, (type, data) => {
    if (type !== S.SEG6_IPTUNNEL_SRH) return;
    if (data.length < 4 + S.IPV6_SR_HDR_LEN)
      throw new NetlinkDecodeError(`SEG6_IPTUNNEL_SRH: ${data.length} bytes`);
    const code = data.readInt32LE(0);
    const mode = SEG6_MODES.find((m) => MODE_CODE[m] === code);
    if (mode === undefined) throw new NetlinkDecodeError(`seg6: unknown mode ${code}`);
    const srh = readSrh(data.subarray(4), mode === 'inline');
    out =
      srh.hmacKeyId === undefined
        ? { type: 'seg6', mode, segments: srh.segments }
        : { type: 'seg6', mode, segments: srh.segments, hmacKeyId: srh.hmacKeyId };
  });
  if (out === undefined) throw new NetlinkDecodeError('seg6 encap without SEG6_IPTUNNEL_SRH');
  return out;
}

export interface DecodedSeg6Local {
  readonly encap: Seg6LocalEncap;
  readonly counters?: Seg6LocalCounters;
}

export function decodeSeg6Local(payload: Buffer): DecodedSeg6Local {
  const e: {
    -readonly [K in keyof Seg6LocalEncap]?: Seg6LocalEncap[K];
  } = {};
  let counters: Seg6LocalCounters | undefined;
  forEachAttr(payload, 0, payload.length, (type, data) => {
    switch (type) {
      case S.SEG6_LOCAL_ACTION: {
        const code = readU32(data, 'SEG6_LOCAL_ACTION');
        const action = ACTION_BY_CODE.get(code);
        if (action === undefined) throw new NetlinkDecodeError(`seg6local: unknown action ${code}`);
        e.action = action;
        break;
      }
      case S.SEG6_LOCAL_SRH:
        e.srh = readSrh(data, false);
        break;
      case S.SEG6_LOCAL_TABLE:
        e.table = readU32(data, 'SEG6_LOCAL_TABLE');
        break;
      case S.SEG6_LOCAL_VRFTABLE:
        e.vrfTable = readU32(data, 'SEG6_LOCAL_VRFTABLE');
        break;
      case S.SEG6_LOCAL_NH4:
        if (data.length < 4) throw new NetlinkDecodeError('SEG6_LOCAL_NH4: need 4 bytes');
        e.nh4 = `${data[0]}.${data[1]}.${data[2]}.${data[3]}`;
        break;
      case S.SEG6_LOCAL_NH6:
        e.nh6 = readIpv6(data);
        break;
      case S.SEG6_LOCAL_IIF:
        e.iif = readU32(data, 'SEG6_LOCAL_IIF');
        break;
      case S.SEG6_LOCAL_OIF:
        e.oif = readU32(data, 'SEG6_LOCAL_OIF');
        break;
      case S.SEG6_LOCAL_COUNTERS: {
        e.counters = true;
        let packets = 0n;
        let bytes = 0n;
        let errors = 0n;
        forEachAttr(data, 0, data.length, (ct, cd) => {
          if (ct === S.SEG6_LOCAL_CNT_PACKETS) packets = readU64(cd, 'SEG6_LOCAL_CNT_PACKETS');
          else if (ct === S.SEG6_LOCAL_CNT_BYTES) bytes = readU64(cd, 'SEG6_LOCAL_CNT_BYTES');
          else if (ct === S.SEG6_LOCAL_CNT_ERRORS) errors = readU64(cd, 'SEG6_LOCAL_CNT_ERRORS');
        });
        counters = { packets, bytes, errors };
        break;
      }
      default:
        break; // BPF, FLAVORS: not used by Segmesh; kept out of the model
    }
  });
  if (e.action === undefined) throw new NetlinkDecodeError('seg6local encap without SEG6_LOCAL_ACTION');
  const encap = { type: 'seg6local', ...e } as Seg6LocalEncap;
  return counters === undefined ? { encap } : { encap, counters };
}

export function ipv4Bytes(text: string): Uint8Array {
  const parts = text.split('.');
  const ok = parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
  if (!ok) throw new RangeError(`invalid IPv4 address ${JSON.stringify(text)}`);
  return Uint8Array.from(parts.map(Number));
}

function sameSegments(a: readonly Ipv6Address[], b: readonly Ipv6Address[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function equalEncap(a: Encap | undefined, b: Encap | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.type === 'seg6' && b.type === 'seg6') {
    return a.mode === b.mode && a.hmacKeyId === b.hmacKeyId && sameSegments(a.segments, b.segments);
  }
  if (a.type === 'seg6local' && b.type === 'seg6local') {
    return (
      a.action === b.action &&
      a.table === b.table &&
      a.vrfTable === b.vrfTable &&
      a.nh6 === b.nh6 &&
      a.nh4 === b.nh4 &&
      a.iif === b.iif &&
      a.oif === b.oif &&
      Boolean(a.counters) === Boolean(b.counters) &&
      (a.srh === undefined || b.srh === undefined
        ? a.srh === b.srh
        : a.srh.hmacKeyId === b.srh.hmacKeyId && sameSegments(a.srh.segments, b.srh.segments))
    );
  }
  return false;
}

/** iproute2-like text, without I/O (interfaces are shown by index). */
export function formatEncap(e: Encap): string {
  if (e.type === 'seg6') {
    const hmac = e.hmacKeyId === undefined ? '' : ` hmac ${e.hmacKeyId}`;
    return `encap seg6 mode ${e.mode} segs ${e.segments.length} [ ${e.segments.map(formatIpv6).join(' ')} ]${hmac}`;
  }
  const parts = [`encap seg6local action ${e.action}`];
  if (e.srh) parts.push(`srh segs ${e.srh.segments.length} [ ${e.srh.segments.map(formatIpv6).join(' ')} ]`);
  if (e.table !== undefined) parts.push(`table ${e.table}`);
  if (e.vrfTable !== undefined) parts.push(`vrftable ${e.vrfTable}`);
  if (e.nh4 !== undefined) parts.push(`nh4 ${e.nh4}`);
  if (e.nh6 !== undefined) parts.push(`nh6 ${formatIpv6(e.nh6)}`);
  if (e.iif !== undefined) parts.push(`iif #${e.iif}`);
  if (e.oif !== undefined) parts.push(`oif #${e.oif}`);
  if (e.counters) parts.push('count');
  return parts.join(' ');
}
