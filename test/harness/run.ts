/**
 * One test run: its name prefix, the record of what it created, and the sweeper that removes what a
 * killed run left behind.
 *
 * Every namespace, link, daemon and container a run creates is named `sm<4 hex>-...` (the run prefix).
 * The run writes its owner (PID and kernel start time of the Vitest main process) and every daemon it
 * starts under STATE_DIR. The sweeper only touches objects whose run prefix belongs to a run that is no
 * longer alive, so two runs on one machine (two developers, a developer and CI) never remove each
 * other's objects, and nothing without the project's prefix is ever touched.
 */
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { processStartTime } from '../../src/os/process.ts';
import { sh } from './exec.ts';

export { processStartTime };

export const STATE_DIR = process.env.SEGMESH_TEST_STATE_DIR ?? '/run/segmesh-test';
export const LOG_ROOT = process.env.SEGMESH_TEST_LOG_DIR ?? '/tmp/segmesh-test';
/** Matches every object name any run of this project creates, and captures the run prefix. */
export const PREFIX_PATTERN = /^(sm[0-9a-f]{4})-/;

export function newRunPrefix(): string {
  return `sm${randomBytes(2).toString('hex')}`;
}

/** The current run's prefix: set by the global setup; a test file run on its own makes one. */
export function runPrefix(): string {
  let prefix = process.env.SEGMESH_TEST_PREFIX;
  if (!prefix) {
    prefix = newRunPrefix();
    process.env.SEGMESH_TEST_PREFIX = prefix;
    claimRun(prefix, process.pid);
  }
  return prefix;
}

export function runLogDir(): string {
  const dir = `${LOG_ROOT}/${runPrefix()}`;
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * A path in the run's log folder that no earlier test file of the same run used: files of one run
 * share the folder, and a log or socket left by an earlier file must never be mistaken for a new one.
 */
export function freshLogPath(name: string, ext = ''): string {
  const dir = runLogDir();
  for (let i = 1; ; i++) {
    const path = `${dir}/${name}${i === 1 ? '' : `.${i}`}${ext}`;
    if (!existsSync(path)) return path;
  }
}

/** `${prefix}-${suffix}`; throws when it would not fit an interface name (15 bytes). */
export function objectName(suffix: string): string {
  const name = `${runPrefix()}-${suffix}`;
  if (name.length > 15) {
    throw new Error(
      `test object name ${name} is ${name.length} bytes; Linux interface names take 15: shorten "${suffix}"`,
    );
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(suffix))
    throw new Error(`test object suffix "${suffix}" must be [A-Za-z0-9_.-]`);
  return name;
}

function isAlive(pid: number, startTime: string | undefined): boolean {
  const now = processStartTime(pid);
  return now !== undefined && (startTime === undefined || now === startTime);
}

interface Owner {
  readonly pid: number;
  readonly startTime: string | undefined;
}

export function claimRun(prefix: string, pid: number): void {
  mkdirSync(STATE_DIR, { recursive: true });
  const owner: Owner = { pid, startTime: processStartTime(pid) };
  writeFileSync(`${STATE_DIR}/${prefix}.owner`, JSON.stringify(owner));
}

/** Records a process this run started, so a sweeper can end it (by PID, checked by start time). */
export function recordProcess(pid: number, name: string): void {
  mkdirSync(STATE_DIR, { recursive: true });
  const entry = { pid, startTime: processStartTime(pid), name };
  appendFileSync(`${STATE_DIR}/${runPrefix()}.procs`, `${JSON.stringify(entry)}\n`);
}

function runIsAlive(prefix: string): boolean {
  try {
    const owner = JSON.parse(readFileSync(`${STATE_DIR}/${prefix}.owner`, 'utf8')) as Owner;
    return isAlive(owner.pid, owner.startTime);
  } catch {
    return false;
  }
}

async function listNetns(): Promise<string[]> {
  const out = await sh('ip', ['netns', 'list'], { allowFail: true });
  return out.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.length > 0);
}

async function killPid(pid: number, startTime: string | undefined): Promise<void> {
  if (!isAlive(pid, startTime)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 20 && isAlive(pid, startTime); i++) await new Promise((r) => setTimeout(r, 50));
  if (isAlive(pid, startTime)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

/** Ends every process inside a namespace of ours (they can only be ours), then deletes it. */
export async function removeNetns(name: string): Promise<void> {
  if (!PREFIX_PATTERN.test(name)) throw new Error(`refusing to remove namespace ${name}: not a test object`);
  const pids = await sh('ip', ['netns', 'pids', name], { allowFail: true });
  for (const line of pids.stdout.split('\n')) {
    const pid = Number(line.trim());
    if (pid > 1 && pid !== process.pid) await killPid(pid, processStartTime(pid));
  }
  await sh('ip', ['netns', 'del', name], { allowFail: true });
}

/** Links of the host's namespace named with a run prefix (a VM's taps; veths of tests). */
async function listHostLinks(): Promise<string[]> {
  const out = await sh('ip', ['-o', 'link', 'show'], { allowFail: true });
  return out.stdout
    .split('\n')
    .map((l) => (l.split(': ')[1] ?? '').split('@')[0] ?? '')
    .filter((n) => PREFIX_PATTERN.test(n));
}

export interface SweepReport {
  readonly links: string[];
  readonly namespaces: string[];
  readonly processes: number[];
  readonly runs: string[];
}

/**
 * Removes what runs that are no longer alive left behind: their recorded processes (daemons, VMs'
 * qemu and virtiofsd), their namespaces, their links in the host's namespace (VMs' taps), their state
 * files. With `includeRun`, that run's objects go too (its own final teardown).
 */
export async function sweep(includeRun?: string): Promise<SweepReport> {
  const report: SweepReport = { links: [], namespaces: [], processes: [], runs: [] };
  const dead = (prefix: string) => prefix === includeRun || !runIsAlive(prefix);
  mkdirSync(STATE_DIR, { recursive: true });
  for (const file of readdirSync(STATE_DIR)) {
    const m = /^(sm[0-9a-f]{4})\.procs$/.exec(file);
    if (!m || !dead(m[1]!)) continue;
    for (const line of readFileSync(`${STATE_DIR}/${file}`, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const entry = JSON.parse(line) as { pid: number; startTime?: string };
      if (isAlive(entry.pid, entry.startTime)) {
        await killPid(entry.pid, entry.startTime);
        report.processes.push(entry.pid);
      }
    }
  }
  for (const ns of await listNetns()) {
    const m = PREFIX_PATTERN.exec(ns);
    if (m && dead(m[1]!)) {
      await removeNetns(ns);
      report.namespaces.push(ns);
    }
  }
  // Processes first (a VM's qemu holds its taps), then the links they leave in the host's namespace.
  for (const link of await listHostLinks()) {
    const m = PREFIX_PATTERN.exec(link);
    if (m && dead(m[1]!)) {
      await sh('ip', ['link', 'del', link], { allowFail: true });
      report.links.push(link);
    }
  }
  for (const hook of sweepHooks) await hook(dead);
  for (const file of readdirSync(STATE_DIR)) {
    const m = /^(sm[0-9a-f]{4})\.(owner|procs)$/.exec(file);
    if (m && dead(m[1]!)) {
      rmSync(`${STATE_DIR}/${file}`, { force: true });
      if (!report.runs.includes(m[1]!)) report.runs.push(m[1]!);
    }
  }
  return report;
}

/** Extra sweepers (containers, images) registered by fixtures; each gets the "is this run dead" test. */
const sweepHooks: Array<(dead: (prefix: string) => boolean) => Promise<void>> = [];
export function addSweepHook(hook: (dead: (prefix: string) => boolean) => Promise<void>): void {
  sweepHooks.push(hook);
}
