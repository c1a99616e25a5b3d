/**
 * What the agent refuses and why, and the limits of what its API accepts. Pure: the API maps an
 * AgentError to its gRPC code, the CLI checks the same limits before it calls.
 */

export class AgentError extends Error {
  override readonly name = 'AgentError';
  /**
   * What kind of refusal (the API answers with the matching gRPC code): the input is wrong (invalid),
   * names nothing on this host (not-found), collides with something (exists), the host is in a state
   * where it cannot be done (precondition: draining, namespace gone), or the agent is not ready yet
   * (unavailable: retry).
   */
  readonly status: 'invalid' | 'not-found' | 'exists' | 'precondition' | 'unavailable' | 'failed';
  constructor(status: AgentError['status'], message: string) {
    super(message);
    this.status = status;
  }
}

/** Linux interface names: IFNAMSIZ is 16 bytes with the terminating NUL. */
export const IFNAME_MAX_BYTES = 15;
/** Identities and container ids: they name links and records; a few hundred bytes is plenty. */
export const ID_MAX_BYTES = 256;
/** `segmesh drain --wait`: at most 10 minutes (0 means the default of 10 s). */
export const DRAIN_WAIT_MAX_MS = 600_000;
/** `segmesh drain --quiet`: at most 1 minute (0 means the default of 2 s). */
export const DRAIN_QUIET_MAX_MS = 60_000;

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** An interface name the kernel accepts (dev_valid_name): 1-15 bytes, no '/', ':' or white space. */
export function checkIfname(name: string, what = '--ifname'): void {
  if (name === '') throw new AgentError('invalid', `${what} is empty: give an interface name such as eth0`);
  if (bytes(name) > IFNAME_MAX_BYTES) {
    throw new AgentError(
      'invalid',
      `${what} ${name} is ${bytes(name)} bytes; Linux interface names have at most ${IFNAME_MAX_BYTES} bytes: use a shorter name such as eth0`,
    );
  }
  if (name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw new AgentError(
      'invalid',
      `${what} ${JSON.stringify(name)} is not a valid interface name (no '/', ':', white space, '.' or '..'): use a name such as eth0`,
    );
  }
}

/** Identities and container ids: bounded, printable. */
export function checkId(value: string, what: string): void {
  if (bytes(value) > ID_MAX_BYTES) {
    throw new AgentError(
      'invalid',
      `${what} is ${bytes(value)} bytes; at most ${ID_MAX_BYTES} are accepted: use a shorter one`,
    );
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new AgentError('invalid', `${what} ${JSON.stringify(value)} contains control characters`);
  }
}

/** A duration in milliseconds from the API or the command line: integer, 0 (default) up to `max`. */
export function checkDurationMs(value: number, max: number, what: string, shown = String(value)): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new AgentError(
      'invalid',
      `${what} ${shown}: give whole milliseconds from 0 (the default) up to ${max} (${max / 1000} s)`,
    );
  }
}
