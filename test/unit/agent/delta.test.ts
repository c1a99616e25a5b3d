import { describe, expect, it } from 'vitest';
import { desiredDelta } from '../../../src/agent/delta.ts';
import type { Route, Rule } from '../../../src/dataplane/index.ts';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';

const encap = (dst: string, sid: string): Route => ({
  dst: parsePrefix(dst),
  table: 385424,
  dev: 'eth0',
  encap: { type: 'seg6', mode: 'encap.red', segments: [parseIpv6(sid)] },
});
const deliver = (dst: string, dev: string): Route => ({ dst: parsePrefix(dst), table: 385425, dev });
const rule = (iif: string): Rule => ({ priority: 10000, iif, table: 385424 });

describe('reconcile fast path: desired-state delta', () => {
  it('a moved workload is one replaced route, the rest unchanged', () => {
    const before = {
      routes: [encap('2001:db8:b100::1/128', 'fc00:0:1:2064::'), deliver('2001:db8:b100::2/128', 'wl-a')],
      rules: [rule('wl-a')],
    };
    const after = {
      routes: [encap('2001:db8:b100::1/128', 'fc00:0:2:2064::'), deliver('2001:db8:b100::2/128', 'wl-a')],
      rules: [rule('wl-a')],
    };
    const d = desiredDelta(before, after)!;
    expect(d.routes.replace).toEqual([after.routes[0]]);
    expect(d.routes.add).toEqual([]);
    expect(d.routes.delete).toEqual([]);
    expect(d.rules).toEqual({ add: [], delete: [] });
    expect(d.unchanged).toBe(2);
  });

  it('adds, deletes and a changed device (same destination) as a replace', () => {
    const before = {
      routes: [deliver('2001:db8:b100::2/128', 'wl-a'), deliver('2001:db8:b100::3/128', 'wl-c')],
    };
    const after = {
      routes: [deliver('2001:db8:b100::2/128', 'wl-b'), deliver('2001:db8:b100::4/128', 'wl-d')],
    };
    const d = desiredDelta(before, after)!;
    expect(d.routes.replace.map((r) => r.dev)).toEqual(['wl-b']);
    expect(d.routes.add.map((r) => r.dev)).toEqual(['wl-d']);
    expect(d.routes.delete.map((r) => r.dev)).toEqual(['wl-c']);
  });

  it('rules come and go by key', () => {
    const d = desiredDelta({ routes: [], rules: [rule('wl-a')] }, { routes: [], rules: [rule('wl-b')] })!;
    expect(d.rules.add).toEqual([rule('wl-b')]);
    expect(d.rules.delete).toEqual([rule('wl-a')]);
  });

  it('no delta when a kind changes management, nexthops are involved, or an object is listed twice', () => {
    expect(desiredDelta({ routes: [] }, { routes: [], rules: [] })).toBeUndefined();
    expect(desiredDelta({ routes: [], nexthops: [] }, { routes: [], nexthops: [] })).toBeUndefined();
    const r = deliver('2001:db8:b100::2/128', 'wl-a');
    expect(desiredDelta({ routes: [] }, { routes: [r, r] })).toBeUndefined();
  });
});
