/**
 * `ip -6 monitor route` that has been seen listening. A negative check on a monitor's log ("no route was
 * deleted") passes without checking anything when the monitor had not subscribed yet; so before it is
 * handed over, a probe route (an unreachable 2001:db8 prefix in a table of its own: it carries nothing)
 * is added and deleted where it listens, and both events must appear in its log. `events()` leaves the
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
  /** The monitor's process, when it runs on this machine (not for one in a VM). */
  readonly daemon?: Daemon;
  /** The route events seen since the monitor was proven to listen (the probe's left out). */
  events(): string[];
  stop(): Promise<void>;
}

/** Where a monitor runs: its log's lines and `ip` there. */
export interface MonitorPlace {
  lines(): string[] | Promise<string[]>;
  ip(...args: string[]): Promise<unknown>;
}

const isProbe = (l: string) => l.includes(PROBE.split('/')[0]!);

/**
 * Proves a started monitor listens (the probe route seen added, then deleted); returns how many lines
 * its log had then, where its own events start. `timeoutMs` per step (10 s; more where each look at
 * the log is slow, as in a VM).
 */
export async function proveMonitorListens(
  place: MonitorPlace,
  name: string,
  timeoutMs = 10_000,
): Promise<number> {
  let lines: string[] = [];
  const look = async () => {
    lines = await place.lines();
    return lines;
  };
  // Added until seen: the first add may precede the subscription.
  await waitFor(
    async () => {
      await place.ip('-6', 'route', 'replace', 'unreachable', PROBE, 'table', PROBE_TABLE);
      return (await look()).some((l) => isProbe(l) && !l.startsWith('Deleted'));
    },
    { timeoutMs, intervalMs: 100, what: `${name}: ip monitor to see a probe route (subscribed)` },
  );
  await place.ip('-6', 'route', 'del', 'unreachable', PROBE, 'table', PROBE_TABLE);
  await waitFor(async () => (await look()).some((l) => isProbe(l) && l.startsWith('Deleted')), {
    timeoutMs,
    what: `${name}: ip monitor to see the probe route deleted`,
  });
  return lines.length;
}

/** A monitor's events after line `seen`, the probe's left out. */
export function monitorEvents(lines: readonly string[], seen: number): string[] {
  return lines.slice(seen).filter((l) => !isProbe(l));
}

const logLines = (text: string) => text.split('\n').filter((l) => l.trim());

/** Splits a monitor's log into its non-empty lines. */
export { logLines as monitorLines };

export async function routeMonitor(lab: Lab, ns: Netns, name: string): Promise<RouteMonitor> {
  const daemon = await lab.daemon({ name, command: 'ip', args: ['-6', 'monitor', 'route'], netns: ns });
  const lines = () => logLines(readFileSync(daemon.logFile, 'utf8'));
  const seen = await proveMonitorListens({ lines, ip: (...a) => ns.ip(...a) }, name);
  return {
    daemon,
    events: () => monitorEvents(lines(), seen),
    stop: () => daemon.stop(),
  };
}
