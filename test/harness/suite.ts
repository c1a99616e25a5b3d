/**
 * System suites: they need root and real tools. Locally a suite whose requirements are missing is
 * skipped with the reason; with CI=true it fails instead, so CI never passes by skipping.
 */
import { describe, it } from 'vitest';
import { findTool } from './exec.ts';

export interface SystemRequirements {
  /** Executables that must be present (searched on PATH, /usr/sbin, /usr/lib/frr). */
  readonly tools?: readonly string[];
  /** Needs root (network namespaces, netlink writes). Default true. */
  readonly root?: boolean;
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
