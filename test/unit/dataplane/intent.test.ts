import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ALL_SCOPES, type BackendCapabilities, unsupportedItems } from '../../../src/dataplane/backend.ts';
import {
  applyDelta,
  attachments,
  diffIntents,
  entryKey,
  type IntentItem,
  localSids,
  type PrefixEntry,
  sameIntent,
  sameItem,
} from '../../../src/dataplane/intent.ts';
import { HostIntentComputer, intentOf } from '../../../src/dataplane/intent-lower.ts';
import { kernelRuleset, kernelSysctls, lowerToKernel } from '../../../src/dataplane/kernel/lower.ts';
import { isAgentTable } from '../../../src/dataplane/kernel/tables.ts';
import { formatRoute } from '../../../src/dataplane/route.ts';
import { formatIpv6, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import {
  buildFabricView,
  type FabricInput,
  type WorkloadInput,
  workloadLinkName,
} from '../../../src/srv6/fabric.ts';
import { computeHostPlan } from '../../../src/srv6/pathcompute.ts';
import { fabricFromShape, fabricShape } from '../srv6/fabric-arbitrary.ts';

const opts = { underlayDevice: 'eth0', sidCounters: true };

// That the kernel lowering gives exactly the objects the plan was translated to before the intent
// existed is kernel-golden.test.ts (100 seeded random fabrics, pinned by hash).
describe('kernel lowering of the intent', () => {
  it('routes live in main or an agent table; every table an ip rule chooses ends in unreachable; SIDs are in main', () => {
    fc.assert(
      fc.property(fabricShape, (shape) => {
        const view = buildFabricView(fabricFromShape(shape));
        for (const host of view.hosts.keys()) {
          const intent = intentOf(computeHostPlan(view, host));
          const k = lowerToKernel(intent, opts);
          const routes = k.dataplane.routes!;
          for (const r of routes) expect(r.table === 254 || isAgentTable(r.table), formatRoute(r)).toBe(true);
          for (const rule of k.dataplane.rules!) {
            const last = routes.find(
              (r) => r.table === rule.table && r.dst.length === 0 && r.src === undefined,
            );
            expect(last, `table ${rule.table} of ${rule.iif} on ${host}`).toBeDefined();
            expect(last!.type === 'unreachable' || last!.encap?.type === 'seg6').toBe(true);
          }
          const sids = [...localSids(intent)];
          const sidRoutes = routes.filter((r) => r.encap?.type === 'seg6local');
          expect(sidRoutes.length).toBe(sids.length);
          for (const r of sidRoutes) expect(r.table).toBe(254);
          expect(k.links.length).toBe([...attachments(intent)].length);
        }
      }),
      { numRuns: 40 },
    );
  });
});

type Event =
  | { kind: 'add'; tenant: number; host: number }
  | { kind: 'move'; pick: number; host: number }
  | { kind: 'remove'; pick: number };

const event: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ kind: fc.constant('add' as const), tenant: fc.nat(2), host: fc.nat(5) }),
  fc.record({ kind: fc.constant('move' as const), pick: fc.nat(40), host: fc.nat(5) }),
  fc.record({ kind: fc.constant('remove' as const), pick: fc.nat(40) }),
);

describe('intent deltas', () => {
  it('applying the deltas of a random event sequence gives the full intent of the final state', () => {
    fc.assert(
      fc.property(
        fabricShape,
        fc.array(event, { minLength: 1, maxLength: 12 }),
        fc.nat(5),
        (shape, events, hostPick) => {
          const input = fabricFromShape(shape);
          const initial = buildFabricView(input);
          const host = [...initial.hosts.keys()][hostPick % initial.hosts.size]!;
          // Every workload with its address and link spelled out, so that rebuilding the final state
          // from a description allocates nothing differently.
          let workloads: WorkloadInput[] = [...initial.workloads.values()].map((w) => ({
            id: w.id,
            tenant: w.tenant,
            host: w.host,
            address: w.address,
            labels: w.labels,
            link: w.link,
          }));
          const fixed: FabricInput = { ...input, workloads };
          const computer = new HostIntentComputer(buildFabricView(fixed), host);
          let applied: ReadonlyMap<string, IntentItem> = computer.intent.items;
          const hosts = [...initial.hosts.keys()];
          const tenants = [...initial.tenants.values()];
          let next = 0;
          for (const e of events) {
            let delta: ReturnType<typeof computer.removeWorkload>;
            if (e.kind === 'add') {
              const tenant = tenants[e.tenant % tenants.length]!;
              const id = `new${next++}`;
              const address = tenant.prefixes[0]!.address + 0x1000n + BigInt(next);
              if (workloads.some((w) => w.address === address)) continue;
              const w: WorkloadInput = {
                id,
                tenant: tenant.name,
                host: hosts[e.host % hosts.length]!,
                address,
                labels: { app: `a${next % 3}` },
                link: workloadLinkName(id),
              };
              workloads = [...workloads, w];
              delta = computer.upsertWorkload({
                id,
                tenant: w.tenant,
                host: w.host,
                address,
                labels: w.labels!,
                link: w.link!,
                derivedAddress: false,
              });
            } else {
              if (workloads.length === 0) continue;
              const target = workloads[e.pick % workloads.length]!;
              if (e.kind === 'move') {
                const to = hosts[e.host % hosts.length]!;
                workloads = workloads.map((w) => (w.id === target.id ? { ...w, host: to } : w));
                delta = computer.moveWorkload(target.id, to);
              } else {
                workloads = workloads.filter((w) => w.id !== target.id);
                delta = computer.removeWorkload(target.id);
              }
            }
            applied = applyDelta(applied, delta);
          }
          const final = buildFabricView({ ...fixed, workloads });
          const full = intentOf(computeHostPlan(final, host)).items;
          const rest = diffIntents(applied, full);
          expect(
            [...rest.added, ...rest.changed, ...rest.removed].map((i) => i.key),
            `host ${host} after ${events.length} events`,
          ).toStrictEqual([]);
          expect(sameIntent(applied, full)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('the diff engine', () => {
  const scope = { kind: 'egress', tenant: 't0', tenantId: 100 } as const;
  const prefix = parsePrefix('2001:db8:a0::5/128');
  const entry = (segments: string[], reason = 'r'): PrefixEntry => ({
    kind: 'entry',
    key: entryKey(scope, prefix),
    scope,
    prefix,
    action: { kind: 'encap', mode: 'encap', segments: segments.map(parseIpv6) },
    reason,
  });

  it('compares by value field by field: equal copies are unchanged, a different segment or reason is a change', () => {
    const a = entry(['fc00:0:1:2::', 'fc00:0:2:2::']);
    expect(sameItem(a, entry(['fc00:0:1:2::', 'fc00:0:2:2::']))).toBe(true);
    expect(sameItem(a, entry(['fc00:0:1:2::', 'fc00:0:3:2::']))).toBe(false);
    expect(sameItem(a, entry(['fc00:0:1:2::']))).toBe(false);
    expect(sameItem(a, entry(['fc00:0:1:2::', 'fc00:0:2:2::'], 'other'))).toBe(false);
    expect(sameItem(a, { ...a, scope: { ...scope, tenantId: 101 } })).toBe(false);
    expect(sameItem(a, { ...a, action: { kind: 'deliver', link: 'smw1' } })).toBe(false);

    const before = new Map([[a.key, a]]);
    const same = diffIntents(before, new Map([[a.key, entry(['fc00:0:1:2::', 'fc00:0:2:2::'])]]));
    expect([same.added, same.changed, same.removed].map((l) => l.length)).toStrictEqual([0, 0, 0]);
    const moved = entry(['fc00:0:3:2::']);
    const d = diffIntents(before, new Map([[a.key, moved]]));
    expect(d.changed).toStrictEqual([moved]);
    expect(d.replaced).toStrictEqual([a]);
    const gone = diffIntents(before, new Map());
    expect(gone.removed).toStrictEqual([a]);
    expect(applyDelta(before, gone).size).toBe(0);
  });

  it('a backend without HMAC or source-specific entries names what it cannot realise; one with them accepts', () => {
    const view = buildFabricView({
      ...fabricFromShape({
        hosts: 2,
        tenants: 1,
        workloads: [
          { tenant: 0, host: 0, app: 0 },
          { tenant: 0, host: 1, app: 1 },
        ],
        nfs: [{ tenant: 0, host: 1, unaware: false }],
        policies: [{ tenant: 0, via: [0], fromApp: 0, toApp: 1 }],
        hmac: true,
      }),
    });
    const intent = intentOf(computeHostPlan(view, 'h0'));
    const full: BackendCapabilities = {
      name: 'kernel',
      behaviors: new Set(['End', 'End.X', 'End.DT6', 'End.DX6']),
      encapModes: new Set(['encap', 'encap.red']),
      hmac: true,
      ipv4Inner: false,
      sourceSpecific: true,
      scopes: ALL_SCOPES,
    };
    expect(unsupportedItems(full, intent)).toStrictEqual([]);
    const reasons = unsupportedItems({ ...full, name: 'small', hmac: false, sourceSpecific: false }, intent);
    expect(reasons.some((r) => /cannot add an SRH HMAC \(key 7\)/.test(r))).toBe(true);
    expect(reasons.some((r) => /no source-specific entries/.test(r))).toBe(true);
    const w1 = view.workloads.get('w1')!;
    expect(reasons.some((r) => r.includes(formatIpv6(w1.address)))).toBe(true);
  });
});

describe('kernel lowering: nftables text and sysctls', () => {
  it("one chain per restricted attachment (its source, the SID block, the hosts), an SR-unaware function's without a source, none for an SR-aware one; the clamp names every link", () => {
    const view = buildFabricView(
      fabricFromShape({
        hosts: 2,
        tenants: 1,
        workloads: [
          { tenant: 0, host: 0, app: 0 },
          { tenant: 0, host: 0, app: 1 },
        ],
        nfs: [
          { tenant: 0, host: 0, unaware: true },
          { tenant: 0, host: 0, unaware: false },
        ],
        policies: [],
        hmac: false,
      }),
    );
    const intent = intentOf(computeHostPlan(view, 'h0'));
    const state = lowerToKernel(intent, opts);
    const text = kernelRuleset(state, 1328);
    const nf = view.networkFunctions.get('nf0')!;
    const aware = view.networkFunctions.get('nf1')!;
    expect([nf.mode, aware.mode]).toEqual(['sr-unaware', 'sr-aware']);
    for (const w of view.workloads.values()) {
      expect(text).toContain(`type filter hook ingress device "${w.link}"`);
      expect(text).toContain(`ip6 saddr != { ${formatIpv6(w.address)}/128, fe80::/10 }`);
      expect(text).toContain(`"${w.link}"`);
    }
    expect(text).toContain('ip6 daddr { fc00::/32, fc00:0:ff:1::/64 } counter'); // the SID block and the edge's locator
    expect(text).toContain('ip6 daddr { 2001:db8:1::1, 2001:db8:1::2 } counter');
    // What the SR-unaware function hands back carries others' sources: no source rule, but never toward
    // a SID or a host (its chain has the same rules as a workload's, but for the source).
    const chain = (link: string) => {
      const from = text.indexOf(`ingress device "${link}"`);
      return from < 0 ? '' : text.slice(from, text.indexOf('  }', from));
    };
    expect(chain(nf.link)).not.toBe('');
    expect(chain(nf.link)).not.toContain('saddr');
    expect(chain(nf.link)).toContain('ip6 daddr { fc00::/32, fc00:0:ff:1::/64 } counter');
    expect(chain(nf.link)).toContain('ip6 daddr { 2001:db8:1::1, 2001:db8:1::2 } counter');
    expect(chain(nf.link)).toContain('ip6 daddr fe80::/10 meta l4proto != ipv6-icmp');
    // An SR-aware function sends SRv6 toward the next SID itself: no chain.
    expect(text).not.toContain(`ingress device "${aware.link}"`);
    expect(text).toContain(`"${nf.link}"`); // clamped like any link toward a workload or function
    expect(text).toContain('tcp option maxseg size set 1328');
    expect(kernelSysctls('eth0')).toStrictEqual([
      ['net.ipv6.conf.all.forwarding', '1'],
      ['net.ipv6.conf.eth0.seg6_enabled', '1'],
      ['net.ipv6.conf.eth0.accept_ra', '2'],
    ]);
  });
});
