import { beforeAll, describe, expect, it } from 'vitest';
import { CorruptionError } from '../../src/errors.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import type { Entry } from '../../src/entry.js';
import { BlockCache, TableReader, writeTable } from '../../src/sstable/index.js';
import { Block } from '../../src/sstable/block.js';
import { decodeFooter } from '../../src/sstable/footer.js';
import { BlockType, FOOTER_SIZE } from '../../src/sstable/format.js';
import { TableIndex } from '../../src/sstable/index-block.js';
import { unsealBlock } from '../../src/sstable/trailer.js';
import { bytes, drain, plain, readFile, writeFile } from './helpers.js';

/**
 * A small table with several data blocks, both raw and LZ4-compressed ones, tombstones and
 * expiries: every structure of the format appears in it.
 */
function smallTable(): Entry[] {
  return Array.from({ length: 40 }, (_, i) => ({
    key: bytes(`k${String(i * 3).padStart(3, '0')}`),
    seq: 100 + i,
    kind: i % 9 === 4 ? ('delete' as const) : ('put' as const),
    value:
      i % 9 === 4
        ? new Uint8Array(0)
        : i < 20
          ? bytes(`compressible ${i} `.repeat(6))
          : Uint8Array.from({ length: 24 }, (_, j) => (i * 31 + j * 17) & 0xff),
    expiresAt: i % 7 === 0 ? 1_000_000 + i : undefined,
  }));
}

const ABSENT = [bytes(''), bytes('k001'), bytes('k050'), bytes('k999'), bytes('zzz')];

interface Outcome {
  openFailed: boolean;
  detected: boolean;
}

/**
 * Opens `file` and reads everything every way; asserts that every read either returns exactly
 * the model's answer or throws a CorruptionError naming `file` and a range holding `damagedAt`.
 */
async function readAll(fs: MemFileSystem, file: string, entries: Entry[], damagedAt: number): Promise<Outcome> {
  let detected = false;
  const expectCorruption = (err: unknown): void => {
    if (!(err instanceof CorruptionError)) throw err;
    expect(err.file).toBe(file);
    if (damagedAt >= 0) {
      expect(damagedAt).toBeGreaterThanOrEqual(err.offset);
      expect(damagedAt).toBeLessThan(err.offset + (err.unreadableBytes ?? Infinity));
    }
    detected = true;
  };
  let reader: TableReader;
  try {
    reader = await TableReader.open(fs, file, { cache: new BlockCache(1 << 20) });
  } catch (err) {
    expectCorruption(err);
    return { openFailed: true, detected };
  }
  try {
    for (const e of entries) {
      try {
        expect(plain(reader.get(e.key)!)).toEqual(plain(e));
      } catch (err) {
        expectCorruption(err);
      }
    }
    for (const k of ABSENT) {
      try {
        expect(reader.get(k)).toBeUndefined();
      } catch (err) {
        expectCorruption(err);
      }
    }
    for (const reverse of [false, true]) {
      // A fresh cache: the scan must read every block itself.
      try {
        const got = drain(reader.iterator({ reverse, fillCache: false }));
        expect(got).toEqual((reverse ? [...entries].reverse() : entries).map(plain));
      } catch (err) {
        expectCorruption(err);
      }
    }
  } finally {
    await reader.close();
  }
  return { openFailed: false, detected };
}

describe('corruption', () => {
  const entries = smallTable();
  let original: Uint8Array;

  beforeAll(async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    const props = await writeTable(fs, '/db/t.sst', entries, { blockSize: 160, restartInterval: 3 });
    expect(props.dataBlockCount).toBeGreaterThan(5);
    original = await readFile(fs, '/db/t.sst');
    const reader = await TableReader.open(fs, '/db/t.sst');
    expect(drain(reader.iterator())).toEqual(entries.map(plain));
    await reader.close();
    // Both block types must be present for the sweep to mean something.
    const footer = decodeFooter(original.subarray(original.length - FOOTER_SIZE), original.length, 't');
    const ix = footer.index;
    const where = { file: 't', offset: ix.offset };
    const indexContents = unsealBlock(original.subarray(ix.offset, ix.offset + ix.size + 5), where);
    const index = TableIndex.decode(new Block(indexContents, where), props.dataBytes);
    const types = new Set<number>();
    for (let b = 0; b < index.count; b++) types.add(original[index.offset(b) + index.size(b)]!);
    expect([...types].sort()).toEqual([BlockType.NONE, BlockType.LZ4]);
    expect(original.length).toBeLessThan(4096);
  });

  it('reads the undamaged table completely', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    await writeFile(fs, '/db/t.sst', original);
    expect(await readAll(fs, '/db/t.sst', entries, -1)).toEqual({ openFailed: false, detected: false });
  });

  it('detects a damaged byte anywhere: the affected reads throw CorruptionError, never a wrong value', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    let openFailures = 0;
    for (let i = 0; i < original.length; i++) {
      const damaged = new Uint8Array(original);
      damaged[i]! ^= 1 << (i % 8); // a single-bit flip, a different bit for neighbouring bytes
      const file = `/db/flip-${i}.sst`;
      await writeFile(fs, file, damaged);
      const outcome = await readAll(fs, file, entries, i);
      if (!outcome.detected) throw new Error(`flip at byte ${i} of ${original.length} went unnoticed`);
      if (outcome.openFailed) openFailures++;
      await fs.unlink(file);
    }
    // Filter, properties, index and footer are verified at open; data blocks only when read.
    expect(openFailures).toBeGreaterThan(FOOTER_SIZE);
    expect(openFailures).toBeLessThan(original.length);
  });

  it('detects whole-byte damage too (0xff xor, zeroed bytes)', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    for (let i = 0; i < original.length; i += 3) {
      for (const damage of [(b: number) => b ^ 0xff, () => 0]) {
        const damaged = new Uint8Array(original);
        damaged[i] = damage(damaged[i]!);
        if (damaged[i] === original[i]) continue;
        const file = `/db/d-${i}.sst`;
        await writeFile(fs, file, damaged);
        expect((await readAll(fs, file, entries, i)).detected).toBe(true);
        await fs.unlink(file);
      }
    }
  });

  it('refuses a truncated file at open, wherever it was cut', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    const n = original.length;
    const cuts = [0, 1, 10, FOOTER_SIZE - 1, FOOTER_SIZE, 100, n >> 1];
    cuts.push(n - FOOTER_SIZE - 1, n - FOOTER_SIZE, n - 8, n - 1);
    for (const cut of cuts) {
      const file = `/db/cut-${cut}.sst`;
      await writeFile(fs, file, original.subarray(0, cut));
      const err = await TableReader.open(fs, file).catch((e: unknown) => e);
      expect(err, `cut at ${cut}`).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file).toBe(file);
    }
  });

  it('refuses a file with bytes appended, or zero-filled, or of another format', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    const cases: [string, Uint8Array][] = [
      ['appended', Uint8Array.from([...original, 1, 2, 3])],
      ['zeros', new Uint8Array(original.length)],
      ['text', bytes('not a table at all, just some text that is long enough to hold a footer').subarray(0)],
    ];
    for (const [name, content] of cases) {
      await writeFile(fs, `/db/${name}.sst`, content);
      await expect(TableReader.open(fs, `/db/${name}.sst`)).rejects.toThrow(CorruptionError);
    }
  });

  it('reports a data block cut off by a file that shrank after open', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    await writeFile(fs, '/db/t.sst', original);
    const reader = await TableReader.open(fs, '/db/t.sst');
    const h = await fs.open('/db/t.sst', 'readwrite');
    await h.truncate(100);
    await h.close();
    expect(() => reader.get(entries[39]!.key)).toThrow(CorruptionError);
    expect(() => drain(reader.iterator())).toThrow(/truncated/);
    await reader.close();
  });
});
