/**
 * The Docker engine and images of the lab: the project's own engine (scripts/dockerd.sh) by default,
 * testcontainers configured never to pull and without its Ryuk reaper, and the image build
 * (scripts/images.sh) with its progress passed through.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ContainerRuntimeClient } from 'testcontainers';
import { LabEngineError, LabImageError } from './errors.ts';

export const DEFAULT_DOCKER_HOST = 'unix:///run/segmesh-docker.sock';

/** The repository (or installed package) root: src/lab/ and dist/lab/ are both two levels down. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export type Progress = (message: string) => void;

/**
 * Points Docker clients (testcontainers, dockerode, the docker CLI) at the lab's engine and turns off
 * what would reach a registry: Ryuk (an image pulled from Docker Hub) and pulling in general.
 */
export function configureDockerEnv(env: NodeJS.ProcessEnv = process.env): string {
  env.DOCKER_HOST ??= DEFAULT_DOCKER_HOST;
  env.TESTCONTAINERS_RYUK_DISABLED = 'true';
  return env.DOCKER_HOST;
}

/** testcontainers' pull policy that never pulls (images are built locally, there is no registry). */
export const NEVER_PULL = { shouldPull: () => false } as const;

function script(name: string): string {
  const path = `${PROJECT_ROOT}scripts/${name}`;
  if (!existsSync(path))
    throw new LabEngineError(`${path} is missing: run segmesh lab from a checkout of the project`);
  return path;
}

/** Runs a project script; each stderr line goes to `progress`; resolves with stdout. */
function runScript(
  name: string,
  args: readonly string[],
  progress: Progress,
  timeoutMs: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script(name), ...args], {
      cwd: PROJECT_ROOT,
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGTERM',
    });
    let out = '';
    let tail: string[] = [];
    let partial = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString('utf8');
    });
    child.stderr.on('data', (b: Buffer) => {
      const lines = (partial + b.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        if (!l.trim()) continue;
        progress(l);
        tail = [...tail.slice(-19), l];
      }
    });
    child.on('error', (e) => reject(e));
    child.on('close', (code, signal) => {
      if (partial.trim()) progress(partial);
      if (code === 0) resolve(out);
      else reject(new Error(`scripts/${name} failed (${code ?? signal}):\n${tail.join('\n')}`));
    });
  });
}

let clientPromise: Promise<ContainerRuntimeClient> | undefined;

/** testcontainers' runtime client for the lab engine; throws LabEngineError with the remedy. */
export async function runtimeClient(): Promise<ContainerRuntimeClient> {
  const host = configureDockerEnv();
  clientPromise ??= (async () => {
    const { getContainerRuntimeClient } = await import('testcontainers');
    return getContainerRuntimeClient();
  })();
  try {
    return await clientPromise;
  } catch (e) {
    clientPromise = undefined;
    throw new LabEngineError(
      `no Docker engine answers on ${host} (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); ` +
        `start the project's engine with: bash ${PROJECT_ROOT}scripts/dockerd.sh (as root), or set DOCKER_HOST`,
    );
  }
}

/**
 * Makes sure an engine answers: the one of DOCKER_HOST when set by the caller, else the project's own,
 * started by scripts/dockerd.sh when none answers.
 */
export async function ensureEngine(progress: Progress): Promise<string> {
  const userHost = process.env.DOCKER_HOST;
  if (userHost && userHost !== DEFAULT_DOCKER_HOST) {
    configureDockerEnv();
    return userHost;
  }
  try {
    const out = await runScript('dockerd.sh', [], progress, 120_000);
    process.env.DOCKER_HOST = out.trim().split('\n').pop() || DEFAULT_DOCKER_HOST;
  } catch (e) {
    throw new LabEngineError(e instanceof Error ? e.message : String(e));
  }
  return configureDockerEnv();
}

/** Builds (or reuses) the lab images; returns the project image's tag. */
export async function ensureImages(progress: Progress): Promise<string> {
  configureDockerEnv();
  let out: string;
  try {
    out = await runScript('images.sh', [], progress, 30 * 60_000);
  } catch (e) {
    throw new LabImageError(e instanceof Error ? e.message : String(e));
  }
  const tag = out.trim().split('\n').pop() ?? '';
  if (!/^segmesh-lab:[0-9a-f]{12}$/.test(tag))
    throw new LabImageError(`scripts/images.sh printed no image tag (got "${tag}")`);
  return tag;
}
