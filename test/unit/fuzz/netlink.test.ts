/**
 * Fuzzing the netlink decoders (issue 12): what the kernel (or anything that can write to the
 * agent's netlink socket) sends back — datagrams, attributes, routes with seg6/seg6local encap,
 * links, addresses, rules, nexthops, the seg6 generic-netlink family. Seeds: the golden iproute2
 * requests (same layouts as the kernel's answers) and the golden dumps. Typed error:
 * NetlinkDecodeError.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeAddress } from '../../../src/dataplane/address.ts';
import { decodeSeg6, decodeSeg6Local } from '../../../src/dataplane/encap.ts';
import { decodeFamilyId, decodeHmac, decodeTunsrc } from '../../../src/dataplane/genl-seg6.ts';
import { decodeLink } from '../../../src/dataplane/link.ts';
import { decodeNexthop } from '../../../src/dataplane/nexthop.ts';
import {
  NetlinkDecodeError,
  type NlMessage,
  parseAttrs,
  splitMessages,
} from '../../../src/dataplane/nlattr.ts';
import { decodeRoute } from '../../../src/dataplane/route.ts';
import { decodeRule } from '../../../src/dataplane/rule.ts';
import { GOLDEN, GOLDEN_DUMP, GOLDEN_GENL } from '../dataplane/iproute2-golden.ts';
import { decodeChecked, fuzzParams, mutated, randomBytes } from './fuzz.ts';

const NL = [NetlinkDecodeError];
const all = [
  ...Object.values(GOLDEN).map((g) => Buffer.from(g.hex, 'hex')),
  ...Object.values(GOLDEN_DUMP).map((h) => Buffer.from(h, 'hex')),
];
const genl = Object.values(GOLDEN_GENL).map((h) => Buffer.from(h, 'hex'));
const ofType = (...types: number[]) => all.filter((b) => types.includes(b.readUInt16LE(4)));

/** The message as the decoders get it, without splitMessages' length check in front. */
function message(b: Uint8Array): NlMessage {
  const data = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const u16 = (o: number) => (data.length >= o + 2 ? data.readUInt16LE(o) : 0);
  return { type: u16(4), flags: u16(6), seq: 0, pid: 0, data };
}

/** RTA_ENCAP payloads of the golden routes, by encap type (5 seg6, 7 seg6local). */
function encapPayloads(encapType: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of ofType(24, 25)) {
    const attrs = parseAttrs(b, 16 + 12, b.readUInt32LE(0));
    const type = attrs.find((a) => a.type === 21);
    const encap = attrs.find((a) => a.type === 22);
    if (type && encap && type.data.readUInt16LE(0) === encapType) out.push(encap.data);
  }
  return out;
}

const DECODERS: Array<[string, readonly Uint8Array[], (b: Uint8Array) => unknown, boolean]> = [
  // [name, seeds, decode, whether every seed decodes (positive control)]
  ['splitMessages', all, (b) => splitMessages(Buffer.from(b)), true],
  ['parseAttrs', all.map((b) => b.subarray(16 + 12)), (b) => parseAttrs(Buffer.from(b)), false],
  ['decodeRoute', ofType(24, 25), (b) => decodeRoute(message(b)), true],
  ['decodeSeg6', encapPayloads(5), (b) => decodeSeg6(Buffer.from(b)), true],
  ['decodeSeg6Local', encapPayloads(7), (b) => decodeSeg6Local(Buffer.from(b)), true],
  ['decodeLink', ofType(16), (b) => decodeLink(message(b)), true],
  ['decodeAddress', ofType(20), (b) => decodeAddress(message(b)), true],
  ['decodeRule', ofType(32), (b) => decodeRule(message(b)), true],
  ['decodeNexthop', ofType(104), (b) => decodeNexthop(message(b)), true],
  ['decodeFamilyId', genl, (b) => decodeFamilyId(message(b)), false],
  ['decodeTunsrc', genl, (b) => decodeTunsrc(message(b)), false],
  ['decodeHmac', genl, (b) => decodeHmac(message(b)), false],
];

describe('fuzz: netlink decoders', () => {
  it('has seeds for every decoder', () => {
    for (const [name, seeds] of DECODERS) expect(seeds.length, name).toBeGreaterThan(0);
  });

  it.each(DECODERS)(
    '%s: random bytes and mutated kernel messages give a value or NetlinkDecodeError',
    (name, seeds, decode, valid) => {
      if (valid)
        for (const s of seeds) expect(decodeChecked(name, s, NL, () => decode(s)).ok, name).toBe(true);
      fc.assert(
        fc.property(fc.oneof(randomBytes, mutated(seeds)), (b) => {
          decodeChecked(name, b, NL, () => decode(b));
        }),
        fuzzParams,
      );
    },
  );

  it('a declared length far beyond the datagram is refused without allocating it', () => {
    const huge = Buffer.from(all[0]!);
    huge.writeUInt32LE(0xffffffff, 0);
    expect(decodeChecked('splitMessages', huge, NL, () => splitMessages(huge)).ok).toBe(false);
    const attr = Buffer.from([0xff, 0xff, 1, 0, 0, 0, 0, 0]);
    expect(decodeChecked('parseAttrs', attr, NL, () => parseAttrs(attr)).ok).toBe(false);
  });
});
