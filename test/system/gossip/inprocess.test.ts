/**
 * Gossip over real libp2p on loopback, many nodes in this process: convergence to the state the test
 * computes itself, moves, partitions (connection gater) and heal, dropped messages, tombstone TTL resync.
 */
import { afterEach, expect, it } from 'vitest';
import { systemSuite } from '../../harness/index.ts';
import {
  address,
  type Cluster,
  converged,
  Expected,
  hexOf,
  observed,
  sleep,
  startCluster,
} from './cluster.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Issues `count` random adds, removes and moves, updating the model as it goes. */
async function randomUpdates(
  c: Cluster,
  e: Expected,
  count: number,
  seed: number,
  nodes = c.nodes,
  base = 0,
): Promise<void> {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  let next = base;
  for (let i = 0; i < count; i++) {
    const mine = [...e.workloads].filter(([, w]) => nodes.some((g) => g.hostId === w.hostId));
    const r = rand();
    if (r < 0.5 || mine.length === 0) {
      const g = pick(nodes);
      const id = `w${next}`;
      const addr = address(next++);
      await g.publishWorkload({ workloadId: id, tenant: 'blue', opaqueAddress: addr });
      e.workloads.set(id, { hostId: g.hostId, address: hexOf(addr) });
    } else if (r < 0.75) {
      const [id, w] = pick(mine);
      await nodes.find((g) => g.hostId === w.hostId)!.removeWorkload(id);
      e.workloads.delete(id);
    } else {
      const [id, w] = pick(mine);
      const from = nodes.find((g) => g.hostId === w.hostId)!;
      const to = pick(nodes.filter((g) => g !== from));
      const addr = Buffer.from(w.address, 'hex');
      await to.publishWorkload({ workloadId: id, tenant: 'blue', opaqueAddress: addr });
      await from.removeWorkload(id);
      e.workloads.set(id, { hostId: to.hostId, address: w.address });
    }
    // Updates at least 2 ms apart: each later write carries a later HLC, as causality would give.
    await sleep(2);
  }
}

async function publishHosts(c: Cluster, e: Expected): Promise<void> {
  for (const g of c.nodes) {
    await g.publishHost({ name: g.hostId.slice(-6) });
    e.hosts.add(g.hostId);
  }
}

systemSuite('gossip: in-process clusters over loopback', { tools: [] }, () => {
  let cluster: Cluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('10 nodes converge to exactly the state the test computed, moves included', async () => {
    cluster = await startCluster(10);
    const e = new Expected();
    await publishHosts(cluster, e);
    await randomUpdates(cluster, e, 120, 1);
    await converged(cluster.nodes, e);
    const moved = [...e.workloads].find(([, w]) => w.hostId !== cluster!.nodes[0]!.hostId)!;
    // Every node sees every host alive.
    for (const g of cluster.nodes) {
      expect(g.snapshot().hosts.filter((h) => h.state === 'alive')).toHaveLength(10);
      expect(g.stats().rejected).toEqual({});
    }
    // An explicit move: the old location never comes back, at any node.
    const [id, w] = moved;
    const from = cluster.nodes.find((g) => g.hostId === w.hostId)!;
    const to = cluster.nodes.find((g) => g !== from)!;
    const oldKey = `workload/${from.hostId}/${id}`;
    let oldCameBack = false;
    for (const g of cluster.nodes) {
      g.addEventListener('workload-moved', (ev) => {
        if (ev.detail.workload.id === id && ev.detail.workload.hostId === from.hostId) oldCameBack = true;
      });
      g.addEventListener('record', (ev) => {
        if (ev.detail.key === oldKey && !ev.detail.deleted) oldCameBack = true;
      });
    }
    await to.publishWorkload({
      workloadId: id,
      tenant: 'blue',
      opaqueAddress: Buffer.from(w.address, 'hex'),
    });
    await from.removeWorkload(id);
    e.workloads.set(id, { hostId: to.hostId, address: w.address });
    await converged(cluster.nodes, e);
    await sleep(2_500); // several anti-entropy rounds
    expect(oldCameBack).toBe(false);
    for (const g of cluster.nodes) expect(observed(g).liveKeys).not.toContain(oldKey);
  });

  it('a partition (connection gater) and its heal converge; dropped messages are repaired', async () => {
    let dropping = true;
    cluster = await startCluster(8, {}, (i) =>
      i === 7 ? { faults: { dropGossip: (_from, kind) => dropping && kind === 'record' } } : {},
    );
    const c = cluster;
    const e = new Expected();
    await publishHosts(c, e);
    await converged(c.nodes, e);
    const left = c.nodes.slice(0, 4);
    const right = c.nodes.slice(4);
    await Promise.all(left.map((g) => g.denyPeers(right.map((r) => r.hostId))));
    await Promise.all(right.map((g) => g.denyPeers(left.map((l) => l.hostId))));
    const leftModel = new Expected();
    const rightModel = new Expected();
    await randomUpdates(c, leftModel, 30, 2, left, 1_000);
    await randomUpdates(c, rightModel, 30, 3, right, 2_000);
    // Each side converges on its own updates (node 7 drops every record message: anti-entropy repairs).
    const side = (m: Expected): Expected => {
      const x = new Expected();
      for (const h of e.hosts) x.hosts.add(h);
      for (const [k, v] of m.workloads) x.workloads.set(k, v);
      return x;
    };
    const liveOn = (m: Expected, nodes: typeof left) => {
      const x = side(m);
      return { x, nodes };
    };
    for (const { x, nodes } of [liveOn(leftModel, left), liveOn(rightModel, right)]) {
      const want = JSON.stringify(x.liveKeys());
      await converged(nodes, x, 20_000, 'one side of the partition').catch(async (err) => {
        throw new Error(`${(err as Error).message}; want ${want}`);
      });
    }
    expect(c.nodes[7]!.stats().gossip.dropped).toBeGreaterThan(0);
    // Heal: everyone converges to the union.
    for (const g of c.nodes) g.allowPeers(c.nodes.map((x) => x.hostId));
    dropping = false;
    const all = side(leftModel);
    for (const [k, v] of rightModel.workloads) all.workloads.set(k, v);
    await converged(c.nodes, all, 30_000, 'convergence after heal');
  });
});
