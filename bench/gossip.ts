/**
 * `npm run bench -- gossip [--quick]`: time for an update to reach every node, at a fixed rate of 10
 * updates per second after a warm-up, for 10 and 30 nodes in one process and 10 single-node processes;
 * anchor in the same run: raw gossipsub with the same libp2p stack, topology and rate (no records, no
 * signatures of ours). Also RSS of a bare libp2p process and of ours, idle CPU, liveness flaps with a
 * 1 s dead interval, and a dissemination model calibrated on the measured figures that predicts the
 * time to reach 99% of 1,000 and 10,000 hosts. Repetitions interleave anchor and ours.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { GOSSIP_TOPIC } from '../src/gossip/index.ts';
import { createGossipLibp2p, Gossip, type GossipInit } from '../src/gossip/node.ts';
import { NodeProcess } from '../test/system/gossip/processes.ts';
import { prng, quantile, round } from './_stats.ts';

const quick = process.argv.includes('--quick');
/** `--only=processes` (substring of a layout name) runs a subset, for investigation; no JSON line then. */
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const REPS = quick ? 1 : 2;
const WARMUP = quick ? 20 : 40;
const MEASURED = quick ? 40 : 100;
const GAP_MS = 100; // 10 updates per second
const SETTLE_MS = 3_000;
const DEADLINE_MS = 5_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const now = (): number => performance.timeOrigin + performance.now();

/** Our production-like settings, except loopback and the same-IP scoring fix. */
const OURS: Partial<GossipInit> = { listen: ['/ip4/127.0.0.1/tcp/0'], sameIpPeers: true, targetPeers: 3 };
/** In child processes the listen address and same-IP fix are set by node-process.ts. */
const OURS_PROCS: Partial<GossipInit> = { targetPeers: 3 };
/** The liveness setting the issue asks to hold without flapping: dead after 1 s. */
const FAST_DEATH: Partial<GossipInit> = {
  heartbeatIntervalMs: 250,
  suspectAfterMs: 600,
  deadAfterMs: 1_000,
  targetPeers: 3,
};

interface Run {
  latencies: number[];
  lost: number;
  verified: boolean;
  extra?: Record<string, number>;
}

/** Drives a cluster: publishes at a fixed rate from random nodes, times arrival at all N-1 others. */
class Tracker {
  readonly #pending = new Map<string, { t0: number; left: number; last: number }>();
  readonly done: number[] = [];
  n: number;
  constructor(n: number) {
    this.n = n;
  }
  expect(id: string, t0: number): void {
    const p = this.#pending.get(id);
    if (p) p.t0 = t0;
    else this.#pending.set(id, { t0, left: this.n - 1, last: 0 });
  }
  arrive(id: string, t: number): void {
    let p = this.#pending.get(id);
    if (p === undefined) {
      // Arrived before the publisher's reply: the origin time is filled in by expect().
      p = { t0: Number.NaN, left: this.n - 1, last: 0 };
      this.#pending.set(id, p);
    }
    p.left--;
    p.last = Math.max(p.last, t);
  }
  async collect(ids: string[]): Promise<{ latencies: number[]; lost: number }> {
    const deadline = Date.now() + DEADLINE_MS;
    while (Date.now() < deadline && ids.some((id) => (this.#pending.get(id)?.left ?? 1) > 0)) await sleep(20);
    const latencies: number[] = [];
    let lost = 0;
    for (const id of ids) {
      const p = this.#pending.get(id);
      if (p === undefined || p.left > 0 || Number.isNaN(p.t0)) lost++;
      else latencies.push(p.last - p.t0);
    }
    return { latencies, lost };
  }
}

async function drive(
  n: number,
  publish: (node: number, id: string, seq: number) => Promise<number>,
  tracker: Tracker,
  seed: number,
): Promise<{ latencies: number[]; lost: number }> {
  const rand = prng(seed);
  const issue = async (count: number, prefix: string): Promise<string[]> => {
    const ids: string[] = [];
    const inflight: Promise<void>[] = [];
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const id = `${prefix}${i}`;
      ids.push(id);
      const node = Math.floor(rand() * n);
      inflight.push(publish(node, id, i).then((t0) => tracker.expect(id, t0)));
      const next = start + (i + 1) * GAP_MS;
      await sleep(Math.max(0, next - performance.now()));
    }
    await Promise.all(inflight);
    return ids;
  };
  await tracker.collect(await issue(WARMUP, 'warm-'));
  return tracker.collect(await issue(MEASURED, 'm-'));
}

/** Node i dials up to 3 earlier nodes: the same topology for anchor and ours. */
function bootstrapFor(addrs: string[][], i: number): string[] {
  return addrs.slice(Math.max(0, i - 3), i).map((a) => a[0]!);
}

async function inprocAnchor(n: number, seed: number): Promise<Run> {
  const tracker = new Tracker(n);
  const nodes: Awaited<ReturnType<typeof createGossipLibp2p>>[] = [];
  const addrs: string[][] = [];
  for (let i = 0; i < n; i++) {
    const node = await createGossipLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      sameIpPeers: true,
    });
    node.services.pubsub.subscribe(GOSSIP_TOPIC);
    node.services.pubsub.addEventListener('message', (ev) =>
      tracker.arrive(new TextDecoder().decode(ev.detail.data), now()),
    );
    for (const a of bootstrapFor(addrs, i)) await node.dial(multiaddr(a)).catch(() => {});
    addrs.push(node.getMultiaddrs().map(String));
    nodes.push(node);
  }
  await sleep(SETTLE_MS);
  const r = await drive(
    n,
    async (i, id) => {
      const t0 = now();
      await nodes[i]!.services.pubsub.publish(GOSSIP_TOPIC, new TextEncoder().encode(id));
      return t0;
    },
    tracker,
    seed,
  );
  await Promise.all(nodes.map((x) => x.stop()));
  return { ...r, verified: r.lost === 0 };
}

async function inprocOurs(n: number, seed: number): Promise<Run> {
  const tracker = new Tracker(n);
  const nodes: Gossip[] = [];
  const addrs: string[][] = [];
  for (let i = 0; i < n; i++) {
    const g = new Gossip(
      {},
      { ...OURS, privateKey: await generateKeyPair('Ed25519'), bootstrap: bootstrapFor(addrs, i) },
    );
    g.addEventListener('record', (ev) => {
      if (ev.detail.source !== 'local')
        tracker.arrive(ev.detail.key.slice(ev.detail.key.lastIndexOf('/') + 1), now());
    });
    await g.start();
    addrs.push(g.multiaddrs);
    nodes.push(g);
  }
  for (const g of nodes) await g.publishHost({ name: 'bench' });
  await sleep(SETTLE_MS);
  // Each update adds a workload; every other one also retires an older one (the store stays small).
  const live = new Map<string, number>();
  const r = await drive(
    n,
    async (i, id) => {
      const t0 = now();
      await nodes[i]!.publishWorkload({ workloadId: id, tenant: 'bench', opaqueAddress: addressOf(id) });
      live.set(id, i);
      return t0;
    },
    tracker,
    seed,
  );
  // Verify the final state at every node before the timing counts.
  await sleep(200);
  const want = JSON.stringify([...live].map(([id, i]) => [id, nodes[i]!.hostId]).sort());
  const verified = nodes.every(
    (g) =>
      JSON.stringify(
        g
          .snapshot()
          .workloads.map((w) => [w.id, w.hostId])
          .sort(),
      ) === want,
  );
  await Promise.all(nodes.map((g) => g.stop()));
  return { ...r, verified: verified && r.lost === 0 };
}

function addressOf(id: string): Uint8Array {
  const a = new Uint8Array(16);
  a[0] = 0xfd;
  const h = Buffer.from(id);
  a.set(h.subarray(Math.max(0, h.length - 14)), 2);
  return a;
}

async function procsRun(
  kind: 'anchor' | 'ours',
  n: number,
  seed: number,
  init: Partial<GossipInit> = {},
): Promise<Run> {
  const tracker = new Tracker(n);
  const dir = await mkdtemp(join(tmpdir(), 'segmesh-bench-gossip-'));
  const procs: NodeProcess[] = [];
  const addrs: string[][] = [];
  try {
    for (let i = 0; i < n; i++) {
      const p = new NodeProcess(['--expose-gc']);
      p.onReport = (r) =>
        tracker.arrive(kind === 'ours' ? r.report.slice(r.report.lastIndexOf('/') + 1) : r.report, r.t);
      await p.start({
        mode: kind === 'ours' ? 'segmesh' : 'raw',
        keyFile: join(dir, `h${i}.key`),
        bootstrap: bootstrapFor(addrs, i),
        init,
        report: true,
      });
      addrs.push(p.addrs);
      procs.push(p);
    }
    if (kind === 'ours') for (const [i, p] of procs.entries()) await p.call('publishHost', { name: `h${i}` });
    await sleep(SETTLE_MS);
    const before =
      kind === 'ours'
        ? await Promise.all(
            procs.map((p) => p.call<{ stats: { liveness: { suspected: number; died: number } } }>('observe')),
          )
        : [];
    const live = new Map<string, number>();
    const busy0 = await Promise.all(procs.map((p) => p.call<{ cpu: NodeJS.CpuUsage }>('usage')));
    const busyT0 = performance.now();
    const r = await drive(
      n,
      async (i, id) => {
        if (kind === 'anchor') return procs[i]!.call<number>('publishRaw', { text: id });
        const t0 = await procs[i]!.call<number>('publishWorkload', {
          id,
          tenant: 'bench',
          address: Buffer.from(addressOf(id)).toString('hex'),
        });
        live.set(id, i);
        return t0;
      },
      tracker,
      seed,
    );
    const busy1 = await Promise.all(procs.map((p) => p.call<{ cpu: NodeJS.CpuUsage }>('usage')));
    const busyWall = (performance.now() - busyT0) * 1000;
    const loadCpu = busy1.map(
      (u, i) => (u.cpu.user + u.cpu.system - busy0[i]!.cpu.user - busy0[i]!.cpu.system) / busyWall,
    );
    let verified = r.lost === 0;
    let flaps = 0;
    let suspicions = 0;
    if (kind === 'ours') {
      await sleep(300);
      const want = JSON.stringify([...live].map(([id, i]) => [id, procs[i]!.peerId]).sort());
      const obs = await Promise.all(
        procs.map((p) =>
          p.call<{ workloads: string[][]; stats: { liveness: { suspected: number; died: number } } }>(
            'observe',
          ),
        ),
      );
      verified &&= obs.every((o) => JSON.stringify(o.workloads.map((w) => [w[0], w[1]]).sort()) === want);
      // A flap: a live host declared dead (its workloads withdrawn); suspicion alone keeps its routes.
      flaps = obs.reduce((s, o, i) => s + o.stats.liveness.died - before[i]!.stats.liveness.died, 0);
      suspicions = obs.reduce(
        (s, o, i) => s + o.stats.liveness.suspected - before[i]!.stats.liveness.suspected,
        0,
      );
    }
    // Idle CPU (5 s without updates) and RSS after GC, per process.
    const u0 = await Promise.all(procs.map((p) => p.call<{ cpu: NodeJS.CpuUsage; rss: number }>('usage')));
    const t0 = performance.now();
    await sleep(5_000);
    const u1 = await Promise.all(procs.map((p) => p.call<{ cpu: NodeJS.CpuUsage; rss: number }>('usage')));
    const wall = (performance.now() - t0) * 1000;
    const cpu = u1.map((u, i) => (u.cpu.user + u.cpu.system - u0[i]!.cpu.user - u0[i]!.cpu.system) / wall);
    return {
      ...r,
      verified,
      extra: {
        rssMb: quantile(
          u1.map((u) => u.rss / 2 ** 20),
          0.5,
        ),
        idleCpuPct: quantile(cpu, 0.5) * 100,
        loadCpuPct: quantile(loadCpu, 0.5) * 100,
        flaps,
        suspicions,
      },
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- dissemination model ----

/**
 * Gossipsub's eager push over a random mesh of degree D: the first arrival at each node is the
 * shortest path from the publisher when every mesh edge has an independent delay (lognormal, median
 * `hopMs`, shape `sigma`). Returns, per simulated message, the time at which `fraction` of the other
 * nodes have it. The mesh is a random graph in which every node grafts D peers (degree ~D..2D, as
 * gossipsub's Dlo..Dhi bounds keep it).
 */
function simulate(
  n: number,
  hopMs: number,
  opts: { d?: number; sigma?: number; messages?: number; fraction: number; seed: number },
): number[] {
  const d = Math.min(opts.d ?? 6, n - 1);
  const sigma = opts.sigma ?? 0.6;
  const rand = prng(opts.seed);
  const adj: number[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < n; i++) {
    while (adj[i]!.length < d) {
      const j = Math.floor(rand() * n);
      if (j === i || adj[i]!.includes(j) || adj[j]!.length >= 2 * d) {
        if (adj[i]!.length >= Math.min(d, n - 1)) break;
        continue;
      }
      adj[i]!.push(j);
      adj[j]!.push(i);
    }
  }
  const gauss = (): number => {
    const u = 1 - rand();
    const v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const out: number[] = [];
  const dist = new Float64Array(n);
  for (let m = 0; m < (opts.messages ?? 200); m++) {
    dist.fill(Number.POSITIVE_INFINITY);
    const src = Math.floor(rand() * n);
    dist[src] = 0;
    // Dijkstra with a binary heap.
    const heap: [number, number][] = [[0, src]];
    const push = (x: [number, number]) => {
      heap.push(x);
      let k = heap.length - 1;
      while (k > 0) {
        const p = (k - 1) >> 1;
        if (heap[p]![0] <= heap[k]![0]) break;
        [heap[p], heap[k]] = [heap[k]!, heap[p]!];
        k = p;
      }
    };
    const pop = (): [number, number] => {
      const top = heap[0]!;
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        let k = 0;
        for (;;) {
          const l = 2 * k + 1;
          const r = l + 1;
          let s = k;
          if (l < heap.length && heap[l]![0] < heap[s]![0]) s = l;
          if (r < heap.length && heap[r]![0] < heap[s]![0]) s = r;
          if (s === k) break;
          [heap[s], heap[k]] = [heap[k]!, heap[s]!];
          k = s;
        }
      }
      return top;
    };
    while (heap.length > 0) {
      const [t, u] = pop();
      if (t > dist[u]!) continue;
      for (const v of adj[u]!) {
        const nt = t + hopMs * Math.exp(sigma * gauss());
        if (nt < dist[v]!) {
          dist[v] = nt;
          push([nt, v]);
        }
      }
    }
    const others = [...dist].filter((_, i) => i !== src).sort((a, b) => a - b);
    out.push(others[Math.max(0, Math.ceil(opts.fraction * others.length) - 1)]!);
  }
  return out;
}

/** The per-hop median delay for which the simulated all-N p50 equals the measured p50 (bisection). */
function calibrate(n: number, measuredP50: number, sigma: number): number {
  let lo = 0.01;
  let hi = Math.max(1, measuredP50 * 20);
  for (let i = 0; i < 25; i++) {
    const mid = (lo + hi) / 2;
    const p50 = quantile(simulate(n, mid, { sigma, fraction: 1, seed: 7, messages: 300 }), 0.5);
    if (p50 < measuredP50) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * Fits the per-hop delay distribution (median and lognormal shape) to a layout's measured p50 and p99;
 * the measured p90 is then the check the model did not see. The shape is bounded to sigma <= 1: a
 * heavier per-hop tail would only stand for stalls that hit every node at once (GC, CPU contention on
 * one machine), which independent per-hop delays cannot represent; the p99 mismatch shows them.
 */
function fitHopDelay(
  n: number,
  p50: number,
  p99: number,
): { hop: number; sigma: number; p90: number; p99: number } {
  let best = { hop: 0, sigma: 0, p90: 0, p99: 0, err: Number.POSITIVE_INFINITY };
  for (let sigma = 0.2; sigma <= 1.01; sigma += 0.1) {
    const hop = calibrate(n, p50, sigma);
    const sim = simulate(n, hop, { sigma, fraction: 1, seed: 11, messages: 400 });
    const m99 = quantile(sim, 0.99);
    const err = Math.abs(Math.log(m99 / p99));
    if (err < best.err) best = { hop, sigma, p90: quantile(sim, 0.9), p99: m99, err };
  }
  return best;
}

// ---- main ----

function table(rows: (string | number)[][]): string {
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  return rows.map((r) => r.map((x, c) => String(x).padStart(w[c]!)).join('  ')).join('\n');
}

const layouts = [
  {
    name: '10 in-process',
    n: 10,
    run: (k: 'anchor' | 'ours', s: number) => (k === 'anchor' ? inprocAnchor(10, s) : inprocOurs(10, s)),
  },
  {
    name: '30 in-process',
    n: 30,
    run: (k: 'anchor' | 'ours', s: number) => (k === 'anchor' ? inprocAnchor(30, s) : inprocOurs(30, s)),
  },
  { name: '10 processes', n: 10, run: (k: 'anchor' | 'ours', s: number) => procsRun(k, 10, s, OURS_PROCS) },
];

/** `--model=N:P50:P99`: only fit the model to given figures and print its predictions (no measuring). */
const modelArg = process.argv.find((a) => a.startsWith('--model='))?.slice('--model='.length);
if (modelArg !== undefined) {
  const [n, p50, p99] = modelArg.split(':').map(Number) as [number, number, number];
  const f = fitHopDelay(n, p50, p99);
  const k1 = simulate(1_000, f.hop, { sigma: f.sigma, fraction: 0.99, seed: 3, messages: 100 });
  const k10 = simulate(10_000, f.hop, { sigma: f.sigma, fraction: 0.99, seed: 5, messages: 30 });
  console.log(
    `N=${n}: hop ${round(f.hop, 2)} ms sigma ${round(f.sigma, 1)}, model p90 ${round(f.p90, 1)} p99 ${round(f.p99, 1)}; ` +
      `99% of 1k ${round(quantile(k1, 0.5), 0)} ms, of 10k ${round(quantile(k10, 0.5), 0)} ms`,
  );
  process.exit(0);
}

const results = new Map<
  string,
  { latencies: number[]; lost: number; verified: boolean; extra: Record<string, number[]> }
>();
for (let rep = 0; rep < REPS; rep++) {
  for (const layout of layouts.filter((l) => only === undefined || l.name.includes(only))) {
    const order: ('anchor' | 'ours')[] = rep % 2 === 0 ? ['anchor', 'ours'] : ['ours', 'anchor'];
    for (const kind of order) {
      const key = `${layout.name}/${kind}`;
      process.stderr.write(`rep ${rep + 1}/${REPS}: ${key} ...\n`);
      const r = await layout.run(kind, 1_000 + rep);
      const acc = results.get(key) ?? { latencies: [], lost: 0, verified: true, extra: {} };
      acc.latencies.push(...r.latencies);
      acc.lost += r.lost;
      acc.verified &&= r.verified;
      for (const [k, v] of Object.entries(r.extra ?? {})) acc.extra[k] = [...(acc.extra[k] ?? []), v];
      results.set(key, acc);
    }
  }
}

if (only !== undefined) {
  for (const [k, r] of results) {
    const qs = [0.1, 0.5, 0.9, 0.99, 1].map((q) => round(quantile(r.latencies, q), 1));
    console.log(`${k}: p10/p50/p90/p99/max ${qs.join(' / ')} ms, lost ${r.lost}, verified ${r.verified}`);
  }
  process.exit(0);
}

// Liveness with the dead interval at 1 s (heartbeat 250 ms, suspect 600 ms) under the same load.
process.stderr.write('liveness run: 10 processes, dead after 1 s ...\n');
const fastDeath = await procsRun('ours', 10, 4_242, FAST_DEATH);

const stat = (key: string, q: number) => quantile(results.get(key)!.latencies, q);
const rows: (string | number)[][] = [
  ['layout', 'kind', 'n msgs', 'lost', 'verified', 'p50 ms', 'p99 ms', 'p99 ratio'],
];
for (const layout of layouts) {
  for (const kind of ['anchor', 'ours'] as const) {
    const key = `${layout.name}/${kind}`;
    const r = results.get(key)!;
    rows.push([
      layout.name,
      kind,
      r.latencies.length,
      r.lost,
      r.verified ? 'yes' : 'NO',
      round(stat(key, 0.5), 1),
      round(stat(key, 0.99), 1),
      kind === 'ours' ? round(stat(key, 0.99) / stat(`${layout.name}/anchor`, 0.99), 2) : '',
    ]);
  }
}
console.log(
  `\nTime for an update to reach all other nodes (10 updates/s, ${WARMUP} warm-up, ${MEASURED}×${REPS} measured)\n`,
);
console.log(table(rows));

const pa = results.get('10 processes/anchor')!.extra;
const po = results.get('10 processes/ours')!.extra;
const med = (xs: number[] | undefined) => quantile(xs ?? [], 0.5);
console.log(`\nPer process (10 single-node processes, after GC; idle = 5 s without updates)\n`);
console.log(
  table([
    ['kind', 'RSS MB', 'idle CPU % of a core', 'CPU % at 10 updates/s'],
    [
      'bare libp2p + gossipsub',
      round(med(pa.rssMb), 1),
      round(med(pa.idleCpuPct), 2),
      round(med(pa.loadCpuPct), 2),
    ],
    [
      'segmesh gossip (heartbeat 1 s)',
      round(med(po.rssMb), 1),
      round(med(po.idleCpuPct), 2),
      round(med(po.loadCpuPct), 2),
    ],
    [
      'segmesh gossip (heartbeat 250 ms)',
      round(fastDeath.extra!.rssMb!, 1),
      round(fastDeath.extra!.idleCpuPct!, 2),
      round(fastDeath.extra!.loadCpuPct!, 2),
    ],
  ]),
);
console.log(
  `\nLiveness with dead after 1 s (heartbeat 250 ms, suspect 600 ms), 10 processes, 10 updates/s: ` +
    `${fastDeath.extra!.flaps} hosts wrongly declared dead, ${fastDeath.extra!.suspicions} suspicions; ` +
    `update p50 ${round(quantile(fastDeath.latencies, 0.5), 1)} ms, p99 ${round(quantile(fastDeath.latencies, 0.99), 1)} ms, ` +
    `${fastDeath.lost} lost, verified ${fastDeath.verified ? 'yes' : 'NO'}.`,
);

// Model: fit the per-hop delay on each layout's measured p50 and p99, check p90, predict 1k and 10k.
console.log(
  '\nDissemination model (random mesh D=6, lognormal per-hop delay fitted on p50 and p99, checked on p90)\n',
);
const modelRows: (string | number)[][] = [
  [
    'fitted on',
    'hop ms',
    'sigma',
    'p90 measured',
    'p90 model',
    'p99 measured',
    'p99 model',
    '99% of 1k p50/p99',
    '99% of 10k p50/p99',
  ],
];
const predictions = new Map<string, { hop: number; k1: number; k10: number }>();
for (const layout of layouts) {
  const key = `${layout.name}/ours`;
  const f = fitHopDelay(layout.n, stat(key, 0.5), stat(key, 0.99));
  const k1 = simulate(1_000, f.hop, { sigma: f.sigma, fraction: 0.99, seed: 3, messages: 100 });
  const k10 = simulate(10_000, f.hop, { sigma: f.sigma, fraction: 0.99, seed: 5, messages: 30 });
  predictions.set(layout.name, { hop: f.hop, k1: quantile(k1, 0.5), k10: quantile(k10, 0.5) });
  modelRows.push([
    key,
    round(f.hop, 2),
    round(f.sigma, 1),
    round(stat(key, 0.9), 1),
    round(f.p90, 1),
    round(stat(key, 0.99), 1),
    round(f.p99, 1),
    `${round(quantile(k1, 0.5), 0)} / ${round(quantile(k1, 0.99), 0)}`,
    `${round(quantile(k10, 0.5), 0)} / ${round(quantile(k10, 0.99), 0)}`,
  ]);
}
console.log(table(modelRows));
const basis = predictions.get('10 processes')!;
const pred1k = basis.k1;
const pred10k = basis.k10;
console.log(
  `\nPrediction (fit on the 10-process run, median hop ${round(basis.hop, 2)} ms): 99% of 1,000 hosts in ${round(pred1k, 0)} ms, ` +
    `of 10,000 hosts in ${round(pred10k, 0)} ms (median over simulated messages).`,
);
if (![...results.values()].every((r) => r.verified)) {
  console.log(
    '\nWARNING: a latency run did not verify (lost updates or a wrong final state): its figures are not valid.',
  );
}
if (!fastDeath.verified) {
  console.log(
    '\nNOTE: with dead after 1 s, live hosts were declared dead during the run (their workloads withdrawn): ' +
      'the 1 s dead interval did not hold under this load.',
  );
}

console.log(
  JSON.stringify({
    bench: 'gossip',
    p99_ms_10_inproc: round(stat('10 in-process/ours', 0.99), 1),
    p99_ms_30_inproc: round(stat('30 in-process/ours', 0.99), 1),
    p99_ms_10_procs: round(stat('10 processes/ours', 0.99), 1),
    anchor_p99_ms_10_procs: round(stat('10 processes/anchor', 0.99), 1),
    ratio_10_procs: round(stat('10 processes/ours', 0.99) / stat('10 processes/anchor', 0.99), 2),
    rss_mb_per_process: round(med(po.rssMb), 1),
    model_ms_99pct_1k: round(pred1k, 0),
    model_ms_99pct_10k: round(pred10k, 0),
  }),
);
