/**
 * How the kernel backend numbers its routing tables and rule priorities. Without VRF devices a scope
 * is a routing table, chosen by an `ip rule iif <link>` for what arrives from a workload or function.
 */
import { MAIN_TABLE, nfReturnTable, RULE_PRIORITY, tenantTables } from '../../srv6/tables.ts';
import type { Scope } from '../intent.ts';

export { MAIN_TABLE, RULE_PRIORITY };

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
