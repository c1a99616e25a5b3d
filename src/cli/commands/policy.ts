/**
 * `segmesh keygen` and `segmesh policy apply`: fabric-wide settings (tenants) are records signed by an
 * operator key that every agent trusts (agent config `operatorKeys`); any agent gossips them on.
 */
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { create, toBinary } from '@bufbuild/protobuf';
import { Command } from 'commander';
import { AgentClient, DEFAULT_SOCKET } from '../../agent/client.ts';
import { parseConfig } from '../../config/load.ts';
import {
  type Record as GossipRecord,
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
      .description('sign the tenants of FILE (kind: FabricPolicy) and publish them through the local agent')
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
