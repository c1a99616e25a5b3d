/**
 * Host liveness (pure state machine). A host is `alive` while heard from; silent past `suspectAfterMs`
 * it becomes `suspect` (its routes stay, stale); silent past `deadAfterMs` it becomes `dead`, unless a
 * data-plane probe of its End SID succeeded recently (a gossip-only partition must not take down
 * forwarding that still works). A failed probe of a suspect host kills it at once. Hearing from a host
 * again makes it `alive`.
 */

export type HostState = 'alive' | 'suspect' | 'dead';

export interface LivenessOptions {
  readonly suspectAfterMs: number;
  readonly deadAfterMs: number;
}

export interface Transition {
  readonly host: string;
  readonly from: HostState | undefined;
  readonly to: HostState;
  readonly reason: 'heard' | 'silent' | 'probe-failed' | 'probe-ok';
}

interface HostLiveness {
  state: HostState;
  lastHeard: number;
  lastProbeOk: number | undefined;
}

export class LivenessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LivenessError';
  }
}

export class Liveness {
  readonly options: LivenessOptions;
  readonly #hosts = new Map<string, HostLiveness>();

  constructor(options: LivenessOptions) {
    if (!(options.suspectAfterMs > 0 && options.deadAfterMs >= options.suspectAfterMs)) {
      throw new LivenessError(
        `invalid liveness intervals suspect=${options.suspectAfterMs} dead=${options.deadAfterMs}: ` +
          'need 0 < suspectAfterMs <= deadAfterMs',
      );
    }
    this.options = options;
  }

  state(host: string): HostState | undefined {
    return this.#hosts.get(host)?.state;
  }

  hosts(): Map<string, HostState> {
    return new Map([...this.#hosts].map(([h, l]) => [h, l.state]));
  }

  /** Something signed by `host` (heartbeat or record) arrived at `now`. */
  heard(host: string, now: number): Transition | undefined {
    const cur = this.#hosts.get(host);
    if (cur === undefined) {
      this.#hosts.set(host, { state: 'alive', lastHeard: now, lastProbeOk: undefined });
      return { host, from: undefined, to: 'alive', reason: 'heard' };
    }
    cur.lastHeard = Math.max(cur.lastHeard, now);
    if (cur.state === 'alive') return undefined;
    const from = cur.state;
    cur.state = 'alive';
    cur.lastProbeOk = undefined;
    return { host, from, to: 'alive', reason: 'heard' };
  }

  /**
   * A host known only second-hand (its record came through anti-entropy): suspect from now on, dead
   * after the remaining `deadAfterMs - suspectAfterMs` unless heard.
   */
  learned(host: string, now: number): Transition | undefined {
    if (this.#hosts.has(host)) return undefined;
    this.#hosts.set(host, {
      state: 'suspect',
      lastHeard: now - this.options.suspectAfterMs,
      lastProbeOk: undefined,
    });
    return { host, from: undefined, to: 'suspect', reason: 'silent' };
  }

  /** Advances time: alive -> suspect -> dead by silence. */
  tick(now: number): Transition[] {
    const out: Transition[] = [];
    const { suspectAfterMs, deadAfterMs } = this.options;
    for (const [host, l] of this.#hosts) {
      const silent = now - l.lastHeard;
      if (l.state === 'alive' && silent >= suspectAfterMs) {
        l.state = 'suspect';
        out.push({ host, from: 'alive', to: 'suspect', reason: 'silent' });
      }
      if (l.state === 'suspect' && silent >= deadAfterMs) {
        const probeVouches = l.lastProbeOk !== undefined && now - l.lastProbeOk < deadAfterMs;
        if (!probeVouches) {
          l.state = 'dead';
          out.push({ host, from: 'suspect', to: 'dead', reason: 'silent' });
        }
      }
    }
    return out;
  }

  /** The data-plane probe of `host`'s End SID answered (`ok`) or not. */
  probeResult(host: string, ok: boolean, now: number): Transition | undefined {
    const l = this.#hosts.get(host);
    if (l === undefined || l.state === 'alive') return undefined;
    if (ok) {
      l.lastProbeOk = now;
      return undefined;
    }
    if (l.state === 'suspect') {
      l.state = 'dead';
      return { host, from: 'suspect', to: 'dead', reason: 'probe-failed' };
    }
    return undefined;
  }

  /** Hosts whose liveness the data-plane probe should check now. */
  suspects(): string[] {
    return [...this.#hosts].filter(([, l]) => l.state === 'suspect').map(([h]) => h);
  }

  forget(host: string): void {
    this.#hosts.delete(host);
  }
}
