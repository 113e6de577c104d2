/**
 * The DB's statistics, `db.stats()`: what they are ({@link DBStats}) and how they are gathered
 * from the parts that keep them: the write path (writer.ts), background work (scheduler.ts), the
 * WAL's retention (wal-retention.ts), the table set, the block cache and the WAL. A snapshot of
 * counters and state, computed at the call; nothing here changes anything.
 *
 * @module
 */
import type { BlockCache, BlockCacheStats } from '../sstable/block-cache.js';
import type { Position } from '../wal/position.js';
import type { RecoveryInfo } from '../wal/recovery.js';
import type { Wal, WalStats } from '../wal/wal.js';
import type { BackgroundStats } from './background.js';
import { compactionDebt, levelTarget } from './compaction.js';
import type { ResolvedDBOptions } from './options.js';
import type { Scheduler } from './scheduler.js';
import type { Version } from './version.js';
import type { WalRetention } from './wal-retention.js';
import type { Writer } from './writer.js';

/** What `db.stats()` returns. */
export interface DBStats {
  memtable: { bytes: number; entries: number };
  frozenMemtables: number;
  /**
   * Memory the DB holds by its own accounting, in bytes: the active memtable and the frozen ones
   * waiting for their flush (arena chunks and index, `memtable.bytes` summed), the block cache's
   * charge (at most its budget), and what the open tables pin outside it (bloom filters, decoded
   * indexes). Buffers of background jobs and the JavaScript heap are not counted.
   */
  memory: { memtableBytes: number; frozenMemtableBytes: number; blockCacheBytes: number; tableReaderBytes: number };
  /**
   * Per level: tables, bytes, the level's size target (L1 and deeper but the last; L0's trigger is
   * a table count) and its compaction debt: the bytes over the target (L0: all of it once it has
   * `l0CompactionTrigger` tables).
   */
  levels: { tables: number; bytes: number; targetBytes: number | undefined; debtBytes: number }[];
  lastSequence: number;
  blockCache: BlockCacheStats;
  /**
   * Writes held while writes were stopped (too many frozen memtables, or L0 at
   * `l0StopTrigger`), including those queued behind them; and the wall time during which writes
   * were stopped (periods, not a sum over the waiting writes).
   */
  writeStalls: number;
  writeStallMs: number;
  /**
   * Writes delayed by the slowdown (L0 at `l0SlowdownTrigger`: 1 ms per admitted write),
   * including those queued behind a delayed one, and not stopped; and the wall time spent in
   * those delays.
   */
  writeSlowdowns: number;
  writeSlowdownMs: number;
  flushes: number;
  compactions: number;
  /** Compactions done by moving tables to the next level without a rewrite (counted in `compactions`). */
  trivialMoves: number;
  /** Compactions running now. */
  compactionsRunning: number;
  /** Sum of the levels' `debtBytes`. */
  compactionDebtBytes: number;
  /**
   * Where compaction time went, summed over the compactions done (see `JobProfile`): wall ms per
   * job, reading and merging inputs, encoding and writing outputs, finishing tables (fdatasync and
   * the read back included), yielded to other work on the thread; and the L1 bytes L0->L1 compactions rewrote.
   */
  compactionTime: { jobMs: number; readMs: number; writeMs: number; finishMs: number; yieldedMs: number };
  l0CompactionL1BytesRead: number;
  /** Bytes of keys and values written by users, and bytes written to tables by flushes and compactions. */
  userBytes: number;
  flushBytes: number;
  compactionBytesRead: number;
  compactionBytesWritten: number;
  /** Table bytes written per user byte. */
  writeAmplification: number;
  /** The error that stopped background work (and writes), if any. */
  backgroundError: Error | undefined;
  /**
   * Where flushes and compactions run (the `background` option, or `'inline'` with a
   * `fallbackReason` when the worker could not start), how many of this DB's jobs the background
   * worker ran, how many times it died while running one (the job then ran again), and how many
   * jobs `close()` cancelled.
   */
  background: BackgroundStats;
  wal: WalStats;
  /** What the WAL's recovery found when this DB was opened. */
  walRecovery: RecoveryInfo;
  /**
   * The change feed: its retention slots (name, acknowledged position, WAL bytes the slot holds
   * back past what the flushes let go, approximated from segment sizes), the feeds open, and the
   * slots dropped since open for passing `maxRetainedBytes`.
   */
  changes: { slots: { name: string; position: Position; retainedBytes: number }[]; feeds: number; slotsDropped: number };
}

/** Where `collectStats` reads the DB's statistics from. */
export interface StatsParts {
  readonly opts: ResolvedDBOptions;
  /** The current version of the table set. */
  readonly version: Version;
  readonly cache: BlockCache;
  readonly wal: Wal;
  readonly walRecovery: RecoveryInfo;
  readonly writer: Pick<Writer, 'mem' | 'imm' | 'seq' | 'stats'>;
  readonly scheduler: Pick<Scheduler, 'stats' | 'compactionsRunning' | 'compactionTime' | 'background'>;
  readonly retention: Pick<WalRetention, 'slots' | 'holds' | 'slotsDropped' | 'retainedBytes'>;
  readonly backgroundError: Error | undefined;
}

/** Counters and state; see {@link DBStats}. */
export function collectStats(p: StatsParts): DBStats {
  const s = p.scheduler.stats;
  const w = p.writer.stats;
  const written = s.flushBytes + s.compactionBytesWritten;
  const v = p.version;
  const debt = compactionDebt(v, p.opts);
  let frozenBytes = 0;
  for (const f of p.writer.imm) frozenBytes += f.table.approximateBytes;
  let readerBytes = 0;
  for (const level of v.levels) for (const t of level) readerBytes += t.reader.pinnedBytes;
  return {
    memtable: { bytes: p.writer.mem.approximateBytes, entries: p.writer.mem.size },
    frozenMemtables: p.writer.imm.length,
    memory: {
      memtableBytes: p.writer.mem.approximateBytes,
      frozenMemtableBytes: frozenBytes,
      blockCacheBytes: p.cache.usedBytes,
      tableReaderBytes: readerBytes,
    },
    levels: v.levels.map((level, l) => ({
      tables: level.length,
      bytes: v.levelBytes(l),
      targetBytes: l === 0 || l === v.levels.length - 1 ? undefined : levelTarget(l, p.opts),
      debtBytes: debt[l]!,
    })),
    lastSequence: p.writer.seq,
    blockCache: p.cache.stats(),
    writeStalls: w.writeStalls,
    writeStallMs: w.writeStallMs,
    writeSlowdowns: w.writeSlowdowns,
    writeSlowdownMs: w.writeSlowdownMs,
    flushes: s.flushes,
    compactions: s.compactions,
    trivialMoves: s.trivialMoves,
    l0CompactionL1BytesRead: s.l0CompactionL1BytesRead,
    userBytes: w.userBytes,
    flushBytes: s.flushBytes,
    compactionBytesRead: s.compactionBytesRead,
    compactionBytesWritten: s.compactionBytesWritten,
    compactionsRunning: p.scheduler.compactionsRunning,
    compactionDebtBytes: debt.reduce((a, b) => a + b, 0),
    compactionTime: { ...p.scheduler.compactionTime },
    writeAmplification: w.userBytes > 0 ? written / w.userBytes : 0,
    backgroundError: p.backgroundError,
    background: p.scheduler.background.stats(),
    wal: p.wal.stats(),
    walRecovery: p.walRecovery,
    changes: {
      slots: [...p.retention.slots].map(([name, position]) => ({
        name,
        position: { ...position },
        retainedBytes: p.retention.retainedBytes(position),
      })),
      feeds: p.retention.holds.size,
      slotsDropped: p.retention.slotsDropped,
    },
  };
}
