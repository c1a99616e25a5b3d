/**
 * The sweep hook of ./docker.ts: containers and networks of dead test runs go (found by their
 * `segmesh.test.run` label); those of live runs and anything without the label stay.
 */
import { afterAll, expect, it } from 'vitest';
import { ensureEngine } from '../../../src/lab/engine.ts';
import { labDocker } from '../../../src/lab/lab.ts';
import { LABEL_TEST_RUN } from '../../../src/lab/plan.ts';
import { runPrefix, systemSuite } from '../../harness/index.ts';
import { progress, runSlot, sweepDockerRuns } from './docker.ts';

systemSuite('lab: sweeping dead runs', { tools: ['dockerd', 'docker'] }, () => {
  const slot = runSlot() % 200;
  // A made-up dead run, this (live) run, and a network of nobody's run.
  const dead = 'sm0dea';
  const names = {
    dead: `${runPrefix()}-swdead`,
    live: `${runPrefix()}-swlive`,
    other: `${runPrefix()}-swother`,
  };
  afterAll(async () => {
    const docker = await labDocker();
    for (const n of Object.values(names))
      await docker
        .getNetwork(n)
        .remove()
        .catch(() => undefined);
  });

  it('removes only what carries the label of a dead run', async () => {
    await ensureEngine(progress);
    const docker = await labDocker();
    const make = (name: string, i: number, labels: Record<string, string>) =>
      docker.createNetwork({
        Name: name,
        EnableIPv6: true,
        IPAM: {
          Driver: 'default',
          Config: [{ Subnet: `fc00:96:${slot.toString(16)}:${i}::/64` }, { Subnet: `198.18.${4 + i}.0/24` }],
        },
        Labels: labels,
      });
    await make(names.dead, 0, { [LABEL_TEST_RUN]: dead });
    await make(names.live, 1, { [LABEL_TEST_RUN]: runPrefix() });
    await make(names.other, 2, { 'segmesh.lab': 'not-a-test' });
    const swept = await sweepDockerRuns((p) => p === dead);
    expect(swept).toEqual([dead]);
    const left = (await docker.listNetworks()).map((n) => n.Name);
    expect(left).not.toContain(names.dead);
    expect(left).toContain(names.live);
    expect(left).toContain(names.other);
  });
});
