/**
 * The memtable's hash index: key hash to record number, for point lookups. The record tree
 * orders the records for cursors; a `get` only needs equality, and a descent of an ordered index
 * costs 18 comparisons or more at 200k keys (a B+ tree's; a skiplist's about twice as many), each
 * in a different node. Measured before this index, a random `getSync`
 * on a live DB (180k keys in the memtable, bench/lookup.ts --live) spent a third of its CPU time
 * in that descent; it is about one probe here.
 *
 * Open addressing with linear probing over an `Int32Array` of record numbers plus one (0: empty),
 * at most half full; the slot of a hash is its Fibonacci hash (`hash * 0x9E3779B1`, top bits).
 * Each record's hash is kept, by record number, to reject most slots without reading the arena
 * and to rehash without it when the table doubles. The hash is the lookup's key hash
 * (`util/hash.ts`, the bloom filters' too): the DB hashes a key once per lookup.
 *
 * One slot per key, holding its newest stored record: the memtable calls {@link HashIndex.add}
 * for a new key and {@link HashIndex.replace} when a put replaces a key's record, after its record tree
 * took the record (a put ignored as older never reaches the index). Frozen views share the index
 * with the live memtable, which keeps changing it: a view trusts an answer only if the record was
 * appended before its freeze (then it is the view's record for the key too), and asks its record tree
 * otherwise (see `memtable.ts`).
 *
 * @module
 */
import type { Arena } from './arena.js';

const FIRST_CAPACITY = 64;
/** Bytes per key charged for the index: 4 for the record's hash, 8 to 16 for the slots (half to quarter full). */
export const HASH_INDEX_BYTES_PER_ENTRY = 16;

/** Old slots moved into the new table per add while a doubling is under way (see {@link HashIndex}). */
const MOVES_PER_ADD = 8;
/** An old slot whose key moved to the new table: probes go on past it. */
const MOVED = -1;

/**
 * See the module comment. The table doubles incrementally, so that no put pays for placing every
 * key again (that took 13 ms of CPU at 262,144 keys, 29 ms at 524,288): a doubling makes the new
 * table and leaves the keys in the old one, and each later {@link add} moves the keys of
 * {@link MOVES_PER_ADD} old slots (marking their slots moved, not empty, since an empty slot would
 * cut the probe sequences that run across it; empty slots stay empty, so every probe of the old
 * table still ends). The move ends long before the new table is half full; until
 * then a lookup that misses the new table asks the old one.
 */
export class HashIndex {
  /** Record number + 1 per slot; 0 is empty. */
  #slots = new Int32Array(FIRST_CAPACITY);
  /** 32 - log2(slots): the slot of a hash is the top bits of its Fibonacci hash. */
  #shift = 32 - Math.log2(FIRST_CAPACITY);
  /** The table before the doubling under way, or undefined; its slots below #moved are moved. */
  #old: Int32Array | undefined;
  #oldShift = 0;
  #moved = 0;
  /** Each record's hash, by record number. */
  #hashes = new Uint32Array(256);
  #count = 0;

  /** Number of keys indexed. */
  get size(): number {
    return this.#count;
  }

  /** Slots in the table (a power of two). @internal For tests. */
  get capacity(): number {
    return this.#slots.length;
  }

  /** True while a doubling is moving keys. @internal For tests. */
  get moving(): boolean {
    return this.#old !== undefined;
  }

  /** Indexes `record`, the first record of a key not in the index, under `hash`. */
  add(record: number, hash: number): void {
    if (this.#old !== undefined) this.#move(MOVES_PER_ADD);
    else if (2 * (this.#count + 1) > this.#slots.length) this.#grow();
    this.#setHash(record, hash);
    place(this.#slots, this.#shift, record, hash);
    this.#count++;
  }

  /** Makes the slot of record `old` (indexed, under `hash`) hold `record`, the key's new record. */
  replace(old: number, record: number, hash: number): void {
    this.#setHash(record, hash);
    if (repoint(this.#slots, this.#shift, hash, old, record)) return;
    if (this.#old !== undefined && repoint(this.#old, this.#oldShift, hash, old, record)) return;
    throw new Error(`memtable hash index: record ${old} is not indexed under its hash (a bug)`);
  }

  /** The record indexed for `key` (whose {@link keyHash} is `hash`) in `arena`, or -1. */
  find(hash: number, key: Uint8Array, arena: Arena): number {
    hash >>>= 0;
    const r = this.#probe(this.#slots, this.#shift, hash, key, arena);
    if (r >= 0 || this.#old === undefined) return r;
    return this.#probe(this.#old, this.#oldShift, hash, key, arena);
  }

  #probe(slots: Int32Array, shift: number, hash: number, key: Uint8Array, arena: Arena): number {
    const hashes = this.#hashes;
    const mask = slots.length - 1;
    for (let i = Math.imul(hash, 0x9e3779b1) >>> shift; ; i = (i + 1) & mask) {
      const s = slots[i]!;
      if (s === 0) return -1;
      if (s > 0 && hashes[s - 1] === hash && arena.keyEquals(s - 1, key)) return s - 1;
    }
  }

  #setHash(record: number, hash: number): void {
    if (record >= this.#hashes.length) {
      const grown = new Uint32Array(Math.max(2 * this.#hashes.length, record + 1));
      grown.set(this.#hashes);
      this.#hashes = grown;
    }
    this.#hashes[record] = hash;
  }

  /** Starts a doubling: a new, empty table; the keys stay in the old one until moved. */
  #grow(): void {
    this.#old = this.#slots;
    this.#oldShift = this.#shift;
    this.#moved = 0;
    this.#slots = new Int32Array(2 * this.#slots.length);
    this.#shift--;
  }

  /** Moves the keys of the next `n` old slots to the new table; ends the doubling after the last. */
  #move(n: number): void {
    const old = this.#old!;
    const hashes = this.#hashes;
    const end = Math.min(old.length, this.#moved + n);
    for (let i = this.#moved; i < end; i++) {
      const s = old[i]!;
      if (s <= 0) continue; // empty slots stay empty: probes of the old table must still end
      place(this.#slots, this.#shift, s - 1, hashes[s - 1]!);
      old[i] = MOVED;
    }
    this.#moved = end;
    if (end === old.length) this.#old = undefined;
  }
}

function place(slots: Int32Array, shift: number, record: number, hash: number): void {
  const mask = slots.length - 1;
  let i = Math.imul(hash, 0x9e3779b1) >>> shift;
  while (slots[i] !== 0) i = (i + 1) & mask;
  slots[i] = record + 1;
}

/** Makes the slot holding record `old` (probing from `hash`) hold `record`; false if none does. */
function repoint(slots: Int32Array, shift: number, hash: number, old: number, record: number): boolean {
  const mask = slots.length - 1;
  for (let i = Math.imul(hash, 0x9e3779b1) >>> shift; ; i = (i + 1) & mask) {
    const s = slots[i]!;
    if (s === old + 1) {
      slots[i] = record + 1;
      return true;
    }
    if (s === 0) return false;
  }
}
