/**
 * `db.wal`: what the DB lets its caller do with its write-ahead log. Reading only: a raw append
 * would put records in the log that the memtable never saw (and every later iteration would
 * trip on them), and `deleteSegmentsBefore` could delete segments that no table holds yet.
 *
 * @module
 */
import type { Position } from '../wal/position.js';
import type { LogEntry } from '../wal/reader.js';
import type { Wal, WalStats } from '../wal/wal.js';

/** A read-only view of the DB's write-ahead log. */
export interface WalView {
  /**
   * Yields the records from `from` on, in log order, as the WAL's own `readFrom` does. Records
   * in segments the DB has collected after a flush are gone.
   */
  readFrom(from: Position): AsyncGenerator<LogEntry, void, undefined>;
  /** Where the next record will be appended. */
  currentPosition(): Position;
  /** The WAL's counters. */
  stats(): WalStats;
}

/** A frozen {@link WalView} of `wal`: nothing else of the log is reachable through it. */
export function walView(wal: Wal): WalView {
  return Object.freeze({
    readFrom: (from: Position) => wal.readFrom(from),
    currentPosition: () => wal.currentPosition(),
    stats: () => wal.stats(),
  });
}
