/**
 * Network namespaces, veth pairs and the underlay switch, driven through iproute2. Test set-up only:
 * the agent itself programs the kernel over netlink (src/dataplane).
 */
import { type ShOptions, type ShResult, sh } from './exec.ts';
import { removeNetns } from './run.ts';

export class Netns {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }

  static async create(name: string): Promise<Netns> {
    await sh('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    await ns.ip('link', 'set', 'lo', 'up');
    // Deterministic IPv6 behaviour for tests: no DAD delay, no router solicitations.
    await ns.sysctl('net.ipv6.conf.all.accept_dad', '0');
    await ns.sysctl('net.ipv6.conf.default.accept_dad', '0');
    await ns.sysctl('net.ipv6.conf.default.router_solicitations', '0');
    return ns;
  }

  /** Runs a command inside the namespace; throws on failure unless `allowFail`. */
  exec(
    command: string,
    args: readonly string[] = [],
    opts: Omit<ShOptions, 'netns'> = {},
  ): Promise<ShResult> {
    return sh(command, args, { ...opts, netns: this.name });
  }

  /** `ip -n NAME ...` */
  ip(...args: string[]): Promise<ShResult> {
    return sh('ip', ['-n', this.name, ...args]);
  }

  /** `ip -n NAME -j ...` parsed. */
  async ipJson<T = unknown>(...args: string[]): Promise<T> {
    const out = await sh('ip', ['-n', this.name, '-j', ...args]);
    return JSON.parse(out.stdout || '[]') as T;
  }

  async sysctl(key: string, value: string): Promise<void> {
    await this.exec('sysctl', ['-q', '-w', `${key}=${value}`]);
  }

  async readSysctl(key: string): Promise<string> {
    return (await this.exec('sysctl', ['-n', key])).stdout.trim();
  }

  async destroy(): Promise<void> {
    await removeNetns(this.name);
  }
}

export interface VethOptions {
  readonly mtu?: number;
  /** Addresses (with prefix length) on the first end. */
  readonly addresses?: readonly string[];
  /** Addresses on the second end. */
  readonly peerAddresses?: readonly string[];
}

/** A veth pair `aName` in `a` <-> `bName` in `b`, both up. */
export async function createVeth(
  a: Netns,
  aName: string,
  b: Netns,
  bName: string,
  opts: VethOptions = {},
): Promise<void> {
  const mtu = opts.mtu ? ['mtu', String(opts.mtu)] : [];
  await a.ip('link', 'add', aName, ...mtu, 'type', 'veth', 'peer', 'name', bName, ...mtu, 'netns', b.name);
  for (const addr of opts.addresses ?? []) await a.ip('addr', 'add', addr, 'dev', aName, 'nodad');
  for (const addr of opts.peerAddresses ?? []) await b.ip('addr', 'add', addr, 'dev', bName, 'nodad');
  await a.ip('link', 'set', aName, 'up');
  await b.ip('link', 'set', bName, 'up');
}

/**
 * The underlay: a bridge `br0` inside its own namespace. Not in the root namespace: a running dockerd
 * sets the root FORWARD policy to DROP and br_netfilter is built in (isolation-pitfalls.md).
 */
export class UnderlaySwitch {
  readonly ns: Netns;
  #ports = 0;
  constructor(ns: Netns) {
    this.ns = ns;
  }

  static async create(ns: Netns): Promise<UnderlaySwitch> {
    await ns.ip('link', 'add', 'br0', 'type', 'bridge');
    await ns.ip('link', 'set', 'br0', 'up');
    return new UnderlaySwitch(ns);
  }

  /** Connects `host` to the switch with interface `ifname` carrying `addresses`. */
  async attach(
    host: Netns,
    ifname: string,
    addresses: readonly string[] = [],
    opts: { mtu?: number } = {},
  ): Promise<void> {
    const port = `p${++this.#ports}`;
    await createVeth(host, ifname, this.ns, port, { addresses, ...(opts.mtu ? { mtu: opts.mtu } : {}) });
    await this.ns.ip('link', 'set', port, 'master', 'br0');
  }
}
