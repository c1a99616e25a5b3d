/**
 * Mobility at the fabric level: three agents in namespaces, a client on host3 pinging a workload at
 * 100 packets per second while the workload moves between host1 and host2, 50 times (make before
 * break: start on the new host, wait until every host forwards there, remove the old instance).
 * Per move: the time from the start on the new host until every other host's kernel forwards to the
 * new host's SID; packets lost over the whole run (ping's own count). Also the RSS of a running agent
 * next to a bare libp2p process (the same transports and gossipsub, nothing of ours), same run.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createLab } from '../test/harness/index.ts';
import { claimRun, newRunPrefix, sweep } from '../test/harness/run.ts';
import { AgentCluster } from '../test/system/agent/cluster.ts';
import { median, quantile, round } from './_stats.ts';

const MOVES = Number(process.env.BENCH_MOVES ?? 50);

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

try {
  await cluster.create(3);
  cluster.applyTenants();
  const [h1, h2, h3] = cluster.hosts as [
    (typeof cluster.hosts)[0],
    (typeof cluster.hosts)[0],
    (typeof cluster.hosts)[0],
  ];
  const client = await cluster.workload(h3, 'client', 'blue', 'bench.client');
  let current = await cluster.workload(h1, 'm0', 'blue', 'bench.mover');
  let where = h1;
  await cluster.converged(2);
  const address = current.address;
  const sid = (h: typeof h1) => `fc00:0:${h.index}:2064::`;

  // Continuous probes for the whole run; ping's own counts, read from its summary at SIGINT.
  const pinger = await lab.daemon({
    name: 'bench-ping',
    command: 'ping',
    args: ['-6', '-i', '0.01', '-W', '1', address],
    netns: client.ns,
  });
  const converge: number[] = [];
  const attach: number[] = [];
  const others = [h1, h2, h3];
  for (let i = 1; i <= MOVES; i++) {
    const target = where === h1 ? h2 : h1;
    const begin = performance.now();
    const next = await cluster.workload(target, `m${i}`, 'blue', 'bench.mover');
    // Convergence counts from the claim (attach and local routes are in place when the call returns).
    const start = performance.now();
    attach.push(start - begin);
    // Every other host forwards to the new host's SID (its kernel, read with ip).
    for (const h of others.filter((x) => x !== target)) {
      for (;;) {
        const table = h === where ? '385425' : '385424'; // the old host redirects from its delivery table
        const r = await h.ns.ip('-6', 'route', 'show', 'table', table, `${address}/128`);
        if (r.stdout.includes(sid(target))) break;
        if (performance.now() - start > 30_000) throw new Error(`move ${i}: ${h.name} did not repoint`);
        await new Promise((res) => setTimeout(res, 2));
      }
    }
    converge.push(performance.now() - start);
    await cluster.api(where).call('deleteWorkload', { identity: 'bench.mover' });
    await current.ns.destroy();
    current = next;
    where = target;
  }
  pinger.kill('SIGINT');
  await pinger.exited;
  const m = /(\d+) packets transmitted, (\d+) received/.exec(readFileSync(pinger.logFile, 'utf8'));
  const transmitted = Number(m?.[1] ?? 0);
  const received = Number(m?.[2] ?? 0);
  const agentRss = rssMb(h3.agent!.pid);
  const libp2pRss = await bareLibp2pRss();
  const result = {
    bench: 'mobility',
    moves: MOVES,
    lost: transmitted - received,
    converge_p50_ms: round(median(converge), 1),
    converge_p99_ms: round(quantile(converge, 0.99), 1),
    edge_converge_p99_ms: null,
    agent_rss_mb: round(agentRss, 1),
    libp2p_rss_mb: round(libp2pRss, 1),
  };
  process.stdout.write(
    `moves    ${MOVES} between host1 and host2, client on host3 at 100 pps\n` +
      `probes   ${transmitted} sent, ${received} received, ${transmitted - received} lost\n` +
      `attach   p50 ${round(median(attach), 1)} ms (new instance: link, address, local routes, then the claim)\n` +
      `converge p50 ${result.converge_p50_ms} ms, p99 ${result.converge_p99_ms} ms (claim -> every other host's kernel forwards to the new host)\n` +
      `edge     not measured here (the FRR edge is measured by bench/bgp.ts)\n` +
      `rss      agent ${result.agent_rss_mb} MB, bare libp2p process ${result.libp2p_rss_mb} MB\n` +
      `${JSON.stringify(result)}\n`,
  );
} finally {
  cluster.close();
  await lab.teardown().catch(() => undefined);
  await sweep(prefix);
}
