/**
 * The eBPF datapath (bpf/segmesh.c) on crafted packets through BPF_PROG_TEST_RUN: each behaviour,
 * each drop reason and each malformed SRH, the program's output bytes against the expected bytes (hex
 * dumps, side by side in a failure's diff) and its verdict, counters read from the per-CPU maps.
 *
 * The test runs in its own namespace (setns of this thread), where the FIB lookups find routes and
 * permanent neighbours, so a redirect verdict comes with the MACs it wrote. BPF_PROG_TEST_RUN only
 * returns the verdict: the redirect itself is not performed (the namespace test covers real traffic).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addrKey,
  CFG_FIB,
  CFG_TRUSTSRC,
  CFG_VALIDATE,
  configValue,
  endpointValue,
  exactKey,
  exactOf,
  ifindexKey,
  isExactPolicy,
  MAP,
  NEXTHOP_SLOTS,
  nexthopValue,
  POL_BLOCKED,
  policyKey,
  policyValue,
  reasonValue,
  SIZES,
  type SidValue,
  sidKey,
  sidValue,
  u32Key,
  v4Mapped,
} from '../../../src/dataplane/ebpf/abi.ts';
import { BpfObject } from '../../../src/dataplane/ebpf/libbpf.ts';
import { BlockedPrefixes } from '../../../src/dataplane/ebpf/lower.ts';
import { ipv6FromBytes, parseIpv6 } from '../../../src/srv6/address.ts';
import { Netns, objectName, systemSuite } from '../../harness/index.ts';
import {
  type Bytes,
  concat,
  ETH_IPV4,
  ETH_IPV6,
  echo4,
  echo6,
  eth,
  fragNeeded4,
  hexdump,
  icmp6,
  ipv4,
  ipv6,
  mac,
  NH_HOPOPTS,
  NH_ICMPV6,
  NH_IPV4,
  NH_IPV6,
  NH_ROUTING,
  NH_UDP,
  srh,
  tcpSyn6,
  udp6,
  v6,
} from '../../harness/packet.ts';
import { compileDatapath, counters, delta, enterNetns, linkDelta, linkDrops, vethPair } from './fixture.ts';

const ip = parseIpv6;
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;

// Test namespace: U0 is the underlay (its peer is the next hop), W0 the host side of the workload veth.
const U0_MAC = '02:00:00:00:00:01';
const NH_MAC = '02:00:00:00:00:02';
const W0_MAC = '02:00:00:00:0a:01';
const WL_MAC = '02:00:00:00:0a:10';
const LOCAL_WL_MAC = '02:00:00:00:0b:20';
const DELIVERY_MAC = '02:00:00:00:0b:40'; // a local workload's delivery entry (not table 101's neighbour)
const N0_MAC = '02:00:00:00:0c:01'; // host side of an SR-unaware function's link
const NF_MAC = '02:00:00:00:0c:10';
const NF_INDEX = 3; // the function's index: its return key space
const HOST_SRC = 'fc00:0:1::1';
const WL6 = 'fd01:1::10';
const WL4 = '198.18.1.10';
const PEER = '2001:db8:2::1'; // outer source of SRv6 packets from another host (trusted underlay)

systemSuite('ebpf datapath: BPF_PROG_TEST_RUN on crafted packets', { tools: ['clang', 'ip'] }, () => {
  let ns: Netns;
  let obj: BpfObject;
  let leave: (() => void) | undefined;
  let u0 = 0;
  let w0 = 0;
  let n0 = 0;

  beforeAll(async () => {
    const path = await compileDatapath();
    ns = await Netns.create(objectName('bpfrun'));
    const U0 = objectName('u0');
    const W0 = objectName('w0');
    for (const k of [
      'net.ipv6.conf.all.forwarding',
      'net.ipv6.conf.default.forwarding',
      'net.ipv4.ip_forward',
    ]) {
      await ns.sysctl(k, '1');
    }
    await vethPair(ns, U0, U0_MAC, objectName('u1'), NH_MAC);
    await vethPair(ns, W0, W0_MAC, objectName('w1'), WL_MAC);
    const N0 = objectName('n0');
    await vethPair(ns, N0, N0_MAC, objectName('n1'), NF_MAC);
    await ns.ip('-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', U0, 'nodad');
    await ns.ip('-6', 'neigh', 'replace', '2001:db8:1::2', 'lladdr', NH_MAC, 'dev', U0, 'nud', 'permanent');
    await ns.ip('-6', 'route', 'add', 'fc00:0:2::/48', 'via', '2001:db8:1::2', 'dev', U0);
    await ns.ip(
      '-6',
      'route',
      'add',
      'fc00:0:9::/48',
      'via',
      '2001:db8:1::2',
      'dev',
      U0,
      'mtu',
      'lock',
      '1400',
    );
    // Tenant 1 (table 101) reaches its local workload on W0; tenant 2 (table 102) has no route.
    await ns.ip('-6', 'route', 'add', 'fd01:1::/64', 'dev', W0, 'table', '101');
    await ns.ip('-6', 'neigh', 'replace', WL6, 'lladdr', WL_MAC, 'dev', W0, 'nud', 'permanent');
    await ns.ip('-4', 'addr', 'add', '198.18.1.1/24', 'dev', W0);
    await ns.ip('-4', 'route', 'add', '198.18.1.0/24', 'dev', W0, 'table', '101');
    await ns.ip('-4', 'neigh', 'replace', WL4, 'lladdr', WL_MAC, 'dev', W0, 'nud', 'permanent');
    const links = await ns.ipJson<{ ifname: string; ifindex: number }[]>('link', 'show');
    u0 = links.find((l) => l.ifname === U0)!.ifindex;
    w0 = links.find((l) => l.ifname === W0)!.ifindex;
    n0 = links.find((l) => l.ifname === N0)!.ifindex;

    leave = enterNetns(ns.name);
    obj = BpfObject.load(path);
    populate(obj, w0, n0);
  });

  afterAll(async () => {
    obj?.close();
    leave?.();
    await ns?.destroy();
  });

  function setConfig(flags: number, icmp4Source: string | null = '198.18.1.1'): void {
    obj.map(MAP.config).update(u32Key(0), configValue(flags, icmp4Source ?? undefined));
  }

  /** `ingressIfindex`: another link than the program's usual (w0, u0); n0 is also the packet's ifindex. */
  function run(prog: 'wl_in' | 'ul_in', data: Bytes, ingressIfindex?: number) {
    const before = counters(obj);
    const linksBefore = linkDrops(obj);
    const ifx = ingressIfindex === n0 ? n0 : prog === 'wl_in' ? w0 : u0;
    const r = obj.program(prog).testRun({ data, ingressIfindex: ingressIfindex ?? ifx, ifindex: ifx });
    return {
      retval: r.retval,
      out: hexdump(r.data),
      data: r.data,
      counted: delta(before, counters(obj)),
      /** Drops by `<ingress ifindex>:<reason>` (sm_link_drops). */
      linkCounted: linkDelta(linksBefore, linkDrops(obj)),
    };
  }

  it('the object has the maps and key/value sizes of src/dataplane/ebpf/abi.ts, and both programs verify', () => {
    for (const [name, size] of Object.entries(SIZES)) {
      const m = obj.map(name);
      expect({ name, key: m.keySize, value: m.valueSize }).toEqual({
        name,
        key: size.key,
        value: size.value,
      });
    }
    // sm_nexthops: an array (its lookup inlined), NEXTHOP_SLOTS slots.
    const nh = obj.map(MAP.nexthops);
    expect({ type: nh.type, slots: nh.maxEntries }).toEqual({ type: 2, slots: NEXTHOP_SLOTS });
    for (const p of ['wl_in', 'ul_in']) {
      const stats = obj.program(p).stats;
      expect(stats?.insns).toBeGreaterThan(100);
      console.log(
        `verifier ${p}: ${stats?.insns} insns processed, stack depth ${stats?.stackDepth.join('+')}`,
      );
    }
  });

  describe('wl_in: apply', () => {
    beforeAll(() => setConfig(CFG_VALIDATE | CFG_FIB));

    it('H.Encaps with 2 segments: outer IPv6 + SRH (SL 1, LE 1, list backwards), inner hop limit - 1, MACs from the FIB', () => {
      const inner = (hl: number) => wl6pkt('fd01:2::10', hl);
      const r = run('wl_in', fromWl(inner(64)));
      const expected = toNh(
        outer(
          'fc00:0:2::e',
          NH_ROUTING,
          concat(
            srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1', 'fc00:0:2::e'], segmentsLeft: 1 }),
            inner(63),
          ),
        ),
      );
      expect(r.out).toBe(hexdump(expected));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ encap: 1, redirect: 1 });
    });

    it('H.Encaps.Red with 2 segments: the first segment only in the destination (SL 1, LE 0)', () => {
      const inner = (hl: number) => wl6pkt('fd01:3::10', hl);
      const r = run('wl_in', fromWl(inner(64)));
      const expected = toNh(
        outer(
          'fc00:0:2::e',
          NH_ROUTING,
          concat(
            srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1'], segmentsLeft: 1, lastEntry: 0 }),
            inner(63),
          ),
        ),
      );
      expect(r.out).toBe(hexdump(expected));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ encap_red: 1, redirect: 1 });
    });

    it('a single segment has no SRH (next header 41), unless the policy asks for one (SL 0, LE 0)', () => {
      const a = run('wl_in', fromWl(wl6pkt('fd01:4::10', 64)));
      expect(a.out).toBe(hexdump(toNh(outer('fc00:0:2::d6:1', NH_IPV6, wl6pkt('fd01:4::10', 63)))));
      expect(a.counted).toEqual({ encap_nosrh: 1, redirect: 1 });
      const b = run('wl_in', fromWl(wl6pkt('fd01:5::10', 64)));
      const withSrh = concat(
        srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1'], segmentsLeft: 0 }),
        wl6pkt('fd01:5::10', 63),
      );
      expect(b.out).toBe(hexdump(toNh(outer('fc00:0:2::d6:1', NH_ROUTING, withSrh))));
      expect(b.counted).toEqual({ encap: 1, redirect: 1 });
    });

    it('4 and 8 segments (the longest list the datapath takes)', () => {
      for (const [dst, n] of [
        ['fd01:6::10', 4],
        ['fd01:7::10', 8],
      ] as const) {
        const segs = segList(n);
        const r = run('wl_in', fromWl(wl6pkt(dst, 64)));
        const s = srh({ nextHeader: NH_IPV6, segmentList: [...segs].reverse(), segmentsLeft: n - 1 });
        expect(r.out).toBe(hexdump(toNh(outer(segs[0]!, NH_ROUTING, concat(s, wl6pkt(dst, 63))))));
        expect(r.counted).toEqual({ encap: 1, redirect: 1 });
      }
    });

    it('IPv4 inner: Ethernet type becomes IPv6, SRH next header 4, TTL - 1 with its header checksum, TOS in the traffic class', () => {
      const inner = (ttl: number) =>
        ipv4({ src: WL4, dst: '198.18.2.10', protocol: 1, ttl, tos: 0xb8 }, echo4(7, 1));
      const r = run('wl_in', eth(W0_MAC, WL_MAC, ETH_IPV4, inner(64)));
      const s = srh({ nextHeader: NH_IPV4, segmentList: ['fc00:0:2::d4:1', 'fc00:0:2::e'], segmentsLeft: 1 });
      const o = ipv6(
        { src: HOST_SRC, dst: 'fc00:0:2::e', nextHeader: NH_ROUTING, trafficClass: 0xb8 },
        concat(s, inner(63)),
      );
      expect(r.out).toBe(hexdump(eth(NH_MAC, U0_MAC, ETH_IPV6, o)));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ encap: 1, redirect: 1 });
    });

    it('local delivery: MACs of the destination workload, hop limit - 1, redirect', () => {
      const r = run('wl_in', fromWl(wl6pkt('fd01:1::20', 64)));
      expect(r.out).toBe(hexdump(eth(LOCAL_WL_MAC, W0_MAC, ETH_IPV6, wl6pkt('fd01:1::20', 63))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ local: 1 });
    });

    it('without FIB forwarding the encapsulated packet goes to the stack (TC_ACT_OK, MACs untouched)', () => {
      setConfig(CFG_VALIDATE);
      try {
        const r = run('wl_in', fromWl(wl6pkt('fd01:4::10', 64)));
        expect(r.out).toBe(
          hexdump(eth(W0_MAC, WL_MAC, ETH_IPV6, outer('fc00:0:2::d6:1', NH_IPV6, wl6pkt('fd01:4::10', 63)))),
        );
        expect(r.retval).toBe(TC_ACT_OK);
        expect(r.counted).toEqual({ encap_nosrh: 1, stack: 1 });
      } finally {
        setConfig(CFG_VALIDATE | CFG_FIB);
      }
    });

    it('too big after encapsulation: an ICMPv6 Packet Too Big back to the workload (MTU minus the encapsulation); a packet that fits is encapsulated', () => {
      const fits = udpPkt('fd01:9::10', 1300 - 48);
      const ok = run('wl_in', fromWl(fits));
      expect(ok.counted).toEqual({ encap_nosrh: 1, redirect: 1 });

      const big = udpPkt('fd01:9::10', 1400 - 48);
      const r = run('wl_in', fromWl(big));
      const mtu = new Uint8Array(4);
      new DataView(mtu.buffer).setUint32(0, 1400 - 40);
      const quoted = big.subarray(0, 1232);
      const ptb = ipv6(
        { src: HOST_SRC, dst: WL6, nextHeader: NH_ICMPV6, hopLimit: 255 },
        icmp6(HOST_SRC, WL6, 2, 0, concat(mtu, quoted)),
      );
      expect(r.out).toBe(hexdump(eth(WL_MAC, W0_MAC, ETH_IPV6, ptb)));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ ptb: 1 });
    });

    it('IPv4 too big after encapsulation: with DF an ICMPv4 Fragmentation Needed from the gateway; without DF, or without a gateway configured, dropped and counted', () => {
      const v4pkt = (total: number, df: boolean) =>
        ipv4({ src: WL4, dst: '198.18.9.10', protocol: 17, df }, new Uint8Array(total - 20).fill(0xcd));
      const fits = run('wl_in', eth(W0_MAC, WL_MAC, ETH_IPV4, v4pkt(1300, true)));
      expect(fits.counted).toEqual({ encap_nosrh: 1, redirect: 1 });

      const big = v4pkt(1400, true);
      const r = run('wl_in', eth(W0_MAC, WL_MAC, ETH_IPV4, big));
      const quoted = big.subarray(0, 548);
      const err = ipv4(
        { src: '198.18.1.1', dst: WL4, protocol: 1, tos: 0xc0, id: 0, df: false },
        fragNeeded4(1400 - 40, quoted),
      );
      expect(r.out).toBe(hexdump(eth(WL_MAC, W0_MAC, ETH_IPV4, err)));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ ptb: 1 });

      const noDf = run('wl_in', eth(W0_MAC, WL_MAC, ETH_IPV4, v4pkt(1400, false)));
      expect(noDf.retval).toBe(TC_ACT_SHOT);
      expect(noDf.counted).toEqual({ drop_too_big: 1 });
      setConfig(CFG_VALIDATE | CFG_FIB, null);
      try {
        const noGw = run('wl_in', eth(W0_MAC, WL_MAC, ETH_IPV4, big));
        expect(noGw.counted).toEqual({ drop_too_big: 1 });
      } finally {
        setConfig(CFG_VALIDATE | CFG_FIB);
      }
    });

    it('not ours: no endpoint on the interface, ARP, link-local and multicast destinations go to the stack untouched', () => {
      const p = fromWl(wl6pkt('fd01:2::10', 64));
      const cases: Bytes[] = [];
      const arp = eth('ff:ff:ff:ff:ff:ff', WL_MAC, 0x0806, new Uint8Array(28));
      cases.push(
        arp,
        fromWl(
          ipv6(
            { src: 'fe80::10', dst: 'fe80::1', nextHeader: NH_ICMPV6 },
            echo6('fe80::10', 'fe80::1', 1, 1),
          ),
        ),
      );
      cases.push(
        fromWl(ipv6({ src: WL6, dst: 'ff02::2', nextHeader: NH_ICMPV6 }, echo6(WL6, 'ff02::2', 1, 1))),
      );
      for (const c of cases) {
        const r = run('wl_in', c);
        expect(r.out).toBe(hexdump(c));
        expect(r.retval).toBe(TC_ACT_OK);
        expect(r.counted).toEqual({ pass: 1 });
      }
      const other = run('wl_in', p, 99999);
      expect(other.out).toBe(hexdump(p));
      expect(other.counted).toEqual({ pass: 1 });
    });
  });

  describe('wl_in: encap toward an agent-resolved next hop (sm_nexthops slot in the policy), no FIB lookup', () => {
    // Slot 5: next hop 2001:db8:5::2 on u2 (MTU 1400); the main table routes fc00:0:2::/48 via U0
    // (MTU 1500). Slot 6 is named by a policy but holds nothing; slot 7 holds a next hop with no link.
    const SLOT = 5;
    const VIA = '2001:db8:5::2';
    let u2 = 0;
    const src = ip(HOST_SRC);
    const one = [ip('fc00:0:2::d6:1')];
    beforeAll(async () => {
      const U2 = objectName('u2');
      await ns.ip('link', 'add', U2, 'mtu', '1400', 'type', 'veth', 'peer', 'name', objectName('u3'));
      await ns.ip('link', 'set', U2, 'up');
      await ns.ip('link', 'set', objectName('u3'), 'up');
      const links = await ns.ipJson<{ ifname: string; ifindex: number }[]>('link', 'show');
      u2 = links.find((l) => l.ifname === U2)!.ifindex;
      const nh = obj.map(MAP.nexthops);
      nh.update(
        u32Key(SLOT),
        nexthopValue({ oif: u2, via: ip(VIA), prefix: ip('fc00:0:2::'), prefixLength: 48 }),
      );
      nh.update(
        u32Key(7),
        nexthopValue({ oif: 0, via: ip(VIA), prefix: ip('fc00:0:7::'), prefixLength: 48 }),
      );
      const pol = obj.map(MAP.policy);
      const put = (p: string, slot: number, mode: 'encap' | 'encapRed' = 'encap', segments = one) =>
        pol.update(policyKey(1, v6(p), 64), policyValue({ mode, segments, source: src, slot }));
      put('fd01:a::', SLOT);
      put('fd01:b::', 6);
      put('fd01:c::', 7);
      put('fd01:d::', SLOT, 'encapRed', [ip('fc00:0:2::e'), ip('fc00:0:2::d6:1')]);
      setConfig(CFG_VALIDATE | CFG_FIB);
    });

    it("through the slot: the encapsulation of the FIB path, the MACs left to the neighbour resolution of the redirect (not the FIB's), verdict redirect; an empty slot or one with no link: the FIB path as before", () => {
      const inner = (hl: number) => wl6pkt('fd01:a::10', hl);
      const r = run('wl_in', fromWl(inner(64)));
      // bpf_redirect_neigh writes the Ethernet header on transmit: the packet keeps the workload's.
      expect(r.out).toBe(hexdump(fromWl(outer('fc00:0:2::d6:1', NH_IPV6, inner(63)))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ encap_nosrh: 1, redirect_nexthop: 1 });
      // H.Encaps.Red with two segments through the slot: the SRH of the FIB path.
      const red = run('wl_in', fromWl(wl6pkt('fd01:d::10', 64)));
      expect(red.out).toBe(
        hexdump(
          fromWl(
            outer(
              'fc00:0:2::e',
              NH_ROUTING,
              concat(
                srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1'], segmentsLeft: 1, lastEntry: 0 }),
                wl6pkt('fd01:d::10', 63),
              ),
            ),
          ),
        ),
      );
      expect(red.counted).toEqual({ encap_red: 1, redirect_nexthop: 1 });
      // Positive controls of the fallback: the same packet by slots 6 (no entry) and 7 (no link) gets the
      // FIB's MACs (its next hop on U0).
      for (const p of ['fd01:b::10', 'fd01:c::10']) {
        const f = run('wl_in', fromWl(wl6pkt(p, 64)));
        expect(f.out).toBe(hexdump(toNh(outer('fc00:0:2::d6:1', NH_IPV6, wl6pkt(p, 63)))));
        expect(f.retval).toBe(TC_ACT_REDIRECT);
        expect(f.counted).toEqual({ encap_nosrh: 1, redirect: 1 });
      }
    });

    it("too big for the slot's link (its MTU, not the main table route's): a Packet Too Big back to the workload, as on the FIB path; a packet that fits is encapsulated", () => {
      const fits = udpPkt('fd01:a::10', 1300 - 48);
      const ok = run('wl_in', fromWl(fits));
      expect(ok.retval).toBe(TC_ACT_REDIRECT);
      expect(ok.counted).toEqual({ encap_nosrh: 1, redirect_nexthop: 1 });
      // 1400 + 40 exceeds u2's 1400, not U0's 1500: the FIB path (slot 6) encapsulates the same packet.
      const big = udpPkt('fd01:a::10', 1400 - 48);
      const viaFib = run('wl_in', fromWl(udpPkt('fd01:b::10', 1400 - 48)));
      expect(viaFib.counted).toEqual({ encap_nosrh: 1, redirect: 1 });
      const r = run('wl_in', fromWl(big));
      const mtu = new Uint8Array(4);
      new DataView(mtu.buffer).setUint32(0, 1400 - 40);
      const ptb = ipv6(
        { src: HOST_SRC, dst: WL6, nextHeader: NH_ICMPV6, hopLimit: 255 },
        icmp6(HOST_SRC, WL6, 2, 0, concat(mtu, big.subarray(0, 1232))),
      );
      expect(r.out).toBe(hexdump(eth(WL_MAC, W0_MAC, ETH_IPV6, ptb)));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ ptb: 1 });
    });

    it('without FIB forwarding the slot is not used either: the stack routes the encapsulated packet', () => {
      setConfig(CFG_VALIDATE);
      try {
        const r = run('wl_in', fromWl(wl6pkt('fd01:a::10', 64)));
        expect(r.out).toBe(hexdump(fromWl(outer('fc00:0:2::d6:1', NH_IPV6, wl6pkt('fd01:a::10', 63)))));
        expect(r.retval).toBe(TC_ACT_OK);
        expect(r.counted).toEqual({ encap_nosrh: 1, stack: 1 });
      } finally {
        setConfig(CFG_VALIDATE | CFG_FIB);
      }
    });
  });

  describe('wl_in: validation, each drop reason with the valid packet beside it', () => {
    beforeAll(() => setConfig(CFG_VALIDATE | CFG_FIB));

    const hbhThenSrh = () => {
      const hbh = Uint8Array.from([NH_ROUTING, 0, 1, 4, 0, 0, 0, 0]);
      const s = srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:2'], segmentsLeft: 0 });
      return ipv6(
        { src: WL6, dst: 'fd01:2::10', nextHeader: NH_HOPOPTS },
        concat(hbh, s, wl6pkt('fd02:2::10', 64)),
      );
    };
    const cases: [string, () => Bytes, string][] = [
      ['spoofed IPv6 source', () => fromWl(wl6pkt('fd01:2::10', 64, 'fd01:1::99')), 'drop_spoof'],
      [
        'spoofed IPv4 source',
        () =>
          eth(
            W0_MAC,
            WL_MAC,
            ETH_IPV4,
            ipv4({ src: '198.18.1.99', dst: '198.18.2.10', protocol: 1 }, echo4(1, 1)),
          ),
        'drop_spoof',
      ],
      ['a SID (the SID block)', () => fromWl(wl6pkt('fc00:0:2::d6:2', 64)), 'drop_sid_block'],
      ['a host address (underlay)', () => fromWl(wl6pkt('2001:db8:1::1', 64)), 'drop_host_address'],
      [
        'the IPv4 gateway',
        () => eth(W0_MAC, WL_MAC, ETH_IPV4, ipv4({ src: WL4, dst: '198.18.1.1', protocol: 1 }, echo4(1, 1))),
        'drop_host_address',
      ],
      [
        "TCP to the host's link-local address (its services listen on every address)",
        () =>
          fromWl(
            ipv6(
              { src: 'fe80::10', dst: 'fe80::1', nextHeader: 6 },
              tcpSyn6('fe80::10', 'fe80::1', 40000, 179),
            ),
          ),
        'drop_host_address',
      ],
      [
        "UDP to the host's link-local address",
        () =>
          fromWl(
            ipv6(
              { src: 'fe80::10', dst: 'fe80::1', nextHeader: NH_UDP },
              udp6('fe80::10', 'fe80::1', 5000, 7946, new Uint8Array(16)),
            ),
          ),
        'drop_host_address',
      ],
      [
        "a Routing Header (SRv6 crafted by the workload toward another tenant's SID)",
        () =>
          fromWl(
            ipv6(
              { src: WL6, dst: 'fd01:2::10', nextHeader: NH_ROUTING },
              concat(
                srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:2'], segmentsLeft: 0 }),
                wl6pkt('fd02:2::10', 64),
              ),
            ),
          ),
        'drop_workload_srh',
      ],
      ['a Routing Header behind Hop-by-Hop options', () => fromWl(hbhThenSrh()), 'drop_workload_srh'],
      ["no policy (another tenant's workload)", () => fromWl(wl6pkt('fd02:2::10', 64)), 'drop_no_policy'],
      ['an explicit deny', () => fromWl(wl6pkt('fd01:8::10', 64)), 'drop_policy'],
      ['hop limit 1', () => fromWl(wl6pkt('fd01:2::10', 1)), 'drop_hop_limit'],
    ];
    for (const [what, packet, reason] of cases) {
      it(`drops ${what}: ${reason}`, () => {
        const control = run('wl_in', fromWl(wl6pkt('fd01:2::10', 64)));
        expect(control.retval).toBe(TC_ACT_REDIRECT);
        expect(control.counted).toEqual({ encap: 1, redirect: 1 });
        expect(control.linkCounted).toEqual({});
        const r = run('wl_in', packet());
        expect(r.retval).toBe(TC_ACT_SHOT);
        expect(r.counted).toEqual({ [reason]: 1 });
        expect(r.linkCounted).toEqual({ [`${w0}:${reason}`]: 1 }); // per link too
      });
    }

    it("a tenant's own BGP and gossip ports toward a remote workload are its traffic, not the host's: encapsulated", () => {
      for (const packet of [
        ipv6({ src: WL6, dst: 'fd01:2::10', nextHeader: 6 }, tcpSyn6(WL6, 'fd01:2::10', 40000, 179)),
        udp6pkt('fd01:2::10', 7946),
      ]) {
        const r = run('wl_in', fromWl(packet));
        expect(r.retval).toBe(TC_ACT_REDIRECT);
        expect(r.counted).toEqual({ encap: 1, redirect: 1 });
      }
    });

    it('with validation off the same spoofed packet is encapsulated (the checks are what drops it)', () => {
      setConfig(CFG_FIB);
      try {
        const r = run('wl_in', fromWl(wl6pkt('fd01:2::10', 64, 'fd01:1::99')));
        expect(r.counted).toEqual({ encap: 1, redirect: 1 });
      } finally {
        setConfig(CFG_VALIDATE | CFG_FIB);
      }
    });
  });

  describe('ul_in: local SIDs', () => {
    beforeAll(() => setConfig(CFG_FIB | CFG_TRUSTSRC));

    it('End: Segments Left - 1, the next segment becomes the destination, hop limit - 1, then FIB and redirect; per-SID counters', () => {
      const list = ['fc00:0:2::d6:1', 'fc00:0:2::e', 'fc00:0:1::e'];
      const pkt = (da: string, sl: number, hl: number) =>
        ipv6(
          { src: PEER, dst: da, nextHeader: NH_ROUTING, hopLimit: hl },
          concat(srh({ nextHeader: NH_IPV6, segmentList: list, segmentsLeft: sl }), remoteInner(64)),
        );
      const input = fromUl(pkt('fc00:0:1::e', 2, 64));
      const statsBefore = sidStats('fc00:0:1::e');
      const r = run('ul_in', input);
      expect(r.out).toBe(hexdump(toNh(pkt('fc00:0:2::e', 1, 63))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ end: 1, redirect: 1 });
      const statsAfter = sidStats('fc00:0:1::e');
      expect([statsAfter[0]! - statsBefore[0]!, statsAfter[1]! - statsBefore[1]!]).toEqual([
        1n,
        BigInt(input.length),
      ]);
    });

    it("End on a reduced SRH (Segments Left = Last Entry + 1), which the kernel's own End rejects", () => {
      const pkt = (da: string, sl: number) =>
        ipv6(
          { src: PEER, dst: da, nextHeader: NH_ROUTING, hopLimit: 64 - (2 - sl) },
          concat(
            srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1'], segmentsLeft: sl, lastEntry: 0 }),
            remoteInner(64),
          ),
        );
      const r = run('ul_in', fromUl(pkt('fc00:0:1::e', 1)));
      expect(r.out).toBe(hexdump(toNh(pkt('fc00:0:2::d6:1', 0))));
      expect(r.counted).toEqual({ end: 1, redirect: 1 });
    });

    it('End.X: the End rewrite, then redirect to its neighbour', () => {
      const pkt = (da: string, sl: number, hl: number) =>
        ipv6(
          { src: PEER, dst: da, nextHeader: NH_ROUTING, hopLimit: hl },
          concat(
            srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1', 'fc00:0:1::e1'], segmentsLeft: sl }),
            remoteInner(64),
          ),
        );
      const r = run('ul_in', fromUl(pkt('fc00:0:1::e1', 1, 64)));
      expect(r.out).toBe(hexdump(fromUl(pkt('fc00:0:2::d6:1', 0, 63))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ end_x: 1 });
    });

    it("End.DT6: decapsulate and look up the tenant's table (101), not main: MACs of the local workload", () => {
      const r = run('ul_in', fromUl(srv6To('fc00:0:1::d6:1', NH_IPV6, remoteInner(64))));
      expect(r.out).toBe(hexdump(eth(WL_MAC, W0_MAC, ETH_IPV6, remoteInner(63))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ dt6: 1, redirect: 1 });
    });

    it("per-SID counters by the SID's slot: packets to one SID move its slot only; End then End.DT6 in one pass counts each in its own", () => {
      const DT6 = 'fc00:0:1::d6:1';
      const END = 'fc00:0:1::e';
      expect(SID_SLOT.get(DT6)).not.toBe(SID_SLOT.get(END));
      const toDt6 = fromUl(srv6To(DT6, NH_IPV6, remoteInner(64)));
      const before = slotSums();
      for (let i = 0; i < 3; i++) expect(run('ul_in', toDt6).counted).toEqual({ dt6: 1, redirect: 1 });
      const moved = slotDelta(before, slotSums());
      expect(moved).toStrictEqual(new Map([[SID_SLOT.get(DT6)!, [3n, BigInt(3 * toDt6.length)]]]));
      // Control: a packet to the End SID whose next segment is the End.DT6 SID: both slots move, by one.
      const viaEnd = fromUl(
        ipv6(
          { src: PEER, dst: END, nextHeader: NH_ROUTING, hopLimit: 64 },
          concat(srh({ nextHeader: NH_IPV6, segmentList: [DT6, END], segmentsLeft: 1 }), remoteInner(64)),
        ),
      );
      const mid = slotSums();
      expect(run('ul_in', viaEnd).counted).toEqual({ end: 1, dt6: 1, redirect: 1 });
      expect(slotDelta(mid, slotSums())).toStrictEqual(
        new Map([
          [SID_SLOT.get(END)!, [1n, BigInt(viaEnd.length)]],
          [SID_SLOT.get(DT6)!, [1n, BigInt(viaEnd.length)]],
        ]),
      );
    });

    it('End.DT6 without an SRH (a single-segment encapsulation)', () => {
      const r = run(
        'ul_in',
        fromUl(ipv6({ src: PEER, dst: 'fc00:0:1::d6:1', nextHeader: NH_IPV6 }, remoteInner(64))),
      );
      expect(r.out).toBe(hexdump(eth(WL_MAC, W0_MAC, ETH_IPV6, remoteInner(63))));
      expect(r.counted).toEqual({ dt6: 1, redirect: 1 });
    });

    it('End.DT6 of another tenant (table 102, no route there): dropped, never looked up in main', () => {
      const control = run('ul_in', fromUl(srv6To('fc00:0:1::d6:1', NH_IPV6, remoteInner(64))));
      expect(control.counted).toEqual({ dt6: 1, redirect: 1 });
      const r = run('ul_in', fromUl(srv6To('fc00:0:1::d6:2', NH_IPV6, remoteInner(64))));
      expect(r.retval).toBe(TC_ACT_SHOT);
      expect(r.counted).toEqual({ dt6: 1, drop_no_route: 1 });
    });

    it('End.DT4 and End.DT46: IPv4 inner, Ethernet type IPv4, TTL - 1 with checksum, table 101', () => {
      const inner = (ttl: number) => ipv4({ src: '198.18.2.10', dst: WL4, protocol: 1, ttl }, echo4(9, 2));
      for (const sid of ['fc00:0:1::d4:1', 'fc00:0:1::d46:1']) {
        const r = run('ul_in', fromUl(srv6To(sid, NH_IPV4, inner(64))));
        expect(r.out).toBe(hexdump(eth(WL_MAC, W0_MAC, ETH_IPV4, inner(63))));
        expect(r.retval).toBe(TC_ACT_REDIRECT);
        expect(r.counted).toEqual({ dt4: 1, redirect: 1 });
      }
      const v6 = run('ul_in', fromUl(srv6To('fc00:0:1::d46:1', NH_IPV6, remoteInner(64))));
      expect(v6.counted).toEqual({ dt6: 1, redirect: 1 });
      const wrong = run('ul_in', fromUl(srv6To('fc00:0:1::d4:1', NH_IPV6, remoteInner(64))));
      expect(wrong.counted).toEqual({ drop_inner_protocol: 1 });
      const wrong6 = run('ul_in', fromUl(srv6To('fc00:0:1::d6:1', NH_IPV4, inner(64))));
      expect(wrong6.counted).toEqual({ drop_inner_protocol: 1 });
    });

    it('End.DX6 and End.DX4: decapsulate, redirect to the configured neighbour', () => {
      const r6 = run('ul_in', fromUl(srv6To('fc00:0:1::6:1', NH_IPV6, remoteInner(64))));
      expect(r6.out).toBe(hexdump(fromUl(remoteInner(63))));
      expect(r6.retval).toBe(TC_ACT_REDIRECT);
      expect(r6.counted).toEqual({ dx6: 1 });
      const inner = (ttl: number) => ipv4({ src: '198.18.2.10', dst: WL4, protocol: 1, ttl }, echo4(9, 3));
      const r4 = run('ul_in', fromUl(srv6To('fc00:0:1::4:1', NH_IPV4, inner(64))));
      // MACs are left to bpf_redirect_neigh (at transmit): only the Ethernet type follows the inner packet.
      expect(r4.out).toBe(hexdump(eth(U0_MAC, NH_MAC, ETH_IPV4, inner(63))));
      expect(r4.counted).toEqual({ dx4: 1 });
    });

    it('End then End.DT6 in one pass (two local SIDs in a row)', () => {
      const s = srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:1::d6:1', 'fc00:0:1::e'], segmentsLeft: 1 });
      const r = run(
        'ul_in',
        fromUl(ipv6({ src: PEER, dst: 'fc00:0:1::e', nextHeader: NH_ROUTING }, concat(s, remoteInner(64)))),
      );
      expect(r.out).toBe(hexdump(eth(WL_MAC, W0_MAC, ETH_IPV6, remoteInner(63))));
      expect(r.counted).toEqual({ end: 1, dt6: 1, redirect: 1 });
    });

    it('not a local SID: to the stack untouched', () => {
      const p = fromUl(srv6To('fc00:0:2::d6:1', NH_IPV6, remoteInner(64)));
      const r = run('ul_in', p);
      expect(r.out).toBe(hexdump(p));
      expect(r.retval).toBe(TC_ACT_OK);
      expect(r.counted).toEqual({ pass: 1 });
    });

    it('an untrusted outer source to a local SID is dropped; a trusted one is delivered', () => {
      const ok = run('ul_in', fromUl(srv6To('fc00:0:1::d6:1', NH_IPV6, remoteInner(64))));
      expect(ok.counted).toEqual({ dt6: 1, redirect: 1 });
      const bad = ipv6(
        { src: '2001:db9::1', dst: 'fc00:0:1::d6:1', nextHeader: NH_ROUTING },
        concat(
          srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:1::d6:1'], segmentsLeft: 0 }),
          remoteInner(64),
        ),
      );
      const r = run('ul_in', fromUl(bad));
      expect(r.retval).toBe(TC_ACT_SHOT);
      expect(r.counted).toEqual({ drop_untrusted_source: 1 });
    });
  });

  describe('ul_in: End.DT* redirects toward a moved workload (delivery key space of sm_policy)', () => {
    beforeAll(() => setConfig(CFG_FIB | CFG_TRUSTSRC));
    const MOVED = 'fd01:1::30'; // moved to host 2: encap.red toward its End.DT6 (no SRH)
    const MOVED2 = 'fd01:1::31'; // moved behind two segments: encap.red, SRH with the last one
    const LOOPING = 'fd01:1::32'; // a redirect back to this host's own End.DT6
    const toMoved = (dst: string, hl: number) =>
      ipv6(
        { src: 'fd01:2::10', dst, nextHeader: NH_ICMPV6, hopLimit: hl },
        echo6('fd01:2::10', dst, 0x56, 3),
      );
    // H.Encaps.Red toward host 1's End.DT6 as the sending host writes it: a single segment, no SRH.
    const atDt6 = (inner: Bytes) =>
      fromUl(ipv6({ src: PEER, dst: 'fc00:0:1::d6:1', nextHeader: NH_IPV6 }, inner));
    const reEncap = (dst: string, nh: number, payload: Bytes) =>
      toNh(ipv6({ src: HOST_SRC, dst, nextHeader: nh }, payload));

    it('a packet for a moved workload leaves re-encapsulated toward its new End.DT6, the inner packet intact (hop limit - 1); a miss still goes to the FIB lookup in the tenant table', () => {
      const r = run('ul_in', atDt6(toMoved(MOVED, 64)));
      expect(r.out).toBe(hexdump(reEncap('fc00:0:2::d6:1', NH_IPV6, toMoved(MOVED, 63))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ redirect_move: 1, redirect: 1 });
      // Control: the workload still here is delivered from table 101, as before.
      const miss = run('ul_in', atDt6(remoteInner(64)));
      expect(miss.out).toBe(hexdump(eth(WL_MAC, W0_MAC, ETH_IPV6, remoteInner(63))));
      expect(miss.counted).toEqual({ dt6: 1, redirect: 1 });
    });

    // The outer headers are replaced in place: equal size above, larger here, smaller below (IPv4).
    it('with two segments the redirect writes a reduced SRH (SL 1, LE 0), like wl_in (the headers grow)', () => {
      const r = run('ul_in', atDt6(toMoved(MOVED2, 64)));
      const s = srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1'], segmentsLeft: 1, lastEntry: 0 });
      expect(r.out).toBe(hexdump(reEncap('fc00:0:2::e', NH_ROUTING, concat(s, toMoved(MOVED2, 63)))));
      expect(r.counted).toEqual({ redirect_move: 1, redirect: 1 });
    });

    it('IPv4 inner at End.DT46 behind an SRH: re-encapsulated with next header 4 and no SRH (the headers shrink), TTL - 1 with its checksum', () => {
      const inner = (ttl: number) =>
        ipv4({ src: '198.18.2.10', dst: '198.18.1.30', protocol: 1, ttl }, echo4(9, 4));
      const r = run('ul_in', fromUl(srv6To('fc00:0:1::d46:1', NH_IPV4, inner(64))));
      expect(r.out).toBe(hexdump(reEncap('fc00:0:2::d4:1', NH_IPV4, inner(63))));
      expect(r.counted).toEqual({ redirect_move: 1, redirect: 1 });
    });

    it('only a SID into the delivery scope redirects, and only from the delivery key space: the egress policy for the same destination and a SID without the delivery flag go to the FIB (no route: dropped)', () => {
      // fd01:2::/64 has an egress policy of tenant 1, no delivery entry: End.DT6 looks table 101 up.
      const egressOnly = run('ul_in', atDt6(toMoved('fd01:2::10', 64)));
      expect(egressOnly.counted).toEqual({ dt6: 1, drop_no_route: 1 });
      // Tenant 2 has the same redirect in its delivery space, but its End.DT6 has no delivery flag.
      const noFlag = run('ul_in', fromUl(srv6To('fc00:0:1::d6:2', NH_IPV6, toMoved(MOVED, 64))));
      expect(noFlag.counted).toEqual({ dt6: 1, drop_no_route: 1 });
      const flagged = run('ul_in', atDt6(toMoved(MOVED, 64)));
      expect(flagged.counted).toEqual({ redirect_move: 1, redirect: 1 });
    });

    it("a local workload's delivery entry: decapsulated and delivered with its MACs, no FIB lookup (counted local, not redirect), hop limit - 1; a miss (no entry) goes to the FIB lookup in table 101", () => {
      const r = run('ul_in', atDt6(toMoved('fd01:1::40', 64)));
      expect(r.out).toBe(hexdump(eth(DELIVERY_MAC, W0_MAC, ETH_IPV6, toMoved('fd01:1::40', 63))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ dt6: 1, local: 1 });
      // Behind an SRH (End then End.DT6 in one pass would be the same): the SRH goes with the outer header.
      const srhIn = run('ul_in', fromUl(srv6To('fc00:0:1::d6:1', NH_IPV6, toMoved('fd01:1::40', 64))));
      expect(srhIn.out).toBe(hexdump(eth(DELIVERY_MAC, W0_MAC, ETH_IPV6, toMoved('fd01:1::40', 63))));
      expect(srhIn.counted).toEqual({ dt6: 1, local: 1 });
      // The miss: WL6 has no delivery entry; table 101 answers with its neighbour's MAC.
      const miss = run('ul_in', atDt6(remoteInner(64)));
      expect(miss.out).toBe(hexdump(eth(WL_MAC, W0_MAC, ETH_IPV6, remoteInner(63))));
      expect(miss.retval).toBe(TC_ACT_REDIRECT);
      expect(miss.counted).toEqual({ dt6: 1, redirect: 1 });
      // Hop limit 1: dropped as the FIB path drops it, the packet untouched.
      const hl1 = run('ul_in', atDt6(toMoved('fd01:1::40', 1)));
      expect(hl1.retval).toBe(TC_ACT_SHOT);
      expect(hl1.counted).toEqual({ drop_hop_limit: 1 });
    });

    it('IPv4 inner at End.DT46 from its v4-mapped delivery entry: Ethernet type IPv4, TTL - 1 with its checksum; tenant 2 (no delivery flag) ignores the entry it has (FIB: no route)', () => {
      const inner = (ttl: number) =>
        ipv4({ src: '198.18.2.10', dst: '198.18.1.40', protocol: 1, ttl }, echo4(9, 5));
      const r = run('ul_in', fromUl(srv6To('fc00:0:1::d46:1', NH_IPV4, inner(64))));
      expect(r.out).toBe(hexdump(eth(DELIVERY_MAC, W0_MAC, ETH_IPV4, inner(63))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ dt4: 1, local: 1 });
      const noFlag = run('ul_in', fromUl(srv6To('fc00:0:1::d6:2', NH_IPV6, toMoved('fd01:1::40', 64))));
      expect(noFlag.retval).toBe(TC_ACT_SHOT);
      expect(noFlag.counted).toEqual({ dt6: 1, drop_no_route: 1 });
    });

    it("a redirect whose first segment is one of this host's SIDs is dropped and counted (no loop), the packet untouched before the drop; a good redirect beside it", () => {
      const control = run('ul_in', atDt6(toMoved(MOVED, 64)));
      expect(control.counted).toEqual({ redirect_move: 1, redirect: 1 });
      const input = atDt6(toMoved(LOOPING, 64));
      const r = run('ul_in', input);
      expect(r.retval).toBe(TC_ACT_SHOT);
      expect(r.out).toBe(hexdump(input));
      expect(r.counted).toEqual({ drop_redirect_loop: 1 });
      expect(r.linkCounted).toEqual({ [`${u0}:drop_redirect_loop`]: 1 });
    });
  });

  describe("ul_in: a moved workload's redirect toward an agent-resolved next hop (sm_nexthops slot)", () => {
    // Slot 9: next hop 2001:db8:4::2 on u4 (MTU 1400); the main table routes fc00:0:2::/48 via U0 (1500).
    const SLOT = 9;
    const SLOTTED = 'fd01:1::33';
    const src = ip(HOST_SRC);
    const atDt6 = (inner: Bytes) =>
      fromUl(ipv6({ src: PEER, dst: 'fc00:0:1::d6:1', nextHeader: NH_IPV6 }, inner));
    const big = (dst: string, payload: number) =>
      ipv6(
        { src: 'fd01:2::10', dst, nextHeader: NH_UDP, hopLimit: 64 },
        udp6('fd01:2::10', dst, 5000, 5001, new Uint8Array(payload).fill(0xab)),
      );
    beforeAll(async () => {
      setConfig(CFG_FIB | CFG_TRUSTSRC);
      const U4 = objectName('u4');
      await ns.ip('link', 'add', U4, 'mtu', '1400', 'type', 'veth', 'peer', 'name', objectName('u5'));
      await ns.ip('link', 'set', U4, 'up');
      await ns.ip('link', 'set', objectName('u5'), 'up');
      const links = await ns.ipJson<{ ifname: string; ifindex: number }[]>('link', 'show');
      const u4 = links.find((l) => l.ifname === U4)!.ifindex;
      obj
        .map(MAP.nexthops)
        .update(
          u32Key(SLOT),
          nexthopValue({ oif: u4, via: ip('2001:db8:4::2'), prefix: ip('fc00:0:2::'), prefixLength: 48 }),
        );
      putPolicy(
        obj,
        policyKey(1, v6(SLOTTED), 128, 'delivery'),
        policyValue({
          mode: 'encapRed',
          segments: [ip('fc00:0:2::e'), ip('fc00:0:2::d6:1')],
          source: src,
          slot: SLOT,
        }),
      );
    });

    it("re-encapsulated as before, then to the slot's next hop (the MACs left to its neighbour resolution); the same redirect without a slot by the FIB", () => {
      const inner = (hl: number) =>
        ipv6(
          { src: 'fd01:2::10', dst: SLOTTED, nextHeader: NH_ICMPV6, hopLimit: hl },
          echo6('fd01:2::10', SLOTTED, 0x57, 4),
        );
      const r = run('ul_in', atDt6(inner(64)));
      const s = srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1'], segmentsLeft: 1, lastEntry: 0 });
      expect(r.out).toBe(
        hexdump(
          fromUl(ipv6({ src: HOST_SRC, dst: 'fc00:0:2::e', nextHeader: NH_ROUTING }, concat(s, inner(63)))),
        ),
      );
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ redirect_move: 1, redirect_nexthop: 1 });
    });

    it("a redirect whose longer headers no longer fit the slot's link (its MTU, not the route's): its sender gets the PTB; the same size by the FIB path (slot 0, 1500) passes", () => {
      // 1380 + 64 bytes of new headers: over u4's 1400, under U0's 1500.
      const fits = run('ul_in', atDt6(big('fd01:1::31', 1380 - 48)));
      expect(fits.counted).toEqual({ redirect_move: 1, redirect: 1 });
      const r = run('ul_in', atDt6(big(SLOTTED, 1380 - 48)));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ ptb: 1, redirect: 1 });
      // Sent back by the sender's egress policy (fd01:2::/64: H.Encaps, 2 segments): outer 40 + SRH 40,
      // then the PTB from the SID it was sent to, MTU = 1400 - 64.
      const out = Uint8Array.from(r.data);
      const inner = 14 + 80;
      expect(Buffer.from(out.subarray(inner + 8, inner + 24)).toString('hex')).toBe(
        Buffer.from(v6('fc00:0:1::d6:1')).toString('hex'),
      );
      expect([out[inner + 6], out[inner + 40]]).toStrictEqual([NH_ICMPV6, 2]);
      expect(new DataView(out.buffer, inner + 44, 4).getUint32(0)).toBe(1400 - 64);
    });
  });

  describe("ul_in: End.DT* of a forward SID (edge aggregate mode): the tenant's forward key space of sm_policy, whole", () => {
    beforeAll(() => setConfig(CFG_FIB | CFG_TRUSTSRC));
    const FWD = 'fc00:0:1::f6:1';
    const toFwd = (inner: Bytes) => fromUl(srv6To(FWD, NH_IPV6, inner));
    const fromEdge = (dst: string, hl: number) =>
      ipv6(
        { src: '2001:db8:99::1', dst, nextHeader: NH_ICMPV6, hopLimit: hl },
        echo6('2001:db8:99::1', dst, 0x61, 5),
      );
    const reEncap = (dst: string, nh: number, payload: Bytes) =>
      toNh(ipv6({ src: HOST_SRC, dst, nextHeader: nh }, payload));

    it("a local workload: decapsulated and delivered with the forward entry's MACs (not table 101's), hop limit - 1; its /128 wins over the edge default ::/0", () => {
      const r = run('ul_in', toFwd(fromEdge('fd01:1::20', 64)));
      expect(r.out).toBe(hexdump(eth(LOCAL_WL_MAC, W0_MAC, ETH_IPV6, fromEdge('fd01:1::20', 63))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ dt6: 1, local: 1 });
      // Control: the same packet to the delivery SID goes by table 101 (the FIB: the workload's MAC).
      const d = run('ul_in', fromUl(srv6To('fc00:0:1::d6:1', NH_IPV6, fromEdge(WL6, 64))));
      expect(d.out).toBe(hexdump(eth(WL_MAC, W0_MAC, ETH_IPV6, fromEdge(WL6, 63))));
      expect(d.counted).toEqual({ dt6: 1, redirect: 1 });
    });

    it('a remote workload: re-encapsulated in place toward its host (reduced SRH, SL 1, LE 0); an address only the edge default covers: toward the edge (one segment, no SRH); per-SID counters', () => {
      const before = sidStats(FWD);
      const input = toFwd(fromEdge('fd01:2::10', 64));
      const r = run('ul_in', input);
      const s = srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1'], segmentsLeft: 1, lastEntry: 0 });
      expect(r.out).toBe(hexdump(reEncap('fc00:0:2::e', NH_ROUTING, concat(s, fromEdge('fd01:2::10', 63)))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ forward: 1, redirect: 1 });
      const edge = run('ul_in', toFwd(fromEdge('fd0e::10', 64)));
      expect(edge.out).toBe(hexdump(reEncap('fc00:0:2::d6:9', NH_IPV6, fromEdge('fd0e::10', 63))));
      expect(edge.counted).toEqual({ forward: 1, redirect: 1 });
      const after = sidStats(FWD);
      expect(after[0]! - before[0]!).toBe(2n);
    });

    it('IPv4 inner at a forward End.DT46: the v4-mapped forward entry, Ethernet type IPv4, TTL - 1 with its checksum', () => {
      const inner = (ttl: number) =>
        ipv4({ src: '198.18.99.1', dst: '198.18.1.20', protocol: 1, ttl }, echo4(9, 6));
      const r = run('ul_in', fromUl(srv6To('fc00:0:1::f46:1', NH_IPV4, inner(64))));
      expect(r.out).toBe(hexdump(eth(LOCAL_WL_MAC, W0_MAC, ETH_IPV4, inner(63))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ dt4: 1, local: 1 });
    });

    const drops: [string, () => Bytes, string][] = [
      ['an unreachable entry (mode drop)', () => toFwd(fromEdge('fd01:8::10', 64)), 'drop_policy'],
      [
        "no entry (tenant 2's forward scope is empty; tenant 1's has the destination)",
        () => fromUl(srv6To('fc00:0:1::f6:2', NH_IPV6, fromEdge('fd01:1::20', 64))),
        'drop_no_policy',
      ],
      [
        "a re-encapsulation toward one of this host's SIDs (a loop)",
        () => toFwd(fromEdge('fd01:1::32', 64)),
        'drop_redirect_loop',
      ],
      ['hop limit 1', () => toFwd(fromEdge('fd01:1::20', 1)), 'drop_hop_limit'],
    ];
    for (const [what, packet, reason] of drops) {
      it(`drops ${what}: ${reason}, counted on the underlay link; a delivery beside it`, () => {
        const control = run('ul_in', toFwd(fromEdge('fd01:1::20', 64)));
        expect(control.counted).toEqual({ dt6: 1, local: 1 });
        const r = run('ul_in', packet());
        expect(r.retval).toBe(TC_ACT_SHOT);
        expect(r.counted).toEqual({ [reason]: 1 });
        expect(r.linkCounted).toEqual({ [`${u0}:${reason}`]: 1 });
      });
    }
  });

  describe('wl_in: sm_blocked looked up only for no entry or one flagged POL_BLOCKED (its prefix overlaps a blocked one)', () => {
    beforeAll(() => setConfig(CFG_VALIDATE | CFG_FIB));
    const edgeKey6 = policyKey(1, v6('fd09::'), 16);
    const v4pkt = (dst: string) =>
      eth(W0_MAC, WL_MAC, ETH_IPV4, ipv4({ src: WL4, dst, protocol: 1 }, echo4(1, 1)));

    it('an edge entry holding a host address (flagged): the host address drops as drop_host_address, IPv6 and IPv4; the rest of the edge prefix and a non-overlapping entry are encapsulated', () => {
      const flags = obj.map(MAP.policy).lookup(edgeKey6)![2]!;
      expect(flags & POL_BLOCKED).toBe(POL_BLOCKED);
      expect(obj.map(MAP.policy).lookup(policyKey(1, v6('fd01:2::'), 64))![2]! & POL_BLOCKED).toBe(0);
      for (const [packet, ifx] of [
        [fromWl(wl6pkt('fd09::1', 64)), w0],
        [v4pkt('198.19.0.1'), w0],
      ] as const) {
        const r = run('wl_in', packet, ifx);
        expect(r.retval).toBe(TC_ACT_SHOT);
        expect(r.counted).toEqual({ drop_host_address: 1 });
        expect(r.linkCounted).toEqual({ [`${w0}:drop_host_address`]: 1 });
      }
      // Positive controls: the same flagged entries forward everything else; an unflagged entry forwards.
      for (const [packet, counted] of [
        [fromWl(wl6pkt('fd09::2', 64)), { encap_nosrh: 1, redirect: 1 }],
        [v4pkt('198.19.0.2'), { encap_nosrh: 1, redirect: 1 }],
        [fromWl(wl6pkt('fd01:2::10', 64)), { encap: 1, redirect: 1 }],
      ] as const) {
        const r = run('wl_in', packet);
        expect(r.retval).toBe(TC_ACT_REDIRECT);
        expect(r.counted).toEqual(counted);
        expect(r.linkCounted).toEqual({});
      }
    });

    it('the order of drop reasons stays: spoofed source before a host address, a host address before a Routing Header, a Routing Header before no policy', () => {
      const rh = (dst: string) =>
        fromWl(
          ipv6(
            { src: WL6, dst, nextHeader: NH_ROUTING },
            concat(
              srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:2'], segmentsLeft: 0 }),
              wl6pkt('fd02:2::10', 64),
            ),
          ),
        );
      for (const [packet, reason] of [
        [fromWl(wl6pkt('fd09::1', 64, 'fd01:1::99')), 'drop_spoof'],
        [rh('fd09::1'), 'drop_host_address'], // flagged entry
        [rh('fc00:0:2::d6:2'), 'drop_sid_block'], // no entry
        [rh('fd02:2::10'), 'drop_workload_srh'], // no entry, not blocked
        [rh('fd09::2'), 'drop_workload_srh'], // flagged entry, not blocked
      ] as const) {
        const r = run('wl_in', packet);
        expect(r.retval).toBe(TC_ACT_SHOT);
        expect(r.counted).toEqual({ [reason]: 1 });
      }
    });

    it('the flag is what sends the lookup: the same edge entry written without it lets the host address through (the lookup is skipped); written back, it drops again', () => {
      const pol = obj.map(MAP.policy);
      const flagged = pol.lookup(edgeKey6)!;
      const bare = Uint8Array.from(flagged);
      bare[2]! &= ~POL_BLOCKED;
      pol.update(edgeKey6, bare);
      try {
        const r = run('wl_in', fromWl(wl6pkt('fd09::1', 64)));
        expect(r.retval).toBe(TC_ACT_REDIRECT);
        expect(r.counted).toEqual({ encap_nosrh: 1, redirect: 1 });
      } finally {
        pol.update(edgeKey6, flagged);
      }
      const r = run('wl_in', fromWl(wl6pkt('fd09::1', 64)));
      expect(r.counted).toEqual({ drop_host_address: 1 });
    });
  });

  describe("wl_in on an SR-unaware function's link: what it hands back, by its return key space", () => {
    beforeAll(() => setConfig(CFG_VALIDATE | CFG_FIB));
    // The function forwards other workloads' packets: their sources, not its own.
    const handed = (dst: string, hl: number, src = 'fd01:2::10') =>
      ipv6({ src, dst, nextHeader: NH_ICMPV6, hopLimit: hl, flowLabel: 0x54321 }, echo6(src, dst, 0x62, 7));
    const fromNf = (l3: Bytes) => eth(N0_MAC, NF_MAC, ETH_IPV6, l3);

    it('a local workload delivered with its MACs; a remote one encapsulated by the return entry (one segment, no SRH), not by the egress entry for the same prefix (two segments); any source', () => {
      const r = run('wl_in', fromNf(handed('fd01:1::20', 64)), n0);
      expect(r.out).toBe(hexdump(eth(LOCAL_WL_MAC, W0_MAC, ETH_IPV6, handed('fd01:1::20', 63))));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.counted).toEqual({ local: 1 });
      const other = 'fd01:3::77'; // yet another source: still no spoofing drop on a function's link
      const e = run('wl_in', fromNf(handed('fd01:2::10', 64, other)), n0);
      const o = ipv6(
        { src: HOST_SRC, dst: 'fc00:0:2::d6:1', nextHeader: NH_IPV6, flowLabel: 0x54321 },
        handed('fd01:2::10', 63, other),
      );
      expect(e.out).toBe(hexdump(toNh(o)));
      expect(e.retval).toBe(TC_ACT_REDIRECT);
      expect(e.counted).toEqual({ encap_nosrh: 1, redirect: 1 });
      // Control: the workload's own link looks fd01:2::/64 up in tenant 1's egress (two segments).
      const wl = run('wl_in', fromWl(wl6pkt('fd01:2::10', 64)));
      expect(wl.counted).toEqual({ encap: 1, redirect: 1 });
    });

    const drops: [string, () => Bytes, string][] = [
      ['a SID (the SID block)', () => fromNf(handed('fc00:0:2::d6:1', 64)), 'drop_sid_block'],
      ['a host address', () => fromNf(handed('2001:db8:1::1', 64)), 'drop_host_address'],
      [
        'a Routing Header (the function may not steer)',
        () =>
          fromNf(
            ipv6(
              { src: 'fd01:2::10', dst: 'fd01:1::20', nextHeader: NH_ROUTING },
              concat(
                srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:2'], segmentsLeft: 0 }),
                wl6pkt('fd02:2::10', 64),
              ),
            ),
          ),
        'drop_workload_srh',
      ],
      [
        "UDP to the host's link-local address",
        () =>
          fromNf(
            ipv6(
              { src: 'fe80::20', dst: 'fe80::1', nextHeader: NH_UDP },
              udp6('fe80::20', 'fe80::1', 5000, 7946, new Uint8Array(16)),
            ),
          ),
        'drop_host_address',
      ],
      [
        'the end of its return scope (unreachable ::/0)',
        () => fromNf(handed('fd01:9::10', 64)),
        'drop_policy',
      ],
    ];
    for (const [what, packet, reason] of drops) {
      it(`drops ${what}: ${reason}, counted on the function's link; a handed-back packet beside it passes`, () => {
        const control = run('wl_in', fromNf(handed('fd01:1::20', 64)), n0);
        expect(control.counted).toEqual({ local: 1 });
        const r = run('wl_in', packet(), n0);
        expect(r.retval).toBe(TC_ACT_SHOT);
        expect(r.counted).toEqual({ [reason]: 1 });
        expect(r.linkCounted).toEqual({ [`${n0}:${reason}`]: 1 });
      });
    }
  });

  describe('sm_exact (the /128s, a hash) answers before the sm_policy LPM; a miss falls back to the LPM', () => {
    const src = ip(HOST_SRC);
    const exact = () => obj.map(MAP.exact);
    /** Writes `entries` (sm_exact key, value) for the duration of `fn`, then deletes them. */
    const withExact = (entries: [Bytes, Bytes][], fn: () => void) => {
      for (const [k, v] of entries) exact().update(k, v);
      try {
        fn();
      } finally {
        for (const [k] of entries) exact().delete(k);
      }
    };
    const localWl = () => policyValue({ mode: 'local', oif: w0, dmac: mac(LOCAL_WL_MAC), smac: mac(W0_MAC) });

    it('wl_in: a /128 in sm_exact under a covering prefix of sm_policy wins (delivered per its value, IPv6 and IPv4); another address under the prefix takes the LPM entry; the /128 gone, the LPM answers it', () => {
      setConfig(CFG_VALIDATE | CFG_FIB);
      const v4pkt = (dst: string, ttl: number) => ipv4({ src: WL4, dst, protocol: 1, ttl }, echo4(3, 1));
      withExact(
        [
          [exactKey(1, v6('fd01:2::77')), localWl()],
          [exactKey(1, v4Mapped('198.18.2.77')), localWl()],
        ],
        () => {
          const hit = run('wl_in', fromWl(wl6pkt('fd01:2::77', 64)));
          expect(hit.out).toBe(hexdump(eth(LOCAL_WL_MAC, W0_MAC, ETH_IPV6, wl6pkt('fd01:2::77', 63))));
          expect(hit.retval).toBe(TC_ACT_REDIRECT);
          expect(hit.counted).toEqual({ local: 1 });
          const hit4 = run('wl_in', eth(W0_MAC, WL_MAC, ETH_IPV4, v4pkt('198.18.2.77', 64)));
          expect(hit4.out).toBe(hexdump(eth(LOCAL_WL_MAC, W0_MAC, ETH_IPV4, v4pkt('198.18.2.77', 63))));
          expect(hit4.counted).toEqual({ local: 1 });
          // Positive control: the neighbours under the same prefixes take the LPM's encap entries.
          expect(run('wl_in', fromWl(wl6pkt('fd01:2::78', 64))).counted).toEqual({ encap: 1, redirect: 1 });
          const lpm4 = run('wl_in', eth(W0_MAC, WL_MAC, ETH_IPV4, v4pkt('198.18.2.78', 64)));
          expect(lpm4.counted).toEqual({ encap: 1, redirect: 1 });
        },
      );
      expect(run('wl_in', fromWl(wl6pkt('fd01:2::77', 64))).counted).toEqual({ encap: 1, redirect: 1 });
    });

    it('the hash is looked up first: a /128 in both maps is answered by sm_exact (the LPM is not reached on a hit)', () => {
      setConfig(CFG_VALIDATE | CFG_FIB);
      const lpmKey = policyKey(1, v6('fd01:2::79'), 128);
      obj.map(MAP.policy).update(lpmKey, policyValue({ mode: 'drop' }));
      try {
        expect(run('wl_in', fromWl(wl6pkt('fd01:2::79', 64))).counted).toEqual({ drop_policy: 1 });
        withExact([[exactOf(lpmKey), localWl()]], () => {
          expect(run('wl_in', fromWl(wl6pkt('fd01:2::79', 64))).counted).toEqual({ local: 1 });
        });
      } finally {
        obj.map(MAP.policy).delete(lpmKey);
      }
    });

    it('ul_in End.DT6 (delivery scope): a /128 in sm_exact under a redirect prefix of sm_policy is delivered locally; another address under the prefix is redirected (positive control)', () => {
      setConfig(CFG_FIB | CFG_TRUSTSRC);
      const toWl = (dst: string, hl: number) =>
        ipv6(
          { src: 'fd01:2::10', dst, nextHeader: NH_ICMPV6, hopLimit: hl },
          echo6('fd01:2::10', dst, 0x58, 5),
        );
      const atDt6 = (inner: Bytes) =>
        fromUl(ipv6({ src: PEER, dst: 'fc00:0:1::d6:1', nextHeader: NH_IPV6 }, inner));
      const prefixKey = policyKey(1, v6('fd01:1::50'), 124, 'delivery');
      obj
        .map(MAP.policy)
        .update(prefixKey, policyValue({ mode: 'encapRed', segments: [ip('fc00:0:2::d6:1')], source: src }));
      try {
        const delivered = policyValue({ mode: 'local', oif: w0, dmac: mac(DELIVERY_MAC), smac: mac(W0_MAC) });
        withExact([[exactKey(1, v6('fd01:1::55'), 'delivery'), delivered]], () => {
          const r = run('ul_in', atDt6(toWl('fd01:1::55', 64)));
          expect(r.out).toBe(hexdump(eth(DELIVERY_MAC, W0_MAC, ETH_IPV6, toWl('fd01:1::55', 63))));
          expect(r.counted).toEqual({ dt6: 1, local: 1 });
          const moved = run('ul_in', atDt6(toWl('fd01:1::56', 64)));
          expect(moved.out).toBe(
            hexdump(
              toNh(
                ipv6({ src: HOST_SRC, dst: 'fc00:0:2::d6:1', nextHeader: NH_IPV6 }, toWl('fd01:1::56', 63)),
              ),
            ),
          );
          expect(moved.counted).toEqual({ redirect_move: 1, redirect: 1 });
        });
      } finally {
        obj.map(MAP.policy).delete(prefixKey);
      }
    });

    it('a /128 in sm_exact flagged POL_BLOCKED still gets the sm_blocked check (a host address drops, IPv6 and IPv4); the same /128 unflagged is encapsulated per its own value', () => {
      setConfig(CFG_VALIDATE | CFG_FIB);
      const v4pkt = (dst: string) =>
        eth(W0_MAC, WL_MAC, ETH_IPV4, ipv4({ src: WL4, dst, protocol: 1 }, echo4(1, 1)));
      const own = (blocked: boolean) =>
        policyValue({ mode: 'encap', segments: [ip('fc00:0:9::d6:1')], source: src, blocked });
      const keys = [exactKey(1, v6('fd09::1')), exactKey(1, v4Mapped('198.19.0.1'))];
      withExact(
        keys.map((k) => [k, own(true)]),
        () => {
          for (const packet of [fromWl(wl6pkt('fd09::1', 64)), v4pkt('198.19.0.1')]) {
            const r = run('wl_in', packet);
            expect(r.retval).toBe(TC_ACT_SHOT);
            expect(r.counted).toEqual({ drop_host_address: 1 });
          }
        },
      );
      withExact(
        keys.map((k) => [k, own(false)]),
        () => {
          const r = run('wl_in', fromWl(wl6pkt('fd09::1', 64)));
          expect(r.out).toBe(hexdump(toNh(outer('fc00:0:9::d6:1', NH_IPV6, wl6pkt('fd09::1', 63)))));
          expect(r.counted).toEqual({ encap_nosrh: 1, redirect: 1 });
          expect(run('wl_in', v4pkt('198.19.0.1')).counted).toEqual({ encap_nosrh: 1, redirect: 1 });
        },
      );
    });
  });

  describe('ul_in: malformed SRHs are dropped and counted, the well-formed packet beside each is not', () => {
    beforeAll(() => setConfig(CFG_FIB | CFG_TRUSTSRC));
    const endPkt = (s: Bytes, payloadLength?: number, tail: Bytes = remoteInner(64)) =>
      fromUl(ipv6({ src: PEER, dst: 'fc00:0:1::e', nextHeader: NH_ROUTING, payloadLength }, concat(s, tail)));
    const good = () =>
      srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1', 'fc00:0:1::e'], segmentsLeft: 1 });
    const cases: [string, () => Bytes, string][] = [
      [
        'Segments Left beyond Last Entry + 1',
        () =>
          endPkt(
            srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:2::d6:1', 'fc00:0:1::e'], segmentsLeft: 3 }),
          ),
        'drop_srh_segments_left',
      ],
      [
        'a header length past the end of the packet',
        () =>
          endPkt(
            srh({
              nextHeader: 59,
              segmentList: ['fc00:0:2::d6:1', 'fc00:0:1::e'],
              segmentsLeft: 1,
              hdrExtLen: 20,
            }),
            undefined,
            new Uint8Array(0),
          ),
        'drop_srh_length',
      ],
      [
        'a Last Entry past the header length',
        () =>
          endPkt(
            srh({
              nextHeader: NH_IPV6,
              segmentList: ['fc00:0:2::d6:1', 'fc00:0:1::e'],
              segmentsLeft: 1,
              lastEntry: 5,
            }),
          ),
        'drop_srh_length',
      ],
      [
        'a payload length beyond the packet (truncated)',
        () => endPkt(good(), 40 + 104 + 200),
        'drop_truncated',
      ],
      [
        'an SRH cut after 4 bytes',
        () => endPkt(good().subarray(0, 4), undefined, new Uint8Array(0)),
        'drop_truncated',
      ],
      [
        'a routing header of type 0',
        () =>
          endPkt(
            srh({
              nextHeader: NH_IPV6,
              segmentList: ['fc00:0:2::d6:1', 'fc00:0:1::e'],
              segmentsLeft: 1,
              routingType: 0,
            }),
          ),
        'drop_srh_type',
      ],
      [
        'End with Segments Left 0',
        () => endPkt(srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:1::e'], segmentsLeft: 0 })),
        'drop_segments_left_zero',
      ],
      [
        'End without an SRH',
        () => fromUl(ipv6({ src: PEER, dst: 'fc00:0:1::e', nextHeader: NH_IPV6 }, remoteInner(64))),
        'drop_srh_type',
      ],
      [
        'End.DT6 with segments left',
        () =>
          fromUl(
            ipv6(
              { src: PEER, dst: 'fc00:0:1::d6:1', nextHeader: NH_ROUTING },
              concat(
                srh({
                  nextHeader: NH_IPV6,
                  segmentList: ['fc00:0:2::d6:1', 'fc00:0:1::d6:1'],
                  segmentsLeft: 1,
                }),
                remoteInner(64),
              ),
            ),
          ),
        'drop_segments_left_nonzero',
      ],
      [
        'End with hop limit 1',
        () =>
          fromUl(
            ipv6(
              { src: PEER, dst: 'fc00:0:1::e', nextHeader: NH_ROUTING, hopLimit: 1 },
              concat(good(), remoteInner(64)),
            ),
          ),
        'drop_hop_limit',
      ],
    ];
    for (const [what, packet, reason] of cases) {
      it(`${what}: ${reason}`, () => {
        const control = run('ul_in', endPkt(good()));
        expect(control.retval).toBe(TC_ACT_REDIRECT);
        expect(control.counted).toEqual({ end: 1, redirect: 1 });
        expect(control.linkCounted).toEqual({});
        const r = run('ul_in', packet());
        expect(r.retval).toBe(TC_ACT_SHOT);
        expect(r.counted).toEqual({ [reason]: 1 });
        expect(r.linkCounted).toEqual({ [`${u0}:${reason}`]: 1 }); // per link too
      });
    }
  });

  /** Every slot of sm_sid_stats (one batch dump), packets and bytes summed over CPUs. */
  function slotSums(): Map<number, [bigint, bigint]> {
    const m = obj.map(MAP.sidStats);
    const out = new Map<number, [bigint, bigint]>();
    for (const [k, v] of m.entries()) {
      const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
      let p = 0n;
      let b = 0n;
      for (let at = 0; at < v.length; at += 16) {
        p += dv.getBigUint64(at, true);
        b += dv.getBigUint64(at + 8, true);
      }
      out.set(new DataView(k.buffer, k.byteOffset, 4).getUint32(0, true), [p, b]);
    }
    return out;
  }

  /** The slots whose sums differ, with the difference. */
  function slotDelta(
    a: Map<number, [bigint, bigint]>,
    b: Map<number, [bigint, bigint]>,
  ): Map<number, bigint[]> {
    expect(b.size).toBe(a.size);
    const out = new Map<number, bigint[]>();
    for (const [slot, [p, by]] of b) {
      const [p0, b0] = a.get(slot)!;
      if (p !== p0 || by !== b0) out.set(slot, [p - p0, by - b0]);
    }
    return out;
  }

  /** A SID's packets and bytes: its counter slot's, all CPUs summed. */
  function sidStats(sid: string): bigint[] {
    const slot = SID_SLOT.get(sid);
    if (slot === undefined) throw new Error(`${sid}: no counter slot`);
    return obj.map(MAP.sidStats).lookupSum(u32Key(slot)) ?? [0n, 0n];
  }
});

/** The counter slot of each SID the fixture installs (sm_sids values, sm_sid_stats index). */
const SID_SLOT = new Map<string, number>();

// ---- packets ----

function fromWl(l3: Bytes): Bytes {
  return eth(W0_MAC, WL_MAC, ETH_IPV6, l3);
}
function fromUl(l3: Bytes): Bytes {
  return eth(U0_MAC, NH_MAC, ETH_IPV6, l3);
}
/** After a FIB lookup toward the underlay next hop. */
function toNh(l3: Bytes): Bytes {
  return eth(NH_MAC, U0_MAC, ETH_IPV6, l3);
}
function wl6pkt(dst: string, hopLimit: number, src = WL6): Bytes {
  return ipv6(
    { src, dst, nextHeader: NH_ICMPV6, hopLimit, flowLabel: 0x12345, trafficClass: 0x20 },
    echo6(src, dst, 0x77, 1),
  );
}
function udpPkt(dst: string, payload: number): Bytes {
  return ipv6(
    { src: WL6, dst, nextHeader: NH_UDP },
    udp6(WL6, dst, 5000, 5001, new Uint8Array(payload).fill(0xab)),
  );
}
function udp6pkt(dst: string, port: number): Bytes {
  return ipv6({ src: WL6, dst, nextHeader: NH_UDP }, udp6(WL6, dst, 5000, port, new Uint8Array(16)));
}
function outer(dst: string, nh: number, payload: Bytes): Bytes {
  return ipv6({ src: HOST_SRC, dst, nextHeader: nh, flowLabel: 0x12345, trafficClass: 0x20 }, payload);
}
function remoteInner(hopLimit: number): Bytes {
  return ipv6(
    { src: 'fd01:2::10', dst: WL6, nextHeader: NH_ICMPV6, hopLimit },
    echo6('fd01:2::10', WL6, 0x55, 2),
  );
}
function srv6To(sid: string, nh: number, inner: Bytes): Bytes {
  return ipv6(
    { src: PEER, dst: sid, nextHeader: NH_ROUTING },
    concat(srh({ nextHeader: nh, segmentList: [sid, 'fc00:0:3::e'], segmentsLeft: 0 }), inner),
  );
}
function segList(n: number): string[] {
  return Array.from({ length: n }, (_, i) =>
    i === n - 1 ? 'fc00:0:2::d6:1' : i === 0 ? 'fc00:0:2::e' : `fc00:0:2::e${i}`,
  );
}

// ---- map contents ----

/** sm_blocked: SID block, host addresses (fd09::1 and 198.19.0.1 inside an edge entry of tenant 1). */
const DENIED: [Bytes, number, 'drop_sid_block' | 'drop_host_address'][] = [
  [v6('fc00::'), 32, 'drop_sid_block'],
  [v6('2001:db8::'), 32, 'drop_host_address'],
  [v4Mapped('198.18.1.1'), 128, 'drop_host_address'],
  [v6('fd09::1'), 128, 'drop_host_address'],
  [v4Mapped('198.19.0.1'), 128, 'drop_host_address'],
];
/** Whether an entry of wl_in's key spaces overlaps DENIED: POL_BLOCKED, as the lowering sets it. */
const overlapsDenied = (() => {
  const b = new BlockedPrefixes(DENIED.map(([a, length]) => ({ address: ipv6FromBytes(a), length })));
  return (dst: Bytes, len: number) => b.overlaps({ address: ipv6FromBytes(dst), length: len });
})();

/** A policy entry where the lowering puts it: a /128 in sm_exact (by its key's tail), the rest in sm_policy. */
function putPolicy(obj: BpfObject, key: Bytes, value: Bytes): void {
  if (isExactPolicy(key)) obj.map(MAP.exact).update(exactOf(key), value);
  else obj.map(MAP.policy).update(key, value);
}

function populate(obj: BpfObject, w0: number, n0: number): void {
  obj.map(MAP.endpoints).update(ifindexKey(w0), endpointValue({ tenant: 1, addr6: ip(WL6), addr4: WL4 }));
  const pol = { update: (k: Bytes, v: Bytes) => putPolicy(obj, k, v) };
  const src = ip(HOST_SRC);
  const put = (dst: Bytes, len: number, v: Parameters<typeof policyValue>[0]) =>
    pol.update(policyKey(1, dst, len), policyValue({ source: src, blocked: overlapsDenied(dst, len), ...v }));
  const two = [ip('fc00:0:2::e'), ip('fc00:0:2::d6:1')];
  put(v6('fd01:2::'), 64, { mode: 'encap', segments: two });
  put(v6('fd01:3::'), 64, { mode: 'encapRed', segments: two });
  put(v6('fd01:4::'), 64, { mode: 'encap', segments: [ip('fc00:0:2::d6:1')] });
  put(v6('fd01:5::'), 64, { mode: 'encap', segments: [ip('fc00:0:2::d6:1')], srh: true });
  put(v6('fd01:6::'), 64, { mode: 'encap', segments: segList(4).map(ip) });
  put(v6('fd01:7::'), 64, { mode: 'encap', segments: segList(8).map(ip) });
  put(v6('fd01:8::'), 64, { mode: 'drop' });
  put(v6('fd01:9::'), 64, { mode: 'encap', segments: [ip('fc00:0:9::d6:1')] });
  put(v6('fd01:1::20'), 128, { mode: 'local', oif: w0, dmac: mac(LOCAL_WL_MAC), smac: mac(W0_MAC) });
  put(v4Mapped('198.18.9.0'), 120, { mode: 'encap', segments: [ip('fc00:0:9::d4:1')] });
  put(v4Mapped('198.18.2.0'), 120, { mode: 'encap', segments: [ip('fc00:0:2::e'), ip('fc00:0:2::d4:1')] });
  // Edge prefixes with a host address inside (DENIED): flagged, so wl_in looks sm_blocked up for them.
  put(v6('fd09::'), 16, { mode: 'encap', segments: [ip('fc00:0:2::d6:1')] });
  put(v4Mapped('198.19.0.0'), 112, { mode: 'encap', segments: [ip('fc00:0:2::d4:1')] });
  // Tenant 2 has a route to the same destination: the policy key separates tenants.
  pol.update(policyKey(2, v6('fd02:2::'), 64), policyValue({ mode: 'encap', segments: two, source: src }));
  // Delivery key space: redirects of tenant 1's workloads that moved away (and one for tenant 2, whose
  // End.DT6 below is not a delivery SID).
  const moved = (t: number, dst: Bytes, len: number, v: Parameters<typeof policyValue>[0]) =>
    pol.update(policyKey(t, dst, len, 'delivery'), policyValue({ source: src, ...v }));
  moved(1, v6('fd01:1::30'), 128, { mode: 'encapRed', segments: [ip('fc00:0:2::d6:1')] });
  moved(1, v6('fd01:1::31'), 128, { mode: 'encapRed', segments: two });
  moved(1, v6('fd01:1::32'), 128, { mode: 'encapRed', segments: [ip('fc00:0:1::d6:1')] });
  moved(1, v4Mapped('198.18.1.30'), 128, { mode: 'encap', segments: [ip('fc00:0:2::d4:1')] });
  moved(2, v6('fd01:1::30'), 128, { mode: 'encapRed', segments: [ip('fc00:0:2::d6:1')] });
  // Local workloads' delivery entries (mode local): End.DT* of a delivery SID delivers from them, no FIB
  // lookup. DELIVERY_MAC is not what table 101's neighbour entry would give: the bytes show which.
  const delivered = { mode: 'local' as const, oif: w0, dmac: mac(DELIVERY_MAC), smac: mac(W0_MAC) };
  moved(1, v6('fd01:1::40'), 128, delivered);
  moved(1, v4Mapped('198.18.1.40'), 128, delivered);
  moved(2, v6('fd01:1::40'), 128, delivered);
  // Forward key space of tenant 1 (End.DT* of its forward SID): the whole scope, an edge default under
  // a local /128 (LOCAL_WL_MAC: not what table 101's FIB lookup would write).
  const local = { mode: 'local' as const, oif: w0, dmac: mac(LOCAL_WL_MAC), smac: mac(W0_MAC) };
  const fwd = (dst: Bytes, len: number, v: Parameters<typeof policyValue>[0]) =>
    pol.update(policyKey(1, dst, len, 'forward'), policyValue({ source: src, ...v }));
  fwd(v6('::'), 0, { mode: 'encap', segments: [ip('fc00:0:2::d6:9')] });
  fwd(v6('fd01:1::20'), 128, local);
  fwd(v4Mapped('198.18.1.20'), 128, local);
  fwd(v6('fd01:2::'), 64, { mode: 'encapRed', segments: two });
  fwd(v6('fd01:8::'), 64, { mode: 'drop' });
  fwd(v6('fd01:1::32'), 128, { mode: 'encapRed', segments: [ip('fc00:0:1::d6:1')] });
  // Return key space of the function behind n0: a local workload, one remote prefix, then unreachable.
  obj.map(MAP.endpoints).update(ifindexKey(n0), endpointValue({ returnOf: NF_INDEX }));
  const ret = (dst: Bytes, len: number, v: Parameters<typeof policyValue>[0]) =>
    pol.update(
      policyKey(NF_INDEX, dst, len, 'return'),
      policyValue({ source: src, blocked: overlapsDenied(dst, len), ...v }),
    );
  ret(v6('fd01:1::20'), 128, local);
  ret(v6('fd01:2::'), 64, { mode: 'encap', segments: [ip('fc00:0:2::d6:1')] });
  ret(v6('::'), 0, { mode: 'drop' });

  const blocked = obj.map(MAP.blocked);
  for (const [a, len, reason] of DENIED) blocked.update(addrKey(a, len), reasonValue(reason));
  obj.map(MAP.trusted).update(addrKey(v6('2001:db8::'), 32), u32Key(1));

  const sids = obj.map(MAP.sids);
  // Each SID its counter slot, from 1 in this order, as the lowering gives them.
  const putSid = (a: string, v: SidValue) => {
    const slot = SID_SLOT.get(a) ?? SID_SLOT.size + 1;
    SID_SLOT.set(a, slot);
    sids.update(sidKey(ip(a)), sidValue({ ...v, slot }));
  };
  putSid('fc00:0:1::e', { behavior: 'End' });
  putSid('fc00:0:1::e1', { behavior: 'End.X', oif: 1, nexthop: ip('2001:db8:1::2') });
  putSid('fc00:0:1::d6:1', { behavior: 'End.DT6', table: 101, tenant: 1, delivery: true });
  putSid('fc00:0:1::d6:2', { behavior: 'End.DT6', table: 102, tenant: 2 });
  putSid('fc00:0:1::d4:1', { behavior: 'End.DT4', table: 101, tenant: 1 });
  putSid('fc00:0:1::d46:1', { behavior: 'End.DT46', table: 101, tenant: 1, delivery: true });
  putSid('fc00:0:1::6:1', { behavior: 'End.DX6', oif: w0, nexthop: ip(WL6) });
  // Forward SIDs (edge aggregate mode): tenant 1 with IPv6 and IPv4 inner, tenant 2 with nothing there.
  putSid('fc00:0:1::f6:1', { behavior: 'End.DT6', table: 101, tenant: 1, forward: true });
  putSid('fc00:0:1::f46:1', { behavior: 'End.DT46', table: 101, tenant: 1, forward: true });
  putSid('fc00:0:1::f6:2', { behavior: 'End.DT6', table: 102, tenant: 2, forward: true });
  putSid('fc00:0:1::4:1', { behavior: 'End.DX4', oif: w0, nexthop: WL4 });
}
