import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { CorruptionError } from '../../src/errors.js';
import { compareKeys } from '../../src/entry.js';
import { Block } from '../../src/sstable/block.js';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import { TableIndex, encodeHandle, shortestSeparator } from '../../src/sstable/index-block.js';
import { bytes, hex } from './helpers.js';

const where = { file: 'f.sst', offset: 1000 };

function indexBlock(entries: [string, number, number][]): Block {
  const b = new BlockBuilder(16);
  const h = new Uint8Array(16);
  for (const [k, offset, size] of entries) b.add(bytes(k), h, encodeHandle({ offset, size }, h), new Uint8Array(0));
  return new Block(new Uint8Array(b.finish()), where);
}

/** An index block of `keys` (ascending) over blocks of 5 bytes, 10 bytes apart. */
function indexBlockOf(keys: Uint8Array[]): Block {
  const b = new BlockBuilder(16);
  const h = new Uint8Array(16);
  for (const [i, k] of keys.entries()) b.add(k, h, encodeHandle({ offset: 10 * i, size: 5 }, h), new Uint8Array(0));
  return new Block(new Uint8Array(b.finish()), where);
}

describe('shortestSeparator', () => {
  it.each([
    ['abcd', 'abzz', 'abd'],
    ['abc', 'abd', 'abc'],
    ['ab', 'abc', 'ab'],
    ['a\xff\xff', 'b', 'a\xff\xff'],
    ['', 'a', ''],
    ['helloworld', 'hellz', 'hellp'],
  ])('between %j and %j is %j', (a, b, s) => {
    expect(hex(shortestSeparator(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')))).toBe(hex(Buffer.from(s, 'latin1')));
  });

  test.prop([fc.uint8Array({ maxLength: 10 }), fc.uint8Array({ maxLength: 10 })])('lies in [a, b)', (x, y) => {
    const c = compareKeys(x, y);
    fc.pre(c !== 0);
    const [a, b] = c < 0 ? [x, y] : [y, x];
    const s = shortestSeparator(a, b);
    expect(compareKeys(a, s)).toBeLessThanOrEqual(0);
    expect(compareKeys(s, b)).toBeLessThan(0);
    expect(s.length).toBeLessThanOrEqual(a.length);
  });
});

describe('TableIndex', () => {
  it('decodes handles and finds the first separator >= key', () => {
    const idx = TableIndex.decode(
      indexBlock([
        ['c', 0, 100],
        ['f', 105, 50],
        ['k', 160, 20],
      ]),
      185,
    );
    expect(idx.count).toBe(3);
    expect([idx.offset(1), idx.size(1)]).toEqual([105, 50]);
    expect(idx.find(bytes('a'))).toBe(0);
    expect(idx.find(bytes('c'))).toBe(0);
    expect(idx.find(bytes('ca'))).toBe(1);
    expect(idx.find(bytes('k'))).toBe(2);
    expect(idx.find(bytes('l'))).toBe(3);
  });

  // The search skips the prefix the probe is known to share with the separators left in range:
  // keys with long common prefixes, against a linear search.
  test.prop([
    fc.uniqueArray(fc.tuple(fc.constantFrom('', 'user:', '0000000000'), fc.nat(5000)), {
      selector: (t) => t.join('|'),
      minLength: 1,
      maxLength: 200,
    }),
    fc.array(
      fc.tuple(fc.constantFrom('', 'user:', '0000000000', 'user', '00000000000'), fc.nat(6000), fc.constantFrom('', '0', '\u00ff')),
      { maxLength: 40 },
    ),
  ])('finds the first separator >= key when keys share long prefixes', (pairs, probes) => {
    const key = (p: string, n: number, s = ''): string => `${p}${String(n).padStart(5, '0')}${s}`;
    const keys = [...new Set(pairs.map(([p, n]) => key(p, n)))].sort((a, b) => compareKeys(bytes(a), bytes(b)));
    const idx = TableIndex.decode(indexBlock(keys.map((k, i) => [k, 10 * i, 5])), 10 * keys.length);
    for (const probe of [...keys, ...probes.map(([p, n, s]) => key(p, n, s))]) {
      const b = Buffer.from(probe, 'latin1');
      let expected = keys.findIndex((k) => compareKeys(Buffer.from(k, 'latin1'), b) >= 0);
      if (expected < 0) expected = keys.length;
      expect(idx.find(b)).toBe(expected);
    }
  });

  // The search first compares 4-byte windows after the prefix all separators share; keys over
  // a tiny alphabet (zeros included, short and empty keys) make windows tie and keys run out
  // inside them. Against a linear search.
  test.prop([
    fc.uniqueArray(
      fc.uint8Array({ maxLength: 8 }).map((k) => k.map((b) => [0, 1, 255][b % 3]!)),
      {
        selector: (k) => Buffer.from(k).toString('hex'),
        minLength: 1,
        maxLength: 60,
      },
    ),
    fc.array(
      fc.uint8Array({ maxLength: 9 }).map((k) => k.map((b) => [0, 1, 2, 255][b % 4]!)),
      { maxLength: 30 },
    ),
    fc.constantFrom(new Uint8Array(0), Uint8Array.from([7, 7, 7, 7, 7])),
  ])('finds the first separator >= key when 4-byte windows tie', (raw, probes, common) => {
    const withPrefix = (k: Uint8Array): Buffer => Buffer.concat([common, k]);
    const keys = raw.map(withPrefix).sort(compareKeys);
    const idx = TableIndex.decode(indexBlockOf(keys), 10 * keys.length);
    for (const probe of [...keys, ...probes.map(withPrefix), ...probes.map((p) => Buffer.from(p)), Buffer.alloc(0)]) {
      let expected = keys.findIndex((k) => compareKeys(k, probe) >= 0);
      if (expected < 0) expected = keys.length;
      expect(idx.find(probe)).toBe(expected);
    }
  });

  it.each([
    [
      'a gap between blocks',
      [
        ['c', 0, 100],
        ['f', 106, 50],
      ] as [string, number, number][],
      161,
    ],
    ['a first block not at 0', [['c', 5, 100]] as [string, number, number][], 110],
    ['handles short of the data', [['c', 0, 100]] as [string, number, number][], 200],
    ['handles past the data', [['c', 0, 100]] as [string, number, number][], 50],
    ['an impossible block size', [['c', 0, 2]] as [string, number, number][], 7],
  ])('rejects %s', (_name, entries, dataEnd) => {
    expect(() => TableIndex.decode(indexBlock(entries), dataEnd)).toThrow(CorruptionError);
  });

  it('rejects a handle with trailing bytes', () => {
    const b = new BlockBuilder(16);
    b.add(bytes('a'), Uint8Array.from([0, 10, 0]), 3, new Uint8Array(0));
    expect(() => TableIndex.decode(new Block(new Uint8Array(b.finish()), where), 15)).toThrow(/block handle/);
  });
});
