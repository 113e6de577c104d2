/**
 * The DB's point lookup in a table, `TableReader.find`: fills a `Found` in place instead of
 * making an entry. It must report exactly what `get` reports, and what it leaves behind (cached
 * blocks) must never point into the buffer the reader reads blocks into.
 */
import { describe, expect, it } from 'vitest';
import type { Entry } from '../../src/entry.js';
import { Found } from '../../src/found.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { bloomHash } from '../../src/sstable/bloom.js';
import { BlockCache, TableReader, writeTable } from '../../src/sstable/index.js';
import { bytes, hex } from './helpers.js';

const key = (i: number): Buffer => bytes(`key${String(i).padStart(8, '0')}`);

function numbered(n: number): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    key: key(2 * i),
    seq: i + 1,
    kind: i % 11 === 5 ? ('delete' as const) : ('put' as const),
    // Values that differ between blocks, so a block read over another shows.
    value: i % 11 === 5 ? new Uint8Array(0) : bytes(`value-${i}-`.repeat(1 + (i % 7))),
    expiresAt: i % 13 === 0 ? 1_700_000_000_000 + i : undefined,
  }));
}

async function table(entries: Entry[], compression: 'none' | 'lz4', cache: BlockCache | undefined, fileNumber: number) {
  const fs = new MemFileSystem();
  await fs.mkdir('/db');
  const file = `/db/${fileNumber}.sst`;
  await writeTable(fs, file, entries, { compression, blockSize: 256 });
  return TableReader.open(fs, file, cache === undefined ? {} : { cache, fileNumber });
}

function viaFind(reader: TableReader, k: Uint8Array, f: Found) {
  if (!reader.find(k, bloomHash(k), f)) return undefined;
  return { seq: f.seq, kind: f.kind, value: hex(f.value()), expiresAt: f.expiresAt };
}

function viaGet(reader: TableReader, k: Uint8Array) {
  const e = reader.get(k);
  return e && { seq: e.seq, kind: e.kind, value: hex(e.value), expiresAt: e.expiresAt };
}

describe('TableReader.find', () => {
  for (const compression of ['none', 'lz4'] as const)
    for (const cached of [false, true])
      it(`reports what get reports, present and absent keys (compression ${compression}, ${cached ? 'cached' : 'no cache'})`, async () => {
        const entries = numbered(400);
        const reader = await table(entries, compression, cached ? new BlockCache(1 << 20) : undefined, 1);
        const f = new Found();
        for (let i = 0; i < 800; i++) {
          const k = key(i);
          expect(viaFind(reader, k, f)).toEqual(viaGet(reader, k));
        }
        expect(viaFind(reader, key(2 * 5), f)).toMatchObject({ kind: 'delete', value: '' });
        expect(viaFind(reader, key(2 * 13), f)).toMatchObject({ kind: 'put', expiresAt: 1_700_000_000_013 });
        await reader.close();
      });

  it('cached blocks of two tables never share the buffer blocks are read into', async () => {
    // Uncompressed blocks are what was read: a cached one must be a copy, not a view of the
    // reader's scratch buffer, or reading another block would change its values.
    const cache = new BlockCache(1 << 20);
    const a = await table(numbered(300), 'none', cache, 1);
    const b = await table(
      numbered(300).map((e) => ({ ...e, value: e.kind === 'put' ? bytes('B'.repeat(e.value.length)) : e.value })),
      'none',
      cache,
      2,
    );
    const f = new Found();
    const first = viaFind(a, key(0), f);
    expect(a.stats.blockReads).toBe(1);
    for (let i = 0; i < 600; i++) viaFind(b, key(i), f); // every block of b read, through the same scratch
    expect(b.stats.blockReads).toBeGreaterThan(5);
    expect(viaFind(a, key(0), f)).toEqual(first); // a cache hit: no new read
    expect(a.stats.blockReads).toBe(1);
    for (let i = 0; i < 600; i++) expect(viaFind(a, key(i), f)).toEqual(viaGet(a, key(i)));
    await a.close();
    await b.close();
  });

  it('a value found stays readable until the next lookup, and getAsync reads are not disturbed', async () => {
    const a = await table(numbered(300), 'lz4', undefined, 1);
    const f = new Found();
    const pending = a.getAsync(key(2 * 100));
    expect(viaFind(a, key(2 * 200), f)).toEqual(viaGet(a, key(2 * 200)));
    const got = await pending;
    expect(hex(got!.value)).toBe(hex(bytes('value-100-'.repeat(1 + (100 % 7)))));
    await a.close();
  });
});
