/**
 * Little-endian integer reads and writes on plain byte arrays, for codecs that run once per
 * record and should not allocate a DataView or Buffer view each time.
 *
 * @module
 */

/** The unsigned 32-bit little-endian integer at `buf[at..at+4)`; the caller checks the bounds. */
export function readU32LE(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

/**
 * Stores `value` (0 to 2^32 - 1) as an unsigned 32-bit little-endian integer at `buf[at..at+4)`;
 * the caller checks the bounds. Plain byte stores: cheaper on a per-record path than
 * Buffer#writeUInt32LE, which validates its arguments on every call.
 */
export function writeU32LE(buf: Uint8Array, at: number, value: number): void {
  buf[at] = value;
  buf[at + 1] = value >>> 8;
  buf[at + 2] = value >>> 16;
  buf[at + 3] = value >>> 24;
}

/**
 * A copy of `src[start..end)` in a new `Buffer` (never a view: for a Buffer, `slice()` is one).
 * Small copies come from Node's shared pool: a fresh `ArrayBuffer` per key or value costs several
 * times the copy itself.
 */
export function copyBytes(src: Uint8Array, start = 0, end = src.length): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  out.set(src.subarray(start, end));
  return out;
}
