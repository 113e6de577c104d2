/**
 * Small pure encoders and decoders: varints, fixed-width integers, and the corruption error a
 * decoder throws.
 *
 * Decoders never trust a length: every decoded length is checked against the bytes actually
 * present before it is used, and a varint that runs past its end or past its width is malformed.
 * Varint decoders return the value and leave the position after it in {@link pos}, so that hot
 * loops allocate nothing.
 *
 * @module
 */
import { CorruptionError } from '../errors.js';
import type { Where } from './format.js';

/** Builds the corruption error for damaged bytes at `where`. */
export function corrupt(reason: string, where: Where): CorruptionError {
  const details = { file: where.file, offset: where.offset };
  return new CorruptionError(reason, where.length === undefined ? details : { ...details, unreadableBytes: where.length });
}

/** Position after the last varint decoded by {@link getVarint32} or {@link getVarint53}. */
export let pos = 0;

/** Bytes the varint encoding of `v` takes (1 to 8 for values below 2^53). */
export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** Writes `v` (an integer in [0, 2^53)) as a varint at `out[at]`; returns the position after it. */
export function putVarint(out: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/**
 * Decodes a varint of at most 5 bytes with a value below 2^32 from `data[at..end)`. Returns the
 * value (and sets {@link pos}), or -1 if it runs past `end` or past 32 bits.
 */
export function getVarint32(data: Uint8Array, at: number, end: number): number {
  if (at < end) {
    const b = data[at]!;
    if (b < 0x80) {
      pos = at + 1;
      return b;
    }
  }
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 5; i++) {
    if (at >= end) return -1;
    const b = data[at++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) {
      if (v > 0xffffffff) return -1;
      pos = at;
      return v;
    }
    mul *= 0x80;
  }
  return -1;
}

/**
 * Decodes a varint of at most 8 bytes with a value below 2^53 from `data[at..end)`. Returns the
 * value (and sets {@link pos}), or -1 if it runs past `end` or past 2^53 - 1.
 */
export function getVarint53(data: Uint8Array, at: number, end: number): number {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (at >= end) return -1;
    const b = data[at++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) {
      if (v > Number.MAX_SAFE_INTEGER) return -1;
      pos = at;
      return v;
    }
    mul *= 0x80;
  }
  return -1;
}

/** Writes a u32 at `out[at]`. */
export function putU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v & 0xff;
  out[at + 1] = (v >>> 8) & 0xff;
  out[at + 2] = (v >>> 16) & 0xff;
  out[at + 3] = (v >>> 24) & 0xff;
}

/** Reads a u32 at `data[at]`; the caller has checked that 4 bytes are there. */
export function getU32(data: Uint8Array, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24)) >>> 0;
}

/** Writes an integer in [0, 2^53) as a u64 at `out[at]`. */
export function putU64(out: Uint8Array, at: number, v: number): void {
  putU32(out, at, v >>> 0);
  putU32(out, at + 4, Math.floor(v / 0x100000000));
}

/** Reads a u64 at `data[at]`; returns -1 if it is 2^53 or more. */
export function getU64(data: Uint8Array, at: number): number {
  const hi = getU32(data, at + 4);
  if (hi >= 0x200000) return -1;
  return hi * 0x100000000 + getU32(data, at);
}

/** A growable byte buffer for encoders. */
export class ByteSink {
  bytes: Uint8Array;
  length = 0;

  constructor(initial = 256) {
    this.bytes = new Uint8Array(initial);
  }

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    const need = this.length + n;
    if (need <= this.bytes.length) return;
    let cap = this.bytes.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }

  varint(v: number): void {
    this.reserve(8);
    this.length = putVarint(this.bytes, this.length, v);
  }

  u8(v: number): void {
    this.reserve(1);
    this.bytes[this.length++] = v;
  }

  u32(v: number): void {
    this.reserve(4);
    putU32(this.bytes, this.length, v);
    this.length += 4;
  }

  append(src: Uint8Array): void {
    this.reserve(src.length);
    this.bytes.set(src, this.length);
    this.length += src.length;
  }

  /** The bytes written so far (a view, valid until the next write). */
  view(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}
