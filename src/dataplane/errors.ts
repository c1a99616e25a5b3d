/**
 * Errors of the data plane. Each names the operation and the object and says what to do.
 */

/** errno names for the codes the kernel returns most often on rtnetlink. */
const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  3: 'ESRCH',
  12: 'ENOMEM',
  13: 'EACCES',
  16: 'EBUSY',
  17: 'EEXIST',
  19: 'ENODEV',
  22: 'EINVAL',
  34: 'ERANGE',
  61: 'ENODATA',
  95: 'EOPNOTSUPP',
  97: 'EAFNOSUPPORT',
  100: 'ENETDOWN',
  101: 'ENETUNREACH',
  105: 'ENOBUFS',
  113: 'EHOSTUNREACH',
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** Input that cannot be programmed; raised before anything is sent for that object. */
export class DataplaneInputError extends Error {
  override readonly name: string = 'DataplaneInputError';
  readonly object: string;
  /** The message without the object name. */
  readonly detail: string;
  constructor(object: string, message: string) {
    super(`${object}: ${message}`);
    this.object = object;
    this.detail = message;
  }
}

/** End.DT4 / End.DT46 / vrftable need VRF devices, which this kernel lacks. */
export class VrfUnsupportedError extends DataplaneInputError {
  override readonly name: string = 'VrfUnsupportedError';
  readonly what: string;
  constructor(object: string, what: string) {
    super(
      object,
      `${what} needs VRF devices, and this kernel was built without CONFIG_NET_VRF; ` +
        'use End.DT6 with `table` for IPv6 tenants, or run on a kernel with CONFIG_NET_VRF=y',
    );
    this.what = what;
  }
}

/** The kernel rejected a request. `object` names what the request was about. */
export class NetlinkError extends Error {
  override readonly name = 'NetlinkError';
  readonly errno: number;
  readonly code: string;
  readonly op: string;
  readonly object: string;
  constructor(op: string, object: string, errno: number, remedy?: string) {
    const code = errnoName(errno);
    super(`${op} ${object}: kernel answered ${code}${remedy ? `; ${remedy}` : ''}`);
    this.errno = errno;
    this.code = code;
    this.op = op;
    this.object = object;
  }
  get retryable(): boolean {
    return this.errno === 12 || this.errno === 105;
  }
}

/**
 * The kernel changed the table while dumping it (NLM_F_DUMP_INTR): the result may be missing
 * or duplicating objects. Never reconcile on it; dump again.
 */
export class DumpInterruptedError extends Error {
  override readonly name = 'DumpInterruptedError';
  readonly what: string;
  constructor(what: string) {
    super(`dump of ${what} was interrupted by a concurrent change (NLM_F_DUMP_INTR); dump again`);
    this.what = what;
  }
}

/** The netlink socket failed or closed under a request. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
}

/** Remedies for errnos on route/rule/nexthop writes. */
export function remedyFor(errno: number): string | undefined {
  switch (errno) {
    case 17:
      return 'it already exists: use replace, or reconcile';
    case 19:
      return 'the device does not exist (in this namespace)';
    case 22:
      return 'the kernel rejected an attribute (check the SID, segment list, table and behaviour parameters)';
    case 3:
      return 'no such object (already gone?)';
    case 2:
      return 'no such object or table';
    case 1:
      return 'run as root or with CAP_NET_ADMIN';
    case 95:
      return 'this kernel does not support it';
    case 100:
      return 'the device is down or has no carrier (bring both ends of a veth up)';
    case 101:
    case 113:
      return 'the next hop is not reachable in that table';
    default:
      return undefined;
  }
}
