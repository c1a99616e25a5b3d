/** Ping logs read by the mobility benchmarks (mobility, ebpf). */
/**
 * Losses from a `ping -D` log: sequence numbers without a reply although a later one was answered
 * (the echoes after the last reply were in flight when ping stopped). The send time of a lost echo is
 * estimated from the reply before it and the interval.
 */
export function pingLosses(
  log: string,
  intervalMs = 10,
): {
  transmitted: number;
  received: number;
  inFlight: number;
  lost: { seq: number; atMs: number }[];
} {
  const replies = new Map<number, number>();
  for (const m of log.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .* icmp_seq=(\d+) /gm))
    replies.set(Number(m[2]), Number(m[1]) * 1000);
  const transmitted = Number(/(\d+) packets transmitted/.exec(log)?.[1] ?? 0);
  const lastAnswered = Math.max(0, ...replies.keys());
  const lost: { seq: number; atMs: number }[] = [];
  let before = { seq: 0, atMs: 0 };
  for (let seq = 1; seq <= lastAnswered; seq++) {
    const at = replies.get(seq);
    if (at !== undefined) before = { seq, atMs: at };
    else lost.push({ seq, atMs: before.atMs + (seq - before.seq) * intervalMs });
  }
  return { transmitted, received: replies.size, inFlight: transmitted - lastAnswered, lost };
}
