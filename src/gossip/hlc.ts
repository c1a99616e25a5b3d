/**
 * Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014). Pure: the physical time is
 * passed in. Timestamps order events causally and stay close to wall time, so LWW picks the write a
 * human would call "the latest" while never going backwards when a host's clock does.
 */

export interface Timestamp {
  readonly wall: number;
  readonly counter: number;
}

/** The version of a record: its HLC timestamp and its writer (host id or `operator`), the tie-break. */
export interface Version extends Timestamp {
  readonly origin: string;
}

export const ZERO_TIMESTAMP: Timestamp = { wall: 0, counter: 0 };

/** The largest counter before the clock refuses to advance (uint32 on the wire). */
export const MAX_COUNTER = 0xffff_ffff;

export class ClockSkewError extends Error {
  static readonly code = 'clock_skew';
  readonly remote: Timestamp;
  readonly physical: number;
  constructor(remote: Timestamp, physical: number, maxDriftMs: number) {
    super(
      `remote HLC ${remote.wall}.${remote.counter} is ${remote.wall - physical} ms ahead of local time ` +
        `(limit ${maxDriftMs} ms): fix the sender's clock (NTP) or raise maxClockDriftMs`,
    );
    this.name = 'ClockSkewError';
    this.remote = remote;
    this.physical = physical;
  }
}

export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1;
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  return 0;
}

/** Total order of versions: HLC first, then the writer id (byte-wise string order) as tie-break. */
export function compareVersions(a: Version, b: Version): number {
  const c = compareTimestamps(a, b);
  if (c !== 0) return c;
  if (a.origin === b.origin) return 0;
  return a.origin < b.origin ? -1 : 1;
}

export function formatTimestamp(t: Timestamp): string {
  return `${t.wall}.${t.counter}`;
}

/** The clock state machine; `now()` stamps a local event, `receive()` merges a remote timestamp. */
export class HybridLogicalClock {
  #last: Timestamp;
  readonly maxDriftMs: number;

  constructor(maxDriftMs = 60_000, last: Timestamp = ZERO_TIMESTAMP) {
    this.maxDriftMs = maxDriftMs;
    this.#last = last;
  }

  get last(): Timestamp {
    return this.#last;
  }

  now(physical: number): Timestamp {
    const last = this.#last;
    const wall = Math.max(last.wall, Math.floor(physical));
    const counter = wall === last.wall ? last.counter + 1 : 0;
    return this.#set(wall, counter);
  }

  /** Merges a remote timestamp; throws ClockSkewError when it is further ahead than maxDriftMs. */
  receive(remote: Timestamp, physical: number): Timestamp {
    const pt = Math.floor(physical);
    if (remote.wall - pt > this.maxDriftMs) throw new ClockSkewError(remote, pt, this.maxDriftMs);
    const last = this.#last;
    const wall = Math.max(last.wall, remote.wall, pt);
    let counter: number;
    if (wall === last.wall && wall === remote.wall) counter = Math.max(last.counter, remote.counter) + 1;
    else if (wall === last.wall) counter = last.counter + 1;
    else if (wall === remote.wall) counter = remote.counter + 1;
    else counter = 0;
    return this.#set(wall, counter);
  }

  #set(wall: number, counter: number): Timestamp {
    if (counter > MAX_COUNTER) {
      // 4 billion events in one millisecond cannot happen honestly; move to the next millisecond.
      this.#last = { wall: wall + 1, counter: 0 };
    } else {
      this.#last = { wall, counter };
    }
    return this.#last;
  }
}
