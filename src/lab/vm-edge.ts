/**
 * The edge router as a VM node (`runtime: vm` on an edge-router node; the default where this
 * machine's kernel lacks seg6 routes): FRR 8.4 on Debian's kernel (src/vm), attached to the lab's Docker
 * networks through one tap per network, each enslaved to that network's bridge. There the tenant is a
 * real VRF device, FRR allocates its SID and zebra installs End.DT6 itself (./frr-vrf.ts).
 *
 * The VM outlives `segmesh lab up`: its state (qemu's PID and start time, taps, control socket, the
 * lab's labels) is a file under VM_STATE_DIR, so `lab down`, `lab exec` and the test sweeper find it
 * by the same labels as the containers (`stopVmNodesByLabel`).
 */

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type Dockerode from 'dockerode';
import { detectKernelFeatures } from '../dataplane/features.ts';
import { ensureVmImage, type VmImage } from '../vm/image.ts';
import {
  controlLoop,
  type ServiceVmState,
  serviceVmAlive,
  serviceVmExec,
  startServiceVm,
  stopServiceVm,
  type VmExecResult,
} from '../vm/service.ts';
import type { VmTap } from '../vm/vm.ts';
import type { Progress } from './engine.ts';
import { LabNodeError } from './errors.ts';
import { frrDaemons } from './frr.ts';
import { frrVrfConfig, parseVrfSid } from './frr-vrf.ts';
import type { LabPlan, NodePlan } from './plan.ts';

export type EdgeRuntime = 'vm' | 'container';

export const VM_STATE_DIR = process.env.SEGMESH_LAB_VM_DIR ?? '/run/segmesh-lab-vm';

export interface VmNodeRecord {
  readonly lab: string;
  readonly node: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly vm: ServiceVmState;
}

/** Where the host kernel lacks seg6 or seg6local routes, edges run in the VM; elsewhere in containers. */
export async function defaultEdgeRuntime(): Promise<EdgeRuntime> {
  const k = await detectKernelFeatures();
  return k.seg6 && k.seg6local ? 'container' : 'vm';
}

/** The runtime of each edge router of `plan` (`auto` resolved against this machine's kernel). */
export async function edgeRuntimes(plan: LabPlan): Promise<Map<string, EdgeRuntime>> {
  const out = new Map<string, EdgeRuntime>();
  let auto: EdgeRuntime | undefined;
  for (const [name, e] of plan.edges) {
    const r = e.runtime ?? 'auto';
    if (r === 'auto') auto ??= await defaultEdgeRuntime();
    out.set(name, r === 'auto' ? (auto as EdgeRuntime) : r);
  }
  return out;
}

const recordDir = (lab: string, node: string) => `${VM_STATE_DIR}/${lab}--${node}`;

/** Every VM node's state record on this machine. */
export function vmNodeRecords(): VmNodeRecord[] {
  let dirs: string[] = [];
  try {
    dirs = readdirSync(VM_STATE_DIR);
  } catch {
    return [];
  }
  const out: VmNodeRecord[] = [];
  for (const d of dirs) {
    try {
      out.push(JSON.parse(readFileSync(`${VM_STATE_DIR}/${d}/node.json`, 'utf8')) as VmNodeRecord);
    } catch {}
  }
  return out;
}

export function vmNodeRecord(lab: string, node: string): VmNodeRecord | undefined {
  try {
    return JSON.parse(readFileSync(`${recordDir(lab, node)}/node.json`, 'utf8')) as VmNodeRecord;
  } catch {
    return undefined;
  }
}

/** Every VM node of lab `lab` whose VM still runs. */
export function runningVmNodes(lab: string): VmNodeRecord[] {
  return vmNodeRecords().filter((r) => r.lab === lab && serviceVmAlive(r.vm));
}

/** The running VM node named `node` (in lab `lab` if given); undefined when there is none. */
export function findVmNode(node: string, lab?: string): VmNodeRecord | undefined {
  const found = vmNodeRecords().filter(
    (r) => r.node === node && (lab === undefined || r.lab === lab) && serviceVmAlive(r.vm),
  );
  if (found.length > 1)
    throw new LabNodeError(
      node,
      `is in several labs (${found.map((r) => r.lab).join(', ')}); pick one with --lab NAME`,
    );
  return found[0];
}

/** Runs a command in a VM node (through its control channel); never throws on a non-zero exit. */
export async function vmNodeExec(lab: string, node: string, cmd: readonly string[]): Promise<VmExecResult> {
  const r = vmNodeRecord(lab, node);
  if (!r) throw new LabNodeError(node, `no VM of lab ${lab} (no ${recordDir(lab, node)}/node.json)`);
  return serviceVmExec(r.vm, cmd);
}

/**
 * Stops the VM nodes carrying `label` (`key=value`, as `removeByLabel` takes it): qemu by PID, taps
 * deleted, state removed. Returns the nodes stopped.
 */
export async function stopVmNodesByLabel(label: string, progress: Progress = () => {}): Promise<string[]> {
  const eq = label.indexOf('=');
  const [key, value] = [label.slice(0, eq), label.slice(eq + 1)];
  const stopped: string[] = [];
  for (const r of vmNodeRecords()) {
    if (r.labels[key] !== value) continue;
    await stopServiceVm(r.vm);
    rmSync(recordDir(r.lab, r.node), { recursive: true, force: true });
    stopped.push(`${r.lab}/${r.node}`);
    progress(`stopped VM ${r.vm.name} (taps ${r.vm.taps.join(', ')})`);
  }
  return stopped;
}

/**
 * Tap names: at most 15 bytes, unique per lab and node. A test lab's prefix starts with the run
 * prefix (sm<4 hex>-), so its taps do too and the test sweeper removes them with the run's other links.
 */
export function vmTapName(lab: string, node: string, index: number): string {
  const run = /^(sm[0-9a-f]{4})-/.exec(lab)?.[1] ?? 'smv';
  const h = createHash('sha256')
    .update(`${lab}/${node}`)
    .digest('hex')
    .slice(0, 14 - run.length - 2);
  return `${run}-${h}${index.toString(36)}`;
}

/** The Linux bridge of a Docker bridge network (its option, or Docker's default br-<id12>). */
export async function dockerBridge(docker: Dockerode, network: string): Promise<string> {
  const info = (await docker.getNetwork(network).inspect()) as {
    Id: string;
    Driver?: string;
    Options?: Record<string, string>;
  };
  if (info.Driver && info.Driver !== 'bridge')
    throw new LabNodeError(
      network,
      `network ${network} uses driver ${info.Driver}; a VM node needs a bridge`,
    );
  return info.Options?.['com.docker.network.bridge.name'] ?? `br-${info.Id.slice(0, 12)}`;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** What the edge VM runs: VRF, addresses, routes, FRR, then the control loop (it never returns). */
export function vmEdgeScript(o: {
  vrf: { name: string; table: number };
  underlay: { dev: string; ipv4: string };
  external: readonly { dev: string; ipv6: string; ipv4: string }[];
  routes: readonly (readonly [string, string])[];
  files: Readonly<Record<string, string>>;
}): string {
  return [
    'set -u',
    'die() { echo "edge: $*"; exit 1; }',
    'modprobe -a vrf || die "cannot load the vrf module"',
    'sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1 net.vrf.strict_mode=1',
    'for f in /proc/sys/net/ipv6/conf/*/seg6_enabled; do echo 1 >"$f"; done',
    `ip addr add ${o.underlay.ipv4} dev ${o.underlay.dev} || die "ip addr add ${o.underlay.ipv4}"`,
    `ip link add ${o.vrf.name} type vrf table ${o.vrf.table} && ip link set ${o.vrf.name} up || die "cannot create VRF ${o.vrf.name}"`,
    // Enslaving flushes a device's IPv6 addresses: the external ones are added after.
    ...o.external.flatMap((x) => [
      `ip link set ${x.dev} master ${o.vrf.name} || die "cannot enslave ${x.dev} to ${o.vrf.name}"`,
      `ip link set ${x.dev} up`,
      `ip addr add ${x.ipv6} dev ${x.dev} nodad && ip addr add ${x.ipv4} dev ${x.dev} || die "addresses of ${x.dev}"`,
    ]),
    ...o.routes.map(([dst, via]) => `ip -6 route replace ${dst} via ${via} || die "route ${dst} via ${via}"`),
    'mkdir -p /etc/frr /var/log/frr',
    ...Object.entries(o.files).map(([path, text]) => `printf %s '${b64(text)}' | base64 -d >${path}`),
    'chown -R frr:frr /etc/frr /var/log/frr',
    '/usr/lib/frr/frrinit.sh start >/var/log/frr-start.log 2>&1 || { cat /var/log/frr-start.log; die "FRR did not start"; }',
    // frrinit.sh loads frr.conf once (vtysh -b); under emulation on a busy machine a daemon may not
    // answer in time, and FRR then runs without its configuration: load it again (every 10 s, once the
    // daemons answer) until bgpd has it.
    'i=0',
    "until vtysh -c 'show running-config' 2>/dev/null | grep -q '^router bgp'; do",
    '  i=$((i + 1)); [ $i -le 300 ] || die "FRR did not take its configuration (vtysh -b)"',
    '  if [ $((i % 10)) -eq 0 ] && vtysh -c "show version" >/dev/null 2>&1; then',
    '    echo "edge: loading frr.conf again"; timeout 60 vtysh -b >>/var/log/frr-start.log 2>&1',
    '  fi',
    '  sleep 1',
    'done',
    'echo SEGMESH_EDGE_FRR_STARTED',
    controlLoop(),
  ].join('\n');
}

/** FRR's files in the edge VM: the integrated configuration `frr.conf`, the daemons, vtysh's. */
export function vmEdgeFiles(frrConf: string): Record<string, string> {
  return {
    '/etc/frr/frr.conf': frrConf,
    '/etc/frr/daemons': frrDaemons(),
    '/etc/frr/vtysh.conf': 'service integrated-vtysh-config\n',
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface VmEdgeUp {
  readonly record: VmNodeRecord;
  readonly sid: string;
  readonly bootMs: number;
  readonly sidMs: number;
}

/**
 * Boots the edge VM of `node` on the lab's networks (they must exist), starts FRR with the VRF
 * configuration, and waits until zebra installed FRR's VPN SID as End.DT6. Fails within
 * `timeoutMs` (default 180 s: 52-64 s were measured with a load average of 15 on 2 cores, more while
 * a lab's agents start beside it) naming why; stops the VM then.
 */
export async function startVmEdge(
  docker: Dockerode,
  plan: LabPlan,
  node: NodePlan,
  opts: { progress: Progress; timeoutMs?: number },
): Promise<VmEdgeUp> {
  const edge = plan.edges.get(node.node);
  if (!edge) throw new LabNodeError(node.node, 'not an edge router of this lab');
  const tenant = plan.view.tenants.get(edge.tenant);
  if (!tenant) throw new LabNodeError(node.node, `unknown tenant ${edge.tenant}`);
  const t0 = Date.now();
  const deadline = t0 + (opts.timeoutMs ?? 180_000);
  const image = await ensureVmImage({ progress: (l) => opts.progress(l) });
  const subnetLength = (network: string, family: 6 | 4) => {
    const n = plan.networks.find((x) => x.name === network);
    const s = family === 6 ? n?.ipv6Subnet : n?.ipv4Subnet;
    return s?.split('/')[1] ?? (family === 6 ? '64' : '24');
  };
  const [under, ...exts] = node.endpoints;
  if (!under) throw new LabNodeError(node.node, 'has no underlay endpoint');
  const taps: VmTap[] = [];
  for (const [i, ep] of node.endpoints.entries()) {
    taps.push({
      name: vmTapName(plan.prefix, node.node, i),
      master: await dockerBridge(docker, ep.network),
      guestName: i === 0 ? 'eth0' : `ext${i - 1}`,
      // External NICs get their addresses once enslaved to the VRF (enslaving flushes IPv6 addresses).
      guestAddresses: i === 0 ? [`${ep.ipv6}/${subnetLength(ep.network, 6)}`] : [],
    });
  }
  const vrf = { name: `vrf${tenant.id}`.slice(0, 15), table: 1000 + tenant.id };
  const clients = [...plan.clients].filter(([, e]) => e === node.node).map(([c]) => c);
  const exportPrefixes = clients
    .map((c) => plan.networks.find((n) => n.key === `ext-${c}`)?.ipv6Subnet)
    .filter((s): s is string => !!s);
  const hostNames = [...plan.hosts.keys()];
  const underlayOf = (h: string) => plan.nodes.find((n) => n.node === h)?.endpoints[0]?.ipv6 ?? '';
  const frrConf = frrVrfConfig({
    hostname: node.node,
    asn: edge.asn,
    routerId: under.ipv4,
    neighbors: hostNames.map((h) => ({
      address: underlayOf(h),
      asn: plan.hosts.get(h)!.asn,
      advertisementInterval: 0,
    })),
    locator: edge.locator,
    vrf,
    tenant: {
      rd: `${edge.asn}:${tenant.id}`,
      rt: tenant.routeTarget ?? `${edge.asn}:${tenant.id}`,
      exportPrefixes,
    },
  });
  const script = vmEdgeScript({
    vrf,
    underlay: { dev: 'eth0', ipv4: `${under.ipv4}/${subnetLength(under.network, 4)}` },
    external: exts.map((ep, i) => ({
      dev: `ext${i}`,
      ipv6: `${ep.ipv6}/${subnetLength(ep.network, 6)}`,
      ipv4: `${ep.ipv4}/${subnetLength(ep.network, 4)}`,
    })),
    routes: hostNames.map((h) => [plan.hosts.get(h)!.locator, underlayOf(h)] as const),
    files: vmEdgeFiles(frrConf),
  });
  const dir = recordDir(plan.prefix, node.node);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  opts.progress(
    `edge-router ${node.node}: booting the VM (kernel ${image.kernelVersion}), taps ${taps.map((t) => `${t.name}@${t.master}`).join(', ')}`,
  );
  let record: VmNodeRecord | undefined;
  const up = await bootFrrEdgeVm({
    name: `${plan.prefix}-${node.node}`.slice(0, 60),
    image,
    taps,
    script,
    logDir: dir,
    asn: edge.asn,
    locator: edge.locator,
    vrf: vrf.name,
    deadline,
    progress: (l) => opts.progress(`edge-router ${node.node}: ${l}`),
    onStarted: (vm) => {
      record = { lab: plan.prefix, node: node.node, labels: { ...node.labels }, vm };
      writeFileSync(`${dir}/node.json`, `${JSON.stringify(record, null, 2)}\n`);
    },
    onFailed: () => rmSync(`${dir}/node.json`, { force: true }),
    error: (m) => new LabNodeError(node.node, m),
  });
  // Counted from this function's start (the image check included), as before.
  const before = up.t0 - t0;
  return { record: record!, sid: up.sid, bootMs: before + up.bootMs, sidMs: before + up.sidMs };
}

export interface FrrEdgeVmOptions {
  /** Names the qemu process. */
  readonly name: string;
  readonly image: VmImage;
  /** The NICs: the underlay first (guest eth0), then the external networks (ext0, ext1, ...). */
  readonly taps: readonly VmTap[];
  /** What the guest runs (vmEdgeScript: VRF, addresses, routes, FRR's files). */
  readonly script: string;
  /** console.log, output.log, the control socket. */
  readonly logDir: string;
  readonly asn: number;
  readonly locator: string;
  /** The tenant's VRF: FRR's VPN SID is the one it allocated for it. */
  readonly vrf: string;
  /** Date.now() by which FRR must have its SID installed, or the VM is stopped and this fails. */
  readonly deadline: number;
  readonly progress: (line: string) => void;
  readonly memoryMiB?: number;
  /** qemu's PID as soon as it runs (for a sweeper). */
  readonly onProcess?: (pid: number, name: string) => void;
  /** Once the guest is up (before FRR has started): the caller's record; may attach the taps elsewhere. */
  readonly onStarted?: (vm: ServiceVmState) => void | Promise<void>;
  /** After a failure stopped the VM. */
  readonly onFailed?: () => void;
  /** The error thrown on failure (default Error). */
  readonly error?: (message: string) => Error;
}

export interface FrrEdgeVm {
  readonly vm: ServiceVmState;
  /** FRR's VPN SID for the VRF, installed by zebra as End.DT6. */
  readonly sid: string;
  /** When this started (Date.now()), and when the VM was up and the SID was installed. */
  readonly t0: number;
  readonly bootMs: number;
  readonly sidMs: number;
}

/**
 * Boots an FRR edge VM (`script` from vmEdgeScript) and waits until zebra installed FRR's VPN SID of
 * `vrf` as End.DT6. Fails by `deadline` naming the step (the boot, FRR's start, the SID, zebra's route)
 * with the guest's output and FRR's processes and log; stops the VM then. Used by the lab's VM edge
 * and the test harness's (test/harness/frr-vm.ts).
 */
export async function bootFrrEdgeVm(o: FrrEdgeVmOptions): Promise<FrrEdgeVm> {
  const t0 = Date.now();
  const mkError = o.error ?? ((m: string) => new Error(m));
  let vm: ServiceVmState;
  try {
    vm = await startServiceVm({
      name: o.name,
      image: o.image,
      command: ['sh', '-c', o.script],
      taps: o.taps,
      logDir: o.logDir,
      memoryMiB: o.memoryMiB ?? 512,
      readyTimeoutMs: Math.max(5_000, o.deadline - Date.now()),
      ...(o.onProcess ? { onProcess: o.onProcess } : {}),
    });
  } catch (e) {
    o.onFailed?.();
    throw e; // VmError: names the boot step, with qemu's and the console's last lines
  }
  const bootMs = Date.now() - t0;
  const output = () => {
    try {
      return readFileSync(`${o.logDir}/output.log`, 'utf8').trim().split('\n').slice(-15).join('\n');
    } catch {
      return '';
    }
  };
  const fail = async (why: string): Promise<never> => {
    // What FRR did, while the VM still answers; the logs stay in the folder.
    const diag = await serviceVmExec(
      vm,
      [
        'sh',
        '-c',
        'ps -eo pid,user,args | grep -E "[z]ebra|[b]gpd|[w]atchfrr"; cat /var/log/frr-start.log; tail -n 20 /var/log/frr/frr.log',
      ],
      10_000,
    )
      .then((r) => r.output)
      .catch((e: unknown) => `(unreachable: ${e instanceof Error ? e.message : String(e)})`);
    const guest = output();
    await stopServiceVm(vm);
    o.onFailed?.();
    throw mkError(
      `edge VM ${vm.name}: ${why}\nguest output:\n${guest}\nFRR (processes, start log, log):\n${diag}\nlogs: ${o.logDir}`,
    );
  };
  try {
    await o.onStarted?.(vm);
  } catch (e) {
    return fail(`setting up after boot: ${e instanceof Error ? e.message : String(e)}`);
  }
  // FRR started, then the control loop answers.
  while (!output().includes('SEGMESH_EDGE_FRR_STARTED')) {
    if (!serviceVmAlive(vm)) return fail('the VM stopped before FRR started');
    if (Date.now() > o.deadline) return fail('FRR did not start in time');
    await sleep(200);
  }
  o.progress(`VM up and FRR started in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  let sid: string | undefined;
  let last = '';
  // bgpd asks zebra for a chunk of the locator once, when it reads its configuration; when zebra has not
  // taken the locator yet (the daemons start together, slowly under emulation on a busy machine) the
  // answer never comes and no SID is allocated ("locator_chunks:" stays empty): ask again.
  let rekick = Date.now() + 20_000;
  while (!sid) {
    if (!serviceVmAlive(vm)) return fail('the VM stopped');
    if (Date.now() > o.deadline)
      return fail(`bgpd allocated no VPN SID for ${o.vrf} (show bgp segment-routing srv6: "${last.trim()}")`);
    const r = await serviceVmExec(vm, ['vtysh', '-c', 'show bgp segment-routing srv6'], 20_000).catch(
      (e: unknown) => ({ output: String(e) }),
    );
    last = r.output;
    sid = parseVrfSid(last, o.vrf);
    if (!sid && Date.now() > rekick) {
      rekick = Date.now() + 20_000;
      // With the chunk there but no SID, the VRF's export is redone instead (it allocates on export).
      const chunk = last.toLowerCase().includes(o.locator.toLowerCase());
      o.progress(
        `no VPN SID yet, ${chunk ? `redoing ${o.vrf}'s VPN export` : 'bgpd asks zebra for the locator again'}`,
      );
      const kick = chunk
        ? [`router bgp ${o.asn} vrf ${o.vrf}`, 'address-family ipv6 unicast', 'no export vpn', 'export vpn']
        : [`router bgp ${o.asn}`, 'segment-routing srv6', 'no locator main', 'locator main'];
      await serviceVmExec(
        vm,
        ['vtysh', '-c', 'configure terminal', ...kick.flatMap((c) => ['-c', c])],
        20_000,
      ).catch(() => undefined);
    }
    if (!sid) await sleep(500);
  }
  // zebra installs it (End.DT6 into the VRF's table): nothing done by hand.
  let route = '';
  while (!/End\.DT6/.test(route)) {
    if (Date.now() > o.deadline)
      return fail(`zebra did not install SID ${sid} as End.DT6: "${route.trim()}"`);
    route = (await serviceVmExec(vm, ['ip', '-6', 'route', 'show', `${sid}/128`], 20_000)).output;
    if (!/End\.DT6/.test(route)) await sleep(300);
  }
  o.progress(`FRR VPN SID ${sid} (zebra: ${route.trim()})`);
  return { vm, sid, t0, bootMs, sidMs: Date.now() - t0 };
}
