/**
 * Mobility at the fabric level: three agents in namespaces with an FRR 8.4 edge router on the same
 * underlay switch, a client on host3 and an external client behind FRR each pinging a workload at 100
 * packets per second while the workload moves between host1 and host2, 50 times (make before break:
 * start on the new host, wait until every host and FRR forward there, remove the old instance).
 *
 * Timing comes from the kernels themselves: an `ip -tshort monitor route` per namespace (at real-time
 * priority) stamps every route change (µs), so nothing is polled and the probes do not compete with
 * the agents for the CPU.
 * Per move:
 *   - claim: the new host's own kernel has the delivery route of the new instance (its routes are in
 *     place; from then on it may announce the workload);
 *   - converge: from the claim until every other host's kernel forwards to the new host's End.DT6 SID
 *     (host3's egress table; the old host's delivery table, which redirects);
 *   - edge: from the claim until FRR's kernel route of the /128 (zebra's install of FRR's best VPN
 *     path) points at the new host's SID only.
 * Loss over the whole run from ping's own counts. Also the RSS of a running agent next to a bare libp2p
 * process (the same transports and gossipsub, nothing of ours), same run.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

import { createLab, type Daemon, type Netns, waitFor } from '../test/harness/index.ts';
import { claimRun, newRunPrefix, sweep } from '../test/harness/run.ts';
import { AgentCluster, EDGE } from '../test/system/agent/cluster.ts';
import { pingLosses } from './_ping.ts';
import { median, quantile, round } from './_stats.ts';

const MOVES = Number(process.env.BENCH_MOVES ?? 50);
const TIMEOUT_MS = 30_000;
const DELIVERY_TABLE = '385425';
const EGRESS_TABLE = '385424';

const prefix = newRunPrefix();
process.env.SEGMESH_TEST_PREFIX = prefix;
claimRun(prefix, process.pid);
const lab = createLab();
const cluster = new AgentCluster(lab);

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

async function bareLibp2pRss(): Promise<number> {
  const script = `
    import { createLibp2p } from 'libp2p';
    import { tcp } from '@libp2p/tcp';
    import { noise } from '@libp2p/noise';
    import { yamux } from '@libp2p/yamux';
    import { gossipsub } from '@libp2p/gossipsub';
    import { identify } from '@libp2p/identify';
    const node = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()],
      connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify(), pubsub: gossipsub() } });
    node.services.pubsub.subscribe('t');
    setTimeout(() => { globalThis.gc?.(); console.log(process.memoryUsage().rss); process.exit(0); }, 3000);`;
  const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((r) => child.once('exit', r));
  return Number(out.trim()) / 1024 / 1024;
}

/** One route change as `ip -tshort monitor route` printed it (continuation lines joined). */
interface RouteEvent {
  readonly atMs: number;
  readonly text: string;
}

/** Route changes of one namespace, read incrementally from its monitor's log. */
class RouteMonitor {
  readonly events: RouteEvent[] = [];
  readonly #daemon: Daemon;
  #offset = 0;
  #partial = '';

  constructor(daemon: Daemon) {
    this.#daemon = daemon;
  }

  static async start(ns: Netns): Promise<RouteMonitor> {
    const daemon = await lab.daemon({
      name: `bench-monitor-${ns.name}`,
      // Real-time priority: `ip` stamps a change when it reads it, so on a busy machine a monitor
      // waiting for the CPU would stamp late (and make a claim look later than it was, too).
      command: 'chrt',
      args: ['-f', '10', 'ip', '-tshort', 'monitor', 'route'],
      netns: ns,
      env: { ...process.env, TZ: 'UTC' },
    });
    return new RouteMonitor(daemon);
  }

  poll(): void {
    const fd = openSync(this.#daemon.logFile, 'r');
    try {
      const buf = Buffer.alloc(1 << 16);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.#offset);
        if (n <= 0) break;
        this.#offset += n;
        this.#partial += buf.subarray(0, n).toString('utf8');
      }
    } finally {
      closeSync(fd);
    }
    const lines = this.#partial.split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\] (.*)$/.exec(line);
      if (m) {
        this.events.push({ atMs: Date.parse(`${m[1]}Z`) + Number(m[2]) / 1000, text: m[3]! });
      } else if (line.trim() !== '' && this.events.length > 0) {
        // A multipath route: its nexthops follow on lines of their own.
        const last = this.events.pop()!;
        this.events.push({ atMs: last.atMs, text: `${last.text} ${line.trim()}` });
      }
    }
  }

  /** The first change at or after `sinceMs` that `match` accepts; waits for it. */
  async first(sinceMs: number, match: (text: string) => boolean, what: string): Promise<number> {
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      this.poll();
      const e = this.events.find((x) => x.atMs >= sinceMs && !x.text.startsWith('Deleted') && match(x.text));
      if (e) return e.atMs;
      if (Date.now() > deadline) throw new Error(`no route change within ${TIMEOUT_MS} ms: ${what}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  async stop(): Promise<void> {
    await this.#daemon.stop();
  }
}

interface MoveTimes {
  readonly move: number;
  readonly begin: number;
  readonly claim: number;
  readonly removing: number;
  readonly removed: number;
}

/** Where in the run a moment falls, for the loss report. */
function placeInRun(atMs: number, timeline: readonly MoveTimes[]): string {
  const t = [...timeline].reverse().find((m) => m.begin <= atMs);
  if (!t) return '(before the first move)';
  const rel = (x: number) => `${Math.round(Math.abs(atMs - x))} ms`;
  if (atMs < t.claim) return `(move ${t.move}, ${rel(t.claim)} before its claim)`;
  if (atMs < t.removing) return `(move ${t.move}, ${rel(t.claim)} after its claim)`;
  if (atMs < t.removed) return `(move ${t.move}, while the old instance was removed)`;
  return `(move ${t.move}, ${rel(t.removed)} after the old instance was removed)`;
}

const routeOf = (address: string) => (text: string) => text.startsWith(`${address} `);
const inTable = (table: string) => (text: string) => text.includes(` table ${table} `);

try {
  await cluster.create(3, { edge: EDGE });
  cluster.applyTenants();
  const [h1, h2, h3] = cluster.hosts as [
    (typeof cluster.hosts)[0],
    (typeof cluster.hosts)[0],
    (typeof cluster.hosts)[0],
  ];
  // The edge of the agent system tests (FRR serving tenant blue, an external client behind it), in a
  // namespace here: this bench needs this kernel's seg6.
  const { frr, edge, ext } = await cluster.addEdge({ vm: false });

  const client = await cluster.workload(h3, 'client', 'blue', 'bench.client');
  let current = await cluster.workload(h1, 'm0', 'blue', 'bench.mover');
  let where = h1;
  await cluster.converged(2);
  const address = current.address;
  const sid = (h: typeof h1) => `fc00:0:${h.index}:2064::`;
  await frr.waitRoute(`${address}/128`, { sid: sid(h1), timeoutMs: 60_000 });
  // Both probe paths work before the clock starts (host1 learns FRR's prefix for the replies).
  for (const from of [client.ns, ext]) {
    await waitFor(
      async () =>
        (await from.exec('ping', ['-6', '-c', '1', '-W', '1', address], { allowFail: true })).code === 0,
      { timeoutMs: 60_000, what: `${from.name} to reach the workload` },
    );
  }

  const monitors = new Map<string, RouteMonitor>();
  for (const h of cluster.hosts) monitors.set(h.name, await RouteMonitor.start(h.ns));
  const edgeMonitor = await RouteMonitor.start(edge!);
  await new Promise((r) => setTimeout(r, 300));

  // Continuous probes for the whole run; ping's own counts, read from its summary at SIGINT.
  const pingers = [
    await lab.daemon({
      name: 'bench-ping-host3',
      command: 'ping',
      args: ['-6', '-D', '-i', '0.01', '-W', '1', address],
      netns: client.ns,
    }),
    await lab.daemon({
      name: 'bench-ping-ext',
      command: 'ping',
      args: ['-6', '-D', '-i', '0.01', '-W', '1', address],
      netns: ext,
    }),
  ];
  const converge: number[] = [];
  const edgeConverge: number[] = [];
  const edgeFirst: number[] = [];
  const attach: number[] = [];
  const timeline: MoveTimes[] = [];
  for (let i = 1; i <= MOVES; i++) {
    const target = where === h1 ? h2 : h1;
    const begin = Date.now();
    const next = await cluster.workload(target, `m${i}`, 'blue', 'bench.mover');
    // The claim: the new instance's delivery route is in the new host's kernel.
    const claim = await monitors
      .get(target.name)!
      .first(
        begin,
        (t) => routeOf(address)(t) && inTable(DELIVERY_TABLE)(t) && !t.includes('encap'),
        `move ${i}: ${target.name} delivers locally`,
      );
    attach.push(claim - begin);
    const newSid = sid(target);
    const oldSid = sid(where);
    let last = claim;
    for (const h of cluster.hosts.filter((x) => x !== target)) {
      const table = h === where ? DELIVERY_TABLE : EGRESS_TABLE; // the old host redirects
      const at = await monitors
        .get(h.name)!
        .first(
          begin,
          (t) => routeOf(address)(t) && inTable(table)(t) && t.includes(`[ ${newSid} ]`),
          `move ${i}: ${h.name} forwards to ${target.name}`,
        );
      last = Math.max(last, at);
    }
    converge.push(last - claim);
    const atEdge = await edgeMonitor.first(
      begin,
      (t) => routeOf(address)(t) && t.includes(`[ ${newSid} ]`) && !t.includes(`[ ${oldSid} ]`),
      `move ${i}: FRR forwards to ${target.name}`,
    );
    edgeConverge.push(atEdge - claim);
    // FRR may first install both hosts' paths (ECMP; what reaches the old host is redirected).
    edgeFirst.push(
      (await edgeMonitor.first(
        begin,
        (t) => routeOf(address)(t) && t.includes(`[ ${newSid} ]`),
        `move ${i}: FRR uses ${target.name}`,
      )) - claim,
    );
    const removing = Date.now();
    await cluster.api(where).call('deleteWorkload', { identity: 'bench.mover' });
    await current.ns.destroy();
    timeline.push({ move: i, begin, claim, removing, removed: Date.now() });
    current = next;
    where = target;
  }
  // The probes run on for a while after the last move, so that every echo sent during a move has had
  // its reply; those still in flight when ping is interrupted are not losses.
  await new Promise((r) => setTimeout(r, 1_500));
  const probes = { transmitted: 0, received: 0, inFlight: 0 };
  const losses: string[] = [];
  for (const p of pingers) {
    p.kill('SIGINT');
    await p.exited;
    const r = pingLosses(readFileSync(p.logFile, 'utf8'));
    probes.transmitted += r.transmitted;
    probes.received += r.received;
    probes.inFlight += r.inFlight;
    for (const l of r.lost)
      losses.push(`${p.name.replace('bench-ping-', '')} seq ${l.seq} ${placeInRun(l.atMs, timeline)}`);
  }
  for (const m of [...monitors.values(), edgeMonitor]) await m.stop();
  const lost = losses.length;
  const agentRss = rssMb(h3.agent!.pid);
  const libp2pRss = await bareLibp2pRss();
  const result = {
    bench: 'mobility',
    moves: MOVES,
    lost,
    converge_p50_ms: round(median(converge), 1),
    converge_p99_ms: round(quantile(converge, 0.99), 1),
    edge_converge_p99_ms: round(quantile(edgeConverge, 0.99), 1),
    agent_rss_mb: round(agentRss, 1),
    libp2p_rss_mb: round(libp2pRss, 1),
  };
  const ms = (v: number[]) =>
    `p50 ${round(median(v), 1)} ms, p99 ${round(quantile(v, 0.99), 1)} ms, max ${round(Math.max(...v), 1)} ms`;
  process.stdout.write(
    `moves    ${MOVES} between host1 and host2; probes at 100 pps from a client on host3 and from an external client behind FRR\n` +
      `probes   ${probes.transmitted} sent, ${probes.received} received, ${lost} lost` +
      ` (${probes.inFlight} in flight when ping stopped, 1.5 s after the last move, not counted)\n` +
      losses.map((l) => `lost     ${l}\n`).join('') +
      `attach   ${ms(attach)} (API call -> the new host's kernel delivers: link, address, local routes)\n` +
      `converge ${ms(converge)} (claim -> every other host's kernel forwards to the new host)\n` +
      `edge     ${ms(edgeConverge)} (claim -> FRR's kernel route points at the new host only)\n` +
      `         ${ms(edgeFirst)} (claim -> FRR's kernel route includes the new host)\n` +
      `rss      agent ${result.agent_rss_mb} MB, bare libp2p process ${result.libp2p_rss_mb} MB\n` +
      `${JSON.stringify(result)}\n`,
  );
} finally {
  cluster.close();
  await lab.teardown().catch(() => undefined);
  await sweep(prefix);
}
