/**
 * The index block: one entry per data block, mapping a separator key to the block's handle
 * (layout in format.ts). The writer shortens separators as LevelDB does; the reader decodes the
 * whole index once, at open, into arrays it binary-searches, and checks that the handles tile the
 * data region exactly.
 *
 * @module
 */
import type { Block } from './block.js';
import { ByteSink, corrupt, getVarint53, pos as varintPos, putVarint } from './coding.js';
import { type BlockHandle, MAX_BLOCK_SIZE, TRAILER_SIZE, type Where } from './format.js';

/**
 * A short key `s` with `a <= s < b` (requires `a < b`): `a`'s first differing byte incremented
 * and the rest dropped, when that stays below `b`; otherwise `a` itself. (LevelDB's
 * `FindShortestSeparator`.)
 */
export function shortestSeparator(a: Uint8Array, b: Uint8Array): Uint8Array {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  if (i < n) {
    const byte = a[i]!;
    if (byte < 0xff && byte + 1 < b[i]!) {
      const s = new Uint8Array(i + 1);
      s.set(a.subarray(0, i));
      s[i] = byte + 1;
      return s;
    }
  }
  return new Uint8Array(a);
}

/** Largest encoded handle: two 8-byte varints. */
export const MAX_HANDLE_SIZE = 16;

/** Encodes a block handle into `out`; returns its length. */
export function encodeHandle(handle: BlockHandle, out: Uint8Array): number {
  return putVarint(out, putVarint(out, 0, handle.offset), handle.size);
}

/**
 * The first of `count` ascending keys, stored back to back in `keys` (key `i` is
 * `keys[starts[i]..starts[i + 1])`), that is `>= key`; `count` if none.
 *
 * A binary search that skips the prefix `key` is known to share with every key left in the
 * range: the keys ascend, so each one between the two bounds shares with `key` at least the
 * shorter of the prefixes the bounds share with it. Keys with a long common prefix (numbers
 * padded with zeros, a `user:` namespace) then cost a byte or two per step instead of all of
 * them.
 */
export function lowerBound(keys: Uint8Array, starts: Uint32Array, count: number, key: Uint8Array): number {
  const klen = key.length;
  let lo = 0;
  let hi = count;
  // Bytes `key` shares with key lo - 1 (below it) and with key hi (not below it).
  let loShared = 0;
  let hiShared = 0;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const s = starts[mid]!;
    const slen = starts[mid + 1]! - s;
    const n = Math.min(slen, klen);
    let i = Math.min(loShared, hiShared);
    while (i < n && keys[s + i] === key[i]) i++;
    const c = i < n ? keys[s + i]! - key[i]! : slen - klen;
    if (c < 0) {
      lo = mid + 1;
      loShared = i;
    } else {
      hi = mid;
      hiShared = i;
    }
  }
  return lo;
}

/** The decoded index of an open table. */
export class TableIndex {
  /**
   * Every separator, back to back, and where each starts (`count + 1` offsets): a binary search
   * touches one small array instead of one object per block.
   */
  readonly #keys: Uint8Array;
  readonly #keyStarts: Uint32Array;
  readonly #offsets: Float64Array;
  readonly #sizes: Uint32Array;

  private constructor(keys: Uint8Array, keyStarts: Uint32Array, offsets: Float64Array, sizes: Uint32Array) {
    this.#keys = keys;
    this.#keyStarts = keyStarts;
    this.#offsets = offsets;
    this.#sizes = sizes;
  }

  /**
   * Decodes a verified index block. The handles must tile `[0, dataEnd)` exactly: the first
   * block at offset 0, each next one right after the previous one's trailer.
   */
  static decode(block: Block, dataEnd: number): TableIndex {
    const keys = new ByteSink(256);
    const keyStarts: number[] = [0];
    const offsets: number[] = [];
    const sizes: number[] = [];
    const where: Where = block.where;
    let expected = 0;
    block.forEach((key, start, end) => {
      const n = offsets.length;
      const offset = getVarint53(block.data, start, end);
      const size = offset < 0 ? -1 : getVarint53(block.data, varintPos, end);
      if (size < 0 || varintPos !== end) throw corrupt(`bad block handle in index entry ${n}`, where);
      if (offset !== expected) throw corrupt(`index entry ${n} points at ${offset}, expected ${expected}`, where);
      if (size < 4 || size > MAX_BLOCK_SIZE) throw corrupt(`data block size ${size} out of range`, where);
      expected = offset + size + TRAILER_SIZE;
      if (expected > dataEnd) throw corrupt(`index entry ${n} runs past the data`, where);
      keys.append(key);
      keyStarts.push(keys.length);
      offsets.push(offset);
      sizes.push(size);
    });
    if (expected !== dataEnd) throw corrupt(`index covers ${expected} bytes of data, not ${dataEnd}`, where);
    return new TableIndex(new Uint8Array(keys.view()), Uint32Array.from(keyStarts), Float64Array.from(offsets), Uint32Array.from(sizes));
  }

  /** Number of data blocks. */
  get count(): number {
    return this.#sizes.length;
  }

  /** The first block whose separator is `>= key` (the only one that may hold `key`), or `count`. */
  find(key: Uint8Array): number {
    return lowerBound(this.#keys, this.#keyStarts, this.#sizes.length, key);
  }

  /** Block `i`'s separator key (a view into the index). */
  separator(i: number): Uint8Array {
    return this.#keys.subarray(this.#keyStarts[i]!, this.#keyStarts[i + 1]!);
  }

  /** Offset of block `i`'s body. */
  offset(i: number): number {
    return this.#offsets[i]!;
  }

  /** Size of block `i`'s body (trailer excluded). */
  size(i: number): number {
    return this.#sizes[i]!;
  }

  /** Memory held by the decoded index, in bytes. */
  get byteLength(): number {
    return this.#keys.length + 4 * this.#keyStarts.length + 12 * this.#sizes.length;
  }
}
