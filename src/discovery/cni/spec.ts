/**
 * The CNI specification (1.0.0) as plain data: what a runtime hands a plugin (environment and network
 * configuration), what the plugin answers (results, errors), and version negotiation. Pure: the plugin
 * executable (plugin.ts) does the I/O.
 */

/** Versions whose configuration and result formats this plugin reads and writes. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const PLUGIN_TYPE = 'segmesh-cni';

export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION'] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];

/** Well-known error codes (CNI spec, "Error"). */
export const CNI_ERROR = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  io: 5,
  decode: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  /** Plugin-specific codes start at 100. */
  agentUnavailable: 100,
  agentRejected: 101,
} as const;

export class CniError extends Error {
  override readonly name = 'CniError';
  readonly code: number;
  readonly details: string;
  constructor(code: number, msg: string, details = '') {
    super(msg);
    this.code = code;
    this.details = details;
  }

  /** The error object the spec asks for on stdout. */
  toJson(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return {
      cniVersion,
      code: this.code,
      msg: this.message,
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

export interface CniEnvironment {
  readonly command: CniCommand;
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  readonly args: ReadonlyMap<string, string>;
  readonly path: readonly string[];
}

/** Reads the CNI_* variables; throws CniError 4 naming what is missing or malformed. */
export function parseEnvironment(env: Readonly<Record<string, string | undefined>>): CniEnvironment {
  const command = env.CNI_COMMAND;
  if (!command || !(CNI_COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(
      CNI_ERROR.invalidEnvironment,
      `CNI_COMMAND is ${command === undefined ? 'not set' : JSON.stringify(command)}`,
      `set CNI_COMMAND to one of ${CNI_COMMANDS.join(', ')}`,
    );
  }
  const args = parseArgs(env.CNI_ARGS ?? '');
  const path = (env.CNI_PATH ?? '').split(':').filter((p) => p.length > 0);
  if (command === 'VERSION') {
    return { command, containerId: '', netns: '', ifname: '', args, path };
  }
  const need = (key: string): string => {
    const v = env[key];
    if (!v)
      throw new CniError(
        CNI_ERROR.invalidEnvironment,
        `${key} is not set`,
        `the runtime must set ${key} for ${command}`,
      );
    return v;
  };
  const containerId = need('CNI_CONTAINERID');
  const ifname = need('CNI_IFNAME');
  if (ifname.length > 15 || !/^[A-Za-z0-9_.-]+$/.test(ifname)) {
    throw new CniError(
      CNI_ERROR.invalidEnvironment,
      `CNI_IFNAME ${JSON.stringify(ifname)} is not a valid interface name`,
    );
  }
  // The spec lets DEL run without a namespace (the container may be gone): delete what we can.
  const netns = command === 'DEL' ? (env.CNI_NETNS ?? '') : need('CNI_NETNS');
  return { command: command as CniCommand, containerId, netns, ifname, args, path };
}

/** `K1=V1;K2=V2` (CNI_ARGS). Values may contain `=`. */
export function parseArgs(text: string): Map<string, string> {
  const args = new Map<string, string>();
  for (const part of text.split(';')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq <= 0)
      throw new CniError(
        CNI_ERROR.invalidEnvironment,
        `CNI_ARGS entry ${JSON.stringify(part)} is not KEY=VALUE`,
      );
    args.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return args;
}

/**
 * The workload identity: `SEGMESH_IDENTITY`, else the Kubernetes pod `namespace/name`. Without one the
 * workload's address is not sticky (undefined here).
 */
export function workloadIdentity(args: ReadonlyMap<string, string>): string | undefined {
  const explicit = args.get('SEGMESH_IDENTITY');
  if (explicit) return explicit;
  const ns = args.get('K8S_POD_NAMESPACE');
  const pod = args.get('K8S_POD_NAME');
  if (ns && pod) return `${ns}/${pod}`;
  return undefined;
}

/** The plugin's network configuration (stdin). */
export interface NetConf {
  readonly cniVersion: CniVersion;
  readonly name: string;
  readonly type: string;
  /** The tenant every workload of this network joins. */
  readonly tenant: string;
  /** The agent's API socket. */
  readonly agentSocket: string;
  /** Extra labels for the workloads of this network. */
  readonly labels: Readonly<Record<string, string>>;
  readonly prevResult?: CniResult;
}

export const DEFAULT_AGENT_SOCKET = '/run/segmesh/agent.sock';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses and validates stdin; errors are CniError 6 (decode), 1 (version) or 7 (config). */
export function parseNetConf(stdin: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(CNI_ERROR.decode, 'the network configuration on stdin is not JSON', String(e));
  }
  if (!isRecord(raw)) throw new CniError(CNI_ERROR.decode, 'the network configuration must be a JSON object');
  const version = raw.cniVersion;
  if (typeof version !== 'string' || !(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(
      CNI_ERROR.incompatibleVersion,
      `cniVersion ${JSON.stringify(version)} is not supported`,
      `use one of ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const str = (key: string, required: boolean): string | undefined => {
    const v = raw[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || v.length === 0) {
      throw new CniError(
        CNI_ERROR.invalidConfig,
        `network configuration key "${key}" must be a non-empty string`,
      );
    }
    return v;
  };
  const name = str('name', true)!;
  const type = str('type', true)!;
  const tenant = str('tenant', true)!;
  const agentSocket = str('agentSocket', false) ?? DEFAULT_AGENT_SOCKET;
  const labels: Record<string, string> = {};
  if (raw.labels !== undefined) {
    if (!isRecord(raw.labels))
      throw new CniError(CNI_ERROR.invalidConfig, '"labels" must map names to strings');
    for (const [k, v] of Object.entries(raw.labels)) {
      if (typeof v !== 'string') throw new CniError(CNI_ERROR.invalidConfig, `label ${k} must be a string`);
      labels[k] = v;
    }
  }
  const prevResult = raw.prevResult === undefined ? undefined : parseResult(raw.prevResult);
  return {
    cniVersion: version as CniVersion,
    name,
    type,
    tenant,
    agentSocket,
    labels,
    ...(prevResult ? { prevResult } : {}),
  };
}

/** A result in the 1.0.0 shape (converted to older shapes on output). */
export interface CniResult {
  readonly interfaces: ReadonlyArray<{ name: string; mac?: string; sandbox?: string; mtu?: number }>;
  readonly ips: ReadonlyArray<{ address: string; gateway?: string; interface?: number }>;
  readonly routes: ReadonlyArray<{ dst: string; gw?: string }>;
  readonly dns: Readonly<Record<string, unknown>>;
}

export function parseResult(value: unknown): CniResult {
  if (!isRecord(value)) throw new CniError(CNI_ERROR.decode, 'prevResult must be an object');
  const list = (key: string): Record<string, unknown>[] => {
    const v = value[key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every(isRecord))
      throw new CniError(CNI_ERROR.decode, `prevResult.${key} must be a list of objects`);
    return v;
  };
  return {
    interfaces: list('interfaces').map((i) => ({
      name: String(i.name ?? ''),
      ...(typeof i.mac === 'string' ? { mac: i.mac } : {}),
      ...(typeof i.sandbox === 'string' ? { sandbox: i.sandbox } : {}),
      ...(typeof i.mtu === 'number' ? { mtu: i.mtu } : {}),
    })),
    ips: list('ips').map((i) => ({
      address: String(i.address ?? ''),
      ...(typeof i.gateway === 'string' ? { gateway: i.gateway } : {}),
      ...(typeof i.interface === 'number' ? { interface: i.interface } : {}),
    })),
    routes: list('routes').map((r) => ({
      dst: String(r.dst ?? ''),
      ...(typeof r.gw === 'string' ? { gw: r.gw } : {}),
    })),
    dns: isRecord(value.dns) ? value.dns : {},
  };
}

/** The result as the requested version writes it (0.3.x/0.4.0 carry `version: "6"` per address). */
export function formatResult(version: CniVersion, result: CniResult): Record<string, unknown> {
  const base: Record<string, unknown> = {
    cniVersion: version,
    interfaces: result.interfaces,
    ips:
      version === '1.0.0'
        ? result.ips
        : result.ips.map((ip) => ({ version: ip.address.includes(':') ? '6' : '4', ...ip })),
    routes: result.routes,
    dns: result.dns,
  };
  return base;
}

export function versionInfo(): { cniVersion: string; supportedVersions: readonly string[] } {
  return { cniVersion: '1.0.0', supportedVersions: SUPPORTED_VERSIONS };
}

/** What CHECK finds wrong when comparing prevResult with the workload as it is. */
export function compareWithPrevious(
  prev: CniResult,
  actual: { address: string; ifname: string; sandbox: string },
): string[] {
  const problems: string[] = [];
  const addresses = prev.ips.map((i) => i.address.split('/')[0]);
  if (!addresses.includes(actual.address)) {
    problems.push(`address ${actual.address} is not in prevResult (${addresses.join(', ') || 'none'})`);
  }
  const iface = prev.interfaces.find((i) => i.name === actual.ifname && (i.sandbox ?? '') !== '');
  if (!iface) problems.push(`prevResult has no interface ${actual.ifname} in a sandbox`);
  else if (iface.sandbox !== actual.sandbox)
    problems.push(`interface ${actual.ifname} is in ${actual.sandbox}, not ${iface.sandbox}`);
  return problems;
}
