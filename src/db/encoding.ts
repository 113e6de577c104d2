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
 * Keys are `utf8` (strings, returned as strings) or `binary` (returned as Buffer); a Uint8Array
 * key is accepted under either. Keys order bytewise by their encoded bytes.
 *
 * @module
 */
import { Packr } from 'msgpackr';

export type KeyEncoding = 'utf8' | 'binary';
export type ValueEncoding = 'msgpack' | 'json' | 'utf8' | 'binary';

export const KEY_ENCODINGS: readonly KeyEncoding[] = ['utf8', 'binary'];
export const VALUE_ENCODINGS: readonly ValueEncoding[] = ['msgpack', 'json', 'utf8', 'binary'];

/** A value the msgpack encoding round-trips. */
export type MsgpackValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | Date
  | MsgpackValue[]
  | { [key: string]: MsgpackValue };

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

/** Encodes a key to bytes; throws `TypeError` for a key the encoding does not accept. */
export function encodeKey(encoding: KeyEncoding, key: unknown): Uint8Array {
  if (key instanceof Uint8Array) return key;
  if (encoding === 'utf8' && typeof key === 'string') {
    assertWellFormed(key, 'key');
    return Buffer.from(key, 'utf8');
  }
  throw new TypeError(
    encoding === 'utf8' ? `key must be a string or a Uint8Array, got ${typeName(key)}` : `key must be a Uint8Array, got ${typeName(key)}`,
  );
}

/** Decodes key bytes for the caller: a string under `utf8`, a Buffer under `binary`. */
export function decodeKey(encoding: KeyEncoding, bytes: Uint8Array): string | Buffer {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // A copy under binary: the caller owns what it gets and may change it.
  return encoding === 'utf8' ? buf.toString('utf8') : Buffer.from(buf);
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

/** Decodes value bytes written by {@link encodeValue} with the same encoding. */
export function decodeValue(encoding: ValueEncoding, bytes: Uint8Array): unknown {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (encoding) {
    case 'binary':
      return Buffer.from(buf); // a copy: the caller owns it
    case 'utf8':
      return buf.toString('utf8');
    case 'json':
      return JSON.parse(buf.toString('utf8'));
    case 'msgpack':
      return packr.unpack(buf);
  }
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
