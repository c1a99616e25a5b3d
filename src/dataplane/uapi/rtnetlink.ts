/**
 * rtnetlink constants, from the kernel uapi headers `linux/rtnetlink.h`, `linux/if_addr.h`,
 * `linux/if_link.h`, `linux/veth.h`, `linux/lwtunnel.h`, `linux/fib_rules.h` and `linux/nexthop.h`.
 * Values keep their uapi names.
 */

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

// linux/rtnetlink.h: message types
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_NEWRULE = 32;
export const RTM_DELRULE = 33;
export const RTM_GETRULE = 34;
export const RTM_NEWNEXTHOP = 104;
export const RTM_DELNEXTHOP = 105;
export const RTM_GETNEXTHOP = 106;

/** struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type (u8 each), flags (u32). */
export const RTMSG_LEN = 12;

// enum rtattr_type_t
export const RTA_DST = 1;
export const RTA_SRC = 2;
export const RTA_IIF = 3;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_PREFSRC = 7;
export const RTA_METRICS = 8;
export const RTA_MULTIPATH = 9;
export const RTA_TABLE = 15;
export const RTA_PREF = 20;
export const RTA_ENCAP_TYPE = 21;
export const RTA_ENCAP = 22;
export const RTA_NH_ID = 30;

// RTAX_* (inside RTA_METRICS)
export const RTAX_MTU = 2;

// rtm_type
export const RTN_UNSPEC = 0;
export const RTN_UNICAST = 1;
export const RTN_LOCAL = 2;
export const RTN_BROADCAST = 3;
export const RTN_ANYCAST = 4;
export const RTN_MULTICAST = 5;
export const RTN_BLACKHOLE = 6;
export const RTN_UNREACHABLE = 7;
export const RTN_PROHIBIT = 8;
export const RTN_THROW = 9;

// rtm_protocol
export const RTPROT_UNSPEC = 0;
export const RTPROT_KERNEL = 2;
export const RTPROT_BOOT = 3;
export const RTPROT_STATIC = 4;

// rtm_scope
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;
export const RT_SCOPE_NOWHERE = 255;

// reserved table ids
export const RT_TABLE_UNSPEC = 0;
export const RT_TABLE_DEFAULT = 253;
export const RT_TABLE_MAIN = 254;
export const RT_TABLE_LOCAL = 255;

// rtm_flags
export const RTM_F_CLONED = 0x200;

// linux/lwtunnel.h: enum lwtunnel_encap_types
export const LWTUNNEL_ENCAP_NONE = 0;
export const LWTUNNEL_ENCAP_SEG6 = 5;
export const LWTUNNEL_ENCAP_SEG6_LOCAL = 7;

// linux/if_addr.h: struct ifaddrmsg (family, prefixlen, flags, scope: u8; index: u32)
export const IFADDRMSG_LEN = 8;
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
export const IFA_F_PERMANENT = 0x80;

// linux/if_link.h / linux/rtnetlink.h: struct ifinfomsg (family u8, pad u8, type u16, index s32, flags u32, change u32)
export const IFINFOMSG_LEN = 16;
export const IFF_UP = 0x1;
export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINK = 5;
export const IFLA_OPERSTATE = 16;
export const IFLA_LINKINFO = 18;
export const IFLA_NET_NS_PID = 19;
export const IFLA_NET_NS_FD = 28;
export const IFLA_LINK_NETNSID = 37;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
// linux/veth.h
export const VETH_INFO_PEER = 1;

// linux/fib_rules.h: struct fib_rule_hdr (family, dst_len, src_len, tos, table, res1, res2, action: u8; flags: u32)
export const FIB_RULE_HDR_LEN = 12;
export const FRA_DST = 1;
export const FRA_SRC = 2;
export const FRA_IIFNAME = 3;
export const FRA_PRIORITY = 6;
export const FRA_FWMARK = 10;
export const FRA_TABLE = 15;
export const FRA_OIFNAME = 17;
export const FRA_PROTOCOL = 21;
export const FR_ACT_TO_TBL = 1;
export const FR_ACT_GOTO = 2;
export const FR_ACT_NOP = 3;
export const FR_ACT_BLACKHOLE = 6;
export const FR_ACT_UNREACHABLE = 7;
export const FR_ACT_PROHIBIT = 8;

// linux/nexthop.h: struct nhmsg (family, scope, protocol, resvd: u8; flags: u32)
export const NHMSG_LEN = 8;
export const NHA_ID = 1;
export const NHA_GROUP = 2;
export const NHA_GROUP_TYPE = 3;
export const NHA_BLACKHOLE = 4;
export const NHA_OIF = 5;
export const NHA_GATEWAY = 6;
export const NHA_ENCAP_TYPE = 7;
export const NHA_ENCAP = 8;
export const NHA_GROUPS = 9;
export const NHA_RES_GROUP = 12;
export const NEXTHOP_GRP_TYPE_MPATH = 0;
export const NEXTHOP_GRP_TYPE_RES = 1;
/** struct nexthop_grp: id u32, weight u8 (weight - 1), weight_high u8, resvd2 u16. */
export const NEXTHOP_GRP_LEN = 8;
export const NHA_RES_GROUP_BUCKETS = 1;
export const NHA_RES_GROUP_IDLE_TIMER = 2;
export const NHA_RES_GROUP_UNBALANCED_TIMER = 3;

// Neighbours (linux/neighbour.h).
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;
export const NDMSG_LEN = 12;
export const NDA_DST = 1;
export const NDA_LLADDR = 2;
export const NUD_PERMANENT = 0x80;
