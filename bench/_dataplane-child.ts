/**
 * Project side of bench/dataplane.ts, run as its own process inside the benchmark namespace
 * (`ip netns exec NS node bench/_dataplane-child.ts N`), as the agent runs in its host's namespace:
 * add, dump+diff, replace, delete of N seg6 encap /128 routes through LinuxDataplane, each verified
 * by a dump before its time is reported. Prints one JSON line.
 */
import { ROUTE_PROTOCOL } from '../src/dataplane/constants.ts';
import { LinuxDataplane } from '../src/dataplane/dataplane.ts';
import type { Route } from '../src/dataplane/route.ts';
import { formatIpv6, parseIpv6 } from '../src/srv6/address.ts';

const N = Number(process.argv[2] ?? 100_000);
const base = parseIpv6('2001:db8:a::');
export const SEGS2 = [parseIpv6('fc00:1::1'), parseIpv6('fc00:2::1')];
export const SEGS3 = [parseIpv6('fc00:1::1'), parseIpv6('fc00:3::1'), parseIpv6('fc00:2::1')];

const routes = (segs: bigint[]): Route[] =>
  Array.from({ length: N }, (_, i) => ({
    dst: { address: base + BigInt(i), length: 128 },
    table: 254,
    dev: 'd0',
    encap: { type: 'seg6', mode: 'encap', segments: segs },
  }));

async function verify(dp: LinuxDataplane, want: number, segs: bigint[]): Promise<void> {
  const ours = await dp.listRoutes({ protocol: ROUTE_PROTOCOL });
  if (ours.length !== want) throw new Error(`verification: ${ours.length} routes, want ${want}`);
  const seen = new Set<bigint>();
  for (const r of ours) {
    const off = r.dst.address - base;
    if (r.dst.length !== 128 || off < 0n || off >= BigInt(N) || seen.has(off)) {
      throw new Error(`unexpected route ${formatIpv6(r.dst.address)}`);
    }
    seen.add(off);
    const e = r.encap;
    if (
      e?.type !== 'seg6' ||
      e.mode !== 'encap' ||
      e.segments.length !== segs.length ||
      e.segments.some((s, i) => s !== segs[i])
    ) {
      throw new Error(`route ${formatIpv6(r.dst.address)} has the wrong encapsulation`);
    }
  }
}

const dp = new LinuxDataplane();
const a = routes(SEGS2);
const b = routes(SEGS3);
const out: Record<string, number> = {};
let t = performance.now();
const add = await dp.addRoutes(a);
out.add = performance.now() - t;
out.addRetries = add.retries;
await verify(dp, N, SEGS2);

t = performance.now();
const noop = await dp.reconcile({ routes: a });
out.dumpDiff = performance.now() - t;
if (noop.added + noop.replaced + noop.deleted !== 0 || noop.unchanged !== N)
  throw new Error('dump+diff found changes');

t = performance.now();
const rep = await dp.replaceRoutes(b);
out.replace = performance.now() - t;
out.replaceRetries = rep.retries;
await verify(dp, N, SEGS3);

t = performance.now();
await dp.deleteRoutes(b);
out.delete = performance.now() - t;
await verify(dp, 0, SEGS3);
await dp.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
