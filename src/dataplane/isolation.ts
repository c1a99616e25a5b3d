/**
 * Tenant isolation primitives and the MTU rule (see docs/dataplane.md):
 * - every tenant table ends in `unreachable default` so a miss never falls through to main;
 * - an nftables `netdev` ingress chain per workload veth drops packets toward the SID block and the
 *   host's own addresses, and packets whose source is not the workload's, with a named counter per
 *   reason;
 * - workload MTU from the longest segment list, plus an MSS clamp on forwarded TCP.
 *
 * nftables is driven by `nft -f -` with a generated ruleset: it changes when workloads come and go,
 * not per route, so it is not on the route-programming hot path.
 */

import { spawn } from 'node:child_process';
import { formatIpv6, formatPrefix, type Ipv6Address, type Ipv6Prefix } from '../srv6/address.ts';
import { workloadMtu as modelWorkloadMtu } from '../srv6/fabric.ts';
import { NFT_MSS_TABLE, NFT_TABLE, TENANT_UNREACHABLE_METRIC } from './constants.ts';
import type { Route } from './route.ts';

/** Outer IPv6 header added by H.Encaps. */
export const IPV6_HEADER = 40;
export const TCP_HEADER = 20;

export interface MtuInput {
  /** MTU of the underlay links (default 1500). */
  readonly underlayMtu?: number;
  /** Longest segment list the agent will push on workload traffic. */
  readonly maxSegments: number;
  /** HMAC TLV (40 bytes) on every SRH. */
  readonly hmac?: boolean;
}

/**
 * Workload link MTU = underlay MTU - 40 (outer IPv6) - (8 + 16 * maxSegments) (SRH) - 40 (HMAC TLV, if on).
 * The same for encap.red: the kernel reserves the full SRH in its headroom even when it omits it.
 */
export function workloadMtu(input: MtuInput): number {
  const underlay = input.underlayMtu ?? 1500;
  // One formula for the planner and the data plane: the model's (src/srv6/fabric.ts).
  const mtu = modelWorkloadMtu(underlay, input.maxSegments, input.hmac ?? false);
  if (mtu < 1280) {
    throw new RangeError(
      `workload MTU ${mtu} (underlay ${underlay}, ${input.maxSegments} segments${input.hmac ? ', HMAC' : ''}) is below IPv6's 1280: ` +
        'raise the underlay MTU or lower maxSegments',
    );
  }
  return mtu;
}

/** TCP MSS matching a link MTU (IPv6 + TCP headers without options). */
export function mssFor(mtu: number): number {
  return mtu - IPV6_HEADER - TCP_HEADER;
}

/** The last route of a tenant table: nothing falls through to the main table. */
export function tenantUnreachable(table: number): Route {
  return { dst: { address: 0n, length: 0 }, table, type: 'unreachable', metric: TENANT_UNREACHABLE_METRIC };
}

export interface WorkloadFilter {
  /** The host-side veth of the workload (the chain hooks its ingress). */
  readonly ifname: string;
  /** Addresses the workload may send from (link-local is always allowed). */
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
    const sources = [...w.sources.map(formatPrefix), 'fe80::/10'];
    lines.push(
      `    ip6 saddr != ${set(sources)} counter name "${counterName(w.ifname, 'spoofed_source')}" drop`,
    );
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

export class NftError extends Error {
  override readonly name = 'NftError';
  readonly stderr: string;
  constructor(stderr: string, code: number | null) {
    super(
      `nft -f - exited with ${code}: ${stderr.trim().slice(0, 500)}; is nftables installed and are the devices present?`,
    );
    this.stderr = stderr;
  }
}

/** Runs `nft -f -` (in the calling thread's network namespace: a child inherits it). */
export function runNft(ruleset: string): Promise<string> {
  return nft(['-f', '-'], ruleset);
}

/** Runs `nft ARGS` (e.g. `-j list counters ...`), feeding `stdin`. */
export function nft(args: readonly string[], stdin = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('nft', [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    p.on('error', (e) => reject(new NftError(e.message, null)));
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new NftError(err, code))));
    p.stdin.end(stdin);
  });
}

/** Parses `nft -j list counters table netdev segmesh` into name -> packets. */
export function parseNftCounters(json: string): Map<string, { packets: number; bytes: number }> {
  const out = new Map<string, { packets: number; bytes: number }>();
  const doc = JSON.parse(json) as {
    nftables?: { counter?: { name: string; packets: number; bytes: number } }[];
  };
  for (const item of doc.nftables ?? []) {
    if (item.counter)
      out.set(item.counter.name, { packets: item.counter.packets, bytes: item.counter.bytes });
  }
  return out;
}
