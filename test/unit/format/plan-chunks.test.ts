/**
 * `segmesh plan`'s streamed output is byte for byte what the whole output built in one piece was: the
 * text chunks against the host texts joined, the JSON chunks against `JSON.stringify` of every host's
 * plan (2-space indentation). And the byte buffer under both: chunks handed out are never written again.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fabricInputFromSpec, parseConfig } from '../../../src/config/load.ts';
import {
  ByteChunks,
  formatHostPlan,
  planJsonChunks,
  planTextChunks,
  planToJson,
} from '../../../src/format/plan.ts';
import { buildFabricView, type FabricView } from '../../../src/srv6/fabric.ts';
import { computeHostPlan } from '../../../src/srv6/pathcompute.ts';
import { largeFabricYaml } from '../../harness/fabric-yaml.ts';

function viewOf(text: string, file: string): FabricView {
  const parsed = parseConfig(text, file, ['Fabric', 'Topology']);
  if (parsed.kind !== 'Fabric' && parsed.kind !== 'Topology') throw new Error('unreachable');
  return buildFabricView(fabricInputFromSpec(parsed.spec));
}

const joined = (chunks: Iterable<Uint8Array>) => Buffer.concat([...chunks]).toString('utf8');

const fabrics: Array<[string, () => FabricView]> = [
  [
    'examples/fabric.yaml',
    () => viewOf(readFileSync('examples/fabric.yaml', 'utf8'), 'examples/fabric.yaml'),
  ],
  [
    'a generated fabric (40 hosts, 400 workloads)',
    () => viewOf(largeFabricYaml({ hosts: 40, workloads: 400 }), 'g'),
  ],
];

describe('plan chunks', () => {
  for (const [name, make] of fabrics) {
    it(`text and JSON chunks of ${name} equal the output built in one piece`, () => {
      const view = make();
      const hosts = [...view.hosts.keys()];
      expect(hosts.length).toBeGreaterThan(1);
      const text = joined(planTextChunks(view, hosts, 'SUMMARY'));
      const whole = `SUMMARY\n\n${hosts.map((h) => formatHostPlan(view, computeHostPlan(view, h))).join('\n\n')}\n`;
      expect(text).toBe(whole);
      // Every host's table of routes is there (not two empty outputs agreeing).
      for (const h of hosts) expect(text).toContain(`\nhost ${h}  underlay `);
      expect(text).toMatch(/ {6}DESTINATION {2,}ACTION {2,}WHY\n/);

      const json = joined(planJsonChunks(view, hosts));
      const plans = hosts.map((h) => planToJson(view, computeHostPlan(view, h)));
      expect(json).toBe(`${JSON.stringify(plans, null, 2)}\n`);
      expect(joined(planJsonChunks(view, []))).toBe('[]\n');
    });
  }

  it('ByteChunks: UTF-8 across buffer ends, and bytes handed out stay as they were', () => {
    const w = new ByteChunks(8);
    const parts = ['host', ' ', 'ünïcødé-名前', '', 'x'.repeat(30), '\n', 'end'];
    const taken: Uint8Array[] = [];
    const copies: Buffer[] = [];
    for (const p of parts) {
      w.text(p);
      w.spaces(3);
      for (const c of w.take()) {
        taken.push(c);
        copies.push(Buffer.from(c));
      }
    }
    const expected = parts.map((p) => `${p}   `).join('');
    expect(Buffer.concat(taken).toString('utf8')).toBe(expected);
    // Later writes did not change earlier chunks.
    taken.forEach((c, i) => {
      expect(Buffer.from(c).equals(copies[i]!)).toBe(true);
    });
    expect(w.take()).toEqual([]);
  });

  it('ByteChunks.recycle: buffers reused once every chunk was consumed, never while bytes are pending', () => {
    const w = new ByteChunks(64);
    const line = (i: number) => `line ${i} ${'x'.repeat(i % 7)}\n`;
    const out: string[] = [];
    const seen = new Set<ArrayBufferLike>();
    for (let i = 0; i < 100; i += 5) {
      // Five lines (up to 70 bytes, each asking room for 3 bytes a character): two buffers a round.
      for (let k = i; k < i + 5; k++) w.text(line(k));
      for (const c of w.take()) {
        out.push(Buffer.from(c).toString('utf8'));
        seen.add(c.buffer);
      }
      w.recycle();
    }
    expect(out.join('')).toBe(Array.from({ length: 100 }, (_, i) => line(i)).join(''));
    // Without reuse, 20 rounds would have filled about 20 buffers.
    expect(seen.size).toBeGreaterThan(1);
    expect(seen.size).toBeLessThanOrEqual(3);
    w.text('pending');
    expect(() => w.recycle()).toThrow(/not taken/);
  });
});
