/**
 * The heavy half of background work, as jobs that run the same way on the DB's thread
 * (`background: 'inline'`) or in its background worker: a flush writes a frozen memtable's
 * entries as an L0 table; a compaction merges tables into new ones. A job is plain data (file
 * names, key ranges, settings), so it can be posted to a worker; it writes and syncs its output
 * tables and returns their metadata, and the DB installs them. RocksDB's remote compaction is the
 * model: the job opens its inputs itself, writes its outputs, and never touches the manifest.
 *
 * The merge keeps the newest version of each key and drops the rest. A tombstone, or an entry
 * whose expiry has passed, is dropped when no deeper level may hold the key; otherwise it is
 * written as a tombstone, so the older value below stays hidden. The merge is a heap
 * ({@link HeapMergingCursor}): L0 may hold a dozen tables or more when compaction is behind. An
 * output table is cut at the target size, or earlier once it overlaps more than
 * `maxGrandparentOverlap` bytes of the level below the output ({@link GrandparentLimit}).
 *
 * Both jobs run in slices ({@link Slicer}), so that what shares their thread (the DB's reads and
 * writes inline, the worker's other jobs) goes on meanwhile; a compaction waits while a flush
 * runs on its thread. Each job returns a {@link JobProfile}: where its time went.
 *
 * A job can be cancelled (`close()` does not wait for housekeeping): its environment's `signal`,
 * checked at each slice, at the start and between tables. A cancelled job closes its inputs,
 * removes every output file it created and rejects with {@link JobCancelledError}. That is safe
 * at any point: no manifest names a job's outputs until the DB installs them.
 *
 * @module
 */
import { compareKeys, EMPTY_VALUE, type Entry, type EntryCursor } from '../entry.js';
import type { FileSystem } from '../fs/types.js';
import type { FlushSource } from '../memtable/flush-source.js';
import type { TableCompression } from '../sstable/format.js';
import type { TableReader } from '../sstable/table-reader.js';
import type { TableMeta } from './manifest.js';
import { findTable, HeapMergingCursor, LevelCursor, type LevelTable } from './merge.js';
import { Slicer, TableSink, type WrittenTable } from './table-sink.js';

/** A job stopped because it was cancelled: it removed its outputs; nothing was installed. */
export class JobCancelledError extends Error {
  constructor() {
    super('the background job was cancelled (the database is closing)');
    this.name = 'JobCancelledError';
  }
}

/** Where a job writes its tables, and how. */
export interface JobOutput {
  dir: string;
  compression: TableCompression;
}

/** A compaction, as data. */
export interface CompactionJob extends JobOutput {
  kind: 'compaction';
  /** Input tables, newest data first: L0's newest first, then the source level, then the target. */
  inputs: TableMeta[][];
  /** True when `inputs[0]` is L0, whose tables overlap (one cursor each). */
  overlappingFirst: boolean;
  /** Key ranges of the tables of each level below the output level, as the plan saw them. */
  below: { meta: KeyRange }[][];
  /** Target size of an output table. */
  tableFileSize: number;
  /**
   * The tables of the level below the output level (the "grandparents"), sorted, with their
   * sizes; and how many of their bytes one output table may overlap before it is cut
   * (LevelDB's `MaxGrandParentOverlapBytes`), so that compacting that output table into the
   * next level later stays small. Empty / 0: no limit.
   */
  grandparents: GrandparentRange[];
  maxGrandparentOverlap: number;
  /** Now, in ms since the epoch: entries that expired at or before it are dead. */
  now: number;
}

/**
 * A flush, as data: the sealed memtable's arena, record addresses and tree leaves (shared
 * memory: posting them to the worker copies nothing), whose entries the worker lists in key
 * order by walking the leaves (`flushSourceEntries`): the DB's thread does no per-entry work.
 */
export interface FlushJob extends JobOutput {
  kind: 'flush';
  source: FlushSource;
}

/** The key range of one table. */
export interface KeyRange {
  smallest: Uint8Array;
  largest: Uint8Array;
}

/** A grandparent table: its key range and size in bytes. */
export interface GrandparentRange extends KeyRange {
  size: number;
}

/** Where a job's time went, as the thread it ran on measured it. */
export interface JobProfile {
  /** Wall time from start to the last table synced, in ms. */
  totalMs: number;
  /**
   * Time reading and merging the inputs (block reads, decompression, the merge), in ms:
   * estimated from one entry in {@link PROFILE_SAMPLE}.
   */
  readMs: number;
  /** Time encoding, compressing and handing output blocks to the file, in ms (estimated, likewise). */
  writeMs: number;
  /** Time finishing output tables (last blocks, filter, index, footer, fdatasync, read back and verified), in ms. */
  finishMs: number;
  /** Time the job was yielded to other work on its thread (the DB's, or another job's), in ms. */
  yieldedMs: number;
  entriesIn: number;
  entriesOut: number;
  /** Output tables cut early by the grandparent-overlap limit. */
  grandparentCuts: number;
}

/** What a job returns: its synced output tables, and where its time went. */
export interface JobResult {
  tables: WrittenTable[];
  profile: JobProfile;
}

/** One entry in this many has its read and write timed (timing each would cost ~10% of a job). */
export const PROFILE_SAMPLE = 16;

/**
 * LevelDB's `Compaction::ShouldStopBefore`: tracks how many grandparent bytes the output table
 * being written overlaps, and says when to cut it before the next key.
 */
export class GrandparentLimit {
  readonly #tables: readonly GrandparentRange[];
  readonly #max: number;
  #index = 0;
  #overlapped = 0;
  #seenKey = false;

  constructor(tables: readonly GrandparentRange[], maxOverlap: number) {
    this.#tables = maxOverlap > 0 ? tables : [];
    this.#max = maxOverlap;
  }

  /** True when the output should be cut before `key` (keys come in ascending order). */
  shouldStopBefore(key: Uint8Array): boolean {
    const tables = this.#tables;
    while (this.#index < tables.length && compareKeys(key, tables[this.#index]!.largest) > 0) {
      if (this.#seenKey) this.#overlapped += tables[this.#index]!.size;
      this.#index++;
    }
    this.#seenKey = true;
    if (this.#overlapped > this.#max) {
      this.#overlapped = 0;
      return true;
    }
    return false;
  }
}

/** What a job needs from the thread it runs on. */
export interface JobEnvironment {
  fs: FileSystem;
  /** A reader of an input table; the job gives it back with {@link releaseInput}. */
  openInput(meta: TableMeta): Promise<TableReader>;
  releaseInput(reader: TableReader): Promise<void>;
  /** Allocates an output table's file number. */
  newFileNumber(): number | Promise<number>;
  /** Cancels the job (its reason, a {@link JobCancelledError}, is what the job rejects with). */
  signal?: AbortSignal | undefined;
}

/**
 * Flushes running on this thread, and what compactions wait for while there are any: a flush
 * goes first (RocksDB runs them in a pool of their own), since frozen memtables waiting for it
 * stop every write, while a compaction that waits only lets L0 grow a little.
 */
let flushesRunning = 0;
let flushesDone: { promise: Promise<void>; resolve: () => void } | undefined;

function flushStarted(): void {
  flushesRunning++;
}

function flushEnded(): void {
  if (--flushesRunning > 0) return;
  const done = flushesDone;
  flushesDone = undefined;
  done?.resolve();
}

/** Undefined, or a promise that resolves once no flush runs on this thread. */
function flushesIdle(): Promise<void> | undefined {
  if (flushesRunning === 0) return undefined;
  if (!flushesDone) {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    flushesDone = { promise, resolve };
  }
  return flushesDone.promise;
}

/** True when a table of a level in `below` has a range that holds `key`. */
export function mayExistBelow(below: readonly (readonly { meta: KeyRange }[])[], key: Uint8Array): boolean {
  for (const tables of below) {
    const i = findTable(tables, key);
    if (i < tables.length && compareKeys(tables[i]!.meta.smallest, key) <= 0) return true;
  }
  return false;
}

/** Runs a compaction job: merges its inputs into new, synced tables. Does not touch the manifest. */
export async function runCompactionJob(job: CompactionJob, env: JobEnvironment): Promise<JobResult> {
  const t0 = performance.now();
  const readers: TableReader[] = [];
  const sink = new TableSink(
    { fs: env.fs, dir: job.dir, compression: job.compression, newFileNumber: () => env.newFileNumber() },
    job.tableFileSize,
  );
  try {
    env.signal?.throwIfAborted();
    const cursors: EntryCursor[] = [];
    for (let l = 0; l < job.inputs.length; l++) {
      const tables: LevelTable[] = [];
      for (const meta of job.inputs[l]!) {
        env.signal?.throwIfAborted();
        const reader = await env.openInput(meta);
        readers.push(reader);
        tables.push({ meta, reader });
      }
      if (tables.length === 0) continue;
      // L0 tables overlap: one cursor each, newest first. Deeper levels are sorted and disjoint.
      if (l === 0 && job.overlappingFirst) for (const t of tables) cursors.push(t.reader.iterator({ fillCache: false, views: true }));
      else cursors.push(new LevelCursor(tables, false));
    }
    for (const c of cursors) c.seekToFirst();
    const merge = new HeapMergingCursor(cursors);
    const slicer = new Slicer(flushesIdle, env.signal);
    const limit = new GrandparentLimit(job.grandparents, job.maxGrandparentOverlap);
    let readMs = 0;
    let writeMs = 0;
    let entriesIn = 0;
    let entriesOut = 0;
    let grandparentCuts = 0;
    for (;;) {
      const sampled = entriesIn % PROFILE_SAMPLE === 0;
      const r0 = sampled ? performance.now() : 0;
      const e = merge.next();
      if (sampled) readMs += performance.now() - r0;
      if (!e) break;
      entriesIn++;
      const dead = e.kind === 'delete' || (e.expiresAt !== undefined && e.expiresAt <= job.now);
      const out = !dead
        ? e
        : mayExistBelow(job.below, e.key)
          ? e.kind === 'delete'
            ? e
            : { key: e.key, seq: e.seq, kind: 'delete' as const, value: EMPTY_VALUE, expiresAt: undefined }
          : undefined;
      if (out) {
        if (limit.shouldStopBefore(out.key) && sink.open) {
          await sink.cut();
          grandparentCuts++;
          env.signal?.throwIfAborted();
        }
        const finished = sink.finishMs;
        const w0 = sampled ? performance.now() : 0;
        const written = sink.add(out);
        if (written) await written;
        // A cut at the size limit inside add is counted in finishMs, not here.
        if (sampled) writeMs += performance.now() - w0 - (sink.finishMs - finished);
        entriesOut++;
      }
      const turn = slicer.tick();
      if (turn) await turn;
    }
    const tables = await sink.finish();
    return {
      tables,
      profile: {
        totalMs: performance.now() - t0,
        readMs: readMs * PROFILE_SAMPLE,
        writeMs: writeMs * PROFILE_SAMPLE,
        finishMs: sink.finishMs,
        yieldedMs: slicer.yieldedMs,
        entriesIn,
        entriesOut,
        grandparentCuts,
      },
    };
  } catch (err) {
    await sink.abort();
    throw err;
  } finally {
    for (const r of readers) await env.releaseInput(r).catch(() => undefined);
  }
}

/**
 * Writes `entries` (sorted by key, one per key) as one table: a frozen memtable inline, its
 * `flushSourceEntries` in the worker. Does not touch the manifest.
 */
export async function runFlushJob(
  entries: Iterable<Entry>,
  output: JobOutput,
  env: Pick<JobEnvironment, 'fs' | 'newFileNumber' | 'signal'>,
): Promise<JobResult> {
  const t0 = performance.now();
  const sink = new TableSink(
    { fs: env.fs, dir: output.dir, compression: output.compression, newFileNumber: () => env.newFileNumber() },
    Infinity,
  );
  flushStarted();
  try {
    env.signal?.throwIfAborted();
    const slicer = new Slicer(undefined, env.signal);
    let n = 0;
    for (const e of entries) {
      const written = sink.add(e);
      if (written) await written;
      n++;
      const turn = slicer.tick();
      if (turn) await turn;
    }
    const tables = await sink.finish();
    const totalMs = performance.now() - t0;
    return {
      tables,
      profile: {
        totalMs,
        // Sorting the arena and encoding are interleaved: not told apart for a flush.
        readMs: 0,
        writeMs: totalMs - sink.finishMs - slicer.yieldedMs,
        finishMs: sink.finishMs,
        yieldedMs: slicer.yieldedMs,
        entriesIn: n,
        entriesOut: n,
        grandparentCuts: 0,
      },
    };
  } catch (err) {
    await sink.abort();
    throw err;
  } finally {
    flushEnded();
  }
}
