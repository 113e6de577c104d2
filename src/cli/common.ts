/**
 * What the `sediment` commands share: exit codes, errors, opening a DB with the encodings its
 * `OPTIONS` file records, reading keys and values from the command line, printing them, writing
 * to stdout with back-pressure, and the progress bar (stderr, TTY only).
 *
 * The CLI sits outside the layers: it imports from db, wal, sstable and fs; nothing imports it.
 *
 * @module
 */
import { once } from 'node:events';
import * as path from 'node:path';
import cliProgress from 'cli-progress';
import { DB } from '../db/index.js';
import type { KeyEncoding, ValueEncoding } from '../db/encoding.js';
import { CURRENT_FILE, fileNumbers, parseFileName, tableFileName } from '../db/filenames.js';
import { readOptionsFile, type PersistedOptions } from '../db/options-file.js';
import { CorruptionError, InvalidConfigError, LockedError, SedimentError, errnoOf } from '../errors.js';
import { nodeFileSystem } from '../fs/node.js';
import { type FileHandle, type FileSystem, requiredOperations } from '../fs/types.js';

/** Exit codes. */
export const EXIT = {
  /** Done; for `verify`, everything is intact. */
  OK: 0,
  /** A negative answer: `get` found no such key, `verify` found damage. */
  NO: 1,
  /** Bad arguments (usage printed), or an encoding flag the DB's `OPTIONS` file contradicts. */
  USAGE: 2,
  /** The directory is held by a live process (a writable open, or `verify`). */
  LOCKED: 3,
  /** Anything else failed: no database there, corruption met while reading, an I/O error. */
  FAILED: 4,
} as const;

/** An error the CLI reports as `sediment: <message>` with its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** A bad argument: the command's usage follows the message, exit 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.USAGE);
  }
}

/** The real file system: every command works on real directories. */
export const fs: FileSystem = nodeFileSystem;

export const KEY_ENCODING_CHOICES: readonly KeyEncoding[] = ['utf8', 'binary'];
export const VALUE_ENCODING_CHOICES: readonly ValueEncoding[] = ['msgpack', 'json', 'utf8', 'binary'];

/** Encoding flags as commander parses them. */
export interface EncodingFlags {
  keyEncoding?: KeyEncoding;
  valueEncoding?: ValueEncoding;
}

/** The encodings (and size limits) a command opens `dir` with. */
export interface Encodings {
  keyEncoding: KeyEncoding;
  valueEncoding: ValueEncoding;
  /** From the `OPTIONS` file, when it is there and readable. */
  stored: PersistedOptions | undefined;
}

/**
 * The encodings for `dir`: the flags if given, else what its `OPTIONS` file records, else the
 * DB defaults (utf8 keys, msgpack values: a DB made by sediment 0.1.0 has no `OPTIONS`). A flag
 * the file contradicts is left for `DB.open` to refuse with its own `InvalidConfigError`. A
 * damaged `OPTIONS` file is left for `DB.open` to report too.
 */
export async function encodingsFor(dir: string, flags: EncodingFlags): Promise<Encodings> {
  const stored = await readOptionsFile(fs, dir).catch(() => undefined);
  return {
    keyEncoding: flags.keyEncoding ?? stored?.keyEncoding ?? 'utf8',
    valueEncoding: flags.valueEncoding ?? stored?.valueEncoding ?? 'msgpack',
    stored,
  };
}

/** A DB handle whose key and value types the CLI treats as opaque. */
export type AnyDB = DB<unknown, unknown>;

/** What {@link openDB} takes beyond the directory. */
export interface OpenOptions {
  readOnly: boolean;
  /** A writable open may create a new DB (only `put --create`). */
  create?: boolean;
  /** Replaces the real file system (progress counting wraps it). */
  fs?: FileSystem;
}

/**
 * Opens the DB in `dir` with the encodings of {@link encodingsFor}. A read-only open takes no
 * lock and writes nothing; a writable one refuses a directory without a DB unless `create`.
 * Errors come out as {@link CliError}s with their exit codes (see {@link describeError}).
 */
export async function openDB(dir: string, flags: EncodingFlags, o: OpenOptions): Promise<{ db: AnyDB; enc: Encodings }> {
  const enc = await encodingsFor(dir, flags);
  if (!o.readOnly && !o.create && !(await exists(path.join(dir, CURRENT_FILE)))) {
    throw new CliError(`no sediment database in ${dir} (no CURRENT file)${(await exists(dir)) ? '' : ': no such directory'}`, EXIT.FAILED);
  }
  try {
    const db = await DB.open<unknown, unknown>(dir, {
      readOnly: o.readOnly,
      keyEncoding: enc.keyEncoding,
      valueEncoding: enc.valueEncoding,
      // The limits this DB was opened with before: a CLI write must not be refused where the
      // application's would not (a read-only open raises nothing).
      ...(enc.stored ? { maxKeySize: enc.stored.maxKeySize, maxValueSize: enc.stored.maxValueSize } : {}),
      ...(o.fs ? { fs: o.fs } : {}),
    });
    return { db, enc };
  } catch (err) {
    throw toCliError(err, dir);
  }
}

/** True when `file` exists. */
export async function exists(file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return false;
    throw err;
  }
}

/** An error as the CLI reports it: its message and exit code. */
export function toCliError(err: unknown, dir?: string): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof LockedError) {
    return new CliError(`LOCKED: ${err.message}; another process has the database open for writing`, EXIT.LOCKED);
  }
  if (err instanceof InvalidConfigError) {
    // An encoding flag that disagrees with the DB's OPTIONS file: the DB's own message.
    return new CliError(`${err.message} (or leave the flag out: the CLI uses the encodings the DB records)`, EXIT.USAGE);
  }
  if (err instanceof CorruptionError) {
    return new CliError(`CORRUPTION: ${err.message}${dir ? ` (sediment verify ${dir} checks everything)` : ''}`, EXIT.FAILED);
  }
  if (err instanceof SedimentError) {
    const noDb = err.code === 'IO' && errnoOf(err) === 'ENOENT' && dir !== undefined;
    return new CliError(noDb ? `no sediment database in ${dir} (${err.message})` : `${err.code}: ${err.message}`, EXIT.FAILED);
  }
  return new CliError(err instanceof Error ? err.message : String(err), EXIT.FAILED);
}

// -- keys and values on the command line ---------------------------------------------------

/** Bytes from strict base64 (standard alphabet, padding optional); anything else is a usage error. */
export function fromBase64(text: string, what: string): Buffer {
  const bytes = Buffer.from(text, 'base64');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || bytes.toString('base64').replace(/=+$/, '') !== text.replace(/=+$/, '')) {
    throw new UsageError(`${what} is not base64: ${JSON.stringify(text)} (binary keys and values are given and printed as base64)`);
  }
  return bytes;
}

/** A key (or bound) from the command line: the text under utf8, base64 under binary. */
export function parseKey(text: string, enc: KeyEncoding, what = 'key'): string | Buffer {
  return enc === 'binary' ? fromBase64(text, what) : text;
}

/** A value from the command line: JSON under msgpack and json, the text under utf8, base64 under binary. */
export function parseValue(text: string, enc: ValueEncoding): unknown {
  switch (enc) {
    case 'utf8':
      return text;
    case 'binary':
      return fromBase64(text, 'value');
    case 'json':
    case 'msgpack':
      try {
        return JSON.parse(text) as unknown;
      } catch (err) {
        throw new UsageError(
          `under valueEncoding '${enc}' the value is JSON, and ${JSON.stringify(text)} is not (${(err as Error).message}); a string is given in quotes: '"text"'`,
        );
      }
  }
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * JSON.stringify's replacer for printed values: bytes (inside a msgpack value) as base64, a
 * bigint as its decimal digits. A Date prints as its ISO string (its own toJSON).
 */
function replacer(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as { [k: string]: unknown })[key];
  if (raw instanceof Uint8Array) return base64(raw);
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** A decoded key as printed: the string under utf8, base64 under binary. */
export function keyOut(key: unknown): string {
  return key instanceof Uint8Array ? base64(key) : String(key);
}

/** A decoded value as a JSON-ready value: as is under msgpack and json, a string under utf8, base64 under binary. */
export function valueOut(value: unknown, enc: ValueEncoding): unknown {
  if (enc === 'binary') return base64(value as Uint8Array);
  return value;
}

/** JSON text of `v` with {@link replacer}. */
export function toJson(v: unknown, indent?: number): string {
  return JSON.stringify(v, replacer, indent) ?? 'null';
}

/** A value as `get` prints it: JSON under msgpack and json, the bare text under utf8, base64 under binary. */
export function formatValue(value: unknown, enc: ValueEncoding): string {
  if (enc === 'utf8') return value as string;
  if (enc === 'binary') return base64(value as Uint8Array);
  return toJson(value);
}

// -- output ------------------------------------------------------------------------------

/** Writes to stdout, waiting for it to drain when it is full (a large dump into a slow pipe). */
export class Out {
  readonly #stream: NodeJS.WriteStream = process.stdout;

  async write(text: string): Promise<void> {
    if (!this.#stream.write(text)) await once(this.#stream, 'drain');
  }

  line(text: string): Promise<void> {
    return this.write(`${text}\n`);
  }
}

/**
 * A reader that stops reading (`sediment dump | head`) closes the pipe: the next write fails
 * with EPIPE, which ends the command quietly instead of as an error.
 */
export function exitQuietlyOnEpipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

// -- progress ----------------------------------------------------------------------------

/** A progress bar, or nothing. */
export interface Progress {
  /** Moves the bar to `value` (of the total). */
  update(value: number): void;
  increment(delta: number): void;
  stop(): void;
}

const NO_PROGRESS: Progress = { update: () => undefined, increment: () => undefined, stop: () => undefined };

/**
 * A progress bar on stderr for long work, only when stderr is a terminal: piped or redirected,
 * stderr carries errors only. Cleared when it stops.
 */
export function progressBar(label: string, total: number, unit: 'bytes' | 'entries'): Progress {
  if (!process.stderr.isTTY || total <= 0) return NO_PROGRESS;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit === 'bytes' ? 'bytes' : 'entries'} | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  let value = 0;
  let stopped = false;
  return {
    update(v) {
      value = Math.min(total, v);
      bar.update(value);
    },
    increment(delta) {
      value = Math.min(total, value + delta);
      bar.update(value);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}

/**
 * `fs` with every byte read from a table file (`*.sst`) counted: what a progress bar of a
 * dump or a compaction measures, as their APIs report no progress of their own.
 */
export function countingTableReads(inner: FileSystem, onRead: (bytes: number) => void): FileSystem {
  const wrap = (h: FileHandle): FileHandle => ({
    path: h.path,
    read: async (buffer, offset, length, position) => {
      const n = await h.read(buffer, offset, length, position);
      onRead(n);
      return n;
    },
    readSync: (buffer, offset, length, position) => {
      const n = h.readSync(buffer, offset, length, position);
      onRead(n);
      return n;
    },
    write: (...a) => h.write(...a),
    writeSync: (...a) => h.writeSync(...a),
    datasync: () => h.datasync(),
    truncate: (size) => h.truncate(size),
    size: () => h.size(),
    close: () => h.close(),
  });
  return {
    ...requiredOperations(inner),
    open: async (file, mode) => {
      const h = await inner.open(file, mode);
      return mode === 'read' && parseFileName(path.basename(file))?.type === 'table' ? wrap(h) : h;
    },
  };
}

/** Total bytes of the table files in `dir`, for a progress bar's total. */
export async function tableBytes(dir: string): Promise<number> {
  let total = 0;
  for (const n of fileNumbers(await fs.readdir(dir).catch(() => [] as string[]), 'table')) {
    total += await fs.stat(path.join(dir, tableFileName(n))).then(
      (s) => s.size,
      () => 0,
    );
  }
  return total;
}
