import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, systemSuite } from '../../harness/index.ts';
import { AgentCluster, ping } from './cluster.ts';

/** Calls the plugin as a runtime does: CNI_* in the environment, the network configuration on stdin. */
function cni(command: string, env: Record<string, string>, conf: object) {
  const r = spawnSync(process.execPath, ['src/discovery/cni/main.ts'], {
    input: JSON.stringify(conf),
    env: { PATH: process.env.PATH ?? '', CNI_COMMAND: command, CNI_PATH: '/usr/lib/cni', ...env },
    encoding: 'utf8',
  });
  return {
    code: r.status,
    out: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined,
    err: r.stderr,
  };
}

systemSuite('agent: the CNI plugin driven as a runtime drives it', { tools: ['ip', 'nft', 'ping'] }, () => {
  const lab = createLab();
  const cluster = new AgentCluster(lab);
  beforeAll(async () => {
    await cluster.create(2);
    cluster.applyTenants();
  }, 120_000);
  afterAll(async () => {
    cluster.close();
    await lab.teardown();
  });

  it('answers VERSION, and ADD, CHECK and DEL (idempotent) a workload whose identity comes from CNI_ARGS', async () => {
    const [h1, h2] = cluster.hosts;
    const version = cni('VERSION', {}, {});
    expect(version.code).toBe(0);
    expect(version.out).toMatchObject({
      cniVersion: '1.0.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'],
    });

    const peer = await cluster.workload(h2!, 'peer', 'blue', 'shop.peer');
    const ns = await lab.netns('c1');
    const conf = {
      cniVersion: '1.0.0',
      name: 'blue-net',
      type: 'segmesh-cni',
      tenant: 'blue',
      agentSocket: h1!.socket,
    };
    const env = {
      CNI_CONTAINERID: 'c0ffee01',
      CNI_NETNS: `/run/netns/${ns.name}`,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-1',
    };
    const added = cni('ADD', env, conf);
    expect(added.code, JSON.stringify(added.out)).toBe(0);
    const result = added.out as {
      cniVersion: string;
      ips: Array<{ address: string; gateway: string }>;
      interfaces: unknown[];
    };
    expect(result.cniVersion).toBe('1.0.0');
    expect(result.ips[0]!.address).toMatch(/^2001:db8:b100:.*\/128$/);
    expect(result.ips[0]!.gateway).toBe('fe80::1');
    await cluster.converged(2);
    expect(await ping(ns, peer.address)).toBe(3);
    const workloads = (await cluster.api(h2!).call('listWorkloads', {})).workloads.map((w) => w.identity);
    expect(workloads).toContain('shop/cart-1');

    expect(cni('CHECK', env, { ...conf, prevResult: result }).code).toBe(0);
    const wrong = { ...result, ips: [{ address: '2001:db8:b100::dead/128', gateway: 'fe80::1' }] };
    const check = cni('CHECK', env, { ...conf, prevResult: wrong });
    expect(check.code).toBe(1);
    expect(check.out).toMatchObject({ code: 101, msg: 'the workload is not as ADD left it' });

    expect(cni('DEL', env, { ...conf, prevResult: result }).code).toBe(0);
    expect(cni('DEL', env, { ...conf, prevResult: result }).code).toBe(0);
    expect(await ping(peer.ns, result.ips[0]!.address.split('/')[0]!, 2)).toBe(0);
  });

  it('negotiates versions and reports errors as CNI error objects', async () => {
    const ns = await lab.netns('c2');
    const env = { CNI_CONTAINERID: 'c0ffee02', CNI_NETNS: `/run/netns/${ns.name}`, CNI_IFNAME: 'eth0' };
    const old = cni('ADD', env, {
      cniVersion: '0.4.0',
      name: 'n',
      type: 'segmesh-cni',
      tenant: 'red',
      agentSocket: cluster.hosts[0]!.socket,
    });
    expect(old.code).toBe(0);
    expect((old.out as { ips: Array<{ version: string }> }).ips[0]!.version).toBe('6');
    expect(
      cni('ADD', env, { cniVersion: '9.9.9', name: 'n', type: 'segmesh-cni', tenant: 'red' }).out,
    ).toMatchObject({
      code: 1,
    });
    const unknown = cni(
      'ADD',
      { ...env, CNI_CONTAINERID: 'c0ffee03' },
      {
        cniVersion: '1.0.0',
        name: 'n',
        type: 'segmesh-cni',
        tenant: 'green',
        agentSocket: cluster.hosts[0]!.socket,
      },
    );
    expect(unknown.out).toMatchObject({ code: 101, msg: expect.stringMatching(/unknown tenant green/) });
    const noAgent = cni('ADD', env, {
      cniVersion: '1.0.0',
      name: 'n',
      type: 'segmesh-cni',
      tenant: 'red',
      agentSocket: '/nonexistent.sock',
    });
    expect(noAgent.out).toMatchObject({ code: 11 });
  });

  it('keeps the operator records across a restart of every agent', async () => {
    for (const h of cluster.hosts) await h.agent!.stop();
    for (const h of cluster.hosts) await cluster.startAgent(h);
    const ns = await lab.netns('after');
    const r = await cluster.api(cluster.hosts[1]!).call('addWorkload', {
      identity: 'shop.after-restart',
      tenant: 'blue',
      netns: `/run/netns/${ns.name}`,
      ifname: 'eth0',
    });
    expect(r.address).toMatch(/^2001:db8:b100:/);
  });
});
