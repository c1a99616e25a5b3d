import { describe, expect, it } from 'vitest';
import { checksum, echo6, ipv4, ipv6, NH_ICMPV6, NH_IPV6, srh } from '../../harness/packet.ts';

describe('test packet builder (test/harness/packet.ts)', () => {
  it('IPv4 header checksum: the RFC 1071 worked example and a header that sums to zero', () => {
    const h = Uint8Array.from([
      0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
      0x00, 0xc7,
    ]);
    expect(checksum(h)).toBe(0xb861);
    const p = ipv4({ src: '198.18.1.10', dst: '198.18.2.10', protocol: 1 }, new Uint8Array(8));
    expect(checksum(p.subarray(0, 20))).toBe(0);
  });

  it('ICMPv6 checksum covers the pseudo-header: the whole message sums to zero with it', () => {
    const src = 'fd01:1::10';
    const dst = 'fd01:2::10';
    const pkt = ipv6({ src, dst, nextHeader: NH_ICMPV6 }, echo6(src, dst, 1, 2));
    const pseudo = new Uint8Array(40);
    pseudo.set(pkt.subarray(8, 40), 0);
    new DataView(pseudo.buffer).setUint32(32, pkt.length - 40);
    pseudo[39] = NH_ICMPV6;
    expect(checksum(pseudo, pkt.subarray(40))).toBe(0);
  });

  it('SRH layout (RFC 8754): Hdr Ext Len 2n, type 4, SL, LE = n - 1, segments in header order', () => {
    const s = srh({ nextHeader: NH_IPV6, segmentList: ['fc00::2', 'fc00::1'], segmentsLeft: 1 });
    expect(s.length).toBe(40);
    expect([...s.subarray(0, 8)]).toEqual([41, 4, 4, 1, 1, 0, 0, 0]);
    expect(s[23]).toBe(2);
    expect(s[39]).toBe(1);
  });
});
