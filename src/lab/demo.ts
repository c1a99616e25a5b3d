/**
 * `segmesh lab demo FILE`: the project's main job. Brings a topology up with agents on every host,
 * publishes the fabric policy, attaches the workloads through CNI, shows the fabric (hosts, locators,
 * workloads, a few segment lists), proves reachability and isolation with a matrix of pings (expected
 * against seen), stays up until Ctrl-C (`--once`: not at all) and tears everything down. Exit code 1
 * when any cell of the matrix differs from what is expected.
 */
import { readFile } from 'node:fs/promises';
import { parseConfig } from '../config/load.ts';
import { newClusterKey, newOperatorKey } from '../gossip/index.ts';
import { configureDockerEnv, ensureEngine, ensureImages, type Progress } from './engine.ts';
import { type PlacedWorkload, startFabric } from './fabric.ts';
import { checkLabKernel, labDown, labUp, planFromFile, type RunningLab } from './lab.ts';
import { type Cell, type Endpoint, matrixJson, mismatches, renderMatrix } from './matrix.ts';
import { AGENT_SOCKET, type PlanOptions } from './plan.ts';
import { labEndpoints, probeMatrix } from './probe.ts';

export interface DemoOptions {
  readonly name?: string;
  /** Tear down right after the matrix (for scripts). */
  readonly once?: boolean;
  /** A FabricPolicy file to publish instead of the topology's tenants. */
  readonly policy?: string;
  /** Leave the lab up when the demo ends (remove it later with `segmesh lab down`). */
  readonly keep?: boolean;
  readonly json?: boolean;
  /** Plan options for tests: labels, relocation. */
  readonly plan?: Pick<PlanOptions, 'labels' | 'relocate'>;
}

export interface DemoIo {
  readonly out: (text: string) => void;
  readonly progress: Progress;
  /** Resolves when the user asks to stop (Ctrl-C); the CLI waits on SIGINT/SIGTERM. */
  readonly untilInterrupted: () => Promise<void>;
  /** Ctrl-C while the lab comes up: stop after the current step, and tear down. */
  readonly signal?: AbortSignal;
  /** Called once the matrix is probed, with the lab still up (tests inspect it further). */
  readonly onMatrix?: (r: { lab: RunningLab; workloads: PlacedWorkload[]; cells: Cell[] }) => Promise<void>;
}

/** Reads and validates a FabricPolicy file (errors name the file, line and key). */
export async function readPolicy(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read policy ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  parseConfig(text, file, ['FabricPolicy']);
  return text;
}

/** The few segment lists worth showing: one per tenant across hosts, and the edge's way in. */
function showcasePaths(workloads: readonly PlacedWorkload[], endpoints: readonly Endpoint[]) {
  const out: { from: PlacedWorkload; to: Endpoint }[] = [];
  const tenants = [...new Set(workloads.map((w) => w.tenant))];
  for (const t of tenants) {
    const mine = workloads.filter((w) => w.tenant === t);
    const from = mine[0];
    const to = endpoints.find((e) => e.tenant === t && e.name !== from?.name && e.node !== from?.host);
    if (from && to) out.push({ from, to });
    const ext = endpoints.find((e) => e.kind === 'external' && e.tenant === t);
    if (from && ext) out.push({ from, to: ext });
  }
  return out;
}

async function showFabric(
  lab: RunningLab,
  workloads: readonly PlacedWorkload[],
  endpoints: readonly Endpoint[],
  io: DemoIo,
) {
  const first = workloads[0]?.host ?? lab.plan.hosts.keys().next().value;
  if (!first) return;
  const section = (title: string, text: string) => io.out(`\n== ${title}\n${text.trimEnd()}\n`);
  section(
    `hosts (as ${first}'s agent sees them)`,
    await lab.run(first, ['segmesh', 'hosts', '--socket', AGENT_SOCKET]),
  );
  section('workloads', await lab.run(first, ['segmesh', 'workloads', '--socket', AGENT_SOCKET]));
  for (const { from, to } of showcasePaths(workloads, endpoints)) {
    const r = await lab.exec(from.host, ['segmesh', 'path', from.name, to.address, '--socket', AGENT_SOCKET]);
    section(`path ${from.name} -> ${to.name} (${to.address})`, r.output);
  }
  for (const [edge] of lab.plan.edges) {
    const r = await lab.exec(edge, ['vtysh', '-c', 'show bgp ipv6 vpn']);
    section(`${edge} (FRR): VPNv6 routes`, r.output);
  }
}

/** Runs the demo; resolves with the exit code (0: the matrix is all as expected). */
export async function runDemo(file: string, opts: DemoOptions, io: DemoIo): Promise<number> {
  const policy = opts.policy ? await readPolicy(opts.policy) : undefined;
  // A fresh operator key per lab: its agents trust it, its first host signs the policy with it.
  const operator = await newOperatorKey();
  const plan = await planFromFile(file, {
    ...(opts.plan ?? {}),
    ...(opts.name ? { prefix: opts.name } : {}),
    hostRuntime: 'agent',
    operator,
    // And a fresh cluster key: only the lab's hosts join its gossip (membership is closed).
    clusterKey: await newClusterKey(),
    ...(policy ? { policy } : {}),
  });
  configureDockerEnv();
  await ensureEngine(io.progress);
  // Before the images (minutes on a fresh machine): the kernel decides first.
  await checkLabKernel(plan);
  const image = await ensureImages(io.progress);
  const interrupted = () => {
    if (io.signal?.aborted) throw new Error('interrupted: tearing the lab down');
  };
  interrupted();
  const lab = await labUp(plan, { image, progress: io.progress });
  let code = 1;
  try {
    interrupted();
    const workloads = await startFabric(lab, io.progress);
    interrupted();
    const endpoints = labEndpoints(lab, workloads);
    if (!opts.json) await showFabric(lab, workloads, endpoints, io);
    interrupted();
    io.progress(`probing ${endpoints.length} endpoints pairwise`);
    const cells = await probeMatrix(lab, endpoints);
    const bad = mismatches(cells);
    code = bad.length === 0 ? 0 : 1;
    if (opts.json)
      io.out(`${JSON.stringify({ lab: plan.prefix, ok: code === 0, matrix: matrixJson(cells) })}\n`);
    else io.out(`\n== reachability (rows: from, columns: to)\n${renderMatrix(endpoints, cells)}`);
    await io.onMatrix?.({ lab, workloads, cells });
    if (!opts.once && !io.signal?.aborted) {
      const up = `lab ${plan.prefix} is up: segmesh lab exec host1 -- segmesh status; segmesh lab status ${file}`;
      // With --json, stdout carries the matrix alone.
      if (opts.json) io.progress(`${up}; Ctrl-C tears it down`);
      else io.out(`\n${up}\nCtrl-C tears it down.\n`);
      await io.untilInterrupted();
    }
    return code;
  } finally {
    if (opts.keep) io.progress(`lab ${plan.prefix} left up: segmesh lab down ${file}`);
    else await labDown(plan.prefix, io.progress);
  }
}
