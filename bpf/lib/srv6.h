/* SPDX-License-Identifier: Apache-2.0 */
/* SRv6 headers: build (H.Encaps, H.Encaps.Red) and parse with bounds (ul_in). */
#ifndef SEGMESH_SRV6_H
#define SEGMESH_SRV6_H

#include "maps.h"
#include "pkt.h"

struct srh_fixed {
	__u8 nexthdr;
	__u8 hdrlen;        /* in 8-byte units, not counting the first 8 bytes */
	__u8 type;
	__u8 segments_left;
	__u8 last_entry;
	__u8 flags;
	__u16 tag;
};

/* What parse_srv6 found after the outer IPv6 header. */
struct srv6_info {
	__u32 inner_off; /* offset of the inner packet (after the SRH, if any) */
	__u32 srh_len;
	__u8 present;
	__u8 nexthdr;    /* the inner protocol */
	__u8 sl;
	__u8 le;
};

static sm_always_inline int in6_eq(const struct in6 *a, const struct in6 *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return x[0] == y[0] && x[1] == y[1];
}

/* Decrement the hop limit / TTL of the IP header at `off`: we forward past the stack's ip6_forward. */
static sm_always_inline int dec_hop_limit_at(struct __sk_buff *skb, __u32 off, int v4)
{
	if (!v4) {
		__u8 h;
		if (bpf_skb_load_bytes(skb, off + 7, &h, 1) < 0)
			return SM_R_DROP_ERROR;
		if (h <= 1)
			return SM_R_DROP_HOPLIMIT;
		h--;
		if (bpf_skb_store_bytes(skb, off + 7, &h, 1, 0) < 0)
			return SM_R_DROP_ERROR;
		return 0;
	}
	__u16 old, new;
	if (bpf_skb_load_bytes(skb, off + 8, &old, 2) < 0)
		return SM_R_DROP_ERROR;
	__u8 *b = (__u8 *)&new;
	new = old;
	if (b[0] <= 1)
		return SM_R_DROP_HOPLIMIT;
	b[0]--;
	if (bpf_l3_csum_replace(skb, off + 10, old, new, 2) < 0 ||
	    bpf_skb_store_bytes(skb, off + 8, &new, 2, 0) < 0)
		return SM_R_DROP_ERROR;
	return 0;
}

/* csum_replace2 (include/net/checksum.h) of a 16-bit word: the bytes bpf_l3_csum_replace would write. */
static sm_always_inline __u16 csum16_replace(__u16 check, __u16 old, __u16 new)
{
	__u32 s = (__u16)~check;
	s += (__u16)~old;
	s = (s & 0xffff) + (s >> 16);
	s += new;
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* dec_hop_limit_at(L3_OFF) of the hot paths, by direct packet access. */
static sm_always_inline int dec_hop_limit(struct __sk_buff *skb, int v4)
{
	if (!v4) {
		struct ipv6hdr *ip6 = PKT_AT(skb, L3_OFF, sizeof(struct ipv6hdr));
		if (!ip6)
			return SM_R_DROP_ERROR;
		if (ip6->hop_limit <= 1)
			return SM_R_DROP_HOPLIMIT;
		ip6->hop_limit--;
		return 0;
	}
	struct iphdr *ip = PKT_AT(skb, L3_OFF, sizeof(struct iphdr));
	if (!ip)
		return SM_R_DROP_ERROR;
	if (ip->ttl <= 1)
		return SM_R_DROP_HOPLIMIT;
	__u16 *w = (__u16 *)&ip->ttl; /* TTL and protocol: the 16-bit word the checksum sums */
	__u16 old = *w;
	ip->ttl--;
	ip->check = csum16_replace(ip->check, old, *w);
	return 0;
}

/* How many SRH entries an encap policy writes (0: no SRH) and the counter slot; > SM_MAX_SEGS: the
 * policy cannot be applied. */
static sm_always_inline __u32 encap_list(struct sm_policy *pol, __u32 *reason)
{
	__u32 n = pol->nsegs;
	if (n == 0 || n > SM_MAX_SEGS)
		return SM_MAX_SEGS + 1;
	if (n == 1 && !(pol->flags & SM_POL_F_SRH)) {
		*reason = SM_R_ENCAP_NOSRH;
		return 0;
	}
	if (pol->mode == SM_MODE_ENCAP_RED && n > 1) {
		*reason = SM_R_ENCAP_RED;
		return n - 1;
	}
	*reason = SM_R_ENCAP;
	return n;
}

/*
 * Check the headers of an SRv6 packet to a local SID. Everything the SRH claims is checked against
 * the packet before any segment is read: a malformed header is a drop reason, never a read past it.
 * Returns 0 or the drop reason.
 */
static __attribute__((noinline)) int parse_srv6(struct __sk_buff *skb, struct srv6_info *si)
{
	struct ipv6hdr *ip6 = PKT_AT(skb, L3_OFF, sizeof(struct ipv6hdr));
	if (!ip6)
		return SM_R_DROP_TRUNCATED;
	__u32 l3_len = IP6_HLEN + bpf_ntohs(ip6->payload_len);
	__u8 nexthdr = ip6->nexthdr;
	if (skb->len < L3_OFF + l3_len)
		return SM_R_DROP_TRUNCATED;
	si->present = 0;
	si->srh_len = 0;
	si->sl = 0;
	si->le = 0;
	if (nexthdr != IPPROTO_SRH_RT) {
		si->nexthdr = nexthdr;
		si->inner_off = L3_OFF + IP6_HLEN;
		return 0;
	}
	if (l3_len < IP6_HLEN + SRH_FIXED)
		return SM_R_DROP_TRUNCATED;
	struct srh_fixed *srh = PKT_AT(skb, L3_OFF + IP6_HLEN, sizeof(struct srh_fixed));
	if (!srh)
		return SM_R_DROP_TRUNCATED;
	if (srh->type != SRH_TYPE)
		return SM_R_DROP_SRH_TYPE;
	__u32 len = ((__u32)srh->hdrlen + 1) * 8;
	if (IP6_HLEN + len > l3_len)
		return SM_R_DROP_SRH_LEN; /* the header runs past the packet */
	if (SRH_FIXED + 16 * ((__u32)srh->last_entry + 1) > len)
		return SM_R_DROP_SRH_LEN; /* the segment list runs past the header */
	/* SL = LE + 1 is legal: a reduced SRH (H.Encaps.Red) leaves the first segment out. */
	if ((__u32)srh->segments_left > (__u32)srh->last_entry + 1)
		return SM_R_DROP_SRH_SL;
	si->present = 1;
	si->srh_len = len;
	si->sl = srh->segments_left;
	si->le = srh->last_entry;
	si->nexthdr = srh->nexthdr;
	si->inner_off = L3_OFF + IP6_HLEN + len;
	return 0;
}

/*
 * H.Encaps / H.Encaps.Red of the IP packet of `inner_len` bytes at L3_OFF + `old`: outer IPv6 from the
 * policy, SRH as encap_list says (none for a single segment without the SRH flag), both written in
 * place after the resize. `old` = 0: a fresh encapsulation. `old` > 0: the outer IPv6 header (and
 * SRH) already in front of the inner packet are replaced in place (a redirect after End.DT*): one
 * resize by the difference, no decapsulation, so the skb's tunnel offload state stays consistent (a
 * second encapsulation of an skb marked encapsulated is refused by bpf_skb_adjust_room).
 * Returns 0 or a drop reason.
 */
static __attribute__((noinline)) int srv6_encap(struct __sk_buff *skb, struct sm_policy *pol, __u32 inner_len,
						int v4, __u32 old)
{
	__u32 n = pol->nsegs;
	__u32 reason;
	__u32 nlist = encap_list(pol, &reason);
	if (n == 0 || n > SM_MAX_SEGS || nlist > n || old > 4096)
		return SM_R_DROP_POLICY;
	__u32 srh_len = nlist ? SRH_FIXED + 16 * nlist : 0;
	__u8 inner_proto = v4 ? IPPROTO_IPIP : IPPROTO_IPV6;

	/* The outer header inherits the inner traffic class and flow label (RFC 2473 / 6437). */
	__u8 *f = PKT_AT(skb, L3_OFF + old, 4);
	if (!f)
		return SM_R_DROP_ERROR;
	__u8 first[4];
	if (v4) {
		__u8 tos = f[1];
		first[0] = 0x60 | (tos >> 4);
		first[1] = (tos & 0x0f) << 4;
		first[2] = 0;
		first[3] = 0;
	} else {
		__builtin_memcpy(first, f, 4);
	}

	if (old) {
		/* Room at L3_OFF grows or shrinks; the inner packet stays where it is in the buffer. */
		__s32 diff = (__s32)(IP6_HLEN + srh_len) - (__s32)old;
		if (diff && bpf_skb_adjust_room(skb, diff, BPF_ADJ_ROOM_MAC, 0) < 0)
			return SM_R_DROP_ERROR;
	} else if (bpf_skb_adjust_room(skb, IP6_HLEN + srh_len, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV6) < 0) {
		return SM_R_DROP_ERROR;
	}
	/* The new headers, written in place: their room is made linear (pulled when it is not). */
	if (pkt_linear(skb, L3_OFF + IP6_HLEN + srh_len))
		return SM_R_DROP_ERROR;
	void *data = pkt_data(skb);
	void *end = pkt_end(skb);
	struct ipv6hdr *o = data + L3_OFF;
	if ((void *)(o + 1) > end)
		return SM_R_DROP_ERROR;
	if (v4 && !old)
		((struct ethhdr *)data)->h_proto = bpf_htons(ETH_P_IPV6);
	__builtin_memcpy(o, first, 4);
	o->payload_len = bpf_htons(inner_len + srh_len);
	o->nexthdr = nlist ? IPPROTO_SRH_RT : inner_proto;
	o->hop_limit = 64;
	__builtin_memcpy(&o->saddr, &pol->src, 16);
	__builtin_memcpy(&o->daddr, &pol->segs[0], 16);
	if (!nlist)
		return 0;
	__u8 *h = data + L3_OFF + IP6_HLEN;
	if ((void *)(h + SRH_FIXED) > end)
		return SM_R_DROP_ERROR;
	h[0] = inner_proto;
	h[1] = 2 * nlist;
	h[2] = SRH_TYPE;
	h[3] = n - 1;     /* Segments Left: segs[0] is already the destination */
	h[4] = nlist - 1; /* Last Entry */
	h[5] = 0;
	h[6] = 0;
	h[7] = 0;
	/* Segment List[i] = segs[n-1-i]: the SRH lists the path backwards. The pull above covered the
	 * whole header, so these checks only satisfy the verifier. */
#pragma unroll
	for (__u32 i = 0; i < SM_MAX_SEGS; i++) {
		if (i >= nlist)
			break;
		__u8 *seg = data + L3_OFF + IP6_HLEN + SRH_FIXED + 16 * i;
		if ((void *)(seg + 16) > end)
			return SM_R_DROP_ERROR;
		__u32 j = (n - 1 - i) & (SM_MAX_SEGS - 1);
		*(struct in6 *)seg = pol->segs[j];
	}
	return 0;
}

/* Remove the outer IPv6 header and SRH in front of `inner_off`; the Ethernet type follows the inner. */
static sm_always_inline int srv6_decap(struct __sk_buff *skb, __u32 inner_off, int v4)
{
	__u64 flags = v4 ? BPF_F_ADJ_ROOM_DECAP_L3_IPV4 : BPF_F_ADJ_ROOM_DECAP_L3_IPV6;
	__s32 diff = -(__s32)(inner_off - L3_OFF);
	if (bpf_skb_adjust_room(skb, diff, BPF_ADJ_ROOM_MAC, flags) < 0)
		return SM_R_DROP_ERROR;
	if (v4) {
		struct ethhdr *e = PKT_AT(skb, 0, sizeof(struct ethhdr));
		if (!e)
			return SM_R_DROP_ERROR;
		e->h_proto = bpf_htons(ETH_P_IP);
	}
	return 0;
}

#endif
