import { describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { getU64, getVarint32, getVarint53, pos, putU64, putVarint, varintLength } from '../../src/sstable/coding.js';

describe('varints', () => {
  test.prop([fc.maxSafeNat()])('round-trip every value below 2^53 in varintLength bytes', (v) => {
    const buf = new Uint8Array(10);
    const end = putVarint(buf, 1, v);
    expect(end - 1).toBe(varintLength(v));
    expect(getVarint53(buf, 1, end)).toBe(v);
    expect(pos).toBe(end);
    // Any truncation is malformed, never a different value.
    for (let cut = 1; cut < end; cut++) expect(getVarint53(buf, 1, cut)).toBe(-1);
  });

  test.prop([fc.nat({ max: 0xffffffff })])('varint32 round-trips below 2^32', (v) => {
    const buf = new Uint8Array(5);
    const end = putVarint(buf, 0, v);
    expect(getVarint32(buf, 0, end)).toBe(v);
    expect(pos).toBe(end);
  });

  test('golden encodings', () => {
    const enc = (v: number) => {
      const b = new Uint8Array(8);
      return Buffer.from(b.subarray(0, putVarint(b, 0, v))).toString('hex');
    };
    expect(enc(0)).toBe('00');
    expect(enc(127)).toBe('7f');
    expect(enc(128)).toBe('8001');
    expect(enc(300)).toBe('ac02');
    expect(enc(2 ** 32)).toBe('8080808010');
    expect(enc(Number.MAX_SAFE_INTEGER)).toBe('ffffffffffffff0f');
  });

  test('rejects overlong and out-of-range varints', () => {
    expect(getVarint32(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x10]), 0, 5)).toBe(-1); // 2^32
    expect(getVarint32(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), 0, 6)).toBe(-1); // 6 bytes
    expect(getVarint53(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]), 0, 8)).toBe(-1); // 2^53
    expect(getVarint53(new Uint8Array(9).fill(0x80), 0, 9)).toBe(-1);
    expect(getVarint32(new Uint8Array(0), 0, 0)).toBe(-1);
  });

  test('u64 round-trips and refuses values of 2^53 and more', () => {
    const b = new Uint8Array(8);
    putU64(b, 0, Number.MAX_SAFE_INTEGER);
    expect(getU64(b, 0)).toBe(Number.MAX_SAFE_INTEGER);
    b[6] = 0x20;
    expect(getU64(b, 0)).toBe(-1);
  });
});
