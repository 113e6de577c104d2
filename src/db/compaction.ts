/**
 * Leveled compaction: which tables to merge ({@link pickCompaction}) and the merge itself
 * ({@link runCompaction}).
 *
 * - L0 holds flushed memtables, which overlap; once it has `l0CompactionTrigger` tables they are
 *   all merged with the L1 tables they overlap.
 * - Level n >= 1 has a size target, `levelBaseSize * levelMultiplier^(n-1)`. The level most over
 *   its target gives one table (taken round-robin through the key space) to merge with the
 *   tables it overlaps in level n+1.
 *
 * The merge keeps the newest version of each key and drops the rest. A tombstone, or an entry
 * whose expiry has passed, is dropped when no deeper level may hold the key; otherwise it is
 * written as a tombstone, so the older value below stays hidden. The merge runs in slices,
 * yielding to the event loop every few hundred entries, so that gets and puts go on meanwhile.
 *
 * @module
 */
import * as path from 'node:path';
import { compareKeys, EMPTY_VALUE, type Entry, type EntryCursor } from '../entry.js';
import type { FileSystem } from '../fs/types.js';
import { TableWriter } from '../sstable/table-writer.js';
import { tableFileName } from './filenames.js';
import type { TableMeta } from './manifest.js';
import { LevelCursor, MergingCursor } from './merge.js';
import { LEVELS, type LiveTable, type Version } from './version.js';

/** What a compaction merges and where it writes. */
export interface CompactionPlan {
  /** Input tables, newest data first (L0 newest first, then the source level, then the target level). */
  inputs: LiveTable[][];
  /** Level the inputs come from (the upper one). */
  level: number;
  outputLevel: number;
  reason: 'l0' | 'size' | 'manual';
}

export interface CompactionSettings {
  l0CompactionTrigger: number;
  levelBaseSize: number;
  levelMultiplier: number;
}

/** Target bytes of level `l` (>= 1). */
export function levelTarget(l: number, s: CompactionSettings): number {
  return s.levelBaseSize * s.levelMultiplier ** (l - 1);
}

function overlapping(tables: readonly LiveTable[], smallest: Uint8Array, largest: Uint8Array): LiveTable[] {
  return tables.filter((t) => compareKeys(t.meta.largest, smallest) >= 0 && compareKeys(t.meta.smallest, largest) <= 0);
}

function range(tables: readonly LiveTable[]): [Uint8Array, Uint8Array] {
  let lo = tables[0]!.meta.smallest;
  let hi = tables[0]!.meta.largest;
  for (const t of tables) {
    if (compareKeys(t.meta.smallest, lo) < 0) lo = t.meta.smallest;
    if (compareKeys(t.meta.largest, hi) > 0) hi = t.meta.largest;
  }
  return [lo, hi];
}

/**
 * The compaction to run now, or undefined. `pointers[l]` is the largest key last compacted out
 * of level l (the round-robin position), updated by the caller.
 */
export function pickCompaction(v: Version, s: CompactionSettings, pointers: (Uint8Array | undefined)[]): CompactionPlan | undefined {
  const l0 = v.levels[0]!;
  let best = -1;
  let bestScore = 1;
  if (l0.length >= s.l0CompactionTrigger) {
    best = 0;
    bestScore = l0.length / s.l0CompactionTrigger;
  }
  for (let l = 1; l < LEVELS - 1; l++) {
    const score = v.levelBytes(l) / levelTarget(l, s);
    if (score > bestScore) {
      best = l;
      bestScore = score;
    }
  }
  if (best < 0) return undefined;
  if (best === 0) {
    const [lo, hi] = range(l0);
    return { inputs: [[...l0], overlapping(v.levels[1]!, lo, hi)], level: 0, outputLevel: 1, reason: 'l0' };
  }
  const tables = v.levels[best]!;
  const after = pointers[best];
  const pick = (after && tables.find((t) => compareKeys(t.meta.smallest, after) > 0)) || tables[0]!;
  return {
    inputs: [[pick], overlapping(v.levels[best + 1]!, pick.meta.smallest, pick.meta.largest)],
    level: best,
    outputLevel: best + 1,
    reason: 'size',
  };
}

/** Everything merged into the deepest level that holds data (at least L1). */
export function fullCompaction(v: Version): CompactionPlan | undefined {
  let deepest = 0;
  let count = 0;
  for (let l = 0; l < LEVELS; l++) {
    if (v.levels[l]!.length > 0) deepest = l;
    count += v.levels[l]!.length;
  }
  if (count === 0) return undefined;
  const outputLevel = Math.max(1, deepest);
  return { inputs: v.levels.map((level) => [...level]), level: 0, outputLevel, reason: 'manual' };
}

/** What the merge needs from the DB. */
export interface CompactionContext {
  fs: FileSystem;
  dir: string;
  compression: 'lz4' | 'none';
  tableFileSize: number;
  /** Allocates a table file number. */
  newFileNumber(): number;
  /** Now, in ms since the epoch, for expiries. */
  now: number;
  /** The version the inputs belong to (for "may a deeper level hold this key?"). */
  version: Version;
}

/** A table written by a compaction or a flush. */
export interface WrittenTable {
  meta: TableMeta;
  path: string;
}

/** Background work runs on the main thread in slices of about this many milliseconds. */
export const SLICE_MS = 4;
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Yields to the event loop once a slice of work has run `SLICE_MS`; cheap to call per entry. */
export class Slicer {
  #start = performance.now();
  #n = 0;
  async tick(): Promise<void> {
    if ((++this.#n & 63) !== 0 || performance.now() - this.#start < SLICE_MS) return;
    await yieldToLoop();
    this.#start = performance.now();
  }
}

/** Streams entries into tables of about `maxFileSize` bytes each. */
export class TableSink {
  readonly #ctx: Pick<CompactionContext, 'fs' | 'dir' | 'compression' | 'newFileNumber'>;
  readonly #maxFileSize: number;
  #writer: TableWriter | undefined;
  #number = 0;
  readonly written: WrittenTable[] = [];
  readonly #pending: TableWriter[] = [];

  constructor(ctx: Pick<CompactionContext, 'fs' | 'dir' | 'compression' | 'newFileNumber'>, maxFileSize: number) {
    this.#ctx = ctx;
    this.#maxFileSize = maxFileSize;
  }

  async add(e: Entry): Promise<void> {
    if (!this.#writer) {
      this.#number = this.#ctx.newFileNumber();
      this.#writer = await TableWriter.create(this.#ctx.fs, path.join(this.#ctx.dir, tableFileName(this.#number)), {
        compression: this.#ctx.compression,
      });
      this.#pending.push(this.#writer);
    }
    await this.#writer.add(e);
    if (this.#writer.fileSize >= this.#maxFileSize) await this.#cut();
  }

  async #cut(): Promise<void> {
    const w = this.#writer;
    if (!w) return;
    this.#writer = undefined;
    const p = await w.finish();
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

/** Merges the plan's inputs into new tables at the output level. Does not touch the manifest. */
export async function runCompaction(plan: CompactionPlan, ctx: CompactionContext): Promise<WrittenTable[]> {
  const cursors: EntryCursor[] = [];
  for (let l = 0; l < plan.inputs.length; l++) {
    const tables = plan.inputs[l]!;
    if (tables.length === 0) continue;
    // L0 tables overlap: one cursor each, newest first. Deeper levels are sorted and disjoint.
    if (l === 0 && plan.level === 0) for (const t of tables) cursors.push(t.reader.iterator({ fillCache: false }));
    else cursors.push(new LevelCursor(tables, false));
  }
  for (const c of cursors) c.seekToFirst();
  const merge = new MergingCursor(cursors, false);
  const sink = new TableSink(ctx, ctx.tableFileSize);
  try {
    const slicer = new Slicer();
    for (let e = merge.next(); e; e = merge.next()) {
      const dead = e.kind === 'delete' || (e.expiresAt !== undefined && e.expiresAt <= ctx.now);
      if (dead) {
        if (ctx.version.keyMayExistBelow(plan.outputLevel, e.key)) {
          await sink.add(e.kind === 'delete' ? e : { key: e.key, seq: e.seq, kind: 'delete', value: EMPTY_VALUE, expiresAt: undefined });
        }
      } else {
        await sink.add(e);
      }
      await slicer.tick();
    }
    return await sink.finish();
  } catch (err) {
    await sink.abort();
    throw err;
  }
}
