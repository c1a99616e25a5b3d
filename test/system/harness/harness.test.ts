import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createLab, sh, sweep, systemSuite } from '../../harness/index.ts';
import { processStartTime } from '../../harness/run.ts';

systemSuite('harness', { tools: ['ip', 'ping', 'tcpdump', 'tshark'] }, () => {
  const lab = createLab();
  afterAll(() => lab.teardown());

  it('connects two namespaces through the switch namespace', async () => {
    const sw = await lab.underlaySwitch('sw');
    const a = await lab.netns('a');
    const b = await lab.netns('b');
    await sw.attach(a, 'eth0', ['2001:db8:99::a/64']);
    await sw.attach(b, 'eth0', ['2001:db8:99::b/64']);
    const cap = await lab.capture({ netns: b, ifname: 'eth0', filter: 'icmp6' });
    const ping = await a.exec('ping', ['-6', '-c', '2', '-i', '0.2', '-W', '2', '2001:db8:99::b']);
    expect(ping.stdout).toContain('2 received');
    const packets = await cap.decode('icmpv6.type == 128');
    expect(packets.length).toBe(2);
    expect(packets[0]!._source.layers.ipv6).toMatchObject({ 'ipv6.src': '2001:db8:99::a' });
    // Negative control: an address nobody holds gets no answer.
    const miss = await a.exec('ping', ['-6', '-c', '1', '-W', '1', '2001:db8:99::c'], { allowFail: true });
    expect(miss.code).not.toBe(0);
  });

  describe('sweeper', () => {
    it('removes everything a killed run left behind, and nothing of a live run', async () => {
      const live = await lab.netns('live');
      const child = spawn(process.execPath, ['test/harness/fixtures/half-run.ts'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const info = await new Promise<{ prefix: string; netns: string; inside: number; outside: number }>(
        (resolve, reject) => {
          let buf = '';
          child.stdout.on('data', (d: Buffer) => {
            buf += d.toString();
            if (buf.includes('READY')) resolve(JSON.parse(buf.split('\n')[0]!));
          });
          child.on('exit', (code) => reject(new Error(`half-run exited early with ${code}`)));
        },
      );
      const namespaces = async () => (await sh('ip', ['netns', 'list'])).stdout;
      expect(await namespaces()).toContain(info.netns);
      expect(processStartTime(info.inside)).toBeDefined();
      expect(processStartTime(info.outside)).toBeDefined();

      // While the run is alive the sweeper leaves it alone.
      await sweep();
      expect(await namespaces()).toContain(info.netns);

      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const report = await sweep();
      expect(report.runs).toContain(info.prefix);
      const after = await namespaces();
      expect(after).not.toContain(info.netns);
      expect(after).toContain(live.name);
      expect(processStartTime(info.inside)).toBeUndefined();
      expect(processStartTime(info.outside)).toBeUndefined();
    });
  });
});
