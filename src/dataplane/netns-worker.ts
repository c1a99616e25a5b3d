/**
 * Worker-thread entry of NetnsDataplane: enter the namespace with setns(2) through koffi, then serve
 * Dataplane calls from the main thread. Never exits on its own; the owner terminates it.
 */
import { closeSync, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import koffi from 'koffi';
import { LinuxDataplane, type LinuxDataplaneOptions } from './dataplane.ts';
import { CLONE_NEWNET, toWireError } from './netns.ts';

const port = parentPort!;
const opts = workerData as LinuxDataplaneOptions & { netns: string };

function enterNetns(path: string): void {
  const libc = koffi.load('libc.so.6');
  const setns = libc.func('int setns(int fd, int nstype)');
  const fd = openSync(path, 'r');
  try {
    if (setns(fd, CLONE_NEWNET) !== 0) {
      const errno = koffi.errno();
      throw new Error(
        `setns(${path}, CLONE_NEWNET) failed with errno ${errno}: needs CAP_SYS_ADMIN and an existing namespace`,
      );
    }
  } finally {
    closeSync(fd);
  }
}

let dp: LinuxDataplane;
try {
  enterNetns(opts.netns);
  dp = new LinuxDataplane(opts);
  port.postMessage({ id: 0, ok: true });
} catch (e) {
  port.postMessage({ id: 0, ok: false, error: toWireError(e) });
}

port.on('message', async (m: { id: number; method: string; args: unknown[] }) => {
  try {
    let value: unknown;
    if (m.method === 'close') value = await dp.close();
    else {
      const fn = (dp as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[m.method];
      if (typeof fn !== 'function') throw new Error(`no Dataplane method ${m.method}`);
      value = await fn.apply(dp, m.args);
    }
    port.postMessage({ id: m.id, ok: true, value });
  } catch (e) {
    port.postMessage({ id: m.id, ok: false, error: toWireError(e) });
  }
});
