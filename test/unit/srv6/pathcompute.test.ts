import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIpv6, type Ipv6Address } from '../../../src/srv6/address.ts';
import type { SidEntry } from '../../../src/srv6/allocator.ts';
import { decapsulates } from '../../../src/srv6/behavior.ts';
import { buildFabricView, type FabricView } from '../../../src/srv6/fabric.ts';
import {
  computeHostPlan,
  diffPlans,
  type EncapRoute,
  HostPathComputer,
  type PlannedObject,
  routeKey,
} from '../../../src/srv6/pathcompute.ts';
import { type Scope, scopeKey } from '../../../src/srv6/scope.ts';
import { fabricFromShape, fabricShape } from './fabric-arbitrary.ts';

function sidIndex(view: FabricView): Map<Ipv6Address, { host: string; entry: SidEntry }> {
  const index = new Map<Ipv6Address, { host: string; entry: SidEntry }>();
  for (const h of view.hosts.values())
    for (const s of h.sids.all) index.set(s.sid, { host: h.name, entry: s });
  return index;
}

function encapRoutes(view: FabricView, host: string): EncapRoute[] {
  return [...computeHostPlan(view, host).objects.values()].filter((o): o is EncapRoute => o.kind === 'encap');
}

const runs = { numRuns: 60 };

describe('path computation properties', () => {
  it('every segment list toward a workload ends at a decapsulating SID, on the host where it lives now or at a function on its way', () => {
    fc.assert(
      fc.property(fabricShape, (shape) => {
        const view = buildFabricView(fabricFromShape(shape));
        const sids = sidIndex(view);
        const byAddress = new Map([...view.workloads.values()].map((w) => [w.address, w]));
        for (const host of view.hosts.keys()) {
          for (const r of encapRoutes(view, host)) {
            const w = byAddress.get(r.prefix.address);
            if (!w) continue; // external route
            const last = sids.get(r.segments[r.segments.length - 1]!);
            expect(last, `last SID of ${r.key} is a fabric SID`).toBeDefined();
            expect(decapsulates(last!.entry.behavior)).toBe(true);
            if (last!.entry.kind === 'tenantDelivery') expect(last!.host).toBe(w.host);
            else expect(last!.entry.behavior).toBe('End.DX6');
            expect(r.segments.length).toBeLessThanOrEqual(view.maxSegments);
          }
        }
      }),
      runs,
    );
  });

  it("a tenant's routes never carry another tenant's SIDs", () => {
    fc.assert(
      fc.property(fabricShape, (shape) => {
        const view = buildFabricView(fabricFromShape(shape));
        const sids = sidIndex(view);
        for (const host of view.hosts.keys()) {
          for (const r of encapRoutes(view, host)) {
            for (const seg of r.segments) {
              const owner = sids.get(seg);
              if (!owner) continue; // an edge SID: external routes are per tenant by construction
              expect(owner.entry.tenant, `${formatIpv6(seg)} in ${r.key}`).toBe(r.tenant);
            }
          }
        }
      }),
      runs,
    );
  });

  it('every tenant scope of a host ends in unreachable (or the explicit edge default)', () => {
    fc.assert(
      fc.property(fabricShape, (shape) => {
        const view = buildFabricView(fabricFromShape(shape));
        for (const host of view.hosts.keys()) {
          const plan = computeHostPlan(view, host);
          const scopes = new Map<string, Scope>();
          for (const o of plan.objects.values()) {
            if ('scope' in o && o.scope.kind !== 'underlay') scopes.set(scopeKey(o.scope), o.scope);
            if (o.kind === 'link' && o.ingress) scopes.set(scopeKey(o.ingress), o.ingress);
          }
          for (const [name, scope] of scopes) {
            const last = plan.objects.get(routeKey(scope, { address: 0n, length: 0 }));
            expect(last, `scope ${name} on ${host} has a default`).toBeDefined();
            expect(['unreachable', 'encap']).toContain(last!.kind);
          }
        }
      }),
      runs,
    );
  });

  it('keeps the network-function order of every policy across hosts', () => {
    fc.assert(
      fc.property(fabricShape, (shape) => {
        const view = buildFabricView(fabricFromShape(shape));
        const sids = sidIndex(view);
        const plans = new Map([...view.hosts.keys()].map((h) => [h, computeHostPlan(view, h)]));
        for (const p of view.policies) {
          // Follow one packet per (source, destination) pair the policy covers, from the source host.
          for (const src of view.workloads.values()) {
            for (const dst of view.workloads.values()) {
              if (src === dst || src.tenant !== p.tenant || dst.tenant !== p.tenant) continue;
              const tenant = view.tenants.get(p.tenant)!;
              const route = lookup(
                plans.get(src.host)!.objects,
                tenant.scopes.egress,
                dst.address,
                src.address,
              );
              if (route?.kind !== 'encap' || !route.reason.startsWith(`policy ${p.name} `)) continue;
              let encap: EncapRoute = route;
              const seen: string[] = [];
              for (let hops = 0; hops < 10; hops++) {
                let handedTo: string | undefined;
                for (const seg of encap.segments) {
                  const owner = sids.get(seg)!;
                  if (owner.entry.networkFunction) seen.push(owner.entry.networkFunction);
                  if (owner.entry.behavior === 'End.DX6') handedTo = owner.entry.networkFunction;
                }
                if (!handedTo) break;
                const nf = view.networkFunctions.get(handedTo)!;
                const scope = view.hosts.get(nf.host)!.sids.networkFunctions.get(nf.name)!.returns!;
                const next = lookup(plans.get(nf.host)!.objects, scope, dst.address, src.address);
                expect(next, `return route after ${nf.name}`).toBeDefined();
                if (next!.kind !== 'encap') break; // delivered locally after the function
                encap = next!;
              }
              expect(seen).toEqual(p.via);
            }
          }
        }
      }),
      runs,
    );
  });

  it('computes identical SIDs and routes in two runs and for any input order', () => {
    fc.assert(
      fc.property(fabricShape, fc.integer(), (shape, seed) => {
        const input = fabricFromShape(shape);
        const shuffled = {
          ...input,
          hosts: shuffle(input.hosts, seed),
          networkFunctions: shuffle(input.networkFunctions ?? [], seed),
        };
        const a = buildFabricView(input);
        const b = buildFabricView(shuffled);
        for (const h of a.hosts.values()) {
          expect(b.hosts.get(h.name)!.locator).toEqual(h.locator);
          expect(b.hosts.get(h.name)!.sids.all.map((s) => [s.key, s.sid])).toEqual(
            h.sids.all.map((s) => [s.key, s.sid]),
          );
          const pa = computeHostPlan(a, h.name).objects;
          const pb = computeHostPlan(b, h.name).objects;
          const d = diffPlans(pa, pb);
          expect(d.added.length + d.changed.length + d.removed.length).toBe(0);
        }
      }),
      runs,
    );
  });

  it("applies a move incrementally: only the moved workload's objects change, and the result equals a full recomputation", () => {
    fc.assert(
      fc.property(fabricShape, fc.nat(), fc.nat(), (shape, which, to) => {
        const input = fabricFromShape(shape);
        const view = buildFabricView(input);
        const ids = [...view.workloads.keys()];
        const id = ids[which % ids.length]!;
        const hosts = [...view.hosts.keys()];
        const target = hosts[to % hosts.length]!;
        for (const host of hosts) {
          const computer = new HostPathComputer(buildFabricView(input), host);
          const delta = computer.moveWorkload(id, target);
          const moved = buildFabricView({
            ...input,
            workloads: input.workloads!.map((w) => (w.id === id ? { ...w, host: target } : w)),
          });
          const full = computeHostPlan(moved, host).objects;
          const rest = diffPlans(computer.objects, full);
          expect(rest.added.length + rest.changed.length + rest.removed.length, `host ${host}`).toBe(0);
          const w = view.workloads.get(id)!;
          const tenantChanged =
            (w.host === host || target === host) &&
            [...computeHostPlan(view, host).objects.values()].every(
              (o) =>
                !(
                  o.kind === 'link' &&
                  o.ingress?.kind === 'egress' &&
                  o.ingress.tenant === w.tenant &&
                  o.link !== w.link
                ),
            );
          if (tenantChanged) continue; // the first or last workload of a tenant: the tenant's tables come or go
          for (const o of [...delta.added, ...delta.changed, ...delta.removed]) {
            expect(touches(o, w.address, w.link), `${o.key} on ${host}`).toBe(true);
          }
        }
      }),
      runs,
    );
  });
});

function touches(o: PlannedObject, address: Ipv6Address, link: string): boolean {
  if (o.kind === 'link' || o.kind === 'filter') return o.key.endsWith(link);
  if (o.kind === 'hmac-key') return false;
  return o.prefix.address === address || o.from?.address === address;
}

function lookup(
  objects: ReadonlyMap<string, PlannedObject>,
  scope: Scope,
  dst: Ipv6Address,
  src: Ipv6Address,
) {
  const specific = objects.get(routeKey(scope, { address: dst, length: 128 }, { address: src, length: 128 }));
  const plain = objects.get(routeKey(scope, { address: dst, length: 128 }));
  const r = specific ?? plain;
  return r && r.kind !== 'link' && r.kind !== 'filter' ? r : undefined;
}

function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
