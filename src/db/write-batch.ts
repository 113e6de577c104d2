/**
 * The DB's write batch: every DB write (a put, a delete, a `batch`) is one WAL record whose
 * payload (an opaque WAL record, see src/wal/format.ts) is a batch, as RocksDB's WriteBatch. The
 * batch carries the sequence number of its first operation, so seqs are facts of the log, not
 * counted again at every replay: the change feed reads them from any retained segment, and they
 * are the same across restarts. docs/FORMAT.md is the prose version of this comment.
 *
 * Layout (little-endian, no padding):
 * ```
 *  0     1                9           13
 *  +-----+----------------+-----------+--------+--------+-----+------------+
 *  | tag | seq            | count     | op 0   | op 1   | ... | op count-1 |
 *  | u8  | u64 (< 2^53)   | u32 (>=1) |        |        |     |            |
 *  +-----+----------------+-----------+--------+--------+-----+------------+
 *  tag = 0x01 (a DB write batch); seq = the first op's sequence number, op i has seq + i;
 *  seq + count - 1 < 2^53.
 *
 *  op:
 *  0      1            5                [9]                [17]
 *  +------+------------+----------------+------------------+-----+-------+
 *  | kind | key length | value length   | expiresAt        | key | value |
 *  | u8   | u32        | u32, puts only | u64, if kind 0x81|     |       |
 *  +------+------------+----------------+------------------+-----+-------+
 *  kind: 0x01 put, 0x81 put with an expiry (ms since the Unix epoch, < 2^53), 0x02 delete.
 * ```
 * The bytes end exactly after the last op. Keys and values are the DB's encoded bytes
 * (src/db/encoding.ts). The decoder is total: any other byte sequence is a reason string
 * (the DB turns it into a `CorruptionError` naming the WAL segment and offset), never an op.
 *
 * @module
 */
import { readU32LE as u32, writeU32LE as putU32 } from '../util/bytes.js';

/** First byte of a DB write batch. */
export const WRITE_BATCH_TAG = 0x01;
/** Bytes before the first op: tag, seq, count. */
export const WRITE_BATCH_HEADER_SIZE = 13;
/** Op kinds. */
export const OpKind = { PUT: 0x01, PUT_EXPIRES: 0x81, DELETE: 0x02 } as const;

/** One operation of a batch, as the DB encodes it (key and value: encoded bytes). */
export interface BatchOp {
  kind: 'put' | 'delete';
  key: Uint8Array;
  /** Empty for a delete. */
  value: Uint8Array;
  expiresAt: number | undefined;
}

/** Bytes `op` takes in a batch. */
export function opSize(op: BatchOp): number {
  if (op.kind === 'delete') return 5 + op.key.length;
  return 9 + (op.expiresAt !== undefined ? 8 : 0) + op.key.length + op.value.length;
}

function putU64(buf: Uint8Array, at: number, v: number): void {
  putU32(buf, at, v % 0x1_0000_0000);
  putU32(buf, at + 4, Math.floor(v / 0x1_0000_0000));
}

function u64(buf: Uint8Array, at: number): number {
  return u32(buf, at) + u32(buf, at + 4) * 0x1_0000_0000;
}

/**
 * Encodes `ops` (at least one, each valid: the DB checked them) as a batch whose first seq is
 * `seq` (0 when not known yet: {@link setBatchSeq} fills it in at append time). `size` is the
 * sum of {@link opSize} plus the header, when the caller has it.
 */
export function encodeWriteBatch(ops: readonly BatchOp[], seq = 0, size?: number): Buffer {
  let total = size ?? WRITE_BATCH_HEADER_SIZE;
  if (size === undefined) for (const op of ops) total += opSize(op);
  const buf = Buffer.allocUnsafe(total);
  buf[0] = WRITE_BATCH_TAG;
  putU64(buf, 1, seq);
  putU32(buf, 9, ops.length);
  let p = WRITE_BATCH_HEADER_SIZE;
  for (const op of ops) {
    const key = op.key;
    if (op.kind === 'delete') {
      buf[p] = OpKind.DELETE;
      putU32(buf, p + 1, key.length);
      p += 5;
    } else {
      const expires = op.expiresAt !== undefined;
      buf[p] = expires ? OpKind.PUT_EXPIRES : OpKind.PUT;
      putU32(buf, p + 1, key.length);
      putU32(buf, p + 5, op.value.length);
      p += 9;
      if (expires) {
        putU64(buf, p, op.expiresAt!);
        p += 8;
      }
    }
    buf.set(key, p);
    p += key.length;
    if (op.kind === 'put') {
      buf.set(op.value, p);
      p += op.value.length;
    }
  }
  if (p !== total) throw new Error(`internal error: write batch size ${p} is not the ${total} computed`);
  return buf;
}

/** Writes the first seq into an encoded batch. */
export function setBatchSeq(batch: Uint8Array, seq: number): void {
  putU64(batch, 1, seq);
}

/** The first seq and the op count of a batch whose header {@link checkWriteBatch} accepted. */
export function batchSeq(batch: Uint8Array): number {
  return u64(batch, 1);
}

/** The op count of a batch whose header {@link checkWriteBatch} accepted. */
export function batchCount(batch: Uint8Array): number {
  return u32(batch, 9);
}

/**
 * Called for each op by {@link forEachOp}, with offsets into the batch instead of arrays (no
 * allocation per op): the key is `batch[keyAt, keyAt + keyLength)`, the value the `valueLength`
 * bytes after it (0 for a delete).
 */
export type OpVisitor = (
  kind: 'put' | 'delete',
  keyAt: number,
  keyLength: number,
  valueLength: number,
  expiresAt: number | undefined,
  index: number,
) => void;

/**
 * Checks a whole batch (header and every op); returns undefined if it is well formed, else why
 * not. Total: whatever the bytes.
 */
export function checkWriteBatch(batch: Uint8Array): string | undefined {
  return walk(batch, undefined);
}

/**
 * Calls `visit` for each op of `batch` in order, after checking the whole batch (so that a
 * damaged batch visits nothing: a batch is applied whole or not at all). Returns undefined, or
 * the reason the bytes are not a batch.
 */
export function forEachOp(batch: Uint8Array, visit: OpVisitor): string | undefined {
  const problem = walk(batch, undefined);
  if (problem !== undefined) return problem;
  walk(batch, visit);
  return undefined;
}

/**
 * {@link forEachOp} without the check, for a batch this process encoded itself (the write path:
 * it is applied as the WAL append resolves, and was built from validated ops).
 */
export function visitOps(batch: Uint8Array, visit: OpVisitor): void {
  walk(batch, visit);
}

function walk(b: Uint8Array, visit: OpVisitor | undefined): string | undefined {
  const n = b.length;
  if (n < WRITE_BATCH_HEADER_SIZE) return 'write batch shorter than its header';
  if (b[0] !== WRITE_BATCH_TAG) return `unknown write batch tag ${b[0]}`;
  if (u32(b, 5) >= 0x20_0000) return 'write batch seq beyond 2^53';
  const seq = u64(b, 1);
  const count = u32(b, 9);
  if (count === 0) return 'write batch with no operation';
  if (seq > Number.MAX_SAFE_INTEGER - (count - 1)) return 'write batch seqs run past 2^53';
  let p = WRITE_BATCH_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    if (p + 5 > n) return `write batch op ${i} cut short`;
    const kind = b[p]!;
    const keyLength = u32(b, p + 1);
    let valueLength = 0;
    let expiresAt: number | undefined;
    if (kind === OpKind.DELETE) {
      p += 5;
    } else if (kind === OpKind.PUT || kind === OpKind.PUT_EXPIRES) {
      if (p + 9 > n) return `write batch op ${i} cut short`;
      valueLength = u32(b, p + 5);
      p += 9;
      if (kind === OpKind.PUT_EXPIRES) {
        if (p + 8 > n) return `write batch op ${i} cut short`;
        if (u32(b, p + 4) >= 0x20_0000) return `write batch op ${i} expiry beyond 2^53`;
        expiresAt = u64(b, p);
        p += 8;
      }
    } else {
      return `write batch op ${i} has unknown kind ${kind}`;
    }
    if (keyLength > n - p || valueLength > n - p - keyLength) return `write batch op ${i} runs past the batch`;
    if (visit) visit(kind === OpKind.DELETE ? 'delete' : 'put', p, keyLength, valueLength, expiresAt, i);
    p += keyLength + valueLength;
  }
  if (p !== n) return `write batch has ${n - p} bytes after its last op`;
  return undefined;
}

/** A decoded batch: its first seq and its ops (keys and values are views into the batch). */
export interface DecodedBatch {
  seq: number;
  ops: BatchOp[];
}

/** Decodes a batch into ops (views into `batch`), or the reason it is not one. */
export function decodeWriteBatch(batch: Uint8Array): { ok: true; batch: DecodedBatch } | { ok: false; reason: string } {
  const ops: BatchOp[] = [];
  const problem = forEachOp(batch, (kind, keyAt, keyLength, valueLength, expiresAt) => {
    ops.push({
      kind,
      key: batch.subarray(keyAt, keyAt + keyLength),
      value: batch.subarray(keyAt + keyLength, keyAt + keyLength + valueLength),
      expiresAt,
    });
  });
  if (problem !== undefined) return { ok: false, reason: problem };
  return { ok: true, batch: { seq: batchSeq(batch), ops } };
}
