/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ICMP errors built in BPF: IPv6 Packet Too Big (RFC 4443 §3.2) and IPv4 Fragmentation Needed (RFC 1191)
 * when the workload's packet would not fit the underlay after encapsulation. A router owes its sender
 * this message, and redirecting past ip6_forward skips the kernel's own. The packet is turned into the
 * error in place; the caller sends it back out of the veth it came in on (or, for a delivery redirect
 * that no longer fits, through the tenant's policy toward the sender's host).
 */
#ifndef SEGMESH_ICMP6_H
#define SEGMESH_ICMP6_H

#include "maps.h"

#define PTB_HDRS (IP6_HLEN + 8)
#define PTB_QUOTE_MAX (1280 - PTB_HDRS) /* the whole PTB fits the IPv6 minimum MTU */

struct pseudo6 {
	struct in6 src;
	struct in6 dst;
	__be32 len;
	__u8 zero[3];
	__u8 nexthdr;
};

/* Checksum of the bytes from `off` to the end of the packet (`len` bytes, a multiple of 4), seeded. */
static sm_always_inline __s64 csum_tail(struct __sk_buff *skb, __u32 off, __u32 len, __s64 sum, __u32 max_chunks)
{
	__u32 zero = 0;
	struct sm_scratch *s = bpf_map_lookup_elem(&sm_scratch, &zero);
	if (!s)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (len == 0 || i >= max_chunks)
			break;
		__u32 n = len > 252 ? 252 : len;
		n &= 0xfc;
		if (n == 0)
			break;
		if (bpf_skb_load_bytes(skb, off, s->b, n) < 0)
			return -1;
		sum = bpf_csum_diff(0, 0, (__be32 *)s->b, n, (__u32)sum);
		off += n;
		len -= n;
	}
	return sum;
}

/*
 * Leaves the first `quoted` bytes of the packet at L3_OFF (a multiple of 4, at most PTB_QUOTE_MAX) behind
 * `hdrs` bytes of room for the error's headers. The tail is cut with bpf_skb_change_tail, which the
 * kernel refuses on an skb marked encapsulated (-ENOTSUPP: one that a BPF encapsulation on another host
 * sent across a veth, then decapsulated here); then the quote is moved to the end of the packet in
 * scratch-sized chunks, last chunk first (the destination lies above the source), and the bytes before
 * it are removed from the head instead. Returns 0 or a drop reason.
 */
static sm_always_inline int quote_room(struct __sk_buff *skb, __u32 quoted, __u32 hdrs)
{
	__u32 len = skb->len - L3_OFF;
	if (quoted > len || quoted > PTB_QUOTE_MAX || hdrs > 64)
		return SM_R_DROP_ERROR;
	if (bpf_skb_change_tail(skb, L3_OFF + quoted, 0) == 0)
		return bpf_skb_adjust_room(skb, hdrs, BPF_ADJ_ROOM_MAC, 0) < 0 ? SM_R_DROP_ERROR : 0;
	__u32 zero = 0;
	struct sm_scratch *s = bpf_map_lookup_elem(&sm_scratch, &zero);
	if (!s)
		return SM_R_DROP_ERROR;
	__u32 shift = len - quoted;
	if (shift > 0xffff)
		return SM_R_DROP_ERROR;
	/* 64-bit lengths: the bounds the verifier learns are on the registers the helpers get. */
	__u64 q = quoted;
	for (int i = 0; i < (PTB_QUOTE_MAX + SM_SCRATCH - 1) / SM_SCRATCH; i++) {
		__u64 done = (__u64)i * SM_SCRATCH;
		if (done >= q)
			break;
		__u64 n = q - done;
		if (n > SM_SCRATCH)
			n = SM_SCRATCH;
		__u64 off = q - done - n;
		if (n == 0 || off > PTB_QUOTE_MAX)
			return SM_R_DROP_ERROR;
		if (bpf_skb_load_bytes(skb, L3_OFF + off, s->b, n) < 0 ||
		    bpf_skb_store_bytes(skb, L3_OFF + shift + off, s->b, n, 0) < 0)
			return SM_R_DROP_ERROR;
	}
	if (bpf_skb_adjust_room(skb, (__s32)hdrs - (__s32)shift, BPF_ADJ_ROOM_MAC, 0) < 0)
		return SM_R_DROP_ERROR;
	return 0;
}

static sm_always_inline __u16 csum_fold(__s64 sum)
{
	__u64 f = (__u32)sum;
	f = (f & 0xffff) + (f >> 16);
	f = (f & 0xffff) + (f >> 16);
	return (__u16)~f;
}

static __attribute__((noinline)) int send_ptb6(struct __sk_buff *skb, struct in6 *from, __u32 mtu)
{
	struct ipv6hdr orig;
	__u8 macs[12];
	if (bpf_skb_load_bytes(skb, 0, macs, 12) < 0 ||
	    bpf_skb_load_bytes(skb, L3_OFF, &orig, sizeof(orig)) < 0)
		return SM_R_DROP_ERROR;
	__u32 quoted = IP6_HLEN + bpf_ntohs(orig.payload_len);
	if (quoted > skb->len - L3_OFF)
		quoted = skb->len - L3_OFF;
	if (quoted > PTB_QUOTE_MAX)
		quoted = PTB_QUOTE_MAX;
	quoted &= ~3u; /* bpf_csum_diff sums whole 32-bit words */
	if (mtu < 1280)
		mtu = 1280;

	int r = quote_room(skb, quoted, PTB_HDRS);
	if (r)
		return r;

	struct {
		struct ethhdr eth;
		struct ipv6hdr ip6;
		struct icmp6hdr icmp;
	} __attribute__((packed)) h;
	__builtin_memset(&h, 0, sizeof(h));
	__builtin_memcpy(h.eth.h_dest, &macs[6], 6);
	__builtin_memcpy(h.eth.h_source, &macs[0], 6);
	h.eth.h_proto = bpf_htons(ETH_P_IPV6);
	h.ip6.version = 6;
	h.ip6.payload_len = bpf_htons(8 + quoted);
	h.ip6.nexthdr = IPPROTO_ICMPV6;
	h.ip6.hop_limit = 255;
	__builtin_memcpy(&h.ip6.saddr, from, 16);
	__builtin_memcpy(&h.ip6.daddr, &orig.saddr, 16);
	struct icmp6hdr ic;
	__builtin_memset(&ic, 0, sizeof(ic));
	ic.icmp6_type = ICMPV6_PKT_TOOBIG;
	ic.icmp6_mtu = bpf_htonl(mtu);

	struct pseudo6 ph;
	__builtin_memset(&ph, 0, sizeof(ph));
	__builtin_memcpy(&ph.src, from, 16);
	__builtin_memcpy(&ph.dst, &orig.saddr, 16);
	ph.len = bpf_htonl(8 + quoted);
	ph.nexthdr = IPPROTO_ICMPV6;
	__s64 sum = bpf_csum_diff(0, 0, (__be32 *)&ph, sizeof(ph), 0);
	sum = bpf_csum_diff(0, 0, (__be32 *)&ic, sizeof(ic), (__u32)sum);

	sum = csum_tail(skb, L3_OFF + PTB_HDRS, quoted, sum, (PTB_QUOTE_MAX + 251) / 252);
	if (sum < 0)
		return SM_R_DROP_ERROR;
	ic.icmp6_cksum = csum_fold(sum);
	__builtin_memcpy(&h.icmp, &ic, sizeof(ic));

	if (bpf_skb_store_bytes(skb, 0, &h, sizeof(h), 0) < 0)
		return SM_R_DROP_ERROR;
	return 0;
}

#define FN_HDRS (20 + 8)
#define FN_QUOTE_MAX (576 - FN_HDRS) /* RFC 1812 4.3.2.3: the error fits 576 bytes */

/*
 * ICMPv4 Destination Unreachable / Fragmentation Needed (RFC 792, RFC 1191) for an IPv4 packet with DF
 * that would not fit after encapsulation, sent back to the workload from `from` (its gateway).
 */
static __attribute__((noinline)) int send_frag_needed4(struct __sk_buff *skb, __be32 from, __u32 mtu)
{
	struct iphdr orig;
	__u8 macs[12];
	if (bpf_skb_load_bytes(skb, 0, macs, 12) < 0 || bpf_skb_load_bytes(skb, L3_OFF, &orig, sizeof(orig)) < 0)
		return SM_R_DROP_ERROR;
	__u32 quoted = bpf_ntohs(orig.tot_len);
	if (quoted > skb->len - L3_OFF)
		quoted = skb->len - L3_OFF;
	if (quoted > FN_QUOTE_MAX)
		quoted = FN_QUOTE_MAX;
	quoted &= ~3u;
	if (mtu > 0xffff)
		mtu = 0xffff;
	int r = quote_room(skb, quoted, FN_HDRS);
	if (r)
		return r;

	struct {
		struct ethhdr eth;
		struct iphdr ip;
		__u8 icmp[8];
	} __attribute__((packed)) h;
	__builtin_memset(&h, 0, sizeof(h));
	__builtin_memcpy(h.eth.h_dest, &macs[6], 6);
	__builtin_memcpy(h.eth.h_source, &macs[0], 6);
	h.eth.h_proto = bpf_htons(ETH_P_IP);

	struct iphdr ip;
	__builtin_memset(&ip, 0, sizeof(ip));
	ip.version = 4;
	ip.ihl = 5;
	ip.tos = 0xc0; /* internetwork control, as routers send their errors */
	ip.tot_len = bpf_htons(FN_HDRS + quoted);
	ip.ttl = 64;
	ip.protocol = IPPROTO_ICMP;
	ip.saddr = from;
	ip.daddr = orig.saddr;
	ip.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&ip, sizeof(ip), 0));

	__u8 ic[8] = {3, 4, 0, 0, 0, 0, (__u8)(mtu >> 8), (__u8)mtu};
	__s64 sum = bpf_csum_diff(0, 0, (__be32 *)ic, sizeof(ic), 0);
	sum = csum_tail(skb, L3_OFF + FN_HDRS, quoted, sum, 3);
	if (sum < 0)
		return SM_R_DROP_ERROR;
	__u16 c = csum_fold(sum);
	__builtin_memcpy(&ic[2], &c, 2);

	__builtin_memcpy(&h.ip, &ip, sizeof(ip));
	__builtin_memcpy(h.icmp, ic, 8);
	if (bpf_skb_store_bytes(skb, 0, &h, sizeof(h), 0) < 0)
		return SM_R_DROP_ERROR;
	return 0;
}

#endif
