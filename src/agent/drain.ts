/**
 * Leaving the fabric (`segmesh drain`), make before break like a move:
 * 1. takes no new workloads and stops repairing (it takes its own state down on purpose);
 * 2. re-advertises its BGP paths with GRACEFUL_SHUTDOWN (RFC 8326, 65535:0): the edge prefers any
 *    other path to the same prefixes (FRR lowers the local preference to 0) while this host still
 *    delivers;
 * 3. publishes its host record with `leaving`;
 * 4. waits until traffic to its SIDs has stopped (their counters stand still for 2 s) or
 *    `waitMs` (default 10 s) ran out;
 * 5. withdraws its workloads and host record from gossip and every path from BGP (gobgpd stops);
 * 6. after a short settle, removes everything the backend owns and stops gossip. The process stays up,
 *    drained, until it is stopped; starting it again rejoins.
 */
import type { Logger } from 'pino';
import type { DataplaneBackend } from '../dataplane/backend.ts';
import { sidKey } from '../dataplane/intent.ts';
import type { FabricView } from '../srv6/fabric.ts';
import { AgentError } from './errors.ts';
import type { BgpPort, GossipPort } from './ports.ts';
import type { Reconciler } from './reconciler.ts';
import type { LocalWorkload } from './workloads.ts';

/** The longest wait for traffic to move away (`segmesh drain --wait`), and how still is still. */
export const DRAIN_WAIT_MS = 10_000;
const DRAIN_MIN_MS = 1_000;
const DRAIN_QUIET_MS = 2_000;
const DRAIN_SETTLE_MS = 1_000;

export interface DrainReport {
  readonly withdrawn: number;
  readonly removed: number;
  readonly gracefulShutdownPaths: number;
  readonly waitedMs: number;
  readonly trafficStopped: boolean;
}

export interface DrainDeps {
  readonly log: Logger;
  readonly hostName: string;
  readonly backend: Pick<DataplaneBackend, 'readCounters' | 'flush'>;
  readonly gossip: Pick<GossipPort, 'removeWorkload' | 'withdrawHost'>;
  readonly bgp?: Pick<BgpPort, 'gracefulShutdown' | 'leave'>;
  readonly reconciler: Pick<Reconciler, 'pause' | 'settled' | 'forget' | 'view' | 'applied' | 'started'>;
  /** Re-announces the host record (now `leaving`). */
  readonly advertise: (view: FabricView) => Promise<void>;
  readonly localWorkloads: () => readonly LocalWorkload[];
  /** Stops gossip once everything is withdrawn. */
  readonly stopGossip: () => Promise<void>;
  /** Aborted when the agent stops: a drain in progress gives up at its next step. */
  readonly stopping: AbortSignal;
  /** Tests shorten the waits. */
  readonly timing?: { readonly minMs?: number; readonly settleMs?: number; readonly pollMs?: number };
}

export class Drainer {
  readonly #d: DrainDeps;
  #draining = false;
  #drained = false;

  constructor(deps: DrainDeps) {
    this.#d = deps;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Withdrawn from the fabric (the host is no longer ready). */
  get drained(): boolean {
    return this.#drained;
  }

  async drain(waitMs: number, quietMs = 0): Promise<DrainReport> {
    const d = this.#d;
    if (this.#draining) throw new AgentError('precondition', 'this host is already draining or drained');
    if (!d.reconciler.started) throw new AgentError('unavailable', 'the agent is not running');
    this.#draining = true;
    await d.reconciler.pause();
    const wait = waitMs > 0 ? waitMs : DRAIN_WAIT_MS;
    const gracefulShutdownPaths = (await d.bgp?.gracefulShutdown()) ?? 0;
    const view = d.reconciler.view;
    if (view) await d.advertise(view); // the host record now says leaving
    d.log.info({ gracefulShutdownPaths, waitMs: wait }, 'draining: waiting for traffic to move away');
    const { waitedMs, trafficStopped } = await this.#awaitTrafficGone(
      view,
      wait,
      quietMs > 0 ? quietMs : DRAIN_QUIET_MS,
    );
    this.#checkStopping();
    const local = d.localWorkloads();
    for (const w of local) await d.gossip.removeWorkload(w.id);
    await d.gossip.withdrawHost();
    await d.bgp?.leave();
    // Others remove their routes to us; what is in flight still finds our SIDs.
    await this.#sleep(d.timing?.settleMs ?? DRAIN_SETTLE_MS);
    this.#checkStopping();
    this.#drained = true;
    await d.reconciler.settled();
    // Everything the backend owns: routes and rules, or maps and programs; its filters and sysctls.
    const removed = d.reconciler.applied?.items.size ?? 0;
    await d.backend.flush();
    d.reconciler.forget();
    await d.stopGossip();
    const report = { withdrawn: local.length, removed, gracefulShutdownPaths, waitedMs, trafficStopped };
    d.log.info(report, 'drained: this host left the fabric');
    return report;
  }

  /** A pause that ends early when the agent is stopped (a stopped agent must not wait out a drain). */
  #sleep(ms: number): Promise<void> {
    const signal = this.#d.stopping;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #checkStopping(): void {
    if (this.#d.stopping.aborted) {
      throw new AgentError(
        'precondition',
        'the agent was stopped (SIGTERM) during the drain: the host is half drained (graceful shutdown ' +
          'and leaving advertised, nothing withdrawn); start the agent again (it rejoins) and run segmesh drain again',
      );
    }
  }

  /** Polls the counters of this host's decapsulating SIDs until they stand still, or `maxMs`. */
  async #awaitTrafficGone(
    view: FabricView | undefined,
    maxMs: number,
    quietMs: number,
  ): Promise<{ waitedMs: number; trafficStopped: boolean }> {
    const d = this.#d;
    const started = Date.now();
    const minMs = this.#d.timing?.minMs ?? DRAIN_MIN_MS;
    const pollMs = this.#d.timing?.pollMs ?? 200;
    const self = view?.hosts.get(this.#d.hostName);
    const sids = new Set(
      (self?.sids.all ?? []).filter((x) => x.behavior !== 'End').map((x) => sidKey(x.sid)),
    );
    let readErrors = 0;
    // Packets to our SIDs so far, or undefined when the counters could not be read: an unread counter
    // says nothing about traffic, so it never counts as standing still.
    const total = async (): Promise<number | undefined> => {
      try {
        const counters = await this.#d.backend.readCounters();
        let n = 0;
        for (const [key, c] of counters.sids) if (sids.has(key)) n += Number(c.packets);
        return n;
      } catch (e) {
        if (readErrors++ === 0)
          d.log.warn(
            { err: e },
            "draining: cannot read this host's SID counters; waiting for --wait to run out instead",
          );
        return undefined;
      }
    };
    const first = await total();
    let last = first;
    let stillSince = Date.now();
    const done = (trafficStopped: boolean) => {
      const waitedMs = Date.now() - started;
      d.log.info(
        {
          waitedMs,
          trafficStopped,
          sidPackets: first !== undefined && last !== undefined ? last - first : null,
          readErrors,
        },
        trafficStopped ? "draining: traffic to this host's SIDs stopped" : 'draining: the wait ran out',
      );
      return { waitedMs, trafficStopped };
    };
    for (;;) {
      if (Date.now() - started >= maxMs) return done(false);
      await this.#sleep(Math.min(pollMs, maxMs - (Date.now() - started)));
      this.#checkStopping();
      const now = await total();
      if (now === undefined || last === undefined || now !== last) {
        last = now;
        stillSince = Date.now();
      } else if (Date.now() - stillSince >= quietMs && Date.now() - started >= minMs) {
        return done(true);
      }
    }
  }
}
