/**
 * Acceptance, one host and one FRR 8.4 edge: seg6 routes on FRR with and without transposition,
 * learning FRR's prefix with the SID rebuilt, ping both ways, withdrawal, the UPDATE decoded by
 * tshark (and by our own decoder), and bad input from a misbehaving peer counted and ignored.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ExternalRoute, VpnAdvert } from '../../../src/bgp/index.ts';
import { firstL3ServiceSid } from '../../../src/bgp/prefix-sid.ts';
import { advertToPath } from '../../../src/bgp/routes.ts';
import {
  decodeBgpMessage,
  decodeUpdate,
  formatRd,
  labelValue,
  mpNextHops,
  parseRd,
} from '../../../src/bgp/update.ts';
import { fromHex } from '../../../src/bgp/wire.ts';
import { formatIpv6, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { F3216 } from '../../../src/srv6/sid.ts';
import {
  type BareGobgpd,
  startAgentBgp,
  startBareGobgpd,
  type TestAgentBgp,
  waitGobgpSession,
} from '../../harness/gobgp.ts';
import { createLab, sh, systemSuite, waitFor } from '../../harness/index.ts';
import {
  EDGE_ASN,
  type EdgeSpec,
  HOST_ASN,
  type HostSpec,
  installExternal,
  makeEdge,
  makeHost,
  programHost,
} from './topology.ts';

const BAD_ASN = 65200;
const BAD_LOCATOR = 'fc00:0:200::/64';

systemSuite(
  'bgp: GoBGP sidecar <-> FRR 8.4, one host, one edge',
  {
    tools: ['ip', 'gobgpd', 'zebra', 'bgpd', 'vtysh', 'tshark', 'tcpdump', 'ping'],
    kernel: ['seg6', 'seg6local'],
  },
  () => {
    const lab = createLab();
    let h: HostSpec;
    let e: EdgeSpec;
    let agent: TestAgentBgp;
    let bad: BareGobgpd;
    const learned = new Map<string, ExternalRoute>();
    afterAll(() => lab.teardown());

    beforeAll(async () => {
      h = await makeHost(lab, 1);
      e = await makeEdge(lab, 1, {
        hosts: [h],
        rt: `${EDGE_ASN}:100`,
        uplink: async (edge) => {
          await lab.veth(h.ns, 'eth0', edge, 'eth0', {
            addresses: [`${h.address}/64`],
            peerAddresses: ['2001:db8:12::101/64'],
          });
        },
      });
      await programHost(h, e.address, e.locator);
      // A misbehaving "edge": a bare gobgpd that sends whatever the test asks.
      const badNs = await lab.netns('bad');
      await lab.veth(h.ns, 'bad0', badNs, 'eth0', {
        addresses: ['2001:db8:13::1/64'],
        peerAddresses: ['2001:db8:13::2/64'],
      });
      bad = await startBareGobgpd(lab, { name: 'bad', netns: badNs, asn: BAD_ASN, routerId: '198.18.2.1' });
      await bad.client.unary('addPeer', {
        peer: {
          conf: { neighborAddress: '2001:db8:13::1', peerAsn: HOST_ASN },
          afiSafis: [{ config: { family: { afi: 2, safi: 128 }, enabled: true } }],
        },
      });
      agent = await startAgentBgp(lab, h.ns, {
        name: 'h1',
        asn: HOST_ASN,
        routerId: '198.18.0.1',
        nextHop: h.address,
        locator: h.locator,
        peers: [
          { address: e.address, asn: EDGE_ASN, locators: [e.locator] },
          { address: '2001:db8:13::2', asn: BAD_ASN, locators: [BAD_LOCATOR] },
        ],
        tenants: [{ name: 'blue', routeTarget: `${EDGE_ASN}:100` }],
        fabricRouteTargets: [`${HOST_ASN}:1`],
        fabricLocators: ['fc00:0:1::/48'],
        transposition: true,
      });
      agent.bgp.on('route:add', (r) => {
        learned.set(r.key, r);
        void installExternal(h, r);
      });
      agent.bgp.on('route:delete', (r) => learned.delete(r.key));
    });

    const advert = (sid: string, prefix: string, transposition?: boolean): VpnAdvert => ({
      tenant: 'blue',
      rd: parseRd(`${HOST_ASN}:100`),
      prefix: parsePrefix(prefix),
      sid: parseIpv6(sid),
      behavior: 'End.DT6',
      structure: F3216,
      routeTargets: [parseRd(`${EDGE_ASN}:100`)],
      nextHop: parseIpv6(h.address),
      ...(transposition === undefined ? {} : { transposition }),
    });

    it("FRR installs a seg6 route toward the agent's SID (transposed); tshark decodes the UPDATE", async () => {
      await e.frr.waitSession(h.address);
      const cap = await lab.capture({
        netns: h.ns,
        ifname: 'eth0',
        filter: 'tcp port 179',
        name: 'bgp-update',
      });
      await agent.bgp.advertise([advert(h.sid, `${h.workloadAddress}/128`)]);
      await e.frr.waitRoute(`${h.workloadAddress}/128`, { sid: h.sid });
      const file = await cap.stop();
      // An independent decoder: tshark 4.0's BGP dissector (field names checked with `tshark -G fields`).
      const fields = [
        'ipv6.src',
        'bgp.update.path_attribute.mp_reach_nlri.afi',
        'bgp.update.path_attribute.mp_reach_nlri.safi',
        'bgp.prefix_sid.type',
        'bgp.prefix_sid.srv6_l3vpn.sid_value',
        'bgp.prefix_sid.srv6_l3vpn.srv6_endpoint_behavior',
        'bgp.prefix_sid.srv6_l3vpn.sid.locator_block_len',
        'bgp.prefix_sid.srv6_l3vpn.sid.locator_node_len',
        'bgp.prefix_sid.srv6_l3vpn.sid.func_len',
        'bgp.prefix_sid.srv6_l3vpn.sid.arg_len',
        'bgp.prefix_sid.srv6_l3vpn.sid.trans_len',
        'bgp.prefix_sid.srv6_l3vpn.sid.trans_offset',
        'bgp.label_stack',
        'tcp.payload',
      ];
      const out = await sh('tshark', [
        '-n',
        '-r',
        file,
        '-Y',
        `bgp.prefix_sid.srv6_l3vpn.sid_value && ipv6.src == ${h.address}`,
        '-T',
        'fields',
        '-E',
        'separator=|',
        ...fields.flatMap((f) => ['-e', f]),
      ]);
      const line = out.stdout.trim().split('\n')[0];
      expect(line, `no UPDATE with an SRv6 SID from ${h.address} in ${file}`).toBeTruthy();
      const v = Object.fromEntries(fields.map((f, i) => [f, line!.split('|')[i]]));
      expect(v['bgp.update.path_attribute.mp_reach_nlri.afi']).toBe('2');
      expect(v['bgp.update.path_attribute.mp_reach_nlri.safi']).toBe('128');
      expect(v['bgp.prefix_sid.type']).toBe('5');
      expect(v['bgp.prefix_sid.srv6_l3vpn.sid_value']).toBe('fc00:0:1::');
      expect(v['bgp.prefix_sid.srv6_l3vpn.srv6_endpoint_behavior']).toBe('0x0012');
      expect(
        ['locator_block_len', 'locator_node_len', 'func_len', 'arg_len', 'trans_len', 'trans_offset'].map(
          (k) => v[`bgp.prefix_sid.srv6_l3vpn.sid.${k}`],
        ),
      ).toEqual(['32', '16', '16', '0', '16', '48']);
      // tshark 4.0 shows no RD field for this NLRI; our decoder checks it below.
      expect(v['bgp.label_stack']).toBe('917504 (bottom)');
      // Our own decoder on the same bytes (the TCP payload may hold several BGP messages).
      const payload = fromHex(v['tcp.payload']!.replace(/,.*$/, ''));
      let found = false;
      for (let at = 0; at < payload.length; ) {
        const [msg, next] = decodeBgpMessage(payload, at);
        at = next;
        if (msg.type !== 2) continue;
        const u = decodeUpdate(msg.body);
        const reach = u.attributes.find((a) => a.kind === 'mp-reach');
        const psid = u.attributes.find((a) => a.kind === 'prefix-sid');
        if (reach?.kind !== 'mp-reach' || psid?.kind !== 'prefix-sid') continue;
        const n = reach.nlri[0];
        if (n?.kind !== 'vpn') continue;
        expect(labelValue(n.labels[0]!)).toBe(0xe0000);
        expect(formatRd(n.rd)).toBe(`${HOST_ASN}:100`);
        expect(mpNextHops(reach).map(formatIpv6)).toEqual([h.address]);
        expect(formatIpv6(firstL3ServiceSid(psid.value)!.info.sid)).toBe('fc00:0:1::');
        found = true;
      }
      expect(found).toBe(true);
    });

    it('FRR installs a seg6 route toward a SID sent without transposition', async () => {
      await agent.bgp.advertise([advert('fc00:0:1:e001::', '2001:db8:c1::2/128', false)]);
      await e.frr.waitRoute('2001:db8:c1::2/128', { sid: 'fc00:0:1:e001::' });
    });

    it("the agent learns FRR's exported prefix with the SID rebuilt exactly", async () => {
      await waitFor(() => [...learned.values()].some((r) => r.peer === e.address), {
        timeoutMs: 20_000,
        what: 'route learned from FRR',
      });
      const r = [...learned.values()].find((x) => x.peer === e.address)!;
      expect(`${formatIpv6(r.prefix.address)}/${r.prefix.length}`).toBe(e.extPrefix);
      expect(formatIpv6(r.sid)).toBe(e.frr.sid);
      expect(r.tenants).toEqual(['blue']);
      expect(r.behaviorCodepoint).toBe(0xffff);
    });

    it('ping works both ways between the external client and the workload', async () => {
      await waitFor(
        async () =>
          (await h.ns.ip('-6', 'route', 'show', 'table', '100')).stdout.includes('2001:db8:e1::/64'),
        { timeoutMs: 5_000, what: 'external route installed on the host' },
      );
      await e.ext.exec('ping', ['-6', '-c', '2', '-W', '2', h.workloadAddress]);
      await h.workload.exec('ping', ['-6', '-c', '2', '-W', '2', e.extAddress]);
    });

    it("withdrawal removes FRR's route; re-advertising on a move replaces it", async () => {
      await agent.bgp.withdraw([advert('fc00:0:1:e001::', '2001:db8:c1::2/128')]);
      await e.frr.waitRoute('2001:db8:c1::2/128', { absent: true });
      await agent.bgp.advertise([advert('fc00:0:1:e002::', `${h.workloadAddress}/128`)]);
      await e.frr.waitRoute(`${h.workloadAddress}/128`, { sid: 'fc00:0:1:e002::' });
      await agent.bgp.advertise([advert(h.sid, `${h.workloadAddress}/128`)]);
      await e.frr.waitRoute(`${h.workloadAddress}/128`, { sid: h.sid });
    });

    it('aggregate mode: FRR installs the tenant prefix toward the tenant forward SID', async () => {
      await agent.bgp.advertise([advert('fc00:0:1:e100::', '2001:db8:c0::/48')]);
      await e.frr.waitRoute('2001:db8:c0::/48', { sid: 'fc00:0:1:e100::' });
      await agent.bgp.withdraw([advert('fc00:0:1:e100::', '2001:db8:c0::/48')]);
      await e.frr.waitRoute('2001:db8:c0::/48', { absent: true });
    });

    it('bad input (SID outside every locator, broken structure, unknown RT) is logged, counted, ignored', async () => {
      await waitGobgpSession(bad.client, '2001:db8:13::1');
      const base = {
        tenant: 'blue',
        rd: parseRd(`${BAD_ASN}:1`),
        behavior: 'End.DT6' as const,
        structure: { locatorBlockLength: 40, locatorNodeLength: 24, functionLength: 16, argumentLength: 0 },
        routeTargets: [parseRd(`${EDGE_ASN}:100`)],
        nextHop: parseIpv6('2001:db8:13::2'),
        transposition: false,
      };
      const paths = [
        // Outside every known locator.
        advertToPath(
          { ...base, prefix: parsePrefix('2001:db8:f1::/64'), sid: parseIpv6('fc00:0:99::5') },
          false,
        ),
        // Unknown route target.
        advertToPath(
          {
            ...base,
            prefix: parsePrefix('2001:db8:f3::/64'),
            sid: parseIpv6('fc00:0:200:0:5::'),
            routeTargets: [parseRd(`${EDGE_ASN}:999`)],
          },
          false,
        ),
        // A good one, to show the peer is heard.
        advertToPath(
          { ...base, prefix: parsePrefix('2001:db8:f4::/64'), sid: parseIpv6('fc00:0:200:0:6::') },
          false,
        ),
      ];
      // Broken structure: transposition length 24 (> 20), built by hand through the API.
      const broken = advertToPath(
        { ...base, prefix: parsePrefix('2001:db8:f2::/64'), sid: parseIpv6('fc00:0:200:0:7::') },
        false,
      );
      const {
        PrefixSIDSchema,
        SRv6L3ServiceTLVSchema,
        SRv6InformationSubTLVSchema,
        SRv6StructureSubSubTLVSchema,
      } = await import('../../../src/gen/gobgp/attribute_pb.js');
      const { anyPack, anyUnpack } = await import('@bufbuild/protobuf/wkt');
      const psid = anyUnpack(broken.pattrs[3]!, PrefixSIDSchema)!;
      const l3 = anyUnpack(psid.tlvs[0]!, SRv6L3ServiceTLVSchema)!;
      const info = anyUnpack(l3.subTlvs[1]!.tlv[0]!, SRv6InformationSubTLVSchema)!;
      const st = anyUnpack(info.subSubTlvs[1]!.tlv[0]!, SRv6StructureSubSubTLVSchema)!;
      st.transpositionLength = 24;
      st.transpositionOffset = 64;
      info.subSubTlvs[1]!.tlv[0] = anyPack(SRv6StructureSubSubTLVSchema, st);
      l3.subTlvs[1]!.tlv[0] = anyPack(SRv6InformationSubTLVSchema, info);
      psid.tlvs[0] = anyPack(SRv6L3ServiceTLVSchema, l3);
      broken.pattrs[3] = anyPack(PrefixSIDSchema, psid);
      paths.push(broken);
      for (const path of paths) await bad.client.unary('addPath', { tableType: 0, path });
      await waitFor(
        () => {
          const s = agent.bgp.stats().invalid;
          return (
            s['outside-edge-locators'] >= 1 && s['unknown-route-target'] >= 1 && s['bad-transposition'] >= 1
          );
        },
        { timeoutMs: 15_000, what: `invalid routes counted (${JSON.stringify(agent.bgp.stats().invalid)})` },
      );
      await waitFor(
        () => [...learned.values()].some((r) => formatIpv6(r.prefix.address) === '2001:db8:f4::'),
        {
          timeoutMs: 10_000,
          what: 'the good route of the same peer learned',
        },
      );
      const prefixes = [...learned.values()].map((r) => formatIpv6(r.prefix.address));
      expect(prefixes).not.toContain('2001:db8:f1::');
      expect(prefixes).not.toContain('2001:db8:f2::');
      expect(prefixes).not.toContain('2001:db8:f3::');
      // No transit: the misbehaving peer's good route is not passed on to FRR.
      const frrVpn = await e.frr.vtysh('show bgp ipv6 vpn');
      expect(frrVpn).not.toContain('2001:db8:f4::');
      // Still working: a new advertisement reaches FRR.
      await agent.bgp.advertise([advert('fc00:0:1:e003::', '2001:db8:c1::3/128')]);
      await e.frr.waitRoute('2001:db8:c1::3/128', { sid: 'fc00:0:1:e003::' });
    });
  },
);
