/**
 * Parsing and validating configuration text, with errors that name the file, line, key, the bad value
 * and the fix. Pure: callers read files.
 */
import { isMap, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { parseIpv6, parsePrefix } from '../srv6/address.ts';
import type { FabricInput } from '../srv6/fabric.ts';
import { API_VERSION, type ConfigKind, type FabricSpec, SCHEMAS, type TopologySpec } from './schema.ts';

export interface ConfigIssue {
  /** Dotted key path, e.g. `hosts[1].underlay`. */
  readonly key: string;
  readonly message: string;
  readonly value?: unknown;
  readonly line?: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly file: string;
  readonly issues: readonly ConfigIssue[];
  constructor(file: string, issues: readonly ConfigIssue[]) {
    super(
      `${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'}:\n${issues
        .map(
          (i) =>
            `  ${i.line !== undefined ? `line ${i.line}: ` : ''}${i.key || '(top level)'}: ${i.message}${
              i.value !== undefined ? ` (got ${JSON.stringify(i.value)})` : ''
            }`,
        )
        .join('\n')}`,
    );
    this.file = file;
    this.issues = issues;
  }
}

function keyText(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = data;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

export type ParsedConfig =
  | { readonly kind: 'Fabric'; readonly spec: FabricSpec }
  | { readonly kind: 'Topology'; readonly spec: TopologySpec }
  | { readonly kind: 'AgentConfig'; readonly spec: z.infer<(typeof SCHEMAS)['AgentConfig']> }
  | { readonly kind: 'FabricPolicy'; readonly spec: z.infer<(typeof SCHEMAS)['FabricPolicy']> };

/** Parses YAML text of any of the three kinds (or only `expect`), validating it fully. */
export function parseConfig(text: string, file: string, expect?: readonly ConfigKind[]): ParsedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => ({
        key: '',
        message: `YAML syntax: ${e.message.split('\n')[0]}`,
        ...(e.linePos?.[0] ? { line: e.linePos[0].line } : {}),
      })),
    );
  }
  const data: unknown = doc.toJS();
  const lineOf = (path: readonly PropertyKey[]): number | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as unknown[], true) as
        | { range?: [number, number, number] }
        | undefined;
      if (node && typeof node === 'object' && node.range) return lineCounter.linePos(node.range[0]).line;
    }
    return undefined;
  };
  if (!isMap(doc.contents) || data === null || typeof data !== 'object') {
    throw new ConfigError(file, [
      { key: '', message: `expected a mapping with apiVersion: ${API_VERSION} and a kind` },
    ]);
  }
  const kind = (data as Record<string, unknown>).kind;
  const allowed = expect ?? (Object.keys(SCHEMAS) as ConfigKind[]);
  if (typeof kind !== 'string' || !allowed.includes(kind as ConfigKind)) {
    throw new ConfigError(file, [
      {
        key: 'kind',
        message: `set kind to ${allowed.join(' or ')}`,
        ...(kind !== undefined ? { value: kind } : {}),
        ...(lineOf(['kind']) !== undefined ? { line: lineOf(['kind'])! } : {}),
      },
    ]);
  }
  const schema = SCHEMAS[kind as ConfigKind];
  const result = schema.safeParse(data);
  if (!result.success) {
    throw new ConfigError(
      file,
      result.error.issues.map((issue) => {
        const value = valueAt(data, issue.path);
        const line = lineOf(issue.path);
        const message =
          issue.code === 'unrecognized_keys'
            ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}; check the spelling against docs/configuration.md`
            : issue.code === 'invalid_type' && value === undefined
              ? `missing: this key is required (${issue.expected})`
              : issue.code === 'invalid_type' &&
                  issue.expected === 'string' &&
                  value !== null &&
                  typeof value === 'object'
                ? 'expected text, got a mapping: quote IPv6 addresses inside [...] and {...}, where YAML reads a trailing "::" as a key'
                : issue.message;
        return {
          key: keyText(issue.path),
          message,
          ...(value !== undefined && typeof value !== 'object' ? { value } : {}),
          ...(line !== undefined ? { line } : {}),
        };
      }),
    );
  }
  return { kind, spec: result.data } as ParsedConfig;
}

/** The model's input for a Fabric or Topology description. */
export function fabricInputFromSpec(spec: FabricSpec | TopologySpec): FabricInput {
  return {
    structure: {
      locatorBlockLength: spec.sidStructure.block,
      locatorNodeLength: spec.sidStructure.node,
      functionLength: spec.sidStructure.function,
      argumentLength: spec.sidStructure.argument,
    },
    ...(spec.locatorBlock ? { locatorBlock: parsePrefix(spec.locatorBlock) } : {}),
    maxSegments: spec.maxSegments,
    underlayMtu: spec.underlayMtu,
    ...(spec.hmac ? { hmacKeyId: spec.hmac.keyId } : {}),
    hosts: spec.hosts.map((h) => ({
      name: h.name,
      underlay: parseIpv6(h.underlay),
      ...(h.locator ? { locator: parsePrefix(h.locator) } : {}),
      capabilities: { vrf: h.vrf, hmac: true },
    })),
    tenants: spec.tenants.map((t) => ({
      name: t.name,
      id: t.id,
      prefixes: t.prefixes.map(parsePrefix),
      ...(t.routeTarget ? { routeTarget: t.routeTarget } : {}),
      edgeMode: t.edgeMode,
      ipv4: t.ipv4,
    })),
    workloads: spec.workloads.map((w) => ({
      id: w.name,
      tenant: w.tenant,
      host: w.host,
      labels: w.labels,
      ...(w.address ? { address: parseIpv6(w.address) } : {}),
    })),
    networkFunctions: spec.networkFunctions.map((n) => ({
      name: n.name,
      tenant: n.tenant,
      host: n.host,
      mode: n.mode,
      ...(n.address ? { address: parseIpv6(n.address) } : {}),
    })),
    policies: spec.policies.map((p) => ({
      name: p.name,
      tenant: p.tenant,
      from: p.from,
      to: p.to,
      via: p.via,
    })),
    edges: spec.edges.map((e) => ({
      name: e.name,
      underlay: parseIpv6(e.underlay),
      locators: e.locators.map(parsePrefix),
    })),
    externalRoutes: spec.externalRoutes.map((r) => ({
      tenant: r.tenant,
      prefix: parsePrefix(r.prefix),
      sid: parseIpv6(r.sid),
      edge: r.edge,
    })),
  };
}
