/**
 * `npm run bench -- bgp [--reps N] [--sizes 10000,100000] [--timeout-s S]`
 *
 * Advertises N VPNv6 SRv6 routes through the agent's BGP component (gobgpd sidecar) to a real FRR 8.4
 * and times until FRR holds all of them: FRR's VPNv6 table (`pfxRcd` of the peer) and, separately,
 * the seg6 routes zebra installed in the kernel, each with a timeout and the count still missing.
 * Anchor, in the same run and interleaved: a minimal client streaming pre-encoded paths with
 * AddPathStream into its own gobgpd peering the same FRR (the floor GoBGP allows). Then the time
 * for the agent to learn 10,000 routes that FRR exports.
 *
 * Needs root, gobgpd, FRR 8.4 (zebra, bgpd, vtysh); builds its own lab namespaces.
 */

import { writeFileSync } from 'node:fs';
import { create, toBinary } from '@bufbuild/protobuf';
import { type Bgp, bgp, type VpnAdvert } from '../src/bgp/index.ts';
import { AdvertEncoder } from '../src/bgp/routes.ts';
import { parseRd } from '../src/bgp/update.ts';
import { AddPathStreamRequestSchema, PathSchema, TableType } from '../src/gen/gobgp/gobgp_pb.js';
import { formatIpv6, parseIpv6 } from '../src/srv6/address.ts';
import { F3216 } from '../src/srv6/sid.ts';
import { type Frr, startFrr } from '../test/harness/frr.ts';
import { type BareGobgpd, startBareGobgpd, testLogger } from '../test/harness/gobgp.ts';
import { createLab, runLogDir, sh } from '../test/harness/index.ts';
import { median, round } from './_stats.ts';

const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};
const REPS = Number(arg('reps', '2'));
const SIZES = arg('sizes', '10000,100000').split(',').map(Number);
const TIMEOUT_MS = Number(arg('timeout-s', '180')) * 1000;
const LEARN_N = Number(arg('learn', '10000'));
const BATCH = 512;
/** `--no-rt-filter`: without the agent's GoBGP import policy (to see what it costs). */
const RT_FILTER = !args.includes('--no-rt-filter');

const HOST_ASN = 65101;
const EDGE_ASN = 65000;
const RT = `${EDGE_ASN}:100`;
const AGENT = {
  address: '2001:db8:12::1',
  range: '2001:db8:a0::/48',
  base: parseIpv6('2001:db8:a0::'),
  rd: '65101:100',
};
const ANCHOR = {
  address: '2001:db8:12::2',
  range: '2001:db8:b0::/48',
  base: parseIpv6('2001:db8:b0::'),
  rd: '65101:200',
};
const SID = 'fc00:0:1:e000::';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function adverts(who: typeof AGENT, n: number): VpnAdvert[] {
  const out: VpnAdvert[] = [];
  const rd = parseRd(who.rd);
  const rts = [parseRd(RT)];
  const nextHop = parseIpv6(who.address);
  const sid = parseIpv6(SID);
  for (let i = 1; i <= n; i++) {
    out.push({
      tenant: 'blue',
      rd,
      prefix: { address: who.base + BigInt(i), length: 128 },
      sid,
      behavior: 'End.DT6',
      structure: F3216,
      routeTargets: rts,
      nextHop,
    });
  }
  return out;
}

/** Pre-encoded AddPathStream requests (the anchor's input; encoding is not timed). */
function preEncode(ads: readonly VpnAdvert[], withdraw: boolean): Uint8Array[] {
  const enc = new AdvertEncoder(true);
  const out: Uint8Array[] = [];
  for (let i = 0; i < ads.length; i += BATCH) {
    const paths = ads.slice(i, i + BATCH).map((a) => {
      const p = enc.path(a);
      return withdraw ? create(PathSchema, { ...p, isWithdraw: true }) : p;
    });
    out.push(
      toBinary(
        AddPathStreamRequestSchema,
        create(AddPathStreamRequestSchema, { tableType: TableType.GLOBAL, paths }),
      ),
    );
  }
  return out;
}

interface Trial {
  who: 'agent' | 'anchor';
  n: number;
  vpnMs: number;
  vpnMissing: number;
  kernelMs: number;
  kernelMissing: number;
}

async function waitCount(
  read: () => Promise<number>,
  target: number,
  timeoutMs: number,
  intervalMs: number,
  t0 = performance.now(),
): Promise<{ ms: number; missing: number }> {
  let last = -1;
  for (;;) {
    last = await read();
    const ms = performance.now() - t0;
    if (last === target) return { ms, missing: 0 };
    if (ms > timeoutMs) return { ms: Number.NaN, missing: Math.abs(target - last) };
    await sleep(intervalMs);
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench bgp needs root (network namespaces)');
  const lab = createLab();
  const cleanup = async () => {
    await lab.teardown().catch((e) => process.stderr.write(`teardown: ${e}\n`));
  };
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    const sw = await lab.underlaySwitch('sw');
    const h1 = await lab.netns('h1');
    const h2 = await lab.netns('h2');
    const edgeNs = await lab.netns('e1');
    await sw.attach(h1, 'eth0', [`${AGENT.address}/64`]);
    await sw.attach(h2, 'eth0', [`${ANCHOR.address}/64`]);
    await sw.attach(edgeNs, 'eth0', ['2001:db8:12::101/64']);
    await edgeNs.ip('link', 'add', 'ext', 'type', 'veth', 'peer', 'name', 'ext-peer');
    await edgeNs.ip('link', 'set', 'ext', 'up');
    await edgeNs.ip('link', 'set', 'ext-peer', 'up');
    await edgeNs.ip('-6', 'route', 'add', 'fc00:0:1::/48', 'via', AGENT.address);
    const frr: Frr = await startFrr(lab, {
      name: 'bench',
      netns: edgeNs,
      asn: EDGE_ASN,
      routerId: '198.18.1.1',
      neighbors: [
        { address: AGENT.address, asn: HOST_ASN },
        { address: ANCHOR.address, asn: HOST_ASN },
      ],
      locator: 'fc00:0:101::/64',
      tenant: { rd: '65000:100', rt: RT, exportKernel: '2001:db8:f000::/36' },
      sidDevice: 'eth0',
      // An edge does not send a host its own AS's routes back (both hosts share AS 65101).
      bgpExtra: [AGENT.address, ANCHOR.address].map((a) => `neighbor ${a} sender-as-path-loop-detection`),
    });

    const agent: Bgp = bgp({
      asn: HOST_ASN,
      routerId: '198.18.0.1',
      nextHop: AGENT.address,
      peers: [{ address: '2001:db8:12::101', asn: EDGE_ASN, locators: ['fc00:0:101::/64'] }],
      tenants: [{ name: 'blue', routeTarget: RT }],
      fabricLocators: ['fc00:0:1::/48'],
      sidecar: {
        mode: 'managed',
        runDir: `${runLogDir()}/bench-agent`,
        wrapper: ['ip', 'netns', 'exec', h1.name],
      },
      keepSidecarOnStop: false,
      streamBatch: BATCH,
      routeTargetImportFilter: RT_FILTER,
    })({ logger: testLogger('bench-agent') });
    lab.onTeardown(() => agent.stop());
    let learned = 0;
    let firstLearnAt = 0;
    let lastLearnAt = 0;
    agent.on('route:add', () => {
      learned++;
      lastLearnAt = performance.now();
      if (firstLearnAt === 0) firstLearnAt = lastLearnAt;
    });
    await agent.start();

    const anchor: BareGobgpd = await startBareGobgpd(lab, {
      name: 'anchor',
      netns: h2,
      asn: HOST_ASN,
      routerId: '198.18.0.2',
    });
    await anchor.client.unary('addPeer', {
      peer: {
        conf: { neighborAddress: '2001:db8:12::101', peerAsn: EDGE_ASN },
        afiSafis: [{ config: { family: { afi: 2, safi: 128 }, enabled: true } }],
      },
    });
    await frr.waitSession(AGENT.address);
    await frr.waitSession(ANCHOR.address);

    // Learning: FRR exports LEARN_N kernel routes; time until the agent has learned them all.
    const batch = [];
    for (let i = 0; i < LEARN_N; i++)
      batch.push(
        `route add 2001:db8:f${(i >> 12).toString(16).padStart(3, '0')}:${(i & 0xfff).toString(16)}::/64 dev ext-peer`,
      );
    const file = `${runLogDir()}/bench-learn.batch`;
    writeFileSync(file, `${batch.join('\n')}\n`);
    learned = 0;
    firstLearnAt = 0;
    const tl0 = performance.now();
    await sh('ip', ['-n', edgeNs.name, '-6', '-batch', file], { timeoutMs: 120_000 });
    // FRR's side: when it has sent them all to the agent's gobgpd (pfxSnt), sampled alongside.
    let frrSentMs = Number.NaN;
    const sentWatch = (async () => {
      while (Number.isNaN(frrSentMs) && performance.now() - tl0 < TIMEOUT_MS) {
        const j = JSON.parse(await frr.vtysh('show bgp ipv6 vpn summary json')) as {
          peers?: Record<string, { pfxSnt?: number }>;
        };
        if ((j.peers?.[AGENT.address]?.pfxSnt ?? 0) >= LEARN_N) frrSentMs = performance.now() - tl0;
        else await sleep(200);
      }
    })();
    const learnRes = await waitCount(async () => learned, LEARN_N, TIMEOUT_MS, 20, tl0);
    await sentWatch;
    const learnMs = Number.isNaN(learnRes.ms) ? Number.NaN : lastLearnAt - tl0;
    if (Number.isNaN(learnRes.ms)) {
      process.stderr.write(
        `learn: timed out with ${learned} of ${LEARN_N}; FRR:\n${await frr.vtysh('show bgp ipv6 unicast summary', 'show ipv6 route summary', 'show bgp ipv6 vpn summary')}\n`,
      );
    }
    const agentOnlyMs = lastLearnAt - firstLearnAt;
    const sample = agent.externalRoutes()[0];
    // Remove them again (not timed), so the advertise trials start from a quiet edge.
    writeFileSync(file, `${batch.map((l) => l.replace('route add', 'route del')).join('\n')}\n`);
    await sh('ip', ['-n', edgeNs.name, '-6', '-batch', file], { timeoutMs: 120_000 });
    await waitCount(async () => agent.externalRoutes().length, 0, TIMEOUT_MS, 200);

    const received = async (addr: string) => (await frr.vpnReceived())[addr] ?? 0;
    const trials: Trial[] = [];
    const pre = new Map<number, { add: Uint8Array[]; del: Uint8Array[] }>();
    const ads = new Map<number, VpnAdvert[]>();
    for (const n of SIZES) {
      ads.set(n, adverts(AGENT, n));
      const anchorAds = adverts(ANCHOR, n);
      pre.set(n, { add: preEncode(anchorAds, false), del: preEncode(anchorAds, true) });
    }

    const run = async (who: 'agent' | 'anchor', n: number) => {
      const addr = who === 'agent' ? AGENT.address : ANCHOR.address;
      const range = who === 'agent' ? AGENT.range : ANCHOR.range;
      if ((await received(addr)) !== 0) throw new Error(`${who}: FRR not empty before the trial`);
      global.gc?.();
      const t0 = performance.now();
      const send =
        who === 'agent' ? agent.advertise(ads.get(n)!) : anchor.client.addPathStream(pre.get(n)!.add);
      const vpn = await waitCount(() => received(addr), n, TIMEOUT_MS, 50, t0);
      await send;
      const vpnMs = vpn.ms;
      const kernel = await waitCount(() => frr.seg6RouteCount(range), n, TIMEOUT_MS, 500, t0);
      const kernelMs = kernel.ms;
      trials.push({ who, n, vpnMs, vpnMissing: vpn.missing, kernelMs, kernelMissing: kernel.missing });
      process.stderr.write(
        `${who} ${n}: FRR table ${round(vpnMs, 0)} ms (missing ${vpn.missing}), kernel ${round(kernelMs, 0)} ms (missing ${kernel.missing})\n`,
      );
      // Withdraw everything (not timed) and wait until FRR and the kernel are empty again.
      if (who === 'agent') await agent.withdraw(ads.get(n)!);
      else await anchor.client.addPathStream(pre.get(n)!.del);
      await waitCount(() => received(addr), 0, TIMEOUT_MS, 200);
      await waitCount(() => frr.seg6RouteCount(range), 0, TIMEOUT_MS, 500);
    };

    // Interleaved: agent and anchor alternate, the order flips each repetition.
    for (let r = 0; r < REPS; r++) {
      for (const n of SIZES) {
        const order: ('agent' | 'anchor')[] = r % 2 === 0 ? ['agent', 'anchor'] : ['anchor', 'agent'];
        for (const who of order) await run(who, n);
      }
    }

    // Report.
    const rows: string[] = [];
    const agg = (who: string, n: number) => {
      const t = trials.filter((x) => x.who === who && x.n === n);
      const vpn = median(t.map((x) => x.vpnMs));
      const kern = median(t.map((x) => x.kernelMs));
      return {
        vpnMs: vpn,
        rate: n / (vpn / 1000),
        kernelMs: kern,
        vpnMissing: Math.max(...t.map((x) => x.vpnMissing)),
        kernelMissing: Math.max(...t.map((x) => x.kernelMissing)),
        runs: t.map((x) => round(x.vpnMs, 0)).join('/'),
      };
    };
    rows.push(
      '| routes | sender | FRR VPNv6 table: median ms (runs) | routes/s | kernel seg6 (zebra): median ms | missing (table / kernel) |',
    );
    rows.push('|---|---|---|---|---|---|');
    const result: Record<string, number> = {};
    for (const n of SIZES) {
      for (const who of ['agent', 'anchor'] as const) {
        const a = agg(who, n);
        rows.push(
          `| ${n} | ${who} | ${round(a.vpnMs, 0)} (${a.runs}) | ${round(a.rate, 0)} | ${round(a.kernelMs, 0)} | ${a.vpnMissing} / ${a.kernelMissing} |`,
        );
      }
    }
    const a10 = agg('agent', SIZES[0]!);
    const aBig = agg('agent', SIZES.at(-1)!);
    const anBig = agg('anchor', SIZES.at(-1)!);
    result.routes_per_s_10k = round(a10.rate, 0);
    result.routes_per_s_100k = round(aBig.rate, 0);
    result.anchor_routes_per_s_100k = round(anBig.rate, 0);
    result.ratio_100k = round(aBig.rate / anBig.rate, 3);
    result.learn_10k_ms = round(learnMs, 0);
    result.frr_missing = Math.max(aBig.vpnMissing, aBig.kernelMissing, a10.vpnMissing, a10.kernelMissing);
    process.stdout.write(
      `\nbgp: advertise through the agent vs. pre-encoded AddPathStream (anchor), FRR 8.4\n`,
    );
    process.stdout.write(`${rows.join('\n')}\n\n`);
    process.stdout.write(
      `learn ${LEARN_N} routes exported by FRR: ${round(learnMs, 0)} ms from the kernel insert on the edge ` +
        `(FRR had sent them all after ${round(frrSentMs, 0)} ms; agent-side, first to last route: ${round(agentOnlyMs, 0)} ms; learned ${learned}` +
        `${sample ? `, e.g. ${formatIpv6(sample.prefix.address)}/${sample.prefix.length} SID ${formatIpv6(sample.sid)}` : ''})\n`,
    );
    process.stdout.write(`ratio agent/anchor at ${SIZES.at(-1)}: ${result.ratio_100k}\n`);
    process.stdout.write(
      `${JSON.stringify({
        bench: 'bgp',
        routes_per_s_10k: result.routes_per_s_10k,
        routes_per_s_100k: result.routes_per_s_100k,
        anchor_routes_per_s_100k: result.anchor_routes_per_s_100k,
        ratio_100k: result.ratio_100k,
        learn_10k_ms: result.learn_10k_ms,
        frr_missing: result.frr_missing,
      })}\n`,
    );
  } finally {
    await cleanup();
  }
}

await main();
process.exit(0);
