/**
 * Netlink message and attribute encoding (struct nlmsghdr, struct nlattr), host-endian
 * (little-endian here: every DataView/Buffer call below says LE explicitly), 4-byte aligned.
 * Pure: no I/O. The writer appends into one growable buffer; padding is always zeroed
 * (iproute2 leaves garbage in padding; the kernel ignores it).
 */
import type { Ipv6Address } from '../srv6/address.ts';
import { NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK, NLMSG_HDRLEN } from './uapi/netlink.ts';

const MASK64 = (1n << 64n) - 1n;

export function align4(n: number): number {
  return (n + 3) & ~3;
}

export class NlWriter {
  buf: Buffer;
  off = 0;

  constructor(size = 1024) {
    this.buf = Buffer.alloc(size);
  }

  reset(): void {
    this.off = 0;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  /** Starts a message; returns its start offset for {@link endMessage}. seq/pid are filled at send time. */
  beginMessage(type: number, flags: number): number {
    const start = this.off;
    this.ensure(NLMSG_HDRLEN);
    this.buf.writeUInt32LE(0, start); // len, patched by endMessage
    this.buf.writeUInt16LE(type, start + 4);
    this.buf.writeUInt16LE(flags, start + 6);
    this.buf.writeUInt32LE(0, start + 8); // seq
    this.buf.writeUInt32LE(0, start + 12); // pid
    this.off += NLMSG_HDRLEN;
    return start;
  }

  endMessage(start: number): void {
    this.buf.writeUInt32LE(this.off - start, start);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.off);
    this.off += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.off);
    this.off += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.off);
    this.off += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.off);
    this.off += 4;
  }
  u32be(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.off);
    this.off += 4;
  }
  /** 16 bytes, network byte order. */
  ipv6(v: Ipv6Address): void {
    this.ensure(16);
    this.buf.writeBigUInt64BE(v >> 64n, this.off);
    this.buf.writeBigUInt64BE(v & MASK64, this.off + 8);
    this.off += 16;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
  }
  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.off, this.off + n);
    this.off += n;
  }
  pad(): void {
    const a = align4(this.off);
    if (a !== this.off) this.zeros(a - this.off);
  }

  /** Starts an attribute (nested or not); returns its start for {@link endAttr}. */
  beginAttr(type: number, nested = false): number {
    const start = this.off;
    this.ensure(NLA_HDRLEN);
    this.buf.writeUInt16LE(0, start);
    this.buf.writeUInt16LE(nested ? type | NLA_F_NESTED : type, start + 2);
    this.off += NLA_HDRLEN;
    return start;
  }
  endAttr(start: number): void {
    this.buf.writeUInt16LE(this.off - start, start);
    this.pad();
  }

  attrU8(type: number, v: number): void {
    const s = this.beginAttr(type);
    this.u8(v);
    this.endAttr(s);
  }
  attrU16(type: number, v: number): void {
    const s = this.beginAttr(type);
    this.u16(v);
    this.endAttr(s);
  }
  attrU32(type: number, v: number): void {
    const s = this.beginAttr(type);
    this.u32(v);
    this.endAttr(s);
  }
  attrU32be(type: number, v: number): void {
    const s = this.beginAttr(type);
    this.u32be(v);
    this.endAttr(s);
  }
  attrU64(type: number, v: bigint): void {
    const s = this.beginAttr(type);
    this.ensure(8);
    this.buf.writeBigUInt64LE(v, this.off);
    this.off += 8;
    this.endAttr(s);
  }
  attrIpv6(type: number, v: Ipv6Address): void {
    const s = this.beginAttr(type);
    this.ipv6(v);
    this.endAttr(s);
  }
  attrBytes(type: number, b: Uint8Array): void {
    const s = this.beginAttr(type);
    this.bytes(b);
    this.endAttr(s);
  }
  /** A NUL-terminated string (NLA_NUL_STRING / NLA_STRING both accept it). */
  attrString(type: number, v: string, nul = true): void {
    const s = this.beginAttr(type);
    const b = Buffer.from(v, 'utf8');
    this.bytes(b);
    if (nul) this.u8(0);
    this.endAttr(s);
  }
  attrFlag(type: number): void {
    const s = this.beginAttr(type);
    this.endAttr(s);
  }

  /** A copy of everything written since `start` (default: all). */
  take(start = 0): Buffer {
    const out = Buffer.allocUnsafe(this.off - start);
    this.buf.copy(out, 0, start, this.off);
    return out;
  }
}

/** One attribute as read: type without the flag bits, payload as a view into the message. */
export interface NlAttr {
  readonly type: number;
  readonly nested: boolean;
  readonly data: Buffer;
}

export class NetlinkDecodeError extends Error {
  override readonly name = 'NetlinkDecodeError';
}

/**
 * Calls `fn` for each attribute in `buf[start, end)`. Lengths are checked against the end of the
 * enclosing object before anything is read; a malformed attribute throws NetlinkDecodeError.
 */
export function forEachAttr(
  buf: Buffer,
  start: number,
  end: number,
  fn: (type: number, data: Buffer, nested: boolean) => void,
): void {
  let off = start;
  while (off + NLA_HDRLEN <= end) {
    const len = buf.readUInt16LE(off);
    const rawType = buf.readUInt16LE(off + 2);
    if (len < NLA_HDRLEN || off + len > end) {
      throw new NetlinkDecodeError(
        `attribute type ${rawType & NLA_TYPE_MASK} at ${off}: length ${len} runs past ${end}`,
      );
    }
    fn(rawType & NLA_TYPE_MASK, buf.subarray(off + NLA_HDRLEN, off + len), (rawType & NLA_F_NESTED) !== 0);
    off += align4(len);
  }
}

/** All attributes of `buf[start,end)` in order. */
export function parseAttrs(buf: Buffer, start = 0, end = buf.length): NlAttr[] {
  const out: NlAttr[] = [];
  forEachAttr(buf, start, end, (type, data, nested) => out.push({ type, data, nested }));
  return out;
}

export function readIpv6(b: Buffer, off = 0): Ipv6Address {
  if (off + 16 > b.length)
    throw new NetlinkDecodeError(`need 16 bytes for an IPv6 address, have ${b.length - off}`);
  return (b.readBigUInt64BE(off) << 64n) | b.readBigUInt64BE(off + 8);
}

export function readU32(b: Buffer, what: string): number {
  if (b.length < 4) throw new NetlinkDecodeError(`${what}: need 4 bytes, have ${b.length}`);
  return b.readUInt32LE(0);
}
export function readU16(b: Buffer, what: string): number {
  if (b.length < 2) throw new NetlinkDecodeError(`${what}: need 2 bytes, have ${b.length}`);
  return b.readUInt16LE(0);
}
export function readU8(b: Buffer, what: string): number {
  if (b.length < 1) throw new NetlinkDecodeError(`${what}: need 1 byte, have 0`);
  return b.readUInt8(0);
}
export function readU64(b: Buffer, what: string): bigint {
  if (b.length < 8) throw new NetlinkDecodeError(`${what}: need 8 bytes, have ${b.length}`);
  return b.readBigUInt64LE(0);
}
export function readString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

/** A netlink message as read from a datagram: header fields and a view of the whole message. */
export interface NlMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** The whole message including its 16-byte header. */
  readonly data: Buffer;
}

/** Splits one datagram into its netlink messages (checking each declared length). */
export function splitMessages(dgram: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= dgram.length) {
    const len = dgram.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > dgram.length) {
      throw new NetlinkDecodeError(`netlink message at ${off}: length ${len} runs past ${dgram.length}`);
    }
    out.push({
      type: dgram.readUInt16LE(off + 4),
      flags: dgram.readUInt16LE(off + 6),
      seq: dgram.readUInt32LE(off + 8),
      pid: dgram.readUInt32LE(off + 12),
      data: dgram.subarray(off, off + len),
    });
    off += align4(len);
  }
  return out;
}
