/** `ip -batch` as the anchor of the route-writing benchmarks (dataplane, ebpf). */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { type Netns, runLogDir } from '../test/harness/index.ts';

/** Runs `ip -6 -force -batch` until no line fails; returns ms and the number of re-runs. */
export function runIpBatch(
  ns: Netns,
  lines: string[],
  tag: string,
): { ms: number; reruns: number; retriedLines: number } {
  const t0 = performance.now();
  let pending = lines;
  let reruns = -1;
  let retriedLines = 0;
  while (pending.length > 0) {
    reruns++;
    const file = `${runLogDir()}/bench-${tag}-${reruns}.batch`;
    writeFileSync(file, `${pending.join('\n')}\n`);
    const r = spawnSync('ip', ['-n', ns.name, '-6', '-force', '-batch', file], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    const failed = [...(r.stderr ?? '').matchAll(/Command failed .*:(\d+)/g)].map((m) => Number(m[1]) - 1);
    if (r.status !== 0 && failed.length === 0) throw new Error(`ip -batch failed: ${r.stderr}`);
    pending = failed.map((i) => pending[i]!);
    retriedLines += pending.length;
    if (reruns > 1000) throw new Error('ip -batch keeps failing');
  }
  return { ms: performance.now() - t0, reruns, retriedLines };
}
