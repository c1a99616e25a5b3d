/**
 * SRv6 constants, from the kernel uapi headers `linux/seg6.h`, `linux/seg6_iptunnel.h`,
 * `linux/seg6_local.h`, `linux/seg6_hmac.h` and `linux/seg6_genl.h`. Values keep their uapi names.
 */

// linux/seg6.h: struct ipv6_sr_hdr (nexthdr, hdrlen, type, segments_left, first_segment, flags: u8; tag: u16)
export const IPV6_SR_HDR_LEN = 8;
export const IPV6_SRCRT_TYPE_4 = 4;
export const SR6_FLAG1_HMAC = 1 << 3;
export const SR6_TLV_HMAC = 5;

// linux/seg6_hmac.h: struct sr6_tlv_hmac (type u8, len u8, reserved u16, hmackeyid be32, hmac[32])
export const SEG6_HMAC_SECRET_LEN = 64;
export const SEG6_HMAC_FIELD_LEN = 32;
export const SR6_TLV_HMAC_LEN = 40;
export const SEG6_HMAC_ALGO_SHA1 = 1;
export const SEG6_HMAC_ALGO_SHA256 = 2;

// linux/seg6_iptunnel.h
export const SEG6_IPTUNNEL_SRH = 1;
export const SEG6_IPTUN_MODE_INLINE = 0;
export const SEG6_IPTUN_MODE_ENCAP = 1;
export const SEG6_IPTUN_MODE_L2ENCAP = 2;
export const SEG6_IPTUN_MODE_ENCAP_RED = 3;
export const SEG6_IPTUN_MODE_L2ENCAP_RED = 4;

// linux/seg6_local.h
export const SEG6_LOCAL_ACTION = 1;
export const SEG6_LOCAL_SRH = 2;
export const SEG6_LOCAL_TABLE = 3;
export const SEG6_LOCAL_NH4 = 4;
export const SEG6_LOCAL_NH6 = 5;
export const SEG6_LOCAL_IIF = 6;
export const SEG6_LOCAL_OIF = 7;
export const SEG6_LOCAL_BPF = 8;
export const SEG6_LOCAL_VRFTABLE = 9;
export const SEG6_LOCAL_COUNTERS = 10;
export const SEG6_LOCAL_FLAVORS = 11;

export const SEG6_LOCAL_ACTION_END = 1;
export const SEG6_LOCAL_ACTION_END_X = 2;
export const SEG6_LOCAL_ACTION_END_T = 3;
export const SEG6_LOCAL_ACTION_END_DX2 = 4;
export const SEG6_LOCAL_ACTION_END_DX6 = 5;
export const SEG6_LOCAL_ACTION_END_DX4 = 6;
export const SEG6_LOCAL_ACTION_END_DT6 = 7;
export const SEG6_LOCAL_ACTION_END_DT4 = 8;
export const SEG6_LOCAL_ACTION_END_B6 = 9;
export const SEG6_LOCAL_ACTION_END_B6_ENCAP = 10;
export const SEG6_LOCAL_ACTION_END_BM = 11;
export const SEG6_LOCAL_ACTION_END_S = 12;
export const SEG6_LOCAL_ACTION_END_AS = 13;
export const SEG6_LOCAL_ACTION_END_AM = 14;
export const SEG6_LOCAL_ACTION_END_BPF = 15;
export const SEG6_LOCAL_ACTION_END_DT46 = 16;

export const SEG6_LOCAL_CNT_PAD = 1;
export const SEG6_LOCAL_CNT_PACKETS = 2;
export const SEG6_LOCAL_CNT_BYTES = 3;
export const SEG6_LOCAL_CNT_ERRORS = 4;

// linux/seg6_genl.h
export const SEG6_GENL_NAME = 'SEG6';
export const SEG6_GENL_VERSION = 1;
export const SEG6_ATTR_DST = 1;
export const SEG6_ATTR_DSTLEN = 2;
export const SEG6_ATTR_HMACKEYID = 3;
export const SEG6_ATTR_SECRET = 4;
export const SEG6_ATTR_SECRETLEN = 5;
export const SEG6_ATTR_ALGID = 6;
export const SEG6_ATTR_HMACINFO = 7;
export const SEG6_CMD_SETHMAC = 1;
export const SEG6_CMD_DUMPHMAC = 2;
export const SEG6_CMD_SET_TUNSRC = 3;
export const SEG6_CMD_GET_TUNSRC = 4;
