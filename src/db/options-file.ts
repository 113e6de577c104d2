/**
 * The `OPTIONS` file: the options that decide what the stored bytes mean, kept in the DB
 * directory (as LevelDB and RocksDB keep theirs) so that a reopen with other ones is refused
 * with `InvalidConfigError` instead of reading wrong values (utf8 `'5'` read as msgpack is 53).
 *
 * What is persisted, and why:
 * - `keyEncoding`, `valueEncoding`: they give the bytes their meaning. A reopen with another
 *   value is an `InvalidConfigError` naming the option and both values. (A caller who leaves the
 *   option out gets the default, which is checked like any value: the error says what to pass.)
 * - `maxKeySize`, `maxValueSize`, as high-water marks: the largest ever used to open this DB.
 *   They do not change what bytes mean, so a reopen may lower them (new writes obey the lower
 *   limit); but WAL recovery must accept every record a previous open may have acknowledged, and
 *   a record over its limit at the tail of the log is dropped as a torn write. The DB therefore
 *   opens the WAL with the limits recorded here, not the current ones, and an open with a larger
 *   limit rewrites the file first, before any write can use it.
 * - `formatVersion`: the generation of the DB's on-disk data format (manifest, tables, WAL), 1
 *   today, so that a future sediment that changes it can refuse or migrate older DBs, and an
 *   older sediment refuses newer ones instead of failing on their files.
 * - Not `compression`: every table block records its own compression (and every WAL record its
 *   own), so tables written under one setting read under any other. Nor anything else: sizes,
 *   triggers, fsync, recovery mode tune behaviour, not meaning.
 *
 * Layout: three lines of ASCII text, readable with `cat`:
 * ```
 * SDMTOPTS 1\n
 * {"formatVersion":1,"keyEncoding":"utf8","valueEncoding":"msgpack","maxKeySize":65536,"maxValueSize":16777216}\n
 * crc32c 89abcdef\n
 * ```
 * Line 1: magic and file version (bumped for any change an older reader must not ignore; fields
 * it does not know in the body are otherwise ignored). Line 2: the JSON body, on one line. Line
 * 3: the masked CRC-32C (`src/util/crc32c.ts`) of every byte of lines 1 and 2, as 8 lowercase hex
 * digits. Any other byte sequence, any failed check, is a `CorruptionError` naming the file.
 *
 * Writing is atomic: `OPTIONS.tmp` is written and fdatasynced, renamed over `OPTIONS`, and the
 * directory fsynced; a crash anywhere leaves the old file (or none) or the new one, plus perhaps
 * a stale `OPTIONS.tmp`, which the next write replaces and `DB.open` deletes.
 *
 * A DB directory without `OPTIONS`:
 * - without `CURRENT` too, nothing was ever committed (a new DB, or a first open that died before
 *   its first manifest): `OPTIONS` is written from the current options, over any file a dead open
 *   left, before the first `CURRENT` exists. So a committed DB always has its `OPTIONS`.
 * - with `CURRENT`, it was made by sediment 0.1.0, which had no such file: the current encodings
 *   are adopted and written (nothing can check what 0.1.0 wrote), and bind every later open. The
 *   size limits recorded are the largest 0.1.0 accepted, since nothing says which ones wrote its
 *   WAL, and a record over the recovery limit at the WAL's tail would be dropped as torn.
 *
 * @module
 */
import * as path from 'node:path';
import { CorruptionError, IoError, InvalidConfigError, errnoOf } from '../errors.js';
import type { FileSystem } from '../fs/types.js';
import { MAX_ENTRY_SIZE } from '../sstable/table-writer.js';
import { maskedCrc32c } from '../util/crc32c.js';
import { KEY_ENCODINGS, VALUE_ENCODINGS, type KeyEncoding, type ValueEncoding } from './encoding.js';
import { OPTIONS_FILE, OPTIONS_TMP_FILE } from './filenames.js';
import { readSmallFile, replaceFile } from './manifest.js';
import type { ResolvedDBOptions } from './options.js';

/** Version of the file's layout (line 1). */
export const OPTIONS_FILE_VERSION = 1;
/**
 * Generation of the DB's on-disk data format that this sediment writes (it reads 1 and 2):
 * 1: one WAL record per op, seqs counted at replay; 2: one WAL record per write, an opaque
 * record holding a write batch with its seqs (src/db/write-batch.ts). A DB of format 1 is
 * upgraded by its first writable open (see `DB`'s `#upgrade`); an older sediment refuses 2.
 */
export const DB_FORMAT_VERSION = 2;
/** The first format whose WAL holds write batches. */
export const WRITE_BATCH_FORMAT = 2;

/**
 * The largest `maxKeySize` and `maxValueSize` sediment 0.1.0 accepted (its `DB.open` bounds, the
 * same as today's): the limits a DB it made is adopted with.
 */
export const LEGACY_MAX_KEY_SIZE = 16 * 1024 * 1024;
export const LEGACY_MAX_VALUE_SIZE = MAX_ENTRY_SIZE - 16 * 1024 * 1024;

const MAGIC = 'SDMTOPTS';
/** A valid file is about 150 bytes; anything past this is damage and is not read whole. */
const MAX_OPTIONS_FILE = 64 * 1024;
const TRAILER = /\ncrc32c ([0-9a-f]{8})\n$/;

/** What the `OPTIONS` file records. */
export interface PersistedOptions {
  /** The DB's on-disk data format generation ({@link DB_FORMAT_VERSION}). */
  formatVersion: number;
  keyEncoding: KeyEncoding;
  valueEncoding: ValueEncoding;
  /** The largest `maxKeySize` this DB was ever opened with. */
  maxKeySize: number;
  /** The largest `maxValueSize` this DB was ever opened with. */
  maxValueSize: number;
}

/** The options {@link PersistedOptions} derive from. */
export type PersistedSource = Pick<ResolvedDBOptions, 'keyEncoding' | 'valueEncoding' | 'maxKeySize' | 'maxValueSize'>;

/** What a new DB opened with `resolved` records. */
export function persistedOptionsOf(resolved: PersistedSource): PersistedOptions {
  return {
    formatVersion: DB_FORMAT_VERSION,
    keyEncoding: resolved.keyEncoding,
    valueEncoding: resolved.valueEncoding,
    maxKeySize: resolved.maxKeySize,
    maxValueSize: resolved.maxValueSize,
  };
}

/** The bytes of an `OPTIONS` file recording `p`. */
export function encodeOptionsFile(p: PersistedOptions): Buffer {
  // Fixed field order: the same options always make the same bytes.
  const body = JSON.stringify({
    formatVersion: p.formatVersion,
    keyEncoding: p.keyEncoding,
    valueEncoding: p.valueEncoding,
    maxKeySize: p.maxKeySize,
    maxValueSize: p.maxValueSize,
  });
  const head = Buffer.from(`${MAGIC} ${OPTIONS_FILE_VERSION}\n${body}\n`, 'latin1');
  return Buffer.concat([head, Buffer.from(`crc32c ${hex8(maskedCrc32c(head))}\n`, 'latin1')]);
}

/** Decodes an `OPTIONS` file's bytes; throws `CorruptionError` naming `file` for anything but a valid one. */
export function decodeOptionsFile(bytes: Uint8Array, file: string): PersistedOptions {
  const fail = (reason: string, offset = 0): never => {
    throw new CorruptionError(reason, { file, offset });
  };
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // latin1 maps bytes one to one: offsets in the text are offsets in the file.
  const text = buf.toString('latin1');
  const trailer = TRAILER.exec(text);
  if (!trailer)
    fail(
      'OPTIONS file does not end with its checksum line (truncated or damaged)',
      Math.max(0, text.lastIndexOf('\n', text.length - 2) + 1),
    );
  const covered = trailer!.index + 1;
  if (maskedCrc32c(buf, 0, covered) !== Number.parseInt(trailer![1]!, 16)) fail('OPTIONS checksum mismatch', covered);
  const lines = text.slice(0, covered).split('\n');
  if (lines.length !== 3) fail('OPTIONS file must have a header line and one body line');
  const header = /^SDMTOPTS (\d{1,9})$/.exec(lines[0]!);
  if (!header) fail('not a sediment OPTIONS file (bad header)');
  const version = Number(header![1]);
  if (version !== OPTIONS_FILE_VERSION)
    fail(`unsupported OPTIONS file version ${version} (this sediment reads ${OPTIONS_FILE_VERSION}; written by a newer one?)`);
  const bodyAt = lines[0]!.length + 1;
  let body: unknown;
  try {
    body = JSON.parse(lines[1]!);
  } catch {
    fail('OPTIONS body is not JSON', bodyAt);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) fail('OPTIONS body has the wrong shape (not an object)', bodyAt);
  const o = body as { [k: string]: unknown };
  const nat = (name: string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      fail(
        `OPTIONS field ${name} is not an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`}: ${JSON.stringify(v)}`,
        bodyAt,
      );
    }
    return v as number;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[]): T => {
    const v = o[name];
    if (typeof v !== 'string' || !allowed.includes(v as T))
      fail(`OPTIONS field ${name} is not one of ${allowed.join(', ')}: ${JSON.stringify(v)}`, bodyAt);
    return v as T;
  };
  const formatVersion = nat('formatVersion', 1);
  if (formatVersion > DB_FORMAT_VERSION) {
    fail(`DB format version ${formatVersion} is newer than this sediment supports (${DB_FORMAT_VERSION})`, bodyAt);
  }
  return {
    formatVersion,
    keyEncoding: oneOf('keyEncoding', KEY_ENCODINGS),
    valueEncoding: oneOf('valueEncoding', VALUE_ENCODINGS),
    // No DB was ever opened with larger limits (DB.open's bounds, the same in 0.1.0): a larger one
    // is damage, not a limit to open the WAL with.
    maxKeySize: nat('maxKeySize', 1, LEGACY_MAX_KEY_SIZE),
    maxValueSize: nat('maxValueSize', 0, LEGACY_MAX_VALUE_SIZE),
  };
}

/**
 * Reads `dir`'s `OPTIONS` file. Resolves undefined when there is none; rejects with
 * `CorruptionError` naming the file if it is damaged, `IoError` if the OS fails.
 */
export async function readOptionsFile(fs: FileSystem, dir: string): Promise<PersistedOptions | undefined> {
  const file = path.join(dir, OPTIONS_FILE);
  let bytes: Buffer;
  try {
    bytes = await readSmallFile(fs, file, MAX_OPTIONS_FILE);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    if (err instanceof CorruptionError) throw err;
    throw new IoError('read', file, err);
  }
  return decodeOptionsFile(bytes, file);
}

/**
 * Makes `p` the content of `dir`'s `OPTIONS` file, atomically and durably: resolves once the new
 * file is on stable storage under its name. Rejects with `IoError` if the OS fails (the old file,
 * if any, is then intact, unless only the final directory fsync failed).
 */
export async function writeOptionsFile(fs: FileSystem, dir: string, p: PersistedOptions): Promise<void> {
  await replaceFile(fs, path.join(dir, OPTIONS_FILE), path.join(dir, OPTIONS_TMP_FILE), encodeOptionsFile(p));
}

/**
 * Checks the options a DB is opened with against those its `OPTIONS` file records, and returns
 * what the file must record from now on: `stored` with the size limits raised to the current
 * ones where those are larger, or, without `stored` (a DB made by 0.1.0), the current encodings
 * with the largest size limits 0.1.0 accepted ({@link LEGACY_MAX_KEY_SIZE},
 * {@link LEGACY_MAX_VALUE_SIZE}). Throws
 * `InvalidConfigError` naming the option and both values if an encoding differs.
 */
export function checkPersistedOptions(stored: PersistedOptions | undefined, resolved: PersistedSource): PersistedOptions {
  if (stored === undefined) {
    // A DB made by 0.1.0 (a committed DB without OPTIONS): nothing says which limits wrote its
    // WAL, and WAL recovery drops a record over its limit at the tail as a torn write, for good.
    // So the high-water marks start at the largest limits 0.1.0 accepted: every record it could
    // have acknowledged is read back. New writes still obey the limits given.
    // Its WAL holds one record per op: format 1, until the open upgrades it.
    return { ...persistedOptionsOf(resolved), formatVersion: 1, maxKeySize: LEGACY_MAX_KEY_SIZE, maxValueSize: LEGACY_MAX_VALUE_SIZE };
  }
  for (const name of ['keyEncoding', 'valueEncoding'] as const) {
    if (stored[name] !== resolved[name]) {
      throw new InvalidConfigError(
        name,
        `this DB was created with ${name} '${stored[name]}' (recorded in its ${OPTIONS_FILE} file), but is opened with '${resolved[name]}'; ` +
          `open it with ${name}: '${stored[name]}'`,
      );
    }
  }
  return {
    ...stored,
    maxKeySize: Math.max(stored.maxKeySize, resolved.maxKeySize),
    maxValueSize: Math.max(stored.maxValueSize, resolved.maxValueSize),
  };
}

/** Whether two {@link PersistedOptions} record the same thing. */
export function samePersistedOptions(a: PersistedOptions, b: PersistedOptions): boolean {
  return (
    a.formatVersion === b.formatVersion &&
    a.keyEncoding === b.keyEncoding &&
    a.valueEncoding === b.valueEncoding &&
    a.maxKeySize === b.maxKeySize &&
    a.maxValueSize === b.maxValueSize
  );
}

/**
 * What `DB.open` does with the `OPTIONS` file; resolves to the options it records once they are
 * durable (the WAL is to be opened with its `maxKeySize` and `maxValueSize`).
 *
 * - `fresh` (the directory has no `CURRENT`: nothing was ever committed): writes the current
 *   options, over whatever an open that died earlier left. Must complete before the first
 *   manifest is installed.
 * - otherwise: reads the file (`CorruptionError` if damaged), checks it
 *   ({@link checkPersistedOptions}: `InvalidConfigError` on a mismatch, before anything is
 *   written), and writes it only if it was missing (a DB made by 0.1.0) or a limit was raised.
 */
export async function openOptionsFile(
  fs: FileSystem,
  dir: string,
  resolved: PersistedSource,
  { fresh }: { fresh: boolean },
): Promise<PersistedOptions> {
  if (fresh) {
    const p = persistedOptionsOf(resolved);
    await writeOptionsFile(fs, dir, p);
    return p;
  }
  const stored = await readOptionsFile(fs, dir);
  const p = checkPersistedOptions(stored, resolved);
  if (stored === undefined || !samePersistedOptions(stored, p)) await writeOptionsFile(fs, dir, p);
  return p;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}
