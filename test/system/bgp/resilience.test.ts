/**
 * Acceptance, resilience: the agent killed with SIGKILL and restarted (gobgpd keeps running, FRR never
 * loses the routes), gobgpd killed (the agent restarts it and FRR has the routes again), FRR
 * restarted (routes come back both ways). Also measures graceful restart (docs/bgp.md).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BgpInit } from '../../../src/bgp/index.ts';
import type { Daemon } from '../../harness/daemon.ts';
import { createLab, paced, runLogDir, systemSuite, waitFor } from '../../harness/index.ts';
import { freshLogPath } from '../../harness/run.ts';
import type { AgentProcessConfig } from './agent-process.ts';
import {
  EDGE_ASN,
  type EdgeSpec,
  HOST_ASN,
  type HostSpec,
  makeEdge,
  makeHost,
  programHost,
} from './topology.ts';

const NODE = `${process.cwd()}/node_modules/.bin/node`;
const SCRIPT = `${process.cwd()}/test/system/bgp/agent-process.ts`;

interface State {
  readonly sidecarPid: number;
  readonly stats: { sidecarRestarts: number; established: string[] };
  readonly learned: { prefix: string; sid: string }[];
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

systemSuite(
  'bgp: resilience of the sidecar, the agent and the edge',
  { tools: ['ip', 'gobgpd', 'zebra', 'bgpd', 'vtysh'], kernel: ['seg6', 'seg6local'] },
  () => {
    const lab = createLab();
    let h: HostSpec;
    let e: EdgeSpec;
    let runDir: string;
    let configFile: string;
    let agent: Daemon;
    let agents = 0;
    afterAll(() => lab.teardown());

    const state = (): State => JSON.parse(readFileSync(`${runDir}/state.json`, 'utf8')) as State;
    const gobgpdPid = () => Number(readFileSync(`${runDir}/gobgpd.pid`, 'utf8'));

    async function startAgent(
      extra: Partial<BgpInit>,
      adverts: AgentProcessConfig['adverts'],
    ): Promise<Daemon> {
      const init: BgpInit = {
        asn: HOST_ASN,
        routerId: '198.18.0.1',
        nextHop: h.address,
        locator: h.locator,
        peers: [{ address: e.address, asn: EDGE_ASN, locators: [e.locator] }],
        tenants: [{ name: 'blue', routeTarget: `${EDGE_ASN}:100` }],
        fabricLocators: [h.locator],
        sidecar: {
          mode: 'managed',
          runDir,
          wrapper: ['ip', 'netns', 'exec', h.ns.name],
          backoff: { initialMs: 100 },
          checkIntervalMs: 100,
        },
        keepSidecarOnStop: false,
        ...extra,
      };
      writeFileSync(configFile, JSON.stringify({ init, adverts } satisfies AgentProcessConfig));
      const n = ++agents;
      // A log name no earlier file of this run used: readiness is read from it.
      const name = basename(freshLogPath(`agent-h1-${n}`, '.log'), '.log');
      const d = await lab.daemon({
        name,
        command: NODE,
        args: [SCRIPT, configFile],
        ready: () => {
          try {
            return readFileSync(`${runLogDir()}/${name}.log`, 'utf8').includes('READY');
          } catch {
            return false;
          }
        },
        // A fresh node importing the BGP component: seconds on the host, half a minute under TCG.
        readyTimeoutMs: paced(30_000),
      });
      return d;
    }

    const w1 = () => ({
      tenant: 'blue',
      rd: `${HOST_ASN}:100`,
      prefix: `${h.workloadAddress}/128`,
      sid: h.sid,
      rt: `${EDGE_ASN}:100`,
    });
    const extra = (i: number) => ({
      tenant: 'blue',
      rd: `${HOST_ASN}:100`,
      prefix: `2001:db8:c1::${i}/128`,
      sid: `fc00:0:1:e00${i}::`,
      rt: `${EDGE_ASN}:100`,
    });

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
      runDir = `${runLogDir()}/agent-h1`;
      configFile = `${runLogDir()}/agent-h1.json`;
      lab.onTeardown(() => {
        try {
          const pid = gobgpdPid();
          if (alive(pid)) process.kill(pid, 'SIGKILL');
        } catch {
          // never started
        }
      });
      agent = await startAgent({}, [w1(), extra(5)]);
      await e.frr.waitSession(h.address);
      await e.frr.waitRoute(`${h.workloadAddress}/128`, { sid: h.sid });
      await e.frr.waitRoute('2001:db8:c1::5/128', { sid: 'fc00:0:1:e005::' });
    }, paced(120_000));

    it(
      'agent killed with SIGKILL and restarted: gobgpd keeps running, FRR never loses the routes',
      async () => {
        const pid = gobgpdPid();
        const before = await e.frr.vtyshJson<Record<string, { connectionsEstablished?: number }>>(
          `show bgp neighbors ${h.address} json`,
        );
        let samples = 0;
        let missing = 0;
        let monitoring = true;
        const monitor = (async () => {
          while (monitoring) {
            samples++;
            if (!(await e.frr.kernelRoute(`${h.workloadAddress}/128`))) missing++;
            await new Promise((r) => setTimeout(r, 50));
          }
        })();
        agent.kill('SIGKILL');
        await agent.exited;
        await new Promise((r) => setTimeout(r, 1_000));
        expect(alive(pid)).toBe(true);
        // The restarted agent wants w1 and .6 instead of .5: it must adopt gobgpd and diff, not re-add blindly.
        agent = await startAgent({}, [w1(), extra(6)]);
        expect(readFileSync(agent.logFile, 'utf8')).toContain('adopted running gobgpd');
        expect(gobgpdPid()).toBe(pid);
        await e.frr.waitRoute('2001:db8:c1::6/128', { sid: 'fc00:0:1:e006::' });
        await e.frr.waitRoute('2001:db8:c1::5/128', { absent: true });
        await new Promise((r) => setTimeout(r, 500));
        monitoring = false;
        await monitor;
        expect(samples).toBeGreaterThan(10);
        expect(missing).toBe(0);
        const after = await e.frr.vtyshJson<Record<string, { connectionsEstablished?: number }>>(
          `show bgp neighbors ${h.address} json`,
        );
        // The BGP session was never reset.
        expect(after[h.address]?.connectionsEstablished).toBe(before[h.address]?.connectionsEstablished);
      },
      paced(120_000), // starts an agent process (startAgent)
    );

    it('gobgpd killed: the agent restarts it and FRR has the routes again', async () => {
      const pid = gobgpdPid();
      process.kill(pid, 'SIGKILL');
      await waitFor(() => gobgpdPid() !== pid && alive(gobgpdPid()), {
        timeoutMs: 10_000,
        what: 'gobgpd restarted',
      });
      await e.frr.waitSession(h.address);
      await e.frr.waitRoute(`${h.workloadAddress}/128`, { sid: h.sid });
      await e.frr.waitRoute('2001:db8:c1::6/128', { sid: 'fc00:0:1:e006::' });
      await waitFor(() => state().stats.sidecarRestarts >= 1, { timeoutMs: 5_000, what: 'restart counted' });
      await waitFor(() => state().learned.some((l) => l.prefix === e.extPrefix), {
        timeoutMs: 20_000,
        what: "FRR's prefix learned again",
      });
    });

    it('FRR restarted: routes come back both ways', async () => {
      await e.frr.restart();
      await e.frr.waitSession(h.address);
      await e.frr.waitRoute(`${h.workloadAddress}/128`, { sid: h.sid });
      await waitFor(() => state().learned.some((l) => l.prefix === e.extPrefix && l.sid === e.frr.sid), {
        timeoutMs: 30_000,
        what: `FRR's prefix learned again with SID ${e.frr.sid}`,
      });
    });
  },
);
