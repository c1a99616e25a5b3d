/**
 * Record keys, signing and validation. A record travels as a SignedRecord whose signature covers the
 * exact encoded Record bytes, so unknown fields written by a newer agent survive relaying by an older
 * one (protobuf-es keeps them on decode; we never re-encode a payload we did not write).
 *
 * Authorization: `host/<H>` and `workload/<H>/<W>` may be written only by host H (signer's peer id
 * equals H and the record's origin); `tenant/`, `policy/`, `hmac/` only by the operator key. With an
 * allowlist, H must be in it; with a cluster key, the record must carry H's membership certificate.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey, PublicKey } from '@libp2p/interface';
import { peerIdFromPublicKey } from '@libp2p/peer-id';
import {
  type Record as GossipRecord,
  type Heartbeat,
  HeartbeatSchema,
  RecordSchema,
  type SignedHeartbeat,
  SignedHeartbeatSchema,
  type SignedRecord,
  SignedRecordSchema,
} from '../gen/segmesh/v1/gossip_pb.js';
import type { Version } from './hlc.ts';

export const RECORD_DOMAIN = new TextEncoder().encode('segmesh-record-v1\0');
export const HEARTBEAT_DOMAIN = new TextEncoder().encode('segmesh-heartbeat-v1\0');
export const MEMBER_DOMAIN = new TextEncoder().encode('segmesh-member-v1\0');
export const OPERATOR_ORIGIN = 'operator';

/** Why a record or message was refused; counted per reason. */
export const RejectReason = {
  malformed: 'malformed',
  oversized: 'oversized',
  badSignature: 'bad_signature',
  wrongSigner: 'wrong_signer',
  notOperator: 'not_operator',
  notMember: 'not_member',
  clockSkew: 'clock_skew',
  keyMismatch: 'key_mismatch',
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

export type RecordKind = 'host' | 'workload' | 'tenant' | 'policy' | 'hmac';

export interface ParsedKey {
  readonly kind: RecordKind;
  /** The only writer allowed: a host id, or `operator`. */
  readonly owner: string;
  readonly name: string;
}

export class RecordKeyError extends Error {
  readonly key: string;
  constructor(key: string, why: string) {
    super(
      `invalid record key ${JSON.stringify(key)}: ${why}; keys are host/<host>, workload/<host>/<id>[/<id part>...], tenant/<name>, policy/<name>, hmac/<id>`,
    );
    this.name = 'RecordKeyError';
    this.key = key;
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}$/;

export function parseKey(key: string): ParsedKey {
  const parts = key.split('/');
  const ok = (s: string | undefined): s is string => s !== undefined && NAME.test(s);
  switch (parts[0]) {
    case 'host':
      if (parts.length === 2 && ok(parts[1])) return { kind: 'host', owner: parts[1], name: parts[1] };
      break;
    case 'workload':
      // Workload identities may have path segments (Kubernetes `namespace/name`).
      if (parts.length >= 3 && parts.length <= 6 && ok(parts[1]) && parts.slice(2).every(ok))
        return { kind: 'workload', owner: parts[1], name: parts.slice(2).join('/') };
      break;
    case 'tenant':
    case 'policy':
    case 'hmac':
      if (parts.length === 2 && ok(parts[1]))
        return { kind: parts[0], owner: OPERATOR_ORIGIN, name: parts[1] };
      break;
    default:
      throw new RecordKeyError(key, 'unknown kind');
  }
  throw new RecordKeyError(key, 'bad shape or name');
}

/** The key a record's body belongs under, or undefined for a body-less (tombstone) record. */
export function keyOfBody(record: GossipRecord): string | undefined {
  const b = record.body;
  switch (b.case) {
    case 'host':
      return `host/${b.value.hostId}`;
    case 'workload':
      return `workload/${b.value.hostId}/${b.value.workloadId}`;
    case 'tenant':
      return `tenant/${b.value.name}`;
    case 'policy':
      return `policy/${b.value.name}`;
    case 'hmacKey':
      return `hmac/${b.value.keyId}`;
    default:
      return undefined;
  }
}

export function versionOf(record: GossipRecord): Version {
  return {
    wall: Number(record.version?.wallMs ?? 0n),
    counter: record.version?.counter ?? 0,
    origin: record.origin,
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

export async function signRecord(
  record: GossipRecord,
  key: PrivateKey,
  membershipCertificate: Uint8Array = new Uint8Array(),
): Promise<SignedRecord> {
  const payload = toBinary(RecordSchema, record);
  const signature = await key.sign(concat(RECORD_DOMAIN, payload));
  return create(SignedRecordSchema, {
    payload,
    publicKey: publicKeyToProtobuf(key.publicKey),
    signature,
    membershipCertificate,
  });
}

/** The cluster key's statement that `hostId` belongs to the cluster. */
export async function issueMembership(clusterKey: PrivateKey, hostId: string): Promise<Uint8Array> {
  return clusterKey.sign(concat(MEMBER_DOMAIN, new TextEncoder().encode(hostId)));
}

export async function verifyMembership(
  clusterKey: PublicKey,
  hostId: string,
  cert: Uint8Array,
): Promise<boolean> {
  if (cert.length === 0) return false;
  try {
    return await clusterKey.verify(concat(MEMBER_DOMAIN, new TextEncoder().encode(hostId)), cert);
  } catch {
    return false;
  }
}

export interface TrustPolicy {
  /** The operator key fabric records must be signed with; without it every fabric record is refused. */
  readonly operatorKey?: PublicKey;
  /** Host ids allowed to write (and to connect). */
  readonly allowlist?: ReadonlySet<string>;
  /** The cluster key that certifies host identities. */
  readonly clusterKey?: PublicKey;
  readonly maxRecordBytes: number;
}

/** A decoded record that is not yet authenticated (cheap to compute: no signature check). */
export interface DecodedRecord {
  readonly signed: SignedRecord;
  readonly record: GossipRecord;
  readonly key: ParsedKey;
  readonly version: Version;
}

export type Decoded =
  | { ok: true; value: DecodedRecord }
  | { ok: false; reason: RejectReason; detail: string };

/** Structural checks: size, protobuf, key shape, key and body agree, origin is the key's owner. */
export function decodeSigned(input: SignedRecord | Uint8Array, maxRecordBytes: number): Decoded {
  let signed: SignedRecord;
  if (input instanceof Uint8Array) {
    if (input.length > maxRecordBytes + 1024) {
      return { ok: false, reason: 'oversized', detail: `${input.length} bytes > ${maxRecordBytes}` };
    }
    try {
      signed = fromBinary(SignedRecordSchema, input);
    } catch (err) {
      return { ok: false, reason: 'malformed', detail: `SignedRecord: ${(err as Error).message}` };
    }
  } else {
    signed = input;
  }
  if (signed.payload.length > maxRecordBytes) {
    return {
      ok: false,
      reason: 'oversized',
      detail: `payload ${signed.payload.length} bytes > ${maxRecordBytes}`,
    };
  }
  let record: GossipRecord;
  try {
    record = fromBinary(RecordSchema, signed.payload);
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: `Record: ${(err as Error).message}` };
  }
  if (record.version === undefined || record.origin === '') {
    return { ok: false, reason: 'malformed', detail: 'record without version or origin' };
  }
  let key: ParsedKey;
  try {
    key = parseKey(record.key);
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: (err as Error).message };
  }
  const bodyKey = keyOfBody(record);
  if (record.deleted ? bodyKey !== undefined : bodyKey !== record.key) {
    return { ok: false, reason: 'key_mismatch', detail: `key ${record.key} vs body ${bodyKey ?? '(none)'}` };
  }
  if (record.origin !== key.owner) {
    return {
      ok: false,
      reason: 'wrong_signer',
      detail: `origin ${record.origin} may not write ${record.key}`,
    };
  }
  const body = record.body;
  const bad = (b: Uint8Array, lengths: number[]): boolean => !lengths.includes(b.length);
  if (
    (body.case === 'workload' &&
      (bad(body.value.opaqueAddress, [4, 16]) || bad(body.value.deliverySid, [0, 16]))) ||
    (body.case === 'host' && (bad(body.value.underlayAddress, [0, 16]) || bad(body.value.endSid, [0, 16])))
  ) {
    return { ok: false, reason: 'malformed', detail: `bad address length in ${record.key}` };
  }
  return { ok: true, value: { signed, record, key, version: versionOf(record) } };
}

interface Signer {
  readonly key: PublicKey;
  /** The peer id of an Ed25519/secp256k1 key, or undefined (RSA keys have none inline). */
  readonly peerId: string | undefined;
}

const signers = new Map<string, Signer>();

/** Parses a protobuf public key once; later messages from the same signer hit the cache. */
export function signerOf(publicKey: Uint8Array): Signer {
  const k = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64');
  let s = signers.get(k);
  if (s === undefined) {
    const key = publicKeyFromProtobuf(publicKey);
    let peerId: string | undefined;
    try {
      peerId = peerIdFromPublicKey(key).toString();
    } catch {
      peerId = undefined;
    }
    s = { key, peerId };
    if (signers.size >= 10_000) signers.clear();
    signers.set(k, s);
  }
  return s;
}

export async function signHeartbeat(heartbeat: Heartbeat, key: PrivateKey): Promise<SignedHeartbeat> {
  const payload = toBinary(HeartbeatSchema, heartbeat);
  return create(SignedHeartbeatSchema, {
    payload,
    publicKey: publicKeyToProtobuf(key.publicKey),
    signature: await key.sign(concat(HEARTBEAT_DOMAIN, payload)),
  });
}

/** Decodes and verifies a heartbeat: signed by the host it names. */
export async function openHeartbeat(
  s: SignedHeartbeat,
): Promise<{ ok: true; heartbeat: Heartbeat } | { ok: false; reason: RejectReason; detail: string }> {
  let heartbeat: Heartbeat;
  let signer: Signer;
  try {
    heartbeat = fromBinary(HeartbeatSchema, s.payload);
    signer = signerOf(s.publicKey);
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: `heartbeat: ${(err as Error).message}` };
  }
  let valid = false;
  try {
    valid = await signer.key.verify(concat(HEARTBEAT_DOMAIN, s.payload), s.signature);
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: 'bad_signature', detail: `heartbeat of ${heartbeat.hostId}` };
  if (signer.peerId !== heartbeat.hostId) {
    return {
      ok: false,
      reason: 'wrong_signer',
      detail: `heartbeat of ${heartbeat.hostId} signed by ${signer.peerId}`,
    };
  }
  return { ok: true, heartbeat };
}

/** Signature and authorization checks of a decoded record. */
export async function authenticate(
  d: DecodedRecord,
  trust: TrustPolicy,
): Promise<{ ok: true } | { ok: false; reason: RejectReason; detail: string }> {
  let parsed: Signer;
  try {
    parsed = signerOf(d.signed.publicKey);
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: `signer key: ${(err as Error).message}` };
  }
  const signer = parsed.key;
  let valid = false;
  try {
    valid = await signer.verify(concat(RECORD_DOMAIN, d.signed.payload), d.signed.signature);
  } catch {
    valid = false;
  }
  if (!valid)
    return { ok: false, reason: 'bad_signature', detail: `signature over ${d.record.key} does not verify` };
  if (d.key.owner === OPERATOR_ORIGIN) {
    if (trust.operatorKey === undefined || !trust.operatorKey.equals(signer)) {
      return { ok: false, reason: 'not_operator', detail: `${d.record.key} not signed by the operator key` };
    }
    return { ok: true };
  }
  const signerId = parsed.peerId;
  if (signerId === undefined)
    return { ok: false, reason: 'malformed', detail: 'signer key type has no peer id' };
  if (signerId !== d.key.owner) {
    return { ok: false, reason: 'wrong_signer', detail: `${signerId} may not write ${d.record.key}` };
  }
  const member = await isMember(signerId, d.signed.membershipCertificate, trust);
  if (!member)
    return {
      ok: false,
      reason: 'not_member',
      detail: `${signerId} is not a cluster member (${d.record.key})`,
    };
  return { ok: true };
}

export async function isMember(hostId: string, cert: Uint8Array, trust: TrustPolicy): Promise<boolean> {
  if (trust.allowlist !== undefined && !trust.allowlist.has(hostId)) return false;
  if (trust.clusterKey !== undefined && !(await verifyMembership(trust.clusterKey, hostId, cert)))
    return false;
  return true;
}
