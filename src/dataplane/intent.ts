/**
 * The forwarding intent: what one host must forward, in SRv6 terms and without any backend's
 * vocabulary (no table numbers, no `ip rule`s, no nft, no BPF maps). The model's plan is lowered into
 * it (intent-lower.ts); a {@link DataplaneBackend} (backend.ts) realises it: the kernel backend as
 * routes, rules and nftables (kernel/), an eBPF backend as maps.
 *
 * Four kinds of item, each under one key (the one key scheme of the intent):
 * - local SIDs (`s|<sid>`): behaviour, tenant, where a decapsulating SID looks the inner packet up;
 * - prefix entries (`e|<scope>|<prefix>[|<from>]`): per lookup scope (the underlay, or a tenant's
 *   egress, delivery, forward or a network function's return scope), a destination (and optional
 *   source) prefix with an action: deliver to a link, encapsulate, via a locator's next hop,
 *   unreachable;
 * - attachments (`a|<link>`): a workload's or network function's link with its MTU, the scope its
 *   traffic is looked up in, and what it may not send;
 * - HMAC keys (`k|<key id>`): the fabric's seg6 HMAC keys, so that signed SRHs verify on arrival and
 *   encapsulations naming a key id can sign (the kernel backend installs them through generic netlink).
 *
 * Pure: no I/O. Equality is explicit per field ({@link sameItem}); {@link diffIntents} is the one diff
 * engine over intents.
 */
import type { Ipv6Address, Ipv6Prefix } from '../srv6/address.ts';
import type { Behavior } from '../srv6/behavior.ts';
import { type Scope, sameScope } from '../srv6/scope.ts';

export type { Scope, ScopeKind } from '../srv6/scope.ts';
export { entryKey, sameScope, scopeKey, UNDERLAY } from '../srv6/scope.ts';

export type EncapMode = 'encap' | 'encap.red';

export type EntryAction =
  | { readonly kind: 'deliver'; readonly link: string }
  | {
      readonly kind: 'encap';
      readonly mode: EncapMode;
      /** Travel order: the first segment is the first SID the packet visits. */
      readonly segments: readonly Ipv6Address[];
      readonly hmacKeyId?: number;
    }
  /** Toward a locator (another host's or an edge's): to its underlay next hop. */
  | { readonly kind: 'locator'; readonly via: Ipv6Address }
  | { readonly kind: 'unreachable' };

export interface PrefixEntry {
  readonly kind: 'entry';
  readonly key: string;
  readonly scope: Scope;
  readonly prefix: Ipv6Prefix;
  /** Only packets from this source (policies with a `from` selector). */
  readonly from?: Ipv6Prefix;
  readonly action: EntryAction;
  /** Why the entry exists (for people; not part of what is forwarded, but compared all the same). */
  readonly reason: string;
}

export interface LocalSid {
  readonly kind: 'sid';
  readonly key: string;
  readonly sid: Ipv6Address;
  readonly behavior: Behavior;
  /** The allocator's stable name of the SID (`end`, `dt6:<tenant>`, `nf:<name>`, ...). */
  readonly sidKey: string;
  readonly tenant?: string;
  /** End.DT6: the scope the inner packet is looked up in. */
  readonly lookup?: Scope;
  /** End.X / End.DX6 next hop. */
  readonly nextHop?: Ipv6Address;
  /** End.DX6 toward a network function: the link it leaves on. */
  readonly link?: string;
  readonly reason: string;
}

/** What an attached workload may not send (enforced at its link's ingress). */
export interface SendRestriction {
  /**
   * The only source it may use (besides link-local fe80::/10 for neighbour discovery); absent: any (an
   * SR-unaware function's link hands back others' packets).
   */
  readonly source?: Ipv6Address;
  /** Never a destination: the SID block(s) and the hosts' addresses. */
  readonly denyDestinations: readonly Ipv6Prefix[];
}

export interface Attachment {
  readonly kind: 'attachment';
  readonly key: string;
  readonly link: string;
  readonly mtu: number;
  readonly tenant: string;
  readonly workload?: string;
  readonly networkFunction?: string;
  readonly address?: Ipv6Address;
  /** The scope what arrives from the link is looked up in; none: plain host forwarding (SR-aware functions). */
  readonly ingress?: Scope;
  readonly restrict?: SendRestriction;
}

export interface HmacKeyItem {
  readonly kind: 'hmac-key';
  readonly key: string;
  readonly keyId: number;
  readonly algorithm: 'sha1' | 'sha256';
  /** 1..64 bytes; never logged or shown. */
  readonly secret: Uint8Array;
}

export type IntentItem = LocalSid | PrefixEntry | Attachment | HmacKeyItem;

export interface ForwardingIntent {
  readonly host: string;
  readonly items: ReadonlyMap<string, IntentItem>;
}

export interface IntentDelta {
  readonly added: readonly IntentItem[];
  /** The new version of each item whose key stayed and whose content changed. */
  readonly changed: readonly IntentItem[];
  /** The old version of each changed item, in the order of `changed`. */
  readonly replaced: readonly IntentItem[];
  readonly removed: readonly IntentItem[];
}

// --- keys -------------------------------------------------------------------------------------------

export function sidKey(sid: Ipv6Address): string {
  return `s|${sid.toString(16)}`;
}

export function attachmentKey(link: string): string {
  return `a|${link}`;
}

export function hmacKeyKey(keyId: number): string {
  return `k|${keyId}`;
}

// --- equality ---------------------------------------------------------------------------------------

function samePrefix(a: Ipv6Prefix | undefined, b: Ipv6Prefix | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.address === b.address && a.length === b.length);
}

function samePrefixes(a: readonly Ipv6Prefix[], b: readonly Ipv6Prefix[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!samePrefix(a[i], b[i])) return false;
  return true;
}

function sameAddresses(a: readonly Ipv6Address[], b: readonly Ipv6Address[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function sameAction(a: EntryAction, b: EntryAction): boolean {
  if (a === b) return true;
  switch (a.kind) {
    case 'deliver':
      return b.kind === 'deliver' && a.link === b.link;
    case 'encap':
      return (
        b.kind === 'encap' &&
        a.mode === b.mode &&
        a.hmacKeyId === b.hmacKeyId &&
        sameAddresses(a.segments, b.segments)
      );
    case 'locator':
      return b.kind === 'locator' && a.via === b.via;
    case 'unreachable':
      return b.kind === 'unreachable';
  }
}

function sameRestriction(a: SendRestriction | undefined, b: SendRestriction | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return a.source === b.source && samePrefixes(a.denyDestinations, b.denyDestinations);
}

/** Field-by-field equality of two items (any two; items under one key are compared by the diff). */
export function sameItem(a: IntentItem, b: IntentItem): boolean {
  if (a === b) return true;
  if (a.key !== b.key) return false;
  switch (a.kind) {
    case 'entry': {
      if (b.kind !== 'entry') return false;
      return (
        sameScope(a.scope, b.scope) &&
        samePrefix(a.prefix, b.prefix) &&
        samePrefix(a.from, b.from) &&
        sameAction(a.action, b.action) &&
        a.reason === b.reason
      );
    }
    case 'sid': {
      if (b.kind !== 'sid') return false;
      return (
        a.sid === b.sid &&
        a.behavior === b.behavior &&
        a.sidKey === b.sidKey &&
        a.tenant === b.tenant &&
        sameScope(a.lookup, b.lookup) &&
        a.nextHop === b.nextHop &&
        a.link === b.link &&
        a.reason === b.reason
      );
    }
    case 'attachment': {
      if (b.kind !== 'attachment') return false;
      return (
        a.link === b.link &&
        a.mtu === b.mtu &&
        a.tenant === b.tenant &&
        a.workload === b.workload &&
        a.networkFunction === b.networkFunction &&
        a.address === b.address &&
        sameScope(a.ingress, b.ingress) &&
        sameRestriction(a.restrict, b.restrict)
      );
    }
    case 'hmac-key': {
      if (b.kind !== 'hmac-key') return false;
      return (
        a.keyId === b.keyId &&
        a.algorithm === b.algorithm &&
        a.secret.length === b.secret.length &&
        a.secret.every((x, i) => x === b.secret[i])
      );
    }
  }
}

// --- the diff engine --------------------------------------------------------------------------------

/** The delta that turns `before` into `after` (items keyed by their key). */
export function diffIntents(
  before: ReadonlyMap<string, IntentItem>,
  after: ReadonlyMap<string, IntentItem>,
): IntentDelta {
  const added: IntentItem[] = [];
  const changed: IntentItem[] = [];
  const replaced: IntentItem[] = [];
  const removed: IntentItem[] = [];
  for (const [key, item] of after) {
    const old = before.get(key);
    if (!old) added.push(item);
    else if (!sameItem(old, item)) {
      changed.push(item);
      replaced.push(old);
    }
  }
  for (const [key, item] of before) if (!after.has(key)) removed.push(item);
  return { added, changed, replaced, removed };
}

export function emptyDelta(delta: IntentDelta): boolean {
  return delta.added.length === 0 && delta.changed.length === 0 && delta.removed.length === 0;
}

/** `items` with `delta` applied (a new map; `items` is not touched). */
export function applyDelta(
  items: ReadonlyMap<string, IntentItem>,
  delta: IntentDelta,
): Map<string, IntentItem> {
  const out = new Map(items);
  for (const i of delta.removed) out.delete(i.key);
  for (const i of delta.added) out.set(i.key, i);
  for (const i of delta.changed) out.set(i.key, i);
  return out;
}

/** Whether two intents hold the same items (same keys, {@link sameItem} per key). */
export function sameIntent(a: ReadonlyMap<string, IntentItem>, b: ReadonlyMap<string, IntentItem>): boolean {
  if (a.size !== b.size) return false;
  for (const [key, item] of a) {
    const other = b.get(key);
    if (!other || !sameItem(item, other)) return false;
  }
  return true;
}

export function* entries(intent: ForwardingIntent): Iterable<PrefixEntry> {
  for (const i of intent.items.values()) if (i.kind === 'entry') yield i;
}

export function* localSids(intent: ForwardingIntent): Iterable<LocalSid> {
  for (const i of intent.items.values()) if (i.kind === 'sid') yield i;
}

export function* attachments(intent: ForwardingIntent): Iterable<Attachment> {
  for (const i of intent.items.values()) if (i.kind === 'attachment') yield i;
}

export function* hmacKeys(intent: ForwardingIntent): Iterable<HmacKeyItem> {
  for (const i of intent.items.values()) if (i.kind === 'hmac-key') yield i;
}
