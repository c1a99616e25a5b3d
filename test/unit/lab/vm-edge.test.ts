import { describe, expect, it } from 'vitest';
import { frrVrfConfig, parseVrfSid } from '../../../src/lab/frr-vrf.ts';
import { vmEdgeScript, vmTapName } from '../../../src/lab/vm-edge.ts';

// FRR 8.4's answer in the edge VM (test/system/lab/vm-edge.test.ts), before and after allocation.
const SHOW = `locator_name: main
locator_chunks:
- fc00:0:fe00::/64
functions:
- sid: fc00:0:fe00:0:100::
  locator: main
bgps:
- name: default
  vpn_policy[AFI_IP].tovpn_sid: none
  vpn_policy[AFI_IP6].tovpn_sid: none
- name: vrf100
  vpn_policy[AFI_IP].tovpn_sid: none
  vpn_policy[AFI_IP6].tovpn_sid: fc00:0:fe00:0:100::
`;

describe('the VM edge router', () => {
  it("reads the VRF's VPN SID, and none before bgpd allocated it or for another instance", () => {
    expect(parseVrfSid(SHOW, 'vrf100')).toBe('fc00:0:fe00:0:100::');
    expect(parseVrfSid(SHOW, 'default')).toBeUndefined();
    expect(parseVrfSid(SHOW.replace(/fc00:0:fe00:0:100::\n$/, 'none\n'), 'vrf100')).toBeUndefined();
    expect(parseVrfSid('', 'vrf100')).toBeUndefined();
  });

  it('configures the tenant as a VRF instance, without the no-VRF work-arounds', () => {
    const conf = frrVrfConfig({
      hostname: 'edge1',
      asn: 65000,
      routerId: '198.18.20.13',
      neighbors: [{ address: 'fc00:99:20::11', asn: 65101, advertisementInterval: 0 }],
      locator: 'fc00:0:fe00::/64',
      vrf: { name: 'vrf100', table: 1100 },
      tenant: { rd: '65000:100', rt: '65000:100', exportPrefixes: ['fc00:e0::/64'] },
    });
    const lines = conf.split('\n');
    const vrfAt = lines.indexOf('router bgp 65000 vrf vrf100');
    expect(lines.indexOf('router bgp 65000')).toBeLessThan(vrfAt);
    // The tenant's VPN policy is in the VRF instance; the default one carries the sessions.
    expect(lines.indexOf('  sid vpn export auto')).toBeGreaterThan(vrfAt);
    expect(lines.indexOf('  neighbor fc00:99:20::11 activate')).toBeLessThan(vrfAt);
    expect(conf).toContain('ipv6 prefix-list SEGMESH-EXPORT seq 5 permit fc00:e0::/64');
    expect(conf).not.toContain('nexthop vpn export');
    expect(() => frrVrfConfig({ ...baseOpts(), locator: 'fc00:0:fe00::/48' })).toThrow(/must be a \/64/);
  });

  it('names taps within 15 bytes, with the run prefix for test labs, distinct per node and NIC', () => {
    const a = vmTapName('sm3f9a-edge', 'edge1', 0);
    expect(a).toMatch(/^sm3f9a-[0-9a-f]{6}0$/);
    expect(a.length).toBeLessThanOrEqual(15);
    expect(vmTapName('sm3f9a-edge', 'edge1', 1)).not.toBe(a);
    expect(vmTapName('sm3f9a-edge', 'edge2', 0)).not.toBe(a);
    const b = vmTapName('a-very-long-lab-name-of-31-char', 'edge1', 0);
    expect(b.length).toBeLessThanOrEqual(15);
    expect(b).not.toMatch(/^sm[0-9a-f]{4}-/); // never taken for a test run's object
  });

  it('adds the external addresses after enslaving to the VRF (enslaving flushes IPv6 addresses)', () => {
    const script = vmEdgeScript({
      vrf: { name: 'vrf100', table: 1100 },
      underlay: { dev: 'eth0', ipv4: '198.18.20.13/24' },
      external: [{ dev: 'ext0', ipv6: 'fc00:e0::fe/64', ipv4: '198.18.21.254/24' }],
      routes: [['fc00:0:1::/48', 'fc00:99:20::11']],
      files: { '/etc/frr/frr.conf': 'x' },
    });
    const enslave = script.indexOf('ip link set ext0 master vrf100');
    expect(enslave).toBeGreaterThan(script.indexOf('ip link add vrf100 type vrf table 1100'));
    expect(script.indexOf('ip addr add fc00:e0::fe/64 dev ext0')).toBeGreaterThan(enslave);
    expect(script.indexOf('frrinit.sh start')).toBeLessThan(script.indexOf('SEGMESH_EDGE_FRR_STARTED'));
  });
});

function baseOpts() {
  return {
    hostname: 'edge1',
    asn: 65000,
    routerId: '198.18.20.13',
    neighbors: [],
    locator: 'fc00:0:fe00::/64',
    vrf: { name: 'vrf100', table: 1100 },
    tenant: { rd: '65000:100', rt: '65000:100' },
  };
}
