/** `segmesh plan FILE`: what every host of a described fabric would own and install (a dry run). */
import { once } from 'node:events';
import { fstatSync, type Stats, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isatty } from 'node:tty';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Command } from 'commander';
import { fabricInputFromSpec, parseConfig } from '../../config/load.ts';
import { planJsonChunks, planTextChunks } from '../../format/plan.ts';
import { buildFabricView, type FabricView } from '../../srv6/fabric.ts';

export interface PlanOptions {
  readonly host?: string;
  readonly json?: boolean;
}

/**
 * Where the plan goes: a Writable (process.stdout) or anything with the same write/drain contract.
 * Chunks are UTF-8 bytes of about 1 MiB (or one host's plan, if smaller), never written to again.
 */
export interface PlanSink {
  write(chunk: Uint8Array): boolean;
  once(event: 'drain', listener: () => void): unknown;
  /**
   * True if write() has written the chunk when it returns and keeps no reference to it: the plan's
   * buffers are then reused for the next chunks instead of allocated anew.
   */
  readonly keepsNoChunk?: boolean;
}

/**
 * Writes the plan of the fabric in `text` (read from `file`) to `out`, one host at a time: each host's
 * plan is computed, formatted and written before the next is computed, and a full sink is waited for,
 * so memory holds one host's plan whatever the fabric's size. Returns the number of hosts written.
 */
export async function writePlan(
  text: string,
  file: string,
  opts: PlanOptions,
  out: PlanSink,
): Promise<number> {
  const { view, summary } = load(text, file);
  const hosts = opts.host ? [opts.host] : [...view.hosts.keys()];
  for (const h of hosts) {
    if (!view.hosts.has(h))
      throw new Error(`host ${h} is not in ${file}; hosts: ${[...view.hosts.keys()].join(', ')}`);
  }
  const reuse = { reuse: out.keepsNoChunk === true };
  const chunks = opts.json ? planJsonChunks(view, hosts, reuse) : planTextChunks(view, hosts, summary, reuse);
  const cap = heapCap(HEAP_SLACK_BYTES);
  for (const chunk of chunks) {
    if (!out.write(chunk)) await once(out as unknown as NodeJS.EventEmitter, 'drain');
    cap();
  }
  return hosts.length;
}

/**
 * The fabric's view and summary line. A function of its own so that the YAML document (much larger
 * than the view) is garbage before the first host's plan is computed.
 */
function load(text: string, file: string): { view: FabricView; summary: string } {
  const parsed = parseConfig(text, file, ['Fabric', 'Topology']);
  if (parsed.kind !== 'Fabric' && parsed.kind !== 'Topology') throw new Error('unreachable');
  const view = buildFabricView(fabricInputFromSpec(parsed.spec));
  const s = parsed.spec;
  const summary =
    `fabric ${s.name ?? file}: ${count(view.hosts.size, 'host')}, ${count(view.tenants.size, 'tenant')}, ` +
    `${count(view.workloads.size, 'workload')}, ${count(view.networkFunctions.size, 'network function')}, ` +
    `${count(view.policies.length, 'policy', 'policies')}`;
  return { view, summary };
}

export function planCommand(): Command {
  return new Command('plan')
    .description('print, per host, the SIDs it owns and the routes (with segment lists) it would install')
    .argument('<file>', 'fabric description (kind: Fabric or Topology)')
    .option('--host <name>', 'only this host')
    .option('--json', 'machine-readable output (one JSON array, an element per host, written host by host)')
    .action(async (file: string, opts: PlanOptions) => {
      // `segmesh plan big.yaml | head`: a reader that has seen enough is not an error.
      process.stdout.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EPIPE') process.exit(0);
        throw e;
      });
      await writePlan(await readFile(file, 'utf8'), file, opts, fileSink(1) ?? process.stdout);
    });
}

/**
 * A sink that writes straight to `fd` when it is a regular file or a character device other than a
 * terminal (`> plan.txt`, `> /dev/null`): there a write never blocks for long and never fails with
 * EAGAIN, so a synchronous write of each chunk (and reusing its buffer) beats the stream's
 * bookkeeping. Undefined for a pipe, a socket or a terminal: process.stdout handles those (a slow
 * reader's backpressure, EPIPE).
 */
function fileSink(fd: number): PlanSink | undefined {
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch {
    return undefined;
  }
  if (!st.isFile() && !(st.isCharacterDevice() && !isatty(fd))) return undefined;
  return {
    keepsNoChunk: true,
    write(chunk: Uint8Array): boolean {
      for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
      return true;
    },
    once: () => undefined,
  };
}

/** Garbage allowed on top of what was live after the last collection before collecting again. */
const HEAP_SLACK_BYTES = 96 * 2 ** 20;

/**
 * Keeps the heap near what is live. Each host's plan and text are garbage once written, but V8 lets
 * garbage that survived a scavenge pile up in the old generation and grows the heap toward its limit
 * (gigabytes on a large machine) before collecting it: a 1,000-host plan reached 500+ MB RSS. A full
 * collection between two hosts once the heap exceeds what was live after the previous one by `slack`
 * keeps memory bounded by the view plus about one host's plan plus the slack, and runs only once per
 * `slack` of garbage (not per host: with a large view, a fixed cap would collect after every host).
 */
function heapCap(slack: number): () => void {
  let gc: (() => void) | undefined;
  try {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  } catch {
    gc = undefined; // without it, V8's own heuristics decide
  }
  let next = slack;
  return () => {
    if (gc === undefined || getHeapStatistics().used_heap_size <= next) return;
    gc();
    next = getHeapStatistics().used_heap_size + slack;
  };
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
