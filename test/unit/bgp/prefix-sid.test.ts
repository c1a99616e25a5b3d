import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MalformedAttributeError } from '../../../src/bgp/errors.ts';
import {
  decodePrefixSid,
  encodePrefixSid,
  firstL3ServiceSid,
  type PrefixSidAttribute,
  srv6L3ServicePrefixSid,
} from '../../../src/bgp/prefix-sid.ts';
import { fromHex, hex } from '../../../src/bgp/wire.ts';
import { parseIpv6 } from '../../../src/srv6/address.ts';
import { FRR_PREFIX_SID, GOBGP_PREFIX_SID_FULL, GOBGP_PREFIX_SID_TRANSPOSED } from './vectors.ts';

describe('Prefix-SID codec (RFC 9252) on bytes measured between GoBGP 3.10 and FRR 8.4', () => {
  it('decodes GoBGP transposed: SID fc00:0:1::, End.DT6, 32/16/16/0, tl 16 @ 48', () => {
    const attr = decodePrefixSid(GOBGP_PREFIX_SID_TRANSPOSED);
    const first = firstL3ServiceSid(attr)!;
    expect(first.info.sid).toBe(parseIpv6('fc00:0:1::'));
    expect(first.info.behavior).toBe(18);
    expect(first.info.flags).toBe(0);
    expect(first.structure).toEqual({
      kind: 'sid-structure',
      locatorBlockLength: 32,
      locatorNodeLength: 16,
      functionLength: 16,
      argumentLength: 0,
      transpositionLength: 16,
      transpositionOffset: 48,
    });
  });

  it('decodes GoBGP full SID: fc00:0:1:e000::, no transposition', () => {
    const first = firstL3ServiceSid(decodePrefixSid(GOBGP_PREFIX_SID_FULL))!;
    expect(first.info.sid).toBe(parseIpv6('fc00:0:1:e000::'));
    expect(first.structure?.transpositionLength).toBe(0);
    expect(first.structure?.transpositionOffset).toBe(0);
  });

  it("decodes FRR's: SID fc00:0:2::, behaviour 0xFFFF, 40/24/16/0, tl 16 @ 64", () => {
    const first = firstL3ServiceSid(decodePrefixSid(FRR_PREFIX_SID))!;
    expect(first.info.sid).toBe(parseIpv6('fc00:0:2::'));
    expect(first.info.behavior).toBe(0xffff);
    expect(first.structure).toMatchObject({
      locatorBlockLength: 40,
      locatorNodeLength: 24,
      functionLength: 16,
      transpositionLength: 16,
      transpositionOffset: 64,
    });
  });

  it.each([
    ['GoBGP transposed', GOBGP_PREFIX_SID_TRANSPOSED],
    ['GoBGP full', GOBGP_PREFIX_SID_FULL],
    ['FRR', FRR_PREFIX_SID],
  ])('re-encodes %s byte for byte', (_name, bytes) => {
    expect(hex(encodePrefixSid(decodePrefixSid(bytes)))).toBe(hex(bytes));
  });

  it('builds exactly the bytes GoBGP sends', () => {
    const built = srv6L3ServicePrefixSid({
      sid: parseIpv6('fc00:0:1::'),
      behavior: 18,
      structure: {
        locatorBlockLength: 32,
        locatorNodeLength: 16,
        functionLength: 16,
        argumentLength: 0,
        transpositionLength: 16,
        transpositionOffset: 48,
      },
    });
    expect(hex(encodePrefixSid(built))).toBe(hex(GOBGP_PREFIX_SID_TRANSPOSED));
  });

  it('keeps unknown TLVs, sub-TLVs and sub-sub-TLVs raw and re-encodes them', () => {
    const bytes = fromHex(`
      01 0007 00 0000 00000064
      05 002b 00
        01 0027 00 fc000000000100000000000000000000 00 0012 00
          01 0006 20 10 10 00 10 30
          09 0003 aabbcc
          0a 0000`);
    // The L3 Service TLV above declares 0x2b = 43 bytes: 1 reserved + sub-TLV (3 + 39).
    const attr = decodePrefixSid(bytes);
    expect(attr.tlvs[0]).toEqual({ kind: 'raw', type: 1, value: fromHex('00 0000 00000064') });
    const info = firstL3ServiceSid(attr)!.info;
    expect(info.subSubTlvs.map((t) => t.kind)).toEqual(['sid-structure', 'raw', 'raw']);
    expect(hex(encodePrefixSid(attr))).toBe(hex(bytes));
  });

  it('keeps an L2 Service TLV (type 6) as such', () => {
    const bytes = GOBGP_PREFIX_SID_FULL.slice();
    bytes[0] = 6;
    const attr = decodePrefixSid(bytes);
    expect(attr.tlvs[0]).toMatchObject({ kind: 'srv6-service', type: 6 });
    expect(firstL3ServiceSid(attr)).toBeUndefined();
  });

  it.each([
    [
      'TLV longer than the attribute',
      '05 0023 00 01 001e 00 fc000000000100000000000000000000 00 0012 00 01 0006 20 10 10 00 10 30',
    ],
    [
      'sub-TLV longer than its TLV',
      '05 0022 00 01 001f 00 fc000000000100000000000000000000 00 0012 00 01 0006 20 10 10 00 10 30',
    ],
    ['SID Information too short', '05 0008 00 01 0004 00 fc000000'],
    [
      'structure of 5 bytes',
      '05 0021 00 01 001d 00 fc000000000100000000000000000000 00 0012 00 01 0005 20 10 10 00 10',
    ],
    ['truncated TLV header', '05 00'],
    [
      'sub-sub-TLV past the sub-TLV',
      '05 0022 00 01 001e 00 fc000000000100000000000000000000 00 0012 00 01 0007 20 10 10 00 10 30',
    ],
  ])('rejects %s with a treat-as-withdraw MalformedAttributeError', (_name, text) => {
    const bytes = fromHex(text);
    let err: unknown;
    try {
      decodePrefixSid(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MalformedAttributeError);
    expect(err).toMatchObject({ code: 3, handling: 'treat-as-withdraw' });
  });

  it('never reads past `end` in a larger buffer', () => {
    const padded = new Uint8Array(GOBGP_PREFIX_SID_FULL.length + 10).fill(0x01);
    padded.set(GOBGP_PREFIX_SID_FULL, 5);
    const attr = decodePrefixSid(padded, 5, 5 + GOBGP_PREFIX_SID_FULL.length);
    expect(hex(encodePrefixSid(attr))).toBe(hex(GOBGP_PREFIX_SID_FULL));
    expect(() => decodePrefixSid(padded, 5, 5 + GOBGP_PREFIX_SID_FULL.length - 1)).toThrow(
      MalformedAttributeError,
    );
  });

  it('fuzz: decoding arbitrary bytes either throws MalformedAttributeError or round-trips', () => {
    const seeds = [GOBGP_PREFIX_SID_TRANSPOSED, FRR_PREFIX_SID];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 80 }),
          fc
            .tuple(fc.constantFrom(...seeds), fc.nat(36), fc.integer({ min: 0, max: 255 }))
            .map(([s, i, b]) => {
              const c = s.slice();
              c[i % c.length] = b;
              return c;
            }),
        ),
        (bytes) => {
          let attr: PrefixSidAttribute;
          try {
            attr = decodePrefixSid(bytes);
          } catch (e) {
            if (!(e instanceof MalformedAttributeError)) throw e;
            return;
          }
          expect(hex(encodePrefixSid(attr))).toBe(hex(bytes));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
