/**
 * SharedPlanning (what `segmesh plan` shares between the plans of one view's hosts) must not change
 * any plan: for every host, the plan computed with it has the same objects, in the same order, as
 * the plan computed without it. Random fabrics (policies with and without sources, SR-unaware
 * functions, HMAC), some workloads moved away from a host they are still redirected from, and the
 * repository's fabrics (an edge router with external routes).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fabricInputFromSpec, parseConfig } from '../../../src/config/load.ts';
import { buildFabricView, type FabricView } from '../../../src/srv6/fabric.ts';
import { computeHostPlan, PathComputeError, SharedPlanning } from '../../../src/srv6/pathcompute.ts';
import { fabricFromShape, fabricShape } from './fabric-arbitrary.ts';

/** Every host's plan with and without sharing, as [key, object] lists (the order is the plan's). */
function expectSamePlans(view: FabricView): void {
  const shared = new SharedPlanning(view);
  for (const host of view.hosts.keys()) {
    const alone = [...computeHostPlan(view, host).objects.entries()];
    const together = [...computeHostPlan(view, host, shared).objects.entries()];
    expect(together).toEqual(alone);
  }
}

function load(file: string): FabricView {
  const parsed = parseConfig(readFileSync(file, 'utf8'), file, ['Fabric', 'Topology']);
  if (parsed.kind !== 'Fabric' && parsed.kind !== 'Topology') throw new Error(`${file}: not a fabric`);
  return buildFabricView(fabricInputFromSpec(parsed.spec));
}

describe('SharedPlanning', () => {
  it('gives every host of a random fabric the plan it has without it, moved workloads included', () => {
    fc.assert(
      fc.property(fabricShape, fc.array(fc.nat(), { maxLength: 4 }), (shape, moves) => {
        const view = buildFabricView(fabricFromShape(shape));
        // Move some workloads to the next host: the former host keeps a redirect (formerHosts).
        const hosts = [...view.hosts.keys()];
        const workloads = [...view.workloads.values()];
        for (const m of moves) {
          const w = workloads[m % workloads.length]!;
          const to = hosts[(hosts.indexOf(w.host) + 1) % hosts.length]!;
          view.workloads.set(w.id, { ...w, host: to, formerHosts: [w.host] });
        }
        expectSamePlans(view);
      }),
      { numRuns: 80 },
    );
  });

  it('gives the same plans for the repository fabrics (edge routers, external routes)', () => {
    for (const file of ['examples/fabric.yaml', 'topologies/edge.yaml', 'topologies/mobility.yaml'])
      expectSamePlans(load(file));
  });

  it('refuses a view it was not made for (its routes belong to that view)', () => {
    const a = load('examples/fabric.yaml');
    const b = load('examples/fabric.yaml');
    const host = [...a.hosts.keys()][0]!;
    expect(() => computeHostPlan(b, host, new SharedPlanning(a))).toThrow(PathComputeError);
    // Positive control: the view it was made for.
    expect(computeHostPlan(a, host, new SharedPlanning(a)).objects.size).toBeGreaterThan(0);
  });
});
