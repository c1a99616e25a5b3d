/**
 * `segmesh lab demo` as a user runs it, with a deliberately broken policy (blue's route target is not
 * the edge's): the process exits 1, the cells that differ are exactly those between the external
 * client and blue, and the lab is gone afterwards.
 */
import { spawn } from 'node:child_process';
import { afterAll, expect, it } from 'vitest';
import { configureDockerEnv } from '../../../src/lab/engine.ts';
import { labDown, labStatus } from '../../../src/lab/lab.ts';
import { runPrefix, sweep, systemSuite } from '../../harness/index.ts';
import { labImage, progress, runSlot } from './docker.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;

function run(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(`${ROOT}bin/segmesh`, args, { cwd: ROOT, env: { ...process.env, CI: 'true' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      process.stderr.write(b);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

systemSuite('lab: segmesh lab demo with a broken policy', { tools: ['dockerd', 'docker'] }, () => {
  const name = `${runPrefix()}-bad`;
  configureDockerEnv();

  afterAll(async () => {
    await labDown(name, progress);
  });

  it(
    'exits 1 naming the cells that differ, and removes the lab',
    async () => {
      await sweep();
      await labImage();
      const r = await run([
        'lab',
        'demo',
        'topologies/edge.yaml',
        '--once',
        '--json',
        '--name',
        name,
        '--relocate',
        String(runSlot()),
        '--policy',
        'test/fixtures/policies/edge-wrong-route-target.yaml',
      ]);
      expect(r.code, r.stderr.slice(-2000)).toBe(1);
      const report = JSON.parse(r.stdout.trim()) as {
        ok: boolean;
        matrix: { from: string; to: string; expected: boolean; seen: boolean }[];
      };
      expect(report.ok).toBe(false);
      const differ = report.matrix
        .filter((c) => c.seen !== c.expected)
        .map((c) => `${c.from} -> ${c.to}`)
        .sort();
      const blue = ['blue/client-1', 'blue/web-1', 'blue/web-2'];
      expect(differ).toEqual([...blue.map((b) => `${b} -> ext1`), ...blue.map((b) => `ext1 -> ${b}`)].sort());
      // Everything else held: blue among itself, red among itself, and no tenant reached another.
      expect(report.matrix.filter((c) => c.seen === c.expected)).toHaveLength(24);
      expect((await labStatus(name)).nodes).toEqual([]);
    },
    30 * 60_000,
  );

  it('refuses a policy file that is not a FabricPolicy before starting anything', async () => {
    const other = `${runPrefix()}-bad2`;
    const r = await run([
      'lab',
      'demo',
      'topologies/edge.yaml',
      '--once',
      '--name',
      other,
      '--policy',
      'topologies/edge.yaml',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/FabricPolicy/);
    expect((await labStatus(other)).nodes).toEqual([]);
  });
});
