/**
 * Liveness, restart with a persisted identity, the data-plane probe hook, address conflicts and the
 * tombstone-TTL snapshot resync, over real libp2p in this process.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { loadOrCreateIdentity } from '../../../src/gossip/index.ts';
import { Gossip } from '../../../src/gossip/node.ts';
import type { HostView } from '../../../src/gossip/view.ts';
import { systemSuite, waitFor } from '../../harness/index.ts';
import {
  address,
  type Cluster,
  converged,
  Expected,
  FAST,
  hexOf,
  observed,
  sleep,
  startCluster,
} from './cluster.ts';

systemSuite('gossip: liveness, restart, conflicts, tombstone TTL', { tools: [] }, () => {
  let cluster: Cluster | undefined;
  const extra: Gossip[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(extra.splice(0).map((g) => g.stop()));
    await cluster?.stop();
    cluster = undefined;
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  it('a stopped host goes suspect then dead (workloads removed); restarted with its identity it rejoins and catches up', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'segmesh-gossip-'));
    dirs.push(dir);
    const keys = await Promise.all([0, 1, 2, 3].map((i) => loadOrCreateIdentity(join(dir, `h${i}.key`))));
    cluster = await startCluster(4, {}, () => ({}), keys);
    const c = cluster;
    const e = new Expected();
    for (const [i, g] of c.nodes.entries()) {
      await g.publishHost({ name: `h${i}` });
      await g.publishWorkload({ workloadId: `w${i}`, tenant: 't', opaqueAddress: address(i) });
      e.hosts.add(g.hostId);
      e.workloads.set(`w${i}`, { hostId: g.hostId, address: hexOf(address(i)) });
    }
    await converged(c.nodes, e);
    await waitFor(() => c.nodes.every((g) => g.snapshot().hosts.every((h) => h.state === 'alive')), {
      timeoutMs: 5_000,
      what: 'every host heard (alive) everywhere',
    });
    const victim = c.nodes[3]!;
    const victimId = victim.hostId;
    const events: string[] = [];
    c.nodes[0]!.addEventListener(
      'host-suspect',
      (ev) => ev.detail.hostId === victimId && events.push('suspect'),
    );
    c.nodes[0]!.addEventListener('host-down', (ev) => ev.detail.hostId === victimId && events.push('down'));
    c.nodes[0]!.addEventListener(
      'workload-removed',
      (ev) => ev.detail.workload.id === 'w3' && events.push('removed'),
    );
    c.nodes[0]!.addEventListener('host-up', (ev) => ev.detail.hostId === victimId && events.push('up'));
    c.nodes[0]!.addEventListener(
      'workload-added',
      (ev) => ev.detail.workload.id === 'w3' && events.push('added'),
    );
    await victim.stop();
    const alive = c.nodes.slice(0, 3);
    await waitFor(
      () => alive.every((g) => g.snapshot().hosts.find((h) => h.id === victimId)?.state === 'dead'),
      {
        timeoutMs: 10_000,
        what: 'victim dead everywhere',
      },
    );
    for (const g of alive)
      expect(
        g
          .snapshot()
          .workloads.map((w) => w.id)
          .sort(),
      ).toEqual(['w0', 'w1', 'w2']);
    expect(events).toEqual(['suspect', 'down', 'removed']);
    // While it is away, the others change things.
    await c.nodes[1]!.publishWorkload({ workloadId: 'late', tenant: 't', opaqueAddress: address(50) });
    await c.nodes[2]!.removeWorkload('w2');
    e.workloads.set('late', { hostId: c.nodes[1]!.hostId, address: hexOf(address(50)) });
    e.workloads.delete('w2');
    // Restart from the identity file: same host id; the agent re-asserts its host and workloads.
    const key = await loadOrCreateIdentity(join(dir, 'h3.key'));
    const back = new Gossip({}, { ...FAST, privateKey: key, bootstrap: [c.nodes[0]!.multiaddrs[0]!] });
    extra.push(back);
    await back.start();
    expect(back.hostId).toBe(victimId);
    await back.publishHost({ name: 'h3' });
    await back.publishWorkload({ workloadId: 'w3', tenant: 't', opaqueAddress: address(3) });
    await converged([...alive, back], e);
    await waitFor(() => events.includes('added'), { timeoutMs: 5_000, what: 'w3 back at node 0' });
    expect(events.slice(3)).toEqual(['up', 'added']);
  });

  it('a working data plane keeps a silent host suspect (routes stay); a failed probe takes it down', async () => {
    let dataPlaneUp = true;
    const probed: string[] = [];
    const probe = async (h: HostView) => {
      probed.push(h.id);
      return dataPlaneUp;
    };
    cluster = await startCluster(3, {}, () => ({ probe }));
    const c = cluster;
    const e = new Expected();
    for (const [i, g] of c.nodes.entries()) {
      await g.publishHost({ name: `h${i}`, endSid: address(100 + i) });
      e.hosts.add(g.hostId);
    }
    await c.nodes[2]!.publishWorkload({ workloadId: 'w', tenant: 't', opaqueAddress: address(1) });
    e.workloads.set('w', { hostId: c.nodes[2]!.hostId, address: hexOf(address(1)) });
    await converged(c.nodes, e);
    const silent = c.nodes[2]!;
    // A gossip-only partition: node 2 is cut off from gossip but its data plane answers.
    await c.nodes[0]!.denyPeers([silent.hostId]);
    await c.nodes[1]!.denyPeers([silent.hostId]);
    await silent.denyPeers([c.nodes[0]!.hostId, c.nodes[1]!.hostId]);
    await sleep(FAST.deadAfterMs! + 1_500);
    for (const g of c.nodes.slice(0, 2)) {
      expect(g.snapshot().hosts.find((h) => h.id === silent.hostId)?.state).toBe('suspect');
      expect(g.snapshot().workloads.map((w) => w.id)).toEqual(['w']);
    }
    expect(probed).toContain(silent.hostId);
    dataPlaneUp = false;
    await waitFor(() => c.nodes.slice(0, 2).every((g) => g.snapshot().workloads.length === 0), {
      timeoutMs: 5_000,
      what: 'workload removed after the probe failed',
    });
  });

  it('two live hosts claiming one address: the newest claim wins everywhere and the loser is told', async () => {
    cluster = await startCluster(3);
    const c = cluster;
    for (const g of c.nodes) await g.publishHost({ name: 'h' });
    let lost = 0;
    c.nodes[0]!.addEventListener('conflict-lost', () => lost++);
    await c.nodes[0]!.publishWorkload({ workloadId: 'a', tenant: 't', opaqueAddress: address(9) });
    await sleep(5);
    await c.nodes[1]!.publishWorkload({ workloadId: 'b', tenant: 't', opaqueAddress: address(9) });
    await waitFor(
      () =>
        c.nodes.every((g) => {
          const s = g.snapshot();
          return s.workloads.length === 1 && s.workloads[0]!.id === 'b' && s.conflicts.length === 1;
        }),
      { timeoutMs: 10_000, what: 'conflict resolved everywhere' },
    );
    for (const g of c.nodes) {
      expect(g.snapshot().conflicts[0]!.loser).toMatchObject({ workloadId: 'a', hostId: c.nodes[0]!.hostId });
    }
    await waitFor(() => lost === 1, { timeoutMs: 5_000, what: 'loser told' });
    expect(c.nodes[0]!.stats().conflictsLost).toBe(1);
  });

  it('a node away longer than the tombstone TTL resyncs from a snapshot and no deleted record returns', async () => {
    const ttl = 2_000;
    cluster = await startCluster(4, { tombstoneTtlMs: ttl });
    const c = cluster;
    const e = new Expected();
    for (const [i, g] of c.nodes.entries()) {
      await g.publishHost({ name: `h${i}` });
      e.hosts.add(g.hostId);
    }
    await c.nodes[0]!.publishWorkload({ workloadId: 'doomed', tenant: 't', opaqueAddress: address(1) });
    await converged(
      c.nodes,
      (() => {
        const x = new Expected();
        for (const h of e.hosts) x.hosts.add(h);
        x.workloads.set('doomed', { hostId: c.nodes[0]!.hostId, address: hexOf(address(1)) });
        return x;
      })(),
    );
    const away = c.nodes[3]!;
    const rest = c.nodes.slice(0, 3);
    await away.denyPeers(rest.map((g) => g.hostId));
    await Promise.all(rest.map((g) => g.denyPeers([away.hostId])));
    await c.nodes[0]!.removeWorkload('doomed');
    await c.nodes[1]!.publishWorkload({ workloadId: 'fresh', tenant: 't', opaqueAddress: address(2) });
    e.workloads.set('fresh', { hostId: c.nodes[1]!.hostId, address: hexOf(address(2)) });
    const doomedKey = `workload/${c.nodes[0]!.hostId}/doomed`;
    await sleep(ttl + 1_500);
    for (const g of rest) expect(g.entries().map((x) => x.key)).not.toContain(doomedKey); // tombstone expired
    expect(observed(away).liveKeys).toContain(doomedKey); // the stale copy
    let resurrected = false;
    for (const g of rest) {
      g.addEventListener('record', (ev) => {
        if (ev.detail.key === doomedKey) resurrected = true;
      });
    }
    for (const g of c.nodes) g.allowPeers(c.nodes.map((x) => x.hostId));
    await converged(c.nodes, e, 20_000, 'convergence after the resync');
    expect(away.stats().antiEntropy.snapshots).toBeGreaterThanOrEqual(1);
    await sleep(2_000);
    expect(resurrected).toBe(false);
    for (const g of c.nodes) expect(g.entries().map((x) => x.key)).not.toContain(doomedKey);
  });
});
