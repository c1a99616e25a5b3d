/**
 * The same Dataplane inside another network namespace, without spawning `ip` per object.
 *
 * Node cannot setns() its main thread (it would move every socket Node opens later, and libuv's
 * threadpool would not follow). Instead a worker thread calls libc `setns(fd, CLONE_NEWNET)` through
 * koffi, which moves only that OS thread; the netlink sockets it then opens, the /proc/sys files it
 * writes and the processes it spawns (nft) all belong to the target namespace. The main thread talks
 * to it over postMessage: {@link NetnsDataplane} implements {@link Dataplane} by forwarding each call.
 */
import { Worker } from 'node:worker_threads';
import type { Dataplane, LinuxDataplaneOptions } from './dataplane.ts';
import { BatchWriteError, netnsPath } from './dataplane.ts';
import {
  DataplaneInputError,
  DumpInterruptedError,
  NetlinkError,
  TransportError,
  VrfUnsupportedError,
} from './errors.ts';

export const CLONE_NEWNET = 0x40000000;

export interface OpenDataplaneOptions extends LinuxDataplaneOptions {
  /** A name under /run/netns, or a path such as /proc/PID/ns/net. Omit for the current namespace. */
  readonly netns?: string;
}

/** Serialized error crossing the worker boundary. */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly fields: Record<string, unknown>;
}

const ERROR_CLASSES: Record<string, { prototype: Error }> = {
  DataplaneInputError,
  VrfUnsupportedError,
  NetlinkError,
  BatchWriteError,
  DumpInterruptedError,
  TransportError,
};

export function toWireError(e: unknown): WireError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (k === 'failures' && Array.isArray(v)) fields[k] = v.map(toWireError);
    else if (typeof v !== 'function') fields[k] = v;
  }
  return { name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}), fields };
}

export function fromWireError(w: WireError): Error {
  const cls = ERROR_CLASSES[w.name];
  const err: Error = cls ? (Object.create(cls.prototype) as Error) : new Error(w.message);
  const fields: Record<string, unknown> = { ...w.fields };
  if (Array.isArray(fields.failures)) fields.failures = (fields.failures as WireError[]).map(fromWireError);
  Object.assign(err, fields, { message: w.message, name: w.name });
  if (w.stack) err.stack = w.stack;
  return err;
}

type Method = Exclude<keyof Dataplane, 'close'>;

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/** A Dataplane served by a worker thread that entered `netns`. */
export class NetnsDataplane implements Dataplane {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly ready: Promise<void>;
  private exited: Error | undefined;
  readonly netns: string;

  constructor(opts: OpenDataplaneOptions & { netns: string }) {
    this.netns = opts.netns;
    const file = import.meta.url.endsWith('.ts') ? './netns-worker.ts' : './netns-worker.js';
    this.worker = new Worker(new URL(file, import.meta.url), {
      workerData: { ...opts, netns: netnsPath(opts.netns) },
    });
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise<void>((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.worker.on('message', (m: { id: number; ok: boolean; value?: unknown; error?: WireError }) => {
      if (m.id === 0) {
        if (m.ok) readyResolve();
        else readyReject(fromWireError(m.error!));
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(fromWireError(m.error!));
    });
    this.worker.on('error', (e) => {
      readyReject(e);
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
    this.worker.on('exit', (code) => {
      this.exited = new TransportError(`data-plane worker for ${opts.netns} exited (code ${code})`);
      readyReject(this.exited);
      for (const p of this.pending.values()) p.reject(this.exited);
      this.pending.clear();
    });
    this.ready.catch(() => undefined);
  }

  /** Resolves once the worker entered the namespace and opened its sockets. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  private async call<T>(method: Method | 'close', args: unknown[]): Promise<T> {
    await this.ready;
    if (this.exited) throw this.exited;
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, method, args });
    });
  }

  listLinks = (...a: Parameters<Dataplane['listLinks']>) =>
    this.call<Awaited<ReturnType<Dataplane['listLinks']>>>('listLinks', a);
  addVeth = (...a: Parameters<Dataplane['addVeth']>) => this.call<void>('addVeth', a);
  setLink = (...a: Parameters<Dataplane['setLink']>) => this.call<void>('setLink', a);
  deleteLink = (...a: Parameters<Dataplane['deleteLink']>) => this.call<void>('deleteLink', a);
  listAddresses = (...a: Parameters<Dataplane['listAddresses']>) =>
    this.call<Awaited<ReturnType<Dataplane['listAddresses']>>>('listAddresses', a);
  addAddress = (...a: Parameters<Dataplane['addAddress']>) => this.call<void>('addAddress', a);
  deleteAddress = (...a: Parameters<Dataplane['deleteAddress']>) => this.call<void>('deleteAddress', a);
  listNeighbors = (...a: Parameters<Dataplane['listNeighbors']>) =>
    this.call<Awaited<ReturnType<Dataplane['listNeighbors']>>>('listNeighbors', a);
  setNeighbor = (...a: Parameters<Dataplane['setNeighbor']>) => this.call<void>('setNeighbor', a);
  listRoutes = (...a: Parameters<Dataplane['listRoutes']>) =>
    this.call<Awaited<ReturnType<Dataplane['listRoutes']>>>('listRoutes', a);
  addRoutes = (...a: Parameters<Dataplane['addRoutes']>) =>
    this.call<Awaited<ReturnType<Dataplane['addRoutes']>>>('addRoutes', a);
  replaceRoutes = (...a: Parameters<Dataplane['replaceRoutes']>) =>
    this.call<Awaited<ReturnType<Dataplane['replaceRoutes']>>>('replaceRoutes', a);
  deleteRoutes = (...a: Parameters<Dataplane['deleteRoutes']>) =>
    this.call<Awaited<ReturnType<Dataplane['deleteRoutes']>>>('deleteRoutes', a);
  sidCounters = (...a: Parameters<Dataplane['sidCounters']>) =>
    this.call<Awaited<ReturnType<Dataplane['sidCounters']>>>('sidCounters', a);
  allSidCounters = (...a: Parameters<Dataplane['allSidCounters']>) =>
    this.call<Awaited<ReturnType<Dataplane['allSidCounters']>>>('allSidCounters', a);
  listRules = (...a: Parameters<Dataplane['listRules']>) =>
    this.call<Awaited<ReturnType<Dataplane['listRules']>>>('listRules', a);
  addRules = (...a: Parameters<Dataplane['addRules']>) =>
    this.call<Awaited<ReturnType<Dataplane['addRules']>>>('addRules', a);
  deleteRules = (...a: Parameters<Dataplane['deleteRules']>) =>
    this.call<Awaited<ReturnType<Dataplane['deleteRules']>>>('deleteRules', a);
  listNexthops = (...a: Parameters<Dataplane['listNexthops']>) =>
    this.call<Awaited<ReturnType<Dataplane['listNexthops']>>>('listNexthops', a);
  addNexthops = (...a: Parameters<Dataplane['addNexthops']>) =>
    this.call<Awaited<ReturnType<Dataplane['addNexthops']>>>('addNexthops', a);
  replaceNexthops = (...a: Parameters<Dataplane['replaceNexthops']>) =>
    this.call<Awaited<ReturnType<Dataplane['replaceNexthops']>>>('replaceNexthops', a);
  deleteNexthops = (...a: Parameters<Dataplane['deleteNexthops']>) =>
    this.call<Awaited<ReturnType<Dataplane['deleteNexthops']>>>('deleteNexthops', a);
  setTunsrc = (...a: Parameters<Dataplane['setTunsrc']>) => this.call<void>('setTunsrc', a);
  getTunsrc = (...a: Parameters<Dataplane['getTunsrc']>) => this.call<bigint>('getTunsrc', a);
  setHmacKey = (...a: Parameters<Dataplane['setHmacKey']>) => this.call<void>('setHmacKey', a);
  deleteHmacKey = (...a: Parameters<Dataplane['deleteHmacKey']>) => this.call<void>('deleteHmacKey', a);
  listHmacKeys = (...a: Parameters<Dataplane['listHmacKeys']>) =>
    this.call<Awaited<ReturnType<Dataplane['listHmacKeys']>>>('listHmacKeys', a);
  setSysctl = (...a: Parameters<Dataplane['setSysctl']>) => this.call<boolean>('setSysctl', a);
  restoreSysctls = (...a: Parameters<Dataplane['restoreSysctls']>) =>
    this.call<string[]>('restoreSysctls', a);
  reconcile = (...a: Parameters<Dataplane['reconcile']>) =>
    this.call<Awaited<ReturnType<Dataplane['reconcile']>>>('reconcile', a);
  flushOwned = (...a: Parameters<Dataplane['flushOwned']>) =>
    this.call<Awaited<ReturnType<Dataplane['flushOwned']>>>('flushOwned', a);

  applyNft = (...a: Parameters<Dataplane['applyNft']>) => this.call<void>('applyNft', a);
  nftCounters = (...a: Parameters<Dataplane['nftCounters']>) =>
    this.call<Awaited<ReturnType<Dataplane['nftCounters']>>>('nftCounters', a);

  async close(): Promise<void> {
    if (this.exited) return;
    try {
      await this.call<void>('close', []);
    } finally {
      await this.worker.terminate();
    }
  }
}
