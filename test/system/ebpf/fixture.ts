/**
 * Shared by the eBPF system tests and `npm run bench -- ebpf`: compile the datapath from bpf/ (so a test
 * always runs the source it sits next to), enter a test namespace on this thread (BPF_PROG_TEST_RUN and
 * bpf_fib_lookup see the calling thread's network namespace), counter deltas read from the per-CPU
 * counter map, intent items, and hosts (namespaces on one underlay veth) with workloads and an
 * EbpfBackend each.
 */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import type { Dataplane } from '../../../src/dataplane/dataplane.ts';
import {
  MAP,
  parseLinkDropKey,
  REASON_SLOTS,
  Reason,
  type ReasonName,
  u32Key,
} from '../../../src/dataplane/ebpf/abi.ts';
import { EbpfBackend, type EbpfBackendOptions } from '../../../src/dataplane/ebpf/backend.ts';
import type { BpfMap, BpfObject } from '../../../src/dataplane/ebpf/libbpf.ts';
import { openDataplane } from '../../../src/dataplane/index.ts';
import {
  type Attachment,
  attachmentKey,
  entryKey,
  type LocalSid,
  type PrefixEntry,
  type Scope,
  sidKey,
} from '../../../src/dataplane/intent.ts';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import type { Lab, Netns } from '../../harness/index.ts';
import { objectName, runLogDir, sh } from '../../harness/index.ts';

const repo = join(import.meta.dirname, '../../..');

/** clang as scripts/build.sh runs it, into this run's log folder; `defines` (e.g. SM_NO_VALIDATE) name a variant. */
export function compileDatapath(defines: readonly string[] = []): Promise<string> {
  return compileBpf('bpf/segmesh.c', defines);
}

/** A BPF C file of the repository (`source`, relative to it) compiled as scripts/build.sh compiles the
 * datapath, into this run's log folder. */
export async function compileBpf(source: string, defines: readonly string[] = []): Promise<string> {
  const base = source.replace(/^.*\//, '').replace(/\.c$/, '');
  const out = join(runLogDir(), `${base}${defines.map((d) => `-${d}`).join('')}.bpf.o`);
  const arch = (await sh('uname', ['-m'])).stdout.trim();
  await sh('clang', [
    '-O2',
    '-g',
    '-target',
    'bpf',
    '-Wall',
    '-Werror',
    ...defines.map((d) => `-D${d}`),
    `-I/usr/include/${arch}-linux-gnu`,
    '-c',
    join(repo, source),
    '-o',
    out,
  ]);
  return out;
}

const CLONE_NEWNET = 0x40000000;

/** A veth pair in `ns` with both MACs fixed (packets in and out of BPF_PROG_TEST_RUN name them), up. */
export async function vethPair(ns: Netns, name: string, address: string, peer: string, peerAddress: string) {
  await ns.ip(
    'link',
    'add',
    name,
    'address',
    address,
    'type',
    'veth',
    'peer',
    'name',
    peer,
    'address',
    peerAddress,
  );
  for (const l of [name, peer]) await ns.ip('link', 'set', l, 'up');
}

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

// Intent items, as the agent's path computation makes them.

export function scopes(tenant: string, tenantId: number): { egress: Scope; delivery: Scope } {
  return {
    egress: { kind: 'egress', tenant, tenantId },
    delivery: { kind: 'delivery', tenant, tenantId },
  };
}

export function entry(scope: Scope, prefix: string, action: PrefixEntry['action']): PrefixEntry {
  const p = parsePrefix(prefix);
  return { kind: 'entry', key: entryKey(scope, p), scope, prefix: p, action, reason: 'test' };
}

export function sid(s: string, behavior: LocalSid['behavior'], lookup?: Scope): LocalSid {
  return {
    kind: 'sid',
    key: sidKey(parseIpv6(s)),
    sid: parseIpv6(s),
    behavior,
    sidKey: s,
    ...(lookup ? { lookup } : {}),
    reason: 'test',
  };
}

/** Workload `addr` behind `link` on host n: its source only, not the SID block nor host n's underlay address. */
export function attachment(n: number, link: string, tenant: string, s: Scope, addr: string): Attachment {
  return {
    kind: 'attachment',
    key: attachmentKey(link),
    link,
    mtu: 1500,
    tenant,
    address: parseIpv6(addr),
    ingress: s,
    restrict: {
      source: parseIpv6(addr),
      denyDestinations: [parsePrefix('fc00::/32'), parsePrefix(`2001:db8:12::${n}/128`)],
    },
  };
}

export interface EbpfHost {
  readonly n: number;
  readonly ns: Netns;
  readonly dp: Dataplane;
  readonly opts: EbpfBackendOptions;
  readonly backend: EbpfBackend;
}

/**
 * Workload namespace `nsSuffix` behind host link `link` with address `addr`/64, default route to the
 * host (fe80::1), and the host's permanent neighbour entry for it (the CNI adds it; local delivery
 * rewrites to its MAC).
 */
export async function addWorkload(
  lab: Lab,
  host: Netns,
  link: string,
  nsSuffix: string,
  addr: string,
): Promise<Netns> {
  const w = await lab.netns(nsSuffix);
  await lab.veth(host, link, w, 'eth0', { addresses: ['fe80::1/64'], peerAddresses: [`${addr}/64`] });
  await w.ip('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0');
  const [l] = await w.ipJson<{ address: string }[]>('link', 'show', 'eth0');
  await host.ip('-6', 'neigh', 'replace', addr, 'lladdr', l!.address, 'dev', link, 'nud', 'permanent');
  return w;
}

/**
 * Two hosts `${prefix}h1` / `${prefix}h2` on one underlay veth `ul0` (2001:db8:12::n/64), each with a
 * workload per tenant letter (`w${t}0` -> namespace `${prefix}${t}${n}`, address fd0${i+1}:n::10 for the
 * i-th letter of `tenants`), and an EbpfBackend each (prepared, nothing realised) pinning under its own
 * bpffs. The lab's teardown unmounts the pins; flush the backends and close the dataplanes before it.
 */
export async function twoEbpfHosts(
  lab: Lab,
  opts: { prefix: string; tenants: readonly string[]; objectPath: string },
): Promise<{ hosts: EbpfHost[]; wl: Record<string, Netns> }> {
  const nss = [await lab.netns(`${opts.prefix}h1`), await lab.netns(`${opts.prefix}h2`)] as const;
  await lab.veth(nss[0], 'ul0', nss[1], 'ul0', {
    addresses: ['2001:db8:12::1/64'],
    peerAddresses: ['2001:db8:12::2/64'],
  });
  const hosts: EbpfHost[] = [];
  const wl: Record<string, Netns> = {};
  for (const n of [1, 2]) {
    const h = nss[n - 1]!;
    for (const [i, t] of opts.tenants.entries())
      wl[`${t}${n}`] = await addWorkload(lab, h, `w${t}0`, `${opts.prefix}${t}${n}`, `fd0${i + 1}:${n}::10`);
    const dp = await openDataplane({ netns: h.name });
    const pinDir = `/run/segmesh-test/${objectName(`${opts.prefix}bpf${n}`)}`;
    lab.onTeardown(async () => {
      await sh('umount', [pinDir], { allowFail: true });
      await sh('rmdir', [pinDir], { allowFail: true });
    });
    const o: EbpfBackendOptions = {
      underlayDevice: 'ul0',
      source: parseIpv6(`2001:db8:12::${n}`),
      pinDir,
      objectPath: opts.objectPath,
      netns: h.name,
    };
    const backend = new EbpfBackend(dp, o);
    await backend.prepare();
    hosts.push({ n, ns: h, dp, opts: o, backend });
  }
  return { hosts, wl };
}
