/**
 * `ip -6 monitor route` that has been seen listening. A negative check on a monitor's log ("no route was
 * deleted") passes without checking anything when the monitor had not subscribed yet; so before it is
 * handed over, a probe route (an unreachable 2001:db8 prefix in a table of its own: it carries nothing)
 * is added and deleted in the namespace, and both events must appear in its log. `events()` leaves the
 * probe's own lines out.
 */
import { readFileSync } from 'node:fs';
import type { Daemon } from './daemon.ts';
import { waitFor } from './exec.ts';
import type { Lab } from './lab.ts';
import type { Netns } from './netns.ts';

const PROBE = '2001:db8:ffff:fe00::/64';
const PROBE_TABLE = '4242';

export interface RouteMonitor {
  readonly daemon: Daemon;
  /** The route events seen since the monitor was proven to listen (the probe's left out). */
  events(): string[];
  stop(): Promise<void>;
}

export async function routeMonitor(lab: Lab, ns: Netns, name: string): Promise<RouteMonitor> {
  const daemon = await lab.daemon({ name, command: 'ip', args: ['-6', 'monitor', 'route'], netns: ns });
  const lines = () =>
    readFileSync(daemon.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.trim());
  const probe = (l: string) => l.includes(PROBE.split('/')[0]!);
  // Added until seen: the first add may precede the subscription.
  await waitFor(
    async () => {
      await ns.ip('-6', 'route', 'replace', 'unreachable', PROBE, 'table', PROBE_TABLE);
      return lines().some((l) => probe(l) && !l.startsWith('Deleted'));
    },
    { timeoutMs: 10_000, intervalMs: 100, what: `${name}: ip monitor to see a probe route (subscribed)` },
  );
  await ns.ip('-6', 'route', 'del', 'unreachable', PROBE, 'table', PROBE_TABLE);
  await waitFor(async () => lines().some((l) => probe(l) && l.startsWith('Deleted')), {
    timeoutMs: 10_000,
    what: `${name}: ip monitor to see the probe route deleted`,
  });
  const seen = lines().length;
  return {
    daemon,
    events: () =>
      lines()
        .slice(seen)
        .filter((l) => !probe(l)),
    stop: () => daemon.stop(),
  };
}
