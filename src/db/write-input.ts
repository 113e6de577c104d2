/**
 * What a write is given, checked and encoded before anything is written: the keys, values and
 * TTLs of `put`, `delete` and `batch` operations, their options, and the size of the encoded
 * write. Every refusal here is a `TypeError` or a `RangeError` thrown before the WAL append, so
 * that bad input changes nothing. The encoded write (a write batch, see write-batch.ts) waits in
 * a {@link Pending} for its seq and the WAL (writer.ts).
 *
 * @module
 */
import { isExpiry } from '../wal/record.js';
import { MAX_RECORD_SIZE_LIMIT } from '../wal/options.js';
import { encodeKey, encodeValue } from './encoding.js';
import type { ResolvedDBOptions } from './options.js';
import { PreparedWrite } from './prepared-write.js';
import { type BatchOp, encodeWriteBatch, opSize, WRITE_BATCH_HEADER_SIZE } from './write-batch.js';

/**
 * Largest encoded write (one put, delete or `batch`) the DB accepts: it is one WAL record, whose
 * payload is a flags byte and the batch. The WAL of a DB is opened with this record limit.
 */
export const MAX_WRITE_BYTES = MAX_RECORD_SIZE_LIMIT - 1;

/** A write validated and encoded, waiting for its seq (given at append time) and the WAL. */
export type Pending = PreparedWrite;

/** What a key, value or TTL is checked against: the DB's encodings, limits and clock. */
export type WriteLimits = Pick<ResolvedDBOptions, 'keyEncoding' | 'valueEncoding' | 'maxKeySize' | 'maxValueSize' | 'clock'>;

const EMPTY_BYTES = new Uint8Array(0);

/**
 * Encodes a key and checks its size against `limit`: a put's key against `maxKeySize`; a
 * delete's against the largest `maxKeySize` this DB was ever opened with (a key stored then
 * can still be deleted); a read's not at all.
 */
export function checkedKey(opts: WriteLimits, key: unknown, limit: number = opts.maxKeySize): Uint8Array {
  const k = encodeKey(opts.keyEncoding, key);
  if (k.length > limit) throw new RangeError(`key of ${k.length} bytes is over maxKeySize (${limit})`);
  return k;
}

/** A delete of `key`, checked against `maxKeySize`: the largest this DB was ever opened with. */
export function deleteOp(opts: WriteLimits, maxKeySize: number, key: unknown): BatchOp {
  return { kind: 'delete', key: checkedKey(opts, key, maxKeySize), value: EMPTY_BYTES, expiresAt: undefined };
}

/** A put of `value` under `key`, expiring `ttlMs` from the clock's now if given. */
export function putOp(opts: WriteLimits, key: unknown, value: unknown, ttlMs: unknown): BatchOp {
  const k = checkedKey(opts, key);
  const v = encodeValue(opts.valueEncoding, value);
  if (v.length > opts.maxValueSize) {
    throw new RangeError(`value of ${v.length} bytes is over maxValueSize (${opts.maxValueSize})`);
  }
  let expiresAt: number | undefined;
  if (ttlMs !== undefined) {
    if (typeof ttlMs !== 'number') throw new TypeError('ttlMs must be a number');
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive finite number, got ${ttlMs}`);
    expiresAt = Math.ceil(now(opts) + ttlMs);
    // Checked here, before the WAL append: the record codec holds expiries below 2^53 only.
    if (!isExpiry(expiresAt)) {
      throw new RangeError(`ttlMs ${ttlMs} puts the expiry past 2^53 - 1 ms since the epoch; leave ttlMs out for a key that never expires`);
    }
  }
  // No copy: the op is encoded into the batch before the call returns.
  return { kind: 'put', key: k, value: v, expiresAt };
}

/** The clock's time, checked: a write must not derive an expiry from garbage. */
function now(opts: WriteLimits): number {
  const t: unknown = opts.clock();
  if (typeof t !== 'number') throw new TypeError(`the clock option must return a number of ms since the epoch, got ${typeof t}`);
  if (!(t >= 0 && t <= Number.MAX_SAFE_INTEGER))
    throw new RangeError(`the clock option returned ${t}, not a time in ms since the epoch below 2^53`);
  return t;
}

/**
 * The ops of a `batch` call, each checked as `put` and `delete` check theirs; deletes' keys
 * against `maxDeleteKeySize` (see {@link checkedKey}).
 */
export function batchOps(opts: WriteLimits, maxDeleteKeySize: number, operations: unknown): BatchOp[] {
  const ops: BatchOp[] = [];
  if (!Array.isArray(operations)) throw new TypeError('batch takes an array of operations');
  for (const op of operations as unknown[]) {
    if (typeof op !== 'object' || op === null) throw new TypeError('a batch operation must be an object');
    const o = op as { type?: unknown; key?: unknown; value?: unknown; ttlMs?: unknown };
    if (o.type === 'put') {
      checkNames(o, PUT_OPERATION, 'batch put operation');
      ops.push(putOp(opts, o.key, o.value, o.ttlMs));
    } else if (o.type === 'del') {
      checkNames(o, DEL_OPERATION, 'batch del operation');
      ops.push(deleteOp(opts, maxDeleteKeySize, o.key));
    } else {
      throw new TypeError(`batch operation type must be 'put' or 'del', got ${String(o.type)}`);
    }
  }
  return ops;
}

/** Encodes validated ops as one write batch (seq still 0), refusing one over {@link MAX_WRITE_BYTES}. */
export function prepare(ops: readonly BatchOp[]): Pending {
  let size = WRITE_BATCH_HEADER_SIZE;
  let userBytes = 0;
  for (const op of ops) {
    size += opSize(op);
    userBytes += op.key.length + op.value.length;
  }
  if (size > MAX_WRITE_BYTES) throw new RangeError(`write of ${size} bytes encoded is over the ${MAX_WRITE_BYTES}-byte limit of one write`);
  return new PreparedWrite(encodeWriteBatch(ops, 0, size), ops.length, userBytes);
}

/** The option names of `delete` and `batch`, of `put`, and of a batch's operations. */
export const WRITE_OPTIONS: ReadonlySet<string> = new Set(['sync']);
export const PUT_OPTIONS: ReadonlySet<string> = new Set(['sync', 'ttlMs']);
const PUT_OPERATION: ReadonlySet<string> = new Set(['type', 'key', 'value', 'ttlMs']);
const DEL_OPERATION: ReadonlySet<string> = new Set(['type', 'key']);

/** Refuses names `known` does not hold: a misspelt option (`ttl`, `synch`) must not be ignored. */
export function checkNames(o: object, known: ReadonlySet<string>, what: string): void {
  for (const name of Object.keys(o)) {
    if (!known.has(name)) throw new TypeError(`unknown ${what} field '${name}' (known: ${[...known].join(', ')})`);
  }
}

/** Checks a write's options: an object (or nothing) of the `known` names, `sync` a boolean. */
export function checkWriteOptions(options: unknown, known: ReadonlySet<string>): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  checkNames(options, known, 'write option');
  const sync = (options as { sync?: unknown }).sync;
  if (sync !== undefined && typeof sync !== 'boolean') throw new TypeError('sync must be a boolean');
}
