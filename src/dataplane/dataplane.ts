/**
 * The typed data-plane interface: desired state in, kernel state out, one adapter per object kind
 * over rtnetlink (plus generic netlink SEG6 and /proc/sys). `LinuxDataplane` runs in the calling
 * thread's network namespace; `openDataplane({ netns })` (netns.ts) runs the same class on a worker
 * thread that entered another namespace.
 */

import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import type { Ipv6Address, Ipv6Prefix } from '../srv6/address.ts';
import { buildAddressDump, buildAddressRequest, decodeAddress, type KernelAddress } from './address.ts';
import { DEFAULT_MAX_SEGMENTS, NFT_TABLE, ROUTE_PROTOCOL } from './constants.ts';
import type { Seg6LocalCounters } from './encap.ts';
import { DataplaneInputError, DumpInterruptedError, type NetlinkError } from './errors.ts';
import { type HmacKey, Seg6Genl } from './genl-seg6.ts';
import { nft, parseNftCounters, runNft } from './isolation.ts';
import { buildLinkDelete, buildLinkDump, buildLinkSet, buildVethAdd, decodeLink, type Link } from './link.ts';
import { buildNeighborDump, buildNeighborRequest, decodeNeighbor, type Neighbor } from './neighbor.ts';
import {
  buildNexthopDump,
  buildNexthopRequest,
  decodeNexthop,
  formatNexthop,
  type KernelNexthop,
  type Nexthop,
} from './nexthop.ts';
import { NlWriter } from './nlattr.ts';
import { type DesiredState, orderNexthops, planReconcile, type ReconcilePlan } from './reconcile.ts';
import {
  buildRouteDump,
  buildRouteRequest,
  decodeRoute,
  formatRoute,
  type KernelRoute,
  type Route,
  routeKey,
  type WriteOp,
} from './route.ts';
import {
  buildRuleDump,
  buildRuleRequest,
  decodeRule,
  formatRule,
  type KernelRule,
  type Rule,
} from './rule.ts';
import { SysctlRecorder } from './sysctl.ts';
import { type BatchItem, type BatchResult, NetlinkTransport } from './transport.ts';
import { NETLINK_GENERIC, NETLINK_ROUTE } from './uapi/netlink.ts';
import { type ValidationContext, validateNexthop, validateRoute, validateRule } from './validate.ts';

export interface VethRequest {
  readonly name: string;
  readonly peerName: string;
  /** Namespace for the peer: a name under /run/netns or a path (e.g. /proc/PID/ns/net). */
  readonly peerNetns?: string;
  readonly mtu?: number;
  /** Bring this end up (the peer end lives elsewhere: bring it up from there). Default true. */
  readonly up?: boolean;
}

export interface LinkSettings {
  readonly up?: boolean;
  readonly mtu?: number;
  /** Move the link to this namespace (name under /run/netns or a path). */
  readonly netns?: string;
}

export interface WriteSummary {
  readonly ok: number;
  readonly retries: number;
  readonly sendmsgCalls: number;
}

export interface ReconcileResult {
  readonly added: number;
  readonly replaced: number;
  readonly deleted: number;
  readonly unchanged: number;
  readonly conflicts: ReconcilePlan['conflicts'];
  readonly retries: number;
}

export interface FlushResult {
  readonly routes: number;
  readonly rules: number;
  readonly nexthops: number;
  readonly sysctlsRestored: string[];
}

export interface RouteFilter {
  readonly table?: number;
  /** Only routes with this protocol (e.g. ROUTE_PROTOCOL). */
  readonly protocol?: number;
}

/** Some objects of a batch were rejected; the others were applied. Each failure names its object. */
export class BatchWriteError extends Error {
  override readonly name = 'BatchWriteError';
  readonly failures: readonly NetlinkError[];
  readonly applied: number;
  constructor(op: string, failures: readonly NetlinkError[], applied: number) {
    const head = failures
      .slice(0, 3)
      .map((f) => f.message)
      .join('; ');
    super(
      `${op}: ${failures.length} object(s) rejected, ${applied} applied: ${head}${failures.length > 3 ? '; ...' : ''}`,
    );
    this.failures = failures;
    this.applied = applied;
  }
}

/** The data-plane API (every method is async so that the netns proxy can implement it too). */
export interface Dataplane {
  listLinks(): Promise<Link[]>;
  addVeth(req: VethRequest): Promise<void>;
  setLink(name: string, settings: LinkSettings): Promise<void>;
  deleteLink(name: string): Promise<void>;

  listAddresses(): Promise<KernelAddress[]>;
  addAddress(dev: string, address: Ipv6Prefix): Promise<void>;
  deleteAddress(dev: string, address: Ipv6Prefix): Promise<void>;

  listNeighbors(): Promise<Neighbor[]>;
  /** A permanent neighbour entry (NUD_PERMANENT), replacing any entry for `address` on `dev`. */
  setNeighbor(dev: string, address: Ipv6Address, mac: string): Promise<void>;

  listRoutes(filter?: RouteFilter): Promise<KernelRoute[]>;
  addRoutes(routes: readonly Route[]): Promise<WriteSummary>;
  replaceRoutes(routes: readonly Route[]): Promise<WriteSummary>;
  deleteRoutes(routes: readonly Route[]): Promise<WriteSummary>;
  /** SEG6_LOCAL_COUNTERS of a local SID installed with `counters: true`. */
  sidCounters(sid: Ipv6Address, table?: number): Promise<Seg6LocalCounters | undefined>;
  /** SEG6_LOCAL_COUNTERS of every counting local SID in `table`, from one dump. */
  allSidCounters(table?: number): Promise<Map<Ipv6Address, Seg6LocalCounters>>;

  listRules(): Promise<KernelRule[]>;
  addRules(rules: readonly Rule[]): Promise<WriteSummary>;
  deleteRules(rules: readonly Rule[]): Promise<WriteSummary>;

  listNexthops(): Promise<KernelNexthop[]>;
  addNexthops(nexthops: readonly Nexthop[]): Promise<WriteSummary>;
  replaceNexthops(nexthops: readonly Nexthop[]): Promise<WriteSummary>;
  deleteNexthops(nexthops: readonly Nexthop[]): Promise<WriteSummary>;

  setTunsrc(address: Ipv6Address): Promise<void>;
  getTunsrc(): Promise<Ipv6Address>;
  setHmacKey(key: HmacKey): Promise<void>;
  deleteHmacKey(keyId: number): Promise<void>;
  listHmacKeys(): Promise<HmacKey[]>;

  /** Sets a sysctl (in this namespace), recording the original for {@link flushOwned}. */
  setSysctl(key: string, value: string): Promise<boolean>;
  restoreSysctls(): Promise<string[]>;

  /** Runs `nft -f -` with `ruleset` in this namespace (not on the per-route path). */
  applyNft(ruleset: string): Promise<void>;
  /** The named counters of the agent's `netdev segmesh` table (name -> packets/bytes); empty without it. */
  nftCounters(): Promise<Map<string, { packets: number; bytes: number }>>;

  /** Dumps, diffs and applies the minimal change set; touches only objects carrying our protocol. */
  reconcile(desired: DesiredState): Promise<ReconcileResult>;
  /** Removes every route, rule and nexthop carrying our protocol and restores the recorded sysctls. */
  flushOwned(): Promise<FlushResult>;
  close(): Promise<void>;
}

export interface LinuxDataplaneOptions {
  readonly protocol?: number;
  readonly maxSegments?: number;
  /** Override VRF detection (tests). */
  readonly vrf?: boolean;
  /** Where recorded sysctl originals survive restarts (default: memory only). */
  readonly sysctlStateFile?: string;
  readonly batchSize?: number;
  /** Structured logs (reconcile summaries at info, conflicts at warn, batch retries at debug). */
  readonly logger?: Logger;
}

/** Whether this kernel has VRF devices (CONFIG_NET_VRF), from /proc/config.gz when readable. */
export function detectVrf(): boolean {
  try {
    const cfg = gunzipSync(readFileSync('/proc/config.gz')).toString('latin1');
    return /^CONFIG_NET_VRF=[ym]$/m.test(cfg);
  } catch {
    return existsSync('/sys/module/vrf');
  }
}

/** Repeats a dump the kernel flagged as interrupted (a concurrent change), a few times. */
async function dumpAgain<T>(dump: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await dump();
    } catch (e) {
      if (!(e instanceof DumpInterruptedError) || i >= attempts) throw e;
    }
  }
}

export function netnsPath(ns: string): string {
  return ns.includes('/') ? ns : `/run/netns/${ns}`;
}

export class LinuxDataplane implements Dataplane {
  private readonly rt: NetlinkTransport;
  private genlTransport: NetlinkTransport | undefined;
  private seg6: Seg6Genl | undefined;
  private readonly w = new NlWriter(4096);
  private readonly ctx: ValidationContext;
  readonly protocol: number;
  private readonly batchSize: number | undefined;
  private readonly sysctls: SysctlRecorder;
  private readonly log: Logger | undefined;

  constructor(opts: LinuxDataplaneOptions = {}) {
    this.log = opts.logger?.child({ component: 'dataplane' });
    this.rt = new NetlinkTransport(NETLINK_ROUTE);
    this.protocol = opts.protocol ?? ROUTE_PROTOCOL;
    this.ctx = { maxSegments: opts.maxSegments ?? DEFAULT_MAX_SEGMENTS, vrf: opts.vrf ?? detectVrf() };
    this.batchSize = opts.batchSize;
    this.sysctls = new SysctlRecorder(opts.sysctlStateFile);
  }

  private genl(): Seg6Genl {
    if (!this.seg6) {
      this.genlTransport = new NetlinkTransport(NETLINK_GENERIC);
      this.seg6 = new Seg6Genl(this.genlTransport);
    }
    return this.seg6;
  }

  private one(build: (w: NlWriter) => void): Buffer {
    this.w.reset();
    build(this.w);
    return this.w.take();
  }

  private async single(op: string, object: string, build: (w: NlWriter) => void): Promise<void> {
    const r = await this.rt.writeBatch([{ msg: this.one(build), op, object }], { batchSize: 1 });
    const f = r.failed[0];
    if (f) throw f.error;
  }

  private async write(op: string, items: BatchItem[], tolerate?: number[]): Promise<WriteSummary> {
    if (items.length === 0) return { ok: 0, retries: 0, sendmsgCalls: 0 };
    const opts = {
      ...(this.batchSize ? { batchSize: this.batchSize } : {}),
      ...(tolerate ? { tolerate } : {}),
    };
    const r: BatchResult = await this.rt.writeBatch(items, opts);
    if (r.retries > 0)
      this.log?.debug({ op, objects: items.length, retries: r.retries }, 'transient ENOMEM/ENOBUFS retried');
    if (r.failed.length > 0)
      throw new BatchWriteError(
        op,
        r.failed.map((f) => f.error),
        r.ok,
      );
    return { ok: r.ok, retries: r.retries, sendmsgCalls: r.sendmsgCalls };
  }

  // ---- links ----

  async listLinks(): Promise<Link[]> {
    const out: Link[] = [];
    await this.rt.dump(this.one(buildLinkDump), 'links', (m) => out.push(decodeLink(m)));
    return out;
  }

  private async linkIndexes(): Promise<Map<string, number>> {
    return new Map((await this.listLinks()).map((l) => [l.name, l.index]));
  }

  private async indexOf(name: string): Promise<number> {
    const idx = (await this.linkIndexes()).get(name);
    if (idx === undefined) throw new DataplaneInputError(`link ${name}`, 'no such device in this namespace');
    return idx;
  }

  async addVeth(req: VethRequest): Promise<void> {
    const fd = req.peerNetns ? openSync(netnsPath(req.peerNetns), 'r') : undefined;
    try {
      await this.single('add', `veth ${req.name}/${req.peerName}`, (w) =>
        buildVethAdd(w, {
          name: req.name,
          peerName: req.peerName,
          ...(req.mtu !== undefined ? { mtu: req.mtu } : {}),
          ...(fd !== undefined ? { peerNetnsFd: fd } : {}),
        }),
      );
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    if (req.up !== false) await this.setLink(req.name, { up: true });
  }

  async setLink(name: string, s: LinkSettings): Promise<void> {
    const index = await this.indexOf(name);
    const fd = s.netns ? openSync(netnsPath(s.netns), 'r') : undefined;
    try {
      await this.single('set', `link ${name}`, (w) =>
        buildLinkSet(w, index, {
          ...(s.up !== undefined ? { up: s.up } : {}),
          ...(s.mtu !== undefined ? { mtu: s.mtu } : {}),
          ...(fd !== undefined ? { netnsFd: fd } : {}),
        }),
      );
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  async deleteLink(name: string): Promise<void> {
    const index = await this.indexOf(name);
    await this.single('delete', `link ${name}`, (w) => buildLinkDelete(w, index));
  }

  // ---- addresses ----

  async listAddresses(): Promise<KernelAddress[]> {
    const out: KernelAddress[] = [];
    await this.rt.dump(this.one(buildAddressDump), 'addresses', (m) => out.push(decodeAddress(m)));
    return out;
  }

  async addAddress(dev: string, address: Ipv6Prefix): Promise<void> {
    const index = await this.indexOf(dev);
    await this.single('add', `address on ${dev}`, (w) => buildAddressRequest(w, 'add', { index, address }));
  }

  async deleteAddress(dev: string, address: Ipv6Prefix): Promise<void> {
    const index = await this.indexOf(dev);
    await this.single('delete', `address on ${dev}`, (w) =>
      buildAddressRequest(w, 'delete', { index, address }),
    );
  }

  // ---- neighbours ----

  async listNeighbors(): Promise<Neighbor[]> {
    const out: Neighbor[] = [];
    await this.rt.dump(this.one(buildNeighborDump), 'neighbours', (m) => {
      const n = decodeNeighbor(m);
      if (n) out.push(n);
    });
    return out;
  }

  async setNeighbor(dev: string, address: Ipv6Address, mac: string): Promise<void> {
    const index = await this.indexOf(dev);
    await this.single('replace', `neighbour on ${dev}`, (w) =>
      buildNeighborRequest(w, 'replace', { index, address, mac }),
    );
  }

  // ---- routes ----

  async listRoutes(filter: RouteFilter = {}): Promise<KernelRoute[]> {
    const out: KernelRoute[] = [];
    await this.rt.dump(this.one(buildRouteDump), 'IPv6 routes', (m) => {
      // Cheap pre-filter on the fixed header before decoding attributes.
      if (filter.protocol !== undefined && m.data[21] !== filter.protocol) return;
      const r = decodeRoute(m);
      if (filter.table !== undefined && r.table !== filter.table) return;
      out.push(r);
    });
    return out;
  }

  /**
   * Resolves `dev` names to `oif`. A missing device throws, unless `unresolved` is given: then the
   * route is left out and collected there (reconcile goes on with the others).
   */
  private async resolveRoutes(routes: readonly Route[], unresolved?: Route[]): Promise<Route[]> {
    if (!routes.some((r) => r.dev !== undefined)) return routes as Route[];
    const idx = await this.linkIndexes();
    const out: Route[] = [];
    for (const r of routes) {
      if (r.dev === undefined) {
        out.push(r);
        continue;
      }
      const oif = idx.get(r.dev);
      if (oif !== undefined) out.push({ ...r, oif });
      else if (unresolved) unresolved.push(r);
      else throw new DataplaneInputError(`route ${formatRoute(r)}`, `no device ${r.dev} in this namespace`);
    }
    return out;
  }

  private async resolveNexthops(list: readonly Nexthop[]): Promise<Nexthop[]> {
    if (!list.some((n) => n.dev !== undefined)) return list as Nexthop[];
    const idx = await this.linkIndexes();
    return list.map((n) => {
      if (n.dev === undefined) return n;
      const oif = idx.get(n.dev);
      if (oif === undefined)
        throw new DataplaneInputError(`nexthop id ${n.id}`, `no device ${n.dev} in this namespace`);
      return { ...n, oif };
    });
  }

  private routeItems(op: WriteOp, routes: readonly Route[]): BatchItem[] {
    return routes.map((r0) => {
      const r = r0.protocol === undefined ? { ...r0, protocol: this.protocol } : r0;
      this.w.reset();
      buildRouteRequest(this.w, op, r);
      return { msg: this.w.take(), op: `${op} route`, object: () => formatRoute(r) };
    });
  }

  async addRoutes(routes: readonly Route[]): Promise<WriteSummary> {
    for (const r of routes) validateRoute(r, this.ctx);
    return this.write('add routes', this.routeItems('add', await this.resolveRoutes(routes)));
  }

  async replaceRoutes(routes: readonly Route[]): Promise<WriteSummary> {
    for (const r of routes) validateRoute(r, this.ctx);
    return this.write('replace routes', this.routeItems('replace', await this.resolveRoutes(routes)));
  }

  async deleteRoutes(routes: readonly Route[]): Promise<WriteSummary> {
    // ESRCH: already gone, which is what a delete wants.
    return this.write('delete routes', this.routeItems('delete', routes), [3]);
  }

  async sidCounters(sid: Ipv6Address, table = 254): Promise<Seg6LocalCounters | undefined> {
    return (await this.allSidCounters(table)).get(sid);
  }

  async allSidCounters(table = 254): Promise<Map<Ipv6Address, Seg6LocalCounters>> {
    const out = new Map<Ipv6Address, Seg6LocalCounters>();
    for (const r of await this.listRoutes({ table }))
      if (r.dst.length === 128 && r.encap?.type === 'seg6local' && r.counters)
        out.set(r.dst.address, r.counters);
    return out;
  }

  // ---- rules ----

  async listRules(): Promise<KernelRule[]> {
    const out: KernelRule[] = [];
    await this.rt.dump(this.one(buildRuleDump), 'IPv6 rules', (m) => out.push(decodeRule(m)));
    return out;
  }

  private ruleItems(op: 'add' | 'delete', rules: readonly Rule[]): BatchItem[] {
    return rules.map((r0) => {
      const r = r0.protocol === undefined ? { ...r0, protocol: this.protocol } : r0;
      return {
        msg: this.one((w) => buildRuleRequest(w, op, r)),
        op: `${op} rule`,
        object: () => formatRule(r),
      };
    });
  }

  async addRules(rules: readonly Rule[]): Promise<WriteSummary> {
    for (const r of rules) validateRule(r);
    return this.write('add rules', this.ruleItems('add', rules));
  }

  async deleteRules(rules: readonly Rule[]): Promise<WriteSummary> {
    return this.write('delete rules', this.ruleItems('delete', rules), [2]);
  }

  // ---- nexthops ----

  async listNexthops(): Promise<KernelNexthop[]> {
    const out: KernelNexthop[] = [];
    await this.rt.dump(this.one(buildNexthopDump), 'nexthops', (m) => out.push(decodeNexthop(m)));
    return out;
  }

  private async nexthopItems(
    op: 'add' | 'replace' | 'delete',
    list: readonly Nexthop[],
  ): Promise<BatchItem[]> {
    const idx = list.some((n) => n.dev !== undefined) ? await this.linkIndexes() : undefined;
    return list.map((n0) => {
      let n = n0.protocol === undefined ? { ...n0, protocol: this.protocol } : n0;
      if (n.dev !== undefined && idx) {
        const oif = idx.get(n.dev);
        if (oif === undefined)
          throw new DataplaneInputError(`nexthop id ${n.id}`, `no device ${n.dev} in this namespace`);
        n = { ...n, oif };
      }
      const nn = n;
      return {
        msg: this.one((w) => buildNexthopRequest(w, op, nn)),
        op: `${op} nexthop`,
        object: formatNexthop(nn),
      };
    });
  }

  async addNexthops(list: readonly Nexthop[]): Promise<WriteSummary> {
    for (const n of list) validateNexthop(n, this.ctx);
    return this.write('add nexthops', await this.nexthopItems('add', orderNexthops(list, false)));
  }

  async replaceNexthops(list: readonly Nexthop[]): Promise<WriteSummary> {
    for (const n of list) validateNexthop(n, this.ctx);
    return this.write('replace nexthops', await this.nexthopItems('replace', orderNexthops(list, false)));
  }

  async deleteNexthops(list: readonly Nexthop[]): Promise<WriteSummary> {
    return this.write('delete nexthops', await this.nexthopItems('delete', orderNexthops(list, true)), [2]);
  }

  // ---- seg6 genl ----

  setTunsrc(address: Ipv6Address): Promise<void> {
    return this.genl().setTunsrc(address);
  }
  getTunsrc(): Promise<Ipv6Address> {
    return this.genl().getTunsrc();
  }
  setHmacKey(key: HmacKey): Promise<void> {
    if (!Number.isInteger(key.keyId) || key.keyId < 1 || key.keyId > 0xffffffff) {
      return Promise.reject(
        new DataplaneInputError(`seg6 hmac key ${key.keyId}`, 'key id must be 1..4294967295'),
      );
    }
    if (key.secret.length === 0 || key.secret.length > 64) {
      return Promise.reject(
        new DataplaneInputError(`seg6 hmac key ${key.keyId}`, 'the secret must be 1..64 bytes'),
      );
    }
    return this.genl().setHmacKey(key);
  }
  deleteHmacKey(keyId: number): Promise<void> {
    return this.genl().deleteHmacKey(keyId);
  }
  listHmacKeys(): Promise<HmacKey[]> {
    return this.genl().listHmacKeys();
  }

  // ---- sysctls ----

  async setSysctl(key: string, value: string): Promise<boolean> {
    return this.sysctls.set(key, value);
  }
  async restoreSysctls(): Promise<string[]> {
    return this.sysctls.restore();
  }

  // ---- reconcile / flush ----

  async reconcile(desired: DesiredState): Promise<ReconcileResult> {
    for (const r of desired.routes ?? []) validateRoute(r, this.ctx);
    for (const r of desired.rules ?? []) validateRule(r);
    for (const n of desired.nexthops ?? []) validateNexthop(n, this.ctx);
    // A route whose device is gone (a workload went away mid-way) must not block the others.
    const unresolved: Route[] = [];
    const routes = desired.routes ? await this.resolveRoutes(desired.routes, unresolved) : undefined;
    const nexthops = desired.nexthops ? await this.resolveNexthops(desired.nexthops) : undefined;
    const kernel = {
      routes: desired.routes ? await dumpAgain(() => this.listRoutes()) : [],
      rules: desired.rules ? await dumpAgain(() => this.listRules()) : [],
      nexthops: desired.nexthops ? await dumpAgain(() => this.listNexthops()) : [],
    };
    const plan = planReconcile(
      { ...desired, ...(routes ? { routes } : {}), ...(nexthops ? { nexthops } : {}) },
      kernel,
      this.protocol,
    );
    if (unresolved.length > 0) {
      // Still wanted: never delete what the kernel holds under their keys; report them.
      const keep = new Set(unresolved.map(routeKey));
      const del = plan.routes.delete.filter((r) => !keep.has(routeKey(r)));
      plan.routes.delete.length = 0;
      plan.routes.delete.push(...del);
      for (const r of unresolved) {
        plan.conflicts.push({
          object: `route ${formatRoute(r)}`,
          reason: `no device ${r.dev} in this namespace; not applied`,
        });
      }
    }
    let retries = 0;
    const add = (s: WriteSummary) => {
      retries += s.retries;
    };
    // Order: nexthops and rules in, routes in/changed, then stale routes, rules, nexthops out.
    if (plan.nexthops.add.length) add(await this.addNexthops(plan.nexthops.add));
    if (plan.nexthops.replace.length) add(await this.replaceNexthops(plan.nexthops.replace));
    if (plan.rules.add.length) add(await this.addRules(plan.rules.add));
    if (plan.routes.add.length) add(await this.write('add routes', this.routeItems('add', plan.routes.add)));
    if (plan.routes.replace.length)
      add(await this.write('replace routes', this.routeItems('replace', plan.routes.replace)));
    if (plan.routes.delete.length) add(await this.deleteRoutes(plan.routes.delete));
    if (plan.rules.delete.length) add(await this.deleteRules(plan.rules.delete));
    if (plan.nexthops.delete.length) add(await this.deleteNexthops(plan.nexthops.delete));
    for (const c of plan.conflicts)
      this.log?.warn({ object: c.object, reason: c.reason }, 'desired object held by another owner');
    const result = {
      added: plan.routes.add.length + plan.rules.add.length + plan.nexthops.add.length,
      replaced: plan.routes.replace.length + plan.nexthops.replace.length,
      deleted: plan.routes.delete.length + plan.rules.delete.length + plan.nexthops.delete.length,
      unchanged: plan.unchanged,
      conflicts: plan.conflicts,
      retries,
    };
    this.log?.info(
      {
        added: result.added,
        replaced: result.replaced,
        deleted: result.deleted,
        unchanged: result.unchanged,
        retries,
      },
      'reconciled',
    );
    return result;
  }

  async applyNft(ruleset: string): Promise<void> {
    await runNft(ruleset);
  }

  async nftCounters(): Promise<Map<string, { packets: number; bytes: number }>> {
    try {
      return parseNftCounters(await nft(['-j', 'list', 'counters', 'table', 'netdev', NFT_TABLE]));
    } catch {
      return new Map();
    }
  }

  async flushOwned(): Promise<FlushResult> {
    const routes = await dumpAgain(() => this.listRoutes({ protocol: this.protocol }));
    await this.deleteRoutes(routes);
    const rules = (await dumpAgain(() => this.listRules())).filter((r) => r.protocol === this.protocol);
    await this.deleteRules(rules);
    const nexthops = (await dumpAgain(() => this.listNexthops())).filter((n) => n.protocol === this.protocol);
    await this.deleteNexthops(nexthops);
    const sysctlsRestored = this.sysctls.restore();
    return { routes: routes.length, rules: rules.length, nexthops: nexthops.length, sysctlsRestored };
  }

  async close(): Promise<void> {
    await this.rt.close();
    await this.genlTransport?.close();
  }
}
