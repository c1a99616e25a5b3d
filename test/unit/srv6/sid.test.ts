import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIpv6, parseIpv6 } from '../../../src/srv6/address.ts';
import { behaviorFromCodepoint, decapsulates, IANA_BEHAVIOR_CODEPOINT } from '../../../src/srv6/behavior.ts';
import {
  checkTransposition,
  F3216,
  FRR84_STRUCTURE,
  functionTransposition,
  LABEL_IMPLICIT_NULL,
  rebuildSid,
  type SidStructure,
  SidStructureError,
  TranspositionError,
  transposeSid,
  validateStructure,
} from '../../../src/srv6/sid.ts';

const address = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
/** Every valid structure: fields summing to at most 128, at least one function bit. */
const structure: fc.Arbitrary<SidStructure> = fc
  .tuple(fc.nat(128), fc.nat(128), fc.integer({ min: 1, max: 128 }), fc.nat(128))
  .filter(([b, n, f, a]) => b + n + f + a <= 128)
  .map(([b, n, f, a]) => ({
    locatorBlockLength: b,
    locatorNodeLength: n,
    functionLength: f,
    argumentLength: a,
  }));

describe('RFC 9252 transposition', () => {
  // Vectors measured between GoBGP 3.10 and FRR 8.4 (shared/research/bgp-srv6-interop.md 4.1, 4.2).
  it('transposes the agent SID as advertised to FRR (label 917504, SID fc00:0:1::)', () => {
    const t = functionTransposition(F3216);
    expect(t).toEqual({ offset: 48, length: 16 });
    const out = transposeSid(parseIpv6('fc00:0:1:e000::'), t);
    expect(out.label).toBe(917504);
    expect(formatIpv6(out.sid)).toBe('fc00:0:1::');
  });

  it("rebuilds FRR's SID from label 4096 at offset 64", () => {
    const t = functionTransposition(FRR84_STRUCTURE);
    expect(formatIpv6(rebuildSid(parseIpv6('fc00:0:2::'), 4096, t))).toBe('fc00:0:2:0:100::');
  });

  it('leaves the SID whole with label 3 when transposition is off', () => {
    const sid = parseIpv6('fc00:0:1:e000::');
    expect(transposeSid(sid, { offset: 0, length: 0 })).toEqual({ sid, label: LABEL_IMPLICIT_NULL });
    expect(rebuildSid(sid, 3, { offset: 0, length: 0 })).toBe(sid);
  });

  it('round-trips for every structure, SID and function-aligned transposition', () => {
    fc.assert(
      fc.property(structure, address, (s, sid) => {
        const t = {
          offset: s.locatorBlockLength + s.locatorNodeLength,
          length: Math.min(20, s.functionLength),
        };
        const { sid: sent, label } = transposeSid(sid, t);
        expect(label).toBeLessThan(1 << 20);
        expect(rebuildSid(sent, label, t)).toBe(sid);
      }),
    );
  });

  it('round-trips for any transposition window', () => {
    fc.assert(
      fc.property(
        address,
        fc.integer({ min: 0, max: 128 }),
        fc.integer({ min: 0, max: 20 }),
        (sid, offset, length) => {
          fc.pre(offset + length <= 128);
          const t = { offset, length };
          const { sid: sent, label } = transposeSid(sid, t);
          expect(rebuildSid(sent, label, t)).toBe(sid);
        },
      ),
    );
  });

  it('rejects lengths over 20 and windows past bit 128', () => {
    expect(() => checkTransposition({ offset: 0, length: 21 })).toThrow(TranspositionError);
    expect(() => checkTransposition({ offset: 120, length: 16 })).toThrow(/past bit 128/);
    expect(() => rebuildSid(0n, 1 << 20, { offset: 48, length: 16 })).toThrow(/20-bit/);
  });
});

describe('SID structure', () => {
  it('accepts F3216 and full-length structures, rejects oversize ones', () => {
    validateStructure(F3216);
    validateStructure(FRR84_STRUCTURE);
    expect(() =>
      validateStructure({
        locatorBlockLength: 64,
        locatorNodeLength: 48,
        functionLength: 16,
        argumentLength: 8,
      }),
    ).toThrow(SidStructureError);
  });
});

describe('behaviours', () => {
  it('uses the IANA codepoints and knows which ones decapsulate', () => {
    expect(IANA_BEHAVIOR_CODEPOINT['End.DT6']).toBe(18);
    expect(IANA_BEHAVIOR_CODEPOINT['End.DT46']).toBe(20);
    expect(behaviorFromCodepoint(16)).toBe('End.DX6');
    expect(behaviorFromCodepoint(0xffff)).toBeUndefined();
    expect(decapsulates('End.DT6')).toBe(true);
    expect(decapsulates('End')).toBe(false);
    expect(decapsulates('End.B6.Encaps')).toBe(false);
  });
});
