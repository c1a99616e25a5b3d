/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Build environment of the Segmesh datapath: UAPI headers (Debian 12's linux-libc-dev 6.1) plus
 * libbpf-dev's bpf_helpers.h, with fallbacks for what those headers predate. The programs touch only
 * __sk_buff and helper ABIs, so the object needs no CO-RE relocations.
 */
#ifndef SEGMESH_COMPAT_H
#define SEGMESH_COMPAT_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <linux/ip.h>
#include <linux/icmpv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* <sys/socket.h> does not build for the BPF target (gnu/stubs-32.h). */
#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Kernel 6.3 decap flags: set skb->protocol to the inner family (absent from 6.1 headers). */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV6
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

#define IPPROTO_SRH_RT 43 /* IPv6 Routing Header (IPPROTO_ROUTING) */
#define SRH_TYPE 4        /* Segment Routing Header (RFC 8754) */
#define ETH_OFF 0
#define L3_OFF ETH_HLEN   /* 14: the programs run at tc, where the packet starts at the MAC header */
#define IP6_HLEN 40
#define SRH_FIXED 8

#define sm_always_inline inline __attribute__((always_inline))

#endif
