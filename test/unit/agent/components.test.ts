/**
 * The agent's components wired as agent.ts wires them, on a fake backend (test/unit/fakes/backend.ts)
 * and fake gossip, BGP and host links (fakes/agent-ports.ts): attach, move, detach, drain, restart
 * adoption, aggregate adverts, a backend that lacks a capability, the event routing, and a property:
 * the deltas of a random event sequence leave the backend holding the full intent.
 *
 * The oracle for "the full intent" is computed here from the model directly (buildFabricState ->
 * buildFabricView -> computeHostPlan -> intentOf), not through the reconciler.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Advertiser } from '../../../src/agent/advertiser.ts';
import { Drainer } from '../../../src/agent/drain.ts';
import { routeGossipEvent } from '../../../src/agent/events.ts';
import { buildFabricState, type FabricStateInput } from '../../../src/agent/fabric-state.ts';
import { Reconciler } from '../../../src/agent/reconciler.ts';
import { WorkloadManager } from '../../../src/agent/workload-manager.ts';
import { LocalWorkloadStore } from '../../../src/agent/workloads.ts';
import { type BackendCapabilities, unsupportedReason } from '../../../src/dataplane/backend.ts';
import { type IntentItem, sameIntent } from '../../../src/dataplane/intent.ts';
import { intentOf } from '../../../src/dataplane/intent-lower.ts';
import type { FabricView as GossipView } from '../../../src/gossip/view.ts';
import { formatIpv6, type Ipv6Address, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { buildFabricView, workloadLinkName } from '../../../src/srv6/fabric.ts';
import { computeHostPlan } from '../../../src/srv6/pathcompute.ts';
import { F3216 } from '../../../src/srv6/sid.ts';
import { FakeBgp, FakeGossip, FakeLinks } from '../fakes/agent-ports.ts';
import { FakeBackend, FULL_CAPABILITIES } from '../fakes/backend.ts';

const log = pino({ level: 'silent' });
const SELF = 'host1';
const BLUE = '2001:db8:b100::';
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type EdgeMode = 'per-workload' | 'aggregate';

function stateInput(view: GossipView, store: LocalWorkloadStore, edgeMode: EdgeMode): FabricStateInput {
  return {
    self: {
      name: SELF,
      hostId: 'id-1',
      underlay: parseIpv6('2001:db8:100::1'),
      locator: parsePrefix('fc00:0:1::/48'),
    },
    structure: F3216,
    maxSegments: 4,
    underlayMtu: 1500,
    gossip: view,
    local: store.list(),
    external: [],
    edgePeers: [],
    edgeMode,
  };
}

/** What the backend must hold: the model's full intent for this host, less what `caps` cannot do. */
function fullIntent(
  gossip: FakeGossip,
  store: LocalWorkloadStore,
  caps: BackendCapabilities,
  edgeMode: EdgeMode,
): Map<string, IntentItem> {
  const state = buildFabricState(stateInput(gossip.view(), store, edgeMode));
  const view = buildFabricView({
    ...state.input,
    hosts: state.input.hosts.map((h) =>
      h.name === SELF ? { ...h, capabilities: { vrf: caps.ipv4Inner, hmac: caps.hmac } } : h,
    ),
  });
  const items = new Map<string, IntentItem>();
  for (const i of intentOf(computeHostPlan(view, SELF)).items.values())
    if (!unsupportedReason(caps, i)) items.set(i.key, i);
  return items;
}

interface Options {
  readonly caps?: BackendCapabilities;
  readonly edgeMode?: EdgeMode;
  readonly bgp?: boolean;
  readonly dir?: string;
  readonly backend?: FakeBackend;
  readonly gossip?: FakeGossip;
}

/** The components as agent.ts wires them (gossip events are handed to the reconciler by the test). */
async function agent(o: Options = {}) {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'segmesh-agent-'));
  if (!o.dir) dirs.push(dir);
  let gossip = o.gossip;
  if (!gossip) {
    gossip = new FakeGossip(1);
    for (const i of [1, 2, 3]) gossip.addHost(i);
    gossip.addTenant('blue', 100, `${BLUE}/64`, '65000:100');
    gossip.addTenant('red', 200, '2001:db8:b200::/64');
  }
  const g = gossip;
  const store = new LocalWorkloadStore(`${dir}/workloads.json`);
  await store.load();
  const caps = o.caps ?? FULL_CAPABILITIES;
  const backend = o.backend ?? new FakeBackend(caps);
  const bgp = o.bgp ? new FakeBgp() : undefined;
  const links = new FakeLinks();
  const edgeMode = o.edgeMode ?? 'per-workload';
  const parts: { workloads?: WorkloadManager; advertiser?: Advertiser; drainer?: Drainer } = {};
  const reconciler = new Reconciler({
    log,
    hostName: SELF,
    backend,
    gossipView: () => g.view(),
    stateInput: (view) => stateInput(view, store, edgeMode),
    localWorkload: (id) => store.get(id),
    afterApply: async (view) => {
      await Promise.all([parts.workloads!.publishClaims(), parts.advertiser!.advertise(view)]);
    },
  });
  const draining = () => parts.drainer?.draining ?? false;
  parts.advertiser = new Advertiser({
    hostName: SELF,
    underlay: parseIpv6('2001:db8:100::1'),
    gossip: g,
    ...(bgp ? { bgp, routerId: '198.18.0.1' } : {}),
    leaving: draining,
    holds: (key) => reconciler.applied?.items.has(key) ?? false,
    hostWorkloads: () => reconciler.hostWorkloads(),
  });
  parts.workloads = new WorkloadManager({
    log,
    hostName: SELF,
    mtu: 1400,
    store,
    links,
    backend,
    gossip: g,
    reconciler,
    draining,
    checkNetns: async (netns) => netns,
  });
  const stopping = new AbortController();
  parts.drainer = new Drainer({
    log,
    hostName: SELF,
    backend,
    gossip: g,
    ...(bgp ? { bgp } : {}),
    reconciler,
    advertise: (view) => parts.advertiser!.advertise(view),
    localWorkloads: () => store.list(),
    stopGossip: async () => undefined,
    stopping: stopping.signal,
    timing: { minMs: 0, settleMs: 0, pollMs: 5 },
  });
  const holdsFullIntent = () => sameIntent(backend.installed, fullIntent(g, store, caps, edgeMode));
  return {
    dir,
    gossip: g,
    store,
    backend,
    bgp,
    links,
    reconciler,
    workloads: parts.workloads,
    drainer: parts.drainer,
    holdsFullIntent,
    /** A gossip event about workload `id`, as the wiring hands it over, then the reconcile it causes. */
    event: (id: string) => {
      reconciler.noteWorkload(id);
      return reconciler.reconcileNow();
    },
    stop: async () => {
      stopping.abort();
      await reconciler.stop();
    },
  };
}

const addr = (suffix: string): Ipv6Address => parseIpv6(`${BLUE}${suffix}`);

describe('agent components on a fake backend', () => {
  it('attach: links, hook, routes by delta, then the claim; the backend holds the full intent', async () => {
    const a = await agent();
    a.gossip.claim('remote', 'blue', addr('20'), 2);
    const first = await a.reconciler.start();
    expect(first.full).toBe(true);
    expect(first.error).toBeUndefined();
    expect(a.holdsFullIntent()).toBe(true);

    const r = await a.workloads.add({ identity: 'shop.cart', tenant: 'blue', netns: '/run/netns/x' });
    expect(r.workload.hostLink).toBe(workloadLinkName('shop.cart'));
    expect([...a.links.links.keys()]).toEqual([r.workload.hostLink]);
    expect(a.backend.attached.has(r.workload.hostLink)).toBe(true);
    // One full realise at start, then the attach (hook) and a delta: no second full recompute.
    expect(a.backend.calls).toEqual(['realise', 'attach', 'applyDelta']);
    expect(a.holdsFullIntent()).toBe(true);
    const delivery = [...a.backend.installed.values()].find(
      (i) =>
        i.kind === 'entry' &&
        i.action.kind === 'deliver' &&
        i.prefix.address === parseIpv6(r.workload.address),
    );
    expect(delivery).toBeDefined();
    // Claimed in gossip once its routes were in.
    expect(a.gossip.published.filter((p) => p.kind === 'workload').map((p) => p.what)).toEqual(['shop.cart']);
    // The same identity again: the existing instance, nothing attached twice.
    const again = await a.workloads.add({ identity: 'shop.cart', tenant: 'blue', netns: '/run/netns/x' });
    expect(again.existing).toBe(true);
    expect(await a.workloads.check({ identity: 'shop.cart' })).toEqual([]);
    await a.stop();
  });

  it('move: a remote workload moves between hosts, and ours moves away (redirect), each by one delta', async () => {
    const a = await agent();
    a.gossip.claim('remote', 'blue', addr('20'), 2);
    await a.reconciler.start();
    await a.workloads.add({ identity: 'mine', tenant: 'blue', netns: '/run/netns/m' });
    const before = new Map(a.backend.installed);

    a.gossip.claim('remote', 'blue', addr('20'), 3);
    const moved = await a.event('remote');
    expect(moved.full).toBe(false);
    expect(moved.error).toBeUndefined();
    expect(moved.added + moved.replaced + moved.deleted).toBeGreaterThan(0);
    expect(a.holdsFullIntent()).toBe(true);
    expect(sameIntent(before, a.backend.installed)).toBe(false);

    // Ours is claimed on host2, newer than its attach here: this host redirects until it is removed.
    const mine = a.store.get('mine')!;
    a.gossip.claim('mine', 'blue', parseIpv6(mine.address), 2);
    const away = await a.event('mine');
    expect(away.full).toBe(false);
    expect(away.error).toBeUndefined();
    expect(a.holdsFullIntent()).toBe(true);
    expect(a.backend.calls.filter((c) => c === 'realise')).toHaveLength(1);
    await a.stop();
  });

  it('move away under BGP: the old host keeps advertising the workload, marked movingAway, until its instance is deleted', async () => {
    const a = await agent({ bgp: true });
    await a.reconciler.start();
    await a.workloads.add({ identity: 'mine', tenant: 'blue', netns: '/run/netns/m' });
    const address = parseIpv6(a.store.get('mine')!.address);
    const advert = () => a.bgp!.adverts.find((x) => x.prefix.address === address && x.prefix.length === 128);
    expect(advert()).toBeDefined(); // positive control: advertised plainly while it runs here
    expect(advert()!.movingAway).toBeUndefined();
    // Claimed on host2, newer than its attach here: this host redirects, and keeps the route at the edge.
    a.gossip.claim('mine', 'blue', address, 2);
    await a.event('mine');
    expect(advert()?.movingAway).toBe(true);
    // The old instance goes: only now is the route withdrawn.
    expect(await a.workloads.delete({ identity: 'mine' })).toBe(true);
    expect(advert()).toBeUndefined();
    await a.stop();
  });

  it('detach: the routes go by delta before the link is unhooked and removed', async () => {
    const a = await agent();
    await a.reconciler.start();
    const { workload } = await a.workloads.add({ identity: 'gone', tenant: 'blue', netns: '/run/netns/g' });
    expect(await a.workloads.delete({ identity: 'gone' })).toBe(true);
    expect(a.backend.calls.slice(-2)).toEqual(['applyDelta', 'detach']);
    expect(a.links.calls.at(-1)).toBe(`detach ${workload.hostLink}`);
    expect(a.links.links.size).toBe(0);
    expect(a.store.get('gone')).toBeUndefined();
    expect(a.holdsFullIntent()).toBe(true);
    expect([...a.backend.installed.values()].some((i) => i.kind === 'attachment')).toBe(false);
    expect(await a.workloads.delete({ identity: 'gone' })).toBe(false);
    await a.stop();
  });

  it('drain: graceful shutdown, leaving advertised, workloads withdrawn, the backend flushed; no new workloads', async () => {
    const a = await agent({ bgp: true });
    await a.reconciler.start();
    await a.workloads.add({ identity: 'd1', tenant: 'blue', netns: '/run/netns/d' });
    const held = a.backend.installed.size;
    expect(held).toBeGreaterThan(0);
    const report = await a.drainer.drain(2_000, 20);
    expect(report).toMatchObject({ withdrawn: 1, removed: held, trafficStopped: true });
    expect(report.gracefulShutdownPaths).toBe(1);
    expect(a.bgp!.calls).toContain('gracefulShutdown');
    expect(a.bgp!.calls.at(-1)).toBe('leave');
    const hostAdverts = a.gossip.published
      .filter((p) => p.kind === 'host')
      .map((p) => p.what as { leaving?: boolean });
    expect(hostAdverts.at(-1)?.leaving).toBe(true);
    expect(hostAdverts[0]?.leaving).toBeUndefined();
    expect(a.gossip.published.map((p) => p.kind).slice(-2)).toEqual(['remove', 'withdraw']);
    expect(a.backend.calls.at(-1)).toBe('flush');
    expect(a.backend.installed.size).toBe(0);
    // Drained: no repairs, no new workloads.
    a.reconciler.fabricChanged();
    await new Promise((r) => setTimeout(r, 30));
    expect(a.backend.calls.at(-1)).toBe('flush');
    await expect(a.workloads.add({ identity: 'd2', tenant: 'blue', netns: '/run/netns/e' })).rejects.toThrow(
      /draining/,
    );
    await a.stop();
  });

  it('drain: SID counters that cannot be read never count as traffic stopped; the wait runs out', async () => {
    const a = await agent({ bgp: true });
    await a.reconciler.start();
    await a.workloads.add({ identity: 'd1', tenant: 'blue', netns: '/run/netns/d' });
    let reads = 0;
    a.backend.readCounters = async () => {
      reads++;
      throw new Error('netlink dump failed (injected)');
    };
    const report = await a.drainer.drain(300, 20);
    expect(report.trafficStopped).toBe(false);
    expect(report.waitedMs).toBeGreaterThanOrEqual(300);
    expect(reads).toBeGreaterThan(1);
    expect(report.withdrawn).toBe(1); // it still leaves, after the whole wait
    await a.stop();
  });

  it('restart adoption: a new agent on the same state and data plane changes nothing', async () => {
    const a = await agent();
    a.gossip.claim('remote', 'blue', addr('20'), 2);
    await a.reconciler.start();
    await a.workloads.add({ identity: 'kept', tenant: 'blue', netns: '/run/netns/k' });
    await a.stop();
    const held = new Map(a.backend.installed);
    // Same state directory, same backend (what the data plane still holds), same gossip.
    const b = await agent({ dir: a.dir, backend: a.backend, gossip: a.gossip });
    const first = await b.reconciler.start();
    expect(first).toMatchObject({ full: true, added: 0, replaced: 0, deleted: 0 });
    expect(first.error).toBeUndefined();
    expect(sameIntent(held, b.backend.installed)).toBe(true);
    expect(b.holdsFullIntent()).toBe(true);
    await b.stop();
  });

  it('aggregate: the advertiser hands BGP one aggregate per exported tenant toward its forward SID', async () => {
    const per = await agent({ bgp: true });
    const agg = await agent({ bgp: true, edgeMode: 'aggregate' });
    for (const a of [per, agg]) {
      await a.reconciler.start();
      for (const id of ['a1', 'a2'])
        await a.workloads.add({ identity: id, tenant: 'blue', netns: `/run/netns/${id}` });
      await a.workloads.add({ identity: 'r1', tenant: 'red', netns: '/run/netns/r1' });
    }
    // Positive control: per workload, one /128 per blue workload (red has no route target).
    expect(per.bgp!.adverts.map((a) => a.prefix.length)).toEqual([128, 128]);
    expect(agg.bgp!.adverts).toHaveLength(1);
    const [one] = agg.bgp!.adverts;
    expect(one!.tenant).toBe('blue');
    expect(`${formatIpv6(one!.prefix.address)}/${one!.prefix.length}`).toBe(`${BLUE}/64`);
    const fwd = agg.reconciler.view!.hosts.get(SELF)!.sids.tenantForward.get('blue')!;
    expect(one!.sid).toBe(fwd.sid);
    // The forward SID is in the data plane, looking packets up in the tenant's forward scope.
    const sid = [...agg.backend.installed.values()].find((i) => i.kind === 'sid' && i.sid === fwd.sid);
    expect(sid).toMatchObject({ behavior: 'End.DT6', lookup: { kind: 'forward' } });
    expect(agg.holdsFullIntent()).toBe(true);
    for (const a of [per, agg]) await a.stop();
  });

  it('aggregate on a backend that cannot run the forward SID: no aggregate is advertised, the SID is named skipped', async () => {
    const behaviors = new Set(FULL_CAPABILITIES.behaviors);
    behaviors.delete('End.DT6');
    const a = await agent({ bgp: true, edgeMode: 'aggregate', caps: { ...FULL_CAPABILITIES, behaviors } });
    await a.reconciler.start();
    await a.workloads.add({ identity: 'a1', tenant: 'blue', netns: '/run/netns/a1' });
    // The control is the test above: the same fabric with End.DT6 advertises one aggregate.
    expect(a.bgp!.calls).toContain('setAdverts');
    expect(a.bgp!.adverts).toEqual([]);
    const fwd = a.reconciler.view!.hosts.get(SELF)!.sids.tenantForward.get('blue')!;
    expect(a.reconciler.lastReport!.skipped.some((s) => s.includes(formatIpv6(fwd.sid)))).toBe(true);
    await a.stop();
  });

  it('a backend without End.DT6: those SIDs are named as skipped and never handed to it', async () => {
    const behaviors = new Set(FULL_CAPABILITIES.behaviors);
    behaviors.delete('End.DT6');
    const poor = await agent({ caps: { ...FULL_CAPABILITIES, behaviors } });
    const full = await agent();
    for (const a of [poor, full]) {
      await a.reconciler.start();
      await a.workloads.add({ identity: 'c1', tenant: 'blue', netns: '/run/netns/c' });
    }
    const dt6 = (a: typeof full) =>
      [...a.backend.installed.values()].filter((i) => i.kind === 'sid' && i.behavior === 'End.DT6');
    // Positive control: with the capability the SIDs are there.
    expect(dt6(full).length).toBeGreaterThan(0);
    expect(full.reconciler.lastReport!.skipped).toEqual([]);
    // The fake backend throws on an unsupported item: an error-free report proves none was handed over.
    const report = poor.reconciler.lastReport!;
    expect(report.error).toBeUndefined();
    expect(dt6(poor)).toEqual([]);
    expect(report.skipped.some((s) => /SID .* \(End\.DT6\): the fake backend has no End\.DT6/.test(s))).toBe(
      true,
    );
    expect(poor.holdsFullIntent()).toBe(true);
    for (const a of [poor, full]) await a.stop();
  });

  it('a failed delta is followed by a full realise of the whole intent', async () => {
    const a = await agent();
    await a.reconciler.start();
    a.backend.failNext('applyDelta');
    await a.workloads.add({ identity: 'f1', tenant: 'blue', netns: '/run/netns/f' });
    expect(a.backend.calls).toEqual(['realise', 'attach', 'applyDelta', 'realise']);
    expect(a.holdsFullIntent()).toBe(true);
    await a.stop();
  });
});

describe('gossip event routing', () => {
  it("the agent's own publishes trigger nothing; others' workloads go incremental, the fabric full", () => {
    const self = 'id-1';
    // Own publishes (the record event of a local publish, the view event of our own claim).
    expect(routeGossipEvent({ type: 'record', key: 'workload/id-1/w', source: 'local' }, self).path).toBe(
      'ignore',
    );
    expect(routeGossipEvent({ type: 'record', key: 'host/id-1', source: 'local' }, self).path).toBe('ignore');
    expect(routeGossipEvent({ type: 'workload-added', workload: { id: 'w', hostId: self } }, self).path).toBe(
      'ignore',
    );
    // Positive controls: the same events from another host.
    expect(routeGossipEvent({ type: 'workload-added', workload: { id: 'w', hostId: 'id-2' } }, self)).toEqual(
      {
        path: 'workload',
        id: 'w',
      },
    );
    expect(
      routeGossipEvent({ type: 'workload-moved', workload: { id: 'w', hostId: 'id-2' } }, self).path,
    ).toBe('workload');
    expect(routeGossipEvent({ type: 'record', key: 'host/id-2', source: 'gossip' }, self).path).toBe(
      'fabric',
    );
    expect(routeGossipEvent({ type: 'record', key: 'tenant/blue', source: 'anti-entropy' }, self).path).toBe(
      'fabric',
    );
    expect(routeGossipEvent({ type: 'record', key: 'workload/id-2/w', source: 'gossip' }, self).path).toBe(
      'ignore',
    );
    expect(routeGossipEvent({ type: 'host-down', hostId: 'id-2' }, self).path).toBe('fabric');
    expect(routeGossipEvent({ type: 'host-up', hostId: self }, self).path).toBe('ignore');
    expect(routeGossipEvent({ type: 'policy-changed' }, self).path).toBe('fabric');
  });
});

describe('incremental planning (property)', () => {
  it('the deltas of a random sequence of workload events leave the backend holding the full intent', async () => {
    const ids = ['w0', 'w1', 'w2', 'w3', 'w4'];
    const event = fc.oneof(
      fc.record({
        kind: fc.constant('claim' as const),
        id: fc.constantFrom(...ids),
        host: fc.constantFrom(2, 3),
      }),
      fc.record({ kind: fc.constant('remove' as const), id: fc.constantFrom(...ids) }),
      fc.record({ kind: fc.constant('attach' as const), id: fc.constantFrom(...ids) }),
      fc.record({ kind: fc.constant('detach' as const), id: fc.constantFrom(...ids) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 12 }), async (events) => {
        const a = await agent();
        await a.reconciler.start();
        const address = (id: string) => addr(`${ids.indexOf(id) + 0x100}`);
        for (const e of events) {
          if (e.kind === 'claim') {
            a.gossip.claim(e.id, 'blue', address(e.id), e.host);
            await a.event(e.id);
          } else if (e.kind === 'remove') {
            if (a.gossip.workloads.get(e.id)?.hostId === a.gossip.hostId) continue; // ours go by detach
            a.gossip.workloads.delete(e.id);
            await a.event(e.id);
          } else if (e.kind === 'attach') {
            if (a.store.get(e.id)) continue;
            await a.workloads.add({
              identity: e.id,
              tenant: 'blue',
              netns: `/run/netns/${e.id}`,
              address: formatIpv6(address(e.id)),
            });
          } else {
            await a.workloads.delete({ identity: e.id });
          }
          expect(a.reconciler.lastReport!.error).toBeUndefined();
          expect(a.holdsFullIntent()).toBe(true);
        }
        // All of it by deltas: the one full realise was the start.
        expect(a.backend.calls.filter((c) => c === 'realise')).toHaveLength(1);
        await a.stop();
      }),
      { numRuns: 150, seed: 13 },
    );
  });
});
