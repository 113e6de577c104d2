/**
 * Repair (after LevelDB's `RepairDB`): brings a DB with damaged tables, or a damaged manifest,
 * back to a state that opens and takes writes, keeps every entry that can still be read, moves
 * the damaged files into `quarantine/` and reports exactly what was lost.
 *
 * Why it is needed: a damaged data block makes the reads that reach it throw `CorruptionError`,
 * and the first compaction that reads it fails, which stops all writes for good (and reopening
 * just brings the same compaction back). A damaged filter, properties or index block, a table
 * cut short, a missing table or a damaged manifest make `DB.open` itself refuse the directory.
 *
 * What it does. {@link repairDB} takes the directory's lock (so it never runs beside an open DB:
 * `LockedError` then) and reads `CURRENT` and the manifest. Then:
 *
 * - **Manifest readable.** Every table it names is checked whole ({@link checkTable}): footer,
 *   index, filter, properties and every data block's checksum and decode, each block's keys
 *   against its index bounds, the properties against the data, every key against the bloom
 *   filter, the key range against the manifest's. A table that passes stays as it is. A damaged
 *   table's readable entries (tombstones, sequence numbers and expiries as they were) are
 *   rewritten into a new table through the normal {@link TableSink} / `TableWriter` path, which
 *   takes its place at the same level and position (its key range is a subset of the old one, so
 *   the sorted, non-overlapping levels stay so); the damaged file goes to `quarantine/`. A table
 *   the manifest names but the directory lacks is dropped from the manifest. The new manifest
 *   keeps `flushedThrough` and `lastSeq` and advances `nextFileNumber` past the new tables (and
 *   past every table file in the directory, so no leftover's number is reused).
 * - **Manifest damaged or missing** (`CURRENT` damaged or absent while tables or a WAL exist, the
 *   manifest it names missing or failing its checks): the manifest is rebuilt from the table
 *   files, as LevelDB does. Every `NNNNNN.sst` in the directory is checked as above; each
 *   table's own properties give its key and sequence range. Tables whose key ranges overlap are
 *   merged into new tables keeping, for each key, the entry with the highest sequence number
 *   (levels, and so which table shadows which, are not known any more; the sequence numbers
 *   say it); a table that overlaps no other is kept as it is. All go to L1, sorted and
 *   disjoint. `lastSeq` is the highest sequence number found, `flushedThrough` is unknown and set
 *   to none, so the next open replays every WAL record still on disk: replaying records whose
 *   effect is already in the tables is harmless (they are applied again in WAL order, with new
 *   sequence numbers above every table's). The damaged `CURRENT` and every `MANIFEST-*` go to
 *   `quarantine/` too. Caveat: without a manifest, a table left behind by an interrupted flush or
 *   compaction (which open would have deleted) cannot be told from a live one; its entries are
 *   merged by sequence number like the others, which is right for every key except one whose
 *   tombstone a finished compaction had already dropped while an obsolete input holding an older
 *   value was not yet deleted.
 *
 * What is not repairable: entries in a data block that fails its checks (the index still gives
 * the block's key bounds, which are reported); every entry of a table whose footer or index is
 * unreadable, a truncated table included (the footer is the last thing written, and without the
 * index nothing locates the blocks), reported with the manifest's key range for that table; a
 * missing table; in a manifest rebuild, a table whose properties are unreadable too has no known
 * key range (`lostRangeUnknown`). Within a lost range, a key whose newest version was lost reads
 * as whatever older version the remaining tables hold (or absent): possibly an older value, or a
 * value that a lost tombstone had deleted, exactly as after LevelDB's repair. Never bytes that
 * were not written. The WAL is not touched: damage there is for `recovery: 'salvage'`. An I/O
 * error (as opposed to damage) aborts the repair before the new manifest is installed, changing
 * nothing the DB uses.
 *
 * Crash safety: the order of the steps. `DB.open` deletes every table file the manifest does not
 * name, so a damaged table that is merely dropped from the manifest would be deleted by the next
 * open, losing the evidence; and a damaged table moved away before the manifest stops naming it
 * makes that (still current) manifest name a missing table, which open refuses. No single rename
 * is safe on both sides of the switch of `CURRENT`, so the evidence is copied first:
 * 1. the rewritten tables are written and fdatasynced, then the directory is fsynced;
 * 2. each damaged file is copied into `quarantine/` (to a `.tmp` name, fdatasynced, renamed to
 *    its final name, `quarantine/` fsynced): a complete copy exists before anything refers to
 *    the new state;
 * 3. the new manifest is installed (written, fdatasynced, `CURRENT` switched, directory fsynced);
 * 4. each damaged file is renamed over its copy (so the quarantined file is the original, and no
 *    damaged file is ever deleted), both directories fsynced; in a rebuild, the healthy tables
 *    that were merged into new ones are deleted (their entries are in the new tables).
 * A crash before 3 leaves the old manifest: the DB opens (or fails) exactly as before the
 * repair, the new tables are leftovers that open deletes, and the repair can simply be run
 * again. A crash after 3 leaves the repaired DB; a damaged original still in the directory is a
 * leftover that open deletes, its copy being already safe in `quarantine/`. Steps after 3 are
 * best effort: a failure there is listed in `cleanupErrors` instead of losing the report.
 *
 * Quarantined files are named `<time>-<random>-<original name>`, never overwriting anything.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { compareKeys, type Entry } from '../entry.js';
import { CorruptionError, InvalidConfigError, errnoOf, ioStep } from '../errors.js';
import { claimDirectory } from '../fs/durable-dir.js';
import { nodeFileSystem } from '../fs/node.js';
import { fileSystemProblem, type FileHandle, type FileSystem } from '../fs/types.js';
import { checkTable, TableInspector, type DataBlockInfo, type TableCheck } from '../sstable/table-check.js';
import { parseSegmentFileName } from '../wal/format.js';
import { CURRENT_FILE, QUARANTINE_DIR, WAL_DIR, fileNumbers, manifestFileName, quarantinedFileName, tableFileName } from './filenames.js';
import { installManifest, readCurrentManifest, type ManifestState, type TableMeta } from './manifest.js';
import { TableSink, type WrittenTable } from './table-sink.js';
import { LEVELS } from './version.js';

/** Options of {@link repairDB}. */
export interface RepairOptions {
  /** The file system (default: the real one). */
  fs?: FileSystem;
  /** Compression of rewritten tables when the damaged table's own setting is unreadable. Default `'lz4'`. */
  compression?: 'lz4' | 'none';
}

/** A range of keys, bounds included, as raw key bytes (a string key as its UTF-8). */
export interface KeyRange {
  smallest: Uint8Array;
  largest: Uint8Array;
}

/** A table found damaged. */
export interface DamagedTable {
  /** The table's path, as it was in the DB directory. */
  file: string;
  fileNumber: number;
  /** Its level in the manifest; `null` in a manifest rebuild. */
  level: number | null;
  /** The first damage found (the `CorruptionError`'s message). */
  reason: string;
  /** Every damage found, one message each. */
  errors: string[];
  /**
   * The key ranges whose entries could not be read: each unreadable data block's bounds from the
   * index (adjacent blocks merged), or the whole table's range when the index is unreadable.
   * Empty when only metadata (filter, properties) was damaged: then every entry was recovered.
   */
  lostRanges: KeyRange[];
  /** True when keys were lost but their range is unknown (manifest rebuild, index and properties unreadable). */
  lostRangeUnknown: boolean;
  /** Data blocks lost, when known. */
  blocksLost: number | undefined;
  /** Entries read back and rewritten. */
  entriesRecovered: number;
  /** Entries lost, when the manifest or the table's properties say how many it held. */
  entriesLost: number | undefined;
  /** Where it is now. */
  quarantinedAs: string;
}

/** A table the manifest names but the directory lacks. */
export interface MissingTable {
  file: string;
  fileNumber: number;
  level: number;
  /** The table's key range, from the manifest. */
  lostRanges: KeyRange[];
  /** Entries it held, from the manifest. */
  entriesLost: number;
}

/** What {@link repairDB} found and did. */
export interface RepairReport {
  dir: string;
  /** Tables checked (those the manifest names, or every table file in a rebuild). */
  tablesChecked: number;
  tablesDamaged: DamagedTable[];
  tablesMissing: MissingTable[];
  /** Entries recovered from damaged tables, in all. */
  entriesRecovered: number;
  /** True when the manifest was rebuilt from the table files. */
  manifestRebuilt: boolean;
  /** Why the manifest could not be used, when it was rebuilt. */
  manifestError: string | undefined;
  /** Tables written by the repair. */
  tablesWritten: string[];
  /** Everything moved into `quarantine/`, as its new path. */
  quarantined: string[];
  /** True when the repair installed a new manifest; false when there was nothing to repair. */
  changed: boolean;
  /** Failures of the best-effort steps after the new manifest was installed (see the module comment). */
  cleanupErrors: string[];
}

/** Size of the tables a manifest rebuild writes: the DB's default `tableFileSize`. */
const REBUILD_TABLE_SIZE = 4 * 1024 * 1024;
const COPY_CHUNK = 1024 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * Repairs the DB in `dir`; see the module comment. Rejects with `LockedError` if a DB (or
 * another repair) holds the directory, `IoError` if the OS fails (the DB is then as it was, or
 * repaired if the failure came after the switch), `TypeError` for a bad argument,
 * `InvalidConfigError` for a bad or unknown option.
 */
export async function repairDB(dir: string, options: RepairOptions = {}): Promise<RepairReport> {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('repairDB takes a directory path');
  const { fs, compression } = resolveRepairOptions(options);
  // Repairing a directory that does not exist would create an empty one: refuse.
  await ioStep('stat', dir, () => fs.stat(dir));
  const lock = await claimDirectory(fs, dir);
  try {
    return await new Repair(fs, dir, compression).run();
  } finally {
    await lock.release().catch(() => undefined);
  }
}

const REPAIR_OPTIONS: ReadonlySet<string> = new Set<keyof RepairOptions>(['fs', 'compression']);

/**
 * Checks {@link RepairOptions} as `DB.open` checks its own, before anything touches the disk: a
 * misspelt name, an `fs` that is not a FileSystem or an unknown compression is an
 * `InvalidConfigError` naming the option.
 */
function resolveRepairOptions(options: unknown): { fs: FileSystem; compression: 'lz4' | 'none' } {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new TypeError('options must be an object');
  const o = options as Record<string, unknown>;
  for (const name of Object.keys(o)) {
    if (!REPAIR_OPTIONS.has(name))
      throw new InvalidConfigError(name, `is not an option of DB.repair (known: ${[...REPAIR_OPTIONS].join(', ')})`);
  }
  const fsProblem = o.fs === undefined ? undefined : fileSystemProblem(o.fs);
  if (fsProblem) throw new InvalidConfigError('fs', fsProblem);
  const compression = o.compression ?? 'lz4';
  if (compression !== 'lz4' && compression !== 'none')
    throw new InvalidConfigError('compression', `must be 'lz4' or 'none', got ${String(compression)}`);
  return { fs: (o.fs as FileSystem | undefined) ?? nodeFileSystem, compression };
}

/** A damaged file to quarantine: copied before the switch, renamed over its copy after. */
interface Evidence {
  file: string;
  target: string;
  /** Rename the original over the copy after the switch (false for CURRENT, which the switch replaces). */
  move: boolean;
}

/** The key just above `k` in bytewise order: `k` followed by a zero byte. */
function successor(k: Uint8Array): Uint8Array {
  const out = new Uint8Array(k.length + 1);
  out.set(k);
  return out;
}

const minKey = (a: Uint8Array, b: Uint8Array): Uint8Array => (compareKeys(a, b) <= 0 ? a : b);
const maxKey = (a: Uint8Array, b: Uint8Array): Uint8Array => (compareKeys(a, b) >= 0 ? a : b);
const inRange = (k: Uint8Array, r: KeyRange): boolean => compareKeys(k, r.smallest) >= 0 && compareKeys(k, r.largest) <= 0;
const copyKey = (k: Uint8Array): Uint8Array => new Uint8Array(k);

/**
 * The key ranges of the damaged blocks, clamped to `range` (the table's known range, if any);
 * blocks that follow each other merge into one range.
 */
function blockRanges(blocks: readonly DataBlockInfo[], range: KeyRange | undefined): KeyRange[] {
  const out: KeyRange[] = [];
  let prevIndex = -2;
  for (const b of [...blocks].sort((x, y) => x.index - y.index)) {
    let smallest = b.after ? successor(b.after) : (range?.smallest ?? EMPTY);
    let largest = b.upTo;
    if (range) {
      smallest = maxKey(smallest, range.smallest);
      largest = minKey(largest, range.largest);
    }
    if (compareKeys(smallest, largest) > 0) continue;
    const last = out[out.length - 1];
    if (last && b.index === prevIndex + 1) last.largest = copyKey(largest);
    else out.push({ smallest: copyKey(smallest), largest: copyKey(largest) });
    prevIndex = b.index;
  }
  return out;
}

function isMissing(err: unknown): boolean {
  return errnoOf(err) === 'ENOENT' || errnoOf((err as { cause?: unknown } | null)?.cause) === 'ENOENT';
}

/** What a damaged table's check and rewrite found. */
interface Damage {
  check: TableCheck;
  /** Data blocks lost: those the check found plus any that failed when read again. */
  lostBlocks: DataBlockInfo[];
  errors: string[];
  recovered: number;
}

class Repair {
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #compression: 'lz4' | 'none';
  readonly #qdir: string;
  readonly #stamp = `${Date.now()}-${randomBytes(4).toString('hex')}`;
  #nextFileNumber = 1;
  readonly #written: WrittenTable[] = [];
  readonly #evidence: Evidence[] = [];
  readonly #report: RepairReport;

  constructor(fs: FileSystem, dir: string, compression: 'lz4' | 'none') {
    this.#fs = fs;
    this.#dir = dir;
    this.#compression = compression;
    this.#qdir = path.join(dir, QUARANTINE_DIR);
    this.#report = {
      dir,
      tablesChecked: 0,
      tablesDamaged: [],
      tablesMissing: [],
      entriesRecovered: 0,
      manifestRebuilt: false,
      manifestError: undefined,
      tablesWritten: [],
      quarantined: [],
      changed: false,
      cleanupErrors: [],
    };
  }

  async run(): Promise<RepairReport> {
    const fs = this.#fs;
    const dir = this.#dir;
    const names = await ioStep('readdir', dir, () => fs.readdir(dir));
    const tables = fileNumbers(names, 'table').sort((a, b) => a - b);
    const manifests = fileNumbers(names, 'manifest');
    this.#nextFileNumber = Math.max(1, ...tables.map((n) => n + 1));

    let current: Awaited<ReturnType<typeof readCurrentManifest>>;
    let manifestError: string | undefined;
    try {
      current = await readCurrentManifest(fs, dir);
      if (!current) {
        const walNames = names.includes(WAL_DIR)
          ? await ioStep('readdir', path.join(dir, WAL_DIR), () => fs.readdir(path.join(dir, WAL_DIR)))
          : [];
        // No CURRENT and nothing stored: a new or empty directory, nothing to repair.
        if (tables.length === 0 && !walNames.some((n) => parseSegmentFileName(n) !== undefined)) return this.#report;
        manifestError = 'CURRENT is missing but the directory holds tables or a WAL';
      }
    } catch (err) {
      if (!(err instanceof CorruptionError)) throw err;
      manifestError = err.message;
    }

    try {
      if (current) return await this.#repairTables(current.number, current.state, manifests);
      this.#report.manifestRebuilt = true;
      this.#report.manifestError = manifestError;
      return await this.#rebuild(tables, manifests, names.includes(CURRENT_FILE));
    } catch (err) {
      if (!this.#report.changed) await this.#discardWritten();
      throw err;
    }
  }

  #newFileNumber = (): number => this.#nextFileNumber++;

  #sink(compression: 'lz4' | 'none', maxFileSize: number): TableSink {
    return new TableSink({ fs: this.#fs, dir: this.#dir, compression, newFileNumber: this.#newFileNumber }, maxFileSize);
  }

  #quarantineTarget(name: string): string {
    return path.join(this.#qdir, quarantinedFileName(this.#stamp, name));
  }

  // -- manifest readable ---------------------------------------------------------------------

  async #repairTables(manifestNumber: number, state: ManifestState, manifests: number[]): Promise<RepairReport> {
    const report = this.#report;
    const levels = state.levels.map((level) => [...level]);
    while (levels.length < LEVELS) levels.push([]);
    this.#nextFileNumber = Math.max(this.#nextFileNumber, state.nextFileNumber);

    for (let l = 0; l < levels.length; l++) {
      const out: TableMeta[] = [];
      for (const meta of levels[l]!) {
        report.tablesChecked++;
        const file = path.join(this.#dir, tableFileName(meta.fileNumber));
        const range: KeyRange = { smallest: meta.smallest, largest: meta.largest };
        let check: TableCheck;
        try {
          check = await checkTable(this.#fs, file);
        } catch (err) {
          if (!isMissing(err)) throw err;
          report.tablesMissing.push({
            file,
            fileNumber: meta.fileNumber,
            level: l,
            lostRanges: [{ smallest: copyKey(range.smallest), largest: copyKey(range.largest) }],
            entriesLost: meta.entries,
          });
          continue;
        }
        const p = check.properties;
        const rangeErrors: string[] = [];
        if (p && p.entryCount > 0 && (compareKeys(p.smallestKey!, meta.smallest) !== 0 || compareKeys(p.largestKey!, meta.largest) !== 0)) {
          rangeErrors.push(`corruption in ${file}: the table's key range disagrees with the manifest's`);
        }
        if (check.ok && rangeErrors.length === 0) {
          out.push(meta);
          continue;
        }
        const damage = await this.#rewrite(check, range, p?.compression ?? this.#compression, Infinity);
        damage.errors.push(...rangeErrors);
        const written = damage.written;
        if (written) out.push(written.meta);
        this.#recordDamage(file, meta.fileNumber, l, damage, range, meta.entries);
      }
      levels[l] = out;
    }
    if (report.tablesDamaged.length === 0 && report.tablesMissing.length === 0) return report;

    const next: ManifestState = {
      nextFileNumber: this.#nextFileNumber,
      lastSeq: state.lastSeq,
      flushedThrough: state.flushedThrough,
      levels,
    };
    await this.#commit(next, Math.max(manifestNumber, ...manifests) + 1, manifestNumber, []);
    return report;
  }

  /**
   * Rewrites the readable entries of a damaged table (those within `range`, if given) into new
   * tables of at most `maxFileSize` bytes.
   */
  async #rewrite(
    check: TableCheck,
    range: KeyRange | undefined,
    compression: 'lz4' | 'none',
    maxFileSize: number,
  ): Promise<Damage & { written: WrittenTable | undefined }> {
    const damage: Damage = {
      check,
      lostBlocks: check.damagedBlocks.map((d) => d.block),
      errors: [check.structureError, ...check.damagedBlocks.map((d) => d.error), ...check.metaErrors]
        .filter((e) => e !== undefined)
        .map((e) => e.message),
      recovered: 0,
    };
    const sink = this.#sink(compression, maxFileSize);
    let written: WrittenTable[];
    let kept = 0;
    try {
      for await (const e of this.#readable(check, damage)) {
        // Entries outside the manifest's range for the table (only in a table that disagrees
        // with its manifest) would break the level's order: they are not kept.
        if (range && !inRange(e.key, range)) continue;
        await sink.add(e);
        kept++;
      }
      written = await sink.finish();
      damage.recovered = kept;
    } catch (err) {
      await sink.abort();
      throw err;
    }
    this.#written.push(...written);
    return { ...damage, written: written[0] };
  }

  /**
   * The entries of the blocks `check` found readable, read again; a block that fails this time
   * joins `damage.lostBlocks`. Counts `damage.recovered`.
   */
  async *#readable(check: TableCheck, damage: Damage): AsyncGenerator<Entry> {
    if (check.structureError) return;
    const t = await TableInspector.open(this.#fs, check.path);
    try {
      const skip = new Set(check.damagedBlocks.map((d) => d.block.index));
      for (let i = 0; i < t.blockCount; i++) {
        if (skip.has(i)) continue;
        let entries: Entry[];
        try {
          entries = await t.readBlock(i);
        } catch (err) {
          if (!(err instanceof CorruptionError)) throw err;
          damage.lostBlocks.push(t.block(i));
          damage.errors.push(err.message);
          continue;
        }
        damage.recovered += entries.length;
        yield* entries;
      }
    } finally {
      await t.close().catch(() => undefined);
    }
  }

  #recordDamage(
    file: string,
    fileNumber: number,
    level: number | null,
    damage: Damage,
    range: KeyRange | undefined,
    entries: number | undefined,
  ): void {
    const { check } = damage;
    let lostRanges: KeyRange[];
    let lostRangeUnknown = false;
    let blocksLost: number | undefined = damage.lostBlocks.length;
    if (check.structureError) {
      blocksLost = check.properties?.dataBlockCount;
      lostRanges = range ? [{ smallest: copyKey(range.smallest), largest: copyKey(range.largest) }] : [];
      lostRangeUnknown = !range;
    } else {
      lostRanges = blockRanges(damage.lostBlocks, range);
    }
    const target = this.#quarantineTarget(path.basename(file));
    this.#evidence.push({ file, target, move: true });
    this.#report.tablesDamaged.push({
      file,
      fileNumber,
      level,
      reason: damage.errors[0] ?? 'damaged',
      errors: damage.errors,
      lostRanges,
      lostRangeUnknown,
      blocksLost,
      entriesRecovered: damage.recovered,
      entriesLost: entries === undefined ? undefined : Math.max(0, entries - damage.recovered),
      quarantinedAs: target,
    });
    this.#report.entriesRecovered += damage.recovered;
  }

  // -- manifest rebuild ----------------------------------------------------------------------

  async #rebuild(tables: number[], manifests: number[], hasCurrent: boolean): Promise<RepairReport> {
    const report = this.#report;
    interface Candidate {
      fileNumber: number;
      file: string;
      check: TableCheck;
      /** Key range of the entries it can give. */
      range: KeyRange | undefined;
      damage: Damage | undefined;
    }
    const candidates: Candidate[] = [];
    for (const n of tables) {
      report.tablesChecked++;
      const file = path.join(this.#dir, tableFileName(n));
      const check = await checkTable(this.#fs, file);
      const range = check.readableRange;
      candidates.push({ fileNumber: n, file, check, range, damage: undefined });
    }

    // Group tables whose ranges overlap; each group becomes one run of disjoint tables.
    const usable = candidates.filter((c) => c.range !== undefined).sort((a, b) => compareKeys(a.range!.smallest, b.range!.smallest));
    const groups: Candidate[][] = [];
    let groupLargest: Uint8Array | undefined;
    for (const c of usable) {
      if (groupLargest && compareKeys(c.range!.smallest, groupLargest) <= 0) {
        groups[groups.length - 1]!.push(c);
        groupLargest = maxKey(groupLargest, c.range!.largest);
      } else {
        groups.push([c]);
        groupLargest = c.range!.largest;
      }
    }

    const metas: TableMeta[] = [];
    const mergedAway: string[] = [];
    for (const group of groups) {
      const only = group[0]!;
      if (group.length === 1 && only.check.ok) {
        const p = only.check.properties!;
        metas.push({
          fileNumber: only.fileNumber,
          size: only.check.fileSize,
          smallest: p.smallestKey!,
          largest: p.largestKey!,
          minSeq: p.minSeq,
          maxSeq: p.maxSeq,
          entries: p.entryCount,
        });
        continue;
      }
      const written = await this.#mergeGroup(group);
      metas.push(...written.map((w) => w.meta));
      for (const c of group) if (c.check.ok) mergedAway.push(c.file);
    }
    // A healthy table without entries holds nothing: drop it with the merged ones.
    for (const c of candidates) if (c.check.ok && c.range === undefined) mergedAway.push(c.file);

    for (const c of candidates) {
      if (c.check.ok) continue;
      const damage = c.damage ?? {
        check: c.check,
        lostBlocks: c.check.damagedBlocks.map((d) => d.block),
        errors: [c.check.structureError, ...c.check.damagedBlocks.map((d) => d.error), ...c.check.metaErrors]
          .filter((e) => e !== undefined)
          .map((e) => e.message),
        recovered: 0,
      };
      const p = c.check.properties;
      const range = p && p.entryCount > 0 ? { smallest: p.smallestKey!, largest: p.largestKey! } : undefined;
      this.#recordDamage(c.file, c.fileNumber, null, damage, range, p?.entryCount);
    }
    if (hasCurrent)
      this.#evidence.push({ file: path.join(this.#dir, CURRENT_FILE), target: this.#quarantineTarget(CURRENT_FILE), move: false });
    for (const m of manifests.sort((a, b) => a - b)) {
      const name = manifestFileName(m);
      this.#evidence.push({ file: path.join(this.#dir, name), target: this.#quarantineTarget(name), move: true });
    }

    metas.sort((a, b) => compareKeys(a.smallest, b.smallest));
    const levels: TableMeta[][] = Array.from({ length: LEVELS }, () => []);
    levels[1] = metas;
    const next: ManifestState = {
      nextFileNumber: this.#nextFileNumber,
      lastSeq: metas.reduce((s, t) => Math.max(s, t.maxSeq), 0),
      flushedThrough: null,
      levels,
    };
    await this.#commit(next, Math.max(0, ...manifests) + 1, undefined, mergedAway);
    return report;
  }

  /**
   * Merges overlapping tables into new disjoint tables: for each key, the entry with the highest
   * sequence number (on a tie, the one from the table with the higher file number).
   */
  async #mergeGroup(group: { fileNumber: number; check: TableCheck; damage: Damage | undefined }[]): Promise<WrittenTable[]> {
    interface Source {
      it: AsyncGenerator<Entry>;
      cur: Entry | undefined;
      fileNumber: number;
    }
    const sources: Source[] = [];
    const sink = this.#sink(this.#compression, REBUILD_TABLE_SIZE);
    let written: WrittenTable[];
    try {
      for (const c of group) {
        const damage: Damage = {
          check: c.check,
          lostBlocks: c.check.damagedBlocks.map((d) => d.block),
          errors: [c.check.structureError, ...c.check.damagedBlocks.map((d) => d.error), ...c.check.metaErrors]
            .filter((e) => e !== undefined)
            .map((e) => e.message),
          recovered: 0,
        };
        if (!c.check.ok) c.damage = damage;
        const it = this.#readable(c.check, damage);
        const first = await it.next();
        sources.push({ it, cur: first.done ? undefined : first.value, fileNumber: c.fileNumber });
      }
      for (;;) {
        let best: Source | undefined;
        for (const s of sources) {
          const e = s.cur;
          if (!e) continue;
          if (!best) {
            best = s;
            continue;
          }
          const c = compareKeys(e.key, best.cur!.key);
          if (c < 0 || (c === 0 && (e.seq > best.cur!.seq || (e.seq === best.cur!.seq && s.fileNumber > best.fileNumber)))) best = s;
        }
        if (!best) break;
        const winner = best.cur!;
        await sink.add(winner);
        for (const s of sources) {
          if (s.cur && compareKeys(s.cur.key, winner.key) === 0) {
            const r = await s.it.next();
            s.cur = r.done ? undefined : r.value;
          }
        }
      }
      written = await sink.finish();
    } catch (err) {
      await sink.abort();
      throw err;
    } finally {
      for (const s of sources) await s.it.return(undefined).catch(() => undefined);
    }
    this.#written.push(...written);
    return written;
  }

  // -- the switch ------------------------------------------------------------------------------

  /**
   * Steps 1-4 of the module comment: new tables durable, evidence copied, manifest installed,
   * originals renamed over their copies, `remove` deleted.
   */
  async #commit(state: ManifestState, manifestNumber: number, previous: number | undefined, remove: string[]): Promise<void> {
    const fs = this.#fs;
    const dir = this.#dir;
    const report = this.#report;
    // 1. The new tables are fdatasynced by their writers; their directory entries now.
    if (this.#written.length > 0) await ioStep('syncDir', dir, () => fs.syncDir(dir));
    // 2. A durable copy of each damaged file.
    if (this.#evidence.length > 0) {
      await ioStep('mkdir', this.#qdir, () => fs.mkdir(this.#qdir));
      await ioStep('syncDir', dir, () => fs.syncDir(dir));
      for (const ev of this.#evidence) await this.#copy(ev.file, ev.target);
      await ioStep('syncDir', this.#qdir, () => fs.syncDir(this.#qdir));
    }
    // 3. The switch.
    report.tablesWritten = this.#written.map((w) => w.path);
    report.quarantined = this.#evidence.map((ev) => ev.target);
    try {
      await installManifest(fs, dir, manifestNumber, state, previous);
    } catch (err) {
      // CURRENT may or may not have switched: nothing may be removed now.
      report.changed = true;
      throw err;
    }
    report.changed = true;
    // 4. Best effort from here on: the repaired state is in place.
    const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        report.cleanupErrors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    for (const ev of this.#evidence) {
      if (ev.move) await attempt(`moving ${ev.file} into quarantine`, () => fs.rename(ev.file, ev.target));
    }
    for (const file of remove) await attempt(`deleting ${file}`, () => fs.unlink(file));
    if (this.#evidence.length > 0) await attempt(`syncing ${this.#qdir}`, () => fs.syncDir(this.#qdir));
    await attempt(`syncing ${dir}`, () => fs.syncDir(dir));
  }

  /** Copies `from` to `to` durably: through `to.tmp`, fdatasynced, then renamed (the directory sync is the caller's). */
  async #copy(from: string, to: string): Promise<void> {
    const fs = this.#fs;
    const tmp = `${to}.tmp`;
    const src = await ioStep('open', from, () => fs.open(from, 'read'));
    try {
      const dst = await ioStep('open', tmp, () => fs.open(tmp, 'create'));
      try {
        const buf = Buffer.allocUnsafe(COPY_CHUNK);
        for (let pos = 0; ; ) {
          const n = await ioStep('read', from, () => src.read(buf, 0, COPY_CHUNK, pos));
          if (n === 0) break;
          await ioStep('write', tmp, () => writeFully(dst, buf.subarray(0, n), pos));
          pos += n;
        }
        await ioStep('datasync', tmp, () => dst.datasync());
      } finally {
        await dst.close().catch(() => undefined);
      }
    } finally {
      await src.close().catch(() => undefined);
    }
    await ioStep('rename', tmp, () => fs.rename(tmp, to));
  }

  /** Removes the tables written so far (a repair that failed before its switch). */
  async #discardWritten(): Promise<void> {
    for (const w of this.#written) await this.#fs.unlink(w.path).catch(() => undefined);
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const n = await handle.write(bytes, done, bytes.length - done, position + done);
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += n;
  }
}
