import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import * as path from 'node:path';
import { ClosedError, InvalidConfigError, IoError } from '../../src/errors.js';
import { FaultFileSystem, failNth } from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { nodeFileSystem } from '../../src/fs/node.js';
import { type Entry, compareKeys } from '../../src/entry.js';
import { Memtable } from '../../src/memtable/memtable.js';
import { BlockCache, TableReader, TableWriter, writeTable } from '../../src/sstable/index.js';
import { bloomHash } from '../../src/sstable/bloom.js';
import {
  bytes,
  checkCursorMoves,
  drain,
  forwardFrom,
  hex,
  keyArb,
  plain,
  readFile,
  reverseFrom,
  sortedEntriesArb,
  tempDir,
} from './helpers.js';

const key = (i: number): Buffer => bytes(`key${String(i).padStart(8, '0')}`);

function numbered(n: number, valueFor = (i: number) => bytes(`value-${i}-`.repeat(1 + (i % 5)))): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    key: key(i),
    seq: i + 1,
    kind: i % 11 === 5 ? ('delete' as const) : ('put' as const),
    value: i % 11 === 5 ? new Uint8Array(0) : valueFor(i),
    expiresAt: i % 13 === 0 ? 1_700_000_000_000 + i : undefined,
  }));
}

async function memFs(): Promise<MemFileSystem> {
  const fs = new MemFileSystem();
  await fs.mkdir('/db');
  return fs;
}

let fileNo = 0;
const nextPath = () => `/db/${++fileNo}.sst`;

describe('table round trip (fast-check)', () => {
  for (const compression of ['none', 'lz4'] as const) {
    test.prop(
      [
        sortedEntriesArb(150),
        fc.record({ blockSize: fc.integer({ min: 64, max: 2048 }), restartInterval: fc.integer({ min: 1, max: 20 }) }),
        fc.array(keyArb, { maxLength: 30 }),
        fc.constantFrom('none', 'large', 'tiny'),
      ],
      { numRuns: 40 },
    )(`compression ${compression}: gets, absent keys and cursors match a sorted array`, async (...args) => {
      const [entries, opts, probes, cached] = args;
      const fs = await memFs();
      const file = nextPath();
      const props = await writeTable(fs, file, entries, { ...opts, compression });
      // A tiny cache evicts as it goes: the reader's kept cache entries go stale.
      const cache = cached === 'none' ? undefined : new BlockCache(cached === 'large' ? 1 << 20 : 3000);
      const reader = await TableReader.open(fs, file, { cache });
      try {
        expect(reader.properties).toEqual(props);
        expect(props.entryCount).toBe(entries.length);
        expect(props.tombstoneCount).toBe(entries.filter((e) => e.kind === 'delete').length);
        expect(props.expiringCount).toBe(entries.filter((e) => e.expiresAt !== undefined).length);
        if (entries.length > 0) {
          expect(hex(props.smallestKey!)).toBe(hex(entries[0]!.key));
          expect(hex(props.largestKey!)).toBe(hex(entries[entries.length - 1]!.key));
          expect(props.minSeq).toBe(Math.min(...entries.map((e) => e.seq)));
          expect(props.maxSeq).toBe(Math.max(...entries.map((e) => e.seq)));
        }
        for (const e of entries) expect(plain(reader.get(e.key)!)).toEqual(plain(e));
        // The DB's lookup: the same entries, the key hashed by the caller.
        for (const e of entries) expect(plain(reader.lookup(e.key, bloomHash(e.key))!)).toEqual(plain(e));
        const present = new Set(entries.map((e) => hex(e.key)));
        for (const p of probes) {
          if (!present.has(hex(p))) {
            expect(reader.get(p)).toBeUndefined();
            expect(reader.lookup(p, bloomHash(p))).toBeUndefined();
            expect(await reader.getAsync(p)).toBeUndefined();
          }
          expect(drain(reader.iterator({ start: p }))).toEqual(forwardFrom(entries, p).map(plain));
          expect(drain(reader.iterator({ start: p, reverse: true }))).toEqual(reverseFrom(entries, p).map(plain));
          checkCursorMoves(reader.iterator(), entries, p);
        }
        expect(drain(reader.iterator())).toEqual(entries.map(plain));
        expect(drain(reader.iterator({ reverse: true }))).toEqual([...entries].reverse().map(plain));
      } finally {
        await reader.close();
      }
    });
  }
});

describe('TableReader', () => {
  it('reads a table written from a frozen memtable, on the real file system', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const m = new Memtable();
      const entries = numbered(3000);
      for (const e of [...entries].reverse()) m.put(e);
      const file = path.join(dir, '000001.sst');
      const props = await writeTable(nodeFileSystem, file, m.freeze());
      expect(props.dataBlockCount).toBeGreaterThan(10);
      const reader = await TableReader.open(nodeFileSystem, file, { cache: new BlockCache(1 << 20), fileNumber: 1 });
      for (const e of entries) expect(plain(reader.get(e.key)!)).toEqual(plain(e));
      for (const e of entries.slice(0, 50)) expect(plain((await reader.getAsync(e.key))!)).toEqual(plain(e));
      expect(drain(reader.iterator({ reverse: true }))).toEqual([...entries].reverse().map(plain));
      await reader.close();
    } finally {
      cleanup();
    }
  });

  it('handles an empty table', async () => {
    const fs = await memFs();
    const file = nextPath();
    const props = await writeTable(fs, file, []);
    expect(props).toMatchObject({ entryCount: 0, dataBlockCount: 0, smallestKey: undefined, largestKey: undefined });
    const reader = await TableReader.open(fs, file);
    expect(reader.get(bytes('a'))).toBeUndefined();
    expect(reader.mayContain(bytes('a'))).toBe(false);
    expect([...reader.iterator()]).toEqual([]);
    expect(reader.iterator({ reverse: true, start: bytes('a') }).current).toBeUndefined();
    expect(reader.iterator().seek(bytes(''))).toBeUndefined();
    await reader.close();
  });

  it('stores values far larger than a block, and empty keys and values', async () => {
    const fs = await memFs();
    const file = nextPath();
    const big = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
    const entries: Entry[] = [
      { key: new Uint8Array(0), seq: 1, kind: 'put', value: new Uint8Array(0) },
      { key: bytes('a'), seq: 2, kind: 'put', value: big },
      { key: bytes('b'), seq: 3, kind: 'put', value: bytes('small') },
      { key: bytes('c'.repeat(5000)), seq: 4, kind: 'put', value: big.subarray(0, 10_000) },
    ];
    await writeTable(fs, file, entries);
    const reader = await TableReader.open(fs, file);
    for (const e of entries) expect(plain(reader.get(e.key)!)).toEqual(plain(e));
    expect(drain(reader.iterator({ reverse: true }))).toEqual([...entries].reverse().map(plain));
    await reader.close();
  });

  it('compresses compressible data with LZ4', async () => {
    const fs = await memFs();
    const entries = numbered(2000, (i) => bytes(`{"id":${i},"name":"user","tags":["a","b","c"]}`));
    const a = nextPath();
    const b = nextPath();
    await writeTable(fs, a, entries, { compression: 'none' });
    await writeTable(fs, b, entries, { compression: 'lz4' });
    const [plainSize, lz4Size] = [(await readFile(fs, a)).length, (await readFile(fs, b)).length];
    expect(lz4Size).toBeLessThan(plainSize * 0.7);
    const reader = await TableReader.open(fs, b);
    expect(drain(reader.iterator())).toEqual(entries.map(plain));
    await reader.close();
  });

  it('serves repeated lookups from the block cache without reading the file', async () => {
    const fs = await memFs();
    const file = nextPath();
    const entries = numbered(2000);
    await writeTable(fs, file, entries);
    const cache = new BlockCache(8 << 20);
    const faulty = new FaultFileSystem(fs);
    const reader = await TableReader.open(faulty, file, { cache, fileNumber: 7 });
    for (const e of entries) reader.get(e.key);
    const reads = reader.stats.blockReads;
    expect(reads).toBe(reader.properties.dataBlockCount);
    // From here on any read of the file fails: cached lookups must not need one.
    faulty.injector = (op) => (op.kind === 'read' || op.kind === 'readSync' ? { error: 'EIO' } : undefined);
    for (const e of entries) expect(plain(reader.get(e.key)!)).toEqual(plain(e));
    expect(drain(reader.iterator())).toHaveLength(entries.length);
    expect(reader.stats.blockReads).toBe(reads);
    expect(cache.stats().hits).toBeGreaterThan(entries.length);

    // A second reader of the same file number shares the cached blocks.
    faulty.injector = undefined;
    const again = await TableReader.open(faulty, file, { cache, fileNumber: 7 });
    faulty.injector = (op) => (op.kind === 'readSync' ? { error: 'EIO' } : undefined);
    expect(plain(again.get(entries[1234]!.key)!)).toEqual(plain(entries[1234]!));
    await again.close();
    await reader.close();
    expect(cache.stats().blocks).toBe(reads); // numbered tables keep their blocks after close
    expect(cache.evictFile(7)).toBe(reads);
  });

  it('drops the blocks of an unnumbered table on close, and can skip filling the cache', async () => {
    const fs = await memFs();
    const file = nextPath();
    await writeTable(fs, file, numbered(1000));
    const cache = new BlockCache(8 << 20);
    const reader = await TableReader.open(fs, file, { cache });
    expect([...reader.iterator({ fillCache: false })]).toHaveLength(1000);
    expect(cache.stats().blocks).toBe(0);
    expect([...reader.iterator()]).toHaveLength(1000);
    expect(cache.stats().blocks).toBe(reader.properties.dataBlockCount);
    await reader.close();
    expect(cache.stats().blocks).toBe(0);
  });

  it('answers most absent-key lookups from the bloom filter without reading a block', async () => {
    const fs = await memFs();
    const file = nextPath();
    await writeTable(fs, file, numbered(20_000));
    const reader = await TableReader.open(fs, file);
    const trials = 20_000;
    for (let i = 0; i < trials; i++) expect(reader.get(bytes(`key${String(i).padStart(8, '0')}x`))).toBeUndefined();
    expect(reader.stats.filtered).toBeGreaterThan(trials * 0.97);
    expect(reader.stats.blockReads).toBeLessThan(trials * 0.03);
    expect(reader.pinnedBytes).toBeGreaterThan(25_000);
    await reader.close();
  });

  it('throws ClosedError after close, also from an open cursor', async () => {
    const fs = await memFs();
    const file = nextPath();
    await writeTable(fs, file, numbered(500));
    const reader = await TableReader.open(fs, file);
    const cursor = reader.iterator();
    await reader.close();
    await reader.close();
    expect(() => reader.get(key(1))).toThrow(ClosedError);
    await expect(reader.getAsync(key(1))).rejects.toThrow(ClosedError);
    expect(() => reader.iterator()).toThrow(ClosedError);
    expect(() => cursor.seekToLast()).toThrow(ClosedError);
  });

  it('rejects bad arguments', async () => {
    const fs = await memFs();
    const file = nextPath();
    await writeTable(fs, file, numbered(10));
    await expect(TableReader.open(fs, file, { fileNumber: -1 })).rejects.toThrow(RangeError);
    await expect(TableReader.open(fs, file, { cache: {} as BlockCache })).rejects.toThrow(TypeError);
    const reader = await TableReader.open(fs, file);
    expect(() => reader.get('key' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => reader.iterator({ start: 'k' as unknown as Uint8Array })).toThrow(TypeError);
    await reader.close();
    await expect(TableReader.open(fs, '/db/missing.sst')).rejects.toThrow(IoError);
  });

  it('reports a failed block read as IoError', async () => {
    const fs = await memFs();
    const file = nextPath();
    await writeTable(fs, file, numbered(100));
    const faulty = new FaultFileSystem(fs);
    const reader = await TableReader.open(faulty, file);
    faulty.injector = failNth('readSync', 0, 'EIO');
    let err: unknown;
    try {
      reader.get(key(3));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).errno).toBe('EIO');
    expect(plain(reader.get(key(3))!)).toEqual(plain(numbered(100)[3]!));
    await reader.close();
  });
});

describe('TableWriter', () => {
  it('refuses keys out of order or repeated', async () => {
    const fs = await memFs();
    const w = await TableWriter.create(fs, nextPath());
    await w.add({ key: bytes('b'), seq: 1, kind: 'put', value: bytes('') });
    await expect(w.add({ key: bytes('a'), seq: 2, kind: 'put', value: bytes('') })).rejects.toThrow(RangeError);
    await expect(w.add({ key: bytes('b'), seq: 2, kind: 'put', value: bytes('') })).rejects.toThrow(RangeError);
    await w.add({ key: bytes('ba'), seq: 2, kind: 'put', value: bytes('') });
    // Out of order across a block boundary too.
    const w2 = await TableWriter.create(fs, nextPath(), { blockSize: 64 });
    for (let i = 0; i < 50; i++) await w2.add({ key: key(i), seq: i, kind: 'put', value: bytes('v'.repeat(20)) });
    await expect(w2.add({ key: key(10), seq: 1, kind: 'put', value: bytes('') })).rejects.toThrow(RangeError);
    await w.abort();
    await w2.abort();
  });

  it('rejects invalid entries and options', async () => {
    const fs = await memFs();
    const w = await TableWriter.create(fs, nextPath());
    const stringKey = { key: 'a', seq: 1, kind: 'put', value: bytes('') } as unknown as Entry;
    await expect(w.add(stringKey)).rejects.toThrow(TypeError);
    await expect(w.add({ key: bytes('a'), seq: -1, kind: 'put', value: bytes('') })).rejects.toThrow(RangeError);
    await w.abort();
    for (const bad of [
      { blockSize: 10 },
      { blockSize: 4096.5 },
      { restartInterval: 0 },
      { compression: 'zstd' as 'lz4' },
      { bloomBitsPerKey: 0 },
      { writeBufferSize: 1 },
    ]) {
      await expect(TableWriter.create(fs, nextPath(), bad)).rejects.toThrow(InvalidConfigError);
    }
  });

  it('refuses to overwrite an existing file', async () => {
    const fs = await memFs();
    const file = nextPath();
    await writeTable(fs, file, numbered(3));
    const err = await TableWriter.create(fs, file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).errno).toBe('EEXIST');
  });

  it('is closed after finish, and copies what it needs from reused arrays', async () => {
    const fs = await memFs();
    const file = nextPath();
    const w = await TableWriter.create(fs, file, { blockSize: 64 });
    const k = new Uint8Array(4);
    const v = new Uint8Array(8);
    for (let i = 0; i < 100; i++) {
      new DataView(k.buffer).setUint32(0, i);
      v.fill(i);
      await w.add({ key: k, seq: i, kind: 'put', value: v });
    }
    const props = await w.finish();
    expect(w.properties).toEqual(props);
    await expect(w.add({ key: bytes('z'), seq: 1, kind: 'put', value: bytes('') })).rejects.toThrow(ClosedError);
    await expect(w.finish()).rejects.toThrow(ClosedError);
    const reader = await TableReader.open(fs, file);
    const all = [...reader.iterator()];
    expect(all).toHaveLength(100);
    all.forEach((e, i) => {
      expect(new DataView(e.key.buffer, e.key.byteOffset).getUint32(0)).toBe(i);
      expect(hex(e.value)).toBe(hex(new Uint8Array(8).fill(i)));
    });
    await reader.close();
  });

  it('writes in large chunks through FileHandle.write, then datasyncs once', async () => {
    const fs = await memFs();
    const ops: string[] = [];
    const faulty = new FaultFileSystem(fs, (op) => {
      ops.push(op.kind);
      return undefined;
    });
    const file = nextPath();
    const props = await writeTable(faulty, file, numbered(20_000), { writeBufferSize: 64 * 1024 });
    const size = (await readFile(fs, file)).length;
    const writes = ops.filter((k) => k === 'write').length;
    expect(ops).not.toContain('writeSync');
    expect(writes).toBeLessThanOrEqual(Math.ceil(size / (64 * 1024)) + 1);
    expect(writes).toBeGreaterThan(1);
    expect(ops.filter((k) => k === 'datasync')).toHaveLength(1);
    expect(ops.lastIndexOf('datasync')).toBeGreaterThan(ops.lastIndexOf('write'));
    expect(props.entryCount).toBe(20_000);
  });

  it('fails with IoError when a write fails, stays failed, and abort removes the file', async () => {
    const fs = await memFs();
    const faulty = new FaultFileSystem(fs, failNth('write', 1, 'ENOSPC'));
    const file = nextPath();
    const w = await TableWriter.create(faulty, file, { writeBufferSize: 4096 });
    let err: unknown;
    try {
      for (const e of numbered(5000)) await w.add(e);
      await w.finish();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).errno).toBe('ENOSPC');
    await expect(w.add({ key: bytes('zzz'), seq: 1, kind: 'put', value: bytes('') })).rejects.toBe(err);
    await expect(w.finish()).rejects.toBe(err);
    await w.abort();
    await w.abort();
    expect(await fs.readdir('/db')).not.toContain(path.basename(file));
  });

  it('fails with IoError when datasync fails; writeTable removes the partial file', async () => {
    const fs = await memFs();
    const faulty = new FaultFileSystem(fs, failNth('datasync', 0, 'EIO'));
    const file = nextPath();
    const err = await writeTable(faulty, file, numbered(100)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).op).toBe('datasync');
    expect(await fs.readdir('/db')).not.toContain(path.basename(file));
  });

  it('survives a short write', async () => {
    const fs = await memFs();
    let cut = false;
    const faulty = new FaultFileSystem(fs, (op) => {
      if (op.kind === 'write' && !cut) {
        cut = true;
        return { shortWrite: 100 };
      }
      return undefined;
    });
    const file = nextPath();
    await writeTable(faulty, file, numbered(3000), { writeBufferSize: 16 * 1024 });
    const reader = await TableReader.open(fs, file);
    expect(drain(reader.iterator())).toEqual(numbered(3000).map(plain));
    await reader.close();
  });
});

describe('keys sort bytewise across the memtable and the table', () => {
  it('agrees on the order of tricky keys', async () => {
    const fs = await memFs();
    const keys = [[], [0], [0, 0], [0x7f], [0x80], [0xff], [0xff, 0xff], [0x61, 0xff], [0x62]].map((a) => Uint8Array.from(a));
    const m = new Memtable();
    keys.forEach((k, i) => {
      m.put({ key: k, seq: i, kind: 'put', value: k });
    });
    const file = nextPath();
    await writeTable(fs, file, m.freeze(), { blockSize: 64, restartInterval: 2 });
    const reader = await TableReader.open(fs, file);
    const sorted = [...keys].sort(compareKeys).map(hex);
    expect([...reader.iterator()].map((e) => hex(e.key))).toEqual(sorted);
    expect([...m.iterator()].map((e) => hex(e.key))).toEqual(sorted);
    await reader.close();
  });
});
