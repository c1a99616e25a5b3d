/**
 * The edge router as a VM node (src/lab/vm-edge.ts): FRR 8.4 on Debian's kernel in qemu, attached to
 * the lab's Docker networks through taps on their bridges. Its tenant is a real VRF: FRR allocates its
 * SID and zebra installs End.DT6 itself. Runs on any host kernel (the VM brings its own seg6).
 */
import { existsSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { labExecCommand } from '../../../src/lab/commands.ts';
import { labDocker, labDown, labStatus, labUp, planFromFile, type RunningLab } from '../../../src/lab/lab.ts';
import {
  dockerBridge,
  startVmEdge,
  VM_STATE_DIR,
  vmNodeRecord,
  vmTapName,
} from '../../../src/lab/vm-edge.ts';
import { processStartTime } from '../../../src/vm/service.ts';
import { tapMac } from '../../../src/vm/vm.ts';
import {
  createLab,
  type Lab,
  objectName,
  runPrefix,
  sh,
  sweep,
  systemSuite,
  waitFor,
} from '../../harness/index.ts';
import { labImage, progress, runLabels, runSlot, sweepDockerRuns } from './docker.ts';

const FILE = new URL('../../fixtures/topologies/vm-edge.yaml', import.meta.url).pathname;

/**
 * Sends one IPv6 + SRH (segments left 0) + inner IPv6 ICMPv6 echo request as a raw Ethernet frame
 * (python3's AF_PACKET: this machine's kernel cannot build seg6 packets itself). argv: interface,
 * destination MAC, outer source, SID, inner source, inner destination.
 */
const SEND_SRV6 = `
import socket, struct, sys
dev, mac, osrc, sid, isrc, idst = sys.argv[1:7]
a = lambda x: socket.inet_pton(socket.AF_INET6, x)
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
body = struct.pack('!HH', 0x5e6d, 1) + b'segmesh-vm-edge'
icmp = struct.pack('!BBH', 128, 0, 0) + body
icmp = icmp[:2] + struct.pack('!H', csum(a(isrc) + a(idst) + struct.pack('!I3xB', len(icmp), 58) + icmp)) + icmp[4:]
inner = struct.pack('!IHBB', 6 << 28, len(icmp), 58, 64) + a(isrc) + a(idst) + icmp
srh = struct.pack('!BBBBBBH', 41, 2, 4, 0, 0, 0, 0) + a(sid)
outer = struct.pack('!IHBB', 6 << 28, len(srh) + len(inner), 43, 64) + a(osrc) + a(sid)
eth = bytes.fromhex(mac.replace(':', '')) + bytes.fromhex('020000005e6d') + struct.pack('!H', 0x86dd)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
s.send(eth + outer + srh + inner)
`;

const linkMaster = async (link: string) => {
  const r = await sh('ip', ['-o', 'link', 'show', link], { allowFail: true });
  return r.code === 0 ? (/ master (\S+)/.exec(r.stdout)?.[1] ?? '(none)') : undefined;
};

systemSuite(
  'lab: the FRR edge router as a VM node',
  { tools: ['dockerd', 'docker', 'qemu-system-x86_64', 'mmdebstrap'] },
  () => {
    let lab: RunningLab | undefined;
    let upMs = 0;
    const prefix = `${runPrefix()}-vme`;
    const underlay = (node: string) => lab!.node(node).endpoints[0]!.ipv6;
    const extNet = () => lab!.plan.networks.find((n) => n.key === 'ext-ext1')!.ipv6Subnet;
    const edgeExt = () => lab!.node('edge1').endpoints[1]!.ipv6;

    beforeAll(async () => {
      await sweep();
      const image = await labImage();
      const plan = await planFromFile(FILE, { prefix, labels: runLabels(), relocate: runSlot() });
      const t0 = Date.now();
      lab = await labUp(plan, { image, progress });
      upMs = Date.now() - t0;
      progress(`lab ${prefix} with the VM edge up in ${(upMs / 1000).toFixed(1)} s`);
    }, 10 * 60_000);

    afterAll(async () => {
      await labDown(prefix, progress);
    });

    it("runs in the VM on Debian's kernel, its taps enslaved to the lab networks' bridges", async () => {
      const rec = vmNodeRecord(prefix, 'edge1');
      expect(rec, 'a state record for edge1').toBeDefined();
      expect(processStartTime(rec!.vm.pid)).toBe(rec!.vm.startTime);
      expect((await lab!.run('edge1', ['uname', '-r'])).trim()).toBe(rec!.vm.kernelVersion);
      const docker = await labDocker();
      const node = lab!.node('edge1');
      expect(rec!.vm.taps).toHaveLength(node.endpoints.length);
      for (const [i, ep] of node.endpoints.entries())
        expect(await linkMaster(rec!.vm.taps[i]!)).toBe(await dockerBridge(docker, ep.network));
      // Commands come back with their status and output (the control channel).
      const r = await lab!.exec('edge1', ['sh', '-c', 'echo out; echo err >&2; exit 3']);
      expect(r).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
      const status = await labStatus(prefix);
      expect(status.nodes.find((n) => n.node === 'edge1')).toMatchObject({
        role: 'edge-router',
        state: 'running',
      });
    });

    it('is reachable across the taps: from the host on the underlay, from the client in the VRF', async () => {
      const ping = (node: string, to: string) => lab!.exec(node, ['ping', '-6', '-c', '2', '-W', '3', to]);
      const a = await ping('host1', underlay('edge1'));
      expect(a.exitCode, a.output).toBe(0);
      const b = await ping('ext1', edgeExt());
      expect(b.exitCode, b.output).toBe(0);
      // Negative control: an address of the same underlay that nobody holds.
      const none = underlay('edge1').replace(/::fe$/, '::fd');
      expect((await lab!.exec('host1', ['ping', '-6', '-c', '1', '-W', '1', none])).exitCode).not.toBe(0);
      // The external network is the VRF's: the VM's main table has no route to it.
      const main = await lab!.run('edge1', ['ip', '-6', 'route', 'show', 'table', 'main', extNet()]);
      expect(main.trim()).toBe('');
      expect(await lab!.run('edge1', ['ip', '-6', 'route', 'show', 'vrf', 'vrf100', extNet()])).toContain(
        'ext0',
      );
    });

    it("is Established with the host's gobgpd, which learns the external /64 with the SID zebra installed as End.DT6", async () => {
      await waitFor(
        async () => {
          const j = JSON.parse(await lab!.run('edge1', ['vtysh', '-c', 'show bgp neighbors json'])) as Record<
            string,
            { bgpState?: string }
          >;
          return j[underlay('host1')]?.bgpState === 'Established';
        },
        { timeoutMs: 60_000, what: 'FRR (in the VM) Established with host1' },
      );
      const sid = lab!.edgeSids.get('edge1');
      expect(sid).toBe('fc00:0:fe00:0:100::');
      // zebra's own route (proto bgp), into the VRF's table: no hand-installed SID in the VM.
      const route = await lab!.run('edge1', ['ip', '-6', 'route', 'show', `${sid}/128`]);
      expect(route).toMatch(/encap seg6local action End\.DT6 table 1100 .*dev vrf100 proto bgp/);
      let rib = '';
      await waitFor(
        async () => {
          rib = await lab!.run('host1', ['gobgp', '-p', '50051', 'global', 'rib', '-a', 'vpnv6']);
          return rib.includes(extNet());
        },
        { timeoutMs: 30_000, what: `host1: VPNv6 route ${extNet()} from FRR` },
      );
      expect(rib).toMatch(new RegExp(`65000:100:${extNet()}\\s+\\[4096\\]`));
      expect(rib).toContain('SID: fc00:0:fe00::');
    });

    it("decapsulates SRv6 toward FRR's SID with zebra's End.DT6 into the VRF, on to the external client", async () => {
      const ns: Lab = createLab();
      try {
        // A namespace of ours on the underlay network (a veth into its bridge) sends the packets.
        const src = await ns.netns('vsrc');
        const veth = objectName('vsrc0');
        const docker = await labDocker();
        const bridge = await dockerBridge(docker, lab!.node('edge1').endpoints[0]!.network);
        await sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', src.name]);
        ns.onTeardown(async () => {
          await sh('ip', ['link', 'del', veth], { allowFail: true });
        });
        await sh('ip', ['link', 'set', veth, 'master', bridge, 'up']);
        await sh('ip', ['-n', src.name, 'link', 'set', 'eth0', 'up']);
        const vmMac = tapMac(vmNodeRecord(prefix, 'edge1')!.vm.taps[0]!);
        const outerSrc = underlay('edge1').replace(/::fe$/, '::99');
        const client = lab!.node('ext1').endpoints[0]!.ipv6;
        const echos = async () => {
          const m = /^Icmp6InEchos\s+(\d+)$/m.exec(await lab!.run('ext1', ['cat', '/proc/net/snmp6']));
          return Number(m?.[1]);
        };
        const send = (sid: string) =>
          src.exec('python3', ['-c', SEND_SRV6, 'eth0', vmMac, outerSrc, sid, '2001:db8:b100::99', client]);
        const sid = lab!.edgeSids.get('edge1')!;
        // Control: the same packets toward an address of FRR's locator that is no SID, sent first on the
        // same path: had they been delivered, ext1 would count 6, not 3.
        const before = await echos();
        for (let i = 0; i < 3; i++) {
          const r = await send(sid.replace(/:100::$/, ':200::'));
          expect(r.code, r.stderr).toBe(0);
        }
        for (let i = 0; i < 3; i++) await send(sid);
        await waitFor(async () => (await echos()) >= before + 3, {
          timeoutMs: 10_000,
          what: `ext1 receives the 3 echo requests decapsulated by ${sid}`,
        });
        expect(await echos()).toBe(before + 3);
      } finally {
        await ns.teardown();
      }
    });

    it('fails within its time limit naming the step, and leaves no VM or tap behind', async () => {
      // The same edge as a second lab's (its own taps and state), given 0.5 s. The boot gets at least
      // 5 s: an idle machine is ready in time and the lab then fails at FRR's start, a loaded one at
      // the boot; either way the step is named, with the guest's console or output.
      const other = { ...lab!.plan, prefix: `${prefix}-f` };
      const docker = await labDocker();
      const t0 = Date.now();
      await expect(
        startVmEdge(docker, other, lab!.node('edge1'), { progress, timeoutMs: 500 }),
      ).rejects.toThrow(
        /(no ready line within \d+(\.\d+)? s[\s\S]*console|FRR did not start in time[\s\S]*guest output)/,
      );
      expect(Date.now() - t0).toBeLessThan(30_000);
      expect(vmNodeRecord(other.prefix, 'edge1')).toBeUndefined();
      for (const i of [0, 1]) expect(await linkMaster(vmTapName(other.prefix, 'edge1', i))).toBeUndefined();
      rmSync(`${VM_STATE_DIR}/${other.prefix}--edge1`, { recursive: true, force: true }); // its logs, kept for a reader
      // Positive control: the lab's own edge still answers, also through `segmesh lab exec`.
      expect(await labExecCommand('edge1', ['true'], { lab: prefix })).toBe(0);
      expect(await labExecCommand('edge1', ['false'], { lab: prefix })).toBe(1);
    });

    it('is stopped, its taps removed, by the sweep of a dead run', async () => {
      const rec = vmNodeRecord(prefix, 'edge1')!;
      // This run counts as dead for the sweep: what a killed run leaves is removed the same way.
      const swept = await sweepDockerRuns((p) => p === runPrefix());
      expect(swept).toContain(runPrefix());
      expect(processStartTime(rec.vm.pid)).toBeUndefined();
      for (const t of rec.vm.taps) expect(await linkMaster(t)).toBeUndefined();
      expect(existsSync(rec.vm.logDir)).toBe(false);
      expect(vmNodeRecord(prefix, 'edge1')).toBeUndefined();
    });
  },
);
