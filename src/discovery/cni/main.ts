/** Entry point of the `segmesh-cni` executable. */
import { readFileSync } from 'node:fs';
import { agentWorkloadApi, runPlugin } from './plugin.ts';

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

const out = await runPlugin(
  { env: process.env, stdin: process.env.CNI_COMMAND === 'VERSION' ? '' : readStdin() },
  agentWorkloadApi,
);
if (out.stdout) process.stdout.write(`${out.stdout}\n`);
process.exitCode = out.code;
