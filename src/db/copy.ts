/**
 * What checkpoints, backups and restores share: the instant of a DB they copy
 * ({@link CopySource}), copying a file (or a prefix of one) with its checksum, hard links with a
 * fallback to copying, and {@link TargetWriter}, which assembles a new DB directory in an order
 * that a crash cannot turn into a DB that opens with the wrong data.
 *
 * The order a new DB directory is written in (`CURRENT` last, as a new DB's first open does):
 * 1. the target is claimed: it must not exist or be an empty directory; it is created durably
 *    and locked (a `DB.open` of it meanwhile gets `LOCKED`);
 * 2. the tables, each linked or copied and fdatasynced;
 * 3. `wal/`: each segment copied and fdatasynced, then `SEGMENTS` (written, synced, renamed,
 *    `wal/` fsynced);
 * 4. `OPTIONS` (through `OPTIONS.tmp`, the directory fsynced: this also makes the tables' and
 *    `wal/`'s entries durable);
 * 5. `MANIFEST-000001`, then `CURRENT` naming it (through `CURRENT.tmp`), the directory fsynced.
 * Until the rename in 5 the directory has no `CURRENT`: a crash leaves a directory that is
 * clearly not a DB. Opening it then fails (`CURRENT is missing but the directory holds tables`,
 * or `... the WAL holds N records`), or, when the copy had neither, starts an empty DB there,
 * which is what the copy held. A copy that fails (not a crash) removes what it wrote.
 *
 * @module
 */
import * as path from 'node:path';
import { CorruptionError, IoError, errnoOf, ioStep } from '../errors.js';
import { claimDirectory } from '../fs/durable-dir.js';
import { isLockSocketFileName, LOCK_FILE } from '../fs/lock-names.js';
import { readFully } from '../fs/read.js';
import type { DirectoryLock, FileHandle, FileSystem } from '../fs/types.js';
import { crc32cAppend, maskCrc } from '../util/crc32c.js';
import { segmentFileName } from '../wal/format.js';
import type { Position } from '../wal/position.js';
import { STATE_FILE_NAME, STATE_TMP_FILE_NAME, StateFile, stateOf } from '../wal/segment-state.js';
import { CURRENT_FILE, CURRENT_TMP_FILE, OPTIONS_FILE, OPTIONS_TMP_FILE, WAL_DIR, manifestFileName, tableFileName } from './filenames.js';
import { installManifest, type ManifestState } from './manifest.js';
import { writeOptionsFile, type PersistedOptions } from './options-file.js';

/**
 * One instant of a DB, held for a copy: the manifest state then (its tables stay on disk while
 * the version is pinned), and the WAL's end then (its segments stay while the WAL is retained).
 * The DB builds it synchronously, so that no write resolves between the two.
 */
export interface CopySource {
  fs: FileSystem;
  dir: string;
  /** The table set and counters at the instant (`levels` are the pinned version's tables). */
  state: Readonly<ManifestState>;
  /** The WAL's write position at the instant: the copy's log ends exactly here. */
  walEnd: Position;
  /** The WAL's segment ids at the instant, ascending, the last one `walEnd`'s. */
  walSegmentIds: readonly number[];
  /** What the DB's `OPTIONS` must say. */
  persisted: PersistedOptions;
  /** The handle is read-only: nothing may be written into `dir`. */
  readOnly: boolean;
  /** Ends the holds (idempotent). */
  release(): void;
}

/** The segments a copy of `source` needs: from the flushed position's segment through `walEnd`'s. */
export function neededSegments(source: CopySource): number[] {
  const from = source.state.flushedThrough?.segmentId ?? 0;
  return source.walSegmentIds.filter((id) => id >= from);
}

/** Bytes moved per read and write when copying. */
const CHUNK = 1 << 20;

/** What {@link copyFile} copied. */
export interface Copied {
  bytes: number;
  /** The masked CRC-32C of the bytes copied. */
  crc: number;
}

/**
 * Copies `from` into a new file `to` (created exclusively) and fdatasyncs it: the whole file, or
 * its first `length` bytes. A source shorter than `length` is a `CorruptionError` naming it.
 * The directory entry is the caller's to sync.
 */
export async function copyFile(fs: FileSystem, from: string, to: string, length?: number, toFs: FileSystem = fs): Promise<Copied> {
  const src = await ioStep('open', from, () => fs.open(from, 'read'));
  let dst: FileHandle | undefined;
  try {
    const size = length ?? (await ioStep('stat', from, () => src.size()));
    dst = await ioStep('create', to, () => toFs.open(to, 'create'));
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)));
    let crc = 0;
    let done = 0;
    while (done < size) {
      const want = Math.min(buf.length, size - done);
      const chunk = want === buf.length ? buf : buf.subarray(0, want);
      const got = await readFully(src, chunk, done);
      if (got < want) throw new CorruptionError(`file ends at ${done + got} bytes, ${size} expected`, { file: from, offset: done + got });
      crc = crc32cAppend(crc, chunk, 0, want);
      await writeAll(dst, chunk, want, done);
      done += want;
    }
    const handle = dst;
    await ioStep('datasync', to, () => handle.datasync());
    return { bytes: size, crc: maskCrc(crc) };
  } finally {
    await src.close().catch(() => undefined);
    await dst?.close().catch(() => undefined);
  }
}

async function writeAll(handle: FileHandle, buf: Uint8Array, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const n = await ioStep('write', handle.path, () => handle.write(buf, done, length - done, position + done));
    if (n <= 0) throw new IoError('write', handle.path, Object.assign(new Error('write made no progress'), { code: 'EIO' }));
    done += n;
  }
}

/** The masked CRC-32C and size of a whole file, read in chunks. */
export async function checksumFile(fs: FileSystem, file: string): Promise<Copied> {
  const h = await ioStep('open', file, () => fs.open(file, 'read'));
  try {
    const size = await ioStep('stat', file, () => h.size());
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)));
    let crc = 0;
    for (let at = 0; at < size; ) {
      const want = Math.min(buf.length, size - at);
      const got = await readFully(h, want === buf.length ? buf : buf.subarray(0, want), at);
      if (got === 0) break;
      crc = crc32cAppend(crc, buf, 0, got);
      at += got;
    }
    return { bytes: size, crc: maskCrc(crc) };
  } finally {
    await h.close().catch(() => undefined);
  }
}

/** Errors of `link` that mean "no hard link here", not "something is wrong": copy instead. */
const NO_LINK = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'ENOSYS']);

/**
 * Makes `to` a hard link to `from` where the file system can (same file system, links
 * supported), else a copy. Only for files that never change (tables): a link shares the bytes.
 */
export async function linkOrCopy(fs: FileSystem, from: string, to: string): Promise<{ linked: boolean; bytes: number }> {
  if (fs.link) {
    try {
      await fs.link(from, to);
      return { linked: true, bytes: 0 };
    } catch (err) {
      if (!NO_LINK.has(errnoOf(err) ?? '')) throw new IoError('link', from, err);
    }
  }
  const { bytes } = await copyFile(fs, from, to);
  return { linked: false, bytes };
}

/** An errno-style error, for refusals reported as `IoError`s. */
export function errnoError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/** Names a lock leaves in a directory: not content. */
function isLockName(name: string): boolean {
  return name === LOCK_FILE || isLockSocketFileName(name);
}

/**
 * Refuses `target` unless it does not exist or is an empty directory: `IoError` with errno
 * `ENOTDIR` (a file) or `ENOTEMPTY`, naming `op`. Writes nothing. Resolves whether it exists.
 */
async function checkTarget(fs: FileSystem, target: string, op: string): Promise<boolean> {
  let isDirectory: boolean;
  try {
    isDirectory = (await fs.stat(target)).isDirectory;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw new IoError('stat', target, err);
  }
  if (!isDirectory) throw new IoError(op, target, errnoError('ENOTDIR', `${target} is not a directory`));
  const names = await ioStep('readdir', target, () => fs.readdir(target));
  if (names.some((n) => !isLockName(n))) {
    throw new IoError(op, target, errnoError('ENOTEMPTY', `${target} is not empty: a copy goes into a new or empty directory`));
  }
  return true;
}

/** What {@link TargetWriter.addWal} wrote. */
export interface WalCopy {
  segments: number;
  bytes: number;
}

/**
 * Writes a new DB directory in the order of the module comment: {@link claim}, then
 * {@link addTable} for each table and {@link addWal} once, then {@link commit}; {@link abort}
 * (after a failure) removes what was written and releases the target.
 */
export class TargetWriter {
  readonly #fs: FileSystem;
  readonly #target: string;
  readonly #op: string;
  #lock: DirectoryLock | undefined;
  #created = false;
  /** Files this writer may have made, for abort. */
  readonly #files: string[] = [];
  #walDir: string | undefined;

  constructor(fs: FileSystem, target: string, op: string) {
    this.#fs = fs;
    this.#target = target;
    this.#op = op;
  }

  get dir(): string {
    return this.#target;
  }

  /** Checks and claims the target (see the module comment, step 1). Nothing is written if it refuses. */
  async claim(): Promise<void> {
    const existed = await checkTarget(this.#fs, this.#target, this.#op);
    this.#lock = await claimDirectory(this.#fs, this.#target);
    this.#created = !existed;
    try {
      // Another copy may have claimed it between the check and the lock, and finished.
      await checkTarget(this.#fs, this.#target, this.#op);
    } catch (err) {
      await this.#lock.release().catch(() => undefined);
      this.#lock = undefined;
      this.#created = false;
      throw err;
    }
  }

  /** The path of table `number` in the target: write it there (then it is removed on abort). */
  tablePath(number: number): string {
    const file = path.join(this.#target, tableFileName(number));
    this.#files.push(file);
    return file;
  }

  /**
   * Writes `wal/`: `put(id, file)` writes each segment of `ids` (ascending) as `file`, then
   * `SEGMENTS` records exactly them (gaps as holes), the next segment being `walEnd`'s + 1.
   */
  async addWal(ids: readonly number[], put: (id: number, file: string) => Promise<number>): Promise<WalCopy> {
    const fs = this.#fs;
    const walDir = path.join(this.#target, WAL_DIR);
    this.#walDir = walDir;
    await ioStep('mkdir', walDir, () => fs.mkdir(walDir));
    let bytes = 0;
    for (const id of ids) {
      const file = path.join(walDir, segmentFileName(id));
      this.#files.push(file);
      bytes += await put(id, file);
    }
    this.#files.push(path.join(walDir, STATE_TMP_FILE_NAME), path.join(walDir, STATE_FILE_NAME));
    const last = ids[ids.length - 1];
    if (last === undefined) throw new Error('internal error: a copy of a WAL with no segment');
    // Creates SEGMENTS durably: written, synced, renamed, wal/ fsynced (the segments' entries too).
    const state = await StateFile.create(fs, walDir, stateOf(ids, last + 1));
    await state.close();
    return { segments: ids.length, bytes };
  }

  /**
   * Writes `OPTIONS`, then the manifest and `CURRENT`, `CURRENT` last: once this resolves the
   * target is a complete DB, durably. Releases the target.
   */
  async commit(options: PersistedOptions, state: ManifestState): Promise<void> {
    const fs = this.#fs;
    const t = this.#target;
    this.#files.push(
      path.join(t, OPTIONS_TMP_FILE),
      path.join(t, OPTIONS_FILE),
      path.join(t, manifestFileName(1)),
      path.join(t, CURRENT_TMP_FILE),
      path.join(t, CURRENT_FILE),
    );
    // Its directory fsync makes every entry made so far durable: tables, wal/.
    await writeOptionsFile(fs, t, options);
    await installManifest(fs, t, 1, state, undefined);
    const lock = this.#lock;
    this.#lock = undefined;
    await lock?.release().catch(() => undefined);
  }

  /** Removes what was written (best effort: a crash's leftovers are the caller's) and releases the target. */
  async abort(): Promise<void> {
    const fs = this.#fs;
    for (const file of this.#files.reverse()) await fs.unlink(file).catch(() => undefined);
    if (this.#walDir) await fs.rmdir?.(this.#walDir).catch(() => undefined);
    await fs.syncDir(this.#target).catch(() => undefined);
    const lock = this.#lock;
    this.#lock = undefined;
    await lock?.release().catch(() => undefined);
    if (this.#created && fs.rmdir) {
      await fs.rmdir(this.#target).catch(() => undefined);
      await fs.syncDir(path.dirname(path.resolve(this.#target))).catch(() => undefined);
    }
  }
}

/** `op`'s argument check for a directory path. */
export function checkDirArg(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(`${what} must be a directory path (a non-empty string)`);
  return value;
}
