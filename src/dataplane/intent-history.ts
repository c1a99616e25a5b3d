/**
 * Successive versions of one host's intent items, each an immutable map, at a cost per step of the
 * items the step changes (not of the intent's size: 100,000 workloads make a map whose copy per event
 * costs far more than computing the event).
 *
 * The newest version reads the one live map. When a step supersedes a version that was handed out,
 * that version keeps the old values of the keys the step changes (an undo record) and answers through
 * the versions after it (Baker's "shallow binding"): a version k steps old reads in up to k lookups;
 * one that has fallen more than {@link FLATTEN_AFTER} steps behind copies itself once into its own map
 * on its next read, so that a snapshot kept long costs one copy, not a walk per read. A version nobody
 * was handed is changed in place, its changes recorded in the undo record of the version before it
 * (which reads through it): one version per snapshot handed out, however many steps between. Old versions hold the newer ones, never the reverse:
 * a version nobody references is garbage with its undo records.
 *
 * Iteration order: the newest version iterates like a Map the deltas were applied to (new keys last);
 * an older one yields the live map's order with the items changed since, then the items removed since.
 */
import type { IntentDelta, IntentItem } from './intent.ts';

/** Steps behind the newest version after which a read copies the version into its own map. */
export const FLATTEN_AFTER = 64;

class ItemsVersion implements ReadonlyMap<string, IntentItem> {
  readonly #live: Map<string, IntentItem>;
  /** Once superseded: the value of each key the next step changed, as this version had it. */
  #undo: Map<string, IntentItem | undefined> | undefined;
  #next: ItemsVersion | undefined;
  /** Once flattened: this version's items, on their own. */
  #own: Map<string, IntentItem> | undefined;
  #size = 0;

  constructor(live: Map<string, IntentItem>) {
    this.#live = live;
  }

  /** Makes `old` (the newest version so far) answer through `next`, remembering what `delta` overwrites. */
  static supersede(old: ItemsVersion, delta: IntentDelta): ItemsVersion {
    const undo = new Map<string, IntentItem | undefined>();
    old.#undo = undo;
    ItemsVersion.extend(old, delta);
    const next = new ItemsVersion(old.#live);
    old.#size = old.#live.size;
    old.#next = next;
    return next;
  }

  /**
   * The newest version changes in place (nobody holds it), but `old`, the one before, reads through
   * it: `old` keeps what `delta` overwrites of its own items too.
   */
  static extend(old: ItemsVersion, delta: IntentDelta): void {
    const undo = old.#undo;
    if (!undo) return; // flattened: it reads nothing through the newer versions any more
    const keep = (i: IntentItem) => {
      if (!undo.has(i.key)) undo.set(i.key, old.#live.get(i.key));
    };
    for (const i of delta.removed) keep(i);
    for (const i of delta.added) keep(i);
    for (const i of delta.changed) keep(i);
  }

  get size(): number {
    if (this.#own) return this.#own.size;
    return this.#next ? this.#size : this.#live.size;
  }

  get(key: string): IntentItem | undefined {
    let steps = 0;
    for (let v: ItemsVersion = this; ; v = v.#next!, steps++) {
      if (v.#own) return v.#own.get(key);
      if (!v.#next) {
        if (steps > FLATTEN_AFTER) this.#flatten();
        return v.#live.get(key);
      }
      const undo = v.#undo!;
      if (undo.has(key)) {
        if (steps > FLATTEN_AFTER) this.#flatten();
        return undo.get(key);
      }
    }
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  #flatten(): void {
    const own = new Map(this.entries());
    this.#own = own;
    this.#undo = undefined;
    this.#next = undefined;
  }

  *entries(): MapIterator<[string, IntentItem]> {
    if (this.#own) {
      yield* this.#own.entries();
      return;
    }
    if (!this.#next) {
      yield* this.#live.entries();
      return;
    }
    // The values this version had for every key changed since (first record on the way wins), over
    // the newest map or the first flattened version met.
    const over = new Map<string, IntentItem | undefined>();
    let v: ItemsVersion = this;
    while (!v.#own && v.#next) {
      for (const [k, i] of v.#undo!) if (!over.has(k)) over.set(k, i);
      v = v.#next;
    }
    const base = v.#own ?? v.#live;
    for (const [k, i] of base) {
      if (!over.has(k)) yield [k, i];
      else {
        const mine = over.get(k);
        if (mine) yield [k, mine];
      }
    }
    for (const [k, i] of over) if (i && !base.has(k)) yield [k, i];
  }

  *keys(): MapIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<IntentItem> {
    for (const [, i] of this.entries()) yield i;
  }

  [Symbol.iterator](): MapIterator<[string, IntentItem]> {
    return this.entries();
  }

  forEach(
    fn: (value: IntentItem, key: string, map: ReadonlyMap<string, IntentItem>) => void,
    self?: unknown,
  ): void {
    for (const [k, i] of this.entries()) fn.call(self, i, k, this);
  }

  get [Symbol.toStringTag](): string {
    return 'IntentItems';
  }
}

/** The writer: the live items and the newest version. */
export class IntentHistory {
  readonly #live: Map<string, IntentItem>;
  #head: ItemsVersion;
  /** The newest version was handed out: the next step must keep it as it is. */
  #shared = false;
  /** The version before the newest, while someone holds it (it reads through the newest). */
  #previous: WeakRef<ItemsVersion> | undefined;

  /** `items` becomes the history's own (it is changed in place as deltas arrive). */
  constructor(items: Map<string, IntentItem>) {
    this.#live = items;
    this.#head = new ItemsVersion(items);
  }

  /** The newest version, immutable from now on (the next step starts a new one). */
  current(): ReadonlyMap<string, IntentItem> {
    this.#shared = true;
    return this.#head;
  }

  /** The newest items, for the writer's own reads (no version is handed out). */
  get(key: string): IntentItem | undefined {
    return this.#live.get(key);
  }

  apply(delta: IntentDelta): void {
    if (delta.added.length === 0 && delta.changed.length === 0 && delta.removed.length === 0) return;
    if (this.#shared) {
      this.#previous = new WeakRef(this.#head);
      this.#head = ItemsVersion.supersede(this.#head, delta);
      this.#shared = false;
    } else {
      const previous = this.#previous?.deref();
      if (previous) ItemsVersion.extend(previous, delta);
      else this.#previous = undefined;
    }
    for (const i of delta.removed) this.#live.delete(i.key);
    for (const i of delta.added) this.#live.set(i.key, i);
    for (const i of delta.changed) this.#live.set(i.key, i);
  }
}
