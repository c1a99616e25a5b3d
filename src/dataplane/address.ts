/**
 * Interface addresses (`ip -6 addr`), from `linux/if_addr.h`.
 */
import type { Ipv6Prefix } from '../srv6/address.ts';
import {
  forEachAttr,
  NetlinkDecodeError,
  type NlMessage,
  type NlWriter,
  readIpv6,
  readU32,
} from './nlattr.ts';
import { NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST } from './uapi/netlink.ts';
import * as R from './uapi/rtnetlink.ts';

export interface Address {
  readonly index: number;
  /** Address and prefix length, e.g. fc00:0:4::1/64 (host bits kept). */
  readonly address: Ipv6Prefix;
  /** IFA_F_NODAD: usable at once (default true: the agent's addresses are unique by construction). */
  readonly nodad?: boolean;
}

export interface KernelAddress extends Address {
  readonly scope: number;
  readonly flags: number;
}

/** `ip -6 addr add|replace|del ADDR/LEN dev IDX [nodad]`. */
export function buildAddressRequest(w: NlWriter, op: 'add' | 'replace' | 'delete', a: Address): void {
  const flags =
    op === 'add'
      ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL
      : op === 'replace'
        ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
        : NLM_F_REQUEST;
  const m = w.beginMessage(op === 'delete' ? R.RTM_DELADDR : R.RTM_NEWADDR, flags);
  w.u8(R.AF_INET6);
  w.u8(a.address.length);
  w.u8(a.nodad === false ? 0 : R.IFA_F_NODAD);
  w.u8(0); // scope
  w.u32(a.index);
  w.attrIpv6(R.IFA_LOCAL, a.address.address);
  w.attrIpv6(R.IFA_ADDRESS, a.address.address);
  w.endMessage(m);
}

export function buildAddressDump(w: NlWriter): void {
  const m = w.beginMessage(R.RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP);
  w.u8(R.AF_INET6);
  w.zeros(R.IFADDRMSG_LEN - 1);
  w.endMessage(m);
}

export function decodeAddress(msg: NlMessage): KernelAddress {
  const b = msg.data;
  if (b.length < 16 + R.IFADDRMSG_LEN) throw new NetlinkDecodeError(`RTM_NEWADDR of ${b.length} bytes`);
  const length = b.readUInt8(17);
  let flags = b.readUInt8(18);
  const scope = b.readUInt8(19);
  const index = b.readUInt32LE(20);
  let addr = 0n;
  let local: bigint | undefined;
  forEachAttr(b, 16 + R.IFADDRMSG_LEN, b.length, (type, data) => {
    if (type === R.IFA_ADDRESS) addr = readIpv6(data);
    else if (type === R.IFA_LOCAL) local = readIpv6(data);
    else if (type === R.IFA_FLAGS) flags = readU32(data, 'IFA_FLAGS');
  });
  return {
    index,
    address: { address: local ?? addr, length },
    scope,
    flags,
    nodad: (flags & R.IFA_F_NODAD) !== 0,
  };
}
