/**
 * An in-memory DataplaneBackend for unit tests of the agent's components: it holds what it was asked
 * to realise, checks what a real backend would refuse (an unsupported item, a delta from a state it
 * does not hold, an entry or SID on a link nobody attached), and can be told to fail a call.
 */
import {
  ALL_SCOPES,
  type BackendCapabilities,
  type BackendCounters,
  type DataplaneBackend,
  type RealiseResult,
  unsupportedReason,
} from '../../../src/dataplane/backend.ts';
import {
  applyDelta,
  diffIntents,
  type ForwardingIntent,
  type IntentDelta,
  type IntentItem,
  sameIntent,
} from '../../../src/dataplane/intent.ts';

export class FakeBackendError extends Error {
  override readonly name = 'FakeBackendError';
}

type Method = 'realise' | 'applyDelta' | 'attach' | 'detach' | 'readCounters' | 'flush' | 'close';

export const FULL_CAPABILITIES: BackendCapabilities = {
  name: 'fake',
  behaviors: new Set(['End', 'End.X', 'End.T', 'End.DX6', 'End.DT6', 'End.B6.Encaps', 'End.B6.Encaps.Red']),
  encapModes: new Set(['encap', 'encap.red']),
  hmac: true,
  ipv4Inner: false,
  sourceSpecific: true,
  scopes: ALL_SCOPES,
};

export class FakeBackend implements DataplaneBackend {
  readonly capabilities: BackendCapabilities;
  /** What the data plane holds now. */
  installed: ReadonlyMap<string, IntentItem> = new Map();
  readonly attached = new Set<string>();
  readonly calls: Method[] = [];
  counters: BackendCounters = { sids: new Map(), attachments: new Map() };
  readonly #failing = new Set<Method>();

  constructor(capabilities: BackendCapabilities = FULL_CAPABILITIES) {
    this.capabilities = capabilities;
  }

  /** The next call of `method` throws (once). */
  failNext(method: Method): void {
    this.#failing.add(method);
  }

  #enter(method: Method): void {
    this.calls.push(method);
    if (this.#failing.delete(method)) throw new FakeBackendError(`${method} failed (injected)`);
  }

  #check(items: Iterable<IntentItem>): void {
    const reasons: string[] = [];
    for (const i of items) {
      const why = unsupportedReason(this.capabilities, i);
      if (why) reasons.push(why);
      const link =
        i.kind === 'attachment'
          ? i.link
          : i.kind === 'sid'
            ? i.link
            : i.kind === 'hmac-key'
              ? undefined
              : i.action.kind === 'deliver'
                ? i.action.link
                : undefined;
      if (link !== undefined && !this.attached.has(link))
        reasons.push(`${i.key}: link ${link} is not attached`);
    }
    if (reasons.length > 0) throw new FakeBackendError(reasons.join('; '));
  }

  async realise(intent: ForwardingIntent): Promise<RealiseResult> {
    this.#enter('realise');
    this.#check(intent.items.values());
    const d = diffIntents(this.installed, intent.items);
    this.installed = new Map(intent.items);
    return {
      added: d.added.length,
      replaced: d.changed.length,
      deleted: d.removed.length,
      conflicts: [],
      skipped: [],
    };
  }

  async applyDelta(
    before: ForwardingIntent,
    _after: ForwardingIntent,
    delta: IntentDelta,
  ): Promise<RealiseResult> {
    this.#enter('applyDelta');
    if (!sameIntent(before.items, this.installed))
      throw new FakeBackendError('delta from a state the backend does not hold; realise in full');
    this.#check([...delta.added, ...delta.changed]);
    this.installed = applyDelta(this.installed, delta);
    return {
      added: delta.added.length,
      replaced: delta.changed.length,
      deleted: delta.removed.length,
      conflicts: [],
      skipped: [],
    };
  }

  async attach(link: string): Promise<void> {
    this.#enter('attach');
    this.attached.add(link);
  }

  async detach(link: string): Promise<void> {
    this.#enter('detach');
    this.attached.delete(link);
  }

  async readCounters(): Promise<BackendCounters> {
    this.#enter('readCounters');
    return this.counters;
  }

  async flush(): Promise<void> {
    this.#enter('flush');
    this.installed = new Map();
  }

  async close(): Promise<void> {
    this.#enter('close');
  }
}
