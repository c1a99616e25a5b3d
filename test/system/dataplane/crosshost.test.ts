import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Seg6Encap } from '../../../src/dataplane/encap.ts';
import { counterName, nftIsolationRuleset } from '../../../src/dataplane/isolation.ts';
import { formatIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import {
  createLab,
  kernelIt,
  type Netns,
  srhPackets,
  systemSuite,
  tsharkFields,
} from '../../harness/index.ts';
import {
  buildFabric,
  dt6Sid,
  endSid,
  type Fabric,
  hostAddr,
  ip,
  workloadAddr,
  workloadText,
} from './fabric.ts';

async function pingOk(from: Netns, dst: string, count = 3): Promise<number> {
  const r = await from.exec('ping', ['-6', '-c', String(count), '-i', '0.2', '-W', '3', dst], {
    allowFail: true,
  });
  const m = /(\d+) received/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

systemSuite(
  'dataplane: SRv6 across three hosts, two tenants',
  { tools: ['ip', 'nft', 'tshark', 'tcpdump', 'ping'], kernel: ['seg6', 'seg6local'] },
  () => {
    const lab = createLab();
    let f: Fabric;
    const h = (n: number) => f.hosts[n - 1]!;
    const w = (name: string) => f.workloads.get(name)!;
    const counter = async (n: number, sid: bigint) => (await h(n).dp.sidCounters(sid))?.packets ?? -1n;

    beforeAll(async () => {
      f = await buildFabric(lab);
      for (const host of f.hosts) {
        const r = await host.dp.reconcile({
          routes: f.desiredRoutes(host.n, 'encap', true),
          rules: f.desiredRules(host.n),
        });
        expect(r.conflicts).toEqual([]);
      }
    });
    afterAll(async () => {
      await f?.close();
      await lab.teardown();
    });

    describe('delivery', () => {
      it('encap: same-tenant traffic crosses hosts through End on the transit host, delivered by End.DT6; tshark shows the SRH', async () => {
        const cap = await lab.capture({
          netns: h(3).ns,
          ifname: 'eth0',
          filter: 'ip6 and dst host fc00:0:3::e',
        });
        const before = await counter(2, dt6Sid(2, 'a'));
        const endBefore = await counter(3, endSid(3));
        expect(await pingOk(w('a1'), workloadText(2, 'a'))).toBe(3);
        expect(await counter(2, dt6Sid(2, 'a'))).toBe(before + 3n);
        expect(await counter(3, endSid(3))).toBeGreaterThanOrEqual(endBefore + 6n); // both directions
        const pkts = await srhPackets(cap);
        const toA2 = pkts.filter((p) => p.segments[0] === formatIpv6(dt6Sid(2, 'a')));
        expect(toA2.length).toBeGreaterThanOrEqual(3);
        // SRH in wire order: segments[0] is the last segment (the End.DT6 SID); Segments Left 1 before End.
        expect(toA2[0]).toEqual({
          dst: formatIpv6(endSid(3)),
          nextHeader: 41, // the tenant's IPv6 packet inside
          segmentsLeft: 1,
          lastEntry: 1,
          segments: [formatIpv6(dt6Sid(2, 'a')), formatIpv6(endSid(3))],
        });
      });

      it('encap.red: the same path with a reduced SRH', async () => {
        for (const n of [1, 2]) {
          await h(n).dp.reconcile({
            routes: f.desiredRoutes(n, 'encap.red', true),
            rules: f.desiredRules(n),
          });
        }
        const cap = await lab.capture({
          netns: h(3).ns,
          ifname: 'eth0',
          filter: 'ip6 and dst host fc00:0:3::e',
        });
        const before = await counter(2, dt6Sid(2, 'a'));
        expect(await pingOk(w('a1'), workloadText(2, 'a'))).toBe(3);
        expect(await counter(2, dt6Sid(2, 'a'))).toBe(before + 3n);
        const pkts = (await srhPackets(cap)).filter((p) => p.segments[0] === formatIpv6(dt6Sid(2, 'a')));
        expect(pkts.length).toBeGreaterThanOrEqual(3);
        // Reduced: the first segment is only in the destination address; the SRH holds the rest.
        expect(pkts[0]).toEqual({
          dst: formatIpv6(endSid(3)),
          nextHeader: 41,
          segmentsLeft: 1,
          lastEntry: 0,
          segments: [formatIpv6(dt6Sid(2, 'a'))],
        });
        for (const n of [1, 2]) {
          await h(n).dp.reconcile({ routes: f.desiredRoutes(n, 'encap', true), rules: f.desiredRules(n) });
        }
      });

      it('inline works host to host (H.Insert through End on the transit host)', async () => {
        await h(1).dp.addRoutes([
          {
            dst: { address: hostAddr(2), length: 128 },
            table: 254,
            dev: 'eth0',
            encap: { type: 'seg6', mode: 'inline', segments: [endSid(3)] },
          },
        ]);
        const cap = await lab.capture({
          netns: h(3).ns,
          ifname: 'eth0',
          filter: 'ip6 and dst host fc00:0:3::e',
        });
        const got = await h(1).ns.exec(
          'ping',
          ['-6', '-c', '3', '-i', '0.2', '-W', '1', '-I', formatIpv6(hostAddr(1)), formatIpv6(hostAddr(2))],
          {
            allowFail: true,
          },
        );
        expect(got.stdout).toContain('3 received');
        const pkts = await srhPackets(cap);
        expect(pkts.length).toBeGreaterThanOrEqual(3);
        // inline (H.Insert): no outer header; segments[0] is the original destination.
        expect(pkts[0]).toEqual({
          dst: formatIpv6(endSid(3)),
          nextHeader: 58, // inline: the SRH sits in front of the ping's own ICMPv6
          segmentsLeft: 1,
          lastEntry: 1,
          segments: [formatIpv6(hostAddr(2)), formatIpv6(endSid(3))],
        });
      });

      it('End.DX6 delivers to an on-link next hop', async () => {
        const nf = await lab.netns('nf3');
        await h(3).dp.addVeth({ name: 'nf0', peerName: 'eth0', peerNetns: nf.name });
        await h(3).dp.addAddress('nf0', { address: ip('2001:db8:99::1'), length: 64 });
        await nf.ip('link', 'set', 'eth0', 'up');
        await nf.ip('-6', 'addr', 'add', '2001:db8:99::2/64', 'dev', 'eth0', 'nodad');
        await nf.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:99::1');
        const dx6 = ip('fc00:0:3::d6');
        await h(3).dp.addRoutes([
          {
            dst: { address: dx6, length: 128 },
            table: 254,
            dev: 'eth0',
            encap: { type: 'seg6local', action: 'End.DX6', nh6: ip('2001:db8:99::2'), counters: true },
          },
        ]);
        await h(1).dp.addRoutes([
          {
            dst: parsePrefix('2001:db8:99::2/128'),
            table: 254,
            dev: 'eth0',
            encap: { type: 'seg6', mode: 'encap', segments: [dx6] },
          },
        ]);
        const got = await h(1).ns.exec(
          'ping',
          ['-6', '-c', '3', '-i', '0.2', '-W', '1', '-I', formatIpv6(hostAddr(1)), '2001:db8:99::2'],
          {
            allowFail: true,
          },
        );
        expect(got.stdout).toContain('3 received');
        expect(await counter(3, dx6)).toBe(3n);
      });
      kernelIt(
        ['hmac'],
        'encap with an HMAC key id: accepted by a receiver that requires HMAC, unsigned packets are not',
        async () => {
          const secret = new TextEncoder().encode('segmesh-hmac-test-secret-0123456789');
          for (const host of f.hosts) await host.dp.setHmacKey({ keyId: 7, algorithm: 'sha256', secret });
          await h(2).dp.setSysctl('net.ipv6.conf.eth0.seg6_require_hmac', '1');
          const signed = (from: number, to: number) => {
            const r = f.tenantRoutes(from, to, 'a', 'encap', true);
            return { ...r, encap: { ...(r.encap as Seg6Encap), hmacKeyId: 7 } };
          };
          await h(1).dp.replaceRoutes([signed(1, 2)]);
          await h(2).dp.replaceRoutes([signed(2, 1)]);
          const cap = await lab.capture({
            netns: h(3).ns,
            ifname: 'eth0',
            filter: 'ip6 and dst host fc00:0:3::e',
          });
          const before = await counter(2, dt6Sid(2, 'a'));
          expect(await pingOk(w('a1'), workloadText(2, 'a'))).toBe(3);
          expect(await counter(2, dt6Sid(2, 'a'))).toBe(before + 3n);
          const file = await cap.stop();
          // tshark 4.0 decodes the SRH header, not its TLVs: the HMAC flag and the 40 extra bytes
          // (hdrlen 4 -> 9 for two segments) show the HMAC TLV is there.
          const [first] = await tsharkFields(file, 'ipv6.routing', [
            'ipv6.routing.srh.flags',
            'ipv6.routing.len',
          ]);
          if (!first) throw new Error('no SRH packet captured');
          expect(Number(first[0]) & 0x08).toBe(0x08);
          expect(first[1]).toBe('9');
          // Unsigned from h1: h2 requires HMAC on eth0, so nothing is delivered.
          await h(1).dp.replaceRoutes([f.tenantRoutes(1, 2, 'a', 'encap', true)]);
          const unsigned = await counter(2, dt6Sid(2, 'a'));
          expect(await pingOk(w('a1'), workloadText(2, 'a'))).toBe(0);
          const after = (await h(2).dp.sidCounters(dt6Sid(2, 'a')))!;
          expect(after.packets).toBe(unsigned);
          // Back to the shared state.
          await h(2).dp.setSysctl('net.ipv6.conf.eth0.seg6_require_hmac', '0');
          await h(2).dp.replaceRoutes([f.tenantRoutes(2, 1, 'a', 'encap', true)]);
          for (const host of f.hosts) await host.dp.deleteHmacKey(7);
          expect(await pingOk(w('a1'), workloadText(2, 'a'))).toBe(3);
        },
      );
    });

    describe('isolation (each with a positive control in the same run)', () => {
      it('the other tenant gets nothing through, on the same host and on a remote one', async () => {
        expect(await pingOk(w('a1'), workloadText(2, 'a'))).toBe(3); // positive control
        expect(await pingOk(w('b1'), workloadText(2, 'b'))).toBe(3); // positive control, tenant B
        expect(await pingOk(w('b1'), workloadText(1, 'a'))).toBe(0); // same host
        expect(await pingOk(w('b1'), workloadText(2, 'a'))).toBe(0); // remote
        expect(await pingOk(w('a2'), workloadText(1, 'b'))).toBe(0);
      });

      it('a workload that encapsulates its own packets toward the other tenant End.DT6 SID gets 0 delivered (SID counters)', async () => {
        // The attacker (tenant B on h1) builds its own seg6 routes inside its namespace.
        const attacker = w('b1');
        await attacker.ip(
          '-6',
          'route',
          'add',
          `${workloadText(2, 'a')}/128`,
          'encap',
          'seg6',
          'mode',
          'encap',
          'segs',
          formatIpv6(dt6Sid(2, 'a')),
          'dev',
          'eth0',
        );
        await attacker.ip(
          '-6',
          'route',
          'add',
          `${workloadText(1, 'a')}/128`,
          'encap',
          'seg6',
          'mode',
          'encap',
          'segs',
          formatIpv6(dt6Sid(1, 'a')),
          'dev',
          'eth0',
        );
        const attack = async () => {
          await pingOk(attacker, workloadText(2, 'a'), 3);
          await pingOk(attacker, workloadText(1, 'a'), 3);
        };
        // Without the filter the attack works: the test can see it.
        let remote = await counter(2, dt6Sid(2, 'a'));
        let local = await counter(1, dt6Sid(1, 'a'));
        await attack();
        expect(await counter(2, dt6Sid(2, 'a'))).toBe(remote + 3n);
        // Locally the tenant table's unreachable tail already stops it (no fall-through to main).
        expect(await counter(1, dt6Sid(1, 'a'))).toBe(local);

        // The agent's ingress filter on every workload veth.
        for (const n of [1, 2]) {
          const ruleset = nftIsolationRuleset({
            workloads: (['a', 'b'] as const).map((t) => ({
              ifname: `w${t}${n}`,
              sources: [{ address: workloadAddr(n, t), length: 128 }],
            })),
            sidBlocks: [parsePrefix('fc00::/16')],
            hostAddresses: [hostAddr(n), ip(`2001:db8:f::${n}`)],
          });
          await h(n).dp.applyNft(ruleset);
        }
        remote = await counter(2, dt6Sid(2, 'a'));
        local = await counter(1, dt6Sid(1, 'a'));
        await attack();
        expect(await counter(2, dt6Sid(2, 'a'))).toBe(remote); // 0 delivered remotely
        expect(await counter(1, dt6Sid(1, 'a'))).toBe(local); // 0 delivered locally
        const counters = await h(1).dp.nftCounters();
        expect(counters.get(counterName('wb1', 'sid_block'))?.packets).toBeGreaterThanOrEqual(6);

        // Positive control in the same run: the legitimate encapsulated path still works and counts.
        const legit = await counter(2, dt6Sid(2, 'a'));
        expect(await pingOk(w('a1'), workloadText(2, 'a'))).toBe(3);
        expect(await counter(2, dt6Sid(2, 'a'))).toBe(legit + 3n);

        // A workload cannot reach the host's own addresses, nor spoof its source.
        expect(await pingOk(w('a1'), formatIpv6(hostAddr(1)))).toBe(0);
        const c2 = await h(1).dp.nftCounters();
        expect(c2.get(counterName('wa1', 'host_address'))?.packets).toBeGreaterThanOrEqual(3);
        await w('a1').ip('-6', 'addr', 'add', '2001:db8:a:1::99/64', 'dev', 'eth0', 'nodad');
        const spoof = await w('a1').exec(
          'ping',
          ['-6', '-c', '2', '-W', '1', '-I', '2001:db8:a:1::99', workloadText(2, 'a')],
          { allowFail: true },
        );
        expect(spoof.stdout).toContain(' 0 received');
        const c3 = await h(1).dp.nftCounters();
        expect(c3.get(counterName('wa1', 'spoofed_source'))?.packets).toBeGreaterThanOrEqual(2);
      });
    });
  },
);
