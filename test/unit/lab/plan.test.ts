import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { membershipIssues } from '../../../src/agent/membership.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { agentConfigSchema, type TopologySpec } from '../../../src/config/schema.ts';
import { newClusterKey } from '../../../src/gossip/identity.ts';
import { LabTopologyError } from '../../../src/lab/errors.ts';
import { FrrConfigError, frrConfig } from '../../../src/lab/frr.ts';
import {
  AGENT_CONFIG_PATH,
  CLUSTER_KEY_PATH,
  GOBGPD_CONFIG_PATH,
  LABEL_LAB,
  LABEL_TEST_RUN,
  planLab,
  relocateTopology,
  workloadNetns,
} from '../../../src/lab/plan.ts';
import { parseIpv6, parsePrefix, prefixContains } from '../../../src/srv6/address.ts';

const root = new URL('../../../topologies/', import.meta.url);
function topology(name: string): { spec: TopologySpec; text: string } {
  const text = readFileSync(new URL(name, root), 'utf8');
  const parsed = parseConfig(text, name, ['Topology']);
  if (parsed.kind !== 'Topology') throw new Error('not a topology');
  return { spec: parsed.spec, text };
}
function edited(name: string, edit: (doc: Record<string, unknown>) => void): TopologySpec {
  const doc = parse(topology(name).text) as Record<string, unknown>;
  edit(doc);
  const parsed = parseConfig(JSON.stringify(doc), name, ['Topology']);
  if (parsed.kind !== 'Topology') throw new Error('not a topology');
  return parsed.spec;
}

describe('lab plan', () => {
  it.each(['two-hosts.yaml', 'edge.yaml', 'mobility.yaml'])(
    'lays out %s inside the allowed ranges',
    (name) => {
      const plan = planLab(topology(name).spec, { file: name });
      const fc00 = parsePrefix('fc00::/7');
      for (const n of plan.networks) {
        expect(prefixContains(fc00, parsePrefix(n.ipv6Subnet).address)).toBe(true);
        expect(n.ipv4Subnet).toMatch(/^198\.1[89]\.\d+\.0\/24$/);
      }
      for (const node of plan.nodes) {
        for (const ep of node.endpoints) {
          expect(prefixContains(fc00, parseIpv6(ep.ipv6))).toBe(true);
          expect(ep.ipv4).toMatch(/^198\.1[89]\./);
          const net = plan.networks.find((n) => n.name === ep.network)!;
          expect(prefixContains(parsePrefix(net.ipv6Subnet), parseIpv6(ep.ipv6))).toBe(true);
        }
      }
    },
  );

  it('names and labels everything by the prefix, with the extra labels of a test run', () => {
    const plan = planLab(topology('edge.yaml').spec, {
      file: 'edge.yaml',
      prefix: 'sm1234-edge',
      labels: { [LABEL_TEST_RUN]: 'sm1234' },
    });
    expect(plan.networks.map((n) => n.name)).toEqual(['sm1234-edge-underlay', 'sm1234-edge-ext-ext1']);
    expect(plan.nodes.map((n) => n.containerName)).toEqual([
      'sm1234-edge-host1',
      'sm1234-edge-host2',
      'sm1234-edge-host3',
      'sm1234-edge-edge1',
      'sm1234-edge-ext1',
    ]);
    for (const x of [...plan.networks, ...plan.nodes]) {
      expect(x.labels[LABEL_LAB]).toBe('sm1234-edge');
      expect(x.labels[LABEL_TEST_RUN]).toBe('sm1234');
    }
  });

  it('puts the edge router on the underlay and at ::fe of the external /64; the client routes through it', () => {
    const plan = planLab(topology('edge.yaml').spec, { file: 'edge.yaml' });
    const edge = plan.nodes.find((n) => n.node === 'edge1')!;
    expect(edge.endpoints.map((e) => [e.network, e.ipv6, e.ipv4])).toEqual([
      ['edge-underlay', 'fc00:99:20::fe', '198.18.20.13'],
      ['edge-ext-ext1', 'fc00:e0::fe', '198.18.21.254'],
    ]);
    const client = plan.nodes.find((n) => n.node === 'ext1')!;
    expect(client.script).toContain('ip -6 route replace default via fc00:e0::fe');
    const conf = edge.files['/etc/frr/frr.conf']!;
    expect(conf).toContain('neighbor fc00:99:20::11 remote-as 65101');
    expect(conf).toContain('neighbor fc00:99:20::13 remote-as 65103');
    expect(conf).toContain('nexthop vpn export fc00:99:20::fe');
    expect(conf).toContain('rt vpn both 65000:100');
    expect(conf).toContain('permit fc00:e0::/64');
    // Routes to every host locator over the underlay.
    for (const [name, h] of plan.hosts) {
      const underlay = plan.nodes.find((n) => n.node === name)!.endpoints[0]!.ipv6;
      expect(edge.script).toContain(`ip -6 route replace ${h.locator} via ${underlay}`);
    }
  });

  it('gives every host a valid AgentConfig and a gobgpd config peering with the edge', () => {
    const plan = planLab(topology('edge.yaml').spec, { file: 'edge.yaml' });
    const host2 = plan.nodes.find((n) => n.node === 'host2')!;
    const agent = agentConfigSchema.parse(parse(host2.files[AGENT_CONFIG_PATH]!));
    expect(agent.host).toEqual({ name: 'host2', underlay: { interface: 'eth0', address: 'fc00:99:20::12' } });
    expect(agent.locator).toBe(plan.hosts.get('host2')!.locator);
    expect(agent.bgp?.asn).toBe(65102);
    expect(agent.bgp?.peers.map((p) => [p.address, p.asn])).toEqual([['fc00:99:20::fe', 65000]]);
    expect(agent.gossip.bootstrap).toEqual(['/ip6/fc00:99:20::11/tcp/7946', '/ip6/fc00:99:20::13/tcp/7946']);
    const toml = host2.files[GOBGPD_CONFIG_PATH]!;
    expect(toml).toContain('as = 65102');
    expect(toml).toContain('neighbor-address = "fc00:99:20::fe"');
    expect(toml).toContain('afi-safi-name = "l3vpn-ipv6-unicast"');
    expect(host2.script).toContain('gobgpd -f /etc/segmesh/gobgpd.toml');
    expect(plan.hosts.get('host2')!.workloads).toEqual([
      {
        name: 'blue/web-2',
        netns: 'w-blue-web-2',
        tenant: 'blue',
        labels: { app: 'web' },
        address: expect.stringMatching(/^2001:db8:b100:/),
      },
    ]);
  });

  it('relocates a topology to its own subnets, keeping host parts', () => {
    const spec = relocateTopology(topology('edge.yaml').spec, 0xd33e);
    expect(spec.underlay).toEqual({
      subnet: 'fc00:98:d33e::/64',
      ipv4Subnet: `198.18.${32 + 4 * (0xd33e % 24)}.0/24`,
    });
    expect(spec.hosts.map((h) => h.underlay)).toEqual([
      'fc00:98:d33e::11',
      'fc00:98:d33e::12',
      'fc00:98:d33e::13',
    ]);
    const plan = planLab(topology('edge.yaml').spec, {
      file: 'edge.yaml',
      prefix: 'sm1234-edge',
      relocate: 0xd33e,
    });
    expect(plan.networks.map((n) => [n.ipv6Subnet, n.ipv4Subnet])).toEqual([
      ['fc00:98:d33e::/64', spec.underlay.ipv4Subnet],
      ['fc00:97:d33e::/64', `198.18.${33 + 4 * (0xd33e % 24)}.0/24`],
    ]);
    expect(plan.nodes.find((n) => n.node === 'edge1')!.files['/etc/frr/frr.conf']).toContain(
      'neighbor fc00:98:d33e::12 remote-as 65102',
    );
    // Never the subnets of the shipped topologies.
    for (const slot of [0, 1, 23, 24, 0xffff]) {
      const v4 = Number(relocateTopology(topology('edge.yaml').spec, slot).underlay.ipv4Subnet.split('.')[2]);
      expect(v4).toBeGreaterThanOrEqual(32);
      expect(v4 + 3).toBeLessThan(128);
    }
  });

  it('starts the agent instead of gobgpd alone when asked', () => {
    const plan = planLab(topology('edge.yaml').spec, { file: 'edge.yaml', hostRuntime: 'agent' });
    const host1 = plan.nodes.find((n) => n.node === 'host1')!;
    expect(host1.script).toContain('segmesh agent --config /etc/segmesh/agent.yaml');
    expect(host1.script).toContain('until [ -S /run/segmesh/agent.sock ]');
    expect(host1.script).not.toContain('gobgpd -f');
    const plain = planLab(topology('edge.yaml').spec, { file: 'edge.yaml' });
    expect(plain.nodes.find((n) => n.node === 'host1')!.script).not.toContain('segmesh agent');
  });

  it('gives agent-mode hosts CNI configurations, the cluster key, and the first host the policy and operator key', async () => {
    const operator = { publicKey: 'cHVibGlj', privateKey: new Uint8Array([1, 2, 3]) };
    const plan = planLab(topology('edge.yaml').spec, { file: 'edge.yaml', hostRuntime: 'agent', operator });
    const host = (n: string) => plan.nodes.find((x) => x.node === n)!;
    const conf = JSON.parse(host('host2').files['/etc/segmesh/cni/blue.json']!) as Record<string, unknown>;
    expect(conf).toMatchObject({ cniVersion: '1.0.0', type: 'segmesh-cni', tenant: 'blue' });
    expect(host('host1').files['/etc/segmesh/policy.yaml']).toMatch(
      /kind: FabricPolicy[\s\S]*routeTarget: 65000:100/,
    );
    expect(host('host1').files['/etc/segmesh/operator.key.b64']).toBe('AQID\n');
    expect(host('host2').files['/etc/segmesh/operator.key.b64']).toBeUndefined();
    expect(host('host2').files['/etc/segmesh/agent.yaml']).toContain('cHVibGlj');
    // Every host gets the lab's cluster key, and its config closes membership with it.
    const clusterKey = await newClusterKey();
    const closed = planLab(topology('edge.yaml').spec, {
      file: 'edge.yaml',
      hostRuntime: 'agent',
      operator,
      clusterKey,
    });
    for (const n of closed.nodes.filter((x) => x.role === 'host')) {
      expect(n.files[CLUSTER_KEY_PATH]).toBe(clusterKey);
      const agent = agentConfigSchema.parse(parse(n.files[AGENT_CONFIG_PATH]!));
      expect(agent.membership).toBe('closed');
      expect(agent.gossip.clusterKeyFile).toBe(CLUSTER_KEY_PATH);
      expect(membershipIssues(agent)).toEqual([]);
      expect(n.script).toContain(`chmod 600 ${CLUSTER_KEY_PATH}`);
    }
    // Lab nodes never route through Docker's gateway into the machine.
    for (const n of plan.nodes) expect(n.script).toContain('ip -6 route del default');
    // The model's addresses for the workloads (the agents must give the same).
    const w = plan.hosts.get('host1')!.workloads.find((x) => x.name === 'blue/web-1')!;
    expect(w.address).toMatch(/^2001:db8:b100:/);
    expect(plan.clients.get('ext1')).toBe('edge1');
  });

  it('makes workload namespace names from identities', () => {
    expect(workloadNetns('blue/web-1')).toBe('w-blue-web-1');
    expect(workloadNetns('ns/pod name')).toBe('w-ns-pod-name');
  });

  const rejects: [string, (d: Record<string, unknown>) => void, RegExp][] = [
    [
      'an underlay outside fc00::/7',
      (d) => {
        d.underlay = { subnet: '2001:db8:99::/64', ipv4Subnet: '198.18.10.0/24' };
      },
      /underlay\.subnet: .*fc00::\/7/,
    ],
    [
      'an IPv4 subnet outside 198.18.0.0/15',
      (d) => {
        d.underlay = { subnet: 'fc00:99:10::/64', ipv4Subnet: '172.17.0.0/24' };
      },
      /underlay\.ipv4Subnet: .*198\.18\.0\.0\/15/,
    ],
    [
      'a host outside the underlay subnet',
      (d) => {
        (d.hosts as { underlay: string }[])[1]!.underlay = 'fc00:98::12';
      },
      /hosts\[1\]\.underlay: .*outside the underlay subnet/,
    ],
    [
      "a host on Docker's gateway",
      (d) => {
        (d.hosts as { underlay: string }[])[0]!.underlay = 'fc00:99:10::1';
      },
      /hosts\[0\]\.underlay: .*gateway/,
    ],
  ];
  it.each(rejects)('rejects %s, naming the key', (_what, edit, message) => {
    const spec = edited('two-hosts.yaml', edit);
    expect(() => planLab(spec, { file: 'two-hosts.yaml' })).toThrow(LabTopologyError);
    expect(() => planLab(spec, { file: 'two-hosts.yaml' })).toThrow(message);
  });

  // Cross references are checked when the file is read (src/config/load.ts), before any plan.
  it('rejects two hosts on one address when reading the topology, naming the key', () => {
    expect(() =>
      edited('two-hosts.yaml', (d) => {
        (d.hosts as { underlay: string }[])[1]!.underlay = 'fc00:99:10::11';
      }),
    ).toThrow(/hosts\[1\]\.underlay: host host2 and host host1 share underlay address fc00:99:10::11/);
  });

  it('rejects an external client attached to something that is not an edge router', () => {
    expect(() =>
      edited('edge.yaml', (d) => {
        (d.nodes as { attach?: string }[])[1]!.attach = 'host1';
      }),
    ).toThrow(/nodes\[1\]\.attach: external-client ext1 attaches to host1, which is not an edge-router node/);
  });

  it('rejects an edge locator other than a /64 (FRR 8.4, quirk F1)', () => {
    const spec = edited('edge.yaml', (d) => {
      (d.nodes as { locator?: string }[])[0]!.locator = 'fc00:0:fe00::/48';
    });
    expect(() => planLab(spec, { file: 'edge.yaml' })).toThrow(/nodes\[0\]\.locator: .*\/64/);
  });

  it('rejects a bad lab name', () => {
    expect(() => planLab(topology('two-hosts.yaml').spec, { file: 'x', prefix: 'Bad_Name' })).toThrow(
      /lab name "Bad_Name"/,
    );
  });
});

describe('FRR container config', () => {
  const base = {
    hostname: 'edge1',
    asn: 65000,
    routerId: '198.18.20.13',
    neighbors: [{ address: 'fc00:99:20::11', asn: 65101 }],
    locator: 'fc00:0:fe00::/64',
    tenant: { rd: '65000:100', rt: '65000:100', exportPrefixes: ['fc00:e0::/64'] },
    nexthop: 'fc00:99:20::fe',
  };
  it('carries the 8.4 work-arounds', () => {
    const conf = frrConfig(base);
    expect(conf).toContain('no bgp ebgp-requires-policy'); // F9
    expect(conf).toContain('redistribute connected route-map SEGMESH-EXPORT'); // F4
    expect(conf).toContain('sid vpn export auto');
    expect(conf).toContain('nexthop vpn export fc00:99:20::fe');
    expect(conf).toMatch(/address-family ipv6 vpn\n {2}neighbor fc00:99:20::11 activate/);
  });
  it('refuses a locator other than a /64', () => {
    expect(() => frrConfig({ ...base, locator: 'fc00:0:fe00::/48' })).toThrow(FrrConfigError);
  });
});
