import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { compressSync } from 'lz4-napi';
import { decompressLz4Block } from '../../src/sstable/lz4.js';

/** Decompresses lz4-napi's output (raw length u32 LE, then the block) with the JavaScript decoder. */
function roundTrip(raw: Uint8Array): Uint8Array {
  const c = compressSync(Buffer.from(raw));
  const body = c.length - 4;
  const work = new Uint8Array(body + raw.length + 8).fill(0xaa);
  work.set(c.subarray(4));
  const n = decompressLz4Block(work, 0, body, body, body + raw.length);
  expect(n).toBe(raw.length);
  // Nothing written past the output range.
  expect([...work.subarray(body + raw.length)]).toEqual(new Array(8).fill(0xaa));
  return work.slice(body, body + raw.length);
}

/** Bytes with repeats at short and long distances (literals, overlapping and plain matches). */
const repetitive = fc
  .array(
    fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 300 }),
      fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 600 })).map(([b, n]) => new Uint8Array(n).fill(b)),
      fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 7 }), fc.integer({ min: 1, max: 100 })).map(([p, n]) => {
        const out = new Uint8Array(p.length * n);
        for (let i = 0; i < n; i++) out.set(p, i * p.length);
        return out;
      }),
    ),
    { maxLength: 20 },
  )
  .map((parts) => {
    const all: number[] = [];
    for (const p of parts) {
      all.push(...p);
      // Repeat an earlier stretch, as a value copied within a block would be.
      if (all.length > 40 && p.length % 3 === 0) all.push(...all.slice(all.length - 40, all.length - 10));
    }
    return Uint8Array.from(all);
  });

describe('LZ4 block decompression', () => {
  test.prop([repetitive])('reads back what lz4-napi compressed', (raw) => {
    expect(Buffer.compare(roundTrip(raw), raw)).toBe(0);
  });

  test.prop([fc.uint8Array({ maxLength: 5000 })])('reads back incompressible bytes', (raw) => {
    expect(Buffer.compare(roundTrip(raw), raw)).toBe(0);
  });

  it('reads back long runs (length extensions) and an empty block', () => {
    const raw = new Uint8Array(70_000);
    for (let i = 0; i < raw.length; i++) raw[i] = i % 1000 < 500 ? (i * 7) & 0xff : 3;
    expect(Buffer.compare(roundTrip(raw), raw)).toBe(0);
    expect(roundTrip(new Uint8Array(0)).length).toBe(0);
  });

  it('decodes a hand-written block byte for byte (golden)', () => {
    // "abc" as literals, then a match of 7 at offset 3 (overlapping: "abcabca"), then literal "Z".
    const block = [0x33, 0x61, 0x62, 0x63, 0x03, 0x00, 0x10, 0x5a];
    const work = new Uint8Array(block.length + 11);
    work.set(block);
    expect(decompressLz4Block(work, 0, block.length, block.length, work.length)).toBe(11);
    expect(Buffer.from(work.subarray(block.length)).toString('latin1')).toBe('abcabcabcaZ');
  });

  it('reports malformed blocks instead of reading or writing out of range', () => {
    const run = (block: number[], outLength: number): number => {
      const work = new Uint8Array(block.length + outLength + 4).fill(0xee);
      work.set(block);
      const n = decompressLz4Block(work, 0, block.length, block.length, block.length + outLength);
      expect([...work.subarray(block.length + outLength)]).toEqual([0xee, 0xee, 0xee, 0xee]);
      return n;
    };
    // Literals running past the input.
    expect(run([0x50, 0x61, 0x62], 10)).toBe(-1);
    // A literal length extension cut short.
    expect(run([0xf0, 0xff], 400)).toBe(-1);
    // More literals than the output holds.
    expect(run([0x30, 0x61, 0x62, 0x63], 2)).toBe(-1);
    // A match offset cut short, a zero offset, an offset before the output's start.
    expect(run([0x10, 0x61, 0x01], 10)).toBe(-1);
    expect(run([0x10, 0x61, 0x00, 0x00, 0x00], 10)).toBe(-1);
    expect(run([0x10, 0x61, 0x02, 0x00, 0x00], 10)).toBe(-1);
    // A match length extension cut short; a match longer than the output holds.
    expect(run([0x1f, 0x61, 0x01, 0x00, 0xff], 400)).toBe(-1);
    expect(run([0x1f, 0x61, 0x01, 0x00, 0x10], 10)).toBe(-1);
    // A valid block whose output is shorter than the range: the count tells.
    expect(run([0x20, 0x61, 0x62], 10)).toBe(2);
  });
});
