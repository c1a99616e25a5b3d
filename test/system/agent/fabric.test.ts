import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MAP } from '../../../src/dataplane/ebpf/abi.ts';
import { tsharkFields } from '../../harness/capture.ts';
import { createLab, routeMonitor, systemSuite, waitFor } from '../../harness/index.ts';
import {
  AgentCluster,
  bpfMapEntries,
  ping,
  segmesh,
  segmeshJson,
  sendRawIpv6,
  startPing,
  TENANTS,
} from './cluster.ts';

systemSuite('agent: a fabric of three agents', { tools: ['ip', 'nft', 'ping', 'tcpdump', 'tshark'] }, () => {
  const lab = createLab();
  const cluster = new AgentCluster(lab);
  let blue1: { ns: import('../../harness/index.ts').Netns; address: string };
  let blue2: typeof blue1;
  let blue3: typeof blue1;
  let red1: typeof blue1;
  let red2: typeof blue1;

  beforeAll(async () => {
    await cluster.create(3);
    cluster.applyTenants();
    const [h1, h2, h3] = cluster.hosts;
    blue1 = await cluster.workload(h1!, 'b1', 'blue', 'shop.web-1');
    blue2 = await cluster.workload(h2!, 'b2', 'blue', 'shop.web-2');
    blue3 = await cluster.workload(h3!, 'b3', 'blue', 'shop.db-1');
    red1 = await cluster.workload(h1!, 'r1', 'red', 'bank.api-1');
    red2 = await cluster.workload(h2!, 'r2', 'red', 'bank.api-2');
    await cluster.converged(5);
  }, 120_000);
  afterAll(async () => {
    cluster.close();
    await lab.teardown();
  });

  it('same-tenant workloads reach each other across hosts over SRv6', async () => {
    expect(await ping(blue1.ns, blue2.address)).toBe(3);
    expect(await ping(blue2.ns, blue3.address)).toBe(3);
    expect(await ping(red1.ns, red2.address)).toBe(3);
    // The path is SRv6, seen on the wire: host1 encapsulates toward host2's End.DT6 SID of tenant blue
    // (H.Encaps.Red with one segment: the SID is the outer destination, no SRH, IPv6 inside).
    const cap = await lab.capture({ netns: cluster.hosts[1]!.ns, ifname: 'eth0', filter: 'ip6' });
    expect(await ping(blue1.ns, blue2.address, 2)).toBe(2);
    const rows = await tsharkFields(await cap.stop(), 'ipv6.nxt == 41', ['ipv6.dst', 'ipv6.nxt']);
    const toBlue2 = rows.filter(([dst]) => dst === `fc00:0:2:2064::,${blue2.address}`);
    expect(toBlue2.length).toBeGreaterThanOrEqual(2);
  });

  it('different tenants cannot reach each other, on the same host or across hosts (kernel counts the drops)', async () => {
    const h1 = cluster.hosts[0]!;
    const before = await cluster.drops(h1, 'no-route', '');
    expect(await ping(blue1.ns, red1.address, 2)).toBe(0); // same host
    expect(await ping(blue1.ns, red2.address, 2)).toBe(0); // remote host
    expect(await ping(red1.ns, blue2.address, 2)).toBe(0); // the other direction
    const after = await cluster.drops(h1, 'no-route', '');
    expect(after - before).toBeGreaterThanOrEqual(6);
    // Positive control in the same run.
    expect(await ping(blue1.ns, blue2.address, 2)).toBe(2);
  });

  it('a workload that encapsulates its own packets toward the other tenant SID gets nothing delivered', async () => {
    // blue1 builds H.Encaps itself toward host2's red End.DT6 SID: its link's ingress drops it.
    const h1 = cluster.hosts[0]!;
    const link = segmeshJson<Array<{ identity: string; hostLink: string }>>([
      'workloads',
      '--socket',
      h1.socket,
    ]).find((w) => w.identity === 'shop.web-1')!.hostLink;
    const cap = await lab.capture({ netns: red2.ns, ifname: 'eth0', filter: 'icmp6' });
    const before = await cluster.drops(h1, 'workload-srv6', link);
    await sendRawIpv6(
      blue1.ns,
      `IPv6(src='${blue1.address}', dst='fc00:0:2:20c8::') / ` +
        `IPv6ExtHdrSegmentRouting(addresses=['fc00:0:2:20c8::'], segleft=0, lastentry=0) / ` +
        `IPv6(src='${blue1.address}', dst='${red2.address}') / ICMPv6EchoRequest(id=7, seq=1)`,
      3,
    );
    await waitFor(async () => (await cluster.drops(h1, 'workload-srv6', link)) - before >= 3, {
      timeoutMs: 5_000,
      what: 'three drops of the workload-built SRv6 packets counted on host1',
    });
    expect((await cluster.drops(h1, 'workload-srv6', link)) - before).toBe(3);
    // Positive control in the same run, then nothing reached red2.
    expect(await ping(blue1.ns, blue2.address, 2)).toBe(2);
    const seen = await tsharkFields(await cap.stop(), 'icmpv6.type == 128', ['ipv6.src']);
    expect(seen.filter(([src]) => src === blue1.address)).toEqual([]);
  });

  it('the CLI agrees with the kernel and the gossip view', async () => {
    const h1 = cluster.hosts[0]!;
    const status = segmeshJson<{
      host: string;
      ready: boolean;
      hosts: number;
      workloads: number;
      localWorkloads: number;
      routes: number;
    }>(['status', '--socket', h1.socket]);
    expect(status).toMatchObject({ host: 'host1', ready: true, hosts: 3, workloads: 5, localWorkloads: 2 });
    const routes = segmeshJson<Array<{ action: string }>>(['routes', '--socket', h1.socket]);
    expect(routes.length).toBe(status.routes);
    // What the CLI lists is what the data plane holds: one kernel route per entry, or on the eBPF
    // backend one sm_sids entry per local SID.
    if ((await cluster.backend(h1)) === 'kernel') {
      const kernel = await h1.ns.ip('-6', 'route', 'show', 'table', 'all', 'proto', '203');
      expect(kernel.stdout.split('\n').filter((l) => l.trim().length > 0).length).toBe(routes.length);
    } else {
      const sids = routes.filter((r) => r.action.startsWith('encap seg6local')).length;
      expect(sids).toBeGreaterThan(2);
      expect(bpfMapEntries(h1, MAP.sids).size).toBe(sids);
    }
    const path = segmeshJson<{ segments: string[]; steps: string[] }>([
      'path',
      'shop.web-1',
      blue3.address,
      '--socket',
      h1.socket,
    ]);
    expect(path.segments).toEqual(['fc00:0:3:2064::']);
    expect(path.steps.at(-1)).toMatch(/delivered on link smw/);
    // Metrics and health on the host's loopback.
    const fetchIn = async (url: string) =>
      (
        await h1.ns.exec(process.execPath, [
          '-e',
          `fetch(${JSON.stringify(url)}).then(async (r) => console.log(r.status + '\\n' + (await r.text())))`,
        ])
      ).stdout;
    expect(await fetchIn('http://127.0.0.1:9469/readyz')).toMatch(/^200\nready/);
    const metrics = await fetchIn('http://127.0.0.1:9469/metrics');
    expect(metrics).toMatch(/segmesh_workloads\{locality="local"\} 2/);
    expect(metrics).toMatch(/segmesh_hosts 3/);
    expect(metrics).toMatch(/segmesh_reconcile_seconds_count \d+/);
    // The data plane's own counters: the backend, the drops of the isolation tests above (counted at
    // blue1's link by the kernel), the packets of host1's SIDs.
    const backend = await cluster.backend(h1);
    expect(metrics).toMatch(new RegExp(`segmesh_dataplane_info\\{backend="${backend}",why="[^"]+"\\} 1`));
    const link = (await cluster.api(h1).call('listWorkloads', {})).workloads.find(
      (w) => w.identity === 'shop.web-1',
    )!.hostLink;
    const sidBlock = new RegExp(
      `segmesh_dataplane_drops_total\\{link="${link}",reason="sid_block"\\} (\\d+)`,
    );
    expect(Number(sidBlock.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(3);
    const sidPackets = [...metrics.matchAll(/segmesh_sid_packets_total\{sid="[^"]+"\} (\d+)/g)];
    expect(sidPackets.some((m) => Number(m[1]) > 0)).toBe(true);
  });

  it('an HMAC key published by the operator: the kernel backend installs it; eBPF leaves it out and status says why', async () => {
    const [h1, h2] = cluster.hosts;
    const leftOut = (h: typeof h1) =>
      segmeshJson<{ leftOut?: string[]; leftOutTotal?: number }>(['status', '--socket', h!.socket]).leftOut ??
      [];
    const secretFile = `${cluster.dir}/hmac-7.key`;
    const policy = (file: string) => {
      const path = `${cluster.dir}/${file}.yaml`;
      writeFileSync(path, `${TENANTS}hmacKeys:\n  - { keyId: 7, secretFile: ${file}.key }\n`);
      return path;
    };
    const apply = (path: string) =>
      segmesh(['policy', 'apply', path, '--operator-key', cluster.operatorKey, '--socket', h1!.socket], {
        allowFail: true,
      });
    // Refused before anything is published: a secret the kernel cannot take, one others can read.
    writeFileSync(`${cluster.dir}/long.key`, Buffer.alloc(65, 1), { mode: 0o600 });
    const long = apply(policy('long'));
    expect(long.code).toBe(1);
    expect(long.err).toMatch(
      /hmacKeys\[0\]\.secretFile: .*holds 65 bytes; an SRH HMAC secret is 1\.\.64 bytes/,
    );
    writeFileSync(`${cluster.dir}/open.key`, Buffer.alloc(32, 2), { mode: 0o644 });
    chmodSync(`${cluster.dir}/open.key`, 0o644);
    const open = apply(policy('open'));
    expect(open.code).toBe(1);
    expect(open.err).toMatch(/readable or writable by others \(mode 644\).*chmod 600/);
    expect(leftOut(h1).join('\n')).not.toMatch(/HMAC key 7/);
    // The good one.
    writeFileSync(secretFile, Buffer.alloc(32, 3), { mode: 0o600 });
    const ok = apply(policy('hmac-7'));
    expect(ok.err).toBe('');
    expect(ok.out).toMatch(/^hmac\/7: applied$/m);
    if ((await cluster.backend(h1!)) === 'kernel') {
      await waitFor(async () => /\b7\b.*sha256/.test((await h1!.ns.ip('sr', 'hmac', 'show')).stdout), {
        timeoutMs: 10_000,
        what: 'HMAC key 7 in the kernel of host1',
      });
      expect(leftOut(h1).join('\n')).not.toMatch(/HMAC key 7/);
    } else {
      // Every host learnt it through gossip and says why it is not in its data plane.
      for (const h of [h1, h2]) {
        await waitFor(async () => leftOut(h).some((r) => /HMAC key 7/.test(r)), {
          timeoutMs: 10_000,
          what: `status of ${h!.name} naming HMAC key 7 as left out`,
        });
        expect(leftOut(h).find((r) => /HMAC key 7/.test(r))).toMatch(
          /the ebpf backend has no SRH HMAC.*use dataplane\.backend: kernel/,
        );
      }
    }
  });

  it('kill -9 of an agent and its restart under 100 pings per second each way: none lost, no route deleted or re-added', async () => {
    const h1 = cluster.hosts[0]!;
    const ebpf = (await cluster.backend(h1)) === 'ebpf';
    const before = (await h1.ns.ip('-6', 'route', 'show', 'table', 'all', 'proto', '203')).stdout;
    const owned = new Set(
      before
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => l.split(' ')[0]),
    );
    // The kernel backend's routes; the eBPF backend's few (underlay and delivery) beside its maps.
    expect(owned.size).toBeGreaterThan(ebpf ? 2 : 5);
    const maps = [MAP.sids, MAP.policy, MAP.exact, MAP.endpoints];
    const mapsBefore = ebpf ? maps.map((m) => bpfMapEntries(h1, m)) : [];
    if (ebpf) expect(mapsBefore[0]!.size).toBeGreaterThan(2);
    const monitor = await routeMonitor(lab, h1.ns, 'ipmon-h1');
    // Into the restarted host (host2's workload to host1's) and out of it, all the time.
    const inbound = await startPing(lab, blue2.ns, blue1.address);
    const outbound = await startPing(lab, blue1.ns, blue2.address);
    await new Promise((r) => setTimeout(r, 1_000));
    h1.agent!.kill('SIGKILL');
    await h1.agent!.exited;
    await new Promise((r) => setTimeout(r, 2_000)); // the host forwards without its agent
    await cluster.startAgent(h1);
    await waitFor(async () => (await cluster.api(h1).call('getStatus', {})).ready, {
      timeoutMs: 20_000,
      what: 'restarted agent ready',
    });
    // Ready means its first reconcile ran; traffic flows on a little after it.
    await new Promise((r) => setTimeout(r, 2_000));
    const [inResult, outResult] = [await inbound.stop(), await outbound.stop()];
    await monitor.stop();
    for (const r of [inResult, outResult]) {
      expect(r.lastSeq).toBeGreaterThan(300); // seconds of pings (ping slows down under load)
      expect(r.lost).toEqual([]);
    }
    const events = monitor.events();
    expect(events.filter((l) => l.startsWith('Deleted'))).toEqual([]);
    // Nothing the host had was written again (a delete-and-add, or a needless replace).
    expect(events.filter((l) => owned.has(l.split(' ')[0]))).toEqual([]);
    expect((await h1.ns.ip('-6', 'route', 'show', 'table', 'all', 'proto', '203')).stdout).toBe(before);
    if (ebpf) expect(maps.map((m) => bpfMapEntries(h1, m))).toEqual(mapsBefore);
  });

  it('rejects bad input with a clear error and disturbs nothing else', async () => {
    const h1 = cluster.hosts[0]!;
    const ns = await lab.netns('bad');
    const unknownTenant = segmesh(
      ['workload', 'add', '--netns', ns.name, '--tenant', 'green', '--socket', h1.socket],
      {
        allowFail: true,
      },
    );
    expect(unknownTenant.code).toBe(1);
    expect(unknownTenant.err).toMatch(/unknown tenant green/);
    const outside = segmesh(
      [
        'workload',
        'add',
        '--netns',
        ns.name,
        '--tenant',
        'blue',
        '--address',
        '2001:db8:b200::9',
        '--socket',
        h1.socket,
      ],
      { allowFail: true },
    );
    expect(outside.err).toMatch(/outside tenant blue's prefixes/);
    const duplicate = segmesh(
      [
        'workload',
        'add',
        '--netns',
        ns.name,
        '--tenant',
        'blue',
        '--identity',
        'shop.web-1',
        '--socket',
        h1.socket,
      ],
      { allowFail: true },
    );
    expect(duplicate.err).toMatch(/identity shop.web-1 already runs on this host/);
    // A user outside the segmesh group cannot use the API (the socket is 0660 root:segmesh).
    const outsider = spawnSync(
      'setpriv',
      [
        '--reuid=nobody',
        '--regid=nogroup',
        '--clear-groups',
        process.execPath,
        'src/cli/main.ts',
        'status',
        '--socket',
        h1.socket,
      ],
      { encoding: 'utf8' },
    );
    expect(outsider.status).toBe(1);
    expect(outsider.stderr).toMatch(
      /permission denied on .*agent.sock: the API is for root and the group 'segmesh'/,
    );
    const anonymous = segmesh([
      'workload',
      'add',
      '--netns',
      ns.name,
      '--tenant',
      'blue',
      '--socket',
      h1.socket,
    ]);
    expect(anonymous.out).toMatch(/the address is not sticky/);
    expect(await ping(blue1.ns, blue2.address, 2)).toBe(2);
  });

  it("a workload cannot reach its host's own services (BGP, gossip, metrics); another host can", async () => {
    const h1 = cluster.hosts[0]!;
    const tcp = (ns: import('../../harness/index.ts').Netns, address: string, port: number) =>
      ns.exec('timeout', ['2', 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`], { allowFail: true });
    // Positive control: the gossip port of host1 answers host2.
    expect((await tcp(cluster.hosts[1]!.ns, h1.underlay, 7946)).code).toBe(0);
    const link = (await cluster.api(h1).call('listWorkloads', {})).workloads.find(
      (w) => w.identity === 'shop.web-1',
    )!.hostLink;
    const dropped = () => cluster.drops(h1, 'host-address', link);
    const before = await dropped();
    expect((await tcp(blue1.ns, h1.underlay, 7946)).code).not.toBe(0); // libp2p
    expect((await tcp(blue1.ns, h1.underlay, 179)).code).not.toBe(0); // BGP
    expect((await tcp(blue1.ns, '::1', 9469)).code).not.toBe(0); // metrics listen on the host's loopback only
    expect((await dropped()) - before).toBeGreaterThanOrEqual(2);
  });

  it("a workload reaches its host's link-local address for neighbour discovery and pings only, not a service listening on every address", async () => {
    const h1 = cluster.hosts[0]!;
    const link = (await cluster.api(h1).call('listWorkloads', {})).workloads.find(
      (w) => w.identity === 'shop.web-1',
    )!.hostLink;
    const [info] = await h1.ns.ipJson<{ addr_info: { local: string; scope: string }[] }[]>(
      '-6',
      'addr',
      'show',
      'dev',
      link,
      'scope',
      'link',
    );
    const gateway = `${info!.addr_info[0]!.local}%eth0`;
    // A host service on every address (as gobgpd's BGP port or sshd listen), in host1's namespace.
    const port = 7999;
    await lab.daemon({
      name: 'any-address-service',
      command: '/usr/bin/python3',
      args: [
        '-c',
        `import socket\ns = socket.socket(socket.AF_INET6)\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(("::", ${port}))\ns.listen()\nwhile True: s.accept()[0].close()`,
      ],
      netns: h1.ns,
      ready: async () => (await h1.ns.exec('ss', ['-Htln', `sport = :${port}`])).stdout.includes(`:${port}`),
    });
    const tcp = (ns: import('../../harness/index.ts').Netns, address: string) =>
      ns.exec('timeout', ['2', 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`], { allowFail: true });
    // Positive controls: the service answers on host1 itself, and the workload's pings of the gateway pass.
    expect((await tcp(h1.ns, `${info!.addr_info[0]!.local}%${link}`)).code).toBe(0);
    expect(await ping(blue1.ns, gateway, 2)).toBe(2);
    const dropped = () => cluster.drops(h1, 'host-address', link);
    const before = await dropped();
    expect((await tcp(blue1.ns, gateway)).code).not.toBe(0);
    expect((await dropped()) - before).toBeGreaterThanOrEqual(1);
  });

  it('a gossip-only partition of one host loses no packet', async () => {
    const [h1, h2] = cluster.hosts;
    // Cut host2's gossip (TCP 7946) in both directions; the data plane stays as it is.
    const cut = [
      'table inet smtest {',
      '  chain in {',
      '    type filter hook input priority 0; policy accept;',
      '    tcp dport 7946 drop',
      '    tcp sport 7946 drop',
      '  }',
      '}',
      '',
    ].join('\n');
    await h2!.ns.exec('nft', ['-f', '-'], { input: cut });
    const pinging = blue1.ns.exec('ping', ['-6', '-i', '0.01', '-c', '600', '-W', '1', blue2.address], {
      allowFail: true,
      timeoutMs: 60_000,
    });
    // The partition is real: host1 stops hearing host2 and suspects it; forwarding goes on.
    await waitFor(
      async () =>
        (await cluster.api(h1!).call('listHosts', {})).hosts.find((h) => h.name === 'host2')?.state ===
        'suspect',
      { timeoutMs: 5_000, what: 'host1 to suspect host2' },
    );
    const r = await pinging;
    await h2!.ns.exec('nft', ['delete', 'table', 'inet', 'smtest']);
    expect(r.stdout).toMatch(/600 packets transmitted, 600 received/);
    const hosts = (await cluster.api(h1!).call('listHosts', {})).hosts;
    expect(hosts.length).toBe(3);
  });
});
