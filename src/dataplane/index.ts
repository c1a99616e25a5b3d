/**
 * Segmesh's Linux data plane: seg6 / seg6local over rtnetlink, batched and reconciled, in any network
 * namespace. See docs/dataplane.md for what the agent owns in the kernel.
 */
import { NFT_MSS_TABLE, NFT_TABLE } from './constants.ts';
import { type Dataplane, type FlushResult, LinuxDataplane } from './dataplane.ts';
import { nftFlushRuleset } from './isolation.ts';
import { NetnsDataplane, type OpenDataplaneOptions } from './netns.ts';

export * from './constants.ts';
export {
  BatchWriteError,
  type Dataplane,
  type FlushResult,
  LinuxDataplane,
  type ReconcileResult,
} from './dataplane.ts';
export type {
  Encap,
  Seg6Encap,
  Seg6LocalAction,
  Seg6LocalCounters,
  Seg6LocalEncap,
  Seg6Mode,
} from './encap.ts';
export {
  DataplaneInputError,
  DumpInterruptedError,
  NetlinkError,
  TransportError,
  VrfUnsupportedError,
} from './errors.ts';
export {
  type IsolationSpec,
  mssFor,
  nftIsolationRuleset,
  nftMssClampRuleset,
  runNft,
  tenantUnreachable,
  workloadMtu,
} from './isolation.ts';
export { NetnsDataplane, type OpenDataplaneOptions } from './netns.ts';
export type { KernelNexthop, Nexthop } from './nexthop.ts';
export type { DesiredState } from './reconcile.ts';
export { coverSourceSubtrees, type KernelRoute, type Route } from './route.ts';
export type { KernelRule, Rule } from './rule.ts';
export { AGENT_SYSCTLS, type HostSysctlOptions, hostSysctls, workloadSysctls } from './sysctl.ts';

/** Opens the data plane in the current namespace, or in `opts.netns` through a setns worker thread. */
export async function openDataplane(opts: OpenDataplaneOptions = {}): Promise<Dataplane> {
  if (opts.netns === undefined) return new LinuxDataplane(opts);
  const dp = new NetnsDataplane({ ...opts, netns: opts.netns });
  await dp.whenReady();
  return dp;
}

export interface FlushOwnedResult extends FlushResult {
  readonly nftTablesRemoved: readonly string[];
}

/**
 * `segmesh dataplane flush`: removes only what the agent owns (routes, rules and nexthops carrying its
 * protocol number, its nft tables) and restores the sysctls it recorded in `sysctlStateFile`.
 */
export async function flushOwned(
  opts: OpenDataplaneOptions & { nft?: boolean } = {},
): Promise<FlushOwnedResult> {
  const dp = await openDataplane(opts);
  try {
    const result = await dp.flushOwned();
    let nftTablesRemoved: string[] = [];
    if (opts.nft !== false) {
      await dp.applyNft(nftFlushRuleset());
      nftTablesRemoved = [`netdev ${NFT_TABLE}`, `inet ${NFT_MSS_TABLE}`];
    }
    return { ...result, nftTablesRemoved };
  } finally {
    await dp.close();
  }
}
