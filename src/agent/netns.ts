/**
 * Is a path a network namespace? Checked before a workload is attached: the API is open to the group
 * `segmesh`, and an arbitrary path (a file, another kind of namespace, the host's own network
 * namespace) must not get a veth, addresses and a default route.
 *
 * A network namespace is named either by a /proc/PID/ns/net link (its target reads `net:[INODE]`) or
 * by a bind mount of one (`ip netns add`, CNI runtimes): an nsfs mount whose root in
 * /proc/self/mountinfo reads `net:[INODE]`. Both are files on nsfs (statfs magic 0x6e736673).
 */
import { readFile, readlink, realpath, stat, statfs } from 'node:fs/promises';
import { netnsPath } from '../dataplane/host.ts';
import { AgentError } from './errors.ts';

const NSFS_MAGIC = 0x6e736673;

/** `net:[4026532374]` -> ['net', 4026532374n]. */
function nsName(text: string): { type: string; inode: bigint } | undefined {
  const m = /^(\w+):\[(\d+)\]$/.exec(text);
  return m ? { type: m[1]!, inode: BigInt(m[2]!) } : undefined;
}

/** mountinfo escapes space, tab, newline and backslash in octal. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** The namespace a bind mount at `mountPoint` shows (the topmost mount there wins). */
async function mountedNamespace(mountPoint: string): Promise<{ type: string; inode: bigint } | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  let found: { type: string; inode: bigint } | undefined;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 0 || f[dash + 1] !== 'nsfs') continue;
    if (unescapeMount(f[4] ?? '') !== mountPoint) continue;
    found = nsName(f[3] ?? '') ?? found;
  }
  return found;
}

/**
 * Resolves `netns` (a name under /run/netns or a path) and checks that it is a network namespace other
 * than the agent's own; returns the path. Refusals are AgentErrors ('invalid') naming the fix.
 */
export async function checkNetworkNamespace(netns: string): Promise<string> {
  if (netns === '')
    throw new AgentError('invalid', 'no network namespace given: pass --netns NAME or a path');
  const path = netnsPath(netns);
  const refuse = (why: string) =>
    new AgentError(
      'invalid',
      `${path} ${why}; give the workload's network namespace: a name under /run/netns (ip netns add) or /proc/PID/ns/net of its process`,
    );
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path, { bigint: true });
  } catch (e) {
    throw refuse(`cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const fs = await statfs(path);
  if (fs.type !== NSFS_MAGIC) throw refuse('is not a namespace (not on nsfs)');
  // A /proc/PID/ns/* link names its type in its target; a bind mount names it in mountinfo.
  let ns = await readlink(path).then(nsName, () => undefined);
  if (!ns) ns = await mountedNamespace(await realpath(path));
  if (!ns || ns.inode !== st.ino) throw refuse('is on nsfs but its namespace type cannot be told');
  if (ns.type !== 'net') throw refuse(`is a ${ns.type} namespace, not a network namespace`);
  const own = await stat('/proc/self/ns/net', { bigint: true });
  if (own.ino === st.ino && own.dev === st.dev) {
    throw refuse("is the agent's own network namespace (the host's): a workload needs its own");
  }
  return path;
}
