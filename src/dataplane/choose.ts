/**
 * Which backend the agent config `dataplane.backend: auto | ebpf | kernel` selects on a host (pure; the
 * agent probes the kernel with features.ts and loads the BPF object, then asks here: open-backend.ts).
 * `auto` prefers the kernel backend (the reference: source-specific entries, HMAC) when the kernel has
 * what the configuration needs, else the eBPF backend.
 */
import type { KernelFeatures } from './features.ts';

export type BackendSetting = 'auto' | 'ebpf' | 'kernel';

export interface BackendNeeds {
  /** SRH HMAC on (only the kernel backend has it, with CONFIG_IPV6_SEG6_HMAC). */
  readonly hmac?: boolean;
  /** IPv4 tenants (End.DT4/DT46): the kernel backend needs VRF devices, the eBPF one does not. */
  readonly ipv4?: boolean;
}

export interface EbpfSupport {
  /** The BPF object loads here (it needs kernel 6.5 for BPF_FIB_LOOKUP_TBID; tcx from 6.6, clsact before). */
  readonly usable: boolean;
  readonly why?: string;
}

export type BackendChoice =
  | { readonly backend: 'kernel' | 'ebpf'; readonly why: string }
  | { readonly error: string };

type Features = Pick<KernelFeatures, 'seg6' | 'seg6local' | 'vrf' | 'hmac'>;

export function kernelGaps(f: Features, needs: BackendNeeds): string[] {
  const gaps: string[] = [];
  if (!f.seg6 || !f.seg6local) gaps.push('no seg6 lwtunnel routes (CONFIG_IPV6_SEG6_LWTUNNEL)');
  if (needs.ipv4 && !f.vrf) gaps.push('no VRF devices for IPv4 tenants (CONFIG_NET_VRF)');
  if (needs.hmac && !f.hmac) gaps.push('no seg6 HMAC (CONFIG_IPV6_SEG6_HMAC)');
  return gaps;
}

function ebpfGaps(e: EbpfSupport, needs: BackendNeeds): string[] {
  const gaps: string[] = [];
  if (!e.usable) gaps.push(e.why ?? 'the BPF datapath does not load');
  if (needs.hmac) gaps.push('no SRH HMAC in BPF yet');
  return gaps;
}

export function chooseBackend(
  setting: BackendSetting,
  features: Features,
  ebpf: EbpfSupport,
  needs: BackendNeeds = {},
): BackendChoice {
  const k = kernelGaps(features, needs);
  const b = ebpfGaps(ebpf, needs);
  const refuse = (name: string, gaps: string[], fix: string) => ({
    error: `dataplane.backend: ${name} cannot run here: ${gaps.join('; ')}; ${fix}`,
  });
  switch (setting) {
    case 'kernel':
      return k.length === 0
        ? { backend: 'kernel', why: 'configured' }
        : refuse('kernel', k, 'set dataplane.backend: ebpf (or auto), or use a kernel with these options');
    case 'ebpf':
      return b.length === 0
        ? { backend: 'ebpf', why: 'configured' }
        : refuse('ebpf', b, 'set dataplane.backend: kernel (or auto), or build the object (npm run build)');
    case 'auto':
      if (k.length === 0)
        return { backend: 'kernel', why: 'auto: the kernel has seg6 and what the config needs' };
      if (b.length === 0) return { backend: 'ebpf', why: `auto: kernel backend unusable (${k.join('; ')})` };
      return {
        error: `dataplane.backend: auto found no usable backend: kernel: ${k.join('; ')}; ebpf: ${b.join('; ')}`,
      };
  }
}
