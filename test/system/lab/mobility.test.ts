/**
 * `topologies/mobility.yaml` with agents: blue/mover moves from host1 to host2 under 100 pps pings from
 * blue/prober (host3) and from the external client behind FRR. Make before break, as a runtime would
 * do it: the new instance is attached on host2 through CNI (same identity, so the same address), and
 * the old one deleted on host1 only once every host and the edge forward to host2. Nothing is lost;
 * the time until each host and FRR forward to the new host is printed.
 *
 * Two suites: the topology as it is (its FRR edge router in a container where this kernel has seg6
 * routes, else in a VM on Debian's kernel: runtime auto, src/lab/vm-edge.ts), and its hosts alone (edge
 * router and external client left out). Either way the agents run on whatever data plane this kernel
 * offers them: the kernel's seg6 routes, or the eBPF backend where it has none (each container on its
 * own bpffs; the programs go with the containers). Convergence is read from the agents' state (an eBPF
 * agent makes no kernel routes to watch) and from FRR's kernel routes on the edge.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { detectKernelFeatures } from '../../../src/dataplane/features.ts';
import { newClusterKey, newOperatorKey } from '../../../src/gossip/index.ts';
import {
  agentWorkloads,
  attachWorkload,
  detachWorkload,
  type PlacedWorkload,
  startFabric,
} from '../../../src/lab/fabric.ts';
import {
  labDocker,
  labDown,
  labStatus,
  labUp,
  loadTopology,
  planFromFile,
  type RunningLab,
} from '../../../src/lab/lab.ts';
import type { Endpoint } from '../../../src/lab/matrix.ts';
import { planLab } from '../../../src/lab/plan.ts';
import { asEndpoint, labEndpoints, ping } from '../../../src/lab/probe.ts';
import { runPrefix, sweep, systemSuite, waitFor } from '../../harness/index.ts';
import { labImage, progress, runLabels, runSlot } from './docker.ts';

const FILE = new URL('../../../topologies/mobility.yaml', import.meta.url).pathname;
const kernel = await detectKernelFeatures();

// FRR as the topology says (runtime auto): in a container where this kernel has seg6 routes, else the
// VM edge. A loss prints where it happened (FRR's route changes, kernel drop counters, agents' logs).
systemSuite(
  'lab: a workload moves between hosts under traffic (topologies/mobility.yaml)',
  { tools: ['dockerd', 'docker'] },
  () => {
    const prefix = `${runPrefix()}-mob`;
    let lab: RunningLab | undefined;
    let workloads: PlacedWorkload[] = [];
    let endpoints: Endpoint[] = [];
    const ep = (name: string) => endpoints.find((e) => e.name === name)!;

    beforeAll(async () => {
      await sweep();
      const image = await labImage();
      const planned = await planFromFile(FILE, {
        prefix,
        labels: runLabels(),
        relocate: runSlot(),
        hostRuntime: 'agent',
        operator: await newOperatorKey(),
        clusterKey: await newClusterKey(),
      });
      lab = await labUp(planned, { image, progress });
      workloads = await startFabric(lab, progress);
      endpoints = labEndpoints(lab, workloads);
    }, 30 * 60_000);

    afterAll(async () => {
      await labDown(prefix, progress);
    });

    /**
     * Kernel counters that place a loss: each host agent's eBPF verdicts that drop (its metrics, from the
     * maps), and every node's IPv6 discard counters (/proc/net/snmp6), FRR's edge (a VM or a container)
     * among them.
     */
    const dropCounters = async (): Promise<Map<string, number>> => {
      const out = new Map<string, number>();
      for (const node of ['host1', 'host2', 'host3', 'edge1']) {
        if (node !== 'edge1') {
          const js =
            "fetch('http://127.0.0.1:9469/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))";
          const text = await lab!.run(node, ['/opt/segmesh/node_modules/node/bin/node', '-e', js]);
          for (const m of text.matchAll(
            /^segmesh_dataplane_verdicts_total\{reason="(drop_[a-z0-9_]+)"\} (\d+)$/gm,
          ))
            out.set(`${node} ${m[1]}`, Number(m[2]));
        }
        const snmp6 = await lab!.run(node, ['cat', '/proc/net/snmp6']);
        for (const m of snmp6.matchAll(
          /^(Ip6(?:In|Out)(?:Discards|NoRoutes|AddrErrors|HdrErrors|TooBigErrors))\s+(\d+)$/gm,
        ))
          out.set(`${node} ${m[1]}`, Number(m[2]));
      }
      return out;
    };
    const counterDelta = (a: Map<string, number>, b: Map<string, number>) =>
      [...b].filter(([k, v]) => v !== (a.get(k) ?? 0)).map(([k, v]) => `${k} +${v - (a.get(k) ?? 0)}`);
    /** A node's clock minus ours, in ms (FRR's VM keeps its own). */
    const clockOffset = async (node: string) => {
      const before = Date.now();
      const theirs = Number(await lab!.run(node, ['date', '+%s.%N'])) * 1000;
      return theirs - (before + Date.now()) / 2;
    };
    /** The agent's log lines of `node` between two times (ms since the epoch), relative to `t0`. */
    const agentLog = async (node: string, from: number, to: number, t0: number) =>
      (await lab!.run(node, ['cat', '/var/log/segmesh/agent.log'])).split('\n').flatMap((l) => {
        try {
          const j = JSON.parse(l) as { time: number; msg: string } & Record<string, unknown>;
          if (j.time < from || j.time > to) return [];
          const { time, msg, level: _l, pid: _p, hostname: _h, ...rest } = j;
          return [`  ${node} ${time - t0} ms: ${msg} ${JSON.stringify(rest)}`];
        } catch {
          return [];
        }
      });

    /** Where `node` forwards `address` now: its kernel routes (FRR's edge: any table, its VRF's among them). */
    const routeTo = async (node: string, address: string) =>
      lab!.run(node, ['ip', '-6', 'route', 'show', 'table', 'all', `${address}/128`]);

    it('moves blue/mover from host1 to host2 with 0 lost from a host and from behind FRR', async () => {
      const mover = workloads.find((w) => w.name === 'blue/mover')!;
      expect(mover.host).toBe('host1');
      // Controls before the move: both sources reach the mover.
      for (const from of [ep('blue/prober'), ep('ext1')])
        await waitFor(async () => (await ping(lab!, from, mover.address, { count: 1 })).received === 1, {
          timeoutMs: 30_000,
          what: `${from.name} reaches blue/mover before the move`,
        });

      const flood = (from: Endpoint) =>
        lab!.exec(
          from.node,
          // -D -O: every reply and every late one with its time, so that a loss can be placed in the move.
          asEndpoint(from, ['ping', '-6', '-n', '-D', '-O', '-i', '0.01', '-c', '1500', mover.address]),
        );
      // FRR's route changes during the move, from its own kernel (a VM's or a container's).
      const monitor = '/tmp/segmesh-mobility-routes';
      await lab!.run('edge1', [
        'sh',
        '-c',
        `setsid ip -ts monitor route >${monitor}.log 2>&1 </dev/null & echo $! >${monitor}.pid`,
      ]);
      const edgeClock = await clockOffset('edge1');
      const counters0 = await dropCounters();
      const floods = [flood(ep('blue/prober')), flood(ep('ext1'))];
      await new Promise((r) => setTimeout(r, 2_000));

      // The new instance: a fresh namespace on host2, attached through CNI under the same identity.
      const moved: PlacedWorkload = { ...mover, host: 'host2' };
      await lab!.run('host2', [
        'sh',
        '-c',
        `ip netns add ${mover.netns} && ip -n ${mover.netns} link set lo up`,
      ]);
      const t0 = Date.now();
      expect(await attachWorkload(lab!, moved)).toBe(mover.address); // sticky: same identity, same address
      const attachedMs = Date.now() - t0;
      const { deliverySid } = (await agentWorkloads(lab!, 'host2')).find((w) => w.identity === mover.name)!;
      // Converged: the agents of host1 and host3 place the mover on host2 (their data plane follows in the
      // same reconcile: kernel routes or BPF maps; the pings below prove it), and FRR's kernel route to
      // the mover leads to host2's delivery SID. Times are when a poll first saw it (coarse: each is a command).
      const converged = new Map<string, number>();
      await waitFor(
        async () => {
          for (const host of ['host1', 'host3']) {
            if (converged.has(host)) continue;
            const w = (await agentWorkloads(lab!, host)).find((x) => x.identity === mover.name);
            if (w?.host === 'host2') converged.set(host, Date.now());
          }
          if (!converged.has('edge1') && (await routeTo('edge1', mover.address)).includes(deliverySid))
            converged.set('edge1', Date.now());
          return converged.size === 3;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 100,
          what: `host1 and host3 place blue/mover on host2, edge1 forwards it to ${deliverySid}`,
        },
      );
      // zebra replaced FRR's route to the mover in one step: the new route is in the monitor (it was
      // listening), with no deletion of the mover's route before it. (Delete then add, zebra's way
      // without --v6-rr-semantics, left no route for 185 ms under TCG: pings from ext1 were lost.)
      const routes = await lab!.run('edge1', ['sh', '-c', `kill $(cat ${monitor}.pid); cat ${monitor}.log`]);
      // Each line: [time] route (-ts), the time on the edge's clock.
      const moverRoutes = routes
        .split('\n')
        .map((l) => /^\[([^\]]+)\]\s*(.*)$/.exec(l))
        .filter((m) => m?.[2]?.includes(mover.address))
        .map((m) => ({ atMs: Date.parse(`${m![1]}Z`) - edgeClock - t0, route: m![2]! }));
      expect(
        moverRoutes.some((r) => r.route.startsWith(mover.address) && r.route.includes(deliverySid)),
      ).toBe(true);
      expect(moverRoutes.filter((r) => r.route.startsWith(`Deleted ${mover.address}`))).toEqual([]);
      // Break only now: the old instance goes (CNI DEL on host1).
      const delAt = Date.now();
      await detachWorkload(lab!, mover);

      const results = await Promise.all(floods);
      const lost = results.map((r) => {
        const m = /(\d+) packets transmitted, (\d+) received/.exec(r.output);
        // Unanswered sequence numbers, with when ping gave up waiting (relative to the CNI ADD).
        const answered = new Set([...r.output.matchAll(/icmp_seq=(\d+) ttl/g)].map((x) => Number(x[1])));
        const late = [...r.output.matchAll(/^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)/gm)]
          .filter((x) => !answered.has(Number(x[2])))
          .map((x) => `seq ${x[2]} at ${Math.round(Number(x[1]) * 1000 - t0)} ms`);
        return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), late };
      });
      const after = (node: string) => `${converged.get(node)! - t0} ms`;
      progress(
        `mobility: CNI ADD returned after ${attachedMs} ms; ` +
          `repointed: host1 ${after('host1')}, host3 ${after('host3')}, edge1 (FRR) ${after('edge1')}; ` +
          `CNI DEL at ${delAt - t0} ms; ` +
          `lost prober ${lost[0]!.sent - lost[0]!.received}/${lost[0]!.sent} [${lost[0]!.late.join(', ')}], ` +
          `ext1 ${lost[1]!.sent - lost[1]!.received}/${lost[1]!.sent} [${lost[1]!.late.join(', ')}]`,
      );
      progress(
        `mobility: FRR's routes to the mover (edge clock ${Math.round(edgeClock)} ms from ours): ${moverRoutes
          .map((r) => `${Math.round(r.atMs)} ms ${r.route}`)
          .join('; ')}`,
      );
      const dropped = counterDelta(counters0, await dropCounters());
      progress(`mobility: kernel drop counters during the move: ${dropped.join(', ') || 'none moved'}`);
      if (lost.some((l) => l.sent !== l.received)) {
        // Place the loss: what host1's and host2's agents did around it.
        const from = t0 - 1_000;
        const to = t0 + (converged.get('edge1')! - t0) + 1_000;
        progress(
          `mobility: agent logs around the loss:\n${[
            ...(await agentLog('host2', from, to, t0)),
            ...(await agentLog('host1', from, to, t0)),
          ].join('\n')}`,
        );
      }
      for (const l of lost) {
        expect(l.sent).toBe(1500);
        expect(l.received).toBe(1500);
      }
      // Afterwards every agent places the mover on host2 and host1 no longer has it.
      for (const host of ['host1', 'host2', 'host3']) {
        const seen = (await agentWorkloads(lab!, host)).find((w) => w.identity === mover.name);
        expect(seen?.host, host).toBe('host2');
      }
      expect((await ping(lab!, { ...ep('blue/prober') }, mover.address, { count: 2 })).received).toBe(2);
    });
  },
);

systemSuite(
  'lab: a workload moves between hosts under traffic, hosts only (topologies/mobility.yaml without its edge)',
  { tools: ['dockerd', 'docker', 'bpftool'] },
  () => {
    const prefix = `${runPrefix()}-mobh`;
    // The agents' choice (dataplane.backend: auto): the kernel's seg6 routes where it has them. Found as
    // the agents find it (not the harness's view, which SEGMESH_TEST_KERNEL_LACKS can bend).
    const backend = kernel.seg6 && kernel.seg6local ? 'kernel' : 'ebpf';
    const hosts = ['host1', 'host2', 'host3'];
    let lab: RunningLab | undefined;
    let workloads: PlacedWorkload[] = [];
    let endpoints: Endpoint[] = [];
    const ep = (name: string) => endpoints.find((e) => e.name === name)!;

    beforeAll(async () => {
      await sweep();
      const image = await labImage();
      const spec = await loadTopology(FILE);
      const hostsOnly = { ...spec, nodes: [] };
      // Its own subnet slot: the suite above may still be tearing its lab down.
      const plan = planLab(hostsOnly, {
        file: FILE,
        prefix,
        labels: runLabels(),
        relocate: runSlot() + 12,
        hostRuntime: 'agent',
        operator: await newOperatorKey(),
        clusterKey: await newClusterKey(),
      });
      expect(plan.edges.size).toBe(0);
      lab = await labUp(plan, { image, progress });
      workloads = await startFabric(lab, progress);
      endpoints = labEndpoints(lab, workloads);
    }, 30 * 60_000);

    afterAll(async () => {
      await labDown(prefix, progress);
    });

    /** The host PID of a node's container (its pins are under /proc/PID/root). */
    const pidOf = async (node: string) =>
      (await (await labDocker()).getContainer(lab!.node(node).containerName).inspect()).State.Pid;
    /** The BPF objects behind a node's pins (maps `sm_*`, tcx links `link_*` and their programs). */
    const pinnedObjects = async (node: string): Promise<{ kind: 'map' | 'link' | 'prog'; id: number }[]> => {
      const dir = `/proc/${await pidOf(node)}/root/sys/fs/bpf/segmesh`;
      const out: { kind: 'map' | 'link' | 'prog'; id: number }[] = [];
      for (const pin of readdirSync(dir)) {
        const kind = pin.startsWith('link_') ? 'link' : pin.startsWith('sm_') ? 'map' : undefined;
        if (!kind) continue;
        const j = JSON.parse(
          execFileSync('bpftool', [kind, 'show', 'pinned', `${dir}/${pin}`, '-j'], { encoding: 'utf8' }),
        ) as { id: number; prog_id?: number };
        out.push({ kind, id: j.id });
        if (j.prog_id) out.push({ kind: 'prog', id: j.prog_id });
      }
      return out;
    };
    const exists = (o: { kind: string; id: number }) => {
      try {
        execFileSync('bpftool', [o.kind, 'show', 'id', String(o.id)], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    };

    it(`runs every agent on the ${backend} data plane, shown by lab status`, async () => {
      const status = await labStatus(prefix);
      expect(status.nodes.map((n) => [n.node, n.daemons.segmesh, n.dataplane?.backend])).toEqual(
        hosts.map((h) => [h, true, backend]),
      );
      if (backend !== 'ebpf') return;
      // Each container has a bpffs of its own at /sys/fs/bpf (a device of its own), with its pins.
      const devices = new Set<string>();
      for (const host of hosts) {
        const pins = await lab!.run(host, ['ls', '/sys/fs/bpf/segmesh']);
        expect(pins, host).toMatch(/^sm_/m);
        expect(pins, host).toMatch(/^link_ul_in_eth0$/m);
        // wl_in on the host side of each workload's veth (host1: blue/mover, host3: blue/prober).
        if (host !== 'host2') expect(pins, host).toMatch(/^link_wl_in_/m);
        devices.add((await lab!.run(host, ['stat', '-c', '%d', '/sys/fs/bpf/segmesh'])).trim());
        expect(await lab!.run(host, ['stat', '-f', '-c', '%T', '/sys/fs/bpf/segmesh']), host).toContain(
          'bpf',
        );
        // ul_in's tcx link on the underlay link, with its program.
        const objects = await pinnedObjects(host);
        expect(objects.filter((o) => o.kind === 'prog').length, host).toBeGreaterThan(0);
      }
      expect(devices.size).toBe(hosts.length);
    });

    it('moves blue/mover from host1 to host2 with 0 lost from blue/prober', async () => {
      const mover = workloads.find((w) => w.name === 'blue/mover')!;
      const prober = ep('blue/prober');
      expect(mover.host).toBe('host1');
      await waitFor(async () => (await ping(lab!, prober, mover.address, { count: 1 })).received === 1, {
        timeoutMs: 30_000,
        what: 'blue/prober reaches blue/mover before the move',
      });
      const flood = lab!.exec(
        prober.node,
        asEndpoint(prober, ['ping', '-6', '-n', '-D', '-O', '-i', '0.01', '-c', '1500', mover.address]),
      );
      await new Promise((r) => setTimeout(r, 2_000));
      const moved: PlacedWorkload = { ...mover, host: 'host2' };
      await lab!.run('host2', [
        'sh',
        '-c',
        `ip netns add ${mover.netns} && ip -n ${mover.netns} link set lo up`,
      ]);
      const t0 = Date.now();
      expect(await attachWorkload(lab!, moved)).toBe(mover.address);
      const attachedMs = Date.now() - t0;
      // Converged: the agents of host1 and host3 place the mover on host2 (their data plane follows
      // within the same reconcile; the pings below are what proves it).
      const seenAt = new Map<string, number>();
      await waitFor(
        async () => {
          for (const host of ['host1', 'host3']) {
            if (seenAt.has(host)) continue;
            const w = (await agentWorkloads(lab!, host)).find((x) => x.identity === mover.name);
            if (w?.host === 'host2') seenAt.set(host, Date.now() - t0);
          }
          return seenAt.size === 2;
        },
        { timeoutMs: 30_000, intervalMs: 100, what: 'host1 and host3 place blue/mover on host2' },
      );
      const delAt = Date.now() - t0;
      await detachWorkload(lab!, mover);
      const r = await flood;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(r.output);
      const sent = Number(m?.[1] ?? 0);
      const received = Number(m?.[2] ?? 0);
      progress(
        `mobility (hosts only, ${backend}): CNI ADD returned after ${attachedMs} ms; ` +
          `host1 placed it on host2 at ${seenAt.get('host1')} ms, host3 at ${seenAt.get('host3')} ms; ` +
          `CNI DEL at ${delAt} ms; lost ${sent - received}/${sent}`,
      );
      expect(sent).toBe(1500);
      expect(received).toBe(1500);
      for (const host of hosts) {
        const seen = (await agentWorkloads(lab!, host)).find((w) => w.identity === mover.name);
        expect(seen?.host, host).toBe('host2');
      }
      // After the break the prober still reaches it (on host2).
      expect((await ping(lab!, prober, mover.address, { count: 2 })).received).toBe(2);
    });

    it('down removes the containers, and with them their pinned BPF maps, links and programs', async () => {
      const objects = backend === 'ebpf' ? (await Promise.all(hosts.map(pinnedObjects))).flat() : [];
      if (backend === 'ebpf')
        expect(objects.filter((o) => o.kind === 'prog').length).toBeGreaterThanOrEqual(hosts.length);
      // Control: they exist while the lab is up.
      for (const o of objects) expect(exists(o), `${o.kind} ${o.id}`).toBe(true);
      const report = await labDown(prefix, progress);
      expect(report.containers.sort()).toEqual(hosts.map((h) => `${prefix}-${h}`));
      const left = () => objects.filter(exists).map((o) => `${o.kind} ${o.id}`);
      await waitFor(async () => left().length === 0, {
        timeoutMs: 10_000,
        what: "the BPF objects of the lab's containers are gone",
      }).catch((e: Error) => {
        throw new Error(`${e.message}; left: ${left().join(', ')}`);
      });
    });
  },
);
