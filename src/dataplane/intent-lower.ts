/**
 * From the model's plan of one host to its forwarding intent (pure). The plan says what to forward
 * and why, object by object; the intent says the same in the backend-neutral vocabulary of intent.ts:
 * its SID routes become local SIDs, its other routes prefix entries, a link with its filter one
 * attachment, and an HMAC key an HMAC key item.
 */
import type { FabricView, WorkloadView } from '../srv6/fabric.ts';
import {
  HostPathComputer,
  type HostPlan,
  isRoute,
  type PlanDelta,
  type PlannedFilter,
  type PlannedHmacKey,
  type PlannedLink,
  type PlannedObject,
  type PlannedRoute,
} from '../srv6/pathcompute.ts';
import {
  type Attachment,
  attachmentKey,
  diffIntents,
  type EntryAction,
  emptyDelta,
  type ForwardingIntent,
  type HmacKeyItem,
  hmacKeyKey,
  type IntentDelta,
  type IntentItem,
  type LocalSid,
  type PrefixEntry,
  sidKey,
} from './intent.ts';
import { IntentHistory } from './intent-history.ts';

export class IntentLoweringError extends Error {
  override readonly name = 'IntentLoweringError';
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The local SID or prefix entry of one planned route (entries keep the route's key). */
export function lowerRoute(o: PlannedRoute): LocalSid | PrefixEntry {
  if (o.kind === 'seg6local') {
    const sid: Mutable<LocalSid> = {
      kind: 'sid',
      key: sidKey(o.prefix.address),
      sid: o.prefix.address,
      behavior: o.behavior,
      sidKey: o.sidKey,
      reason: o.reason,
    };
    if (o.tenant !== undefined) sid.tenant = o.tenant;
    if (o.lookup !== undefined) sid.lookup = o.lookup;
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
  const entry: Mutable<PrefixEntry> = {
    kind: 'entry',
    key: o.key,
    scope: o.scope,
    prefix: o.prefix,
    action,
    reason: o.reason,
  };
  if (o.from) entry.from = o.from;
  return entry;
}

/** The attachment of a planned link, with its filter. */
export function lowerAttachment(l: PlannedLink, filter: PlannedFilter | undefined): Attachment {
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
  if (l.ingress !== undefined) a.ingress = l.ingress;
  if (filter)
    a.restrict = {
      ...(filter.source !== undefined ? { source: filter.source } : {}),
      denyDestinations: filter.denyDestinations,
    };
  return a;
}

export function lowerHmacKey(k: PlannedHmacKey): HmacKeyItem {
  return {
    kind: 'hmac-key',
    key: hmacKeyKey(k.keyId),
    keyId: k.keyId,
    algorithm: k.algorithm,
    secret: k.secret,
  };
}

/** The plan's keys of a link and of its filter. */
const linkObjectKey = (link: string) => `l|${link}`;
const filterObjectKey = (link: string) => `f|${link}`;

export function intentOf(plan: HostPlan): ForwardingIntent {
  const items = new Map<string, IntentItem>();
  for (const o of plan.objects.values()) {
    let item: IntentItem | undefined;
    if (isRoute(o)) item = lowerRoute(o);
    else if (o.kind === 'hmac-key') item = lowerHmacKey(o);
    else if (o.kind === 'link') {
      const filter = plan.objects.get(filterObjectKey(o.link));
      item = lowerAttachment(o, filter?.kind === 'filter' ? filter : undefined);
    } else if (plan.objects.get(linkObjectKey(o.link))?.kind !== 'link') {
      throw new IntentLoweringError(`filter ${o.key} is for link ${o.link}, which the plan does not have`);
    }
    if (item) items.set(item.key, item);
  }
  return { host: plan.host, items };
}

/**
 * Keeps one host's intent current under workload changes, on the model's incremental path
 * computation: each change re-lowers only the intent items its plan delta touches, and returns their
 * delta (through the one diff engine, {@link diffIntents}).
 *
 * Contract of {@link intent}: an immutable snapshot. What a caller got stays as it was whatever
 * events follow (a backend's `applyDelta(before, after, delta)` reads `before` after the event), and
 * reading it twice between events gives the same object (backends compare `before` by identity with
 * what they realised). A snapshot costs nothing to take and an event costs the items it changes, not
 * the intent's size (intent-history.ts); reads of a snapshot many events old are slower, until it
 * copies itself once.
 */
export class HostIntentComputer {
  readonly #paths: HostPathComputer;
  readonly #host: string;
  readonly #items: IntentHistory;
  /** The snapshot handed out since the last change, if any. */
  #intent: ForwardingIntent | undefined;

  /** `view` becomes the computer's own: it changes the view's workloads as events arrive. */
  constructor(view: FabricView, host: string) {
    this.#paths = new HostPathComputer(view, host);
    this.#host = host;
    this.#items = new IntentHistory(
      intentOf({ host, objects: this.#paths.objects }).items as Map<string, IntentItem>,
    );
  }

  get intent(): ForwardingIntent {
    this.#intent ??= { host: this.#host, items: this.#items.current() };
    return this.#intent;
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
    const before = new Map<string, IntentItem>();
    const after = new Map<string, IntentItem>();
    const touch = (key: string, now: () => IntentItem | undefined) => {
      if (before.has(key) || after.has(key)) return;
      const old = this.#items.get(key);
      if (old) before.set(key, old);
      const next = now();
      if (next) after.set(key, next);
    };
    const visit = (o: PlannedObject) => {
      if (isRoute(o)) {
        const key = lowerRoute(o).key;
        touch(key, () => {
          const now = objects.get(o.key);
          return now && isRoute(now) ? lowerRoute(now) : undefined;
        });
        return;
      }
      if (o.kind === 'hmac-key') {
        touch(hmacKeyKey(o.keyId), () => {
          const now = objects.get(o.key);
          return now?.kind === 'hmac-key' ? lowerHmacKey(now) : undefined;
        });
        return;
      }
      touch(attachmentKey(o.link), () => {
        const l = objects.get(linkObjectKey(o.link));
        const f = objects.get(filterObjectKey(o.link));
        return l?.kind === 'link' ? lowerAttachment(l, f?.kind === 'filter' ? f : undefined) : undefined;
      });
    };
    for (const o of plan.added) visit(o);
    for (const o of plan.changed) visit(o);
    for (const o of plan.removed) visit(o);
    const delta = diffIntents(before, after);
    if (!emptyDelta(delta)) {
      this.#items.apply(delta);
      this.#intent = undefined;
    }
    return delta;
  }
}
