/**
 * `npm run bench -- dataplane [N] [REPS]`: N (default 100,000) seg6 encap /128 routes added, replaced
 * and deleted by the project (LinuxDataplane: batched rtnetlink, in its own process started inside the
 * namespace as the agent runs in its host's namespace; bench/_dataplane-child.ts) and by the anchor
 * `ip -6 -force -batch FILE` (failed lines retried until none fail). Repetitions interleave the two
 * methods (alternating which goes first), each in a fresh namespace; each method's result is verified
 * by a dump (exact count and content) before its time counts. Plus a full dump-and-diff of the N
 * routes (the project's no-op reconcile: dump, decode, diff) against the anchor
 * `ip -6 route show table all >/dev/null`.
 */
import { spawnSync } from 'node:child_process';
import { ROUTE_PROTOCOL } from '../src/dataplane/constants.ts';
import { NetnsDataplane } from '../src/dataplane/netns.ts';
import type { Route } from '../src/dataplane/route.ts';
import { formatIpv6, parseIpv6 } from '../src/srv6/address.ts';
import { createLab } from '../test/harness/index.ts';
import { runIpBatch } from './_ipbatch.ts';
import { median, round } from './_stats.ts';

const N = Number(process.argv[2] ?? 100_000);
const REPS = Number(process.argv[3] ?? 3);
const base = parseIpv6('2001:db8:a::');
const SEGS2 = [parseIpv6('fc00:1::1'), parseIpv6('fc00:2::1')];
const SEGS3 = [parseIpv6('fc00:1::1'), parseIpv6('fc00:3::1'), parseIpv6('fc00:2::1')];
type Op = 'add' | 'replace' | 'delete';
const OPS: Op[] = ['add', 'replace', 'delete'];

const routes = (segs: bigint[]): Route[] =>
  Array.from({ length: N }, (_, i) => ({
    dst: { address: base + BigInt(i), length: 128 },
    table: 254,
    dev: 'd0',
    encap: { type: 'seg6', mode: 'encap', segments: segs },
  }));

function ipBatchFile(op: Op): string[] {
  const lines: string[] = [];
  for (let i = 0; i < N; i++) {
    const dst = `${formatIpv6(base + BigInt(i))}/128`;
    if (op === 'delete') lines.push(`route del ${dst} dev d0 proto ${ROUTE_PROTOCOL}`);
    else {
      const segs = (op === 'add' ? SEGS2 : SEGS3).map(formatIpv6).join(',');
      lines.push(`route ${op} ${dst} encap seg6 mode encap segs ${segs} dev d0 proto ${ROUTE_PROTOCOL}`);
    }
  }
  return lines;
}

async function verify(dp: NetnsDataplane, op: Op): Promise<void> {
  const ours = await dp.listRoutes({ protocol: ROUTE_PROTOCOL });
  const want = op === 'delete' ? 0 : N;
  if (ours.length !== want) throw new Error(`verification after ${op}: ${ours.length} routes, want ${want}`);
  const segs = op === 'add' ? SEGS2 : SEGS3;
  const seen = new Set<bigint>();
  for (const r of ours) {
    const off = r.dst.address - base;
    if (r.dst.length !== 128 || off < 0n || off >= BigInt(N) || seen.has(off))
      throw new Error(`unexpected route ${formatIpv6(r.dst.address)}`);
    seen.add(off);
    const e = r.encap;
    if (
      e?.type !== 'seg6' ||
      e.mode !== 'encap' ||
      e.segments.length !== segs.length ||
      e.segments.some((s, i) => s !== segs[i])
    ) {
      throw new Error(`route ${formatIpv6(r.dst.address)} has the wrong encapsulation after ${op}`);
    }
  }
}

interface Sample {
  method: 'project' | 'ip';
  op: Op;
  ms: number;
  retries: number;
}

const lab = createLab();
const samples: Sample[] = [];
const dumpSamples: { ours: number; ip: number }[] = [];
try {
  const desired = { add: routes(SEGS2), replace: routes(SEGS3) };
  for (let rep = 0; rep < REPS; rep++) {
    const order: ('project' | 'ip')[] = rep % 2 === 0 ? ['ip', 'project'] : ['project', 'ip'];
    for (const method of order) {
      const ns = await lab.netns(`bd${rep}${method[0]}`);
      await ns.ip('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1');
      await ns.ip('link', 'set', 'd0', 'up');
      await ns.ip('link', 'set', 'd1', 'up');
      const dp = new NetnsDataplane({ netns: ns.name });
      await dp.whenReady();
      let project: Record<string, number> | undefined;
      if (method === 'project') {
        const child = spawnSync(
          'ip',
          [
            'netns',
            'exec',
            ns.name,
            process.execPath,
            new URL('./_dataplane-child.ts', import.meta.url).pathname,
            String(N),
          ],
          {
            encoding: 'utf8',
            maxBuffer: 16 << 20,
          },
        );
        if (child.status !== 0)
          throw new Error(`project run failed (its results were not verified): ${child.stderr}`);
        project = JSON.parse(child.stdout.trim().split('\n').pop()!) as Record<string, number>;
      }
      for (const op of OPS) {
        let ms: number;
        let retries: number;
        if (method === 'ip') {
          const r = runIpBatch(ns, ipBatchFile(op), `dp-${rep}-${op}`);
          ms = r.ms;
          retries = r.retriedLines;
        } else {
          const r = project!;
          ms = r[op]!;
          retries = op === 'add' ? r.addRetries! : op === 'replace' ? r.replaceRetries! : 0;
        }
        if (method === 'ip') await verify(dp, op); // the child verified its own results before reporting times
        samples.push({ method, op, ms, retries });
        if (method === 'project' && op === 'add') {
          // Dump and diff with N routes installed (measured by the child: a no-op reconcile) vs `ip route show`,
          // measured here right after the child's run, with the same N routes installed again.
          await dp.addRoutes(desired.add);
          const t1 = performance.now();
          const s = spawnSync('sh', ['-c', `ip -n ${ns.name} -6 route show table all >/dev/null`]);
          const ipMs = performance.now() - t1;
          if (s.status !== 0) throw new Error('ip route show failed');
          dumpSamples.push({ ours: project!.dumpDiff!, ip: ipMs });
          await dp.deleteRoutes(desired.add);
        }
      }
      await dp.close();
      await ns.destroy();
    }
  }
} finally {
  await lab.teardown();
}

const ratios: Record<Op, number> = { add: 0, replace: 0, delete: 0 };
console.log(`dataplane: ${N} seg6 encap /128 routes, ${REPS} interleaved repetitions, fresh namespace each`);
console.log('op       method    median ms   routes/s    runs (ms)                     retried');
for (const op of OPS) {
  const perRep: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const p = samples.filter((s) => s.op === op && s.method === 'project')[rep]!;
    const i = samples.filter((s) => s.op === op && s.method === 'ip')[rep]!;
    perRep.push(i.ms / p.ms);
  }
  ratios[op] = median(perRep);
  for (const method of ['ip', 'project'] as const) {
    const s = samples.filter((x) => x.op === op && x.method === method);
    const ms = median(s.map((x) => x.ms));
    console.log(
      `${op.padEnd(8)} ${method.padEnd(9)} ${ms.toFixed(0).padStart(9)}  ${Math.round((N / ms) * 1000)
        .toString()
        .padStart(9)}    ${s
        .map((x) => x.ms.toFixed(0))
        .join(' / ')
        .padEnd(28)}  ${s.map((x) => x.retries).join('/')}`,
    );
  }
  console.log(
    `${op.padEnd(8)} ratio     project/ip median of per-repetition ratios: ${ratios[op].toFixed(2)}x (${perRep.map((r) => r.toFixed(2)).join(' / ')})`,
  );
}
const dumpOurs = median(dumpSamples.map((d) => d.ours));
const dumpIp = median(dumpSamples.map((d) => d.ip));
const dumpRatio = median(dumpSamples.map((d) => d.ip / d.ours));
console.log(
  `dump+diff of ${N}: project (no-op reconcile) ${dumpOurs.toFixed(0)} ms [${dumpSamples.map((d) => d.ours.toFixed(0)).join(' / ')}], ` +
    `ip -6 route show table all >/dev/null ${dumpIp.toFixed(0)} ms [${dumpSamples.map((d) => d.ip.toFixed(0)).join(' / ')}], ip/project ${dumpRatio.toFixed(2)}`,
);
console.log(
  JSON.stringify({
    bench: 'dataplane',
    add_ratio: round(ratios.add, 2),
    replace_ratio: round(ratios.replace, 2),
    delete_ratio: round(ratios.delete, 2),
    dump_diff_ms: Math.round(dumpOurs),
    dump_ratio: round(dumpRatio, 2),
  }),
);
