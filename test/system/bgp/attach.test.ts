/**
 * Attach mode: an operator-run gobgpd, reached over its unix socket. The agent configures and uses it
 * but never starts or stops it; an AS mismatch is refused with a clear error.
 */
import { afterAll, expect, it } from 'vitest';
import { FAMILY_VPNV6, isLocalPath, pathFromApi } from '../../../src/bgp/api.ts';
import { SidecarError } from '../../../src/bgp/errors.ts';
import { bgp } from '../../../src/bgp/index.ts';
import { parseRd } from '../../../src/bgp/update.ts';
import { formatIpv6, parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { F3216 } from '../../../src/srv6/sid.ts';
import { startBareGobgpd, testLogger } from '../../harness/gobgp.ts';
import { createLab, systemSuite } from '../../harness/index.ts';

systemSuite('bgp: attach to an operator-run gobgpd', { tools: ['ip', 'gobgpd'] }, () => {
  const lab = createLab();
  afterAll(() => lab.teardown());

  it('configures it, advertises through it, and leaves it running on stop', async () => {
    const ns = await lab.netns('op');
    const op = await startBareGobgpd(lab, {
      name: 'op',
      netns: ns,
      asn: 65101,
      routerId: '198.18.0.9',
      listenPort: -1,
    });
    const init = {
      asn: 65101,
      routerId: '198.18.0.9',
      nextHop: '2001:db8:12::9',
      peers: [{ address: '2001:db8:12::101', asn: 65000 }],
      tenants: [{ name: 'blue', routeTarget: '65000:100' }],
      sidecar: { mode: 'attach' as const, target: op.target },
    };
    const b = bgp(init)({ logger: testLogger('attach') });
    await b.start();
    await b.advertise([
      {
        tenant: 'blue',
        rd: parseRd('65101:100'),
        prefix: parsePrefix('2001:db8:c9::1/128'),
        sid: parseIpv6('fc00:0:9:e000::'),
        behavior: 'End.DT6',
        structure: F3216,
        routeTargets: [parseRd('65000:100')],
        nextHop: parseIpv6('2001:db8:12::9'),
      },
    ]);
    const peers = await op.client.list('listPeer', {});
    expect(peers.map((p) => p.peer?.conf?.neighborAddress)).toEqual(['2001:db8:12::101']);
    const paths = (await op.client.list('listPath', { tableType: 0, family: FAMILY_VPNV6 }))
      .flatMap((r) => r.destination?.paths ?? [])
      .filter(isLocalPath)
      .map((p) => pathFromApi(p));
    expect(paths.map((p) => p && formatIpv6(p.prefix.address))).toEqual(['2001:db8:c9::1']);
    await b.stop();
    expect(op.daemon.alive()).toBe(true);

    const wrong = bgp({ ...init, asn: 65999 })({ logger: testLogger('attach-wrong') });
    await expect(wrong.start()).rejects.toBeInstanceOf(SidecarError);
    await expect(wrong.start()).rejects.toThrow(/AS 65101/);
  });
});
