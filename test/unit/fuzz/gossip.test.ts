/**
 * Fuzzing the gossip decoders (issue 12): signed records and heartbeats from any node that can reach
 * the gossip port, and record keys. decodeSigned, authenticate and openHeartbeat return a rejection
 * (never throw); parseKey throws only RecordKeyError. Seeds: records signed with real Ed25519 keys.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  HeartbeatSchema,
  HlcTimestampSchema,
  HostRecordSchema,
  RecordSchema,
  SignedHeartbeatSchema,
  SignedRecordSchema,
  TenantRecordSchema,
  WorkloadRecordSchema,
} from '../../../src/gen/segmesh/v1/gossip_pb.js';
import {
  authenticate,
  decodeSigned,
  issueMembership,
  openHeartbeat,
  parseKey,
  RecordKeyError,
  signHeartbeat,
  signRecord,
  type TrustPolicy,
} from '../../../src/gossip/records.ts';
import { decodeChecked, fuzzParams, mutated, PER_INPUT_MS, RUNS, randomBytes, SEED } from './fuzz.ts';

const MAX = 4096;
let seeds: Uint8Array[] = [];
let heartbeats: Uint8Array[] = [];
let trust: TrustPolicy;

beforeAll(async () => {
  const [host, operator, cluster] = await Promise.all([
    generateKeyPair('Ed25519'),
    generateKeyPair('Ed25519'),
    generateKeyPair('Ed25519'),
  ]);
  const id = peerIdFromPrivateKey(host).toString();
  const version = create(HlcTimestampSchema, { wallMs: 1_000n, counter: 1 });
  const cert = await issueMembership(cluster, id);
  const sign = async (r: Parameters<typeof signRecord>[0], k: PrivateKey) =>
    toBinary(SignedRecordSchema, await signRecord(r, k, cert));
  seeds = await Promise.all([
    sign(
      create(RecordSchema, {
        key: `workload/${id}/ns/w1`,
        version,
        origin: id,
        body: {
          case: 'workload',
          value: create(WorkloadRecordSchema, {
            workloadId: 'ns/w1',
            hostId: id,
            tenant: 'blue',
            opaqueAddress: new Uint8Array(16).fill(7),
            deliverySid: new Uint8Array(16).fill(9),
          }),
        },
      }),
      host,
    ),
    sign(
      create(RecordSchema, {
        key: `host/${id}`,
        version,
        origin: id,
        body: {
          case: 'host',
          value: create(HostRecordSchema, {
            hostId: id,
            name: 'h1',
            underlayAddress: new Uint8Array(16).fill(1),
          }),
        },
      }),
      host,
    ),
    sign(
      create(RecordSchema, {
        key: 'tenant/blue',
        version,
        origin: 'operator',
        body: {
          case: 'tenant',
          value: create(TenantRecordSchema, { name: 'blue', routeTargets: ['65000:1'] }),
        },
      }),
      operator,
    ),
  ]);
  heartbeats = [
    toBinary(
      SignedHeartbeatSchema,
      await signHeartbeat(create(HeartbeatSchema, { hostId: id, clock: version, sequence: 3n }), host),
    ),
  ];
  trust = { maxRecordBytes: MAX, operatorKey: operator.publicKey, clusterKey: cluster.publicKey };
});

/** Awaits `fn`, which must not throw, within the per-input bound. */
async function settles<T>(what: string, input: Uint8Array, fn: () => Promise<T>): Promise<T> {
  const t = performance.now();
  let value: T;
  try {
    value = await fn();
  } catch (e) {
    throw new Error(
      `${what} threw ${(e as Error).name}: ${(e as Error).message} on ${Buffer.from(input).toString('hex')}`,
    );
  }
  const ms = performance.now() - t;
  if (ms > PER_INPUT_MS) throw new Error(`${what} took ${ms.toFixed(0)} ms`);
  return value;
}

describe('fuzz: gossip records and heartbeats', () => {
  it('decodeSigned + authenticate on random and mutated signed records: a verdict, never an exception', async () => {
    // Positive control: the valid records decode and authenticate.
    for (const s of seeds) {
      const d = decodeSigned(s, MAX);
      expect(d.ok).toBe(true);
      if (d.ok) expect(await authenticate(d.value, trust)).toEqual({ ok: true });
    }
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(randomBytes, mutated(seeds)), async (b) => {
        const d = decodeChecked('decodeSigned', b, [], () => decodeSigned(b, MAX)).value as ReturnType<
          typeof decodeSigned
        >;
        expect(typeof d.ok).toBe('boolean');
        if (!d.ok) return;
        const verdict = await settles('authenticate', b, () => authenticate(d.value, trust));
        if (verdict.ok) accepted++;
      }),
      { ...fuzzParams, numRuns: Math.ceil(RUNS / 2) },
    );
    // A mutation that still authenticates must have left the signed bytes as they were (a flip in an
    // unknown or ignored field): never more than a few of them.
    expect(accepted).toBeLessThan(RUNS / 20);
  });

  it('openHeartbeat on random and mutated heartbeats: a verdict, never an exception', async () => {
    const good = await openHeartbeat(fromBinary(SignedHeartbeatSchema, heartbeats[0]!));
    expect(good.ok).toBe(true);
    await fc.assert(
      fc.asyncProperty(fc.oneof(randomBytes, mutated(heartbeats)), async (b) => {
        let s: ReturnType<typeof fromBinary<typeof SignedHeartbeatSchema>>;
        try {
          s = fromBinary(SignedHeartbeatSchema, b);
        } catch {
          return; // the envelope itself is refused by the protobuf layer, as the batch decoder does
        }
        const r = await settles('openHeartbeat', b, () => openHeartbeat(s));
        expect(typeof r.ok).toBe('boolean');
      }),
      { ...fuzzParams, numRuns: Math.ceil(RUNS / 2) },
    );
  });

  it('parseKey on random keys throws only RecordKeyError', () => {
    expect(parseKey('tenant/blue')).toMatchObject({ kind: 'tenant', name: 'blue' });
    const keys = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc
        .tuple(
          fc.constantFrom('host', 'workload', 'tenant', 'policy', 'hmac', 'x'),
          fc.array(fc.string({ maxLength: 20 }), { maxLength: 8 }),
        )
        .map(([k, parts]) => [k, ...parts].join('/')),
    );
    fc.assert(
      fc.property(keys, (k) => {
        decodeChecked('parseKey', k, [RecordKeyError], () => parseKey(k));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
