import { describe, expect, it } from 'vitest';
import { explainPath } from '../../../src/agent/explain.ts';
import { tableOf } from '../../../src/dataplane/kernel/tables.ts';
import { formatIpv6, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { buildFabricView } from '../../../src/srv6/fabric.ts';

/** web on h0, db on h1, an SR-unaware firewall on h2 between them (web -> db only). */
const view = buildFabricView({
  locatorBlock: parsePrefix('fc00:0::/32'),
  hosts: ['h0', 'h1', 'h2'].map((name, i) => ({ name, underlay: parseIpv6(`2001:db8:1::${i + 1}`) })),
  tenants: [{ name: 't0', id: 100, prefixes: [parsePrefix('2001:db8:a0::/64')] }],
  workloads: [
    { id: 'web', tenant: 't0', host: 'h0', labels: { app: 'web' } },
    { id: 'db', tenant: 't0', host: 'h1', labels: { app: 'db' } },
  ],
  networkFunctions: [
    { name: 'fw', tenant: 't0', host: 'h2', mode: 'sr-unaware', address: parseIpv6('fc00:99::1') },
  ],
  policies: [
    { name: 'p', tenant: 't0', via: ['fw'], from: { labels: { app: 'web' } }, to: { labels: { app: 'db' } } },
  ],
});

describe('segmesh path', () => {
  it('follows a policy through an SR-unaware function and its return scope to the delivery SID; the reverse is direct', () => {
    const fwSid = view.hosts.get('h2')!.sids.networkFunctions.get('fw')!;
    const dbDelivery = view.hosts.get('h1')!.sids.tenantDelivery.get('t0')!.sid;
    const e = explainPath(view, 'h0', 'web', 'db');
    expect(e.segments).toStrictEqual([formatIpv6(fwSid.sid)]);
    expect(e.table).toBe(tableOf(view.tenants.get('t0')!.scopes.egress));
    expect(e.steps[0]).toContain(`table ${e.table} (t0 egress)`);
    expect(e.steps).toContain('handed to fw; what it returns continues from its return table');
    expect(e.steps.some((s) => s.includes(`segments [ ${formatIpv6(dbDelivery)} ]`))).toBe(true);
    expect(e.steps.at(-1)).toBe(`delivered on link ${view.workloads.get('db')!.link}`);

    const back = explainPath(view, 'h1', 'db', 'web');
    expect(back.segments).toStrictEqual([
      formatIpv6(view.hosts.get('h0')!.sids.tenantDelivery.get('t0')!.sid),
    ]);
    expect(back.steps.at(-1)).toBe(`delivered on link ${view.workloads.get('web')!.link}`);
  });
});
