/**
 * The SSTable layer: immutable sorted table files (format in format.ts and
 * docs/FORMAT.md), their streaming writer, their reader and cursor, and the block cache
 * shared by every open table.
 *
 * @module
 */
export type { CursorOptions, Entry, EntryCursor, EntryKind } from '../entry.js';
export { BlockCache, type BlockCacheStats } from './block-cache.js';
export { type TableCompression, FORMAT_VERSION, MAX_BLOCK_SIZE, TABLE_MAGIC } from './format.js';
export { TableCursor } from './iterator.js';
export type { TableProperties } from './properties.js';
export {
  TableReader,
  type TableIteratorOptions,
  type TableReaderOptions,
  type TableReaderStats,
} from './table-reader.js';
export { MAX_ENTRY_SIZE, TableWriter, type TableWriterOptions, writeTable } from './table-writer.js';
