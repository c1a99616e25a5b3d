/**
 * Conformance of the eBPF backend on this kernel (no seg6 lwtunnels, no VRF): two hosts (namespaces)
 * with workloads of two tenants, everything programmed through EbpfBackend.realise / applyDelta /
 * flush only. Tenant A crosses with H.Encaps one way and H.Encaps.Red back, delivered by End.DT6 into
 * its delivery table; tenant B cannot reach A (drops counted by the BPF counters beside A's pings);
 * realise is idempotent; a delta equals a full realise; a new backend adopts the pins while a 50 pps
 * ping goes on; a moved workload is reached through host 1's redirect; flush leaves no pin and no tcx
 * link.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Dataplane } from '../../../src/dataplane/dataplane.ts';
import {
  isExactPolicy,
  MAP,
  sidKey as mapSidKey,
  parseSidSlot,
  type ReasonName,
} from '../../../src/dataplane/ebpf/abi.ts';
import { EbpfBackend, type EbpfBackendOptions } from '../../../src/dataplane/ebpf/backend.ts';
import { BpfMap } from '../../../src/dataplane/ebpf/libbpf.ts';
import {
  diffIntents,
  type ForwardingIntent,
  type IntentItem,
  sidKey,
  UNDERLAY,
} from '../../../src/dataplane/intent.ts';
import { parseIpv6 } from '../../../src/srv6/address.ts';
import { createLab, type Netns, sh, systemSuite, waitFor } from '../../harness/index.ts';
import { addWorkload, attachment, compileDatapath, entry, scopes, sid, twoEbpfHosts } from './fixture.ts';

const ip = parseIpv6;
const ZERO = { added: 0, replaced: 0, deleted: 0, conflicts: [], skipped: [] };
const A = scopes('a', 1);
const B = scopes('b', 2);

/** Host n's intent: its SIDs, the other host's locator, tenants A (2 segments) and B (1 segment). */
function hostIntent(n: number, extra: IntentItem[] = []): ForwardingIntent {
  const m = 3 - n;
  const items: IntentItem[] = [
    sid(`fc00:0:${n}::e`, 'End'),
    sid(`fc00:0:${n}::a6`, 'End.DT6', A.delivery),
    sid(`fc00:0:${n}::b6`, 'End.DT6', B.delivery),
    entry(UNDERLAY, `fc00:0:${m}::/48`, { kind: 'locator', via: ip(`2001:db8:12::${m}`) }),
    entry(A.egress, `fd01:${m}::/64`, {
      kind: 'encap',
      mode: n === 1 ? 'encap' : 'encap.red',
      segments: [ip(`fc00:0:${m}::e`), ip(`fc00:0:${m}::a6`)],
    }),
    entry(B.egress, `fd02:${m}::/64`, { kind: 'encap', mode: 'encap', segments: [ip(`fc00:0:${m}::b6`)] }),
  ];
  for (const [t, s, link] of [
    ['a', A, 'wa0'],
    ['b', B, 'wb0'],
  ] as const) {
    const addr = `fd0${t === 'a' ? 1 : 2}:${n}::10`;
    items.push(
      attachment(n, link, t, s.egress, addr),
      entry(s.egress, `${addr}/128`, { kind: 'deliver', link }),
      entry(s.egress, '::/0', { kind: 'unreachable' }),
      entry(s.delivery, `${addr}/128`, { kind: 'deliver', link }),
      entry(s.delivery, '::/0', { kind: 'unreachable' }),
    );
  }
  for (const i of extra) items.push(i);
  return { host: `h${n}`, items: new Map(items.map((i) => [i.key, i])) };
}

/** ICMPv6 echo requests a namespace's stack has received (which instance of a moved workload answered). */
async function echoesIn(ns: Netns): Promise<number> {
  const snmp = (await ns.exec('cat', ['/proc/net/snmp6'])).stdout;
  return Number(/^Icmp6InEchos\s+(\d+)$/m.exec(snmp)?.[1] ?? Number.NaN);
}

async function ping(from: Netns, dst: string, count = 3, interval = '0.2'): Promise<number> {
  const r = await from.exec('ping', ['-c', String(count), '-i', interval, '-W', '2', dst], {
    allowFail: true,
    timeoutMs: 60_000,
  });
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
}

/** The backend's pinned tcx links in `pinDir`: pin name -> link id. */
async function tcxLinks(pinDir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const f of readdirSync(pinDir).filter((x) => x.startsWith('link_'))) {
    const r = await sh('bpftool', ['-j', 'link', 'show', 'pinned', `${pinDir}/${f}`]);
    out.set(f, (JSON.parse(r.stdout) as { id: number }).id);
  }
  return out;
}

async function linkExists(id: number): Promise<boolean> {
  return (await sh('bpftool', ['link', 'show', 'id', String(id)], { allowFail: true })).code === 0;
}

systemSuite(
  'ebpf backend: intents realised in tc BPF on two hosts, two tenants',
  { tools: ['clang', 'ip', 'ping', 'bpftool'] },
  () => {
    const lab = createLab();
    const hosts: Netns[] = [];
    const wl: Record<string, Netns> = {};
    const dps: Dataplane[] = [];
    const opts: EbpfBackendOptions[] = [];
    const backends: EbpfBackend[] = [];

    /**
     * Host 1's backend handed over to a new one on the same pins (`objectPath`: another object) while
     * a1 pings a2: the old one closes once `reason` counted 20 of the ping's packets; the new one
     * realises host 1's intent. Returns the ping (its answers), the counters at its start, the new
     * backend and what its first realise wrote.
     */
    const handOverUnderPing = async (
      current: EbpfBackend,
      objectPath: string | undefined,
      count: number,
      interval: string,
      reason: ReasonName = 'encap',
    ) => {
      const start = await current.readCounters();
      const pinging = ping(wl.a1!, 'fd01:2::10', count, interval);
      await waitFor(
        async () => (await current.readCounters()).reasons.get(reason)! - start.reasons.get(reason)! >= 20n,
        { timeoutMs: 10_000, what: 'the ping to start' },
      );
      await current.close();
      const next = new EbpfBackend(dps[0]!, objectPath ? { ...opts[0]!, objectPath } : opts[0]!);
      backends[0] = next;
      const realised = await next.realise(hostIntent(1));
      return { pinging, start, next, realised };
    };

    beforeAll(async () => {
      const objectPath = await compileDatapath();
      const made = await twoEbpfHosts(lab, { prefix: 'b', tenants: ['a', 'b'], objectPath });
      Object.assign(wl, made.wl);
      for (const h of made.hosts) {
        hosts.push(h.ns);
        dps.push(h.dp);
        opts.push(h.opts);
        backends.push(h.backend);
      }
    });

    afterAll(async () => {
      for (const b of backends) await b.flush().catch(() => undefined);
      for (const d of dps) await d.close().catch(() => undefined);
      await lab.teardown();
    });

    it('host settings: forwarding on, seg6_enabled 0 everywhere (no kernel decapsulation past the tenants)', async () => {
      const h = hosts[0]!;
      expect(await h.readSysctl('net.ipv6.conf.all.forwarding')).toBe('1');
      expect(await h.readSysctl('net.ipv6.conf.all.seg6_enabled')).toBe('0');
      expect(await h.readSysctl('net.ipv6.conf.ul0.seg6_enabled')).toBe('0');
    });

    it('realise: tenant A pings across (H.Encaps out, H.Encaps.Red back, End + End.DT6); B too (no SRH); a second realise writes nothing', async () => {
      for (const [i, b] of backends.entries()) {
        const r = await b.realise(hostIntent(i + 1));
        expect(r.conflicts).toStrictEqual([]);
        expect(b.skipped).toStrictEqual([]);
        // 2 endpoints, 3 SIDs, 2 blocked, 6 policies + 2 local delivery entries (the workloads' /128s in
        // the delivery key space), 1 next hop (the other host's locator); routes: 1 underlay + 4
        // delivery; the config slot of the array map exists from the start (zeros): replaced.
        expect(r).toMatchObject({ added: 2 + 3 + 2 + 6 + 2 + 1 + 5, replaced: 1, deleted: 0 });
      }
      const [b1, b2] = backends as [EbpfBackend, EbpfBackend];
      const c1 = await b1.readCounters();
      const c2 = await b2.readCounters();
      expect(await ping(wl.a1!, 'fd01:2::10')).toBe(3);
      expect(await ping(wl.b1!, 'fd02:2::10')).toBe(3);
      const d1 = await b1.readCounters();
      const d2 = await b2.readCounters();
      const inc = (a: typeof c1, b: typeof c1, r: Parameters<typeof c1.reasons.get>[0]) =>
        Number((b.reasons.get(r) ?? 0n) - (a.reasons.get(r) ?? 0n));
      expect(inc(c1, d1, 'encap')).toBe(3); // A, two segments
      expect(inc(c1, d1, 'encap_nosrh')).toBe(3); // B, one segment
      expect(inc(c2, d2, 'encap_red')).toBe(3); // A's replies
      expect(inc(c2, d2, 'end')).toBe(3);
      expect(inc(c2, d2, 'dt6')).toBe(6);
      expect(inc(c1, d1, 'dt6')).toBe(6);
      // Every encapsulation (A's and B's, both ways) went to the other host's locator's next hop from
      // sm_nexthops, none through a FIB lookup.
      expect(inc(c1, d1, 'redirect_nexthop')).toBe(6);
      expect(inc(c2, d2, 'redirect_nexthop')).toBe(6);
      expect(inc(c1, d1, 'redirect')).toBe(0);
      const dt6a = sidKey(ip('fc00:0:2::a6'));
      expect(d2.sids.get(dt6a)!.packets - (c2.sids.get(dt6a)?.packets ?? 0n)).toBe(3n);
      for (const [a, b] of [
        [c1, d1],
        [c2, d2],
      ] as const)
        expect(
          [...b.reasons].filter(([k, v]) => k.startsWith('drop_') && v !== a.reasons.get(k)),
        ).toStrictEqual([]);

      for (const [i, b] of backends.entries()) expect(await b.realise(hostIntent(i + 1))).toStrictEqual(ZERO);
    });

    it("isolation: B's workload reaches neither A's workload nor A's SID (0 received, drops in readCounters); A's ping beside it passes", async () => {
      const b1 = backends[0]!;
      const before = await b1.readCounters();
      expect(await ping(wl.a1!, 'fd01:2::10', 2)).toBe(2);
      expect(await ping(wl.b1!, 'fd01:2::10', 2)).toBe(0);
      expect(await ping(wl.b1!, 'fc00:0:2::a6', 2)).toBe(0);
      expect(await ping(wl.b1!, 'fd01:1::10', 2)).toBe(0); // A's workload on the same host
      const after = await b1.readCounters();
      const inc = (r: 'drop_policy' | 'encap') => Number(after.reasons.get(r)! - before.reasons.get(r)!);
      expect(inc('drop_policy')).toBe(4); // B's ::/0 unreachable
      expect(after.attachments.get('*')!.sidBlock - before.attachments.get('*')!.sidBlock).toBe(2);
      expect(inc('encap')).toBe(2);
    });

    it('applyDelta of a moved workload equals a full realise (which then writes nothing); back again', async () => {
      const b1 = backends[0]!;
      const to = (host: number) =>
        entry(A.egress, 'fd01:2::20/128', {
          kind: 'encap',
          mode: 'encap',
          segments: [ip(`fc00:0:${host}::a6`)],
        });
      const h3 = entry(UNDERLAY, 'fc00:0:3::/48', { kind: 'locator', via: ip('2001:db8:12::2') });
      const base = hostIntent(1);
      const at2 = hostIntent(1, [to(2)]);
      const at3 = hostIntent(1, [to(3), h3]);
      expect(await b1.applyDelta(base, at2, diffIntents(base.items, at2.items))).toStrictEqual({
        ...ZERO,
        added: 1,
      });
      expect(await b1.applyDelta(at2, at3, diffIntents(at2.items, at3.items))).toStrictEqual({
        ...ZERO,
        added: 2, // the route to the new locator, its next hop slot
        replaced: 1, // the policy (toward the new locator's slot)
      });
      expect(await b1.realise(at3)).toStrictEqual(ZERO);
      // The new locator's next hop changes: its slot alone is rewritten (no policy, the route replaced).
      const h3b = entry(UNDERLAY, 'fc00:0:3::/48', { kind: 'locator', via: ip('2001:db8:12::9') });
      const at3b = hostIntent(1, [to(3), h3b]);
      expect(await b1.applyDelta(at3, at3b, diffIntents(at3.items, at3b.items))).toStrictEqual({
        ...ZERO,
        replaced: 2,
      });
      expect(await b1.realise(at3b)).toStrictEqual(ZERO);
      expect(await b1.realise(base)).toStrictEqual({ ...ZERO, deleted: 3 });
    });

    it("per-SID counters by slot across deltas: a SID keeps its slot and counts; a removed SID's slot is not reused in the same step, and is zeroed before a new SID takes it", async () => {
      const b2 = backends[1]!;
      const S1 = sid('fc00:0:2::c1', 'End.DT6', A.delivery);
      const S2 = sid('fc00:0:2::c2', 'End.DT6', A.delivery);
      const S3 = sid('fc00:0:2::c3', 'End.DT6', A.delivery);
      const sids = BpfMap.openPinned(`${opts[1]!.pinDir}/${MAP.sids}`);
      try {
        const slotOf = (s: typeof S1) => parseSidSlot(sids.lookup(mapSidKey(s.sid))!);
        const packets = async (s: typeof S1) => (await b2.readCounters()).sids.get(s.key)?.packets ?? 0n;
        // Plain pings from host 1 to the SID: counted at the SID (then dropped: no IPv6 inside).
        const toSid = (s: typeof S1, n: number) => ping(hosts[0]!, s.sidKey, n, '0.1');
        const step = async (from: ForwardingIntent, to: ForwardingIntent) =>
          b2.applyDelta(from, to, diffIntents(from.items, to.items));
        const base = hostIntent(2);
        const with1 = hostIntent(2, [S1]);
        const with2 = hostIntent(2, [S2]);
        const with23 = hostIntent(2, [S2, S3]);
        expect(await b2.realise(base)).toStrictEqual(ZERO);
        const a6 = sidKey(ip('fc00:0:2::a6'));
        const a6Before = (await b2.readCounters()).sids.get(a6)!.packets;
        expect(await step(base, with1)).toStrictEqual({ ...ZERO, added: 1 });
        const s1 = slotOf(S1);
        expect(s1).toBeGreaterThan(0);
        await toSid(S1, 3);
        expect(await packets(S1)).toBe(3n);
        // S1 goes and S2 comes in one step: a slot of its own (S1's entry counted into its slot until
        // deleted), from 0.
        expect(await step(with1, with2)).toStrictEqual({ ...ZERO, added: 1, deleted: 1 });
        expect(slotOf(S2)).not.toBe(s1);
        expect(await packets(S2)).toBe(0n);
        // Later S3 takes S1's freed slot, zeroed first: it starts from 0, not from S1's 3.
        expect(await step(with2, with23)).toStrictEqual({ ...ZERO, added: 1 });
        expect(slotOf(S3)).toBe(s1);
        expect(await packets(S3)).toBe(0n);
        await toSid(S3, 2);
        expect([await packets(S3), await packets(S2)]).toStrictEqual([2n, 0n]);
        // The tenant's SID kept its slot and counted on through the deltas.
        expect(await ping(wl.a1!, 'fd01:2::10')).toBe(3);
        expect((await b2.readCounters()).sids.get(a6)!.packets - a6Before).toBe(3n);
        // A full realise keeps every slot: nothing written.
        expect(await b2.realise(with23)).toStrictEqual(ZERO);
        expect(await step(with23, base)).toStrictEqual({ ...ZERO, deleted: 2 });
      } finally {
        sids.close();
      }
    });

    it('a new backend on the same pins adopts the maps and links and writes nothing while a 50 pps ping goes on (0 lost)', async () => {
      const [b1] = backends as [EbpfBackend];
      const mapId = async () =>
        (
          JSON.parse(
            (await sh('bpftool', ['-j', 'map', 'show', 'pinned', `${opts[0]!.pinDir}/sm_policy`])).stdout,
          ) as { id: number }
        ).id;
      const idBefore = await mapId();
      const a6 = sidKey(ip('fc00:0:1::a6')); // the SID the replies come back to
      const { pinging, start, next: again, realised } = await handOverUnderPing(b1, undefined, 150, '0.02');
      expect(realised).toStrictEqual(ZERO);
      expect(await pinging).toBe(150);
      expect(await mapId()).toBe(idBefore); // the same map, adopted, not a new one refilled
      const end = await again.readCounters();
      expect(Number(end.reasons.get('encap')! - start.reasons.get('encap')!)).toBeGreaterThanOrEqual(150);
      // Its counter slot adopted (from the pinned sm_sids, no entry rewritten): the counts go on.
      expect(end.sids.get(a6)!.packets - start.sids.get(a6)!.packets).toBeGreaterThanOrEqual(150n);
    });

    it('upgrade in place, 100 pps, 0 lost: an object whose sm_policy changed layout replaces the programs through the pinned links, its sm_policy filled before the switch; the other maps are adopted; and back', async () => {
      const [b1] = backends as [EbpfBackend];
      const pinDir = opts[0]!.pinDir;
      const grown = await compileDatapath(['SM_POLICY_MAX=300000']);
      const mapInfo = async (name: string) =>
        JSON.parse((await sh('bpftool', ['-j', 'map', 'show', 'pinned', `${pinDir}/${name}`])).stdout) as {
          id: number;
          max_entries: number;
        };
      const linkProgs = async () => {
        const out = new Map<string, number>();
        for (const f of readdirSync(pinDir).filter((x) => x.startsWith('link_'))) {
          const r = await sh('bpftool', ['-j', 'link', 'show', 'pinned', `${pinDir}/${f}`]);
          out.set(f, (JSON.parse(r.stdout) as { prog_id: number }).prog_id);
        }
        return out;
      };
      const mapExists = async (id: number) =>
        (await sh('bpftool', ['map', 'show', 'id', String(id)], { allowFail: true })).code === 0;

      let current = b1;
      for (const [objectPath, maxEntries] of [
        [grown, 300_000],
        [opts[0]!.objectPath!, 262_144],
      ] as const) {
        const policyBefore = await mapInfo('sm_policy');
        const sidsBefore = await mapInfo('sm_sids');
        const links = await tcxLinks(pinDir);
        const progsBefore = await linkProgs();
        const {
          pinging,
          start,
          next,
          realised: r,
        } = await handOverUnderPing(current, objectPath, 300, '0.01');
        expect(next.migrated).toStrictEqual([
          `sm_policy (max entries ${policyBefore.max_entries} -> ${maxEntries})`,
        ]);
        // Only the new sm_policy is written (from empty); every other map was adopted as it was.
        const policyAfter = await mapInfo('sm_policy');
        expect(r.added).toBeGreaterThan(0);
        expect({ replaced: r.replaced, deleted: r.deleted }).toStrictEqual({ replaced: 0, deleted: 0 });
        expect(policyAfter.max_entries).toBe(maxEntries);
        expect(policyAfter.id).not.toBe(policyBefore.id);
        expect((await mapInfo('sm_sids')).id).toBe(sidsBefore.id);
        // The same links (never detached), each now running a new program.
        expect(await tcxLinks(pinDir)).toStrictEqual(links);
        const progsAfter = await linkProgs();
        for (const [name, prog] of progsBefore) expect(progsAfter.get(name), name).not.toBe(prog);
        expect(await pinging).toBe(300);
        // Nothing holds the old sm_policy any more: the kernel frees it.
        await waitFor(async () => !(await mapExists(policyBefore.id)), {
          timeoutMs: 10_000,
          what: `the old sm_policy (map ${policyBefore.id}) to be freed`,
        });
        // Counters were adopted: the ping's packets are counted across the switch.
        const end = await next.readCounters();
        expect(Number(end.reasons.get('encap')! - start.reasons.get('encap')!)).toBeGreaterThanOrEqual(300);
        expect(await next.realise(hostIntent(1))).toStrictEqual(ZERO);
        current = next;
      }
    });

    it('upgrade from an older object whose sm_nexthops is a hash (and back), 100 pps, 0 lost: the slots the adopted sm_policy names are kept (its entries untouched); a locator that goes empties its array slot, which a realise then does not see', async () => {
      const [b1] = backends as [EbpfBackend];
      const pinDir = opts[0]!.pinDir;
      const hashed = await compileDatapath(['SM_NEXTHOPS_HASH']);
      const mapInfo = async (name: string) =>
        JSON.parse((await sh('bpftool', ['-j', 'map', 'show', 'pinned', `${pinDir}/${name}`])).stdout) as {
          id: number;
          type: string;
        };
      // The locator's slot moved off 1 first (a fresh assignment would give it 1: kept, it stays 3).
      const loc = (p: string) => entry(UNDERLAY, p, { kind: 'locator', via: ip('2001:db8:12::2') });
      const base = hostIntent(1);
      const locKey = [...base.items.values()].find(
        (i) => i.kind === 'entry' && i.scope.kind === 'underlay' && i.action.kind === 'locator',
      )!.key;
      const withoutLoc = (extra: IntentItem[]) => {
        const items = new Map(base.items);
        items.delete(locKey);
        for (const i of extra) items.set(i.key, i);
        return { ...base, items };
      };
      await b1.realise(withoutLoc([loc('fc00:0:5::/48')])); // fc00:0:5:: takes slot 2, slot 1 freed
      await b1.realise(hostIntent(1, [loc('fc00:0:5::/48'), loc('fc00:0:0::/48')])); // 0: 1, 2: 3
      await b1.realise(hostIntent(1));
      const slotOf3 = async () =>
        (
          JSON.parse(
            (
              await sh('bpftool', [
                '-j',
                'map',
                'lookup',
                'pinned',
                `${pinDir}/sm_nexthops`,
                'key',
                '3',
                '0',
                '0',
                '0',
              ])
            ).stdout,
          ) as { value: string[] | { oif: number } }
        ).value;
      const oifOf = (v: string[] | { oif: number }) => (Array.isArray(v) ? Number(v[0]) : v.oif);
      expect(oifOf(await slotOf3())).toBeGreaterThan(0);
      let current = b1;
      for (const [objectPath, type, why] of [
        [hashed, 'hash', 'type 2 -> 1'],
        [opts[0]!.objectPath!, 'array', 'type 1 -> 2'],
      ] as const) {
        const policyBefore = await mapInfo('sm_policy');
        const {
          pinging,
          start,
          next,
          realised: r,
        } = await handOverUnderPing(current, objectPath, 300, '0.01');
        expect(next.migrated).toStrictEqual([`sm_nexthops (${why})`]);
        // The new sm_nexthops gets the one locator's slot; nothing else is written (sm_policy's values
        // name the same slot: read from the old pin, not assigned afresh).
        expect(r).toMatchObject({ added: 1, replaced: 0, deleted: 0 });
        expect((await mapInfo('sm_nexthops')).type).toBe(type);
        expect((await mapInfo('sm_policy')).id).toBe(policyBefore.id);
        expect(await pinging).toBe(300);
        const end = await next.readCounters();
        expect(Number(end.reasons.get('encap')! - start.reasons.get('encap')!)).toBeGreaterThanOrEqual(300);
        expect(await next.realise(hostIntent(1))).toStrictEqual(ZERO);
        expect(oifOf(await slotOf3())).toBeGreaterThan(0); // still slot 3
        current = next;
      }
      // Back on the array: the locator goes (its slot emptied: zeros, one "delete"), and comes back.
      const gone = await current.realise(withoutLoc([]));
      // The slot, and the encap policies of both tenants that named it (slot 0 now), and its route.
      expect(gone.deleted).toBe(2);
      expect(gone.replaced).toBe(2);
      const slots = (await sh('bpftool', ['-j', 'map', 'dump', 'pinned', `${pinDir}/sm_nexthops`])).stdout;
      const nonEmpty = (JSON.parse(slots) as { value: { oif: number } | string[] }[]).filter((e) =>
        Array.isArray(e.value) ? e.value.slice(0, 4).some((b) => Number(b) !== 0) : e.value.oif !== 0,
      );
      expect(nonEmpty).toStrictEqual([]);
      expect(await current.realise(withoutLoc([]))).toStrictEqual(ZERO);
      const back = await current.realise(hostIntent(1));
      expect(back).toMatchObject({ added: 2, replaced: 2, deleted: 0 });
      expect(await ping(wl.a1!, 'fd01:2::10')).toBe(3);
      expect(await current.realise(hostIntent(1))).toStrictEqual(ZERO);
    });

    it('upgrade from an object of before sm_exact (the /128s in sm_policy), 100 pps, 0 lost: the /128s move to sm_exact, written before the switch and deleted from sm_policy only after it (every reply delivered from its /128 throughout); a second realise writes nothing', async () => {
      const pinDir = opts[0]!.pinDir;
      const older = await compileDatapath(['SM_NO_EXACT']);
      /** The /128 keys of the pinned sm_policy, and the entries of the pinned sm_exact (none: no pin). */
      const layout = () => {
        const pol = BpfMap.openPinned(`${pinDir}/${MAP.policy}`);
        try {
          const slash128 = pol.keys().filter((k) => isExactPolicy(k)).length;
          if (!existsSync(`${pinDir}/${MAP.exact}`)) return { slash128, exact: -1 };
          const ex = BpfMap.openPinned(`${pinDir}/${MAP.exact}`);
          try {
            return { slash128, exact: ex.keys().length };
          } finally {
            ex.close();
          }
        } finally {
          pol.close();
        }
      };
      // Host 1's /128s: each tenant's workload, in its egress and its delivery key space.
      const n = 4;
      // The pins as an agent of before sm_exact leaves them: the /128s in sm_policy, no sm_exact pin.
      await backends[0]!.close();
      const down = new EbpfBackend(dps[0]!, { ...opts[0]!, objectPath: older });
      backends[0] = down;
      await down.realise(hostIntent(1));
      rmSync(`${pinDir}/${MAP.exact}`, { force: true });
      expect(layout()).toStrictEqual({ slash128: n, exact: -1 });
      expect(await down.realise(hostIntent(1))).toStrictEqual(ZERO);
      expect(await ping(wl.a1!, 'fd01:2::10')).toBe(3);

      const {
        pinging,
        start,
        next,
        realised: r,
      } = await handOverUnderPing(down, undefined, 300, '0.01', 'local');
      // Moved: written to the new sm_exact, deleted from sm_policy; nothing else written or replaced.
      expect(r).toMatchObject({ added: n, replaced: 0, deleted: n });
      expect(next.migrated).toStrictEqual([]);
      expect(layout()).toStrictEqual({ slash128: 0, exact: n });
      expect(await pinging).toBe(300);
      // The replies to host 1 (End.DT6 of a delivery SID): each one delivered from its /128 (counted
      // local), none left to the FIB lookup, as it would be had the old programs found sm_policy without
      // the /128 before the switch.
      const end = await next.readCounters();
      const d = (k: 'local' | 'dt6') => end.reasons.get(k)! - start.reasons.get(k)!;
      expect(d('local')).toBeGreaterThanOrEqual(300n);
      expect(d('local')).toBe(d('dt6'));
      expect(await next.realise(hostIntent(1))).toStrictEqual(ZERO);
    });

    it('upgrade from per-SID counters keyed by the SID (a per-CPU hash, before counter slots): the array replaces it, each SID counting on from its old counts', async () => {
      const pinDir = opts[0]!.pinDir;
      const pin = `${pinDir}/${MAP.sidStats}`;
      await backends[0]!.close();
      // The pin as the previous version left it: a per-CPU hash keyed by the 16-byte SID, with counts
      // for host 1's tenant A SID (CPU 0 and the last CPU) and for a SID the intent no longer has.
      expect(readdirSync(pinDir)).toContain(MAP.sidStats);
      rmSync(pin);
      await sh('bpftool', [
        ...['map', 'create', pin, 'type', 'percpu_hash', 'key', '16', 'value', '16', 'entries', '16384'],
        ...['name', MAP.sidStats],
      ]);
      const old = BpfMap.openPinned(pin);
      const a6 = ip('fc00:0:1::a6');
      try {
        const v = new Uint8Array(old.lookupSize);
        const dv = new DataView(v.buffer);
        const last = v.length - 16;
        dv.setBigUint64(0, 1000n, true);
        dv.setBigUint64(8, 100_000n, true);
        dv.setBigUint64(last, dv.getBigUint64(last, true) + 5n, true);
        dv.setBigUint64(last + 8, dv.getBigUint64(last + 8, true) + 500n, true);
        old.update(mapSidKey(a6), v);
        old.update(mapSidKey(ip('fc00:0:1::dead')), v);
      } finally {
        old.close();
      }
      // And sm_sids as it left it: the same layout, the slot field (its padding then) 0.
      const sids = BpfMap.openPinned(`${pinDir}/${MAP.sids}`);
      try {
        for (const [k, v] of sids.entries())
          sids.update(
            k,
            Uint8Array.from(v, (x, i) => (i === 2 || i === 3 ? 0 : x)),
          );
      } finally {
        sids.close();
      }
      const next = new EbpfBackend(dps[0]!, opts[0]!);
      backends[0] = next;
      const r = await next.realise(hostIntent(1));
      expect(next.migrated).toStrictEqual([
        `${MAP.sidStats} (type 5 -> 6, key size 16 -> 4, max entries 16384 -> 16385)`,
      ]);
      // The three SIDs' entries get their slots (rewritten once); nothing else is written.
      expect(r).toStrictEqual({ ...ZERO, replaced: 3 });
      const info = JSON.parse((await sh('bpftool', ['-j', 'map', 'show', 'pinned', pin])).stdout) as {
        type: string;
      };
      expect(info.type).toBe('percpu_array');
      const c = await next.readCounters();
      expect(c.sids.get(sidKey(a6))).toStrictEqual({ packets: 1005n, bytes: 100_500n, errors: 0n });
      // And it counts on: the replies of a ping come back through it.
      expect(await ping(wl.a1!, 'fd01:2::10')).toBe(3);
      expect((await next.readCounters()).sids.get(sidKey(a6))!.packets).toBe(1008n);
      expect(await next.realise(hostIntent(1))).toStrictEqual(ZERO);
    });

    it('detach removes wl_in and the endpoint: B on host 1 is cut off while A passes; attach and realise bring it back', async () => {
      const b1 = backends[0]!;
      const before = await tcxLinks(opts[0]!.pinDir);
      expect([...before.keys()].sort()).toStrictEqual(['link_ul_in_ul0', 'link_wl_in_wa0', 'link_wl_in_wb0']);
      await b1.detach('wb0');
      const after = await tcxLinks(opts[0]!.pinDir);
      expect([...after.keys()].sort()).toStrictEqual(['link_ul_in_ul0', 'link_wl_in_wa0']);
      expect(await linkExists(before.get('link_wl_in_wb0')!)).toBe(false);
      expect(await linkExists(before.get('link_wl_in_wa0')!)).toBe(true);
      expect(await ping(wl.b1!, 'fd02:2::10', 2)).toBe(0);
      expect(await ping(wl.a1!, 'fd01:2::10', 2)).toBe(2);
      await b1.attach('wb0');
      expect((await tcxLinks(opts[0]!.pinDir)).has('link_wl_in_wb0')).toBe(true);
      expect(await b1.realise(hostIntent(1))).toStrictEqual({ ...ZERO, added: 1 }); // the endpoint
      expect(await ping(wl.b1!, 'fd02:2::10', 2)).toBe(2);
    });

    it("a moved workload: what still reaches host 1's End.DT6 for it is redirected by BPF toward host 2, where the new instance answers (make before break)", async () => {
      const [b1, b2] = backends as [EbpfBackend, EbpfBackend];
      const MOVED = 'fd01:1::30';
      const oldInstance = await addWorkload(lab, hosts[0]!, 'wm0', 'bm1', MOVED);
      const newInstance = await addWorkload(lab, hosts[1]!, 'wm0', 'bm2', MOVED);
      const toHost2 = { mode: 'encap.red', segments: [ip('fc00:0:2::a6')] } as const;
      const h1Before = hostIntent(1, [
        attachment(1, 'wm0', 'a', A.egress, MOVED),
        entry(A.egress, `${MOVED}/128`, { kind: 'deliver', link: 'wm0' }),
        entry(A.delivery, `${MOVED}/128`, { kind: 'deliver', link: 'wm0' }),
      ]);
      // Host 1 after the move: its delivery entry turns into encap toward host 2's End.DT6.
      const h1After = hostIntent(1, [
        entry(A.egress, `${MOVED}/128`, { kind: 'encap', ...toHost2 }),
        entry(A.delivery, `${MOVED}/128`, { kind: 'encap', ...toHost2 }),
      ]);
      // Host 2 takes the workload in; its egress /64 toward host 1 stays, standing for a sender whose plan
      // has not caught up yet: a2's pings keep arriving at host 1 (End, then End.DT6).
      const h2Before = hostIntent(2);
      const h2After = hostIntent(2, [
        attachment(2, 'wm0', 'a', A.egress, MOVED),
        entry(A.delivery, `${MOVED}/128`, { kind: 'deliver', link: 'wm0' }),
      ]);
      await b1.realise(h1Before);
      expect(await b2.realise(h2Before)).toStrictEqual(ZERO);
      expect(b1.skipped).toStrictEqual([]);

      // Before the move: host 1's instance answers.
      const echoes = async () => [await echoesIn(oldInstance), await echoesIn(newInstance)];
      let e0 = await echoes();
      expect(await ping(wl.a2!, MOVED)).toBe(3);
      let e1 = await echoes();
      expect([e1[0]! - e0[0]!, e1[1]! - e0[1]!]).toStrictEqual([3, 0]);

      // The move, new host first: the delivery redirect is a policy in the delivery key space, not skipped.
      const r2 = await b2.applyDelta(h2Before, h2After, diffIntents(h2Before.items, h2After.items));
      // The endpoint, the delivery route and its local delivery entry (its blocked prefixes are host 2's
      // already).
      expect(r2).toMatchObject({ added: 3, replaced: 0, deleted: 0, skipped: [] });
      const r1 = await b1.applyDelta(h1Before, h1After, diffIntents(h1Before.items, h1After.items));
      // The delivery entry replaced (local -> the redirect), the egress policy replaced (local -> encap),
      // endpoint and delivery route deleted.
      expect(r1).toMatchObject({ added: 0, replaced: 2, deleted: 2, skipped: [] });
      const m1 = await b1.readCounters();
      const m2 = await b2.readCounters();
      e0 = await echoes();
      expect(await ping(wl.a2!, MOVED)).toBe(3);
      e1 = await echoes();
      expect([e1[0]! - e0[0]!, e1[1]! - e0[1]!]).toStrictEqual([0, 3]);
      const n1 = await b1.readCounters();
      const n2 = await b2.readCounters();
      type R = Parameters<typeof m1.reasons.get>[0];
      const inc = (a: typeof m1, b: typeof m1, r: R) =>
        Number((b.reasons.get(r) ?? 0n) - (a.reasons.get(r) ?? 0n));
      // Host 1: End, then the redirect instead of End.DT6's lookup, to host 2's locator's next hop
      // (sm_nexthops, no FIB lookup); host 2: End.DT6 delivers; no drops.
      expect(
        (['end', 'redirect_move', 'dt6', 'redirect_nexthop', 'redirect'] as const).map((r) => inc(m1, n1, r)),
      ).toStrictEqual([3, 3, 0, 3, 0]);
      expect(inc(m2, n2, 'dt6')).toBe(3);
      for (const [a, b] of [
        [m1, n1],
        [m2, n2],
      ] as const)
        expect(
          [...b.reasons].filter(([k, v]) => k.startsWith('drop_') && v !== a.reasons.get(k)),
        ).toStrictEqual([]);

      // A redirect whose headers are longer than the ones the packet came with (H.Encaps with two
      // segments, 80 bytes, after H.Encaps.Red's 64): a 1,430-byte packet fitted the underlay (1,500)
      // from host 2 but not after the redirect. Its sender gets a PTB from host 1 (mtu 1,500 - 80)
      // through tenant A's egress policy, and its next packets fit; 1,420 bytes pass.
      const h1Grow = hostIntent(1, [
        entry(A.egress, `${MOVED}/128`, { kind: 'encap', ...toHost2 }),
        entry(A.delivery, `${MOVED}/128`, {
          kind: 'encap',
          mode: 'encap',
          segments: [ip('fc00:0:2::e'), ip('fc00:0:2::a6')],
        }),
      ]);
      await b1.applyDelta(h1After, h1Grow, diffIntents(h1After.items, h1Grow.items));
      const p0 = await b1.readCounters();
      e0 = await echoes();
      const big = await wl.a2!.exec(
        'ping',
        ['-c', '1', '-M', 'do', '-s', String(1430 - 48), '-W', '2', MOVED],
        {
          allowFail: true,
        },
      );
      expect(big.stdout).toMatch(/Packet too big: mtu=1420/);
      expect((await wl.a2!.exec('ip', ['-6', 'route', 'get', MOVED])).stdout).toMatch(/ mtu 1420 /);
      const p1 = await b1.readCounters();
      expect((['ptb', 'redirect_move'] as const).map((r) => inc(p0, p1, r))).toStrictEqual([1, 0]);
      expect(await ping(wl.a2!, MOVED, 1)).toBe(1); // small ones still pass
      const fits = await wl.a2!.exec(
        'ping',
        ['-c', '2', '-M', 'do', '-s', String(1420 - 48), '-W', '2', MOVED],
        {
          allowFail: true,
        },
      );
      expect(fits.stdout).toMatch(/2 received/);
      e1 = await echoes();
      expect([e1[0]! - e0[0]!, e1[1]! - e0[1]!]).toStrictEqual([0, 3]);
      expect(inc(p1, await b1.readCounters(), 'redirect_move')).toBe(3);
      await wl.a2!.exec('ip', ['-6', 'route', 'flush', 'cache']);

      // Back to the base intents (wl_in leaves wm0 on both hosts).
      await b1.applyDelta(h1Grow, hostIntent(1), diffIntents(h1Grow.items, hostIntent(1).items));
      await b2.applyDelta(h2After, hostIntent(2), diffIntents(h2After.items, hostIntent(2).items));
      expect(await b1.realise(hostIntent(1))).toStrictEqual(ZERO);
      expect(await b2.realise(hostIntent(2))).toStrictEqual(ZERO);
    });

    it('flush leaves nothing: no pins, no bpffs, no tcx links, no routes; forwarding stops (it passed before)', async () => {
      expect(await ping(wl.a1!, 'fd01:2::10', 2)).toBe(2);
      for (const [i, b] of backends.entries()) {
        const links = await tcxLinks(opts[i]!.pinDir);
        expect(links.size).toBe(3);
        for (const id of links.values()) expect(await linkExists(id)).toBe(true);
        await b.flush();
        const h = hosts[i]!;
        expect(existsSync(opts[i]!.pinDir)).toBe(false);
        expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(opts[i]!.pinDir);
        for (const id of links.values()) expect(await linkExists(id)).toBe(false);
        expect((await h.ip('-6', 'route', 'show', 'table', 'all', 'proto', '203')).stdout.trim()).toBe('');
      }
      expect(await ping(wl.a1!, 'fd01:2::10', 2)).toBe(0);
    });
  },
);
