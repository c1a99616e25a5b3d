/**
 * Acceptance with several routers: two FRR 8.4 instances for two tenants (each installs only its own
 * tenant's routes), and two hosts behind the same FRR (neither installs the other's workloads from BGP).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ExternalRoute, VpnAdvert } from '../../../src/bgp/index.ts';
import { parseRd } from '../../../src/bgp/update.ts';
import { formatIpv6, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { F3216 } from '../../../src/srv6/sid.ts';
import { startAgentBgp, type TestAgentBgp } from '../../harness/gobgp.ts';
import { createLab, paced, systemSuite, type UnderlaySwitch, waitFor } from '../../harness/index.ts';
import {
  EDGE_ASN,
  type EdgeSpec,
  HOST_ASN,
  type HostSpec,
  makeEdge,
  makeHost,
  programHost,
} from './topology.ts';

const TOOLS = ['ip', 'gobgpd', 'zebra', 'bgpd', 'vtysh'];

function advert(h: HostSpec, tenant: string, rt: string, sid: string, prefix: string): VpnAdvert {
  return {
    tenant,
    rd: parseRd(`${HOST_ASN}:${rt.split(':')[1]}`),
    prefix: parsePrefix(prefix),
    sid: parseIpv6(sid),
    behavior: 'End.DT6',
    structure: F3216,
    routeTargets: [parseRd(rt)],
    nextHop: parseIpv6(h.address),
  };
}

systemSuite(
  'bgp: two tenants at the edge = two FRR 8.4 instances',
  { tools: TOOLS, kernel: ['seg6', 'seg6local'] },
  () => {
    const lab = createLab();
    let sw: UnderlaySwitch;
    let h: HostSpec;
    let blue: EdgeSpec;
    let red: EdgeSpec;
    let agent: TestAgentBgp;
    afterAll(() => lab.teardown());

    beforeAll(async () => {
      sw = await lab.underlaySwitch('sw');
      h = await makeHost(lab, 1);
      await sw.attach(h.ns, 'eth0', [`${h.address}/64`]);
      blue = await makeEdge(lab, 1, {
        hosts: [h],
        rt: `${EDGE_ASN}:100`,
        uplink: (ns) => sw.attach(ns, 'eth0', ['2001:db8:12::101/64']),
      });
      red = await makeEdge(lab, 2, {
        hosts: [h],
        rt: `${EDGE_ASN}:200`,
        uplink: (ns) => sw.attach(ns, 'eth0', ['2001:db8:12::102/64']),
      });
      await programHost(h, blue.address, blue.locator);
      await programHost(h, red.address, red.locator);
      agent = await startAgentBgp(lab, h.ns, {
        name: 'h1',
        asn: HOST_ASN,
        routerId: '198.18.0.1',
        nextHop: h.address,
        locator: h.locator,
        peers: [
          { address: blue.address, asn: EDGE_ASN, locators: [blue.locator] },
          { address: red.address, asn: EDGE_ASN, locators: [red.locator] },
        ],
        tenants: [
          { name: 'blue', routeTarget: `${EDGE_ASN}:100` },
          { name: 'red', routeTarget: `${EDGE_ASN}:200` },
        ],
        fabricLocators: [h.locator],
      });
    });

    it("each FRR installs only its own tenant's routes", async () => {
      await blue.frr.waitSession(h.address);
      await red.frr.waitSession(h.address);
      await agent.bgp.advertise([
        advert(h, 'blue', `${EDGE_ASN}:100`, 'fc00:0:1:e000::', '2001:db8:c1::1/128'),
        advert(h, 'red', `${EDGE_ASN}:200`, 'fc00:0:1:e100::', '2001:db8:d1::1/128'),
      ]);
      await blue.frr.waitRoute('2001:db8:c1::1/128', { sid: 'fc00:0:1:e000::' });
      await red.frr.waitRoute('2001:db8:d1::1/128', { sid: 'fc00:0:1:e100::' });
      // Both FRR instances received both routes (BGP carries everything); import is by route target.
      await waitFor(async () => (await blue.frr.vpnPathCount()) >= 2 && (await red.frr.vpnPathCount()) >= 2, {
        timeoutMs: 10_000,
        what: 'both VPN routes received by both FRR instances',
      });
      // bgpd took both paths in and decided its imports then: each tenant's route is in its own FRR's
      // unicast table (positive control), the other's is not, so zebra never installs it.
      expect(await blue.frr.unicastHas('2001:db8:c1::1/128')).toBe(true);
      expect(await red.frr.unicastHas('2001:db8:d1::1/128')).toBe(true);
      expect(await blue.frr.unicastHas('2001:db8:d1::1/128')).toBe(false);
      expect(await red.frr.unicastHas('2001:db8:c1::1/128')).toBe(false);
      expect(await blue.frr.kernelRoute('2001:db8:d1::1/128')).toBeUndefined();
      expect(await red.frr.kernelRoute('2001:db8:c1::1/128')).toBeUndefined();
    });

    it("the agent learns each edge's prefix for its own tenant only", async () => {
      await waitFor(() => agent.bgp.externalRoutes().length >= 2, {
        timeoutMs: 20_000,
        what: 'two external routes',
      });
      const byTenant = Object.fromEntries(
        agent.bgp
          .externalRoutes()
          .map((r) => [r.tenants.join(), `${formatIpv6(r.prefix.address)}/${r.prefix.length}`]),
      );
      expect(byTenant).toEqual({ blue: blue.extPrefix, red: red.extPrefix });
    });
  },
);

systemSuite('bgp: two hosts behind the same FRR 8.4', { tools: TOOLS, kernel: ['seg6', 'seg6local'] }, () => {
  const lab = createLab();
  let sw: UnderlaySwitch;
  let hosts: HostSpec[];
  let edge: EdgeSpec;
  const agents: TestAgentBgp[] = [];
  const learned: Map<string, ExternalRoute>[] = [new Map(), new Map()];
  afterAll(() => lab.teardown());

  beforeAll(async () => {
    sw = await lab.underlaySwitch('sw');
    hosts = [await makeHost(lab, 1), await makeHost(lab, 2)];
    for (const h of hosts) await sw.attach(h.ns, 'eth0', [`${h.address}/64`]);
    edge = await makeEdge(lab, 1, {
      hosts,
      rt: `${EDGE_ASN}:100`,
      uplink: (ns) => sw.attach(ns, 'eth0', ['2001:db8:12::101/64']),
    });
    for (const [i, h] of hosts.entries()) {
      await programHost(h, edge.address, edge.locator);
      const a = await startAgentBgp(lab, h.ns, {
        name: `h${h.index}`,
        asn: HOST_ASN, // one AS for all hosts: AS-path loop detection drops what the edge reflects
        routerId: `198.18.0.${h.index}`,
        nextHop: h.address,
        locator: h.locator,
        peers: [{ address: edge.address, asn: EDGE_ASN, locators: [edge.locator] }],
        tenants: [{ name: 'blue', routeTarget: `${EDGE_ASN}:100` }],
        fabricLocators: hosts.map((x) => x.locator),
      });
      a.bgp.on('route:add', (r) => learned[i]!.set(r.key, r));
      a.bgp.on('route:delete', (r) => learned[i]!.delete(r.key));
      agents.push(a);
    }
  });

  it("FRR installs both hosts' workloads; neither host installs the other's from BGP", async () => {
    for (const [i, h] of hosts.entries()) {
      await edge.frr.waitSession(h.address);
      await agents[i]!.bgp.advertise([
        advert(h, 'blue', `${EDGE_ASN}:100`, h.sid, `${h.workloadAddress}/128`),
      ]);
    }
    for (const h of hosts) await edge.frr.waitRoute(`${h.workloadAddress}/128`, { sid: h.sid });
    for (const i of [0, 1]) {
      await waitFor(() => learned[i]!.size >= 1, {
        timeoutMs: 20_000,
        what: `host ${i + 1} learned the edge prefix`,
      });
    }
    // FRR reflects each host's route to the other (F9): wait until its Adj-RIB-Out toward each host
    // holds the other's workload (FRR sends as it fills it), then check what each host learned.
    for (const [i, h] of hosts.entries()) {
      const other = hosts[1 - i]!;
      await waitFor(
        async () =>
          (await edge.frr.vtysh(`show bgp ipv6 vpn neighbors ${h.address} advertised-routes`)).includes(
            other.workloadAddress,
          ),
        { timeoutMs: paced(20_000), what: `FRR to reflect host ${2 - i}'s route to host ${i + 1}` },
      );
    }
    for (const i of [0, 1]) {
      const prefixes = [...learned[i]!.values()].map(
        (r) => `${formatIpv6(r.prefix.address)}/${r.prefix.length}`,
      );
      expect(prefixes).toEqual([edge.extPrefix]);
    }
    // GoBGP drops the reflected route for the AS-path loop before the agent sees it (stats: looped and
    // invalid stay 0), and the agent would drop it anyway (fabric locator).
  });
});
