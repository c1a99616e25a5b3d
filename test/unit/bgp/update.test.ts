import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MalformedAttributeError } from '../../../src/bgp/errors.ts';
import { firstL3ServiceSid } from '../../../src/bgp/prefix-sid.ts';
import {
  BgpMessageType,
  decodeBgpMessage,
  decodeUpdate,
  encodeBgpMessage,
  encodeUpdate,
  formatRd,
  labelField,
  labelValue,
  mpNextHops,
  type PathAttribute,
  parseRd,
  type UpdateMessage,
} from '../../../src/bgp/update.ts';
import { hex } from '../../../src/bgp/wire.ts';
import { formatIpv6, parseIpv6 } from '../../../src/srv6/address.ts';
import {
  CAPTURED_GOBGP_UPDATE_MESSAGE,
  UPDATE_FRR,
  UPDATE_GOBGP_FULL,
  UPDATE_GOBGP_TRANSPOSED,
} from './vectors.ts';

function attr<K extends PathAttribute['kind']>(
  u: UpdateMessage,
  kind: K,
): Extract<PathAttribute, { kind: K }> {
  const a = u.attributes.find((x) => x.kind === kind);
  if (!a) throw new Error(`no ${kind}`);
  return a as Extract<PathAttribute, { kind: K }>;
}

describe('UPDATE decoding of the documented encodings (docs/edge/)', () => {
  it('GoBGP -> FRR, transposed: label 0xE0000, RD 65101:100, 2001:db8:c0::1/128, RT 65000:100', () => {
    const u = decodeUpdate(UPDATE_GOBGP_TRANSPOSED);
    const reach = attr(u, 'mp-reach');
    expect([reach.afi, reach.safi]).toEqual([2, 128]);
    expect(mpNextHops(reach).map(formatIpv6)).toEqual(['2001:db8:12::1']);
    expect(reach.nlri).toHaveLength(1);
    const n = reach.nlri[0]!;
    if (n.kind !== 'vpn') throw new Error('not vpn');
    expect(n.labels.map(labelValue)).toEqual([0xe0000]);
    expect(formatRd(n.rd)).toBe('65101:100');
    expect(formatIpv6(n.prefix.address)).toBe('2001:db8:c0::1');
    expect(n.prefix.length).toBe(128);
    expect(attr(u, 'ext-communities').communities).toEqual([
      { kind: 'route-target', transitive: true, rt: { type: 0, admin: 65000, assigned: 100 } },
    ]);
    const sid = firstL3ServiceSid(attr(u, 'prefix-sid').value)!;
    expect(formatIpv6(sid.info.sid)).toBe('fc00:0:1::');
    expect(attr(u, 'as-path').segments).toEqual([{ type: 2, asns: [65101] }]);
  });

  it('GoBGP -> FRR, full SID: label 3', () => {
    const u = decodeUpdate(UPDATE_GOBGP_FULL);
    const n = attr(u, 'mp-reach').nlri[0]!;
    expect(n.kind === 'vpn' && n.labels).toEqual([labelField(3)]);
    expect(formatIpv6(firstL3ServiceSid(attr(u, 'prefix-sid').value)!.info.sid)).toBe('fc00:0:1:e000::');
  });

  it('FRR -> GoBGP: two next hops, label field 0x010003 = label 4096 with TC 1, /64 prefix', () => {
    const u = decodeUpdate(UPDATE_FRR);
    const reach = attr(u, 'mp-reach');
    expect(mpNextHops(reach).map(formatIpv6)).toEqual(['2001:db8:12::2', 'fe80::2']);
    const n = reach.nlri[0]!;
    if (n.kind !== 'vpn') throw new Error('not vpn');
    expect(n.labels).toEqual([0x010003]);
    expect(labelValue(n.labels[0]!)).toBe(4096);
    expect(formatRd(n.rd)).toBe('65000:100');
    expect(n.prefix).toEqual({ address: parseIpv6('2001:db8:e0::'), length: 64 });
  });

  it.each([
    ['GoBGP transposed', UPDATE_GOBGP_TRANSPOSED],
    ['GoBGP full', UPDATE_GOBGP_FULL],
    ['FRR', UPDATE_FRR],
  ])('%s re-encodes byte for byte, also inside a whole BGP message', (_n, body) => {
    expect(hex(encodeUpdate(decodeUpdate(body)))).toBe(hex(body));
    const msg = encodeBgpMessage(BgpMessageType.Update, body);
    const [decoded, next] = decodeBgpMessage(msg);
    expect(decoded.type).toBe(2);
    expect(next).toBe(msg.length);
    expect(hex(decoded.body)).toBe(hex(body));
  });

  it('decodes an MP_UNREACH withdrawal with the RFC 8277 withdraw label', () => {
    const body = Uint8Array.from(
      Buffer.from(
        '0000' +
          '0022' +
          '800f1f' +
          '000280' +
          'd8' +
          '800000' +
          '0000fde800000064' +
          '20010db800c000000000000000000001',
        'hex',
      ),
    );
    const u = decodeUpdate(body);
    const un = attr(u, 'mp-unreach');
    expect(un.nlri[0]).toMatchObject({ kind: 'vpn', labels: [0x800000] });
    expect(hex(encodeUpdate(u))).toBe(hex(body));
  });

  it('decodes the whole UPDATE message captured from GoBGP by the system test, and re-encodes it', () => {
    const [msg, next] = decodeBgpMessage(CAPTURED_GOBGP_UPDATE_MESSAGE);
    expect(next).toBe(CAPTURED_GOBGP_UPDATE_MESSAGE.length);
    expect(msg.type).toBe(BgpMessageType.Update);
    const u = decodeUpdate(msg.body);
    expect(u.attributes.map((a) => a.kind)).toEqual([
      'origin',
      'as-path',
      'mp-reach',
      'ext-communities',
      'prefix-sid',
    ]);
    const n = attr(u, 'mp-reach').nlri[0]!;
    expect(
      n.kind === 'vpn' && [labelValue(n.labels[0]!), formatRd(n.rd), formatIpv6(n.prefix.address)],
    ).toEqual([0xe0000, '65101:100', '2001:db8:c1::1']);
    expect(hex(encodeBgpMessage(msg.type, encodeUpdate(u)))).toBe(hex(CAPTURED_GOBGP_UPDATE_MESSAGE));
  });

  it('parses and formats route distinguishers of the three types', () => {
    expect(parseRd('65101:100')).toEqual({ type: 0, admin: 65101, assigned: 100 });
    expect(parseRd('198.18.0.1:7')).toEqual({ type: 1, admin: '198.18.0.1', assigned: 7 });
    expect(parseRd('4200000000:7')).toEqual({ type: 2, admin: 4200000000, assigned: 7 });
    expect(() => parseRd('65000')).toThrow(RangeError);
    expect(() => parseRd('4200000000:70000')).toThrow(RangeError);
  });

  it('rejects an attribute longer than the attribute section', () => {
    const bad = UPDATE_GOBGP_FULL.slice();
    bad[3] = bad[3]! - 1; // path attribute length one short
    expect(() => decodeUpdate(bad)).toThrow(MalformedAttributeError);
  });

  it('fuzz: mutated UPDATEs either throw MalformedAttributeError or round-trip', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(UPDATE_GOBGP_TRANSPOSED, UPDATE_FRR),
        fc.array(fc.tuple(fc.nat(200), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        (seed, edits) => {
          const b = seed.slice();
          for (const [i, v] of edits) b[i % b.length] = v;
          let u: UpdateMessage;
          try {
            u = decodeUpdate(b);
          } catch (e) {
            if (!(e instanceof MalformedAttributeError) && !(e instanceof RangeError)) throw e;
            return;
          }
          // Prefix bits past the prefix length are not kept (they must be zero on the wire).
          const again = encodeUpdate(u);
          expect(hex(encodeUpdate(decodeUpdate(again)))).toBe(hex(again));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
