/**
 * The SID allocator of one host. SIDs are derived from persistent inputs only (tenant ids, network
 * function names, adjacency names), so a restarted agent computes the same SIDs without asking anyone.
 *
 * Layout of the function field (F bits, F >= 8): the top 4 bits say what kind of SID it is, the rest
 * is an index.
 *
 *   kind 0x0  End                          index 1
 *   kind 0x1  End.X per adjacency          index = hash(name), probed
 *   kind 0x2  End.DT6 tenant delivery      index = tenant id
 *   kind 0x3  End.DT6 tenant forward       index = tenant id   (edge aggregate mode)
 *   kind 0x4  End.DT4 tenant               index = tenant id   (VRF kernels only)
 *   kind 0x5  End.DT46 tenant              index = tenant id   (VRF kernels only)
 *   kind 0x6  network function SID         index = hash(name), probed
 *
 * Hashed kinds resolve collisions by linear probing in a fixed order (previous assignment first, then
 * hash slot, then name), which is deterministic; passing the previous assignment (from the agent's
 * state or its own gossip record) keeps every existing SID when a new one collides with it.
 */
import type { Ipv6Address, Ipv6Prefix } from './address.ts';
import { type Behavior, type HostCapabilities, unsupportedReason } from './behavior.ts';
import { hash53 } from './hash.ts';
import { returnScope, type Scope, type TenantScopes, tenantScopes } from './scope.ts';
import { formatStructure, makeSid, type SidStructure, validateStructure } from './sid.ts';

export const SID_KIND = {
  end: 0x0,
  endX: 0x1,
  tenantDelivery: 0x2,
  tenantForward: 0x3,
  tenantDt4: 0x4,
  tenantDt46: 0x5,
  networkFunction: 0x6,
} as const;
export type SidKind = keyof typeof SID_KIND;

export interface SidEntry {
  /** Stable key: `end`, `x:<adjacency>`, `dt6:<tenant>`, `fwd:<tenant>`, `dt4:<tenant>`, `dt46:<tenant>`, `nf:<name>`. */
  readonly key: string;
  readonly kind: SidKind;
  readonly sid: Ipv6Address;
  readonly fn: bigint;
  readonly behavior: Behavior;
  readonly tenant?: string;
  /** End.DT6: the scope the decapsulated packet is looked up in. */
  readonly lookup?: Scope;
  /** End.DX6 toward an SR-unaware function: the scope of what the function hands back. */
  readonly returns?: Scope;
  /** End.X / End.DX6 next hop. */
  readonly nextHop?: Ipv6Address;
  readonly networkFunction?: string;
  /** Index within its kind (network functions use it for their return table). */
  readonly index: number;
}

export interface TenantSidRequest {
  readonly name: string;
  readonly id: number;
  /** The edge reaches the tenant through one aggregate per host: allocate the forward SID. */
  readonly aggregate?: boolean;
}

export interface NetworkFunctionSidRequest {
  readonly name: string;
  readonly tenant: string;
  /**
   * `sr-unaware`: End.DX6 to the function's on-link address (it sees plain IPv6; the host re-encapsulates
   * what it returns). `sr-aware`: the function processes the SRH itself; its SID is an End on the way.
   */
  readonly mode: 'sr-aware' | 'sr-unaware';
  readonly address?: Ipv6Address;
}

export interface AdjacencySidRequest {
  readonly name: string;
  readonly nextHop: Ipv6Address;
}

export interface SidRequest {
  readonly locator: Ipv6Prefix;
  readonly structure: SidStructure;
  readonly capabilities: HostCapabilities;
  readonly tenants: readonly TenantSidRequest[];
  readonly networkFunctions?: readonly NetworkFunctionSidRequest[];
  readonly adjacencies?: readonly AdjacencySidRequest[];
  /** Previous assignment, key -> function value: kept whenever still valid. */
  readonly previous?: ReadonlyMap<string, bigint>;
}

export interface HostSids {
  readonly end: SidEntry;
  readonly endX: ReadonlyMap<string, SidEntry>;
  readonly tenantDelivery: ReadonlyMap<string, SidEntry>;
  readonly tenantForward: ReadonlyMap<string, SidEntry>;
  readonly tenantDt4: ReadonlyMap<string, SidEntry>;
  readonly tenantDt46: ReadonlyMap<string, SidEntry>;
  readonly networkFunctions: ReadonlyMap<string, SidEntry>;
  /** Every SID, in function order. */
  readonly all: readonly SidEntry[];
}

export class SidAllocationError extends Error {
  override readonly name = 'SidAllocationError';
}

function indexBits(structure: SidStructure): number {
  return structure.functionLength - 4;
}

export function functionValue(structure: SidStructure, kind: SidKind, index: number): bigint {
  const bits = indexBits(structure);
  if (index < 1 || index >= 2 ** bits) {
    throw new SidAllocationError(
      `SID index ${index} of kind ${kind} does not fit the ${bits} index bits of structure ${formatStructure(structure)}`,
    );
  }
  return (BigInt(SID_KIND[kind]) << BigInt(bits)) | BigInt(index);
}

/** Inverse of functionValue: the kind and index of a function value, if it is one of ours. */
export function decodeFunction(
  structure: SidStructure,
  fn: bigint,
): { kind: SidKind; index: number } | undefined {
  const bits = BigInt(indexBits(structure));
  const kindCode = Number(fn >> bits);
  const index = Number(fn & ((1n << bits) - 1n));
  const kind = (Object.keys(SID_KIND) as SidKind[]).find((k) => SID_KIND[k] === kindCode);
  return kind && index > 0 ? { kind, index } : undefined;
}

interface HashedItem {
  readonly key: string;
  readonly previousIndex: number | undefined;
}

/** Assigns an index in 1..size-1 to every item, deterministically; see the module comment. */
function assignHashed(items: readonly HashedItem[], size: number, what: string): Map<string, number> {
  if (items.length > size - 1) {
    throw new SidAllocationError(
      `${items.length} ${what} SIDs do not fit in ${size - 1} slots; use longer functions`,
    );
  }
  const taken = new Set<number>();
  const result = new Map<string, number>();
  const fresh: Array<{ key: string; slot: number }> = [];
  for (const item of [...items].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    const p = item.previousIndex;
    if (p !== undefined && p >= 1 && p < size && !taken.has(p)) {
      taken.add(p);
      result.set(item.key, p);
    } else {
      fresh.push({ key: item.key, slot: 1 + (hash53(item.key) % (size - 1)) });
    }
  }
  fresh.sort((a, b) => a.slot - b.slot || (a.key < b.key ? -1 : 1));
  for (const { key, slot } of fresh) {
    let s = slot;
    while (taken.has(s)) s = s + 1 >= size ? 1 : s + 1;
    taken.add(s);
    result.set(key, s);
  }
  return result;
}

export function allocateHostSids(req: SidRequest): HostSids {
  validateStructure(req.structure);
  if (req.structure.functionLength < 8) {
    throw new SidAllocationError(
      `SID structure ${formatStructure(req.structure)} has ${req.structure.functionLength} function bits; Segmesh needs at least 8`,
    );
  }
  const bits = indexBits(req.structure);
  const size = 2 ** Math.min(bits, 30);
  const all: SidEntry[] = [];
  const make = (
    kind: SidKind,
    key: string,
    index: number,
    behavior: Behavior,
    extra: Partial<Pick<SidEntry, 'tenant' | 'lookup' | 'returns' | 'nextHop' | 'networkFunction'>> = {},
  ): SidEntry => {
    const fn = functionValue(req.structure, kind, index);
    const entry: SidEntry = {
      key,
      kind,
      sid: makeSid(req.locator, req.structure, fn),
      fn,
      behavior,
      index,
      ...extra,
    };
    all.push(entry);
    return entry;
  };
  const previousIndex = (key: string, kind: SidKind): number | undefined => {
    const fn = req.previous?.get(key);
    if (fn === undefined) return undefined;
    const decoded = decodeFunction(req.structure, fn);
    return decoded?.kind === kind ? decoded.index : undefined;
  };

  const end = make('end', 'end', 1, 'End');

  const endX = new Map<string, SidEntry>();
  const adjacencies = req.adjacencies ?? [];
  const xIndex = assignHashed(
    adjacencies.map((a) => ({ key: `x:${a.name}`, previousIndex: previousIndex(`x:${a.name}`, 'endX') })),
    size,
    'End.X',
  );
  for (const a of adjacencies) {
    endX.set(
      a.name,
      make('endX', `x:${a.name}`, xIndex.get(`x:${a.name}`)!, 'End.X', { nextHop: a.nextHop }),
    );
  }

  const tenantDelivery = new Map<string, SidEntry>();
  const tenantForward = new Map<string, SidEntry>();
  const tenantDt4 = new Map<string, SidEntry>();
  const tenantDt46 = new Map<string, SidEntry>();
  const seenIds = new Map<number, string>();
  for (const t of req.tenants) {
    const other = seenIds.get(t.id);
    if (other !== undefined) {
      throw new SidAllocationError(
        `tenants ${other} and ${t.name} share id ${t.id}; give each tenant its own id`,
      );
    }
    seenIds.set(t.id, t.name);
    const scopes: TenantScopes = tenantScopes(t.name, t.id);
    tenantDelivery.set(
      t.name,
      make('tenantDelivery', `dt6:${t.name}`, t.id, 'End.DT6', { tenant: t.name, lookup: scopes.delivery }),
    );
    if (t.aggregate) {
      tenantForward.set(
        t.name,
        make('tenantForward', `fwd:${t.name}`, t.id, 'End.DT6', { tenant: t.name, lookup: scopes.forward }),
      );
    }
    // IPv4 tenants need VRF devices (End.DT4/DT46 take only `vrftable`): allocated where the kernel has them.
    if (!unsupportedReason('End.DT46', req.capabilities)) {
      // Decapsulated into the tenant's delivery scope, as End.DT6 is.
      const lookup = { tenant: t.name, lookup: scopes.delivery };
      tenantDt4.set(t.name, make('tenantDt4', `dt4:${t.name}`, t.id, 'End.DT4', lookup));
      tenantDt46.set(t.name, make('tenantDt46', `dt46:${t.name}`, t.id, 'End.DT46', lookup));
    }
  }

  const networkFunctions = new Map<string, SidEntry>();
  const nfs = req.networkFunctions ?? [];
  const nfIndex = assignHashed(
    nfs.map((n) => ({
      key: `nf:${n.name}`,
      previousIndex: previousIndex(`nf:${n.name}`, 'networkFunction'),
    })),
    size,
    'network function',
  );
  for (const nf of nfs) {
    const index = nfIndex.get(`nf:${nf.name}`)!;
    if (nf.mode === 'sr-unaware') {
      if (nf.address === undefined) {
        throw new SidAllocationError(
          `network function ${nf.name} is sr-unaware but has no address; give it the on-link address End.DX6 delivers to`,
        );
      }
      networkFunctions.set(
        nf.name,
        make('networkFunction', `nf:${nf.name}`, index, 'End.DX6', {
          tenant: nf.tenant,
          nextHop: nf.address,
          networkFunction: nf.name,
          returns: returnScope(nf.tenant, nf.name, index),
        }),
      );
    } else {
      networkFunctions.set(
        nf.name,
        make('networkFunction', `nf:${nf.name}`, index, 'End', {
          tenant: nf.tenant,
          networkFunction: nf.name,
        }),
      );
    }
  }

  all.sort((a, b) => (a.fn < b.fn ? -1 : a.fn > b.fn ? 1 : 0));
  return { end, endX, tenantDelivery, tenantForward, tenantDt4, tenantDt46, networkFunctions, all };
}

/** The function values of an allocation, to pass back as `previous` next time. */
export function allocationMemory(sids: HostSids): Map<string, bigint> {
  return new Map(sids.all.map((s) => [s.key, s.fn]));
}
