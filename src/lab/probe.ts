/**
 * Probing a running agent-mode lab: pings from an endpoint (a workload's namespace inside its host,
 * or an external client), and the reachability matrix filled in from them.
 */
import type { PlacedWorkload } from './fabric.ts';
import type { RunningLab } from './lab.ts';
import { type Cell, type Endpoint, matrixCells } from './matrix.ts';

/** The lab's endpoints: its workloads where they are now, and its external clients. */
export function labEndpoints(lab: RunningLab, workloads: readonly PlacedWorkload[]): Endpoint[] {
  const out: Endpoint[] = workloads.map((w) => ({
    name: w.name,
    tenant: w.tenant,
    kind: 'workload',
    node: w.host,
    netns: w.netns,
    address: w.address,
  }));
  for (const n of lab.plan.nodes.filter((x) => x.role === 'external-client')) {
    const edge = lab.plan.edges.get(lab.plan.clients.get(n.node) ?? '');
    if (!edge) continue;
    out.push({
      name: n.node,
      tenant: edge.tenant,
      kind: 'external',
      node: n.node,
      address: n.endpoints[0]!.ipv6,
    });
  }
  return out;
}

/** The command that runs `args` as the endpoint (inside a workload's namespace when it is one). */
export function asEndpoint(from: Endpoint, args: readonly string[]): string[] {
  return from.netns ? ['ip', 'netns', 'exec', from.netns, ...args] : [...args];
}

export interface PingResult {
  readonly sent: number;
  readonly received: number;
  readonly output: string;
}

/** `ping -6` from an endpoint; `intervalS` below 0.2 needs root (the lab runs as root). */
export async function ping(
  lab: RunningLab,
  from: Endpoint,
  to: string,
  o: { count?: number; intervalS?: number; waitS?: number } = {},
): Promise<PingResult> {
  const r = await lab.exec(
    from.node,
    asEndpoint(from, [
      'ping',
      '-6',
      '-n',
      '-q',
      '-c',
      String(o.count ?? 3),
      '-i',
      String(o.intervalS ?? 0.2),
      '-W',
      String(o.waitS ?? 1),
      to,
    ]),
  );
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.output);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), output: r.output };
}

/**
 * Fills in the matrix. Cells expected reachable are probed first, each retried until a reply comes or
 * `settleMs` passes (the fabric may still be converging: neighbour discovery, BGP from the edge); only
 * then the cells expected unreachable, once each (retrying those would only hide a leak).
 */
export async function probeMatrix(
  lab: RunningLab,
  endpoints: readonly Endpoint[],
  o: { settleMs?: number } = {},
): Promise<Cell[]> {
  const cells = matrixCells(endpoints);
  const seen = new Map<Cell, boolean>();
  const bySource = (want: boolean) =>
    [...new Set(cells.map((c) => c.from))].map((from) =>
      cells.filter((c) => c.from === from && c.expected === want),
    );
  const deadline = Date.now() + (o.settleMs ?? 30_000);
  // Sources in parallel, each source's cells one after another (a host runs a few pings at once).
  await Promise.all(
    bySource(true).map(async (list) => {
      for (const c of list) {
        for (;;) {
          const r = await ping(lab, c.from, c.to.address);
          if (r.received > 0 || Date.now() >= deadline) {
            seen.set(c, r.received > 0);
            break;
          }
        }
      }
    }),
  );
  await Promise.all(
    bySource(false).map(async (list) => {
      for (const c of list) seen.set(c, (await ping(lab, c.from, c.to.address)).received > 0);
    }),
  );
  return cells.map((c) => ({ ...c, seen: seen.get(c) ?? false }));
}
