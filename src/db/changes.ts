/**
 * The change feed, `db.changes()`: the DB's WAL read as a stream of changes, replayed from a
 * position and then tailing live writes. See `DB.changes` for the contract; this file holds
 * the feed itself, wal-retention.ts the retention slots and the WAL's garbage collection.
 *
 * Positions. A change's `position` is its write's WAL record (every DB write is one record, a
 * write batch: write-batch.ts), so the ops of one batch share it. `next` is where to resume
 * after the change: the position after the record for a batch's last op (and a lone op's), the
 * batch's own position for the others, so that resuming inside a batch replays the whole batch
 * (the consumer skips the ops it has, by seq) and a batch is never seen in part.
 *
 * Reading. The feed reads the WAL up to the end of the last write applied to the memtable (a
 * write whose promise is resolving: under `fsync: 'always'`, synced), never past it, so it
 * never shows a write the DB has not acknowledged. Caught up, it waits for the DB's next write
 * (no timer, nothing that keeps the process alive). While a feed is open it holds back the
 * deletion of the WAL segments from its read position on, up to `maxRetainedBytes`.
 *
 * @module
 */
import * as path from 'node:path';
import { ChangesExpiredError, ClosedError, CorruptionError, InvalidPositionError, ioStep } from '../errors.js';
import type { FileSystem } from '../fs/types.js';
import { FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE, segmentFileName } from '../wal/format.js';
import { comparePositions, type Position } from '../wal/position.js';
import type { Wal } from '../wal/wal.js';
import { decodeWriteBatch } from './write-batch.js';

/** One change of the feed. */
export interface Change<K, V> {
  /** The WAL position of the write this change belongs to (shared by the ops of a batch). */
  position: Position;
  /** Where to resume after this change (`changes({ since: next })`, `ackChanges(name, next)`). */
  next: Position;
  /** The change's sequence number: strictly increasing along the feed, the same after restarts. */
  seq: number;
  type: 'put' | 'del';
  key: K;
  /** The value put; undefined for a `del`. */
  value: V | undefined;
  /** When the put expires (ms since the epoch), if it has a TTL. */
  expiresAt: number | undefined;
}

/** Options of `db.changes()`. */
export interface ChangesOptions {
  /**
   * Where to start: a `next` (or `position`) of an earlier change. Default: the retention slot's
   * acknowledged position when `retain` names an existing slot, else the oldest change the WAL
   * still holds.
   */
  since?: Position;
  /**
   * A retention slot name: created at the feed's start if it does not exist (durably, before the
   * first change is yielded), it keeps the WAL from the acknowledged position on across flushes
   * and restarts, until `ackChanges` moves it or `releaseChanges` drops it.
   */
  retain?: string;
}

/** What a feed holds of the WAL: segments from `position` on are kept while it is open. */
export interface FeedHold {
  position: Position;
  /** Set when the DB dropped the hold or its slot: the feed fails with it. */
  error: Error | undefined;
}

/** What a feed needs of its DB. */
export interface FeedHost<K, V> {
  readonly fs: FileSystem;
  readonly wal: Wal;
  readonly walDir: string;
  readonly readOnly: boolean;
  /** End of the last write applied: the feed reads up to here. */
  appliedEnd(): Position;
  /** The oldest position a feed can start at (what the WAL still holds, past deletions under way). */
  oldest(): Position;
  isOpen(): boolean;
  /** Resolves at the DB's next applied write, or when it closes. */
  nextWrite(): Promise<void>;
  /** Run once the start position is checked, before the first change: creates the slot. */
  started(start: Position): Promise<void>;
  /** Called when the feed ends, however it ends. */
  ended(hold: FeedHold): void;
  decode(op: { kind: 'put' | 'delete'; key: Uint8Array; value: Uint8Array }): { key: K; value: V | undefined };
}

/**
 * Checks that `pos` is a position a feed can start at (or a slot acknowledge): held by the WAL,
 * not past the last applied write, at a record boundary. Throws `ChangesExpiredError` or
 * `InvalidPositionError`.
 */
export async function checkFeedPosition(host: FeedHost<unknown, unknown>, pos: Position): Promise<void> {
  const oldest = host.oldest();
  if (comparePositions(pos, oldest) < 0) {
    if (pos.segmentId < oldest.segmentId) throw new ChangesExpiredError(pos, oldest);
    throw new InvalidPositionError(pos, 'not at a record boundary (inside the segment header)');
  }
  const end = host.appliedEnd();
  if (comparePositions(pos, end) > 0) throw new InvalidPositionError(pos, `past the last write (${end.segmentId}/${end.offset})`);
  if (comparePositions(pos, end) === 0) return;
  const reader = host.wal.readFrom(pos);
  let first: { position: Position; opaque: boolean } | undefined;
  try {
    const r = await reader.next();
    if (!r.done) first = { position: r.value.position, opaque: r.value.record.opaque };
  } finally {
    await reader.return(undefined);
  }
  if (first && comparePositions(first.position, pos) === 0) {
    if (!first.opaque) throw new ChangesExpiredError(pos, oldest); // a format 1 record: before the feed's history
    return;
  }
  if (first && first.position.segmentId === pos.segmentId) throw new InvalidPositionError(pos, 'not at a record boundary');
  // No record starts there: only the end of a segment is a boundary.
  const file = path.join(host.walDir, segmentFileName(pos.segmentId));
  const size = await ioStep('stat', file, () => host.fs.stat(file)).then((s) => s.size);
  if (pos.offset === size || (pos.offset === SEGMENT_HEADER_SIZE && size <= SEGMENT_HEADER_SIZE)) return;
  // A segment left with zeros past its last record (preallocation, a crash before its seal):
  // its end is where its last record ends.
  if (pos.offset < size && (await lastRecordEnd(host, pos.segmentId)) === pos.offset) return;
  throw new InvalidPositionError(pos, 'not at a record boundary');
}

/** Where the last record of segment `id` ends (the segment header's end if it has none). */
async function lastRecordEnd(host: FeedHost<unknown, unknown>, id: number): Promise<number> {
  let end = SEGMENT_HEADER_SIZE;
  const reader = host.wal.readFrom({ segmentId: id, offset: SEGMENT_HEADER_SIZE });
  try {
    for await (const { record, position } of reader) {
      if (position.segmentId !== id) break;
      end = position.offset + FRAME_HEADER_SIZE + record.payloadSize;
    }
  } finally {
    await reader.return(undefined);
  }
  return end;
}

/**
 * The feed: an async iterator of {@link Change}s. `return()` (a `break` out of `for await`) ends
 * it at once, also while it waits for writes.
 */
export class ChangeFeed<K, V> implements AsyncIterableIterator<Change<K, V>> {
  readonly #host: FeedHost<K, V>;
  readonly #hold: FeedHold;
  readonly #gen: AsyncGenerator<Change<K, V>, void, undefined>;
  #done = false;
  #wakeClose: (() => void) | undefined;
  readonly #closed: Promise<void>;
  /** The start position's check and the slot's creation, begun at once (see the constructor). */
  readonly #ready: Promise<void>;

  /** @internal Made by `db.changes()`. */
  constructor(host: FeedHost<K, V>, start: Position, hold: FeedHold) {
    this.#host = host;
    this.#hold = hold;
    this.#closed = new Promise<void>((resolve) => {
      this.#wakeClose = resolve;
    });
    // Begun now, not at the first next(): a `retain` slot exists (durably) soon after the call
    // even if the consumer pulls later. Its failure surfaces at the first next().
    this.#ready = (async () => {
      if (!host.isOpen()) throw new ClosedError('the database');
      await checkFeedPosition(host as FeedHost<unknown, unknown>, start);
      await host.started(start);
    })();
    // A feed that cannot start holds nothing (its error waits for the first next()).
    this.#ready.catch(() => host.ended(hold));
    this.#gen = this.#run(start);
  }

  /**
   * Resolves once the start position is checked and the `retain` slot exists durably (made when
   * the feed is, not at the first `next()`); rejects with what the first `next()` would.
   */
  get ready(): Promise<void> {
    return this.#ready;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next change; waits for a write when caught up. Done once the feed or the DB is closed. */
  async next(): Promise<IteratorResult<Change<K, V>, undefined>> {
    if (this.#done) return { done: true, value: undefined };
    try {
      const r = await this.#gen.next();
      if (r.done) this.#end();
      return r.done ? { done: true, value: undefined } : r;
    } catch (err) {
      this.#end();
      throw err;
    }
  }

  /** Ends the feed (idempotent): a pending `next()` resolves done, and its WAL hold is released. */
  async return(): Promise<IteratorResult<Change<K, V>, undefined>> {
    this.#end();
    return { done: true, value: undefined };
  }

  #end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#wakeClose?.();
    this.#host.ended(this.#hold);
    // Closes the WAL reader of a generator paused at a yield (one still running ends on #done).
    void this.#gen.return(undefined).catch(() => undefined);
  }

  async *#run(start: Position): AsyncGenerator<Change<K, V>, void, undefined> {
    const host = this.#host;
    const hold = this.#hold;
    await this.#ready;
    let pos = start;
    for (;;) {
      if (this.#done) return;
      if (hold.error) throw hold.error;
      const wake = host.nextWrite();
      const limit = host.appliedEnd();
      if (comparePositions(pos, limit) < 0) {
        try {
          for await (const { record, position } of host.wal.readFrom(pos)) {
            if (comparePositions(position, limit) >= 0) break;
            const end = { segmentId: position.segmentId, offset: position.offset + FRAME_HEADER_SIZE + record.payloadSize };
            if (record.opaque) {
              const decoded = decodeWriteBatch(record.value);
              if (!decoded.ok) {
                throw new CorruptionError(decoded.reason, {
                  file: path.join(host.walDir, segmentFileName(position.segmentId)),
                  offset: position.offset,
                  segmentId: position.segmentId,
                });
              }
              const { seq, ops } = decoded.batch;
              for (let i = 0; i < ops.length; i++) {
                const op = ops[i]!;
                const { key, value } = host.decode(op);
                yield {
                  position,
                  next: i === ops.length - 1 ? end : position,
                  seq: seq + i,
                  type: op.kind === 'delete' ? 'del' : 'put',
                  key,
                  value,
                  expiresAt: op.expiresAt,
                };
                if (this.#done) return;
                if (hold.error) throw hold.error;
              }
            }
            // A format 1 record (before the DB's upgrade) carries no seq: not part of the feed.
            pos = end;
            hold.position = pos;
          }
        } catch (err) {
          if (err instanceof ClosedError && !host.isOpen()) return;
          throw err;
        }
      }
      // A read-only handle sees no new write: caught up is the end.
      if (host.readOnly || !host.isOpen()) return;
      await Promise.race([wake, this.#closed]);
    }
  }
}
