/**
 * The memtable's arena format: how entries lie in the arena's chunks, and how a reader that has
 * only the chunks (a worker thread flushing a frozen memtable, without its record tree) finds the
 * entries the memtable holds, in key order. Pure functions; nothing here allocates a chunk.
 *
 * An arena is a list of chunks (`SharedArrayBuffer`s, so another thread can read them without a
 * copy) and, for each, how many of its bytes are used. Records are appended one after another,
 * chunk after chunk: only the last chunk takes new records, so chunk order then offset order is
 * append order. A chunk's bytes up to its end never change once written. Posting the chunks to a
 * worker (`postMessage`) shares them without a copy and orders the writes before it: the worker
 * sees every byte below the ends, while the main thread may go on writing past them.
 *
 * ```
 *   chunk 0                          chunk 1                      chunk 2 (one large record)
 *   +--------+--------+-------+---+  +--------+-------+- - - -+   +---------------------+
 *   | record | record |  ...  |   |  | record |  ...  |       |   | record              |
 *   +--------+--------+-------+---+  +--------+-------+- - - -+   +---------------------+
 *   0                      ends[0]   0              ends[1]       0              ends[2]
 * ```
 *
 * A record, little-endian, no padding or alignment:
 *
 * ```
 *   0          4            8                          15      16
 *   +----------+------------+--------------------------+-------+---------+-----------+-------------+
 *   | key len  | value len  | seq                      | flags | key     | value     | expiresAt   |
 *   | u32      | u32        | u56 (7 bytes, < 2^53)    | u8    | key len | value len | u64, if     |
 *   |          |            |                          |       | bytes   | bytes     | flags & 2   |
 *   +----------+------------+--------------------------+-------+---------+-----------+-------------+
 *   flags: bit 0 = delete (a tombstone: value len is 0), bit 1 = expiresAt follows; others 0.
 * ```
 *
 * The key sits at a fixed offset (16) because the record tree's comparator reads it in every
 * comparison that the eight key bytes its nodes keep (`record-tree.ts`) do not settle; the optional
 * expiry goes last for the same reason. With 16 B keys and 100 B values a record is 132 bytes
 * (140 with an expiry).
 *
 * An address names a record with one number, `chunk * ADDRESS_STRIDE + offset` (the memtable
 * keeps one per record; {@link sortedArenaAddresses} returns them). Chunks that take more than one
 * record are at most `ADDRESS_STRIDE` bytes, and a larger record gets a chunk of its own at
 * offset 0, so offsets stay below the stride.
 *
 * One entry per key, as the memtable keeps it: of the records of a key, the one with the highest
 * seq; of those with equal seqs, the one appended last (the memtable lets a put with an equal seq
 * replace, as within one batch). A put the memtable ignored as older may have left a record
 * behind; it loses to the record that beat it, so the rule gives the memtable's contents whatever
 * the arena holds.
 *
 * @module
 */
import { EMPTY_VALUE, type Entry } from '../entry.js';
import type { Found } from '../found.js';

/** Bytes before the key: key length, value length, seq and flags. */
export const RECORD_HEADER_SIZE = 16;
/** Bytes of the optional expiry after the value. */
export const EXPIRY_SIZE = 8;
/** Flag bit: the record is a tombstone (`kind: 'delete'`). */
export const FLAG_DELETE = 1;
/** Flag bit: an expiry follows the value. */
export const FLAG_EXPIRES = 2;
/** Addresses are `chunk * ADDRESS_STRIDE + offset`; a chunk shared by records is at most this many bytes. */
export const ADDRESS_STRIDE = 2 ** 20;

/** The chunks of a frozen memtable and the bytes used in each, as {@link FrozenMemtable.arena} gives them. */
export interface ArenaChunks {
  readonly chunks: readonly SharedArrayBuffer[];
  readonly ends: readonly number[];
}

/** The size of the record of an entry with these lengths. */
export function recordSize(keyLength: number, valueLength: number, expires: boolean): number {
  return RECORD_HEADER_SIZE + keyLength + valueLength + (expires ? EXPIRY_SIZE : 0);
}

/** The size of `entry`'s record. */
export function entryRecordSize(entry: Entry): number {
  return recordSize(entry.key.length, entry.kind === 'put' ? entry.value.length : 0, entry.expiresAt !== undefined);
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

function readU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16)) + b[o + 3]! * 0x1000000;
}

/** Writes an integer below 2^53 as a u32 and the 3 bytes above it (a u56). */
function writeU56(b: Uint8Array, o: number, v: number): void {
  const lo = v >>> 0; // ToUint32 is v mod 2^32, exact for every safe integer
  const hi = (v - lo) / 0x100000000;
  writeU32(b, o, lo);
  b[o + 4] = hi;
  b[o + 5] = hi >>> 8;
  b[o + 6] = hi >>> 16;
}

function readU56(b: Uint8Array, o: number): number {
  return readU32(b, o) + (b[o + 4]! | (b[o + 5]! << 8) | (b[o + 6]! << 16)) * 0x100000000;
}

/**
 * Writes `entry`'s record at `offset` of `target` and returns its size. The entry must be valid
 * (see `validateEntry`); `target` must have {@link entryRecordSize} bytes free at `offset`.
 */
export function encodeRecord(target: Uint8Array, offset: number, entry: Entry): number {
  const key = entry.key;
  const value = entry.kind === 'put' ? entry.value : EMPTY_VALUE;
  const expiresAt = entry.expiresAt;
  const kl = key.length;
  const vl = value.length;
  writeU32(target, offset, kl);
  writeU32(target, offset + 4, vl);
  writeU56(target, offset + 8, entry.seq);
  target[offset + 15] = (entry.kind === 'delete' ? FLAG_DELETE : 0) | (expiresAt === undefined ? 0 : FLAG_EXPIRES);
  let at = offset + RECORD_HEADER_SIZE;
  // For a few bytes a loop beats TypedArray.prototype.set, whose call costs more than it copies.
  if (kl <= 32) for (let i = 0; i < kl; i++) target[at + i] = key[i]!;
  else target.set(key, at);
  at += kl;
  if (vl <= 32) for (let i = 0; i < vl; i++) target[at + i] = value[i]!;
  else target.set(value, at);
  at += vl;
  if (expiresAt !== undefined) {
    writeU56(target, at, expiresAt);
    target[at + 7] = 0;
    at += EXPIRY_SIZE;
  }
  return at - offset;
}

/**
 * {@link encodeRecord} from bytes in a source buffer instead of an entry (no arrays made): the
 * key is `src[keyAt, keyAt + kl)`, the value the `vl` bytes after it (`vl` 0 for a delete).
 * Returns the record's size.
 */
export function encodeRecordFrom(
  target: Uint8Array,
  offset: number,
  src: Uint8Array,
  keyAt: number,
  kl: number,
  vl: number,
  seq: number,
  isDelete: boolean,
  expiresAt: number | undefined,
): number {
  writeU32(target, offset, kl);
  writeU32(target, offset + 4, vl);
  writeU56(target, offset + 8, seq);
  target[offset + 15] = (isDelete ? FLAG_DELETE : 0) | (expiresAt === undefined ? 0 : FLAG_EXPIRES);
  const at = offset + RECORD_HEADER_SIZE;
  const n = kl + vl;
  // Key and value lie side by side in the source as in the record: one copy for both.
  if (n <= 32) for (let i = 0; i < n; i++) target[at + i] = src[keyAt + i]!;
  else target.set(src.subarray(keyAt, keyAt + n), at);
  let end = at + n;
  if (expiresAt !== undefined) {
    writeU56(target, end, expiresAt);
    target[end + 7] = 0;
    end += EXPIRY_SIZE;
  }
  return end - offset;
}

/** The seq of the record at `offset`. */
export function recordSeq(chunk: Uint8Array, offset: number): number {
  return readU56(chunk, offset + 8);
}

/** The size of the record at `offset`. */
export function recordSizeAt(chunk: Uint8Array, offset: number): number {
  return recordSize(readU32(chunk, offset), readU32(chunk, offset + 4), (chunk[offset + 15]! & FLAG_EXPIRES) !== 0);
}

/**
 * The entry of the record at `offset`. Its key and value are views into the chunk, not copies:
 * they must not be modified (the record's bytes are shared with every view of the memtable).
 * `key`, when given, is used as the entry's key instead of a view: a lookup that found the record
 * by a key with the same bytes saves making one.
 */
export function decodeRecord(chunk: Uint8Array, offset: number, key?: Uint8Array): Entry {
  const kl = readU32(chunk, offset);
  const vl = readU32(chunk, offset + 4);
  const flags = chunk[offset + 15]!;
  const keyAt = chunk.byteOffset + offset + RECORD_HEADER_SIZE;
  return {
    key: key ?? new Uint8Array(chunk.buffer, keyAt, kl),
    seq: readU56(chunk, offset + 8),
    kind: (flags & FLAG_DELETE) !== 0 ? 'delete' : 'put',
    value: vl === 0 ? EMPTY_VALUE : new Uint8Array(chunk.buffer, keyAt + kl, vl),
    expiresAt: (flags & FLAG_EXPIRES) === 0 ? undefined : readU56(chunk, offset + RECORD_HEADER_SIZE + kl + vl),
  };
}

/**
 * Fills `out` with the record at `offset`: its kind, seq and expiry, and its value as the range
 * `out.bytes[out.start..out.end)` of `chunk` (no view is made: see `Found`).
 */
export function recordInto(chunk: Uint8Array, offset: number, out: Found): void {
  const kl = readU32(chunk, offset);
  const vl = readU32(chunk, offset + 4);
  const flags = chunk[offset + 15]!;
  const start = offset + RECORD_HEADER_SIZE + kl;
  out.kind = (flags & FLAG_DELETE) !== 0 ? 'delete' : 'put';
  out.seq = readU56(chunk, offset + 8);
  out.expiresAt = (flags & FLAG_EXPIRES) === 0 ? undefined : readU56(chunk, start + vl);
  out.bytes = chunk;
  out.start = start;
  out.end = start + vl;
}

/** Whether the key of the record at `offset` has exactly the bytes of `key`. */
export function recordKeyEquals(chunk: Uint8Array, offset: number, key: Uint8Array): boolean {
  const n = key.length;
  if (readU32(chunk, offset) !== n) return false;
  const k = offset + RECORD_HEADER_SIZE;
  for (let i = 0; i < n; i++) if (chunk[k + i] !== key[i]) return false;
  return true;
}

/**
 * Bytewise comparison of the keys of two records, as `compareKeys` orders keys. `DataView`s over
 * the chunks: four bytes at a time, read big-endian, compare as the bytes do, so keys sharing a
 * prefix cost a quarter of the steps of a byte loop; V8 compiles these reads inline. (A native
 * `Buffer.compare` costs more to call than short keys cost to compare.)
 */
export function compareRecordKeys(a: DataView, ao: number, b: DataView, bo: number): number {
  // Key lengths as int32: a key is far below 2 GiB.
  const al = a.getInt32(ao, true);
  const bl = b.getInt32(bo, true);
  const n = Math.min(al, bl);
  ao += RECORD_HEADER_SIZE;
  bo += RECORD_HEADER_SIZE;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const x = a.getUint32(ao + i);
    const y = b.getUint32(bo + i);
    if (x !== y) return x < y ? -1 : 1;
  }
  for (; i < n; i++) {
    const d = a.getUint8(ao + i) - b.getUint8(bo + i);
    if (d !== 0) return d;
  }
  return al - bl;
}

/**
 * The first four bytes of a key as a big-endian u32, zero-padded when shorter. Ordering keys by
 * it orders them as their bytes whenever two prefixes differ (padding never reverses an order),
 * so a comparison can end on two numbers; equal prefixes need the keys.
 */
export function keyPrefix(key: Uint8Array): number {
  const n = key.length;
  if (n >= 4) return ((key[0]! << 24) | (key[1]! << 16) | (key[2]! << 8) | key[3]!) >>> 0;
  return ((n > 0 ? key[0]! << 24 : 0) | (n > 1 ? key[1]! << 16 : 0) | (n > 2 ? key[2]! << 8 : 0)) >>> 0;
}

/** {@link keyPrefix} of the key of the record at `offset`. */
export function recordKeyPrefix(chunk: Uint8Array, offset: number): number {
  const n = readU32(chunk, offset);
  const k = offset + RECORD_HEADER_SIZE;
  if (n >= 4) return ((chunk[k]! << 24) | (chunk[k + 1]! << 16) | (chunk[k + 2]! << 8) | chunk[k + 3]!) >>> 0;
  return ((n > 0 ? chunk[k]! << 24 : 0) | (n > 1 ? chunk[k + 1]! << 16 : 0) | (n > 2 ? chunk[k + 2]! << 8 : 0)) >>> 0;
}

/** The address of the record at `offset` of chunk number `chunk`. */
export function toAddress(chunk: number, offset: number): number {
  return chunk * ADDRESS_STRIDE + offset;
}

/** The chunk number of an address. */
export function addressChunk(address: number): number {
  return Math.floor(address / ADDRESS_STRIDE);
}

/** The offset in its chunk of an address. */
export function addressOffset(address: number): number {
  return address % ADDRESS_STRIDE;
}

/** The arena's chunks as byte arrays (no copy). */
export function arenaBytes(arena: ArenaChunks): Uint8Array[] {
  return arena.chunks.map((c) => new Uint8Array(c));
}

/** The arena's chunks as `DataView`s, for {@link compareRecordKeys}. */
export function arenaViews(arena: ArenaChunks): DataView[] {
  return arena.chunks.map((c) => new DataView(c));
}

/**
 * The address of every record, in append order. Throws `RangeError` if a record runs past its
 * chunk's end (the arena is not one a memtable wrote).
 */
export function scanArena(arena: ArenaChunks): number[] {
  const addresses: number[] = [];
  for (let c = 0; c < arena.chunks.length; c++) {
    const chunk = new Uint8Array(arena.chunks[c]!);
    const end = arena.ends[c]!;
    if (!(end >= 0 && end <= chunk.length)) throw new RangeError(`arena chunk ${c}: end ${end} is outside its ${chunk.length} bytes`);
    for (let at = 0; at < end; ) {
      if (end - at < RECORD_HEADER_SIZE) throw new RangeError(`arena chunk ${c}: a record header at ${at} runs past the end ${end}`);
      const size = recordSizeAt(chunk, at);
      if (size > end - at) throw new RangeError(`arena chunk ${c}: the record at ${at} (${size} bytes) runs past the end ${end}`);
      addresses.push(toAddress(c, at));
      at += size;
    }
  }
  return addresses;
}

/**
 * The addresses of the entries the memtable holds, one per key, in ascending key order: all
 * records scanned in append order, sorted by key then append order, then of each key's records
 * the last one with the highest seq.
 *
 * The sort is a most-significant-digit radix sort on four key bytes at a time: the digits,
 * packed with the record number into one float64 each, sort natively without a comparator call;
 * only records whose digits so far are equal go on to the next four bytes. A comparator sort of
 * record numbers costs a cache miss per comparison (each reads two records somewhere in 64 MiB).
 * Measured with bench/memtable.ts on 410k records (a 64 MiB memtable, 16 B keys), CPU time of
 * the scan, sort and pick: random keys 0.26 s; keys sharing their first 8 bytes 0.65 s, where a
 * comparator sort after the first digit took 1.3 s.
 */
export function sortedArenaAddresses(arena: ArenaChunks): Float64Array {
  const addresses = scanArena(arena);
  const keys = new RecordKeys(arena, addresses);
  const n = addresses.length;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  keys.sort(order, 0);
  const out = new Float64Array(n);
  let count = 0;
  for (let g = 0; g < n; ) {
    // Of one key's records (adjacent, in append order), the last with the highest seq.
    let best = order[g]!;
    let h = g + 1;
    for (; h < n && keys.prefixes[order[h]!] === keys.prefixes[best] && keys.compare(order[h]!, best) === 0; h++) {
      if (keys.seqs[order[h]!]! >= keys.seqs[best]!) best = order[h]!;
    }
    out[count++] = addresses[best]!;
    g = h;
  }
  return out.subarray(0, count);
}

/** Runs this short, or keys agreeing on this many bytes, are sorted with a comparator. */
const SMALL_RUN = 16;
const DEEP_DIGITS = 64;

/**
 * The keys of an arena's records, by record number (append order), for sorting: where each
 * record is, its key length and seq, read in one pass in append order (the sorted order visits
 * the chunks at random).
 */
class RecordKeys {
  readonly #bytes: Uint8Array[];
  readonly #views: DataView[];
  readonly #chunkOf: Uint32Array;
  readonly #offsetOf: Uint32Array;
  readonly #lengths: Uint32Array;
  readonly seqs: Float64Array;
  /** {@link keyPrefix} of each key: its first digit, and a cheap test of inequality. */
  readonly prefixes: Uint32Array;

  constructor(arena: ArenaChunks, addresses: readonly number[]) {
    this.#bytes = arenaBytes(arena);
    this.#views = arenaViews(arena);
    const n = addresses.length;
    this.#chunkOf = new Uint32Array(n);
    this.#offsetOf = new Uint32Array(n);
    this.#lengths = new Uint32Array(n);
    this.seqs = new Float64Array(n);
    this.prefixes = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const c = addressChunk(addresses[i]!);
      const o = addressOffset(addresses[i]!);
      this.#chunkOf[i] = c;
      this.#offsetOf[i] = o;
      this.#lengths[i] = readU32(this.#bytes[c]!, o);
      this.seqs[i] = recordSeq(this.#bytes[c]!, o);
      this.prefixes[i] = recordKeyPrefix(this.#bytes[c]!, o);
    }
  }

  /** Bytewise order of the keys of records `i` and `j`. */
  compare(i: number, j: number): number {
    return compareRecordKeys(this.#views[this.#chunkOf[i]!]!, this.#offsetOf[i]!, this.#views[this.#chunkOf[j]!]!, this.#offsetOf[j]!);
  }

  /** Key bytes `at..at+4` of record `r` as a big-endian u32, zero-padded past the key's end. */
  digit(r: number, at: number): number {
    const b = this.#bytes[this.#chunkOf[r]!]!;
    const k = this.#offsetOf[r]! + RECORD_HEADER_SIZE + at;
    const left = this.#lengths[r]! - at;
    if (left >= 4) return ((b[k]! << 24) | (b[k + 1]! << 16) | (b[k + 2]! << 8) | b[k + 3]!) >>> 0;
    let d = 0;
    for (let i = 0; i < 4; i++) d = d * 256 + (i < left ? b[k + i]! : 0);
    return d;
  }

  /**
   * Sorts `run`, record numbers whose keys agree on bytes `0..at` (zero-padded) and that are in
   * ascending order, by key, then record number.
   */
  sort(run: Uint32Array, at: number): void {
    const m = run.length;
    if (m < 2) return;
    let longest = 0;
    for (let i = 0; i < m; i++) longest = Math.max(longest, this.#lengths[run[i]!]!);
    if (longest <= at) {
      // Equal up to their lengths, past which they are zeros: the shorter keys first.
      run.sort((i, j) => this.#lengths[i]! - this.#lengths[j]! || i - j);
      return;
    }
    if (m <= SMALL_RUN || at >= DEEP_DIGITS) {
      run.sort((i, j) => this.compare(i, j) || i - j);
      return;
    }
    const digits = new Uint32Array(m);
    if (at === 0) for (let i = 0; i < m; i++) digits[i] = this.prefixes[run[i]!]!;
    else for (let i = 0; i < m; i++) digits[i] = this.digit(run[i]!, at);
    const byDigit = sortByPrefix(digits);
    const was = run.slice();
    for (let i = 0; i < m; i++) run[i] = was[byDigit[i]!]!;
    for (let g = 0; g < m; ) {
      let h = g + 1;
      while (h < m && digits[byDigit[h]!] === digits[byDigit[g]!]) h++;
      if (h - g > 1) this.sort(run.subarray(g, h), at + 4);
      g = h;
    }
  }
}

/**
 * @internal Record numbers `0..n` ordered by `prefixes`, equal prefixes by record number.
 * `packedBits` is the most bits a record number may take for the native sort (a test lowers it).
 */
export function sortByPrefix(prefixes: Uint32Array, packedBits = 21): Uint32Array {
  const n = prefixes.length;
  const order = new Uint32Array(n);
  // prefix * 2^bits + record number stays an exact integer below 2^53 while bits <= 21.
  const bits = Math.max(1, Math.ceil(Math.log2(n + 1)));
  if (bits <= packedBits) {
    const scale = 2 ** bits;
    const packed = new Float64Array(n);
    for (let i = 0; i < n; i++) packed[i] = prefixes[i]! * scale + i;
    packed.sort();
    for (let i = 0; i < n; i++) {
      const p = packed[i]!;
      order[i] = p - Math.floor(p / scale) * scale; // not %: a float remainder is a slow call
    }
  } else {
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((i, j) => prefixes[i]! - prefixes[j]! || i - j);
  }
  return order;
}

/** The record at `address` of an arena's chunks as an entry (views into the chunk, see {@link decodeRecord}). */
export function decodeAddress(bytes: readonly Uint8Array[], address: number): Entry {
  return decodeRecord(bytes[addressChunk(address)]!, addressOffset(address));
}

/**
 * The entries the memtable holds, in ascending key order: exactly what iterating the frozen
 * memtable whose {@link ArenaChunks} these are yields. Sorts up front (see
 * {@link sortedArenaAddresses}); decodes each entry as it is pulled.
 */
export function* sortedArenaEntries(arena: ArenaChunks): Generator<Entry, void, undefined> {
  const bytes = arenaBytes(arena);
  const addresses = sortedArenaAddresses(arena);
  for (let i = 0; i < addresses.length; i++) yield decodeAddress(bytes, addresses[i]!);
}
