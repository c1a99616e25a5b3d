import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLab, type Lab, objectName, sh, sweep, systemSuite } from '../../harness/index.ts';
import { processStartTime, STATE_DIR } from '../../harness/run.ts';
import { runInTestVm, startTestVm, testVmImage } from '../../harness/vm.ts';

const linkExists = async (name: string, netns?: string) =>
  (await sh('ip', [...(netns ? ['-n', netns] : []), 'link', 'show', name], { allowFail: true })).code === 0;

systemSuite(
  'vm: the seg6 kernel VM runner',
  { tools: ['qemu-system-x86_64', 'mmdebstrap', 'ip', 'ping'] },
  () => {
    let lab: Lab;
    let dir: string;
    beforeAll(async () => {
      lab = createLab();
      dir = mkdtempSync('/tmp/segmesh-vm-test-');
      await testVmImage(); // a cold build takes minutes; the tests below time only boots
    }, 900_000);
    afterAll(async () => {
      await lab?.teardown();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('runs a command in the guest kernel (seg6 routes work there) and returns its output and exit status', async () => {
      const image = await testVmImage();
      writeFileSync(`${dir}/in`, 'from the host\n');
      const results = mkdtempSync(`${dir}/results-`);
      const script = [
        'uname -r',
        'ip -6 route add fc00:2::/64 encap seg6 mode encap segs fc00:b::6 dev lo && ip -6 route show fc00:2::/64',
        `cat ${dir}/in`,
        `echo guest >${dir}/written-in-guest && echo overlay-write-ok`,
        `echo result >${results}/out.txt`,
        'exit 7',
      ].join('\n');
      const r = await runInTestVm({
        suffix: 'vmcmd',
        command: ['sh', '-c', script],
        shares: [{ path: dir }, { path: results, writable: true }],
      });
      expect(r.code).toBe(7);
      expect(r.output).toContain(image.kernelVersion);
      expect(r.output).toMatch(/fc00:2::\/64 +encap seg6 mode encap segs 1 \[ fc00:b::6 \]/);
      expect(r.output).toContain('from the host');
      expect(r.output).toContain('overlay-write-ok');
      // A read-only share: the guest's write stayed in its overlay. A writable one: on the host.
      expect(existsSync(`${dir}/written-in-guest`)).toBe(false);
      expect(readFileSync(`${results}/out.txt`, 'utf8')).toBe('result\n');
    });

    it('reaches a host namespace over a tap, and removes the tap when stopped', async () => {
      const host = await lab.netns('vmh');
      const tap = objectName('vtap');
      const vm = await startTestVm({
        suffix: 'vmtap',
        command: ['sh', '-c', 'echo up; sleep 600'],
        netns: host.name,
        taps: [{ name: tap, hostAddresses: ['2001:db8:7::1/64'], guestAddresses: ['2001:db8:7::2/64'] }],
      });
      try {
        await vm.ready;
        expect(await linkExists(tap, host.name)).toBe(true);
        const ok = await host.exec('ping', ['-6', '-c', '2', '-W', '5', '2001:db8:7::2'], {
          allowFail: true,
        });
        expect(ok.code, ok.stdout).toBe(0);
        // Negative control: an address on the same link that nobody holds.
        const miss = await host.exec('ping', ['-6', '-c', '1', '-W', '1', '2001:db8:7::3'], {
          allowFail: true,
        });
        expect(miss.code).not.toBe(0);
      } finally {
        await vm.stop();
      }
      expect(await linkExists(tap, host.name)).toBe(false);
      await expect(vm.result).rejects.toThrow(/without the command's exit status|qemu exited/);
    });

    it('fails fast, naming why and showing the console, when the guest cannot come up', async () => {
      const slow = runInTestVm({ suffix: 'vmslow', command: ['true'], readyTimeoutMs: 300 });
      await expect(slow).rejects.toThrow(/no ready line within 0.3 s[\s\S]*console \(.*console\.log\)/);
      const badNic = runInTestVm({
        suffix: 'vmbad',
        command: ['true'],
        netns: (await lab.netns('vmb')).name,
        taps: [{ name: objectName('vbad'), guestAddresses: ['not-an-address'] }],
      });
      await expect(badNic).rejects.toThrow(/set-up failed in the guest: cannot set up NIC eth0/);
      // Positive control: the same VM without the bad address comes up and runs its command.
      const good = await runInTestVm({
        suffix: 'vmgood',
        command: ['true'],
        netns: (await lab.netns('vmg')).name,
        taps: [{ name: objectName('vgood'), guestAddresses: ['2001:db8:8::2/64'] }],
      });
      expect(good.code).toBe(0);
    });

    describe('sweeper', () => {
      it("ends the VM processes and removes the taps of a killed run's VM", async () => {
        const prefix = `sm${Math.floor(Math.random() * 0xffff)
          .toString(16)
          .padStart(4, '0')}`;
        const tap = `${prefix}-vtap`;
        const child = spawn(
          process.execPath,
          ['scripts/vm-run.ts', '--prefix', prefix, '--tap', tap, '--', 'sh', '-c', 'echo up; sleep 600'],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        await new Promise<void>((resolve, reject) => {
          child.stdout.on('data', (d: Buffer) => {
            if (d.toString().includes('up')) resolve();
          });
          child.on('exit', (code) => reject(new Error(`vm-run exited early with ${code}: ${stderr}`)));
        });
        const procs = readFileSync(`${STATE_DIR}/${prefix}.procs`, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { pid: number; name: string });
        expect(procs.map((p) => p.name)).toEqual(
          expect.arrayContaining([`${prefix}-vm`, `${prefix}-vm-virtiofsd0`]),
        );
        expect(await linkExists(tap)).toBe(true);
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        // The caller is gone, its VM is not: that is what the sweeper is for.
        expect(procs.some((p) => processStartTime(p.pid) !== undefined)).toBe(true);
        const report = await sweep();
        expect(report.runs).toContain(prefix);
        expect(report.links).toContain(tap);
        for (const p of procs) expect(processStartTime(p.pid), p.name).toBeUndefined();
        expect(await linkExists(tap)).toBe(false);
      });
    });
  },
);
