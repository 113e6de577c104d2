/**
 * Replaying the log from a position (`Wal.readFrom`). A reader opens segments itself, so it
 * runs alongside appends; it reads the active segment only up to what the writer has handed
 * to the OS, and yields the records of a batch only once it has all of them.
 *
 * One async generator yields the records; a {@link SegmentReader} decodes them a buffered chunk
 * at a time (an array per read, not a promise per record), and reads a sealed segment's next
 * chunk while the current one is decoded.
 *
 * @module
 */
import * as path from 'node:path';
import { CorruptionError, IoError, ioStep } from '../errors.js';
import type { FileHandle } from '../fs/types.js';
import { FrameType, SEGMENT_HEADER_SIZE, segmentFileName } from './format.js';
import { assertPosition, type Position } from './position.js';
import { decodeRecord, type Record } from './record.js';
import { SegmentScanner, type ScanStep } from './scanner.js';
import type { FileSystem } from '../fs/types.js';

/** One record of a replay, with where it lives. */
export interface LogEntry {
  record: Record;
  position: Position;
}

/** What a reader needs to know of the live log. */
export interface ReaderSource {
  readonly fs: FileSystem;
  readonly dir: string;
  readonly maxRecordSize: number;
  /** Ids of the segments on disk, ascending. */
  segmentIds(): readonly number[];
  /** The segment being appended to and how far its bytes are in the OS. */
  writeHead(): Position;
  /** Throws if the log is closed. */
  assertReadable(): void;
}

/**
 * Yields every record from `from` on, in append order, until it catches up with the writer. A
 * bad position or a closed log throws from the first `next()`.
 */
export async function* readLog(src: ReaderSource, from: Position): AsyncGenerator<LogEntry, void, undefined> {
  assertPosition(from, 'readFrom position');
  src.assertReadable();
  const first = { segmentId: from.segmentId, offset: from.offset };
  let segmentId = src.segmentIds().find((id) => id >= first.segmentId);
  let start = segmentId === first.segmentId ? Math.max(first.offset, SEGMENT_HEADER_SIZE) : SEGMENT_HEADER_SIZE;
  while (segmentId !== undefined) {
    src.assertReadable();
    const file = path.join(src.dir, segmentFileName(segmentId));
    let handle: FileHandle;
    try {
      handle = await src.fs.open(file, 'read');
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw new IoError('open', file, err);
      // Deleted by deleteSegmentsBefore since we listed it: its records are gone for every reader.
      segmentId = src.segmentIds().find((id) => id > segmentId!);
      start = SEGMENT_HEADER_SIZE;
      continue;
    }
    const reader = new SegmentReader(src, handle, segmentId, start);
    try {
      for (let entries = await reader.read(); entries !== undefined; entries = await reader.read()) {
        for (let i = 0; i < entries.length; i++) yield entries[i]!;
      }
    } finally {
      await reader.close();
    }
    if (reader.caughtUp) return;
    const current: number = segmentId;
    segmentId = src.segmentIds().find((id) => id > current);
    start = SEGMENT_HEADER_SIZE;
  }
}

/** Decodes one segment's records from `start`, a buffered chunk at a time. */
class SegmentReader {
  readonly #src: ReaderSource;
  readonly #handle: FileHandle;
  readonly #segmentId: number;
  readonly #start: number;
  #scanner: SegmentScanner | undefined;
  /** Whether the segment was the writer's at the last look: it is then read up to the writer's head. */
  #active = true;
  #first = true;
  /** Frames of a batch whose LAST frame has not been read yet. */
  #batch: LogEntry[] = [];
  /** Damage met after records still to be handed out: thrown by the next read. */
  #failure: Error | undefined;
  /** Set when the segment ended at the writer's head: the replay is over. */
  caughtUp = false;

  constructor(src: ReaderSource, handle: FileHandle, segmentId: number, start: number) {
    this.#src = src;
    this.#handle = handle;
    this.#segmentId = segmentId;
    this.#start = start;
  }

  /** How far to read: the writer's head in the active segment, the file's end in a sealed one. */
  async #limitNow(): Promise<number> {
    const head = this.#src.writeHead();
    this.#active = head.segmentId === this.#segmentId;
    return this.#active ? head.offset : ioStep('stat', this.#handle.path, () => this.#handle.size());
  }

  /**
   * The next records, in order (never an empty array), or undefined at the end of the segment.
   * Throws `CorruptionError` at damage, once the records before it have been handed out.
   */
  async read(): Promise<LogEntry[] | undefined> {
    if (this.#failure) throw this.#failure;
    const file = this.#handle.path;
    if (!this.#scanner) {
      const limit = await this.#limitNow();
      // A sealed segment's end is fixed: its next chunk can be read while this one is decoded.
      this.#scanner = new SegmentScanner(this.#handle, this.#start, limit, this.#src.maxRecordSize, { readAhead: !this.#active });
    }
    const out: LogEntry[] = [];
    for (;;) {
      let scanner = this.#scanner;
      let step: ScanStep | undefined = scanner.nextBuffered();
      if (step === undefined) {
        if (out.length > 0) return out; // hand these over before waiting for a read
        step = await ioStep('read', file, () => scanner.next());
      }
      if (this.#first && this.#start > SEGMENT_HEADER_SIZE && step.kind !== 'frame' && step.kind !== 'end') {
        // `start` is not a frame boundary: find the first frame at or after it from the top.
        await scanner.settle();
        scanner = this.#scanner = new SegmentScanner(this.#handle, SEGMENT_HEADER_SIZE, scanner.limit, this.#src.maxRecordSize);
        do step = await ioStep('read', file, () => scanner.next());
        while (step.kind === 'frame' && step.offset < this.#start);
      }
      this.#first = false;
      if (step.kind === 'end') {
        if (out.length > 0) return out;
        const limit = await this.#limitNow();
        if (limit > scanner.limit) {
          scanner.setLimit(limit);
          continue;
        }
        if (this.#batch.length > 0) return this.#fail(out, 'batch without its last record', this.#batch[0]!.position.offset);
        this.caughtUp = this.#active;
        return undefined;
      }
      if (step.kind === 'damage') return this.#fail(out, step.reason, step.offset);
      const decoded = decodeRecord(step.payload, this.#src.maxRecordSize);
      if (!decoded.ok) return this.#fail(out, decoded.reason, step.offset);
      const entry: LogEntry = { record: decoded.record, position: { segmentId: this.#segmentId, offset: step.offset } };
      if (step.type === FrameType.FULL || step.type === FrameType.FIRST) {
        if (this.#batch.length > 0) return this.#fail(out, 'batch interrupted by another record', step.offset);
        if (step.type === FrameType.FULL) out.push(entry);
        else this.#batch = [entry];
      } else {
        // A MIDDLE or LAST with no FIRST is fine only where the caller started inside a batch.
        this.#batch.push(entry);
        if (step.type === FrameType.LAST) {
          for (const e of this.#batch) out.push(e);
          this.#batch = [];
        }
      }
    }
  }

  /** Hands out `out` first if it holds records, then the corruption error. */
  #fail(out: LogEntry[], reason: string, offset: number): LogEntry[] {
    const err = new CorruptionError(reason, { file: this.#handle.path, offset, segmentId: this.#segmentId });
    if (out.length === 0) throw err;
    this.#failure = err;
    return out;
  }

  /** Waits for a read in flight and closes the file. */
  async close(): Promise<void> {
    await this.#scanner?.settle();
    await this.#handle.close().catch(() => undefined);
  }
}
