/**
 * The version set (LevelDB's `version_set`): the DB's current {@link Version}, the manifest state
 * behind it and its number, table file numbers, the install lock, the readers of every table this
 * handle opened, obsolete-file deletion, and the cleanup of leftovers at open.
 *
 * A flush or a compaction ends with a {@link VersionEdit} (tables added at a level, tables
 * removed, the new flushed WAL position). {@link applyEdit} is the pure part: levels in, levels
 * out. {@link VersionSet.install} makes the result durable (a new manifest, then `CURRENT`) and
 * only then swaps the live version, under a lock, so that edits from the flush and the compaction
 * lanes apply one after the other to whatever is current, never to a stale copy.
 *
 * Obsolete tables: when the last version holding a table is released, the table is closed and
 * deleted, unless the current manifest still names it (and never once the handle is closed: a
 * file left behind is removed at the next open).
 *
 * @module
 */
import * as path from 'node:path';
import { compareKeys } from '../entry.js';
import { CorruptionError, errnoOf, ioStep } from '../errors.js';
import type { FileSystem } from '../fs/types.js';
import type { BlockCache } from '../sstable/block-cache.js';
import { TableReader } from '../sstable/table-reader.js';
import type { Position } from '../wal/position.js';
import { parseFileName, tableFileName } from './filenames.js';
import { installManifest, type ManifestState, type TableMeta } from './manifest.js';
import type { WrittenTable } from './table-sink.js';
import { LEVELS, type LiveTable, Version } from './version.js';

/** A change to the table set, as a flush or a compaction produces it. */
export interface VersionEdit<T extends { meta: TableMeta } = LiveTable> {
  /** New tables and the level each goes to. */
  added: readonly { level: number; table: T }[];
  /** File numbers of tables that leave the set. */
  removed: ReadonlySet<number>;
  /** Highest sequence number in the new tables (the manifest keeps the largest seen). */
  lastSeq?: number;
  /** The WAL position the tables now cover: replay starts after it. */
  flushedThrough?: Position | null;
}

/**
 * The levels after `edit`: removed tables dropped; added L0 tables first (L0 is newest first, and
 * what a flush adds is newer than everything there); added tables of a deeper level placed in
 * key order. Pure: the inputs are not changed.
 */
export function applyEdit<T extends { meta: TableMeta }>(levels: readonly (readonly T[])[], edit: VersionEdit<T>): T[][] {
  const out = levels.map((level) => level.filter((t) => !edit.removed.has(t.meta.fileNumber)));
  for (let l = 0; l < out.length; l++) {
    const added = edit.added.filter((a) => a.level === l).map((a) => a.table);
    if (added.length === 0) continue;
    out[l] = l === 0 ? [...added, ...out[l]!] : [...out[l]!, ...added].sort((a, b) => compareKeys(a.meta.smallest, b.meta.smallest));
  }
  return out;
}

/** The manifest a handle opened with. */
export interface CurrentManifest {
  number: number;
  state: ManifestState;
}

/** See the module comment. */
export class VersionSet {
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #cache: BlockCache;
  #current!: Version;
  #state: ManifestState;
  #manifestNumber: number;
  #nextFileNumber: number;
  /** Table files named by the current manifest. */
  #live: Set<number>;
  #installLock: Promise<void> = Promise.resolve();
  /** Every table reader this set opened and has not closed yet. */
  readonly #readers = new Set<TableReader>();
  /** Obsolete tables being deleted: close waits for them. */
  readonly #deletions = new Set<Promise<void>>();
  #closed = false;
  /** Per level, the largest key last compacted out of it: where the next size compaction starts. */
  readonly pointers: (Uint8Array | undefined)[] = [];

  private constructor(fs: FileSystem, dir: string, cache: BlockCache, current: CurrentManifest) {
    this.#fs = fs;
    this.#dir = dir;
    this.#cache = cache;
    const state = current.state;
    while (state.levels.length < LEVELS) state.levels.push([]);
    this.#state = state;
    this.#manifestNumber = current.number;
    this.#nextFileNumber = state.nextFileNumber;
    this.#live = new Set(state.levels.flat().map((t) => t.fileNumber));
  }

  /**
   * Opens the table set `current` describes: removes what interrupted work left in `dir`
   * (tables no manifest names, older manifests, temp files) unless `readOnly`, then opens every
   * live table. A table the manifest names that is missing is a `CorruptionError` naming it.
   */
  static async open(fs: FileSystem, dir: string, cache: BlockCache, current: CurrentManifest, readOnly: boolean): Promise<VersionSet> {
    const set = new VersionSet(fs, dir, cache, current);
    const names = await ioStep('readdir', dir, () => fs.readdir(dir));
    let removed = false;
    for (const name of names) {
      const parsed = parseFileName(name);
      const table = parsed?.type === 'table' ? parsed.number : undefined;
      const stale =
        (table !== undefined && !set.#live.has(table)) ||
        (parsed?.type === 'manifest' && parsed.number !== current.number) ||
        parsed?.type === 'currentTmp' ||
        parsed?.type === 'optionsTmp' ||
        parsed?.type === 'slotsTmp';
      // A read-only open leaves them: they may be a live writer's work in progress.
      if (stale && !readOnly) {
        await ioStep('unlink', path.join(dir, name), () => fs.unlink(path.join(dir, name)));
        removed = true;
      }
      if (table !== undefined && table >= set.#nextFileNumber) set.#nextFileNumber = table + 1;
    }
    if (removed) await ioStep('syncDir', dir, () => fs.syncDir(dir));

    const levels: LiveTable[][] = [];
    try {
      for (const metas of set.#state.levels) {
        const level: LiveTable[] = [];
        for (const meta of metas) {
          const file = path.join(dir, tableFileName(meta.fileNumber));
          const reader = await set.#openReader(file, meta.fileNumber).catch((err: unknown) => {
            if (errnoOf(err) === 'ENOENT' || errnoOf((err as { cause?: unknown }).cause) === 'ENOENT') {
              throw new CorruptionError('the manifest names a table that is missing', { file, offset: 0 });
            }
            throw err;
          });
          level.push({ meta, reader, refs: 0 });
        }
        levels.push(level);
      }
    } catch (err) {
      await set.close();
      throw err;
    }
    set.#current = new Version(levels, set.#onObsolete).pin();
    return set;
  }

  /** The live version. Pin it to keep its tables past the next install. */
  get current(): Version {
    return this.#current;
  }

  /** The durable state the current manifest records. */
  get state(): Readonly<ManifestState> {
    return this.#state;
  }

  /** Allocates a table file number. */
  readonly newFileNumber = (): number => this.#nextFileNumber++;

  /**
   * Readers for tables a flush or compaction wrote, after making their directory entries durable
   * (a manifest must never name a file the directory could lose).
   */
  async openTables(written: readonly WrittenTable[]): Promise<LiveTable[]> {
    if (written.length > 0) await ioStep('syncDir', this.#dir, () => this.#fs.syncDir(this.#dir));
    const out: LiveTable[] = [];
    try {
      for (const w of written) out.push({ meta: w.meta, reader: await this.#openReader(w.path, w.meta.fileNumber), refs: 0 });
    } catch (err) {
      await this.closeTables(out);
      throw err;
    }
    return out;
  }

  /** Closes the readers of tables that will not be installed (their files go at the next open). */
  async closeTables(tables: readonly LiveTable[]): Promise<void> {
    for (const t of tables) await this.#closeReader(t.reader);
  }

  /**
   * Applies `edit` to the current version: the manifest recording the result is durable before
   * the new version is live. If the install fails, the added tables' readers are closed.
   */
  install(edit: VersionEdit): Promise<void> {
    const run = this.#installLock.then(async () => {
      const levels = applyEdit(this.#current.levels, edit);
      const state: ManifestState = {
        ...this.#state,
        ...(edit.lastSeq === undefined ? {} : { lastSeq: Math.max(this.#state.lastSeq, edit.lastSeq) }),
        ...(edit.flushedThrough === undefined ? {} : { flushedThrough: edit.flushedThrough }),
        nextFileNumber: this.#nextFileNumber,
        levels: levels.map((level) => level.map((t) => t.meta)),
      };
      await installManifest(this.#fs, this.#dir, this.#manifestNumber + 1, state, this.#manifestNumber);
      this.#manifestNumber++;
      this.#state = state;
      this.#live = new Set(state.levels.flat().map((t) => t.fileNumber));
      const old = this.#current;
      this.#current = new Version(levels, this.#onObsolete).pin();
      old.unpin();
    });
    this.#installLock = run.catch(() => undefined);
    return run.catch(async (err: unknown) => {
      await this.closeTables(edit.added.map((a) => a.table));
      throw err;
    });
  }

  /** Closes every reader (also those of versions something still pins) and waits for deletions. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const r of [...this.#readers]) await this.#closeReader(r);
    await Promise.all([...this.#deletions]);
  }

  async #openReader(file: string, fileNumber: number): Promise<TableReader> {
    const reader = await TableReader.open(this.#fs, file, { cache: this.#cache, fileNumber });
    this.#readers.add(reader);
    return reader;
  }

  async #closeReader(reader: TableReader): Promise<void> {
    this.#readers.delete(reader);
    await reader.close().catch(() => undefined);
  }

  /** A table no version holds any more: delete it unless the manifest still names it. */
  readonly #onObsolete = (t: LiveTable): void => {
    if (this.#live.has(t.meta.fileNumber) || this.#closed) return;
    const deletion = this.#closeReader(t.reader)
      .then(() => this.#fs.unlink(t.reader.path))
      .catch(() => undefined) // a file left behind is deleted at the next open
      .finally(() => this.#deletions.delete(deletion));
    this.#deletions.add(deletion);
  };
}
