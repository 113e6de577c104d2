/**
 * The metric set of `sediment/prometheus`: every name, type, help text and bucket layout in one
 * table, in Prometheus's conventions (base units: seconds and bytes; counters end in `_total`).
 * Names here lack the prefix (`sediment_` by default).
 *
 * Three kinds of source:
 * - **fed**: counters the meter's `counter()` calls accumulate (the WAL's and the DB's own);
 * - **observed**: histograms the meter's `histogram()` calls observe, milliseconds turned into
 *   seconds;
 * - **scraped**: values read from the tracked sources' `stats()` at scrape time (gauges, and the
 *   block cache's hit and miss counters, which the DB keeps but does not report to its meter).
 *
 * @module
 */
import type { DBCounter, DBHistogram } from '../db/meter.js';
import type { WalCounter, WalHistogram } from '../wal/meter.js';

/** A counter the meter accumulates from `counter()` calls (or, for `wal.failures`, from an event). */
export interface FedCounter {
  name: string;
  help: string;
  /** The sediment counter it sums; `null` for one fed by an event. */
  from: WalCounter | DBCounter | null;
  /** Multiplier applied when published (ms to seconds). */
  scale: number;
}

/**
 * Fed counters, in the order of the meter's accumulator array: `counterIndex` maps a sediment
 * counter name to its slot.
 */
export const FED_COUNTERS: readonly FedCounter[] = [
  { name: 'wal_records_total', help: 'Records appended to the WAL (each record of a batch counts).', from: 'wal.records', scale: 1 },
  { name: 'wal_bytes_total', help: 'Bytes appended to the WAL, frame headers included.', from: 'wal.bytes', scale: 1 },
  {
    name: 'wal_writes_total',
    help: 'write(2) calls made for WAL appends: fewer than records when appends coalesce.',
    from: 'wal.writes',
    scale: 1,
  },
  { name: 'wal_fsyncs_total', help: 'fdatasync calls completed on WAL segments.', from: 'wal.fsyncs', scale: 1 },
  { name: 'wal_failures_total', help: 'Times a WAL failed (a write or fsync error) and began refusing appends.', from: null, scale: 1 },
  { name: 'flushes_total', help: 'Memtables written as L0 tables.', from: 'db.flushes', scale: 1 },
  { name: 'flush_written_bytes_total', help: 'Bytes of tables written by flushes.', from: 'db.flush_bytes', scale: 1 },
  { name: 'compactions_total', help: 'Compactions completed.', from: 'db.compactions', scale: 1 },
  { name: 'compaction_read_bytes_total', help: 'Bytes of tables read by compactions.', from: 'db.compaction_read_bytes', scale: 1 },
  {
    name: 'compaction_written_bytes_total',
    help: 'Bytes of tables written by compactions.',
    from: 'db.compaction_written_bytes',
    scale: 1,
  },
  {
    name: 'write_stalls_total',
    help: 'Writes held while writes were stopped for a flush or compaction (or queued behind them).',
    from: 'db.write_stalls',
    scale: 1,
  },
  {
    name: 'write_stall_seconds_total',
    help: 'Seconds during which writes were stopped for flushes and compactions (wall time).',
    from: 'db.write_stall_ms',
    scale: 1 / 1000,
  },
  {
    name: 'background_errors_total',
    help: 'Errors that stopped background work (and writes) of a DB.',
    from: 'db.background_errors',
    scale: 1,
  },
  {
    name: 'background_worker_deaths_total',
    help: 'Background workers that died while they ran a job of a DB (the job ran again on a new one).',
    from: 'db.background_worker_deaths',
    scale: 1,
  },
];

/** Slot of `wal_failures_total`, fed by the WAL's `failed` event. */
export const WAL_FAILURES = FED_COUNTERS.findIndex((c) => c.name === 'wal_failures_total');

/** A histogram fed by `histogram()` calls. */
export interface ObservedHistogram {
  name: string;
  help: string;
  from: WalHistogram | DBHistogram;
  /** Multiplier applied to each observation (ms to seconds). */
  scale: number;
  buckets: number[];
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Histograms, in the order of the meter's pre-resolved observers. Each is observed at most once
 * per fsync, flush or compaction: a prom-client observation (about 1 µs with labels) is nothing
 * beside those. `wal.group_records` (one per write(2), so one per unbatched put) is left out for
 * that reason: `rate(wal_records_total) / rate(wal_writes_total)` is the mean group size.
 */
export const OBSERVED_HISTOGRAMS: readonly ObservedHistogram[] = [
  {
    name: 'wal_fsync_duration_seconds',
    help: 'Duration of each fdatasync of a WAL segment.',
    from: 'wal.fsync_ms',
    scale: 1 / 1000,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  },
  { name: 'flush_duration_seconds', help: 'Duration of each flush.', from: 'db.flush_ms', scale: 1 / 1000, buckets: DURATION_BUCKETS },
  {
    name: 'compaction_duration_seconds',
    help: 'Duration of each compaction.',
    from: 'db.compaction_ms',
    scale: 1 / 1000,
    buckets: DURATION_BUCKETS,
  },
];

/** What one scrape reads from the tracked sources' `stats()`, summed over them. */
export interface Sample {
  walSegments: number;
  memtableBytes: number;
  frozenMemtables: number;
  levelTables: number[];
  levelBytes: number[];
  blockCacheHits: number;
  blockCacheMisses: number;
  blockCacheBytes: number;
}

/** A value read from stats() at scrape time: one series, or one per level (a `level` label, "0", "1"...). */
export type ScrapedMetric = { name: string; help: string; type: 'counter' | 'gauge' } & (
  | { perLevel: false; read: (s: Sample) => number }
  | { perLevel: true; read: (s: Sample) => number[] }
);

/** Scraped metrics. */
export const SCRAPED: readonly ScrapedMetric[] = [
  { name: 'wal_segments', help: 'Segment files in the WAL.', type: 'gauge', read: (s) => s.walSegments, perLevel: false },
  {
    name: 'memtable_bytes',
    help: 'Approximate bytes of the active memtable.',
    type: 'gauge',
    read: (s) => s.memtableBytes,
    perLevel: false,
  },
  {
    name: 'frozen_memtables',
    help: 'Frozen memtables waiting to be flushed.',
    type: 'gauge',
    read: (s) => s.frozenMemtables,
    perLevel: false,
  },
  { name: 'level_tables', help: 'Tables in each level of the LSM tree.', type: 'gauge', read: (s) => s.levelTables, perLevel: true },
  {
    name: 'level_bytes',
    help: 'Bytes of the tables in each level of the LSM tree.',
    type: 'gauge',
    read: (s) => s.levelBytes,
    perLevel: true,
  },
  {
    name: 'block_cache_hits_total',
    help: 'Table block reads served by the block cache.',
    type: 'counter',
    read: (s) => s.blockCacheHits,
    perLevel: false,
  },
  {
    name: 'block_cache_misses_total',
    help: 'Table block reads the block cache could not serve.',
    type: 'counter',
    read: (s) => s.blockCacheMisses,
    perLevel: false,
  },
  {
    name: 'block_cache_bytes',
    help: 'Bytes of blocks held in the block cache.',
    type: 'gauge',
    read: (s) => s.blockCacheBytes,
    perLevel: false,
  },
];

/** Every metric name of the set, without the prefix. */
export const METRIC_NAMES: readonly string[] = [
  ...FED_COUNTERS.map((c) => c.name),
  ...OBSERVED_HISTOGRAMS.map((h) => h.name),
  ...SCRAPED.map((m) => m.name),
];
