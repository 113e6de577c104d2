/**
 * A version: one immutable table set (which table is at which level), as a manifest describes
 * it, with open readers. The DB swaps in a new version after each flush or compaction;
 * readers (gets, iterators) pin the version they started with, so its tables stay open and on
 * disk until the last of them is done.
 *
 * Table lifetime: every version holding a table counts one reference to it; when a version is
 * released and a table's count drops to zero, the table is obsolete (no live version, hence no
 * manifest the DB could still use, names it) and is closed and deleted.
 *
 * Level invariants: L0 tables may overlap and are ordered newest first; each deeper level is
 * sorted by key with no overlap between its tables.
 *
 * @module
 */
import { compareKeys, type Entry, type EntryCursor } from '../entry.js';
import type { Found } from '../found.js';
import { bloomHash } from '../sstable/bloom.js';
import { lowerBound } from '../sstable/index-block.js';
import type { TableMeta } from './manifest.js';
import { LevelCursor, type LevelTable } from './merge.js';

/** Number of levels. */
export const LEVELS = 7;

/** A table shared by the versions that hold it. */
export interface LiveTable extends LevelTable {
  refs: number;
}

/**
 * The key ranges of a sorted level's tables, flattened for point lookups: the largest keys back to
 * back, searched as a table's index is ({@link lowerBound} skips the prefix a key is known to
 * share with the keys left in range), instead of comparing whole keys held by each table's meta.
 */
class LevelRanges {
  readonly #largest: Uint8Array;
  readonly #starts: Uint32Array;
  readonly #tables: readonly LiveTable[];

  constructor(tables: readonly LiveTable[]) {
    this.#tables = tables;
    this.#starts = new Uint32Array(tables.length + 1);
    let n = 0;
    for (let i = 0; i < tables.length; i++) {
      n += tables[i]!.meta.largest.length;
      this.#starts[i + 1] = n;
    }
    this.#largest = new Uint8Array(n);
    for (let i = 0; i < tables.length; i++) this.#largest.set(tables[i]!.meta.largest, this.#starts[i]!);
  }

  /** The only table whose range may hold `key`, or undefined. */
  find(key: Uint8Array): LiveTable | undefined {
    const tables = this.#tables;
    const i = lowerBound(this.#largest, this.#starts, tables.length, key);
    if (i === tables.length) return undefined;
    const t = tables[i]!;
    return compareKeys(t.meta.smallest, key) <= 0 ? t : undefined;
  }
}

export class Version {
  readonly levels: readonly (readonly LiveTable[])[];
  /** Each sorted level's key ranges (L0's slot unused), for {@link get}. */
  readonly #ranges: LevelRanges[];
  /** Pins: the DB's current-version pin plus one per reader. */
  #pins = 0;
  readonly #onObsolete: (t: LiveTable) => void;

  constructor(levels: readonly (readonly LiveTable[])[], onObsolete: (t: LiveTable) => void) {
    this.levels = levels;
    this.#ranges = levels.map((level) => new LevelRanges(level));
    this.#onObsolete = onObsolete;
    for (const level of levels) for (const t of level) t.refs++;
  }

  pin(): this {
    this.#pins++;
    return this;
  }

  /** Drops a pin; the last one releases the version's tables. */
  unpin(): void {
    if (--this.#pins > 0) return;
    for (const level of this.levels) {
      for (const t of level) if (--t.refs === 0) this.#onObsolete(t);
    }
  }

  /**
   * The newest entry for `key` in the tables, tombstones included. Synchronous: cached blocks or a
   * pread. The key is hashed once for the bloom filters of every table asked. The entry's key is
   * `key` and its value a view of a cached block (see `TableReader.lookup`): decode or copy it,
   * never modify it.
   */
  get(key: Uint8Array): Entry | undefined {
    let hash = -1;
    const l0 = this.levels[0]!;
    for (let i = 0; i < l0.length; i++) {
      const t = l0[i]!;
      if (compareKeys(key, t.meta.smallest) < 0 || compareKeys(key, t.meta.largest) > 0) continue;
      if (hash < 0) hash = bloomHash(key);
      const e = t.reader.lookup(key, hash);
      if (e) return e;
    }
    const ranges = this.#ranges;
    for (let l = 1; l < ranges.length; l++) {
      const t = ranges[l]!.find(key);
      if (t === undefined) continue;
      if (hash < 0) hash = bloomHash(key);
      const e = t.reader.lookup(key, hash);
      if (e) return e;
    }
    return undefined;
  }

  /**
   * {@link get} for the DB's read path: `hash` is the key's `keyHash` (the lookup hashes once for
   * the memtables and the tables), and `out` is filled (the value as a range of a block, see
   * `Found`) instead of an entry being made. True if a table holds the key (a put or a tombstone).
   */
  find(key: Uint8Array, hash: number, out: Found): boolean {
    const l0 = this.levels[0]!;
    for (let i = 0; i < l0.length; i++) {
      const t = l0[i]!;
      if (compareKeys(key, t.meta.smallest) < 0 || compareKeys(key, t.meta.largest) > 0) continue;
      if (t.reader.find(key, hash, out)) return true;
    }
    const ranges = this.#ranges;
    for (let l = 1; l < ranges.length; l++) {
      const t = ranges[l]!.find(key);
      if (t?.reader.find(key, hash, out)) return true;
    }
    return false;
  }

  /**
   * Unpositioned cursors over every table, newest data first (L0 newest first, then L1, L2...).
   * Their entries' values are views of the tables' blocks: decode or copy them, never modify them.
   */
  cursors(fillCache: boolean): EntryCursor[] {
    const out: EntryCursor[] = [];
    for (const t of this.levels[0]!) out.push(t.reader.iterator({ fillCache, views: true }));
    for (let l = 1; l < this.levels.length; l++) {
      if (this.levels[l]!.length > 0) out.push(new LevelCursor(this.levels[l]!, fillCache));
    }
    return out;
  }

  /** Table metadata per level, as the manifest records it. */
  metas(): TableMeta[][] {
    return this.levels.map((level) => level.map((t) => t.meta));
  }

  /** Total bytes of the tables of level `l`. */
  levelBytes(l: number): number {
    let n = 0;
    for (const t of this.levels[l]!) n += t.meta.size;
    return n;
  }
}
