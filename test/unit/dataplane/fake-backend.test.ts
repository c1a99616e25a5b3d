import { describe, expect, it } from 'vitest';
import { attachments, sameIntent } from '../../../src/dataplane/intent.ts';
import { HostIntentComputer, intentOf } from '../../../src/dataplane/intent-lower.ts';
import { kernelCapabilities } from '../../../src/dataplane/kernel/backend.ts';
import { buildFabricView, workloadLinkName } from '../../../src/srv6/fabric.ts';
import { computeHostPlan } from '../../../src/srv6/pathcompute.ts';
import { FakeBackend, FULL_CAPABILITIES } from '../fakes/backend.ts';
import { fabricFromShape } from '../srv6/fabric-arbitrary.ts';

const shape = {
  hosts: 3,
  tenants: 1,
  workloads: [
    { tenant: 0, host: 0, app: 0 },
    { tenant: 0, host: 1, app: 1 },
  ],
  nfs: [{ tenant: 0, host: 2, unaware: false }],
  policies: [{ tenant: 0, via: [0], fromApp: 0, toApp: 1 }],
  hmac: true,
};

describe('fake backend', () => {
  it('holds the full intent after a realise and a workload moved in by delta', async () => {
    const view = buildFabricView(fabricFromShape(shape));
    const computer = new HostIntentComputer(view, 'h0');
    const backend = new FakeBackend();
    for (const a of attachments(computer.intent)) await backend.attach(a.link);
    const first = await backend.realise(computer.intent);
    expect(first.added).toBe(computer.intent.items.size);

    const before = { host: 'h0', items: new Map(computer.intent.items) };
    const w1 = view.workloads.get('w1')!;
    const delta = computer.moveWorkload('w1', 'h0');
    // A delta that delivers to a link nobody attached is refused, as the kernel refuses a missing device.
    await expect(backend.applyDelta(before, computer.intent, delta)).rejects.toThrow(
      `link ${workloadLinkName('w1')} is not attached`,
    );
    await backend.attach(w1.link);
    await backend.applyDelta(before, computer.intent, delta);
    expect(sameIntent(backend.installed, computer.intent.items)).toBe(true);
    expect(backend.calls).toStrictEqual(['attach', 'realise', 'applyDelta', 'attach', 'applyDelta']);
  });

  it("refuses what the backend's capabilities exclude (HMAC, source-specific entries), naming it; accepts with them", async () => {
    const view = buildFabricView(fabricFromShape(shape));
    const intent = intentOf(computeHostPlan(view, 'h0'));
    const full = new FakeBackend(FULL_CAPABILITIES);
    const poor = new FakeBackend({ ...kernelCapabilities({ hmac: false }), sourceSpecific: false });
    for (const b of [full, poor]) for (const a of attachments(intent)) await b.attach(a.link);
    await expect(full.realise(intent)).resolves.toMatchObject({ conflicts: [] });
    await expect(poor.realise(intent)).rejects.toThrow(/the kernel backend cannot add an SRH HMAC \(key 7\)/);
    await expect(poor.realise(intent)).rejects.toThrow(/the kernel backend has no source-specific entries/);
    expect(poor.installed.size).toBe(0);
  });
});
