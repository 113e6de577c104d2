/**
 * Keys, values and key orders for the workloads that bench/db-child.ts runs in child processes
 * (concurrent, fillbatch, load, reads). Nothing is precomputed per key: a 10M-key load would
 * otherwise hold 160 MB of keys and 40 MB of permutation in the process whose RSS it measures.
 *
 * - Key j: 16 B, the zero-padded decimal of 2*j (db_bench style, as bench/db.ts); a miss is the
 *   odd number 2*j+1, inside the key range, so bloom filters have to reject it.
 * - Value j of generation g: a slice of a pool of 10,000 values, each 50%-compressible (its first
 *   half pseudo-random, repeated), as bench/db.ts.
 * - Random order: a keyed Feistel permutation of [0, n) with cycle walking, so every key is
 *   written exactly once in a pseudo-random order with no table in memory.
 *
 * @module
 */
import { rng } from './lib.js';

export const KEY_BYTES = 16;
const SLAB_KEYS = 4096;

/**
 * Hands out 16-byte key buffers, carved from 64 KiB slabs (a fresh slab when one is used up, so
 * a key an engine keeps is never overwritten).
 */
export class Keys {
  #slab = Buffer.allocUnsafeSlow(SLAB_KEYS * KEY_BYTES);
  #at = 0;

  /** Key of entry j (2*j), or the miss next to it (2*j+1). */
  key(j: number, miss = false): Buffer {
    if (this.#at === SLAB_KEYS) {
      this.#slab = Buffer.allocUnsafeSlow(SLAB_KEYS * KEY_BYTES);
      this.#at = 0;
    }
    const start = this.#at++ * KEY_BYTES;
    let x = 2 * j + (miss ? 1 : 0);
    const s = this.#slab;
    for (let p = start + KEY_BYTES - 1; p >= start; p--) {
      s[p] = 48 + (x % 10);
      x = Math.floor(x / 10);
    }
    return s.subarray(start, start + KEY_BYTES);
  }
}

const POOL_VALUES = 10_000;

/** Values of one size: `value(j, g)` is a slice of a pool built once (10,000 x size bytes). */
export class Values {
  readonly size: number;
  readonly #pool: Buffer;

  constructor(size: number) {
    this.size = size;
    const r = rng(7);
    const half = Math.floor(size / 2);
    this.#pool = Buffer.allocUnsafe(POOL_VALUES * size);
    for (let i = 0; i < POOL_VALUES; i++) {
      const at = i * size;
      for (let k = 0; k < size - half; k++) this.#pool[at + k] = r() & 0xff;
      this.#pool.copy(this.#pool, at + size - half, at, at + half);
    }
  }

  /** Value of key j, generation g (0: first write, 1: overwrite). */
  value(j: number, g: number): Buffer {
    const at = ((j * 7919 + g * 4999) % POOL_VALUES) * this.size;
    return this.#pool.subarray(at, at + this.size);
  }
}

/**
 * A pseudo-random permutation of [0, n): a 4-round Feistel network over the smallest even
 * power of two >= n, walking the cycle until the result falls below n (under 4 steps on average).
 */
export function permutation(n: number, seed: number): (i: number) => number {
  let bits = 2;
  while (2 ** bits < n) bits += 2;
  const half = bits / 2;
  const mask = 2 ** half - 1;
  const r = rng(seed);
  const keys = [r(), r(), r(), r()];
  const round = (x: number, k: number): number => {
    let h = Math.imul(x ^ k, 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    return (h >>> 0) & mask;
  };
  const once = (x: number): number => {
    let left = Math.floor(x / 2 ** half);
    let right = x & mask;
    for (const k of keys) {
      const t = right;
      right = (left ^ round(right, k)) & mask;
      left = t;
    }
    return left * 2 ** half + right;
  };
  return (i: number): number => {
    let x = once(i);
    while (x >= n) x = once(x);
    return x;
  };
}

/** Uniformly random entry indexes in [0, n), reproducible from the seed. */
export function randomIndexes(n: number, seed: number): () => number {
  const r = rng(seed);
  return () => r() % n;
}
