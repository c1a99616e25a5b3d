/**
 * The reconcile fast path (pure): what changed between the desired state last applied and the one
 * wanted now, without asking the kernel. The agent applies such a delta for the changes gossip and BGP
 * bring (a workload moved: one route replaced per host), and falls back to the full dump-and-diff of
 * the data plane for everything else: at start, periodically (drift repair), when its links changed
 * (a new link takes routes with it when it goes), or when a delta write fails.
 */
import type { DesiredState, Route, Rule } from '../dataplane/index.ts';
import { routeKey } from '../dataplane/route.ts';
import { ruleKey } from '../dataplane/rule.ts';

export interface DesiredDelta {
  readonly routes: { readonly add: Route[]; readonly replace: Route[]; readonly delete: Route[] };
  readonly rules: { readonly add: Rule[]; readonly delete: Rule[] };
  readonly unchanged: number;
}

/** Every field of a route, in one string (bigints in hex): two routes are equal iff their strings are. */
export function routeIdentity(r: Route): string {
  return JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));
}

/**
 * The changes from `applied` to `wanted`, or undefined when they cannot be expressed as a delta
 * (a kind managed in one and not the other, nexthops, or a route or rule listed twice).
 */
export function desiredDelta(applied: DesiredState, wanted: DesiredState): DesiredDelta | undefined {
  if (applied.nexthops !== undefined || wanted.nexthops !== undefined) return undefined;
  if ((applied.routes === undefined) !== (wanted.routes === undefined)) return undefined;
  if ((applied.rules === undefined) !== (wanted.rules === undefined)) return undefined;
  const delta: DesiredDelta = {
    routes: { add: [], replace: [], delete: [] },
    rules: { add: [], delete: [] },
    unchanged: 0,
  };
  let unchanged = 0;

  const before = new Map<bigint, { route: Route; id: string }>();
  for (const r of applied.routes ?? []) {
    const k = routeKey(r);
    if (before.has(k)) return undefined;
    before.set(k, { route: r, id: routeIdentity(r) });
  }
  const seen = new Set<bigint>();
  for (const r of wanted.routes ?? []) {
    const k = routeKey(r);
    if (seen.has(k)) return undefined;
    seen.add(k);
    const old = before.get(k);
    if (!old) delta.routes.add.push(r);
    else if (old.id !== routeIdentity(r)) delta.routes.replace.push(r);
    else unchanged++;
  }
  for (const [k, { route }] of before) if (!seen.has(k)) delta.routes.delete.push(route);

  const rulesBefore = new Map<string, Rule>();
  for (const r of applied.rules ?? []) rulesBefore.set(ruleKey(r), r);
  const rulesSeen = new Set<string>();
  for (const r of wanted.rules ?? []) {
    const k = ruleKey(r);
    if (rulesSeen.has(k)) return undefined;
    rulesSeen.add(k);
    if (rulesBefore.has(k)) unchanged++;
    else delta.rules.add.push(r);
  }
  for (const [k, r] of rulesBefore) if (!rulesSeen.has(k)) delta.rules.delete.push(r);
  return { ...delta, unchanged };
}
