import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ClockSkewError,
  compareTimestamps,
  compareVersions,
  HybridLogicalClock,
} from '../../../src/gossip/hlc.ts';

const op = fc.oneof(
  fc.record({ kind: fc.constant('now' as const), physical: fc.integer({ min: 0, max: 10_000 }) }),
  fc.record({
    kind: fc.constant('recv' as const),
    physical: fc.integer({ min: 0, max: 10_000 }),
    wall: fc.integer({ min: 0, max: 10_500 }),
    counter: fc.integer({ min: 0, max: 5 }),
  }),
);

describe('HybridLogicalClock', () => {
  it('is strictly monotonic and ahead of every received timestamp', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const clock = new HybridLogicalClock(1_000);
        let prev = clock.last;
        for (const o of ops) {
          let t: typeof prev;
          if (o.kind === 'now') t = clock.now(o.physical);
          else {
            const remote = { wall: o.wall, counter: o.counter };
            if (o.wall - o.physical > 1_000) {
              expect(() => clock.receive(remote, o.physical)).toThrow(ClockSkewError);
              continue;
            }
            t = clock.receive(remote, o.physical);
            expect(compareTimestamps(t, remote)).toBeGreaterThan(0);
          }
          expect(compareTimestamps(t, prev)).toBeGreaterThan(0);
          expect(t.wall).toBeGreaterThanOrEqual(o.physical);
          prev = t;
        }
      }),
    );
  });

  it('stays close to physical time: wall is the max of what it has seen', () => {
    const clock = new HybridLogicalClock();
    expect(clock.now(100)).toEqual({ wall: 100, counter: 0 });
    expect(clock.now(100)).toEqual({ wall: 100, counter: 1 });
    expect(clock.now(50)).toEqual({ wall: 100, counter: 2 }); // the host clock went back
    expect(clock.receive({ wall: 120, counter: 7 }, 110)).toEqual({ wall: 120, counter: 8 });
    expect(clock.now(130)).toEqual({ wall: 130, counter: 0 });
  });

  it('rejects a remote clock too far ahead, naming the remedy', () => {
    const clock = new HybridLogicalClock(500);
    expect(() => clock.receive({ wall: 2_000, counter: 0 }, 1_000)).toThrow(/NTP/);
    expect(clock.last).toEqual({ wall: 0, counter: 0 });
  });

  it('orders versions by timestamp, then writer id', () => {
    expect(compareVersions({ wall: 1, counter: 0, origin: 'b' }, { wall: 1, counter: 0, origin: 'a' })).toBe(
      1,
    );
    expect(compareVersions({ wall: 1, counter: 1, origin: 'a' }, { wall: 1, counter: 0, origin: 'b' })).toBe(
      1,
    );
    expect(compareVersions({ wall: 1, counter: 0, origin: 'a' }, { wall: 1, counter: 0, origin: 'a' })).toBe(
      0,
    );
  });
});
