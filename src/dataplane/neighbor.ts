/**
 * Neighbour entries (`ip -6 neigh`), from `linux/neighbour.h`. The agent pins each workload's
 * link-layer address on its host link (NUD_PERMANENT): the eBPF backend rewrites the MACs of a packet
 * it delivers straight to the workload's link and reads them from here, and no ND exchange has to
 * happen before the first packet.
 */
import type { Ipv6Address } from '../srv6/address.ts';
import { forEachAttr, NetlinkDecodeError, type NlMessage, type NlWriter, readIpv6 } from './nlattr.ts';
import { NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST } from './uapi/netlink.ts';
import * as R from './uapi/rtnetlink.ts';

export interface Neighbor {
  readonly index: number;
  readonly address: Ipv6Address;
  /** `aa:bb:cc:dd:ee:ff`; absent for an entry that is not resolved. */
  readonly mac?: string;
  /** NUD_* state bits. */
  readonly state: number;
}

function ndmsg(w: NlWriter, index: number, state: number): void {
  w.u8(R.AF_INET6);
  w.u8(0);
  w.u16(0);
  w.i32(index);
  w.u16(state);
  w.u8(0); // flags
  w.u8(0); // type
}

export function macBytes(mac: string): Uint8Array {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p)))
    throw new NetlinkDecodeError(`link-layer address ${JSON.stringify(mac)} is not aa:bb:cc:dd:ee:ff`);
  return Uint8Array.from(parts.map((p) => Number.parseInt(p, 16)));
}

/** `ip -6 neigh replace ADDR lladdr MAC dev IDX nud permanent` (or `del ADDR dev IDX`). */
export function buildNeighborRequest(
  w: NlWriter,
  op: 'replace' | 'delete',
  n: { index: number; address: Ipv6Address; mac?: string },
): void {
  const m = w.beginMessage(
    op === 'delete' ? R.RTM_DELNEIGH : R.RTM_NEWNEIGH,
    op === 'delete' ? NLM_F_REQUEST : NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
  );
  ndmsg(w, n.index, op === 'delete' ? 0 : R.NUD_PERMANENT);
  w.attrIpv6(R.NDA_DST, n.address);
  if (op === 'replace') {
    if (n.mac === undefined) throw new NetlinkDecodeError('a permanent neighbour needs a link-layer address');
    w.attrBytes(R.NDA_LLADDR, macBytes(n.mac));
  }
  w.endMessage(m);
}

export function buildNeighborDump(w: NlWriter): void {
  const m = w.beginMessage(R.RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP);
  ndmsg(w, 0, 0);
  w.endMessage(m);
}

export function decodeNeighbor(msg: NlMessage): Neighbor | undefined {
  const b = msg.data;
  if (b.length < 16 + R.NDMSG_LEN) throw new NetlinkDecodeError(`RTM_NEWNEIGH of ${b.length} bytes`);
  if (b.readUInt8(16) !== R.AF_INET6) return undefined;
  const index = b.readInt32LE(20);
  const state = b.readUInt16LE(24);
  let address: Ipv6Address | undefined;
  let mac: string | undefined;
  forEachAttr(b, 16 + R.NDMSG_LEN, b.length, (type, data) => {
    if (type === R.NDA_DST && data.length === 16) address = readIpv6(data);
    else if (type === R.NDA_LLADDR && data.length === 6)
      mac = [...data].map((x) => x.toString(16).padStart(2, '0')).join(':');
  });
  if (address === undefined) return undefined;
  return { index, address, state, ...(mac !== undefined ? { mac } : {}) };
}
