import { describe, expect, it } from 'vitest';
import { DataplaneInputError } from '../../../src/dataplane/errors.ts';
import { planReconcile } from '../../../src/dataplane/reconcile.ts';
import { coverSourceSubtrees, formatRoute, type Route, routeKey } from '../../../src/dataplane/route.ts';
import { validateRoute } from '../../../src/dataplane/validate.ts';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { kr } from './kernel-route.ts';

const ip = parseIpv6;
const ctx = { maxSegments: 4, vrf: false };
const TABLE = 385424;
const DST = parsePrefix('2001:db8:a0::10/128');

const encap = (...sids: string[]) => ({
  type: 'seg6' as const,
  mode: sids.length === 1 ? ('encap.red' as const) : ('encap' as const),
  segments: sids.map(ip),
});
const plain: Route = { dst: DST, table: TABLE, oif: 2, encap: encap('fc00:0:2:2064::') };
const fromA: Route = {
  ...plain,
  src: parsePrefix('2001:db8:a0::1/128'),
  encap: encap('fc00:0:3:e000::', 'fc00:0:2:2064::'),
};
const fromB: Route = {
  ...plain,
  src: parsePrefix('2001:db8:a0::2/128'),
  encap: encap('fc00:0:4:e000::', 'fc00:0:2:2064::'),
};
const empty = { routes: [], rules: [], nexthops: [] };

describe('source-specific routes: identity', () => {
  it('the source is part of the key; ::/0 is no source', () => {
    expect(routeKey(fromA)).not.toBe(routeKey(fromB));
    expect(routeKey(fromA)).not.toBe(routeKey(plain));
    expect(routeKey({ ...plain, src: parsePrefix('::/0') })).toBe(routeKey(plain));
    // Same source address, other length: another route.
    expect(routeKey({ ...fromA, src: parsePrefix('2001:db8:a0::/64') })).not.toBe(routeKey(fromA));
    // No collision between the plain key space and the source-specific one.
    const keys = new Set(
      [plain, fromA, fromB, { ...plain, table: 254 }, { ...plain, metric: 1 }].map(routeKey),
    );
    expect(keys.size).toBe(5);
  });

  it('reconcile: two routes to one destination with different sources are two routes', () => {
    const plan = planReconcile({ routes: [fromA, fromB] }, empty);
    expect(plan.routes.add).toEqual([fromA, fromB]);
    const again = planReconcile({ routes: [fromA, fromB] }, { ...empty, routes: [kr(fromA), kr(fromB)] });
    expect(again.routes).toEqual({ add: [], replace: [], delete: [] });
    expect(again.unchanged).toBe(2);
  });

  it('reconcile: dropping one source route deletes that one only; a changed segment list is a replace', () => {
    const kernel = { ...empty, routes: [kr(fromA), kr(fromB), kr(plain)] };
    const changedB = { ...fromB, encap: encap('fc00:0:5:e000::', 'fc00:0:2:2064::') };
    const plan = planReconcile({ routes: [plain, changedB] }, kernel);
    expect(plan.routes.add).toEqual([]);
    expect(plan.routes.replace).toEqual([changedB]);
    expect(plan.routes.delete).toEqual([kr(fromA)]);
    expect(plan.unchanged).toBe(1);
  });

  it('reconcile: a kernel route without a source does not satisfy a wanted source route (and is stale)', () => {
    const plan = planReconcile({ routes: [fromA] }, { ...empty, routes: [kr(plain)] });
    expect(plan.routes.add).toEqual([fromA]);
    expect(plan.routes.delete).toEqual([kr(plain)]);
  });

  it('reconcile: the same source route listed twice is rejected; the same destination from two sources is not', () => {
    expect(() => planReconcile({ routes: [fromA, { ...fromA }] }, empty)).toThrow(DataplaneInputError);
    expect(() => planReconcile({ routes: [plain, fromA, fromB] }, empty)).not.toThrow();
  });

  it('formats the source as ip does (`from`)', () => {
    expect(formatRoute(fromA)).toBe(
      '2001:db8:a0::10/128 from 2001:db8:a0::1/128 encap seg6 mode encap segs 2 [ fc00:0:3:e000:: fc00:0:2:2064:: ] dev #2 table 385424 proto 203',
    );
    expect(formatRoute({ ...plain, src: parsePrefix('::/0') })).not.toContain('from');
  });

  it('validates the source prefix', () => {
    expect(() => validateRoute(fromA, ctx)).not.toThrow();
    expect(() => validateRoute({ ...plain, src: { address: ip('2001:db8::1'), length: 64 } }, ctx)).toThrow(
      /host bits/,
    );
    expect(() => validateRoute({ ...plain, src: { address: 0n, length: 129 } }, ctx)).toThrow(/0\.\.128/);
    expect(() => validateRoute({ ...plain, src: { address: -1n, length: 8 } }, ctx)).toThrow(/IPv6 prefix/);
  });
});

describe('coverSourceSubtrees (a plain route next to source routes is skipped by the kernel)', () => {
  const halves = [parsePrefix('::/1'), parsePrefix('8000::/1')];

  it('leaves a route list without source routes as it is (same array)', () => {
    const routes = [plain, { ...plain, dst: parsePrefix('2001:db8:a0::11/128') }];
    expect(coverSourceSubtrees(routes)).toBe(routes);
  });

  it('turns a plain route whose (table, destination) has source routes into ::/1 and 8000::/1, in place', () => {
    const other = { ...plain, dst: parsePrefix('2001:db8:a0::11/128') };
    const otherTable = { ...plain, table: TABLE + 1 };
    const out = coverSourceSubtrees([other, plain, fromA, otherTable, fromB]);
    expect(out).toEqual([
      other,
      { ...plain, src: halves[0] },
      { ...plain, src: halves[1] },
      fromA,
      otherTable,
      fromB,
    ]);
    // Every key distinct: the result is a valid desired state.
    expect(new Set(out.map(routeKey)).size).toBe(out.length);
  });

  it('covers plain routes of any metric to that destination, and keeps a real `from ::/1` route', () => {
    const unreachable: Route = { dst: DST, table: TABLE, type: 'unreachable', metric: 0xff000000 };
    const realHalf: Route = { ...fromA, src: halves[0] };
    const out = coverSourceSubtrees([plain, unreachable, realHalf]);
    expect(out).toEqual([
      { ...plain, src: halves[1] },
      { ...unreachable, src: halves[0] },
      { ...unreachable, src: halves[1] },
      realHalf,
    ]);
  });
});

describe('routeKey hashing', () => {
  it('source-specific keys differ in their lowest 64 bits (V8 hashes a BigInt by them alone)', () => {
    const mask = (1n << 64n) - 1n;
    const low = new Set<bigint>();
    let n = 0;
    for (let d = 1n; d <= 100n; d++) {
      for (let s = 1n; s <= 50n; s++) {
        const dst = { address: ip('2001:db8:a0::') + d, length: 128 };
        const src = { address: ip('2001:db8:a0::') + 1000n + s, length: 128 };
        low.add(routeKey({ dst, src, table: TABLE }) & mask);
        n++;
      }
    }
    expect(low.size).toBe(n);
  });
});
