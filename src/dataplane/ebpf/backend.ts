/**
 * The eBPF backend: realises forwarding intents with the tc programs of bpf/segmesh.c and their maps,
 * for kernels without seg6 lwtunnels or VRF. A thin adapter: lower.ts lowers the intent to map entries
 * (and the few routes the programs' FIB lookups need); here they are compared with what the pinned maps
 * hold and the minimal writes made, new before old.
 *
 * Pins (one folder per host on its own bpffs, `ip netns exec` hides /sys/fs/bpf): the maps by name,
 * `link_ul_in_<dev>` / `link_wl_in_<dev>` the tcx links. close() leaves them, so forwarding goes on
 * across agent restarts and a new backend adopts them; flush() removes them.
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import koffi from 'koffi';
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
import { type Dataplane, netnsPath } from '../dataplane.ts';
import {
  attachments,
  type ForwardingIntent,
  type IntentDelta,
  type IntentItem,
  localSids,
} from '../intent.ts';
import { sameRoute } from '../kernel/delta.ts';
import { AGENT_SYSCTLS } from '../kernel/sysctls.ts';
import type { Route } from '../route.ts';
import {
  ifindexKey,
  MAP,
  parseLinkDropKey,
  policyOfExact,
  REASON_SLOTS,
  Reason,
  type ReasonName,
  sidKey,
  u32Key,
} from './abi.ts';
import {
  attachClsact,
  attachTcx,
  BpfBatchError,
  BpfError,
  BpfMap,
  BpfObject,
  type BpfProgram,
  closeFd,
  ensureBpffs,
  linkUpdate,
  objGet,
  pinFd,
  unpin,
} from './libbpf.ts';
import {
  diffMap,
  diffRoutes,
  type EbpfLoweringOptions,
  type EbpfState,
  emptySlot,
  hex,
  type LinkFacts,
  lowerDelta,
  lowerToEbpf,
  type MapEntry,
  type MapWrites,
  type NexthopSlots,
  OWNED_MAPS,
  parseMac,
  sidSlotsOfMap,
  slotsOfMap,
  stateKey,
} from './lower.ts';

const run = promisify(execFile);

export interface EbpfBackendOptions {
  readonly underlayDevice: string;
  /** Outer source address of encapsulated packets (this host's SRv6 source). */
  readonly source: Ipv6Address;
  /** The host's pin folder, e.g. /run/segmesh/bpf/<host>; a bpffs is mounted there if none is. */
  readonly pinDir: string;
  /** build/bpf/segmesh.o by default. */
  readonly objectPath?: string;
  /** The network namespace (a /run/netns name) the host's links live in; omit: this one. */
  readonly netns?: string;
  readonly icmp4Source?: string;
}

/** Behaviours the programs run (sm_behavior in bpf/lib/abi.h). */
const BEHAVIORS: readonly Behavior[] = [
  'End',
  'End.X',
  'End.DT6',
  'End.DT4',
  'End.DT46',
  'End.DX6',
  'End.DX4',
];

export function ebpfCapabilities(): BackendCapabilities {
  return {
    name: 'ebpf',
    behaviors: new Set(BEHAVIORS),
    encapModes: new Set(['encap', 'encap.red']),
    hmac: false, // no HMAC in BPF yet
    ipv4Inner: true, // End.DT4 / End.DT46 by FIB lookup in the tenant's table, no VRF
    // The policy LPM is keyed by {key space, destination}: no source prefix (a return scope's entries
    // from policies with `from` are refused by that, the rest of the scope realised).
    sourceSpecific: false,
    // sm_policy (its /128s in sm_exact) has a key space per scope: egress, delivery redirects, forward (End.DT* of a forward
    // SID), return (wl_in on an SR-unaware function's link); the underlay is the main table.
    scopes: ALL_SCOPES,
  };
}

/**
 * The host sysctls of the eBPF backend: forwarding on, and SRH processing OFF on all interfaces and the
 * underlay: ul_in runs the local SIDs, and the kernel's own End.DT of a SID that is a local address
 * would decapsulate into the main table, past the tenants. SIDs are never assigned as addresses.
 */
export function ebpfSysctls(underlayDevice: string): [string, string][] {
  return [
    [AGENT_SYSCTLS.acceptRa(underlayDevice), '2'],
    [AGENT_SYSCTLS.forwarding, '1'],
    ['net.ipv6.conf.all.seg6_enabled', '0'],
    [AGENT_SYSCTLS.seg6Enabled(underlayDevice), '0'],
  ];
}

export interface EbpfCounters extends BackendCounters {
  /** Every verdict slot of sm_counters, per-CPU summed (the whole host). */
  readonly reasons: ReadonlyMap<ReasonName, bigint>;
  /** Drops by ingress link name (`ifindex N` for a link that is gone) and reason, per-CPU summed. */
  readonly linkDrops: ReadonlyMap<string, ReadonlyMap<ReasonName, bigint>>;
}

const CLONE_NEWNET = 0x40000000;
let setns: ((fd: number, type: number) => number) | undefined;

/** Runs `fn` (synchronous FFI only) with this thread in `netns`: ifindexes and tcx attach are per namespace. */
function inNetns<T>(netns: string | undefined, fn: () => T): T {
  if (!netns) return fn();
  setns ??= koffi.load('libc.so.6').func('int setns(int fd, int nstype)') as (
    fd: number,
    type: number,
  ) => number;
  const back = openSync('/proc/thread-self/ns/net', 'r');
  const fd = openSync(netnsPath(netns), 'r');
  try {
    if (setns(fd, CLONE_NEWNET) !== 0) throw new Error(`setns into ${netns}: errno ${koffi.errno()}`);
  } finally {
    closeSync(fd);
  }
  try {
    return fn();
  } finally {
    // Back to where the thread was; a failure here leaves it elsewhere: say so loudly.
    if (setns(back, CLONE_NEWNET) !== 0)
      process.emitWarning(`setns back from ${netns}: errno ${koffi.errno()}`);
    closeSync(back);
  }
}

const BPF_MAP_TYPE_ARRAY = 2;

/**
 * Whether `m` is sm_nexthops as an array (an older object's is a hash): every slot exists, an empty one
 * (oif 0) stands for no entry, and a slot is emptied by writing zeros (an array's entries cannot be
 * deleted).
 */
function slotArray(m: BpfMap): boolean {
  return m.name === MAP.nexthops && m.type === BPF_MAP_TYPE_ARRAY;
}

/** A map's entries as a diff's `have` (stateKey -> value): one dump; an array's empty slots left out. */
function haveOf(m: BpfMap): Map<string, Uint8Array> {
  const have = new Map<string, Uint8Array>();
  const slots = slotArray(m);
  for (const [k, v] of m.entries()) if (!slots || !emptySlot(v)) have.set(stateKey(k), v);
  return have;
}

/** The slots of the sm_nexthops pinned at `pin` (an older object's, hash or array, being replaced). */
function pinnedSlots(pin: string): NexthopSlots {
  const m = BpfMap.openPinned(pin);
  try {
    return slotsOfMap(m.entries());
  } finally {
    m.close();
  }
}

/**
 * Makes a map's writes: puts (one batch) before deletes (one batch), or per entry where the kernel has
 * no batch for the map's type. A failed write names the intent item whose entry it was. The slot
 * array's deletes are writes of an empty slot (zeros).
 */
function writeMap(m: BpfMap, w: MapWrites): void {
  writePuts(m, w);
  writeDeletes(m, w);
}

function writePuts(m: BpfMap, w: MapWrites): void {
  try {
    m.updateMany(
      w.put.map((e) => e.key),
      w.put.map((e) => e.value),
    );
  } catch (e) {
    if (!(e instanceof BpfBatchError)) throw e;
    const item = w.put[e.index]?.item ?? '?';
    throw new Error(
      `writing map ${m.name}: the entry of ${item} (${e.index} of ${w.put.length}; the ones before it are written) failed: ${e.message}`,
      { cause: e },
    );
  }
}

function writeDeletes(m: BpfMap, w: MapWrites): void {
  if (w.delete.length === 0) return;
  if (slotArray(m)) {
    const empty = new Uint8Array(m.valueSize);
    const emptied = w.delete.map((key) => ({ key, value: empty, item: `empty slot ${hex(key)}` }));
    writePuts(m, { put: emptied, delete: [], added: 0, replaced: 0 });
    return;
  }
  try {
    m.deleteMany(w.delete);
  } catch (e) {
    if (!(e instanceof BpfBatchError)) throw e;
    const key = w.delete[e.index];
    throw new Error(
      `deleting from map ${m.name}: key ${key ? hex(key) : '?'} (${e.index} of ${w.delete.length}) failed: ${e.message}`,
      { cause: e },
    );
  }
}

/** sm_policy's wanted entries with sm_exact's /128s among them (an object of before sm_exact). */
function withExactInPolicy(
  policy: ReadonlyMap<string, MapEntry>,
  exact: ReadonlyMap<string, MapEntry>,
): ReadonlyMap<string, MapEntry> {
  if (exact.size === 0) return policy;
  const out = new Map(policy);
  for (const e of exact.values()) {
    const key = policyOfExact(e.key);
    out.set(stateKey(key), { ...e, key });
  }
  return out;
}

/** sm_exact's writes as sm_policy's (an object of before sm_exact). */
function exactWritesAsPolicy(w: MapWrites): MapWrites {
  return {
    put: w.put.map((e) => ({ ...e, key: policyOfExact(e.key) })),
    delete: w.delete.map((k) => policyOfExact(k)),
    added: w.added,
    replaced: w.replaced,
  };
}

const REPO_OBJECT = join(import.meta.dirname, '../../../build/bpf/segmesh.o');

/** The BPF object the build step makes (build/bpf/segmesh.o of this checkout). */
export function ebpfObjectPath(): string {
  return REPO_OBJECT;
}

/**
 * Removes the backend's pins in `pinDir` (maps `sm_*`, tcx links `link_*`: a link whose last pin and fd
 * go detaches its program) and the folder, unmounting a bpffs mounted there. What a running agent
 * holds open lives on until it exits: flush a stopped agent's pins (`segmesh dataplane flush`).
 * Returns the pins removed.
 */
export async function flushPins(pinDir: string): Promise<string[]> {
  const removed: string[] = [];
  if (!existsSync(pinDir)) return removed;
  // Its pins only: the bpffs also shows the kernel's own files (maps.debug, progs.debug).
  for (const f of readdirSync(pinDir))
    if ((f.startsWith('sm_') || f.startsWith('link_')) && unpin(join(pinDir, f))) removed.push(f);
  const mounted = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === pinDir);
  if (mounted) await run('umount', [pinDir]);
  if (existsSync(pinDir)) rmdirSync(pinDir);
  return removed;
}

export class EbpfBackend implements DataplaneBackend {
  readonly capabilities = ebpfCapabilities();
  readonly #dp: Dataplane;
  readonly #o: EbpfBackendOptions;
  #obj: BpfObject | undefined;
  /** Open tcx link fds by pin name. */
  readonly #links = new Map<string, number>();
  /** clsact detaches (kernels before 6.6), by pin name. */
  readonly #clsact = new Map<string, () => void>();
  #facts = new Map<string, LinkFacts>();
  #realised: { intent: ForwardingIntent; state: EbpfState } | undefined;
  /** Items of the last intent it could not realise, with the reason. */
  skipped: readonly string[] = [];
  /**
   * Maps an upgrade replaced because their layout changed (`sm_policy (value size 40 -> 48)`), filled
   * from the intent before the links moved to the new programs; empty when every pin was adopted.
   */
  migrated: readonly string[] = [];

  /** `dp` (routes of the underlay and delivery scopes, sysctls, links) stays the caller's. */
  constructor(dp: Dataplane, opts: EbpfBackendOptions) {
    this.#dp = dp;
    this.#o = opts;
  }

  /** The host sysctls (docs/dataplane.md); once, before the first intent. */
  async prepare(): Promise<void> {
    for (const [key, value] of ebpfSysctls(this.#o.underlayDevice)) await this.#dp.setSysctl(key, value);
  }

  #load(): BpfObject {
    if (this.#obj) return this.#obj;
    ensureBpffs(this.#o.pinDir);
    // Pinned maps of an earlier run are adopted (libbpf reuses a compatible pin), new ones pinned.
    this.#obj = BpfObject.load(this.#o.objectPath ?? REPO_OBJECT, {
      pinMapsDir: this.#o.pinDir,
      programs: ['wl_in', 'ul_in'],
    });
    return this.#obj;
  }

  /** tcx link of `prog` on `dev`, pinned: adopted (and pointed at this object's program) when pinned. */
  #hook(prog: BpfProgram, dev: string, ifindex: number): void {
    const name = `link_${prog.name}_${dev}`;
    const pin = join(this.#o.pinDir, name);
    if (this.#links.has(name) || this.#clsact.has(name)) return;
    if (existsSync(pin)) {
      const fd = objGet(pin);
      try {
        linkUpdate(fd, prog); // atomic: no packet meets no program
        this.#links.set(name, fd);
        return;
      } catch {
        // a link whose device went away: replace it
        closeFd(fd);
        unpin(pin);
      }
    }
    inNetns(this.#o.netns, () => {
      try {
        const fd = attachTcx(prog, ifindex);
        pinFd(fd, pin);
        this.#links.set(name, fd);
      } catch (e) {
        if (!(e instanceof BpfError)) throw e;
        // No tcx (kernel < 6.6): clsact, which lives with the qdisc, not with a pin.
        this.#clsact.set(name, attachClsact(prog, ifindex));
      }
    });
  }

  #unhook(prog: string, dev: string): void {
    const name = `link_${prog}_${dev}`;
    const fd = this.#links.get(name);
    if (fd !== undefined) closeFd(fd);
    this.#links.delete(name);
    unpin(join(this.#o.pinDir, name));
    const d = this.#clsact.get(name);
    if (d) inNetns(this.#o.netns, d);
    this.#clsact.delete(name);
  }

  async #readFacts(intent: ForwardingIntent): Promise<Map<string, LinkFacts>> {
    const facts = new Map<string, LinkFacts>();
    const links = await this.#dp.listLinks();
    const byName = new Map(links.map((l) => [l.name, l]));
    for (const l of links) facts.set(l.name, { index: l.index, ...(l.mac ? { mac: parseMac(l.mac) } : {}) });
    // Local delivery rewrites the MACs: the workload's from its permanent neighbour entry (the agent
    // adds it on attach); one dump for all links.
    const wanted = [...attachments(intent)].filter((a) => a.address !== undefined && byName.has(a.link));
    if (wanted.length === 0) return facts;
    const neighbors = await this.#dp.listNeighbors();
    for (const a of wanted) {
      const l = byName.get(a.link)!;
      const n = neighbors.find((x) => x.index === l.index && x.address === a.address && x.mac);
      if (n?.mac) facts.set(a.link, { ...facts.get(a.link)!, peerMac: parseMac(n.mac) });
    }
    return facts;
  }

  #options(facts: ReadonlyMap<string, LinkFacts>): EbpfLoweringOptions {
    return {
      underlayDevice: this.#o.underlayDevice,
      source: this.#o.source,
      ...(this.#o.icmp4Source ? { icmp4Source: this.#o.icmp4Source } : {}),
      links: facts,
    };
  }

  /** `slots`, `sidSlots`: the sm_nexthops and sm_sid_stats slots to keep (the last lowering's, or the pinned maps'). */
  #lower(
    intent: ForwardingIntent,
    facts: ReadonlyMap<string, LinkFacts>,
    slots: NexthopSlots,
    sidSlots: ReadonlyMap<string, number>,
  ): EbpfState {
    return lowerToEbpf(intent, { ...this.#options(facts), nexthopSlots: slots, sidSlots });
  }

  /**
   * Zeroes (all CPUs) the sm_sid_stats slots a SID takes that it did not hold: before the sm_sids entry
   * naming the slot is written, so that a new SID never counts on from a removed one's packets.
   */
  #zeroSidSlots(obj: BpfObject, slots: readonly number[] | undefined): void {
    const stats = obj.maps.get(MAP.sidStats);
    if (!stats || !slots || slots.length === 0) return;
    const zero = new Uint8Array(stats.lookupSize);
    stats.updateMany(
      slots.map((s) => u32Key(s)),
      slots.map(() => zero),
    );
  }

  /** The links of the last #hookAll's intent that get wl_in, with their ifindex. */
  #wlLinks: [string, number][] = [];

  #hookAll(intent: ForwardingIntent): void {
    const obj = this.#load();
    const ul = this.#facts.get(this.#o.underlayDevice);
    if (!ul) throw new Error(`underlay device ${this.#o.underlayDevice} not found: set dataplane.underlay`);
    this.#hook(obj.program('ul_in'), this.#o.underlayDevice, ul.index);
    this.#wlLinks = [];
    for (const a of attachments(intent)) {
      const l = this.#facts.get(a.link);
      if (l && a.ingress) this.#wlLinks.push([a.link, l.index]);
    }
    this.#rehook();
  }

  /** #hookAll's hooks again (one detached since is hooked again) without a walk over the intent. */
  #rehook(): void {
    const obj = this.#load();
    this.#hook(obj.program('ul_in'), this.#o.underlayDevice, this.#facts.get(this.#o.underlayDevice)!.index);
    for (const [link, index] of this.#wlLinks) this.#hook(obj.program('wl_in'), link, index);
  }

  async realise(intent: ForwardingIntent): Promise<RealiseResult> {
    const obj = this.#load();
    this.#facts = await this.#readFacts(intent);
    // The slots the policies in the maps name (an adopted map's too): a locator keeps its slot. An
    // sm_nexthops being replaced (a hash before it was an array): the old pin's slots, which the adopted
    // sm_policy's values name while the old programs still run.
    const nexthops = obj.maps.get(MAP.nexthops);
    const replacing = obj.migrating.find((m) => m.name === MAP.nexthops);
    const slots = replacing ? pinnedSlots(replacing.pin) : slotsOfMap(nexthops?.entries() ?? []);
    // And the counter slots the SIDs in the map name: a SID keeps its slot (its counts), no entry rewritten.
    const state = this.#lower(intent, this.#facts, slots, sidSlotsOfMap(obj.map(MAP.sids).entries()));
    this.#zeroSidSlots(obj, state.freshSidSlots);
    let added = 0;
    let replaced = 0;
    let deleted = 0;
    // Maps first, new before old; then routes (delivery tables before the SIDs that look into them
    // would be nicer, but a missing route only drops what would have had no route anyway); the
    // programs last, so that a program never runs on maps not yet filled (a fresh start, or an upgrade
    // whose maps changed layout: the old programs forward on the old maps until the link update).
    // Deletes after the hooks: the programs hooked until then may be an older object's that reads
    // entries elsewhere (an upgrade from before sm_exact finds the /128s in sm_policy: they move to
    // sm_exact, and leave sm_policy only once no program looks for them there).
    this.#realised = undefined; // until the maps are as lowered: a failure below makes the next call a realise
    const deletes: [BpfMap, MapWrites][] = [];
    const noExact = !obj.maps.has(MAP.exact);
    for (const name of OWNED_MAPS) {
      // An object of before sm_nexthops (`npm run bench -- ebpf`'s A/B with an older build) ignores
      // the slots in its policies: it gets none of that map's writes.
      if (!obj.maps.has(name)) continue;
      const m = obj.map(name);
      // An object of before sm_exact looks the /128s up in sm_policy: they go there.
      const want =
        noExact && name === MAP.policy
          ? withExactInPolicy(state.maps.get(name)!, state.maps.get(MAP.exact)!)
          : state.maps.get(name)!;
      const w = diffMap(want, haveOf(m)); // one dump (batch lookups where the map has them)
      writePuts(m, w);
      deletes.push([m, w]);
      added += w.added;
      replaced += w.replaced;
      deleted += w.delete.length;
    }
    const r = await this.#dp.reconcile({ routes: state.routes });
    this.#hookAll(intent);
    for (const [m, w] of deletes) writeDeletes(m, w);
    if (obj.migrating.length > 0) this.#finishMigration(obj, state);
    this.#realised = { intent, state };
    this.skipped = state.skipped;
    return {
      added: added + r.added,
      replaced: replaced + r.replaced,
      deleted: deleted + r.deleted,
      conflicts: r.conflicts.map((c) => `${c.object}: ${c.reason}`),
      skipped: state.skipped,
    };
  }

  async applyDelta(
    before: ForwardingIntent,
    after: ForwardingIntent,
    delta: IntentDelta,
  ): Promise<RealiseResult> {
    const prev = this.#realised;
    if (!prev || prev.intent !== before) return this.realise(after);
    const obj = this.#load();
    const isAttachment = (i: IntentItem) => i.kind === 'attachment';
    // Hooks follow the attachments: without one in the delta, the links hooked last time (no walk over
    // every item of a 100,000-entry intent).
    if (delta.added.some(isAttachment) || delta.changed.some(isAttachment)) {
      this.#facts = await this.#readFacts(after);
      this.#hookAll(after);
    } else if (delta.removed.some(isAttachment)) this.#hookAll(after);
    else this.#rehook();
    // Only the delta's items lowered (both versions); with an attachment in it, the whole intent
    // (link facts changed). Either way only the entries that differ are written.
    const step = lowerDelta(prev.state, delta, this.#options(this.#facts), sameRoute);
    let state: EbpfState;
    let writes: ReadonlyMap<string, MapWrites>;
    let rw: { add: Route[]; replace: Route[]; delete: Route[] };
    if (step) {
      ({ state, maps: writes, routes: rw } = step);
    } else {
      state = this.#lower(
        after,
        this.#facts,
        prev.state.locators?.slots ?? new Map(),
        prev.state.sidSlots?.slots ?? new Map(),
      );
      writes = new Map(
        OWNED_MAPS.map((name) => [name, diffMap(state.maps.get(name)!, prev.state.maps.get(name)!)]),
      );
      rw = diffRoutes(prev.state.routes, state.routes, sameRoute);
    }
    let added = 0;
    let replaced = 0;
    let deleted = 0;
    this.#realised = undefined; // until written: a failure below makes the next call a full realise
    this.#zeroSidSlots(obj, state.freshSidSlots);
    for (const name of OWNED_MAPS) {
      let w = writes.get(name);
      if (!w) continue;
      // An object of before sm_exact: its /128s' writes go to sm_policy, with the prefix length.
      if (name === MAP.exact && !obj.maps.has(name) && obj.maps.has(MAP.policy)) {
        w = exactWritesAsPolicy(w);
        writeMap(obj.map(MAP.policy), w);
        deleted += w.delete.length;
        added += w.added;
        replaced += w.replaced;
        continue;
      }
      if (!obj.maps.has(name)) continue;
      writeMap(obj.map(name), w);
      added += w.added;
      replaced += w.replaced;
      deleted += w.delete.length;
    }
    if (rw.add.length > 0) await this.#dp.addRoutes(rw.add);
    if (rw.replace.length > 0) await this.#dp.replaceRoutes(rw.replace);
    if (rw.delete.length > 0) await this.#dp.deleteRoutes(rw.delete);
    for (const i of delta.removed) if (i.kind === 'attachment') this.#unhook('wl_in', i.link);
    this.#realised = { intent: after, state };
    this.skipped = state.skipped;
    return {
      added: added + rw.add.length,
      replaced: replaced + rw.replace.length,
      deleted: deleted + rw.delete.length,
      conflicts: [],
      skipped: state.skipped,
    };
  }

  /**
   * The links run this object's programs now: its maps take the pins of the ones it changed, and pins
   * of maps it no longer has go (nothing references them: their programs were replaced).
   */
  #finishMigration(obj: BpfObject, state: EbpfState): void {
    const stats = obj.migrating.find((m) => m.name === MAP.sidStats);
    if (stats) this.#carrySidStats(obj.map(MAP.sidStats), stats.pin, state);
    const done = obj.repin();
    const names = new Set(obj.maps.keys());
    const stale = readdirSync(this.#o.pinDir).filter((f) => f.startsWith('sm_') && !names.has(f));
    for (const f of stale) unpin(join(this.#o.pinDir, f));
    this.migrated = [...done.map((m) => `${m.name} (${m.why})`), ...stale.map((f) => `${f} (removed)`)];
  }

  /**
   * An upgrade from sm_sid_stats keyed by the SID (a per-CPU hash, before counter slots): each SID's
   * counts, CPU by CPU, added into its slot of the new array, so that they go on from where they were.
   * After the links moved (the old programs count no more); added, not written: the new programs have
   * counted meanwhile (a packet counted between this read and write of a slot is lost: microseconds).
   */
  #carrySidStats(stats: BpfMap, pin: string, state: EbpfState): void {
    let old: BpfMap;
    try {
      old = BpfMap.openPinned(pin);
    } catch {
      return; // no old map to read: counts start at 0
    }
    try {
      if (old.keySize !== 16 || old.valueSize !== stats.valueSize || old.lookupSize !== stats.lookupSize)
        return;
      const slots = state.sidSlots?.slots;
      for (const [k, v] of old.entries()) {
        const slot = slots?.get(stateKey(k));
        if (!slot) continue;
        const key = u32Key(slot);
        const now = stats.lookup(key);
        if (!now) continue;
        const a = new DataView(now.buffer, now.byteOffset, now.byteLength);
        const b = new DataView(v.buffer, v.byteOffset, v.byteLength);
        for (let at = 0; at + 8 <= now.length; at += 8)
          a.setBigUint64(at, a.getBigUint64(at, true) + b.getBigUint64(at, true), true);
        stats.update(key, now);
      }
    } finally {
      old.close();
    }
  }

  /** wl_in on the link's ingress; its endpoint entry comes with the attachment item of the intent. */
  async attach(link: string): Promise<void> {
    const obj = this.#load();
    const l = (await this.#dp.listLinks()).find((x) => x.name === link);
    if (!l) throw new Error(`attach: link ${link} not found`);
    this.#hook(obj.program('wl_in'), link, l.index);
  }

  /** Removes wl_in and the link's endpoint entry. */
  async detach(link: string): Promise<void> {
    this.#unhook('wl_in', link);
    const index = this.#facts.get(link)?.index;
    if (this.#obj && index !== undefined) this.#obj.map(MAP.endpoints).delete(ifindexKey(index));
  }

  async readCounters(): Promise<EbpfCounters> {
    const obj = this.#load();
    const reasons = new Map<ReasonName, bigint>();
    const c = obj.map(MAP.counters);
    const names = new Map(Object.entries(Reason).map(([k, v]) => [v as number, k as ReasonName]));
    for (let i = 0; i < REASON_SLOTS; i++) {
      const n = names.get(i);
      if (n) reasons.set(n, c.lookupSum(u32Key(i))?.[0] ?? 0n);
    }
    const sids = new Map<string, SidCounters>();
    const stats = obj.map(MAP.sidStats);
    // By the SID's counter slot; a SID without one (not realised, or no slot left) has counted nothing.
    const slots = this.#realised?.state.sidSlots?.slots;
    for (const s of this.#realised ? localSids(this.#realised.intent) : []) {
      const slot = slots?.get(stateKey(sidKey(s.sid)));
      const v = slot ? stats.lookupSum(u32Key(slot)) : undefined;
      sids.set(s.key, { packets: v?.[0] ?? 0n, bytes: v?.[1] ?? 0n, errors: 0n });
    }
    // Per link from sm_link_drops; '*' keeps the host's totals (all links together).
    const byIndex = new Map([...this.#facts].map(([name, f]) => [f.index, name]));
    const linkDrops = new Map<string, Map<ReasonName, bigint>>();
    const drops = obj.map(MAP.linkDrops);
    for (const k of drops.keys()) {
      const { ifindex, reason } = parseLinkDropKey(k);
      const name = names.get(reason);
      const v = drops.lookupSum(k)?.[0];
      if (!name || v === undefined) continue;
      const link = byIndex.get(ifindex) ?? `ifindex ${ifindex}`;
      let m = linkDrops.get(link);
      if (!m) {
        m = new Map();
        linkDrops.set(link, m);
      }
      m.set(name, v);
    }
    const attachmentDrops = (get: (r: ReasonName) => bigint | undefined): AttachmentDrops => ({
      spoofedSource: Number(get('drop_spoof') ?? 0n),
      sidBlock: Number(get('drop_sid_block') ?? 0n),
      hostAddress: Number(get('drop_host_address') ?? 0n),
    });
    const out = new Map<string, AttachmentDrops>([['*', attachmentDrops((r) => reasons.get(r))]]);
    for (const a of this.#realised ? attachments(this.#realised.intent) : [])
      if (a.restrict)
        out.set(
          a.link,
          attachmentDrops((r) => linkDrops.get(a.link)?.get(r)),
        );
    return { sids, attachments: out, reasons, linkDrops };
  }

  /** Detaches both programs, removes the pinned links and maps (and the bpffs), its routes and sysctls. */
  async flush(): Promise<void> {
    for (const fd of this.#links.values()) closeFd(fd);
    this.#links.clear();
    for (const d of this.#clsact.values()) inNetns(this.#o.netns, d);
    this.#clsact.clear();
    this.#obj?.close();
    this.#obj = undefined;
    this.#realised = undefined;
    await this.#dp.flushOwned();
    await flushPins(this.#o.pinDir);
  }

  /** Releases fds; pins stay (forwarding continues; the next backend adopts them). */
  async close(): Promise<void> {
    for (const fd of this.#links.values()) closeFd(fd);
    this.#links.clear();
    this.#obj?.close();
    this.#obj = undefined;
  }
}
