/**
 * Errors across threads. `postMessage` would turn a `CorruptionError` into a plain `Error` (the
 * structured clone keeps only name, message and stack) and drop its errno `code`; the DB's
 * background worker and the remote file system send a {@link WireError} instead, and the other
 * side rebuilds the error it stands for: the same class for the errors callers switch on
 * (`IoError` with its errno, `CorruptionError` with its file and offset), an `Error` with the
 * same `code` for an errno error from a file system, and a plain `Error` otherwise. The stack
 * is the original one, from the thread that threw.
 *
 * @module
 */
import { CorruptionError, IoError } from './errors.js';

/** A plain-data description of an error. */
export interface WireError {
  name: string;
  message: string;
  stack?: string | undefined;
  /** An errno (`ENOSPC`...) for a file-system error, or a SedimentError's code. */
  code?: string | undefined;
  /** IoError: the operation and file, and the errno of its cause. */
  op?: string | undefined;
  file?: string | undefined;
  errno?: string | undefined;
  /** CorruptionError's facts. */
  reason?: string | undefined;
  offset?: number | undefined;
  segmentId?: number | undefined;
  unreadableBytes?: number | undefined;
}

/** Describes `err` as plain data (see the module comment). */
export function errorToWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const base: WireError = { name: err.name, message: err.message, stack: err.stack };
  if (err instanceof IoError) return { ...base, code: err.code, op: err.op, file: err.file, errno: err.errno };
  if (err instanceof CorruptionError) {
    return {
      ...base,
      code: err.code,
      reason: err.reason,
      file: err.file,
      offset: err.offset,
      segmentId: err.segmentId,
      unreadableBytes: err.unreadableBytes,
    };
  }
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? { ...base, code } : base;
}

/** Rebuilds the error a {@link WireError} describes. */
export function errorFromWire(w: WireError): Error {
  let err: Error;
  if (w.name === 'IoError' && w.op !== undefined && w.file !== undefined) {
    const cause = Object.assign(new Error(w.errno ?? w.message), w.errno === undefined ? {} : { code: w.errno });
    err = new IoError(w.op, w.file, cause);
  } else if (w.name === 'CorruptionError' && w.reason !== undefined && w.file !== undefined && w.offset !== undefined) {
    err = new CorruptionError(w.reason, {
      file: w.file,
      offset: w.offset,
      ...(w.segmentId === undefined ? {} : { segmentId: w.segmentId }),
      ...(w.unreadableBytes === undefined ? {} : { unreadableBytes: w.unreadableBytes }),
    });
  } else {
    err = w.code === undefined ? new Error(w.message) : Object.assign(new Error(w.message), { code: w.code });
    err.name = w.name;
  }
  if (w.stack !== undefined) err.stack = w.stack;
  return err;
}
