/**
 * A large fabric description as YAML text, for `segmesh plan` at scale (the unit test and
 * `npm run bench -- plan`). Deterministic: the same arguments give the same bytes.
 * Shape: `tenants` tenants, workloads spread over random hosts, and one policy per tenant that sends
 * one app's traffic through an SR-aware function and an SR-unaware firewall behind it.
 */
export interface LargeFabric {
  readonly hosts: number;
  readonly workloads: number;
  readonly tenants?: number;
  readonly seed?: number;
}

export function largeFabricYaml({ hosts, workloads, tenants = 10, seed = 42 }: LargeFabric): string {
  if (hosts < 1 || hosts > 0xfeff) throw new RangeError(`hosts must be 1..${0xfeff}, got ${hosts}`);
  const random = mulberry32(seed);
  const out: string[] = [
    'apiVersion: segmesh.io/v1alpha1',
    'kind: Fabric',
    `name: scale-${hosts}x${workloads}`,
    'locatorBlock: fc00:0::/32',
    'maxSegments: 4',
    'hosts:',
  ];
  for (let i = 0; i < hosts; i++)
    out.push(`  - { name: host-${i}, underlay: "2001:db8:100::${(i + 1).toString(16)}" }`);
  out.push('tenants:');
  for (let t = 0; t < tenants; t++)
    out.push(
      `  - { name: tenant-${t}, id: ${100 + t}, prefixes: ["2001:db8:${(0x1000 + t).toString(16)}::/64"] }`,
    );
  out.push('networkFunctions:');
  for (let t = 0; t < tenants; t++) {
    out.push(`  - { name: nf-${t}-sr, tenant: tenant-${t}, host: host-${(t * 37) % hosts}, mode: sr-aware }`);
    out.push(
      `  - { name: nf-${t}-fw, tenant: tenant-${t}, host: host-${(t * 37 + 11) % hosts}, mode: sr-unaware, address: "fc00:99::${(t + 1).toString(16)}" }`,
    );
  }
  out.push('workloads:');
  for (let i = 0; i < workloads; i++) {
    const host = Math.floor(random() * hosts);
    out.push(
      `  - { name: ns-${i % 97}/w-${i}, tenant: tenant-${i % tenants}, host: host-${host}, labels: { app: app-${i % 100} } }`,
    );
  }
  out.push('policies:');
  for (let t = 0; t < tenants; t++) {
    out.push(
      `  - { name: policy-${t}, tenant: tenant-${t}, to: { labels: { app: app-${t} } }, via: [nf-${t}-sr, nf-${t}-fw] }`,
    );
  }
  return `${out.join('\n')}\n`;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
