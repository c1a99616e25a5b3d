/**
 * A fabric of agents for system tests: host namespaces on the harness switch, each running
 * `segmesh agent` (from source, on this Node 24) with its own state directory and API socket; an
 * operator key whose tenants are applied through the first agent; membership closed by a cluster key.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { AgentClient } from '../../../src/agent/client.ts';
import {
  Behavior,
  linkDropKey,
  MAP,
  Mode as PolicyMode,
  policyOfExact,
  Reason,
  type ReasonName,
  TENANT_DELIVERY,
  TENANT_FORWARD,
  TENANT_RETURN,
  u32Key,
} from '../../../src/dataplane/ebpf/abi.ts';
import { BpfMap } from '../../../src/dataplane/ebpf/libbpf.ts';
import { MAIN_TABLE, nfReturnTable, tenantTables } from '../../../src/dataplane/kernel/tables.ts';
import { newClusterKey, newOperatorKey } from '../../../src/gossip/identity.ts';
import { formatIpv6, ipv6FromBytes, parseIpv6 } from '../../../src/srv6/address.ts';
import { type FrrEdge, startFrr } from '../../harness/frr.ts';
import { startFrrVm } from '../../harness/frr-vm.ts';
import type { Daemon, Lab, Netns, UnderlaySwitch } from '../../harness/index.ts';
import { pace, paced, runLogDir, sh, waitFor } from '../../harness/index.ts';
import { type KernelNeed, lackedKernelFeatures } from '../../harness/kernel.ts';

export const CLI = ['src/cli/main.ts'];

export interface EdgePeer {
  readonly address: string;
  readonly asn: number;
  readonly locator: string;
}

/** The edge router the agent tests use: on the underlay switch, serving tenant blue. */
export const EDGE: EdgePeer = { address: '2001:db8:100::fe', asn: 65000, locator: 'fc00:0:fe00::/64' };
/** The external client's network behind the edge (exported into blue's VPN by FRR). */
export const EXT_NET = {
  prefix: '2001:db8:e1::/64',
  edge: '2001:db8:e1::1',
  client: '2001:db8:e1::2',
} as const;

/**
 * Whether the suites' FRR edge runs in the VM (this kernel lacks seg6 routes, which zebra installs in
 * an edge namespace) or in a namespace here. SEGMESH_TEST_EDGE=vm|netns chooses by hand (vm: to try
 * the VM edge on a kernel with seg6).
 */
export function edgeInVm(): boolean {
  const forced = process.env.SEGMESH_TEST_EDGE;
  if (forced === 'vm' || forced === 'netns') return forced === 'vm';
  return lackedKernelFeatures(['seg6', 'seg6local']).length > 0;
}

/** What a suite with an FRR edge needs besides its own tools: qemu and the image, or FRR and seg6. */
export function edgeRequirements(): { tools: string[]; kernel: KernelNeed[] } {
  return edgeInVm()
    ? { tools: ['qemu-system-x86_64', 'mmdebstrap'], kernel: [] }
    : { tools: ['zebra', 'bgpd'], kernel: ['seg6', 'seg6local'] };
}

export interface AgentHost {
  readonly name: string;
  readonly ns: Netns;
  readonly index: number;
  readonly underlay: string;
  readonly stateDir: string;
  readonly socket: string;
  readonly config: string;
  /** The eBPF backend's pins (a bpffs mounted by the cluster). */
  readonly pinDir: string;
  agent: Daemon | undefined;
}

/** A drop the tests count, by what was dropped; each backend counts it in the kernel its own way. */
export type DropKind = 'no-route' | 'workload-srv6' | 'host-address';

/** Runs the CLI (from source) and returns stdout; throws with stderr on failure unless allowFail. It blocks
 * this process meanwhile: while a background child's output must be read, {@link segmeshAsync}. */
export function segmesh(
  args: readonly string[],
  opts: { allowFail?: boolean } = {},
): { out: string; err: string; code: number } {
  // A fresh node importing the CLI: seconds on the host, tens of seconds in the TCG VM (pace.ts).
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', timeout: paced(60_000) });
  if (r.status !== 0 && !opts.allowFail)
    throw new Error(`segmesh ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { out: r.stdout, err: r.stderr, code: r.status ?? -1 };
}

export function segmeshJson<T>(args: readonly string[]): T {
  return JSON.parse(segmesh([...args, '--json']).out) as T;
}

/**
 * The CLI without blocking this process. {@link segmesh} stalls the event loop for as long as the CLI
 * runs (tens of seconds in the TCG VM): a background child whose output this process reads meanwhile (a
 * ping's echoes) fills its pipe and stops at its next write, and agents running in this process stop.
 */
export async function segmeshAsync(args: readonly string[]): Promise<{ out: string; err: string }> {
  const r = await sh(process.execPath, [...CLI, ...args], { timeoutMs: paced(60_000) });
  return { out: r.stdout, err: r.stderr };
}

export async function segmeshJsonAsync<T>(args: readonly string[]): Promise<T> {
  return JSON.parse((await segmeshAsync([...args, '--json'])).out) as T;
}

export const TENANTS = `apiVersion: segmesh.io/v1alpha1
kind: FabricPolicy
tenants:
  - { name: blue, id: 100, prefixes: ["2001:db8:b100::/64"], routeTarget: "65000:100" }
  - { name: red, id: 200, prefixes: ["2001:db8:b200::/64"], routeTarget: "65000:200" }
`;

export class AgentCluster {
  readonly hosts: AgentHost[] = [];
  readonly lab: Lab;
  readonly dir: string;
  operatorKey = '';
  operatorPublic = '';
  /** The cluster key file every agent's gossip.clusterKeyFile names (membership closed by it). */
  clusterKey = '';
  sw: UnderlaySwitch | undefined;

  constructor(lab: Lab) {
    this.lab = lab;
    // One directory per cluster: test files of one run share the run prefix (and its log folder).
    this.dir = `${runLogDir()}/cluster-${process.pid}-${Date.now()}`;
    mkdirSync(this.dir, { recursive: true });
  }

  /**
   * The FRR 8.4 edge for a cluster created with `{ edge: EDGE }`: on the underlay switch with static
   * routes to the hosts' locators, serving tenant blue, advertisement interval 0 toward the hosts
   * (gobgpd's is 0 too: a move reaches the edge at once), and an external client behind it on EXT_NET.
   * Where this kernel has seg6 routes, FRR runs in a namespace here (tenant blue in its default
   * instance: one 8.4 instance serves one tenant without VRF devices); where it lacks them, in a VM
   * with Debian's kernel (test/harness/frr-vm.ts: tenant blue in VRF vrf100), the agents here on the
   * eBPF backend. `edgeInVm()` says which, unless `opts.vm` does; `edge` is FRR's namespace, if any.
   */
  async addEdge(opts: { vm?: boolean } = {}): Promise<{ frr: FrrEdge; ext: Netns; edge: Netns | undefined }> {
    const ext = await this.lab.netns('ext');
    const neighbors = this.hosts.map((h) => ({ address: h.underlay, asn: 65101, advertisementInterval: 0 }));
    const tenant = { rd: '65000:100', rt: '65000:100', exportPrefixes: [EXT_NET.prefix] };
    if (opts.vm ?? edgeInVm()) {
      const frr = await startFrrVm(this.lab, {
        name: 'edge',
        sw: this.sw!,
        ext,
        asn: EDGE.asn,
        routerId: '198.18.1.1',
        underlay: `${EDGE.address}/64`,
        external: { edge: `${EXT_NET.edge}/64`, client: `${EXT_NET.client}/64` },
        neighbors,
        locator: EDGE.locator,
        routes: this.hosts.map((h) => [`fc00:0:${h.index}::/48`, h.underlay] as const),
        tenant: { ...tenant, id: 100 },
      });
      return { frr, ext, edge: undefined };
    }
    const edge = await this.lab.netns('edge');
    await this.sw!.attach(edge, 'eth0', [`${EDGE.address}/64`]);
    await this.lab.veth(edge, 'ext', ext, 'eth0', {
      addresses: [`${EXT_NET.edge}/64`],
      peerAddresses: [`${EXT_NET.client}/64`],
    });
    await ext.ip('-6', 'route', 'add', 'default', 'via', EXT_NET.edge);
    for (const h of this.hosts)
      await edge.ip('-6', 'route', 'add', `fc00:0:${h.index}::/48`, 'via', h.underlay, 'dev', 'eth0');
    const frr = await startFrr(this.lab, {
      name: 'edge',
      netns: edge,
      asn: EDGE.asn,
      routerId: '198.18.1.1',
      neighbors,
      locator: EDGE.locator,
      tenant,
      sidDevice: 'eth0',
    });
    return { frr, ext, edge };
  }

  /**
   * A bpffs for one host's eBPF pins, mounted here in the test's mount namespace: an agent runs under
   * `ip netns exec` (a private mount namespace of its own), where a bpffs it mounted itself would die
   * with it, and its pinned programs with it. Unmounted at teardown.
   */
  async bpffs(stateDir: string): Promise<string> {
    const dir = `${stateDir}/bpf`;
    mkdirSync(dir, { recursive: true });
    await sh('mount', ['-t', 'bpf', 'bpf', dir]);
    this.lab.onTeardown(async () => {
      await sh('umount', ['-l', dir], { allowFail: true });
    });
    return dir;
  }

  async create(count: number, opts: { edge?: EdgePeer } = {}): Promise<void> {
    // The keys as `segmesh keygen` makes them (its functions, in this process: a fresh node per key
    // costs a minute in the TCG VM).
    this.operatorKey = `${this.dir}/operator.key`;
    const operator = await newOperatorKey();
    writeFileSync(this.operatorKey, operator.privateKey, { mode: 0o600 });
    this.operatorPublic = operator.publicKey;
    this.clusterKey = `${this.dir}/cluster.key`;
    writeFileSync(this.clusterKey, await newClusterKey(), { mode: 0o600 });
    this.sw = await this.lab.underlaySwitch('sw');
    for (let i = 1; i <= count; i++) {
      const ns = await this.lab.netns(`h${i}`);
      const underlay = `2001:db8:100::${i}`;
      await this.sw.attach(ns, 'eth0', [`${underlay}/64`]);
      const stateDir = `${this.dir}/h${i}`;
      mkdirSync(stateDir, { recursive: true });
      const config = `${stateDir}/agent.yaml`;
      const pinDir = await this.bpffs(stateDir);
      const peers = Array.from({ length: count }, (_, j) => j + 1)
        .filter((j) => j !== i)
        .map((j) => `"/ip6/2001:db8:100::${j}/tcp/7946"`);
      // Liveness (and the BGP hold time, derived from deadAfter) scaled like CPU-bound waits: under TCG
      // three agents, their gobgpds and FRR share one emulated CPU, and 6 s of silence happened there
      // with every host alive (all BGP sessions to FRR dropped at once, hosts declared dead).
      writeFileSync(
        config,
        `apiVersion: segmesh.io/v1alpha1
kind: AgentConfig
host: { name: host${i}, underlay: { interface: eth0, address: "${underlay}" } }
locator: "fc00:0:${i}::/48"
stateDir: ${stateDir}
operatorKeys: ["${this.operatorPublic}"]
gossip:
  clusterKeyFile: ${this.clusterKey}
  listen: ["/ip6/${underlay}/tcp/7946"]
  bootstrap: [${peers.join(', ')}]
  suspectAfter: ${2 * pace()}s
  deadAfter: ${6 * pace()}s
api: { socket: ${stateDir}/run/agent.sock, group: segmesh }
dataplane: { bpfPinDir: ${pinDir} }
${
  opts.edge
    ? `bgp:
  asn: 65101
  routerId: 198.18.0.${i}
  peers:
    - { address: "${opts.edge.address}", asn: ${opts.edge.asn}, locators: ["${opts.edge.locator}"] }
`
    : ''
}`,
      );
      this.hosts.push({
        name: `host${i}`,
        ns,
        index: i,
        underlay,
        stateDir,
        // run/: the agent's runtime directory, created by the agent (it refuses one it did not create).
        socket: `${stateDir}/run/agent.sock`,
        config,
        pinDir,
        agent: undefined,
      });
    }
    for (const h of this.hosts) await this.startAgent(h);
    await waitFor(
      async () => {
        for (const h of this.hosts)
          if ((await this.api(h).call('listHosts', {})).hosts.length !== count) return false;
        return true;
      },
      { timeoutMs: paced(30_000), what: `all ${count} agents to see each other` },
    );
  }

  async startAgent(h: AgentHost): Promise<void> {
    h.agent = await this.lab.daemon({
      name: `agent-${h.name}-${Date.now()}`,
      command: process.execPath,
      args: [...CLI, 'agent', '--config', h.config],
      netns: h.ns,
      cwd: process.cwd(),
      ready: async () => (await this.api(h).call('getStatus', {}, 2_000)).ready,
      // A fresh node importing the agent, then its first reconcile: CPU-bound (pace.ts); 2-3 s here,
      // 30-240 s in the TCG VM depending on the host's load (183 s at load 17, 2026-12-04).
      readyTimeoutMs: pace() > 1 ? paced(90_000) : 30_000,
    });
  }

  /** The data-plane backend `h`'s agent chose (`segmesh status`). */
  async backend(h: AgentHost): Promise<'ebpf' | 'kernel'> {
    // Asked once per host: it does not change, and a drained or stopped agent cannot answer.
    const known = this.#backends.get(h.name);
    if (known) return known;
    const b = (await this.api(h).call('getStatus', {})).dataplaneBackend;
    if (b !== 'ebpf' && b !== 'kernel') throw new Error(`agent ${h.name} reports data-plane backend '${b}'`);
    this.#backends.set(h.name, b);
    return b;
  }
  readonly #backends = new Map<string, 'ebpf' | 'kernel'>();

  /**
   * Drops of one kind on host `h`, read from the kernel: the eBPF programs' verdict counters (the
   * pinned per-CPU map, summed) or, on the kernel backend, the IPv6 MIB and the agent's nft counters
   * of `link`. eBPF counts per host, not per link.
   */
  async drops(h: AgentHost, kind: DropKind, link: string): Promise<number> {
    if ((await this.backend(h)) === 'ebpf') {
      // Per link (sm_link_drops) when one is named, else the host's verdict counters.
      let c = bpfVerdicts(h);
      if (link) {
        const [l] = await h.ns.ipJson<{ ifindex: number }[]>('link', 'show', link);
        c = bpfLinkDrops(h, l!.ifindex);
      }
      const n = (...names: ReasonName[]) => names.reduce((sum, x) => sum + Number(c.get(x) ?? 0n), 0);
      // A destination outside the tenant: no entry, or the tenant's explicit unreachable, or no route.
      if (kind === 'no-route') return n('drop_no_policy', 'drop_policy', 'drop_no_route');
      if (kind === 'workload-srv6') return n('drop_sid_block', 'drop_workload_srh');
      return n('drop_host_address');
    }
    if (kind === 'no-route') return snmp6(h.ns, 'Ip6InNoRoutes');
    const counter = `${link}_${kind === 'workload-srv6' ? 'sid_block' : 'host_address'}`;
    const r = await sh('nft', ['-j', 'list', 'counter', 'netdev', 'segmesh', counter], { netns: h.ns.name });
    return (JSON.parse(r.stdout) as { nftables: Array<{ counter?: { packets: number } }> }).nftables.find(
      (x) => x.counter,
    )!.counter!.packets;
  }

  /**
   * How `h`'s data plane forwards packets to `address` (a /128), read back from the kernel and
   * normalised across backends: `encap SEG,SEG` for each encapsulating entry, `local` for delivery to
   * a link. Kernel backend: its routes (protocol 203) in any table; eBPF backend: its policy map.
   */
  async forwardingOf(h: AgentHost, address: string): Promise<string[]> {
    const want = parseIpv6(address);
    if ((await this.backend(h)) === 'kernel') {
      const r = await h.ns.ip('-6', 'route', 'show', 'table', 'all', 'proto', '203');
      return r.stdout
        .split('\n')
        .filter((l) => l.trim() && !l.startsWith('unreachable') && parseIpv6(l.split(' ')[0]!) === want)
        .map((l) => {
          const segs = /encap seg6 mode \S+ segs \d+ \[ ([^\]]+) \]/.exec(l);
          return segs ? `encap ${segs[1]!.trim().split(' ').join(',')}` : / dev /.test(l) ? 'local' : l;
        });
    }
    const out: string[] = [];
    for (const [k, v] of policyMapEntries(h)) {
      const key = Buffer.from(k, 'hex');
      if (key.readUInt32LE(0) !== 32 + 128 || ipv6FromBytes(key.subarray(8, 24)) !== want) continue;
      const value = Buffer.from(v, 'hex');
      const segs = Array.from({ length: value[1]! }, (_, i) =>
        formatIpv6(ipv6FromBytes(value.subarray(36 + 16 * i, 52 + 16 * i))),
      );
      const mode = Object.entries(PolicyMode).find(([, n]) => n === value[0])?.[0] ?? `mode ${value[0]}`;
      out.push(mode.startsWith('encap') ? `encap ${segs.join(',')}` : mode);
    }
    return out;
  }

  /**
   * `h`'s data plane as `segmesh routes` writes routes (`TABLE DESTINATION ACTION`): its kernel routes
   * of protocol 203 in `tables` (`kernel` counts them) and, on the eBPF backend, its map entries
   * (ebpfRouteKeys).
   */
  async routeKeys(
    h: AgentHost,
    tables: readonly number[],
  ): Promise<{ kernel: number; all: string[]; ebpf: boolean }> {
    const out: string[] = [];
    for (const t of tables) {
      const r = await h.ns.exec('ip', ['-j', '-6', 'route', 'show', 'table', String(t), 'proto', '203'], {
        allowFail: true,
      });
      // A table without routes does not exist (the eBPF backend keeps a tenant's egress in its maps).
      if (r.code !== 0 && !/FIB table does not exist/.test(r.stderr))
        throw new Error(`ip -6 route show table ${t} in ${h.ns.name}: ${r.stderr}`);
      for (const k of r.code === 0 ? (JSON.parse(r.stdout || '[]') as KernelRoute[]) : [])
        out.push(`${t} ${kernelDst(k)} ${kernelAction(k)}`);
    }
    const ebpf = (await this.backend(h)) === 'ebpf';
    return { kernel: out.length, all: ebpf ? [...out, ...(await this.ebpfRouteKeys(h))] : out, ebpf };
  }

  /**
   * `h`'s local SIDs as its data plane holds them: the kernel backend's seg6local routes (main table,
   * protocol 203), or the eBPF backend's sm_sids entries; each with its behaviour and, for End.DT*, the
   * table it decapsulates into.
   */
  async localSids(h: AgentHost): Promise<Array<{ sid: string; behavior: string; table?: string }>> {
    if ((await this.backend(h)) === 'kernel') {
      const routes = await h.ns.ipJson<
        Array<{ dst: string; encap?: string; action?: string; table?: string | number }>
      >('-6', 'route', 'show', 'table', 'main', 'proto', '203');
      return routes
        .filter((r) => r.encap === 'seg6local')
        .map((r) => ({
          sid: r.dst,
          behavior: r.action ?? '',
          ...(r.table !== undefined ? { table: String(r.table) } : {}),
        }));
    }
    return [...bpfMapEntries(h, MAP.sids)].map(([k, v]) => {
      const value = Buffer.from(v, 'hex');
      const table = value.readUInt32LE(4);
      return {
        sid: formatIpv6(ipv6FromBytes(Buffer.from(k, 'hex'))),
        behavior: Object.entries(Behavior).find(([, n]) => n === value[0])?.[0] ?? `behavior ${value[0]}`,
        ...(table ? { table: String(table) } : {}),
      };
    });
  }

  /**
   * What `h`'s eBPF backend holds in its maps, written as `segmesh routes` writes the plan's routes
   * (`TABLE DESTINATION ACTION`, the action without its table's name): each sm_policy entry in the
   * table of its key space (a tenant's egress, delivery or forward table, a function's return table;
   * not a local workload's delivery entry, which its kernel route in the delivery table lists),
   * each sm_sids entry as a seg6local route of the main table. The backend's kernel routes (underlay
   * and delivery) are the kernel's to list.
   */
  async ebpfRouteKeys(h: AgentHost): Promise<string[]> {
    const links = new Map(
      (await h.ns.ipJson<Array<{ ifindex: number; ifname: string }>>('link', 'show')).map((l) => [
        l.ifindex,
        l.ifname,
      ]),
    );
    const out: string[] = [];
    for (const [k, v] of policyMapEntries(h)) {
      const key = Buffer.from(k, 'hex');
      const value = Buffer.from(v, 'hex');
      const length = key.readUInt32LE(0) - 32;
      const space = key.readUInt32BE(4);
      const id = space & (TENANT_RETURN - 1);
      const table =
        space & TENANT_DELIVERY
          ? tenantTables(id).delivery
          : space & TENANT_FORWARD
            ? tenantTables(id).forward
            : space & TENANT_RETURN
              ? nfReturnTable(id)
              : tenantTables(id).egress;
      const segs = Array.from({ length: value[1]! }, (_, i) =>
        formatIpv6(ipv6FromBytes(value.subarray(36 + 16 * i, 52 + 16 * i))),
      );
      const mode = Object.entries(PolicyMode).find(([, n]) => n === value[0])?.[0];
      // A local workload's /128 in the delivery key space mirrors its route in the delivery table (End.DT*
      // delivers from the map, the route is the fallback): one entry of the plan, listed as the route.
      if (space & TENANT_DELIVERY && mode === 'local') continue;
      const action =
        mode === 'encap' || mode === 'encapRed'
          ? `encap seg6 mode ${mode === 'encap' ? 'encap' : 'encap.red'} segs [ ${segs.join(' ')} ]`
          : mode === 'local'
            ? `dev ${links.get(value.readUInt32LE(4)) ?? `ifindex ${value.readUInt32LE(4)}`}`
            : mode === 'drop'
              ? 'unreachable'
              : `mode ${value[0]}`;
      out.push(`${table} ${formatIpv6(ipv6FromBytes(key.subarray(8, 24)))}/${length} ${action}`);
    }
    for (const s of await this.localSids(h))
      out.push(
        `${MAIN_TABLE} ${s.sid}/128 encap seg6local action ${s.behavior}${s.table ? ` table ${s.table}` : ''}`,
      );
    return out;
  }

  applyTenants(via: AgentHost = this.hosts[0]!): void {
    const file = `${this.dir}/tenants.yaml`;
    writeFileSync(file, TENANTS);
    segmesh(['policy', 'apply', file, '--operator-key', this.operatorKey, '--socket', via.socket]);
  }

  /** A workload namespace attached through the API of `host`; returns its address. */
  async workload(
    host: AgentHost,
    suffix: string,
    tenant: string,
    identity?: string,
  ): Promise<{ ns: Netns; address: string }> {
    const ns = await this.lab.netns(suffix);
    const r = await this.api(host).call(
      'addWorkload',
      { identity: identity ?? '', tenant, netns: `/run/netns/${ns.name}`, ifname: 'eth0' },
      paced(30_000), // a link, a reconcile and a claim: CPU-bound (pace.ts)
    );
    return { ns, address: r.address };
  }

  /** Waits until every agent lists `count` workloads. */
  async converged(count: number): Promise<void> {
    await waitFor(
      async () => {
        for (const h of this.hosts) {
          if (h.agent?.alive() && (await this.api(h).call('listWorkloads', {})).workloads.length !== count)
            return false;
        }
        return true;
      },
      { timeoutMs: paced(20_000), what: `every agent to see ${count} workloads` },
    );
  }

  readonly #clients = new Map<string, AgentClient>();
  /** The agent's API, in process (the CLI is exercised separately). */
  api(h: AgentHost): AgentClient {
    let c = this.#clients.get(h.socket);
    if (!c) {
      c = new AgentClient(h.socket);
      this.#clients.set(h.socket, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
  }
}

/** A kernel route as `ip -j` gives it. */
export interface KernelRoute {
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  table?: string;
  encap?: string;
  mode?: string;
  segs?: string[];
  action?: string;
}

/** A kernel route's destination and action as the CLI writes them. */
export function kernelDst(r: KernelRoute): string {
  if (r.dst === 'default') return '::/0';
  return r.dst.includes('/') ? r.dst : `${r.dst}/128`;
}
export function kernelAction(r: KernelRoute): string {
  if (r.type === 'unreachable') return 'unreachable';
  if (r.encap === 'seg6') return `encap seg6 mode ${r.mode} segs [ ${(r.segs ?? []).join(' ')} ]`;
  if (r.encap === 'seg6local')
    return `encap seg6local action ${r.action}${r.table ? ` table ${r.table}` : ''}`;
  if (r.gateway) return `via ${r.gateway}`;
  return `dev ${r.dev}`;
}

/** Pings from a namespace; returns the number of replies. */
export async function ping(from: Netns, to: string, count = 3): Promise<number> {
  const r = await from.exec('ping', ['-6', '-c', String(count), '-i', '0.2', '-W', '1', to], {
    allowFail: true,
  });
  const m = /(\d+) received/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

/** A kernel counter of a namespace, from /proc/net/snmp6. */
export async function snmp6(ns: Netns, counter: string): Promise<number> {
  const r = await sh('cat', ['/proc/net/snmp6'], { netns: ns.name });
  const line = r.stdout.split('\n').find((l) => l.startsWith(`${counter} `));
  return line ? Number(line.trim().split(/\s+/)[1]) : 0;
}

export interface PingResult {
  /** Distinct echo replies. */
  readonly answered: number;
  /** Highest sequence number answered. */
  readonly lastSeq: number;
  /** Echo requests sent (ping's summary). */
  readonly transmitted: number;
  /** Sequence numbers without a reply, but for the last ten sent (in flight at the interrupt). */
  readonly lost: readonly number[];
}

/**
 * A ping at 100 per second as a lab daemon, until stopped: `stop()` interrupts it (SIGINT) and reads
 * the replies' sequence numbers, so the length of the run need not be known in advance.
 */
export async function startPing(
  lab: Lab,
  from: Netns,
  to: string,
): Promise<{ stop(): Promise<PingResult>; daemon: Daemon }> {
  const daemon = await lab.daemon({
    name: `ping-${from.name}-${Date.now()}`,
    command: 'ping',
    args: ['-6', '-i', '0.01', '-W', '1', to],
    netns: from,
  });
  return {
    daemon,
    async stop() {
      daemon.kill('SIGINT');
      await daemon.exited;
      const text = readFileSync(daemon.logFile, 'utf8');
      const seqs = new Set([...text.matchAll(/icmp_seq=(\d+) /g)].map((m) => Number(m[1])));
      const lastSeq = Math.max(0, ...seqs);
      const transmitted = Number(/(\d+) packets transmitted/.exec(text)?.[1] ?? lastSeq);
      const lost: number[] = [];
      // The last 10 sent (100 ms) may still be in flight at the interrupt under load; earlier ones not.
      for (let i = 1; i <= Math.max(transmitted - 10, lastSeq); i++) if (!seqs.has(i)) lost.push(i);
      return { answered: seqs.size, lastSeq, transmitted, lost };
    },
  };
}

/** The eBPF programs' verdict counters of `h` (sm_counters in its pin folder), per-CPU summed. */
export function bpfVerdicts(h: AgentHost): Map<ReasonName, bigint> {
  const m = BpfMap.openPinned(`${h.pinDir}/${MAP.counters}`);
  try {
    const out = new Map<ReasonName, bigint>();
    for (const [name, slot] of Object.entries(Reason) as [ReasonName, number][])
      out.set(name, m.lookupSum(u32Key(slot))?.[0] ?? 0n);
    return out;
  } finally {
    m.close();
  }
}

/** The drops at one link of `h` (sm_link_drops of its eBPF backend, per-CPU summed), by reason. */
export function bpfLinkDrops(h: AgentHost, ifindex: number): Map<ReasonName, bigint> {
  const m = BpfMap.openPinned(`${h.pinDir}/${MAP.linkDrops}`);
  try {
    const out = new Map<ReasonName, bigint>();
    for (const [name, slot] of Object.entries(Reason) as [ReasonName, number][])
      out.set(name, m.lookupSum(linkDropKey(ifindex, slot))?.[0] ?? 0n);
    return out;
  } finally {
    m.close();
  }
}

/** Every entry of a pinned map of `h`'s eBPF backend, as hex key -> hex value (per-CPU maps excluded). */
/**
 * The policy entries of `h` as one table, keyed as sm_policy is (hex): sm_policy's and sm_exact's (the
 * /128s, their key given sm_policy's prefix length). An older object's pins (no sm_exact): sm_policy's.
 */
export function policyMapEntries(h: AgentHost): Map<string, string> {
  const out = bpfMapEntries(h, MAP.policy);
  if (!existsSync(`${h.pinDir}/${MAP.exact}`)) return out;
  for (const [k, v] of bpfMapEntries(h, MAP.exact))
    out.set(Buffer.from(policyOfExact(Buffer.from(k, 'hex'))).toString('hex'), v);
  return out;
}

export function bpfMapEntries(h: AgentHost, map: string): Map<string, string> {
  const m = BpfMap.openPinned(`${h.pinDir}/${map}`);
  try {
    const out = new Map<string, string>();
    for (const k of m.keys()) {
      const v = m.lookup(k);
      if (v) out.set(Buffer.from(k).toString('hex'), Buffer.from(v).toString('hex'));
    }
    return out;
  } finally {
    m.close();
  }
}

/**
 * Sends one raw IPv6 packet (built by scapy from `expr`, a Python expression) from inside `ns`, as a
 * workload that builds its own headers would: a raw socket, routed by the namespace's routes.
 */
export async function sendRawIpv6(ns: Netns, expr: string, count = 1): Promise<void> {
  const script = [
    'import socket, sys',
    'from scapy.all import IPv6, IPv6ExtHdrSegmentRouting, ICMPv6EchoRequest, UDP, raw',
    `p = ${expr}`,
    's = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)',
    `for _ in range(${count}): s.sendto(raw(p), (p[IPv6].dst, 0))`,
  ].join('\n');
  await ns.exec('/usr/bin/python3', ['-c', script]);
}
