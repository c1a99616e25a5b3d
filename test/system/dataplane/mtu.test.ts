import { afterAll, beforeAll, expect, it } from 'vitest';
import { mssFor, nftMssClampRuleset, workloadMtu } from '../../../src/dataplane/isolation.ts';
import { createLab, type Netns, systemSuite } from '../../harness/index.ts';
import { buildFabric, type Fabric, workloadText } from './fabric.ts';

/** Gbit/s of a short iperf3 TCP run between two workloads (0 when the path black-holes big segments). */
async function tcpGbps(client: Netns, dst: string): Promise<number> {
  const r = await client.exec('iperf3', ['-6', '-c', dst, '-t', '2', '-J', '--connect-timeout', '3000'], {
    allowFail: true,
    timeoutMs: 30_000,
  });
  try {
    return (
      (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received
        .bits_per_second / 1e9
    );
  } catch {
    return 0;
  }
}

systemSuite(
  'dataplane: MTU of encapsulated workload traffic',
  { tools: ['ip', 'nft', 'iperf3'], kernel: ['seg6', 'seg6local'] },
  () => {
    const lab = createLab();
    let f: Fabric;
    beforeAll(async () => {
      // Workload links left at 1500 on purpose: the agent's formula is checked against this failure.
      f = await buildFabric(lab, { hostCount: 2, workloadHosts: [1, 2], workloadMtu: 1500 });
      for (const h of f.hosts)
        await h.dp.reconcile({ routes: f.desiredRoutes(h.n, 'encap', false), rules: f.desiredRules(h.n) });
      await lab.daemon({
        name: 'mtu-iperf3',
        command: 'iperf3',
        args: ['-s', '-B', workloadText(2, 'a')],
        netns: f.workloads.get('a2')!,
        ready: async () =>
          (await f.workloads.get('a2')!.exec('ss', ['-ltn'], { allowFail: true })).stdout.includes(':5201'),
      });
    });
    afterAll(async () => {
      await f?.close();
      await lab.teardown();
    });

    it('forwarded TCP stalls at MTU 1500, flows with the MSS clamp, and flows with the formula MTU', async () => {
      const client = f.workloads.get('a1')!;
      const dst = workloadText(2, 'a');
      expect(await tcpGbps(client, dst)).toBeLessThan(0.01); // the measured black hole
      // Second line: MSS clamp on both hosts' forward hook.
      const mss = mssFor(workloadMtu({ maxSegments: 1 }));
      for (const h of f.hosts) await h.dp.applyNft(nftMssClampRuleset([`wa${h.n}`, `wb${h.n}`], mss));
      expect(await tcpGbps(client, dst)).toBeGreaterThan(0.05);
      for (const h of f.hosts) await h.dp.applyNft(`table inet segmesh_mss\ndelete table inet segmesh_mss\n`);
      expect(await tcpGbps(client, dst)).toBeLessThan(0.01);
      // First line: the workload MTU from the formula.
      const mtu = workloadMtu({ maxSegments: 1 });
      for (const h of f.hosts) await h.dp.setLink(`wa${h.n}`, { mtu });
      await client.ip('link', 'set', 'eth0', 'mtu', String(mtu));
      await f.workloads.get('a2')!.ip('link', 'set', 'eth0', 'mtu', String(mtu));
      expect(await tcpGbps(client, dst)).toBeGreaterThan(0.05);
    });
  },
);
