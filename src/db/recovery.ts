/**
 * Open-time recovery: what is in a DB directory, the creation of a new DB, the replay of the WAL
 * into the memtables, and the upgrade of an old format. The DB's open (db.ts) runs them in this
 * order: {@link loadOrCreate} (the manifest and OPTIONS, checked before anything on disk
 * changes, or a new DB), the table set (version-set.ts), the WAL, {@link replayWal}, and
 * {@link upgradeFormat} for a DB of format 1.
 *
 * Replay. The WAL records after the manifest's flushed position go into a fresh memtable,
 * flushed as it fills (a read-only handle keeps them in memory). Ops at or below the manifest's
 * last seq are in the tables already and are skipped. Damage in a record is a `CorruptionError`
 * naming the segment and offset.
 *
 * @module
 */
import * as path from 'node:path';
import { CorruptionError, errnoOf, IoError, ioStep } from '../errors.js';
import type { FileSystem } from '../fs/types.js';
import type { Meter } from '../wal/meter.js';
import { FRAME_HEADER_SIZE, segmentFileName } from '../wal/format.js';
import type { WalOptions } from '../wal/options.js';
import { comparePositions, type Position } from '../wal/position.js';
import { Wal } from '../wal/wal.js';
import { CURRENT_FILE, parseFileName, WAL_DIR } from './filenames.js';
import { installManifest, type ManifestState, readCurrentManifest, readSmallFile } from './manifest.js';
import type { ResolvedDBOptions } from './options.js';
import {
  checkPersistedOptions,
  DB_FORMAT_VERSION,
  openOptionsFile,
  type PersistedOptions,
  readOptionsFile,
  writeOptionsFile,
} from './options-file.js';
import { LEVELS } from './version.js';
import { batchCount, batchSeq, checkWriteBatch, visitOps } from './write-batch.js';
import { MAX_WRITE_BYTES } from './write-input.js';
import type { Writer } from './writer.js';

/** What the WAL's replay and a format upgrade need of the DB. */
export interface ReplayHost {
  readonly fs: FileSystem;
  readonly dir: string;
  readonly readOnly: boolean;
  /** The DB's WAL, open. */
  readonly wal: Wal;
  /** The memtables the replay fills, and the seqs and positions it moves on. */
  readonly writer: Writer;
  /** Flushes the oldest frozen memtable (scheduler.ts). */
  flushOldest(): Promise<void>;
}

/**
 * What is in `dir`: the manifest CURRENT names and the options the DB records (checked against
 * `opts` before anything on disk changes), or, for a directory holding no DB, a new one created
 * (see {@link createDB}); `legacy` for a DB made by sediment 0.1.0 (no OPTIONS, and a WAL
 * without its state file), whose options are recorded only once its WAL is adopted.
 */
export async function loadOrCreate(
  fs: FileSystem,
  dir: string,
  opts: ResolvedDBOptions,
): Promise<{ current: { number: number; state: ManifestState }; persisted: PersistedOptions; legacy: boolean }> {
  const readOnly = opts.readOnly;
  let current = await readCurrentManifest(fs, dir);
  let persisted: PersistedOptions;
  // A DB made by sediment 0.1.0: no OPTIONS, and a WAL without its state file.
  let legacy = false;
  if (current) {
    // An existing DB: its OPTIONS are checked before anything on disk changes (a mismatch is an
    // InvalidConfigError with nothing written). A 0.1.0 DB adopts the options given; they are
    // recorded only once its WAL is adopted (by the DB's open), so that a crash in between leaves a DB
    // that is still recognised as 0.1.0's.
    const stored = await readOptionsFile(fs, dir);
    legacy = stored === undefined;
    persisted = readOnly || legacy ? checkPersistedOptions(stored, opts) : await openOptionsFile(fs, dir, opts, { fresh: false });
  } else {
    if (readOnly) {
      const file = path.join(dir, CURRENT_FILE);
      throw new IoError(
        'open',
        file,
        Object.assign(new Error(`no database in ${dir} (no CURRENT), and a read-only open creates nothing`), { code: 'ENOENT' }),
      );
    }
    persisted = await createDB(fs, dir, opts);
    current = (await readCurrentManifest(fs, dir))!;
  }
  return { current, persisted, legacy };
}

/**
 * Creates a new DB's files, in this order: OPTIONS, the WAL, then CURRENT naming the first
 * manifest. A committed DB (one with CURRENT) therefore always has its OPTIONS and its WAL,
 * and either missing later is corruption. A first open that died before CURRENT existed
 * committed nothing: what it left is garbage, unless it holds data.
 */
export async function createDB(fs: FileSystem, dir: string, opts: ResolvedDBOptions): Promise<PersistedOptions> {
  const names = await ioStep('readdir', dir, () => fs.readdir(dir));
  if (names.some((n) => parseFileName(n)?.type === 'table')) {
    throw new CorruptionError('CURRENT is missing but the directory holds tables', { file: path.join(dir, CURRENT_FILE), offset: 0 });
  }
  if (names.includes(WAL_DIR)) {
    // Records are appended only after CURRENT exists: a WAL with records and no CURRENT means
    // CURRENT was lost, not a first open that died. Looked at read-only, so that this refusal
    // too leaves the directory as it was.
    const walDir = path.join(dir, WAL_DIR);
    const probe = await Wal.open({
      dir: walDir,
      fs,
      readOnly: true,
      maxRecordSize: MAX_WRITE_BYTES + 1,
    }).catch((err: unknown) => {
      if (err instanceof CorruptionError)
        throw new CorruptionError(
          `CURRENT is missing and the WAL is damaged (${err.reason})`,
          { file: path.join(dir, CURRENT_FILE), offset: 0 },
          { cause: err },
        );
      throw err;
    });
    await probe.wal.close();
    if (probe.recovery.validRecords > 0) {
      throw new CorruptionError(`CURRENT is missing but the WAL holds ${probe.recovery.validRecords} records`, {
        file: path.join(dir, CURRENT_FILE),
        offset: 0,
      });
    }
  }
  for (const name of names) {
    const type = parseFileName(name)?.type;
    if (type === 'manifest' || type === 'currentTmp') {
      await ioStep('unlink', path.join(dir, name), () => fs.unlink(path.join(dir, name)));
    }
  }
  const persisted = await openOptionsFile(fs, dir, opts, { fresh: true });
  const { wal } = await Wal.open({ ...walOptionsOf(dir, opts, undefined, persisted), createIfMissing: true });
  await wal.close();
  const state: ManifestState = { nextFileNumber: 1, lastSeq: 0, flushedThrough: null, levels: Array.from({ length: LEVELS }, () => []) };
  await installManifest(fs, dir, 1, state, undefined);
  return persisted;
}

/**
 * Replays WAL records after `after` into the memtable, flushing as it fills. A DB of format 2
 * holds one write batch per record, with its seqs; one of format 1 (written before batches
 * carried seqs) one op per record, whose seqs are counted on from the seq before it.
 */
export async function replayWal(host: ReplayHost, after: Position | null): Promise<void> {
  const writer = host.writer;
  const from = after ?? { segmentId: 0, offset: 0 };
  const walDir = path.join(host.dir, WAL_DIR);
  const floor = writer.seq;
  let logSeq = 0;
  for await (const { record, position } of host.wal.readFrom(from)) {
    if (after && comparePositions(position, after) <= 0) continue;
    const damaged = (reason: string): CorruptionError =>
      new CorruptionError(reason, {
        file: path.join(walDir, segmentFileName(position.segmentId)),
        offset: position.offset,
        segmentId: position.segmentId,
      });
    // Either kind is read whatever OPTIONS says (a format 1 DB upgraded by this open, or one
    // whose OPTIONS a 0.1.0-era tool removed): seqs stay increasing along the log either way.
    if (record.opaque) {
      const batch = record.value;
      const problem = checkWriteBatch(batch);
      if (problem !== undefined) throw damaged(problem);
      const first = batchSeq(batch);
      const last = first + batchCount(batch) - 1;
      // Seqs only grow along the log; a gap is possible (a write the WAL failed under).
      if (first <= logSeq) throw damaged(`write batch seq ${first} is not after the seq ${logSeq} before it`);
      logSeq = last;
      // Ops at or below the manifest's lastSeq are in the tables already (a repaired manifest
      // does not know where the WAL was flushed through): the table holds them, or newer.
      if (last > floor) {
        const mem = writer.mem;
        visitOps(batch, (kind, keyAt, keyLength, valueLength, expiresAt, i) => {
          if (first + i > floor) mem.insertFrom(batch, keyAt, keyLength, valueLength, first + i, kind === 'delete', expiresAt);
        });
        writer.seq = Math.max(writer.seq, last);
      }
    } else {
      // A decoded record is valid (the codec checks every field): applying it cannot fail.
      writer.mem.insertChecked({
        key: record.key,
        seq: ++writer.seq,
        kind: record.tombstone ? 'delete' : 'put',
        value: record.value,
        expiresAt: record.expiresAt,
      });
    }
    writer.lastPosition = position;
    writer.walBytesSinceFreeze += record.payloadSize + FRAME_HEADER_SIZE;
    if (writer.mustFreeze()) {
      writer.sealActive();
      // A read-only handle keeps what it replayed in memory: it writes no table.
      if (!host.readOnly) await host.flushOldest();
    }
  }
  writer.lastPosition ??= after;
  writer.nextSeq = writer.seq;
  writer.appliedEnd = host.wal.currentPosition();
}

/**
 * Moves a DB of format 1 to format 2 (write batches with seqs in the WAL): the replayed
 * single-op records are flushed into a table first, so that no replay ever needs them again,
 * then `OPTIONS` records format 2 (atomically); only then does the DB take writes. A crash in
 * between leaves format 1 with its records flushed: the next open upgrades again.
 */
export async function upgradeFormat(host: ReplayHost, persisted: PersistedOptions): Promise<PersistedOptions> {
  const writer = host.writer;
  if (writer.mem.size > 0) {
    writer.sealActive();
  }
  while (writer.imm.length > 0) await host.flushOldest();
  const upgraded = { ...persisted, formatVersion: DB_FORMAT_VERSION };
  await writeOptionsFile(host.fs, host.dir, upgraded);
  return upgraded;
}

/** The WAL's options for a DB in `dir`. */
export function walOptionsOf(
  dir: string,
  opts: ResolvedDBOptions,
  discardBefore: Position | undefined,
  limits: { maxKeySize: number; maxValueSize: number } = opts,
): WalOptions {
  return {
    dir: path.join(dir, WAL_DIR),
    fs: opts.fs,
    fsync: opts.fsync,
    maxSegmentSize: opts.walSegmentSize,
    // One record per write (a batch), of any size up to the limit of one write; the WAL's record
    // limit bounds what recovery trusts a frame's length to be, after its header checksum.
    maxRecordSize: Math.max(MAX_WRITE_BYTES + 1, limits.maxKeySize + limits.maxValueSize + 64),
    recovery: opts.recovery,
    discardBefore,
    readOnly: opts.readOnly,
    meter: opts.meter as Meter,
  };
}

/** The bytes of a small file, or undefined if it does not exist. */
export async function readSmallFileOrUndefined(fs: FileSystem, file: string): Promise<Buffer | undefined> {
  try {
    return await readSmallFile(fs, file, 4096);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}
