/**
 * Five agents in five processes over loopback: convergence to the state the test computes, a partition
 * and its heal, dropped messages repaired, a restart with the persisted identity catching up.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { systemSuite, waitFor } from '../../harness/index.ts';
import { address, Expected, expectedObservation, FAST, hexOf } from './cluster.ts';
import { NodeProcess } from './processes.ts';

const INIT = {
  heartbeatIntervalMs: FAST.heartbeatIntervalMs,
  suspectAfterMs: FAST.suspectAfterMs,
  deadAfterMs: FAST.deadAfterMs,
  antiEntropyIntervalMs: FAST.antiEntropyIntervalMs,
  ownerGraceMs: FAST.ownerGraceMs,
  targetPeers: 4,
};

type Observation = { workloads: string[][]; liveKeys: string[]; stats: { gossip: { dropped: number } } };

systemSuite('gossip: five agent processes', { tools: [] }, () => {
  let dir: string;
  const procs: NodeProcess[] = [];
  const e = new Expected();
  const hosted = new Map<string, string[]>(); // host id -> workload ids it asserts

  async function startProc(i: number, dropRecords = 0): Promise<NodeProcess> {
    const p = new NodeProcess();
    const bootstrap = procs
      .filter((q, j) => q !== undefined && j !== i && q.child.exitCode === null)
      .flatMap((q) => q.addrs.slice(0, 1));
    await p.start({
      mode: 'segmesh',
      keyFile: join(dir, `h${i}.key`),
      bootstrap: bootstrap.slice(0, 2),
      init: INIT,
      dropRecords,
    });
    procs[i] = p;
    return p;
  }

  async function add(p: NodeProcess, id: string, n: number): Promise<void> {
    await p.call('publishWorkload', { id, tenant: 'blue', address: hexOf(address(n)) });
    e.workloads.set(id, { hostId: p.peerId, address: hexOf(address(n)) });
    hosted.set(p.peerId, [...(hosted.get(p.peerId) ?? []), id]);
  }

  async function remove(p: NodeProcess, id: string): Promise<void> {
    await p.call('removeWorkload', { id });
    e.workloads.delete(id);
    hosted.set(
      p.peerId,
      (hosted.get(p.peerId) ?? []).filter((x) => x !== id),
    );
  }

  async function convergedAll(nodes: NodeProcess[], model: Expected, what: string): Promise<void> {
    const want = JSON.stringify(expectedObservation(model));
    let last = '';
    await waitFor(
      async () => {
        const obs = await Promise.all(nodes.map((p) => p.call<Observation>('observe')));
        last = JSON.stringify(obs.map((o) => ({ workloads: o.workloads, liveKeys: o.liveKeys })));
        return obs.every((o) => JSON.stringify({ workloads: o.workloads, liveKeys: o.liveKeys }) === want);
      },
      { timeoutMs: 25_000, what },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nwant ${want}\nlast ${last.slice(0, 2000)}`);
    });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'segmesh-gossip-procs-'));
    for (let i = 0; i < 5; i++) {
      // Process 4 drops half of the record messages it receives: anti-entropy must repair them.
      const p = await startProc(i, i === 4 ? 0.5 : 0);
      await p.call('publishHost', { name: `h${i}` });
      e.hosts.add(p.peerId);
    }
  });

  afterAll(async () => {
    await Promise.all(procs.map((p) => p?.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  it('converge after random updates to exactly the expected state (one process drops half its messages)', async () => {
    let n = 0;
    for (let round = 0; round < 40; round++) {
      const p = procs[round % 5]!;
      const mine = hosted.get(p.peerId) ?? [];
      if (mine.length > 0 && round % 3 === 2) await remove(p, mine[0]!);
      else await add(p, `w${n}`, n++);
      await new Promise((r) => setTimeout(r, 3));
    }
    await convergedAll(procs, e, 'five processes converged');
    const o = await procs[4]!.call<Observation>('observe');
    expect(o.stats.gossip.dropped).toBeGreaterThan(0);
  });

  it('a partition and its heal converge', async () => {
    const left = procs.slice(0, 2);
    const right = procs.slice(2);
    await Promise.all(left.map((p) => p.call('deny', { peers: right.map((q) => q.peerId) })));
    await Promise.all(right.map((p) => p.call('deny', { peers: left.map((q) => q.peerId) })));
    await add(left[0]!, 'left-1', 900);
    await add(right[1]!, 'right-1', 901);
    await remove(right[0]!, (hosted.get(right[0]!.peerId) ?? [])[0]!);
    await new Promise((r) => setTimeout(r, 1_000));
    const l = await left[1]!.call<Observation>('observe');
    expect(l.workloads.map((w) => w[0])).toContain('left-1');
    expect(l.workloads.map((w) => w[0])).not.toContain('right-1');
    const all = procs.map((p) => p.peerId);
    await Promise.all(procs.map((p) => p.call('allow', { peers: all })));
    await convergedAll(procs, e, 'converged after heal');
  });

  it('a process restarted with its persisted identity rejoins and catches up', async () => {
    const old = procs[3]!;
    const id = old.peerId;
    await old.stop();
    await add(procs[0]!, 'while-away', 950);
    const back = await startProc(3);
    expect(back.peerId).toBe(id);
    // The agent re-asserts what it hosts, as it would after a restart.
    await back.call('publishHost', { name: 'h3' });
    for (const w of hosted.get(id) ?? []) {
      await back.call('publishWorkload', { id: w, tenant: 'blue', address: e.workloads.get(w)!.address });
    }
    await convergedAll(procs, e, 'converged after restart');
  });
});
