/**
 * SID structure (RFC 8986 3.1: locator block, locator node, function, argument) and the RFC 9252
 * transposition scheme that moves part of a SID into the MPLS label field of a BGP route.
 */
import { formatIpv6, getBits, type Ipv6Address, type Ipv6Prefix, makePrefix, setBits } from './address.ts';

export interface SidStructure {
  readonly locatorBlockLength: number;
  readonly locatorNodeLength: number;
  readonly functionLength: number;
  readonly argumentLength: number;
}

/**
 * F3216: 32-bit block, 16-bit node, 16-bit function. The uSID-compatible format that NCS 5500 /
 * IOS-XR use; a locator is then a /48.
 */
export const F3216: SidStructure = {
  locatorBlockLength: 32,
  locatorNodeLength: 16,
  functionLength: 16,
  argumentLength: 0,
};

/** What FRR 8.4 advertises for a /64 locator (its structure is fixed: bgp-srv6-interop.md F1). */
export const FRR84_STRUCTURE: SidStructure = {
  locatorBlockLength: 40,
  locatorNodeLength: 24,
  functionLength: 16,
  argumentLength: 0,
};

export class SidStructureError extends Error {
  override readonly name = 'SidStructureError';
}

export function locatorLength(s: SidStructure): number {
  return s.locatorBlockLength + s.locatorNodeLength;
}

export function validateStructure(s: SidStructure): void {
  const fields = [s.locatorBlockLength, s.locatorNodeLength, s.functionLength, s.argumentLength];
  if (fields.some((f) => !Number.isInteger(f) || f < 0)) {
    throw new SidStructureError(`SID structure ${formatStructure(s)} has a negative or fractional field`);
  }
  const total = fields.reduce((a, b) => a + b, 0);
  if (total > 128) {
    throw new SidStructureError(
      `SID structure ${formatStructure(s)} is ${total} bits long; block + node + function + argument must be <= 128`,
    );
  }
  if (s.functionLength === 0) {
    throw new SidStructureError(
      `SID structure ${formatStructure(s)} has no function bits; give it at least 1`,
    );
  }
}

export function formatStructure(s: SidStructure): string {
  return `${s.locatorBlockLength}/${s.locatorNodeLength}/${s.functionLength}/${s.argumentLength}`;
}

/** The function field of `sid`. */
export function sidFunction(sid: Ipv6Address, s: SidStructure): bigint {
  return getBits(sid, locatorLength(s), s.functionLength);
}

/** The SID `function` of locator `locator` (whose length must equal block + node). */
export function makeSid(locator: Ipv6Prefix, s: SidStructure, fn: bigint, argument = 0n): Ipv6Address {
  if (locator.length !== locatorLength(s)) {
    throw new SidStructureError(
      `locator /${locator.length} does not match SID structure ${formatStructure(s)} (block + node = /${locatorLength(s)})`,
    );
  }
  let sid = setBits(locator.address, locatorLength(s), s.functionLength, fn);
  if (s.argumentLength > 0)
    sid = setBits(sid, locatorLength(s) + s.functionLength, s.argumentLength, argument);
  return sid;
}

/** The locator of a SID under a structure. */
export function sidLocator(sid: Ipv6Address, s: SidStructure): Ipv6Prefix {
  return makePrefix(sid, locatorLength(s));
}

/** RFC 9252 4: which bits of the SID travel in the label field. */
export interface Transposition {
  /** Transposition Offset: bit position in the SID, 0 = most significant. */
  readonly offset: number;
  /** Transposition Length, at most 20 (the label field is 20 bits). 0 = no transposition. */
  readonly length: number;
}

export const NO_TRANSPOSITION: Transposition = { offset: 0, length: 0 };

/** MPLS label 3 (implicit null): the label of a route whose SID is not transposed (RFC 9252 4). */
export const LABEL_IMPLICIT_NULL = 3;

export class TranspositionError extends Error {
  override readonly name = 'TranspositionError';
}

export function checkTransposition(t: Transposition): void {
  if (!Number.isInteger(t.length) || t.length < 0 || t.length > 20) {
    throw new TranspositionError(
      `transposition length ${t.length} is not in 0..20 (RFC 9252 4: a label has 20 bits)`,
    );
  }
  if (!Number.isInteger(t.offset) || t.offset < 0 || t.offset + t.length > 128) {
    throw new TranspositionError(
      `transposition offset ${t.offset} + length ${t.length} runs past bit 128 of the SID (RFC 9252 4)`,
    );
  }
}

/** The usual choice: transpose the whole function field (what FRR does). */
export function functionTransposition(s: SidStructure): Transposition {
  return { offset: locatorLength(s), length: s.functionLength };
}

/**
 * Splits a SID for advertisement (RFC 9252 4): the transposed bits are cleared in the SID and
 * carried in the high-order bits of the 20-bit label. Without transposition the label is 3.
 */
export function transposeSid(sid: Ipv6Address, t: Transposition): { sid: Ipv6Address; label: number } {
  checkTransposition(t);
  if (t.length === 0) return { sid, label: LABEL_IMPLICIT_NULL };
  const bits = getBits(sid, t.offset, t.length);
  return {
    sid: setBits(sid, t.offset, t.length, 0n),
    label: Number(bits << BigInt(20 - t.length)),
  };
}

/**
 * Rebuilds the SID of a received route: the high-order `t.length` bits of the 20-bit label are
 * written into the SID at `t.offset`. GoBGP hands labels over already shifted to 20-bit values.
 */
export function rebuildSid(sid: Ipv6Address, label: number, t: Transposition): Ipv6Address {
  checkTransposition(t);
  if (t.length === 0) return sid;
  if (!Number.isInteger(label) || label < 0 || label >= 1 << 20) {
    throw new TranspositionError(`label ${label} is not a 20-bit value`);
  }
  const bits = BigInt(label) >> BigInt(20 - t.length);
  return setBits(sid, t.offset, t.length, bits);
}

export function describeSid(sid: Ipv6Address, s: SidStructure): string {
  return `${formatIpv6(sid)} (locator ${formatIpv6(sidLocator(sid, s).address)}/${locatorLength(s)}, function 0x${sidFunction(sid, s).toString(16)})`;
}
