/**
 * The table inspector and checkTable (src/sstable/table-check.ts): a healthy table checks clean;
 * a damaged data block is reported with its exact index bounds while the other blocks read back
 * exactly; a damaged filter or properties block leaves every data block readable; a damaged
 * footer or index, or a cut, is a structure error; and for every flipped byte of a table the
 * check fails, and what it still reads is exactly what was written.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { CorruptionError, IoError } from '../../src/errors.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { compareKeys, type Entry } from '../../src/entry.js';
import { writeTable } from '../../src/sstable/index.js';
import { checkTable, TableInspector } from '../../src/sstable/table-check.js';
import { decodeFooter } from '../../src/sstable/footer.js';
import { FOOTER_SIZE } from '../../src/sstable/format.js';
import { bytes, hex, plain, readFile, writeFile, type PlainEntry } from './helpers.js';

function entriesOf(n: number): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    key: bytes(`k${String(i * 3).padStart(4, '0')}`),
    seq: 100 + i,
    kind: i % 9 === 4 ? ('delete' as const) : ('put' as const),
    value:
      i % 9 === 4
        ? new Uint8Array(0)
        : i % 2 === 0
          ? bytes(`compressible ${i} `.repeat(4))
          : Uint8Array.from({ length: 20 }, (_, j) => (i * 31 + j * 17) & 0xff),
    expiresAt: i % 7 === 0 ? 1_000_000 + i : undefined,
  }));
}

async function collect(fs: MemFileSystem, file: string): Promise<{ check: Awaited<ReturnType<typeof checkTable>>; read: PlainEntry[] }> {
  const read: PlainEntry[] = [];
  const check = await checkTable(fs, file, (entries) => {
    for (const e of entries) read.push(plain(e));
  });
  return { check, read };
}

describe('checkTable', () => {
  const entries = entriesOf(60);
  let original: Uint8Array;
  let blocks: { offset: number; size: number; keys: string[] }[];

  beforeAll(async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    const props = await writeTable(fs, '/db/t.sst', entries, { blockSize: 160, restartInterval: 3 });
    expect(props.dataBlockCount).toBeGreaterThan(6);
    original = await readFile(fs, '/db/t.sst');
    const t = await TableInspector.open(fs, '/db/t.sst');
    blocks = [];
    for (let i = 0; i < t.blockCount; i++) {
      const info = t.block(i);
      blocks.push({ offset: info.offset, size: info.size, keys: (await t.readBlock(i)).map((e) => hex(e.key)) });
    }
    await t.close();
  });

  async function withBytes(content: Uint8Array): Promise<MemFileSystem> {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    await writeFile(fs, '/db/t.sst', content);
    return fs;
  }

  it('a healthy table checks clean and every entry is visited in order', async () => {
    const { check, read } = await collect(await withBytes(original), '/db/t.sst');
    expect(check.ok).toBe(true);
    expect(check.structureError).toBeUndefined();
    expect(check.metaErrors).toEqual([]);
    expect(check.damagedBlocks).toEqual([]);
    expect(check.blocks).toBe(blocks.length);
    expect(check.readableEntries).toBe(entries.length);
    expect(read).toEqual(entries.map(plain));
    expect(hex(check.readableRange!.smallest)).toBe(hex(entries[0]!.key));
    expect(hex(check.readableRange!.largest)).toBe(hex(entries[entries.length - 1]!.key));
  });

  it('block bounds from the index hold every key of the block', async () => {
    const fs = await withBytes(original);
    const t = await TableInspector.open(fs, '/db/t.sst');
    for (let i = 0; i < t.blockCount; i++) {
      const info = t.block(i);
      for (const e of await t.readBlock(i)) {
        expect(compareKeys(e.key, info.upTo)).toBeLessThanOrEqual(0);
        if (info.after) expect(compareKeys(e.key, info.after)).toBeGreaterThan(0);
      }
    }
    expect(() => t.block(t.blockCount)).toThrow(RangeError);
    await t.close();
  });

  it('a damaged data block: reported with its bounds, the other blocks read back exactly', async () => {
    const b = 3;
    const damaged = new Uint8Array(original);
    damaged[blocks[b]!.offset + (blocks[b]!.size >> 1)]! ^= 0x10;
    const { check, read } = await collect(await withBytes(damaged), '/db/t.sst');
    expect(check.ok).toBe(false);
    expect(check.structureError).toBeUndefined();
    expect(check.damagedBlocks.map((d) => d.block.index)).toEqual([b]);
    expect(check.damagedBlocks[0]!.error).toBeInstanceOf(CorruptionError);
    expect(check.damagedBlocks[0]!.block.offset).toBe(blocks[b]!.offset);
    const lost = new Set(blocks[b]!.keys);
    expect(read).toEqual(entries.filter((e) => !lost.has(hex(e.key))).map(plain));
    expect(check.readableEntries).toBe(entries.length - lost.size);
    const info = check.damagedBlocks[0]!.block;
    for (const k of blocks[b]!.keys) {
      expect(compareKeys(Buffer.from(k, 'hex'), info.upTo)).toBeLessThanOrEqual(0);
      expect(compareKeys(Buffer.from(k, 'hex'), info.after!)).toBeGreaterThan(0);
    }
  });

  it('a damaged filter or properties block: a meta error, every data block still readable', async () => {
    const footer = decodeFooter(original.subarray(original.length - FOOTER_SIZE), original.length, 't');
    for (const h of [footer.filter, footer.properties]) {
      const damaged = new Uint8Array(original);
      damaged[h.offset + (h.size >> 1)]! ^= 0x01;
      const { check, read } = await collect(await withBytes(damaged), '/db/t.sst');
      expect(check.ok).toBe(false);
      expect(check.structureError).toBeUndefined();
      expect(check.metaErrors.length).toBeGreaterThan(0);
      expect(check.damagedBlocks).toEqual([]);
      expect(read).toEqual(entries.map(plain));
    }
  });

  it('a damaged index or footer, or a cut: a structure error, no block located', async () => {
    const footer = decodeFooter(original.subarray(original.length - FOOTER_SIZE), original.length, 't');
    const cases: [string, Uint8Array][] = [];
    const ix = new Uint8Array(original);
    ix[footer.index.offset + 2]! ^= 0x04;
    cases.push(['index', ix]);
    const ft = new Uint8Array(original);
    ft[original.length - 20]! ^= 0x01;
    cases.push(['footer', ft]);
    for (const cut of [0, 10, original.length >> 1, original.length - 1]) cases.push([`cut at ${cut}`, original.subarray(0, cut)]);
    for (const [what, content] of cases) {
      const { check, read } = await collect(await withBytes(content), '/db/t.sst');
      expect(check.ok, what).toBe(false);
      expect(check.structureError, what).toBeInstanceOf(CorruptionError);
      expect(check.blocks, what).toBe(0);
      expect(read, what).toEqual([]);
    }
    // The properties survive a damaged index: they still give the key range.
    const { check } = await collect(await withBytes(ix), '/db/t.sst');
    expect(hex(check.properties!.smallestKey!)).toBe(hex(entries[0]!.key));
  });

  it('every flipped byte fails the check; what is still read is exactly what was written', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    const want = new Map(entries.map((e) => [hex(e.key), plain(e)]));
    for (let i = 0; i < original.length; i++) {
      const damaged = new Uint8Array(original);
      damaged[i]! ^= 1 << (i % 8);
      const file = `/db/f${i}.sst`;
      await writeFile(fs, file, damaged);
      const read: PlainEntry[] = [];
      const check = await checkTable(fs, file, (es) => {
        for (const e of es) read.push(plain(e));
      });
      if (check.ok) throw new Error(`flip at byte ${i} went unnoticed`);
      for (const e of read) expect(e, `flip at ${i}`).toEqual(want.get(e.key));
      await fs.unlink(file);
    }
  });

  it('a missing file is an IoError (ENOENT), not damage', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    const err = await checkTable(fs, '/db/none.sst').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).errno).toBe('ENOENT');
  });
});
