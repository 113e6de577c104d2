/**
 * Key and value encodings of the DB: how what the caller passes becomes bytes, and back.
 *
 * Each encoding round-trips exactly what it promises, and refuses anything else with a
 * `TypeError` before a byte is written (msgpackr, for one, would silently turn a Map into an
 * object and a function into undefined):
 *
 * | encoding  | values                                                                       |
 * | --------- | ---------------------------------------------------------------------------- |
 * | `msgpack` | null, booleans, numbers, strings, Uint8Array, Date, arrays and plain objects of these |
 * | `json`    | null, booleans, finite numbers, strings, arrays and plain objects of these   |
 * | `utf8`    | strings                                                                      |
 * | `binary`  | Uint8Array                                                                   |
 *
 * Keys order bytewise by their encoded bytes, and round-trip: every key the iterator returns is
 * the key that was written, so `get` and `delete` of it find it.
 * - `binary`: a Uint8Array, any bytes; returned as a Buffer.
 * - `utf8`: a string (well-formed: a lone surrogate is refused, as for values), stored as its
 *   UTF-8; or a Uint8Array that *is* valid UTF-8 (`buffer.isUtf8`: no stray or truncated
 *   sequences, no overlong forms, no encoded surrogates, nothing past U+10FFFF), which is the
 *   same key as the string it encodes and reads back as that string. Any other Uint8Array is
 *   refused with `TypeError` by every method (put, batch, delete, get): it could not come back
 *   as itself (decoding would replace its invalid bytes with U+FFFD, so `[0xff]` and `[0xfe]`
 *   would both read back as `"\ufffd"`, a key that matches neither).
 * - Iterator bounds (`gt`, `gte`, `lt`, `lte`; {@link encodeKey} with `'bound'`) are exempt from
 *   the UTF-8 rule: a bound is only compared bytewise with stored keys, never stored nor returned,
 *   so any bytes are a meaningful bound. `lt: Uint8Array.of(0xff)` is past every UTF-8 key, since
 *   0xff never occurs in UTF-8.
 * - {@link decodeKey} does not validate (every key this version stores is valid UTF-8 under
 *   `utf8`); a key sediment 0.1.0 stored before the rule still reads back with U+FFFD in place
 *   of its invalid bytes.
 *
 * Decoding a value ({@link decodeValue}) never returns a wrong value for bytes the encoding did
 * not write: it throws `DecodeError` (code `DECODE`, with the entry's key, the encoding and the
 * decoder's error as `cause`). Such bytes pass every checksum: another writer appended them to
 * the WAL, or the DB was written under another value encoding.
 * - `msgpack`: anything msgpackr refuses (truncated data, bytes after the first value, an
 *   unknown extension type), and anything it decodes to a value this encoding never writes (the
 *   never-used byte 0xc1, a 64-bit integer past 2^53, ext type 0, an invalid timestamp, invalid
 *   UTF-8 in a string): see `checkUnpacked`.
 * - `json`: bytes that are not UTF-8, or text `JSON.parse` refuses.
 * - `utf8`: bytes that are not valid UTF-8 throw rather than being replaced by U+FFFD: every
 *   value `encodeValue` writes is valid UTF-8, so invalid bytes are not a string this encoding
 *   stored, and replacing them would silently change the value.
 * - `binary`: any bytes are a value; never throws.
 * On the read path this costs one `try` block and, for `utf8` and `json`, a scan of the decoded
 * string for U+FFFD: only a string containing one (from invalid bytes, or stored on purpose) has
 * its bytes validated.
 *
 * @module
 */
import { isUtf8 } from 'node:buffer';
import { Packr } from 'msgpackr';
import { DecodeError } from '../errors.js';

export type KeyEncoding = 'utf8' | 'binary';
export type ValueEncoding = 'msgpack' | 'json' | 'utf8' | 'binary';

export const KEY_ENCODINGS: readonly KeyEncoding[] = ['utf8', 'binary'];
export const VALUE_ENCODINGS: readonly ValueEncoding[] = ['msgpack', 'json', 'utf8', 'binary'];

/** A value the json encoding round-trips. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A value the msgpack encoding round-trips. */
export type MsgpackValue = null | boolean | number | string | Uint8Array | Date | MsgpackValue[] | { [key: string]: MsgpackValue };

// No records (plain maps only) and no extension types beyond Date: what is written is plain
// MessagePack that any decoder reads.
// copyBuffers: a Uint8Array inside a decoded value must not be a view into the stored bytes.
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false, copyBuffers: true });

/**
 * A string with a lone surrogate has no UTF-8 form: encoding would silently replace it (and two
 * such keys would collide), so it is refused.
 */
function assertWellFormed(s: string, what: string): void {
  if (!(s as string & { isWellFormed(): boolean }).isWellFormed()) {
    throw new TypeError(`${what} is not well-formed Unicode (a lone surrogate): UTF-8 cannot represent it`);
  }
}

/**
 * What a key is encoded for: `'key'` (the default) a key that is stored or looked up (put, batch,
 * delete, get), `'bound'` an iterator bound, which may be any bytes under either encoding.
 */
export type KeyUse = 'key' | 'bound';

/**
 * Encodes a key to bytes; throws `TypeError` for a key the encoding does not accept (under
 * `utf8`, a Uint8Array that is not valid UTF-8, unless `use` is `'bound'`). Returns a Uint8Array
 * key itself, not a copy.
 */
export function encodeKey(encoding: KeyEncoding, key: unknown, use: KeyUse = 'key'): Uint8Array {
  if (key instanceof Uint8Array) {
    if (encoding === 'utf8' && use === 'key' && !isUtf8(key)) {
      throw new TypeError(
        `key is a Uint8Array that is not valid UTF-8 (${Buffer.from(key.buffer, key.byteOffset, Math.min(key.byteLength, 16)).toString('hex')}${key.byteLength > 16 ? '...' : ''}): ` +
          `under keyEncoding 'utf8' it could not be read back as itself; use keyEncoding 'binary' for arbitrary bytes`,
      );
    }
    return key;
  }
  if (encoding === 'utf8' && typeof key === 'string') {
    assertWellFormed(key, 'key');
    return Buffer.from(key, 'utf8');
  }
  throw new TypeError(
    encoding === 'utf8' ? `key must be a string or a Uint8Array, got ${typeName(key)}` : `key must be a Uint8Array, got ${typeName(key)}`,
  );
}

/** Decodes key bytes for the caller: a string under `utf8`, a Buffer under `binary`. Never throws. */
export function decodeKey(encoding: KeyEncoding, bytes: Uint8Array): string | Buffer {
  // A copy under binary: the caller owns what it gets and may change it.
  if (encoding === 'binary') return copyOf(bytes);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/**
 * A copy of `bytes` in a new Buffer, from Node's pool for small ones. `Buffer.from(buffer)`
 * takes twice as long for the 16 to 100 bytes of a typical key or value (it builds a view first).
 */
function copyOf(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  out.set(bytes);
  return out;
}

/** Encodes a value; throws `TypeError` for a value the encoding cannot round-trip. */
export function encodeValue(encoding: ValueEncoding, value: unknown): Uint8Array {
  switch (encoding) {
    case 'binary':
      if (value instanceof Uint8Array) return value;
      throw new TypeError(`value must be a Uint8Array under valueEncoding 'binary', got ${typeName(value)}`);
    case 'utf8':
      if (typeof value === 'string') {
        assertWellFormed(value, 'value');
        return Buffer.from(value, 'utf8');
      }
      throw new TypeError(`value must be a string under valueEncoding 'utf8', got ${typeName(value)}`);
    case 'json':
      assertEncodable(value, 'json', 'value', new Set());
      return Buffer.from(JSON.stringify(value), 'utf8');
    case 'msgpack':
      assertEncodable(value, 'msgpack', 'value', new Set());
      return packr.pack(value);
  }
}

/**
 * Decodes value bytes written by {@link encodeValue} with the same encoding. Throws
 * `DecodeError` carrying `key` (the entry's raw key bytes) for bytes that encoding did not write.
 */
export function decodeValue(encoding: ValueEncoding, bytes: Uint8Array, key: Uint8Array): unknown {
  if (encoding === 'binary') return copyOf(bytes); // a copy: the caller owns it
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    switch (encoding) {
      case 'utf8':
        return utf8Text(buf);
      case 'json':
        return JSON.parse(utf8Text(buf));
      case 'msgpack':
        // msgpackr's native string reader (msgpackr-extract) misreads shared memory, and can
        // crash the process on it: the memtable's values are views of SharedArrayBuffers.
        return checkUnpacked(packr.unpack(buf.buffer instanceof SharedArrayBuffer ? Buffer.from(buf) : buf), buf);
    }
  } catch (err) {
    throw new DecodeError(key, encoding, err);
  }
}

/**
 * {@link decodeValue} of the value `bytes[start..end)`: the read path's, which finds values as a
 * range of a block or an arena chunk (`Found`). Under `binary` the copy is made straight from the
 * range, with no view in between.
 */
export function decodeValueAt(encoding: ValueEncoding, bytes: Uint8Array, start: number, end: number, key: Uint8Array): unknown {
  if (encoding === 'binary') {
    const n = end - start;
    const out = Buffer.allocUnsafe(n);
    // A loop for a few bytes: cheaper than making the view that `set` needs.
    if (n <= 32) for (let i = 0; i < n; i++) out[i] = bytes[start + i]!;
    else out.set(bytes.subarray(start, end));
    return out;
  }
  return decodeValue(encoding, bytes.subarray(start, end), key);
}

/**
 * What msgpackr returns is not always a value {@link encodeValue} could have written: for bytes
 * MessagePack does not define it returns a placeholder (0xc1, the "never used" byte, decodes to
 * msgpackr's `C1` object), a 64-bit integer past 2^53 decodes to a BigInt, ext type 0 to
 * undefined, a bad timestamp to an invalid Date, and invalid UTF-8 in a string is replaced by
 * U+FFFD. Each of these would be a wrong value, so each is refused (the caller turns it into a
 * `DecodeError`). The walk accepts exactly what `encodeValue` accepts; a decoded string holding
 * U+FFFD (rare: invalid bytes, or the character stored on purpose) is settled by encoding the
 * value again, which gives back the stored bytes exactly when they were written by this encoder
 * (it is deterministic), and other bytes when invalid UTF-8 was replaced.
 */
function checkUnpacked(v: unknown, buf: Buffer): unknown {
  // The common case, a primitive, costs one typeof.
  switch (typeof v) {
    case 'number':
    case 'boolean':
      return v;
    case 'string':
      if (v.includes('\ufffd')) checkRepacks(v, buf);
      return v;
    default:
      if (v === null) return v;
  }
  if (walkUnpacked(v)) checkRepacks(v, buf);
  return v;
}

/**
 * Throws if `v` is not a value msgpack encodes; returns whether a string in it holds U+FFFD.
 * Runs on every read of a non-primitive value, so it builds nothing (no paths, no entry arrays).
 */
function walkUnpacked(v: unknown): boolean {
  switch (typeof v) {
    case 'string':
      return v.includes('\ufffd');
    case 'number':
    case 'boolean':
      return false;
    case 'object':
      break;
    default:
      throw new TypeError(`msgpack decoded a ${typeof v}, which the msgpack encoding never writes`);
  }
  if (v === null) return false;
  // msgpackr builds a fresh object or array for each one in the data: no cycles to guard against.
  let suspicious = false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (walkUnpacked(v[i])) suspicious = true;
    return suspicious;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto === Object.prototype || proto === null) {
    const o = v as { [k: string]: unknown };
    for (const k in o) {
      if (k.includes('\ufffd')) suspicious = true;
      if (walkUnpacked(o[k])) suspicious = true;
    }
    return suspicious;
  }
  if (v instanceof Uint8Array) return false;
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new TypeError('msgpack decoded an invalid Date');
    return false;
  }
  throw new TypeError(`msgpack decoded a ${typeName(v)} (0xc1 or an unknown extension), which the msgpack encoding never writes`);
}

function checkRepacks(v: unknown, buf: Buffer): void {
  if (!buf.equals(packr.pack(v))) throw new TypeError('a string holds bytes that are not valid UTF-8');
}

/**
 * The text of UTF-8 bytes; throws `TypeError` if they are not valid UTF-8. Invalid bytes always
 * decode to at least one U+FFFD, so only a string holding one needs its bytes checked.
 */
function utf8Text(buf: Buffer): string {
  const s = buf.toString('utf8');
  if (s.includes('\ufffd') && !isUtf8(buf)) throw new TypeError('the bytes are not valid UTF-8');
  return s;
}

function assertEncodable(v: unknown, enc: 'json' | 'msgpack', at: string, seen: Set<object>): void {
  switch (typeof v) {
    case 'string':
      // JSON escapes a lone surrogate (\ud800) and reads it back; msgpack writes UTF-8.
      if (enc === 'msgpack') assertWellFormed(v, at);
      return;
    case 'boolean':
      return;
    case 'number':
      if (enc === 'json' && !Number.isFinite(v)) throw new TypeError(`${at}: json cannot represent ${v}`);
      // Both encodings write -0 as 0.
      if (Object.is(v, -0)) throw new TypeError(`${at}: ${enc} cannot represent -0 (it would read back as 0)`);
      return;
    case 'object':
      break;
    default:
      throw new TypeError(`${at}: ${enc} cannot represent a ${typeof v}`);
  }
  if (v === null) return;
  if (enc === 'msgpack' && v instanceof Uint8Array) return;
  if (enc === 'msgpack' && v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new TypeError(`${at}: msgpack cannot represent an invalid Date`);
    return;
  }
  if (seen.has(v as object)) throw new TypeError(`${at}: ${enc} cannot represent a circular structure`);
  seen.add(v as object);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      if (!(i in v)) throw new TypeError(`${at}[${i}]: ${enc} cannot represent an array hole`);
      assertEncodable(v[i], enc, `${at}[${i}]`, seen);
    }
  } else {
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError(`${at}: ${enc} cannot represent a ${typeName(v)} (only plain objects)`);
    }
    for (const [k, x] of Object.entries(v as object)) {
      if (enc === 'msgpack') assertWellFormed(k, `${at} key`);
      // msgpackr renames an own __proto__ key (its prototype-pollution guard).
      if (enc === 'msgpack' && k === '__proto__') throw new TypeError(`${at}: msgpack cannot represent an own '__proto__' key`);
      assertEncodable(x, enc, `${at}.${k}`, seen);
    }
  }
  seen.delete(v as object);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}
