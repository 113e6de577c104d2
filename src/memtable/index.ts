/**
 * The memtable layer: sorted in-memory tables of entries, and the entry and cursor types that
 * every storage layer shares.
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
export { ENTRY_OVERHEAD, FrozenMemtable, Memtable, MemtableCursor } from './memtable.js';
