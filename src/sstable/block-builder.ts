/**
 * Builds one block's contents: prefix-compressed entries, the restart array and its count
 * (layout in format.ts). Used for data blocks and the index block. Pure: no I/O.
 *
 * Each entry stores only the part of its key that differs from the previous key. Every
 * `restartInterval`-th entry stores its whole key and is listed in the restart array, so that a
 * reader can binary-search the restarts and decode at most `restartInterval` entries from there.
 *
 * @module
 */
import { ByteSink, putU32, putVarint } from './coding.js';

/** Accumulates entries into one block; see the module comment. */
export class BlockBuilder {
  readonly #restartInterval: number;
  readonly #out = new ByteSink(4096 + 1024);
  #restarts: number[] = [];
  #sinceRestart: number;
  #count = 0;
  /** A copy of the previous key: the caller may reuse its arrays once `add` returns. */
  #last = new Uint8Array(64);
  #lastLength = 0;

  constructor(restartInterval: number) {
    this.#restartInterval = restartInterval;
    this.#sinceRestart = restartInterval;
  }

  /** Number of entries added since the last reset. */
  get count(): number {
    return this.#count;
  }

  /** Size of the block if finished now. */
  get estimatedSize(): number {
    return this.#out.length + 4 * this.#restarts.length + 4;
  }

  /** Compares `key` with the last key added, bytewise (the builder must not be empty). */
  compareWithLast(key: Uint8Array): number {
    const last = this.#last;
    const len = this.#lastLength;
    const n = Math.min(len, key.length);
    for (let i = 0; i < n; i++) {
      const d = key[i]! - last[i]!;
      if (d !== 0) return d;
    }
    return key.length - len;
  }

  /** The key of the last entry added (a view, valid until the next `add` or `reset`). */
  lastKey(): Uint8Array {
    return this.#last.subarray(0, this.#lastLength);
  }

  /**
   * Appends an entry whose value is `head[0..headLength)` followed by `tail`. Keys must ascend
   * strictly; the caller checks.
   */
  add(key: Uint8Array, head: Uint8Array, headLength: number, tail: Uint8Array): void {
    let shared = 0;
    if (this.#sinceRestart >= this.#restartInterval) {
      this.#restarts.push(this.#out.length);
      this.#sinceRestart = 0;
    } else {
      const last = this.#last;
      const max = Math.min(this.#lastLength, key.length);
      while (shared < max && last[shared] === key[shared]) shared++;
    }
    const unshared = key.length - shared;
    const valueLength = headLength + tail.length;
    const out = this.#out;
    out.reserve(15 + unshared + valueLength);
    const bytes = out.bytes;
    let at = putVarint(bytes, out.length, shared);
    at = putVarint(bytes, at, unshared);
    at = putVarint(bytes, at, valueLength);
    // Byte loops rather than set(subarray): keys are short, and a Buffer's subarray is not free.
    for (let i = shared; i < key.length; i++) bytes[at++] = key[i]!;
    for (let i = 0; i < headLength; i++) bytes[at++] = head[i]!;
    bytes.set(tail, at);
    out.length = at + tail.length;

    if (this.#last.length < key.length) {
      const grown = new Uint8Array(Math.max(key.length, this.#last.length * 2));
      grown.set(this.#last.subarray(0, shared));
      this.#last = grown;
    }
    const last = this.#last;
    for (let i = shared; i < key.length; i++) last[i] = key[i]!;
    this.#lastLength = key.length;
    this.#sinceRestart++;
    this.#count++;
  }

  /** Appends the restart array and returns the block's contents (a view, valid until `reset`). */
  finish(): Uint8Array {
    const out = this.#out;
    out.reserve(4 * this.#restarts.length + 4);
    for (const r of this.#restarts) {
      putU32(out.bytes, out.length, r);
      out.length += 4;
    }
    putU32(out.bytes, out.length, this.#restarts.length);
    out.length += 4;
    return out.view();
  }

  /** Empties the builder for the next block. */
  reset(): void {
    this.#out.length = 0;
    this.#restarts = [];
    this.#sinceRestart = this.#restartInterval;
    this.#count = 0;
    this.#lastLength = 0;
  }
}
