/**
 * Workloads on this host: address management (IPAM) and attach/detach. A workload is attached in this
 * order, make before break: its links (HostLinks), the backend's hook on the link, the local store,
 * its routes (one incremental reconcile), and only then its claim in gossip, so that by the time others
 * steer traffic here delivery is in place. Detach runs the other way round.
 */
import type { Logger } from 'pino';
import type { DataplaneBackend } from '../dataplane/backend.ts';
import { GATEWAY, type HostLinks } from '../dataplane/host.ts';
import { entryKey } from '../dataplane/intent.ts';
import {
  formatIpv6,
  formatPrefix,
  type Ipv6Address,
  ipv6FromBytes,
  ipv6ToBytes,
  parseIpv6,
  prefixContains,
} from '../srv6/address.ts';
import { workloadLinkName } from '../srv6/fabric.ts';
import { allocateAddress } from '../srv6/ipam.ts';
import { AgentError, checkIfname } from './errors.ts';
import { checkNetworkNamespace } from './netns.ts';
import type { GossipPort } from './ports.ts';
import type { Reconciler } from './reconciler.ts';
import type { LocalWorkload, LocalWorkloadStore } from './workloads.ts';

export interface AddWorkloadInput {
  readonly identity?: string;
  readonly tenant: string;
  readonly netns: string;
  readonly ifname?: string;
  readonly containerId?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly address?: string;
}

export interface AddWorkloadResult {
  readonly workload: LocalWorkload;
  readonly gateway: string;
  readonly moved: boolean;
  readonly existing: boolean;
}

export interface WorkloadQuery {
  readonly identity?: string;
  readonly containerId?: string;
  readonly ifname?: string;
}

export interface WorkloadManagerDeps {
  readonly log: Logger;
  readonly hostName: string;
  /** MTU of workload links (what the segment lists leave room for). */
  readonly mtu: number;
  readonly store: LocalWorkloadStore;
  readonly links: HostLinks;
  readonly backend: Pick<DataplaneBackend, 'attach' | 'detach'>;
  readonly gossip: Pick<GossipPort, 'hostId' | 'view' | 'publishWorkload' | 'removeWorkload'>;
  readonly reconciler: Pick<Reconciler, 'noteWorkload' | 'reconcileNow' | 'settled' | 'view' | 'applied'>;
  readonly draining: () => boolean;
  /** Resolves and checks a network namespace (tests pass their own). */
  readonly checkNetns?: (netns: string) => Promise<string>;
}

export class WorkloadManager {
  readonly #d: WorkloadManagerDeps;
  /** Workloads attached and waiting for their routes, to be claimed in gossip right after them. */
  readonly #claims = new Set<string>();

  constructor(deps: WorkloadManagerDeps) {
    this.#d = deps;
  }

  list(): LocalWorkload[] {
    return this.#d.store.list();
  }

  find(req: WorkloadQuery): LocalWorkload | undefined {
    const store = this.#d.store;
    return (
      (req.identity ? store.get(req.identity) : undefined) ??
      (req.containerId ? store.byContainer(req.containerId, req.ifname) : undefined)
    );
  }

  /** Publishes the claim of one workload of ours (with this host's delivery SID for its tenant). */
  async publish(w: LocalWorkload): Promise<void> {
    const delivery = this.#d.reconciler.view?.hosts
      .get(this.#d.hostName)
      ?.sids.tenantDelivery.get(w.tenant)?.sid;
    await this.#d.gossip.publishWorkload({
      workloadId: w.id,
      tenant: w.tenant,
      opaqueAddress: ipv6ToBytes(parseIpv6(w.address)),
      ...(delivery !== undefined ? { deliverySid: ipv6ToBytes(delivery) } : {}),
    });
    // The claim may decide where the workload runs (fabric-state.ts): re-planned at the next reconcile.
    this.#d.reconciler.noteWorkload(w.id);
  }

  /** At start: claims our workloads again, but never over a newer claim elsewhere (it moved meanwhile). */
  async reclaim(): Promise<void> {
    const known = this.#d.gossip.view().workloads;
    for (const w of this.#d.store.list()) {
      const winner = known.get(w.id);
      if (!winner || winner.hostId === this.#d.gossip.hostId) await this.publish(w);
    }
  }

  /** The claims of workloads attached since the last reconcile (their routes are in place now). */
  async publishClaims(): Promise<void> {
    await Promise.all(
      [...this.#claims].map(async (id) => {
        const w = this.#d.store.get(id);
        if (w) await this.publish(w);
        this.#claims.delete(id); // kept when publishing failed: add() tries again
      }),
    );
  }

  async add(req: AddWorkloadInput): Promise<AddWorkloadResult> {
    const d = this.#d;
    if (d.draining()) {
      throw new AgentError(
        'precondition',
        'this host is draining (segmesh drain): start the workload on another host',
      );
    }
    const view = d.gossip.view();
    const tenantRecord = [...view.tenants.values()].find((t) => t.record.name === req.tenant)?.record;
    if (!tenantRecord) {
      throw new AgentError(
        'invalid',
        `unknown tenant ${req.tenant}; tenants come signed by the operator (segmesh policy apply FILE)`,
      );
    }
    const ifname = req.ifname || 'eth0';
    checkIfname(ifname);
    // Before anything is attached: the path must be a network namespace, and not the host's own.
    const netns = await (d.checkNetns ?? checkNetworkNamespace)(req.netns);
    const containerId = req.containerId ?? '';
    const id = req.identity || `anon/${containerId || req.netns}`;
    const existing = d.store.get(id);
    if (existing) {
      if (existing.containerId === containerId && existing.netns === req.netns) {
        return { workload: existing, gateway: GATEWAY, moved: false, existing: true };
      }
      throw new AgentError(
        'exists',
        `identity ${id} already runs on this host (container ${existing.containerId || existing.netns}); ` +
          'an identity runs once: delete the old instance first, or start it on another host to move it',
      );
    }
    const remote = [...view.workloads.values()].find((w) => w.id === id && w.hostId !== d.gossip.hostId);
    const address = this.#address(req, id, tenantRecord.prefixes, remote?.address);
    const hostLink = workloadLinkName(id);
    const { mac } = await d.links.attach({ netns, ifname, hostLink, address, mtu: d.mtu });
    try {
      // The backend's hook on the link, before any entry points at it.
      await d.backend.attach(hostLink);
    } catch (e) {
      await d.links.detach(hostLink).catch(() => undefined);
      throw new AgentError('failed', `cannot hook ${hostLink} into the data plane: ${(e as Error).message}`);
    }
    const workload: LocalWorkload = {
      id,
      sticky: Boolean(req.identity),
      tenant: req.tenant,
      address: formatIpv6(address),
      netns: req.netns,
      ifname,
      hostLink,
      containerId,
      labels: req.labels ?? {},
      mtu: d.mtu,
      mac,
      attachedAtMs: Date.now(),
    };
    await d.store.put(workload);
    // Routes first, then the claim: the reconcile claims the workload as soon as its routes are in.
    this.#claims.add(id);
    d.reconciler.noteWorkload(id);
    await d.reconciler.reconcileNow();
    if (this.#claims.delete(id)) await this.publish(workload); // that reconcile failed
    // A claim elsewhere that looked newer than this attach (clocks apart) made that reconcile redirect;
    // our claim, just published, is newer still: deliver here. (Our own publishes raise no event.)
    if (d.reconciler.view?.workloads.get(id)?.host !== this.#d.hostName) await d.reconciler.reconcileNow();
    await d.reconciler.settled();
    d.log.info({ workload: id, address: workload.address, moved: Boolean(remote) }, 'workload attached');
    return { workload, gateway: GATEWAY, moved: Boolean(remote), existing: false };
  }

  /** The address: the one asked for, the one it had elsewhere (mobility), or a fresh one. */
  #address(
    req: AddWorkloadInput,
    id: string,
    prefixBytes: readonly { address: Uint8Array; length: number }[],
    remoteHex: string | undefined,
  ): Ipv6Address {
    const prefixes = prefixBytes.map((p) => ({ address: ipv6FromBytes(p.address), length: p.length }));
    const claimed = new Map<bigint, string>();
    for (const w of this.#d.gossip.view().workloads.values()) {
      if (w.tenant === req.tenant) claimed.set(BigInt(`0x${w.address}`), w.id);
    }
    for (const w of this.#d.store.list())
      if (w.tenant === req.tenant) claimed.set(parseIpv6(w.address), w.id);
    if (req.address) {
      let address: Ipv6Address;
      try {
        address = parseIpv6(req.address);
      } catch {
        throw new AgentError(
          'invalid',
          `address ${req.address} is not an IPv6 address: give one such as 2001:db8:b100::10`,
        );
      }
      if (!prefixes.some((p) => prefixContains(p, address))) {
        throw new AgentError(
          'invalid',
          `address ${req.address} is outside tenant ${req.tenant}'s prefixes ${prefixes.map(formatPrefix).join(', ')}`,
        );
      }
      const holder = claimed.get(address);
      if (holder !== undefined && holder !== id) {
        throw new AgentError('exists', `address ${req.address} is held by workload ${holder}`);
      }
      return address;
    }
    // Mobility: the identity keeps its address wherever it runs.
    if (remoteHex !== undefined) return BigInt(`0x${remoteHex}`);
    return allocateAddress(prefixes[0]!, id, (a) => claimed.has(a) && claimed.get(a) !== id);
  }

  async delete(req: WorkloadQuery): Promise<boolean> {
    const d = this.#d;
    const w = this.find(req);
    if (!w) return false;
    await d.gossip.removeWorkload(w.id);
    await d.store.delete(w.id);
    d.reconciler.noteWorkload(w.id);
    await d.reconciler.reconcileNow();
    // No entry may name the link when it goes (nft refuses a chain on a missing device).
    await d.reconciler.settled();
    await d.backend.detach(w.hostLink).catch((e: Error) => {
      d.log.warn({ err: e, link: w.hostLink }, 'unhooking the link failed; it goes anyway');
    });
    await d.links.detach(w.hostLink);
    d.log.info({ workload: w.id }, 'workload detached');
    return true;
  }

  /** CHECK: the workload's link, address and delivery entry are as attached. */
  async check(req: WorkloadQuery & { readonly address?: string }): Promise<string[]> {
    const d = this.#d;
    const w = this.find(req);
    if (!w) {
      const which = req.identity ? `identity ${req.identity}` : `container ${req.containerId ?? ''}`;
      throw new AgentError(
        'not-found',
        `no workload with ${which} on this host (segmesh workloads lists them)`,
      );
    }
    const problems: string[] = [];
    if (req.address) {
      let asked: Ipv6Address;
      try {
        asked = parseIpv6(req.address);
      } catch {
        throw new AgentError('invalid', `address ${req.address} is not an IPv6 address`);
      }
      if (asked !== parseIpv6(w.address))
        problems.push(`the runtime expects ${req.address}, the agent gave ${w.address}`);
    }
    const address = parseIpv6(w.address);
    const found = await d.links.inspect({
      netns: w.netns,
      ifname: w.ifname,
      hostLink: w.hostLink,
      address,
      mtu: w.mtu,
    });
    problems.push(...found);
    const scope = d.reconciler.view?.tenants.get(w.tenant)?.scopes.delivery;
    const delivery = scope && d.reconciler.applied?.items.get(entryKey(scope, { address, length: 128 }));
    if (!delivery) problems.push(`no delivery route for ${w.address} in the agent's plan`);
    return problems;
  }
}
