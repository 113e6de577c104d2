/**
 * The memtable's arena format: how entries lie in the arena's chunks, and how a reader in another
 * thread (a worker flushing a sealed memtable, `flush-source.ts`) decodes them. Pure functions;
 * nothing here allocates a chunk.
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
 * An address names a record with one number, `chunk * ADDRESS_STRIDE + offset` (the arena
 * keeps one per record number, in shared memory: `Arena.addressTable`). Chunks that take more
 * than one record are at most `ADDRESS_STRIDE` bytes, and a larger record gets a chunk of its own
 * at offset 0, so offsets stay below the stride.
 *
 * The chunks hold every record the memtable received, overwritten ones included; which record
 * of a key is the entry, and the key order, are the record tree's (`record-tree.ts`).
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

/** The arena's chunks as byte arrays (no copy). */
export function arenaBytes(arena: ArenaChunks): Uint8Array[] {
  return arena.chunks.map((c) => new Uint8Array(c));
}
