/**
 * A table damaged on its way to the disk (here: a file system that flips a bit of what a table
 * writer hands it, after the writer computed its checksums) must never be installed. The flush
 * or compaction that wrote it reads it back before installing it, fails with `CorruptionError`
 * naming the file, removes it, and the data it would have replaced (the memtable and its WAL,
 * or the compaction's input tables) stays: reads go on seeing every write, and a reopen on a
 * healthy file system has them all. In both background modes.
 */
import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../../src/errors.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { type FileHandle, type FileSystem, requiredOperations } from '../../src/fs/types.js';
import { DB } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import { TableReader, writeTable } from '../../src/sstable/index.js';
import { DIR, diskProblems, openOn, scan, tableFiles } from './helpers/harness.js';

/** `mem`, except that while `armed()` the first byte of each write to a new table is flipped. */
function bitFlipping(mem: MemFileSystem, armed: () => boolean): { fs: FileSystem; flipped: string[] } {
  const flipped: string[] = [];
  const fs: FileSystem = {
    ...requiredOperations(mem),
    open: async (file, mode) => {
      const h = await mem.open(file, mode);
      if (mode !== 'create' || !file.endsWith('.sst') || !armed()) return h;
      const write: FileHandle['write'] = (buffer, offset, length, position) => {
        const copy = buffer.slice(offset, offset + length);
        copy[0]! ^= 0x40;
        flipped.push(file);
        return h.write(copy, 0, length, position);
      };
      return {
        path: h.path,
        read: (...a) => h.read(...a),
        readSync: (...a) => h.readSync(...a),
        write,
        writeSync: (...a) => h.writeSync(...a),
        datasync: () => h.datasync(),
        truncate: (size) => h.truncate(size),
        size: () => h.size(),
        close: () => h.close(),
      };
    },
  };
  return { fs, flipped };
}

const key = (i: number): string => `key${String(i).padStart(5, '0')}`;
const value = (i: number, round: number): string => `value ${i} of round ${round} `.padEnd(60, '.');

describe.each(['worker', 'inline'] as const)('a table damaged as it is written (background %s)', (background) => {
  const options: DBOptions = { fsync: 'os', valueEncoding: 'utf8', background, memtableSize: 64 * 1024, tableFileSize: 16 * 1024 };

  it('fails the flush, is removed, and the memtable and WAL keep every write', async () => {
    const mem = new MemFileSystem();
    const { fs, flipped } = bitFlipping(mem, () => true);
    const db = await DB.open<string, string>(DIR, { ...options, fs });
    for (let i = 0; i < 200; i++) await db.put(key(i), value(i, 0));
    const err = await db.flush().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CorruptionError);
    expect(flipped.length).toBeGreaterThan(0);
    expect(String(err)).toContain(flipped[0]!.slice(DIR.length + 1));
    expect(db.stats().backgroundError).toBe(err);
    // Reads still see every write (the frozen memtable was kept), and no damaged table stays.
    expect(await db.get(key(7))).toBe(value(7, 0));
    expect((await scan(db)).length).toBe(200);
    expect(tableFiles(mem)).toEqual([]);
    await db.close().catch(() => undefined);

    const { db: again } = await openOn<string, string>(mem, options);
    const all = await scan(again);
    expect(all.length).toBe(200);
    expect(all[199]).toEqual([key(199), value(199, 0)]);
    await again.flush();
    await again.close();
    expect(await diskProblems(mem)).toEqual([]);
  });

  it('fails the compaction, and its input tables stay installed and readable', async () => {
    const mem = new MemFileSystem();
    let armed = false;
    const { fs, flipped } = bitFlipping(mem, () => armed);
    const db = await DB.open<string, string>(DIR, { ...options, fs });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 300; i++) await db.put(key(i), value(i, round));
      await db.flush();
    }
    const before = tableFiles(mem);
    expect(before.length).toBeGreaterThan(1);
    armed = true;
    await expect(db.compact()).rejects.toBeInstanceOf(CorruptionError);
    expect(flipped.length).toBeGreaterThan(0);
    // The inputs were not deleted; the damaged outputs were.
    expect(tableFiles(mem).sort()).toEqual([...before].sort());
    const all = await scan(db);
    expect(all.length).toBe(300);
    expect(all[5]).toEqual([key(5), value(5, 2)]);
    await db.close().catch(() => undefined);

    const { db: again } = await openOn<string, string>(mem, options);
    expect(await scan(again)).toEqual(all);
    await again.compact();
    expect(await scan(again)).toEqual(all);
    await again.close();
    expect(await diskProblems(mem)).toEqual([]);
  });
});

describe('TableReader.verifyChecksums', () => {
  it('passes an intact table, and names the data block whose byte was flipped', async () => {
    const mem = new MemFileSystem();
    await mem.mkdir('/t');
    const entries = Array.from({ length: 2000 }, (_, i) => ({
      key: Buffer.from(key(i)),
      seq: i + 1,
      kind: 'put' as const,
      value: Buffer.from(value(i, 0)),
      expiresAt: undefined,
    }));
    await writeTable(mem, '/t/1.sst', entries, { compression: 'none' });
    const intact = await TableReader.open(mem, '/t/1.sst');
    await intact.verifyChecksums();
    const dataBytes = intact.properties.dataBytes;
    await intact.close();
    expect(dataBytes).toBeGreaterThan(20_000);

    // Flip one byte in the middle of the data blocks: open() (meta blocks) still succeeds.
    const h = await mem.open('/t/1.sst', 'readwrite');
    const at = Math.floor(dataBytes / 2);
    const one = new Uint8Array(1);
    h.readSync(one, 0, 1, at);
    one[0]! ^= 0x01;
    await h.write(one, 0, 1, at);
    await h.close();
    const damaged = await TableReader.open(mem, '/t/1.sst');
    const err = await damaged.verifyChecksums().then(
      () => undefined,
      (e: unknown) => e,
    );
    await damaged.close();
    expect(err).toBeInstanceOf(CorruptionError);
    const where = (err as CorruptionError).offset;
    expect(where).toBeLessThanOrEqual(at);
    expect(where).toBeGreaterThan(at - 8192);
    expect(String(err)).toMatch(/block checksum mismatch/);
  });
});
