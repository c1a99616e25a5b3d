/**
 * The kernel backend's nftables rulesets as text (pure; `nft -f -` applies them, isolation.ts):
 * - an nftables `netdev` ingress chain per workload veth drops packets toward the SID block and the
 *   host's own addresses (its link-local one too, but for ICMPv6: neighbour discovery), and packets
 *   whose source is not the workload's, with a named counter per reason; an SR-unaware function's link
 *   gets the same chain without the source rule (it hands back others' packets);
 * - an MSS clamp on forwarded TCP toward the workloads.
 */
import { formatIpv6, formatPrefix, type Ipv6Address, type Ipv6Prefix } from '../../srv6/address.ts';
import { NFT_MSS_TABLE, NFT_TABLE } from '../constants.ts';

/** Outer IPv6 header added by H.Encaps. */
export const IPV6_HEADER = 40;
export const TCP_HEADER = 20;

/** TCP MSS matching a link MTU (IPv6 + TCP headers without options). */
export function mssFor(mtu: number): number {
  return mtu - IPV6_HEADER - TCP_HEADER;
}

export interface WorkloadFilter {
  /** The host-side veth of the workload (the chain hooks its ingress). */
  readonly ifname: string;
  /**
   * Addresses the workload may send from (link-local is always allowed); none: any source (an
   * SR-unaware function's link, which hands back others' packets).
   */
  readonly sources: readonly Ipv6Prefix[];
}

export interface IsolationSpec {
  readonly workloads: readonly WorkloadFilter[];
  /** The fabric's SID block(s): a workload never sends to a SID itself. */
  readonly sidBlocks: readonly Ipv6Prefix[];
  /** The host's own addresses (agent API, BGP, gossip, ...). */
  readonly hostAddresses: readonly Ipv6Address[];
}

export const DROP_REASONS = ['spoofed_source', 'sid_block', 'host_address'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** nft identifiers: letters, digits, underscore. */
export function nftName(ifname: string): string {
  return ifname.replace(/[^A-Za-z0-9_]/g, '_');
}

export function counterName(ifname: string, reason: DropReason): string {
  return `${nftName(ifname)}_${reason}`;
}

const set = (items: string[]) => (items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`);

/**
 * The whole `netdev segmesh` table as an `nft -f` script that replaces the previous one atomically
 * (one transaction: create if missing, delete, define).
 */
export function nftIsolationRuleset(spec: IsolationSpec): string {
  const lines = [
    `table netdev ${NFT_TABLE}`,
    `delete table netdev ${NFT_TABLE}`,
    `table netdev ${NFT_TABLE} {`,
  ];
  for (const w of spec.workloads) {
    for (const r of DROP_REASONS) lines.push(`  counter ${counterName(w.ifname, r)} { }`);
  }
  for (const w of spec.workloads) {
    const name = nftName(w.ifname);
    lines.push(`  chain wl_${name} {`);
    lines.push(`    type filter hook ingress device "${w.ifname}" priority -500; policy accept;`);
    if (w.sources.length > 0) {
      const sources = [...w.sources.map(formatPrefix), 'fe80::/10'];
      lines.push(
        `    ip6 saddr != ${set(sources)} counter name "${counterName(w.ifname, 'spoofed_source')}" drop`,
      );
    }
    if (spec.sidBlocks.length > 0) {
      lines.push(
        `    ip6 daddr ${set(spec.sidBlocks.map(formatPrefix))} counter name "${counterName(w.ifname, 'sid_block')}" drop`,
      );
    }
    if (spec.hostAddresses.length > 0) {
      lines.push(
        `    ip6 daddr ${set(spec.hostAddresses.map(formatIpv6))} counter name "${counterName(w.ifname, 'host_address')}" drop`,
      );
    }
    // The host's side of the link: neighbour discovery and pings only; anything else would reach the
    // host's services that listen on every address (BGP, gossip, ssh).
    lines.push(
      `    ip6 daddr fe80::/10 meta l4proto != ipv6-icmp counter name "${counterName(w.ifname, 'host_address')}" drop`,
    );
    lines.push('  }');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

/** Removes the agent's nft tables (flush). */
export function nftFlushRuleset(): string {
  return [
    `table netdev ${NFT_TABLE}`,
    `delete table netdev ${NFT_TABLE}`,
    `table inet ${NFT_MSS_TABLE}`,
    `delete table inet ${NFT_MSS_TABLE}`,
    '',
  ].join('\n');
}

/**
 * MSS clamp on TCP handshakes forwarded *to* the workloads (second line behind the MTU). It matches on
 * the output side because encapsulation happens on lwtunnel input: on the sending host the forward
 * hook only sees the outer packet, while on the receiving host, after End.DT6 decapsulated it, the
 * handshake is plain TCP again. Clamping SYN and SYN/ACK there covers both directions.
 */
export function nftMssClampRuleset(workloadIfnames: readonly string[], mss: number): string {
  const lines = [
    `table inet ${NFT_MSS_TABLE}`,
    `delete table inet ${NFT_MSS_TABLE}`,
    `table inet ${NFT_MSS_TABLE} {`,
  ];
  lines.push('  chain forward {');
  lines.push('    type filter hook forward priority mangle; policy accept;');
  if (workloadIfnames.length > 0) {
    const names = workloadIfnames.map((n) => `"${n}"`);
    lines.push(
      `    oifname ${set(names)} tcp flags & (syn | rst) == syn tcp option maxseg size > ${mss} tcp option maxseg size set ${mss}`,
    );
  }
  lines.push('  }', '}');
  return `${lines.join('\n')}\n`;
}
