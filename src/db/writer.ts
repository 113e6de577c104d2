/**
 * The write path (LevelDB's `DBImpl::Write` and `MakeRoomForWrite`): admission, the WAL append
 * and the memtable it fills, owned here: the active memtable and the frozen ones waiting for
 * their flush.
 *
 * Order. A write, validated and encoded beforehand (write-input.ts), gets its seq synchronously
 * with its WAL append, so seqs grow in log order; the memtable update runs as the WAL settles the
 * append (`Wal.appendWith`, prepared-write.ts), in log order, so memtables receive writes in WAL
 * order: a memtable always holds a prefix of what the WAL holds after the previous flush, and the
 * position of its last record says exactly which WAL records it covers.
 *
 * Admission. Writers that must wait (too many frozen memtables, or L0 at a trigger) queue up in
 * call order, and a writer arriving while others wait queues behind them: writes reach the WAL
 * in the order they were called. Writes stop while frozen memtables reach `maxFrozenMemtables`
 * or L0 `l0StopTrigger` tables, and are slowed (one 1 ms delay per group of queued writers) from
 * `l0SlowdownTrigger` on.
 *
 * Freeze. Past `memtableSize` (or four times that of WAL behind the memtable) the memtable is
 * frozen (an O(1) copy-on-write view), a new one takes writes, and a flush is scheduled.
 *
 * @module
 */
import { FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE } from '../wal/format.js';
import type { Position } from '../wal/position.js';
import { Record } from '../wal/record.js';
import type { Wal } from '../wal/wal.js';
import { type FrozenMemtable, Memtable } from '../memtable/memtable.js';
import type { ResolvedDBOptions } from './options.js';
import { type OpVisitor, setBatchSeq, visitOps } from './write-batch.js';
import type { WriteTarget } from './prepared-write.js';
import type { Pending } from './write-input.js';

/** A frozen memtable waiting for its flush. */
export interface Frozen {
  table: FrozenMemtable;
  /** Position of the last WAL record the memtable holds. */
  lastPosition: Position | null;
  lastSeq: number;
}

/** What the write path needs of its DB. */
export interface WriterHost {
  readonly opts: Pick<ResolvedDBOptions, 'fsync' | 'memtableSize' | 'maxFrozenMemtables' | 'l0SlowdownTrigger' | 'l0StopTrigger' | 'meter'>;
  /** The DB's WAL (open once recovery has opened it, before any write). */
  wal(): Wal;
  /** Tables in L0 now. */
  l0Tables(): number;
  isOpen(): boolean;
  scheduleFlush(): void;
  scheduleCompaction(): void;
  /** Resolves when `ready()` holds, or rejects once the DB cannot get there (closed, failed). */
  until(ready: () => boolean): Promise<void>;
  /** Wakes what waits in `until`. */
  notify(): void;
  /** The error that stopped writes, if any. */
  backgroundError(): Error | undefined;
  setBackgroundError(err: unknown): void;
}

/** The write queue and the memtables (see the module comment). */
export class Writer {
  readonly #host: WriterHost;
  mem = new Memtable();
  /** Frozen memtables waiting for flush, newest first. */
  imm: Frozen[] = [];
  /** Seq of the last write applied to the memtable. */
  seq = 0;
  /** Seq of the last write handed to the WAL (>= seq: writes in flight). */
  nextSeq = 0;
  /**
   * Where the last WAL record the active memtable holds starts (segment < 0: none), and where
   * the last record applied ends. Numbers, not a Position per write: positions are built when
   * asked for (a freeze, a change feed), which is rare next to writes.
   */
  #lastSegment = -1;
  #lastOffset = 0;
  #endSegment = 0;
  #endOffset = SEGMENT_HEADER_SIZE;
  /** Set once a logged write could not be applied: the memtable no longer matches the log. */
  #broken: Error | undefined;
  /** WAL bytes behind the active memtable (approximate: frames of the records it received). */
  walBytesSinceFreeze = 0;
  /** Writes handed to the WAL and not yet resolved. */
  inflight = 0;
  /** Writers queued for admission. */
  admissionQueue = 0;
  /** Resolved at the next applied write (or close): what caught-up feeds wait on. */
  #writeWaiter: { promise: Promise<void>; resolve: () => void } | undefined;
  #admission: Promise<void> = Promise.resolve();
  /** Tickets of writers that queued for admission, and the last one a slowdown delay admitted. */
  #admissionTicket = 0;
  #slowGroupEnd = 0;
  /** Since when writes are stopped (undefined: they are not); counts of stops and slowdowns begun. */
  #stoppedSince: number | undefined;
  #stopEpoch = 0;
  #slowEpoch = 0;
  /** True while a slowdown delay runs. */
  #slowing = false;
  /** The write path's counters (see `DBStats`). */
  readonly stats = { writeStalls: 0, writeStallMs: 0, writeSlowdowns: 0, writeSlowdownMs: 0, userBytes: 0 };

  constructor(host: WriterHost) {
    this.#host = host;
  }

  /** Position of the last WAL record the active memtable holds (null before any). */
  get lastPosition(): Position | null {
    return this.#lastSegment < 0 ? null : { segmentId: this.#lastSegment, offset: this.#lastOffset };
  }

  set lastPosition(p: Position | null) {
    this.#lastSegment = p === null ? -1 : p.segmentId;
    this.#lastOffset = p === null ? 0 : p.offset;
  }

  /** End of the last WAL record applied to the memtable: how far change feeds read. */
  get appliedEnd(): Position {
    return { segmentId: this.#endSegment, offset: this.#endOffset };
  }

  set appliedEnd(p: Position) {
    this.#endSegment = p.segmentId;
    this.#endOffset = p.offset;
  }

  /**
   * The error that made the memtable unusable (a logged write that could not be applied to it),
   * if any: reads refuse with it, as they could see part of a batch.
   */
  get broken(): Error | undefined {
    return this.#broken;
  }

  /**
   * Admits `pending`, appends it to the WAL with its seq and applies it to the memtable; with
   * `sync` (and the fsync policy not `'always'`), then syncs the WAL. Rejects with the WAL's
   * error, or with the error that stopped writes while it waited for admission.
   *
   * The common case, a write that neither waits for admission nor syncs, is no async function:
   * its promise is the WAL append's, and the WAL tells the write where its record went
   * ({@link #target}). 64 concurrent puts allocated 2.4 kB per put with the async function and
   * the append's reaction, 1.8 kB without.
   */
  write(pending: Pending, sync: boolean): Promise<void> {
    if (!sync && this.admissionQueue === 0 && !this.#mustWait()) return this.#append(pending);
    return this.#writeWaiting(pending, sync);
  }

  /**
   * Hands a write to the WAL, in flight until its append settles. The seq is given here,
   * synchronously with the append: appends reach the WAL in call order, so seqs grow in log
   * order. (A write the WAL then refuses leaves a gap: the log has failed for good by then.)
   * The memtable update runs as the WAL settles the append, in log order.
   */
  #append(pending: Pending): Promise<void> {
    this.inflight++;
    const seq = this.nextSeq + 1;
    this.nextSeq += pending.count;
    setBatchSeq(pending.batch, seq);
    const record = Record.opaqueOwned(pending.batch);
    pending.seq = seq;
    pending.frameBytes = record.payloadSize + FRAME_HEADER_SIZE;
    pending.target = this.#target;
    return this.#host.wal().appendWith(record, pending);
  }

  /** What the WAL's settling of an append does: apply it, and count it out of the writes in flight. */
  readonly #target: WriteTarget = {
    applied: (pending, segmentId, offset) => {
      try {
        this.#apply(pending, segmentId, offset);
      } finally {
        if (--this.inflight === 0) this.#host.notify();
      }
    },
    failed: () => {
      if (--this.inflight === 0) this.#host.notify();
    },
  };

  async #writeWaiting(pending: Pending, sync: boolean): Promise<void> {
    // Writers that must wait queue up in call order, and a writer arriving while others wait
    // queues behind them: writes reach the WAL in the order they were called.
    if (this.admissionQueue > 0 || this.#mustWait()) {
      const stopEpoch = this.#stopEpoch;
      const slowEpoch = this.#slowEpoch;
      const stoppedAtEntry = this.#stoppedSince !== undefined;
      const slowedAtEntry = this.#slowing;
      this.admissionQueue++;
      const ticket = ++this.#admissionTicket;
      const mine = this.#admission.then(() => this.#admit(ticket));
      this.#admission = mine.catch(() => undefined);
      try {
        await mine;
      } finally {
        this.admissionQueue--;
        // A writer queued behind others counts for what held the queue while it waited: a stop
        // (stalled), else a slowdown (slowed), else nothing (the queue drained at once).
        if (stoppedAtEntry || this.#stopEpoch !== stopEpoch) {
          this.stats.writeStalls++;
          this.#host.opts.meter.counter('db.write_stalls', 1);
        } else if (slowedAtEntry || this.#slowEpoch !== slowEpoch) {
          this.stats.writeSlowdowns++;
          this.#host.opts.meter.counter('db.write_slowdowns', 1);
        }
      }
    }
    // In flight until the sync too (close waits for it).
    this.inflight++;
    try {
      await this.#append(pending);
      if (sync && this.#host.opts.fsync !== 'always') await this.#host.wal().sync();
    } finally {
      if (--this.inflight === 0) this.#host.notify();
    }
  }

  /**
   * Applies a logged write, whose record starts at `offset` of segment `segmentId`, to the
   * memtable. Everything that could refuse it was decided before the append, so this cannot
   * fail; if it ever did (out of memory), the memtable would no longer match the log and could
   * hold part of the batch: writes stop and reads refuse ({@link broken}), loudly, until a reopen
   * recovers the write from the WAL.
   */
  #apply(pending: Pending, segmentId: number, offset: number): void {
    try {
      this.#applying = pending;
      visitOps(pending.batch, this.#insertOp);
    } catch (err) {
      this.#broken = new Error(
        'internal error: a logged write could not be applied to the memtable; writes and reads are stopped, reopen to recover it from the WAL',
        { cause: err },
      );
      this.#host.setBackgroundError(this.#broken);
      throw err;
    } finally {
      this.#applying = undefined;
    }
    this.seq = pending.seq + pending.count - 1;
    this.stats.userBytes += pending.userBytes;
    this.walBytesSinceFreeze += pending.frameBytes;
    this.#lastSegment = segmentId;
    this.#lastOffset = offset;
    this.#endSegment = segmentId;
    this.#endOffset = offset + pending.frameBytes;
    this.wakeFeeds();
    // Overwrites of the same keys keep the memtable small while the WAL grows: bound the WAL
    // behind the memtable too (RocksDB's max_total_wal_size), or it would never be collected.
    if (this.mustFreeze()) this.freeze();
  }

  /** The write {@link #apply} walks, for {@link #insertOp} (one visitor for all writes: no closure per write). */
  #applying: Pending | undefined;

  readonly #insertOp: OpVisitor = (kind, keyAt, keyLength, valueLength, expiresAt, i) => {
    const pending = this.#applying as Pending;
    this.mem.insertFrom(pending.batch, keyAt, keyLength, valueLength, pending.seq + i, kind === 'delete', expiresAt);
  };

  /** Wakes change feeds waiting for writes. */
  wakeFeeds(): void {
    const w = this.#writeWaiter;
    if (w === undefined) return;
    this.#writeWaiter = undefined;
    w.resolve();
  }

  /** Whether the active memtable is full: by its own size, or by the WAL behind it. */
  mustFreeze(): boolean {
    return this.mem.approximateBytes >= this.#host.opts.memtableSize || this.walBytesSinceFreeze >= 4 * this.#host.opts.memtableSize;
  }

  /** Freezes the active memtable (if it holds anything) for a flush, and schedules the flush. */
  freeze(): void {
    if (this.mem.size === 0) return;
    this.sealActive();
    this.#host.scheduleFlush();
  }

  /**
   * Seals the active memtable (it takes no more writes: see `Memtable.seal`) as the newest
   * frozen one, holding the WAL up to {@link lastPosition}, and gives the writes a new one.
   */
  sealActive(): void {
    this.imm.unshift({ table: this.mem.seal(), lastPosition: this.lastPosition, lastSeq: this.seq });
    this.mem = new Memtable();
    this.walBytesSinceFreeze = 0;
  }

  /** Whether a write must queue for admission: a stop or a slowdown may hold it. */
  #mustWait(): boolean {
    return this.imm.length >= this.#host.opts.maxFrozenMemtables || this.#host.l0Tables() >= this.#host.opts.l0SlowdownTrigger;
  }

  /** Write stalls: wait for flushes or compaction, LevelDB style (slow down, then stop). */
  async #admit(ticket: number): Promise<void> {
    const stopped = (): boolean =>
      this.imm.length >= this.#host.opts.maxFrozenMemtables || this.#host.l0Tables() >= this.#host.opts.l0StopTrigger;
    if (stopped()) {
      this.#host.scheduleFlush();
      this.#host.scheduleCompaction();
      const t0 = performance.now();
      this.#stoppedSince = t0;
      this.#stopEpoch++;
      try {
        await this.#host.until(() => !stopped());
      } finally {
        this.#stoppedSince = undefined;
        const ms = performance.now() - t0;
        this.stats.writeStallMs += ms;
        const meter = this.#host.opts.meter;
        meter.counter('db.write_stall_ms', ms);
        meter.event({ type: 'write-stall', durationMs: ms });
      }
      // Not #checkWritable: a write called before close() goes through while the DB closes.
      const bgError = this.#host.backgroundError();
      if (bgError) throw bgError;
    }
    // The slowdown delays a group of writes, as LevelDB delays a write group once: one 1 ms
    // delay admits every writer that queued before it ended. (Delaying each writer by 1 ms in
    // turn would cap 64 concurrent writers at 1,000 writes/s.)
    if (this.#host.l0Tables() >= this.#host.opts.l0SlowdownTrigger && ticket > this.#slowGroupEnd) {
      this.#slowEpoch++;
      this.#slowing = true;
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 1));
      this.#slowing = false;
      this.#slowGroupEnd = this.#admissionTicket;
      const ms = performance.now() - t0;
      this.stats.writeSlowdownMs += ms;
      this.#host.opts.meter.counter('db.write_slowdown_ms', ms);
    }
  }

  /** Resolves at the next applied write, or at close. */
  nextWrite(): Promise<void> {
    if (!this.#host.isOpen()) return Promise.resolve();
    if (this.#writeWaiter === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#writeWaiter = { promise, resolve };
    }
    return this.#writeWaiter.promise;
  }
}
