/**
 * A/B of two datapath objects by BPF_PROG_TEST_RUN (not a benchmark of its own: a tool for changes to
 * bpf/): `node bench/_ebpf_ab.ts OLD.o NEW.o [RUNS]`. In a fresh namespace with the routes and
 * neighbours of test/system/ebpf/datapath.test.ts, both objects get the same map entries; each case runs
 * once per call (repeat 1: the packet is rewritten), objects alternating, RUNS times; the median of the
 * kernel's reported duration per case and object is printed. Each run's verdict and counters must match
 * the case's expectation before its time counts. BPF_PROG_TEST_RUN's skb is linear and unshared, so
 * the figures are relative ones (no GSO, no pull, no unclone). Egress entries carry POL_BLOCKED where
 * their prefix overlaps a blocked one, as the lowering writes them; an object of before the flag reads
 * only SM_POL_F_SRH of that byte and ignores it (it looks sm_blocked up for every packet). The /128s
 * (the delivery entry, BULK workloads of another host) go where each object looks them up: sm_exact
 * when it has one, else sm_policy (an object of before sm_exact), as the backend writes them.
 */
import {
  addrKey,
  CFG_FIB,
  CFG_TRUSTSRC,
  CFG_VALIDATE,
  configValue,
  endpointValue,
  exactOf,
  ifindexKey,
  isExactPolicy,
  MAP,
  nexthopValue,
  policyKey,
  policyValue,
  reasonValue,
  sidKey,
  sidValue,
  u32Key,
} from '../src/dataplane/ebpf/abi.ts';
import { BpfObject } from '../src/dataplane/ebpf/libbpf.ts';
import { BlockedPrefixes } from '../src/dataplane/ebpf/lower.ts';
import { ipv6FromBytes, parseIpv6 } from '../src/srv6/address.ts';
import { Netns, objectName } from '../test/harness/index.ts';
import {
  type Bytes,
  concat,
  ETH_IPV6,
  eth,
  ipv6,
  mac,
  NH_IPV6,
  NH_ROUTING,
  NH_TCP,
  srh,
  tcpSyn6,
  v6,
} from '../test/harness/packet.ts';
import { counters, delta, enterNetns, vethPair } from '../test/system/ebpf/fixture.ts';
import { median } from './_stats.ts';

const [oldPath, newPath] = process.argv.slice(2);
const RUNS = Number(process.argv[4] ?? 3000);
/** Remote workloads' /128s in tenant 1's egress (fd01:5::1..BULK): the trie's size where most entries are these. */
const BULK = Number(process.env.AB_BULK ?? 10_000);
if (!(BULK >= 1)) throw new Error(`AB_BULK=${process.env.AB_BULK}: at least 1`);
if (!oldPath || !newPath) throw new Error('usage: node bench/_ebpf_ab.ts OLD.o NEW.o [RUNS]');
const ip = parseIpv6;
const U0_MAC = '02:00:00:00:00:01';
const NH_MAC = '02:00:00:00:00:02';
const W0_MAC = '02:00:00:00:0a:01';
const WL_MAC = '02:00:00:00:0a:10';
const HOST_SRC = 'fc00:0:1::1';
const WL6 = 'fd01:1::10';
const PEER = '2001:db8:2::1';

// sm_blocked: the SID block and the underlay address; which egress entries overlap them (POL_BLOCKED).
const DENIED = [
  [v6('fc00::'), 32, 'drop_sid_block'],
  [v6('2001:db8:1::1'), 128, 'drop_host_address'],
  [v6('fd09::1'), 128, 'drop_host_address'], // a host address inside the edge prefix fd09::/16
] as const;
const denied = new BlockedPrefixes(DENIED.map(([a, length]) => ({ address: ipv6FromBytes(a), length })));
const blocked = (dst: Uint8Array, length: number) => denied.overlaps({ address: ipv6FromBytes(dst), length });

const ns = await Netns.create(objectName('ab'));
let leave: (() => void) | undefined;
const objs: BpfObject[] = [];
try {
  await ns.sysctl('net.ipv6.conf.all.forwarding', '1');
  const [U0, W0] = [objectName('u0'), objectName('w0')];
  await vethPair(ns, U0, U0_MAC, objectName('u1'), NH_MAC);
  await vethPair(ns, W0, W0_MAC, objectName('w1'), WL_MAC);
  await ns.ip('-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', U0, 'nodad');
  await ns.ip('-6', 'neigh', 'replace', '2001:db8:1::2', 'lladdr', NH_MAC, 'dev', U0, 'nud', 'permanent');
  await ns.ip('-6', 'route', 'add', 'fc00:0:2::/48', 'via', '2001:db8:1::2', 'dev', U0);
  await ns.ip('-6', 'route', 'add', 'fd01:1::/64', 'dev', W0, 'table', '101');
  await ns.ip('-6', 'neigh', 'replace', WL6, 'lladdr', WL_MAC, 'dev', W0, 'nud', 'permanent');
  const links = await ns.ipJson<{ ifname: string; ifindex: number }[]>('link', 'show');
  const u0 = links.find((l) => l.ifname === U0)!.ifindex;
  const w0 = links.find((l) => l.ifname === W0)!.ifindex;
  leave = enterNetns(ns.name);
  for (const path of [oldPath, newPath]) {
    const o = BpfObject.load(path);
    objs.push(o);
    o.map(MAP.config).update(u32Key(0), configValue(CFG_VALIDATE | CFG_FIB | CFG_TRUSTSRC));
    o.map(MAP.endpoints).update(ifindexKey(w0), endpointValue({ tenant: 1, addr6: ip(WL6) }));
    const src = ip(HOST_SRC);
    const lpm = o.map(MAP.policy);
    const exact = o.maps.get(MAP.exact);
    // A /128 into sm_exact where the object has it, as the backend writes it; the rest into sm_policy.
    const pol = {
      update: (k: Uint8Array, v: Uint8Array) =>
        exact && isExactPolicy(k) ? exact.update(exactOf(k), v) : lpm.update(k, v),
    };
    // What the lowering writes for fc00:0:2::/48 as an underlay locator: its next hop in slot 1, named
    // by the encap policies (an object without sm_nexthops ignores the slot: its FIB lookup).
    const slot = 1;
    o.maps
      .get(MAP.nexthops)
      ?.update(
        u32Key(slot),
        nexthopValue({ oif: u0, via: ip('2001:db8:1::2'), prefix: ip('fc00:0:2::'), prefixLength: 48 }),
      );
    pol.update(
      policyKey(1, v6('fd01:2::'), 64),
      policyValue({
        mode: 'encap',
        segments: [ip('fc00:0:2::e'), ip('fc00:0:2::d6:1')],
        source: src,
        slot,
        blocked: blocked(v6('fd01:2::'), 64),
      }),
    );
    pol.update(policyKey(1, v6('::'), 0), policyValue({ mode: 'drop', blocked: blocked(v6('::'), 0) }));
    pol.update(
      policyKey(1, v6('fd01:4::'), 64),
      policyValue({
        mode: 'encap',
        segments: [ip('fc00:0:2::d6:1')],
        source: src,
        slot,
        blocked: blocked(v6('fd01:4::'), 64),
      }),
    );
    // An edge prefix holding a host address: flagged, sm_blocked looked up for it (the new object's
    // slower path; the old object's only one).
    pol.update(
      policyKey(1, v6('fd09::'), 16),
      policyValue({
        mode: 'encap',
        segments: [ip('fc00:0:2::d6:1')],
        source: src,
        slot,
        blocked: blocked(v6('fd09::'), 16),
      }),
    );
    // What the lowering now writes for a local workload: its delivery entry (an older object ignores it).
    pol.update(
      policyKey(1, v6(WL6), 128, 'delivery'),
      policyValue({ mode: 'local', oif: w0, dmac: mac(WL_MAC), smac: mac(W0_MAC) }),
    );
    const bulkKeys: Uint8Array[] = [];
    const bulkValues: Uint8Array[] = [];
    const one = policyValue({ mode: 'encap', segments: [ip('fc00:0:2::d6:1')], source: src, slot });
    for (let i = 1; i <= BULK; i++) {
      const k = policyKey(1, ip('fd01:5::') + BigInt(i), 128);
      bulkKeys.push(exact ? exactOf(k) : k);
      bulkValues.push(one);
    }
    (exact ?? lpm).updateMany(bulkKeys, bulkValues);
    for (const [a, len, reason] of DENIED) o.map(MAP.blocked).update(addrKey(a, len), reasonValue(reason));
    o.map(MAP.trusted).update(addrKey(v6('2001:db8::'), 32), u32Key(1));
    // Counter slots as the lowering gives them (an object of before sm_sid.slot reads neither: its
    // sm_sid_stats is keyed by the SID).
    o.map(MAP.sids).update(sidKey(ip('fc00:0:1::e')), sidValue({ behavior: 'End', slot: 1 }));
    o.map(MAP.sids).update(
      sidKey(ip('fc00:0:1::d6:1')),
      sidValue({ behavior: 'End.DT6', table: 101, tenant: 1, delivery: true, slot: 2 }),
    );
  }
  const tcp = (src: string, dst: string, pad: number) =>
    ipv6(
      { src, dst, nextHeader: NH_TCP, hopLimit: 64 },
      concat(tcpSyn6(src, dst, 40000, 5201), new Uint8Array(pad)),
    );
  const cases: {
    name: string;
    prog: 'wl_in' | 'ul_in';
    data: Bytes;
    ifx: number;
    want: Record<string, number>;
  }[] = [
    {
      name: 'encap (wl_in, TCP 1400 B, 2 segments, next hop or fib + redirect)',
      prog: 'wl_in',
      data: eth(W0_MAC, WL_MAC, ETH_IPV6, tcp(WL6, 'fd01:2::10', 1340)),
      ifx: w0,
      want: { encap: 1, redirect: 1 },
    },
    {
      // 40 bytes fit the test run's headroom: no reallocation of the head in the figure.
      name: 'encap_ack (wl_in, TCP 74 B, 1 segment, next hop or fib + redirect)',
      prog: 'wl_in',
      data: eth(W0_MAC, WL_MAC, ETH_IPV6, tcp(WL6, 'fd01:4::10', 0)),
      ifx: w0,
      want: { encap_nosrh: 1, redirect: 1 },
    },
    {
      name: `encap_wl_ack (wl_in, as encap_ack by a workload's /128, ${BULK} of them)`,
      prog: 'wl_in',
      data: eth(W0_MAC, WL_MAC, ETH_IPV6, tcp(WL6, `fd01:5::${Math.max(1, BULK >> 1).toString(16)}`, 0)),
      ifx: w0,
      want: { encap_nosrh: 1, redirect: 1 },
    },
    {
      name: 'encap_edge_ack (wl_in, as encap_ack by an entry with POL_BLOCKED)',
      prog: 'wl_in',
      data: eth(W0_MAC, WL_MAC, ETH_IPV6, tcp(WL6, 'fd09::10', 0)),
      ifx: w0,
      want: { encap_nosrh: 1, redirect: 1 },
    },
    {
      name: 'dt6_ack (ul_in, End.DT6 without SRH, 74 B inner)',
      prog: 'ul_in',
      data: eth(
        U0_MAC,
        NH_MAC,
        ETH_IPV6,
        ipv6({ src: PEER, dst: 'fc00:0:1::d6:1', nextHeader: NH_IPV6 }, tcp('fd01:2::10', WL6, 0)),
      ),
      ifx: u0,
      want: { dt6: 1 },
    },
    {
      name: 'end_dt6 (ul_in, End then End.DT6, SRH of 2)',
      prog: 'ul_in',
      data: eth(
        U0_MAC,
        NH_MAC,
        ETH_IPV6,
        ipv6(
          { src: PEER, dst: 'fc00:0:1::e', nextHeader: NH_ROUTING },
          concat(
            srh({ nextHeader: NH_IPV6, segmentList: ['fc00:0:1::d6:1', 'fc00:0:1::e'], segmentsLeft: 1 }),
            tcp('fd01:2::10', WL6, 1340),
          ),
        ),
      ),
      ifx: u0,
      want: { end: 1, dt6: 1 },
    },
  ];
  const times = cases.map(() => [[], []] as number[][]);
  for (let i = 0; i < RUNS; i++)
    for (const [c, k] of cases.entries())
      for (const j of i % 2 === 0 ? [0, 1] : [1, 0]) {
        const o = objs[j]!;
        const before = counters(o);
        const r = o.program(k.prog).testRun({ data: k.data, ingressIfindex: k.ifx, ifindex: k.ifx });
        const d = delta(before, counters(o));
        // `redirect`: by the FIB's answer, or to an agent-resolved next hop.
        const got = (reason: string) =>
          reason === 'redirect' ? (d.redirect ?? 0) + (d.redirect_nexthop ?? 0) : d[reason];
        for (const [reason, n] of Object.entries(k.want))
          if (got(reason) !== n) throw new Error(`${k.name}, object ${j}: counters ${JSON.stringify(d)}`);
        if (r.retval !== 7) throw new Error(`${k.name}, object ${j}: verdict ${r.retval}`);
        times[c]![j]!.push(r.durationNs);
      }
  console.log(`BPF_PROG_TEST_RUN, repeat 1, ${RUNS} runs per case and object (alternating), median ns:`);
  for (const [c, k] of cases.entries()) {
    const [a, b] = [median(times[c]![0]!), median(times[c]![1]!)];
    console.log(
      `  ${k.name.padEnd(56)} old ${a.toFixed(0).padStart(5)}  new ${b.toFixed(0).padStart(5)}  new/old ${(b / a).toFixed(2)}`,
    );
  }
} finally {
  for (const o of objs) o.close();
  leave?.();
  await ns.destroy();
}
