/**
 * The database: put/get/delete, atomic batches and range iterators over the WAL, memtables and
 * leveled SSTables. This file is the public facade: the `DB` class, its contract (TSDoc on each
 * method), the reads, and the wiring of the parts at open and close. The parts:
 *
 * - write-input.ts: a write's keys, values, TTLs and options, checked and encoded as one write
 *   batch before anything is written.
 * - writer.ts: the write path. Admission (stops and slowdowns), the WAL append (a write is one
 *   WAL record), the memtable update as the append promise's first reaction (so memtables hold
 *   WAL prefixes), and the freeze of a full memtable. It owns the memtables.
 * - scheduler.ts: flushes and compactions in two lanes, inline or in the background worker,
 *   and the install of their results. A flush writes the oldest frozen memtable as an L0 table,
 *   installs a manifest recording the WAL position it covers through, and only then drops the
 *   memtable and lets the WAL before it go.
 * - wal-retention.ts: what of the WAL stays (retention slots, open change feeds, copies under
 *   way) and the deletion of the rest; it hosts the change feeds.
 * - recovery.ts: open-time recovery. `DB.open` reads the manifest (version-set.ts deletes files
 *   no manifest names: leftovers of an interrupted flush or compaction), opens the tables, and
 *   replays the WAL records after the manifest's position into a fresh memtable.
 * - stats.ts: `db.stats()`.
 *
 * Reads. `get` looks in the memtable, the frozen memtables newest first, then the tables (L0
 * newest first, then each level). An iterator pins a snapshot at creation: a frozen view of the
 * memtable, the frozen memtables, and the current version of the table set, whose files stay on
 * disk until the iterator ends.
 *
 * Background errors. A failed flush or compaction stops writes (they reject with the error,
 * which `stats().backgroundError` also shows); reads go on. Nothing still needed is deleted: WAL
 * segments only after the manifest covering them is durable, tables only once no manifest or
 * reader needs them. Reopening recovers from the disk.
 *
 * @module
 */
import * as path from 'node:path';
import { ClosedError, ReadOnlyError } from '../errors.js';
import type { Change, ChangeFeed, ChangesOptions } from './changes.js';
import { checkSlotName, readSlotsFile } from './slots.js';
import { WalRetention } from './wal-retention.js';
import { Writer } from './writer.js';
import { Scheduler } from './scheduler.js';
import { collectStats, type DBStats } from './stats.js';
import { loadOrCreate, readSmallFileOrUndefined, type ReplayHost, replayWal, upgradeFormat, walOptionsOf } from './recovery.js';
import { claimDirectory } from '../fs/durable-dir.js';
import type { DirectoryLock, FileSystem } from '../fs/types.js';
import type { EntryCursor } from '../entry.js';
import { Found } from '../found.js';
import { keyHash } from '../util/hash.js';
import { BlockCache } from '../sstable/block-cache.js';
import { assertPosition, comparePositions, type Position } from '../wal/position.js';
import {
  batchOps,
  checkedKey,
  checkNames,
  checkWriteOptions,
  deleteOp,
  type Pending,
  PUT_OPTIONS,
  prepare,
  putOp,
  WRITE_OPTIONS,
} from './write-input.js';
import type { RecoveryInfo } from '../wal/recovery.js';
import { resolveWalOptions } from '../wal/options.js';
import { Wal } from '../wal/wal.js';
import { walView, type WalView } from './wal-view.js';
import { type CheckpointInfo, writeCheckpoint } from './checkpoint.js';
import {
  type BackupDirOptions,
  type BackupInfo,
  type BackupSummary,
  type PruneInfo,
  type PruneOptions,
  type RestoreInfo,
  type RestoreOptions,
  listBackups,
  pruneBackups,
  restoreBackup,
  writeBackup,
} from './backup.js';
import type { CopySource } from './copy.js';
import { BackgroundWorker } from './background.js';
import { fullCompaction } from './compaction.js';
import { decodeKey, decodeValue, decodeValueAt, encodeKey, type JsonValue } from './encoding.js';
import { CURRENT_FILE, OPTIONS_FILE, WAL_DIR } from './filenames.js';
import { repairDB, type RepairOptions, type RepairReport } from './repair.js';
import type { DBMeter } from './meter.js';
import { resolveDBOptions, type DBOptions, type ResolvedDBOptions } from './options.js';
import { WRITE_BATCH_FORMAT, writeOptionsFile, type PersistedOptions } from './options-file.js';
import { Snapshot } from './snapshot.js';
import { checkIteratorOptions, DBIterator, type IteratorOptions } from './iterator.js';

export { MAX_WRITE_BYTES } from './write-input.js';
export type { DBStats } from './stats.js';

export { DBIterator, type IteratorOptions } from './iterator.js';
export { ChangeFeed, type Change, type ChangesOptions } from './changes.js';
import { VersionSet } from './version-set.js';

/** The key type a DB opened with options `O` returns: a Buffer under `keyEncoding: 'binary'`, else a string. */
export type KeyOf<O> = O extends { keyEncoding: 'binary' } ? Buffer : string;

/**
 * The value type a DB opened with options `O` returns: a string under `valueEncoding: 'utf8'`,
 * a Buffer under `'binary'`, a {@link JsonValue} under `'json'`, `unknown` under `'msgpack'`
 * (the default: give the type explicitly, `DB.open<string, Order>(dir)`).
 */
export type ValueOf<O> = O extends { valueEncoding: 'utf8' }
  ? string
  : O extends { valueEncoding: 'binary' }
    ? Buffer
    : O extends { valueEncoding: 'json' }
      ? JsonValue
      : unknown;

/** Makes an object literal with a key `T` does not know fail to compile (misspelt options). */
type NoExtraKeys<O, T> = { [K in Exclude<keyof O, keyof T>]: never };

/** What `put` takes for a DB whose values read back as `V`: any Uint8Array where reads give Buffers. */
export type PutValue<V> = [V] extends [Buffer] ? Uint8Array : V;

/** Options of a write. */
export interface WriteOptions {
  /** Resolve only once the write is on stable storage (an fdatasync), whatever the fsync policy. */
  sync?: boolean;
}

/** Options of `put`. */
export interface PutOptions extends WriteOptions {
  /** Time to live in ms; after it, the key reads as absent. */
  ttlMs?: number;
}

/** One operation of `batch`. */
export type BatchOperation<K, V> = { type: 'put'; key: K; value: V; ttlMs?: number } | { type: 'del'; key: K };

/** Options of a read (`get`, `getSync`, `has`, `getMany`). */
export interface ReadOptions {
  /** Read this snapshot (from `db.snapshot()`) instead of the DB's current state. */
  snapshot?: Snapshot;
}

/** Opens a read-only handle tries before giving up on a directory whose writer keeps moving it. */
const READ_ONLY_ATTEMPTS = 5;
/** A read-only handle's stand-in for the directory lock it does not take. */
const NO_LOCK: DirectoryLock = { release: () => Promise.resolve() };

/**
 * An embedded, durable, sorted key-value store. Open with {@link DB.open}.
 *
 * `K` is the key type (string under `keyEncoding: 'utf8'`, Buffer under `'binary'`; a
 * Uint8Array is always accepted as a key), `V` the value type of the value encoding.
 */
export class DB<K = string, V = unknown> {
  readonly #opts: ResolvedDBOptions;
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #lock: DirectoryLock;
  readonly #cache: BlockCache;
  #wal!: Wal;
  #walView!: WalView;
  #walRecovery!: RecoveryInfo;
  /** Open snapshots and iterators: close releases them. */
  readonly #snapshots = new Set<Snapshot>();
  readonly #iterators = new Set<DBIterator<K, V>>();
  /** Where each point lookup puts what it found (reads run one at a time, synchronously). */
  readonly #found = new Found();
  /** What the directory's OPTIONS record (the largest key and value sizes ever allowed...). */
  #persisted!: PersistedOptions;
  /** What the meter's `track` returned: called at close. */
  #untrack: (() => void) | undefined;
  /** Calls of flush() and compact() still running: close waits for them. */
  #maintenance = 0;
  /** The write path and the memtables it fills. */
  readonly #writer: Writer;
  /** The table set: current version, manifest, file numbers, readers. */
  #versions!: VersionSet;
  /** Retention slots, feeds' and copies' holds on the WAL, and its garbage collection. */
  readonly #retention: WalRetention;
  #status: 'open' | 'closing' | 'closed' = 'open';
  #bgError: Error | undefined;
  #waiters: (() => void)[] = [];
  #closing: Promise<void> | undefined;
  /** Flushes and compactions: scheduling, running, installing their results. */
  readonly #scheduler: Scheduler;

  private constructor(dir: string, opts: ResolvedDBOptions, lock: DirectoryLock) {
    this.#dir = dir;
    this.#opts = opts;
    this.#fs = opts.fs;
    this.#lock = lock;
    this.#cache = new BlockCache(opts.blockCacheSize);
    this.#writer = new Writer({
      opts,
      wal: () => this.#wal,
      l0Tables: () => this.#versions.current.levels[0]!.length,
      isOpen: () => this.#status === 'open',
      scheduleFlush: () => this.#scheduler.scheduleFlush(),
      scheduleCompaction: () => this.#scheduler.scheduleCompaction(),
      until: (ready) => this.#until(ready),
      notify: () => this.#notify(),
      backgroundError: () => this.#bgError,
      setBackgroundError: (err) => this.#setBackgroundError(err),
    });
    this.#scheduler = new Scheduler({
      fs: this.#fs,
      dir,
      opts,
      writer: this.#writer,
      versions: () => this.#versions,
      wal: () => this.#wal,
      status: () => this.#status,
      maintenanceCalls: () => this.#maintenance,
      backgroundError: () => this.#bgError,
      setBackgroundError: (err) => this.#setBackgroundError(err),
      notify: () => this.#notify(),
      collectWal: () => this.#retention.collectWal(),
    });
    this.#retention = new WalRetention({
      fs: this.#fs,
      dir,
      opts,
      wal: () => this.#wal,
      flushedThrough: () => this.#versions.state.flushedThrough,
      isOpen: () => this.#status === 'open',
      isClosed: () => this.#status === 'closed',
      appliedEnd: () => this.#writer.appliedEnd,
      nextWrite: () => this.#writer.nextWrite(),
    });
  }

  /**
   * Opens (creating if needed) the DB in `dir`: takes its lock, reads the manifest, removes
   * leftovers of interrupted flushes and compactions, opens the tables and replays the WAL.
   * Rejects with `LockedError` if another handle holds `dir`, `CorruptionError` if the manifest,
   * a table's metadata or the WAL is damaged (see the WAL's recovery modes), `InvalidConfigError`
   * for a bad option.
   */
  static open<const O extends DBOptions = DBOptions>(
    dir: string,
    options?: O & NoExtraKeys<O, DBOptions>,
  ): Promise<DB<KeyOf<O>, ValueOf<O>>>;
  /** With the key and value types given explicitly: `DB.open<string, Order>(dir)`. */
  static open<K, V = unknown>(dir: string, options?: DBOptions): Promise<DB<K, V>>;
  static async open(dir: string, options?: DBOptions): Promise<DB<unknown, unknown>> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('DB.open takes a directory path');
    const opts = resolveDBOptions(options);
    // Everything the WAL will be asked for is checked now, before a byte is written.
    resolveWalOptions(walOptionsOf(dir, opts, undefined));
    const fs = opts.fs;
    if (opts.readOnly) return DB.#openReadOnly(dir, opts);
    // The worker loads while the DB recovers: the first flush or compaction need not wait for it.
    if (opts.background === 'worker') void BackgroundWorker.shared().warm();
    const lock = await claimDirectory(fs, dir);
    const db = new DB<unknown, unknown>(dir, opts, lock);
    try {
      await db.#recover();
    } catch (err) {
      await db.#shutdown().catch(() => undefined);
      throw err;
    }
    db.#track(options?.meter);
    return db;
  }

  /** Hands the DB to a meter that reads `stats()` (its `track`), untracked at close. */
  #track(meter: DBMeter | undefined): void {
    if (typeof meter?.track !== 'function') return;
    try {
      const untrack = meter.track(this);
      if (typeof untrack === 'function') this.#untrack = untrack;
    } catch {
      // a meter must not break the DB
    }
  }

  /**
   * A read-only open takes no lock, so a writer may install a new manifest (and delete the files
   * the old one named) while it reads: if the open fails and CURRENT changed meanwhile, it starts
   * over from the new manifest. Once open, the handle holds its tables' files open, so a writer
   * deleting them later does not disturb it (POSIX keeps an unlinked open file readable).
   */
  static async #openReadOnly(dir: string, opts: ResolvedDBOptions): Promise<DB<unknown, unknown>> {
    // What a writer changes when it moves the DB on: CURRENT (a new manifest), OPTIONS (larger
    // limits, under which the WAL may hold records the old ones would call damage).
    const marks = async (): Promise<string | undefined> => {
      const current = await readSmallFileOrUndefined(opts.fs, path.join(dir, CURRENT_FILE));
      const options = await readSmallFileOrUndefined(opts.fs, path.join(dir, OPTIONS_FILE));
      return current === undefined ? undefined : `${current.toString('hex')}/${options?.toString('hex') ?? ''}`;
    };
    for (let attempt = 1; ; attempt++) {
      const before = await marks();
      const db = new DB<unknown, unknown>(dir, opts, NO_LOCK);
      try {
        await db.#recover();
        db.#track(opts.userMeter);
        return db;
      } catch (err) {
        await db.#shutdown().catch(() => undefined);
        const after = await marks().catch(() => undefined);
        const moved = before !== undefined && after !== undefined && before !== after;
        if (!moved || attempt >= READ_ONLY_ATTEMPTS) throw err;
      }
    }
  }

  /**
   * Repairs a DB whose tables (or manifest) are damaged, as LevelDB's RepairDB does, so that it
   * opens and takes writes again: every table is checked block by block; the readable entries of
   * a damaged table are rewritten into a new one and the damaged file is moved into
   * `quarantine/`, never deleted; a missing table is dropped from the manifest; a damaged or
   * missing manifest is rebuilt from the tables. The report names every damaged or missing table
   * and the exact key ranges lost. Takes the directory's lock (`LockedError` while a handle has
   * the DB open). Leaves the WAL alone: open with `recovery: 'salvage'` for damage there.
   */
  static repair(dir: string, options?: RepairOptions): Promise<RepairReport> {
    return repairDB(dir, options);
  }

  /**
   * The write-ahead log, for reading only (`readFrom`, `currentPosition`, `stats`): appends and
   * segment deletion belong to the DB.
   */
  get wal(): WalView {
    return this.#walView;
  }

  // -- writes ------------------------------------------------------------------------------

  /**
   * Stores `value` under `key`. Resolves once the write is in the WAL (so a process crash does
   * not lose it) and visible to reads; with `sync: true`, or under `fsync: 'always'`, once it is
   * on stable storage. Rejects with `TypeError` for a key or value the encodings do not accept,
   * `RangeError` for an oversized key or value or a bad TTL, `ClosedError` after close, or the
   * error that stopped writes.
   */
  put(key: K | Uint8Array, value: PutValue<V>, options?: PutOptions): Promise<void> {
    let pending: Pending;
    try {
      this.#checkWritable();
      checkWriteOptions(options, PUT_OPTIONS);
      pending = prepare([putOp(this.#opts, key, value, options?.ttlMs)]);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#writer.write(pending, options?.sync === true);
  }

  /** Deletes `key` (absent keys are fine). Resolves and rejects as {@link put}. */
  delete(key: K | Uint8Array, options?: WriteOptions): Promise<void> {
    let pending: Pending;
    try {
      this.#checkWritable();
      checkWriteOptions(options, WRITE_OPTIONS);
      pending = prepare([deleteOp(this.#opts, this.#persisted.maxKeySize, key)]);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#writer.write(pending, options?.sync === true);
  }

  /**
   * Applies operations atomically: after any crash, all of them or none are visible, and readers
   * never see part of them. Every operation is validated before anything is written.
   */
  batch(operations: readonly BatchOperation<K | Uint8Array, PutValue<V>>[], options?: WriteOptions): Promise<void> {
    let pending: Pending;
    try {
      this.#checkWritable();
      checkWriteOptions(options, WRITE_OPTIONS);
      const ops = batchOps(this.#opts, this.#persisted.maxKeySize, operations);
      if (ops.length === 0) return Promise.resolve();
      pending = prepare(ops);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#writer.write(pending, options?.sync === true);
  }

  /** Resolves when `ready()` holds, or rejects once the DB cannot get there (closed, failed). */
  #until(ready: () => boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (ready()) {
          resolve();
          return;
        }
        if (this.#bgError) {
          reject(this.#bgError);
          return;
        }
        if (this.#status === 'closed' || this.#scheduler.background.cancelled) {
          reject(new ClosedError('the database'));
          return;
        }
        this.#waiters.push(check);
      };
      check();
    });
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #checkWritable(): void {
    if (this.#status !== 'open') throw new ClosedError('the database');
    if (this.#opts.readOnly) throw new ReadOnlyError('the database', 'a write, flush or compaction');
    if (this.#bgError) throw this.#bgError;
  }

  // -- reads -------------------------------------------------------------------------------

  /** Reads need an open DB whose memtable matches its log (see `Writer.broken`). */
  #checkReadable(): void {
    if (this.#status === 'closed') throw new ClosedError('the database');
    const broken = this.#writer.broken;
    if (broken) throw broken;
  }

  /**
   * Takes a snapshot: a consistent view of the DB as it is now (every write that resolved, none
   * made later), for `get`, `getSync`, `has`, `getMany` and `iterator` (`{ snapshot }`). It pins
   * the memtables and the table set, whose files stay on disk until it is closed: close it (or
   * `using snap = db.snapshot()`) when done; the DB's close releases those still open. Synchronous.
   */
  snapshot(): Snapshot {
    this.#checkReadable();
    const snap = new Snapshot(
      this,
      this.#writer.mem.freeze(),
      this.#writer.imm.map((f) => f.table),
      this.#versions.current.pin(),
      this.#opts.clock(),
      (s) => this.#snapshots.delete(s),
    );
    this.#snapshots.add(snap);
    return snap;
  }

  /** The value stored under `key`, or undefined if there is none (deleted, expired, never put). */
  async get(key: K | Uint8Array, options?: ReadOptions): Promise<V | undefined> {
    return this.getSync(key, options);
  }

  /**
   * {@link get}, synchronously: throws what `get` rejects with. A lookup reads the memtables,
   * then at most one table per level (L0: each table whose range holds the key), skipping tables
   * whose bloom filter rules the key out; from the block cache, or with one positional read per
   * block from the OS page cache (a few microseconds), or from the disk when the block is in
   * neither: then it blocks the event loop for the disk's read latency (about 0.1 ms on an SSD,
   * 10 ms on a spinning disk) per block.
   */
  getSync(key: K | Uint8Array, options?: ReadOptions): V | undefined {
    const k = this.#liveEntry(key, options);
    if (k === undefined) return undefined;
    const f = this.#found;
    return decodeValueAt(this.#opts.valueEncoding, f.bytes, f.start, f.end, k) as V;
  }

  /** Whether `key` holds a live value (not deleted, not expired), without decoding it. */
  async has(key: K | Uint8Array, options?: ReadOptions): Promise<boolean> {
    return this.#liveEntry(key, options) !== undefined;
  }

  /**
   * The values of `keys`, in their order (`undefined` where absent), all from one consistent
   * view: the snapshot given, or the DB at the time of the call.
   */
  async getMany(keys: readonly (K | Uint8Array)[], options?: ReadOptions): Promise<(V | undefined)[]> {
    if (!Array.isArray(keys)) throw new TypeError('getMany takes an array of keys');
    this.#readView(options); // checks first: a bad option fails even for no key
    return keys.map((key) => this.getSync(key, options));
  }

  /**
   * The hot path of every read: finds `key`'s newest entry into {@link #found} and returns the
   * encoded key if it is a live value (a put, not expired), undefined otherwise. The key is hashed
   * once, for the memtables' hash indexes and every table's bloom filter; nothing is allocated
   * (the value stays where it was found until the caller decodes it, before any other lookup).
   */
  #liveEntry(key: unknown, options: ReadOptions | undefined): Uint8Array | undefined {
    const snap = this.#readView(options);
    const k = checkedKey(this.#opts, key, this.#persisted.maxKeySize);
    const f = this.#found;
    const hash = keyHash(k);
    if (!(snap ? snap.find(k, hash, f) : this.#find(k, hash, f)) || f.kind === 'delete') return undefined;
    // The clock only when there is an expiry to judge.
    if (f.expiresAt !== undefined && f.expiresAt <= (snap ? snap.now : this.#opts.clock())) return undefined;
    return k;
  }

  /** Checks the DB and read options; the snapshot to read, if any. */
  #readView(options: ReadOptions | undefined): Snapshot | undefined {
    this.#checkReadable();
    if (options === undefined) return undefined;
    if (typeof options !== 'object' || options === null) throw new TypeError('read options must be an object');
    for (const name of Object.keys(options))
      if (name !== 'snapshot') throw new TypeError(`unknown read option '${name}' (known: snapshot)`);
    return this.#checkSnapshot(options.snapshot);
  }

  #checkSnapshot(snapshot: unknown): Snapshot | undefined {
    if (snapshot === undefined) return undefined;
    if (!(snapshot instanceof Snapshot)) throw new TypeError('snapshot must be a Snapshot from db.snapshot()');
    if (snapshot.owner !== this) throw new TypeError('the snapshot belongs to another database');
    if (snapshot.closed) throw new ClosedError('the snapshot');
    return snapshot;
  }

  #find(k: Uint8Array, hash: number, out: Found): boolean {
    const w = this.#writer;
    // An empty memtable (after a flush) is not asked.
    if (w.mem.size !== 0 && w.mem.find(k, hash, out)) return true;
    for (const f of w.imm) if (f.table.find(k, hash, out)) return true;
    return this.#versions.current.find(k, hash, out);
  }

  /**
   * Entries in key order (descending with `reverse`) within the bounds, as `[key, value]`. The
   * iterator reads a snapshot: the one given, or one taken when it was created. Later writes,
   * flushes and compactions do not change what it yields. `for await` and `all()` close it when
   * they end; with `next()`/`nextv()`, call `close()` (the DB's close closes it too).
   */
  iterator(options: IteratorOptions<K | Uint8Array> = {}): DBIterator<K, V> {
    this.#checkReadable();
    const o = checkIteratorOptions(options);
    const snap = this.#checkSnapshot(o.snapshot);
    const bound = (name: 'gt' | 'gte' | 'lt' | 'lte'): Uint8Array | undefined =>
      o[name] === undefined ? undefined : encodeKey(this.#opts.keyEncoding, o[name], 'bound');
    // abstract-level's rule: given both, the inclusive bound wins.
    const lowerInclusive = o.gte !== undefined || o.gt === undefined;
    const upperInclusive = o.lte !== undefined || o.lt === undefined;
    const lower = bound('gte') ?? bound('gt');
    const upper = bound('lte') ?? bound('lt');
    let view: { cursors: EntryCursor[]; release: () => void };
    let now: number;
    if (snap) {
      view = snap.cursors();
      now = snap.now;
    } else {
      const version = this.#versions.current.pin();
      view = {
        cursors: [this.#writer.mem.freeze().iterator(), ...this.#writer.imm.map((f) => f.table.iterator()), ...version.cursors(true)],
        release: () => version.unpin(),
      };
      now = this.#opts.clock();
    }
    const { keyEncoding, valueEncoding } = this.#opts;
    const it: DBIterator<K, V> = new DBIterator<K, V>({
      ...view,
      lower,
      lowerInclusive,
      upper,
      upperInclusive,
      reverse: o.reverse,
      limit: o.limit,
      now,
      decode: (e) => [
        (o.keys ? decodeKey(keyEncoding, e.key) : undefined) as K,
        (o.values ? decodeValue(valueEncoding, e.value, e.key) : undefined) as V,
      ],
      encodeTarget: (target) => encodeKey(keyEncoding, target, 'bound'),
      isOpen: () => this.#status !== 'closed',
      onClose: () => this.#iterators.delete(it),
    });
    this.#iterators.add(it);
    return it;
  }

  // -- change feed -------------------------------------------------------------------------

  /**
   * The change feed: every write, in commit order, as an async iterable of {@link Change}s
   * (`{ position, next, seq, type, key, value, expiresAt }`, keys and values decoded with the
   * DB's encodings). It replays the WAL from `since`, then tails live writes, waiting (no timer,
   * nothing that keeps the process alive) when caught up. The ops of a batch arrive as
   * consecutive changes sharing the batch's `position`, never in part; seqs strictly increase
   * and are the same across restarts. Resume with `changes({ since: change.next })`: `next` is
   * the position after the write for a batch's last op, the batch's own position for the
   * others (resuming there replays the batch: skip the seqs already seen). The consumer pulls:
   * nothing is read ahead of `next()`.
   *
   * `since` omitted: from the slot's acknowledged position if `retain` names an existing slot,
   * else from the oldest change the WAL still holds (segments are deleted after flushes unless a
   * slot or an open feed holds them). A `since` whose segment is gone: `ChangesExpiredError`;
   * past the last write or not at a record boundary: `InvalidPositionError` (from the first
   * `next()`; nothing is created then). `retain: name` creates the slot at the start position
   * if it does not exist (durably, before the first change), see {@link ackChanges}.
   *
   * Ends: `break` / `return()` ends it at once; the DB's `close()` ends it cleanly (`next()`
   * resolves done); a slot dropped for passing `maxRetainedBytes` fails it with
   * `SlotDroppedError`. An open feed holds back the deletion of the WAL from its read position
   * on (up to `maxRetainedBytes`, past which it fails with `ChangesExpiredError`): end feeds
   * you stop reading. On a read-only handle the feed ends once caught up (the handle sees no new
   * writes) and `retain` is refused with `ReadOnlyError`. Throws `TypeError`/`RangeError` for
   * bad options, `ClosedError` after close.
   */
  changes(options: ChangesOptions = {}): ChangeFeed<K, V> {
    if (this.#status !== 'open') throw new ClosedError('the database');
    if (typeof options !== 'object' || options === null) throw new TypeError('changes options must be an object');
    checkNames(options, CHANGES_OPTIONS, 'changes option');
    const { since, retain } = options;
    if (since !== undefined) assertPosition(since, 'since');
    if (retain !== undefined) {
      checkSlotName(retain);
      if (this.#opts.readOnly) throw new ReadOnlyError('the database', 'a retention slot');
    }
    const { keyEncoding, valueEncoding } = this.#opts;
    return this.#retention.openFeed<K, V>(since, retain, (op) => {
      const key = decodeKey(keyEncoding, op.key) as K;
      return { key, value: op.kind === 'delete' ? undefined : (decodeValue(valueEncoding, op.value, op.key) as V) };
    });
  }

  /**
   * Acknowledges that the consumer of slot `name` has everything before `position` (a change's
   * `next`): the slot moves there (durably), and WAL segments wholly before the lowest slot (and
   * the flushed position) may go. Acknowledging the slot's current position again is a no-op.
   * Rejects with `UnknownSlotError` for no such slot, `SlotDroppedError` if it was dropped for
   * passing `maxRetainedBytes`, `InvalidPositionError` for a position before the slot's, past
   * the last write or not at a record boundary (nothing changes then), `TypeError` for bad
   * arguments, `ReadOnlyError` on a read-only handle, `ClosedError` after close.
   */
  async ackChanges(name: string, position: Position): Promise<void> {
    this.#checkSlotOp('ackChanges');
    await this.#retention.acknowledge(name, position);
  }

  /**
   * Drops retention slot `name` (durably): it holds nothing back any more. Rejects with
   * `UnknownSlotError` for no such slot (a slot dropped for `maxRetainedBytes` is released
   * quietly), `ReadOnlyError` on a read-only handle, `ClosedError` after close.
   */
  async releaseChanges(name: string): Promise<void> {
    this.#checkSlotOp('releaseChanges');
    await this.#retention.release(name);
  }

  #checkSlotOp(op: string): void {
    if (this.#status !== 'open') throw new ClosedError('the database');
    if (this.#opts.readOnly) throw new ReadOnlyError('the database', op);
  }

  // -- copies ------------------------------------------------------------------------------

  /**
   * Writes a consistent copy of the DB as of this call into `target` (which must not exist, or
   * be an empty directory: else `IoError` `ENOTEMPTY`/`ENOTDIR`, nothing written), while reads
   * and writes go on: every write that resolved before the call is in the copy, none made after
   * it. Tables are hard-linked on the same file system, copied otherwise; the WAL tail is copied,
   * cut at the call's write position; everything is synced, `CURRENT` last. The copy opens as a
   * DB of its own. Works on a read-only handle (it writes only to `target`). See checkpoint.ts.
   */
  checkpoint(target: string): Promise<CheckpointInfo> {
    return this.#copy((source) => writeCheckpoint(source, target));
  }

  /**
   * Adds a backup of the DB as of this call to `backupDir` (created if missing): the same instant
   * as {@link checkpoint}, but incremental: tables the directory already holds for this DB are
   * not copied again; the manifest, `OPTIONS` and WAL tail are. The backup exists once its index
   * is written (last, atomically). The DB's first backup records its id in `IDENTITY` (a
   * read-only handle cannot: `ReadOnlyError`). `LOCKED` while another backup or a prune runs on
   * the directory. See backup.ts.
   */
  backup(backupDir: string): Promise<BackupInfo> {
    return this.#copy((source) => writeBackup(source, backupDir));
  }

  /**
   * Restores a backup (the latest, or `options.id`) from `backupDir` as a new DB in `targetDir`
   * (which must not exist, or be empty). Every file is checked against the backup's index as it
   * is copied: a damaged one is a `CorruptionError` naming it, and nothing is left in the target.
   * The new DB has no `IDENTITY`: its own first backup gives it one.
   */
  static restore(backupDir: string, targetDir: string, options?: RestoreOptions): Promise<RestoreInfo> {
    return restoreBackup(backupDir, targetDir, options);
  }

  /** The backups in `backupDir`, oldest first: id, time, the DB's id, files and bytes. */
  static listBackups(backupDir: string, options?: BackupDirOptions): Promise<BackupSummary[]> {
    return listBackups(backupDir, options);
  }

  /** Deletes all but the `keep` newest backups of `backupDir`, and every file no remaining backup needs. */
  static pruneBackups(backupDir: string, options: PruneOptions): Promise<PruneInfo> {
    return pruneBackups(backupDir, options);
  }

  /**
   * Takes the instant a copy reads, synchronously: the current version pinned, the manifest
   * state it belongs to, the WAL retained at its write position (see copy.ts). `run` releases it.
   */
  #copy<T>(run: (source: CopySource) => Promise<T>): Promise<T> {
    let source: CopySource;
    try {
      if (this.#status !== 'open') throw new ClosedError('the database');
      const version = this.#versions.current.pin();
      const wal = this.#wal.retain();
      this.#retention.copies++;
      let held = true;
      source = {
        fs: this.#fs,
        dir: this.#dir,
        state: this.#versions.state,
        walEnd: wal.position,
        walSegmentIds: wal.segmentIds,
        persisted: this.#persisted,
        readOnly: this.#opts.readOnly,
        release: () => {
          if (!held) return;
          held = false;
          wal.release();
          version.unpin();
          // The WAL GC the copy held back, computed now (a feed or slot made meanwhile may
          // need segments a deletion asked for before it would have removed).
          if (--this.#retention.copies === 0 && this.#status === 'open') this.#retention.collectWal().catch(() => undefined);
        },
      };
    } catch (err) {
      return Promise.reject(err);
    }
    let result: T;
    return this.#maintain(async () => {
      result = await run(source);
    }).then(() => result);
  }

  // -- maintenance -------------------------------------------------------------------------

  /**
   * Writes the memtable to an SSTable now (with every frozen memtable before it), then deletes
   * the WAL segments it covered. Resolves when done.
   */
  async flush(): Promise<void> {
    this.#checkWritable();
    await this.#maintain(() => this.#flushAll());
  }

  /**
   * Resolves once every write acknowledged so far is on stable storage (an fdatasync of the WAL),
   * whatever the fsync policy: for a caller under `'os'` or `{ batchMs }` that reached a point
   * it must not lose. Works while a background error stops writes, as long as the WAL is healthy.
   */
  async sync(): Promise<void> {
    if (this.#status === 'closed') throw new ClosedError('the database');
    if (this.#opts.readOnly) return; // it acknowledged no write
    await this.#wal.sync();
  }

  /** Full compaction: flushes, then merges every table into the deepest level in use. */
  async compact(): Promise<void> {
    this.#checkWritable();
    await this.#maintain(async () => {
      await this.#flushAll();
      let done = false;
      await this.#scheduler.inLane('compact', async () => {
        const plan = fullCompaction(this.#versions.current);
        if (plan) await this.#scheduler.runCompaction(plan);
        done = true;
      });
      if (this.#bgError) throw this.#bgError;
      if (!done) throw new ClosedError('the database'); // close() cancelled it
    });
  }

  /** Runs a maintenance call that `close()`, if called meanwhile, waits for. */
  async #maintain(job: () => Promise<void>): Promise<void> {
    this.#maintenance++;
    try {
      await job();
    } finally {
      this.#maintenance--;
      this.#notify();
    }
  }

  async #flushAll(): Promise<void> {
    // Writes already resolved are in the memtable; freeze it and wait for the queue to drain.
    this.#writer.freeze();
    this.#scheduler.scheduleFlush();
    await this.#until(() => this.#writer.imm.length === 0);
  }

  /** Counters and state; see {@link DBStats}. */
  stats(): DBStats {
    return collectStats({
      opts: this.#opts,
      version: this.#versions.current,
      cache: this.#cache,
      wal: this.#wal,
      walRecovery: this.#walRecovery,
      writer: this.#writer,
      scheduler: this.#scheduler,
      retention: this.#retention,
      backgroundError: this.#bgError,
    });
  }

  /**
   * Waits for writes in flight (also those a write stall holds), cancels the running flush or
   * compaction (it installs nothing; the WAL still holds what a cancelled flush was writing), closes
   * the WAL (which syncs) and the tables, and releases the lock. A `flush()` or `compact()` still
   * running rejects with `ClosedError`; a `checkpoint()` or `backup()` is waited for. Later calls
   * reject with `ClosedError`. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#status = 'closing';
    this.#writer.wakeFeeds(); // caught-up feeds end now
    await this.#retention.slotLane;
    await this.#retention.slotsFileLane;
    // Writes called before close (also those a write stall holds: flushes go on for them).
    await this.#until(() => this.#writer.inflight === 0 && this.#writer.admissionQueue === 0).catch(() => undefined);
    // Housekeeping is not waited for: the running jobs stop and remove their outputs. flush() and
    // compact() calls reject (ClosedError); copies (checkpoint, backup) are waited for.
    this.#scheduler.background.cancel();
    this.#notify();
    while (this.#maintenance > 0) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    await Promise.all([this.#scheduler.flushLane, this.#scheduler.compactLane]);
    await this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    this.#status = 'closed';
    this.#writer.wakeFeeds();
    let walError: unknown;
    if (this.#wal) await this.#wal.close().catch((err: unknown) => (walError = err));
    // Snapshots and iterators still open release their pins (an iterator's next() now rejects
    // with CLOSED), then every reader is closed, also those of versions something still pinned.
    const untrack = this.#untrack;
    this.#untrack = undefined;
    try {
      untrack?.();
    } catch {
      // a meter must not break the DB
    }
    for (const snap of [...this.#snapshots]) snap.close();
    for (const it of [...this.#iterators]) it.release();
    await this.#versions?.close();
    this.#notify();
    await this.#lock.release().catch(() => undefined);
    if (walError) throw walError;
  }

  // -- background work ---------------------------------------------------------------------

  #setBackgroundError(err: unknown): void {
    if (!this.#bgError) {
      this.#bgError = err instanceof Error ? err : new Error(String(err));
      this.#opts.meter.counter('db.background_errors', 1);
      this.#opts.meter.event({ type: 'background-error', error: this.#bgError });
    }
    this.#notify();
  }

  // -- open --------------------------------------------------------------------------------

  async #recover(): Promise<void> {
    const fs = this.#fs;
    const dir = this.#dir;
    const readOnly = this.#opts.readOnly;
    const { current, persisted, legacy } = await loadOrCreate(fs, dir, this.#opts);
    this.#versions = await VersionSet.open(fs, dir, this.#cache, current, readOnly);
    const state = this.#versions.state;
    this.#writer.seq = state.lastSeq;

    // Records through the flushed position are in the tables: damage among them does not
    // matter, and new records must land after it. The WAL was created before CURRENT, so it
    // must exist now: a missing one is corruption, not a new log.
    this.#persisted = persisted;
    // Retention slots keep WAL segments past the flushed position: the WAL deletes at open only
    // what is before both.
    this.#retention.slots = await readSlotsFile(fs, dir);
    let flushed = state.flushedThrough ?? undefined;
    for (const p of this.#retention.slots.values()) if (flushed !== undefined && comparePositions(p, flushed) < 0) flushed = p;
    const { wal, recovery } = await Wal.open({
      ...walOptionsOf(dir, this.#opts, flushed, persisted),
      createIfMissing: false,
      adoptUntracked: legacy,
      readOnly,
    });
    this.#wal = wal;
    if (legacy && !readOnly) await writeOptionsFile(fs, dir, persisted);
    this.#walView = walView(wal, path.join(dir, WAL_DIR));
    this.#walRecovery = recovery;
    await replayWal(this.#replayHost(), state.flushedThrough);
    if (!readOnly && persisted.formatVersion < WRITE_BATCH_FORMAT) this.#persisted = await upgradeFormat(this.#replayHost(), persisted);
    if (!readOnly) this.#scheduler.scheduleCompaction();
  }

  /** What the WAL's replay (and a format upgrade) needs of this DB, once the WAL is open. */
  #replayHost(): ReplayHost {
    return {
      fs: this.#fs,
      dir: this.#dir,
      readOnly: this.#opts.readOnly,
      wal: this.#wal,
      writer: this.#writer,
      flushOldest: () => this.#scheduler.flushOldest(),
    };
  }
}

const CHANGES_OPTIONS: ReadonlySet<string> = new Set(['since', 'retain']);
