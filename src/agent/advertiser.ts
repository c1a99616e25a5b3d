/**
 * The advertiser: announces what this host serves once its forwarding is in place. In gossip its
 * host record (underlay, locator, SIDs, `leaving` while draining); toward the edge, over BGP, the VPN
 * routes of bgp/adverts.ts, per workload or one aggregate per tenant (`bgp.advertise`). Each is handed
 * over only when it changed.
 */
import { advertsForHost } from '../bgp/adverts.ts';
import { sidKey } from '../dataplane/intent.ts';
import { formatPrefix, type Ipv6Address, ipv6ToBytes } from '../srv6/address.ts';
import { IANA_BEHAVIOR_CODEPOINT } from '../srv6/behavior.ts';
import type { FabricView, WorkloadView } from '../srv6/fabric.ts';
import type { BgpPort, GossipPort, HostAdvert } from './ports.ts';

export interface AdvertiserDeps {
  readonly hostName: string;
  readonly underlay: Ipv6Address;
  readonly gossip: Pick<GossipPort, 'publishHost'>;
  /** Absent: no BGP configured. */
  readonly bgp?: Pick<BgpPort, 'setAdverts' | 'setFabricLocators' | 'setTenants'>;
  /** The router id (`bgp.routerId`): the RD of each advert is <router id>:<tenant id>. */
  readonly routerId?: string;
  /** Whether the host is leaving the fabric (draining). */
  readonly leaving: () => boolean;
  /**
   * Whether the data plane was handed the intent item `key` (a SID left out because the backend cannot
   * run it must not attract traffic from the edge). Absent: every SID counts as held.
   */
  readonly holds?: (key: string) => boolean;
  /** The view's workloads on this host, kept apart by the caller (absent: every workload is looked at). */
  readonly hostWorkloads?: () => Iterable<WorkloadView>;
}

export class Advertiser {
  readonly #d: AdvertiserDeps;
  #lastHost = '';
  #lastLocators: string | undefined;
  #lastTenants: string | undefined;
  /** The hosts and tenants maps the last two were made from (a workload event keeps both maps). */
  #locatorsOf: FabricView['hosts'] | undefined;
  #tenantsOf: FabricView['tenants'] | undefined;

  constructor(deps: AdvertiserDeps) {
    this.#d = deps;
  }

  /** Our own host record and our VPN routes for `view`, where they changed. */
  async advertise(view: FabricView): Promise<void> {
    await this.#hostRecord(view);
    await this.#bgp(view);
  }

  async #hostRecord(view: FabricView): Promise<void> {
    const self = view.hosts.get(this.#d.hostName);
    if (!self) return;
    const advert: HostAdvert = {
      name: this.#d.hostName,
      underlayAddress: ipv6ToBytes(this.#d.underlay),
      locator: { address: ipv6ToBytes(self.locator.address), length: self.locator.length },
      sids: self.sids.all.map((x) => ({
        address: ipv6ToBytes(x.sid),
        behavior: IANA_BEHAVIOR_CODEPOINT[x.behavior],
        tenant: x.tenant ?? '',
      })),
      endSid: ipv6ToBytes(self.sids.end.sid),
      ...(this.#d.leaving() ? { leaving: true } : {}),
    } as HostAdvert;
    const text = JSON.stringify(advert, (_k, v) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
    );
    if (text === this.#lastHost) return;
    await this.#d.gossip.publishHost(advert);
    this.#lastHost = text;
  }

  async #bgp(view: FabricView): Promise<void> {
    const bgp = this.#d.bgp;
    if (!bgp || this.#d.routerId === undefined) return;
    // Gossip is the authority for the fabric: a BGP route whose SID lies in a fabric locator is dropped.
    // Both settings are handed over only when they change: each re-judges every learned route, and the
    // tenants rewrite gobgpd's import policy (several API calls), which must not sit on every reconcile.
    // Both are looked at only when the view's maps were replaced (a full reconcile): a workload event
    // changes neither, and formatting a thousand locators per event would cost more than the event.
    if (view.hosts !== this.#locatorsOf) {
      const locators = [...view.hosts.values()].map((h) => formatPrefix(h.locator));
      if (locators.join() !== this.#lastLocators) {
        bgp.setFabricLocators(locators);
        this.#lastLocators = locators.join();
      }
      this.#locatorsOf = view.hosts;
    }
    if (view.tenants !== this.#tenantsOf) {
      const tenants = [...view.tenants.values()]
        .filter((t) => t.routeTarget)
        .map((t) => ({ name: t.name, routeTarget: t.routeTarget! }));
      const tenantsKey = JSON.stringify(tenants);
      if (tenantsKey !== this.#lastTenants) {
        await bgp.setTenants(tenants);
        this.#lastTenants = tenantsKey;
      }
      this.#tenantsOf = view.tenants;
    }
    const holds = this.#d.holds ?? (() => true);
    await bgp.setAdverts(
      advertsForHost(view, this.#d.hostName, this.#d.routerId, this.#d.hostWorkloads?.()).filter((a) =>
        holds(sidKey(a.sid)),
      ),
    );
  }
}
