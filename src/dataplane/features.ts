/**
 * What this host's kernel (and its nft) can do, detected at run time by trying it, not by version
 * numbers:
 *
 *  - VRF devices (End.DT4/DT46 need them): `ip link add ... type vrf` in a throwaway network namespace
 *    (`unshare -n`, gone with the process); without the right to create one, CONFIG_NET_VRF from
 *    /proc/config.gz;
 *  - seg6: the generic netlink family "SEG6" answers (`ip sr tunsrc show`);
 *  - seg6 HMAC: the family answers and the `seg6_require_hmac` sysctl exists (the kernel registers it only
 *    with CONFIG_IPV6_SEG6_HMAC);
 *  - nft SRH match: `nft -c` accepts a rule matching the segment routing header (`srh tag`, `srh sid[1]`);
 *    `-c` sends the batch to the kernel and aborts it, so the kernel's support is checked too.
 *
 * The parsing of each probe's outcome is pure (unit-tested); `detectKernelFeatures` runs the probes.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { gunzipSync } from 'node:zlib';

export interface KernelFeatures {
  readonly release: string;
  readonly vrf: boolean;
  readonly seg6: boolean;
  readonly hmac: boolean;
  readonly nftSrh: boolean;
  /** How each answer was found, for people reading `segmesh version`. */
  readonly how: Readonly<Record<'vrf' | 'seg6' | 'hmac' | 'nftSrh', string>>;
}

export interface ProbeResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The rule set `nft -c` is asked to accept: two SRH matches in a table of its own. */
export const NFT_SRH_PROBE = [
  'table ip6 segmesh_probe {',
  '  chain c {',
  '    srh tag 1 counter',
  '    srh sid[1] fc00::1 counter',
  '  }',
  '}',
  '',
].join('\n');

/** `ip link add segmesh-vrf type vrf table 1` in a throwaway netns: yes, no, or cannot tell. */
export function parseVrfProbe(r: ProbeResult): boolean | undefined {
  if (r.code === 0) return true;
  // iproute2's answer when the kernel has no such link kind (no CONFIG_NET_VRF, no module).
  if (/Unknown device type|Operation not supported|not supported/i.test(r.stderr)) return false;
  return undefined; // no permission, no unshare, ...: the probe could not run
}

/** `nft -c -f -` of {@link NFT_SRH_PROBE}: yes, no (nft's syntax or the kernel refused), or cannot tell. */
export function parseNftProbe(r: ProbeResult): boolean | undefined {
  if (r.code === 0) return true;
  if (/Error:/.test(r.stderr)) return false;
  return undefined;
}

/** Kernel configuration lines that answer a feature (for hosts where a probe cannot run). */
export function parseKernelConfig(config: string): { vrf: boolean; hmac: boolean; seg6: boolean } {
  const on = (name: string) => new RegExp(`^${name}=[ym]$`, 'm').test(config);
  return {
    vrf: on('CONFIG_NET_VRF'),
    hmac: on('CONFIG_IPV6_SEG6_HMAC'),
    seg6: on('CONFIG_IPV6_SEG6_LWTUNNEL'),
  };
}

/** `gobgpd --version` output ("gobgpd version 3.10.0") -> "3.10.0". */
export function parseGobgpVersion(out: string): string | undefined {
  return /version\s+v?(\d+\.\d+\.\d+\S*)/.exec(out)?.[1];
}

export function runProbe(
  command: string,
  args: readonly string[],
  input?: string,
  timeoutMs = 5_000,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 127) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code === 127 ? err.message : '') });
    });
    // A probe that exits before reading its input (e.g. `ip` without the feature) closes the pipe:
    // EPIPE on our side is part of the answer, not a crash.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

function kernelConfig(): string | undefined {
  try {
    return gunzipSync(readFileSync('/proc/config.gz')).toString('latin1');
  } catch {
    return undefined;
  }
}

/** Runs the probes (a few short-lived processes; the agent caches the answer). */
export async function detectKernelFeatures(): Promise<KernelFeatures> {
  const config = kernelConfig();
  const fromConfig = config ? parseKernelConfig(config) : undefined;

  const vrfProbe = await runProbe('unshare', [
    '-n',
    'ip',
    'link',
    'add',
    'segmesh-vrf',
    'type',
    'vrf',
    'table',
    '1',
  ]);
  let vrf = parseVrfProbe(vrfProbe);
  let vrfHow = 'ip link add type vrf in a throwaway netns';
  if (vrf === undefined) {
    vrf = fromConfig?.vrf ?? existsSync('/sys/module/vrf');
    vrfHow = fromConfig ? 'CONFIG_NET_VRF (probe could not run)' : '/sys/module/vrf (probe could not run)';
  }

  const seg6Probe = await runProbe('ip', ['sr', 'tunsrc', 'show']);
  const seg6 = seg6Probe.code === 0;
  const hmacSysctl = existsSync('/proc/sys/net/ipv6/conf/all/seg6_require_hmac');
  const hmac = seg6 && hmacSysctl;

  const nftProbe = await runProbe('unshare', ['-n', 'nft', '-c', '-f', '-'], NFT_SRH_PROBE);
  let nftSrh = parseNftProbe(nftProbe);
  let nftHow = 'nft -c accepts srh tag / srh sid[1] matches';
  if (nftSrh === undefined) {
    nftSrh = false;
    nftHow = `nft probe could not run: ${nftProbe.stderr.trim().split('\n')[0] ?? ''}`;
  } else if (!nftSrh) {
    nftHow = `nft -c refused the srh match: ${nftProbe.stderr.trim().split('\n')[0] ?? ''}`;
  }

  return {
    release: release(),
    vrf,
    seg6,
    hmac,
    nftSrh,
    how: {
      vrf: vrfHow,
      seg6: seg6 ? 'generic netlink family SEG6 answers' : 'generic netlink family SEG6 missing',
      hmac: hmac
        ? 'SEG6 family and the seg6_require_hmac sysctl (CONFIG_IPV6_SEG6_HMAC)'
        : seg6
          ? 'no seg6_require_hmac sysctl: kernel without CONFIG_IPV6_SEG6_HMAC'
          : 'no SEG6 family',
      nftSrh: nftHow,
    },
  };
}

/** Version of a gobgpd binary (`gobgpd --version`), or undefined when it cannot be run. */
export async function gobgpdVersion(binary = 'gobgpd'): Promise<string | undefined> {
  const r = await runProbe(binary, ['--version']);
  return r.code === 0 ? parseGobgpVersion(r.stdout + r.stderr) : undefined;
}
