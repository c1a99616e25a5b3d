/**
 * The port between the agent and a data plane: a backend realises a {@link ForwardingIntent}. The
 * kernel backend (kernel/) lowers it to routes, `ip rule`s, nftables and sysctls; an eBPF backend to
 * programs and maps. The agent talks to this interface only, and a fake implements it in unit tests.
 *
 * A backend states what it can do ({@link BackendCapabilities}); {@link unsupportedItems} says which
 * items of an intent it cannot realise, so that the agent refuses them with a reason instead of
 * programming something else.
 */
import { formatIpv6, formatPrefix } from '../srv6/address.ts';
import type { Behavior } from '../srv6/behavior.ts';
import type { EncapMode, ForwardingIntent, IntentDelta, IntentItem, Scope, ScopeKind } from './intent.ts';

export interface BackendCapabilities {
  /** Backend name, for messages (`kernel`, `ebpf`). */
  readonly name: string;
  /** Local SID behaviours it can run. */
  readonly behaviors: ReadonlySet<Behavior>;
  readonly encapModes: ReadonlySet<EncapMode>;
  /** Adds (on encapsulation) and checks (on arrival) the SRH HMAC TLV. */
  readonly hmac: boolean;
  /** Carries IPv4 inside SRv6 (End.DT4 / End.DT46 tenants). */
  readonly ipv4Inner: boolean;
  /** Prefix entries with a source prefix (policies with a `from` selector). */
  readonly sourceSpecific: boolean;
  /**
   * Lookup scopes it realises (src/srv6/scope.ts): entries in them, SIDs that decapsulate into them,
   * links whose arrivals are looked up in them (`forward`: edge aggregate mode; `return`: SR-unaware
   * network functions).
   */
  readonly scopes: ReadonlySet<ScopeKind>;
}

/** Every lookup scope of the model. */
export const ALL_SCOPES: ReadonlySet<ScopeKind> = new Set<ScopeKind>([
  'underlay',
  'egress',
  'delivery',
  'forward',
  'return',
]);

/** Packet counters of one local SID (what was processed by it). */
export interface SidCounters {
  readonly packets: bigint;
  readonly bytes: bigint;
  readonly errors: bigint;
}

/** Drops at one attachment's ingress, by reason. */
export interface AttachmentDrops {
  readonly spoofedSource: number;
  readonly sidBlock: number;
  readonly hostAddress: number;
}

export interface BackendCounters {
  /** By SID item key ({@link sidKey}). */
  readonly sids: ReadonlyMap<string, SidCounters>;
  /** By link name. */
  readonly attachments: ReadonlyMap<string, AttachmentDrops>;
  /** Every verdict of the backend's programs by reason, where it has them (eBPF: forwarding and drops). */
  readonly reasons?: ReadonlyMap<string, bigint>;
}

export interface RealiseResult {
  readonly added: number;
  readonly replaced: number;
  readonly deleted: number;
  /** Objects the backend found in its place that it does not own; it left them alone. */
  readonly conflicts: readonly string[];
  /** Items of the intent it could not realise, each with the reason (none: all of it is in place). */
  readonly skipped: readonly string[];
}

export interface DataplaneBackend {
  readonly capabilities: BackendCapabilities;
  /**
   * Makes the data plane hold exactly `intent`: compares with what is installed (not with what it
   * believes it installed), so it also repairs drift. At start, periodically, after a failed delta.
   */
  realise(intent: ForwardingIntent): Promise<RealiseResult>;
  /**
   * Applies `delta`, which turns `before` (the last intent realised) into `after`, without reading the
   * data plane back. Throws when a write fails; the caller then realises `after` in full.
   */
  applyDelta(before: ForwardingIntent, after: ForwardingIntent, delta: IntentDelta): Promise<RealiseResult>;
  /** Hooks a workload's or function's link into the data plane (before its entries reference it). */
  attach(link: string): Promise<void>;
  /** Unhooks a link that is about to go. */
  detach(link: string): Promise<void>;
  readCounters(): Promise<BackendCounters>;
  /** Removes everything the backend owns (routes, rules, maps, programs, filters, its sysctls). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

function describe(item: IntentItem): string {
  switch (item.kind) {
    case 'sid':
      return `SID ${formatIpv6(item.sid)} (${item.behavior})`;
    case 'entry':
      return `entry ${formatPrefix(item.prefix)}${item.from ? ` from ${formatPrefix(item.from)}` : ''}`;
    case 'attachment':
      return `link ${item.link}`;
    case 'hmac-key':
      return `HMAC key ${item.keyId}`;
  }
}

const IPV4_BEHAVIORS: ReadonlySet<Behavior> = new Set(['End.DT4', 'End.DT46', 'End.DX4']);

/** The scope an item looks into or fills, if any. */
function scopeOf(item: IntentItem): Scope | undefined {
  if (item.kind === 'entry') return item.scope;
  if (item.kind === 'sid') return item.lookup;
  if (item.kind === 'attachment') return item.ingress;
  return undefined;
}

/** Why `caps` cannot realise `item`, or undefined when it can. */
export function unsupportedReason(caps: BackendCapabilities, item: IntentItem): string | undefined {
  const what = describe(item);
  const scope = scopeOf(item);
  if (scope && !caps.scopes.has(scope.kind))
    return `${what}: the ${caps.name} backend has no ${scope.kind} scope; it realises ${[...caps.scopes].join(', ')}`;
  if (item.kind === 'sid') {
    if (IPV4_BEHAVIORS.has(item.behavior) && !caps.ipv4Inner)
      return `${what}: the ${caps.name} backend does not carry IPv4 inside SRv6`;
    if (!caps.behaviors.has(item.behavior))
      return `${what}: the ${caps.name} backend has no ${item.behavior}; it runs ${[...caps.behaviors].join(', ')}`;
  }
  if (item.kind === 'hmac-key' && !caps.hmac)
    return `${what}: the ${caps.name} backend has no SRH HMAC, so the key is not installed and SRHs signed with it are not verified here; use dataplane.backend: kernel on a kernel with CONFIG_IPV6_SEG6_HMAC`;
  if (item.kind === 'entry') {
    if (item.from !== undefined && !caps.sourceSpecific)
      return `${what}: the ${caps.name} backend has no source-specific entries (policies with 'from')`;
    const a = item.action;
    if (a.kind === 'encap') {
      if (!caps.encapModes.has(a.mode))
        return `${what}: the ${caps.name} backend has no encapsulation mode ${a.mode}`;
      if (a.hmacKeyId !== undefined && !caps.hmac)
        return `${what}: the ${caps.name} backend cannot add an SRH HMAC (key ${a.hmacKeyId}); turn HMAC off or use another backend`;
    }
  }
  return undefined;
}

/** Every reason `caps` cannot realise `intent` (empty: it can). */
export function unsupportedItems(caps: BackendCapabilities, intent: ForwardingIntent): string[] {
  const reasons: string[] = [];
  for (const item of intent.items.values()) {
    const why = unsupportedReason(caps, item);
    if (why) reasons.push(why);
  }
  return reasons;
}
