/**
 * @packageDocumentation
 *
 * The gossip control plane: every agent holds a signed, convergent copy of what the fabric is made of
 * (hosts, workloads, tenants, policies, HMAC keys) without a central store. See docs/gossip.md.
 *
 * @example
 * ```ts
 * const g = gossip({ privateKey, bootstrap, operatorKey })({ logger });
 * await g.start();
 * g.addEventListener('workload-added', (e) => program(e.detail.workload));
 * await g.publishWorkload({ workloadId: 'web-1', tenant: 'blue', opaqueAddress });
 * ```
 */
import { Gossip, type GossipComponents, type GossipInit } from './node.ts';

export { ANTI_ENTROPY_PROTOCOL, DEFAULTS, GOSSIP_TOPIC } from './constants.ts';
export { AntiEntropyError, GossipConfigError, GossipNotStartedError } from './errors.ts';
export {
  clusterKeyFromText,
  clusterKeyId,
  loadOrCreateIdentity,
  newClusterKey,
  newOperatorKey,
  OperatorKeyError,
  operatorKeyFromText,
  operatorKeyText,
  operatorPrivateKeyFromBytes,
} from './identity.ts';
export type {
  DataPlaneProbe,
  Gossip,
  GossipComponents,
  GossipEvents,
  GossipInit,
  GossipSnapshot,
  GossipStats,
  HostAdvert,
  WorkloadAdvert,
} from './node.ts';
export { issueMembership, RejectReason, signRecord } from './records.ts';
export type { Conflict, FabricView, GossipEvent, HostView, WorkloadView } from './view.ts';

/** The gossip component factory, in the js-libp2p style: options now, dependencies at wiring time. */
export function gossip(init: GossipInit): (components?: GossipComponents) => Gossip {
  return (components = {}) => new Gossip(components, init);
}
