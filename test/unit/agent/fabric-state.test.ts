import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { buildFabricState } from '../../../src/agent/fabric-state.ts';
import type { LocalWorkload } from '../../../src/agent/workloads.ts';
import {
  HostRecordSchema,
  TenantRecordSchema,
  WorkloadRecordSchema,
} from '../../../src/gen/segmesh/v1/gossip_pb.js';
import { EMPTY_VIEW, type FabricView } from '../../../src/gossip/view.ts';
import { ipv6ToBytes, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { IANA_BEHAVIOR_CODEPOINT } from '../../../src/srv6/behavior.ts';
import { F3216 } from '../../../src/srv6/sid.ts';

const ADDRESS = '2001:db8:b100::42';
const version = (wall: number, origin: string) => ({ wall, counter: 0, origin });

/** A gossip view with this host (self), host2 (remote) and tenant blue; `claim` puts the workload on host2. */
function gossip(claimWallMs: number | undefined): FabricView {
  const host = (id: string, name: string, i: number) => ({
    id,
    state: 'alive' as const,
    version: version(1, id),
    record: create(HostRecordSchema, {
      hostId: id,
      name,
      underlayAddress: ipv6ToBytes(parseIpv6(`2001:db8:100::${i}`)),
      locator: { address: ipv6ToBytes(parseIpv6(`fc00:0:${i}::`)), length: 48 },
    }),
  });
  const workloads = new Map();
  if (claimWallMs !== undefined) {
    workloads.set('shop.cart', {
      id: 'shop.cart',
      hostId: 'id-2',
      tenant: 'blue',
      address: ipv6ToBytes(parseIpv6(ADDRESS)).toString(),
      version: version(claimWallMs, 'id-2'),
      record: create(WorkloadRecordSchema, {
        workloadId: 'shop.cart',
        tenant: 'blue',
        hostId: 'id-2',
        opaqueAddress: ipv6ToBytes(parseIpv6(ADDRESS)),
      }),
    });
  }
  return {
    ...EMPTY_VIEW,
    hosts: new Map([
      ['id-1', host('id-1', 'host1', 1)],
      ['id-2', host('id-2', 'host2', 2)],
    ]),
    tenants: new Map([
      [
        'blue',
        {
          version: version(1, 'operator'),
          record: create(TenantRecordSchema, {
            name: 'blue',
            table: 100,
            prefixes: [{ address: ipv6ToBytes(parseIpv6('2001:db8:b100::')), length: 64 }],
          }),
        },
      ],
    ]),
    workloads,
  };
}

const local = (attachedAtMs: number): LocalWorkload => ({
  id: 'shop.cart',
  sticky: true,
  tenant: 'blue',
  address: ADDRESS,
  netns: '/run/netns/x',
  ifname: 'eth0',
  hostLink: 'wl-cart',
  containerId: '',
  labels: {},
  mtu: 1400,
  attachedAtMs,
});

/** host1's fabric state from `view` and its local workloads. */
function stateOf(view: ReturnType<typeof gossip>, locals: ReturnType<typeof local>[]) {
  return buildFabricState({
    self: {
      name: 'host1',
      hostId: 'id-1',
      underlay: parseIpv6('2001:db8:100::1'),
      locator: parsePrefix('fc00:0:1::/48'),
    },
    structure: F3216,
    maxSegments: 4,
    underlayMtu: 1500,
    gossip: view,
    local: locals,
    external: [],
    edgePeers: [],
  });
}

function placement(claimWallMs: number | undefined, attachedAtMs: number) {
  const { input } = stateOf(gossip(claimWallMs), [local(attachedAtMs)]);
  return input.workloads?.find((w) => w.id === 'shop.cart');
}

describe('agent fabric state: where a local workload is delivered', () => {
  it('delivers locally when no other host claims the identity', () => {
    expect(placement(undefined, 1_000)).toMatchObject({ host: 'host1', link: 'wl-cart' });
  });

  it('delivers locally (before its own claim) when the remote claim is older: the workload moved here', () => {
    const w = placement(1_000, 2_000);
    expect(w).toMatchObject({ host: 'host1', link: 'wl-cart' });
    expect(w?.formerHosts).toBeUndefined();
  });

  it('redirects to the other host when its claim is newer than this instance: the workload moved away', () => {
    expect(placement(3_000, 2_000)).toMatchObject({ host: 'host2', formerHosts: ['host1'] });
  });
});

describe('agent fabric state: what another host can decapsulate', () => {
  const hostsOf = (sids: Array<{ sid: string; behavior: number }>) => {
    const view = gossip(undefined);
    const h2 = view.hosts.get('id-2')!;
    const hosts = new Map(view.hosts);
    hosts.set('id-2', {
      ...h2,
      record: create(HostRecordSchema, {
        hostId: h2.record.hostId,
        name: h2.record.name,
        underlayAddress: h2.record.underlayAddress,
        locator: { address: ipv6ToBytes(parseIpv6('fc00:0:2::')), length: 48 },
        sids: sids.map((x) => ({ address: ipv6ToBytes(parseIpv6(x.sid)), behavior: x.behavior })),
      }),
    });
    const { input } = stateOf({ ...view, hosts }, []);
    return new Map(input.hosts.map((h) => [h.name, h]));
  };
  const END = IANA_BEHAVIOR_CODEPOINT.End;
  const DT6 = IANA_BEHAVIOR_CODEPOINT['End.DT6'];

  it('a host that publishes End.DT4/DT46 SIDs has VRF-like decapsulation; one that publishes only End.DT6 not', () => {
    const withDt46 = hostsOf([
      { sid: 'fc00:0:2:1::', behavior: END },
      { sid: 'fc00:0:2:2064::', behavior: DT6 },
      { sid: 'fc00:0:2:5064::', behavior: IANA_BEHAVIOR_CODEPOINT['End.DT46'] },
    ]);
    expect(withDt46.get('host2')?.capabilities?.vrf).toBe(true);
    const dt6Only = hostsOf([
      { sid: 'fc00:0:2:1::', behavior: END },
      { sid: 'fc00:0:2:2064::', behavior: DT6 },
    ]);
    expect(dt6Only.get('host2')?.capabilities).toBeUndefined(); // the model's default: no VRF
  });
});
