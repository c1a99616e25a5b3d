/**
 * A topology (`kind: Topology`) laid out as Docker networks and containers: names, labels, addresses,
 * the files each node gets and the script it starts with. Pure: no engine, no file system.
 *
 * Layout (see docs/lab.md):
 * - one underlay network `<prefix>-underlay` with the topology's `underlay.subnet` (fc00::/7) and
 *   `underlay.ipv4Subnet` (198.18.0.0/15); hosts and edge routers on it at their `underlay` address,
 *   IPv4 `.10`, `.11`, ... in file order (hosts, then edge routers; the IPv4 address is the router id);
 * - per external client a network `<prefix>-ext-<client>`: the client's address's /64, the edge router
 *   at `::fe` of it, IPv4 the /24 after the underlay's (one more per client);
 * - hosts run gobgpd (peering with every edge router) and, once it exists, the agent (`hostCommand`);
 *   workloads are namespaces inside their host's container;
 * - edge routers run FRR 8.4 for one tenant; external clients route through their edge router.
 */
import { stringify } from 'yaml';
import { fabricInputFromSpec } from '../config/load.ts';
import { agentConfigSchema, type TopologySpec } from '../config/schema.ts';
import {
  formatIpv6,
  formatPrefix,
  type Ipv6Prefix,
  makePrefix,
  parseIpv6,
  parsePrefix,
  prefixContains,
} from '../srv6/address.ts';
import { buildFabricView, type FabricView } from '../srv6/fabric.ts';
import { LabTopologyError } from './errors.ts';
import { frrConfig, frrDaemons } from './frr.ts';

export const LABEL_LAB = 'segmesh.lab';
export const LABEL_NODE = 'segmesh.lab.node';
export const LABEL_ROLE = 'segmesh.lab.role';
export const LABEL_TOPOLOGY = 'segmesh.lab.topology';
export const LABEL_TEST_RUN = 'segmesh.test.run';

/** The address ranges lab networks may use. */
export const ALLOWED_IPV6 = parsePrefix('fc00::/7');
export const ALLOWED_IPV4 = { base: ipv4ToNumber('198.18.0.0'), length: 15 } as const;

/** First ASN of hosts: host i (0-based, file order) speaks BGP as 65101 + i. */
export const HOST_ASN_BASE = 65101;
export const AGENT_CONFIG_PATH = '/etc/segmesh/agent.yaml';
export const GOBGPD_CONFIG_PATH = '/etc/segmesh/gobgpd.toml';
export const GOBGPD_API = '127.0.0.1:50051';
export const READY_FILE = '/run/segmesh-lab/ready';
/** Agent-mode files: the fabric policy and the operator key (first host only), CNI configurations. */
export const POLICY_PATH = '/etc/segmesh/policy.yaml';
export const OPERATOR_KEY_PATH = '/etc/segmesh/operator.key';
/** Agent-mode files: the lab's cluster key (every host; gossip membership is closed by it). */
export const CLUSTER_KEY_PATH = '/etc/segmesh/cluster.key';
export const CNI_CONF_DIR = '/etc/segmesh/cni';

export type NodeRole = 'host' | 'edge-router' | 'external-client';

export interface NetworkPlan {
  /** Key inside the plan: `underlay` or `ext-<client>`. */
  readonly key: string;
  /** Docker network name. */
  readonly name: string;
  readonly ipv6Subnet: string;
  readonly ipv4Subnet: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface EndpointPlan {
  readonly network: string;
  readonly ipv6: string;
  readonly ipv4: string;
}

export interface NodePlan {
  readonly node: string;
  readonly role: NodeRole;
  /** Docker container name (also its hostname). */
  readonly containerName: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The first endpoint is the one the container is created with (its eth0). */
  readonly endpoints: readonly EndpointPlan[];
  /** Files written into the container before it starts: path -> content. */
  readonly files: Readonly<Record<string, string>>;
  /** The container's command: `sh -c <script>`; it touches READY_FILE when up, then sleeps. */
  readonly script: string;
}

export interface HostExtra {
  readonly asn: number;
  readonly routerId: string;
  readonly locator: string;
  readonly workloads: readonly LabWorkload[];
}

/** A workload of the topology as the lab starts it: a namespace in its host, attached through CNI. */
export interface LabWorkload {
  readonly name: string;
  readonly netns: string;
  readonly tenant: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The address the fabric model derives from the identity (the agent's IPAM must agree). */
  readonly address: string;
}

export interface EdgeExtra {
  readonly asn: number;
  readonly locator: string;
  readonly tenant: string;
  /** Host underlay addresses it peers with. */
  readonly neighbors: readonly string[];
  /** Where FRR runs (`auto`: decided by `labUp` from this machine's kernel, src/lab/vm-edge.ts). */
  readonly runtime?: 'auto' | 'vm' | 'container';
}

export interface LabPlan {
  /** Name prefix of every container and network; also the value of the `segmesh.lab` label. */
  readonly prefix: string;
  readonly topologyFile: string;
  readonly networks: readonly NetworkPlan[];
  readonly nodes: readonly NodePlan[];
  readonly hosts: ReadonlyMap<string, HostExtra>;
  readonly edges: ReadonlyMap<string, EdgeExtra>;
  /** External client node -> the edge router it sits behind. */
  readonly clients: ReadonlyMap<string, string>;
  readonly view: FabricView;
}

export interface PlanOptions {
  /** Name prefix and `segmesh.lab` label value; default: the topology's `name`. */
  readonly prefix?: string;
  /** Extra labels on every container and network (a test run adds `segmesh.test.run`). */
  readonly labels?: Readonly<Record<string, string>>;
  /** Path of the topology file, for messages and the `segmesh.lab.topology` label. */
  readonly file: string;
  /**
   * Move the lab's subnets to a slot of their own (see `relocateTopology`), so that it can run beside
   * another copy of the same topology (a test run beside a demo). Default: the file's subnets.
   */
  readonly relocate?: number;
  /** What hosts run: gobgpd alone (default), or `segmesh agent` (which starts gobgpd itself). */
  readonly hostRuntime?: HostRuntime;
  /**
   * Agent mode: the operator key the agents trust (public key as `segmesh keygen` prints it); its
   * private key goes to the first host only, which publishes the fabric policy with it.
   */
  readonly operator?: { readonly publicKey: string; readonly privateKey: Uint8Array };
  /**
   * Agent mode: the lab's cluster key (the file text `newClusterKey` makes), given to every host so that
   * only the lab's hosts join its gossip. Fresh per lab, like the operator key.
   */
  readonly clusterKey?: string;
  /** Agent mode: the FabricPolicy YAML to publish; default: the topology's tenants. */
  readonly policy?: string;
}

export type HostRuntime = 'gobgpd' | 'agent';
export const AGENT_SOCKET = '/run/segmesh/agent.sock';

export function ipv4ToNumber(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw new Error(`not an IPv4 address: ${text}`);
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function numberToIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

function ipv4InRange(n: number, base: number, length: number): boolean {
  const size = 2 ** (32 - length);
  return n >= base && n < base + size;
}

/** The lab's name prefix must make valid container names and leave room in them. */
export function checkPrefix(prefix: string, file: string): void {
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(prefix)) {
    throw new LabTopologyError(
      file,
      'name',
      `lab name "${prefix}" must be 1-31 lower-case letters, digits or "-"; set name: in the topology or pass --name`,
    );
  }
}

/** Lays out `spec` (already validated by the schema) as networks and containers. */
export function planLab(input: TopologySpec, opts: PlanOptions): LabPlan {
  const file = opts.file;
  const spec = opts.relocate === undefined ? input : relocateTopology(input, opts.relocate, file);
  const prefix = opts.prefix ?? spec.name;
  if (!prefix) throw new LabTopologyError(file, 'name', 'give the topology a name (it names the containers)');
  checkPrefix(prefix, file);
  const fail: (key: string, message: string) => never = (key, message) => {
    throw new LabTopologyError(file, key, message);
  };

  let view: FabricView;
  try {
    view = buildFabricView(fabricInputFromSpec(spec));
  } catch (e) {
    return fail('hosts', e instanceof Error ? e.message : String(e));
  }

  const commonLabels = { ...(opts.labels ?? {}), [LABEL_LAB]: prefix, [LABEL_TOPOLOGY]: file };
  const underlay6 = parsePrefix(spec.underlay.subnet);
  if (underlay6.length > 120 || !prefixInside(ALLOWED_IPV6, underlay6))
    fail('underlay.subnet', `${spec.underlay.subnet} must be inside fc00::/7 (and at most a /120)`);
  const [v4Text, v4LenText] = spec.underlay.ipv4Subnet.split('/');
  let v4Base = 0;
  try {
    v4Base = ipv4ToNumber(v4Text ?? '');
  } catch {
    fail(
      'underlay.ipv4Subnet',
      `${spec.underlay.ipv4Subnet} is not an IPv4 subnet; write it like 198.18.200.0/24`,
    );
  }
  if (v4LenText !== '24' || v4Base % 256 !== 0)
    fail('underlay.ipv4Subnet', `${spec.underlay.ipv4Subnet}: use a /24 (write it like 198.18.200.0/24)`);
  const underlayGateway6 = underlay6.address + 1n;

  const networks: NetworkPlan[] = [
    {
      key: 'underlay',
      name: `${prefix}-underlay`,
      ipv6Subnet: formatPrefix(underlay6),
      ipv4Subnet: spec.underlay.ipv4Subnet,
      labels: commonLabels,
    },
  ];
  const nodes: NodePlan[] = [];
  const hosts = new Map<string, HostExtra>();
  const edges = new Map<string, EdgeExtra>();
  const used = new Map<string, string>();
  const claimAddress = (key: string, address: string) => {
    const other = used.get(address);
    if (other) fail(key, `address ${address} is also used by ${other}`);
    used.set(address, key);
  };

  const edgeNodes = spec.nodes.filter((n) => n.kind === 'edge-router');
  const clientNodes = spec.nodes.filter((n) => n.kind === 'external-client');
  const names = new Set<string>();
  for (const [i, n] of [...spec.hosts.map((h) => h.name), ...spec.nodes.map((n) => n.name)].entries()) {
    if (names.has(n))
      fail(i < spec.hosts.length ? `hosts[${i}].name` : 'nodes', `node name ${n} is used twice`);
    names.add(n);
  }
  if (spec.hosts.length + edgeNodes.length > 240) fail('hosts', 'at most 240 hosts and edge routers');
  if (clientNodes.length > 0 && v4Base + 256 * clientNodes.length >= ALLOWED_IPV4.base + 2 ** 17)
    fail('underlay.ipv4Subnet', 'no room for the external networks after it inside 198.18.0.0/15');
  if (!ipv4InRange(v4Base, ALLOWED_IPV4.base, ALLOWED_IPV4.length))
    fail('underlay.ipv4Subnet', `${spec.underlay.ipv4Subnet} must be inside 198.18.0.0/15`);

  const underlayEndpoint = (key: string, address: string, index: number): EndpointPlan => {
    let a: bigint;
    try {
      a = parseIpv6(address);
    } catch {
      return fail(key, `${address} is not an IPv6 address`);
    }
    if (!prefixContains(underlay6, a))
      fail(
        key,
        `${address} is outside the underlay subnet ${spec.underlay.subnet}; pick an address inside it`,
      );
    if (a === underlayGateway6 || a === underlay6.address)
      fail(
        key,
        `${address} is the network's own address or Docker's gateway (::1 of the subnet); pick another`,
      );
    claimAddress(key, formatIpv6(a));
    return { network: `${prefix}-underlay`, ipv6: formatIpv6(a), ipv4: numberToIpv4(v4Base + 10 + index) };
  };

  // Hosts.
  const edgePeers = edgeNodes.map((e) => ({ address: e.underlay, asn: e.asn, locator: e.locator }));
  for (const [i, h] of spec.hosts.entries()) {
    const ep = underlayEndpoint(`hosts[${i}].underlay`, h.underlay, i);
    const hv = view.hosts.get(h.name);
    if (!hv) fail(`hosts[${i}]`, `host ${h.name} missing from the fabric view`);
    const asn = HOST_ASN_BASE + i;
    const workloads = [...view.workloads.values()]
      .filter((w) => w.host === h.name)
      .map((w) => ({
        name: w.id,
        netns: workloadNetns(w.id),
        tenant: w.tenant,
        labels: { ...w.labels },
        address: formatIpv6(w.address),
      }));
    const extra: HostExtra = { asn, routerId: ep.ipv4, locator: formatPrefix(hv.locator), workloads };
    hosts.set(h.name, extra);
    const otherHosts = spec.hosts.filter((o) => o.name !== h.name);
    const agentConfig = agentConfigSchema.parse({
      apiVersion: spec.apiVersion,
      kind: 'AgentConfig',
      host: { name: h.name, underlay: { interface: 'eth0', address: ep.ipv6 } },
      locator: extra.locator,
      sidStructure: spec.sidStructure,
      gossip: {
        bootstrap: otherHosts.map((o) => `/ip6/${o.underlay}/tcp/7946`),
        ...(opts.clusterKey ? { clusterKeyFile: CLUSTER_KEY_PATH } : {}),
      },
      operatorKeys: opts.operator ? [opts.operator.publicKey] : [],
      bgp: {
        asn,
        routerId: ep.ipv4,
        gobgpd: { mode: 'managed', binary: 'gobgpd', api: GOBGPD_API },
        peers: edgePeers.map((p) => ({
          address: p.address,
          asn: p.asn,
          families: ['l3vpn-ipv6-unicast'],
          locators: [p.locator],
        })),
      },
      dataplane: { maxSegments: spec.maxSegments, underlayMtu: spec.underlayMtu },
    });
    // Routes to the other hosts' and the edge routers' locators over the underlay (until the agent
    // installs them from the gossip view and BGP).
    const routes = [
      ...otherHosts.map((o) => [formatPrefix(view.hosts.get(o.name)!.locator), o.underlay] as const),
      ...edgePeers.map((p) => [p.locator, p.address] as const),
    ];
    nodes.push({
      node: h.name,
      role: 'host',
      containerName: `${prefix}-${h.name}`,
      labels: { ...commonLabels, [LABEL_NODE]: h.name, [LABEL_ROLE]: 'host' },
      endpoints: [ep],
      files: {
        [AGENT_CONFIG_PATH]: stringify(agentConfig),
        ...(opts.hostRuntime === 'agent' ? agentFiles(spec, opts, i === 0) : {}),
        [GOBGPD_CONFIG_PATH]: gobgpdConfig({ asn, routerId: ep.ipv4, listen: ep.ipv6, peers: edgePeers }),
      },
      script: hostScript({
        routes,
        workloads: workloads.map((w) => w.netns),
        runtime: opts.hostRuntime ?? 'gobgpd',
      }),
    });
  }

  const ext = new Map<string, { subnet: string; edge: string }>();

  // Edge routers.
  for (const [j, e] of edgeNodes.entries()) {
    const key = `nodes[${spec.nodes.indexOf(e)}]`;
    const ep = underlayEndpoint(`${key}.underlay`, e.underlay, spec.hosts.length + j);
    const tenant = view.tenants.get(e.tenant);
    if (!tenant)
      fail(`${key}.tenant`, `unknown tenant ${e.tenant}; tenants: ${[...view.tenants.keys()].join(', ')}`);
    let locator: Ipv6Prefix;
    try {
      locator = parsePrefix(e.locator);
    } catch (err) {
      fail(`${key}.locator`, err instanceof Error ? err.message : String(err));
    }
    if (locator.length !== 64)
      fail(`${key}.locator`, `${e.locator}: FRR 8.4 edges need a /64 locator (quirk F1)`);
    const neighbors = spec.hosts.map((h) => h.underlay);
    edges.set(e.name, { asn: e.asn, locator: e.locator, tenant: e.tenant, neighbors, runtime: e.runtime });
    const rt = tenant.routeTarget ?? `${e.asn}:${tenant.id}`;
    const clients = clientNodes.filter((c) => c.attach === e.name);
    const endpoints: EndpointPlan[] = [ep];
    const exportPrefixes: string[] = [];
    for (const c of clients) {
      const k = clientNodes.indexOf(c);
      const net = externalNetwork(c.address, `nodes[${spec.nodes.indexOf(c)}].address`);
      exportPrefixes.push(net.subnet);
      endpoints.push({
        network: `${prefix}-ext-${c.name}`,
        ipv6: net.edge,
        ipv4: numberToIpv4(v4Base + 256 * (k + 1) + 254),
      });
    }
    const hostRoutes = spec.hosts.map(
      (h) => [formatPrefix(view.hosts.get(h.name)!.locator), h.underlay] as const,
    );
    nodes.push({
      node: e.name,
      role: 'edge-router',
      containerName: `${prefix}-${e.name}`,
      labels: { ...commonLabels, [LABEL_NODE]: e.name, [LABEL_ROLE]: 'edge-router' },
      endpoints,
      files: {
        '/etc/frr/frr.conf': frrConfig({
          hostname: e.name,
          asn: e.asn,
          routerId: ep.ipv4,
          // advertisement-interval 0: a moved workload reaches the edge at once.
          neighbors: spec.hosts.map((h, i) => ({
            address: h.underlay,
            asn: HOST_ASN_BASE + i,
            advertisementInterval: 0,
          })),
          locator: e.locator,
          tenant: { rd: `${e.asn}:${tenant.id}`, rt, exportPrefixes },
          nexthop: ep.ipv6,
        }),
        '/etc/frr/daemons': frrDaemons(),
        '/etc/frr/vtysh.conf': 'service integrated-vtysh-config\n',
      },
      script: edgeScript({ routes: hostRoutes }),
    });
  }

  // External clients and their networks.
  function externalNetwork(address: string, key: string): { subnet: string; edge: string } {
    const known = ext.get(address);
    if (known) return known;
    let a: bigint;
    try {
      a = parseIpv6(address);
    } catch {
      return fail(key, `${address} is not an IPv6 address`);
    }
    const subnet = makePrefix(a, 64);
    if (!prefixContains(ALLOWED_IPV6, a))
      fail(key, `${address} must be inside fc00::/7 (lab networks use only fc00::/7)`);
    if (prefixContains(underlay6, a) || prefixContains(subnet, underlay6.address))
      fail(key, `${address}: its /64 overlaps the underlay subnet; pick another /64`);
    if (a === subnet.address + 1n || a === subnet.address)
      fail(key, `${address} is Docker's gateway (::1) or the subnet's own address; use e.g. ::2`);
    const edge = formatIpv6(subnet.address + (a === subnet.address + 0xfen ? 0xfdn : 0xfen));
    claimAddress(key, formatIpv6(a));
    claimAddress(key, edge);
    const r = { subnet: formatPrefix(subnet), edge };
    ext.set(address, r);
    return r;
  }
  for (const [k, c] of clientNodes.entries()) {
    const key = `nodes[${spec.nodes.indexOf(c)}]`;
    const edge = edges.get(c.attach);
    if (!edge) fail(`${key}.attach`, `${c.attach} is not an edge router of this topology`);
    const net = externalNetwork(c.address, `${key}.address`);
    const v4 = v4Base + 256 * (k + 1);
    const name = `${prefix}-ext-${c.name}`;
    networks.push({
      key: `ext-${c.name}`,
      name,
      ipv6Subnet: net.subnet,
      ipv4Subnet: `${numberToIpv4(v4)}/24`,
      labels: commonLabels,
    });
    nodes.push({
      node: c.name,
      role: 'external-client',
      containerName: `${prefix}-${c.name}`,
      labels: { ...commonLabels, [LABEL_NODE]: c.name, [LABEL_ROLE]: 'external-client' },
      endpoints: [{ network: name, ipv6: formatIpv6(parseIpv6(c.address)), ipv4: numberToIpv4(v4 + 10) }],
      files: {},
      script: clientScript({ gateway: net.edge }),
    });
  }

  const clients = new Map(clientNodes.map((c) => [c.name, c.attach]));
  return { prefix, topologyFile: file, networks, nodes, hosts, edges, clients, view };
}

function prefixInside(outer: Ipv6Prefix, inner: Ipv6Prefix): boolean {
  return inner.length >= outer.length && prefixContains(outer, inner.address);
}

/**
 * What an agent-mode host needs besides its agent configuration: a CNI network configuration per
 * tenant (the plugin is `segmesh-cni` on PATH) and, on the first host, the fabric policy with the
 * operator key that signs it (base64: container files are text; the start script decodes it).
 */
function agentFiles(spec: TopologySpec, opts: PlanOptions, first: boolean): Record<string, string> {
  const files: Record<string, string> = {};
  for (const t of spec.tenants) {
    files[`${CNI_CONF_DIR}/${t.name}.json`] = `${JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: `segmesh-${t.name}`,
        type: 'segmesh-cni',
        tenant: t.name,
        agentSocket: AGENT_SOCKET,
      },
      null,
      2,
    )}\n`;
  }
  if (opts.clusterKey) files[CLUSTER_KEY_PATH] = opts.clusterKey;
  if (first && opts.operator) {
    files[POLICY_PATH] =
      opts.policy ?? stringify({ apiVersion: spec.apiVersion, kind: 'FabricPolicy', tenants: spec.tenants });
    files[`${OPERATOR_KEY_PATH}.b64`] = `${Buffer.from(opts.operator.privateKey).toString('base64')}\n`;
  }
  return files;
}

/** A workload's namespace name inside its host container (`/` and other characters become `-`). */
export function workloadNetns(identity: string): string {
  return `w-${identity.replace(/[^A-Za-z0-9_.-]/g, '-')}`.slice(0, 60);
}

export function gobgpdConfig(o: {
  asn: number;
  routerId: string;
  listen: string;
  peers: readonly { address: string; asn: number }[];
}): string {
  const lines = [
    '[global.config]',
    `  as = ${o.asn}`,
    `  router-id = "${o.routerId}"`,
    `  local-address-list = ["${o.listen}"]`,
  ];
  for (const p of o.peers) {
    lines.push(
      '',
      '[[neighbors]]',
      '  [neighbors.config]',
      `    neighbor-address = "${p.address}"`,
      `    peer-as = ${p.asn}`,
      '  [neighbors.timers.config]',
      '    connect-retry = 1',
      '  [[neighbors.afi-safis]]',
      '    [neighbors.afi-safis.config]',
      '      afi-safi-name = "l3vpn-ipv6-unicast"',
    );
  }
  return `${lines.join('\n')}\n`;
}

/** What every node runs first: writable /proc/sys (read-only for unprivileged containers), SRv6 on. */
const COMMON_PREAMBLE = [
  'set -eu',
  // Not /run/segmesh: the agent creates its runtime directory itself and refuses one it did not create.
  'mkdir -p /run/segmesh-lab /var/log/segmesh',
  'mount -o remount,rw /proc/sys',
  // Docker's default routes lead to the machine's root namespace: a lab packet with no route of its
  // own must be dropped in the lab (and counted there), never handed to the machine.
  'ip -6 route del default 2>/dev/null || true',
  'ip -4 route del default 2>/dev/null || true',
  'sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.seg6_enabled=1 net.ipv6.conf.default.seg6_enabled=1',
  'for f in /proc/sys/net/ipv6/conf/*/seg6_enabled; do echo 1 >"$f"; done',
];

const KEEP_RUNNING = [`touch ${READY_FILE}`, 'exec sleep infinity'];

function routeLines(routes: readonly (readonly [string, string])[]): string[] {
  return routes.map(([dst, via]) => `ip -6 route replace ${dst} via ${via}`);
}

/**
 * The host container's start: the one place that decides what a host runs.
 * - `gobgpd`: gobgpd with a static configuration peering with the edge routers, and static routes to
 *   the other hosts' and the edge routers' locators;
 * - `agent`: `segmesh agent --config /etc/segmesh/agent.yaml` (it starts gobgpd as its managed sidecar
 *   and installs the routes); the node is ready once the agent's API socket exists.
 * Either way the workloads' namespaces are created.
 */
export function hostScript(o: {
  routes: readonly (readonly [string, string])[];
  workloads: readonly string[];
  runtime?: HostRuntime;
}): string {
  const netns = o.workloads.flatMap((ns) => [`ip netns add ${ns}`, `ip -n ${ns} link set lo up`]);
  if (o.runtime === 'agent') {
    return [
      ...COMMON_PREAMBLE,
      ...netns,
      // Files arrive 0644: the cluster key admits whoever holds it.
      `if [ -f ${CLUSTER_KEY_PATH} ]; then chmod 600 ${CLUSTER_KEY_PATH}; fi`,
      `if [ -f ${OPERATOR_KEY_PATH}.b64 ]; then (umask 077; base64 -d <${OPERATOR_KEY_PATH}.b64 >${OPERATOR_KEY_PATH}); rm -f ${OPERATOR_KEY_PATH}.b64; fi`,
      `segmesh agent --config ${AGENT_CONFIG_PATH} >/var/log/segmesh/agent.log 2>&1 &`,
      `i=0; until [ -S ${AGENT_SOCKET} ]; do i=$((i + 1)); [ $i -lt 1200 ] || { tail -n 20 /var/log/segmesh/agent.log; exit 1; }; sleep 0.1; done`,
      ...KEEP_RUNNING,
    ].join('\n');
  }
  return [
    ...COMMON_PREAMBLE,
    ...routeLines(o.routes),
    ...netns,
    `gobgpd -f ${GOBGPD_CONFIG_PATH} -t toml --api-hosts ${GOBGPD_API} --pprof-disable --log-plain >/var/log/segmesh/gobgpd.log 2>&1 &`,
    ...KEEP_RUNNING,
  ].join('\n');
}

/** The edge router's start: routes to the host locators, FRR (zebra + bgpd) through frrinit.sh. */
export function edgeScript(o: { routes: readonly (readonly [string, string])[] }): string {
  return [
    ...COMMON_PREAMBLE,
    ...routeLines(o.routes),
    'chown -R frr:frr /etc/frr',
    '/usr/lib/frr/frrinit.sh start >/var/log/segmesh/frr-start.log 2>&1',
    ...KEEP_RUNNING,
  ].join('\n');
}

/** An external client: reaches the fabric only through its edge router. */
export function clientScript(o: { gateway: string }): string {
  return [...COMMON_PREAMBLE, `ip -6 route replace default via ${o.gateway}`, ...KEEP_RUNNING].join('\n');
}

/** Slots for relocated labs: 24 IPv4 slots of four /24s in 198.18.32.0-198.18.127.255. */
export const RELOCATION_SLOTS = 24;

/**
 * The same topology on other subnets: the underlay /64 becomes `fc00:98:<slot>::/64` (IPv4
 * `198.18.<32 + 4 * (slot % 24)>.0/24`), each external client's /64 `fc00:97:<slot>:<k>::/64`; every
 * address keeps its host part. Shipped topologies use 198.18.0-31.x, so a relocated lab never
 * collides with them; two relocated labs collide only when their slots agree modulo 24.
 */
export function relocateTopology(spec: TopologySpec, slot: number, file = 'topology'): TopologySpec {
  const n = Math.abs(Math.trunc(slot)) % 0x10000;
  const under = parsePrefix(spec.underlay.subnet);
  if (under.length !== 64)
    throw new LabTopologyError(
      file,
      'underlay.subnet',
      'only a /64 underlay can be relocated (for a test run)',
    );
  const newUnder = parseIpv6(`fc00:98:${n.toString(16)}::`);
  const hostPart = (a: bigint) => a & ((1n << 64n) - 1n);
  const moveUnderlay = (text: string): string => {
    const a = parseIpv6(text);
    return prefixContains(under, a) ? formatIpv6(newUnder | hostPart(a)) : text;
  };
  const clients = spec.nodes.filter((x) => x.kind === 'external-client');
  const moveClient = (text: string): string => {
    const k = clients.findIndex((c) => c.address === text);
    return formatIpv6(parseIpv6(`fc00:97:${n.toString(16)}:${k.toString(16)}::`) | hostPart(parseIpv6(text)));
  };
  return {
    ...spec,
    underlay: {
      subnet: formatPrefix({ address: newUnder, length: 64 }),
      ipv4Subnet: `198.18.${32 + 4 * (n % RELOCATION_SLOTS)}.0/24`,
    },
    hosts: spec.hosts.map((h) => ({ ...h, underlay: moveUnderlay(h.underlay) })),
    edges: spec.edges.map((e) => ({ ...e, underlay: moveUnderlay(e.underlay) })),
    nodes: spec.nodes.map((x) =>
      x.kind === 'edge-router'
        ? { ...x, underlay: moveUnderlay(x.underlay) }
        : { ...x, address: moveClient(x.address) },
    ),
  };
}
