/**
 * `segmesh plan` at 5,000 hosts and 5,000 workloads (issue 12: it used to abort with a V8
 * out-of-memory after 37 s). The CLI's own plan code writes to a sink that keeps nothing but counts:
 * every host's plan must come out, in order, while the heap stays bounded (the output is gigabytes).
 * Slow by nature — every host routes to every other host's locator, so the text grows with hosts
 * squared — hence its own timeout.
 */
import { describe, expect, it } from 'vitest';
import { writePlan } from '../../../src/cli/commands/plan.ts';
import { largeFabricYaml } from '../../harness/fabric-yaml.ts';

const HOSTS = 5000;
const WORKLOADS = 5000;

describe('segmesh plan at scale', () => {
  it(
    `streams the plan of ${HOSTS} hosts and ${WORKLOADS} workloads host by host, with a bounded heap`,
    async () => {
      const yaml = largeFabricYaml({ hosts: HOSTS, workloads: WORKLOADS });
      const seen: string[] = [];
      let bytes = 0;
      let maxHeap = 0;
      let chunks = 0;
      const sink = {
        write(chunk: Uint8Array): boolean {
          bytes += chunk.length;
          // A host's first chunk starts with its header (after the blank line that separates hosts).
          const head = Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.length, 256)).toString();
          const m = /^(?:\n\n)?host (\S+) {2}underlay /.exec(head);
          if (m) seen.push(m[1]!);
          if (++chunks % 250 === 0) maxHeap = Math.max(maxHeap, process.memoryUsage().heapUsed);
          return true;
        },
        once: () => undefined,
      };
      const t = performance.now();
      const written = await writePlan(yaml, 'scale.yaml', {}, sink);
      const ms = performance.now() - t;
      expect(written).toBe(HOSTS);
      expect(seen.length).toBe(HOSTS);
      // Every host once, in the order of the view (host names sorted).
      expect(new Set(seen).size).toBe(HOSTS);
      expect(seen).toEqual([...seen].sort());
      // Each host routes to the 4,999 others' locators at least in its main table.
      expect(bytes).toBeGreaterThan(HOSTS * (HOSTS - 1) * 40);
      // The whole output never lives in memory: far less heap than output.
      expect(maxHeap).toBeLessThan(512 * 2 ** 20);
      expect(maxHeap).toBeLessThan(bytes / 8);
      process.stdout.write(
        `plan ${HOSTS}x${WORKLOADS}: ${(bytes / 2 ** 30).toFixed(2)} GiB of text in ${(ms / 1000).toFixed(1)} s, ` +
          `max heap ${(maxHeap / 2 ** 20).toFixed(0)} MiB\n`,
      );
    },
    15 * 60_000,
  );
});
