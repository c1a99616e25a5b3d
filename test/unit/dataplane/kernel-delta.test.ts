import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { diffIntents, type ForwardingIntent } from '../../../src/dataplane/intent.ts';
import { HostIntentComputer, intentOf } from '../../../src/dataplane/intent-lower.ts';
import {
  DestinationIndex,
  destinationOf,
  kernelDelta,
  sameRoute,
} from '../../../src/dataplane/kernel/delta.ts';
import { lowerToKernel } from '../../../src/dataplane/kernel/lower.ts';
import { formatRoute, type Route, routeKey } from '../../../src/dataplane/route.ts';
import { type Rule, ruleKey } from '../../../src/dataplane/rule.ts';
import { buildFabricView, type WorkloadInput } from '../../../src/srv6/fabric.ts';
import { computeHostPlan } from '../../../src/srv6/pathcompute.ts';
import { fabricFromShape, fabricShape } from '../srv6/fabric-arbitrary.ts';

const opts = { underlayDevice: 'eth0', sidCounters: true };

/** The kernel as a map: route identity -> route, rule key -> rule. */
function installed(intent: ForwardingIntent) {
  const k = lowerToKernel(intent, opts);
  return {
    routes: new Map(k.dataplane.routes!.map((r) => [routeKey(r), r])),
    rules: new Map(k.dataplane.rules!.map((r) => [ruleKey(r), r])),
  };
}

function expectSame(a: ReturnType<typeof installed>, b: ReturnType<typeof installed>, what: string) {
  const text = (m: Map<bigint, Route>) => [...m.values()].map(formatRoute).sort();
  expect(text(a.routes), what).toStrictEqual(text(b.routes));
  for (const [k, r] of a.routes) expect(sameRoute(r, b.routes.get(k)!), formatRoute(r)).toBe(true);
  expect([...a.rules.keys()].sort(), what).toStrictEqual([...b.rules.keys()].sort());
}

describe('kernel delta', () => {
  it('the writes for a workload moved, added or removed turn the old kernel state into the new one, and touch only what changed', () => {
    fc.assert(
      fc.property(
        fabricShape,
        fc.nat(40),
        fc.nat(5),
        fc.constantFrom('move', 'add', 'remove'),
        fc.nat(5),
        (shape, pick, to, kind, hostPick) => {
          const input = fabricFromShape(shape);
          const view = buildFabricView(input);
          const hosts = [...view.hosts.keys()];
          const host = hosts[hostPick % hosts.length]!;
          const workloads: WorkloadInput[] = [...view.workloads.values()].map((w) => ({
            id: w.id,
            tenant: w.tenant,
            host: w.host,
            address: w.address,
            labels: w.labels,
            link: w.link,
          }));
          const target = workloads[pick % workloads.length]!;
          let next: WorkloadInput[];
          if (kind === 'move')
            next = workloads.map((w) => (w === target ? { ...w, host: hosts[to % hosts.length]! } : w));
          else if (kind === 'remove') next = workloads.filter((w) => w !== target);
          else
            next = [
              ...workloads,
              { ...target, id: 'extra', address: target.address! + 0x10000n, link: 'smwextra' },
            ];
          const before = intentOf(computeHostPlan(buildFabricView({ ...input, workloads }), host));
          const after = intentOf(computeHostPlan(buildFabricView({ ...input, workloads: next }), host));
          const delta = diffIntents(before.items, after.items);
          const writes = kernelDelta(before, after, delta, opts)!;
          expect(writes).toBeDefined();
          // Through an index of `before` (the kernel backend's way): the same writes, in any order; the
          // index moved on by the delta is the index of `after`.
          const index = DestinationIndex.of(before);
          const indexed = kernelDelta(before, after, delta, opts, index)!;
          const routes = (l: readonly Route[]) => l.map(formatRoute).sort();
          for (const op of ['add', 'replace', 'delete'] as const)
            expect(routes(indexed.routes[op]), op).toStrictEqual(routes(writes.routes[op]));
          expect(indexed.rules).toStrictEqual(writes.rules);
          index.apply(delta);
          const fresh = DestinationIndex.of(after);
          for (const i of [...before.items.values(), ...after.items.values()]) {
            if (i.kind === 'attachment' || i.kind === 'hmac-key') continue;
            const d = i.kind === 'sid' ? `sid ${i.key}` : i.key;
            const keysOf = (x: DestinationIndex) => [...(x.keys(destinationOf(i)) ?? [])].sort();
            expect(keysOf(index), d).toStrictEqual(keysOf(fresh));
          }

          const kernel = installed(before);
          for (const r of writes.routes.delete) expect(kernel.routes.delete(routeKey(r))).toBe(true);
          for (const r of writes.routes.replace) {
            expect(kernel.routes.has(routeKey(r))).toBe(true);
            kernel.routes.set(routeKey(r), r);
          }
          for (const r of writes.routes.add) {
            expect(kernel.routes.has(routeKey(r)), `add of ${formatRoute(r)} over an existing route`).toBe(
              false,
            );
            kernel.routes.set(routeKey(r), r);
          }
          for (const r of writes.rules.delete) expect(kernel.rules.delete(ruleKey(r))).toBe(true);
          for (const r of writes.rules.add) kernel.rules.set(ruleKey(r), r as Rule);
          expectSame(kernel, installed(after), `${kind} ${target.id} on ${host}`);

          // Minimal: no write repeats a route the kernel already holds as is.
          const old = installed(before).routes;
          for (const r of writes.routes.replace) expect(sameRoute(old.get(routeKey(r))!, r)).toBe(false);
        },
      ),
      { numRuns: 80 },
    );
  });

  it('a moved workload is one replaced route per table that holds it on a host that keeps its tenant', () => {
    const input = fabricFromShape({
      hosts: 3,
      tenants: 1,
      workloads: [
        { tenant: 0, host: 0, app: 0 },
        { tenant: 0, host: 1, app: 0 },
        { tenant: 0, host: 1, app: 0 },
      ],
      nfs: [],
      policies: [],
      hmac: false,
    });
    const computer = new HostIntentComputer(buildFabricView(input), 'h0');
    const before = computer.intent;
    const beforeItems = new Map(before.items);
    const delta = computer.moveWorkload('w1', 'h2');
    expect(delta.changed.map((i) => i.key)).toHaveLength(1);
    const writes = kernelDelta({ host: 'h0', items: beforeItems }, computer.intent, delta, opts)!;
    expect(writes.routes.add).toStrictEqual([]);
    expect(writes.routes.delete).toStrictEqual([]);
    expect(writes.rules).toStrictEqual({ add: [], delete: [] });
    expect(writes.routes.replace).toHaveLength(1);
    expect(writes.routes.replace[0]!.encap).toMatchObject({ type: 'seg6', mode: 'encap.red' });
  });
});
