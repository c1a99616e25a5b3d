/**
 * The eBPF datapath carrying real traffic between two hosts (namespaces): workload -> wl_in (H.Encaps,
 * 2 segments) -> underlay -> ul_in (End, then End.DT6 into table 101) -> workload, and back with
 * H.Encaps.Red; IPv4 through End.DT4. Host 1 attaches with tcx (BPF_LINK_CREATE), host 2 with clsact.
 * tshark decodes the SRHs on the wire; isolation drops are read from host 1's counters next to pings
 * that pass.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  addrKey,
  CFG_FIB,
  CFG_TRUSTSRC,
  CFG_VALIDATE,
  configValue,
  endpointValue,
  ifindexKey,
  MAP,
  policyKey,
  policyValue,
  reasonValue,
  sidKey,
  sidValue,
  u32Key,
  v4Mapped,
} from '../../../src/dataplane/ebpf/abi.ts';
import {
  attachClsact,
  attachTcx,
  BpfObject,
  closeFd,
  ensureBpffs,
  pinFd,
  unpin,
} from '../../../src/dataplane/ebpf/libbpf.ts';
import { parseIpv6 } from '../../../src/srv6/address.ts';
import { createLab, type Netns, objectName, sh, srhPackets, systemSuite } from '../../harness/index.ts';
import { v6 } from '../../harness/packet.ts';
import { compileDatapath, counters, delta, enterNetns } from './fixture.ts';

const ip = parseIpv6;

async function ping(from: Netns, dst: string, count = 3): Promise<number> {
  const r = await from.exec('ping', ['-c', String(count), '-i', '0.2', '-W', '2', dst], { allowFail: true });
  const m = /(\d+) received/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

systemSuite(
  'ebpf datapath: two hosts, workloads pinging through wl_in and ul_in',
  { tools: ['clang', 'ip', 'ping', 'tcpdump', 'tshark', 'iperf3', 'ss'] },
  () => {
    const lab = createLab();
    const hosts: Netns[] = [];
    const workloads: Netns[] = [];
    const objs: BpfObject[] = [];
    /** Host 1's tcx links: [wl_in, ul_in]. */
    const tcxLinks: number[] = [];

    beforeAll(async () => {
      const path = await compileDatapath();
      for (const n of [1, 2]) {
        hosts.push(await lab.netns(`eh${n}`));
        workloads.push(await lab.netns(`ew${n}`));
      }
      const [h1, h2] = hosts as [Netns, Netns];
      await lab.veth(h1, 'ul0', h2, 'ul0', {
        addresses: ['2001:db8:12::1/64'],
        peerAddresses: ['2001:db8:12::2/64'],
      });
      for (const n of [1, 2]) {
        const h = hosts[n - 1]!;
        const w = workloads[n - 1]!;
        await lab.veth(h, 'wl0', w, 'eth0', {
          addresses: ['fe80::1/64', `198.18.${n}.1/24`],
          peerAddresses: [`fd01:${n}::10/64`, `198.18.${n}.10/24`],
        });
        await w.ip('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0');
        await w.ip('-4', 'route', 'add', 'default', 'via', `198.18.${n}.1`);
        for (const k of ['net.ipv6.conf.all.forwarding', 'net.ipv4.ip_forward']) await h.sysctl(k, '1');
        const other = 3 - n;
        await h.ip(
          '-6',
          'route',
          'add',
          `fc00:0:${other}::/48`,
          'via',
          `2001:db8:12::${other}`,
          'dev',
          'ul0',
        );
        await h.ip('-6', 'route', 'add', `fd01:${n}::/64`, 'dev', 'wl0', 'table', '101');
        await h.ip('-4', 'route', 'add', `198.18.${n}.0/24`, 'dev', 'wl0', 'table', '101');

        const links = await h.ipJson<{ ifname: string; ifindex: number }[]>('link', 'show');
        const ifx = (name: string) => links.find((l) => l.ifname === name)!.ifindex;
        const leave = enterNetns(h.name);
        try {
          const obj = BpfObject.load(path);
          objs.push(obj);
          populate(obj, n, ifx('wl0'));
          if (n === 1) {
            tcxLinks.push(
              attachTcx(obj.program('wl_in'), ifx('wl0')),
              attachTcx(obj.program('ul_in'), ifx('ul0')),
            );
            lab.onTeardown(() => {
              for (const fd of tcxLinks.splice(0)) closeFd(fd);
            });
          } else {
            const detach = [
              attachClsact(obj.program('wl_in'), ifx('wl0')),
              attachClsact(obj.program('ul_in'), ifx('ul0')),
            ];
            lab.onTeardown(() => {
              const back = enterNetns(h.name);
              try {
                for (const d of detach) d();
              } finally {
                back();
              }
            });
          }
        } finally {
          leave();
        }
      }
    });

    afterAll(async () => {
      await lab.teardown();
      for (const o of objs) o.close();
    });

    it('IPv6: H.Encaps (End + End.DT6 on host 2) out and H.Encaps.Red (End + End.DT6 on host 1) back; tshark decodes both SRHs', async () => {
      const [h1, h2] = objs as [BpfObject, BpfObject];
      const b1 = counters(h1);
      const b2 = counters(h2);
      const cap = await lab.capture({ netns: hosts[1]!, ifname: 'ul0', filter: 'ip6' });
      expect(await ping(workloads[0]!, 'fd01:2::10')).toBe(3);
      const pkts = await srhPackets(cap);
      const out = pkts.filter((p) => p.dst === 'fc00:0:2::e');
      const back = pkts.filter((p) => p.dst === 'fc00:0:1::e');
      expect(out.length).toBeGreaterThanOrEqual(3);
      expect(back.length).toBeGreaterThanOrEqual(3);
      expect(out[0]).toEqual({
        dst: 'fc00:0:2::e',
        nextHeader: 41,
        segmentsLeft: 1,
        lastEntry: 1,
        segments: ['fc00:0:2::d6:1', 'fc00:0:2::e'],
      });
      expect(back[0]).toEqual({
        dst: 'fc00:0:1::e',
        nextHeader: 41,
        segmentsLeft: 1,
        lastEntry: 0,
        segments: ['fc00:0:1::d6:1'],
      });
      const d1 = delta(b1, counters(h1));
      const d2 = delta(b2, counters(h2));
      expect(d1.encap).toBeGreaterThanOrEqual(3);
      expect(d1.end).toBeGreaterThanOrEqual(3);
      expect(d1.dt6).toBeGreaterThanOrEqual(3);
      expect(d2.encap_red).toBeGreaterThanOrEqual(3);
      expect(d2.end).toBeGreaterThanOrEqual(3);
      expect(d2.dt6).toBeGreaterThanOrEqual(3);
      expect(Object.keys(d1).filter((k) => k.startsWith('drop_'))).toEqual([]);
      expect(Object.keys(d2).filter((k) => k.startsWith('drop_'))).toEqual([]);
    });

    it('IPv4 inner through End.DT4: no SRH out (next header 4), an SRH with one segment back', async () => {
      const [h1, h2] = objs as [BpfObject, BpfObject];
      const b1 = counters(h1);
      const b2 = counters(h2);
      const cap = await lab.capture({ netns: hosts[1]!, ifname: 'ul0', filter: 'ip6' });
      expect(await ping(workloads[0]!, '198.18.2.10')).toBe(3);
      const back = (await srhPackets(cap)).filter((p) => p.dst === 'fc00:0:1::d4:1');
      expect(back.length).toBeGreaterThanOrEqual(3);
      expect(back[0]).toEqual({
        dst: 'fc00:0:1::d4:1',
        nextHeader: 4,
        segmentsLeft: 0,
        lastEntry: 0,
        segments: ['fc00:0:1::d4:1'],
      });
      const d1 = delta(b1, counters(h1));
      const d2 = delta(b2, counters(h2));
      expect([d1.encap_nosrh, d1.dt4, d2.encap, d2.dt4].every((n) => (n ?? 0) >= 3)).toBe(true);
      expect(Object.keys({ ...d1, ...d2 }).filter((k) => k.startsWith('drop_'))).toEqual([]);
    });

    it('a full-size packet that would not fit after encapsulation: ICMPv6 Packet Too Big from wl_in, the workload learns MTU 1420 and later echoes pass', async () => {
      const [h1, h2] = objs as [BpfObject, BpfObject];
      const b1 = counters(h1);
      const b2 = counters(h2);
      // 1452 bytes of ICMP payload: 1500-byte IPv6 packets, 1580 after H.Encaps with 2 segments.
      const r = await workloads[0]!.exec(
        'ping',
        ['-6', '-c', '6', '-i', '0.3', '-W', '2', '-s', '1452', 'fd01:2::10'],
        { allowFail: true },
      );
      const received = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
      expect(received).toBeGreaterThanOrEqual(3);
      const route = await workloads[0]!.ip('-6', 'route', 'get', 'fd01:2::10');
      expect(route.stdout).toMatch(/mtu 1420/);
      expect(delta(b1, counters(h1)).ptb).toBeGreaterThanOrEqual(1);
      // The echo replies are 1500 bytes too: host 2 answers its workload the same way.
      expect(delta(b2, counters(h2)).ptb).toBeGreaterThanOrEqual(1);
    });

    it('IPv4 with DF too big after encapsulation: ICMPv4 Fragmentation Needed from wl_in, the workload learns MTU 1460', async () => {
      const [h1] = objs as [BpfObject];
      const b1 = counters(h1);
      await workloads[0]!.exec(
        'ping',
        ['-4', '-M', 'do', '-c', '3', '-i', '0.3', '-W', '1', '-s', '1472', '198.18.2.10'],
        {
          allowFail: true,
        },
      );
      const route = await workloads[0]!.ip('-4', 'route', 'get', '198.18.2.10');
      expect(route.stdout).toMatch(/mtu 1460/);
      expect(delta(b1, counters(h1)).ptb).toBeGreaterThanOrEqual(1);
      // Below the learned MTU, DF pings pass.
      const r = await workloads[0]!.exec(
        'ping',
        ['-4', '-M', 'do', '-c', '2', '-i', '0.3', '-W', '2', '-s', '1400', '198.18.2.10'],
        { allowFail: true },
      );
      expect(r.stdout).toMatch(/2 received/);
    });

    it('TCP at workload MTU 1500 does not stall: the PTBs from BPF lower the path MTU (no MSS clamp, no MTU formula)', async () => {
      const [h1] = objs as [BpfObject];
      for (const w of workloads) await w.ip('-6', 'route', 'flush', 'cache');
      await lab.daemon({
        name: 'ebpf-iperf3',
        command: 'iperf3',
        args: ['-s', '-B', 'fd01:2::10'],
        netns: workloads[1]!,
        ready: async () =>
          (await workloads[1]!.exec('ss', ['-ltn'], { allowFail: true })).stdout.includes(':5201'),
      });
      const b1 = counters(h1);
      const r = await workloads[0]!.exec(
        'iperf3',
        ['-6', '-c', 'fd01:2::10', '-t', '2', '-J', '--connect-timeout', '3000'],
        {
          allowFail: true,
          timeoutMs: 30_000,
        },
      );
      const gbps =
        (JSON.parse(r.stdout) as { end: { sum_received?: { bits_per_second: number } } }).end.sum_received
          ?.bits_per_second ?? 0;
      expect(gbps / 1e9).toBeGreaterThan(0.05);
      const d = delta(b1, counters(h1));
      expect(d.ptb).toBeGreaterThanOrEqual(1);
      expect(d.drop_too_big ?? 0).toBe(0);
    });

    it("isolation: pings to the other host's underlay address and to a SID are dropped and counted on host 1; the workload ping beside them passes", async () => {
      const [h1] = objs as [BpfObject];
      const b1 = counters(h1);
      expect(await ping(workloads[0]!, 'fd01:2::10', 2)).toBe(2);
      expect(await ping(workloads[0]!, '2001:db8:12::2', 2)).toBe(0);
      expect(await ping(workloads[0]!, 'fc00:0:2::d6:1', 2)).toBe(0);
      expect(await ping(workloads[0]!, '198.18.1.1', 2)).toBe(0);
      const d = delta(b1, counters(h1));
      expect(d).toMatchObject({ drop_host_address: 4, drop_sid_block: 2 });
      expect(d.encap).toBeGreaterThanOrEqual(2);
    });
    it('a tcx link pinned on a bpffs keeps forwarding after the fd that made it is closed; removing the pin detaches it', async () => {
      const bpffs = `/run/segmesh-test/${objectName('bpffs')}`;
      ensureBpffs(bpffs);
      lab.onTeardown(async () => {
        await sh('umount', [bpffs], { allowFail: true });
        await sh('rmdir', [bpffs], { allowFail: true });
      });
      const pin = `${bpffs}/wl_in_link`;
      const fd = tcxLinks[0]!;
      pinFd(fd, pin);
      tcxLinks.splice(0, 1);
      closeFd(fd);
      expect(await ping(workloads[0]!, 'fd01:2::10')).toBe(3);
      expect(unpin(pin)).toBe(true);
      // No wl_in: the host's stack has no route to the remote workload's prefix.
      expect(await ping(workloads[0]!, 'fd01:2::10', 2)).toBe(0);
    });
  },
);

function populate(obj: BpfObject, n: number, wl0: number): void {
  const src = ip(`2001:db8:12::${n}`); // the outer source: this host's underlay address (trusted)
  obj.map(MAP.config).update(u32Key(0), configValue(CFG_VALIDATE | CFG_FIB | CFG_TRUSTSRC, `198.18.${n}.1`));
  obj
    .map(MAP.endpoints)
    .update(
      ifindexKey(wl0),
      endpointValue({ tenant: 1, addr6: ip(`fd01:${n}::10`), addr4: `198.18.${n}.10` }),
    );
  const pol = obj.map(MAP.policy);
  if (n === 1) {
    pol.update(
      policyKey(1, v6('fd01:2::'), 64),
      policyValue({ mode: 'encap', source: src, segments: [ip('fc00:0:2::e'), ip('fc00:0:2::d6:1')] }),
    );
    pol.update(
      policyKey(1, v4Mapped('198.18.2.0'), 120),
      policyValue({ mode: 'encap', source: src, segments: [ip('fc00:0:2::d4:1')] }),
    );
  } else {
    pol.update(
      policyKey(1, v6('fd01:1::'), 64),
      policyValue({ mode: 'encapRed', source: src, segments: [ip('fc00:0:1::e'), ip('fc00:0:1::d6:1')] }),
    );
    pol.update(
      policyKey(1, v4Mapped('198.18.1.0'), 120),
      policyValue({ mode: 'encap', source: src, segments: [ip('fc00:0:1::d4:1')], srh: true }),
    );
  }
  const sids = obj.map(MAP.sids);
  sids.update(sidKey(ip(`fc00:0:${n}::e`)), sidValue({ behavior: 'End' }));
  sids.update(sidKey(ip(`fc00:0:${n}::d6:1`)), sidValue({ behavior: 'End.DT6', table: 101, tenant: 1 }));
  sids.update(sidKey(ip(`fc00:0:${n}::d4:1`)), sidValue({ behavior: 'End.DT4', table: 101, tenant: 1 }));
  const blocked = obj.map(MAP.blocked);
  blocked.update(addrKey(v6('fc00::'), 32), reasonValue('drop_sid_block'));
  blocked.update(addrKey(v6('2001:db8::'), 32), reasonValue('drop_host_address'));
  blocked.update(addrKey(v4Mapped(`198.18.${n}.1`), 128), reasonValue('drop_host_address'));
  obj.map(MAP.trusted).update(addrKey(v6('2001:db8::'), 32), u32Key(1));
}
