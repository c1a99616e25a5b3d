import { describe, expect, it } from 'vitest';
import type { ForwardingIntent } from '../../../src/dataplane/intent.ts';
import { diffIntents } from '../../../src/dataplane/intent.ts';
import { intentOf } from '../../../src/dataplane/intent-lower.ts';
import { kernelDelta } from '../../../src/dataplane/kernel/delta.ts';
import { type KernelState, lowerToKernel } from '../../../src/dataplane/kernel/lower.ts';
import { tableOf } from '../../../src/dataplane/kernel/tables.ts';
import { planReconcile } from '../../../src/dataplane/reconcile.ts';
import { type Route, routeKey } from '../../../src/dataplane/route.ts';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { buildFabricView, type FabricInput, type PolicyInput } from '../../../src/srv6/fabric.ts';
import { computeHostPlan } from '../../../src/srv6/pathcompute.ts';

const policy: PolicyInput = {
  name: 'web-to-db',
  tenant: 't0',
  via: ['fw'],
  from: { labels: { app: 'web' } },
  to: { labels: { app: 'db' } },
};

/** web1, web2 and api on h0; db on h1; an SR-aware firewall on h2. */
function fabric(policies: PolicyInput[]): FabricInput {
  return {
    locatorBlock: parsePrefix('fc00:0::/32'),
    maxSegments: 4,
    hosts: ['h0', 'h1', 'h2'].map((name, i) => ({ name, underlay: parseIpv6(`2001:db8:1::${i + 1}`) })),
    tenants: [{ name: 't0', id: 100, prefixes: [parsePrefix('2001:db8:a0::/64')], edgeMode: 'per-workload' }],
    workloads: [
      { id: 'web1', tenant: 't0', host: 'h0', labels: { app: 'web' } },
      { id: 'web2', tenant: 't0', host: 'h0', labels: { app: 'web' } },
      { id: 'api', tenant: 't0', host: 'h0', labels: { app: 'api' } },
      { id: 'db', tenant: 't0', host: 'h1', labels: { app: 'db' } },
    ],
    networkFunctions: [{ name: 'fw', tenant: 't0', host: 'h2', mode: 'sr-aware' }],
    policies,
    edges: [],
    externalRoutes: [],
  };
}

const opts = { underlayDevice: 'eth0' };

/** The kernel backend's lowering of a plan, with the intent it came from (for deltas). */
type Desired = KernelState & { readonly intent: ForwardingIntent };
function toDesiredHost(plan: Parameters<typeof intentOf>[0], o: typeof opts): Desired {
  const intent = intentOf(plan);
  return { ...lowerToKernel(intent, o), intent };
}
/** The kernel backend's writes from one lowering to another (its applyDelta path). */
function desiredDelta(a: Desired, b: Desired) {
  return kernelDelta(a.intent, b.intent, diffIntents(a.intent.items, b.intent.items), opts);
}
const empty = { routes: [], rules: [], nexthops: [] };

function setup(policies: PolicyInput[]) {
  const view = buildFabricView(fabric(policies));
  const host = view.hosts.get('h0')!;
  const w = (id: string) => view.workloads.get(id)!;
  const egress = tableOf(view.tenants.get('t0')!.scopes.egress);
  const fwSid = view.hosts.get('h2')!.sids.networkFunctions.get('fw')!.sid;
  const dbDelivery = view.hosts.get('h1')!.sids.tenantDelivery.get('t0')!.sid;
  const desired = toDesiredHost(computeHostPlan(view, 'h0'), opts);
  const toDb = desired.dataplane.routes!.filter(
    (r) => r.table === egress && r.dst.length === 128 && r.dst.address === w('db').address,
  );
  return { view, host, w, egress, fwSid, dbDelivery, desired, toDb };
}

describe('kernel lowering: policies with a `from` selector', () => {
  it('yields one source-specific route per local source, through the function; other sources keep the plain path', () => {
    const { w, egress, fwSid, dbDelivery, toDb } = setup([policy]);
    const bySource = new Map(toDb.map((r) => [r.src ? `${r.src.address}/${r.src.length}` : 'none', r]));
    for (const id of ['web1', 'web2']) {
      const r = bySource.get(`${w(id).address}/128`);
      expect(r, `route to db from ${id}`).toBeDefined();
      expect(r).toMatchObject({
        dst: { address: w('db').address, length: 128 },
        src: { address: w(id).address, length: 128 },
        table: egress,
        dev: 'eth0',
        encap: { type: 'seg6', mode: 'encap', segments: [fwSid, dbDelivery] },
      });
    }
    // The plain route to db (for api and anyone else) is programmed as the two source halves: the
    // kernel would skip a plain route next to source routes to the same destination.
    expect(bySource.has('none')).toBe(false);
    for (const half of ['0/1', `${1n << 127n}/1`]) {
      expect(bySource.get(half), `half ${half}`).toMatchObject({
        encap: { type: 'seg6', mode: 'encap.red', segments: [dbDelivery] },
      });
    }
    expect(toDb).toHaveLength(4);
  });

  it('is a valid desired state: every route key distinct, reconcile against an empty kernel adds them all', () => {
    const { desired } = setup([policy]);
    const routes = desired.dataplane.routes!;
    expect(new Set(routes.map(routeKey)).size).toBe(routes.length);
    const plan = planReconcile(desired.dataplane, empty);
    expect(plan.routes.add).toHaveLength(routes.length);
    expect(plan.conflicts).toEqual([]);
  });

  it('without the policy, db has one plain route; the delta fast path adds or removes exactly the source routes and halves', () => {
    const without = setup([]);
    expect(without.toDb).toHaveLength(1);
    expect(without.toDb[0]!.src).toBeUndefined();

    const withPolicy = setup([policy]);
    const on = desiredDelta(without.desired, withPolicy.desired)!;
    expect(on).toBeDefined();
    const isDb = (r: Route) => r.dst.address === withPolicy.w('db').address;
    expect(on.routes.add.filter(isDb)).toHaveLength(4);
    expect(on.routes.delete).toEqual(without.toDb);
    expect(on.routes.replace).toEqual([]);

    const off = desiredDelta(withPolicy.desired, without.desired)!;
    expect(off.routes.add).toEqual(without.toDb);
    expect(off.routes.delete.filter(isDb)).toHaveLength(4);
    expect(off.routes.replace).toEqual([]);
  });

  it('a source that leaves removes its own route only', () => {
    const both = setup([policy]);
    const input = fabric([policy]);
    const oneWeb = buildFabricView({ ...input, workloads: input.workloads!.filter((x) => x.id !== 'web2') });
    const after = toDesiredHost(computeHostPlan(oneWeb, 'h0'), opts);
    const d = desiredDelta(both.desired, after)!;
    const web2 = both.w('web2').address;
    const removedSourceRoutes = d.routes.delete.filter((r) => r.src?.address === web2);
    expect(removedSourceRoutes).toHaveLength(1);
    expect(removedSourceRoutes[0]!.dst.address).toBe(both.w('db').address);
    // web1's route to db stays.
    expect(after.dataplane.routes!.some((r) => r.src?.address === both.w('web1').address)).toBe(true);
    expect(d.routes.add.filter((r) => r.src !== undefined && r.src.length === 128)).toEqual([]);
  });
});
