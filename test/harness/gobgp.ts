/**
 * GoBGP helpers for system tests and benchmarks: a bare gobgpd in a lab namespace with its API on a
 * unix socket (reachable from the test process across namespaces), a typed client to it, and the
 * agent's BGP component wired to a managed sidecar inside a namespace.
 */
import { mkdirSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { GobgpClient } from '../../src/bgp/client.ts';
import { type Bgp, type BgpInit, bgp } from '../../src/bgp/index.ts';
import type { Daemon } from './daemon.ts';
import { sh, waitFor } from './exec.ts';
import type { Lab } from './lab.ts';
import type { Netns } from './netns.ts';
import { runLogDir } from './run.ts';

export const GOBGPD = '/usr/bin/gobgpd';

export interface BareGobgpd {
  readonly daemon: Daemon;
  readonly client: GobgpClient;
  readonly target: string;
}

/** A gobgpd without configuration, started over the API (StartBgp) with `asn`/`routerId`. */
export async function startBareGobgpd(
  lab: Lab,
  opts: { name: string; netns: Netns; asn: number; routerId: string; listenPort?: number },
): Promise<BareGobgpd> {
  const dir = `${runLogDir()}/gobgpd-${opts.name}`;
  mkdirSync(dir, { recursive: true });
  const socket = `${dir}/api.sock`;
  const target = `unix://${socket}`;
  const daemon = await lab.daemon({
    name: `gobgpd-${opts.name}`,
    command: GOBGPD,
    args: ['--api-hosts', target, '--pprof-disable', '--log-plain'],
    netns: opts.netns,
    ready: async () => (await sh('test', ['-S', socket], { allowFail: true })).code === 0,
  });
  const client = new GobgpClient({ target });
  lab.onTeardown(() => client.close());
  await client.connect();
  await client.unary('startBgp', {
    global: { asn: opts.asn, routerId: opts.routerId, listenPort: opts.listenPort ?? 179 },
  });
  return { daemon, client, target };
}

/** A logger for tests: warnings and errors to stderr, or everything at SEGMESH_TEST_LOG=debug. */
export function testLogger(name: string): Logger {
  return pino({ name, level: process.env.SEGMESH_TEST_LOG ?? 'warn' }, pino.destination(2));
}

export interface TestAgentBgp {
  readonly bgp: Bgp;
  readonly runDir: string;
  /** PID of the sidecar gobgpd. */
  pid(): number | undefined;
}

/**
 * The BGP component with a managed gobgpd sidecar running inside `netns`. The lab stops the
 * component and terminates the sidecar at teardown.
 */
export async function startAgentBgp(
  lab: Lab,
  netns: Netns,
  init: Omit<BgpInit, 'sidecar'> & { name: string },
): Promise<TestAgentBgp> {
  const runDir = `${runLogDir()}/agent-${init.name}`;
  const b = bgp({
    ...init,
    sidecar: {
      mode: 'managed',
      runDir,
      wrapper: ['ip', 'netns', 'exec', netns.name],
      backoff: { initialMs: 100 },
    },
    keepSidecarOnStop: false,
  })({ logger: testLogger(`bgp-${init.name}`) });
  lab.onTeardown(() => b.stop());
  await b.start();
  return { bgp: b, runDir, pid: () => b.sidecar.pid };
}

/** Waits until gobgpd reports the session with `address` Established. */
export async function waitGobgpSession(
  client: GobgpClient,
  address: string,
  timeoutMs = 30_000,
): Promise<void> {
  await waitFor(
    async () => {
      const peers = await client.list('listPeer', { address });
      return peers.some((p) => p.peer?.state?.sessionState === 6);
    },
    { timeoutMs, what: `gobgpd session with ${address} Established` },
  );
}
