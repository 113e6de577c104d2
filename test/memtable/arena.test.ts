import { describe, expect, it } from 'vitest';
import type { Entry } from '../../src/entry.js';
import { Arena, CHUNK_SIZE, FIRST_CHUNK_SIZE, PROBE } from '../../src/memtable/arena.js';
import { type ArenaChunks, entryRecordSize, recordSizeAt } from '../../src/memtable/arena-format.js';
import { bytes, plain } from '../sstable/helpers.js';

const entry = (key: string, seq: number, valueSize: number): Entry => ({
  key: bytes(key),
  seq,
  kind: 'put',
  value: new Uint8Array(valueSize).fill(seq & 0xff),
});

/** How many whole records `arena` holds, chunk after chunk; throws if one runs past its chunk's end. */
function countRecords(arena: ArenaChunks): number {
  let n = 0;
  arena.chunks.forEach((buffer, c) => {
    const chunk = new Uint8Array(buffer);
    for (let at = 0; at < arena.ends[c]!; n++) {
      at += recordSizeAt(chunk, at);
      if (at > arena.ends[c]!) throw new Error(`chunk ${c}: a record runs past its end`);
    }
  });
  return n;
}

describe('Arena', () => {
  it('holds nothing until the first record', () => {
    const a = new Arena();
    expect(a.bytesHeld).toBe(0);
    expect(a.chunksAt(a.mark())).toEqual({ chunks: [], ends: [] });
  });

  it('grows its chunks by doubling up to CHUNK_SIZE, in append order', () => {
    const a = new Arena();
    const e = entry('k', 1, 1000);
    const size = entryRecordSize(e);
    let bytes = 0;
    while (bytes < 6 * CHUNK_SIZE) {
      a.append(e);
      bytes += size;
    }
    const { chunks, ends } = a.chunksAt(a.mark());
    const sizes = chunks.map((c) => c.byteLength);
    expect(sizes.slice(0, 6)).toEqual([1, 2, 4, 8, 16, 32].map((k) => k * FIRST_CHUNK_SIZE));
    expect(Math.max(...sizes)).toBe(CHUNK_SIZE);
    // Each chunk is filled as far as whole records go before the next one starts.
    for (let c = 0; c < chunks.length - 1; c++) expect(chunks[c]!.byteLength - ends[c]!).toBeLessThan(size);
    expect(countRecords({ chunks, ends })).toBe(a.records);
  });

  it('gives a record larger than the next chunk a chunk of its exact size', () => {
    const a = new Arena();
    a.append(entry('small', 1, 10));
    const big = entry('big', 2, FIRST_CHUNK_SIZE * 3);
    const n = a.append(big);
    a.append(entry('after', 3, 10));
    const { chunks, ends } = a.chunksAt(a.mark());
    expect(chunks.map((c) => c.byteLength)).toEqual([FIRST_CHUNK_SIZE, entryRecordSize(big), 2 * FIRST_CHUNK_SIZE]);
    expect(ends[1]).toBe(entryRecordSize(big));
    expect(plain(a.entry(n))).toEqual(plain(big));
    // Held: the first chunk whole (its tail is lost), the big one, the used part of the last.
    expect(a.bytesHeld - FIRST_CHUNK_SIZE - entryRecordSize(big) - ends[2]!).toBeGreaterThanOrEqual(0);
  });

  it('takes back the last record, dropping a chunk it leaves empty', () => {
    const a = new Arena();
    a.append(entry('a', 1, 10));
    const before = a.mark();
    const held = a.bytesHeld;
    const big = a.append(entry('big', 2, CHUNK_SIZE * 2));
    expect(a.mark().chunks).toBe(2);
    a.truncate(big);
    expect(a.mark()).toEqual(before);
    expect(a.bytesHeld).toBe(held);
    const small = a.append(entry('b', 3, 10));
    a.truncate(small);
    expect(a.mark()).toEqual(before);
    // The first chunk takes records again.
    a.append(entry('c', 4, 10));
    expect(a.mark().chunks).toBe(1);
  });

  it('gives the chunks as they were at a mark, whatever was appended since', () => {
    const a = new Arena();
    for (let i = 0; i < 100; i++) a.append(entry(`k${i}`, i, 500));
    const mark = a.mark();
    const then = a.chunksAt(mark);
    for (let i = 0; i < 1000; i++) a.append(entry(`n${i}`, i, 500));
    expect(a.chunksAt(mark)).toEqual(then);
    expect(countRecords(then)).toBe(100);
  });

  it('orders records by key, and the probe as any key', () => {
    const a = new Arena();
    const keys = ['', 'a', 'ab', 'abc', 'abcd', 'abcd\0', 'abce', 'b'];
    const n = keys.map((k, i) => a.append(entry(k, i, 1)));
    for (let i = 0; i < keys.length; i++) {
      for (let j = 0; j < keys.length; j++) expect(Math.sign(a.compare(n[i]!, n[j]!))).toBe(Math.sign(i - j));
      a.setProbe(bytes(keys[i]!));
      expect(a.compare(PROBE, n[i]!)).toBe(0);
      if (i > 0) expect(a.compare(n[i - 1]!, PROBE)).toBeLessThan(0);
    }
    // A probe longer than the scratch buffer it starts with.
    const long = 'x'.repeat(5000);
    a.setProbe(bytes(long));
    expect(a.compare(PROBE, a.append(entry(long, 9, 0)))).toBe(0);
  });
});
