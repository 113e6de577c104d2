/**
 * sediment's errors as Level's: a {@link ModuleError} with the `LEVEL_*` code a Level user
 * switches on, and the sediment error as its `cause` (with its own `code`, file, offset...).
 *
 * | sediment                       | Level                                                      |
 * | ------------------------------ | ---------------------------------------------------------- |
 * | `ClosedError`                  | `LEVEL_DATABASE_NOT_OPEN` (`LEVEL_ITERATOR_NOT_OPEN` from an iterator) |
 * | `LockedError`                  | `LEVEL_LOCKED`                                             |
 * | `CorruptionError`              | `LEVEL_CORRUPTION`                                         |
 * | `IoError`                      | `LEVEL_IO_ERROR`                                           |
 * | `ReadOnlyError`                | `LEVEL_READONLY`                                           |
 * | `DecodeError`                  | `LEVEL_DECODE_ERROR`                                       |
 *
 * Anything else (a `TypeError` or `RangeError` for an argument sediment refuses, an
 * `InvalidConfigError`) is passed through as it is: Level gives argument errors no code.
 *
 * @module
 */
import ModuleError from 'module-error';
import { ClosedError, CorruptionError, DecodeError, IoError, LockedError, ReadOnlyError } from '../errors.js';

/** Where an error surfaced: a database operation or an iterator's. */
export type ErrorSite = 'database' | 'iterator';

/** The Level error for `err`, with `err` as its cause; `err` itself when Level has no code for it. */
export function levelError(err: unknown, site: ErrorSite = 'database'): unknown {
  if (!(err instanceof Error)) return err;
  const code = levelCode(err, site);
  if (code === undefined) return err;
  return new ModuleError(err.message, { code, cause: err });
}

function levelCode(err: Error, site: ErrorSite): string | undefined {
  if (err instanceof ClosedError) return site === 'iterator' ? 'LEVEL_ITERATOR_NOT_OPEN' : 'LEVEL_DATABASE_NOT_OPEN';
  if (err instanceof LockedError) return 'LEVEL_LOCKED';
  if (err instanceof CorruptionError) return 'LEVEL_CORRUPTION';
  if (err instanceof IoError) return 'LEVEL_IO_ERROR';
  if (err instanceof ReadOnlyError) return 'LEVEL_READONLY';
  if (err instanceof DecodeError) return 'LEVEL_DECODE_ERROR';
  return undefined;
}

/** `LEVEL_SNAPSHOT_NOT_OPEN`: a read was given a snapshot that is closed or closing. */
export function snapshotNotOpen(): ModuleError {
  return new ModuleError('Snapshot is not open: cannot use snapshot after close()', { code: 'LEVEL_SNAPSHOT_NOT_OPEN' });
}

/**
 * `LEVEL_ABORTED`, named `AbortError` as the web platform's: an iterator read whose `signal` was
 * aborted while it ran.
 */
export class AbortError extends ModuleError {
  override name = 'AbortError';

  constructor(cause?: Error) {
    super('Operation has been aborted', { code: 'LEVEL_ABORTED', ...(cause ? { cause } : {}) });
  }
}
