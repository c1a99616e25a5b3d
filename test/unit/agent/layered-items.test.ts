import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LayeredItems } from '../../../src/agent/layered-items.ts';
import { applyDelta, diffIntents, type IntentItem } from '../../../src/dataplane/intent.ts';

const item = (key: string, mtu: number): IntentItem => ({
  kind: 'attachment',
  key,
  link: key,
  mtu,
  tenant: 't',
});

describe('LayeredItems', () => {
  it('is the map applyDelta makes, after any sequence of deltas, and leaves every earlier layer as it was', () => {
    const keys = Array.from({ length: 40 }, (_, i) => `a|k${i}`);
    const state = fc.dictionary(fc.constantFrom(...keys), fc.integer({ min: 1280, max: 1283 }), {
      maxKeys: 40,
    });
    fc.assert(
      fc.property(state, fc.array(state, { minLength: 1, maxLength: 40 }), (first, steps) => {
        const toMap = (d: Record<string, number>) =>
          new Map(Object.entries(d).map(([k, m]) => [k, item(k, m)]));
        let plain: ReadonlyMap<string, IntentItem> = toMap(first);
        let layered: ReadonlyMap<string, IntentItem> = plain;
        const history: Array<[ReadonlyMap<string, IntentItem>, Map<string, IntentItem>]> = [];
        for (const s of steps) {
          const delta = diffIntents(plain, toMap(s));
          plain = applyDelta(plain, delta);
          layered = LayeredItems.apply(layered, delta);
          history.push([layered, new Map(plain)]);
          expect(layered.size).toBe(plain.size);
          expect(new Map(layered)).toEqual(plain);
          for (const k of keys) {
            expect(layered.has(k)).toBe(plain.has(k));
            expect(layered.get(k)).toEqual(plain.get(k));
          }
        }
        for (const [l, p] of history) expect(new Map(l)).toEqual(p);
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it('folds its changes into a plain map once they outgrow the base (and stays equal)', () => {
    let plain: ReadonlyMap<string, IntentItem> = new Map([['a|base', item('a|base', 1280)]]);
    let layered: ReadonlyMap<string, IntentItem> = plain;
    let folded = 0;
    for (let i = 0; i < 1000; i++) {
      const delta = { added: [item(`a|n${i}`, 1280)], changed: [], replaced: [], removed: [] };
      plain = applyDelta(plain, delta);
      layered = LayeredItems.apply(layered, delta);
      if (!(layered instanceof LayeredItems)) folded++;
    }
    expect(folded).toBeGreaterThan(0);
    expect(new Map(layered)).toEqual(plain);
  });
});
