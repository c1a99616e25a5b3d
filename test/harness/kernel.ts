/**
 * The kernel features a system suite needs, and whether the kernel it runs on has them.
 *
 * Detected once per process by trying the real thing in a throwaway network namespace (the same probes
 * as `segmesh version`, src/dataplane/features.ts): a kernel can answer the SEG6 generic netlink family
 * and still refuse every seg6 route. A suite that needs a feature this kernel lacks does not run here; the
 * test runner (scripts/test.sh) runs it where the feature exists (the VM with Debian's kernel) or names
 * it as a suite that could run nowhere.
 */
import { execFileSync } from 'node:child_process';
import { release } from 'node:os';
import {
  HMAC_PROBE,
  KERNEL_OPTION,
  type ProbeResult,
  parseSeg6Probe,
  parseVrfProbe,
  SEG6_PROBE,
  SEG6LOCAL_PROBE,
} from '../../src/dataplane/features.ts';

/** Kernel features a suite can declare. */
export type KernelNeed = 'seg6' | 'seg6local' | 'hmac' | 'vrf';

export const KERNEL_NEEDS: readonly KernelNeed[] = ['seg6', 'seg6local', 'hmac', 'vrf'];

const PROBES: Readonly<
  Record<KernelNeed, { script: string; parse: (r: ProbeResult) => boolean | undefined }>
> = {
  seg6: { script: SEG6_PROBE, parse: parseSeg6Probe },
  seg6local: { script: SEG6LOCAL_PROBE, parse: parseSeg6Probe },
  hmac: { script: HMAC_PROBE, parse: parseSeg6Probe },
  vrf: { script: 'ip link add segmesh-vrf type vrf table 1', parse: parseVrfProbe },
};

function probe(script: string): ProbeResult {
  try {
    const stdout = execFileSync('unshare', ['-n', 'sh', '-c', script], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 5_000,
    });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const err = e as { status?: number | null; stdout?: string; stderr?: string; message: string };
    return { code: err.status ?? 127, stdout: err.stdout ?? '', stderr: err.stderr ?? err.message };
  }
}

let detected: ReadonlyMap<KernelNeed, boolean> | undefined;

/** Which of the features this kernel has (probed once per process; a probe that cannot tell is a no). */
export function kernelHas(): ReadonlyMap<KernelNeed, boolean> {
  if (!detected) {
    const forced = process.env.SEGMESH_TEST_KERNEL_LACKS; // e.g. "seg6,vrf": to test the runner itself
    const lacks = new Set(forced ? forced.split(',') : []);
    detected = new Map(
      KERNEL_NEEDS.map((need) => [
        need,
        !lacks.has(need) && PROBES[need].parse(probe(PROBES[need].script)) === true,
      ]),
    );
  }
  return detected;
}

/** The features of `needs` this kernel lacks. */
export function lackedKernelFeatures(needs: readonly KernelNeed[]): KernelNeed[] {
  const has = kernelHas();
  return needs.filter((n) => !has.get(n));
}

/** `seg6 (CONFIG_IPV6_SEG6_LWTUNNEL)`: a feature with the kernel option that provides it. */
export function kernelOption(need: KernelNeed): string {
  return `${need} (${KERNEL_OPTION[need]})`;
}

/** `6.18.44 (seg6 no, seg6local no, hmac no, vrf no)`: for the runner's summary. */
export function describeKernel(): string {
  const has = kernelHas();
  return `${release()} (${KERNEL_NEEDS.map((n) => `${n} ${has.get(n) ? 'yes' : 'no'}`).join(', ')})`;
}

/**
 * The marker in a suite's name that tells the runner it did not run here for want of kernel features:
 * `[needs kernel: seg6, seg6local]`. scripts/test-summary.ts reads it from vitest's JSON report.
 */
export function kernelMarker(missing: readonly KernelNeed[]): string {
  return `[needs kernel: ${missing.join(', ')}]`;
}
