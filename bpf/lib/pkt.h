/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Direct packet access for the hot paths: headers read and written through skb->data / data_end, not
 * with bpf_skb_load_bytes / bpf_skb_store_bytes (each helper call costs more than the copy it does).
 * pkt_linear pulls the first bytes into the linear area when they are not there already (a paged skb),
 * which is what the store helper does on its own; tc unclones a cloned skb before a program that writes
 * directly runs. Any helper that changes the packet (adjust_room, pull, change_tail, the store and csum
 * helpers) invalidates the pointers: derive them again after one.
 */
#ifndef SEGMESH_PKT_H
#define SEGMESH_PKT_H

#include "compat.h"

/* skb->data and data_end as pointers. The empty asm keeps them 64-bit values where they are loaded:
 * clang would otherwise merge loads from two paths as 32-bit values and zero-extend them, which the
 * verifier refuses on packet pointers. */
static sm_always_inline void *pkt_data(struct __sk_buff *skb)
{
	void *p = (void *)(long)skb->data;
	asm volatile("" : "+r"(p));
	return p;
}

static sm_always_inline void *pkt_end(struct __sk_buff *skb)
{
	void *p = (void *)(long)skb->data_end;
	asm volatile("" : "+r"(p));
	return p;
}

/* The packet's first `len` bytes linear; 0, or < 0 when the packet is shorter (or the pull failed). */
static sm_always_inline long pkt_linear(struct __sk_buff *skb, __u32 len)
{
	if (pkt_data(skb) + len <= pkt_end(skb))
		return 0;
	return bpf_skb_pull_data(skb, len);
}

/* `len` bytes at `off` (both bounded by the caller), linear; 0 when the packet is shorter. */
#define PKT_AT(skb, off, len)                                                                            \
	({                                                                                               \
		void *__p = 0;                                                                           \
		if (pkt_linear(skb, (off) + (len)) == 0) {                                               \
			void *__d = pkt_data(skb);                                                       \
			if (__d + (off) + (len) <= pkt_end(skb))                                         \
				__p = __d + (off);                                                       \
		}                                                                                        \
		__p;                                                                                     \
	})

#endif
