/**
 * Nexthop objects and groups (`ip nexthop`), from `linux/nexthop.h`: single nexthops (gateway and/or
 * device, optionally with a seg6 encapsulation) and groups (hash-threshold or resilient).
 */
import { formatIpv6, type Ipv6Address } from '../srv6/address.ts';
import { ROUTE_PROTOCOL } from './constants.ts';
import { decodeSeg6, equalEncap, formatEncap, type Seg6Encap, writeEncap } from './encap.ts';
import {
  forEachAttr,
  NetlinkDecodeError,
  type NlMessage,
  type NlWriter,
  readIpv6,
  readU16,
  readU32,
} from './nlattr.ts';
import { NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST } from './uapi/netlink.ts';
import * as R from './uapi/rtnetlink.ts';

export interface NexthopGroupMember {
  readonly id: number;
  /** 1..256 (the kernel stores weight - 1 in a u8). */
  readonly weight?: number;
}

export interface Nexthop {
  readonly id: number;
  readonly protocol?: number;
  readonly oif?: number;
  /** Device name; the Dataplane resolves it to `oif`. */
  readonly dev?: string;
  readonly gateway?: Ipv6Address;
  readonly encap?: Seg6Encap;
  readonly blackhole?: boolean;
  readonly group?: readonly NexthopGroupMember[];
  /** Group type; default hash-threshold ('mpath'). */
  readonly groupType?: 'mpath' | 'resilient';
  /** Resilient groups: number of buckets. */
  readonly buckets?: number;
}

export interface KernelNexthop extends Nexthop {
  readonly protocol: number;
}

/** Appends RTM_NEWNEXTHOP (add/replace) or RTM_DELNEXTHOP. Twins: `ip nexthop add|replace|del`. */
export function buildNexthopRequest(w: NlWriter, op: 'add' | 'replace' | 'delete', nh: Nexthop): void {
  const flags =
    op === 'add'
      ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL
      : op === 'replace'
        ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
        : NLM_F_REQUEST;
  const m = w.beginMessage(op === 'delete' ? R.RTM_DELNEXTHOP : R.RTM_NEWNEXTHOP, flags);
  const isGroup = nh.group !== undefined;
  w.u8(isGroup || op === 'delete' ? R.AF_UNSPEC : R.AF_INET6);
  w.u8(0); // scope
  w.u8(op === 'delete' ? 0 : (nh.protocol ?? ROUTE_PROTOCOL));
  w.u8(0); // resvd
  w.u32(0); // flags
  w.attrU32(R.NHA_ID, nh.id);
  if (op !== 'delete') {
    if (nh.group) {
      const a = w.beginAttr(R.NHA_GROUP);
      for (const g of nh.group) {
        const weight = (g.weight ?? 1) - 1;
        w.u32(g.id);
        w.u8(weight & 0xff);
        w.u8(weight >> 8); // weight_high
        w.u16(0);
      }
      w.endAttr(a);
      if (nh.groupType === 'resilient') {
        const r = w.beginAttr(R.NHA_RES_GROUP, true);
        if (nh.buckets !== undefined) w.attrU16(R.NHA_RES_GROUP_BUCKETS, nh.buckets);
        w.endAttr(r);
        w.attrU16(R.NHA_GROUP_TYPE, R.NEXTHOP_GRP_TYPE_RES);
      }
    } else if (nh.blackhole) {
      w.attrFlag(R.NHA_BLACKHOLE);
    } else {
      if (nh.gateway !== undefined) w.attrIpv6(R.NHA_GATEWAY, nh.gateway);
      if (nh.encap !== undefined) writeEncap(w, R.NHA_ENCAP, R.NHA_ENCAP_TYPE, nh.encap);
      if (nh.oif !== undefined) w.attrU32(R.NHA_OIF, nh.oif);
    }
  }
  w.endMessage(m);
}

export function buildNexthopDump(w: NlWriter): void {
  const m = w.beginMessage(R.RTM_GETNEXTHOP, NLM_F_REQUEST | NLM_F_DUMP);
  w.zeros(R.NHMSG_LEN);
  w.endMessage(m);
}

export function decodeNexthop(msg: NlMessage): KernelNexthop {
  const b = msg.data;
  if (b.length < 16 + R.NHMSG_LEN) throw new NetlinkDecodeError(`RTM_NEWNEXTHOP of ${b.length} bytes`);
  const out: { -readonly [K in keyof KernelNexthop]: KernelNexthop[K] } = {
    id: 0,
    protocol: b.readUInt8(18),
  };
  let encapType = 0;
  let encapData: Buffer | undefined;
  let groupType = R.NEXTHOP_GRP_TYPE_MPATH;
  forEachAttr(b, 16 + R.NHMSG_LEN, b.length, (type, data) => {
    switch (type) {
      case R.NHA_ID:
        out.id = readU32(data, 'NHA_ID');
        break;
      case R.NHA_GROUP: {
        if (data.length % R.NEXTHOP_GRP_LEN !== 0)
          throw new NetlinkDecodeError(`NHA_GROUP of ${data.length} bytes`);
        const group: NexthopGroupMember[] = [];
        for (let o = 0; o < data.length; o += R.NEXTHOP_GRP_LEN) {
          group.push({
            id: data.readUInt32LE(o),
            weight: (data.readUInt8(o + 4) | (data.readUInt8(o + 5) << 8)) + 1,
          });
        }
        out.group = group;
        break;
      }
      case R.NHA_GROUP_TYPE:
        groupType = readU16(data, 'NHA_GROUP_TYPE');
        break;
      case R.NHA_RES_GROUP:
        forEachAttr(data, 0, data.length, (rt, rd) => {
          if (rt === R.NHA_RES_GROUP_BUCKETS) out.buckets = readU16(rd, 'NHA_RES_GROUP_BUCKETS');
        });
        break;
      case R.NHA_BLACKHOLE:
        out.blackhole = true;
        break;
      case R.NHA_OIF:
        out.oif = readU32(data, 'NHA_OIF');
        break;
      case R.NHA_GATEWAY:
        out.gateway = readIpv6(data);
        break;
      case R.NHA_ENCAP_TYPE:
        encapType = readU16(data, 'NHA_ENCAP_TYPE');
        break;
      case R.NHA_ENCAP:
        encapData = data;
        break;
      default:
        break;
    }
  });
  if (out.group) out.groupType = groupType === R.NEXTHOP_GRP_TYPE_RES ? 'resilient' : 'mpath';
  if (encapData && encapType === R.LWTUNNEL_ENCAP_SEG6) out.encap = decodeSeg6(encapData);
  return out;
}

export function nexthopSatisfies(kernel: Nexthop, desired: Nexthop): boolean {
  const groupsEqual =
    kernel.group === undefined || desired.group === undefined
      ? kernel.group === desired.group
      : kernel.group.length === desired.group.length &&
        kernel.group.every(
          (g, i) => g.id === desired.group![i]!.id && (g.weight ?? 1) === (desired.group![i]!.weight ?? 1),
        );
  return (
    kernel.id === desired.id &&
    (kernel.protocol ?? ROUTE_PROTOCOL) === (desired.protocol ?? ROUTE_PROTOCOL) &&
    kernel.oif === desired.oif &&
    kernel.gateway === desired.gateway &&
    Boolean(kernel.blackhole) === Boolean(desired.blackhole) &&
    equalEncap(kernel.encap, desired.encap) &&
    groupsEqual &&
    (kernel.group === undefined || (kernel.groupType ?? 'mpath') === (desired.groupType ?? 'mpath')) &&
    (desired.buckets === undefined || kernel.buckets === desired.buckets)
  );
}

export function formatNexthop(nh: Nexthop): string {
  const parts = [`id ${nh.id}`];
  if (nh.group) {
    parts.push(
      `group ${nh.group.map((g) => (g.weight && g.weight !== 1 ? `${g.id},${g.weight}` : `${g.id}`)).join('/')}`,
    );
    if (nh.groupType === 'resilient') parts.push(`type resilient buckets ${nh.buckets ?? '?'}`);
  }
  if (nh.encap) parts.push(formatEncap(nh.encap));
  if (nh.gateway !== undefined) parts.push(`via ${formatIpv6(nh.gateway)}`);
  if (nh.oif !== undefined) parts.push(`dev #${nh.oif}`);
  if (nh.blackhole) parts.push('blackhole');
  parts.push(`proto ${nh.protocol ?? ROUTE_PROTOCOL}`);
  return parts.join(' ');
}
