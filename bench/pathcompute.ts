/**
 * Path computation at scale: a fabric of 1,000 hosts, 100,000 workloads and 10 policies.
 * - full: the complete set of objects one host materialises (its size and a checksum are printed);
 * - move: median and p99 over 1,000 random workload moves applied incrementally;
 * - anchor: a plain pass building one route object per workload, no policy (same run, interleaved).
 * Results are verified before their times count.
 */
import { formatIpv6, parseIpv6, parsePrefix } from '../src/srv6/address.ts';
import { buildFabricView, type FabricInput, type FabricView } from '../src/srv6/fabric.ts';
import { hash53 } from '../src/srv6/hash.ts';
import { computeHostPlan, HostPathComputer, type PlannedObject, routeKey } from '../src/srv6/pathcompute.ts';
import { median, prng, quantile, round } from './_stats.ts';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const WORKLOADS = Number(process.env.BENCH_WORKLOADS ?? 100_000);
const TENANTS = 10;
const POLICIES = 10;
const REPS = 5;
const MOVES = 1000;

function fabric(): FabricInput {
  const random = prng(42);
  const hosts = Array.from({ length: HOSTS }, (_, i) => ({
    name: `host-${i}`,
    underlay: parseIpv6(`2001:db8:100::${(i + 1).toString(16)}`),
  }));
  const tenants = Array.from({ length: TENANTS }, (_, i) => ({
    name: `tenant-${i}`,
    id: 100 + i,
    prefixes: [parsePrefix(`2001:db8:${(0x1000 + i).toString(16)}::/64`)],
  }));
  // Two functions per policy: an SR-aware one and an SR-unaware firewall behind it.
  const networkFunctions = Array.from({ length: POLICIES * 2 }, (_, i) => ({
    name: `nf-${i}`,
    tenant: `tenant-${Math.floor(i / 2) % TENANTS}`,
    host: `host-${(i * 37) % HOSTS}`,
    mode: i % 2 === 0 ? ('sr-aware' as const) : ('sr-unaware' as const),
    ...(i % 2 === 1 ? { address: parseIpv6(`fc00:99::${i}`) } : {}),
  }));
  const workloads = Array.from({ length: WORKLOADS }, (_, i) => ({
    id: `ns-${i % 97}/workload-${i}`,
    tenant: `tenant-${i % TENANTS}`,
    host: `host-${Math.floor(random() * HOSTS)}`,
    labels: { app: `app-${i % 100}` },
  }));
  // Each policy steers the traffic toward one app (1% of its tenant's workloads) through its two functions.
  const policies = Array.from({ length: POLICIES }, (_, i) => ({
    name: `policy-${i}`,
    tenant: `tenant-${i % TENANTS}`,
    to: { labels: { app: `app-${i % TENANTS}` } },
    via: [`nf-${2 * i}`, `nf-${2 * i + 1}`],
  }));
  return { locatorBlock: parsePrefix('fc00:0::/32'), hosts, tenants, networkFunctions, workloads, policies };
}

/** The anchor: one route object per workload, no policy, no tenant tables beyond one. */
function anchor(view: FabricView, host: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const w of view.workloads.values()) {
    const prefix = { address: w.address, length: 128 };
    const sid = view.hosts.get(w.host)!.sids.tenantDelivery.get(w.tenant)!.sid;
    const scope = view.tenants.get(w.tenant)!.scopes.egress;
    out.set(
      routeKey(scope, prefix),
      w.host === host
        ? { kind: 'deliver', scope, prefix, link: w.link }
        : { kind: 'encap', scope, prefix, segments: [sid] },
    );
  }
  return out;
}

function checksum(objects: ReadonlyMap<string, PlannedObject>): string {
  let h = 0;
  for (const key of [...objects.keys()].sort()) {
    const o = objects.get(key)!;
    const detail = o.kind === 'encap' ? o.segments.map(formatIpv6).join(',') : o.kind;
    h = hash53(`${h}|${key}|${detail}`);
  }
  return h.toString(16);
}

function verifyFull(view: FabricView, host: string, objects: ReadonlyMap<string, PlannedObject>): void {
  // Every workload of every tenant is reachable from this host's egress tables, by exactly one route
  // (delivery or encapsulation), and every tenant table ends in unreachable.
  for (const w of view.workloads.values()) {
    const key = routeKey(view.tenants.get(w.tenant)!.scopes.egress, { address: w.address, length: 128 });
    const r = objects.get(key);
    if (!r || (r.kind !== 'encap' && r.kind !== 'deliver')) throw new Error(`no route to ${w.id} on ${host}`);
  }
  for (const t of view.tenants.values()) {
    if (objects.get(routeKey(t.scopes.egress, { address: 0n, length: 0 }))?.kind !== 'unreachable') {
      throw new Error(`tenant ${t.name} egress table does not end in unreachable`);
    }
  }
}

const t0 = performance.now();
const input = fabric();
const view = buildFabricView(input);
const buildMs = performance.now() - t0;
const host = 'host-0';

const fullMs: number[] = [];
const anchorMs: number[] = [];
let objects: ReadonlyMap<string, PlannedObject> = new Map();
let anchorSize = 0;
for (let rep = 0; rep < REPS + 1; rep++) {
  // Interleaved: anchor, then full, each repetition; the first repetition warms the JIT and is dropped.
  globalThis.gc?.();
  let s = performance.now();
  const a = anchor(view, host);
  const ta = performance.now() - s;
  if (a.size !== view.workloads.size)
    throw new Error(`anchor built ${a.size} routes for ${view.workloads.size} workloads`);
  anchorSize = a.size;
  globalThis.gc?.();
  s = performance.now();
  const plan = computeHostPlan(view, host);
  const tf = performance.now() - s;
  verifyFull(view, host, plan.objects);
  objects = plan.objects;
  if (rep > 0) {
    anchorMs.push(ta);
    fullMs.push(tf);
  }
}

// Moves: random workloads to random hosts, applied incrementally; verified against a full recomputation.
const computer = new HostPathComputer(buildFabricView(input), host);
const random = prng(7);
const ids = [...view.workloads.keys()];
const placement = new Map(input.workloads!.map((w) => [w.id, w.host]));
const moveMs: number[] = [];
let touched = 0;
for (let i = 0; i < MOVES; i++) {
  const id = ids[Math.floor(random() * ids.length)]!;
  // Every tenth move lands on the measured host, the case that changes links, rules and filters too.
  const target = i % 10 === 0 ? host : `host-${Math.floor(random() * HOSTS)}`;
  placement.set(id, target);
  const s = performance.now();
  const delta = computer.moveWorkload(id, target);
  moveMs.push(performance.now() - s);
  touched += delta.added.length + delta.changed.length + delta.removed.length;
}
const moved = buildFabricView({
  ...input,
  workloads: input.workloads!.map((w) => ({ ...w, host: placement.get(w.id)! })),
});
const expected = computeHostPlan(moved, host).objects;
if (expected.size !== computer.objects.size || checksum(expected) !== checksum(computer.objects)) {
  throw new Error('incremental moves diverged from a full recomputation');
}

const routes = [...objects.values()].filter((o) => o.kind !== 'link' && o.kind !== 'filter').length;
const result = {
  bench: 'pathcompute',
  routes,
  full_ms: round(median(fullMs), 1),
  anchor_ms: round(median(anchorMs), 1),
  full_ratio: round(median(fullMs) / median(anchorMs), 2),
  move_p50_ms: round(median(moveMs), 4),
  move_p99_ms: round(quantile(moveMs, 0.99), 4),
};
const rows = [
  [
    'fabric',
    `${HOSTS} hosts, ${view.workloads.size} workloads, ${TENANTS} tenants, ${POLICIES} policies (built in ${round(buildMs, 0)} ms)`,
  ],
  ['host', `${host}: ${objects.size} objects, ${routes} routes, checksum ${checksum(objects)}`],
  [
    'anchor',
    `${anchorSize} routes; runs ms ${anchorMs.map((m) => round(m, 1)).join(' / ')}; median ${result.anchor_ms}`,
  ],
  [
    'full',
    `runs ms ${fullMs.map((m) => round(m, 1)).join(' / ')}; median ${result.full_ms} (${result.full_ratio}x anchor)`,
  ],
  [
    'move',
    `${MOVES} moves, p50 ${result.move_p50_ms} ms, p99 ${result.move_p99_ms} ms, max ${round(Math.max(...moveMs), 3)} ms, ${touched} objects changed`,
  ],
];
for (const [k, v] of rows) process.stdout.write(`${k!.padEnd(8)} ${v}\n`);
process.stdout.write(`${JSON.stringify(result)}\n`);
