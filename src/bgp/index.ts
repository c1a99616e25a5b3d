/**
 * BGP SRv6 signalling through a GoBGP sidecar.
 *
 * The agent advertises its locator (IPv6 unicast) and its tenants' routes (VPNv6 with the RFC 9252
 * Prefix-SID) to the edge routers, and learns the edges' routes, validated and with their SIDs
 * rebuilt, as external routes for the data plane and the path computation.
 *
 * ```ts
 * const b = bgp({ asn: 65101, routerId: '198.18.0.1', nextHop: '2001:db8:12::1', ... })({ logger });
 * b.on('route:add', (r) => dataplane.addExternal(r));
 * await b.start();
 * await b.advertise([advert]);
 * ```
 *
 * gobgpd runs in its own process group and outlives the agent: `stop()` leaves it running unless
 * asked otherwise; a restarted agent adopts it and diffs its own paths against ListPath.
 */
import { EventEmitter } from 'node:events';
import { create, toBinary } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import {
  Conditions_RouteType,
  DefinedType,
  MatchSet_Type,
  type Path,
  PathSchema,
  type Peer,
  PeerState_SessionState,
  PolicyDirection,
  RouteAction,
  TableType,
  WatchEventRequest_Table_Filter_Type,
  WatchEventResponse_PeerEvent_Type,
} from '../gen/gobgp/gobgp_pb.js';
import {
  formatIpv6,
  formatPrefix,
  type Ipv6Address,
  type Ipv6Prefix,
  parseIpv6,
  parsePrefix,
} from '../srv6/address.ts';
import {
  type ApiShapeError,
  communitiesToApi,
  FAMILY_IPV6_UNICAST,
  FAMILY_VPNV6,
  family,
  GRACEFUL_SHUTDOWN_COMMUNITY,
  isLocalPath,
  pathFromApi,
  type ReceivedPath,
  type ReceivedVpnPath,
  SAFI_MPLS_VPN,
  unicastPathToApi,
} from './api.ts';
import type { GobgpClient } from './client.ts';
import { BgpConfigError } from './errors.ts';
import { addPathStreamRequestBytes, withAttributeBytes, withdrawPathBytes } from './path-bytes.ts';
import {
  AdvertEncoder,
  communitySignature,
  EdgeLocatorTable,
  type ExternalRoute,
  InvalidReason,
  type LearnPolicy,
  learnVpnPath,
  pathSignature,
  receivedKey,
  type VpnAdvert,
  vpnKey,
} from './routes.ts';
import {
  type AttachSidecarOptions,
  GobgpSidecar,
  type ManagedSidecarOptions,
  type SidecarOptions,
} from './sidecar.ts';
import { formatRd, parseRd } from './update.ts';

export { advertsForHost, externalRouteInputs, hostTenantRd } from './adverts.ts';
export type { ExternalRoute, InvalidReason, VpnAdvert } from './routes.ts';
export { vpnKey } from './routes.ts';

export type BgpFamily = 'ipv6-unicast' | 'l3vpn-ipv6-unicast' | 'l3vpn-ipv4-unicast';

export interface BgpPeerConfig {
  readonly address: string;
  readonly asn: number;
  /** TCP-MD5 (RFC 2385) password. */
  readonly password?: string;
  /** Default: IPv6 unicast and VPNv6. */
  readonly families?: readonly BgpFamily[];
  /** Max prefixes accepted per family; the session is torn down above it. */
  readonly maxPrefixes?: number;
  /** The peer's SRv6 locators (besides those learned from its IPv6 unicast routes). */
  readonly locators?: readonly string[];
  readonly localAddress?: string;
  readonly description?: string;
}

export interface BgpTenant {
  readonly name: string;
  /** Route target of the tenant's VPN, e.g. `65000:100`. */
  readonly routeTarget: string;
}

export interface BgpInit {
  /** Default: a managed sidecar in `/run/segmesh/gobgpd`. */
  readonly sidecar?: Omit<ManagedSidecarOptions, 'global'> | Omit<AttachSidecarOptions, 'global'>;
  /** One AS shared by every host: AS-path loop detection then drops what an edge reflects back. */
  readonly asn: number;
  readonly routerId: string;
  readonly listenPort?: number;
  readonly localAddresses?: readonly string[];
  readonly peers: readonly BgpPeerConfig[];
  /** The host's underlay address: next hop of everything it advertises. */
  readonly nextHop: string;
  /** The host's locator, advertised as an IPv6 unicast prefix. */
  readonly locator?: string;
  /** RFC 9252 transposition of the function into the label (default true, as FRR does). */
  readonly transposition?: boolean;
  readonly tenants: readonly BgpTenant[];
  /** The fabric's own route targets: a received route carrying one is dropped. */
  readonly fabricRouteTargets?: readonly string[];
  /** Every fabric locator (and the SID block): received SIDs inside are dropped. Update with setFabricLocators. */
  readonly fabricLocators?: readonly string[];
  /** The fabric's dead interval; BGP hold time = this, keepalive = a third of it (default 9 s). */
  readonly deadIntervalMs?: number;
  /** Graceful restart (RFC 4724) capability towards the peers; see docs/bgp.md. */
  readonly gracefulRestart?: boolean;
  /** Install a GoBGP import policy that accepts VPN routes of known tenants' RTs only (default true). */
  readonly routeTargetImportFilter?: boolean;
  /** Paths per AddPathStream request (default 512). */
  readonly streamBatch?: number;
  /** Leave gobgpd running on stop() (default true: an agent restart must not drop the routes). */
  readonly keepSidecarOnStop?: boolean;
}

export interface BgpComponents {
  readonly logger: Logger;
}

export interface Startable {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface BgpEvents {
  'route:add': [ExternalRoute];
  'route:delete': [ExternalRoute];
  'route:invalid': [{ readonly reason: InvalidReason; readonly detail: string; readonly peer: string }];
  'peer:state': [{ readonly address: string; readonly established: boolean }];
  'sidecar:restarted': [{ readonly pid: number }];
}

export interface BgpStats {
  readonly advertised: number;
  readonly learned: number;
  readonly invalid: Readonly<Record<InvalidReason, number>>;
  /** Received routes dropped for an AS-path loop (our own routes reflected by an edge). */
  readonly looped: number;
  readonly sidecarRestarts: number;
  readonly established: readonly string[];
}

export interface Bgp extends Startable, EventEmitter<BgpEvents> {
  /** Adds or replaces (same RD and prefix: a move) VPN routes, in bulk through AddPathStream. */
  advertise(adverts: readonly VpnAdvert[]): Promise<void>;
  /** Withdraws VPN routes by RD and prefix. */
  withdraw(routes: readonly Pick<VpnAdvert, 'rd' | 'prefix'>[]): Promise<void>;
  /** Makes the advertised VPN routes exactly `adverts`. */
  setAdverts(adverts: readonly VpnAdvert[]): Promise<void>;
  setFabricLocators(locators: readonly string[]): void;
  setTenants(tenants: readonly BgpTenant[]): Promise<void>;
  externalRoutes(): ExternalRoute[];
  stats(): BgpStats;
  /**
   * RFC 8326: re-advertises every own path (VPN and locator) with the GRACEFUL_SHUTDOWN community, so
   * that the edge prefers any other path to the same prefixes while this host still forwards; paths
   * advertised later carry it too. Returns the number of paths re-advertised.
   */
  gracefulShutdown(): Promise<number>;
  /** Leaving the fabric: withdraws every own path, then stops gobgpd (even a kept one). */
  leave(): Promise<number>;
  readonly sidecar: GobgpSidecar;
}

const GSHUT_ATTRIBUTE = communitiesToApi([GRACEFUL_SHUTDOWN_COMMUNITY]);
const GSHUT_SIGNATURE = communitySignature([GRACEFUL_SHUTDOWN_COMMUNITY]);

const IMPORT_POLICY = 'segmesh-import';
const EXPORT_POLICY = 'segmesh-no-transit';
const TENANT_RT_SET = 'segmesh-tenant-rts';

/** Hold and keepalive from the fabric's dead interval (BGP: hold >= 3 s, keepalive = hold / 3). */
export function timersFromDeadInterval(deadIntervalMs: number): { holdTime: number; keepalive: number } {
  const holdTime = Math.min(65535, Math.max(3, Math.ceil(deadIntervalMs / 1000)));
  return { holdTime, keepalive: Math.max(1, Math.floor(holdTime / 3)) };
}

/** GR restart time: how long the edge keeps our routes while gobgpd restarts (RFC 4724, max 4095 s). */
export function restartTimeFromDeadInterval(deadIntervalMs: number): number {
  return Math.min(4095, Math.max(30, 4 * timersFromDeadInterval(deadIntervalMs).holdTime));
}

function familyOf(f: BgpFamily) {
  switch (f) {
    case 'ipv6-unicast':
      return FAMILY_IPV6_UNICAST;
    case 'l3vpn-ipv6-unicast':
      return FAMILY_VPNV6;
    case 'l3vpn-ipv4-unicast':
      return family(SAFI_MPLS_VPN, 1);
  }
}

/** The API Peer of a configured peer. */
export function peerToApi(p: BgpPeerConfig, init: Pick<BgpInit, 'deadIntervalMs' | 'gracefulRestart'>) {
  const { holdTime, keepalive } = timersFromDeadInterval(init.deadIntervalMs ?? 9_000);
  const families = p.families ?? ['ipv6-unicast', 'l3vpn-ipv6-unicast'];
  const gr = init.gracefulRestart ?? false;
  return {
    conf: {
      neighborAddress: p.address,
      peerAsn: p.asn,
      authPassword: p.password ?? '',
      description: p.description ?? 'segmesh edge',
    },
    timers: {
      config: { holdTime: BigInt(holdTime), keepaliveInterval: BigInt(keepalive), connectRetry: 5n },
    },
    transport: p.localAddress ? { localAddress: p.localAddress } : {},
    gracefulRestart: gr
      ? { enabled: true, restartTime: restartTimeFromDeadInterval(init.deadIntervalMs ?? 9_000) }
      : { enabled: false },
    afiSafis: families.map((f) => ({
      config: { family: familyOf(f), enabled: true },
      ...(gr ? { mpGracefulRestart: { config: { enabled: true } } } : {}),
      ...(p.maxPrefixes ? { prefixLimits: { family: familyOf(f), maxPrefixes: p.maxPrefixes } } : {}),
    })),
  };
}

/** True when a running gobgpd peer already has the parameters we would configure. */
function peerMatches(have: Peer, want: ReturnType<typeof peerToApi>): boolean {
  const fams = (afiSafis: readonly { config?: { family?: { afi: number; safi: number } } }[]) =>
    afiSafis
      .map((a) => `${a.config?.family?.afi}/${a.config?.family?.safi}`)
      .sort()
      .join();
  return (
    have.conf?.peerAsn === want.conf.peerAsn &&
    (have.conf?.authPassword ?? '') === want.conf.authPassword &&
    have.timers?.config?.holdTime === want.timers.config.holdTime &&
    (have.gracefulRestart?.enabled ?? false) === want.gracefulRestart.enabled &&
    fams(have.afiSafis) === fams(want.afiSafis as { config?: { family?: { afi: number; safi: number } } }[])
  );
}

function pathKey(p: ReceivedPath): string {
  return p.family === 'ipv6' ? `ipv6|${formatPrefix(p.prefix)}` : vpnKey(p.rd, p.prefix);
}

interface OwnPath {
  /** The encoded apipb.Path (see path-bytes.ts). */
  readonly bytes: Uint8Array;
  readonly sig: string;
}

class BgpService extends EventEmitter<BgpEvents> implements Bgp {
  readonly sidecar: GobgpSidecar;
  readonly #init: BgpInit;
  readonly #log: Logger;
  readonly #transposition: boolean;
  readonly #nextHop: Ipv6Address;
  readonly #batch: number;
  /** Desired own paths by key (VPN: RD|prefix; locator: ipv6|prefix). */
  readonly #own = new Map<string, OwnPath>();
  /**
   * Adopted gobgpd: own VPN paths it still carries that no one asked for yet. A restarted agent
   * knows what it wants only after its first reconcile; withdrawing them at adoption and advertising
   * them again a moment later made the edge delete and re-add the routes. The first setAdverts()
   * keeps those it wants (unchanged: nothing is sent) and withdraws the rest.
   */
  readonly #adopted = new Map<string, { sig: string; withdraw: Uint8Array }>();
  /** setAdverts() was called: the desired set is known (adoption can withdraw at once). */
  #desiredKnown = false;
  readonly #encoder: AdvertEncoder;
  /** Received VPN paths (valid or not) by peer|RD|prefix: re-judged when the policy changes. */
  readonly #received = new Map<string, ReceivedVpnPath>();
  readonly #learned = new Map<string, ExternalRoute>();
  readonly #edge: EdgeLocatorTable;
  readonly #established = new Set<string>();
  readonly #invalid: Record<InvalidReason, number>;
  #looped = 0;
  #restarts = 0;
  #tenants: readonly BgpTenant[];
  #fabricLocators: Ipv6Prefix[];
  #fabricRts: Set<string>;
  #tenantsByRt = new Map<string, string>();
  #client: GobgpClient | undefined;
  #watchAbort: AbortController | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #running = false;
  #gshut = false;

  constructor(init: BgpInit, components: BgpComponents) {
    super();
    this.#init = init;
    this.#log = components.logger.child({ component: 'bgp' });
    this.#transposition = init.transposition ?? true;
    this.#nextHop = parseIpv6(init.nextHop);
    this.#batch = init.streamBatch ?? 512;
    this.#encoder = new AdvertEncoder(this.#transposition);
    this.#tenants = init.tenants;
    this.#fabricLocators = (init.fabricLocators ?? []).map(parsePrefix);
    this.#fabricRts = new Set((init.fabricRouteTargets ?? []).map((t) => formatRd(parseRd(t))));
    this.#indexTenants();
    this.#edge = new EdgeLocatorTable(
      new Map(init.peers.map((p) => [p.address, (p.locators ?? []).map(parsePrefix)])),
    );
    this.#invalid = Object.fromEntries(Object.values(InvalidReason).map((r) => [r, 0])) as Record<
      InvalidReason,
      number
    >;
    const sc = init.sidecar ?? { mode: 'managed' as const, runDir: '/run/segmesh/gobgpd' };
    const global = {
      asn: init.asn,
      routerId: init.routerId,
      ...(init.listenPort !== undefined ? { listenPort: init.listenPort } : {}),
      ...(init.localAddresses ? { localAddresses: init.localAddresses } : {}),
    };
    const gr = sc.mode === 'managed' && init.gracefulRestart ? { gracefulRestart: true } : {};
    this.sidecar = new GobgpSidecar({ ...sc, ...gr, global } as SidecarOptions, this.#log);
    if (init.locator) {
      const loc = parsePrefix(init.locator);
      const path = unicastPathToApi(loc, this.#nextHop);
      this.#own.set(`ipv6|${formatPrefix(loc)}`, {
        bytes: toBinary(PathSchema, path),
        sig: pathSignature(pathFromApi(path)!),
      });
    }
    this.sidecar.on('restarted', ({ pid }) => {
      this.#restarts++;
      this.emit('sidecar:restarted', { pid });
      void this.#serial(() => this.#resync(false)).catch((e) =>
        this.#log.error({ err: e }, 'reconfiguring the restarted gobgpd failed'),
      );
    });
    this.sidecar.on('died', () => {
      this.#watchAbort?.abort();
      this.#dropAllLearned();
    });
  }

  #indexTenants(): void {
    this.#tenantsByRt = new Map(this.#tenants.map((t) => [formatRd(parseRd(t.routeTarget)), t.name]));
  }

  /** Runs gobgpd operations one at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn, fn);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  get #policy(): LearnPolicy {
    return {
      tenantsByRouteTarget: this.#tenantsByRt,
      fabricRouteTargets: this.#fabricRts,
      fabricLocators: this.#fabricLocators,
      edgeLocators: (peer) => this.#edge.forPeer(peer),
    };
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      const { adopted } = await this.sidecar.start();
      await this.#serial(() => this.#resync(adopted));
    } catch (e) {
      this.#running = false;
      this.#watchAbort?.abort();
      await this.sidecar.stop({ keepRunning: this.#init.keepSidecarOnStop ?? true }).catch(() => undefined);
      throw e;
    }
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#watchAbort?.abort();
    await this.#chain;
    await this.sidecar.stop({ keepRunning: this.#init.keepSidecarOnStop ?? true });
    this.#client = undefined;
  }

  /** (Re)configures gobgpd and makes its own paths match the desired ones, then (re)starts the watch. */
  async #resync(adopted: boolean): Promise<void> {
    const client = this.sidecar.client;
    this.#client = client;
    await this.#configureExportPolicy(client);
    await this.#configurePolicy(client);
    await this.#configurePeers(client, adopted);
    if (adopted) {
      await this.#diffOwnPaths(client);
      await this.#loadReceived(client);
    } else {
      await this.#push(
        client,
        [...this.#own.values()].map((o) => o.bytes),
      );
    }
    this.#startWatch(client);
  }

  async #configurePeers(client: GobgpClient, adopted: boolean): Promise<void> {
    const existing = new Map<string, Peer>();
    if (adopted) {
      for (const r of await client.list('listPeer', {})) {
        if (r.peer?.conf) existing.set(r.peer.conf.neighborAddress, r.peer);
      }
    }
    for (const p of this.#init.peers) {
      const peer = peerToApi(p, this.#init);
      const have = existing.get(p.address);
      if (have && peerMatches(have, peer)) continue;
      if (have) {
        // Changing a running session's parameters makes GoBGP reset it: only when they differ.
        this.#log.info(
          { peer: p.address },
          'peer configuration changed; updating gobgpd (session may reset)',
        );
        const res = await client.unary('updatePeer', { peer, doSoftResetIn: false });
        if (res.needsSoftResetIn)
          await client.unary('resetPeer', { address: p.address, soft: true, direction: 0 });
      } else {
        await client.unary('addPeer', { peer });
      }
    }
    this.#log.info({ peers: this.#init.peers.map((p) => p.address), adopted }, 'peers configured');
  }

  /**
   * No transit: gobgpd advertises only what the agent originated. Without it, a host peering with two
   * edges would pass one edge's routes to the other.
   */
  async #configureExportPolicy(client: GobgpClient): Promise<void> {
    const existing = await client.list('listPolicyAssignment', {
      name: 'global',
      direction: PolicyDirection.EXPORT,
    });
    if (existing.some((a) => a.assignment?.policies.some((p) => p.name === EXPORT_POLICY))) return;
    await client.unary('addPolicy', {
      policy: {
        name: EXPORT_POLICY,
        statements: [
          {
            name: `${EXPORT_POLICY}-external`,
            conditions: { routeType: Conditions_RouteType.EXTERNAL },
            actions: { routeAction: RouteAction.REJECT },
          },
          {
            name: `${EXPORT_POLICY}-internal`,
            conditions: { routeType: Conditions_RouteType.INTERNAL },
            actions: { routeAction: RouteAction.REJECT },
          },
        ],
      },
      referExistingStatements: false,
    });
    await client.unary('addPolicyAssignment', {
      assignment: {
        name: 'global',
        direction: PolicyDirection.EXPORT,
        policies: [{ name: EXPORT_POLICY }],
        defaultAction: RouteAction.ACCEPT,
      },
    });
  }

  async #configurePolicy(client: GobgpClient): Promise<void> {
    if (this.#init.routeTargetImportFilter === false) return;
    const ignore = async (f: () => Promise<unknown>) => {
      try {
        await f();
      } catch {
        // absent: nothing to delete
      }
    };
    await ignore(() =>
      client.unary('deletePolicyAssignment', {
        assignment: {
          name: 'global',
          direction: PolicyDirection.IMPORT,
          policies: [{ name: IMPORT_POLICY }],
        },
        all: false,
      }),
    );
    await ignore(() =>
      client.unary('deletePolicy', { policy: { name: IMPORT_POLICY }, all: true, preserveStatements: false }),
    );
    await ignore(() =>
      client.unary('deleteDefinedSet', {
        definedSet: { definedType: DefinedType.EXT_COMMUNITY, name: TENANT_RT_SET },
        all: true,
      }),
    );
    const rts = [...this.#tenantsByRt.keys()];
    const statements = [];
    if (rts.length > 0) {
      await client.unary('addDefinedSet', {
        definedSet: {
          definedType: DefinedType.EXT_COMMUNITY,
          name: TENANT_RT_SET,
          list: rts.map((r) => `RT:${r}`),
        },
      });
      statements.push({
        name: `${IMPORT_POLICY}-unknown-rt`,
        conditions: {
          extCommunitySet: { name: TENANT_RT_SET, type: MatchSet_Type.INVERT },
          afiSafiIn: [FAMILY_VPNV6],
        },
        actions: { routeAction: RouteAction.REJECT },
      });
    } else {
      statements.push({
        name: `${IMPORT_POLICY}-no-tenant`,
        conditions: { afiSafiIn: [FAMILY_VPNV6] },
        actions: { routeAction: RouteAction.REJECT },
      });
    }
    await client.unary('addPolicy', {
      policy: { name: IMPORT_POLICY, statements },
      referExistingStatements: false,
    });
    await client.unary('addPolicyAssignment', {
      assignment: {
        name: 'global',
        direction: PolicyDirection.IMPORT,
        policies: [{ name: IMPORT_POLICY }],
        defaultAction: RouteAction.ACCEPT,
      },
    });
  }

  /**
   * Adopted gobgpd: the routes its peers sent while no agent watched, learned before start() returns,
   * so that the agent's first reconcile has them (the watch's initial dump arrives later; applying a
   * path twice is harmless).
   */
  async #loadReceived(client: GobgpClient): Promise<void> {
    for (const peer of this.#init.peers) {
      for (const family of [FAMILY_IPV6_UNICAST, FAMILY_VPNV6]) {
        try {
          for (const r of await client.list('listPath', {
            tableType: TableType.ADJ_IN,
            name: peer.address,
            family,
          }))
            for (const p of r.destination?.paths ?? []) this.#onPath(p);
        } catch (e) {
          // A peer that is down, or a family it does not speak: nothing received to load.
          this.#log.debug({ err: e, peer: peer.address }, 'no adj-in routes to load');
        }
      }
    }
  }

  /** Adopted gobgpd: withdraw own paths that are no longer wanted, (re)add changed and missing ones. */
  async #diffOwnPaths(client: GobgpClient): Promise<void> {
    const present = new Map<string, { path: Path; sig: string }>();
    for (const fam of [FAMILY_IPV6_UNICAST, FAMILY_VPNV6]) {
      for (const r of await client.list('listPath', { tableType: TableType.GLOBAL, family: fam })) {
        for (const p of r.destination?.paths ?? []) {
          if (!isLocalPath(p)) continue;
          const parsed = pathFromApi(p);
          if (parsed) present.set(pathKey(parsed), { path: p, sig: pathSignature(parsed) });
        }
      }
    }
    const add: Uint8Array[] = [];
    const del: Uint8Array[] = [];
    for (const [key, own] of this.#own) {
      if (present.get(key)?.sig !== own.sig) add.push(own.bytes);
    }
    for (const [key, p] of present) {
      if (this.#own.has(key)) continue;
      const withdraw = toBinary(PathSchema, create(PathSchema, { ...p.path, isWithdraw: true }));
      if (!this.#desiredKnown && !key.startsWith('ipv6|')) this.#adopted.set(key, { sig: p.sig, withdraw });
      else del.push(withdraw);
    }
    this.#log.info(
      { present: present.size, add: add.length, withdraw: del.length, pending: this.#adopted.size },
      'diffed own paths of adopted gobgpd',
    );
    await this.#push(client, [...del, ...add]);
  }

  async #push(client: GobgpClient, paths: readonly Uint8Array[]): Promise<void> {
    if (paths.length === 0) return;
    const batch = this.#batch;
    function* requests() {
      for (let i = 0; i < paths.length; i += batch)
        yield addPathStreamRequestBytes(paths.slice(i, i + batch));
    }
    await client.addPathStream(requests());
  }

  async advertise(adverts: readonly VpnAdvert[]): Promise<void> {
    const paths: Uint8Array[] = [];
    for (const a of adverts) {
      if (a.nextHop !== this.#nextHop) {
        throw new BgpConfigError(
          `advert ${vpnKey(a.rd, a.prefix)} has next hop ${formatIpv6(a.nextHop)}, this host's is ${this.#init.nextHop}`,
        );
      }
      const key = vpnKey(a.rd, a.prefix);
      let own = this.#encoder.encode(a);
      if (this.#gshut || a.movingAway) own = this.#withGshut(own);
      const adopted = this.#adopted.get(key);
      if (adopted) {
        this.#adopted.delete(key);
        if (adopted.sig === own.sig) {
          this.#own.set(key, own); // gobgpd has exactly this path already
          continue;
        }
      }
      if (this.#own.get(key)?.sig === own.sig) continue;
      this.#own.set(key, own);
      paths.push(own.bytes);
    }
    if (!this.#client) return; // pushed at start
    await this.#serial(() => this.#push(this.sidecar.client, paths));
  }

  withdraw(routes: readonly Pick<VpnAdvert, 'rd' | 'prefix'>[]): Promise<void> {
    return this.#withdrawKeys(routes.map((r) => vpnKey(r.rd, r.prefix)));
  }

  async #withdrawKeys(keys: readonly string[]): Promise<void> {
    const paths: Uint8Array[] = [];
    for (const key of keys) {
      const own = this.#own.get(key);
      if (!own) continue;
      this.#own.delete(key);
      paths.push(withdrawPathBytes(own.bytes));
    }
    if (!this.#client) return;
    await this.#serial(() => this.#push(this.sidecar.client, paths));
  }

  async setAdverts(adverts: readonly VpnAdvert[]): Promise<void> {
    const keep = new Set(adverts.map((a) => vpnKey(a.rd, a.prefix)));
    const gone = [...this.#own.keys()].filter((k) => !k.startsWith('ipv6|') && !keep.has(k));
    await this.#withdrawKeys(gone);
    await this.advertise(adverts);
    this.#desiredKnown = true;
    await this.#withdrawAdopted();
  }

  /** Withdraws the adopted paths no one asked for. */
  async #withdrawAdopted(): Promise<void> {
    if (this.#adopted.size === 0) return;
    const stale = [...this.#adopted.values()].map((a) => a.withdraw);
    this.#adopted.clear();
    this.#log.info({ withdrawn: stale.length }, 'withdrew adopted paths this agent no longer wants');
    if (this.#client) await this.#serial(() => this.#push(this.sidecar.client, stale));
  }

  #withGshut(own: OwnPath): OwnPath {
    return { bytes: withAttributeBytes(own.bytes, GSHUT_ATTRIBUTE), sig: own.sig + GSHUT_SIGNATURE };
  }

  async gracefulShutdown(): Promise<number> {
    if (this.#gshut) return 0;
    this.#gshut = true;
    const paths: Uint8Array[] = [];
    for (const [key, own] of this.#own) {
      const next = this.#withGshut(own);
      this.#own.set(key, next);
      paths.push(next.bytes);
    }
    this.#log.info({ paths: paths.length }, 'graceful shutdown: own paths re-advertised with 65535:0');
    if (this.#client) await this.#serial(() => this.#push(this.sidecar.client, paths));
    return paths.length;
  }

  async leave(): Promise<number> {
    const keys = [...this.#own.keys()];
    await this.#withdrawKeys(keys);
    await this.#withdrawAdopted();
    this.#running = false;
    this.#watchAbort?.abort();
    await this.#chain;
    await this.sidecar.stop({ keepRunning: false });
    this.#client = undefined;
    this.#log.info({ withdrawn: keys.length }, 'left: own paths withdrawn, gobgpd stopped');
    return keys.length;
  }

  setFabricLocators(locators: readonly string[]): void {
    this.#fabricLocators = locators.map(parsePrefix);
    this.#rejudge();
  }

  async setTenants(tenants: readonly BgpTenant[]): Promise<void> {
    this.#tenants = tenants;
    this.#indexTenants();
    if (this.#client) await this.#serial(() => this.#configurePolicy(this.sidecar.client));
    this.#rejudge();
  }

  externalRoutes(): ExternalRoute[] {
    return [...this.#learned.values()];
  }

  stats(): BgpStats {
    return {
      advertised: this.#own.size,
      learned: this.#learned.size,
      invalid: { ...this.#invalid },
      looped: this.#looped,
      sidecarRestarts: this.#restarts,
      established: [...this.#established],
    };
  }

  // -------------------------------------------------------------------------------------------
  // Learning

  #startWatch(client: GobgpClient): void {
    this.#watchAbort?.abort();
    const abort = new AbortController();
    this.#watchAbort = abort;
    void (async () => {
      try {
        for await (const ev of client.stream(
          'watchEvent',
          {
            peer: {},
            table: { filters: [{ type: WatchEventRequest_Table_Filter_Type.ADJIN, init: true }] },
          },
          { signal: abort.signal },
        )) {
          if (ev.event.case === 'table') {
            for (const p of ev.event.value.paths) this.#onPath(p);
          } else if (ev.event.case === 'peer') {
            const pe = ev.event.value;
            if (pe.type !== WatchEventResponse_PeerEvent_Type.STATE) continue;
            const address = pe.peer?.conf?.neighborAddress ?? pe.peer?.state?.neighborAddress ?? '';
            const up = pe.peer?.state?.sessionState === PeerState_SessionState.ESTABLISHED;
            this.#onPeerState(address, up);
          }
        }
      } catch (e) {
        if (!abort.signal.aborted) this.#log.warn({ err: e }, 'gobgpd event stream ended');
      }
      if (!abort.signal.aborted && this.#running && this.sidecar.options.mode === 'attach') {
        // An operator-run gobgpd went away: retry the watch; routes stay until it answers again.
        setTimeout(() => this.#running && this.#startWatch(client), 2_000).unref();
      }
    })();
  }

  #onPeerState(address: string, up: boolean): void {
    const was = this.#established.has(address);
    if (up === was) return;
    if (up) this.#established.add(address);
    else this.#established.delete(address);
    this.#log.info({ peer: address, established: up }, 'BGP session state');
    this.emit('peer:state', { address, established: up });
    if (!up) {
      for (const [k, p] of this.#received) if (p.peer === address) this.#received.delete(k);
      this.#edge.clearPeer(address);
      for (const [k, r] of this.#learned) {
        if (r.peer === address) {
          this.#learned.delete(k);
          this.emit('route:delete', r);
        }
      }
    }
  }

  #onPath(p: Path): void {
    if (isLocalPath(p)) return;
    let parsed: ReceivedPath | undefined;
    try {
      parsed = pathFromApi(p);
    } catch (e) {
      this.#count(InvalidReason.Malformed, `${p.neighborIp}: ${(e as ApiShapeError).message}`, p.neighborIp);
      return;
    }
    if (!parsed) return;
    if (parsed.family === 'ipv6') {
      if (this.#edge.apply(parsed, this.#fabricLocators)) this.#rejudge();
      return;
    }
    const key = receivedKey(parsed);
    if (parsed.withdraw) {
      this.#received.delete(key);
      this.#retract(key);
      return;
    }
    if (parsed.asPath.includes(this.#init.asn)) {
      this.#looped++;
      return;
    }
    this.#received.set(key, parsed);
    this.#judge(key, parsed, true);
  }

  #judge(key: string, p: ReceivedVpnPath, log: boolean): void {
    const out = learnVpnPath(p, this.#policy);
    if (!out.ok) {
      if (log) this.#count(out.reason, out.detail, p.peer);
      this.#retract(key);
      return;
    }
    this.#learned.set(key, out.route);
    this.emit('route:add', out.route);
  }

  #retract(key: string): void {
    const old = this.#learned.get(key);
    if (!old) return;
    this.#learned.delete(key);
    this.emit('route:delete', old);
  }

  /** Re-judges every received route after the policy (tenants, fabric, edge locators) changed. */
  #rejudge(): void {
    for (const [key, p] of this.#received) {
      const before = this.#learned.get(key);
      const out = learnVpnPath(p, this.#policy);
      if (out.ok) {
        if (!before || before.sid !== out.route.sid || before.tenants.join() !== out.route.tenants.join()) {
          this.#learned.set(key, out.route);
          this.emit('route:add', out.route);
        }
      } else if (before) {
        this.#retract(key);
      }
    }
  }

  #count(reason: InvalidReason, detail: string, peer: string): void {
    this.#invalid[reason]++;
    this.#log.warn({ reason, peer, count: this.#invalid[reason] }, `invalid BGP route ignored: ${detail}`);
    this.emit('route:invalid', { reason, detail, peer });
  }

  #dropAllLearned(): void {
    for (const r of this.#learned.values()) this.emit('route:delete', r);
    this.#learned.clear();
    this.#received.clear();
    for (const a of this.#established) this.emit('peer:state', { address: a, established: false });
    this.#established.clear();
  }
}

/** The BGP component factory, libp2p style: `bgp(init)(components)`. */
export function bgp(init: BgpInit): (components: BgpComponents) => Bgp {
  return (components) => new BgpService(init, components);
}
