import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { differingBuckets, needsSnapshot, planExchange, summarize } from '../../../src/gossip/antientropy.ts';
import { LwwStore } from '../../../src/gossip/store.ts';
import { entryArb } from './arbitraries.ts';

const NOW = 1_100;

/** One full anti-entropy exchange between two stores, as the adapter runs it, minus the network. */
function exchange(
  initiator: LwwStore<string>,
  responder: LwwStore<string>,
): { pushed: number; fetched: number } {
  const buckets = differingBuckets(responder.bucketDigests(), initiator.bucketDigests());
  const summaries = summarize(responder, buckets);
  const plan = planExchange(initiator, buckets, summaries, NOW);
  for (const key of plan.push) responder.apply(initiator.get(key)!, NOW);
  for (const key of plan.fetch) initiator.apply(responder.get(key)!, NOW);
  return { pushed: plan.push.length, fetched: plan.fetch.length };
}

describe('anti-entropy planning', () => {
  it('one exchange makes two stores identical, and a second one moves nothing', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 40 }), fc.array(entryArb, { maxLength: 40 }), (xs, ys) => {
        const a = new LwwStore<string>(60_000, 4);
        const b = new LwwStore<string>(60_000, 4);
        for (const e of xs) a.apply(e, NOW);
        for (const e of ys) b.apply(e, NOW);
        exchange(a, b);
        expect([...a.entries()].map((e) => e.payload).sort()).toEqual(
          [...b.entries()].map((e) => e.payload).sort(),
        );
        expect(a.bucketDigests()).toEqual(b.bucketDigests());
        expect(exchange(a, b)).toEqual({ pushed: 0, fetched: 0 });
        expect(differingBuckets(a.bucketDigests(), b.bucketDigests())).toEqual([]);
      }),
    );
  });

  it('only touches differing buckets', () => {
    const a = new LwwStore<string>(60_000, 64);
    const b = new LwwStore<string>(60_000, 64);
    for (let i = 0; i < 200; i++) {
      const e = {
        key: `k${i}`,
        version: { wall: 1_000, counter: 0, origin: 'h' },
        deleted: false,
        payload: `${i}`,
      };
      a.apply(e, NOW);
      b.apply(e, NOW);
    }
    a.apply(
      { key: 'k7', version: { wall: 1_001, counter: 0, origin: 'h' }, deleted: true, payload: 'del' },
      NOW,
    );
    const buckets = differingBuckets(b.bucketDigests(), a.bucketDigests());
    expect(buckets).toHaveLength(1);
    const plan = planExchange(a, buckets, summarize(b, buckets), NOW);
    expect(plan).toEqual({ push: ['k7'], fetch: [] });
    expect(summarize(b, buckets).length).toBeLessThan(20);
  });

  it('a stale node neither pushes nor resurrects, and asks for a snapshot', () => {
    expect(needsSnapshot(undefined, 10_000, 1_000)).toBe(false);
    expect(needsSnapshot(9_500, 10_000, 1_000)).toBe(false);
    expect(needsSnapshot(8_000, 10_000, 1_000)).toBe(true);
    const a = new LwwStore<string>(60_000, 4);
    a.apply({ key: 'old', version: { wall: 1, counter: 0, origin: 'h' }, deleted: false, payload: 'x' }, NOW);
    const b = new LwwStore<string>(60_000, 4);
    const buckets = differingBuckets(b.bucketDigests(), a.bucketDigests());
    expect(planExchange(a, buckets, summarize(b, buckets), NOW, { pushAllowed: false }).push).toEqual([]);
  });
});
