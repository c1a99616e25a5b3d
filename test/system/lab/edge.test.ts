/**
 * `topologies/edge.yaml` on the Docker engine: the FRR 8.4 edge container peers over eBGP with the
 * gobgpd of every host, its VPN route (the external client's /64 with its SRv6 SID) reaches them, and
 * a host that encapsulates toward that SID reaches the external client through FRR's End.DT6.
 * Where this machine's kernel lacks seg6 routes, the edge runs as a VM node (src/lab/vm-edge.ts, with
 * a VRF: zebra installs the SID); the host builds its encapsulation itself (a raw socket), so the
 * suite needs no seg6 in this kernel.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { labDown, labUp, planFromFile, type RunningLab } from '../../../src/lab/lab.ts';
import { runPrefix, sweep, systemSuite, waitFor } from '../../harness/index.ts';
import { echo6, ipv6, NH_ICMPV6 } from '../../harness/packet.ts';
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

  // The host builds the encapsulation itself (H.Encaps with one segment: IPv6 in IPv6 toward the SID,
  // no SRH), sent from a raw socket: no seg6 route or tunnel device needed on this kernel.
  it("a host reaches the external client only through FRR's End.DT6 SID", async () => {
    const sid = lab!.edgeSids.get('edge1')!;
    const src = underlay('host1');
    const dst = client().ipv6;
    // Control: without the encapsulation the host has no path (lab nodes have no default route).
    const direct = await lab!.exec('host1', ['ping', '-6', '-c', '1', '-W', '1', dst]);
    expect(direct.exitCode).not.toBe(0);
    // The SID is reached over the underlay (gobgpd installs no kernel routes).
    await lab!.run('host1', [
      'ip',
      '-6',
      'route',
      'replace',
      `${sid}/128`,
      'via',
      underlay('edge1'),
      'dev',
      'eth0',
    ]);
    const inner = ipv6({ src, dst, nextHeader: NH_ICMPV6 }, echo6(src, dst, 0x5e6, 1));
    const send = () =>
      lab!.run('host1', [
        'perl',
        '-MSocket=AF_INET6,SOCK_RAW,inet_pton,pack_sockaddr_in6',
        '-e',
        // Protocol 41: the kernel adds the outer header (this host to the SID, next header IPv6).
        'socket(my $s, AF_INET6, SOCK_RAW, 41) or die "socket: $!\\n"; ' +
          'send($s, pack("H*", $ARGV[1]), 0, pack_sockaddr_in6(0, inet_pton(AF_INET6, $ARGV[0]))) or die "send: $!\\n"',
        sid,
        Buffer.from(inner).toString('hex'),
      ]);
    // ext1 sees the inner echo request (FRR decapsulated it by End.DT6 in the tenant's VRF and
    // forwarded it): captured there, sent again every half second until the capture has it.
    let captured = false;
    const capture = lab!
      .exec('ext1', [
        'timeout',
        '30',
        'tcpdump',
        '-n',
        '-l',
        '-i',
        'eth0',
        '-c',
        '1',
        `icmp6 and src host ${src}`,
      ])
      .finally(() => {
        captured = true;
      });
    for (let i = 0; i < 50 && !captured; i++) {
      await send();
      await new Promise((r) => setTimeout(r, 500));
    }
    const seen = await capture;
    expect(seen.exitCode, seen.output).toBe(0);
    expect(seen.stdout).toMatch(new RegExp(`IP6 ${src} > ${dst}: ICMP6, echo request, id ${0x5e6}, seq 1`));
    // The external client's own view: its only way out is the edge router.
    expect(await lab!.run('ext1', ['ip', '-6', 'route', 'show', 'default'])).toContain(`via ${edgeExt()}`);
  });
});
