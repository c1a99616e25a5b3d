import { create, toBinary } from '@bufbuild/protobuf';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type Record as GossipRecord,
  HeartbeatSchema,
  HlcTimestampSchema,
  HostRecordSchema,
  RecordSchema,
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

let hostA: PrivateKey;
let hostB: PrivateKey;
let operator: PrivateKey;
let cluster: PrivateKey;
let a: string;

beforeAll(async () => {
  [hostA, hostB, operator, cluster] = await Promise.all([
    generateKeyPair('Ed25519'),
    generateKeyPair('Ed25519'),
    generateKeyPair('Ed25519'),
    generateKeyPair('Ed25519'),
  ]);
  a = peerIdFromPrivateKey(hostA).toString();
});

const version = create(HlcTimestampSchema, { wallMs: 1_000n, counter: 1 });

function workload(hostId: string, origin = hostId): GossipRecord {
  return create(RecordSchema, {
    key: `workload/${hostId}/w1`,
    version,
    origin,
    body: {
      case: 'workload',
      value: create(WorkloadRecordSchema, {
        workloadId: 'w1',
        hostId,
        tenant: 't',
        opaqueAddress: new Uint8Array(16),
      }),
    },
  });
}

function tenant(): GossipRecord {
  return create(RecordSchema, {
    key: 'tenant/blue',
    version,
    origin: 'operator',
    body: { case: 'tenant', value: create(TenantRecordSchema, { name: 'blue', routeTargets: ['65000:1'] }) },
  });
}

async function check(signedBytes: Uint8Array, trust: Partial<TrustPolicy> = {}) {
  const policy: TrustPolicy = { maxRecordBytes: 4096, operatorKey: operator.publicKey, ...trust };
  const d = decodeSigned(signedBytes, policy.maxRecordBytes);
  if (!d.ok) return d.reason;
  const r = await authenticate(d.value, policy);
  return r.ok ? 'ok' : r.reason;
}

const bytes = async (r: GossipRecord, k: PrivateKey, cert?: Uint8Array) =>
  toBinary(SignedRecordSchema, await signRecord(r, k, cert));

describe('record keys', () => {
  it('parses owners and refuses bad shapes', () => {
    expect(parseKey('workload/h1/w-1')).toEqual({ kind: 'workload', owner: 'h1', name: 'w-1' });
    expect(parseKey('policy/p')).toEqual({ kind: 'policy', owner: 'operator', name: 'p' });
    for (const bad of ['workload/h1', 'host/', 'x/y', 'host/a/b', 'tenant/../x']) {
      expect(() => parseKey(bad)).toThrow(RecordKeyError);
    }
  });
});

describe('signing and validation', () => {
  it('accepts a host writing its own workload and the operator writing a tenant', async () => {
    expect(await check(await bytes(workload(a), hostA))).toBe('ok');
    expect(await check(await bytes(tenant(), operator))).toBe('ok');
  });

  it('refuses a record signed by the wrong host, or claiming another origin', async () => {
    expect(await check(await bytes(workload(a), hostB))).toBe('wrong_signer');
    expect(await check(await bytes(workload(a, 'someone'), hostA))).toBe('wrong_signer');
  });

  it('refuses fabric records not signed by the operator key, or with no operator key configured', async () => {
    expect(await check(await bytes(tenant(), hostA))).toBe('not_operator');
    expect(await check(await bytes(tenant(), operator), { operatorKey: undefined })).toBe('not_operator');
  });

  it('refuses tampered, malformed, oversized and mismatched records', async () => {
    const s = await signRecord(workload(a), hostA);
    const later = workload(a);
    later.version = create(HlcTimestampSchema, { wallMs: 9_999n, counter: 0 });
    s.payload = toBinary(RecordSchema, later); // a replay with a forged version, old signature
    expect(await check(toBinary(SignedRecordSchema, s))).toBe('bad_signature');
    expect(await check(new Uint8Array([0xff, 0xff, 0xff]))).toBe('malformed');
    expect(await check(new Uint8Array(10_000))).toBe('oversized');
    const mismatched = workload(a);
    mismatched.key = `workload/${a}/other`;
    expect(await check(await bytes(mismatched, hostA))).toBe('key_mismatch');
    const noVersion = workload(a);
    noVersion.version = undefined;
    expect(await check(await bytes(noVersion, hostA))).toBe('malformed');
  });

  it('enforces the allowlist and cluster membership certificates', async () => {
    const r = await bytes(workload(a), hostA);
    expect(await check(r, { allowlist: new Set([a]) })).toBe('ok');
    expect(await check(r, { allowlist: new Set(['other']) })).toBe('not_member');
    expect(await check(r, { clusterKey: cluster.publicKey })).toBe('not_member');
    const cert = await issueMembership(cluster, a);
    expect(await check(await bytes(workload(a), hostA, cert), { clusterKey: cluster.publicKey })).toBe('ok');
    const forged = await issueMembership(hostB, a);
    expect(await check(await bytes(workload(a), hostA, forged), { clusterKey: cluster.publicKey })).toBe(
      'not_member',
    );
  });

  it('keeps unknown fields written by a newer agent byte for byte', async () => {
    const known = toBinary(RecordSchema, create(RecordSchema, { ...workload(a) }));
    // Field 99 (varint 7) and field 11 / WorkloadRecord field 42 are unknown to this version.
    const payload = new Uint8Array([...known, 0x98, 0x06, 0x07]);
    const signed = await signRecord(workload(a), hostA);
    const resigned = create(SignedRecordSchema, {
      ...signed,
      payload,
      signature: await hostA.sign(
        new Uint8Array([...new TextEncoder().encode('segmesh-record-v1\0'), ...payload]),
      ),
    });
    const d = decodeSigned(toBinary(SignedRecordSchema, resigned), 4096);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(toBinary(RecordSchema, d.value.record)).toEqual(payload);
    expect(d.value.record.body.case).toBe('workload');
    expect(await authenticate(d.value, { maxRecordBytes: 4096 })).toEqual({ ok: true });
  });

  it('a host record names its writer', async () => {
    const r = create(RecordSchema, {
      key: `host/${a}`,
      version,
      origin: a,
      body: {
        case: 'host',
        value: create(HostRecordSchema, { hostId: a, underlayAddress: new Uint8Array(16) }),
      },
    });
    expect(await check(await bytes(r, hostA))).toBe('ok');
    expect(await check(await bytes(r, hostB))).toBe('wrong_signer');
  });
});

describe('heartbeats', () => {
  it('open only when signed by the host they name', async () => {
    const hb = create(HeartbeatSchema, { hostId: a, sequence: 3n });
    const ok = await openHeartbeat(await signHeartbeat(hb, hostA));
    expect(ok.ok && ok.heartbeat.sequence).toBe(3n);
    const forged = await openHeartbeat(await signHeartbeat(hb, hostB));
    expect(forged).toMatchObject({ ok: false, reason: 'wrong_signer' });
    const tampered = await signHeartbeat(hb, hostA);
    tampered.payload = toBinary(HeartbeatSchema, create(HeartbeatSchema, { hostId: a, sequence: 4n }));
    expect(await openHeartbeat(tampered)).toMatchObject({ ok: false, reason: 'bad_signature' });
    tampered.payload = new Uint8Array([0xff]);
    expect(await openHeartbeat(tampered)).toMatchObject({ ok: false, reason: 'malformed' });
  });
});
