import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, systemSuite, waitFor } from '../../harness/index.ts';
import { AgentCluster, ping } from './cluster.ts';

/** Continuous ping: `count` echo requests every 10 ms; resolves with transmitted and received. */
async function continuousPing(from: import('../../harness/index.ts').Netns, to: string, count: number) {
  const r = await from.exec('ping', ['-6', '-i', '0.01', '-c', String(count), '-W', '1', to], {
    allowFail: true,
    timeoutMs: 60_000,
  });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { transmitted: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
}

systemSuite('agent: mobility and liveness', { tools: ['ip', 'nft', 'ping'] }, () => {
  const lab = createLab();
  const cluster = new AgentCluster(lab);
  beforeAll(async () => {
    await cluster.create(3);
    cluster.applyTenants();
  }, 120_000);
  afterAll(async () => {
    cluster.close();
    await lab.teardown();
  });

  it('moves a workload between hosts under 100 pings per second without losing one (make before break)', async () => {
    const [h1, h2, h3] = cluster.hosts;
    const client = await cluster.workload(h3!, 'client', 'blue', 'shop.client');
    const old = await cluster.workload(h1!, 'old', 'blue', 'shop.cart');
    await cluster.converged(2);
    expect(await ping(client.ns, old.address)).toBe(3);

    const pinging = continuousPing(client.ns, old.address, 400);
    await new Promise((r) => setTimeout(r, 800));
    // The same identity starts on host2: it keeps its address, host2 claims it, everyone repoints,
    // host1 redirects what still reaches it; only then is the old instance removed.
    const fresh = await cluster.workload(h2!, 'new', 'blue', 'shop.cart');
    expect(fresh.address).toBe(old.address);
    await waitFor(
      async () =>
        (await cluster.api(h3!).call('listWorkloads', {})).workloads.find((w) => w.identity === 'shop.cart')
          ?.host === 'host2',
      { timeoutMs: 10_000, what: 'host3 to see shop.cart on host2' },
    );
    // host1 no longer delivers locally: it redirects to host2's End.DT6 SID (read from its kernel).
    await waitFor(
      async () => {
        const f = await cluster.forwardingOf(h1!, old.address);
        return f.includes('encap fc00:0:2:2064::') && !f.includes('local');
      },
      { timeoutMs: 5_000, what: `host1 to forward ${old.address} to host2's End.DT6 SID` },
    );
    await new Promise((r) => setTimeout(r, 500));
    await cluster.api(h1!).call('deleteWorkload', { identity: 'shop.cart' });
    const result = await pinging;
    expect(result.transmitted).toBe(400);
    expect(result.received).toBe(400);
    // Now only the new instance answers: its namespace sees the echo requests.
    expect(await ping(client.ns, fresh.address)).toBe(3);
    expect(await cluster.forwardingOf(h3!, fresh.address)).toContain('encap fc00:0:2:2064::');
  });

  it('a stopped host loses its workloads everywhere within the dead interval, and they return with it', async () => {
    const [, h2, h3] = cluster.hosts;
    const visibleOnH3 = async () =>
      (await cluster.api(h3!).call('listWorkloads', {})).workloads.some((w) => w.host === 'host2');
    expect(await visibleOnH3()).toBe(true);
    // The host stops: its agent dies and its underlay goes dark (an agent crash alone keeps the host:
    // its kernel still forwards, and the data-plane probe says so).
    h2!.agent!.kill('SIGKILL');
    await h2!.agent!.exited;
    await h2!.ns.sysctl('net.ipv6.conf.eth0.keep_addr_on_down', '1'); // the address survives the outage
    await h2!.ns.ip('link', 'set', 'eth0', 'down');
    const stopped = Date.now();
    await waitFor(async () => !(await visibleOnH3()), {
      timeoutMs: 15_000,
      what: "host2's workloads to disappear on host3",
    });
    const gone = Date.now() - stopped;
    expect(gone).toBeLessThan(6_000 + 3_000); // dead interval 6 s, plus a heartbeat and a reconcile
    await h2!.ns.ip('link', 'set', 'eth0', 'up');
    await cluster.startAgent(h2!);
    await waitFor(visibleOnH3, { timeoutMs: 20_000, what: "host2's workloads to return on host3" });
  });
});
