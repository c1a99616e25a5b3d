/**
 * Opening the data-plane backend the agent config asks for (`dataplane.backend: auto | ebpf | kernel`):
 * the kernel's features are found by trying them (features.ts), the BPF object by loading it (the
 * verifier runs, nothing is attached or pinned), and choose.ts decides. A thin I/O adapter: the agent's
 * wiring calls it once at start.
 */
import type { Ipv6Address } from '../srv6/address.ts';
import type { DataplaneBackend } from './backend.ts';
import {
  type BackendNeeds,
  type BackendSetting,
  chooseBackend,
  type EbpfSupport,
  kernelGaps,
} from './choose.ts';
import type { Dataplane } from './dataplane.ts';
import { EbpfBackend, ebpfObjectPath } from './ebpf/backend.ts';
import { BpfObject } from './ebpf/libbpf.ts';
import { detectKernelFeatures, type KernelFeatures } from './features.ts';
import { KernelBackend } from './kernel/backend.ts';

export interface OpenBackendOptions {
  readonly setting: BackendSetting;
  /** The host's data plane (links, sysctls, routes); both backends use it, the caller closes it. */
  readonly dp: Dataplane;
  readonly underlayDevice: string;
  /** This host's SRv6 source address (outer source of encapsulated packets). */
  readonly source: Ipv6Address;
  /** TCP MSS the kernel backend's clamp enforces toward workloads. */
  readonly mss: number;
  /** eBPF pins (a folder on a bpffs). */
  readonly pinDir: string;
  readonly objectPath?: string;
  readonly needs?: BackendNeeds;
  /** Detected already (tests, or a caller that shows them). */
  readonly features?: KernelFeatures;
}

export interface PreparableBackend extends DataplaneBackend {
  /** Host-wide settings (sysctls, the encapsulation source), once before the first intent. */
  prepare(): Promise<void>;
}

export interface OpenedBackend {
  readonly backend: PreparableBackend;
  readonly name: 'kernel' | 'ebpf';
  /** Why this one: `configured`, or what `auto` found. */
  readonly why: string;
  readonly features: KernelFeatures;
}

export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError';
}

/** Whether the eBPF programs load on this kernel (the verifier accepts them); nothing stays behind. */
export function probeEbpf(objectPath = ebpfObjectPath()): EbpfSupport {
  try {
    BpfObject.load(objectPath, { programs: ['wl_in', 'ul_in'] }).close();
    return { usable: true };
  } catch (e) {
    return { usable: false, why: `the BPF programs do not load: ${(e as Error).message.split('\n')[0]}` };
  }
}

export async function openBackend(o: OpenBackendOptions): Promise<OpenedBackend> {
  const features = o.features ?? (await detectKernelFeatures());
  const needs = o.needs ?? {};
  // The BPF object is loaded only when it may be chosen (a verifier run costs a few hundred ms).
  const ebpf: EbpfSupport =
    o.setting === 'ebpf' || (o.setting === 'auto' && kernelGaps(features, needs).length > 0)
      ? probeEbpf(o.objectPath)
      : { usable: false, why: 'not tried: the kernel backend was chosen' };
  const choice = chooseBackend(o.setting, features, ebpf, needs);
  if ('error' in choice) throw new BackendUnavailableError(choice.error);
  const backend: PreparableBackend =
    choice.backend === 'kernel'
      ? new KernelBackend(o.dp, {
          underlayDevice: o.underlayDevice,
          sidCounters: true,
          mss: o.mss,
          vrf: features.vrf,
          hmac: features.hmac,
          // HMAC asked for (dataplane.hmac): arriving SRHs must carry a valid one.
          ...(needs.hmac ? { requireHmac: true } : {}),
          tunnelSource: o.source,
        })
      : new EbpfBackend(o.dp, {
          underlayDevice: o.underlayDevice,
          source: o.source,
          pinDir: o.pinDir,
          ...(o.objectPath ? { objectPath: o.objectPath } : {}),
        });
  return { backend, name: choice.backend, why: choice.why, features };
}
