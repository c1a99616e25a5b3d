/**
 * IPv6 addresses and prefixes as 128-bit unsigned integers.
 *
 * Why bigint: SIDs are built and taken apart bit field by bit field (locator block, node, function,
 * argument; RFC 9252 transposition), and that is exact arithmetic on a bigint, not string surgery.
 * Pure: no I/O, no Node APIs.
 */

/** An IPv6 address, 0 <= value < 2^128. */
export type Ipv6Address = bigint;

/** An IPv6 prefix; `address` has every bit past `length` cleared. */
export interface Ipv6Prefix {
  readonly address: Ipv6Address;
  readonly length: number;
}

export const IPV6_BITS = 128;
const ALL_ONES = (1n << 128n) - 1n;

export class AddressError extends Error {
  override readonly name = 'AddressError';
  readonly input: string;
  constructor(message: string, input: string) {
    super(message);
    this.input = input;
  }
}

function fail(input: string, why: string): never {
  throw new AddressError(
    `invalid IPv6 address ${JSON.stringify(input)}: ${why}; write it as in RFC 4291, e.g. fc00:0:1::e000`,
    input,
  );
}

function parseGroups(text: string, input: string): number[] {
  if (text === '') return [];
  const groups: number[] = [];
  for (const group of text.split(':')) {
    if (group.length === 0 || group.length > 4 || !/^[0-9a-fA-F]+$/.test(group)) {
      fail(input, `bad group ${JSON.stringify(group)}`);
    }
    groups.push(Number.parseInt(group, 16));
  }
  return groups;
}

function parseDottedQuad(text: string, input: string): [number, number] {
  const parts = text.split('.');
  if (parts.length !== 4) fail(input, 'bad embedded IPv4 address');
  const bytes = parts.map((p) => {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) fail(input, 'bad embedded IPv4 address');
    return Number(p);
  });
  return [(bytes[0]! << 8) | bytes[1]!, (bytes[2]! << 8) | bytes[3]!];
}

/** Parses an IPv6 address in any RFC 4291 text form (with `::`, with an embedded IPv4 tail). */
export function parseIpv6(input: string): Ipv6Address {
  let text = input.trim();
  if (text.length === 0) fail(input, 'empty');
  if (text.includes('%')) fail(input, 'zone indexes are not addresses');
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    tail = parseDottedQuad(text.slice(lastColon + 1), input);
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const double = text.indexOf('::');
  let groups: number[];
  if (double >= 0) {
    if (text.indexOf('::', double + 1) >= 0) fail(input, "more than one '::'");
    const head = parseGroups(text.slice(0, double), input);
    const rest = parseGroups(text.slice(double + 2), input);
    const missing = 8 - head.length - rest.length;
    if (missing < 1) fail(input, "'::' stands for no group");
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest];
  } else {
    groups = parseGroups(text, input);
    if (groups.length !== 8) fail(input, `${groups.length} groups instead of 8`);
  }
  if (tail.length === 2) {
    groups[6] = tail[0]!;
    groups[7] = tail[1]!;
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/** Formats an address in the RFC 5952 canonical form (lower case, longest zero run compressed). */
export function formatIpv6(address: Ipv6Address): string {
  if (address < 0n || address > ALL_ONES) throw new RangeError(`not a 128-bit value: ${address}`);
  // One bigint operation (to hex) instead of sixteen shifts and masks: plans format millions of these.
  const hex = address.toString(16).padStart(32, '0');
  const groups: number[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(Number.parseInt(hex.slice(i, i + 4), 16));
  // RFC 5952 4.2: compress the longest run of two or more zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const text = groups.map((g) => g.toString(16));
  if (bestStart < 0) return text.join(':');
  const head = text.slice(0, bestStart).join(':');
  const rest = text.slice(bestStart + bestLen).join(':');
  return `${head}::${rest}`;
}

/** The 129 masks, made once: a BigInt shift per call showed in the lowering's profile (100,000 entries). */
const MASKS: readonly bigint[] = Array.from({ length: IPV6_BITS + 1 }, (_, l) =>
  l === 0 ? 0n : (ALL_ONES << BigInt(IPV6_BITS - l)) & ALL_ONES,
);

/** The mask with the first `length` bits set. */
export function networkMask(length: number): bigint {
  const m = MASKS[length];
  if (m === undefined) checkLength(length, String(length));
  return m!;
}

function checkLength(length: number, input: string): void {
  if (!Number.isInteger(length) || length < 0 || length > IPV6_BITS) {
    throw new AddressError(`invalid prefix length in ${JSON.stringify(input)}: use 0..128`, input);
  }
}

/** Builds a prefix, clearing the host bits of `address`. */
export function makePrefix(address: Ipv6Address, length: number): Ipv6Prefix {
  return { address: address & networkMask(length), length };
}

/**
 * Parses `addr/len`. A bare address is a /128. Host bits set past the length are an error,
 * because `fc00:0:1::5/48` is almost always a typo for an address or for a longer prefix.
 */
export function parsePrefix(input: string): Ipv6Prefix {
  const slash = input.indexOf('/');
  const address = parseIpv6(slash < 0 ? input : input.slice(0, slash));
  if (slash < 0) return { address, length: IPV6_BITS };
  const lenText = input.slice(slash + 1).trim();
  if (!/^[0-9]{1,3}$/.test(lenText)) {
    throw new AddressError(`invalid prefix length in ${JSON.stringify(input)}: use 0..128`, input);
  }
  const length = Number(lenText);
  checkLength(length, input);
  const prefix = makePrefix(address, length);
  if (prefix.address !== address) {
    throw new AddressError(
      `prefix ${JSON.stringify(input)} has host bits set past /${length}; did you mean ${formatPrefix(prefix)}?`,
      input,
    );
  }
  return prefix;
}

export function formatPrefix(prefix: Ipv6Prefix): string {
  return `${formatIpv6(prefix.address)}/${prefix.length}`;
}

export function prefixContains(prefix: Ipv6Prefix, address: Ipv6Address): boolean {
  return (address & networkMask(prefix.length)) === prefix.address;
}

/** True when every address of `inner` is in `outer`. */
export function prefixCovers(outer: Ipv6Prefix, inner: Ipv6Prefix): boolean {
  return inner.length >= outer.length && prefixContains(outer, inner.address);
}

export function prefixesOverlap(a: Ipv6Prefix, b: Ipv6Prefix): boolean {
  return prefixCovers(a, b) || prefixCovers(b, a);
}

export function prefixEquals(a: Ipv6Prefix, b: Ipv6Prefix): boolean {
  return a.length === b.length && a.address === b.address;
}

/** Number of addresses in the prefix, as a bigint (a /0 has 2^128). */
export function prefixSize(prefix: Ipv6Prefix): bigint {
  return 1n << BigInt(IPV6_BITS - prefix.length);
}

/** Reads `length` bits starting at bit `offset` (0 = most significant bit). */
export function getBits(address: Ipv6Address, offset: number, length: number): bigint {
  checkField(offset, length);
  if (length === 0) return 0n;
  return (address >> BigInt(IPV6_BITS - offset - length)) & ((1n << BigInt(length)) - 1n);
}

/** Returns `address` with `length` bits at `offset` (0 = MSB) replaced by `value`. */
export function setBits(address: Ipv6Address, offset: number, length: number, value: bigint): Ipv6Address {
  checkField(offset, length);
  if (length === 0) return address;
  const width = 1n << BigInt(length);
  if (value < 0n || value >= width) {
    throw new RangeError(`value ${value} does not fit in ${length} bits`);
  }
  const shift = BigInt(IPV6_BITS - offset - length);
  return (address & ~((width - 1n) << shift) & ALL_ONES) | (value << shift);
}

function checkField(offset: number, length: number): void {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`bad bit field offset=${offset} length=${length}`);
  }
  if (offset + length > IPV6_BITS) {
    throw new RangeError(`bit field offset=${offset} length=${length} runs past bit 128`);
  }
}

/** Network byte order (big-endian), 16 bytes. */
export function ipv6ToBytes(address: Ipv6Address): Uint8Array {
  const out = new Uint8Array(16);
  ipv6IntoBytes(address, out, 0);
  return out;
}

/** 16 bytes the BigInt halves are written into (a DataView over a small on-heap array would move it off the heap). */
const scratchBytes = new Uint8Array(new ArrayBuffer(16));
const scratchView = new DataView(scratchBytes.buffer);

/**
 * Writes the 16 bytes of `address` (network byte order) into `out` at `offset`: one BigInt shift and
 * two 64-bit writes (setBigUint64 takes the low 64 bits without an intermediate BigInt), not a shift per
 * byte (lowering 100,000 entries spent most of its time in that loop).
 */
export function ipv6IntoBytes(address: Ipv6Address, out: Uint8Array, offset: number): void {
  if (offset < 0 || offset + 16 > out.length) {
    throw new RangeError(`need 16 bytes at offset ${offset}, have ${out.length - offset}`);
  }
  scratchView.setBigUint64(0, address >> 64n, false);
  scratchView.setBigUint64(8, address, false);
  for (let i = 0; i < 16; i++) out[offset + i] = scratchBytes[i]!;
}

/** Reads 16 bytes in network byte order from `bytes` at `offset`. */
export function ipv6FromBytes(bytes: Uint8Array, offset = 0): Ipv6Address {
  if (offset < 0 || offset + 16 > bytes.length) {
    throw new RangeError(`need 16 bytes at offset ${offset}, have ${bytes.length - offset}`);
  }
  let v = 0n;
  for (let i = 0; i < 16; i++) v = (v << 8n) | BigInt(bytes[offset + i]!);
  return v;
}

export function isIpv6Text(text: string): boolean {
  try {
    parseIpv6(text);
    return true;
  } catch {
    return false;
  }
}
