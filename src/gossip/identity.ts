/** The host identity (Ed25519 libp2p key) persisted on disk, so a restarted agent keeps its peer id. */

import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  generateKeyPair,
  privateKeyFromProtobuf,
  privateKeyToProtobuf,
  publicKeyToProtobuf,
} from '@libp2p/crypto/keys';
import type { PrivateKey, PublicKey } from '@libp2p/interface';
import { GossipConfigError } from './errors.ts';
import { privateKeyBytesProblem } from './key-format.ts';

export {
  OperatorKeyError,
  operatorKeyFromText,
  operatorPrivateKeyFromBytes,
  privateKeyBytesProblem,
  publicKeyTextProblem,
} from './key-format.ts';

/** Reads the protobuf-encoded private key at `path`, or creates one (mode 0600) if the file is absent. */
export async function loadOrCreateIdentity(path: string): Promise<PrivateKey> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const key = await generateKeyPair('Ed25519');
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' });
    await chmod(path, 0o600);
    return key;
  }
  const why = privateKeyBytesProblem(bytes);
  if (why) {
    throw new GossipConfigError(
      `identity file ${path} ${why}: ` +
        'restore it from backup or delete it to create a new identity (the host gets a new id)',
    );
  }
  return privateKeyFromProtobuf(bytes);
}

/**
 * A fresh operator key (Ed25519): the private key as `segmesh policy apply --operator-key` reads it
 * (protobuf), and the public key as agents list it in `operatorKeys` (base64 of its protobuf).
 */
export async function newOperatorKey(): Promise<{ privateKey: Uint8Array; publicKey: string }> {
  const key = await generateKeyPair('Ed25519');
  return { privateKey: privateKeyToProtobuf(key), publicKey: operatorKeyText(key.publicKey) };
}

/** A public key as `operatorKeys` lists it. */
export function operatorKeyText(key: PublicKey): string {
  return Buffer.from(publicKeyToProtobuf(key)).toString('base64');
}

/** How a cluster key file starts: says what the file is to anyone who opens it. */
const CLUSTER_KEY_HEADER = 'segmesh-cluster-key-v1';

/**
 * A fresh cluster key as its file holds it: the header line, then the Ed25519 private key (protobuf,
 * base64). Every member host holds this file (mode 0600) and certifies its own host id with it.
 */
export async function newClusterKey(): Promise<string> {
  const key = await generateKeyPair('Ed25519');
  return `${CLUSTER_KEY_HEADER}\n${Buffer.from(privateKeyToProtobuf(key)).toString('base64')}\n`;
}

/** A cluster key file's text back to the key; the error says what is wrong with the text. */
export function clusterKeyFromText(text: string): PrivateKey {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (lines[0] !== CLUSTER_KEY_HEADER || lines.length !== 2)
    throw new GossipConfigError(
      `not a cluster key: expected the line "${CLUSTER_KEY_HEADER}" and one line of base64, as \`segmesh keygen --cluster\` writes`,
    );
  const b64 = lines[1]!;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64))
    throw new GossipConfigError('the key line is not base64 (characters outside A-Z a-z 0-9 + / =)');
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(Buffer.from(b64, 'base64'));
  } catch (err) {
    throw new GossipConfigError(
      `the key line is ${Buffer.from(b64, 'base64').length} bytes that are not a libp2p private key (${(err as Error).message})`,
    );
  }
  if (key.type !== 'Ed25519') throw new GossipConfigError(`the key is ${key.type}; a cluster key is Ed25519`);
  return key;
}

/** A short, stable name of a cluster key (the same on every member), for `segmesh status` and logs. */
export function clusterKeyId(key: PublicKey): string {
  return createHash('sha256').update(publicKeyToProtobuf(key)).digest('hex').slice(0, 16);
}
