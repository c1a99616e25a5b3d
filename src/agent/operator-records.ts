/**
 * Operator-signed records handed to this agent (`segmesh policy apply`): gossiped, and kept in the
 * state directory so that a fabric whose hosts all restarted still has its tenants.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { GossipPort } from './ports.ts';

/** The newest records kept (older ones are superseded in gossip anyway). */
const KEPT = 10_000;

export interface OperatorRecordsDeps {
  readonly gossip: Pick<GossipPort, 'publishSigned'>;
  readonly stateDir: string;
  /** The fabric changed (tenants, policies): the reconciler takes the full path. */
  readonly changed: () => void;
}

export class OperatorRecords {
  readonly #d: OperatorRecordsDeps;

  constructor(deps: OperatorRecordsDeps) {
    this.#d = deps;
  }

  get #file(): string {
    return `${this.#d.stateDir}/operator-records.json`;
  }

  async publish(records: readonly Uint8Array[]): Promise<string[]> {
    const results: string[] = [];
    const kept = await this.#load();
    for (const bytes of records) {
      const r = await this.#d.gossip.publishSigned(bytes);
      results.push(r.ok ? 'applied' : (r.reason ?? 'rejected'));
      if (r.ok) kept.push(Buffer.from(bytes).toString('base64'));
    }
    await writeFile(this.#file, `${JSON.stringify(kept.slice(-KEPT))}\n`, { mode: 0o600 });
    this.#d.changed();
    return results;
  }

  /** Offers the kept records again (at start); gossip ignores those it already has in a newer version. */
  async republish(): Promise<void> {
    for (const b64 of await this.#load()) {
      await this.#d.gossip.publishSigned(Buffer.from(b64, 'base64')).catch(() => undefined);
    }
  }

  async #load(): Promise<string[]> {
    try {
      return JSON.parse(await readFile(this.#file, 'utf8')) as string[];
    } catch {
      return [];
    }
  }
}
