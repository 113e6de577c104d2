/**
 * sediment: an embedded, durable, sorted key-value store for Node.js, built on a write-ahead log.
 *
 * - `DB` (also `sediment/db`): the database.
 * - `Wal`, `Record` (also `sediment/wal`): the raw write-ahead log.
 * - The error classes, with their stable `code`s.
 *
 * @module
 */
export * from './wal/index.js';
export {
  DB,
  DBIterator,
  type BatchOperation,
  type DBStats,
  type DBOptions,
  type IteratorOptions,
  type PutOptions as DBPutOptions,
  type WriteOptions,
  type KeyEncoding,
  type ValueEncoding,
  type MsgpackValue,
} from './db/index.js';
export type { FileSystem, FileHandle, FileStat, OpenMode, DirectoryLock } from './fs/types.js';
export { NodeFileSystem, nodeFileSystem } from './fs/node.js';
