/**
 * Shared by the eBPF system tests: compile the datapath from bpf/ (so a test always runs the source it
 * sits next to), enter a test namespace on this thread (BPF_PROG_TEST_RUN and bpf_fib_lookup see the
 * calling thread's network namespace), and counter deltas read from the per-CPU counter map.
 */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import {
  MAP,
  parseLinkDropKey,
  REASON_SLOTS,
  Reason,
  type ReasonName,
  u32Key,
} from '../../../src/dataplane/ebpf/abi.ts';
import type { BpfMap, BpfObject } from '../../../src/dataplane/ebpf/libbpf.ts';
import { runLogDir, sh } from '../../harness/index.ts';

const repo = join(import.meta.dirname, '../../..');

/** clang as scripts/build.sh runs it, into this run's log folder. */
export async function compileDatapath(): Promise<string> {
  const out = join(runLogDir(), 'segmesh.bpf.o');
  const arch = (await sh('uname', ['-m'])).stdout.trim();
  await sh('clang', [
    '-O2',
    '-g',
    '-target',
    'bpf',
    '-Wall',
    '-Werror',
    `-I/usr/include/${arch}-linux-gnu`,
    '-c',
    join(repo, 'bpf/segmesh.c'),
    '-o',
    out,
  ]);
  return out;
}

const CLONE_NEWNET = 0x40000000;

/** setns(2) of this thread into /run/netns/NAME; returns the way back. */
export function enterNetns(name: string): () => void {
  const libc = koffi.load('libc.so.6');
  const setns = libc.func('int setns(int fd, int nstype)');
  const back = openSync('/proc/thread-self/ns/net', 'r');
  const fd = openSync(`/run/netns/${name}`, 'r');
  try {
    if (setns(fd, CLONE_NEWNET) !== 0) throw new Error(`setns into ${name}: errno ${koffi.errno()}`);
  } finally {
    closeSync(fd);
  }
  return () => {
    try {
      if (setns(back, CLONE_NEWNET) !== 0) throw new Error(`setns back: errno ${koffi.errno()}`);
    } finally {
      closeSync(back);
    }
  };
}

const names = new Map<number, ReasonName>(Object.entries(Reason).map(([k, v]) => [v, k as ReasonName]));

export function counters(obj: BpfObject): Map<number, bigint> {
  const m: BpfMap = obj.map(MAP.counters);
  const out = new Map<number, bigint>();
  for (let i = 0; i < REASON_SLOTS; i++) out.set(i, m.lookupSum(u32Key(i))?.[0] ?? 0n);
  return out;
}

/** What changed between two snapshots, by reason name. */
export function delta(before: Map<number, bigint>, after: Map<number, bigint>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [i, v] of after) {
    const diff = v - (before.get(i) ?? 0n);
    if (diff !== 0n) d[names.get(i) ?? `slot${i}`] = Number(diff);
  }
  return d;
}

/** sm_link_drops summed over CPUs, as `<ifindex>:<reason name>`. */
export function linkDrops(obj: BpfObject): Map<string, bigint> {
  const m = obj.map(MAP.linkDrops);
  const out = new Map<string, bigint>();
  for (const k of m.keys()) {
    const { ifindex, reason } = parseLinkDropKey(k);
    out.set(`${ifindex}:${names.get(reason) ?? `slot${reason}`}`, m.lookupSum(k)?.[0] ?? 0n);
  }
  return out;
}

/** What changed between two sm_link_drops snapshots. */
export function linkDelta(before: Map<string, bigint>, after: Map<string, bigint>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of after) {
    const diff = v - (before.get(k) ?? 0n);
    if (diff !== 0n) d[k] = Number(diff);
  }
  return d;
}
