/**
 * Links (`ip link`): veth pairs (optionally with the peer created directly in another namespace),
 * up/down, MTU, moving a link to another namespace, delete, dump. From `linux/if_link.h`, `linux/veth.h`.
 */
import {
  forEachAttr,
  NetlinkDecodeError,
  type NlMessage,
  type NlWriter,
  readString,
  readU8,
  readU32,
} from './nlattr.ts';
import { NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST } from './uapi/netlink.ts';
import * as R from './uapi/rtnetlink.ts';

export interface Link {
  readonly index: number;
  readonly name: string;
  readonly mtu: number;
  readonly up: boolean;
  /** IFLA_INFO_KIND (e.g. 'veth'). */
  readonly kind?: string;
  /** IFLA_LINK: the peer's index (in its namespace) for a veth. */
  readonly peerIndex?: number;
  readonly operstate?: number;
  /** IFLA_ADDRESS: the link-layer address, `aa:bb:cc:dd:ee:ff`. */
  readonly mac?: string;
}

export interface VethSpec {
  readonly name: string;
  readonly peerName: string;
  readonly mtu?: number;
  /** An open fd of the namespace the peer is created in (IFLA_NET_NS_FD inside VETH_INFO_PEER). */
  readonly peerNetnsFd?: number;
}

function ifinfomsg(w: NlWriter, index: number, flags: number, change: number): void {
  w.u8(R.AF_UNSPEC);
  w.u8(0);
  w.u16(0); // type
  w.i32(index);
  w.u32(flags);
  w.u32(change);
}

/** `ip link add NAME [mtu M] type veth peer name PEER [netns NS] [mtu M]`. */
export function buildVethAdd(w: NlWriter, spec: VethSpec): void {
  const m = w.beginMessage(R.RTM_NEWLINK, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg(w, 0, 0, 0);
  w.attrString(R.IFLA_IFNAME, spec.name);
  if (spec.mtu !== undefined) w.attrU32(R.IFLA_MTU, spec.mtu);
  const li = w.beginAttr(R.IFLA_LINKINFO);
  w.attrString(R.IFLA_INFO_KIND, 'veth', false); // iproute2 sends it without NUL
  const data = w.beginAttr(R.IFLA_INFO_DATA);
  const peer = w.beginAttr(R.VETH_INFO_PEER);
  ifinfomsg(w, 0, 0, 0);
  w.attrString(R.IFLA_IFNAME, spec.peerName);
  if (spec.mtu !== undefined) w.attrU32(R.IFLA_MTU, spec.mtu);
  if (spec.peerNetnsFd !== undefined) w.attrU32(R.IFLA_NET_NS_FD, spec.peerNetnsFd);
  w.endAttr(peer);
  w.endAttr(data);
  w.endAttr(li);
  w.endMessage(m);
}

export interface LinkChange {
  readonly up?: boolean;
  readonly mtu?: number;
  /** Move to the namespace of this open fd. */
  readonly netnsFd?: number;
  readonly name?: string;
}

/** `ip link set dev IDX [up|down] [mtu M] [netns NS] [name N]` (RTM_NEWLINK on an index, as iproute2). */
export function buildLinkSet(w: NlWriter, index: number, change: LinkChange): void {
  const m = w.beginMessage(R.RTM_NEWLINK, NLM_F_REQUEST);
  const flags = change.up === undefined ? 0 : change.up ? R.IFF_UP : 0;
  ifinfomsg(w, index, flags, change.up === undefined ? 0 : R.IFF_UP);
  if (change.name !== undefined) w.attrString(R.IFLA_IFNAME, change.name);
  if (change.mtu !== undefined) w.attrU32(R.IFLA_MTU, change.mtu);
  if (change.netnsFd !== undefined) w.attrU32(R.IFLA_NET_NS_FD, change.netnsFd);
  w.endMessage(m);
}

export function buildLinkDelete(w: NlWriter, index: number): void {
  const m = w.beginMessage(R.RTM_DELLINK, NLM_F_REQUEST);
  ifinfomsg(w, index, 0, 0);
  w.endMessage(m);
}

export function buildLinkDump(w: NlWriter): void {
  const m = w.beginMessage(R.RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP);
  ifinfomsg(w, 0, 0, 0);
  w.endMessage(m);
}

export function decodeLink(msg: NlMessage): Link {
  const b = msg.data;
  if (b.length < 16 + R.IFINFOMSG_LEN) throw new NetlinkDecodeError(`RTM_NEWLINK of ${b.length} bytes`);
  const index = b.readInt32LE(20);
  const flags = b.readUInt32LE(24);
  const out: { -readonly [K in keyof Link]: Link[K] } = {
    index,
    name: '',
    mtu: 0,
    up: (flags & R.IFF_UP) !== 0,
  };
  forEachAttr(b, 16 + R.IFINFOMSG_LEN, b.length, (type, data) => {
    switch (type) {
      case R.IFLA_IFNAME:
        out.name = readString(data);
        break;
      case R.IFLA_MTU:
        out.mtu = readU32(data, 'IFLA_MTU');
        break;
      case R.IFLA_LINK:
        out.peerIndex = readU32(data, 'IFLA_LINK');
        break;
      case R.IFLA_ADDRESS:
        out.mac = [...data].map((x) => x.toString(16).padStart(2, '0')).join(':');
        break;
      case R.IFLA_OPERSTATE:
        out.operstate = readU8(data, 'IFLA_OPERSTATE');
        break;
      case R.IFLA_LINKINFO:
        forEachAttr(data, 0, data.length, (lt, ld) => {
          if (lt === R.IFLA_INFO_KIND) out.kind = readString(ld);
        });
        break;
      default:
        break;
    }
  });
  return out;
}
