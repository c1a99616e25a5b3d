/**
 * The sysctls the agent depends on, written through /proc/sys of the calling thread's network
 * namespace, with the original values recorded (in memory and in a state file) so that
 * `segmesh dataplane flush` can restore them, even from another process.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** e.g. `net.ipv6.conf.all.forwarding` -> /proc/sys/net/ipv6/conf/all/forwarding (interface names keep their dots). */
export function sysctlPath(key: string): string {
  const m =
    /^net\.ipv6\.conf\.(.+)\.([a-z0-9_]+)$/.exec(key) ?? /^net\.ipv4\.conf\.(.+)\.([a-z0-9_]+)$/.exec(key);
  if (m) return `/proc/sys/${key.startsWith('net.ipv6') ? 'net/ipv6' : 'net/ipv4'}/conf/${m[1]}/${m[2]}`;
  return `/proc/sys/${key.replaceAll('.', '/')}`;
}

export function readSysctl(key: string): string {
  return readFileSync(sysctlPath(key), 'utf8').trim();
}

/** The sysctls the agent sets, by name (documented in docs/dataplane.md). */
export const AGENT_SYSCTLS = {
  forwarding: 'net.ipv6.conf.all.forwarding',
  seg6RequireHmac: 'net.ipv6.conf.all.seg6_require_hmac',
  multipathHashPolicy: 'net.ipv6.fib_multipath_hash_policy',
  seg6Enabled: (dev: string) => `net.ipv6.conf.${dev}.seg6_enabled`,
  acceptRa: (dev: string) => `net.ipv6.conf.${dev}.accept_ra`,
} as const;

export class SysctlRecorder {
  private readonly originals = new Map<string, string>();
  private readonly stateFile: string | undefined;

  /** `stateFile`: where originals survive a restart (e.g. /run/segmesh/sysctl.json); none = memory only. */
  constructor(stateFile?: string) {
    this.stateFile = stateFile;
    if (stateFile) {
      try {
        const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, string>;
        for (const [k, v] of Object.entries(saved)) this.originals.set(k, v);
      } catch {
        // no state yet
      }
    }
  }

  /** Sets `key`, remembering its first-seen value. Returns whether it changed. */
  set(key: string, value: string): boolean {
    const current = readSysctl(key);
    if (!this.originals.has(key)) {
      this.originals.set(key, current);
      this.save();
    }
    if (current === value) return false;
    writeFileSync(sysctlPath(key), value);
    return true;
  }

  recorded(): ReadonlyMap<string, string> {
    return this.originals;
  }

  /** Restores every recorded value that still exists (an interface may be gone); returns the keys restored. */
  restore(): string[] {
    const done: string[] = [];
    for (const [k, v] of this.originals) {
      try {
        if (readSysctl(k) !== v) writeFileSync(sysctlPath(k), v);
        done.push(k);
      } catch {
        // the interface went away with its sysctls
      }
    }
    this.originals.clear();
    this.save();
    return done;
  }

  private save(): void {
    if (!this.stateFile) return;
    mkdirSync(dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.originals)));
    renameSync(tmp, this.stateFile);
  }
}

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
