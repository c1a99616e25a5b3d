/**
 * Lookup scopes: where a host looks a packet's destination up, in SRv6 terms. What a workload sends
 * is looked up in its tenant's egress scope; what the tenant's End.DT6 SID decapsulates in its
 * delivery scope (local delivery and redirects of workloads that just moved away only, so two hosts
 * with different views cannot bounce a packet); what the tenant's aggregate SID decapsulates (edge
 * aggregate mode) in its forward scope; what an SR-unaware network function hands back in that
 * function's return scope; and the outer packet in the underlay. How a backend realises a scope (a
 * Linux routing table chosen by an `ip rule`, a BPF map) is the backend's business (src/dataplane).
 */
import type { Ipv6Prefix } from './address.ts';

/** Tenant scopes carry the tenant id, return scopes the function's SID index: stable numbers to key by. */
export type Scope =
  | { readonly kind: 'underlay' }
  | {
      readonly kind: 'egress' | 'delivery' | 'forward';
      readonly tenant: string;
      readonly tenantId: number;
    }
  | {
      readonly kind: 'return';
      readonly tenant: string;
      readonly networkFunction: string;
      readonly functionIndex: number;
    };

export type ScopeKind = Scope['kind'];

export const UNDERLAY: Scope = Object.freeze({ kind: 'underlay' });

export interface TenantScopes {
  readonly egress: Scope;
  readonly delivery: Scope;
  readonly forward: Scope;
}

export function tenantScopes(tenant: string, tenantId: number): TenantScopes {
  return {
    egress: Object.freeze({ kind: 'egress', tenant, tenantId }),
    delivery: Object.freeze({ kind: 'delivery', tenant, tenantId }),
    forward: Object.freeze({ kind: 'forward', tenant, tenantId }),
  };
}

export function returnScope(tenant: string, networkFunction: string, functionIndex: number): Scope {
  return Object.freeze({ kind: 'return', tenant, networkFunction, functionIndex });
}

export function scopeKey(s: Scope): string {
  switch (s.kind) {
    case 'underlay':
      return 'u';
    case 'egress':
      return `eg:${s.tenant}`;
    case 'delivery':
      return `dl:${s.tenant}`;
    case 'forward':
      return `fw:${s.tenant}`;
    case 'return':
      return `rt:${s.networkFunction}`;
  }
}

export function sameScope(a: Scope | undefined, b: Scope | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.kind !== b.kind) return false;
  switch (a.kind) {
    case 'underlay':
      return true;
    case 'return': {
      const o = b as typeof a;
      return (
        a.tenant === o.tenant &&
        a.networkFunction === o.networkFunction &&
        a.functionIndex === o.functionIndex
      );
    }
    default: {
      const o = b as typeof a;
      return a.tenant === o.tenant && a.tenantId === o.tenantId;
    }
  }
}

function prefixKey(p: Ipv6Prefix): string {
  return `${p.address.toString(16)}/${p.length}`;
}

/** The key of a prefix entry (the plan's routes and the intent's entries share it). */
export function entryKey(scope: Scope, prefix: Ipv6Prefix, from?: Ipv6Prefix): string {
  const base = `e|${scopeKey(scope)}|${prefixKey(prefix)}`;
  return from ? `${base}|${prefixKey(from)}` : base;
}
