/** The sysctls the kernel backend sets (pure names and values; sysctl.ts writes and restores them). */

/** The sysctls the agent sets, by name (documented in docs/dataplane.md). */
export const AGENT_SYSCTLS = {
  forwarding: 'net.ipv6.conf.all.forwarding',
  seg6RequireHmac: 'net.ipv6.conf.all.seg6_require_hmac',
  seg6RequireHmacOn: (dev: string) => `net.ipv6.conf.${dev}.seg6_require_hmac`,
  multipathHashPolicy: 'net.ipv6.fib_multipath_hash_policy',
  seg6Enabled: (dev: string) => `net.ipv6.conf.${dev}.seg6_enabled`,
  acceptRa: (dev: string) => `net.ipv6.conf.${dev}.accept_ra`,
} as const;

export interface HostSysctlOptions {
  /** The underlay (fabric-facing) interfaces. */
  readonly underlay: readonly string[];
  /** HMAC on: SRHs arriving on the underlay must carry a valid HMAC. */
  readonly hmac?: boolean;
  /** net.ipv6.fib_multipath_hash_policy: 1 = L4 (default here), spreads flows over ECMP / nexthop groups. */
  readonly multipathHashPolicy?: 0 | 1 | 2 | 3;
}

/**
 * The host sysctls the agent sets, in order: accept_ra=2 on the underlay *before* forwarding=1 (a
 * router ignores RAs unless accept_ra is 2), then forwarding, seg6_enabled on all + underlay (SRH
 * processing at local addresses: inline), seg6_require_hmac on the underlay when HMAC is on, and the
 * multipath hash policy.
 */
export function hostSysctls(o: HostSysctlOptions): [string, string][] {
  return [
    ...o.underlay.map((d): [string, string] => [AGENT_SYSCTLS.acceptRa(d), '2']),
    [AGENT_SYSCTLS.forwarding, '1'],
    ['net.ipv6.conf.all.seg6_enabled', '1'],
    ...o.underlay.map((d): [string, string] => [AGENT_SYSCTLS.seg6Enabled(d), '1']),
    ...(o.hmac ? o.underlay.map((d): [string, string] => [`net.ipv6.conf.${d}.seg6_require_hmac`, '1']) : []),
    [AGENT_SYSCTLS.multipathHashPolicy, String(o.multipathHashPolicy ?? 1)],
  ];
}

/** Per workload link: never process SRHs arriving from a workload. */
export function workloadSysctls(ifname: string): [string, string][] {
  return [[AGENT_SYSCTLS.seg6Enabled(ifname), '0']];
}
