/**
 * The entry: the unit every storage layer of sediment holds (memtables, tables), and the cursor
 * contract they share so that the DB can merge them.
 *
 * An entry is one version of one key: a sequence number, a `put` with its value or a `delete`
 * (a tombstone, whose value is empty), and an optional expiry. Keys order bytewise (unsigned
 * lexicographic order of their bytes, a shorter key before its extensions), as LevelDB orders
 * them; a string key orders by its UTF-8 bytes.
 *
 * @module
 */

/** What an entry does to its key. */
export type EntryKind = 'put' | 'delete';

/** One version of one key. Treat entries and their byte arrays as immutable once handed over. */
export interface Entry {
  /** The key's bytes. */
  readonly key: Uint8Array;
  /** Sequence number: a non-negative integer up to {@link MAX_SEQ}. Higher is newer. */
  readonly seq: number;
  /** `put` stores `value`; `delete` is a tombstone. */
  readonly kind: EntryKind;
  /** The value of a `put`; empty for a `delete`. */
  readonly value: Uint8Array;
  /**
   * Expiry time in milliseconds since the Unix epoch (a non-negative integer up to
   * {@link MAX_SEQ}), or `undefined` for none. The storage layers only carry it: what expiry
   * means is the DB's decision.
   */
  readonly expiresAt?: number | undefined;
}

/** The largest sequence number (and expiry time): 2^53 - 1, the largest exact integer. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

const EMPTY = new Uint8Array(0);

/** An empty value, shared by the tombstones this package creates. */
export const EMPTY_VALUE: Uint8Array = EMPTY;

/**
 * Checks an entry given by a caller. Throws `TypeError` for a wrong type (a key that is not a
 * `Uint8Array`, an unknown kind) and `RangeError` for a value out of range (a negative or
 * fractional seq, a delete that carries a value).
 */
export function validateEntry(entry: Entry): void {
  if (typeof entry !== 'object' || entry === null) throw new TypeError('entry must be an object');
  if (!(entry.key instanceof Uint8Array)) throw new TypeError('entry.key must be a Uint8Array');
  if (typeof entry.seq !== 'number') throw new TypeError('entry.seq must be a number');
  if (!Number.isSafeInteger(entry.seq) || entry.seq < 0) {
    throw new RangeError(`entry.seq must be an integer in [0, 2^53): ${entry.seq}`);
  }
  if (entry.kind === 'put') {
    if (!(entry.value instanceof Uint8Array)) throw new TypeError('entry.value of a put must be a Uint8Array');
  } else if (entry.kind === 'delete') {
    const v: unknown = entry.value;
    if (v !== undefined && !(v instanceof Uint8Array)) throw new TypeError('entry.value must be a Uint8Array');
    if (v instanceof Uint8Array && v.length !== 0) throw new RangeError('a delete carries no value');
  } else {
    throw new TypeError(`entry.kind must be 'put' or 'delete': ${String(entry.kind)}`);
  }
  const exp = entry.expiresAt;
  if (exp !== undefined) {
    if (typeof exp !== 'number') throw new TypeError('entry.expiresAt must be a number or undefined');
    if (!Number.isSafeInteger(exp) || exp < 0) {
      throw new RangeError(`entry.expiresAt must be an integer in [0, 2^53): ${exp}`);
    }
  }
}

/**
 * A normalized copy of a valid entry's fields: always the same object shape (so the engine's
 * property accesses stay monomorphic), an empty value for a delete. Byte arrays are shared, not
 * copied.
 */
export function normalizeEntry(entry: Entry): Entry {
  return {
    key: entry.key,
    seq: entry.seq,
    kind: entry.kind,
    value: entry.kind === 'put' ? entry.value : EMPTY,
    expiresAt: entry.expiresAt,
  };
}

/**
 * Bytewise comparison of two keys: negative if `a` sorts before `b`, zero if equal, positive
 * after. A JavaScript loop: for the short keys of a store it beats a native `Buffer.compare`,
 * whose call costs more than comparing a few dozen bytes.
 */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** Where a new cursor starts and which way its `for...of` goes. */
export interface CursorOptions {
  /**
   * Start key. Forward: the first entry with a key `>= start`; reverse: the last entry with a
   * key `<= start`. Default: the first (forward) or last (reverse) entry.
   */
  start?: Uint8Array | undefined;
  /** Iterate from high keys to low. Default false. */
  reverse?: boolean | undefined;
}

/**
 * A bidirectional cursor over entries in key order, after LevelDB's `Iterator`. Every movement
 * returns the entry it lands on, or `undefined` when it runs off either end (the cursor is then
 * unpositioned until the next seek). Moving an unpositioned cursor with `next`/`prev` keeps it
 * unpositioned.
 *
 * A cursor is also iterable: `for...of` yields the current entry, then moves in the direction the
 * cursor was created with, until it runs off the end.
 *
 * Cursors see a fixed snapshot: the memtable's cursor a frozen view, a table's an immutable file.
 */
export interface EntryCursor extends Iterable<Entry> {
  /** The entry under the cursor, or `undefined` when unpositioned. */
  readonly current: Entry | undefined;
  /** Moves to the first entry with a key `>= key`. */
  seek(key: Uint8Array): Entry | undefined;
  /** Moves to the last entry with a key `<= key`. */
  seekForPrev(key: Uint8Array): Entry | undefined;
  /** Moves to the first entry. */
  seekToFirst(): Entry | undefined;
  /** Moves to the last entry. */
  seekToLast(): Entry | undefined;
  /** Moves to the next entry (higher key). */
  next(): Entry | undefined;
  /** Moves to the previous entry (lower key). */
  prev(): Entry | undefined;
}

/** Positions a new cursor as {@link CursorOptions} say. */
export function positionCursor(cursor: EntryCursor, options: CursorOptions | undefined): void {
  const start = options?.start;
  if (start !== undefined && !(start instanceof Uint8Array)) throw new TypeError('start must be a Uint8Array');
  if (options?.reverse === true) {
    if (start === undefined) cursor.seekToLast();
    else cursor.seekForPrev(start);
  } else if (start === undefined) {
    cursor.seekToFirst();
  } else {
    cursor.seek(start);
  }
}

/** Checks a key argument of a lookup or seek. */
export function checkKey(key: unknown): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array)) throw new TypeError('key must be a Uint8Array');
}
