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
import { workloadMtu as modelWorkloadMtu } from '../srv6/fabric.ts';
import { TENANT_UNREACHABLE_METRIC } from './constants.ts';
import type { Route } from './route.ts';

// The ruleset text is pure and lives with the kernel backend; re-exported for existing callers.
export {
  counterName,
  DROP_REASONS,
  type DropReason,
  IPV6_HEADER,
  type IsolationSpec,
  mssFor,
  nftFlushRuleset,
  nftIsolationRuleset,
  nftMssClampRuleset,
  nftName,
  TCP_HEADER,
  type WorkloadFilter,
} from './kernel/nft.ts';

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

/** The last route of a tenant table: nothing falls through to the main table. */
export function tenantUnreachable(table: number): Route {
  return { dst: { address: 0n, length: 0 }, table, type: 'unreachable', metric: TENANT_UNREACHABLE_METRIC };
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
