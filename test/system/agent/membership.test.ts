/**
 * Closed membership, end to end: three agents whose config closes membership with a cluster key (the
 * real config loader, gossip over libp2p, the API and the CLI), and an intruder — a real libp2p node
 * with its own key on the same gossipsub topic — that claims a workload with a newer version than its
 * owner's. Its records must be rejected and counted by every agent, the workload must stay at its host
 * in every agent's view, and the routes every agent computes must still point at that host. Positive
 * control in the same test: a member host's move of the same workload is taken by every agent.
 *
 * The agents run in this process on the eBPF backend (entered into each host's namespace), so packets
 * flow: a client pings the workload all through the intrusion and loses none, and not one packet leaves
 * toward the intruder's locator (a capture on the client's host).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { create, toBinary } from '@bufbuild/protobuf';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/agent.ts';
import { ApiServer } from '../../../src/agent/api.ts';
import { AgentClient } from '../../../src/agent/client.ts';
import { loadAgentSettings } from '../../../src/agent/config.ts';
import { AgentMetrics } from '../../../src/agent/metrics.ts';
import { claimRuntime } from '../../../src/agent/runtime.ts';
import { ConfigError } from '../../../src/config/load.ts';
import { EbpfBackend } from '../../../src/dataplane/ebpf/backend.ts';
import { ensureBpffs } from '../../../src/dataplane/ebpf/libbpf.ts';
import { detectKernelFeatures } from '../../../src/dataplane/features.ts';
import { openHostDataplane } from '../../../src/dataplane/host.ts';
import { openDataplane } from '../../../src/dataplane/index.ts';
import { Ipv6PrefixSchema } from '../../../src/gen/segmesh/v1/common_pb.js';
import {
  GossipMessageSchema,
  HostRecordSchema,
  RecordSchema,
  WorkloadRecordSchema,
} from '../../../src/gen/segmesh/v1/gossip_pb.js';
import { GOSSIP_TOPIC } from '../../../src/gossip/constants.ts';
import { newClusterKey, newOperatorKey } from '../../../src/gossip/identity.ts';
import { gossip } from '../../../src/gossip/index.ts';
import { createGossipLibp2p } from '../../../src/gossip/node.ts';
import { issueMembership, signRecord } from '../../../src/gossip/records.ts';
import { formatIpv6 } from '../../../src/srv6/address.ts';
import { tsharkFields } from '../../harness/capture.ts';
import type { Netns, UnderlaySwitch } from '../../harness/index.ts';
import { createLab, runLogDir, sh, systemSuite, waitFor } from '../../harness/index.ts';
import { ping, segmeshAsync as segmesh, startPing, TENANTS } from './cluster.ts';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Host {
  readonly name: string;
  readonly ns: Netns;
  readonly dir: string;
  readonly config: string;
  readonly socket: string;
  readonly port: number;
  readonly logFile: string;
  agent?: Agent;
  api?: ApiServer;
  metrics?: AgentMetrics;
  client?: AgentClient;
  /** A client workload of tenant blue on this host. */
  clientNs?: Netns;
  readonly rejected: { reason: string; detail: string; from: string }[];
}

interface WorkloadJson {
  identity: string;
  host: string;
  address: string;
  deliverySid: string;
}
interface RouteJson {
  destination: string;
  action: string;
  tableName: string;
}

systemSuite(
  'agent: closed membership (cluster key)',
  { tools: ['ip', 'nft', 'ping', 'tcpdump', 'tshark'] },
  () => {
    const lab = createLab();
    const dir = `${runLogDir()}/membership-${process.pid}-${Date.now()}`;
    const hosts: Host[] = [];
    const stoppers: (() => Promise<void>)[] = [];
    let operatorKeyFile = '';
    let sw: UnderlaySwitch;

    /** An agent config: membership closed by the cluster key, open, or not closed by anything. */
    function configText(
      h: Host,
      i: number,
      membership: 'cluster-key' | 'open' | 'unclosed' | { readonly allow: readonly string[] },
      peers: readonly Host[],
    ): string {
      return `apiVersion: segmesh.io/v1alpha1
kind: AgentConfig
host: { name: ${h.name}, underlay: { interface: eth0, address: "2001:db8:100::${i}" } }
locator: "fc00:0:${i}::/48"
stateDir: ${h.dir}
operatorKeys: ["${readFileSync(`${dir}/operator.pub`, 'utf8').trim()}"]
${membership === 'open' ? 'membership: open\n' : ''}gossip:
${membership === 'cluster-key' ? `  clusterKeyFile: ${dir}/cluster.key\n` : ''}${
  typeof membership === 'object'
    ? `  allowedPeers: [${membership.allow.map((id) => `"${id}"`).join(', ')}]\n`
    : ''
}  listen: ["/ip4/127.0.0.1/tcp/${h.port}"]
  bootstrap: [${peers.map((p) => `"/ip4/127.0.0.1/tcp/${p.port}"`).join(', ')}]
  suspectAfter: 2s
  deadAfter: 6s
api: { socket: ${h.socket}, group: segmesh }
`;
    }

    /** Starts `h`'s agent in this process; resolves with a function that stops it. */
    async function start(h: Host): Promise<() => Promise<void>> {
      const settings = await loadAgentSettings(h.config, {});
      const logger = pino(
        { level: 'info', base: { name: 'segmesh-agent' } },
        pino.destination({ dest: h.logFile, sync: true }),
      );
      const real = await openDataplane({ netns: h.ns.name });
      // The eBPF backend in the host's namespace (an in-process agent names it; `segmesh agent` runs in
      // it), its pins on a bpffs of this test's own.
      const pinDir = `${h.dir}/bpf`;
      ensureBpffs(pinDir);
      lab.onTeardown(async () => {
        await sh('umount', ['-l', pinDir], { allowFail: true });
      });
      h.agent = new Agent(
        {
          logger,
          openHost: (o) =>
            openHostDataplane({
              ...o,
              dataplane: real,
              openBackend: async (b) => ({
                backend: new EbpfBackend(b.dp, {
                  underlayDevice: b.underlayDevice,
                  source: b.source,
                  pinDir,
                  netns: h.ns.name,
                }),
                name: 'ebpf',
                why: 'test: in-process agent in the namespace of its host',
                features: await detectKernelFeatures(),
              }),
            }),
        },
        settings,
      );
      h.metrics = new AgentMetrics(h.agent);
      h.api = new ApiServer(h.agent, settings.spec.api, logger, 'test');
      // As `segmesh agent` does before it starts anything: the runtime directory and the socket path.
      const runtime = await claimRuntime({
        socket: h.socket,
        group: settings.spec.api.group,
        stateDir: settings.stateDir,
        host: settings.hostName,
      });
      await h.agent.start();
      await h.api.start();
      h.client = new AgentClient(h.socket);
      h.agent.gossip!.addEventListener('rejected', (e) => h.rejected.push(e.detail));
      let stopped = false;
      const stop = async () => {
        if (stopped) return;
        stopped = true;
        h.client?.close();
        await h.api?.stop();
        await h.agent?.stop();
        await real.close();
        runtime.release();
      };
      stoppers.push(stop);
      return stop;
    }

    const rejectedCounter = async (h: Host, reason: string): Promise<number> => {
      const text = await h.metrics!.registry.metrics();
      const m = new RegExp(`^segmesh_gossip_rejected_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
      return m ? Number(m[1]) : 0;
    };
    const workloads = async (h: Host) =>
      JSON.parse((await segmesh(['workloads', '--json', '--socket', h.socket])).out) as WorkloadJson[];
    const routes = async (h: Host) =>
      JSON.parse((await segmesh(['routes', '--json', '--socket', h.socket])).out) as RouteJson[];
    const hostOf = async (h: Host, id: string) =>
      (await h.client!.call('listWorkloads', {})).workloads.find((w) => w.identity === id)?.host;

    /** Host `n`: its namespace on the underlay switch (2001:db8:100::n) and its files' paths. */
    async function newHost(n: number): Promise<Host> {
      const ns = await lab.netns(`m${n}`);
      await sw.attach(ns, 'eth0', [`2001:db8:100::${n}/64`]);
      const hdir = `${dir}/host${n}`;
      mkdirSync(hdir, { recursive: true });
      return {
        name: `host${n}`,
        ns,
        dir: hdir,
        config: `${hdir}/agent.yaml`,
        socket: `${hdir}/run/agent.sock`,
        port: await freePort(),
        logFile: `${hdir}/agent.log`,
        rejected: [],
      };
    }

    beforeAll(async () => {
      mkdirSync(dir, { recursive: true });
      const operator = await newOperatorKey();
      operatorKeyFile = `${dir}/operator.key`;
      writeFileSync(operatorKeyFile, operator.privateKey, { mode: 0o600 });
      writeFileSync(`${dir}/operator.pub`, operator.publicKey);
      writeFileSync(`${dir}/cluster.key`, await newClusterKey(), { mode: 0o600 });
      sw = await lab.underlaySwitch('sw');
      for (let i = 1; i <= 3; i++) hosts.push(await newHost(i));
      for (const [j, h] of hosts.entries())
        writeFileSync(
          h.config,
          configText(
            h,
            j + 1,
            'cluster-key',
            hosts.filter((o) => o !== h),
          ),
        );
      for (const h of hosts) await start(h);
      await waitFor(
        async () => {
          for (const h of hosts) if ((await h.client!.call('listHosts', {})).hosts.length !== 3) return false;
          return true;
        },
        { timeoutMs: 30_000, what: 'all 3 agents to see each other' },
      );
      writeFileSync(`${dir}/tenants.yaml`, TENANTS);
      await segmesh([
        'policy',
        'apply',
        `${dir}/tenants.yaml`,
        '--operator-key',
        operatorKeyFile,
        '--socket',
        hosts[0]!.socket,
      ]);
    }, 120_000);

    afterAll(async () => {
      for (const stop of stoppers.reverse()) await stop().catch(() => undefined);
      await lab.teardown();
    });

    it('refuses to start without anything that closes membership, naming the file and the fix', async () => {
      const h = hosts[0]!;
      const file = `${dir}/unclosed.yaml`;
      writeFileSync(file, configText(h, 1, 'unclosed', []));
      await expect(loadAgentSettings(file, {})).rejects.toThrow(ConfigError);
      await expect(loadAgentSettings(file, {})).rejects.toThrow(
        new RegExp(
          `${file}[\\s\\S]*membership:[\\s\\S]*gossip.clusterKeyFile[\\s\\S]*segmesh keygen --cluster`,
        ),
      );
      // Positive control: the running agents' own files, which name the cluster key, load.
      for (const x of hosts) expect((await loadAgentSettings(x.config, {})).membership.mode).toBe('closed');
      const status = JSON.parse((await segmesh(['status', '--json', '--socket', h.socket])).out) as {
        membership: string;
        membershipWarning: string;
        hostId: string;
      };
      expect(status.membership).toMatch(/^closed \(cluster key [0-9a-f]{16}\)$/);
      expect(status.membershipWarning ?? '').toBe('');
      expect(status.hostId).toBe(h.agent!.hostId);
    });

    it("an intruder's newer claim on a workload is rejected and counted everywhere; a member's move is taken", async () => {
      const [h1, h2, h3] = hosts as [Host, Host, Host];
      // Clients of tenant blue on host2 and host3: a host computes routes into a tenant it serves.
      for (const h of [h2, h3]) {
        const cns = await lab.netns(`mc${h.name.slice(-1)}`);
        h.clientNs = cns;
        await h.client!.call('addWorkload', {
          identity: `shop.client-${h.name}`,
          tenant: 'blue',
          netns: `/run/netns/${cns.name}`,
          ifname: 'eth0',
        });
      }
      const wns = await lab.netns('mw1');
      const added = await h1.client!.call('addWorkload', {
        identity: 'shop.cart',
        tenant: 'blue',
        netns: `/run/netns/${wns.name}`,
        ifname: 'eth0',
      });
      await waitFor(
        async () => (await Promise.all(hosts.map((h) => hostOf(h, 'shop.cart')))).every((x) => x === 'host1'),
        {
          timeoutMs: 15_000,
          what: 'every agent to see shop.cart on host1',
        },
      );
      const address = added.address;
      const realSid = (await h3.client!.call('listWorkloads', {})).workloads.find(
        (w) => w.identity === 'shop.cart',
      )!.deliverySid;

      // The intruder: a real libp2p node (the agents' own gossip stack) with its own key, a membership
      // certificate from a cluster key of its own, on the agents' topic. It copies host1's records,
      // re-homed to a locator of its own, with a version newer than host1's claim.
      const intruderKey = await generateKeyPair('Ed25519');
      const rogueCluster = await generateKeyPair('Ed25519');
      const intruder = await createGossipLibp2p({
        privateKey: intruderKey,
        listen: ['/ip4/127.0.0.1/tcp/0'],
        sameIpPeers: true,
        signed: false,
      });
      stoppers.push(async () => {
        await intruder.stop();
      });
      const evilId = intruder.peerId.toString();
      const cert = await issueMembership(rogueCluster, evilId);
      const view = h3.agent!.gossip!.view();
      const h1rec = view.hosts.get(h1.agent!.hostId)!.record;
      const wrec = view.workloads.get('shop.cart')!.record;
      const rehome = (b: Uint8Array) => {
        const c = new Uint8Array(b);
        c[4] = 0;
        c[5] = 0x66; // fc00:0:1:… → fc00:0:66:…
        return c;
      };
      const evilSid = rehome(wrec.deliverySid);
      const now = BigInt(Date.now() + 2_000);
      const hostRecord = create(RecordSchema, {
        key: `host/${evilId}`,
        version: { wallMs: now, counter: 0 },
        origin: evilId,
        body: {
          case: 'host',
          value: create(HostRecordSchema, {
            ...h1rec,
            hostId: evilId,
            name: 'intruder',
            underlayAddress: new Uint8Array([
              0x20,
              0x01,
              0x0d,
              0xb8,
              0,
              0,
              1,
              0,
              ...new Array(7).fill(0),
              0x66,
            ]),
            locator: create(Ipv6PrefixSchema, { address: rehome(h1rec.locator!.address), length: 48 }),
            endSid: rehome(h1rec.endSid),
            sids: h1rec.sids.map((s) => ({ ...s, address: rehome(s.address) })),
            gossipAddresses: intruder.getMultiaddrs().map(String),
          }),
        },
      });
      const workloadRecord = create(RecordSchema, {
        key: `workload/${evilId}/shop.cart`,
        version: { wallMs: now, counter: 1 },
        origin: evilId,
        body: {
          case: 'workload',
          value: create(WorkloadRecordSchema, { ...wrec, hostId: evilId, deliverySid: evilSid }),
        },
      });
      // Each attempt signs fresh versions: gossipsub drops a message whose bytes it has seen.
      let attempt = 0;
      const freshMessages = () => {
        attempt++;
        return Promise.all(
          [hostRecord, workloadRecord].map(async (r) =>
            toBinary(
              GossipMessageSchema,
              create(GossipMessageSchema, {
                kind: {
                  case: 'record',
                  value: await signRecord(
                    { ...r, version: { ...r.version!, counter: r.version!.counter + 2 * attempt } },
                    intruderKey,
                    cert,
                  ),
                },
              }),
            ),
          ),
        );
      };
      // Packets all through the intrusion: host3's client pings the workload; a capture on host3's
      // underlay watches for anything sent toward the intruder's locator.
      expect(await ping(h3.clientNs!, address, 2)).toBe(2);
      const toIntruder = await lab.capture({
        netns: h3.ns,
        ifname: 'eth0',
        filter: 'ip6 dst net fc00:0:66::/48',
      });
      const pinging = await startPing(lab, h3.clientNs!, address);
      intruder.services.pubsub.subscribe(GOSSIP_TOPIC);
      for (const h of hosts) await intruder.dial(multiaddr(`/ip4/127.0.0.1/tcp/${h.port}`));
      // Joined: connected to every agent, and every agent's subscription to the topic known.
      await waitFor(
        async () => intruder.services.pubsub.getSubscribers(GOSSIP_TOPIC).length === hosts.length,
        {
          timeoutMs: 10_000,
          what: 'the intruder to see every agent subscribed to the gossip topic',
        },
      );
      const before = await Promise.all(hosts.map((h) => rejectedCounter(h, 'not_member')));
      const claimRejected = (h: Host) =>
        h.rejected.some(
          (r) =>
            r.reason === 'not_member' &&
            r.from === evilId &&
            r.detail.includes(`workload/${evilId}/shop.cart`),
        );
      await waitFor(
        async () => {
          if (hosts.every(claimRejected)) return true;
          for (const m of await freshMessages())
            await intruder.services.pubsub.publish(GOSSIP_TOPIC, m).catch(() => undefined);
          return false;
        },
        {
          timeoutMs: 20_000,
          intervalMs: 500,
          what: "every agent to reject the intruder's workload claim as not_member",
        },
      );
      for (const [i, h] of hosts.entries()) {
        // Counted: the Prometheus counter (reason label) moved by at least the host and workload records.
        expect(await rejectedCounter(h, 'not_member')).toBeGreaterThanOrEqual(before[i]! + 2);
        expect(h.rejected.some((r) => r.detail.includes(`host/${evilId}`))).toBe(true);
        // Nothing of the intruder made it into the view.
        expect(h.agent!.gossip!.view().hosts.has(evilId)).toBe(false);
      }
      // A fresh reconcile on every agent, from the view as it is now, then each agent's decision.
      for (const h of hosts) await h.agent!.reconcileNow();
      const evil = formatIpv6(BigInt(`0x${Buffer.from(evilSid).toString('hex')}`));
      for (const h of hosts) {
        const w = (await workloads(h)).find((x) => x.identity === 'shop.cart')!;
        expect({ on: h.name, host: w.host, sid: w.deliverySid }).toEqual({
          on: h.name,
          host: 'host1',
          sid: realSid,
        });
        const rs = await routes(h);
        expect(rs.some((r) => r.action.includes(evil) || r.destination.startsWith('fc00:0:66:'))).toBe(false);
        // The route to the workload's address: delivered locally on host1, encapsulated to host1's SID elsewhere.
        const toWorkload = rs.filter((r) => r.destination === `${address}/128`);
        expect(toWorkload.length).toBeGreaterThan(0);
        for (const r of toWorkload)
          expect(r.action).toMatch(h === h1 ? /^dev / : new RegExp(`segs \\[ ${realSid} \\]`));
      }
      // The intruder diverted nothing: every echo answered by the workload on host1, none sent its way.
      const result = await pinging.stop();
      expect(result.lastSeq).toBeGreaterThan(50);
      expect(result.lost).toEqual([]);
      expect(await tsharkFields(await toIntruder.stop(), 'ipv6', ['ipv6.dst'])).toEqual([]);

      // Positive control: a member (host2) starts the same identity — a move. Every agent takes it.
      const wns2 = await lab.netns('mw2');
      const moved = await h2.client!.call('addWorkload', {
        identity: 'shop.cart',
        tenant: 'blue',
        netns: `/run/netns/${wns2.name}`,
        ifname: 'eth0',
      });
      expect(moved.address).toBe(address);
      await waitFor(
        async () => (await Promise.all(hosts.map((h) => hostOf(h, 'shop.cart')))).every((x) => x === 'host2'),
        {
          timeoutMs: 15_000,
          what: 'every agent to see shop.cart moved to host2',
        },
      );
      const newSid = (await h3.client!.call('listWorkloads', {})).workloads.find(
        (w) => w.identity === 'shop.cart',
      )!.deliverySid;
      expect(newSid).not.toBe(realSid);
      await waitFor(
        async () =>
          (await h3.client!.call('listRoutes', {})).routes
            .filter((r) => r.destination === `${address}/128`)
            .every((r) => r.action.includes(`segs [ ${newSid} ]`)),
        { timeoutMs: 10_000, what: "host3's route to shop.cart to point at host2" },
      );
      expect(
        (await h2.client!.call('listRoutes', {})).routes
          .filter((r) => r.destination === `${address}/128`)
          .every((r) => r.action.startsWith('dev ')),
      ).toBe(true);
      // And packets follow the member's move: host3's client now reaches the instance on host2.
      const atNew = await lab.capture({ netns: wns2, ifname: 'eth0', filter: 'icmp6' });
      expect(await ping(h3.clientNs!, address, 3)).toBe(3);
      const seen = await tsharkFields(await atNew.stop(), 'icmpv6.type == 128', ['ipv6.dst']);
      expect(seen.length).toBe(3);
    }, 180_000);

    it('membership: open starts, and warns in the log and in segmesh status on every start', async () => {
      const h = await newHost(4);
      writeFileSync(h.config, configText(h, 4, 'open', []));
      const openWarnings = () =>
        readFileSync(h.logFile, 'utf8')
          .split('\n')
          .filter((l) => l.includes('"level":40') && l.includes('membership is open: any node'));
      for (const round of [1, 2]) {
        const stop = await start(h);
        expect(openWarnings()).toHaveLength(round);
        const table = await segmesh(['status', '--socket', h.socket]);
        expect(table.err).toMatch(
          /^warning: membership is open: any node that reaches the gossip port can join/m,
        );
        expect(table.err).toContain('segmesh keygen --cluster');
        expect(table.out).toMatch(/membership +open/);
        const json = JSON.parse((await segmesh(['status', '--json', '--socket', h.socket])).out) as {
          membership: string;
          membershipWarning: string;
        };
        expect(json.membership).toMatch(/^open/);
        expect(json.membershipWarning).toMatch(/^membership is open/);
        await stop();
      }
      // Positive control: a closed agent's log has no such line (host1 started with the cluster key).
      expect(readFileSync(hosts[0]!.logFile, 'utf8')).not.toContain('membership is open');
      expect(readFileSync(hosts[0]!.logFile, 'utf8')).toMatch(
        /"membership":"closed \(cluster key [0-9a-f]{16}\)"/,
      );
    });

    it('allowlist: a node outside gossip.allowedPeers cannot connect and is counted; a listed one joins', async () => {
      const h = await newHost(5);
      const memberKey = await generateKeyPair('Ed25519');
      const memberId = peerIdFromPrivateKey(memberKey).toString();
      writeFileSync(h.config, configText(h, 5, { allow: [memberId] }, []));
      const stop = await start(h);
      const status = JSON.parse((await segmesh(['status', '--json', '--socket', h.socket])).out) as {
        membership: string;
      };
      expect(status.membership).toBe('closed (allowlist of 1 host)');
      const target = `/ip4/127.0.0.1/tcp/${h.port}/p2p/${h.agent!.hostId}`;
      const node = async (key: PrivateKey, name: string) => {
        const g = gossip({
          privateKey: key,
          listen: ['/ip4/127.0.0.1/tcp/0'],
          bootstrap: [target],
          sameIpPeers: true,
        })({ logger: pino({ level: 'silent' }) });
        await g.start();
        stoppers.push(() => g.stop());
        await g.publishHost({ name });
        return g;
      };
      const intruder = await node(await generateKeyPair('Ed25519'), 'intruder');
      await intruder.publishWorkload({
        workloadId: 'shop.cart',
        tenant: 'blue',
        opaqueAddress: new Uint8Array(16),
      });
      const before = await rejectedCounter(h, 'not_member');
      await waitFor(
        () =>
          h.rejected.some(
            (r) =>
              r.reason === 'not_member' &&
              r.from === intruder.hostId &&
              r.detail.includes('not in the allowlist'),
          ),
        { timeoutMs: 15_000, what: "host5 to refuse the intruder's connection as not_member" },
      );
      expect(await rejectedCounter(h, 'not_member')).toBeGreaterThan(before);
      // Positive control: the listed node joins and its host record arrives.
      await node(memberKey, 'member');
      await waitFor(() => h.agent!.gossip!.view().hosts.has(memberId), {
        timeoutMs: 15_000,
        what: "the listed member's host record to reach host5",
      });
      const view = h.agent!.gossip!.view();
      expect(view.hosts.has(intruder.hostId)).toBe(false);
      expect([...view.workloads.values()].some((w) => w.hostId === intruder.hostId)).toBe(false);
      await stop();
    });
  },
);
