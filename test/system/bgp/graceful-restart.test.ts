/**
 * Measurement: does FRR 8.4 act as a graceful-restart helper (RFC 4724) for VPNv6 routes from
 * GoBGP 3.10? gobgpd is killed with SIGKILL (the agent restarts it with `-r`), with and without the GR
 * capability, while FRR's kernel route toward the workload is sampled every 50 ms. The result goes
 * to docs/bgp.md; the assertions pin the measured behaviour so a change shows up.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { parseRd } from '../../../src/bgp/update.ts';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { F3216 } from '../../../src/srv6/sid.ts';
import { startAgentBgp } from '../../harness/gobgp.ts';
import { createLab, runLogDir, systemSuite, waitFor } from '../../harness/index.ts';
import { EDGE_ASN, HOST_ASN, makeEdge, makeHost, programHost } from './topology.ts';

interface Outcome {
  gr: boolean;
  samples: number;
  missingSamples: number;
  missingMs: number;
  staleSeen: boolean;
  recoveredMs: number;
}

const results: Outcome[] = [];

async function measure(gr: boolean): Promise<Outcome> {
  const lab = createLab();
  try {
    const h = await makeHost(lab, 1);
    const e = await makeEdge(lab, 1, {
      hosts: [h],
      rt: `${EDGE_ASN}:100`,
      uplink: (edge) =>
        lab.veth(h.ns, 'eth0', edge, 'eth0', {
          addresses: [`${h.address}/64`],
          peerAddresses: ['2001:db8:12::101/64'],
        }),
    });
    await programHost(h, e.address, e.locator);
    const agent = await startAgentBgp(lab, h.ns, {
      name: `gr-${gr}`,
      asn: HOST_ASN,
      routerId: '198.18.0.1',
      nextHop: h.address,
      peers: [{ address: e.address, asn: EDGE_ASN, locators: [e.locator] }],
      tenants: [{ name: 'blue', routeTarget: `${EDGE_ASN}:100` }],
      gracefulRestart: gr,
      deadIntervalMs: 9_000,
    });
    await agent.bgp.advertise([
      {
        tenant: 'blue',
        rd: parseRd(`${HOST_ASN}:100`),
        prefix: parsePrefix(`${h.workloadAddress}/128`),
        sid: parseIpv6(h.sid),
        behavior: 'End.DT6',
        structure: F3216,
        routeTargets: [parseRd(`${EDGE_ASN}:100`)],
        nextHop: parseIpv6(h.address),
      },
    ]);
    await e.frr.waitRoute(`${h.workloadAddress}/128`, { sid: h.sid });
    let samples = 0;
    let missing = 0;
    let staleSeen = false;
    let lastMissingAt = 0;
    const t0 = Date.now();
    let monitoring = true;
    const monitor = (async () => {
      while (monitoring) {
        samples++;
        if (!(await e.frr.kernelRoute(`${h.workloadAddress}/128`))) {
          missing++;
          lastMissingAt = Date.now();
        }
        if (!staleSeen && samples % 8 === 0) {
          const out = await e.frr.vtysh('show bgp ipv6 vpn json');
          if (/"stale":\s*true/.test(out)) staleSeen = true;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    process.kill(agent.pid()!, 'SIGKILL');
    await waitFor(() => agent.bgp.stats().sidecarRestarts >= 1, {
      timeoutMs: 20_000,
      what: 'gobgpd restarted',
    });
    await e.frr.waitSession(h.address);
    await e.frr.waitRoute(`${h.workloadAddress}/128`, { sid: h.sid });
    const recoveredMs = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 3_000));
    monitoring = false;
    await monitor;
    return {
      gr,
      samples,
      missingSamples: missing,
      missingMs: missing === 0 ? 0 : lastMissingAt - t0,
      staleSeen,
      recoveredMs,
    };
  } finally {
    await lab.teardown();
  }
}

systemSuite(
  'bgp: graceful restart, FRR 8.4 as helper for VPNv6 from GoBGP 3.10',
  { tools: ['ip', 'gobgpd', 'zebra', 'bgpd', 'vtysh'], kernel: ['seg6', 'seg6local'] },
  () => {
    afterAll(() => {
      writeFileSync(`${runLogDir()}/graceful-restart.json`, JSON.stringify(results, null, 2));
    });

    it('without GR: FRR drops the route while gobgpd restarts', async () => {
      const o = await measure(false);
      results.push(o);
      console.log(JSON.stringify(o));
      expect(o.staleSeen).toBe(false);
      expect(o.missingSamples).toBeGreaterThan(0);
    });

    it('with GR: FRR keeps the route (stale) until gobgpd is back', async () => {
      const o = await measure(true);
      results.push(o);
      console.log(JSON.stringify(o));
      expect(o.staleSeen).toBe(true);
      expect(o.missingSamples).toBe(0);
    });
  },
);
