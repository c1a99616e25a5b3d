/**
 * `segmesh lab up|status|exec|down`: the command handlers, taking parsed options. Each returns the
 * process exit code; progress goes to stderr, results to stdout.
 */
import { spawn } from 'node:child_process';
import { Command } from 'commander';
import { renderTable } from '../format/table.ts';
import { newClusterKey, newOperatorKey } from '../gossip/index.ts';
import { readPolicy, runDemo } from './demo.ts';
import { configureDockerEnv, ensureEngine, ensureImages, type Progress } from './engine.ts';
import { LabEngineError } from './errors.ts';
import { startFabric } from './fabric.ts';
import {
  agentDataplane,
  checkLabKernel,
  findNodeContainer,
  labDocker,
  labDown,
  labStatus,
  labUp,
  loadTopology,
  planFromFile,
} from './lab.ts';
import { checkPrefix } from './plan.ts';
import { findVmNode, type VmNodeRecord, vmNodeExec } from './vm-edge.ts';

export interface LabIo {
  readonly out: (text: string) => void;
  readonly progress: Progress;
}

const defaultIo: LabIo = {
  out: (t) => process.stdout.write(t),
  progress: (m) => process.stderr.write(`lab: ${m}\n`),
};

export interface LabUpOptions {
  /** Lab name (container and network name prefix); default: the topology's `name`. */
  readonly name?: string;
  /** Keep what was created when bringing the lab up fails. */
  readonly keepOnFailure?: boolean;
  /** Hosts run `segmesh agent` instead of gobgpd alone. */
  readonly agent?: boolean;
  /** Agent mode: a FabricPolicy file to publish instead of the topology's tenants. */
  readonly policy?: string;
  readonly json?: boolean;
}

export interface LabSelectOptions {
  readonly name?: string;
  readonly json?: boolean;
}

async function labName(file: string | undefined, name: string | undefined): Promise<string> {
  if (name) {
    checkPrefix(name, file ?? '--name');
    return name;
  }
  if (!file) throw new Error('give the topology file (or --name LAB)');
  const spec = await loadTopology(file);
  if (!spec.name) throw new Error(`${file}: the topology has no name; set name: or pass --name`);
  return spec.name;
}

/** `segmesh lab up FILE [--name LAB] [--keep-on-failure] [--json]` */
export async function labUpCommand(
  file: string,
  opts: LabUpOptions = {},
  io: LabIo = defaultIo,
): Promise<number> {
  if (opts.policy && !opts.agent)
    throw new Error('--policy needs --agent (only agents read a fabric policy)');
  const plan = await planFromFile(file, {
    ...(opts.name ? { prefix: opts.name } : {}),
    ...(opts.agent
      ? {
          hostRuntime: 'agent' as const,
          operator: await newOperatorKey(),
          // A fresh cluster key per lab: only its hosts join its gossip.
          clusterKey: await newClusterKey(),
          ...(opts.policy ? { policy: await readPolicy(opts.policy) } : {}),
        }
      : {}),
  });
  io.progress(`topology ${file}: ${plan.nodes.length} nodes, ${plan.networks.length} networks`);
  await ensureEngine(io.progress);
  // Before the images (minutes on a fresh machine): the kernel decides first.
  await checkLabKernel(plan);
  const image = await ensureImages(io.progress);
  const lab = await labUp(plan, {
    image,
    progress: io.progress,
    ...(opts.keepOnFailure ? { keepOnFailure: true } : {}),
  });
  // Agents: publish the policy and attach the workloads through CNI, as an operator would.
  const workloads = opts.agent
    ? await startFabric(lab, io.progress).catch(async (e: unknown) => {
        if (!opts.keepOnFailure) await labDown(plan.prefix, io.progress);
        throw e;
      })
    : [];
  // Which backend each agent took (kernel seg6 routes, or eBPF where the kernel has none).
  const dataplanes = new Map<string, string>();
  if (opts.agent) {
    const docker = await labDocker();
    for (const n of plan.nodes.filter((x) => x.role === 'host')) {
      const d = await agentDataplane(docker, n.containerName);
      dataplanes.set(n.node, d?.backend ?? '?');
    }
  }
  if (opts.json) {
    io.out(
      `${JSON.stringify({ lab: plan.prefix, image, nodes: plan.nodes.map((n) => ({ node: n.node, role: n.role, container: n.containerName, addresses: n.endpoints.map((e) => e.ipv6), ...(dataplanes.has(n.node) ? { dataplane: dataplanes.get(n.node) } : {}) })), edgeSids: Object.fromEntries(lab.edgeSids), workloads: workloads.map((w) => ({ name: w.name, tenant: w.tenant, host: w.host, address: w.address })) })}\n`,
    );
  } else {
    io.out(
      `${renderTable(
        ['NODE', 'ROLE', 'CONTAINER', 'ADDRESSES', ...(opts.agent ? ['DATA PLANE'] : [])],
        plan.nodes.map((n) => [
          n.node,
          n.role,
          n.containerName,
          n.endpoints.map((e) => e.ipv6).join(' '),
          ...(opts.agent ? [dataplanes.get(n.node) ?? '-'] : []),
        ]),
      )}\n${
        workloads.length > 0
          ? `\n${renderTable(
              ['WORKLOAD', 'TENANT', 'HOST', 'ADDRESS'],
              workloads.map((w) => [w.name, w.tenant, w.host, w.address]),
            )}\n`
          : ''
      }\nexec into a node: segmesh lab exec NODE -- CMD; remove it all: segmesh lab down ${file}\n`,
    );
  }
  return 0;
}

/** `segmesh lab status FILE [--name LAB] [--json]`: exit 1 when no container of the lab exists. */
export async function labStatusCommand(
  file: string | undefined,
  opts: LabSelectOptions = {},
  io: LabIo = defaultIo,
): Promise<number> {
  const name = await labName(file, opts.name);
  configureDockerEnv();
  const status = await labStatus(name);
  if (opts.json) {
    io.out(`${JSON.stringify(status)}\n`);
    return status.nodes.length > 0 ? 0 : 1;
  }
  if (status.nodes.length === 0) {
    io.out(`lab ${name}: not up\n`);
    return 1;
  }
  const rows = status.nodes.map((n) => [
    n.node,
    n.role,
    n.state,
    n.addresses.join(' '),
    Object.entries(n.daemons)
      .map(([d, up]) => `${d}:${up ? 'up' : 'down'}`)
      .join(' ') || '-',
    Object.entries(n.bgp)
      .map(([peer, s]) => `${peer}=${s}`)
      .join(' ') || '-',
    // Which backend each agent took: kernel seg6 routes, or eBPF where the kernel has none.
    n.dataplane?.backend ?? '-',
  ]);
  io.out(
    `lab ${name}\n${renderTable(['NODE', 'ROLE', 'STATE', 'ADDRESSES', 'DAEMONS', 'BGP', 'DATA PLANE'], rows)}\n`,
  );
  for (const n of status.nodes)
    if (n.dataplane) io.out(`${n.node}: data plane ${n.dataplane.backend} (${n.dataplane.why})\n`);
  io.out(`networks: ${status.networks.map((n) => `${n.name} (${n.subnets.join(', ')})`).join('; ')}\n`);
  return 0;
}

export interface LabExecOptions {
  /** Lab name when several labs have a node of this name. */
  readonly lab?: string;
  /** Allocate a terminal (default: when stdin is one). */
  readonly tty?: boolean;
}

/** `segmesh lab exec NODE [--lab LAB] -- CMD...`: runs CMD in the node's container; its exit code. */
export async function labExecCommand(
  node: string,
  command: readonly string[],
  opts: LabExecOptions = {},
): Promise<number> {
  configureDockerEnv();
  const vm = findVmNode(node, opts.lab);
  if (vm) return vmExecCommand(vm, command);
  const container = await findNodeContainer(node, opts.lab);
  const cmd = command.length > 0 ? command : ['bash'];
  const tty = opts.tty ?? (process.stdin.isTTY === true && process.stdout.isTTY === true);
  return new Promise((resolve, reject) => {
    const child = spawn('docker', ['exec', '-i', ...(tty ? ['-t'] : []), container, ...cmd], {
      stdio: 'inherit',
      env: process.env,
    });
    child.on('error', (e) => reject(new Error(`cannot run the docker client: ${e.message}; is it on PATH?`)));
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** `lab exec` on a VM node (src/lab/vm-edge.ts): one command through its control channel, no terminal. */
async function vmExecCommand(vm: VmNodeRecord, command: readonly string[]): Promise<number> {
  if (command.length === 0)
    throw new LabEngineError(
      `node ${vm.node} of lab ${vm.lab} is a VM: it runs commands, not an interactive shell; ` +
        `pass one (segmesh lab exec ${vm.node} -- vtysh -c 'show bgp summary'); its console: ${vm.vm.logDir}/console.log`,
    );
  const r = await vmNodeExec(vm.lab, vm.node, command);
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  return r.exitCode;
}

/** `segmesh lab down FILE [--name LAB]`: removes the lab's containers and networks. */
export async function labDownCommand(
  file: string | undefined,
  opts: LabSelectOptions = {},
  io: LabIo = defaultIo,
): Promise<number> {
  const name = await labName(file, opts.name);
  configureDockerEnv();
  const report = await labDown(name, io.progress);
  if (opts.json) io.out(`${JSON.stringify({ lab: name, ...report })}\n`);
  else
    io.out(
      `lab ${name}: removed ${report.containers.length} containers, ${report.networks.length} networks\n`,
    );
  return 0;
}

/**
 * The `lab` command group for the CLI: `program.addCommand(labCommand())` in src/cli/main.ts.
 * Each action sets `process.exitCode` from its handler.
 */
export function labCommand(): Command {
  const lab = new Command('lab').description(
    'multi-node topologies in Docker containers (hosts, FRR edge routers, external clients): docs/lab.md',
  );
  lab
    .command('up')
    .description('build the images if needed, create the networks and start every node of a topology')
    .argument('<file>', 'topology (kind: Topology), e.g. topologies/edge.yaml')
    .option('--name <lab>', "lab name (prefix of container and network names); default: the topology's name")
    .option('--keep-on-failure', 'leave what was created when bringing the lab up fails')
    .option(
      '--agent',
      'hosts run segmesh agent (which starts gobgpd); the policy is published and the workloads attached through CNI',
    )
    .option('--policy <file>', "with --agent: a FabricPolicy to publish instead of the topology's tenants")
    .option('--json', 'machine-readable output')
    .action(
      async (
        file: string,
        o: { name?: string; keepOnFailure?: boolean; agent?: boolean; policy?: string; json?: boolean },
      ) => {
        process.exitCode = await labUpCommand(file, o);
      },
    );
  lab
    .command('demo')
    .description(
      'bring a topology up with agents, show the fabric, prove reachability and isolation with a ping matrix, stay up until Ctrl-C, tear down (exit 1 when the matrix differs from the expected)',
    )
    .argument('[file]', 'topology', 'topologies/edge.yaml')
    .option('--once', 'tear down right after the matrix (for scripts)')
    .option('--policy <file>', "a FabricPolicy to publish instead of the topology's tenants")
    .option('--name <lab>', "lab name; default: the topology's name")
    .option('--keep', 'leave the lab up when the demo ends')
    .option(
      '--relocate <slot>',
      "move the lab's subnets to slot 0-65535 (fc00:98:<slot>::/64 ...) to run beside another copy",
      (v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new Error(`--relocate ${v}: give 0-65535`);
        return n;
      },
    )
    .option('--json', 'print the matrix as JSON (and nothing else on stdout)')
    .action(
      async (
        file: string,
        o: {
          once?: boolean;
          policy?: string;
          name?: string;
          keep?: boolean;
          json?: boolean;
          relocate?: number;
        },
      ) => {
        const { relocate, ...rest } = o;
        // Ctrl-C (or SIGTERM) at any time ends the demo through its clean-up, never around it.
        const abort = new AbortController();
        const stop = () => {
          if (!abort.signal.aborted) defaultIo.progress('stopping: the lab is torn down');
          abort.abort();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        try {
          process.exitCode = await runDemo(
            file,
            { ...rest, ...(relocate !== undefined ? { plan: { relocate } } : {}) },
            {
              out: defaultIo.out,
              progress: defaultIo.progress,
              signal: abort.signal,
              // A pending promise alone does not keep Node running: a timer does, until the signal.
              untilInterrupted: () =>
                abort.signal.aborted
                  ? Promise.resolve()
                  : new Promise((resolve) => {
                      const keepAlive = setInterval(() => {}, 60_000);
                      abort.signal.addEventListener('abort', () => {
                        clearInterval(keepAlive);
                        resolve();
                      });
                    }),
            },
          );
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      },
    );
  lab
    .command('status')
    .description("show the lab's nodes, addresses, daemons and BGP sessions (exit 1 when it is not up)")
    .argument('[file]', 'topology file (or --name)')
    .option('--name <lab>', 'lab name')
    .option('--json', 'machine-readable output')
    .action(async (file: string | undefined, o: { name?: string; json?: boolean }) => {
      process.exitCode = await labStatusCommand(file, o);
    });
  lab
    .command('exec')
    .description('run a command in a node of a running lab (default: a shell)')
    .argument('<node>', 'node name, e.g. host1 or edge1')
    .argument('[command...]', 'the command, after --')
    .option('--lab <name>', 'lab name, when several running labs have this node')
    .option('-t, --tty', 'allocate a terminal (default: when stdin is one)')
    .action(async (node: string, command: string[], o: { lab?: string; tty?: boolean }) => {
      process.exitCode = await labExecCommand(node, command, o);
    });
  lab
    .command('down')
    .description('remove every container and network of a lab (by its label; nothing else)')
    .argument('[file]', 'topology file (or --name)')
    .option('--name <lab>', 'lab name')
    .option('--json', 'machine-readable output')
    .action(async (file: string | undefined, o: { name?: string; json?: boolean }) => {
      process.exitCode = await labDownCommand(file, o);
    });
  return lab;
}
