import { afterAll, beforeAll, expect, it } from 'vitest';
import { MAIN_TABLE } from '../../../src/dataplane/kernel/tables.ts';
import { formatIpv6, ipv6FromBytes } from '../../../src/srv6/address.ts';
import { tsharkFields } from '../../harness/capture.ts';
import { type FrrEdge, pathFromHost } from '../../harness/frr.ts';
import { createLab, type Netns, paced, sh, systemSuite, waitFor } from '../../harness/index.ts';
import {
  AgentCluster,
  type AgentHost,
  EDGE,
  edgeRequirements,
  type KernelRoute,
  ping,
  segmeshJson,
  startPing,
} from './cluster.ts';

interface CliRoute {
  table: number;
  destination: string;
  action: string;
}
interface CliHost {
  name: string;
  underlay: string;
  locator: string;
  state: string;
  sids: string[];
}
interface CliWorkload {
  identity: string;
  tenant: string;
  address: string;
  host: string;
  deliverySid: string;
  local: boolean;
  hostLink: string;
}
interface CliStatus {
  host: string;
  underlay: string;
  locator: string;
}
interface CliPeer {
  address: string;
  asn: number;
  state: string;
  received: string;
  accepted: string;
  advertised: string;
}
interface GobgpNeighbor {
  conf: { neighbor_address: string; peer_asn: number };
  state: { session_state: number };
  afi_safis: Array<{
    state?: { family?: { safi: number }; received?: number; accepted?: number; advertised?: number };
  }>;
}
interface GobgpPath {
  nlri: { prefix: string; labels: number[]; rd: { admin: string | number; assigned: number } };
  attrs: Array<{
    type: number;
    nexthop?: string;
    TLVs?: Array<{
      SubTLVs?: Array<{
        sid?: string;
        sub_sub_tlvs?: Array<{ transposition_length?: number; transposition_offset?: number }>;
      }>;
    }>;
  }>;
  'neighbor-ip'?: string;
}

systemSuite(
  'agent: an FRR edge router and an external client',
  // FRR in a namespace where this kernel has seg6 routes, in the VM with Debian's kernel where not.
  {
    tools: ['ip', 'nft', 'ping', 'gobgpd', 'tcpdump', 'tshark', ...edgeRequirements().tools],
    kernel: edgeRequirements().kernel,
  },
  () => {
    const lab = createLab();
    const cluster = new AgentCluster(lab);
    let frr: FrrEdge;
    let ext: Netns;
    let blue: { ns: Netns; address: string };
    let red: { ns: Netns; address: string };

    beforeAll(async () => {
      await cluster.create(2, { edge: EDGE });
      cluster.applyTenants();
      ({ frr, ext } = await cluster.addEdge());
      blue = await cluster.workload(cluster.hosts[0]!, 'blue', 'blue', 'shop.web');
      red = await cluster.workload(cluster.hosts[1]!, 'red', 'red', 'bank.api');
      await cluster.converged(2);
    }, paced(240_000)); // two agents started: minutes each in the TCG VM
    afterAll(async () => {
      cluster.close();
      await lab.teardown();
    }, paced(120_000));

    it(
      "FRR installs a seg6 route to the host's End.DT6 SID for the tenant's workload, and nothing of the other tenant",
      async () => {
        await frr.waitRoute(`${blue.address}/128`, { sid: 'fc00:0:1:2064::', timeoutMs: paced(30_000) });
        const routes = await frr.ip('-6', 'route', 'show', 'table', 'all');
        expect(routes.stdout).toContain(blue.address); // positive control: the same look sees blue's
        expect(routes.stdout).not.toContain(red.address);
      },
      paced(120_000),
    );

    it(
      'the external client and the workload reach each other both ways; the other tenant stays out of reach',
      async () => {
        // The agent learned FRR's exported prefix into blue's table, toward FRR's own SID (rebuilt from
        // label and structure): a kernel route, or an sm_policy or sm_exact entry on the eBPF backend.
        const learned = new RegExp(`^385424 2001:db8:e1::/64 encap seg6 mode \\S+ segs \\[ ${frr.sid} \\]$`);
        await waitFor(
          async () => (await cluster.routeKeys(cluster.hosts[0]!, [385424])).all.some((k) => learned.test(k)),
          { timeoutMs: paced(30_000), what: `host1 to learn FRR's 2001:db8:e1::/64 toward SID ${frr.sid}` },
        );
        // Interop on the wire, captured on host1's underlay: FRR (Linux seg6 in the edge) encapsulates
        // toward host1's End.DT6 SID and host1's data plane decapsulates; host1 encapsulates toward
        // FRR's SID and Linux decapsulates. tshark decodes outer and inner headers of both directions.
        const cap = await lab.capture({ netns: cluster.hosts[0]!.ns, ifname: 'eth0', filter: 'ip6' });
        expect(await ping(ext, blue.address)).toBe(3);
        expect(await ping(blue.ns, '2001:db8:e1::2')).toBe(3);
        const wire = await tsharkFields(await cap.stop(), 'icmpv6.type == 128 || icmpv6.type == 129', [
          'ipv6.dst',
          'ipv6.src',
          'icmpv6.type',
        ]);
        // One row per packet: outer and inner destinations (and sources), the echo's type.
        const seen = new Set(wire.map(([dst, src, type]) => `${type} ${dst} ${src}`));
        const hostSid = 'fc00:0:1:2064::';
        const ext1 = '2001:db8:e1::2';
        for (const [type, outerDst, from, to] of [
          ['128', hostSid, ext1, blue.address], // ext1's echo requests, from FRR
          ['129', frr.sid, blue.address, ext1], // blue's replies, toward FRR
          ['128', frr.sid, blue.address, ext1], // blue's echo requests, toward FRR
          ['129', hostSid, ext1, blue.address], // ext1's replies, from FRR
        ] as const)
          expect(
            [...seen].filter((r) => r.startsWith(`${type} ${outerDst},${to} `) && r.endsWith(`,${from}`)),
          ).not.toEqual([]);
        expect(await ping(ext, red.address, 2)).toBe(0);
        expect(await ping(red.ns, '2001:db8:e1::2', 2)).toBe(0);
      },
      paced(120_000),
    );

    it(
      'the CLI agrees field by field with the kernel, the other agents and GoBGP',
      async () => {
        const hosts = cluster.hosts;
        const routeKey = (table: number, dst: string, action: string) => `${table} ${dst} ${action}`;
        const reference = (await cluster.api(hosts[0]!).call('listWorkloads', {})).workloads;
        // Every agent's SID list of every host against that host's data plane; asserted after the
        // loop, so that one disagreement does not hide the other checks' results.
        const sidsDiffer: string[] = [];
        for (const h of hosts) {
          // routes --json: one data-plane object per entry, same table, prefix and action: a kernel route
          // (protocol 203); on the eBPF backend a kernel route (underlay, delivery) or a map entry
          // (sm_policy and sm_exact: egress and redirects; sm_sids: local SIDs).
          const cli = segmeshJson<CliRoute[]>(['routes', '--socket', h.socket]);
          const tables = [...new Set(cli.map((r) => r.table))];
          const dp = await cluster.routeKeys(h, tables);
          const all = (await h.ns.ip('-6', 'route', 'show', 'table', 'all', 'proto', '203')).stdout;
          expect(dp.kernel).toBe(all.split('\n').filter((l) => l.trim()).length); // no table missed
          const cliKeys = cli.map((r) => routeKey(r.table, r.destination, r.action.replace(/ \(.*\)$/, '')));
          // eBPF: another host's locator in a tenant's table needs no entry (the outer packet after
          // H.Encaps is looked up in the main table, bpf_fib_lookup): the main table must have it.
          const unneeded = (k: string) => dp.ebpf && !k.startsWith(`${MAIN_TABLE} `) && / via /.test(k);
          for (const k of cliKeys.filter(unneeded))
            expect(dp.all).toContain(`${MAIN_TABLE} ${k.slice(k.indexOf(' ') + 1)}`);
          expect(cliKeys.filter((k) => !unneeded(k)).sort()).toEqual([...dp.all].sort());

          // hosts --json: every agent lists the same hosts; each entry is what that host says of itself
          // (status) and the SIDs its kernel has.
          const list = segmeshJson<CliHost[]>(['hosts', '--socket', h.socket]);
          expect(list.map((x) => x.name).sort()).toEqual(hosts.map((x) => x.name).sort());
          for (const x of list) {
            const owner = hosts.find((o) => o.name === x.name)!;
            const own = await cluster.api(owner).call('getStatus', {});
            expect({ underlay: x.underlay, locator: x.locator, state: x.state }).toEqual({
              underlay: own.underlay,
              locator: own.locator,
              state: 'up',
            });
            // Its seg6local routes, or its sm_sids entries on the eBPF backend.
            const sids = (await cluster.localSids(owner)).map((s) => `${s.sid} ${s.behavior}`);
            expect(sids.length).toBeGreaterThan(0);
            const listed = [...x.sids].sort().join(', ');
            if (listed !== sids.sort().join(', '))
              sidsDiffer.push(
                `${h.name} lists ${x.name} with [${listed}]; its data plane has [${sids.join(', ')}]`,
              );
          }

          // workloads --json: the same everywhere; local ones have their link, delivery route and
          // address; the delivery SID is an End.DT6 into the tenant's delivery table on the owner.
          const wl = segmeshJson<CliWorkload[]>(['workloads', '--socket', h.socket]);
          const shared = (w: CliWorkload) =>
            `${w.identity} ${w.tenant} ${w.address} ${w.host} ${w.deliverySid}`;
          expect(wl.map(shared).sort()).toEqual(reference.map(shared).sort());
          for (const w of wl) {
            expect(w.local).toBe(w.host === h.name);
            const owner = hosts.find((o) => o.name === w.host)!;
            const sid = (await cluster.localSids(owner)).find((s) => s.sid === w.deliverySid);
            expect(sid).toMatchObject({ behavior: 'End.DT6', table: expect.stringMatching(/^\d+$/) });
            if (!w.local) continue;
            const delivery = await h.ns.ipJson<KernelRoute[]>(
              '-6',
              'route',
              'show',
              'table',
              sid!.table!,
              'proto',
              '203',
            );
            expect(delivery.find((r) => r.dst === w.address)?.dev).toBe(w.hostLink);
            expect((await h.ns.ipJson<unknown[]>('link', 'show', 'dev', w.hostLink)).length).toBe(1);
          }

          // status --json: the counts of the lists above and of the kernel.
          const st = segmeshJson<CliStatus>(['status', '--socket', h.socket]);
          expect(st).toMatchObject({
            host: h.name,
            underlay: h.underlay,
            locator: `fc00:0:${h.index}::/48`,
            ready: true,
            hosts: list.length,
            workloads: wl.length,
            localWorkloads: wl.filter((w) => w.local).length,
            routes: cli.length, // = the data plane's objects, above
          });

          // bgp peers --json: what gobgpd itself says (its own CLI, not our client), and what FRR received.
          const gobgp = async <T>(...args: string[]) =>
            JSON.parse(
              (await sh('gobgp', ['--target', `unix://${h.stateDir}/gobgpd/gobgpd.sock`, ...args, '-j']))
                .stdout,
            ) as T;
          const peers = segmeshJson<CliPeer[]>(['bgp', 'peers', '--socket', h.socket]);
          const neighbors = await gobgp<GobgpNeighbor[]>('neighbor');
          expect(peers.map((p) => p.address)).toEqual(neighbors.map((n) => n.conf.neighbor_address));
          for (const p of peers) {
            const n = await gobgp<GobgpNeighbor>('neighbor', p.address);
            const sum = (k: 'received' | 'accepted' | 'advertised') =>
              String(n.afi_safis.reduce((a, f) => a + (f.state?.[k] ?? 0), 0));
            expect(p).toMatchObject({
              asn: n.conf.peer_asn,
              state: n.state.session_state === 6 ? 'established' : expect.not.stringMatching(/^established$/),
              received: sum('received'),
              accepted: sum('accepted'),
              advertised: sum('advertised'),
            });
            expect(p.state).toBe('established');
            expect(Number(p.advertised)).toBeGreaterThan(0);
            // FRR received exactly what gobgpd says it advertised in VPNv6.
            const vpn = n.afi_safis.find((f) => f.state?.family?.safi === 128)?.state?.advertised ?? 0;
            expect((await frr.vpnReceived())[h.underlay]).toBe(vpn);
          }

          // The advertised routes (GoBGP's own RIB, local paths): one per local workload, RD
          // routerId:tenant, next hop the underlay, SID (label transposed into the SID) = delivery SID.
          const rib = await gobgp<Record<string, GobgpPath[]>>('global', 'rib', '-a', 'vpnv6');
          const own = Object.values(rib)
            .flat()
            .filter((p) => !p['neighbor-ip'])
            .map((p) => {
              const reach = p.attrs.find((a) => a.type === 14)!;
              const psid = p.attrs.find((a) => a.type === 40)!.TLVs![0]!.SubTLVs![0]!;
              const s = psid.sub_sub_tlvs![0]!;
              const sid = Buffer.from(psid.sid!, 'base64');
              // Transposition: the function (16 bits at offset 48 here) travels in the label's top bits.
              const fn = p.nlri.labels[0]! >> (20 - s.transposition_length!);
              sid.writeUInt16BE(fn, s.transposition_offset! / 8);
              return `${p.nlri.prefix} ${p.nlri.rd.admin}:${p.nlri.rd.assigned} ${reach.nexthop} ${formatIpv6(ipv6FromBytes(sid))}`;
            });
          const tenantId = { blue: 100, red: 200 } as Record<string, number>;
          expect(own.sort()).toEqual(
            wl
              .filter((w) => w.local)
              .map(
                (w) =>
                  `${w.address}/128 198.18.0.${h.index}:${tenantId[w.tenant]} ${h.underlay} ${w.deliverySid}`,
              )
              .sort(),
          );
          const unicast = await gobgp<Record<string, GobgpPath[]>>('global', 'rib', '-a', 'ipv6');
          expect(
            Object.values(unicast)
              .flat()
              .filter((p) => !p['neighbor-ip'])
              .map((p) => p.nlri.prefix),
          ).toEqual([`fc00:0:${h.index}::/48`]);
        }
        expect(sidsDiffer).toEqual([]);
      },
      paced(120_000),
    );

    it(
      'withdraws the route from FRR when the workload goes away',
      async () => {
        await cluster.api(cluster.hosts[0]!).call('deleteWorkload', { identity: 'shop.web' });
        await frr.waitRoute(`${blue.address}/128`, { absent: true, timeoutMs: paced(30_000) });
      },
      paced(120_000),
    );

    it(
      'moves a workload between hosts under 100 pings per second from the external client: none lost, FRR follows it',
      async () => {
        const [h1, h2] = cluster.hosts as [AgentHost, AgentHost];
        const cart = await cluster.workload(h1, 'cart1', 'blue', 'shop.cart');
        await frr.waitRoute(`${cart.address}/128`, { sid: 'fc00:0:1:2064::', timeoutMs: paced(30_000) });
        expect(await ping(ext, cart.address)).toBe(3);
        const pinging = await startPing(lab, ext, cart.address);
        await new Promise((r) => setTimeout(r, 1_000));
        // Make before break: the identity starts on host2 with the same address; host1 sees the newer
        // claim, redirects what still reaches it and keeps its BGP path, marked graceful-shutdown (FRR
        // gives it local preference 0), until its instance goes; FRR repoints to host2 meanwhile.
        const moved = await cluster.workload(h2, 'cart2', 'blue', 'shop.cart');
        expect(moved.address).toBe(cart.address);
        await frr.waitRoute(`${cart.address}/128`, { sid: 'fc00:0:2:2064::', timeoutMs: paced(20_000) });
        await waitFor(
          async () => {
            const paths = await frr.paths(`${cart.address}/128`);
            const old = paths.find((p) => pathFromHost(p, h1.underlay));
            const now = paths.find((p) => pathFromHost(p, h2.underlay));
            return (
              now?.bestpath?.overall === true &&
              old?.community?.string?.includes('graceful-shutdown') === true &&
              old.locPrf === 0
            );
          },
          {
            timeoutMs: paced(20_000),
            what: "FRR to prefer host2's path, host1's kept with graceful-shutdown (local preference 0)",
          },
        );
        await new Promise((r) => setTimeout(r, 500));
        await cluster.api(h1).call('deleteWorkload', { identity: 'shop.cart' });
        // Break: host1's path goes with its instance.
        await waitFor(
          async () => {
            const paths = await frr.paths(`${cart.address}/128`);
            return paths.length === 1 && pathFromHost(paths[0]!, h2.underlay);
          },
          {
            timeoutMs: paced(20_000),
            what: "FRR to hold host2's path only once host1's instance is deleted",
          },
        );
        await new Promise((r) => setTimeout(r, 1_000));
        const result = await pinging.stop();
        expect(result.lastSeq).toBeGreaterThan(100); // at least a second of pings (ping slows down under load)
        expect(result.lost).toEqual([]);
        // Only the new instance can answer now (the old one's link is gone).
        expect(await ping(ext, cart.address)).toBe(3);
      },
      paced(120_000),
    );

    it(
      'kill -9 and restart of the agent under 100 pings per second from behind FRR: none lost, the edge route untouched',
      async () => {
        const h2 = cluster.hosts[1]!;
        const cart = (await cluster.api(h2).call('listWorkloads', {})).workloads.find(
          (w) => w.identity === 'shop.cart',
        )!;
        await frr.waitRoute(`${cart.address}/128`, { sid: 'fc00:0:2:2064::' });
        const edgeMonitor = await frr.routeMonitor('ipmon-edge');
        const pinging = await startPing(lab, ext, cart.address);
        await new Promise((r) => setTimeout(r, 1_000));
        h2.agent!.kill('SIGKILL');
        await h2.agent!.exited;
        await new Promise((r) => setTimeout(r, 2_000));
        await cluster.startAgent(h2); // adopts the gobgpd that kept running, and its session
        await new Promise((r) => setTimeout(r, 2_000));
        const result = await pinging.stop();
        await edgeMonitor.stop();
        expect(result.lastSeq).toBeGreaterThan(300);
        expect(result.lost).toEqual([]);
        // FRR never removed or rewrote the workload's route: the adopted session sent nothing new.
        expect(edgeMonitor.events().filter((l) => l.includes(cart.address))).toEqual([]);
        await frr.waitSession(h2.underlay);
      },
      paced(180_000), // starts an agent
    );

    it(
      "a stopped host's workloads leave FRR within the dead interval, and return with it",
      async () => {
        const h2 = cluster.hosts[1]!;
        const cart = (await cluster.api(h2).call('listWorkloads', {})).workloads.find(
          (w) => w.identity === 'shop.cart',
        )!;
        await frr.waitRoute(`${cart.address}/128`, { sid: 'fc00:0:2:2064::' });
        // The host stops: agent killed, underlay dark (gobgpd, detached, stays but cannot talk).
        h2.agent!.kill('SIGKILL');
        await h2.agent!.exited;
        await h2.ns.sysctl('net.ipv6.conf.eth0.keep_addr_on_down', '1');
        await h2.ns.ip('link', 'set', 'eth0', 'down');
        const stopped = Date.now();
        await frr.waitRoute(`${cart.address}/128`, { absent: true, timeoutMs: paced(30_000) });
        const gone = Date.now() - stopped;
        // BGP hold time = the dead interval (6 s); plus the last keepalive's age and zebra, under load.
        expect(gone).toBeLessThan(6_000 + 4_000);
        await h2.ns.ip('link', 'set', 'eth0', 'up');
        await cluster.startAgent(h2);
        await frr.waitRoute(`${cart.address}/128`, { sid: 'fc00:0:2:2064::', timeoutMs: paced(40_000) });
        // The way back needs FRR's prefix relearned by host2 (its session is new) and the routes the
        // kernel dropped with the link (its SIDs, the locator routes) written again by the agent.
        await waitFor(async () => (await ping(ext, cart.address, 1)) === 1, {
          timeoutMs: paced(30_000),
          what: 'the external client to reach shop.cart on host2 again',
        });
        expect(await ping(ext, cart.address)).toBe(3);
      },
      paced(180_000), // starts an agent
    );
  },
);
