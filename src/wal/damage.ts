/**
 * Reading damage in a segment: what recovery (and `sediment verify`) know about bytes that are
 * not a valid frame. Read only: nothing here writes.
 *
 * - {@link sequenceProblem}: a frame whose type breaks the batch framing.
 * - {@link classifyDamage}: at the first bad byte, whether it is a zero tail, a record cut off by
 *   the end of the file (or by preallocated zeros), or bad bytes, and whether a valid frame still
 *   follows (then it is not a crash's doing).
 *
 * @module
 */
import { ioStep } from '../errors.js';
import { readFully } from '../fs/read.js';
import type { FileHandle } from '../fs/types.js';
import { FRAME_HEADER_SIZE, FrameType } from './format.js';
import { checkFrame, mayBeFrame } from './frame.js';

const CHUNK = 1 << 20;
const ZEROS = Buffer.alloc(CHUNK);

/** What damage at one offset is. */
export interface DamageShape {
  /** The first byte that is not part of a valid frame. */
  at: number;
  reason: string;
  /** Everything from `at` on is zero. */
  zeros: boolean;
  /** A frame cut off by the end of the file (or by zeros), or an unfinished batch. */
  cutOff: boolean;
  /** Offset of a valid frame after the damage, if there is one. */
  validFrameAt: number | undefined;
}

/** Why a frame of `type` cannot come here, in or out of a batch. */
export function sequenceProblem(type: FrameType, inBatch: boolean): string | undefined {
  if (inBatch && (type === FrameType.FULL || type === FrameType.FIRST)) return 'batch interrupted by another record';
  if (!inBatch && (type === FrameType.MIDDLE || type === FrameType.LAST)) return 'batch continuation without its start';
  return undefined;
}

/**
 * What the damage at `at` is. `claimedEnd`: where the frame there ends if its header was valid
 * (a valid frame inside its payload would be user data, so the search for one starts after it).
 */
export async function classifyDamage(
  handle: FileHandle,
  at: number,
  reason: string,
  cutOff: boolean,
  claimedEnd: number | undefined,
  size: number,
  maxRecordSize: number,
): Promise<DamageShape> {
  const zeros = await isZeroRange(handle, at, size);
  if (!zeros && !cutOff && claimedEnd !== undefined && claimedEnd <= size && (await isZeroRange(handle, claimedEnd - 1, size))) {
    // A frame with a valid header whose payload ends in zeros, and only zeros after it: a write
    // cut short over preallocated space, which is what a crash does, not damage.
    return { at, reason: 'torn-record', zeros: false, cutOff: true, validFrameAt: undefined };
  }
  let validFrameAt: number | undefined;
  if (!zeros) {
    // A frame whose header was valid claimed its extent: a valid frame inside its payload would
    // be user data that looks like a frame, so the search starts after it.
    const from = claimedEnd !== undefined ? Math.min(claimedEnd, size) : at + 1;
    validFrameAt = await findValidFrame(handle, from, size, maxRecordSize);
  }
  return { at, reason: zeros && !cutOff ? 'zero-tail' : reason, zeros, cutOff, validFrameAt };
}

/** True when `[start, end)` of the file is all zero bytes. */
export async function isZeroRange(handle: FileHandle, start: number, end: number): Promise<boolean> {
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
export async function findValidFrame(handle: FileHandle, from: number, end: number, maxRecordSize: number): Promise<number | undefined> {
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

/** Whether a complete, valid frame starts at `at` (and ends by `end`); reads no more than it. */
export async function frameStartsAt(handle: FileHandle, at: number, end: number, maxRecordSize: number): Promise<boolean> {
  if (at + FRAME_HEADER_SIZE > end) return false;
  const header = Buffer.alloc(FRAME_HEADER_SIZE);
  if ((await readFully(handle, header, at)) < FRAME_HEADER_SIZE) return false;
  const head = checkFrame(header, 0, FRAME_HEADER_SIZE, maxRecordSize);
  if (head.kind !== 'short' || !head.headerValid || at + head.needed > end) return false;
  const frame = Buffer.allocUnsafe(head.needed);
  if ((await readFully(handle, frame, at)) < head.needed) return false;
  return checkFrame(frame, 0, frame.length, maxRecordSize).kind === 'frame';
}
