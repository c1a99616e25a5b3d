/**
 * `segmesh version`: this build, its protocols, the GoBGP it drives and the kernel features detected
 * on this host (by trying them: src/dataplane/features.ts); with a running agent, the agent's own
 * answer too (it may run another build).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { AGENT_PROTOCOL } from '../../agent/agent.ts';
import { AgentClient, DEFAULT_SOCKET } from '../../agent/client.ts';
import { detectKernelFeatures, gobgpdVersion } from '../../dataplane/features.ts';
import { AgentService } from '../../gen/segmesh/v1/agent_pb.js';
import { ANTI_ENTROPY_PROTOCOL, GOSSIP_TOPIC, HEARTBEAT_PROTOCOL } from '../../gossip/constants.ts';
import { printJson, printTable } from '../output.ts';

export interface VersionInfo {
  segmesh: string;
  node: string;
  platform: string;
  protocol: { agent: string; api: string; gossip: string; antiEntropy: string; heartbeat: string };
  gobgp: { binary: string; version: string | null; api: string };
  kernel: {
    release: string;
    vrf: boolean;
    seg6: boolean;
    seg6local: boolean;
    hmac: boolean;
    nftSrh: boolean;
    how: Record<string, string>;
  };
  agent:
    | {
        version: string;
        protocol: string;
        api: string;
        gossipProtocol: string;
        gobgpApi: string;
        kernel: {
          release: string;
          vrf: boolean;
          seg6: boolean;
          seg6local: boolean;
          hmac: boolean;
          nftSrh: boolean;
        };
      }
    | { error: string };
}

export function versionCommand(): Command {
  return new Command('version')
    .description('versions of segmesh, its protocols and GoBGP, and the kernel features of this host')
    .option('--json', 'machine-readable output')
    .option('--gobgpd <binary>', 'the gobgpd binary to ask', 'gobgpd')
    .option('--socket <path>', 'agent API socket (its answer is included when it runs)', DEFAULT_SOCKET)
    .action(async (opts: { json?: boolean; gobgpd: string; socket: string }) => {
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      };
      const [kernel, gobgp, agent] = await Promise.all([
        detectKernelFeatures(),
        gobgpdVersion(opts.gobgpd),
        agentAnswer(opts.socket),
      ]);
      const info: VersionInfo = {
        segmesh: pkg.version,
        node: process.versions.node,
        platform: `${process.platform}/${process.arch}`,
        protocol: {
          agent: AGENT_PROTOCOL,
          api: AgentService.typeName,
          gossip: GOSSIP_TOPIC,
          antiEntropy: ANTI_ENTROPY_PROTOCOL,
          heartbeat: HEARTBEAT_PROTOCOL,
        },
        gobgp: { binary: opts.gobgpd, version: gobgp ?? null, api: 'apipb (gRPC)' },
        kernel: { ...kernel, how: { ...kernel.how } },
        agent,
      };
      if (opts.json) return printJson(info);
      const yes = (b: boolean) => (b ? 'yes' : 'no');
      const rows: string[][] = [
        ['segmesh', `${info.segmesh} (node ${info.node}, ${info.platform})`],
        ['protocol', `${info.protocol.agent}, API ${info.protocol.api}, gossip ${info.protocol.gossip}`],
        ['gobgp', `${opts.gobgpd} ${gobgp ?? 'not found'} (API ${info.gobgp.api})`],
        ['kernel', kernel.release],
        ['  vrf devices', `${yes(kernel.vrf)} (${kernel.how.vrf})`],
        ['  seg6 encap', `${yes(kernel.seg6)} (${kernel.how.seg6})`],
        ['  seg6local', `${yes(kernel.seg6local)} (${kernel.how.seg6local})`],
        ['  seg6 hmac', `${yes(kernel.hmac)} (${kernel.how.hmac})`],
        ['  nft srh match', `${yes(kernel.nftSrh)} (${kernel.how.nftSrh})`],
      ];
      if ('error' in agent) rows.push(['agent', agent.error]);
      else {
        rows.push(['agent', `${agent.version} (protocol ${agent.protocol}, gossip ${agent.gossipProtocol})`]);
        rows.push(['  gobgp', agent.gobgpApi || 'BGP not configured']);
        rows.push([
          '  kernel',
          `vrf=${agent.kernel.vrf} seg6=${agent.kernel.seg6} seg6local=${agent.kernel.seg6local} hmac=${agent.kernel.hmac} nftSrh=${agent.kernel.nftSrh}`,
        ]);
      }
      printTable(['WHAT', 'VERSION'], rows);
    });
}

async function agentAnswer(socket: string): Promise<VersionInfo['agent']> {
  const client = new AgentClient(socket);
  try {
    const s = await client.call('getStatus', {}, 10_000);
    return {
      version: s.version,
      protocol: s.protocol,
      api: s.api,
      gossipProtocol: s.gossipProtocol,
      gobgpApi: s.gobgpApi,
      kernel: {
        release: s.kernel?.release ?? '',
        vrf: s.kernel?.vrf ?? false,
        seg6: s.kernel?.seg6 ?? false,
        seg6local: s.kernel?.seg6local ?? false,
        hmac: s.kernel?.hmac ?? false,
        nftSrh: s.kernel?.nftSrh ?? false,
      },
    };
  } catch (e) {
    return { error: (e as Error).message };
  } finally {
    client.close();
  }
}
