/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init 0xFFFFFFFF, final xor 0xFFFFFFFF;
 * check value of "123456789" is 0xE3069283), as used by every on-disk checksum in sediment.
 *
 * Long inputs go to `@node-rs/crc32` (hardware CRC instructions). Inputs of a few dozen bytes,
 * such as record headers, are cheaper to checksum here in JavaScript than to hand across the
 * native boundary; both paths compute the same function (a test holds them to it).
 *
 * Stored checksums are *masked* as LevelDB masks them: it is problematic to compute the CRC of
 * bytes that contain embedded CRCs (a record holding a WAL record, say), so what is stored is a
 * rotated, offset CRC that no longer has CRC's algebraic structure.
 *
 * @module
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** Below this length the JavaScript loop beats a native call. */
const SMALL = 64;

/** CRC-32C of `bytes[start..end)`. */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return crc32cAppend(0, bytes, start, end);
}

/**
 * Extends `crc` (the CRC-32C of some bytes A) over `bytes[start..end)` = B: returns the CRC-32C
 * of A followed by B. Lets a caller checksum bytes it holds in two places without copying them
 * together, or hand the native code a whole array instead of a fresh view (a view costs about a
 * third of a native call).
 */
export function crc32cAppend(crc: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  if (end - start > SMALL) return nativeCrc32c(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end), crc);
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = start; i < end; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const MASK_DELTA = 0xa282ead8;

/** LevelDB's mask: rotate right by 15 bits and add a constant. */
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

/** Inverse of {@link maskCrc}. */
export function unmaskCrc(masked: number): number {
  const rot = (masked - MASK_DELTA) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}

/** Masked CRC-32C of `bytes[start..end)`: what gets stored on disk. */
export function maskedCrc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return maskCrc(crc32c(bytes, start, end));
}
