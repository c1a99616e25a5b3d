/**
 * The operator key formats, checked byte by byte so that a wrong file or entry is named for what it is
 * (empty, text, PEM, base64 of the other half, another key type, truncated) instead of a protobuf
 * decoder's offset. Pure: callers read files.
 *
 * libp2p's key protobuf: field 1 (varint) the key type, field 2 (bytes) the key. An Ed25519 public key
 * is `08 01 12 20` + 32 bytes (36 bytes; `operatorKeys` lists it in base64), the private key
 * `08 01 12 40` + 64 bytes (68 bytes; `segmesh keygen --out` writes it raw).
 */
import { privateKeyFromProtobuf, publicKeyFromProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey, PublicKey } from '@libp2p/interface';

export class OperatorKeyError extends Error {
  override readonly name = 'OperatorKeyError';
}

const KEY_TYPES = ['RSA', 'Ed25519', 'secp256k1', 'ECDSA'] as const;
const ED25519_PUBLIC = 32;
const ED25519_PRIVATE = 64;

interface KeyShape {
  readonly type: number;
  readonly data: number;
}

function readVarint(bytes: Uint8Array, offset: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let i = 0; i < 5 && offset + i < bytes.length; i++) {
    const b = bytes[offset + i]!;
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) return { value, next: offset + i + 1 };
  }
  return undefined;
}

/** The key type and data length, or why the bytes are not a libp2p key protobuf. */
function keyShape(bytes: Uint8Array): KeyShape | string {
  if (bytes[0] !== 0x08) return `starts with byte 0x${hex(bytes[0]!)}, not 0x08 (a libp2p key's type field)`;
  const type = readVarint(bytes, 1);
  if (!type) return 'ends inside its key type field';
  if (bytes[type.next] !== 0x12)
    return type.next >= bytes.length
      ? 'ends after its key type, with no key data'
      : `has byte 0x${hex(bytes[type.next]!)} at offset ${type.next}, not 0x12 (a libp2p key's data field)`;
  const length = readVarint(bytes, type.next + 1);
  if (!length) return 'ends inside its key data length';
  const have = bytes.length - length.next;
  if (have < length.value)
    return `is truncated: it declares ${length.value} bytes of key data and has ${have}`;
  if (have > length.value)
    return `has ${have - length.value} bytes after its ${length.value} bytes of key data (two keys in one file?)`;
  return { type: type.value, data: length.value };
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}

/** `an Ed25519`, `a secp256k1`, `an RSA`: the key type with its article. */
function aType(type: number): string {
  const name = KEY_TYPES[type];
  if (name === undefined) return `an unknown (type ${type})`;
  return `${/^[AEIOU]/i.test(name) || name === 'RSA' ? 'an' : 'a'} ${name}`;
}

/** True when every byte is printable ASCII or white space: the file is text, not a binary key. */
function isText(bytes: Uint8Array): boolean {
  return bytes.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09);
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Why `text` is not base64, or undefined. */
function base64Problem(text: string): string | undefined {
  const bad = /[^A-Za-z0-9+/=]/.exec(text);
  if (bad) return `is not base64: character ${JSON.stringify(bad[0])} at position ${bad.index + 1}`;
  if (!BASE64.test(text) || text.length % 4 !== 0)
    return `is not base64: ${text.length} characters with "=" misplaced or missing (base64 comes in groups of 4)`;
  return undefined;
}

/** Why the bytes of a would-be private key file are not one, or undefined when they are an Ed25519 key. */
export function privateKeyBytesProblem(bytes: Uint8Array): string | undefined {
  if (bytes.length === 0) return 'is empty';
  if (isText(bytes)) {
    const text = Buffer.from(bytes).toString('latin1').trim();
    if (text.startsWith('-----BEGIN'))
      return `is a PEM file (${text.split('\n')[0]}), not a libp2p protobuf key`;
    if (!base64Problem(text)) {
      const decoded = Buffer.from(text, 'base64');
      const shape = keyShape(decoded);
      if (typeof shape !== 'string' && shape.data === ED25519_PUBLIC)
        return `holds ${aType(shape.type)} public key in base64 (what keygen prints and operatorKeys lists), not the private key`;
      if (typeof shape !== 'string')
        return `holds a key in base64 text (${decoded.length} bytes decoded); the private key file is the raw bytes keygen wrote`;
    }
    return `is ${bytes.length} bytes of text, not a libp2p protobuf key (a binary file of 68 bytes)`;
  }
  const shape = keyShape(bytes);
  if (typeof shape === 'string')
    return `${shape}; an Ed25519 private key file is 08 01 12 40 and 64 bytes (68 bytes)`;
  if (shape.type !== 1) return `holds ${aType(shape.type)} key; operator keys are Ed25519`;
  if (shape.data === ED25519_PUBLIC)
    return 'holds an Ed25519 public key (36 bytes), not the private key (68 bytes)';
  if (shape.data !== ED25519_PRIVATE)
    return `holds ${shape.data} bytes of Ed25519 key data; a private key has ${ED25519_PRIVATE}`;
  return undefined;
}

/** Why an `operatorKeys` entry is not a base64 Ed25519 public key, or undefined. */
export function publicKeyTextProblem(text: string): string | undefined {
  if (text.trim() === '') return 'is empty';
  if (text.startsWith('-----BEGIN')) return 'is PEM text, not the base64 line segmesh keygen prints';
  const why = base64Problem(text.trim());
  if (why) return why;
  const bytes = Buffer.from(text.trim(), 'base64');
  const shape = keyShape(bytes);
  if (typeof shape === 'string')
    return `decodes to ${bytes.length} bytes that ${shape}; an Ed25519 public key is 36 bytes (48 base64 characters)`;
  if (shape.type !== 1) return `is ${aType(shape.type)} key; operator keys are Ed25519`;
  if (shape.data === ED25519_PRIVATE)
    return 'is a PRIVATE key: list only the public key (the line segmesh keygen prints) and replace this one, it has leaked';
  if (shape.data !== ED25519_PUBLIC)
    return `holds ${shape.data} bytes of Ed25519 key data; a public key has ${ED25519_PUBLIC}`;
  return undefined;
}

/** An `operatorKeys` entry back to the key; throws naming what is wrong with it. */
export function operatorKeyFromText(text: string): PublicKey {
  const why = publicKeyTextProblem(text);
  if (why) throw new OperatorKeyError(`operator key ${why}`);
  return publicKeyFromProtobuf(Buffer.from(text.trim(), 'base64'));
}

/** The private key of a `--operator-key` file; throws naming the file and what is wrong with its bytes. */
export function operatorPrivateKeyFromBytes(bytes: Uint8Array, file: string): PrivateKey {
  const why = privateKeyBytesProblem(bytes);
  if (why)
    throw new OperatorKeyError(
      `operator key file ${file} ${why}; pass the private key file that segmesh keygen --out wrote`,
    );
  return privateKeyFromProtobuf(bytes);
}
