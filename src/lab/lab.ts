/**
 * Bringing a lab up and down on the Docker engine: networks through testcontainers' runtime client
 * (dockerode underneath, for the IPv6 and IPAM options its `Network` lacks), containers as
 * testcontainers `GenericContainer`s (never privileged: NET_ADMIN, SYS_ADMIN, NET_RAW and the SRv6
 * sysctls; fixed addresses through the endpoint's IPAM configuration), found again by label.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type Dockerode from 'dockerode';
import { GenericContainer } from 'testcontainers';
import { parseConfig } from '../config/load.ts';
import type { TopologySpec } from '../config/schema.ts';
import { detectKernelFeatures } from '../dataplane/features.ts';
import { probeEbpf } from '../dataplane/open-backend.ts';
import { NEVER_PULL, type Progress, runtimeClient } from './engine.ts';
import { LabEngineError, LabNodeError } from './errors.ts';
import { frrAllocateSid } from './frr.ts';
import { type LabKernelVerdict, labKernelVerdict } from './kernel-check.ts';
import {
  AGENT_SOCKET,
  LABEL_LAB,
  LABEL_NODE,
  LABEL_ROLE,
  type LabPlan,
  type NodePlan,
  type NodeRole,
  type PlanOptions,
  planLab,
  READY_FILE,
} from './plan.ts';
import {
  type EdgeRuntime,
  edgeRuntimes,
  runningVmNodes,
  startVmEdge,
  stopVmNodesByLabel,
  vmNodeExec,
} from './vm-edge.ts';

export const CAPABILITIES = ['NET_ADMIN', 'SYS_ADMIN', 'NET_RAW'] as const;
export const SYSCTLS = {
  'net.ipv6.conf.all.disable_ipv6': '0',
  'net.ipv6.conf.all.forwarding': '1',
  'net.ipv6.conf.all.seg6_enabled': '1',
} as const;

export async function loadTopology(file: string): Promise<TopologySpec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read topology ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const parsed = parseConfig(text, file, ['Topology']);
  if (parsed.kind !== 'Topology') throw new Error('unreachable');
  return parsed.spec;
}

/** A GenericContainer whose create request carries sysctls and a fixed address on its first network. */
class LabContainer extends GenericContainer {
  readonly #extra: NodePlan['endpoints'];
  readonly #dockerode: Dockerode;
  constructor(image: string, node: NodePlan, dockerode: Dockerode) {
    super(image);
    const [first, ...rest] = node.endpoints;
    this.#extra = rest;
    this.#dockerode = dockerode;
    this.hostConfig.Sysctls = { ...SYSCTLS };
    if (first) {
      this.createOpts.NetworkingConfig = {
        EndpointsConfig: {
          [first.network]: { IPAMConfig: { IPv6Address: first.ipv6, IPv4Address: first.ipv4 } },
        },
      };
    }
  }
  /** Further networks are connected between create and start (the 20.10 API takes one at create). */
  protected override async containerCreated(containerId: string): Promise<void> {
    for (const ep of this.#extra) {
      await this.#dockerode.getNetwork(ep.network).connect({
        Container: containerId,
        EndpointConfig: { IPAMConfig: { IPv6Address: ep.ipv6, IPv4Address: ep.ipv4 } },
      });
    }
  }
}

export interface UpOptions {
  readonly image: string;
  readonly progress: Progress;
  /** Leave what was created when `up` fails (for debugging); default: remove it. */
  readonly keepOnFailure?: boolean;
  readonly readyTimeoutMs?: number;
}

export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly output: string;
}

/** A running lab: its plan and a way into its containers. */
export class RunningLab {
  readonly plan: LabPlan;
  readonly #docker: Dockerode;
  readonly edgeSids: Map<string, string> = new Map();
  constructor(plan: LabPlan, docker: Dockerode) {
    this.plan = plan;
    this.#docker = docker;
  }
  node(name: string): NodePlan {
    const n = this.plan.nodes.find((x) => x.node === name);
    if (!n)
      throw new Error(
        `lab ${this.plan.prefix} has no node ${name}; nodes: ${this.plan.nodes.map((x) => x.node).join(', ')}`,
      );
    return n;
  }
  exec(node: string, cmd: readonly string[]): Promise<ExecResult> {
    if (this.plan.edges.get(node)?.runtime === 'vm') return vmNodeExec(this.plan.prefix, node, cmd);
    return execIn(this.#docker, this.node(node).containerName, cmd);
  }
  /** Like exec, but throws with the output when the command fails. */
  async run(node: string, cmd: readonly string[]): Promise<string> {
    const r = await this.exec(node, cmd);
    if (r.exitCode !== 0)
      throw new LabNodeError(node, `${cmd.join(' ')} exited ${r.exitCode}: ${r.output.trim()}`);
    return r.stdout;
  }
  down(progress: Progress = () => {}): Promise<DownReport> {
    return labDown(this.plan.prefix, progress);
  }
}

/** Runs a command in a container (by name) through the engine API; never throws on a non-zero exit. */
export async function execIn(
  docker: Dockerode,
  container: string,
  cmd: readonly string[],
): Promise<ExecResult> {
  const exec = await docker
    .getContainer(container)
    .exec({ Cmd: [...cmd], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const all: Buffer[] = [];
  await new Promise<void>((resolveDone, reject) => {
    docker.modem.demuxStream(stream, sink(out, all), sink(err, all));
    stream.on('end', () => resolveDone());
    stream.on('close', () => resolveDone());
    stream.on('error', reject);
  });
  const info = await exec.inspect();
  return {
    exitCode: info.ExitCode ?? -1,
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
    output: Buffer.concat(all).toString('utf8'),
  };
}

function sink(own: Buffer[], all: Buffer[]): NodeJS.WritableStream {
  const write = (b: Buffer) => {
    own.push(b);
    all.push(b);
    return true;
  };
  return { write } as unknown as NodeJS.WritableStream;
}

/** The dockerode client of the lab engine (testcontainers' own). */
export async function labDocker(): Promise<Dockerode> {
  return (await runtimeClient()).container.dockerode;
}

/** Plans the lab of a topology file (the name prefix defaults to the topology's name). */
export async function planFromFile(file: string, opts: Omit<PlanOptions, 'file'> = {}): Promise<LabPlan> {
  const spec = await loadTopology(file);
  return planLab(spec, { file: resolve(file), ...opts });
}

/**
 * Lab containers share this machine's kernel: an FRR edge router needs seg6 and seg6local routes (zebra
 * installs its End.DT6 SID and seg6 routes); agents take the kernel backend where the kernel has them,
 * else the eBPF backend (kernel-check.ts). Without what it needs the lab would come up half way and fail
 * minutes later: say so before anything starts. Returns the backend the agents will take.
 */
export async function checkLabKernel(plan: LabPlan): Promise<LabKernelVerdictOk> {
  // An edge in a VM (src/lab/vm-edge.ts) has a kernel of its own: only edges in containers need this one's.
  const edgeRouters = [...(await edgeRuntimes(plan))].filter(([, r]) => r === 'container').map(([n]) => n);
  const agents = plan.nodes.some((n) => n.script.includes('segmesh agent'));
  if (edgeRouters.length === 0 && !agents) return {};
  const kernel = await detectKernelFeatures();
  // The BPF object is loaded (the verifier runs; nothing attached or pinned) only when agents need it.
  const ebpf =
    agents && (!kernel.seg6 || !kernel.seg6local)
      ? probeEbpf()
      : { usable: false, why: 'not tried: the kernel has seg6' };
  const verdict = labKernelVerdict(
    { prefix: plan.prefix, topologyFile: plan.topologyFile, edgeRouters, agents },
    kernel,
    ebpf,
  );
  if ('error' in verdict) throw new LabEngineError(verdict.error);
  return verdict;
}

export type LabKernelVerdictOk = Exclude<LabKernelVerdict, { error: string }>;

/** Creates the networks and starts every node; on failure removes what it created (unless kept). */
export async function labUp(input: LabPlan, opts: UpOptions): Promise<RunningLab> {
  const runtimes: Map<string, EdgeRuntime> = await edgeRuntimes(input);
  const edges = new Map([...input.edges].map(([k, e]) => [k, { ...e, runtime: runtimes.get(k) }]));
  const plan: LabPlan = { ...input, edges };
  const verdict = await checkLabKernel(plan);
  if (verdict.agents)
    opts.progress(`agents: the ${verdict.agents.backend} data plane (${verdict.agents.why})`);
  const client = await runtimeClient();
  const docker = client.container.dockerode;
  const progress = opts.progress;
  const existing = await listLabContainers(docker, plan.prefix);
  if (existing.length > 0) {
    throw new LabEngineError(
      `lab ${plan.prefix} is already up (${existing.map((c) => c.Names[0]?.slice(1)).join(', ')}); ` +
        `bring it down first: segmesh lab down ${plan.topologyFile}`,
    );
  }
  try {
    await docker.getImage(opts.image).inspect();
  } catch {
    throw new LabEngineError(
      `image ${opts.image} is not built; run bash scripts/images.sh (the lab never pulls)`,
    );
  }
  const lab = new RunningLab(plan, docker);
  const t0 = Date.now();
  try {
    for (const n of plan.networks) {
      progress(`network ${n.name}: ${n.ipv6Subnet}, ${n.ipv4Subnet}`);
      try {
        await client.network.create({
          Name: n.name,
          Driver: 'bridge',
          CheckDuplicate: true,
          EnableIPv6: true,
          Internal: false,
          Attachable: true,
          IPAM: { Driver: 'default', Config: [{ Subnet: n.ipv6Subnet }, { Subnet: n.ipv4Subnet }] },
          Labels: { ...n.labels },
        });
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        throw new LabEngineError(
          `cannot create network ${n.name} (${n.ipv6Subnet}, ${n.ipv4Subnet}): ${why}` +
            (/overlap/i.test(why)
              ? '; another lab uses these subnets: bring it down or change underlay: in the topology'
              : ''),
        );
      }
    }
    await Promise.all(
      plan.nodes.map(async (node) => {
        const t = Date.now();
        progress(
          `${node.role} ${node.node}: starting ${node.containerName} (${node.endpoints.map((e) => e.ipv6).join(', ')})`,
        );
        if (runtimes.get(node.node) === 'vm') {
          const up = await startVmEdge(docker, plan, node, { progress });
          lab.edgeSids.set(node.node, up.sid);
        } else {
          await startNode(docker, node, opts.image);
          await waitReady(docker, node, opts.readyTimeoutMs ?? 150_000);
        }
        progress(`${node.role} ${node.node}: up in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      }),
    );
    for (const [name, edge] of plan.edges) {
      if (edge.runtime === 'vm') continue; // zebra installed its SID itself
      const node = lab.node(name);
      const sidDevice = await deviceOf(docker, node.containerName, node.endpoints[0]!.ipv6);
      const sid = await frrAllocateSid((cmd) => execIn(docker, node.containerName, cmd), {
        asn: edge.asn,
        locator: edge.locator,
        sidDevice,
      });
      lab.edgeSids.set(name, sid);
      progress(`edge-router ${name}: FRR VPN SID ${sid} (End.DT6 on ${sidDevice})`);
    }
    progress(`lab ${plan.prefix} up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return lab;
  } catch (e) {
    if (!opts.keepOnFailure) {
      progress(`lab ${plan.prefix}: up failed, removing what was created`);
      await labDown(plan.prefix, () => {}).catch(() => undefined);
    }
    throw e;
  }
}

async function startNode(docker: Dockerode, node: NodePlan, image: string): Promise<void> {
  const first = node.endpoints[0];
  let c = new LabContainer(image, node, docker)
    .withName(node.containerName)
    .withHostname(node.node)
    .withLabels({ ...node.labels })
    .withPullPolicy(NEVER_PULL)
    .withAddedCapabilities(...CAPABILITIES)
    .withCommand(['sh', '-c', node.script]);
  if (first) c = c.withNetworkMode(first.network);
  const files = Object.entries(node.files).map(([target, content]) => ({ content, target, mode: 0o644 }));
  if (files.length > 0) c = c.withCopyContentToContainer(files);
  try {
    await c.start();
  } catch (e) {
    throw new LabNodeError(
      node.node,
      `container ${node.containerName} did not start: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

async function waitReady(docker: Dockerode, node: NodePlan, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const container = docker.getContainer(node.containerName);
  for (;;) {
    const info = await container.inspect();
    if (!info.State.Running) {
      const logs = (await container.logs({ stdout: true, stderr: true, tail: 20 })).toString('utf8');
      throw new LabNodeError(node.node, `its start script exited (${info.State.ExitCode}):\n${logs}`);
    }
    const r = await execIn(docker, node.containerName, ['test', '-e', READY_FILE]);
    if (r.exitCode === 0) return;
    if (Date.now() > deadline) throw new LabNodeError(node.node, `not ready within ${timeoutMs} ms`);
    await new Promise((r2) => setTimeout(r2, 100));
  }
}

/** The interface of a container that holds `address`. */
export async function deviceOf(docker: Dockerode, container: string, address: string): Promise<string> {
  const r = await execIn(docker, container, ['ip', '-o', '-6', 'addr', 'show', 'to', `${address}/128`]);
  const dev = r.stdout.trim().split(/\s+/)[1];
  if (!dev) throw new LabNodeError(container, `no interface holds ${address}`);
  return dev;
}

async function listLabContainers(docker: Dockerode, prefix: string): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${LABEL_LAB}=${prefix}`] } });
}

export interface DownReport {
  readonly containers: string[];
  readonly networks: string[];
}

/** Removes every container and network labelled `segmesh.lab=<prefix>` (and nothing else). */
export async function labDown(prefix: string, progress: Progress): Promise<DownReport> {
  const docker = await labDocker();
  return removeByLabel(docker, `${LABEL_LAB}=${prefix}`, progress);
}

/** Removes containers, then networks, matching a label filter (`key=value`). */
export async function removeByLabel(
  docker: Dockerode,
  label: string,
  progress: Progress,
): Promise<DownReport> {
  if (!/^segmesh\.[a-z.]+=.+$/.test(label))
    throw new Error(`refusing to remove by label "${label}": not a segmesh label`);
  const report: DownReport = { containers: [], networks: [] };
  // VM nodes first: their taps are enslaved to the networks' bridges.
  for (const vm of await stopVmNodesByLabel(label, progress)) report.containers.push(vm);
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(
    containers.map(async (c) => {
      const name = c.Names[0]?.slice(1) ?? c.Id;
      await docker.getContainer(c.Id).remove({ force: true, v: true });
      report.containers.push(name);
      progress(`removed container ${name}`);
    }),
  );
  const networks = await docker.listNetworks({ filters: { label: [label] } });
  for (const n of networks) {
    await docker.getNetwork(n.Id).remove();
    report.networks.push(n.Name);
    progress(`removed network ${n.Name}`);
  }
  return report;
}

export interface NodeStatus {
  readonly node: string;
  readonly role: NodeRole | string;
  readonly container: string;
  readonly state: string;
  readonly addresses: readonly string[];
  /** Daemons of the node that run (gobgpd, agent, zebra, bgpd). */
  readonly daemons: Readonly<Record<string, boolean>>;
  /** BGP sessions the node sees: neighbour -> state. */
  readonly bgp: Readonly<Record<string, string>>;
  /** A host's agent: the data-plane backend it took (`kernel` or `ebpf`) and why (`segmesh status`). */
  readonly dataplane?: { readonly backend: string; readonly why: string };
}

export interface LabStatus {
  readonly lab: string;
  readonly nodes: readonly NodeStatus[];
  readonly networks: readonly { name: string; subnets: string[] }[];
}

const ROLE_DAEMONS: Record<string, readonly string[]> = {
  host: ['gobgpd', 'segmesh'],
  'edge-router': ['zebra', 'bgpd'],
  'external-client': [],
};

/** The backend a host's agent took, from its API (`segmesh status --json`); undefined: no answer. */
export async function agentDataplane(docker: Dockerode, container: string): Promise<NodeStatus['dataplane']> {
  const r = await execIn(docker, container, ['segmesh', 'status', '--json', '--socket', AGENT_SOCKET]);
  try {
    const s = JSON.parse(r.stdout || '{}') as { dataplaneBackend?: string; dataplaneBackendWhy?: string };
    return s.dataplaneBackend ? { backend: s.dataplaneBackend, why: s.dataplaneBackendWhy ?? '' } : undefined;
  } catch {
    return undefined;
  }
}

/** What runs of lab `prefix`: containers, addresses, daemons, BGP sessions, agents' data planes. */
export async function labStatus(prefix: string): Promise<LabStatus> {
  const docker = await labDocker();
  const containers = await listLabContainers(docker, prefix);
  const nodes: NodeStatus[] = [];
  for (const c of containers) {
    const container = c.Names[0]?.slice(1) ?? c.Id;
    const role = c.Labels[LABEL_ROLE] ?? '?';
    const addresses = Object.values(c.NetworkSettings?.Networks ?? {}).flatMap((n) =>
      [n.GlobalIPv6Address, n.IPAddress].filter((a): a is string => !!a),
    );
    const daemons: Record<string, boolean> = {};
    const bgp: Record<string, string> = {};
    let dataplane: NodeStatus['dataplane'];
    if (c.State === 'running') {
      for (const d of ROLE_DAEMONS[role] ?? []) {
        daemons[d] =
          (await execIn(docker, container, ['pidof', '-s', d === 'segmesh' ? 'node' : d])).exitCode === 0;
      }
      if (role === 'edge-router') {
        const r = await execIn(docker, container, ['vtysh', '-c', 'show bgp neighbors json']);
        try {
          const j = JSON.parse(r.stdout || '{}') as Record<string, { bgpState?: string }>;
          for (const [k, v] of Object.entries(j)) if (v.bgpState) bgp[k] = v.bgpState;
        } catch {}
      }
      if (role === 'host' && daemons.segmesh) dataplane = await agentDataplane(docker, container);
      if (role === 'host' && daemons.gobgpd) {
        const r = await execIn(docker, container, [
          'gobgp',
          '-u',
          '127.0.0.1',
          '-p',
          '50051',
          'neighbor',
          '-j',
        ]);
        try {
          const j = JSON.parse(r.stdout || '[]') as {
            state?: { neighbor_address?: string; session_state?: number };
          }[];
          const names = ['unknown', 'idle', 'connect', 'active', 'opensent', 'openconfirm', 'established'];
          for (const p of j) {
            if (p.state?.neighbor_address)
              bgp[p.state.neighbor_address] = names[p.state.session_state ?? 0] ?? '?';
          }
        } catch {}
      }
    }
    nodes.push({
      node: c.Labels[LABEL_NODE] ?? container,
      role,
      container,
      state: c.State,
      addresses,
      daemons,
      bgp,
      ...(dataplane ? { dataplane } : {}),
    });
  }
  for (const r of runningVmNodes(prefix)) {
    const vtysh = await vmNodeExec(prefix, r.node, ['vtysh', '-c', 'show bgp neighbors json']).catch(
      () => undefined,
    );
    const bgp: Record<string, string> = {};
    try {
      const j = JSON.parse(vtysh?.stdout || '{}') as Record<string, { bgpState?: string }>;
      for (const [k, v] of Object.entries(j)) if (v.bgpState) bgp[k] = v.bgpState;
    } catch {}
    const addr = await vmNodeExec(prefix, r.node, ['ip', '-br', 'addr']).catch(() => undefined);
    nodes.push({
      node: r.node,
      role: r.labels[LABEL_ROLE] ?? 'edge-router',
      container: `VM ${r.vm.name} (qemu ${r.vm.pid}, ${r.vm.accel}, kernel ${r.vm.kernelVersion})`,
      state: 'running',
      addresses: String(addr)
        .split(/\s+/)
        .filter((a) => /\//.test(a))
        .map((a) => a.split('/')[0]!),
      daemons: { zebra: vtysh?.exitCode === 0, bgpd: vtysh?.exitCode === 0 },
      bgp,
    });
  }
  nodes.sort((a, b) => a.role.localeCompare(b.role) || a.node.localeCompare(b.node));
  const networks = (await docker.listNetworks({ filters: { label: [`${LABEL_LAB}=${prefix}`] } })).map(
    (n) => ({
      name: n.Name,
      subnets: (n.IPAM?.Config ?? []).map((cfg) => cfg.Subnet ?? '').filter((s) => s),
    }),
  );
  return { lab: prefix, nodes, networks };
}

/** The container of `node`: in lab `prefix` if given, else the only lab that has such a node. */
export async function findNodeContainer(node: string, prefix?: string): Promise<string> {
  const docker = await labDocker();
  const labels = [`${LABEL_NODE}=${node}`];
  if (prefix) labels.push(`${LABEL_LAB}=${prefix}`);
  const found = await docker.listContainers({ filters: { label: labels } });
  if (found.length === 0)
    throw new LabEngineError(
      `no running lab node ${node}${prefix ? ` in lab ${prefix}` : ''}; see segmesh lab status FILE`,
    );
  if (found.length > 1) {
    const labs = found.map((c) => c.Labels[LABEL_LAB]).join(', ');
    throw new LabEngineError(`node ${node} is in several labs (${labs}); pick one with --lab NAME`);
  }
  return found[0]!.Names[0]!.slice(1);
}
