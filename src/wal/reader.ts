/**
 * Replaying the log from a position (`Wal.readFrom`). A reader opens segments itself, so it
 * runs alongside appends; it reads the active segment only up to what the writer has handed
 * to the OS, and yields the records of a batch only once it has all of them.
 *
 * @module
 */
import * as path from 'node:path';
import { CorruptionError, IoError, ioStep } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { FrameType, SEGMENT_HEADER_SIZE, segmentFileName } from './format.js';
import type { Position } from './position.js';
import { decodeRecord, type Record } from './record.js';
import { SegmentScanner, type ScanStep } from './scanner.js';

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

/** Yields every record from `from` on, in append order, until it catches up with the writer. */
export async function* readLog(src: ReaderSource, from: Position): AsyncGenerator<LogEntry, void, undefined> {
  let segmentId = src.segmentIds().find((id) => id >= from.segmentId);
  let start = segmentId === from.segmentId ? Math.max(from.offset, SEGMENT_HEADER_SIZE) : SEGMENT_HEADER_SIZE;
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
    let caughtUp: boolean;
    try {
      caughtUp = yield* readSegment(src, handle, segmentId, start);
    } finally {
      await handle.close().catch(() => undefined);
    }
    if (caughtUp) return;
    const current: number = segmentId;
    segmentId = src.segmentIds().find((id) => id > current);
    start = SEGMENT_HEADER_SIZE;
  }
}

async function* readSegment(
  src: ReaderSource,
  handle: FileHandle,
  segmentId: number,
  start: number,
): AsyncGenerator<LogEntry, boolean, undefined> {
  const file = handle.path;
  let active = true;
  // The active segment is read up to the writer's head; a sealed one to its end.
  const limitNow = async (): Promise<number> => {
    const head = src.writeHead();
    active = head.segmentId === segmentId;
    return active ? head.offset : ioStep('stat', file, () => handle.size());
  };
  let scanner = new SegmentScanner(handle, start, await limitNow(), src.maxRecordSize);
  let first = true;
  let batch: LogEntry[] = [];
  for (;;) {
    let step: ScanStep = scanner.nextBuffered() ?? (await ioStep('read', file, () => scanner.next()));
    if (first && start > SEGMENT_HEADER_SIZE && step.kind !== 'frame' && !(step.kind === 'end')) {
      // `start` is not a frame boundary: find the first frame at or after it from the top.
      scanner = new SegmentScanner(handle, SEGMENT_HEADER_SIZE, scanner.limit, src.maxRecordSize);
      do step = await ioStep('read', file, () => scanner.next());
      while (step.kind === 'frame' && step.offset < start);
    }
    first = false;
    if (step.kind === 'end') {
      const limit = await limitNow();
      if (limit > scanner.limit) {
        scanner.setLimit(limit);
        continue;
      }
      if (batch.length > 0) throw corruption('batch without its last record', file, batch[0]!.position.offset, segmentId);
      return active; // true: caught up with the writer
    }
    if (step.kind === 'damage') throw corruption(step.reason, file, step.offset, segmentId);
    const decoded = decodeRecord(step.payload, src.maxRecordSize);
    if (!decoded.ok) throw corruption(decoded.reason, file, step.offset, segmentId);
    const entry: LogEntry = { record: decoded.record, position: { segmentId, offset: step.offset } };
    if (step.type === FrameType.FULL) {
      if (batch.length > 0) throw corruption('batch interrupted by another record', file, step.offset, segmentId);
      yield entry;
    } else if (step.type === FrameType.FIRST) {
      if (batch.length > 0) throw corruption('batch interrupted by another record', file, step.offset, segmentId);
      batch = [entry];
    } else {
      // A MIDDLE or LAST with no FIRST is fine only where the caller started inside a batch.
      batch.push(entry);
      if (step.type === FrameType.LAST) {
        const done = batch;
        batch = [];
        for (const e of done) yield e;
      }
    }
  }
}

function corruption(reason: string, file: string, offset: number, segmentId: number): CorruptionError {
  return new CorruptionError(reason, { file, offset, segmentId });
}
