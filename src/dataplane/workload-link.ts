/**
 * Attaching a workload's network namespace to the fabric: a veth pair whose host end carries the
 * gateway link-local address and never processes SRH (seg6_enabled=0), and whose workload end carries
 * the opaque address as a /128, the MTU the segment lists leave room for, and a default route to the
 * host. Kernel work only; the caller records the workload and reconciles routes.
 */

import { type Ipv6Address, parseIpv6 } from '../srv6/address.ts';
import type { Dataplane } from './dataplane.ts';

/** The workload's next hop: the host end of every workload link carries it. */
export const GATEWAY = 'fe80::1';

export interface AttachRequest {
  readonly netns: string;
  readonly ifname: string;
  readonly hostLink: string;
  readonly address: Ipv6Address;
  readonly mtu: number;
}

export class AttachError extends Error {
  override readonly name = 'AttachError';
}

export type OpenNetns = (netns: string) => Promise<Dataplane>;

/** Creates the link pair and configures both ends; returns the link-layer addresses. Undone on failure. */
export async function attachWorkload(
  host: Dataplane,
  openNetns: OpenNetns,
  req: AttachRequest,
): Promise<{ mac: string; hostMac: string }> {
  const existing = (await host.listLinks()).find((l) => l.name === req.hostLink);
  if (existing) {
    throw new AttachError(
      `link ${req.hostLink} already exists on this host; the workload is attached already (detach it first)`,
    );
  }
  await host.addVeth({
    name: req.hostLink,
    peerName: req.ifname,
    peerNetns: req.netns,
    mtu: req.mtu,
    up: false,
  });
  let workload: Dataplane | undefined;
  try {
    // The host end: never an SRv6 endpoint (a workload must not reach seg6local through it).
    await host.setSysctl(`net.ipv6.conf.${req.hostLink}.seg6_enabled`, '0');
    await host.setSysctl(`net.ipv6.conf.${req.hostLink}.accept_dad`, '0');
    await host.setLink(req.hostLink, { up: true });
    // An interface address (host bits set), not a network prefix: built as such.
    await host.addAddress(req.hostLink, { address: parseIpv6(GATEWAY), length: 64 });

    workload = await openNetns(req.netns);
    await workload.setSysctl(`net.ipv6.conf.${req.ifname}.accept_dad`, '0');
    await workload.setLink('lo', { up: true });
    await workload.setLink(req.ifname, { up: true, mtu: req.mtu });
    await workload.addAddress(req.ifname, { address: req.address, length: 128 });
    await workload.addRoutes([
      { dst: { address: 0n, length: 0 }, table: 254, gateway: parseIpv6(GATEWAY), dev: req.ifname },
    ]);
    const mac = (await workload.listLinks()).find((l) => l.name === req.ifname)?.mac ?? '';
    const hostMac = (await host.listLinks()).find((l) => l.name === req.hostLink)?.mac ?? '';
    return { mac, hostMac };
  } catch (e) {
    await host.deleteLink(req.hostLink).catch(() => undefined);
    throw new AttachError(
      `cannot attach ${req.netns} (${req.ifname}, host link ${req.hostLink}): ${(e as Error).message}`,
    );
  } finally {
    await workload?.close();
  }
}

/** Removes the link pair (deleting one end removes both). Idempotent. */
export async function detachWorkload(host: Dataplane, hostLink: string): Promise<boolean> {
  const exists = (await host.listLinks()).some((l) => l.name === hostLink);
  if (!exists) return false;
  await host.deleteLink(hostLink);
  return true;
}
