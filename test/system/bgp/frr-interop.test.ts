import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ExternalRoute } from '../../../src/bgp/index.ts';
import { parseRd } from '../../../src/bgp/update.ts';
import { formatIpv6, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { F3216 } from '../../../src/srv6/sid.ts';
import { startAgentBgp, type TestAgentBgp } from '../../harness/gobgp.ts';
import { createLab, systemSuite, waitFor } from '../../harness/index.ts';
import {
  EDGE_ASN,
  type EdgeSpec,
  HOST_ASN,
  type HostSpec,
  installExternal,
  makeEdge,
  makeHost,
  programHost,
} from './topology.ts';

systemSuite(
  'bgp: GoBGP sidecar <-> FRR 8.4, one host, one edge',
  { tools: ['ip', 'gobgpd', 'zebra', 'bgpd', 'vtysh'] },
  () => {
    const lab = createLab();
    let h: HostSpec;
    let e: EdgeSpec;
    let agent: TestAgentBgp;
    const learned = new Map<string, ExternalRoute>();
    afterAll(() => lab.teardown());

    beforeAll(async () => {
      h = await makeHost(lab, 1);
      e = await makeEdge(lab, 1, {
        hosts: [h],
        rt: `${EDGE_ASN}:100`,
        uplink: async (edge) => {
          await lab.veth(h.ns, 'eth0', edge, 'eth0', {
            addresses: [`${h.address}/64`],
            peerAddresses: ['2001:db8:12::101/64'],
          });
        },
      });
      await programHost(h, e.address, e.locator);
      agent = await startAgentBgp(lab, h.ns, {
        name: 'h1',
        asn: HOST_ASN,
        routerId: '198.18.0.1',
        nextHop: h.address,
        locator: h.locator,
        peers: [{ address: e.address, asn: EDGE_ASN, locators: [e.locator] }],
        tenants: [{ name: 'blue', routeTarget: `${EDGE_ASN}:100` }],
        fabricRouteTargets: [`${HOST_ASN}:1`],
        fabricLocators: ['fc00:0:1::/48'],
        transposition: true,
      });
      agent.bgp.on('route:add', (r) => {
        learned.set(r.key, r);
        void installExternal(h, r);
      });
      agent.bgp.on('route:delete', (r) => learned.delete(r.key));
    });

    const advert = (sid: string, prefix: string) => ({
      tenant: 'blue',
      rd: parseRd(`${HOST_ASN}:100`),
      prefix: parsePrefix(prefix),
      sid: parseIpv6(sid),
      behavior: 'End.DT6' as const,
      structure: F3216,
      routeTargets: [parseRd(`${EDGE_ASN}:100`)],
      nextHop: parseIpv6(h.address),
    });

    it("FRR installs a seg6 route toward the agent's SID (transposed)", async () => {
      await e.frr.waitSession(h.address);
      await agent.bgp.advertise([advert(h.sid, `${h.workloadAddress}/128`)]);
      await e.frr.waitRoute(`${h.workloadAddress}/128`, { sid: h.sid });
    });

    it("the agent learns FRR's exported prefix with the SID rebuilt exactly", async () => {
      await waitFor(() => learned.size > 0, { timeoutMs: 20_000, what: 'route learned from FRR' });
      const r = [...learned.values()][0]!;
      expect(`${formatIpv6(r.prefix.address)}/${r.prefix.length}`).toBe(e.extPrefix);
      expect(formatIpv6(r.sid)).toBe(e.frr.sid);
      expect(r.tenants).toEqual(['blue']);
    });

    it('ping works both ways between the external client and the workload', async () => {
      await waitFor(
        async () =>
          (await h.ns.ip('-6', 'route', 'show', 'table', '100')).stdout.includes('2001:db8:e1::/64'),
        {
          timeoutMs: 5_000,
          what: 'external route installed on the host',
        },
      );
      await e.ext.exec('ping', ['-6', '-c', '2', '-W', '2', h.workloadAddress]);
      await h.workload.exec('ping', ['-6', '-c', '2', '-W', '2', e.extAddress]);
    });
  },
);
