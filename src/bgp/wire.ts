/**
 * Byte helpers shared by the BGP codecs. BGP is big-endian: every read and write here is.
 */
import { type ErrorHandling, MalformedAttributeError, UpdateErrorSubcode } from './errors.ts';

/** A TLV this decoder does not interpret, kept byte for byte so that re-encoding loses nothing. */
export interface RawTlv {
  readonly kind: 'raw';
  readonly type: number;
  readonly value: Uint8Array;
}

export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Throws unless `need` bytes are available in [offset, end) and `end` lies inside the buffer. */
export function need(
  bytes: Uint8Array,
  offset: number,
  end: number,
  count: number,
  what: string,
  handling: ErrorHandling = 'treat-as-withdraw',
  subcode: number = UpdateErrorSubcode.AttributeLength,
): void {
  if (end > bytes.length) {
    throw new MalformedAttributeError(
      `${what}: declared end ${end} is past the buffer (${bytes.length} bytes)`,
      { subcode, handling, offset },
    );
  }
  if (offset + count > end) {
    throw new MalformedAttributeError(
      `${what}: needs ${count} bytes at offset ${offset}, only ${end - offset} left before ${end}`,
      { subcode, handling, offset },
    );
  }
}

/** Appends byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A TLV with a 1-byte type and a 2-byte length (the Prefix-SID family of TLVs). */
export function tlv16(type: number, value: Uint8Array): Uint8Array {
  if (value.length > 0xffff) throw new RangeError(`TLV ${type} value of ${value.length} bytes exceeds 65535`);
  const out = new Uint8Array(3 + value.length);
  out[0] = type;
  view(out).setUint16(1, value.length); // big-endian
  out.set(value, 3);
  return out;
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Parses hex, ignoring whitespace, `|` and `:` separators (so research notes can be pasted as is). */
export function fromHex(text: string): Uint8Array {
  const clean = text.replace(/[\s|:]/g, '');
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) {
    throw new RangeError(`not an even-length hex string: ${JSON.stringify(text.slice(0, 40))}`);
  }
  return new Uint8Array(Buffer.from(clean, 'hex'));
}
