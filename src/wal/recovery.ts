/**
 * Recovery: what `Wal.open` does to a directory of segments before the first append.
 *
 * It runs in two phases, so that a refused open changes no byte on disk:
 * 1. **Scan** (read only). Every segment is read end to end; every frame's checksums, type
 *    sequence and record structure are checked. Each segment yields a report: its valid end,
 *    its records, and the first damage, classified as a zero tail, a record cut off by the end
 *    of the file, or bad bytes, and whether any valid frame still follows the damage.
 * 2. **Plan and act.** Damage in the *last* segment with no valid frame after it is what a crash
 *    leaves (a torn write, a batch without its LAST frame, zeros from preallocation): it is
 *    truncated and reported, in both modes. Any other damage (in an older segment, a missing
 *    segment, valid frames after garbage) is corruption: `strict` throws `CorruptionError`
 *    naming the segment and offset; `salvage` keeps the longest valid prefix of the whole log
 *    and moves everything after the first damage into `quarantine/`, never deleting it.
 *
 * Order of the salvage steps, chosen so that a crash during recovery leaves a state the next
 * recovery handles the same way: copy the damaged tail out (synced), move later segments out
 * (newest first), then truncate the damaged segment.
 *
 * @module
 */
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { CorruptionError, IoError, errnoOf, ioStep } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { FRAME_HEADER_SIZE, FrameType, SEGMENT_HEADER_SIZE, parseSegmentFileName, segmentFileName } from './format.js';
import { checkFrame, checkSegmentHeader, encodeSegmentHeader, mayBeFrame } from './frame.js';
import type { Meter } from './meter.js';
import type { RecoveryMode } from './options.js';
import type { Position } from './position.js';
import { checkPayload } from './record.js';
import { SegmentScanner } from './scanner.js';

/** A truncation recovery made. */
export interface Truncation {
  segmentId: number;
  /** Where the segment now ends. */
  offset: number;
  /** Bytes removed. */
  bytes: number;
  /** Why: `zero-tail`, `torn-record`, `incomplete-batch`, `torn-segment-header`, or a checksum failure. */
  reason: string;
}

/** Bytes that salvage recovery moved into `quarantine/`. */
export interface QuarantinedFile {
  /** Path of the file in the quarantine folder. */
  file: string;
  segmentId: number;
  /** Offset in the original segment where the moved bytes started (0: the whole segment). */
  offset: number;
  bytes: number;
  reason: string;
}

/** What recovery found and did; returned by `Wal.open` as `recovery`. */
export interface RecoveryInfo {
  mode: RecoveryMode;
  /** Records in the log after recovery. */
  validRecords: number;
  segmentsScanned: number;
  /** Bytes removed from the end of the last segment (torn records, zero tails). */
  bytesTruncated: number;
  /**
   * True when damage other than a cut-off record, an unfinished batch or zeros was found: a
   * checksum or structure failure (then truncated if it was the tail, or quarantined).
   */
  corruptionDetected: boolean;
  /** Position of the last valid record, or null if the log is empty. */
  lastPosition: Position | null;
  truncations: Truncation[];
  quarantined: QuarantinedFile[];
}

/** A segment that survived recovery. */
export interface RecoveredSegment {
  id: number;
  /** The segment's end: where the next frame would go. */
  end: number;
}

/** The log's state after recovery. */
export interface RecoveryResult {
  info: RecoveryInfo;
  segments: RecoveredSegment[];
}

interface Damage {
  /** Where valid data ends: truncate here (start of an unfinished batch, or of the bad frame). */
  keepEnd: number;
  /** The first byte that is not part of a valid frame. */
  at: number;
  reason: string;
  /** Everything from `at` on is zero. */
  zeros: boolean;
  /** The damage is a frame cut off by the end of the file, or an unfinished batch. */
  cutOff: boolean;
  /** Offset of a valid frame after the damage, if there is one. */
  validFrameAt: number | undefined;
}

interface SegmentReport {
  id: number;
  file: string;
  size: number;
  records: number;
  lastRecordOffset: number | undefined;
  validEnd: number;
  headerProblem: string | undefined;
  damage: Damage | undefined;
}

const CHUNK = 1 << 20;
const ZEROS = Buffer.alloc(CHUNK);

/** Lists segment ids in `dir`, ascending. */
export async function listSegments(fs: FileSystem, dir: string): Promise<number[]> {
  const ids: number[] = [];
  for (const name of await fs.readdir(dir)) {
    const id = parseSegmentFileName(name);
    if (id !== undefined) ids.push(id);
  }
  return ids.sort((a, b) => a - b);
}

/** Scans, plans and repairs the log in `dir`; throws `CorruptionError` in strict mode. */
export async function recover(
  fs: FileSystem,
  dir: string,
  mode: RecoveryMode,
  maxRecordSize: number,
  meter: Meter,
  discardBefore?: Position,
): Promise<RecoveryResult> {
  const all = await listSegments(fs, dir);
  // Segments wholly before `discardBefore` hold nothing the caller needs: not scanned, deleted
  // once the plan stands.
  const discarded = discardBefore ? all.filter((id) => id < discardBefore.segmentId) : [];
  const ids = discardBefore ? all.filter((id) => id >= discardBefore.segmentId) : all;
  const reports: SegmentReport[] = [];
  for (let i = 0; i < ids.length; i++) {
    const resumeAt = discardBefore && ids[i] === discardBefore.segmentId ? discardBefore.offset : undefined;
    reports.push(await scanSegment(fs, path.join(dir, segmentFileName(ids[i]!)), ids[i]!, maxRecordSize, resumeAt));
  }

  const info: RecoveryInfo = {
    mode,
    validRecords: 0,
    segmentsScanned: reports.length,
    bytesTruncated: 0,
    corruptionDetected: false,
    lastPosition: null,
    truncations: [],
    quarantined: [],
  };

  // The first damage that a crash cannot explain, if any.
  let problem: { index: number; keepEnd: number; at: number; reason: string; missing?: number } | undefined;
  for (let i = 0; i < reports.length && !problem; i++) {
    const r = reports[i]!;
    const isLast = i === reports.length - 1;
    if (i > 0 && r.id !== reports[i - 1]!.id + 1) {
      const missing = reports[i - 1]!.id + 1;
      problem = { index: i, keepEnd: 0, at: 0, reason: `segment ${missing} is missing`, missing };
      break;
    }
    const d = r.damage;
    if (!d) continue;
    const crashShaped = isLast && d.validFrameAt === undefined;
    if (!crashShaped) {
      const follows = d.validFrameAt !== undefined ? ` (a valid record follows at offset ${d.validFrameAt})` : '';
      problem = { index: i, keepEnd: d.keepEnd, at: d.at, reason: `${d.reason}${follows}` };
    }
  }

  if (problem && mode === 'strict') {
    const r = reports[problem.index]!;
    const missing = problem.missing;
    if (missing !== undefined) {
      // A hole: name the missing file.
      throw new CorruptionError(`${problem.reason}; the log was left untouched`, {
        file: path.join(dir, segmentFileName(missing)),
        offset: 0,
        segmentId: missing,
      });
    }
    throw new CorruptionError(
      `${problem.reason}; the log was left untouched (open with recovery: 'salvage' to keep the valid prefix and quarantine the rest)`,
      { file: r.file, offset: problem.at, segmentId: r.id, unreadableBytes: Math.max(0, r.size - problem.at) },
    );
  }

  for (const id of discarded) {
    const file = path.join(dir, segmentFileName(id));
    await ioStep('unlink', file, () => fs.unlink(file));
    await ioStep('syncDir', dir, () => fs.syncDir(dir));
  }
  const kept = problem ? reports.slice(0, problem.index + (problem.keepEnd > 0 ? 1 : 0)) : reports;
  if (problem) {
    info.corruptionDetected = true;
    await quarantine(fs, dir, reports, problem, info, meter);
    if (problem.keepEnd > 0) {
      const r = reports[problem.index]!;
      r.validEnd = problem.keepEnd;
      r.damage = undefined;
    }
  } else {
    // Only the last segment can carry crash damage here; repair it.
    const last = reports[reports.length - 1];
    if (last?.damage) await repairTail(fs, dir, last, info, meter);
  }

  const segments: RecoveredSegment[] = [];
  for (const r of kept) {
    info.validRecords += r.records;
    if (r.lastRecordOffset !== undefined) info.lastPosition = { segmentId: r.id, offset: r.lastRecordOffset };
    segments.push({ id: r.id, end: r.validEnd });
  }
  return { info, segments };
}

/**
 * Reads one segment and reports its valid prefix and first damage. Read only. With `resumeAt`
 * (a record position the caller no longer needs anything before), damage before it is skipped
 * by resuming the scan at that record.
 */
async function scanSegment(fs: FileSystem, file: string, id: number, maxRecordSize: number, resumeAt?: number): Promise<SegmentReport> {
  const handle = await ioStep('open', file, () => fs.open(file, 'read'));
  let scanner: SegmentScanner | undefined;
  try {
    const size = await ioStep('stat', file, () => handle.size());
    const report: SegmentReport = {
      id,
      file,
      size,
      records: 0,
      lastRecordOffset: undefined,
      validEnd: SEGMENT_HEADER_SIZE,
      headerProblem: undefined,
      damage: undefined,
    };
    const header = Buffer.alloc(Math.min(size, SEGMENT_HEADER_SIZE));
    await readFully(handle, header, 0);
    report.headerProblem = checkSegmentHeader(header, id);
    if (report.headerProblem) {
      report.validEnd = 0;
      report.damage = {
        keepEnd: 0,
        at: 0,
        reason: report.headerProblem,
        zeros: await isZeroRange(handle, 0, size),
        cutOff: size < SEGMENT_HEADER_SIZE,
        validFrameAt: await findValidFrame(handle, SEGMENT_HEADER_SIZE, size, maxRecordSize),
      };
      return report;
    }

    // Read-ahead: the next chunk is read while this one is checked (no payload is kept past its
    // step here, which read-ahead's buffer reuse requires).
    scanner = new SegmentScanner(handle, SEGMENT_HEADER_SIZE, size, maxRecordSize, { readAhead: true });
    let unitStart = -1; // offset of the FIRST frame of an unfinished batch
    let unitRecords = 0;
    let resumedAt = -1;
    for (;;) {
      const current = scanner;
      const step = current.nextBuffered() ?? (await ioStep('read', file, () => current.next()));
      // What is wrong with this frame, if anything; checked once (the resume point is exempt).
      const bad =
        step.kind === 'frame' && step.offset !== resumedAt
          ? (checkPayload(step.payload, maxRecordSize) ?? sequenceProblem(step.type, unitStart >= 0))
          : undefined;
      const broken = step.kind === 'damage' || (step.kind === 'end' && unitStart >= 0) || bad !== undefined;
      if (broken && resumeAt !== undefined && resumedAt < 0 && step.offset < resumeAt && resumeAt < size) {
        // Damage in records the caller has stored elsewhere: start over at the record it needs.
        await scanner.settle();
        scanner = new SegmentScanner(handle, resumeAt, size, maxRecordSize, { readAhead: true });
        resumedAt = resumeAt;
        unitStart = -1;
        report.records = 0;
        report.lastRecordOffset = undefined;
        continue;
      }
      if (step.kind === 'frame' && step.offset === resumedAt) {
        // The record at the resume point is the last one the caller already has: it ends a unit.
        resumedAt = Number.MAX_SAFE_INTEGER;
        report.validEnd = step.end;
        continue;
      }
      if (step.kind === 'end') {
        if (unitStart >= 0) report.damage = await classify(handle, unitStart, step.offset, 'incomplete-batch', true, undefined, size, maxRecordSize);
        break;
      }
      const keepEnd = unitStart >= 0 ? unitStart : step.offset;
      if (step.kind === 'damage') {
        const reason = step.cutOff ? (unitStart >= 0 ? 'incomplete-batch' : 'torn-record') : step.reason;
        report.damage = await classify(handle, keepEnd, step.offset, reason, step.cutOff, step.claimedEnd, size, maxRecordSize);
        break;
      }
      if (bad !== undefined) {
        report.damage = await classify(handle, keepEnd, step.offset, bad, false, step.end, size, maxRecordSize);
        break;
      }
      if (step.type === FrameType.FIRST) {
        unitStart = step.offset;
        unitRecords = 1;
      } else if (step.type === FrameType.MIDDLE) {
        unitRecords++;
      } else {
        report.records += step.type === FrameType.LAST ? unitRecords + 1 : 1;
        report.lastRecordOffset = step.offset;
        report.validEnd = step.end;
        unitStart = -1;
      }
    }
    return report;
  } finally {
    await scanner?.settle();
    await handle.close().catch(() => undefined);
  }
}

function sequenceProblem(type: FrameType, inBatch: boolean): string | undefined {
  if (inBatch && (type === FrameType.FULL || type === FrameType.FIRST)) return 'batch interrupted by another record';
  if (!inBatch && (type === FrameType.MIDDLE || type === FrameType.LAST)) return 'batch continuation without its start';
  return undefined;
}

async function classify(
  handle: FileHandle,
  keepEnd: number,
  at: number,
  reason: string,
  cutOff: boolean,
  claimedEnd: number | undefined,
  size: number,
  maxRecordSize: number,
): Promise<Damage> {
  const zeros = await isZeroRange(handle, at, size);
  if (!zeros && !cutOff && claimedEnd !== undefined && claimedEnd <= size && (await isZeroRange(handle, claimedEnd - 1, size))) {
    // A frame with a valid header whose payload ends in zeros, and only zeros after it: a write
    // cut short over preallocated space, which is what a crash does, not damage.
    return { keepEnd, at, reason: 'torn-record', zeros: false, cutOff: true, validFrameAt: undefined };
  }
  let validFrameAt: number | undefined;
  if (!zeros) {
    // A frame whose header was valid claimed its extent: a valid frame inside its payload would
    // be user data that looks like a frame, so the search starts after it.
    const from = claimedEnd !== undefined ? Math.min(claimedEnd, size) : at + 1;
    validFrameAt = await findValidFrame(handle, from, size, maxRecordSize);
  }
  return { keepEnd, at, reason: zeros && !cutOff ? 'zero-tail' : reason, zeros, cutOff, validFrameAt };
}

/** Truncates crash damage off the end of the last segment (both modes). */
async function repairTail(fs: FileSystem, dir: string, r: SegmentReport, info: RecoveryInfo, meter: Meter): Promise<void> {
  const d = r.damage!;
  const removed = r.size - d.keepEnd;
  const handle = await ioStep('open', r.file, () => fs.open(r.file, 'readwrite'));
  try {
    if (r.headerProblem) {
      // A crash while the segment was being created: no record can be in it. Start it afresh.
      await ioStep('truncate', r.file, () => handle.truncate(0));
      const header = encodeSegmentHeader(r.id);
      await ioStep('write', r.file, () => writeFully(handle, header, 0));
      r.validEnd = SEGMENT_HEADER_SIZE;
    } else {
      await ioStep('truncate', r.file, () => handle.truncate(d.keepEnd));
      r.validEnd = d.keepEnd;
    }
    await ioStep('datasync', r.file, () => handle.datasync());
  } finally {
    await handle.close().catch(() => undefined);
  }
  await ioStep('syncDir', dir, () => fs.syncDir(dir));
  // A header shorter than its size or all zeros is a crash during creation; a complete header
  // that fails its checks was damaged.
  const tornHeader = r.headerProblem !== undefined && (r.size < SEGMENT_HEADER_SIZE || d.zeros);
  const reason = tornHeader ? 'torn-segment-header' : d.reason;
  if (!d.zeros && !d.cutOff && !tornHeader) info.corruptionDetected = true;
  info.bytesTruncated += removed;
  info.truncations.push({ segmentId: r.id, offset: d.keepEnd, bytes: removed, reason });
  meter.event({ type: 'corruption-truncated', segmentId: r.id, offset: d.keepEnd, bytes: removed, reason });
}

/** Salvage: moves everything after the first damage into `quarantine/`. */
async function quarantine(
  fs: FileSystem,
  dir: string,
  reports: SegmentReport[],
  problem: { index: number; keepEnd: number; at: number; reason: string },
  info: RecoveryInfo,
  meter: Meter,
): Promise<void> {
  const qdir = path.join(dir, 'quarantine');
  await ioStep('mkdir', qdir, () => fs.mkdir(qdir));
  await ioStep('syncDir', dir, () => fs.syncDir(dir));
  // A fresh tag per salvage: a later salvage must never overwrite what an earlier one moved.
  const stamp = `${Date.now()}-${randomBytes(4).toString('hex')}`;
  const damaged = reports[problem.index]!;
  const record = (file: string, r: SegmentReport, offset: number, reason: string): void => {
    const q = { file, segmentId: r.id, offset, bytes: r.size - offset, reason };
    info.quarantined.push(q);
    meter.event({ type: 'quarantined', ...q });
  };

  // 1. Copy the damaged segment's tail out, durably, before anything is removed.
  if (problem.keepEnd > 0) {
    const target = path.join(qdir, `${stamp}-${segmentFileName(damaged.id)}.from-${problem.keepEnd}`);
    await copyRange(fs, damaged.file, problem.keepEnd, damaged.size, target);
    await ioStep('syncDir', qdir, () => fs.syncDir(qdir));
    record(target, damaged, problem.keepEnd, problem.reason);
  }
  // 2. Move whole segments out, newest first, so that a crash midway leaves no hole in front of
  //    kept data.
  const firstMoved = problem.keepEnd > 0 ? problem.index + 1 : problem.index;
  for (let i = reports.length - 1; i >= firstMoved; i--) {
    const r = reports[i]!;
    const target = path.join(qdir, `${stamp}-${segmentFileName(r.id)}`);
    if (await exists(fs, target)) throw new IoError('rename', target, Object.assign(new Error('quarantine name taken'), { code: 'EEXIST' }));
    await ioStep('rename', r.file, () => fs.rename(r.file, target));
    await ioStep('syncDir', qdir, () => fs.syncDir(qdir));
    await ioStep('syncDir', dir, () => fs.syncDir(dir));
    record(target, r, 0, i === problem.index ? problem.reason : `follows damage in segment ${damaged.id}`);
  }
  // 3. Cut the damaged segment back to its valid prefix.
  if (problem.keepEnd > 0) {
    const handle = await ioStep('open', damaged.file, () => fs.open(damaged.file, 'readwrite'));
    try {
      await ioStep('truncate', damaged.file, () => handle.truncate(problem.keepEnd));
      await ioStep('datasync', damaged.file, () => handle.datasync());
    } finally {
      await handle.close().catch(() => undefined);
    }
    await ioStep('syncDir', dir, () => fs.syncDir(dir));
  }
}

async function exists(fs: FileSystem, file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw new IoError('stat', file, err);
  }
}

async function copyRange(fs: FileSystem, from: string, start: number, end: number, to: string): Promise<void> {
  const src = await ioStep('open', from, () => fs.open(from, 'read'));
  try {
    const dst = await ioStep('open', to, () => fs.open(to, 'create'));
    try {
      const buf = Buffer.allocUnsafe(CHUNK);
      for (let pos = start; pos < end; ) {
        const n = await ioStep('read', from, () => src.read(buf, 0, Math.min(CHUNK, end - pos), pos));
        if (n === 0) break;
        await ioStep('write', to, () => writeFully(dst, buf.subarray(0, n), pos - start));
        pos += n;
      }
      await ioStep('datasync', to, () => dst.datasync());
    } finally {
      await dst.close().catch(() => undefined);
    }
  } finally {
    await src.close().catch(() => undefined);
  }
}

/** True when `[start, end)` of the file is all zero bytes. */
async function isZeroRange(handle: FileHandle, start: number, end: number): Promise<boolean> {
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(0, end - start)));
  for (let pos = start; pos < end; ) {
    const n = await ioStep('read', handle.path, () => handle.read(buf, 0, Math.min(buf.length, end - pos), pos));
    if (n === 0) break;
    if (!buf.subarray(0, n).equals(ZEROS.subarray(0, n))) return false;
    pos += n;
  }
  return true;
}

/**
 * Finds the first offset in `[from, end)` where a complete, valid frame starts, or undefined.
 * Candidates are filtered by type byte and length before the header checksum, and only a
 * valid header earns a payload read; a hostile length never sizes an allocation past
 * `maxRecordSize` or the file.
 */
async function findValidFrame(handle: FileHandle, from: number, end: number, maxRecordSize: number): Promise<number | undefined> {
  const buf = Buffer.allocUnsafe(CHUNK + FRAME_HEADER_SIZE);
  for (let base = from; base + FRAME_HEADER_SIZE <= end; base += CHUNK) {
    const want = Math.min(CHUNK + FRAME_HEADER_SIZE - 1, end - base);
    const n = await readFully(handle, buf.subarray(0, want), base);
    for (let i = 0; i < Math.min(CHUNK, n) && i + FRAME_HEADER_SIZE <= n; i++) {
      if (buf[i + 12] === 0 && buf[i] === 0) continue; // fast path through zeros
      if (!mayBeFrame(buf, i, n, maxRecordSize)) continue;
      const head = checkFrame(buf, i, i + FRAME_HEADER_SIZE, maxRecordSize);
      if (head.kind !== 'short' || !head.headerValid) continue;
      if (base + i + head.needed > end) continue;
      const frame = Buffer.allocUnsafe(head.needed);
      await readFully(handle, frame, base + i);
      if (checkFrame(frame, 0, frame.length, maxRecordSize).kind === 'frame') return base + i;
    }
  }
  return undefined;
}

async function readFully(handle: FileHandle, buf: Uint8Array, position: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const n = await ioStep('read', handle.path, () => handle.read(buf, got, buf.length - got, position + got));
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Writes all of `buf` at `position`, continuing after short writes. */
export async function writeFully(handle: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await handle.write(buf, done, buf.length - done, position + done);
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += n;
  }
}
