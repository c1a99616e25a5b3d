/**
 * When the agent may act on its view, and when it says it is ready. A restarted agent must not
 * reconcile against an empty view: that would delete the routes to every other host until gossip
 * refilled it. It waits for the first anti-entropy exchange to settle.
 */
import type { Logger } from 'pino';
import type { Gossip } from '../gossip/index.ts';
import type { ReconcileReport } from './reconciler.ts';

/** Waits until records from others arrived and anti-entropy ran and went quiet, or `timeoutMs`. */
export async function awaitGossipSync(
  g: Pick<Gossip, 'addEventListener' | 'removeEventListener' | 'stats'>,
  opts: { readonly bootstrap: number; readonly timeoutMs: number; readonly log: Logger },
): Promise<void> {
  if (opts.bootstrap === 0) return;
  const started = Date.now();
  let last = started;
  let heard = false;
  const onRecord = (e: CustomEvent<{ source: string }>) => {
    last = Date.now();
    if (e.detail.source !== 'local') heard = true;
  };
  g.addEventListener('record', onRecord);
  try {
    while (Date.now() - started < opts.timeoutMs) {
      if (heard && g.stats().antiEntropy.runs > 0 && Date.now() - last > 300) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    g.removeEventListener('record', onRecord);
  }
  opts.log.info({ ms: Date.now() - started, synced: heard }, 'gossip view ready for the first reconcile');
}

/** Ready: running, not drained, and the last reconcile succeeded. */
export function isReady(s: {
  readonly running: boolean;
  readonly drained: boolean;
  readonly last: ReconcileReport | undefined;
}): boolean {
  return s.running && !s.drained && s.last !== undefined && s.last.error === undefined;
}
