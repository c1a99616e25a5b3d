/**
 * An intent's items as a base map plus the changes of the deltas applied since (pure). The incremental
 * path hands the backend a new intent per event; copying a 100,000-item map for each would cost more
 * than the event's planning. A layer shares its base and copies only the changes; when the changes
 * grow past a fraction of the base they are folded into a fresh base (amortised O(changes) per event).
 * Layers are immutable once made: the backend may keep the one it was handed as `before`.
 */
import type { IntentDelta, IntentItem } from '../dataplane/intent.ts';

/** Fold when the changes exceed this share of the base (and this floor). */
const FOLD_SHARE = 1 / 16;
const FOLD_FLOOR = 256;

export class LayeredItems implements ReadonlyMap<string, IntentItem> {
  readonly #base: ReadonlyMap<string, IntentItem>;
  /** Key -> the item now, or null: removed from the base. */
  readonly #changes: ReadonlyMap<string, IntentItem | null>;
  readonly size: number;

  private constructor(
    base: ReadonlyMap<string, IntentItem>,
    changes: ReadonlyMap<string, IntentItem | null>,
    size: number,
  ) {
    this.#base = base;
    this.#changes = changes;
    this.size = size;
  }

  /** `items` with `delta` applied; `items` is not touched. */
  static apply(items: ReadonlyMap<string, IntentItem>, delta: IntentDelta): ReadonlyMap<string, IntentItem> {
    const base = items instanceof LayeredItems ? items.#base : items;
    const changes = new Map(items instanceof LayeredItems ? items.#changes : []);
    let size = items.size;
    const set = (i: IntentItem) => {
      if (!LayeredItems.#has(base, changes, i.key)) size++;
      changes.set(i.key, i);
    };
    for (const i of delta.removed) {
      if (LayeredItems.#has(base, changes, i.key)) size--;
      if (base.has(i.key)) changes.set(i.key, null);
      else changes.delete(i.key);
    }
    for (const i of delta.added) set(i);
    for (const i of delta.changed) set(i);
    const layered = new LayeredItems(base, changes, size);
    if (changes.size > Math.max(FOLD_FLOOR, base.size * FOLD_SHARE)) return new Map(layered);
    return layered;
  }

  static #has(
    base: ReadonlyMap<string, IntentItem>,
    changes: ReadonlyMap<string, IntentItem | null>,
    key: string,
  ) {
    const c = changes.get(key);
    return c === undefined ? base.has(key) : c !== null;
  }

  get(key: string): IntentItem | undefined {
    const c = this.#changes.get(key);
    return c === undefined ? this.#base.get(key) : (c ?? undefined);
  }

  has(key: string): boolean {
    return LayeredItems.#has(this.#base, this.#changes, key);
  }

  *entries(): MapIterator<[string, IntentItem]> {
    for (const [k, v] of this.#base) {
      const c = this.#changes.get(k);
      if (c === undefined) yield [k, v];
      else if (c !== null) yield [k, c];
    }
    for (const [k, c] of this.#changes) if (c !== null && !this.#base.has(k)) yield [k, c];
  }

  *keys(): MapIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<IntentItem> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): MapIterator<[string, IntentItem]> {
    return this.entries();
  }

  forEach(fn: (value: IntentItem, key: string, map: ReadonlyMap<string, IntentItem>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}
