/**
 * Fakes of the agent's gossip, BGP and host-link ports (src/agent/ports.ts, src/dataplane/host.ts) for
 * unit tests of its components: in-memory, recording what they were handed, with a gossip view that
 * the test edits (hosts, tenants, other hosts' workload claims) as gossip would.
 */
import { create } from '@bufbuild/protobuf';
import type { BgpPort, GossipPort, HostAdvert } from '../../../src/agent/ports.ts';
import type { VpnAdvert } from '../../../src/bgp/routes.ts';
import type { HostLinks, WorkloadLinkRequest } from '../../../src/dataplane/host.ts';
import {
  HostRecordSchema,
  TenantRecordSchema,
  WorkloadRecordSchema,
} from '../../../src/gen/segmesh/v1/gossip_pb.js';
import type { WorkloadAdvert } from '../../../src/gossip/node.ts';
import { EMPTY_VIEW, type FabricView, type HostView, type WorkloadView } from '../../../src/gossip/view.ts';
import { type Ipv6Address, ipv6ToBytes, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';

const version = (wall: number, origin: string) => ({ wall, counter: 0, origin });

export const hostIdOf = (i: number) => `id-${i}`;
export const hostNameOf = (i: number) => `host${i}`;

export class FakeGossip implements GossipPort {
  readonly hostId: string;
  readonly hosts = new Map<string, HostView>();
  readonly workloads = new Map<string, WorkloadView>();
  readonly tenants = new Map<
    string,
    FabricView['tenants'] extends ReadonlyMap<string, infer T> ? T : never
  >();
  readonly published: Array<{ kind: string; what: unknown }> = [];
  /** The last claim's wall clock: claims are newer each time, and never ahead of the real clock by more. */
  #last = 0;

  constructor(self = 1) {
    this.hostId = hostIdOf(self);
  }

  /** A host of the fabric: underlay 2001:db8:100::i, locator fc00:0:i::/48. */
  addHost(i: number): void {
    this.hosts.set(hostIdOf(i), {
      id: hostIdOf(i),
      state: 'alive',
      version: version(1, hostIdOf(i)),
      record: create(HostRecordSchema, {
        hostId: hostIdOf(i),
        name: hostNameOf(i),
        underlayAddress: ipv6ToBytes(parseIpv6(`2001:db8:100::${i}`)),
        locator: { address: ipv6ToBytes(parseIpv6(`fc00:0:${i}::`)), length: 48 },
      }),
    } as HostView);
  }

  addTenant(name: string, id: number, prefix: string, routeTarget?: string): void {
    const p = parsePrefix(prefix);
    this.tenants.set(name, {
      version: version(1, 'operator'),
      record: create(TenantRecordSchema, {
        name,
        table: id,
        prefixes: [{ address: ipv6ToBytes(p.address), length: p.length }],
        ...(routeTarget ? { routeTargets: [routeTarget] } : {}),
      }),
    });
  }

  /** A claim of workload `id` by host `host` (a newer one each time: the clock moves on). */
  claim(id: string, tenant: string, address: Ipv6Address, host: number): void {
    const bytes = ipv6ToBytes(address);
    this.workloads.set(id, {
      id,
      hostId: hostIdOf(host),
      tenant,
      address: Buffer.from(bytes).toString('hex'),
      version: version(this.#tick(), hostIdOf(host)),
      record: create(WorkloadRecordSchema, {
        workloadId: id,
        tenant,
        hostId: hostIdOf(host),
        opaqueAddress: bytes,
      }),
    });
  }

  #tick(): number {
    this.#last = Math.max(Date.now(), this.#last + 1);
    return this.#last;
  }

  view(): FabricView {
    return { ...EMPTY_VIEW, hosts: this.hosts, workloads: this.workloads, tenants: this.tenants };
  }

  async publishHost(advert?: HostAdvert): Promise<void> {
    this.published.push({ kind: 'host', what: advert });
  }

  async publishWorkload(w: WorkloadAdvert): Promise<void> {
    this.published.push({ kind: 'workload', what: w.workloadId });
    const address = BigInt(`0x${Buffer.from(w.opaqueAddress).toString('hex')}`);
    this.claim(w.workloadId, w.tenant, address, Number(this.hostId.slice(3)));
  }

  async removeWorkload(id: string): Promise<void> {
    this.published.push({ kind: 'remove', what: id });
    if (this.workloads.get(id)?.hostId === this.hostId) this.workloads.delete(id);
  }

  async publishSigned(): Promise<{ ok: boolean; reason?: string }> {
    this.published.push({ kind: 'signed', what: undefined });
    return { ok: true };
  }

  async withdrawHost(): Promise<void> {
    this.published.push({ kind: 'withdraw', what: undefined });
  }
}

export class FakeBgp implements BgpPort {
  adverts: readonly VpnAdvert[] = [];
  locators: readonly string[] = [];
  tenants: readonly { name: string; routeTarget: string }[] = [];
  readonly calls: string[] = [];

  async setAdverts(adverts: readonly VpnAdvert[]): Promise<void> {
    this.calls.push('setAdverts');
    this.adverts = adverts;
  }
  setFabricLocators(locators: readonly string[]): void {
    this.calls.push('setFabricLocators');
    this.locators = locators;
  }
  async setTenants(tenants: readonly { name: string; routeTarget: string }[]): Promise<void> {
    this.calls.push('setTenants');
    this.tenants = tenants;
  }
  async gracefulShutdown(): Promise<number> {
    this.calls.push('gracefulShutdown');
    return this.adverts.length;
  }
  async leave(): Promise<number> {
    this.calls.push('leave');
    const n = this.adverts.length;
    this.adverts = [];
    return n;
  }
}

/** Host links in memory: a pair per attached workload. */
export class FakeLinks implements HostLinks {
  readonly links = new Map<string, WorkloadLinkRequest>();
  readonly calls: string[] = [];

  async attach(req: WorkloadLinkRequest): Promise<{ mac: string }> {
    this.calls.push(`attach ${req.hostLink}`);
    if (this.links.has(req.hostLink)) throw new Error(`link ${req.hostLink} already exists`);
    this.links.set(req.hostLink, req);
    return { mac: '02:00:00:00:00:01' };
  }
  async detach(hostLink: string): Promise<boolean> {
    this.calls.push(`detach ${hostLink}`);
    return this.links.delete(hostLink);
  }
  async inspect(req: WorkloadLinkRequest): Promise<string[]> {
    return this.links.has(req.hostLink) ? [] : [`host link ${req.hostLink} is missing`];
  }
}
