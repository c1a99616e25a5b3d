/**
 * The per-host agent: the one place where its components are wired together (as js-libp2p composes
 * its services). Each component states its dependencies and is unit-tested on its own
 * (test/unit/agent/components.test.ts):
 * - host data plane (src/dataplane/host.ts): the backend port and the host's links;
 * - gossip (src/gossip) and BGP toward the edge (src/bgp);
 * - reconciler.ts: view -> model -> intent -> backend, full or incremental;
 * - workload-manager.ts: IPAM, attach and detach;
 * - advertiser.ts: host record in gossip, VPN routes over BGP (per workload or aggregate);
 * - operator-records.ts, drain.ts, readiness.ts.
 * `start` brings them up in that order and `stop` takes them down in reverse. A restart never flushes:
 * the data plane keeps forwarding while the agent is down, and the first reconcile after it only
 * changes what differs.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Logger } from 'pino';
import { type Bgp, bgp as bgpComponent, type ExternalRoute } from '../bgp/index.ts';
import {
  BackendUnavailableError,
  type HostDataplane,
  type OpenHostOptions,
  openHostDataplane,
} from '../dataplane/host.ts';
import type { PreparableBackend } from '../dataplane/open-backend.ts';
import {
  type Gossip,
  gossip as gossipComponent,
  loadOrCreateIdentity,
  operatorKeyFromText,
} from '../gossip/index.ts';
import {
  formatIpv6,
  formatPrefix,
  type Ipv6Prefix,
  ipv6FromBytes,
  parseIpv6,
  parsePrefix,
} from '../srv6/address.ts';
import { type FabricView, workloadMtu } from '../srv6/fabric.ts';
import { deriveLocators } from '../srv6/locator.ts';
import type { HostPlan } from '../srv6/pathcompute.ts';
import { Advertiser } from './advertiser.ts';
import type { AgentSettings } from './config.ts';
import { Drainer, type DrainReport } from './drain.ts';
import { AgentError } from './errors.ts';
import { type AgentGossipEvent, routeGossipEvent } from './events.ts';
import type { FabricStateInput } from './fabric-state.ts';
import { membershipGossipInit, membershipSummary, OPEN_MEMBERSHIP_WARNING } from './membership.ts';
import { OperatorRecords } from './operator-records.ts';
import { awaitGossipSync, isReady } from './readiness.ts';
import { type ReconcileReport, Reconciler } from './reconciler.ts';
import {
  type AddWorkloadInput,
  type AddWorkloadResult,
  WorkloadManager,
  type WorkloadQuery,
} from './workload-manager.ts';
import { type LocalWorkload, LocalWorkloadStore } from './workloads.ts';

export const AGENT_PROTOCOL = 'segmesh/1';

export type { DrainReport } from './drain.ts';
export { AgentError } from './errors.ts';
export type { ReconcileReport } from './reconciler.ts';
export type { AddWorkloadInput, AddWorkloadResult } from './workload-manager.ts';

export interface AgentComponents {
  readonly logger: Logger;
  /** Opens the host's data plane (tests inject one in a namespace); dataplane/host.ts by default. */
  readonly openHost?: (o: OpenHostOptions) => Promise<HostDataplane>;
}

/** The parts a running agent is made of, in start order. */
interface Parts {
  readonly host: HostDataplane;
  readonly backend: PreparableBackend;
  readonly locator: Ipv6Prefix;
  readonly gossip: Gossip;
  readonly bgp: Bgp | undefined;
  readonly reconciler: Reconciler;
  readonly workloads: WorkloadManager;
  readonly advertiser: Advertiser;
  readonly records: OperatorRecords;
  readonly drainer: Drainer;
}

/**
 * The data-plane probe behind liveness: a host gossip cannot hear is kept (its routes stale but in
 * place) as long as its underlay answers; a gossip-only partition must not take down forwarding.
 * One ICMPv6 echo with the system's ping: a probe per suspect host, not a per-packet path.
 */
function probeHost(underlay: Uint8Array): Promise<boolean> {
  if (underlay.length !== 16) return Promise.resolve(false);
  const address = formatIpv6(ipv6FromBytes(underlay));
  return new Promise((resolve) => {
    execFile('ping', ['-6', '-n', '-q', '-c', '1', '-W', '1', address], { timeout: 3_000 }, (err) =>
      resolve(!err),
    );
  });
}

const WORKLOAD_EVENTS = ['workload-added', 'workload-moved', 'workload-updated', 'workload-removed'] as const;
const HOST_EVENTS = ['host-up', 'host-suspect', 'host-down'] as const;

export class Agent {
  readonly settings: AgentSettings;
  /** The host's logger; each part adds its own `component` (a child of a child would repeat the key). */
  readonly #hostLog: Logger;
  readonly #log: Logger;
  readonly #openHost: (o: OpenHostOptions) => Promise<HostDataplane>;
  readonly #store: LocalWorkloadStore;
  readonly #external = new Map<string, ExternalRoute>();
  /** What started, to be stopped in reverse. */
  readonly #stack: Array<{ readonly name: string; readonly stop: () => Promise<void> }> = [];
  #parts: Partial<{ -readonly [K in keyof Parts]: Parts[K] }> = {};
  #backendInfo: { name: string; why: string } | undefined;
  /** Aborted by stop(): a drain in progress gives up at its next step instead of holding the process. */
  readonly #stopping = new AbortController();
  /** Observer of every reconcile (metrics). */
  onReconcile: ((report: ReconcileReport) => void) | undefined;

  constructor(components: AgentComponents, settings: AgentSettings) {
    this.settings = settings;
    this.#hostLog = components.logger.child({ host: settings.hostName });
    this.#log = this.#hostLog.child({ component: 'agent' });
    this.#openHost = components.openHost ?? openHostDataplane;
    this.#store = new LocalWorkloadStore(`${settings.stateDir}/workloads.json`);
  }

  get hostId(): string {
    return this.#parts.gossip?.hostId ?? '';
  }
  get locator(): Ipv6Prefix | undefined {
    return this.#parts.locator;
  }
  get view(): FabricView | undefined {
    return this.#parts.reconciler?.view;
  }
  get plan(): HostPlan | undefined {
    return this.#parts.reconciler?.plan;
  }
  get gossip(): Gossip | undefined {
    return this.#parts.gossip;
  }
  get bgp(): Bgp | undefined {
    return this.#parts.bgp;
  }
  get backend(): PreparableBackend | undefined {
    return this.#parts.backend;
  }
  /** The data-plane backend in use and why it was chosen (`segmesh status`). */
  get backendInfo(): { readonly name: string; readonly why: string } | undefined {
    return this.#backendInfo;
  }
  get lastReconcile(): ReconcileReport | undefined {
    return this.#parts.reconciler?.lastReport;
  }
  get ready(): boolean {
    const r = this.#parts.reconciler;
    return isReady({
      running: r?.started ?? false,
      drained: this.#parts.drainer?.drained ?? false,
      last: r?.lastReport,
    });
  }
  get draining(): boolean {
    return this.#parts.drainer?.draining ?? false;
  }
  localWorkloads(): LocalWorkload[] {
    return this.#store.list();
  }

  #started(name: string, stop: () => Promise<void>): void {
    this.#stack.push({ name, stop });
  }

  async start(): Promise<void> {
    const s = this.settings;
    const p = this.#parts;
    await mkdir(s.stateDir, { recursive: true, mode: 0o750 });
    await this.#store.load();

    // 1. Data plane: the backend the config asks for (auto: kernel seg6 where the kernel has it, else
    // eBPF), then its host settings (forwarding switches, encapsulation source).
    const mtu = workloadMtu(
      s.spec.dataplane.underlayMtu,
      s.spec.dataplane.maxSegments,
      s.spec.dataplane.hmac !== undefined,
    );
    try {
      p.host = await this.#openHost({
        setting: s.spec.dataplane.backend,
        underlayDevice: s.underlayDevice,
        source: s.underlay,
        pinDir: s.spec.dataplane.bpfPinDir,
        workloadMtu: mtu,
        maxSegments: s.spec.dataplane.maxSegments,
        sysctlStateFile: `${s.stateDir}/sysctls.json`,
        configFile: s.file,
        needs: { hmac: s.spec.dataplane.hmac !== undefined },
      });
    } catch (e) {
      if (e instanceof BackendUnavailableError)
        throw new AgentError('precondition', `${s.file}: ${e.message}`);
      throw e;
    }
    const host = p.host;
    this.#started('host data plane', () => host.close());
    const opened = host.opened;
    const backend = opened.backend;
    p.backend = backend;
    // Releases fds only: routes, maps, pinned programs stay and forward.
    this.#started('backend', () => backend.close().catch(() => undefined));
    this.#backendInfo = { name: opened.name, why: opened.why };
    this.#log.info({ backend: opened.name, why: opened.why }, 'data-plane backend');
    await backend.prepare();

    // 2. Locator: configured, or derived from the fabric block once and kept.
    const locator = s.locator ?? (await this.#derivedLocator());
    p.locator = locator;

    // 3. Gossip, and the components that only need it and the backend.
    const privateKey = await loadOrCreateIdentity(`${s.stateDir}/identity.key`);
    const operatorKey = s.spec.operatorKeys[0] ? operatorKeyFromText(s.spec.operatorKeys[0]) : undefined;
    const hostId = peerIdFromPrivateKey(privateKey).toString();
    // On every start: an open fabric must never be open unnoticed.
    if (s.membership.mode === 'open') this.#log.warn({ membership: 'open' }, OPEN_MEMBERSHIP_WARNING);
    else this.#log.info({ membership: membershipSummary(s.membership) }, 'gossip membership');
    const gossip = gossipComponent({
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
      probe: (host) => probeHost(host.record.underlayAddress),
    });
    p.gossip = gossip;
    const reconciler = new Reconciler({
      log: this.#hostLog.child({ component: 'reconciler' }),
      hostName: s.hostName,
      backend,
      gossipView: () => gossip.view(),
      stateInput: (view) => this.#stateInput(view, gossip.hostId, locator),
      localWorkload: (id) => this.#store.get(id),
      afterApply: (view) => this.#afterApply(view),
    });
    reconciler.listeners.push((r) => this.onReconcile?.(r));
    p.reconciler = reconciler;
    this.#subscribe(gossip, reconciler);
    const records = new OperatorRecords({
      gossip,
      stateDir: s.stateDir,
      changed: () => reconciler.fabricChanged(),
    });
    p.records = records;
    await gossip.start();
    this.#started('gossip', () => gossip.stop());
    await awaitGossipSync(gossip, {
      bootstrap: s.spec.gossip.bootstrap.length,
      timeoutMs: Math.max(5_000, s.suspectAfterMs * 2),
      log: this.#log,
    });
    const workloads = new WorkloadManager({
      log: this.#hostLog.child({ component: 'workloads' }),
      hostName: s.hostName,
      mtu,
      store: this.#store,
      links: host.links,
      backend,
      gossip,
      reconciler,
      draining: () => this.draining,
    });
    p.workloads = workloads;
    // Claim our workloads again (gossip withdraws records of ours that a restarted host does not
    // re-own), but never over a newer claim elsewhere: that workload moved while we were away.
    await records.republish();
    await workloads.reclaim();

    // 4. BGP toward the edge.
    let bgp: Bgp | undefined;
    if (s.spec.bgp) {
      const b = s.spec.bgp;
      // Not `bgp`: shadowing the outer one left the advertiser without BGP (nothing advertised).
      const svc = bgpComponent({
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
        locator: formatPrefix(locator),
        transposition: b.transposition,
        // The tenants gossip already knows: an adopted gobgpd's routes are judged against them before
        // the first reconcile (without them that reconcile would delete every route from the edge).
        tenants: [...gossip.view().tenants.values()]
          .filter((t) => t.record.routeTargets[0])
          .map((t) => ({ name: t.record.name, routeTarget: t.record.routeTargets[0]! })),
        fabricLocators: [
          formatPrefix(locator),
          ...[...gossip.view().hosts.values()].flatMap((h) =>
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
      svc.on('route:add', (r) => {
        this.#external.set(r.key, r);
        reconciler.fabricChanged();
      });
      svc.on('route:delete', (r) => {
        this.#external.delete(r.key);
        reconciler.fabricChanged();
      });
      await svc.start();
      this.#started('bgp', () => svc.stop());
      bgp = svc;
    }
    p.bgp = bgp;
    p.advertiser = new Advertiser({
      hostName: s.hostName,
      underlay: s.underlay,
      gossip,
      ...(bgp && s.spec.bgp ? { bgp, routerId: s.spec.bgp.routerId } : {}),
      leaving: () => this.draining,
      holds: (key) => reconciler.applied?.items.has(key) ?? false,
      hostWorkloads: () => reconciler.hostWorkloads(),
    });
    p.drainer = new Drainer({
      log: this.#log,
      hostName: s.hostName,
      backend,
      gossip,
      ...(bgp ? { bgp } : {}),
      reconciler,
      advertise: (view) => p.advertiser!.advertise(view),
      localWorkloads: () => this.#store.list(),
      stopGossip: () => gossip.stop(),
      stopping: this.#stopping.signal,
    });

    // 5. The reconcile loop: a full reconcile now, then events and the periodic full re-check.
    await reconciler.start();
    this.#started('reconciler', () => reconciler.stop());
    this.#log.info({ locator: formatPrefix(locator), hostId: this.hostId }, 'agent started');
  }

  /**
   * Stops the agent and leaves forwarding in place: the data plane and gobgpd stay (a restart adopts
   * them). `segmesh drain` is the way to leave the fabric.
   */
  async stop(): Promise<void> {
    this.#stopping.abort();
    // A start that failed half way stops what it started; a drain in progress ends at its next step.
    for (let part = this.#stack.pop(); part; part = this.#stack.pop()) {
      await part
        .stop()
        .catch((e: unknown) => this.#log.warn({ err: e, part: part!.name }, 'stopping failed'));
    }
    this.#log.info('agent stopped (data-plane state and gobgpd left running)');
  }

  /** Gossip events to the reconciler (events.ts decides which path each takes). */
  #subscribe(gossip: Gossip, reconciler: Reconciler): void {
    const route = (e: AgentGossipEvent) => {
      const r = routeGossipEvent(e, gossip.hostId);
      if (r.path === 'workload') reconciler.workloadChanged(r.id);
      else if (r.path === 'fabric') reconciler.fabricChanged();
    };
    gossip.addEventListener('record', (e) => route({ type: 'record', ...e.detail }));
    for (const type of WORKLOAD_EVENTS) {
      gossip.addEventListener(type, (e) => route({ type, workload: e.detail.workload }));
    }
    for (const type of HOST_EVENTS) {
      gossip.addEventListener(type, (e) => route({ type, hostId: e.detail.hostId }));
    }
    gossip.addEventListener('policy-changed', () => route({ type: 'policy-changed' }));
    gossip.addEventListener('conflict-lost', (e) => {
      this.#log.warn({ conflict: e.detail }, 'this host lost an address conflict: the other claim is newer');
    });
  }

  #stateInput(gossip: ReturnType<Gossip['view']>, hostId: string, locator: Ipv6Prefix): FabricStateInput {
    const s = this.settings;
    return {
      self: { name: s.hostName, hostId, underlay: s.underlay, locator },
      structure: s.structure,
      ...(s.locatorBlock ? { locatorBlock: s.locatorBlock } : {}),
      maxSegments: s.spec.dataplane.maxSegments,
      underlayMtu: s.spec.dataplane.underlayMtu,
      ...(s.spec.dataplane.hmac ? { hmacKeyId: s.spec.dataplane.hmac.keyId } : {}),
      gossip,
      local: this.#store.list(),
      external: [...this.#external.values()],
      edgePeers: (s.spec.bgp?.peers ?? []).map((peer) => ({
        address: parseIpv6(peer.address),
        locators: peer.locators.map(parsePrefix),
      })),
      ...(s.spec.bgp ? { edgeMode: s.spec.bgp.advertise } : {}),
    };
  }

  /** Forwarding and filters are in place: claim the workloads attached since, and announce. */
  async #afterApply(view: FabricView): Promise<void> {
    const p = this.#parts;
    await Promise.all([p.workloads?.publishClaims(), p.advertiser?.advertise(view)]);
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

  #running(): Parts {
    const p = this.#parts;
    if (!p.reconciler || !p.workloads || !p.drainer || !p.records)
      throw new AgentError('unavailable', 'the agent is not running (starting, or stopped)');
    return p as Parts;
  }

  // ---- what the API asks for ----

  /** Schedules a reconcile (debounced). */
  trigger(): void {
    this.#parts.reconciler?.trigger();
  }

  /** Runs a full-path reconcile now (or right after the one in progress). */
  reconcileNow(): Promise<ReconcileReport> {
    const r = this.#running().reconciler;
    r.fabricChanged();
    return r.reconcileNow();
  }

  /** Resolves when the filters the last reconcile wanted are in place (the backend sets them in it). */
  async isolationSettled(): Promise<void> {
    await this.#parts.reconciler?.settled();
  }

  addWorkload(req: AddWorkloadInput): Promise<AddWorkloadResult> {
    return this.#running().workloads.add(req);
  }

  deleteWorkload(req: WorkloadQuery): Promise<boolean> {
    return this.#running().workloads.delete(req);
  }

  checkWorkload(req: WorkloadQuery & { address?: string }): Promise<string[]> {
    return this.#running().workloads.check(req);
  }

  findWorkload(req: WorkloadQuery): LocalWorkload | undefined {
    return this.#parts.workloads?.find(req);
  }

  publishOperatorRecords(records: readonly Uint8Array[]): Promise<string[]> {
    return this.#running().records.publish(records);
  }

  drain(waitMs: number, quietMs = 0): Promise<DrainReport> {
    return this.#running().drainer.drain(waitMs, quietMs);
  }
}
