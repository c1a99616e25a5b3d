/**
 * The agent's event path at scale: a fabric of 1,000 hosts and 100,000 workloads (4 tenants, 4
 * policies through network functions, one of them SR-unaware on the measured host and one with a
 * `from` selector, i.e. source-specific entries), one host's intent kept current by HostIntentComputer.
 *
 * - event: from a decoded gossip workload record (a claim: added or moved; a tombstone: removed) to
 *   the intent delta handed to the backend port: the record turned into the model's workload (host id
 *   to host name, opaque address, link name), the incremental plan and intent, and
 *   `DataplaneBackend.applyDelta(before, after, delta)` on a backend that keeps what it was handed.
 *   p50/p99 over 1,000 events (a mix of adds, moves and removes; one in four touches the measured host,
 *   moving a workload to or away from it, which changes its links and delivery entries).
 *   Beside the wall time, the main thread's run-queue wait per event (/proc schedstat, read outside
 *   the timed span): on a loaded machine the wall-time tail is mostly waiting for a core; the table
 *   says how many slow events waited, and the percentiles of wall time less that wait.
 * - anchor, interleaved (one after every 100 events): the full recomputation the agent did before,
 *   plan + intent lowering + diff against the intent in place.
 * Verified before the times count: after every round the anchor's full intent must equal the
 * incremental one (empty diff) and the backend's installed items (built from the deltas alone) must
 * equal it too; the workload set is tracked by the benchmark itself, not through the record path.
 * Signature checks are the gossip layer's, once per record whatever the fabric size: not timed here;
 * the structural decode of the signed record is timed apart for reference.
 */
import { openSync, readSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { create, toBinary } from '@bufbuild/protobuf';
import type {
  BackendCapabilities,
  BackendCounters,
  DataplaneBackend,
  RealiseResult,
} from '../src/dataplane/backend.ts';
import {
  diffIntents,
  emptyDelta,
  type ForwardingIntent,
  type IntentDelta,
  type IntentItem,
  sameIntent,
} from '../src/dataplane/intent.ts';
import { HostIntentComputer, intentOf } from '../src/dataplane/intent-lower.ts';
import { kernelCapabilities } from '../src/dataplane/kernel/backend.ts';
import {
  type Record as GossipRecord,
  HlcTimestampSchema,
  RecordSchema,
  SignedRecordSchema,
  WorkloadRecordSchema,
} from '../src/gen/segmesh/v1/gossip_pb.js';
import { decodeSigned, parseKey } from '../src/gossip/records.ts';
import { type Ipv6Address, ipv6FromBytes, ipv6ToBytes, parseIpv6, parsePrefix } from '../src/srv6/address.ts';
import {
  buildFabricView,
  type FabricInput,
  type FabricView,
  type PolicyInput,
  type WorkloadView,
  workloadLinkName,
} from '../src/srv6/fabric.ts';
import { computeHostPlan } from '../src/srv6/pathcompute.ts';
import { median, prng, quantile, round } from './_stats.ts';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const WORKLOADS = Number(process.env.BENCH_WORKLOADS ?? 100_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 1000);
const ROUND = 100;
const TENANTS = 4;
const POLICIES = 4;
/** Workloads each policy steers (by name: gossip records carry no labels). */
const STEERED = 50;
const MEASURED = 'host-0';
/** Policy 0 selects its sources too (source-specific entries); BENCH_FROM_POLICY=0 leaves it out. */
const FROM_POLICY = process.env.BENCH_FROM_POLICY !== '0';

const hostId = (i: number) => `12D3KooWbenchHost${i}`;
const random = prng(42);

// --- the fabric ---------------------------------------------------------------------------------------

const tenantPrefix = (t: number) => parsePrefix(`2001:db8:${(0x1000 + t).toString(16)}::/64`);
let nextAddress = 1n;
const addressOf = (t: number): Ipv6Address => tenantPrefix(t).address + nextAddress++;

function fabric(): FabricInput {
  const hosts = Array.from({ length: HOSTS }, (_, i) => ({
    name: `host-${i}`,
    underlay: parseIpv6(`2001:db8:100::${(i + 1).toString(16)}`),
  }));
  const tenants = Array.from({ length: TENANTS }, (_, i) => ({
    name: `tenant-${i}`,
    id: 100 + i,
    prefixes: [tenantPrefix(i)],
  }));
  const workloads = Array.from({ length: WORKLOADS }, (_, i) => ({
    id: `ns-${i % 97}/workload-${i}`,
    tenant: `tenant-${i % TENANTS}`,
    host: `host-${Math.floor(random() * HOSTS)}`,
    address: addressOf(i % TENANTS),
  }));
  // Two functions per policy, SR-aware then SR-unaware; policy 0's SR-unaware one on the measured
  // host (its return scope holds routes toward every workload the policy steers).
  const networkFunctions = Array.from({ length: POLICIES * 2 }, (_, i) => ({
    name: `nf-${i}`,
    tenant: `tenant-${Math.floor(i / 2) % TENANTS}`,
    host: i === 1 ? MEASURED : `host-${(i * 37 + 1) % HOSTS}`,
    mode: i % 2 === 0 ? ('sr-aware' as const) : ('sr-unaware' as const),
    ...(i % 2 === 1 ? { address: parseIpv6(`fc00:99::${i}`) } : {}),
  }));
  const policies: PolicyInput[] = Array.from({ length: POLICIES }, (_, i) => ({
    name: `policy-${i}`,
    tenant: `tenant-${i % TENANTS}`,
    to: {
      workloads: workloads
        .filter((w) => w.tenant === `tenant-${i % TENANTS}`)
        .slice(0, STEERED)
        .map((w) => w.id),
    },
    via: [`nf-${2 * i}`, `nf-${2 * i + 1}`],
  }));
  if (FROM_POLICY) {
    // Source-specific: policy 0 only from some of its tenant's workloads, a third of them on the measured host.
    const tenant0 = workloads.filter((w) => w.tenant === 'tenant-0');
    const sources = [
      ...tenant0.filter((w) => w.host === MEASURED).slice(0, STEERED / 5),
      ...tenant0.slice(STEERED, STEERED + (STEERED * 2) / 5),
    ];
    policies[0] = { ...policies[0]!, from: { workloads: sources.map((w) => w.id) } };
  }
  return { locatorBlock: parsePrefix('fc00:0::/32'), hosts, tenants, networkFunctions, workloads, policies };
}

// --- the record path (what the agent does with a verified gossip record) --------------------------------

/** Gossip host id -> model host name (from the host records), and the tenants the fabric defines. */
const nameOf = new Map(Array.from({ length: HOSTS }, (_, i) => [hostId(i), `host-${i}`]));
const tenantNames = new Set(Array.from({ length: TENANTS }, (_, i) => `tenant-${i}`));

type ModelEvent = { kind: 'upsert'; workload: WorkloadView } | { kind: 'remove'; id: string } | undefined;

/**
 * A workload record as the model's event, by the rules of agent/fabric-state.ts for remote workloads:
 * a claim of a known host in a known tenant with a 16-byte address; a tombstone removes the workload
 * only when its writer is the workload's current host (an old host withdrawing after a move does not).
 */
function modelEvent(record: GossipRecord, current: (id: string) => WorkloadView | undefined): ModelEvent {
  if (record.deleted) {
    const key = parseKey(record.key);
    if (key.kind !== 'workload') return undefined;
    const w = current(key.name);
    return w && w.host === nameOf.get(key.owner) ? { kind: 'remove', id: key.name } : undefined;
  }
  if (record.body.case !== 'workload') return undefined;
  const r = record.body.value;
  const host = nameOf.get(r.hostId);
  if (!host || !tenantNames.has(r.tenant) || r.opaqueAddress.length !== 16) return undefined;
  return {
    kind: 'upsert',
    workload: {
      id: r.workloadId,
      tenant: r.tenant,
      host,
      address: ipv6FromBytes(r.opaqueAddress),
      labels: {},
      link: workloadLinkName(r.workloadId),
      derivedAddress: false,
    },
  };
}

let wall = 1_800_000_000_000n;
function signedRecord(
  owner: string,
  id: string,
  claim?: { tenant: string; address: Ipv6Address },
): Uint8Array {
  const record = create(RecordSchema, {
    key: `workload/${owner}/${id}`,
    version: create(HlcTimestampSchema, { wallMs: wall++, counter: 0 }),
    origin: owner,
    deleted: claim === undefined,
    ...(claim
      ? {
          body: {
            case: 'workload' as const,
            value: create(WorkloadRecordSchema, {
              workloadId: id,
              tenant: claim.tenant,
              opaqueAddress: ipv6ToBytes(claim.address),
              hostId: owner,
            }),
          },
        }
      : {}),
  });
  return toBinary(
    SignedRecordSchema,
    create(SignedRecordSchema, { payload: toBinary(RecordSchema, record), signature: new Uint8Array(64) }),
  );
}

// --- the backend port -------------------------------------------------------------------------------------

/** Keeps what it is handed (its own map, from the deltas alone) and checks that each delta starts where the last ended. */
class RecordingBackend implements DataplaneBackend {
  readonly capabilities: BackendCapabilities = kernelCapabilities({ hmac: false });
  readonly installed = new Map<string, IntentItem>();
  #last: ForwardingIntent | undefined;
  deltas = 0;
  items = 0;

  async realise(intent: ForwardingIntent): Promise<RealiseResult> {
    this.installed.clear();
    for (const [k, i] of intent.items) this.installed.set(k, i);
    this.#last = intent;
    return { added: intent.items.size, replaced: 0, deleted: 0, conflicts: [], skipped: [] };
  }

  async applyDelta(
    before: ForwardingIntent,
    after: ForwardingIntent,
    delta: IntentDelta,
  ): Promise<RealiseResult> {
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

// --- the run ------------------------------------------------------------------------------------------------

const t0 = performance.now();
const input = fabric();
const base = buildFabricView(input);
const buildMs = performance.now() - t0;

/** The benchmark's own account of the workloads (the reference), and the computer's view (its own map). */
const reference = new Map(base.workloads);
const refView: FabricView = { ...base, workloads: reference };
const view: FabricView = { ...base, workloads: new Map(base.workloads) };

let s = performance.now();
const computer = new HostIntentComputer(view, MEASURED);
const constructMs = performance.now() - s;
const backend = new RecordingBackend();
let applied = computer.intent;
await backend.realise(applied);

const ids = [...reference.keys()];
const idIndex = new Map(ids.map((id, i) => [id, i]));
const onMeasured = new Set(ids.filter((id) => reference.get(id)!.host === MEASURED));
const steered = input.policies!.flatMap((p) => p.to?.workloads ?? []);
const counts = { add: 0, move: 0, remove: 0, touchMeasured: 0 };
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

const randomHost = () => Math.floor(random() * HOSTS);
const hostIndex = (name: string) => Number(name.slice('host-'.length));

/** The next event as a signed record, with the reference updated as the event should leave it. */
function nextEvent(n: number): Uint8Array {
  const roll = random();
  const touch = n % 4 === 0; // one in four: the measured host gains or loses a workload
  if (roll < 0.3) {
    counts.add++;
    const t = Math.floor(random() * TENANTS);
    const id = `ns-new/workload-${added++}`;
    const h = touch ? 0 : randomHost();
    const address = addressOf(t);
    const w: WorkloadView = {
      id,
      tenant: `tenant-${t}`,
      host: `host-${h}`,
      address,
      labels: {},
      link: workloadLinkName(id),
      derivedAddress: false,
    };
    reference.set(id, w);
    idIndex.set(id, ids.length);
    ids.push(id);
    if (h === 0) onMeasured.add(id);
    return signedRecord(hostId(h), id, { tenant: w.tenant, address });
  }
  // Moves and removes: from the measured host when touching it (half the moves go to it instead),
  // one in ten a workload a policy steers, else any workload.
  const pickAway = touch && (roll >= 0.7 || random() < 0.5) && onMeasured.size > 30;
  const policyPick = steered[Math.floor(random() * steered.length)]!;
  const id = pickAway
    ? [...onMeasured][Math.floor(random() * onMeasured.size)]!
    : random() < 0.1 && reference.has(policyPick)
      ? policyPick
      : ids[Math.floor(random() * ids.length)]!;
  const w = reference.get(id)!;
  if (roll < 0.7) {
    counts.move++;
    let h = touch && !pickAway ? 0 : randomHost();
    if (`host-${h}` === w.host) h = (h + 1) % HOSTS;
    reference.set(id, { ...w, host: `host-${h}` });
    if (h === 0) onMeasured.add(id);
    else onMeasured.delete(id);
    return signedRecord(hostId(h), id, { tenant: w.tenant, address: w.address });
  }
  counts.remove++;
  reference.delete(id);
  onMeasured.delete(id);
  dropId(id);
  return signedRecord(hostId(hostIndex(w.host)), id);
}

const eventMs: number[] = [];
/** Per event, the main thread's time waiting for a CPU (run queue, ns counter of /proc schedstat). */
const eventWaitMs: number[] = [];
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
const decodeMs: number[] = [];
const fullMs: number[] = [];
let fullItems = 0;

async function fullRecompute(): Promise<number> {
  globalThis.gc?.();
  const start = performance.now();
  const full = intentOf(computeHostPlan(refView, MEASURED));
  const delta = diffIntents(computer.intent.items, full.items);
  const ms = performance.now() - start;
  if (!emptyDelta(delta))
    throw new Error(
      `incremental intent differs from a full recomputation: ${delta.added.length} added, ${delta.changed.length} changed, ${delta.removed.length} removed (first: ${[...delta.added, ...delta.changed, ...delta.removed][0]?.key})`,
    );
  if (!sameIntent(backend.installed, full.items))
    throw new Error('the backend, from the deltas it was handed, does not hold the full intent');
  fullItems = full.items.size;
  return ms;
}

// A warm-up round (not counted), then rounds of events each followed by the anchor.
for (let round = -1; round < EVENTS / ROUND; round++) {
  globalThis.gc?.();
  for (let n = 0; n < ROUND; n++) {
    const bytes = nextEvent(n);
    s = performance.now();
    const decoded = decodeSigned(bytes, 4096);
    const d = performance.now() - s;
    if (!decoded.ok) throw new Error(`record does not decode: ${decoded.detail}`);
    const record = decoded.value.record;

    const sched0 = schedstat();
    s = performance.now();
    const e = modelEvent(record, (id) => view.workloads.get(id));
    if (e) {
      const delta = e.kind === 'upsert' ? computer.upsertWorkload(e.workload) : computer.removeWorkload(e.id);
      const after = computer.intent;
      await backend.applyDelta(applied, after, delta);
      applied = after;
    }
    const ms = performance.now() - s;
    const sched1 = schedstat();
    if (!e) throw new Error(`record ${record.key} was not turned into an event`);
    if (round >= 0) {
      eventMs.push(ms);
      if (sched0 && sched1) eventWaitMs.push((sched1[1] - sched0[1]) / 1e6);
      decodeMs.push(d);
    }
  }
  const ms = await fullRecompute();
  if (round >= 0) fullMs.push(ms);
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
let local = 0;
for (const w of reference.values()) if (w.host === MEASURED) local++;
const rows = [
  [
    'fabric',
    `${HOSTS} hosts, ${reference.size} workloads, ${TENANTS} tenants, ${POLICIES} policies${FROM_POLICY ? ' (one source-specific)' : ''} (built in ${round(buildMs, 0)} ms)`,
  ],
  [
    'host',
    `${MEASURED}: ${fullItems} intent items, ${local} local workloads; HostIntentComputer built in ${round(constructMs, 0)} ms`,
  ],
  [
    'events',
    `${eventMs.length} timed after ${ROUND} to warm up; all ${counts.add + counts.move + counts.remove}: ${counts.add} adds, ${counts.move} moves, ${counts.remove} removes, ${backend.items} items in ${backend.deltas} deltas handed over`,
  ],
  [
    'event',
    `record -> delta handed over: p50 ${result.event_p50_ms} ms, p99 ${result.event_p99_ms} ms, max ${round(Math.max(...eventMs), 3)} ms`,
  ],
  ...(eventWaitMs.length > 0
    ? [
        [
          'sched',
          `main thread, per event: ${slowEvents.length} events over 1 ms wall, ${slowEvents.filter((i) => eventWaitMs[i]! > 0.5).length} of them waited over 0.5 ms for a core (run-queue wait ${round(
            slowEvents.reduce((t, i) => t + eventWaitMs[i]!, 0),
            0,
          )} ms, read just outside their ${round(
            slowEvents.reduce((t, i) => t + eventMs[i]!, 0),
            0,
          )} ms of wall time); wall less run-queue wait: p50 ${round(median(ownMs), 4)} ms, p99 ${round(quantile(ownMs, 0.99), 4)} ms; load ${loadavg()
            .map((l) => l.toFixed(1))
            .join(' ')} on ${availableParallelism()} cores`,
        ],
      ]
    : []),
  ['decode', `signed record, structural (not timed above): p50 ${round(median(decodeMs), 4)} ms`],
  [
    'full',
    `plan + intent + diff, runs ms ${fullMs.map((m) => round(m, 0)).join(' / ')}; median ${result.full_ms}`,
  ],
  [
    'ratio',
    `full / event p99 = ${round(full / p99, 0)}x, full / event p50 = ${round(full / p50, 0)}x (goal: p99 < 5 ms, >= 20x)`,
  ],
];
for (const [k, v] of rows) process.stdout.write(`${k!.padEnd(8)} ${v}\n`);
process.stdout.write(`${JSON.stringify(result)}\n`);
