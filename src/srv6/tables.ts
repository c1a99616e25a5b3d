/**
 * Limits and link names the model shares with the data plane and the config. (The Linux routing
 * tables and `ip rule` priorities that realise the model's lookup scopes (scope.ts) belong to the
 * kernel backend: src/dataplane/kernel/tables.ts.)
 */

/** Tenant ids are 1..MAX_TENANT_ID (they also index SID functions). */
export const MAX_TENANT_ID = 4095;

/** Host-side link of a workload: `smw` + 8 hex digits of the identity hash (11 bytes of 15). */
export const WORKLOAD_LINK_PREFIX = 'smw';
/** Host-side link of a network function. */
export const NF_LINK_PREFIX = 'smf';
