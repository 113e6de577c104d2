/**
 * A DB write on its way through the WAL: its encoded batch (write-batch.ts) and what the DB needs
 * once the record is written. The WAL tells it, in log order, where its record went
 * ({@link AppendSink}); it passes that on to its DB's {@link WriteTarget}, which applies the batch
 * to the memtable. One object per write, made before anything is written: no position, closure
 * or promise reaction per write between the WAL and the memtable.
 *
 * @module
 */
import type { AppendSink } from '../wal/wal.js';

/** What a DB does with its writes as the WAL settles them. */
export interface WriteTarget {
  /** `write`'s record is written at `offset` of segment `segmentId`: apply it (in log order). */
  applied(write: PreparedWrite, segmentId: number, offset: number): void;
  /** `write`'s append rejects: nothing of it was applied. */
  failed(write: PreparedWrite): void;
}

/** See the module comment. */
export class PreparedWrite implements AppendSink {
  /** The encoded write batch, its seq 0 until the write is given one (at its append). */
  readonly batch: Buffer;
  /** Operations in the batch. */
  readonly count: number;
  /** Bytes of keys and values the caller wrote. */
  readonly userBytes: number;
  /** The first op's seq, set at the append. */
  seq = 0;
  /** The frame's size in the WAL, set at the append. */
  frameBytes = 0;
  /** Who applies it, set at the append. */
  target: WriteTarget | undefined;

  constructor(batch: Buffer, count: number, userBytes: number) {
    this.batch = batch;
    this.count = count;
    this.userBytes = userBytes;
  }

  written(segmentId: number, offset: number): void {
    this.target!.applied(this, segmentId, offset);
  }

  failed(): void {
    this.target!.failed(this);
  }
}
