import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { CorruptionError } from '../../src/errors.js';
import { compareKeys } from '../../src/entry.js';
import { Block } from '../../src/sstable/block.js';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import { putU32 } from '../../src/sstable/coding.js';
import { decodeEntries, encodeHead, findEntry } from '../../src/sstable/data-entry.js';
import { BlockType, MAX_BLOCK_SIZE } from '../../src/sstable/format.js';
import { compressBlock, unsealBlock, writeTrailer } from '../../src/sstable/trailer.js';
import { bytes, hex, keyArb, plain, sortedEntriesArb } from './helpers.js';

const where = { file: 'test.sst', offset: 4096 };
const EMPTY = new Uint8Array(0);

function build(pairs: [string, string][], interval: number): Uint8Array {
  const b = new BlockBuilder(interval);
  for (const [k, v] of pairs) b.add(bytes(k), EMPTY, 0, bytes(v));
  return new Uint8Array(b.finish());
}

describe('block format', () => {
  it('encodes a tiny block byte for byte (golden)', () => {
    const data = build(
      [
        ['apple', '1'],
        ['apply', '2'],
        ['banana', '3'],
      ],
      2,
    );
    expect(hex(data)).toBe(
      [
        '0005016170706c6531', // shared 0, unshared 5, value 1: "apple" "1"
        '0401017932', // shared 4, unshared 1, value 1: "y" "2"
        '00060162616e616e6133', // restart: shared 0, unshared 6: "banana" "3"
        '00000000', // restart offset 0
        '0e000000', // restart offset 14
        '02000000', // 2 restarts
      ].join(''),
    );
  });

  it('encodes an empty block as a zero restart count', () => {
    expect(hex(new BlockBuilder(16).finish())).toBe('00000000');
    const block = new Block(Uint8Array.from([0, 0, 0, 0]), where);
    expect(block.empty).toBe(true);
    expect(block.find(bytes('a'))).toBeUndefined();
  });

  const pairsArb = fc.uniqueArray(fc.tuple(keyArb, fc.uint8Array({ maxLength: 30 })), {
    selector: ([k]) => hex(k),
    maxLength: 80,
  });
  test.prop([pairsArb, fc.integer({ min: 1, max: 20 }), fc.array(keyArb, { maxLength: 20 })])(
    'round-trips: every key found with its value, absent keys absent, forEach in order',
    (pairs, interval, probes) => {
      pairs.sort(([a], [b]) => compareKeys(a, b));
      const b = new BlockBuilder(interval);
      for (const [k, v] of pairs) b.add(k, EMPTY, 0, v);
      const block = new Block(new Uint8Array(b.finish()), where);
      const seen: [string, string][] = [];
      block.forEach((k, s, e) => {
        seen.push([hex(k), hex(block.data.subarray(s, e))]);
      });
      expect(seen).toEqual(pairs.map(([k, v]) => [hex(k), hex(v)]));
      for (const [k, v] of pairs) {
        const span = block.find(k);
        expect(span && hex(block.data.subarray(span.start, span.end))).toBe(hex(v));
      }
      const present = new Set(pairs.map(([k]) => hex(k)));
      for (const p of probes) if (!present.has(hex(p))) expect(block.find(p)).toBeUndefined();
    },
  );

  // Keys with long common prefixes (zero-padded numbers, a namespace): the lookup compares from
  // the prefix it knows a key shares with the probe, and skips entries it knows are below it.
  const prefixedArb = fc.uniqueArray(
    fc.tuple(fc.constantFrom('', 'user:', '0000000000'), fc.nat(3000), fc.constantFrom('', 'x', '\u00ff')),
    { selector: (t) => t.join('|'), maxLength: 120 },
  );
  test.prop([prefixedArb, fc.integer({ min: 1, max: 20 }), prefixedArb])(
    'finds keys sharing long prefixes, and only those present',
    (triples, interval, probeTriples) => {
      const key = ([p, n, s]: [string, number, string]): Uint8Array => Buffer.from(`${p}${String(n).padStart(6, '0')}${s}`, 'latin1');
      const keys = [...new Map(triples.map((t) => [hex(key(t)), key(t)])).values()].sort(compareKeys);
      const b = new BlockBuilder(interval);
      keys.forEach((k, i) => {
        b.add(k, EMPTY, 0, Uint8Array.of(i & 0xff, i >> 8));
      });
      const block = new Block(new Uint8Array(b.finish()), where);
      keys.forEach((k, i) => {
        const at = block.findValue(k);
        expect(at).toBeGreaterThanOrEqual(0);
        expect([...block.data.subarray(at, block.valueEnd)]).toEqual([i & 0xff, i >> 8]);
      });
      const present = new Set(keys.map(hex));
      for (const t of probeTriples) {
        const p = key(t);
        for (const probe of [p, p.subarray(0, p.length - 1), Buffer.concat([p, Uint8Array.of(0)])]) {
          if (!present.has(hex(probe))) expect(block.findValue(probe)).toBe(-1);
        }
      }
    },
  );

  it('hands out keys that are copies, also when they outgrow the first key buffer', () => {
    // 300 keys of 80 bytes sharing 76: 24 KB of keys in a block of a few KB.
    const keys = Array.from({ length: 300 }, (_, i) => bytes(`${'k'.repeat(76)}${String(i).padStart(4, '0')}`));
    const b = new BlockBuilder(16);
    for (const k of keys) b.add(k, EMPTY, 0, EMPTY);
    const data = new Uint8Array(b.finish());
    const block = new Block(data, where);
    const seen: Uint8Array[] = [];
    block.forEach((k) => {
      seen.push(k);
    });
    expect(seen.map(hex)).toEqual(keys.map(hex));
    const before = hex(data);
    for (const k of seen) k.fill(0x7a); // the caller's to change: neither the block nor another key moves
    expect(hex(data)).toBe(before);
    expect(seen.every((k) => k.every((x) => x === 0x7a))).toBe(true);
  });

  it('finds keys whose shared prefix counts are not the longest possible', () => {
    // "abc", then "abd" sharing 1 byte ("a" + "bd"), then "abe" sharing 0, then "abf" sharing 2:
    // a writer need not share as much as it could, and the lookup must not assume it does.
    const entries = [0, 3, 1, 0x61, 0x62, 0x63, 1, 1, 2, 1, 0x62, 0x64, 2, 0, 3, 1, 0x61, 0x62, 0x65, 3, 2, 1, 1, 0x66, 4];
    const data = new Uint8Array(entries.length + 8);
    data.set(entries);
    putU32(data, entries.length, 0);
    putU32(data, entries.length + 4, 1);
    const block = new Block(data, where);
    for (const [k, v] of [
      ['abc', 1],
      ['abd', 2],
      ['abe', 3],
      ['abf', 4],
    ] as const) {
      const at = block.findValue(bytes(k));
      expect(at).toBeGreaterThanOrEqual(0);
      expect(block.data[at]).toBe(v);
    }
    for (const k of ['ab', 'abb', 'abcd', 'abdd', 'abg', 'b', '']) expect(block.findValue(bytes(k))).toBe(-1);
  });

  test.prop([sortedEntriesArb(40)])('data entries round-trip through a block', (entries) => {
    const b = new BlockBuilder(4);
    const head = new Uint8Array(17);
    for (const e of entries) b.add(e.key, head, encodeHead(e, head), e.kind === 'put' ? e.value : EMPTY);
    const block = new Block(new Uint8Array(b.finish()), where);
    expect(decodeEntries(block).map(plain)).toEqual(entries.map(plain));
    for (const e of entries) expect(plain(findEntry(block, e.key)!)).toEqual(plain(e));
  });

  it('encodes a data entry head (golden)', () => {
    const head = new Uint8Array(17);
    const n = encodeHead({ key: EMPTY, seq: 300, kind: 'put', value: EMPTY, expiresAt: 1 }, head);
    expect(hex(head.subarray(0, n))).toBe('02ac0201'); // flags has-expiry, seq 300, expiresAt 1
    const t = encodeHead({ key: EMPTY, seq: 0, kind: 'delete', value: EMPTY }, head);
    expect(hex(head.subarray(0, t))).toBe('0100');
  });

  describe('rejects malformed contents with CorruptionError', () => {
    const bad =
      (data: Uint8Array, probe = bytes('a')) =>
      () => {
        const block = new Block(data, where);
        block.find(probe);
        block.forEach(() => {});
        decodeEntries(block);
      };
    const withRestarts = (entries: number[], restarts: number[]): Uint8Array => {
      const out = new Uint8Array(entries.length + 4 * restarts.length + 4);
      out.set(entries);
      restarts.forEach((r, i) => {
        putU32(out, entries.length + 4 * i, r);
      });
      putU32(out, entries.length + 4 * restarts.length, restarts.length);
      return out;
    };
    it.each([
      ['too short', Uint8Array.from([1, 0])],
      ['restart count too large', Uint8Array.from([0, 0, 0, 0, 5, 0, 0, 0])],
      ['entries but no restarts', Uint8Array.from([0, 1, 0, 0x61, 0, 0, 0, 0])],
      ['first restart not at 0', withRestarts([0, 1, 0, 0x61], [1])],
      ['restart past the entries', withRestarts([0, 1, 0, 0x61], [0, 9])],
      ['restart not on an entry', withRestarts([0, 1, 0, 0x61, 0, 1, 0, 0x62], [0, 2])],
      ['restart entry with a shared prefix', withRestarts([0, 1, 0, 0x61, 1, 1, 0, 0x62], [0, 4])],
      ['entry runs past the block', withRestarts([0, 9, 0, 0x61], [0])],
      ['value runs past the block', withRestarts([0, 1, 9, 0x61], [0])],
      ['truncated varint', withRestarts([0x80], [0])],
      ['shares more than the previous key', withRestarts([0, 1, 0, 0x61, 3, 1, 0, 0x62], [0])],
      ['keys out of order', withRestarts([0, 1, 0, 0x62, 0, 1, 0, 0x61], [0])],
      ['keys out of order after a shared prefix', withRestarts([0, 2, 0, 0x61, 0x62, 1, 1, 0, 0x61], [0])],
      ['a key repeated', withRestarts([0, 2, 0, 0x61, 0x62, 2, 0, 0], [0])],
      ['a key followed by its prefix', withRestarts([0, 2, 0, 0x61, 0x62, 1, 0, 0], [0])],
      ['data entry with unknown flags', withRestarts([0, 1, 2, 0x61, 0x80, 0], [0])],
      ['data entry without flags', withRestarts([0, 1, 0, 0x61], [0])],
      ['tombstone with a value', withRestarts([0, 1, 3, 0x61, 1, 0, 7], [0])],
      ['bad seq varint', withRestarts([0, 1, 2, 0x61, 0, 0x80], [0])],
    ])('%s', (_name, data) => {
      expect(bad(data)).toThrow(CorruptionError);
      try {
        bad(data)();
      } catch (err) {
        expect((err as CorruptionError).file).toBe('test.sst');
        expect((err as CorruptionError).offset).toBe(4096);
      }
    });
  });
});

describe('block trailer', () => {
  const seal = (raw: Uint8Array, compression: 'none' | 'lz4'): Uint8Array => {
    const { body, type } = compressBlock(raw, compression);
    const stored = new Uint8Array(body.length + 5);
    stored.set(body);
    writeTrailer(stored, 0, body.length, type);
    return stored;
  };

  it('writes the type and masked CRC-32C of body and type (golden)', () => {
    // "abc", type 0, masked CRC-32C of 61 62 63 00 = 0xbf1b5400, little-endian.
    const stored = seal(bytes('abc'), 'none');
    expect(hex(stored)).toBe('616263' + '00' + '00541bbf');
    expect(hex(unsealBlock(stored, where))).toBe('616263');
  });

  it('compresses with LZ4 only when it saves an eighth', () => {
    const compressible = bytes('hello world, '.repeat(200));
    const s = seal(compressible, 'lz4');
    expect(s[s.length - 5]).toBe(BlockType.LZ4);
    expect(s.length).toBeLessThan(compressible.length / 4);
    expect(Buffer.from(unsealBlock(s, where)).equals(compressible)).toBe(true);
    let x = 12345;
    const random = Uint8Array.from({ length: 4096 }, () => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x >>> 24;
    });
    const r = seal(random, 'lz4');
    expect(r[r.length - 5]).toBe(BlockType.NONE);
    expect(seal(compressible, 'none').length).toBe(compressible.length + 5);
  });

  it('detects every single-bit flip', () => {
    for (const compression of ['none', 'lz4'] as const) {
      const stored = seal(bytes('hello world, '.repeat(20)), compression);
      for (let i = 0; i < stored.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          const copy = new Uint8Array(stored);
          copy[i]! ^= 1 << bit;
          expect(() => unsealBlock(copy, where)).toThrow(CorruptionError);
        }
      }
    }
  });

  const forge = (body: Uint8Array, type: number): Uint8Array => {
    const stored = new Uint8Array(body.length + 5);
    stored.set(body);
    writeTrailer(stored, 0, body.length, type as BlockType);
    return stored;
  };

  it('refuses a raw length over the cap before decompressing', () => {
    const body = new Uint8Array(16);
    putU32(body, 0, MAX_BLOCK_SIZE + 1);
    expect(() => unsealBlock(forge(body, BlockType.LZ4), where)).toThrow(/exceeds/);
  });

  it('refuses LZ4 data whose size disagrees with the declared raw length, or garbage', () => {
    const good = compressBlock(bytes('hello world, '.repeat(200)), 'lz4').body;
    const lying = new Uint8Array(good);
    putU32(lying, 0, 100);
    expect(() => unsealBlock(forge(lying, BlockType.LZ4), where)).toThrow(CorruptionError);
    const bigger = new Uint8Array(good);
    putU32(bigger, 0, 100_000);
    expect(() => unsealBlock(forge(bigger, BlockType.LZ4), where)).toThrow(CorruptionError);
    const garbage = Uint8Array.from([10, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    expect(() => unsealBlock(forge(garbage, BlockType.LZ4), where)).toThrow(CorruptionError);
    expect(() => unsealBlock(forge(Uint8Array.from([1, 2]), BlockType.LZ4), where)).toThrow(CorruptionError);
  });

  it('refuses unknown block types and stubs shorter than a trailer', () => {
    expect(() => unsealBlock(forge(bytes('abc'), 7), where)).toThrow(/unknown block type/);
    expect(() => unsealBlock(Uint8Array.from([1, 2, 3]), where)).toThrow(CorruptionError);
  });
});
