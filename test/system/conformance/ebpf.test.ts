/**
 * The conformance suite (suite.ts) against the eBPF backend, on this kernel (no seg6 lwtunnels, no VRF):
 * tc programs of bpf/segmesh.c, compiled from the source next to the test, pinned per host.
 */
import { EbpfBackend, ebpfCapabilities } from '../../../src/dataplane/ebpf/backend.ts';
import { objectName, sh } from '../../harness/index.ts';
import { compileDatapath } from '../ebpf/fixture.ts';
import { conformanceSuite, UNDERLAY_DEVICE } from './suite.ts';

let objectPath = '';

conformanceSuite({
  name: 'ebpf',
  tools: ['clang', 'bpftool', 'python3'],
  hostCapabilities: { vrf: false, hmac: false },
  capabilities: ebpfCapabilities(),
  async setup() {
    objectPath = await compileDatapath();
  },
  async backend(host, lab) {
    const pinDir = `/run/segmesh-test/${objectName(`cbpf${host.n}`)}`;
    lab.onTeardown(async () => {
      await sh('umount', [pinDir], { allowFail: true });
      await sh('rmdir', [pinDir], { allowFail: true });
    });
    const backend = new EbpfBackend(host.dp, {
      underlayDevice: UNDERLAY_DEVICE,
      source: host.underlay,
      pinDir,
      objectPath,
      netns: host.ns.name,
    });
    await backend.prepare();
    return { backend, release: () => host.dp.close() };
  },
});
