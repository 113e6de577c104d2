/**
 * The error classes every layer of sediment throws.
 *
 * Wrong argument types are reported with the built-in `TypeError`, values out of range (an
 * oversized record, a negative TTL) with `RangeError`. Everything else is a {@link SedimentError}
 * with a stable `code` that callers may switch on; messages are for humans and may change.
 *
 * | code             | class                | thrown when                                             |
 * | ---------------- | -------------------- | ------------------------------------------------------- |
 * | `CLOSED`         | {@link ClosedError}        | a handle is used after `close()`                   |
 * | `LOCKED`         | {@link LockedError}        | the directory is held by another handle or process |
 * | `CORRUPTION`     | {@link CorruptionError}    | bytes on disk fail a checksum or a format check    |
 * | `INVALID_CONFIG` | {@link InvalidConfigError} | an option has a value that makes no sense          |
 * | `IO`             | {@link IoError}            | the operating system failed a read, write or sync  |
 * | `DECODE`         | {@link DecodeError}        | a stored value does not decode in its encoding     |
 * | `READ_ONLY`      | {@link ReadOnlyError}      | a write was asked of a handle opened `readOnly`    |
 * | `CHANGES_EXPIRED`| {@link ChangesExpiredError}| a change feed position is gone (its WAL segments deleted) |
 * | `INVALID_POSITION`| {@link InvalidPositionError} | a change feed position is in the future or not at a record boundary |
 * | `UNKNOWN_SLOT`   | {@link UnknownSlotError}   | `ackChanges`/`releaseChanges` of a retention slot that does not exist |
 * | `SLOT_DROPPED`   | {@link SlotDroppedError}   | a retention slot held back more than `maxRetainedBytes` and was dropped |
 *
 * @module
 */

/** The stable codes of {@link SedimentError}. */
export type ErrorCode =
  | 'CLOSED'
  | 'LOCKED'
  | 'CORRUPTION'
  | 'INVALID_CONFIG'
  | 'IO'
  | 'DECODE'
  | 'READ_ONLY'
  | 'CHANGES_EXPIRED'
  | 'INVALID_POSITION'
  | 'UNKNOWN_SLOT'
  | 'SLOT_DROPPED';

/** Base class of every error with a stable `code`. */
export abstract class SedimentError extends Error {
  abstract readonly code: ErrorCode;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A handle was used after `close()` (or while it was closing). */
export class ClosedError extends SedimentError {
  readonly code = 'CLOSED' as const;
  constructor(what: string) {
    super(`${what} is closed`);
  }
}

/** Another handle, in this process, a worker thread or another process, holds the directory. */
export class LockedError extends SedimentError {
  readonly code = 'LOCKED' as const;
  constructor(
    /** The directory that could not be locked. */
    readonly dir: string,
    detail?: string,
  ) {
    super(`${dir} is locked by another handle${detail ? ` (${detail})` : ''}`);
  }
}

/** Facts carried by a {@link CorruptionError}. */
export interface CorruptionDetails {
  /** The damaged file. */
  file: string;
  /** Byte offset in `file` where the damage starts. */
  offset: number;
  /** WAL segment id, when the file is a WAL segment. */
  segmentId?: number;
  /** Bytes from `offset` that could not be read as valid data, when known. */
  unreadableBytes?: number;
}

/** Bytes on disk failed a checksum, a magic number or a structural check. */
export class CorruptionError extends SedimentError {
  readonly code = 'CORRUPTION' as const;
  readonly file: string;
  readonly offset: number;
  readonly segmentId: number | undefined;
  readonly unreadableBytes: number | undefined;
  /** What check failed, e.g. "payload checksum mismatch". */
  readonly reason: string;

  constructor(reason: string, details: CorruptionDetails, options?: { cause?: unknown }) {
    super(`corruption in ${details.file} at offset ${details.offset}: ${reason}`, options);
    this.reason = reason;
    this.file = details.file;
    this.offset = details.offset;
    this.segmentId = details.segmentId;
    this.unreadableBytes = details.unreadableBytes;
  }
}

/** An option was given a value that cannot work (a zero segment size, an unknown policy...). */
export class InvalidConfigError extends SedimentError {
  readonly code = 'INVALID_CONFIG' as const;
  constructor(
    /** The offending option's name. */
    readonly option: string,
    message: string,
  ) {
    super(`invalid option ${option}: ${message}`);
  }
}

/**
 * The operating system failed an operation. `cause` is the original error (with its errno
 * `code`, such as `ENOSPC` or `EIO`), and `errno` repeats that code for convenience.
 */
export class IoError extends SedimentError {
  readonly code = 'IO' as const;
  /** The errno code of the cause (`ENOSPC`, `EIO`...), when it had one. */
  readonly errno: string | undefined;

  constructor(
    /** The operation that failed, e.g. "write", "datasync". */
    readonly op: string,
    /** The file (or directory) it failed on. */
    readonly file: string,
    cause: unknown,
  ) {
    const errno = errnoOf(cause);
    super(`${op} failed on ${file}: ${errno ?? describe(cause)}`, { cause });
    this.errno = errno;
  }
}

/** The errno code (`ENOENT`, `EIO`...) of an error thrown by the file system, if any. */
export function errnoOf(err: unknown): string | undefined {
  // An IoError's own code is 'IO'; the errno it wraps is the answer.
  if (err instanceof IoError) return err.errno;
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/**
 * Runs one file-system step: an error the OS threw (one with an errno `code`) becomes an
 * `IoError` naming `op` and `file`; sediment's own errors (`ClosedError`, `CorruptionError`...)
 * and errors with no errno (a bug, a TypeError) pass through as they are, so that neither is
 * mistaken for a failing disk.
 */
export async function ioStep<T>(op: string, file: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SedimentError || errnoOf(err) === undefined) throw err;
    throw new IoError(op, file, err);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A stored value does not decode in the DB's value encoding: bytes that passed every checksum
 * but were not written by this encoding (another writer appended them to the WAL, or the DB was
 * written under another `valueEncoding` before it recorded its options). Not a
 * {@link CorruptionError}: nothing on disk is damaged, and there is no file or offset to name;
 * the key says which entry, and deleting or overwriting it is the remedy. `cause` is the
 * decoder's own error (msgpackr's, JSON.parse's SyntaxError, or a TypeError for invalid UTF-8).
 */
export class DecodeError extends SedimentError {
  readonly code = 'DECODE' as const;
  /** The raw bytes of the entry's key (a copy). */
  readonly key: Uint8Array;

  constructor(
    key: Uint8Array,
    /** The value encoding that failed: `'msgpack'`, `'json'` or `'utf8'`. */
    readonly encoding: string,
    cause: unknown,
  ) {
    super(`the value of key ${keyPreview(key)} does not decode as ${encoding}: ${describe(cause)}`, { cause });
    this.key = Buffer.from(key);
  }
}

/** A short, printable rendering of a key for messages: quoted text if it is plain UTF-8, else hex. */
function keyPreview(key: Uint8Array): string {
  const MAX = 48;
  const head = Buffer.from(key.buffer, key.byteOffset, Math.min(key.byteLength, MAX));
  const more = key.byteLength > MAX ? `... (${key.byteLength} bytes)` : '';
  const text = head.toString('utf8');
  if (!hasUnprintable(text)) return `${JSON.stringify(text)}${more}`;
  return `0x${head.toString('hex')}${more}`;
}

/** Whether `text` holds a control character (U+0000..U+001F, U+007F) or U+FFFD (bytes that are not UTF-8). */
function hasUnprintable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x1f || c === 0x7f || c === 0xfffd) return true;
  }
  return false;
}

/** A write (append, sync, segment deletion...) was asked of a handle opened with `readOnly: true`. */
export class ReadOnlyError extends SedimentError {
  readonly code = 'READ_ONLY' as const;
  constructor(
    /** What is read-only, e.g. "the WAL". */
    what: string,
    /** The refused operation. */
    readonly op: string,
  ) {
    super(`${what} is open read-only: ${op} refused`);
  }
}

/** A WAL position as the change feed names it. */
interface FeedPosition {
  readonly segmentId: number;
  readonly offset: number;
}

function showPosition(p: FeedPosition): string {
  return `{ segmentId: ${p.segmentId}, offset: ${p.offset} }`;
}

/**
 * A change feed was asked to start at a position whose WAL segment is gone (deleted after a
 * flush, no retention slot holding it), or one before the DB's WAL held write batches: the
 * changes there cannot be replayed. Never a silent gap.
 */
export class ChangesExpiredError extends SedimentError {
  readonly code = 'CHANGES_EXPIRED' as const;
  constructor(
    /** The position asked for. */
    readonly position: FeedPosition,
    /** The oldest position the feed can start at now. */
    readonly oldest: FeedPosition,
  ) {
    super(`change feed position ${showPosition(position)} is gone (the WAL holds changes from ${showPosition(oldest)} on)`);
  }
}

/**
 * A change feed position (a `since`, or an `ackChanges` position) that is not one the feed
 * gave: past the last write, not at a record boundary, or (for `ackChanges`) before the slot's
 * current position.
 */
export class InvalidPositionError extends SedimentError {
  readonly code = 'INVALID_POSITION' as const;
  constructor(
    readonly position: FeedPosition,
    reason: string,
  ) {
    super(`invalid change feed position ${showPosition(position)}: ${reason}`);
  }
}

/** `ackChanges` or `releaseChanges` named a retention slot that does not exist. */
export class UnknownSlotError extends SedimentError {
  readonly code = 'UNKNOWN_SLOT' as const;
  constructor(readonly slot: string) {
    super(`no change feed retention slot named ${JSON.stringify(slot)}`);
  }
}

/**
 * A retention slot held back more WAL than `maxRetainedBytes` and was dropped (durably): its
 * consumer fell too far behind. Its feed ends with this error, and so do its `ackChanges`; a
 * new `changes({ retain })` creates the slot afresh (from a position that still exists).
 */
export class SlotDroppedError extends SedimentError {
  readonly code = 'SLOT_DROPPED' as const;
  constructor(
    readonly slot: string,
    /** WAL bytes it held back when it was dropped. */
    readonly retainedBytes: number,
    /** The cap it passed. */
    readonly maxRetainedBytes: number,
  ) {
    super(
      `change feed retention slot ${JSON.stringify(slot)} was dropped: it held back ${retainedBytes} WAL bytes, over maxRetainedBytes (${maxRetainedBytes})`,
    );
  }
}
