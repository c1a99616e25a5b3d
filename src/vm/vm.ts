/**
 * The seg6 kernel VM: runs one command inside Debian's cloud kernel (seg6, seg6local, seg6 HMAC, VRF)
 * under qemu, for the host kernels that lack them (docs/testing.md, "The seg6 kernel VM").
 *
 * - Boot: qemu with the cached image (./image.ts) as `-drive snapshot=on` (never written, so parallel
 *   VMs share it); KVM when it boots a kernel here, TCG otherwise.
 * - Files: host folders are shared at the same path by virtiofs. A read-only share is served by a
 *   virtiofsd that sees a read-only bind mount (its own mount namespace), with a tmpfs overlay in the
 *   guest; a writable share (results, logs) is the host folder itself.
 * - Job in, result out: the job (a shell script calling the guest init's helpers) goes in by fw_cfg;
 *   the guest prints a ready line, the command's output (stdout and stderr together) and
 *   `SEGMESH_VM_RC=<status>` on its second serial port, which is qemu's stdout here. The first serial
 *   port is the console, kept in `<logDir>/console.log`.
 * - Network: optional tap devices, in a network namespace of the caller's (qemu runs there).
 * - Names and cleanup: the VM, its taps and processes carry the caller's name (the run prefix); every
 *   process is reported through `onProcess` for a sweeper, and `stop()` (called on every way out of
 *   `runInVm`) kills qemu and virtiofsd by PID and deletes the taps.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import type { VmImage } from './image.ts';

export const QEMU = 'qemu-system-x86_64';
export const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
/** The host RSS of a VM is about its memory plus the TCG translation cache; keep both under 2 GiB. */
export const MAX_MEMORY_MIB = 1792;
const TB_SIZE_MIB = 256;

export interface VmShare {
  /** Host folder, mounted at the same path in the guest. */
  readonly path: string;
  /** Writes go to the host folder; otherwise the guest writes to a tmpfs overlay. */
  readonly writable?: boolean;
}

export interface VmTap {
  /** Host tap device name (at most 15 bytes; use the run prefix). */
  readonly name: string;
  /** Attach the tap to this bridge (in the same namespace). */
  readonly master?: string;
  readonly hostAddresses?: readonly string[];
  /** The guest's interface name for this NIC (default eth<N>). */
  readonly guestName?: string;
  readonly guestAddresses?: readonly string[];
}

export interface VmOptions {
  /** Names the VM's qemu process and its log folder: use the run prefix (e.g. sm1a2b-vm1). */
  readonly name: string;
  readonly image: VmImage;
  /** argv run in the guest. */
  readonly command: readonly string[];
  /** Working directory in the guest (default /). */
  readonly cwd?: string;
  /** The command's environment in the guest (PATH defaults to Debian's). */
  readonly env?: Readonly<Record<string, string>>;
  readonly shares?: readonly VmShare[];
  readonly taps?: readonly VmTap[];
  /** Network namespace that holds the taps; qemu runs in it. */
  readonly netns?: string;
  readonly memoryMiB?: number;
  readonly cpus?: number;
  /** How long boot may take until the ready line (default 60 s). */
  readonly readyTimeoutMs?: number;
  /** How long the command may run after the ready line (default: no limit). */
  readonly timeoutMs?: number;
  /** Folder for console.log, output.log and the job (created). */
  readonly logDir: string;
  /** Every process started for the VM (qemu, virtiofsd), for a sweeper to end if the caller dies. */
  readonly onProcess?: (pid: number, name: string) => void;
  /** The command's output as it arrives. */
  readonly output?: (chunk: string) => void;
  /** 'auto' (default): KVM if it boots a kernel here, else TCG. SEGMESH_VM_ACCEL overrides. */
  readonly accel?: 'auto' | 'kvm' | 'tcg';
}

export interface VmResult {
  /** The command's exit status in the guest. */
  readonly code: number;
  /** Its stdout and stderr, interleaved as written. */
  readonly output: string;
  /** From qemu start to the ready line. */
  readonly bootMs: number;
  readonly accel: 'kvm' | 'tcg';
}

/** A VM that fails before or while running its command; the message names the cause and the console. */
export class VmError extends Error {
  override readonly name = 'VmError';
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A stable locally administered MAC per tap name, so a guest NIC can be found by it. */
export function tapMac(name: string): string {
  const h = createHash('sha256').update(name).digest();
  return `52:54:00:${[h[0], h[1], h[2]].map((b) => (b ?? 0).toString(16).padStart(2, '0')).join(':')}`;
}

/** The shell script the guest init runs (src/vm/guest/init.sh defines share, nic, fail, ready, finish). */
export function jobScript(opts: Pick<VmOptions, 'command' | 'cwd' | 'env' | 'shares' | 'taps'>): string {
  const lines = ['# written by src/vm/vm.ts'];
  (opts.shares ?? []).forEach((s, i) => {
    lines.push(
      `share s${i} ${quote(s.path)} ${s.writable ? 'rw' : 'ro'} || fail ${quote(`cannot mount share ${s.path}`)}`,
    );
  });
  (opts.taps ?? []).forEach((t, i) => {
    const name = t.guestName ?? `eth${i}`;
    const addrs = (t.guestAddresses ?? []).map(quote).join(' ');
    lines.push(`nic ${tapMac(t.name)} ${quote(name)} ${addrs} || fail ${quote(`cannot set up NIC ${name}`)}`);
  });
  const cwd = opts.cwd ?? '/';
  lines.push(`cd ${quote(cwd)} || fail ${quote(`no directory ${cwd} in the guest`)}`);
  lines.push('ready');
  const env = Object.entries(opts.env ?? {}).map(([k, v]) => quote(`${k}=${v}`));
  lines.push(`env ${env.join(' ')} ${opts.command.map(quote).join(' ')} >$out 2>&1 </dev/null`);
  lines.push('finish $?');
  return `${lines.join('\n')}\n`;
}

let kvmVerdict: boolean | undefined;
/**
 * Whether KVM boots this image's kernel: here /dev/kvm is KVM-PVM, which aborts or hangs a stock
 * kernel (docs/testing.md), so the answer comes from trying: the kernel must reach its panic for the
 * missing root file system within 10 s. Asked once per process.
 */
export function kvmWorks(image: VmImage): boolean {
  if (kvmVerdict !== undefined) return kvmVerdict;
  if (!existsSync('/dev/kvm')) {
    kvmVerdict = false;
    return kvmVerdict;
  }
  const probe = spawnSync(
    QEMU,
    [
      ...['-accel', 'kvm', '-cpu', 'host', '-machine', 'pc', '-m', '256', '-nodefaults', '-display', 'none'],
      ...['-no-reboot', '-kernel', image.kernel, '-append', 'console=ttyS0 panic=-1', '-serial', 'stdio'],
    ],
    { timeout: 10_000, killSignal: 'SIGKILL', encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  kvmVerdict = /Kernel panic|VFS: Unable to mount root/.test(probe.stdout ?? '');
  return kvmVerdict;
}

function chooseAccel(opts: VmOptions): 'kvm' | 'tcg' {
  const wanted = (process.env.SEGMESH_VM_ACCEL as VmOptions['accel']) ?? opts.accel ?? 'auto';
  if (wanted === 'tcg') return 'tcg';
  if (wanted === 'kvm') return 'kvm';
  return kvmWorks(opts.image) ? 'kvm' : 'tcg';
}

function tail(path: string, lines = 25): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no console output)';
  }
}

function ip(netns: string | undefined, args: string[], allowFail = false): void {
  const r = spawnSync('ip', [...(netns ? ['-n', netns] : []), ...args], { encoding: 'utf8' });
  if (r.status !== 0 && !allowFail) throw new VmError(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
}

function startProcess(argv: string[], logFile: string, stdout: 'pipe' | 'log'): ChildProcess {
  const fd = openSync(logFile, 'a');
  return spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', stdout === 'pipe' ? 'pipe' : fd, fd],
  });
}

export class Vm {
  readonly name: string;
  readonly consoleLog: string;
  readonly logDir: string;
  /** Resolves at the guest's ready line; rejects when the VM cannot come up (with the reason). */
  readonly ready: Promise<number>;
  /** Resolves when the command finished (the VM is stopped then). */
  readonly result: Promise<VmResult>;
  readonly #procs: ChildProcess[] = [];
  readonly #opts: VmOptions;
  #stopped = false;

  private constructor(opts: VmOptions, ready: Promise<number>, result: Promise<VmResult>) {
    this.#opts = opts;
    this.name = opts.name;
    this.logDir = opts.logDir;
    this.consoleLog = `${opts.logDir}/console.log`;
    this.ready = ready;
    this.result = result;
  }

  /** Boots the VM; await `ready` or `result`. Always call `stop()` when done (runInVm does). */
  static start(opts: VmOptions): Vm {
    let resolveReady!: (ms: number) => void;
    let rejectReady!: (e: Error) => void;
    const ready = new Promise<number>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    let settle!: { resolve: (r: VmResult) => void; reject: (e: Error) => void };
    const result = new Promise<VmResult>((resolve, reject) => {
      settle = { resolve, reject };
    });
    // Nobody may await `ready` (runInVm awaits `result`); its rejection is reported through `result`.
    ready.catch(() => {});
    const vm = new Vm(opts, ready, result);
    vm.#boot(resolveReady, rejectReady, settle).catch((e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      rejectReady(err);
      settle.reject(err);
    });
    // The caller sees the failure through `result` or `ready`; the VM is stopped either way.
    result.then(
      () => vm.stop(),
      () => vm.stop(),
    );
    return vm;
  }

  async #boot(
    resolveReady: (ms: number) => void,
    rejectReady: (e: Error) => void,
    settle: { resolve: (r: VmResult) => void; reject: (e: Error) => void },
  ): Promise<void> {
    const opts = this.#opts;
    const memory = opts.memoryMiB ?? 1536;
    if (memory > MAX_MEMORY_MIB)
      throw new VmError(`VM ${opts.name}: memoryMiB ${memory} is over ${MAX_MEMORY_MIB}`);
    mkdirSync(opts.logDir, { recursive: true });
    writeFileSync(this.consoleLog, '');
    const job = `${opts.logDir}/job.sh`;
    const accel = chooseAccel(opts);
    // The guest's tests read SEGMESH_VM_GUEST to know they run emulated (test/harness/pace.ts).
    writeFileSync(job, jobScript({ ...opts, env: { SEGMESH_VM_GUEST: accel, ...opts.env } }));
    const qemuLog = `${opts.logDir}/qemu.log`;

    const args: string[] = [
      ...['-name', `${opts.name},process=${opts.name}`, '-machine', 'pc'],
      ...(accel === 'kvm'
        ? ['-accel', 'kvm', '-cpu', 'host']
        : ['-accel', `tcg,tb-size=${TB_SIZE_MIB}`, '-cpu', 'max']),
      ...['-smp', String(opts.cpus ?? 1), '-m', String(memory)],
      ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
      ...['-kernel', opts.image.kernel, '-initrd', opts.image.initrd],
      ...['-append', 'console=ttyS0 panic=-1 quiet mitigations=off'],
      ...['-drive', `file=${opts.image.rootImage},if=virtio,format=raw,snapshot=on`],
      ...['-fw_cfg', `name=opt/segmesh/job,file=${job}`],
      ...[
        '-serial',
        `file:${this.consoleLog}`,
        '-chardev',
        'stdio,id=out,signal=off',
        '-serial',
        'chardev:out',
      ],
    ];

    // virtiofsd per share; vhost-user needs the guest memory shared with it.
    const shares = opts.shares ?? [];
    if (shares.length > 0) {
      args.push(
        '-object',
        `memory-backend-memfd,id=mem,size=${memory}M,share=on`,
        '-numa',
        'node,memdev=mem',
      );
    }
    for (const [i, share] of shares.entries()) {
      if (!existsSync(share.path))
        throw new VmError(`VM ${opts.name}: shared folder ${share.path} does not exist`);
      const socket = `${opts.logDir}/vfs${i}.sock`;
      const serve = `exec ${VIRTIOFSD} --socket-path="$2" -o source="$1" -o cache=${share.writable ? 'auto' : 'always'} -o sandbox=chroot`;
      // Read-only for the guest whatever it does: virtiofsd sees a read-only bind mount of its own.
      const script = share.writable
        ? serve
        : `mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && ${serve}`;
      const child = startProcess(
        ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', share.path, socket],
        `${opts.logDir}/virtiofsd${i}.log`,
        'log',
      );
      this.#track(child, `${opts.name}-virtiofsd${i}`);
      const deadline = Date.now() + 10_000;
      while (!existsSync(socket)) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new VmError(
            `VM ${opts.name}: virtiofsd for ${share.path} did not start: ${tail(`${opts.logDir}/virtiofsd${i}.log`, 5)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      args.push(
        '-chardev',
        `socket,id=vfs${i},path=${socket}`,
        '-device',
        `vhost-user-fs-pci,chardev=vfs${i},tag=s${i}`,
      );
    }

    for (const [i, tap] of (opts.taps ?? []).entries()) {
      ip(opts.netns, ['tuntap', 'add', 'dev', tap.name, 'mode', 'tap']);
      this.#taps.push(tap.name);
      if (tap.master) ip(opts.netns, ['link', 'set', tap.name, 'master', tap.master]);
      for (const a of tap.hostAddresses ?? []) ip(opts.netns, ['addr', 'add', a, 'dev', tap.name, 'nodad']);
      ip(opts.netns, ['link', 'set', tap.name, 'up']);
      args.push(
        ...['-netdev', `tap,id=n${i},ifname=${tap.name},script=no,downscript=no`],
        ...['-device', `virtio-net-pci,netdev=n${i},mac=${tapMac(tap.name)}`],
      );
    }

    const argv = opts.netns ? ['ip', 'netns', 'exec', opts.netns, QEMU, ...args] : [QEMU, ...args];
    writeFileSync(
      `${opts.logDir}/qemu.cmdline`,
      `${argv.map((a) => (/[\s"'$]/.test(a) ? quote(a) : a)).join(' ')}\n`,
    );
    const started = Date.now();
    const qemu = startProcess(argv, qemuLog, 'pipe');
    this.#track(qemu, opts.name);
    this.#qemu = qemu;

    const outputLog = openSync(`${opts.logDir}/output.log`, 'w');
    let buffered = '';
    let output = '';
    let bootMs: number | undefined;
    let code: number | undefined;
    let setupError: string | undefined;
    const why = (what: string) =>
      new VmError(
        `VM ${opts.name} (${accel}, kernel ${opts.image.kernelVersion}): ${what}\n` +
          `qemu: ${tail(qemuLog, 5) || '(nothing)'}\nconsole (${this.consoleLog}), last lines:\n${tail(this.consoleLog)}`,
      );
    const readyTimer = setTimeout(() => {
      rejectReady(why(`no ready line within ${(opts.readyTimeoutMs ?? 60_000) / 1000} s`));
      settle.reject(why(`no ready line within ${(opts.readyTimeoutMs ?? 60_000) / 1000} s`));
      void this.stop();
    }, opts.readyTimeoutMs ?? 60_000);
    let runTimer: NodeJS.Timeout | undefined;
    qemu.stdout?.on('data', (b: Buffer) => {
      buffered += b.toString('utf8');
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl + 1);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
        if (bootMs === undefined) {
          if (line.startsWith('SEGMESH_VM_READY')) {
            bootMs = Date.now() - started;
            clearTimeout(readyTimer);
            resolveReady(bootMs);
            if (opts.timeoutMs) {
              runTimer = setTimeout(() => {
                settle.reject(why(`the command ran longer than ${opts.timeoutMs} ms`));
                void this.stop();
              }, opts.timeoutMs);
            }
          } else if (line.startsWith('SEGMESH_VM_ERROR=')) {
            setupError = line.slice('SEGMESH_VM_ERROR='.length).trim();
          }
          continue;
        }
        // The status line follows the output directly, also when the output did not end with a newline.
        const rc = /^([\s\S]*)SEGMESH_VM_RC=(\d+)\s*$/.exec(line);
        if (rc) {
          code = Number(rc[2]);
          if (rc[1]) {
            output += rc[1];
            writeFileSync(outputLog, rc[1]);
            opts.output?.(rc[1]);
          }
          continue;
        }
        output += line;
        writeFileSync(outputLog, line);
        opts.output?.(line);
      }
    });
    qemu.on('exit', (status, signal) => {
      clearTimeout(readyTimer);
      if (runTimer) clearTimeout(runTimer);
      if (buffered && bootMs !== undefined && code === undefined) {
        output += buffered;
        opts.output?.(buffered);
      }
      const exit = `qemu exited (${status ?? signal})`;
      if (bootMs === undefined) {
        const e = why(
          setupError ? `set-up failed in the guest: ${setupError}` : `${exit} before the ready line`,
        );
        rejectReady(e);
        settle.reject(e);
      } else if (code === undefined) {
        settle.reject(why(`${exit} without the command's exit status`));
      } else {
        settle.resolve({ code, output, bootMs, accel });
      }
    });
  }

  #qemu: ChildProcess | undefined;
  readonly #taps: string[] = [];

  #track(child: ChildProcess, name: string): void {
    this.#procs.push(child);
    if (child.pid !== undefined) this.#opts.onProcess?.(child.pid, name);
  }

  /** Kills qemu and virtiofsd (by PID: SIGTERM, then SIGKILL after 3 s) and deletes the taps. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // qemu first: virtiofsd exits by itself when its guest goes away.
    const order = [
      ...this.#procs.filter((p) => p === this.#qemu),
      ...this.#procs.filter((p) => p !== this.#qemu),
    ];
    for (const child of order) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = new Promise((r) => setTimeout(r, 3_000));
      if ((await Promise.race([exited.then(() => 'exited'), timer.then(() => 'timeout')])) === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    }
    for (const tap of this.#taps) ip(this.#opts.netns, ['link', 'del', tap], true);
  }
}

/** Boots a VM, runs its command, stops the VM (also when anything fails) and returns the result. */
export async function runInVm(opts: VmOptions): Promise<VmResult> {
  const vm = Vm.start(opts);
  try {
    return await vm.result;
  } finally {
    await vm.stop();
  }
}
