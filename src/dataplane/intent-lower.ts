/**
 * From the model's plan of one host to its forwarding intent (pure). The plan says what to forward
 * and why; the intent says the same in the backend-neutral vocabulary of intent.ts: the plan's lookup
 * tables become scopes, its SID routes local SIDs, and a link with its rule and filter one attachment.
 */
import type { FabricView, HostView, WorkloadView } from '../srv6/fabric.ts';
import {
  HostPathComputer,
  type HostPlan,
  isRoute,
  type PlanDelta,
  type PlannedFilter,
  type PlannedLink,
  type PlannedObject,
  type PlannedRoute,
  type PlannedRule,
} from '../srv6/pathcompute.ts';
import { MAIN_TABLE, RULE_PRIORITY } from '../srv6/tables.ts';
import {
  type Attachment,
  applyDelta,
  attachmentKey,
  diffIntents,
  type EntryAction,
  entryKey,
  type ForwardingIntent,
  type IntentDelta,
  type IntentItem,
  type LocalSid,
  type PrefixEntry,
  type Scope,
  sidKey,
  UNDERLAY,
} from './intent.ts';

export class IntentLoweringError extends Error {
  override readonly name = 'IntentLoweringError';
}

/** The scope of every lookup table a plan of `host` may use. */
function scopesOf(view: FabricView, host: string): Map<number, Scope> {
  const scopes = new Map<number, Scope>([[MAIN_TABLE, UNDERLAY]]);
  for (const t of view.tenants.values()) {
    scopes.set(t.tables.egress, { kind: 'egress', tenant: t.name, tenantId: t.id });
    scopes.set(t.tables.delivery, { kind: 'delivery', tenant: t.name, tenantId: t.id });
    scopes.set(t.tables.forward, { kind: 'forward', tenant: t.name, tenantId: t.id });
  }
  for (const s of view.hosts.get(host)?.sids.networkFunctions.values() ?? []) {
    if (s.table === undefined || s.networkFunction === undefined || s.tenant === undefined) continue;
    scopes.set(s.table, {
      kind: 'return',
      tenant: s.tenant,
      networkFunction: s.networkFunction,
      functionIndex: s.index,
    });
  }
  return scopes;
}

type Scopes = (table: number, what: string) => Scope;

function scopeLookup(view: FabricView, host: string): Scopes {
  const scopes = scopesOf(view, host);
  return (table, what) => {
    const s = scopes.get(table);
    if (!s) throw new IntentLoweringError(`${what} uses table ${table}, which is no scope of host ${host}`);
    return s;
  };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The local SID or prefix entry of one planned route. */
function lowerRoute(host: HostView, o: PlannedRoute, scope: Scopes): LocalSid | PrefixEntry {
  if (o.kind === 'seg6local') {
    const sid: Mutable<LocalSid> = {
      kind: 'sid',
      key: sidKey(o.prefix.address),
      sid: o.prefix.address,
      behavior: o.behavior,
      sidKey: o.sidKey,
      reason: o.reason,
    };
    const tenant = host.sids.all.find((s) => s.key === o.sidKey)?.tenant;
    if (tenant !== undefined) sid.tenant = tenant;
    if (o.lookupTable !== undefined) sid.lookup = scope(o.lookupTable, `SID ${o.sidKey}`);
    if (o.nextHop !== undefined) sid.nextHop = o.nextHop;
    if (o.link !== undefined) sid.link = o.link;
    return sid;
  }
  let action: EntryAction;
  switch (o.kind) {
    case 'locator':
      action = { kind: 'locator', via: o.via };
      break;
    case 'encap':
      action = {
        kind: 'encap',
        mode: o.mode,
        segments: o.segments,
        ...(o.hmacKeyId !== undefined ? { hmacKeyId: o.hmacKeyId } : {}),
      };
      break;
    case 'deliver':
      action = { kind: 'deliver', link: o.link };
      break;
    case 'unreachable':
      action = { kind: 'unreachable' };
      break;
  }
  const s = scope(o.table, o.reason);
  const entry: Mutable<PrefixEntry> = {
    kind: 'entry',
    key: entryKey(s, o.prefix, o.from),
    scope: s,
    prefix: o.prefix,
    action,
    reason: o.reason,
  };
  if (o.from) entry.from = o.from;
  return entry;
}

/** The attachment of a planned link, with the rule that chooses its scope and its filter. */
function lowerAttachment(
  l: PlannedLink,
  rule: PlannedRule | undefined,
  filter: PlannedFilter | undefined,
  scope: Scopes,
): Attachment {
  const a: Mutable<Attachment> = {
    kind: 'attachment',
    key: attachmentKey(l.link),
    link: l.link,
    mtu: l.mtu,
    tenant: l.tenant,
  };
  if (l.workload !== undefined) a.workload = l.workload;
  if (l.networkFunction !== undefined) a.networkFunction = l.networkFunction;
  if (l.address !== undefined) a.address = l.address;
  if (rule) a.ingress = scope(rule.table, rule.reason);
  if (filter) a.restrict = { source: filter.source, denyDestinations: filter.denyDestinations };
  return a;
}

/** The link a link, rule or filter object belongs to. */
function linkOf(o: PlannedLink | PlannedRule | PlannedFilter): string {
  return o.kind === 'rule' ? o.iif : o.link;
}

/** Links, rules and filters of some plan objects, by link. */
function linkParts(objects: Iterable<PlannedObject>) {
  const links = new Map<string, PlannedLink>();
  const rules = new Map<string, PlannedRule>();
  const filters = new Map<string, PlannedFilter>();
  for (const o of objects) {
    if (o.kind === 'link') links.set(o.link, o);
    else if (o.kind === 'rule') {
      const other = rules.get(o.iif);
      if (other) throw new IntentLoweringError(`link ${o.iif} has two rules (${other.key}, ${o.key})`);
      rules.set(o.iif, o);
    } else if (o.kind === 'filter') filters.set(o.link, o);
  }
  return { links, rules, filters };
}

export function intentOf(view: FabricView, plan: HostPlan): ForwardingIntent {
  const host = view.hosts.get(plan.host);
  if (!host) throw new IntentLoweringError(`host ${plan.host} is not in the fabric view`);
  const scope = scopeLookup(view, plan.host);
  const items = new Map<string, IntentItem>();
  for (const o of plan.objects.values()) {
    if (isRoute(o)) {
      const item = lowerRoute(host, o, scope);
      items.set(item.key, item);
    }
  }
  const { links, rules, filters } = linkParts(plan.objects.values());
  for (const l of links.values()) {
    const a = lowerAttachment(l, rules.get(l.link), filters.get(l.link), scope);
    items.set(a.key, a);
  }
  for (const r of rules.values())
    if (!links.has(r.iif))
      throw new IntentLoweringError(`rule ${r.key} is for link ${r.iif}, which the plan does not have`);
  for (const f of filters.values())
    if (!links.has(f.link))
      throw new IntentLoweringError(`filter ${f.key} is for link ${f.link}, which the plan does not have`);
  return { host: plan.host, items };
}

/**
 * Keeps one host's intent current under workload changes, on the model's incremental path
 * computation: each change re-lowers only the intent items its plan delta touches, and returns their
 * delta (through the one diff engine, {@link diffIntents}).
 */
export class HostIntentComputer {
  readonly #paths: HostPathComputer;
  readonly #host: HostView;
  readonly #scope: Scopes;
  #items: Map<string, IntentItem>;

  /** `view` becomes the computer's own: it changes the view's workloads as events arrive. */
  constructor(view: FabricView, host: string) {
    this.#paths = new HostPathComputer(view, host);
    const h = view.hosts.get(host);
    if (!h) throw new IntentLoweringError(`host ${host} is not in the fabric view`);
    this.#host = h;
    this.#scope = scopeLookup(view, host);
    this.#items = new Map(intentOf(view, { host, objects: this.#paths.objects }).items);
  }

  get intent(): ForwardingIntent {
    return { host: this.#host.name, items: this.#items };
  }

  upsertWorkload(w: WorkloadView): IntentDelta {
    return this.#lower(this.#paths.upsertWorkload(w));
  }

  removeWorkload(id: string): IntentDelta {
    return this.#lower(this.#paths.removeWorkload(id));
  }

  moveWorkload(id: string, host: string): IntentDelta {
    return this.#lower(this.#paths.moveWorkload(id, host));
  }

  #lower(plan: PlanDelta): IntentDelta {
    const objects = this.#paths.objects;
    const touchedLinks = new Set<string>();
    const before = new Map<string, IntentItem>();
    const after = new Map<string, IntentItem>();
    for (const o of [...plan.added, ...plan.changed, ...plan.removed]) {
      if (!isRoute(o)) {
        touchedLinks.add(linkOf(o));
        continue;
      }
      // Key of the item, whichever the plan now holds (the object's own key names the same item).
      const item = lowerRoute(this.#host, o, this.#scope);
      const old = this.#items.get(item.key);
      if (old) before.set(item.key, old);
      const now = objects.get(o.key);
      if (now && isRoute(now)) {
        const next = lowerRoute(this.#host, now, this.#scope);
        after.set(next.key, next);
      }
    }
    for (const link of touchedLinks) {
      const key = attachmentKey(link);
      const old = this.#items.get(key);
      if (old) before.set(key, old);
      const l = objects.get(`l|${link}`);
      if (l?.kind !== 'link') continue;
      const parts = linkParts(
        [
          objects.get(`rule|${RULE_PRIORITY.workloadEgress}|${link}`),
          objects.get(`rule|${RULE_PRIORITY.nfReturn}|${link}`),
          objects.get(`f|${link}`),
        ].filter((o) => o !== undefined),
      );
      after.set(key, lowerAttachment(l, parts.rules.get(link), parts.filters.get(link), this.#scope));
    }
    const delta = diffIntents(before, after);
    this.#items = applyDelta(this.#items, delta);
    return delta;
  }
}
