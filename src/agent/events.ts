/**
 * Which gossip events the reconciler acts on, and how (pure). A workload's own event takes the
 * incremental path, a change around the workloads (hosts, tenants, policies, keys) the full one, and
 * what this agent published itself nothing: it is what the agent just applied.
 */
export type GossipEventRoute =
  | { readonly path: 'ignore' }
  | { readonly path: 'workload'; readonly id: string }
  | { readonly path: 'fabric' };

export type AgentGossipEvent =
  | { readonly type: 'record'; readonly key: string; readonly source: string }
  | {
      readonly type: 'workload-added' | 'workload-moved' | 'workload-updated' | 'workload-removed';
      readonly workload: { readonly id: string; readonly hostId: string };
    }
  | { readonly type: 'host-up' | 'host-suspect' | 'host-down'; readonly hostId: string }
  | { readonly type: 'policy-changed' };

const IGNORE: GossipEventRoute = { path: 'ignore' };
const FABRIC: GossipEventRoute = { path: 'fabric' };

export function routeGossipEvent(e: AgentGossipEvent, selfId: string): GossipEventRoute {
  switch (e.type) {
    case 'record':
      // Our own publishes trigger nothing; a workload record is followed by its view event (below),
      // which names the workload.
      if (e.source === 'local' || e.key.startsWith('workload/')) return IGNORE;
      return FABRIC;
    case 'workload-added':
    case 'workload-moved':
    case 'workload-updated':
    case 'workload-removed':
      // Ours: the local store is authoritative, and the change came from this agent.
      return e.workload.hostId === selfId ? IGNORE : { path: 'workload', id: e.workload.id };
    case 'host-up':
    case 'host-suspect':
    case 'host-down':
      return e.hostId === selfId ? IGNORE : FABRIC;
    case 'policy-changed':
      return FABRIC;
  }
}
