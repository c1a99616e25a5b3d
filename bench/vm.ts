/**
 * `npm run bench -- vm [REPS] [--no-cold]`: the seg6 kernel VM (src/vm), so that figures measured
 * through a VM can be read against it.
 * - Cold image build: scripts/vm-image.sh into an empty temporary cache (kernel download, mmdebstrap,
 *   mke2fs); `--no-cold` skips it (it costs minutes of downloads).
 * - Boot-to-ready with the cached image: qemu start to the guest's ready line (shares mounted), REPS
 *   times; median and spread.
 * - ping RTT and iperf3 TCP throughput host namespace -> VM over a tap, interleaved per repetition
 *   with the same between two host namespaces over a veth (the anchor: the path without the VM), and
 *   the ratio VM/anchor per repetition, after one uncounted warm-up of each. A repetition counts only
 *   when every echo was answered and iperf3 reports bytes received by the expected server.
 * Last line: {"bench":"vm","boot_ms":N,"image_cold_s":N,"rtt_ms":N,"tcp_mbps":N}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { ensureVmImage } from '../src/vm/image.ts';
import { createLab, type Netns, objectName } from '../test/harness/index.ts';
import { runInTestVm, startTestVm, testVmImage } from '../test/harness/vm.ts';
import { median, round } from './_stats.ts';

const args = process.argv.slice(2);
const REPS = Number(args.find((a) => /^\d+$/.test(a)) ?? 3);
const COLD = !args.includes('--no-cold');
const log = (s: string) => process.stderr.write(`bench vm: ${s}\n`);

let imageColdS = Number.NaN;
if (COLD) {
  const cache = mkdtempSync('/var/tmp/segmesh-vm-cold-');
  try {
    const t0 = performance.now();
    const img = await ensureVmImage({ cacheDir: cache, progress: (l) => log(l) });
    imageColdS = (performance.now() - t0) / 1000;
    log(`cold image build ${round(imageColdS, 1)} s (${img.kernelVersion})`);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}
const image = await testVmImage();

// Boot to ready (cached image, one share as the test runner uses it), REPS times.
const boots: number[] = [];
for (let i = 0; i < REPS; i++) {
  const r = await runInTestVm({
    suffix: `vmb${i}`,
    command: ['uname', '-r'],
    shares: [{ path: new URL('..', import.meta.url).pathname }],
  });
  if (r.code !== 0 || !r.output.includes(image.kernelVersion))
    throw new Error(`boot ${i}: unexpected ${r.output}`);
  boots.push(r.bootMs);
  log(`boot ${i + 1}/${REPS}: ${r.bootMs} ms (${r.accel})`);
}

const lab = createLab();
const rows: { rep: number; path: 'vm' | 'veth'; rttMs: number; mbps: number }[] = [];
try {
  const host = await lab.netns('bh');
  const peer = await lab.netns('bp');
  // The anchor: a veth from the host namespace to a second namespace running the same server.
  const [vh, vp] = [objectName('bvh'), objectName('bvp')];
  await host.ip('link', 'add', vh, 'type', 'veth', 'peer', 'name', vp, 'netns', peer.name);
  await host.ip('addr', 'add', '2001:db8:9::1/64', 'dev', vh, 'nodad');
  await peer.ip('addr', 'add', '2001:db8:9::2/64', 'dev', vp, 'nodad');
  await host.ip('link', 'set', vh, 'up');
  await peer.ip('link', 'set', vp, 'up');
  await peer.ip('link', 'set', 'lo', 'up');
  await lab.daemon({ name: 'bench-vm-anchor-iperf3', command: 'iperf3', args: ['-s'], netns: peer });

  const vm = await startTestVm({
    suffix: 'vmnet',
    command: ['sh', '-c', 'iperf3 -s -D && echo iperf3-up && exec sleep 3600'],
    netns: host.name,
    taps: [
      { name: objectName('btap'), hostAddresses: ['2001:db8:7::1/64'], guestAddresses: ['2001:db8:7::2/64'] },
    ],
  });
  try {
    await vm.ready;
    const targets = { vm: '2001:db8:7::2', veth: '2001:db8:9::2' } as const;
    const rtt = async (ns: Netns, to: string): Promise<number> => {
      const r = await ns.exec('ping', ['-6', '-n', '-q', '-c', '20', '-i', '0.2', '-W', '2', to], {
        allowFail: true,
      });
      if (!/ 0% packet loss/.test(r.stdout)) throw new Error(`ping ${to}: lost echoes:\n${r.stdout}`);
      const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
      if (!m) throw new Error(`ping ${to}: no summary:\n${r.stdout}`);
      return Number(m[1]);
    };
    const tcp = async (ns: Netns, to: string): Promise<number> => {
      // Until the VM's iperf3 listens (it starts after the ready line), the client is refused.
      for (let attempt = 0; ; attempt++) {
        const r = await ns.exec('iperf3', ['-6', '-c', to, '-t', '5', '-J'], {
          allowFail: true,
          timeoutMs: 60_000,
        });
        const j = JSON.parse(r.stdout || '{}') as {
          error?: string;
          start?: { connected?: { remote_host: string }[] };
          end?: { sum_received?: { bytes: number; bits_per_second: number } };
        };
        if (j.error && attempt < 20) {
          await new Promise((res) => setTimeout(res, 500));
          continue;
        }
        const received = j.end?.sum_received;
        if (!received || received.bytes <= 0 || j.start?.connected?.[0]?.remote_host !== to)
          throw new Error(`iperf3 to ${to}: no data received: ${j.error ?? r.stdout.slice(0, 300)}`);
        return received.bits_per_second / 1e6;
      }
    };
    // Warm-up, not counted: neighbour discovery, and TCG translating the guest's network path once.
    for (const to of Object.values(targets)) {
      await host.exec('ping', ['-6', '-n', '-q', '-c', '5', '-i', '0.2', '-W', '2', to], { allowFail: true });
      await tcp(host, to);
    }
    for (let rep = 0; rep < REPS; rep++) {
      const order: ('vm' | 'veth')[] = rep % 2 === 0 ? ['vm', 'veth'] : ['veth', 'vm'];
      for (const path of order) {
        const rttMs = await rtt(host, targets[path]);
        const mbps = await tcp(host, targets[path]);
        rows.push({ rep, path, rttMs, mbps });
        log(`rep ${rep + 1}/${REPS} ${path}: rtt ${rttMs} ms, tcp ${round(mbps, 0)} Mbit/s`);
      }
    }
  } finally {
    await vm.stop();
  }
} finally {
  await lab.teardown();
}

const of = (path: 'vm' | 'veth', key: 'rttMs' | 'mbps') =>
  rows.filter((r) => r.path === path).map((r) => r[key]);
const ratio = (key: 'rttMs' | 'mbps') =>
  Array.from({ length: REPS }, (_, rep) => {
    const vm = rows.find((r) => r.rep === rep && r.path === 'vm')![key];
    const veth = rows.find((r) => r.rep === rep && r.path === 'veth')![key];
    return vm / veth;
  });
const spread = (v: number[]) => `${round(Math.min(...v), 2)}-${round(Math.max(...v), 2)}`;
console.log(`guest kernel ${image.kernelVersion}, ${REPS} repetitions`);
console.log(`image cold build      ${COLD ? `${round(imageColdS, 1)} s` : 'skipped (--no-cold)'}`);
console.log(`boot to ready         median ${median(boots)} ms (${spread(boots)})`);
console.log(
  `ping RTT              VM ${round(median(of('vm', 'rttMs')))} ms, veth anchor ${round(median(of('veth', 'rttMs')))} ms, ratio median ${round(median(ratio('rttMs')), 1)} (${spread(ratio('rttMs'))})`,
);
console.log(
  `TCP (iperf3, 1 flow)  VM ${round(median(of('vm', 'mbps')), 0)} Mbit/s, veth anchor ${round(median(of('veth', 'mbps')), 0)} Mbit/s, ratio median ${round(median(ratio('mbps')), 3)} (${spread(ratio('mbps'))})`,
);
console.log(
  JSON.stringify({
    bench: 'vm',
    boot_ms: median(boots),
    image_cold_s: COLD ? round(imageColdS, 1) : null,
    rtt_ms: round(median(of('vm', 'rttMs'))),
    tcp_mbps: round(median(of('vm', 'mbps')), 0),
  }),
);
process.exit(0);
