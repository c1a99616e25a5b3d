import { afterAll, beforeAll, expect, it } from 'vitest';
import { openDataplane } from '../../../src/dataplane/index.ts';
import { createLab, sh, systemSuite } from '../../harness/index.ts';
import { AgentCluster, segmesh, segmeshJson } from './cluster.ts';

interface Kernel {
  release: string;
  vrf: boolean;
  seg6: boolean;
  hmac: boolean;
  nftSrh: boolean;
}
interface Version {
  segmesh: string;
  protocol: { agent: string; api: string; gossip: string };
  gobgp: { version: string | null };
  kernel: Kernel & { how: Record<string, string> };
  agent: {
    version: string;
    protocol: string;
    api: string;
    gossipProtocol: string;
    gobgpApi: string;
    kernel: Kernel;
  };
}

systemSuite(
  'agent: segmesh version reports what this host can do',
  { tools: ['ip', 'nft', 'gobgpd'], kernel: ['seg6', 'seg6local'] },
  () => {
    const lab = createLab();
    const cluster = new AgentCluster(lab);
    beforeAll(async () => {
      // One agent with a BGP peer that never answers: gobgpd runs, so the agent reports its version.
      await cluster.create(1, {
        edge: { address: '2001:db8:100::fe', asn: 65000, locator: 'fc00:0:fe00::/64' },
      });
    }, 120_000);
    afterAll(async () => {
      cluster.close();
      await lab.teardown();
    });

    it('kernel features as the kernel really behaves, from the CLI and from the agent', async () => {
      // Reality, found by doing it in a namespace of the lab (not the way features.ts probes).
      const ns = await lab.netns('probe');
      const vrf = (await ns.ip('link', 'add', 'v0', 'type', 'vrf', 'table', '10').then(
        () => true,
        () => false,
      )) as boolean;
      const dp = await openDataplane({ netns: ns.name });
      let hmac: boolean;
      try {
        await dp.setHmacKey({ keyId: 7, algorithm: 'sha256', secret: Buffer.from('segmesh-version-test') });
        hmac = (await dp.listHmacKeys()).some((k) => k.keyId === 7);
      } catch {
        hmac = false;
      } finally {
        await dp.close();
      }
      const applied = await ns.exec('nft', ['-f', '-'], {
        input: 'table ip6 srhprobe {\n  chain c {\n    srh tag 1 counter\n  }\n}\n',
        allowFail: true,
      });
      const listed =
        applied.code === 0 ? (await ns.exec('nft', ['list', 'table', 'ip6', 'srhprobe'])).stdout : '';
      const nftSrh = /srh tag 1/.test(listed);
      // This machine (docs: kernel 6.18 without CONFIG_NET_VRF, with CONFIG_IPV6_SEG6_HMAC).
      expect({ vrf, hmac }).toEqual({ vrf: false, hmac: true });

      const h1 = cluster.hosts[0]!;
      const v = segmeshJson<Version>(['version', '--socket', h1.socket]);
      const uname = (await sh('uname', ['-r'])).stdout.trim();
      expect(v.kernel).toMatchObject({ release: uname, vrf, hmac, nftSrh, seg6: true });
      expect(v.agent.kernel).toEqual({ release: uname, vrf, hmac, nftSrh, seg6: true });

      // Protocols and GoBGP.
      const gobgpd = /version\s+(\S+)/.exec((await sh('gobgpd', ['--version'])).stdout)![1]!;
      expect(v.gobgp.version).toBe(gobgpd);
      expect(v.agent.gobgpApi).toContain(`GoBGP ${gobgpd}`);
      expect(v.protocol).toMatchObject({
        agent: 'segmesh/1',
        api: 'segmesh.v1.AgentService',
        gossip: '/segmesh/gossip/1.0.0',
      });
      expect(v.agent).toMatchObject({
        version: v.segmesh,
        protocol: 'segmesh/1',
        api: 'segmesh.v1.AgentService',
        gossipProtocol: '/segmesh/gossip/1.0.0',
      });

      // The table people read says the same.
      const text = segmesh(['version', '--socket', h1.socket]).out;
      expect(text).toMatch(/vrf devices +no/);
      expect(text).toMatch(/seg6 hmac +yes/);
      expect(text).toMatch(new RegExp(`nft srh match +${nftSrh ? 'yes' : 'no'}`));
      expect(text).toContain(`gobgpd ${gobgpd}`);
    });
  },
);
