import { describe, expect, it } from 'vitest';
import {
  NFT_SRH_PROBE,
  parseGobgpVersion,
  parseKernelConfig,
  parseNftProbe,
  parseSeg6Probe,
  parseVrfProbe,
  runProbe,
} from '../../../src/dataplane/features.ts';

describe('kernel feature probes: reading their outcome', () => {
  it('VRF: created, refused for want of the link kind, or the probe could not run', () => {
    expect(parseVrfProbe({ code: 0, stdout: '', stderr: '' })).toBe(true);
    // iproute2 6.1 on a kernel without CONFIG_NET_VRF (this machine).
    expect(parseVrfProbe({ code: 2, stdout: '', stderr: 'Error: Unknown device type.\n' })).toBe(false);
    expect(
      parseVrfProbe({ code: 1, stdout: '', stderr: 'unshare: unshare failed: Operation not permitted\n' }),
    ).toBeUndefined();
    expect(parseVrfProbe({ code: 127, stdout: '', stderr: 'spawn unshare ENOENT' })).toBeUndefined();
  });

  it('seg6, seg6local, HMAC: the kernel took it, refused the feature itself, or the probe could not run', () => {
    expect(parseSeg6Probe({ code: 0, stdout: '', stderr: '' })).toBe(true);
    // Kernel 6.18 without CONFIG_IPV6_SEG6_LWTUNNEL (this machine), route with encap seg6 or seg6local.
    expect(
      parseSeg6Probe({ code: 2, stdout: '', stderr: 'Error: lwt encapsulation type not supported.\n' }),
    ).toBe(false);
    // `ip sr hmac set` without CONFIG_IPV6_SEG6_HMAC: ENOTSUPP, which iproute2 cannot name.
    expect(
      parseSeg6Probe({
        code: 1,
        stdout: '',
        stderr: 'Enter secret for HMAC key ID (blank to delete): RTNETLINK answers: Unknown error 524\n',
      }),
    ).toBe(false);
    expect(
      parseSeg6Probe({ code: 1, stdout: '', stderr: 'unshare: unshare failed: Operation not permitted\n' }),
    ).toBeUndefined();
    expect(parseSeg6Probe({ code: 127, stdout: '', stderr: 'spawn unshare ENOENT' })).toBeUndefined();
  });

  it('nft SRH match: accepted, refused by nft or the kernel, or nft missing', () => {
    expect(parseNftProbe({ code: 0, stdout: '', stderr: '' })).toBe(true);
    expect(
      parseNftProbe({
        code: 1,
        stdout: '',
        stderr:
          '/dev/stdin:3:9-14: Error: syntax error, unexpected tag\n    srh tag 1 counter\n        ^^^\n',
      }),
    ).toBe(false);
    expect(
      parseNftProbe({
        code: 1,
        stdout: '',
        stderr: 'Error: Could not process rule: No such file or directory',
      }),
    ).toBe(false);
    expect(parseNftProbe({ code: 127, stdout: '', stderr: 'spawn nft ENOENT' })).toBeUndefined();
    expect(NFT_SRH_PROBE).toMatch(/srh tag 1/);
    expect(NFT_SRH_PROBE).toMatch(/srh sid\[1\] fc00::1/);
  });

  it('kernel configuration: built in or a module counts, "is not set" does not', () => {
    const config = [
      '# CONFIG_NET_VRF is not set',
      'CONFIG_IPV6_SEG6_LWTUNNEL=y',
      'CONFIG_IPV6_SEG6_HMAC=y',
      'CONFIG_IPV6_SEG6_BPF=y',
    ].join('\n');
    expect(parseKernelConfig(config)).toEqual({ vrf: false, hmac: true, seg6: true });
    expect(parseKernelConfig('CONFIG_NET_VRF=m\n')).toEqual({ vrf: true, hmac: false, seg6: false });
    expect(parseKernelConfig('CONFIG_NET_VRF_EXTRA=y\n').vrf).toBe(false);
  });

  it('gobgpd --version', () => {
    expect(parseGobgpVersion('gobgpd version 3.10.0\n')).toBe('3.10.0');
    expect(parseGobgpVersion('gobgpd version v3.26.0-dev\n')).toBe('3.26.0-dev');
    expect(parseGobgpVersion('flag provided but not defined: -version')).toBeUndefined();
  });

  it('a probe that exits without reading its input is an answer, not a crash (EPIPE)', async () => {
    const big = 'x'.repeat(1 << 20);
    for (let i = 0; i < 5; i++) expect((await runProbe('true', [], big)).code).toBe(0);
    expect((await runProbe('sh', ['-c', 'exit 3'], big)).code).toBe(3);
    expect((await runProbe('/nonexistent/probe', [])).code).toBe(127);
  });
});
