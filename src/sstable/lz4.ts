/**
 * LZ4 block decompression in JavaScript, within one buffer: the compressed block and its output
 * are two disjoint ranges of the same `Uint8Array`.
 *
 * Why not `lz4-napi`'s `uncompressSync` (which the writer's `compressSync` pairs with): it returns
 * a new external buffer per call, which V8 must track and finalize, and under random reads past the
 * block cache it was the largest cost of a lookup (a quarter of the CPU profile of bench/cold.ts
 * on 2M keys). Here a literal run or a match of 32 bytes or more is one `copyWithin` in the same
 * buffer (a native memmove, nothing allocated), a shorter one goes by 4-byte words through a
 * DataView: a native call costs more than copying a few dozen bytes (2.7-3.2 against 3.3-3.6 us
 * per 4 KiB block of bench/db.ts's values with byte loops below 16 bytes and `copyWithin` above).
 * The caller copies the output out once. A decoder writing from one buffer into another spent its
 * time making `subarray` views for `set` (about 3x slower on the same blocks).
 *
 * The LZ4 block format (lz4's `doc/lz4_Block_format.md`), a sequence of
 * ```
 *  token u8 | [literal length extension] | literals | offset u16 LE | [match length extension]
 *  token: high nibble literal length, low nibble match length - 4; 15 means "add the extension
 *         bytes that follow, each up to 255, until one is < 255".
 * ```
 * The last sequence stops after its literals. A match copies `length` bytes from `offset` bytes
 * back in the output, and may overlap what it writes (offset < length repeats a pattern).
 *
 * Every read and write is bounds-checked: input that is not a valid block reports -1, and nothing
 * is read or written outside the two ranges.
 *
 * @module
 */

/** Copies at least this long are one `copyWithin` (a native memmove); shorter ones go by 4-byte words. */
const LONG_COPY = 32;

/** A DataView of the last buffer decompressed into (the block cache's work buffer, as a rule). */
let viewOf: Uint8Array | undefined;
let view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

/**
 * Decompresses the LZ4 block `buf[start..end)` into `buf[outStart..outEnd)` (the two ranges must
 * not overlap). Returns the number of bytes written, or -1 if the block is malformed: truncated,
 * a match reaching before the start of the output, or more output than the range holds.
 */
export function decompressLz4Block(buf: Uint8Array, start: number, end: number, outStart: number, outEnd: number): number {
  if (viewOf !== buf) {
    view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    viewOf = buf;
  }
  const dv = view;
  let s = start;
  let o = outStart;
  while (s < end) {
    const token = buf[s++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      let b = 255;
      while (b === 255) {
        if (s >= end) return -1;
        b = buf[s++]!;
        lit += b;
      }
    }
    if (lit > end - s || lit > outEnd - o) return -1;
    if (lit >= LONG_COPY) buf.copyWithin(o, s, s + lit);
    else {
      let i = 0;
      for (; i + 4 <= lit; i += 4) dv.setUint32(o + i, dv.getUint32(s + i, true), true);
      for (; i < lit; i++) buf[o + i] = buf[s + i]!;
    }
    s += lit;
    o += lit;
    // The last sequence: literals only.
    if (s === end) break;
    if (end - s < 2) return -1;
    const offset = buf[s]! | (buf[s + 1]! << 8);
    s += 2;
    if (offset === 0 || offset > o - outStart) return -1;
    let len = (token & 15) + 4;
    if (len === 19) {
      let b = 255;
      while (b === 255) {
        if (s >= end) return -1;
        b = buf[s++]!;
        len += b;
      }
    }
    if (len > outEnd - o) return -1;
    let m = o - offset;
    const stop = o + len;
    if (len >= LONG_COPY && offset >= len) {
      buf.copyWithin(o, m, stop - offset);
      o = stop;
    } else if (offset >= 4) {
      // By words, front to back: each word read lies before the one written (offset >= 4), so an
      // overlapping match (offset < len) repeats its pattern as it must.
      for (; o + 4 <= stop; o += 4, m += 4) dv.setUint32(o, dv.getUint32(m, true), true);
      while (o < stop) buf[o++] = buf[m++]!;
    } else {
      // A pattern of 1 to 3 bytes: byte by byte.
      while (o < stop) buf[o++] = buf[m++]!;
    }
  }
  return o - outStart;
}
