/**
 * Wire bytes measured between GoBGP 3.10 and FRR 8.4 on this machine
 * (../shared/research/bgp-srv6-interop.md section 4, tcpdump of the host-edge link).
 * The research notes give the MP_REACH_NLRI, extended communities and Prefix-SID attributes
 * byte for byte; ORIGIN and AS_PATH are added here in the form both daemons send them, to make a
 * complete UPDATE. FRR's link-local next hop was elided in the notes ("fe80::…"): fe80::2 stands in.
 * The notes' hex of GoBGP's NLRI shows RD 0000fde8... (65000:100) while their prose says 65101:100;
 * the capture below (test/system/bgp/frr-interop.test.ts) shows 65101:100 (0000fe4d...), used here.
 */
import { fromHex } from '../../../src/bgp/wire.ts';

/** Prefix-SID value, GoBGP -> FRR, transposed: SID fc00:0:1::, End.DT6, 32/16/16/0, tl 16 @ 48. */
export const GOBGP_PREFIX_SID_TRANSPOSED = fromHex(`
  05 0022 00
  01 001e 00 fc000000000100000000000000000000 00 0012 00
  01 0006 20 10 10 00 10 30`);

/** Prefix-SID value, GoBGP -> FRR, full SID: fc00:0:1:e000::, End.DT6, 32/16/16/0, no transposition. */
export const GOBGP_PREFIX_SID_FULL = fromHex(`
  05 0022 00
  01 001e 00 fc0000000001e0000000000000000000 00 0012 00
  01 0006 20 10 10 00 00 00`);

/** Prefix-SID value, FRR -> GoBGP: SID fc00:0:2::, behaviour 0xFFFF, 40/24/16/0, tl 16 @ 64. */
export const FRR_PREFIX_SID = fromHex(`
  05 0022 00
  01 001e 00 fc000000000200000000000000000000 00 ffff 00
  01 0006 28 18 10 00 10 40`);

/** MP_REACH_NLRI attribute (with header), GoBGP -> FRR, transposed: label 0xE0000. */
export const GOBGP_MP_REACH_TRANSPOSED = fromHex(`
  80 0e 39
  0002 80 | 18 | 0000000000000000 20010db8001200000000000000000001 | 00 |
  d8 | e00001 | 0000 fe4d 00000064 | 20010db800c000000000000000000001`);

/** The same with the full SID: label 3. */
export const GOBGP_MP_REACH_FULL = fromHex(`
  80 0e 39
  0002 80 | 18 | 0000000000000000 20010db8001200000000000000000001 | 00 |
  d8 | 000031 | 0000 fe4d 00000064 | 20010db800c000000000000000000001`);

/** MP_REACH_NLRI, FRR -> GoBGP: two next hops (global + link-local), label 4096 with TC=1. */
export const FRR_MP_REACH = fromHex(`
  80 0e 49
  0002 80 | 30 | 0000000000000000 20010db8001200000000000000000002
               0000000000000000 fe800000000000000000000000000002 | 00 |
  98 | 010003 | 0000fde800000064 | 20010db800e00000`);

/** Extended communities: RT 65000:100. */
export const RT_65000_100 = fromHex('c0 10 08 0002 fde8 0000 0064');

const ORIGIN_IGP = fromHex('40 01 01 00');
const AS_PATH_65101 = fromHex('40 02 06 02 01 0000fe4d');
const AS_PATH_65000 = fromHex('40 02 06 02 01 0000fde8');

function update(...attrs: Uint8Array[]): Uint8Array {
  const total = attrs.reduce((n, a) => n + a.length, 0);
  const out = new Uint8Array(4 + total);
  out[2] = total >> 8;
  out[3] = total & 0xff;
  let at = 4;
  for (const a of attrs) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

function attr(flags: number, type: number, value: Uint8Array): Uint8Array {
  return Uint8Array.of(flags, type, value.length, ...value);
}

/** UPDATE bodies (without the 19-byte header). */
export const UPDATE_GOBGP_TRANSPOSED = update(
  ORIGIN_IGP,
  AS_PATH_65101,
  GOBGP_MP_REACH_TRANSPOSED,
  RT_65000_100,
  attr(0xc0, 40, GOBGP_PREFIX_SID_TRANSPOSED),
);
export const UPDATE_GOBGP_FULL = update(
  ORIGIN_IGP,
  AS_PATH_65101,
  GOBGP_MP_REACH_FULL,
  RT_65000_100,
  attr(0xc0, 40, GOBGP_PREFIX_SID_FULL),
);
export const UPDATE_FRR = update(
  ORIGIN_IGP,
  AS_PATH_65000,
  FRR_MP_REACH,
  RT_65000_100,
  attr(0xc0, 40, FRR_PREFIX_SID),
);

/**
 * A whole BGP UPDATE message captured on the host-edge link by the system test
 * (tcpdump + `tshark -T fields -e tcp.payload`), GoBGP 3.10 -> FRR 8.4, transposed:
 * 2001:db8:c1::1/128, RD 65101:100, label 0xE0000, RT 65000:100, SID fc00:0:1:: End.DT6 32/16/16/0 tl 16 @ 48.
 */
export const CAPTURED_GOBGP_UPDATE_MESSAGE = fromHex(`
  ffffffffffffffffffffffffffffffff 0093 02 0000 007c
  40 01 01 00
  40 02 06 02 01 0000fe4d
  80 0e 39 0002 80 18 0000000000000000 20010db8001200000000000000000001 00
           d8 e00001 0000fe4d00000064 20010db800c100000000000000000001
  c0 10 08 0002fde800000064
  c0 28 25 05 0022 00 01 001e 00 fc000000000100000000000000000000 00 0012 00 01 0006 201010001030`);
