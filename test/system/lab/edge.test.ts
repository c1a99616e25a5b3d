/**
 * `topologies/edge.yaml` on the Docker engine: the FRR 8.4 edge container peers over eBGP with the
 * gobgpd of every host, its VPN route (the external client's /64 with its SRv6 SID) reaches them, and
 * a host that encapsulates toward that SID reaches the external client through FRR's End.DT6.
 * Where this machine's kernel lacks seg6 routes, the edge runs as a VM node (src/lab/vm-edge.ts, with
 * a VRF: zebra installs the SID); the host-side encapsulation then needs the host kernel's seg6.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { labDown, labUp, planFromFile, type RunningLab } from '../../../src/lab/lab.ts';
import { kernelIt, runPrefix, sweep, systemSuite, waitFor } from '../../harness/index.ts';
import { labImage, progress, runLabels, runSlot } from './docker.ts';

const FILE = new URL('../../../topologies/edge.yaml', import.meta.url).pathname;
const HOSTS = ['host1', 'host2', 'host3'];

systemSuite('lab: edge topology with FRR on Docker', { tools: ['dockerd', 'docker', 'debootstrap'] }, () => {
  let lab: RunningLab | undefined;
  const prefix = `${runPrefix()}-edge`;

  // Addresses as laid out for this run (relocated to the run's own subnets).
  const underlay = (node: string) => lab!.node(node).endpoints[0]!.ipv6;
  const client = () => lab!.node('ext1').endpoints[0]!;
  const extNet = () => lab!.plan.networks.find((n) => n.key === 'ext-ext1')!.ipv6Subnet;
  const edgeExt = () => lab!.node('edge1').endpoints[1]!.ipv6;

  beforeAll(async () => {
    await sweep();
    const image = await labImage();
    const plan = await planFromFile(FILE, { prefix, labels: runLabels(), relocate: runSlot() });
    lab = await labUp(plan, { image, progress });
  }, 30 * 60_000);

  afterAll(async () => {
    await labDown(prefix, progress);
  });

  it('FRR is Established with the gobgpd of every host', async () => {
    await waitFor(
      async () => {
        const j = JSON.parse(await lab!.run('edge1', ['vtysh', '-c', 'show bgp neighbors json'])) as Record<
          string,
          { bgpState?: string }
        >;
        return HOSTS.every((h) => j[underlay(h)]?.bgpState === 'Established');
      },
      { timeoutMs: 30_000, what: 'FRR sessions with host1..3 Established' },
    );
  });

  it("every host's gobgpd learns the external /64 with FRR's SRv6 SID", async () => {
    const sid = lab!.edgeSids.get('edge1');
    expect(sid).toBe('fc00:0:fe00:0:100::');
    for (const host of HOSTS) {
      let rib = '';
      await waitFor(
        async () => {
          rib = await lab!.run(host, ['gobgp', '-p', '50051', 'global', 'rib', '-a', 'vpnv6']);
          return rib.includes(extNet());
        },
        { timeoutMs: 20_000, what: `${host}: VPNv6 route ${extNet()} from FRR` },
      );
      // FRR transposes (F2): SID with the function zeroed, function in the label (0x0100 << 4).
      expect(rib).toMatch(new RegExp(`65000:100:${extNet()}\\s+\\[4096\\]`));
      expect(rib).toContain('SID: fc00:0:fe00::');
    }
    expect(await lab!.run('edge1', ['ip', '-6', 'route', 'show', `${sid}/128`])).toContain('End.DT6');
  });

  // The host containers encapsulate with this machine's kernel.
  kernelIt(
    ['seg6', 'seg6local'],
    "a host reaches the external client only through FRR's End.DT6 SID",
    async () => {
      const ping = () => lab!.exec('host1', ['ping', '-6', '-c', '1', '-W', '1', client().ipv6]);
      // Control: without the SRv6 route the host has no path (lab nodes have no default route).
      expect((await ping()).exitCode).not.toBe(0);
      const sid = lab!.edgeSids.get('edge1')!;
      await lab!.run('host1', [
        'ip',
        '-6',
        'route',
        'replace',
        extNet(),
        'encap',
        'seg6',
        'mode',
        'encap',
        'segs',
        sid,
        'dev',
        'eth0',
      ]);
      const r = await ping();
      expect(r.exitCode, r.output).toBe(0);
      // The external client's own view: its only way out is the edge router.
      expect(await lab!.run('ext1', ['ip', '-6', 'route', 'show', 'default'])).toContain(`via ${edgeExt()}`);
    },
  );
});
