import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function segmesh(...args: string[]) {
  // The CLI from source, on the same Node 24 that runs the tests.
  return spawnSync(process.execPath, ['src/cli/main.ts', ...args], { encoding: 'utf8' });
}

interface JsonPlan {
  host: string;
  locator: string;
  sids: Array<{ sid: string; behavior: string; key: string }>;
  objects: Array<{
    kind: string;
    table?: number;
    prefix?: string;
    segments?: string[];
    mode?: string;
    reason?: string;
  }>;
}

describe('segmesh plan', () => {
  it('prints per-host SIDs and routes as JSON', () => {
    const run = segmesh('plan', 'examples/fabric.yaml', '--json');
    expect(run.status, run.stderr).toBe(0);
    const plans = JSON.parse(run.stdout) as JsonPlan[];
    expect(plans.map((p) => p.host)).toEqual(['host1', 'host2', 'host3']);
    const host3 = plans.find((p) => p.host === 'host3')!;
    expect(host3.locator).toBe('fc00:0:3::/48');
    expect(host3.sids.find((s) => s.key === 'nf:fw-blue')).toMatchObject({ behavior: 'End.DX6' });
    // host2's client reaches web-1 (on host1) only through the firewall on host3.
    const host2 = plans.find((p) => p.host === 'host2')!;
    const viaFirewall = host2.objects.filter((o) => o.reason?.startsWith('policy web-through-firewall'));
    expect(viaFirewall.length).toBe(2);
    for (const r of viaFirewall)
      expect(r.segments).toEqual([host3.sids.find((s) => s.key === 'nf:fw-blue')!.sid]);
    expect(host2.objects.filter((o) => o.kind === 'unreachable').length).toBeGreaterThanOrEqual(2);
  });

  it('prints a readable table for one host', () => {
    const run = segmesh('plan', 'examples/fabric.yaml', '--host', 'host1');
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/host host1 {2}underlay 2001:db8:100::1/);
    expect(run.stdout).toMatch(/End\.DT6 +tenant blue, lookup blue delivery/);
    expect(run.stdout).toMatch(/::\/0 +unreachable/);
  });

  it('fails with one clear message on bad input', () => {
    const missing = segmesh('plan', 'examples/nope.yaml');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^segmesh: .*no such file/i);
    const unknownHost = segmesh('plan', 'examples/fabric.yaml', '--host', 'host9');
    expect(unknownHost.status).toBe(1);
    expect(unknownHost.stderr).toMatch(
      /host host9 is not in examples\/fabric.yaml; hosts: host1, host2, host3/,
    );
  });
});
