/**
 * In-process gossip clusters over loopback for the system tests, and the test's own model of the
 * state it expects (computed from the updates it issued, never read back from the nodes).
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import type { GossipComponents, GossipInit } from '../../../src/gossip/index.ts';
import { Gossip } from '../../../src/gossip/node.ts';
import { waitFor } from '../../harness/index.ts';

export const FAST: Partial<GossipInit> = {
  listen: ['/ip4/127.0.0.1/tcp/0'],
  sameIpPeers: true,
  // Heartbeats cost ~2 ms of CPU per node per message in js-libp2p gossipsub (docs/gossip.md): keep
  // them at 2/s so that 10 nodes in one process leave CPU for the rest of the suite.
  heartbeatIntervalMs: 500,
  suspectAfterMs: 1_500,
  deadAfterMs: 3_000,
  antiEntropyIntervalMs: 1_000,
  ownerGraceMs: 1_500,
  targetPeers: 5,
};

export interface Cluster {
  nodes: Gossip[];
  keys: PrivateKey[];
  stop(): Promise<void>;
}

/** Starts `n` nodes; node i bootstraps from up to 3 earlier nodes, so the graph is connected. */
export async function startCluster(
  n: number,
  init: Partial<GossipInit> = {},
  components: (i: number) => GossipComponents = () => ({}),
  keys?: PrivateKey[],
): Promise<Cluster> {
  const ks = keys ?? (await Promise.all(Array.from({ length: n }, () => generateKeyPair('Ed25519'))));
  const nodes: Gossip[] = [];
  for (let i = 0; i < n; i++) {
    const earlier = nodes.slice(Math.max(0, i - 3)).flatMap((g) => g.multiaddrs.slice(0, 1));
    const g = new Gossip(components(i), { ...FAST, ...init, privateKey: ks[i]!, bootstrap: earlier });
    await g.start();
    nodes.push(g);
  }
  return {
    nodes,
    keys: ks,
    async stop() {
      await Promise.all(nodes.map((g) => g.stop().catch(() => {})));
    },
  };
}

/** The test's model: workload id -> where it must be and with which address. */
export class Expected {
  readonly workloads = new Map<string, { hostId: string; address: string }>();
  readonly hosts = new Set<string>();
  /** Keys of operator records (tenant/…, policy/…, hmac/…) expected live. */
  readonly fabric = new Set<string>();

  liveKeys(): string[] {
    return [
      ...[...this.hosts].map((h) => `host/${h}`),
      ...[...this.workloads].map(([id, w]) => `workload/${w.hostId}/${id}`),
      ...this.fabric,
    ].sort();
  }
}

export function address(i: number): Uint8Array {
  const a = new Uint8Array(16);
  a[0] = 0xfd;
  a[14] = (i >> 8) & 0xff;
  a[15] = i & 0xff;
  return a;
}

export function hexOf(a: Uint8Array): string {
  return Buffer.from(a).toString('hex');
}

/** What a node holds, in the model's terms. */
export function observed(g: Gossip): { workloads: [string, string, string][]; liveKeys: string[] } {
  const s = g.snapshot();
  return {
    workloads: s.workloads.map((w) => [w.id, w.hostId, w.address] as [string, string, string]).sort(),
    liveKeys: g
      .entries()
      .filter((e) => !e.deleted)
      .map((e) => e.key)
      .sort(),
  };
}

export function expectedObservation(e: Expected): {
  workloads: [string, string, string][];
  liveKeys: string[];
} {
  return {
    workloads: [...e.workloads]
      .map(([id, w]) => [id, w.hostId, w.address] as [string, string, string])
      .sort(),
    liveKeys: e.liveKeys(),
  };
}

export async function converged(
  nodes: readonly Gossip[],
  e: Expected,
  timeoutMs = 20_000,
  what = 'convergence',
): Promise<void> {
  const want = JSON.stringify(expectedObservation(e));
  await waitFor(async () => nodes.every((g) => JSON.stringify(observed(g)) === want), { timeoutMs, what });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
