import { describe, expect, it } from 'vitest';
import { chooseBackend } from '../../../src/dataplane/choose.ts';

const full = { seg6: true, seg6local: true, vrf: true, hmac: true };
const bare = { seg6: false, seg6local: false, vrf: false, hmac: false }; // this machine's 6.18
const ok = { usable: true };
const none = { usable: false, why: 'kernel 6.1 has no BPF_FIB_LOOKUP_TBID (needs 6.5)' };

describe('dataplane.backend: auto | ebpf | kernel', () => {
  it('auto prefers the kernel backend when it has what the config needs, else ebpf', () => {
    expect(chooseBackend('auto', full, ok)).toMatchObject({ backend: 'kernel' });
    expect(chooseBackend('auto', bare, ok)).toMatchObject({ backend: 'ebpf' });
    // seg6 but no VRF and IPv4 tenants: ebpf (End.DT4 without VRF).
    expect(chooseBackend('auto', { ...full, vrf: false }, ok, { ipv4: true })).toMatchObject({
      backend: 'ebpf',
    });
    expect(chooseBackend('auto', { ...full, vrf: false }, ok)).toMatchObject({ backend: 'kernel' });
  });

  it('refuses with the cause and the fix: HMAC on a kernel without it, nothing usable, a forced backend that cannot run', () => {
    const hmac = chooseBackend('auto', { ...full, hmac: false }, ok, { hmac: true });
    expect(hmac).toStrictEqual({
      error:
        'dataplane.backend: auto found no usable backend: kernel: no seg6 HMAC (CONFIG_IPV6_SEG6_HMAC); ebpf: no SRH HMAC in BPF yet',
    });
    expect(chooseBackend('auto', bare, none)).toMatchObject({
      error: expect.stringMatching(/BPF_FIB_LOOKUP_TBID/),
    });
    expect(chooseBackend('kernel', bare, ok)).toMatchObject({
      error: expect.stringMatching(/CONFIG_IPV6_SEG6_LWTUNNEL.*set dataplane.backend: ebpf/),
    });
    expect(chooseBackend('ebpf', full, none)).toMatchObject({
      error: expect.stringMatching(/npm run build/),
    });
    expect(chooseBackend('ebpf', bare, ok)).toStrictEqual({ backend: 'ebpf', why: 'configured' });
  });
});
