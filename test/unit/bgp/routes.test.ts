import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import {
  communitiesToApi,
  GRACEFUL_SHUTDOWN_COMMUNITY,
  isLocalPath,
  pathFromApi,
  prefixSidFromApi,
  prefixSidToApi,
  type ReceivedVpnPath,
  vpnPathToApi,
} from '../../../src/bgp/api.ts';
import {
  addPathStreamRequestBytes,
  withAttributeBytes,
  withdrawPathBytes,
} from '../../../src/bgp/path-bytes.ts';
import { decodePrefixSid, encodePrefixSid } from '../../../src/bgp/prefix-sid.ts';
import {
  AdvertEncoder,
  advertToPath,
  communitySignature,
  EdgeLocatorTable,
  encodeAdvertSid,
  type LearnPolicy,
  learnVpnPath,
  pathSignature,
  type VpnAdvert,
} from '../../../src/bgp/routes.ts';
import { parseRd } from '../../../src/bgp/update.ts';
import { hex } from '../../../src/bgp/wire.ts';
import {
  LabeledVPNIPAddressPrefixSchema,
  MpReachNLRIAttributeSchema,
  PrefixSIDSchema,
} from '../../../src/gen/gobgp/attribute_pb.js';
import { AddPathStreamRequestSchema, PathSchema } from '../../../src/gen/gobgp/gobgp_pb.js';
import { formatIpv6, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { F3216 } from '../../../src/srv6/sid.ts';
import { FRR_PREFIX_SID, GOBGP_PREFIX_SID_FULL, GOBGP_PREFIX_SID_TRANSPOSED } from './vectors.ts';

const advert: VpnAdvert = {
  tenant: 'blue',
  rd: parseRd('65101:100'),
  prefix: parsePrefix('2001:db8:c0::1/128'),
  sid: parseIpv6('fc00:0:1:e000::'),
  behavior: 'End.DT6',
  structure: F3216,
  routeTargets: [parseRd('65000:100')],
  nextHop: parseIpv6('2001:db8:12::1'),
};

describe('advertising: the agent sends what FRR 8.4 accepted', () => {
  it('transposed: SID fc00:0:1::, label 917504, the exact Prefix-SID bytes GoBGP put on the wire', () => {
    const { prefixSid, label } = encodeAdvertSid(advert, true);
    expect(label).toBe(917504);
    expect(hex(encodePrefixSid(prefixSid))).toBe(hex(GOBGP_PREFIX_SID_TRANSPOSED));
  });

  it('full SID: label 3 and the full-variant bytes', () => {
    const { prefixSid, label } = encodeAdvertSid(advert, false);
    expect(label).toBe(3);
    expect(hex(encodePrefixSid(prefixSid))).toBe(hex(GOBGP_PREFIX_SID_FULL));
  });

  it('refuses a non-decapsulating behaviour', () => {
    expect(() => encodeAdvertSid({ ...advert, behavior: 'End' }, true)).toThrow(/decapsulating/);
  });

  it('builds the GoBGP path of research 4.1', () => {
    const path = advertToPath(advert, true);
    expect(path.family).toMatchObject({ afi: 2, safi: 128 });
    const nlri = anyUnpack(path.nlri!, LabeledVPNIPAddressPrefixSchema)!;
    expect(nlri).toMatchObject({ labels: [917504], prefixLen: 128, prefix: '2001:db8:c0::1' });
    expect(path.pattrs.map((a) => a.typeUrl)).toEqual([
      'type.googleapis.com/apipb.OriginAttribute',
      'type.googleapis.com/apipb.MpReachNLRIAttribute',
      'type.googleapis.com/apipb.ExtendedCommunitiesAttribute',
      'type.googleapis.com/apipb.PrefixSID',
    ]);
    const reach = anyUnpack(path.pattrs[1]!, MpReachNLRIAttributeSchema)!;
    expect(reach.nextHops).toEqual(['2001:db8:12::1']);
    const psid = anyUnpack(path.pattrs[3]!, PrefixSIDSchema)!;
    expect(hex(encodePrefixSid(prefixSidFromApi(psid)))).toBe(hex(GOBGP_PREFIX_SID_TRANSPOSED));
  });

  it("the encoder's signature equals the one read back from the path (adopt diff finds no change)", () => {
    const enc = new AdvertEncoder(true);
    for (const a of [
      advert,
      { ...advert, transposition: false },
      { ...advert, prefix: parsePrefix('2001:db8:c0::2/128') },
    ]) {
      const { bytes, sig } = enc.encode(a);
      const path = enc.path(a);
      // The byte-level encoder writes exactly what protobuf-es writes for the same message.
      expect(hex(bytes)).toBe(hex(toBinary(PathSchema, path)));
      expect(pathSignature(pathFromApi(fromBinary(PathSchema, bytes))!)).toBe(sig);
      const w = fromBinary(PathSchema, withdrawPathBytes(bytes));
      expect(w.isWithdraw).toBe(true);
      const req = fromBinary(AddPathStreamRequestSchema, addPathStreamRequestBytes([bytes, bytes]));
      expect(req.paths).toHaveLength(2);
      expect(req.tableType).toBe(0);
    }
    expect(enc.encode(advert).sig).not.toBe(enc.encode({ ...advert, transposition: false }).sig);
  });

  it('graceful shutdown (RFC 8326): 65535:0 appended to an encoded path is read back, and changes the signature', () => {
    const enc = new AdvertEncoder(true);
    const { bytes, sig } = enc.encode(advert);
    const gshut = withAttributeBytes(bytes, communitiesToApi([GRACEFUL_SHUTDOWN_COMMUNITY]));
    const path = fromBinary(PathSchema, gshut);
    expect(path.pattrs.map((a) => a.typeUrl.split('.').at(-1))).toEqual([
      'OriginAttribute',
      'MpReachNLRIAttribute',
      'ExtendedCommunitiesAttribute',
      'PrefixSID',
      'CommunitiesAttribute',
    ]);
    const read = pathFromApi(path)!;
    expect(read.communities).toEqual([0xffff0000]);
    expect(pathSignature(read)).toBe(sig + communitySignature([GRACEFUL_SHUTDOWN_COMMUNITY]));
    expect(pathSignature(read)).not.toBe(sig);
    // Withdrawing the graceful-shutdown path is the same suffix trick.
    expect(fromBinary(PathSchema, withdrawPathBytes(gshut)).isWithdraw).toBe(true);
    expect(communitySignature([])).toBe('');
  });

  it.each([
    ['GoBGP transposed', GOBGP_PREFIX_SID_TRANSPOSED],
    ['FRR', FRR_PREFIX_SID],
  ])('maps the %s Prefix-SID to apipb.PrefixSID and back without loss', (_n, bytes) => {
    const attr = decodePrefixSid(bytes);
    expect(hex(encodePrefixSid(prefixSidFromApi(prefixSidToApi(attr))))).toBe(hex(bytes));
  });
});

/** FRR's route as GoBGP's WatchEvent shows it (research 4.2). */
function frrPath(
  overrides: { rts?: string[]; prefixSid?: Uint8Array; labels?: number[]; neighborIp?: string } = {},
) {
  const p = vpnPathToApi({
    rd: parseRd('65000:100'),
    prefix: parsePrefix('2001:db8:e0::/64'),
    labels: overrides.labels ?? [4096],
    nextHop: parseIpv6('2001:db8:12::2'),
    extCommunities: (overrides.rts ?? ['65000:100']).map(parseRd),
    prefixSid: decodePrefixSid(overrides.prefixSid ?? FRR_PREFIX_SID),
  });
  return create(PathSchema, {
    ...p,
    neighborIp: overrides.neighborIp ?? '2001:db8:12::2',
    isFromExternal: true,
  });
}

const policy: LearnPolicy = {
  tenantsByRouteTarget: new Map([['65000:100', 'blue']]),
  fabricRouteTargets: new Set(['65100:1']),
  fabricLocators: [parsePrefix('fc00:0:1::/48')],
  edgeLocators: (peer) => (peer === '2001:db8:12::2' ? [parsePrefix('fc00:0:2::/64')] : []),
};

function received(overrides: Parameters<typeof frrPath>[0] = {}): ReceivedVpnPath {
  const r = pathFromApi(frrPath(overrides));
  if (r?.family !== 'vpnv6') throw new Error('not vpnv6');
  return r;
}

describe("learning FRR 8.4's routes", () => {
  it("rebuilds FRR's SID fc00:0:2:0:100:: from SID fc00:0:2::, label 4096, tl 16 @ 64", () => {
    const out = learnVpnPath(received(), policy);
    if (!out.ok) throw new Error(out.detail);
    expect(formatIpv6(out.route.sid)).toBe('fc00:0:2:0:100::');
    expect(out.route.tenants).toEqual(['blue']);
    expect(out.route.behaviorCodepoint).toBe(0xffff);
    expect(out.route.structure).toEqual({
      locatorBlockLength: 40,
      locatorNodeLength: 24,
      functionLength: 16,
      argumentLength: 0,
    });
    expect(formatIpv6(out.route.nextHop)).toBe('2001:db8:12::2');
  });

  it.each([
    ['fabric route target', { rts: ['65000:100', '65100:1'] }, 'fabric-route-target'],
    ['unknown route target', { rts: ['65000:999'] }, 'unknown-route-target'],
    [
      'transposition longer than 20 bits',
      { prefixSid: FRR_PREFIX_SID.map((b, i) => (i === 35 ? 21 : b)) },
      'bad-transposition',
    ],
    [
      'offset + length past 128',
      { prefixSid: FRR_PREFIX_SID.map((b, i) => (i === 36 ? 120 : b)) },
      'bad-transposition',
    ],
    [
      'structure longer than 128 bits',
      { prefixSid: FRR_PREFIX_SID.map((b, i) => (i === 32 ? 100 : b)) },
      'bad-structure',
    ],
    [
      'SID in a fabric locator',
      { prefixSid: FRR_PREFIX_SID.map((b, i) => (i === 13 ? 1 : b)) },
      'fabric-locator',
    ],
    [
      'SID outside every known locator',
      { prefixSid: FRR_PREFIX_SID.map((b, i) => (i === 13 ? 9 : b)) },
      'outside-edge-locators',
    ],
    ['a peer with no known locator', { neighborIp: '2001:db8:12::9' }, 'outside-edge-locators'],
  ])('drops a route with %s', (_n, o, reason) => {
    const out = learnVpnPath(received(o), policy);
    expect(out.ok).toBe(false);
    expect(!out.ok && out.reason).toBe(reason);
  });

  it('tells local paths (neighbor_ip "<nil>") apart', () => {
    expect(isLocalPath(frrPath({ neighborIp: '<nil>' }))).toBe(true);
    expect(isLocalPath(frrPath())).toBe(false);
  });

  it('learns edge locators from IPv6 unicast routes, never inside the fabric', () => {
    const t = new EdgeLocatorTable(new Map());
    const peer = '2001:db8:12::2';
    const add = (p: string, withdraw = false) =>
      t.apply(
        { family: 'ipv6', peer, withdraw, prefix: parsePrefix(p), nextHops: [] },
        policy.fabricLocators,
      );
    expect(add('fc00:0:2::/64')).toBe(true);
    expect(add('fc00:0:1::/48')).toBe(false);
    expect(add('fc00:0:1:5::/64')).toBe(false);
    expect(add('2001:db8:e0::1/128')).toBe(false);
    expect(t.forPeer(peer)).toEqual([parsePrefix('fc00:0:2::/64')]);
    expect(add('fc00:0:2::/64', true)).toBe(true);
    expect(t.forPeer(peer)).toEqual([]);
  });
});
