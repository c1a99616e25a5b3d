/**
 * The kernel realisation of an intent delta (pure): the route and rule writes that turn what the
 * kernel lowering of `before` installed into that of `after`, without asking the kernel. Which items
 * changed is the intent's diff engine's answer (intent.ts, diffIntents); here only the kernel objects
 * of those items are lowered again.
 *
 * Routes are re-lowered per (table, destination): a source-specific entry changes how the plain entry
 * to the same destination is programmed (coverSourceSubtrees), so every item of a touched destination
 * is lowered on both sides and the two route lists compared by route identity and explicit equality.
 * The items of a destination are found through a {@link DestinationIndex} of `before` when the caller
 * keeps one (the kernel backend does): a delta then costs its own size, not the intent's.
 */
import type { Ipv6Prefix } from '../../srv6/address.ts';
import type { ForwardingIntent, IntentDelta, IntentItem, LocalSid, PrefixEntry } from '../intent.ts';
import { coverSourceSubtrees, type Route, routeKey, routeSatisfies } from '../route.ts';
import { type Rule, ruleKey } from '../rule.ts';
import { attachmentRule, entryRoute, type KernelLoweringOptions, sidRoute } from './lower.ts';
import { MAIN_TABLE, tableOf } from './tables.ts';

export interface KernelDelta {
  readonly routes: { readonly add: Route[]; readonly replace: Route[]; readonly delete: Route[] };
  readonly rules: { readonly add: Rule[]; readonly delete: Rule[] };
}

/** Explicit equality of two desired routes (device names included: they are not resolved yet). */
export function sameRoute(a: Route, b: Route): boolean {
  return routeSatisfies(a, b) && a.oif === b.oif && a.dev === b.dev;
}

function destination(table: number, prefix: Ipv6Prefix): string {
  return `${table}|${prefix.address.toString(16)}/${prefix.length}`;
}

/** The kernel destination (table, prefix) of a SID or an entry. */
export function destinationOf(item: LocalSid | PrefixEntry): string {
  return item.kind === 'sid'
    ? destination(MAIN_TABLE, { address: item.sid, length: 128 })
    : destination(tableOf(item.scope), item.prefix);
}

/**
 * The keys of an intent's SIDs and entries by kernel destination (table, prefix). Kept beside the
 * intent a backend holds and moved on with each delta it applies (O(delta)).
 */
export class DestinationIndex {
  readonly #keys = new Map<string, Set<string>>();

  static of(intent: ForwardingIntent): DestinationIndex {
    const index = new DestinationIndex();
    for (const i of intent.items.values()) index.#add(i);
    return index;
  }

  /** The keys of the items at `dest`. */
  keys(dest: string): ReadonlySet<string> | undefined {
    return this.#keys.get(dest);
  }

  /** Moves the index from `before` to `after` of `delta`. */
  apply(delta: IntentDelta): void {
    for (const i of delta.replaced) this.#delete(i);
    for (const i of delta.removed) this.#delete(i);
    for (const i of delta.added) this.#add(i);
    for (const i of delta.changed) this.#add(i);
  }

  #add(i: IntentItem): void {
    if (i.kind === 'attachment' || i.kind === 'hmac-key') return;
    const d = destinationOf(i);
    const keys = this.#keys.get(d);
    if (keys) keys.add(i.key);
    else this.#keys.set(d, new Set([i.key]));
  }

  #delete(i: IntentItem): void {
    if (i.kind === 'attachment' || i.kind === 'hmac-key') return;
    const d = destinationOf(i);
    const keys = this.#keys.get(d);
    if (!keys) return;
    keys.delete(i.key);
    if (keys.size === 0) this.#keys.delete(d);
  }
}

/**
 * The routes of every SID and entry of `intent` whose destination is in `touched`: among `candidates`
 * (keys) when given, else found by a walk of the intent.
 */
function groupRoutes(
  intent: ForwardingIntent,
  touched: ReadonlySet<string>,
  opts: KernelLoweringOptions,
  candidates: Iterable<string> | undefined,
): readonly Route[] {
  const routes: Route[] = [];
  const items = candidates
    ? (function* () {
        for (const k of candidates) {
          const i = intent.items.get(k);
          if (i) yield i;
        }
      })()
    : intent.items.values();
  for (const i of items) {
    if (i.kind === 'attachment' || i.kind === 'hmac-key' || !touched.has(destinationOf(i))) continue;
    routes.push(i.kind === 'sid' ? sidRoute(i, opts) : entryRoute(i, opts));
  }
  return coverSourceSubtrees(routes);
}

/**
 * The kernel writes for `delta` (from diffIntents(before.items, after.items)), or undefined when they
 * cannot be told apart by route identity (two routes of one side with one key: take the full path).
 * `index`: a {@link DestinationIndex} of `before` (absent: both intents are walked).
 */
export function kernelDelta(
  before: ForwardingIntent,
  after: ForwardingIntent,
  delta: IntentDelta,
  opts: KernelLoweringOptions,
  index?: DestinationIndex,
): KernelDelta | undefined {
  const out: KernelDelta = { routes: { add: [], replace: [], delete: [] }, rules: { add: [], delete: [] } };
  const touched = new Set<string>();
  const oldRules = new Map<string, Rule>();
  const newRules = new Map<string, Rule>();
  const visit = (items: readonly IntentItem[], rules: Map<string, Rule>) => {
    for (const i of items) {
      if (i.kind === 'hmac-key') continue; // keys are written by the backend itself (kernel/backend.ts)
      if (i.kind !== 'attachment') {
        touched.add(destinationOf(i));
        continue;
      }
      const rule = attachmentRule(i);
      if (rule) rules.set(ruleKey(rule), rule);
    }
  };
  visit([...delta.replaced, ...delta.removed], oldRules);
  visit([...delta.added, ...delta.changed], newRules);

  if (touched.size > 0) {
    // The items of a touched destination: those of `before` there, and what the delta adds or changes.
    let candidates: Set<string> | undefined;
    if (index) {
      candidates = new Set<string>();
      for (const d of touched) for (const k of index.keys(d) ?? []) candidates.add(k);
      for (const i of delta.added) candidates.add(i.key);
      for (const i of delta.changed) candidates.add(i.key);
    }
    const old = new Map<bigint, Route>();
    for (const r of groupRoutes(before, touched, opts, candidates)) {
      const k = routeKey(r);
      if (old.has(k)) return undefined;
      old.set(k, r);
    }
    const seen = new Set<bigint>();
    for (const r of groupRoutes(after, touched, opts, candidates)) {
      const k = routeKey(r);
      if (seen.has(k)) return undefined;
      seen.add(k);
      const was = old.get(k);
      if (!was) out.routes.add.push(r);
      else if (!sameRoute(was, r)) out.routes.replace.push(r);
    }
    for (const [k, r] of old) if (!seen.has(k)) out.routes.delete.push(r);
  }
  for (const [k, r] of newRules) if (!oldRules.has(k)) out.rules.add.push(r);
  for (const [k, r] of oldRules) if (!newRules.has(k)) out.rules.delete.push(r);
  return out;
}
