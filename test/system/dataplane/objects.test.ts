import { afterAll, expect, it } from 'vitest';
import { ROUTE_PROTOCOL } from '../../../src/dataplane/constants.ts';
import type { Encap } from '../../../src/dataplane/encap.ts';
import { flushOwned, nftIsolationRuleset, openDataplane } from '../../../src/dataplane/index.ts';
import type { NetnsDataplane } from '../../../src/dataplane/netns.ts';
import type { Nexthop } from '../../../src/dataplane/nexthop.ts';
import { formatIpv6, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { createLab, runLogDir, systemSuite } from '../../harness/index.ts';

const ip = parseIpv6;

systemSuite(
  'dataplane: nexthops, groups, rules, counters and flush',
  { tools: ['ip', 'nft'], kernel: ['seg6', 'seg6local'] },
  () => {
    const lab = createLab();
    const open: NetnsDataplane[] = [];
    afterAll(async () => {
      for (const d of open) await d.close().catch(() => undefined);
      await lab.teardown();
    });

    it('programs nexthops with a seg6 encapsulation each, a resilient group, and routes using it; dumps read back what was written', async () => {
      const ns = await lab.netns('nh');
      const dp = (await openDataplane({ netns: ns.name })) as NetnsDataplane;
      open.push(dp);
      await dp.addVeth({ name: 'n0', peerName: 'n1' });
      await dp.setLink('n1', { up: true }); // a nexthop's device needs a carrier
      await dp.addAddress('n0', { address: ip('2001:db8:50::1'), length: 64 });
      const nhs: Nexthop[] = [
        {
          id: 0x5e000001,
          dev: 'n0',
          encap: { type: 'seg6', mode: 'encap', segments: [ip('fc00:0:1::e'), ip('fc00:0:2::a6')] },
        },
        {
          id: 0x5e000002,
          dev: 'n0',
          encap: { type: 'seg6', mode: 'encap.red', segments: [ip('fc00:0:3::e'), ip('fc00:0:2::a6')] },
        },
        { id: 0x5e000003, dev: 'n0', gateway: ip('2001:db8:50::2') },
        {
          id: 0x5e000010,
          group: [
            { id: 0x5e000001, weight: 1 },
            { id: 0x5e000002, weight: 3 },
          ],
          groupType: 'resilient',
          buckets: 64,
        },
        { id: 0x5e000011, group: [{ id: 0x5e000001 }, { id: 0x5e000003 }] },
      ];
      const r = await dp.reconcile({
        nexthops: nhs,
        routes: [{ dst: parsePrefix('2001:db8:60::/48'), table: 10_001, nhid: 0x5e000010 }],
        rules: [{ priority: 10_001, iif: 'n0', table: 10_001 }],
      });
      expect(r).toMatchObject({ added: 7, replaced: 0, deleted: 0, conflicts: [] });
      const dumped = await dp.listNexthops();
      const byId = new Map(dumped.map((n) => [n.id, n]));
      const idx = (await dp.listLinks()).find((l) => l.name === 'n0')!.index;
      expect(byId.get(0x5e000001)).toEqual({
        id: 0x5e000001,
        protocol: ROUTE_PROTOCOL,
        oif: idx,
        encap: nhs[0]!.encap,
      });
      expect(byId.get(0x5e000002)?.encap).toEqual(nhs[1]!.encap);
      expect(byId.get(0x5e000010)).toMatchObject({
        groupType: 'resilient',
        buckets: 64,
        group: nhs[3]!.group,
      });
      expect(byId.get(0x5e000011)).toMatchObject({
        groupType: 'mpath',
        group: [
          { id: 0x5e000001, weight: 1 },
          { id: 0x5e000003, weight: 1 },
        ],
      });
      expect((await ns.ip('-6', 'route', 'show', 'table', '10001')).stdout).toContain('nhid 1577058320');
      // Reconciling the same state again writes nothing.
      const again = await dp.reconcile({
        nexthops: nhs,
        routes: [{ dst: parsePrefix('2001:db8:60::/48'), table: 10_001, nhid: 0x5e000010 }],
        rules: [{ priority: 10_001, iif: 'n0', table: 10_001 }],
      });
      expect(again).toMatchObject({ added: 0, replaced: 0, deleted: 0, unchanged: 7 });
    });

    it('a dump reads back exactly what was written, for every encapsulation the kernel here supports', async () => {
      const ns = await lab.netns('rb');
      const dp = (await openDataplane({ netns: ns.name })) as NetnsDataplane;
      open.push(dp);
      await dp.addVeth({ name: 'b0', peerName: 'b1' });
      await dp.setLink('b1', { up: true });
      await dp.addAddress('b0', { address: ip('2001:db8:52::1'), length: 64 });
      await ns.ip('-4', 'addr', 'add', '198.18.0.1/24', 'dev', 'b0');
      const idx = (await dp.listLinks()).find((l) => l.name === 'b0')!.index;
      const segs = [ip('fc00:0:1::e'), ip('fc00:0:2::e'), ip('fc00:0:3::a6')];
      const encaps: Encap[] = [
        { type: 'seg6', mode: 'encap', segments: segs },
        { type: 'seg6', mode: 'encap.red', segments: segs },
        { type: 'seg6', mode: 'inline', segments: segs.slice(0, 2) },
        { type: 'seg6', mode: 'encap', segments: segs, hmacKeyId: 9 },
        { type: 'seg6local', action: 'End' },
        { type: 'seg6local', action: 'End', counters: true },
        { type: 'seg6local', action: 'End.X', nh6: ip('2001:db8:52::2') },
        { type: 'seg6local', action: 'End.T', table: 10_003 },
        { type: 'seg6local', action: 'End.DT6', table: 10_001, counters: true },
        { type: 'seg6local', action: 'End.DX6', nh6: ip('2001:db8:52::2') },
        { type: 'seg6local', action: 'End.DX4', nh4: '198.18.0.2' },
        { type: 'seg6local', action: 'End.B6.Encaps', srh: { segments: segs.slice(0, 2) } },
      ];
      const routes = encaps.map((encap, i) => ({
        dst: { address: ip(`fc00:0:8::${(i + 1).toString(16)}`), length: 128 },
        table: 254,
        oif: idx,
        encap,
      }));
      await dp.addRoutes(routes);
      const dumped = await dp.listRoutes({ protocol: ROUTE_PROTOCOL });
      for (const r of routes) {
        const k = dumped.find((d) => d.dst.address === r.dst.address);
        expect(k, formatIpv6(r.dst.address)).toBeDefined();
        expect(k!.encap).toEqual(r.encap);
        expect(k!.oif).toBe(idx);
      }
    });

    it('reads per-SID counters back for metrics', async () => {
      const ns = await lab.netns('ct');
      const dp = (await openDataplane({ netns: ns.name })) as NetnsDataplane;
      open.push(dp);
      const peer = await lab.netns('ct2');
      await dp.addVeth({ name: 'c0', peerName: 'eth0', peerNetns: peer.name });
      await dp.addAddress('c0', { address: ip('2001:db8:51::1'), length: 64 });
      await peer.ip('link', 'set', 'eth0', 'up');
      await peer.ip('-6', 'addr', 'add', '2001:db8:51::2/64', 'dev', 'eth0', 'nodad');
      await peer.ip('-6', 'route', 'add', 'fc00:0:7::/48', 'via', '2001:db8:51::1');
      const sid = ip('fc00:0:7::a6');
      await dp.addRoutes([
        {
          dst: { address: sid, length: 128 },
          table: 254,
          dev: 'c0',
          encap: { type: 'seg6local', action: 'End.DT6', table: 254, counters: true },
        },
      ]);
      expect(await dp.sidCounters(sid)).toEqual({ packets: 0n, bytes: 0n, errors: 0n });
      // Traffic to the SID from the neighbour (plain ICMPv6, nothing to decapsulate: an error or a packet, either counts).
      await peer.exec('ping', ['-6', '-c', '2', '-W', '1', 'fc00:0:7::a6'], { allowFail: true });
      const c = await dp.sidCounters(sid);
      expect(c!.packets + c!.errors).toBeGreaterThan(0n);
    });

    it('flushOwned removes only what carries our protocol, removes our nft tables and restores sysctls', async () => {
      const ns = await lab.netns('fl');
      const stateFile = `${runLogDir()}/fl-sysctl.json`;
      const dp = (await openDataplane({ netns: ns.name, sysctlStateFile: stateFile })) as NetnsDataplane;
      open.push(dp);
      await dp.addVeth({ name: 'f0', peerName: 'f1' });
      await dp.setLink('f1', { up: true });
      const fwd = await ns.readSysctl('net.ipv6.conf.all.forwarding');
      await dp.setSysctl('net.ipv6.conf.all.forwarding', fwd === '1' ? '0' : '1');
      await dp.addNexthops([
        { id: 0x5e000001, dev: 'f0', encap: { type: 'seg6', mode: 'encap', segments: [ip('fc00:0:1::e')] } },
      ]);
      await dp.addRoutes([
        {
          dst: parsePrefix('2001:db8:70::/64'),
          table: 10_001,
          dev: 'f0',
          encap: { type: 'seg6', mode: 'encap', segments: [ip('fc00:0:1::e')] },
        },
        { dst: parsePrefix('::/0'), table: 10_001, type: 'unreachable', metric: 0xffffffff },
      ]);
      await dp.addRules([{ priority: 10_001, iif: 'f0', table: 10_001 }]);
      await dp.applyNft(
        nftIsolationRuleset({
          workloads: [{ ifname: 'f0', sources: [] }],
          sidBlocks: [parsePrefix('fc00::/16')],
          hostAddresses: [],
        }),
      );
      // Foreign objects
      await ns.ip('-6', 'route', 'add', '2001:db8:71::/64', 'dev', 'f0', 'table', '10001', 'proto', 'static');
      await ns.ip('-6', 'rule', 'add', 'iif', 'f1', 'lookup', '10001', 'pref', '10002');
      await ns.ip('nexthop', 'add', 'id', '7', 'dev', 'f0');
      await dp.close();

      // `segmesh dataplane flush`, as a fresh instance (the lead wires the CLI to this).
      const result = await flushOwned({ netns: ns.name, sysctlStateFile: stateFile });
      expect(result).toMatchObject({
        routes: 2,
        rules: 1,
        nexthops: 1,
        sysctlsRestored: ['net.ipv6.conf.all.forwarding'],
      });
      expect(await ns.readSysctl('net.ipv6.conf.all.forwarding')).toBe(fwd);
      expect((await ns.ip('-6', 'route', 'show', 'table', '10001')).stdout.trim()).toBe(
        '2001:db8:71::/64 dev f0 proto static metric 1024 pref medium',
      );
      expect((await ns.ip('-6', 'rule', 'show')).stdout).toContain('iif f1 lookup 10001');
      expect((await ns.ip('-6', 'rule', 'show')).stdout).not.toContain('iif f0');
      expect((await ns.ip('nexthop', 'show')).stdout.trim()).toMatch(/^id 7 dev f0 scope \w+$/);
      expect((await ns.exec('nft', ['list', 'tables'])).stdout).not.toContain('segmesh');
    });
  },
);
