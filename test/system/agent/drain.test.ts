import { existsSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FrrEdge, pathFromHost } from '../../harness/frr.ts';
import { createLab, type Netns, paced, sh, systemSuite, waitFor } from '../../harness/index.ts';
import {
  AgentCluster,
  type AgentHost,
  bpfVerdicts,
  CLI,
  EDGE,
  edgeRequirements,
  ping,
  segmeshJsonAsync,
} from './cluster.ts';

/** `segmesh drain` as an operator runs it, in the background; resolves with its JSON answer. */
async function drainInBackground(socket: string, waitMs: number): Promise<Record<string, unknown>> {
  const r = await sh(
    process.execPath,
    [
      ...CLI,
      'drain',
      '--wait',
      String(waitMs),
      // The window the test looks into (host1's path depreferenced, not yet withdrawn) lasts this long
      // after traffic left host1: wide enough for a slow vtysh poll on a loaded machine.
      '--quiet',
      '5000',
      '--json',
      '--socket',
      socket,
    ],
    { timeoutMs: waitMs + paced(120_000) },
  );
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/**
 * Kernel counters that place a loss on host `h`: its eBPF programs' drop verdicts (the pinned counters;
 * none on the kernel backend) and its IPv6 discard counters (/proc/net/snmp6 of its namespace).
 */
async function dropCounters(h: AgentHost, ebpf: boolean): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (ebpf && existsSync(h.pinDir))
    for (const [reason, n] of bpfVerdicts(h))
      if (reason.startsWith('drop_')) out.set(`${h.name} ${reason}`, Number(n));
  const snmp6 = (await sh('cat', ['/proc/net/snmp6'], { netns: h.ns.name })).stdout;
  for (const m of snmp6.matchAll(
    /^(Ip6(?:In|Out)(?:Discards|NoRoutes|AddrErrors|HdrErrors|TooBigErrors))\s+(\d+)$/gm,
  ))
    out.set(`${h.name} ${m[1]}`, Number(m[2]));
  return out;
}
const counterDelta = (a: Map<string, number>, b: Map<string, number>) =>
  [...b].filter(([k, v]) => v !== (a.get(k) ?? 0)).map(([k, v]) => `${k} +${v - (a.get(k) ?? 0)}`);

systemSuite(
  'agent: segmesh drain leaves the fabric without loss',
  // FRR in a namespace where this kernel has seg6 routes, in the VM with Debian's kernel where not.
  {
    tools: ['ip', 'nft', 'ping', 'gobgpd', ...edgeRequirements().tools],
    kernel: edgeRequirements().kernel,
  },
  () => {
    const lab = createLab();
    const cluster = new AgentCluster(lab);
    let frr: FrrEdge;
    let ext: Netns;
    let web: { ns: Netns; address: string };
    let b2: { ns: Netns; address: string };
    let b3: { ns: Netns; address: string };

    beforeAll(async () => {
      await cluster.create(3, { edge: EDGE });
      cluster.applyTenants();
      ({ frr, ext } = await cluster.addEdge());
      const [h1, h2, h3] = cluster.hosts;
      web = await cluster.workload(h1!, 'web', 'blue', 'shop.web');
      b2 = await cluster.workload(h2!, 'b2', 'blue', 'shop.db-2');
      b3 = await cluster.workload(h3!, 'b3', 'blue', 'shop.db-3');
      await cluster.converged(3);
      await frr.waitRoute(`${web.address}/128`, { sid: 'fc00:0:1:2064::', timeoutMs: paced(30_000) });
      // A kernel route in blue's table, or an sm_policy or sm_exact entry on the eBPF backend.
      await waitFor(
        async () =>
          (await cluster.routeKeys(h1!, [385424])).all.some((k) =>
            k.startsWith('385424 2001:db8:e1::/64 encap seg6 '),
          ),
        { timeoutMs: paced(30_000), what: "host1 to learn FRR's 2001:db8:e1::/64" },
      );
      expect(await ping(ext, web.address)).toBe(3);
    }, paced(300_000)); // three agents started: minutes each in the TCG VM
    afterAll(async () => {
      cluster.close();
      await lab.teardown();
    });

    it(
      'graceful shutdown at the edge, a leaving record, traffic moves, then everything of the host is gone',
      async () => {
        const [h1, h2, h3] = cluster.hosts;
        // 100 pings per second from the external client to the workload on the host that leaves; they
        // run across the drain, the move of the workload and the withdrawal.
        // As many more pings as the steps below take longer in the TCG VM (pace.ts).
        const count = paced(2000);
        // -D -O: every reply and every late one with its time, so that a loss can be placed among the steps.
        const ebpf = (await cluster.backend(h1!)) === 'ebpf';
        const counters0 = new Map(
          (await Promise.all(cluster.hosts.map((h) => dropCounters(h, ebpf)))).flatMap((m) => [...m]),
        );
        const t0 = Date.now();
        const steps: string[] = [];
        const step = (what: string) => steps.push(`${what} at ${Date.now() - t0} ms`);
        const pinging = ext.exec(
          'ping',
          ['-6', '-D', '-O', '-i', '0.01', '-c', String(count), '-W', '1', web.address],
          {
            allowFail: true,
            timeoutMs: paced(90_000),
          },
        );
        await new Promise((r) => setTimeout(r, 500));
        // Paced: in the TCG VM the steps below take longer than 30 s, and a drain whose wait ran out
        // withdraws before the test has looked at the leaving record and moved the workload.
        const drained = drainInBackground(h1!.socket, paced(30_000));
        step('drain');

        // 1. The edge sees host1's path with the GRACEFUL_SHUTDOWN community (and FRR lowers its
        //    local preference to 0); nothing else changed yet: it is the only path, so still the best.
        await waitFor(
          async () =>
            (await frr.paths(`${web.address}/128`)).some(
              (p) => pathFromHost(p, h1!.underlay) && p.community?.string?.includes('graceful-shutdown'),
            ),
          { timeoutMs: paced(15_000), what: "FRR to see host1's path with community graceful-shutdown" },
        );
        const gshut = (await frr.paths(`${web.address}/128`)).find((p) => pathFromHost(p, h1!.underlay))!;
        expect(gshut.locPrf).toBe(0);
        const vpn = await frr.vtysh('show bgp ipv6 vpn community graceful-shutdown');
        expect(vpn).toContain(web.address);
        // Still the only path, so the edge still encapsulates toward host1's SID (the drain's premise:
        // its traffic goes on until another path is preferred).
        await frr.waitRoute(`${web.address}/128`, { sid: 'fc00:0:1:2064::', timeoutMs: paced(5_000) });

        // 2. The other hosts see host1 leaving; host1 takes no new workload.
        await waitFor(
          async () =>
            (
              await segmeshJsonAsync<Array<{ name: string; state: string }>>([
                'hosts',
                '--socket',
                h2!.socket,
              ])
            ).find((h) => h.name === 'host1')?.state === 'leaving',
          { timeoutMs: paced(10_000), what: 'host2 to list host1 as leaving' },
        );
        const ns = await lab.netns('late');
        await expect(
          cluster
            .api(h1!)
            .call('addWorkload', { identity: 'late', tenant: 'blue', netns: `/run/netns/${ns.name}` }),
        ).rejects.toThrow(/draining/);

        // 3. The workload moves to host2 (make before break). The edge prefers host2's path at once:
        //    host1's is depreferenced, so the edge need not wait for its withdrawal.
        step('CNI ADD on host2');
        const moved = await cluster.workload(h2!, 'web2', 'blue', 'shop.web');
        step('attached on host2');
        expect(moved.address).toBe(web.address);
        // Seen at the first look where host2's path is best: host1's path is still there, not best (the
        // drained host withdraws only once its SIDs' counters stood still for 5 s (--quiet) after this).
        let host1Kept = false;
        await waitFor(
          async () => {
            const paths = await frr.paths(`${web.address}/128`);
            if (!paths.find((p) => pathFromHost(p, h2!.underlay))?.bestpath?.overall) return false;
            host1Kept = paths.some((p) => pathFromHost(p, h1!.underlay) && !p.bestpath?.overall);
            return true;
          },
          { timeoutMs: paced(15_000), intervalMs: 20, what: "FRR to prefer host2's path" },
        );
        expect(host1Kept).toBe(true);
        step("FRR prefers host2's path");
        await frr.waitRoute(`${web.address}/128`, { sid: 'fc00:0:2:2064::', timeoutMs: paced(15_000) });
        step("FRR's route to host2");
        // host1's counters before the drain takes its state (and its pinned counters) away.
        const host1Counters = await dropCounters(h1!, ebpf);

        // 4. Traffic to host1's SIDs stops, so the drain ends before its 30 s wait ran out.
        const r = await drained;
        step('drain done');
        expect(r).toMatchObject({ withdrawn: 1, trafficStopped: true });
        expect(r.gracefulShutdownPaths).toBeGreaterThanOrEqual(2); // the workload's VPN route and the locator
        expect(r.waitedMs as number).toBeLessThan(30_000);

        // 5. Nothing of host1 is left at the edge, in the other hosts' kernels or on host1 itself.
        await waitFor(
          async () => !(await frr.paths(`${web.address}/128`)).some((p) => pathFromHost(p, h1!.underlay)),
          { timeoutMs: paced(15_000), what: "FRR to drop host1's path" },
        );
        expect(await frr.vtysh('show bgp ipv6 vpn')).not.toContain('198.18.0.1:100');
        for (const h of [h2!, h3!]) {
          // Kernel routes and, on the eBPF backend, its maps.
          await waitFor(
            async () =>
              !(await h.ns.ip('-6', 'route', 'show', 'table', 'all', 'proto', '203')).stdout.includes(
                'fc00:0:1:',
              ) && !(await cluster.routeKeys(h, [])).all.some((k) => k.includes('fc00:0:1:')),
            { timeoutMs: paced(15_000), what: `${h.name} to remove every route toward host1's locator` },
          );
          await waitFor(
            async () =>
              !(await segmeshJsonAsync<Array<{ name: string }>>(['hosts', '--socket', h.socket])).some(
                (x) => x.name === 'host1',
              ),
            { timeoutMs: paced(15_000), what: `${h.name} to forget host1` },
          );
        }
        const routes = await h1!.ns.ip('-6', 'route', 'show', 'table', 'all', 'proto', '203');
        expect(routes.stdout.trim()).toBe('');
        const rules = await h1!.ns.ip('-6', '-d', 'rule', 'show');
        expect(rules.stdout).not.toMatch(/proto 203|lookup 38[5-9]\d{3}/);
        const nft = await sh('nft', ['list', 'tables'], { netns: h1!.ns.name });
        expect(nft.stdout).not.toMatch(/segmesh/);
        // The eBPF backend's programs and maps: unpinned, none left in its bpffs (or its folder gone
        // with the state directory).
        if ((await cluster.backend(h1!)) === 'ebpf')
          expect(
            existsSync(h1!.pinDir) ? readdirSync(h1!.pinDir, { recursive: true }).map(String) : [],
          ).toEqual([]);

        // 6. No echo was lost across graceful shutdown, move and withdrawal; the others still reach
        //    each other and the moved workload (positive control).
        const result = await pinging;
        const answered = new Set([...result.stdout.matchAll(/icmp_seq=(\d+) ttl/g)].map((x) => Number(x[1])));
        const lost = [...result.stdout.matchAll(/^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)/gm)]
          .filter((x) => !answered.has(Number(x[2])))
          .map((x) => `seq ${x[2]} at ${Math.round(Number(x[1]) * 1000 - t0)} ms`);
        const shown = lost.length > 8 ? [...lost.slice(0, 4), '...', ...lost.slice(-4)] : lost;
        const counters1 = new Map([
          ...host1Counters,
          ...(await Promise.all([h2!, h3!].map((h) => dropCounters(h, ebpf)))).flatMap((m) => [...m]),
        ]);
        const dropped = counterDelta(counters0, counters1).join(', ') || 'none moved';
        expect(
          result.stdout,
          `lost: ${shown.join(', ')}; steps: ${steps.join(', ')}; kernel drop counters (host1 until FRR's route to host2): ${dropped}`,
        ).toContain(`${count} packets transmitted, ${count} received`);
        expect(await ping(b2.ns, b3.address)).toBe(3);
        expect(await ping(b3.ns, web.address)).toBe(3);
        expect(await ping(ext, web.address)).toBe(3);
      },
      paced(120_000),
    );
  },
);
