/**
 * Runs one command in the seg6 kernel VM (src/vm) with this checkout at the same path, and exits with
 * the command's exit status. What the test runner uses for suites that need seg6 routes, seg6 HMAC or
 * VRF, which the host kernel may lack:
 *
 *   node scripts/vm-run.ts --results .test-results -- \
 *     vitest run --project system test/system/dataplane --reporter=json --outputFile.json=.test-results/vm.json
 *
 * The checkout (and node_modules, when it is a link to elsewhere) is shared read-only; the guest writes
 * on a tmpfs overlay. `--results DIR` (repeatable) shares DIR writable at the same path, so a file
 * written there in the guest (vitest's JSON report) is on the host afterwards. The guest's test logs
 * (SEGMESH_TEST_LOG_DIR) go to the VM's log folder on the host, printed at the start.
 *
 * Options:
 *   --results DIR          share DIR (created) writable at the same path
 *   --share DIR            share DIR read-only (tmpfs overlay in the guest)
 *   --tap NAME[,master=BR][,host=ADDR][,guest=ADDR]   a tap device into --netns (repeatable; ADDR with /len)
 *   --netns NS             network namespace of the taps (default: the host's)
 *   --memory MIB           guest memory (default 1536, at most 1792)
 *   --cpus N               vCPUs (default 1)
 *   --timeout S            fail when the command runs longer
 *   --env K=V              extra environment in the guest (CI is passed through)
 *   --prefix P             name prefix of the VM and its processes (default: a new run prefix)
 * Exit status: the command's; 125 when the VM could not run it (the reason and the console tail on stderr).
 */
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ensureVmImage, PROJECT_ROOT } from '../src/vm/image.ts';
import { Vm, type VmShare, type VmTap } from '../src/vm/vm.ts';
import { claimRun, LOG_ROOT, newRunPrefix, recordProcess, sweep } from '../test/harness/run.ts';

const dash = process.argv.indexOf('--');
if (dash < 0 || dash === process.argv.length - 1) {
  process.stderr.write(
    'usage: node scripts/vm-run.ts [options] -- COMMAND [ARG...] (see the comment at the top)\n',
  );
  process.exit(125);
}
const command = process.argv.slice(dash + 1);
const { values } = parseArgs({
  args: process.argv.slice(2, dash),
  options: {
    results: { type: 'string', multiple: true, default: [] },
    share: { type: 'string', multiple: true, default: [] },
    tap: { type: 'string', multiple: true, default: [] },
    netns: { type: 'string' },
    memory: { type: 'string' },
    cpus: { type: 'string' },
    timeout: { type: 'string' },
    env: { type: 'string', multiple: true, default: [] },
    prefix: { type: 'string' },
  },
});

function parseTap(spec: string): VmTap {
  const [name, ...kvs] = spec.split(',');
  const tap: { name: string; master?: string; hostAddresses: string[]; guestAddresses: string[] } = {
    name: name ?? '',
    hostAddresses: [],
    guestAddresses: [],
  };
  for (const kv of kvs) {
    const [k, v] = kv.split('=', 2);
    if (!v) throw new Error(`--tap ${spec}: "${kv}" is not key=value`);
    if (k === 'master') tap.master = v;
    else if (k === 'host') tap.hostAddresses.push(v);
    else if (k === 'guest') tap.guestAddresses.push(v);
    else throw new Error(`--tap ${spec}: unknown key "${k}" (master, host, guest)`);
  }
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(tap.name))
    throw new Error(`--tap ${spec}: bad device name "${tap.name}"`);
  return tap;
}

async function main(): Promise<number> {
  // The VM's processes are recorded under this run, so a later sweep ends them if this process is killed.
  await sweep();
  const prefix = values.prefix ?? newRunPrefix();
  process.env.SEGMESH_TEST_PREFIX = prefix;
  claimRun(prefix, process.pid);
  const name = `${prefix}-vm`;
  const logDir = `${LOG_ROOT}/${prefix}/vm`;
  const guestLogs = `${logDir}/guest-logs`;
  mkdirSync(guestLogs, { recursive: true });

  const image = await ensureVmImage({ progress: (l) => process.stderr.write(`${l}\n`) });
  const shares: VmShare[] = [{ path: PROJECT_ROOT }];
  const modules = `${PROJECT_ROOT}/node_modules`;
  if (existsSync(modules)) {
    const real = realpathSync(modules);
    if (!real.startsWith(`${PROJECT_ROOT}/`)) shares.push({ path: real });
  }
  for (const dir of values.share) shares.push({ path: realpathSync(dir) });
  for (const dir of values.results) {
    mkdirSync(dir, { recursive: true });
    shares.push({ path: realpathSync(dir), writable: true });
  }
  shares.push({ path: guestLogs, writable: true });

  const env: Record<string, string> = {
    PATH: `${PROJECT_ROOT}/node_modules/.bin:${PROJECT_ROOT}/node_modules/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    SEGMESH_TEST_LOG_DIR: guestLogs,
  };
  if (process.env.CI !== undefined) env.CI = process.env.CI;
  for (const kv of values.env) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--env ${kv}: expected KEY=VALUE`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const cwd = realpathSync(process.cwd());
  process.stderr.write(`vm-run: ${name}, kernel ${image.kernelVersion}, logs in ${logDir}\n`);
  const vm = Vm.start({
    name,
    image,
    command,
    cwd: shares.some((s) => cwd === s.path || cwd.startsWith(`${s.path}/`)) ? cwd : PROJECT_ROOT,
    env,
    shares,
    taps: values.tap.map(parseTap),
    ...(values.netns ? { netns: values.netns } : {}),
    ...(values.memory ? { memoryMiB: Number(values.memory) } : {}),
    ...(values.cpus ? { cpus: Number(values.cpus) } : {}),
    ...(values.timeout ? { timeoutMs: Number(values.timeout) * 1000 } : {}),
    logDir,
    onProcess: recordProcess,
    output: (chunk) => process.stdout.write(chunk),
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`vm-run: ${signal}: stopping ${name}\n`);
      void vm.stop().then(() => process.exit(125));
    });
  }
  try {
    const result = await vm.result;
    process.stderr.write(
      `vm-run: ${name} booted in ${result.bootMs} ms (${result.accel}); exit status ${result.code}\n`,
    );
    return result.code;
  } catch (e) {
    process.stderr.write(`vm-run: ${e instanceof Error ? e.message : String(e)}\n`);
    return 125;
  } finally {
    await vm.stop();
    await sweep(prefix);
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`vm-run: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(125);
  },
);
