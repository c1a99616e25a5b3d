/**
 * `segmesh plan` at scale: the real CLI (a child process, `bin/segmesh`'s Node on `dist/cli/main.js`)
 * printing the full plan of 1,000 hosts and 10,000 workloads to /dev/null, its wall time and peak RSS
 * (`/usr/bin/time`), against the anchor: the model's own `computeHostPlan` for every host, in this
 * process, in the same run (interleaved repetitions). The anchor plans each host on its own, as an
 * agent plans its host; the CLI plans every host of one view and shares what their plans have in
 * common (`SharedPlanning` in src/srv6/pathcompute.ts: the same plans, built with less work). Goals: peak RSS under 512 MB and wall time at
 * most 1.5x the bare computation. CPU times (user + system, all threads) of both sides are printed
 * too: on a shared machine their ratio is the steadier figure (neither side is charged for waiting).
 * Verified before timing counts: one run piped into this process must print a plan for every host
 * (the fabric summary line and one `host NAME` header per host, in order) and exit 0; every timed
 * run must exit 0 with an empty stderr; the anchor must produce a plan for every host.
 * Environment: BENCH_HOSTS, BENCH_WORKLOADS, BENCH_REPS (defaults 1000, 10000, 3).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fabricInputFromSpec, parseConfig } from '../src/config/load.ts';
import { buildFabricView } from '../src/srv6/fabric.ts';
import { computeHostPlan, SharedPlanning } from '../src/srv6/pathcompute.ts';
import { largeFabricYaml } from '../test/harness/fabric-yaml.ts';
import { median, round } from './_stats.ts';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const WORKLOADS = Number(process.env.BENCH_WORKLOADS ?? 10_000);
const REPS = Math.max(3, Number(process.env.BENCH_REPS ?? 3));
const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'dist/cli/main.js');
const TIME = '/usr/bin/time';

if (spawnSync(TIME, ['-f', '%M', 'true']).status !== 0) {
  process.stderr.write(`bench plan: needs GNU time at ${TIME} (apt-get install time) for the peak RSS\n`);
  process.exit(1);
}
const build = spawnSync('bash', [join(root, 'scripts/build.sh')], { stdio: 'inherit' });
if (build.status !== 0) process.exit(1);

const dir = mkdtempSync(join(tmpdir(), 'segmesh-bench-plan-'));
const file = join(dir, 'fabric.yaml');
writeFileSync(file, largeFabricYaml({ hosts: HOSTS, workloads: WORKLOADS }));

const parsed = parseConfig(readFileSync(file, 'utf8'), file, ['Fabric']);
if (parsed.kind !== 'Fabric') throw new Error('unreachable');
const view = buildFabricView(fabricInputFromSpec(parsed.spec));
const hostNames = [...view.hosts.keys()];
if (hostNames.length !== HOSTS) throw new Error(`fabric has ${hostNames.length} hosts, not ${HOSTS}`);

/** CPU time of this process so far (user + system, all its threads), in ms. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * The anchor: every host's HostPlan, nothing printed. Returns wall and CPU ms and the number of
 * objects.
 */
function anchor(): { ms: number; cpuMs: number; objects: number } {
  globalThis.gc?.();
  const c = cpuMs();
  const t = performance.now();
  let objects = 0;
  let plans = 0;
  for (const h of hostNames) {
    const plan = computeHostPlan(view, h);
    objects += plan.objects.size;
    if (plan.objects.size > 0) plans++;
  }
  const ms = performance.now() - t;
  const cpu = cpuMs() - c;
  if (plans !== HOSTS) throw new Error(`anchor: ${plans} of ${HOSTS} hosts have a plan`);
  return { ms, cpuMs: cpu, objects };
}

/**
 * The second anchor: every host's HostPlan as the CLI computes them, sharing what the plans of one view
 * have in common (SharedPlanning), nothing printed. segmesh plan over this is what formatting and
 * writing cost; the first anchor is the per-host computation the goal is stated against.
 */
function sharedAnchor(): { ms: number; cpuMs: number } {
  globalThis.gc?.();
  const c = cpuMs();
  const t = performance.now();
  const shared = new SharedPlanning(view);
  let plans = 0;
  for (const h of hostNames) if (computeHostPlan(view, h, shared).objects.size > 0) plans++;
  const ms = performance.now() - t;
  const cpu = cpuMs() - c;
  if (plans !== HOSTS) throw new Error(`shared anchor: ${plans} of ${HOSTS} hosts have a plan`);
  return { ms, cpuMs: cpu };
}

/**
 * One verification run, stdout piped here: the summary line, then every host's header in order.
 * Scans bytes for "\nhost " (no split into lines: the plan is gigabytes, the scan must not be what
 * slows the child down).
 */
async function verify(): Promise<{ bytes: number }> {
  const child = spawn(process.execPath, [cli, 'plan', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const marker = Buffer.from('\nhost ');
  let bytes = 0;
  let next = 0;
  let head = '';
  let tail = Buffer.alloc(0);
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
    if (bytes < 256) head += chunk.subarray(0, 256).toString();
    bytes += chunk.length;
    // Keep the last bytes of the previous chunk so that a header split across chunks is found.
    const buf = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk;
    let at = buf.indexOf(marker);
    let done = 0;
    while (at >= 0) {
      const nl = buf.indexOf(0x20, at + marker.length);
      if (nl < 0) break; // header incomplete: finish it with the next chunk
      const name = buf.toString('latin1', at + marker.length, nl);
      if (name !== hostNames[next]) throw new Error(`verify: host ${name} where ${hostNames[next]} was due`);
      next++;
      done = nl;
      at = buf.indexOf(marker, nl);
    }
    tail = Buffer.from(buf.subarray(Math.max(done, buf.length - 128)));
  }
  const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  if (code !== 0) throw new Error(`verify: segmesh plan exited ${code}: ${stderr}`);
  if (!head.startsWith(`fabric scale-${HOSTS}x${WORKLOADS}: ${HOSTS} hosts,`))
    throw new Error(`verify: output starts ${JSON.stringify(head.slice(0, 80))}`);
  if (next !== HOSTS) throw new Error(`verify: ${next} host plans printed, ${HOSTS} expected`);
  return { bytes };
}

/**
 * One timed run of the real CLI to /dev/null: wall ms (spawn to exit), CPU ms (user + system, from
 * `/usr/bin/time`) and peak RSS (MB).
 */
function cliRun(): { ms: number; cpuMs: number; rssMb: number } {
  const timeFile = join(dir, 'time.txt');
  const devNull = openSync('/dev/null', 'w');
  const t = performance.now();
  const r = spawnSync(TIME, ['-f', '%U %S %M', '-o', timeFile, process.execPath, cli, 'plan', file], {
    stdio: ['ignore', devNull, 'pipe'],
    encoding: 'utf8',
  });
  const ms = performance.now() - t;
  if (r.status !== 0 || r.stderr !== '') throw new Error(`segmesh plan exited ${r.status}: ${r.stderr}`);
  const [user, sys, kb] = (readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '')
    .split(' ')
    .map(Number);
  if (!Number.isFinite(kb) || kb! <= 0) throw new Error(`no peak RSS from ${TIME}`);
  if (!Number.isFinite(user) || !Number.isFinite(sys)) throw new Error(`no CPU time from ${TIME}`);
  return { ms, cpuMs: (user! + sys!) * 1000, rssMb: kb! / 1024 };
}

try {
  const { bytes } = await verify();
  process.stdout.write(`verified: ${HOSTS} host plans in order, ${round(bytes / 2 ** 20, 1)} MiB of text\n`);
  const compute: number[] = [];
  const wall: number[] = [];
  const rss: number[] = [];
  const computeCpu: number[] = [];
  const wallCpu: number[] = [];
  const shared: number[] = [];
  const sharedCpu: number[] = [];
  let objects = 0;
  for (let i = 0; i < REPS; i++) {
    const a = anchor();
    objects = a.objects;
    compute.push(a.ms);
    computeCpu.push(a.cpuMs);
    const sa = sharedAnchor();
    shared.push(sa.ms);
    sharedCpu.push(sa.cpuMs);
    const c = cliRun();
    wall.push(c.ms);
    wallCpu.push(c.cpuMs);
    rss.push(c.rssMb);
    process.stdout.write(
      `rep ${i + 1}: compute ${round(a.ms, 0)} ms (CPU ${round(a.cpuMs, 0)}), shared compute ${round(sa.ms, 0)} ms ` +
        `(CPU ${round(sa.cpuMs, 0)}), segmesh plan ${round(c.ms, 0)} ms ` +
        `(CPU ${round(c.cpuMs, 0)}), peak RSS ${round(c.rssMb, 1)} MB\n`,
    );
  }
  const result = {
    bench: 'plan',
    hosts: HOSTS,
    workloads: WORKLOADS,
    wall_ms: round(median(wall), 0),
    compute_ms: round(median(compute), 0),
    ratio: round(median(wall) / median(compute), 2),
    peak_rss_mb: round(Math.max(...rss), 1),
  };
  process.stdout.write(
    `objects planned: ${objects} (all hosts)\n` +
      `wall     median ${result.wall_ms} ms (${wall.map((x) => round(x, 0)).join(', ')})\n` +
      `compute  median ${result.compute_ms} ms (${compute.map((x) => round(x, 0)).join(', ')})\n` +
      `ratio    ${result.ratio} (goal <= 1.5)\n` +
      // CPU time is what a shared machine distorts least: neither side is charged for waiting.
      `CPU      segmesh plan median ${round(median(wallCpu), 0)} ms, compute median ${round(median(computeCpu), 0)} ms, ` +
      `ratio ${round(median(wallCpu) / median(computeCpu), 2)}\n` +
      `shared   the same plans computed as the CLI does (SharedPlanning), median ${round(median(shared), 0)} ms ` +
      `(CPU ${round(median(sharedCpu), 0)}): segmesh plan / shared compute ${round(median(wall) / median(shared), 2)} wall, ` +
      `${round(median(wallCpu) / median(sharedCpu), 2)} CPU (what formatting and writing cost)\n` +
      `peak RSS ${result.peak_rss_mb} MB (goal < 512)\n`,
  );
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
