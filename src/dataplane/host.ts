/**
 * The agent's second data-plane port, beside the backend (backend.ts): the host's links. A workload is
 * a veth pair (workload-link.ts) whose host end the backend hooks; the agent asks for it by what it is
 * (attach, detach, inspect), never by netlink calls, so that src/agent imports no netlink code. The
 * wiring opens both ports at once with {@link openHostDataplane}.
 */
import { formatIpv6, type Ipv6Address } from '../srv6/address.ts';
import type { Dataplane } from './dataplane.ts';
import { netnsPath } from './dataplane.ts';
import { openDataplane } from './index.ts';
import { mssFor } from './kernel/nft.ts';
import {
  BackendUnavailableError,
  type OpenBackendOptions,
  type OpenedBackend,
  openBackend,
} from './open-backend.ts';
import { checkUnderlayInterface } from './underlay.ts';
import { attachWorkload, detachWorkload } from './workload-link.ts';

export { UnderlayError } from './underlay.ts';
export { AttachError, GATEWAY } from './workload-link.ts';
export { BackendUnavailableError, netnsPath };

export interface WorkloadLinkRequest {
  /** The workload's network namespace (a path). */
  readonly netns: string;
  /** Its interface inside the namespace. */
  readonly ifname: string;
  /** The host end of the pair. */
  readonly hostLink: string;
  readonly address: Ipv6Address;
  readonly mtu: number;
}

export interface HostLinks {
  /**
   * Creates the pair, configures both ends, and pins the workload's link-layer address on the host end
   * (the eBPF backend delivers straight to it). Undone on failure. Returns the workload's MAC.
   */
  attach(req: WorkloadLinkRequest): Promise<{ mac: string }>;
  /** Removes the pair (idempotent). */
  detach(hostLink: string): Promise<boolean>;
  /** What is wrong with an attached workload's links and address (empty: nothing). */
  inspect(req: WorkloadLinkRequest): Promise<string[]>;
}

export interface HostDataplane {
  readonly links: HostLinks;
  readonly opened: OpenedBackend;
  /** Releases the netlink sockets (what is installed stays). */
  close(): Promise<void>;
}

export interface OpenHostOptions extends Omit<OpenBackendOptions, 'dp' | 'mss'> {
  /** MTU of workload links (the kernel backend clamps TCP MSS to it). */
  readonly workloadMtu: number;
  readonly maxSegments: number;
  /** Where the sysctls the data plane changes are recorded (for `segmesh dataplane flush`). */
  readonly sysctlStateFile: string;
  /** The agent's config file, named in errors about the underlay interface. */
  readonly configFile?: string;
  /** The host's netlink toolkit (tests pass one in a namespace; the caller then closes it). */
  readonly dataplane?: Dataplane;
  /** Opens the backend (tests inject one); open-backend.ts's choice by default. */
  readonly openBackend?: (o: OpenBackendOptions) => Promise<OpenedBackend>;
}

class NetlinkHostLinks implements HostLinks {
  readonly #dp: Dataplane;
  constructor(dp: Dataplane) {
    this.#dp = dp;
  }

  async attach(req: WorkloadLinkRequest): Promise<{ mac: string }> {
    const { mac } = await attachWorkload(this.#dp, (ns) => openDataplane({ netns: ns }), req);
    try {
      await this.#dp.setNeighbor(req.hostLink, req.address, mac);
    } catch (e) {
      await detachWorkload(this.#dp, req.hostLink).catch(() => undefined);
      throw e;
    }
    return { mac };
  }

  detach(hostLink: string): Promise<boolean> {
    return detachWorkload(this.#dp, hostLink);
  }

  async inspect(req: WorkloadLinkRequest): Promise<string[]> {
    const problems: string[] = [];
    const link = (await this.#dp.listLinks()).find((l) => l.name === req.hostLink);
    if (!link) problems.push(`host link ${req.hostLink} is missing`);
    else if (!link.up) problems.push(`host link ${req.hostLink} is down`);
    const inside = await openDataplane({ netns: req.netns }).catch((e: Error) => {
      problems.push(`cannot enter ${req.netns}: ${e.message}`);
      return undefined;
    });
    if (inside) {
      try {
        if (!(await inside.listLinks()).some((l) => l.name === req.ifname))
          problems.push(`${req.ifname} is missing in ${req.netns}`);
        if (!(await inside.listAddresses()).some((a) => a.address.address === req.address))
          problems.push(`${formatIpv6(req.address)} is missing on ${req.ifname}`);
      } finally {
        await inside.close();
      }
    }
    return problems;
  }
}

/**
 * Opens the host's data plane: checks the underlay interface, opens the backend the config asks for
 * (a {@link BackendUnavailableError} says why none fits) and the host's links.
 */
export async function openHostDataplane(o: OpenHostOptions): Promise<HostDataplane> {
  const {
    workloadMtu,
    maxSegments,
    sysctlStateFile,
    configFile,
    dataplane,
    openBackend: open,
    ...backend
  } = o;
  const dp = dataplane ?? (await openDataplane({ maxSegments, sysctlStateFile }));
  const owned = dataplane === undefined;
  try {
    await checkUnderlayInterface(dp, o.underlayDevice, configFile);
    const opened = await (open ?? openBackend)({ ...backend, dp, mss: mssFor(workloadMtu) });
    return {
      links: new NetlinkHostLinks(dp),
      opened,
      close: async () => {
        if (owned) await dp.close();
      },
    };
  } catch (e) {
    if (owned) await dp.close().catch(() => undefined);
    throw e;
  }
}
