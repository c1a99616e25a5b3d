/**
 * A small pure packet builder for datapath tests: Ethernet, IPv6, the SRH, IPv4, ICMP and UDP/TCP with
 * their checksums, and a hex dump for comparing a program's output with the expected bytes. It follows
 * the RFCs (8200, 8754, 791, 4443, 768), not the programs under test.
 */
import { ipv6ToBytes, parseIpv6 } from '../../src/srv6/address.ts';

export type Bytes = Uint8Array;

export function concat(...parts: readonly Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function mac(text: string): Bytes {
  const parts = text.split(':').map((h) => Number.parseInt(h, 16));
  if (parts.length !== 6 || parts.some((p) => Number.isNaN(p))) throw new RangeError(`not a MAC: ${text}`);
  return Uint8Array.from(parts);
}

export function v6(text: string): Bytes {
  return ipv6ToBytes(parseIpv6(text));
}

export function v4(text: string): Bytes {
  return Uint8Array.from(text.split('.').map(Number));
}

export const ETH_IPV6 = 0x86dd;
export const ETH_IPV4 = 0x0800;
export const NH_HOPOPTS = 0;
export const NH_TCP = 6;
export const NH_UDP = 17;
export const NH_IPV4 = 4;
export const NH_IPV6 = 41;
export const NH_ROUTING = 43;
export const NH_ICMPV6 = 58;

export function eth(dst: string, src: string, type: number, payload: Bytes): Bytes {
  const h = new Uint8Array(14);
  h.set(mac(dst), 0);
  h.set(mac(src), 6);
  new DataView(h.buffer).setUint16(12, type);
  return concat(h, payload);
}

export interface Ipv6Fields {
  readonly src: string;
  readonly dst: string;
  readonly nextHeader: number;
  readonly hopLimit?: number;
  readonly trafficClass?: number;
  readonly flowLabel?: number;
  /** Override the payload length field (malformed packets). */
  readonly payloadLength?: number;
}

export function ipv6(f: Ipv6Fields, payload: Bytes): Bytes {
  const h = new Uint8Array(40);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, (6 << 28) | ((f.trafficClass ?? 0) << 20) | (f.flowLabel ?? 0));
  dv.setUint16(4, f.payloadLength ?? payload.length);
  h[6] = f.nextHeader;
  h[7] = f.hopLimit ?? 64;
  h.set(v6(f.src), 8);
  h.set(v6(f.dst), 24);
  return concat(h, payload);
}

export interface SrhFields {
  readonly nextHeader: number;
  /** Segment List[0..n-1] in header order (Segment List[0] is the last segment of the path). */
  readonly segmentList: readonly string[];
  readonly segmentsLeft: number;
  readonly lastEntry?: number;
  /** Override Hdr Ext Len (8-octet units after the first 8). */
  readonly hdrExtLen?: number;
  readonly routingType?: number;
}

export function srh(f: SrhFields): Bytes {
  const n = f.segmentList.length;
  const h = new Uint8Array(8 + 16 * n);
  h[0] = f.nextHeader;
  h[1] = f.hdrExtLen ?? 2 * n;
  h[2] = f.routingType ?? 4;
  h[3] = f.segmentsLeft;
  h[4] = f.lastEntry ?? n - 1;
  f.segmentList.forEach((s, i) => {
    h.set(v6(s), 8 + 16 * i);
  });
  return h;
}

/** RFC 1071 ones' complement sum over byte strings (odd lengths padded). */
export function checksum(...parts: readonly Bytes[]): number {
  const all = concat(...parts);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) sum += (all[i]! << 8) | (all[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function pseudo6(src: string, dst: string, length: number, nh: number): Bytes {
  const p = new Uint8Array(40);
  p.set(v6(src), 0);
  p.set(v6(dst), 16);
  new DataView(p.buffer).setUint32(32, length);
  p[39] = nh;
  return p;
}

function withChecksum(msg: Bytes, offset: number, sum: number): Bytes {
  new DataView(msg.buffer, msg.byteOffset).setUint16(offset, sum);
  return msg;
}

/** ICMPv6 message with its checksum over the IPv6 pseudo-header. */
export function icmp6(src: string, dst: string, type: number, code: number, body: Bytes): Bytes {
  const m = concat(Uint8Array.from([type, code, 0, 0]), body);
  return withChecksum(m, 2, checksum(pseudo6(src, dst, m.length, NH_ICMPV6), m));
}

export function echo6(
  src: string,
  dst: string,
  id: number,
  seq: number,
  data: Bytes = new Uint8Array(8),
): Bytes {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint16(0, id);
  new DataView(b.buffer).setUint16(2, seq);
  return icmp6(src, dst, 128, 0, concat(b, data));
}

export function udp6(src: string, dst: string, sport: number, dport: number, data: Bytes): Bytes {
  const m = new Uint8Array(8 + data.length);
  const dv = new DataView(m.buffer);
  dv.setUint16(0, sport);
  dv.setUint16(2, dport);
  dv.setUint16(4, m.length);
  m.set(data, 8);
  return withChecksum(m, 6, checksum(pseudo6(src, dst, m.length, NH_UDP), m));
}

export function tcpSyn6(src: string, dst: string, sport: number, dport: number): Bytes {
  const m = new Uint8Array(20);
  const dv = new DataView(m.buffer);
  dv.setUint16(0, sport);
  dv.setUint16(2, dport);
  dv.setUint32(4, 1);
  m[12] = 5 << 4;
  m[13] = 0x02;
  dv.setUint16(14, 65535);
  return withChecksum(m, 16, checksum(pseudo6(src, dst, m.length, NH_TCP), m));
}

export interface Ipv4Fields {
  readonly src: string;
  readonly dst: string;
  readonly protocol: number;
  readonly ttl?: number;
  readonly tos?: number;
  readonly id?: number;
  /** Don't Fragment (default set). */
  readonly df?: boolean;
}

export function ipv4(f: Ipv4Fields, payload: Bytes): Bytes {
  const h = new Uint8Array(20);
  const dv = new DataView(h.buffer);
  h[0] = 0x45;
  h[1] = f.tos ?? 0;
  dv.setUint16(2, 20 + payload.length);
  dv.setUint16(4, f.id ?? 1);
  dv.setUint16(6, (f.df ?? true) ? 0x4000 : 0);
  h[8] = f.ttl ?? 64;
  h[9] = f.protocol;
  h.set(v4(f.src), 12);
  h.set(v4(f.dst), 16);
  dv.setUint16(10, checksum(h));
  return concat(h, payload);
}

export function echo4(id: number, seq: number, data: Bytes = new Uint8Array(8)): Bytes {
  const m = new Uint8Array(8 + data.length);
  const dv = new DataView(m.buffer);
  m[0] = 8;
  dv.setUint16(4, id);
  dv.setUint16(6, seq);
  m.set(data, 8);
  return withChecksum(m, 2, checksum(m));
}

/** ICMPv4 Destination Unreachable, Fragmentation Needed (RFC 1191) quoting `quoted`. */
export function fragNeeded4(mtu: number, quoted: Bytes): Bytes {
  const m = concat(Uint8Array.from([3, 4, 0, 0, 0, 0, mtu >> 8, mtu & 0xff]), quoted);
  return withChecksum(m, 2, checksum(m));
}

/** Hex, 16 bytes a line with the offset: vitest's diff of two dumps shows the bytes side by side. */
export function hexdump(b: Bytes): string {
  const lines: string[] = [];
  for (let off = 0; off < b.length; off += 16) {
    const row = [...b.subarray(off, off + 16)].map((x) => x.toString(16).padStart(2, '0'));
    lines.push(
      `${off.toString(16).padStart(4, '0')}  ${row.slice(0, 8).join(' ')}  ${row.slice(8).join(' ')}`,
    );
  }
  return lines.join('\n');
}
