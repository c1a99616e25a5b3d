/**
 * Validation of a fabric description before anything is steered: every problem found (not only the
 * first), each with the key path it sits at in the YAML formats (`hosts[1].underlay`), the bad value,
 * what is wrong and the fix. Pure: the config loader turns key paths into file, line and column, the
 * model (`buildFabricView`) throws them.
 *
 * The rules (docs/configuration.md, "Validation"): names, ids, route targets and addresses unique;
 * references resolve; underlay and network function addresses are global (2000::/3) or unique-local
 * (fc00::/7) unicast; SID space (the locator block, host and edge locators) and tenant prefixes are
 * disjoint, and neither contains an underlay or network function address; a network function's
 * address is outside every workload prefix; chains fit maxSegments.
 */
import {
  formatIpv6,
  formatPrefix,
  type Ipv6Address,
  type Ipv6Prefix,
  makePrefix,
  parsePrefix,
  prefixContains,
  prefixCovers,
  prefixesOverlap,
} from './address.ts';
import { LINUX_WITHOUT_VRF, unsupportedReason } from './behavior.ts';
import type { FabricInput } from './fabric.ts';
import { deriveLocators, LocatorError } from './locator.ts';
import {
  formatStructure,
  locatorLength,
  type SidStructure,
  SidStructureError,
  validateStructure,
} from './sid.ts';
import { MAX_TENANT_ID } from './tables.ts';

/** A key path as in the YAML formats: `['hosts', 1, 'underlay']` is `hosts[1].underlay`. */
export type KeyPath = readonly (string | number)[];

export interface FabricIssue {
  readonly path: KeyPath;
  /** What is wrong, naming the objects involved. */
  readonly message: string;
  /** What to change. */
  readonly fix: string;
  /** The offending value, as written. */
  readonly value?: string;
}

export function keyPathText(path: KeyPath): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

const GLOBAL_UNICAST = parsePrefix('2000::/3');
const UNIQUE_LOCAL = parsePrefix('fc00::/7');
const SPECIAL: readonly { prefix: Ipv6Prefix; what: string }[] = [
  { prefix: parsePrefix('::/128'), what: 'the unspecified address ::, which names no host' },
  { prefix: parsePrefix('::1/128'), what: 'the loopback address ::1, which never leaves its host' },
  { prefix: parsePrefix('::ffff:0:0/96'), what: 'an IPv4-mapped address (::ffff:a.b.c.d), which is IPv4' },
  { prefix: parsePrefix('64:ff9b::/96'), what: 'a NAT64 address (64:ff9b::/96), which is IPv4' },
  { prefix: parsePrefix('ff00::/8'), what: 'a multicast address (ff00::/8)' },
  { prefix: parsePrefix('fe80::/10'), what: 'a link-local address (fe80::/10), valid on one link only' },
  { prefix: parsePrefix('fec0::/10'), what: 'a site-local address (fec0::/10, deprecated by RFC 3879)' },
];
export const UNICAST_FIX = 'use a global (2000::/3) or unique-local (fc00::/7) unicast address';

/** Why `address` cannot be an underlay or on-link address (global or unique-local unicast), or undefined. */
export function unicastProblem(address: Ipv6Address): string | undefined {
  if (prefixContains(GLOBAL_UNICAST, address) || prefixContains(UNIQUE_LOCAL, address)) return undefined;
  const special = SPECIAL.find((s) => prefixContains(s.prefix, address));
  return special
    ? `is ${special.what}`
    : 'is outside global unicast (2000::/3) and unique-local (fc00::/7) space';
}

/** Why `prefix` cannot hold SIDs or workload addresses (it must lie in unicast space), or undefined. */
export function prefixSpaceProblem(prefix: Ipv6Prefix): string | undefined {
  if (prefixCovers(GLOBAL_UNICAST, prefix) || prefixCovers(UNIQUE_LOCAL, prefix)) return undefined;
  const special = SPECIAL.find((s) => prefixesOverlap(s.prefix, prefix));
  return special
    ? `overlaps ${special.what}`
    : 'is not inside global unicast (2000::/3) or unique-local (fc00::/7) space';
}

/** A region of SID space: the locator block (given or implied by a locator) or an edge's locator. */
interface SidSpace {
  readonly prefix: Ipv6Prefix;
  readonly what: string;
}

export interface FabricCheck {
  readonly issues: FabricIssue[];
  /** Every host's locator (given or derived), when the hosts and the block allow computing them. */
  readonly locators?: Map<string, Ipv6Prefix>;
}

/** Every problem of `input`, in file order within each kind of object. */
export function checkFabric(input: FabricInput): FabricCheck {
  const issues: FabricIssue[] = [];
  const issue = (path: KeyPath, message: string, fix: string, value?: string) =>
    issues.push({ path, message, fix, ...(value !== undefined ? { value } : {}) });

  // Structure, segments, MTU.
  const structure: SidStructure = input.structure ?? {
    locatorBlockLength: 32,
    locatorNodeLength: 16,
    functionLength: 16,
    argumentLength: 0,
  };
  try {
    validateStructure(structure);
  } catch (e) {
    if (!(e instanceof SidStructureError)) throw e;
    issue(['sidStructure'], e.message, 'fix the bit lengths of block, node, function and argument');
    return { issues };
  }
  const maxSegments = input.maxSegments ?? 4;
  if (!Number.isInteger(maxSegments) || maxSegments < 1 || maxSegments > 16) {
    issue(['maxSegments'], `maxSegments ${maxSegments} is not in 1..16`, 'set maxSegments to 1..16');
  }
  const underlayMtu = input.underlayMtu ?? 1500;
  const hmac = input.hmacKeyId !== undefined;
  const linkMtu = underlayMtu - 40 - (8 + 16 * maxSegments) - (hmac ? 40 : 0);
  if (linkMtu < 1280) {
    issue(
      ['underlayMtu'],
      `with underlay MTU ${underlayMtu}, ${maxSegments} segments${hmac ? ' and HMAC' : ''} leave workloads ${linkMtu} bytes, less than IPv6's minimum MTU of 1280`,
      'raise underlayMtu or lower maxSegments',
      String(underlayMtu),
    );
  }

  // HMAC keys: ids the TLV can name, secrets the kernel takes, one key per id.
  const keyIds = new Set<number>();
  (input.hmacKeys ?? []).forEach((k, i) => {
    if (!Number.isInteger(k.keyId) || k.keyId < 1 || k.keyId > 0xffffffff)
      issue(
        ['hmacKeys', i, 'keyId'],
        `HMAC key id ${k.keyId} is not in 1..4294967295`,
        'publish the key under an id in 1..4294967295',
        String(k.keyId),
      );
    else if (keyIds.has(k.keyId))
      issue(
        ['hmacKeys', i, 'keyId'],
        `HMAC key id ${k.keyId} is given twice`,
        'give each key its own id',
        String(k.keyId),
      );
    keyIds.add(k.keyId);
    if (k.secret.length < 1 || k.secret.length > 64)
      issue(
        ['hmacKeys', i, 'secret'],
        `HMAC key ${k.keyId} has a ${k.secret.length}-byte secret; the kernel takes 1..64 bytes`,
        'publish a secret of 1 to 64 bytes',
      );
  });

  // Names of every kind are unique.
  const firstIndex = <T>(
    items: readonly T[],
    key: (t: T) => string,
    kind: string,
    field: string,
    what: string,
  ) => {
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      const k = key(item);
      const first = seen.get(k);
      if (first === undefined) seen.set(k, i);
      else
        issue(
          [kind, i, field],
          `${what} ${k} is defined twice (also ${kind}[${first}])`,
          `give each ${what} its own ${field} or remove one`,
          k,
        );
    });
    return seen;
  };
  const hostIndex = firstIndex(input.hosts, (h) => h.name, 'hosts', 'name', 'host');
  const tenantIndex = firstIndex(input.tenants, (t) => t.name, 'tenants', 'name', 'tenant');
  const nfIndex = firstIndex(
    input.networkFunctions ?? [],
    (n) => n.name,
    'networkFunctions',
    'name',
    'network function',
  );
  const edgeIndex = firstIndex(input.edges ?? [], (e) => e.name, 'edges', 'name', 'edge');
  firstIndex(input.workloads ?? [], (w) => w.id, 'workloads', 'name', 'workload');
  firstIndex(input.policies ?? [], (p) => p.name, 'policies', 'name', 'policy');

  // SID space: the locator block and host locators.
  const block = input.locatorBlock;
  const spaces: SidSpace[] = [];
  let locatorsOk = true;
  if (block) {
    const why = prefixSpaceProblem(block);
    if (why)
      issue(
        ['locatorBlock'],
        `locator block ${formatPrefix(block)} ${why}`,
        'use a block inside fc00::/7 (or your global space)',
        formatPrefix(block),
      );
    if (block.length !== structure.locatorBlockLength) {
      locatorsOk = false;
      issue(
        ['locatorBlock'],
        `locator block ${formatPrefix(block)} is a /${block.length}, but SID structure ${formatStructure(structure)} has a ${structure.locatorBlockLength}-bit block`,
        `make them agree: a /${structure.locatorBlockLength} block or sidStructure.block: ${block.length}`,
        formatPrefix(block),
      );
    }
    spaces.push({ prefix: block, what: `the SID block ${formatPrefix(block)} (locatorBlock)` });
  }
  const fixed = new Map<string, Ipv6Prefix>();
  const implied = new Map<bigint, SidSpace>();
  input.hosts.forEach((h, i) => {
    if (hostIndex.get(h.name) !== i) return;
    if (!h.locator) {
      if (!block) {
        locatorsOk = false;
        issue(
          ['hosts', i],
          `host ${h.name} has no locator and the fabric has no locatorBlock to derive one from`,
          'give the host a locator or the fabric a locatorBlock',
        );
      }
      return;
    }
    const text = formatPrefix(h.locator);
    if (h.locator.length !== locatorLength(structure)) {
      locatorsOk = false;
      issue(
        ['hosts', i, 'locator'],
        `host ${h.name} locator ${text} is a /${h.locator.length}, but SID structure ${formatStructure(structure)} makes locators /${locatorLength(structure)}`,
        `write a /${locatorLength(structure)} or change sidStructure`,
        text,
      );
      return;
    }
    const why = prefixSpaceProblem(h.locator);
    if (why)
      issue(
        ['hosts', i, 'locator'],
        `host ${h.name} locator ${text} ${why}`,
        'use a locator inside fc00::/7 (or your global space)',
        text,
      );
    if (block && !prefixCovers(block, h.locator)) {
      locatorsOk = false;
      issue(
        ['hosts', i, 'locator'],
        `host ${h.name} locator ${text} is outside the locator block ${formatPrefix(block)}`,
        'pick a locator inside locatorBlock, or drop it to derive one',
        text,
      );
    }
    if (!block) {
      const implicit = makePrefix(h.locator.address, structure.locatorBlockLength);
      if (!implied.has(implicit.address))
        implied.set(implicit.address, {
          prefix: implicit,
          what: `the SID block ${formatPrefix(implicit)} of host ${h.name}'s locator (its first ${structure.locatorBlockLength} bits, sidStructure.block)`,
        });
    }
    fixed.set(h.name, h.locator);
  });
  spaces.push(...implied.values());
  // Locators of one length overlap only when equal, so sorting makes overlap a neighbour relation.
  const sortedFixed = [...fixed].map(([host, locator]) => ({ host, locator, i: hostIndex.get(host)! }));
  sortedFixed.sort((a, b) =>
    a.locator.address < b.locator.address ? -1 : a.locator.address > b.locator.address ? 1 : a.i - b.i,
  );
  for (let k = 1; k < sortedFixed.length; k++) {
    const a = sortedFixed[k - 1]!;
    const b = sortedFixed[k]!;
    if (a.locator.address === b.locator.address) {
      locatorsOk = false;
      const [first, second] = a.i < b.i ? [a, b] : [b, a];
      issue(
        ['hosts', second.i, 'locator'],
        `locators overlap: host ${second.host} has ${formatPrefix(second.locator)}, as has host ${first.host}`,
        'give each host its own locator',
        formatPrefix(second.locator),
      );
    }
  }
  let locators: Map<string, Ipv6Prefix> | undefined;
  if (locatorsOk) {
    const names = [...hostIndex.keys()].sort();
    try {
      locators = block ? deriveLocators(block, structure, names, fixed) : fixed;
    } catch (e) {
      if (!(e instanceof LocatorError)) throw e;
      issue(
        ['locatorBlock'],
        e.message,
        'use a larger block (more node bits) or fewer hosts',
        block ? formatPrefix(block) : undefined,
      );
    }
  }

  // Edges: their locators are SID space too.
  const edgeLocators: { prefix: Ipv6Prefix; edge: string; path: KeyPath }[] = [];
  (input.edges ?? []).forEach((e, i) => {
    if (edgeIndex.get(e.name) !== i) return;
    e.locators.forEach((l, j) => {
      const text = formatPrefix(l);
      const why = prefixSpaceProblem(l);
      if (why)
        issue(
          ['edges', i, 'locators', j],
          `edge ${e.name} locator ${text} ${why}`,
          'use the locator the edge router really has',
          text,
        );
      const other = edgeLocators.find((o) => prefixesOverlap(o.prefix, l));
      if (other) {
        issue(
          ['edges', i, 'locators', j],
          `edge ${e.name} locator ${text} overlaps edge ${other.edge} locator ${formatPrefix(other.prefix)}`,
          'give each edge its own locator',
          text,
        );
      }
      for (const [host, hl] of locators ?? []) {
        if (prefixesOverlap(l, hl)) {
          issue(
            ['edges', i, 'locators', j],
            `edge ${e.name} locator ${text} overlaps host ${host} locator ${formatPrefix(hl)}${fixed.has(host) ? '' : ' (derived from locatorBlock)'}`,
            fixed.has(host)
              ? "change the edge's or the host's locator"
              : 'give the host a fixed locator elsewhere in the block, or move the edge locator out of the block',
            text,
          );
        }
      }
      edgeLocators.push({ prefix: l, edge: e.name, path: ['edges', i, 'locators', j] });
    });
  });
  for (const l of edgeLocators)
    spaces.push({ prefix: l.prefix, what: `edge ${l.edge} locator ${formatPrefix(l.prefix)}` });
  const inSidSpace = (a: Ipv6Address) => spaces.find((s) => prefixContains(s.prefix, a));

  // Tenants: ids, route targets and prefixes of their own, outside SID space.
  const tenantPrefixes: { prefix: Ipv6Prefix; tenant: string; path: KeyPath }[] = [];
  const ids = new Map<number, string>();
  const targets = new Map<string, string>();
  input.tenants.forEach((t, i) => {
    if (tenantIndex.get(t.name) !== i) return;
    if (!Number.isInteger(t.id) || t.id < 1 || t.id > MAX_TENANT_ID) {
      issue(
        ['tenants', i, 'id'],
        `tenant ${t.name} has id ${t.id}`,
        `use an integer in 1..${MAX_TENANT_ID}`,
        String(t.id),
      );
    } else if (ids.has(t.id)) {
      issue(
        ['tenants', i, 'id'],
        `tenants ${ids.get(t.id)} and ${t.name} both have id ${t.id}: they would share routing tables`,
        'give each tenant its own id',
        String(t.id),
      );
    } else ids.set(t.id, t.name);
    if (t.routeTarget !== undefined) {
      const other = targets.get(t.routeTarget);
      if (other !== undefined)
        issue(
          ['tenants', i, 'routeTarget'],
          `tenants ${other} and ${t.name} both use route target ${t.routeTarget}: each would import the other's routes`,
          'give each tenant its own route target',
          t.routeTarget,
        );
      else targets.set(t.routeTarget, t.name);
    }
    if (t.prefixes.length === 0)
      issue(
        ['tenants', i, 'prefixes'],
        `tenant ${t.name} has no prefix`,
        'give it at least one prefix for its workloads',
      );
    t.prefixes.forEach((p, j) => {
      const path: KeyPath = ['tenants', i, 'prefixes', j];
      const text = formatPrefix(p);
      const why = prefixSpaceProblem(p);
      if (why)
        issue(
          path,
          `tenant ${t.name} prefix ${text} ${why}`,
          'use a prefix inside 2000::/3 or fc00::/7',
          text,
        );
      // Every locator lies in a SID block (given or implied), so the blocks and edge locators suffice.
      for (const s of spaces) {
        if (prefixesOverlap(s.prefix, p))
          issue(
            path,
            `tenant ${t.name} prefix ${text} overlaps ${s.what}: workloads would get addresses in SID space`,
            'move the tenant prefix out of the SID block and every locator (or the locators out of it)',
            text,
          );
      }
      tenantPrefixes.push({ prefix: p, tenant: t.name, path });
    });
  });
  const sortedTenant = [...tenantPrefixes].sort((a, b) =>
    a.prefix.address < b.prefix.address
      ? -1
      : a.prefix.address > b.prefix.address
        ? 1
        : a.prefix.length - b.prefix.length,
  );
  // After sorting by start, a prefix overlaps an earlier one only if the widest still open contains it.
  let open: (typeof sortedTenant)[number] | undefined;
  for (const p of sortedTenant) {
    if (open && prefixesOverlap(open.prefix, p.prefix)) {
      const [first, second] = comparePaths(open.path, p.path) < 0 ? [open, p] : [p, open];
      issue(
        second.path,
        `tenant prefixes overlap: ${second.tenant} ${formatPrefix(second.prefix)} and ${first.tenant} ${formatPrefix(first.prefix)} (${keyPathText(first.path)})`,
        'give each tenant disjoint prefixes: an opaque address names one workload of one tenant',
        formatPrefix(second.prefix),
      );
    }
    if (!open || !prefixCovers(open.prefix, p.prefix)) open = p;
  }
  const inTenant = (a: Ipv6Address) => tenantPrefixes.find((t) => prefixContains(t.prefix, a));

  // Underlay addresses: unicast, unique, outside SID space and tenant prefixes.
  const underlays = new Map<Ipv6Address, string>();
  const checkUnderlay = (path: KeyPath, who: string, a: Ipv6Address) => {
    const text = formatIpv6(a);
    const why = unicastProblem(a);
    if (why)
      issue(path, `${who} underlay address ${text} ${why}; routes to it would go nowhere`, UNICAST_FIX, text);
    const other = underlays.get(a);
    if (other !== undefined)
      issue(
        path,
        `${who} and ${other} share underlay address ${text}`,
        'give each its own underlay address',
        text,
      );
    else underlays.set(a, who);
    const space = inSidSpace(a);
    if (space)
      issue(
        path,
        `${who} underlay address ${text} lies in ${space.what}`,
        'number the underlay outside SID space',
        text,
      );
    const tenant = inTenant(a);
    if (tenant)
      issue(
        path,
        `${who} underlay address ${text} lies in tenant ${tenant.tenant} prefix ${formatPrefix(tenant.prefix)}`,
        'number the underlay outside tenant prefixes',
        text,
      );
  };
  input.hosts.forEach((h, i) => {
    if (hostIndex.get(h.name) === i) checkUnderlay(['hosts', i, 'underlay'], `host ${h.name}`, h.underlay);
  });
  (input.edges ?? []).forEach((e, i) => {
    if (edgeIndex.get(e.name) === i) checkUnderlay(['edges', i, 'underlay'], `edge ${e.name}`, e.underlay);
  });

  const hostCapabilities = new Map(input.hosts.map((h) => [h.name, h.capabilities]));
  const unknown = (
    path: KeyPath,
    what: string,
    kind: 'host' | 'tenant' | 'network function' | 'edge',
    name: string,
    known: Iterable<string>,
  ) => {
    const list = [...known];
    issue(
      path,
      `${what} names unknown ${kind} ${name}`,
      list.length === 0
        ? `define the ${kind} first`
        : `use one of: ${list.slice(0, 10).join(', ')}${list.length > 10 ? ', ...' : ''}`,
      name,
    );
  };

  // Network functions: known host and tenant; an on-link address of their own.
  const nfAddresses = new Map<Ipv6Address, string>();
  (input.networkFunctions ?? []).forEach((n, i) => {
    if (nfIndex.get(n.name) !== i) return;
    if (!hostIndex.has(n.host))
      unknown(
        ['networkFunctions', i, 'host'],
        `network function ${n.name}`,
        'host',
        n.host,
        hostIndex.keys(),
      );
    if (!tenantIndex.has(n.tenant))
      unknown(
        ['networkFunctions', i, 'tenant'],
        `network function ${n.name}`,
        'tenant',
        n.tenant,
        tenantIndex.keys(),
      );
    if (n.address === undefined) {
      if (n.mode === 'sr-unaware')
        issue(
          ['networkFunctions', i],
          `SR-unaware network function ${n.name} has no address`,
          'give its on-link address (End.DX6 delivers to it)',
        );
      return;
    }
    const path: KeyPath = ['networkFunctions', i, 'address'];
    const text = formatIpv6(n.address);
    const why = unicastProblem(n.address);
    if (why) issue(path, `network function ${n.name} address ${text} ${why}`, UNICAST_FIX, text);
    const tenant = inTenant(n.address);
    if (tenant)
      issue(
        path,
        `network function ${n.name} address ${text} lies in tenant ${tenant.tenant}'s workload prefix ${formatPrefix(tenant.prefix)}: traffic for it would be steered to a workload`,
        'number network functions outside every tenant prefix (their link is their own)',
        text,
      );
    const space = inSidSpace(n.address);
    if (space)
      issue(
        path,
        `network function ${n.name} address ${text} lies in ${space.what}`,
        'number network functions outside SID space',
        text,
      );
    const other = nfAddresses.get(n.address);
    if (other !== undefined)
      issue(
        path,
        `network functions ${other} and ${n.name} share address ${text}`,
        'give each network function its own address',
        text,
      );
    else nfAddresses.set(n.address, n.name);
    const underlay = underlays.get(n.address);
    if (underlay !== undefined)
      issue(
        path,
        `network function ${n.name} address ${text} is ${underlay}'s underlay address`,
        'give the network function an address of its own',
        text,
      );
  });

  // Workloads: known host and tenant; a given address inside the tenant's prefixes, claimed once.
  const claimed = new Map<Ipv6Address, string>();
  const tenantByName = new Map(input.tenants.map((t) => [t.name, t]));
  (input.workloads ?? []).forEach((w, i) => {
    if (!hostIndex.has(w.host))
      unknown(['workloads', i, 'host'], `workload ${w.id}`, 'host', w.host, hostIndex.keys());
    const tenant = tenantByName.get(w.tenant);
    if (!tenant) {
      unknown(['workloads', i, 'tenant'], `workload ${w.id}`, 'tenant', w.tenant, tenantIndex.keys());
      return;
    }
    const caps = hostCapabilities.get(w.host);
    const why = tenant.ipv4 ? unsupportedReason('End.DT46', caps ?? LINUX_WITHOUT_VRF) : undefined;
    if (why)
      issue(
        ['workloads', i, 'host'],
        `workload ${w.id} of IPv4 tenant ${tenant.name} cannot run on host ${w.host}: ${why}`,
        'run it on a host with VRF devices (hosts[].vrf: true)',
        w.host,
      );
    if (w.address === undefined) return;
    const text = formatIpv6(w.address);
    if (!tenant.prefixes.some((p) => prefixContains(p, w.address!)))
      issue(
        ['workloads', i, 'address'],
        `workload ${w.id} address ${text} is outside tenant ${tenant.name}'s prefixes ${tenant.prefixes.map(formatPrefix).join(', ')}`,
        "pick an address inside the tenant's prefixes, or omit it to derive one",
        text,
      );
    const holder = claimed.get(w.address);
    if (holder !== undefined)
      issue(
        ['workloads', i, 'address'],
        `workloads ${holder} and ${w.id} both claim ${text}`,
        'give each workload its own address',
        text,
      );
    else claimed.set(w.address, w.id);
  });

  // Policies: a chain of known functions of the same tenant that fits maxSegments.
  const nfByName = new Map((input.networkFunctions ?? []).map((n) => [n.name, n]));
  (input.policies ?? []).forEach((p, i) => {
    if (!tenantIndex.has(p.tenant))
      unknown(['policies', i, 'tenant'], `policy ${p.name}`, 'tenant', p.tenant, tenantIndex.keys());
    if (p.via.length === 0)
      issue(
        ['policies', i, 'via'],
        `policy ${p.name} traverses no network function`,
        'list them in via, in order',
      );
    const unaware = new Set<string>();
    let longest = 0;
    let run = 0;
    p.via.forEach((name, j) => {
      const fn = nfByName.get(name);
      if (!fn) {
        unknown(['policies', i, 'via', j], `policy ${p.name}`, 'network function', name, nfIndex.keys());
        return;
      }
      if (fn.tenant !== p.tenant)
        issue(
          ['policies', i, 'via', j],
          `policy ${p.name} of tenant ${p.tenant} sends traffic through ${name} of tenant ${fn.tenant}`,
          'a chain stays in its tenant: use a function of the same tenant',
          name,
        );
      run++;
      if (fn.mode === 'sr-unaware') {
        // Its return table routes by destination (and source) only: it cannot tell two passes apart.
        if (unaware.has(name))
          issue(
            ['policies', i, 'via', j],
            `policy ${p.name} passes SR-unaware network function ${name} twice`,
            'use two instances or an SR-aware function',
            name,
          );
        unaware.add(name);
        longest = Math.max(longest, run);
        run = 0;
      }
    });
    // The longest list: every SR-aware function, then the next function or the destination.
    longest = Math.max(longest, run + 1);
    if (longest > maxSegments)
      issue(
        ['policies', i, 'via'],
        `policy ${p.name} needs a segment list of ${longest} segments, more than maxSegments ${maxSegments}`,
        'shorten the chain or raise maxSegments',
      );
  });

  // External routes: a known tenant and edge, a SID in the edge's locators.
  const edgeByName = new Map((input.edges ?? []).map((e) => [e.name, e]));
  (input.externalRoutes ?? []).forEach((r, i) => {
    const what = `external route ${formatPrefix(r.prefix)}`;
    if (!tenantIndex.has(r.tenant))
      unknown(['externalRoutes', i, 'tenant'], what, 'tenant', r.tenant, tenantIndex.keys());
    const edge = edgeByName.get(r.edge);
    if (!edge) unknown(['externalRoutes', i, 'edge'], what, 'edge', r.edge, edgeIndex.keys());
    else if (!edge.locators.some((l) => prefixContains(l, r.sid)))
      issue(
        ['externalRoutes', i, 'sid'],
        `${what} has SID ${formatIpv6(r.sid)} outside edge ${edge.name}'s locators ${edge.locators.map(formatPrefix).join(', ')}`,
        "use a SID inside one of the edge's locators",
        formatIpv6(r.sid),
      );
  });

  return { issues, ...(locators ? { locators } : {}) };
}

function comparePaths(a: KeyPath, b: KeyPath): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return a.length - b.length;
}
