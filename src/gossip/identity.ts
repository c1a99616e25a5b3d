/** The host identity (Ed25519 libp2p key) persisted on disk, so a restarted agent keeps its peer id. */
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
