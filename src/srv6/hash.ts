/**
 * A small, stable, non-cryptographic string hash for deterministic allocation (SID functions,
 * opaque addresses, link names). Stable across Node versions and machines: it depends only on the
 * UTF-16 code units of the input. Not a defence against chosen inputs; collisions are handled by the
 * callers with explicit probing.
 */

/** 53-bit hash (cyrb53 construction: two 32-bit lanes mixed with Math.imul). */
export function hash53(text: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** `bits` (1..128) bits of hash of `text`, built from as many 53-bit rounds as needed. */
export function hashBits(text: string, bits: number): bigint {
  if (!Number.isInteger(bits) || bits < 1 || bits > 128) throw new RangeError(`hashBits: ${bits} bits`);
  let value = 0n;
  let have = 0;
  for (let round = 0; have < bits; round++) {
    value = (value << 53n) | BigInt(hash53(text, round));
    have += 53;
  }
  return value >> BigInt(have - bits);
}

/** 8 lower-case hex digits of the hash: short, stable names (e.g. interface names). */
export function hashHex8(text: string): string {
  return (hash53(text) % 0x100000000).toString(16).padStart(8, '0');
}
