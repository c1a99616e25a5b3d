/**
 * The FRR 8.4 edge router in a VM with Debian's kernel, for suites that run here on a kernel without
 * seg6 routes (the agents on the eBPF backend, the edge in the VM): the lab's VM edge
 * (src/lab/vm-edge.ts: the service VM of src/vm/service.ts, FRR with a real VRF from
 * src/lab/frr-vrf.ts, zebra installing its own End.DT6) attached to the harness's namespaces.
 *
 * Network: qemu opens its taps in this namespace (the service VM creates them here); once the guest is
 * up, the underlay tap moves into the underlay switch's namespace, enslaved to its `br0`, and the
 * external tap into the external client's namespace, where it is the client's NIC. A tap keeps working
 * across the move (qemu holds its file descriptor, not its name), and nothing is bridged in the root
 * namespace (where a running dockerd's FORWARD policy and br_netfilter would see the frames).
 *
 * Names: the taps and the VM carry the run prefix; qemu's PID is recorded for the sweeper at once, and
 * the lab's teardown stops it by PID (even when a test failed) and deletes the taps in their namespaces.
 *
 * ```ts
 * const frr = await startFrrVm(lab, { name: 'edge', sw, ext, asn: 65000, routerId: '198.18.1.1',
 *   underlay: '2001:db8:100::fe/64', external: { edge: '2001:db8:e1::1/64', client: '2001:db8:e1::2/64' },
 *   neighbors: [...], locator: 'fc00:0:fe00::/64', routes: [['fc00:0:1::/48', '2001:db8:100::1']],
 *   tenant: { id: 100, rd: '65000:100', rt: '65000:100', exportPrefixes: ['2001:db8:e1::/64'] } });
 * await frr.waitRoute('2001:db8:b100::1/128', { sid: 'fc00:0:1:2064::' });
 * ```
 */
import { mkdirSync } from 'node:fs';
import type { FrrNeighbor, FrrTenant } from '../../src/lab/frr.ts';
import { frrVrfConfig } from '../../src/lab/frr-vrf.ts';
import { bootFrrEdgeVm, vmEdgeFiles, vmEdgeScript } from '../../src/lab/vm-edge.ts';
import {
  type ServiceVmState,
  serviceVmExec,
  stopServiceVm,
  type VmExecResult,
} from '../../src/vm/service.ts';
import { sh } from './exec.ts';
import { FrrEdge } from './frr.ts';
import type { Lab } from './lab.ts';
import { monitorEvents, monitorLines, proveMonitorListens, type RouteMonitor } from './monitor.ts';
import type { Netns, UnderlaySwitch } from './netns.ts';
import { objectName, recordProcess, runLogDir } from './run.ts';
import { testVmImage } from './vm.ts';

export interface FrrVmOptions {
  /** Suffix of the VM's and its taps' names after the run prefix (short: taps add a digit). */
  readonly name: string;
  /** The underlay switch: the VM's eth0 becomes a port of its br0. */
  readonly sw: UnderlaySwitch;
  /** The external client's namespace: the VM's ext0 becomes its NIC (named `${name}1`). */
  readonly ext: Netns;
  readonly asn: number;
  readonly routerId: string;
  /** The edge's underlay address with its prefix length. */
  readonly underlay: string;
  /** The external network: the edge's address (in the tenant's VRF) and the client's, with lengths. */
  readonly external: { readonly edge: string; readonly client: string };
  readonly neighbors: readonly FrrNeighbor[];
  /** The SRv6 locator (a /64 on FRR 8.4). */
  readonly locator: string;
  /** Static underlay routes in the guest: [destination, via]. */
  readonly routes: readonly (readonly [string, string])[];
  /** The tenant served; its VRF is `vrf<id>` with table 1000 + id (as the lab's VM edge). */
  readonly tenant: FrrTenant & { readonly id: number };
  /** Until FRR's SID is installed (default 180 s, as the lab's VM edge: boot and FRR start took 15-68 s here
   * at load 6-8 beside two benchmarks, 52-64 s at load 15). */
  readonly timeoutMs?: number;
}

/** A route monitor's log in the guest, read only through the control channel. */
const MONITOR_DIR = '/run/segmesh-monitor';

export class FrrVm extends FrrEdge {
  readonly name: string;
  readonly vm: ServiceVmState;
  /** FRR's VPN SID of the tenant's VRF (zebra installed it as End.DT6). */
  readonly sid: string;
  readonly vrf: { readonly name: string; readonly table: number };
  /** From start to the VM's ready line, and to FRR's SID installed. */
  readonly bootMs: number;
  readonly sidMs: number;
  // Every look goes through the guest's shell under emulation (tenths of a second each, more on a
  // loaded machine): a wait for a route or session gets more time than in a namespace.
  protected override readonly waitMs = 60_000;
  protected readonly tenantTable: readonly string[];

  constructor(
    name: string,
    up: { vm: ServiceVmState; sid: string; bootMs: number; sidMs: number },
    vrf: { name: string; table: number },
  ) {
    super();
    this.name = name;
    this.vm = up.vm;
    this.sid = up.sid;
    this.bootMs = up.bootMs;
    this.sidMs = up.sidMs;
    this.vrf = vrf;
    this.tenantTable = ['table', String(vrf.table)];
  }

  /** Runs argv in the guest; never throws on a non-zero exit. */
  exec(argv: readonly string[], timeoutMs = 60_000): Promise<VmExecResult> {
    return serviceVmExec(this.vm, argv, timeoutMs);
  }

  async #checked(argv: readonly string[]): Promise<VmExecResult> {
    const r = await this.exec(argv);
    if (r.exitCode !== 0)
      throw new Error(`FRR VM ${this.name}: ${argv.join(' ')} failed (${r.exitCode}): ${r.stderr.trim()}`);
    return r;
  }

  override async vtysh(...commands: string[]): Promise<string> {
    return (await this.#checked(['vtysh', ...commands.flatMap((c) => ['-c', c])])).stdout;
  }

  override ip(...args: string[]): Promise<VmExecResult> {
    return this.#checked(['ip', ...args]);
  }

  override tenantUnicast(tail: string): string {
    return `show bgp vrf ${this.vrf.name} ipv6 unicast ${tail}`;
  }

  /**
   * `ip -6 monitor route` in the guest, in the background (its own session, so the control channel's
   * per-command timeout never ends it), writing to a file there; proven to listen as ./monitor.ts does.
   * `events()` gives what the last look read: `stop()` ends the monitor, then reads its log whole.
   */
  override async routeMonitor(name: string): Promise<RouteMonitor> {
    const log = `${MONITOR_DIR}/${name}.log`;
    const start = await this.#checked([
      'sh',
      '-c',
      `mkdir -p ${MONITOR_DIR} && setsid ip -6 monitor route >${log} 2>&1 </dev/null & echo $!`,
    ]);
    const pid = start.stdout.trim();
    if (!/^\d+$/.test(pid)) throw new Error(`FRR VM ${this.name}: no PID for ${name}: "${start.output}"`);
    let lines: string[] = [];
    const read = async () => {
      lines = monitorLines((await this.#checked(['cat', log])).stdout);
      return lines;
    };
    // Each look is a round trip into the emulated guest: 30 s per step instead of 10.
    const seen = await proveMonitorListens({ lines: read, ip: (...a) => this.ip(...a) }, name, 30_000);
    return {
      events: () => monitorEvents(lines, seen),
      stop: async () => {
        await this.#checked(['kill', pid]);
        await read();
      },
    };
  }
}

/**
 * Boots the edge VM, attaches it to `sw` and `ext`, and waits until FRR's VPN SID is installed; fails
 * within `timeoutMs` naming the step (the boot, FRR's start, the SID) with the guest's output. The lab
 * stops the VM and removes its taps at teardown.
 */
export async function startFrrVm(lab: Lab, o: FrrVmOptions): Promise<FrrVm> {
  const image = await testVmImage();
  const vmName = objectName(o.name);
  const taps = [0, 1].map((i) => ({
    name: objectName(`${o.name}${i}`),
    guestName: i === 0 ? 'eth0' : 'ext0',
    // ext0's addresses come once it is in the VRF (enslaving flushes IPv6 addresses): the script's.
    guestAddresses: i === 0 ? [o.underlay] : [],
  }));
  const [underTap, extTap] = [taps[0]!.name, taps[1]!.name];
  const vrf = { name: `vrf${o.tenant.id}`, table: 1000 + o.tenant.id };
  const frrConf = frrVrfConfig({
    hostname: o.name,
    asn: o.asn,
    routerId: o.routerId,
    neighbors: o.neighbors,
    locator: o.locator,
    vrf,
    tenant: o.tenant,
  });
  const script = vmEdgeScript({
    vrf,
    // The script gives each NIC an IPv4 address too (the lab's networks are dual-stack); here from
    // the test range, unused.
    underlay: { dev: 'eth0', ipv4: `${o.routerId}/32` },
    external: [{ dev: 'ext0', ipv6: o.external.edge, ipv4: '198.19.255.1/24' }],
    routes: o.routes,
    files: vmEdgeFiles(frrConf),
  });
  const logDir = `${runLogDir()}/${vmName}`;
  mkdirSync(logDir, { recursive: true });
  let vm: ServiceVmState | undefined;
  // Registered first: whatever got started is stopped, however the start ends.
  lab.onTeardown(async () => {
    if (vm) await stopServiceVm(vm);
    await sh('ip', ['-n', o.sw.ns.name, 'link', 'del', underTap], { allowFail: true });
    await sh('ip', ['-n', o.ext.name, 'link', 'del', extTap], { allowFail: true });
  });
  const up = await bootFrrEdgeVm({
    name: vmName,
    image,
    taps,
    script,
    logDir,
    asn: o.asn,
    locator: o.locator,
    vrf: vrf.name,
    deadline: Date.now() + (o.timeoutMs ?? 180_000),
    progress: (l) => process.stderr.write(`FRR VM ${vmName}: ${l}\n`),
    onProcess: recordProcess,
    onStarted: async (started) => {
      vm = started;
      // qemu has its taps open: they move to where their peers are.
      await sh('ip', ['link', 'set', underTap, 'netns', o.sw.ns.name]);
      await o.sw.ns.ip('link', 'set', underTap, 'master', 'br0', 'up');
      await sh('ip', ['link', 'set', extTap, 'netns', o.ext.name]);
      await o.ext.ip('addr', 'add', o.external.client, 'dev', extTap, 'nodad');
      await o.ext.ip('link', 'set', extTap, 'up');
      await o.ext.ip('-6', 'route', 'add', 'default', 'via', o.external.edge.split('/')[0]!);
    },
  });
  return new FrrVm(o.name, up, vrf);
}
