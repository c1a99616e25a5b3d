import { describe, expect, it } from 'vitest';
import { advertsForHost, externalRouteInputs } from '../../../src/bgp/adverts.ts';
import { formatRd } from '../../../src/bgp/update.ts';
import { formatIpv6, formatPrefix, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { buildFabricView } from '../../../src/srv6/fabric.ts';

const HOSTS = [
  { name: 'h1', underlay: parseIpv6('2001:db8:12::1'), locator: parsePrefix('fc00:0:1::/48') },
  { name: 'h2', underlay: parseIpv6('2001:db8:12::2'), locator: parsePrefix('fc00:0:2::/48') },
];
const BLUE = { name: 'blue', id: 100, prefixes: [parsePrefix('2001:db8:c0::/48')], routeTarget: '65000:100' };

const view = buildFabricView({
  hosts: HOSTS,
  tenants: [
    BLUE,
    {
      name: 'red',
      id: 200,
      prefixes: [parsePrefix('2001:db8:d0::/48')],
      routeTarget: '65000:200',
      edgeMode: 'aggregate',
    },
    { name: 'green', id: 300, prefixes: [parsePrefix('2001:db8:e0::/48')] },
  ],
  workloads: [
    { id: 'b1', tenant: 'blue', host: 'h1', address: parseIpv6('2001:db8:c0::1') },
    { id: 'b2', tenant: 'blue', host: 'h2', address: parseIpv6('2001:db8:c0::2') },
    { id: 'r1', tenant: 'red', host: 'h1', address: parseIpv6('2001:db8:d0::1') },
    { id: 'g1', tenant: 'green', host: 'h1', address: parseIpv6('2001:db8:e0::1') },
  ],
});

describe('adverts from the fabric view', () => {
  it('per-workload tenants: a /128 per local workload toward the delivery SID; aggregate: the prefixes', () => {
    const a = advertsForHost(view, 'h1', '198.18.0.1');
    const summary = a.map((x) => [
      x.tenant,
      formatRd(x.rd),
      formatPrefix(x.prefix),
      x.behavior,
      formatIpv6(x.nextHop),
    ]);
    expect(summary).toEqual([
      ['blue', '198.18.0.1:100', '2001:db8:c0::1/128', 'End.DT6', '2001:db8:12::1'],
      ['red', '198.18.0.1:200', '2001:db8:d0::/48', 'End.DT6', '2001:db8:12::1'],
    ]);
    const h1 = view.hosts.get('h1')!;
    expect(a[0]!.sid).toBe(h1.sids.tenantDelivery.get('blue')!.sid);
    expect(a[1]!.sid).toBe(h1.sids.tenantForward.get('red')!.sid);
    expect(a.every((x) => x.sid >> 80n === parseIpv6('fc00:0:1::') >> 80n)).toBe(true);
  });

  it('the aggregate is advertised by every host, workloads only by theirs', () => {
    const a = advertsForHost(view, 'h2', '198.18.0.2').map((x) => formatPrefix(x.prefix));
    expect(a).toEqual(['2001:db8:c0::2/128', '2001:db8:d0::/48']);
    expect(advertsForHost(view, 'nope', '198.18.0.3')).toEqual([]);
  });

  it('a workload moving away (its old instance still here, redirecting) stays advertised by the old host, marked movingAway; the new host advertises it plainly', () => {
    const moving = buildFabricView({
      hosts: HOSTS,
      tenants: [BLUE],
      workloads: [
        { id: 'b1', tenant: 'blue', host: 'h2', address: parseIpv6('2001:db8:c0::1'), formerHosts: ['h1'] },
      ],
    });
    const old = advertsForHost(moving, 'h1', '198.18.0.1');
    expect(old.map((x) => [formatPrefix(x.prefix), x.movingAway])).toEqual([['2001:db8:c0::1/128', true]]);
    // Toward the old host's delivery SID, whose End.DT6 redirects to the new host.
    expect(old[0]!.sid).toBe(moving.hosts.get('h1')!.sids.tenantDelivery.get('blue')!.sid);
    const now = advertsForHost(moving, 'h2', '198.18.0.2');
    expect(now.map((x) => [formatPrefix(x.prefix), x.movingAway])).toEqual([
      ['2001:db8:c0::1/128', undefined],
    ]);
    // Once the old instance is gone (no former host), only the new host advertises it.
    const done = buildFabricView({
      hosts: HOSTS,
      tenants: [BLUE],
      workloads: [{ id: 'b1', tenant: 'blue', host: 'h2', address: parseIpv6('2001:db8:c0::1') }],
    });
    expect(advertsForHost(done, 'h1', '198.18.0.1')).toEqual([]);
  });

  it('turns a learned route into external-route inputs per tenant', () => {
    const r = {
      key: 'k',
      peer: '2001:db8:12::101',
      tenants: ['blue', 'red'],
      rd: { type: 0 as const, admin: 65000, assigned: 100 },
      prefix: parsePrefix('2001:db8:e1::/64'),
      sid: parseIpv6('fc00:0:101:0:100::'),
      behaviorCodepoint: 0xffff,
      structure: undefined,
      nextHop: parseIpv6('2001:db8:12::101'),
    };
    expect(externalRouteInputs(r, 'edge1').map((x) => [x.tenant, x.edge])).toEqual([
      ['blue', 'edge1'],
      ['red', 'edge1'],
    ]);
  });
});
