/**
 * One gossip node in its own process, driven over IPC by the system tests and by bench/gossip.ts.
 * Mode `segmesh` runs our Gossip component; mode `raw` runs bare gossipsub with the same libp2p stack
 * (the benchmark's anchor). Not a test file: forked with Node 24 (node_modules/.bin/node).
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { GOSSIP_TOPIC, type GossipInit, loadOrCreateIdentity } from '../../../src/gossip/index.ts';
import { createGossipLibp2p, Gossip } from '../../../src/gossip/node.ts';

export interface StartArgs {
  mode: 'segmesh' | 'raw';
  keyFile?: string;
  bootstrap: string[];
  init?: Partial<Omit<GossipInit, 'privateKey' | 'bootstrap'>>;
  /** Fraction of incoming record messages to drop on purpose. */
  dropRecords?: number;
  /** Report every applied record (segmesh) or received message (raw) with its arrival time. */
  report?: boolean;
}

export type Request = { id: number; op: string; args?: unknown };
export type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };
export type Report = { report: string; t: number; source?: string };

const now = (): number => performance.timeOrigin + performance.now();
const send = (m: Reply | Report): void => {
  process.send?.(m);
};

let gossip: Gossip | undefined;
let raw: Awaited<ReturnType<typeof createGossipLibp2p>> | undefined;

async function start(a: StartArgs): Promise<{ peerId: string; addrs: string[] }> {
  const privateKey =
    a.keyFile === undefined ? await generateKeyPair('Ed25519') : await loadOrCreateIdentity(a.keyFile);
  if (a.mode === 'raw') {
    raw = await createGossipLibp2p({ privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], sameIpPeers: true });
    raw.services.pubsub.subscribe(GOSSIP_TOPIC);
    raw.services.pubsub.addEventListener('message', (ev) => {
      if (a.report) send({ report: Buffer.from(ev.detail.data).toString('utf8'), t: now() });
    });
    for (const addr of a.bootstrap) await raw.dial(multiaddr(addr)).catch(() => {});
    return { peerId: raw.peerId.toString(), addrs: raw.getMultiaddrs().map(String) };
  }
  const drop = a.dropRecords ?? 0;
  gossip = new Gossip(
    { faults: { dropGossip: (_from, kind) => kind === 'record' && Math.random() < drop } },
    { listen: ['/ip4/127.0.0.1/tcp/0'], sameIpPeers: true, ...a.init, privateKey, bootstrap: a.bootstrap },
  );
  if (a.report) {
    gossip.addEventListener('record', (ev) => {
      if (ev.detail.source !== 'local') send({ report: ev.detail.key, t: now(), source: ev.detail.source });
    });
  }
  await gossip.start();
  return { peerId: gossip.hostId, addrs: gossip.multiaddrs };
}

function hexToBytes(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h, 'hex'));
}

interface OpArgs {
  id: string;
  tenant: string;
  address: string;
  name: string;
  peers: string[];
  text: string;
}

async function handle(op: string, input: unknown): Promise<unknown> {
  const args = input as OpArgs;
  switch (op) {
    case 'start':
      return start(input as StartArgs);
    case 'publishHost':
      return gossip!.publishHost({ name: args.name });
    // Publishing ops answer with the time the publication started (the benchmark's origin time).
    case 'publishWorkload': {
      const t = now();
      await gossip!.publishWorkload({
        workloadId: args.id,
        tenant: args.tenant,
        opaqueAddress: hexToBytes(args.address),
      });
      return t;
    }
    case 'removeWorkload': {
      const t = now();
      await gossip!.removeWorkload(args.id);
      return t;
    }
    case 'publishRaw': {
      const t = now();
      await raw!.services.pubsub.publish(GOSSIP_TOPIC, new TextEncoder().encode(args.text));
      return t;
    }
    case 'observe': {
      const s = gossip!.snapshot();
      return {
        workloads: s.workloads.map((w) => [w.id, w.hostId, w.address]).sort(),
        liveKeys: gossip!
          .entries()
          .filter((e) => !e.deleted)
          .map((e) => e.key)
          .sort(),
        hosts: s.hosts.map((h) => [h.id, h.state]),
        stats: s.stats,
      };
    }
    case 'deny':
      return gossip!.denyPeers(args.peers);
    case 'allow':
      return gossip!.allowPeers(args.peers);
    case 'peers':
      return (gossip?.libp2p ?? raw!).getPeers().length;
    case 'subscribers':
      return (gossip?.libp2p ?? raw!).services.pubsub.getSubscribers(GOSSIP_TOPIC).length;
    case 'usage': {
      globalThis.gc?.();
      return { rss: process.memoryUsage().rss, cpu: process.cpuUsage() };
    }
    case 'stop':
      await gossip?.stop();
      await raw?.stop();
      setImmediate(() => process.exit(0));
      return true;
    default:
      throw new Error(`unknown op ${op}`);
  }
}

process.on('message', (m: Request) => {
  handle(m.op, m.args).then(
    (value) => send({ id: m.id, ok: true, value: value ?? null }),
    (err: unknown) => send({ id: m.id, ok: false, error: (err as Error).stack ?? String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
