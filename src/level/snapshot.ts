/**
 * Explicit snapshots of a {@link SedimentLevel}: `db.snapshot()` is sediment's `db.snapshot()`
 * (synchronous, O(1): a copy-on-write view of the memtable and a pin on the table set), wrapped
 * in abstract-level's {@link AbstractSnapshot}, which counts the reads in flight and closes it
 * with the database.
 *
 * @module
 */
import { AbstractSnapshot } from 'abstract-level';
import type { Snapshot } from '../db/snapshot.js';
import { snapshotNotOpen } from './errors.js';

/** abstract-level's typings give AbstractSnapshot no constructor; it takes `{ owner }` (the database that closes it). */
const SnapshotBase = AbstractSnapshot as unknown as new (options: { owner: object }) => AbstractSnapshot;

/** A snapshot of a SedimentLevel (or of one of its sublevels): pass it as `{ snapshot }` to reads. */
export class SedimentSnapshot extends SnapshotBase {
  readonly #inner: Snapshot;
  #closing = false;

  /** @internal */
  constructor(inner: Snapshot, options: { owner: object }) {
    super(options);
    this.#inner = inner;
  }

  /** @internal The sediment snapshot, checked: reading through a closed or closing one is `LEVEL_SNAPSHOT_NOT_OPEN`. */
  get inner(): Snapshot {
    if (this.#closing || this.#inner.closed) throw snapshotNotOpen();
    return this.#inner;
  }

  /** @internal Called by abstract-level once, after the reads in flight. */
  async _close(): Promise<void> {
    this.#closing = true;
    this.#inner.close();
  }
}
