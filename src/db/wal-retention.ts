/**
 * What of the WAL must stay, and the deletion of the rest (RocksDB's WAL retention, Pebble's
 * obsolete files for the log): the change feed's retention slots (`SLOTS`, slots.ts), the read
 * positions of open feeds, and the copies (checkpoint, backup) under way hold WAL segments that
 * the flushes have made garbage. The DB asks for a collection after each flush and slot update;
 * this decides what goes. It also hosts the change feeds (changes.ts) the DB opens, whose holds
 * it keeps, and the slot operations (`ackChanges`, `releaseChanges`) once the DB has checked
 * that it is open and writable.
 *
 * Rules. A segment is deleted once it is wholly before the manifest's flushed position, the
 * lowest slot and every open feed's read position. A slot or feed holding back more than
 * `maxRetainedBytes` is dropped first: a slot durably (`SLOTS` rewritten before the segments it
 * held go, so a crash never brings back a slot whose segments are gone), its feeds failing with
 * `SlotDroppedError`, a feed without a slot with `ChangesExpiredError`. While a copy holds the
 * WAL nothing is deleted; the copy's release collects again.
 *
 * @module
 */
import * as path from 'node:path';
import { ChangesExpiredError, ClosedError, InvalidPositionError, SlotDroppedError, UnknownSlotError } from '../errors.js';
import type { FileSystem } from '../fs/types.js';
import { SEGMENT_HEADER_SIZE } from '../wal/format.js';
import { assertPosition, comparePositions, type Position } from '../wal/position.js';
import type { Wal } from '../wal/wal.js';
import { ChangeFeed, checkFeedPosition, type FeedHold, type FeedHost } from './changes.js';
import { WAL_DIR } from './filenames.js';
import type { ResolvedDBOptions } from './options.js';
import { checkSlotName, writeSlotsFile } from './slots.js';

/** What the WAL's retention needs of its DB. */
export interface RetentionHost {
  readonly fs: FileSystem;
  readonly dir: string;
  readonly opts: Pick<ResolvedDBOptions, 'readOnly' | 'maxRetainedBytes' | 'walSegmentSize' | 'meter'>;
  /** The DB's WAL (open once recovery has opened it). */
  wal(): Wal;
  /** The manifest's flushed position: the WAL before it is in the tables. */
  flushedThrough(): Position | null;
  isOpen(): boolean;
  isClosed(): boolean;
  /** End of the last write applied to the memtable: feeds read up to here. */
  appliedEnd(): Position;
  /** Resolves at the DB's next applied write, or when it closes. */
  nextWrite(): Promise<void>;
}

/** An open feed's hold on the WAL (its read position); `slot` for a retained feed. */
export type RetentionHold = FeedHold & { slot: string | undefined };

/** The retention slots, the feeds (and their holds on the WAL), the copies' holds, and the WAL's garbage collection. */
export class WalRetention {
  readonly #host: RetentionHost;
  /** Retention slots: name to acknowledged position (what `SLOTS` holds). */
  slots = new Map<string, Position>();
  /** Slots dropped for passing `maxRetainedBytes` since open: their acks fail with the error. */
  readonly droppedSlots = new Map<string, SlotDroppedError>();
  slotsDropped = 0;
  /** Open feeds' holds on the WAL (their read positions); `slot` for a retained feed. */
  readonly holds = new Set<RetentionHold>();
  /** Slot updates (and the SLOTS file writes) run one at a time. */
  #slotLane: Promise<void> = Promise.resolve();
  /** Writes of the SLOTS file, one at a time. */
  #slotsFileLane: Promise<void> = Promise.resolve();
  /** Copies (checkpoint, backup) holding the WAL: GC waits for them (see collectWal). */
  copies = 0;
  /** Where a WAL segment deletion under way deletes up to: feeds cannot start before it. */
  #gcTarget: Position | undefined;

  constructor(host: RetentionHost) {
    this.#host = host;
  }

  /** Settles once the slot updates begun so far are done (close waits for them). */
  get slotLane(): Promise<void> {
    return this.#slotLane;
  }

  /** Settles once the `SLOTS` writes begun so far are done. */
  get slotsFileLane(): Promise<void> {
    return this.#slotsFileLane;
  }

  /**
   * A change feed (see `DB.changes`, which checks the options) from `since`, else from slot
   * `retain`'s position if it exists, else from the oldest change the WAL holds. Its hold keeps
   * the WAL from its read position on; a `retain` slot that does not exist yet is created
   * (durably) at the start position when the feed starts.
   */
  openFeed<K, V>(since: Position | undefined, retain: string | undefined, decode: FeedHost<K, V>['decode']): ChangeFeed<K, V> {
    const existing = retain === undefined ? undefined : this.slots.get(retain);
    const start: Position = since !== undefined ? { segmentId: since.segmentId, offset: since.offset } : (existing ?? this.oldest());
    const hold = { position: start, error: undefined as Error | undefined, slot: retain };
    this.holds.add(hold);
    const host = this.#feedHost<K, V>({
      started: async (at) => {
        if (retain === undefined || this.slots.has(retain)) return;
        await this.updateSlots(() => {
          if (!this.slots.has(retain)) this.slots.set(retain, at);
          this.droppedSlots.delete(retain);
        });
      },
      ended: (h) => {
        this.holds.delete(h as typeof hold);
      },
      decode,
    });
    return new ChangeFeed<K, V>(host, start, hold);
  }

  /** Moves slot `name` to `position` (see `DB.ackChanges`, which checks the DB is open and writable). */
  async acknowledge(name: string, position: Position): Promise<void> {
    checkSlotName(name);
    assertPosition(position, 'position');
    const pos = { segmentId: position.segmentId, offset: position.offset };
    const current = this.slotOf(name);
    if (comparePositions(pos, current) < 0)
      throw new InvalidPositionError(pos, `before the slot's position (${current.segmentId}/${current.offset})`);
    if (comparePositions(pos, current) === 0) return;
    await checkFeedPosition(
      this.#feedHost<unknown, unknown>({
        started: () => Promise.resolve(),
        ended: () => undefined,
        decode: () => ({ key: undefined, value: undefined }),
      }),
      pos,
    );
    await this.updateSlots(() => {
      const current = this.slotOf(name);
      const c = comparePositions(pos, current);
      if (c < 0) throw new InvalidPositionError(pos, `before the slot's position (${current.segmentId}/${current.offset})`);
      if (c === 0) return false;
      this.slots.set(name, pos);
      return true;
    });
  }

  /** Drops slot `name` (see `DB.releaseChanges`, which checks the DB is open and writable). */
  async release(name: string): Promise<void> {
    checkSlotName(name);
    await this.updateSlots(() => {
      if (this.droppedSlots.delete(name)) return false;
      if (!this.slots.delete(name)) throw new UnknownSlotError(name);
      return true;
    });
  }

  /** What a feed (or a position check outside one) needs of this DB, with its own hooks. */
  #feedHost<K2, V2>(hooks: Pick<FeedHost<K2, V2>, 'started' | 'ended' | 'decode'>): FeedHost<K2, V2> {
    return {
      fs: this.#host.fs,
      wal: this.#host.wal(),
      walDir: path.join(this.#host.dir, WAL_DIR),
      readOnly: this.#host.opts.readOnly,
      appliedEnd: () => this.#host.appliedEnd(),
      oldest: () => this.oldest(),
      isOpen: () => this.#host.isOpen(),
      nextWrite: () => this.#host.nextWrite(),
      ...hooks,
    };
  }

  /** Slot `name`'s position; throws the error it was dropped with, or `UnknownSlotError`. */

  slotOf(name: string): Position {
    const dropped = this.droppedSlots.get(name);
    if (dropped) throw dropped;
    const p = this.slots.get(name);
    if (p === undefined) throw new UnknownSlotError(name);
    return p;
  }

  /**
   * Runs `change` on the slots in the slot lane; if it returns true (or nothing), writes `SLOTS`
   * (atomically, durably) and lets the WAL go up to the new lowest position. A throw changes
   * nothing. A failed write puts the slots back as they were on disk.
   */
  updateSlots(change: () => boolean | undefined): Promise<void> {
    const run = this.#slotLane.then(async () => {
      if (this.#host.isClosed()) throw new ClosedError('the database');
      const before = new Map(this.slots);
      if (change() === false) return;
      try {
        await this.persistSlots();
      } catch (err) {
        this.slots = before;
        throw err;
      }
      await this.collectWal();
    });
    this.#slotLane = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes `SLOTS` with the slots as they are when the write starts; writes run one at a time
   * (a slot update and a flush dropping a slot may both write).
   */
  persistSlots(): Promise<void> {
    const run = this.#slotsFileLane.then(() => writeSlotsFile(this.#host.fs, this.#host.dir, new Map(this.slots)));
    this.#slotsFileLane = run.catch(() => undefined);
    return run;
  }

  /** The oldest position a feed can start at. */
  oldest(): Position {
    const ids = this.#host.wal().stats();
    let id = ids.oldestSegmentId;
    if (this.#gcTarget && this.#gcTarget.segmentId > id) id = this.#gcTarget.segmentId;
    return { segmentId: id, offset: SEGMENT_HEADER_SIZE };
  }

  /**
   * WAL bytes that `p` holds back past the flushed position: 0 when `p` is at or after it. From
   * positions and the segment size (sealed segments are at most that big), so an approximation.
   */
  retainedBytes(p: Position): number {
    const flushed = this.#host.flushedThrough();
    if (!flushed || comparePositions(p, flushed) >= 0) return 0;
    return Math.max(0, (flushed.segmentId - p.segmentId) * this.#host.opts.walSegmentSize + flushed.offset - p.offset);
  }

  /**
   * Deletes the WAL segments no one needs: wholly before the manifest's flushed position, the
   * lowest slot and every open feed's read position. A slot or feed holding back more than
   * `maxRetainedBytes` is dropped first (durably, loudly).
   */
  async collectWal(): Promise<void> {
    const flushed = this.#host.flushedThrough();
    if (!flushed || this.#host.opts.readOnly) return;
    const max = this.#host.opts.maxRetainedBytes;
    const meter = this.#host.opts.meter;
    let dropped = false;
    for (const [name, p] of [...this.slots]) {
      const bytes = this.retainedBytes(p);
      if (bytes <= max) continue;
      const err = new SlotDroppedError(name, bytes, max);
      this.slots.delete(name);
      this.droppedSlots.set(name, err);
      this.slotsDropped++;
      dropped = true;
      for (const h of this.holds) if (h.slot === name) h.error = err;
      meter.counter('db.changes_slots_dropped', 1);
      meter.event({ type: 'changes-slot-dropped', slot: name, retainedBytes: bytes, maxRetainedBytes: max });
    }
    for (const h of this.holds) {
      if (h.error || h.slot !== undefined) continue;
      const bytes = this.retainedBytes(h.position);
      if (bytes > max) h.error = new ChangesExpiredError(h.position, flushed);
    }
    // Durable before the segments the dropped slots held go: a crash must not bring back a slot
    // whose segments are gone.
    if (dropped) await this.persistSlots();
    // While a copy holds the WAL nothing is deleted; its release runs this again. (The WAL would
    // defer the deletion itself, to the furthest position asked for meanwhile, which could be
    // past what a feed started meanwhile needs.)
    if (this.copies > 0) return;
    let gc: Position = flushed;
    for (const p of this.slots.values()) if (comparePositions(p, gc) < 0) gc = p;
    for (const h of this.holds) if (!h.error && comparePositions(h.position, gc) < 0) gc = h.position;
    this.#gcTarget = gc;
    try {
      await this.#host.wal().deleteSegmentsBefore(gc);
    } finally {
      if (this.#gcTarget === gc) this.#gcTarget = undefined;
    }
  }
}
