/**
 * A stand-alone process running the agent's BGP component, for tests that kill the agent with
 * SIGKILL: `node agent-process.ts CONFIG.json`. It advertises the configured routes, writes what it
 * learned and its counters to `<runDir>/state.json` on every change, prints READY once started,
 * and stops cleanly (terminating its gobgpd unless `keepSidecarOnStop`) on SIGTERM.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import pino from 'pino';
import { type BgpInit, bgp, type VpnAdvert } from '../../../src/bgp/index.ts';
import { parseRd } from '../../../src/bgp/update.ts';
import { formatIpv6, formatPrefix, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { F3216 } from '../../../src/srv6/sid.ts';

export interface AgentProcessConfig {
  readonly init: BgpInit;
  readonly adverts: readonly { tenant: string; rd: string; prefix: string; sid: string; rt: string }[];
}

const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as AgentProcessConfig;
const logger = pino({ level: 'info' });
const b = bgp(cfg.init)({ logger });
const runDir = (cfg.init.sidecar as { runDir: string }).runDir;

let timer: NodeJS.Timeout | undefined;
function writeState(): void {
  clearTimeout(timer);
  timer = setTimeout(() => {
    const state = {
      pid: process.pid,
      sidecarPid: b.sidecar.pid,
      stats: b.stats(),
      learned: b.externalRoutes().map((r) => ({
        prefix: formatPrefix(r.prefix),
        sid: formatIpv6(r.sid),
        tenants: r.tenants,
        peer: r.peer,
      })),
    };
    writeFileSync(`${runDir}/state.json.tmp`, JSON.stringify(state));
    renameSync(`${runDir}/state.json.tmp`, `${runDir}/state.json`);
  }, 20);
}
for (const ev of ['route:add', 'route:delete', 'route:invalid', 'peer:state', 'sidecar:restarted'] as const) {
  b.on(ev, writeState);
}

const adverts: VpnAdvert[] = cfg.adverts.map((a) => ({
  tenant: a.tenant,
  rd: parseRd(a.rd),
  prefix: parsePrefix(a.prefix),
  sid: parseIpv6(a.sid),
  behavior: 'End.DT6',
  structure: F3216,
  routeTargets: [parseRd(a.rt)],
  nextHop: parseIpv6(cfg.init.nextHop),
}));
await b.setAdverts(adverts);
await b.start();
writeState();
process.stdout.write('READY\n');

process.on('SIGTERM', () => {
  void b.stop().then(() => process.exit(0));
});
setInterval(() => {}, 60_000);
