/**
 * Membership over real libp2p: a private network key (PSK) keeps other networks out; a cluster key
 * admits hosts carrying its certificate and refuses a host without one (it can neither join nor inject).
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { generateKey } from '@libp2p/pnet';
import { afterEach, expect, it } from 'vitest';
import { issueMembership } from '../../../src/gossip/index.ts';
import { Gossip } from '../../../src/gossip/node.ts';
import { systemSuite, waitFor } from '../../harness/index.ts';
import { address, FAST, sleep } from './cluster.ts';

function swarmKey(): Uint8Array {
  const k = new Uint8Array(95);
  generateKey(k);
  return k;
}

systemSuite('gossip: private network key and cluster membership', { tools: [] }, () => {
  const nodes: Gossip[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((g) => g.stop()));
  });

  async function node(
    init: Partial<ConstructorParameters<typeof Gossip>[1]>,
    key?: PrivateKey,
  ): Promise<Gossip> {
    const g = new Gossip({}, { ...FAST, ...init, privateKey: key ?? (await generateKeyPair('Ed25519')) });
    await g.start();
    nodes.push(g);
    return g;
  }

  it('nodes sharing a PSK converge; a node with another PSK cannot connect', async () => {
    const psk = swarmKey();
    const a = await node({ psk });
    const b = await node({ psk, bootstrap: [a.multiaddrs[0]!] });
    const stranger = await node({ psk: swarmKey(), bootstrap: [a.multiaddrs[0]!] });
    await a.publishWorkload({ workloadId: 'w', tenant: 't', opaqueAddress: address(1) });
    await a.publishHost({ name: 'a' });
    await waitFor(() => b.snapshot().workloads.length === 1, {
      timeoutMs: 10_000,
      what: 'b has the workload',
    });
    await sleep(500);
    expect(stranger.libp2p.getPeers()).toHaveLength(0);
    expect(stranger.snapshot().workloads).toHaveLength(0);
  });

  it('a cluster key admits certified hosts and refuses an uncertified one', async () => {
    const cluster = await generateKeyPair('Ed25519');
    const certified = async () => {
      const key = await generateKeyPair('Ed25519');
      const cert = await issueMembership(cluster, peerIdFromPrivateKey(key).toString());
      return { key, cert };
    };
    const m1 = await certified();
    const m2 = await certified();
    const a = await node({ clusterKey: cluster.publicKey, membershipCertificate: m1.cert }, m1.key);
    const b = await node(
      { clusterKey: cluster.publicKey, membershipCertificate: m2.cert, bootstrap: [a.multiaddrs[0]!] },
      m2.key,
    );
    // The intruder holds a certificate issued by some other key.
    const rogueKey = await generateKeyPair('Ed25519');
    const rogueCert = await issueMembership(
      await generateKeyPair('Ed25519'),
      peerIdFromPrivateKey(rogueKey).toString(),
    );
    const intruder = await node(
      { clusterKey: cluster.publicKey, membershipCertificate: rogueCert, bootstrap: [a.multiaddrs[0]!] },
      rogueKey,
    );
    await a.publishHost({ name: 'a' });
    await a.publishWorkload({ workloadId: 'ok', tenant: 't', opaqueAddress: address(1) });
    await intruder.publishHost({ name: 'evil' });
    await intruder.publishWorkload({ workloadId: 'evil', tenant: 't', opaqueAddress: address(2) });
    await waitFor(
      () =>
        b
          .snapshot()
          .workloads.map((w) => w.id)
          .includes('ok'),
      {
        timeoutMs: 10_000,
        what: 'certified workload at b',
      },
    );
    await waitFor(() => (a.stats().rejected.not_member ?? 0) >= 1, {
      timeoutMs: 10_000,
      what: 'intruder refused',
    });
    await sleep(1_000);
    for (const g of [a, b]) expect(g.snapshot().workloads.map((w) => w.id)).toEqual(['ok']);
    expect(a.libp2p.getPeers().map(String)).not.toContain(intruder.hostId);
  });
});
