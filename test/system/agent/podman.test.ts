import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, systemSuite, waitFor } from '../../harness/index.ts';
import { AgentCluster, ping } from './cluster.ts';
import { containerName, type Podman, podmanFor } from './podman.ts';

systemSuite(
  'agent: the CNI plugin under podman',
  { tools: ['ip', 'nft', 'ping', 'podman', 'busybox'] },
  () => {
    const lab = createLab();
    const cluster = new AgentCluster(lab);
    let podman: Podman;
    const name = containerName('pod1');

    beforeAll(async () => {
      await cluster.create(2);
      cluster.applyTenants();
      podman = await podmanFor(`${containerName('blue')}`, 'blue', cluster.hosts[0]!.socket);
    }, 180_000);
    afterAll(async () => {
      await podman?.run(['rm', '-f', name], { allowFail: true });
      cluster.close();
      await lab.teardown();
    });

    it('runs a container whose identity (CNI_ARGS) gets a sticky address reachable over SRv6; rm deletes it', async () => {
      const [h1, h2] = cluster.hosts;
      const peer = await cluster.workload(h2!, 'peer', 'blue', 'shop.peer');
      await podman.run(
        ['run', '-d', '--name', name, '--network', containerName('blue'), podman.image, '/bin/sleep', '300'],
        {
          env: { CNI_ARGS: 'SEGMESH_IDENTITY=shop.pod-1' },
        },
      );
      const pod = () =>
        cluster
          .api(h1!)
          .call('listWorkloads', {})
          .then((r) => r.workloads.find((w) => w.identity === 'shop.pod-1'));
      await waitFor(async () => (await pod()) !== undefined, {
        timeoutMs: 20_000,
        what: 'the container to be a workload',
      });
      const address = (await pod())!.address;
      await cluster.converged(2);
      expect(await ping(peer.ns, address)).toBe(3);
      const inside = await podman.run(['exec', name, '/bin/ip', '-6', 'addr', 'show', 'eth0']);
      expect(inside.stdout).toContain(`${address}/128`);

      await podman.run(['rm', '-f', name]);
      await waitFor(async () => (await pod()) === undefined, {
        timeoutMs: 20_000,
        what: 'DEL to remove the workload',
      });
      expect(await ping(peer.ns, address, 2)).toBe(0);
    });
  },
);
