/** Versioned wire names and defaults of the gossip control plane (docs/gossip.md). */

export const GOSSIP_TOPIC = '/segmesh/gossip/1.0.0';
export const ANTI_ENTROPY_PROTOCOL = '/segmesh/anti-entropy/1.0.0';
export const HEARTBEAT_PROTOCOL = '/segmesh/heartbeat/1.0.0';

export const DEFAULTS = {
  listen: ['/ip6/::/tcp/7946'],
  heartbeatIntervalMs: 1_000,
  suspectAfterMs: 3_000,
  deadAfterMs: 10_000,
  antiEntropyIntervalMs: 10_000,
  tombstoneTtlMs: 24 * 3600_000,
  maxRecordBytes: 64 * 1024,
  maxFrameBytes: 16 * 1024 * 1024,
  maxClockDriftMs: 60_000,
  targetPeers: 8,
  ownerGraceMs: 10_000,
  antiEntropyTimeoutMs: 10_000,
} as const;
