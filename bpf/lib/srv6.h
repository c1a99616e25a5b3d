/* SPDX-License-Identifier: Apache-2.0 */
/* SRv6 headers: build (H.Encaps, H.Encaps.Red) and parse with bounds (ul_in). */
#ifndef SEGMESH_SRV6_H
#define SEGMESH_SRV6_H

#include "maps.h"

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

static sm_always_inline int dec_hop_limit(struct __sk_buff *skb, int v4)
{
	return dec_hop_limit_at(skb, L3_OFF, v4);
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
	struct ipv6hdr ip6;
	if (bpf_skb_load_bytes(skb, L3_OFF, &ip6, sizeof(ip6)) < 0)
		return SM_R_DROP_TRUNCATED;
	__u32 l3_len = IP6_HLEN + bpf_ntohs(ip6.payload_len);
	if (skb->len < L3_OFF + l3_len)
		return SM_R_DROP_TRUNCATED;
	si->present = 0;
	si->srh_len = 0;
	si->sl = 0;
	si->le = 0;
	if (ip6.nexthdr != IPPROTO_SRH_RT) {
		si->nexthdr = ip6.nexthdr;
		si->inner_off = L3_OFF + IP6_HLEN;
		return 0;
	}
	if (l3_len < IP6_HLEN + SRH_FIXED)
		return SM_R_DROP_TRUNCATED;
	struct srh_fixed srh;
	if (bpf_skb_load_bytes(skb, L3_OFF + IP6_HLEN, &srh, sizeof(srh)) < 0)
		return SM_R_DROP_TRUNCATED;
	if (srh.type != SRH_TYPE)
		return SM_R_DROP_SRH_TYPE;
	__u32 len = ((__u32)srh.hdrlen + 1) * 8;
	if (IP6_HLEN + len > l3_len)
		return SM_R_DROP_SRH_LEN; /* the header runs past the packet */
	if (SRH_FIXED + 16 * ((__u32)srh.last_entry + 1) > len)
		return SM_R_DROP_SRH_LEN; /* the segment list runs past the header */
	/* SL = LE + 1 is legal: a reduced SRH (H.Encaps.Red) leaves the first segment out. */
	if ((__u32)srh.segments_left > (__u32)srh.last_entry + 1)
		return SM_R_DROP_SRH_SL;
	si->present = 1;
	si->srh_len = len;
	si->sl = srh.segments_left;
	si->le = srh.last_entry;
	si->nexthdr = srh.nexthdr;
	si->inner_off = L3_OFF + IP6_HLEN + len;
	return 0;
}

/*
 * H.Encaps / H.Encaps.Red of the IP packet of `inner_len` bytes at L3_OFF + `old`: outer IPv6 from the
 * policy, SRH as encap_list says (none for a single segment without the SRH flag). The SRH is built in
 * the per-CPU scratch buffer. `old` = 0: a fresh encapsulation. `old` > 0: the outer IPv6 header (and
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
	if (n == 0 || n > SM_MAX_SEGS || nlist > n)
		return SM_R_DROP_POLICY;
	__u32 srh_len = nlist ? SRH_FIXED + 16 * nlist : 0;
	__u8 inner_proto = v4 ? IPPROTO_IPIP : IPPROTO_IPV6;

	/* The outer header inherits the inner traffic class and flow label (RFC 2473 / 6437). */
	struct ipv6hdr outer;
	__u8 first[4];
	if (bpf_skb_load_bytes(skb, L3_OFF + old, first, 4) < 0)
		return SM_R_DROP_ERROR;
	__builtin_memset(&outer, 0, sizeof(outer));
	__u8 *o = (__u8 *)&outer;
	if (v4) {
		__u8 tos = first[1];
		o[0] = 0x60 | (tos >> 4);
		o[1] = (tos & 0x0f) << 4;
	} else {
		o[0] = first[0];
		o[1] = first[1];
		o[2] = first[2];
		o[3] = first[3];
	}
	outer.payload_len = bpf_htons(inner_len + srh_len);
	outer.nexthdr = nlist ? IPPROTO_SRH_RT : inner_proto;
	outer.hop_limit = 64;
	__builtin_memcpy(&outer.saddr, &pol->src, 16);
	__builtin_memcpy(&outer.daddr, &pol->segs[0], 16);

	__u32 zero = 0;
	struct sm_scratch *s = bpf_map_lookup_elem(&sm_scratch, &zero);
	if (!s)
		return SM_R_DROP_ERROR;
	if (nlist) {
		s->b[0] = inner_proto;
		s->b[1] = 2 * nlist;
		s->b[2] = SRH_TYPE;
		s->b[3] = n - 1;     /* Segments Left: segs[0] is already the destination */
		s->b[4] = nlist - 1; /* Last Entry */
		s->b[5] = 0;
		s->b[6] = 0;
		s->b[7] = 0;
		/* Segment List[i] = segs[n-1-i]: the SRH lists the path backwards. */
		for (__u32 i = 0; i < SM_MAX_SEGS; i++) {
			if (i >= nlist)
				break;
			__u32 j = (n - 1 - i) & (SM_MAX_SEGS - 1);
			__builtin_memcpy(&s->b[8 + 16 * i], &pol->segs[j], 16);
		}
	}

	if (old) {
		/* Room at L3_OFF grows or shrinks; the inner packet stays where it is in the buffer. */
		__s32 diff = (__s32)(IP6_HLEN + srh_len) - (__s32)old;
		if (diff && bpf_skb_adjust_room(skb, diff, BPF_ADJ_ROOM_MAC, 0) < 0)
			return SM_R_DROP_ERROR;
	} else if (bpf_skb_adjust_room(skb, IP6_HLEN + srh_len, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV6) < 0) {
		return SM_R_DROP_ERROR;
	}
	if (v4 && !old) {
		__be16 p = bpf_htons(ETH_P_IPV6);
		if (bpf_skb_store_bytes(skb, 12, &p, 2, 0) < 0)
			return SM_R_DROP_ERROR;
	}
	if (bpf_skb_store_bytes(skb, L3_OFF, &outer, sizeof(outer), 0) < 0)
		return SM_R_DROP_ERROR;
	if (nlist) {
		if (srh_len > SM_SCRATCH)
			return SM_R_DROP_ERROR;
		if (bpf_skb_store_bytes(skb, L3_OFF + IP6_HLEN, s->b, srh_len, 0) < 0)
			return SM_R_DROP_ERROR;
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
		__be16 p = bpf_htons(ETH_P_IP);
		if (bpf_skb_store_bytes(skb, 12, &p, 2, 0) < 0)
			return SM_R_DROP_ERROR;
	}
	return 0;
}

#endif
