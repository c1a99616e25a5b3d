import fc from 'fast-check';
import type { Entry } from '../../../src/gossip/store.ts';

/**
 * Entries over few keys, versions and writers, so that collisions and ties are frequent. One version
 * has one content (only its writer signs it, and an honest writer never issues two records with the
 * same HLC timestamp), so `deleted` and the payload are functions of (key, version).
 */
export const entryArb = fc
  .record({
    key: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'),
    wall: fc.integer({ min: 1_000, max: 1_050 }),
    counter: fc.integer({ min: 0, max: 3 }),
    origin: fc.constantFrom('h1', 'h2', 'h3'),
  })
  .map((r): Entry<string> => {
    const deleted = (r.key.charCodeAt(0) + r.wall + r.counter + r.origin.charCodeAt(1)) % 3 === 0;
    return {
      key: r.key,
      version: { wall: r.wall, counter: r.counter, origin: r.origin },
      deleted,
      payload: `${r.key}@${r.wall}.${r.counter}.${r.origin}${deleted ? '-' : '+'}`,
    };
  });
