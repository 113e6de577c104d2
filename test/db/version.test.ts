import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import type { Entry } from '../../src/entry.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { BlockCache, TableReader, writeTable } from '../../src/sstable/index.js';
import { type LiveTable, Version } from '../../src/db/version.js';

const key = (n: number, prefix = '0000000000'): Buffer => Buffer.from(`${prefix}${String(n).padStart(6, '0')}`, 'latin1');
const hex = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString('hex'));

/** A table of `entries` (sorted) as a version holds it. */
async function table(fs: MemFileSystem, fileNumber: number, entries: Entry[], cache: BlockCache): Promise<LiveTable> {
  const path = `/db/${fileNumber}.sst`;
  const props = await writeTable(fs, path, entries, { blockSize: 256 });
  const reader = await TableReader.open(fs, path, { cache, fileNumber });
  const meta = {
    fileNumber,
    size: reader.fileSize,
    smallest: props.smallestKey!,
    largest: props.largestKey!,
    minSeq: props.minSeq,
    maxSeq: props.maxSeq,
    entries: props.entryCount,
  };
  return { meta, reader, refs: 0 };
}

const put = (k: Uint8Array, seq: number): Entry => ({ key: k, seq, kind: 'put', value: Buffer.from(`v${seq}`), expiresAt: undefined });

describe('Version.get', () => {
  // Sorted levels cut into tables at random points, keys with a long common prefix; an L0 table
  // over part of the range. Each key's newest entry wins; keys between, below and above the
  // tables' ranges are absent.
  test.prop(
    [
      fc.uniqueArray(fc.nat(400), { minLength: 1, maxLength: 120 }),
      fc.uniqueArray(fc.nat(400), { maxLength: 60 }),
      fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 8 }),
      fc.uniqueArray(fc.nat(400), { maxLength: 20 }),
    ],
    { numRuns: 25 },
  )('finds the newest entry of each key across levels, and nothing else', async (deep, mid, cuts, l0) => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    const cache = new BlockCache(1 << 20);
    let fileNumber = 1;
    const model = new Map<number, number>();
    const level = async (nums: number[], seqBase: number): Promise<LiveTable[]> => {
      const sorted = [...nums].sort((a, b) => a - b);
      const tables: LiveTable[] = [];
      for (let at = 0, c = 0; at < sorted.length; c++) {
        const n = cuts[c % cuts.length]!;
        const part = sorted.slice(at, at + n);
        at += n;
        for (const x of part) model.set(x, seqBase + x);
        tables.push(
          await table(
            fs,
            fileNumber++,
            part.map((x) => put(key(x), seqBase + x)),
            cache,
          ),
        );
      }
      return tables;
    };
    // Oldest first, so that the model keeps the newest.
    const l2 = await level(deep, 1000);
    const l1 = await level(mid, 2000);
    const l0tables =
      l0.length === 0
        ? []
        : [
            await table(
              fs,
              fileNumber++,
              [...l0].sort((a, b) => a - b).map((x) => put(key(x), 3000 + x)),
              cache,
            ),
          ];
    for (const x of l0) model.set(x, 3000 + x);
    const version = new Version([l0tables, l1, l2, [], [], [], []], () => undefined);
    for (let x = -1; x <= 401; x++) {
      const e = version.get(x < 0 ? Buffer.alloc(0) : key(x));
      expect(e?.seq, `key ${x}`).toBe(model.get(x));
      if (e) expect(hex(e.value)).toBe(hex(Buffer.from(`v${e.seq}`)));
    }
    // Keys that sort between the numbered ones, or past them.
    for (const probe of [key(7, '000000000'), key(7, '00000000000'), Buffer.from('1'), Buffer.from('0000000000000000\xff', 'latin1')]) {
      expect(version.get(probe)).toBeUndefined();
    }
    for (const t of [...l0tables, ...l1, ...l2]) await t.reader.close();
  });

  it("finds a sorted level's table by key range, also for keys outside the prefix the tables share", async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    const cache = new BlockCache(1 << 20);
    const b = (s: string): Buffer => Buffer.from(s, 'latin1');
    // Largest keys share "abz"; the level's keys share only "ab".
    const l1 = [
      await table(fs, 1, [put(b('ab0'), 1), put(b('abz1'), 2)], cache),
      await table(fs, 2, [put(b('abz15'), 3), put(b('abz2'), 4)], cache),
    ];
    const version = new Version([[], l1, [], [], [], [], []], () => undefined);
    const seqs = (keys: string[]) => keys.map((k) => version.get(b(k))?.seq);
    expect(seqs(['ab0', 'abz1', 'abz15', 'abz2'])).toEqual([1, 2, 3, 4]);
    expect(seqs(['aaz', 'aa', 'a', '', 'ab', 'ab00', 'abz', 'abz10', 'abz3', 'ac', 'b', 'abz1\0'])).toEqual(new Array(12).fill(undefined));
    // Only the absent keys within a table's range reach a table: ab00 and abz (table 1).
    expect([l1[0]!.reader.stats.gets, l1[1]!.reader.stats.gets]).toEqual([2 + 2, 2]);
    for (const t of l1) await t.reader.close();
  });

  it('asks the L0 tables whose range holds the key, newest first, then the deeper levels', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    const cache = new BlockCache(1 << 20);
    const l0 = [await table(fs, 1, [put(key(5), 30)], cache), await table(fs, 2, [put(key(1), 20), put(key(9), 21)], cache)];
    const l1 = [await table(fs, 3, [put(key(1), 10), put(key(9), 11)], cache)];
    const version = new Version([l0, l1, [], [], [], [], []], () => undefined);
    expect(version.get(key(1))?.seq).toBe(20);
    expect(version.get(key(5))?.seq).toBe(30);
    expect(version.get(key(4))).toBeUndefined();
    expect(l0[0]!.reader.stats.gets).toBe(1); // key 5 only
    expect(l0[1]!.reader.stats.gets).toBe(2); // keys 1 and 4
    expect(l1[0]!.reader.stats.gets).toBe(1); // key 4
    for (const t of [...l0, ...l1]) await t.reader.close();
  });
});
