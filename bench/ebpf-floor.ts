/**
 * `npm run bench -- ebpf-floor [REPS] [PINGS]`: what the pieces of the eBPF datapath cost per packet on
 * this machine, as bpf_stats measures them (the measure of `npm run bench -- ebpf`'s encap_ns and
 * dt6_ns). The programs of bench/bpf/floor.c, each one piece (a hash lookup of sm_exact's shape, a
 * per-CPU counter, bpf_skb_adjust_room there and back, reads of four lines or four pages) that hands
 * the packet on unchanged, take turns (BPF_LINK_UPDATE) on one tcx link at the ingress of a veth between
 * two namespaces. Per program and repetition a flood ping (`ping -f -c PINGS`, one echo request per
 * packet through the program) runs with kernel.bpf_stats_enabled=1; ns per packet is the run_time_ns /
 * run_cnt delta. Programs interleaved within each repetition (order reversed every other one); one
 * repetition first, verified and printed but not counted. A run counts only if every echo was answered
 * (the program handed every packet on) and the program ran at least once per echo request.
 *
 * Each figure is printed as it is and less f_empty's of the same repetition (the measurement's own
 * floor: two clock reads around an empty program). Last line:
 * `{"bench":"ebpf-floor","empty_ns":N,"lines_ns":N,"pages_ns":N,"count1_ns":N,"count4_ns":N,"hash_ns":N,"hash2_ns":N,"miss_ns":N,"miss_hash_ns":N,"room_ns":N}`
 * (medians over f_empty).
 */
import { loadavg } from 'node:os';
import { exactKey } from '../src/dataplane/ebpf/abi.ts';
import { attachTcx, BpfObject, closeFd, linkUpdate } from '../src/dataplane/ebpf/libbpf.ts';
import { parseIpv6 } from '../src/srv6/address.ts';
import { createLab, sh } from '../test/harness/index.ts';
import { compileBpf, enterNetns } from '../test/system/ebpf/fixture.ts';
import { median, round } from './_stats.ts';

const REPS = Number(process.argv[2] ?? 5);
const PINGS = Number(process.argv[3] ?? 20_000);
if (!(REPS >= 1) || !(PINGS >= 100))
  throw new Error('usage: npm run bench -- ebpf-floor [REPS >= 1] [PINGS >= 100]');

const PROGRAMS = {
  f_empty: 'an empty program: the floor (bpf_stats reads the clock around every run)',
  f_lines: 'four lines of one page of an array map',
  f_pages: 'one line of each of four pages of an array map',
  f_count1: "one per-CPU counter (sm_counters' layout)",
  f_count4: 'four per-CPU counters of that map',
  f_hash: "one hash lookup of sm_exact's shape (20-byte key, 164-byte value, 3,001 entries; a hit)",
  f_hash2: 'the same lookup twice',
  f_miss: "a miss in a hash of sm_sids' shape (16-byte key, preallocated, 16,384)",
  f_miss_hash: 'that miss, then the sm_exact hit: a second map',
  f_room: 'bpf_skb_adjust_room +64 then -64 (room for an outer header and an SRH of 1, then gone)',
} as const;
type Program = keyof typeof PROGRAMS;
const NAMES = Object.keys(PROGRAMS) as Program[];
const DST = 'fd00:f10::2';

const lab = createLab();
const statsBefore = (await sh('sysctl', ['-n', 'kernel.bpf_stats_enabled'])).stdout.trim();
const runs: { rep: number; ns: Record<Program, number> }[] = [];
const loadStart = loadavg();
let obj: BpfObject | undefined;
try {
  const path = await compileBpf('bench/bpf/floor.c');
  const a = await lab.netns('fl-a');
  const b = await lab.netns('fl-b');
  await lab.veth(a, 'fa0', b, 'fb0', { addresses: ['fd00:f10::1/64'], peerAddresses: [`${DST}/64`] });
  const links = await b.ipJson<{ ifname: string; ifindex: number }[]>('link', 'show', 'fb0');
  const ifindex = links[0]!.ifindex;

  obj = BpfObject.load(path);
  // f_hash's entry (key space 1, the ping's destination) among 3,000 others, as workload /128s.
  const exact = obj.map('fl_exact');
  const value = new Uint8Array(164);
  const others = Array.from({ length: 3000 }, (_, i) => exactKey(1, parseIpv6('fd00:f11::') + BigInt(i)));
  exact.updateBatch([exactKey(1, parseIpv6(DST)), ...others], [value, ...others.map(() => value)]);

  const leave = enterNetns(b.name);
  let link: number;
  try {
    link = attachTcx(obj.program('f_empty'), ifindex);
  } finally {
    leave();
  }
  lab.onTeardown(() => closeFd(link));
  await sh('sysctl', ['-q', '-w', 'kernel.bpf_stats_enabled=1']);
  // Neighbour discovery done before the first timed flood.
  await a.exec('ping', ['-6', '-q', '-c', '2', '-i', '0.2', DST]);

  const measure = async (name: Program): Promise<number> => {
    const prog = obj!.program(name);
    linkUpdate(link, prog);
    const s0 = prog.runStats();
    const r = await a.exec('ping', ['-6', '-q', '-f', '-c', String(PINGS), DST], { timeoutMs: 120_000 });
    const s1 = prog.runStats();
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    if (!m || Number(m[1]) !== PINGS || Number(m[2]) !== PINGS)
      throw new Error(`${name}: the flood ping did not get every echo back (${m?.[0] ?? r.stdout.trim()})`);
    const cnt = s1.runCnt - s0.runCnt;
    if (cnt < BigInt(PINGS))
      throw new Error(`${name}: ran ${cnt} times for ${PINGS} echo requests (bpf_stats_enabled?)`);
    return Number(s1.runTimeNs - s0.runTimeNs) / Number(cnt);
  };
  for (let rep = -1; rep < REPS; rep++) {
    const ns = {} as Record<Program, number>;
    for (const name of rep % 2 === 0 ? NAMES : [...NAMES].reverse()) ns[name] = await measure(name);
    if (rep >= 0) runs.push({ rep, ns });
    process.stdout.write(
      `${rep < 0 ? 'warm-up (not counted)' : `rep ${rep}`}: ${NAMES.map((n) => `${n.slice(2)} ${ns[n].toFixed(0)}`).join(', ')} ns\n`,
    );
  }
} finally {
  obj?.close();
  await sh('sysctl', ['-q', '-w', `kernel.bpf_stats_enabled=${statsBefore}`]).catch(() => undefined);
  await lab.teardown().catch((e) => process.stderr.write(`teardown: ${e}\n`));
}

const abs = (n: Program) => runs.map((r) => r.ns[n]);
const over = (n: Program) => runs.map((r) => r.ns[n] - r.ns.f_empty);
console.log(
  `\nebpf-floor: ns per packet (bpf_stats run_time_ns / run_cnt), ${REPS} interleaved repetitions of ${PINGS} echo requests per program`,
);
console.log('program    per repetition                          median   over empty (median)');
for (const n of NAMES)
  console.log(
    `${n.slice(2).padEnd(10)} ${abs(n)
      .map((x) => x.toFixed(0))
      .join(' / ')
      .padEnd(
        40,
      )} ${median(abs(n)).toFixed(0).padStart(6)}   ${n === 'f_empty' ? '' : median(over(n)).toFixed(0).padStart(6)}   ${PROGRAMS[n]}`,
  );
console.log(
  `load average start ${loadStart.map((x) => x.toFixed(2)).join(' ')}, end ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
console.log(
  JSON.stringify({
    bench: 'ebpf-floor',
    empty_ns: round(median(abs('f_empty')), 0),
    ...Object.fromEntries(
      NAMES.filter((n) => n !== 'f_empty').map((n) => [`${n.slice(2)}_ns`, round(median(over(n)), 0)]),
    ),
  }),
);
