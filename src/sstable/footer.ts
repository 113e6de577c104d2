/**
 * The footer: the fixed-size end of every table, locating the filter, properties and index
 * blocks (layout in format.ts). Pure encode/decode. A reader checks, in order, the magic (is this
 * a table at all?), the version, the checksum, then that the three blocks lie back to back and
 * end exactly where the footer starts.
 *
 * @module
 */
import { maskedCrc32c } from '../util/crc32c.js';
import { corrupt, getU32, getU64, putU32, putU64 } from './coding.js';
import {
  type BlockHandle,
  FOOTER_CRC_START,
  FOOTER_SIZE,
  FORMAT_VERSION,
  MAX_META_BLOCK_SIZE,
  TABLE_MAGIC,
  TRAILER_SIZE,
  type Where,
} from './format.js';

/** What the footer records. */
export interface Footer {
  filter: BlockHandle;
  properties: BlockHandle;
  index: BlockHandle;
}

/** Encodes a footer. */
export function encodeFooter(f: Footer): Uint8Array {
  const out = new Uint8Array(FOOTER_SIZE);
  putU64(out, 0, f.filter.offset);
  putU64(out, 8, f.properties.offset);
  putU64(out, 16, f.index.offset);
  putU32(out, 24, f.filter.size);
  putU32(out, 28, f.properties.size);
  putU32(out, 32, f.index.size);
  putU32(out, 36, 0);
  putU32(out, 40, FORMAT_VERSION);
  putU32(out, 44, maskedCrc32c(out, 0, FOOTER_CRC_START));
  out.set(TABLE_MAGIC, 48);
  return out;
}

/**
 * Decodes and checks the footer of a table of `fileSize` bytes (`bytes` = its last
 * {@link FOOTER_SIZE} bytes).
 */
export function decodeFooter(bytes: Uint8Array, fileSize: number, file: string): Footer {
  const where: Where = { file, offset: fileSize - FOOTER_SIZE, length: FOOTER_SIZE };
  for (let i = 0; i < TABLE_MAGIC.length; i++) {
    if (bytes[48 + i] !== TABLE_MAGIC[i]) throw corrupt('bad table magic (not a table, or truncated)', where);
  }
  const version = getU32(bytes, 40);
  if (version !== FORMAT_VERSION) throw corrupt(`unsupported table format version ${version}`, where);
  if (maskedCrc32c(bytes, 0, FOOTER_CRC_START) !== getU32(bytes, 44)) throw corrupt('footer checksum mismatch', where);
  if (getU32(bytes, 36) !== 0) throw corrupt('unknown footer flags', where);
  const handle = (offsetAt: number, sizeAt: number): BlockHandle => {
    const offset = getU64(bytes, offsetAt);
    const size = getU32(bytes, sizeAt);
    if (offset < 0 || size > MAX_META_BLOCK_SIZE) throw corrupt('footer block handle out of range', where);
    return { offset, size };
  };
  const filter = handle(0, 24);
  const properties = handle(8, 28);
  const index = handle(16, 32);
  if (
    properties.offset !== filter.offset + filter.size + TRAILER_SIZE ||
    index.offset !== properties.offset + properties.size + TRAILER_SIZE ||
    index.offset + index.size + TRAILER_SIZE !== fileSize - FOOTER_SIZE
  ) {
    throw corrupt('footer block handles do not tile the end of the file', where);
  }
  return { filter, properties, index };
}
