/** The host identity (Ed25519 libp2p key) persisted on disk, so a restarted agent keeps its peer id. */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { GossipConfigError } from './errors.ts';

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
  try {
    const key = privateKeyFromProtobuf(bytes);
    if (key.type !== 'Ed25519') throw new Error(`key type ${key.type}`);
    return key;
  } catch (err) {
    throw new GossipConfigError(
      `identity file ${path} is not a libp2p Ed25519 private key (${(err as Error).message}): ` +
        'restore it from backup or delete it to create a new identity (the host gets a new id)',
    );
  }
}
