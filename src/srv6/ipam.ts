/**
 * Opaque workload addresses (the seed's "routing opaque addresses"): an address names a workload, not
 * a place, so a workload keeps it when it moves. Derived from a hash of the workload identity inside
 * the tenant prefix, probed past addresses already claimed in the fabric, so the same identity gets the
 * same address on any host without coordination in the common case.
 */
import { formatIpv6, formatPrefix, type Ipv6Address, type Ipv6Prefix, prefixSize } from './address.ts';
import { hashBits } from './hash.ts';

export class IpamError extends Error {
  override readonly name = 'IpamError';
}

/** The address `identity` gets in `prefix` when nothing else holds it (skips the all-zero host part). */
export function preferredAddress(prefix: Ipv6Prefix, identity: string): Ipv6Address {
  const hostBits = 128 - prefix.length;
  if (hostBits < 2) throw new IpamError(`tenant prefix ${formatPrefix(prefix)} is too small for workloads`);
  const size = prefixSize(prefix);
  const offset = 1n + (hashBits(`workload:${identity}`, Math.min(hostBits, 120)) % (size - 1n));
  return prefix.address + offset;
}

/**
 * The address of `identity`, probing linearly past `taken` (addresses held by other identities).
 * `taken` must not contain the identity's own current address.
 */
export function allocateAddress(
  prefix: Ipv6Prefix,
  identity: string,
  taken: (address: Ipv6Address) => boolean,
  maxProbes = 1 << 16,
): Ipv6Address {
  const size = prefixSize(prefix);
  let address = preferredAddress(prefix, identity);
  for (let i = 0; i < maxProbes; i++) {
    if (!taken(address)) return address;
    address += 1n;
    if (address >= prefix.address + size) address = prefix.address + 1n;
  }
  throw new IpamError(
    `no free address for ${identity} in ${formatPrefix(prefix)} after ${maxProbes} probes from ${formatIpv6(preferredAddress(prefix, identity))}; the tenant prefix is too full`,
  );
}
