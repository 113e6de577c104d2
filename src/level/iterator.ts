/**
 * The iterators of a {@link SedimentLevel}: entries (`db.iterator()`), keys (`db.keys()`) and
 * values (`db.values()`), each over one sediment {@link DBIterator}, which reads the snapshot
 * given (`{ snapshot }`) or one taken when the iterator is created (implicit snapshots).
 *
 * abstract-level encodes range options and seek targets before they get here, decodes what
 * leaves, counts the `limit` and refuses reads once the `signal` has aborted. What is left to the
 * implementation, done here:
 * - **seek**, with Level's rule for a target outside the range: the iterator is then exhausted
 *   (until the next seek). A forward iterator's target below its lower bound (or equal to an
 *   exclusive one) is outside; so is a reverse iterator's above its upper bound. sediment's own
 *   seek would clamp such a target to the bound instead.
 * - **signals**: a read in progress (`next`, `nextv`, `all`) rejects with `LEVEL_ABORTED` if the
 *   signal aborts before it completes; long reads check it between chunks of 1024 entries.
 * - **chunking**: `nextv(size)` and `all()` take entries from sediment 1024 at a time and let
 *   the event loop run between chunks, so a long read neither starves other work nor misses an
 *   abort, whatever the size asked.
 *
 * @module
 */
import { AbstractIterator, AbstractKeyIterator, AbstractValueIterator } from 'abstract-level';
import type { DBIterator } from '../db/db.js';
import { AbortError, levelError } from './errors.js';

/**
 * Entries taken from sediment at a time by `nextv` and `all`. Between chunks the event loop runs
 * (so other work goes on, and an abort from a timer or I/O callback lands), then the signal is
 * checked.
 */
const CHUNK = 1024;

const breathe = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Range options in the private API: encoded bounds (bytes), a whole `limit` (-1 for none). */
export interface PrivateRangeOptions {
  gt?: Uint8Array;
  gte?: Uint8Array;
  lt?: Uint8Array;
  lte?: Uint8Array;
  reverse: boolean;
  limit: number;
}

/** What abstract-level passes to `_iterator`, `_keys` and `_values`. */
export interface PrivateIteratorOptions extends PrivateRangeOptions {
  keys?: boolean;
  values?: boolean;
  signal?: AbortSignal | null;
  snapshot?: unknown;
  keyEncoding: string;
  valueEncoding?: string;
}

type Entry = [Uint8Array | undefined, Uint8Array | undefined];

/**
 * The work the three iterator classes share: a sediment iterator, the range (for Level's seek
 * rule), the signal.
 */
class Cursor<T> {
  readonly #it: DBIterator<Uint8Array, Uint8Array>;
  readonly #map: (e: Entry) => T;
  readonly #signal: AbortSignal | null;
  /** The lower and upper bounds, and whether each is inclusive (gte wins over gt, lte over lt). */
  readonly #lower: Uint8Array | undefined;
  readonly #lowerInclusive: boolean;
  readonly #upper: Uint8Array | undefined;
  readonly #upperInclusive: boolean;
  readonly #reverse: boolean;
  /** Set by a seek to a target outside the range: nothing more until the next seek. */
  #exhausted = false;

  constructor(it: DBIterator<Uint8Array, Uint8Array>, options: PrivateIteratorOptions, map: (e: Entry) => T) {
    this.#it = it;
    this.#map = map;
    this.#signal = options.signal ?? null;
    this.#lower = options.gte ?? options.gt;
    this.#lowerInclusive = options.gte !== undefined;
    this.#upper = options.lte ?? options.lt;
    this.#upperInclusive = options.lte !== undefined;
    this.#reverse = options.reverse;
  }

  async next(): Promise<T | undefined> {
    if (this.#exhausted) return undefined;
    let entry: Entry | undefined;
    try {
      entry = await this.#it.next();
    } catch (err) {
      throw levelError(err, 'iterator');
    }
    this.#checkSignal();
    return entry === undefined ? undefined : this.#map(entry);
  }

  async nextv(size: number): Promise<T[]> {
    const out: T[] = [];
    if (this.#exhausted) return out;
    try {
      while (out.length < size) {
        if (out.length > 0) await breathe();
        const want = Math.min(CHUNK, size - out.length);
        const chunk = await this.#it.nextv(want);
        this.#checkSignal();
        for (const e of chunk) out.push(this.#map(e));
        if (chunk.length < want) break;
      }
    } catch (err) {
      throw levelError(err, 'iterator');
    }
    return out;
  }

  async all(): Promise<T[]> {
    const out: T[] = [];
    if (this.#exhausted) return out;
    try {
      for (;;) {
        if (out.length > 0) await breathe();
        const chunk = await this.#it.nextv(CHUNK);
        this.#checkSignal();
        for (const e of chunk) out.push(this.#map(e));
        if (chunk.length < CHUNK) return out;
      }
    } catch (err) {
      throw levelError(err, 'iterator');
    }
  }

  seek(target: Uint8Array): void {
    if (this.#outOfRange(target)) {
      this.#exhausted = true;
      return;
    }
    try {
      this.#it.seek(target);
    } catch (err) {
      throw levelError(err, 'iterator');
    }
    this.#exhausted = false;
  }

  async close(): Promise<void> {
    await this.#it.close();
  }

  /** Level's rule: a target before the start of the range (in the iterator's direction) exhausts it. */
  #outOfRange(target: Uint8Array): boolean {
    if (!this.#reverse) {
      if (this.#lower === undefined) return false;
      const c = Buffer.compare(target, this.#lower);
      return this.#lowerInclusive ? c < 0 : c <= 0;
    }
    if (this.#upper === undefined) return false;
    const c = Buffer.compare(target, this.#upper);
    return this.#upperInclusive ? c > 0 : c >= 0;
  }

  /** A read in progress when the signal aborted rejects (abstract-level refuses the reads after it). */
  #checkSignal(): void {
    if (this.#signal?.aborted) throw new AbortError();
  }
}

// abstract-level's typings declare the public classes only; the private methods below are what
// abstract-level calls (its README, "Private API For Implementors").

/** `db.iterator()`: `[key, value]` entries (either half `undefined` under `keys: false` / `values: false`). */
export class SedimentEntryIterator extends AbstractIterator<object, Uint8Array, Uint8Array> {
  readonly #cursor: Cursor<Entry>;

  /** @internal */
  constructor(db: object, it: DBIterator<Uint8Array, Uint8Array>, options: PrivateIteratorOptions) {
    super(db, options as never);
    this.#cursor = new Cursor(it, options, (e) => e);
  }

  async _next(): Promise<Entry | undefined> {
    return this.#cursor.next();
  }

  async _nextv(size: number): Promise<Entry[]> {
    return this.#cursor.nextv(size);
  }

  async _all(): Promise<Entry[]> {
    return this.#cursor.all();
  }

  _seek(target: Uint8Array): void {
    this.#cursor.seek(target);
  }

  async _close(): Promise<void> {
    await this.#cursor.close();
  }
}

/** `db.keys()`. */
export class SedimentKeyIterator extends AbstractKeyIterator<object, Uint8Array> {
  readonly #cursor: Cursor<Uint8Array | undefined>;

  /** @internal */
  constructor(db: object, it: DBIterator<Uint8Array, Uint8Array>, options: PrivateIteratorOptions) {
    super(db, options as never);
    this.#cursor = new Cursor(it, options, (e) => e[0]);
  }

  async _next(): Promise<Uint8Array | undefined> {
    return this.#cursor.next();
  }

  async _nextv(size: number): Promise<(Uint8Array | undefined)[]> {
    return this.#cursor.nextv(size);
  }

  async _all(): Promise<(Uint8Array | undefined)[]> {
    return this.#cursor.all();
  }

  _seek(target: Uint8Array): void {
    this.#cursor.seek(target);
  }

  async _close(): Promise<void> {
    await this.#cursor.close();
  }
}

/** `db.values()`. */
export class SedimentValueIterator extends AbstractValueIterator<object, Uint8Array, Uint8Array> {
  readonly #cursor: Cursor<Uint8Array | undefined>;

  /** @internal */
  constructor(db: object, it: DBIterator<Uint8Array, Uint8Array>, options: PrivateIteratorOptions) {
    super(db, options as never);
    this.#cursor = new Cursor(it, options, (e) => e[1]);
  }

  async _next(): Promise<Uint8Array | undefined> {
    return this.#cursor.next();
  }

  async _nextv(size: number): Promise<(Uint8Array | undefined)[]> {
    return this.#cursor.nextv(size);
  }

  async _all(): Promise<(Uint8Array | undefined)[]> {
    return this.#cursor.all();
  }

  _seek(target: Uint8Array): void {
    this.#cursor.seek(target);
  }

  async _close(): Promise<void> {
    await this.#cursor.close();
  }
}
