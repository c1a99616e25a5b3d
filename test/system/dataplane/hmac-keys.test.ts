/**
 * The fabric's seg6 HMAC keys through the forwarding intent (issue 13), on the kernel backend: two hosts
 * on one switch, their intents from the model (buildFabricView with hmacKeys and hmacKeyId ->
 * computeHostPlan -> intentOf), realised by KernelBackend, which installs the keys over generic netlink
 * and requires a valid HMAC on the underlay. What is accepted and refused is read from the kernel's own
 * counters: the End.DT6 SID's packets (processed) and errors (dropped, here: failed HMAC checks).
 * Needs seg6 routes and CONFIG_IPV6_SEG6_HMAC: runs in the VM with Debian's kernel.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Dataplane } from '../../../src/dataplane/dataplane.ts';
import { openDataplane } from '../../../src/dataplane/index.ts';
import { attachments, type ForwardingIntent, hmacKeys } from '../../../src/dataplane/intent.ts';
import { intentOf } from '../../../src/dataplane/intent-lower.ts';
import { KernelBackend } from '../../../src/dataplane/kernel/backend.ts';
import { mssFor } from '../../../src/dataplane/kernel/nft.ts';
import { formatIpv6, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import {
  buildFabricView,
  type FabricInput,
  type FabricView,
  type HmacKeyInput,
} from '../../../src/srv6/fabric.ts';
import { computeHostPlan } from '../../../src/srv6/pathcompute.ts';
import { createLab, type Netns, paced, sh, systemSuite } from '../../harness/index.ts';

const ip = parseIpv6;
const p = parsePrefix;
const HOSTS = [1, 2] as const;
const KEY: HmacKeyInput = {
  keyId: 7,
  algorithm: 'sha256',
  secret: new TextEncoder().encode('segmesh-fabric-hmac-key-7-0123456789'),
};

function fabric(keys: readonly HmacKeyInput[], hmacKeyId?: number): FabricInput {
  return {
    locatorBlock: p('fc00::/32'),
    maxSegments: 2,
    ...(hmacKeyId !== undefined ? { hmacKeyId } : {}),
    hmacKeys: keys,
    hosts: HOSTS.map((n) => ({
      name: `h${n}`,
      underlay: ip(`2001:db8:f::${n}`),
      locator: p(`fc00:0:${n}::/48`),
      capabilities: { vrf: false, hmac: true },
    })),
    tenants: [{ name: 'a', id: 1, prefixes: [p('2001:db8:a::/48')] }],
    workloads: HOSTS.map((n) => ({
      id: `a${n}`,
      tenant: 'a',
      host: `h${n}`,
      address: ip(`2001:db8:a:${n}::1`),
    })),
  };
}

const intentOf2 = (view: FabricView, n: number): ForwardingIntent => intentOf(computeHostPlan(view, `h${n}`));

async function ping(from: Netns, dst: string, count = 3): Promise<number> {
  const r = await from.exec('ping', ['-c', String(count), '-i', '0.2', '-W', '2', dst], {
    allowFail: true,
    timeoutMs: paced(30_000),
  });
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
}

systemSuite(
  'dataplane: the fabric HMAC keys, installed by the kernel backend from the intent',
  { tools: ['ip', 'ping', 'python3'], kernel: ['seg6', 'seg6local', 'hmac'] },
  () => {
    const lab = createLab();
    const signed = buildFabricView(fabric([KEY], KEY.keyId));
    const dps: Dataplane[] = [];
    const backends: KernelBackend[] = [];
    const hostNs: Netns[] = [];
    const wl = new Map<number, Netns>();
    const dt6 = (n: number) => signed.hosts.get(`h${n}`)!.sids.tenantDelivery.get('a')!.sid;
    /** The End.DT6 SID of tenant a on host n: what the kernel processed and dropped. */
    const dt6Counters = async (n: number) => {
      const c = (await backends[n - 1]!.readCounters()).sids.get(`s|${dt6(n).toString(16)}`);
      if (!c) throw new Error(`no counters for h${n}'s End.DT6 SID ${formatIpv6(dt6(n))}`);
      return c;
    };

    beforeAll(async () => {
      const s = await lab.underlaySwitch('hsw');
      const linkMtu = [...attachments(intentOf2(signed, 1))][0]!.mtu;
      for (const n of HOSTS) {
        const ns = await lab.netns(`hk${n}`);
        hostNs.push(ns);
        await s.attach(ns, 'eth0', [`2001:db8:f::${n}/64`]);
        const dp = await openDataplane({ netns: ns.name });
        dps.push(dp);
        const w = signed.workloads.get(`a${n}`)!;
        const wns = await lab.netns(`hw${n}`);
        wl.set(n, wns);
        await lab.veth(ns, w.link, wns, 'eth0', {
          mtu: linkMtu,
          addresses: ['fe80::1/64'],
          peerAddresses: [`${formatIpv6(w.address)}/64`],
        });
        await wns.ip('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0');
        await dp.setTunsrc(ip(`2001:db8:f::${n}`));
        const backend = new KernelBackend(dp, {
          underlayDevice: 'eth0',
          sidCounters: true,
          mss: mssFor(linkMtu),
          hmac: true,
          requireHmac: true,
        });
        await backend.prepare();
        await backend.attach(w.link);
        backends.push(backend);
      }
      for (const n of HOSTS) await backends[n - 1]!.realise(intentOf2(signed, n));
    }, paced(120_000));
    afterAll(async () => {
      for (const b of backends) await b.close().catch(() => undefined);
      await lab.teardown();
    });

    it(
      'realise installs the key on every host; signed traffic is accepted, unsigned SRHs and a wrong secret are refused',
      async () => {
        for (const dp of dps)
          expect(
            (await dp.listHmacKeys()).map((k) => [k.keyId, k.algorithm, Buffer.from(k.secret).toString()]),
          ).toEqual([[7, 'sha256', Buffer.from(KEY.secret).toString()]]);
        expect(
          (
            await sh('sysctl', ['-n', 'net.ipv6.conf.eth0.seg6_require_hmac'], { netns: hostNs[1]!.name })
          ).stdout.trim(),
        ).toBe('1');

        // Signed (H.Encaps with the HMAC TLV, key 7) both ways: accepted, counted as processed.
        const before = await dt6Counters(2);
        expect(await ping(wl.get(1)!, '2001:db8:a:2::1')).toBe(3);
        const signedIn = await dt6Counters(2);
        expect(signedIn.packets - before.packets).toBe(3n);
        expect(signedIn.errors).toBe(before.errors);

        // Unsigned: an SRH without HMAC TLV to h2's End.DT6, from h1's underlay. Refused while h2
        // requires HMAC (errors), accepted once it does not (positive control: the packet itself is good).
        const [h2eth] = await hostNs[1]!.ipJson<{ address: string }[]>('link', 'show', 'eth0');
        const unsigned = async (count: number) => {
          const pkt = [
            `Ether(dst=${JSON.stringify(h2eth!.address)})`,
            `IPv6(src="2001:db8:f::1", dst=${JSON.stringify(formatIpv6(dt6(2)))})`,
            `IPv6ExtHdrSegmentRouting(addresses=[${JSON.stringify(formatIpv6(dt6(2)))}], segleft=0, lastentry=0)`,
            'IPv6(src="2001:db8:a:1::1", dst="2001:db8:a:2::1", hlim=64)',
            'ICMPv6EchoRequest(id=4242, seq=1)',
          ].join('/');
          await hostNs[0]!.exec(
            '/usr/bin/python3',
            [
              '-c',
              [
                'import logging',
                'logging.getLogger("scapy.runtime").setLevel(logging.ERROR)',
                'from scapy.all import Ether, IPv6, IPv6ExtHdrSegmentRouting, ICMPv6EchoRequest, sendp',
                `sendp(${pkt}, iface="eth0", count=${count}, inter=0.05, verbose=False)`,
              ].join('\n'),
            ],
            { timeoutMs: paced(60_000) },
          );
        };
        await unsigned(4);
        const refused = await dt6Counters(2);
        expect(refused.errors - signedIn.errors).toBe(4n);
        expect(refused.packets).toBe(signedIn.packets);
        await dps[1]!.setSysctl('net.ipv6.conf.eth0.seg6_require_hmac', '0');
        await unsigned(2);
        const accepted = await dt6Counters(2);
        expect(accepted.packets - refused.packets).toBe(2n);
        expect(accepted.errors).toBe(refused.errors);
        await dps[1]!.setSysctl('net.ipv6.conf.eth0.seg6_require_hmac', '1');

        // A wrong secret on h1 (its intent's key changed, applied as a delta): h2 refuses what h1 signs.
        const wrong = buildFabricView(
          fabric([{ ...KEY, secret: new TextEncoder().encode('not-the-fabric-secret') }], 7),
        );
        const h1Signed = intentOf2(signed, 1);
        const h1Wrong = intentOf2(wrong, 1);
        await backends[0]!.applyDelta(h1Signed, h1Wrong);
        expect((await dps[0]!.listHmacKeys())[0]!.secret.length).toBe('not-the-fabric-secret'.length);
        const w0 = await dt6Counters(2);
        expect(await ping(wl.get(1)!, '2001:db8:a:2::1', 2)).toBe(0);
        const w1 = await dt6Counters(2);
        expect(w1.errors - w0.errors).toBe(2n);
        expect(w1.packets).toBe(w0.packets);
        // realise repairs it to the fabric's key (compared with the kernel, not with memory).
        await backends[0]!.realise(h1Signed);
        expect(await ping(wl.get(1)!, '2001:db8:a:2::1')).toBe(3);
      },
      paced(120_000),
    );

    it(
      'a key gone from the view goes from the kernel; a key set by hand stays',
      async () => {
        await dps[0]!.setHmacKey({
          keyId: 99,
          algorithm: 'sha1',
          secret: new TextEncoder().encode('by-hand'),
        });
        const off = buildFabricView(fabric([]));
        for (const n of HOSTS) {
          const i = intentOf2(off, n);
          expect([...hmacKeys(i)]).toEqual([]);
          await backends[n - 1]!.realise(i);
        }
        expect((await dps[0]!.listHmacKeys()).map((k) => k.keyId)).toEqual([99]);
        expect((await dps[1]!.listHmacKeys()).map((k) => k.keyId)).toEqual([]);
        await dps[0]!.deleteHmacKey(99);
      },
      paced(120_000),
    );
  },
);
