/**
 * The three YAML formats Segmesh reads, in one schema module:
 * - `Fabric`: a description of hosts, tenants, workloads, network functions and policies
 *   (`segmesh plan`);
 * - `AgentConfig`: one host's local settings (`segmesh agent`); fabric-wide settings arrive signed
 *   through gossip instead;
 * - `Topology`: a lab (`segmesh lab`): a Fabric plus edge routers, external clients and links.
 * Every file carries `apiVersion` and `kind`. Parsing is pure: the caller reads the file.
 */
import { z } from 'zod';
import { isIpv6Text, parsePrefix } from '../srv6/address.ts';
import { MAX_TENANT_ID } from '../srv6/tables.ts';

export const API_VERSION = 'segmesh.io/v1alpha1';

const name = z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, {
  message: 'use lower-case letters, digits, "-" and "." (at most 63, like a DNS label)',
});

export const ipv6Address = z.string().refine(isIpv6Text, {
  message: 'not an IPv6 address; write it like 2001:db8::1',
});

export const ipv6Prefix = z.string().superRefine((text, ctx) => {
  if (!text.includes('/')) {
    ctx.addIssue({ code: 'custom', message: 'a prefix needs its length; write it like fc00:0:1::/48' });
    return;
  }
  try {
    parsePrefix(text);
  } catch (e) {
    ctx.addIssue({
      code: 'custom',
      message: `${e instanceof Error ? e.message : String(e)}; write a prefix like fc00:0:1::/48`,
    });
  }
});

const routeTarget = z
  .string()
  .regex(/^\d{1,10}:\d{1,10}$/, { message: 'write a route target as ASN:NN, e.g. 65000:100' });

const duration = z
  .string()
  .regex(/^\d+(\.\d+)?(ms|s|m|h)$/, { message: 'write a duration like 500ms, 3s, 5m or 1h' });

/** Milliseconds of a duration accepted by the schema. */
export function durationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`bad duration ${text}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

export const sidStructureSchema = z
  .object({
    block: z.number().int().min(0).max(128),
    node: z.number().int().min(0).max(128),
    function: z.number().int().min(8).max(128),
    argument: z.number().int().min(0).max(128).default(0),
  })
  .strict()
  .refine((s) => s.block + s.node + s.function + s.argument <= 128, {
    message: 'block + node + function + argument must be at most 128 bits',
  });

const labels = z.record(z.string(), z.string());

const selector = z
  .object({
    workloads: z.array(z.string()).optional(),
    labels: labels.optional(),
  })
  .strict();

const fabricHost = z
  .object({
    name,
    underlay: ipv6Address,
    locator: ipv6Prefix.optional(),
    vrf: z.boolean().default(false),
  })
  .strict();

const tenant = z
  .object({
    name,
    id: z.number().int().min(1).max(MAX_TENANT_ID),
    prefixes: z
      .array(ipv6Prefix)
      .min(1, { message: 'give the tenant at least one prefix for its workloads' }),
    routeTarget: routeTarget.optional(),
    edgeMode: z.enum(['per-workload', 'aggregate']).default('per-workload'),
    ipv4: z.boolean().default(false),
  })
  .strict();

const workload = z
  .object({
    name: z.string().min(1),
    tenant: name,
    host: name,
    address: ipv6Address.optional(),
    labels: labels.default({}),
  })
  .strict();

const networkFunction = z
  .object({
    name,
    tenant: name,
    host: name,
    kind: z.enum(['firewall', 'load-balancer', 'other']).default('other'),
    mode: z.enum(['sr-aware', 'sr-unaware']),
    address: ipv6Address.optional(),
  })
  .strict()
  .refine((n) => n.mode === 'sr-aware' || n.address !== undefined, {
    message: 'an sr-unaware network function needs its on-link address (End.DX6 delivers to it)',
    path: ['address'],
  });

const policy = z
  .object({
    name,
    tenant: name,
    from: selector.default({}),
    to: selector.default({}),
    via: z.array(name).min(1, { message: 'list the network functions the traffic traverses, in order' }),
  })
  .strict();

const edge = z
  .object({
    name,
    underlay: ipv6Address,
    locators: z.array(ipv6Prefix).min(1),
  })
  .strict();

const externalRoute = z
  .object({
    tenant: name,
    prefix: ipv6Prefix,
    sid: ipv6Address,
    edge: name,
  })
  .strict();

const fabricFields = {
  apiVersion: z.literal(API_VERSION, { message: `set apiVersion: ${API_VERSION}` }),
  name: name.optional(),
  sidStructure: sidStructureSchema.default({ block: 32, node: 16, function: 16, argument: 0 }),
  locatorBlock: ipv6Prefix.optional(),
  maxSegments: z.number().int().min(1).max(16).default(4),
  underlayMtu: z.number().int().min(1280).max(65535).default(1500),
  hmac: z
    .object({ keyId: z.number().int().min(1).max(0xffffffff) })
    .strict()
    .optional(),
  hosts: z.array(fabricHost).min(1, { message: 'describe at least one host' }),
  tenants: z.array(tenant).default([]),
  workloads: z.array(workload).default([]),
  networkFunctions: z.array(networkFunction).default([]),
  policies: z.array(policy).default([]),
  edges: z.array(edge).default([]),
  externalRoutes: z.array(externalRoute).default([]),
};

export const fabricSchema = z.object({ ...fabricFields, kind: z.literal('Fabric') }).strict();
export type FabricSpec = z.infer<typeof fabricSchema>;

const bgpPeer = z
  .object({
    address: ipv6Address,
    asn: z.number().int().min(1).max(4294967295),
    password: z.string().min(1).optional(),
    families: z
      .array(z.enum(['ipv6-unicast', 'l3vpn-ipv6-unicast', 'l3vpn-ipv4-unicast']))
      .default(['ipv6-unicast', 'l3vpn-ipv6-unicast']),
    maxPrefixes: z.number().int().min(1).default(100_000),
    locators: z.array(ipv6Prefix).default([]),
  })
  .strict();

export const agentConfigSchema = z
  .object({
    apiVersion: z.literal(API_VERSION, { message: `set apiVersion: ${API_VERSION}` }),
    kind: z.literal('AgentConfig'),
    host: z
      .object({
        name,
        underlay: z.object({ interface: z.string().min(1).max(15), address: ipv6Address }).strict(),
      })
      .strict(),
    locator: ipv6Prefix.optional(),
    locatorBlock: ipv6Prefix.optional(),
    sidStructure: sidStructureSchema.default({ block: 32, node: 16, function: 16, argument: 0 }),
    stateDir: z.string().default('/var/lib/segmesh'),
    gossip: z
      .object({
        listen: z.array(z.string()).default(['/ip6/::/tcp/7946']),
        bootstrap: z.array(z.string()).default([]),
        privateNetworkKeyFile: z.string().min(1).optional(),
        /** The cluster key (`segmesh keygen --cluster`): members certify their host id with it. */
        clusterKeyFile: z.string().min(1).optional(),
        allowedPeers: z.array(z.string().min(1)).default([]),
        suspectAfter: duration.default('3s'),
        deadAfter: duration.default('10s'),
        tombstoneTtl: duration.default('1h'),
      })
      .strict()
      .default({
        listen: ['/ip6/::/tcp/7946'],
        bootstrap: [],
        allowedPeers: [],
        suspectAfter: '3s',
        deadAfter: '10s',
        tombstoneTtl: '1h',
      }),
    operatorKeys: z.array(z.string().min(1)).default([]),
    /**
     * Who may join the gossip: `closed` (default) needs gossip.clusterKeyFile, gossip.allowedPeers or
     * gossip.privateNetworkKeyFile (checked at start-up, src/agent/membership.ts); `open` admits any node
     * that reaches the gossip port (labs and tests only: the newest claim on a workload wins).
     */
    membership: z
      .enum(['closed', 'open'], {
        message: 'membership is closed (the default) or open (labs and tests only)',
      })
      .default('closed'),
    bgp: z
      .object({
        asn: z.number().int().min(1).max(4294967295),
        routerId: z
          .string()
          .regex(/^\d{1,3}(\.\d{1,3}){3}$/, { message: 'a router id is written like 198.18.0.1' }),
        gobgpd: z
          .object({
            mode: z.enum(['managed', 'external']).default('managed'),
            binary: z.string().default('gobgpd'),
            api: z.string().default('127.0.0.1:50051'),
          })
          .strict()
          .default({ mode: 'managed', binary: 'gobgpd', api: '127.0.0.1:50051' }),
        peers: z.array(bgpPeer).default([]),
        transposition: z.boolean().default(true),
        advertise: z.enum(['per-workload', 'aggregate']).default('per-workload'),
      })
      .strict()
      .optional(),
    api: z
      .object({ socket: z.string().default('/run/segmesh/agent.sock'), group: z.string().default('segmesh') })
      .strict()
      .default({ socket: '/run/segmesh/agent.sock', group: 'segmesh' }),
    metrics: z
      .object({ listen: z.string().default('127.0.0.1:9469') })
      .strict()
      .default({ listen: '127.0.0.1:9469' }),
    dataplane: z
      .object({
        // auto: the kernel's seg6 routes where the kernel has them, else the eBPF programs.
        backend: z.enum(['auto', 'ebpf', 'kernel']).default('auto'),
        // Where the eBPF backend pins its maps and program links (a folder on a bpffs).
        bpfPinDir: z.string().min(1).default('/sys/fs/bpf/segmesh'),
        maxSegments: z.number().int().min(1).max(16).default(4),
        underlayMtu: z.number().int().default(1500),
        /**
         * SRH HMAC on this host: encapsulations toward other hosts carry an HMAC TLV with key `keyId`
         * (one of the fabric's keys, gossip `hmac/<id>`), and SRHs arriving on the underlay must carry a
         * valid one. Only the kernel backend has it (CONFIG_IPV6_SEG6_HMAC).
         */
        hmac: z
          .object({ keyId: z.number().int().min(1).max(0xffffffff) })
          .strict()
          .optional(),
      })
      .strict()
      .default({ backend: 'auto', bpfPinDir: '/sys/fs/bpf/segmesh', maxSegments: 4, underlayMtu: 1500 }),
  })
  .strict()
  .refine((c) => (c.locator === undefined) !== (c.locatorBlock === undefined), {
    message:
      'set exactly one of locator (this host) or locatorBlock (derive the locator from the fabric block)',
    path: ['locator'],
  });
export type AgentConfigSpec = z.infer<typeof agentConfigSchema>;

const edgeRouterNode = z
  .object({
    name,
    kind: z.literal('edge-router'),
    implementation: z.enum(['frr']).default('frr'),
    // Where FRR runs: a lab container (shares this machine's kernel: needs seg6 routes), a VM with
    // Debian's kernel (src/lab/vm-edge.ts), or auto: the VM where this kernel lacks seg6.
    runtime: z.enum(['auto', 'vm', 'container']).default('auto'),
    asn: z.number().int().min(1).max(4294967295),
    underlay: ipv6Address,
    locator: ipv6Prefix,
    tenant: name,
  })
  .strict();

const externalClientNode = z
  .object({
    name,
    kind: z.literal('external-client'),
    attach: name,
    address: ipv6Address,
  })
  .strict();

export const topologySchema = z
  .object({
    ...fabricFields,
    kind: z.literal('Topology'),
    nodes: z.array(z.discriminatedUnion('kind', [edgeRouterNode, externalClientNode])).default([]),
    underlay: z
      .object({
        subnet: ipv6Prefix.default('fc00:99::/64'),
        ipv4Subnet: z.string().default('198.18.200.0/24'),
      })
      .strict()
      .default({ subnet: 'fc00:99::/64', ipv4Subnet: '198.18.200.0/24' }),
  })
  .strict();
export type TopologySpec = z.infer<typeof topologySchema>;

/** Fabric-wide settings an operator signs and publishes (`segmesh policy apply`). */
/** A shared SRH HMAC key (RFC 8754): its id and the file holding its secret (1..64 bytes). */
const hmacKey = z
  .object({
    keyId: z.number().int().min(1).max(0xffffffff),
    secretFile: z.string().min(1, { message: 'name the file holding the secret' }),
  })
  .strict();

export const fabricPolicySchema = z
  .object({
    apiVersion: z.literal(API_VERSION, { message: `set apiVersion: ${API_VERSION}` }),
    kind: z.literal('FabricPolicy'),
    tenants: z.array(tenant).default([]),
    hmacKeys: z.array(hmacKey).default([]),
  })
  .strict();
export type FabricPolicySpec = z.infer<typeof fabricPolicySchema>;

export const SCHEMAS = {
  Fabric: fabricSchema,
  AgentConfig: agentConfigSchema,
  Topology: topologySchema,
  FabricPolicy: fabricPolicySchema,
} as const;
export type ConfigKind = keyof typeof SCHEMAS;
