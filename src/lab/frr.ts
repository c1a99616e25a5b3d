/**
 * FRR 8.4 as the edge router: its configuration and the steps for the 8.4 quirks measured in
 * ../shared/research/bgp-srv6-interop.md. One definition for both places FRR runs: the lab's edge
 * container (integrated `frr.conf`, started by the package's `frrinit.sh`, commands through
 * `docker exec`) and the namespace fixture of the system tests (test/harness/frr.ts: separate
 * zebra/bgpd files, commands through `ip netns exec`).
 *
 * One tenant VPN in FRR's default instance (no VRF devices on this kernel), a /64 locator (F1),
 * `redistribute connected` for exported prefixes (F4), `no bgp ebgp-requires-policy` (F9),
 * `nexthop vpn export` where the default instance would export with `::` (the routes are then
 * "inaccessible" and never sent); after start, `no export vpn` / `export vpn` once the locator chunk
 * arrived (F3), and FRR's own End.DT6 SID installed by hand (F5).
 */

export interface FrrNeighbor {
  readonly address: string;
  readonly asn: number;
  readonly password?: string;
  /** Also exchange IPv6 unicast (FRR then advertises its locator and exported prefixes in it). */
  readonly ipv6Unicast?: boolean;
  /** `advertisement-interval` in seconds (FRR's eBGP default is 0 in 8.4 "traditional"; set it to be sure). */
  readonly advertisementInterval?: number;
}

export interface FrrTenant {
  /** Route distinguisher of FRR's exported routes, e.g. `65000:100`. */
  readonly rd: string;
  /** Route target imported and exported. */
  readonly rt: string;
  /** Connected prefixes exported into the VPN (F4: through `redistribute connected`). */
  readonly exportPrefixes?: readonly string[];
  /** Kernel routes inside this prefix (any length) are exported too (`redistribute kernel`), for bulk tests. */
  readonly exportKernel?: string;
}

export interface FrrBgpOptions {
  readonly asn: number;
  readonly routerId: string;
  readonly neighbors: readonly FrrNeighbor[];
  readonly tenant: FrrTenant;
  /** FRR's own underlay address for `nexthop vpn export` (needed when the session is not on the SID's link). */
  readonly nexthop?: string;
  /** Announce this locator as IPv6 unicast (`network`; it must be in the RIB, e.g. a blackhole). */
  readonly announceLocator?: string;
  /** Extra lines inside `router bgp`. */
  readonly bgpExtra?: readonly string[];
}

export interface FrrConfigOptions extends FrrBgpOptions {
  readonly hostname: string;
  /** Must be a /64 on FRR 8.4 (F1). */
  readonly locator: string;
}

export class FrrConfigError extends Error {
  override readonly name = 'FrrConfigError';
}

/** F1: FRR 8.4 advertises a fixed 40/24/16 SID structure, so its locator must be a /64. */
export function checkFrrLocator(locator: string, who: string): void {
  if (!/\/64$/.test(locator))
    throw new FrrConfigError(
      `${who}: locator ${locator} must be a /64 (FRR 8.4 advertises a fixed 40/24/16 SID structure, quirk F1)`,
    );
}

/** The `segment-routing` block (zebra's part): the locator `main`. */
export function frrSrv6Lines(locator: string): string[] {
  return [
    'segment-routing',
    ' srv6',
    '  locators',
    '   locator main',
    `    prefix ${locator}`,
    '   exit',
    '  exit',
    ' exit',
    'exit',
  ];
}

/** `router bgp` with the tenant VPN in the default instance, and its prefix lists (bgpd's part). */
export function frrBgpLines(o: FrrBgpOptions): string[] {
  const exportPrefixes = o.tenant.exportPrefixes ?? [];
  const lines = [
    `router bgp ${o.asn}`,
    ` bgp router-id ${o.routerId}`,
    ' no bgp ebgp-requires-policy',
    ' no bgp default ipv4-unicast',
    ' no bgp network import-check',
  ];
  for (const n of o.neighbors) {
    lines.push(` neighbor ${n.address} remote-as ${n.asn}`, ` neighbor ${n.address} timers connect 1`);
    if (n.password) lines.push(` neighbor ${n.address} password ${n.password}`);
    if (n.advertisementInterval !== undefined)
      lines.push(` neighbor ${n.address} advertisement-interval ${n.advertisementInterval}`);
  }
  lines.push(' segment-routing srv6', '  locator main', ' exit', ' address-family ipv6 unicast');
  if (exportPrefixes.length > 0) lines.push('  redistribute connected route-map SEGMESH-EXPORT');
  if (o.tenant.exportKernel) lines.push('  redistribute kernel route-map SEGMESH-EXPORT-KERNEL');
  if (o.announceLocator) lines.push(`  network ${o.announceLocator}`);
  lines.push('  sid vpn export auto');
  if (o.nexthop) lines.push(`  nexthop vpn export ${o.nexthop}`);
  lines.push(
    `  rd vpn export ${o.tenant.rd}`,
    `  rt vpn both ${o.tenant.rt}`,
    '  import vpn',
    '  export vpn',
  );
  for (const n of o.neighbors) if (n.ipv6Unicast) lines.push(`  neighbor ${n.address} activate`);
  lines.push(' exit-address-family', ' address-family ipv6 vpn');
  for (const n of o.neighbors) lines.push(`  neighbor ${n.address} activate`);
  lines.push(' exit-address-family');
  for (const l of o.bgpExtra ?? []) lines.push(` ${l}`);
  lines.push('exit');
  exportPrefixes.forEach((p, i) => {
    lines.push(`ipv6 prefix-list SEGMESH-EXPORT seq ${5 * (i + 1)} permit ${p}`);
  });
  lines.push('route-map SEGMESH-EXPORT permit 10', ' match ipv6 address prefix-list SEGMESH-EXPORT', 'exit');
  if (o.tenant.exportKernel) {
    lines.push(
      `ipv6 prefix-list SEGMESH-EXPORT-KERNEL seq 5 permit ${o.tenant.exportKernel} le 128`,
      'route-map SEGMESH-EXPORT-KERNEL permit 10',
      ' match ipv6 address prefix-list SEGMESH-EXPORT-KERNEL',
      'exit',
    );
  }
  return lines;
}

/** `/etc/frr/frr.conf` for `frrinit.sh` (integrated configuration): the edge container's. */
export function frrConfig(o: FrrConfigOptions): string {
  checkFrrLocator(o.locator, `edge ${o.hostname}`);
  return [
    'frr defaults traditional',
    `hostname ${o.hostname}`,
    'log stdout informational',
    'service integrated-vtysh-config',
    '!',
    ...frrSrv6Lines(o.locator),
    '!',
    ...frrBgpLines(o),
    '',
  ].join('\n');
}

/**
 * zebra updates an IPv6 route by delete then add unless told the kernel replaces it in one step
 * (every kernel since 4.x does): a best-path change then left the prefix without a route for as long as
 * zebra took between the two (185 ms measured under TCG), and packets to a moving workload were lost.
 */
export const ZEBRA_RR_SEMANTICS = '--v6-rr-semantics';

/** `/etc/frr/daemons`: zebra (always) and bgpd. */
export function frrDaemons(): string {
  return [
    'bgpd=yes',
    'ospfd=no',
    'ospf6d=no',
    'ripd=no',
    'ripngd=no',
    'isisd=no',
    'pimd=no',
    'ldpd=no',
    'nhrpd=no',
    'eigrpd=no',
    'babeld=no',
    'sharpd=no',
    'pbrd=no',
    'bfdd=no',
    'fabricd=no',
    'vrrpd=no',
    'pathd=no',
    'vtysh_enable=yes',
    `zebra_options="  -A 127.0.0.1 -s 90000000 ${ZEBRA_RR_SEMANTICS}"`,
    'bgpd_options="   -A 127.0.0.1"',
    '',
  ].join('\n');
}

/**
 * Runs a command where FRR runs (in the edge container, or in the fixture's namespace with its vty
 * socket); resolves with the exit code and combined output.
 */
export type ContainerExec = (cmd: readonly string[]) => Promise<{ exitCode: number; output: string }>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function vtysh(exec: ContainerExec, ...commands: string[]): Promise<string> {
  const args = ['vtysh'];
  for (const c of commands) args.push('-c', c);
  const r = await exec(args);
  if (r.exitCode !== 0) throw new FrrConfigError(`vtysh ${commands.join(' / ')}: ${r.output.trim()}`);
  return r.output;
}

/**
 * F3 and F5: waits for the locator chunk in bgpd, replays `export vpn` until the VPN SID is allocated,
 * then installs that SID as `End.DT6` by hand on `sidDevice`, looking up `table` (254: the
 * decapsulated packet goes on to the external networks behind the edge). Returns the SID.
 */
export async function frrAllocateSid(
  exec: ContainerExec,
  o: {
    asn: number;
    locator: string;
    sidDevice: string;
    table?: number | 'local' | 'main';
    timeoutMs?: number;
  },
): Promise<string> {
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  const prefix = o.locator.toLowerCase();
  let last = '';
  while (!last.includes(prefix)) {
    if (Date.now() > deadline)
      throw new FrrConfigError(
        `locator chunk ${prefix} never reached bgpd (show bgp segment-routing srv6: ${last.trim()})`,
      );
    await sleep(200);
    last = await vtysh(exec, 'show bgp segment-routing srv6').catch(() => '');
  }
  let sid: string | undefined;
  while (!sid) {
    if (Date.now() > deadline)
      throw new FrrConfigError(`bgpd allocated no VPN SID (quirk F3): ${last.trim()}`);
    await vtysh(
      exec,
      'configure terminal',
      `router bgp ${o.asn}`,
      'address-family ipv6 unicast',
      'no export vpn',
      'export vpn',
    );
    for (let i = 0; i < 10 && !sid; i++) {
      await sleep(200);
      last = await vtysh(exec, 'show bgp segment-routing srv6');
      sid = /tovpn_sid:\s*([0-9a-f:]+)/i.exec(last)?.[1];
    }
  }
  const route = ['ip', '-6', 'route', 'replace', `${sid}/128`, 'encap', 'seg6local', 'action', 'End.DT6'];
  route.push('table', String(o.table ?? 'main'), 'dev', o.sidDevice);
  const r = await exec(route);
  if (r.exitCode !== 0)
    throw new FrrConfigError(`installing FRR's End.DT6 SID ${sid} (F5): ${r.output.trim()}`);
  return sid;
}
