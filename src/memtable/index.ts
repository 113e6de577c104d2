/**
 * The memtable layer: sorted in-memory tables of entries, the arena format a worker thread reads
 * them from, and the entry and cursor types that every storage layer shares.
 *
 * @module
 */
export {
  type CursorOptions,
  type Entry,
  type EntryCursor,
  type EntryKind,
  MAX_SEQ,
  compareKeys,
  validateEntry,
} from '../entry.js';
export type { ArenaChunks } from './arena-format.js';
export { type FlushSource, flushSourceEntries } from './flush-source.js';
export { FrozenMemtable, INDEX_BYTES_PER_ENTRY, INDEX_BYTES_PER_RECORD, Memtable, MemtableCursor } from './memtable.js';
