/**
 * Snapshots: a consistent, read-only view of the DB at one moment, for `get`, `getSync`, `has`,
 * `getMany` and iterators (`{ snapshot }`).
 *
 * A snapshot holds a frozen view of the memtable (an O(1) copy-on-write clone), the frozen
 * memtables waiting for flush, and a pin on the current version of the table set, whose files
 * therefore stay open and on disk, whatever flushes and compactions happen, until it is closed.
 * It sees exactly the writes applied before it was taken (every write that resolved, and none
 * made after). Expiry is judged at the time it was taken, so its reads repeat.
 *
 * @module
 */
import { ClosedError } from '../errors.js';
import type { Entry, EntryCursor } from '../entry.js';
import type { Found } from '../found.js';
import type { FrozenMemtable } from '../memtable/memtable.js';
import type { Version } from './version.js';

/** A consistent, read-only view of the DB. Take one with `db.snapshot()`; close it when done. */
export class Snapshot {
  readonly #mem: FrozenMemtable;
  readonly #imm: readonly FrozenMemtable[];
  readonly #version: Version;
  readonly #onClose: (snapshot: Snapshot) => void;
  /** @internal The time (ms since the epoch, from the DB's clock) at which expiry is judged. */
  readonly now: number;
  /** @internal The DB that took it. */
  readonly owner: object;
  #closed = false;

  /** @internal `version` must be pinned for the snapshot; {@link close} unpins it. */
  constructor(
    owner: object,
    mem: FrozenMemtable,
    imm: readonly FrozenMemtable[],
    version: Version,
    now: number,
    onClose: (snapshot: Snapshot) => void,
  ) {
    this.owner = owner;
    this.#mem = mem;
    this.#imm = imm;
    this.#version = version;
    this.now = now;
    this.#onClose = onClose;
  }

  /** True once closed (by {@link close} or the DB's close). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Releases the snapshot: its tables may then be deleted once nothing else needs them.
   * Idempotent. Iterators already created from it keep working until they end.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#version.unpin();
    this.#onClose(this);
  }

  /** `using snap = db.snapshot()` closes it at the end of the block. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal The newest entry for `key` in the view, tombstones included. */
  lookup(key: Uint8Array): Entry | undefined {
    this.#check();
    const e = this.#mem.get(key);
    if (e) return e;
    for (const t of this.#imm) {
      const x = t.get(key);
      if (x) return x;
    }
    return this.#version.get(key);
  }

  /**
   * @internal {@link lookup} for the DB's read path: `hash` is the key's `keyHash`; fills `out`
   * (see `Found`). True if the view holds the key (a put or a tombstone).
   */
  find(key: Uint8Array, hash: number, out: Found): boolean {
    this.#check();
    if (this.#mem.find(key, hash, out)) return true;
    for (const t of this.#imm) if (t.find(key, hash, out)) return true;
    return this.#version.find(key, hash, out);
  }

  /** @internal Cursors over the view, newest data first, with their own pin on the tables. */
  cursors(): { cursors: EntryCursor[]; release: () => void } {
    this.#check();
    const version = this.#version.pin();
    return {
      cursors: [this.#mem.iterator(), ...this.#imm.map((t) => t.iterator()), ...version.cursors(true)],
      release: () => version.unpin(),
    };
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('the snapshot');
  }
}
