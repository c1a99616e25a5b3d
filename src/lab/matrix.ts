/**
 * The reachability matrix of a lab: every endpoint (workloads, external clients) against every other,
 * what the tenancy says should happen (same tenant: reachable; other tenant: not) against what a ping
 * saw. Pure: the probing is `probe.ts`.
 */
import { renderTable } from '../format/table.ts';

export interface Endpoint {
  /** Workload identity or external client node name. */
  readonly name: string;
  readonly tenant: string;
  readonly kind: 'workload' | 'external';
  /** The lab node the endpoint's commands run in (a workload's host, or the client itself). */
  readonly node: string;
  /** A workload's namespace inside its host. */
  readonly netns?: string;
  readonly address: string;
}

export interface Cell {
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly expected: boolean;
  /** Undefined until probed. */
  readonly seen?: boolean;
}

/** Tenancy is the whole rule: an endpoint reaches exactly the endpoints of its own tenant. */
export function expectedReach(from: Endpoint, to: Endpoint): boolean {
  return from.tenant === to.tenant;
}

/** Every ordered pair of distinct endpoints, except external client to external client (not ours). */
export function matrixCells(endpoints: readonly Endpoint[]): Cell[] {
  const cells: Cell[] = [];
  for (const from of endpoints)
    for (const to of endpoints) {
      if (from === to || (from.kind === 'external' && to.kind === 'external')) continue;
      cells.push({ from, to, expected: expectedReach(from, to) });
    }
  return cells;
}

export function mismatches(cells: readonly Cell[]): Cell[] {
  return cells.filter((c) => c.seen !== c.expected);
}

const mark = (b: boolean | undefined): string => (b === undefined ? '?' : b ? 'ok' : '--');

/**
 * A grid: rows are sources, columns destinations; a cell shows what was seen (`ok` reached, `--`
 * not), and `!` after it where that differs from what was expected.
 */
export function renderMatrix(endpoints: readonly Endpoint[], cells: readonly Cell[]): string {
  const byPair = new Map(cells.map((c) => [`${c.from.name}\u0000${c.to.name}`, c]));
  const header = ['FROM \\ TO', ...endpoints.map((e) => e.name)];
  const rows = endpoints.map((from) => [
    `${from.name} (${from.tenant})`,
    ...endpoints.map((to) => {
      const c = byPair.get(`${from.name}\u0000${to.name}`);
      if (!c) return '';
      return c.seen === c.expected ? mark(c.seen) : `${mark(c.seen)}!`;
    }),
  ]);
  const bad = mismatches(cells);
  const summary =
    bad.length === 0
      ? `all ${cells.length} cells as expected (ok: reached, --: not reached)`
      : `${bad.length} of ${cells.length} cells differ from the expected (marked !):\n${bad
          .map(
            (c) =>
              `  ${c.from.name} -> ${c.to.name} (${c.to.address}): expected ${c.expected ? 'reachable' : 'unreachable'}, ${c.seen === undefined ? 'not probed' : c.seen ? 'reached' : 'not reached'}`,
          )
          .join('\n')}`;
  return `${renderTable(header, rows)}\n${summary}\n`;
}

/** The matrix as JSON (for --json and scripts). */
export function matrixJson(cells: readonly Cell[]): {
  from: string;
  to: string;
  address: string;
  expected: boolean;
  seen: boolean | null;
}[] {
  return cells.map((c) => ({
    from: c.from.name,
    to: c.to.name,
    address: c.to.address,
    expected: c.expected,
    seen: c.seen ?? null,
  }));
}
