import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../../src/errors.js';
import { BloomFilter, FilterBuilder, bloomHash, buildFilter, hash32, probesFor } from '../../src/sstable/bloom.js';

const where = { file: 'f.sst', offset: 0 };

function keyOf(prefix: string, i: number): Buffer {
  return Buffer.from(`${prefix}${i.toString(36).padStart(6, '0')}`);
}

function filterOf(keys: Uint8Array[], bitsPerKey = 10): BloomFilter {
  const hashes = Uint32Array.from(keys.map(bloomHash));
  return BloomFilter.decode(buildFilter(hashes, keys.length, bitsPerKey), where);
}

describe('bloom filter', () => {
  it("computes LevelDB's Hash (util/hash_test.cc vectors)", () => {
    const seed = 0xbc9f1d34;
    expect(hash32(new Uint8Array(0), seed)).toBe(0xbc9f1d34);
    expect(hash32(Uint8Array.from([0x62]), seed)).toBe(0xef1345c4);
    expect(hash32(Uint8Array.from([0xc3, 0x97]), seed)).toBe(0x5b663814);
    expect(hash32(Uint8Array.from([0xe2, 0x99, 0xa5]), seed)).toBe(0x323c078f);
    expect(hash32(Uint8Array.from([0xe1, 0x80, 0xb9, 0x32]), seed)).toBe(0xed21633a);
    const data5 = Uint8Array.from([
      0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00,
    ]);
    expect(hash32(data5, 0x12345678)).toBe(0xf333dabb);
  });

  it('uses floor(bits * ln 2) probes, clamped to [1, 30]', () => {
    expect(probesFor(10)).toBe(6);
    expect(probesFor(1)).toBe(1);
    expect(probesFor(100)).toBe(30);
  });

  it('has no false negatives', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => keyOf('k', i));
    const f = filterOf(keys);
    for (const k of keys) expect(f.mayContain(k)).toBe(true);
    expect(f.byteLength).toBe(25_000);
  });

  it('has about 1% false positives at 10 bits per key, over 100,000 absent keys', () => {
    const keys = Array.from({ length: 50_000 }, (_, i) => keyOf('present-', i));
    const f = filterOf(keys);
    let hits = 0;
    const trials = 100_000;
    for (let i = 0; i < trials; i++) if (f.mayContain(keyOf('absent-', i))) hits++;
    const rate = hits / trials;
    // Theory: (1 - e^(-6/10))^6 = 0.84%. Allow noise and hash imperfection, not a broken filter.
    expect(rate).toBeGreaterThan(0.002);
    expect(rate).toBeLessThan(0.02);
  });

  it('degrades gracefully at fewer bits per key', () => {
    const keys = Array.from({ length: 5_000 }, (_, i) => keyOf('p', i));
    const f = filterOf(keys, 4);
    let hits = 0;
    for (let i = 0; i < 20_000; i++) if (f.mayContain(keyOf('a', i))) hits++;
    expect(hits / 20_000).toBeLessThan(0.25);
  });

  it('works for an empty key set (64 bits, matches nothing)', () => {
    const f = filterOf([]);
    expect(f.byteLength).toBe(8);
    expect(f.mayContain(Buffer.from('x'))).toBe(false);
  });

  it('rejects a malformed filter block', () => {
    expect(() => BloomFilter.decode(new Uint8Array(5), where)).toThrow(CorruptionError);
    const zeroProbes = new Uint8Array(9);
    expect(() => BloomFilter.decode(zeroProbes, where)).toThrow(/probes/);
    const manyProbes = new Uint8Array(9);
    manyProbes[8] = 31;
    expect(() => BloomFilter.decode(manyProbes, where)).toThrow(/probes/);
  });

  it('a filter built in steps (as TableWriter.finish does, between event-loop turns) is byte for byte the one built at once', () => {
    const hashes = Uint32Array.from({ length: 10_007 }, (_, i) => bloomHash(keyOf('s', i)));
    for (const bitsPerKey of [1, 10, 23]) {
      const whole = buildFilter(hashes, hashes.length, bitsPerKey);
      for (const step of [1, 999, 4096, 10_007]) {
        const b = FilterBuilder.sized(hashes.length, bitsPerKey);
        for (let from = 0; from < hashes.length; from += step) b.add(hashes, from, Math.min(hashes.length, from + step));
        expect(Buffer.from(b.finish()).equals(Buffer.from(whole))).toBe(true);
      }
    }
  });
});
