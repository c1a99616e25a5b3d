/**
 * An agent whose underlay interface does not exist in its network namespace says so, naming the key
 * and the interfaces that do exist, instead of an ENOENT on a /proc/sys path.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { afterAll, expect, it } from 'vitest';
import { NetnsDataplane } from '../../../src/dataplane/netns.ts';
import { checkUnderlayInterface } from '../../../src/dataplane/underlay.ts';
import { createLab, systemSuite } from '../../harness/index.ts';
import { CLI } from './cluster.ts';

systemSuite('agent: a missing underlay interface', { tools: ['ip'] }, () => {
  const lab = createLab();
  const dir = mkdtempSync(join(tmpdir(), 'segmesh-underlay-'));
  const open: NetnsDataplane[] = [];
  afterAll(async () => {
    for (const d of open) await d.close().catch(() => undefined);
    await lab.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start naming the interface, the key and the interfaces present', async () => {
    const ns = await lab.netns('ulif');
    await ns.ip('link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul1');
    // Positive control: the check passes for an interface that exists, through the real data plane.
    const dp = new NetnsDataplane({ netns: ns.name });
    open.push(dp);
    await dp.whenReady();
    await expect(checkUnderlayInterface(dp, 'ul0')).resolves.toBeUndefined();
    await expect(checkUnderlayInterface(dp, 'eth9', 'agent.yaml')).rejects.toThrow(
      'agent.yaml: host.underlay.interface: interface eth9 does not exist in this network namespace; set host.underlay.interface (or SEGMESH_UNDERLAY_INTERFACE) to one of: ul0, ul1',
    );

    // The agent itself, started as operators start it, fails with that message and exits.
    const allowed = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      `apiVersion: segmesh.io/v1alpha1
kind: AgentConfig
host: { name: host1, underlay: { interface: eth9, address: "2001:db8:100::1" } }
locator: "fc00:0:1::/48"
stateDir: ${dir}/state
gossip: { allowedPeers: ["${allowed}"] }
api: { socket: ${dir}/run/agent.sock, group: root }
metrics: { listen: "127.0.0.1:0" }
`,
    );
    const run = await ns.exec(process.execPath, [...CLI, 'agent', '--config', config], {
      allowFail: true,
      timeoutMs: 60_000,
      cwd: process.cwd(),
    });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain(
      `segmesh: ${config}: host.underlay.interface: interface eth9 does not exist in this network namespace; set host.underlay.interface (or SEGMESH_UNDERLAY_INTERFACE) to one of: ul0, ul1`,
    );
    expect(run.stderr).not.toMatch(/ENOENT|\/proc\/sys/);
  });
});
