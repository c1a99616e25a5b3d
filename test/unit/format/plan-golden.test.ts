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
    expect(text.length).toBe(3_923_207);
    expect(sha256(text)).toBe('f806ea973e41ae59c2d7b6684ddfea48e6101e59dcc5a41d67fa6c604aa62505');
    const json = await plan(yaml, 'f40x400.yaml', { json: true });
    expect(json.length).toBe(10_838_887);
    expect(sha256(json)).toBe('59006fc3cb6031c4e492b4e74b6e5157dc39e4db9c91d28f19cc4e8c4d21961d');
  });

  it('the same bytes when the sink keeps no chunk (buffers reused, as for stdout on a file)', async () => {
    const yaml = largeFabricYaml({ hosts: 40, workloads: 400 });
    const text = await plan(yaml, 'f40x400.yaml', {}, true);
    expect(text.length).toBe(3_923_207);
    expect(sha256(text)).toBe('f806ea973e41ae59c2d7b6684ddfea48e6101e59dcc5a41d67fa6c604aa62505');
    const json = await plan(yaml, 'f40x400.yaml', { json: true }, true);
    expect(sha256(json)).toBe('59006fc3cb6031c4e492b4e74b6e5157dc39e4db9c91d28f19cc4e8c4d21961d');
    const file = 'examples/fabric.yaml';
    expect((await plan(readFileSync(file, 'utf8'), file, {}, true)).toString('utf8')).toBe(
      golden('fabric.txt'),
    );
  });
});
