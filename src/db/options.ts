/**
 * {@link DBOptions}: what `DB.open` takes, each option's default and trade-off, and validation.
 * An invalid option rejects the open with `InvalidConfigError` before anything touches the disk.
 *
 * @module
 */
import { InvalidConfigError } from '../errors.js';
import { nodeFileSystem } from '../fs/node.js';
import { fileSystemProblem, type FileSystem } from '../fs/types.js';
import type { TableCompression } from '../sstable/format.js';
import { MAX_ENTRY_SIZE } from '../sstable/table-writer.js';
import type { FsyncPolicy, RecoveryMode } from '../wal/options.js';
import type { BackgroundMode } from './background.js';
import { isDBMeter, safeDBMeter, type DBMeter } from './meter.js';
import { KEY_ENCODINGS, VALUE_ENCODINGS, type KeyEncoding, type ValueEncoding } from './encoding.js';

/** Options of `DB.open`. */
export interface DBOptions {
  /** WAL durability policy, as for the WAL: `'always'`, `{ batchMs }` (default 5 ms) or `'os'`. */
  fsync?: FsyncPolicy;
  /** Freeze the memtable and flush it to a table past this many bytes. Default 64 MiB. */
  memtableSize?: number;
  /** `'utf8'` (default: string keys, returned as strings) or `'binary'` (Uint8Array keys, returned as Buffers). */
  keyEncoding?: KeyEncoding;
  /** `'msgpack'` (default), `'json'`, `'utf8'` or `'binary'`. */
  valueEncoding?: ValueEncoding;
  /** Table block compression: `'lz4'` (default) or `'none'`. */
  compression?: TableCompression;
  /** Bytes of table blocks kept in the shared block cache (CLOCK eviction, an approximation of LRU). Default 64 MiB. */
  blockCacheSize?: number;
  /** Largest encoded key, in bytes. Default 64 KiB; larger keys reject with `RangeError`. */
  maxKeySize?: number;
  /** Largest encoded value, in bytes. Default 16 MiB; larger values reject with `RangeError`. */
  maxValueSize?: number;
  /** WAL segment size. Default 16 MiB: segments are deleted whole, once flushes cover them. */
  walSegmentSize?: number;
  /** Target size of a table written by compaction. Default 4 MiB. */
  tableFileSize?: number;
  /**
   * Target total size of level 1; each deeper level is `levelMultiplier` times larger. Default
   * `memtableSize * l0CompactionTrigger`, at least 16 MiB and at most 1 GiB (RocksDB's advice: L1
   * about the size of L0 when it compacts, so that an L0->L1 compaction, which rewrites the L1
   * tables it overlaps, all of them for random keys, does not rewrite many times what it moves).
   */
  levelBaseSize?: number;
  /** Size ratio between adjacent levels. Default 10. */
  levelMultiplier?: number;
  /** L0 table count that starts an L0 compaction. Default 4. */
  l0CompactionTrigger?: number;
  /**
   * L0 table count at which writes slow down: one 1 ms delay per group of writes waiting (LevelDB
   * delays each write group once). Default 20 (RocksDB's), or `l0CompactionTrigger` if higher.
   */
  l0SlowdownTrigger?: number;
  /** L0 table count at which writes wait for compaction. Default 36 (RocksDB's), or `l0SlowdownTrigger + 1` if higher. */
  l0StopTrigger?: number;
  /** Frozen memtables waiting for flush at which writes wait. Default 2. */
  maxFrozenMemtables?: number;
  /** WAL recovery mode: `'strict'` (default) or `'salvage'`. */
  recovery?: RecoveryMode;
  /** Clock for TTLs, in ms since the epoch. Default `Date.now`. */
  clock?: () => number;
  /** The file system; the real one by default. */
  fs?: FileSystem;
  /**
   * Open for reading only: no lock is taken and nothing in the directory is written, created or
   * deleted (it may be on read-only media, or held open by another process). Writes, `flush` and
   * `compact` reject with `ReadOnlyError`. The handle reads the DB as it was when it was opened.
   * Default false.
   */
  readOnly?: boolean;
  /**
   * Receives counters, histograms and events from the DB (flushes, compactions, write stalls,
   * background errors) and its WAL: see `DBMeter`. A no-op by default; `sediment/prometheus`
   * has one for Prometheus.
   */
  meter?: DBMeter;
  /**
   * Where flushes and compactions build their tables. `'worker'` (default): in a background
   * `worker_threads` worker shared by the process's DBs, so that the application's thread only
   * admits writes, serves reads and installs results; it costs a second core while background
   * work runs. `'inline'`: on the application's thread, in slices of a few milliseconds
   * between its other work, for runtimes without workers. Durability is the same either way.
   * If the worker cannot start (a bundle without `background-worker.js`, a resource limit), the
   * DB runs inline instead, emits one process warning (`SEDIMENT_BACKGROUND_INLINE`) and says so
   * in `stats().background` (`mode: 'inline'`, `fallbackReason`).
   */
  background?: BackgroundMode;
  /**
   * WAL bytes a change feed retention slot (`db.changes({ retain })`), or an open feed, may hold
   * back past what flushes let go. Past it the slot is dropped (durably; a `changes-slot-dropped`
   * meter event, `stats().changes.slotsDropped`) and its feed fails with `SlotDroppedError`:
   * a stalled consumer must not fill the disk. Default 1 GiB.
   */
  maxRetainedBytes?: number;
}

export interface ResolvedDBOptions {
  fsync: FsyncPolicy;
  memtableSize: number;
  keyEncoding: KeyEncoding;
  valueEncoding: ValueEncoding;
  compression: TableCompression;
  blockCacheSize: number;
  maxKeySize: number;
  maxValueSize: number;
  walSegmentSize: number;
  tableFileSize: number;
  levelBaseSize: number;
  levelMultiplier: number;
  l0CompactionTrigger: number;
  l0SlowdownTrigger: number;
  l0StopTrigger: number;
  maxFrozenMemtables: number;
  recovery: RecoveryMode;
  clock: () => number;
  fs: FileSystem;
  readOnly: boolean;
  meter: DBMeter;
  background: BackgroundMode;
  maxRetainedBytes: number;
  /** The meter as given (for its optional `track`). */
  userMeter: DBMeter | undefined;
}

/** Every option name `DB.open` knows: any other name is refused (a misspelling must not pass silently). */
const OPTION_NAMES: ReadonlySet<string> = new Set<keyof DBOptions>([
  'fsync',
  'memtableSize',
  'keyEncoding',
  'valueEncoding',
  'compression',
  'blockCacheSize',
  'maxKeySize',
  'maxValueSize',
  'walSegmentSize',
  'tableFileSize',
  'levelBaseSize',
  'levelMultiplier',
  'l0CompactionTrigger',
  'l0SlowdownTrigger',
  'l0StopTrigger',
  'maxFrozenMemtables',
  'recovery',
  'clock',
  'fs',
  'readOnly',
  'meter',
  'background',
  'maxRetainedBytes',
]);

const KiB = 1024;
const MiB = 1024 * KiB;

function int(options: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const v = options[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidConfigError(name, `must be an integer from ${min} to ${max}, got ${String(v)}`);
  }
  return v;
}

function oneOf<T extends string>(options: Record<string, unknown>, name: string, allowed: readonly T[], fallback: T): T {
  const v = options[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new InvalidConfigError(name, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${String(v)}`);
  }
  return v as T;
}

export function resolveDBOptions(options: unknown): ResolvedDBOptions {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new TypeError('DB.open options must be an object');
  const o = options as Record<string, unknown>;
  for (const name of Object.keys(o)) {
    if (!OPTION_NAMES.has(name)) throw new InvalidConfigError(name, `is not an option of DB.open (known: ${[...OPTION_NAMES].join(', ')})`);
  }
  const fsync = o.fsync;
  if (fsync !== undefined && fsync !== 'always' && fsync !== 'os') {
    const ms = (fsync as { batchMs?: unknown } | null)?.batchMs;
    const shapeOk = typeof fsync === 'object' && fsync !== null && !Array.isArray(fsync) && Object.keys(fsync).length === 1;
    if (!shapeOk || typeof ms !== 'number' || !(ms > 0) || ms > 60_000) {
      throw new InvalidConfigError(
        'fsync',
        `must be 'always', 'os' or { batchMs } with 0 < batchMs <= 60000 and no other field, got ${JSON.stringify(fsync)}`,
      );
    }
  }
  if (o.clock !== undefined && typeof o.clock !== 'function')
    throw new InvalidConfigError('clock', 'must be a function returning ms since the epoch');
  const fsProblem = o.fs === undefined ? undefined : fileSystemProblem(o.fs);
  if (fsProblem) throw new InvalidConfigError('fs', fsProblem);
  if (o.meter !== undefined && !isDBMeter(o.meter))
    throw new InvalidConfigError('meter', 'must be an object with counter, histogram and event methods');
  if (o.readOnly !== undefined && typeof o.readOnly !== 'boolean')
    throw new InvalidConfigError('readOnly', `must be a boolean, got ${String(o.readOnly)}`);
  const l0CompactionTrigger = int(o, 'l0CompactionTrigger', 4, 2, 1000);
  // L0 absorbs bursts while a long L0->L1 compaction runs; the next one takes all of L0 at once,
  // which costs less per byte (bench/compaction.ts: LevelDB's 8 / 12 had writes slowed 39% of a
  // 4 MiB-memtable run).
  const l0SlowdownTrigger = int(o, 'l0SlowdownTrigger', Math.max(20, l0CompactionTrigger), l0CompactionTrigger, 1000);
  const l0StopTrigger = int(o, 'l0StopTrigger', Math.max(36, l0SlowdownTrigger + 1), l0SlowdownTrigger + 1, 1000);
  const memtableSize = int(o, 'memtableSize', 64 * MiB, 1 * KiB, 4096 * MiB);
  const levelBase = Math.min(1024 * MiB, Math.max(16 * MiB, memtableSize * l0CompactionTrigger));
  return {
    fsync: (fsync as FsyncPolicy | undefined) ?? { batchMs: 5 },
    memtableSize,
    keyEncoding: oneOf(o, 'keyEncoding', KEY_ENCODINGS, 'utf8'),
    valueEncoding: oneOf(o, 'valueEncoding', VALUE_ENCODINGS, 'msgpack'),
    compression: oneOf(o, 'compression', ['lz4', 'none'] as const, 'lz4'),
    blockCacheSize: int(o, 'blockCacheSize', 64 * MiB, 0, 64 * 1024 * MiB),
    maxKeySize: int(o, 'maxKeySize', 64 * KiB, 1, 16 * MiB),
    maxValueSize: int(o, 'maxValueSize', 16 * MiB, 0, MAX_ENTRY_SIZE - 16 * MiB),
    walSegmentSize: int(o, 'walSegmentSize', 16 * MiB, 4 * KiB, 1024 * MiB),
    tableFileSize: int(o, 'tableFileSize', 4 * MiB, 4 * KiB, 1024 * MiB),
    levelBaseSize: int(o, 'levelBaseSize', levelBase, 4 * KiB, 1024 * 1024 * MiB),
    levelMultiplier: int(o, 'levelMultiplier', 10, 2, 100),
    l0CompactionTrigger,
    l0SlowdownTrigger,
    l0StopTrigger,
    maxFrozenMemtables: int(o, 'maxFrozenMemtables', 2, 1, 64),
    recovery: oneOf(o, 'recovery', ['strict', 'salvage'] as const, 'strict'),
    clock: (o.clock as (() => number) | undefined) ?? Date.now,
    fs: (o.fs as FileSystem | undefined) ?? nodeFileSystem,
    readOnly: o.readOnly === true,
    meter: safeDBMeter(o.meter as DBMeter | undefined),
    background: oneOf(o, 'background', ['worker', 'inline'] as const, 'worker'),
    maxRetainedBytes: int(o, 'maxRetainedBytes', 1024 * MiB, 0, Number.MAX_SAFE_INTEGER),
    userMeter: o.meter as DBMeter | undefined,
  };
}
