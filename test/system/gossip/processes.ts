/** Parent side of node-process.ts: fork, call, collect reports, stop. */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Reply, Report, Request, StartArgs } from './node-process.ts';

const NODE = fileURLToPath(new URL('../../../node_modules/.bin/node', import.meta.url));
const SCRIPT = fileURLToPath(new URL('./node-process.ts', import.meta.url));

export class NodeProcess {
  readonly child: ChildProcess;
  readonly reports: Report[] = [];
  peerId = '';
  addrs: string[] = [];
  #next = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  onReport: ((r: Report) => void) | undefined;

  constructor(execArgv: string[] = []) {
    this.child = fork(SCRIPT, [], {
      execPath: NODE,
      execArgv: ['--no-warnings', ...execArgv],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: Reply | Report) => {
      if ('report' in m) {
        if (this.onReport) this.onReport(m);
        else this.reports.push(m);
        return;
      }
      const p = this.#pending.get(m.id);
      if (p === undefined) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(`child ${this.child.pid}: ${m.error}`));
    });
    this.child.on('exit', () => {
      for (const p of this.#pending.values()) p.reject(new Error(`child ${this.child.pid} exited`));
      this.#pending.clear();
    });
  }

  call<T = unknown>(op: string, args?: unknown): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, op, args } satisfies Request);
    });
  }

  async start(args: StartArgs): Promise<void> {
    const r = await this.call<{ peerId: string; addrs: string[] }>('start', args);
    this.peerId = r.peerId;
    this.addrs = r.addrs;
  }

  /** Stops the node and waits for the process to exit; kills it (by its pid) if it does not. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    await Promise.race([this.call('stop').catch(() => {}), new Promise((r) => setTimeout(r, 3_000))]);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  }
}
