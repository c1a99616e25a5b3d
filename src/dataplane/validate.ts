/**
 * Input checks run before anything is sent, so a bad object is never half-applied. Each failure is a
 * typed error naming the object.
 */
import { formatIpv6, type Ipv6Address } from '../srv6/address.ts';
import { KERNEL_MAX_SEGMENTS, TENANT_TABLE_BASE, TENANT_TABLE_MAX } from './constants.ts';
import { type Encap, SEG6_MODES, SEG6LOCAL_ACTION_CODE } from './encap.ts';
import { DataplaneInputError, VrfUnsupportedError } from './errors.ts';
import type { Nexthop } from './nexthop.ts';
import { formatRoute, ROUTE_TYPES, type Route } from './route.ts';
import type { Rule } from './rule.ts';

export interface ValidationContext {
  /** Longest segment list accepted (the MTU of workload links is planned for it). */
  readonly maxSegments: number;
  /** VRF devices exist (CONFIG_NET_VRF): End.DT4 / End.DT46 / vrftable are possible. */
  readonly vrf: boolean;
}

const MAX128 = (1n << 128n) - 1n;
const isU32 = (n: unknown): n is number =>
  Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffffffff;

/** Why `a` cannot be a SID, or undefined when it can. */
export function sidProblem(a: unknown): string | undefined {
  if (typeof a !== 'bigint' || a < 0n || a > MAX128) return 'not a 128-bit IPv6 address';
  if (a === 0n) return 'the unspecified address :: is not a SID';
  if (a === 1n) return 'the loopback address ::1 is not a SID';
  if (a >> 120n === 0xffn) return 'a multicast address (ff00::/8) is not a SID';
  if (a >> 118n === 0x3fan) return 'a link-local address (fe80::/10) is not a SID';
  if (a >> 32n === 0xffffn) return 'an IPv4-mapped address is not a SID';
  return undefined;
}

function checkSegments(
  object: string,
  segments: readonly Ipv6Address[] | undefined,
  ctx: ValidationContext,
): void {
  if (!Array.isArray(segments) || segments.length === 0)
    throw new DataplaneInputError(object, 'the segment list is empty');
  const limit = Math.min(ctx.maxSegments, KERNEL_MAX_SEGMENTS);
  if (segments.length > limit) {
    throw new DataplaneInputError(
      object,
      `${segments.length} segments exceed the limit of ${limit} (maxSegments; workload MTUs are planned for it): ` +
        'shorten the policy or raise maxSegments together with the workload MTU',
    );
  }
  segments.forEach((s, i) => {
    const p = sidProblem(s);
    if (p)
      throw new DataplaneInputError(
        object,
        `segment ${i} (${typeof s === 'bigint' && s >= 0n && s <= MAX128 ? formatIpv6(s) : String(s)}): ${p}`,
      );
  });
}

function checkHmac(object: string, keyId: number | undefined): void {
  if (keyId !== undefined && (!isU32(keyId) || keyId === 0)) {
    throw new DataplaneInputError(object, `HMAC key id ${keyId} must be 1..4294967295`);
  }
}

export function validateEncap(
  object: string,
  e: Encap,
  table: number | undefined,
  ctx: ValidationContext,
): void {
  if (e.type === 'seg6') {
    if (!SEG6_MODES.includes(e.mode))
      throw new DataplaneInputError(object, `unknown seg6 mode ${String(e.mode)}`);
    checkSegments(object, e.segments, ctx);
    checkHmac(object, e.hmacKeyId);
    if (
      e.mode === 'inline' &&
      table !== undefined &&
      table >= TENANT_TABLE_BASE &&
      table <= TENANT_TABLE_MAX
    ) {
      throw new DataplaneInputError(
        object,
        'inline (H.Insert) cannot carry tenant traffic (no inner packet, no tenant context): use encap or encap.red',
      );
    }
    return;
  }
  if (!(e.action in SEG6LOCAL_ACTION_CODE))
    throw new DataplaneInputError(object, `unknown seg6local action ${String(e.action)}`);
  if (e.vrfTable !== undefined && !ctx.vrf) throw new VrfUnsupportedError(object, `${e.action} vrftable`);
  switch (e.action) {
    case 'End.DT4':
    case 'End.DT46':
      if (!ctx.vrf) throw new VrfUnsupportedError(object, e.action);
      if (!isU32(e.vrfTable) || e.vrfTable === 0)
        throw new DataplaneInputError(object, `${e.action} needs vrftable (a VRF's table)`);
      break;
    case 'End.DT6':
    case 'End.T': {
      const t = e.table ?? e.vrfTable;
      if (!isU32(t) || t === 0)
        throw new DataplaneInputError(object, `${e.action} needs a table (1..4294967295); none given`);
      break;
    }
    case 'End.X':
    case 'End.DX6':
      if (e.nh6 === undefined || sidProblem(e.nh6) === 'not a 128-bit IPv6 address') {
        throw new DataplaneInputError(object, `${e.action} needs nh6, an on-link IPv6 next hop`);
      }
      break;
    case 'End.DX4':
      if (typeof e.nh4 !== 'string' || !/^(\d{1,3}\.){3}\d{1,3}$/.test(e.nh4)) {
        throw new DataplaneInputError(object, 'End.DX4 needs nh4, an on-link IPv4 next hop');
      }
      break;
    case 'End.B6':
    case 'End.B6.Encaps':
      if (!e.srh) throw new DataplaneInputError(object, `${e.action} needs srh (the bound segment list)`);
      checkSegments(object, e.srh.segments, ctx);
      checkHmac(object, e.srh.hmacKeyId);
      break;
    default:
      break;
  }
}

/** A lazily formatted object name: formatting 100,000 routes costs more than checking them. */
function routeName(r: Route): string {
  try {
    return `route ${formatRoute(r)}`;
  } catch {
    return 'route (unprintable)';
  }
}

export function validateRoute(r: Route, ctx: ValidationContext): void {
  try {
    checkRoute(r, ctx);
  } catch (e) {
    if (e instanceof DataplaneInputError && e.object === PENDING) {
      const object = routeName(r);
      const err =
        e instanceof VrfUnsupportedError
          ? new VrfUnsupportedError(object, e.what)
          : new DataplaneInputError(object, e.detail);
      throw err;
    }
    throw e;
  }
}

/** Placeholder object name inside checkRoute; validateRoute swaps in the formatted route on failure. */
const PENDING = '\u0000route';

function checkRoute(r: Route, ctx: ValidationContext): void {
  const object = PENDING;
  if (
    !r ||
    typeof r.dst !== 'object' ||
    typeof r.dst.address !== 'bigint' ||
    r.dst.address < 0n ||
    r.dst.address > MAX128
  ) {
    throw new DataplaneInputError(object, 'dst must be an IPv6 prefix');
  }
  if (!Number.isInteger(r.dst.length) || r.dst.length < 0 || r.dst.length > 128)
    throw new DataplaneInputError(object, 'prefix length must be 0..128');
  if (r.src !== undefined) {
    const s = r.src;
    if (!s || typeof s.address !== 'bigint' || s.address < 0n || s.address > MAX128)
      throw new DataplaneInputError(object, 'src must be an IPv6 prefix');
    if (!Number.isInteger(s.length) || s.length < 0 || s.length > 128)
      throw new DataplaneInputError(object, 'source prefix length must be 0..128');
    // The kernel masks host bits: the dump would then never match what was asked for.
    if (s.length < 128 && (s.address & (MAX128 >> BigInt(s.length))) !== 0n)
      throw new DataplaneInputError(object, 'the source prefix has host bits set past its length');
  }
  if (!isU32(r.table) || r.table === 0)
    throw new DataplaneInputError(object, 'a table is required (1..4294967295; 254 is main)');
  if (r.type !== undefined && !ROUTE_TYPES.includes(r.type))
    throw new DataplaneInputError(object, `unknown route type ${String(r.type)}`);
  if (r.metric !== undefined && !isU32(r.metric))
    throw new DataplaneInputError(object, 'metric must be a u32');
  if (r.encap) {
    validateEncap(object, r.encap, r.table, ctx);
    if (r.encap.type === 'seg6local' && r.dst.length !== 128) {
      throw new DataplaneInputError(object, 'a local SID (seg6local) is installed as a /128');
    }
    if (r.encap.type === 'seg6local') {
      const p = sidProblem(r.dst.address);
      if (p) throw new DataplaneInputError(object, `invalid SID: ${p}`);
    }
  }
}

export function validateRule(r: Rule): void {
  const object = `rule pref ${r.priority}`;
  if (!isU32(r.priority)) throw new DataplaneInputError(object, 'priority must be a u32');
  if ((r.action ?? 'lookup') === 'lookup' && (!isU32(r.table) || r.table === 0)) {
    throw new DataplaneInputError(object, 'a lookup rule needs a table');
  }
}

export function validateNexthop(nh: Nexthop, ctx: ValidationContext): void {
  const object = `nexthop id ${nh.id}`;
  if (!isU32(nh.id) || nh.id === 0) throw new DataplaneInputError(object, 'id must be 1..4294967295');
  if (nh.group) {
    if (nh.group.length === 0) throw new DataplaneInputError(object, 'a group needs members');
    for (const g of nh.group) {
      if (g.weight !== undefined && (!Number.isInteger(g.weight) || g.weight < 1 || g.weight > 256)) {
        throw new DataplaneInputError(object, `member ${g.id}: weight must be 1..256`);
      }
    }
  } else if (nh.encap) validateEncap(object, nh.encap, undefined, ctx);
}
