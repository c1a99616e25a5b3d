import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Liveness, LivenessError } from '../../../src/gossip/liveness.ts';

const opts = { suspectAfterMs: 300, deadAfterMs: 1_000 };

describe('Liveness', () => {
  it('walks alive -> suspect -> dead by silence and back to alive when heard', () => {
    const l = new Liveness(opts);
    expect(l.heard('h', 0)).toEqual({ host: 'h', from: undefined, to: 'alive', reason: 'heard' });
    expect(l.tick(299)).toEqual([]);
    expect(l.tick(300)).toEqual([{ host: 'h', from: 'alive', to: 'suspect', reason: 'silent' }]);
    expect(l.tick(999)).toEqual([]);
    expect(l.tick(1_000)).toEqual([{ host: 'h', from: 'suspect', to: 'dead', reason: 'silent' }]);
    expect(l.heard('h', 5_000)).toEqual({ host: 'h', from: 'dead', to: 'alive', reason: 'heard' });
    expect(l.state('h')).toBe('alive');
  });

  it('a working data plane keeps a silent host suspect (gossip-only partition), a failed probe kills it', () => {
    const l = new Liveness(opts);
    l.heard('h', 0);
    l.tick(300);
    expect(l.probeResult('h', true, 900)).toBeUndefined();
    expect(l.tick(1_200)).toEqual([]);
    expect(l.state('h')).toBe('suspect');
    expect(l.probeResult('h', false, 1_300)).toEqual({
      host: 'h',
      from: 'suspect',
      to: 'dead',
      reason: 'probe-failed',
    });
  });

  it('a probe vouches only for one dead interval', () => {
    const l = new Liveness(opts);
    l.heard('h', 0);
    l.tick(300);
    l.probeResult('h', true, 400);
    expect(l.tick(1_399)).toEqual([]);
    expect(l.tick(1_400)).toEqual([{ host: 'h', from: 'suspect', to: 'dead', reason: 'silent' }]);
  });

  it('never declares a host suspect while it is heard more often than the suspect interval', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 299 }), { minLength: 1, maxLength: 100 }), (gaps) => {
        const l = new Liveness(opts);
        let t = 0;
        l.heard('h', t);
        for (const g of gaps) {
          expect(l.tick(t + g - 1)).toEqual([]);
          t += g;
          l.heard('h', t);
        }
        expect(l.state('h')).toBe('alive');
      }),
    );
  });

  it('rejects inconsistent intervals', () => {
    expect(() => new Liveness({ suspectAfterMs: 2_000, deadAfterMs: 1_000 })).toThrow(LivenessError);
  });
});

describe('Liveness.learned', () => {
  it('a second-hand host starts suspect and dies after the rest of the dead interval', () => {
    const l = new Liveness(opts);
    expect(l.learned('h', 1_000)?.to).toBe('suspect');
    expect(l.learned('h', 1_001)).toBeUndefined();
    expect(l.tick(1_699)).toEqual([]);
    expect(l.tick(1_700)).toEqual([{ host: 'h', from: 'suspect', to: 'dead', reason: 'silent' }]);
    expect(l.heard('h', 1_800)?.to).toBe('alive');
  });
});
