/**
 * The edge router as a VM node (src/lab/vm-edge.ts): FRR 8.4 on Debian's kernel in qemu, attached to
 * the lab's Docker networks through taps on their bridges. Its tenant is a real VRF: FRR allocates its
 * SID and zebra installs End.DT6 itself. Runs on any host kernel (the VM brings its own seg6).
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { labDocker, labDown, labStatus, labUp, planFromFile, type RunningLab } from '../../../src/lab/lab.ts';
import { dockerBridge, vmNodeRecord } from '../../../src/lab/vm-edge.ts';
import { processStartTime } from '../../../src/vm/service.ts';
import { runPrefix, sh, sweep, systemSuite, waitFor } from '../../harness/index.ts';
import { labImage, progress, runLabels, runSlot, sweepDockerRuns } from './docker.ts';

const FILE = new URL('../../fixtures/topologies/vm-edge.yaml', import.meta.url).pathname;

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
