/** Polling with a deadline, for lab orchestration (the test harness has its own `waitFor`). */

export class LabTimeoutError extends Error {
  override readonly name = 'LabTimeoutError';
}

/**
 * Calls `check` until it returns true (every `intervalMs`); throws LabTimeoutError naming `what` after
 * `timeoutMs`. An exception from `check` ends the wait at once (it means "will not get better").
 */
export async function waitUntil(
  check: () => Promise<boolean>,
  o: { timeoutMs: number; what: () => string; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() >= deadline)
      throw new LabTimeoutError(
        `timed out after ${(o.timeoutMs / 1000).toFixed(0)} s waiting for ${o.what()}`,
      );
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 250));
  }
}
