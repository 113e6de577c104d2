/**
 * Background work: flushes and compactions, LevelDB's `MaybeScheduleCompaction` and
 * `BackgroundCall`. Flushes run one at a time in one lane, compactions in another, so a long
 * compaction never holds up a flush. A job runs inline or in the process's background worker
 * (the `background` option, background.ts); its tables are then opened and installed in a new
 * manifest (version-set.ts), and only after that are the inputs (a frozen memtable, or the
 * compacted tables) let go.
 *
 * Flush. The oldest frozen memtable is written as an L0 table (synced, directory synced), the WAL
 * is synced through the memtable's last record, the manifest records the table and that
 * position, and only then is the frozen memtable dropped and the WAL before it collected.
 *
 * Errors. A failed job stops background work and writes (the DB's background error) and deletes
 * nothing still needed; a worker that dies mid-job has its files removed and the job runs again
 * (background.ts). A job that `close()` cancels installs nothing and is not an error.
 *
 * @module
 */
import { nodeFileSystem } from '../fs/node.js';
import type { FileSystem } from '../fs/types.js';
import type { Wal } from '../wal/wal.js';
import { BackgroundJobs } from './background.js';
import { type CompactionJob, JobCancelledError, type JobResult, runCompactionJob, runFlushJob } from './compaction-job.js';
import { type CompactionPlan, grandparentsOf, maxGrandparentOverlap, pickCompaction } from './compaction.js';
import type { TableMeta } from './manifest.js';
import type { ResolvedDBOptions } from './options.js';
import type { VersionSet } from './version-set.js';
import type { Writer } from './writer.js';

/** `meta` with its keys in buffers of their own (see `background.ts`). */
function detachedMeta(meta: TableMeta): TableMeta {
  return { ...meta, smallest: new Uint8Array(meta.smallest), largest: new Uint8Array(meta.largest) };
}

/** What background work needs of its DB. */
export interface SchedulerHost {
  readonly fs: FileSystem;
  readonly dir: string;
  readonly opts: ResolvedDBOptions;
  /** The frozen memtables to flush, and the writers queued for admission (they keep work going while the DB closes). */
  readonly writer: Pick<Writer, 'imm' | 'admissionQueue'>;
  /** The table set (open once recovery has opened it). */
  versions(): VersionSet;
  wal(): Wal;
  status(): 'open' | 'closing' | 'closed';
  /** Calls of `flush()` and `compact()` running: they keep work going while the DB closes. */
  maintenanceCalls(): number;
  /** The error that stopped background work, if any. */
  backgroundError(): Error | undefined;
  setBackgroundError(err: unknown): void;
  /** Wakes what waits for background work (write stalls, `flush()`, close). */
  notify(): void;
  /** Deletes the WAL segments no one needs any more (wal-retention.ts). */
  collectWal(): Promise<void>;
}

/** The flush and compaction lanes, the jobs and the install of their results (see the module comment). */
export class Scheduler {
  readonly #host: SchedulerHost;
  /** Flushes run one at a time in this lane, compactions in the other: a long compaction never holds up a flush. */
  #flushLane: Promise<void> = Promise.resolve();
  #compactLane: Promise<void> = Promise.resolve();
  #flushScheduled = false;
  #compactScheduled = false;
  /** Where the jobs run (inline or in the worker); close() cancels them. */
  readonly background: BackgroundJobs;
  /** Compactions running now. */
  compactionsRunning = 0;
  /** Where compaction time went, summed over the compactions done (see `DBStats`). */
  readonly compactionTime = { jobMs: 0, readMs: 0, writeMs: 0, finishMs: 0, yieldedMs: 0 };
  /** Flush and compaction counters (see `DBStats`). */
  readonly stats = {
    flushes: 0,
    compactions: 0,
    trivialMoves: 0,
    l0CompactionL1BytesRead: 0,
    flushBytes: 0,
    compactionBytesRead: 0,
    compactionBytesWritten: 0,
  };

  constructor(host: SchedulerHost) {
    this.#host = host;
    this.background = new BackgroundJobs(host.opts.background, {
      dir: host.dir,
      fs: host.fs,
      served: host.fs !== nodeFileSystem,
      newFileNumber: () => host.versions().newFileNumber(),
      meter: host.opts.meter,
    });
  }

  /** Settles once the flushes queued so far are done (close waits for it). */
  get flushLane(): Promise<void> {
    return this.#flushLane;
  }

  /** Settles once the compactions queued so far are done. */
  get compactLane(): Promise<void> {
    return this.#compactLane;
  }

  /** Runs `job` after the jobs queued before it in the same lane. */
  inLane(lane: 'flush' | 'compact', job: () => Promise<void>): Promise<void> {
    const prev = lane === 'flush' ? this.#flushLane : this.#compactLane;
    const run = prev.then(async () => {
      if (this.#host.backgroundError() || this.#host.status() === 'closed') return;
      try {
        await job();
      } catch (err) {
        if (!(err instanceof JobCancelledError)) this.#host.setBackgroundError(err);
      } finally {
        this.#host.notify();
      }
    });
    if (lane === 'flush') this.#flushLane = run;
    else this.#compactLane = run;
    return run;
  }

  /** Schedules flushes of the frozen memtables (once: a flush already scheduled takes them all). */
  scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    void this.inLane('flush', async () => {
      this.#flushScheduled = false;
      // While closing, only for a flush() or compact(), or writes waiting for a flush, called
      // before close(): close waits for those.
      while (
        this.#host.writer.imm.length > 0 &&
        (this.#host.status() === 'open' || this.#host.maintenanceCalls() > 0 || this.#host.writer.admissionQueue > 0) &&
        !this.#host.backgroundError()
      ) {
        await this.flushOldest();
        this.#host.notify();
        this.scheduleCompaction();
      }
    });
  }

  /** Schedules compactions while the picker finds one owed (once: one already scheduled does). */
  scheduleCompaction(): void {
    if (this.#compactScheduled) return;
    this.#compactScheduled = true;
    void this.inLane('compact', async () => {
      this.#compactScheduled = false;
      // While closing, only for writes called before close() that wait for a compaction.
      while ((this.#host.status() === 'open' || this.#host.writer.admissionQueue > 0) && !this.#host.backgroundError()) {
        const plan = pickCompaction(this.#host.versions().current, this.#host.opts, this.#host.versions().pointers);
        if (!plan) return;
        await this.runCompaction(plan);
        this.#host.notify();
      }
    });
  }

  /** Runs a compaction's merge where the `background` option says. */
  async #compactionJob(plan: CompactionPlan): Promise<JobResult> {
    const job: CompactionJob = {
      kind: 'compaction',
      dir: this.#host.dir,
      compression: this.#host.opts.compression,
      tableFileSize: this.#host.opts.tableFileSize,
      grandparents:
        plan.reason === 'manual'
          ? []
          : grandparentsOf(this.#host.versions().current, plan).map((t) => ({
              smallest: new Uint8Array(t.meta.smallest),
              largest: new Uint8Array(t.meta.largest),
              size: t.meta.size,
            })),
      maxGrandparentOverlap: maxGrandparentOverlap(this.#host.opts),
      // Copies: posting a key that views a larger buffer (a decoded manifest) would clone it all.
      inputs: plan.inputs.map((tables) => tables.map((t) => detachedMeta(t.meta))),
      overlappingFirst: plan.level === 0,
      below: this.#host
        .versions()
        .current.levels.slice(plan.outputLevel + 1)
        .map((level) =>
          level.map((t) => ({ meta: { smallest: new Uint8Array(t.meta.smallest), largest: new Uint8Array(t.meta.largest) } })),
        ),
      now: this.#host.opts.clock(),
    };
    return this.background.run(
      () => job,
      (signal) => {
        // Inline, the live readers (and their block cache) serve as the inputs.
        const readers = new Map(plan.inputs.flat().map((t) => [t.meta.fileNumber, t.reader]));
        return runCompactionJob(job, {
          fs: this.#host.fs,
          openInput: (meta) => Promise.resolve(readers.get(meta.fileNumber)!),
          releaseInput: () => Promise.resolve(),
          newFileNumber: this.#host.versions().newFileNumber,
          signal,
        });
      },
    );
  }

  /** Writes the oldest frozen memtable as an L0 table and records it in the manifest. */
  async flushOldest(): Promise<void> {
    const t0 = performance.now();
    const f = this.#host.writer.imm[this.#host.writer.imm.length - 1]!;
    const output = { dir: this.#host.dir, compression: this.#host.opts.compression };
    const { tables: written } = await this.background.run(
      () => ({ kind: 'flush', ...output, source: f.table.flushSource() }),
      (signal) => runFlushJob(f.table, output, { fs: this.#host.fs, newFileNumber: this.#host.versions().newFileNumber, signal }),
    );
    const added = await this.#host.versions().openTables(written);
    // The manifest will say "the WAL is flushed through f.lastPosition": the WAL must hold that
    // position durably first, or after a power loss new records could land at or before it and
    // be skipped by every replay.
    await this.#host
      .wal()
      .sync()
      .catch(async (err: unknown) => {
        await this.#host.versions().closeTables(added);
        throw err;
      });
    await this.#host.versions().install({
      added: added.map((table) => ({ level: 0, table })),
      removed: new Set(),
      lastSeq: f.lastSeq,
      ...(f.lastPosition ? { flushedThrough: f.lastPosition } : {}),
    });
    this.#host.writer.imm.pop();
    this.stats.flushes++;
    let bytes = 0;
    for (const w of written) bytes += w.meta.size;
    this.stats.flushBytes += bytes;
    const meter = this.#host.opts.meter;
    const ms = performance.now() - t0;
    meter.counter('db.flushes', 1);
    meter.counter('db.flush_bytes', bytes);
    meter.histogram('db.flush_ms', ms);
    meter.event({ type: 'flush', tables: written.length, bytes, durationMs: ms });
    // The manifest now covers everything up to f.lastPosition: older segments are garbage.
    if (f.lastPosition) await this.#host.collectWal();
  }

  /** Runs `plan`: a trivial move, or a merge of its tables; installs the result. */
  async runCompaction(plan: CompactionPlan): Promise<void> {
    const t0 = performance.now();
    this.compactionsRunning++;
    try {
      if (plan.trivialMove) await this.#moveTables(plan, t0);
      else await this.#mergeTables(plan, t0);
    } finally {
      this.compactionsRunning--;
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
    await this.#host.versions().install({
      added: tables.map((table) => ({ level: plan.outputLevel, table })),
      removed: new Set(tables.map((t) => t.meta.fileNumber)),
      ...this.#pointerEdit(plan),
    });
    this.stats.compactions++;
    this.stats.trivialMoves++;
    const meter = this.#host.opts.meter;
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
    const added = await this.#host.versions().openTables(written);
    const removed = new Set<number>();
    for (const tables of plan.inputs) for (const t of tables) removed.add(t.meta.fileNumber);
    // Applied at install time to the live version: a flush may have added L0 tables meanwhile.
    await this.#host.versions().install({
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
    this.stats.compactions++;
    this.stats.compactionBytesRead += bytesRead;
    this.stats.compactionBytesWritten += bytesWritten;
    this.stats.l0CompactionL1BytesRead += l1BytesRead;
    const time = this.compactionTime;
    time.jobMs += profile.totalMs;
    time.readMs += profile.readMs;
    time.writeMs += profile.writeMs;
    time.finishMs += profile.finishMs;
    time.yieldedMs += profile.yieldedMs;
    const meter = this.#host.opts.meter;
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
}
