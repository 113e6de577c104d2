/**
 * `db.wal`: what the DB lets its caller do with its write-ahead log. Reading only: a raw append
 * would put records in the log that the memtable never saw (and every later iteration would
 * trip on them), and `deleteSegmentsBefore` could delete segments that no table holds yet.
 *
 * The DB writes each write (a put, a delete, a `batch`) as one opaque WAL record holding a write
 * batch (write-batch.ts). `readFrom` decodes those: it yields one entry per operation, as a
 * put or tombstone `Record`, every op of a batch at the batch's position, with its seq. (A DB of
 * format 1, read-only and not yet upgraded, holds one record per op: those come as they are,
 * without a seq.) For a stream of changes with resumable positions, see `db.changes()`.
 *
 * @module
 */
import * as path from 'node:path';
import { CorruptionError } from '../errors.js';
import { segmentFileName } from '../wal/format.js';
import type { Position } from '../wal/position.js';
import type { LogEntry } from '../wal/reader.js';
import { Record } from '../wal/record.js';
import type { Wal, WalStats } from '../wal/wal.js';
import { copyBytes } from '../util/bytes.js';
import { decodeWriteBatch } from './write-batch.js';

/** One operation read from the DB's WAL: a record, where its write lies in the log, its seq. */
export interface WalViewEntry extends LogEntry {
  /** The operation's sequence number (undefined for a record of a format 1 DB). */
  seq: number | undefined;
}

/** A read-only view of the DB's write-ahead log. */
export interface WalView {
  /**
   * Yields the operations from `from` on, in log order (those of one write share its position),
   * until it catches up with the writer. Records in segments the DB has collected after a flush
   * are gone. Throws `CorruptionError` at damage.
   */
  readFrom(from: Position): AsyncGenerator<WalViewEntry, void, undefined>;
  /** Where the next record will be appended. */
  currentPosition(): Position;
  /** The WAL's counters. */
  stats(): WalStats;
}

/** A frozen {@link WalView} of `wal`: nothing else of the log is reachable through it. */
export function walView(wal: Wal, dir: string): WalView {
  return Object.freeze({
    readFrom: (from: Position) => readOps(wal, dir, from),
    currentPosition: () => wal.currentPosition(),
    stats: () => wal.stats(),
  });
}

async function* readOps(wal: Wal, dir: string, from: Position): AsyncGenerator<WalViewEntry, void, undefined> {
  for await (const { record, position } of wal.readFrom(from)) {
    if (!record.opaque) {
      yield { record, position, seq: undefined };
      continue;
    }
    const decoded = decodeWriteBatch(record.value);
    if (!decoded.ok) {
      throw new CorruptionError(decoded.reason, {
        file: path.join(dir, segmentFileName(position.segmentId)),
        offset: position.offset,
        segmentId: position.segmentId,
      });
    }
    const { seq, ops } = decoded.batch;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      const key = copyBytes(op.key);
      const value = copyBytes(op.value);
      const r = Record.fromParts(key, value, op.kind === 'delete', op.expiresAt, 'none', value);
      yield { record: r, position, seq: seq + i };
    }
  }
}
