/**
 * sediment: an embedded, durable, sorted key-value store for Node.js, built on a write-ahead log.
 *
 * @module
 */
export * from './wal/index.js';
export type { FileSystem, FileHandle, FileStat, OpenMode, DirectoryLock } from './fs/types.js';
export { NodeFileSystem, nodeFileSystem } from './fs/node.js';
