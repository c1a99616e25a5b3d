/**
 * Who may join this host's gossip. Closed by default: since the newest claim on a workload wins, a node
 * that can join can pull any workload's traffic to itself, so the agent refuses to start unless the
 * configuration closes membership (a cluster key, an allowlist of host ids, or a libp2p private-network
 * key) or says `membership: open` explicitly — and then it warns on every start and in `segmesh status`.
 */
import { readFile } from 'node:fs/promises';
import type { PrivateKey, PublicKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { ConfigIssue } from '../config/load.ts';
import type { AgentConfigSpec } from '../config/schema.ts';
import { clusterKeyFromText, clusterKeyId, operatorKeyFromText } from '../gossip/identity.ts';
import { issueMembership } from '../gossip/records.ts';

/** How to close membership (docs/agent.md, "Membership"). */
const CLOSE_IT =
  'create a cluster key once with `segmesh keygen --cluster --out /etc/segmesh/cluster.key`, copy it to every ' +
  'host (mode 0600) and set gossip.clusterKeyFile: /etc/segmesh/cluster.key; or list every host id (peer id, ' +
  '`segmesh status --json` shows it as hostId) in gossip.allowedPeers; or set gossip.privateNetworkKeyFile to ' +
  'a libp2p swarm key';

/** The fix every refusal names. */
export const MEMBERSHIP_FIX = `${CLOSE_IT}; \`membership: open\` is for labs and tests only`;

/** The warning an open agent logs on every start and `segmesh status` shows. */
export const OPEN_MEMBERSHIP_WARNING =
  'membership is open: any node that reaches the gossip port can join, claim a workload (the newest claim ' +
  `wins) and pull its traffic to itself. Fix: ${CLOSE_IT}, and remove membership: open`;

/** The keys that close membership, as they are set in `spec`. */
function closers(spec: AgentConfigSpec): string[] {
  const g = spec.gossip;
  return [
    ...(g.clusterKeyFile !== undefined ? ['gossip.clusterKeyFile'] : []),
    ...(g.allowedPeers.length > 0 ? ['gossip.allowedPeers'] : []),
    ...(g.privateNetworkKeyFile !== undefined ? ['gossip.privateNetworkKeyFile'] : []),
  ];
}

/** What is wrong with the membership settings of `spec` (pure; empty when the agent may start). */
export function membershipIssues(spec: AgentConfigSpec): ConfigIssue[] {
  const set = closers(spec);
  const issues: ConfigIssue[] = [];
  if (spec.membership === 'closed' && set.length === 0) {
    issues.push({
      key: 'membership',
      message:
        'membership is closed (the default) but nothing closes it: neither gossip.clusterKeyFile, ' +
        'gossip.allowedPeers nor gossip.privateNetworkKeyFile is set, so any node that reaches the gossip ' +
        `port could join and pull a workload's traffic to itself. Fix: ${MEMBERSHIP_FIX}`,
    });
  }
  if (spec.membership === 'open' && set.length > 0) {
    issues.push({
      key: 'membership',
      value: 'open',
      message: `membership: open contradicts ${set.join(' and ')}: remove membership: open to keep membership closed, or remove ${set.join(' and ')}`,
    });
  }
  for (const [i, id] of spec.gossip.allowedPeers.entries()) {
    try {
      const peer = peerIdFromString(id);
      if (peer.type !== 'Ed25519') throw new Error(`a ${peer.type} peer id`);
    } catch (e) {
      issues.push({
        key: `gossip.allowedPeers[${i}]`,
        value: id,
        message: `not a host id (${(e as Error).message}); host ids are Ed25519 peer ids like 12D3KooW…, as \`segmesh status --json\` shows them (hostId)`,
      });
    }
  }
  return issues;
}

/** Membership as the agent runs it. */
export type Membership =
  | { readonly mode: 'open' }
  | {
      readonly mode: 'closed';
      /** The cluster key (every member holds it and certifies its own host id). */
      readonly clusterKey?: PrivateKey;
      readonly allowlist?: readonly string[];
      /** libp2p private-network swarm key (@libp2p/pnet format). */
      readonly psk?: Uint8Array;
    };

/**
 * Checks and loads the membership settings (reads the key files). Throws a {@link ConfigIssue} list
 * through `fail` so that the caller names its file.
 */
export async function loadMembership(
  spec: AgentConfigSpec,
  fail: (issues: ConfigIssue[]) => never,
): Promise<Membership> {
  const issues = membershipIssues(spec);
  if (issues.length > 0) fail(issues);
  if (spec.membership === 'open') return { mode: 'open' };
  const g = spec.gossip;
  let clusterKey: PrivateKey | undefined;
  if (g.clusterKeyFile !== undefined) {
    const file = g.clusterKeyFile;
    const problem = (message: string): never =>
      fail([{ key: 'gossip.clusterKeyFile', value: file, message: `${message}. Fix: ${MEMBERSHIP_FIX}` }]);
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      problem(`cannot read the cluster key (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      clusterKey = clusterKeyFromText(text);
    } catch (e) {
      problem(`${file}: ${(e as Error).message}`);
    }
    // Every member holds the cluster key: were it also an operator key, any host could sign fabric records.
    for (const [i, op] of spec.operatorKeys.entries()) {
      let operator: PublicKey | undefined;
      try {
        operator = operatorKeyFromText(op);
      } catch {
        continue; // a bad operator key is reported where it is used
      }
      if (operator.equals(clusterKey!.publicKey))
        fail([
          {
            key: `operatorKeys[${i}]`,
            message:
              'is the cluster key: every host holds the cluster key, so every host could sign fabric records. ' +
              'Use separate keys: `segmesh keygen --out operator.key` for the operator, `segmesh keygen --cluster` for the cluster',
          },
        ]);
    }
  }
  let psk: Uint8Array | undefined;
  if (g.privateNetworkKeyFile !== undefined) {
    const file = g.privateNetworkKeyFile;
    try {
      psk = new Uint8Array(await readFile(file));
    } catch (e) {
      fail([
        {
          key: 'gossip.privateNetworkKeyFile',
          value: file,
          message: `cannot read the swarm key (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); it is a libp2p private-network key (/key/swarm/psk/1.0.0/, /base16/, 64 hex digits)`,
        },
      ]);
    }
    if (
      !/^\/key\/swarm\/psk\/1\.0\.0\/\r?\n\/base16\/\r?\n[0-9a-fA-F]{64}\s*$/.test(
        Buffer.from(psk!).toString('latin1'),
      )
    )
      fail([
        {
          key: 'gossip.privateNetworkKeyFile',
          value: file,
          message:
            'is not a libp2p swarm key: expected the lines /key/swarm/psk/1.0.0/, /base16/ and 64 hex digits',
        },
      ]);
  }
  return {
    mode: 'closed',
    ...(clusterKey ? { clusterKey } : {}),
    ...(g.allowedPeers.length > 0 ? { allowlist: g.allowedPeers } : {}),
    ...(psk ? { psk } : {}),
  };
}

/** The gossip settings membership adds for the host `hostId`. */
export async function membershipGossipInit(
  m: Membership,
  hostId: string,
): Promise<{
  allowlist?: readonly string[];
  clusterKey?: PublicKey;
  membershipCertificate?: Uint8Array;
  psk?: Uint8Array;
}> {
  if (m.mode === 'open') return {};
  if (!m.allowlist && !m.psk && !m.clusterKey)
    throw new Error(`membership is closed but nothing closes it. Fix: ${MEMBERSHIP_FIX}`);
  return {
    ...(m.allowlist ? { allowlist: m.allowlist } : {}),
    ...(m.psk ? { psk: m.psk } : {}),
    ...(m.clusterKey
      ? {
          clusterKey: m.clusterKey.publicKey,
          membershipCertificate: await issueMembership(m.clusterKey, hostId),
        }
      : {}),
  };
}

/** One line for `segmesh status` and the start-up log. */
export function membershipSummary(m: Membership): string {
  if (m.mode === 'open') return 'open (any node that reaches the gossip port can join; see the warning)';
  const parts = [
    ...(m.clusterKey ? [`cluster key ${clusterKeyId(m.clusterKey.publicKey)}`] : []),
    ...(m.allowlist ? [`allowlist of ${m.allowlist.length} host${m.allowlist.length === 1 ? '' : 's'}`] : []),
    ...(m.psk ? ['private network key'] : []),
  ];
  return `closed (${parts.join(', ')})`;
}
