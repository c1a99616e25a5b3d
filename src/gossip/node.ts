/**
 * The libp2p adapter: a thin I/O shell around the pure state (store, HLC, liveness, view). It owns one
 * libp2p node (TCP, Noise, Yamux, gossipsub, identify, ping, optional PSK), publishes this host's
 * records and heartbeats on one topic, validates and applies what arrives, and repairs what gossipsub
 * loses with the anti-entropy protocol (docs/gossip.md).
 */
import { createHash } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { gossipsub, type Message, TopicValidatorResult } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import type { Connection, PeerId, PrivateKey, PublicKey, Stream } from '@libp2p/interface';
import { noise } from '@libp2p/noise';
import { peerIdFromString } from '@libp2p/peer-id';
import { ping } from '@libp2p/ping';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { lpStream } from '@libp2p/utils';
import { yamux } from '@libp2p/yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import { TypedEventEmitter } from 'main-event';
import pino, { type Logger } from 'pino';
import {
  type AntiEntropyFrame,
  AntiEntropyFrameSchema,
  DigestSchema,
  ExchangeSchema,
  type GossipMessage,
  GossipMessageSchema,
  type Record as GossipRecord,
  type Heartbeat,
  HeartbeatBatchSchema,
  HeartbeatSchema,
  HlcTimestampSchema,
  type HmacKeyRecord,
  type HostRecord,
  HostRecordSchema,
  RecordSchema,
  RecordSummarySchema,
  RecordsSchema,
  type SignedHeartbeat,
  type SignedRecord,
  SignedRecordSchema,
  SummariesSchema,
  type WorkloadRecord,
  WorkloadRecordSchema,
} from '../gen/segmesh/v1/gossip_pb.js';
import { differingBuckets, needsSnapshot, planExchange, type Summary, summarize } from './antientropy.ts';
import { ANTI_ENTROPY_PROTOCOL, DEFAULTS, GOSSIP_TOPIC, HEARTBEAT_PROTOCOL } from './constants.ts';
import { AntiEntropyError, GossipConfigError, GossipNotStartedError } from './errors.ts';
import { ClockSkewError, HybridLogicalClock, type Timestamp, type Version } from './hlc.ts';
import { Liveness, type Transition } from './liveness.ts';
import {
  authenticate,
  type DecodedRecord,
  decodeSigned,
  isMember,
  OPERATOR_ORIGIN,
  openHeartbeat,
  type RejectReason,
  signHeartbeat,
  signRecord,
  type TrustPolicy,
  versionOf,
} from './records.ts';
import { type Entry, LwwStore } from './store.ts';
import {
  type Conflict,
  EMPTY_VIEW,
  type FabricView,
  type GossipEvent,
  type HostView,
  hex,
  ViewIndex,
  type WorkloadView,
} from './view.ts';

/** Decides early death of a suspect host: true when its End SID answers over the data plane. */
export type DataPlaneProbe = (host: HostView) => Promise<boolean>;

export interface GossipComponents {
  readonly logger?: Logger;
  /** Physical time in ms since the epoch (tests may skew it). */
  readonly clock?: () => number;
  readonly probe?: DataPlaneProbe;
  /** Test hooks: drop incoming gossip messages on purpose (anti-entropy must repair them). */
  readonly faults?: { readonly dropGossip?: (from: string, kind: 'record' | 'heartbeat') => boolean };
}

export interface GossipInit {
  /** The host identity (Ed25519); its peer id is the host id. */
  readonly privateKey: PrivateKey;
  readonly listen?: readonly string[];
  /** Multiaddrs with /p2p/<peer id> to dial at start and whenever the node has no peer. */
  readonly bootstrap?: readonly string[];
  /** A libp2p private-network swarm key (`@libp2p/pnet` generateKey format). */
  readonly psk?: Uint8Array;
  /** The operator key fabric records must be signed with. */
  readonly operatorKey?: PublicKey;
  /** Host ids allowed to connect and write; others are refused by the connection gater. */
  readonly allowlist?: readonly string[];
  /** The cluster key certifying host identities, and this host's certificate from it. */
  readonly clusterKey?: PublicKey;
  readonly membershipCertificate?: Uint8Array;
  readonly heartbeatIntervalMs?: number;
  readonly suspectAfterMs?: number;
  readonly deadAfterMs?: number;
  readonly antiEntropyIntervalMs?: number;
  readonly tombstoneTtlMs?: number;
  readonly maxRecordBytes?: number;
  readonly maxClockDriftMs?: number;
  readonly targetPeers?: number;
  /** After start, how long to wait before overriding stale records of this host seen in the network. */
  readonly ownerGraceMs?: number;
  /** All nodes share one IP (tests, one NAT): disable gossipsub's IP-colocation penalty. */
  readonly sameIpPeers?: boolean;
}

/** What this host advertises about itself (its id and gossip addresses are filled in). */
export type HostAdvert = Partial<
  Pick<HostRecord, 'name' | 'underlayAddress' | 'locator' | 'sids' | 'networkFunctions' | 'endSid'>
>;

export interface WorkloadAdvert {
  readonly workloadId: string;
  readonly tenant: string;
  readonly opaqueAddress: Uint8Array;
  readonly deliverySid?: Uint8Array;
}

export type RecordSource = 'local' | 'gossip' | 'anti-entropy' | 'snapshot';

export type GossipEvents = { [K in GossipEvent['type']]: CustomEvent<Extract<GossipEvent, { type: K }>> } & {
  /** Every record applied to the store (all kinds, also tombstones). */
  record: CustomEvent<{ key: string; version: Version; deleted: boolean; source: RecordSource }>;
  rejected: CustomEvent<{ reason: RejectReason; detail: string; from: string }>;
  /** This host's claim lost an address conflict. */
  'conflict-lost': CustomEvent<Conflict>;
};

export interface GossipStats {
  records: number;
  tombstones: number;
  rejected: Record<string, number>;
  antiEntropy: {
    runs: number;
    failures: number;
    pushed: number;
    fetched: number;
    snapshots: number;
    served: number;
  };
  gossip: { received: number; published: number; dropped: number };
  conflictsLost: number;
  /** Liveness transitions seen (a host going alive -> suspect and back without dying is a flap). */
  liveness: { suspected: number; died: number; recovered: number };
  peers: number;
}

export interface GossipSnapshot {
  readonly hostId: string;
  readonly hosts: readonly { id: string; name: string; state: string; version: Version }[];
  readonly workloads: readonly {
    id: string;
    hostId: string;
    tenant: string;
    address: string;
    deliverySid: string;
    version: Version;
  }[];
  readonly tenants: readonly { name: string; prefixes: number; routeTargets: string[]; version: Version }[];
  readonly policies: readonly { name: string; tenant: string; rules: number; version: Version }[];
  /** Secrets are never part of a snapshot. */
  readonly hmacKeys: readonly {
    keyId: string;
    secret: '<redacted>';
    notBeforeMs: number;
    notAfterMs: number;
  }[];
  readonly conflicts: readonly Conflict[];
  readonly stats: GossipStats;
}

interface Payload {
  readonly signed: SignedRecord;
  readonly record: GossipRecord;
}

type Node = Libp2p<{ pubsub: ReturnType<ReturnType<typeof gossipsub>>; identify: unknown; ping: unknown }>;

const { Accept, Ignore, Reject } = TopicValidatorResult;
const VIEW_BATCH_MS = 5;
type Verdict = TopicValidatorResult;

function randomPick<T>(items: readonly T[], n: number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}

function fastMsgId(from: Uint8Array | undefined, seqno: Uint8Array | undefined): string {
  const f =
    from === undefined ? '' : Buffer.from(from.buffer, from.byteOffset, from.byteLength).toString('base64');
  const q =
    seqno === undefined
      ? ''
      : Buffer.from(seqno.buffer, seqno.byteOffset, seqno.byteLength).toString('base64');
  return `${f}/${q}`;
}

function contentId(data: Uint8Array | undefined): string {
  return createHash('sha256')
    .update(data ?? new Uint8Array())
    .digest('base64');
}

/** Builds the libp2p node both the gossip component and the benchmark anchor use. */
export async function createGossipLibp2p(options: {
  privateKey: PrivateKey;
  listen: readonly string[];
  psk?: Uint8Array;
  sameIpPeers?: boolean;
  denyPeer?: (peer: PeerId) => boolean;
  maxDataLength?: number;
  /** false: StrictNoSign (messages authenticate themselves, as ours do); default: gossipsub signs. */
  signed?: boolean;
}): Promise<Node> {
  const deny = options.denyPeer ?? (() => false);
  return (await createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: [...options.listen] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(options.psk === undefined ? {} : { connectionProtector: preSharedKey({ psk: options.psk }) }),
    connectionGater: {
      denyDialMultiaddr: () => false,
      denyDialPeer: (peer) => deny(peer),
      denyInboundEncryptedConnection: (peer) => deny(peer),
      denyOutboundEncryptedConnection: (peer) => deny(peer),
    },
    connectionManager: { maxConnections: 64 },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        globalSignaturePolicy: options.signed === false ? 'StrictNoSign' : 'StrictSign',
        // Deduplicate before any validation work: without it every duplicate copy (one per mesh peer)
        // is decoded and verified again. Only messages that passed validation enter this cache.
        fastMsgIdFn: (m) => (options.signed === false ? contentId(m.data) : fastMsgId(m.from, m.seqno)),
        emitSelf: false,
        asyncValidation: false,
        maxInboundDataLength: options.maxDataLength ?? 1024 * 1024,
        ...(options.sameIpPeers ? { scoreParams: { IPColocationFactorWeight: 0 } } : {}),
      }),
    },
  })) as unknown as Node;
}

export class Gossip extends TypedEventEmitter<GossipEvents> {
  readonly #init: GossipInit;
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly #probe: DataPlaneProbe | undefined;
  readonly #faults: GossipComponents['faults'];
  readonly #opts: {
    heartbeatIntervalMs: number;
    antiEntropyIntervalMs: number;
    tombstoneTtlMs: number;
    maxRecordBytes: number;
    targetPeers: number;
    ownerGraceMs: number;
  };
  readonly #trust: TrustPolicy;
  readonly #hlc: HybridLogicalClock;
  readonly #store: LwwStore<Payload>;
  readonly #liveness: Liveness;
  readonly #owned = new Map<string, GossipRecord>();
  readonly #denied = new Set<string>();
  readonly #certs = new Map<string, Uint8Array>();
  readonly #probing = new Set<string>();
  readonly #mismatch = new Map<string, number>();
  readonly #rejectLog = new Map<RejectReason, { at: number; suppressed: number }>();
  readonly #stats: GossipStats = {
    records: 0,
    tombstones: 0,
    rejected: {},
    antiEntropy: { runs: 0, failures: 0, pushed: 0, fetched: 0, snapshots: 0, served: 0 },
    gossip: { received: 0, published: 0, dropped: 0 },
    conflictsLost: 0,
    liveness: { suspected: 0, died: 0, recovered: 0 },
    peers: 0,
  };
  #node: Node | undefined;
  #hostId = '';
  readonly #index = new ViewIndex();
  #viewDirty = false;
  /** Heartbeat sequence: starts at the start time in µs, so a restarted host's heartbeats are newer. */
  #seq = BigInt(Date.now()) * 1000n;
  readonly #hbKnown = new Map<string, bigint>();
  #hbFresh = new Map<string, SignedHeartbeat>();
  readonly #hbOut = new Map<string, { stream: Stream; lp: ReturnType<typeof lpStream> } | 'busy'>();
  #startedAt = 0;
  #lastSyncMs: number | undefined;
  #shutdown: AbortController | undefined;
  #timers: NodeJS.Timeout[] = [];
  #syncing = new Set<string>();

  constructor(components: GossipComponents, init: GossipInit) {
    super();
    if (init.privateKey.type !== 'Ed25519') {
      throw new GossipConfigError(
        `host key type ${init.privateKey.type}: use an Ed25519 key (loadOrCreateIdentity)`,
      );
    }
    this.#init = init;
    this.#log = (components.logger ?? pino({ level: 'silent' })).child({ component: 'gossip' });
    this.#clock = components.clock ?? Date.now;
    this.#probe = components.probe;
    this.#faults = components.faults;
    this.#opts = {
      heartbeatIntervalMs: init.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
      antiEntropyIntervalMs: init.antiEntropyIntervalMs ?? DEFAULTS.antiEntropyIntervalMs,
      tombstoneTtlMs: init.tombstoneTtlMs ?? DEFAULTS.tombstoneTtlMs,
      maxRecordBytes: init.maxRecordBytes ?? DEFAULTS.maxRecordBytes,
      targetPeers: init.targetPeers ?? DEFAULTS.targetPeers,
      ownerGraceMs: init.ownerGraceMs ?? DEFAULTS.ownerGraceMs,
    };
    const suspectAfterMs = init.suspectAfterMs ?? DEFAULTS.suspectAfterMs;
    const deadAfterMs = init.deadAfterMs ?? Math.max(DEFAULTS.deadAfterMs, suspectAfterMs);
    if (this.#opts.heartbeatIntervalMs * 2 > suspectAfterMs) {
      throw new GossipConfigError(
        `heartbeatIntervalMs ${this.#opts.heartbeatIntervalMs} must be at most half of suspectAfterMs ${suspectAfterMs} ` +
          'or hosts flap: lower the heartbeat interval',
      );
    }
    this.#liveness = new Liveness({ suspectAfterMs, deadAfterMs });
    this.#hlc = new HybridLogicalClock(init.maxClockDriftMs ?? DEFAULTS.maxClockDriftMs);
    this.#store = new LwwStore<Payload>(this.#opts.tombstoneTtlMs);
    this.#trust = {
      maxRecordBytes: this.#opts.maxRecordBytes,
      ...(init.operatorKey === undefined ? {} : { operatorKey: init.operatorKey }),
      ...(init.allowlist === undefined ? {} : { allowlist: new Set(init.allowlist) }),
      ...(init.clusterKey === undefined ? {} : { clusterKey: init.clusterKey }),
    };
    if (init.clusterKey !== undefined && init.membershipCertificate === undefined) {
      throw new GossipConfigError(
        'a cluster key is configured but this host has no membershipCertificate: issue one',
      );
    }
  }

  readonly [Symbol.toStringTag] = '@segmesh/gossip';

  get hostId(): string {
    return this.#hostId;
  }

  get libp2p(): Node {
    if (this.#node === undefined) throw new GossipNotStartedError('libp2p');
    return this.#node;
  }

  /** Multiaddrs (with /p2p/) other nodes can bootstrap from. */
  get multiaddrs(): string[] {
    return this.libp2p.getMultiaddrs().map((m) => m.toString());
  }

  isStarted(): boolean {
    return this.#node !== undefined;
  }

  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#node !== undefined) return;
    this.#shutdown = new AbortController();
    options.signal?.addEventListener('abort', () => void this.stop(), { once: true });
    const allow = this.#trust.allowlist;
    const node = await createGossipLibp2p({
      privateKey: this.#init.privateKey,
      listen: this.#init.listen ?? DEFAULTS.listen,
      ...(this.#init.psk === undefined ? {} : { psk: this.#init.psk }),
      sameIpPeers: this.#init.sameIpPeers ?? false,
      signed: false,
      maxDataLength: this.#opts.maxRecordBytes * 4,
      denyPeer: (peer) => {
        const id = peer.toString();
        if (this.#denied.has(id)) return true;
        if (allow !== undefined && !allow.has(id)) {
          this.#reject('not_member', `connection from ${id} (not in the allowlist)`, id);
          return true;
        }
        return false;
      },
    });
    this.#node = node;
    this.#hostId = node.peerId.toString();
    this.#startedAt = this.#clock();
    this.#liveness.heard(this.#hostId, this.#startedAt);
    const pubsub = node.services.pubsub;
    pubsub.topicValidators.set(GOSSIP_TOPIC, (peer, msg) => this.#validate(peer, msg));
    pubsub.subscribe(GOSSIP_TOPIC);
    await node.handle(
      ANTI_ENTROPY_PROTOCOL,
      (stream, connection) => this.#serveAntiEntropy(stream, connection),
      {
        maxInboundStreams: 8,
        maxOutboundStreams: 8,
      },
    );
    node.addEventListener('peer:connect', (evt) => {
      const peer = evt.detail.toString();
      this.#stats.peers = node.getPeers().length;
      // Both ends run anti-entropy on connect; the small random delay lets the connection settle.
      const t = setTimeout(
        () => {
          this.#timers = this.#timers.filter((x) => x !== t);
          void this.syncWith(peer).catch(() => {});
        },
        50 + Math.random() * 100,
      );
      this.#timers.push(t);
    });
    node.addEventListener('peer:disconnect', () => {
      this.#stats.peers = node.getPeers().length;
    });
    await node.handle(HEARTBEAT_PROTOCOL, (stream, connection) => this.#serveHeartbeats(stream, connection), {
      maxInboundStreams: 4,
      maxOutboundStreams: 4,
    });
    node.addEventListener('peer:disconnect', (evt) => {
      this.#hbOut.delete(evt.detail.toString());
    });
    this.#every(this.#opts.heartbeatIntervalMs, () => this.#heartbeat());
    this.#every(Math.max(20, Math.floor(this.#opts.heartbeatIntervalMs / 2)), () => this.#flushHeartbeats());
    this.#every(this.#opts.antiEntropyIntervalMs, () => this.#antiEntropyTick(), true);
    this.#every(Math.max(this.#opts.heartbeatIntervalMs, 500), () => this.#maintainConnections());
    await this.#dialBootstrap();
    this.#log.info({ hostId: this.#hostId, addrs: this.multiaddrs }, 'gossip started');
  }

  async stop(): Promise<void> {
    const node = this.#node;
    if (node === undefined) return;
    this.#shutdown?.abort();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
    this.#node = undefined;
    await node.stop();
    this.#log.info('gossip stopped');
  }

  // ---- publishing (this host's own records) ----

  async publishHost(advert: HostAdvert = {}): Promise<void> {
    const host = create(HostRecordSchema, {
      ...advert,
      hostId: this.#ensureStarted('publishHost'),
      gossipAddresses: this.multiaddrs,
    });
    await this.#publishOwn(`host/${this.#hostId}`, { case: 'host', value: host });
  }

  async publishWorkload(w: WorkloadAdvert): Promise<void> {
    const value: WorkloadRecord = create(WorkloadRecordSchema, {
      workloadId: w.workloadId,
      tenant: w.tenant,
      opaqueAddress: w.opaqueAddress,
      hostId: this.#ensureStarted('publishWorkload'),
      deliverySid: w.deliverySid ?? new Uint8Array(),
    });
    await this.#publishOwn(`workload/${this.#hostId}/${w.workloadId}`, { case: 'workload', value });
  }

  async removeWorkload(workloadId: string): Promise<void> {
    await this.#publishOwn(`workload/${this.#ensureStarted('removeWorkload')}/${workloadId}`, undefined);
  }

  async withdrawHost(): Promise<void> {
    await this.#publishOwn(`host/${this.#ensureStarted('withdrawHost')}`, undefined);
  }

  /** Injects a record signed elsewhere (fabric records signed by the operator: `segmesh policy apply`). */
  async publishSigned(signed: SignedRecord | Uint8Array): Promise<{ ok: boolean; reason?: string }> {
    this.#ensureStarted('publishSigned');
    const r = await this.#ingest(signed, 'local', this.#hostId);
    if (r !== 'applied') return { ok: false, reason: r };
    const s = signed instanceof Uint8Array ? fromBinary(SignedRecordSchema, signed) : signed;
    await this.#publishMessage({ case: 'record', value: s });
    return { ok: true };
  }

  // ---- reading ----

  view(): FabricView {
    this.#refreshView();
    return this.#index.view;
  }

  snapshot(): GossipSnapshot {
    const v = this.view();
    let tombstones = 0;
    for (const e of this.#store.entries()) if (e.deleted) tombstones++;
    const hmac = (r: HmacKeyRecord) => ({
      keyId: r.keyId,
      secret: '<redacted>' as const,
      notBeforeMs: Number(r.notBeforeMs),
      notAfterMs: Number(r.notAfterMs),
    });
    return {
      hostId: this.#hostId,
      hosts: [...v.hosts.values()].map((h) => ({
        id: h.id,
        name: h.record.name,
        state: h.state,
        version: h.version,
      })),
      workloads: [...v.workloads.values()].map((w: WorkloadView) => ({
        id: w.id,
        hostId: w.hostId,
        tenant: w.tenant,
        address: w.address,
        deliverySid: hex(w.record.deliverySid),
        version: w.version,
      })),
      tenants: [...v.tenants.values()].map((t) => ({
        name: t.record.name,
        prefixes: t.record.prefixes.length,
        routeTargets: [...t.record.routeTargets],
        version: t.version,
      })),
      policies: [...v.policies.values()].map((p) => ({
        name: p.record.name,
        tenant: p.record.tenant,
        rules: p.record.rules.length,
        version: p.version,
      })),
      hmacKeys: [...v.hmacKeys.values()].map((k) => hmac(k.record)),
      conflicts: v.conflicts,
      stats: this.stats(tombstones),
    };
  }

  stats(tombstones?: number): GossipStats {
    let t = tombstones;
    if (t === undefined) {
      t = 0;
      for (const e of this.#store.entries()) if (e.deleted) t++;
    }
    return structuredClone({ ...this.#stats, records: this.#store.size - t, tombstones: t });
  }

  /** Every entry of the replicated map (keys, versions, tombstones): for tests and debugging. */
  entries(): { key: string; version: Version; deleted: boolean }[] {
    return [...this.#store.entries()].map((e) => ({ key: e.key, version: e.version, deleted: e.deleted }));
  }

  /** Refuses connections from these peers and closes existing ones (eviction; partitions in tests). */
  async denyPeers(peerIds: readonly string[]): Promise<void> {
    for (const id of peerIds) this.#denied.add(id);
    const node = this.#node;
    if (node === undefined) return;
    await Promise.all(peerIds.map((id) => node.hangUp(peerIdFromString(id)).catch(() => {})));
  }

  allowPeers(peerIds: readonly string[]): void {
    for (const id of peerIds) this.#denied.delete(id);
  }

  /** Runs one anti-entropy exchange with `peer` now (also done on connect and periodically). */
  async syncWith(peer: string): Promise<void> {
    const node = this.#node;
    if (node === undefined || this.#syncing.has(peer)) return;
    this.#syncing.add(peer);
    this.#stats.antiEntropy.runs++;
    const signal = AbortSignal.any([
      AbortSignal.timeout(DEFAULTS.antiEntropyTimeoutMs),
      this.#shutdown?.signal ?? new AbortController().signal,
    ]);
    let stream: Stream | undefined;
    try {
      stream = await node.dialProtocol(peerIdFromString(peer), ANTI_ENTROPY_PROTOCOL, { signal });
      const lp = lpStream(stream, { maxDataLength: DEFAULTS.maxFrameBytes });
      const now = this.#clock();
      const wantSnapshot = needsSnapshot(this.#lastSyncMs, now, this.#opts.tombstoneTtlMs);
      const digest = create(DigestSchema, {
        buckets: [...this.#store.bucketDigests()],
        snapshotRequested: wantSnapshot,
        membershipCertificate: this.#init.membershipCertificate ?? new Uint8Array(),
      });
      await lp.write(toBinary(AntiEntropyFrameSchema, frame({ case: 'digest', value: digest })), { signal });
      const reply = fromBinary(AntiEntropyFrameSchema, (await lp.read({ signal })).subarray());
      if (reply.kind.case === 'records' && reply.kind.value.snapshot) {
        await this.#applySnapshot(reply.kind.value.records, peer);
      } else if (reply.kind.case === 'summaries') {
        const buckets = reply.kind.value.buckets;
        const summaries: Summary[] = reply.kind.value.summaries.map((s) => ({
          key: s.key,
          version: {
            wall: Number(s.version?.wallMs ?? 0n),
            counter: s.version?.counter ?? 0,
            origin: s.origin,
          },
          deleted: s.deleted,
        }));
        const plan = planExchange(this.#store, buckets, summaries, this.#clock());
        const push = plan.push.map((k) => this.#store.get(k)!.payload.signed);
        await lp.write(
          toBinary(
            AntiEntropyFrameSchema,
            frame({ case: 'exchange', value: create(ExchangeSchema, { push, fetch: plan.fetch }) }),
          ),
          { signal },
        );
        const got = fromBinary(AntiEntropyFrameSchema, (await lp.read({ signal })).subarray());
        if (got.kind.case !== 'records')
          throw new AntiEntropyError(peer, `expected records, got ${got.kind.case}`);
        for (const r of got.kind.value.records) await this.#ingest(r, 'anti-entropy', peer);
        this.#stats.antiEntropy.pushed += push.length;
        this.#stats.antiEntropy.fetched += got.kind.value.records.length;
      } else {
        throw new AntiEntropyError(peer, `unexpected reply ${reply.kind.case}`);
      }
      await stream.close({ signal }).catch(() => {});
      this.#lastSyncMs = this.#clock();
    } catch (err) {
      this.#stats.antiEntropy.failures++;
      stream?.abort(err as Error);
      this.#log.debug({ peer, err: (err as Error).message }, 'anti-entropy failed');
    } finally {
      this.#syncing.delete(peer);
    }
  }

  // ---- internals ----

  #ensureStarted(op: string): string {
    if (this.#node === undefined) throw new GossipNotStartedError(op);
    return this.#hostId;
  }

  #every(ms: number, fn: () => void | Promise<void>, jitter = false): void {
    const run = (): void => {
      if (this.#node === undefined) return;
      const delay = jitter ? ms * (0.75 + Math.random() * 0.5) : ms;
      const t = setTimeout(() => {
        this.#timers = this.#timers.filter((x) => x !== t);
        Promise.resolve()
          .then(fn)
          .catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'periodic task failed'))
          .finally(run);
      }, delay);
      t.unref?.();
      this.#timers.push(t);
    };
    run();
  }

  async #publishOwn(key: string, body: GossipRecord['body'] | undefined): Promise<void> {
    const t = this.#hlc.now(this.#clock());
    const record = create(RecordSchema, {
      key,
      version: create(HlcTimestampSchema, { wallMs: BigInt(t.wall), counter: t.counter }),
      origin: this.#hostId,
      deleted: body === undefined,
      body: body ?? { case: undefined },
    });
    if (body === undefined) this.#owned.delete(key);
    else this.#owned.set(key, record);
    await this.#signApplyPublish(record);
  }

  async #signApplyPublish(record: GossipRecord): Promise<void> {
    const signed = await signRecord(record, this.#init.privateKey, this.#init.membershipCertificate);
    const version = versionOf(record);
    this.#applyEntry(
      { key: record.key, version, deleted: record.deleted, payload: { signed, record } },
      'local',
    );
    await this.#publishMessage({ case: 'record', value: signed });
  }

  async #publishMessage(
    kind: { case: 'record'; value: SignedRecord } | { case: 'heartbeat'; value: SignedHeartbeat },
  ): Promise<void> {
    const node = this.#node;
    if (node === undefined) return;
    const data = toBinary(GossipMessageSchema, create(GossipMessageSchema, { kind }));
    try {
      await node.services.pubsub.publish(GOSSIP_TOPIC, data);
      this.#stats.gossip.published++;
    } catch (err) {
      // No peer yet: anti-entropy delivers the record when one connects.
      this.#log.debug({ err: (err as Error).message }, 'publish failed');
    }
  }

  async #heartbeat(): Promise<void> {
    const now = this.#clock();
    const self = this.#liveness.heard(this.#hostId, now);
    if (self !== undefined) this.#onTransition(self);
    for (const t of this.#liveness.tick(now)) this.#onTransition(t);
    this.#store.expire(now);
    if (now - this.#startedAt >= this.#opts.ownerGraceMs) await this.#reconcileOwned();
    this.#probeSuspects();
    const own = this.#store.originDigest(this.#hostId);
    const t = this.#hlc.now(now);
    this.#seq++;
    const heartbeat = create(HeartbeatSchema, {
      hostId: this.#hostId,
      clock: create(HlcTimestampSchema, { wallMs: BigInt(t.wall), counter: t.counter }),
      sequence: this.#seq,
      ownedDigest: own.digest,
      ownedCount: own.count,
    });
    this.#hbKnown.set(this.#hostId, this.#seq);
    this.#hbFresh.set(this.#hostId, await signHeartbeat(heartbeat, this.#init.privateKey));
    this.#scheduleView();
  }

  /** Sends the heartbeats learnt since the last flush to every neighbour, in one frame each. */
  async #flushHeartbeats(): Promise<void> {
    const node = this.#node;
    if (node === undefined || this.#hbFresh.size === 0) return;
    const frame = toBinary(
      HeartbeatBatchSchema,
      create(HeartbeatBatchSchema, { heartbeats: [...this.#hbFresh.values()] }),
    );
    this.#hbFresh = new Map();
    await Promise.allSettled(node.getPeers().map((p) => this.#sendHeartbeats(p.toString(), frame)));
  }

  async #sendHeartbeats(peer: string, frame: Uint8Array): Promise<void> {
    const node = this.#node;
    if (node === undefined) return;
    let out = this.#hbOut.get(peer);
    // A write still in flight (or a stream being opened): this batch is skipped for this peer; the
    // next one carries newer heartbeats, and other neighbours relay these.
    if (out === 'busy') return;
    this.#hbOut.set(peer, 'busy');
    try {
      if (out === undefined) {
        const stream = await node.dialProtocol(peerIdFromString(peer), HEARTBEAT_PROTOCOL, {
          signal: AbortSignal.timeout(2_000),
        });
        out = { stream, lp: lpStream(stream, { maxDataLength: DEFAULTS.maxFrameBytes }) };
      }
      await out.lp.write(frame, { signal: AbortSignal.timeout(2_000) });
      this.#hbOut.set(peer, out);
    } catch (err) {
      this.#hbOut.delete(peer);
      if (out !== undefined) out.stream.abort(err as Error);
    }
  }

  async #serveHeartbeats(stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString();
    const lp = lpStream(stream, { maxDataLength: DEFAULTS.maxFrameBytes });
    try {
      for (;;) {
        const batch = fromBinary(HeartbeatBatchSchema, (await lp.read()).subarray());
        for (const hb of batch.heartbeats) await this.#receiveHeartbeat(hb, peer);
      }
    } catch (err) {
      // End of stream (the neighbour went away) or a malformed frame.
      if (!(err instanceof Error && err.name === 'UnexpectedEOFError')) {
        this.#log.debug({ peer, err: (err as Error).message }, 'heartbeat stream ended');
      }
      stream.abort(err as Error);
    }
  }

  /** One relayed heartbeat: the first copy of each (host, sequence) is verified, applied and relayed. */
  async #receiveHeartbeat(signed: SignedHeartbeat, from: string): Promise<void> {
    let hostId: string;
    let seq: bigint;
    try {
      const hb = fromBinary(HeartbeatSchema, signed.payload);
      hostId = hb.hostId;
      seq = hb.sequence;
    } catch (err) {
      this.#reject('malformed', `heartbeat: ${(err as Error).message}`, from);
      return;
    }
    const known = this.#hbKnown.get(hostId);
    if (hostId === this.#hostId || (known !== undefined && seq <= known)) return;
    const opened = await openHeartbeat(signed);
    if (!opened.ok) {
      this.#reject(opened.reason, opened.detail, from);
      return;
    }
    if (this.#onHeartbeat(opened.heartbeat) !== Accept) return;
    this.#hbKnown.set(hostId, seq);
    this.#hbFresh.set(hostId, signed);
  }

  /**
   * Owner authority: a record of this host that it no longer asserts (left over from before a restart,
   * or resurrected by a stale peer) is deleted again; one newer than what it asserts is overridden.
   */
  async #reconcileOwned(): Promise<void> {
    for (const e of [...this.#store.entries()]) {
      if (e.version.origin !== this.#hostId) continue;
      const mine = this.#owned.get(e.key);
      if (mine === undefined) {
        if (!e.deleted) await this.#publishOwn(e.key, undefined);
      } else if (e.deleted || e.payload.record !== mine) {
        await this.#publishOwn(e.key, mine.body);
      }
    }
    for (const [key, mine] of this.#owned) {
      if (this.#store.get(key) === undefined) await this.#publishOwn(key, mine.body);
    }
  }

  #probeSuspects(): void {
    const probe = this.#probe;
    if (probe === undefined) return;
    for (const host of this.#liveness.suspects()) {
      if (this.#probing.has(host)) continue;
      const view = this.#index.view.hosts.get(host);
      if (view === undefined) continue;
      this.#probing.add(host);
      probe(view)
        .catch(() => false)
        .then((ok) => {
          const t = this.#liveness.probeResult(host, ok, this.#clock());
          if (t !== undefined) this.#onTransition(t);
        })
        .finally(() => this.#probing.delete(host));
    }
  }

  async #antiEntropyTick(): Promise<void> {
    const node = this.#node;
    if (node === undefined) return;
    const peers = node.getPeers().map((p) => p.toString());
    const [peer] = randomPick(peers, 1);
    if (peer !== undefined) await this.syncWith(peer);
  }

  async #dialBootstrap(): Promise<void> {
    const node = this.#node;
    if (node === undefined) return;
    await Promise.all(
      (this.#init.bootstrap ?? []).map(async (addr) => {
        try {
          await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(5_000) });
        } catch (err) {
          this.#log.debug({ addr, err: (err as Error).message }, 'bootstrap dial failed');
        }
      }),
    );
  }

  async #maintainConnections(): Promise<void> {
    const node = this.#node;
    if (node === undefined) return;
    const connected = new Set(node.getPeers().map((p) => p.toString()));
    if (connected.size === 0) await this.#dialBootstrap();
    const want = this.#opts.targetPeers - connected.size;
    if (want <= 0) return;
    const candidates = [...this.#index.view.hosts.values()].filter(
      (h) =>
        h.id !== this.#hostId &&
        !connected.has(h.id) &&
        !this.#denied.has(h.id) &&
        h.state !== 'dead' &&
        h.record.gossipAddresses.length > 0,
    );
    await Promise.all(
      randomPick(candidates, Math.min(want, 2)).map(async (h) => {
        try {
          await node.dial(
            h.record.gossipAddresses.map((a) => multiaddr(a)),
            { signal: AbortSignal.timeout(3_000) },
          );
        } catch {
          // Unreachable now; tried again on a later tick.
        }
      }),
    );
  }

  /** Counts every rejection; logs at most one line per reason per second (with how many it skipped). */
  #reject(reason: RejectReason, detail: string, from: string): void {
    this.#stats.rejected[reason] = (this.#stats.rejected[reason] ?? 0) + 1;
    const now = Date.now();
    const last = this.#rejectLog.get(reason);
    if (last === undefined || now - last.at >= 1_000) {
      this.#log.warn({ reason, from, detail, suppressed: last?.suppressed ?? 0 }, 'rejected');
      this.#rejectLog.set(reason, { at: now, suppressed: 0 });
    } else {
      last.suppressed++;
    }
    this.safeDispatchEvent('rejected', { detail: { reason, detail, from } });
  }

  async #validate(peer: PeerId, msg: Message): Promise<Verdict> {
    // The topic is StrictNoSign: the publisher is known only from our own signatures inside.
    const from = peer.toString();
    this.#stats.gossip.received++;
    if (msg.data.length > this.#opts.maxRecordBytes + 1024) {
      this.#reject('oversized', `gossip message of ${msg.data.length} bytes`, peer.toString());
      return Reject;
    }
    let m: GossipMessage;
    try {
      m = fromBinary(GossipMessageSchema, msg.data);
    } catch (err) {
      this.#reject('malformed', `gossip message: ${(err as Error).message}`, peer.toString());
      return Reject;
    }
    const kind = m.kind.case;
    if (kind === undefined) {
      this.#reject('malformed', 'empty gossip message', peer.toString());
      return Reject;
    }
    if (this.#faults?.dropGossip?.(from, kind)) {
      this.#stats.gossip.dropped++;
      return Ignore;
    }
    if (kind === 'heartbeat') {
      const opened = await openHeartbeat(m.kind.value);
      if (!opened.ok) {
        this.#reject(opened.reason, opened.detail, from);
        return Reject;
      }
      return this.#onHeartbeat(opened.heartbeat);
    }
    const r = await this.#ingest(m.kind.value, 'gossip', from);
    if (r === 'applied' || r === 'stale' || r === 'duplicate' || r === 'expired')
      return r === 'applied' ? Accept : Ignore;
    return Reject;
  }

  /** A heartbeat whose signature by `hb.hostId` has been verified. */
  #onHeartbeat(hb: Heartbeat): Verdict {
    const from = hb.hostId;
    if (this.#trust.allowlist !== undefined && !this.#trust.allowlist.has(from)) {
      this.#reject('not_member', `heartbeat from ${from}`, from);
      return Reject;
    }
    // With a cluster key, only hosts whose certified host record we hold count as heard.
    if (this.#trust.clusterKey !== undefined && !this.#certs.has(from)) return Ignore;
    const now = this.#clock();
    if (hb.clock !== undefined) {
      try {
        this.#hlc.receive({ wall: Number(hb.clock.wallMs), counter: hb.clock.counter }, now);
      } catch (err) {
        if (err instanceof ClockSkewError) {
          this.#reject('clock_skew', err.message, from);
          return Reject;
        }
        throw err;
      }
    }
    const t = this.#liveness.heard(from, now);
    if (t !== undefined) this.#onTransition(t);
    // Missed updates of this host: its digest differs from ours twice in a row -> anti-entropy with it.
    const mine = this.#store.originDigest(from);
    if (mine.digest !== hb.ownedDigest || mine.count !== hb.ownedCount) {
      const n = (this.#mismatch.get(from) ?? 0) + 1;
      this.#mismatch.set(from, n);
      if (n >= 2) {
        this.#mismatch.set(from, 0);
        const connected = this.#node?.getPeers().some((p) => p.toString() === from) ?? false;
        const target = connected
          ? from
          : randomPick(this.#node?.getPeers().map((p) => p.toString()) ?? [], 1)[0];
        if (target !== undefined) void this.syncWith(target);
      }
    } else {
      this.#mismatch.delete(from);
    }
    return Accept;
  }

  /** Validates and applies one signed record from any source. */
  async #ingest(
    input: SignedRecord | Uint8Array,
    source: RecordSource,
    from: string,
  ): Promise<RejectReason | 'applied' | 'stale' | 'duplicate' | 'expired'> {
    const d = decodeSigned(input, this.#opts.maxRecordBytes);
    if (!d.ok) {
      this.#reject(d.reason, d.detail, from);
      return d.reason;
    }
    const rec = d.value;
    const now = this.#clock();
    const cur = this.#store.get(rec.record.key);
    if (!this.#store.wouldApply(rec.record.key, rec.version, rec.record.deleted, now)) {
      if (
        cur !== undefined &&
        cur.version.wall === rec.version.wall &&
        cur.version.counter === rec.version.counter &&
        cur.version.origin === rec.version.origin
      ) {
        return 'duplicate';
      }
      return rec.record.deleted && this.#store.isExpiredTombstone(rec.version, now) ? 'expired' : 'stale';
    }
    // Skew is checked before the signature (cheap), but the clock only moves for authentic records:
    // a forged record must not drag this host's HLC forward.
    if (rec.version.wall - now > this.#hlc.maxDriftMs) {
      const err = new ClockSkewError(rec.version, now, this.#hlc.maxDriftMs);
      this.#reject('clock_skew', err.message, from);
      return 'clock_skew';
    }
    const auth = await authenticate(rec, this.#trust);
    if (!auth.ok) {
      this.#reject(auth.reason, auth.detail, from);
      return auth.reason;
    }
    this.#hlc.receive(rec.version, this.#clock());
    if (rec.key.owner !== OPERATOR_ORIGIN && rec.record.body.case === 'host')
      this.#certs.set(rec.key.owner, rec.signed.membershipCertificate);
    const result = this.#applyEntry(toEntry(rec), source);
    // A fresh version of a host's record (host or workload) on the topic proves the host alive: only
    // it can sign one, and only owners publish on the topic. Relayed host records only make it known.
    if (rec.key.owner !== OPERATOR_ORIGIN && !(rec.key.kind === 'host' && rec.record.deleted)) {
      let t: Transition | undefined;
      if (source === 'gossip') t = this.#liveness.heard(rec.key.owner, now);
      else if (rec.key.kind === 'host') t = this.#liveness.learned(rec.key.owner, now);
      if (t !== undefined) this.#onTransition(t);
    }
    return result;
  }

  #applyEntry(entry: Entry<Payload>, source: RecordSource): 'applied' | 'stale' | 'duplicate' | 'expired' {
    const r = this.#store.apply(entry, this.#clock());
    if (r === 'applied') {
      this.#index.set(entry.key, { ...entry, record: entry.payload.record });
      this.safeDispatchEvent('record', {
        detail: { key: entry.key, version: entry.version, deleted: entry.deleted, source },
      });
      this.#scheduleView();
    }
    return r;
  }

  async #applySnapshot(records: readonly SignedRecord[], peer: string): Promise<void> {
    this.#stats.antiEntropy.snapshots++;
    this.#log.info(
      { peer, records: records.length },
      'resyncing from a full snapshot (away longer than the tombstone TTL)',
    );
    const keep = new Set<string>();
    for (const r of records) {
      const d = decodeSigned(r, this.#opts.maxRecordBytes);
      if (d.ok) keep.add(d.value.record.key);
    }
    for (const e of [...this.#store.entries()]) {
      if (!keep.has(e.key) && e.version.origin !== this.#hostId) {
        this.#store.delete(e.key);
        this.#index.set(e.key, undefined);
      }
    }
    for (const r of records) await this.#ingest(r, 'snapshot', peer);
    this.#scheduleView();
  }

  async #serveAntiEntropy(stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString();
    const signal = AbortSignal.timeout(DEFAULTS.antiEntropyTimeoutMs);
    try {
      const lp = lpStream(stream, { maxDataLength: DEFAULTS.maxFrameBytes });
      const first = fromBinary(AntiEntropyFrameSchema, (await lp.read({ signal })).subarray());
      if (first.kind.case !== 'digest')
        throw new AntiEntropyError(peer, `expected digest, got ${first.kind.case}`);
      const digest = first.kind.value;
      if (!(await isMember(peer, digest.membershipCertificate, this.#trust))) {
        this.#reject('not_member', `anti-entropy from ${peer}`, peer);
        await this.denyPeers([peer]);
        return;
      }
      this.#stats.antiEntropy.served++;
      const now = this.#clock();
      if (digest.snapshotRequested) {
        const all = [...this.#store.entries()]
          .filter((e) => !(e.deleted && this.#store.isExpiredTombstone(e.version, now)))
          .map((e) => e.payload.signed);
        await lp.write(
          toBinary(
            AntiEntropyFrameSchema,
            frame({ case: 'records', value: create(RecordsSchema, { records: all, snapshot: true }) }),
          ),
          { signal },
        );
        await stream.close({ signal }).catch(() => {});
        return;
      }
      // A node that is itself stale offers nothing (it could resurrect deleted records); it resyncs itself.
      const stale = needsSnapshot(this.#lastSyncMs, now, this.#opts.tombstoneTtlMs);
      const buckets = stale ? [] : differingBuckets(this.#store.bucketDigests(), digest.buckets);
      const summaries = summarize(this.#store, buckets).map((s) =>
        create(RecordSummarySchema, {
          key: s.key,
          version: create(HlcTimestampSchema, { wallMs: BigInt(s.version.wall), counter: s.version.counter }),
          origin: s.version.origin,
          deleted: s.deleted,
        }),
      );
      await lp.write(
        toBinary(
          AntiEntropyFrameSchema,
          frame({ case: 'summaries', value: create(SummariesSchema, { buckets, summaries }) }),
        ),
        { signal },
      );
      const ex = fromBinary(AntiEntropyFrameSchema, (await lp.read({ signal })).subarray());
      if (ex.kind.case !== 'exchange')
        throw new AntiEntropyError(peer, `expected exchange, got ${ex.kind.case}`);
      const records = ex.kind.value.fetch
        .map((k) => this.#store.get(k)?.payload.signed)
        .filter((s): s is SignedRecord => s !== undefined);
      await lp.write(
        toBinary(
          AntiEntropyFrameSchema,
          frame({ case: 'records', value: create(RecordsSchema, { records }) }),
        ),
        {
          signal,
        },
      );
      for (const r of ex.kind.value.push) await this.#ingest(r, 'anti-entropy', peer);
      await stream.close({ signal }).catch(() => {});
    } catch (err) {
      stream.abort(err as Error);
      this.#log.debug({ peer, err: (err as Error).message }, 'serving anti-entropy failed');
    }
  }

  #onTransition(t: Transition): void {
    if (t.to === 'suspect' && t.from === 'alive') this.#stats.liveness.suspected++;
    else if (t.to === 'dead') this.#stats.liveness.died++;
    else if (t.to === 'alive' && t.from !== undefined) this.#stats.liveness.recovered++;
    this.#log.info({ host: t.host, from: t.from, to: t.to, reason: t.reason }, 'host liveness');
    this.#index.touchHost(t.host);
    this.#scheduleView();
  }

  /** Views are recomputed at most every VIEW_BATCH_MS (readers force a refresh with view()). */
  #scheduleView(): void {
    if (this.#viewDirty) return;
    this.#viewDirty = true;
    const t = setTimeout(() => this.#refreshView(), VIEW_BATCH_MS);
    t.unref?.();
  }

  #refreshView(): void {
    if (!this.#viewDirty && this.#index.view !== EMPTY_VIEW) return;
    this.#viewDirty = false;
    const events = this.#index.flush(this.#liveness.hosts());
    for (const ev of events) {
      this.safeDispatchEvent(ev.type, { detail: ev as never });
      if (ev.type === 'conflict') {
        this.#log.warn({ conflict: ev.conflict }, 'address conflict: the newest claim wins');
        if (ev.conflict.loser.hostId === this.#hostId) {
          this.#stats.conflictsLost++;
          this.safeDispatchEvent('conflict-lost', { detail: ev.conflict });
        }
      }
    }
  }
}

function frame(kind: AntiEntropyFrame['kind']): AntiEntropyFrame {
  return create(AntiEntropyFrameSchema, { kind });
}

function toEntry(d: DecodedRecord): Entry<Payload> {
  return {
    key: d.record.key,
    version: d.version,
    deleted: d.record.deleted,
    payload: { signed: d.signed, record: d.record },
  };
}

export type { Timestamp };
