/**
 * Daemons started by tests: PID recorded for the sweeper, output in a log file, readiness awaited,
 * stopped by PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { commandLine, waitFor } from './exec.ts';
import { freshLogPath, processStartTime, recordProcess } from './run.ts';

export interface DaemonOptions {
  /** Log file and error messages use it. */
  readonly name: string;
  readonly command: string;
  readonly args?: readonly string[];
  /** Network namespace name to run in. */
  readonly netns?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Run as this user (setpriv; FRR daemons drop privileges themselves and do not need it). */
  readonly user?: string;
  /** Own process group: survives the test process being killed (e.g. gobgpd under an agent). */
  readonly detached?: boolean;
  readonly ready?: () => boolean | Promise<boolean>;
  readonly readyTimeoutMs?: number;
}

export class Daemon {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  readonly exited: Promise<number | null>;
  readonly #child: ChildProcess;
  readonly #startTime: string | undefined;
  #exitCode: number | null | undefined;

  constructor(name: string, child: ChildProcess, logFile: string) {
    if (child.pid === undefined) throw new Error(`daemon ${name} did not start`);
    this.name = name;
    this.pid = child.pid;
    this.logFile = logFile;
    this.#child = child;
    this.#startTime = processStartTime(child.pid);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.#exitCode = code ?? (signal ? -1 : null);
        resolve(this.#exitCode);
      });
    });
  }

  alive(): boolean {
    return this.#exitCode === undefined && processStartTime(this.pid) === this.#startTime;
  }

  /** Sends `signal` to the daemon's PID (never to a pattern). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive()) this.#child.kill(signal);
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 5_000): Promise<void> {
    if (!this.alive()) return;
    this.#child.kill('SIGTERM');
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs));
    if ((await Promise.race([this.exited, timer])) === 'timeout' && this.alive()) {
      this.#child.kill('SIGKILL');
      await this.exited;
    }
  }
}

function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${file})`;
  }
}

export async function spawnDaemon(opts: DaemonOptions): Promise<Daemon> {
  let argv = commandLine(opts.command, opts.args ?? [], opts.netns);
  if (opts.user) {
    // setpriv after `ip netns exec`, so the namespace is entered as root.
    const inner = ['setpriv', `--reuid=${opts.user}`, `--regid=${opts.user}`, '--init-groups', opts.command];
    argv = commandLine(inner[0]!, [...inner.slice(1), ...(opts.args ?? [])], opts.netns);
  }
  const logFile = freshLogPath(opts.name, '.log');
  const fd = openSync(logFile, 'w');
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', fd, fd],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    detached: opts.detached ?? false,
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (e) =>
      reject(new Error(`cannot start daemon ${opts.name} (${argv.join(' ')}): ${e.message}`)),
    );
  });
  const daemon = new Daemon(opts.name, child, logFile);
  recordProcess(daemon.pid, opts.name);
  if (opts.detached) child.unref();
  if (opts.ready) {
    const ready = opts.ready;
    try {
      await waitFor(ready, {
        timeoutMs: opts.readyTimeoutMs ?? 10_000,
        what: `${opts.name} to be ready (log: ${logFile})`,
        // A daemon that exited will never be ready: say so at once, with the end of its log.
        stopIf: () => !daemon.alive() && `${opts.name} exited early:\n${logTail(logFile)}`,
      });
    } catch (e) {
      await daemon.stop();
      throw e;
    }
  }
  return daemon;
}
