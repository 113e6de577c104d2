/**
 * The memtable's arena: an append-only store of entry records in `SharedArrayBuffer` chunks (see
 * `arena-format.ts` for the layout), and the comparator that orders records by key for the
 * memtable's B+ tree, which holds record numbers (small integers) instead of objects.
 *
 * Chunks grow from {@link FIRST_CHUNK_SIZE} by doubling up to {@link CHUNK_SIZE}, so an empty or
 * small memtable (the DB makes a new one at every freeze; tests make them with a 1 KiB threshold)
 * holds little. A record that does not fit in the last chunk starts a new one; a record larger
 * than the next chunk size gets a chunk of exactly its size. Only the last chunk takes records, so
 * chunk order is append order and a reader needs nothing but the chunks and their ends; the price
 * is the unused tail of a chunk left behind, less than the record that did not fit.
 *
 * Records are numbered in append order. Two typed arrays indexed by record number hold each
 * record's address and the first four bytes of its key (big-endian, zero-padded): the comparator
 * settles most comparisons on those four bytes without touching the chunks, and numbers below
 * 2^31 stay V8 small integers in the tree's nodes (an address with a key prefix would not fit).
 * Measured in an A/B harness while choosing (200k 16 B keys in a bare B+ tree, CPU time, best of
 * 8 on this loaded 2-core VM): random keys, lookups 540k/s with the prefixes against 305k/s
 * comparing the keys in the chunks (375k/s for the tree of strings this replaced); keys sharing
 * their first 8 bytes, 320k/s against 380k/s (520k/s), the price of a prefix that never differs.
 * The keys are compared four bytes at a time (`compareRecordKeys`), which beat a byte loop by
 * 10-30% in the same harness. A prefix packed into the number the tree holds was as fast on random
 * keys but twice as slow on shared prefixes: past 2^31 a number is no V8 small integer, and the
 * tree's nodes hold and pass boxed doubles.
 *
 * Bytes once written below a chunk's end never change: frozen views of the memtable, the entries
 * handed out (views into the chunks) and a worker thread reading the chunks all rely on it. The
 * one exception, {@link Arena.truncate}, takes back the last record before anything saw it.
 *
 * @module
 */
import type { Entry } from '../entry.js';
import {
  ADDRESS_STRIDE,
  compareRecordKeys,
  decodeRecord,
  encodeRecord,
  encodeRecordFrom,
  entryRecordSize,
  keyPrefix,
  keyPrefixAt,
  recordSize,
  RECORD_HEADER_SIZE,
  recordSeq,
} from './arena-format.js';

/** Size of an arena's first chunk. */
export const FIRST_CHUNK_SIZE = 32 * 1024;
/** Size of an arena's chunks once grown (1 MiB, the address stride). */
export const CHUNK_SIZE = ADDRESS_STRIDE;
/** Bytes per record in the per-record arrays: an address (f64) and a key prefix (u32). */
export const RECORD_INDEX_BYTES = 12;
/** Records the per-record arrays have room for at first. */
const FIRST_RECORD_CAPACITY = 256;
/**
 * The record number that stands for the key last given to {@link Arena.setProbe}: lookups of a
 * key that is not in the arena pass it to the B+ tree, which never stores it.
 */
export const PROBE = -1;

/** Where an arena ended at some moment: enough to give its chunks as they were then. */
export interface ArenaMark {
  readonly records: number;
  readonly chunks: number;
  readonly lastEnd: number;
}

/** An append-only store of entry records. See the module comment. */
export class Arena {
  readonly #chunks: Uint8Array[] = [];
  /** The same chunks as `DataView`s, for the comparator. */
  readonly #views: DataView[] = [];
  /** Bytes used in each chunk; only the last one still grows. */
  readonly #ends: number[] = [];
  /** Sum of the sizes of every chunk but the last: memory held, used or not. */
  #closedBytes = 0;
  #nextSize = FIRST_CHUNK_SIZE;
  /** Address (`chunk * ADDRESS_STRIDE + offset`) of each record, by record number. */
  #addresses = new Float64Array(0);
  /** First four key bytes of each record, by record number (see `keyPrefix`). */
  #prefixes = new Uint32Array(0);
  #count = 0;
  /** A record header and the probe key, so that the comparator reads {@link PROBE} as any record. */
  #probe = new Uint8Array(new SharedArrayBuffer(256));
  #probeView = new DataView(this.#probe.buffer);
  #probePrefix = 0;
  /**
   * Orders two record numbers (or {@link PROBE}) by their keys, bytewise. A closure rather than a
   * method: the B+ tree calls it unbound.
   */
  readonly compare: (a: number, b: number) => number;

  constructor() {
    const views = this.#views;
    this.compare = (a: number, b: number): number => {
      const prefixes = this.#prefixes;
      const pa = a >= 0 ? prefixes[a]! : this.#probePrefix;
      const pb = b >= 0 ? prefixes[b]! : this.#probePrefix;
      if (pa !== pb) return pa < pb ? -1 : 1;
      // The same first four bytes (zero-padded): compare the keys themselves.
      const addresses = this.#addresses;
      let av: DataView;
      let ao: number;
      if (a >= 0) {
        const address = addresses[a]!;
        const c = Math.floor(address / ADDRESS_STRIDE);
        av = views[c]!;
        ao = address - c * ADDRESS_STRIDE;
      } else {
        av = this.#probeView;
        ao = 0;
      }
      let bv: DataView;
      let bo: number;
      if (b >= 0) {
        const address = addresses[b]!;
        const c = Math.floor(address / ADDRESS_STRIDE);
        bv = views[c]!;
        bo = address - c * ADDRESS_STRIDE;
      } else {
        bv = this.#probeView;
        bo = 0;
      }
      return compareRecordKeys(av, ao, bv, bo);
    };
  }

  /** Number of records appended (and not taken back). */
  get records(): number {
    return this.#count;
  }

  /** Makes {@link PROBE} stand for `key` (copied) until the next call. */
  setProbe(key: Uint8Array): void {
    const n = key.length;
    if (RECORD_HEADER_SIZE + n > this.#probe.length) {
      this.#probe = new Uint8Array(new SharedArrayBuffer(Math.max(RECORD_HEADER_SIZE + n, 2 * this.#probe.length)));
      this.#probeView = new DataView(this.#probe.buffer);
    }
    const p = this.#probe;
    this.#probeView.setUint32(0, n, true);
    if (n <= 32) for (let i = 0; i < n; i++) p[RECORD_HEADER_SIZE + i] = key[i]!;
    else p.set(key, RECORD_HEADER_SIZE);
    this.#probePrefix = keyPrefix(key);
  }

  /** Appends `entry`'s record (a valid entry, see `validateEntry`) and returns its record number. */
  append(entry: Entry): number {
    const size = entryRecordSize(entry);
    let c = this.#chunks.length - 1;
    let at = c < 0 ? 0 : this.#ends[c]!;
    if (c < 0 || this.#chunks[c]!.length - at < size) {
      c = this.#newChunk(size);
      at = 0;
    }
    encodeRecord(this.#chunks[c]!, at, entry);
    this.#ends[c] = at + size;
    const n = this.#count;
    if (n === this.#addresses.length) this.#grow();
    this.#addresses[n] = c * ADDRESS_STRIDE + at;
    this.#prefixes[n] = keyPrefix(entry.key);
    this.#count = n + 1;
    return n;
  }

  /**
   * Appends a record from bytes in `src` (see `encodeRecordFrom`: the key at `keyAt`, the value
   * right after it) and returns its record number. The arguments must be valid.
   */
  appendFrom(
    src: Uint8Array,
    keyAt: number,
    keyLength: number,
    valueLength: number,
    seq: number,
    isDelete: boolean,
    expiresAt: number | undefined,
  ): number {
    const size = recordSize(keyLength, valueLength, expiresAt !== undefined);
    let c = this.#chunks.length - 1;
    let at = c < 0 ? 0 : this.#ends[c]!;
    if (c < 0 || this.#chunks[c]!.length - at < size) {
      c = this.#newChunk(size);
      at = 0;
    }
    encodeRecordFrom(this.#chunks[c]!, at, src, keyAt, keyLength, valueLength, seq, isDelete, expiresAt);
    this.#ends[c] = at + size;
    const n = this.#count;
    if (n === this.#addresses.length) this.#grow();
    this.#addresses[n] = c * ADDRESS_STRIDE + at;
    this.#prefixes[n] = keyPrefixAt(src, keyAt, keyLength);
    this.#count = n + 1;
    return n;
  }

  #newChunk(size: number): number {
    const n = this.#chunks.length;
    if (n > 0) this.#closedBytes += this.#chunks[n - 1]!.length;
    let chunkSize = this.#nextSize;
    if (size > chunkSize) chunkSize = size;
    else if (chunkSize < CHUNK_SIZE) this.#nextSize = chunkSize * 2;
    const buffer = new SharedArrayBuffer(chunkSize);
    this.#chunks.push(new Uint8Array(buffer));
    this.#views.push(new DataView(buffer));
    this.#ends.push(0);
    return n;
  }

  /** Doubles the per-record arrays. Frozen views read the new ones: old records keep their values. */
  #grow(): void {
    const capacity = Math.max(FIRST_RECORD_CAPACITY, this.#addresses.length * 2);
    const addresses = new Float64Array(capacity);
    addresses.set(this.#addresses);
    const prefixes = new Uint32Array(capacity);
    prefixes.set(this.#prefixes);
    this.#addresses = addresses;
    this.#prefixes = prefixes;
  }

  /**
   * Takes back record `n`, which must be the last appended and referenced nowhere (a put the
   * memtable ignored). A chunk left empty is dropped.
   */
  truncate(n: number): void {
    const address = this.#addresses[n]!;
    const c = Math.floor(address / ADDRESS_STRIDE);
    const at = address - c * ADDRESS_STRIDE;
    this.#count = n;
    this.#ends[c] = at;
    if (at === 0 && c === this.#chunks.length - 1) {
      this.#chunks.pop();
      this.#views.pop();
      this.#ends.pop();
      if (c > 0) this.#closedBytes -= this.#chunks[c - 1]!.length;
    }
  }

  /** The seq of record `n`. */
  seq(n: number): number {
    const address = this.#addresses[n]!;
    const c = Math.floor(address / ADDRESS_STRIDE);
    return recordSeq(this.#chunks[c]!, address - c * ADDRESS_STRIDE);
  }

  /**
   * Record `n` as an entry whose key and value are views into its chunk; or whose key is `key`,
   * when given (an array with the same bytes, see `decodeRecord`).
   */
  entry(n: number, key?: Uint8Array): Entry {
    const address = this.#addresses[n]!;
    const c = Math.floor(address / ADDRESS_STRIDE);
    return decodeRecord(this.#chunks[c]!, address - c * ADDRESS_STRIDE, key);
  }

  /**
   * Memory held: the full size of every chunk but the last, the used part of that one, and the
   * per-record arrays' entries in use ({@link RECORD_INDEX_BYTES} per record; they hold up to as
   * much again unused after a doubling, left out as the last chunk's tail is).
   */
  get bytesHeld(): number {
    const n = this.#chunks.length;
    const chunks = n === 0 ? 0 : this.#closedBytes + this.#ends[n - 1]!;
    return chunks + this.#count * RECORD_INDEX_BYTES;
  }

  /** Where the arena ends now. */
  mark(): ArenaMark {
    const n = this.#chunks.length;
    return { records: this.#count, chunks: n, lastEnd: n === 0 ? 0 : this.#ends[n - 1]! };
  }

  /**
   * The chunks and their ends as they were at `mark`. Every chunk before the mark's last was
   * closed by then, so its end has not moved since.
   */
  chunksAt(mark: ArenaMark): { chunks: SharedArrayBuffer[]; ends: number[] } {
    const chunks: SharedArrayBuffer[] = [];
    const ends: number[] = [];
    for (let c = 0; c < mark.chunks; c++) {
      chunks.push(this.#chunks[c]!.buffer as SharedArrayBuffer);
      ends.push(c === mark.chunks - 1 ? mark.lastEnd : this.#ends[c]!);
    }
    return { chunks, ends };
  }
}
