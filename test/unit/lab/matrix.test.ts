import { describe, expect, it } from 'vitest';
import { type Endpoint, matrixCells, matrixJson, mismatches, renderMatrix } from '../../../src/lab/matrix.ts';

const ep = (name: string, tenant: string, kind: Endpoint['kind'] = 'workload'): Endpoint => ({
  name,
  tenant,
  kind,
  node: kind === 'workload' ? 'host1' : name,
  address: `2001:db8::${name.length}`,
});

describe('reachability matrix', () => {
  const endpoints = [
    ep('a', 'blue'),
    ep('b', 'blue'),
    ep('c', 'red'),
    ep('x', 'blue', 'external'),
    ep('y', 'red', 'external'),
  ];

  it('pairs every endpoint with every other but not external with external, expecting tenancy', () => {
    const cells = matrixCells(endpoints);
    expect(cells).toHaveLength(5 * 4 - 2);
    const cell = (f: string, t: string) => cells.find((c) => c.from.name === f && c.to.name === t);
    expect(cell('a', 'b')?.expected).toBe(true);
    expect(cell('a', 'c')?.expected).toBe(false);
    expect(cell('x', 'a')?.expected).toBe(true);
    expect(cell('x', 'c')?.expected).toBe(false);
    expect(cell('x', 'y')).toBeUndefined();
    expect(cell('a', 'a')).toBeUndefined();
  });

  it('reports the cells that differ, unprobed ones included', () => {
    const cells = matrixCells(endpoints).map((c) => ({ ...c, seen: c.expected }));
    expect(mismatches(cells)).toEqual([]);
    expect(renderMatrix(endpoints, cells)).toContain('all 18 cells as expected');
    const leak = cells.map((c) => (c.from.name === 'a' && c.to.name === 'c' ? { ...c, seen: true } : c));
    const text = renderMatrix(endpoints, leak);
    expect(mismatches(leak).map((c) => `${c.from.name}>${c.to.name}`)).toEqual(['a>c']);
    expect(text).toContain('ok!');
    expect(text).toMatch(/1 of 18 cells differ[\s\S]*a -> c .*expected unreachable, reached/);
    const { seen: _unprobed, ...first } = cells[0]!;
    expect(mismatches([first])).toHaveLength(1);
    expect(matrixJson([first])[0]).toMatchObject({ from: 'a', to: 'b', seen: null });
  });
});
