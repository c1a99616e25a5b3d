/**
 * An FRR 8.4 edge router in a lab namespace (its configuration and quirk steps are src/lab/frr.ts's,
 * shared with the lab's edge container): zebra + bgpd (dropping privileges to the `frr` user),
 * an SRv6 /64 locator, one tenant VPN in the default instance, and the work-arounds for the 8.4 quirks
 * measured in ../shared/research/bgp-srv6-interop.md:
 *
 *  - F1: the locator must be a /64 (8.4 advertises a fixed 40/24/16 structure); enforced here.
 *  - F3: the default instance's VPN SID is not allocated when the config is loaded at start:
 *        once the locator chunk is there, `no export vpn` / `export vpn` is replayed.
 *  - F4: `network` statements export as invalid: tenant prefixes are exported with
 *        `redistribute connected route-map` instead.
 *  - F5: zebra cannot install FRR's own End.DT6 localsid for the default VRF: installed here by hand.
 *  - F9: `no bgp ebgp-requires-policy`.
 *
 * One instance serves one tenant (FRR 8.4 without VRF devices uses its default instance as the tenant
 * VRF): two tenants at the edge take two instances.
 *
 * ```ts
 * const frr = await startFrr(lab, { name: 'edge', netns: edge, asn: 65000, routerId: '198.18.0.2',
 *   neighbors: [{ address: '2001:db8:12::1', asn: 65101 }], locator: 'fc00:0:2::/64',
 *   tenant: { rd: '65000:100', rt: '65000:100', exportPrefixes: ['2001:db8:e0::/64'] }, sidDevice: 'eth0' });
 * await frr.waitRoute('2001:db8:c0::1/128', { sid: 'fc00:0:1:e000::' });
 * ```
 */
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import {
  checkFrrLocator,
  type FrrNeighbor,
  type FrrTenant,
  frrAllocateSid,
  frrBgpLines,
  frrSrv6Lines,
  ZEBRA_RR_SEMANTICS,
} from '../../src/lab/frr.ts';
import type { Daemon } from './daemon.ts';
import { type ShResult, sh, waitFor } from './exec.ts';
import type { Lab } from './lab.ts';
import { type RouteMonitor, routeMonitor } from './monitor.ts';
import type { Netns } from './netns.ts';
import { freshLogPath } from './run.ts';

export const FRR_DIR = '/usr/lib/frr';

export type { FrrNeighbor, FrrTenant } from '../../src/lab/frr.ts';

export interface FrrOptions {
  /** Names the daemons' logs and the run directory. */
  readonly name: string;
  readonly netns: Netns;
  readonly asn: number;
  readonly routerId: string;
  readonly neighbors: readonly FrrNeighbor[];
  /** The SRv6 locator: must be a /64 on FRR 8.4 (F1). */
  readonly locator: string;
  readonly tenant: FrrTenant;
  /** Interface the hand-installed End.DT6 localsid points at (F5), e.g. the uplink. */
  readonly sidDevice: string;
  /** Announce the locator as IPv6 unicast to neighbours with `ipv6Unicast` (a static blackhole + network). */
  readonly announceLocator?: boolean;
  /** Extra bgpd configuration lines appended inside `router bgp`. */
  readonly bgpExtra?: readonly string[];
  readonly readyTimeoutMs?: number;
}

export interface WaitRouteOptions {
  /** Expect `encap seg6 ... segs [ SID ]` with this SID. */
  readonly sid?: string;
  /** Wait for the route to be absent instead. */
  readonly absent?: boolean;
  readonly timeoutMs?: number;
}

export interface KernelRoute {
  readonly dst: string;
  readonly encap?: string;
  readonly segs?: readonly string[];
  readonly protocol?: string;
}

/**
 * What tests ask of an FRR edge router, wherever it runs: in a namespace here (`Frr`) or in a VM with
 * Debian's kernel (`FrrVm`, ./frr-vm.ts). Subclasses say how to run vtysh and `ip` there and which
 * table holds the tenant's routes; the waits and counts are the same.
 */
/** One path of a prefix in FRR's tenant IPv6 unicast table (`show bgp ... ipv6 unicast PREFIX json`). */
export interface FrrPath {
  readonly community?: { readonly string?: string };
  readonly locPrf?: number;
  readonly bestpath?: { readonly overall?: boolean };
  readonly peer?: { readonly peerId?: string };
  readonly nexthops?: ReadonlyArray<{ readonly ip?: string }>;
}

/** Whether `path` came from the host with underlay address `underlay`. */
export function pathFromHost(path: FrrPath, underlay: string): boolean {
  return path.peer?.peerId === underlay || (path.nexthops ?? []).some((n) => n.ip === underlay);
}

export abstract class FrrEdge {
  /** Names the router in messages. */
  abstract readonly name: string;
  /** FRR's own VPN SID of the tenant, e.g. `fc00:0:2:0:100::`. */
  abstract readonly sid: string;
  /** Default time limit of waitRoute and waitSession (longer where every look is slow, as in a VM). */
  protected readonly waitMs: number = 20_000;

  /** Runs vtysh commands against this instance; returns stdout (throws on failure). */
  abstract vtysh(...commands: string[]): Promise<string>;
  /** `ip ARGS` where FRR runs. */
  abstract ip(...args: string[]): Promise<{ readonly stdout: string }>;
  /** `ip -6 route show` arguments naming the table zebra installs the tenant's routes in. */
  protected abstract readonly tenantTable: readonly string[];
  /** `show bgp ... ipv6 unicast TAIL`: the tenant's IPv6 unicast table (a VRF's, or the default's). */
  abstract tenantUnicast(tail: string): string;
  /** `ip -6 monitor route` where FRR runs, proven to listen (./monitor.ts). */
  abstract routeMonitor(name: string): Promise<RouteMonitor>;

  async vtyshJson<T = unknown>(command: string): Promise<T> {
    const out = await this.vtysh(command);
    return JSON.parse(out || '{}') as T;
  }

  /** VPNv6 prefixes received per neighbour (`pfxRcd`). */
  async vpnReceived(): Promise<Record<string, number>> {
    const out = await this.vtysh('show bgp ipv6 vpn summary json');
    type Peers = { peers?: Record<string, { pfxRcd?: number }> };
    const j = JSON.parse(out || '{}') as Peers & { ipv6Vpn?: Peers };
    return Object.fromEntries(
      Object.entries(j.peers ?? j.ipv6Vpn?.peers ?? {}).map(([k, v]) => [k, v.pfxRcd ?? 0]),
    );
  }

  /** Number of VPNv6 prefixes received from all neighbours (`pfxRcd` summed). */
  async vpnPathCount(): Promise<number> {
    return Object.values(await this.vpnReceived()).reduce((a, n) => a + n, 0);
  }

  /** The paths of `prefix` in the tenant's IPv6 unicast table (where the VPN routes are imported). */
  async paths(prefix: string): Promise<FrrPath[]> {
    return (await this.vtyshJson<{ paths?: FrrPath[] }>(this.tenantUnicast(`${prefix} json`))).paths ?? [];
  }

  /**
   * Whether bgpd's tenant IPv6 unicast table holds `prefix`: the import of the tenant VPN (by route
   * target), decided when bgpd takes a VPN path in; zebra installs only what is there.
   */
  async unicastHas(prefix: string): Promise<boolean> {
    return (await this.paths(prefix)).length > 0;
  }

  /** The kernel route of `prefix` (exact) in the tenant's table, if any. */
  async kernelRoute(prefix: string): Promise<KernelRoute | undefined> {
    const out = await this.ip('-j', '-6', 'route', 'show', ...this.tenantTable, 'exact', prefix);
    return (JSON.parse(out.stdout || '[]') as KernelRoute[])[0];
  }

  /** Waits until zebra installed (or removed) the seg6 route of `prefix` in the kernel. */
  async waitRoute(prefix: string, opts: WaitRouteOptions = {}): Promise<void> {
    const dst = prefix.endsWith('/128') ? prefix.slice(0, -4) : prefix;
    let last: KernelRoute | undefined;
    await waitFor(
      async () => {
        last = await this.kernelRoute(prefix);
        if (opts.absent) return last === undefined;
        if (last?.encap !== 'seg6') return false;
        return opts.sid === undefined || (last.segs ?? []).includes(opts.sid);
      },
      {
        timeoutMs: opts.timeoutMs ?? this.waitMs,
        what: `FRR ${this.name}: kernel route ${dst} ${opts.absent ? 'absent' : `via seg6 ${opts.sid ?? ''}`} (last: ${JSON.stringify(last)})`,
      },
    );
  }

  /** Waits until the BGP session with `address` is Established (or not). */
  async waitSession(address: string, established = true, timeoutMs = this.waitMs + 10_000): Promise<void> {
    await waitFor(
      async () => {
        const j = await this.vtyshJson<Record<string, { bgpState?: string }>>(
          `show bgp neighbors ${address} json`,
        );
        return (j[address]?.bgpState === 'Established') === established;
      },
      { timeoutMs, what: `FRR ${this.name}: session with ${address} ${established ? 'up' : 'down'}` },
    );
  }
}

export class Frr extends FrrEdge {
  readonly options: FrrOptions;
  readonly dir: string;
  readonly lab: Lab;
  #zebra: Daemon | undefined;
  #bgpd: Daemon | undefined;
  #sid: string | undefined;

  protected readonly tenantTable = ['table', 'main'] as const;

  constructor(lab: Lab, options: FrrOptions) {
    super();
    this.lab = lab;
    this.options = options;
    this.dir = freshLogPath(`frr-${options.name}`);
  }

  get name(): string {
    return this.options.name;
  }

  get netns(): Netns {
    return this.options.netns;
  }

  ip(...args: string[]): Promise<ShResult> {
    return this.options.netns.ip(...args);
  }

  /** The default instance is the tenant's (8.4 without VRF devices). */
  tenantUnicast(tail: string): string {
    return `show bgp ipv6 unicast ${tail}`;
  }

  routeMonitor(name: string): Promise<RouteMonitor> {
    return routeMonitor(this.lab, this.options.netns, name);
  }

  /** FRR's own VPN SID (after F3), e.g. `fc00:0:2:0:100::`. */
  get sid(): string {
    if (!this.#sid) throw new Error(`FRR ${this.options.name}: not started`);
    return this.#sid;
  }

  get bgpd(): Daemon | undefined {
    return this.#bgpd;
  }

  zebraConfig(): string {
    return [`hostname ${this.options.name}`, ...frrSrv6Lines(this.options.locator), ''].join('\n');
  }

  bgpdConfig(): string {
    const o = this.options;
    return [
      `hostname ${o.name}`,
      ...frrBgpLines({
        asn: o.asn,
        routerId: o.routerId,
        neighbors: o.neighbors,
        tenant: o.tenant,
        ...(o.announceLocator ? { announceLocator: o.locator } : {}),
        ...(o.bgpExtra ? { bgpExtra: o.bgpExtra } : {}),
      }),
      '',
    ].join('\n');
  }

  async start(): Promise<void> {
    const o = this.options;
    checkFrrLocator(o.locator, `FRR fixture ${o.name}`);
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const frr = userInfo().uid === 0 ? await frrIds() : undefined;
    writeFileSync(`${this.dir}/zebra.conf`, this.zebraConfig());
    writeFileSync(`${this.dir}/bgpd.conf`, this.bgpdConfig());
    if (frr) {
      chownSync(this.dir, frr.uid, frr.gid);
      chownSync(`${this.dir}/zebra.conf`, frr.uid, frr.gid);
      chownSync(`${this.dir}/bgpd.conf`, frr.uid, frr.gid);
    }
    await o.netns.sysctl('net.ipv6.conf.all.forwarding', '1');
    await o.netns.sysctl('net.ipv6.conf.all.seg6_enabled', '1');
    await o.netns.sysctl('net.ipv6.conf.default.seg6_enabled', '1');
    if (o.announceLocator) {
      // What `network` announces must be in the RIB: the locator, as a blackhole in the kernel.
      await o.netns.ip('-6', 'route', 'replace', 'blackhole', o.locator, 'metric', '4000');
    }
    await this.#startDaemons();
    await this.#allocateSid();
  }

  async #startDaemons(): Promise<void> {
    const common = (d: string) => [
      '-i',
      `${this.dir}/${d}.pid`,
      '-z',
      `${this.dir}/zserv.api`,
      '--vty_socket',
      this.dir,
      '-f',
      `${this.dir}/${d}.conf`,
      '-P',
      '0',
      '--log',
      'stdout',
    ];
    const vtyReady = (d: string) => async () =>
      (await sh('test', ['-S', `${this.dir}/${d}.vty`], { allowFail: true })).code === 0;
    this.#zebra = await this.lab.daemon({
      name: `frr-${this.options.name}-zebra`,
      command: `${FRR_DIR}/zebra`,
      args: [...common('zebra'), ZEBRA_RR_SEMANTICS],
      netns: this.options.netns,
      ready: vtyReady('zebra'),
      readyTimeoutMs: this.options.readyTimeoutMs ?? 45_000,
    });
    this.#bgpd = await this.lab.daemon({
      name: `frr-${this.options.name}-bgpd`,
      command: `${FRR_DIR}/bgpd`,
      args: common('bgpd'),
      netns: this.options.netns,
      ready: vtyReady('bgpd'),
      readyTimeoutMs: this.options.readyTimeoutMs ?? 45_000,
    });
  }

  /** F3 (SID allocation replayed once the locator chunk arrived) and F5 (localsid by hand). */
  async #allocateSid(): Promise<void> {
    const o = this.options;
    // FRR's own steps (src/lab/frr.ts), run in this namespace against this instance's vty socket.
    this.#sid = await frrAllocateSid(
      async (cmd) => {
        const [bin, ...args] = cmd;
        const r = await sh(bin!, bin === 'vtysh' ? ['--vty_socket', this.dir, ...args] : args, {
          netns: o.netns.name,
          allowFail: true,
          timeoutMs: 30_000,
        });
        return { exitCode: r.code ?? -1, output: r.stdout + r.stderr };
      },
      { asn: o.asn, locator: o.locator, sidDevice: o.sidDevice, table: 'main', timeoutMs: 90_000 },
    );
  }

  /** Runs vtysh commands against this instance; returns stdout. */
  override async vtysh(...commands: string[]): Promise<string> {
    const args = ['--vty_socket', this.dir];
    for (const c of commands) args.push('-c', c);
    const out = await sh('vtysh', args, { netns: this.options.netns.name, timeoutMs: 30_000 });
    return out.stdout;
  }

  /** Kernel IPv6 routes of the FRR namespace (main table), as `ip -j` gives them. */
  async kernelRoutes(): Promise<KernelRoute[]> {
    return this.options.netns.ipJson<KernelRoute[]>('-6', 'route', 'show', 'table', 'main');
  }

  /** Number of kernel routes zebra installed with a seg6 encapsulation (inside `within`, if given). */
  async seg6RouteCount(within?: string): Promise<number> {
    const args = ['-n', this.options.netns.name, '-6', 'route', 'show', 'proto', 'bgp'];
    if (within) args.push('root', within);
    const out = await sh('ip', args, { timeoutMs: 60_000 });
    let n = 0;
    for (const line of out.stdout.split('\n')) if (line.includes('encap seg6 ')) n++;
    return n;
  }

  /** Stops bgpd and zebra (routes zebra installed are removed with it). */
  async stop(): Promise<void> {
    await this.#bgpd?.stop();
    await this.#zebra?.stop();
  }

  /** Stops and starts again with the same configuration (and replays F3/F5). */
  async restart(): Promise<void> {
    await this.stop();
    await this.#startDaemons();
    await this.#allocateSid();
  }
}

async function frrIds(): Promise<{ uid: number; gid: number }> {
  const out = await sh('id', ['frr'], { allowFail: true });
  const uid = /uid=(\d+)/.exec(out.stdout)?.[1];
  const gid = /gid=(\d+)/.exec(out.stdout)?.[1];
  if (!uid || !gid) throw new Error('FRR fixture: no `frr` user; install FRR (apt-get install frr)');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Starts an FRR 8.4 edge in `opts.netns`; the lab stops it at teardown. */
export async function startFrr(lab: Lab, opts: FrrOptions): Promise<Frr> {
  const frr = new Frr(lab, opts);
  await frr.start();
  return frr;
}
