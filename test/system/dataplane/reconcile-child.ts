/**
 * A separate agent process for the restart test: reconciles the desired state read from a JSON file
 * (bigints encoded as {"$bigint": "..."}), in the namespace it was started in, and prints the result.
 */
import { readFileSync } from 'node:fs';
import { LinuxDataplane } from '../../../src/dataplane/dataplane.ts';
import type { DesiredState } from '../../../src/dataplane/reconcile.ts';

const desired = JSON.parse(readFileSync(process.argv[2]!, 'utf8'), (_k, v) =>
  v && typeof v === 'object' && '$bigint' in v ? BigInt((v as { $bigint: string }).$bigint) : v,
) as DesiredState;
const dp = new LinuxDataplane();
const result = await dp.reconcile(desired);
await dp.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
