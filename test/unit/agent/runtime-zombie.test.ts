/**
 * A killed agent left as a zombie (its parent reaps no children, as a container's `sleep infinity`
 * PID 1) holds no lock: its start time reads as gone, while a live process's does not.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { processStartTime } from '../../../src/agent/runtime.ts';

it('a zombie has no start time; a live process has one', async () => {
  // The background sleep exits after the shell became `sleep 5` (exec), which never reaps it.
  const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 5'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    const pid = Number(
      await new Promise<string>((r) => parent.stdout.once('data', (b: Buffer) => r(b.toString()))),
    );
    const state = () => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    for (let i = 0; i < 100 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 20));
    expect(state()).toBe('Z');
    expect(processStartTime(pid)).toBeUndefined();
    // Control: the parent, alive, has one.
    expect(processStartTime(parent.pid!)).toMatch(/^\d+$/);
  } finally {
    parent.kill('SIGKILL');
  }
});
