/**
 * The active segment: the one segment file a log appends to. It owns the file's handle and its
 * three lengths (the bytes handed to the OS, the bytes known durable, the bytes allocated),
 * writes frames at its end, runs its fdatasyncs, keeps zeros preallocated ahead of the writer,
 * and seals the file when the log rotates past it or closes. The queue, the fsync policies and
 * rotation are the log's (wal.ts), which reaches this file through {@link SegmentHost}.
 *
 * Sync requests: one fdatasync runs at a time per segment and covers everything written before
 * it started; requests made while it runs share the next one (group commit).
 *
 * Invariants:
 * - Bytes reach the file only at its end, and `end` moves past them only once the write
 *   completed; `synced` moves only after an fdatasync that started after those bytes were
 *   written, and a sync request resolves only then.
 * - Preallocation writes zeros only at or past the writer's end, synchronously between
 *   flushes, so it never overwrites a record.
 * - Once sealing starts, no sync and no zeroing starts; sealing trims the preallocated zeros and
 *   fdatasyncs before the log creates a successor, so every segment but the last ends cleanly
 *   on disk.
 * - A failed fdatasync, trim or directory sync fails the whole log (through the host): nothing
 *   is retried, and every waiting sync request rejects.
 *
 * @module
 */
import * as path from 'node:path';
import { IoError, ReadOnlyError, ioStep } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { MAX_SAFE_ID, SEGMENT_HEADER_SIZE, segmentFileName } from './format.js';
import { encodeSegmentHeader } from './frame.js';
import type { Meter } from './meter.js';

/** What a segment needs from its log. */
export interface SegmentHost {
  readonly fs: FileSystem;
  readonly dir: string;
  readonly meter: Meter;
  /** The log's failure: once set, no sync or zeroing starts, and sync requests reject with it. */
  failure(): Error | undefined;
  /** Whether the log still takes appends: preallocation stops once it does not. */
  isOpen(): boolean;
  /** Fails the log for good (a failed fdatasync, trim or directory sync). */
  fail(err: Error): void;
  /** Counts a completed fdatasync in the log's stats. */
  countFsync(): void;
}

/** A segment file the log opened (recovery's last segment) or created, ready to append to. */
export interface SegmentFile {
  id: number;
  file: string;
  handle: FileHandle;
  /** Logical end, durable: where the next frame goes. */
  end: number;
}

interface SyncWaiter {
  end: number;
  resolve(): void;
  reject(err: Error): void;
}

const ZERO_CHUNK = 256 * 1024;
const ZEROS = Buffer.alloc(ZERO_CHUNK);

/** The segment being appended to. */
export class ActiveSegment {
  readonly id: number;
  readonly file: string;
  readonly #host: SegmentHost;
  readonly #handle: FileHandle;
  /** Logical end: bytes of frames handed to the OS. */
  #end: number;
  /** Bytes known durable. */
  #synced: number;
  /** Bytes of the file known to hold data or zeros (>= end when preallocating). */
  #fileSize: number;
  #waiters: SyncWaiter[] = [];
  #syncing: Promise<void> | undefined;
  #zeroing = false;
  /** Set when rotation or close took the segment over: no new syncs or zeroing start on it. */
  #sealing = false;
  /** The best-effort trim of a failed write's partial bytes, which sealing waits for. */
  #trimming: Promise<void> | undefined;

  constructor(host: SegmentHost, seg: SegmentFile) {
    this.#host = host;
    this.id = seg.id;
    this.file = seg.file;
    this.#handle = seg.handle;
    this.#end = seg.end;
    this.#synced = seg.end;
    this.#fileSize = seg.end;
  }

  /** Logical end: bytes of frames handed to the OS, where the next frame goes. */
  get end(): number {
    return this.#end;
  }

  /** Bytes known durable. */
  get synced(): number {
    return this.#synced;
  }

  /** Bytes of the file known to hold data or zeros (>= end when preallocating). */
  get fileSize(): number {
    return this.#fileSize;
  }

  /** Whether an fdatasync is running. */
  get syncing(): boolean {
    return this.#syncing !== undefined;
  }

  /** Whether rotation or close took the segment over. */
  get sealing(): boolean {
    return this.#sealing;
  }

  /**
   * Hands `buf[0..length)` to the OS at the end, synchronously. Throws `IoError` if the write
   * fails: `end` stays put, and {@link discardFailedWrite} cuts off whatever part landed.
   */
  write(buf: Uint8Array, length: number): void {
    try {
      writeAllSync(this.#handle, buf, length, this.#end);
    } catch (err) {
      throw new IoError('write', this.file, err);
    }
    this.#end += length;
    this.#fileSize = Math.max(this.#fileSize, this.#end);
  }

  /**
   * Best effort, after a failed write (once the log has failed): cuts the partial write off so
   * the tail ends on a record boundary. Sealing waits for it before the handle closes.
   */
  discardFailedWrite(): void {
    this.#trimming = this.#handle.truncate(this.#end).catch(() => undefined);
  }

  /** Resolves once the segment is durable up to `end`. */
  syncTo(end: number): Promise<void> {
    const failure = this.#host.failure();
    if (failure) return Promise.reject(failure);
    if (this.#synced >= end) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ end, resolve, reject });
      if (!this.#syncing && !this.#sealing) this.#syncing = this.#syncLoop();
    });
  }

  /** Rejects every waiting sync request with `err` (the log failed). */
  rejectWaiters(err: Error): void {
    this.#settleWaiters(-1, err);
  }

  /** One fdatasync at a time per segment; each covers everything written before it started. */
  async #syncLoop(): Promise<void> {
    try {
      let first = true;
      while (this.#waiters.length > 0 && !this.#host.failure() && !this.#sealing) {
        // Let the writers the previous fdatasync released append again before the next one
        // starts: otherwise they just miss it, and writers settle into two alternating groups
        // that each get half the fsyncs.
        if (!first) await new Promise<void>((resolve) => setImmediate(resolve));
        first = false;
        if (this.#waiters.length === 0 || this.#host.failure() || this.#sealing) break;
        const target = this.#end;
        if (!(await this.#datasync())) return;
        this.#synced = Math.max(this.#synced, target);
        this.#settleWaiters(target);
      }
    } finally {
      this.#syncing = undefined;
    }
  }

  /** fdatasync with metering; on failure the log fails and false is returned. */
  async #datasync(): Promise<boolean> {
    const t0 = performance.now();
    try {
      await this.#handle.datasync();
    } catch (err) {
      this.#host.fail(new IoError('datasync', this.file, err));
      return false;
    }
    const ms = performance.now() - t0;
    const meter = this.#host.meter;
    this.#host.countFsync();
    meter.counter('wal.fsyncs', 1);
    meter.histogram('wal.fsync_ms', ms);
    meter.event({ type: 'fsync', segmentId: this.id, durationMs: ms, bytes: this.#end });
    return true;
  }

  /**
   * Seals the segment: no sync or zeroing starts on it from here on. Waits for the running sync
   * (and a failed write's trim); then, unless the log has failed, trims preallocated zeros,
   * fdatasyncs, and settles all of the segment's waiters. Resolves false if the log failed.
   */
  async seal(): Promise<boolean> {
    this.#sealing = true;
    await this.#syncing;
    await this.#trimming;
    if (this.#host.failure()) return false;
    const trim = this.#fileSize > this.#end;
    if (trim) {
      try {
        await this.#handle.truncate(this.#end);
      } catch (err) {
        this.#host.fail(new IoError('truncate', this.file, err));
        return false;
      }
      this.#fileSize = this.#end;
    }
    // After a trim the new size must be durable too, or a power loss brings the zeros back to a
    // segment that is no longer the last one.
    if (trim || this.#synced < this.#end || this.#waiters.length > 0) {
      if (!(await this.#datasync())) return false;
      this.#synced = this.#end;
    }
    if (trim) {
      const { fs, dir } = this.#host;
      try {
        await fs.syncDir(dir);
      } catch (err) {
        this.#host.fail(new IoError('syncDir', dir, err));
        return false;
      }
    }
    this.#settleWaiters(this.#end);
    return true;
  }

  /** Closes the handle (errors ignored: the log seals first when it has anything to keep). */
  async close(): Promise<void> {
    await this.#handle.close().catch(() => undefined);
  }

  /**
   * Keeps `want` bytes of zeros written and synced ahead of the writer, never past `max`. Zeros
   * are written synchronously, in chunks between event-loop turns, at or past the writer's end,
   * so they never land on a record; only the fdatasync is asynchronous.
   */
  preallocate(want: number, max: number): void {
    const host = this.#host;
    if (want === 0 || this.#zeroing || this.#sealing || host.failure() || !host.isOpen()) return;
    if (this.#fileSize - this.#end >= want / 2 || this.#fileSize >= max) return;
    this.#zeroing = true;
    const step = (): void => {
      if (this.#sealing || host.failure() || !host.isOpen()) {
        this.#zeroing = false;
        return;
      }
      const target = Math.min(this.#end + want, max);
      const from = Math.max(this.#fileSize, this.#end);
      if (from >= target) {
        this.#zeroing = false;
        // Make the zeros durable so later fdatasyncs overwrite allocated, synced blocks.
        if (this.#synced < this.#end) return; // the writer's own syncs will cover them
        // Tracked like any sync (sealing waits for it), and a failure fails the log: the kernel
        // reports a writeback error once, and the writer's next fdatasync would "succeed"
        // without its data (fsyncgate).
        if (!this.#syncing) {
          const target = this.#end;
          this.#syncing = this.#datasync().then((ok) => {
            if (ok) {
              this.#synced = Math.max(this.#synced, target);
              this.#settleWaiters(target);
            }
            this.#syncing = undefined;
            // Sync requests that arrived meanwhile found a sync running and did not start one.
            if (this.#waiters.length > 0 && !this.#sealing && !host.failure()) this.#syncing = this.#syncLoop();
          });
        }
        return;
      }
      const n = Math.min(ZERO_CHUNK, target - from);
      try {
        writeAllSync(this.#handle, ZEROS, n, from);
        this.#fileSize = from + n;
      } catch {
        // Preallocation is an optimisation, but a partial write may have landed: count it, so
        // that sealing trims it.
        this.#fileSize = Math.max(this.#fileSize, from + n);
        this.#zeroing = false;
        return;
      }
      setImmediate(step);
    };
    setImmediate(step);
  }

  /** Resolves the waiters covered by `upTo`; with `err`, rejects them all. */
  #settleWaiters(upTo: number, err?: Error): void {
    if (this.#waiters.length === 0) return;
    const still: SyncWaiter[] = [];
    for (const w of this.#waiters) {
      if (err) w.reject(err);
      else if (w.end <= upTo) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  }
}

/**
 * Refuses a new segment id whose successor the state file could not record (its fields stay
 * below 2^53): `IoError` with errno `EOVERFLOW`. Only a crafted state file, a crafted segment
 * name or a `discardBefore` near 2^53 gets here; a real log would need centuries.
 */
export function checkNewId(dir: string, id: number): void {
  if (Number.isSafeInteger(id) && id >= 0 && id < MAX_SAFE_ID) return;
  const file = path.join(dir, segmentFileName(id));
  throw new IoError(
    'create',
    file,
    Object.assign(new Error(`segment id ${id} is past the last one the log can record (${MAX_SAFE_ID - 1})`), { code: 'EOVERFLOW' }),
  );
}

/** Creates segment `id`: header written and synced, directory entry synced. */
export async function createSegment(fs: FileSystem, dir: string, id: number): Promise<SegmentFile> {
  checkNewId(dir, id);
  const file = path.join(dir, segmentFileName(id));
  const handle = await ioStep('create', file, () => fs.open(file, 'create'));
  try {
    const header = encodeSegmentHeader(id);
    await ioStep('write', file, async () => writeAllSync(handle, header, header.length, 0));
    await ioStep('datasync', file, () => handle.datasync());
    await ioStep('syncDir', dir, () => fs.syncDir(dir));
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
  return { id, file, handle, end: SEGMENT_HEADER_SIZE };
}

/** A read-only log's last segment (`end` its recovered end): never opened, never written. */
export function readOnlySegment(dir: string, id: number, end: number): SegmentFile {
  const file = path.join(dir, segmentFileName(id));
  return { id, file, handle: readOnlyHandle(file), end };
}

/** A handle that refuses everything but close. */
function readOnlyHandle(file: string): FileHandle {
  const refuse = (op: string) => (): never => {
    throw new ReadOnlyError('the WAL', op);
  };
  return {
    path: file,
    read: async () => refuse('read')(),
    readSync: refuse('read'),
    write: async () => refuse('write')(),
    writeSync: refuse('write'),
    datasync: async () => refuse('datasync')(),
    truncate: async () => refuse('truncate')(),
    size: async () => refuse('size')(),
    close: async () => undefined,
  };
}

/** Writes `buf[0..length)` at `position`, continuing after short writes. */
function writeAllSync(handle: FileHandle, buf: Uint8Array, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const n = handle.writeSync(buf, done, length - done, position + done);
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += n;
  }
}
