/**
 * The table cursor: a bidirectional {@link EntryCursor} over one table, block by block.
 *
 * The cursor decodes the data block it stands in whole (keys and values copied out) and walks
 * that array; moving past either end loads the neighbouring block through the reader, from the
 * block cache or the file. Each block loaded is checked against the index: its first key above
 * the previous block's separator, its last key at most its own.
 *
 * @module
 */
import { type Entry, type EntryCursor, checkKey, compareKeys } from '../entry.js';
import type { Block } from './block.js';
import { corrupt } from './coding.js';
import { decodeEntries } from './data-entry.js';
import type { TableIndex } from './index-block.js';

/** What a cursor needs from its reader. @internal */
export interface BlockSource {
  readonly index: TableIndex;
  /** Data block `i`, verified; from the cache, or read (and cached if `fillCache`). */
  dataBlock(i: number, fillCache: boolean): Block;
}

/** A cursor over one table. Create it with `TableReader.iterator`. */
export class TableCursor implements EntryCursor {
  readonly #source: BlockSource;
  readonly #reverse: boolean;
  readonly #fillCache: boolean;
  readonly #views: boolean;
  #blockIndex = -1;
  #entries: Entry[] = [];
  #pos = -1;
  #current: Entry | undefined;

  /** @internal */
  constructor(source: BlockSource, reverse: boolean, fillCache: boolean, views = false) {
    this.#source = source;
    this.#reverse = reverse;
    this.#fillCache = fillCache;
    this.#views = views;
  }

  get current(): Entry | undefined {
    return this.#current;
  }

  #invalidate(): undefined {
    this.#blockIndex = -1;
    this.#entries = [];
    this.#pos = -1;
    this.#current = undefined;
    return undefined;
  }

  /** Loads data block `i` (the cursor is unpositioned if this throws). */
  #load(i: number): void {
    this.#invalidate();
    const index = this.#source.index;
    const block = this.#source.dataBlock(i, this.#fillCache);
    const entries = decodeEntries(block, this.#views);
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first === undefined || last === undefined) throw corrupt('empty data block', block.where);
    const aboveSeparator = compareKeys(last.key, index.separator(i)) > 0;
    const belowPrevious = i > 0 && compareKeys(first.key, index.separator(i - 1)) <= 0;
    if (aboveSeparator || belowPrevious) {
      throw corrupt('data block keys outside their index range', block.where);
    }
    this.#blockIndex = i;
    this.#entries = entries;
  }

  #at(pos: number): Entry {
    this.#pos = pos;
    this.#current = this.#entries[pos]!;
    return this.#current;
  }

  seek(key: Uint8Array): Entry | undefined {
    checkKey(key);
    const index = this.#source.index;
    const i = index.find(key);
    if (i >= index.count) return this.#invalidate();
    this.#load(i);
    const entries = this.#entries;
    let lo = 0;
    let hi = entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(entries[mid]!.key, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo < entries.length) return this.#at(lo);
    // `key` is above this block's last key but not above its separator: the next block starts higher.
    if (i + 1 >= index.count) return this.#invalidate();
    this.#load(i + 1);
    return this.#at(0);
  }

  seekForPrev(key: Uint8Array): Entry | undefined {
    checkKey(key);
    const e = this.seek(key);
    if (e === undefined) return this.seekToLast();
    if (compareKeys(e.key, key) === 0) return e;
    return this.prev();
  }

  seekToFirst(): Entry | undefined {
    if (this.#source.index.count === 0) return this.#invalidate();
    this.#load(0);
    return this.#at(0);
  }

  seekToLast(): Entry | undefined {
    const n = this.#source.index.count;
    if (n === 0) return this.#invalidate();
    this.#load(n - 1);
    return this.#at(this.#entries.length - 1);
  }

  next(): Entry | undefined {
    if (this.#current === undefined) return undefined;
    if (this.#pos + 1 < this.#entries.length) return this.#at(this.#pos + 1);
    const i = this.#blockIndex + 1;
    if (i >= this.#source.index.count) return this.#invalidate();
    this.#load(i);
    return this.#at(0);
  }

  prev(): Entry | undefined {
    if (this.#current === undefined) return undefined;
    if (this.#pos > 0) return this.#at(this.#pos - 1);
    const i = this.#blockIndex - 1;
    if (i < 0) return this.#invalidate();
    this.#load(i);
    return this.#at(this.#entries.length - 1);
  }

  *[Symbol.iterator](): Iterator<Entry> {
    for (let e = this.#current; e !== undefined; e = this.#reverse ? this.prev() : this.next()) yield e;
  }
}
