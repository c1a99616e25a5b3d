/**
 * `segmesh keygen` and `segmesh policy apply`: fabric-wide settings (tenants, SRH HMAC keys) are
 * records signed by an operator key that every agent trusts (agent config `operatorKeys`); any agent
 * gossips them on (HMAC secrets travel only inside the peers' encrypted connections).
 */
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { Command } from 'commander';
import { AgentClient, DEFAULT_SOCKET } from '../../agent/client.ts';
import { ConfigError, parseConfig } from '../../config/load.ts';
import type { FabricPolicySpec } from '../../config/schema.ts';
import {
  type Record as GossipRecord,
  HmacKeyRecordSchema,
  RecordSchema,
  SignedRecordSchema,
  TenantRecordSchema,
} from '../../gen/segmesh/v1/gossip_pb.js';
import {
  clusterKeyFromText,
  clusterKeyId,
  newClusterKey,
  newOperatorKey,
  OperatorKeyError,
  operatorPrivateKeyFromBytes,
  signRecord,
} from '../../gossip/index.ts';
import { ipv6ToBytes, parsePrefix } from '../../srv6/address.ts';

export function keygenCommand(): Command {
  return new Command('keygen')
    .description(
      'create an operator key (prints the public key for operatorKeys) or, with --cluster, a cluster key (gossip.clusterKeyFile)',
    )
    .requiredOption('--out <file>', 'where to write the private key (mode 0600; an existing file is kept)')
    .option('--cluster', 'a cluster key: copy the file to every host and set gossip.clusterKeyFile to it')
    .action(async (o: { out: string; cluster?: boolean }) => {
      if (o.cluster) {
        const text = await newClusterKey();
        await writeFile(o.out, text, { mode: 0o600, flag: 'wx' });
        await chmod(o.out, 0o600);
        process.stdout.write(`cluster key ${clusterKeyId(clusterKeyFromText(text).publicKey)}\n`);
        process.stderr.write(
          `copy ${o.out} to every host (mode 0600, e.g. /etc/segmesh/cluster.key) and set gossip.clusterKeyFile to it; ` +
            'whoever holds it can join the fabric\n',
        );
        return;
      }
      const key = await newOperatorKey();
      await writeFile(o.out, key.privateKey, { mode: 0o600, flag: 'wx' });
      await chmod(o.out, 0o600);
      process.stdout.write(`${key.publicKey}\n`);
    });
}

export function policyCommand(): Command {
  const cmd = new Command('policy').description('fabric-wide settings signed by the operator');
  cmd.addCommand(
    new Command('apply')
      .description(
        'sign the tenants and HMAC keys of FILE (kind: FabricPolicy) and publish them through the local agent',
      )
      .argument('<file>', 'fabric policy')
      .requiredOption('--operator-key <file>', 'the operator private key (segmesh keygen)')
      .option('--socket <path>', 'agent API socket', DEFAULT_SOCKET)
      .action(async (file: string, o: { operatorKey: string; socket: string }) => {
        const parsed = parseConfig(await readFile(file, 'utf8'), file, ['FabricPolicy']);
        if (parsed.kind !== 'FabricPolicy') throw new Error('unreachable');
        let keyBytes: Uint8Array;
        try {
          keyBytes = await readFile(o.operatorKey);
        } catch (e) {
          throw new OperatorKeyError(
            `cannot read operator key file ${o.operatorKey} (${(e as Error).message}); pass the private key file that segmesh keygen --out wrote`,
          );
        }
        const key = operatorPrivateKeyFromBytes(keyBytes, o.operatorKey);
        const now = BigInt(Date.now());
        const records: GossipRecord[] = parsed.spec.tenants.map((t, i) =>
          create(RecordSchema, {
            key: `tenant/${t.name}`,
            version: { wallMs: now, counter: i },
            origin: 'operator',
            body: {
              case: 'tenant',
              value: create(TenantRecordSchema, {
                name: t.name,
                prefixes: t.prefixes.map((p) => {
                  const prefix = parsePrefix(p);
                  return { address: ipv6ToBytes(prefix.address), length: prefix.length };
                }),
                routeTargets: t.routeTarget ? [t.routeTarget] : [],
                table: t.id,
              }),
            },
          }),
        );
        for (const [i, k] of parsed.spec.hmacKeys.entries()) {
          const secret = await readHmacSecret(file, parsed.spec, i);
          records.push(
            create(RecordSchema, {
              key: `hmac/${k.keyId}`,
              version: { wallMs: now, counter: parsed.spec.tenants.length + i },
              origin: 'operator',
              body: {
                case: 'hmacKey',
                value: create(HmacKeyRecordSchema, { keyId: String(k.keyId), secret }),
              },
            }),
          );
        }
        const signed = await Promise.all(records.map((r) => signRecord(r, key)));
        const client = new AgentClient(o.socket);
        try {
          const r = await client.call('publishRecords', {
            signedRecords: signed.map((s) => toBinary(SignedRecordSchema, s)),
          });
          for (const [i, rec] of records.entries()) process.stdout.write(`${rec.key}: ${r.results[i]}\n`);
          if (r.results.some((x) => x !== 'applied')) process.exitCode = 1;
        } finally {
          client.close();
        }
      }),
  );
  return cmd;
}

/** The kernel's seg6 HMAC takes secrets of 1..64 bytes (SEG6_HMAC_SECRET_LEN). */
const HMAC_SECRET_MAX = 64;

/**
 * Entry `i` of `hmacKeys`: its secret file (relative to the policy file), which must hold 1..64 bytes
 * and be readable by its owner only (a shared secret readable by others is no secret).
 */
async function readHmacSecret(file: string, spec: FabricPolicySpec, i: number): Promise<Uint8Array> {
  const entry = spec.hmacKeys[i]!;
  const path = resolve(dirname(file), entry.secretFile);
  const problem = (message: string, fix: string) =>
    new ConfigError(file, [{ key: `hmacKeys[${i}].secretFile`, message, fix, value: entry.secretFile }]);
  const create = `head -c 32 /dev/urandom > ${path} && chmod 600 ${path}`;
  let mode: number;
  let secret: Uint8Array;
  try {
    mode = (await stat(path)).mode;
    secret = await readFile(path);
  } catch (e) {
    throw problem(`cannot read ${path} (${(e as Error).message})`, `create it: ${create}`);
  }
  if (secret.length < 1 || secret.length > HMAC_SECRET_MAX)
    throw problem(
      `${path} holds ${secret.length} bytes; an SRH HMAC secret is 1..${HMAC_SECRET_MAX} bytes`,
      `write a new secret: ${create}`,
    );
  if ((mode & 0o077) !== 0)
    throw problem(
      `${path} is readable or writable by others (mode ${(mode & 0o777).toString(8)})`,
      `chmod 600 ${path} (and replace the secret if others may have read it)`,
    );
  return secret;
}
