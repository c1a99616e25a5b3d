import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Frr, startFrr } from '../../harness/frr.ts';
import { createLab, type Netns, systemSuite, waitFor } from '../../harness/index.ts';
import { AgentCluster, ping } from './cluster.ts';

const EDGE = { address: '2001:db8:100::fe', asn: 65000, locator: 'fc00:0:fe00::/64' };

systemSuite(
  'agent: an FRR edge router and an external client',
  { tools: ['ip', 'nft', 'ping', 'gobgpd', 'zebra', 'bgpd'] },
  () => {
    const lab = createLab();
    const cluster = new AgentCluster(lab);
    let frr: Frr;
    let ext: Netns;
    let blue: { ns: Netns; address: string };
    let red: { ns: Netns; address: string };

    beforeAll(async () => {
      await cluster.create(2, { edge: EDGE });
      cluster.applyTenants();
      // The edge: on the underlay switch, static routes to the hosts' locators, FRR with tenant blue
      // (one FRR 8.4 instance serves one tenant), an external client behind it.
      const edge = await lab.netns('edge');
      await cluster.sw!.attach(edge, 'eth0', [`${EDGE.address}/64`]);
      ext = await lab.netns('ext');
      await lab.veth(edge, 'ext', ext, 'eth0', {
        addresses: ['2001:db8:e1::1/64'],
        peerAddresses: ['2001:db8:e1::2/64'],
      });
      await ext.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:e1::1');
      for (const h of cluster.hosts)
        await edge.ip('-6', 'route', 'add', `fc00:0:${h.index}::/48`, 'via', h.underlay, 'dev', 'eth0');
      frr = await startFrr(lab, {
        name: 'edge',
        netns: edge,
        asn: EDGE.asn,
        routerId: '198.18.1.1',
        neighbors: cluster.hosts.map((h) => ({ address: h.underlay, asn: 65101 })),
        locator: EDGE.locator,
        tenant: { rd: '65000:100', rt: '65000:100', exportPrefixes: ['2001:db8:e1::/64'] },
        sidDevice: 'eth0',
      });
      blue = await cluster.workload(cluster.hosts[0]!, 'blue', 'blue', 'shop.web');
      red = await cluster.workload(cluster.hosts[1]!, 'red', 'red', 'bank.api');
      await cluster.converged(2);
    }, 180_000);
    afterAll(async () => {
      cluster.close();
      await lab.teardown();
    });

    it("FRR installs a seg6 route to the host's End.DT6 SID for the tenant's workload, and nothing of the other tenant", async () => {
      await frr.waitRoute(`${blue.address}/128`, { sid: 'fc00:0:1:2064::', timeoutMs: 30_000 });
      const routes = await frr.options.netns.ip('-6', 'route', 'show');
      expect(routes.stdout).not.toContain(red.address);
    });

    it('the external client and the workload reach each other both ways; the other tenant stays out of reach', async () => {
      // The agent learned FRR's exported prefix (SID rebuilt from label and structure) into blue's table.
      await waitFor(
        async () =>
          (await cluster.hosts[0]!.ns.ip('-6', 'route', 'show', 'table', '385424')).stdout.includes(
            '2001:db8:e1::/64',
          ),
        { timeoutMs: 30_000, what: "host1 to learn FRR's 2001:db8:e1::/64" },
      );
      expect(await ping(ext, blue.address)).toBe(3);
      expect(await ping(blue.ns, '2001:db8:e1::2')).toBe(3);
      expect(await ping(ext, red.address, 2)).toBe(0);
      expect(await ping(red.ns, '2001:db8:e1::2', 2)).toBe(0);
    });

    it('withdraws the route from FRR when the workload goes away', async () => {
      await cluster.api(cluster.hosts[0]!).call('deleteWorkload', { identity: 'shop.web' });
      await frr.waitRoute(`${blue.address}/128`, { absent: true, timeoutMs: 30_000 });
    });
  },
);
