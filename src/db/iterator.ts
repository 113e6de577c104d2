/**
 * The DB's iterator ({@link DBIterator}), in the style of abstract-level, and the checks of its
 * options. It reads a snapshot: the memtables and table set pinned when it was made (or the
 * `snapshot` option's), through a merging cursor; entries past the range, tombstones and expired
 * entries are skipped. `next()` is per entry, `nextv(n)` and `for await` per chunk, and a long
 * scan yields to the event loop every {@link ITERATOR_SLICE} entries.
 *
 * @module
 */
import { compareKeys, type Entry, type EntryCursor } from '../entry.js';
import { ClosedError } from '../errors.js';
import { MergingCursor } from './merge.js';
import type { Snapshot } from './snapshot.js';

/** Entries a scan hands out between two yields to the event loop. */
const ITERATOR_SLICE = 1024;
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Range and direction of an iterator; bounds are keys in the DB's key encoding. */
export interface IteratorOptions<K> {
  gt?: K;
  gte?: K;
  lt?: K;
  lte?: K;
  /** Descending key order. */
  reverse?: boolean;
  /** At most this many entries; -1 or Infinity for no limit (default). */
  limit?: number;
  /** Read this snapshot (from `db.snapshot()`) instead of taking one. */
  snapshot?: Snapshot;
  /** Decode keys (default true); false leaves the key of each entry `undefined`. */
  keys?: boolean;
  /** Decode values (default true); false leaves the value of each entry `undefined`. */
  values?: boolean;
}

const ITERATOR_OPTIONS: ReadonlySet<string> = new Set(['gt', 'gte', 'lt', 'lte', 'reverse', 'limit', 'snapshot', 'keys', 'values']);

interface CheckedIteratorOptions<K> {
  gt?: K;
  gte?: K;
  lt?: K;
  lte?: K;
  reverse: boolean;
  limit: number;
  snapshot: unknown;
  keys: boolean;
  values: boolean;
}

/** Checks iterator options: known names only, booleans, a whole `limit` (-1 or Infinity: none). */
export function checkIteratorOptions<K>(options: unknown): CheckedIteratorOptions<K> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new TypeError('iterator options must be an object');
  for (const name of Object.keys(options)) {
    if (!ITERATOR_OPTIONS.has(name)) throw new TypeError(`unknown iterator option '${name}' (known: ${[...ITERATOR_OPTIONS].join(', ')})`);
  }
  const o = options as IteratorOptions<K>;
  const flag = (name: 'reverse' | 'keys' | 'values', fallback: boolean): boolean => {
    const v: unknown = o[name];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${typeof v}`);
    return v;
  };
  let limit: unknown = o.limit;
  if (limit === undefined || limit === -1 || limit === Infinity) limit = Infinity;
  else if (typeof limit !== 'number') throw new TypeError(`limit must be a number, got ${limit === null ? 'null' : typeof limit}`);
  else if (!Number.isSafeInteger(limit) || limit < 0)
    throw new RangeError(`limit must be a non-negative integer, or -1 or Infinity for none, got ${limit}`);
  return {
    gt: o.gt,
    gte: o.gte,
    lt: o.lt,
    lte: o.lte,
    reverse: flag('reverse', false),
    limit: limit as number,
    snapshot: o.snapshot,
    keys: flag('keys', true),
    values: flag('values', true),
  };
}

/** @internal What the DB hands a new iterator. */
export interface IteratorInit<K, V> {
  cursors: EntryCursor[];
  release(): void;
  lower: Uint8Array | undefined;
  lowerInclusive: boolean;
  upper: Uint8Array | undefined;
  upperInclusive: boolean;
  reverse: boolean;
  limit: number;
  now: number;
  decode(e: Entry): [K, V];
  encodeTarget(target: unknown): Uint8Array;
  isOpen(): boolean;
  onClose(): void;
}

/** Entries `for await` takes from the iterator at a time: one promise per chunk, not per entry. */
const ASYNC_ITERATION_CHUNK = 256;

/**
 * An iterator over a snapshot of the DB, in the style of abstract-level: `next()` resolves the
 * next `[key, value]` or `undefined` at the end, `nextv(n)` up to `n` of them (`[]` at the end),
 * `seek(target)` moves within the same snapshot, `close()` releases it. `for await` and `all()`
 * close it when they end (or break); with `next()`/`nextv()`, call `close()`.
 */
export class DBIterator<K, V> implements AsyncIterable<[K, V]> {
  readonly #init: IteratorInit<K, V>;
  #merge: MergingCursor | undefined;
  /** Where the cursors start: the bound, or the target of the last seek. */
  #start: Uint8Array | undefined;
  #count = 0;
  /** Entries handed out since the iterator last yielded to the event loop. */
  #sinceYield = 0;
  /** A seek outside the range: nothing more until the next seek. */
  #outside = false;
  #closed = false;

  /** @internal */
  constructor(init: IteratorInit<K, V>) {
    this.#init = init;
    this.#start = init.reverse ? init.upper : init.lower;
  }

  #position(): MergingCursor {
    const { cursors, reverse } = this.#init;
    const start = this.#start;
    for (const c of cursors) {
      if (reverse) {
        if (start) c.seekForPrev(start);
        else c.seekToLast();
      } else if (start) c.seek(start);
      else c.seekToFirst();
    }
    return new MergingCursor(cursors, reverse);
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('the iterator');
    if (!this.#init.isOpen()) {
      this.release();
      throw new ClosedError('the database');
    }
  }

  /**
   * True once every ITERATOR_SLICE entries: then the caller yields to the event loop (a long scan
   * must not starve other work). A plain check, so that the other entries pay no await.
   */
  #due(): boolean {
    if (++this.#sinceYield < ITERATOR_SLICE) return false;
    this.#sinceYield = 0;
    return true;
  }

  async #breathe(): Promise<void> {
    await yieldToLoop();
    this.#check();
  }

  /** The next entry, or `undefined` at the end (or past `limit`). */
  async next(): Promise<[K, V] | undefined> {
    this.#check();
    if (this.#due()) await this.#breathe();
    try {
      const entry = this.#advance();
      if (!entry) return undefined;
      this.#count++;
      return this.#init.decode(entry);
    } catch (err) {
      this.release();
      throw err;
    }
  }

  /** Up to `size` next entries (fewer at the end, `[]` once there is none). */
  async nextv(size: number): Promise<[K, V][]> {
    if (typeof size !== 'number') throw new TypeError(`nextv takes a number of entries, got ${typeof size}`);
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`nextv size must be a non-negative integer, got ${size}`);
    this.#check();
    const out: [K, V][] = [];
    try {
      while (out.length < size) {
        const entry = this.#advance();
        if (!entry) break;
        this.#count++;
        out.push(this.#init.decode(entry));
        if (out.length < size && this.#due()) await this.#breathe();
      }
    } catch (err) {
      this.release();
      throw err;
    }
    return out;
  }

  /**
   * Moves the iterator within its snapshot: forward, to the first entry `>= target`; reverse, to
   * the last `<= target`. As in abstract-level, a target outside the iterator's range (before it,
   * in the iterator's direction) leaves nothing to read until the next seek. The `limit` counts
   * on.
   */
  seek(target: K | Uint8Array): void {
    this.#check();
    const t = this.#init.encodeTarget(target);
    const { reverse, lower, lowerInclusive, upper, upperInclusive } = this.#init;
    this.#outside = reverse
      ? upper !== undefined && compareKeys(t, upper) > (upperInclusive ? 0 : -1)
      : lower !== undefined && compareKeys(t, lower) < (lowerInclusive ? 0 : 1);
    this.#start = t;
    this.#merge = undefined;
  }

  #advance(): Entry | undefined {
    const i = this.#init;
    if (this.#count >= i.limit || this.#outside) return undefined;
    this.#merge ??= this.#position();
    for (let e = this.#merge.next(); e; e = this.#merge.next()) {
      if (i.reverse) {
        if (i.lower && compareKeys(e.key, i.lower) < (i.lowerInclusive ? 0 : 1)) return undefined;
        if (i.upper && !i.upperInclusive && compareKeys(e.key, i.upper) >= 0) continue;
      } else {
        if (i.upper && compareKeys(e.key, i.upper) > (i.upperInclusive ? 0 : -1)) return undefined;
        if (i.lower && !i.lowerInclusive && compareKeys(e.key, i.lower) <= 0) continue;
      }
      if (e.kind === 'delete' || (e.expiresAt !== undefined && e.expiresAt <= i.now)) continue;
      return e;
    }
    return undefined;
  }

  /** @internal Releases the snapshot; later calls reject with CLOSED. Idempotent. */
  release(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#init.release();
    this.#init.onClose();
  }

  /** Releases the iterator's snapshot. Idempotent. */
  async close(): Promise<void> {
    this.release();
  }

  /** Collects the remaining entries into an array, then closes the iterator. */
  async all(): Promise<[K, V][]> {
    const out: [K, V][] = [];
    try {
      for (;;) {
        const chunk = await this.nextv(ITERATOR_SLICE);
        if (chunk.length === 0) return out;
        for (const kv of chunk) out.push(kv);
      }
    } finally {
      this.release();
    }
  }

  /** `for await (const [key, value] of it)`: entries in chunks; ending or breaking the loop closes the iterator. */
  [Symbol.asyncIterator](): AsyncIterator<[K, V]> {
    let chunk: [K, V][] = [];
    let at = 0;
    return {
      next: async (): Promise<IteratorResult<[K, V]>> => {
        if (at >= chunk.length) {
          try {
            chunk = await this.nextv(ASYNC_ITERATION_CHUNK);
          } catch (err) {
            this.release();
            throw err;
          }
          at = 0;
          if (chunk.length === 0) {
            this.release();
            return { done: true, value: undefined };
          }
        }
        return { done: false, value: chunk[at++]! };
      },
      return: async (): Promise<IteratorResult<[K, V]>> => {
        this.release();
        return { done: true, value: undefined };
      },
    };
  }

  /** `await using it = db.iterator()` closes it at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }
}
