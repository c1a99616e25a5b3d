/**
 * Routing tables and rule priorities of the kernel backend: in one place, so the lowering, the docs
 * and `segmesh dataplane flush` agree.
 *
 * Without VRF devices each lookup scope of the model (src/srv6/scope.ts) is a routing table:
 * - a tenant's egress table, chosen by `ip rule iif <workload link>`: local delivery, encapsulation
 *   toward remote workloads and the edge, the other hosts' locators (the kernel routes the outer
 *   packet again through it after H.Encaps), and a final `unreachable`;
 * - its delivery table (End.DT6 of the tenant's delivery SID decapsulates into it): local workloads
 *   and redirects of workloads that just moved away, then `unreachable`;
 * - its forward table (End.DT6 of the tenant's aggregate SID, edge aggregate mode): like egress;
 * - a network function's return table, chosen by `iif <its link>`, for SR-unaware functions;
 * - the underlay scope is the main table.
 */
import { MAX_TENANT_ID } from '../../srv6/tables.ts';
import type { Scope } from '../intent.ts';

export { MAX_TENANT_ID };

/** First table number the agent uses; operators may move it. Tables below are never touched. */
export const TABLE_BASE = 0x5e000; // 385024
/** Tables per tenant (egress, delivery, forward, one spare). */
const PER_TENANT = 4;
export const NF_TABLE_BASE = TABLE_BASE + PER_TENANT * (MAX_TENANT_ID + 1);
export const TABLE_LIMIT = NF_TABLE_BASE + 0x10000;

export const MAIN_TABLE = 254;

export interface TenantTables {
  readonly egress: number;
  readonly delivery: number;
  readonly forward: number;
}

export function tenantTables(tenantId: number): TenantTables {
  if (!Number.isInteger(tenantId) || tenantId < 1 || tenantId > MAX_TENANT_ID) {
    throw new RangeError(`tenant id ${tenantId} is not in 1..${MAX_TENANT_ID}`);
  }
  const base = TABLE_BASE + PER_TENANT * tenantId;
  return { egress: base, delivery: base + 1, forward: base + 2 };
}

/** The return table of a network function, from the index of its SID function (stable). */
export function nfReturnTable(nfIndex: number): number {
  return NF_TABLE_BASE + nfIndex;
}

export function isAgentTable(table: number): boolean {
  return table >= TABLE_BASE && table < TABLE_LIMIT;
}

/** `ip rule` priorities: after the `local` rule (0), before `main` (32766). */
export const RULE_PRIORITY = {
  /** iif <network function link> -> its return table. */
  nfReturn: 10_000,
  /** iif <workload link> -> tenant egress table. */
  workloadEgress: 11_000,
} as const;

/** The routing table that holds a scope's entries. */
export function tableOf(scope: Scope): number {
  switch (scope.kind) {
    case 'underlay':
      return MAIN_TABLE;
    case 'egress':
      return tenantTables(scope.tenantId).egress;
    case 'delivery':
      return tenantTables(scope.tenantId).delivery;
    case 'forward':
      return tenantTables(scope.tenantId).forward;
    case 'return':
      return nfReturnTable(scope.functionIndex);
  }
}

/** The priority of the `ip rule iif <link>` that chooses a scope for what arrives from a link. */
export function rulePriority(scope: Scope): number {
  return scope.kind === 'return' ? RULE_PRIORITY.nfReturn : RULE_PRIORITY.workloadEgress;
}

/** People's name of a scope's table (`main`, `blue egress`, `fw1 return`). */
export function scopeName(scope: Scope): string {
  switch (scope.kind) {
    case 'underlay':
      return 'main';
    case 'return':
      return `${scope.networkFunction} return`;
    default:
      return `${scope.tenant} ${scope.kind}`;
  }
}
