/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Segmesh SRv6 datapath (tc programs, docs/dataplane.md "eBPF programs and maps"):
 * - wl_in: ingress of the host side of a workload veth (traffic leaving the workload): validate,
 *   then H.Encaps / H.Encaps.Red / local delivery by the tenant's policy (its egress scope); also on an
 *   SR-unaware network function's link (what it hands back), by the function's return scope.
 * - ul_in: ingress of an underlay (fabric) interface: local SIDs (End, End.X, End.DT4/6/46,
 *   End.DX4/6), End.DT* redirects toward moved workloads, End.DT* of a forward SID by the tenant's
 *   forward scope; everything else goes to the stack untouched.
 */
#include "lib/compat.h"
#include "lib/abi.h"
#include "lib/maps.h"
#include "lib/fib.h"
#include "lib/srv6.h"
#include "lib/icmp6.h"
#include "lib/pkt.h"

/* -DSM_NO_VALIDATE compiles the workload-edge validation (and ul_in's trusted-source check) out, for
 * `npm run bench -- ebpf` to measure what validation costs; scripts/build.sh never sets it. */
#ifdef SM_NO_VALIDATE
#define SM_VALIDATING(cfg) 0
#define SM_TRUSTING(cfg) 0
#else
#define SM_VALIDATING(cfg) ((cfg) & SM_CFG_F_VALIDATE)
#define SM_TRUSTING(cfg) ((cfg) & SM_CFG_F_TRUSTSRC)
#endif

char LICENSE[] SEC("license") = "GPL"; /* bpf_fib_lookup, bpf_redirect_neigh and friends are GPL-only */

/* Counted per host (sm_counters) and per ingress link (sm_link_drops). */
static sm_always_inline int drop(struct __sk_buff *skb, __u32 reason)
{
	count(reason);
	count_link_drop(skb->ifindex, reason);
	return TC_ACT_SHOT;
}

static sm_always_inline int pass(void)
{
	count(SM_R_PASS);
	return TC_ACT_OK;
}

/* ::ffff:a.b.c.d, the key form of an IPv4 address in the LPM maps. */
static sm_always_inline void v4mapped(struct in6 *a, __be32 v4)
{
	__builtin_memset(a, 0, 16);
	a->a[10] = 0xff;
	a->a[11] = 0xff;
	__builtin_memcpy(&a->a[12], &v4, 4);
}

/*
 * Whether `dst` is blocked (a SID block or a host address: its reason in *reason), given its sm_policy
 * entry `pol` (or none), looked up first: sm_blocked is read only for no entry or one flagged
 * SM_POL_F_BLOCKED (its prefix overlaps a blocked one); an unflagged entry's destinations lie outside
 * every blocked prefix. The drop order stays: source, blocked, Routing Header, no policy.
 */
static sm_always_inline int blocked_reason(const struct sm_policy *pol, const struct in6 *dst, int *reason)
{
	if (pol && !(pol->flags & SM_POL_F_BLOCKED))
		return 0;
	struct sm_addr_key k = {.prefixlen = 128};
	__builtin_memcpy(&k.addr, dst, 16);
	__u32 *r = bpf_map_lookup_elem(&sm_blocked, &k);
	if (!r || !*r)
		return 0;
	*reason = (int)*r;
	return 1;
}

/*
 * Turns the packet at L3_OFF into the ICMP error that says it was too big for `mtu` (ICMPv6 Packet Too
 * Big, or ICMP Fragmentation Needed for IPv4 with DF), addressed to its source. Returns 0 or a drop
 * reason.
 */
static sm_always_inline int too_big(struct __sk_buff *skb, int v4, struct in6 *from6, __u32 mtu)
{
	if (!v4)
		return send_ptb6(skb, from6, mtu);
	/* Without DF the sender allows fragmentation, which a redirect cannot do: drop. */
	__u16 frag;
	__be32 gw = config_icmp4_src();
	if (!gw || bpf_skb_load_bytes(skb, L3_OFF + 6, &frag, 2) < 0 || !(bpf_ntohs(frag) & 0x4000))
		return SM_R_DROP_TOOBIG;
	return send_frag_needed4(skb, gw, mtu);
}

/* Apply the tenant's policy to a validated workload packet of `inner_len` bytes at L3_OFF. */
static __attribute__((noinline)) int wl_apply(struct __sk_buff *skb, struct sm_policy *pol,
					      __u32 inner_len, int v4, __u32 cfg)
{
	int r;
	if (skb->len < L3_OFF + inner_len)
		return drop(skb, SM_R_DROP_TRUNCATED);
	if (pol->mode == SM_MODE_LOCAL) {
		r = dec_hop_limit(skb, v4);
		if (r)
			return drop(skb, r);
		if (set_macs(skb, pol->dmac, pol->smac) < 0)
			return drop(skb, SM_R_DROP_ERROR);
		count(SM_R_LOCAL);
		return bpf_redirect(pol->oif, 0);
	}
	if (pol->mode != SM_MODE_ENCAP && pol->mode != SM_MODE_ENCAP_RED)
		return drop(skb, SM_R_DROP_POLICY);
	__u32 reason;
	__u32 nlist = encap_list(pol, &reason);
	if (nlist > SM_MAX_SEGS)
		return drop(skb, SM_R_DROP_POLICY);
	__u32 hdrs = IP6_HLEN + (nlist ? SRH_FIXED + 16 * nlist : 0);

	struct bpf_fib_lookup p;
	int rc = -1;
	/* The first segment's locator is one the agent routes itself: its next hop is in sm_nexthops, no
	 * FIB lookup (the slot's link MTU checked instead of the route's). */
	struct sm_nexthop *nh = nexthop_of(pol, cfg);
	if (nh) {
		if (!skb->gso_size) {
			__u32 mtu = hdrs + inner_len;
			if (bpf_check_mtu(skb, nh->oif, &mtu, 0, 0) == BPF_MTU_CHK_RET_FRAG_NEEDED) {
				r = too_big(skb, v4, &pol->src, mtu > hdrs ? mtu - hdrs : 0);
				if (r)
					return drop(skb, r);
				count(SM_R_PTB);
				return bpf_redirect(skb->ifindex, 0);
			}
		}
	} else if (cfg & SM_CFG_F_FIB) {
		/* Look the outer destination up before growing the packet: an oversize packet is answered
		 * with a PTB built from the packet as the workload sent it. GSO packets are segmented to fit
		 * (adjust_room lowers gso_size), so only a single packet is checked by length. */
		__u16 tot = skb->gso_size ? 0 : (__u16)(hdrs + inner_len);
		fib6_params(&p, skb->ifindex, &pol->src, &pol->segs[0], tot);
		rc = bpf_fib_lookup(skb, &p, sizeof(p), 0);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
			r = too_big(skb, v4, &pol->src, p.mtu_result > hdrs ? p.mtu_result - hdrs : 0);
			if (r)
				return drop(skb, r);
			count(SM_R_PTB);
			return bpf_redirect(skb->ifindex, 0);
		}
	}
	r = dec_hop_limit(skb, v4);
	if (r)
		return drop(skb, r);
	r = srv6_encap(skb, pol, inner_len, v4, 0);
	if (r)
		return drop(skb, r);
	count(reason);
	if (nh)
		return nexthop_redirect(nh);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return fib_redirect(skb, &p, rc);
	count(SM_R_STACK);
	return TC_ACT_OK;
}

static sm_always_inline int wl_ip6(struct __sk_buff *skb, struct sm_endpoint *ep, __u32 cfg)
{
	struct ipv6hdr *ip6 = PKT_AT(skb, L3_OFF, sizeof(struct ipv6hdr));
	if (!ip6)
		return drop(skb, SM_R_DROP_TRUNCATED);
	/* ep->tenant is the key space: the tenant's egress, or a function's return scope. */
	struct sm_policy_key k = {.prefixlen = 32 + 128, .tenant = bpf_htonl(ep->tenant)};
	__builtin_memcpy(&k.dst, &ip6->daddr, 16);
	struct in6 *dst = &k.dst;
	/* Multicast (neighbour discovery, router solicitation) stays with the host. */
	if (dst->a[0] == 0xff)
		return pass();
	/*
	 * Link-local: the host's side of the link. ICMPv6 (neighbour discovery, a ping of the gateway)
	 * goes to the stack; anything else would reach the host's own services that listen on every
	 * address (BGP, gossip, ssh): a host address like any other.
	 */
	if (dst->a[0] == 0xfe && (dst->a[1] & 0xc0) == 0x80) {
		if (ip6->nexthdr == IPPROTO_ICMPV6 || !SM_VALIDATING(cfg))
			return pass();
		return drop(skb, SM_R_DROP_HOSTADDR);
	}
	/* A network function's link carries others' sources: tested only after a mismatch. */
	if (SM_VALIDATING(cfg) && !in6_eq((struct in6 *)&ip6->saddr, &ep->addr6) &&
	    !(ep->flags & SM_EP_F_ANYSRC))
		return drop(skb, SM_R_DROP_SPOOF);
	struct sm_policy *pol = policy_lookup(&k);
	if (SM_VALIDATING(cfg)) {
		int b;
		if (blocked_reason(pol, dst, &b))
			return drop(skb, b);
		/* Any Routing Header from a workload, also behind Hop-by-Hop / Destination Options. */
		__u8 nh = ip6->nexthdr;
		__u32 off = L3_OFF + IP6_HLEN;
		for (int i = 0; i < 4; i++) {
			if (nh == IPPROTO_SRH_RT)
				return drop(skb, SM_R_DROP_WL_SRH);
			if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_DSTOPTS)
				break;
			__u8 ext[2];
			if (bpf_skb_load_bytes(skb, off, ext, 2) < 0)
				return drop(skb, SM_R_DROP_TRUNCATED);
			nh = ext[0];
			off += ((__u32)ext[1] + 1) * 8;
		}
		if (nh == IPPROTO_SRH_RT)
			return drop(skb, SM_R_DROP_WL_SRH);
	}
	__u32 inner_len = IP6_HLEN + bpf_ntohs(ip6->payload_len);
	if (!pol)
		return SM_VALIDATING(cfg) ? drop(skb, SM_R_DROP_NOPOLICY) : pass();
	return wl_apply(skb, pol, inner_len, 0, cfg);
}

static sm_always_inline int wl_ip4(struct __sk_buff *skb, struct sm_endpoint *ep, __u32 cfg)
{
	struct iphdr *hp = PKT_AT(skb, L3_OFF, sizeof(struct iphdr));
	if (!hp)
		return drop(skb, SM_R_DROP_TRUNCATED);
	struct iphdr ip = *hp;
	if (ip.ihl < 5)
		return drop(skb, SM_R_DROP_TRUNCATED);
	__u8 *d = (__u8 *)&ip.daddr;
	if ((d[0] & 0xf0) == 0xe0 || ip.daddr == 0xffffffff)
		return pass();
	if (SM_VALIDATING(cfg) &&
	    (!(ep->flags & SM_EP_F_V4) || __builtin_memcmp(&ip.saddr, ep->addr4, 4) != 0) &&
	    !(ep->flags & SM_EP_F_ANYSRC))
		return drop(skb, SM_R_DROP_SPOOF);
	struct sm_policy_key k = {.prefixlen = 32 + 128, .tenant = bpf_htonl(ep->tenant)};
	v4mapped(&k.dst, ip.daddr);
	struct sm_policy *pol = policy_lookup(&k);
	int b;
	if (SM_VALIDATING(cfg) && blocked_reason(pol, &k.dst, &b))
		return drop(skb, b);
	if (!pol)
		return SM_VALIDATING(cfg) ? drop(skb, SM_R_DROP_NOPOLICY) : pass();
	return wl_apply(skb, pol, bpf_ntohs(ip.tot_len), 1, cfg);
}

SEC("tc")
int wl_in(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ingress_ifindex;
	struct sm_endpoint *ep = bpf_map_lookup_elem(&sm_endpoints, &ifindex);
	if (!ep)
		return pass();
	__u32 cfg = config_flags();
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return wl_ip6(skb, ep, cfg);
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return wl_ip4(skb, ep, cfg);
	return pass(); /* ARP and the rest */
}

/* The sm_policy entry of key space `space` for the inner destination of the packet at `inner_off`. */
static sm_always_inline struct sm_policy *inner_policy(struct __sk_buff *skb, __u32 space, __u32 inner_off,
						       int v4)
{
	struct sm_policy_key k = {.prefixlen = 32 + 128, .tenant = bpf_htonl(space)};
	if (inner_off > 4096)
		return 0;
	if (v4) {
		__be32 *d = PKT_AT(skb, inner_off + offsetof(struct iphdr, daddr), 4);
		if (!d)
			return 0;
		v4mapped(&k.dst, *d);
	} else {
		struct in6 *d = PKT_AT(skb, inner_off + offsetof(struct ipv6hdr, daddr), 16);
		if (!d)
			return 0;
		__builtin_memcpy(&k.dst, d, 16);
	}
	return policy_lookup(&k);
}

/* The entry of the delivery key space for the inner destination, or none: a local workload's (mode
 * local, its MACs: delivered from it), a moved-away workload's (encap: redirected). Only for a SID that
 * decapsulates into the delivery scope. */
static sm_always_inline struct sm_policy *delivery_entry(struct __sk_buff *skb, struct sm_sid *sid,
							 struct srv6_info *si, int v4)
{
	if (!(sid->flags & SM_SID_F_DELIVERY))
		return 0;
	return inner_policy(skb, sid->tenant | SM_TENANT_F_DELIVERY, si->inner_off, v4);
}

/* Length of the inner packet at `inner_off` (0: unreadable). */
static sm_always_inline __u32 inner_length(struct __sk_buff *skb, __u32 inner_off, int v4)
{
	if (v4) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, inner_off, &ip, sizeof(ip)) < 0)
			return 0;
		return bpf_ntohs(ip.tot_len);
	}
	struct ipv6hdr ip6;
	if (bpf_skb_load_bytes(skb, inner_off, &ip6, sizeof(ip6)) < 0)
		return 0;
	return IP6_HLEN + bpf_ntohs(ip6.payload_len);
}

/*
 * Whether the redirect `pol` makes the packet too big for the underlay: its new outer headers can be
 * longer than the ones it came with. Returns the MTU left for the inner packet when it does not fit,
 * else 0.
 */
static __attribute__((noinline)) __u32 redirect_overflow(struct __sk_buff *skb, struct sm_policy *pol,
							  __u32 inner_off, int v4, __u32 cfg)
{
	__u32 reason;
	__u32 nlist = encap_list(pol, &reason);
	__u32 inner_len = inner_length(skb, inner_off, v4);
	if (!(cfg & SM_CFG_F_FIB) || skb->gso_size || nlist > SM_MAX_SEGS || !inner_len || inner_off <= L3_OFF)
		return 0;
	__u32 hdrs = IP6_HLEN + (nlist ? SRH_FIXED + 16 * nlist : 0);
	if (hdrs <= inner_off - L3_OFF)
		return 0;
	/* An agent-resolved next hop: its link's MTU, as wl_in checks it. */
	struct sm_nexthop *nh = nexthop_of(pol, cfg);
	if (nh) {
		__u32 len = hdrs + inner_len;
		if (bpf_check_mtu(skb, nh->oif, &len, 0, 0) != BPF_MTU_CHK_RET_FRAG_NEEDED)
			return 0;
		return len > hdrs + 1280 ? len - hdrs : 1280;
	}
	struct bpf_fib_lookup p;
	fib6_params(&p, skb->ifindex, &pol->src, &pol->segs[0], (__u16)(hdrs + inner_len));
	if (bpf_fib_lookup(skb, &p, sizeof(p), 0) != BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return 0;
	return p.mtu_result > hdrs + 1280 ? p.mtu_result - hdrs : 1280;
}

/*
 * A redirect (of a moved workload, or by the forward scope) that no longer fits the underlay: its
 * sender learns so as from a router on its path. The
 * inner packet is decapsulated and turned into its PTB (from the SID it was sent to, the MTU left for
 * it), which goes where this tenant's packets to its sender go from this host (its egress policy: back
 * to the sender's host or to the edge). Its next packets fit; the encapsulating node's outer packet
 * was never too big, so it is not the one told. The PTB is encapsulated in place (room made without
 * tunnel flags, as ul_redirect does): an skb that arrived marked encapsulated (a BPF encapsulation on
 * a host across a veth) refuses a second encapsulation with them. An IPv4 inner packet is dropped
 * and counted instead (its error would need the skb's protocol changed back).
 */
static __attribute__((noinline)) int ul_redirect_too_big(struct __sk_buff *skb, __u32 inner_off, int v4,
							  struct sm_sid *sid, __u32 mtu)
{
	struct in6 from;
	if (v4)
		return drop(skb, SM_R_DROP_TOOBIG);
	if (bpf_skb_load_bytes(skb, L3_OFF + offsetof(struct ipv6hdr, daddr), &from, 16) < 0)
		return drop(skb, SM_R_DROP_TRUNCATED);
	int r = srv6_decap(skb, inner_off, 0);
	if (!r)
		r = send_ptb6(skb, &from, mtu);
	if (r)
		return drop(skb, r);
	struct sm_policy_key k = {.prefixlen = 32 + 128, .tenant = bpf_htonl(sid->tenant)};
	if (bpf_skb_load_bytes(skb, L3_OFF + offsetof(struct ipv6hdr, daddr), &k.dst, 16) < 0)
		return drop(skb, SM_R_DROP_TRUNCATED);
	struct sm_policy *back = policy_lookup(&k);
	if (!back || (back->mode != SM_MODE_ENCAP && back->mode != SM_MODE_ENCAP_RED))
		return drop(skb, SM_R_DROP_TOOBIG);
	__u32 len = skb->len - L3_OFF;
	if (bpf_skb_adjust_room(skb, IP6_HLEN, BPF_ADJ_ROOM_MAC, 0) < 0)
		return drop(skb, SM_R_DROP_ERROR);
	r = srv6_encap(skb, back, len, 0, IP6_HLEN);
	if (r)
		return drop(skb, r);
	count(SM_R_PTB);
	return forward_main6(skb, config_flags());
}

/* Re-encapsulate the packet that came in for End.DT* toward a moved workload's new host, or by the
 * forward scope (`reason` counts which): the outer headers in front of the inner packet at `inner_off`
 * are replaced in place (the inner hop limit - 1, as a decapsulation would), then the outer packet goes
 * to the policy's agent-resolved next hop, or else is forwarded like End's, in the main table. Not on the common paths: it reads the config itself (a
 * BPF call takes five arguments). */
static __attribute__((noinline)) int ul_redirect(struct __sk_buff *skb, struct sm_policy *pol, __u32 inner_off,
						 int v4, __u32 reason)
{
	__u32 inner_len = inner_length(skb, inner_off, v4);
	if (!inner_len || inner_off <= L3_OFF || skb->len < inner_off + inner_len)
		return drop(skb, SM_R_DROP_TRUNCATED);
	int r = dec_hop_limit_at(skb, inner_off, v4);
	if (!r)
		r = srv6_encap(skb, pol, inner_len, v4, inner_off - L3_OFF);
	if (r)
		return drop(skb, r);
	count(reason);
	__u32 cfg = config_flags();
	struct sm_nexthop *nh = nexthop_of(pol, cfg);
	if (nh)
		return nexthop_redirect(nh);
	return forward_main6(skb, cfg);
}

/*
 * End.DT* of a forward SID (edge aggregate mode): the tenant's forward scope is all in sm_policy, as its
 * egress is (a split between the map and a FIB table would lose longest-prefix order: the edge's default
 * route would win over a local workload's /128). Local (here): decapsulate, deliver to the workload's
 * veth; encap: re-encapsulated in place by ul_decap, as a moved workload's redirect is; drop or no
 * entry: dropped.
 */
static __attribute__((noinline)) int ul_forward_local(struct __sk_buff *skb, struct sm_policy *pol,
						      struct srv6_info *si, int v4)
{
	int r = srv6_decap(skb, si->inner_off, v4);
	if (!r)
		r = dec_hop_limit(skb, v4);
	if (r)
		return drop(skb, r);
	if (set_macs(skb, pol->dmac, pol->smac) < 0)
		return drop(skb, SM_R_DROP_ERROR);
	count(v4 ? SM_R_DT4 : SM_R_DT6);
	count(SM_R_LOCAL);
	return bpf_redirect(pol->oif, 0);
}

/* End.DT4 / DT6 / DT46 / DX4 / DX6: decapsulate, then deliver (or redirect toward a moved workload, or
 * by the forward scope). */
static __attribute__((noinline)) int ul_decap(struct __sk_buff *skb, struct sm_sid *sid, struct srv6_info *si)
{
	if (si->present && si->sl != 0)
		return drop(skb, SM_R_DROP_SL_NONZERO);
	__u8 b = sid->behavior;
	int v4;
	if (si->nexthdr == IPPROTO_IPV6 && (b == SM_END_DT6 || b == SM_END_DT46 || b == SM_END_DX6))
		v4 = 0;
	else if (si->nexthdr == IPPROTO_IPIP && (b == SM_END_DT4 || b == SM_END_DT46 || b == SM_END_DX4))
		v4 = 1;
	else
		return drop(skb, SM_R_DROP_INNER);
	if (skb->len < si->inner_off + (v4 ? sizeof(struct iphdr) : IP6_HLEN))
		return drop(skb, SM_R_DROP_TRUNCATED);
	struct sm_policy *mv;
	__u32 reason = SM_R_REDIRECT_MOVE;
	if (sid->flags & SM_SID_F_FORWARD) {
		mv = inner_policy(skb, sid->tenant | SM_TENANT_F_FORWARD, si->inner_off, v4);
		if (!mv)
			return drop(skb, SM_R_DROP_NOPOLICY);
		if (mv->mode == SM_MODE_LOCAL)
			return ul_forward_local(skb, mv, si, v4);
		if (mv->mode != SM_MODE_ENCAP && mv->mode != SM_MODE_ENCAP_RED)
			return drop(skb, SM_R_DROP_POLICY);
		reason = SM_R_FORWARD;
	} else {
		mv = delivery_entry(skb, sid, si, v4);
		/* A local workload: the one lookup answers its delivery, no FIB lookup (its route in the
		 * tenant's table stays, for a miss here and for the stack). */
		if (mv && mv->mode == SM_MODE_LOCAL && b != SM_END_DX6 && b != SM_END_DX4)
			return ul_forward_local(skb, mv, si, v4);
		if (mv && mv->mode != SM_MODE_ENCAP && mv->mode != SM_MODE_ENCAP_RED)
			mv = 0; /* anything else: the tenant's table decides, as before */
	}
	if (mv) {
		/* Decided before the packet changes: a redirect back to one of this host's SIDs would loop. */
		if (bpf_map_lookup_elem(&sm_sids, &mv->segs[0]))
			return drop(skb, SM_R_DROP_REDIRECT_LOOP);
		__u32 mtu = redirect_overflow(skb, mv, si->inner_off, v4, config_flags());
		if (mtu)
			return ul_redirect_too_big(skb, si->inner_off, v4, sid, mtu);
		return ul_redirect(skb, mv, si->inner_off, v4, reason);
	}
	int r = srv6_decap(skb, si->inner_off, v4);
	if (!r)
		r = dec_hop_limit(skb, v4);
	if (r)
		return drop(skb, r);
	if (b == SM_END_DX6 || b == SM_END_DX4) {
		count(v4 ? SM_R_DX4 : SM_R_DX6);
		struct bpf_redir_neigh nh = {};
		const __u64 *w = (const __u64 *)&sid->nexthop;
		if (!w[0] && !w[1])
			return bpf_redirect_neigh(sid->oif, 0, 0, 0); /* the inner destination is on-link */
		if (v4) {
			nh.nh_family = AF_INET;
			__builtin_memcpy(&nh.ipv4_nh, &sid->nexthop, 4);
		} else {
			nh.nh_family = AF_INET6;
			__builtin_memcpy(nh.ipv6_nh, &sid->nexthop, 16);
		}
		return bpf_redirect_neigh(sid->oif, &nh, sizeof(nh), 0);
	}
	count(v4 ? SM_R_DT4 : SM_R_DT6);
	return forward_table(skb, sid->table, v4);
}

/* End / End.X: the next segment becomes the destination. Returns 0 or a drop reason. */
static __attribute__((noinline)) int ul_end(struct __sk_buff *skb, struct srv6_info *si)
{
	if (!si->present)
		return SM_R_DROP_SRH_TYPE;
	if (si->sl == 0)
		return SM_R_DROP_SL_ZERO;
	__u8 sl = si->sl - 1;
	/* parse_srv6 checked that entry `sl` (<= Last Entry) lies inside the header. */
	__u32 at = L3_OFF + IP6_HLEN + SRH_FIXED + 16 * (__u32)sl;
	if (pkt_linear(skb, at + 16))
		return SM_R_DROP_TRUNCATED;
	void *data = pkt_data(skb);
	void *end = pkt_end(skb);
	struct ipv6hdr *ip6 = data + L3_OFF;
	__u8 *srh = data + L3_OFF + IP6_HLEN;
	__u8 *next = data + at;
	if ((void *)(srh + SRH_FIXED) > end || (void *)(next + 16) > end)
		return SM_R_DROP_TRUNCATED;
	if (ip6->hop_limit <= 1)
		return SM_R_DROP_HOPLIMIT;
	ip6->hop_limit--;
	srh[3] = sl;
	*(struct in6 *)&ip6->daddr = *(struct in6 *)next;
	return 0;
}

SEC("tc")
int ul_in(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return pass();
	__u32 cfg = config_flags();
	struct ipv6hdr *ip6 = PKT_AT(skb, L3_OFF, sizeof(struct ipv6hdr));
	if (!ip6)
		return pass();
	struct in6 da, sa;
	__builtin_memcpy(&sa, &ip6->saddr, 16);
	__builtin_memcpy(&da, &ip6->daddr, 16);
	struct sm_sid *sid = bpf_map_lookup_elem(&sm_sids, &da);
	if (!sid)
		return pass();
	if (SM_TRUSTING(cfg)) {
		struct sm_addr_key k = {.prefixlen = 128};
		__builtin_memcpy(&k.addr, &sa, 16);
		if (!bpf_map_lookup_elem(&sm_trusted, &k))
			return drop(skb, SM_R_DROP_UNTRUSTED_SRC);
	}
	/* Up to SM_MAX_LOCAL_SIDS local SIDs in a row (End, End, End.DT6) in one pass. */
	for (int i = 0; i < SM_MAX_LOCAL_SIDS; i++) {
		count_sid(sid, skb->len);
		struct srv6_info si = {};
		int r = parse_srv6(skb, &si);
		if (r)
			return drop(skb, r);
		__u8 b = sid->behavior;
		if (b != SM_END && b != SM_END_X)
			return ul_decap(skb, sid, &si);
		r = ul_end(skb, &si);
		if (r)
			return drop(skb, r);
		if (b == SM_END_X) {
			count(SM_R_END_X);
			struct bpf_redir_neigh nh = {.nh_family = AF_INET6};
			__builtin_memcpy(nh.ipv6_nh, &sid->nexthop, 16);
			return bpf_redirect_neigh(sid->oif, &nh, sizeof(nh), 0);
		}
		count(SM_R_END);
		struct in6 *d = PKT_AT(skb, L3_OFF + offsetof(struct ipv6hdr, daddr), 16);
		if (!d)
			return drop(skb, SM_R_DROP_ERROR);
		__builtin_memcpy(&da, d, 16);
		sid = bpf_map_lookup_elem(&sm_sids, &da);
		if (!sid)
			break;
	}
	return forward_main6(skb, cfg);
}
