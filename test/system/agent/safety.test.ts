/**
 * The agent is safe on its host and against bad input (issue 12, items 1, 2, 4, 7, 8): it never deletes
 * or chmods what is not its own, a second agent refuses to take over a running one's socket or state,
 * only network namespaces are attached, bad input is refused with its code, and SIGTERM ends a drain.
 *
 * No test here needs packets to cross the data plane (this kernel has no seg6 routes: the agents start
 * and answer, but their reconciles fail and they never report ready).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../src/agent/client.ts';
import {
  createLab,
  type Daemon,
  type Netns,
  runLogDir,
  sh,
  systemSuite,
  type UnderlaySwitch,
  waitFor,
} from '../../harness/index.ts';
import { CLI, segmesh, TENANTS } from './cluster.ts';

interface AgentFiles {
  readonly host: string;
  readonly config: string;
  readonly stateDir: string;
  readonly socket: string;
}

const mode = (path: string) => statSync(path).mode & 0o7777;

systemSuite('agent: safe on its host and against bad input', { tools: ['ip', 'nft'] }, () => {
  const lab = createLab();
  const dir = `${runLogDir()}/safety-${process.pid}-${Date.now()}`;
  let sw: UnderlaySwitch;
  const hosts: Netns[] = [];
  let operatorKey = '';
  let operatorPublic = '';
  const clients: AgentClient[] = [];

  /** An agent configuration for host namespace `index` (1 or 2), its socket and state wherever asked. */
  function agentFiles(
    name: string,
    index: number,
    opts: { stateDir?: string; socket?: string } = {},
  ): AgentFiles {
    const stateDir = opts.stateDir ?? `${dir}/${name}/state`;
    const socket = opts.socket ?? `${dir}/${name}/run/agent.sock`;
    mkdirSync(`${dir}/${name}`, { recursive: true });
    const config = `${dir}/${name}/agent.yaml`;
    writeFileSync(
      config,
      `apiVersion: segmesh.io/v1alpha1
kind: AgentConfig
host: { name: ${name}, underlay: { interface: eth0, address: "2001:db8:100::${index}" } }
locator: "fc00:0:${index}::/48"
stateDir: ${stateDir}
operatorKeys: ["${operatorPublic}"]
# This suite is about the host, not membership (test/system/agent/membership.test.ts covers that).
membership: open
gossip:
  listen: ["/ip6/2001:db8:100::${index}/tcp/7946"]
api: { socket: ${socket}, group: segmesh }
`,
    );
    return { host: name, config, stateDir, socket };
  }

  const api = (socket: string) => {
    const c = new AgentClient(socket);
    clients.push(c);
    return c;
  };

  /** Starts an agent and waits until its API answers (not for ready: its reconciles fail here). */
  async function start(ns: Netns, f: AgentFiles): Promise<Daemon> {
    return lab.daemon({
      name: `agent-${f.host}-${Date.now()}`,
      command: process.execPath,
      args: [...CLI, 'agent', '--config', f.config],
      netns: ns,
      cwd: process.cwd(),
      ready: async () => (await api(f.socket).call('getStatus', {}, 2_000)).host === f.host,
      readyTimeoutMs: 30_000,
    });
  }

  /** Runs an agent that must refuse to start: exit 1 within a minute; returns its stderr. */
  async function refused(ns: Netns, f: AgentFiles): Promise<string> {
    const r = await sh(process.execPath, [...CLI, 'agent', '--config', f.config], {
      netns: ns.name,
      allowFail: true,
      timeoutMs: 60_000,
    });
    expect(r.code, `the agent should have refused to start; stdout: ${r.stdout.slice(-2000)}`).toBe(1);
    return r.stderr;
  }

  /** The host an agent answers for, in process (quicker than a CLI run on a loaded machine). */
  const apiHost = async (socket: string) => (await api(socket).call('getStatus', {}, 5_000)).host;

  /** `segmesh status` answers for `host` on `socket`. */
  function statusHost(socket: string): string {
    return (JSON.parse(segmesh(['status', '--json', '--socket', socket]).out) as { host: string }).host;
  }

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    operatorKey = `${dir}/operator.key`;
    operatorPublic = segmesh(['keygen', '--out', operatorKey]).out.trim();
    sw = await lab.underlaySwitch('sw');
    for (const i of [1, 2]) {
      const ns = await lab.netns(`s${i}`);
      await sw.attach(ns, 'eth0', [`2001:db8:100::${i}/64`]);
      hosts.push(ns);
    }
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await lab.teardown();
  });

  describe('item 1: the socket path and its directory', () => {
    it('a file at the socket path in a sticky world-writable directory is left untouched; the agent refuses', async () => {
      const shared = `${dir}/tmp-like`;
      mkdirSync(shared, { recursive: true });
      chmodSync(shared, 0o1777);
      writeFileSync(`${shared}/precious.txt`, 'precious\n');
      const f = agentFiles('sticky', 1, { socket: `${shared}/precious.txt` });
      const err = await refused(hosts[0]!, f);
      expect(err).toMatch(
        /tmp-like is shared \(mode 1777: sticky\).*api\.socket must lie in a directory of the agent's own/,
      );
      expect(readFileSync(`${shared}/precious.txt`, 'utf8')).toBe('precious\n');
      expect(mode(shared)).toBe(0o1777);

      // A directory that is not shared but was not created by the agent: refused, its mode unchanged.
      const foreign = `${dir}/foreign`;
      mkdirSync(foreign, { recursive: true });
      chmodSync(foreign, 0o755);
      writeFileSync(`${foreign}/agent.sock`, 'not a socket\n');
      const err2 = await refused(hosts[0]!, agentFiles('foreign', 1, { socket: `${foreign}/agent.sock` }));
      expect(err2).toMatch(/foreign exists and was not created by the segmesh agent/);
      expect(mode(foreign)).toBe(0o755);
      expect(readFileSync(`${foreign}/agent.sock`, 'utf8')).toBe('not a socket\n');

      // Positive control: the same agent with a socket in a directory of its own starts and answers;
      // the directory it created is 0750 with its marker.
      const good = agentFiles('sticky', 1);
      const agent = await start(hosts[0]!, good);
      try {
        expect(await apiHost(good.socket)).toBe('sticky');
        expect(mode(`${dir}/sticky/run`)).toBe(0o750);
        expect(existsSync(`${dir}/sticky/run/.segmesh-runtime`)).toBe(true);
      } finally {
        await agent.stop(10_000);
      }
      expect(existsSync(good.socket)).toBe(false); // removed at stop (it was a socket, and its own)

      // A regular file where its socket goes, in its own directory: still never deleted.
      writeFileSync(good.socket, 'a typo in api.socket\n');
      expect(await refused(hosts[0]!, good)).toMatch(
        /agent\.sock \(api\.socket\) exists and is not a socket/,
      );
      expect(readFileSync(good.socket, 'utf8')).toBe('a typo in api.socket\n');
    }, 120_000);
  });

  describe('item 2: one agent per socket and state directory', () => {
    it('a second agent refuses, naming the first, which stays reachable; a dead agent is taken over', async () => {
      const a = agentFiles('first', 1);
      const first = await start(hosts[0]!, a);
      try {
        // Same socket, own state directory, another network namespace (the issue's reproduction).
        const err = await refused(hosts[1]!, agentFiles('second', 2, { socket: a.socket }));
        expect(err).toContain('another segmesh agent holds the runtime directory');
        expect(err).toContain(`pid ${first.pid}, host first`);
        // Same state directory, own socket.
        const err2 = await refused(
          hosts[1]!,
          agentFiles('third', 2, { stateDir: a.stateDir, socket: `${dir}/third/run/agent.sock` }),
        );
        expect(err2).toContain(`another segmesh agent holds the state directory ${a.stateDir}`);
        expect(err2).toContain(`pid ${first.pid}, host first`);
        // The first is untouched and reachable through its socket.
        expect(first.alive()).toBe(true);
        expect(statusHost(a.socket)).toBe('first');

        // Positive control: a second agent with its own socket and state starts beside it.
        const b = agentFiles('second', 2);
        const second = await start(hosts[1]!, b);
        expect(await apiHost(b.socket)).toBe('second');
        expect(await apiHost(a.socket)).toBe('first');
        await second.stop(10_000);
      } finally {
        await first.stop(10_000);
      }

      // An agent killed without a chance to clean up leaves its lock and its socket: both are stale
      // (no such process, no one answers) and the next agent takes them over.
      const killed = await start(hosts[0]!, a);
      killed.kill('SIGKILL');
      await killed.exited;
      expect(existsSync(`${a.stateDir}/agent.pid`)).toBe(true);
      expect(statSync(a.socket).isSocket()).toBe(true);
      const again = await start(hosts[0]!, a);
      try {
        expect(await apiHost(a.socket)).toBe('first');
        expect(JSON.parse(readFileSync(`${a.stateDir}/agent.pid`, 'utf8')).pid).toBe(again.pid);
      } finally {
        await again.stop(10_000);
      }
      expect(existsSync(`${a.stateDir}/agent.pid`)).toBe(false); // released at stop
    }, 180_000);
  });

  describe('items 4, 7, 8: workloads, bad input, drain', () => {
    let f: AgentFiles;
    let agent: Daemon;
    beforeAll(async () => {
      f = agentFiles('work', 1);
      agent = await start(hosts[0]!, f);
      const tenants = `${dir}/tenants.yaml`;
      writeFileSync(tenants, TENANTS);
      segmesh(['policy', 'apply', tenants, '--operator-key', operatorKey, '--socket', f.socket]);
    }, 60_000);
    afterAll(async () => {
      await agent?.stop(10_000);
    });

    const add = (netns: string, extra: string[] = []) =>
      segmesh(['workload', 'add', '--netns', netns, '--tenant', 'blue', '--socket', f.socket, ...extra], {
        allowFail: true,
      });
    const hostLinks = async () => (await hosts[0]!.ip('-o', 'link', 'show')).stdout.trim().split('\n').length;

    it('only a network namespace other than the host own is attached (--netns /etc/passwd is refused)', async () => {
      const before = await hostLinks();
      const passwd = add('/etc/passwd', ['--identity', 'evil']);
      expect(passwd.code).toBe(1);
      expect(passwd.err).toMatch(
        /\/etc\/passwd is not a namespace \(not on nsfs\); give the workload's network namespace/,
      );
      // Another kind of namespace, and the agent's own network namespace: refused too.
      const c = api(f.socket);
      await expect(
        c.call('addWorkload', { identity: 'evil', tenant: 'blue', netns: '/proc/self/ns/mnt' }),
      ).rejects.toMatchObject({
        code: 3,
        message: expect.stringMatching(/is a mnt namespace, not a network namespace/),
      });
      await expect(
        c.call('addWorkload', { identity: 'evil', tenant: 'blue', netns: '/proc/self/ns/net' }),
      ).rejects.toMatchObject({
        code: 3,
        message: expect.stringMatching(/is the agent's own network namespace/),
      });
      expect(await hostLinks()).toBe(before); // nothing attached
      expect(readFileSync('/etc/passwd', 'utf8')).toMatch(/^root:/);

      // Positive control: a real network namespace is attached (veth, address, default route).
      const ns = await lab.netns('wl');
      const ok = add(ns.name, ['--identity', 'good']);
      expect(ok.code, ok.err).toBe(0);
      expect(ok.out).toMatch(/attached \/run\/netns\/.* to blue: 2001:db8:b100:/);
      expect(await hostLinks()).toBe(before + 1);
      const addr = (await ns.ip('-6', 'addr', 'show', 'dev', 'eth0')).stdout;
      expect(addr).toMatch(/inet6 2001:db8:b100:[0-9a-f:]+\/128/);
    }, 60_000);

    it('bad input is answered with its code and message, and logged at warn without a stack', async () => {
      const c = api(f.socket);
      const ns = await lab.netns('wl2');
      const long = add(ns.name, ['--identity', 'long-if', '--ifname', 'a-twenty-four-char-ifnam']);
      expect(long.code).toBe(1);
      expect(long.err).toMatch(
        /--ifname a-twenty-four-char-ifnam is 24 bytes; Linux interface names have at most 15 bytes/,
      );
      await expect(c.call('checkWorkload', {})).rejects.toMatchObject({
        code: 3, // INVALID_ARGUMENT
        message: expect.stringMatching(/give its identity or container id/),
      });
      await expect(c.call('checkWorkload', { identity: 'nobody' })).rejects.toMatchObject({
        code: 5, // NOT_FOUND
        message: expect.stringMatching(/no workload with identity nobody on this host/),
      });
      await expect(
        c.call('addWorkload', { tenant: 'blue', netns: `/run/netns/${ns.name}`, address: 'not-an-address' }),
      ).rejects.toMatchObject({
        code: 3,
        message: expect.stringMatching(/not-an-address is not an IPv6 address/),
      });
      await expect(c.call('drain', { waitMs: 4_294_967_295 })).rejects.toMatchObject({
        code: 3,
        message: expect.stringMatching(/up to 600000/),
      });
      const lines = readFileSync(agent.logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"API call'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.length).toBeGreaterThanOrEqual(4);
      for (const l of lines) {
        expect(l).toMatchObject({ level: 40, msg: 'API call refused', component: 'api' });
        expect(JSON.stringify(l)).not.toContain('stack');
      }
      // One component key per line (pino children of children used to repeat it).
      const raw = readFileSync(agent.logFile, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'));
      expect(raw.some((l) => l.includes('"component":"gossip"'))).toBe(true);
      for (const l of raw) expect(l.match(/"component":/g)?.length ?? 0).toBeLessThanOrEqual(1);
      // Nothing was attached by the refused calls (positive control: the agent still attaches).
      await expect(c.call('checkWorkload', { identity: 'long-if' })).rejects.toMatchObject({ code: 5 });
    }, 60_000);

    it('drain durations have caps; SIGTERM in the middle of a drain stops the agent within 10 s', async () => {
      const c = api(f.socket);
      // Not draining yet: an add is refused for its namespace, not for a drain.
      const probe = () =>
        c.call('addWorkload', { tenant: 'blue', netns: '/run/netns/no-such-namespace' }).then(
          () => 'attached',
          (e: Error) => e.message,
        );
      const huge = segmesh(['drain', '--wait', '4294967295', '--socket', f.socket], { allowFail: true });
      expect(huge.code).toBe(1);
      expect(huge.err).toMatch(
        /--wait 4294967295: give whole milliseconds from 0 \(the default\) up to 600000/,
      );
      expect(await probe()).toMatch(/no-such-namespace cannot be read/);

      // A drain that would wait 10 minutes for traffic to stand still for a minute.
      let drainDone = false;
      const drain = sh(
        process.execPath,
        [...CLI, 'drain', '--wait', '600000', '--quiet', '60000', '--socket', f.socket],
        { allowFail: true, timeoutMs: 120_000 },
      ).finally(() => {
        drainDone = true;
      });
      await waitFor(async () => /draining/.test(await probe()), {
        timeoutMs: 20_000,
        what: 'the drain to start',
      });
      expect(drainDone).toBe(false);
      expect(agent.alive()).toBe(true);

      const t0 = Date.now();
      agent.kill('SIGTERM');
      const code = await Promise.race([
        agent.exited,
        new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000)),
      ]);
      const elapsed = Date.now() - t0;
      expect(code, `the agent did not exit within 10 s of SIGTERM (log: ${agent.logFile})`).toBe(0);
      expect(elapsed).toBeLessThan(10_000);
      const d = await drain;
      expect(d.code).toBe(1);
      expect(d.stderr).toMatch(
        /the agent was stopped \(SIGTERM\) during the drain: the host is half drained/,
      );
      expect(existsSync(`${f.stateDir}/agent.pid`)).toBe(false);
      expect(existsSync(f.socket)).toBe(false);
    }, 90_000);
  });
});
