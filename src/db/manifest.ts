/**
 * The manifest: the DB's durable record of which tables are live at which level, how far the
 * WAL has been flushed into them, and the counters that must survive a restart.
 *
 * Each change writes a complete new manifest (the table set is small) and switches `CURRENT`
 * to it atomically, LevelDB style:
 * 1. write `MANIFEST-<n>`, fdatasync it;
 * 2. write `CURRENT.tmp` naming it (with a checksum), fdatasync it;
 * 3. rename `CURRENT.tmp` over `CURRENT`, fsync the directory;
 * 4. only then delete the previous manifest.
 * A crash anywhere leaves `CURRENT` naming a complete manifest, old or new.
 *
 * `MANIFEST-<n>` layout (docs/FORMAT.md, "DB directory", has the details and an example):
 * ```
 *  0        8        12          16         20
 *  +--------+--------+-----------+----------+----------------------+
 *  | magic  | ver u32| length u32| crc u32  | payload (msgpack)    |
 *  +--------+--------+-----------+----------+----------------------+
 *  magic "SDMTMANI"; length = file size - 20; crc: masked CRC-32C of the payload.
 *  payload: a map { nextFileNumber, lastSeq, flushedThrough: { segmentId, offset } | nil,
 *  levels: [[{ fileNumber, size, smallest: bin, largest: bin, minSeq, maxSeq, entries }]],
 *  compactPointers?: [bin | nil] },
 *  written in this order (compactPointers only when a level has one); every number a
 *  non-negative integer below 2^53.
 * ```
 * `CURRENT` is one line: `MANIFEST-<n> <crc of that name, 8 hex digits>\n`.
 *
 * @module
 */
import * as path from 'node:path';
import { Packr } from 'msgpackr';
import { CorruptionError, IoError, errnoOf, ioStep } from '../errors.js';
import type { FileSystem } from '../fs/types.js';
import { maskedCrc32c } from '../util/crc32c.js';
import type { Position } from '../wal/position.js';
import { CURRENT_FILE, CURRENT_TMP_FILE, manifestFileName, parseFileName } from './filenames.js';

export const MANIFEST_VERSION = 1;
const MAGIC = Buffer.from('SDMTMANI', 'latin1');
/** Bytes before the payload. */
export const MANIFEST_HEADER_SIZE = 20;
const HEADER = MANIFEST_HEADER_SIZE;
/** A manifest is a few KB; anything over this is damage, not a manifest. */
const MAX_MANIFEST = 64 * 2 ** 20;

/** One live table. */
export interface TableMeta {
  fileNumber: number;
  /** File size in bytes. */
  size: number;
  smallest: Uint8Array;
  largest: Uint8Array;
  minSeq: number;
  maxSeq: number;
  entries: number;
}

/** The durable state of the DB. */
export interface ManifestState {
  /** Number of the next table file (manifests are numbered apart: previous + 1). */
  nextFileNumber: number;
  /** Highest sequence number in the tables. */
  lastSeq: number;
  /** Position of the last WAL record whose effect is in the tables; replay starts after it. */
  flushedThrough: Position | null;
  /** Tables per level; L0 newest first, other levels ordered by key. */
  levels: TableMeta[][];
  /**
   * Per level, the largest key last compacted out of it by a size compaction (LevelDB's
   * compaction pointer): the next one starts after it, round robin. null or missing: from the
   * start. A manifest written before this field existed has none.
   */
  compactPointers?: (Uint8Array | null)[];
}

const packr = new Packr({ useRecords: false, moreTypes: false });

/** The bytes of a manifest file recording `state`. */
export function encodeManifest(state: ManifestState): Buffer {
  // Fixed field order, and only the fields of the format: the same state always makes the same
  // bytes, whatever order its objects' properties were set in.
  const payload = packr.pack({
    nextFileNumber: state.nextFileNumber,
    lastSeq: state.lastSeq,
    flushedThrough: state.flushedThrough && { segmentId: state.flushedThrough.segmentId, offset: state.flushedThrough.offset },
    levels: state.levels.map((level) =>
      level.map((t) => ({
        fileNumber: t.fileNumber,
        size: t.size,
        smallest: t.smallest,
        largest: t.largest,
        minSeq: t.minSeq,
        maxSeq: t.maxSeq,
        entries: t.entries,
      })),
    ),
    // Only when a level has one: a manifest without pointers keeps the bytes it always had.
    ...(state.compactPointers?.some((p) => p)
      ? { compactPointers: state.compactPointers.map((p) => (p ? Buffer.from(p.buffer, p.byteOffset, p.byteLength) : null)) }
      : {}),
  });
  const out = Buffer.alloc(HEADER + payload.length);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(MANIFEST_VERSION, 8);
  out.writeUInt32LE(payload.length, 12);
  out.writeUInt32LE(maskedCrc32c(payload), 16);
  payload.copy(out, HEADER);
  return out;
}

/** Decodes a manifest file's bytes; throws `CorruptionError` for anything but a valid one. */
export function decodeManifest(bytes: Uint8Array, file: string): ManifestState {
  const fail = (reason: string, offset = 0): never => {
    throw new CorruptionError(reason, { file, offset });
  };
  if (bytes.length < HEADER) fail('manifest shorter than its header');
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!buf.subarray(0, 8).equals(MAGIC)) fail('not a sediment manifest (bad magic)');
  const version = buf.readUInt32LE(8);
  if (version !== MANIFEST_VERSION) fail(`unsupported manifest version ${version}`, 8);
  const length = buf.readUInt32LE(12);
  if (length !== buf.length - HEADER) fail(`manifest length ${length} does not match the file`, 12);
  const payload = buf.subarray(HEADER);
  if (buf.readUInt32LE(16) !== maskedCrc32c(payload)) fail('manifest checksum mismatch', 16);
  let state: unknown;
  try {
    state = packr.unpack(payload);
  } catch {
    fail('manifest payload does not decode', HEADER);
  }
  if (!isManifestState(state)) fail('manifest payload has the wrong shape', HEADER);
  return state as ManifestState;
}

function isNat(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isManifestState(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  if (!isNat(s.nextFileNumber) || !isNat(s.lastSeq) || !Array.isArray(s.levels)) return false;
  const f = s.flushedThrough as Record<string, unknown> | null | undefined;
  if (f !== null && (typeof f !== 'object' || !isNat(f?.segmentId) || !isNat(f?.offset))) return false;
  const pointers = s.compactPointers;
  if (pointers !== undefined && (!Array.isArray(pointers) || !pointers.every((p) => p === null || p instanceof Uint8Array))) return false;
  return s.levels.every(
    (level) =>
      Array.isArray(level) &&
      level.every((t: unknown) => {
        const m = t as Record<string, unknown>;
        return (
          typeof m === 'object' &&
          m !== null &&
          isNat(m.fileNumber) &&
          isNat(m.size) &&
          isNat(m.minSeq) &&
          isNat(m.maxSeq) &&
          isNat(m.entries) &&
          m.smallest instanceof Uint8Array &&
          m.largest instanceof Uint8Array
        );
      }),
  );
}

/** The bytes of a `CURRENT` naming manifest `number`: its name, a space, the name's crc in 8 hex digits, a newline. */
export function encodeCurrent(number: number): Buffer {
  return Buffer.from(currentLine(manifestFileName(number)), 'latin1');
}

/** The manifest number a `CURRENT` file's bytes name; throws `CorruptionError` naming `file` for anything but a valid one. */
export function decodeCurrent(bytes: Uint8Array, file: string): number {
  const line = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  const m = /^(\S+) [0-9a-f]{8}\n$/.exec(line);
  const parsed = m ? parseFileName(m[1]!) : undefined;
  if (parsed?.type !== 'manifest' || currentLine(m![1]!) !== line) throw new CorruptionError('CURRENT is damaged', { file, offset: 0 });
  return parsed.number;
}

function currentLine(name: string): string {
  return `${name} ${maskedCrc32c(Buffer.from(name, 'latin1')).toString(16).padStart(8, '0')}\n`;
}

/** Reads a whole (small) file. */
export async function readSmallFile(fs: FileSystem, file: string, limit: number): Promise<Buffer> {
  const handle = await fs.open(file, 'read');
  try {
    const size = await handle.size();
    if (size > limit) throw new CorruptionError(`file of ${size} bytes is larger than any valid one`, { file, offset: 0 });
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = await handle.read(buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Makes `file` hold `bytes`, atomically and durably: written whole under `tmp` (a leftover of an
 * earlier attempt removed first) and fdatasynced, renamed over `file`, the directory synced. A
 * crash leaves the old content or the new one (and perhaps `tmp`). Rejects with `IoError` naming
 * the step that failed; the old file is intact unless only the directory sync failed.
 */
export async function replaceFile(fs: FileSystem, file: string, tmp: string, bytes: Uint8Array): Promise<void> {
  await ioStep('unlink', tmp, () => fs.unlink(tmp).catch((err: unknown) => (errnoOf(err) === 'ENOENT' ? undefined : Promise.reject(err))));
  await ioStep('write', tmp, () => writeNewFile(fs, tmp, bytes));
  await ioStep('rename', tmp, () => fs.rename(tmp, file));
  const dir = path.dirname(file);
  await ioStep('syncDir', dir, () => fs.syncDir(dir));
}

/** Creates `file` with `bytes`, durably (fdatasync); the directory entry is the caller's to sync. */
export async function writeNewFile(fs: FileSystem, file: string, bytes: Uint8Array): Promise<void> {
  const handle = await fs.open(file, 'create');
  try {
    let done = 0;
    while (done < bytes.length) {
      const n = await handle.write(bytes, done, bytes.length - done, done);
      if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      done += n;
    }
    await handle.datasync();
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Reads `CURRENT` and the manifest it names. Resolves undefined when the directory has no
 * `CURRENT` (a new DB); throws `CorruptionError` if `CURRENT` or its manifest is damaged or
 * missing.
 */
export async function readCurrentManifest(fs: FileSystem, dir: string): Promise<{ number: number; state: ManifestState } | undefined> {
  const currentFile = path.join(dir, CURRENT_FILE);
  let current: Buffer;
  try {
    current = await readSmallFile(fs, currentFile, 4096);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    if (err instanceof CorruptionError) throw err;
    throw new IoError('read', currentFile, err);
  }
  const number = decodeCurrent(current, currentFile);
  const name = manifestFileName(number);
  const file = path.join(dir, name);
  let bytes: Buffer;
  try {
    bytes = await readSmallFile(fs, file, MAX_MANIFEST);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') throw new CorruptionError(`CURRENT names ${name}, which is missing`, { file, offset: 0 });
    if (err instanceof CorruptionError) throw err;
    throw new IoError('read', file, err);
  }
  return { number, state: decodeManifest(bytes, file) };
}

/**
 * Makes `state` the DB's manifest, atomically and durably, as manifest number `number`; then
 * deletes manifest `previous` (if any).
 */
export async function installManifest(
  fs: FileSystem,
  dir: string,
  number: number,
  state: ManifestState,
  previous: number | undefined,
): Promise<void> {
  const file = path.join(dir, manifestFileName(number));
  await ioStep('write', file, () => writeNewFile(fs, file, encodeManifest(state)));
  await replaceFile(fs, path.join(dir, CURRENT_FILE), path.join(dir, CURRENT_TMP_FILE), encodeCurrent(number));
  if (previous !== undefined && previous !== number) {
    const old = path.join(dir, manifestFileName(previous));
    await ioStep('unlink', old, () =>
      fs.unlink(old).catch((err: unknown) => (errnoOf(err) === 'ENOENT' ? undefined : Promise.reject(err))),
    );
  }
}
