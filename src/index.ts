/**
 * sediment: an embedded, durable, sorted key-value store for Node.js, built on a write-ahead log.
 *
 * - `DB` (also `sediment/db`): the database, its snapshots and iterators.
 * - `Wal`, `Record` (also `sediment/wal`): the raw write-ahead log.
 * - The error classes, with their stable `code`s.
 * - `sediment/level` (the abstract-level store) and `sediment/prometheus` (the Prometheus
 *   meter) are separate entry points: importing `sediment` loads neither.
 *
 * Every name is listed: nothing internal leaks through an `export *`.
 *
 * @module
 */
export {
  DB,
  DBIterator,
  Snapshot,
  type BatchOperation,
  type DBOptions,
  type BackgroundMode,
  type BackgroundStats,
  type TableCompression,
  type DBStats,
  type IteratorOptions,
  type KeyOf,
  type PutOptions,
  type PutValue,
  type ReadOptions,
  type ValueOf,
  type WriteOptions,
  type WalView,
  type WalViewEntry,
  ChangeFeed,
  type Change,
  type ChangesOptions,
  type CheckpointInfo,
  type BackupDirOptions,
  type BackupInfo,
  type BackupSummary,
  type PruneInfo,
  type PruneOptions,
  type RestoreInfo,
  type RestoreOptions,
  type KeyEncoding,
  type ValueEncoding,
  type MsgpackValue,
  type JsonValue,
  type RepairOptions,
  type RepairReport,
  type DamagedTable,
  type MissingTable,
  type KeyRange,
  type DBMeter,
  type DBCounter,
  type DBHistogram,
  type DBEvent,
} from './db/index.js';
export {
  Wal,
  Record,
  comparePositions,
  noopMeter,
  loadZstd,
  WAL_FORMAT_VERSION,
  type WalOpenResult,
  type WalRetention,
  type WalStats,
  type Bytes,
  type RecordCompression,
  type RecordPutOptions,
  type Position,
  type FsyncPolicy,
  type RecoveryMode,
  type WalOptions,
  type RecoveryInfo,
  type Truncation,
  type QuarantinedFile,
  type LogEntry,
  type Meter,
  type WalCounter,
  type WalHistogram,
  type WalEvent,
} from './wal/index.js';
export * from './public-errors.js';
export type { FileSystem, FileHandle, FileStat, OpenMode, DirectoryLock } from './fs/types.js';
export { NodeFileSystem, nodeFileSystem } from './fs/node.js';
