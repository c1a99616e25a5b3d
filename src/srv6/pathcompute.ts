/**
 * Path computation: from a fabric view, everything one host must install, as plain data keyed so that
 * a change can be applied as a minimal delta.
 *
 * For host H:
 * - its own SIDs (local SID routes in the underlay scope);
 * - the other hosts' and the edges' locators via their underlay addresses, in the underlay scope and
 *   in every tenant scope that encapsulates (a backend may look the outer packet up again in the scope
 *   of the workload's input link after H.Encaps, as Linux does);
 * - per tenant with a local workload or network function: delivery to local workloads, encapsulation
 *   toward the tenant delivery SID (End.DT6) of the host where each remote workload lives now, the
 *   tenant's policies (segment lists through network functions, in order), external routes learned
 *   from the edge, and a final `unreachable` so that a miss never falls through to the underlay;
 * - per local workload: its link (MTU, the scope its traffic is looked up in) and its ingress filter;
 * - per local network function that is not SR-aware: the return scope that sends what it hands back
 *   along the rest of the chain.
 * Scopes are the model's (scope.ts); how a backend realises them (Linux tables and `ip rule`s) is
 * src/dataplane's.
 *
 * Everything a workload's location or existence influences is produced by `workloadObjects`, so a
 * workload that moves is handled by recomputing only its own objects (HostPathComputer).
 */
import type { Ipv6Address, Ipv6Prefix } from './address.ts';
import type { SidEntry } from './allocator.ts';
import type { Behavior } from './behavior.ts';
import {
  type EdgeView,
  type FabricView,
  type HostView,
  type NetworkFunctionView,
  type PolicyView,
  selectorMatches,
  selectsAll,
  type TenantView,
  type WorkloadView,
  workloadMtu,
} from './fabric.ts';
import { entryKey, type Scope, sameScope, UNDERLAY } from './scope.ts';

interface RouteBase {
  readonly key: string;
  /** Where the route is looked up (scope.ts). */
  readonly scope: Scope;
  readonly prefix: Ipv6Prefix;
  /** Source-specific route (`ip -6 route ... from S`). */
  readonly from?: Ipv6Prefix;
  /** Why the route exists, for `segmesh path` and logs. */
  readonly reason: string;
}

export interface LocatorRoute extends RouteBase {
  readonly kind: 'locator';
  readonly via: Ipv6Address;
}

export type EncapMode = 'encap' | 'encap.red';

export interface EncapRoute extends RouteBase {
  readonly kind: 'encap';
  readonly tenant: string;
  readonly mode: EncapMode;
  /** Travel order: the first segment is the first SID the packet visits. */
  readonly segments: readonly Ipv6Address[];
  readonly hmacKeyId?: number;
}

export interface DeliverRoute extends RouteBase {
  readonly kind: 'deliver';
  readonly tenant: string;
  readonly link: string;
}

export interface Seg6LocalRoute extends RouteBase {
  readonly kind: 'seg6local';
  readonly behavior: Behavior;
  readonly sidKey: string;
  readonly tenant?: string;
  /** End.DT6: the scope the decapsulated packet is looked up in. */
  readonly lookup?: Scope;
  readonly nextHop?: Ipv6Address;
  /** Output link for End.DX6 toward a network function. */
  readonly link?: string;
}

export interface UnreachableRoute extends RouteBase {
  readonly kind: 'unreachable';
  readonly tenant: string;
}

export type PlannedRoute = LocatorRoute | EncapRoute | DeliverRoute | Seg6LocalRoute | UnreachableRoute;

/** What a workload may not send (enforced on its link's ingress by the data plane). */
export interface PlannedFilter {
  readonly kind: 'filter';
  readonly key: string;
  readonly link: string;
  /** Whose link: a workload's, or an SR-unaware network function's. */
  readonly workload?: string;
  readonly networkFunction?: string;
  readonly tenant: string;
  /**
   * The only source it may use (besides link-local fe80::/10 for neighbour discovery). Absent on a
   * function's link: it hands back others' packets.
   */
  readonly source?: Ipv6Address;
  /** SID block(s) and host addresses: never a workload's destination. */
  readonly denyDestinations: readonly Ipv6Prefix[];
}

export interface PlannedLink {
  readonly kind: 'link';
  readonly key: string;
  readonly link: string;
  readonly mtu: number;
  readonly tenant: string;
  readonly workload?: string;
  readonly networkFunction?: string;
  readonly address?: Ipv6Address;
  /** The scope what arrives from the link is looked up in (none: an SR-aware function's link). */
  readonly ingress?: Scope;
  /** Why the link is looked up in that scope. */
  readonly ingressReason?: string;
}

/** An HMAC key this host installs, so that SRHs signed with it verify here (the secret is never shown). */
export interface PlannedHmacKey {
  readonly kind: 'hmac-key';
  readonly key: string;
  readonly keyId: number;
  readonly algorithm: 'sha1' | 'sha256';
  readonly secret: Uint8Array;
  readonly reason: string;
}

export type PlannedObject = PlannedRoute | PlannedFilter | PlannedLink | PlannedHmacKey;

/** The plan's (and the intent's) key of an HMAC key. */
export function hmacKeyKey(keyId: number): string {
  return `k|${keyId}`;
}

export interface PlanDelta {
  readonly added: PlannedObject[];
  readonly changed: PlannedObject[];
  readonly removed: PlannedObject[];
}

export class PathComputeError extends Error {
  override readonly name = 'PathComputeError';
}

const DEFAULT_ROUTE: Ipv6Prefix = { address: 0n, length: 0 };

/** The key of a route: the intent's entry key (scope.ts). */
export const routeKey = entryKey;

function host128(address: Ipv6Address): Ipv6Prefix {
  return { address, length: 128 };
}

type Emit = (object: PlannedObject) => void;

/*
 * Values that depend on one object of the view only, shared by every host's plan instead of built
 * again per route per host: a workload's /128, its "lives on" reason, a locator's and a policy's
 * reason. Every host routes to every other host's locator and to every remote workload of its
 * tenants, so these were built hosts x (hosts + workloads) times; shared, a consumer (the plan
 * formatter) can also cache what it derives from them by identity. Keyed by the view's objects, which
 * are never changed in place (a moved workload is a new WorkloadView).
 */
const workloadPrefixes = new WeakMap<WorkloadView, Ipv6Prefix>();
const livesOnReasons = new WeakMap<WorkloadView, string>();
const locatorReasons = new WeakMap<HostView | EdgeView, string>();
const policyReasons = new WeakMap<PolicyView, string>();
const oneSegmentLists = new WeakMap<SidEntry, readonly Ipv6Address[]>();
const denyLists = new WeakMap<FabricView, readonly Ipv6Prefix[]>();

/** [sid]: a delivery SID's one-segment list, the same array in every host's plan. */
function oneSegmentList(sid: SidEntry): readonly Ipv6Address[] {
  let segs = oneSegmentLists.get(sid);
  if (segs === undefined) {
    segs = Object.freeze([sid.sid]);
    oneSegmentLists.set(sid, segs);
  }
  return segs;
}

/**
 * What no workload may send to (SID block(s) and host addresses): a function of the view's hosts and
 * edges, which a view never changes (only its workloads do), so one list per view for every host.
 */
function denyDestinations(view: FabricView): readonly Ipv6Prefix[] {
  let list = denyLists.get(view);
  if (list === undefined) {
    const block = view.locatorBlock ? [view.locatorBlock] : [...view.hosts.values()].map((h) => h.locator);
    list = Object.freeze([
      ...block,
      ...[...view.edges.values()].flatMap((e) => e.locators),
      ...[...view.hosts.values()].map((h) => host128(h.underlay)),
    ]);
    denyLists.set(view, list);
  }
  return list;
}

function workloadPrefix(w: WorkloadView): Ipv6Prefix {
  let p = workloadPrefixes.get(w);
  if (p === undefined) {
    p = host128(w.address);
    workloadPrefixes.set(w, p);
  }
  return p;
}

function livesOnReason(w: WorkloadView): string {
  let r = livesOnReasons.get(w);
  if (r === undefined) {
    r = `workload ${w.id} lives on ${w.host}`;
    livesOnReasons.set(w, r);
  }
  return r;
}

function locatorReason(owner: HostView | EdgeView, kind: 'host' | 'edge'): string {
  let r = locatorReasons.get(owner);
  if (r === undefined) {
    r = `locator of ${kind} ${owner.name}`;
    locatorReasons.set(owner, r);
  }
  return r;
}

function policyReason(p: PolicyView): string {
  let r = policyReasons.get(p);
  if (r === undefined) {
    r = `policy ${p.name} via ${p.via.join(',')}`;
    policyReasons.set(p, r);
  }
  return r;
}

/**
 * What every host's plan of one view has in common, for a caller that plans many hosts of the same
 * view (`segmesh plan` plans them all): each host's tenants, and the routes that are the same
 * objects in every plan — a locator route in a scope, a remote workload's encapsulation toward its
 * delivery SID. Without it, each host builds them again (hosts x (hosts + workloads) objects and key
 * strings). The plans are equal either way (test/unit/srv6/pathcompute-shared.test.ts); planned
 * objects are never changed in place, so sharing them between plans is safe. For one view only.
 */
export class SharedPlanning {
  readonly view: FabricView;
  /** Per host, activeTenants(view, host): one pass over the workloads for all hosts. */
  readonly #tenants: Map<string, Set<string>>;
  /** host name -> tenant -> [delivery SID] (see HostContext.deliverySegments). */
  readonly deliverySegments = new Map<string, Map<string, readonly Ipv6Address[]>>();
  /** Per scope, the locator routes of every host and edge in it, in plan order, with their host. */
  readonly #locators = new Map<Scope, Array<{ host: string | undefined; route: LocatorRoute }>>();
  /** Per workload and scope (egress, forward), its encapsulation route as seen from another host. */
  readonly #remote = new WeakMap<WorkloadView, Map<Scope, EncapRoute>>();
  /** Per workload, what workloadObjects emits for it on a host where that is host-independent. */
  readonly #remoteObjects = new WeakMap<WorkloadView, readonly PlannedObject[]>();
  /** Tenants with a source-specific policy (its routes depend on each host's local sources). */
  readonly #sourceTenants = new Set<string>();
  /** Per tenant, the hosts of the SR-unaware functions on its policies' chains (return scopes). */
  readonly #chainHosts = new Map<string, Set<string>>();

  constructor(view: FabricView) {
    this.view = view;
    this.#tenants = new Map();
    for (const h of view.hosts.keys()) this.#tenants.set(h, new Set());
    // The order of each set is activeTenants' (workloads in view order, then functions).
    for (const w of view.workloads.values()) {
      this.#tenants.get(w.host)?.add(w.tenant);
      for (const f of w.formerHosts ?? []) this.#tenants.get(f)?.add(w.tenant);
    }
    for (const n of view.networkFunctions.values()) this.#tenants.get(n.host)?.add(n.tenant);
    for (const p of view.policies) {
      if (!selectsAll(p.from)) this.#sourceTenants.add(p.tenant);
      for (const name of p.via) {
        const nf = view.networkFunctions.get(name);
        if (nf === undefined || nf.mode !== 'sr-unaware') continue;
        let hosts = this.#chainHosts.get(p.tenant);
        if (hosts === undefined) {
          hosts = new Set();
          this.#chainHosts.set(p.tenant, hosts);
        }
        hosts.add(nf.host);
      }
    }
  }

  /**
   * What workloadObjects emits for `w` (of a tenant active on ctx's host), in order, when that is the
   * same on every such host: `w` lives elsewhere and was not just redirected from there, its tenant
   * has no source-specific policy (whose routes depend on the host's local sources) and no
   * SR-unaware function of its chains runs there (return scopes). Then a workload's objects depend
   * on the view only (its delivery SID, its policies' segment lists): built on the first such host,
   * emitted as they are on the others. Undefined where the host makes a difference.
   */
  remoteObjects(ctx: HostContext, w: WorkloadView): readonly PlannedObject[] | undefined {
    const host = ctx.host.name;
    if (w.host === host || w.formerHosts?.includes(host) || this.#sourceTenants.has(w.tenant))
      return undefined;
    if (this.#chainHosts.get(w.tenant)?.has(host)) return undefined;
    let list = this.#remoteObjects.get(w);
    if (list === undefined) {
      const built: PlannedObject[] = [];
      objectsOfWorkload(ctx, w, (o) => built.push(o));
      list = built;
      this.#remoteObjects.set(w, list);
    }
    return list;
  }

  /** A fresh copy of the active tenants of `host` (a HostContext may not share its set). */
  activeTenants(host: string): Set<string> {
    return new Set(this.#tenants.get(host) ?? activeTenants(this.view, host));
  }

  /** Every host's and edge's locator route in `scope`, in the order hostObjects emits them. */
  locators(scope: Scope): ReadonlyArray<{ host: string | undefined; route: LocatorRoute }> {
    let list = this.#locators.get(scope);
    if (list === undefined) {
      list = [];
      for (const other of this.view.hosts.values())
        list.push({
          host: other.name,
          route: locatorRoute(scope, other.locator, other.underlay, locatorReason(other, 'host')),
        });
      for (const edge of this.view.edges.values()) {
        const reason = locatorReason(edge, 'edge');
        for (const l of edge.locators)
          list.push({ host: undefined, route: locatorRoute(scope, l, edge.underlay, reason) });
      }
      this.#locators.set(scope, list);
    }
    return list;
  }

  /** `w`'s route in `scope` (its tenant's egress or forward scope) on a host where it does not live. */
  remote(ctx: HostContext, w: WorkloadView, scope: Scope): EncapRoute {
    let byScope = this.#remote.get(w);
    if (byScope === undefined) {
      byScope = new Map();
      this.#remote.set(w, byScope);
    }
    let r = byScope.get(scope);
    if (r === undefined) {
      const segs = ctx.deliverySegments(w.host, w.tenant);
      r = encapRoute(ctx, scope, workloadPrefix(w), undefined, w.tenant, segs, livesOnReason(w));
      byScope.set(scope, r);
    }
    return r;
  }
}

function locatorRoute(scope: Scope, prefix: Ipv6Prefix, via: Ipv6Address, reason: string): LocatorRoute {
  return { kind: 'locator', key: routeKey(scope, prefix), scope, prefix, via, reason };
}

/** Per-host facts computed once per plan and shared by every workload's objects. */
class HostContext {
  readonly view: FabricView;
  readonly host: HostView;
  readonly activeTenants: Set<string>;
  readonly localNfs: NetworkFunctionView[];
  readonly policiesByTenant = new Map<string, PolicyView[]>();
  /** Tenants with a policy that selects some sources (`from`). */
  readonly sourcePolicies = new Set<string>();
  readonly denyDestinations: readonly Ipv6Prefix[];
  readonly mtu: number;
  readonly shared: SharedPlanning | undefined;
  /** host name + tenant -> [delivery SID]: shared arrays, one per destination host and tenant. */
  readonly #deliverySegments: Map<string, Map<string, readonly Ipv6Address[]>>;
  /** Per tenant, its policies with a `from` selector (source-specific). */
  readonly #sourceSpecific = new Map<string, PolicyView[]>();
  /**
   * Per source-specific policy, the workloads its `from` and its `to` select, by id: what a change
   * of one workload must pair it with, without a scan of every workload (kept current by {@link track}).
   */
  readonly #sources = new Map<PolicyView, Map<string, WorkloadView>>();
  readonly #destinations = new Map<PolicyView, Map<string, WorkloadView>>();

  constructor(view: FabricView, hostName: string, shared?: SharedPlanning) {
    const host = view.hosts.get(hostName);
    if (!host)
      throw new PathComputeError(
        `host ${hostName} is not in the fabric; known hosts: ${[...view.hosts.keys()].join(', ')}`,
      );
    if (shared !== undefined && shared.view !== view)
      throw new PathComputeError('SharedPlanning of another view: make one per view');
    this.view = view;
    this.host = host;
    this.shared = shared;
    this.#deliverySegments = shared?.deliverySegments ?? new Map();
    this.activeTenants = shared ? shared.activeTenants(hostName) : activeTenants(view, hostName);
    this.localNfs = [...view.networkFunctions.values()].filter((n) => n.host === hostName);
    for (const p of view.policies) {
      const list = this.policiesByTenant.get(p.tenant) ?? [];
      list.push(p);
      this.policiesByTenant.set(p.tenant, list);
      if (!selectsAll(p.from)) {
        this.sourcePolicies.add(p.tenant);
        const own = this.#sourceSpecific.get(p.tenant) ?? [];
        own.push(p);
        this.#sourceSpecific.set(p.tenant, own);
        this.#sources.set(p, new Map());
        this.#destinations.set(p, new Map());
      }
    }
    if (this.#sources.size > 0) for (const w of view.workloads.values()) this.track(undefined, w);
    this.denyDestinations = denyDestinations(view);
    this.mtu = workloadMtu(view.underlayMtu, view.maxSegments, view.hmacKeyId !== undefined);
  }

  /** Workload `old` is replaced by `next` in the view (either may be absent): the selections follow. */
  track(old: WorkloadView | undefined, next: WorkloadView | undefined): void {
    if (old)
      for (const p of this.#sourceSpecific.get(old.tenant) ?? []) {
        this.#sources.get(p)!.delete(old.id);
        this.#destinations.get(p)!.delete(old.id);
      }
    if (next)
      for (const p of this.#sourceSpecific.get(next.tenant) ?? []) {
        if (selectorMatches(p.from, next)) this.#sources.get(p)!.set(next.id, next);
        if (selectorMatches(p.to, next)) this.#destinations.get(p)!.set(next.id, next);
      }
  }

  /** The workloads source-specific policy `p`'s `from` selects (its tenant's, any host). */
  sourcesOf(p: PolicyView): Iterable<WorkloadView> {
    return this.#sources.get(p)!.values();
  }

  /** The workloads source-specific policy `p`'s `to` selects. */
  destinationsOf(p: PolicyView): Iterable<WorkloadView> {
    return this.#destinations.get(p)!.values();
  }

  deliverySegments(hostName: string, tenant: string): readonly Ipv6Address[] {
    // Hot path (once per remote workload): two map lookups, no string building.
    let byTenant = this.#deliverySegments.get(hostName);
    if (!byTenant) {
      byTenant = new Map();
      this.#deliverySegments.set(hostName, byTenant);
    }
    let segs = byTenant.get(tenant);
    if (!segs) {
      const sid = this.view.hosts.get(hostName)?.sids.tenantDelivery.get(tenant);
      if (!sid) throw new PathComputeError(`host ${hostName} has no delivery SID for tenant ${tenant}`);
      segs = oneSegmentList(sid);
      byTenant.set(tenant, segs);
    }
    return segs;
  }

  encapMode(segments: readonly Ipv6Address[], hmac: boolean): EncapMode {
    // Reduced encapsulation only when one segment suffices and no HMAC must travel in an SRH: with
    // HMAC on, a packet without an SRH would bypass the kernel's HMAC check (isolation-pitfalls.md).
    return segments.length === 1 && !hmac ? 'encap.red' : 'encap';
  }
}

export function activeTenants(view: FabricView, hostName: string): Set<string> {
  const active = new Set<string>();
  for (const w of view.workloads.values()) {
    if (w.host === hostName || w.formerHosts?.includes(hostName)) active.add(w.tenant);
  }
  for (const n of view.networkFunctions.values()) if (n.host === hostName) active.add(n.tenant);
  return active;
}

/**
 * The segment list of a chain from network function `start` on: SIDs of SR-aware functions, up to and
 * including the first SR-unaware one (its End.DX6 decapsulates; its host continues the chain), or
 * else ending at the destination's delivery SID. Undefined when nothing is left (deliver locally).
 */
function chainSegments(
  ctx: HostContext,
  policy: PolicyView,
  start: number,
  dest: WorkloadView,
): readonly Ipv6Address[] | undefined {
  const segments: Ipv6Address[] = [];
  for (let i = start; i < policy.via.length; i++) {
    const nf = ctx.view.networkFunctions.get(policy.via[i]!)!;
    const sid = ctx.view.hosts.get(nf.host)!.sids.networkFunctions.get(nf.name)!;
    segments.push(sid.sid);
    if (nf.mode === 'sr-unaware') return segments;
  }
  if (segments.length === 0 && dest.host === ctx.host.name) return undefined;
  segments.push(...ctx.deliverySegments(dest.host, dest.tenant));
  return segments;
}

function encapRoute(
  ctx: HostContext,
  scope: Scope,
  prefix: Ipv6Prefix,
  from: Ipv6Prefix | undefined,
  tenant: string,
  segments: readonly Ipv6Address[],
  reason: string,
): EncapRoute {
  const hmacKeyId = ctx.view.hmacKeyId;
  // Built field by field rather than with conditional spreads: this runs once per route.
  const route: { -readonly [K in keyof EncapRoute]: EncapRoute[K] } = {
    kind: 'encap',
    key: routeKey(scope, prefix, from),
    scope,
    prefix,
    tenant,
    mode: ctx.encapMode(segments, hmacKeyId !== undefined),
    segments,
    reason,
  };
  if (from) route.from = from;
  if (hmacKeyId !== undefined) route.hmacKeyId = hmacKeyId;
  return route;
}

function deliverRoute(scope: Scope, w: WorkloadView, from?: Ipv6Prefix): DeliverRoute {
  const prefix = workloadPrefix(w);
  return {
    kind: 'deliver',
    key: routeKey(scope, prefix, from),
    scope,
    prefix,
    ...(from ? { from } : {}),
    tenant: w.tenant,
    link: w.link,
    reason: `workload ${w.id} is local`,
  };
}

/** Behaviours that decapsulate into a lookup scope (the tenant's). */
const DECAP_LOOKUP: ReadonlySet<string> = new Set(['End.DT6', 'End.DT4', 'End.DT46']);

/** Host-level objects: SIDs, locators, per-tenant defaults, external routes, NF return scopes. */
function hostObjects(ctx: HostContext, emit: Emit): void {
  const { view, host } = ctx;
  for (const sid of host.sids.all) {
    const prefix = host128(sid.sid);
    let link: string | undefined;
    if (sid.networkFunction) link = view.networkFunctions.get(sid.networkFunction)?.link;
    const route: Seg6LocalRoute = {
      kind: 'seg6local',
      key: routeKey(UNDERLAY, prefix),
      scope: UNDERLAY,
      prefix,
      behavior: sid.behavior,
      sidKey: sid.key,
      ...(sid.tenant !== undefined ? { tenant: sid.tenant } : {}),
      ...(sid.lookup !== undefined && DECAP_LOOKUP.has(sid.behavior) ? { lookup: sid.lookup } : {}),
      ...(sid.nextHop !== undefined ? { nextHop: sid.nextHop } : {}),
      ...(link !== undefined && sid.behavior === 'End.DX6' ? { link } : {}),
      reason: `own SID ${sid.key}`,
    };
    emit(route);
  }

  // Which scopes carry locator routes: the underlay, the egress (and forward) scope of every active
  // tenant, the return scope of every local SR-unaware function.
  const scopes: Scope[] = [UNDERLAY];
  for (const name of ctx.activeTenants) {
    const t = view.tenants.get(name)!;
    scopes.push(t.scopes.egress);
    if (t.edgeMode === 'aggregate') scopes.push(t.scopes.forward);
  }
  const nfReturn = ctx.localNfs.filter((n) => n.mode === 'sr-unaware');
  for (const nf of nfReturn) scopes.push(host.sids.networkFunctions.get(nf.name)!.returns!);

  if (ctx.shared !== undefined) {
    for (const scope of scopes)
      for (const l of ctx.shared.locators(scope)) if (l.host !== host.name) emit(l.route);
  } else {
    unsharedLocators(ctx, scopes, emit);
  }

  for (const name of ctx.activeTenants) {
    const t = view.tenants.get(name)!;
    tenantObjects(ctx, t, emit);
  }

  for (const nf of ctx.localNfs) {
    const sid = host.sids.networkFunctions.get(nf.name)!;
    const returns = nf.mode === 'sr-unaware' ? sid.returns! : undefined;
    emit({
      kind: 'link',
      key: `l|${nf.link}`,
      link: nf.link,
      mtu: ctx.mtu,
      tenant: nf.tenant,
      networkFunction: nf.name,
      ...(returns
        ? { ingress: returns, ingressReason: `traffic handed back by network function ${nf.name}` }
        : {}),
    });
    if (returns) {
      emit(unreachable(returns, nf.tenant, `end of ${nf.name}'s return table`));
      // What it hands back goes to workloads: never to a SID or a host's address, as from a workload
      // (a function's link on a host without workloads is validated all the same).
      emit({
        kind: 'filter',
        key: `f|${nf.link}`,
        link: nf.link,
        networkFunction: nf.name,
        tenant: nf.tenant,
        denyDestinations: ctx.denyDestinations,
      });
    }
  }
}

/** hostObjects' locator routes without SharedPlanning: built for this host's plan. */
function unsharedLocators(ctx: HostContext, scopes: readonly Scope[], emit: Emit): void {
  const { view, host } = ctx;
  const locators: Array<{ prefix: Ipv6Prefix; via: Ipv6Address; reason: string }> = [];
  for (const other of view.hosts.values()) {
    if (other.name !== host.name)
      locators.push({ prefix: other.locator, via: other.underlay, reason: locatorReason(other, 'host') });
  }
  for (const edge of view.edges.values()) {
    const reason = locatorReason(edge, 'edge');
    for (const l of edge.locators) locators.push({ prefix: l, via: edge.underlay, reason });
  }
  for (const scope of scopes) {
    for (const l of locators) {
      emit({
        kind: 'locator',
        key: routeKey(scope, l.prefix),
        scope,
        prefix: l.prefix,
        via: l.via,
        reason: l.reason,
      });
    }
  }
}

function unreachable(scope: Scope, tenant: string, reason: string): UnreachableRoute {
  return {
    kind: 'unreachable',
    key: routeKey(scope, DEFAULT_ROUTE),
    scope,
    prefix: DEFAULT_ROUTE,
    tenant,
    reason,
  };
}

function tenantObjects(ctx: HostContext, t: TenantView, emit: Emit): void {
  const scopes = [
    t.scopes.egress,
    t.scopes.delivery,
    ...(t.edgeMode === 'aggregate' ? [t.scopes.forward] : []),
  ];
  for (const scope of scopes)
    emit(unreachable(scope, t.name, `tenant ${t.name}: a miss never reaches the main table`));
  // Routes learned from the edge: in the scopes that may leave the fabric. An external default route
  // replaces `unreachable` (same key), which is the tenant's explicit edge default.
  for (const r of ctx.view.externalRoutes) {
    if (r.tenant !== t.name) continue;
    const segments = [r.sid];
    for (const scope of [t.scopes.egress, ...(t.edgeMode === 'aggregate' ? [t.scopes.forward] : [])]) {
      emit({
        kind: 'encap',
        key: routeKey(scope, r.prefix),
        scope,
        prefix: r.prefix,
        tenant: t.name,
        // No HMAC toward the edge: edge routers here cannot add or check it (FRR 8.4).
        mode: ctx.encapMode(segments, false),
        segments,
        reason: `external route from edge ${r.edge}`,
      });
    }
  }
}

/**
 * Source-specific routes from `w`, wherever it lives, in the return scopes of local SR-unaware
 * functions: they hold routes from every workload a chain's `from` selects (the same routes the
 * destination loop of workloadObjects emits, in the same first-policy-wins order), so that adding or
 * removing w changes them. Kept apart (and skipped for tenants without `from` policies): the move path
 * stays small.
 */
function sourceReturnObjects(
  ctx: HostContext,
  w: WorkloadView,
  policies: readonly PolicyView[],
  emit: Emit,
): void {
  const { view, host } = ctx;
  const fromW = workloadPrefix(w);
  const claimedFromW = new Set<string>();
  for (const p of policies) {
    if (selectsAll(p.from) || !selectorMatches(p.from, w)) continue;
    p.via.forEach((name, i) => {
      const nf = view.networkFunctions.get(name)!;
      if (nf.host !== host.name || nf.mode !== 'sr-unaware') return;
      const scope = host.sids.networkFunctions.get(nf.name)!.returns!;
      const reason = policyReason(p);
      for (const d of ctx.destinationsOf(p)) {
        if (d.id === w.id) continue;
        const rest = chainSegments(ctx, p, i + 1, d);
        const r: PlannedRoute = rest
          ? encapRoute(ctx, scope, workloadPrefix(d), fromW, w.tenant, rest, `${reason}, after ${nf.name}`)
          : { ...deliverRoute(scope, d, fromW), reason: `${reason}, after ${nf.name}: local` };
        if (claimedFromW.has(r.key)) continue;
        claimedFromW.add(r.key);
        emit(r);
      }
    });
  }
}

/** Everything that depends on workload `w` (as destination, and as a local source). */
export function workloadObjects(ctx: HostContext, w: WorkloadView, emit: Emit): void {
  if (!ctx.activeTenants.has(w.tenant)) return;
  if (ctx.shared !== undefined) {
    const same = ctx.shared.remoteObjects(ctx, w);
    if (same !== undefined) {
      for (const o of same) emit(o);
      return;
    }
  }
  objectsOfWorkload(ctx, w, emit);
}

/** workloadObjects for a workload of a tenant active on the host, built for this host. */
function objectsOfWorkload(ctx: HostContext, w: WorkloadView, emit: Emit): void {
  const { view, host } = ctx;
  const t = view.tenants.get(w.tenant)!;
  const local = w.host === host.name;
  const prefix = workloadPrefix(w);

  // Destination: plain path.
  if (local) {
    emit(deliverRoute(t.scopes.egress, w));
    emit(deliverRoute(t.scopes.delivery, w));
    if (t.edgeMode === 'aggregate') emit(deliverRoute(t.scopes.forward, w));
  } else if (ctx.shared !== undefined && !w.formerHosts?.includes(host.name)) {
    // The same routes as below, built once for every host's plan.
    emit(ctx.shared.remote(ctx, w, t.scopes.egress));
    if (t.edgeMode === 'aggregate') emit(ctx.shared.remote(ctx, w, t.scopes.forward));
  } else {
    const segs = ctx.deliverySegments(w.host, w.tenant);
    const reason = livesOnReason(w);
    emit(encapRoute(ctx, t.scopes.egress, prefix, undefined, w.tenant, segs, reason));
    // The only case where the delivery scope forwards: this host just lost the workload to another.
    if (w.formerHosts?.includes(host.name)) {
      emit(
        encapRoute(
          ctx,
          t.scopes.delivery,
          prefix,
          undefined,
          w.tenant,
          segs,
          `redirect: ${w.id} moved to ${w.host}`,
        ),
      );
    }
    if (t.edgeMode === 'aggregate')
      emit(encapRoute(ctx, t.scopes.forward, prefix, undefined, w.tenant, segs, reason));
  }

  // Policies in their declared order: for one (destination, source) route key the first matching
  // policy wins, here, at the source side below and in every return table alike, so all hosts agree.
  const policies = ctx.policiesByTenant.get(w.tenant) ?? [];
  const claimed = new Set<string>();
  const emitPolicy = (r: PlannedRoute) => {
    if (claimed.has(r.key)) return;
    claimed.add(r.key);
    emit(r);
  };
  for (const p of policies) {
    if (!selectorMatches(p.to, w)) continue;
    const segs = chainSegments(ctx, p, 0, w)!;
    const reason = policyReason(p);
    if (selectsAll(p.from)) {
      emitPolicy(encapRoute(ctx, t.scopes.egress, prefix, undefined, w.tenant, segs, reason));
    } else {
      for (const s of ctx.sourcesOf(p)) {
        if (s.host !== host.name || s.id === w.id) continue;
        emitPolicy(encapRoute(ctx, t.scopes.egress, prefix, workloadPrefix(s), w.tenant, segs, reason));
      }
    }
    // Return scopes of local SR-unaware functions on this chain: continue after the function.
    p.via.forEach((name, i) => {
      const nf = view.networkFunctions.get(name)!;
      if (nf.host !== host.name || nf.mode !== 'sr-unaware') return;
      const scope = host.sids.networkFunctions.get(nf.name)!.returns!;
      const rest = chainSegments(ctx, p, i + 1, w);
      const sources = selectsAll(p.from)
        ? [undefined]
        : [...ctx.sourcesOf(p)].filter((s) => s.id !== w.id).map((s) => workloadPrefix(s));
      for (const from of sources) {
        emitPolicy(
          rest
            ? encapRoute(ctx, scope, prefix, from, w.tenant, rest, `${reason}, after ${nf.name}`)
            : { ...deliverRoute(scope, w, from), reason: `${reason}, after ${nf.name}: local` },
        );
      }
    });
  }

  // Source, wherever w lives: see sourceReturnObjects.
  if (ctx.sourcePolicies.has(w.tenant)) sourceReturnObjects(ctx, w, policies, emit);

  if (!local) return;
  // Source: link (looked up in the tenant's egress scope), filter, and source-specific policy routes from w.
  emit({
    kind: 'link',
    key: `l|${w.link}`,
    link: w.link,
    mtu: ctx.mtu,
    tenant: w.tenant,
    workload: w.id,
    address: w.address,
    ingress: t.scopes.egress,
    ingressReason: `workload ${w.id} of tenant ${w.tenant}`,
  });
  emit({
    kind: 'filter',
    key: `f|${w.link}`,
    link: w.link,
    workload: w.id,
    tenant: w.tenant,
    source: w.address,
    denyDestinations: ctx.denyDestinations,
  });
  const source = workloadPrefix(w);
  const claimedAsSource = new Set<string>();
  for (const p of policies) {
    if (selectsAll(p.from) || !selectorMatches(p.from, w)) continue;
    for (const d of ctx.destinationsOf(p)) {
      if (d.id === w.id) continue;
      const segs = chainSegments(ctx, p, 0, d)!;
      const r = encapRoute(ctx, t.scopes.egress, workloadPrefix(d), source, w.tenant, segs, policyReason(p));
      if (claimedAsSource.has(r.key)) continue;
      claimedAsSource.add(r.key);
      emit(r);
    }
  }
}

export interface HostPlan {
  readonly host: string;
  readonly objects: ReadonlyMap<string, PlannedObject>;
}

/**
 * Everything host `hostName` must install. `shared`: what the plans of the view's hosts have in
 * common, for a caller that plans many of them (the plan is the same with or without it).
 */
export function computeHostPlan(view: FabricView, hostName: string, shared?: SharedPlanning): HostPlan {
  const ctx = new HostContext(view, hostName, shared);
  const objects = new Map<string, PlannedObject>();
  const emit: Emit = (o) => {
    objects.set(o.key, o);
  };
  hostObjects(ctx, emit);
  for (const w of view.workloads.values()) workloadObjects(ctx, w, emit);
  for (const k of view.hmacKeys?.values() ?? [])
    emit({
      kind: 'hmac-key',
      key: hmacKeyKey(k.keyId),
      keyId: k.keyId,
      algorithm: k.algorithm,
      secret: k.secret,
      reason: `HMAC key ${k.keyId} of the fabric: SRHs signed with it verify here`,
    });
  return { host: hostName, objects };
}

function sameArray<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Structural equality of two planned objects with the same key. */
export function sameObject(a: PlannedObject, b: PlannedObject): boolean {
  if (a === b) return true;
  if (a.kind !== b.kind) return false;
  const ka = Object.keys(a) as Array<keyof PlannedObject>;
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    const va = a[k] as unknown;
    const vb = b[k] as unknown;
    if (va === vb) continue;
    if (Array.isArray(va) && Array.isArray(vb)) {
      if (va.length > 0 && typeof va[0] === 'object') {
        if (!sameArray(va.map(prefixText), vb.map(prefixText))) return false;
      } else if (!sameArray(va, vb)) return false;
      continue;
    }
    if (va instanceof Uint8Array && vb instanceof Uint8Array) {
      if (!sameArray([...va], [...vb])) return false;
      continue;
    }
    if (va && vb && typeof va === 'object' && typeof vb === 'object') {
      // Scopes carry a kind; every other object field is a prefix.
      if ('kind' in va || 'kind' in vb) {
        if (!sameScope(va as Scope, vb as Scope)) return false;
      } else if (prefixText(va as Ipv6Prefix) !== prefixText(vb as Ipv6Prefix)) return false;
      continue;
    }
    return false;
  }
  return true;
}

function prefixText(p: Ipv6Prefix): string {
  return `${p.address}/${p.length}`;
}

/** The delta that turns `before` into `after`. */
export function diffPlans(
  before: ReadonlyMap<string, PlannedObject>,
  after: ReadonlyMap<string, PlannedObject>,
): PlanDelta {
  const delta: PlanDelta = { added: [], changed: [], removed: [] };
  for (const [key, o] of after) {
    const old = before.get(key);
    if (!old) delta.added.push(o);
    else if (!sameObject(old, o)) delta.changed.push(o);
  }
  for (const [key, o] of before) if (!after.has(key)) delta.removed.push(o);
  return delta;
}

/**
 * Keeps one host's plan current under workload changes. A workload added, removed or moved
 * recomputes only that workload's objects; a change that activates or retires a tenant on this host
 * (its first or last local workload) recomputes the plan. Source-specific policies pair a workload
 * with the workloads their selectors hold (indexed per policy), not with a scan of the fabric.
 * `objects` is the live plan (it changes with every call), not a snapshot.
 */
export class HostPathComputer {
  readonly host: string;
  #view: FabricView;
  #ctx: HostContext;
  #objects: Map<string, PlannedObject>;
  /** Local workloads and functions per tenant: tells in O(1) whether a change (de)activates a tenant. */
  readonly #localCount = new Map<string, number>();

  constructor(view: FabricView, host: string) {
    this.host = host;
    this.#view = view;
    this.#ctx = new HostContext(view, host);
    this.#objects = new Map(computeHostPlan(view, host).objects);
    for (const w of view.workloads.values()) if (presentOn(w, host)) this.#count(w.tenant, 1);
    for (const n of view.networkFunctions.values()) if (n.host === host) this.#count(n.tenant, 1);
  }

  #count(tenant: string, by: number): void {
    this.#localCount.set(tenant, (this.#localCount.get(tenant) ?? 0) + by);
  }

  get objects(): ReadonlyMap<string, PlannedObject> {
    return this.#objects;
  }

  /** Adds or changes (moves) a workload. */
  upsertWorkload(w: WorkloadView): PlanDelta {
    const old = this.#view.workloads.get(w.id);
    return this.#change(old, w);
  }

  removeWorkload(id: string): PlanDelta {
    const old = this.#view.workloads.get(id);
    if (!old) return { added: [], changed: [], removed: [] };
    return this.#change(old, undefined);
  }

  moveWorkload(id: string, host: string): PlanDelta {
    const old = this.#view.workloads.get(id);
    if (!old) throw new PathComputeError(`cannot move unknown workload ${id}`);
    if (!this.#view.hosts.has(host)) throw new PathComputeError(`cannot move ${id} to unknown host ${host}`);
    return this.#change(old, { ...old, host });
  }

  #change(old: WorkloadView | undefined, next: WorkloadView | undefined): PlanDelta {
    const id = (old ?? next)!.id;
    const before = new Map<string, PlannedObject>();
    if (old) workloadObjects(this.#ctx, old, (o) => before.set(o.key, o));
    if (next) this.#view.workloads.set(id, next);
    else this.#view.workloads.delete(id);
    this.#ctx.track(old, next);

    if (old && presentOn(old, this.host)) this.#count(old.tenant, -1);
    if (next && presentOn(next, this.host)) this.#count(next.tenant, 1);
    const flips = (t: string | undefined) =>
      t !== undefined && (this.#localCount.get(t) ?? 0) > 0 !== this.#ctx.activeTenants.has(t);
    if (flips(old?.tenant) || flips(next?.tenant)) {
      this.#ctx = new HostContext(this.#view, this.host);
      const fresh = new Map(computeHostPlan(this.#view, this.host).objects);
      const delta = diffPlans(this.#objects, fresh);
      this.#objects = fresh;
      return delta;
    }
    const after = new Map<string, PlannedObject>();
    if (next) workloadObjects(this.#ctx, next, (o) => after.set(o.key, o));
    const delta = diffPlans(before, after);
    for (const o of delta.removed) this.#objects.delete(o.key);
    for (const o of delta.added) this.#objects.set(o.key, o);
    for (const o of delta.changed) this.#objects.set(o.key, o);
    return delta;
  }
}

/** The workload lives on `host`, or just left it and is redirected from there. */
function presentOn(w: WorkloadView, host: string): boolean {
  return w.host === host || (w.formerHosts?.includes(host) ?? false);
}

export function isRoute(o: PlannedObject): o is PlannedRoute {
  return (
    o.kind === 'locator' ||
    o.kind === 'encap' ||
    o.kind === 'deliver' ||
    o.kind === 'seg6local' ||
    o.kind === 'unreachable'
  );
}
