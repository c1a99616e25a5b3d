/**
 * The FRR 8.4 edge router of a lab, in a container: the configuration (integrated `frr.conf`, started
 * by the package's `frrinit.sh` with bgpd enabled) and the steps for the 8.4 quirks measured in
 * ../shared/research/bgp-srv6-interop.md, run through `docker exec`.
 *
 * The configuration matches the namespace fixture of the system tests (test/harness/frr.ts): one
 * tenant VPN in FRR's default instance (no VRF devices on this kernel), a /64 locator (F1),
 * `redistribute connected` for exported prefixes (F4), `no bgp ebgp-requires-policy` (F9),
 * `nexthop vpn export` (without it the exported routes are "inaccessible" and not sent); after start,
 * `no export vpn` / `export vpn` once the locator chunk arrived (F3), and FRR's own End.DT6 SID
 * installed by hand (F5). The fixture cannot be imported from here (it lives in test/ and is bound to
 * the namespace harness), so its configuration is written again for the container.
 */

export interface FrrNeighbor {
  readonly address: string;
  readonly asn: number;
}

export interface FrrTenant {
  /** Route distinguisher of FRR's exported routes, e.g. `65000:100`. */
  readonly rd: string;
  /** Route target imported and exported. */
  readonly rt: string;
  /** Connected prefixes exported into the VPN (F4: through `redistribute connected`). */
  readonly exportPrefixes: readonly string[];
}

export interface FrrConfigOptions {
  readonly hostname: string;
  readonly asn: number;
  readonly routerId: string;
  readonly neighbors: readonly FrrNeighbor[];
  /** Must be a /64 on FRR 8.4 (F1). */
  readonly locator: string;
  readonly tenant: FrrTenant;
  /** FRR's own underlay address: `nexthop vpn export` (the default instance exports with `::` otherwise). */
  readonly nexthop: string;
}

export class FrrConfigError extends Error {
  override readonly name = 'FrrConfigError';
}

/** `/etc/frr/frr.conf` for `frrinit.sh` (integrated configuration). */
export function frrConfig(o: FrrConfigOptions): string {
  if (!/\/64$/.test(o.locator)) {
    throw new FrrConfigError(
      `edge ${o.hostname}: locator ${o.locator} must be a /64 (FRR 8.4 advertises a fixed 40/24/16 SID structure, quirk F1)`,
    );
  }
  const lines = [
    'frr defaults traditional',
    `hostname ${o.hostname}`,
    'log stdout informational',
    'service integrated-vtysh-config',
    '!',
    'segment-routing',
    ' srv6',
    '  locators',
    '   locator main',
    `    prefix ${o.locator}`,
    '   exit',
    '  exit',
    ' exit',
    'exit',
    '!',
    `router bgp ${o.asn}`,
    ` bgp router-id ${o.routerId}`,
    ' no bgp ebgp-requires-policy',
    ' no bgp default ipv4-unicast',
    ' no bgp network import-check',
  ];
  for (const n of o.neighbors) {
    lines.push(` neighbor ${n.address} remote-as ${n.asn}`);
    lines.push(` neighbor ${n.address} timers connect 1`);
    lines.push(` neighbor ${n.address} advertisement-interval 0`);
  }
  lines.push(' segment-routing srv6', '  locator main', ' exit');
  lines.push(' address-family ipv6 unicast');
  if (o.tenant.exportPrefixes.length > 0) lines.push('  redistribute connected route-map SEGMESH-EXPORT');
  lines.push(
    '  sid vpn export auto',
    `  nexthop vpn export ${o.nexthop}`,
    `  rd vpn export ${o.tenant.rd}`,
    `  rt vpn both ${o.tenant.rt}`,
    '  import vpn',
    '  export vpn',
    ' exit-address-family',
    ' address-family ipv6 vpn',
  );
  for (const n of o.neighbors) lines.push(`  neighbor ${n.address} activate`);
  lines.push(' exit-address-family', 'exit', '!');
  o.tenant.exportPrefixes.forEach((p, i) => {
    lines.push(`ipv6 prefix-list SEGMESH-EXPORT seq ${5 * (i + 1)} permit ${p}`);
  });
  lines.push(
    'route-map SEGMESH-EXPORT permit 10',
    ' match ipv6 address prefix-list SEGMESH-EXPORT',
    'exit',
    '',
  );
  return lines.join('\n');
}

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
    'zebra_options="  -A 127.0.0.1 -s 90000000"',
    'bgpd_options="   -A 127.0.0.1"',
    '',
  ].join('\n');
}

/** Runs a command in the edge container; resolves with its exit code and combined output. */
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
