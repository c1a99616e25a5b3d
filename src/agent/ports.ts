/**
 * What the agent's components need of gossip and BGP: narrow ports, so that each component states its
 * dependencies and a unit test hands it a fake (test/unit/fakes/agent-ports.ts).
 */
import type { Bgp } from '../bgp/index.ts';
import type { Gossip } from '../gossip/index.ts';

/** Gossip as the components use it (the wiring subscribes to its events). */
export type GossipPort = Pick<
  Gossip,
  'hostId' | 'view' | 'publishHost' | 'publishWorkload' | 'removeWorkload' | 'publishSigned' | 'withdrawHost'
>;

/** BGP toward the edge as the components use it. */
export type BgpPort = Pick<
  Bgp,
  'setAdverts' | 'setFabricLocators' | 'setTenants' | 'gracefulShutdown' | 'leave'
>;

export type HostAdvert = NonNullable<Parameters<Gossip['publishHost']>[0]>;
