/**
 * The memtable's arena: an append-only store of entry records in `SharedArrayBuffer` chunks (see
 * `arena-format.ts` for the layout), the comparator that orders records by key for the
 * memtable's record tree (`record-tree.ts`), and eight bytes of each key that settle most comparisons.
 *
 * Chunks grow from {@link FIRST_CHUNK_SIZE} by doubling up to {@link CHUNK_SIZE}, so an empty or
 * small memtable (the DB makes a new one at every freeze; tests make them with a 1 KiB threshold)
 * holds little. A record that does not fit in the last chunk starts a new one; a record larger
 * than the next chunk size gets a chunk of exactly its size. Only the last chunk takes records, so
 * chunk order is append order and a reader needs nothing but the chunks and their ends; the price
 * is the unused tail of a chunk left behind, less than the record that did not fit.
 *
 * Records are numbered in append order; a typed array indexed by record number holds each
 * record's address. Eight bytes of a record's key ({@link Arena.keyHi}, {@link Arena.keyLo}: two
 * big-endian u32s, zero-padded) settle most comparisons on numbers; the record tree keeps a copy
 * beside each record number in its nodes, and compares keys in the chunks only when those are equal.
 * The eight bytes are the ones after the prefix that every key in the arena shares (`skip`
 * bytes, at most {@link MAX_SKIP}): keys such as zero-padded decimals ("0000000001234567", the
 * benchmarks' keys) or "user:..." share their first bytes, and a prefix of those bytes never
 * settles anything. With the first four bytes as the prefix, 16 B decimal keys cost 6.6 us per
 * memtable insert against 2.4 us for random keys (300k inserts, CPU time, this loaded 2-core
 * VM), and the comparisons of the B+ tree that was the index then were 46% of the main thread's
 * CPU time under 64 concurrent puts. A key that shares less of the prefix than `skip` lowers
 * it, and every record's eight bytes change: {@link Arena.keyEpoch} moves, and the tree reads
 * them again (one pass over its nodes, at most `MAX_SKIP` times in an arena's life, nearly always
 * while it is small).
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
import type { Found } from '../found.js';
import {
  ADDRESS_STRIDE,
  compareRecordKeys,
  decodeRecord,
  encodeRecord,
  encodeRecordFrom,
  entryRecordSize,
  recordSize,
  RECORD_HEADER_SIZE,
  recordInto,
  recordKeyEquals,
  recordSeq,
} from './arena-format.js';
import { readU32LE as readU32 } from '../util/bytes.js';

/** Size of an arena's first chunk. */
export const FIRST_CHUNK_SIZE = 32 * 1024;
/** Size of an arena's chunks once grown (1 MiB, the address stride). */
export const CHUNK_SIZE = ADDRESS_STRIDE;
/** Bytes per record in the per-record array: its address (an f64). */
export const RECORD_INDEX_BYTES = 8;
/**
 * Most bytes of shared key prefix skipped before the eight bytes {@link Arena.keyHi} and
 * {@link Arena.keyLo} give: each new key is checked against that many bytes.
 */
export const MAX_SKIP = 64;
/** Records the per-record arrays have room for at first. */
const FIRST_RECORD_CAPACITY = 256;
/**
 * The record number that stands for the key last given to {@link Arena.setProbe}: lookups of a
 * key that is not in the arena pass it to the record tree, which never links it.
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
  /**
   * Address (`chunk * ADDRESS_STRIDE + offset`) of each record, by record number; in shared
   * memory, for a worker that reads a sealed memtable's records (see {@link addressTable}).
   */
  #addresses = new Float64Array(new SharedArrayBuffer(0));
  #count = 0;
  /**
   * The first `#skip` bytes of `#shared` are a prefix of every key in the arena (when it holds
   * none, `#skip` is -1: the first key sets it). Only ever lowered.
   */
  #shared = new Uint8Array(MAX_SKIP);
  #skip = -1;
  #keyEpoch = 0;
  /** A record header and the probe key, so that the comparator reads {@link PROBE} as any record. */
  #probe = new Uint8Array(new SharedArrayBuffer(256));
  #probeView = new DataView(this.#probe.buffer);
  #probeHi = 0;
  #probeLo = 0;
  /**
   * Orders two record numbers (or {@link PROBE}) by their keys, bytewise. A closure rather than a
   * method: the record tree calls it unbound.
   */
  readonly compare: (a: number, b: number) => number;

  constructor() {
    const views = this.#views;
    this.compare = (a: number, b: number): number => {
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

  /**
   * Bumped each time every record's eight key bytes change (the shared prefix got shorter): a
   * reader keeping copies of them ({@link Arena.keyHi}, {@link Arena.keyLo}) must take them again.
   */
  get keyEpoch(): number {
    return this.#keyEpoch;
  }

  /**
   * Key bytes `skip..skip+4` of record `r` (or of {@link PROBE}), big-endian, zero-padded, as a
   * u32: where two differ, so do the keys, in the same order. With {@link Arena.keyLo}, what the
   * record tree settles most comparisons on (the comparator reads the keys in the chunks).
   */
  keyHi(r: number): number {
    return r >= 0 ? this.#keyBytes(r, 0) : this.#probeHi;
  }

  /** Key bytes `skip+4..skip+8` of record `r` (or of {@link PROBE}): see {@link Arena.keyHi}. */
  keyLo(r: number): number {
    return r >= 0 ? this.#keyBytes(r, 4) : this.#probeLo;
  }

  /** Key bytes `skip+at..skip+at+4` of record `r`, big-endian, zero-padded. */
  #keyBytes(r: number, at: number): number {
    const address = this.#addresses[r]!;
    const c = Math.floor(address / ADDRESS_STRIDE);
    const chunk = this.#chunks[c]!;
    const o = address - c * ADDRESS_STRIDE;
    const skip = this.#skip + at;
    return bytesAt(chunk, o + RECORD_HEADER_SIZE + skip, readU32(chunk, o) - skip);
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
    this.#probeBytes();
  }

  /**
   * The probe's eight bytes. A probe need not share the arena's prefix: one that sorts before it
   * (or ends inside it) is before every record, and gets zeros; one after it gets ones. A tie on
   * those numbers goes on to the keys themselves, so either answer is exact.
   */
  #probeBytes(): void {
    const p = this.#probe;
    const n = this.#probeView.getUint32(0, true);
    const skip = Math.max(0, this.#skip);
    const shared = this.#shared;
    let i = 0;
    while (i < skip && i < n && p[RECORD_HEADER_SIZE + i] === shared[i]) i++;
    if (i === skip) {
      this.#probeHi = bytesAt(p, RECORD_HEADER_SIZE + skip, n - skip);
      this.#probeLo = bytesAt(p, RECORD_HEADER_SIZE + skip + 4, n - skip - 4);
    } else {
      const after = i < n && p[RECORD_HEADER_SIZE + i]! > shared[i]!;
      this.#probeHi = after ? 0xffff_ffff : 0;
      this.#probeLo = this.#probeHi;
    }
  }

  /**
   * Lowers `#skip` to the prefix `key` (`key[at..at+n)`) shares with the arena's keys (moving
   * {@link Arena.keyEpoch}: every record's eight bytes change). Before the first record, `key` sets the prefix.
   */
  #share(key: Uint8Array, at: number, n: number): void {
    const skip = this.#skip;
    const shared = this.#shared;
    if (skip < 0) {
      const m = Math.min(n, MAX_SKIP);
      for (let i = 0; i < m; i++) shared[i] = key[at + i]!;
      this.#skip = m;
      return;
    }
    let i = 0;
    while (i < skip && i < n && key[at + i] === shared[i]) i++;
    if (i === skip) return;
    this.#skip = i;
    this.#keyEpoch++;
    this.#probeBytes();
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
    return this.#index(c, at, entry.key, 0, entry.key.length);
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
    return this.#index(c, at, src, keyAt, keyLength);
  }

  /** Numbers the record just written at `at` of chunk `c`, whose key is `key[keyAt..keyAt+n)`. */
  #index(c: number, at: number, key: Uint8Array, keyAt: number, n: number): number {
    const r = this.#count;
    if (r === this.#addresses.length) this.#grow();
    this.#addresses[r] = c * ADDRESS_STRIDE + at;
    this.#count = r + 1;
    this.#share(key, keyAt, n);
    return r;
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
    const addresses = new Float64Array(new SharedArrayBuffer(capacity * Float64Array.BYTES_PER_ELEMENT));
    addresses.set(this.#addresses);
    this.#addresses = addresses;
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

  /** Whether record `n`'s key has exactly the bytes of `key`. */
  keyEquals(n: number, key: Uint8Array): boolean {
    const address = this.#addresses[n]!;
    const c = Math.floor(address / ADDRESS_STRIDE);
    return recordKeyEquals(this.#chunks[c]!, address - c * ADDRESS_STRIDE, key);
  }

  /** Fills `out` with record `n` (its value as a range of its chunk, see `recordInto`). */
  recordInto(n: number, out: Found): void {
    const address = this.#addresses[n]!;
    const c = Math.floor(address / ADDRESS_STRIDE);
    recordInto(this.#chunks[c]!, address - c * ADDRESS_STRIDE, out);
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

  /**
   * The address of each record by record number (at least {@link records} of them), in shared
   * memory. The array is replaced when it grows: a reader in another thread takes it once
   * nothing is appended any more.
   */
  addressTable(): Float64Array {
    return this.#addresses;
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

/** Bytes `b[at..at+4)` as a big-endian u32, of which only the first `left` (may be <= 0) belong to the key: the rest read as zeros. */
function bytesAt(b: Uint8Array, at: number, left: number): number {
  if (left >= 4) return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
  if (left <= 0) return 0;
  return ((b[at]! << 24) | (left > 1 ? b[at + 1]! << 16 : 0) | (left > 2 ? b[at + 2]! << 8 : 0)) >>> 0;
}
