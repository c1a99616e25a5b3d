import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyDelta,
  diffIntents,
  entryKey,
  type IntentItem,
  type PrefixEntry,
} from '../../../src/dataplane/intent.ts';
import { FLATTEN_AFTER, IntentHistory } from '../../../src/dataplane/intent-history.ts';
import { HostIntentComputer } from '../../../src/dataplane/intent-lower.ts';
import { buildFabricView } from '../../../src/srv6/fabric.ts';
import { fabricFromShape } from '../srv6/fabric-arbitrary.ts';

const scope = { kind: 'egress', tenant: 't0', tenantId: 100 } as const;

function entry(n: number, version: number): PrefixEntry {
  const prefix = { address: 0x20010db8000000000000000000000000n + BigInt(n), length: 128 };
  return {
    kind: 'entry',
    key: entryKey(scope, prefix),
    scope,
    prefix,
    action: { kind: 'deliver', link: `l${version}` },
    reason: `v${version}`,
  };
}

/** Everything a reader can observe of a map, in a form toStrictEqual compares. */
function observe(m: ReadonlyMap<string, IntentItem>, universe: readonly string[]) {
  const forEach: Array<[string, IntentItem]> = [];
  m.forEach((i, k) => {
    forEach.push([k, i]);
  });
  const sorted = (l: Array<[string, IntentItem]>) => l.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return {
    size: m.size,
    get: universe.map((k) => m.get(k)),
    has: universe.map((k) => m.has(k)),
    entries: sorted([...m]),
    keys: [...m.keys()].sort(),
    values: sorted([...m.values()].map((i) => [i.key, i])),
    forEach: sorted(forEach),
  };
}

const KEYS = 12;
/** One step: per key, leave it, set it (add or change) or remove it. */
const step = fc.array(fc.constantFrom('keep', 'keep', 'set', 'remove'), { minLength: KEYS, maxLength: KEYS });

describe('intent history (versioned snapshots)', () => {
  it('every version handed out keeps what it held, whatever steps follow (past the flattening point too); the newest iterates like applyDelta', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(step, fc.boolean()), { minLength: 1, maxLength: FLATTEN_AFTER * 2 + 10 }),
        (steps) => {
          const universe = Array.from({ length: KEYS }, (_, n) => entry(n, 0).key);
          let plain = new Map<string, IntentItem>([[universe[0]!, entry(0, 0)]]);
          const history = new IntentHistory(new Map(plain));
          const kept: Array<{ version: ReadonlyMap<string, IntentItem>; copy: Map<string, IntentItem> }> = [];
          steps.forEach(([actions, take], v) => {
            if (take) kept.push({ version: history.current(), copy: new Map(plain) });
            const next = new Map(plain);
            actions.forEach((a, n) => {
              if (a === 'set') next.set(universe[n]!, entry(n, v + 1));
              if (a === 'remove') next.delete(universe[n]!);
            });
            const delta = diffIntents(plain, next);
            history.apply(delta);
            plain = applyDelta(plain, delta);
            // Read the old versions now and then (reads past the flattening point copy them).
            if (v % 7 === 0) for (const k of kept) k.version.get(universe[v % KEYS]!);
          });
          for (const { version, copy } of kept)
            expect(observe(version, universe)).toStrictEqual(observe(copy, universe));
          const newest = history.current();
          expect(observe(newest, universe)).toStrictEqual(observe(plain, universe));
          expect([...newest.keys()]).toStrictEqual([...plain.keys()]);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('a snapshot many versions old reads right, before and after it copies itself', () => {
    const universe = Array.from({ length: KEYS }, (_, n) => entry(n, 0).key);
    const history = new IntentHistory(new Map(universe.map((k, n) => [k, entry(n, 0)])));
    const oldest = history.current();
    const copy = new Map(oldest);
    for (let v = 1; v <= FLATTEN_AFTER * 3; v++) {
      history.current();
      const n = v % KEYS;
      const was = entry(n, v - 1);
      history.apply(
        v % 5 === 0
          ? { added: [], changed: [], replaced: [], removed: [was] }
          : { added: [], changed: [entry(n, v)], replaced: [was], removed: [] },
      );
      if (v % 5 === 0) history.apply({ added: [entry(n, v)], changed: [], replaced: [], removed: [] });
    }
    expect(history.current().get(universe[1]!)).not.toBe(copy.get(universe[1]!));
    expect(observe(oldest, universe)).toStrictEqual(observe(copy, universe)); // walks, then copies
    expect(observe(oldest, universe)).toStrictEqual(observe(copy, universe)); // from its own copy
  });

  it('HostIntentComputer: the intent is one object between events, a new one after a change, and the old one is unchanged', () => {
    const view = buildFabricView(
      fabricFromShape({
        hosts: 3,
        tenants: 1,
        workloads: [
          { tenant: 0, host: 0, app: 0 },
          { tenant: 0, host: 1, app: 0 },
        ],
        nfs: [],
        policies: [],
        hmac: false,
      }),
    );
    const computer = new HostIntentComputer(view, 'h0');
    const before = computer.intent;
    const copy = new Map(before.items);
    expect(computer.intent).toBe(before);
    const delta = computer.moveWorkload('w1', 'h0');
    expect(delta.added.length + delta.changed.length).toBeGreaterThan(0);
    const after = computer.intent;
    expect(after).not.toBe(before);
    expect(computer.intent).toBe(after);
    expect([...before.items].sort()).toStrictEqual([...copy].sort());
    // The change is visible in the new snapshot only (a positive control for the line above).
    const changed = delta.changed[0] ?? delta.added[0]!;
    expect(after.items.get(changed.key)).toBe(changed);
    expect(before.items.get(changed.key)).not.toBe(changed);
    // An event that changes nothing keeps the snapshot.
    const none = computer.moveWorkload('w1', 'h0');
    expect(none.added.length + none.changed.length + none.removed.length).toBe(0);
    expect(computer.intent).toBe(after);
  });
});
