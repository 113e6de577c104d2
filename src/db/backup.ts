/**
 * Incremental backups: `db.backup(dir)`, `DB.restore(dir, target, { id })`,
 * `DB.listBackups(dir)`, `DB.pruneBackups(dir, { keep })`.
 *
 * A backup directory (docs/FORMAT.md, "Backup directory"):
 * ```
 * <backupDir>/
 *   BACKUP-000001                       the index of backup 1: what it holds (written last)
 *   BACKUP-000002.tmp                   an index being written (a backup in progress, or a crashed one)
 *   private/000001/MANIFEST             backup 1's manifest (the DB's table set at the backup)
 *   private/000001/OPTIONS              its OPTIONS
 *   private/000001/0000000000000003.wal its WAL tail: the segments after the flushed position, the last cut
 *   shared/<db id>/000012-1a2b3c4d.sst  a table (number 12, masked CRC-32C 1a2b3c4d), shared by every
 *                                       backup of that DB that needs it
 *   shared/<db id>/000013.sst.tmp       a table being copied
 *   LOCK-<16 hex>.sock                  the lock a backup or a prune holds (as a DB directory's)
 * ```
 *
 * Incremental: a table never changes once written and its number is never reused within a DB,
 * so a table the directory holds for that DB is not copied again. Tables are keyed by the DB's
 * id (`IDENTITY`, identity.ts), so backups of several DBs can share one directory: each backup
 * names its DB, and "the latest backup" is the highest id whatever the DB. A table of the same
 * number already there whose size, key range, sequence range or entry count differ from the
 * DB's is refused (`CorruptionError` naming it): two DBs share an id (a DB directory copied by
 * hand).
 *
 * Atomic: a backup writes its tables and private files (each synced, the directories synced),
 * then its index as `BACKUP-<id>.tmp`, synced and renamed: a crash before the rename leaves no
 * backup (the next backup or prune removes what it left), after it a complete one. Backups and
 * prunes take the directory's lock (`LOCKED` while another runs); a restore takes none, so it
 * works from read-only media, and fails with `IoError` `ENOENT` if a prune removes a file it is
 * copying.
 *
 * Verified: the index records every file's size and masked CRC-32C; a restore checks each file
 * as it copies it (a mismatch is a `CorruptionError` naming the backup's file, and the target is
 * removed), and the index and manifest have checksums of their own.
 *
 * @module
 */
import * as path from 'node:path';
import { CorruptionError, InvalidConfigError, IoError, LockedError, errnoOf, ioStep } from '../errors.js';
import { makeDurableDir } from '../fs/durable-dir.js';
import { nodeFileSystem } from '../fs/node.js';
import { fileSystemProblem, type DirectoryLock, type FileSystem } from '../fs/types.js';
import { maskedCrc32c } from '../util/crc32c.js';
import { segmentFileName } from '../wal/format.js';
import type { Position } from '../wal/position.js';
import { type Copied, type CopySource, TargetWriter, checkDirArg, copyFile, errnoError, neededSegments } from './copy.js';
import { WAL_DIR, tableFileName } from './filenames.js';
import { ensureIdentity } from './identity.js';
import {
  decodeManifest,
  encodeManifest,
  readSmallFile,
  replaceFile,
  writeNewFile,
  type ManifestState,
  type TableMeta,
} from './manifest.js';
import { decodeOptionsFile, encodeOptionsFile } from './options-file.js';

const INDEX_MAGIC = 'SDMTBACKUP';
/** Version of the index file's layout. */
export const BACKUP_INDEX_VERSION = 1;
/** An index is a few KB per thousand tables; anything over this is damage. */
const MAX_INDEX = 64 * 2 ** 20;
const MAX_SMALL = 64 * 2 ** 20;
export const PRIVATE_DIR = 'private';
export const SHARED_DIR = 'shared';

/** One file a backup needs, as its index records it. */
export interface BackupFile {
  /** `table` (shared), or the backup's own `manifest`, `options`, `wal` segment. */
  kind: 'table' | 'manifest' | 'options' | 'wal';
  /** Path inside the backup directory, `/`-separated. */
  path: string;
  size: number;
  /** Masked CRC-32C of the file, 8 lowercase hex digits. */
  crc: string;
  /** A table's file number, a WAL segment's id. */
  number?: number;
}

/** What a backup holds, as its index (`BACKUP-<id>`) records it. */
export interface BackupSummary {
  id: number;
  /** When the backup was taken, ms since the epoch (`Date.now()`). */
  createdAt: number;
  /** The id (`IDENTITY`) of the DB it is a backup of. */
  dbId: string;
  /** The last sequence number in its tables (its WAL tail holds the writes after them). */
  lastSeq: number;
  /** Where its WAL tail ends: the DB's write position at the backup. */
  walEnd: Position;
  /** Every file it needs, shared tables included, and their bytes. */
  files: number;
  bytes: number;
}

/** What `db.backup` did. */
export interface BackupInfo extends BackupSummary {
  /** Files and bytes this backup copied: tables new to the directory, its manifest, OPTIONS and WAL tail. */
  filesCopied: number;
  bytesCopied: number;
  /** Tables the directory already held. */
  tablesShared: number;
  durationMs: number;
}

/** What `DB.restore` did. */
export interface RestoreInfo {
  /** The backup restored. */
  id: number;
  dbId: string;
  /** The new DB's directory. */
  dir: string;
  files: number;
  bytes: number;
  durationMs: number;
}

/** What `DB.pruneBackups` did. */
export interface PruneInfo {
  /** Backups deleted, and those kept. */
  deleted: number[];
  kept: number[];
  /** Files removed (indexes, private files, tables no kept backup needs, leftovers) and their bytes. */
  filesRemoved: number;
  bytesRemoved: number;
}

/** Options of `DB.restore`, `DB.listBackups` and `DB.pruneBackups`. */
export interface BackupDirOptions {
  /** The file system of the backup directory (and of the restore's target); the real one by default. */
  fs?: FileSystem;
}

/** Options of `DB.restore`. */
export interface RestoreOptions extends BackupDirOptions {
  /** The backup to restore; the latest by default. */
  id?: number;
}

/** Options of `DB.pruneBackups`. */
export interface PruneOptions extends BackupDirOptions {
  /** How many of the newest backups to keep (at least 1). */
  keep: number;
}

interface TableRecord extends BackupFile {
  kind: 'table';
  number: number;
  /** The table's metadata (keys hex): what a later backup compares before sharing it. */
  meta: { size: number; smallest: string; largest: string; minSeq: number; maxSeq: number; entries: number };
}

interface BackupIndex {
  id: number;
  createdAt: number;
  dbId: string;
  lastSeq: number;
  walEnd: Position;
  files: BackupFile[];
}

// -- names -----------------------------------------------------------------------------------

function pad(n: number): string {
  return String(n).padStart(6, '0');
}

/** `BACKUP-NNNNNN`: the index of backup `id`. */
export function indexFileName(id: number): string {
  return `BACKUP-${pad(id)}`;
}

const INDEX_NAME = /^BACKUP-(\d{6,})$/;

function parseIndexName(name: string): number | undefined {
  const m = INDEX_NAME.exec(name);
  const n = m ? Number(m[1]) : Number.NaN;
  return Number.isSafeInteger(n) && indexFileName(n) === name ? n : undefined;
}

function privatePath(id: number, name: string): string {
  return `${PRIVATE_DIR}/${pad(id)}/${name}`;
}

function sharedTablePath(dbId: string, number: number, crc: string): string {
  return `${SHARED_DIR}/${dbId}/${tableFileName(number).slice(0, -'.sst'.length)}-${crc}.sst`;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** A `/`-separated path inside `dir`, as a path of the file system. */
function inDir(dir: string, rel: string): string {
  return path.join(dir, ...rel.split('/'));
}

// -- the index file --------------------------------------------------------------------------

/** The bytes of an index: `SDMTBACKUP 1`, one line of JSON, `crc32c <hex>` over the two lines. */
export function encodeIndex(index: BackupIndex): Buffer {
  const head = Buffer.from(`${INDEX_MAGIC} ${BACKUP_INDEX_VERSION}\n${JSON.stringify(index)}\n`, 'utf8');
  return Buffer.concat([head, Buffer.from(`crc32c ${hex8(maskedCrc32c(head))}\n`, 'latin1')]);
}

const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Decodes an index; `CorruptionError` naming `file` for anything but a valid one of backup `id`. */
export function decodeIndex(bytes: Uint8Array, file: string, id: number): BackupIndex {
  const fail = (reason: string, offset = 0): never => {
    throw new CorruptionError(reason, { file, offset });
  };
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = buf.indexOf(0x0a);
  const second = first < 0 ? -1 : buf.indexOf(0x0a, first + 1);
  if (second < 0) fail('backup index is truncated');
  if (buf.subarray(0, first).toString('latin1') !== `${INDEX_MAGIC} ${BACKUP_INDEX_VERSION}`)
    fail('not a sediment backup index of a known version');
  const tail = buf.subarray(second + 1).toString('latin1');
  if (tail !== `crc32c ${hex8(maskedCrc32c(buf, 0, second + 1))}\n`) fail('backup index checksum mismatch', second + 1);
  let v: unknown;
  try {
    v = JSON.parse(buf.subarray(first + 1, second).toString('utf8'));
  } catch {
    fail('backup index does not parse', first + 1);
  }
  const x = v as Partial<BackupIndex>;
  const shapeOk =
    typeof v === 'object' &&
    v !== null &&
    x.id === id &&
    isNat(x.createdAt) &&
    typeof x.dbId === 'string' &&
    /^[0-9a-f-]{36}$/.test(x.dbId) &&
    isNat(x.lastSeq) &&
    isNat(x.walEnd?.segmentId) &&
    isNat(x.walEnd?.offset) &&
    Array.isArray(x.files);
  if (!shapeOk) fail('backup index has the wrong shape', first + 1);
  const index = v as BackupIndex;
  for (const f of index.files) {
    const ok =
      typeof f === 'object' &&
      f !== null &&
      isNat(f.size) &&
      typeof f.crc === 'string' &&
      /^[0-9a-f]{8}$/.test(f.crc) &&
      (f.kind === 'manifest' || f.kind === 'options' || isNat(f.number)) &&
      // Every path is the one the writer makes: nothing outside the backup directory.
      f.path === expectedPath(index, f);
    if (!ok) fail(`backup index lists a bad file entry (${JSON.stringify(f)?.slice(0, 120)})`, first + 1);
  }
  const count = (kind: BackupFile['kind']): number => index.files.filter((f) => f.kind === kind).length;
  if (count('manifest') !== 1 || count('options') !== 1 || count('wal') < 1)
    fail('backup index lacks its manifest, OPTIONS or WAL', first + 1);
  return index;
}

function expectedPath(index: BackupIndex, f: BackupFile): string | undefined {
  switch (f.kind) {
    case 'table':
      return sharedTablePath(index.dbId, f.number!, f.crc);
    case 'manifest':
      return privatePath(index.id, 'MANIFEST');
    case 'options':
      return privatePath(index.id, 'OPTIONS');
    case 'wal':
      return privatePath(index.id, segmentFileName(f.number!));
    default:
      return undefined;
  }
}

/** The ids of the backups in `dir` (committed indexes), ascending. */
async function backupIds(fs: FileSystem, dir: string): Promise<number[]> {
  const names = await ioStep('readdir', dir, () => fs.readdir(dir));
  const ids: number[] = [];
  for (const n of names) {
    const id = parseIndexName(n);
    if (id !== undefined) ids.push(id);
  }
  return ids.sort((a, b) => a - b);
}

async function readIndex(fs: FileSystem, dir: string, id: number): Promise<BackupIndex> {
  const file = path.join(dir, indexFileName(id));
  const bytes = await readSmallFile(fs, file, MAX_INDEX).catch((err: unknown) => {
    if (err instanceof CorruptionError) throw err;
    throw new IoError('read', file, err);
  });
  return decodeIndex(bytes, file, id);
}

function summaryOf(index: BackupIndex): BackupSummary {
  let bytes = 0;
  for (const f of index.files) bytes += f.size;
  return {
    id: index.id,
    createdAt: index.createdAt,
    dbId: index.dbId,
    lastSeq: index.lastSeq,
    walEnd: { ...index.walEnd },
    files: index.files.length,
    bytes,
  };
}

// -- locking ---------------------------------------------------------------------------------

async function lockBackupDir(fs: FileSystem, dir: string): Promise<DirectoryLock> {
  try {
    return await fs.lock(dir);
  } catch (err) {
    if (errnoOf(err) === 'ELOCKED') throw new LockedError(dir, (err as Error).message);
    throw new IoError('lock', dir, err);
  }
}

async function unlinkQuietly(fs: FileSystem, file: string): Promise<number> {
  const size = await fs.stat(file).then(
    (s) => s.size,
    () => 0,
  );
  try {
    await fs.unlink(file);
    return size;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return -1;
    throw new IoError('unlink', file, err);
  }
}

async function listDir(fs: FileSystem, dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw new IoError('readdir', dir, err);
  }
}

/**
 * Removes what no index accounts for: index `.tmp` files, private directories of ids without an
 * index, and (with `tables`) shared tables no index lists, and `.tmp` tables. Only under the
 * directory's lock. Returns the files removed and their bytes.
 */
async function collectGarbage(
  fs: FileSystem,
  dir: string,
  indexes: readonly BackupIndex[],
  tables: boolean,
): Promise<{ files: number; bytes: number }> {
  const out = { files: 0, bytes: 0 };
  const count = (bytes: number): void => {
    if (bytes < 0) return;
    out.files++;
    out.bytes += bytes;
  };
  const ids = new Set(indexes.map((i) => i.id));
  let changed = false;
  for (const name of await listDir(fs, dir)) {
    if (name.startsWith('BACKUP-') && name.endsWith('.tmp')) {
      count(await unlinkQuietly(fs, path.join(dir, name)));
      changed = true;
    }
  }
  if (changed) await ioStep('syncDir', dir, () => fs.syncDir(dir));
  const privateRoot = path.join(dir, PRIVATE_DIR);
  for (const name of await listDir(fs, privateRoot)) {
    const id = /^\d{6,}$/.test(name) ? Number(name) : Number.NaN;
    if (!Number.isSafeInteger(id) || pad(id) !== name || ids.has(id)) continue;
    const sub = path.join(privateRoot, name);
    for (const f of await listDir(fs, sub)) count(await unlinkQuietly(fs, path.join(sub, f)));
    await fs.rmdir?.(sub).catch(() => undefined);
    await ioStep('syncDir', privateRoot, () => fs.syncDir(privateRoot));
  }
  if (!tables) return out;
  const live = new Set(indexes.flatMap((i) => i.files.filter((f) => f.kind === 'table').map((f) => f.path)));
  const sharedRoot = path.join(dir, SHARED_DIR);
  for (const db of await listDir(fs, sharedRoot)) {
    const sub = path.join(sharedRoot, db);
    const names = await listDir(fs, sub);
    let left = names.length;
    for (const f of names) {
      if (live.has(`${SHARED_DIR}/${db}/${f}`)) continue;
      count(await unlinkQuietly(fs, path.join(sub, f)));
      left--;
    }
    if (left < names.length) await ioStep('syncDir', sub, () => fs.syncDir(sub));
    if (left === 0 && fs.rmdir) {
      await fs.rmdir(sub).catch(() => undefined);
      await ioStep('syncDir', sharedRoot, () => fs.syncDir(sharedRoot));
    }
  }
  return out;
}

// -- backup ----------------------------------------------------------------------------------

/** Writes a backup of `source` into `backupDir`; releases `source` in every case. */
export async function writeBackup(source: CopySource, backupDir: unknown): Promise<BackupInfo> {
  const t0 = performance.now();
  try {
    const dir = checkDirArg(backupDir, 'the backup directory');
    const fs = source.fs;
    const dbId = await ensureIdentity(fs, source.dir, source.readOnly);
    try {
      await makeDurableDir(fs, dir);
    } catch (err) {
      throw new IoError('mkdir', dir, err);
    }
    const lock = await lockBackupDir(fs, dir);
    try {
      const ids = await backupIds(fs, dir);
      const indexes: BackupIndex[] = [];
      for (const id of ids) indexes.push(await readIndex(fs, dir, id));
      // What a crashed backup left (no table: those are shared, and a later backup may use them).
      await collectGarbage(fs, dir, indexes, false);
      const id = (ids[ids.length - 1] ?? 0) + 1;
      return await writeBackupFiles(source, fs, dir, dbId, id, indexes, t0);
    } finally {
      await lock.release().catch(() => undefined);
    }
  } finally {
    source.release();
  }
}

async function writeBackupFiles(
  source: CopySource,
  fs: FileSystem,
  dir: string,
  dbId: string,
  id: number,
  indexes: readonly BackupIndex[],
  t0: number,
): Promise<BackupInfo> {
  // The tables the directory holds for this DB, from every index that names them.
  const known = new Map<number, TableRecord>();
  for (const index of indexes) {
    if (index.dbId !== dbId) continue;
    for (const f of index.files) if (f.kind === 'table') known.set(f.number!, f as TableRecord);
  }
  const sharedDir = inDir(dir, `${SHARED_DIR}/${dbId}`);
  const privateDir = inDir(dir, `${PRIVATE_DIR}/${pad(id)}`);
  try {
    await makeDurableDir(fs, sharedDir);
    await makeDurableDir(fs, privateDir);
  } catch (err) {
    throw new IoError('mkdir', dir, err);
  }
  const files: BackupFile[] = [];
  let filesCopied = 0;
  let bytesCopied = 0;
  let tablesShared = 0;
  try {
    let newTables = 0;
    for (const level of source.state.levels) {
      for (const t of level) {
        const meta = tableRecordMeta(t);
        const have = known.get(t.fileNumber);
        if (have) {
          if (JSON.stringify(have.meta) !== JSON.stringify(meta)) {
            throw new CorruptionError(
              `the backup directory holds another table ${t.fileNumber} for DB ${dbId} (two DBs with one IDENTITY? a DB directory copied by hand keeps the original's: remove IDENTITY from the copy)`,
              { file: inDir(dir, have.path), offset: 0 },
            );
          }
          files.push(have);
          tablesShared++;
          continue;
        }
        const from = path.join(source.dir, tableFileName(t.fileNumber));
        const tmp = path.join(sharedDir, `${tableFileName(t.fileNumber)}.tmp`);
        await unlinkQuietly(fs, tmp);
        const c = await copyFile(fs, from, tmp);
        const rel = sharedTablePath(dbId, t.fileNumber, hex8(c.crc));
        await ioStep('rename', tmp, () => fs.rename(tmp, inDir(dir, rel)));
        const record: TableRecord = { kind: 'table', path: rel, size: c.bytes, crc: hex8(c.crc), number: t.fileNumber, meta };
        files.push(record);
        filesCopied++;
        bytesCopied += c.bytes;
        newTables++;
      }
    }
    if (newTables > 0) await ioStep('syncDir', sharedDir, () => fs.syncDir(sharedDir));

    const small = async (kind: 'manifest' | 'options', name: string, bytes: Uint8Array): Promise<void> => {
      const rel = privatePath(id, name);
      const file = inDir(dir, rel);
      await ioStep('write', file, () => writeNewFile(fs, file, bytes));
      files.push({ kind, path: rel, size: bytes.length, crc: hex8(maskedCrc32c(bytes)) });
      filesCopied++;
      bytesCopied += bytes.length;
    };
    await small('manifest', 'MANIFEST', encodeManifest(source.state));
    await small('options', 'OPTIONS', encodeOptionsFile(source.persisted));
    const end = source.walEnd;
    for (const seg of neededSegments(source)) {
      const rel = privatePath(id, segmentFileName(seg));
      const c = await copyFile(
        fs,
        path.join(source.dir, WAL_DIR, segmentFileName(seg)),
        inDir(dir, rel),
        seg === end.segmentId ? end.offset : undefined,
      );
      files.push({ kind: 'wal', path: rel, size: c.bytes, crc: hex8(c.crc), number: seg });
      filesCopied++;
      bytesCopied += c.bytes;
    }
    await ioStep('syncDir', privateDir, () => fs.syncDir(privateDir));

    // The commit point: the index, written whole under a temporary name, then renamed.
    const index: BackupIndex = { id, createdAt: Date.now(), dbId, lastSeq: source.state.lastSeq, walEnd: { ...end }, files };
    const name = path.join(dir, indexFileName(id));
    await replaceFile(fs, name, `${name}.tmp`, encodeIndex(index));
    return { ...summaryOf(index), filesCopied, bytesCopied, tablesShared, durationMs: performance.now() - t0 };
  } catch (err) {
    // The private files go now; tables copied stay for a later backup (or a prune).
    for (const f of files) if (f.kind !== 'table') await fs.unlink(inDir(dir, f.path)).catch(() => undefined);
    await fs.unlink(`${path.join(dir, indexFileName(id))}.tmp`).catch(() => undefined);
    throw err;
  }
}

function tableRecordMeta(t: TableMeta): TableRecord['meta'] {
  return {
    size: t.size,
    smallest: Buffer.from(t.smallest).toString('hex'),
    largest: Buffer.from(t.largest).toString('hex'),
    minSeq: t.minSeq,
    maxSeq: t.maxSeq,
    entries: t.entries,
  };
}

// -- restore, list, prune --------------------------------------------------------------------

function fsOf(options: BackupDirOptions | undefined, op: string): FileSystem {
  if (options !== undefined && (typeof options !== 'object' || options === null)) throw new TypeError(`${op} options must be an object`);
  const fs = options?.fs ?? nodeFileSystem;
  const problem = options?.fs === undefined ? undefined : fileSystemProblem(fs);
  if (problem) throw new InvalidConfigError('fs', problem);
  return fs;
}

/** The backups in `backupDir`, oldest first. A damaged index is a `CorruptionError` naming it. */
export async function listBackups(backupDir: unknown, options?: BackupDirOptions): Promise<BackupSummary[]> {
  const dir = checkDirArg(backupDir, 'the backup directory');
  const fs = fsOf(options, 'listBackups');
  const out: BackupSummary[] = [];
  for (const id of await backupIds(fs, dir)) out.push(summaryOf(await readIndex(fs, dir, id)));
  return out;
}

/** Copies `f` (from the backup) to `to`, checking its size and checksum against the index. */
async function restoreFile(fs: FileSystem, dir: string, f: BackupFile, to: string): Promise<Copied> {
  const from = inDir(dir, f.path);
  const c = await copyFile(fs, from, to);
  if (c.bytes !== f.size)
    throw new CorruptionError(`backup file has ${c.bytes} bytes, its index says ${f.size}`, { file: from, offset: 0 });
  if (hex8(c.crc) !== f.crc) throw new CorruptionError('backup file checksum mismatch', { file: from, offset: 0 });
  return c;
}

/** Reads a small private file of a backup, checking it against the index. */
async function readChecked(fs: FileSystem, dir: string, f: BackupFile): Promise<Buffer> {
  const file = inDir(dir, f.path);
  const bytes = await readSmallFile(fs, file, MAX_SMALL).catch((err: unknown) => {
    if (err instanceof CorruptionError) throw err;
    throw new IoError('read', file, err);
  });
  if (bytes.length !== f.size || hex8(maskedCrc32c(bytes)) !== f.crc)
    throw new CorruptionError('backup file checksum mismatch', { file, offset: 0 });
  return bytes;
}

/**
 * Restores backup `options.id` (the latest by default) of `backupDir` as a new DB in `target`,
 * which must not exist or be an empty directory. Every file is checked against the index as it
 * is copied; the target is written as a checkpoint is, `CURRENT` last (copy.ts).
 */
export async function restoreBackup(backupDir: unknown, target: unknown, options?: RestoreOptions): Promise<RestoreInfo> {
  const t0 = performance.now();
  const dir = checkDirArg(backupDir, 'the backup directory');
  const to = checkDirArg(target, 'the restore target');
  const fs = fsOf(options, 'restore');
  const wanted = options?.id;
  if (wanted !== undefined && !(isNat(wanted) && wanted >= 1))
    throw new RangeError(`a backup id is a whole number from 1, got ${String(wanted)}`);
  const ids = await backupIds(fs, dir);
  const id = wanted ?? ids[ids.length - 1];
  if (id === undefined) throw new IoError('restore', dir, errnoError('ENOENT', `no backup in ${dir}`));
  if (!ids.includes(id)) throw new IoError('restore', path.join(dir, indexFileName(id)), errnoError('ENOENT', `no backup ${id} in ${dir}`));
  const index = await readIndex(fs, dir, id);
  const manifestFile = index.files.find((f) => f.kind === 'manifest')!;
  const optionsFile = index.files.find((f) => f.kind === 'options')!;
  // Checked before the target is touched: a damaged manifest or OPTIONS writes nothing.
  const state: ManifestState = decodeManifest(await readChecked(fs, dir, manifestFile), inDir(dir, manifestFile.path));
  const persisted = decodeOptionsFile(await readChecked(fs, dir, optionsFile), inDir(dir, optionsFile.path));
  const tables = new Map(index.files.filter((f) => f.kind === 'table').map((f) => [f.number!, f]));
  const named = state.levels.flat().map((t) => t.fileNumber);
  if (named.length !== tables.size || named.some((n) => !tables.has(n))) {
    throw new CorruptionError('the backup index and its manifest disagree on the tables', {
      file: path.join(dir, indexFileName(id)),
      offset: 0,
    });
  }
  const out = new TargetWriter(fs, to, 'restore');
  await out.claim();
  try {
    let bytes = 0;
    for (const n of named) bytes += (await restoreFile(fs, dir, tables.get(n)!, out.tablePath(n))).bytes;
    const segments = index.files.filter((f) => f.kind === 'wal').sort((a, b) => a.number! - b.number!);
    const wal = await out.addWal(
      segments.map((f) => f.number!),
      async (seg, file) => (await restoreFile(fs, dir, segments.find((f) => f.number === seg)!, file)).bytes,
    );
    bytes += wal.bytes;
    await out.commit(persisted, state);
    return { id, dbId: index.dbId, dir: to, files: index.files.length, bytes, durationMs: performance.now() - t0 };
  } catch (err) {
    await out.abort();
    throw err;
  }
}

/**
 * Deletes every backup of `backupDir` but the `keep` newest, then every file no remaining backup
 * needs (tables included) and what crashed backups left. Each index is deleted first (the
 * backup is gone from then on), then its files. Takes the directory's lock.
 */
export async function pruneBackups(backupDir: unknown, options: PruneOptions): Promise<PruneInfo> {
  const dir = checkDirArg(backupDir, 'the backup directory');
  if (typeof options !== 'object' || options === null) throw new TypeError('pruneBackups takes { keep }');
  const fs = fsOf(options, 'pruneBackups');
  const keep: unknown = options.keep;
  if (!isNat(keep) || keep < 1) throw new RangeError(`keep must be a whole number from 1, got ${String(keep)}`);
  await ioStep('stat', dir, () => fs.stat(dir));
  const lock = await lockBackupDir(fs, dir);
  try {
    const ids = await backupIds(fs, dir);
    const kept = ids.slice(Math.max(0, ids.length - keep));
    const deleted = ids.slice(0, Math.max(0, ids.length - keep));
    // Every kept index is read (and checked) before anything is deleted.
    const indexes: BackupIndex[] = [];
    for (const id of kept) indexes.push(await readIndex(fs, dir, id));
    let filesRemoved = 0;
    let bytesRemoved = 0;
    for (const id of deleted) {
      const b = await unlinkQuietly(fs, path.join(dir, indexFileName(id)));
      if (b >= 0) {
        filesRemoved++;
        bytesRemoved += b;
      }
    }
    if (deleted.length > 0) await ioStep('syncDir', dir, () => fs.syncDir(dir));
    const g = await collectGarbage(fs, dir, indexes, true);
    return { deleted, kept, filesRemoved: filesRemoved + g.files, bytesRemoved: bytesRemoved + g.bytes };
  } finally {
    await lock.release().catch(() => undefined);
  }
}
