/** Config and key errors as users see them from the CLI: one message with file, line, key and fix. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newOperatorKey } from '../../../src/gossip/identity.ts';

function segmesh(...args: string[]) {
  return spawnSync(process.execPath, ['src/cli/main.ts', ...args], { encoding: 'utf8' });
}

const dir = mkdtempSync(join(tmpdir(), 'segmesh-cli-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('CLI errors for bad configuration and keys', () => {
  it('segmesh plan names file:line:column, key, value and fix of a tenant prefix in SID space', () => {
    const run = segmesh('plan', 'test/fixtures/config/tenant-in-sid-space.yaml');
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      'test/fixtures/config/tenant-in-sid-space.yaml:14:16: tenants[0].prefixes[0]: tenant blue prefix fc00:0:b100::/64 overlaps the SID block fc00::/32 (locatorBlock)',
    );
    expect(run.stderr).toMatch(/\(got "fc00:0:b100::\/64"\); move the tenant prefix out of the SID block/);
  });

  it('segmesh policy apply says what a wrong --operator-key file holds; the right one gets past the key', async () => {
    const key = await newOperatorKey();
    const policy = join(dir, 'tenants.yaml');
    writeFileSync(
      policy,
      'apiVersion: segmesh.io/v1alpha1\nkind: FabricPolicy\ntenants:\n  - { name: blue, id: 100, prefixes: ["2001:db8:b100::/64"] }\n',
    );
    const wrong = join(dir, 'public.txt');
    writeFileSync(wrong, `${key.publicKey}\n`);
    const right = join(dir, 'operator.key');
    writeFileSync(right, key.privateKey);
    const socket = join(dir, 'none.sock');
    const bad = segmesh('policy', 'apply', policy, '--operator-key', wrong, '--socket', socket);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(
      `segmesh: operator key file ${wrong} holds an Ed25519 public key in base64 (what keygen prints and operatorKeys lists), not the private key; pass the private key file that segmesh keygen --out wrote`,
    );
    expect(bad.stderr).not.toMatch(/wire type|offset/);
    // Positive control: the private key is accepted; what fails then is the absent agent.
    const good = segmesh('policy', 'apply', policy, '--operator-key', right, '--socket', socket);
    expect(good.status).toBe(1);
    expect(good.stderr).not.toMatch(/operator key/);
    expect(good.stderr).toContain(socket);
  });
});
