import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AddressError,
  formatIpv6,
  formatPrefix,
  getBits,
  ipv6FromBytes,
  ipv6IntoBytes,
  ipv6ToBytes,
  parseIpv6,
  parsePrefix,
  prefixContains,
  prefixesOverlap,
  setBits,
} from '../../../src/srv6/address.ts';

const address = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });

describe('IPv6 addresses', () => {
  it('parses the RFC 4291 forms', () => {
    expect(parseIpv6('::')).toBe(0n);
    expect(parseIpv6('::1')).toBe(1n);
    expect(parseIpv6('fc00:0:1:e000::')).toBe(0xfc00_0000_0001_e000n << 64n);
    expect(parseIpv6('2001:DB8::ff00:42:8329')).toBe(0x20010db8000000000000ff0000428329n);
    expect(parseIpv6('::ffff:198.18.0.1')).toBe(0xffffc6120001n);
    expect(parseIpv6('1:2:3:4:5:6:7:8')).toBe(0x00010002000300040005000600070008n);
  });

  it('formats canonically (RFC 5952)', () => {
    expect(formatIpv6(parseIpv6('2001:0db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1');
    expect(formatIpv6(parseIpv6('2001:db8:0:1:1:1:1:1'))).toBe('2001:db8:0:1:1:1:1:1');
    expect(formatIpv6(parseIpv6('fc00:0:2:0:100::'))).toBe('fc00:0:2:0:100::');
    expect(formatIpv6(0n)).toBe('::');
  });

  it('rejects malformed text with the reason', () => {
    for (const bad of [
      '',
      ':::',
      '1::2::3',
      '12345::',
      'g::',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8:9',
      'fe80::1%eth0',
    ]) {
      expect(() => parseIpv6(bad), bad).toThrow(AddressError);
    }
  });

  it('round-trips text and bytes for every address', () => {
    fc.assert(
      fc.property(address, (a) => {
        expect(parseIpv6(formatIpv6(a))).toBe(a);
        expect(ipv6FromBytes(ipv6ToBytes(a))).toBe(a);
      }),
    );
  });

  it('writes an address into a buffer at an offset, network order, touching only its 16 bytes', () => {
    // Against the text form, independently of ipv6ToBytes (which now uses ipv6IntoBytes).
    const hexOf = (a: bigint) => a.toString(16).padStart(32, '0');
    fc.assert(
      fc.property(address, fc.integer({ min: 0, max: 20 }), (a, off) => {
        const out = new Uint8Array(off + 20).fill(0xaa);
        ipv6IntoBytes(a, out, off);
        expect(Buffer.from(out.subarray(off, off + 16)).toString('hex')).toBe(hexOf(a));
        expect([...out.subarray(0, off), ...out.subarray(off + 16)].every((b) => b === 0xaa)).toBe(true);
      }),
    );
    const high = parseIpv6('8001:203:405:607:809:a0b:c0d:e0f');
    expect([...ipv6ToBytes(high)]).toStrictEqual([0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(() => ipv6IntoBytes(1n, new Uint8Array(16), 1)).toThrow(RangeError);
  });

  it('reads and writes bit fields MSB first', () => {
    fc.assert(
      fc.property(address, fc.integer({ min: 0, max: 128 }), fc.integer({ min: 0, max: 128 }), (a, o, l) => {
        fc.pre(o + l <= 128);
        const v = getBits(a, o, l);
        expect(setBits(a, o, l, v)).toBe(a);
        expect(getBits(setBits(a, o, l, 0n), o, l)).toBe(0n);
      }),
    );
    expect(getBits(parseIpv6('fc00:0:1:e000::'), 48, 16)).toBe(0xe000n);
  });
});

describe('IPv6 prefixes', () => {
  it('parses, refuses host bits, and contains', () => {
    const p = parsePrefix('fc00:0:1::/48');
    expect(formatPrefix(p)).toBe('fc00:0:1::/48');
    expect(prefixContains(p, parseIpv6('fc00:0:1:e000::'))).toBe(true);
    expect(prefixContains(p, parseIpv6('fc00:0:2::'))).toBe(false);
    expect(() => parsePrefix('fc00:0:1::5/48')).toThrow(/did you mean fc00:0:1::\/48/);
    expect(() => parsePrefix('fc00::/129')).toThrow(AddressError);
    expect(parsePrefix('2001:db8::1').length).toBe(128);
  });

  it('detects overlap both ways', () => {
    expect(prefixesOverlap(parsePrefix('fc00::/32'), parsePrefix('fc00:0:1::/48'))).toBe(true);
    expect(prefixesOverlap(parsePrefix('fc00:0:1::/48'), parsePrefix('fc00::/32'))).toBe(true);
    expect(prefixesOverlap(parsePrefix('fc00:0:1::/48'), parsePrefix('fc00:0:2::/48'))).toBe(false);
  });
});
