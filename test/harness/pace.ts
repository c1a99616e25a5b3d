/**
 * How much slower than the host this test process runs, for the waits where the cause is the CPU and
 * nothing else. On the host: 1. In the seg6 kernel VM under TCG (software emulation, docs/testing.md)
 * code runs 5-12x slower: a fresh `node` importing the BGP component took 28-33 s there against 2.2-2.8 s
 * on the host (2026-12-04, load 7). Waits for protocol timers (hold time, dead interval, FRR's
 * advertisement interval) are not CPU-bound and are not scaled.
 *
 * The VM tells its guest how it runs through SEGMESH_VM_GUEST (`tcg` or `kvm`, set by src/vm/vm.ts);
 * SEGMESH_TEST_PACE=N overrides the factor (e.g. to try a suite's scaled waits on the host).
 */

/** The factor for CPU-bound waits: 1 on the host and under KVM, TCG_PACE under TCG. */
export const TCG_PACE = 4;

export function pace(): number {
  const forced = Number(process.env.SEGMESH_TEST_PACE);
  if (Number.isFinite(forced) && forced >= 1) return forced;
  return process.env.SEGMESH_VM_GUEST === 'tcg' ? TCG_PACE : 1;
}

/** `ms` scaled by `pace()`: a time limit for something that only waits on the CPU. */
export function paced(ms: number): number {
  return Math.round(ms * pace());
}
