/**
 * Little-endian integer reads on plain byte arrays, for decoders that run once per record and
 * should not allocate a DataView or Buffer view each time.
 *
 * @module
 */

/** The unsigned 32-bit little-endian integer at `buf[at..at+4)`; the caller checks the bounds. */
export function readU32LE(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}
