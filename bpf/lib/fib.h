/* SPDX-License-Identifier: Apache-2.0 */
/* Forwarding past the stack: bpf_fib_lookup, then bpf_redirect with the MACs or bpf_redirect_neigh. */
#ifndef SEGMESH_FIB_H
#define SEGMESH_FIB_H

#include "maps.h"
#include "pkt.h"

static sm_always_inline void fib6_params(struct bpf_fib_lookup *p, __u32 ifindex, const struct in6 *src,
					 const struct in6 *dst, __u16 tot_len)
{
	__builtin_memset(p, 0, sizeof(*p));
	p->family = AF_INET6;
	p->ifindex = ifindex;
	p->tot_len = tot_len;
	__builtin_memcpy(p->ipv6_src, src, 16);
	__builtin_memcpy(p->ipv6_dst, dst, 16);
}

/* Rewrite the Ethernet addresses in place; 0 or < 0 (the packet has no Ethernet header). */
static sm_always_inline int set_macs(struct __sk_buff *skb, const __u8 *dmac, const __u8 *smac)
{
	struct ethhdr *e = PKT_AT(skb, 0, sizeof(struct ethhdr));
	if (!e)
		return -1;
	/* 16-bit moves: every MAC this is given (map values, bpf_fib_lookup's) is 2-byte aligned. */
	__u16 *d = (__u16 *)e->h_dest, *s = (__u16 *)e->h_source;
	const __u16 *dm = (const __u16 *)dmac, *sm = (const __u16 *)smac;
	d[0] = dm[0];
	d[1] = dm[1];
	d[2] = dm[2];
	s[0] = sm[0];
	s[1] = sm[1];
	s[2] = sm[2];
	return 0;
}

/* After a lookup answered SUCCESS or NO_NEIGH: rewrite the MACs and redirect. */
static sm_always_inline int fib_redirect(struct __sk_buff *skb, struct bpf_fib_lookup *p, int rc)
{
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (set_macs(skb, p->dmac, p->smac) < 0) {
			count(SM_R_DROP_ERROR);
			return TC_ACT_SHOT;
		}
		count(SM_R_REDIRECT);
		return bpf_redirect(p->ifindex, 0);
	}
	/* NO_NEIGH: the kernel resolves the next hop the lookup found and queues the packet meanwhile. */
	struct bpf_redir_neigh nh = {};
	nh.nh_family = p->family;
	if (p->family == AF_INET6)
		__builtin_memcpy(nh.ipv6_nh, p->ipv6_dst, 16);
	else
		nh.ipv4_nh = p->ipv4_dst;
	count(SM_R_REDIRECT);
	return bpf_redirect_neigh(p->ifindex, &nh, sizeof(nh), 0);
}

/* The agent-resolved next hop of an encap policy's first segment (its slot in sm_nexthops), or none:
 * no slot, an empty one, or FIB forwarding off (the stack then routes, as before). */
static sm_always_inline struct sm_nexthop *nexthop_of(const struct sm_policy *pol, __u32 cfg)
{
	__u32 slot = pol->oif;
	if (!slot || !(cfg & SM_CFG_F_FIB))
		return 0;
	struct sm_nexthop *nh = bpf_map_lookup_elem(&sm_nexthops, &slot);
	return nh && nh->oif ? nh : 0;
}

/* To an agent-resolved next hop: the kernel resolves its neighbour (queued meanwhile, as after a
 * lookup's NO_NEIGH) and writes the MACs. */
static sm_always_inline int nexthop_redirect(const struct sm_nexthop *nh)
{
	struct bpf_redir_neigh n = {.nh_family = AF_INET6};
	__builtin_memcpy(n.ipv6_nh, &nh->via, 16);
	count(SM_R_REDIRECT_NH);
	return bpf_redirect_neigh(nh->oif, &n, sizeof(n), 0);
}

/*
 * Forward a packet whose outer IPv6 header (at L3_OFF) is final, in the main table. With SM_CFG_F_FIB
 * off, or when the lookup cannot decide (local destination, no route), the stack takes it: it owns
 * ICMP errors and the cases this program does not.
 */
static __attribute__((noinline)) int forward_main6(struct __sk_buff *skb, __u32 cfg)
{
	if (!(cfg & SM_CFG_F_FIB)) {
		count(SM_R_STACK);
		return TC_ACT_OK;
	}
	struct ipv6hdr *ip6 = PKT_AT(skb, L3_OFF, sizeof(struct ipv6hdr));
	if (!ip6) {
		count(SM_R_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	struct bpf_fib_lookup p;
	fib6_params(&p, skb->ifindex, (struct in6 *)&ip6->saddr, (struct in6 *)&ip6->daddr, 0);
	int rc = bpf_fib_lookup(skb, &p, sizeof(p), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return fib_redirect(skb, &p, rc);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		count(SM_R_DROP_TOOBIG);
		return TC_ACT_SHOT;
	}
	count(SM_R_STACK);
	return TC_ACT_OK;
}

/* Deliver a decapsulated packet through a tenant's table (End.DT*): a miss drops, never the main table. */
static __attribute__((noinline)) int forward_table(struct __sk_buff *skb, __u32 table, int v4)
{
	struct bpf_fib_lookup p;
	__builtin_memset(&p, 0, sizeof(p));
	p.ifindex = skb->ifindex;
	p.tbid = table;
	if (v4) {
		struct iphdr *ip = PKT_AT(skb, L3_OFF, sizeof(struct iphdr));
		if (!ip)
			goto err;
		p.family = AF_INET;
		p.tos = ip->tos;
		p.l4_protocol = ip->protocol;
		p.ipv4_src = ip->saddr;
		p.ipv4_dst = ip->daddr;
	} else {
		struct ipv6hdr *ip6 = PKT_AT(skb, L3_OFF, sizeof(struct ipv6hdr));
		if (!ip6)
			goto err;
		p.family = AF_INET6;
		p.l4_protocol = ip6->nexthdr;
		__builtin_memcpy(p.ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(p.ipv6_dst, &ip6->daddr, 16);
	}
	/* tot_len stays 0: the helper then checks the skb itself against the egress MTU, which knows GSO
	 * (a header's length field would be a GSO super-packet's and never fit). */
	int rc = bpf_fib_lookup(skb, &p, sizeof(p), BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return fib_redirect(skb, &p, rc);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		count(SM_R_DROP_TOOBIG);
		return TC_ACT_SHOT;
	}
	count(SM_R_DROP_FIB);
	return TC_ACT_SHOT;
err:
	count(SM_R_DROP_ERROR);
	return TC_ACT_SHOT;
}

#endif
