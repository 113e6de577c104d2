/**
 * `sediment verify <dir> [--json]`: checks every checksum of every file of a closed DB without
 * changing a byte of it, and names each damaged file and offset.
 *
 * The lock: verify takes the directory's lock for as long as it runs, so that no writer opens the
 * DB and changes files under it, and so that it can tell a DB held open by a live process
 * (LOCKED, exit 3) from a closed one. Taking the lock creates a `LOCK-<id>.sock` socket file,
 * removed on release (a `LOCK` file off Linux); no data file is opened for writing. A read-only
 * handle holds no lock: verify runs beside one.
 *
 * What it checks, in order (each finding names its file and the offset of the first bad byte):
 * 1. `OPTIONS`: header, checksum, fields (`readOptionsFile`). Missing while `CURRENT` exists is
 *    a DB made by sediment 0.1.0: a note, not damage.
 * 2. `CURRENT` and the manifest it names: `CURRENT`'s checksum, the manifest's magic, version,
 *    length and checksum (`readCurrentManifest`), then the table set it describes: no file
 *    named twice, each key and sequence range in order, levels 1 and deeper sorted and disjoint,
 *    every file number below `nextFileNumber`, every sequence number at most `lastSeq`.
 * 3. Every table the manifest names, block by block (`checkTable`): footer, index, filter and
 *    properties blocks, every data block's checksum, decompression and decode, keys against the
 *    index bounds, properties against the data, every key against the bloom filter; then the
 *    file's size, entry count, key range and sequence range against the manifest. A missing
 *    table is damage. With the manifest unreadable, every table file in the directory is checked.
 * 4. The WAL (`wal/`): the state file `SEGMENTS`, each of its two slots (a slot failing its
 *    checks is damage, even though the other slot keeps the log readable); that every segment
 *    the state file says the log must have is there (from the floor, or the manifest's flushed
 *    position, up to the newest), none lies in a range a salvage gave up, none is newer than the
 *    state file records; and every segment, frame by frame with the WAL's own scanner (segment
 *    header, both checksums of every frame, each record's structure and decompression, batch
 *    framing). What a crash leaves at the end of the newest segment (a torn record, an unfinished
 *    batch, zeros from preallocation), which the next open truncates, is a note, not damage; a
 *    checksum failure there, or anything in an older segment, is damage.
 * 5. When all of that passed: a read-only `DB.open` (no lock, nothing written), so that
 *    whatever the DB itself would refuse is reported too.
 *
 * Leftovers of interrupted work (tables and manifests no manifest names, `*.tmp` files, WAL
 * segments below the floor, which the next writable open deletes) are notes.
 *
 * Exit: 0 all intact, 1 damage found, 3 LOCKED, 4 verify could not run (no such directory, no
 * database in it, an I/O error).
 *
 * @module
 */
import * as path from 'node:path';
import { DB } from '../db/index.js';
import {
  CURRENT_FILE,
  CURRENT_TMP_FILE,
  OPTIONS_FILE,
  OPTIONS_TMP_FILE,
  WAL_DIR,
  fileNumbers,
  manifestFileName,
  tableFileName,
} from '../db/filenames.js';
import { MANIFEST_HEADER_SIZE, readCurrentManifest, readSmallFile, type ManifestState, type TableMeta } from '../db/manifest.js';
import { readOptionsFile, type PersistedOptions } from '../db/options-file.js';
import { resolveDBOptions } from '../db/options.js';
import { CorruptionError, IoError, errnoOf } from '../errors.js';
import { readFully } from '../fs/read.js';
import type { DirectoryLock } from '../fs/types.js';
import { checkTable, type TableCheck } from '../sstable/table-check.js';
import { FrameType, SEGMENT_HEADER_SIZE, parseSegmentFileName, segmentFileName } from '../wal/format.js';
import { checkSegmentHeader } from '../wal/frame.js';
import { decodeRecord, loadZstd } from '../wal/record.js';
import { MAX_WRITE_BYTES } from '../db/db.js';
import { checkWriteBatch } from '../db/write-batch.js';

/** The record limit a DB's WAL is opened with (see recovery.ts `walOptionsOf`). */
function dbWalRecordLimit(limits: { maxKeySize: number; maxValueSize: number }): number {
  return Math.max(MAX_WRITE_BYTES + 1, limits.maxKeySize + limits.maxValueSize + 64);
}
import { type DamageShape, classifyDamage, findValidFrame, isZeroRange, sequenceProblem } from '../wal/damage.js';
import { SegmentScanner } from '../wal/scanner.js';
import {
  STATE_FILE_NAME,
  STATE_TMP_FILE_NAME,
  decodeSlot,
  expectedRanges,
  inHole,
  readStateFile,
  type LoadedState,
  type SegmentState,
} from '../wal/segment-state.js';
import { CliError, EXIT, type Out, fs, progressBar, toJson, type Progress } from './common.js';

/** One thing verify found. */
export interface Finding {
  /** The file, relative to the DB directory. */
  file: string;
  /** Offset of the first bad byte, when the finding is about bytes. */
  offset?: number;
  message: string;
}

/** A file found intact. */
export interface Checked {
  file: string;
  what: string;
}

/** What verify reports. */
export interface VerifyReport {
  dir: string;
  ok: boolean;
  damaged: Finding[];
  notes: Finding[];
  checked: Checked[];
}

const CHUNK = 1 << 20;

/** Runs `sediment verify`; resolves to the exit code. */
export async function verifyCommand(dir: string, o: { json?: boolean }, out: Out): Promise<number> {
  const report = await verifyDirectory(dir);
  if (o.json) {
    await out.line(toJson(report, 2));
  } else {
    for (const c of report.checked) await out.line(`ok       ${c.file}  ${c.what}`);
    for (const n of report.notes) await out.line(`note     ${n.file}${at(n)}: ${n.message}`);
    for (const d of report.damaged) await out.line(`DAMAGED  ${d.file}${at(d)}: ${d.message}`);
    const files = [...new Set(report.damaged.map((d) => d.file))];
    await out.line(
      report.ok
        ? `intact: ${report.checked.length} files checked in ${dir}`
        : `DAMAGED: ${report.damaged.length} problem(s) in ${files.length} file(s) of ${dir}: ${files.join(', ')}`,
    );
  }
  return report.ok ? EXIT.OK : EXIT.NO;
}

function at(f: Finding): string {
  return f.offset === undefined ? '' : ` at offset ${f.offset}`;
}

/** Checks the DB in `dir` (see the module comment). Throws {@link CliError} when it cannot run. */
export async function verifyDirectory(dir: string): Promise<VerifyReport> {
  await loadZstd(); // zstd records are decoded below
  let isDir: boolean;
  try {
    isDir = (await fs.stat(dir)).isDirectory;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') throw new CliError(`no such directory: ${dir}`, EXIT.FAILED);
    throw new IoError('stat', dir, err);
  }
  if (!isDir) throw new CliError(`not a directory: ${dir}`, EXIT.FAILED);
  let lock: DirectoryLock;
  try {
    lock = await fs.lock(dir);
  } catch (err) {
    if (errnoOf(err) === 'ELOCKED') {
      throw new CliError(
        `LOCKED: ${dir} is held open by a live process (${(err as Error).message}); verify checks a closed database`,
        EXIT.LOCKED,
      );
    }
    throw new IoError('lock', dir, err);
  }
  try {
    return await new Verifier(dir).run();
  } finally {
    await lock.release();
  }
}

/** One segment's scan. */
interface SegmentScan {
  id: number;
  file: string;
  size: number;
  records: number;
  /** The first damage, if any. */
  damage: DamageShape | undefined;
}

class Verifier {
  readonly #dir: string;
  readonly #report: VerifyReport;
  #progress: Progress | undefined;
  /** Largest record payload the WAL accepts (from OPTIONS, else the defaults). */
  #maxRecordSize: number;

  constructor(dir: string) {
    this.#dir = dir;
    this.#report = { dir, ok: true, damaged: [], notes: [], checked: [] };
    const d = resolveDBOptions({});
    this.#maxRecordSize = dbWalRecordLimit(d);
  }

  #rel(file: string): string {
    return path.relative(this.#dir, file) || file;
  }

  #damage(file: string, offset: number | undefined, message: string): void {
    this.#report.ok = false;
    this.#report.damaged.push({ file: this.#rel(file), ...(offset === undefined ? {} : { offset }), message });
  }

  #corruption(err: CorruptionError, prefix = ''): void {
    this.#damage(err.file, err.offset, prefix + err.reason);
  }

  #note(file: string, offset: number | undefined, message: string): void {
    this.#report.notes.push({ file: this.#rel(file), ...(offset === undefined ? {} : { offset }), message });
  }

  #ok(file: string, what: string): void {
    this.#report.checked.push({ file: this.#rel(file), what });
  }

  async run(): Promise<VerifyReport> {
    const dir = this.#dir;
    const names = await fs.readdir(dir);
    const tables = fileNumbers(names, 'table');
    const manifests = fileNumbers(names, 'manifest');
    const looksLikeDB =
      names.includes(CURRENT_FILE) || names.includes(OPTIONS_FILE) || names.includes(WAL_DIR) || tables.length > 0 || manifests.length > 0;
    if (!looksLikeDB) throw new CliError(`no sediment database in ${dir} (no CURRENT, OPTIONS, manifest, table or wal/)`, EXIT.FAILED);

    const walDir = path.join(dir, WAL_DIR);
    const walNames = names.includes(WAL_DIR) ? await fs.readdir(walDir).catch(() => [] as string[]) : [];
    const segments = walNames
      .map(parseSegmentFileName)
      .filter((n): n is number => n !== undefined)
      .sort((a, b) => a - b);
    let total = 0;
    for (const n of tables) total += await sizeOf(path.join(dir, tableFileName(n)));
    for (const id of segments) total += await sizeOf(path.join(walDir, segmentFileName(id)));
    this.#progress = progressBar('verify', total, 'bytes');
    try {
      const options = await this.#checkOptions(names.includes(CURRENT_FILE));
      const current = await this.#checkManifest(manifests);
      await this.#checkTables(current?.state, tables);
      await this.#checkWal(
        walNames,
        segments,
        current?.state,
        options === undefined && names.includes(CURRENT_FILE),
        names.includes(WAL_DIR),
      );
      for (const leftover of [OPTIONS_TMP_FILE, CURRENT_TMP_FILE]) {
        if (names.includes(leftover))
          this.#note(path.join(dir, leftover), undefined, 'a leftover of an interrupted write; the next writable open deletes it');
      }
      if (this.#report.ok) await this.#checkOpen(options);
    } finally {
      this.#progress.stop();
    }
    return this.#report;
  }

  // -- OPTIONS -------------------------------------------------------------------------------

  async #checkOptions(hasCurrent: boolean): Promise<PersistedOptions | undefined> {
    const file = path.join(this.#dir, OPTIONS_FILE);
    try {
      const p = await readOptionsFile(fs, this.#dir);
      if (p === undefined) {
        if (hasCurrent) this.#note(file, undefined, 'missing: a database made by sediment 0.1.0 (the next writable open records it)');
        else this.#damage(file, undefined, 'missing');
        return undefined;
      }
      this.#maxRecordSize = dbWalRecordLimit(p);
      this.#ok(file, `format ${p.formatVersion}, keyEncoding ${p.keyEncoding}, valueEncoding ${p.valueEncoding}`);
      return p;
    } catch (err) {
      if (!(err instanceof CorruptionError)) throw err;
      this.#corruption(err);
      return undefined;
    }
  }

  // -- CURRENT and the manifest ----------------------------------------------------------------

  async #checkManifest(manifests: readonly number[]): Promise<{ number: number; state: ManifestState } | undefined> {
    const dir = this.#dir;
    let current: { number: number; state: ManifestState } | undefined;
    try {
      current = await readCurrentManifest(fs, dir);
    } catch (err) {
      if (!(err instanceof CorruptionError)) throw err;
      this.#corruption(err);
      return undefined;
    }
    if (!current) {
      this.#damage(
        path.join(dir, CURRENT_FILE),
        undefined,
        "missing: nothing says which manifest is the database's (DB.repair rebuilds one from the tables)",
      );
      return undefined;
    }
    const name = manifestFileName(current.number);
    const file = path.join(dir, name);
    const problems = manifestProblems(current.state);
    for (const p of problems) this.#damage(file, MANIFEST_HEADER_SIZE, p);
    if (problems.length === 0) {
      const s = current.state;
      const flushed = s.flushedThrough ? `${s.flushedThrough.segmentId}:${s.flushedThrough.offset}` : 'none';
      this.#ok(path.join(dir, CURRENT_FILE), `names ${name}`);
      this.#ok(file, `${s.levels.flat().length} tables, last sequence ${s.lastSeq}, WAL flushed through ${flushed}`);
    }
    for (const n of manifests) {
      if (n !== current.number)
        this.#note(
          path.join(dir, manifestFileName(n)),
          undefined,
          'an older manifest, left by an interrupted switch; the next writable open deletes it',
        );
    }
    return current;
  }

  // -- tables ----------------------------------------------------------------------------------

  async #checkTables(state: ManifestState | undefined, present: readonly number[]): Promise<void> {
    const dir = this.#dir;
    if (!state) {
      // No manifest to go by: every table file is checked, so each damaged one is named.
      for (const n of [...present].sort((a, b) => a - b)) await this.#checkTable(path.join(dir, tableFileName(n)), undefined, undefined);
      return;
    }
    const named = new Set<number>();
    for (let l = 0; l < state.levels.length; l++) {
      for (const meta of state.levels[l]!) {
        named.add(meta.fileNumber);
        await this.#checkTable(path.join(dir, tableFileName(meta.fileNumber)), meta, l);
      }
    }
    for (const n of present) {
      if (!named.has(n)) {
        const file = path.join(dir, tableFileName(n));
        this.#note(
          file,
          undefined,
          'not named by the manifest: a leftover of an interrupted flush or compaction; the next writable open deletes it',
        );
        this.#progress!.increment(await sizeOf(file));
      }
    }
  }

  async #checkTable(file: string, meta: TableMeta | undefined, level: number | undefined): Promise<void> {
    let size: number;
    try {
      size = (await fs.stat(file)).size;
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw new IoError('stat', file, err);
      this.#damage(file, undefined, `missing: the manifest names it (level ${level})`);
      return;
    }
    let check: TableCheck;
    let read = 0;
    try {
      check = await checkTable(fs, file, (_entries, block) => {
        const end = block.offset + block.size;
        this.#progress!.increment(Math.max(0, end - read));
        read = end;
      });
    } catch (err) {
      // An I/O error reading the file (EIO): the disk failed it, which is damage to report too.
      this.#damage(file, undefined, `unreadable: ${(err as Error).message}`);
      this.#progress!.increment(Math.max(0, size - read));
      return;
    }
    this.#progress!.increment(Math.max(0, size - read));
    const before = this.#report.damaged.length;
    if (meta && size !== meta.size)
      this.#damage(file, Math.min(size, meta.size), `the file is ${size} bytes, the manifest says ${meta.size} (cut short or grown)`);
    if (check.structureError) this.#corruption(check.structureError, 'no data block can be located: ');
    for (const e of check.metaErrors) this.#corruption(e);
    for (const { block, error } of check.damagedBlocks)
      this.#damage(error.file, error.offset, `data block ${block.index} (${block.size} bytes): ${error.reason}`);
    const p = check.properties;
    if (meta && p && check.ok) {
      const disagree: string[] = [];
      if (p.entryCount !== meta.entries) disagree.push(`entries ${p.entryCount}, the manifest says ${meta.entries}`);
      if (p.entryCount > 0 && (Buffer.compare(p.smallestKey!, meta.smallest) !== 0 || Buffer.compare(p.largestKey!, meta.largest) !== 0))
        disagree.push("its key range differs from the manifest's");
      if (p.entryCount > 0 && (p.minSeq !== meta.minSeq || p.maxSeq !== meta.maxSeq)) {
        disagree.push(`sequence numbers ${p.minSeq}..${p.maxSeq}, the manifest says ${meta.minSeq}..${meta.maxSeq}`);
      }
      for (const d of disagree) this.#damage(file, p.dataBytes, `the table disagrees with the manifest: ${d}`);
    }
    if (this.#report.damaged.length === before) {
      const where = level === undefined ? 'not in any readable manifest' : `L${level}`;
      this.#ok(file, `${where}, ${check.blocks} blocks, ${check.readableEntries} entries`);
    }
  }

  // -- WAL -------------------------------------------------------------------------------------

  async #checkWal(
    walNames: readonly string[],
    present: readonly number[],
    manifest: ManifestState | undefined,
    legacy: boolean,
    walExists: boolean,
  ): Promise<void> {
    const walDir = path.join(this.#dir, WAL_DIR);
    const stateFile = path.join(walDir, STATE_FILE_NAME);
    if (!walExists) {
      this.#damage(walDir, undefined, 'the WAL directory is missing (the database has a manifest, so its WAL must exist)');
      return;
    }
    let loaded: LoadedState | undefined;
    let stateDamaged = false;
    try {
      loaded = await readStateFile(fs, walDir);
    } catch (err) {
      if (!(err instanceof CorruptionError)) throw err;
      this.#corruption(err);
      stateDamaged = true;
    }
    if (loaded) await this.#checkStateSlots(loaded);
    if (walNames.includes(STATE_TMP_FILE_NAME))
      this.#note(
        path.join(walDir, STATE_TMP_FILE_NAME),
        undefined,
        'a leftover of an interrupted state file write; the next writable open deletes it',
      );

    let state: SegmentState;
    if (loaded) {
      state = loaded.state;
    } else if (stateDamaged) {
      // Go by the segments present, so that each one is still checked.
      state = { floor: present[0] ?? 0, next: (present[present.length - 1] ?? -1) + 1, holes: [] };
    } else if (present.length === 0) {
      this.#damage(stateFile, undefined, 'there is no WAL: the state file and every segment are missing');
      return;
    } else if (legacy) {
      this.#note(stateFile, undefined, 'missing: a WAL made by sediment 0.1.0, which the next writable open adopts');
      state = { floor: present[0]!, next: present[present.length - 1]! + 1, holes: [] };
    } else {
      this.#damage(stateFile, undefined, `missing while ${present.length} segment file(s) exist`);
      state = { floor: present[0]!, next: present[present.length - 1]! + 1, holes: [] };
    }

    const flushed = manifest?.flushedThrough ?? undefined;
    const lo = Math.max(state.floor, flushed?.segmentId ?? 0);
    const fallback = loaded?.fallback ?? false;
    if (flushed && loaded && flushed.segmentId >= state.next + (fallback ? 1 : 0)) {
      this.#damage(
        stateFile,
        undefined,
        `the manifest's flushed position is in segment ${flushed.segmentId}, which this log never created (its ids end at ${state.next - 1}): an older copy of the WAL?`,
      );
    }
    const presentSet = new Set(present);
    for (const [a, b] of expectedRanges(state, lo)) {
      for (let id = a; id < b; id++) {
        if (!presentSet.has(id))
          this.#damage(
            path.join(walDir, segmentFileName(id)),
            undefined,
            `missing: the state file records segments up to ${state.next - 1}, and the log needs every one from ${lo}`,
          );
      }
    }
    // Only the newest segment may end in what a crash leaves.
    const needed = present.filter((id) => id >= lo);
    const newest = needed[needed.length - 1];
    for (const id of present) {
      const file = path.join(walDir, segmentFileName(id));
      const scan = await this.#scanSegment(file, id);
      if (id < lo) {
        const why =
          id < state.floor
            ? "below the WAL's floor (an interrupted deletion)"
            : "wholly before the manifest's flushed position (its records are in the tables)";
        this.#note(
          file,
          scan.damage?.at,
          `${why}; the next writable open deletes it${scan.damage ? `; it is also damaged: ${scan.damage.reason}` : ''}`,
        );
        continue;
      }
      let problem: string | undefined;
      if (inHole(state, id)) problem = 'it lies in a range of ids an earlier salvage gave up';
      else if (id > state.next || (id === state.next && scan.records > 0 && !fallback)) {
        // One segment past the state file, holding no record, is a crash during rotation.
        problem = `not recorded in the state file, which records segments below ${state.next} (an older copy of the state file?)`;
      }
      if (problem) this.#damage(file, 0, problem);
      const d = scan.damage;
      const crashShaped = d !== undefined && id === newest && d.validFrameAt === undefined && (d.zeros || d.cutOff);
      if (d) {
        const follows = d.validFrameAt !== undefined ? ` (a valid record follows at offset ${d.validFrameAt})` : '';
        if (crashShaped) {
          this.#note(
            file,
            d.at,
            `${d.reason}, ${scan.size - d.at} bytes: what a crash leaves at the end of the newest segment; the next open truncates it`,
          );
        } else {
          this.#damage(file, d.at, `${d.reason}${follows}`);
        }
      }
      if (!problem && (!d || crashShaped)) {
        this.#ok(file, `${scan.records} records, ${scan.size} bytes`);
      }
    }
  }

  /** Each slot of the state file on its own: one failing its checks is damage, even with the other one valid. */
  async #checkStateSlots(loaded: LoadedState): Promise<void> {
    const file = loaded.file;
    const bytes = await readSmallFile(fs, file, 2 * loaded.slotSize);
    let bad = 0;
    for (let i = 0; i < 2; i++) {
      const slot = decodeSlot(bytes, i * loaded.slotSize, loaded.slotSize);
      if (typeof slot === 'string') {
        bad++;
        this.#damage(
          file,
          i * loaded.slotSize,
          `slot ${i} fails its checks (${slot}; the other slot holds the state, which may be one update behind)`,
        );
      }
    }
    if (bad === 0) {
      const s = loaded.state;
      this.#ok(file, `floor ${s.floor}, next ${s.next}${s.holes.length > 0 ? `, ${s.holes.length} range(s) given up by a salvage` : ''}`);
    }
  }

  /**
   * Reads one segment frame by frame with the WAL's scanner, as recovery does: the segment
   * header, each frame's checksums, each record's structure (and decompression), the batch
   * framing. Stops at the first damage, says whether it is zeros or a cut-off record, and looks
   * for a valid frame after it.
   */
  async #scanSegment(file: string, id: number): Promise<SegmentScan> {
    const handle = await fs.open(file, 'read').catch((err: unknown) => {
      throw new IoError('open', file, err);
    });
    let scanner: SegmentScanner | undefined;
    try {
      const size = await handle.size();
      const scan: SegmentScan = { id, file, size, records: 0, damage: undefined };
      const header = Buffer.alloc(Math.min(size, SEGMENT_HEADER_SIZE));
      await readFully(handle, header, 0);
      const headerProblem = checkSegmentHeader(header, id);
      if (headerProblem) {
        const zeros = await isZeroRange(handle, 0, size);
        scan.damage = {
          at: 0,
          reason: zeros || size < SEGMENT_HEADER_SIZE ? 'torn-segment-header' : headerProblem,
          zeros,
          cutOff: size < SEGMENT_HEADER_SIZE,
          validFrameAt: zeros ? undefined : await findValidFrame(handle, SEGMENT_HEADER_SIZE, size, this.#maxRecordSize),
        };
        this.#progress!.increment(size);
        return scan;
      }
      scanner = new SegmentScanner(handle, SEGMENT_HEADER_SIZE, size, this.#maxRecordSize, { readAhead: true });
      let unitStart = -1;
      let unitRecords = 0;
      let counted = SEGMENT_HEADER_SIZE;
      for (;;) {
        const s = scanner;
        const step = s.nextBuffered() ?? (await s.next());
        if (step.kind === 'frame' && step.end - counted >= CHUNK) {
          this.#progress!.increment(step.end - counted);
          counted = step.end;
        }
        if (step.kind === 'end') {
          if (unitStart >= 0)
            scan.damage = await classifyDamage(handle, step.offset, 'incomplete-batch', true, undefined, size, this.#maxRecordSize);
          break;
        }
        if (step.kind === 'damage') {
          const reason = step.cutOff ? (unitStart >= 0 ? 'incomplete-batch' : 'torn-record') : step.reason;
          scan.damage = await classifyDamage(handle, step.offset, reason, step.cutOff, step.claimedEnd, size, this.#maxRecordSize);
          break;
        }
        const decoded = decodeRecord(step.payload, this.#maxRecordSize);
        // A DB write (an opaque record) must also be a well-formed write batch.
        const bad = decoded.ok
          ? (sequenceProblem(step.type, unitStart >= 0) ?? (decoded.record.opaque ? checkWriteBatch(decoded.record.value) : undefined))
          : decoded.reason;
        if (bad !== undefined) {
          scan.damage = await classifyDamage(handle, step.offset, bad, false, step.end, size, this.#maxRecordSize);
          break;
        }
        if (step.type === FrameType.FIRST) {
          unitStart = step.offset;
          unitRecords = 1;
        } else if (step.type === FrameType.MIDDLE) {
          unitRecords++;
        } else {
          scan.records += step.type === FrameType.LAST ? unitRecords + 1 : 1;
          unitStart = -1;
        }
      }
      this.#progress!.increment(Math.max(0, size - counted));
      return scan;
    } finally {
      await scanner?.settle();
      await handle.close().catch(() => undefined);
    }
  }

  // -- the DB's own open -------------------------------------------------------------------------

  /** A read-only open, as the application would open it: whatever it refuses is damage too. */
  async #checkOpen(options: PersistedOptions | undefined): Promise<void> {
    try {
      const db = await DB.open<unknown, unknown>(this.#dir, {
        readOnly: true,
        ...(options
          ? {
              keyEncoding: options.keyEncoding,
              valueEncoding: options.valueEncoding,
              maxKeySize: options.maxKeySize,
              maxValueSize: options.maxValueSize,
            }
          : {}),
      });
      await db.close();
    } catch (err) {
      if (err instanceof CorruptionError) this.#corruption(err, 'the database does not open: ');
      else throw err;
    }
  }
}

/** Problems of a decoded manifest's table set (the checksum passed: a writer's bug, or forged bytes). */
function manifestProblems(s: ManifestState): string[] {
  const out: string[] = [];
  const seen = new Set<number>();
  for (let l = 0; l < s.levels.length; l++) {
    const level = s.levels[l]!;
    for (let i = 0; i < level.length; i++) {
      const t = level[i]!;
      const name = tableFileName(t.fileNumber);
      if (seen.has(t.fileNumber)) out.push(`table ${name} is named twice`);
      seen.add(t.fileNumber);
      if (t.fileNumber >= s.nextFileNumber) out.push(`table ${name} is not below the next file number ${s.nextFileNumber}`);
      if (Buffer.compare(t.smallest, t.largest) > 0) out.push(`table ${name} has its smallest key above its largest`);
      if (t.minSeq > t.maxSeq) out.push(`table ${name} has its sequence range reversed`);
      if (t.maxSeq > s.lastSeq) out.push(`table ${name} holds sequence ${t.maxSeq}, past the manifest's last sequence ${s.lastSeq}`);
      const prev = level[i - 1];
      if (l > 0 && prev && Buffer.compare(prev.largest, t.smallest) >= 0) out.push(`level ${l} is not sorted and disjoint at ${name}`);
    }
  }
  return out;
}

async function sizeOf(file: string): Promise<number> {
  return fs.stat(file).then(
    (s) => s.size,
    () => 0,
  );
}
