/**
 * What the DB reports to a meter: the WAL's counters, histograms and events (src/wal/meter.ts),
 * and the DB's own: flushes, compactions, write stalls and background errors. The same rules
 * hold: a meter is called synchronously on the DB's path, must be cheap, and a throwing meter is
 * caught and ignored.
 *
 * @module
 */
import { noopMeter, safeMeter, type Meter, type WalCounter, type WalEvent, type WalHistogram } from '../wal/meter.js';

/** Counter names the DB increments. */
export type DBCounter =
  /** Memtables written as L0 tables. */
  | 'db.flushes'
  /** Bytes of tables written by flushes. */
  | 'db.flush_bytes'
  /** Compactions completed. */
  | 'db.compactions'
  /** Bytes of tables read by compactions. */
  | 'db.compaction_read_bytes'
  /** Bytes of tables written by compactions. */
  | 'db.compaction_written_bytes'
  /** Writes that waited for a flush or compaction (or behind writes that did). */
  | 'db.write_stalls'
  /** Milliseconds writes spent waiting, in all. */
  | 'db.write_stall_ms'
  /** Errors that stopped background work (and writes). */
  | 'db.background_errors'
  /** Background workers that died while they ran one of this DB's jobs (the job ran again). */
  | 'db.background_worker_deaths'
  /** Change feed retention slots dropped for holding back more than `maxRetainedBytes`. */
  | 'db.changes_slots_dropped';

/** Histogram names the DB observes. */
export type DBHistogram =
  /** Duration of each flush, in milliseconds. */
  | 'db.flush_ms'
  /** Duration of each compaction, in milliseconds. */
  | 'db.compaction_ms';

/** Notable things that happened to the DB. */
export type DBEvent =
  | { type: 'flush'; tables: number; bytes: number; durationMs: number }
  | { type: 'compaction'; level: number; outputLevel: number; bytesRead: number; bytesWritten: number; durationMs: number }
  | { type: 'write-stall'; durationMs: number }
  | { type: 'background-error'; error: Error }
  /** A change feed retention slot held back more WAL than `maxRetainedBytes` and was dropped. */
  | { type: 'changes-slot-dropped'; slot: string; retainedBytes: number; maxRetainedBytes: number };

/** Receives the DB's measurements and its WAL's. A WAL `Meter` is a `DBMeter` that ignores the DB's names. */
export interface DBMeter {
  counter(name: WalCounter | DBCounter, delta: number): void;
  histogram(name: WalHistogram | DBHistogram, value: number): void;
  event(event: WalEvent | DBEvent): void;
  /**
   * Optional: called once the DB is open, with the DB (for meters that read `stats()` at scrape
   * time); the function it returns is called when the DB closes.
   */
  track?(source: { stats(): unknown }): () => void;
}

/** Wraps a user meter so that a throwing meter cannot break the DB. */
export function safeDBMeter(meter: DBMeter | undefined): DBMeter {
  if (meter === undefined || meter === noopMeter) return noopMeter as DBMeter;
  // safeMeter's wrapper forwards whatever name or event it is given.
  return safeMeter(meter as unknown as Meter) as unknown as DBMeter;
}

/** Checks a `meter` option: an object with the three methods. */
export function isDBMeter(v: unknown): v is DBMeter {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as Partial<DBMeter>;
  return typeof m.counter === 'function' && typeof m.histogram === 'function' && typeof m.event === 'function';
}
