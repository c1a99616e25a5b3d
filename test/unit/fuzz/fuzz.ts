/**
 * Shared parts of the decoder fuzz suite (issue 12): a fixed seed and a fixed number of runs so CI is
 * deterministic, inputs that are random bytes or mutated valid encodings (bit flips, truncations,
 * length fields set to extremes, splices), and the three properties every decoder of bytes from
 * outside must have:
 * - it returns, or throws one of its named error classes (never a RangeError/TypeError from a read
 *   past the end, never a library's error);
 * - it answers within PER_INPUT_MS (no hang, no quadratic blow-up on a small input);
 * - it allocates in proportion to its input, not to a length the input declares (its result's size
 *   is bounded by the input's, and the heap does not grow by more than HEAP_SLACK per input).
 * A failure prints fast-check's counterexample: add it to the decoder's regression vectors.
 */
import fc from 'fast-check';

/** Fixed: every CI run tries the same inputs. Change it locally to explore (SEGMESH_FUZZ_SEED). */
export const SEED = Number(process.env.SEGMESH_FUZZ_SEED ?? 0x5e6e5);
/** Runs per property (each decoder has two: random bytes, mutated valid encodings). */
export const RUNS = Number(process.env.SEGMESH_FUZZ_RUNS ?? 2500);
export const PER_INPUT_MS = 250;
const HEAP_SLACK = 32 * 2 ** 20;

export const fuzzParams = { seed: SEED, numRuns: RUNS, endOnFailure: true } as const;

// biome-ignore lint/suspicious/noExplicitAny: error classes have different constructor signatures
export type ErrorClass = abstract new (...args: any[]) => Error;

/** Random bytes, mostly short (decoders branch early), sometimes up to a few KiB. */
export const randomBytes = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 4096 }) },
);

/** A valid encoding, mutated the ways a broken or hostile peer would. */
export function mutated(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  if (seeds.length === 0) throw new Error('mutated() needs at least one valid encoding');
  const seed = fc.constantFrom(...seeds);
  const at = (b: Uint8Array) => fc.nat({ max: Math.max(0, b.length - 1) });
  return fc.oneof(
    // Bit flips (1-4).
    seed.chain((b) =>
      fc.array(fc.tuple(at(b), fc.nat({ max: 7 })), { minLength: 1, maxLength: 4 }).map((flips) => {
        const out = Uint8Array.from(b);
        for (const [i, bit] of flips) if (out.length > 0) out[i] = out[i]! ^ (1 << bit);
        return out;
      }),
    ),
    // Truncations.
    seed.chain((b) => fc.nat({ max: b.length }).map((n) => b.slice(0, n))),
    // A 1-, 2- or 4-byte field (often a length) set to an extreme value, both byte orders.
    seed.chain((b) =>
      fc
        .tuple(
          at(b),
          fc.constantFrom(1, 2, 4),
          fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff),
          fc.boolean(),
        )
        .map(([i, width, fill, low]) => {
          const out = Uint8Array.from(b);
          for (let k = 0; k < width && i + k < out.length; k++) out[i + k] = low && k > 0 ? 0 : fill;
          return out;
        }),
    ),
    // Random bytes spliced in, or appended.
    seed.chain((b) =>
      fc.tuple(fc.nat({ max: b.length }), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([i, junk]) => {
        const out = new Uint8Array(b.length + junk.length);
        out.set(b.subarray(0, i));
        out.set(junk, i);
        out.set(b.subarray(i), i + junk.length);
        return out;
      }),
    ),
  );
}

/** An upper bound on what a decoded value holds (array elements, bytes, string length, keys). */
export function sizeOf(value: unknown, depth = 0): number {
  if (depth > 32 || value === null || value === undefined) return 1;
  if (typeof value === 'string') return 1 + value.length;
  if (typeof value !== 'object') return 1;
  if (ArrayBuffer.isView(value)) return 1 + value.byteLength;
  let n = 1;
  if (value instanceof Map) {
    for (const [k, v] of value) n += sizeOf(k, depth + 1) + sizeOf(v, depth + 1);
    return n;
  }
  for (const v of Object.values(value)) n += sizeOf(v, depth + 1);
  return n;
}

export interface Outcome {
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: Error;
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/**
 * Runs `decode(input)` and checks the three properties. `inputSize` is what the output may be
 * proportional to (bytes for a buffer, characters for text). Returns the outcome for further checks.
 */
export function decodeChecked(
  what: string,
  input: Uint8Array | string,
  allowed: readonly ErrorClass[],
  decode: () => unknown,
): Outcome {
  const before = process.memoryUsage();
  const t = performance.now();
  let outcome: Outcome;
  try {
    outcome = { ok: true, value: decode() };
  } catch (e) {
    outcome = { ok: false, error: e as Error };
  }
  const ms = performance.now() - t;
  const after = process.memoryUsage();
  const shown = typeof input === 'string' ? JSON.stringify(input.slice(0, 300)) : hex(input.subarray(0, 300));
  if (!outcome.ok && !allowed.some((c) => outcome.error instanceof c)) {
    const e = outcome.error;
    throw new Error(
      `${what} threw ${e?.constructor?.name ?? typeof e} (${e?.message}), not one of ${allowed.map((c) => c.name).join(', ')}, on ${shown}`,
    );
  }
  if (ms > PER_INPUT_MS) {
    // A pathological input is slow every time; a GC or scheduling pause of a loaded machine is not:
    // time it once more before calling it slow.
    const again = performance.now();
    try {
      decode();
    } catch {}
    const ms2 = performance.now() - again;
    if (ms2 > PER_INPUT_MS)
      throw new Error(
        `${what} took ${ms.toFixed(0)} ms, then ${ms2.toFixed(0)} ms, on ${input.length} bytes: ${shown}`,
      );
  }
  const grown = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
  if (grown > HEAP_SLACK) {
    throw new Error(
      `${what} grew the heap by ${(grown / 2 ** 20).toFixed(1)} MiB on ${input.length} bytes: ${shown}`,
    );
  }
  if (outcome.ok) {
    const size = sizeOf(outcome.value);
    if (size > 64 * input.length + 4096)
      throw new Error(`${what} returned ${size} units from ${input.length} bytes of input: ${shown}`);
  }
  return outcome;
}
