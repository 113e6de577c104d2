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
import { compareKeys } from '../entry.js';
import { corrupt, getU32, getVarint32, pos as varintPos } from './coding.js';
import type { Where } from './format.js';

/** Where an entry's value lies in the block's bytes. */
export interface ValueSpan {
  start: number;
  end: number;
}

/** Scratch key buffer for scans: code here is synchronous, so one buffer serves every block. */
let scratch: Uint8Array = new Uint8Array(256);

function ensureScratch(n: number, keep: number): Uint8Array {
  if (scratch.length < n) {
    const grown = new Uint8Array(Math.max(n, scratch.length * 2));
    grown.set(scratch.subarray(0, keep));
    scratch = grown;
  }
  return scratch;
}

/** Compares `data[start..end)` with `key`, bytewise. */
function compareSlice(data: Uint8Array, start: number, end: number, key: Uint8Array): number {
  const len = end - start;
  const n = Math.min(len, key.length);
  for (let i = 0; i < n; i++) {
    const d = data[start + i]! - key[i]!;
    if (d !== 0) return d;
  }
  return len - key.length;
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
   * Finds the entry whose key equals `key`; returns where its value lies, or `undefined`. Binary
   * search over the restarts for the last one whose key is below `key`, then a linear scan.
   */
  find(key: Uint8Array): ValueSpan | undefined {
    const n = this.#restarts;
    if (n === 0) return undefined;
    const data = this.data;
    const restartBase = this.#limit;
    let left = 0;
    let right = n - 1;
    while (left < right) {
      const mid = (left + right + 1) >>> 1;
      const at = getU32(data, restartBase + 4 * mid);
      this.#parse(at, 0);
      if (this.#shared !== 0) throw corrupt(`restart entry at block offset ${at} shares a prefix`, this.where);
      const k = this.#keyStart;
      if (compareSlice(data, k, k + this.#unshared, key) < 0) left = mid;
      else right = mid - 1;
    }
    // Scan from restart `left` for the first key >= `key`.
    let at = getU32(data, restartBase + 4 * left);
    let keyLength = 0;
    let buf = scratch;
    while (at < this.#limit) {
      const valueStart = this.#parse(at, keyLength);
      const newLength = this.#shared + this.#unshared;
      buf = ensureScratch(newLength, this.#shared);
      for (let i = this.#keyStart, j = this.#shared; i < valueStart; i++, j++) buf[j] = data[i]!;
      keyLength = newLength;
      const c = compareSlice(buf, 0, keyLength, key);
      if (c >= 0) {
        return c === 0 ? { start: valueStart, end: valueStart + this.#valueLength } : undefined;
      }
      at = valueStart + this.#valueLength;
    }
    return undefined;
  }

  /**
   * Calls `visit` for every entry in order with a fresh copy of its key and where its value lies.
   * Throws a `CorruptionError` if keys do not ascend strictly.
   */
  forEach(visit: (key: Uint8Array, valueStart: number, valueEnd: number) => void): void {
    const data = this.data;
    let at = 0;
    let prev: Uint8Array | undefined;
    let prevLength = 0;
    let restart = 0;
    let nextRestart = this.#restarts > 0 ? 0 : -1;
    while (at < this.#limit) {
      const valueStart = this.#parse(at, prevLength);
      const shared = this.#shared;
      if (at === nextRestart) {
        if (shared !== 0) throw corrupt(`restart entry at block offset ${at} shares a prefix`, this.where);
        restart++;
        nextRestart = restart < this.#restarts ? getU32(data, this.#limit + 4 * restart) : -1;
      } else if (nextRestart >= 0 && at > nextRestart) {
        throw corrupt(`restart offset ${nextRestart} is not on an entry`, this.where);
      }
      // From Node's buffer pool: much cheaper than a fresh ArrayBuffer per key.
      const key = Buffer.allocUnsafe(shared + this.#unshared);
      for (let i = 0; i < shared; i++) key[i] = prev![i]!;
      for (let i = this.#keyStart, j = shared; i < valueStart; i++, j++) key[j] = data[i]!;
      if (prev !== undefined && compareKeys(prev, key) >= 0) {
        throw corrupt(`keys out of order at block offset ${at}`, this.where);
      }
      const valueEnd = valueStart + this.#valueLength;
      visit(key, valueStart, valueEnd);
      prev = key;
      prevLength = key.length;
      at = valueEnd;
    }
    if (restart !== this.#restarts) throw corrupt(`restart offset ${nextRestart} is not on an entry`, this.where);
  }
}
