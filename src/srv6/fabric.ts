/**
 * The fabric view: everything one host knows about the fabric (from gossip, BGP and its own
 * workloads), already validated and with every locator, SID and opaque address resolved. The path
 * computation reads only this.
 *
 * `buildFabricView` turns a description (the `segmesh plan` file, or the agent's merged state) into a
 * view: derives locators, allocates SIDs, assigns opaque addresses, and rejects what cannot work with
 * a message that names the object and the fix.
 */
import {
  formatIpv6,
  formatPrefix,
  type Ipv6Address,
  type Ipv6Prefix,
  prefixContains,
  prefixCovers,
  prefixesOverlap,
} from './address.ts';
import { allocateHostSids, type HostSids } from './allocator.ts';
import { type HostCapabilities, LINUX_WITHOUT_VRF, unsupportedReason } from './behavior.ts';
import { hashHex8 } from './hash.ts';
import { allocateAddress } from './ipam.ts';
import { checkLocatorsDisjoint, deriveLocators } from './locator.ts';
import { type TenantScopes, tenantScopes } from './scope.ts';
import {
  F3216,
  formatStructure,
  locatorLength,
  type SidStructure,
  sidLocator,
  validateStructure,
} from './sid.ts';
import { MAX_TENANT_ID, NF_LINK_PREFIX, WORKLOAD_LINK_PREFIX } from './tables.ts';

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

export interface FabricInput {
  readonly structure?: SidStructure;
  /** Locator block that host locators are derived from (and that workload filters protect). */
  readonly locatorBlock?: Ipv6Prefix;
  /** Longest segment list any route may carry. Default 4. */
  readonly maxSegments?: number;
  /** HMAC key id for fabric-internal encapsulation; absent = HMAC off. */
  readonly hmacKeyId?: number;
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
  readonly underlayMtu: number;
  readonly hosts: ReadonlyMap<string, HostView>;
  readonly tenants: ReadonlyMap<string, TenantView>;
  readonly workloads: Map<string, WorkloadView>;
  readonly networkFunctions: ReadonlyMap<string, NetworkFunctionView>;
  readonly policies: readonly PolicyView[];
  readonly edges: ReadonlyMap<string, EdgeView>;
  readonly externalRoutes: readonly ExternalRouteInput[];
}

export class FabricError extends Error {
  override readonly name = 'FabricError';
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
function uniqueNames<T extends { readonly name: string }>(items: readonly T[], what: string): Map<string, T> {
  const map = new Map<string, T>();
  for (const item of [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (map.has(item.name))
      throw new FabricError(`${what} ${item.name} is defined twice; names must be unique`);
    map.set(item.name, item);
  }
  return map;
}

export function buildFabricView(input: FabricInput): FabricView {
  const structure = input.structure ?? F3216;
  validateStructure(structure);
  const maxSegments = input.maxSegments ?? DEFAULT_MAX_SEGMENTS;
  if (!Number.isInteger(maxSegments) || maxSegments < 1 || maxSegments > 16) {
    throw new FabricError(`maxSegments ${maxSegments} is not in 1..16`);
  }
  const underlayMtu = input.underlayMtu ?? 1500;
  const hmac = input.hmacKeyId !== undefined;
  if (workloadMtu(underlayMtu, maxSegments, hmac) < 1280) {
    throw new FabricError(
      `with underlay MTU ${underlayMtu}, ${maxSegments} segments${hmac ? ' and HMAC' : ''} leave workloads less than IPv6's minimum MTU of 1280; raise the underlay MTU or lower maxSegments`,
    );
  }

  const tenantInputs = uniqueNames(input.tenants, 'tenant');
  const tenants = new Map<string, TenantView>();
  for (const t of tenantInputs.values()) {
    if (!Number.isInteger(t.id) || t.id < 1 || t.id > MAX_TENANT_ID) {
      throw new FabricError(`tenant ${t.name} has id ${t.id}; use an integer in 1..${MAX_TENANT_ID}`);
    }
    if (t.prefixes.length === 0)
      throw new FabricError(`tenant ${t.name} has no prefix; give it at least one`);
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
  const allTenantPrefixes = [...tenants.values()].flatMap((t) => t.prefixes.map((p) => ({ t: t.name, p })));
  for (let i = 0; i < allTenantPrefixes.length; i++) {
    for (let j = i + 1; j < allTenantPrefixes.length; j++) {
      const a = allTenantPrefixes[i]!;
      const b = allTenantPrefixes[j]!;
      if (prefixesOverlap(a.p, b.p)) {
        throw new FabricError(
          `tenant prefixes overlap: ${a.t} ${formatPrefix(a.p)} and ${b.t} ${formatPrefix(b.p)}; an opaque address must name one workload of one tenant`,
        );
      }
    }
  }

  // Hosts: locators (given or derived), then SIDs.
  const hostInputs = uniqueNames(input.hosts, 'host');
  const fixed = new Map<string, Ipv6Prefix>();
  for (const h of hostInputs.values()) {
    if (h.locator) {
      if (h.locator.length !== locatorLength(structure)) {
        throw new FabricError(
          `host ${h.name} locator ${formatPrefix(h.locator)} is a /${h.locator.length}, but SID structure ${formatStructure(structure)} makes locators /${locatorLength(structure)}`,
        );
      }
      if (input.locatorBlock && !prefixCovers(input.locatorBlock, h.locator)) {
        throw new FabricError(
          `host ${h.name} locator ${formatPrefix(h.locator)} is outside the fabric locator block ${formatPrefix(input.locatorBlock)}`,
        );
      }
      fixed.set(h.name, h.locator);
    } else if (!input.locatorBlock) {
      throw new FabricError(
        `host ${h.name} has no locator and the fabric has no locatorBlock to derive one from`,
      );
    }
  }
  checkLocatorsDisjoint([...fixed].map(([host, locator]) => ({ host, locator })));
  const locators = input.locatorBlock
    ? deriveLocators(input.locatorBlock, structure, [...hostInputs.keys()], fixed)
    : fixed;

  const nfInputs = uniqueNames(input.networkFunctions ?? [], 'network function');
  const hosts = new Map<string, HostView>();
  for (const h of hostInputs.values()) {
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
        throw new FabricError(
          `SID ${formatIpv6(s.sid)} of host ${h.name} lies outside its locator ${formatPrefix(locator)}`,
        );
      }
    }
    hosts.set(h.name, { name: h.name, underlay: h.underlay, locator, capabilities, sids });
  }
  for (const h of hosts.values()) {
    for (const other of hosts.values()) {
      if (other !== h && other.underlay === h.underlay) {
        throw new FabricError(
          `hosts ${h.name} and ${other.name} share underlay address ${formatIpv6(h.underlay)}`,
        );
      }
    }
  }

  const edges = uniqueNames(input.edges ?? [], 'edge');
  for (const e of edges.values()) {
    for (const loc of e.locators) {
      for (const h of hosts.values()) {
        if (prefixesOverlap(loc, h.locator)) {
          throw new FabricError(
            `edge ${e.name} locator ${formatPrefix(loc)} overlaps host ${h.name} locator ${formatPrefix(h.locator)}`,
          );
        }
      }
    }
  }

  const networkFunctions = new Map<string, NetworkFunctionView>();
  for (const n of nfInputs.values()) {
    if (!hosts.has(n.host)) throw new FabricError(`network function ${n.name} is on unknown host ${n.host}`);
    if (!tenants.has(n.tenant))
      throw new FabricError(`network function ${n.name} is in unknown tenant ${n.tenant}`);
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
  const seen = new Set<string>();
  for (const w of inputs) {
    if (seen.has(w.id))
      throw new FabricError(`workload ${w.id} is listed twice; an identity runs once in the fabric`);
    seen.add(w.id);
    if (!hosts.has(w.host)) throw new FabricError(`workload ${w.id} is on unknown host ${w.host}`);
    const tenant = tenants.get(w.tenant);
    if (!tenant)
      throw new FabricError(`workload ${w.id} is in unknown tenant ${w.tenant}; define the tenant first`);
    const why = tenant.ipv4 ? unsupportedReason('End.DT46', hosts.get(w.host)!.capabilities) : undefined;
    if (why) {
      throw new FabricError(
        `workload ${w.id} of IPv4 tenant ${tenant.name} cannot run on host ${w.host}: ${why}`,
      );
    }
    if (w.address !== undefined) {
      if (!tenant.prefixes.some((p) => prefixContains(p, w.address!))) {
        throw new FabricError(
          `workload ${w.id} address ${formatIpv6(w.address)} is outside tenant ${tenant.name}'s prefixes ${tenant.prefixes.map(formatPrefix).join(', ')}`,
        );
      }
      const holder = taken.get(w.address);
      if (holder !== undefined) {
        throw new FabricError(`workloads ${holder} and ${w.id} both claim ${formatIpv6(w.address)}`);
      }
      taken.set(w.address, w.id);
    }
  }
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

  const policies: PolicyView[] = [];
  const policyNames = new Set<string>();
  for (const p of input.policies ?? []) {
    if (policyNames.has(p.name)) throw new FabricError(`policy ${p.name} is defined twice`);
    policyNames.add(p.name);
    if (!tenants.has(p.tenant)) throw new FabricError(`policy ${p.name} is for unknown tenant ${p.tenant}`);
    if (p.via.length === 0)
      throw new FabricError(`policy ${p.name} traverses no network function; list them in via`);
    const unaware = new Set<string>();
    for (const nf of p.via) {
      const fn = networkFunctions.get(nf);
      if (!fn) throw new FabricError(`policy ${p.name} names unknown network function ${nf}`);
      if (fn.tenant !== p.tenant) {
        throw new FabricError(
          `policy ${p.name} of tenant ${p.tenant} sends traffic through ${nf} of tenant ${fn.tenant}; a chain stays in its tenant`,
        );
      }
      if (fn.mode === 'sr-unaware') {
        // Its return table routes by destination (and source) only: it cannot tell two passes apart.
        if (unaware.has(nf)) {
          throw new FabricError(
            `policy ${p.name} passes SR-unaware network function ${nf} twice; use two instances or an SR-aware function`,
          );
        }
        unaware.add(nf);
      }
    }
    // The longest list a policy produces: every SR-aware function, then the function or the destination.
    const longest = longestChainList(p.via, networkFunctions);
    if (longest > maxSegments) {
      throw new FabricError(
        `policy ${p.name} needs a segment list of ${longest} segments, more than maxSegments ${maxSegments}; shorten the chain or raise maxSegments`,
      );
    }
    policies.push({ name: p.name, tenant: p.tenant, from: p.from ?? {}, to: p.to ?? {}, via: p.via });
  }

  for (const r of input.externalRoutes ?? []) {
    if (!tenants.has(r.tenant))
      throw new FabricError(`external route ${formatPrefix(r.prefix)} is for unknown tenant ${r.tenant}`);
    const edge = edges.get(r.edge);
    if (!edge) throw new FabricError(`external route ${formatPrefix(r.prefix)} names unknown edge ${r.edge}`);
    if (!edge.locators.some((l) => prefixContains(l, r.sid))) {
      throw new FabricError(
        `external route ${formatPrefix(r.prefix)} has SID ${formatIpv6(r.sid)} outside edge ${edge.name}'s locators`,
      );
    }
  }

  return {
    structure,
    ...(input.locatorBlock ? { locatorBlock: input.locatorBlock } : {}),
    maxSegments,
    ...(input.hmacKeyId !== undefined ? { hmacKeyId: input.hmacKeyId } : {}),
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

/** The number of segments the longest list of a chain carries (see pathcompute's chain split). */
function longestChainList(via: readonly string[], nfs: ReadonlyMap<string, NetworkFunctionView>): number {
  let longest = 0;
  let run = 0;
  for (const name of via) {
    run++;
    if (nfs.get(name)?.mode === 'sr-unaware') {
      longest = Math.max(longest, run);
      run = 0;
    }
  }
  return Math.max(longest, run + 1);
}

/** The locators a host's SID lies in, for a SID seen on the wire. */
export function hostOfSid(view: FabricView, sid: Ipv6Address): HostView | undefined {
  const locator = sidLocator(sid, view.structure);
  for (const h of view.hosts.values()) if (h.locator.address === locator.address) return h;
  return undefined;
}
