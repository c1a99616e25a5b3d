/**
 * Generic netlink family "SEG6" (`linux/seg6_genl.h`): the encapsulation source address (tunsrc)
 * and the HMAC keys. Twins: `ip sr tunsrc set|show`, `ip sr hmac set|show`.
 */
import type { Ipv6Address } from '../srv6/address.ts';
import {
  forEachAttr,
  NetlinkDecodeError,
  type NlMessage,
  NlWriter,
  readIpv6,
  readU8,
  readU16,
  readU32,
} from './nlattr.ts';
import type { NetlinkTransport } from './transport.ts';
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_CMD_GETFAMILY,
  GENL_ID_CTRL,
  NLM_F_DUMP,
  NLM_F_REQUEST,
} from './uapi/netlink.ts';
import * as S from './uapi/seg6.ts';

export type HmacAlgorithm = 'sha1' | 'sha256';

export interface HmacKey {
  readonly keyId: number;
  readonly algorithm: HmacAlgorithm;
  /** Up to 64 bytes (SEG6_HMAC_SECRET_LEN). */
  readonly secret: Uint8Array;
}

function genlHeader(w: NlWriter, family: number, cmd: number, flags: number): number {
  const m = w.beginMessage(family, flags);
  w.u8(cmd);
  w.u8(S.SEG6_GENL_VERSION);
  w.u16(0);
  return m;
}

export function buildGetFamily(name: string): Buffer {
  const w = new NlWriter(64);
  const m = w.beginMessage(GENL_ID_CTRL, NLM_F_REQUEST);
  w.u8(CTRL_CMD_GETFAMILY);
  w.u8(0); // version, as iproute2 sends it
  w.u16(0);
  w.attrString(CTRL_ATTR_FAMILY_NAME, name);
  w.endMessage(m);
  return w.take();
}

export function decodeFamilyId(m: NlMessage): number {
  let id: number | undefined;
  forEachAttr(m.data, 20, m.data.length, (t, d) => {
    if (t === CTRL_ATTR_FAMILY_ID) id = readU16(d, 'CTRL_ATTR_FAMILY_ID');
  });
  if (id === undefined) throw new NetlinkDecodeError('CTRL_CMD_GETFAMILY answer without CTRL_ATTR_FAMILY_ID');
  return id;
}

export function buildSetTunsrc(family: number, addr: Ipv6Address): Buffer {
  const w = new NlWriter(64);
  const m = genlHeader(w, family, S.SEG6_CMD_SET_TUNSRC, NLM_F_REQUEST);
  w.attrIpv6(S.SEG6_ATTR_DST, addr);
  w.endMessage(m);
  return w.take();
}

export function buildGetTunsrc(family: number): Buffer {
  const w = new NlWriter(32);
  const m = genlHeader(w, family, S.SEG6_CMD_GET_TUNSRC, NLM_F_REQUEST);
  w.endMessage(m);
  return w.take();
}

/** SEG6_CMD_SETHMAC; a zero-length secret deletes the key (as `ip sr hmac set KEYID none`). */
export function buildSetHmac(
  family: number,
  keyId: number,
  algorithm: HmacAlgorithm,
  secret: Uint8Array,
): Buffer {
  const w = new NlWriter(128);
  const m = genlHeader(w, family, S.SEG6_CMD_SETHMAC, NLM_F_REQUEST);
  w.attrU32(S.SEG6_ATTR_HMACKEYID, keyId);
  w.attrU8(S.SEG6_ATTR_SECRETLEN, secret.length);
  w.attrU8(S.SEG6_ATTR_ALGID, algorithm === 'sha1' ? S.SEG6_HMAC_ALGO_SHA1 : S.SEG6_HMAC_ALGO_SHA256);
  if (secret.length > 0) w.attrBytes(S.SEG6_ATTR_SECRET, secret);
  w.endMessage(m);
  return w.take();
}

export function buildDumpHmac(family: number): Buffer {
  const w = new NlWriter(32);
  const m = genlHeader(w, family, S.SEG6_CMD_DUMPHMAC, NLM_F_REQUEST | NLM_F_DUMP);
  w.endMessage(m);
  return w.take();
}

export function decodeTunsrc(m: NlMessage): Ipv6Address {
  let addr: Ipv6Address | undefined;
  forEachAttr(m.data, 20, m.data.length, (t, d) => {
    if (t === S.SEG6_ATTR_DST) addr = readIpv6(d);
  });
  if (addr === undefined) throw new NetlinkDecodeError('SEG6_CMD_GET_TUNSRC answer without SEG6_ATTR_DST');
  return addr;
}

export function decodeHmac(m: NlMessage): HmacKey {
  let keyId = 0;
  let alg = 0;
  let secretLen = 0;
  let secret = Buffer.alloc(0);
  forEachAttr(m.data, 20, m.data.length, (t, d) => {
    if (t === S.SEG6_ATTR_HMACKEYID) keyId = readU32(d, 'SEG6_ATTR_HMACKEYID');
    else if (t === S.SEG6_ATTR_ALGID) alg = readU8(d, 'SEG6_ATTR_ALGID');
    else if (t === S.SEG6_ATTR_SECRETLEN) secretLen = readU8(d, 'SEG6_ATTR_SECRETLEN');
    else if (t === S.SEG6_ATTR_SECRET) secret = Buffer.from(d);
  });
  return {
    keyId,
    algorithm: alg === S.SEG6_HMAC_ALGO_SHA1 ? 'sha1' : 'sha256',
    secret: new Uint8Array(secret.subarray(0, secretLen || secret.length)),
  };
}

/** The SEG6 family on a NETLINK_GENERIC transport. */
export class Seg6Genl {
  private readonly t: NetlinkTransport;
  private family: number | undefined;
  constructor(transport: NetlinkTransport) {
    this.t = transport;
  }

  private async familyId(): Promise<number> {
    if (this.family !== undefined) return this.family;
    const answers = await this.t.request(
      buildGetFamily(S.SEG6_GENL_NAME),
      'resolve generic netlink family',
      `"${S.SEG6_GENL_NAME}" (needs CONFIG_IPV6_SEG6_LWTUNNEL)`,
    );
    const first = answers[0];
    if (!first) throw new NetlinkDecodeError('no answer to CTRL_CMD_GETFAMILY');
    this.family = decodeFamilyId(first);
    return this.family;
  }

  async setTunsrc(addr: Ipv6Address): Promise<void> {
    await this.t.request(buildSetTunsrc(await this.familyId(), addr), 'set', 'seg6 tunsrc');
  }

  async getTunsrc(): Promise<Ipv6Address> {
    const answers = await this.t.request(buildGetTunsrc(await this.familyId()), 'get', 'seg6 tunsrc');
    const first = answers[0];
    if (!first) throw new NetlinkDecodeError('no answer to SEG6_CMD_GET_TUNSRC');
    return decodeTunsrc(first);
  }

  async setHmacKey(key: HmacKey): Promise<void> {
    await this.t.request(
      buildSetHmac(await this.familyId(), key.keyId, key.algorithm, key.secret),
      'set',
      `seg6 hmac key ${key.keyId}`,
    );
  }

  async deleteHmacKey(keyId: number): Promise<void> {
    await this.t.request(
      buildSetHmac(await this.familyId(), keyId, 'sha256', new Uint8Array(0)),
      'delete',
      `seg6 hmac key ${keyId}`,
    );
  }

  async listHmacKeys(): Promise<HmacKey[]> {
    const out: HmacKey[] = [];
    await this.t.dump(buildDumpHmac(await this.familyId()), 'seg6 hmac keys', (m) => out.push(decodeHmac(m)));
    return out;
  }
}
