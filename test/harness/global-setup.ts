/**
 * Vitest global setup of the system project: sweeps what killed runs left behind, claims a run prefix
 * for this run, and at the end removes everything of this run that a test failed to clean up.
 */
// Registers the sweep of dead runs' Docker containers and networks (by their run label only).
import '../system/lab/docker.ts';
import { claimRun, newRunPrefix, sweep } from './run.ts';

export default async function setup(): Promise<() => Promise<void>> {
  const before = await sweep();
  if (before.namespaces.length > 0 || before.processes.length > 0) {
    console.warn(
      `harness: swept leftovers of earlier runs ${before.runs.join(', ')}: ` +
        `${before.namespaces.length} namespaces, ${before.processes.length} processes`,
    );
  }
  // vitest.config.ts chose the prefix (and passes it to the workers); a setup run without it makes one.
  const prefix = process.env.SEGMESH_TEST_PREFIX ?? newRunPrefix();
  process.env.SEGMESH_TEST_PREFIX = prefix;
  claimRun(prefix, process.pid);
  return async () => {
    const after = await sweep(prefix);
    if (after.namespaces.length > 0 || after.processes.length > 0) {
      console.warn(
        `harness: run ${prefix} left ${after.namespaces.join(', ') || 'no namespaces'} and ` +
          `${after.processes.length} processes behind; removed them`,
      );
    }
  };
}
