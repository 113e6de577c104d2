/**
 * {@link SedimentLevel}: sediment as an abstract-level 3 store, for the Level ecosystem
 * (sublevels, encodings, hooks, events, and every module that takes an abstract-level database).
 *
 * abstract-level does the public half: deferred open, encodings (it hands this class bytes and
 * expects bytes back: the manifest declares the `buffer` and `view` formats), sublevels (key
 * prefixes), chained batches (over `_batch`), events, hooks, resource tracking and argument
 * checks. This class maps its private methods onto one sediment {@link DB}, opened with
 * `keyEncoding: 'binary'` and `valueEncoding: 'binary'`:
 * - reads (`_get`, `_getSync`, `_getMany`, `_has`, `_hasMany`) are sediment's synchronous lookups,
 *   so each reads the state at the moment of the call (implicit snapshots), or the snapshot given;
 * - iterators (`_iterator`, `_keys`, `_values`) are sediment iterators, which take their snapshot
 *   when created (see ./iterator.ts for seek, signals and chunking);
 * - `_snapshot` is sediment's `db.snapshot()`;
 * - `_clear` deletes the range's keys as of the call (or of the snapshot given), in batches of
 *   1024; keys written through this database after the call are left alone (see {@link _clear});
 * - errors become Level's codes with the sediment error as `cause` (./errors.ts).
 *
 * @module
 */
import * as path from 'node:path';
import {
  AbstractLevel,
  type AbstractDatabaseOptions,
  type AbstractPutOptions,
  type AbstractDelOptions,
  type AbstractBatchOptions,
  type AbstractBatchOperation,
  type AbstractChainedBatch,
} from 'abstract-level';
import ModuleError from 'module-error';
import { errnoOf, IoError } from '../errors.js';
import { DB, type BatchOperation, type DBIterator, type IteratorOptions, type PutOptions, type ReadOptions } from '../db/db.js';
import { CURRENT_FILE } from '../db/filenames.js';
import { resolveDBOptions, type DBOptions } from '../db/options.js';
import { levelError } from './errors.js';
import {
  SedimentEntryIterator,
  SedimentKeyIterator,
  SedimentValueIterator,
  type PrivateIteratorOptions,
  type PrivateRangeOptions,
} from './iterator.js';
import { SedimentSnapshot } from './snapshot.js';

/**
 * The sediment options a SedimentLevel takes: every option of `DB.open` but the encodings, which
 * are Level's (`keyEncoding`, `valueEncoding`: abstract-level encodes, sediment stores bytes).
 */
export type SedimentOptions = Omit<DBOptions, 'keyEncoding' | 'valueEncoding'>;

/** Options of `new SedimentLevel(location, options)`: Level's, and sediment's. */
export interface SedimentLevelOptions<K, V> extends AbstractDatabaseOptions<K, V>, SedimentOptions {}

/** What writes take beyond Level's options. */
export interface SedimentWriteOptions {
  /** Resolve only once the write is on stable storage (an fdatasync), whatever the fsync policy; as classic-level's `sync`. */
  sync?: boolean;
}

/** Options of `put`: Level's, `sync`, and sediment's `ttlMs`. */
export interface SedimentPutOptions<K, V> extends AbstractPutOptions<K, V>, SedimentWriteOptions {
  /** Time to live in ms: after it the key reads as absent (sediment's TTL). */
  ttlMs?: number;
}

/** Options of `del`: Level's and `sync`. */
export interface SedimentDelOptions<K> extends AbstractDelOptions<K>, SedimentWriteOptions {}

/** Options of `batch(operations, options)`: Level's, `sync` for the whole batch, and a default `ttlMs` for its puts. */
export interface SedimentBatchOptions<K, V> extends AbstractBatchOptions<K, V>, SedimentWriteOptions {
  ttlMs?: number;
}

/**
 * Each sediment option name, so that a Level option (or a userland one, which abstract-level
 * forwards to `open`) never reaches `DB.open`, which refuses names it does not know. A `Record`
 * over the type's keys: a new DB option that is not listed here is a compile error.
 */
const SEDIMENT_OPTION_NAMES: Record<keyof SedimentOptions, true> = {
  fsync: true,
  memtableSize: true,
  compression: true,
  blockCacheSize: true,
  maxKeySize: true,
  maxValueSize: true,
  walSegmentSize: true,
  tableFileSize: true,
  levelBaseSize: true,
  levelMultiplier: true,
  maxRetainedBytes: true,
  l0CompactionTrigger: true,
  l0SlowdownTrigger: true,
  l0StopTrigger: true,
  maxFrozenMemtables: true,
  recovery: true,
  clock: true,
  fs: true,
  readOnly: true,
  meter: true,
  background: true,
};

/** Keys deleted per batch by `clear()`. */
const CLEAR_CHUNK = 1024;

/**
 * What the private API declares (abstract-level's `supports`): each flag is a feature this store
 * has, and turns on the abstract-level suite's tests of it.
 */
function manifest(): Record<string, unknown> {
  return {
    // abstract-level hands over, and takes back, bytes: Buffers or Uint8Arrays.
    encodings: { buffer: true, view: true },
    implicitSnapshots: true,
    explicitSnapshots: true,
    has: true,
    getSync: true,
    seek: true,
    permanence: true,
    createIfMissing: true,
    errorIfExists: true,
    signals: { iterators: true },
    additionalMethods: {},
  };
}

/**
 * Splits the constructor's options: sediment's (checked now: an invalid one is an
 * `InvalidConfigError` from the constructor, before anything is opened), and the rest for
 * abstract-level (Level's and userland options, which it forwards to `open` and its hooks).
 */
function splitOptions(options: object | undefined): { sediment: SedimentOptions; level: Record<string, unknown> } {
  const sediment: Record<string, unknown> = {};
  const level: Record<string, unknown> = {};
  if (options !== undefined && options !== null) {
    for (const [name, value] of Object.entries(options)) {
      if (!Object.hasOwn(SEDIMENT_OPTION_NAMES, name)) level[name] = value;
      else if (value !== undefined) sediment[name] = value;
    }
  }
  resolveDBOptions({ ...sediment, keyEncoding: 'binary', valueEncoding: 'binary' });
  return { sediment: sediment as SedimentOptions, level };
}

/** Bytes as sediment takes them: abstract-level's `view` format may hand over any ArrayBufferView. */
function bytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError(`expected a Buffer or Uint8Array from abstract-level, got ${typeof v}`);
}

/** A key as a string, for the set of keys written while a clear() runs. */
function keyId(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/** The sediment snapshot behind the `snapshot` option of a read, if any. */
function snapshotOf(snapshot: unknown): ReadOptions['snapshot'] {
  if (snapshot === undefined || snapshot === null) return undefined;
  if (!(snapshot instanceof SedimentSnapshot)) throw new TypeError('snapshot must come from snapshot() of this database');
  return snapshot.inner;
}

function readOptions(options: { snapshot?: unknown } | undefined): ReadOptions | undefined {
  const snapshot = snapshotOf(options?.snapshot);
  return snapshot === undefined ? undefined : { snapshot };
}

/** The sediment options of a put (or of a batch's put): `sync` per write, `ttlMs`. */
function putOptions(options: { sync?: unknown; ttlMs?: unknown }): PutOptions {
  const o: PutOptions = { sync: options.sync === true };
  if (options.ttlMs !== undefined) o.ttlMs = options.ttlMs as number;
  return o;
}

interface PrivateWriteOptions {
  keyEncoding: string;
  valueEncoding?: string;
  sync?: unknown;
  ttlMs?: unknown;
}

interface PrivateBatchOperation {
  type: 'put' | 'del';
  key: Uint8Array;
  value?: Uint8Array;
  ttlMs?: unknown;
}

interface PrivateClearOptions extends PrivateRangeOptions {
  snapshot?: unknown;
  keyEncoding: string;
}

/**
 * A sediment database as an abstract-level 3 database.
 *
 * ```ts
 * import { SedimentLevel } from 'sediment/level';
 * const db = new SedimentLevel('./data/app', { valueEncoding: 'json', fsync: { batchMs: 5 } });
 * await db.put('user:1', { name: 'Ada' });          // opens itself (deferred open)
 * const users = db.sublevel<string, object>('users', { valueEncoding: 'json' });
 * for await (const [key, value] of users.iterator({ gte: 'a', limit: 10 })) {}
 * await db.close();
 * ```
 *
 * The directory is a sediment DB whose keys and values are bytes: `DB.open(location, {
 * keyEncoding: 'binary', valueEncoding: 'binary' })` reads it (after `db.close()`), and a DB
 * made with other encodings does not open here (`InvalidConfigError` as the open's cause).
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the interface below only adds typed overloads (sync, ttlMs) to put/del/batch inherited from AbstractLevel; redeclaring them in the class would need implementations that override abstract-level's
export class SedimentLevel<KDefault = string, VDefault = string> extends AbstractLevel<Buffer | Uint8Array, KDefault, VDefault> {
  readonly #location: string;
  readonly #options: SedimentOptions;
  #db: DB<Buffer, Buffer> | undefined;
  /** One set per clear() running: the keys written since it was called, which it must not delete. */
  readonly #clears = new Set<Set<string>>();

  /**
   * Takes the directory and options; opens itself right after (abstract-level's deferred open:
   * operations wait for it), or on `await db.open()`. Throws `TypeError` for a bad location and
   * `InvalidConfigError` for a bad sediment option, before anything touches the disk.
   */
  constructor(location: string, options?: SedimentLevelOptions<KDefault, VDefault>) {
    if (typeof location !== 'string' || location === '') throw new TypeError("The first argument 'location' must be a non-empty string");
    const { sediment, level } = splitOptions(options);
    // Sediment's options configure the store once, here; abstract-level gets the others.
    super(manifest(), level);
    this.#location = location;
    this.#options = sediment;
  }

  /** The directory given to the constructor. */
  get location(): string {
    return this.#location;
  }

  /** @internal */
  async _open(options: { createIfMissing: boolean; errorIfExists: boolean }): Promise<void> {
    const exists = await this.#exists();
    if (!exists && !options.createIfMissing) {
      throw new ModuleError(`Database does not exist: ${this.#location} holds no sediment database (createIfMissing is false)`, {
        code: 'LEVEL_NOT_FOUND',
      });
    }
    if (exists && options.errorIfExists) {
      throw new ModuleError(`Database exists: ${this.#location} already holds a sediment database (errorIfExists is true)`, {
        code: 'LEVEL_EXISTS',
      });
    }
    try {
      this.#db = await DB.open<Buffer, Buffer>(this.#location, { ...this.#options, keyEncoding: 'binary', valueEncoding: 'binary' });
    } catch (err) {
      throw levelError(err);
    }
  }

  /** Whether the location holds a DB: sediment writes `CURRENT` last when it creates one, so it is the mark. */
  async #exists(): Promise<boolean> {
    const fs = resolveDBOptions(this.#options).fs;
    const file = path.join(this.#location, CURRENT_FILE);
    try {
      await fs.stat(file);
      return true;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT' || errno === 'ENOTDIR') return false;
      throw levelError(new IoError('stat', file, err));
    }
  }

  /** @internal */
  async _close(): Promise<void> {
    const db = this.#db;
    this.#db = undefined;
    try {
      await db?.close();
    } catch (err) {
      throw levelError(err);
    }
  }

  /** The open sediment DB: abstract-level calls the private methods only while open. */
  #database(): DB<Buffer, Buffer> {
    if (this.#db === undefined) throw new ModuleError('Database is not open', { code: 'LEVEL_DATABASE_NOT_OPEN' });
    return this.#db;
  }

  // -- reads: sediment's lookups are synchronous, so each reads the state at the moment of the call.

  /** @internal */
  async _get(key: Uint8Array, options: { snapshot?: unknown }): Promise<Buffer | undefined> {
    return this._getSync(key, options);
  }

  /** @internal */
  _getSync(key: Uint8Array, options: { snapshot?: unknown }): Buffer | undefined {
    try {
      return this.#database().getSync(bytes(key), readOptions(options));
    } catch (err) {
      throw levelError(err);
    }
  }

  /** @internal */
  async _getMany(keys: Uint8Array[], options: { snapshot?: unknown }): Promise<(Buffer | undefined)[]> {
    try {
      return await this.#database().getMany(keys.map(bytes), readOptions(options));
    } catch (err) {
      throw levelError(err);
    }
  }

  /** @internal */
  async _has(key: Uint8Array, options: { snapshot?: unknown }): Promise<boolean> {
    try {
      return await this.#database().has(bytes(key), readOptions(options));
    } catch (err) {
      throw levelError(err);
    }
  }

  /** @internal All lookups run in this call, so all read the same state. */
  async _hasMany(keys: Uint8Array[], options: { snapshot?: unknown }): Promise<boolean[]> {
    try {
      const db = this.#database();
      const ro = readOptions(options);
      return await Promise.all(keys.map((key) => db.has(bytes(key), ro)));
    } catch (err) {
      throw levelError(err);
    }
  }

  // -- writes

  /** @internal */
  async _put(key: Uint8Array, value: Uint8Array, options: PrivateWriteOptions): Promise<void> {
    try {
      const k = bytes(key);
      const p = this.#database().put(k, bytes(value), putOptions(options));
      this.#touch(k);
      await p;
    } catch (err) {
      throw levelError(err);
    }
  }

  /** @internal */
  async _del(key: Uint8Array, options: PrivateWriteOptions): Promise<void> {
    try {
      const k = bytes(key);
      const p = this.#database().delete(k, { sync: options.sync === true });
      this.#touch(k);
      await p;
    } catch (err) {
      throw levelError(err);
    }
  }

  /** @internal One atomic sediment batch (one atomic WAL batch). */
  async _batch(operations: PrivateBatchOperation[], options: PrivateWriteOptions): Promise<void> {
    try {
      const ops: BatchOperation<Uint8Array, Uint8Array>[] = operations.map((op) => {
        const key = bytes(op.key);
        if (op.type === 'del') return { type: 'del', key };
        const put: BatchOperation<Uint8Array, Uint8Array> = { type: 'put', key, value: bytes(op.value) };
        if (op.ttlMs !== undefined) put.ttlMs = op.ttlMs as number;
        return put;
      });
      const p = this.#database().batch(ops, { sync: options.sync === true });
      for (const op of ops) this.#touch(op.key);
      await p;
    } catch (err) {
      throw levelError(err);
    }
  }

  /** Records a key written while clears run, so that none of them deletes what was written after it began. */
  #touch(key: Uint8Array): void {
    if (this.#clears.size === 0) return;
    const id = keyId(key);
    for (const written of this.#clears) written.add(id);
  }

  /**
   * @internal Deletes the keys in the range (with `limit` and `reverse`) as of the call, or of
   * the snapshot given: an iterator taken now lists them, and they are deleted in batches of
   * {@link CLEAR_CHUNK}. Not atomic (as classic-level's), but a key written through this
   * database after the call (sediment's lock makes this handle its only writer) is never
   * deleted by it: each batch leaves out the keys written since the clear began.
   */
  async _clear(options: PrivateClearOptions): Promise<void> {
    const written = new Set<string>();
    this.#clears.add(written);
    let it: DBIterator<Buffer, Buffer> | undefined;
    try {
      const db = this.#database();
      it = this.#dbIterator(options, true, false);
      for (;;) {
        const chunk = await it.nextv(CLEAR_CHUNK);
        const ops: BatchOperation<Uint8Array, Uint8Array>[] = [];
        for (const [key] of chunk) if (!written.has(keyId(key))) ops.push({ type: 'del', key });
        if (ops.length > 0) await db.batch(ops);
        if (chunk.length < CLEAR_CHUNK) break;
      }
    } catch (err) {
      throw levelError(err);
    } finally {
      this.#clears.delete(written);
      await it?.close();
    }
  }

  // -- iterators and snapshots

  /** @internal */
  _iterator(options: PrivateIteratorOptions): SedimentEntryIterator {
    const it = this.#dbIterator(options, options.keys !== false, options.values !== false);
    return new SedimentEntryIterator(this, it, options);
  }

  /** @internal */
  _keys(options: PrivateIteratorOptions): SedimentKeyIterator {
    return new SedimentKeyIterator(this, this.#dbIterator(options, true, false), options);
  }

  /** @internal */
  _values(options: PrivateIteratorOptions): SedimentValueIterator {
    return new SedimentValueIterator(this, this.#dbIterator(options, false, true), options);
  }

  /** A sediment iterator over the range, on the snapshot given or one taken now. */
  #dbIterator(options: PrivateRangeOptions & { snapshot?: unknown }, keys: boolean, values: boolean): DBIterator<Buffer, Buffer> {
    try {
      const o: IteratorOptions<Uint8Array> = { reverse: options.reverse, limit: options.limit, keys, values };
      // Both of a pair may be given: sediment applies Level's rule (gte wins over gt, lte over lt).
      if (options.gt !== undefined) o.gt = bytes(options.gt);
      if (options.gte !== undefined) o.gte = bytes(options.gte);
      if (options.lt !== undefined) o.lt = bytes(options.lt);
      if (options.lte !== undefined) o.lte = bytes(options.lte);
      const snapshot = snapshotOf(options.snapshot);
      if (snapshot !== undefined) o.snapshot = snapshot;
      return this.#database().iterator(o);
    } catch (err) {
      throw levelError(err);
    }
  }

  /** @internal sediment's `db.snapshot()`: synchronous, O(1). */
  _snapshot(options: { owner: object }): SedimentSnapshot {
    try {
      return new SedimentSnapshot(this.#database().snapshot(), options);
    } catch (err) {
      throw levelError(err);
    }
  }
}

// Typed overloads for the write options sediment adds (`sync`, `ttlMs`), which abstract-level
// forwards to the private methods above: abstract-level's own overloads, with wider options.
export interface SedimentLevel<KDefault, VDefault> {
  put(key: KDefault, value: VDefault): Promise<void>;
  put<K = KDefault, V = VDefault>(key: K, value: V, options: SedimentPutOptions<K, V>): Promise<void>;
  del(key: KDefault): Promise<void>;
  del<K = KDefault>(key: K, options: SedimentDelOptions<K>): Promise<void>;
  batch(operations: Array<AbstractBatchOperation<this, KDefault, VDefault> & { ttlMs?: number }>): Promise<void>;
  batch<K = KDefault, V = VDefault>(
    operations: Array<AbstractBatchOperation<this, K, V> & { ttlMs?: number }>,
    options: SedimentBatchOptions<K, V>,
  ): Promise<void>;
  batch(): AbstractChainedBatch<this, KDefault, VDefault>;
}
