/**
 * `npm run bench -- ebpf [REPS] [SECONDS]`: the eBPF data plane (bpf/segmesh.c through EbpfBackend) on
 * any kernel with BPF and tcx, two hosts (namespaces on one underlay veth), workload a1 on host 1 and
 * a2 on host 2 (test/system/ebpf/fixture.ts). In one run:
 *
 * 1. Forwarded TCP (iperf3, 1 stream, a1 -> a2), variants interleaved within each repetition (order
 *    reversed every other one): `plain` IPv6 forwarding by the hosts' stacks with no BPF attached (the
 *    anchor: main-table routes, the tcx links removed); `encap` (H.Encaps, 2 segments: End then
 *    End.DT6, both on host 2); `encap.red`; `encap-noval` (encap with the object built with
 *    -DSM_NO_VALIDATE: validation compiled out, swapped in by link update); with BENCH_NOCOUNT=1 also
 *    `encap-nocount` (-DSM_NO_COUNTERS: the per-reason and per-SID counters compiled out, what counting
 *    costs; its runs are checked by sm_link_drops, which stays); with BENCH_BASE_OBJECT=FILE
 *    also `encap-base` (encap with that object, e.g. main's build, swapped in the same way: an A/B of a
 *    datapath change within one run, whatever the machine's load does between runs). ACKs return with one
 *    segment (End.DT6 on host 1, no SRH) in every SRv6 variant. Workload MTU 1420 in every variant (same
 *    MSS). Before timing, a ping per variant is captured on host 2's underlay and tshark must decode the
 *    SRH the variant promises (none for plain); every timed run must show the BPF counters of its
 *    variant moving and no drop (plain: the tcx links are verified gone).
 * 2. ns per packet per program: kernel.bpf_stats_enabled=1 during that traffic, run_time_ns / run_cnt
 *    deltas per run (bpftool prog show): wl_in on host 1 (encap of data), ul_in on host 2 (End + End.DT6
 *    of data, one pass), ul_in on host 1 (End.DT6 of ACKs).
 * 3. Map writes: N (100,000) workload /128 entries through EbpfBackend.applyDelta (intent diff, lowering
 *    of the delta's items, one batch update) and, for reference, one FFI batch update of the same entries
 *    (keys and values prepared outside the timing), versus
 *    `ip -6 -force -batch` adding N plain routes in a fresh namespace; interleaved, each verified by
 *    counting (and sampling) what the map or the routing table holds before its time counts.
 * 4. Mobility: a workload address with an instance on each host; a move rewrites both hosts' entries
 *    (new host first: local delivery; then the other: encap to the new host's SIDs) while a1 and a2
 *    ping it every ms. Per move: claim (first write) -> every host's entry written, and -> the old
 *    instance's last echo; p50/p99 over MOVES moves; losses from ping's own sequence numbers.
 *
 * Phase 3 runs BENCH_MAP_WARMUP (1) repetitions first, verified and printed but not counted: the JIT
 * compiling the lowering in a fresh process is not what a running agent pays per delta.
 *
 * `BENCH_ONLY=map` runs phase 3 alone (its JSON line then has `only: "map"` and no throughput fields);
 * `BENCH_ROUTES` sets N, `BENCH_MOVES` the moves. `BENCH_PROFILE=FILE` writes a CPU profile (.cpuprofile)
 * of the map-write phase.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import {
  addrKey,
  CFG_FIB,
  CFG_VALIDATE,
  configValue,
  endpointValue,
  exactKey,
  ifindexKey,
  MAP,
  policyKey,
  policyValue,
  type ReasonName,
  reasonValue,
  u32Key,
} from '../src/dataplane/ebpf/abi.ts';
import { EbpfBackend } from '../src/dataplane/ebpf/backend.ts';
import { BpfMap, BpfObject, closeFd, objGet, unpin } from '../src/dataplane/ebpf/libbpf.ts';
import { type LinkFacts, lowerToEbpf, parseMac } from '../src/dataplane/ebpf/lower.ts';
import {
  diffIntents,
  type EncapMode,
  type ForwardingIntent,
  type IntentItem,
  UNDERLAY,
} from '../src/dataplane/intent.ts';
import { formatIpv6, ipv6ToBytes, parseIpv6 } from '../src/srv6/address.ts';
import { createLab, type Netns, sh, srhPackets, waitFor } from '../test/harness/index.ts';
import { ETH_IPV6, eth, ipv6, NH_TCP, tcpSyn6, v6 } from '../test/harness/packet.ts';
import {
  addWorkload,
  attachment,
  compileDatapath,
  counters,
  delta,
  type EbpfHost,
  entry,
  scopes,
  sid,
  twoEbpfHosts,
} from '../test/system/ebpf/fixture.ts';
import { runIpBatch } from './_ipbatch.ts';
import { pingLosses } from './_ping.ts';
import { median, quantile, round } from './_stats.ts';

const REPS = Number(process.argv[2] ?? 5);
const SECONDS = Number(process.argv[3] ?? 4);
const N = Number(process.env.BENCH_ROUTES ?? 100_000);
/** Map-write repetitions run first and not counted (the agent is a long-running process: its lowering
 * code is compiled by the JIT after its first deltas; the first repetitions measured the compiler). */
const MAP_WARMUP = Number(process.env.BENCH_MAP_WARMUP ?? 1);
const MOVES = Number(process.env.BENCH_MOVES ?? 50);
/** BENCH_ONLY=map: the map-write phase only (fast iterations on the backend's write path). */
const MAP_ONLY = process.env.BENCH_ONLY === 'map';
const MTU = 1420; // 1500 - 40 - 8 - 2 * 16: the workload MTU for 2 segments, in every variant

type Variant = 'plain' | 'encap' | 'encap.red' | 'encap-noval' | 'encap-nocount' | 'encap-base';
/** BENCH_BASE_OBJECT=FILE: one more variant, `encap-base`, encap with that object (an older build of
 * bpf/segmesh.c, e.g. main's build/bpf/segmesh.o) swapped in like encap-noval: an A/B of datapath
 * changes in the same run, interleaved with the others (the machine's load drifts between runs). */
const BASE_OBJECT = process.env.BENCH_BASE_OBJECT;
/** BENCH_NOCOUNT=1: one more variant, `encap-nocount`, encap with the object built with
 * -DSM_NO_COUNTERS (the per-reason and per-SID counters compiled out): what counting costs per packet. */
const NOCOUNT = process.env.BENCH_NOCOUNT === '1';
const VARIANTS: Variant[] = [
  'plain',
  'encap',
  'encap.red',
  'encap-noval',
  ...(NOCOUNT ? (['encap-nocount'] as const) : []),
  ...(BASE_OBJECT ? (['encap-base'] as const) : []),
];
const EBPF_VARIANTS = VARIANTS.filter((v) => v !== 'plain');
const ip = parseIpv6;
const A = scopes('a', 1);
const MOVER = 'fd01:9::10';
const BULK_BASE = ip('fd01:ff::');

/** Host n's intent: tenant A, data toward host 2 with 2 segments, back with End.DT6 only. */
function hostIntent(n: number, mode: EncapMode, moverAt?: number): ForwardingIntent {
  const m = 3 - n;
  const toward = (h: number) => [ip(`fc00:0:${h}::e`), ip(`fc00:0:${h}::a6`)];
  const items: IntentItem[] = [
    sid(`fc00:0:${n}::e`, 'End'),
    sid(`fc00:0:${n}::a6`, 'End.DT6', A.delivery),
    entry(UNDERLAY, `fc00:0:${m}::/48`, { kind: 'locator', via: ip(`2001:db8:12::${m}`) }),
    entry(A.egress, `fd01:${m}::/64`, {
      kind: 'encap',
      mode,
      segments: n === 1 ? toward(m) : [ip(`fc00:0:${m}::a6`)],
    }),
    attachment(n, 'wa0', 'a', A.egress, `fd01:${n}::10`),
    entry(A.egress, `fd01:${n}::10/128`, { kind: 'deliver', link: 'wa0' }),
    entry(A.egress, '::/0', { kind: 'unreachable' }),
    entry(A.delivery, `fd01:${n}::10/128`, { kind: 'deliver', link: 'wa0' }),
    entry(A.delivery, '::/0', { kind: 'unreachable' }),
  ];
  if (moverAt !== undefined) {
    items.push(
      attachment(n, 'wm0', 'a', A.egress, MOVER),
      entry(A.delivery, `${MOVER}/128`, { kind: 'deliver', link: 'wm0' }),
      entry(
        A.egress,
        `${MOVER}/128`,
        moverAt === n ? { kind: 'deliver', link: 'wm0' } : { kind: 'encap', mode, segments: toward(moverAt) },
      ),
    );
  }
  return { host: `h${n}`, items: new Map(items.map((i) => [i.key, i])) };
}

const lab = createLab();
const load: string[] = [];
const noteLoad = (when: string) =>
  load.push(
    `${when} ${new Date().toISOString().slice(11, 16)} UTC: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
noteLoad('start');
const statsBefore = (await sh('sysctl', ['-n', 'kernel.bpf_stats_enabled'])).stdout.trim();

interface Run {
  rep: number;
  variant: Variant;
  gbps: number;
  ns: Record<string, number>;
}
const runs: Run[] = [];
const mapRuns: {
  rep: number;
  backendMs: number;
  /** This process's CPU (user + system) during backendMs: what the backend costs when the machine is shared. */
  backendCpuMs: number;
  lowerMs: number;
  batchMs: number;
  ipMs: number;
  deleteMs: number;
}[] = [];
const mapWarmups: typeof mapRuns = [];
/** BPF_PROG_TEST_RUN of wl_in, ns per run: [validated, compiled out] per repetition. */
const testRuns: [number, number][] = [];
const converge: number[] = [];
const oldSilent: number[] = [];
let lost: number | null = null;
let probeText = '';

/** Per host: the backend in use (undefined: no BPF attached) and the object it loaded. */
const active = new Map<number, { backend: EbpfBackend; object: string } | undefined>();

try {
  const [objectPath, noValidatePath] = [await compileDatapath(), await compileDatapath(['SM_NO_VALIDATE'])];
  // The variants that swap in an object of their own (the rest run the default build).
  const variantObject: Partial<Record<Variant, string>> = {
    'encap-noval': noValidatePath,
    ...(NOCOUNT ? { 'encap-nocount': await compileDatapath(['SM_NO_COUNTERS']) } : {}),
    ...(BASE_OBJECT ? { 'encap-base': BASE_OBJECT } : {}),
  };
  const { hosts, wl } = await twoEbpfHosts(lab, { prefix: 'x', tenants: ['a'], objectPath });
  const [h1, h2] = hosts as [EbpfHost, EbpfHost];
  lab.onTeardown(async () => {
    for (const h of hosts) {
      await (active.get(h.n)?.backend ?? h.backend).flush().catch(() => undefined);
      await h.dp.close().catch(() => undefined);
    }
  });
  const a1 = wl.a1!;
  const a2 = wl.a2!;
  for (const h of hosts) {
    active.set(h.n, { backend: h.backend, object: objectPath });
    const w = wl[`a${h.n}`]!;
    await w.ip('link', 'set', 'eth0', 'mtu', String(MTU));
    await h.ns.ip('link', 'set', 'wa0', 'mtu', String(MTU));
    // The anchor's routes, in the main table: BPF, when attached, takes the packets before they route.
    await h.ns.ip('-6', 'route', 'add', `fd01:${h.n}::/64`, 'dev', 'wa0');
    await h.ns.ip(
      '-6',
      'route',
      'add',
      `fd01:${3 - h.n}::/64`,
      'via',
      `2001:db8:12::${3 - h.n}`,
      'dev',
      'ul0',
    );
  }

  const pinned = (h: EbpfHost) =>
    existsSync(h.opts.pinDir) ? readdirSync(h.opts.pinDir).filter((f) => f.startsWith('link_')) : [];
  const linkInfo = async (h: EbpfHost, pin: string) =>
    JSON.parse((await sh('bpftool', ['-j', 'link', 'show', 'pinned', join(h.opts.pinDir, pin)])).stdout) as {
      id: number;
      prog_id: number;
    };

  /** eBPF variants: a backend on `object` realises the intent (a new object swaps programs by link update). */
  const realised = new Map<number, ForwardingIntent>();
  const useEbpf = async (object: string, mode: EncapMode, moverAt?: number) => {
    for (const h of hosts) {
      let cur = active.get(h.n);
      if (!cur || cur.object !== object) {
        await cur?.backend.close();
        cur = { backend: new EbpfBackend(h.dp, { ...h.opts, objectPath: object }), object };
        active.set(h.n, cur);
      }
      const intent = hostIntent(h.n, mode, moverAt);
      const r = await cur.backend.realise(intent);
      realised.set(h.n, intent);
      if (r.conflicts.length > 0 || cur.backend.skipped.length > 0)
        throw new Error(`host ${h.n}: ${[...r.conflicts, ...cur.backend.skipped].join('; ')}`);
    }
  };
  /** The anchor: no program anywhere (the pinned maps stay, the links go), verified. */
  const usePlain = async () => {
    for (const h of hosts) {
      const ids = await Promise.all(pinned(h).map(async (p) => (await linkInfo(h, p)).id));
      await active.get(h.n)?.backend.close();
      active.set(h.n, undefined);
      for (const p of pinned(h)) unpin(join(h.opts.pinDir, p));
      for (const id of ids)
        if ((await sh('bpftool', ['link', 'show', 'id', String(id)], { allowFail: true })).code === 0)
          throw new Error(`host ${h.n}: tcx link ${id} still attached in the plain variant`);
    }
  };
  const setVariant = async (v: Variant) => {
    if (v === 'plain') await usePlain();
    else await useEbpf(variantObject[v] ?? objectPath, v === 'encap.red' ? 'encap.red' : 'encap');
  };
  const ping = async (from: Netns, dst: string, count = 3) =>
    Number(
      /(\d+) received/.exec(
        (
          await from.exec('ping', ['-6', '-c', String(count), '-i', '0.2', '-W', '2', dst], {
            allowFail: true,
          })
        ).stdout,
      )?.[1] ?? 0,
    );

  if (!MAP_ONLY) {
    // The path of each variant, seen on the wire before any time counts.
    const wantSrh: Record<Variant, { segments: string[]; lastEntry: number } | undefined> = {
      plain: undefined,
      encap: { segments: ['fc00:0:2::a6', 'fc00:0:2::e'], lastEntry: 1 },
      'encap.red': { segments: ['fc00:0:2::a6'], lastEntry: 0 },
      'encap-noval': { segments: ['fc00:0:2::a6', 'fc00:0:2::e'], lastEntry: 1 },
      'encap-nocount': { segments: ['fc00:0:2::a6', 'fc00:0:2::e'], lastEntry: 1 },
      'encap-base': { segments: ['fc00:0:2::a6', 'fc00:0:2::e'], lastEntry: 1 },
    };
    for (const v of VARIANTS) {
      await setVariant(v);
      await a1.ip('-6', 'route', 'flush', 'cache');
      const cap = await lab.capture({ netns: h2.ns, ifname: 'ul0', filter: 'ip6' });
      const got = await ping(a1, 'fd01:2::10');
      const srh = (await srhPackets(cap)).filter((p) => p.dst === 'fc00:0:2::e');
      const want = wantSrh[v];
      if (got !== 3) throw new Error(`variant ${v}: ${got} of 3 pings a1 -> a2 answered`);
      if (!want && srh.length > 0)
        throw new Error(`variant plain: ${srh.length} SRv6 packets on the underlay`);
      if (
        want &&
        (srh.length < 3 ||
          srh.some(
            (p) =>
              p.segmentsLeft !== 1 ||
              p.lastEntry !== want.lastEntry ||
              p.segments.join(',') !== want.segments.join(',') ||
              p.nextHeader !== 41,
          ))
      )
        throw new Error(
          `variant ${v}: the SRHs on the wire are not the expected ones: ${JSON.stringify(srh)}`,
        );
    }
    process.stdout.write(
      `paths verified: plain (no SRH), encap / encap-noval${NOCOUNT ? ' / encap-nocount' : ''}${BASE_OBJECT ? ' / encap-base' : ''} (SL 1, LE 1), encap.red (SL 1, LE 0)\n`,
    );

    await lab.daemon({
      name: 'bench-ebpf-iperf3',
      command: 'iperf3',
      args: ['-s', '-B', 'fd01:2::10'],
      netns: a2,
      ready: async () => (await a2.exec('ss', ['-ltn'], { allowFail: true })).stdout.includes(':5201'),
    });
    await sh('sysctl', ['-q', '-w', 'kernel.bpf_stats_enabled=1']);
    const progStats = async (h: EbpfHost, prog: 'wl_in' | 'ul_in') => {
      const link = await linkInfo(h, `link_${prog}_${prog === 'wl_in' ? 'wa0' : 'ul0'}`);
      const p = JSON.parse(
        (await sh('bpftool', ['-j', 'prog', 'show', 'id', String(link.prog_id)])).stdout,
      ) as {
        run_time_ns?: number;
        run_cnt?: number;
      };
      return { ns: p.run_time_ns ?? 0, cnt: p.run_cnt ?? 0 };
    };
    const PROGS = [
      ['encap', h1, 'wl_in'],
      ['end_dt6', h2, 'ul_in'],
      ['dt6_ack', h1, 'ul_in'],
      ['encap_ack', h2, 'wl_in'],
    ] as const;

    for (let rep = 0; rep < REPS; rep++) {
      const order = rep % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
      for (const v of order) {
        await setVariant(v);
        const ebpf = v !== 'plain';
        const c0 = ebpf ? await Promise.all(hosts.map((h) => active.get(h.n)!.backend.readCounters())) : [];
        const s0 = ebpf ? await Promise.all(PROGS.map(([, h, p]) => progStats(h, p))) : [];
        const r = await a1.exec('iperf3', ['-6', '-c', 'fd01:2::10', '-t', String(SECONDS), '-J'], {
          timeoutMs: (SECONDS + 20) * 1000,
        });
        const doc = JSON.parse(r.stdout) as {
          end: { sum_received: { bits_per_second: number; bytes: number } };
        };
        const gbps = doc.end.sum_received.bits_per_second / 1e9;
        if (!(gbps > 0)) throw new Error(`no traffic in variant ${v}: the result does not count`);
        const ns: Record<string, number> = {};
        if (ebpf) {
          const s1 = await Promise.all(PROGS.map(([, h, p]) => progStats(h, p)));
          for (const [i, [name]] of PROGS.entries()) {
            const cnt = s1[i]!.cnt - s0[i]!.cnt;
            if (cnt <= 0) throw new Error(`variant ${v}: ${name} ran 0 times (bpf_stats_enabled?)`);
            ns[name] = (s1[i]!.ns - s0[i]!.ns) / cnt;
          }
          // The traffic went through the programs as this variant says, with no drop.
          const c1 = await Promise.all(hosts.map((h) => active.get(h.n)!.backend.readCounters()));
          const inc = (i: number, reason: ReasonName) =>
            Number((c1[i]!.reasons.get(reason) ?? 0n) - (c0[i]!.reasons.get(reason) ?? 0n));
          const want = v === 'encap.red' ? 'encap_red' : 'encap';
          // Counters compiled out: the path was seen on the wire before timing; drops still count per link.
          if (v === 'encap-nocount') {
            const linkDrops = (c: (typeof c1)[number]) =>
              [...c.linkDrops.values()].reduce((t, m) => t + [...m.values()].reduce((a, b) => a + b, 0n), 0n);
            for (const i of [0, 1])
              if (linkDrops(c1[i]!) !== linkDrops(c0[i]!))
                throw new Error(
                  `variant ${v}: host ${i + 1} dropped ${linkDrops(c1[i]!) - linkDrops(c0[i]!)}`,
                );
          } else if (inc(0, want) < 100 || inc(1, 'end') < 100 || inc(1, 'dt6') < 100 || inc(0, 'dt6') < 100)
            throw new Error(
              `variant ${v}: counters did not show the path (${want} ${inc(0, want)}, end ${inc(1, 'end')}, dt6 ${inc(1, 'dt6')})`,
            );
          // This build sends its encapsulations to the locator's next hop from sm_nexthops (no FIB
          // lookup); a base object of before has no such path.
          if (v !== 'encap-base' && v !== 'encap-nocount' && inc(0, 'redirect_nexthop') < 100)
            throw new Error(
              `variant ${v}: encapsulations did not take the agent-resolved next hop (redirect_nexthop ${inc(0, 'redirect_nexthop')}, redirect ${inc(0, 'redirect')})`,
            );
          for (const i of [0, 1])
            for (const k of c1[i]!.reasons.keys())
              if (k.startsWith('drop_') && inc(i, k) > 0)
                throw new Error(`variant ${v}: host ${i + 1} dropped ${inc(i, k)} (${k})`);
        }
        runs.push({ rep, variant: v, gbps, ns });
        process.stdout.write(
          `rep ${rep} ${v.padEnd(11)} ${gbps.toFixed(2)} Gbit/s ${Object.entries(ns)
            .map(([k, x]) => `${k} ${x.toFixed(0)} ns`)
            .join(', ')}\n`,
        );
      }
    }
    noteLoad('after throughput');
  }

  // Map writes: the backend's path and one FFI batch, versus ip -batch.
  await useEbpf(objectPath, 'encap');
  const b1 = () => active.get(1)!.backend;
  // The intent object the backend realised: applyDelta from another object (even an equal one) realises.
  const base = realised.get(1)!;
  const bulkDst = (i: number) => formatIpv6(BULK_BASE + BigInt(i));
  const bigItems = new Map(base.items);
  for (let i = 0; i < N; i++) {
    const e = entry(A.egress, `${bulkDst(i)}/128`, {
      kind: 'encap',
      mode: 'encap',
      segments: [ip('fc00:0:2::e'), ip('fc00:0:2::a6')],
    });
    bigItems.set(e.key, e);
  }
  const big: ForwardingIntent = { host: 'h1', items: bigItems };
  // The /128s' map (where the backend writes them): sm_exact, a hash (type 1) keyed {key space, dst}.
  const policyFd = objGet(join(h1.opts.pinDir, MAP.exact));
  lab.onTeardown(() => closeFd(policyFd));
  const policy = new BpfMap(MAP.exact, policyFd, 1, 20, 164, 262144);
  const baseCount = policy.keys().length;
  const wantValue = policyValue({
    mode: 'encap',
    source: ip('2001:db8:12::1'),
    segments: [ip('fc00:0:2::e'), ip('fc00:0:2::a6')],
    slot: 1, // sm_nexthops: host 2's locator, host 1's only underlay locator entry
  });
  const checkMap = (what: string) => {
    const n = policy.keys().length - baseCount;
    if (n !== N) throw new Error(`${what}: sm_exact holds ${n} bulk entries, want ${N}`);
    for (const i of [0, N >> 1, N - 1]) {
      const v = policy.lookup(exactKey(1, ipv6ToBytes(BULK_BASE + BigInt(i))));
      if (!v || Buffer.compare(Buffer.from(v), Buffer.from(wantValue)) !== 0)
        throw new Error(`${what}: entry ${bulkDst(i)} missing or not the expected policy`);
    }
  };
  const facts = new Map<string, LinkFacts>(
    (await h1.dp.listLinks()).map((l) => [
      l.name,
      { index: l.index, ...(l.mac ? { mac: parseMac(l.mac) } : {}) },
    ]),
  );
  const ipLines = Array.from(
    { length: N },
    (_, i) => `route add ${bulkDst(i)}/128 via 2001:db8:99::2 dev d0`,
  );
  // BENCH_PROFILE=FILE: a CPU profile of this phase only (--cpu-prof's SIGPROF would interrupt the
  // verifier at load: EAGAIN).
  const profiler = process.env.BENCH_PROFILE ? new Session() : undefined;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 200 });
    await profiler.post('Profiler.start');
  }
  for (let rep = -MAP_WARMUP; rep < REPS; rep++) {
    const row = { rep, backendMs: 0, backendCpuMs: 0, lowerMs: 0, batchMs: 0, ipMs: 0, deleteMs: 0 };
    const steps = [
      async () => {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const r = await b1().applyDelta(base, big, diffIntents(base.items, big.items));
        row.backendMs = performance.now() - t0;
        const c = process.cpuUsage(c0);
        row.backendCpuMs = (c.user + c.system) / 1000;
        if (r.added !== N) throw new Error(`applyDelta added ${r.added}, want ${N}`);
        checkMap('backend');
        const t1 = performance.now();
        await b1().applyDelta(big, base, diffIntents(big.items, base.items));
        row.deleteMs = performance.now() - t1;
        if (policy.keys().length !== baseCount) throw new Error('applyDelta back to base left entries');
        // For reference: the pure lowering of the whole intent (what realise lowers; applyDelta lowers the delta).
        const t3 = performance.now();
        lowerToEbpf(big, { underlayDevice: 'ul0', source: h1.opts.source, links: facts });
        row.lowerMs = performance.now() - t3;
        const keys = Array.from({ length: N }, (_, i) => exactKey(1, ipv6ToBytes(BULK_BASE + BigInt(i))));
        const values = Array.from({ length: N }, () => wantValue);
        const t2 = performance.now();
        policy.updateBatch(keys, values);
        row.batchMs = performance.now() - t2;
        checkMap('FFI batch');
        policy.deleteBatch(keys);
      },
      async () => {
        const ns = await lab.netns(`xip${rep}`);
        await ns.ip('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'); // no dummy module here
        await ns.ip('addr', 'add', '2001:db8:99::1/64', 'dev', 'd0', 'nodad');
        await ns.ip('link', 'set', 'd0', 'up');
        await ns.ip('link', 'set', 'd1', 'up');
        row.ipMs = runIpBatch(ns, ipLines, `ebpf-${rep}`).ms;
        const c = await sh('sh', ['-c', `ip -n ${ns.name} -6 route show dev d0 | grep -c '^fd01:ff:'`]);
        if (Number(c.stdout.trim()) !== N) throw new Error(`ip -batch: ${c.stdout.trim()} routes, want ${N}`);
        await ns.destroy();
      },
    ];
    for (const s of rep % 2 === 0 ? steps : [...steps].reverse()) await s();
    (rep < 0 ? mapWarmups : mapRuns).push(row);
    process.stdout.write(
      `map ${rep < 0 ? 'warm-up (not counted)' : `rep ${rep}`}: backend ${row.backendMs.toFixed(0)} ms (CPU ${row.backendCpuMs.toFixed(0)} ms; lowering alone ${row.lowerMs.toFixed(0)} ms), FFI batch ${row.batchMs.toFixed(0)} ms, ip -batch ${row.ipMs.toFixed(0)} ms (backend delete ${row.deleteMs.toFixed(0)} ms)\n`,
    );
  }
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(process.env.BENCH_PROFILE!, JSON.stringify(profile));
    profiler.disconnect();
  }
  noteLoad('after map writes');

  if (!MAP_ONLY) {
    // What validation costs per packet, without traffic's noise: wl_in on one workload packet (TCP SYN to
    // a destination whose policy drops it: nothing is rewritten, so every repetition of the run does the
    // same work), the validated object against the one with validation compiled out, alternating.
    const syn = eth(
      '02:00:00:00:00:02',
      '02:00:00:00:00:01',
      ETH_IPV6,
      ipv6(
        { src: 'fd01:1::10', dst: 'fd01:7::10', nextHeader: NH_TCP },
        tcpSyn6('fd01:1::10', 'fd01:7::10', 40000, 5201),
      ),
    );
    const testObjs = [objectPath, noValidatePath].map((path) => {
      const o = BpfObject.load(path);
      o.map(MAP.config).update(u32Key(0), configValue(CFG_VALIDATE | CFG_FIB));
      o.map(MAP.endpoints).update(ifindexKey(7), endpointValue({ tenant: 1, addr6: ip('fd01:1::10') }));
      o.map(MAP.blocked).update(addrKey(v6('fc00::'), 32), reasonValue('drop_sid_block'));
      o.map(MAP.blocked).update(addrKey(v6('2001:db8:12::1'), 128), reasonValue('drop_host_address'));
      o.map(MAP.policy).update(policyKey(1, v6('fd01:7::'), 64), policyValue({ mode: 'drop' }));
      return o;
    });
    lab.onTeardown(() => {
      for (const o of testObjs) o.close();
    });
    const REPEAT = 200_000;
    for (let rep = 0; rep < REPS; rep++) {
      const row: number[] = [];
      for (const o of testObjs) {
        const before = counters(o);
        const r = o.program('wl_in').testRun({ data: syn, ingressIfindex: 7, ifindex: 1, repeat: REPEAT });
        const d = delta(before, counters(o));
        if (r.retval !== 2 || d.drop_policy !== REPEAT || Object.keys(d).length !== 1)
          throw new Error(`test run of wl_in: verdict ${r.retval}, counters ${JSON.stringify(d)}`);
        row.push(r.durationNs);
      }
      testRuns.push([row[0]!, row[1]!]);
    }

    // Mobility: an instance of MOVER on each host; entries rewritten, a1 and a2 pinging every ms.
    const movers = new Map<number, { ns: Netns; pid: number }>();
    for (const h of hosts) {
      const ns = await addWorkload(lab, h.ns, 'wm0', `xm${h.n}`, MOVER);
      const d = await lab.daemon({
        name: `bench-ebpf-anchor-m${h.n}`,
        command: 'sleep',
        args: ['infinity'],
        netns: ns,
      });
      movers.set(h.n, { ns, pid: d.pid });
    }
    const echoes = (n: number) =>
      Number(
        /Icmp6InEchos\s+(\d+)/.exec(readFileSync(`/proc/${movers.get(n)!.pid}/net/snmp6`, 'utf8'))?.[1] ?? 0,
      );
    let where = 1;
    await useEbpf(objectPath, 'encap', where);
    for (const c of [a1, a2])
      if ((await ping(c, MOVER)) !== 3) throw new Error(`${c.name} does not reach the moving workload`);
    const pingers = [];
    for (const [name, c] of [
      ['a1', a1],
      ['a2', a2],
    ] as const)
      pingers.push(
        await lab.daemon({
          name: `bench-ebpf-ping-${name}`,
          command: 'ping',
          args: ['-6', '-D', '-i', '0.001', '-W', '1', MOVER],
          netns: c,
        }),
      );
    const e0 = echoes(1);
    await waitFor(async () => echoes(1) - e0 > 100, {
      timeoutMs: 10_000,
      what: 'the pings to reach the workload',
    });
    // The intents the backends hold: applyDelta from them (from another object it would realise in full).
    const intents = new Map(realised);
    for (let i = 1; i <= MOVES; i++) {
      const target = where === 1 ? 2 : 1;
      const newBefore = echoes(target);
      const t0 = performance.now();
      for (const n of [target, where]) {
        const next = hostIntent(n, 'encap', target);
        const prev = intents.get(n)!;
        await active.get(n)!.backend.applyDelta(prev, next, diffIntents(prev.items, next.items));
        intents.set(n, next);
      }
      converge.push(performance.now() - t0);
      // The old instance's last echo: poll until it has been silent for 50 ms.
      let last = echoes(where);
      let lastAt = performance.now();
      while (performance.now() - lastAt < 50) {
        await new Promise((r) => setTimeout(r, 1));
        const e = echoes(where);
        if (e !== last) {
          last = e;
          lastAt = performance.now();
        }
      }
      oldSilent.push(lastAt - t0);
      // The new instance answers from now on (both clients' echoes reach it; none is lost, counted below).
      await waitFor(async () => echoes(target) - newBefore >= 10, {
        timeoutMs: 5_000,
        what: `move ${i}: echoes at the new instance on host ${target}`,
      });
      where = target;
    }
    await new Promise((r) => setTimeout(r, 1_000));
    lost = 0;
    const sent: string[] = [];
    for (const p of pingers) {
      p.kill('SIGINT');
      await p.exited;
      const r = pingLosses(readFileSync(p.logFile, 'utf8'), 1);
      lost += r.lost.length;
      sent.push(`${p.name.replace('bench-ebpf-ping-', '')} ${r.transmitted} sent, ${r.received} answered`);
    }
    probeText = sent.join('; ');
  }
  noteLoad('end');
} finally {
  await sh('sysctl', ['-q', '-w', `kernel.bpf_stats_enabled=${statsBefore}`]).catch(() => undefined);
  await lab.teardown().catch((e) => process.stderr.write(`teardown: ${e}\n`));
}

const g = (rep: number, v: Variant) => runs.find((r) => r.rep === rep && r.variant === v)!;
const reps = Array.from({ length: REPS }, (_, rep) => rep);
const ratio = (v: Variant, to: Variant) => reps.map((rep) => g(rep, v).gbps / g(rep, to).gbps);
const fmt = (xs: number[], d = 2) => xs.map((x) => x.toFixed(d)).join(' / ');
const nsOf = (v: Variant, prog: string) => reps.map((rep) => g(rep, v).ns[prog]!);
const valRatio = MAP_ONLY ? [] : ratio('encap', 'encap-noval');
if (!MAP_ONLY) {
  console.log(
    `\nebpf: iperf3 1 stream a1 (host 1) -> a2 (host 2), ${SECONDS} s per run, ${REPS} interleaved repetitions, workload MTU ${MTU}`,
  );
  console.log(
    'variant      Gbit/s per repetition                 median   /plain per repetition        median',
  );
  for (const v of VARIANTS) {
    const gs = reps.map((rep) => g(rep, v).gbps);
    const rs = v === 'plain' ? [] : ratio(v, 'plain');
    console.log(
      `${v.padEnd(12)} ${fmt(gs).padEnd(37)} ${median(gs).toFixed(2).padStart(6)}   ${fmt(rs).padEnd(28)} ${v === 'plain' ? '' : median(rs).toFixed(3)}`,
    );
  }
  console.log(
    `validation: encap / encap-noval per repetition ${fmt(valRatio, 3)}, median ${median(valRatio).toFixed(3)}`,
  );
  console.log('ns per packet (bpf_stats run_time_ns / run_cnt), median of the per-run values:');
  for (const [name, what] of [
    ['encap', 'wl_in host 1, data: validate + H.Encaps + next hop from sm_nexthops (base: fib) + redirect'],
    ['end_dt6', 'ul_in host 2, data: End then End.DT6 in one pass'],
    ['dt6_ack', 'ul_in host 1, ACKs: End.DT6 (no SRH)'],
    ['encap_ack', 'wl_in host 2, ACKs: validate + encap, 1 segment'],
  ] as const)
    console.log(
      `  ${name.padEnd(10)} ${EBPF_VARIANTS.map((v) => `${v} ${median(nsOf(v, name)).toFixed(0)}`).join(
        ', ',
      )}   (${what})`,
    );
  const valNs = testRuns.map(([a, b]) => a - b);
  console.log(
    `validation, BPF_PROG_TEST_RUN of wl_in (one TCP SYN, policy drop), ns per run: validated ${fmt(
      testRuns.map((r) => r[0]),
      0,
    )}, compiled out ${fmt(
      testRuns.map((r) => r[1]),
      0,
    )}; difference median ${median(valNs).toFixed(0)} ns = ${((100 * median(valNs)) / median(nsOf('encap', 'encap'))).toFixed(1)} % of wl_in's encap ns in traffic`,
  );
}
const rate = (ms: number) => N / (ms / 1000);
const mapRatio = mapRuns.map((r) => rate(r.backendMs) / rate(r.ipMs));
console.log(
  `map writes, ${N} entries: backend applyDelta ${fmt(
    mapRuns.map((r) => rate(r.backendMs)),
    0,
  )} /s; FFI batch ${fmt(
    mapRuns.map((r) => rate(r.batchMs)),
    0,
  )} /s; ip -batch ${fmt(
    mapRuns.map((r) => rate(r.ipMs)),
    0,
  )} routes/s; lowering alone ${fmt(
    mapRuns.map((r) => r.lowerMs),
    0,
  )} ms; backend ms ${fmt(
    mapRuns.map((r) => r.backendMs),
    0,
  )} (CPU ${fmt(
    mapRuns.map((r) => r.backendCpuMs),
    0,
  )}); backend/ip ${fmt(mapRatio)} (median ${median(mapRatio).toFixed(2)}); FFI batch/ip median ${median(
    mapRuns.map((r) => r.ipMs / r.batchMs),
  ).toFixed(2)}`,
);
const ms = (v: number[]) =>
  `p50 ${round(median(v), 2)} ms, p99 ${round(quantile(v, 0.99), 2)} ms, max ${round(Math.max(...v), 2)} ms`;
if (converge.length > 0) {
  console.log(`moves ${converge.length}: claim -> every host's entry written ${ms(converge)}`);
  console.log(`       claim -> the old instance's last echo ${ms(oldSilent)}`);
  console.log(`probes (1 ms interval): ${probeText}; lost ${lost}`);
}
for (const l of load) console.log(`load average ${l}`);
console.log(
  JSON.stringify({
    bench: 'ebpf',
    ...(MAP_ONLY
      ? { only: 'map' }
      : {
          encap_ratio: round(median(ratio('encap', 'plain')), 3),
          red_ratio: round(median(ratio('encap.red', 'plain')), 3),
          validate_ratio: round(median(valRatio), 3),
          encap_ns: round(median(nsOf('encap', 'encap')), 0),
          dt6_ns: round(median(nsOf('encap', 'dt6_ack')), 0),
          ...(NOCOUNT
            ? {
                nocount_encap_ns: round(median(nsOf('encap-nocount', 'encap')), 0),
                nocount_dt6_ns: round(median(nsOf('encap-nocount', 'dt6_ack')), 0),
              }
            : {}),
          ...(BASE_OBJECT
            ? {
                base_ratio: round(median(ratio('encap-base', 'plain')), 3),
                base_encap_ns: round(median(nsOf('encap-base', 'encap')), 0),
                base_dt6_ns: round(median(nsOf('encap-base', 'dt6_ack')), 0),
              }
            : {}),
        }),
    map_vs_ip_batch: round(median(mapRatio), 2),
    map_backend_ms: round(median(mapRuns.map((r) => r.backendMs)), 0),
    // The uncounted first repetition(s), so that the cold figure stays in view.
    map_warmup_vs_ip_batch:
      mapWarmups.length > 0
        ? round(median(mapWarmups.map((r) => rate(r.backendMs) / rate(r.ipMs))), 2)
        : null,
    map_backend_cpu_ms: round(median(mapRuns.map((r) => r.backendCpuMs)), 0),
    move_p99_ms: converge.length > 0 ? round(quantile(oldSilent, 0.99), 2) : null,
    lost,
  }),
);
