import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { generateKey } from '@libp2p/pnet';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAgentSettings } from '../../../src/agent/config.ts';
import {
  MEMBERSHIP_FIX,
  membershipGossipInit,
  membershipSummary,
  OPEN_MEMBERSHIP_WARNING,
} from '../../../src/agent/membership.ts';
import { ConfigError } from '../../../src/config/load.ts';
import {
  clusterKeyFromText,
  clusterKeyId,
  newClusterKey,
  operatorKeyText,
} from '../../../src/gossip/identity.ts';
import { verifyMembership } from '../../../src/gossip/records.ts';

const dir = mkdtempSync(join(tmpdir(), 'segmesh-membership-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** An agent config file with `extra` top-level lines and `gossip` lines; returns its path. */
function config(extra: string, gossip = ''): string {
  const file = join(dir, `agent-${++n}.yaml`);
  writeFileSync(
    file,
    `apiVersion: segmesh.io/v1alpha1
kind: AgentConfig
host: { name: h1, underlay: { interface: eth0, address: "2001:db8:100::1" } }
locator: "fc00:0:1::/48"
${extra}
gossip:
  listen: ["/ip6/::1/tcp/0"]
${gossip}`,
  );
  return file;
}

async function refusal(file: string): Promise<ConfigError> {
  try {
    await loadAgentSettings(file, {});
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error(`expected ${file} to be refused`);
}

describe('agent membership check', () => {
  it('refuses a config that closes nothing, naming the file, the keys and how to make a cluster key', async () => {
    const file = config('');
    const err = await refusal(file);
    expect(err.file).toBe(file);
    expect(err.issues).toHaveLength(1);
    expect(err.issues[0]!.key).toBe('membership');
    for (const text of [
      file,
      'gossip.clusterKeyFile',
      'gossip.allowedPeers',
      'gossip.privateNetworkKeyFile',
      'segmesh keygen --cluster',
      'membership: open',
    ])
      expect(err.message).toContain(text);
    // Positive control: the same file with membership: open starts.
    const open = await loadAgentSettings(config('membership: open'), {});
    expect(open.membership).toEqual({ mode: 'open' });
  });

  it('open: starts, and says so with the risk and the fix', async () => {
    const s = await loadAgentSettings(config('membership: open'), {});
    expect(membershipSummary(s.membership)).toMatch(/^open/);
    expect(OPEN_MEMBERSHIP_WARNING).toMatch(/any node that reaches the gossip port can join/);
    expect(OPEN_MEMBERSHIP_WARNING).toContain('segmesh keygen --cluster');
    expect(OPEN_MEMBERSHIP_WARNING).toContain('remove membership: open');
    expect(await membershipGossipInit(s.membership, 'x')).toEqual({});
  });

  it('refuses membership: open beside a key that closes it', async () => {
    const key = join(dir, 'contradiction.key');
    writeFileSync(key, await newClusterKey());
    const err = await refusal(config('membership: open', `  clusterKeyFile: ${key}`));
    expect(err.issues[0]).toMatchObject({ key: 'membership', value: 'open' });
    expect(err.message).toContain('contradicts gossip.clusterKeyFile');
  });

  it('allowlist: closed with the listed hosts; a bad host id is named by index', async () => {
    const ids = await Promise.all(
      [1, 2].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()),
    );
    const s = await loadAgentSettings(config('', `  allowedPeers: ["${ids[0]}", "${ids[1]}"]`), {});
    expect(s.membership).toEqual({ mode: 'closed', allowlist: ids });
    expect(membershipSummary(s.membership)).toBe('closed (allowlist of 2 hosts)');
    expect(await membershipGossipInit(s.membership, ids[0]!)).toEqual({ allowlist: ids });

    const err = await refusal(config('', `  allowedPeers: ["${ids[0]}", "host2"]`));
    expect(err.issues).toHaveLength(1);
    expect(err.issues[0]).toMatchObject({ key: 'gossip.allowedPeers[1]', value: 'host2' });
    expect(err.message).toContain('12D3KooW');
  });

  it('cluster key: closed; the host certifies itself and the certificate verifies against the key', async () => {
    const keyFile = join(dir, 'cluster.key');
    const text = await newClusterKey();
    writeFileSync(keyFile, text, { mode: 0o600 });
    const s = await loadAgentSettings(config('', `  clusterKeyFile: ${keyFile}`), {});
    if (s.membership.mode !== 'closed') throw new Error('expected closed');
    const expected = clusterKeyFromText(text);
    expect(s.membership.clusterKey!.equals(expected)).toBe(true);
    expect(membershipSummary(s.membership)).toBe(`closed (cluster key ${clusterKeyId(expected.publicKey)})`);

    const host = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    const init = await membershipGossipInit(s.membership, host);
    expect(init.clusterKey!.equals(expected.publicKey)).toBe(true);
    expect(await verifyMembership(expected.publicKey, host, init.membershipCertificate!)).toBe(true);
    // The certificate is for this host only.
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    expect(await verifyMembership(expected.publicKey, other, init.membershipCertificate!)).toBe(false);
  });

  it('cluster key file: missing, not a cluster key, or not base64 — each says what is wrong', async () => {
    const missing = await refusal(config('', `  clusterKeyFile: ${join(dir, 'absent.key')}`));
    expect(missing.issues[0]).toMatchObject({ key: 'gossip.clusterKeyFile' });
    expect(missing.message).toMatch(/cannot read the cluster key \(ENOENT\)/);

    const operator = join(dir, 'operator-format.key');
    writeFileSync(operator, Buffer.from([8, 1, 18, 64, 1, 2, 3]));
    expect((await refusal(config('', `  clusterKeyFile: ${operator}`))).message).toMatch(
      /not a cluster key: expected the line "segmesh-cluster-key-v1"/,
    );

    const garbled = join(dir, 'garbled.key');
    writeFileSync(garbled, 'segmesh-cluster-key-v1\nnot base64!\n');
    expect((await refusal(config('', `  clusterKeyFile: ${garbled}`))).message).toMatch(/not base64/);

    const short = join(dir, 'short.key');
    writeFileSync(short, 'segmesh-cluster-key-v1\nCAESIA==\n');
    expect((await refusal(config('', `  clusterKeyFile: ${short}`))).message).toMatch(
      /4 bytes that are not a libp2p private key/,
    );
  });

  it('refuses a cluster key that is also an operator key (every host could sign fabric records)', async () => {
    const keyFile = join(dir, 'shared.key');
    const text = await newClusterKey();
    writeFileSync(keyFile, text);
    const pub = operatorKeyText(clusterKeyFromText(text).publicKey);
    const err = await refusal(config(`operatorKeys: ["${pub}"]`, `  clusterKeyFile: ${keyFile}`));
    expect(err.issues[0]).toMatchObject({ key: 'operatorKeys[0]' });
    expect(err.message).toMatch(/is the cluster key/);
    // Positive control: a separate operator key is fine.
    const other = operatorKeyText((await generateKeyPair('Ed25519')).publicKey);
    await loadAgentSettings(config(`operatorKeys: ["${other}"]`, `  clusterKeyFile: ${keyFile}`), {});
  });

  it('private network key: a libp2p swarm key closes membership; another file is refused', async () => {
    const swarm = new Uint8Array(95);
    generateKey(swarm);
    const good = join(dir, 'swarm.key');
    writeFileSync(good, swarm);
    const s = await loadAgentSettings(config('', `  privateNetworkKeyFile: ${good}`), {});
    expect(s.membership).toEqual({ mode: 'closed', psk: new Uint8Array(readFileSync(good)) });
    expect(membershipSummary(s.membership)).toBe('closed (private network key)');

    const bad = join(dir, 'not-swarm.key');
    writeFileSync(bad, 'hello\n');
    const err = await refusal(config('', `  privateNetworkKeyFile: ${bad}`));
    expect(err.issues[0]).toMatchObject({ key: 'gossip.privateNetworkKeyFile', value: bad });
    expect(err.message).toMatch(/not a libp2p swarm key/);
  });

  it('the fix text names every way to close membership', () => {
    for (const key of ['gossip.clusterKeyFile', 'gossip.allowedPeers', 'gossip.privateNetworkKeyFile'])
      expect(MEMBERSHIP_FIX).toContain(key);
  });
});
