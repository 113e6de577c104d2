/**
 * A WAL record (a put or a tombstone) and its payload codec. The payload layout is drawn in
 * format.ts. Encoding and decoding are pure functions of bytes; decoding is total: it returns a
 * record or a reason string, whatever the bytes.
 *
 * @module
 */
import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import { compress as zstdCompress, decompress as zstdDecompress, init as zstdInit } from '@bokuweb/zstd-wasm';
import { CompressionCode, RECORD_FIXED_SIZE, RecordFlag } from './format.js';
import { copyBytes, readU32LE as u32, writeU32LE as putU32 } from '../util/bytes.js';
import { crc32c, crc32cAppend } from '../util/crc32c.js';

/** How a record's value is compressed in the log. Applies to the value only. */
export type RecordCompression = 'none' | 'lz4' | 'zstd';

/** Key or value as the caller gives it: bytes, or a string taken as UTF-8. */
export type Bytes = Uint8Array | string;

/** Options of {@link Record.put}. */
export interface RecordPutOptions {
  /** Time to live in milliseconds from now; stored as an absolute `expiresAt`. */
  ttlMs?: number;
  /** Absolute expiry (ms since the Unix epoch), for callers with their own clock. Not with `ttlMs`. */
  expiresAt?: number;
  /**
   * Value compression in the log (default `'none'`). Skipped for a value it does not shrink, and
   * for zstd before its codec has loaded (`Wal.open` loads it; `loadZstd()` does it by hand).
   */
  compression?: RecordCompression;
}

const COMPRESSIONS: readonly RecordCompression[] = ['none', 'lz4', 'zstd'];
const CODE_TO_COMPRESSION: readonly RecordCompression[] = ['none', 'lz4', 'zstd'];
const EMPTY = new Uint8Array(0);
// zstd as WebAssembly: Node 20 has no zstd in zlib, and the native bindings on the registry either
// download a binary at install time or miss platform packages that `npm ci` insists on. Loaded on
// first use, not at import: a top-level await would make every `import 'sediment'` load it, and
// Node refuses to require() a module with one.
const ZSTD_LEVEL = 3;
let zstdReady = false;
let zstdLoading: Promise<void> | undefined;

/**
 * Loads the zstd codec (WebAssembly) once. `Wal.open` awaits it, so that every record a log holds
 * can be decoded; a `Record.put` with `compression: 'zstd'` made before it has loaded stores its
 * value uncompressed (and starts the load).
 */
export function loadZstd(): Promise<void> {
  zstdLoading ??= zstdInit().then(() => {
    zstdReady = true;
  });
  return zstdLoading;
}

function toBytes(what: string, input: unknown): Uint8Array {
  if (typeof input === 'string') {
    // A lone surrogate has no UTF-8 form: Buffer.from would silently replace it.
    if (!(input as string & { isWellFormed(): boolean }).isWellFormed()) {
      throw new TypeError(`${what} is not well-formed Unicode (a lone surrogate): UTF-8 cannot represent it`);
    }
    return Buffer.from(input, 'utf8');
  }
  // Copied: the record is a snapshot of the caller's bytes at the time of the call. From Node's
  // buffer pool, like a string's bytes: a fresh ArrayBuffer per key and value costs ~1 us each.
  if (input instanceof Uint8Array) return copyBytes(input);
  throw new TypeError(`${what} must be a Uint8Array or a string, got ${describeType(input)}`);
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}

/** The value compressed, or the value itself when compressing is not possible yet (zstd not loaded). */
function compress(kind: RecordCompression, value: Uint8Array): Uint8Array {
  if (kind === 'lz4') return lz4Compress(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  if (!zstdReady) {
    loadZstd().catch(() => undefined); // a failed load surfaces at the next Wal.open
    return value;
  }
  return zstdCompress(value, ZSTD_LEVEL);
}

/**
 * One entry of the log: a key with a value, or a key with a tombstone. Immutable.
 * Create with {@link Record.put} or {@link Record.delete}.
 */
export class Record {
  /** The key's bytes (a string key is its UTF-8). */
  readonly key: Uint8Array;
  /** The value's bytes, uncompressed; empty for a tombstone. */
  readonly value: Uint8Array;
  /** True for a delete. */
  readonly tombstone: boolean;
  /**
   * True for an opaque record ({@link Record.opaque}): `value` holds the application's bytes,
   * `key` is empty, and there is no expiry or tombstone.
   */
  readonly opaque: boolean;
  /** When the record expires, in ms since the Unix epoch; undefined if it never does. */
  readonly expiresAt: number | undefined;
  /** How the value is stored in the log. */
  readonly compression: RecordCompression;
  /** The value as stored (compressed or not). */
  readonly #stored: Uint8Array;
  /** The payload's flags byte. */
  readonly #flags: number;
  /** Bytes of the payload before the key: flags, key length, expiry and raw length if present. */
  readonly #headSize: number;

  private constructor(
    key: Uint8Array,
    value: Uint8Array,
    tombstone: boolean,
    expiresAt: number | undefined,
    compression: RecordCompression,
    stored: Uint8Array,
    opaque = false,
  ) {
    // The payload holds an expiry below 2^53 (two u32 words, the high one < 2^21): refuse what
    // it cannot represent here, when the record is made, never when it is written or read back.
    if (expiresAt !== undefined && !isExpiry(expiresAt)) {
      throw new RangeError(`expiresAt must be an integer of ms since the epoch in [0, 2^53), got ${expiresAt}`);
    }
    this.key = key;
    this.value = value;
    this.tombstone = tombstone;
    this.opaque = opaque;
    this.expiresAt = expiresAt;
    this.compression = compression;
    this.#stored = stored;
    // Worked out once: a record's fields are fixed, and append reads them on its hot path.
    let flags = CompressionCode[compression] << RecordFlag.COMPRESSION_SHIFT;
    if (tombstone) flags |= RecordFlag.TOMBSTONE;
    if (expiresAt !== undefined) flags |= RecordFlag.EXPIRES;
    this.#flags = opaque ? RecordFlag.OPAQUE : flags;
    this.#headSize = opaque ? 1 : RECORD_FIXED_SIZE + (expiresAt !== undefined ? 8 : 0) + (compression !== 'none' ? 4 : 0);
  }

  /**
   * A put of `value` under `key`. Throws `TypeError` for a key or value that is not a
   * Uint8Array or string, or a malformed option; `RangeError` for a TTL or expiry that is not a
   * positive finite number.
   */
  static put(key: Bytes, value: Bytes, options: RecordPutOptions = {}): Record {
    const k = toBytes('key', key);
    const v = toBytes('value', value);
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    const expiresAt = resolveExpiry(options);
    const requested = options.compression ?? 'none';
    if (!COMPRESSIONS.includes(requested)) {
      throw new TypeError(`compression must be one of ${COMPRESSIONS.join(', ')}, got ${String(requested)}`);
    }
    if (requested !== 'none' && v.length > 0) {
      const packed = compress(requested, v);
      // Stored raw when compression does not pay for itself.
      if (packed.length < v.length) return new Record(k, v, false, expiresAt, requested, packed);
    }
    return new Record(k, v, false, expiresAt, 'none', v);
  }

  /** A tombstone for `key`. Throws `TypeError` for a key that is not a Uint8Array or string. */
  static delete(key: Bytes): Record {
    return new Record(toBytes('key', key), EMPTY, true, undefined, 'none', EMPTY);
  }

  /**
   * An opaque record: `bytes` (copied) stored as they are, for an application that keeps its own
   * format in the log (the DB stores each write batch as one). Its payload is a flags byte and
   * the bytes (see format.ts); `maxRecordSize` limits that payload. Throws `TypeError` for
   * anything but a Uint8Array.
   */
  static opaque(bytes: Uint8Array): Record {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`opaque record bytes must be a Uint8Array, got ${describeType(bytes)}`);
    return Record.opaqueOwned(copyBytes(bytes));
  }

  /** @internal {@link opaque} over bytes the caller hands over (no copy): they must not change. */
  static opaqueOwned(bytes: Uint8Array): Record {
    return new Record(EMPTY, bytes, false, undefined, 'none', bytes, true);
  }

  /** True when the record has an expiry at or before `now` (ms since the epoch). */
  isExpired(now: number = Date.now()): boolean {
    return this.expiresAt !== undefined && this.expiresAt <= now;
  }

  /**
   * The payload's size with the value uncompressed: what `maxRecordSize` limits, so that every
   * record that is accepted can also be decompressed within the limit when read back.
   */
  get logicalSize(): number {
    return this.#headSize + this.key.length + this.value.length;
  }

  /** Bytes this record's payload takes in a frame. */
  get payloadSize(): number {
    return this.#headSize + this.key.length + this.#stored.length;
  }

  /** Writes the payload at `buf[at..]` (which must have {@link payloadSize} bytes); returns the end. */
  encodeInto(buf: Buffer, at: number): number {
    const key = this.key;
    buf[at] = this.#flags;
    if (this.opaque) {
      buf.set(this.#stored, at + 1);
      return at + 1 + this.#stored.length;
    }
    putU32(buf, at + 1, key.length);
    let p = at + RECORD_FIXED_SIZE;
    if (this.expiresAt !== undefined) {
      putU32(buf, p, this.expiresAt % 0x1_0000_0000);
      putU32(buf, p + 4, Math.floor(this.expiresAt / 0x1_0000_0000));
      p += 8;
    }
    if (this.compression !== 'none') {
      putU32(buf, p, this.value.length);
      p += 4;
    }
    buf.set(key, p);
    p += key.length;
    buf.set(this.#stored, p);
    return p + this.#stored.length;
  }

  /**
   * @internal The CRC-32C of the payload that {@link encodeInto} wrote at `buf[at..end)`: the
   * head (fields and key) is checksummed in the buffer, the value from the record's own array,
   * which spares the native checksum call a fresh view of the buffer.
   */
  payloadCrc(buf: Uint8Array, at: number, end: number): number {
    const stored = this.#stored;
    return crc32cAppend(crc32c(buf, at, end - stored.length), stored);
  }

  /** @internal Builds a record from bytes it takes ownership of (no copy, no checks): decoders and the DB. */
  static fromParts(
    key: Uint8Array,
    value: Uint8Array,
    tombstone: boolean,
    expiresAt: number | undefined,
    compression: RecordCompression,
    stored: Uint8Array,
  ): Record {
    return new Record(key, value, tombstone, expiresAt, compression, stored);
  }
}

/** True for an expiry the payload can hold: an integer of ms since the epoch in [0, 2^53). */
export function isExpiry(at: number): boolean {
  return Number.isSafeInteger(at) && at >= 0;
}

function resolveExpiry(options: RecordPutOptions): number | undefined {
  const { ttlMs, expiresAt } = options;
  if (ttlMs !== undefined && expiresAt !== undefined) throw new TypeError('give ttlMs or expiresAt, not both');
  if (ttlMs !== undefined) {
    if (typeof ttlMs !== 'number') throw new TypeError(`ttlMs must be a number, got ${describeType(ttlMs)}`);
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive finite number, got ${ttlMs}`);
    const at = Math.ceil(Date.now() + ttlMs);
    if (!isExpiry(at))
      throw new RangeError(
        `ttlMs ${ttlMs} puts the expiry past 2^53 - 1 ms since the epoch; leave ttlMs out for a record that never expires`,
      );
    return at;
  }
  if (expiresAt !== undefined) {
    if (typeof expiresAt !== 'number') throw new TypeError(`expiresAt must be a number, got ${describeType(expiresAt)}`);
    if (!Number.isSafeInteger(expiresAt) || expiresAt <= 0) {
      throw new RangeError(`expiresAt must be a positive integer of ms since the epoch, got ${expiresAt}`);
    }
    return expiresAt;
  }
  return undefined;
}

/** A decoded record, or why the bytes are not one. */
export type DecodeResult = { ok: true; record: Record } | { ok: false; reason: string };

/**
 * Checks a payload's structure without decompressing: the fields fit and the flags are known.
 * Recovery uses it to validate every record cheaply.
 */
export function checkPayload(payload: Uint8Array, maxValueSize: number): string | undefined {
  if (payload.length === 0) return 'empty record';
  const flags = payload[0]!;
  if (flags & RecordFlag.RESERVED_MASK) return 'unknown record flags';
  if (flags & RecordFlag.OPAQUE) return flags === RecordFlag.OPAQUE ? undefined : 'opaque record with other flags set';
  if (payload.length < RECORD_FIXED_SIZE) return 'record shorter than its fixed fields';
  const code = (flags & RecordFlag.COMPRESSION_MASK) >>> RecordFlag.COMPRESSION_SHIFT;
  if (code >= CODE_TO_COMPRESSION.length) return 'unknown compression';
  const keyLength = u32(payload, 1);
  let p = RECORD_FIXED_SIZE;
  if (flags & RecordFlag.EXPIRES) {
    if (payload.length < p + 8) return 'record too short for its expiry';
    const hi = u32(payload, p + 4);
    if (hi >= 0x20_0000) return 'expiry beyond 2^53';
    p += 8;
  }
  if (code !== 0) {
    if (payload.length < p + 4) return 'record too short for its raw value length';
    if (u32(payload, p) > maxValueSize) return 'raw value length over the limit';
    p += 4;
  }
  if (keyLength > payload.length - p) return 'key length beyond the record';
  if (flags & RecordFlag.TOMBSTONE && (code !== 0 || payload.length !== p + keyLength)) {
    return 'tombstone with a value';
  }
  return undefined;
}

/**
 * Decodes a payload into a {@link Record}, copying its bytes out of `payload`. `maxValueSize`
 * bounds what decompression may produce.
 */
export function decodeRecord(payload: Uint8Array, maxValueSize: number): DecodeResult {
  const problem = checkPayload(payload, maxValueSize);
  if (problem) return { ok: false, reason: problem };
  const flags = payload[0]!;
  if (flags === RecordFlag.OPAQUE) return { ok: true, record: Record.opaqueOwned(copyBytes(payload, 1)) };
  const keyLength = u32(payload, 1);
  let p = RECORD_FIXED_SIZE;
  let expiresAt: number | undefined;
  if (flags & RecordFlag.EXPIRES) {
    expiresAt = u32(payload, p) + u32(payload, p + 4) * 0x1_0000_0000;
    p += 8;
  }
  const compression = CODE_TO_COMPRESSION[(flags & RecordFlag.COMPRESSION_MASK) >>> RecordFlag.COMPRESSION_SHIFT]!;
  let rawLength = -1;
  if (compression !== 'none') {
    rawLength = u32(payload, p);
    p += 4;
  }
  // One copy of key and value together: a record must neither change if the reader reuses its
  // chunk nor keep the whole chunk alive. From Node's buffer pool: a fresh ArrayBuffer per
  // record cost more than the rest of the decoding.
  const owned = copyBytes(payload, p);
  const key = owned.subarray(0, keyLength);
  const stored = owned.subarray(keyLength);
  if (flags & RecordFlag.TOMBSTONE) {
    return { ok: true, record: Record.fromParts(key, EMPTY, true, expiresAt, 'none', EMPTY) };
  }
  if (compression === 'none') {
    return { ok: true, record: Record.fromParts(key, stored, false, expiresAt, 'none', stored) };
  }
  // Not a verdict on the bytes: decoding a zstd record needs the codec that Wal.open loads.
  if (compression === 'zstd' && !zstdReady)
    throw new Error('the zstd codec is not loaded yet: await loadZstd() (Wal.open does) before decoding');
  let value: Uint8Array;
  try {
    value = decompress(compression, stored, rawLength);
  } catch (err) {
    return { ok: false, reason: `${compression} value does not decompress: ${(err as Error).message}` };
  }
  if (value.length !== rawLength) return { ok: false, reason: `${compression} value has the wrong length` };
  return { ok: true, record: Record.fromParts(key, value, false, expiresAt, compression, stored) };
}

function decompress(kind: RecordCompression, stored: Uint8Array, rawLength: number): Uint8Array {
  const buf = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  if (kind === 'lz4') {
    // lz4-napi prefixes the block with its uncompressed size and allocates that much: check the
    // prefix against the recorded length first so a bad prefix cannot size the allocation.
    if (buf.length < 4 || buf.readUInt32LE(0) !== rawLength) throw new Error('size prefix mismatch');
    return lz4Uncompress(buf);
  }
  // The decoder allocates what the frame header declares and inflates whatever blocks follow:
  // check both against the recorded raw length (itself bounded by maxRecordSize) first.
  const frame = zstdFrameInfo(buf);
  if (frame === undefined) throw new Error('not a single well-formed zstd frame');
  if (frame.contentSize !== rawLength) throw new Error('zstd content size does not match the raw length');
  if (frame.bound < rawLength || frame.bound > rawLength + ZSTD_BLOCK_MAX) throw new Error('zstd frame size does not match the raw length');
  return zstdDecompress(buf, { defaultHeapSize: Math.max(1, rawLength) });
}

/** zstd's largest block: no block regenerates more than this. */
const ZSTD_BLOCK_MAX = 128 * 1024;

/**
 * A zstd frame's declared content size (undefined when absent) and the most bytes it can
 * decompress to, from its block headers (RFC 8878 §3.1.1): a raw or RLE block regenerates exactly
 * its Block_Size, a compressed one at most 128 KiB. Undefined unless `buf` is exactly one
 * well-formed frame.
 */
export function zstdFrameInfo(buf: Uint8Array): { contentSize: number | undefined; bound: number } | undefined {
  if (buf.length < 6 || buf[0] !== 0x28 || buf[1] !== 0xb5 || buf[2] !== 0x2f || buf[3] !== 0xfd) return undefined;
  const fhd = buf[4]!;
  if (fhd & 0x08) return undefined; // reserved bit
  const fcsFlag = fhd >>> 6;
  const singleSegment = (fhd >>> 5) & 1;
  let p = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = fcsFlag === 0 ? singleSegment : [0, 2, 4, 8][fcsFlag]!;
  if (p + fcsBytes > buf.length) return undefined;
  let contentSize: number | undefined;
  if (fcsBytes > 0) {
    contentSize = 0;
    for (let i = Math.min(fcsBytes, 7) - 1; i >= 0; i--) contentSize = contentSize * 256 + buf[p + i]!;
    if (fcsBytes === 8 && buf[p + 7] !== 0) return undefined; // beyond 2^56: nothing we wrote
    if (fcsBytes === 2) contentSize += 256;
  }
  p += fcsBytes;
  let bound = 0;
  for (;;) {
    if (p + 3 > buf.length) return undefined;
    const header = buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16);
    p += 3;
    const type = (header >>> 1) & 3;
    const size = header >>> 3;
    if (type === 3 || size > ZSTD_BLOCK_MAX) return undefined;
    p += type === 1 ? 1 : size;
    bound += type === 2 ? ZSTD_BLOCK_MAX : size;
    if (header & 1) break;
  }
  if ((fhd >>> 2) & 1) p += 4; // content checksum
  return p === buf.length ? { contentSize, bound } : undefined;
}
