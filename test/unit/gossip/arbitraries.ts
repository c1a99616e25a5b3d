import fc from 'fast-check';
import type { Entry } from '../../../src/gossip/store.ts';

/** Entries over few keys, versions and writers, so that collisions and ties are frequent. */
export const entryArb = fc
  .record({
    key: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'),
    wall: fc.integer({ min: 1_000, max: 1_050 }),
    counter: fc.integer({ min: 0, max: 3 }),
    origin: fc.constantFrom('h1', 'h2', 'h3'),
    deleted: fc.boolean(),
  })
  .map(
    (r): Entry<string> => ({
      key: r.key,
      version: { wall: r.wall, counter: r.counter, origin: r.origin },
      deleted: r.deleted,
      payload: `${r.key}@${r.wall}.${r.counter}.${r.origin}${r.deleted ? '-' : '+'}`,
    }),
  );
