import { RULE_PRIORITY, TABLE_BASE, TABLE_LIMIT } from './kernel/tables.ts';

/**
 * What the agent owns in the kernel, in one place (documented in docs/dataplane.md).
 *
 * Everything the agent installs (routes, rules, nexthops) carries {@link ROUTE_PROTOCOL}; reconcile and
 * flush only ever touch objects that carry it.
 */

/**
 * Route/rule/nexthop protocol number (rtm_protocol / FRA_PROTOCOL / nhm_protocol). Values above
 * RTPROT_STATIC (4) are not interpreted by the kernel; 203 is not assigned in linux/rtnetlink.h
 * (the highest there is RTPROT_EIGRP 192) nor in iproute2's rt_protos.
 */
export const ROUTE_PROTOCOL = 203;
export const ROUTE_PROTOCOL_NAME = 'segmesh';

/**
 * Tables and rule priorities are the kernel backend's (kernel/tables.ts): one definition for the planner, the
 * data plane, the docs and `segmesh dataplane flush`.
 */
export const TENANT_TABLE_BASE = TABLE_BASE;
export const TENANT_TABLE_MAX = TABLE_LIMIT - 1;

/** Preferences of the agent's `ip rule`s (after `local` at 0, before `main` at 32766). */
export const RULE_PREF_BASE = RULE_PRIORITY.nfReturn;
export const RULE_PREF_MAX = 19_999;

/** Nexthop object ids. */
export const NEXTHOP_ID_BASE = 0x5e00_0000;
export const NEXTHOP_ID_MAX = 0x5eff_ffff;

/** Metric of `unreachable default` at the end of each tenant table (the largest IPv6 metric). */
export const TENANT_UNREACHABLE_METRIC = 0xffff_ffff;

/** The kernel's default IPv6 route metric (IP6_RT_PRIO_USER) when none is given. */
export const DEFAULT_IPV6_METRIC = 1024;

/** nftables table (family netdev) holding the per-workload ingress chains. */
export const NFT_TABLE = 'segmesh';
/** nftables table (family inet) holding the MSS clamp on forwarded traffic. */
export const NFT_MSS_TABLE = 'segmesh_mss';

/** Messages per sendmsg (measured best on this kernel: larger batches turn ENOMEM into storms). */
export const BATCH_SIZE = 64;

/** Segment list length the agent plans for by default (MTU formula, input validation). */
export const DEFAULT_MAX_SEGMENTS = 4;
/** The kernel's ceiling: SRH hdrlen is one octet, (255 * 8 - 0) / 16 => 127 segments. */
export const KERNEL_MAX_SEGMENTS = 127;
