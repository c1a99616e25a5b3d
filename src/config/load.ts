/**
 * Parsing and validating configuration text, with errors that name the file, line and column, the key
 * path, the bad value and the fix: YAML syntax, aliases, the schema (unknown keys at their own line),
 * then what the schema cannot see (cross references, overlaps, address kinds, keys). Pure: callers
 * read files.
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, visit } from 'yaml';
import type { z } from 'zod';
import { publicKeyTextProblem } from '../gossip/key-format.ts';
import { formatPrefix, type Ipv6Prefix, parseIpv6, parsePrefix, prefixesOverlap } from '../srv6/address.ts';
import type { FabricInput } from '../srv6/fabric.ts';
import {
  checkFabric,
  type FabricIssue,
  type KeyPath,
  keyPathText,
  prefixSpaceProblem,
  UNICAST_FIX,
  unicastProblem,
} from '../srv6/validate.ts';
import {
  type AgentConfigSpec,
  API_VERSION,
  type ConfigKind,
  type FabricPolicySpec,
  type FabricSpec,
  SCHEMAS,
  type TopologySpec,
} from './schema.ts';

export interface ConfigIssue {
  /** Key path, e.g. `hosts[1].underlay`; empty for the document as a whole. */
  readonly key: string;
  /** What is wrong. */
  readonly message: string;
  /** What to change, when the message does not already say it. */
  readonly fix?: string;
  readonly value?: unknown;
  readonly line?: number;
  readonly column?: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly file: string;
  readonly issues: readonly ConfigIssue[];
  constructor(file: string, issues: readonly ConfigIssue[]) {
    super(
      `${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'}:\n${issues
        .map((i) => `  ${formatIssue(file, i)}`)
        .join('\n')}`,
    );
    this.file = file;
    this.issues = issues;
  }
}

/** `file:line:column: key: message (got value); fix`, the form editors and terminals link. */
export function formatIssue(file: string, i: ConfigIssue): string {
  const where = i.line !== undefined ? `${file}:${i.line}:${i.column ?? 1}` : file;
  const got = i.value !== undefined ? ` (got ${JSON.stringify(i.value)})` : '';
  return `${where}: ${i.key || '(top level)'}: ${i.message}${got}${i.fix ? `; ${i.fix}` : ''}`;
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

interface Position {
  readonly line: number;
  readonly column: number;
}

type Segment = string | number;

/**
 * The key path of the innermost node at `offset` (for syntax errors and aliases). Past the end of a
 * scalar (where a broken next line starts) the path stays at the enclosing collection.
 */
function pathAt(node: unknown, offset: number, path: Segment[] = []): Segment[] {
  if (isMap(node)) {
    for (const pair of node.items) {
      const k = pair.key as Node | null;
      const v = pair.value as Node | null;
      const start = k?.range?.[0] ?? v?.range?.[0];
      const end = v?.range?.[2] ?? k?.range?.[2];
      if (start === undefined || end === undefined || offset < start || offset > end) continue;
      const name = isScalar(k) ? String(k.value) : '?';
      if (isMap(v) || isSeq(v)) return pathAt(v, offset, [...path, name]);
      if (k?.range && offset <= k.range[1]) return [...path, name];
      if (v?.range && offset >= v.range[0] && offset < v.range[1]) return [...path, name];
    }
  } else if (isSeq(node)) {
    for (const [i, item] of node.items.entries()) {
      const range = (item as Node | null)?.range;
      if (range && offset >= range[0] && offset <= range[2]) {
        return isMap(item) || isSeq(item) || offset < range[1] ? pathAt(item, offset, [...path, i]) : path;
      }
    }
  }
  return path;
}

/** What to do about a YAML syntax error, by its code (and for MISSING_CHAR, what is missing). */
function syntaxFix(code: string, message: string): string {
  if (code === 'MISSING_CHAR' && /indicator/.test(message))
    return 'line this key up with the other keys of its item, or start a new list item with "- "';
  if (code === 'MISSING_CHAR' && /quote/.test(message)) return 'close the quote opened before this point';
  if (code === 'MISSING_CHAR' || /end with an? [\]}]/.test(message))
    return 'close the [ or { opened before this point, or indent its continuation lines further';
  return (
    SYNTAX_FIX[code] ??
    'check the YAML syntax here (indentation, quotes, ": " after keys, "- " before list items)'
  );
}

/** What to do about each kind of YAML syntax error. */
const SYNTAX_FIX: Readonly<Record<string, string>> = {
  BAD_INDENT: 'indent the items of one mapping or list by the same number of spaces',
  TAB_AS_INDENT: 'indent with spaces, not tabs',
  DUPLICATE_KEY: 'a key appears twice in one mapping: remove or rename one',
  MULTIPLE_DOCS: 'keep one document per file: remove the "---" line and what follows, or split the file',
  BLOCK_AS_IMPLICIT_KEY: 'a key must fit on one line; put a ":" after it, or quote the text',
  MULTILINE_IMPLICIT_KEY: 'a key must fit on one line; put a ":" after it, or quote the text',
  UNEXPECTED_TOKEN: 'remove or quote the character here (quote text that starts with @ or ` or holds ": ")',
  BAD_SCALAR_START: 'quote the value: it starts with a character YAML reserves',
};

/** Parses YAML text of any of the kinds (or only `expect`), validating it fully. */
export function parseConfig(text: string, file: string, expect?: readonly ConfigKind[]): ParsedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const position = (offset: number): Position => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  const lines = text.split('\n');
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const at = position(e.pos[0]);
        const source = lines[at.line - 1]?.trim();
        return {
          key: keyPathText(pathAt(doc.contents, e.pos[0])),
          message: `YAML syntax: ${e.message.split('\n')[0]}`,
          fix: syntaxFix(e.code, e.message),
          ...(source ? { value: source } : {}),
          ...at,
        };
      }),
    );
  }
  const aliasIssues: ConfigIssue[] = [];
  visit(doc, {
    Alias(_, node) {
      if (node.resolve(doc) !== undefined) return;
      const at = node.range ? position(node.range[0]) : undefined;
      aliasIssues.push({
        key: node.range ? keyPathText(pathAt(doc.contents, node.range[0])) : '',
        message: `alias *${node.source} refers to no anchor &${node.source} before it`,
        fix: `define &${node.source} on a value before this point, or write the value out`,
        value: `*${node.source}`,
        ...at,
      });
    },
  });
  if (aliasIssues.length > 0) throw new ConfigError(file, aliasIssues);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    throw new ConfigError(file, [
      {
        key: '',
        message: `YAML aliases: ${e instanceof Error ? e.message : String(e)}`,
        fix: 'write the values out instead of expanding aliases that deeply',
      },
    ]);
  }

  /** Position of the deepest node that exists along `path` (a missing key points at its parent). */
  const locate = (path: readonly PropertyKey[]): Position | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as unknown[], true) as Node | undefined;
      if (node && typeof node === 'object' && node.range) return position(node.range[0]);
    }
    return undefined;
  };
  /** Position of the key `key` itself in the mapping at `path`. */
  const locateKey = (path: readonly PropertyKey[], key: string): Position | undefined => {
    const map = path.length === 0 ? doc.contents : doc.getIn(path as unknown[], true);
    if (isMap(map)) {
      for (const pair of map.items) {
        const k = pair.key as Node | null;
        if (isScalar(k) && String(k.value) === key && k.range) return position(k.range[0]);
      }
    }
    return locate(path);
  };

  if (!isMap(doc.contents) || data === null || typeof data !== 'object') {
    throw new ConfigError(file, [
      {
        key: '',
        message: 'the file is not a YAML mapping',
        fix: `start it with apiVersion: ${API_VERSION} and a kind`,
        line: 1,
        column: 1,
      },
    ]);
  }
  const kind = (data as Record<string, unknown>).kind;
  const allowed = expect ?? (Object.keys(SCHEMAS) as ConfigKind[]);
  if (typeof kind !== 'string' || !allowed.includes(kind as ConfigKind)) {
    throw new ConfigError(file, [
      {
        key: 'kind',
        message: kind === undefined ? 'missing' : 'not a kind this command reads',
        fix: `set kind to ${allowed.join(' or ')}`,
        ...(kind !== undefined ? { value: kind } : {}),
        ...(locate(['kind']) ?? { line: 1, column: 1 }),
      },
    ]);
  }
  const schema = SCHEMAS[kind as ConfigKind];
  const result = schema.safeParse(data);
  if (!result.success) {
    throw new ConfigError(
      file,
      result.error.issues.flatMap((issue): ConfigIssue[] => {
        if (issue.code === 'unrecognized_keys') {
          // One issue per key, at the key's own line.
          return issue.keys.map((k) => ({
            key: keyPathText([...(issue.path as Segment[]), k]),
            message: 'unknown key',
            fix: 'check the spelling against docs/configuration.md',
            ...locateKey(issue.path, k),
          }));
        }
        const value = valueAt(data, issue.path);
        const message =
          issue.code === 'invalid_type' && value === undefined
            ? `missing: this key is required (${issue.expected})`
            : issue.code === 'invalid_type' &&
                issue.expected === 'string' &&
                value !== null &&
                typeof value === 'object'
              ? 'expected text, got a mapping: quote IPv6 addresses inside [...] and {...}, where YAML reads a trailing "::" as a key'
              : issue.message;
        return [
          {
            key: keyPathText(issue.path as Segment[]),
            message,
            ...(value !== undefined && typeof value !== 'object' ? { value } : {}),
            ...locate(issue.path),
          },
        ];
      }),
    );
  }
  const parsed = { kind, spec: result.data } as ParsedConfig;
  const issues = semanticIssues(parsed)
    .map((i): ConfigIssue => {
      // The value as written (`::ffff:1.2.3.4`), not as the model formats it (`::ffff:102:304`).
      const written = valueAt(data, i.path);
      const value = typeof written === 'string' || typeof written === 'number' ? written : i.value;
      return {
        key: keyPathText(i.path),
        message: i.message,
        fix: i.fix,
        ...(value !== undefined ? { value } : {}),
        ...locate(i.path),
      };
    })
    .sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  if (issues.length > 0) throw new ConfigError(file, issues);
  return parsed;
}

/** What the schema cannot see: references, overlaps, address kinds, keys. */
export function semanticIssues(parsed: ParsedConfig): FabricIssue[] {
  switch (parsed.kind) {
    case 'Fabric':
      return [...checkFabric(fabricInputFromSpec(parsed.spec)).issues, ...selectorIssues(parsed.spec)];
    case 'Topology':
      return [
        ...checkFabric(fabricInputFromSpec(parsed.spec)).issues,
        ...selectorIssues(parsed.spec),
        ...topologyIssues(parsed.spec),
      ];
    case 'AgentConfig':
      return agentConfigIssues(parsed.spec);
    case 'FabricPolicy':
      return checkFabric({ hosts: [], tenants: tenantInputs(parsed.spec.tenants) }).issues;
  }
}

/** Selectors that name workloads name ones the file defines, of the policy's tenant. */
function selectorIssues(spec: FabricSpec | TopologySpec): FabricIssue[] {
  const issues: FabricIssue[] = [];
  const tenantOf = new Map(spec.workloads.map((w) => [w.name, w.tenant]));
  for (const [i, p] of spec.policies.entries()) {
    for (const side of ['from', 'to'] as const) {
      for (const [j, name] of (p[side].workloads ?? []).entries()) {
        const tenant = tenantOf.get(name);
        if (tenant === p.tenant) continue;
        issues.push({
          path: ['policies', i, side, 'workloads', j],
          message:
            tenant === undefined
              ? `policy ${p.name} selects workload ${name}, which the file does not define`
              : `policy ${p.name} of tenant ${p.tenant} selects workload ${name} of tenant ${tenant}`,
          fix: `name a workload of tenant ${p.tenant} (workloads[].name), or select by labels`,
          value: name,
        });
      }
    }
  }
  return issues;
}

/** A lab's edge routers and external clients: unique names, known tenants and attachments, sane addresses. */
function topologyIssues(spec: TopologySpec): FabricIssue[] {
  const issues: FabricIssue[] = [];
  const names = new Map<string, string>(spec.hosts.map((h, i) => [h.name, `hosts[${i}]`]));
  const tenants = new Map(spec.tenants.map((t) => [t.name, t]));
  const tenantPrefixes = spec.tenants.flatMap((t) =>
    t.prefixes.map((p) => ({ t: t.name, p: parsePrefix(p) })),
  );
  const edgeRouters = new Set(spec.nodes.filter((n) => n.kind === 'edge-router').map((n) => n.name));
  for (const [i, n] of spec.nodes.entries()) {
    const other = names.get(n.name);
    if (other !== undefined)
      issues.push({
        path: ['nodes', i, 'name'],
        message: `node name ${n.name} is also used by ${other}`,
        fix: 'give every host and node its own name (it names the container)',
        value: n.name,
      });
    else names.set(n.name, `nodes[${i}]`);
    const address = n.kind === 'edge-router' ? n.underlay : n.address;
    const why = unicastProblem(parseIpv6(address));
    if (why)
      issues.push({
        path: ['nodes', i, n.kind === 'edge-router' ? 'underlay' : 'address'],
        message: `${n.kind} ${n.name} address ${address} ${why}`,
        fix: UNICAST_FIX,
        value: address,
      });
    if (n.kind === 'edge-router') {
      if (!tenants.has(n.tenant))
        issues.push({
          path: ['nodes', i, 'tenant'],
          message: `edge-router ${n.name} names unknown tenant ${n.tenant}`,
          fix: `use one of: ${[...tenants.keys()].join(', ') || '(define a tenant first)'}`,
          value: n.tenant,
        });
      const locator = parsePrefix(n.locator);
      issues.push(
        ...prefixIssues(['nodes', i, 'locator'], `edge-router ${n.name} locator`, locator, tenantPrefixes),
      );
    } else if (!edgeRouters.has(n.attach)) {
      issues.push({
        path: ['nodes', i, 'attach'],
        message: `external-client ${n.name} attaches to ${n.attach}, which is not an edge-router node`,
        fix: `attach it to one of: ${[...edgeRouters].join(', ') || '(define an edge-router node first)'}`,
        value: n.attach,
      });
    }
  }
  return issues;
}

/** A SID prefix (locator) in unicast space and outside every tenant prefix. */
function prefixIssues(
  path: KeyPath,
  what: string,
  prefix: Ipv6Prefix,
  tenantPrefixes: readonly { t: string; p: Ipv6Prefix }[],
): FabricIssue[] {
  const issues: FabricIssue[] = [];
  const text = formatPrefix(prefix);
  const why = prefixSpaceProblem(prefix);
  if (why)
    issues.push({
      path,
      message: `${what} ${text} ${why}`,
      fix: 'use a prefix inside fc00::/7 (or your global space)',
      value: text,
    });
  for (const { t, p } of tenantPrefixes) {
    if (prefixesOverlap(p, prefix))
      issues.push({
        path,
        message: `${what} ${text} overlaps tenant ${t} prefix ${formatPrefix(p)}: workloads would get addresses in SID space`,
        fix: 'keep SID space and tenant prefixes apart',
        value: text,
      });
  }
  return issues;
}

/** An agent's own addresses, locator and keys. */
export function agentConfigIssues(spec: AgentConfigSpec): FabricIssue[] {
  const issues: FabricIssue[] = [];
  const address = spec.host.underlay.address;
  const why = unicastProblem(parseIpv6(address));
  if (why)
    issues.push({
      path: ['host', 'underlay', 'address'],
      message: `underlay address ${address} ${why}; routes to this host would go nowhere`,
      fix: UNICAST_FIX,
      value: address,
    });
  const s = spec.sidStructure;
  if (spec.locator !== undefined) {
    const locator = parsePrefix(spec.locator);
    issues.push(...prefixIssues(['locator'], 'locator', locator, []));
    if (locator.length !== s.block + s.node)
      issues.push({
        path: ['locator'],
        message: `locator ${spec.locator} is a /${locator.length}, but sidStructure (block ${s.block} + node ${s.node}) makes locators /${s.block + s.node}`,
        fix: `write a /${s.block + s.node} or change sidStructure`,
        value: spec.locator,
      });
  }
  if (spec.locatorBlock !== undefined) {
    const block = parsePrefix(spec.locatorBlock);
    issues.push(...prefixIssues(['locatorBlock'], 'locator block', block, []));
    if (block.length !== s.block)
      issues.push({
        path: ['locatorBlock'],
        message: `locator block ${spec.locatorBlock} is a /${block.length}, but sidStructure.block is ${s.block}`,
        fix: `write a /${s.block} or set sidStructure.block: ${block.length}`,
        value: spec.locatorBlock,
      });
  }
  for (const [i, key] of spec.operatorKeys.entries()) {
    const problem = publicKeyTextProblem(key);
    if (problem)
      issues.push({
        path: ['operatorKeys', i],
        message: `operator key ${problem}`,
        fix: 'paste the public key line that segmesh keygen printed (base64, 48 characters)',
        value: key.length > 60 ? `${key.slice(0, 57)}...` : key,
      });
  }
  if (spec.operatorKeys.length > 1)
    issues.push({
      path: ['operatorKeys', 1],
      message: `${spec.operatorKeys.length} operator keys listed; the agent trusts exactly one`,
      fix: 'list only the key that signs fabric policy (segmesh policy apply --operator-key)',
    });
  // An option the configured backend cannot honour is refused here, naming the backend (choose.ts
  // decides `auto` at start, on the kernel it finds).
  if (spec.dataplane.hmac && spec.dataplane.backend === 'ebpf')
    issues.push({
      path: ['dataplane', 'hmac'],
      message:
        'dataplane.hmac is set, but the ebpf backend has no SRH HMAC: it can neither sign encapsulations nor check arriving SRHs',
      fix: 'set dataplane.backend: kernel (or auto) on a kernel with CONFIG_IPV6_SEG6_HMAC, or remove dataplane.hmac',
      value: 'ebpf',
    });
  for (const [i, peer] of (spec.bgp?.peers ?? []).entries()) {
    for (const [j, l] of peer.locators.entries())
      issues.push(
        ...prefixIssues(
          ['bgp', 'peers', i, 'locators', j],
          `BGP peer ${peer.address} locator`,
          parsePrefix(l),
          [],
        ),
      );
  }
  return issues;
}

function tenantInputs(tenants: FabricPolicySpec['tenants'] | FabricSpec['tenants']): FabricInput['tenants'] {
  return tenants.map((t) => ({
    name: t.name,
    id: t.id,
    prefixes: t.prefixes.map(parsePrefix),
    ...(t.routeTarget ? { routeTarget: t.routeTarget } : {}),
    edgeMode: t.edgeMode,
    ipv4: t.ipv4,
  }));
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
    tenants: tenantInputs(spec.tenants),
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
