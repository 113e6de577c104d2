/**
 * The block trailer: per-block compression and the checksum that guards every block. Pure
 * functions between a block's contents and its stored form (body + trailer, layout in format.ts).
 *
 * A reader verifies the checksum before it looks at any other byte of the block, checks the
 * declared raw length against {@link MAX_BLOCK_SIZE} before it decompresses, and checks that
 * decompression produced exactly that many bytes.
 *
 * @module
 */
import { compressSync } from 'lz4-napi';
import { maskedCrc32c } from '../util/crc32c.js';
import { corrupt, getU32, putU32 } from './coding.js';
import { decompressLz4Block } from './lz4.js';
import { BlockType, type TableCompression, MAX_BLOCK_SIZE, TRAILER_SIZE, type Where } from './format.js';

/** A block ready to store: its body and its type. */
export interface CompressedBlock {
  body: Uint8Array;
  type: BlockType;
}

/**
 * Compresses a block's contents if asked and worth it: LZ4 is kept only if it saves at least an
 * eighth of the bytes (LevelDB's rule), since every read pays for decompression.
 */
export function compressBlock(raw: Uint8Array, compression: TableCompression): CompressedBlock {
  if (compression === 'lz4' && raw.length >= 64) {
    const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    // lz4-napi's block format is exactly ours: raw length u32 LE, then one LZ4 block.
    const body = compressSync(buf);
    if (body.length <= raw.length - (raw.length >>> 3)) return { body, type: BlockType.LZ4 };
  }
  return { body: raw, type: BlockType.NONE };
}

/** Writes the trailer of the body in `out[start..start+size)` at `out[start+size]`. */
export function writeTrailer(out: Uint8Array, start: number, size: number, type: BlockType): void {
  out[start + size] = type;
  putU32(out, start + size + 1, maskedCrc32c(out, start, start + size + 1));
}

/**
 * Checks a stored block (body + trailer, exactly) without decompressing it: its checksum, its
 * type, and for a compressed block its declared raw length. Returns the type. `at` locates the
 * stored block in its file. What {@link unsealBlock} checks first, and what a table just written
 * is checked with before it is installed (`TableReader.verifyChecksums`).
 */
export function checkSealedBlock(stored: Uint8Array, at: Where): BlockType {
  const size = stored.length - TRAILER_SIZE;
  if (size < 0) throw corrupt('block shorter than its trailer', at);
  const crc = getU32(stored, size + 1);
  if (maskedCrc32c(stored, 0, size + 1) !== crc) throw corrupt('block checksum mismatch', at);
  const type = stored[size]!;
  if (type === BlockType.NONE) return type;
  if (type !== BlockType.LZ4) throw corrupt(`unknown block type ${type}`, at);
  if (size < 4) throw corrupt('compressed block without its raw length', at);
  const rawLength = getU32(stored, 0);
  if (rawLength > MAX_BLOCK_SIZE) throw corrupt(`raw block length ${rawLength} exceeds ${MAX_BLOCK_SIZE}`, at);
  return type;
}

/** {@link unsealBlock}'s decompression buffer, shared (it is used synchronously, one block at a time); grows as needed. */
let work = new Uint8Array(16384);

/**
 * Verifies a stored block (body + trailer, exactly) and returns its contents: a view of `stored`
 * for an uncompressed block, a new buffer for a compressed one. `where` locates the block's body
 * in its file.
 */
export function unsealBlock(stored: Uint8Array, where: Where): Uint8Array {
  const size = stored.length - TRAILER_SIZE;
  const at: Where = { file: where.file, offset: where.offset, length: stored.length };
  const type = checkSealedBlock(stored, at);
  if (type === BlockType.NONE) return stored.subarray(0, size);
  const rawLength = getU32(stored, 0);
  // Decompressed in a work buffer holding both the block and its output, then copied out once.
  const body = size - 4;
  if (work.length < body + rawLength) work = new Uint8Array(Math.max(body + rawLength, 2 * work.length));
  work.set(stored.subarray(4, size));
  const n = decompressLz4Block(work, 0, body, body, body + rawLength);
  if (n < 0) throw corrupt('LZ4 block does not decompress', at);
  if (n !== rawLength) throw corrupt(`LZ4 block decompressed to ${n} bytes, not ${rawLength}`, at);
  const raw = work.slice(body, body + rawLength);
  return raw;
}
