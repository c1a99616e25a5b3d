/**
 * Layering (issue 13): nothing below the CLI imports it, lab does not import the CLI (the CLI may
 * import lab), and the pure model in src/srv6 imports nothing outside itself (no package, no Node
 * builtin). Read from the source files: every static import/export specifier and every dynamic
 * `import('…')`, resolved against the importing file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const src = join(root, 'src');

/** The module specifiers of one file's source text. */
function importSpecifiers(text: string): string[] {
  const found: string[] = [];
  // `import … from '…'`, `export … from '…'` (across lines), `import '…'`, `import('…')`.
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?\sfrom\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const p of patterns) for (const m of text.matchAll(p)) found.push(m[1]!);
  return found;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(?:ts|js|mjs)$/.test(e.name)) out.push(path);
  }
  return out;
}

/** Where a specifier points: an absolute path for a relative one, else the bare name. */
function target(file: string, spec: string): string {
  return spec.startsWith('.') ? resolve(dirname(file), spec) : spec;
}

const inside = (path: string, dir: string) => path === dir || path.startsWith(dir + sep);

/** Violations: "file -> specifier" for every import of `file` that `forbidden` rejects. */
function violations(dirs: readonly string[], forbidden: (file: string, to: string) => boolean): string[] {
  const bad: string[] = [];
  for (const d of dirs) {
    for (const file of sourceFiles(join(src, d))) {
      for (const spec of importSpecifiers(readFileSync(file, 'utf8'))) {
        if (forbidden(file, target(file, spec))) bad.push(`${relative(root, file)} -> ${spec}`);
      }
    }
  }
  return bad;
}

const cli = join(src, 'cli');
const importsCli = (_file: string, to: string) => to.startsWith('/') && inside(to, cli);

describe('layering', () => {
  it('finds import specifiers of every form (positive control for the checks below)', () => {
    const text = [
      "import { a } from '../cli/x.ts';",
      "import type { B } from '../cli/y.ts';",
      'import {',
      '  c,',
      "} from '../cli/z.ts';",
      "export { d } from '../cli/w.ts';",
      "import '../cli/side-effect.ts';",
      "const m = await import('../cli/lazy.ts');",
      "const s = 'not an import from ../cli/q.ts';",
    ].join('\n');
    expect(importSpecifiers(text)).toEqual([
      '../cli/x.ts',
      '../cli/y.ts',
      '../cli/z.ts',
      '../cli/w.ts',
      '../cli/side-effect.ts',
      '../cli/lazy.ts',
    ]);
    // The CLI itself imports lab and its own modules: the scan sees real files' imports.
    const main = importSpecifiers(readFileSync(join(cli, 'main.ts'), 'utf8'));
    expect(main).toContain('commander');
    expect(violations(['cli'], importsCli).length).toBeGreaterThan(0);
  });

  it('nothing in srv6, dataplane, gossip, bgp, agent, discovery or lab imports src/cli', () => {
    const layers = ['srv6', 'dataplane', 'gossip', 'bgp', 'agent', 'discovery', 'lab'];
    for (const l of layers) expect(sourceFiles(join(src, l)).length, l).toBeGreaterThan(0);
    expect(violations(layers, importsCli)).toEqual([]);
  });

  it('src/srv6 imports nothing outside src/srv6 (no package, no builtin, no other folder)', () => {
    const srv6 = join(src, 'srv6');
    const outside = (_file: string, to: string) => !(to.startsWith('/') && inside(to, srv6));
    // Positive control: the rule flags an import of a sibling folder.
    expect(outside('', resolve(srv6, '../dataplane/kernel/tables.ts'))).toBe(true);
    expect(outside('', resolve(srv6, './address.ts'))).toBe(false);
    expect(violations(['srv6'], outside)).toEqual([]);
  });
});

describe('the agent and the model apart from the data plane (issue 13)', () => {
  const dataplane = join(src, 'dataplane');
  /** netlink, nft and the backends' internals: what only src/dataplane itself may use. */
  const NETLINK_OR_NFT = new Set([
    'dataplane.ts',
    'index.ts',
    'nlattr.ts',
    'route.ts',
    'rule.ts',
    'link.ts',
    'neighbor.ts',
    'nexthop.ts',
    'transport.ts',
    'netns.ts',
    'netns-worker.ts',
    'genl-seg6.ts',
    'sysctl.ts',
    'isolation.ts',
    'encap.ts',
    'reconcile.ts',
    'workload-link.ts',
    'underlay.ts',
  ]);
  const netlinkOrNft = (_file: string, to: string) => {
    if (!(to.startsWith('/') && inside(to, dataplane))) return false;
    const rel = relative(dataplane, to);
    return (
      rel.startsWith(`kernel${sep}`) ||
      rel.startsWith(`ebpf${sep}`) ||
      rel.startsWith(`uapi${sep}`) ||
      /nft/.test(rel) ||
      NETLINK_OR_NFT.has(rel)
    );
  };

  it('no file in src/agent imports netlink, nft or backend internals (only the ports of src/dataplane)', () => {
    // Positive control: the rule flags what agent.ts imported before the split.
    expect(netlinkOrNft('', join(dataplane, 'index.ts'))).toBe(true);
    expect(netlinkOrNft('', join(dataplane, 'kernel', 'nft.ts'))).toBe(true);
    expect(netlinkOrNft('', join(dataplane, 'kernel', 'tables.ts'))).toBe(true);
    expect(netlinkOrNft('', join(dataplane, 'backend.ts'))).toBe(false);
    expect(netlinkOrNft('', join(dataplane, 'host.ts'))).toBe(false);
    expect(violations(['dataplane'], netlinkOrNft).length).toBeGreaterThan(0);
    expect(violations(['agent'], netlinkOrNft)).toEqual([]);
  });

  it('src/srv6 names no Linux routing table number or ip rule', () => {
    const files = sourceFiles(join(src, 'srv6'));
    // Code only: comments may say what the kernel backend does with the model's scopes.
    const code = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    const linux =
      /\b(?:MAIN_TABLE|TABLE_BASE|NF_TABLE_BASE|rulePriority|RULE_PRIORITY|fwmark|ip rule|(?:table|priority|vrftable)\s*[:=]\s*\d+)/;
    // Positive control: the pattern catches a table number and an ip rule.
    expect(linux.test(code('const r = { table: 254, dev: "x" };'))).toBe(true);
    expect(linux.test(code("run('ip rule add iif smw1 lookup 100')"))).toBe(true);
    expect(linux.test(code('const priority = 1000;'))).toBe(true);
    expect(linux.test(code('// ip rule in a comment'))).toBe(false);
    const bad = files.filter((f) => linux.test(code(readFileSync(f, 'utf8')))).map((f) => relative(root, f));
    expect(bad).toEqual([]);
  });
});
