/**
 * What a point lookup found, written in place: the DB's read path passes one {@link Found} down
 * through the memtables and the tables instead of having each make an entry object and a view of
 * its value, so that a `get` allocates nothing but the value it returns.
 *
 * @module
 */
import type { EntryKind } from './entry.js';

const EMPTY = new Uint8Array(0);

/**
 * The entry a lookup found, filled by `Memtable.find`, `TableReader.find` and their callers. The
 * value is `bytes[start..end)`, where `bytes` is the memory that holds it (an arena chunk of a
 * memtable, a block of a table, possibly cached): read or copy it before the next lookup, never
 * modify or keep it. One per reader, reused: a lookup overwrites every field it reports.
 */
export class Found {
  /** `put` or `delete` (a tombstone, whose value is empty). */
  kind: EntryKind = 'put';
  /** The entry's sequence number. */
  seq = 0;
  /** Expiry time (ms since the epoch), or `undefined` for none. */
  expiresAt: number | undefined = undefined;
  /** The memory holding the value (not a copy: see the class comment). */
  bytes: Uint8Array = EMPTY;
  /** Where the value starts in {@link bytes}. */
  start = 0;
  /** Where the value ends in {@link bytes}. */
  end = 0;

  /** The value as a view of {@link bytes} (allocates one). */
  value(): Uint8Array {
    return this.bytes.subarray(this.start, this.end);
  }
}
