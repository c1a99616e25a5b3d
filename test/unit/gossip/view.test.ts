import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import {
  type Record as GossipRecord,
  HostRecordSchema,
  RecordSchema,
  TenantRecordSchema,
  WorkloadRecordSchema,
} from '../../../src/gen/segmesh/v1/gossip_pb.js';
import type { HostState } from '../../../src/gossip/liveness.ts';
import { computeView, diffViews, EMPTY_VIEW, type ViewInputEntry } from '../../../src/gossip/view.ts';

function host(id: string, wall = 1): ViewInputEntry {
  const record: GossipRecord = create(RecordSchema, {
    key: `host/${id}`,
    origin: id,
    body: { case: 'host', value: create(HostRecordSchema, { hostId: id, name: id }) },
  });
  return { key: record.key, version: { wall, counter: 0, origin: id }, deleted: false, record };
}

function workload(id: string, hostId: string, addr: number, wall: number, deleted = false): ViewInputEntry {
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
            tenant: 't',
            opaqueAddress: new Uint8Array([0xfd, addr]),
          }),
        },
  });
  return { key: record.key, version: { wall, counter: 0, origin: hostId }, deleted, record };
}

const alive = (...hs: string[]): Map<string, HostState> => new Map(hs.map((h) => [h, 'alive']));

describe('computeView', () => {
  it('a moved workload shows at its newest host only, whatever order the records come in', () => {
    const entries = [host('h1'), host('h2'), workload('w', 'h1', 1, 10), workload('w', 'h2', 1, 20)];
    for (const order of [entries, [...entries].reverse()]) {
      const v = computeView(order, alive('h1', 'h2'));
      expect([...v.workloads.values()].map((w) => [w.id, w.hostId])).toEqual([['w', 'h2']]);
      expect(v.conflicts).toEqual([]);
    }
  });

  it('two workloads claiming one address: the newest wins and the loser is reported', () => {
    const v = computeView(
      [host('h1'), host('h2'), workload('a', 'h1', 9, 10), workload('b', 'h2', 9, 11)],
      alive('h1', 'h2'),
    );
    expect([...v.workloads.keys()]).toEqual(['b']);
    expect(v.conflicts).toHaveLength(1);
    expect(v.conflicts[0]!.loser).toMatchObject({ workloadId: 'a', hostId: 'h1' });
    expect(v.conflicts[0]!.winner).toMatchObject({ workloadId: 'b', hostId: 'h2' });
    const events = diffViews(EMPTY_VIEW, v);
    expect(events.filter((e) => e.type === 'conflict')).toHaveLength(1);
  });

  it('a dead host hides its workloads and its return restores them; suspect keeps them', () => {
    const entries = [host('h1'), workload('w', 'h1', 1, 10)];
    const up = computeView(entries, alive('h1'));
    const suspect = computeView(entries, new Map([['h1', 'suspect']]));
    const dead = computeView(entries, new Map([['h1', 'dead']]));
    expect(suspect.workloads.size).toBe(1);
    expect(dead.workloads.size).toBe(0);
    expect(diffViews(up, suspect)).toEqual([{ type: 'host-suspect', hostId: 'h1' }]);
    expect(diffViews(suspect, dead).map((e) => e.type)).toEqual(['host-down', 'workload-removed']);
    expect(diffViews(dead, up).map((e) => e.type)).toEqual(['host-up', 'workload-added']);
  });

  it('reports moves, removals, withdrawn hosts and fabric changes', () => {
    const t = create(RecordSchema, {
      key: 'tenant/blue',
      origin: 'operator',
      body: { case: 'tenant', value: create(TenantRecordSchema, { name: 'blue' }) },
    });
    const tenant: ViewInputEntry = {
      key: t.key,
      version: { wall: 5, counter: 0, origin: 'operator' },
      deleted: false,
      record: t,
    };
    const a = computeView(
      [host('h1'), host('h2'), workload('w', 'h1', 1, 10), workload('x', 'h1', 2, 10)],
      alive('h1', 'h2'),
    );
    const b = computeView(
      [host('h2'), workload('w', 'h1', 1, 10), workload('w', 'h2', 1, 20), tenant],
      alive('h1', 'h2'),
    );
    expect(
      diffViews(a, b).map((e) => (e.type === 'workload-moved' ? `${e.type}:${e.fromHostId}` : e.type)),
    ).toEqual(['host-down', 'workload-moved:h1', 'workload-removed', 'policy-changed']);
  });
});
