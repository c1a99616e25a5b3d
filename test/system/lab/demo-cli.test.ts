/**
 * `segmesh lab demo` as a user runs it, with a deliberately broken policy (blue's route target is not
 * the edge's): it prints the matrix, stays up until Ctrl-C, then removes the lab and exits 1; the
 * cells that differ are exactly those between the external client and blue.
 */
import { spawn } from 'node:child_process';
import { afterAll, expect, it } from 'vitest';
import { configureDockerEnv } from '../../../src/lab/engine.ts';
import { labDown, labStatus } from '../../../src/lab/lab.ts';
import { runPrefix, sweep, systemSuite, waitFor } from '../../harness/index.ts';
import { labImage, progress, runSlot } from './docker.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;

interface Child {
  readonly done: Promise<{ code: number; stdout: string; stderr: string }>;
  readonly pid: number;
  stdout(): string;
  /** Set once the process has exited: with its exit code and the tail of its stderr. */
  exited(): { code: number; stderr: string } | undefined;
}

function start(args: readonly string[]): Child {
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
  let exit: { code: number; stderr: string } | undefined;
  const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      exit = { code: code ?? (signal ? 128 : -1), stderr: stderr.slice(-2000) };
      resolve({ code: exit.code, stdout, stderr });
    });
  });
  return { done, pid: child.pid!, stdout: () => stdout, exited: () => exit };
}

const run = (args: readonly string[]) => start(args).done;

systemSuite('lab: segmesh lab demo with a broken policy', { tools: ['dockerd', 'docker'] }, () => {
  const name = `${runPrefix()}-bad`;
  configureDockerEnv();

  afterAll(async () => {
    await labDown(name, progress);
  });

  // Its FRR edge runs in a VM where this kernel lacks seg6 routes (runtime: auto), so it runs on any kernel.
  it(
    'stays up until Ctrl-C, then tears down and exits 1 naming the cells that differ',
    async () => {
      await sweep();
      await labImage();
      const demo = start([
        'lab',
        'demo',
        'topologies/edge.yaml',
        '--json',
        '--name',
        name,
        '--relocate',
        String(runSlot()),
        '--policy',
        'test/fixtures/policies/edge-wrong-route-target.yaml',
      ]);
      // The matrix (one JSON line), then the demo waits for Ctrl-C with the lab up.
      // A demo that exits before its matrix (the lab did not come up) fails the test at once, with why.
      await waitFor(async () => demo.stdout().trim().startsWith('{') && demo.stdout().endsWith('\n'), {
        timeoutMs: 10 * 60_000,
        intervalMs: 500,
        what: 'the demo printed its matrix',
        stopIf: () => {
          const gone = demo.exited();
          return gone && `segmesh lab demo exited ${gone.code} before its matrix:\n${gone.stderr}`;
        },
      });
      await new Promise((r) => setTimeout(r, 3_000));
      expect((await labStatus(name)).nodes).toHaveLength(5);
      process.kill(demo.pid, 'SIGINT');
      const r = await demo.done;
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
