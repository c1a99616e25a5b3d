/**
 * Hostile input over real libp2p: a record signed by the wrong host, a fabric record not signed by the
 * operator key, malformed and oversized messages, a node outside the allowlist. Each is rejected and
 * counted by reason; the cluster keeps running and converging; secrets never reach logs or snapshots.
 */
import { Writable } from 'node:stream';
import { create, toBinary } from '@bufbuild/protobuf';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  GossipMessageSchema,
  type Record as GossipRecord,
  HlcTimestampSchema,
  HmacKeyRecordSchema,
  RecordSchema,
  TenantRecordSchema,
  WorkloadRecordSchema,
} from '../../../src/gen/segmesh/v1/gossip_pb.js';
import { GOSSIP_TOPIC, signRecord } from '../../../src/gossip/index.ts';
import { Gossip } from '../../../src/gossip/node.ts';
import { systemSuite, waitFor } from '../../harness/index.ts';
import { address, type Cluster, converged, Expected, FAST, hexOf, startCluster } from './cluster.ts';

const SECRET = 'c0ffee5ec2e7c0ffee5ec2e7c0ffee5e';

function record(key: string, origin: string, body: GossipRecord['body']): GossipRecord {
  return create(RecordSchema, {
    key,
    origin,
    version: create(HlcTimestampSchema, { wallMs: BigInt(Date.now()), counter: 0 }),
    body,
  });
}

systemSuite('gossip: rejected input', { tools: [] }, () => {
  let cluster: Cluster;
  let operator: PrivateKey;
  let outsider: Gossip | undefined;
  const logLines: string[] = [];

  beforeAll(async () => {
    operator = await generateKeyPair('Ed25519');
    const keys = await Promise.all(Array.from({ length: 4 }, () => generateKeyPair('Ed25519')));
    const allowlist = keys.map((k) => peerIdFromPrivateKey(k).toString());
    const logger = pino(
      { level: 'debug' },
      new Writable({
        write(chunk, _enc, cb) {
          logLines.push(String(chunk));
          cb();
        },
      }),
    );
    // Node 3 is "mallory": a member that misbehaves through the raw pubsub API.
    cluster = await startCluster(
      4,
      { allowlist, operatorKey: operator.publicKey, maxRecordBytes: 4_096 },
      () => ({ logger }),
      keys,
    );
    const e = new Expected();
    for (const g of cluster.nodes) {
      await g.publishHost({ name: 'h' });
      e.hosts.add(g.hostId);
    }
    await converged(cluster.nodes, e);
  });

  afterAll(async () => {
    await outsider?.stop();
    await cluster.stop();
  });

  const honest = () => cluster.nodes.slice(0, 3);
  const rejected = (reason: string) => honest().reduce((n, g) => n + (g.stats().rejected[reason] ?? 0), 0);
  const raw = (bytes: Uint8Array) => cluster.nodes[3]!.libp2p.services.pubsub.publish(GOSSIP_TOPIC, bytes);
  const asMessage = async (r: GossipRecord, key: PrivateKey) =>
    toBinary(
      GossipMessageSchema,
      create(GossipMessageSchema, { kind: { case: 'record', value: await signRecord(r, key) } }),
    );

  it('refuses a workload record signed by a host that does not own it', async () => {
    const victim = cluster.nodes[0]!.hostId;
    const forged = record(`workload/${victim}/evil`, victim, {
      case: 'workload',
      value: create(WorkloadRecordSchema, {
        workloadId: 'evil',
        hostId: victim,
        tenant: 't',
        opaqueAddress: address(666),
      }),
    });
    await raw(await asMessage(forged, cluster.keys[3]!));
    await waitFor(() => rejected('wrong_signer') >= 1, { timeoutMs: 5_000, what: 'wrong_signer counted' });
    for (const g of honest()) expect(g.snapshot().workloads.map((w) => w.id)).not.toContain('evil');
  });

  it('refuses a fabric record not signed by the operator key, accepts the operator, redacts secrets', async () => {
    const fake = record('tenant/red', 'operator', {
      case: 'tenant',
      value: create(TenantRecordSchema, { name: 'red' }),
    });
    await raw(await asMessage(fake, cluster.keys[3]!));
    await waitFor(() => rejected('not_operator') >= 1, { timeoutMs: 5_000, what: 'not_operator counted' });
    const tenant = record('tenant/blue', 'operator', {
      case: 'tenant',
      value: create(TenantRecordSchema, { name: 'blue', routeTargets: ['65000:1'] }),
    });
    const key = record('hmac/k1', 'operator', {
      case: 'hmacKey',
      value: create(HmacKeyRecordSchema, { keyId: 'k1', secret: Buffer.from(SECRET, 'hex') }),
    });
    expect(await cluster.nodes[1]!.publishSigned(await signRecord(tenant, operator))).toEqual({ ok: true });
    expect(await cluster.nodes[1]!.publishSigned(await signRecord(key, operator))).toEqual({ ok: true });
    await waitFor(
      () =>
        cluster.nodes.every((g) => g.snapshot().tenants.length === 1 && g.snapshot().hmacKeys.length === 1),
      {
        timeoutMs: 10_000,
        what: 'operator records everywhere',
      },
    );
    for (const g of cluster.nodes) {
      const s = g.snapshot();
      expect(s.tenants.map((t) => t.name)).toEqual(['blue']);
      expect(s.hmacKeys).toEqual([{ keyId: 'k1', secret: '<redacted>', notBeforeMs: 0, notAfterMs: 0 }]);
      expect(JSON.stringify(s, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).not.toContain(SECRET);
    }
    expect(logLines.join('')).not.toContain(SECRET);
  });

  it('refuses malformed and oversized messages', async () => {
    await raw(new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x7f, 0x01]));
    await waitFor(() => rejected('malformed') >= 1, { timeoutMs: 5_000, what: 'malformed counted' });
    const big = record(`workload/${cluster.nodes[3]!.hostId}/big`, cluster.nodes[3]!.hostId, {
      case: 'workload',
      value: create(WorkloadRecordSchema, {
        workloadId: 'big',
        hostId: cluster.nodes[3]!.hostId,
        tenant: 'x'.repeat(10_000),
        opaqueAddress: address(1),
      }),
    });
    await raw(await asMessage(big, cluster.keys[3]!));
    await waitFor(() => rejected('oversized') >= 1, { timeoutMs: 5_000, what: 'oversized counted' });
  });

  it('refuses a record from too far in the future, and forged records do not move any clock', async () => {
    const mallory = cluster.nodes[3]!.hostId;
    const future = (key: string, origin: string, id: string) =>
      create(RecordSchema, {
        key,
        origin,
        version: create(HlcTimestampSchema, { wallMs: BigInt(Date.now() + 600_000), counter: 0 }),
        body: {
          case: 'workload',
          value: create(WorkloadRecordSchema, {
            workloadId: id,
            hostId: origin,
            tenant: 't',
            opaqueAddress: address(9),
          }),
        },
      });
    await raw(await asMessage(future(`workload/${mallory}/late`, mallory, 'late'), cluster.keys[3]!));
    await waitFor(() => rejected('clock_skew') >= 1, { timeoutMs: 5_000, what: 'clock_skew counted' });
    // Within the drift limit but forged (signed by mallory for another host): refused, clock untouched.
    const victim = cluster.nodes[0]!.hostId;
    const near = future(`workload/${victim}/near`, victim, 'near');
    near.version = create(HlcTimestampSchema, { wallMs: BigInt(Date.now() + 30_000), counter: 0 });
    const before = rejected('wrong_signer');
    await raw(await asMessage(near, cluster.keys[3]!));
    await waitFor(() => rejected('wrong_signer') > before, {
      timeoutMs: 5_000,
      what: 'forged near-future refused',
    });
    await cluster.nodes[1]!.publishWorkload({
      workloadId: 'clock-check',
      tenant: 't',
      opaqueAddress: address(10),
    });
    const mine = cluster.nodes[1]!.entries().find((e) => e.key.endsWith('/clock-check'))!;
    expect(mine.version.wall).toBeLessThan(Date.now() + 5_000);
    await cluster.nodes[1]!.removeWorkload('clock-check');
  });

  it('refuses a node that is not in the allowlist: it can neither join nor inject', async () => {
    outsider = new Gossip(
      {},
      {
        ...FAST,
        privateKey: await generateKeyPair('Ed25519'),
        bootstrap: [cluster.nodes[0]!.multiaddrs[0]!],
      },
    );
    await outsider.start();
    await outsider.publishWorkload({ workloadId: 'intruder', tenant: 't', opaqueAddress: address(777) });
    await waitFor(() => rejected('not_member') >= 1, { timeoutMs: 5_000, what: 'not_member counted' });
    expect(outsider.libp2p.getPeers()).toHaveLength(0);
    for (const g of honest()) expect(g.snapshot().workloads.map((w) => w.id)).not.toContain('intruder');
  });

  it('keeps running and converging after all of it', async () => {
    const e = new Expected();
    for (const g of cluster.nodes) e.hosts.add(g.hostId);
    e.fabric.add('tenant/blue');
    e.fabric.add('hmac/k1');
    await cluster.nodes[2]!.publishWorkload({ workloadId: 'ok', tenant: 't', opaqueAddress: address(5) });
    e.workloads.set('ok', { hostId: cluster.nodes[2]!.hostId, address: hexOf(address(5)) });
    await converged(cluster.nodes, e);
  });
});
