/**
 * Recovery: what `Wal.open` does to a directory of segments before the first append.
 *
 * It runs in two phases, so that a refused open changes no byte on disk:
 * 1. **Scan** (read only). The segment state file (segment-state.ts) says which segments the log
 *    must have: every id from `max(floor, discardBefore.segmentId)` up to `next - 1`, less the
 *    ranges an earlier salvage gave up. Segments below that are leftovers of an interrupted
 *    deletion (deleted by the caller, not reported). Every segment kept is read end to end;
 *    every frame's checksums, type sequence and record structure are checked. Each segment
 *    yields a report: its valid end, its records, and the first damage, classified as a zero
 *    tail, a record cut off by the end of the file, or bad bytes, and whether any valid frame
 *    still follows the damage.
 * 2. **Plan and act.** Damage in the *newest* segment with no valid frame after it is what a
 *    crash leaves (a torn write, a batch without its LAST frame, zeros from preallocation): it
 *    is truncated and reported, in both modes. Any other damage (in an older segment, a missing
 *    segment anywhere, the first and the newest included, valid frames after garbage, a state
 *    file that is missing while segments exist, or that never recorded a segment holding
 *    records) is corruption: `strict` throws `CorruptionError` naming the file (and offset);
 *    `salvage` keeps the longest valid prefix of the whole log (up to the first damaged or
 *    missing segment) and moves everything after it into `quarantine/`, never deleting it.
 *
 * Order of the salvage steps, chosen so that a crash during recovery leaves a state the next
 * recovery handles the same way: copy the damaged tail out (synced), move later segments out
 * (newest first), then truncate the damaged segment. The caller then records the state (the
 * given-up ids become a hole, never used again).
 *
 * A read-only recovery plans without acting: a crash-shaped tail is reported as if cut, and
 * anything else throws.
 *
 * @module
 */
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { CorruptionError, IoError, errnoOf, ioStep } from '../errors.js';
import { readFully } from '../fs/read.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { FrameType, SEGMENT_HEADER_SIZE, parseSegmentFileName, segmentFileName } from './format.js';
import { checkSegmentHeader, encodeSegmentHeader } from './frame.js';
import type { Meter } from './meter.js';
import type { RecoveryMode } from './options.js';
import type { Position } from './position.js';
import { checkPayload } from './record.js';
import { SegmentScanner } from './scanner.js';
import { type DamageShape, classifyDamage, findValidFrame, frameStartsAt, isZeroRange, sequenceProblem } from './damage.js';
import {
  STATE_FILE_NAME,
  STATE_TMP_FILE_NAME,
  expectedRanges,
  inHole,
  readStateFile,
  sameState,
  type LoadedState,
  type SegmentState,
} from './segment-state.js';

/** What recovery reports before it has found anything. */
export function emptyRecoveryInfo(mode: RecoveryMode): RecoveryInfo {
  return {
    mode,
    validRecords: 0,
    segmentsScanned: 0,
    bytesTruncated: 0,
    corruptionDetected: false,
    lastPosition: null,
    truncations: [],
    quarantined: [],
    missingSegments: [],
    missingSegmentCount: 0,
    stateRebuilt: false,
  };
}

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
  /**
   * Segments the state file says the log must have but that are not in the directory (salvage
   * only: strict refuses the open). Their records are lost; their ids are never used again.
   */
  missingSegments: number[];
  /**
   * How many segments were missing: the length of `missingSegments`, unless more than 10,000
   * were (a state file claiming an absurd range), when only the first 10,000 are listed.
   */
  missingSegmentCount: number;
  /** Salvage found segments but no readable state file, and rebuilt it from the segments present. */
  stateRebuilt: boolean;
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
  /** The segments kept, ascending. */
  segments: RecoveredSegment[];
  /** The id the next new segment must get: past every id the log ever had (0 for a new log). */
  next: number;
  /** The lowest id the log may still hold: max(floor, discardBefore.segmentId). */
  floor: number;
  /** Segments below `floor`, to delete once a state with that floor is durable. */
  obsolete: number[];
  /** A `SEGMENTS.tmp` was left by an interrupted state file write. */
  tmpLeftover: boolean;
  /** The state file as read, if it was there and readable. */
  loaded: LoadedState | undefined;
}

interface Damage extends DamageShape {
  /** Where valid data ends: truncate here (start of an unfinished batch, or of the bad frame). */
  keepEnd: number;
  /**
   * The scan found a frame with valid checksums at `at` (refused for its payload or its place in
   * a batch). False when no valid frame was there: zeros, a torn or damaged frame.
   */
  frameAtDamage: boolean;
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
const _ZEROS = Buffer.alloc(CHUNK);

/** Lists segment ids in `dir`, ascending. */
export async function listSegments(fs: FileSystem, dir: string): Promise<number[]> {
  return segmentIdsIn(await fs.readdir(dir));
}

function segmentIdsIn(names: readonly string[]): number[] {
  const ids: number[] = [];
  for (const name of names) {
    const id = parseSegmentFileName(name);
    if (id !== undefined) ids.push(id);
  }
  return ids.sort((a, b) => a - b);
}

/** What {@link recover} needs to know. */
export interface RecoverOptions {
  mode: RecoveryMode;
  maxRecordSize: number;
  meter: Meter;
  discardBefore: Position | undefined;
  /** Scan and plan only: change nothing on disk (a crash-shaped tail is reported, not cut). */
  readOnly: boolean;
  /** False: a directory holding no log at all (no state file, no segment) is corruption. */
  createIfMissing: boolean;
  adoptUntracked: boolean;
}

/** Thrown by a read-only scan that raced a writer's state update: scan again. */
class StateChanged extends Error {}

/**
 * Scans, checks and repairs the log in `dir` (see the module comment); throws
 * `CorruptionError` in strict mode. Checks the segments present against the state file: every
 * id in `[max(floor, discardBefore.segmentId), next)` outside the holes must exist. Does not
 * write the state file or delete segments below the floor: the caller does, in the order that
 * keeps a crash from looking like a loss (see wal.ts).
 */
export async function recover(fs: FileSystem, dir: string, o: RecoverOptions): Promise<RecoveryResult> {
  if (!o.readOnly) return recoverOnce(fs, dir, o);
  // A read-only open takes no lock: a writer may rotate or delete segments while it scans, or
  // append to the newest segment (bytes that were zeros at one read are a record at the next).
  // A scan whose view of the state file changed under it is retried, and so, a few times, is
  // damage found in the newest segment. Retries back off, so that a writer rotating faster than
  // a scan still leaves a quiet window; a log that never holds still long enough is not called
  // damaged: the open fails with IoError EAGAIN, which the caller may retry.
  let newestRetries = 3;
  for (let attempt = 0; ; attempt++) {
    const before = await readStateSeq(fs, dir);
    try {
      return await recoverOnce(fs, dir, o);
    } catch (err) {
      const transient = err instanceof StateChanged || err instanceof CorruptionError || errnoOf(err) === 'ENOENT';
      if (!transient) throw err;
      if (!(err instanceof StateChanged) && (await readStateSeq(fs, dir)) === before) {
        const newest = (await listSegments(fs, dir)).pop();
        if (!(err instanceof CorruptionError) || err.segmentId === undefined || err.segmentId !== newest || newestRetries-- <= 0) throw err;
      }
      if (attempt >= READ_ONLY_ATTEMPTS) {
        const file = path.join(dir, STATE_FILE_NAME);
        throw new IoError(
          'open',
          file,
          Object.assign(new Error(`the log kept changing under a read-only open (${attempt + 1} attempts)`), {
            code: 'EAGAIN',
            cause: err,
          }),
        );
      }
      await new Promise<void>((resolve) => setTimeout(resolve, Math.min(1 << attempt, 50)));
    }
  }
}

/** Scans a read-only open tries before it gives up on a log that keeps changing (about 2 s of back-off). */
const READ_ONLY_ATTEMPTS = 50;

/** The state file's current sequence number (-1: none or unreadable), to notice a writer's update. */
async function readStateSeq(fs: FileSystem, dir: string): Promise<number> {
  try {
    return (await readStateFile(fs, dir))?.seq ?? -1;
  } catch {
    return -1;
  }
}

async function recoverOnce(fs: FileSystem, dir: string, o: RecoverOptions): Promise<RecoveryResult> {
  const { mode, maxRecordSize, meter, discardBefore, readOnly } = o;
  const stateFile = path.join(dir, STATE_FILE_NAME);
  const info = emptyRecoveryInfo(mode);

  let loaded: LoadedState | undefined;
  let stateDamage: CorruptionError | undefined;
  try {
    loaded = await readStateFile(fs, dir);
  } catch (err) {
    if (!(err instanceof CorruptionError)) throw err;
    stateDamage = err;
  }
  const names = await ioStep('readdir', dir, () => fs.readdir(dir));
  // Read-only: the segments the state file records as created by the time the listing was
  // taken. A writer's rotation in between (only `next` raised) leaves the listing complete for
  // what `loaded` records, and the segments it lists up to the newer `next` recorded; any other
  // change (a GC, an open, a salvage) means another scan.
  let recordedNext: number | undefined;
  if (readOnly) {
    const after = await readStateFile(fs, dir).catch(() => undefined);
    if ((after?.seq ?? -1) !== (loaded?.seq ?? -1)) {
      if (!loaded || !after || !onlyNextRaised(loaded.state, after.state)) throw new StateChanged();
      recordedNext = after.state.next;
    }
  }
  const all = segmentIdsIn(names);
  const tmpLeftover = names.includes(STATE_TMP_FILE_NAME);

  let state: SegmentState;
  if (loaded) {
    state = loaded.state;
  } else if (all.length === 0 && !stateDamage) {
    // No log here at all.
    if (!o.createIfMissing) {
      if (mode === 'strict') {
        throw new CorruptionError(
          "there is no WAL here: the state file is missing and so is every segment (createIfMissing is false; recovery: 'salvage' starts an empty log and reports it)",
          { file: stateFile, offset: 0 },
        );
      }
      // Salvage: the caller says a log existed; start an empty one, loudly.
      info.corruptionDetected = true;
      info.stateRebuilt = true;
      if (discardBefore) listMissing(info, [[discardBefore.segmentId, discardBefore.segmentId + 1]], 1);
    }
    return { info, segments: [], next: 0, floor: 0, obsolete: [], tmpLeftover, loaded: undefined };
  } else if (o.adoptUntracked && !stateDamage) {
    // A SEGMENTS.tmp beside it is what a power loss during an earlier adoption leaves (the file
    // is created as a tmp and renamed): a leftover, removed with the others.
    // A log made before the state file existed (sediment 0.1.0), adopted as its caller asked:
    // what it holds is taken as the whole log, then tracked from here on.
    info.stateRebuilt = true;
    state = { floor: all[0]!, next: all[all.length - 1]! + 1, holes: [] };
  } else if (mode === 'strict') {
    // Segments exist but the file that says which is gone: a crash never does that (the state
    // file is created before the first segment).
    if (stateDamage) throw stateDamage;
    throw new CorruptionError(
      `the WAL state file is missing while ${all.length} segment file(s) exist; the log was left untouched (open with recovery: 'salvage' to rebuild it from the segments present)`,
      { file: stateFile, offset: 0 },
    );
  } else {
    // Salvage: rebuild it from the segments present.
    info.corruptionDetected = true;
    info.stateRebuilt = true;
    state = all.length > 0 ? { floor: all[0]!, next: all[all.length - 1]! + 1, holes: [] } : { floor: 0, next: 0, holes: [] };
  }

  const lo = Math.max(state.floor, discardBefore?.segmentId ?? 0);
  // Below the floor (or discardBefore): leftovers of an interrupted deletion, or segments the
  // caller no longer needs. Not scanned, deleted by the caller once the new floor is durable.
  const obsolete = all.filter((id) => id < lo);
  const inHoles = all.filter((id) => id >= lo && inHole(state, id));
  const above = all.filter((id) => id >= Math.max(lo, state.next));
  const fallback = loaded?.fallback ?? false;
  // One past the highest id recorded: `next`, or a read-only open's newer look (see above).
  const recorded = Math.max(state.next, recordedNext ?? 0);
  const beyond = above.filter((id) => id >= recorded);
  let next = state.next;
  if (mode === 'strict') {
    if (inHoles.length > 0) {
      const id = inHoles[0]!;
      throw new CorruptionError(`segment ${id} exists in a range of ids an earlier salvage gave up; the log was left untouched`, {
        file: path.join(dir, segmentFileName(id)),
        offset: 0,
        segmentId: id,
      });
    }
    // A crash may leave one segment created but not yet recorded: id `next`, holding no record
    // (checked after the scan).
    const unrecorded = beyond.find((id) => id !== recorded);
    if (unrecorded !== undefined || beyond.length > 1) {
      throw notRecorded(stateFile, unrecorded ?? beyond[beyond.length - 1]!, state);
    }
  } else if (above.some((id) => id !== state.next)) {
    // Salvage keeps segments the state file never recorded (their records are valid), but what
    // strict refuses is reported.
    info.corruptionDetected = true;
  }
  if (above.length > 0) next = Math.max(next, above[above.length - 1]! + 1);
  // `discardBefore` is a position this log handed out: its segment was created (and recorded
  // before any record went into it), and is never deleted before a later position is stored. A
  // log that never got that far is an older copy, or another log, or (adopted or rebuilt from the
  // segments present) lost its newest segments: every record after that position is gone.
  if (discardBefore && discardBefore.segmentId >= recorded + (fallback ? 1 : 0)) {
    const id = discardBefore.segmentId;
    if (mode === 'strict') {
      throw new CorruptionError(
        `segment ${id} holds the position the caller has stored through, but this log never created it (its ids end at ${state.next - 1}); the log was left untouched`,
        {
          file: path.join(dir, segmentFileName(id)),
          offset: 0,
          segmentId: id,
        },
      );
    }
    info.corruptionDetected = true;
    listMissing(info, [[id, id + 1]], 1);
  }

  const ids = all.filter((id) => id >= lo && !inHole(state, id));
  const reports: SegmentReport[] = [];
  for (let i = 0; i < ids.length; i++) {
    const resumeAt = discardBefore && ids[i] === discardBefore.segmentId ? discardBefore.offset : undefined;
    reports.push(await scanSegment(fs, path.join(dir, segmentFileName(ids[i]!)), ids[i]!, maxRecordSize, resumeAt));
  }
  info.segmentsScanned = reports.length;
  if (readOnly) await settleAppendRace(fs, reports, maxRecordSize);
  if (!fallback) {
    const extra = reports.find((r) => r.id >= recorded && r.records > 0);
    if (extra && mode === 'strict') throw notRecorded(stateFile, extra.id, state);
    if (extra) info.corruptionDetected = true;
  }

  // Every id the state says must exist, from lo on, as ranges: a state file may claim any
  // number of segments (up to 2^53), so nothing here is sized or looped by that number.
  const missing = missingRanges(expectedRanges({ ...state, next }, lo), ids);
  const firstMissing = missing[0]?.[0];
  const missingCount = missing.reduce((n, [a, b]) => n + (b - a), 0);

  // The first damage that a crash cannot explain, if any.
  let problem: Problem | undefined;
  for (let i = 0; i < reports.length && !problem; i++) {
    const r = reports[i]!;
    if (firstMissing !== undefined && r.id > firstMissing) {
      problem = { index: i, keepEnd: 0, at: 0, reason: `segment ${firstMissing} is missing`, missing: firstMissing };
      break;
    }
    const d = r.damage;
    if (!d) continue;
    // Only the newest segment may end in crash damage, and only if no segment is missing after it.
    const crashShaped = i === reports.length - 1 && firstMissing === undefined && d.validFrameAt === undefined;
    if (!crashShaped) {
      const follows = d.validFrameAt !== undefined ? ` (a valid record follows at offset ${d.validFrameAt})` : '';
      problem = { index: i, keepEnd: d.keepEnd, at: d.at, reason: `${d.reason}${follows}` };
    }
  }
  if (!problem && firstMissing !== undefined) {
    problem = { index: reports.length, keepEnd: 0, at: 0, reason: `segment ${firstMissing} is missing`, missing: firstMissing };
  }

  if (problem && mode === 'strict') {
    const missingId = problem.missing;
    if (missingId !== undefined) {
      // A hole, the first or the newest segment: name the missing file.
      const range = state.next > lo ? `; the state file records segments ${lo} to ${state.next - 1}` : '';
      const more = missingCount > 1 ? ` (${missingCount} segments are missing in all)` : '';
      throw new CorruptionError(
        `${problem.reason}${more}${range}${state.holes.length > 0 ? ' (less the ranges given up by an earlier salvage)' : ''}; the log was left untouched`,
        {
          file: path.join(dir, segmentFileName(missingId)),
          offset: 0,
          segmentId: missingId,
        },
      );
    }
    const r = reports[problem.index]!;
    throw new CorruptionError(
      `${problem.reason}; the log was left untouched (open with recovery: 'salvage' to keep the valid prefix and quarantine the rest)`,
      { file: r.file, offset: problem.at, segmentId: r.id, unreadableBytes: Math.max(0, r.size - problem.at) },
    );
  }

  const kept = problem ? reports.slice(0, problem.index + (problem.keepEnd > 0 ? 1 : 0)) : reports;
  if (problem) {
    // Salvage (never read-only: options refuse the pair).
    info.corruptionDetected = true;
    listMissing(info, missing, missingCount);
    await quarantine(fs, dir, reports, problem, info, meter);
    if (problem.keepEnd > 0) {
      const r = reports[problem.index]!;
      r.validEnd = problem.keepEnd;
      r.damage = undefined;
    }
  } else {
    // Only the last segment can carry crash damage here; repair it.
    const last = reports[reports.length - 1];
    if (last?.damage) {
      // A segment's header is synced before the state file records it: a torn header is a crash
      // only on the one segment a rotation had not recorded yet. (An adopted or rebuilt state
      // never saw the segments created, so it cannot tell.)
      if (last.headerProblem && loaded && !stateDamage && last.id < state.next) info.corruptionDetected = true;
      if (readOnly) reportTail(last, info, undefined);
      else await repairTail(fs, dir, last, info, meter);
    }
  }
  if (inHoles.length > 0) {
    // Salvage only (strict refused them above): segments an earlier salvage gave up on.
    info.corruptionDetected = true;
    await quarantineWhole(fs, dir, inHoles, 'lies in a range of ids an earlier salvage gave up', info, meter);
  }

  const segments: RecoveredSegment[] = [];
  for (const r of kept) {
    info.validRecords += r.records;
    if (r.lastRecordOffset !== undefined) info.lastPosition = { segmentId: r.id, offset: r.lastRecordOffset };
    segments.push({ id: r.id, end: r.validEnd });
  }
  return { info, segments, next, floor: lo, obsolete, tmpLeftover, loaded: stateDamage ? undefined : loaded };
}

/**
 * The ids in `expected` (ascending, disjoint `[from, to)` ranges) that are not in `present`
 * (ascending), as ranges. Linear in the number of ranges and ids present.
 */
export function missingRanges(expected: ReadonlyArray<readonly [number, number]>, present: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let j = 0;
  for (const [a, b] of expected) {
    let at = a;
    while (j < present.length && present[j]! < a) j++;
    for (; j < present.length && present[j]! < b; j++) {
      if (present[j]! > at) out.push([at, present[j]!]);
      at = present[j]! + 1;
    }
    if (at < b) out.push([at, b]);
  }
  return out;
}

/** Most missing ids listed in `RecoveryInfo.missingSegments`; `missingSegmentCount` has them all. */
export const MAX_LISTED_MISSING = 10_000;

/** Adds the ids of `missing` (at most {@link MAX_LISTED_MISSING} listed in all) to `info`. */
function listMissing(info: RecoveryInfo, missing: ReadonlyArray<readonly [number, number]>, count: number): void {
  const listed = new Set(info.missingSegments);
  // An id listed already (the caller's discardBefore segment) is not counted twice.
  for (const id of listed) if (missing.some(([a, b]) => id >= a && id < b)) count--;
  info.missingSegmentCount += count;
  for (const [a, b] of missing) {
    for (let id = a; id < b && info.missingSegments.length < MAX_LISTED_MISSING; id++) {
      if (!listed.has(id)) info.missingSegments.push(id);
    }
  }
  info.missingSegments.sort((x, y) => x - y);
}

/**
 * A read-only open takes no lock, so the writer may append to the newest segment while it is
 * scanned: bytes the scan read as zeros (preallocated) or as a frame half written may hold a
 * valid frame when the damage is classified a moment later, and then they are no zeros (which
 * looks like damage rather than a crash's tail) and a valid frame may "follow the damage".
 * Damage is stable; such bytes are not: where the scan found no valid frame and a re-read finds
 * one at that very offset, the bytes changed under the reader, and the log, as this reader sees
 * it, ends where the scan found it ending (the records before are whole).
 */
async function settleAppendRace(fs: FileSystem, reports: SegmentReport[], maxRecordSize: number): Promise<void> {
  const r = reports[reports.length - 1];
  const d = r?.damage;
  if (!r || !d || r.headerProblem || d.frameAtDamage) return;
  if (d.validFrameAt === undefined && (d.zeros || d.cutOff)) return; // a crash's tail as it is
  const handle = await ioStep('open', r.file, () => fs.open(r.file, 'read'));
  try {
    const size = await ioStep('stat', r.file, () => handle.size());
    if (!(await frameStartsAt(handle, d.at, size, maxRecordSize))) return;
  } finally {
    await handle.close().catch(() => undefined);
  }
  r.damage = { ...d, reason: 'torn-record', zeros: false, cutOff: true, validFrameAt: undefined };
}

/** `b` is `a` after rotations only: the same floor and holes, a next as high or higher. */
function onlyNextRaised(a: SegmentState, b: SegmentState): boolean {
  return b.next >= a.next && sameState(a, { ...b, next: a.next });
}

function notRecorded(stateFile: string, id: number, state: SegmentState): CorruptionError {
  return new CorruptionError(
    `segment ${id} exists but is not recorded in the state file, which records segments below ${state.next} (an older copy of the state file?); the log was left untouched`,
    { file: stateFile, offset: 0, segmentId: id },
  );
}

interface Problem {
  /** Index in the reports of the first segment affected (the reports' length: none, only missing ones). */
  index: number;
  keepEnd: number;
  at: number;
  reason: string;
  /** The id of the first missing segment, when that is the problem. */
  missing?: number;
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
        frameAtDamage: false,
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
        if (unitStart >= 0)
          report.damage = await classify(handle, unitStart, step.offset, 'incomplete-batch', true, undefined, size, maxRecordSize);
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
        report.damage.frameAtDamage = true;
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
  return { keepEnd, ...(await classifyDamage(handle, at, reason, cutOff, claimedEnd, size, maxRecordSize)), frameAtDamage: false };
}

/** Truncates crash damage off the end of the last segment (both modes). */
async function repairTail(fs: FileSystem, dir: string, r: SegmentReport, info: RecoveryInfo, meter: Meter): Promise<void> {
  const d = r.damage!;
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
  reportTail(r, info, meter);
}

/**
 * Reports the cut of the last segment's crash damage. A read-only open (no `meter`: nothing was
 * cut) reports it all the same and takes the valid prefix as the segment's end.
 */
function reportTail(r: SegmentReport, info: RecoveryInfo, meter: Meter | undefined): void {
  const d = r.damage!;
  const removed = r.size - d.keepEnd;
  if (!meter) r.validEnd = r.headerProblem ? SEGMENT_HEADER_SIZE : d.keepEnd;
  // A header shorter than its size or all zeros is a crash during creation; a complete header
  // that fails its checks was damaged.
  const tornHeader = r.headerProblem !== undefined && (r.size < SEGMENT_HEADER_SIZE || d.zeros);
  const reason = tornHeader ? 'torn-segment-header' : d.reason;
  if (!d.zeros && !d.cutOff && !tornHeader) info.corruptionDetected = true;
  info.bytesTruncated += removed;
  info.truncations.push({ segmentId: r.id, offset: d.keepEnd, bytes: removed, reason });
  meter?.event({ type: 'corruption-truncated', segmentId: r.id, offset: d.keepEnd, bytes: removed, reason });
}

/** Salvage: moves everything after the first damage into `quarantine/`. */
async function quarantine(
  fs: FileSystem,
  dir: string,
  reports: SegmentReport[],
  problem: Problem,
  info: RecoveryInfo,
  meter: Meter,
): Promise<void> {
  const firstMoved = problem.keepEnd > 0 ? problem.index + 1 : problem.index;
  if (problem.keepEnd === 0 && firstMoved >= reports.length) return; // only missing segments: nothing to move
  const { qdir, stamp } = await quarantineDir(fs, dir);
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
  for (let i = reports.length - 1; i >= firstMoved; i--) {
    const r = reports[i]!;
    const target = path.join(qdir, `${stamp}-${segmentFileName(r.id)}`);
    if (await exists(fs, target))
      throw new IoError('rename', target, Object.assign(new Error('quarantine name taken'), { code: 'EEXIST' }));
    await ioStep('rename', r.file, () => fs.rename(r.file, target));
    await ioStep('syncDir', qdir, () => fs.syncDir(qdir));
    await ioStep('syncDir', dir, () => fs.syncDir(dir));
    record(
      target,
      r,
      0,
      i === problem.index
        ? problem.reason
        : problem.missing !== undefined
          ? `follows missing segment ${problem.missing}`
          : `follows damage in segment ${damaged.id}`,
    );
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

/** Creates `quarantine/` durably; a fresh tag per salvage, so a later salvage never overwrites what an earlier one moved. */
async function quarantineDir(fs: FileSystem, dir: string): Promise<{ qdir: string; stamp: string }> {
  const qdir = path.join(dir, 'quarantine');
  await ioStep('mkdir', qdir, () => fs.mkdir(qdir));
  await ioStep('syncDir', dir, () => fs.syncDir(dir));
  return { qdir, stamp: `${Date.now()}-${randomBytes(4).toString('hex')}` };
}

/** Salvage: moves the whole segments `ids` into `quarantine/`, newest first. */
async function quarantineWhole(
  fs: FileSystem,
  dir: string,
  ids: readonly number[],
  reason: string,
  info: RecoveryInfo,
  meter: Meter,
): Promise<void> {
  const { qdir, stamp } = await quarantineDir(fs, dir);
  for (const id of [...ids].reverse()) {
    const file = path.join(dir, segmentFileName(id));
    const target = path.join(qdir, `${stamp}-${segmentFileName(id)}`);
    const bytes = await ioStep('stat', file, () => fs.stat(file)).then((st) => st.size);
    await ioStep('rename', file, () => fs.rename(file, target));
    await ioStep('syncDir', qdir, () => fs.syncDir(qdir));
    await ioStep('syncDir', dir, () => fs.syncDir(dir));
    const q = { file: target, segmentId: id, offset: 0, bytes, reason };
    info.quarantined.push(q);
    meter.event({ type: 'quarantined', ...q });
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

/** Writes all of `buf` at `position`, continuing after short writes. */
export async function writeFully(handle: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await handle.write(buf, done, buf.length - done, position + done);
    if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += n;
  }
}
