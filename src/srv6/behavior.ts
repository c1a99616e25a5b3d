/**
 * SRv6 endpoint behaviours (RFC 8986) and their codepoints in the IANA "SRv6 Endpoint Behaviors"
 * registry, which is what BGP carries (RFC 9252 SID Information sub-TLV). The Linux kernel numbers
 * its seg6local actions differently (SEG6_LOCAL_ACTION_END_DT6 is 7, IANA End.DT6 is 18): that
 * mapping lives with the netlink encoders in src/dataplane, not here.
 */

export const BEHAVIORS = [
  'End',
  'End.X',
  'End.T',
  'End.DX6',
  'End.DX4',
  'End.DT6',
  'End.DT4',
  'End.DT46',
  'End.B6.Encaps',
  'End.B6.Encaps.Red',
] as const;

export type Behavior = (typeof BEHAVIORS)[number];

/** IANA codepoints (RFC 8986 section 10.2, without flavours). */
export const IANA_BEHAVIOR_CODEPOINT = {
  End: 1,
  'End.X': 5,
  'End.T': 9,
  'End.B6.Encaps': 14,
  'End.DX6': 16,
  'End.DX4': 17,
  'End.DT6': 18,
  'End.DT4': 19,
  'End.DT46': 20,
  'End.B6.Encaps.Red': 27,
} as const satisfies Record<Behavior, number>;

/** RFC 8986 10.2: "Opaque", what FRR 8.4 sends for every L3 service SID. */
export const IANA_BEHAVIOR_OPAQUE = 0xffff;

const BY_CODEPOINT = new Map<number, Behavior>(
  Object.entries(IANA_BEHAVIOR_CODEPOINT).map(([name, code]) => [code, name as Behavior]),
);

/** The behaviour for an IANA codepoint, or undefined for flavours, opaque and unknown codepoints. */
export function behaviorFromCodepoint(codepoint: number): Behavior | undefined {
  return BY_CODEPOINT.get(codepoint);
}

export function isBehavior(name: string): name is Behavior {
  return (BEHAVIORS as readonly string[]).includes(name);
}

/**
 * Behaviours that remove the outer header and deliver the inner packet. Only these may end a segment
 * list: End, End.X and End.B6.* drop a packet that arrives with Segments Left 0
 * (shared/research/isolation-pitfalls.md).
 */
export function decapsulates(behavior: Behavior): boolean {
  switch (behavior) {
    case 'End.DX6':
    case 'End.DX4':
    case 'End.DT6':
    case 'End.DT4':
    case 'End.DT46':
      return true;
    default:
      return false;
  }
}

/** What a host's kernel can run; reported by the data plane at start (VRF devices, seg6 HMAC). */
export interface HostCapabilities {
  /** Linux VRF devices exist (CONFIG_NET_VRF): needed by End.DT4 and End.DT46 (`vrftable`). */
  readonly vrf: boolean;
  /** seg6 HMAC (CONFIG_IPV6_SEG6_HMAC). */
  readonly hmac: boolean;
}

export const LINUX_WITHOUT_VRF: HostCapabilities = { vrf: false, hmac: true };

/** Why a host cannot run `behavior`, or undefined when it can. */
export function unsupportedReason(behavior: Behavior, caps: HostCapabilities): string | undefined {
  if ((behavior === 'End.DT4' || behavior === 'End.DT46') && !caps.vrf) {
    return `${behavior} needs Linux VRF devices (CONFIG_NET_VRF), which this host's kernel lacks; use IPv6 tenants (End.DT6 with a table) or a kernel with VRF`;
  }
  return undefined;
}
