/**
 * Frames and segment headers: pure encoding into, and checking of, byte buffers. Layouts in
 * format.ts. The checkers are total: whatever the bytes, they return a verdict.
 *
 * @module
 */
import { maskCrc, maskedCrc32c } from '../util/crc32c.js';
import { readU32LE as u32, writeU32LE as putU32 } from '../util/bytes.js';
import { FORMAT_VERSION, FRAME_HEADER_SIZE, FrameType, SEGMENT_HEADER_SIZE, SEGMENT_MAGIC } from './format.js';
import type { Record } from './record.js';

/** Writes one frame holding `record` at `buf[at..]`; returns the frame's end. */
export function encodeFrame(buf: Buffer, at: number, type: FrameType, record: Record): number {
  const payloadStart = at + FRAME_HEADER_SIZE;
  const end = record.encodeInto(buf, payloadStart);
  putU32(buf, at + 4, end - payloadStart);
  putU32(buf, at + 8, maskCrc(record.payloadCrc(buf, payloadStart, end)));
  buf[at + 12] = type;
  buf[at + 13] = 0;
  buf[at + 14] = 0;
  buf[at + 15] = 0;
  putU32(buf, at, maskedCrc32c(buf, at + 4, at + FRAME_HEADER_SIZE));
  return end;
}

/** What {@link checkFrame} found at an offset. */
export type FrameCheck =
  /** A valid frame: its type and where its payload lies in the buffer. */
  | { kind: 'frame'; type: FrameType; payloadStart: number; end: number }
  /**
   * The bytes stop before the frame does: `needed` is the frame's full size when the header is
   * valid (read more, or at end of file the frame is torn), or the header size when even that
   * is cut off.
   */
  | { kind: 'short'; needed: number; headerValid: boolean }
  /** Not a valid frame. `claimedEnd` is set when the header was valid (only the payload is bad). */
  | { kind: 'bad'; reason: string; claimedEnd?: number };

/**
 * Checks the frame starting at `buf[at]`, with `buf[at..limit)` available. `maxPayload` bounds
 * the length field: a larger length is damage, whatever the header checksum says, so a
 * corrupt length can never size an allocation or a read.
 */
export function checkFrame(buf: Uint8Array, at: number, limit: number, maxPayload: number): FrameCheck {
  if (limit - at < FRAME_HEADER_SIZE) return { kind: 'short', needed: FRAME_HEADER_SIZE, headerValid: false };
  if (u32(buf, at) !== maskedCrc32c(buf, at + 4, at + FRAME_HEADER_SIZE)) {
    return { kind: 'bad', reason: 'header checksum mismatch' };
  }
  const length = u32(buf, at + 4);
  const type = buf[at + 12]!;
  if (type < FrameType.FULL || type > FrameType.LAST) return { kind: 'bad', reason: `unknown frame type ${type}` };
  if (buf[at + 13] !== 0 || buf[at + 14] !== 0 || buf[at + 15] !== 0) return { kind: 'bad', reason: 'reserved bytes set' };
  if (length > maxPayload) return { kind: 'bad', reason: `record length ${length} over the limit ${maxPayload}` };
  const payloadStart = at + FRAME_HEADER_SIZE;
  const end = payloadStart + length;
  if (end > limit) return { kind: 'short', needed: FRAME_HEADER_SIZE + length, headerValid: true };
  if (u32(buf, at + 8) !== maskedCrc32c(buf, payloadStart, end)) {
    return { kind: 'bad', reason: 'payload checksum mismatch', claimedEnd: end };
  }
  return { kind: 'frame', type: type as FrameType, payloadStart, end };
}

/**
 * Cheap filter run before {@link checkFrame} when searching damaged bytes for a valid frame:
 * rejects most offsets without a checksum.
 */
export function mayBeFrame(buf: Uint8Array, at: number, limit: number, maxPayload: number): boolean {
  if (limit - at < FRAME_HEADER_SIZE) return false;
  const type = buf[at + 12]!;
  if (type < FrameType.FULL || type > FrameType.LAST) return false;
  if (buf[at + 13] !== 0 || buf[at + 14] !== 0 || buf[at + 15] !== 0) return false;
  const length = buf[at + 4]! | (buf[at + 5]! << 8) | (buf[at + 6]! << 16) | (buf[at + 7]! << 24);
  return length >>> 0 <= maxPayload;
}

/** The 32-byte header of segment `id`. */
export function encodeSegmentHeader(id: number): Buffer {
  const buf = Buffer.alloc(SEGMENT_HEADER_SIZE);
  buf.set(SEGMENT_MAGIC, 0);
  buf.writeUInt16LE(FORMAT_VERSION, 8);
  buf.writeUInt32LE(id % 0x1_0000_0000, 16);
  buf.writeUInt32LE(Math.floor(id / 0x1_0000_0000), 20);
  buf.writeUInt32LE(maskedCrc32c(buf, 0, 28), 28);
  return buf;
}

/** Checks a segment header; returns undefined if it is valid for segment `id`, else why not. */
export function checkSegmentHeader(buf: Uint8Array, id: number): string | undefined {
  if (buf.length < SEGMENT_HEADER_SIZE) return 'segment header cut short';
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(28, true) !== maskedCrc32c(buf, 0, 28)) return 'segment header checksum mismatch';
  for (let i = 0; i < SEGMENT_MAGIC.length; i++) {
    if (buf[i] !== SEGMENT_MAGIC[i]) return 'not a sediment WAL segment (bad magic)';
  }
  const version = view.getUint16(8, true);
  if (version !== FORMAT_VERSION) return `unsupported WAL format version ${version}`;
  const stored = view.getUint32(16, true) + view.getUint32(20, true) * 0x1_0000_0000;
  if (stored !== id) return `segment header says id ${stored}, file name says ${id}`;
  return undefined;
}

/** True when `buf[start..end)` is all zero bytes. */
export function isZero(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}
