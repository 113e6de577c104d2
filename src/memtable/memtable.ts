/**
 * The memtable: where writes live, sorted, after the WAL has made them durable and before a flush
 * settles them into a table.
 *
 * Entries are records in an append-only arena of `SharedArrayBuffer` chunks (`arena.ts`, layout
 * in `arena-format.ts`), after Pebble's arenaskl and RocksDB's InlineSkipList. A B+ tree
 * (`sorted-btree`) holds their record numbers, small integers, ordered by a comparator that
 * settles most comparisons on a 4-byte key prefix kept per record and reads the keys in the arena
 * otherwise. The garbage collector sees a few hundred chunks and the tree's nodes, not an object,
 * a string and two byte arrays per entry. Measured with `bench/memtable.ts` on Node 20 (this
 * 2-core VM, shared and loaded: ranges over three runs), 1M random 16 B keys with 100 B values,
 * against the B+ tree of latin1 strings to entry objects this replaced:
 *
 * |                                     | entry objects       | arena               |
 * | ----------------------------------- | ------------------- | ------------------- |
 * | held per entry: heap + array buffers| 444 B (3.8x raw)    | 163 B (1.4x raw)    |
 * | held per entry: RSS                 | 473-477 B           | 193-198 B           |
 * | inserts per CPU-second              | 88k-108k            | 189k-286k           |
 * | gets per CPU-second                 | 180k-230k           | 235k-259k           |
 * | GC during the 1M inserts            | 2.0-2.8 s           | 0.16-0.37 s         |
 * | longest GC pause during them        | 188-355 ms          | 17-70 ms            |
 *
 * Entries are made on demand (an object and a view or two per entry read), so a full scan costs
 * about what it did (0.8x-1.5x the old one's speed from run to run).
 *
 * One entry per key. A `put` whose seq is `>=` the stored entry's replaces it (equal seqs: the
 * later call wins, as within one batch); an older seq is ignored and `put` returns false. This
 * makes replaying a WAL over a memtable idempotent. A put appends its record and, for a key
 * already present, repoints the tree at it; the old record stays in the arena (a frozen view may
 * still read it) until the memtable is dropped.
 *
 * {@link Memtable.freeze} returns an immutable view in O(1): the tree is cloned copy-on-write, so
 * later writes copy the nodes they touch instead of changing the view's, and the arena only grows.
 * Cursors always run over such a view, so writes during an iteration never disturb it.
 * {@link FrozenMemtable.arena} gives the view's chunks, for a reader that sorts them itself
 * (`sortedArenaEntries`) without the tree, such as a worker thread.
 *
 * `put` copies the entry's bytes into the arena: the caller may reuse its arrays. The entries
 * handed out (`get`, cursors) are made on demand; their key and value are views into the arena,
 * which must not be modified.
 *
 * @module
 */
import * as btree from 'sorted-btree';
import { type CursorOptions, type Entry, type EntryCursor, checkKey, normalizeEntry, positionCursor, validateEntry } from '../entry.js';
import { Arena, type ArenaMark, PROBE } from './arena.js';

// sorted-btree is CommonJS with `exports.default`: Node's ESM loader exposes it as
// `default.default`, bundlers and tsx as `default`. Take whichever is the class.
// Keys are record numbers; no values (the tree then keeps no value arrays at all).
type BTreeOf = btree.default<number, undefined>;
type BTreeClass = new (entries: undefined, compare: (a: number, b: number) => number) => BTreeOf;
const btreeExports = btree as unknown as { default: BTreeClass | { default: BTreeClass } };
const BTree: BTreeClass = typeof btreeExports.default === 'function' ? btreeExports.default : btreeExports.default.default;

/**
 * Bytes charged per key for the B+ tree, on top of the arena's: its leaves hold one number per
 * key, 8 bytes, in nodes about two-thirds full, plus node objects. Measured on Node 20 with 1M
 * and 100k random 16 B keys: 19 to 21 bytes of heap per key.
 */
export const INDEX_BYTES_PER_ENTRY = 20;

/** Read-only operations shared by the live memtable and its frozen views. */
abstract class MemtableReader {
  /** @internal */
  protected abstract tree(): BTreeOf;
  /** @internal */
  protected abstract store(): Arena;

  /**
   * The entry stored for `key` (a put or a tombstone), or `undefined` if there is none. The
   * entry's key is `key` itself (the same bytes), its value a view into the arena.
   */
  get(key: Uint8Array): Entry | undefined {
    checkKey(key);
    const arena = this.store();
    const record = lookup(this.tree(), arena, key);
    return record === undefined ? undefined : arena.entry(record, key);
  }

  /** Number of keys (entries). */
  get size(): number {
    return this.tree().size;
  }

  /** The smallest key, or `undefined` when empty. */
  get smallestKey(): Uint8Array | undefined {
    const r = this.tree().minKey();
    return r === undefined ? undefined : this.store().entry(r).key;
  }

  /** The largest key, or `undefined` when empty. */
  get largestKey(): Uint8Array | undefined {
    const r = this.tree().maxKey();
    return r === undefined ? undefined : this.store().entry(r).key;
  }
}

/** Lookups fill this pair instead of making one (they run one at a time, synchronously). */
const pair: [number, undefined] = [0, undefined];

/** The number of `key`'s record in `tree`, or undefined. */
function lookup(tree: BTreeOf, arena: Arena, key: Uint8Array): number | undefined {
  arena.setProbe(key);
  const p = tree.getPairOrNextHigher(PROBE, pair);
  return p !== undefined && arena.compare(p[0], PROBE) === 0 ? p[0] : undefined;
}

/**
 * An immutable view of a memtable at the moment of {@link Memtable.freeze}: what a flush writes
 * out, and what an iterator reads while the memtable takes new writes.
 */
export class FrozenMemtable extends MemtableReader implements Iterable<Entry> {
  readonly #tree: BTreeOf;
  readonly #arena: Arena;
  readonly #mark: ArenaMark;

  /** @internal */
  constructor(
    tree: BTreeOf,
    arena: Arena,
    mark: ArenaMark,
    /** Memory held, in bytes, as {@link Memtable.approximateBytes} was at the freeze. */
    readonly approximateBytes: number,
    /** Smallest seq of any entry stored since the memtable was created (0 when empty). */
    readonly minSeq: number,
    /** Largest seq of any entry stored since the memtable was created (0 when empty). */
    readonly maxSeq: number,
  ) {
    super();
    this.#tree = tree;
    this.#arena = arena;
    this.#mark = mark;
  }

  /** @internal */
  protected tree(): BTreeOf {
    return this.#tree;
  }

  /** @internal */
  protected store(): Arena {
    return this.#arena;
  }

  /** A cursor positioned as `options` say (by default at the first entry). */
  iterator(options?: CursorOptions): MemtableCursor {
    const cursor = new MemtableCursor(this.#tree, this.#arena, options?.reverse === true);
    positionCursor(cursor, options);
    return cursor;
  }

  /** Every entry in ascending key order. */
  *[Symbol.iterator](): Iterator<Entry> {
    const arena = this.#arena;
    for (const [record] of this.#tree.entries(undefined, [0, undefined])) yield arena.entry(record);
  }

  /**
   * The arena's chunks and the bytes used in each, as of the freeze: every record the memtable
   * received until then, in append order (see `arena-format.ts`), from which `sortedArenaEntries`
   * gives exactly what iterating this view gives. The chunks are shared, not copied; their bytes
   * up to these ends never change.
   */
  arena(): { chunks: SharedArrayBuffer[]; ends: number[] } {
    return this.#arena.chunksAt(this.#mark);
  }
}

/** A sorted, mutable in-memory table with one entry per key. See the module comment. */
export class Memtable extends MemtableReader {
  readonly #arena = new Arena();
  #tree: BTreeOf = new BTree(undefined, this.#arena.compare);
  #minSeq = Infinity;
  #maxSeq = -1;

  /** @internal */
  protected tree(): BTreeOf {
    return this.#tree;
  }

  /** @internal */
  protected store(): Arena {
    return this.#arena;
  }

  /**
   * Stores `entry` unless the key holds an entry with a higher seq. Returns true if stored,
   * false if ignored as older. Throws `TypeError`/`RangeError` for an invalid entry.
   */
  put(entry: Entry): boolean {
    validateEntry(entry);
    return this.insertChecked(normalizeEntry(entry));
  }

  /**
   * @internal {@link put} without the checks, for an entry its caller built and checked itself
   * (the DB, whose WAL already holds the record: applying it must not be able to fail). `stored`
   * must be valid and in the shape {@link normalizeEntry} gives; its bytes are copied.
   */
  insertChecked(stored: Entry): boolean {
    return this.#index(this.#arena.append(stored), stored.seq);
  }

  /**
   * @internal {@link insertChecked} from bytes in a buffer (a DB write batch): the key is
   * `src[keyAt, keyAt + keyLength)`, the value the `valueLength` bytes right after it (0 for a
   * delete). Copied into the arena; no object is made per entry. The arguments must be valid.
   */
  insertFrom(
    src: Uint8Array,
    keyAt: number,
    keyLength: number,
    valueLength: number,
    seq: number,
    isDelete: boolean,
    expiresAt: number | undefined,
  ): boolean {
    return this.#index(this.#arena.appendFrom(src, keyAt, keyLength, valueLength, seq, isDelete, expiresAt), seq);
  }

  /** Puts the record just appended into the tree (see {@link insertChecked}). */
  #index(record: number, seq: number): boolean {
    const arena = this.#arena;
    // One descent for a new key (the common case); an existing key costs two more.
    if (!this.#tree.set(record, undefined, false)) {
      const old = this.#tree.getPairOrNextHigher(record, pair)![0];
      if (arena.seq(old) > seq) {
        arena.truncate(record);
        return false;
      }
      // sorted-btree's overwrite replaces the leaf's key as well as its value: the tree now holds
      // the new record. (An inner node may keep the old one as a separator: the same key.)
      this.#tree.set(record, undefined, true);
    }
    if (seq < this.#minSeq) this.#minSeq = seq;
    if (seq > this.#maxSeq) this.#maxSeq = seq;
    return true;
  }

  /**
   * Memory held, in bytes: the arena's chunks (overwritten records included: they stay until the
   * memtable is dropped) and {@link INDEX_BYTES_PER_ENTRY} per key for the tree. What the DB
   * compares with its flush threshold.
   */
  get approximateBytes(): number {
    return this.#arena.bytesHeld + this.#tree.size * INDEX_BYTES_PER_ENTRY;
  }

  /** Smallest seq stored so far, or `undefined` when nothing was stored. */
  get minSeq(): number | undefined {
    return this.#maxSeq < 0 ? undefined : this.#minSeq;
  }

  /** Largest seq stored so far, or `undefined` when nothing was stored. */
  get maxSeq(): number | undefined {
    return this.#maxSeq < 0 ? undefined : this.#maxSeq;
  }

  /**
   * An immutable view of the current contents, in O(1). Later writes to this memtable do not
   * show in it; the view stays valid for as long as it is referenced.
   */
  freeze(): FrozenMemtable {
    const view = this.#tree.clone();
    view.freeze();
    const empty = this.#maxSeq < 0;
    return new FrozenMemtable(
      view,
      this.#arena,
      this.#arena.mark(),
      this.approximateBytes,
      empty ? 0 : this.#minSeq,
      empty ? 0 : this.#maxSeq,
    );
  }

  /**
   * A cursor over a frozen view of the current contents, positioned as `options` say (by default
   * at the first entry). Writes made after this call are not seen by the cursor.
   */
  iterator(options?: CursorOptions): MemtableCursor {
    return this.freeze().iterator(options);
  }
}

/**
 * A cursor over a frozen B+ tree. Moving in one direction pulls from the tree's own iterator
 * (amortized O(1) per step); turning around starts a new one from the current key (O(log n)).
 */
export class MemtableCursor implements EntryCursor {
  readonly #tree: BTreeOf;
  readonly #arena: Arena;
  readonly #reverse: boolean;
  /** The tree's iterators fill this pair instead of making one per step. */
  readonly #pair: [number, undefined] = [0, undefined];
  #it: Iterator<[number, undefined]> | undefined;
  #itReverse = false;
  #record = -1;
  #current: Entry | undefined;

  /** @internal */
  constructor(tree: BTreeOf, arena: Arena, reverse: boolean) {
    this.#tree = tree;
    this.#arena = arena;
    this.#reverse = reverse;
  }

  get current(): Entry | undefined {
    return this.#current;
  }

  #pull(): Entry | undefined {
    const r = this.#it!.next();
    if (r.done === true) {
      this.#it = undefined;
      this.#record = -1;
      this.#current = undefined;
      return undefined;
    }
    this.#record = r.value[0];
    this.#current = this.#arena.entry(this.#record);
    return this.#current;
  }

  #start(it: Iterator<[number, undefined]>, reverse: boolean): Entry | undefined {
    this.#it = it;
    this.#itReverse = reverse;
    return this.#pull();
  }

  // The tree finds a start position when the iterator is made, so the probe is only read here.
  seek(key: Uint8Array): Entry | undefined {
    checkKey(key);
    this.#arena.setProbe(key);
    return this.#start(this.#tree.entries(PROBE, this.#pair), false);
  }

  seekForPrev(key: Uint8Array): Entry | undefined {
    checkKey(key);
    this.#arena.setProbe(key);
    return this.#start(this.#tree.entriesReversed(PROBE, this.#pair), true);
  }

  seekToFirst(): Entry | undefined {
    return this.#start(this.#tree.entries(undefined, this.#pair), false);
  }

  seekToLast(): Entry | undefined {
    return this.#start(this.#tree.entriesReversed(undefined, this.#pair), true);
  }

  next(): Entry | undefined {
    if (this.#record < 0) return undefined;
    if (this.#itReverse) {
      // entries(r) starts at r itself, which is present: skip it.
      this.#start(this.#tree.entries(this.#record, this.#pair), false);
    }
    return this.#pull();
  }

  prev(): Entry | undefined {
    if (this.#record < 0) return undefined;
    if (!this.#itReverse) return this.#start(this.#tree.entriesReversed(this.#record, this.#pair, true), true);
    return this.#pull();
  }

  *[Symbol.iterator](): Iterator<Entry> {
    for (let e = this.#current; e !== undefined; e = this.#reverse ? this.prev() : this.next()) yield e;
  }
}
