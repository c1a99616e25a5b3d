/**
 * The fabric view derived from the replicated map and host liveness (pure), kept incrementally: each
 * changed record and each liveness transition marks what it touches, and `flush()` re-resolves only
 * that and returns the events that lead from the previous view to the new one. (A full recomputation
 * per change cost 945 ms at 100,000 records; `test/unit/gossip/view.test.ts` checks this index against
 * the plain full computation on random histories.) Resolution rules (docs/gossip.md):
 * - a workload is visible only while its host's record is present and the host is not dead;
 * - one workload id claimed by several hosts (a move in progress, or an old host that never withdrew):
 *   the newest claim wins;
 * - one (tenant, opaque address) claimed by different workloads: the newest claim wins, the others
 *   are conflicts, reported to everyone and to the losing host.
 */
import type {
  Record as GossipRecord,
  HmacKeyRecord,
  HostRecord,
  PolicyRecord,
  TenantRecord,
  WorkloadRecord,
} from '../gen/segmesh/v1/gossip_pb.js';
import { compareVersions, type Version } from './hlc.ts';
import type { HostState } from './liveness.ts';

export interface ViewInputEntry {
  readonly key: string;
  readonly version: Version;
  readonly deleted: boolean;
  readonly record: GossipRecord | undefined;
}

export interface HostView {
  readonly id: string;
  readonly state: HostState;
  readonly version: Version;
  readonly record: HostRecord;
}

export interface WorkloadView {
  readonly id: string;
  readonly hostId: string;
  readonly tenant: string;
  /** Lower-case hex of the opaque address bytes. */
  readonly address: string;
  readonly version: Version;
  readonly record: WorkloadRecord;
}

export interface Conflict {
  readonly tenant: string;
  readonly address: string;
  readonly winner: { readonly workloadId: string; readonly hostId: string; readonly version: Version };
  readonly loser: { readonly workloadId: string; readonly hostId: string; readonly version: Version };
}

export interface FabricView {
  readonly hosts: ReadonlyMap<string, HostView>;
  readonly workloads: ReadonlyMap<string, WorkloadView>;
  readonly tenants: ReadonlyMap<string, { readonly version: Version; readonly record: TenantRecord }>;
  readonly policies: ReadonlyMap<string, { readonly version: Version; readonly record: PolicyRecord }>;
  readonly hmacKeys: ReadonlyMap<string, { readonly version: Version; readonly record: HmacKeyRecord }>;
  readonly conflicts: readonly Conflict[];
}

export const EMPTY_VIEW: FabricView = {
  hosts: new Map(),
  workloads: new Map(),
  tenants: new Map(),
  policies: new Map(),
  hmacKeys: new Map(),
  conflicts: [],
};

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export type GossipEvent =
  | { readonly type: 'host-up'; readonly hostId: string }
  | { readonly type: 'host-suspect'; readonly hostId: string }
  | { readonly type: 'host-down'; readonly hostId: string; readonly reason: 'dead' | 'withdrawn' }
  | { readonly type: 'workload-added'; readonly workload: WorkloadView }
  | {
      readonly type: 'workload-moved';
      readonly workload: WorkloadView;
      readonly fromHostId: string;
    }
  | { readonly type: 'workload-updated'; readonly workload: WorkloadView }
  | { readonly type: 'workload-removed'; readonly workload: WorkloadView }
  | {
      readonly type: 'policy-changed';
      readonly kind: 'tenant' | 'policy' | 'hmac-key';
      readonly name: string;
      readonly removed: boolean;
    }
  | { readonly type: 'conflict'; readonly conflict: Conflict };

/** Name-keyed fabric records (tenants, policies, HMAC keys) as the view holds them. */
interface Named<R> {
  readonly version: Version;
  readonly record: R;
}

type FabricKind = 'tenant' | 'policy' | 'hmac-key';

/** The view's resolution rules, kept incrementally over the replicated map (one instance per node). */
export class ViewIndex {
  // What the map holds (inputs), by record key.
  readonly #hostRecords = new Map<string, { readonly version: Version; readonly record: HostRecord }>();
  readonly #claims = new Map<string, WorkloadView>();
  readonly #claimKeysById = new Map<string, Set<string>>();
  readonly #claimKeysByHost = new Map<string, Set<string>>();
  // The newest claim per workload id among visible hosts, and who claims each (tenant, address).
  readonly #newest = new Map<string, WorkloadView>();
  readonly #byAddress = new Map<string, Set<string>>();
  readonly #conflictsByAddress = new Map<string, Conflict[]>();
  // The view handed out (its maps change in place at each flush).
  readonly #hosts = new Map<string, HostView>();
  readonly #workloads = new Map<string, WorkloadView>();
  readonly #fabric = {
    tenant: new Map<string, Named<TenantRecord>>(),
    policy: new Map<string, Named<PolicyRecord>>(),
    'hmac-key': new Map<string, Named<HmacKeyRecord>>(),
  };
  #conflicts: readonly Conflict[] = [];
  #view: FabricView = EMPTY_VIEW;
  // What changed since the last flush.
  readonly #dirtyHosts = new Set<string>();
  readonly #dirtyIds = new Set<string>();
  readonly #dirtyFabric = {
    tenant: new Map<string, Named<TenantRecord> | undefined>(),
    policy: new Map<string, Named<PolicyRecord> | undefined>(),
    'hmac-key': new Map<string, Named<HmacKeyRecord> | undefined>(),
  };

  /** The view as of the last flush. */
  get view(): FabricView {
    return this.#view;
  }

  get dirty(): boolean {
    return (
      this.#dirtyHosts.size > 0 ||
      this.#dirtyIds.size > 0 ||
      this.#dirtyFabric.tenant.size > 0 ||
      this.#dirtyFabric.policy.size > 0 ||
      this.#dirtyFabric['hmac-key'].size > 0
    );
  }

  /** What the map now holds under `entry.key` (a tombstone or undefined: nothing). */
  set(key: string, entry: ViewInputEntry | undefined): void {
    const body = entry !== undefined && !entry.deleted ? entry.record?.body : undefined;
    const kind = key.slice(0, key.indexOf('/'));
    switch (kind) {
      case 'host': {
        const id = key.slice(5);
        if (body?.case === 'host') this.#hostRecords.set(id, { version: entry!.version, record: body.value });
        else this.#hostRecords.delete(id);
        this.#dirtyHosts.add(id);
        return;
      }
      case 'workload':
        this.#setClaim(key, body?.case === 'workload' ? claimOf(entry!.version, body.value) : undefined);
        return;
      case 'tenant':
        this.#setNamed('tenant', key.slice(7), body?.case === 'tenant' ? body.value : undefined, entry);
        return;
      case 'policy':
        this.#setNamed('policy', key.slice(7), body?.case === 'policy' ? body.value : undefined, entry);
        return;
      case 'hmac':
        this.#setNamed('hmac-key', key.slice(5), body?.case === 'hmacKey' ? body.value : undefined, entry);
        return;
      default:
        return;
    }
  }

  /** A host's liveness changed: its state and the visibility of its workloads are resolved again. */
  touchHost(hostId: string): void {
    this.#dirtyHosts.add(hostId);
  }

  /**
   * Resolves what changed since the last flush against `liveness` and returns the events, in the
   * order hosts, workloads, fabric records, conflicts.
   */
  flush(liveness: ReadonlyMap<string, HostState>): GossipEvent[] {
    const events: GossipEvent[] = [];
    for (const id of this.#dirtyHosts) this.#flushHost(id, liveness, events);
    this.#dirtyHosts.clear();

    const dirtyAddresses = new Set<string>();
    const affected = new Set<string>();
    for (const id of this.#dirtyIds) {
      affected.add(id);
      const before = this.#newest.get(id);
      const after = this.#newestClaim(id);
      if (before === after) continue;
      if (before !== undefined) {
        const a = addressKey(before);
        removeFrom(this.#byAddress, a, id);
        dirtyAddresses.add(a);
      }
      if (after === undefined) this.#newest.delete(id);
      else {
        this.#newest.set(id, after);
        const a = addressKey(after);
        addTo(this.#byAddress, a, id);
        dirtyAddresses.add(a);
      }
    }
    this.#dirtyIds.clear();

    // Newest claim per (tenant, address); the others are conflicts.
    let conflictsChanged = false;
    const knownConflicts = new Set<string>();
    const newConflicts: Conflict[] = [];
    for (const a of dirtyAddresses) {
      const old = this.#conflictsByAddress.get(a);
      if (old !== undefined) {
        conflictsChanged = true;
        for (const c of old) {
          knownConflicts.add(conflictId(c));
          affected.add(c.loser.workloadId);
        }
        this.#conflictsByAddress.delete(a);
      }
      const ids = this.#byAddress.get(a);
      if (ids === undefined) continue;
      const claims = [...ids].map((id) => this.#newest.get(id)!);
      claims.sort((x, y) => compareVersions(y.version, x.version));
      const winner = claims[0]!;
      affected.add(winner.id);
      if (claims.length > 1) {
        conflictsChanged = true;
        const conflicts = claims.slice(1).map((loser): Conflict => {
          affected.add(loser.id);
          return {
            tenant: winner.tenant,
            address: winner.address,
            winner: { workloadId: winner.id, hostId: winner.hostId, version: winner.version },
            loser: { workloadId: loser.id, hostId: loser.hostId, version: loser.version },
          };
        });
        this.#conflictsByAddress.set(a, conflicts);
        for (const c of conflicts) if (!knownConflicts.has(conflictId(c))) newConflicts.push(c);
      }
    }

    for (const id of affected) {
      const prev = this.#workloads.get(id);
      const next = this.#winner(id);
      if (next === undefined) {
        if (prev !== undefined) {
          this.#workloads.delete(id);
          events.push({ type: 'workload-removed', workload: prev });
        }
        continue;
      }
      if (prev === next) continue;
      this.#workloads.set(id, next);
      if (prev === undefined) events.push({ type: 'workload-added', workload: next });
      else if (prev.hostId !== next.hostId)
        events.push({ type: 'workload-moved', workload: next, fromHostId: prev.hostId });
      else if (compareVersions(prev.version, next.version) !== 0)
        events.push({ type: 'workload-updated', workload: next });
    }

    for (const kind of ['tenant', 'policy', 'hmac-key'] as const) {
      const current: Map<string, Named<unknown>> = this.#fabric[kind];
      for (const [name, before] of this.#dirtyFabric[kind]) {
        const after = current.get(name);
        if (after === undefined) {
          if (before !== undefined) events.push({ type: 'policy-changed', kind, name, removed: true });
        } else if (before === undefined || compareVersions(before.version, after.version) !== 0) {
          events.push({ type: 'policy-changed', kind, name, removed: false });
        }
      }
      this.#dirtyFabric[kind].clear();
    }

    if (conflictsChanged) {
      this.#conflicts = [...this.#conflictsByAddress.values()].flat().sort(byLoser);
      for (const c of newConflicts.sort(byLoser)) events.push({ type: 'conflict', conflict: c });
    }
    if (this.#view === EMPTY_VIEW || conflictsChanged) {
      this.#view = {
        hosts: this.#hosts,
        workloads: this.#workloads,
        tenants: this.#fabric.tenant,
        policies: this.#fabric.policy,
        hmacKeys: this.#fabric['hmac-key'],
        conflicts: this.#conflicts,
      };
    }
    return events;
  }

  #flushHost(id: string, liveness: ReadonlyMap<string, HostState>, events: GossipEvent[]): void {
    const prev = this.#hosts.get(id);
    const input = this.#hostRecords.get(id);
    if (input === undefined) {
      if (prev === undefined) return;
      this.#hosts.delete(id);
      if (prev.state !== 'dead') events.push({ type: 'host-down', hostId: id, reason: 'withdrawn' });
    } else {
      const state = liveness.get(id) ?? 'suspect';
      const next: HostView = { id, state, version: input.version, record: input.record };
      this.#hosts.set(id, next);
      if (prev?.state !== state) {
        if (state === 'alive') events.push({ type: 'host-up', hostId: id });
        else if (state === 'suspect') events.push({ type: 'host-suspect', hostId: id });
        else events.push({ type: 'host-down', hostId: id, reason: 'dead' });
      }
    }
    // Its claims are visible again, or no longer: each is resolved again.
    const wasVisible = prev !== undefined && prev.state !== 'dead';
    const isVisible = this.#visible(id);
    if (wasVisible === isVisible) return;
    for (const key of this.#claimKeysByHost.get(id) ?? []) this.#dirtyIds.add(this.#claims.get(key)!.id);
  }

  #visible(hostId: string): boolean {
    const h = this.#hosts.get(hostId);
    return h !== undefined && h.state !== 'dead';
  }

  /** The newest claim of `id` among hosts that are present and not dead. */
  #newestClaim(id: string): WorkloadView | undefined {
    let best: WorkloadView | undefined;
    for (const key of this.#claimKeysById.get(id) ?? []) {
      const w = this.#claims.get(key)!;
      if (!this.#visible(w.hostId)) continue;
      if (best === undefined || compareVersions(w.version, best.version) > 0) best = w;
    }
    return best;
  }

  /** `id`'s claim when it is also the newest claim of its (tenant, address). */
  #winner(id: string): WorkloadView | undefined {
    const w = this.#newest.get(id);
    if (w === undefined) return undefined;
    let best = w;
    for (const other of this.#byAddress.get(addressKey(w)) ?? []) {
      const o = this.#newest.get(other)!;
      if (compareVersions(o.version, best.version) > 0) best = o;
    }
    return best === w ? w : undefined;
  }

  #setClaim(key: string, claim: WorkloadView | undefined): void {
    const old = this.#claims.get(key);
    if (old !== undefined) {
      this.#claims.delete(key);
      removeFrom(this.#claimKeysById, old.id, key);
      removeFrom(this.#claimKeysByHost, old.hostId, key);
      this.#dirtyIds.add(old.id);
    }
    if (claim !== undefined) {
      this.#claims.set(key, claim);
      addTo(this.#claimKeysById, claim.id, key);
      addTo(this.#claimKeysByHost, claim.hostId, key);
      this.#dirtyIds.add(claim.id);
    }
  }

  #setNamed<R>(
    kind: FabricKind,
    name: string,
    record: R | undefined,
    entry: ViewInputEntry | undefined,
  ): void {
    const map = this.#fabric[kind] as Map<string, Named<R>>;
    const dirty = this.#dirtyFabric[kind] as Map<string, Named<R> | undefined>;
    // The state at the last flush is what events are reported against.
    if (!dirty.has(name)) dirty.set(name, map.get(name));
    if (record === undefined) map.delete(name);
    else map.set(name, { version: entry!.version, record });
  }
}

function claimOf(version: Version, record: WorkloadRecord): WorkloadView {
  return {
    id: record.workloadId,
    hostId: record.hostId,
    tenant: record.tenant,
    address: hex(record.opaqueAddress),
    version,
    record,
  };
}

function addressKey(w: WorkloadView): string {
  return `${w.tenant}\0${w.address}`;
}

function addTo(index: Map<string, Set<string>>, id: string, key: string): void {
  const keys = index.get(id);
  if (keys === undefined) index.set(id, new Set([key]));
  else keys.add(key);
}

function removeFrom(index: Map<string, Set<string>>, id: string, key: string): void {
  const keys = index.get(id);
  if (keys === undefined) return;
  keys.delete(key);
  if (keys.size === 0) index.delete(id);
}

function byLoser(a: Conflict, b: Conflict): number {
  return a.loser.workloadId < b.loser.workloadId ? -1 : 1;
}

function conflictId(c: Conflict): string {
  return `${c.tenant}\0${c.address}\0${c.loser.workloadId}\0${c.loser.version.wall}.${c.loser.version.counter}`;
}
