/**
 * {@link WalOptions}: what `Wal.open` takes, each option's default, and validation into
 * {@link ResolvedWalOptions}. An invalid option rejects the open with `InvalidConfigError`
 * before anything touches the disk.
 *
 * @module
 */
import { InvalidConfigError } from '../errors.js';
import { nodeFileSystem } from '../fs/node.js';
import { fileSystemProblem, type FileSystem } from '../fs/types.js';
import { FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE } from './format.js';
import { noopMeter, safeMeter, type Meter } from './meter.js';
import { assertPosition, type Position } from './position.js';

/**
 * When appended bytes reach stable storage.
 * - `'always'`: each append resolves only after an fdatasync that covers it. Concurrent appends
 *   share one write and one fdatasync (group commit).
 * - `{ batchMs }`: appends resolve once their bytes are in the OS; a timer fdatasyncs within
 *   `batchMs` of any append, even if no further append comes.
 * - `'os'`: no append waits for an fdatasync and none is needed for a guarantee until `sync()` or
 *   `close()`. Two fdatasyncs still happen: a full segment is sealed before its successor is
 *   created (appends wait for that, as the order of segments must survive a power loss), and, so
 *   that the seal finds little left to write, a background fdatasync after every `bytesPerSync`
 *   bytes (default 8 MiB; no append waits for it).
 */
export type FsyncPolicy = 'always' | 'os' | { batchMs: number };

/** What recovery does with damage it cannot explain as a crash. */
export type RecoveryMode = 'strict' | 'salvage';

/** Options of `Wal.open`. */
export interface WalOptions {
  /** The log's directory; created (with parents) if missing, unless `createIfMissing` is false or `readOnly` is set. */
  dir: string;
  /** Rotate to a new segment once the current one would pass this many bytes. Default 128 MiB. */
  maxSegmentSize?: number;
  /** Durability policy; default `{ batchMs: 5 }`. */
  fsync?: FsyncPolicy;
  /**
   * Largest record payload (key, value and a few bytes of fields), default 16 MiB. Larger appends
   * are refused with `RangeError`; a larger length found on disk is corruption.
   */
  maxRecordSize?: number;
  /**
   * `'strict'` (default): a torn or zero-filled tail of the last segment is truncated and
   * reported; any other damage rejects the open with `CorruptionError` and changes nothing.
   * `'salvage'`: keeps the longest valid prefix and moves everything after the first damage into
   * `quarantine/` inside `dir`.
   */
  recovery?: RecoveryMode;
  /** Receives counters, histograms and events; a no-op by default. */
  meter?: Meter;
  /**
   * Keep this many bytes of zeros written and synced ahead of the writer, in the background, so
   * that an fdatasync after an append overwrites allocated blocks instead of growing the file
   * (no file-size metadata to journal). `true` means 8 MiB; default: on for `'always'` and
   * `{ batchMs }`, off for `'os'`. Recovery treats the zeros as the end of the log.
   */
  preallocate?: boolean | number;
  /**
   * Under `'os'`: start an fdatasync in the background, which no append waits for, whenever this
   * many bytes were written since the last one, as RocksDB's `wal_bytes_per_sync` does. It keeps
   * the OS's write-back steady, so that the fdatasync that seals a full segment (which appends
   * do wait for) has little left to write: without it, sealing a 128 MiB segment stalls appends
   * for the whole segment's write-back (over 100 ms here). Default 8 MiB; `0` turns it off. It
   * promises nothing: only `sync()`, `close()` and the other policies do. Ignored by `'always'`
   * and `{ batchMs }`, which sync more often anyway.
   */
  bytesPerSync?: number;
  /** The file system; the real one by default. Tests pass an in-memory or fault-injecting one. */
  fs?: FileSystem;
  /**
   * For a caller that has stored the effect of every record up to and including this position
   * elsewhere (the DB, once a flush is durable). Recovery deletes the segments wholly before it,
   * resumes at it past damage before it (those records are not needed), and if the log ends at or
   * before it, appends start in a new segment, so every new record lands after it.
   */
  discardBefore?: Position;
  /**
   * Default `true`: a missing directory, or one holding no log, starts a new empty log. `false`:
   * `Wal.open` rejects with `CorruptionError` when the directory is missing, or holds neither
   * the state file nor any segment, instead of starting an empty log (for a caller whose own
   * metadata says the log exists). Nothing is created then.
   */
  createIfMissing?: boolean;
  /**
   * Adopt a log that has segments but no state file (`SEGMENTS`), as sediment 0.1.0 made them:
   * the segments present are taken as the whole log, without reporting corruption, and tracked
   * from then on. Pass it once, for a log known to come from 0.1.0: a missing segment of such a
   * log cannot be detected. Default `false` (strict rejects such a log; salvage rebuilds the
   * file and reports corruption).
   */
  adoptUntracked?: boolean;
  /**
   * Open without taking the directory's lock and without writing anything: no lock file, no
   * directory or segment creation, no truncation, no quarantine, no fdatasync. Recovery scans as
   * usual; a crash-shaped torn tail of the last segment is taken as the end of the log (and
   * reported in `RecoveryInfo` as the truncation a writable open would make, the file untouched);
   * any other damage, or a missing segment, rejects with `CorruptionError` (strict only:
   * `recovery: 'salvage'` with `readOnly` is refused). `readFrom`, `currentPosition` and `stats`
   * work, on the log as it was at open; `append`, `appendBatch`, `flush`, `sync` and
   * `deleteSegmentsBefore` reject with `ReadOnlyError`. Another handle may hold the directory
   * for writing meanwhile: a scan that the writer's rotation, GC or appends overtake is retried
   * (or its view ends where the scan found the log ending), and a log that keeps changing for
   * about two seconds of retries rejects with `IoError` `EAGAIN`, never a `CorruptionError`. A
   * missing directory is an empty log (`CorruptionError` with `createIfMissing: false`).
   * Default `false`.
   */
  readOnly?: boolean;
}

/** Options after defaults and validation. */
export interface ResolvedWalOptions {
  dir: string;
  maxSegmentSize: number;
  fsync: 'always' | 'os' | 'batch';
  batchMs: number;
  maxRecordSize: number;
  recovery: RecoveryMode;
  meter: Meter;
  preallocate: number;
  /** 0 when off, and always 0 unless the policy is 'os'. */
  bytesPerSync: number;
  fs: FileSystem;
  discardBefore: Position | undefined;
  createIfMissing: boolean;
  adoptUntracked: boolean;
  readOnly: boolean;
}

const MiB = 2 ** 20;
/** Largest record we accept at all: a Node Buffer holds at most this comfortably. */
export const MAX_RECORD_SIZE_LIMIT = 1024 * MiB;
const MIN_SEGMENT_SIZE = SEGMENT_HEADER_SIZE + FRAME_HEADER_SIZE + 8;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function integerOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidConfigError(name, `must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/** Applies defaults and checks every option; throws `InvalidConfigError` on the first bad one. */
/** Every option name `Wal.open` knows. */
const WAL_OPTION_NAMES: ReadonlySet<string> = new Set<keyof WalOptions>([
  'dir',
  'maxSegmentSize',
  'fsync',
  'maxRecordSize',
  'recovery',
  'meter',
  'preallocate',
  'bytesPerSync',
  'fs',
  'discardBefore',
  'createIfMissing',
  'adoptUntracked',
  'readOnly',
]);

export function resolveWalOptions(options: unknown): ResolvedWalOptions {
  if (!isPlainObject(options)) throw new TypeError('Wal.open takes an options object with at least { dir }');
  // A misspelt option must not pass silently.
  for (const name of Object.keys(options)) {
    if (!WAL_OPTION_NAMES.has(name))
      throw new InvalidConfigError(name, `is not an option of Wal.open (known: ${[...WAL_OPTION_NAMES].join(', ')})`);
  }
  const { dir, fsync, recovery, meter, fs, preallocate } = options;
  if (typeof dir !== 'string' || dir.length === 0) throw new InvalidConfigError('dir', 'must be a non-empty path');
  if (fs !== undefined) {
    const problem = fileSystemProblem(fs);
    if (problem) throw new InvalidConfigError('fs', problem);
  }

  const maxSegmentSize = integerOption('maxSegmentSize', options.maxSegmentSize, 128 * MiB, MIN_SEGMENT_SIZE, 2 ** 40);
  const maxRecordSize = integerOption('maxRecordSize', options.maxRecordSize, 16 * MiB, 1, MAX_RECORD_SIZE_LIMIT);

  let policy: ResolvedWalOptions['fsync'] = 'batch';
  let batchMs = 5;
  if (fsync === 'always' || fsync === 'os') policy = fsync;
  else if (isPlainObject(fsync) && Object.keys(fsync).length === 1 && 'batchMs' in fsync) {
    const ms = fsync.batchMs;
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0 || ms > 60_000) {
      throw new InvalidConfigError('fsync.batchMs', `must be a number of milliseconds in (0, 60000], got ${String(ms)}`);
    }
    batchMs = ms;
  } else if (fsync !== undefined) {
    throw new InvalidConfigError('fsync', `must be 'always', 'os' or { batchMs }, got ${JSON.stringify(fsync)}`);
  }

  if (recovery !== undefined && recovery !== 'strict' && recovery !== 'salvage') {
    throw new InvalidConfigError('recovery', `must be 'strict' or 'salvage', got ${String(recovery)}`);
  }
  if (meter !== undefined && !isMeter(meter)) {
    throw new InvalidConfigError('meter', 'must have counter, histogram and event methods');
  }

  let preallocateBytes = policy === 'os' ? 0 : 8 * MiB;
  if (preallocate === true) preallocateBytes = 8 * MiB;
  else if (preallocate === false) preallocateBytes = 0;
  else if (preallocate !== undefined) preallocateBytes = integerOption('preallocate', preallocate, 0, 0, 1024 * MiB);
  const bytesPerSync = integerOption('bytesPerSync', options.bytesPerSync, 8 * MiB, 0, 2 ** 40);
  const createIfMissing = booleanOption('createIfMissing', options.createIfMissing, true);
  const adoptUntracked = booleanOption('adoptUntracked', options.adoptUntracked, false);
  const readOnly = booleanOption('readOnly', options.readOnly, false);
  if (readOnly && recovery === 'salvage') {
    throw new InvalidConfigError('readOnly', "a read-only open cannot salvage (salvage moves and truncates files): use recovery: 'strict'");
  }

  return {
    dir,
    maxSegmentSize,
    fsync: policy,
    batchMs,
    maxRecordSize,
    recovery: recovery ?? 'strict',
    meter: safeMeter((meter as Meter | undefined) ?? noopMeter),
    preallocate: preallocateBytes,
    bytesPerSync: policy === 'os' ? bytesPerSync : 0,
    fs: (fs as FileSystem | undefined) ?? nodeFileSystem,
    discardBefore: resolveDiscardBefore(options.discardBefore),
    createIfMissing,
    adoptUntracked,
    readOnly,
  };
}

function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidConfigError(name, `must be a boolean, got ${String(value)}`);
  return value;
}

function resolveDiscardBefore(v: unknown): Position | undefined {
  if (v === undefined || v === null) return undefined;
  try {
    assertPosition(v, 'discardBefore');
  } catch (err) {
    throw new InvalidConfigError('discardBefore', (err as Error).message);
  }
  return { segmentId: v.segmentId, offset: v.offset };
}

function isMeter(v: unknown): v is Meter {
  if (!isPlainObjectLike(v)) return false;
  const m = v as Partial<Meter>;
  return typeof m.counter === 'function' && typeof m.histogram === 'function' && typeof m.event === 'function';
}

function isPlainObjectLike(v: unknown): boolean {
  return typeof v === 'object' && v !== null;
}
