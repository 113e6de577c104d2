/**
 * The memtable: where writes live, sorted, after the WAL has made them durable and before a flush
 * settles them into a table.
 *
 * Entries are records in an append-only arena of `SharedArrayBuffer` chunks (`arena.ts`, layout
 * in `arena-format.ts`), after Pebble's arenaskl and RocksDB's InlineSkipList. A B+ tree of
 * record numbers whose nodes live in typed arrays (`record-tree.ts`) orders them, with eight key
 * bytes per entry beside each record number that settle most comparisons (the keys in the arena
 * settle the rest). The garbage collector sees a few hundred chunks and a few dozen typed arrays,
 * not an object, a string and two byte arrays per entry, nor (as with the
 * B+ tree of record numbers that came between) a node object and an array per 20-odd entries.
 * Measured with `bench/memtable.ts` on Node 20 (this 2-core VM, shared and loaded: ranges over
 * three runs), 1M random 16 B keys with 100 B values, against the B+ tree of latin1 strings to
 * entry objects that came first:
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
 * The arena column is the arena with the B+ tree of record numbers (sorted-btree, nodes as
 * objects). Against it, a skiplist in typed arrays (session 8; replaced by the typed-array tree)
 * (A/B, the two builds alternating, medians of 3 runs; this VM at a load average of 13-15, so
 * only the figures that do not depend on the load mean much). bench/memgc.ts, the `concurrent`
 * workload of bench:db (64 puts in flight, 1M random fills then 1M random overwrites, 64 MiB
 * memtable), the main thread's collections by V8's `--trace-gc-nvp`:
 *
 * |                                     | B+ tree             | skiplist            |
 * | ----------------------------------- | ------------------- | ------------------- |
 * | bytes surviving scavenges           | 67 MB               | 26 MB               |
 * | bytes promoted to the old generation| 65.5 MB             | 21.7 MB             |
 * | scavenges / mark-compacts           | 292 / 21            | 286 / 18            |
 * | puts per CPU-second                 | 36.1k               | 36.6k               |
 * | GC pauses, wall clock: total        | 7.6 s               | 5.8 s               |
 * | pauses over 2 ms / over 5 ms        | 282 / 211           | 213 / 169           |
 *
 * A memtable alone, 400k random inserts then 400k overwrites with nothing else allocating: 8.5 MB
 * promoted and 11.4 MB of old space with the tree, 0.5 MB and 3.4 MB with the skiplist. The
 * price is the descent: about 37 comparator steps at 400k keys against the tree's 19, each a
 * cache miss or two, so `bench/memtable.ts` (400k random keys, runs alternating) gives 108k-134k
 * inserts per CPU-second (4 runs) against the tree's 128k-140k (3 runs); gets go through the hash
 * index either way (425k-546k per CPU-second); a frozen scan, which steps over the versions a
 * view does not see without comparing keys, 160k entries/s against 117k-176k (wall clock).
 * Putting each node's key bytes next to its links (one cache line per step of a descent instead
 * of three or four) then took a memtable put from 5.9-6.8 us to 4.7-5.0 us and a cursor's seek
 * from 7.8-9.3 us to 5.5-5.7 us (500k random keys then 500k overwrites, 3 runs alternating, a
 * quiet machine). The typed-array B+ tree that replaced the skiplist (`record-tree.ts`: a
 * descent is a binary search in 3 or 4 nodes whose key bytes are contiguous, not ~37 random
 * nodes) took an insert from 3.4-3.7 to 2.0-2.5 us, a seek from 4.2-5.0 to 2.1-2.3 us and a step
 * of a scan from 0.29-0.31 to 0.09-0.13 us (500k random keys, then 250k overwrites; index and
 * arena alone, 3 runs alternating), and DB puts with 64 in flight from 106-110k to 129-157k/s.
 *
 * Entries are made on demand (an object and a view or two per entry read), so a full scan costs
 * about what it did (0.8x-1.5x the old one's speed from run to run).
 *
 * Point lookups go through a hash index (`hash-index.ts`: key hash to record number, kept beside
 * the tree) rather than down the tree: one probe instead of a descent. The
 * DB's lookup ({@link MemtableReader.find}) takes the key's hash from its caller, which hashes
 * once for the memtables and every table's bloom filter, and fills a `Found` (the value as a
 * range of an arena chunk) instead of making an entry and a view.
 *
 * One entry per key. A `put` whose seq is `>=` the stored entry's replaces it (equal seqs: the
 * later call wins, as within one batch); an older seq is ignored and `put` returns false. This
 * makes replaying a WAL over a memtable idempotent. A put appends its record and links it in the
 * tree in front of the key's older records, which stay (in the arena and in the tree:
 * a frozen view may still read them; readers skip them) until the memtable is dropped.
 *
 * {@link Memtable.freeze} returns an immutable view in O(1): the number of records appended so
 * far. Later records are linked into the same tree, and the view skips every record at or past
 * its number, so it reads the contents as they were. Cursors always run over such a view, so
 * writes during an iteration never disturb it. {@link Memtable.seal} ends a memtable's writes
 * and gives its last view, whose {@link FrozenMemtable.flushSource} hands the arena, the record
 * addresses and the tree's leaves (all shared memory) to a worker thread, which lists the
 * entries in key order by walking the leaves (`flush-source.ts`).
 *
 * `put` copies the entry's bytes into the arena: the caller may reuse its arrays. The entries
 * handed out (`get`, cursors) are made on demand; their key and value are views into the arena,
 * which must not be modified.
 *
 * @module
 */
import { type CursorOptions, type Entry, type EntryCursor, checkKey, normalizeEntry, positionCursor, validateEntry } from '../entry.js';
import type { Found } from '../found.js';
import { hash32, KEY_HASH_SEED, keyHash } from '../util/hash.js';
import { Arena, type ArenaMark, PROBE } from './arena.js';
import { HASH_INDEX_BYTES_PER_ENTRY, HashIndex } from './hash-index.js';
import type { FlushSource } from './flush-source.js';
import { RecordTree, TREE_BYTES_PER_RECORD } from './record-tree.js';

/** Bytes charged per key for the hash index ({@link HASH_INDEX_BYTES_PER_ENTRY}). */
export const INDEX_BYTES_PER_ENTRY = HASH_INDEX_BYTES_PER_ENTRY;
/** Bytes charged per record kept for the tree ({@link TREE_BYTES_PER_RECORD}), on top of the arena's. */
export const INDEX_BYTES_PER_RECORD = TREE_BYTES_PER_RECORD;

/** What a write to a sealed memtable throws. */
function sealedError(): Error {
  return new Error('internal error: a write to a sealed memtable (Memtable.seal)');
}

/** Read-only operations shared by the live memtable and its frozen views. */
abstract class MemtableReader {
  /** @internal */
  protected abstract tree(): RecordTree;
  /** @internal */
  protected abstract store(): Arena;
  /** @internal The records this reader sees are those below this number. */
  protected abstract limit(): number;
  /** @internal The number of `key`'s record (`hash` is its `keyHash`), or -1. */
  protected abstract record(key: Uint8Array, hash: number): number;

  /**
   * The entry stored for `key` (a put or a tombstone), or `undefined` if there is none. The
   * entry's key is `key` itself (the same bytes), its value a view into the arena.
   */
  get(key: Uint8Array): Entry | undefined {
    checkKey(key);
    const record = this.record(key, keyHash(key));
    return record < 0 ? undefined : this.store().entry(record, key);
  }

  /**
   * @internal The DB's point lookup: {@link get} for a checked key whose `keyHash` (`util/hash.ts`)
   * is `hash`, filling `out` (the value as a range of an arena chunk: read it, never modify it)
   * instead of making an entry. True if the memtable holds the key (a put or a tombstone).
   */
  find(key: Uint8Array, hash: number, out: Found): boolean {
    const record = this.record(key, hash);
    if (record < 0) return false;
    this.store().recordInto(record, out);
    return true;
  }

  /** Number of keys (entries). */
  abstract get size(): number;

  /** The smallest key, or `undefined` when empty. */
  get smallestKey(): Uint8Array | undefined {
    const r = this.tree().first(this.limit());
    return r < 0 ? undefined : this.store().entry(r).key;
  }

  /** The largest key, or `undefined` when empty. */
  get largestKey(): Uint8Array | undefined {
    const r = this.tree().last(this.limit());
    return r < 0 ? undefined : this.store().entry(r).key;
  }
}

/**
 * An immutable view of a memtable at the moment of {@link Memtable.freeze}: what a flush writes
 * out, and what an iterator reads while the memtable takes new writes.
 */
export class FrozenMemtable extends MemtableReader implements Iterable<Entry> {
  readonly #tree: RecordTree;
  readonly #arena: Arena;
  readonly #mark: ArenaMark;
  readonly #index: HashIndex;
  readonly #size: number;
  readonly #sealed: boolean;

  /** @internal */
  constructor(
    tree: RecordTree,
    arena: Arena,
    index: HashIndex,
    mark: ArenaMark,
    sealed: boolean,
    size: number,
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
    this.#index = index;
    this.#mark = mark;
    this.#sealed = sealed;
    this.#size = size;
  }

  /** Number of keys (entries) at the freeze. */
  get size(): number {
    return this.#size;
  }

  /** @internal */
  protected tree(): RecordTree {
    return this.#tree;
  }

  /** @internal */
  protected store(): Arena {
    return this.#arena;
  }

  /** @internal */
  protected limit(): number {
    return this.#mark.records;
  }

  /**
   * @internal The live memtable's index holds each key's newest record: one appended before the
   * freeze is this view's record for the key too. A newer one (the key was put since) leaves the
   * answer to the tree; no record at all means no key, then as now.
   */
  protected record(key: Uint8Array, hash: number): number {
    const arena = this.#arena;
    const r = this.#index.find(hash, key, arena);
    if (r < this.#mark.records) return r;
    arena.setProbe(key);
    const s = this.#tree.seek(PROBE, this.#mark.records);
    return s >= 0 && arena.compare(s, PROBE) === 0 ? s : -1;
  }

  /** A cursor positioned as `options` say (by default at the first entry). */
  iterator(options?: CursorOptions): MemtableCursor {
    const cursor = new MemtableCursor(this.#tree, this.#arena, this.#mark.records, options?.reverse === true);
    positionCursor(cursor, options);
    return cursor;
  }

  /** Every entry in ascending key order. */
  *[Symbol.iterator](): Iterator<Entry> {
    const arena = this.#arena;
    const tree = this.#tree;
    const limit = this.#mark.records;
    for (let r = tree.first(limit); r >= 0; r = tree.next(r, limit)) yield arena.entry(r);
  }

  /**
   * The arena's chunks and the bytes used in each, as of the freeze: every record the memtable
   * received until then, in append order (see `arena-format.ts`). The chunks are shared, not
   * copied; their bytes up to these ends never change.
   */
  arena(): { chunks: SharedArrayBuffer[]; ends: number[] } {
    return this.#arena.chunksAt(this.#mark);
  }

  /**
   * What a reader in another thread needs to list this view's entries in key order without the
   * tree object, all in shared memory (see `flush-source.ts`). Only for the view
   * {@link Memtable.seal} returns: the tree and the address table of a memtable still taking
   * writes change under such a reader. Throws otherwise.
   */
  flushSource(): FlushSource {
    if (!this.#sealed) throw new Error('internal error: flushSource() of a memtable that was not sealed');
    return { arena: this.arena(), addresses: this.#arena.addressTable(), order: this.#tree.order(this.#mark.records) };
  }
}

/** A sorted, mutable in-memory table with one entry per key. See the module comment. */
export class Memtable extends MemtableReader {
  readonly #arena = new Arena();
  readonly #index = new HashIndex();
  readonly #tree = new RecordTree(this.#arena);
  #size = 0;
  /** Set by {@link seal}: the memtable takes no more writes. */
  #sealed = false;
  #minSeq = Infinity;
  #maxSeq = -1;

  /** Number of keys (entries). */
  get size(): number {
    return this.#size;
  }

  /** @internal */
  protected tree(): RecordTree {
    return this.#tree;
  }

  /** @internal */
  protected store(): Arena {
    return this.#arena;
  }

  /** @internal */
  protected limit(): number {
    return this.#arena.records;
  }

  /** @internal */
  protected record(key: Uint8Array, hash: number): number {
    return this.#index.find(hash, key, this.#arena);
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
    if (this.#sealed) throw sealedError();
    return this.#link(this.#arena.append(stored), stored.seq, keyHash(stored.key));
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
    if (this.#sealed) throw sealedError();
    const hash = hash32(src, KEY_HASH_SEED, keyAt, keyAt + keyLength);
    return this.#link(this.#arena.appendFrom(src, keyAt, keyLength, valueLength, seq, isDelete, expiresAt), seq, hash);
  }

  /** Puts the record just appended (its key hashing to `hash`) into the tree and the hash index (see {@link insertChecked}). */
  #link(record: number, seq: number, hash: number): boolean {
    const arena = this.#arena;
    // One descent, for a new key and an existing one alike: a key's new record goes in front of its old ones.
    const old = this.#tree.prepare(record);
    if (old >= 0 && arena.seq(old) > seq) {
      arena.truncate(record);
      return false;
    }
    this.#tree.link(record);
    if (old >= 0) this.#index.replace(old, record, hash);
    else {
      this.#index.add(record, hash);
      this.#size++;
    }
    if (seq < this.#minSeq) this.#minSeq = seq;
    if (seq > this.#maxSeq) this.#maxSeq = seq;
    return true;
  }

  /**
   * Memory held, in bytes: the arena's chunks (overwritten records included: they stay until the
   * memtable is dropped), {@link INDEX_BYTES_PER_RECORD} per record for the tree and
   * {@link INDEX_BYTES_PER_ENTRY} per key for the hash index. What the DB compares with its flush
   * threshold.
   */
  get approximateBytes(): number {
    return this.#arena.bytesHeld + this.#tree.records * INDEX_BYTES_PER_RECORD + this.#size * INDEX_BYTES_PER_ENTRY;
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
    return this.#view();
  }

  /**
   * Ends the memtable's writes (a later put throws) and returns its last view, the one that
   * {@link FrozenMemtable.flushSource} can hand to another thread: what the DB does when the
   * memtable is full and a new one takes the writes.
   */
  seal(): FrozenMemtable {
    this.#sealed = true;
    return this.#view();
  }

  #view(): FrozenMemtable {
    const empty = this.#maxSeq < 0;
    return new FrozenMemtable(
      this.#tree,
      this.#arena,
      this.#index,
      this.#arena.mark(),
      this.#sealed,
      this.#size,
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
 * A cursor over a frozen view: the records below `limit` of a record tree. A step forward is the
 * next slot of a leaf or a few (the key's older versions and the records the view does not see
 * are skipped), a step back the previous; a seek is one descent.
 */
export class MemtableCursor implements EntryCursor {
  readonly #tree: RecordTree;
  readonly #arena: Arena;
  readonly #limit: number;
  readonly #reverse: boolean;
  #record = -1;
  #current: Entry | undefined;

  /** @internal */
  constructor(tree: RecordTree, arena: Arena, limit: number, reverse: boolean) {
    this.#tree = tree;
    this.#arena = arena;
    this.#limit = limit;
    this.#reverse = reverse;
  }

  get current(): Entry | undefined {
    return this.#current;
  }

  #at(record: number): Entry | undefined {
    this.#record = record;
    this.#current = record < 0 ? undefined : this.#arena.entry(record);
    return this.#current;
  }

  seek(key: Uint8Array): Entry | undefined {
    checkKey(key);
    this.#arena.setProbe(key);
    return this.#at(this.#tree.seek(PROBE, this.#limit));
  }

  seekForPrev(key: Uint8Array): Entry | undefined {
    checkKey(key);
    this.#arena.setProbe(key);
    return this.#at(this.#tree.seekForPrev(PROBE, this.#limit));
  }

  seekToFirst(): Entry | undefined {
    return this.#at(this.#tree.first(this.#limit));
  }

  seekToLast(): Entry | undefined {
    return this.#at(this.#tree.last(this.#limit));
  }

  next(): Entry | undefined {
    if (this.#record < 0) return undefined;
    return this.#at(this.#tree.next(this.#record, this.#limit));
  }

  prev(): Entry | undefined {
    if (this.#record < 0) return undefined;
    return this.#at(this.#tree.prev(this.#record, this.#limit));
  }

  *[Symbol.iterator](): Iterator<Entry> {
    for (let e = this.#current; e !== undefined; e = this.#reverse ? this.prev() : this.next()) yield e;
  }
}
