/**
 * What the agent knows, turned into the model's input (pure): the gossip view (hosts, their
 * workloads, operator-signed tenants and HMAC keys), this host's own workloads (authoritative for this
 * host), and the routes learned from edge routers over BGP.
 */
import type { ExternalRoute } from '../bgp/index.ts';
import type { FabricView as GossipView } from '../gossip/index.ts';
import {
  formatIpv6,
  type Ipv6Address,
  type Ipv6Prefix,
  ipv6FromBytes,
  makePrefix,
  parseIpv6,
  prefixContains,
} from '../srv6/address.ts';
import { behaviorFromCodepoint, LINUX_WITHOUT_VRF } from '../srv6/behavior.ts';
import type {
  EdgeInput,
  ExternalRouteInput,
  FabricInput,
  HmacKeyInput,
  HostInput,
  TenantInput,
  WorkloadInput,
  WorkloadView,
} from '../srv6/fabric.ts';
import { workloadLinkName } from '../srv6/fabric.ts';
import { locatorLength, type SidStructure } from '../srv6/sid.ts';
import { MAX_TENANT_ID } from '../srv6/tables.ts';
import type { LocalWorkload } from './workloads.ts';

export interface SelfHost {
  readonly name: string;
  readonly hostId: string;
  readonly underlay: Ipv6Address;
  readonly locator?: Ipv6Prefix;
}

export interface EdgePeer {
  readonly address: Ipv6Address;
  readonly locators: readonly Ipv6Prefix[];
}

export interface FabricStateInput {
  readonly self: SelfHost;
  readonly structure: SidStructure;
  readonly locatorBlock?: Ipv6Prefix;
  readonly maxSegments: number;
  readonly underlayMtu: number;
  readonly gossip: GossipView;
  readonly local: readonly LocalWorkload[];
  readonly external: readonly ExternalRoute[];
  readonly edgePeers: readonly EdgePeer[];
  /**
   * How this host's BGP advertises the tenants it exports (`bgp.advertise`): `aggregate` gives each
   * tenant with a route target a forward SID on this host, which the adverts point at.
   */
  readonly edgeMode?: 'per-workload' | 'aggregate';
  /** The key this host signs its encapsulations with (dataplane.hmac.keyId); absent: HMAC off. */
  readonly hmacKeyId?: number;
  /** The time HMAC keys' validity is judged at (default: now). */
  readonly nowMs?: number;
}

export interface FabricStateResult {
  readonly input: FabricInput;
  /** Things left out, with the reason (logged and counted by the caller). */
  readonly skipped: readonly string[];
  /** For single workload events after this state (workloadInputFor). */
  readonly context: WorkloadContext;
}

function prefixFromRecord(p: { address: Uint8Array; length: number } | undefined): Ipv6Prefix | undefined {
  if (p?.address.length !== 16) return undefined;
  return makePrefix(ipv6FromBytes(p.address), p.length);
}

export function buildFabricState(s: FabricStateInput): FabricStateResult {
  const skipped: string[] = [];
  const hosts = new Map<string, HostInput>();
  const nameOf = new Map<string, string>(); // gossip host id -> model host name
  hosts.set(s.self.name, {
    name: s.self.name,
    underlay: s.self.underlay,
    ...(s.self.locator ? { locator: s.self.locator } : {}),
  });
  nameOf.set(s.self.hostId, s.self.name);
  for (const h of s.gossip.hosts.values()) {
    if (h.id === s.self.hostId) continue;
    // Suspect hosts keep their routes (stale) until the dead interval: forwarding that still works
    // must survive a gossip-only partition.
    if (h.state === 'dead') continue;
    const name = h.record.name || h.id;
    if (hosts.has(name)) {
      skipped.push(`host ${h.id} claims name ${name}, which another host has`);
      continue;
    }
    if (h.record.underlayAddress.length !== 16) {
      skipped.push(`host ${name} has no underlay address`);
      continue;
    }
    const locator = prefixFromRecord(h.record.locator);
    if (!locator && !s.locatorBlock) {
      skipped.push(`host ${name} advertises no locator`);
      continue;
    }
    // What the host can decapsulate is read from the SIDs it publishes: one with End.DT4 or End.DT46
    // SIDs has VRF devices or the eBPF programs (its backend said so when it allocated them). Without
    // this, every other host would compute its SIDs without them and list fewer than it has.
    const ipv4Decap = h.record.sids.some((x) => {
      const b = behaviorFromCodepoint(x.behavior);
      return b === 'End.DT4' || b === 'End.DT46';
    });
    hosts.set(name, {
      name,
      underlay: ipv6FromBytes(h.record.underlayAddress),
      ...(locator ? { locator } : {}),
      ...(ipv4Decap ? { capabilities: { ...LINUX_WITHOUT_VRF, vrf: true } } : {}),
    });
    nameOf.set(h.id, name);
  }

  const tenants: TenantInput[] = [];
  for (const { record } of s.gossip.tenants.values()) {
    const id = record.table;
    if (!Number.isInteger(id) || id < 1 || id > MAX_TENANT_ID) {
      skipped.push(`tenant ${record.name} has id ${id}, not in 1..${MAX_TENANT_ID}`);
      continue;
    }
    const prefixes = record.prefixes.map(prefixFromRecord).filter((p): p is Ipv6Prefix => p !== undefined);
    if (prefixes.length === 0) {
      skipped.push(`tenant ${record.name} has no prefix`);
      continue;
    }
    tenants.push({
      name: record.name,
      id,
      prefixes,
      ...(record.routeTargets[0] ? { routeTarget: record.routeTargets[0] } : {}),
      ...(record.routeTargets[0] && s.edgeMode === 'aggregate' ? { edgeMode: 'aggregate' as const } : {}),
    });
  }
  const tenantNames = new Set(tenants.map((t) => t.name));

  const local = new Map(s.local.map((w) => [w.id, w]));
  const ctx: WorkloadContext = { self: s.self, nameOf, tenants: tenantNames, gossip: s.gossip, local };
  const workloads = new Map<string, WorkloadInput>();
  for (const id of s.gossip.workloads.keys()) {
    if (local.has(id)) continue; // our own come from the local store
    const w = workloadInputFor(id, ctx, skipped);
    if (w) workloads.set(id, w);
  }
  for (const id of local.keys()) {
    const w = workloadInputFor(id, ctx, skipped);
    if (w) workloads.set(id, w);
  }

  // HMAC keys: installed from the start of their validity's window on, so that a key is everywhere
  // before anyone signs with it; gone once it expired (and with its record).
  const nowMs = BigInt(s.nowMs ?? Date.now());
  const hmacKeys: HmacKeyInput[] = [];
  for (const { record } of s.gossip.hmacKeys.values()) {
    const keyId = /^\d{1,10}$/.test(record.keyId) ? Number(record.keyId) : Number.NaN;
    if (!(keyId >= 1 && keyId <= 0xffffffff)) {
      skipped.push(`HMAC key ${JSON.stringify(record.keyId)}: its id is not in 1..4294967295`);
      continue;
    }
    if (record.secret.length < 1 || record.secret.length > 64) {
      skipped.push(`HMAC key ${keyId}: a ${record.secret.length}-byte secret; the kernel takes 1..64 bytes`);
      continue;
    }
    if (record.notAfterMs !== 0n && record.notAfterMs <= nowMs) continue; // expired
    hmacKeys.push({ keyId, algorithm: 'sha256', secret: record.secret });
  }

  // Edge routers: one per BGP peer with routes; their locators from configuration, else from the
  // structure of the routes they send.
  const edges = new Map<string, { underlay: Ipv6Address; locators: Ipv6Prefix[] }>();
  const externalRoutes: ExternalRouteInput[] = [];
  for (const r of s.external) {
    const peer = s.edgePeers.find((p) => formatIpv6(p.address) === r.peer);
    const name = `edge-${r.peer.replace(/:/g, '-')}`;
    let edge = edges.get(name);
    if (!edge) {
      edge = { underlay: r.nextHop, locators: [...(peer?.locators ?? [])] };
      edges.set(name, edge);
    }
    if (!edge.locators.some((l) => prefixContains(l, r.sid))) {
      if (!r.structure) {
        skipped.push(
          `route ${formatIpv6(r.prefix.address)}/${r.prefix.length} from ${r.peer}: SID outside known locators`,
        );
        continue;
      }
      edge.locators.push(makePrefix(r.sid, locatorLength(r.structure)));
    }
    for (const tenant of r.tenants) {
      if (tenantNames.has(tenant)) externalRoutes.push({ tenant, prefix: r.prefix, sid: r.sid, edge: name });
    }
  }
  const edgeInputs: EdgeInput[] = [...edges].map(([name, e]) => ({
    name,
    underlay: e.underlay,
    locators: e.locators,
  }));

  return {
    input: {
      structure: s.structure,
      ...(s.locatorBlock ? { locatorBlock: s.locatorBlock } : {}),
      maxSegments: s.maxSegments,
      underlayMtu: s.underlayMtu,
      ...(s.hmacKeyId !== undefined ? { hmacKeyId: s.hmacKeyId } : {}),
      ...(hmacKeys.length > 0 ? { hmacKeys } : {}),
      hosts: [...hosts.values()],
      tenants,
      workloads: [...workloads.values()],
      edges: edgeInputs,
      externalRoutes,
    },
    skipped,
    context: ctx,
  };
}

/** What the model's input of one workload is made from (built once per full state, kept for events). */
export interface WorkloadContext {
  readonly self: SelfHost;
  /** Gossip host id -> model host name. */
  readonly nameOf: ReadonlyMap<string, string>;
  readonly tenants: ReadonlySet<string>;
  readonly gossip: GossipView;
  /** This host's workloads by id (authoritative for this host). */
  readonly local: { get(id: string): LocalWorkload | undefined };
}

/**
 * The model's input for workload `id`, or undefined when it is not part of the fabric (reasons for
 * leaving it out go to `skipped`). The one rule for both the full state and a single workload event.
 */
export function workloadInputFor(
  id: string,
  ctx: WorkloadContext,
  skipped: string[],
): WorkloadInput | undefined {
  const w = ctx.local.get(id);
  if (!w) {
    const g = ctx.gossip.workloads.get(id);
    if (!g) return undefined;
    const host = ctx.nameOf.get(g.hostId);
    if (!host || host === ctx.self.name) return undefined;
    if (!ctx.tenants.has(g.tenant)) {
      skipped.push(`workload ${g.id} is in unknown tenant ${g.tenant}`);
      return undefined;
    }
    if (g.record.opaqueAddress.length !== 16) return undefined;
    return { id: g.id, tenant: g.tenant, host, address: ipv6FromBytes(g.record.opaqueAddress) };
  }
  // Make before break: a claim of this identity on another host made after this instance was
  // attached means the workload moved there; until the old instance here is removed, this host
  // redirects to the new one. A claim older than this instance is the old place of a workload that
  // moved here: this host delivers (its own claim follows once its routes are in place).
  const winner = ctx.gossip.workloads.get(w.id);
  const newHost =
    winner && winner.hostId !== ctx.self.hostId && winner.version.wall > w.attachedAtMs
      ? ctx.nameOf.get(winner.hostId)
      : undefined;
  if (!ctx.tenants.has(w.tenant)) {
    skipped.push(`local workload ${w.id} is in tenant ${w.tenant}, which the fabric does not (yet) define`);
    return undefined;
  }
  if (newHost) {
    return {
      id: w.id,
      tenant: w.tenant,
      host: newHost,
      address: parseIpv6(w.address),
      labels: w.labels,
      formerHosts: [ctx.self.name],
    };
  }
  // This host is authoritative for what runs on it: a remote claim of the same identity is the old
  // place of a workload that moved here.
  return {
    id: w.id,
    tenant: w.tenant,
    host: ctx.self.name,
    address: parseIpv6(w.address),
    labels: w.labels,
    link: w.hostLink,
  };
}

/** The model's view of a workload input, as buildFabricView makes it (addresses are always given here). */
export function workloadViewOf(w: WorkloadInput): WorkloadView {
  return {
    id: w.id,
    tenant: w.tenant,
    host: w.host,
    address: w.address!,
    labels: w.labels ?? {},
    link: w.link ?? workloadLinkName(w.id),
    derivedAddress: false,
    ...(w.formerHosts && w.formerHosts.length > 0 ? { formerHosts: w.formerHosts } : {}),
  };
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** Whether two workload views plan the same. */
export function sameWorkloadView(a: WorkloadView, b: WorkloadView): boolean {
  return (
    a.id === b.id &&
    a.tenant === b.tenant &&
    a.host === b.host &&
    a.address === b.address &&
    a.link === b.link &&
    a.derivedAddress === b.derivedAddress &&
    (a.formerHosts ?? []).join() === (b.formerHosts ?? []).join() &&
    sameLabels(a.labels, b.labels)
  );
}
