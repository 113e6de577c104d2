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

/**
 * The 4 bytes of `bytes[start..end)` from `start` (zeros past `end`) as a big-endian u32: if key
 * `a` is below key `b`, and both share the bytes before `start`, `a`'s window is at most `b`'s.
 */
function window(bytes: Uint8Array, start: number, end: number): number {
  let w = 0;
  for (let i = start; i < start + 4; i++) w = w * 256 + (i < end ? bytes[i]! : 0);
  return w;
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
  /** The prefix every separator shares (a view into {@link #keys}). */
  readonly #prefix: Uint8Array;
  /** Each separator's {@link window}: the 4 bytes after {@link #prefix}, as a big-endian u32. */
  readonly #windows: Uint32Array;

  private constructor(keys: Uint8Array, keyStarts: Uint32Array, offsets: Float64Array, sizes: Uint32Array) {
    this.#keys = keys;
    this.#keyStarts = keyStarts;
    this.#offsets = offsets;
    this.#sizes = sizes;
    const count = sizes.length;
    // The longest prefix of the first separator that the last one shares: the keys ascend, so
    // every separator between them shares it too.
    let p = 0;
    if (count > 0) {
      const first = keyStarts[0]!;
      const last = keyStarts[count - 1]!;
      const n = Math.min(keyStarts[1]! - first, keyStarts[count]! - last);
      while (p < n && keys[first + p] === keys[last + p]) p++;
    }
    this.#prefix = keys.subarray(0, p);
    this.#windows = new Uint32Array(count);
    for (let i = 0; i < count; i++) this.#windows[i] = window(keys, keyStarts[i]! + p, keyStarts[i + 1]!);
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

  /**
   * The first block whose separator is `>= key` (the only one that may hold `key`), or `count`.
   *
   * First a binary search over {@link #windows}, one small array of u32s, instead of over the
   * separators' bytes (two arrays, a byte loop per step): key order is window order (not
   * strictly: keys may share a window), so only the separators whose window equals the key's
   * (usually none to two) are compared whole.
   */
  find(key: Uint8Array): number {
    const count = this.#sizes.length;
    const prefix = this.#prefix;
    const p = prefix.length;
    const n = Math.min(p, key.length);
    let i = 0;
    while (i < n && key[i] === prefix[i]) i++;
    // A key that leaves the shared prefix is below or above every separator.
    if (i < n) return key[i]! < prefix[i]! ? 0 : count;
    if (i < p) return 0; // a proper prefix of the shared prefix: below every separator
    const w = window(key, p, key.length);
    const windows = this.#windows;
    // The first separator whose window is >= w: those before it are below the key.
    let lo = 0;
    let hi = count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (windows[mid]! < w) lo = mid + 1;
      else hi = mid;
    }
    // The separators sharing the key's window, compared whole (from the shared prefix on).
    const keys = this.#keys;
    const starts = this.#keyStarts;
    const klen = key.length;
    for (; lo < count && windows[lo] === w; lo++) {
      const s = starts[lo]!;
      const slen = starts[lo + 1]! - s;
      const m = Math.min(slen, klen);
      let j = p;
      while (j < m && keys[s + j] === key[j]) j++;
      if ((j < m ? keys[s + j]! - key[j]! : slen - klen) >= 0) return lo;
    }
    return lo;
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
    return this.#keys.length + 4 * this.#keyStarts.length + 16 * this.#sizes.length;
  }
}
