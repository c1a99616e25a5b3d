/**
 * The view's resolution rules computed the plain way (every record, every time) and the events
 * between two such views: the reference the incremental `ViewIndex` is checked against.
 */
import type { HmacKeyRecord, PolicyRecord, TenantRecord } from '../../../src/gen/segmesh/v1/gossip_pb.js';
import { compareVersions, type Version } from '../../../src/gossip/hlc.ts';
import type { HostState } from '../../../src/gossip/liveness.ts';
import {
  type Conflict,
  type FabricView,
  type GossipEvent,
  type HostView,
  hex,
  type ViewInputEntry,
  type WorkloadView,
} from '../../../src/gossip/view.ts';

export function computeView(
  entries: Iterable<ViewInputEntry>,
  liveness: ReadonlyMap<string, HostState>,
): FabricView {
  const hosts = new Map<string, HostView>();
  const claims: WorkloadView[] = [];
  const tenants = new Map<string, { version: Version; record: TenantRecord }>();
  const policies = new Map<string, { version: Version; record: PolicyRecord }>();
  const hmacKeys = new Map<string, { version: Version; record: HmacKeyRecord }>();
  for (const e of entries) {
    if (e.deleted || e.record === undefined) continue;
    const body = e.record.body;
    switch (body.case) {
      case 'host':
        hosts.set(body.value.hostId, {
          id: body.value.hostId,
          state: liveness.get(body.value.hostId) ?? 'suspect',
          version: e.version,
          record: body.value,
        });
        break;
      case 'workload':
        claims.push({
          id: body.value.workloadId,
          hostId: body.value.hostId,
          tenant: body.value.tenant,
          address: hex(body.value.opaqueAddress),
          version: e.version,
          record: body.value,
        });
        break;
      case 'tenant':
        tenants.set(body.value.name, { version: e.version, record: body.value });
        break;
      case 'policy':
        policies.set(body.value.name, { version: e.version, record: body.value });
        break;
      case 'hmacKey':
        hmacKeys.set(body.value.keyId, { version: e.version, record: body.value });
        break;
      default:
        break;
    }
  }
  // Newest claim per workload id among hosts that are present and not dead.
  const byId = new Map<string, WorkloadView>();
  for (const w of claims) {
    const h = hosts.get(w.hostId);
    if (h === undefined || h.state === 'dead') continue;
    const cur = byId.get(w.id);
    if (cur === undefined || compareVersions(w.version, cur.version) > 0) byId.set(w.id, w);
  }
  // Newest claim per (tenant, address); the others are conflicts.
  const byAddress = new Map<string, WorkloadView[]>();
  for (const w of byId.values()) {
    const k = `${w.tenant}\0${w.address}`;
    const list = byAddress.get(k);
    if (list === undefined) byAddress.set(k, [w]);
    else list.push(w);
  }
  const workloads = new Map<string, WorkloadView>();
  const conflicts: Conflict[] = [];
  for (const list of byAddress.values()) {
    list.sort((a, b) => compareVersions(b.version, a.version));
    const winner = list[0]!;
    workloads.set(winner.id, winner);
    for (const loser of list.slice(1)) {
      conflicts.push({
        tenant: winner.tenant,
        address: winner.address,
        winner: { workloadId: winner.id, hostId: winner.hostId, version: winner.version },
        loser: { workloadId: loser.id, hostId: loser.hostId, version: loser.version },
      });
    }
  }
  conflicts.sort((a, b) => (a.loser.workloadId < b.loser.workloadId ? -1 : 1));
  return { hosts, workloads, tenants, policies, hmacKeys, conflicts };
}

function sameVersion(a: Version, b: Version): boolean {
  return compareVersions(a, b) === 0;
}

/** The events that lead from `prev` to `next`, in a stable order (hosts, workloads, fabric, conflicts). */
export function diffViews(prev: FabricView, next: FabricView): GossipEvent[] {
  const events: GossipEvent[] = [];
  for (const [id, h] of next.hosts) {
    const p = prev.hosts.get(id);
    if (p?.state === h.state) continue;
    if (h.state === 'alive') events.push({ type: 'host-up', hostId: id });
    else if (h.state === 'suspect') events.push({ type: 'host-suspect', hostId: id });
    else events.push({ type: 'host-down', hostId: id, reason: 'dead' });
  }
  for (const [id, p] of prev.hosts) {
    if (!next.hosts.has(id) && p.state !== 'dead')
      events.push({ type: 'host-down', hostId: id, reason: 'withdrawn' });
  }
  for (const [id, w] of next.workloads) {
    const p = prev.workloads.get(id);
    if (p === undefined) events.push({ type: 'workload-added', workload: w });
    else if (p.hostId !== w.hostId)
      events.push({ type: 'workload-moved', workload: w, fromHostId: p.hostId });
    else if (!sameVersion(p.version, w.version)) events.push({ type: 'workload-updated', workload: w });
  }
  for (const [id, p] of prev.workloads) {
    if (!next.workloads.has(id)) events.push({ type: 'workload-removed', workload: p });
  }
  const fabric = [
    ['tenant', prev.tenants, next.tenants],
    ['policy', prev.policies, next.policies],
    ['hmac-key', prev.hmacKeys, next.hmacKeys],
  ] as const;
  for (const [kind, before, after] of fabric) {
    for (const [name, v] of after) {
      const p = before.get(name);
      if (p === undefined || !sameVersion(p.version, v.version)) {
        events.push({ type: 'policy-changed', kind, name, removed: false });
      }
    }
    for (const name of before.keys()) {
      if (!after.has(name)) events.push({ type: 'policy-changed', kind, name, removed: true });
    }
  }
  const known = new Set(prev.conflicts.map(conflictId));
  for (const c of next.conflicts)
    if (!known.has(conflictId(c))) events.push({ type: 'conflict', conflict: c });
  return events;
}

function conflictId(c: Conflict): string {
  return `${c.tenant}\0${c.address}\0${c.loser.workloadId}\0${c.loser.version.wall}.${c.loser.version.counter}`;
}
