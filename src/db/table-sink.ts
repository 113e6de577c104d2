/**
 * Writing tables: {@link TableSink} streams sorted entries into table files of about a given
 * size each, as flushes, compactions and repair produce them, and {@link Slicer} lets a long
 * loop of such work share its thread, and stop at the end of a slice when it is cancelled.
 *
 * @module
 */
import * as path from 'node:path';
import type { Entry } from '../entry.js';
import type { FileSystem } from '../fs/types.js';
import type { TableCompression } from '../sstable/format.js';
import { corrupt } from '../sstable/coding.js';
import { TableReader } from '../sstable/table-reader.js';
import type { TableProperties } from '../sstable/properties.js';
import { TableWriter } from '../sstable/table-writer.js';
import { tableFileName } from './filenames.js';
import type { TableMeta } from './manifest.js';

/** A table written by a compaction, a flush or a repair: durable (synced), not yet in a manifest. */
export interface WrittenTable {
  meta: TableMeta;
  path: string;
}

/** Where a {@link TableSink} writes. */
export interface TableSinkTarget {
  fs: FileSystem;
  dir: string;
  compression: TableCompression;
  /** Allocates a table file number (the worker asks the DB for more, hence the promise). */
  newFileNumber(): number | Promise<number>;
}

/** Background work yields its thread once it has run about this many milliseconds. */
export const SLICE_MS = 4;
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Yields to the event loop once a slice of work has run `SLICE_MS`; cheap to call per entry.
 * Every 64 entries, and after each yield, it throws the `signal`'s reason if the signal was
 * aborted: a cancelled job stops within 64 entries of its next turn on the thread.
 */
export class Slicer {
  #start = performance.now();
  #n = 0;
  readonly #giveWay: (() => Promise<void> | undefined) | undefined;
  readonly #signal: AbortSignal | undefined;
  /** Milliseconds spent yielded: the share of the thread other work took meanwhile. */
  yieldedMs = 0;

  /**
   * `giveWay`, asked at each yield, returns a promise to wait for before going on (work of a
   * higher priority running on the thread), or undefined. `signal` cancels the work.
   */
  constructor(giveWay?: () => Promise<void> | undefined, signal?: AbortSignal) {
    this.#giveWay = giveWay;
    this.#signal = signal;
  }

  /**
   * Counts one step of work; undefined unless the slice is over, then the promise of the yield
   * (and of any wait for `giveWay`), to await before the next step. Not an async function: a loop
   * that awaits only a promise pays no promise reaction per step (`const t = slicer.tick(); if (t)
   * await t;`). Throws the signal's reason when it was aborted.
   */
  tick(): Promise<void> | undefined {
    if ((++this.#n & 63) !== 0) return undefined;
    this.#signal?.throwIfAborted();
    const now = performance.now();
    if (now - this.#start < SLICE_MS) return undefined;
    return this.#yield(now);
  }

  async #yield(now: number): Promise<void> {
    await yieldToLoop();
    this.#signal?.throwIfAborted();
    for (let wait = this.#giveWay?.(); wait; wait = this.#giveWay?.()) {
      await wait;
      this.#signal?.throwIfAborted();
    }
    this.#start = performance.now();
    this.yieldedMs += this.#start - now;
  }
}

/**
 * Reads back a table just written and checks every byte of it (`TableReader.open`'s checks of
 * its footer, filter, properties and index, then `verifyChecksums` over its data blocks), and
 * that it is the table written: its size and entry count. A flush or compaction installs a table
 * only after this, so that a table damaged on its way to the disk (a bug, a bad buffer, a
 * device that returns other bytes than it took) fails the job while the inputs it replaces still
 * exist (RocksDB's `paranoid_file_checks`, on by default here: reading back from the page cache
 * costs little next to building the table). Throws `CorruptionError` or `IoError`.
 */
export async function verifyWrittenTable(fs: FileSystem, file: string, size: number, written: TableProperties): Promise<void> {
  const reader = await TableReader.open(fs, file);
  try {
    const where = { file, offset: 0, length: reader.fileSize };
    if (reader.fileSize !== size) throw corrupt(`table read back has ${reader.fileSize} bytes, ${size} were written`, where);
    if (reader.properties.entryCount !== written.entryCount) {
      throw corrupt(`table read back has ${reader.properties.entryCount} entries, ${written.entryCount} were written`, where);
    }
    await reader.verifyChecksums();
  } finally {
    await reader.close().catch(() => undefined);
  }
}

/** Streams entries into tables of about `maxFileSize` bytes each. */
export class TableSink {
  readonly #target: TableSinkTarget;
  readonly #maxFileSize: number;
  #writer: TableWriter | undefined;
  #number = 0;
  readonly written: WrittenTable[] = [];
  readonly #pending: TableWriter[] = [];
  /** Milliseconds spent finishing tables: their last blocks, index, footer, fdatasync and the read back ({@link verifyWrittenTable}). */
  finishMs = 0;

  constructor(target: TableSinkTarget, maxFileSize: number) {
    this.#target = target;
    this.#maxFileSize = maxFileSize;
  }

  /**
   * Adds an entry (keys ascending, as for `TableWriter`). Undefined once it is taken, or a promise
   * to await before the next entry: when a table starts (its file is created), when the write
   * buffer filled up, or when the table reached its size and is finished. Not an async function:
   * most entries cost no promise (`const w = sink.add(e); if (w) await w;`). Throws, or rejects,
   * with the writer's errors.
   */
  add(e: Entry): Promise<void> | undefined {
    const w = this.#writer;
    if (w === undefined) return this.#addFirst(e);
    const written = w.append(e);
    if (w.fileSize >= this.#maxFileSize) return this.#cutAfter(written);
    return written;
  }

  /** {@link add} when no table is open: creates the next one first. */
  async #addFirst(e: Entry): Promise<void> {
    this.#number = await this.#target.newFileNumber();
    const w = await TableWriter.create(this.#target.fs, path.join(this.#target.dir, tableFileName(this.#number)), {
      compression: this.#target.compression,
    });
    this.#writer = w;
    this.#pending.push(w);
    await this.add(e);
  }

  async #cutAfter(written: Promise<void> | undefined): Promise<void> {
    await written;
    await this.#cut();
  }

  /** True while a table is open (an entry was added since the last cut). */
  get open(): boolean {
    return this.#writer !== undefined;
  }

  /** Ends the table being written (if any): the next entry starts a new one. */
  cut(): Promise<void> {
    return this.#cut();
  }

  async #cut(): Promise<void> {
    const w = this.#writer;
    if (!w) return;
    this.#writer = undefined;
    const t0 = performance.now();
    const p = await w.finish();
    await verifyWrittenTable(this.#target.fs, w.path, w.fileSize, p);
    this.finishMs += performance.now() - t0;
    if (p.entryCount === 0 || !p.smallestKey || !p.largestKey) return;
    this.written.push({
      path: w.path,
      meta: {
        fileNumber: this.#number,
        size: w.fileSize,
        smallest: p.smallestKey,
        largest: p.largestKey,
        minSeq: p.minSeq,
        maxSeq: p.maxSeq,
        entries: p.entryCount,
      },
    });
  }

  /** Finishes the last table; its file and the others are synced (the directory is the caller's). */
  async finish(): Promise<WrittenTable[]> {
    await this.#cut();
    return this.written;
  }

  /** Removes every file this sink created. */
  async abort(): Promise<void> {
    for (const w of this.#pending) await w.abort().catch(() => undefined);
  }
}
