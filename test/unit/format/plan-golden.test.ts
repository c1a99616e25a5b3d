/**
 * `segmesh plan`'s output, byte for byte, against what the code printed before the formatter's
 * caches (cells encoded once per fabric, last action and reason per destination): the full text and
 * JSON of examples/fabric.yaml and the text of topologies/edge.yaml as files, and the SHA-256 of a
 * generated 40-host fabric's text (3.9 MB) and JSON (10.8 MB), whose hosts share most destinations,
 * so a cache that served one host's row to another wrongly would change them.
 * The goldens were written by `segmesh plan` at commit 9fa2e69; regenerate them only for an intended
 * change of the output.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type PlanOptions, writePlan } from '../../../src/cli/commands/plan.ts';
import { largeFabricYaml } from '../../harness/fabric-yaml.ts';

const golden = (name: string) => readFileSync(new URL(`plan-golden/${name}`, import.meta.url), 'utf8');

/**
 * What `segmesh plan FILE [opts]` writes to stdout, through the CLI's own code. `keepsNoChunk`: as
 * when stdout is a file or /dev/null (the plan's buffers are reused once a chunk is written; copied
 * here before that).
 */
async function plan(
  text: string,
  file: string,
  opts: PlanOptions = {},
  keepsNoChunk = false,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = {
    keepsNoChunk,
    write(chunk: Uint8Array): boolean {
      chunks.push(Buffer.from(chunk));
      return true;
    },
    once: () => undefined,
  };
  await writePlan(text, file, opts, sink);
  return Buffer.concat(chunks);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('segmesh plan golden output', () => {
  it('examples/fabric.yaml: text and JSON as before', async () => {
    const file = 'examples/fabric.yaml';
    const text = readFileSync(file, 'utf8');
    expect((await plan(text, file)).toString('utf8')).toBe(golden('fabric.txt'));
    expect((await plan(text, file, { json: true })).toString('utf8')).toBe(golden('fabric-json.txt'));
  });

  it('topologies/edge.yaml: text as before', async () => {
    const file = 'topologies/edge.yaml';
    expect((await plan(readFileSync(file, 'utf8'), file)).toString('utf8')).toBe(golden('edge.txt'));
  });

  it('a generated fabric (40 hosts, 400 workloads): text and JSON as before', async () => {
    // The file name is part of the output only where the fabric has no name; this one has one.
    const yaml = largeFabricYaml({ hosts: 40, workloads: 400 });
    const text = await plan(yaml, 'f40x400.yaml');
    // Positive control: the output is the full plan (every host), not an empty one that hashes alike.
    expect(text.length).toBe(3_932_177);
    expect(sha256(text)).toBe('232dedfbb13e737d5c123768a9fb58da0e2301e23116bc45507a4391aafd3c5d');
    const json = await plan(yaml, 'f40x400.yaml', { json: true });
    expect(json.length).toBe(10_854_697);
    expect(sha256(json)).toBe('4d189c5d0ae87a0a5e014180cc56340836c15603ecfafcdbcc1cf34d8d9c5da9');
  });

  it('the same bytes when the sink keeps no chunk (buffers reused, as for stdout on a file)', async () => {
    const yaml = largeFabricYaml({ hosts: 40, workloads: 400 });
    const text = await plan(yaml, 'f40x400.yaml', {}, true);
    expect(text.length).toBe(3_932_177);
    expect(sha256(text)).toBe('232dedfbb13e737d5c123768a9fb58da0e2301e23116bc45507a4391aafd3c5d');
    const json = await plan(yaml, 'f40x400.yaml', { json: true }, true);
    expect(sha256(json)).toBe('4d189c5d0ae87a0a5e014180cc56340836c15603ecfafcdbcc1cf34d8d9c5da9');
    const file = 'examples/fabric.yaml';
    expect((await plan(readFileSync(file, 'utf8'), file, {}, true)).toString('utf8')).toBe(
      golden('fabric.txt'),
    );
  });
});
