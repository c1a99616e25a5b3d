/**
 * The kernel backend: realises forwarding intents on a Linux kernel through a {@link Dataplane}
 * (rtnetlink, generic netlink, `nft`), with the pure lowering of lower.ts and delta.ts. Everything it
 * installs carries the agent's protocol number and lives in its tables and nft tables (docs/dataplane.md).
 */
import type { Ipv6Address } from '../../srv6/address.ts';
import type { Behavior } from '../../srv6/behavior.ts';
import {
  ALL_SCOPES,
  type AttachmentDrops,
  type BackendCapabilities,
  type BackendCounters,
  type DataplaneBackend,
  type RealiseResult,
  type SidCounters,
} from '../backend.ts';
import type { Dataplane } from '../dataplane.ts';
import {
  attachments,
  diffIntents,
  emptyDelta,
  type ForwardingIntent,
  type HmacKeyItem,
  hmacKeys,
  type IntentDelta,
  localSids,
} from '../intent.ts';
import { DestinationIndex, kernelDelta } from './delta.ts';
import { type KernelLoweringOptions, kernelRuleset, kernelSysctls, lowerToKernel } from './lower.ts';
import { counterName, nftFlushRuleset } from './nft.ts';
import { AGENT_SYSCTLS, workloadSysctls } from './sysctls.ts';
import { MAIN_TABLE } from './tables.ts';

export interface KernelBackendOptions extends KernelLoweringOptions {
  /** TCP MSS the clamp toward the attached links enforces. */
  readonly mss: number;
  /** The kernel has VRF devices (End.DT4/DT46, IPv4 inside SRv6). */
  readonly vrf?: boolean;
  /** The kernel has seg6 HMAC (CONFIG_IPV6_SEG6_HMAC). */
  readonly hmac?: boolean;
  /**
   * SRHs arriving on the underlay must carry a valid HMAC (`seg6_require_hmac=1` there): the host's
   * configuration asks for HMAC (dataplane.hmac). Without it the kernel still checks an HMAC that is
   * present against the installed keys.
   */
  readonly requireHmac?: boolean;
  /** The outer source of packets the kernel encapsulates (seg6 tunsrc), set by prepare(). */
  readonly tunnelSource?: Ipv6Address;
}

const BASE_BEHAVIORS: readonly Behavior[] = ['End', 'End.X', 'End.T', 'End.DX6', 'End.DT6', 'End.B6.Encaps'];

export function kernelCapabilities(o: { vrf?: boolean; hmac?: boolean }): BackendCapabilities {
  return {
    name: 'kernel',
    // Linux has no End.B6.Encaps.Red. End.DT4/DT46 take only `vrftable` (a VRF device bound to the
    // tenant's table), which this backend does not create yet: it claims neither, so IPv4 tenants are
    // refused by name on it (the eBPF backend runs them without VRF).
    behaviors: new Set<Behavior>(BASE_BEHAVIORS),
    encapModes: new Set(['encap', 'encap.red']),
    hmac: o.hmac ?? false,
    ipv4Inner: false,
    sourceSpecific: true,
    scopes: ALL_SCOPES, // routing tables chosen by ip rules (kernel/tables.ts)
  };
}

export class KernelBackend implements DataplaneBackend {
  readonly capabilities: BackendCapabilities;
  readonly #dp: Dataplane;
  readonly #opts: KernelBackendOptions;
  #ruleset: string | undefined;
  #realised: ForwardingIntent | undefined;
  /** The seg6 HMAC keys this backend installed, by id (the only ones it deletes). */
  readonly #keys = new Map<number, HmacKeyItem>();
  /** The SIDs and entries of #realised by destination: a delta's routes without a walk of the intent. */
  #index: DestinationIndex | undefined;

  /** `dp` stays the caller's: close() closes it. */
  constructor(dp: Dataplane, opts: KernelBackendOptions) {
    this.#dp = dp;
    this.#opts = opts;
    this.capabilities = kernelCapabilities(opts);
  }

  /** The host sysctls (forwarding, SRH processing on the underlay) and the tunnel source; once, first. */
  async prepare(): Promise<void> {
    for (const [key, value] of kernelSysctls(this.#opts.underlayDevice)) await this.#dp.setSysctl(key, value);
    if (this.#opts.requireHmac)
      await this.#dp.setSysctl(AGENT_SYSCTLS.seg6RequireHmacOn(this.#opts.underlayDevice), '1');
    if (this.#opts.tunnelSource !== undefined) await this.#dp.setTunsrc(this.#opts.tunnelSource);
  }

  async realise(intent: ForwardingIntent): Promise<RealiseResult> {
    const state = lowerToKernel(intent, this.#opts);
    // Keys first: an encapsulation that names a key id signs with it from its first packet.
    const keys = await this.#syncKeys(intent);
    const r = await this.#dp.reconcile(state.dataplane);
    await this.#applyRuleset(kernelRuleset(state, this.#opts.mss));
    this.#realised = r.conflicts.length === 0 ? intent : undefined;
    this.#index = this.#realised ? DestinationIndex.of(intent) : undefined;
    return {
      added: r.added + keys.added,
      replaced: r.replaced + keys.replaced,
      deleted: r.deleted + keys.deleted,
      conflicts: r.conflicts.map((c) => `${c.object}: ${c.reason}`),
      skipped: [], // lowering refuses what the kernel cannot do (the agent leaves it out beforehand)
    };
  }

  async applyDelta(
    before: ForwardingIntent,
    after: ForwardingIntent,
    delta: IntentDelta = diffIntents(before.items, after.items),
  ): Promise<RealiseResult> {
    if (emptyDelta(delta)) return { added: 0, replaced: 0, deleted: 0, conflicts: [], skipped: [] };
    const index = before === this.#realised ? this.#index : undefined;
    const writes = kernelDelta(before, after, delta, this.#opts, index);
    if (!writes) return this.realise(after);
    const keys = { added: 0, replaced: 0, deleted: 0 };
    for (const [items, count] of [
      [delta.added, 'added'],
      [delta.changed, 'replaced'],
    ] as const) {
      for (const i of items) {
        if (i.kind !== 'hmac-key') continue;
        await this.#dp.setHmacKey(i);
        this.#keys.set(i.keyId, i);
        keys[count]++;
      }
    }
    const { routes, rules } = writes;
    // Rules and new routes first, stale ones last: no packet meets a table without its route.
    if (rules.add.length > 0) await this.#dp.addRules(rules.add);
    if (routes.add.length > 0) await this.#dp.addRoutes(routes.add);
    if (routes.replace.length > 0) await this.#dp.replaceRoutes(routes.replace);
    if (routes.delete.length > 0) await this.#dp.deleteRoutes(routes.delete);
    if (rules.delete.length > 0) await this.#dp.deleteRules(rules.delete);
    // Keys last: a key goes once no route signs with it.
    for (const i of delta.removed) {
      if (i.kind !== 'hmac-key') continue;
      await this.#dp.deleteHmacKey(i.keyId);
      this.#keys.delete(i.keyId);
      keys.deleted++;
    }
    const touched = [...delta.added, ...delta.changed, ...delta.removed];
    if (touched.some((i) => i.kind === 'attachment'))
      await this.#applyRuleset(kernelRuleset(lowerToKernel(after, this.#opts), this.#opts.mss));
    if (index) index.apply(delta);
    this.#index = index;
    this.#realised = after;
    return {
      added: routes.add.length + rules.add.length + keys.added,
      replaced: routes.replace.length + keys.replaced,
      deleted: routes.delete.length + rules.delete.length + keys.deleted,
      conflicts: [],
      skipped: [],
    };
  }

  /**
   * Makes the kernel's seg6 HMAC keys hold the intent's: compared with what the kernel has (repairs
   * drift). The kernel marks no owner on a key, so only keys this backend installed are ever deleted;
   * a key set by hand under another id stays.
   */
  async #syncKeys(intent: ForwardingIntent): Promise<{ added: number; replaced: number; deleted: number }> {
    const out = { added: 0, replaced: 0, deleted: 0 };
    const wanted = new Map<number, HmacKeyItem>();
    for (const k of hmacKeys(intent)) wanted.set(k.keyId, k);
    if (wanted.size === 0 && this.#keys.size === 0) return out;
    const have = new Map((await this.#dp.listHmacKeys()).map((k) => [k.keyId, k]));
    for (const k of wanted.values()) {
      const h = have.get(k.keyId);
      const same =
        h !== undefined &&
        h.algorithm === k.algorithm &&
        Buffer.compare(Buffer.from(h.secret), Buffer.from(k.secret)) === 0;
      if (!same) {
        await this.#dp.setHmacKey(k);
        out[h ? 'replaced' : 'added']++;
      }
      this.#keys.set(k.keyId, k);
    }
    for (const id of [...this.#keys.keys()]) {
      if (wanted.has(id)) continue;
      if (have.has(id)) {
        await this.#dp.deleteHmacKey(id);
        out.deleted++;
      }
      this.#keys.delete(id);
    }
    return out;
  }

  async #applyRuleset(ruleset: string): Promise<void> {
    if (ruleset === this.#ruleset) return;
    await this.#dp.applyNft(ruleset);
    this.#ruleset = ruleset;
  }

  /** SRv6 is never processed on a workload's link (its SRHs would reach the host's SIDs). */
  async attach(link: string): Promise<void> {
    for (const [key, value] of workloadSysctls(link)) await this.#dp.setSysctl(key, value);
  }

  /** Nothing to undo: the kernel drops a link's routes with it; the next intent drops its rule and chain. */
  async detach(_link: string): Promise<void> {}

  async readCounters(): Promise<BackendCounters> {
    const sids = new Map<string, SidCounters>();
    const drops = new Map<string, AttachmentDrops>();
    const intent = this.#realised;
    if (!intent) return { sids, attachments: drops };
    // One dump of the main table for every SID (a dump per SID grew with SIDs x routes).
    const all = await this.#dp.allSidCounters(MAIN_TABLE);
    for (const s of localSids(intent)) {
      const c = all.get(s.sid);
      if (c) sids.set(s.key, c);
    }
    const nft = await this.#dp.nftCounters();
    for (const a of attachments(intent)) {
      if (!a.restrict) continue;
      const n = (reason: Parameters<typeof counterName>[1]) =>
        nft.get(counterName(a.link, reason))?.packets ?? 0;
      drops.set(a.link, {
        spoofedSource: n('spoofed_source'),
        sidBlock: n('sid_block'),
        hostAddress: n('host_address'),
      });
    }
    return { sids, attachments: drops };
  }

  /** Routes, rules and nexthops carrying the agent's protocol, its nft tables, its sysctls. */
  async flush(): Promise<void> {
    await this.#dp.flushOwned();
    await this.#dp.applyNft(nftFlushRuleset());
    // A key someone already removed is not an error here: flush wants it gone.
    for (const id of this.#keys.keys()) await this.#dp.deleteHmacKey(id).catch(() => undefined);
    this.#keys.clear();
    this.#ruleset = undefined;
    this.#realised = undefined;
    this.#index = undefined;
  }

  async close(): Promise<void> {
    await this.#dp.close();
  }
}
