/**
 * The replicated map: last-writer-wins per key (HLC version, writer id as tie-break), tombstones that
 * expire `tombstoneTtlMs` after their HLC time, and incrementally maintained digests for anti-entropy
 * (one XOR of entry hashes per bucket, and one per writer for heartbeat checks). Pure: no I/O, time is
 * passed in.
 */
import { createHash } from 'node:crypto';
import { compareVersions, type Version } from './hlc.ts';

export interface Entry<P> {
  readonly key: string;
  readonly version: Version;
  readonly deleted: boolean;
  /** What the store replicates for this entry (the signed record); opaque here. */
  readonly payload: P;
}

export type ApplyResult = 'applied' | 'stale' | 'duplicate' | 'expired';

export const DEFAULT_BUCKETS = 64;

/** 64-bit hash of an entry's identity and version (not of its body: one version has one body). */
export function entryHash(key: string, version: Version, deleted: boolean): bigint {
  const h = createHash('sha256')
    .update(`${key}\0${version.wall}\0${version.counter}\0${version.origin}\0${deleted ? 1 : 0}`)
    .digest();
  return h.readBigUInt64BE(0);
}

export function bucketOf(key: string, buckets: number): number {
  return createHash('sha256').update(key).digest()[0]! % buckets;
}

export class LwwStore<P> {
  readonly tombstoneTtlMs: number;
  readonly bucketCount: number;
  readonly #entries = new Map<string, Entry<P> & { hash: bigint; bucket: number }>();
  readonly #buckets: bigint[];
  readonly #byOrigin = new Map<string, { digest: bigint; count: number }>();

  constructor(tombstoneTtlMs: number, bucketCount = DEFAULT_BUCKETS) {
    this.tombstoneTtlMs = tombstoneTtlMs;
    this.bucketCount = bucketCount;
    this.#buckets = new Array<bigint>(bucketCount).fill(0n);
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): Entry<P> | undefined {
    return this.#entries.get(key);
  }

  *entries(): IterableIterator<Entry<P>> {
    yield* this.#entries.values();
  }

  /** True when `version` would replace what the store holds for `key` (or fill a gap). */
  wouldApply(key: string, version: Version, deleted: boolean, now: number): boolean {
    if (deleted && this.isExpiredTombstone(version, now)) return false;
    const cur = this.#entries.get(key);
    return cur === undefined || compareVersions(version, cur.version) > 0;
  }

  isExpiredTombstone(version: Version, now: number): boolean {
    return version.wall + this.tombstoneTtlMs <= now;
  }

  apply(entry: Entry<P>, now: number): ApplyResult {
    if (entry.deleted && this.isExpiredTombstone(entry.version, now)) return 'expired';
    const cur = this.#entries.get(entry.key);
    if (cur !== undefined) {
      const c = compareVersions(entry.version, cur.version);
      if (c === 0) return 'duplicate';
      if (c < 0) return 'stale';
      this.#unlink(cur);
    }
    const hash = entryHash(entry.key, entry.version, entry.deleted);
    const bucket = bucketOf(entry.key, this.bucketCount);
    const stored = { ...entry, hash, bucket };
    this.#entries.set(entry.key, stored);
    this.#buckets[bucket]! ^= hash;
    const o = this.#byOrigin.get(entry.version.origin) ?? { digest: 0n, count: 0 };
    o.digest ^= hash;
    o.count += 1;
    this.#byOrigin.set(entry.version.origin, o);
    return 'applied';
  }

  /** Drops tombstones older than the TTL; returns the keys dropped. */
  expire(now: number): string[] {
    const dropped: string[] = [];
    for (const e of this.#entries.values()) {
      if (e.deleted && this.isExpiredTombstone(e.version, now)) dropped.push(e.key);
    }
    for (const key of dropped) this.delete(key);
    return dropped;
  }

  /** Removes an entry outright (expiry, snapshot replacement); not a replicated delete. */
  delete(key: string): boolean {
    const cur = this.#entries.get(key);
    if (cur === undefined) return false;
    this.#unlink(cur);
    this.#entries.delete(key);
    return true;
  }

  bucketDigests(): readonly bigint[] {
    return this.#buckets.slice();
  }

  /** XOR digest and count of the entries written by `origin` (what its heartbeat announces). */
  originDigest(origin: string): { digest: bigint; count: number } {
    const o = this.#byOrigin.get(origin);
    return o === undefined ? { digest: 0n, count: 0 } : { ...o };
  }

  entriesInBuckets(buckets: ReadonlySet<number>): Entry<P>[] {
    const out: Entry<P>[] = [];
    for (const e of this.#entries.values()) if (buckets.has(e.bucket)) out.push(e);
    return out;
  }

  #unlink(cur: { hash: bigint; bucket: number; version: Version }): void {
    this.#buckets[cur.bucket]! ^= cur.hash;
    const o = this.#byOrigin.get(cur.version.origin);
    if (o !== undefined) {
      o.digest ^= cur.hash;
      o.count -= 1;
      if (o.count === 0) this.#byOrigin.delete(cur.version.origin);
    }
  }
}
