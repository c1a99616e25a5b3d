/**
 * `topologies/two-hosts.yaml` on the Docker engine: the containers (named and labelled by the run),
 * the lab network (every address inside fc00::/7 and 198.18.0.0/15), gobgpd and the project's CLI in
 * the hosts, SRv6 usable without privileged mode (seg6 routes where the kernel has them, else the eBPF
 * programs the agents take there, each container on its own bpffs), and `down` removing everything.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';

import { detectKernelFeatures } from '../../../src/dataplane/features.ts';

import {
  checkLabKernel,
  labDocker,
  labDown,
  labStatus,
  labUp,
  planFromFile,
  type RunningLab,
} from '../../../src/lab/lab.ts';
import { ALLOWED_IPV4, ipv4ToNumber, LABEL_TEST_RUN } from '../../../src/lab/plan.ts';
import { parseIpv6, parsePrefix, prefixContains } from '../../../src/srv6/address.ts';
import { runPrefix, sweep, systemSuite } from '../../harness/index.ts';
import { labImage, progress, runLabels, runSlot } from './docker.ts';

const FILE = new URL('../../../topologies/two-hosts.yaml', import.meta.url).pathname;
const MOBILITY = new URL('../../../topologies/mobility.yaml', import.meta.url).pathname;
const fc00 = parsePrefix('fc00::/7');
/** The kernel has seg6 routes (as the lab and its agents find it): agents take the kernel backend; else eBPF. */
const kernel = await detectKernelFeatures();
const seg6 = kernel.seg6 && kernel.seg6local;
const PIN_DIR = '/sys/fs/bpf/segmesh';
/** Loads the agents' BPF object in a host container as the eBPF backend does (maps pinned in PIN_DIR). */
const LOAD_EBPF = [
  '/opt/segmesh/node_modules/node/bin/node',
  '--input-type=module',
  '-e',
  [
    "const { BpfObject, ensureBpffs } = await import('/opt/segmesh/dist/dataplane/ebpf/libbpf.js');",
    "const { ebpfObjectPath } = await import('/opt/segmesh/dist/dataplane/ebpf/backend.js');",
    `ensureBpffs('${PIN_DIR}');`,
    `const o = BpfObject.load(ebpfObjectPath(), { pinMapsDir: '${PIN_DIR}', programs: ['wl_in', 'ul_in'] });`,
    "o.close(); console.log('eBPF programs loaded, maps pinned');",
  ].join('\n'),
];

function allowedIpv4(a: string): boolean {
  const n = ipv4ToNumber(a);
  return n >= ALLOWED_IPV4.base && n < ALLOWED_IPV4.base + 2 ** (32 - ALLOWED_IPV4.length);
}

systemSuite('lab: two-hosts on Docker', { tools: ['dockerd', 'docker', 'debootstrap'] }, () => {
  let lab: RunningLab | undefined;
  const prefix = `${runPrefix()}-two`;

  beforeAll(async () => {
    await sweep(); // containers and networks of dead runs (the hook of ./docker.ts)
    const image = await labImage();
    const plan = await planFromFile(FILE, { prefix, labels: runLabels(), relocate: runSlot() });
    lab = await labUp(plan, { image, progress });
  }, 30 * 60_000);

  afterAll(async () => {
    await labDown(prefix, progress);
  });

  it('runs one container per host, named and labelled by the run', async () => {
    const docker = await labDocker();
    const found = await docker.listContainers({ filters: { label: [`${LABEL_TEST_RUN}=${runPrefix()}`] } });
    const names = found.map((c) => c.Names[0]?.slice(1)).sort();
    expect(names).toEqual([`${prefix}-host1`, `${prefix}-host2`]);
    for (const c of found) {
      expect(c.State).toBe('running');
      const info = await docker.getContainer(c.Id).inspect();
      expect(info.HostConfig.Privileged).toBe(false);
      expect(info.HostConfig.CapAdd).toEqual(expect.arrayContaining(['NET_ADMIN', 'SYS_ADMIN', 'NET_RAW']));
    }
  });

  it('uses only fc00::/7 and 198.18.0.0/15 on its network and in its containers', async () => {
    const docker = await labDocker();
    const nets = await docker.listNetworks({ filters: { label: [`${LABEL_TEST_RUN}=${runPrefix()}`] } });
    expect(nets.map((n) => n.Name)).toEqual([`${prefix}-underlay`]);
    const net = await docker.getNetwork(nets[0]!.Id).inspect();
    expect(net.EnableIPv6).toBe(true);
    for (const cfg of (net.IPAM?.Config ?? []) as { Subnet: string; Gateway?: string }[]) {
      const [addr] = cfg.Subnet.split('/');
      if (cfg.Subnet.includes(':')) expect(prefixContains(fc00, parseIpv6(addr!))).toBe(true);
      else expect(allowedIpv4(addr!)).toBe(true);
    }
    for (const host of ['host1', 'host2']) {
      const addrs = JSON.parse(await lab!.run(host, ['ip', '-j', 'addr', 'show'])) as {
        ifname: string;
        addr_info: { family: string; local: string; scope: string }[];
      }[];
      const global = addrs.flatMap((l) => l.addr_info.filter((a) => a.scope === 'global'));
      expect(global.length).toBeGreaterThanOrEqual(2);
      for (const a of global) {
        if (a.family === 'inet6') expect(prefixContains(fc00, parseIpv6(a.local)), a.local).toBe(true);
        else expect(allowedIpv4(a.local), a.local).toBe(true);
      }
    }
  });

  it('runs gobgpd and the project CLI in each host, with the planned files', async () => {
    for (const host of ['host1', 'host2']) {
      expect((await lab!.exec(host, ['pidof', 'gobgpd'])).exitCode).toBe(0);
      expect(await lab!.run(host, ['segmesh', 'version'])).toMatch(/^segmesh +\S+ \(node 24\./m);
      expect(await lab!.run(host, ['cat', '/etc/segmesh/agent.yaml'])).toContain(`name: ${host}`);
    }
    const status = await labStatus(prefix);
    expect(status.nodes.map((n) => [n.node, n.state, n.daemons.gobgpd])).toEqual([
      ['host1', 'running', true],
      ['host2', 'running', true],
    ]);
  });

  it('reaches the other host over the underlay and can program SRv6 without privileged mode', async () => {
    const host2 = lab!.node('host2').endpoints[0]!.ipv6;
    const r = await lab!.exec('host1', ['ping', '-6', '-c', '1', '-W', '2', host2]);
    expect(r.exitCode, r.output).toBe(0);
    // Workloads are namespaces inside their host's container.
    expect(await lab!.run('host1', ['ip', 'netns', 'list'])).toContain('w-blue-web-1');
    if (!seg6) {
      // The data plane agents take on this kernel: the eBPF programs, loaded with their maps pinned on
      // a bpffs each container mounts for itself (host2 does not see host1's pins).
      expect(await lab!.run('host2', ['sh', '-c', `ls ${PIN_DIR} 2>/dev/null || true`])).toBe('');
      progress(`host1: ${(await lab!.run('host1', LOAD_EBPF)).trim()}`);
      expect(await lab!.run('host1', ['ls', PIN_DIR])).toMatch(/^sm_/m);
      expect(await lab!.run('host2', ['sh', '-c', `ls ${PIN_DIR} 2>/dev/null || true`])).toBe('');
      await lab!.run('host2', LOAD_EBPF);
      const dev = async (h: string) => (await lab!.run(h, ['stat', '-c', '%d', PIN_DIR])).trim();
      expect(await dev('host1')).not.toBe(await dev('host2'));
      return;
    }
    expect((await lab!.run('host1', ['sysctl', '-n', 'net.ipv6.conf.eth0.seg6_enabled'])).trim()).toBe('1');
    await lab!.run('host1', [
      'ip',
      '-6',
      'route',
      'add',
      'fc00:0:ffff::1/128',
      'encap',
      'seg6',
      'mode',
      'encap',
      'segs',
      host2,
      'dev',
      'eth0',
    ]);
    await lab!.run('host2', [
      'ip',
      '-6',
      'route',
      'add',
      'fc00:0:ffff::2/128',
      'encap',
      'seg6local',
      'action',
      'End.DT6',
      'table',
      '254',
      'dev',
      'eth0',
    ]);
  });

  it('refuses an FRR edge router in a container where the kernel lacks seg6 routes, naming it, before starting anything (the VM edge, the default there, passes)', async () => {
    // Control: this topology's hosts with agents pass, on the backend the agents will take.
    const agents = await planFromFile(FILE, { prefix: `${prefix}-k`, hostRuntime: 'agent' });
    expect((await checkLabKernel(agents)).agents?.backend).toBe(seg6 ? 'kernel' : 'ebpf');
    const edgePrefix = `${prefix}-e`;
    const planned = await planFromFile(MOBILITY, {
      prefix: edgePrefix,
      labels: runLabels(),
      relocate: runSlot() + 12,
      hostRuntime: 'agent',
    });
    // runtime auto: FRR in the VM where this kernel lacks seg6, in a container where it has it.
    await expect(checkLabKernel(planned)).resolves.toMatchObject({
      agents: { backend: seg6 ? 'kernel' : 'ebpf' },
    });
    if (seg6) return;
    const edge = {
      ...planned,
      edges: new Map([...planned.edges].map(([k, e]) => [k, { ...e, runtime: 'container' as const }])),
    };
    await expect(checkLabKernel(edge)).rejects.toThrow(
      /edge router edge1 \(FRR\) needs seg6 and seg6local routes.*CONFIG_IPV6_SEG6_LWTUNNEL/s,
    );
    await expect(labUp(edge, { image: await labImage(), progress })).rejects.toThrow(/edge router edge1/);
    expect((await labStatus(edgePrefix)).nodes).toEqual([]);
    expect((await labStatus(edgePrefix)).networks).toEqual([]);
  });

  it('down removes every container and network of the lab', async () => {
    const report = await labDown(prefix, progress);
    expect(report.containers.sort()).toEqual([`${prefix}-host1`, `${prefix}-host2`]);
    expect(report.networks).toEqual([`${prefix}-underlay`]);
    const docker = await labDocker();
    expect(
      await docker.listContainers({ all: true, filters: { label: [`${LABEL_TEST_RUN}=${runPrefix()}`] } }),
    ).toEqual([]);
    expect(await docker.listNetworks({ filters: { label: [`${LABEL_TEST_RUN}=${runPrefix()}`] } })).toEqual(
      [],
    );
    expect((await labStatus(prefix)).nodes).toEqual([]);
  });
});
