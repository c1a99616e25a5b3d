/**
 * A thin adapter over Debian's libbpf.so.1 (libbpf 1.1) through koffi: open and load an object, its
 * programs and maps, map operations (single and batch), BPF_PROG_TEST_RUN, pins on a bpffs. Every
 * failure is a BpfError naming the operation, the object and the errno (and the verifier's log when a
 * program does not load). libbpf's own printing is silenced: what it would say is in the errors.
 *
 * All calls are synchronous FFI calls on the calling thread (the kernel objects belong to the caller's
 * network namespace for test runs and FIB lookups).
 */
import { existsSync, mkdirSync, readFileSync, statfsSync, unlinkSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';

const errnoNames = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, n]) => [n, name] as [number, string]),
);

export class BpfError extends Error {
  readonly op: string;
  readonly errno: number;
  /** The verifier's log (tail) when a program failed to load. */
  readonly verifierLog: string | undefined;
  constructor(op: string, errno: number, detail: string, verifierLog?: string) {
    const name = errnoNames.get(errno) ?? `errno ${errno}`;
    super(
      `${op}: ${name} (${errno})${detail ? `: ${detail}` : ''}${verifierLog ? `\nverifier log (tail):\n${verifierLog}` : ''}`,
    );
    this.name = 'BpfError';
    this.op = op;
    this.errno = errno;
    this.verifierLog = verifierLog;
  }
}

// Opaque libbpf handles.
const bpfObjectT = koffi.opaque('bpf_object');
const bpfProgramT = koffi.opaque('bpf_program');
const bpfMapT = koffi.opaque('bpf_map');
const objPtr = koffi.pointer(bpfObjectT);
const progPtr = koffi.pointer(bpfProgramT);
const mapPtr = koffi.pointer(bpfMapT);

const TestRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *',
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});
const BatchOpts = koffi.struct('bpf_map_batch_opts', {
  sz: 'size_t',
  elem_flags: 'uint64_t',
  flags: 'uint64_t',
});
const LinkCreateOpts = koffi.struct('bpf_link_create_opts_min', {
  sz: 'size_t',
  flags: 'uint32_t',
  // The rest of libbpf's struct (a union of per-type options) stays zero: 64 bytes is more than 1.1 reads.
  pad: koffi.array('uint8_t', 64),
});

const TcHook = koffi.struct('bpf_tc_hook', {
  sz: 'size_t',
  ifindex: 'int',
  attach_point: 'int',
  parent: 'uint32_t',
  pad: 'uint32_t',
});
const TcOpts = koffi.struct('bpf_tc_opts', {
  sz: 'size_t',
  prog_fd: 'int',
  flags: 'uint32_t',
  prog_id: 'uint32_t',
  handle: 'uint32_t',
  priority: 'uint32_t',
  pad: 'uint32_t',
});

type Ptr = unknown;

interface Lib {
  libbpf_set_print: (fn: null) => Ptr;
  libbpf_num_possible_cpus: () => number;
  bpf_object__open_file: (path: string, opts: null) => Ptr;
  bpf_object__load: (obj: Ptr) => number;
  bpf_object__close: (obj: Ptr) => void;
  bpf_object__next_program: (obj: Ptr, prev: Ptr) => Ptr;
  bpf_object__next_map: (obj: Ptr, prev: Ptr) => Ptr;
  bpf_program__name: (p: Ptr) => string;
  bpf_program__fd: (p: Ptr) => number;
  bpf_program__set_log_level: (p: Ptr, level: number) => number;
  bpf_program__set_log_buf: (p: Ptr, buf: Ptr, size: number) => number;
  bpf_program__set_autoload: (p: Ptr, autoload: boolean) => number;
  bpf_map__name: (m: Ptr) => string;
  bpf_map__fd: (m: Ptr) => number;
  bpf_map__type: (m: Ptr) => number;
  bpf_map__key_size: (m: Ptr) => number;
  bpf_map__value_size: (m: Ptr) => number;
  bpf_map__max_entries: (m: Ptr) => number;
  bpf_map__map_flags: (m: Ptr) => number;
  bpf_map__is_internal: (m: Ptr) => boolean;
  bpf_map__set_pin_path: (m: Ptr, path: string) => number;
  bpf_map_update_elem: (fd: number, key: Uint8Array, value: Uint8Array, flags: bigint) => number;
  bpf_map_lookup_elem: (fd: number, key: Uint8Array, value: Uint8Array) => number;
  bpf_map_delete_elem: (fd: number, key: Uint8Array) => number;
  bpf_map_get_next_key: (fd: number, key: Uint8Array | null, next: Uint8Array) => number;
  bpf_map_update_batch: (
    fd: number,
    keys: Uint8Array,
    values: Uint8Array,
    count: number[],
    opts: unknown,
  ) => number;
  bpf_map_delete_batch: (fd: number, keys: Uint8Array, count: number[], opts: unknown) => number;
  bpf_map_lookup_batch: (
    fd: number,
    inBatch: Uint8Array | null,
    outBatch: Uint8Array,
    keys: Uint8Array,
    values: Uint8Array,
    count: number[],
    opts: unknown,
  ) => number;
  bpf_prog_test_run_opts: (fd: number, opts: Record<string, unknown>) => number;
  bpf_obj_pin: (fd: number, path: string) => number;
  bpf_obj_get: (path: string) => number;
  bpf_obj_get_info_by_fd: (fd: number, info: Uint8Array, len: number[]) => number;
  bpf_link_create: (progFd: number, targetFd: number, attachType: number, opts: unknown) => number;
  bpf_link_update: (linkFd: number, newProgFd: number, opts: null) => number;
  bpf_tc_hook_create: (hook: Record<string, unknown>) => number;
  bpf_tc_attach: (hook: Record<string, unknown>, opts: Record<string, unknown>) => number;
  bpf_tc_detach: (hook: Record<string, unknown>, opts: Record<string, unknown>) => number;
  close: (fd: number) => number;
}

let lib: Lib | undefined;

/** libbpf.so.1 (Debian: libbpf1), loaded once. */
export function libbpf(): Lib {
  if (lib) return lib;
  let so: ReturnType<typeof koffi.load>;
  try {
    so = koffi.load('libbpf.so.1');
  } catch (e) {
    throw new Error(
      `cannot load libbpf.so.1 (${(e as Error).message}): install it with 'apt-get install libbpf1'`,
    );
  }
  const libc = koffi.load('libc.so.6');
  const f = (sig: string) => so.func(sig);
  const l: Lib = {
    libbpf_set_print: f('void *libbpf_set_print(void *fn)'),
    libbpf_num_possible_cpus: f('int libbpf_num_possible_cpus(void)'),
    bpf_object__open_file: so.func('bpf_object__open_file', objPtr, ['str', 'void *']),
    bpf_object__load: so.func('bpf_object__load', 'int', [objPtr]),
    bpf_object__close: so.func('bpf_object__close', 'void', [objPtr]),
    bpf_object__next_program: so.func('bpf_object__next_program', progPtr, [objPtr, progPtr]),
    bpf_object__next_map: so.func('bpf_object__next_map', mapPtr, [objPtr, mapPtr]),
    bpf_program__name: so.func('bpf_program__name', 'str', [progPtr]),
    bpf_program__fd: so.func('bpf_program__fd', 'int', [progPtr]),
    bpf_program__set_log_level: so.func('bpf_program__set_log_level', 'int', [progPtr, 'uint32_t']),
    bpf_program__set_log_buf: so.func('bpf_program__set_log_buf', 'int', [progPtr, 'void *', 'size_t']),
    bpf_program__set_autoload: so.func('bpf_program__set_autoload', 'int', [progPtr, 'bool']),
    bpf_map__name: so.func('bpf_map__name', 'str', [mapPtr]),
    bpf_map__fd: so.func('bpf_map__fd', 'int', [mapPtr]),
    bpf_map__type: so.func('bpf_map__type', 'int', [mapPtr]),
    bpf_map__key_size: so.func('bpf_map__key_size', 'uint32_t', [mapPtr]),
    bpf_map__value_size: so.func('bpf_map__value_size', 'uint32_t', [mapPtr]),
    bpf_map__max_entries: so.func('bpf_map__max_entries', 'uint32_t', [mapPtr]),
    bpf_map__map_flags: so.func('bpf_map__map_flags', 'uint32_t', [mapPtr]),
    bpf_map__is_internal: so.func('bpf_map__is_internal', 'bool', [mapPtr]),
    bpf_map__set_pin_path: so.func('bpf_map__set_pin_path', 'int', [mapPtr, 'str']),
    bpf_map_update_elem: f(
      'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)',
    ),
    bpf_map_lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    bpf_map_delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_get_next_key: f('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next)'),
    bpf_map_update_batch: so.func('bpf_map_update_batch', 'int', [
      'int',
      'const void *',
      'const void *',
      koffi.inout(koffi.pointer('uint32_t')),
      koffi.pointer(BatchOpts),
    ]),
    bpf_map_delete_batch: so.func('bpf_map_delete_batch', 'int', [
      'int',
      'const void *',
      koffi.inout(koffi.pointer('uint32_t')),
      koffi.pointer(BatchOpts),
    ]),
    bpf_map_lookup_batch: so.func('bpf_map_lookup_batch', 'int', [
      'int',
      'const void *',
      '_Out_ void *',
      '_Out_ void *',
      '_Out_ void *',
      koffi.inout(koffi.pointer('uint32_t')),
      koffi.pointer(BatchOpts),
    ]),
    bpf_prog_test_run_opts: so.func('bpf_prog_test_run_opts', 'int', [
      'int',
      koffi.inout(koffi.pointer(TestRunOpts)),
    ]),
    bpf_obj_pin: f('int bpf_obj_pin(int fd, const char *path)'),
    bpf_obj_get: f('int bpf_obj_get(const char *path)'),
    bpf_obj_get_info_by_fd: so.func('bpf_obj_get_info_by_fd', 'int', [
      'int',
      'void *',
      koffi.inout(koffi.pointer('uint32_t')),
    ]),
    bpf_link_create: so.func('bpf_link_create', 'int', ['int', 'int', 'int', koffi.pointer(LinkCreateOpts)]),
    bpf_link_update: f('int bpf_link_update(int link_fd, int new_prog_fd, void *opts)'),
    bpf_tc_hook_create: so.func('bpf_tc_hook_create', 'int', [koffi.pointer(TcHook)]),
    bpf_tc_attach: so.func('bpf_tc_attach', 'int', [
      koffi.pointer(TcHook),
      koffi.inout(koffi.pointer(TcOpts)),
    ]),
    bpf_tc_detach: so.func('bpf_tc_detach', 'int', [koffi.pointer(TcHook), koffi.pointer(TcOpts)]),
    close: libc.func('int close(int fd)'),
  };
  l.libbpf_set_print(null);
  lib = l;
  return l;
}

/** libbpf 1.x returns -errno from int functions and sets errno on NULL from pointer functions. */
function check(rc: number, op: string, detail = ''): number {
  if (rc < 0) throw new BpfError(op, -rc, detail);
  return rc;
}

/** Verifier statistics of a loaded program (log level 4). */
export interface VerifierStats {
  /** "processed N insns". */
  readonly insns: number;
  /** "stack depth A+B+...": the main program and its subprograms, in bytes. */
  readonly stackDepth: readonly number[];
}

export function parseVerifierStats(log: string): VerifierStats | undefined {
  const insns = /processed (\d+) insns/.exec(log);
  const stack = /stack depth ([\d+]+)/.exec(log);
  if (!insns) return undefined;
  return { insns: Number(insns[1]), stackDepth: stack ? stack[1]!.split('+').map(Number) : [] };
}

const ERR_PTR_MAX = 4095n;

function isNullOrErr(p: Ptr): boolean {
  if (p === null) return true;
  const a = koffi.address(p);
  return a === 0n || a > 0xffffffffffffffffn - ERR_PTR_MAX;
}

export interface TestRunInput {
  /** The packet, from its Ethernet header (tc programs). */
  readonly data: Uint8Array;
  /** __sk_buff fields the kernel lets a test set: ingress_ifindex (any value) and ifindex (an existing device). */
  readonly ingressIfindex?: number;
  readonly ifindex?: number;
  /** Runs of the same skb (the kernel reuses it: a rewriting program sees its own output after the first). */
  readonly repeat?: number;
}

export interface TestRunResult {
  readonly retval: number;
  readonly data: Uint8Array;
  /** Average ns per run, as the kernel measured it. */
  readonly durationNs: number;
}

const SK_BUFF_SIZE = 192; // sizeof(struct __sk_buff) on 6.1-6.18
const SK_BUFF_INGRESS_IFINDEX = 36;
const SK_BUFF_IFINDEX = 40;

export class BpfProgram {
  readonly name: string;
  readonly fd: number;
  readonly stats: VerifierStats | undefined;
  constructor(name: string, fd: number, stats: VerifierStats | undefined) {
    this.name = name;
    this.fd = fd;
    this.stats = stats;
  }

  /** BPF_PROG_TEST_RUN (bpf_prog_test_run_opts) with data_in/data_out and an __sk_buff context. */
  testRun(input: TestRunInput): TestRunResult {
    const l = libbpf();
    const outSize = input.data.length + 4096;
    const inPtr = koffi.alloc('uint8_t', Math.max(1, input.data.length));
    const outPtr = koffi.alloc('uint8_t', outSize);
    const ctxPtr = koffi.alloc('uint8_t', SK_BUFF_SIZE);
    try {
      new Uint8Array(koffi.view(inPtr, input.data.length)).set(input.data);
      const ctx = new DataView(koffi.view(ctxPtr, SK_BUFF_SIZE));
      for (let i = 0; i < SK_BUFF_SIZE; i++) ctx.setUint8(i, 0);
      ctx.setUint32(SK_BUFF_INGRESS_IFINDEX, input.ingressIfindex ?? 0, true);
      ctx.setUint32(SK_BUFF_IFINDEX, input.ifindex ?? 0, true);
      const opts: Record<string, unknown> = {
        sz: koffi.sizeof(TestRunOpts),
        data_in: inPtr,
        data_out: outPtr,
        data_size_in: input.data.length,
        data_size_out: outSize,
        ctx_in: ctxPtr,
        ctx_out: null,
        ctx_size_in: SK_BUFF_SIZE,
        ctx_size_out: 0,
        retval: 0,
        repeat: input.repeat ?? 1,
        duration: 0,
        flags: 0,
        cpu: 0,
        batch_size: 0,
      };
      check(l.bpf_prog_test_run_opts(this.fd, opts), `BPF_PROG_TEST_RUN of ${this.name}`);
      const n = opts.data_size_out as number;
      const data = new Uint8Array(n);
      data.set(new Uint8Array(koffi.view(outPtr, n)));
      return { retval: opts.retval as number, data, durationNs: opts.duration as number };
    } finally {
      koffi.free(inPtr);
      koffi.free(outPtr);
      koffi.free(ctxPtr);
    }
  }

  pin(path: string): void {
    check(libbpf().bpf_obj_pin(this.fd, path), `pinning program ${this.name} at ${path}`);
  }

  /** Its run time and run count so far (struct bpf_prog_info; they grow only while
   * kernel.bpf_stats_enabled is 1). */
  runStats(): { runTimeNs: bigint; runCnt: bigint } {
    const info = new Uint8Array(PROG_INFO_SIZE);
    const len = [info.length];
    const rc = libbpf().bpf_obj_get_info_by_fd(this.fd, info, len);
    if (rc !== 0) throw new BpfError(`reading the info of program ${this.name}`, -rc, '');
    const v = new DataView(info.buffer);
    return {
      runTimeNs: v.getBigUint64(PROG_INFO_RUN_TIME_NS, true),
      runCnt: v.getBigUint64(PROG_INFO_RUN_CNT, true),
    };
  }
}

/** struct bpf_prog_info up to run_cnt (UAPI since 5.1), and where its run counters lie. */
const PROG_INFO_SIZE = 208;
const PROG_INFO_RUN_TIME_NS = 192;
const PROG_INFO_RUN_CNT = 200;

/** A batch operation that stopped at entry `index` (the ones before it are done). */
export class BpfBatchError extends BpfError {
  readonly index: number;
  constructor(op: string, errno: number, index: number, total: number) {
    super(op, errno, `at entry ${index} of ${total} (the ones before it are done)`);
    this.name = 'BpfBatchError';
    this.index = index;
  }
}

/**
 * Bytes of keys and values per batch call. The batch buffers are reused (two, module-wide; calls are
 * synchronous): a fresh 16 MB buffer for 100,000 policy values cost more in page faults on first touch
 * (90-250 ms here) than the kernel's write of the entries.
 */
const BATCH_BYTES = 1 << 20;
const scratch: [Uint8Array, Uint8Array] = [new Uint8Array(0), new Uint8Array(0)];

/**
 * `parts[at..at+n)` (each `size` bytes, checked) end to end in scratch buffer `which`, as the batch calls
 * take them. Parts that lie end to end already (keys cut one after another from abi.ts's slab) are
 * copied as one run, a part repeated (one value for many keys) by doubling: a TypedArray.set per entry
 * costs more than the copy itself.
 */
function pack(parts: readonly Uint8Array[], at: number, n: number, size: number, which: 0 | 1): Uint8Array {
  if (scratch[which].length < n * size) scratch[which] = new Uint8Array(Math.max(n * size, BATCH_BYTES));
  const out = scratch[which];
  const end = at + n;
  let i = at;
  while (i < end) {
    const a = parts[i]!;
    const from = (i - at) * size;
    let j = i + 1;
    if (j < end && parts[j] === a) {
      while (j < end && parts[j] === a) j++;
      out.set(a, from);
      const to = (j - at) * size;
      for (let done = size; from + done < to; done *= 2)
        out.copyWithin(from + done, from, Math.min(from + 2 * done, to) - done);
    } else {
      let next = a.byteOffset + size;
      for (; j < end; j++) {
        const b = parts[j]!;
        if (b.buffer !== a.buffer || b.byteOffset !== next) break;
        next += size;
      }
      out.set(j === i + 1 ? a : new Uint8Array(a.buffer, a.byteOffset, (j - i) * size), from);
    }
    i = j;
  }
  return out;
}

/** What a kernel says to a batch operation a map type lacks (ENOTSUPP, EOPNOTSUPP). */
const NO_BATCH = new Set([524, 95]);
const ENOENT = 2;

export const BPF_ANY = 0n;
export const BPF_NOEXIST = 1n;
export const BPF_EXIST = 2n;
const PERCPU_TYPES = new Set([5, 6, 10]); // PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH

export class BpfMap {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  constructor(
    name: string,
    fd: number,
    type: number,
    keySize: number,
    valueSize: number,
    maxEntries: number,
  ) {
    this.name = name;
    this.fd = fd;
    this.type = type;
    this.keySize = keySize;
    this.valueSize = valueSize;
    this.maxEntries = maxEntries;
  }

  /**
   * A map pinned at `path` (another process's, e.g. a running agent's), with its type and sizes from
   * the kernel (struct bpf_map_info: type, id, key_size, value_size, max_entries, flags, name[16]).
   */
  static openPinned(path: string): BpfMap {
    const fd = objGet(path);
    try {
      const l = mapLayoutOf(fd, path);
      return new BpfMap(l.name, fd, l.type, l.keySize, l.valueSize, l.maxEntries);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  /** Closes the map's fd (maps of a BpfObject close with it). */
  close(): void {
    closeFd(this.fd);
  }

  get perCpu(): boolean {
    return PERCPU_TYPES.has(this.type);
  }

  /** Bytes a lookup returns: per-CPU maps give one 8-byte-aligned slot per possible CPU. */
  get lookupSize(): number {
    if (!this.perCpu) return this.valueSize;
    return Math.ceil(this.valueSize / 8) * 8 * libbpf().libbpf_num_possible_cpus();
  }

  private checkKey(key: Uint8Array): void {
    if (key.length !== this.keySize) {
      throw new RangeError(
        `map ${this.name}: key of ${key.length} bytes, the map's keys have ${this.keySize}`,
      );
    }
  }

  update(key: Uint8Array, value: Uint8Array, flags: bigint = BPF_ANY): void {
    this.checkKey(key);
    if (value.length !== this.lookupSize && value.length !== this.valueSize) {
      throw new RangeError(
        `map ${this.name}: value of ${value.length} bytes, the map's values have ${this.valueSize}`,
      );
    }
    check(libbpf().bpf_map_update_elem(this.fd, key, value, flags), `updating map ${this.name}`);
  }

  /** The value, or undefined when the key is absent. Per-CPU maps: all CPUs' slots, concatenated. */
  lookup(key: Uint8Array): Uint8Array | undefined {
    this.checkKey(key);
    const value = new Uint8Array(this.lookupSize);
    const rc = libbpf().bpf_map_lookup_elem(this.fd, key, value);
    if (rc === -2) return undefined; // ENOENT
    check(rc, `looking up map ${this.name}`);
    return value;
  }

  /** Per-CPU lookup summed over CPUs as little-endian u64 fields (counters). */
  lookupSum(key: Uint8Array): bigint[] | undefined {
    const raw = this.lookup(key);
    if (!raw) return undefined;
    const slot = Math.ceil(this.valueSize / 8) * 8;
    const fields = this.valueSize / 8;
    const sums = new Array<bigint>(fields).fill(0n);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let off = 0; off < raw.length; off += slot) {
      for (let f = 0; f < fields; f++) sums[f]! += dv.getBigUint64(off + f * 8, true);
    }
    return sums;
  }

  /** true if the key was there. */
  delete(key: Uint8Array): boolean {
    this.checkKey(key);
    const rc = libbpf().bpf_map_delete_elem(this.fd, key);
    if (rc === -2) return false;
    check(rc, `deleting from map ${this.name}`);
    return true;
  }

  keys(): Uint8Array[] {
    const out: Uint8Array[] = [];
    let prev: Uint8Array | null = null;
    for (;;) {
      const next = new Uint8Array(this.keySize);
      const rc = libbpf().bpf_map_get_next_key(this.fd, prev, next);
      if (rc === -2) return out;
      check(rc, `iterating map ${this.name}`);
      out.push(next);
      prev = next;
    }
  }

  /** Batch operations this map's kernel lacks (learnt on first use): per entry from then on. */
  #noBatch = { update: false, delete: false, lookup: false };

  /** Lengths checked before anything is written (a wrong one is the caller's bug, not a partial write). */
  #checkSizes(parts: readonly Uint8Array[], size: number, what: 'key' | 'value'): void {
    for (let i = 0; i < parts.length; i++)
      if (parts[i]!.length !== size)
        throw new RangeError(
          `map ${this.name}: ${what} ${i} has ${parts[i]!.length} bytes, the map's ${what}s have ${size}`,
        );
  }

  /**
   * BPF_MAP_UPDATE_BATCH (kernel 5.6+; LPM tries too on 6.x), in chunks of BATCH_BYTES. On an error a
   * BpfBatchError names the entry it stopped at (the ones before it are written).
   */
  updateBatch(keys: readonly Uint8Array[], values: readonly Uint8Array[], flags: bigint = BPF_ANY): void {
    if (keys.length !== values.length)
      throw new RangeError(`map ${this.name}: ${keys.length} keys, ${values.length} values`);
    if (keys.length === 0) return;
    const vs = this.perCpu ? this.lookupSize : this.valueSize;
    this.#checkSizes(keys, this.keySize, 'key');
    this.#checkSizes(values, vs, 'value');
    const chunk = Math.max(1, Math.floor(BATCH_BYTES / (this.keySize + vs)));
    const opts = { sz: koffi.sizeof(BatchOpts), elem_flags: flags, flags: 0n };
    for (let at = 0; at < keys.length; at += chunk) {
      const n = Math.min(chunk, keys.length - at);
      const k = pack(keys, at, n, this.keySize, 0);
      const v = pack(values, at, n, vs, 1);
      const count = [n];
      const rc = libbpf().bpf_map_update_batch(this.fd, k, v, count, opts);
      if (rc < 0)
        throw new BpfBatchError(`batch update of map ${this.name}`, -rc, at + count[0]!, keys.length);
    }
  }

  /** BPF_MAP_DELETE_BATCH, in chunks; a BpfBatchError names the entry it stopped at (ENOENT: a key not there). */
  deleteBatch(keys: readonly Uint8Array[]): void {
    if (keys.length === 0) return;
    this.#checkSizes(keys, this.keySize, 'key');
    const chunk = Math.max(1, Math.floor(BATCH_BYTES / this.keySize));
    const opts = { sz: koffi.sizeof(BatchOpts), elem_flags: 0n, flags: 0n };
    for (let at = 0; at < keys.length; at += chunk) {
      const n = Math.min(chunk, keys.length - at);
      const k = pack(keys, at, n, this.keySize, 0);
      const count = [n];
      const rc = libbpf().bpf_map_delete_batch(this.fd, k, count, opts);
      if (rc < 0)
        throw new BpfBatchError(`batch delete from map ${this.name}`, -rc, at + count[0]!, keys.length);
    }
  }

  /**
   * Writes all entries: one batch update, or one update per entry where the kernel has no batch for the
   * map's type. A failure is a BpfBatchError naming the entry (index into `keys`) it stopped at.
   */
  updateMany(keys: readonly Uint8Array[], values: readonly Uint8Array[]): void {
    if (!this.#noBatch.update) {
      try {
        this.updateBatch(keys, values);
        return;
      } catch (e) {
        if (!(e instanceof BpfBatchError && e.index === 0 && NO_BATCH.has(e.errno))) throw e;
        this.#noBatch.update = true;
      }
    }
    for (let i = 0; i < keys.length; i++) {
      try {
        this.update(keys[i]!, values[i]!);
      } catch (e) {
        if (!(e instanceof BpfError)) throw e;
        throw new BpfBatchError(`updating map ${this.name}`, e.errno, i, keys.length);
      }
    }
  }

  /** Deletes all keys (batch where the kernel has it); keys already gone are passed over. */
  deleteMany(keys: readonly Uint8Array[]): void {
    let rest = keys;
    while (!this.#noBatch.delete && rest.length > 0) {
      try {
        this.deleteBatch(rest);
        return;
      } catch (e) {
        if (!(e instanceof BpfBatchError)) throw e;
        if (e.errno === ENOENT)
          rest = rest.slice(e.index + 1); // gone already: go on after it
        else if (e.index === 0 && NO_BATCH.has(e.errno)) this.#noBatch.delete = true;
        else throw e;
      }
    }
    for (let i = 0; i < rest.length; i++) {
      try {
        this.delete(rest[i]!);
      } catch (e) {
        if (!(e instanceof BpfError)) throw e;
        throw new BpfBatchError(
          `deleting from map ${this.name}`,
          e.errno,
          keys.length - rest.length + i,
          keys.length,
        );
      }
    }
  }

  /**
   * Every entry (key, value), by BPF_MAP_LOOKUP_BATCH in chunks where the kernel has it for the map's
   * type, else by key iteration and one lookup per key. Per-CPU maps: all CPUs' slots per value.
   */
  entries(chunk = 4096): [Uint8Array, Uint8Array][] {
    const out: [Uint8Array, Uint8Array][] = [];
    if (!this.#noBatch.lookup) {
      const vs = this.lookupSize;
      // The resume token: a bucket index (hash maps, u32) or a key (the generic batch): room for both.
      const tokSize = Math.max(this.keySize, 8);
      let inTok: Uint8Array | null = null;
      const outTok = new Uint8Array(tokSize);
      const opts = { sz: koffi.sizeof(BatchOpts), elem_flags: 0n, flags: 0n };
      for (;;) {
        // Fresh buffers per chunk: the entries returned are views into them (no copy per entry).
        const keys = new Uint8Array(chunk * this.keySize);
        const values = new Uint8Array(chunk * vs);
        const count = [chunk];
        const rc = libbpf().bpf_map_lookup_batch(this.fd, inTok, outTok, keys, values, count, opts);
        if (rc < 0 && rc !== -ENOENT) {
          if (inTok === null && NO_BATCH.has(-rc)) {
            this.#noBatch.lookup = true;
            break;
          }
          check(rc, `batch lookup of map ${this.name}`);
        }
        const n = count[0]!;
        for (let i = 0; i < n; i++)
          out.push([
            keys.subarray(i * this.keySize, (i + 1) * this.keySize),
            values.subarray(i * vs, (i + 1) * vs),
          ]);
        if (rc === -ENOENT) return out; // the end
        inTok = Uint8Array.from(outTok);
      }
    }
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) out.push([k, v]);
    }
    return out;
  }

  pin(path: string): void {
    check(libbpf().bpf_obj_pin(this.fd, path), `pinning map ${this.name} at ${path}`);
  }
}

/** What libbpf compares before it reuses a pinned map (map_is_reuse_compat): a map is reused only if all agree. */
export interface MapLayout {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
}

/** The layout of the map behind `fd` (struct bpf_map_info). */
function mapLayoutOf(fd: number, what: string): MapLayout {
  const info = new Uint8Array(80);
  const len = [info.length];
  const rc = libbpf().bpf_obj_get_info_by_fd(fd, info, len);
  if (rc !== 0) throw new BpfError(`reading the info of pinned map ${what}`, -rc, '');
  const v = new DataView(info.buffer);
  return {
    name: Buffer.from(info.subarray(24, 40)).toString('latin1').replace(/\0.*$/s, ''),
    type: v.getUint32(0, true),
    keySize: v.getUint32(8, true),
    valueSize: v.getUint32(12, true),
    maxEntries: v.getUint32(16, true),
    flags: v.getUint32(20, true),
  };
}

/** How `pinned` differs from `wanted` (empty: libbpf would reuse it). */
export function layoutChanges(pinned: MapLayout, wanted: MapLayout): string[] {
  const fields = [
    ['type', 'type'],
    ['keySize', 'key size'],
    ['valueSize', 'value size'],
    ['maxEntries', 'max entries'],
    ['flags', 'flags'],
  ] as const;
  return fields
    .filter(([f]) => pinned[f] !== wanted[f])
    .map(([f, label]) => `${label} ${pinned[f]} -> ${wanted[f]}`);
}

export interface LoadOptions {
  /** Reuse maps pinned in this folder (a bpffs) and pin the ones created there (libbpf's pin_path). */
  readonly pinMapsDir?: string;
  /** Load only these programs (default: all). */
  readonly programs?: readonly string[];
}

/** A pinned map whose layout the object changed: created anew, pinned in its place by {@link BpfObject.repin}. */
export interface MigratingMap {
  readonly name: string;
  readonly pin: string;
  /** What changed, e.g. `value size 40 -> 48`. */
  readonly why: string;
}

const STATS_LOG = 64 * 1024;
const FULL_LOG = 16 * 1024 * 1024;

export class BpfObject {
  readonly path: string;
  readonly programs: ReadonlyMap<string, BpfProgram>;
  readonly maps: ReadonlyMap<string, BpfMap>;
  /**
   * Maps pinned by an older object whose layout this one changed. libbpf would refuse to load over
   * them; they are created unpinned instead, so the old programs keep forwarding on the old maps until
   * the caller has filled the new ones, pointed the links at the new programs and called `repin`.
   */
  get migrating(): readonly MigratingMap[] {
    return this.#migrating;
  }
  #migrating: readonly MigratingMap[];
  private handle: Ptr;

  private constructor(
    path: string,
    handle: Ptr,
    programs: Map<string, BpfProgram>,
    maps: Map<string, BpfMap>,
    migrating: MigratingMap[],
  ) {
    this.path = path;
    this.handle = handle;
    this.programs = programs;
    this.maps = maps;
    this.#migrating = migrating;
  }

  /** Opens and loads an object file; on a verifier rejection the error carries the verifier's log. */
  static load(path: string, opts: LoadOptions = {}): BpfObject {
    const l = libbpf();
    try {
      readFileSync(path, { flag: 'r' }).subarray(0, 4);
    } catch (e) {
      throw new Error(
        `BPF object ${path} cannot be read (${(e as Error).message}): build it with 'npm run build'`,
      );
    }
    const migrating: MigratingMap[] = [];
    const attempt = (logLevel: number, logSize: number) => {
      const obj = l.bpf_object__open_file(path, null);
      if (isNullOrErr(obj)) throw new BpfError(`opening BPF object ${path}`, koffi.errno(), '');
      const bufs: { prog: Ptr; name: string; buf: Ptr }[] = [];
      for (
        let p = l.bpf_object__next_program(obj, null);
        !isNullOrErr(p);
        p = l.bpf_object__next_program(obj, p)
      ) {
        const name = l.bpf_program__name(p);
        if (opts.programs && !opts.programs.includes(name)) {
          l.bpf_program__set_autoload(p, false);
          continue;
        }
        const buf = koffi.alloc('char', logSize);
        new Uint8Array(koffi.view(buf, 1))[0] = 0;
        l.bpf_program__set_log_buf(p, buf, logSize);
        l.bpf_program__set_log_level(p, logLevel);
        bufs.push({ prog: p, name, buf });
      }
      migrating.length = 0;
      if (opts.pinMapsDir) {
        for (let m = l.bpf_object__next_map(obj, null); !isNullOrErr(m); m = l.bpf_object__next_map(obj, m)) {
          if (l.bpf_map__is_internal(m)) continue;
          const name = l.bpf_map__name(m);
          const pin = `${opts.pinMapsDir}/${name}`;
          const changes = pinnedLayoutChanges(pin, {
            name,
            type: l.bpf_map__type(m),
            keySize: l.bpf_map__key_size(m),
            valueSize: l.bpf_map__value_size(m),
            maxEntries: l.bpf_map__max_entries(m),
            flags: l.bpf_map__map_flags(m),
          });
          if (changes.length > 0) {
            migrating.push({ name, pin, why: changes.join(', ') });
            continue; // no pin path: a new map, pinned by repin once the links use it
          }
          check(l.bpf_map__set_pin_path(m, pin), 'setting a map pin path');
        }
      }
      const rc = l.bpf_object__load(obj);
      const logs = new Map<string, string>();
      for (const b of bufs) {
        const bytes = new Uint8Array(koffi.view(b.buf, logSize));
        const end = bytes.indexOf(0);
        logs.set(b.name, Buffer.from(bytes.subarray(0, end < 0 ? logSize : end)).toString('utf8'));
        koffi.free(b.buf);
      }
      return { obj, rc, logs };
    };
    const first = attempt(4, STATS_LOG);
    if (first.rc < 0) {
      l.bpf_object__close(first.obj);
      // Again with the full verifier log, to name the instruction it rejected.
      const again = attempt(1 | 4, FULL_LOG);
      l.bpf_object__close(again.obj);
      // libbpf loads in order and stops at the first rejection: the last program with a log is the one.
      const withLog = [...again.logs].filter(([, log]) => log.length > 0);
      const [name, log] = withLog[withLog.length - 1] ?? ['?', ''];
      const tail = log.trimEnd().split('\n').slice(-30).join('\n');
      throw new BpfError(`loading BPF object ${path}`, -first.rc, `program ${name} rejected`, tail);
    }
    const programs = new Map<string, BpfProgram>();
    for (
      let p = l.bpf_object__next_program(first.obj, null);
      !isNullOrErr(p);
      p = l.bpf_object__next_program(first.obj, p)
    ) {
      const name = l.bpf_program__name(p);
      const fd = l.bpf_program__fd(p);
      if (fd < 0) continue; // not loaded (autoload off)
      programs.set(name, new BpfProgram(name, fd, parseVerifierStats(first.logs.get(name) ?? '')));
    }
    const maps = new Map<string, BpfMap>();
    for (
      let m = l.bpf_object__next_map(first.obj, null);
      !isNullOrErr(m);
      m = l.bpf_object__next_map(first.obj, m)
    ) {
      const name = l.bpf_map__name(m);
      maps.set(
        name,
        new BpfMap(
          name,
          l.bpf_map__fd(m),
          l.bpf_map__type(m),
          l.bpf_map__key_size(m),
          l.bpf_map__value_size(m),
          l.bpf_map__max_entries(m),
        ),
      );
    }
    return new BpfObject(path, first.obj, programs, maps, migrating);
  }

  /**
   * Pins the maps of `migrating` in place of the old ones (whose programs no link runs any more: the
   * kernel frees them with their last reference). Returns what was re-pinned.
   */
  repin(): MigratingMap[] {
    const done: MigratingMap[] = [];
    for (const m of this.#migrating) {
      unpin(m.pin);
      this.map(m.name).pin(m.pin);
      done.push(m);
    }
    this.#migrating = [];
    return done;
  }

  program(name: string): BpfProgram {
    const p = this.programs.get(name);
    if (!p)
      throw new Error(
        `BPF object ${this.path} has no program ${name} (it has: ${[...this.programs.keys()].join(', ')})`,
      );
    return p;
  }

  map(name: string): BpfMap {
    const m = this.maps.get(name);
    if (!m)
      throw new Error(
        `BPF object ${this.path} has no map ${name} (it has: ${[...this.maps.keys()].join(', ')})`,
      );
    return m;
  }

  /** Closes the object: its programs and maps go away unless pinned or attached by a link that is pinned. */
  close(): void {
    if (this.handle) libbpf().bpf_object__close(this.handle);
    this.handle = null;
  }
}

/** How the map pinned at `pin` differs from `wanted`; empty when nothing is pinned there or it matches. */
function pinnedLayoutChanges(pin: string, wanted: MapLayout): string[] {
  if (!existsSync(pin)) return [];
  const fd = objGet(pin);
  try {
    return layoutChanges(mapLayoutOf(fd, pin), wanted);
  } finally {
    closeFd(fd);
  }
}

/** Mounts a bpffs at `dir` unless one is mounted there (Debian does not mount /sys/fs/bpf, and `ip netns
 * exec` remounts /sys and hides it: the agent pins on its own bpffs under /run). */
const BPF_FS_MAGIC = 0xcafe4a11;
const SYS_BPF = '/sys/fs/bpf';

/** Whether `dir` lies on a bpffs (itself a mount point or inside one, such as /sys/fs/bpf/segmesh). */
export function onBpffs(dir: string): boolean {
  try {
    return statfsSync(dir).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Makes `dir` usable for pins: a folder on a bpffs, mounting one there when it is not. A bpffs mounted
 * in a private mount namespace (`ip netns exec`) lives only as long as that namespace: the agent warns.
 */
export function ensureBpffs(dir: string): void {
  const mountBpf = (target: string) => {
    const libc = koffi.load('libc.so.6');
    const mount = libc.func(
      'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)',
    );
    if (mount('bpf', target, 'bpf', 0, null) !== 0)
      throw new BpfError(`mounting a bpffs at ${target}`, koffi.errno(), 'needs CAP_SYS_ADMIN');
  };
  // Under /sys/fs/bpf, the bpffs belongs at /sys/fs/bpf itself (as systemd mounts it); a fresh sysfs
  // (`ip netns exec` remounts /sys) has the empty mount point and allows no folder in it.
  if (dir.startsWith(`${SYS_BPF}/`) && existsSync(SYS_BPF) && !onBpffs(SYS_BPF)) mountBpf(SYS_BPF);
  mkdirSync(dir, { recursive: true });
  if (onBpffs(dir)) return;
  mountBpf(dir);
}

/** Removes a pin (the object lives on while something else holds it). */
export function unpin(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Opens a pinned object (map, program or link) and returns its fd; the caller closes it. */
export function objGet(path: string): number {
  return check(libbpf().bpf_obj_get(path), `opening pinned BPF object ${path}`);
}

export function closeFd(fd: number): void {
  libbpf().close(fd);
}

/** Attach types of the 6.6 UAPI (libbpf 1.1 predates tcx and passes unknown types through). */
export const BPF_TCX_INGRESS = 46;
export const BPF_TCX_EGRESS = 47;

/** tcx attach through BPF_LINK_CREATE: returns the link's fd (the link lives while the fd or a pin does). */
export function attachTcx(prog: BpfProgram, ifindex: number, attachType: number = BPF_TCX_INGRESS): number {
  const opts = { sz: koffi.sizeof(LinkCreateOpts), flags: 0, pad: new Array(64).fill(0) };
  return check(
    libbpf().bpf_link_create(prog.fd, ifindex, attachType, opts),
    `tcx attach of ${prog.name} to ifindex ${ifindex}`,
  );
}

/** Replaces the program behind a link in place (BPF_LINK_UPDATE): no packet sees no program. */
export function linkUpdate(linkFd: number, prog: BpfProgram): void {
  check(libbpf().bpf_link_update(linkFd, prog.fd, null), `link update to ${prog.name}`);
}

const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;
const BPF_TC_F_REPLACE = 1;
const EEXIST = 17;

/**
 * clsact + cls_bpf direct-action, for kernels without tcx (before 6.6). The filter belongs to the qdisc,
 * not to an fd: it stays after the loader exits until detached. Returns the detach function.
 */
export function attachClsact(
  prog: BpfProgram,
  ifindex: number,
  direction: 'ingress' | 'egress' = 'ingress',
): () => void {
  const l = libbpf();
  const hook = {
    sz: koffi.sizeof(TcHook),
    ifindex,
    attach_point: direction === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS,
    parent: 0,
    pad: 0,
  };
  const rc = l.bpf_tc_hook_create(hook);
  if (rc < 0 && rc !== -EEXIST) check(rc, `creating the clsact qdisc on ifindex ${ifindex}`);
  const opts = {
    sz: koffi.sizeof(TcOpts),
    prog_fd: prog.fd,
    flags: BPF_TC_F_REPLACE,
    prog_id: 0,
    handle: 1,
    priority: 1,
    pad: 0,
  };
  check(l.bpf_tc_attach(hook, opts), `clsact ${direction} attach of ${prog.name} to ifindex ${ifindex}`);
  return () => {
    const detach = {
      sz: koffi.sizeof(TcOpts),
      prog_fd: 0,
      flags: 0,
      prog_id: 0,
      handle: 1,
      priority: 1,
      pad: 0,
    };
    check(l.bpf_tc_detach(hook, detach), `clsact detach of ${prog.name} from ifindex ${ifindex}`);
  };
}

/** Pins any BPF object by fd (a tcx link: the attachment then outlives the process that made it). */
export function pinFd(fd: number, path: string): void {
  check(libbpf().bpf_obj_pin(fd, path), `pinning fd ${fd} at ${path}`);
}
