import { describe, expect, it } from 'vitest';
import type { KernelFeatures } from '../../../src/dataplane/features.ts';
import { type LabKernelFacts, labKernelVerdict } from '../../../src/lab/kernel-check.ts';

const how = {
  vrf: 'probe',
  seg6: 'ip -6 route add ... encap seg6 refused in a throwaway netns: lwt encapsulation type not supported',
  seg6local: 'refused',
  hmac: 'refused',
  nftSrh: 'ok',
};
const noSeg6: KernelFeatures = {
  release: '6.18.44',
  vrf: false,
  seg6: false,
  seg6local: false,
  hmac: false,
  nftSrh: true,
  how,
};
const withSeg6: KernelFeatures = { ...noSeg6, release: '6.1.0', seg6: true, seg6local: true };
const ebpfOk = { usable: true };
const ebpfNo = { usable: false, why: 'the BPF programs do not load: ENOENT build/bpf/segmesh.o' };

const lab = (o: Partial<LabKernelFacts>): LabKernelFacts => ({
  prefix: 'mobility',
  topologyFile: 'topologies/mobility.yaml',
  edgeRouters: [],
  agents: true,
  ...o,
});

describe('labKernelVerdict', () => {
  it('lets agents without an edge router run on the eBPF backend where the kernel lacks seg6', () => {
    const v = labKernelVerdict(lab({}), noSeg6, ebpfOk);
    expect(v).toEqual({
      agents: { backend: 'ebpf', why: expect.stringContaining('CONFIG_IPV6_SEG6_LWTUNNEL') },
    });
    // Control: with seg6 the agents take the kernel backend.
    expect(labKernelVerdict(lab({}), withSeg6, ebpfNo)).toEqual({
      agents: { backend: 'kernel', why: expect.stringContaining('auto') },
    });
  });

  it('refuses an FRR edge router on a kernel without seg6, naming it and the fix', () => {
    const v = labKernelVerdict(lab({ edgeRouters: ['edge1'] }), noSeg6, ebpfOk);
    expect('error' in v && v.error).toMatch(/edge router edge1 \(FRR\) needs seg6 and seg6local routes/);
    expect('error' in v && v.error).toContain('6.18.44');
    expect('error' in v && v.error).toContain('CONFIG_IPV6_SEG6_LWTUNNEL');
    expect('error' in v && v.error).toContain('topologies/mobility.yaml');
    // Even without agents (hosts run gobgpd alone): zebra needs the routes.
    expect('error' in labKernelVerdict(lab({ edgeRouters: ['edge1'], agents: false }), noSeg6, ebpfOk)).toBe(
      true,
    );
    // Control: the same lab on a kernel with seg6.
    expect(labKernelVerdict(lab({ edgeRouters: ['edge1'] }), withSeg6, ebpfNo)).toEqual({
      agents: { backend: 'kernel', why: expect.any(String) },
    });
  });

  it('refuses agents when neither seg6 nor the BPF programs are there, saying why', () => {
    const v = labKernelVerdict(lab({}), noSeg6, ebpfNo);
    expect('error' in v && v.error).toMatch(/agents have no data plane.*ENOENT build\/bpf\/segmesh\.o/);
    expect('error' in v && v.error).toContain('npm run build');
  });

  it('asks nothing of the kernel for a lab of gobgpd hosts without an edge', () => {
    expect(labKernelVerdict(lab({ agents: false }), noSeg6, ebpfNo)).toEqual({});
  });
});
