import { create } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Record as GossipRecord,
  HmacKeyRecordSchema,
  HostRecordSchema,
  PolicyRecordSchema,
  RecordSchema,
  TenantRecordSchema,
  WorkloadRecordSchema,
} from '../../../src/gen/segmesh/v1/gossip_pb.js';
import type { HostState } from '../../../src/gossip/liveness.ts';
import { LwwStore } from '../../../src/gossip/store.ts';
import {
  type FabricView,
  type GossipEvent,
  ViewIndex,
  type ViewInputEntry,
} from '../../../src/gossip/view.ts';
import { computeView, diffViews } from './view-reference.ts';

function host(id: string, wall = 1): ViewInputEntry {
  const record: GossipRecord = create(RecordSchema, {
    key: `host/${id}`,
    origin: id,
    body: { case: 'host', value: create(HostRecordSchema, { hostId: id, name: id }) },
  });
  return { key: record.key, version: { wall, counter: 0, origin: id }, deleted: false, record };
}

function workload(
  id: string,
  hostId: string,
  addr: number,
  wall: number,
  deleted = false,
  tenant = 't',
): ViewInputEntry {
  const record = create(RecordSchema, {
    key: `workload/${hostId}/${id}`,
    origin: hostId,
    deleted,
    body: deleted
      ? { case: undefined }
      : {
          case: 'workload',
          value: create(WorkloadRecordSchema, {
            workloadId: id,
            hostId,
            tenant,
            opaqueAddress: new Uint8Array([0xfd, addr]),
          }),
        },
  });
  return { key: record.key, version: { wall, counter: 0, origin: hostId }, deleted, record };
}

function fabric(
  kind: 'tenant' | 'policy' | 'hmac',
  name: string,
  wall: number,
  deleted = false,
): ViewInputEntry {
  const key = `${kind}/${name}`;
  const body = deleted
    ? { case: undefined, value: undefined }
    : kind === 'tenant'
      ? { case: 'tenant' as const, value: create(TenantRecordSchema, { name }) }
      : kind === 'policy'
        ? { case: 'policy' as const, value: create(PolicyRecordSchema, { name }) }
        : { case: 'hmacKey' as const, value: create(HmacKeyRecordSchema, { keyId: name }) };
  const record = create(RecordSchema, { key, origin: 'operator', deleted, body });
  return { key, version: { wall, counter: 0, origin: 'operator' }, deleted, record };
}

const alive = (...hs: string[]): Map<string, HostState> => new Map(hs.map((h) => [h, 'alive']));

/** An index fed `entries` (in that order) and flushed against `liveness`. */
function indexOf(entries: readonly ViewInputEntry[], liveness: ReadonlyMap<string, HostState>): ViewIndex {
  const index = new ViewIndex();
  for (const e of entries) index.set(e.key, e);
  index.flush(liveness);
  return index;
}

/**
 * The events from the view of `a` to the view of `b`: the index fed `a`, then every key of either
 * set to what `b` holds and every host of either liveness map touched.
 */
function transition(
  a: readonly ViewInputEntry[],
  aLive: ReadonlyMap<string, HostState>,
  b: readonly ViewInputEntry[],
  bLive: ReadonlyMap<string, HostState>,
): { index: ViewIndex; events: GossipEvent[] } {
  const index = indexOf(a, aLive);
  const after = new Map(b.map((e) => [e.key, e]));
  for (const e of a) if (!after.has(e.key)) index.set(e.key, undefined);
  for (const e of b) index.set(e.key, e);
  for (const h of new Set([...aLive.keys(), ...bLive.keys()])) index.touchHost(h);
  return { index, events: index.flush(bLive) };
}

/** A view as plain sorted data (maps as sorted entries), for comparison. */
function plain(v: FabricView): unknown {
  const sorted = <T>(m: ReadonlyMap<string, T>) => [...m].sort(([x], [y]) => (x < y ? -1 : 1));
  return {
    hosts: sorted(v.hosts),
    workloads: sorted(v.workloads),
    tenants: sorted(v.tenants),
    policies: sorted(v.policies),
    hmacKeys: sorted(v.hmacKeys),
    conflicts: v.conflicts,
  };
}

const CATEGORY: Record<GossipEvent['type'], number> = {
  'host-up': 0,
  'host-suspect': 0,
  'host-down': 0,
  'workload-added': 1,
  'workload-moved': 1,
  'workload-updated': 1,
  'workload-removed': 1,
  'policy-changed': 2,
  conflict: 3,
};

/** Events in their category order, and within a category in a canonical order. */
function canonical(events: readonly GossipEvent[]): string[] {
  return events
    .map((e) => `${CATEGORY[e.type]} ${JSON.stringify(e, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`)
    .sort();
}

describe('ViewIndex', () => {
  it('a moved workload shows at its newest host only, whatever order the records come in', () => {
    const entries = [host('h1'), host('h2'), workload('w', 'h1', 1, 10), workload('w', 'h2', 1, 20)];
    for (const order of [entries, [...entries].reverse()]) {
      const v = indexOf(order, alive('h1', 'h2')).view;
      expect([...v.workloads.values()].map((w) => [w.id, w.hostId])).toEqual([['w', 'h2']]);
      expect(v.conflicts).toEqual([]);
    }
  });

  it('two workloads claiming one address: the newest wins and the loser is reported once', () => {
    const index = new ViewIndex();
    for (const e of [host('h1'), host('h2'), workload('a', 'h1', 9, 10), workload('b', 'h2', 9, 11)])
      index.set(e.key, e);
    const events = index.flush(alive('h1', 'h2'));
    const v = index.view;
    expect([...v.workloads.keys()]).toEqual(['b']);
    expect(v.conflicts).toHaveLength(1);
    expect(v.conflicts[0]!.loser).toMatchObject({ workloadId: 'a', hostId: 'h1' });
    expect(v.conflicts[0]!.winner).toMatchObject({ workloadId: 'b', hostId: 'h2' });
    expect(events.filter((e) => e.type === 'conflict')).toHaveLength(1);
    // An unrelated change reports no conflict again.
    const w = workload('c', 'h1', 7, 12);
    index.set(w.key, w);
    expect(index.flush(alive('h1', 'h2')).map((e) => e.type)).toEqual(['workload-added']);
    expect(index.view.conflicts).toHaveLength(1);
  });

  it('a dead host hides its workloads and its return restores them; suspect keeps them', () => {
    const entries = [host('h1'), workload('w', 'h1', 1, 10)];
    const index = indexOf(entries, alive('h1'));
    index.touchHost('h1');
    expect(index.flush(new Map([['h1', 'suspect']]))).toEqual([{ type: 'host-suspect', hostId: 'h1' }]);
    expect(index.view.workloads.size).toBe(1);
    index.touchHost('h1');
    expect(index.flush(new Map([['h1', 'dead']])).map((e) => e.type)).toEqual([
      'host-down',
      'workload-removed',
    ]);
    expect(index.view.workloads.size).toBe(0);
    index.touchHost('h1');
    expect(index.flush(alive('h1')).map((e) => e.type)).toEqual(['host-up', 'workload-added']);
  });

  it('reports moves, removals, withdrawn hosts and fabric changes', () => {
    const { events } = transition(
      [host('h1'), host('h2'), workload('w', 'h1', 1, 10), workload('x', 'h1', 2, 10)],
      alive('h1', 'h2'),
      [host('h2'), workload('w', 'h1', 1, 10), workload('w', 'h2', 1, 20), fabric('tenant', 'blue', 5)],
      alive('h1', 'h2'),
    );
    const named = events.map((e) => (e.type === 'workload-moved' ? `${e.type}:${e.fromHostId}` : e.type));
    // Hosts, workloads (in either order), fabric records.
    expect(named[0]).toBe('host-down');
    expect(named.slice(1, 3).sort()).toEqual(['workload-moved:h1', 'workload-removed']);
    expect(named[3]).toBe('policy-changed');
    expect(named).toHaveLength(4);
  });

  it('a fabric record changed and changed back within one flush reports nothing', () => {
    const index = indexOf([fabric('policy', 'p', 5)], alive());
    index.set('policy/p', fabric('policy', 'p', 6, true));
    index.set('policy/p', fabric('policy', 'p', 5));
    expect(index.flush(alive())).toEqual([]);
  });

  // The replicated map (the real store: last writer wins per key) under random records, liveness
  // changes and snapshot drops; after every flush the index must hold the plain computation's view
  // and have raised exactly the events between the two plain views.
  it('equals the full computation and its diff over random histories', () => {
    const hosts = ['h1', 'h2', 'h3'] as const;
    const states = ['alive', 'suspect', 'dead'] as const;
    // Deletions one time in four, so that hosts are mostly present and claims pile up (conflicts).
    const del = fc.integer({ min: 0, max: 3 }).map((n) => n === 0);
    const op = fc.oneof(
      fc.record({
        op: fc.constant('host' as const),
        h: fc.constantFrom(...hosts),
        wall: fc.integer({ min: 1, max: 40 }),
        del,
      }),
      fc.record({
        op: fc.constant('claim' as const),
        h: fc.constantFrom(...hosts),
        w: fc.constantFrom('w1', 'w2', 'w3', 'w4'),
        addr: fc.integer({ min: 1, max: 3 }),
        tenant: fc.constantFrom('t', 'u'),
        wall: fc.integer({ min: 1, max: 40 }),
        del,
      }),
      fc.record({
        op: fc.constant('fabric' as const),
        kind: fc.constantFrom('tenant' as const, 'policy' as const, 'hmac' as const),
        name: fc.constantFrom('a', 'b'),
        wall: fc.integer({ min: 1, max: 40 }),
        del,
      }),
      fc.record({
        op: fc.constant('live' as const),
        h: fc.constantFrom(...hosts),
        state: fc.constantFrom(...states),
      }),
      fc.record({ op: fc.constant('drop' as const), i: fc.nat() }),
      fc.constant({ op: 'flush' as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 80, size: 'max' }), (ops) => {
        const store = new LwwStore<GossipRecord | undefined>(1e12);
        const index = new ViewIndex();
        const liveness = new Map<string, HostState>();
        const entries = (): ViewInputEntry[] =>
          [...store.entries()].map((e) => ({
            key: e.key,
            version: e.version,
            deleted: e.deleted,
            record: e.payload,
          }));
        let before = computeView([], liveness);
        // One writer never signs two records with one timestamp: the counter tells each record apart.
        let seq = 0;
        const put = (entry: ViewInputEntry) => {
          const e = { ...entry, version: { ...entry.version, counter: seq++ } };
          const r = store.apply({ key: e.key, version: e.version, deleted: e.deleted, payload: e.record }, 0);
          if (r === 'applied') index.set(e.key, e);
        };
        const check = () => {
          const events = index.flush(liveness);
          const after = computeView(entries(), liveness);
          expect(plain(index.view)).toEqual(plain(after));
          expect(canonical(events)).toEqual(canonical(diffViews(before, after)));
          const order = events.map((e) => CATEGORY[e.type]);
          expect(order).toEqual([...order].sort());
          before = after;
        };
        for (const o of ops) {
          switch (o.op) {
            case 'host':
              put(o.del ? { ...host(o.h, o.wall), deleted: true, record: undefined } : host(o.h, o.wall));
              break;
            case 'claim':
              put(workload(o.w, o.h, o.addr, o.wall, o.del, o.tenant));
              break;
            case 'fabric':
              put(fabric(o.kind, o.name, o.wall, o.del));
              break;
            case 'live':
              liveness.set(o.h, o.state);
              index.touchHost(o.h);
              break;
            case 'drop': {
              const keys = [...store.entries()].map((e) => e.key);
              const key = keys[o.i % Math.max(1, keys.length)];
              if (key !== undefined && store.delete(key)) index.set(key, undefined);
              break;
            }
            case 'flush':
              check();
              break;
          }
        }
        check();
      }),
      { numRuns: 400, seed: 7 },
    );
  });
});
