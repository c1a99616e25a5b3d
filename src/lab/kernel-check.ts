/**
 * What a lab needs of this machine's kernel (pure; lab.ts probes the kernel and the BPF object and asks
 * here). Lab containers share the host's kernel, so:
 * - an FRR edge router needs seg6 and seg6local routes: zebra installs its End.DT6 SID and the seg6
 *   routes toward the hosts' SIDs, and no other data plane stands in for it;
 * - agents need a data-plane backend: `dataplane.backend: auto` (what the lab's agents are configured
 *   with) takes the kernel's seg6 routes where they exist, else the eBPF programs (each container
 *   mounts its own bpffs, so the hosts' pins never meet).
 * Without what it needs a lab would come up half way and fail minutes later: the lab says so first.
 */
import { type BackendChoice, chooseBackend, type EbpfSupport } from '../dataplane/choose.ts';
import { KERNEL_OPTION, type KernelFeatures } from '../dataplane/features.ts';

export interface LabKernelFacts {
  readonly prefix: string;
  readonly topologyFile: string;
  /** Names of the topology's edge routers (FRR). */
  readonly edgeRouters: readonly string[];
  /** Hosts run `segmesh agent` (agent mode). */
  readonly agents: boolean;
}

export type LabKernelVerdict =
  | { readonly error: string }
  | {
      /** The backend the agents take (`auto`), or undefined when the lab runs no agents. */
      readonly agents?: { readonly backend: 'kernel' | 'ebpf'; readonly why: string };
    };

type Kernel = Pick<KernelFeatures, 'release' | 'seg6' | 'seg6local' | 'vrf' | 'hmac' | 'how'>;

export function labKernelVerdict(lab: LabKernelFacts, kernel: Kernel, ebpf: EbpfSupport): LabKernelVerdict {
  const lacked = (['seg6', 'seg6local'] as const).filter((f) => !kernel[f]);
  if (lab.edgeRouters.length > 0 && lacked.length > 0) {
    const edges = lab.edgeRouters.join(', ');
    return {
      error:
        `lab ${lab.prefix}: edge router ${edges} (FRR) needs ${lacked.join(' and ')} routes, which this machine's ` +
        `kernel ${kernel.release} refuses (${kernel.how[lacked[0]!]}): zebra installs its End.DT6 SID and ` +
        "its seg6 routes toward the hosts' SIDs, and lab containers share the host's kernel. Run this lab " +
        `on a kernel built with ${KERNEL_OPTION.seg6} (Debian's, Ubuntu's and RHEL's are), give the edge ` +
        "router `runtime: vm` (or `auto`: FRR in a VM on Debian's kernel), or leave the " +
        `edge router and its external clients out of ${lab.topologyFile} (nodes:): the hosts' agents run on ` +
        'the eBPF backend on this kernel (docs/lab.md, "Kernel requirements").',
    };
  }
  if (!lab.agents) return {};
  const choice: BackendChoice = chooseBackend('auto', kernel, ebpf);
  if ('error' in choice)
    return {
      error:
        `lab ${lab.prefix}: the agents have no data plane on this machine's kernel ${kernel.release}: ` +
        `${choice.error}; lab containers share the host's kernel. Build the BPF object (npm run build) ` +
        `or run the lab on a kernel built with ${KERNEL_OPTION.seg6} (docs/lab.md, "Kernel requirements").`,
    };
  return { agents: choice };
}
