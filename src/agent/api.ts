/**
 * The agent's local API: segmesh.v1.AgentService over gRPC on a unix socket (mode 0660, group
 * `segmesh`; never TCP). Who may call it is decided by the file system: a user outside the group
 * cannot connect. The socket's directory is prepared and locked by runtime.ts before the server binds.
 *
 * Bad input is the caller's mistake, not the agent's: it is answered with INVALID_ARGUMENT, NOT_FOUND,
 * ALREADY_EXISTS or FAILED_PRECONDITION and the message, and logged at warn without a stack; only an
 * unexpected failure is INTERNAL and logged as an error.
 */
import { chmod, chown, lstat, unlink } from 'node:fs/promises';
import {
  create,
  type DescMessage,
  type DescMethod,
  fromBinary,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import {
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { detectKernelFeatures, gobgpdVersion, type KernelFeatures } from '../dataplane/features.ts';
import { AttachError } from '../dataplane/host.ts';
import { routeAction, tableNames, tableOf } from '../format/plan.ts';
import { type Peer, PeerState_SessionState } from '../gen/gobgp/gobgp_pb.js';
import {
  AddWorkloadResponseSchema,
  AgentService,
  BgpPeerInfoSchema,
  CheckWorkloadResponseSchema,
  DeleteWorkloadResponseSchema,
  DrainResponseSchema,
  ExplainPathResponseSchema,
  GetStatusResponseSchema,
  HostInfoSchema,
  ListBgpPeersResponseSchema,
  ListHostsResponseSchema,
  ListRoutesResponseSchema,
  ListWorkloadsResponseSchema,
  PublishRecordsResponseSchema,
  RouteInfoSchema,
  WorkloadInfoSchema,
} from '../gen/segmesh/v1/agent_pb.js';
import { GOSSIP_TOPIC } from '../gossip/constants.ts';
import { formatIpv6, formatPrefix } from '../srv6/address.ts';
import { isRoute } from '../srv6/pathcompute.ts';
import { AGENT_PROTOCOL, type Agent } from './agent.ts';
import {
  AgentError,
  checkDurationMs,
  checkId,
  checkIfname,
  DRAIN_QUIET_MAX_MS,
  DRAIN_WAIT_MAX_MS,
} from './errors.ts';
import { explainPath } from './explain.ts';
import { membershipSummary, OPEN_MEMBERSHIP_WARNING } from './membership.ts';
import { groupId } from './runtime.ts';

const GRPC_STATUS: Record<AgentError['status'], status> = {
  invalid: status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  exists: status.ALREADY_EXISTS,
  precondition: status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  failed: status.INTERNAL,
};

/**
 * The gRPC answer to a failed call: refusals (AgentError, and an attach the host's state prevents)
 * keep their code and are expected (logged at warn); anything else is INTERNAL and unexpected.
 */
export function apiError(e: unknown): { code: status; details: string; expected: boolean } {
  const details = e instanceof Error ? e.message : String(e);
  if (e instanceof AgentError) {
    return { code: GRPC_STATUS[e.status], details, expected: e.status !== 'failed' };
  }
  if (e instanceof AttachError) return { code: status.FAILED_PRECONDITION, details, expected: true };
  return { code: status.INTERNAL, details, expected: false };
}

type Methods = (typeof AgentService)['method'];
type Impl = {
  [K in keyof Methods]: (
    req: MessageShape<Methods[K]['input']>,
  ) => Promise<MessageShape<Methods[K]['output']>>;
};

export function unary<I extends DescMessage, O extends DescMessage>(
  method: DescMethod & { input: I; output: O },
  fn: (req: MessageShape<I>) => Promise<MessageShape<O>>,
  log: Logger,
): handleUnaryCall<MessageShape<I>, MessageShape<O>> {
  return (
    call: ServerUnaryCall<MessageShape<I>, MessageShape<O>>,
    callback: sendUnaryData<MessageShape<O>>,
  ) => {
    fn(call.request).then(
      (res) => callback(null, res),
      (e: unknown) => {
        const { code, details, expected } = apiError(e);
        if (expected)
          log.warn({ method: method.name, code: status[code], reason: details }, 'API call refused');
        else log.error({ err: e, method: method.name }, 'API call failed');
        callback({ code, details });
      },
    );
  };
}

/** GoBGP's API as the agent uses it: the apipb gRPC API of the configured gobgpd (or the one attached to). */
async function gobgpApi(agent: Agent): Promise<string> {
  const g = agent.settings.spec.bgp?.gobgpd;
  if (!g) return '';
  if (g.mode !== 'managed') return `apipb (GoBGP 3.x API, attached to ${g.api})`;
  const v = await gobgpdVersion(g.binary);
  return v ? `apipb (GoBGP ${v}, ${g.binary})` : `apipb (${g.binary} --version failed)`;
}

/** Gossip liveness in the API's words (HostInfo.state: up, suspect, down, leaving). */
/** How many of the reasons the last reconcile left things out `getStatus` carries. */
const LEFT_OUT_SHOWN = 20;

const HOST_STATE = { alive: 'up', suspect: 'suspect', dead: 'down' } as const;

/**
 * A session as gobgpd's ListPeer reports it: state by name (`established`, as `gobgp neighbor` says),
 * route counters summed over the families, uptime of an established session.
 */
export function bgpPeerInfo(p: Peer | undefined, nowMs = Date.now()) {
  let received = 0n;
  let accepted = 0n;
  let advertised = 0n;
  for (const af of p?.afiSafis ?? []) {
    received += af.state?.received ?? 0n;
    accepted += af.state?.accepted ?? 0n;
    advertised += af.state?.advertised ?? 0n;
  }
  const session = p?.state?.sessionState ?? PeerState_SessionState.UNKNOWN;
  const established = session === PeerState_SessionState.ESTABLISHED;
  const up = p?.timers?.state?.uptime;
  return {
    address: p?.conf?.neighborAddress || p?.state?.neighborAddress || '',
    asn: p?.conf?.peerAsn || p?.state?.peerAsn || 0,
    state: (PeerState_SessionState[session] ?? 'unknown').toLowerCase(),
    received,
    accepted,
    advertised,
    uptimeS:
      established && up && up.seconds > 0n
        ? BigInt(Math.max(0, Math.floor(nowMs / 1000) - Number(up.seconds)))
        : 0n,
  };
}

export function agentHandlers(agent: Agent, version: string): Impl {
  // Probed once per process: the kernel and the sidecar binary do not change under a running agent.
  let features: Promise<KernelFeatures> | undefined;
  let gobgp: Promise<string> | undefined;
  return {
    async addWorkload(req) {
      if (req.tenant === '') throw new AgentError('invalid', 'no tenant given: pass --tenant NAME');
      if (req.identity) checkId(req.identity, '--identity');
      if (req.containerId) checkId(req.containerId, 'container id');
      if (req.ifname) checkIfname(req.ifname);
      const r = await agent.addWorkload({
        ...(req.identity ? { identity: req.identity } : {}),
        tenant: req.tenant,
        netns: req.netns,
        ifname: req.ifname,
        containerId: req.containerId,
        labels: req.labels,
        ...(req.address ? { address: req.address } : {}),
      });
      return create(AddWorkloadResponseSchema, {
        address: r.workload.address,
        prefixLength: 128,
        hostLink: r.workload.hostLink,
        ifname: r.workload.ifname,
        mtu: r.workload.mtu,
        mac: r.workload.mac ?? '',
        gateway: r.gateway,
        sticky: r.workload.sticky,
        moved: r.moved,
      });
    },
    async deleteWorkload(req) {
      if (!req.identity && !req.containerId)
        throw new AgentError('invalid', 'name the workload to delete: give its identity or container id');
      const existed = await agent.deleteWorkload({
        ...(req.identity ? { identity: req.identity } : {}),
        ...(req.containerId ? { containerId: req.containerId } : {}),
        ...(req.ifname ? { ifname: req.ifname } : {}),
      });
      return create(DeleteWorkloadResponseSchema, { existed });
    },
    async checkWorkload(req) {
      if (!req.identity && !req.containerId)
        throw new AgentError('invalid', 'name the workload to check: give its identity or container id');
      const problems = await agent.checkWorkload({
        ...(req.identity ? { identity: req.identity } : {}),
        ...(req.containerId ? { containerId: req.containerId } : {}),
        ...(req.ifname ? { ifname: req.ifname } : {}),
        ...(req.address ? { address: req.address } : {}),
      });
      return create(CheckWorkloadResponseSchema, { problems });
    },
    async getStatus() {
      features ??= detectKernelFeatures();
      gobgp ??= gobgpApi(agent);
      const k = await features;
      const view = agent.view;
      const last = agent.lastReconcile;
      return create(GetStatusResponseSchema, {
        host: agent.settings.hostName,
        version,
        protocol: AGENT_PROTOCOL,
        underlay: formatIpv6(agent.settings.underlay),
        locator: agent.locator ? formatPrefix(agent.locator) : '',
        ready: agent.ready,
        hosts: view?.hosts.size ?? 0,
        workloads: view?.workloads.size ?? 0,
        localWorkloads: agent.localWorkloads().length,
        routes: last?.routes ?? 0,
        gobgpApi: await gobgp,
        kernel: {
          vrf: k.vrf,
          hmac: k.hmac,
          nftSrh: k.nftSrh,
          seg6: k.seg6,
          seg6local: k.seg6local,
          release: k.release,
        },
        gossipProtocol: GOSSIP_TOPIC,
        api: AgentService.typeName,
        membership: membershipSummary(agent.settings.membership),
        membershipWarning: agent.settings.membership.mode === 'open' ? OPEN_MEMBERSHIP_WARNING : '',
        hostId: agent.hostId,
        dataplaneBackend: agent.backendInfo?.name ?? '',
        dataplaneBackendWhy: agent.backendInfo?.why ?? '',
        notReady: agent.ready ? '' : (last?.error ?? 'starting: no reconcile yet'),
        lastReconcileUnixMs: BigInt(last?.atMs ?? 0),
        lastReconcileMs: last?.durationMs ?? 0,
        leftOut: (last?.skipped ?? []).slice(0, LEFT_OUT_SHOWN),
        leftOutTotal: last?.skipped.length ?? 0,
      });
    },
    async listWorkloads() {
      const view = agent.view;
      const local = new Map(agent.localWorkloads().map((w) => [w.id, w]));
      const workloads = [...(view?.workloads.values() ?? [])].map((w) =>
        create(WorkloadInfoSchema, {
          identity: w.id,
          tenant: w.tenant,
          address: formatIpv6(w.address),
          host: w.host,
          deliverySid: formatIpv6(view!.hosts.get(w.host)!.sids.tenantDelivery.get(w.tenant)!.sid),
          local: w.host === agent.settings.hostName,
          sticky: local.get(w.id)?.sticky ?? true,
          hostLink: local.get(w.id)?.hostLink ?? '',
        }),
      );
      return create(ListWorkloadsResponseSchema, { workloads });
    },
    async listHosts() {
      const view = agent.view;
      const states = new Map(
        [...(agent.gossip?.view().hosts.values() ?? [])].map((h) => [
          h.record.name || h.id,
          h.record.leaving ? 'leaving' : HOST_STATE[h.state],
        ]),
      );
      const hosts = [...(view?.hosts.values() ?? [])].map((h) =>
        create(HostInfoSchema, {
          name: h.name,
          underlay: formatIpv6(h.underlay),
          locator: formatPrefix(h.locator),
          state:
            h.name === agent.settings.hostName
              ? agent.draining
                ? 'leaving'
                : 'up'
              : (states.get(h.name) ?? 'unknown'),
          sids: h.sids.all.map((s) => `${formatIpv6(s.sid)} ${s.behavior}`),
        }),
      );
      return create(ListHostsResponseSchema, { hosts });
    },
    async listRoutes() {
      const view = agent.view;
      const plan = agent.plan;
      if (!view || !plan) return create(ListRoutesResponseSchema, {});
      const names = tableNames(view);
      const routes = [...plan.objects.values()].filter(isRoute).map((r) =>
        create(RouteInfoSchema, {
          table: tableOf(r.scope),
          tableName: names.get(tableOf(r.scope)) ?? '',
          destination: formatPrefix(r.prefix),
          source: r.from ? formatPrefix(r.from) : '',
          action: routeAction(r, names),
          reason: r.reason,
          installed: true,
        }),
      );
      return create(ListRoutesResponseSchema, { routes });
    },
    async explainPath(req) {
      const view = agent.view;
      if (!view)
        throw new AgentError('unavailable', 'the agent has not computed its view yet; retry in a moment');
      const e = explainPath(view, agent.settings.hostName, req.from, req.to);
      return create(ExplainPathResponseSchema, e);
    },
    async listBgpPeers() {
      // enableAdvertised: gobgpd counts the paths sent to a peer only when asked.
      const peers = agent.bgp
        ? await agent.bgp.sidecar.client.list('listPeer', { enableAdvertised: true })
        : [];
      return create(ListBgpPeersResponseSchema, {
        peers: peers.map((r) => create(BgpPeerInfoSchema, bgpPeerInfo(r.peer))),
      });
    },
    async drain(req) {
      checkDurationMs(req.waitMs, DRAIN_WAIT_MAX_MS, 'drain --wait');
      checkDurationMs(req.quietMs, DRAIN_QUIET_MAX_MS, 'drain --quiet');
      const r = await agent.drain(req.waitMs, req.quietMs);
      return create(DrainResponseSchema, r);
    },
    async publishRecords(req) {
      const results = await agent.publishOperatorRecords(req.signedRecords);
      return create(PublishRecordsResponseSchema, { results });
    },
  };
}

export interface ApiServerOptions {
  readonly socket: string;
  readonly group: string;
}

export class ApiServer {
  readonly #server = new Server();
  readonly #socket: string;

  constructor(agent: Agent, opts: ApiServerOptions, log: Logger, version: string) {
    this.#socket = opts.socket;
    const handlers = agentHandlers(agent, version);
    const apiLog = log.child({ component: 'api' });
    const impl: UntypedServiceImplementation = {};
    const definition: Record<string, unknown> = {};
    for (const m of AgentService.methods) {
      definition[m.name] = {
        path: `/${AgentService.typeName}/${m.name}`,
        requestStream: false,
        responseStream: false,
        requestSerialize: (v: MessageShape<typeof m.input>) => Buffer.from(toBinary(m.input, v)),
        requestDeserialize: (b: Buffer) => fromBinary(m.input, b),
        responseSerialize: (v: MessageShape<typeof m.output>) => Buffer.from(toBinary(m.output, v)),
        responseDeserialize: (b: Buffer) => fromBinary(m.output, b),
      };
      const fn = handlers[m.localName as keyof Impl] as (req: unknown) => Promise<never>;
      impl[m.name] = unary(m as never, fn, apiLog) as never;
    }
    this.#server.addService(definition as never, impl);
    this.#group = opts.group;
  }
  readonly #group: string;

  /** Binds the socket; its directory was prepared and its path cleared by claimRuntime (runtime.ts). */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.#server.bindAsync(`unix://${this.#socket}`, ServerCredentials.createInsecure(), (e) =>
        e ? reject(new Error(`cannot listen on ${this.#socket}: ${e.message}`)) : resolve(),
      ),
    );
    await chmod(this.#socket, 0o660);
    const gid = await groupId(this.#group);
    if (gid !== undefined) await chown(this.#socket, process.geteuid?.() ?? 0, gid);
  }

  /**
   * Stops accepting calls and removes the socket. Calls in flight get `graceMs` to finish (a drain is
   * interrupted by Agent.stop, not awaited), then the server is shut down hard.
   */
  async stop(graceMs = 2_000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, graceMs);
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    // Only a socket: whatever else appeared at the path is not ours to delete.
    if ((await lstat(this.#socket).catch(() => undefined))?.isSocket()) await unlink(this.#socket);
  }
}
