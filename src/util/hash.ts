/**
 * The one key hash of a point lookup: LevelDB's `Hash` with the bloom filter's seed. The tables'
 * bloom filters (`sstable/bloom.ts`, an on-disk format) and the memtable's hash index
 * (`memtable/hash-index.ts`, in memory only) both use it, so a lookup hashes its key once for the
 * memtables and every table it asks.
 *
 * @module
 */

/** LevelDB's `Hash(data, n, seed)`: 32-bit, murmur-like; of `data[start, end)`. */
export function hash32(data: Uint8Array, seed: number, start = 0, end = data.length): number {
  const m = 0xc6a4a793;
  const n = end; // the loop runs to `end`; the length hashed is `end - start`
  let h = (seed ^ Math.imul(end - start, m)) >>> 0;
  let i = start;
  for (; i + 4 <= n; i += 4) {
    const w = (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)) >>> 0;
    h = Math.imul((h + w) >>> 0, m) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  const rest = n - i;
  if (rest > 0) {
    if (rest === 3) h = (h + (data[i + 2]! << 16)) >>> 0;
    if (rest >= 2) h = (h + (data[i + 1]! << 8)) >>> 0;
    h = (h + data[i]!) >>> 0;
    h = Math.imul(h, m) >>> 0;
    h = (h ^ (h >>> 24)) >>> 0;
  }
  return h;
}

/** The seed of {@link keyHash}: the bloom filter's (`BLOOM_SEED` in `sstable/format.ts`, 0xBC9F1D34). */
export const KEY_HASH_SEED = 0xbc9f1d34;

/** The key hash of a lookup: `hash32(key, KEY_HASH_SEED)`, what the bloom filters probe with. */
export function keyHash(key: Uint8Array): number {
  return hash32(key, KEY_HASH_SEED);
}
