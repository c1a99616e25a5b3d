/**
 * The per-host agent: the one place where the parts are wired together. It starts the data plane,
 * gossip, BGP and the reconcile loop in that order and stops them in reverse; everything else is a
 * component with explicit dependencies.
 *
 * Reconcile: gossip view + BGP-learned routes + local workloads -> the SRv6 model -> desired kernel
 * state and desired BGP advertisements, applied as minimal changes, debounced under bursts and fully
 * re-checked periodically so drift is repaired. A restart never flushes: the kernel keeps forwarding
 * while the agent is down, and the first reconcile after it only changes what differs.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Logger } from 'pino';
import type { Bgp } from '../bgp/index.ts';
import { bgp as bgpComponent, type ExternalRoute, type VpnAdvert } from '../bgp/index.ts';
import { parseRd } from '../bgp/update.ts';
import { unsupportedReason } from '../dataplane/backend.ts';
import { type Dataplane, LinuxDataplane, mssFor, openDataplane } from '../dataplane/index.ts';
import {
  diffIntents,
  emptyDelta,
  type ForwardingIntent,
  type IntentItem,
  sidKey,
} from '../dataplane/intent.ts';
import { intentOf } from '../dataplane/intent-lower.ts';
import {
  BackendUnavailableError,
  type OpenBackendOptions,
  type OpenedBackend,
  openBackend,
  type PreparableBackend,
} from '../dataplane/open-backend.ts';
import {
  type Gossip,
  gossip as gossipComponent,
  loadOrCreateIdentity,
  operatorKeyFromText,
} from '../gossip/index.ts';
import {
  formatIpv6,
  formatPrefix,
  type Ipv6Address,
  type Ipv6Prefix,
  ipv6FromBytes,
  ipv6ToBytes,
  parseIpv6,
  parsePrefix,
  prefixContains,
} from '../srv6/address.ts';
import { IANA_BEHAVIOR_CODEPOINT } from '../srv6/behavior.ts';
import { buildFabricView, type FabricView, workloadLinkName, workloadMtu } from '../srv6/fabric.ts';
import { allocateAddress } from '../srv6/ipam.ts';
import { deriveLocators } from '../srv6/locator.ts';
import { computeHostPlan, type HostPlan, routeKey } from '../srv6/pathcompute.ts';
import { attachWorkload, detachWorkload, GATEWAY } from './attach.ts';
import type { AgentSettings } from './config.ts';
import { AgentError, checkIfname } from './errors.ts';
import { buildFabricState, type EdgePeer } from './fabric-state.ts';
import { membershipGossipInit, membershipSummary, OPEN_MEMBERSHIP_WARNING } from './membership.ts';
import { checkNetworkNamespace } from './netns.ts';
import { checkUnderlayInterface } from './underlay.ts';
import { type LocalWorkload, LocalWorkloadStore } from './workloads.ts';

export const AGENT_PROTOCOL = 'segmesh/1';

export { AgentError } from './errors.ts';

export interface AgentComponents {
  readonly logger: Logger;
  /** Injected in tests; the agent opens the host's own otherwise. */
  readonly dataplane?: Dataplane;
  /** Opens the data-plane backend (tests inject one); open-backend.ts's choice by default. */
  readonly openBackend?: (o: OpenBackendOptions) => Promise<OpenedBackend>;
}

export interface AddWorkloadInput {
  readonly identity?: string;
  readonly tenant: string;
  readonly netns: string;
  readonly ifname?: string;
  readonly containerId?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly address?: string;
}

export interface AddWorkloadResult {
  readonly workload: LocalWorkload;
  readonly gateway: string;
  readonly moved: boolean;
  readonly existing: boolean;
}

export interface ReconcileReport {
  readonly atMs: number;
  readonly durationMs: number;
  readonly routes: number;
  readonly added: number;
  readonly replaced: number;
  readonly deleted: number;
  readonly skipped: readonly string[];
  readonly error?: string;
}

/**
 * Debounce: a reconcile starts once triggers have been quiet for DEBOUNCE_QUIET_MS, and at the latest
 * DEBOUNCE_MAX_MS after the first trigger of a burst. A lone change (a workload moved) is acted on
 * within a few milliseconds; a burst (anti-entropy applying hundreds of records) makes one reconcile.
 */
const DEBOUNCE_QUIET_MS = 2;
const DEBOUNCE_MAX_MS = 20;
const FULL_RECHECK_MS = 30_000;
/** Drain: the longest wait for traffic to move away (`segmesh drain --wait`), and how still is still. */
const DRAIN_WAIT_MS = 10_000;
const DRAIN_MIN_MS = 1_000;
const DRAIN_QUIET_MS = 2_000;
const DRAIN_SETTLE_MS = 1_000;

export interface DrainReport {
  readonly withdrawn: number;
  readonly removed: number;
  readonly gracefulShutdownPaths: number;
  readonly waitedMs: number;
  readonly trafficStopped: boolean;
}

export class Agent {
  readonly settings: AgentSettings;
  /** The host's logger; each part adds its own `component` (a child of a child would repeat the key). */
  readonly #hostLog: Logger;
  readonly #log: Logger;
  readonly #store: LocalWorkloadStore;
  #dp: Dataplane | undefined;
  readonly #injectedDp: Dataplane | undefined;
  readonly #openBackend: (o: OpenBackendOptions) => Promise<OpenedBackend>;
  #backend: PreparableBackend | undefined;
  #backendInfo: { name: string; why: string } | undefined;
  #gossip: Gossip | undefined;
  #bgp: Bgp | undefined;
  #locator: Ipv6Prefix | undefined;
  readonly #external = new Map<string, ExternalRoute>();
  #view: FabricView | undefined;
  #plan: HostPlan | undefined;
  #burstStartMs = 0;
  #readingView = false;
  /** The intent the backend holds (undefined: unknown, the next reconcile realises in full). */
  #applied: ForwardingIntent | undefined;
  /** What the backend could not realise of #applied, with reasons (reported by every reconcile). */
  #backendSkipped: readonly string[] = [];
  #fullDue = true;
  #lastHostAdvert = '';
  #lastBgpLocators: string | undefined;
  /** Workloads attached and waiting for their routes, to be claimed in gossip right after them. */
  readonly #claims = new Set<string>();
  #lastBgpTenants: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #fullTimer: NodeJS.Timeout | undefined;
  #running: Promise<ReconcileReport> | undefined;
  #again = false;
  #waiters: Array<(r: ReconcileReport) => void> = [];
  #lastReport: ReconcileReport | undefined;
  #started = false;
  #draining = false;
  /** Aborted by stop(): a drain in progress gives up at its next step instead of holding the process. */
  readonly #stopping = new AbortController();
  /** Observer of every reconcile (metrics). */
  onReconcile: ((report: ReconcileReport) => void) | undefined;

  constructor(components: AgentComponents, settings: AgentSettings) {
    this.settings = settings;
    this.#hostLog = components.logger.child({ host: settings.hostName });
    this.#log = this.#hostLog.child({ component: 'agent' });
    this.#injectedDp = components.dataplane;
    this.#openBackend = components.openBackend ?? openBackend;
    this.#store = new LocalWorkloadStore(`${settings.stateDir}/workloads.json`);
  }

  get hostId(): string {
    return this.#gossip?.hostId ?? '';
  }
  get locator(): Ipv6Prefix | undefined {
    return this.#locator;
  }
  get view(): FabricView | undefined {
    return this.#view;
  }
  get plan(): HostPlan | undefined {
    return this.#plan;
  }
  get gossip(): Gossip | undefined {
    return this.#gossip;
  }
  get bgp(): Bgp | undefined {
    return this.#bgp;
  }
  get dataplane(): Dataplane | undefined {
    return this.#dp;
  }
  get backend(): PreparableBackend | undefined {
    return this.#backend;
  }
  /** The data-plane backend in use and why it was chosen (`segmesh status`). */
  get backendInfo(): { readonly name: string; readonly why: string } | undefined {
    return this.#backendInfo;
  }
  get lastReconcile(): ReconcileReport | undefined {
    return this.#lastReport;
  }
  get ready(): boolean {
    return this.#started && this.#lastReport !== undefined && this.#lastReport.error === undefined;
  }
  localWorkloads(): LocalWorkload[] {
    return this.#store.list();
  }

  async start(): Promise<void> {
    const s = this.settings;
    await mkdir(s.stateDir, { recursive: true, mode: 0o750 });
    await this.#store.load();

    // 1. Data plane: the backend the config asks for (auto: kernel seg6 where the kernel has it, else
    // eBPF), then its host settings (forwarding switches, encapsulation source).
    this.#dp =
      this.#injectedDp ??
      new LinuxDataplane({
        maxSegments: s.spec.dataplane.maxSegments,
        sysctlStateFile: `${s.stateDir}/sysctls.json`,
      });
    await checkUnderlayInterface(this.#dp, s.underlayDevice, s.file);
    const mtu = workloadMtu(
      s.spec.dataplane.underlayMtu,
      s.spec.dataplane.maxSegments,
      s.spec.dataplane.hmac !== undefined,
    );
    let opened: OpenedBackend;
    try {
      opened = await this.#openBackend({
        setting: s.spec.dataplane.backend,
        dp: this.#dp,
        underlayDevice: s.underlayDevice,
        source: s.underlay,
        mss: mssFor(mtu),
        pinDir: s.spec.dataplane.bpfPinDir,
        needs: { hmac: s.spec.dataplane.hmac !== undefined },
      });
    } catch (e) {
      if (e instanceof BackendUnavailableError)
        throw new AgentError('precondition', `${s.file}: ${e.message}`);
      throw e;
    }
    this.#backend = opened.backend;
    this.#backendInfo = { name: opened.name, why: opened.why };
    this.#log.info({ backend: opened.name, why: opened.why }, 'data-plane backend');
    await this.#backend.prepare();

    // 2. Locator: configured, or derived from the fabric block once and kept.
    this.#locator = s.locator ?? (await this.#derivedLocator());

    // 3. Gossip.
    const privateKey = await loadOrCreateIdentity(`${s.stateDir}/identity.key`);
    const operatorKey = s.spec.operatorKeys[0] ? operatorKeyFromText(s.spec.operatorKeys[0]) : undefined;
    const hostId = peerIdFromPrivateKey(privateKey).toString();
    // On every start: an open fabric must never be open unnoticed.
    if (s.membership.mode === 'open') this.#log.warn({ membership: 'open' }, OPEN_MEMBERSHIP_WARNING);
    else this.#log.info({ membership: membershipSummary(s.membership) }, 'gossip membership');
    this.#gossip = gossipComponent({
      privateKey,
      listen: s.spec.gossip.listen,
      bootstrap: s.spec.gossip.bootstrap,
      ...(operatorKey ? { operatorKey } : {}),
      ...(await membershipGossipInit(s.membership, hostId)),
      suspectAfterMs: s.suspectAfterMs,
      deadAfterMs: s.deadAfterMs,
      tombstoneTtlMs: s.tombstoneTtlMs,
      sameIpPeers: true,
    })({
      logger: this.#hostLog, // gossip names itself (component: gossip)
      probe: (host) => this.#probeHost(host.record.underlayAddress),
    });
    for (const event of [
      'host-up',
      'host-suspect',
      'host-down',
      'workload-added',
      'workload-moved',
      'workload-removed',
      'policy-changed',
      'record',
    ]) {
      // Events raised while the reconcile itself reads the view describe what it is about to apply.
      this.#gossip.addEventListener(event as 'record', () => {
        if (!this.#readingView) this.trigger();
      });
    }
    this.#gossip.addEventListener('conflict-lost', (e) => {
      this.#log.warn({ conflict: e.detail }, 'this host lost an address conflict: the other claim is newer');
    });
    await this.#gossip.start();
    // A restarted agent must not reconcile against an empty view: that would delete the routes to
    // every other host until gossip refilled it. Wait for the first anti-entropy exchange to settle.
    await this.#awaitGossipSync(Math.max(5_000, s.suspectAfterMs * 2));
    // Claim our workloads again (gossip withdraws records of ours that a restarted host does not
    // re-own), but never over a newer claim elsewhere: that workload moved while we were away.
    await this.#republishOperatorRecords();
    const known = this.#gossip.view().workloads;
    for (const w of this.#store.list()) {
      const winner = known.get(w.id);
      if (!winner || winner.hostId === this.hostId) await this.#publishWorkload(w);
    }

    // 4. BGP toward the edge.
    if (s.spec.bgp) {
      const b = s.spec.bgp;
      this.#bgp = bgpComponent({
        asn: b.asn,
        routerId: b.routerId,
        peers: b.peers.map((p) => ({
          address: p.address,
          asn: p.asn,
          ...(p.password ? { password: p.password } : {}),
          families: p.families,
          maxPrefixes: p.maxPrefixes,
          locators: p.locators,
        })),
        nextHop: formatIpv6(s.underlay),
        locator: formatPrefix(this.#locator),
        transposition: b.transposition,
        // The tenants gossip already knows: an adopted gobgpd's routes are judged against them before
        // the first reconcile (without them that reconcile would delete every route from the edge).
        tenants: [...this.#gossip.view().tenants.values()]
          .filter((t) => t.record.routeTargets[0])
          .map((t) => ({ name: t.record.name, routeTarget: t.record.routeTargets[0]! })),
        fabricLocators: [
          formatPrefix(this.#locator),
          ...[...this.#gossip.view().hosts.values()].flatMap((h) =>
            h.record.locator
              ? [
                  formatPrefix({
                    address: ipv6FromBytes(h.record.locator.address),
                    length: h.record.locator.length,
                  }),
                ]
              : [],
          ),
        ],
        deadIntervalMs: s.deadAfterMs,
        sidecar:
          b.gobgpd.mode === 'managed'
            ? { mode: 'managed', binary: b.gobgpd.binary, runDir: `${s.stateDir}/gobgpd` }
            : { mode: 'attach', target: b.gobgpd.api },
      })({ logger: this.#hostLog }); // names itself (component: bgp)
      this.#bgp.on('route:add', (r) => {
        this.#external.set(r.key, r);
        this.trigger();
      });
      this.#bgp.on('route:delete', (r) => {
        this.#external.delete(r.key);
        this.trigger();
      });
      await this.#bgp.start();
    }

    this.#started = true;
    await this.reconcileNow();
    this.#fullTimer = setInterval(() => {
      this.#fullDue = true;
      this.trigger();
    }, FULL_RECHECK_MS);
    this.#fullTimer.unref();
    this.#log.info({ locator: formatPrefix(this.#locator), hostId: this.hostId }, 'agent started');
  }

  /**
   * Stops the agent and leaves forwarding in place: kernel state and gobgpd stay (a restart adopts
   * them). `segmesh drain` is the way to leave the fabric.
   */
  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#started = false;
    clearTimeout(this.#timer);
    clearInterval(this.#fullTimer);
    await this.#running?.catch(() => undefined);
    await this.#bgp?.stop();
    await this.#gossip?.stop();
    // Releases fds only: routes, maps, pinned programs stay and forward.
    await this.#backend?.close().catch(() => undefined);
    if (!this.#injectedDp) await this.#dp?.close();
    this.#log.info('agent stopped (kernel state and gobgpd left running)');
  }

  /**
   * The data-plane probe behind liveness: a host gossip cannot hear is kept (its routes stale but in
   * place) as long as its underlay answers; a gossip-only partition must not take down forwarding.
   * One ICMPv6 echo with the system's ping: a probe per suspect host, not a per-packet path.
   */
  #probeHost(underlay: Uint8Array): Promise<boolean> {
    if (underlay.length !== 16) return Promise.resolve(false);
    const address = formatIpv6(ipv6FromBytes(underlay));
    return new Promise((resolve) => {
      execFile('ping', ['-6', '-n', '-q', '-c', '1', '-W', '1', address], { timeout: 3_000 }, (err) =>
        resolve(!err),
      );
    });
  }

  async #awaitGossipSync(timeoutMs: number): Promise<void> {
    const g = this.#gossip!;
    if (this.settings.spec.gossip.bootstrap.length === 0) return;
    const started = Date.now();
    let last = started;
    let heard = false;
    const onRecord = (e: CustomEvent<{ source: string }>) => {
      last = Date.now();
      if (e.detail.source !== 'local') heard = true;
    };
    g.addEventListener('record', onRecord);
    try {
      while (Date.now() - started < timeoutMs) {
        if (heard && g.stats().antiEntropy.runs > 0 && Date.now() - last > 300) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      g.removeEventListener('record', onRecord);
    }
    this.#log.info({ ms: Date.now() - started, synced: heard }, 'gossip view ready for the first reconcile');
  }

  async #derivedLocator(): Promise<Ipv6Prefix> {
    const file = `${this.settings.stateDir}/locator`;
    try {
      return parsePrefix((await readFile(file, 'utf8')).trim());
    } catch {}
    const block = this.settings.locatorBlock;
    if (!block) throw new AgentError('invalid', 'set locator or locatorBlock in the agent configuration');
    const locator = deriveLocators(block, this.settings.structure, [this.settings.hostName]).get(
      this.settings.hostName,
    )!;
    await writeFile(file, `${formatPrefix(locator)}\n`);
    return locator;
  }

  // ---- reconcile ----

  /** Schedules a reconcile (debounced: 2 ms of quiet, at most 20 ms after the first trigger). */
  trigger(): void {
    // While draining, the agent stops repairing: it is taking its state down on purpose.
    if (!this.#started || this.#draining) return;
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

  #edgePeers(): EdgePeer[] {
    return (this.settings.spec.bgp?.peers ?? []).map((p) => ({
      address: parseIpv6(p.address),
      locators: p.locators.map(parsePrefix),
    }));
  }

  /**
   * Hands the wanted intent to the backend: as a delta against the intent it last realised when that
   * is known (no dump: a moved workload costs one write per host), else in full (the backend compares
   * with what is installed, so drift is repaired). In full at start, every FULL_RECHECK_MS, after a
   * conflict, and whenever a delta write fails.
   */
  async #apply(wanted: ForwardingIntent): Promise<{
    added: number;
    replaced: number;
    deleted: number;
    full: boolean;
    conflicts: number;
    skipped: readonly string[];
  }> {
    const backend = this.#backend!;
    const applied = this.#applied;
    if (!this.#fullDue && applied !== undefined) {
      const delta = diffIntents(applied.items, wanted.items);
      if (emptyDelta(delta))
        return {
          added: 0,
          replaced: 0,
          deleted: 0,
          full: false,
          conflicts: 0,
          skipped: this.#backendSkipped,
        };
      try {
        const r = await backend.applyDelta(applied, wanted, delta);
        this.#applied = wanted;
        this.#backendSkipped = r.skipped ?? [];
        return {
          added: r.added,
          replaced: r.replaced,
          deleted: r.deleted,
          full: false,
          conflicts: 0,
          skipped: this.#backendSkipped,
        };
      } catch (e) {
        this.#log.warn({ err: e }, 'incremental data-plane update failed; realising the intent in full');
      }
    }
    this.#applied = undefined;
    const result = await backend.realise(wanted);
    this.#fullDue = false;
    if (result.conflicts.length === 0) this.#applied = wanted;
    else this.#log.warn({ conflicts: result.conflicts.slice(0, 10) }, 'objects in the way were left alone');
    this.#backendSkipped = result.skipped ?? [];
    return { ...result, full: true, conflicts: result.conflicts.length, skipped: this.#backendSkipped };
  }

  /** The intent without what the backend cannot realise (each refused item named in the report). */
  #realisable(intent: ForwardingIntent, skipped: string[]): ForwardingIntent {
    const caps = this.#backend!.capabilities;
    let items: Map<string, IntentItem> | undefined;
    for (const item of intent.items.values()) {
      const why = unsupportedReason(caps, item);
      if (!why) continue;
      items ??= new Map(intent.items);
      items.delete(item.key);
      skipped.push(why);
    }
    return items ? { host: intent.host, items } : intent;
  }

  /** The gossip view; the change events reading it raises trigger no second reconcile. */
  #viewForReconcile(): ReturnType<Gossip['view']> {
    this.#readingView = true;
    try {
      return this.#gossip!.view();
    } finally {
      this.#readingView = false;
    }
  }

  async #reconcile(): Promise<ReconcileReport> {
    const started = performance.now();
    const s = this.settings;
    let report: ReconcileReport;
    try {
      const state = buildFabricState({
        self: { name: s.hostName, hostId: this.hostId, underlay: s.underlay, locator: this.#locator! },
        structure: s.structure,
        ...(s.locatorBlock ? { locatorBlock: s.locatorBlock } : {}),
        maxSegments: s.spec.dataplane.maxSegments,
        underlayMtu: s.spec.dataplane.underlayMtu,
        ...(s.spec.dataplane.hmac ? { hmacKeyId: s.spec.dataplane.hmac.keyId } : {}),
        gossip: this.#viewForReconcile(),
        local: this.#store.list(),
        external: [...this.#external.values()],
        edgePeers: this.#edgePeers(),
      });
      // The backend says what this host can run (End.DT4/DT46 need VRF devices or the eBPF programs).
      const caps = this.#backend!.capabilities;
      const view = buildFabricView({
        ...state.input,
        hosts: state.input.hosts.map((h) =>
          h.name === s.hostName ? { ...h, capabilities: { vrf: caps.ipv4Inner, hmac: caps.hmac } } : h,
        ),
      });
      const plan = computeHostPlan(view, s.hostName);
      const skipped = [...state.skipped];
      const intent = this.#realisable(intentOf(plan), skipped);
      const result = await this.#apply(intent);
      skipped.push(...result.skipped);
      this.#view = view;
      this.#plan = plan;
      // Forwarding and filters are in place: claim the workloads attached since (gossip) and announce
      // (host record, BGP) side by side.
      await Promise.all([this.#publishClaims(), this.#advertise(view)]);
      let entries = 0;
      for (const item of intent.items.values()) if (item.kind !== 'attachment') entries++;
      report = {
        atMs: Date.now(),
        durationMs: performance.now() - started,
        routes: entries,
        added: result.added,
        replaced: result.replaced,
        deleted: result.deleted,
        skipped,
      };
      if (result.added + result.replaced + result.deleted > 0 || skipped.length > 0) {
        this.#log.info({ ...report, full: result.full, skipped: skipped.slice(0, 10) }, 'reconciled');
      }
    } catch (e) {
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
      // The data plane keeps what it had: a bad view never tears down working forwarding.
      this.#log.error({ err: e }, 'reconcile failed; data-plane state left as it was');
    }
    this.#lastReport = report;
    this.onReconcile?.(report);
    return report;
  }

  /**
   * Kept for callers that wait for the filters: the backend puts them in place within each reconcile
   * (the kernel backend's nft ruleset, the eBPF backend's endpoint entries), so they are settled when
   * the reconcile that wanted them returned.
   */
  async isolationSettled(): Promise<void> {
    await this.#running?.catch(() => undefined);
  }

  /** Our own host record and the VPN routes of our workloads, when they changed. */
  async #advertise(view: FabricView): Promise<void> {
    const self = view.hosts.get(this.settings.hostName)!;
    const sids = self.sids.all.map((x) => ({
      address: ipv6ToBytes(x.sid),
      behavior: IANA_BEHAVIOR_CODEPOINT[x.behavior],
      tenant: x.tenant ?? '',
    }));
    const advert = {
      name: this.settings.hostName,
      underlayAddress: ipv6ToBytes(this.settings.underlay),
      locator: { address: ipv6ToBytes(self.locator.address), length: self.locator.length },
      sids,
      endSid: ipv6ToBytes(self.sids.end.sid),
      ...(this.#draining ? { leaving: true } : {}),
    };
    const text = JSON.stringify(advert, (_k, v) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
    );
    if (text !== this.#lastHostAdvert) {
      await this.#gossip!.publishHost(advert as Parameters<Gossip['publishHost']>[0]);
      this.#lastHostAdvert = text;
    }
    if (!this.#bgp) return;
    const b = this.settings.spec.bgp!;
    // Gossip is the authority for the fabric: a BGP route whose SID lies in a fabric locator is dropped.
    // Both settings are handed over only when they change: each re-judges every learned route, and the
    // tenants rewrite gobgpd's import policy (several API calls), which must not sit on every reconcile.
    const locators = [...view.hosts.values()].map((h) => formatPrefix(h.locator));
    if (locators.join() !== this.#lastBgpLocators) {
      this.#bgp.setFabricLocators(locators);
      this.#lastBgpLocators = locators.join();
    }
    const tenants = [...view.tenants.values()]
      .filter((t) => t.routeTarget)
      .map((t) => ({ name: t.name, routeTarget: t.routeTarget! }));
    const tenantsKey = JSON.stringify(tenants);
    if (tenantsKey !== this.#lastBgpTenants) {
      await this.#bgp.setTenants(tenants);
      this.#lastBgpTenants = tenantsKey;
    }
    const adverts: VpnAdvert[] = [];
    for (const w of view.workloads.values()) {
      if (w.host !== this.settings.hostName) continue;
      const t = view.tenants.get(w.tenant)!;
      if (!t.routeTarget) continue;
      const sid = self.sids.tenantDelivery.get(w.tenant)!;
      adverts.push({
        tenant: w.tenant,
        // RD per host and tenant: the host's underlay-derived router id keeps hosts apart.
        rd: parseRd(`${b.routerId}:${t.id}`),
        prefix: { address: w.address, length: 128 },
        sid: sid.sid,
        behavior: 'End.DT6',
        structure: view.structure,
        routeTargets: [parseRd(t.routeTarget)],
        nextHop: this.settings.underlay,
      });
    }
    await this.#bgp.setAdverts(adverts);
  }

  // ---- workloads ----

  /** Publishes the claims of workloads attached since the last reconcile (their routes are in place). */
  async #publishClaims(): Promise<void> {
    await Promise.all(
      [...this.#claims].map(async (id) => {
        const w = this.#store.get(id);
        if (w) await this.#publishWorkload(w);
        this.#claims.delete(id); // kept when publishing failed: addWorkload tries again
      }),
    );
  }

  async #publishWorkload(w: LocalWorkload): Promise<void> {
    const delivery = this.#view?.hosts.get(this.settings.hostName)?.sids.tenantDelivery.get(w.tenant)?.sid;
    await this.#gossip!.publishWorkload({
      workloadId: w.id,
      tenant: w.tenant,
      opaqueAddress: ipv6ToBytes(parseIpv6(w.address)),
      ...(delivery !== undefined ? { deliverySid: ipv6ToBytes(delivery) } : {}),
    });
  }

  async addWorkload(req: AddWorkloadInput): Promise<AddWorkloadResult> {
    if (this.#draining) {
      throw new AgentError(
        'precondition',
        'this host is draining (segmesh drain): start the workload on another host',
      );
    }
    const view = this.#gossip!.view();
    const tenantRecord = [...view.tenants.values()].find((t) => t.record.name === req.tenant)?.record;
    if (!tenantRecord) {
      throw new AgentError(
        'invalid',
        `unknown tenant ${req.tenant}; tenants come signed by the operator (segmesh policy apply FILE)`,
      );
    }
    checkIfname(req.ifname || 'eth0');
    // Before anything is attached: the path must be a network namespace, and not the host's own.
    const netns = await checkNetworkNamespace(req.netns);
    const sticky = Boolean(req.identity);
    const containerId = req.containerId ?? '';
    const id = req.identity || `anon/${containerId || req.netns}`;
    const ifname = req.ifname || 'eth0';
    const existing = this.#store.get(id);
    if (existing) {
      if (existing.containerId === containerId && existing.netns === req.netns) {
        return { workload: existing, gateway: GATEWAY, moved: false, existing: true };
      }
      throw new AgentError(
        'exists',
        `identity ${id} already runs on this host (container ${existing.containerId || existing.netns}); ` +
          'an identity runs once: delete the old instance first, or start it on another host to move it',
      );
    }
    const prefixes = tenantRecord.prefixes.map((p) => ({
      address: ipv6FromBytes(p.address),
      length: p.length,
    }));
    const claimed = new Map<bigint, string>();
    for (const w of view.workloads.values()) {
      if (w.tenant === req.tenant) claimed.set(BigInt(`0x${w.address}`), w.id);
    }
    for (const w of this.#store.list()) if (w.tenant === req.tenant) claimed.set(parseIpv6(w.address), w.id);
    const remote = [...view.workloads.values()].find((w) => w.id === id && w.hostId !== this.hostId);
    let address: Ipv6Address;
    if (req.address) {
      try {
        address = parseIpv6(req.address);
      } catch {
        throw new AgentError(
          'invalid',
          `address ${req.address} is not an IPv6 address: give one such as 2001:db8:b100::10`,
        );
      }
      if (!prefixes.some((p) => prefixContains(p, address))) {
        throw new AgentError(
          'invalid',
          `address ${req.address} is outside tenant ${req.tenant}'s prefixes ${prefixes.map(formatPrefix).join(', ')}`,
        );
      }
      const holder = claimed.get(address);
      if (holder !== undefined && holder !== id) {
        throw new AgentError('exists', `address ${req.address} is held by workload ${holder}`);
      }
    } else if (remote) {
      // Mobility: the identity keeps its address wherever it runs.
      address = BigInt(`0x${remote.address}`);
    } else {
      address = allocateAddress(prefixes[0]!, id, (a) => claimed.has(a) && claimed.get(a) !== id);
    }
    const mtu = workloadMtu(
      this.settings.spec.dataplane.underlayMtu,
      this.settings.spec.dataplane.maxSegments,
      false,
    );
    const hostLink = workloadLinkName(id);
    const { mac } = await attachWorkload(this.#dp!, (ns) => openDataplane({ netns: ns }), {
      netns,
      ifname,
      hostLink,
      address,
      mtu,
    });
    try {
      // The workload's link-layer address pinned on the host link (the eBPF backend delivers straight to
      // it), then the backend's hook on the link, before any entry points at it.
      await this.#dp!.setNeighbor(hostLink, address, mac);
      await this.#backend!.attach(hostLink);
    } catch (e) {
      await detachWorkload(this.#dp!, hostLink).catch(() => undefined);
      throw new AgentError('failed', `cannot hook ${hostLink} into the data plane: ${(e as Error).message}`);
    }
    const workload: LocalWorkload = {
      id,
      sticky,
      tenant: req.tenant,
      address: formatIpv6(address),
      netns: req.netns,
      ifname,
      hostLink,
      containerId,
      labels: req.labels ?? {},
      mtu,
      mac,
      attachedAtMs: Date.now(),
    };
    await this.#store.put(workload);
    // Routes first, then the claim: by the time others steer traffic here, delivery is in place. The
    // reconcile claims the workload (gossip and BGP) as soon as its routes are in; the call returns
    // when the workload's filters are in place too.
    this.#claims.add(id);
    await this.reconcileNow();
    if (this.#claims.delete(id)) await this.#publishWorkload(workload); // that reconcile failed
    await this.isolationSettled();
    this.#log.info({ workload: id, address: workload.address, moved: Boolean(remote) }, 'workload attached');
    return { workload, gateway: GATEWAY, moved: Boolean(remote), existing: false };
  }

  async deleteWorkload(req: { identity?: string; containerId?: string; ifname?: string }): Promise<boolean> {
    const w =
      (req.identity ? this.#store.get(req.identity) : undefined) ??
      (req.containerId ? this.#store.byContainer(req.containerId, req.ifname) : undefined);
    if (!w) return false;
    await this.#gossip!.removeWorkload(w.id);
    await this.#store.delete(w.id);
    await this.reconcileNow();
    // The filters must no longer name the link before it goes (nft refuses a chain on a missing device).
    await this.isolationSettled();
    await this.#backend!.detach(w.hostLink).catch((e: Error) => {
      this.#log.warn({ err: e, link: w.hostLink }, 'unhooking the link failed; it goes anyway');
    });
    await detachWorkload(this.#dp!, w.hostLink);
    this.#log.info({ workload: w.id }, 'workload detached');
    return true;
  }

  /**
   * Operator-signed records handed to this agent (`segmesh policy apply`): gossiped, and kept in the
   * state directory so that a fabric whose hosts all restarted still has its tenants.
   */
  async publishOperatorRecords(records: readonly Uint8Array[]): Promise<string[]> {
    const results: string[] = [];
    const kept = await this.#loadOperatorRecords();
    for (const bytes of records) {
      const r = await this.#gossip!.publishSigned(bytes);
      results.push(r.ok ? 'applied' : (r.reason ?? 'rejected'));
      if (r.ok) kept.push(Buffer.from(bytes).toString('base64'));
    }
    await writeFile(
      `${this.settings.stateDir}/operator-records.json`,
      `${JSON.stringify(kept.slice(-10_000))}\n`,
      {
        mode: 0o600,
      },
    );
    this.trigger();
    return results;
  }

  async #loadOperatorRecords(): Promise<string[]> {
    try {
      return JSON.parse(
        await readFile(`${this.settings.stateDir}/operator-records.json`, 'utf8'),
      ) as string[];
    } catch {
      return [];
    }
  }

  /** Offers the kept operator records again; gossip ignores those it already has in a newer version. */
  async #republishOperatorRecords(): Promise<void> {
    for (const b64 of await this.#loadOperatorRecords()) {
      await this.#gossip!.publishSigned(Buffer.from(b64, 'base64')).catch(() => undefined);
    }
  }

  /** CHECK: the workload's link, address and route are as attached. */
  async checkWorkload(req: {
    identity?: string;
    containerId?: string;
    ifname?: string;
    address?: string;
  }): Promise<string[]> {
    const w = this.findWorkload(req);
    if (!w) {
      const which = req.identity ? `identity ${req.identity}` : `container ${req.containerId ?? ''}`;
      throw new AgentError(
        'not-found',
        `no workload with ${which} on this host (segmesh workloads lists them)`,
      );
    }
    const problems: string[] = [];
    if (req.address) {
      try {
        parseIpv6(req.address);
      } catch {
        throw new AgentError('invalid', `address ${req.address} is not an IPv6 address`);
      }
    }
    if (req.address && parseIpv6(req.address) !== parseIpv6(w.address)) {
      problems.push(`the runtime expects ${req.address}, the agent gave ${w.address}`);
    }
    const link = (await this.#dp!.listLinks()).find((l) => l.name === w.hostLink);
    if (!link) problems.push(`host link ${w.hostLink} is missing`);
    else if (!link.up) problems.push(`host link ${w.hostLink} is down`);
    const inside = await openDataplane({ netns: w.netns }).catch((e: Error) => {
      problems.push(`cannot enter ${w.netns}: ${e.message}`);
      return undefined;
    });
    if (inside) {
      try {
        const links = await inside.listLinks();
        const eth = links.find((l) => l.name === w.ifname);
        if (!eth) problems.push(`${w.ifname} is missing in ${w.netns}`);
        const addrs = await inside.listAddresses();
        if (!addrs.some((a) => a.address.address === parseIpv6(w.address)))
          problems.push(`${w.address} is missing on ${w.ifname}`);
      } finally {
        await inside.close();
      }
    }
    const scope = this.#view?.tenants.get(w.tenant)?.scopes.delivery;
    const delivery =
      scope && this.#plan?.objects.get(routeKey(scope, { address: parseIpv6(w.address), length: 128 }));
    if (!delivery) problems.push(`no delivery route for ${w.address} in the agent's plan`);
    return problems;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Leaves the fabric (`segmesh drain`), make before break like a move:
   * 1. takes no new workloads and stops repairing (it takes its own state down on purpose);
   * 2. re-advertises its BGP paths with GRACEFUL_SHUTDOWN (RFC 8326, 65535:0): the edge prefers any
   *    other path to the same prefixes (FRR lowers the local preference to 0) while this host still
   *    delivers;
   * 3. publishes its host record with `leaving`;
   * 4. waits until traffic to its SIDs has stopped (their counters stand still for 2 s) or
   *    `waitMs` (default 10 s) ran out;
   * 5. withdraws its workloads and host record from gossip and every path from BGP (gobgpd stops);
   * 6. after a short settle, removes its routes and rules, its nftables tables, restores the sysctls,
   *    and stops gossip. The process stays up, drained, until it is stopped; starting it again rejoins.
   */
  async drain(waitMs: number, quietMs = 0): Promise<DrainReport> {
    if (this.#draining) throw new AgentError('precondition', 'this host is already draining or drained');
    if (!this.#started) throw new AgentError('unavailable', 'the agent is not running');
    this.#draining = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearInterval(this.#fullTimer);
    await this.#running?.catch(() => undefined);
    const wait = waitMs > 0 ? waitMs : DRAIN_WAIT_MS;
    const gracefulShutdownPaths = (await this.#bgp?.gracefulShutdown()) ?? 0;
    if (this.#view) await this.#advertise(this.#view); // the host record now says leaving
    this.#log.info({ gracefulShutdownPaths, waitMs: wait }, 'draining: waiting for traffic to move away');
    const { waitedMs, trafficStopped } = await this.#awaitTrafficGone(
      wait,
      quietMs > 0 ? quietMs : DRAIN_QUIET_MS,
    );
    this.#checkStopping();
    const local = this.#store.list();
    for (const w of local) await this.#gossip!.removeWorkload(w.id);
    await this.#gossip!.withdrawHost();
    await this.#bgp?.leave();
    // Others remove their routes to us; what is in flight still finds our SIDs.
    await this.#sleep(DRAIN_SETTLE_MS);
    this.#checkStopping();
    this.#started = false;
    await this.isolationSettled();
    // Everything the backend owns: routes and rules, or maps and programs; its filters and sysctls.
    const removed = this.#applied?.items.size ?? 0;
    await this.#backend!.flush();
    this.#applied = undefined;
    await this.#gossip!.stop();
    const report = {
      withdrawn: local.length,
      removed,
      gracefulShutdownPaths,
      waitedMs,
      trafficStopped,
    };
    this.#log.info(report, 'drained: this host left the fabric');
    return report;
  }

  /** A pause that ends early when the agent is stopped (a stopped agent must not wait out a drain). */
  #sleep(ms: number): Promise<void> {
    const signal = this.#stopping.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #checkStopping(): void {
    if (this.#stopping.signal.aborted) {
      throw new AgentError(
        'precondition',
        'the agent was stopped (SIGTERM) during the drain: the host is half drained (graceful shutdown ' +
          'and leaving advertised, nothing withdrawn); start the agent again (it rejoins) and run segmesh drain again',
      );
    }
  }

  /** Polls the counters of this host's decapsulating SIDs until they stand still, or `maxMs`. */
  async #awaitTrafficGone(
    maxMs: number,
    quietMs: number,
  ): Promise<{ waitedMs: number; trafficStopped: boolean }> {
    const started = Date.now();
    const self = this.#view?.hosts.get(this.settings.hostName);
    const sids = new Set(
      (self?.sids.all ?? []).filter((x) => x.behavior !== 'End').map((x) => sidKey(x.sid)),
    );
    const total = async () => {
      const counters = await this.#backend!.readCounters().catch(() => undefined);
      let n = 0;
      for (const [key, c] of counters?.sids ?? []) if (sids.has(key)) n += Number(c.packets);
      return n;
    };
    let last = await total();
    let stillSince = Date.now();
    for (;;) {
      const elapsed = Date.now() - started;
      if (elapsed >= maxMs) return { waitedMs: elapsed, trafficStopped: false };
      await this.#sleep(Math.min(200, maxMs - elapsed));
      this.#checkStopping();
      const now = await total();
      if (now !== last) {
        last = now;
        stillSince = Date.now();
      } else if (Date.now() - stillSince >= quietMs && Date.now() - started >= DRAIN_MIN_MS) {
        return { waitedMs: Date.now() - started, trafficStopped: true };
      }
    }
  }

  findWorkload(req: { identity?: string; containerId?: string; ifname?: string }): LocalWorkload | undefined {
    return (
      (req.identity ? this.#store.get(req.identity) : undefined) ??
      (req.containerId ? this.#store.byContainer(req.containerId, req.ifname) : undefined)
    );
  }
}
