/**
 * Docker fixtures for the lab system tests: the engine (started by scripts/dockerd.sh when none
 * answers), the images (scripts/images.sh), and a sweep hook that removes the containers and networks
 * of dead test runs, found by their `segmesh.test.run` label (never anything without it).
 *
 * Importing this module registers the hook; the harness's sweep() runs it (the global setup's sweep,
 * when it imports this module, or a test's own call).
 */
import { existsSync } from 'node:fs';
import { configureDockerEnv, ensureEngine, ensureImages, runtimeClient } from '../../../src/lab/engine.ts';
import { removeByLabel } from '../../../src/lab/lab.ts';
import { LABEL_TEST_RUN } from '../../../src/lab/plan.ts';
import { stopVmNodesByLabel, vmNodeRecords } from '../../../src/lab/vm-edge.ts';
import { addSweepHook, runPrefix } from '../../harness/index.ts';

export function progress(message: string): void {
  process.stderr.write(`lab: ${message}\n`);
}

/** The engine and the project image; builds what is missing (minutes on a fresh machine). */
export async function labImage(): Promise<string> {
  await ensureEngine(progress);
  return ensureImages(progress);
}

/** Labels every container and network of this test run carries. */
export function runLabels(): Record<string, string> {
  return { [LABEL_TEST_RUN]: runPrefix() };
}

/**
 * The subnet slot of this run (`relocate` of the plan): a test lab never collides with a lab of the
 * shipped topologies that is up meanwhile (a demo), nor, mostly, with another run's.
 */
export function runSlot(): number {
  return Number.parseInt(runPrefix().slice(2), 16);
}

/** Removes the containers and networks of every run for which `dead(prefix)` holds. */
export async function sweepDockerRuns(dead: (prefix: string) => boolean): Promise<string[]> {
  // VM nodes (src/lab/vm-edge.ts) of dead runs first, engine or not: they carry the same label.
  const vmRuns = new Set<string>();
  for (const r of vmNodeRecords()) {
    const run = r.labels[LABEL_TEST_RUN] ?? '';
    if (/^sm[0-9a-f]{4}$/.test(run) && dead(run)) vmRuns.add(run);
  }
  for (const run of vmRuns) await stopVmNodesByLabel(`${LABEL_TEST_RUN}=${run}`);
  const host = configureDockerEnv();
  if (host.startsWith('unix://') && !existsSync(host.slice('unix://'.length))) return [...vmRuns];
  let docker: Awaited<ReturnType<typeof runtimeClient>>['container']['dockerode'];
  try {
    docker = (await runtimeClient()).container.dockerode;
  } catch {
    return [...vmRuns]; // no engine: nothing of ours can be running on it
  }
  const runs = new Set<string>(vmRuns);
  for (const c of await docker.listContainers({ all: true, filters: { label: [LABEL_TEST_RUN] } }))
    runs.add(c.Labels[LABEL_TEST_RUN] ?? '');
  for (const n of await docker.listNetworks({ filters: { label: [LABEL_TEST_RUN] } }))
    runs.add(n.Labels?.[LABEL_TEST_RUN] ?? '');
  const swept: string[] = [];
  for (const run of runs) {
    if (!/^sm[0-9a-f]{4}$/.test(run) || !dead(run)) continue;
    await removeByLabel(docker, `${LABEL_TEST_RUN}=${run}`, () => {});
    swept.push(run);
  }
  return swept;
}

addSweepHook(async (dead) => {
  await sweepDockerRuns(dead);
});
