/**
 * `npm run bench -- throughput [REPS] [SECONDS]`: iperf3 TCP between workloads on two hosts (forwarded
 * traffic: the workloads are namespaces behind veths, the hosts route/encapsulate), comparing plain
 * IPv6 routing with SRv6 `encap` and `encap.red` with 2 segments (End then End.DT6, both on the far
 * host, so every mode crosses the same links and hosts), 1 and 4 streams. Modes interleave within each
 * repetition. Every workload link has the MTU from the formula (1420 for 2 segments) in every mode, so
 * the MSS is the same. Prints the median of per-repetition ratios SRv6/plain and their spread.
 */
import { type Seg6Mode, workloadMtu } from '../src/dataplane/index.ts';
import type { Route } from '../src/dataplane/route.ts';
import { parsePrefix } from '../src/srv6/address.ts';
import { createLab, waitFor } from '../test/harness/index.ts';
import {
  buildFabric,
  dt6Sid,
  endSid,
  TABLE,
  underlay,
  workloadAddr,
  workloadText,
} from '../test/system/dataplane/fabric.ts';
import { median, round } from './_stats.ts';

const REPS = Number(process.argv[2] ?? 5);
const SECONDS = Number(process.argv[3] ?? 4);
type Mode = 'plain' | 'encap' | 'encap.red';
const MODES: Mode[] = ['plain', 'encap', 'encap.red'];
const STREAMS = [1, 4];

const lab = createLab();
const results: { rep: number; mode: Mode; streams: number; gbps: number }[] = [];
try {
  const f = await buildFabric(lab, { hostCount: 2, workloadHosts: [1, 2] });
  for (const h of f.hosts) {
    await h.dp.reconcile({ routes: f.desiredRoutes(h.n, 'encap', false), rules: f.desiredRules(h.n) });
    // Plain mode delivers by the main table on the far host: give it the local workload.
    await h.dp.addRoutes([
      { dst: { address: workloadAddr(h.n, 'a'), length: 128 }, table: 254, dev: `wa${h.n}` },
    ]);
  }
  const tenantRoute = (to: number, mode: Mode): Route =>
    mode === 'plain'
      ? { dst: parsePrefix(`2001:db8:a:${to}::/64`), table: TABLE.a, gateway: underlay(to), dev: 'eth0' }
      : {
          dst: parsePrefix(`2001:db8:a:${to}::/64`),
          table: TABLE.a,
          dev: 'eth0',
          encap: { type: 'seg6', mode: mode as Seg6Mode, segments: [endSid(to), dt6Sid(to, 'a')] },
        };
  const setMode = async (mode: Mode) => {
    await f.hosts[0]!.dp.replaceRoutes([tenantRoute(2, mode)]);
    await f.hosts[1]!.dp.replaceRoutes([tenantRoute(1, mode)]);
  };
  const client = f.workloads.get('a1')!;
  const server = f.workloads.get('a2')!;
  await lab.daemon({
    name: 'bench-iperf3-server',
    command: 'iperf3',
    args: ['-s', '-B', workloadText(2, 'a')],
    netns: server,
    ready: async () => (await server.exec('ss', ['-ltn'], { allowFail: true })).stdout.includes(':5201'),
  });
  for (const mode of MODES) {
    await setMode(mode);
    await waitFor(
      async () =>
        (await client.exec('ping', ['-6', '-c', '1', '-W', '1', workloadText(2, 'a')], { allowFail: true }))
          .code === 0,
      {
        timeoutMs: 10_000,
        what: `workload path in mode ${mode}`,
      },
    );
  }
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? MODES : [...MODES].reverse();
    for (const streams of STREAMS) {
      for (const mode of order) {
        await setMode(mode);
        const r = await client.exec(
          'iperf3',
          ['-6', '-c', workloadText(2, 'a'), '-t', String(SECONDS), '-P', String(streams), '-J'],
          {
            timeoutMs: (SECONDS + 20) * 1000,
          },
        );
        const doc = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
        const gbps = doc.end.sum_received.bits_per_second / 1e9;
        if (!(gbps > 0))
          throw new Error(`no traffic in mode ${mode} (${streams} streams): the result does not count`);
        results.push({ rep, mode, streams, gbps });
      }
    }
  }
  await f.close();
} finally {
  await lab.teardown();
}

const get = (rep: number, mode: Mode, streams: number) =>
  results.find((x) => x.rep === rep && x.mode === mode && x.streams === streams)!.gbps;
const ratios = (mode: Mode, streams: number) =>
  Array.from({ length: REPS }, (_, rep) => get(rep, mode, streams) / get(rep, 'plain', streams));
console.log(
  `throughput: iperf3 workload a1 (host 1) -> a2 (host 2), ${SECONDS} s per run, ${REPS} interleaved repetitions, workload MTU ${workloadMtu({ maxSegments: 2 })}`,
);
console.log(
  'mode        streams  Gbit/s per repetition                       median   SRv6/plain per repetition          median ratio',
);
const series: Record<string, number[]> = {};
for (const streams of STREAMS) {
  for (const mode of MODES) {
    const g = Array.from({ length: REPS }, (_, rep) => get(rep, mode, streams));
    const rs = mode === 'plain' ? [] : ratios(mode, streams);
    if (mode !== 'plain') series[`${mode}/${streams}`] = rs;
    console.log(
      `${mode.padEnd(11)} ${String(streams).padStart(7)}  ${g
        .map((x) => x.toFixed(2))
        .join(' / ')
        .padEnd(42)}  ${median(g).toFixed(2).padStart(6)}   ${rs
        .map((x) => x.toFixed(2))
        .join(' / ')
        .padEnd(34)} ${mode === 'plain' ? '' : median(rs).toFixed(3)}`,
    );
  }
}
const range = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
const spread = Math.max(...Object.values(series).map(range));
console.log(
  `spread: the largest max-min range of the per-repetition ratio series above: ${spread.toFixed(3)}`,
);
console.log(
  JSON.stringify({
    bench: 'throughput',
    encap_ratio: round(median(series['encap/1']!), 3),
    red_ratio: round(median(series['encap.red/1']!), 3),
    encap_ratio_4: round(median(series['encap/4']!), 3),
    spread: round(spread, 3),
  }),
);
