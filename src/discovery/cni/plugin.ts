/**
 * The `segmesh-cni` plugin: a thin adapter between a container runtime (CNI 1.0.0: environment and
 * stdin in, result or error JSON out) and the local agent, which does the kernel work (the same call
 * as `segmesh workload add`).
 */
import { AgentCallError, AgentClient } from '../../agent/client.ts';
import {
  CNI_ERROR,
  type CniEnvironment,
  CniError,
  type CniResult,
  formatResult,
  type NetConf,
  parseEnvironment,
  parseNetConf,
  versionInfo,
  workloadIdentity,
} from './spec.ts';

export interface PluginIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: string;
}

export interface PluginOutput {
  readonly code: number;
  readonly stdout: string;
}

/** The agent operations the plugin needs (the gRPC client in production). */
export interface WorkloadApi {
  add(req: {
    identity: string;
    tenant: string;
    netns: string;
    ifname: string;
    containerId: string;
    labels: Record<string, string>;
  }): Promise<{
    address: string;
    prefixLength: number;
    hostLink: string;
    ifname: string;
    mtu: number;
    mac: string;
    gateway: string;
  }>;
  del(req: { identity: string; containerId: string; ifname: string }): Promise<void>;
  check(req: { identity: string; containerId: string; ifname: string; address: string }): Promise<string[]>;
}

export function agentWorkloadApi(socket: string): WorkloadApi & { close(): void } {
  const client = new AgentClient(socket);
  return {
    add: (req) => client.call('addWorkload', req),
    del: async (req) => {
      await client.call('deleteWorkload', req);
    },
    check: async (req) => (await client.call('checkWorkload', req)).problems,
    close: () => client.close(),
  };
}

function agentError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof AgentCallError) {
    // gRPC UNAVAILABLE (14): the agent is not running (yet): the runtime may retry.
    return e.code === 14 || e.code === undefined
      ? new CniError(CNI_ERROR.tryAgainLater, 'the segmesh agent is not reachable', e.message)
      : new CniError(CNI_ERROR.agentRejected, e.message);
  }
  return new CniError(CNI_ERROR.io, (e as Error).message);
}

async function add(env: CniEnvironment, conf: NetConf, api: WorkloadApi): Promise<CniResult> {
  const identity = workloadIdentity(env.args);
  const r = await api.add({
    identity: identity ?? '',
    tenant: conf.tenant,
    netns: env.netns,
    ifname: env.ifname,
    containerId: env.containerId,
    labels: { ...conf.labels },
  });
  return {
    interfaces: [
      { name: r.hostLink },
      { name: env.ifname, sandbox: env.netns, mtu: r.mtu, ...(r.mac ? { mac: r.mac } : {}) },
    ],
    ips: [{ address: `${r.address}/${r.prefixLength}`, gateway: r.gateway, interface: 1 }],
    routes: [{ dst: '::/0', gw: r.gateway }],
    dns: {},
  };
}

/** Runs one CNI invocation. Never throws: errors become CNI error objects and exit code 1. */
export async function runPlugin(
  io: PluginIo,
  makeApi: (socket: string) => WorkloadApi & { close?(): void },
): Promise<PluginOutput> {
  let version = '1.0.0';
  let api: (WorkloadApi & { close?(): void }) | undefined;
  try {
    const env = parseEnvironment(io.env);
    if (env.command === 'VERSION') return { code: 0, stdout: JSON.stringify(versionInfo()) };
    const conf = parseNetConf(io.stdin);
    version = conf.cniVersion;
    api = makeApi(conf.agentSocket);
    const identity = workloadIdentity(env.args) ?? '';
    switch (env.command) {
      case 'ADD': {
        const result = await add(env, conf, api);
        return { code: 0, stdout: JSON.stringify(formatResult(conf.cniVersion, result)) };
      }
      case 'DEL':
        // Idempotent: deleting what is not there succeeds (the agent says whether it existed).
        await api.del({ identity, containerId: env.containerId, ifname: env.ifname });
        return { code: 0, stdout: '' };
      case 'CHECK': {
        const expected = conf.prevResult?.ips[0]?.address.split('/')[0];
        if (!expected)
          throw new CniError(CNI_ERROR.invalidConfig, 'CHECK needs prevResult with the address ADD returned');
        const problems = await api.check({
          identity,
          containerId: env.containerId,
          ifname: env.ifname,
          address: expected,
        });
        if (problems.length > 0)
          throw new CniError(
            CNI_ERROR.agentRejected,
            'the workload is not as ADD left it',
            problems.join('; '),
          );
        return { code: 0, stdout: '' };
      }
    }
    throw new CniError(CNI_ERROR.invalidEnvironment, `unsupported CNI_COMMAND ${env.command}`);
  } catch (e) {
    return { code: 1, stdout: JSON.stringify(agentError(e).toJson(version)) };
  } finally {
    api?.close?.();
  }
}
