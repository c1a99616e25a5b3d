/**
 * Fuzzing the BGP decoders (issue 12): UPDATE messages and their attributes from a peer's bytes,
 * Prefix-SID TLVs, route distinguishers, and the paths gobgpd hands the agent over its API
 * (`pathFromApi`, then `learnVpnPath`). Typed errors: MalformedAttributeError (bytes),
 * ApiShapeError (API paths); learnVpnPath never throws.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApiShapeError, pathFromApi, unicastPathToApi, vpnPathToApi } from '../../../src/bgp/api.ts';
import { MalformedAttributeError } from '../../../src/bgp/errors.ts';
import {
  decodePrefixSid,
  decodePrefixSidTlv,
  decodeSrv6SubSubTlv,
  decodeSrv6SubTlv,
  encodePrefixSid,
  srv6L3ServicePrefixSid,
} from '../../../src/bgp/prefix-sid.ts';
import { type LearnPolicy, learnVpnPath } from '../../../src/bgp/routes.ts';
import {
  decodeAttributes,
  decodeBgpMessage,
  decodeRouteDistinguisher,
  decodeUpdate,
  encodeBgpMessage,
  encodeRouteDistinguisher,
} from '../../../src/bgp/update.ts';
import { type Path, PathSchema } from '../../../src/gen/gobgp/gobgp_pb.js';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import {
  CAPTURED_GOBGP_UPDATE_MESSAGE,
  FRR_MP_REACH,
  FRR_PREFIX_SID,
  GOBGP_MP_REACH_FULL,
  GOBGP_PREFIX_SID_FULL,
  GOBGP_PREFIX_SID_TRANSPOSED,
  RT_65000_100,
  UPDATE_FRR,
  UPDATE_GOBGP_FULL,
  UPDATE_GOBGP_TRANSPOSED,
} from '../bgp/vectors.ts';
import { decodeChecked, fuzzParams, mutated, randomBytes } from './fuzz.ts';

const BYTES = [MalformedAttributeError];
const UPDATES = [UPDATE_GOBGP_FULL, UPDATE_GOBGP_TRANSPOSED, UPDATE_FRR];
const MESSAGES = [CAPTURED_GOBGP_UPDATE_MESSAGE, encodeBgpMessage(2, UPDATE_FRR)];
const PREFIX_SIDS = [
  GOBGP_PREFIX_SID_FULL,
  GOBGP_PREFIX_SID_TRANSPOSED,
  FRR_PREFIX_SID,
  encodePrefixSid(
    srv6L3ServicePrefixSid({
      sid: parseIpv6('fc00:0:1:100::'),
      behavior: 0x12,
      structure: {
        locatorBlockLength: 32,
        locatorNodeLength: 16,
        functionLength: 16,
        argumentLength: 0,
        transpositionLength: 16,
        transpositionOffset: 48,
      },
    }),
  ),
];
const ATTRIBUTES = [GOBGP_MP_REACH_FULL, FRR_MP_REACH, RT_65000_100];
const RDS = [
  encodeRouteDistinguisher({ type: 0, admin: 65000, assigned: 100 }),
  encodeRouteDistinguisher({ type: 1, admin: '198.18.0.1', assigned: 7 }),
  encodeRouteDistinguisher({ type: 2, admin: 4200000000, assigned: 7 }),
];

/** The decoders of bytes, each over the inputs that reach it. */
const BYTE_DECODERS: Array<[string, readonly Uint8Array[], (b: Uint8Array) => unknown]> = [
  ['decodeBgpMessage', MESSAGES, (b) => decodeBgpMessage(b)],
  ['decodeUpdate', UPDATES, (b) => decodeUpdate(b)],
  ['decodeAttributes', ATTRIBUTES, (b) => decodeAttributes(b, 0, b.length)],
  ['decodePrefixSid', PREFIX_SIDS, (b) => decodePrefixSid(b)],
  ['decodePrefixSidTlv', PREFIX_SIDS, (b) => decodePrefixSidTlv(b, 0, b.length)],
  // The sub-TLV starts 4 bytes into the L3 Service TLV (type, length, reserved).
  ['decodeSrv6SubTlv', PREFIX_SIDS.map((b) => b.slice(4)), (b) => decodeSrv6SubTlv(b, 0, b.length)],
  [
    'decodeSrv6SubSubTlv',
    PREFIX_SIDS.map((b) => b.slice(4 + 3 + 21)),
    (b) => decodeSrv6SubSubTlv(b, 0, b.length),
  ],
  ['decodeRouteDistinguisher', RDS, (b) => decodeRouteDistinguisher(b, 0)],
];

describe('fuzz: BGP byte decoders', () => {
  it.each(BYTE_DECODERS)(
    '%s: random bytes and mutated valid encodings give a value or MalformedAttributeError',
    (name, seeds, decode) => {
      // Positive control: the valid encodings decode.
      for (const s of seeds) expect(decodeChecked(name, s, BYTES, () => decode(s)).ok, name).toBe(true);
      fc.assert(
        fc.property(fc.oneof(randomBytes, mutated(seeds)), (b) => {
          decodeChecked(name, b, BYTES, () => decode(b));
        }),
        fuzzParams,
      );
    },
  );

  it('regression: a route distinguisher shorter than 8 bytes is a MalformedAttributeError, not a RangeError', () => {
    for (const b of [new Uint8Array(0), Uint8Array.of(0), Uint8Array.of(0, 0, 0xfd, 0xe8, 0, 0, 0)]) {
      expect(() => decodeRouteDistinguisher(b, 0)).toThrow(MalformedAttributeError);
    }
    expect(() => decodeRouteDistinguisher(RDS[0]!, 1)).toThrow(MalformedAttributeError);
    expect(decodeRouteDistinguisher(RDS[0]!, 0)).toEqual({ type: 0, admin: 65000, assigned: 100 });
  });

  it('a declared length far beyond the input is refused without allocating it', () => {
    // UPDATE: total path attribute length 0xffff in a 4-byte body; an extended-length attribute of
    // 0xffff bytes in a short section; a BGP header claiming 0xffff bytes.
    const cases: Array<[string, Uint8Array, (b: Uint8Array) => unknown]> = [
      ['decodeUpdate', Uint8Array.of(0, 0, 0xff, 0xff), decodeUpdate],
      [
        'decodeAttributes',
        Uint8Array.of(0x90, 14, 0xff, 0xff, 0, 2),
        (b) => decodeAttributes(b, 0, b.length),
      ],
      [
        'decodeBgpMessage',
        Uint8Array.from([...new Array(16).fill(0xff), 0xff, 0xff, 2]),
        (b) => decodeBgpMessage(b),
      ],
      ['decodePrefixSid', Uint8Array.of(5, 0xff, 0xff, 0), (b) => decodePrefixSid(b)],
    ];
    for (const [name, b, decode] of cases) {
      const r = decodeChecked(name, b, BYTES, () => decode(b));
      expect(r.ok, name).toBe(false);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Paths from gobgpd's API

const vpn = vpnPathToApi({
  rd: { type: 0, admin: 65000, assigned: 100 },
  prefix: parsePrefix('2001:db8:e0::/64'),
  labels: [0x100],
  nextHop: parseIpv6('2001:db8:100::fe'),
  extCommunities: [{ type: 0, admin: 65000, assigned: 100 }],
  prefixSid: srv6L3ServicePrefixSid({ sid: parseIpv6('fc00:0:fe00::'), behavior: 0xffff }),
});
const unicast = unicastPathToApi(parsePrefix('fc00:0:fe00::/48'), parseIpv6('2001:db8:100::fe'));
const PATHS = [vpn, unicast].map((p) => toBinary(PathSchema, p));

const policy: LearnPolicy = {
  tenantsByRouteTarget: new Map([['65000:100', 'blue']]),
  fabricRouteTargets: new Set(['65000:1']),
  fabricLocators: [parsePrefix('fc00:0::/32')],
  edgeLocators: () => [parsePrefix('fc00:0:fe00::/48')],
};

/** A path as gobgpd would hand it over, with every Any's bytes (the attributes, the NLRI) mutated. */
function pathWithMutatedAnys(): fc.Arbitrary<Path> {
  const anys = [vpn.nlri!, ...vpn.pattrs, unicast.nlri!, ...unicast.pattrs];
  return fc
    .tuple(
      fc.constantFrom(vpn, unicast),
      fc.nat({ max: 5 }),
      fc.oneof(randomBytes, mutated(anys.map((a) => a.value).filter((v) => v.length > 0))),
      fc.constantFrom('', '<nil>', '2001:db8:100::fe'),
    )
    .map(([base, which, value, neighborIp]) => {
      const p = create(PathSchema, { ...base, neighborIp });
      const slots = [p.nlri!, ...p.pattrs];
      const i = which % slots.length;
      const mutatedAny = { ...slots[i]!, value };
      if (i === 0) p.nlri = mutatedAny;
      else p.pattrs = p.pattrs.map((a, k) => (k === i - 1 ? mutatedAny : a));
      return p;
    });
}

describe('fuzz: paths from the GoBGP API', () => {
  const read = (p: Path) => {
    const r = pathFromApi(p);
    // What the agent does next with a received VPN path: judge it (never throws).
    if (r && r.family === 'vpnv6' && !r.withdraw) learnVpnPath(r, policy);
    return r;
  };

  it('pathFromApi on paths whose attribute and NLRI bytes are mutated: a path, undefined or ApiShapeError', () => {
    // Positive control.
    expect(read(vpn)).toMatchObject({ family: 'vpnv6', rd: { admin: 65000, assigned: 100 } });
    expect(read(unicast)).toMatchObject({ family: 'ipv6' });
    fc.assert(
      fc.property(pathWithMutatedAnys(), (p) => {
        decodeChecked('pathFromApi', p.nlri?.value ?? new Uint8Array(), [ApiShapeError], () => read(p));
      }),
      fuzzParams,
    );
  });

  it('pathFromApi on mutated encoded paths (what the gRPC layer decodes) gives only ApiShapeError', () => {
    fc.assert(
      fc.property(mutated(PATHS), (bytes) => {
        let p: Path;
        try {
          p = fromBinary(PathSchema, bytes);
        } catch {
          return; // refused by the protobuf layer itself, before the agent sees it
        }
        decodeChecked('pathFromApi', bytes, [ApiShapeError], () => read(p));
      }),
      fuzzParams,
    );
  });

  it('regression: an own path with a malformed attribute is an ApiShapeError, not a protobuf error', () => {
    const p = create(PathSchema, { ...vpn, neighborIp: '<nil>' });
    p.pattrs = p.pattrs.map((a) => ({ ...a, value: Uint8Array.of(0x0a, 0xff) })); // field 1, length 255, no bytes
    expect(() => pathFromApi(p)).toThrow(ApiShapeError);
    expect(() => pathFromApi(p)).toThrow(/cannot be read/);
  });
});
