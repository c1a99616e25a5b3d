/* SPDX-License-Identifier: Apache-2.0 */
/* The datapath's maps. Names are the pin names under the agent's bpffs folder. */
#ifndef SEGMESH_MAPS_H
#define SEGMESH_MAPS_H

#include "abi.h"

/* Overridable so that tests can build an object whose map layout differs (an upgrade that migrates). */
#ifndef SM_POLICY_MAX
#define SM_POLICY_MAX 262144
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* ifindex of a workload veth's host side, or of an SR-unaware function's link */
	__type(value, struct sm_endpoint);
} sm_endpoints SEC(".maps");

/* Per-scope key spaces (egress, delivery redirects, forward, return): see struct sm_policy_key. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SM_POLICY_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sm_policy_key);
	__type(value, struct sm_policy);
} sm_policy SEC(".maps");

/* The /128 entries of sm_policy's key spaces (workloads, IPv4 as ::ffff:a.b.c.d/128): one hash lookup
 * instead of an LPM trie walk over 160-bit keys on the common path. No prealloc: preallocated, its
 * SM_POLICY_MAX elements (~230 bytes each with the element header) would take ~60 MiB per host whatever
 * the load; only the agent writes it (no allocation on the packet path), and lookups cost the same. */
/* Not SM_POLICY_MAX itself: a test object that resizes sm_policy migrates that map alone. */
#define SM_EXACT_MAX 262144 /* SM_POLICY_MAX's default */
#ifndef SM_NO_EXACT /* tests only: the layout before sm_exact (the /128s in sm_policy), to upgrade from */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SM_EXACT_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sm_exact_key);
	__type(value, struct sm_policy);
} sm_exact SEC(".maps");
#endif

/* The policy entry of `k` (prefixlen 32 + 128): sm_exact's /128 if there is one (the longest match
 * there can be, so what the trie would answer), else the trie's longest prefix. */
static sm_always_inline struct sm_policy *policy_lookup(struct sm_policy_key *k)
{
#ifndef SM_NO_EXACT
	struct sm_policy *p = bpf_map_lookup_elem(&sm_exact, (struct sm_exact_key *)&k->tenant);
	if (p)
		return p;
#endif
	return bpf_map_lookup_elem(&sm_policy, k);
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct in6);
	__type(value, struct sm_sid);
} sm_sids SEC(".maps");

/* An array: the verifier inlines its lookup (no helper call per encapsulation). Preallocated, so
 * max_entries bounds both the locators with a slot (the lowering gives the rest slot 0: a FIB lookup)
 * and its memory: 16384 x 40 bytes, 640 KiB, less than the preallocated hash it replaced of the same
 * size. The agent's reconcile treats a slot whose oif is 0 as absent and "deletes" by writing zeros. */
#define SM_NEXTHOP_SLOTS 16384
struct {
#ifdef SM_NEXTHOPS_HASH
	__uint(type, BPF_MAP_TYPE_HASH); /* tests only: the layout before, to upgrade from (and back to) */
#else
	__uint(type, BPF_MAP_TYPE_ARRAY);
#endif
	__uint(max_entries, SM_NEXTHOP_SLOTS);
	__type(key, __u32); /* slot, from 1 (an encap policy's oif field); slot 0 stays empty */
	__type(value, struct sm_nexthop);
} sm_nexthops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sm_addr_key);
	__type(value, __u32); /* enum sm_reason: SM_R_DROP_SIDBLOCK or SM_R_DROP_HOSTADDR */
} sm_blocked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sm_addr_key);
	__type(value, __u32);
} sm_trusted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SM_R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sm_counters SEC(".maps");

/* Per-SID counters by the SID's slot (sm_sid.slot): an array lookup the verifier inlines (no helper
 * call, no hash of the 16-byte SID). Preallocated: (SM_SID_SLOTS + 1) x 16 B x possible CPUs, 256 KiB
 * per CPU. The agent zeroes a slot before a new SID takes it (a freed slot keeps its old counts). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SM_SID_SLOTS + 1);
	__type(key, __u32);
	__type(value, struct sm_sid_stats);
} sm_sid_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sm_config);
} sm_config SEC(".maps");

/* Per-CPU scratch: the SRH is built here (too big for the BPF stack with long lists), and the PTB's
 * checksum reads the quoted packet through it. */
#define SM_SCRATCH 256
struct sm_scratch {
	__u8 b[SM_SCRATCH];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sm_scratch);
} sm_scratch SEC(".maps");

/* Drops per ingress link and reason (per-CPU): the agent reports them per attachment. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sm_link_key);
	__type(value, __u64);
} sm_link_drops SEC(".maps");

/* -DSM_NO_COUNTERS compiles the per-reason and per-SID counters out (sm_link_drops stays), for
 * `BENCH_NOCOUNT=1 npm run bench -- ebpf` to measure what counting costs; scripts/build.sh never sets it. */
static sm_always_inline void count(__u32 reason)
{
#ifdef SM_NO_COUNTERS
	return;
#endif
	__u64 *c = bpf_map_lookup_elem(&sm_counters, &reason);
	if (c)
		*c += 1; /* per-CPU: no atomics needed */
}

/* One call, not inlined at each drop site: keeps the programs small for the verifier. */
static __attribute__((noinline)) int count_link_drop(__u32 ifindex, __u32 reason)
{
	struct sm_link_key k = {.ifindex = ifindex, .reason = reason};
	__u64 *c = bpf_map_lookup_elem(&sm_link_drops, &k);
	if (c) {
		*c += 1;
		return 0;
	}
	__u64 one = 1;
	/* Another CPU may have created the entry meanwhile: then count into it. */
	if (bpf_map_update_elem(&sm_link_drops, &k, &one, BPF_NOEXIST) == 0)
		return 0;
	c = bpf_map_lookup_elem(&sm_link_drops, &k);
	if (c)
		*c += 1;
	return 0;
}

static sm_always_inline __u32 config_flags(void)
{
	__u32 zero = 0;
	struct sm_config *c = bpf_map_lookup_elem(&sm_config, &zero);
	return c ? c->flags : 0;
}

static sm_always_inline __be32 config_icmp4_src(void)
{
	__u32 zero = 0;
	struct sm_config *c = bpf_map_lookup_elem(&sm_config, &zero);
	__be32 a = 0;
	if (c)
		__builtin_memcpy(&a, c->icmp4_src, 4);
	return a;
}

static sm_always_inline void count_sid(const struct sm_sid *sid, __u32 bytes)
{
#ifdef SM_NO_COUNTERS
	return;
#endif
	__u32 slot = sid->slot;
	struct sm_sid_stats *s = bpf_map_lookup_elem(&sm_sid_stats, &slot);
	if (!s)
		return;
	s->packets += 1; /* per-CPU: no atomics needed */
	s->bytes += bytes;
}

#endif
