/**
 * FRR 8.4 as the edge router on a kernel with VRF devices (the VM edge, ./vm-edge.ts): the tenant is a
 * real VRF (`router bgp ASN vrf NAME`), the external networks are enslaved to it. There FRR allocates
 * its VPN SID at start (quirk F3 is a default-instance one) and zebra installs it as End.DT6 into the
 * VRF's table itself (F5 does not occur), so none of the no-VRF work-arounds of ./frr.ts run: no
 * `export vpn` replay, no hand-installed SID, no `nexthop vpn export`. What stays: the /64 locator
 * (F1), exporting connected prefixes through `redistribute connected` (F4), `no bgp
 * ebgp-requires-policy` (F9). Measured in ../shared/research/vm-kernel.md (Q5).
 */
import { checkFrrLocator, type FrrNeighbor, type FrrTenant, frrSrv6Lines } from './frr.ts';

export interface FrrVrfOptions {
  readonly hostname: string;
  readonly asn: number;
  readonly routerId: string;
  readonly neighbors: readonly FrrNeighbor[];
  /** Must be a /64 on FRR 8.4 (F1). */
  readonly locator: string;
  /** The tenant's VRF device (created before FRR starts) and its table. */
  readonly vrf: { readonly name: string; readonly table: number };
  readonly tenant: FrrTenant;
  /** Where the daemons log (in the guest). */
  readonly logFile?: string;
}

/** `/etc/frr/frr.conf` (integrated configuration, started by `frrinit.sh`). */
export function frrVrfConfig(o: FrrVrfOptions): string {
  checkFrrLocator(o.locator, `edge ${o.hostname}`);
  const exportPrefixes = o.tenant.exportPrefixes ?? [];
  const lines = [
    'frr defaults traditional',
    `hostname ${o.hostname}`,
    `log file ${o.logFile ?? '/var/log/frr/frr.log'} informational`,
    'service integrated-vtysh-config',
    '!',
    `vrf ${o.vrf.name}`,
    'exit-vrf',
    '!',
    ...frrSrv6Lines(o.locator),
    '!',
    // The default instance: the sessions with the hosts, VPNv6 only, and the locator.
    `router bgp ${o.asn}`,
    ` bgp router-id ${o.routerId}`,
    ' no bgp ebgp-requires-policy',
    ' no bgp default ipv4-unicast',
  ];
  for (const n of o.neighbors) {
    lines.push(` neighbor ${n.address} remote-as ${n.asn}`, ` neighbor ${n.address} timers connect 1`);
    if (n.password) lines.push(` neighbor ${n.address} password ${n.password}`);
    if (n.advertisementInterval !== undefined)
      lines.push(` neighbor ${n.address} advertisement-interval ${n.advertisementInterval}`);
  }
  lines.push(' segment-routing srv6', '  locator main', ' exit', ' address-family ipv6 vpn');
  for (const n of o.neighbors) lines.push(`  neighbor ${n.address} activate`);
  lines.push(' exit-address-family', 'exit', '!');
  // The tenant's instance: its connected external networks go into the VPN, the VPN's routes into it.
  lines.push(
    `router bgp ${o.asn} vrf ${o.vrf.name}`,
    ` bgp router-id ${o.routerId}`,
    ' no bgp ebgp-requires-policy',
    ' address-family ipv6 unicast',
  );
  if (exportPrefixes.length > 0) lines.push('  redistribute connected route-map SEGMESH-EXPORT');
  lines.push(
    '  sid vpn export auto',
    `  rd vpn export ${o.tenant.rd}`,
    `  rt vpn both ${o.tenant.rt}`,
    '  import vpn',
    '  export vpn',
    ' exit-address-family',
    'exit',
  );
  exportPrefixes.forEach((p, i) => {
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

/** The VPN SID bgpd allocated for `vrf` (from `show bgp segment-routing srv6`), if any yet. */
export function parseVrfSid(show: string, vrf: string): string | undefined {
  // One block per instance: "- name: <vrf>" ... "tovpn_sid: <sid>" (or "none"/"(null)" before allocation).
  const blocks = show.split(/^\s*- name:\s*/m);
  for (const b of blocks) {
    if (b.split(/\s/)[0] !== vrf) continue;
    const sid = /tovpn_sid:\s*([0-9a-f]*:[0-9a-f:]+)/i.exec(b)?.[1];
    if (sid) return sid;
  }
  return undefined;
}
