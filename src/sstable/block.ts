/**
 * Reads one block's contents (layout in format.ts): validates the restart array when built, then
 * finds a key by binary search over the restarts and a short linear scan, or decodes every entry.
 * Pure: the bytes come from the caller, already checksum-verified and decompressed.
 *
 * Verified bytes are trusted to have been written by a correct writer, but not blindly: every
 * varint and length is bounds-checked, so a checksum collision or a writer bug yields a
 * `CorruptionError`, never an out-of-bounds read or a wrong entry.
 *
 * @module
 */
import { corrupt, getU32, getVarint32, pos as varintPos } from './coding.js';
import type { Where } from './format.js';

/** Where an entry's value lies in the block's bytes. */
export interface ValueSpan {
  start: number;
  end: number;
}

/** A decoded view of one block's contents. */
export class Block {
  /** The block's contents. */
  readonly data: Uint8Array;
  /** The block's place in its file, for error reports. */
  readonly where: Where;
  /** End of the entries (start of the restart array). */
  readonly #limit: number;
  readonly #restarts: number;

  // The entry most recently parsed by #parse.
  #shared = 0;
  #unshared = 0;
  #valueLength = 0;
  #keyStart = 0;

  constructor(data: Uint8Array, where: Where) {
    // A plain Uint8Array view: Buffer's subarray and slice are slower, and its slice does not copy.
    this.data = Buffer.isBuffer(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data;
    data = this.data;
    this.where = where;
    const len = data.length;
    if (len < 4) throw corrupt('block shorter than its restart count', where);
    const n = getU32(data, len - 4);
    if (n > (len - 4) / 4) throw corrupt(`restart count ${n} does not fit the block`, where);
    const limit = len - 4 - 4 * n;
    if (n === 0 && limit !== 0) throw corrupt('entries without restart points', where);
    let prev = -1;
    for (let i = 0; i < n; i++) {
      const r = getU32(data, limit + 4 * i);
      if (i === 0 ? r !== 0 : r <= prev || r >= limit) throw corrupt(`bad restart offset ${r}`, where);
      prev = r;
    }
    this.#limit = limit;
    this.#restarts = n;
  }

  /** Bytes of the block's contents. */
  get byteLength(): number {
    return this.data.length;
  }

  /** True if the block has no entries. */
  get empty(): boolean {
    return this.#limit === 0;
  }

  /**
   * Parses the entry header at `at` after a key of `prevLength` bytes; sets the entry fields and
   * returns the offset of the value.
   */
  #parse(at: number, prevLength: number): number {
    const data = this.data;
    const limit = this.#limit;
    const shared = getVarint32(data, at, limit);
    if (shared < 0) throw corrupt(`bad entry header at block offset ${at}`, this.where);
    const unshared = getVarint32(data, varintPos, limit);
    if (unshared < 0) throw corrupt(`bad entry header at block offset ${at}`, this.where);
    const valueLength = getVarint32(data, varintPos, limit);
    if (valueLength < 0) throw corrupt(`bad entry header at block offset ${at}`, this.where);
    const keyStart = varintPos;
    if (shared > prevLength) throw corrupt(`entry at block offset ${at} shares more than the previous key`, this.where);
    if (limit - keyStart < unshared + valueLength) {
      throw corrupt(`entry at block offset ${at} runs past the block`, this.where);
    }
    this.#shared = shared;
    this.#unshared = unshared;
    this.#valueLength = valueLength;
    this.#keyStart = keyStart;
    return keyStart + unshared;
  }

  /**
   * Finds the entry whose key equals `key`; returns where its value lies, or `undefined`. See
   * {@link findValue}.
   */
  find(key: Uint8Array): ValueSpan | undefined {
    const start = this.findValue(key);
    return start < 0 ? undefined : { start, end: this.valueEnd };
  }

  /**
   * End of the value found by the last successful {@link findValue} (the block is read
   * synchronously, so the caller reads it right after).
   */
  valueEnd = 0;

  /**
   * Finds the entry whose key equals `key`: returns the offset of its value in {@link data} (its
   * end in {@link valueEnd}), or -1. Allocates nothing. Binary search over the restarts for the
   * last one whose key is below `key`, then a linear scan that compares keys in place instead of
   * rebuilding them from their shared prefixes:
   *
   * The scan keeps `matched`, the length of the prefix the previous key shares with `key` (the
   * previous key is below `key`, so `matched < key.length`). An entry that shares more than
   * `matched` bytes with the previous key agrees with it on byte `matched`, which is below
   * `key`'s: it is below `key` too, and is skipped without looking at its bytes. An entry
   * sharing at most `matched` bytes agrees with `key` on those, so only its unshared bytes are
   * compared with `key`'s from there. (Keys must ascend; the shared counts need not be maximal.)
   */
  findValue(key: Uint8Array): number {
    const n = this.#restarts;
    if (n === 0) return -1;
    const data = this.data;
    const limit = this.#limit;
    const klen = key.length;
    // The last restart whose key is below `key` (or restart 0). As in the index's search, each
    // comparison skips the prefix both bounds share with `key`: restart `left` (below `key`, if
    // left > 0) and restart right + 1 (not below it).
    let left = 0;
    let right = n - 1;
    let leftShared = 0;
    let rightShared = 0;
    while (left < right) {
      const mid = (left + right + 1) >>> 1;
      const at = getU32(data, limit + 4 * mid);
      let k: number;
      let len: number;
      // A restart's header is usually three one-byte varints, shared = 0: read here, as in the
      // scan below; any other goes through #parse, which also reports a malformed one.
      const h1 = data[at + 1]!;
      const h2 = data[at + 2]!;
      if (data[at] === 0 && limit - at >= 3 && (h1 | h2) < 0x80 && limit - at - 3 >= h1 + h2) {
        k = at + 3;
        len = h1;
      } else {
        this.#parse(at, 0);
        if (this.#shared !== 0) throw corrupt(`restart entry at block offset ${at} shares a prefix`, this.where);
        k = this.#keyStart;
        len = this.#unshared;
      }
      const m = Math.min(len, klen);
      let i = Math.min(leftShared, rightShared);
      while (i < m && data[k + i] === key[i]) i++;
      if ((i < m ? data[k + i]! - key[i]! : len - klen) < 0) {
        left = mid;
        leftShared = i;
      } else {
        right = mid - 1;
        rightShared = i;
      }
    }
    // Scan from restart `left` for the first key >= `key`.
    let at = getU32(data, limit + 4 * left);
    let keyLength = 0;
    let matched = 0;
    while (at < limit) {
      let shared: number;
      let unshared: number;
      let ks: number;
      let valueStart: number;
      // The common header: three one-byte varints, read here. Any other goes through #parse,
      // which also reports a malformed one.
      const h0 = data[at]!;
      const h1 = data[at + 1]!;
      const h2 = data[at + 2]!;
      if (limit - at >= 3 && (h0 | h1 | h2) < 0x80 && h0 <= keyLength && limit - at - 3 >= h1 + h2) {
        shared = h0;
        unshared = h1;
        ks = at + 3;
        valueStart = ks + h1;
        at = valueStart + h2;
      } else {
        valueStart = this.#parse(at, keyLength);
        shared = this.#shared;
        unshared = this.#unshared;
        ks = this.#keyStart;
        at = valueStart + this.#valueLength;
      }
      keyLength = shared + unshared;
      if (shared > matched) continue;
      // The key is key[0..shared) + data[ks..valueStart): compare from byte `shared`.
      const m = Math.min(unshared, klen - shared);
      let j = 0;
      while (j < m && data[ks + j] === key[shared + j]) j++;
      const c = j < m ? data[ks + j]! - key[shared + j]! : keyLength - klen;
      if (c > 0) return -1;
      if (c === 0) {
        this.valueEnd = at;
        return valueStart;
      }
      matched = shared + j;
    }
    return -1;
  }

  /**
   * Calls `visit` for every entry in order with a copy of its key and where its value lies.
   * Throws a `CorruptionError` if keys do not ascend strictly.
   *
   * The keys are rebuilt into one buffer per call and handed out as views of it: one allocation
   * per block instead of one `Buffer` per key. A key shares no bytes with the block (the caller
   * may keep or modify it), only its `ArrayBuffer` with the other keys of the call.
   */
  forEach(visit: (key: Uint8Array, valueStart: number, valueEnd: number) => void): void {
    const data = this.data;
    const limit = this.#limit;
    // Room for the keys of a typical block; grown (into a new buffer) when they need more.
    let keys = new Uint8Array(Math.min(Math.max(64, limit >>> 1), 16384));
    let used = 0;
    let prevStart = 0;
    let prevLength = 0;
    let at = 0;
    let restart = 0;
    let nextRestart = this.#restarts > 0 ? 0 : -1;
    while (at < limit) {
      let shared: number;
      let unshared: number;
      let keyStart: number;
      let valueLength: number;
      // The common header inline, as in findValue; any other through #parse.
      const h0 = data[at]!;
      const h1 = data[at + 1]!;
      const h2 = data[at + 2]!;
      if (limit - at >= 3 && (h0 | h1 | h2) < 0x80 && h0 <= prevLength && limit - at - 3 >= h1 + h2) {
        shared = h0;
        unshared = h1;
        valueLength = h2;
        keyStart = at + 3;
      } else {
        this.#parse(at, prevLength);
        shared = this.#shared;
        unshared = this.#unshared;
        valueLength = this.#valueLength;
        keyStart = this.#keyStart;
      }
      const valueStart = keyStart + unshared;
      if (at === nextRestart) {
        if (shared !== 0) throw corrupt(`restart entry at block offset ${at} shares a prefix`, this.where);
        restart++;
        nextRestart = restart < this.#restarts ? getU32(data, limit + 4 * restart) : -1;
      } else if (nextRestart >= 0 && at > nextRestart) {
        throw corrupt(`restart offset ${nextRestart} is not on an entry`, this.where);
      }
      const length = shared + unshared;
      if (used + length > keys.length) {
        // Keys handed out stay views of the old buffer; the previous one is copied for its prefix.
        const grown = new Uint8Array(Math.max(2 * keys.length, prevLength + length));
        for (let i = 0; i < prevLength; i++) grown[i] = keys[prevStart + i]!;
        keys = grown;
        prevStart = 0;
        used = prevLength;
      }
      const start = used;
      for (let i = 0; i < shared; i++) keys[start + i] = keys[prevStart + i]!;
      for (let i = keyStart, j = start + shared; i < valueStart; i++, j++) keys[j] = data[i]!;
      // Strictly above the previous key: the first `shared` bytes are the same, compare the rest.
      if (at !== 0) {
        const n = Math.min(prevLength, length);
        let i = shared;
        while (i < n && keys[prevStart + i] === keys[start + i]) i++;
        if (i < n ? keys[prevStart + i]! > keys[start + i]! : prevLength >= length) {
          throw corrupt(`keys out of order at block offset ${at}`, this.where);
        }
      }
      const valueEnd = valueStart + valueLength;
      used += length;
      visit(keys.subarray(start, used), valueStart, valueEnd);
      prevStart = start;
      prevLength = length;
      at = valueEnd;
    }
    if (restart !== this.#restarts) throw corrupt(`restart offset ${nextRestart} is not on an entry`, this.where);
  }
}
