/**
 * The demo (`segmesh lab demo topologies/edge.yaml`) and the system checks that need its fabric: three
 * hosts each running the agent (and its gobgpd) in a container, the FRR edge and the external client,
 * the policy published with the lab's operator key, five workloads of two tenants attached through
 * the CNI plugin. The demo's own matrix is the first check; the lab is kept up for the rest.
 *
 * Runs on any kernel: the agents take the kernel's seg6 routes or the eBPF backend, the edge runs in a
 * container or (where this kernel lacks seg6 routes) in a VM on Debian's kernel (runtime: auto). Drops
 * are read from the data plane the agents use: the kernel's counters, or the eBPF programs' verdicts.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { detectKernelFeatures } from '../../../src/dataplane/features.ts';
import { runDemo } from '../../../src/lab/demo.ts';
import type { PlacedWorkload } from '../../../src/lab/fabric.ts';
import { labDown, labStatus, type RunningLab } from '../../../src/lab/lab.ts';
import { type Cell, mismatches } from '../../../src/lab/matrix.ts';
import { AGENT_CONFIG_PATH, AGENT_SOCKET } from '../../../src/lab/plan.ts';
import { asEndpoint, ping } from '../../../src/lab/probe.ts';
import { runPrefix, sweep, systemSuite, waitFor } from '../../harness/index.ts';
import { labImage, progress, runLabels, runSlot } from './docker.ts';

const FILE = new URL('../../../topologies/edge.yaml', import.meta.url).pathname;
const kernel = await detectKernelFeatures();
/** The agents' choice (dataplane.backend: auto), found as the agents find it. */
const backend = kernel.seg6 && kernel.seg6local ? 'kernel' : 'ebpf';

systemSuite('lab: the demo on topologies/edge.yaml with agents', { tools: ['dockerd', 'docker'] }, () => {
  const prefix = `${runPrefix()}-demo`;
  let code = -1;
  let out = '';
  let lab: RunningLab | undefined;
  let workloads: PlacedWorkload[] = [];
  let cells: Cell[] = [];
  const w = (name: string) => {
    const found = workloads.find((x) => x.name === name);
    if (!found) throw new Error(`no workload ${name}`);
    return { ...found, kind: 'workload' as const, node: found.host };
  };
  const ext1 = () => ({
    name: 'ext1',
    tenant: 'blue',
    kind: 'external' as const,
    node: 'ext1',
    address: lab!.node('ext1').endpoints[0]!.ipv6,
  });
  const snmp6 = async (node: string, counter: string) => {
    const text = await lab!.run(node, ['cat', '/proc/net/snmp6']);
    const m = new RegExp(`^${counter}\\s+(\\d+)$`, 'm').exec(text);
    if (!m) throw new Error(`${node}: no ${counter} in /proc/net/snmp6`);
    return Number(m[1]);
  };
  /** One sample of a host agent's metrics (its pinned node; the container has no other). */
  const metric = async (node: string, name: string) => {
    const js =
      "fetch('http://127.0.0.1:9469/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))";
    const text = await lab!.run(node, ['/opt/segmesh/node_modules/node/bin/node', '-e', js]);
    const line = text.split('\n').find((l) => l.startsWith(name));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };
  /**
   * Packets a host dropped toward another tenant: the kernel's count of lookups with no route (the
   * tenant table has none), or the eBPF programs' policy verdicts (the tenant map has none).
   */
  const tenantDrops = (node: string) =>
    backend === 'kernel'
      ? snmp6(node, 'Ip6InNoRoutes')
      : metric(node, 'segmesh_dataplane_verdicts_total{reason="drop_policy"}');

  beforeAll(async () => {
    await sweep();
    await labImage();
    code = await runDemo(
      FILE,
      {
        once: true,
        keep: true,
        json: true,
        name: prefix,
        plan: { labels: runLabels(), relocate: runSlot() },
      },
      {
        out: (t) => {
          out += t;
        },
        progress,
        untilInterrupted: async () => {},
        onMatrix: async (r) => {
          lab = r.lab;
          workloads = r.workloads;
          cells = r.cells;
        },
      },
    );
  }, 30 * 60_000);

  afterAll(async () => {
    await labDown(prefix, progress);
  });

  it('the demo matrix is all as expected: same tenant reached across hosts and through FRR, other tenants not', () => {
    const report = JSON.parse(out.trim().split('\n').at(-1)!) as { ok: boolean; matrix: unknown[] };
    expect(mismatches(cells), out).toEqual([]);
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    // 5 workloads and 1 external client: 6 x 5 ordered pairs.
    expect(cells).toHaveLength(30);
    const cell = (from: string, to: string) => cells.find((c) => c.from.name === from && c.to.name === to)!;
    expect(cell('blue/web-1', 'blue/web-2').seen).toBe(true); // across hosts
    expect(cell('ext1', 'blue/client-1').seen).toBe(true); // through FRR
    expect(cell('blue/web-1', 'red/db-1').seen).toBe(false); // same host, other tenant
    expect(cell('ext1', 'red/api-1').seen).toBe(false);
    // The agents gave every workload the address the model derives from its identity.
    for (const x of workloads)
      expect(x.address).toMatch(x.tenant === 'blue' ? /^2001:db8:b100:/ : /^2001:db8:b200:/);
  });

  it(`cross-host traffic is SRv6 toward the delivery SID; cross-tenant drops are counted (${backend})`, async () => {
    const web2 = w('blue/web-2');
    const listed = JSON.parse(
      await lab!.run('host1', ['segmesh', 'workloads', '--json', '--socket', AGENT_SOCKET]),
    ) as { identity: string; deliverySid: string }[];
    const sid = listed.find((x) => x.identity === web2.name)!.deliverySid;
    expect(sid).toMatch(/^fc00:/);
    // Capture on host2's underlay: the outer destination is the End.DT6 SID, the inner the workload.
    await lab!.run('host2', [
      'sh',
      '-c',
      `timeout 20 tcpdump -n -i eth0 -c 3 "ip6 dst ${sid}" >/tmp/cap.txt 2>&1 & sleep 1`,
    ]);
    const r = await ping(lab!, w('blue/web-1'), web2.address, { count: 5 });
    expect(r.received, r.output).toBe(5);
    await waitFor(async () => /3 packets captured/.test(await lab!.run('host2', ['cat', '/tmp/cap.txt'])), {
      timeoutMs: 10_000,
      what: 'tcpdump on host2 saw 3 packets to the SID',
    });
    expect(await lab!.run('host2', ['cat', '/tmp/cap.txt'])).toContain(`> ${sid}:`);

    // Isolation: blue/web-1's tenant table has no route to red: the kernel counts each drop.
    const before = await tenantDrops('host1');
    expect((await ping(lab!, w('blue/web-1'), w('red/db-1').address, { count: 2 })).received).toBe(0);
    expect((await ping(lab!, w('blue/web-1'), w('red/api-1').address, { count: 2 })).received).toBe(0);
    expect((await tenantDrops('host1')) - before).toBeGreaterThanOrEqual(4);
    // Positive control in the same run.
    expect((await ping(lab!, w('blue/web-1'), w('blue/client-1').address, { count: 2 })).received).toBe(2);
  });

  it("the external client reaches blue's workloads through FRR; red is dropped at the edge", async () => {
    // The edge has no route to red's prefix (red is not in its VPN, and lab nodes have no default
    // route): the edge's kernel counts each drop.
    const before = await snmp6('edge1', 'Ip6InNoRoutes');
    expect((await ping(lab!, ext1(), w('red/db-1').address, { count: 2 })).received).toBe(0);
    expect((await snmp6('edge1', 'Ip6InNoRoutes')) - before).toBeGreaterThanOrEqual(2);
    expect((await ping(lab!, ext1(), w('blue/web-2').address, { count: 2 })).received).toBe(2);
    // FRR learned blue's workloads as VPN routes with the hosts' SRv6 SIDs, and none of red's.
    const vpn = await lab!.run('edge1', ['vtysh', '-c', 'show bgp ipv6 vpn']);
    for (const x of workloads.filter((y) => y.tenant === 'blue')) expect(vpn).toContain(x.address);
  });

  it('kill -9 of an agent and its restart under 100 pps: 0 lost, no route deleted', async () => {
    const from = w('blue/web-1');
    const to = w('blue/web-2');
    // What the restarted agent reconciles is in its log after this line (kernel routes or BPF map
    // entries alike: an eBPF agent makes no route events to watch).
    const logLines = Number(
      (await lab!.run('host2', ['sh', '-c', 'wc -l </var/log/segmesh/agent.log'])).trim(),
    );
    const flow = lab!.exec(
      'host1',
      asEndpoint(from, ['ping', '-6', '-n', '-q', '-i', '0.01', '-c', '800', to.address]),
    );
    await new Promise((r) => setTimeout(r, 1_000));
    const pid = (await lab!.run('host2', ['pgrep', '-o', '-f', 'main.js agent'])).trim();
    expect(pid).toMatch(/^\d+$/);
    await lab!.run('host2', ['kill', '-9', pid]);
    await lab!.run('host2', [
      'sh',
      '-c',
      `rm -f ${AGENT_SOCKET}; setsid segmesh agent --config ${AGENT_CONFIG_PATH} >>/var/log/segmesh/agent.log 2>&1 </dev/null &`,
    ]);
    await waitFor(async () => (await lab!.exec('host2', ['test', '-S', AGENT_SOCKET])).exitCode === 0, {
      timeoutMs: 60_000,
      what: 'host2: the restarted agent answers',
    });
    const r = await flow;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.output);
    progress(`kill -9 under traffic: ${m?.[0]}`);
    expect(Number(m?.[1])).toBe(800);
    expect(Number(m?.[2]), r.output).toBe(800);
    // The restarted agent reconciled (its status answers) without deleting a route.
    await waitFor(
      async () => {
        const s = JSON.parse(
          await lab!.run('host2', ['segmesh', 'status', '--json', '--socket', AGENT_SOCKET]),
        );
        return (s as { ready?: boolean }).ready === true;
      },
      { timeoutMs: 60_000, what: 'host2: the restarted agent is ready' },
    );
    const after = await lab!.run('host2', [
      'sh',
      '-c',
      `tail -n +${logLines + 1} /var/log/segmesh/agent.log`,
    ]);
    const reports = after
      .split('\n')
      .filter((l) => l.includes('"msg":"reconciled"'))
      .map((l) => JSON.parse(l) as { deleted: number; added: number; replaced: number });
    // Control: the restarted agent did reconcile (its first pass is full), and deleted nothing.
    expect(after).toContain('"msg":"agent started"');
    expect(reports.map((r) => r.deleted).filter((d) => d > 0)).toEqual([]);
  });

  it('stays a lab of this run until removed', async () => {
    const status = await labStatus(prefix);
    expect(status.nodes.map((n) => n.node).sort()).toEqual(['edge1', 'ext1', 'host1', 'host2', 'host3']);
  });
});
