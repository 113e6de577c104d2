/**
 * The data of bench/lookup.ts and bench/cold.ts: 16 B zero-padded decimal keys (the even numbers
 * are in the DB, the odd ones between them are misses) and values of half pseudo-random bytes
 * repeated twice (compressible ~50%), each a pure function of its index, and random orders.
 *
 * @module
 */
import { shuffledIndexes } from './lib.js';

/** A xorshift32 generator: `seed` -> a function returning u32s. */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** A random permutation of `0..n-1` (Fisher-Yates), the same for the same seed. */
export function permutation(n: number, seed: number): Uint32Array {
  return shuffledIndexes(n, xorshift(seed));
}

/** Key `i`: the decimal of `2i` (or `2i + 1`, a miss, with `odd`), zero-padded to 16 bytes. */
export const lookupKey = (i: number, odd = false): Buffer => Buffer.from(String(2 * i + (odd ? 1 : 0)).padStart(16, '0'), 'latin1');

/** Value `i` of `size` bytes: `size / 2` pseudo-random bytes, twice. */
export function lookupValue(i: number, size: number): Buffer {
  const r = xorshift(i + 1);
  const b = Buffer.allocUnsafe(size);
  for (let j = 0; j < size / 2; j++) b[j] = r() & 0xff;
  b.copy(b, size / 2, 0, size / 2);
  return b;
}
