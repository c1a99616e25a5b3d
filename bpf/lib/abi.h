/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The datapath's ABI with the agent: map value layouts, enums, flags. Mirrored byte for byte in
 * src/dataplane/ebpf/abi.ts; change both together (the loader test reads the sizes back from the object).
 */
#ifndef SEGMESH_ABI_H
#define SEGMESH_ABI_H

#include "compat.h"

/* Longest segment list a policy may carry. The SRH is written straight into the packet (nothing of it
 * on the 512-byte BPF stack); the bound keeps the program's unrolled copy short. */
#define SM_MAX_SEGS 8
#define SM_MAX_LOCAL_SIDS 3 /* local SIDs handled in one pass of ul_in (End, End, End.DT6) */

/* 4-byte aligned (every struct places it at a multiple of 4 already: no layout changes): copies of it,
 * to and from the packet too, are four 32-bit moves, not sixteen byte moves. */
struct in6 {
	__u8 a[16];
} __attribute__((aligned(4)));

/* endpoints: host-side ifindex of a workload veth, or of an SR-unaware network function's link -> the
 * sm_policy key space what arrives from it is looked up in, and the source it may use. */
struct sm_endpoint {
	__u32 tenant;         /* key space: a workload's tenant id (its egress), or a function's index |
			       * SM_TENANT_F_RETURN (its return scope); wl_in uses it as is */
	__u32 flags;          /* SM_EP_F_* */
	__u8 addr4[4];        /* the workload's IPv4 address (0.0.0.0 = no IPv4) */
	struct in6 addr6;     /* the workload's IPv6 address */
};
#define SM_EP_F_V4 1u     /* the workload has an IPv4 address */
#define SM_EP_F_ANYSRC 2u /* a network function's link: it hands back other workloads' packets, so no
			   * source check (the destination, Routing Header and port checks stay) */

/* policy: LPM {key space, destination}; IPv4 destinations as ::ffff:a.b.c.d. prefixlen counts the 32
 * key space bits too: a /64 is prefixlen 96. One key space per lookup scope (src/srv6/scope.ts):
 * - the tenant id alone: its egress scope (wl_in on a workload's link);
 * - tenant id | SM_TENANT_F_DELIVERY: its delivery scope's redirects (ul_in after End.DT* of a delivery
 *   SID: a workload that moved to another host; the rest of delivery is the tenant's FIB table);
 * - tenant id | SM_TENANT_F_FORWARD: its forward scope, whole (ul_in after End.DT* of a forward SID,
 *   edge aggregate mode: local workloads delivered, remote ones and the edge's routes re-encapsulated);
 * - function index | SM_TENANT_F_RETURN: an SR-unaware network function's return scope, whole (wl_in
 *   on the function's link, whose endpoint carries this key space).
 * Tenant ids stay below 2^12 and function indexes below 2^29, so the flags' leading bits never match
 * another space's prefix (each prefix covers all 32 key space bits). */
struct sm_policy_key {
	__u32 prefixlen;
	__u32 tenant;   /* the key space, network byte order, so that the trie compares it as leading bits */
	struct in6 dst;
};
/* exact: the /128 entries of every key space, by hash ({key space, destination}: the tail of struct
 * sm_policy_key, same byte order). Looked up first; a hit is what the LPM would answer (a /128 is the
 * longest match there is), a miss falls back to sm_policy. */
struct sm_exact_key {
	__u32 tenant;   /* the key space, network byte order (as in struct sm_policy_key) */
	struct in6 dst;
};
_Static_assert(sizeof(struct sm_policy_key) == 4 + sizeof(struct sm_exact_key) &&
		       __builtin_offsetof(struct sm_policy_key, tenant) == 4,
	       "sm_exact_key is the tail of sm_policy_key");
#define SM_TENANT_F_DELIVERY 0x80000000u /* the delivery key space (before the byte order swap) */
#define SM_TENANT_F_FORWARD 0x40000000u  /* the forward key space */
#define SM_TENANT_F_RETURN 0x20000000u   /* the return key spaces (of a function index, not a tenant) */

enum sm_mode {
	SM_MODE_ENCAP = 1,     /* H.Encaps */
	SM_MODE_ENCAP_RED = 2, /* H.Encaps.Red */
	SM_MODE_LOCAL = 3,     /* a workload on this host: redirect to its veth */
	SM_MODE_DROP = 4,      /* explicit deny */
};
#define SM_POL_F_SRH 1u /* keep an SRH for a single segment */
/* wl_in's key spaces (egress, return): the entry's prefix overlaps a prefix of sm_blocked (one contains
 * the other). wl_in looks sm_blocked up only for such an entry or none: a destination inside the entry
 * and inside a blocked prefix makes the two overlap, so an unflagged entry's packets cannot be blocked.
 * The agent sets it whenever the blocked set changes (src/dataplane/ebpf/lower.ts). */
#define SM_POL_F_BLOCKED 2u

struct sm_policy {
	__u8 mode;
	__u8 nsegs;
	__u8 flags;
	__u8 pad;
	__u32 oif;          /* SM_MODE_LOCAL: host-side veth of the destination workload; encap modes: the
			     * sm_nexthops slot of the first segment's locator (0: none, bpf_fib_lookup) */
	__u8 dmac[6];       /* SM_MODE_LOCAL: the destination workload's MAC */
	__u8 smac[6];       /* SM_MODE_LOCAL: the host-side veth's MAC */
	struct in6 src;     /* outer source (this host's SRv6 source address) */
	struct in6 segs[SM_MAX_SEGS]; /* segs[0] is the first SID visited */
};

/* nexthops: slot (an encap policy's oif field, from 1) -> the underlay next hop of a locator the agent itself
 * routes (its `locator` entry of the underlay scope): the outer packet goes there without a FIB lookup.
 * The prefix is the agent's (a restarted agent keeps each locator's slot); the programs read oif, via. */
struct sm_nexthop {
	__u32 oif;          /* the underlay link; 0: none (bpf_fib_lookup) */
	__u32 plen;         /* the locator's prefix length */
	struct in6 via;     /* the next hop on that link */
	struct in6 prefix;  /* the locator */
};

/* sids: local SID (/128) -> behaviour. */
enum sm_behavior {
	SM_END = 1,
	SM_END_X = 2,
	SM_END_DT6 = 3,
	SM_END_DT4 = 4,
	SM_END_DT46 = 5,
	SM_END_DX6 = 6,
	SM_END_DX4 = 7,
};
#define SM_SID_F_DELIVERY 1u /* End.DT*: its lookup scope is the tenant's delivery scope (redirects apply) */
#define SM_SID_F_FORWARD 2u  /* End.DT*: its lookup scope is the tenant's forward scope (sm_policy only) */
struct sm_sid {
	__u8 behavior;
	__u8 flags;         /* SM_SID_F_* */
	__u16 slot;         /* its packet/byte counters in sm_sid_stats (from 1; 0: an older agent's entry,
			     * counted in slot 0, which nobody reads) */
	__u32 table;        /* End.DT*: the tenant's FIB table */
	__u32 tenant;
	__u32 oif;          /* End.X / End.DX*: output interface */
	struct in6 nexthop; /* End.X / End.DX6: IPv6 next hop; End.DX4: IPv4 in the first 4 bytes */
};

/* blocked / trusted: LPM on an address (IPv4 as ::ffff:a.b.c.d). */
struct sm_addr_key {
	__u32 prefixlen;
	struct in6 addr;
};

/* sm_sid_stats: per-CPU array indexed by a SID's slot (struct sm_sid): no hashed 16-byte key per packet.
 * Slots 1..SM_SID_SLOTS, one per entry sm_sids can hold; slot 0 takes what slot-less entries count. */
#define SM_SID_SLOTS 16384
struct sm_sid_stats {
	__u64 packets;
	__u64 bytes;
};

/* sm_link_drops key: drops by the ingress link they happened on and their reason. */
struct sm_link_key {
	__u32 ifindex;
	__u32 reason; /* enum sm_reason */
};

/* cfg[0] */
struct sm_config {
	__u32 flags;        /* SM_CFG_F_* */
	__u8 icmp4_src[4];  /* source of ICMPv4 "fragmentation needed" (the workload gateway); 0 = none sent */
};
#define SM_CFG_F_VALIDATE 1u   /* wl_in: validation checks on */
#define SM_CFG_F_FIB 2u        /* forward with bpf_fib_lookup + redirect (else hand the rewritten packet to the stack) */
#define SM_CFG_F_TRUSTSRC 4u   /* ul_in: a local SID only from a trusted outer source */

/* counters: per-CPU array indexed by reason; verdicts that forward and verdicts that drop. */
enum sm_reason {
	SM_R_ENCAP = 0,
	SM_R_ENCAP_RED = 1,
	SM_R_ENCAP_NOSRH = 2,
	SM_R_LOCAL = 3,
	SM_R_END = 4,
	SM_R_END_X = 5,
	SM_R_DT6 = 6,
	SM_R_DT4 = 7,
	SM_R_DX6 = 8,
	SM_R_DX4 = 9,
	SM_R_REDIRECT = 10,
	SM_R_STACK = 11,
	SM_R_PTB = 12,
	SM_R_PASS = 13, /* not ours (non-IP, link-local, no endpoint, not a local SID) */
	SM_R_REDIRECT_MOVE = 14, /* End.DT* re-encapsulated toward a moved workload's new host */
	SM_R_FORWARD = 15,       /* End.DT* of a forward SID re-encapsulated (a remote workload, the edge) */
	SM_R_DROP_SPOOF = 16,
	SM_R_DROP_SIDBLOCK = 17,
	SM_R_DROP_HOSTADDR = 18,
	/* 19: retired (control-plane ports; link-local destinations other than ICMPv6 count as HOSTADDR) */
	SM_R_DROP_WL_SRH = 20,
	SM_R_DROP_NOPOLICY = 21,      /* no entry in the scope (egress, forward, return) */
	SM_R_DROP_POLICY = 22,        /* an explicit deny, or a policy the program cannot apply */
	SM_R_DROP_UNTRUSTED_SRC = 23,
	SM_R_DROP_SRH_SL = 24,        /* Segments Left beyond Last Entry */
	SM_R_DROP_SRH_LEN = 25,       /* header length disagrees with the segment list or the packet */
	SM_R_DROP_TRUNCATED = 26,     /* the packet is shorter than its headers say */
	SM_R_DROP_SRH_TYPE = 27,      /* a routing header that is not an SRH, or none where one is needed */
	SM_R_DROP_SL_NONZERO = 28,    /* decapsulation with segments left */
	SM_R_DROP_SL_ZERO = 29,       /* End with no segment left */
	SM_R_DROP_INNER = 30,         /* inner protocol the behaviour does not take */
	SM_R_DROP_HOPLIMIT = 31,
	SM_R_DROP_FIB = 32,           /* no route (the tenant table never falls back to main) */
	SM_R_DROP_TOOBIG = 33,        /* too big and no ICMP sent (IPv4 without DF or gateway, transit, decap) */
	SM_R_DROP_ERROR = 34,         /* a helper failed */
	SM_R_DROP_REDIRECT_LOOP = 35, /* a delivery or forward re-encapsulation toward a SID of this host */
	SM_R_REDIRECT_NH = 36,        /* redirected to an agent-resolved next hop (sm_nexthops), no FIB lookup */
	SM_R_MAX = 40,
};

#endif
