/**
 * Reads the frames of one segment file in order, in large chunks. Shared by recovery (which
 * validates everything) and by readers (which replay). Never reads past `limit`, and never
 * allocates more than one chunk or one frame (whose size was bounded by `checkFrame`).
 *
 * @module
 */
import type { FileHandle } from '../fs/types.js';
import { checkFrame } from './frame.js';
import type { FrameType } from './format.js';

/** One step of a scan. */
export type ScanStep =
  /** A valid frame. `payload` is a view that stays valid only until the next `next()` call. */
  | { kind: 'frame'; offset: number; end: number; type: FrameType; payload: Uint8Array }
  /** The scan reached `limit` exactly at a frame boundary. */
  | { kind: 'end'; offset: number }
  /**
   * No valid frame at `offset`. `cutOff`: the frame runs past `limit` (a torn write when
   * `limit` is the file's end). `claimedEnd`: where a frame with a valid header but bad
   * payload claims to end.
   */
  | { kind: 'damage'; offset: number; reason: string; cutOff: boolean; claimedEnd?: number };

const DEFAULT_CHUNK = 1 << 20;

export class SegmentScanner {
  readonly #handle: FileHandle;
  readonly #maxPayload: number;
  readonly #chunkSize: number;
  #limit: number;
  #pos: number;
  #buf: Buffer;
  /** File offset of `#buf[0]`. */
  #bufStart = 0;
  /** Bytes of `#buf` holding file data. */
  #bufLength = 0;

  constructor(handle: FileHandle, start: number, limit: number, maxPayload: number, chunkSize = DEFAULT_CHUNK) {
    this.#handle = handle;
    this.#pos = start;
    this.#limit = limit;
    this.#maxPayload = maxPayload;
    this.#chunkSize = chunkSize;
    this.#buf = Buffer.alloc(0);
  }

  /** Where the next frame starts. */
  get position(): number {
    return this.#pos;
  }

  /** The file offset the scan stops at. */
  get limit(): number {
    return this.#limit;
  }

  /** Moves the stopping point (a reader following a growing segment). */
  setLimit(limit: number): void {
    this.#limit = limit;
    if (this.#bufStart + this.#bufLength > limit) this.#bufLength = Math.max(0, limit - this.#bufStart);
  }

  /**
   * The next step if it needs no read (the frame is already buffered), else undefined: lets the
   * callers' loops skip a promise per frame.
   */
  nextBuffered(): ScanStep | undefined {
    const offset = this.#pos;
    if (offset >= this.#limit) return { kind: 'end', offset };
    const check = checkFrame(this.#buf, offset - this.#bufStart, this.#bufLength, this.#maxPayload);
    if (check.kind !== 'frame') return undefined;
    const end = this.#bufStart + check.end;
    this.#pos = end;
    return { kind: 'frame', offset, end, type: check.type, payload: this.#buf.subarray(check.payloadStart, check.end) };
  }

  async next(): Promise<ScanStep> {
    const offset = this.#pos;
    if (offset >= this.#limit) return { kind: 'end', offset };
    for (;;) {
      const rel = offset - this.#bufStart;
      const available = this.#bufStart + this.#bufLength;
      const check = checkFrame(this.#buf, rel, this.#bufLength, this.#maxPayload);
      if (check.kind === 'frame') {
        const end = this.#bufStart + check.end;
        this.#pos = end;
        return { kind: 'frame', offset, end, type: check.type, payload: this.#buf.subarray(check.payloadStart, check.end) };
      }
      if (check.kind === 'bad') {
        const claimedEnd = check.claimedEnd === undefined ? undefined : this.#bufStart + check.claimedEnd;
        return { kind: 'damage', offset, reason: check.reason, cutOff: false, claimedEnd };
      }
      // Short: the frame (or its header) runs past what is buffered.
      const needEnd = offset + check.needed;
      if (needEnd > this.#limit) {
        const reason = check.headerValid ? 'record cut off by the end of the file' : 'header cut off by the end of the file';
        // With a valid header the frame's extent is known: what lies inside it is its payload.
        return { kind: 'damage', offset, reason, cutOff: true, claimedEnd: check.headerValid ? needEnd : undefined };
      }
      if (available >= needEnd) throw new Error('scanner invariant: short frame with enough bytes'); // unreachable
      await this.#fill(offset, check.needed);
    }
  }

  /** Makes `#buf` hold file bytes from `from`, at least `min` of them (fewer only at the limit). */
  async #fill(from: number, min: number): Promise<void> {
    const want = Math.min(Math.max(this.#chunkSize, min), this.#limit - from);
    const buf = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const n = await this.#handle.read(buf, got, want - got, from + got);
      if (n === 0) break; // the file is shorter than the limit said: treat the rest as cut off
      got += n;
    }
    this.#buf = buf;
    this.#bufStart = from;
    this.#bufLength = got;
    if (got < want) this.#limit = from + got;
  }
}
