/**
 * Errors of the BGP area. Each one names what went wrong, with what, and what to do about it.
 */

/** BGP NOTIFICATION error codes and UPDATE Message Error subcodes (RFC 4271 section 4.5, 6.3). */
export const BgpErrorCode = { UpdateMessage: 3 } as const;
export const UpdateErrorSubcode = {
  MalformedAttributeList: 1,
  UnrecognizedWellKnownAttribute: 2,
  MissingWellKnownAttribute: 3,
  AttributeFlags: 4,
  AttributeLength: 5,
  InvalidOrigin: 6,
  InvalidNextHop: 8,
  OptionalAttribute: 9,
  InvalidNetworkField: 10,
  MalformedAsPath: 11,
} as const;

/**
 * What a receiver does with a malformed attribute (RFC 7606 section 2): reset the session,
 * treat the UPDATE as a withdrawal of its NLRI, or discard just the attribute.
 */
export type ErrorHandling = 'session-reset' | 'treat-as-withdraw' | 'attribute-discard';

/**
 * A malformed BGP message or attribute, found while decoding raw bytes. `code`/`subcode` are the
 * NOTIFICATION a strict speaker would send; `handling` is the RFC 7606 remedy.
 */
export class MalformedAttributeError extends Error {
  override readonly name = 'MalformedAttributeError';
  readonly code: number;
  readonly subcode: number;
  readonly handling: ErrorHandling;
  /** Byte offset in the decoded buffer where the problem was found. */
  readonly offset: number;
  constructor(message: string, opts: { subcode: number; handling: ErrorHandling; offset: number }) {
    super(message);
    this.code = BgpErrorCode.UpdateMessage;
    this.subcode = opts.subcode;
    this.handling = opts.handling;
    this.offset = opts.offset;
  }
}

/** gobgpd answers, but not with the API this agent was built against. */
export class GobgpApiMismatchError extends Error {
  override readonly name = 'GobgpApiMismatchError';
  readonly target: string;
  constructor(target: string, why: string) {
    super(
      `gobgpd at ${target} does not speak the GoBGP 3.x API (apipb.GobgpApi) this agent was built for: ${why}; ` +
        'run gobgpd 3.x (Debian package gobgpd >= 3.0), or rebuild the agent against the protos of the running ' +
        'gobgpd with SEGMESH_GOBGP_PROTO_DIR=<dir> npm run build',
    );
    this.target = target;
  }
}

/** A gRPC call to gobgpd failed. */
export class GobgpCallError extends Error {
  override readonly name = 'GobgpCallError';
  readonly method: string;
  readonly grpcCode: number | undefined;
  constructor(method: string, grpcCode: number | undefined, details: string, remedy: string) {
    super(
      `gobgpd ${method} failed${grpcCode === undefined ? '' : ` (gRPC code ${grpcCode})`}: ${details}; ${remedy}`,
    );
    this.method = method;
    this.grpcCode = grpcCode;
  }
}

/** The gobgpd sidecar could not be started or kept running. */
export class SidecarError extends Error {
  override readonly name = 'SidecarError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The BGP configuration is inconsistent. */
export class BgpConfigError extends Error {
  override readonly name = 'BgpConfigError';
}
