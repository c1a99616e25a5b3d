/**
 * System suites: they need root, real tools and sometimes kernel features. Locally a suite whose tools or
 * privileges are missing is skipped with the reason; with CI=true it fails instead, so CI never passes by
 * skipping.
 *
 * Kernel features are different: a kernel either has them or not, and no install step changes that. A
 * suite that needs a feature this kernel lacks is not run here; its name carries a marker
 * (`[needs kernel: seg6]`) by which the test runner (scripts/test.sh, scripts/test-summary.ts) runs it
 * on a kernel that has the feature (the VM with Debian's kernel) or names it as a suite that could run
 * nowhere. Such tests are never counted as passed.
 */
import { describe, it } from 'vitest';
import { findTool } from './exec.ts';
import { type KernelNeed, kernelMarker, lackedKernelFeatures } from './kernel.ts';

export interface SystemRequirements {
  /** Executables that must be present (searched on PATH, /usr/sbin, /usr/lib/frr). */
  readonly tools?: readonly string[];
  /** Needs root (network namespaces, netlink writes). Default true. */
  readonly root?: boolean;
  /** Kernel features the suite needs (seg6 routes, seg6local, seg6 HMAC, VRF devices). */
  readonly kernel?: readonly KernelNeed[];
}

export function missingRequirements(req: SystemRequirements): string[] {
  const missing: string[] = [];
  if ((req.root ?? true) && process.getuid?.() !== 0) missing.push('root (run as uid 0)');
  for (const tool of req.tools ?? []) {
    if (!findTool(tool)) missing.push(`${tool} (install it: bash scripts/setup.sh)`);
  }
  return missing;
}

export function isCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

/** A describe() that skips, or under CI fails, when its requirements are missing. */
export function systemSuite(name: string, req: SystemRequirements, body: () => void): void {
  const missing = missingRequirements(req);
  const lacked = lackedKernelFeatures(req.kernel ?? []);
  if (missing.length === 0 && lacked.length > 0) {
    // Not here: the runner reads the marker and runs the suite where the kernel has the features.
    describe.skip(`${name} ${kernelMarker(lacked)}`, body);
    return;
  }
  if (missing.length === 0) {
    describe(name, body);
  } else if (isCi()) {
    describe(name, () => {
      it('has its requirements', () => {
        throw new Error(
          `system suite "${name}" cannot run: missing ${missing.join(', ')}; under CI=true this fails`,
        );
      });
    });
  } else {
    describe.skip(`${name} (skipped: missing ${missing.join(', ')})`, body);
  }
}

/**
 * A test that needs kernel features its suite does not (the suite's other tests run anywhere): where the
 * kernel lacks them it is reported skipped with the marker, and the runner runs its file where they exist.
 */
export function kernelIt(
  needs: readonly KernelNeed[],
  title: string,
  fn: () => Promise<void> | void,
  timeoutMs?: number,
): void {
  const lacked = lackedKernelFeatures(needs);
  if (lacked.length > 0) it.skip(`${title} ${kernelMarker(lacked)}`, fn, timeoutMs);
  else it(title, fn, timeoutMs);
}
