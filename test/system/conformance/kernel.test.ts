/**
 * The conformance suite (suite.ts) against the kernel backend: seg6 and seg6local routes, ip rules,
 * nftables. This host's kernel has no seg6 lwtunnels: scripts/test.sh runs this file in the VM with
 * Debian's kernel (test/kernel-matrix.json, vm.include).
 */
import { KernelBackend, kernelCapabilities } from '../../../src/dataplane/kernel/backend.ts';
import { mssFor } from '../../../src/dataplane/kernel/nft.ts';
import { kernelHas } from '../../harness/kernel.ts';
import { conformanceSuite, UNDERLAY_DEVICE } from './suite.ts';

const vrf = kernelHas().get('vrf') === true;

conformanceSuite({
  name: 'kernel',
  tools: ['nft', 'python3'],
  kernel: ['seg6', 'seg6local'],
  hostCapabilities: { vrf: false, hmac: false },
  capabilities: kernelCapabilities({ vrf }),
  async backend(host) {
    await host.dp.setTunsrc(host.underlay);
    const backend = new KernelBackend(host.dp, {
      underlayDevice: UNDERLAY_DEVICE,
      sidCounters: true,
      mss: mssFor(host.linkMtu),
      vrf,
    });
    await backend.prepare();
    // close() closes the host's Dataplane.
    return { backend, release: async () => undefined };
  },
});
