import { afterAll, expect, it } from 'vitest';
import { openDataplane } from '../../../src/dataplane/index.ts';
import {
  type Attachment,
  attachmentKey,
  diffIntents,
  entryKey,
  type ForwardingIntent,
  type IntentItem,
  type PrefixEntry,
  type Scope,
  UNDERLAY,
} from '../../../src/dataplane/intent.ts';
import { KernelBackend } from '../../../src/dataplane/kernel/backend.ts';
import type { NetnsDataplane } from '../../../src/dataplane/netns.ts';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { createLab, systemSuite } from '../../harness/index.ts';

// Entries without SIDs or seg6 encapsulation: this suite runs on kernels without seg6 lwtunnels
// (kernel-without-seg6.md); the seg6 parts of the lowering are pinned by the unit golden test.
const egress: Scope = { kind: 'egress', tenant: 't0', tenantId: 100 };
const TABLE = '385424'; // 385024 + 4 * 100

function entry(scope: Scope, prefix: string, action: PrefixEntry['action'], from?: string): PrefixEntry {
  const p = parsePrefix(prefix);
  const f = from ? parsePrefix(from) : undefined;
  return {
    kind: 'entry',
    key: entryKey(scope, p, f),
    scope,
    prefix: p,
    ...(f ? { from: f } : {}),
    action,
    reason: 'test',
  };
}

function intent(items: IntentItem[]): ForwardingIntent {
  return { host: 'h0', items: new Map(items.map((i) => [i.key, i])) };
}

systemSuite('dataplane: the kernel backend realises intents', { tools: ['ip', 'nft'] }, () => {
  const lab = createLab();
  const open: NetnsDataplane[] = [];
  afterAll(async () => {
    for (const d of open) await d.close().catch(() => undefined);
    await lab.teardown();
  });

  it('realises entries, an attachment and its filter; a second realise writes nothing; a delta equals the full realise; flush removes it all', async () => {
    const ns = await lab.netns('kb');
    const dp = (await openDataplane({ netns: ns.name })) as NetnsDataplane;
    open.push(dp);
    await dp.addVeth({ name: 'kbw0', peerName: 'kbw1' });
    await dp.addVeth({ name: 'kbu0', peerName: 'kbu1' });
    for (const l of ['kbw0', 'kbw1', 'kbu0', 'kbu1']) await dp.setLink(l, { up: true });
    await dp.addAddress('kbu0', { address: parseIpv6('2001:db8:50::1'), length: 64 });
    const backend = new KernelBackend(dp, { underlayDevice: 'kbu0', mss: 1328 });

    const via = { kind: 'locator', via: parseIpv6('2001:db8:50::2') } as const;
    const deliver = { kind: 'deliver', link: 'kbw0' } as const;
    const attachment: Attachment = {
      kind: 'attachment',
      key: attachmentKey('kbw0'),
      link: 'kbw0',
      mtu: 1388,
      tenant: 't0',
      workload: 'w',
      address: parseIpv6('2001:db8:a0::1'),
      ingress: egress,
      restrict: {
        source: parseIpv6('2001:db8:a0::1'),
        denyDestinations: [parsePrefix('fc00::/32'), parsePrefix('2001:db8:50::1/128')],
      },
    };
    const base = [
      entry(UNDERLAY, 'fc00:0:2::/48', via),
      entry(egress, 'fc00:0:2::/48', via),
      entry(egress, '2001:db8:a0::1/128', deliver),
      entry(egress, '2001:db8:a0::9/128', via),
      entry(egress, '::/0', { kind: 'unreachable' }),
      attachment,
    ];
    // A source-specific entry next to a plain one to the same destination: the plain one becomes two halves.
    const withSource = intent([...base, entry(egress, '2001:db8:a0::9/128', deliver, '2001:db8:a0::1/128')]);

    const first = await backend.realise(withSource);
    expect(first.conflicts).toStrictEqual([]);
    const table = (await ns.ip('-6', 'route', 'show', 'table', TABLE)).stdout;
    expect(table).toMatch(/2001:db8:a0::1 dev kbw0 proto 203/);
    expect(table).toMatch(/2001:db8:a0::9 from 2001:db8:a0::1 dev kbw0 proto 203/);
    expect(table).toMatch(/2001:db8:a0::9 from ::\/1 via 2001:db8:50::2 dev kbu0 proto 203/);
    expect(table).toMatch(/2001:db8:a0::9 from 8000::\/1 via 2001:db8:50::2 dev kbu0 proto 203/);
    expect(table).toMatch(/unreachable default dev lo proto 203 metric 4294967295/);
    expect((await ns.ip('-6', 'route', 'show', 'table', 'main')).stdout).toMatch(
      /fc00:0:2::\/48 via 2001:db8:50::2 dev kbu0 proto 203/,
    );
    expect((await ns.ip('-6', 'rule', 'show')).stdout).toMatch(
      /11000:\s+from all iif kbw0 lookup 385424 proto 203/,
    );
    const nft = (await ns.exec('nft', ['list', 'ruleset'])).stdout;
    expect(nft).toContain('chain wl_kbw0');
    expect(nft).toContain('ip6 saddr != { 2001:db8:a0::1, fe80::/10 }');
    expect(nft).toContain('ip6 daddr 2001:db8:50::1 counter');
    expect(nft).toContain('tcp option maxseg size set 1328');

    expect(await backend.realise(withSource)).toStrictEqual({
      added: 0,
      replaced: 0,
      deleted: 0,
      conflicts: [],
      skipped: [],
    });

    // The source entry goes: by delta, the halves collapse into the plain route again.
    const plain = intent(base);
    const d = await backend.applyDelta(withSource, plain, diffIntents(withSource.items, plain.items));
    expect(d).toMatchObject({ added: 1, deleted: 3 });
    const after = (await ns.ip('-6', 'route', 'show', 'table', TABLE)).stdout;
    expect(after).toMatch(/2001:db8:a0::9 via 2001:db8:50::2 dev kbu0 proto 203/);
    expect(after).not.toMatch(/from/);
    // What the delta left is what a full realise wants: nothing to write.
    expect(await backend.realise(plain)).toStrictEqual({
      added: 0,
      replaced: 0,
      deleted: 0,
      conflicts: [],
      skipped: [],
    });

    const counters = await backend.readCounters();
    expect(counters.attachments.get('kbw0')).toStrictEqual({ spoofedSource: 0, sidBlock: 0, hostAddress: 0 });

    await backend.flush();
    expect((await ns.ip('-6', 'route', 'show', 'table', TABLE)).stdout.trim()).toBe('');
    expect((await ns.ip('-6', 'route', 'show', 'table', 'main')).stdout).not.toContain('fc00:0:2::/48');
    expect((await ns.ip('-6', 'rule', 'show')).stdout).not.toContain('kbw0');
    expect((await ns.exec('nft', ['list', 'ruleset'])).stdout).not.toContain('segmesh');
  });
});
