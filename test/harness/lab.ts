/**
 * A lab: the namespaces, switches, daemons and captures of one test file, torn down together
 * (daemons first, then namespaces, which ends anything still running inside them).
 */
import { Capture, type CaptureOptions } from './capture.ts';
import { type Daemon, type DaemonOptions, spawnDaemon } from './daemon.ts';
import { createVeth, Netns, UnderlaySwitch, type VethOptions } from './netns.ts';
import { objectName } from './run.ts';

export interface LabDaemonOptions extends Omit<DaemonOptions, 'netns'> {
  readonly netns?: Netns | string;
}

export class Lab {
  readonly #namespaces: Netns[] = [];
  readonly #daemons: Daemon[] = [];
  readonly #captures: Capture[] = [];
  readonly #cleanups: Array<() => Promise<void> | void> = [];

  /** The run-prefixed name of `suffix` (at most 15 bytes, fit for a link in the root namespace). */
  name(suffix: string): string {
    return objectName(suffix);
  }

  async netns(suffix: string): Promise<Netns> {
    const ns = await Netns.create(objectName(suffix));
    this.#namespaces.push(ns);
    return ns;
  }

  async underlaySwitch(suffix = 'sw'): Promise<UnderlaySwitch> {
    return UnderlaySwitch.create(await this.netns(suffix));
  }

  veth(a: Netns, aName: string, b: Netns, bName: string, opts?: VethOptions): Promise<void> {
    return createVeth(a, aName, b, bName, opts);
  }

  async daemon(opts: LabDaemonOptions): Promise<Daemon> {
    const { netns: where, ...rest } = opts;
    const netns = typeof where === 'string' ? where : where?.name;
    const d = await spawnDaemon({ ...rest, ...(netns ? { netns } : {}) });
    this.#daemons.push(d);
    return d;
  }

  async capture(opts: Omit<CaptureOptions, 'netns'> & { netns: Netns | string }): Promise<Capture> {
    const netns = typeof opts.netns === 'string' ? opts.netns : opts.netns.name;
    const c = await Capture.start({ ...opts, netns });
    this.#captures.push(c);
    return c;
  }

  /** Runs `fn` at teardown, before daemons are stopped (latest registered first). */
  onTeardown(fn: () => Promise<void> | void): void {
    this.#cleanups.push(fn);
  }

  async teardown(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (fn: () => Promise<void> | void) => {
      try {
        await fn();
      } catch (e) {
        errors.push(e);
      }
    };
    for (const fn of this.#cleanups.splice(0).reverse()) await attempt(fn);
    for (const c of this.#captures.splice(0)) await attempt(() => c.stop().then(() => undefined));
    for (const d of this.#daemons.splice(0).reverse()) await attempt(() => d.stop());
    for (const ns of this.#namespaces.splice(0).reverse()) await attempt(() => ns.destroy());
    if (errors.length > 0) {
      throw new AggregateError(errors, `lab teardown: ${errors.length} step(s) failed`);
    }
  }
}

export function createLab(): Lab {
  return new Lab();
}
