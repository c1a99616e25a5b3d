/**
 * What the agent owns on its host before it touches anything else: its runtime directory (the API
 * socket's parent), a lock on that directory and on its state directory, and the socket path.
 *
 * - The runtime directory (default /run/segmesh) is one the agent created: it makes it (0750, group
 *   `api.group`) and leaves a marker file in it. An existing directory without the marker, or one that
 *   is shared (sticky, group- or world-writable), or not owned by the agent's user, is refused and left
 *   as it is: the agent never changes the mode of a directory it did not create.
 * - A lock file (`agent.pid`) in each of the two directories names the agent holding it (PID, the
 *   process's start time from /proc, host name): a second agent on the same socket or state directory
 *   refuses to start and names the first. A lock whose process is gone (or whose PID was reused: the
 *   start time differs) is stale and taken over.
 * - The socket path: only a socket on which no agent answers is unlinked; any other file is refused.
 */
import { readFileSync, type Stats, unlinkSync } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, readFile, realpath, unlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { processStartTime } from '../os/process.ts';

export { processStartTime };

export const RUNTIME_MARKER = '.segmesh-runtime';
export const LOCK_FILE = 'agent.pid';

export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
}

/** Who holds a lock: enough to tell a live holder from a reused PID, and to name it. */
export interface LockHolder {
  readonly pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks since boot). */
  readonly startTime: string;
  /** The agent's host name (host.name in its configuration). */
  readonly host: string;
  /** The machine's host name. */
  readonly hostname: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly since: string;
}

function alive(h: LockHolder): boolean {
  return processStartTime(h.pid) === h.startTime;
}

function describe(h: LockHolder): string {
  return `pid ${h.pid}, host ${h.host} (machine ${h.hostname}), socket ${h.socket}, state directory ${h.stateDir}, running since ${h.since}`;
}

async function readHolder(file: string): Promise<LockHolder | undefined> {
  try {
    const h = JSON.parse(await readFile(file, 'utf8')) as LockHolder;
    return typeof h.pid === 'number' && typeof h.startTime === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

/**
 * Takes the lock file in `dir`: written whole to a temporary file, then linked into place (link fails
 * if the lock exists, so a reader never sees a half-written lock). A stale lock is removed once.
 */
async function takeLock(dir: string, me: LockHolder, what: string): Promise<string> {
  const file = join(dir, LOCK_FILE);
  const tmp = `${file}.${me.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(me)}\n`, { mode: 0o644 });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, file);
        return file;
      } catch (e) {
        if (code(e) !== 'EEXIST' || attempt > 0) throw e;
      }
      const holder = await readHolder(file);
      if (holder && alive(holder)) {
        throw new RuntimeError(
          `another segmesh agent holds the ${what} ${dir} (${describe(holder)}): ` +
            `stop it first (systemctl stop segmesh, or kill ${holder.pid}), or give this agent its own stateDir and api.socket`,
        );
      }
      await unlink(file).catch((e) => {
        if (code(e) !== 'ENOENT') throw e;
      });
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Removes the lock file if it is still this process's. */
function releaseLock(file: string, me: LockHolder): void {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
    if (h.pid === me.pid && h.startTime === me.startTime) unlinkSync(file);
  } catch {}
}

/** Group id of `name` from /etc/group (undefined: no such group). */
export async function groupId(name: string): Promise<number | undefined> {
  const groups = await readFile('/etc/group', 'utf8').catch(() => '');
  for (const line of groups.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid) return Number(gid);
  }
  return undefined;
}

/**
 * The socket's parent: created here (with the marker), or one created here before; anything else is
 * refused. Returns warnings (e.g. the group does not exist) for the log.
 */
export async function prepareRuntimeDir(dir: string, group: string): Promise<string[]> {
  const warnings: string[] = [];
  const uid = process.geteuid?.() ?? 0;
  const fix =
    "api.socket must lie in a directory of the agent's own, one that does not exist yet (the agent creates it), e.g. /run/segmesh/agent.sock";
  let st: Stats | undefined;
  try {
    st = await lstat(dir);
  } catch (e) {
    if (code(e) !== 'ENOENT')
      throw new RuntimeError(`cannot inspect ${dir} (${(e as Error).message}); ${fix}`);
  }
  if (st === undefined) {
    // Missing ancestors are created (never changed); the directory itself is made private first.
    await mkdir(dirname(dir), { recursive: true, mode: 0o755 });
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (e) {
      throw new RuntimeError(`cannot create the runtime directory ${dir} (${(e as Error).message}); ${fix}`);
    }
    await writeFile(
      join(dir, RUNTIME_MARKER),
      `created by segmesh agent pid ${process.pid} at ${new Date().toISOString()}; the agent uses this directory only while this file is here\n`,
      { mode: 0o644, flag: 'wx' },
    );
  } else {
    const mode = st.mode & 0o7777;
    if (st.isSymbolicLink()) throw new RuntimeError(`${dir} is a symbolic link; ${fix}`);
    if (!st.isDirectory()) throw new RuntimeError(`${dir} is not a directory; ${fix}`);
    if (mode & 0o1000 || mode & 0o002 || mode & 0o020) {
      throw new RuntimeError(
        `${dir} is shared (mode ${mode.toString(8).padStart(4, '0')}: ${mode & 0o1000 ? 'sticky' : mode & 0o002 ? 'world-writable' : 'group-writable'}); the agent neither uses nor changes a shared directory. ${fix}`,
      );
    }
    if (st.uid !== uid) {
      throw new RuntimeError(`${dir} belongs to uid ${st.uid}, not to the agent's uid ${uid}; ${fix}`);
    }
    const marker = await lstat(join(dir, RUNTIME_MARKER)).catch(() => undefined);
    if (!marker?.isFile() || marker.uid !== uid) {
      throw new RuntimeError(
        `${dir} exists and was not created by the segmesh agent (no ${RUNTIME_MARKER} in it), so the agent leaves it alone; ` +
          `${fix}, or remove ${dir} if it is a leftover`,
      );
    }
  }
  // Ours: 0750, group api.group (members reach the 0660 socket in it).
  await chmod(dir, 0o750);
  const gid = await groupId(group);
  if (gid === undefined) {
    warnings.push(
      `group ${group} (api.group) does not exist: only root can use the API (groupadd --system ${group})`,
    );
  } else {
    await chown(dir, uid, gid).catch((e: Error) =>
      warnings.push(`cannot give ${dir} to group ${group}: ${e.message}`),
    );
  }
  return warnings;
}

/**
 * Does something accept connections on this socket? 'free': refused (a socket file left by a dead
 * agent); 'in use': connected, or no answer within the timeout; otherwise the error code.
 */
function probeSocket(socket: string, timeoutMs = 1_000): Promise<'free' | 'in use' | string> {
  return new Promise((resolve) => {
    const s = connect(socket);
    const done = (v: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done('in use'), timeoutMs);
    s.once('connect', () => done('in use'));
    s.once('error', (e) =>
      done(code(e) === 'ECONNREFUSED' || code(e) === 'ENOENT' ? 'free' : (code(e) ?? e.message)),
    );
  });
}

/** The socket path: free, or a socket no one answers on (then removed); anything else is refused. */
export async function clearSocketPath(socket: string): Promise<void> {
  const st = await lstat(socket).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket()) {
    throw new RuntimeError(
      `${socket} (api.socket) exists and is not a socket (${st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : 'a regular file or device'}); ` +
        'the agent never deletes it: move it away, or set api.socket to a path of its own, e.g. /run/segmesh/agent.sock',
    );
  }
  const probe = await probeSocket(socket);
  if (probe === 'in use') {
    throw new RuntimeError(
      `something answers on ${socket} (api.socket): another agent uses it; stop it first, or give this agent its own api.socket`,
    );
  }
  if (probe !== 'free') {
    throw new RuntimeError(
      `cannot tell whether ${socket} (api.socket) is in use (${probe}); the agent leaves it alone`,
    );
  }
  await unlink(socket);
}

export interface Runtime {
  readonly runtimeDir: string;
  readonly locks: readonly string[];
  readonly warnings: readonly string[];
  /** Removes the locks (synchronously: also from an exit path). */
  release(): void;
}

/**
 * Claims the agent's place on the host: the state directory (created if missing) and its lock, the
 * runtime directory and its lock, the socket path. Throws a RuntimeError naming the cause and the fix.
 */
export async function claimRuntime(opts: {
  readonly socket: string;
  readonly group: string;
  readonly stateDir: string;
  readonly host: string;
}): Promise<Runtime> {
  const socket = resolve(opts.socket);
  const runtimeDir = dirname(socket);
  const startTime = processStartTime(process.pid) ?? '';
  await mkdir(opts.stateDir, { recursive: true, mode: 0o750 });
  const stateDir = await realpath(opts.stateDir);
  const me: LockHolder = {
    pid: process.pid,
    startTime,
    host: opts.host,
    hostname: hostname(),
    socket,
    stateDir,
    since: new Date().toISOString(),
  };
  const locks: string[] = [];
  const release = () => {
    for (const f of locks.splice(0)) releaseLock(f, me);
  };
  try {
    locks.push(await takeLock(stateDir, me, 'state directory'));
    const warnings = await prepareRuntimeDir(runtimeDir, opts.group);
    if ((await realpath(runtimeDir)) !== stateDir) {
      locks.push(await takeLock(runtimeDir, me, 'runtime directory (of api.socket)'));
    }
    await clearSocketPath(socket);
    return { runtimeDir, locks, warnings, release };
  } catch (e) {
    release();
    throw e;
  }
}

/** For tests and tools: who holds the lock in `dir`, if it is alive. */
export async function lockHolder(dir: string): Promise<LockHolder | undefined> {
  const h = await readHolder(join(dir, LOCK_FILE));
  return h && alive(h) ? h : undefined;
}
