/**
 * The harness's FRR edge VM (test/harness/frr-vm.ts) fails fast: given too little time it names the
 * step (the boot, or FRR's start on an idle machine) with the console or guest output, and leaves no
 * qemu and no tap behind. Its working start is exercised by the agent suites with an FRR edge.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { processStartTime } from '../../../src/os/process.ts';
import { startFrrVm } from '../../harness/frr-vm.ts';
import { createLab, runPrefix, sh, systemSuite } from '../../harness/index.ts';
import { STATE_DIR } from '../../harness/run.ts';

systemSuite('harness: the FRR edge VM', { tools: ['qemu-system-x86_64', 'mmdebstrap'] }, () => {
  it('fails within its time limit naming the step, and leaves no VM or tap behind', async () => {
    const lab = createLab();
    const sw = await lab.underlaySwitch('fsw');
    const ext = await lab.netns('fext');
    // qemu as the run recorded it for the sweeper: it ran, and is gone.
    const recorded = () =>
      readFileSync(`${STATE_DIR}/${runPrefix()}.procs`, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as { pid: number; startTime?: string; name: string })
        .filter((e) => e.name === `qemu ${lab.name('fedge')}`);
    const t0 = Date.now();
    try {
      await expect(
        startFrrVm(lab, {
          name: 'fedge',
          sw,
          ext,
          asn: 65000,
          routerId: '198.18.1.1',
          underlay: '2001:db8:100::fe/64',
          external: { edge: '2001:db8:e1::1/64', client: '2001:db8:e1::2/64' },
          neighbors: [],
          locator: 'fc00:0:fe00::/64',
          routes: [],
          tenant: { id: 100, rd: '65000:100', rt: '65000:100' },
          timeoutMs: 500,
        }),
      ).rejects.toThrow(
        /(no ready line within \d+(\.\d+)? s[\s\S]*console|FRR did not start in time[\s\S]*guest output)/,
      );
      expect(Date.now() - t0).toBeLessThan(30_000);
      const qemu = recorded();
      expect(qemu).toHaveLength(1);
      expect(processStartTime(qemu[0]!.pid)).not.toBe(qemu[0]!.startTime);
    } finally {
      await lab.teardown();
    }
    const links = (await sh('ip', ['-o', 'link', 'show'])).stdout;
    for (const i of [0, 1]) expect(links).not.toContain(lab.name(`fedge${i}`));
  }, 120_000);
});
