/**
 * Netlink transport over the `netlink@0.3.0` package's raw socket (it gives us socket, poll and
 * sendmsg; everything above the socket is ours).
 *
 * - Writes go out in batches of up to {@link BATCH_SIZE} messages per sendmsg. Only the last message
 *   of a batch asks for an ACK (the barrier); the kernel still answers every failed message with an
 *   NLMSG_ERROR carrying its seq, so a batch costs one round trip, not one per object.
 * - ENOMEM / ENOBUFS (a transient per-CPU atomic-pool exhaustion when seg6 routes are added fast, see
 *   docs/dataplane.md) are retried with AIMD: the batch shrinks to a quarter and we sleep 2 -> 50 ms,
 *   then it grows by 8 per clean batch.
 * - Dumps collect until NLMSG_DONE and throw {@link DumpInterruptedError} when any part carried
 *   NLM_F_DUMP_INTR.
 *
 * Package gotchas handled here (measured, see shared research): the raw socket is unref'd by default
 * (we ref() it while an operation is in flight), an exception thrown inside its native callback aborts
 * the process (the message handler never throws: errors go to the pending operation), and close()
 * runs from setImmediate.
 */
import { RawNetlinkSocket } from 'netlink/dist/raw.js';
import { BATCH_SIZE } from './constants.ts';
import { DumpInterruptedError, NetlinkError, remedyFor, TransportError } from './errors.ts';
import { type NlMessage, splitMessages } from './nlattr.ts';
import {
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_DUMP_INTR,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
} from './uapi/netlink.ts';

/** One message of a batch: its bytes (seq is filled in at send time) and the object it is about. */
export interface BatchItem {
  readonly msg: Buffer;
  /** e.g. "route 2001:db8::/64 table 10001" (used in errors; a function so it is formatted only on failure). */
  readonly object: string | (() => string);
  /** e.g. "add route" (used in errors). */
  readonly op: string;
}

export interface BatchFailure {
  readonly index: number;
  readonly error: NetlinkError;
}

export interface BatchResult {
  readonly ok: number;
  readonly failed: readonly BatchFailure[];
  /** Messages re-sent after ENOMEM / ENOBUFS. */
  readonly retries: number;
  readonly sendmsgCalls: number;
}

export interface BatchOptions {
  /** Initial messages per sendmsg (default BATCH_SIZE). */
  readonly batchSize?: number;
  /** Give up retrying a message after this many ENOMEM/ENOBUFS (default 200). */
  readonly maxRetries?: number;
  /** errnos that count as success for this batch (e.g. ESRCH on a delete of something already gone). */
  readonly tolerate?: readonly number[];
}

type Handler = (m: NlMessage) => void;

/** The part of netlink's RawNetlinkSocket the transport uses (a fake kernel implements it in unit tests). */
export interface RawSocketLike {
  on(event: 'message', fn: (data: Buffer) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  send(bufs: Buffer[], opts: object, cb: (err?: NodeJS.ErrnoException) => void): void;
  ref(): void;
  unref(): void;
  close(): void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class NetlinkTransport {
  private readonly sock: RawSocketLike;
  private seq: number;
  private handler: Handler | undefined;
  private failPending: ((e: Error) => void) | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  readonly protocol: number;

  constructor(protocol = NETLINK_ROUTE, socket?: RawSocketLike) {
    this.protocol = protocol;
    this.sock =
      socket ?? new RawNetlinkSocket(protocol, { recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    this.sock.unref();
    this.seq = (Math.random() * 0x7fffffff) >>> 0;
    this.sock.on('message', (data: Buffer) => this.onDatagram(data));
    this.sock.on('error', (err: Error) => {
      const fail = this.failPending;
      if (fail) fail(new TransportError(`netlink socket error: ${err.message}`));
    });
  }

  /** Never throws (an exception here would abort the process from inside the native callback). */
  private onDatagram(data: Buffer): void {
    try {
      const h = this.handler;
      if (!h) return;
      for (const m of splitMessages(data)) h(m);
    } catch (e) {
      const fail = this.failPending;
      if (fail) fail(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    if (this.seq === 0) this.seq = 1;
    return this.seq;
  }

  /** Runs operations one at a time on this socket. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new TransportError('netlink transport is closed'));
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private send(bufs: Buffer[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.sock.send(bufs, {}, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * Sends one batch; resolves when the barrier (last message) is acknowledged. Returns the errno of
   * each failed message by index in `msgs`.
   */
  private runBatch(msgs: Buffer[]): Promise<Map<number, number>> {
    const first = this.nextSeq();
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      const seq = i === 0 ? first : this.nextSeq();
      m.writeUInt32LE(seq, 8);
      const flags = m.readUInt16LE(6);
      m.writeUInt16LE(i === msgs.length - 1 ? flags | NLM_F_ACK : flags & ~NLM_F_ACK, 6);
    }
    const last = this.seq;
    const errors = new Map<number, number>();
    return new Promise((resolve, reject) => {
      this.failPending = reject;
      this.handler = (m) => {
        if (m.type !== NLMSG_ERROR) return;
        const rel = (m.seq - first) >>> 0;
        if (rel >= msgs.length) return; // stale answer of an earlier operation
        const errno = -m.data.readInt32LE(NLMSG_HDRLEN);
        if (errno !== 0) errors.set(rel, errno);
        if (m.seq === last) resolve(errors);
      };
      this.send(msgs).catch((err: NodeJS.ErrnoException) => {
        // sendmsg itself failed (ENOMEM/ENOBUFS under pressure): every message of the batch failed with it.
        const errno = typeof err.errno === 'number' ? Math.abs(err.errno) : 12;
        for (let i = 0; i < msgs.length; i++) errors.set(i, errno);
        resolve(errors);
      });
    });
  }

  /** Writes all `items` in batches; see the module comment. Non-retryable failures are returned, not thrown. */
  writeBatch(items: readonly BatchItem[], opts: BatchOptions = {}): Promise<BatchResult> {
    return this.exclusive(async () => {
      this.sock.ref();
      try {
        const maxBatch = opts.batchSize ?? BATCH_SIZE;
        const maxRetries = opts.maxRetries ?? 200;
        const tolerate = new Set(opts.tolerate ?? []);
        let size = maxBatch;
        let backoff = 0;
        let queue: number[] = items.map((_, i) => i);
        const attempts = new Map<number, number>();
        const failed: BatchFailure[] = [];
        let ok = 0;
        let retries = 0;
        let sendmsgCalls = 0;
        while (queue.length > 0) {
          const retry: number[] = [];
          for (let pos = 0; pos < queue.length; ) {
            const idx = queue.slice(pos, pos + size);
            pos += idx.length;
            sendmsgCalls++;
            const errors = await this.runBatch(idx.map((i) => items[i]!.msg));
            let transient = false;
            for (let k = 0; k < idx.length; k++) {
              const i = idx[k]!;
              const errno = errors.get(k);
              if (errno === undefined || tolerate.has(errno)) {
                ok++;
                continue;
              }
              const item = items[i]!;
              if (errno === 12 || errno === 105) {
                const n = (attempts.get(i) ?? 0) + 1;
                attempts.set(i, n);
                if (n <= maxRetries) {
                  transient = true;
                  retry.push(i);
                  retries++;
                  continue;
                }
              }
              failed.push({
                index: i,
                error: new NetlinkError(
                  item.op,
                  typeof item.object === 'function' ? item.object() : item.object,
                  errno,
                  remedyFor(errno),
                ),
              });
            }
            if (transient) {
              size = Math.max(1, Math.floor(size / 4));
              backoff = Math.min(50, backoff === 0 ? 2 : backoff * 2);
              await sleep(backoff);
            } else {
              size = Math.min(maxBatch, size + 8);
              backoff = 0;
            }
          }
          queue = retry;
        }
        failed.sort((a, b) => a.index - b.index);
        return { ok, failed, retries, sendmsgCalls };
      } finally {
        this.handler = undefined;
        this.failPending = undefined;
        this.sock.unref();
      }
    });
  }

  /**
   * Sends one request with an ACK and returns the messages answered before the ACK (for genl GETs).
   * Throws NetlinkError on a negative answer.
   */
  request(msg: Buffer, op: string, object: string): Promise<NlMessage[]> {
    return this.exclusive(async () => {
      this.sock.ref();
      try {
        const seq = this.nextSeq();
        msg.writeUInt32LE(seq, 8);
        msg.writeUInt16LE(msg.readUInt16LE(6) | NLM_F_ACK, 6);
        const out: NlMessage[] = [];
        await new Promise<void>((resolve, reject) => {
          this.failPending = reject;
          this.handler = (m) => {
            if (m.seq !== seq) return;
            if (m.type === NLMSG_ERROR) {
              const errno = -m.data.readInt32LE(NLMSG_HDRLEN);
              if (errno === 0) resolve();
              else reject(new NetlinkError(op, object, errno, remedyFor(errno)));
            } else {
              // Copy: the datagram buffer is ours, but keep answers independent of it.
              out.push({ ...m, data: Buffer.from(m.data) });
            }
          };
          this.send([msg]).catch(reject);
        });
        return out;
      } finally {
        this.handler = undefined;
        this.failPending = undefined;
        this.sock.unref();
      }
    });
  }

  /**
   * Dumps: calls `onMessage` for every answer message (decode there; the buffer is only valid during
   * the call). Throws DumpInterruptedError if the kernel flagged NLM_F_DUMP_INTR.
   */
  dump(msg: Buffer, what: string, onMessage: (m: NlMessage) => void): Promise<void> {
    return this.exclusive(async () => {
      this.sock.ref();
      try {
        const seq = this.nextSeq();
        msg.writeUInt32LE(seq, 8);
        let interrupted = false;
        await new Promise<void>((resolve, reject) => {
          this.failPending = reject;
          this.handler = (m) => {
            if (m.seq !== seq) return;
            if ((m.flags & NLM_F_DUMP_INTR) !== 0) interrupted = true;
            if (m.type === NLMSG_DONE) resolve();
            else if (m.type === NLMSG_ERROR) {
              const errno = -m.data.readInt32LE(NLMSG_HDRLEN);
              if (errno === 0) resolve();
              else reject(new NetlinkError('dump', what, errno, remedyFor(errno)));
            } else onMessage(m);
          };
          this.send([msg]).catch(reject);
        });
        if (interrupted) throw new DumpInterruptedError(what);
      } finally {
        this.handler = undefined;
        this.failPending = undefined;
        this.sock.unref();
      }
    });
  }

  /** Closes after pending operations finish; the native close runs from setImmediate. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.chain;
    this.closed = true;
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        this.sock.close();
        resolve();
      }),
    );
  }
}
