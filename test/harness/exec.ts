/**
 * Running commands for tests: a promise per command, stdout/stderr captured, a clear error naming
 * the command line when it fails.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

export interface ShOptions {
  /** Run inside this network namespace (`ip netns exec NAME ...`). */
  readonly netns?: string;
  /** Written to stdin, then stdin is closed. */
  readonly input?: string;
  /** Do not throw on a non-zero exit. */
  readonly allowFail?: boolean;
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export interface ShResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class CommandError extends Error {
  override readonly name = 'CommandError';
  readonly result: ShResult;
  readonly commandLine: string;
  constructor(commandLine: string, result: ShResult) {
    super(
      `command failed (exit ${result.code ?? result.signal}): ${commandLine}\n${result.stderr.trim() || result.stdout.trim()}`,
    );
    this.commandLine = commandLine;
    this.result = result;
  }
}

export function commandLine(command: string, args: readonly string[], netns?: string): string[] {
  return netns ? ['ip', 'netns', 'exec', netns, command, ...args] : [command, ...args];
}

export function sh(command: string, args: readonly string[] = [], opts: ShOptions = {}): Promise<ShResult> {
  const argv = commandLine(command, args, opts.netns);
  const printable = argv.map((a) => (/[\s"'$]/.test(a) ? JSON.stringify(a) : a)).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      timeout: opts.timeoutMs ?? 60_000,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new Error(`cannot run ${printable}: ${e.message}`)));
    child.on('close', (code, signal) => {
      const result: ShResult = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code,
        signal,
      };
      if (code !== 0 && !opts.allowFail) reject(new CommandError(printable, result));
      else resolve(result);
    });
    // A command that exits without reading its stdin is not an error of ours.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
  /** What is awaited, for the error message. */
  readonly what: string;
  /** Checked after each try: a reason stops the wait at once (the process that should answer exited). */
  readonly stopIf?: () => string | false | undefined;
}

/** Polls `predicate` until it returns true; throws naming `what` after the timeout. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, opts: WaitOptions): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let lastError: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    const stop = opts.stopIf?.();
    if (stop) throw new Error(`gave up waiting for ${opts.what}: ${stop}`);
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${opts.timeoutMs ?? 10_000} ms waiting for ${opts.what}${why}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

/** Finds an executable on PATH or in the sbin and FRR folders that root's PATH may lack. */
export function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/lib/frr'];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = `${dir}/${name}`;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {}
  }
  return undefined;
}
