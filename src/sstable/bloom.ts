/**
 * The table's bloom filter, as LevelDB builds it (util/bloom.cc), but one filter for the whole
 * table rather than one per 2 KiB of data: a lookup of a key the table lacks usually reads no
 * data block at all.
 *
 * Each key is hashed once with LevelDB's murmur-like `Hash` (seed 0xbc9f1d34); the probes are
 * `h, h + delta, h + 2*delta, ...` (mod 2^32) with `delta = h rotated right by 17 bits`, each
 * setting bit `probe mod nbits` (bit `i % 8` of byte `i / 8`). At 10 bits per key and
 * `k = floor(10 * ln 2) = 6` probes the false-positive rate is about 1%. The writer keeps only the
 * 32-bit hash of each key, 4 bytes per entry.
 *
 * @module
 */
import { hash32, KEY_HASH_SEED, keyHash } from '../util/hash.js';
import { corrupt } from './coding.js';
import { BLOOM_SEED, MAX_BLOOM_PROBES, MIN_BLOOM_BYTES, type Where } from './format.js';

export { hash32 };

// The filter's hash is the lookup's key hash (util/hash.ts): one hash per lookup serves the
// memtable's hash index and every table's filter. The seed is part of the format: check they agree.
if (KEY_HASH_SEED !== BLOOM_SEED) throw new Error('util/hash.ts KEY_HASH_SEED must equal BLOOM_SEED');

/** The filter's hash of a key. */
export function bloomHash(key: Uint8Array): number {
  return keyHash(key);
}

/** Probes per key for `bitsPerKey` bits per key: `floor(bitsPerKey * ln 2)`, clamped to [1, 30]. */
export function probesFor(bitsPerKey: number): number {
  return Math.min(MAX_BLOOM_PROBES, Math.max(1, Math.floor(bitsPerKey * 0.69)));
}

/**
 * Builds a filter block from the hashes of `count` keys (`hashes[0..count)`) at `bitsPerKey`
 * bits per key: the bit array (at least 64 bits) and the probe count.
 */
export function buildFilter(hashes: Uint32Array, count: number, bitsPerKey: number): Uint8Array {
  const filter = FilterBuilder.sized(count, bitsPerKey);
  filter.add(hashes, 0, count);
  return filter.finish();
}

/**
 * A filter block built in steps: {@link add} sets the probes of a range of hashes, so that a
 * caller can set a large table's (40 ms for 500,000 keys here) between event-loop turns.
 */
export class FilterBuilder {
  readonly #out: Uint8Array;
  readonly #bits: number;
  readonly #probes: number;

  private constructor(bytes: number, probes: number) {
    this.#out = new Uint8Array(bytes + 1);
    this.#bits = bytes * 8;
    this.#probes = probes;
  }

  /** An empty filter sized for `count` keys at `bitsPerKey` bits per key (at least 64 bits). */
  static sized(count: number, bitsPerKey: number): FilterBuilder {
    return new FilterBuilder(Math.max(MIN_BLOOM_BYTES, Math.ceil((count * bitsPerKey) / 8)), probesFor(bitsPerKey));
  }

  /** Sets the probes of `hashes[from..to)`. */
  add(hashes: Uint32Array, from: number, to: number): void {
    const out = this.#out;
    const bits = this.#bits >>> 0;
    const k = this.#probes;
    for (let i = from; i < to; i++) {
      let h = hashes[i]! >>> 0;
      const delta = ((h >>> 17) | (h << 15)) >>> 0;
      for (let j = 0; j < k; j++) {
        const bit = (h % bits) >>> 0;
        out[bit >>> 3]! |= 1 << (bit & 7);
        h = (h + delta) >>> 0;
      }
    }
  }

  /** The filter block: the bit array, then the probe count. */
  finish(): Uint8Array {
    this.#out[this.#out.length - 1] = this.#probes;
    return this.#out;
  }
}

/** A decoded filter block. */
export class BloomFilter {
  readonly #bits: Uint8Array;
  readonly #nbits: number;
  readonly #probes: number;

  private constructor(bits: Uint8Array, probes: number) {
    this.#bits = bits;
    this.#nbits = bits.length * 8;
    this.#probes = probes;
  }

  /** Decodes a verified filter block; copies the bit array so the block's buffer can go. */
  static decode(block: Uint8Array, where: Where): BloomFilter {
    if (block.length < MIN_BLOOM_BYTES + 1) throw corrupt(`filter block of ${block.length} bytes is too short`, where);
    const probes = block[block.length - 1]!;
    if (probes < 1 || probes > MAX_BLOOM_PROBES) throw corrupt(`filter with ${probes} probes`, where);
    return new BloomFilter(new Uint8Array(block.subarray(0, block.length - 1)), probes);
  }

  /** Bytes of the bit array. */
  get byteLength(): number {
    return this.#bits.length;
  }

  /** False if `key` is certainly absent; true if it may be present. */
  mayContain(key: Uint8Array): boolean {
    return this.mayContainHash(bloomHash(key));
  }

  /** {@link mayContain} for a key already hashed with {@link bloomHash}. */
  mayContainHash(hash: number): boolean {
    const bits = this.#bits;
    // `>>> 0` on both operands: V8 then divides as unsigned 32-bit integers; a hash above 2^31
    // would otherwise take the floating-point remainder, twice the cost of the whole probe loop.
    const nbits = this.#nbits >>> 0;
    let h = hash >>> 0;
    const delta = ((h >>> 17) | (h << 15)) >>> 0;
    for (let j = 0; j < this.#probes; j++) {
      const bit = (h % nbits) >>> 0;
      if ((bits[bit >>> 3]! & (1 << (bit & 7))) === 0) return false;
      h = (h + delta) >>> 0;
    }
    return true;
  }
}
