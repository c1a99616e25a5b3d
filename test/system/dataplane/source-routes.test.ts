/**
 * Source-specific routes (tenant policies with `from`) on the real kernel: two routes to one
 * destination with different sources and segment lists, each source's traffic on its own path
 * (counted by the SIDs it crosses), the plain path for every other source, reconcile idempotence,
 * and our codec read by iproute2 and iproute2's routes read by our decoder.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROUTE_PROTOCOL } from '../../../src/dataplane/constants.ts';
import { coverSourceSubtrees, type Route } from '../../../src/dataplane/route.ts';
import { formatIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { createLab, type Netns, systemSuite } from '../../harness/index.ts';
import { buildFabric, dt6Sid, endSid, type Fabric, ip, TABLE, workloadText } from './fabric.ts';

/** Sources on workload a1 (all in 2001:db8:a:1::/64): ::1 and ::2 have policies, ::3 has none. */
const SRC = [1, 2, 3].map((i) => `2001:db8:a:1::${i}`);
const END2 = ip('fc00:0:3::e2'); // a second End SID on the transit host, for the second source
const DST = parsePrefix('2001:db8:a:2::/64');

async function ping(from: Netns, src: string, dst: string, count = 3): Promise<number> {
  const r = await from.exec('ping', ['-6', '-c', String(count), '-i', '0.2', '-W', '3', '-I', src, dst], {
    allowFail: true,
  });
  const m = /(\d+) received/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

systemSuite(
  'dataplane: source-specific routes',
  { tools: ['ip', 'ping'], kernel: ['seg6', 'seg6local'] },
  () => {
    const lab = createLab();
    let f: Fabric;
    const h = (n: number) => f.hosts[n - 1]!;
    const counter = async (n: number, sid: bigint) => (await h(n).dp.sidCounters(sid))?.packets ?? -1n;
    const fromSrc = (i: number, segments: bigint[]): Route => ({
      dst: DST,
      src: parsePrefix(`${SRC[i]}/128`),
      table: TABLE.a,
      dev: 'eth0',
      encap: { type: 'seg6', mode: 'encap', segments },
    });
    const viaE = fromSrc(0, [endSid(3), dt6Sid(2, 'a')]);
    const viaE2 = fromSrc(1, [END2, dt6Sid(2, 'a')]);
    /** Host 1's routes: the fabric's (plain path to a2 straight to its End.DT6) plus `extra`. */
    const host1 = (extra: Route[]): Route[] => [
      ...f.desiredRoutes(1, 'encap', false),
      // Delivery of the extra sources' replies (End.DT6 on host 1 looks up tenant a's table).
      ...SRC.slice(1).map((s) => ({ dst: parsePrefix(`${s}/128`), table: TABLE.a, dev: 'wa1' })),
      ...extra,
    ];
    const reconcile1 = (routes: readonly Route[]) => h(1).dp.reconcile({ routes, rules: f.desiredRules(1) });

    /** Pings a2 from source i; returns the packets counted by End, the second End, and a2's End.DT6. */
    async function paths(i: number): Promise<{ received: number; e: bigint; e2: bigint; dt6: bigint }> {
      const before = [await counter(3, endSid(3)), await counter(3, END2), await counter(2, dt6Sid(2, 'a'))];
      const received = await ping(f.workloads.get('a1')!, SRC[i]!, workloadText(2, 'a'));
      const after = [await counter(3, endSid(3)), await counter(3, END2), await counter(2, dt6Sid(2, 'a'))];
      return {
        received,
        e: after[0]! - before[0]!,
        e2: after[1]! - before[1]!,
        dt6: after[2]! - before[2]!,
      };
    }

    beforeAll(async () => {
      f = await buildFabric(lab);
      const a1 = f.workloads.get('a1')!;
      for (const s of SRC.slice(1)) await a1.ip('-6', 'addr', 'add', `${s}/64`, 'dev', 'eth0', 'nodad');
      for (const n of [2, 3]) {
        const extra: Route[] =
          n === 3
            ? [
                {
                  dst: { address: END2, length: 128 },
                  table: 254,
                  dev: 'eth0',
                  encap: { type: 'seg6local', action: 'End', counters: true },
                },
              ]
            : [];
        const r = await h(n).dp.reconcile({
          routes: [...f.desiredRoutes(n, 'encap', false), ...extra],
          rules: f.desiredRules(n),
        });
        expect(r.conflicts).toEqual([]);
      }
    });
    afterAll(async () => {
      await f?.close();
      await lab.teardown();
    });

    it('the kernel skips a plain route next to source routes to the same destination (why coverSourceSubtrees exists)', async () => {
      const r = await reconcile1(host1([viaE, viaE2]));
      expect(r.conflicts).toEqual([]);
      // Source ::3 matches neither source route; its lookup backtracks past the plain route to the
      // tenant's unreachable default.
      expect((await paths(2)).received).toBe(0);
      expect((await paths(0)).received).toBe(3);
    });

    it('two source routes to one destination with different segment lists: each source takes its own, any other source the plain path', async () => {
      const r = await reconcile1(coverSourceSubtrees(host1([viaE, viaE2])));
      // The plain route became ::/1 + 8000::/1 (two added, the plain one deleted).
      expect(r).toMatchObject({ added: 2, replaced: 0, deleted: 1, conflicts: [] });
      expect(await paths(0)).toEqual({ received: 3, e: 3n, e2: 0n, dt6: 3n });
      expect(await paths(1)).toEqual({ received: 3, e: 0n, e2: 3n, dt6: 3n });
      expect(await paths(2)).toEqual({ received: 3, e: 0n, e2: 0n, dt6: 3n });
    });

    it('iproute2 reads our source routes; a second reconcile changes nothing', async () => {
      const shown = (await h(1).ns.ip('-6', 'route', 'show', 'table', String(TABLE.a))).stdout;
      const line = (s: string) => shown.split('\n').find((l) => l.startsWith(`2001:db8:a:2::/64 from ${s} `));
      expect(line(SRC[0]!)).toMatch(
        /encap seg6 mode encap segs 2 \[ fc00:0:3::e fc00:0:2::a6 \] dev eth0 proto 203 metric 1024/,
      );
      expect(line(SRC[1]!)).toMatch(/encap seg6 mode encap segs 2 \[ fc00:0:3::e2 fc00:0:2::a6 \] dev eth0/);
      expect(line('::/1')).toMatch(/encap seg6 mode encap segs 1 \[ fc00:0:2::a6 \] dev eth0/);
      expect(line('8000::/1')).toMatch(/encap seg6 mode encap segs 1 \[ fc00:0:2::a6 \] dev eth0/);
      const desired = coverSourceSubtrees(host1([viaE, viaE2]));
      const again = await reconcile1(desired);
      expect(again).toMatchObject({ added: 0, replaced: 0, deleted: 0, conflicts: [] });
      expect(again.unchanged).toBe(desired.length + f.desiredRules(1).length);
    });

    it('removing one source route leaves the other; removing the last brings the plain route back', async () => {
      const one = await reconcile1(coverSourceSubtrees(host1([viaE])));
      expect(one).toMatchObject({ added: 0, replaced: 0, deleted: 1, conflicts: [] });
      expect(await paths(0)).toEqual({ received: 3, e: 3n, e2: 0n, dt6: 3n });
      expect(await paths(1)).toEqual({ received: 3, e: 0n, e2: 0n, dt6: 3n }); // now the plain path

      const none = await reconcile1(coverSourceSubtrees(host1([])));
      // viaE and the two halves out, the plain route back in.
      expect(none).toMatchObject({ added: 1, replaced: 0, deleted: 3, conflicts: [] });
      for (const i of [0, 1, 2]) expect(await paths(i)).toEqual({ received: 3, e: 0n, e2: 0n, dt6: 3n });
      const ours = await h(1).dp.listRoutes({ protocol: ROUTE_PROTOCOL, table: TABLE.a });
      expect(ours.filter((r) => r.src !== undefined)).toEqual([]);
    });

    it('our decoder reads source routes written by iproute2 (and a reconcile deletes them by their full key)', async () => {
      const table = String(TABLE.b + 100);
      const ns = h(1).ns;
      await ns.ip(
        '-6',
        'route',
        'add',
        '2001:db8:10::/64',
        'from',
        '2001:db8:20::/64',
        'encap',
        'seg6',
        'mode',
        'encap',
        'segs',
        'fc00:0:3::e,fc00:0:2::a6',
        'dev',
        'eth0',
        'proto',
        String(ROUTE_PROTOCOL),
        'table',
        table,
      );
      await ns.ip(
        '-6',
        'route',
        'add',
        '2001:db8:10::/64',
        'from',
        '2001:db8:21::/64',
        'dev',
        'eth0',
        'proto',
        String(ROUTE_PROTOCOL),
        'table',
        table,
      );
      const got = await h(1).dp.listRoutes({ table: Number(table) });
      const eth0 = (await h(1).dp.listLinks()).find((l) => l.name === 'eth0')!.index;
      expect(got.map((r) => [formatIpv6(r.src!.address), r.src!.length])).toEqual(
        expect.arrayContaining([
          ['2001:db8:20::', 64],
          ['2001:db8:21::', 64],
        ]),
      );
      expect(got.find((r) => r.src?.address === ip('2001:db8:20::'))).toMatchObject({
        dst: parsePrefix('2001:db8:10::/64'),
        table: Number(table),
        protocol: ROUTE_PROTOCOL,
        metric: 1024,
        oif: eth0,
        encap: { type: 'seg6', mode: 'encap', segments: [endSid(3), dt6Sid(2, 'a')] },
      });
      // Host 1's desired state does not hold them: a full reconcile deletes both (RTM_DELROUTE with RTA_SRC).
      const r = await reconcile1(coverSourceSubtrees(host1([])));
      expect(r).toMatchObject({ added: 0, deleted: 2 });
      expect((await ns.ip('-6', 'route', 'show', 'table', table)).stdout.trim()).toBe('');
    });
  },
);
