/**
 * Locators: the prefix under which a host's SIDs live (RFC 8986 3.1). A host either has one from its
 * configuration or derives it from the fabric's locator block: the node bits come from a hash of the
 * host name, probed past collisions in name order, so every host computes the same answer for the same
 * set of hosts.
 */
import { formatPrefix, type Ipv6Prefix, makePrefix, prefixesOverlap, setBits } from './address.ts';
import { hash53 } from './hash.ts';
import { formatStructure, locatorLength, type SidStructure } from './sid.ts';

export class LocatorError extends Error {
  override readonly name = 'LocatorError';
}

/**
 * Assigns locators from `block` to the hosts that have none. `fixed` holds the configured ones (they
 * are kept and avoided). Deterministic for a given set of host names.
 */
export function deriveLocators(
  block: Ipv6Prefix,
  structure: SidStructure,
  hosts: readonly string[],
  fixed: ReadonlyMap<string, Ipv6Prefix> = new Map(),
): Map<string, Ipv6Prefix> {
  if (block.length !== structure.locatorBlockLength) {
    throw new LocatorError(
      `locator block ${formatPrefix(block)} is a /${block.length}, but SID structure ${formatStructure(structure)} has a ${structure.locatorBlockLength}-bit block; make them agree`,
    );
  }
  const nodeBits = structure.locatorNodeLength;
  if (nodeBits < 1)
    throw new LocatorError('SID structure has no node bits: locators cannot be derived from a block');
  const slots = 2 ** Math.min(nodeBits, 48);
  const length = locatorLength(structure);
  const result = new Map<string, Ipv6Prefix>();
  // Hex text, not the bigint: V8 hashes a BigInt by its low 64 bits, zero in every locator, so a
  // Set<bigint> of locators is a list and placing n hosts took O(n^2).
  const taken = new Set<string>();
  for (const [host, locator] of fixed) {
    result.set(host, locator);
    taken.add(locator.address.toString(16));
  }
  const pending = hosts
    .filter((h) => !fixed.has(h))
    .map((host) => ({ host, slot: 1 + (hash53(`locator:${host}`) % (slots - 1)) }))
    .sort((a, b) => a.slot - b.slot || (a.host < b.host ? -1 : 1));
  if (pending.length + taken.size > slots - 1) {
    throw new LocatorError(`${hosts.length} hosts do not fit the ${nodeBits} node bits of the locator block`);
  }
  for (const { host, slot } of pending) {
    let s = slot;
    for (;;) {
      const address = setBits(block.address, block.length, nodeBits, BigInt(s));
      const candidate = makePrefix(address, length);
      const clash = [...fixedOverlaps(candidate, fixed)];
      const key = address.toString(16);
      if (!taken.has(key) && clash.length === 0) {
        taken.add(key);
        result.set(host, candidate);
        break;
      }
      s = s + 1 >= slots ? 1 : s + 1;
    }
  }
  return result;
}

function* fixedOverlaps(candidate: Ipv6Prefix, fixed: ReadonlyMap<string, Ipv6Prefix>): Generator<string> {
  for (const [host, locator] of fixed) if (prefixesOverlap(candidate, locator)) yield host;
}
