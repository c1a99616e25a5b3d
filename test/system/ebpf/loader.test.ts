/**
 * The libbpf adapter on its own: maps pinned on a bpffs of our own survive the object and are adopted
 * by the next load, batch updates and deletes, and a program the verifier rejects fails with the
 * verifier's own words.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  endpointValue,
  ifindexKey,
  MAP,
  policyKey,
  policyValue,
  sidKey,
  sidValue,
} from '../../../src/dataplane/ebpf/abi.ts';
import {
  BpfBatchError,
  BpfError,
  BpfObject,
  ensureBpffs,
  unpin,
} from '../../../src/dataplane/ebpf/libbpf.ts';
import { parseIpv6 } from '../../../src/srv6/address.ts';
import { objectName, runLogDir, sh, systemSuite } from '../../harness/index.ts';
import { compileDatapath } from './fixture.ts';

const ip = parseIpv6;

systemSuite('ebpf loader: pins, batches, verifier errors', { tools: ['clang'] }, () => {
  let path: string;
  const bpffs = `/run/segmesh-test/${objectName('bpffs')}`;

  beforeAll(async () => {
    path = await compileDatapath();
    ensureBpffs(bpffs);
    ensureBpffs(bpffs); // a second call finds the mount and leaves it
  });

  afterAll(async () => {
    await sh('umount', [bpffs], { allowFail: true });
    await sh('rmdir', [bpffs], { allowFail: true });
  });

  it('maps pinned by one load are adopted by the next one with their contents; unpinned they are gone', async () => {
    const mounts = (await sh('cat', ['/proc/self/mounts'])).stdout;
    expect(
      mounts.split('\n').filter((l) => l.split(' ')[1] === bpffs && l.split(' ')[2] === 'bpf'),
    ).toHaveLength(1);
    const a = BpfObject.load(path, { pinMapsDir: bpffs });
    const key = ifindexKey(4242);
    const value = endpointValue({ tenant: 7, addr6: ip('fd07::10') });
    a.map(MAP.endpoints).update(key, value);
    a.close();
    const b = BpfObject.load(path, { pinMapsDir: bpffs });
    expect(b.map(MAP.endpoints).lookup(key)).toEqual(value);
    b.close();
    for (const m of Object.values(MAP)) expect(unpin(`${bpffs}/${m}`)).toBe(true);
    const c = BpfObject.load(path);
    expect(c.map(MAP.endpoints).lookup(key)).toBeUndefined();
    c.close();
  });

  it('batch update of 20,000 LPM policy entries, read back, iterated, batch deleted', () => {
    const o = BpfObject.load(path);
    try {
      const pol = o.map(MAP.policy);
      const n = 20_000;
      const keys: Uint8Array[] = [];
      const values: Uint8Array[] = [];
      for (let i = 0; i < n; i++) {
        const dst = ip(`fd01:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::10`);
        const b = new Uint8Array(16);
        for (let j = 0; j < 16; j++) b[j] = Number((dst >> BigInt(8 * (15 - j))) & 0xffn);
        keys.push(policyKey(1, b, 128));
        values.push(
          policyValue({
            mode: 'encap',
            source: ip('fc00:0:1::1'),
            segments: [ip('fc00:0:2::e'), ip(`fc00:0:2::d6:${(i % 100).toString(16)}`)],
          }),
        );
      }
      const t0 = performance.now();
      pol.updateBatch(keys, values);
      const ms = performance.now() - t0;
      for (const i of [0, n >> 1, n - 1]) expect(pol.lookup(keys[i]!)).toEqual(values[i]);
      expect(pol.keys()).toHaveLength(n);
      console.log(
        `batch update: ${n} LPM entries in ${ms.toFixed(1)} ms (${Math.round((n / ms) * 1000)} entries/s)`,
      );
      pol.deleteBatch(keys);
      expect(pol.keys()).toHaveLength(0);
      expect(pol.delete(keys[0]!)).toBe(false);
    } finally {
      o.close();
    }
  });

  it('updateMany / deleteMany / entries: all written and read back; a bad entry named by index; keys already gone passed over', () => {
    const o = BpfObject.load(path);
    try {
      const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');
      const dump = (m: ReturnType<typeof o.map>) =>
        new Map(m.keys().map((k) => [hexOf(k), hexOf(m.lookup(k)!)]));
      const pol = o.map(MAP.policy); // LPM trie
      const sids = o.map(MAP.sids); // hash
      const n = 5000;
      const pk = Array.from({ length: n }, (_, i) => policyKey(1, ip('fd01:ff::') + BigInt(i), 128));
      const pv = Array.from({ length: n }, (_, i) =>
        policyValue({ mode: 'encap', source: ip('fc00:0:1::1'), segments: [ip('fc00:0:2::') + BigInt(i)] }),
      );
      pol.updateMany(pk, pv);
      const sk = Array.from({ length: n }, (_, i) => sidKey(ip('fc00:0:1::') + BigInt(i)));
      const sv = Array.from({ length: n }, (_, i) => sidValue({ behavior: 'End.DT6', table: 1000 + i }));
      sids.updateMany(sk, sv);
      // entries() (batch lookup in chunks, or iteration where the map type has none) == keys() + lookup.
      for (const [m, k, v] of [
        [pol, pk, pv],
        [sids, sk, sv],
      ] as const) {
        const got = new Map(m.entries(1000).map(([a, b]) => [hexOf(a), hexOf(b)]));
        expect(got.size).toBe(n);
        expect(got).toStrictEqual(dump(m));
        for (const i of [0, 1234, n - 1]) expect(got.get(hexOf(k[i]!))).toBe(hexOf(v[i]!));
      }
      // A few keys deleted behind its back: deleteMany passes over them and deletes the rest.
      for (const i of [0, 7, n - 1]) expect(pol.delete(pk[i]!)).toBe(true);
      pol.deleteMany(pk);
      expect(pol.keys()).toHaveLength(0);
      sids.deleteMany(sk);
      expect(sids.entries()).toHaveLength(0);
      // A prefix length the trie refuses at entry 3: the error names it, the 3 before it are written.
      const bad = [...pk.slice(0, 6)];
      bad[3] = Uint8Array.from(bad[3]!);
      new DataView(bad[3].buffer).setUint32(0, 32 + 200, true);
      let err: unknown;
      try {
        pol.updateMany(bad, pv.slice(0, 6));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BpfBatchError);
      expect((err as BpfBatchError).index).toBe(3);
      expect((err as BpfBatchError).message).toMatch(/EINVAL.*at entry 3 of 6/);
      expect(pol.keys().map(hexOf).sort()).toStrictEqual(pk.slice(0, 3).map(hexOf).sort());
    } finally {
      o.close();
    }
  });

  it('a key of the wrong size is refused before the kernel sees it', () => {
    const o = BpfObject.load(path);
    try {
      expect(() => o.map(MAP.sids).lookup(new Uint8Array(4))).toThrow(
        /key of 4 bytes, the map's keys have 16/,
      );
    } finally {
      o.close();
    }
  });

  it('a program the verifier rejects: BpfError with EACCES and the verifier log naming the bad access', async () => {
    const src = join(runLogDir(), 'bad.bpf.c');
    writeFileSync(
      src,
      [
        '#include <linux/bpf.h>',
        '#include <bpf/bpf_helpers.h>',
        'SEC("tc") int bad(struct __sk_buff *skb) {',
        '  char *p = (char *)(long)skb->data;',
        '  return p[100]; /* no bounds check against data_end */',
        '}',
        'char LICENSE[] SEC("license") = "GPL";',
      ].join('\n'),
    );
    const arch = (await sh('uname', ['-m'])).stdout.trim();
    const obj = join(runLogDir(), 'bad.bpf.o');
    await sh('clang', [
      '-O2',
      '-g',
      '-target',
      'bpf',
      `-I/usr/include/${arch}-linux-gnu`,
      '-c',
      src,
      '-o',
      obj,
    ]);
    let err: unknown;
    try {
      BpfObject.load(obj).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BpfError);
    const e = err as BpfError;
    expect(e.errno).toBe(13);
    expect(e.message).toMatch(/program bad rejected/);
    expect(e.verifierLog).toMatch(/invalid access to packet/);
    // The good object still loads in the same process.
    BpfObject.load(path).close();
  });
});
