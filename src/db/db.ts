/**
 * The database: put/get/delete, atomic batches and range iterators over the WAL, memtables and
 * leveled SSTables.
 *
 * Write path. A write is validated and encoded (nothing is written if that fails), appended to
 * the WAL (a batch as one atomic WAL batch), and applied to the memtable in the WAL promise's
 * first reaction. The WAL resolves appends in append order, so memtables receive writes in WAL
 * order: a memtable always holds a prefix of what the WAL holds after the previous flush, and the
 * position of its last record says exactly which WAL records it covers.
 *
 * Flush. Past `memtableSize` the memtable is frozen (an O(1) copy-on-write view) and a new one
 * takes writes. The background job writes the frozen memtable as an L0 table (synced, directory
 * synced), installs a manifest that lists it and records the WAL position it covers through, and
 * only then drops the frozen memtable and deletes the WAL segments wholly before that position.
 *
 * Restart. `DB.open` reads the manifest, deletes files no manifest names (leftovers of an
 * interrupted flush or compaction), opens the tables, and replays the WAL records after the
 * manifest's position into a fresh memtable.
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
import {
  ChangesExpiredError,
  ClosedError,
  CorruptionError,
  InvalidPositionError,
  IoError,
  ReadOnlyError,
  SlotDroppedError,
  UnknownSlotError,
  errnoOf,
  ioStep,
} from '../errors.js';
import { type Change, ChangeFeed, type ChangesOptions, checkFeedPosition, type FeedHold, type FeedHost } from './changes.js';
import { checkSlotName, readSlotsFile, writeSlotsFile } from './slots.js';
import { claimDirectory } from '../fs/durable-dir.js';
import { nodeFileSystem } from '../fs/node.js';
import type { DirectoryLock, FileSystem } from '../fs/types.js';
import type { EntryCursor } from '../entry.js';
import { Found } from '../found.js';
import { keyHash } from '../util/hash.js';
import { type FrozenMemtable, Memtable } from '../memtable/memtable.js';
import { BlockCache, type BlockCacheStats } from '../sstable/block-cache.js';
import { FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE, segmentFileName } from '../wal/format.js';
import { assertPosition, comparePositions, type Position } from '../wal/position.js';
import { isExpiry, Record } from '../wal/record.js';
import { MAX_RECORD_SIZE_LIMIT } from '../wal/options.js';
import {
  type BatchOp,
  encodeWriteBatch,
  batchCount,
  batchSeq,
  checkWriteBatch,
  opSize,
  setBatchSeq,
  visitOps,
  WRITE_BATCH_HEADER_SIZE,
} from './write-batch.js';
import type { RecoveryInfo } from '../wal/recovery.js';
import type { Meter } from '../wal/meter.js';
import { resolveWalOptions, type WalOptions } from '../wal/options.js';
import { Wal, type WalStats } from '../wal/wal.js';
import { walView, type WalView } from './wal-view.js';
import { PreparedWrite, type WriteTarget } from './prepared-write.js';
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
import { BackgroundWorker, BackgroundWorkerError, type WorkerJob } from './background.js';
import { type CompactionJob, type JobResult, runCompactionJob, runFlushJob } from './compaction-job.js';
import {
  compactionDebt,
  fullCompaction,
  grandparentsOf,
  levelTarget,
  maxGrandparentOverlap,
  pickCompaction,
  type CompactionPlan,
} from './compaction.js';
import { decodeKey, decodeValue, decodeValueAt, encodeKey, encodeValue, type JsonValue } from './encoding.js';
import { CURRENT_FILE, OPTIONS_FILE, WAL_DIR, parseFileName, tableFileName } from './filenames.js';
import { installManifest, readCurrentManifest, readSmallFile, type ManifestState, type TableMeta } from './manifest.js';
import { repairDB, type RepairOptions, type RepairReport } from './repair.js';
import type { DBMeter } from './meter.js';
import { resolveDBOptions, type DBOptions, type ResolvedDBOptions } from './options.js';
import {
  checkPersistedOptions,
  DB_FORMAT_VERSION,
  openOptionsFile,
  readOptionsFile,
  WRITE_BATCH_FORMAT,
  writeOptionsFile,
  type PersistedOptions,
} from './options-file.js';
import { Snapshot } from './snapshot.js';
import { checkIteratorOptions, DBIterator, type IteratorOptions } from './iterator.js';

export { DBIterator, type IteratorOptions } from './iterator.js';
export { ChangeFeed, type Change, type ChangesOptions } from './changes.js';
import { LEVELS } from './version.js';
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

/** What `db.stats()` returns. */
export interface DBStats {
  memtable: { bytes: number; entries: number };
  frozenMemtables: number;
  /**
   * Per level: tables, bytes, the level's size target (L1 and deeper but the last; L0's trigger is
   * a table count) and its compaction debt: the bytes over the target (L0: all of it once it has
   * `l0CompactionTrigger` tables).
   */
  levels: { tables: number; bytes: number; targetBytes: number | undefined; debtBytes: number }[];
  lastSequence: number;
  blockCache: BlockCacheStats;
  /**
   * Writes held while writes were stopped (too many frozen memtables, or L0 at
   * `l0StopTrigger`), including those queued behind them; and the wall time during which writes
   * were stopped (periods, not a sum over the waiting writes).
   */
  writeStalls: number;
  writeStallMs: number;
  /**
   * Writes delayed by the slowdown (L0 at `l0SlowdownTrigger`: 1 ms per admitted write),
   * including those queued behind a delayed one, and not stopped; and the wall time spent in
   * those delays.
   */
  writeSlowdowns: number;
  writeSlowdownMs: number;
  flushes: number;
  compactions: number;
  /** Compactions done by moving tables to the next level without a rewrite (counted in `compactions`). */
  trivialMoves: number;
  /** Compactions running now. */
  compactionsRunning: number;
  /** Sum of the levels' `debtBytes`. */
  compactionDebtBytes: number;
  /**
   * Where compaction time went, summed over the compactions done (see `JobProfile`): wall ms per
   * job, reading and merging inputs, encoding and writing outputs, finishing tables (fdatasync
   * included), yielded to other work on the thread; and the L1 bytes L0->L1 compactions rewrote.
   */
  compactionTime: { jobMs: number; readMs: number; writeMs: number; finishMs: number; yieldedMs: number };
  l0CompactionL1BytesRead: number;
  /** Bytes of keys and values written by users, and bytes written to tables by flushes and compactions. */
  userBytes: number;
  flushBytes: number;
  compactionBytesRead: number;
  compactionBytesWritten: number;
  /** Table bytes written per user byte. */
  writeAmplification: number;
  /** The error that stopped background work (and writes), if any. */
  backgroundError: Error | undefined;
  /**
   * Where flushes and compactions run (the `background` option), how many of this DB's jobs the
   * background worker ran, and how many times it died while running one (the job then ran again).
   */
  background: { mode: 'worker' | 'inline'; workerJobs: number; workerDeaths: number };
  wal: WalStats;
  /** What the WAL's recovery found when this DB was opened. */
  walRecovery: RecoveryInfo;
  /**
   * The change feed: its retention slots (name, acknowledged position, WAL bytes the slot holds
   * back past what the flushes let go, approximated from segment sizes), the feeds open, and the
   * slots dropped since open for passing `maxRetainedBytes`.
   */
  changes: { slots: { name: string; position: Position; retainedBytes: number }[]; feeds: number; slotsDropped: number };
}

interface Frozen {
  table: FrozenMemtable;
  /** Position of the last WAL record the memtable holds. */
  lastPosition: Position | null;
  lastSeq: number;
}

/** A write validated and encoded, waiting for its seq (given at append time) and the WAL. */
/** A write prepared for the WAL: its encoded batch (its seq still 0), count and user bytes. */
type Pending = PreparedWrite;

/**
 * Largest encoded write (one put, delete or `batch`) the DB accepts: it is one WAL record, whose
 * payload is a flags byte and the batch. The WAL of a DB is opened with this record limit.
 */
export const MAX_WRITE_BYTES = MAX_RECORD_SIZE_LIMIT - 1;

/** Opens a read-only handle tries before giving up on a directory whose writer keeps moving it. */
const READ_ONLY_ATTEMPTS = 5;
/** A read-only handle's stand-in for the directory lock it does not take. */
const NO_LOCK: DirectoryLock = { release: () => Promise.resolve() };

/** The bytes of a small file, or undefined if it does not exist. */
async function readSmallFileOrUndefined(fs: FileSystem, file: string): Promise<Buffer | undefined> {
  try {
    return await readSmallFile(fs, file, 4096);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}
/** Runs of a background job on a worker that keeps dying before the DB gives up (a background error). */
const WORKER_ATTEMPTS = 3;

/** `meta` with its keys in buffers of their own (see `background.ts`). */
function detachedMeta(meta: TableMeta): TableMeta {
  return { ...meta, smallest: new Uint8Array(meta.smallest), largest: new Uint8Array(meta.largest) };
}

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
  #mem = new Memtable();
  /** Frozen memtables waiting for flush, newest first. */
  #imm: Frozen[] = [];
  /** The table set: current version, manifest, file numbers, readers. */
  #versions!: VersionSet;
  /** Seq of the last write applied to the memtable. */
  #seq = 0;
  /** Seq of the last write handed to the WAL (>= #seq: writes in flight). */
  #nextSeq = 0;
  #lastPosition: Position | null = null;
  /** End of the last WAL record applied to the memtable: how far change feeds read. */
  #appliedEnd: Position = { segmentId: 0, offset: SEGMENT_HEADER_SIZE };
  /** Retention slots: name to acknowledged position (what `SLOTS` holds). */
  #slots = new Map<string, Position>();
  /** Slots dropped for passing `maxRetainedBytes` since open: their acks fail with the error. */
  #droppedSlots = new Map<string, SlotDroppedError>();
  #slotsDropped = 0;
  /** Open feeds' holds on the WAL (their read positions); `slot` for a retained feed. */
  #holds = new Set<FeedHold & { slot: string | undefined }>();
  /** Slot updates (and the SLOTS file writes) run one at a time. */
  #slotLane: Promise<void> = Promise.resolve();
  /** Writes of the SLOTS file, one at a time. */
  #slotsFileLane: Promise<void> = Promise.resolve();
  /** Resolved at the next applied write (or close): what caught-up feeds wait on. */
  #writeWaiter: { promise: Promise<void>; resolve: () => void } | undefined;
  /** Copies (checkpoint, backup) holding the WAL: GC waits for them (see #collectWal). */
  #copies = 0;
  /** Where a WAL segment deletion under way deletes up to: feeds cannot start before it. */
  #gcTarget: Position | undefined;
  #status: 'open' | 'closing' | 'closed' = 'open';
  #bgError: Error | undefined;
  /** Flushes run one at a time in this lane, compactions in the other: a long compaction never holds up a flush. */
  #flushLane: Promise<void> = Promise.resolve();
  #compactLane: Promise<void> = Promise.resolve();
  #flushScheduled = false;
  #compactScheduled = false;
  #inflight = 0;
  #admission: Promise<void> = Promise.resolve();
  /** Tickets of writers that queued for admission, and the last one a slowdown delay admitted. */
  #admissionTicket = 0;
  #slowGroupEnd = 0;
  /** WAL bytes behind the active memtable (approximate: frames of the records it received). */
  #walBytesSinceFreeze = 0;
  #admissionQueue = 0;
  #waiters: (() => void)[] = [];
  #closing: Promise<void> | undefined;
  #workerJobs = 0;
  #workerDeaths = 0;
  /** Since when writes are stopped (undefined: they are not); counts of stops and slowdowns begun. */
  #stoppedSince: number | undefined;
  #stopEpoch = 0;
  #slowEpoch = 0;
  /** True while a slowdown delay runs. */
  #slowing = false;
  #compactionsRunning = 0;
  #compactionTime = { jobMs: 0, readMs: 0, writeMs: 0, finishMs: 0, yieldedMs: 0 };
  #stats = {
    writeStalls: 0,
    writeStallMs: 0,
    writeSlowdowns: 0,
    writeSlowdownMs: 0,
    flushes: 0,
    compactions: 0,
    trivialMoves: 0,
    l0CompactionL1BytesRead: 0,
    userBytes: 0,
    flushBytes: 0,
    compactionBytesRead: 0,
    compactionBytesWritten: 0,
  };

  private constructor(dir: string, opts: ResolvedDBOptions, lock: DirectoryLock) {
    this.#dir = dir;
    this.#opts = opts;
    this.#fs = opts.fs;
    this.#lock = lock;
    this.#cache = new BlockCache(opts.blockCacheSize);
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
      pending = prepare([this.#putOp(key, value, options?.ttlMs)]);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#write(pending, options?.sync === true);
  }

  /** Deletes `key` (absent keys are fine). Resolves and rejects as {@link put}. */
  delete(key: K | Uint8Array, options?: WriteOptions): Promise<void> {
    let pending: Pending;
    try {
      this.#checkWritable();
      checkWriteOptions(options, WRITE_OPTIONS);
      pending = prepare([this.#deleteOp(key)]);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#write(pending, options?.sync === true);
  }

  /**
   * Applies operations atomically: after any crash, all of them or none are visible, and readers
   * never see part of them. Every operation is validated before anything is written.
   */
  batch(operations: readonly BatchOperation<K | Uint8Array, PutValue<V>>[], options?: WriteOptions): Promise<void> {
    const ops: BatchOp[] = [];
    let pending: Pending;
    try {
      this.#checkWritable();
      checkWriteOptions(options, WRITE_OPTIONS);
      if (!Array.isArray(operations)) throw new TypeError('batch takes an array of operations');
      for (const op of operations) {
        if (typeof op !== 'object' || op === null) throw new TypeError('a batch operation must be an object');
        if (op.type === 'put') {
          checkNames(op, PUT_OPERATION, 'batch put operation');
          ops.push(this.#putOp(op.key, op.value, op.ttlMs));
        } else if (op.type === 'del') {
          checkNames(op, DEL_OPERATION, 'batch del operation');
          ops.push(this.#deleteOp(op.key));
        } else {
          throw new TypeError(`batch operation type must be 'put' or 'del', got ${String((op as { type: unknown }).type)}`);
        }
      }
      if (ops.length === 0) return Promise.resolve();
      pending = prepare(ops);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#write(pending, options?.sync === true);
  }

  /**
   * Encodes a key and checks its size against `limit`: a put's key against `maxKeySize`; a
   * delete's against the largest `maxKeySize` this DB was ever opened with (a key stored then
   * can still be deleted); a read's not at all.
   */
  #key(key: unknown, limit: number = this.#opts.maxKeySize): Uint8Array {
    const k = encodeKey(this.#opts.keyEncoding, key);
    if (k.length > limit) throw new RangeError(`key of ${k.length} bytes is over maxKeySize (${limit})`);
    return k;
  }

  #deleteOp(key: unknown): BatchOp {
    return { kind: 'delete', key: this.#key(key, this.#persisted.maxKeySize), value: EMPTY_BYTES, expiresAt: undefined };
  }

  #putOp(key: unknown, value: unknown, ttlMs: unknown): BatchOp {
    const k = this.#key(key);
    const v = encodeValue(this.#opts.valueEncoding, value);
    if (v.length > this.#opts.maxValueSize) {
      throw new RangeError(`value of ${v.length} bytes is over maxValueSize (${this.#opts.maxValueSize})`);
    }
    let expiresAt: number | undefined;
    if (ttlMs !== undefined) {
      if (typeof ttlMs !== 'number') throw new TypeError('ttlMs must be a number');
      if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive finite number, got ${ttlMs}`);
      expiresAt = Math.ceil(this.#now() + ttlMs);
      // Checked here, before the WAL append: the record codec holds expiries below 2^53 only.
      if (!isExpiry(expiresAt)) {
        throw new RangeError(
          `ttlMs ${ttlMs} puts the expiry past 2^53 - 1 ms since the epoch; leave ttlMs out for a key that never expires`,
        );
      }
    }
    // No copy: the op is encoded into the batch before the call returns.
    return { kind: 'put', key: k, value: v, expiresAt };
  }

  /** The clock's time, checked: a write must not derive an expiry from garbage. */
  #now(): number {
    const t: unknown = this.#opts.clock();
    if (typeof t !== 'number') throw new TypeError(`the clock option must return a number of ms since the epoch, got ${typeof t}`);
    if (!(t >= 0 && t <= Number.MAX_SAFE_INTEGER))
      throw new RangeError(`the clock option returned ${t}, not a time in ms since the epoch below 2^53`);
    return t;
  }

  /**
   * The common case, a write that neither waits for admission nor syncs, is no async function:
   * its promise is the WAL append's, and the WAL tells the write where its record went
   * ({@link #writeTarget}). 64 concurrent puts allocated 2.4 kB per put with the async
   * function and the append's reaction.
   */
  #write(pending: Pending, sync: boolean): Promise<void> {
    if (!sync && this.#admissionQueue === 0 && !this.#mustWait()) return this.#append(pending);
    return this.#writeWaiting(pending, sync);
  }

  /**
   * Hands a write to the WAL, in flight until its append settles. The seq is given here,
   * synchronously with the append: appends reach the WAL in call order, so seqs grow in log
   * order. (A write the WAL then refuses leaves a gap: the log has failed for good by then.)
   * The memtable update runs as the WAL settles the append, in log order.
   */
  #append(pending: Pending): Promise<void> {
    this.#inflight++;
    const seq = this.#nextSeq + 1;
    this.#nextSeq += pending.count;
    setBatchSeq(pending.batch, seq);
    const record = Record.opaqueOwned(pending.batch);
    pending.seq = seq;
    pending.frameBytes = record.payloadSize + FRAME_HEADER_SIZE;
    pending.target = this.#writeTarget;
    return this.#wal.appendWith(record, pending);
  }

  /** What the WAL's settling of an append does: apply it, and count it out of the writes in flight. */
  readonly #writeTarget: WriteTarget = {
    applied: (pending, segmentId, offset) => {
      try {
        this.#apply(pending, pending.seq, { segmentId, offset }, pending.frameBytes);
      } finally {
        if (--this.#inflight === 0) this.#notify();
      }
    },
    failed: () => {
      if (--this.#inflight === 0) this.#notify();
    },
  };

  async #writeWaiting(pending: Pending, sync: boolean): Promise<void> {
    // Writers that must wait queue up in call order, and a writer arriving while others wait
    // queues behind them: writes reach the WAL in the order they were called.
    if (this.#admissionQueue > 0 || this.#mustWait()) {
      const stopEpoch = this.#stopEpoch;
      const slowEpoch = this.#slowEpoch;
      const stoppedAtEntry = this.#stoppedSince !== undefined;
      const slowedAtEntry = this.#slowing;
      this.#admissionQueue++;
      const ticket = ++this.#admissionTicket;
      const mine = this.#admission.then(() => this.#admit(ticket));
      this.#admission = mine.catch(() => undefined);
      try {
        await mine;
      } finally {
        this.#admissionQueue--;
        // A writer queued behind others counts for what held the queue while it waited: a stop
        // (stalled), else a slowdown (slowed), else nothing (the queue drained at once).
        if (stoppedAtEntry || this.#stopEpoch !== stopEpoch) {
          this.#stats.writeStalls++;
          this.#opts.meter.counter('db.write_stalls', 1);
        } else if (slowedAtEntry || this.#slowEpoch !== slowEpoch) {
          this.#stats.writeSlowdowns++;
          this.#opts.meter.counter('db.write_slowdowns', 1);
        }
      }
    }
    // In flight until the sync too (close waits for it).
    this.#inflight++;
    try {
      await this.#append(pending);
      if (sync && this.#opts.fsync !== 'always') await this.#wal.sync();
    } finally {
      if (--this.#inflight === 0) this.#notify();
    }
  }

  /**
   * Applies logged records to the memtable. Everything that could refuse them was decided before
   * the append, so this cannot fail; if it ever did, the memtable would no longer match the log,
   * so writes stop (loudly) instead of going on.
   */
  #apply(pending: Pending, seq: number, last: Position, frameBytes: number): void {
    try {
      const mem = this.#mem;
      const batch = pending.batch;
      visitOps(batch, (kind, keyAt, keyLength, valueLength, expiresAt, i) => {
        mem.insertFrom(batch, keyAt, keyLength, valueLength, seq + i, kind === 'delete', expiresAt);
      });
      this.#seq = seq + pending.count - 1;
      this.#stats.userBytes += pending.userBytes;
      this.#walBytesSinceFreeze += frameBytes;
    } catch (err) {
      this.#setBackgroundError(
        new Error(
          'internal error: a logged write could not be applied to the memtable; writes are stopped, reopen to recover it from the WAL',
          { cause: err },
        ),
      );
      throw err;
    }
    this.#lastPosition = last;
    this.#appliedEnd = { segmentId: last.segmentId, offset: last.offset + frameBytes };
    this.#wakeFeeds();
    // Overwrites of the same keys keep the memtable small while the WAL grows: bound the WAL
    // behind the memtable too (RocksDB's max_total_wal_size), or it would never be collected.
    if (this.#mustFreeze()) this.#freeze();
  }

  /** Wakes change feeds waiting for writes. */
  #wakeFeeds(): void {
    const w = this.#writeWaiter;
    if (w === undefined) return;
    this.#writeWaiter = undefined;
    w.resolve();
  }

  #mustFreeze(): boolean {
    return this.#mem.approximateBytes >= this.#opts.memtableSize || this.#walBytesSinceFreeze >= 4 * this.#opts.memtableSize;
  }

  #freeze(): void {
    if (this.#mem.size === 0) return;
    this.#imm.unshift({ table: this.#mem.freeze(), lastPosition: this.#lastPosition, lastSeq: this.#seq });
    this.#mem = new Memtable();
    this.#walBytesSinceFreeze = 0;
    this.#scheduleFlush();
  }

  #mustWait(): boolean {
    return this.#imm.length >= this.#opts.maxFrozenMemtables || this.#versions.current.levels[0]!.length >= this.#opts.l0SlowdownTrigger;
  }

  /** Write stalls: wait for flushes or compaction, LevelDB style (slow down, then stop). */
  async #admit(ticket: number): Promise<void> {
    const stopped = (): boolean =>
      this.#imm.length >= this.#opts.maxFrozenMemtables || this.#versions.current.levels[0]!.length >= this.#opts.l0StopTrigger;
    if (stopped()) {
      this.#scheduleFlush();
      this.#scheduleCompaction();
      const t0 = performance.now();
      this.#stoppedSince = t0;
      this.#stopEpoch++;
      try {
        await this.#until(() => !stopped());
      } finally {
        this.#stoppedSince = undefined;
        const ms = performance.now() - t0;
        this.#stats.writeStallMs += ms;
        const meter = this.#opts.meter;
        meter.counter('db.write_stall_ms', ms);
        meter.event({ type: 'write-stall', durationMs: ms });
      }
      // Not #checkWritable: a write called before close() goes through while the DB closes.
      if (this.#bgError) throw this.#bgError;
    }
    // The slowdown delays a group of writes, as LevelDB delays a write group once: one 1 ms
    // delay admits every writer that queued before it ended. (Delaying each writer by 1 ms in
    // turn would cap 64 concurrent writers at 1,000 writes/s.)
    if (this.#versions.current.levels[0]!.length >= this.#opts.l0SlowdownTrigger && ticket > this.#slowGroupEnd) {
      this.#slowEpoch++;
      this.#slowing = true;
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 1));
      this.#slowing = false;
      this.#slowGroupEnd = this.#admissionTicket;
      const ms = performance.now() - t0;
      this.#stats.writeSlowdownMs += ms;
      this.#opts.meter.counter('db.write_slowdown_ms', ms);
    }
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
        if (this.#status === 'closed') {
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

  /**
   * Takes a snapshot: a consistent view of the DB as it is now (every write that resolved, none
   * made later), for `get`, `getSync`, `has`, `getMany` and `iterator` (`{ snapshot }`). It pins
   * the memtables and the table set, whose files stay on disk until it is closed: close it (or
   * `using snap = db.snapshot()`) when done; the DB's close releases those still open. Synchronous.
   */
  snapshot(): Snapshot {
    if (this.#status === 'closed') throw new ClosedError('the database');
    const snap = new Snapshot(
      this,
      this.#mem.freeze(),
      this.#imm.map((f) => f.table),
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
    const k = this.#key(key, this.#persisted.maxKeySize);
    const f = this.#found;
    const hash = keyHash(k);
    if (!(snap ? snap.find(k, hash, f) : this.#find(k, hash, f)) || f.kind === 'delete') return undefined;
    // The clock only when there is an expiry to judge.
    if (f.expiresAt !== undefined && f.expiresAt <= (snap ? snap.now : this.#opts.clock())) return undefined;
    return k;
  }

  /** Checks the DB and read options; the snapshot to read, if any. */
  #readView(options: ReadOptions | undefined): Snapshot | undefined {
    if (this.#status === 'closed') throw new ClosedError('the database');
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
    // An empty memtable (after a flush) is not asked.
    if (this.#mem.size !== 0 && this.#mem.find(k, hash, out)) return true;
    for (const f of this.#imm) if (f.table.find(k, hash, out)) return true;
    return this.#versions.current.find(k, hash, out);
  }

  /**
   * Entries in key order (descending with `reverse`) within the bounds, as `[key, value]`. The
   * iterator reads a snapshot: the one given, or one taken when it was created. Later writes,
   * flushes and compactions do not change what it yields. `for await` and `all()` close it when
   * they end; with `next()`/`nextv()`, call `close()` (the DB's close closes it too).
   */
  iterator(options: IteratorOptions<K | Uint8Array> = {}): DBIterator<K, V> {
    if (this.#status === 'closed') throw new ClosedError('the database');
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
        cursors: [this.#mem.freeze().iterator(), ...this.#imm.map((f) => f.table.iterator()), ...version.cursors(true)],
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
    const existing = retain === undefined ? undefined : this.#slots.get(retain);
    const start: Position = since !== undefined ? { segmentId: since.segmentId, offset: since.offset } : (existing ?? this.#oldest());
    const hold = { position: start, error: undefined as Error | undefined, slot: retain };
    this.#holds.add(hold);
    const { keyEncoding, valueEncoding } = this.#opts;
    const host = this.#feedHost<K, V>({
      started: async (at) => {
        if (retain === undefined || this.#slots.has(retain)) return;
        await this.#updateSlots(() => {
          if (!this.#slots.has(retain)) this.#slots.set(retain, at);
          this.#droppedSlots.delete(retain);
        });
      },
      ended: (h) => {
        this.#holds.delete(h as typeof hold);
      },
      decode: (op) => {
        const key = decodeKey(keyEncoding, op.key) as K;
        return { key, value: op.kind === 'delete' ? undefined : (decodeValue(valueEncoding, op.value, op.key) as V) };
      },
    });
    return new ChangeFeed<K, V>(host, start, hold);
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
    checkSlotName(name);
    assertPosition(position, 'position');
    const pos = { segmentId: position.segmentId, offset: position.offset };
    const current = this.#slotOf(name);
    if (comparePositions(pos, current) < 0)
      throw new InvalidPositionError(pos, `before the slot's position (${current.segmentId}/${current.offset})`);
    if (comparePositions(pos, current) === 0) return;
    await checkFeedPosition(
      this.#feedHost<unknown, unknown>({
        started: () => Promise.resolve(),
        ended: () => undefined,
        decode: () => ({ key: undefined, value: undefined }),
      }),
      pos,
    );
    await this.#updateSlots(() => {
      const current = this.#slotOf(name);
      const c = comparePositions(pos, current);
      if (c < 0) throw new InvalidPositionError(pos, `before the slot's position (${current.segmentId}/${current.offset})`);
      if (c === 0) return false;
      this.#slots.set(name, pos);
      return true;
    });
  }

  /**
   * Drops retention slot `name` (durably): it holds nothing back any more. Rejects with
   * `UnknownSlotError` for no such slot (a slot dropped for `maxRetainedBytes` is released
   * quietly), `ReadOnlyError` on a read-only handle, `ClosedError` after close.
   */
  async releaseChanges(name: string): Promise<void> {
    this.#checkSlotOp('releaseChanges');
    checkSlotName(name);
    await this.#updateSlots(() => {
      if (this.#droppedSlots.delete(name)) return false;
      if (!this.#slots.delete(name)) throw new UnknownSlotError(name);
      return true;
    });
  }

  #checkSlotOp(op: string): void {
    if (this.#status !== 'open') throw new ClosedError('the database');
    if (this.#opts.readOnly) throw new ReadOnlyError('the database', op);
  }

  #slotOf(name: string): Position {
    const dropped = this.#droppedSlots.get(name);
    if (dropped) throw dropped;
    const p = this.#slots.get(name);
    if (p === undefined) throw new UnknownSlotError(name);
    return p;
  }

  /** What a feed (or a position check outside one) needs of this DB, with its own hooks. */
  #feedHost<K2, V2>(hooks: Pick<FeedHost<K2, V2>, 'started' | 'ended' | 'decode'>): FeedHost<K2, V2> {
    return {
      fs: this.#fs,
      wal: this.#wal,
      walDir: path.join(this.#dir, WAL_DIR),
      readOnly: this.#opts.readOnly,
      appliedEnd: () => this.#appliedEnd,
      oldest: () => this.#oldest(),
      isOpen: () => this.#status === 'open',
      nextWrite: () => this.#nextWrite(),
      ...hooks,
    };
  }

  /**
   * Runs `change` on the slots in the slot lane; if it returns true (or nothing), writes `SLOTS`
   * (atomically, durably) and lets the WAL go up to the new lowest position. A throw changes
   * nothing. A failed write puts the slots back as they were on disk.
   */
  #updateSlots(change: () => boolean | undefined): Promise<void> {
    const run = this.#slotLane.then(async () => {
      if (this.#status === 'closed') throw new ClosedError('the database');
      const before = new Map(this.#slots);
      if (change() === false) return;
      try {
        await this.#persistSlots();
      } catch (err) {
        this.#slots = before;
        throw err;
      }
      await this.#collectWal();
    });
    this.#slotLane = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes `SLOTS` with the slots as they are when the write starts; writes run one at a time
   * (a slot update and a flush dropping a slot may both write).
   */
  #persistSlots(): Promise<void> {
    const run = this.#slotsFileLane.then(() => writeSlotsFile(this.#fs, this.#dir, new Map(this.#slots)));
    this.#slotsFileLane = run.catch(() => undefined);
    return run;
  }

  /** The oldest position a feed can start at. */
  #oldest(): Position {
    const ids = this.#wal.stats();
    let id = ids.oldestSegmentId;
    if (this.#gcTarget && this.#gcTarget.segmentId > id) id = this.#gcTarget.segmentId;
    return { segmentId: id, offset: SEGMENT_HEADER_SIZE };
  }

  /** Resolves at the next applied write, or at close. */
  #nextWrite(): Promise<void> {
    if (this.#status !== 'open') return Promise.resolve();
    if (this.#writeWaiter === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#writeWaiter = { promise, resolve };
    }
    return this.#writeWaiter.promise;
  }

  /**
   * WAL bytes that `p` holds back past the flushed position: 0 when `p` is at or after it. From
   * positions and the segment size (sealed segments are at most that big), so an approximation.
   */
  #retainedBytes(p: Position): number {
    const flushed = this.#versions.state.flushedThrough;
    if (!flushed || comparePositions(p, flushed) >= 0) return 0;
    return Math.max(0, (flushed.segmentId - p.segmentId) * this.#opts.walSegmentSize + flushed.offset - p.offset);
  }

  /**
   * Deletes the WAL segments no one needs: wholly before the manifest's flushed position, the
   * lowest slot and every open feed's read position. A slot or feed holding back more than
   * `maxRetainedBytes` is dropped first (durably, loudly).
   */
  async #collectWal(): Promise<void> {
    const flushed = this.#versions.state.flushedThrough;
    if (!flushed || this.#opts.readOnly) return;
    const max = this.#opts.maxRetainedBytes;
    const meter = this.#opts.meter;
    let dropped = false;
    for (const [name, p] of [...this.#slots]) {
      const bytes = this.#retainedBytes(p);
      if (bytes <= max) continue;
      const err = new SlotDroppedError(name, bytes, max);
      this.#slots.delete(name);
      this.#droppedSlots.set(name, err);
      this.#slotsDropped++;
      dropped = true;
      for (const h of this.#holds) if (h.slot === name) h.error = err;
      meter.counter('db.changes_slots_dropped', 1);
      meter.event({ type: 'changes-slot-dropped', slot: name, retainedBytes: bytes, maxRetainedBytes: max });
    }
    for (const h of this.#holds) {
      if (h.error || h.slot !== undefined) continue;
      const bytes = this.#retainedBytes(h.position);
      if (bytes > max) h.error = new ChangesExpiredError(h.position, flushed);
    }
    // Durable before the segments the dropped slots held go: a crash must not bring back a slot
    // whose segments are gone.
    if (dropped) await this.#persistSlots();
    // While a copy holds the WAL nothing is deleted; its release runs this again. (The WAL would
    // defer the deletion itself, to the furthest position asked for meanwhile, which could be
    // past what a feed started meanwhile needs.)
    if (this.#copies > 0) return;
    let gc: Position = flushed;
    for (const p of this.#slots.values()) if (comparePositions(p, gc) < 0) gc = p;
    for (const h of this.#holds) if (!h.error && comparePositions(h.position, gc) < 0) gc = h.position;
    this.#gcTarget = gc;
    try {
      await this.#wal.deleteSegmentsBefore(gc);
    } finally {
      if (this.#gcTarget === gc) this.#gcTarget = undefined;
    }
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
      this.#copies++;
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
          if (--this.#copies === 0 && this.#status === 'open') this.#collectWal().catch(() => undefined);
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
      await this.#inLane('compact', async () => {
        const plan = fullCompaction(this.#versions.current);
        if (plan) await this.#runCompaction(plan);
      });
      if (this.#bgError) throw this.#bgError;
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
    this.#freeze();
    this.#scheduleFlush();
    await this.#until(() => this.#imm.length === 0);
  }

  /** Counters and state; see {@link DBStats}. */
  stats(): DBStats {
    const s = this.#stats;
    const written = s.flushBytes + s.compactionBytesWritten;
    const v = this.#versions.current;
    const debt = compactionDebt(v, this.#opts);
    return {
      memtable: { bytes: this.#mem.approximateBytes, entries: this.#mem.size },
      frozenMemtables: this.#imm.length,
      levels: v.levels.map((level, l) => ({
        tables: level.length,
        bytes: v.levelBytes(l),
        targetBytes: l === 0 || l === v.levels.length - 1 ? undefined : levelTarget(l, this.#opts),
        debtBytes: debt[l]!,
      })),
      lastSequence: this.#seq,
      blockCache: this.#cache.stats(),
      ...s,
      compactionsRunning: this.#compactionsRunning,
      compactionDebtBytes: debt.reduce((a, b) => a + b, 0),
      compactionTime: { ...this.#compactionTime },
      writeAmplification: s.userBytes > 0 ? written / s.userBytes : 0,
      backgroundError: this.#bgError,
      background: { mode: this.#opts.background, workerJobs: this.#workerJobs, workerDeaths: this.#workerDeaths },
      wal: this.#wal.stats(),
      walRecovery: this.#walRecovery,
      changes: {
        slots: [...this.#slots].map(([name, position]) => ({
          name,
          position: { ...position },
          retainedBytes: this.#retainedBytes(position),
        })),
        feeds: this.#holds.size,
        slotsDropped: this.#slotsDropped,
      },
    };
  }

  /**
   * Waits for writes in flight and the running flush or compaction, closes the WAL (which syncs)
   * and the tables, and releases the lock. Later calls reject with `ClosedError`. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#status = 'closing';
    this.#wakeFeeds(); // caught-up feeds end now
    await this.#slotLane;
    await this.#slotsFileLane;
    // Writes called before close (also those a write stall holds), and flush()/compact() calls.
    await this.#until(() => this.#inflight === 0 && this.#maintenance === 0 && this.#admissionQueue === 0).catch(() => undefined);
    await Promise.all([this.#flushLane, this.#compactLane]);
    await this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    this.#status = 'closed';
    this.#wakeFeeds();
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

  /** Runs `job` after the jobs queued before it in the same lane. */
  #inLane(lane: 'flush' | 'compact', job: () => Promise<void>): Promise<void> {
    const prev = lane === 'flush' ? this.#flushLane : this.#compactLane;
    const run = prev.then(async () => {
      if (this.#bgError || this.#status === 'closed') return;
      try {
        await job();
      } catch (err) {
        this.#setBackgroundError(err);
      } finally {
        this.#notify();
      }
    });
    if (lane === 'flush') this.#flushLane = run;
    else this.#compactLane = run;
    return run;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    void this.#inLane('flush', async () => {
      this.#flushScheduled = false;
      // While closing, only for a flush() or compact(), or writes waiting for a flush, called
      // before close(): close waits for those.
      while (this.#imm.length > 0 && (this.#status === 'open' || this.#maintenance > 0 || this.#admissionQueue > 0) && !this.#bgError) {
        await this.#flushOldest();
        this.#notify();
        this.#scheduleCompaction();
      }
    });
  }

  #scheduleCompaction(): void {
    if (this.#compactScheduled) return;
    this.#compactScheduled = true;
    void this.#inLane('compact', async () => {
      this.#compactScheduled = false;
      // While closing, only for writes called before close() that wait for a compaction.
      while ((this.#status === 'open' || this.#admissionQueue > 0) && !this.#bgError) {
        const plan = pickCompaction(this.#versions.current, this.#opts, this.#versions.pointers);
        if (!plan) return;
        await this.#runCompaction(plan);
        this.#notify();
      }
    });
  }

  #setBackgroundError(err: unknown): void {
    if (!this.#bgError) {
      this.#bgError = err instanceof Error ? err : new Error(String(err));
      this.#opts.meter.counter('db.background_errors', 1);
      this.#opts.meter.event({ type: 'background-error', error: this.#bgError });
    }
    this.#notify();
  }

  /** Runs a compaction's merge where the `background` option says. */
  async #compactionJob(plan: CompactionPlan): Promise<JobResult> {
    const job: CompactionJob = {
      kind: 'compaction',
      dir: this.#dir,
      compression: this.#opts.compression,
      tableFileSize: this.#opts.tableFileSize,
      grandparents:
        plan.reason === 'manual'
          ? []
          : grandparentsOf(this.#versions.current, plan).map((t) => ({
              smallest: new Uint8Array(t.meta.smallest),
              largest: new Uint8Array(t.meta.largest),
              size: t.meta.size,
            })),
      maxGrandparentOverlap: maxGrandparentOverlap(this.#opts),
      // Copies: posting a key that views a larger buffer (a decoded manifest) would clone it all.
      inputs: plan.inputs.map((tables) => tables.map((t) => detachedMeta(t.meta))),
      overlappingFirst: plan.level === 0,
      below: this.#versions.current.levels
        .slice(plan.outputLevel + 1)
        .map((level) =>
          level.map((t) => ({ meta: { smallest: new Uint8Array(t.meta.smallest), largest: new Uint8Array(t.meta.largest) } })),
        ),
      now: this.#opts.clock(),
    };
    if (this.#opts.background === 'inline') {
      // The live readers (and their block cache) serve as the inputs.
      const readers = new Map(plan.inputs.flat().map((t) => [t.meta.fileNumber, t.reader]));
      return runCompactionJob(job, {
        fs: this.#fs,
        openInput: (meta) => Promise.resolve(readers.get(meta.fileNumber)!),
        releaseInput: () => Promise.resolve(),
        newFileNumber: this.#versions.newFileNumber,
      });
    }
    return this.#inWorker(job);
  }

  /**
   * Runs `job` in the process's background worker. A worker that dies mid-job (it wrote nothing
   * any manifest names) leaves files under the numbers it was granted: they are removed, and the
   * job runs again on a new worker, up to {@link WORKER_ATTEMPTS} times in all.
   */
  async #inWorker(job: WorkerJob): Promise<JobResult> {
    const worker = BackgroundWorker.shared();
    // With the real disk the worker opens the files itself; any other file system is served to it.
    const fs = this.#fs === nodeFileSystem ? undefined : this.#fs;
    const allocate = (count: number): number[] => Array.from({ length: count }, this.#versions.newFileNumber);
    for (let attempt = 1; ; attempt++) {
      try {
        this.#workerJobs++;
        return await worker.run(job, fs, allocate);
      } catch (err) {
        if (!(err instanceof BackgroundWorkerError)) throw err;
        this.#workerDeaths++;
        this.#opts.meter.counter('db.background_worker_deaths', 1);
        for (const n of err.fileNumbers) {
          const file = path.join(this.#dir, tableFileName(n));
          await this.#fs.unlink(file).catch(() => undefined); // what stays is removed at the next open
        }
        if (attempt >= WORKER_ATTEMPTS) throw err;
      }
    }
  }

  /** Writes the oldest frozen memtable as an L0 table and records it in the manifest. */
  async #flushOldest(): Promise<void> {
    const t0 = performance.now();
    const f = this.#imm[this.#imm.length - 1]!;
    const output = { dir: this.#dir, compression: this.#opts.compression };
    const { tables: written } =
      this.#opts.background === 'inline'
        ? await runFlushJob(f.table, output, { fs: this.#fs, newFileNumber: this.#versions.newFileNumber })
        : await this.#inWorker({ kind: 'flush', ...output, arena: f.table.arena() });
    const added = await this.#versions.openTables(written);
    // The manifest will say "the WAL is flushed through f.lastPosition": the WAL must hold that
    // position durably first, or after a power loss new records could land at or before it and
    // be skipped by every replay.
    await this.#wal.sync().catch(async (err: unknown) => {
      await this.#versions.closeTables(added);
      throw err;
    });
    await this.#versions.install({
      added: added.map((table) => ({ level: 0, table })),
      removed: new Set(),
      lastSeq: f.lastSeq,
      ...(f.lastPosition ? { flushedThrough: f.lastPosition } : {}),
    });
    this.#imm.pop();
    this.#stats.flushes++;
    let bytes = 0;
    for (const w of written) bytes += w.meta.size;
    this.#stats.flushBytes += bytes;
    const meter = this.#opts.meter;
    const ms = performance.now() - t0;
    meter.counter('db.flushes', 1);
    meter.counter('db.flush_bytes', bytes);
    meter.histogram('db.flush_ms', ms);
    meter.event({ type: 'flush', tables: written.length, bytes, durationMs: ms });
    // The manifest now covers everything up to f.lastPosition: older segments are garbage.
    if (f.lastPosition) await this.#collectWal();
  }

  async #runCompaction(plan: CompactionPlan): Promise<void> {
    const t0 = performance.now();
    this.#compactionsRunning++;
    try {
      if (plan.trivialMove) await this.#moveTables(plan, t0);
      else await this.#mergeTables(plan, t0);
    } finally {
      this.#compactionsRunning--;
    }
  }

  /** A size compaction moves its level's round-robin position (in the manifest it installs). */
  #pointerEdit(plan: CompactionPlan): { compactPointer?: { level: number; key: Uint8Array } } {
    const upper = plan.inputs[0]!;
    return plan.reason === 'size' && upper.length > 0
      ? { compactPointer: { level: plan.level, key: upper[upper.length - 1]!.meta.largest } }
      : {};
  }

  /** A trivial move: the manifest moves the tables a level down; no table is read or written. */
  async #moveTables(plan: CompactionPlan, t0: number): Promise<void> {
    const tables = plan.inputs[0]!;
    // The same readers: VersionSet.install never closes a table the current manifest names.
    await this.#versions.install({
      added: tables.map((table) => ({ level: plan.outputLevel, table })),
      removed: new Set(tables.map((t) => t.meta.fileNumber)),
      ...this.#pointerEdit(plan),
    });
    this.#stats.compactions++;
    this.#stats.trivialMoves++;
    const meter = this.#opts.meter;
    const ms = performance.now() - t0;
    meter.counter('db.compactions', 1);
    meter.histogram('db.compaction_ms', ms);
    meter.event({
      type: 'compaction',
      level: plan.level,
      outputLevel: plan.outputLevel,
      bytesRead: 0,
      bytesWritten: 0,
      durationMs: ms,
      trivialMove: true,
    });
  }

  async #mergeTables(plan: CompactionPlan, t0: number): Promise<void> {
    const { tables: written, profile } = await this.#compactionJob(plan);
    const added = await this.#versions.openTables(written);
    const removed = new Set<number>();
    for (const tables of plan.inputs) for (const t of tables) removed.add(t.meta.fileNumber);
    // Applied at install time to the live version: a flush may have added L0 tables meanwhile.
    await this.#versions.install({
      added: added.map((table) => ({ level: plan.outputLevel, table })),
      removed,
      ...this.#pointerEdit(plan),
    });
    let bytesRead = 0;
    let bytesWritten = 0;
    for (const tables of plan.inputs) for (const t of tables) bytesRead += t.meta.size;
    for (const w of written) bytesWritten += w.meta.size;
    let l1BytesRead = 0;
    if (plan.reason === 'l0') for (const t of plan.inputs[1] ?? []) l1BytesRead += t.meta.size;
    this.#stats.compactions++;
    this.#stats.compactionBytesRead += bytesRead;
    this.#stats.compactionBytesWritten += bytesWritten;
    this.#stats.l0CompactionL1BytesRead += l1BytesRead;
    const time = this.#compactionTime;
    time.jobMs += profile.totalMs;
    time.readMs += profile.readMs;
    time.writeMs += profile.writeMs;
    time.finishMs += profile.finishMs;
    time.yieldedMs += profile.yieldedMs;
    const meter = this.#opts.meter;
    const ms = performance.now() - t0;
    meter.counter('db.compactions', 1);
    meter.counter('db.compaction_read_bytes', bytesRead);
    meter.counter('db.compaction_written_bytes', bytesWritten);
    meter.histogram('db.compaction_ms', ms);
    meter.event({
      type: 'compaction',
      level: plan.level,
      outputLevel: plan.outputLevel,
      bytesRead,
      bytesWritten,
      durationMs: ms,
      inputTables: plan.inputs.map((tables) => tables.length),
      outputTables: written.length,
      profile,
    });
  }

  // -- open --------------------------------------------------------------------------------

  async #recover(): Promise<void> {
    const fs = this.#fs;
    const dir = this.#dir;
    const readOnly = this.#opts.readOnly;
    let current = await readCurrentManifest(fs, dir);
    let persisted: PersistedOptions;
    // A DB made by sediment 0.1.0: no OPTIONS, and a WAL without its state file.
    let legacy = false;
    if (current) {
      // An existing DB: its OPTIONS are checked before anything on disk changes (a mismatch is an
      // InvalidConfigError with nothing written). A 0.1.0 DB adopts the options given; they are
      // recorded only once its WAL is adopted (below), so that a crash in between leaves a DB
      // that is still recognised as 0.1.0's.
      const stored = await readOptionsFile(fs, dir);
      legacy = stored === undefined;
      persisted =
        readOnly || legacy ? checkPersistedOptions(stored, this.#opts) : await openOptionsFile(fs, dir, this.#opts, { fresh: false });
    } else {
      if (readOnly) {
        const file = path.join(dir, CURRENT_FILE);
        throw new IoError(
          'open',
          file,
          Object.assign(new Error(`no database in ${dir} (no CURRENT), and a read-only open creates nothing`), { code: 'ENOENT' }),
        );
      }
      persisted = await this.#create();
      current = (await readCurrentManifest(fs, dir))!;
    }
    this.#versions = await VersionSet.open(fs, dir, this.#cache, current, readOnly);
    const state = this.#versions.state;
    this.#seq = state.lastSeq;

    // Records through the flushed position are in the tables: damage among them does not
    // matter, and new records must land after it. The WAL was created before CURRENT, so it
    // must exist now: a missing one is corruption, not a new log.
    this.#persisted = persisted;
    // Retention slots keep WAL segments past the flushed position: the WAL deletes at open only
    // what is before both.
    this.#slots = await readSlotsFile(fs, dir);
    let flushed = state.flushedThrough ?? undefined;
    for (const p of this.#slots.values()) if (flushed !== undefined && comparePositions(p, flushed) < 0) flushed = p;
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
    await this.#replay(state.flushedThrough);
    if (!readOnly && persisted.formatVersion < WRITE_BATCH_FORMAT) await this.#upgrade();
    if (!readOnly) this.#scheduleCompaction();
  }

  /**
   * Creates a new DB's files, in this order: OPTIONS, the WAL, then CURRENT naming the first
   * manifest. A committed DB (one with CURRENT) therefore always has its OPTIONS and its WAL,
   * and either missing later is corruption. A first open that died before CURRENT existed
   * committed nothing: what it left is garbage, unless it holds data.
   */
  async #create(): Promise<PersistedOptions> {
    const fs = this.#fs;
    const dir = this.#dir;
    const names = await ioStep('readdir', dir, () => fs.readdir(dir));
    if (names.some((n) => parseFileName(n)?.type === 'table')) {
      throw new CorruptionError('CURRENT is missing but the directory holds tables', { file: path.join(dir, CURRENT_FILE), offset: 0 });
    }
    if (names.includes(WAL_DIR)) {
      // Records are appended only after CURRENT exists: a WAL with records and no CURRENT means
      // CURRENT was lost, not a first open that died. Looked at read-only, so that this refusal
      // too leaves the directory as it was.
      const walDir = path.join(dir, WAL_DIR);
      const probe = await Wal.open({
        dir: walDir,
        fs,
        readOnly: true,
        maxRecordSize: MAX_WRITE_BYTES + 1,
      }).catch((err: unknown) => {
        if (err instanceof CorruptionError)
          throw new CorruptionError(
            `CURRENT is missing and the WAL is damaged (${err.reason})`,
            { file: path.join(dir, CURRENT_FILE), offset: 0 },
            { cause: err },
          );
        throw err;
      });
      await probe.wal.close();
      if (probe.recovery.validRecords > 0) {
        throw new CorruptionError(`CURRENT is missing but the WAL holds ${probe.recovery.validRecords} records`, {
          file: path.join(dir, CURRENT_FILE),
          offset: 0,
        });
      }
    }
    for (const name of names) {
      const type = parseFileName(name)?.type;
      if (type === 'manifest' || type === 'currentTmp') {
        await ioStep('unlink', path.join(dir, name), () => fs.unlink(path.join(dir, name)));
      }
    }
    const persisted = await openOptionsFile(fs, dir, this.#opts, { fresh: true });
    const { wal } = await Wal.open({ ...walOptionsOf(dir, this.#opts, undefined, persisted), createIfMissing: true });
    await wal.close();
    const state: ManifestState = { nextFileNumber: 1, lastSeq: 0, flushedThrough: null, levels: Array.from({ length: LEVELS }, () => []) };
    await installManifest(fs, dir, 1, state, undefined);
    return persisted;
  }

  /**
   * Replays WAL records after `after` into the memtable, flushing as it fills. A DB of format 2
   * holds one write batch per record, with its seqs; one of format 1 (written before batches
   * carried seqs) one op per record, whose seqs are counted on from the seq before it.
   */
  async #replay(after: Position | null): Promise<void> {
    const from = after ?? { segmentId: 0, offset: 0 };
    const walDir = path.join(this.#dir, WAL_DIR);
    const floor = this.#seq;
    let logSeq = 0;
    for await (const { record, position } of this.#wal.readFrom(from)) {
      if (after && comparePositions(position, after) <= 0) continue;
      const damaged = (reason: string): CorruptionError =>
        new CorruptionError(reason, {
          file: path.join(walDir, segmentFileName(position.segmentId)),
          offset: position.offset,
          segmentId: position.segmentId,
        });
      // Either kind is read whatever OPTIONS says (a format 1 DB upgraded by this open, or one
      // whose OPTIONS a 0.1.0-era tool removed): seqs stay increasing along the log either way.
      if (record.opaque) {
        const batch = record.value;
        const problem = checkWriteBatch(batch);
        if (problem !== undefined) throw damaged(problem);
        const first = batchSeq(batch);
        const last = first + batchCount(batch) - 1;
        // Seqs only grow along the log; a gap is possible (a write the WAL failed under).
        if (first <= logSeq) throw damaged(`write batch seq ${first} is not after the seq ${logSeq} before it`);
        logSeq = last;
        // Ops at or below the manifest's lastSeq are in the tables already (a repaired manifest
        // does not know where the WAL was flushed through): the table holds them, or newer.
        if (last > floor) {
          const mem = this.#mem;
          visitOps(batch, (kind, keyAt, keyLength, valueLength, expiresAt, i) => {
            if (first + i > floor) mem.insertFrom(batch, keyAt, keyLength, valueLength, first + i, kind === 'delete', expiresAt);
          });
          this.#seq = Math.max(this.#seq, last);
        }
      } else {
        // A decoded record is valid (the codec checks every field): applying it cannot fail.
        this.#mem.insertChecked({
          key: record.key,
          seq: ++this.#seq,
          kind: record.tombstone ? 'delete' : 'put',
          value: record.value,
          expiresAt: record.expiresAt,
        });
      }
      this.#lastPosition = position;
      this.#walBytesSinceFreeze += record.payloadSize + FRAME_HEADER_SIZE;
      if (this.#mustFreeze()) {
        this.#imm.unshift({ table: this.#mem.freeze(), lastPosition: position, lastSeq: this.#seq });
        this.#mem = new Memtable();
        this.#walBytesSinceFreeze = 0;
        // A read-only handle keeps what it replayed in memory: it writes no table.
        if (!this.#opts.readOnly) await this.#flushOldest();
      }
    }
    this.#lastPosition ??= after;
    this.#nextSeq = this.#seq;
    this.#appliedEnd = this.#wal.currentPosition();
  }

  /**
   * Moves a DB of format 1 to format 2 (write batches with seqs in the WAL): the replayed
   * single-op records are flushed into a table first, so that no replay ever needs them again,
   * then `OPTIONS` records format 2 (atomically); only then does the DB take writes. A crash in
   * between leaves format 1 with its records flushed: the next open upgrades again.
   */
  async #upgrade(): Promise<void> {
    if (this.#mem.size > 0) {
      this.#imm.unshift({ table: this.#mem.freeze(), lastPosition: this.#lastPosition, lastSeq: this.#seq });
      this.#mem = new Memtable();
      this.#walBytesSinceFreeze = 0;
    }
    while (this.#imm.length > 0) await this.#flushOldest();
    const upgraded = { ...this.#persisted, formatVersion: DB_FORMAT_VERSION };
    await writeOptionsFile(this.#fs, this.#dir, upgraded);
    this.#persisted = upgraded;
  }
}

/** The WAL's options for a DB in `dir`. */
function walOptionsOf(
  dir: string,
  opts: ResolvedDBOptions,
  discardBefore: Position | undefined,
  limits: { maxKeySize: number; maxValueSize: number } = opts,
): WalOptions {
  return {
    dir: path.join(dir, WAL_DIR),
    fs: opts.fs,
    fsync: opts.fsync,
    maxSegmentSize: opts.walSegmentSize,
    // One record per write (a batch), of any size up to the limit of one write; the WAL's record
    // limit bounds what recovery trusts a frame's length to be, after its header checksum.
    maxRecordSize: Math.max(MAX_WRITE_BYTES + 1, limits.maxKeySize + limits.maxValueSize + 64),
    recovery: opts.recovery,
    discardBefore,
    readOnly: opts.readOnly,
    meter: opts.meter as Meter,
  };
}

const EMPTY_BYTES = new Uint8Array(0);

/** Encodes validated ops as one write batch (seq still 0), refusing one over {@link MAX_WRITE_BYTES}. */
function prepare(ops: readonly BatchOp[]): Pending {
  let size = WRITE_BATCH_HEADER_SIZE;
  let userBytes = 0;
  for (const op of ops) {
    size += opSize(op);
    userBytes += op.key.length + op.value.length;
  }
  if (size > MAX_WRITE_BYTES) throw new RangeError(`write of ${size} bytes encoded is over the ${MAX_WRITE_BYTES}-byte limit of one write`);
  return new PreparedWrite(encodeWriteBatch(ops, 0, size), ops.length, userBytes);
}

const WRITE_OPTIONS: ReadonlySet<string> = new Set(['sync']);
const CHANGES_OPTIONS: ReadonlySet<string> = new Set(['since', 'retain']);
const PUT_OPTIONS: ReadonlySet<string> = new Set(['sync', 'ttlMs']);
const PUT_OPERATION: ReadonlySet<string> = new Set(['type', 'key', 'value', 'ttlMs']);
const DEL_OPERATION: ReadonlySet<string> = new Set(['type', 'key']);

/** Refuses names `known` does not hold: a misspelt option (`ttl`, `synch`) must not be ignored. */
function checkNames(o: object, known: ReadonlySet<string>, what: string): void {
  for (const name of Object.keys(o)) {
    if (!known.has(name)) throw new TypeError(`unknown ${what} field '${name}' (known: ${[...known].join(', ')})`);
  }
}

function checkWriteOptions(options: unknown, known: ReadonlySet<string>): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  checkNames(options, known, 'write option');
  const sync = (options as { sync?: unknown }).sync;
  if (sync !== undefined && typeof sync !== 'boolean') throw new TypeError('sync must be a boolean');
}
