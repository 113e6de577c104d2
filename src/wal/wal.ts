/**
 * The write-ahead log: appends, group commit, fsync policies, rotation, segment GC, close.
 *
 * The write path. `append` and `appendBatch` queue their records and schedule one flush per
 * microtask turn. The flush encodes every queued record into one buffer and hands it to the
 * OS with a single synchronous write (microseconds: the page cache), so concurrent appends
 * coalesce into one write(2), and one awaited append still costs one write and no thread-pool
 * round trip. A lone writer, one that awaits each append before the next, skips the queue: its
 * record is written inside `append` (see `#mayWriteAlone`). Then, by policy:
 * - `'os'` and `{ batchMs }`: the appends resolve; `batchMs` arms a timer that fdatasyncs the
 *   segment within `batchMs`.
 * - `'always'`: the appends wait for an fdatasync that starts after their write. One sync runs
 *   at a time per segment; appends written while it runs share the next one (group commit).
 *
 * The segment being appended to (its writes, fdatasyncs, preallocation and sealing) is an
 * {@link ActiveSegment} (active-segment.ts); this file holds the queue and group commit, the
 * policies, rotation, segment deletion, open and close, and the public API.
 *
 * Invariants:
 * - Bytes reach a segment only at its end, in append order; a record's promise resolves only
 *   after its bytes (and, under `'always'`, an fdatasync) completed.
 * - A segment is sealed (cut to its logical end and fdatasynced) *before* its successor is
 *   created, so every segment but the last ends cleanly on disk; only the last may have a torn
 *   tail.
 * - After a failed write or fdatasync the log is failed for good: nothing is retried, pending
 *   and later calls reject with the first error (the fsyncgate rule), and recovery on reopen
 *   decides from what is on disk.
 * - Preallocation (the active segment's) never overwrites a record.
 * - The segment state file (segment-state.ts) never says a segment exists before it does, nor
 *   that one is gone before it is unlinked: a new segment (always id `next`) is created durably,
 *   then recorded, and only then appended to; a raised floor is durable before anything below it
 *   is unlinked. So recovery can treat any recorded segment that is missing as a loss. A failed
 *   state write fails the log.
 * - A read-only log (`readOnly`) has no lock, no state file handle and no segment handle: every
 *   write is refused before it reaches the file system.
 *
 * @module
 */
import * as path from 'node:path';
import { ClosedError, CorruptionError, IoError, ReadOnlyError, SedimentError, errnoOf, ioStep } from '../errors.js';
import { claimDirectory } from '../fs/durable-dir.js';
import type { DirectoryLock, FileSystem } from '../fs/types.js';
import { ActiveSegment, checkNewId, createSegment, readOnlySegment, type SegmentFile, type SegmentHost } from './active-segment.js';
import { FRAME_HEADER_SIZE, FrameType, MAX_BATCH_BYTES, SEGMENT_HEADER_SIZE, segmentFileName } from './format.js';
import { encodeFrame } from './frame.js';
import type { Meter } from './meter.js';
import { resolveWalOptions, type ResolvedWalOptions, type WalOptions } from './options.js';
import { assertPosition, comparePositions, type Position } from './position.js';
import { readLog, type LogEntry, type ReaderSource } from './reader.js';
import { loadZstd, Record } from './record.js';
import { emptyRecoveryInfo, recover, type RecoveryInfo, type RecoveryResult } from './recovery.js';
import { STATE_TMP_FILE_NAME, StateFile, sameState, stateOf, withFloor } from './segment-state.js';

/** What `Wal.open` resolves to. */
export interface WalOpenResult {
  wal: Wal;
  /** What recovery found and did. */
  recovery: RecoveryInfo;
}

/**
 * A hold on the log's segments, from {@link Wal.retain}: while it is held, no segment is deleted,
 * so a copy of the log's tail (a DB checkpoint or backup) can read the segments it listed.
 */
export interface WalRetention {
  /** The write position when the hold was taken: where the next record went. */
  readonly position: Position;
  /** The ids of the log's segments at that moment, ascending; the last is `position`'s. */
  readonly segmentIds: readonly number[];
  /** Ends the hold (idempotent); a deletion deferred meanwhile then runs. */
  release(): void;
}

/** A snapshot of the log's counters and state, from `wal.stats()`. */
export interface WalStats {
  /** Records appended since open (each record of a batch counts). */
  records: number;
  /** `appendBatch` calls written since open. */
  batches: number;
  /** Bytes appended since open, frame headers included. */
  bytes: number;
  /** write(2) calls made for appends: fewer than records when appends coalesce. */
  writes: number;
  /** fdatasync calls on segments since open. */
  fsyncs: number;
  /** Segment rotations since open. */
  rotations: number;
  /** Segment files deleted by `deleteSegmentsBefore` since open. */
  segmentsDeleted: number;
  /** Segment files in the log. */
  segments: number;
  oldestSegmentId: number;
  activeSegmentId: number;
  /** End of the bytes handed to the OS: where the next record goes. */
  writtenPosition: Position;
  /** End of the bytes known to be on stable storage. */
  durablePosition: Position;
  /** Appends queued but not yet written. */
  pendingAppends: number;
  /** Bytes of zeros preallocated ahead of the writer in the active segment. */
  preallocatedBytes: number;
  /** Set once a write or sync failed; the log then refuses writes. */
  failure: Error | undefined;
  /** The fsync policy in force. */
  fsync: 'always' | 'os' | { batchMs: number };
}

/**
 * @internal What {@link Wal.appendWith} tells about its record, instead of resolving with a
 * position: the DB applies each write to its memtable as its record is written, through one
 * object per write (no position, closure or promise reaction of its own).
 */
export interface AppendSink {
  /**
   * The record's bytes are written (and, under `'always'`, synced) at `offset` of segment
   * `segmentId`: called in append order, right before the append resolves. If it throws, the
   * append rejects with what it threw.
   */
  written(segmentId: number, offset: number): void;
  /** The append rejects with `err`, refused or failed (the sink was not told `written`). */
  failed(err: Error): void;
}

/**
 * Queued work for the flush: one record (`append`, `appendWith`), records written as one atomic
 * unit (`appendBatch`), or none (a `flush()` barrier).
 */
interface Pending {
  records: Record | readonly Record[];
  /** Encoded size of the frames. */
  bytes: number;
  /**
   * What the flush that wrote it settles it with: a Position for one record, else an array
   * (with a sink: `segmentId` and `offset` instead).
   */
  result: Position | Position[] | undefined;
  /** `appendWith`'s sink, told where the record went before the promise resolves. */
  sink: AppendSink | undefined;
  segmentId: number;
  offset: number;
  /**
   * The caller's own promise resolve (no wrapper closure per append): it takes `result`. Typed
   * `never` so that either kind of resolve fits; {@link settleAll} is the one place that calls it.
   */
  resolve: (result: never) => void;
  reject(err: Error): void;
}

const INITIAL_BUFFER = 1 << 20;
/**
 * Microtask flushes allowed per event-loop turn before yielding to timers and I/O. Counted, not
 * timed: the interleaving of appends with timers and background work stays the same from run to
 * run, which the crash-point tests (a workload replayed up to its k-th file operation) rely on.
 */
const FLUSHES_PER_TURN = 64;
/**
 * Records resolved per event-loop turn before yielding: each resolved append runs its caller's
 * continuation (a DB applies it to its memtable), so the turn's work grows with the records, not
 * the flushes. 128 keeps a DB's turn under a millisecond: with 1024, 64 writers of random puts
 * saw event-loop lag p50 5-8 ms and p99 14-30 ms, and no more throughput; 256 against 128, in two
 * alternating runs on a loaded machine, p50 7.0 / 6.8 against 2.3 / 2.0 ms, p99 198 / 140
 * against 122 / 118 ms, and the same puts/s.
 */
const RECORDS_PER_TURN = 128;
/**
 * Frame bytes written per event-loop turn before yielding. A record can hold much work: a DB
 * writes a whole batch as one record, so 64 flushes of batches of 1000 puts (about 8 MB, and
 * half a second of memtable inserts) would otherwise fit one turn and block the event loop for
 * that long. 64 KiB: small records meet the record budget first; a batch of 1000 puts of 100 B
 * (about 125 KB) gets a turn of its own (fillbatch's event-loop delay p50 went from 26 to 8 ms
 * against 256 KiB).
 */
const BYTES_PER_TURN = 64 << 10;
/** A resolved promise: `then` on it queues a microtask without queueMicrotask's async-hooks wrapper. */
const RESOLVED = Promise.resolve();

/**
 * A segmented, checksummed, append-only log. Open with {@link Wal.open}.
 *
 * Durability contract (see README): `append` resolves once the record's bytes are in the OS,
 * so a process crash after that loses nothing; stable storage then depends on `fsync`.
 * `sync()` resolves when every append that resolved before it is on stable storage.
 */
export class Wal {
  readonly #opts: ResolvedWalOptions;
  readonly #fs: FileSystem;
  readonly #meter: Meter;
  readonly #lock: DirectoryLock;
  /** The segment state file (undefined when read-only). */
  readonly #state: StateFile | undefined;
  #segmentIds: number[];
  #active: ActiveSegment;
  #status: 'open' | 'closing' | 'closed' = 'open';
  #failure: Error | undefined;
  #queue: Pending[] = [];
  #flushScheduled = false;
  #rotating: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #buf = Buffer.allocUnsafe(INITIAL_BUFFER);
  #closing: Promise<void> | undefined;
  #gc: Promise<unknown> = Promise.resolve();
  /** Retentions held (see {@link retain}), and the furthest deletion asked for while one was. */
  #retentions = 0;
  #deferredGc: Position | undefined;
  #stats = { records: 0, batches: 0, bytes: 0, writes: 0, fsyncs: 0, rotations: 0, segmentsDeleted: 0 };
  readonly #flushNow = (): void => this.#flush();
  #flushesThisTurn = 0;
  #recordsThisTurn = 0;
  #bytesThisTurn = 0;
  /**
   * Records in the log's last write: 1 when a lone writer awaits each append. 0 until the first
   * write, so that a burst of appends on a fresh log shares one write.
   */
  #lastWriteRecords = 0;
  /** A record was written alone since the last microtask checkpoint (see #mayWriteAlone). */
  #wroteAlone = false;
  readonly #clearWroteAlone = (): void => {
    this.#wroteAlone = false;
  };
  readonly #endTurn = (): void => {
    this.#flushesThisTurn = 0;
    this.#recordsThisTurn = 0;
    this.#bytesThisTurn = 0;
  };
  readonly #readerSource: ReaderSource;
  /** What the active segment sees of the log. */
  readonly #host: SegmentHost;

  private constructor(
    opts: ResolvedWalOptions,
    lock: DirectoryLock,
    state: StateFile | undefined,
    segmentIds: number[],
    active: SegmentFile,
  ) {
    this.#opts = opts;
    this.#fs = opts.fs;
    this.#meter = opts.meter;
    this.#lock = lock;
    this.#state = state;
    this.#segmentIds = segmentIds;
    this.#host = {
      fs: opts.fs,
      dir: opts.dir,
      meter: opts.meter,
      failure: () => this.#failure,
      isOpen: () => this.#status === 'open',
      fail: (err) => this.#fail(err, NOTHING),
      countFsync: () => {
        this.#stats.fsyncs++;
      },
    };
    this.#active = new ActiveSegment(this.#host, active);
    this.#readerSource = {
      fs: opts.fs,
      dir: opts.dir,
      maxRecordSize: opts.maxRecordSize,
      segmentIds: () => this.#segmentIds,
      writeHead: () => this.currentPosition(),
      assertReadable: () => {
        if (this.#status === 'closed') throw new ClosedError('the WAL');
      },
    };
    this.#maybePreallocate();
  }

  /**
   * Opens (creating if needed) the log in `options.dir`: takes the directory's lock, recovers
   * (see {@link RecoveryInfo}), and gets ready to append after the last valid record.
   *
   * Rejects with `LockedError` if another handle holds the directory, `CorruptionError` in
   * strict mode when the log is damaged beyond a crash's doing or a segment is missing (nothing
   * on disk is changed then), `InvalidConfigError` for a bad option, `IoError` when the OS fails.
   *
   * The segment state file is kept in step so that a crash at any point is never mistaken for a
   * lost segment: (1) a state holding exactly the kept segments (and the floor above anything
   * to delete) is made durable, creating the file for a new log; (2) segments below the floor
   * are deleted; (3) a new segment, if one is needed, is created with id `next`, and only then
   * (4) recorded.
   */
  static async open(options: WalOptions): Promise<WalOpenResult> {
    const opts = resolveWalOptions(options);
    // Every record the log holds must be decodable, zstd ones included.
    await loadZstd();
    if (opts.readOnly) return Wal.#openReadOnly(opts);
    const { fs, dir } = opts;
    // Salvage starts a missing log anew, reported as corruption (see recover).
    if (!opts.createIfMissing && opts.recovery === 'strict' && !(await dirExists(fs, dir))) {
      throw new CorruptionError('the WAL directory is missing (createIfMissing is false)', { file: dir, offset: 0 });
    }
    const lock = await claimDirectory(fs, dir);
    let state: StateFile | undefined;
    let reuse: SegmentFile | undefined;
    let active: SegmentFile | undefined;
    try {
      const rec = await recover(fs, dir, recoverOptions(opts));
      const ids = rec.segments.map((s) => s.id);
      const last = rec.segments[rec.segments.length - 1];
      if (last) {
        // What a crashed process left may be only in the page cache: make the recovered tail
        // durable before anything is appended after it or a successor is created.
        const file = path.join(dir, segmentFileName(last.id));
        const handle = await ioStep('open', file, () => fs.open(file, 'readwrite'));
        try {
          await ioStep('datasync', file, () => handle.datasync());
        } catch (err) {
          await handle.close().catch(() => undefined);
          throw err;
        }
        // A log that ends at or before `discardBefore` continues in a new segment, so that every
        // new record lands after that position.
        const before =
          opts.discardBefore !== undefined && comparePositions({ segmentId: last.id, offset: last.end }, opts.discardBefore) <= 0;
        if (last.end < opts.maxSegmentSize && !before) reuse = { id: last.id, file, handle, end: last.end };
        else await handle.close().catch(() => undefined);
      }
      // A new segment gets an id past every id the log ever had (lost and quarantined ones too).
      const newId = reuse
        ? undefined
        : Math.max(rec.next, last ? last.id + 1 : 0, opts.discardBefore ? opts.discardBefore.segmentId + 1 : 0);
      // Checked before the state file is written: a state it cannot hold must not be written.
      if (newId !== undefined) checkNewId(dir, newId);
      state = await writeOpenState(fs, dir, rec, stateOf(ids, newId ?? Math.max(rec.next, last!.id + 1)));
      // Only now that the floor is durable: segments below it (leftovers of an interrupted
      // deletion, or wholly before discardBefore) go.
      for (const id of rec.obsolete) {
        const file = path.join(dir, segmentFileName(id));
        await ioStep('unlink', file, () => fs.unlink(file));
        await ioStep('syncDir', dir, () => fs.syncDir(dir));
      }
      if (rec.tmpLeftover) await unlinkIfThere(fs, path.join(dir, STATE_TMP_FILE_NAME));
      // The segments' directory entries may not be durable either (a crash before a syncDir).
      await ioStep('syncDir', dir, () => fs.syncDir(dir));
      if (reuse) {
        active = reuse;
      } else {
        active = await createSegment(fs, dir, newId!);
        ids.push(newId!);
        // Recorded once it exists durably, and before anything is appended to it.
        await state.update((s) => ({ ...s, next: newId! + 1 }), false);
      }
      return { wal: new Wal(opts, lock, state, ids, active), recovery: rec.info };
    } catch (err) {
      await (active ?? reuse)?.handle.close().catch(() => undefined);
      await state?.close().catch(() => undefined);
      await lock.release().catch(() => undefined);
      throw err;
    }
  }

  /** `Wal.open` with `readOnly`: no lock, no write of any kind (see WalOptions.readOnly). */
  static async #openReadOnly(opts: ResolvedWalOptions): Promise<WalOpenResult> {
    const { fs, dir } = opts;
    if (!(await dirExists(fs, dir))) {
      if (!opts.createIfMissing)
        throw new CorruptionError('the WAL directory is missing (createIfMissing is false)', { file: dir, offset: 0 });
      const id = opts.discardBefore ? opts.discardBefore.segmentId + 1 : 0;
      const active = readOnlySegment(dir, id, SEGMENT_HEADER_SIZE);
      return { wal: new Wal(opts, NO_LOCK, undefined, [], active), recovery: emptyRecoveryInfo('strict') };
    }
    const rec = await recover(fs, dir, recoverOptions(opts));
    const ids = rec.segments.map((s) => s.id);
    const last = rec.segments[rec.segments.length - 1];
    const id = last ? last.id : Math.max(rec.next, opts.discardBefore ? opts.discardBefore.segmentId + 1 : 0);
    const active = readOnlySegment(dir, id, last ? last.end : SEGMENT_HEADER_SIZE);
    return { wal: new Wal(opts, NO_LOCK, undefined, ids, active), recovery: rec.info };
  }

  /**
   * Appends one record. Resolves with its position once its bytes are in the OS (and, under
   * `fsync: 'always'`, on stable storage). Rejects with `TypeError` for a non-Record,
   * `RangeError` for a record over `maxRecordSize`, `ClosedError` after close, or the log's
   * failure once a write or sync failed.
   */
  append(record: Record): Promise<Position> {
    if (!(record instanceof Record)) return Promise.reject(new TypeError('append takes a Record (Record.put or Record.delete)'));
    const refused = this.#refuseWrite('append') ?? this.#refuseSize(record);
    if (refused) return Promise.reject(refused);
    const bytes = FRAME_HEADER_SIZE + record.payloadSize;
    if (this.#mayWriteAlone(bytes)) return this.#writeAlone(record, bytes);
    return new Promise<Position>((resolve, reject) => {
      this.#enqueue({ records: record, bytes, result: undefined, sink: undefined, segmentId: 0, offset: 0, resolve, reject });
    });
  }

  /**
   * @internal {@link append}, for a caller that wants to act on each record as it is written,
   * in log order (the DB applies it to its memtable): `sink.written` is called with the record's
   * position right before the promise resolves (with nothing), `sink.failed` before it rejects,
   * refusals (as {@link append}'s) included: the sink is told exactly once either way.
   */
  appendWith(record: Record, sink: AppendSink): Promise<void> {
    const refused =
      record instanceof Record
        ? (this.#refuseWrite('append') ?? this.#refuseSize(record))
        : new TypeError('append takes a Record (Record.put or Record.delete)');
    if (refused) {
      sink.failed(refused);
      return Promise.reject(refused);
    }
    const bytes = FRAME_HEADER_SIZE + record.payloadSize;
    if (this.#mayWriteAlone(bytes)) {
      const item: Pending = { records: record, bytes, result: undefined, sink, segmentId: 0, offset: 0, resolve: noop, reject: noop };
      return this.#writeAloneTo(item);
    }
    return new Promise<void>((resolve, reject) => {
      this.#enqueue({ records: record, bytes, result: undefined, sink, segmentId: 0, offset: 0, resolve, reject });
    });
  }

  /**
   * Appends records atomically: after any crash, recovery finds all of them or none. They are
   * written contiguously in one segment. Resolves with their positions, in order. An empty
   * array resolves to `[]` without writing. Rejects like {@link append}; a batch over 1 GiB
   * encoded is a `RangeError`.
   */
  appendBatch(records: readonly Record[]): Promise<Position[]> {
    if (!Array.isArray(records)) return Promise.reject(new TypeError('appendBatch takes an array of Records'));
    let bytes = 0;
    for (const r of records) {
      if (!(r instanceof Record)) return Promise.reject(new TypeError('appendBatch takes an array of Records'));
      const refused = this.#refuseSize(r);
      if (refused) return Promise.reject(refused);
      bytes += FRAME_HEADER_SIZE + r.payloadSize;
    }
    if (bytes > MAX_BATCH_BYTES) return Promise.reject(new RangeError(`batch of ${bytes} bytes is over the ${MAX_BATCH_BYTES}-byte limit`));
    const refused = this.#refuseWrite('appendBatch');
    if (refused) return Promise.reject(refused);
    if (records.length === 0) return Promise.resolve([]);
    return new Promise<Position[]>((resolve, reject) => {
      this.#enqueue({ records: records.slice(), bytes, result: undefined, sink: undefined, segmentId: 0, offset: 0, resolve, reject });
    });
  }

  /** Resolves once every append queued before it has been handed to the OS. */
  flush(): Promise<void> {
    const refused = this.#refuseWrite('flush');
    if (refused) return Promise.reject(refused);
    return new Promise<void>((resolve, reject) => this.#enqueue(barrier(resolve, reject)));
  }

  /**
   * The durability barrier: resolves when every append that resolved before this call is on
   * stable storage. Rejects if the fdatasync fails (and the log is failed from then on).
   */
  sync(): Promise<void> {
    const refused = this.#refuseWrite('sync');
    if (refused) return Promise.reject(refused);
    return this.#active.syncTo(this.#active.end);
  }

  /**
   * Replays the log from `from` (a position returned by an append, or any `{ segmentId, offset }`;
   * `{ segmentId: 0, offset: 0 }` reads everything). Yields records in append order, expired
   * ones included, until it catches up with the writer; appends made meanwhile are included up
   * to that point. A position before the oldest kept segment starts at the oldest record; an
   * offset that is not a record boundary starts at the next record. Throws `CorruptionError` if
   * it meets damaged bytes.
   */
  readFrom(from: Position): AsyncGenerator<LogEntry, void, undefined> {
    // An async generator: a bad position or a closed log surfaces on the first next().
    return readLog(this.#readerSource, from);
  }

  /** Where the next record goes: the end of the bytes handed to the OS. */
  currentPosition(): Position {
    return { segmentId: this.#active.id, offset: this.#active.end };
  }

  /**
   * Deletes the segment files whose records all come before `position`'s segment, oldest first
   * (fsyncing the directory after each, so a crash leaves no hole), never the active segment.
   * Resolves with the number of files deleted.
   */
  deleteSegmentsBefore(position: Position): Promise<number> {
    try {
      assertPosition(position, 'deleteSegmentsBefore position');
    } catch (err) {
      return Promise.reject(err);
    }
    const refused = this.#refuseWrite('deleteSegmentsBefore');
    if (refused) return Promise.reject(refused);
    const before = { segmentId: position.segmentId, offset: position.offset };
    if (this.#retentions > 0) {
      if (this.#deferredGc === undefined || comparePositions(before, this.#deferredGc) > 0) this.#deferredGc = before;
      return Promise.resolve(0);
    }
    const run = this.#gc.then(() => this.#deleteSegments(before));
    this.#gc = run.catch(() => undefined);
    return run;
  }

  /**
   * Holds segment deletion, and says which segments there are and where the log ends, all at
   * one instant (synchronously). Until the hold is released, `deleteSegmentsBefore` deletes
   * nothing (it resolves 0); the furthest deletion asked for meanwhile runs when the last hold is
   * released, if the log is still open and healthy (otherwise its segments stay until a later
   * deletion or, in a DB, the next open). The bytes of every listed segment before `position`
   * never change while the hold lasts: segments before the last are sealed, and the last only
   * grows past `position`.
   */
  retain(): WalRetention {
    this.#retentions++;
    const position = this.currentPosition();
    const segmentIds = this.#segmentIds.filter((id) => id <= position.segmentId);
    let held = true;
    return {
      position,
      segmentIds,
      release: () => {
        if (!held) return;
        held = false;
        if (--this.#retentions > 0 || this.#deferredGc === undefined) return;
        const before = this.#deferredGc;
        this.#deferredGc = undefined;
        if (this.#refuseWrite('deleteSegmentsBefore')) return;
        // Nobody awaits it: a failure to raise the floor fails the log (as it would have), an
        // unlink that fails leaves a segment the next deletion or open removes.
        const run = this.#gc.then(() => this.#deleteSegments(before));
        this.#gc = run.catch(() => undefined);
      },
    };
  }

  /** Counters and state; see {@link WalStats}. */
  stats(): WalStats {
    const a = this.#active;
    const o = this.#opts;
    return {
      ...this.#stats,
      segments: this.#segmentIds.length,
      oldestSegmentId: this.#segmentIds[0] ?? a.id,
      activeSegmentId: a.id,
      writtenPosition: { segmentId: a.id, offset: a.end },
      durablePosition: { segmentId: a.id, offset: Math.max(a.synced, SEGMENT_HEADER_SIZE) },
      pendingAppends: this.#queue.length,
      preallocatedBytes: Math.max(0, a.fileSize - a.end),
      failure: this.#failure,
      fsync: o.fsync === 'batch' ? { batchMs: o.batchMs } : o.fsync,
    };
  }

  /**
   * Writes what is queued, syncs, trims preallocated space, and releases the directory lock.
   * Later calls reject with `ClosedError`. Idempotent: every call returns the same promise. If
   * the log had failed, resources are still released and the promise rejects with the failure.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  // ---------------------------------------------------------------------------------------

  #refuseWrite(op: string): Error | undefined {
    if (this.#status !== 'open') return new ClosedError('the WAL');
    if (this.#opts.readOnly) return new ReadOnlyError('the WAL', op);
    return this.#failure;
  }

  #refuseSize(record: Record): Error | undefined {
    const size = record.logicalSize;
    if (size > this.#opts.maxRecordSize) {
      return new RangeError(`record of ${size} bytes is over maxRecordSize (${this.#opts.maxRecordSize})`);
    }
    return undefined;
  }

  #enqueue(item: Pending): void {
    this.#queue.push(item);
    if (!this.#flushScheduled && !this.#rotating) this.#scheduleFlush();
  }

  /**
   * Flushes run as microtasks, so an append resolves without waiting for an event-loop turn.
   * But a caller awaiting appends in a loop would then never leave the microtask queue: timers
   * (the batchMs fsync), I/O and other callers would starve. So after a few flushes in one turn,
   * the next waits for the turn to end (setImmediate).
   */
  #scheduleFlush(): void {
    this.#flushScheduled = true;
    if (this.#takeTurnBudget()) void RESOLVED.then(this.#flushNow);
    else setImmediate(this.#flushNow);
  }

  /** Counts a flush against this event-loop turn's budget; false once the turn has had its share. */
  #takeTurnBudget(): boolean {
    if (this.#flushesThisTurn === 0) setImmediate(this.#endTurn);
    return ++this.#flushesThisTurn <= FLUSHES_PER_TURN && this.#recordsThisTurn < RECORDS_PER_TURN && this.#bytesThisTurn < BYTES_PER_TURN;
  }

  /**
   * Whether `append` may write its record (`bytes` as a frame) at once instead of queueing for a flush. A caller that
   * awaits each append before the next gains nothing from the queue: every flush holds just its
   * record, and the queue costs it a promise executor, a queue entry and a microtask hop on every
   * append. So a record is written at once when the log's last write held one record (a lone
   * writer), nothing is queued or scheduled (order is kept), it fits the segment, the turn's
   * budget allows it, and no record was written alone since the last microtask checkpoint:
   * appends made together in one synchronous run, or by concurrent writers resumed in one
   * microtask batch, then queue and share the next write, so concurrency still coalesces.
   * Not under 'always', where appends wait for an fdatasync and group commit does the sharing.
   */
  #mayWriteAlone(bytes: number): boolean {
    return (
      this.#lastWriteRecords === 1 &&
      !this.#wroteAlone &&
      this.#queue.length === 0 &&
      !this.#flushScheduled &&
      !this.#rotating &&
      this.#opts.fsync !== 'always' &&
      this.#active.end + bytes <= this.#opts.maxSegmentSize &&
      this.#takeTurnBudget()
    );
  }

  /** Writes one record at once (see {@link #mayWriteAlone}); resolves as a flush would have. */
  #writeAlone(record: Record, bytes: number): Promise<Position> {
    const start = this.#writeOne(record, bytes);
    if (start < 0) return Promise.reject(this.#failure);
    return Promise.resolve({ segmentId: this.#active.id, offset: start });
  }

  /** {@link #writeAlone} for an `appendWith` (its sink told as settleAll would). */
  #writeAloneTo(item: Pending): Promise<void> {
    const start = this.#writeOne(item.records as Record, item.bytes);
    if (start < 0) {
      item.sink!.failed(this.#failure!);
      return Promise.reject(this.#failure);
    }
    try {
      item.sink!.written(this.#active.id, start);
    } catch (err) {
      return Promise.reject(err);
    }
    return RESOLVED;
  }

  /** Writes `record` (`bytes` as a frame) at once; returns where it starts, or -1 if the write failed (the log has failed). */
  #writeOne(record: Record, bytes: number): number {
    this.#wroteAlone = true;
    void RESOLVED.then(this.#clearWroteAlone);
    this.#recordsThisTurn++;
    const seg = this.#active;
    const start = seg.end;
    if (bytes > this.#buf.length) this.#growBuffer(0, bytes);
    const length = encodeFrame(this.#buf, 0, FrameType.FULL, record);
    this.#bytesThisTurn += length;
    if (!this.#write(seg, length, 1, 0, NOTHING)) return -1;
    this.#afterWrite(seg, length);
    this.#maybePreallocate();
    return start;
  }

  /** Writes every queued record in one write(2), up to a rotation point. Synchronous. */
  #flush(): void {
    this.#flushScheduled = false;
    if (this.#rotating || this.#queue.length === 0) return;
    const seg = this.#active;
    const items = this.#queue;
    this.#queue = [];
    const start = seg.end;
    const maxSegmentSize = this.#opts.maxSegmentSize;
    let length = 0;
    let count = 0;
    let records = 0;
    let batches = 0;
    let rotate = false;
    for (; count < items.length; count++) {
      const item = items[count]!;
      const here = start + length;
      if (item.bytes > 0 && here + item.bytes > maxSegmentSize && here > SEGMENT_HEADER_SIZE) {
        rotate = true;
        break;
      }
      if (length + item.bytes > this.#buf.length) this.#growBuffer(length, length + item.bytes);
      const unit = item.records;
      if (unit instanceof Record) {
        if (item.sink === undefined) item.result = { segmentId: seg.id, offset: here };
        else {
          item.segmentId = seg.id;
          item.offset = here;
        }
        length = encodeFrame(this.#buf, length, FrameType.FULL, unit);
        records++;
        continue;
      }
      const n = unit.length;
      const pos: Position[] = [];
      for (let i = 0; i < n; i++) {
        const type = n === 1 ? FrameType.FULL : i === 0 ? FrameType.FIRST : i === n - 1 ? FrameType.LAST : FrameType.MIDDLE;
        pos.push({ segmentId: seg.id, offset: start + length });
        length = encodeFrame(this.#buf, length, type, unit[i]!);
      }
      item.result = pos;
      records += n;
      if (n > 1) batches++;
    }
    this.#recordsThisTurn += records;
    this.#bytesThisTurn += length;
    const written = rotate ? items.slice(0, count) : items;
    if (rotate) this.#queue = items.slice(count).concat(this.#queue);

    if (length > 0 && !this.#write(seg, length, records, batches, written)) return;
    if (this.#opts.fsync === 'always' && records > 0) {
      seg.syncTo(seg.end).then(
        () => settleAll(written),
        (err: Error) => {
          for (const item of written) rejectItem(item, err);
        },
      );
    } else {
      settleAll(written);
    }
    this.#afterWrite(seg, length);
    if (rotate) this.#startRotation();
    else this.#maybePreallocate();
  }

  /**
   * Hands `this.#buf[0..length)` (`records` records, `batches` of them in batches) to the OS at
   * the segment's end and counts it. On failure the log fails, `written` (the appends the bytes
   * belong to) reject first, and false is returned.
   */
  #write(seg: ActiveSegment, length: number, records: number, batches: number, written: readonly Pending[]): boolean {
    try {
      seg.write(this.#buf, length);
    } catch (err) {
      this.#fail(err as Error, written);
      // Best effort: cut the partial write off so the tail ends on a record boundary. Close
      // waits for it before closing the handle.
      seg.discardFailedWrite();
      return false;
    }
    this.#lastWriteRecords = records;
    const s = this.#stats;
    s.records += records;
    s.bytes += length;
    s.writes++;
    s.batches += batches;
    this.#meter.counter('wal.records', records);
    this.#meter.counter('wal.bytes', length);
    this.#meter.counter('wal.writes', 1);
    this.#meter.histogram('wal.group_records', records);
    if (this.#buf.length > 16 * INITIAL_BUFFER) this.#buf = Buffer.allocUnsafe(INITIAL_BUFFER);
    return true;
  }

  /** After a write: the timer of `{ batchMs }`, the background write-back of `'os'`. */
  #afterWrite(seg: ActiveSegment, length: number): void {
    const policy = this.#opts.fsync;
    if (policy === 'batch') {
      if (length > 0) this.#armTimer();
    } else if (
      policy === 'os' &&
      this.#opts.bytesPerSync > 0 &&
      seg.end - seg.synced >= this.#opts.bytesPerSync &&
      !seg.syncing &&
      !seg.sealing
    ) {
      // 'os': write-back in the background (see WalOptions.bytesPerSync); a failure fails the log.
      seg.syncTo(seg.end).catch(() => undefined);
    }
  }

  #growBuffer(keep: number, need: number): void {
    let size = this.#buf.length;
    while (size < need) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.#buf.copy(bigger, 0, 0, keep);
    this.#buf = bigger;
  }

  #armTimer(): void {
    if (this.#timer) return;
    // Not unref'd: a process that stops appending and exits still gets its data synced first.
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#failure || this.#status === 'closed') return;
      this.#active.syncTo(this.#active.end).catch(() => undefined);
    }, this.#opts.batchMs);
  }

  #startRotation(): void {
    this.#rotating = this.#rotate().finally(() => {
      this.#rotating = undefined;
      if (this.#queue.length > 0 && !this.#flushScheduled) this.#scheduleFlush();
    });
  }

  /** Seals the active segment (trim, fdatasync) and only then creates its successor. */
  async #rotate(): Promise<void> {
    const old = this.#active;
    try {
      if (!(await old.seal())) return this.#rejectQueue();
      // The next id is the state's `next`: past any range of ids a salvage gave up.
      const state = this.#state!;
      const id = state.state.next;
      const created = await createSegment(this.#fs, this.#opts.dir, id);
      try {
        // Recorded once it exists durably, before anything is appended to it: after a crash at
        // most one unrecorded segment exists, and it holds no record.
        await state.update((s) => ({ ...s, next: Math.max(s.next, id + 1) }), false);
      } catch (err) {
        await created.handle.close().catch(() => undefined);
        throw err;
      }
      const next = new ActiveSegment(this.#host, created);
      this.#active = next;
      this.#segmentIds.push(next.id);
      this.#stats.rotations++;
      this.#meter.event({ type: 'segment-roll', from: old.id, to: next.id });
      await old.close();
      this.#maybePreallocate();
    } catch (err) {
      this.#fail(err instanceof SedimentError ? err : new IoError('rotate', old.file, err), []);
    }
  }

  #rejectQueue(): void {
    const items = this.#queue;
    this.#queue = [];
    const err = this.#failure ?? new ClosedError('the WAL');
    for (const item of items) rejectItem(item, err);
  }

  /** Has the active segment keep zeros ahead of the writer (see ActiveSegment.preallocate). */
  #maybePreallocate(): void {
    if (!this.#opts.readOnly) this.#active.preallocate(this.#opts.preallocate, this.#opts.maxSegmentSize);
  }

  async #deleteSegments(before: Position): Promise<number> {
    const victims = this.#segmentIds.filter((id) => id < before.segmentId && id !== this.#active.id);
    if (victims.length === 0) return 0;
    // The new floor is durable (both slots) before anything is unlinked: a segment found below
    // it at open is a leftover, one above it that is missing is a loss. A failure here leaves
    // the state file in doubt, which fails the log as a failed fdatasync does.
    const floor = victims[victims.length - 1]! + 1;
    try {
      await this.#state!.update((s) => withFloor(s, floor), true);
    } catch (err) {
      const e = err instanceof SedimentError ? err : new IoError('write', this.#opts.dir, err);
      this.#fail(e, []);
      throw e;
    }
    const deleted: number[] = [];
    for (const id of victims) {
      const file = path.join(this.#opts.dir, segmentFileName(id));
      try {
        await this.#fs.unlink(file);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw new IoError('unlink', file, err);
      }
      this.#segmentIds = this.#segmentIds.filter((x) => x !== id);
      await ioStep('syncDir', this.#opts.dir, () => this.#fs.syncDir(this.#opts.dir));
      deleted.push(id);
    }
    this.#stats.segmentsDeleted += deleted.length;
    if (deleted.length > 0) this.#meter.event({ type: 'segments-deleted', segmentIds: deleted, before });
    return deleted.length;
  }

  /** Fails the log for good: rejects `items`, everything queued and every sync waiter. */
  #fail(err: Error, items: readonly Pending[]): void {
    for (const item of items) rejectItem(item, this.#failure ?? err);
    if (this.#failure) return;
    this.#failure = err;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#rejectQueue();
    this.#active.rejectWaiters(err);
    this.#meter.event({ type: 'failed', error: err });
  }

  async #close(): Promise<void> {
    if (this.#status === 'open') {
      // Writes already queued are drained; new ones are refused from here on.
      const drained = this.#queue.length > 0 ? new Promise<void>((resolve) => this.#enqueue(barrier(resolve, () => resolve()))) : undefined;
      this.#status = 'closing';
      await drained;
    }
    this.#status = 'closing';
    while (this.#rotating) await this.#rotating;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const seg = this.#active;
    // Sealing waits for the running sync and a failed write's trim, which run on this handle,
    // and seals only if the log has not failed.
    if (!this.#opts.readOnly) await seg.seal();
    await seg.close();
    await this.#gc;
    await this.#state?.close().catch(() => undefined);
    await this.#lock.release().catch(() => undefined);
    this.#status = 'closed';
    if (this.#failure) throw this.#failure;
  }

  /** @internal For tests: the resolved options. */
  get options(): Readonly<ResolvedWalOptions> {
    return this.#opts;
  }
}

const NOTHING: readonly Pending[] = [];

/** Recovery's options from the resolved ones. */
function recoverOptions(opts: ResolvedWalOptions): Parameters<typeof recover>[2] {
  return {
    mode: opts.recovery,
    maxRecordSize: opts.maxRecordSize,
    meter: opts.meter,
    discardBefore: opts.discardBefore,
    readOnly: opts.readOnly,
    createIfMissing: opts.createIfMissing,
    adoptUntracked: opts.adoptUntracked,
  };
}

async function dirExists(fs: FileSystem, dir: string): Promise<boolean> {
  try {
    return (await fs.stat(dir)).isDirectory;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw new IoError('stat', dir, err);
  }
}

async function unlinkIfThere(fs: FileSystem, file: string): Promise<void> {
  try {
    await fs.unlink(file);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw new IoError('unlink', file, err);
  }
}

/**
 * Step (1) of an open: makes `want` durable in both slots, creating the state file for a new
 * log (or replacing an unreadable one salvage rebuilt). Nothing is written when the file
 * already holds `want` in both slots.
 */
async function writeOpenState(fs: FileSystem, dir: string, rec: RecoveryResult, want: ReturnType<typeof stateOf>): Promise<StateFile> {
  if (!rec.loaded) return StateFile.create(fs, dir, want);
  const state = await StateFile.open(fs, dir, rec.loaded);
  try {
    // A damaged (or torn) slot is rewritten too.
    if (rec.loaded.fallback || !sameState(rec.loaded.state, want)) await state.update(() => want, true);
  } catch (err) {
    await state.close().catch(() => undefined);
    throw err;
  }
  return state;
}

const NO_LOCK: DirectoryLock = { release: async () => undefined };

/** Resolves each item with its result, telling its sink first (a sink that throws rejects its item). */
function settleAll(items: readonly Pending[]): void {
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    const sink = item.sink;
    if (sink !== undefined) {
      try {
        sink.written(item.segmentId, item.offset);
      } catch (err) {
        item.reject(err as Error);
        continue;
      }
    }
    // An item's result is what its promise expects (see Pending.resolve).
    item.resolve(item.result as never);
  }
}

/** A queue item with no record: settles once everything queued before it has. */
function barrier(resolve: () => void, reject: (err: Error) => void): Pending {
  return { records: [], bytes: 0, result: undefined, sink: undefined, segmentId: 0, offset: 0, resolve: () => resolve(), reject };
}

/** Rejects an item, telling its sink first. */
function rejectItem(item: Pending, err: Error): void {
  item.sink?.failed(err);
  item.reject(err);
}

function noop(): void {}
