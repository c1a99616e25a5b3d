/**
 * The kernel objects and the `segmesh plan` text of 100 seeded random fabrics, pinned by hash. The
 * hashes were written by the code before the forwarding intent existed (the plan translated straight
 * to routes and rules, at f439a49; its kernel objects equal 807078c's, and one plan text of 372 differs
 * only in the order of two source rows), so the kernel lowering of the intent
 * must give the very same routes, rules, filters and links, and the plan the very same text.
 * Regenerate only on purpose: SEGMESH_UPDATE_GOLDEN=1 npx vitest run --project unit test/unit/dataplane/kernel-golden.test.ts
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { intentOf } from '../../../src/dataplane/intent-lower.ts';
import { lowerToKernel } from '../../../src/dataplane/kernel/lower.ts';
import { type Route, routeKey } from '../../../src/dataplane/route.ts';
import { ruleKey } from '../../../src/dataplane/rule.ts';
import { formatHostPlan } from '../../../src/format/plan.ts';
import { buildFabricView } from '../../../src/srv6/fabric.ts';
import { computeHostPlan } from '../../../src/srv6/pathcompute.ts';
import { fabricFromShape, fabricShape } from '../srv6/fabric-arbitrary.ts';

const GOLDEN = new URL('./kernel-golden.json', import.meta.url);

/** JSON with sorted keys and bigints in hex: the same objects give the same text whatever their build order. */
function canonical(v: unknown): string {
  if (typeof v === 'bigint') return `"0x${v.toString(16)}"`;
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

const sha = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);

function fingerprints(): Record<string, { kernel: string; plan: string; routes: number }> {
  const out: Record<string, { kernel: string; plan: string; routes: number }> = {};
  const shapes = fc.sample(fabricShape, { seed: 20261204, numRuns: 100 });
  shapes.forEach((shape, i) => {
    const view = buildFabricView(fabricFromShape(shape));
    for (const host of view.hosts.keys()) {
      const plan = computeHostPlan(view, host);
      const k = lowerToKernel(intentOf(plan), { underlayDevice: 'eth0', sidCounters: true });
      const routes = [...k.dataplane.routes!].sort((a: Route, b: Route) => {
        const x = routeKey(a);
        const y = routeKey(b);
        return x < y ? -1 : x > y ? 1 : 0;
      });
      const rules = [...k.dataplane.rules!].sort((a, b) => (ruleKey(a) < ruleKey(b) ? -1 : 1));
      const links = k.links.map((l) => ({
        link: l.link,
        mtu: l.mtu,
        tenant: l.tenant,
        workload: l.workload,
        networkFunction: l.networkFunction,
        address: l.address,
      }));
      out[`${i}/${host}`] = {
        kernel: sha(canonical({ routes, rules, isolation: k.isolation, links })),
        plan: sha(formatHostPlan(view, plan)),
        routes: routes.length,
      };
    }
  });
  return out;
}

describe('kernel objects and plan text of seeded random fabrics', () => {
  it('are those the code before the forwarding intent produced', () => {
    const now = fingerprints();
    if (process.env.SEGMESH_UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, `${JSON.stringify(now, null, 2)}\n`);
    const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as typeof now;
    expect(Object.keys(golden).length).toBeGreaterThan(300);
    expect(now).toStrictEqual(golden);
  });
});
