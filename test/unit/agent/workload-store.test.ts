/**
 * The agent's local workload store on disk: concurrent puts (two CNI ADDs at once) all land, and the
 * file holds every workload afterwards (a shared temporary file made the second rename fail).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { afterEach, expect, it } from 'vitest';
import { type LocalWorkload, LocalWorkloadStore } from '../../../src/agent/workloads.ts';

let dir = '';
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const workload = (i: number): LocalWorkload => ({
  id: `blue/w-${i}`,
  sticky: true,
  tenant: 'blue',
  address: `2001:db8:b100::${i.toString(16)}`,
  netns: `/run/netns/w${i}`,
  ifname: 'eth0',
  hostLink: `smw${i}`,
  containerId: `c${i}`,
  labels: {},
  mtu: 1400,
  attachedAtMs: i,
});

it('concurrent puts and deletes all succeed and the file holds the final set', async () => {
  dir = await mkdtemp(`${tmpdir()}/segmesh-store-`);
  const store = new LocalWorkloadStore(`${dir}/workloads.json`);
  await Promise.all(Array.from({ length: 20 }, (_, i) => store.put(workload(i))));
  await Promise.all([store.delete('blue/w-3'), store.put(workload(20)), store.delete('blue/w-7')]);
  const onDisk = JSON.parse(await readFile(`${dir}/workloads.json`, 'utf8')) as LocalWorkload[];
  const ids = onDisk.map((w) => w.id).sort();
  const expected = [...Array.from({ length: 21 }, (_, i) => `blue/w-${i}`)]
    .filter((id) => id !== 'blue/w-3' && id !== 'blue/w-7')
    .sort();
  expect(ids).toEqual(expected);
  // A second store reads the same.
  const again = new LocalWorkloadStore(`${dir}/workloads.json`);
  await again.load();
  expect(again.get('blue/w-20')?.address).toBe('2001:db8:b100::14');
  expect(again.get('blue/w-3')).toBeUndefined();
});
