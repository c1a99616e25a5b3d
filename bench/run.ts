/**
 * `npm run bench -- NAME [args]`: runs bench/NAME.ts in its own process (a clean heap per benchmark).
 * Each benchmark prints a readable table and, as its last line, one JSON object `{"bench":"NAME",...}`.
 *
 * A benchmark that needs kernel features this kernel lacks (seg6 routes, for the kernel backend and
 * FRR's zebra) says so at once and exits 2, instead of retrying what the kernel refuses.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { detectKernelFeatures, KERNEL_OPTION, type KernelFeatureName } from '../src/dataplane/features.ts';

/** Kernel features each benchmark needs (the others run on any kernel). */
const KERNEL_NEEDS: Readonly<Record<string, readonly KernelFeatureName[]>> = {
  dataplane: ['seg6'],
  throughput: ['seg6', 'seg6local'],
  bgp: ['seg6'],
  mobility: ['seg6', 'seg6local'],
  ebpf: [], // the eBPF data plane: BPF with tcx (or clsact), no seg6 routes
  'ebpf-floor': [], // its pieces, one tc program each: BPF with tcx
  agent: [], // pure: the model, the intent and an in-process backend port
};

const here = new URL('.', import.meta.url).pathname;
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();
const [name, ...args] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  process.stderr.write(`usage: npm run bench -- NAME [args]\nbenchmarks: ${available.join(', ')}\n`);
  process.exit(name ? 1 : 0);
}
const needs = KERNEL_NEEDS[name] ?? [];
if (needs.length > 0) {
  const kernel = await detectKernelFeatures();
  const lacked = needs.filter((n) => !kernel[n]);
  if (lacked.length > 0) {
    process.stderr.write(
      `bench ${name}: cannot run on this kernel (${kernel.release}): it lacks ${lacked
        .map((n) => `${n} (${KERNEL_OPTION[n]}; ${kernel.how[n]})`)
        .join(
          ', ',
        )}. Run it on a kernel built with ${[...new Set(lacked.map((n) => KERNEL_OPTION[n]))].join(', ')}.\n`,
    );
    process.exit(2);
  }
}
const result = spawnSync(process.execPath, ['--expose-gc', `${here}${name}.ts`, ...args], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
