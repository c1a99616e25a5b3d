import { afterAll, beforeAll, expect, it } from 'vitest';
import { openDataplane } from '../../../src/dataplane/index.ts';
import { createLab, sh, systemSuite } from '../../harness/index.ts';
import { AgentCluster, segmesh, segmeshJson } from './cluster.ts';

interface Kernel {
  release: string;
  vrf: boolean;
  seg6: boolean;
  seg6local: boolean;
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
  { tools: ['ip', 'nft', 'gobgpd'] },
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
      // A link to hang the routes on (this kernel has no dummy devices): one end of a veth pair.
      await ns.ip('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1');
      await ns.ip('link', 'set', 'd0', 'up');
      await ns.ip('link', 'set', 'd1', 'up');
      const tried = (...route: string[]) =>
        ns.ip('-6', 'route', 'add', ...route, 'dev', 'd0').then(
          () => true,
          () => false,
        ) as Promise<boolean>;
      const seg6 = await tried('2001:db8:99::/64', 'encap', 'seg6', 'mode', 'encap', 'segs', 'fc00::1');
      const seg6local = await tried('fc00:99::1/128', 'encap', 'seg6local', 'action', 'End');

      const h1 = cluster.hosts[0]!;
      const v = segmeshJson<Version>(['version', '--socket', h1.socket]);
      const uname = (await sh('uname', ['-r'])).stdout.trim();
      expect(v.kernel).toMatchObject({ release: uname, vrf, hmac, nftSrh, seg6, seg6local });
      expect(v.agent.kernel).toEqual({ release: uname, vrf, hmac, nftSrh, seg6, seg6local });
      // The agent's data plane follows (dataplane.backend: auto): kernel seg6 where it works, else eBPF.
      const status = segmeshJson<{ dataplaneBackend: string; dataplaneBackendWhy: string }>([
        'status',
        '--socket',
        h1.socket,
      ]);
      expect(status.dataplaneBackend).toBe(seg6 && seg6local ? 'kernel' : 'ebpf');
      expect(status.dataplaneBackendWhy).toMatch(
        seg6 && seg6local
          ? /^auto: the kernel has seg6/
          : /^auto: kernel backend unusable \(no seg6 lwtunnel routes/,
      );

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
      const yes = (b: boolean) => (b ? 'yes' : 'no');
      expect(text).toMatch(new RegExp(`vrf devices +${yes(vrf)}`));
      expect(text).toMatch(new RegExp(`seg6 encap +${yes(seg6)}`));
      expect(text).toMatch(new RegExp(`seg6local +${yes(seg6local)}`));
      expect(text).toMatch(new RegExp(`seg6 hmac +${yes(hmac)}`));
      expect(text).toMatch(new RegExp(`nft srh match +${nftSrh ? 'yes' : 'no'}`));
      expect(text).toContain(`gobgpd ${gobgpd}`);
    });
  },
);
