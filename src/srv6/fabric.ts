/**
 * The fabric view: everything one host knows about the fabric (from gossip, BGP and its own
 * workloads), already validated and with every locator, SID and opaque address resolved. The path
 * computation reads only this.
 *
 * `buildFabricView` turns a description (the `segmesh plan` file, or the agent's merged state) into a
 * view: derives locators, allocates SIDs, assigns opaque addresses, and rejects what cannot work
 * (`checkFabric` in validate.ts: every problem, with its key path, value and fix).
 */
import { formatIpv6, formatPrefix, type Ipv6Address, type Ipv6Prefix, prefixContains } from './address.ts';
import { allocateHostSids, type HostSids } from './allocator.ts';
import { type HostCapabilities, LINUX_WITHOUT_VRF } from './behavior.ts';
import { hashHex8 } from './hash.ts';
import { allocateAddress } from './ipam.ts';
import { type TenantScopes, tenantScopes } from './scope.ts';
import { F3216, type SidStructure, sidLocator } from './sid.ts';
import { NF_LINK_PREFIX, WORKLOAD_LINK_PREFIX } from './tables.ts';
import { checkFabric, type FabricIssue } from './validate.ts';

export type Labels = Readonly<Record<string, string>>;

/** Which workloads of a tenant: by name and/or by labels (all must match). Empty selects all. */
export interface Selector {
  readonly workloads?: readonly string[];
  readonly labels?: Labels;
}

export interface HostInput {
  readonly name: string;
  readonly underlay: Ipv6Address;
  readonly locator?: Ipv6Prefix;
  readonly capabilities?: HostCapabilities;
  /** Previous SID assignment (key -> function), to keep SIDs stable across collisions. */
  readonly previousSids?: ReadonlyMap<string, bigint>;
}

export interface TenantInput {
  readonly name: string;
  readonly id: number;
  readonly prefixes: readonly Ipv6Prefix[];
  readonly routeTarget?: string;
  /** How the edge reaches this tenant: a route per workload, or one aggregate per host. */
  readonly edgeMode?: 'per-workload' | 'aggregate';
  /** The tenant also carries IPv4: its hosts need End.DT46, hence Linux VRF devices. */
  readonly ipv4?: boolean;
}

export interface WorkloadInput {
  /** Identity: stable across restarts and moves (CNI SEGMESH_IDENTITY, pod namespace/name). */
  readonly id: string;
  readonly tenant: string;
  readonly host: string;
  readonly address?: Ipv6Address;
  readonly labels?: Labels;
  /** Host-side link name; derived from the identity when absent. */
  readonly link?: string;
  /**
   * Hosts the workload just left (make before break): they redirect what still arrives for it to
   * its current host instead of dropping it, until the old instance is removed.
   */
  readonly formerHosts?: readonly string[];
}

export interface NetworkFunctionInput {
  readonly name: string;
  readonly tenant: string;
  readonly host: string;
  readonly mode: 'sr-aware' | 'sr-unaware';
  /** On-link address of an sr-unaware function (End.DX6 next hop). */
  readonly address?: Ipv6Address;
  readonly link?: string;
}

export interface PolicyInput {
  readonly name: string;
  readonly tenant: string;
  readonly from?: Selector;
  readonly to?: Selector;
  /** Network functions, in the order traffic traverses them. */
  readonly via: readonly string[];
}

export interface EdgeInput {
  readonly name: string;
  readonly underlay: Ipv6Address;
  readonly locators: readonly Ipv6Prefix[];
}

export interface ExternalRouteInput {
  readonly tenant: string;
  readonly prefix: Ipv6Prefix;
  readonly sid: Ipv6Address;
  readonly edge: string;
}

/**
 * A seg6 HMAC key the operator published (gossip `hmac/<id>`): every host installs it so that SRHs
 * signed with it verify on arrival (the kernel computes and checks the HMAC TLV with it).
 */
export interface HmacKeyInput {
  /** 1..4294967295: the id the HMAC TLV names. */
  readonly keyId: number;
  readonly algorithm: 'sha1' | 'sha256';
  /** 1..64 bytes. */
  readonly secret: Uint8Array;
}

export interface FabricInput {
  readonly structure?: SidStructure;
  /** Locator block that host locators are derived from (and that workload filters protect). */
  readonly locatorBlock?: Ipv6Prefix;
  /** Longest segment list any route may carry. Default 4. */
  readonly maxSegments?: number;
  /** HMAC key id for fabric-internal encapsulation; absent = HMAC off. */
  readonly hmacKeyId?: number;
  /** HMAC keys every host installs (verification of signed SRHs); independent of hmacKeyId. */
  readonly hmacKeys?: readonly HmacKeyInput[];
  /** MTU of the underlay links. Default 1500. */
  readonly underlayMtu?: number;
  readonly hosts: readonly HostInput[];
  readonly tenants: readonly TenantInput[];
  readonly workloads?: readonly WorkloadInput[];
  readonly networkFunctions?: readonly NetworkFunctionInput[];
  readonly policies?: readonly PolicyInput[];
  readonly edges?: readonly EdgeInput[];
  readonly externalRoutes?: readonly ExternalRouteInput[];
}

export interface HostView {
  readonly name: string;
  readonly underlay: Ipv6Address;
  readonly locator: Ipv6Prefix;
  readonly capabilities: HostCapabilities;
  readonly sids: HostSids;
}

export interface TenantView {
  readonly name: string;
  readonly id: number;
  readonly prefixes: readonly Ipv6Prefix[];
  readonly routeTarget?: string;
  readonly edgeMode: 'per-workload' | 'aggregate';
  readonly ipv4: boolean;
  /** Where its traffic is looked up (scope.ts). */
  readonly scopes: TenantScopes;
}

export interface WorkloadView {
  readonly id: string;
  readonly tenant: string;
  readonly host: string;
  readonly address: Ipv6Address;
  readonly labels: Labels;
  readonly link: string;
  /** The address was derived from the identity (sticky), not given. */
  readonly derivedAddress: boolean;
  readonly formerHosts?: readonly string[];
}

export interface NetworkFunctionView {
  readonly name: string;
  readonly tenant: string;
  readonly host: string;
  readonly mode: 'sr-aware' | 'sr-unaware';
  readonly address?: Ipv6Address;
  readonly link: string;
}

export interface PolicyView {
  readonly name: string;
  readonly tenant: string;
  readonly from: Selector;
  readonly to: Selector;
  readonly via: readonly string[];
}

export interface EdgeView {
  readonly name: string;
  readonly underlay: Ipv6Address;
  readonly locators: readonly Ipv6Prefix[];
}

export interface FabricView {
  readonly structure: SidStructure;
  readonly locatorBlock?: Ipv6Prefix;
  readonly maxSegments: number;
  readonly hmacKeyId?: number;
  /** By key id (absent: none). */
  readonly hmacKeys?: ReadonlyMap<number, HmacKeyInput>;
  readonly underlayMtu: number;
  readonly hosts: ReadonlyMap<string, HostView>;
  readonly tenants: ReadonlyMap<string, TenantView>;
  readonly workloads: Map<string, WorkloadView>;
  readonly networkFunctions: ReadonlyMap<string, NetworkFunctionView>;
  readonly policies: readonly PolicyView[];
  readonly edges: ReadonlyMap<string, EdgeView>;
  readonly externalRoutes: readonly ExternalRouteInput[];
}

/** A description that cannot work; `issues` holds every problem with its key path and fix. */
export class FabricError extends Error {
  override readonly name = 'FabricError';
  readonly issues: readonly FabricIssue[];
  constructor(issues: readonly FabricIssue[]) {
    super(issues.map((i) => `${i.message}; ${i.fix}`).join('\n'));
    this.issues = issues;
  }
}

export const DEFAULT_MAX_SEGMENTS = 4;

export function workloadLinkName(identity: string): string {
  return `${WORKLOAD_LINK_PREFIX}${hashHex8(identity)}`;
}

export function nfLinkName(name: string): string {
  return `${NF_LINK_PREFIX}${hashHex8(`nf:${name}`)}`;
}

/**
 * MTU of a workload link: the underlay MTU less the outer IPv6 header (40), the SRH (8 + 16 per
 * segment) and the HMAC TLV (40) when HMAC is on. Forwarded workload traffic does not learn a smaller
 * path MTU after H.Encaps (feasibility.md Q4 (d)), so the link itself must be small enough.
 */
export function workloadMtu(underlayMtu: number, maxSegments: number, hmac: boolean): number {
  return underlayMtu - 40 - (8 + 16 * maxSegments) - (hmac ? 40 : 0);
}

export function selectorMatches(selector: Selector, workload: WorkloadView): boolean {
  if (selector.workloads && selector.workloads.length > 0 && !selector.workloads.includes(workload.id))
    return false;
  if (selector.labels) {
    for (const key in selector.labels) if (workload.labels[key] !== selector.labels[key]) return false;
  }
  return true;
}

export function selectsAll(selector: Selector): boolean {
  return (selector.workloads?.length ?? 0) === 0 && Object.keys(selector.labels ?? {}).length === 0;
}

/** Name -> item, in name order: the view iterates in a canonical order whatever the input order. */
function byName<T extends { readonly name: string }>(items: readonly T[]): Map<string, T> {
  return new Map(
    [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((i) => [i.name, i]),
  );
}

export function buildFabricView(input: FabricInput): FabricView {
  // Every check that needs no SID allocation happens here first, reported all at once.
  const checked = checkFabric(input);
  if (checked.issues.length > 0 || !checked.locators) throw new FabricError(checked.issues);
  const locators = checked.locators;
  const structure = input.structure ?? F3216;
  const maxSegments = input.maxSegments ?? DEFAULT_MAX_SEGMENTS;
  const underlayMtu = input.underlayMtu ?? 1500;

  const tenants = new Map<string, TenantView>();
  for (const t of byName(input.tenants).values()) {
    tenants.set(t.name, {
      name: t.name,
      id: t.id,
      prefixes: t.prefixes,
      ...(t.routeTarget !== undefined ? { routeTarget: t.routeTarget } : {}),
      edgeMode: t.edgeMode ?? 'per-workload',
      ipv4: t.ipv4 ?? false,
      scopes: tenantScopes(t.name, t.id),
    });
  }

  const nfInputs = byName(input.networkFunctions ?? []);
  const hosts = new Map<string, HostView>();
  for (const h of byName(input.hosts).values()) {
    const locator = locators.get(h.name)!;
    const capabilities = h.capabilities ?? LINUX_WITHOUT_VRF;
    const sids = allocateHostSids({
      locator,
      structure,
      capabilities,
      tenants: [...tenants.values()].map((t) => ({
        name: t.name,
        id: t.id,
        aggregate: t.edgeMode === 'aggregate',
      })),
      networkFunctions: [...nfInputs.values()]
        .filter((n) => n.host === h.name)
        .map((n) => ({
          name: n.name,
          tenant: n.tenant,
          mode: n.mode,
          ...(n.address !== undefined ? { address: n.address } : {}),
        })),
      ...(h.previousSids ? { previous: h.previousSids } : {}),
    });
    for (const s of sids.all) {
      if (!prefixContains(locator, s.sid)) {
        throw new Error(
          `SID ${formatIpv6(s.sid)} of host ${h.name} lies outside its locator ${formatPrefix(locator)} (a bug in the allocator)`,
        );
      }
    }
    hosts.set(h.name, { name: h.name, underlay: h.underlay, locator, capabilities, sids });
  }

  const edges = byName(input.edges ?? []);
  const networkFunctions = new Map<string, NetworkFunctionView>();
  for (const n of nfInputs.values()) {
    networkFunctions.set(n.name, {
      name: n.name,
      tenant: n.tenant,
      host: n.host,
      mode: n.mode,
      ...(n.address !== undefined ? { address: n.address } : {}),
      link: n.link ?? nfLinkName(n.name),
    });
  }

  // Workloads: given addresses first (they are claims), then derived ones probe past them.
  const workloads = new Map<string, WorkloadView>();
  const taken = new Map<bigint, string>();
  const inputs = input.workloads ?? [];
  for (const w of inputs) if (w.address !== undefined) taken.set(w.address, w.id);
  for (const w of inputs) {
    const tenant = tenants.get(w.tenant)!;
    const address = w.address ?? allocateAddress(tenant.prefixes[0]!, w.id, (a) => taken.has(a));
    taken.set(address, w.id);
    workloads.set(w.id, {
      id: w.id,
      tenant: w.tenant,
      host: w.host,
      address,
      labels: w.labels ?? {},
      link: w.link ?? workloadLinkName(w.id),
      derivedAddress: w.address === undefined,
      ...(w.formerHosts && w.formerHosts.length > 0 ? { formerHosts: w.formerHosts } : {}),
    });
  }

  const policies: PolicyView[] = (input.policies ?? []).map((p) => ({
    name: p.name,
    tenant: p.tenant,
    from: p.from ?? {},
    to: p.to ?? {},
    via: p.via,
  }));

  return {
    structure,
    ...(input.locatorBlock ? { locatorBlock: input.locatorBlock } : {}),
    maxSegments,
    ...(input.hmacKeyId !== undefined ? { hmacKeyId: input.hmacKeyId } : {}),
    ...(input.hmacKeys && input.hmacKeys.length > 0
      ? { hmacKeys: new Map(input.hmacKeys.map((k) => [k.keyId, k])) }
      : {}),
    underlayMtu,
    hosts,
    tenants,
    workloads,
    networkFunctions,
    policies,
    edges,
    externalRoutes: input.externalRoutes ?? [],
  };
}

/** The locators a host's SID lies in, for a SID seen on the wire. */
export function hostOfSid(view: FabricView, sid: Ipv6Address): HostView | undefined {
  const locator = sidLocator(sid, view.structure);
  for (const h of view.hosts.values()) if (h.locator.address === locator.address) return h;
  return undefined;
}
