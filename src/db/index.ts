/**
 * sediment/db: the database. `DB.open(dir, options)`, then put/get/delete, atomic batches,
 * snapshot range iterators, TTLs, flush and compaction over a WAL, memtables and SSTables.
 *
 * @module
 */
export {
  DB,
  DBIterator,
  type BatchOperation,
  type DBStats,
  type IteratorOptions,
  type KeyOf,
  type PutOptions,
  type ReadOptions,
  type PutValue,
  type ValueOf,
  type WriteOptions,
} from './db.js';
export { ChangeFeed, type Change, type ChangesOptions } from './changes.js';
export type { WalView, WalViewEntry } from './wal-view.js';
export type { CheckpointInfo } from './checkpoint.js';
export type {
  BackupDirOptions,
  BackupInfo,
  BackupSummary,
  PruneInfo,
  PruneOptions,
  RestoreInfo,
  RestoreOptions,
} from './backup.js';
export type { DBOptions } from './options.js';
export type { BackgroundMode, BackgroundStats } from './background.js';
export type { TableCompression } from '../sstable/format.js';
export type { KeyEncoding, ValueEncoding, MsgpackValue, JsonValue } from './encoding.js';
export type { RepairOptions, RepairReport, DamagedTable, MissingTable, KeyRange } from './repair.js';
export type { DBMeter, DBCounter, DBHistogram, DBEvent } from './meter.js';
export { Snapshot } from './snapshot.js';
export * from '../public-errors.js';
