/** Read-only views of a running agent: status, hosts, workloads, routes, path, bgp peers; and drain. */
import { Command } from 'commander';
import { AgentClient, DEFAULT_SOCKET } from '../../agent/client.ts';
import { checkDurationMs, DRAIN_QUIET_MAX_MS, DRAIN_WAIT_MAX_MS } from '../../agent/errors.ts';
import { plain, printJson, printTable } from '../output.ts';

interface Common {
  socket: string;
  json?: boolean;
}

function withCommon(cmd: Command): Command {
  return cmd
    .option('--json', 'machine-readable output')
    .option('--socket <path>', 'agent API socket', DEFAULT_SOCKET);
}

async function call<T>(socket: string, fn: (c: AgentClient) => Promise<T>): Promise<T> {
  const client = new AgentClient(socket);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** Rows for what the data plane lacks: the count, then one reason a row. */
function leftOutRows(reasons: readonly string[], total: number): string[][] {
  if (total === 0) return [['left out', 'nothing']];
  const more =
    total > reasons.length ? [['', `... and ${total - reasons.length} more (in the agent's log)`]] : [];
  return [['left out', String(total)], ...reasons.map((r) => ['', r]), ...more];
}

export function inspectCommands(): Command[] {
  const status = withCommon(new Command('status').description("this host's agent at a glance")).action(
    async (o: Common) => {
      const s = await call(o.socket, (c) => c.call('getStatus', {}));
      if (o.json) return printJson(plain({ ...s, kernel: s.kernel ? plain(s.kernel) : undefined }));
      // An open fabric says so first, on stderr too, so that nobody reads past it.
      if (s.membershipWarning) process.stderr.write(`warning: ${s.membershipWarning}\n`);
      printTable(
        ['KEY', 'VALUE'],
        [
          ['host', s.host],
          ['host id', s.hostId],
          ['membership', s.membership],
          ['ready', s.ready ? 'true' : `false: ${s.notReady}`],
          ['version', `${s.version} (protocol ${s.protocol})`],
          ['underlay', s.underlay],
          ['locator', s.locator],
          ['hosts / workloads / local', `${s.hosts} / ${s.workloads} / ${s.localWorkloads}`],
          ['routes', String(s.routes)],
          [
            'last reconcile',
            `${new Date(Number(s.lastReconcileUnixMs)).toISOString()} (${s.lastReconcileMs.toFixed(1)} ms)`,
          ],
          [
            'data plane',
            s.dataplaneBackend ? `${s.dataplaneBackend} (${s.dataplaneBackendWhy})` : 'not open',
          ],
          ...leftOutRows(s.leftOut, s.leftOutTotal),
          ['gobgp api', s.gobgpApi || 'not configured'],
          [
            'kernel',
            `${s.kernel?.release} vrf=${s.kernel?.vrf} seg6=${s.kernel?.seg6} seg6local=${s.kernel?.seg6local} hmac=${s.kernel?.hmac} nft-srh=${s.kernel?.nftSrh}`,
          ],
        ],
      );
    },
  );
  const hosts = withCommon(new Command('hosts').description('hosts of the fabric')).action(
    async (o: Common) => {
      const r = await call(o.socket, (c) => c.call('listHosts', {}));
      if (o.json) return printJson(r.hosts.map(plain));
      printTable(
        ['HOST', 'STATE', 'UNDERLAY', 'LOCATOR', 'SIDS'],
        r.hosts.map((h) => [h.name, h.state, h.underlay, h.locator, String(h.sids.length)]),
      );
    },
  );
  const workloads = withCommon(new Command('workloads').description('workloads of the fabric')).action(
    async (o: Common) => {
      const r = await call(o.socket, (c) => c.call('listWorkloads', {}));
      if (o.json) return printJson(r.workloads.map(plain));
      printTable(
        ['WORKLOAD', 'TENANT', 'ADDRESS', 'HOST', 'DELIVERY SID', 'NOTE'],
        r.workloads.map((w) => [
          w.identity,
          w.tenant,
          w.address,
          w.host,
          w.deliverySid,
          w.sticky ? '' : 'no identity: address not sticky',
        ]),
      );
    },
  );
  const routes = withCommon(new Command('routes').description('routes this agent installs')).action(
    async (o: Common) => {
      const r = await call(o.socket, (c) => c.call('listRoutes', {}));
      if (o.json) return printJson(r.routes.map(plain));
      printTable(
        ['TABLE', 'DESTINATION', 'ACTION', 'WHY'],
        r.routes.map((x) => [
          `${x.table} ${x.tableName}`,
          x.source ? `${x.destination} from ${x.source}` : x.destination,
          x.action,
          x.reason,
        ]),
      );
    },
  );
  const path = withCommon(
    new Command('path')
      .description('the segment list from a workload to an address, and why')
      .argument('<from>', 'workload identity or address')
      .argument('<to>', 'address or workload identity'),
  ).action(async (from: string, to: string, o: Common) => {
    const r = await call(o.socket, (c) => c.call('explainPath', { from, to }));
    if (o.json) return printJson(plain(r));
    process.stdout.write(
      `segments: [ ${r.segments.join(' ')} ] (${r.mode}, table ${r.table})\nwhy: ${r.reason}\n`,
    );
    for (const step of r.steps) process.stdout.write(`  - ${step}\n`);
  });
  const bgp = new Command('bgp').description('BGP toward the edge');
  bgp.addCommand(
    withCommon(new Command('peers').description('BGP sessions of the sidecar')).action(async (o: Common) => {
      const r = await call(o.socket, (c) => c.call('listBgpPeers', {}));
      if (o.json) return printJson(r.peers.map(plain));
      printTable(
        ['PEER', 'AS', 'STATE', 'RECEIVED', 'ACCEPTED', 'ADVERTISED'],
        r.peers.map((p) => [
          p.address,
          String(p.asn),
          p.state,
          String(p.received),
          String(p.accepted),
          String(p.advertised),
        ]),
      );
    }),
  );
  const drain = new Command('drain')
    .description(
      'leave the fabric: BGP paths re-advertised with GRACEFUL_SHUTDOWN and a leaving record, wait until ' +
        'traffic to this host stops (or --wait runs out), then withdraw everything and clean up',
    )
    .option(
      '--wait <ms>',
      `the longest wait for traffic to move away (at most ${DRAIN_WAIT_MAX_MS} ms)`,
      '10000',
    )
    .option(
      '--quiet <ms>',
      `how long this host's SID counters must stand still before it withdraws (at most ${DRAIN_QUIET_MAX_MS} ms)`,
      '2000',
    )
    .option('--json', 'machine-readable output')
    .option('--socket <path>', 'agent API socket', DEFAULT_SOCKET)
    .action(async (o: { wait: string; quiet: string; socket: string; json?: boolean }) => {
      // The agent checks the same limits; checked here too so that a typo fails before the call.
      const wait = /^\d+$/.test(o.wait) ? Number(o.wait) : Number.NaN;
      checkDurationMs(wait, DRAIN_WAIT_MAX_MS, '--wait', o.wait);
      const quiet = /^\d+$/.test(o.quiet) ? Number(o.quiet) : Number.NaN;
      checkDurationMs(quiet, DRAIN_QUIET_MAX_MS, '--quiet', o.quiet);
      const r = await call(o.socket, (c) =>
        c.call('drain', { waitMs: wait, quietMs: quiet }, wait + 120_000),
      );
      if (o.json) return printJson(plain(r));
      process.stdout.write(
        `re-advertised ${r.gracefulShutdownPaths} BGP paths with graceful-shutdown; waited ${r.waitedMs} ms ` +
          `(${r.trafficStopped ? 'traffic stopped' : 'the wait ran out before traffic stood still: see the agent log'}); ` +
          `withdrew ${r.withdrawn} workloads, removed ${r.removed} kernel objects\n`,
      );
    });
  return [status, hosts, workloads, routes, path, bgp, drain];
}
