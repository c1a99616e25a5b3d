/**
 * The agent's configuration: one YAML file per host (kind AgentConfig) with host-local settings, plus
 * environment overrides for the few things operators change per host. Fabric-wide settings (tenants,
 * policies, keys) arrive signed through gossip.
 */
import { readFile } from 'node:fs/promises';
import { agentConfigIssues, ConfigError, type ConfigIssue, parseConfig } from '../config/load.ts';
import { type AgentConfigSpec, agentConfigSchema, durationMs } from '../config/schema.ts';
import { type Ipv6Address, type Ipv6Prefix, parseIpv6, parsePrefix } from '../srv6/address.ts';
import type { SidStructure } from '../srv6/sid.ts';
import { type KeyPath, keyPathText } from '../srv6/validate.ts';
import { loadMembership, type Membership } from './membership.ts';

/** Environment variables that override keys of the file (documented in docs/agent.md). */
export const ENV_OVERRIDES = {
  SEGMESH_HOST_NAME: 'host.name',
  SEGMESH_UNDERLAY_INTERFACE: 'host.underlay.interface',
  SEGMESH_UNDERLAY_ADDRESS: 'host.underlay.address',
  SEGMESH_LOCATOR: 'locator',
  SEGMESH_BOOTSTRAP: 'gossip.bootstrap',
  SEGMESH_STATE_DIR: 'stateDir',
  SEGMESH_API_SOCKET: 'api.socket',
  SEGMESH_METRICS_LISTEN: 'metrics.listen',
} as const;

export interface AgentSettings {
  readonly spec: AgentConfigSpec;
  /** The file the settings came from, for error messages. */
  readonly file?: string;
  readonly hostName: string;
  readonly underlayDevice: string;
  readonly underlay: Ipv6Address;
  readonly locator?: Ipv6Prefix;
  readonly locatorBlock?: Ipv6Prefix;
  readonly structure: SidStructure;
  readonly stateDir: string;
  readonly suspectAfterMs: number;
  readonly deadAfterMs: number;
  readonly tombstoneTtlMs: number;
  /** Who may join the gossip (checked and loaded with the file: see membership.ts). */
  readonly membership: Membership;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const k of keys.slice(0, -1)) {
    if (typeof node[k] !== 'object' || node[k] === null) node[k] = {};
    node = node[k] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

/** Applies SEGMESH_* overrides to the parsed YAML (before validation, so they are validated too). */
export function applyEnvOverrides(
  raw: Record<string, unknown>,
  env: Readonly<Record<string, string | undefined>>,
): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const [variable, path] of Object.entries(ENV_OVERRIDES)) {
    const value = env[variable];
    if (value === undefined || value === '') continue;
    setPath(out, path, variable === 'SEGMESH_BOOTSTRAP' ? value.split(',').map((s) => s.trim()) : value);
    if (variable === 'SEGMESH_LOCATOR') delete out.locatorBlock;
  }
  return out;
}

export function settingsFromSpec(
  spec: AgentConfigSpec,
  membership: Membership,
  file?: string,
): AgentSettings {
  return {
    membership,
    spec,
    ...(file !== undefined ? { file } : {}),
    hostName: spec.host.name,
    underlayDevice: spec.host.underlay.interface,
    underlay: parseIpv6(spec.host.underlay.address),
    ...(spec.locator ? { locator: parsePrefix(spec.locator) } : {}),
    ...(spec.locatorBlock ? { locatorBlock: parsePrefix(spec.locatorBlock) } : {}),
    structure: {
      locatorBlockLength: spec.sidStructure.block,
      locatorNodeLength: spec.sidStructure.node,
      functionLength: spec.sidStructure.function,
      argumentLength: spec.sidStructure.argument,
    },
    stateDir: spec.stateDir,
    suspectAfterMs: durationMs(spec.gossip.suspectAfter),
    deadAfterMs: durationMs(spec.gossip.deadAfter),
    tombstoneTtlMs: durationMs(spec.gossip.tombstoneTtl),
  };
}

/** Reads, overrides and validates the agent's configuration file. */
export async function loadAgentSettings(
  file: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<AgentSettings> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [
      {
        key: '',
        message: `cannot read it (${(e as Error).message}); pass --config with the agent's YAML file`,
      },
    ]);
  }
  // Validate the file as written first (errors with line numbers), then the overridden result.
  const parsed = parseConfig(text, file, ['AgentConfig']);
  if (parsed.kind !== 'AgentConfig') throw new Error('unreachable');
  const overridden = applyEnvOverrides(parsed.spec as unknown as Record<string, unknown>, env);
  const result = agentConfigSchema.safeParse(overridden);
  const issues: ConfigIssue[] = result.success
    ? agentConfigIssues(result.data).map((i) => ({
        key: keyPathText(i.path),
        message: i.message,
        fix: i.fix,
        ...(i.value !== undefined ? { value: i.value } : {}),
      }))
    : result.error.issues.map((i) => ({ key: keyPathText(i.path as KeyPath), message: i.message }));
  if (!result.success || issues.length > 0) {
    const variables = Object.entries(ENV_OVERRIDES)
      .filter(([v]) => env[v] !== undefined && env[v] !== '')
      .map(([v, key]) => `${v} (${key})`);
    throw new ConfigError(`${file} with ${variables.join(', ')}`, issues);
  }
  const membership = await loadMembership(result.data, (issues: ConfigIssue[]) => {
    throw new ConfigError(file, issues);
  });
  return settingsFromSpec(result.data, membership, file);
}
