/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the pieces of a tc program cost per packet on this machine (`npm run bench -- ebpf-floor`): each
 * program does one thing the datapath does (bpf/segmesh.c) and hands the packet on unchanged, so one
 * ping flood measures each under bpf_stats (run_time_ns / run_cnt) against f_empty, the measurement's
 * own floor. Not part of the datapath: built by the bench only.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* A page per value: f_pages reads one byte from each of four pages, f_lines four lines of one page. */
struct page {
	__u8 b[4096];
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct page);
} fl_pages SEC(".maps");

/* As sm_counters: a per-CPU u64 per reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 40);
	__type(key, __u32);
	__type(value, __u64);
} fl_counters SEC(".maps");

/* As sm_exact: {key space, destination} -> a 164-byte policy, no prealloc, 262,144 at most. */
struct fl_key {
	__u32 space;
	__u8 dst[16];
};
struct fl_value {
	__u8 b[164];
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fl_key);
	__type(value, struct fl_value);
} fl_exact SEC(".maps");

/* As sm_sids: SID -> behaviour, preallocated, 16,384 at most (empty here: every lookup misses). */
struct fl_sid {
	__u8 b[36];
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct in6_addr);
	__type(value, struct fl_sid);
} fl_sids SEC(".maps");

SEC("tc")
int f_empty(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

/* Byte `at` of each of four values (pages == 1: value i, four pages) or of value 0 (pages == 0: four
 * lines of one page). */
static __always_inline int read4(int pages, __u32 stride)
{
	__u32 sum = 0;
#pragma unroll
	for (__u32 i = 0; i < 4; i++) {
		__u32 k = pages ? i : 0;
		struct page *p = bpf_map_lookup_elem(&fl_pages, &k);
		if (p)
			sum += p->b[(i * stride) & 4095];
	}
	return sum == 0xffffff ? TC_ACT_SHOT : TC_ACT_OK;
}

/* One byte of each of four values: four pages. */
SEC("tc")
int f_pages(struct __sk_buff *skb)
{
	return read4(1, 0);
}

/* Four lines 64 bytes apart in one value: one page. */
SEC("tc")
int f_lines(struct __sk_buff *skb)
{
	return read4(0, 64);
}

static __always_inline void count(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&fl_counters, &reason);
	if (c)
		*c += 1;
}

SEC("tc")
int f_count1(struct __sk_buff *skb)
{
	count(0);
	return TC_ACT_OK;
}

/* Four counters (reasons far apart, as encap and redirect_nexthop are in sm_counters). */
SEC("tc")
int f_count4(struct __sk_buff *skb)
{
	count(0);
	count(36);
	count(3);
	count(6);
	return TC_ACT_OK;
}

static __always_inline struct fl_value *exact(struct __sk_buff *skb)
{
	void *d = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = d + ETH_HLEN;
	if (skb->protocol != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > end)
		return 0;
	struct fl_key k = {.space = bpf_htonl(1)};
	__builtin_memcpy(k.dst, &ip6->daddr, 16);
	return bpf_map_lookup_elem(&fl_exact, &k);
}

/* sm_exact's lookup of a workload /128 (a hit: the bench writes the ping's destination). */
SEC("tc")
int f_hash(struct __sk_buff *skb)
{
	struct fl_value *v = exact(skb);
	return v && v->b[0] == 0xff ? TC_ACT_SHOT : TC_ACT_OK;
}

/* The same lookup twice: the second finds its pages touched already. */
SEC("tc")
int f_hash2(struct __sk_buff *skb)
{
	struct fl_value *v = exact(skb);
	struct fl_value *w = exact(skb);
	return (v && v->b[0] == 0xff) || (w && w->b[1] == 0xff) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* sm_sids' lookup of a destination that is no SID (what every packet not for this host pays in ul_in). */
SEC("tc")
int f_miss(struct __sk_buff *skb)
{
	void *d = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = d + ETH_HLEN;
	if (skb->protocol != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > end)
		return TC_ACT_OK;
	struct in6_addr a = ip6->daddr;
	return bpf_map_lookup_elem(&fl_sids, &a) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* The sm_sids miss, then the sm_exact hit: a second map's lookup after a first. */
SEC("tc")
int f_miss_hash(struct __sk_buff *skb)
{
	int r = f_miss(skb);
	struct fl_value *v = exact(skb);
	return r == TC_ACT_SHOT || (v && v->b[0] == 0xff) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* What H.Encaps and a decapsulation cost in bpf_skb_adjust_room: room for an outer header and an SRH of
 * one segment made, then removed (the packet leaves as it came). */
SEC("tc")
int f_room(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	if (bpf_skb_adjust_room(skb, 64, BPF_ADJ_ROOM_MAC, 0) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_adjust_room(skb, -64, BPF_ADJ_ROOM_MAC, 0) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}
