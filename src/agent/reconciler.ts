/**
 * The reconciler: gossip view + BGP-learned routes + local workloads -> the SRv6 model -> the host's
 * forwarding intent -> the data-plane backend.
 *
 * Two paths. The full one (at start, every FULL_RECHECK_MS, after a failure, and on any fabric-level
 * change: hosts, tenants, policies, edge routes) rebuilds the model's view and realises the intent in
 * full, so drift is repaired. A workload event (gossip or API) takes the incremental one: the
 * {@link HostIntentComputer} re-plans only what that workload touches and its delta goes to
 * `backend.applyDelta`. Triggers are debounced (2 ms quiet, at most 20 ms after the first of a burst).
 * The data plane keeps what it had when a reconcile fails: a bad view never tears down forwarding.
 */
import type { Logger } from 'pino';
import { type DataplaneBackend, unsupportedReason } from '../dataplane/backend.ts';
import {
  diffIntents,
  emptyDelta,
  type ForwardingIntent,
  type IntentDelta,
  type IntentItem,
} from '../dataplane/intent.ts';
import { IntentHistory } from '../dataplane/intent-history.ts';
import { HostIntentComputer } from '../dataplane/intent-lower.ts';
import type { FabricView as GossipView } from '../gossip/index.ts';
import { prefixContains } from '../srv6/address.ts';
import { buildFabricView, type FabricView, type WorkloadView } from '../srv6/fabric.ts';
import { computeHostPlan, type HostPlan } from '../srv6/pathcompute.ts';
import {
  buildFabricState,
  type FabricStateInput,
  sameWorkloadView,
  type WorkloadContext,
  workloadInputFor,
  workloadViewOf,
} from './fabric-state.ts';
import type { LocalWorkload } from './workloads.ts';

export interface ReconcileReport {
  readonly atMs: number;
  readonly durationMs: number;
  readonly routes: number;
  readonly added: number;
  readonly replaced: number;
  readonly deleted: number;
  readonly skipped: readonly string[];
  /** Whether the intent was realised in full (else a delta was applied, or nothing changed). */
  readonly full?: boolean;
  readonly error?: string;
}

const DEBOUNCE_QUIET_MS = 2;
const DEBOUNCE_MAX_MS = 20;
export const FULL_RECHECK_MS = 30_000;

export interface ReconcilerDeps {
  readonly log: Logger;
  readonly hostName: string;
  readonly backend: DataplaneBackend;
  /** The gossip view now (forces gossip to refresh it; events it raises are collected, not acted on). */
  readonly gossipView: () => GossipView;
  /** The rest of the model's input around a gossip view (self, settings, local workloads, BGP routes). */
  readonly stateInput: (gossip: GossipView) => FabricStateInput;
  /** This host's workload `id` (the local store). */
  readonly localWorkload: (id: string) => LocalWorkload | undefined;
  /** After every successful apply: claims and adverts of what is now in place. */
  readonly afterApply?: (view: FabricView) => Promise<void>;
  readonly fullRecheckMs?: number;
}

interface Planned {
  readonly view: FabricView;
  readonly wanted: ForwardingIntent;
  /** The delta from the intent the backend holds (undefined: realise in full). */
  readonly delta?: IntentDelta;
  /** Entries (items other than attachments) in `wanted`. */
  readonly entries: number;
}

const isEntry = (i: IntentItem) => i.kind !== 'attachment';

export class Reconciler {
  readonly #d: ReconcilerDeps;
  #view: FabricView | undefined;
  #computer: HostIntentComputer | undefined;
  #context: WorkloadContext | undefined;
  /** Workload address (tenant|address) -> id, to refuse a duplicate claim on the incremental path. */
  #addresses = new Map<string, string>();
  #stateSkipped: readonly string[] = [];
  /** Intent items the backend's capabilities exclude, with the reason (left out of what it is given). */
  readonly #refused = new Map<string, string>();
  /** The intent the backend holds (undefined: unknown, the next apply realises in full). */
  #applied: ForwardingIntent | undefined;
  /**
   * The versions of the admitted intent: each event's intent is a snapshot at the cost of its own
   * changes (the backend may keep the one it was handed as `before`).
   */
  #history: IntentHistory | undefined;
  /** Entries in the newest version of #history. */
  #entries = 0;
  /**
   * The workloads the view places on this host, and those moving away from it (their old instance is
   * still here), by id: for the adverts without a walk of them all.
   */
  #onHost = new Map<string, WorkloadView>();
  #backendSkipped: readonly string[] = [];
  #plan: HostPlan | undefined;
  #fullDue = true;
  #fabricDirty = true;
  readonly #dirty = new Set<string>();
  #readingView = false;
  #started = false;
  #paused = false;
  #timer: NodeJS.Timeout | undefined;
  #fullTimer: NodeJS.Timeout | undefined;
  #burstStartMs = 0;
  #running: Promise<ReconcileReport> | undefined;
  #again = false;
  #waiters: Array<(r: ReconcileReport) => void> = [];
  #last: ReconcileReport | undefined;
  /** Observers of every reconcile (metrics). */
  readonly listeners: Array<(r: ReconcileReport) => void> = [];

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
  }

  get view(): FabricView | undefined {
    return this.#view;
  }
  /** The intent the backend was handed last. */
  get applied(): ForwardingIntent | undefined {
    return this.#applied;
  }
  /** The model's plan of this host (computed on demand: the incremental path keeps the intent only). */
  get plan(): HostPlan | undefined {
    if (!this.#view) return undefined;
    this.#plan ??= computeHostPlan(this.#view, this.#d.hostName);
    return this.#plan;
  }
  /** The workloads of the view on this host or moving away from it (kept per event: not a walk of every workload). */
  hostWorkloads(): Iterable<WorkloadView> {
    return this.#onHost.values();
  }
  get lastReport(): ReconcileReport | undefined {
    return this.#last;
  }
  get started(): boolean {
    return this.#started;
  }

  /** Runs the first (full) reconcile and starts the periodic full re-check. */
  async start(): Promise<ReconcileReport> {
    this.#started = true;
    const r = await this.reconcileNow();
    this.#fullTimer = setInterval(() => {
      this.#fullDue = true;
      this.trigger();
    }, this.#d.fullRecheckMs ?? FULL_RECHECK_MS);
    this.#fullTimer.unref();
    return r;
  }

  /** Stops scheduling; waits for a reconcile in progress. */
  async stop(): Promise<void> {
    this.#started = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearInterval(this.#fullTimer);
    await this.settled();
  }

  /** Draining: no more repairs (the host takes its own state down on purpose). */
  async pause(): Promise<void> {
    this.#paused = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearInterval(this.#fullTimer);
    await this.settled();
  }

  /** Resolves when no reconcile is running (the filters a reconcile wanted are then in place). */
  async settled(): Promise<void> {
    await this.#running?.catch(() => undefined);
  }

  /** The backend no longer holds what was applied (it was flushed). */
  forget(): void {
    this.#applied = undefined;
    this.#fullDue = true;
  }

  // ---- events ----

  /** A workload changed (gossip or API): re-planned incrementally at the next reconcile. */
  workloadChanged(id: string): void {
    this.#dirty.add(id);
    this.trigger();
  }

  /** As workloadChanged, for a caller that runs the reconcile itself (reconcileNow). */
  noteWorkload(id: string): void {
    this.#dirty.add(id);
  }

  /** Hosts, tenants, policies or edge routes changed: the next reconcile takes the full path. */
  fabricChanged(): void {
    this.#fabricDirty = true;
    this.trigger();
  }

  /** Schedules a reconcile (debounced); ignored while reading the view or when stopped or paused. */
  trigger(): void {
    if (this.#readingView || !this.#started || this.#paused) return;
    const now = performance.now();
    if (this.#timer) clearTimeout(this.#timer);
    else this.#burstStartMs = now;
    const wait = Math.max(0, Math.min(DEBOUNCE_QUIET_MS, this.#burstStartMs + DEBOUNCE_MAX_MS - now));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.reconcileNow();
    }, wait);
  }

  /** Runs a reconcile now (or right after the one in progress) and resolves with its report. */
  reconcileNow(): Promise<ReconcileReport> {
    if (this.#running) {
      this.#again = true;
      return new Promise((resolve) => this.#waiters.push(resolve));
    }
    this.#running = this.#reconcile().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        const waiters = this.#waiters.splice(0);
        void this.reconcileNow().then((r) => {
          for (const w of waiters) w(r);
        });
      }
    });
    return this.#running;
  }

  // ---- planning ----

  /** The gossip view; the change events reading it raises schedule no second reconcile. */
  #readView(): GossipView {
    this.#readingView = true;
    try {
      return this.#d.gossipView();
    } finally {
      this.#readingView = false;
    }
  }

  /** Keeps what the backend can realise; records each refused item with its reason. */
  #admit(item: IntentItem | undefined): IntentItem | undefined {
    if (!item) return undefined;
    const why = unsupportedReason(this.#d.backend.capabilities, item);
    if (why) {
      this.#refused.set(item.key, why);
      return undefined;
    }
    this.#refused.delete(item.key);
    return item;
  }

  #planFull(gossip: GossipView): Planned {
    const input = this.#d.stateInput(gossip);
    const state = buildFabricState(input);
    // The backend says what this host can run (End.DT4/DT46 need VRF devices or the eBPF programs).
    const caps = this.#d.backend.capabilities;
    const host = this.#d.hostName;
    const view = buildFabricView({
      ...state.input,
      hosts: state.input.hosts.map((h) =>
        h.name === host ? { ...h, capabilities: { vrf: caps.ipv4Inner, hmac: caps.hmac } } : h,
      ),
    });
    const computer = new HostIntentComputer(view, host);
    this.#refused.clear();
    const items = new Map<string, IntentItem>();
    for (const item of computer.intent.items.values()) if (this.#admit(item)) items.set(item.key, item);
    this.#computer = computer;
    this.#context = state.context;
    this.#stateSkipped = state.skipped;
    this.#addresses = new Map();
    this.#onHost = new Map();
    for (const w of view.workloads.values()) {
      this.#addresses.set(`${w.tenant}|${w.address}`, w.id);
      if (servedHere(w, host)) this.#onHost.set(w.id, w);
    }
    this.#dirty.clear();
    let entries = 0;
    for (const i of items.values()) if (isEntry(i)) entries++;
    // The history owns `items` from here (changed in place by later events); what is handed out is its snapshot.
    this.#history = new IntentHistory(items);
    const wanted = { host, items: this.#history.current() };
    const applied = this.#applied;
    return {
      view,
      wanted,
      entries,
      ...(applied && !this.#fullDue ? { delta: diffIntents(applied.items, wanted.items) } : {}),
    };
  }

  /**
   * The dirty workloads through the intent computer: the delta of only the items they touch. Undefined
   * when one of them needs the full path (a host the view does not know, an address outside its
   * tenant or held by another workload: the full path reports those as the model does).
   */
  #planIncremental(gossip: GossipView, ids: readonly string[]): Planned | undefined {
    const view = this.#view!;
    const computer = this.#computer!;
    const applied = this.#applied!;
    const ctx: WorkloadContext = {
      ...this.#context!,
      gossip,
      local: { get: (id: string) => this.#d.localWorkload(id) },
    };
    const skipped: string[] = [];
    const touched = new Set<string>();
    for (const id of ids) {
      const input = workloadInputFor(id, ctx, skipped);
      const current = view.workloads.get(id);
      let delta: IntentDelta;
      if (!input) {
        if (!current) continue;
        this.#addresses.delete(`${current.tenant}|${current.address}`);
        this.#onHost.delete(id);
        delta = computer.removeWorkload(id);
      } else {
        const next = workloadViewOf(input);
        const tenant = view.tenants.get(next.tenant);
        const holder = this.#addresses.get(`${next.tenant}|${next.address}`);
        if (
          !view.hosts.has(next.host) ||
          !tenant?.prefixes.some((p) => prefixContains(p, next.address)) ||
          (holder !== undefined && holder !== id)
        )
          return undefined;
        if (current && sameWorkloadView(current, next)) continue;
        if (current) this.#addresses.delete(`${current.tenant}|${current.address}`);
        this.#addresses.set(`${next.tenant}|${next.address}`, id);
        if (servedHere(next, this.#d.hostName)) this.#onHost.set(id, next);
        else this.#onHost.delete(id);
        delta = computer.upsertWorkload(next);
      }
      for (const list of [delta.added, delta.changed, delta.removed])
        for (const i of list) touched.add(i.key);
    }
    if (skipped.length > 0) this.#stateSkipped = [...new Set([...this.#stateSkipped, ...skipped])];
    const before = new Map<string, IntentItem>();
    const after = new Map<string, IntentItem>();
    const now = computer.intent.items;
    for (const key of touched) {
      const old = applied.items.get(key);
      if (old) before.set(key, old);
      this.#refused.delete(key);
      const item = this.#admit(now.get(key));
      if (item) after.set(key, item);
    }
    const delta = diffIntents(before, after);
    if (emptyDelta(delta)) return { view, wanted: applied, delta, entries: this.#entries };
    const history = this.#history!;
    history.apply(delta);
    let entries = this.#entries;
    for (const i of delta.removed) if (isEntry(i)) entries--;
    for (const i of delta.added) if (isEntry(i)) entries++;
    return { view, wanted: { host: applied.host, items: history.current() }, delta, entries };
  }

  // ---- applying ----

  async #apply(p: Planned): Promise<{ added: number; replaced: number; deleted: number; full: boolean }> {
    const backend = this.#d.backend;
    const applied = this.#applied;
    if (p.delta && applied) {
      // Nothing to write: the backend keeps the intent object it was handed (it knows it by identity).
      if (emptyDelta(p.delta)) return { added: 0, replaced: 0, deleted: 0, full: false };
      try {
        const r = await backend.applyDelta(applied, p.wanted, p.delta);
        this.#applied = p.wanted;
        this.#backendSkipped = r.skipped ?? [];
        return { added: r.added, replaced: r.replaced, deleted: r.deleted, full: false };
      } catch (e) {
        this.#d.log.warn({ err: e }, 'incremental data-plane update failed; realising the intent in full');
      }
    }
    this.#applied = undefined;
    const result = await backend.realise(p.wanted);
    this.#fullDue = false;
    if (result.conflicts.length === 0) this.#applied = p.wanted;
    else this.#d.log.warn({ conflicts: result.conflicts.slice(0, 10) }, 'objects in the way were left alone');
    this.#backendSkipped = result.skipped ?? [];
    return { added: result.added, replaced: result.replaced, deleted: result.deleted, full: true };
  }

  async #reconcile(): Promise<ReconcileReport> {
    const started = performance.now();
    let report: ReconcileReport;
    try {
      const gossip = this.#readView();
      const ids = [...this.#dirty];
      this.#dirty.clear();
      const incremental =
        !this.#fabricDirty && !this.#fullDue && this.#computer !== undefined && this.#applied !== undefined;
      this.#fabricDirty = false;
      let planned = incremental ? this.#planIncremental(gossip, ids) : undefined;
      const path = planned ? 'incremental' : 'full';
      if (!planned) {
        if (incremental) this.#d.log.info({ workloads: ids }, 'workload event needs the full path');
        planned = this.#planFull(gossip);
      }
      this.#view = planned.view;
      this.#entries = planned.entries;
      this.#plan = undefined;
      const result = await this.#apply(planned);
      // Forwarding and filters are in place: claim and announce.
      await this.#d.afterApply?.(planned.view);
      const skipped = [...this.#stateSkipped, ...this.#refused.values(), ...this.#backendSkipped];
      report = {
        atMs: Date.now(),
        durationMs: performance.now() - started,
        routes: planned.entries,
        added: result.added,
        replaced: result.replaced,
        deleted: result.deleted,
        skipped,
        full: result.full,
      };
      if (result.added + result.replaced + result.deleted > 0 || (result.full && skipped.length > 0)) {
        this.#d.log.info({ ...report, planned: path, skipped: skipped.slice(0, 10) }, 'reconciled');
      }
    } catch (e) {
      // The next one starts over from the full path.
      this.#fabricDirty = true;
      this.#fullDue = true;
      report = {
        atMs: Date.now(),
        durationMs: performance.now() - started,
        routes: 0,
        added: 0,
        replaced: 0,
        deleted: 0,
        skipped: [],
        error: (e as Error).message,
      };
      this.#d.log.error({ err: e }, 'reconcile failed; data-plane state left as it was');
    }
    this.#last = report;
    for (const l of this.listeners) l(report);
    return report;
  }
}

/** On `host`, or moving away from it (its old instance still there, redirecting to the new one). */
function servedHere(w: WorkloadView, host: string): boolean {
  return w.host === host || (w.formerHosts?.includes(host) ?? false);
}
