/**
 * Anti-entropy planning (pure). The initiator sends its bucket digests; the responder answers with the
 * versions of every entry in the buckets that differ; the initiator then knows exactly which entries to
 * push (it holds a newer version or the responder lacks the key) and which to fetch.
 */
import { compareVersions, type Version } from './hlc.ts';
import type { LwwStore } from './store.ts';

export interface Summary {
  readonly key: string;
  readonly version: Version;
  readonly deleted: boolean;
}

export interface ExchangePlan {
  /** Keys whose local entry the peer lacks or holds older. */
  readonly push: string[];
  /** Keys the peer holds newer (or the local store lacks). */
  readonly fetch: string[];
}

export function differingBuckets(local: readonly bigint[], remote: readonly bigint[]): number[] {
  if (local.length !== remote.length) {
    // A peer with another bucket count: compare everything.
    return local.map((_, i) => i);
  }
  const out: number[] = [];
  for (let i = 0; i < local.length; i++) if (local[i] !== remote[i]) out.push(i);
  return out;
}

export function summarize<P>(store: LwwStore<P>, buckets: readonly number[]): Summary[] {
  return store
    .entriesInBuckets(new Set(buckets))
    .map((e) => ({ key: e.key, version: e.version, deleted: e.deleted }));
}

/**
 * Given the responder's summaries of `buckets`, decides what the initiator pushes and fetches. Expired
 * tombstones are neither pushed nor fetched (they are about to disappear on both sides).
 */
export function planExchange<P>(
  local: LwwStore<P>,
  buckets: readonly number[],
  remote: readonly Summary[],
  now: number,
  options: { pushAllowed: boolean } = { pushAllowed: true },
): ExchangePlan {
  const push: string[] = [];
  const fetch: string[] = [];
  const remoteKeys = new Map<string, Summary>();
  for (const s of remote) remoteKeys.set(s.key, s);
  for (const s of remote) {
    if (local.wouldApply(s.key, s.version, s.deleted, now)) fetch.push(s.key);
  }
  if (options.pushAllowed) {
    for (const e of local.entriesInBuckets(new Set(buckets))) {
      if (e.deleted && local.isExpiredTombstone(e.version, now)) continue;
      const r = remoteKeys.get(e.key);
      if (r === undefined || compareVersions(e.version, r.version) > 0) push.push(e.key);
    }
  }
  push.sort();
  fetch.sort();
  return { push, fetch };
}

/** True when a node last synchronised longer ago than the tombstone TTL: it must resync from a snapshot. */
export function needsSnapshot(lastSyncMs: number | undefined, now: number, tombstoneTtlMs: number): boolean {
  return lastSyncMs !== undefined && now - lastSyncMs > tombstoneTtlMs;
}
