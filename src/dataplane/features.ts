/**
 * What this host's kernel (and its nft) can do, detected at run time by trying it, not by version
 * numbers:
 *
 *  - VRF devices (End.DT4/DT46 need them): `ip link add ... type vrf` in a throwaway network namespace
 *    (`unshare -n`, gone with the process); without the right to create one, CONFIG_NET_VRF from
 *    /proc/config.gz;
 *  - seg6 and seg6local: a route with `encap seg6` (H.Encaps) and one with `encap seg6local action End`,
 *    each added in a throwaway network namespace. The generic netlink family "SEG6" answering is not
 *    enough: a kernel without CONFIG_IPV6_SEG6_LWTUNNEL has the family but refuses every such route
 *    (`lwt encapsulation type not supported`);
 *  - seg6 HMAC: a key set with `ip sr hmac set` in a throwaway namespace (without
 *    CONFIG_IPV6_SEG6_HMAC the kernel answers ENOTSUPP, "Unknown error 524");
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
  /** Routes with `encap seg6` (H.Encaps, H.Encaps.Red) are accepted. */
  readonly seg6: boolean;
  /** Routes with `encap seg6local` (End, End.DT6, ...) are accepted. */
  readonly seg6local: boolean;
  readonly hmac: boolean;
  readonly nftSrh: boolean;
  /** How each answer was found, for people reading `segmesh version`. */
  readonly how: Readonly<Record<KernelFeatureName, string>>;
}

export type KernelFeatureName = 'vrf' | 'seg6' | 'seg6local' | 'hmac' | 'nftSrh';

/** The kernel option each feature needs, for messages that tell an operator what is missing. */
export const KERNEL_OPTION: Readonly<Record<KernelFeatureName, string>> = {
  vrf: 'CONFIG_NET_VRF',
  seg6: 'CONFIG_IPV6_SEG6_LWTUNNEL',
  seg6local: 'CONFIG_IPV6_SEG6_LWTUNNEL',
  hmac: 'CONFIG_IPV6_SEG6_HMAC',
  nftSrh: 'CONFIG_NFT_EXTHDR (nft srh match)',
};

/** The probe scripts, each run as `unshare -n sh -c SCRIPT` (a namespace gone with the process). */
export const SEG6_PROBE =
  'ip link set lo up && ip -6 route add fc00:0:ffff::/64 encap seg6 mode encap segs fc00:0:ffff::1 dev lo';
export const SEG6LOCAL_PROBE =
  'ip link set lo up && ip -6 route add fc00:0:ffff::1/128 encap seg6local action End dev lo';
export const HMAC_PROBE = 'echo segmesh-probe | ip sr hmac set 1 sha256';

/**
 * The outcome of a route or HMAC probe: yes, no (the kernel refused the feature itself), or cannot
 * tell (no permission, no unshare, another error).
 */
export function parseSeg6Probe(r: ProbeResult): boolean | undefined {
  if (r.code === 0) return true;
  // Without CONFIG_IPV6_SEG6_LWTUNNEL; without CONFIG_IPV6_SEG6_HMAC (ENOTSUPP 524, which iproute2
  // cannot name); or without the SEG6 generic netlink family at all.
  if (
    /lwt encapsulation type not supported|Unknown error 524|Operation not supported|Unknown seg6|Genetlink|SEG6/i.test(
      r.stderr,
    )
  ) {
    return false;
  }
  return undefined;
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

  const tried = async (script: string, option: 'seg6' | 'hmac') => {
    const r = await runProbe('unshare', ['-n', 'sh', '-c', script]);
    const answer = parseSeg6Probe(r);
    if (answer !== undefined) {
      // iproute2 prompts for the HMAC secret on stderr; the answer follows the prompt.
      const why = (r.stderr.trim().split('\n').at(-1) ?? '').replace(/^Enter secret[^:]*:\s*/, '');
      return {
        yes: answer,
        how: answer ? 'accepted in a throwaway netns' : `refused in a throwaway netns: ${why}`,
      };
    }
    const yes = fromConfig?.[option] ?? false;
    return { yes, how: `${fromConfig ? KERNEL_OPTION[option] : 'no kernel config'} (probe could not run)` };
  };
  const seg6Route = await tried(SEG6_PROBE, 'seg6');
  const seg6LocalRoute = await tried(SEG6LOCAL_PROBE, 'seg6');
  const hmacKey = await tried(HMAC_PROBE, 'hmac');
  const seg6 = seg6Route.yes;
  const seg6local = seg6LocalRoute.yes;
  const hmac = hmacKey.yes;

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
    seg6local,
    hmac,
    nftSrh,
    how: {
      vrf: vrfHow,
      seg6: `ip -6 route add ... encap seg6 ${seg6Route.how}`,
      seg6local: `ip -6 route add ... encap seg6local action End ${seg6LocalRoute.how}`,
      hmac: `ip sr hmac set ${hmacKey.how}`,
      nftSrh: nftHow,
    },
  };
}

/** Version of a gobgpd binary (`gobgpd --version`), or undefined when it cannot be run. */
export async function gobgpdVersion(binary = 'gobgpd'): Promise<string | undefined> {
  const r = await runProbe(binary, ['--version']);
  return r.code === 0 ? parseGobgpVersion(r.stdout + r.stderr) : undefined;
}
