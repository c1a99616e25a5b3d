/**
 * The agent's event path at scale, through its real components: a fabric of 1,000 hosts and 100,000
 * workloads (4 tenants with route targets, BGP on: per-workload VPN adverts), one host's Reconciler
 * (src/agent/reconciler.ts) wired as agent.ts wires it, on the fake gossip port of the component
 * tests (test/unit/fakes/agent-ports.ts) for what the agent publishes, the gossip node's own view
 * (src/gossip/view.ts `ViewIndex`, fed the records gossip would deliver), the Advertiser on a fake BGP
 * port, and a backend port that records what it is handed.
 *
 * - event: a workload record reaching the gossip view (a claim added, a claim by another host with the
 *   old host's withdrawal, a withdrawal), the view's flush raising the event, through the agent's
 *   routing (events.ts) to the reconciler, until the
 *   reconciler hands its delta to `DataplaneBackend.applyDelta` (the backend stamps the time on
 *   entry). The reconciler's debounce (2 ms quiet) is left out: the bench runs the reconcile at once,
 *   as `noteWorkload` + `reconcileNow` do. Also reported: the whole reconcile (the adverts after the
 *   apply included). p50/p99 over 1,000 events (3 in 10 adds, 4 moves, 3 removes, of remote workloads:
 *   the agent ignores gossip about its own, whose authority is its local store).
 *   Beside the wall time, the main thread's run-queue wait per event (/proc schedstat, read outside
 *   the timed span): on a loaded machine the wall-time tail is mostly waiting for a core; the table
 *   says how many slow events waited, and the percentiles of wall time less that wait.
 * - anchor, interleaved (one after every 100 events): the reconciler's full path on the same state,
 *   as every event cost before the incremental path: the backend is forgotten and the fabric marked
 *   changed, so the reconcile rebuilds the model's state and view, plans the host and lowers its intent
 *   in full and realises it; timed to the intent handed to `realise`.
 * Verified before the times count: every event takes the incremental path and hands over a non-empty
 * delta; after every round the full realise finds the backend (built from the deltas alone) holding
 * exactly the full intent, and the reconciler's own record of what it applied equals it too.
 * Not on this path: the gossip layer's decoding and signature check of the record (see `bench gossip`).
 */
import { openSync, readSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { create } from '@bufbuild/protobuf';
import pino from 'pino';
import { Advertiser } from '../src/agent/advertiser.ts';
import { type AgentGossipEvent, routeGossipEvent } from '../src/agent/events.ts';
import type { FabricStateInput } from '../src/agent/fabric-state.ts';
import { Reconciler } from '../src/agent/reconciler.ts';
import type { LocalWorkload } from '../src/agent/workloads.ts';
import type {
  BackendCapabilities,
  BackendCounters,
  DataplaneBackend,
  RealiseResult,
} from '../src/dataplane/backend.ts';
import {
  diffIntents,
  type ForwardingIntent,
  type IntentDelta,
  type IntentItem,
  sameIntent,
} from '../src/dataplane/intent.ts';
import { kernelCapabilities } from '../src/dataplane/kernel/backend.ts';
import {
  type Record as GossipRecord,
  RecordSchema,
  type WorkloadRecord,
  WorkloadRecordSchema,
} from '../src/gen/segmesh/v1/gossip_pb.js';
import type { Version } from '../src/gossip/hlc.ts';
import type { HostState } from '../src/gossip/liveness.ts';
import { type FabricView as GossipView, ViewIndex, type ViewInputEntry } from '../src/gossip/view.ts';
import { formatIpv6, type Ipv6Address, ipv6ToBytes, parseIpv6, parsePrefix } from '../src/srv6/address.ts';
import { workloadLinkName } from '../src/srv6/fabric.ts';
import { F3216 } from '../src/srv6/sid.ts';
import { FakeBgp, FakeGossip, hostIdOf } from '../test/unit/fakes/agent-ports.ts';
import { median, prng, quantile, round } from './_stats.ts';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const WORKLOADS = Number(process.env.BENCH_WORKLOADS ?? 100_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 1000);
const ROUND = 100;
const TENANTS = 4;
/** The measured host: host1 (gossip id id-1), the fake gossip port's own host. */
const SELF = 1;
const SELF_NAME = `host${SELF}`;

const random = prng(42);

// --- the fabric ---------------------------------------------------------------------------------------

const tenantPrefix = (t: number) => `2001:db8:${(0x1000 + t).toString(16)}::/64`;
let nextAddress = 1n;
const addressOf = (t: number): Ipv6Address => parsePrefix(tenantPrefix(t)).address + nextAddress++;
const tenantName = (t: number) => `tenant-${t}`;
/** A host other than this one (hosts are 1..HOSTS). */
const remoteHost = (): number => 2 + Math.floor(random() * (HOSTS - 1));

const t0 = performance.now();
const gossip = new FakeGossip(SELF);
for (let i = 1; i <= HOSTS; i++) gossip.addHost(i);
for (let t = 0; t < TENANTS; t++)
  gossip.addTenant(tenantName(t), 100 + t, tenantPrefix(t), `65000:${100 + t}`);
/** This host's own workloads (the local store: authoritative here, not taken from gossip). */
const local = new Map<string, LocalWorkload>();
for (let i = 0; i < WORKLOADS; i++) {
  const id = `ns-${i % 97}/workload-${i}`;
  const t = i % TENANTS;
  const address = addressOf(t);
  const h = 1 + Math.floor(random() * HOSTS);
  if (h !== SELF) {
    gossip.claim(id, tenantName(t), address, h);
    continue;
  }
  local.set(id, {
    id,
    sticky: false,
    tenant: tenantName(t),
    address: formatIpv6(address),
    netns: `/run/netns/${id.replace('/', '-')}`,
    ifname: 'eth0',
    hostLink: workloadLinkName(id),
    containerId: `c${i}`,
    labels: {},
    mtu: 1400,
    attachedAtMs: 0,
  });
}

/** The gossip node's view of the replicated map, fed what the fake port holds (as records). */
const index = new ViewIndex();
const liveness = new Map<string, HostState>([...gossip.hosts.keys()].map((id) => [id, 'alive']));
const hostRecord = (id: string): GossipRecord =>
  create(RecordSchema, {
    key: `host/${id}`,
    origin: id,
    body: { case: 'host', value: gossip.hosts.get(id)!.record },
  });
for (const h of gossip.hosts.values())
  index.set(`host/${h.id}`, {
    key: `host/${h.id}`,
    version: h.version,
    deleted: false,
    record: hostRecord(h.id),
  });
for (const [name, t] of gossip.tenants)
  index.set(`tenant/${name}`, {
    key: `tenant/${name}`,
    version: t.version,
    deleted: false,
    record: create(RecordSchema, {
      key: `tenant/${name}`,
      origin: 'operator',
      body: { case: 'tenant', value: t.record },
    }),
  });
for (const w of gossip.workloads.values())
  index.set(`workload/${w.hostId}/${w.id}`, claimEntry(w.id, w.record, w.version));
index.flush(liveness);
const buildMs = performance.now() - t0;

function claimEntry(id: string, record: WorkloadRecord, version: Version): ViewInputEntry {
  const key = `workload/${record.hostId}/${id}`;
  return {
    key,
    version,
    deleted: false,
    record: create(RecordSchema, { key, origin: record.hostId, body: { case: 'workload', value: record } }),
  };
}

let clock = Date.now();
/** A version newer than any before, written by `hostId`. */
const nextVersion = (hostId: string): Version => ({ wall: ++clock, counter: 0, origin: hostId });

/** A claim of workload `id` at `address` by host `host`, as a record gossip delivers. */
function claimRecord(id: string, tenant: number, address: Ipv6Address, host: number): ViewInputEntry {
  const record = create(WorkloadRecordSchema, {
    workloadId: id,
    tenant: tenantName(tenant),
    hostId: hostIdOf(host),
    opaqueAddress: ipv6ToBytes(address),
  });
  return claimEntry(id, record, nextVersion(hostIdOf(host)));
}

/** Host `host`'s withdrawal of its claim of `id` (a tombstone). */
function withdrawal(id: string, host: number): ViewInputEntry {
  const key = `workload/${hostIdOf(host)}/${id}`;
  return { key, version: nextVersion(hostIdOf(host)), deleted: true, record: undefined };
}

function stateInput(view: GossipView): FabricStateInput {
  return {
    self: {
      name: SELF_NAME,
      hostId: gossip.hostId,
      underlay: parseIpv6(`2001:db8:100::${SELF}`),
      locator: parsePrefix(`fc00:0:${SELF}::/48`),
    },
    structure: F3216,
    maxSegments: 4,
    underlayMtu: 1500,
    gossip: view,
    local: [...local.values()],
    external: [],
    edgePeers: [],
    edgeMode: 'per-workload',
  };
}

const schedFile = (() => {
  try {
    return openSync(`/proc/self/task/${process.pid}/schedstat`, 'r');
  } catch {
    return undefined; // no schedstat: the table leaves the line out
  }
})();
const schedBuffer = Buffer.alloc(128);
/** [ns on a CPU, ns waiting on a run queue] of the main thread (the first is updated only at ticks). */
function schedstat(): [number, number] | undefined {
  if (schedFile === undefined) return undefined;
  const n = readSync(schedFile, schedBuffer, 0, schedBuffer.length, 0);
  const [run, wait] = schedBuffer.toString('latin1', 0, n).split(' ').map(Number);
  return [run!, wait!];
}

// --- the backend port -------------------------------------------------------------------------------------

/**
 * Keeps what it is handed (its own map, from the deltas alone), checks that each delta starts where the
 * last ended, and stamps when each call was entered.
 */
class RecordingBackend implements DataplaneBackend {
  readonly capabilities: BackendCapabilities = kernelCapabilities({ hmac: false });
  readonly installed = new Map<string, IntentItem>();
  #last: ForwardingIntent | undefined;
  /** performance.now() on entry of the last applyDelta / realise. */
  deltaAt = 0;
  /** The main thread's schedstat just after deltaAt was taken. */
  deltaSched: [number, number] | undefined;
  realiseAt = 0;
  /** Items the last realise changed against what the deltas had left installed. */
  realiseChanged = 0;
  deltas = 0;
  items = 0;

  async realise(intent: ForwardingIntent): Promise<RealiseResult> {
    this.realiseAt = performance.now();
    const d = diffIntents(this.installed, intent.items);
    this.realiseChanged = d.added.length + d.changed.length + d.removed.length;
    this.installed.clear();
    for (const [k, i] of intent.items) this.installed.set(k, i);
    this.#last = intent;
    return {
      added: d.added.length,
      replaced: d.changed.length,
      deleted: d.removed.length,
      conflicts: [],
      skipped: [],
    };
  }

  async applyDelta(
    before: ForwardingIntent,
    after: ForwardingIntent,
    delta: IntentDelta,
  ): Promise<RealiseResult> {
    this.deltaAt = performance.now();
    this.deltaSched = schedstat();
    if (before !== this.#last) throw new Error('delta from an intent this backend was not handed last');
    for (const i of delta.removed) this.installed.delete(i.key);
    for (const i of delta.added) this.installed.set(i.key, i);
    for (const i of delta.changed) this.installed.set(i.key, i);
    this.#last = after;
    this.deltas++;
    this.items += delta.added.length + delta.changed.length + delta.removed.length;
    return {
      added: delta.added.length,
      replaced: delta.changed.length,
      deleted: delta.removed.length,
      conflicts: [],
      skipped: [],
    };
  }

  async attach(): Promise<void> {}
  async detach(): Promise<void> {}
  async readCounters(): Promise<BackendCounters> {
    return { sids: new Map(), attachments: new Map() };
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

// --- the agent's components -------------------------------------------------------------------------------

const backend = new RecordingBackend();
const bgp = new FakeBgp();
const advertiser: Advertiser = new Advertiser({
  hostName: SELF_NAME,
  underlay: parseIpv6(`2001:db8:100::${SELF}`),
  gossip,
  bgp,
  routerId: '192.0.2.1',
  leaving: () => false,
  holds: (key) => reconciler.applied?.items.has(key) ?? false,
  hostWorkloads: () => reconciler.hostWorkloads(),
});
const reconciler: Reconciler = new Reconciler({
  log: pino({ level: 'silent' }),
  hostName: SELF_NAME,
  backend,
  gossipView: () => index.view,
  stateInput,
  localWorkload: (id) => local.get(id),
  afterApply: (view) => advertiser.advertise(view),
});

let s = performance.now();
const first = await reconciler.reconcileNow();
const firstMs = performance.now() - s;
if (first.error) throw new Error(`the first reconcile failed: ${first.error}`);

// --- the events -------------------------------------------------------------------------------------------

/** Remote workloads by id (the bench's own account), and a dense list to pick from. */
const remote = new Map<string, { tenant: number; address: Ipv6Address; host: number }>();
for (const w of gossip.workloads.values())
  remote.set(w.id, {
    tenant: Number(w.tenant.slice('tenant-'.length)),
    address: parseIpv6(formatIpv6(BigInt(`0x${w.address}`))),
    host: Number(w.hostId.slice(3)),
  });
const ids = [...remote.keys()];
const idIndex = new Map(ids.map((id, i) => [id, i]));
const counts = { add: 0, move: 0, remove: 0 };
let added = 0;

function dropId(id: string): void {
  const i = idIndex.get(id)!;
  const last = ids.pop()!;
  if (last !== id) {
    ids[i] = last;
    idIndex.set(last, i);
  }
  idIndex.delete(id);
}

/** The next records gossip delivers (one workload's change), and the event the view must raise. */
function nextChange(): { records: ViewInputEntry[]; expect: AgentGossipEvent['type'] } {
  const roll = random();
  if (roll < 0.3) {
    counts.add++;
    const t = Math.floor(random() * TENANTS);
    const id = `ns-new/workload-${added++}`;
    const w = { tenant: t, address: addressOf(t), host: remoteHost() };
    remote.set(id, w);
    idIndex.set(id, ids.length);
    ids.push(id);
    return { records: [claimRecord(id, t, w.address, w.host)], expect: 'workload-added' };
  }
  const id = ids[Math.floor(random() * ids.length)]!;
  const w = remote.get(id)!;
  if (roll < 0.7) {
    counts.move++;
    let h = remoteHost();
    if (h === w.host) h = h === HOSTS ? 2 : h + 1;
    remote.set(id, { ...w, host: h });
    // The new host's claim, then the old host's withdrawal (make before break).
    return {
      records: [claimRecord(id, w.tenant, w.address, h), withdrawal(id, w.host)],
      expect: 'workload-moved',
    };
  }
  counts.remove++;
  remote.delete(id);
  dropId(id);
  return { records: [withdrawal(id, w.host)], expect: 'workload-removed' };
}

/** The records into the gossip view; its flush must raise exactly the one expected workload event. */
function receive(change: { records: ViewInputEntry[]; expect: AgentGossipEvent['type'] }): AgentGossipEvent {
  for (const r of change.records) index.set(r.key, r);
  const events = index.flush(liveness);
  const e = events[0];
  if (events.length !== 1 || e?.type !== change.expect)
    throw new Error(
      `the view raised ${events.map((x) => x.type).join(', ') || 'nothing'}, not ${change.expect}`,
    );
  return e as AgentGossipEvent;
}

/** Hands a gossip event to the reconciler as the wiring does (agent.ts #subscribe), reconciling at once. */
function deliver(e: AgentGossipEvent): Promise<unknown> {
  const r = routeGossipEvent(e, gossip.hostId);
  if (r.path !== 'workload') throw new Error(`event ${e.type} routed to ${r.path}, not to the workload path`);
  reconciler.noteWorkload(r.id);
  return reconciler.reconcileNow();
}

const eventMs: number[] = [];
const reconcileMs: number[] = [];
const reconcileWaitMs: number[] = [];
/** Per event, the main thread's time waiting for a CPU (run queue, ns counter of /proc schedstat). */
const eventWaitMs: number[] = [];
const fullMs: number[] = [];
const fullReconcileMs: number[] = [];
let fullItems = 0;

/** The anchor: the reconciler's full path, realised in full; verifies the deltas left the full intent. */
async function fullReconcile(): Promise<[number, number]> {
  const applied = reconciler.applied!;
  if (!sameIntent(applied.items, backend.installed))
    throw new Error("the reconciler's record of what it applied differs from what the backend was handed");
  globalThis.gc?.();
  reconciler.forget();
  reconciler.fabricChanged();
  const start = performance.now();
  const r = await reconciler.reconcileNow();
  const total = performance.now() - start;
  if (r.error || !r.full) throw new Error(`the full reconcile failed: ${r.error ?? 'not full'}`);
  if (backend.realiseChanged !== 0)
    throw new Error(
      `the incremental path left the backend ${backend.realiseChanged} items away from a full recomputation`,
    );
  fullItems = backend.installed.size;
  return [backend.realiseAt - start, total];
}

// A warm-up round (not counted), then rounds of events each followed by the anchor.
for (let round = -1; round < EVENTS / ROUND; round++) {
  globalThis.gc?.();
  for (let n = 0; n < ROUND; n++) {
    const change = nextChange();
    const deltas = backend.deltas;
    const sched0 = schedstat();
    s = performance.now();
    const e = receive(change);
    const r = (await deliver(e)) as Awaited<ReturnType<Reconciler['reconcileNow']>>;
    const end = performance.now();
    const sched1 = schedstat();
    if (r.error) throw new Error(`reconcile failed: ${r.error}`);
    if (r.full) throw new Error(`event ${e.type} took the full path`);
    if (backend.deltas !== deltas + 1) throw new Error(`event ${e.type} handed over no delta`);
    if (round >= 0) {
      eventMs.push(backend.deltaAt - s);
      reconcileMs.push(end - s);
      const atDelta = backend.deltaSched;
      if (sched0 && sched1 && atDelta) {
        eventWaitMs.push((atDelta[1] - sched0[1]) / 1e6);
        reconcileWaitMs.push((sched1[1] - sched0[1]) / 1e6);
      }
    }
  }
  const [ms, total] = await fullReconcile();
  if (round >= 0) {
    fullMs.push(ms);
    fullReconcileMs.push(total);
  }
}

const p50 = median(eventMs);
const p99 = quantile(eventMs, 0.99);
const full = median(fullMs);
const result = {
  bench: 'agent',
  event_p50_ms: round(p50, 4),
  event_p99_ms: round(p99, 4),
  full_ms: round(full, 1),
  speedup: round(full / p99, 0),
};
const slowEvents = eventMs.flatMap((ms, i) => (ms > 1 ? [i] : []));
const ownMs = eventMs.map((ms, i) => Math.max(0, ms - (eventWaitMs[i] ?? 0)));
const ownReconcileMs = reconcileMs.map((ms, i) => Math.max(0, ms - (reconcileWaitMs[i] ?? 0)));
const rows = [
  [
    'fabric',
    `${HOSTS} hosts, ${remote.size + local.size} workloads (${local.size} local), ${TENANTS} tenants with route targets, BGP per-workload adverts (built in ${round(buildMs, 0)} ms)`,
  ],
  [
    'host',
    `${SELF_NAME}: ${fullItems} intent items, ${bgp.adverts.length} VPN adverts; first reconcile ${round(firstMs, 0)} ms`,
  ],
  [
    'events',
    `${eventMs.length} timed after ${ROUND} to warm up; all ${counts.add + counts.move + counts.remove}: ${counts.add} adds, ${counts.move} moves, ${counts.remove} removes, ${backend.items} items in ${backend.deltas} deltas handed over`,
  ],
  [
    'event',
    `workload record into the gossip view -> its event -> delta handed to the backend: p50 ${result.event_p50_ms} ms, p99 ${result.event_p99_ms} ms, max ${round(Math.max(...eventMs), 3)} ms`,
  ],
  [
    'reconcile',
    `the whole reconcile (adverts included): p50 ${round(median(reconcileMs), 4)} ms, p99 ${round(quantile(reconcileMs, 0.99), 4)} ms`,
  ],
  ...(eventWaitMs.length > 0
    ? [
        [
          'sched',
          `main thread, per event: ${slowEvents.length} events over 1 ms wall to the delta, ${slowEvents.filter((i) => eventWaitMs[i]! > 0.5).length} of them waited over 0.5 ms for a core (run-queue wait ${round(
            slowEvents.reduce((t, i) => t + eventWaitMs[i]!, 0),
            0,
          )} ms, read at the span's ends, in ${round(
            slowEvents.reduce((t, i) => t + eventMs[i]!, 0),
            0,
          )} ms of wall time); wall less run-queue wait: to the delta p50 ${round(median(ownMs), 4)} ms, p99 ${round(quantile(ownMs, 0.99), 4)} ms, whole reconcile p50 ${round(median(ownReconcileMs), 4)} ms, p99 ${round(quantile(ownReconcileMs, 0.99), 4)} ms; load ${loadavg()
            .map((l) => l.toFixed(1))
            .join(' ')} on ${availableParallelism()} cores`,
        ],
      ]
    : []),
  [
    'full',
    `reconciler full path to realise: runs ms ${fullMs.map((m) => round(m, 0)).join(' / ')}; median ${result.full_ms} (whole reconcile median ${round(median(fullReconcileMs), 1)})`,
  ],
  [
    'gossip',
    `timed above: the gossip node's view (ViewIndex) over ${index.view.workloads.size + HOSTS + TENANTS} records takes each event's records and raises the event (before: the whole view recomputed and diffed per change, 945 ms at 100,903 records)`,
  ],
  [
    'ratio',
    `full / event p99 = ${round(full / p99, 0)}x, full / event p50 = ${round(full / p50, 0)}x (goal: p99 < 5 ms, >= 20x)`,
  ],
];
for (const [k, v] of rows) process.stdout.write(`${k!.padEnd(9)} ${v}\n`);
process.stdout.write(`${JSON.stringify(result)}\n`);
