import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareVersions, type Version } from '../../../src/gossip/hlc.ts';
import { type Entry, entryHash, LwwStore } from '../../../src/gossip/store.ts';
import { entryArb } from './arbitraries.ts';

function contents(s: LwwStore<string>): string[] {
  return [...s.entries()].map((e) => e.payload).sort();
}

const NOW = 1_100;

describe('LwwStore', () => {
  it('converges to the newest version per key whatever the order and duplication', () => {
    fc.assert(
      fc.property(
        fc
          .array(entryArb, { maxLength: 60 })
          .chain((es) => fc.tuple(fc.constant(es), fc.shuffledSubarray(es, { minLength: es.length }))),
        ([order1, order2]) => {
          const a = new LwwStore<string>(60_000, 8);
          const b = new LwwStore<string>(60_000, 8);
          for (const e of order1) a.apply(e, NOW);
          for (const e of [...order2, ...order2]) b.apply(e, NOW);
          // The expected state, computed independently.
          const newest = new Map<string, Entry<string>>();
          for (const e of order1) {
            const cur = newest.get(e.key);
            if (cur === undefined || compareVersions(e.version, cur.version) > 0) newest.set(e.key, e);
          }
          const expected = [...newest.values()].map((e) => e.payload).sort();
          expect(contents(a)).toEqual(expected);
          expect(contents(b)).toEqual(expected);
          expect(a.bucketDigests()).toEqual(b.bucketDigests());
          for (const origin of ['h1', 'h2', 'h3']) {
            let digest = 0n;
            let count = 0;
            for (const e of newest.values()) {
              if (e.version.origin !== origin) continue;
              digest ^= entryHash(e.key, e.version, e.deleted);
              count++;
            }
            expect(a.originDigest(origin)).toEqual({ digest, count });
          }
        },
      ),
    );
  });

  it('reports stale and duplicate writes', () => {
    const s = new LwwStore<string>(1_000);
    const v = (wall: number, origin = 'h1'): Version => ({ wall, counter: 0, origin });
    expect(s.apply({ key: 'k', version: v(10), deleted: false, payload: 'x' }, 20)).toBe('applied');
    expect(s.apply({ key: 'k', version: v(10), deleted: false, payload: 'x' }, 20)).toBe('duplicate');
    expect(s.apply({ key: 'k', version: v(9), deleted: false, payload: 'y' }, 20)).toBe('stale');
    expect(s.apply({ key: 'k', version: v(10, 'h2'), deleted: true, payload: 'z' }, 20)).toBe('applied');
    expect(s.get('k')?.payload).toBe('z');
  });

  it('expires tombstones after the TTL and refuses tombstones already expired', () => {
    const s = new LwwStore<string>(1_000, 4);
    s.apply({ key: 'k', version: { wall: 100, counter: 0, origin: 'h' }, deleted: true, payload: 't' }, 100);
    s.apply({ key: 'l', version: { wall: 100, counter: 0, origin: 'h' }, deleted: false, payload: 'r' }, 100);
    expect(s.expire(1_099)).toEqual([]);
    expect(s.expire(1_100)).toEqual(['k']);
    expect(s.size).toBe(1);
    expect(s.bucketDigests().reduce((x, y) => x ^ y)).toBe(
      entryHash('l', { wall: 100, counter: 0, origin: 'h' }, false),
    );
    expect(
      s.apply(
        { key: 'k', version: { wall: 100, counter: 0, origin: 'h' }, deleted: true, payload: 't' },
        1_200,
      ),
    ).toBe('expired');
  });
});
