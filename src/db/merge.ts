/**
 * Cursors that compose: {@link LevelCursor} walks a level's sorted, non-overlapping tables as one
 * sequence; {@link MergingCursor} merges any cursors into one stream holding the newest version of
 * each key (mini-lsm's block → table → merge → user iterator stack).
 *
 * @module
 */
import { compareKeys, type Entry, type EntryCursor } from '../entry.js';
import type { TableCursor } from '../sstable/iterator.js';
import type { TableReader } from '../sstable/table-reader.js';
import type { TableMeta } from './manifest.js';

/** A table of a level: its metadata and open reader. */
export interface LevelTable {
  readonly meta: TableMeta;
  readonly reader: TableReader;
}

/**
 * Index of the first table whose largest key is >= `key` (tables sorted, non-overlapping). Takes
 * anything with a table's key range: live tables, and the ranges a compaction job carries.
 */
export function findTable(tables: readonly { readonly meta: { readonly largest: Uint8Array } }[], key: Uint8Array): number {
  let lo = 0;
  let hi = tables.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(tables[mid]!.meta.largest, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * One cursor over the tables of a sorted level (L1 and deeper), opening each table's cursor
 * lazily. Its entries' values are views of the tables' blocks (`views` of `TableReader.iterator`):
 * its users (the DB's iterators, compaction) copy or decode them, and never modify them.
 */
export class LevelCursor implements EntryCursor {
  readonly #tables: readonly LevelTable[];
  readonly #fillCache: boolean;
  #index = -1;
  #cursor: TableCursor | undefined;

  constructor(tables: readonly LevelTable[], fillCache: boolean) {
    this.#tables = tables;
    this.#fillCache = fillCache;
  }

  get current(): Entry | undefined {
    return this.#cursor?.current;
  }

  #open(i: number): TableCursor | undefined {
    if (i < 0 || i >= this.#tables.length) {
      this.#index = -1;
      this.#cursor = undefined;
      return undefined;
    }
    this.#index = i;
    this.#cursor = this.#tables[i]!.reader.iterator({ fillCache: this.#fillCache, views: true });
    return this.#cursor;
  }

  seek(key: Uint8Array): Entry | undefined {
    const c = this.#open(findTable(this.#tables, key));
    return c ? (c.seek(key) ?? this.#forwardFrom(this.#index + 1)) : undefined;
  }

  seekForPrev(key: Uint8Array): Entry | undefined {
    let i = findTable(this.#tables, key);
    if (i >= this.#tables.length || compareKeys(this.#tables[i]!.meta.smallest, key) > 0) i--;
    const c = this.#open(i);
    return c ? (c.seekForPrev(key) ?? this.#backwardFrom(this.#index - 1)) : undefined;
  }

  seekToFirst(): Entry | undefined {
    return this.#forwardFrom(0);
  }

  seekToLast(): Entry | undefined {
    return this.#backwardFrom(this.#tables.length - 1);
  }

  next(): Entry | undefined {
    if (!this.#cursor) return undefined;
    return this.#cursor.next() ?? this.#forwardFrom(this.#index + 1);
  }

  prev(): Entry | undefined {
    if (!this.#cursor) return undefined;
    return this.#cursor.prev() ?? this.#backwardFrom(this.#index - 1);
  }

  #forwardFrom(i: number): Entry | undefined {
    for (; i < this.#tables.length; i++) {
      const e = this.#open(i)!.seekToFirst();
      if (e) return e;
    }
    this.#open(-1);
    return undefined;
  }

  #backwardFrom(i: number): Entry | undefined {
    for (; i >= 0; i--) {
      const e = this.#open(i)!.seekToLast();
      if (e) return e;
    }
    this.#open(-1);
    return undefined;
  }

  *[Symbol.iterator](): Iterator<Entry> {
    for (let e = this.current; e; e = this.next()) yield e;
  }
}

/**
 * Merges positioned cursors, given newest first, into one stream in key order (descending when
 * `reverse`), holding for each key only the entry of the newest cursor that has it. Tombstones
 * and expired entries are passed through: what they mean is the caller's decision.
 */
export class MergingCursor {
  readonly #sources: readonly EntryCursor[];
  readonly #reverse: boolean;

  constructor(sources: readonly EntryCursor[], reverse: boolean) {
    this.#sources = sources;
    this.#reverse = reverse;
  }

  /** The next entry, or undefined at the end. */
  next(): Entry | undefined {
    const sources = this.#sources;
    const reverse = this.#reverse;
    let best: Entry | undefined;
    let bestAt = -1;
    let live = 0;
    for (let i = 0; i < sources.length; i++) {
      const e = sources[i]!.current;
      if (e === undefined) continue;
      live++;
      // Strictly better only: on equal keys the earlier (newer) source wins.
      if (best === undefined || (reverse ? compareKeys(e.key, best.key) > 0 : compareKeys(e.key, best.key) < 0)) {
        best = e;
        bestAt = i;
      }
    }
    if (best === undefined) return undefined;
    if (reverse) sources[bestAt]!.prev();
    else sources[bestAt]!.next();
    // Older sources holding the same key move past it too. (Sources before `bestAt` are past it:
    // one of them holding the key would have won.) A lone live source, as after a full
    // compaction with an empty memtable, compares nothing.
    if (live > 1) {
      for (let i = bestAt + 1; i < sources.length; i++) {
        const s = sources[i]!;
        const e = s.current;
        if (e !== undefined && compareKeys(e.key, best.key) === 0) {
          if (reverse) s.prev();
          else s.next();
        }
      }
    }
    return best;
  }
}

/**
 * A forward-only {@link MergingCursor} over a binary heap of its sources: O(log n) key
 * comparisons per entry instead of two per source, for compactions, which merge every L0 table
 * (a dozen or more when L0 is behind) with the level below. Same result: entries in key order,
 * for each key only the newest source's entry (the earliest source wins a tie). The sources must
 * be positioned (`seekToFirst`) before it is built; they are only moved forward.
 */
export class HeapMergingCursor {
  readonly #sources: readonly EntryCursor[];
  /** Source indexes, a min-heap by (current key, index). */
  readonly #heap: number[] = [];
  /** Each source's current key (undefined once it is exhausted). */
  readonly #keys: (Uint8Array | undefined)[];

  constructor(sources: readonly EntryCursor[]) {
    this.#sources = sources;
    this.#keys = sources.map((s) => s.current?.key);
    for (let i = 0; i < sources.length; i++) if (this.#keys[i] !== undefined) this.#heap.push(i);
    for (let i = (this.#heap.length >>> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  /** The next entry, or undefined at the end. */
  next(): Entry | undefined {
    const heap = this.#heap;
    if (heap.length === 0) return undefined;
    const best = this.#sources[heap[0]!]!.current!;
    this.#advanceTop();
    // Older sources holding the same key move past it too: after the winner they are the
    // smallest (key, index) pairs, so they come up to the top one by one.
    while (heap.length > 0 && compareKeys(this.#keys[heap[0]!]!, best.key) === 0) this.#advanceTop();
    return best;
  }

  /** Moves the top source forward and restores the heap (dropping the source at its end). */
  #advanceTop(): void {
    const heap = this.#heap;
    const i = heap[0]!;
    const key = this.#sources[i]!.next()?.key;
    this.#keys[i] = key;
    if (key === undefined) {
      const last = heap.pop()!;
      if (heap.length === 0) return;
      heap[0] = last;
    }
    this.#siftDown(0);
  }

  #less(a: number, b: number): boolean {
    const c = compareKeys(this.#keys[a]!, this.#keys[b]!);
    return c < 0 || (c === 0 && a < b);
  }

  #siftDown(at: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const item = heap[at]!;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.#less(heap[right]!, heap[left]!) ? right : left;
      if (!this.#less(heap[child]!, item)) break;
      heap[at] = heap[child]!;
      at = child;
    }
    heap[at] = item;
  }
}
