/**
 * Policy routing rules (`ip -6 rule`): type, one builder for add / delete, decoder for dumps.
 * From `linux/fib_rules.h`.
 */
import { formatPrefix, type Ipv6Prefix } from '../srv6/address.ts';
import { ROUTE_PROTOCOL } from './constants.ts';
import {
  forEachAttr,
  NetlinkDecodeError,
  type NlMessage,
  type NlWriter,
  readIpv6,
  readString,
  readU8,
  readU32,
} from './nlattr.ts';
import { NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST } from './uapi/netlink.ts';
import * as R from './uapi/rtnetlink.ts';

export const RULE_ACTIONS = ['lookup', 'unreachable', 'prohibit', 'blackhole'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];
const ACTION_CODE = {
  lookup: R.FR_ACT_TO_TBL,
  unreachable: R.FR_ACT_UNREACHABLE,
  prohibit: R.FR_ACT_PROHIBIT,
  blackhole: R.FR_ACT_BLACKHOLE,
} as const satisfies Record<RuleAction, number>;

/** `ip -6 rule add [from P] [to P] [iif D] [oif D] (lookup T | unreachable | ...) pref N proto X`. */
export interface Rule {
  readonly priority: number;
  readonly action?: RuleAction;
  /** Required when action is lookup (the default). */
  readonly table?: number;
  readonly iif?: string;
  readonly oif?: string;
  readonly src?: Ipv6Prefix;
  readonly dst?: Ipv6Prefix;
  /** Defaults to ROUTE_PROTOCOL. */
  readonly protocol?: number;
}

export interface KernelRule extends Rule {
  readonly action: RuleAction;
  readonly protocol: number;
}

export function ruleKey(r: Rule): string {
  const p = (x: Ipv6Prefix | undefined) => (x ? `${x.address.toString(16)}/${x.length}` : '');
  return [r.priority, r.action ?? 'lookup', r.table ?? '', r.iif ?? '', r.oif ?? '', p(r.src), p(r.dst)].join(
    '|',
  );
}

/** Appends RTM_NEWRULE (add) or RTM_DELRULE (delete). Twins: `ip -6 rule add` / `ip -6 rule del`. */
export function buildRuleRequest(w: NlWriter, op: 'add' | 'delete', rule: Rule): void {
  const m = w.beginMessage(
    op === 'add' ? R.RTM_NEWRULE : R.RTM_DELRULE,
    op === 'add' ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL : NLM_F_REQUEST,
  );
  const table = rule.table ?? 0;
  w.u8(R.AF_INET6);
  w.u8(rule.dst?.length ?? 0);
  w.u8(rule.src?.length ?? 0);
  w.u8(0); // tos
  w.u8(table < 256 ? table : R.RT_TABLE_UNSPEC);
  w.u8(0);
  w.u8(0);
  w.u8(ACTION_CODE[rule.action ?? 'lookup']);
  w.u32(0); // flags
  if (rule.dst && rule.dst.length > 0) w.attrIpv6(R.FRA_DST, rule.dst.address);
  if (rule.src && rule.src.length > 0) w.attrIpv6(R.FRA_SRC, rule.src.address);
  if (rule.iif !== undefined) w.attrString(R.FRA_IIFNAME, rule.iif);
  if (rule.oif !== undefined) w.attrString(R.FRA_OIFNAME, rule.oif);
  if (table >= 256) w.attrU32(R.FRA_TABLE, table);
  w.attrU32(R.FRA_PRIORITY, rule.priority);
  w.attrU8(R.FRA_PROTOCOL, rule.protocol ?? ROUTE_PROTOCOL);
  w.endMessage(m);
}

export function buildRuleDump(w: NlWriter): void {
  const m = w.beginMessage(R.RTM_GETRULE, NLM_F_REQUEST | NLM_F_DUMP);
  w.u8(R.AF_INET6);
  w.zeros(R.FIB_RULE_HDR_LEN - 1);
  w.endMessage(m);
}

export function decodeRule(msg: NlMessage): KernelRule {
  const b = msg.data;
  if (b.length < 16 + R.FIB_RULE_HDR_LEN) throw new NetlinkDecodeError(`RTM_NEWRULE of ${b.length} bytes`);
  const dstLen = b.readUInt8(17);
  const srcLen = b.readUInt8(18);
  let table = b.readUInt8(20);
  const actionCode = b.readUInt8(23);
  const out: { -readonly [K in keyof KernelRule]: KernelRule[K] } = {
    priority: 0,
    action: (Object.keys(ACTION_CODE) as RuleAction[]).find((k) => ACTION_CODE[k] === actionCode) ?? 'lookup',
    protocol: 0,
  };
  forEachAttr(b, 16 + R.FIB_RULE_HDR_LEN, b.length, (type, data) => {
    switch (type) {
      case R.FRA_DST:
        out.dst = { address: readIpv6(data), length: dstLen };
        break;
      case R.FRA_SRC:
        out.src = { address: readIpv6(data), length: srcLen };
        break;
      case R.FRA_IIFNAME:
        out.iif = readString(data);
        break;
      case R.FRA_OIFNAME:
        out.oif = readString(data);
        break;
      case R.FRA_TABLE:
        table = readU32(data, 'FRA_TABLE');
        break;
      case R.FRA_PRIORITY:
        out.priority = readU32(data, 'FRA_PRIORITY');
        break;
      case R.FRA_PROTOCOL:
        out.protocol = readU8(data, 'FRA_PROTOCOL');
        break;
      default:
        break;
    }
  });
  if (table !== 0) out.table = table;
  return out;
}

export function ruleSatisfies(kernel: Rule, desired: Rule): boolean {
  return (
    ruleKey(kernel) === ruleKey(desired) &&
    (kernel.protocol ?? ROUTE_PROTOCOL) === (desired.protocol ?? ROUTE_PROTOCOL)
  );
}

export function formatRule(r: Rule): string {
  const parts = [`pref ${r.priority}`];
  if (r.src) parts.push(`from ${formatPrefix(r.src)}`);
  if (r.dst) parts.push(`to ${formatPrefix(r.dst)}`);
  if (r.iif) parts.push(`iif ${r.iif}`);
  if (r.oif) parts.push(`oif ${r.oif}`);
  const action = r.action ?? 'lookup';
  parts.push(action === 'lookup' ? `lookup ${r.table}` : action);
  parts.push(`proto ${r.protocol ?? ROUTE_PROTOCOL}`);
  return parts.join(' ');
}
