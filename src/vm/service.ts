/**
 * A long-lived seg6 kernel VM (a lab node): unlike `Vm` (./vm.ts), which runs one command and is tied
 * to its caller, this VM outlives the process that started it (`segmesh lab up` exits, the lab stays),
 * so everything about it is on disk:
 *
 * - qemu runs detached (own session), its PID and kernel start time in a state record the caller
 *   keeps; `stopServiceVm` ends it by PID (checked by start time, never by name) and deletes its taps;
 * - the guest's second serial port (ready line, the command's output) goes to `<logDir>/output.log`;
 * - a virtio-serial port is a control channel on the unix socket `<logDir>/control.sock`: the guest's
 *   command ends in `controlLoop()`, which runs one shell command per request line and answers with its
 *   exit status, stdout and stderr (base64). A unix socket under the log folder, not a network port:
 *   only root on this machine reaches the VM's shell, never a lab container.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { processStartTime } from '../os/process.ts';
import type { VmImage } from './image.ts';
import { jobScript, kvmWorks, QEMU, tapMac, VmError, type VmTap } from './vm.ts';

export { processStartTime };

export interface ServiceVmOptions {
  /** Names the qemu process (use the lab prefix and node). */
  readonly name: string;
  readonly image: VmImage;
  /** The guest's command: it must end by running `controlLoop()` (it never returns). */
  readonly command: readonly string[];
  /** Tap devices in the host's namespace, each attached to a bridge (`master`). */
  readonly taps: readonly VmTap[];
  readonly logDir: string;
  readonly memoryMiB?: number;
  /** Until the guest init's ready line (default 60 s). */
  readonly readyTimeoutMs?: number;
  /** qemu's PID as soon as it runs (a test run records it for its sweeper). */
  readonly onProcess?: (pid: number, name: string) => void;
}

/** What it takes to find, reach and stop the VM later, from another process. */
export interface ServiceVmState {
  readonly name: string;
  readonly pid: number;
  /** Field 22 of /proc/PID/stat: a reused PID is never taken for the VM. */
  readonly startTime: string;
  readonly taps: readonly string[];
  readonly logDir: string;
  readonly controlSocket: string;
  readonly accel: 'kvm' | 'tcg';
  readonly kernelVersion: string;
}

export interface VmExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly output: string;
}

export function serviceVmAlive(s: Pick<ServiceVmState, 'pid' | 'startTime'>): boolean {
  return processStartTime(s.pid) === s.startTime;
}

function tail(path: string, lines = 20): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(none)';
  }
}

function ipLink(args: string[], allowFail = false): void {
  const r = spawnSync('ip', ['link', ...args], { encoding: 'utf8' });
  if (r.status !== 0 && !allowFail) throw new VmError(`ip link ${args.join(' ')}: ${r.stderr.trim()}`);
}

/**
 * The guest side of the control channel (sh, on the virtio port `segmesh.ctl`): one request per line, `ID BASE64-SCRIPT`;
 * one answer per line, `ID STATUS BASE64-STDOUT BASE64-STDERR`. Each command runs under `timeout`.
 */
export function controlLoop(timeoutS = 120): string {
  return [
    'modprobe virtio_console',
    'port=',
    'for i in $(seq 1 100); do',
    '  for p in /sys/class/virtio-ports/*; do [ "$(cat "$p/name" 2>/dev/null)" = segmesh.ctl ] && port=/dev/$(basename "$p"); done',
    '  [ -n "$port" ] && [ -e "$port" ] && break',
    '  sleep 0.1',
    'done',
    '[ -n "$port" ] || { echo "no virtio port segmesh.ctl"; exit 1; }',
    'exec 3<>"$port"',
    // A read sees end of file when the host side disconnects: wait for the next connection then.
    'while :; do',
    '  IFS=" " read -r id b64 <&3 || { sleep 0.2; continue; }',
    '  [ -n "$id" ] || continue',
    '  printf %s "$b64" | base64 -d >/run/ctl.sh 2>/dev/null',
    `  timeout -k 2 ${timeoutS} sh /run/ctl.sh </dev/null >/run/ctl.out 2>/run/ctl.err`,
    '  rc=$?',
    '  printf "%s %s %s %s\\n" "$id" "$rc" "$(base64 -w0 /run/ctl.out)" "$(base64 -w0 /run/ctl.err)" >&3',
    'done',
  ].join('\n');
}

/** Boots the VM detached; resolves at the guest init's ready line (the command then starts). */
export async function startServiceVm(opts: ServiceVmOptions): Promise<ServiceVmState> {
  mkdirSync(opts.logDir, { recursive: true });
  const consoleLog = `${opts.logDir}/console.log`;
  const outputLog = `${opts.logDir}/output.log`;
  const controlSocket = `${opts.logDir}/control.sock`;
  for (const f of [consoleLog, outputLog]) writeFileSync(f, '');
  const job = `${opts.logDir}/job.sh`;
  const accel = process.env.SEGMESH_VM_ACCEL === 'kvm' || kvmWorks(opts.image) ? 'kvm' : 'tcg';
  writeFileSync(job, jobScript({ command: opts.command, taps: opts.taps, env: { SEGMESH_VM_GUEST: accel } }));

  const created: string[] = [];
  const removeTaps = () => {
    for (const t of created) ipLink(['del', t], true);
  };
  const args: string[] = [
    ...['-name', `${opts.name},process=${opts.name}`, '-machine', 'pc'],
    // A small translation cache: an edge router is mostly idle, and its RSS stays near its memory.
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,tb-size=128', '-cpu', 'max']),
    ...['-smp', '1', '-m', String(opts.memoryMiB ?? 512)],
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
    ...['-kernel', opts.image.kernel, '-initrd', opts.image.initrd],
    ...['-append', 'console=ttyS0 panic=-1 quiet mitigations=off'],
    ...['-drive', `file=${opts.image.rootImage},if=virtio,format=raw,snapshot=on`],
    ...['-fw_cfg', `name=opt/segmesh/job,file=${job}`],
    ...['-serial', `file:${consoleLog}`, '-serial', `file:${outputLog}`],
    // The control channel: a virtio-serial port (ISA ttyS2 would share ttyS0's edge-triggered IRQ).
    ...['-device', 'virtio-serial-pci', '-chardev', `socket,id=ctl,path=${controlSocket},server=on,wait=off`],
    ...['-device', 'virtserialport,chardev=ctl,name=segmesh.ctl'],
  ];
  try {
    for (const [i, tap] of opts.taps.entries()) {
      ipLink(['del', tap.name], true); // left by a VM that was killed and never swept
      const add = spawnSync('ip', ['tuntap', 'add', 'dev', tap.name, 'mode', 'tap'], { encoding: 'utf8' });
      if (add.status !== 0) throw new VmError(`ip tuntap add dev ${tap.name}: ${add.stderr.trim()}`);
      created.push(tap.name);
      if (tap.master) ipLink(['set', tap.name, 'master', tap.master]);
      ipLink(['set', tap.name, 'up']);
      args.push(
        ...['-netdev', `tap,id=n${i},ifname=${tap.name},script=no,downscript=no`],
        ...['-device', `virtio-net-pci,netdev=n${i},mac=${tapMac(tap.name)}`],
      );
    }
  } catch (e) {
    removeTaps();
    throw e;
  }
  writeFileSync(`${opts.logDir}/qemu.cmdline`, `${[QEMU, ...args].join(' ')}\n`);
  const log = openSync(`${opts.logDir}/qemu.log`, 'w');
  const qemu = spawn(QEMU, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  qemu.unref();
  const pid = qemu.pid;
  if (pid === undefined) {
    removeTaps();
    throw new VmError(`VM ${opts.name}: cannot start ${QEMU}: ${tail(`${opts.logDir}/qemu.log`, 5)}`);
  }
  opts.onProcess?.(pid, `qemu ${opts.name}`);
  let startTime: string | undefined;
  for (let i = 0; i < 50 && startTime === undefined; i++) {
    startTime = processStartTime(pid);
    if (startTime === undefined) await new Promise((r) => setTimeout(r, 10));
  }
  const state: ServiceVmState = {
    name: opts.name,
    pid,
    startTime: startTime ?? '',
    taps: created,
    logDir: opts.logDir,
    controlSocket,
    accel,
    kernelVersion: opts.image.kernelVersion,
  };
  const why = (what: string) =>
    new VmError(
      `VM ${opts.name} (${accel}, kernel ${opts.image.kernelVersion}): ${what}\n` +
        `qemu: ${tail(`${opts.logDir}/qemu.log`, 5) || '(nothing)'}\n` +
        `console (${consoleLog}), last lines:\n${tail(consoleLog)}`,
    );
  const timeoutMs = opts.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const out = readFileSync(outputLog, 'utf8');
    if (out.includes('SEGMESH_VM_READY')) return state;
    const err = /SEGMESH_VM_ERROR=(.*)/.exec(out)?.[1];
    let failure: VmError | undefined;
    if (err) failure = why(`set-up failed in the guest: ${err}`);
    else if (!serviceVmAlive(state)) failure = why('qemu exited before the ready line');
    else if (Date.now() > deadline) failure = why(`no ready line within ${timeoutMs / 1000} s`);
    if (failure) {
      await stopServiceVm(state);
      throw failure;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Ends qemu (SIGTERM, SIGKILL after 3 s; by PID and start time) and deletes the taps. Idempotent. */
export async function stopServiceVm(s: ServiceVmState): Promise<void> {
  if (serviceVmAlive(s)) {
    try {
      process.kill(s.pid, 'SIGTERM');
    } catch {}
    for (let i = 0; i < 60 && serviceVmAlive(s); i++) await new Promise((r) => setTimeout(r, 50));
    if (serviceVmAlive(s)) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {}
      for (let i = 0; i < 40 && serviceVmAlive(s); i++) await new Promise((r) => setTimeout(r, 50));
    }
  }
  for (const t of s.taps) ipLink(['del', t], true);
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
let nextId = 0;

/**
 * Runs `argv` in the guest through the control channel; never throws on a non-zero exit. Requests of
 * one process go one at a time (the guest answers in order); another process waits for the socket.
 */
export function serviceVmExec(
  s: ServiceVmState,
  argv: readonly string[],
  timeoutMs = 130_000,
): Promise<VmExecResult> {
  const run = queue.then(() => execOnce(s, argv, timeoutMs));
  queue = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}
let queue: Promise<void> = Promise.resolve();

function execOnce(s: ServiceVmState, argv: readonly string[], timeoutMs: number): Promise<VmExecResult> {
  if (!existsSync(s.controlSocket) || !serviceVmAlive(s))
    return Promise.reject(new VmError(`VM ${s.name} is not running (no qemu ${s.pid}); see ${s.logDir}`));
  const id = `${process.pid}.${++nextId}`;
  const script = Buffer.from(`${argv.map(quote).join(' ')}\n`).toString('base64');
  return new Promise((resolve, reject) => {
    const sock = createConnection(s.controlSocket);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new VmError(`VM ${s.name}: no answer to "${argv.join(' ')}" within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(`${id} ${script}\n`));
    sock.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        const [rid, rc, out, err] = line.split(' ');
        if (rid !== id) continue; // an answer to a request of a caller that gave up
        clearTimeout(timer);
        sock.end();
        const stdout = Buffer.from(out ?? '', 'base64').toString('utf8');
        const stderr = Buffer.from(err ?? '', 'base64').toString('utf8');
        resolve({ exitCode: Number(rc), stdout, stderr, output: stdout + stderr });
        return;
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(new VmError(`VM ${s.name}: control socket ${s.controlSocket}: ${e.message}`));
    });
  });
}
