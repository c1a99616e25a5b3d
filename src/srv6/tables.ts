/**
 * Routing tables, rule priorities and link names the agent owns: in one place, so the data plane,
 * the docs and `segmesh dataplane flush` agree.
 *
 * Without VRF devices a tenant is a set of routing tables chosen by `ip rule`s:
 * - the egress table (workload-originated traffic, chosen by `iif <workload link>`): local delivery,
 *   encapsulation toward remote workloads and the edge, the other hosts' locators (the kernel routes
 *   the outer packet again through it after H.Encaps), and a final `unreachable`;
 * - the delivery table (End.DT6 of the tenant's delivery SID decapsulates into it): local workloads and
 *   redirects of workloads that just moved away, then `unreachable`. It never encapsulates toward a
 *   workload's current host otherwise, so two hosts with different views cannot bounce a packet;
 * - the forward table (End.DT6 of the tenant's aggregate SID, used by the edge in aggregate mode): like
 *   the egress table, it delivers locally or forwards to the workload's current host.
 * A network function that is not SR-aware gets a return table, chosen by `iif <its link>`, that sends
 * what it hands back along the rest of the chain.
 */

/** First table number the agent uses; operators may move it. Tables below are never touched. */
export const TABLE_BASE = 0x5e000; // 385024
/** Tables per tenant (egress, delivery, forward, one spare). */
const PER_TENANT = 4;
/** Tenant ids are 1..MAX_TENANT_ID (they also index SID functions). */
export const MAX_TENANT_ID = 4095;
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

/** Host-side link of a workload: `smw` + 8 hex digits of the identity hash (11 bytes of 15). */
export const WORKLOAD_LINK_PREFIX = 'smw';
/** Host-side link of a network function. */
export const NF_LINK_PREFIX = 'smf';
