/**
 * The agent's local API: segmesh.v1.AgentService over gRPC on a unix socket (mode 0660, group
 * `segmesh`; never TCP). Who may call it is decided by the file system: a user outside the group
 * cannot connect.
 */
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
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
import { routeAction, tableNames } from '../cli/plan-format.ts';
import { detectKernelFeatures, gobgpdVersion, type KernelFeatures } from '../dataplane/features.ts';
import { tableOf } from '../dataplane/kernel/tables.ts';
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
import { AGENT_PROTOCOL, type Agent, AgentError } from './agent.ts';
import { explainPath } from './explain.ts';

const GRPC_STATUS: Record<AgentError['status'], status> = {
  invalid: status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  exists: status.ALREADY_EXISTS,
  unavailable: status.UNAVAILABLE,
  failed: status.INTERNAL,
};

type Methods = (typeof AgentService)['method'];
type Impl = {
  [K in keyof Methods]: (
    req: MessageShape<Methods[K]['input']>,
  ) => Promise<MessageShape<Methods[K]['output']>>;
};

function unary<I extends DescMessage, O extends DescMessage>(
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
        const code = e instanceof AgentError ? GRPC_STATUS[e.status] : status.INTERNAL;
        if (!(e instanceof AgentError)) log.error({ err: e, method: method.name }, 'API call failed');
        callback({ code, details: (e as Error).message });
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
      const existed = await agent.deleteWorkload({
        ...(req.identity ? { identity: req.identity } : {}),
        ...(req.containerId ? { containerId: req.containerId } : {}),
        ...(req.ifname ? { ifname: req.ifname } : {}),
      });
      return create(DeleteWorkloadResponseSchema, { existed });
    },
    async checkWorkload(req) {
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
        kernel: { vrf: k.vrf, hmac: k.hmac, nftSrh: k.nftSrh, seg6: k.seg6, release: k.release },
        gossipProtocol: GOSSIP_TOPIC,
        api: AgentService.typeName,
        lastReconcileUnixMs: BigInt(last?.atMs ?? 0),
        lastReconcileMs: last?.durationMs ?? 0,
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
      impl[m.name] = unary(m as never, fn, log) as never;
    }
    this.#server.addService(definition as never, impl);
    this.#group = opts.group;
  }
  readonly #group: string;

  async start(): Promise<void> {
    await mkdir(dirname(this.#socket), { recursive: true, mode: 0o750 });
    await rm(this.#socket, { force: true });
    await new Promise<void>((resolve, reject) =>
      this.#server.bindAsync(`unix://${this.#socket}`, ServerCredentials.createInsecure(), (e) =>
        e ? reject(new Error(`cannot listen on ${this.#socket}: ${e.message}`)) : resolve(),
      ),
    );
    await chmod(this.#socket, 0o660);
    await chmod(dirname(this.#socket), 0o750);
    const gid = await groupId(this.#group);
    if (gid !== undefined) {
      await chown(this.#socket, 0, gid);
      await chown(dirname(this.#socket), 0, gid);
    }
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    await rm(this.#socket, { force: true });
  }
}

async function groupId(name: string): Promise<number | undefined> {
  const { readFile } = await import('node:fs/promises');
  const groups = await readFile('/etc/group', 'utf8');
  for (const line of groups.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid) return Number(gid);
  }
  return undefined;
}
