/**
 * A read-only open (issue #9): it reads a DB on media that refuses every write (no lock file, no
 * WAL truncation, no leftover cleanup), or one that another handle holds open and keeps writing,
 * and refuses every write with `ReadOnlyError`, changing nothing.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DB } from '../../src/db/index.js';
import { InvalidConfigError, IoError, ReadOnlyError } from '../../src/errors.js';
import { FaultFileSystem } from '../../src/fs/fault.js';
import type { FileSystem, OpenMode } from '../../src/fs/types.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { nodeFileSystem } from '../../src/fs/node.js';
import { DIR, ProcessFs } from './helpers/harness.js';

/**
 * A file system on read-only media: every mutating call, taking a lock and opening a file for
 * anything but reading fail with EROFS, and are recorded.
 */
function readOnlyMedia(inner: FileSystem): { fs: FaultFileSystem; attempts: string[] } {
  const attempts: string[] = [];
  const open = (file: string, mode: OpenMode): ReturnType<FileSystem['open']> => {
    if (mode !== 'read') {
      attempts.push(`open ${mode} ${file}`);
      return Promise.reject(Object.assign(new Error(`EROFS: open ${file}`), { code: 'EROFS' }));
    }
    return inner.open(file, mode);
  };
  const guarded = new Proxy(inner, {
    get: (target, name) => (name === 'open' ? open : (Reflect.get(target, name) as (...a: unknown[]) => unknown).bind(target)),
  });
  const fs = new FaultFileSystem(guarded, (op) => {
    if (!op.mutating && op.kind !== 'lock') return undefined;
    attempts.push(`${op.kind} ${op.path}`);
    return { error: 'EROFS' };
  });
  return { fs, attempts };
}

async function files(dir: string): Promise<string> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(`${path.relative(dir, p)}:${(await fsp.readFile(p)).toString('base64')}`);
      else out.push(`${path.relative(dir, p)}:(${e.isSocket() ? 'socket' : 'other'})`);
    }
  };
  await walk(dir);
  return out.sort().join('\n');
}

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sediment-ro-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const SMALL = {
  memtableSize: 8 * 1024,
  tableFileSize: 8 * 1024,
  walSegmentSize: 8 * 1024,
  l0CompactionTrigger: 2,
  fsync: 'os',
  valueEncoding: 'utf8',
} as const;

async function filled(): Promise<Map<string, string>> {
  const model = new Map<string, string>();
  const db = await DB.open(dir, SMALL);
  for (let i = 0; i < 600; i++) {
    const k = `k${String(i % 400).padStart(4, '0')}`;
    const v = `v${i}-${'x'.repeat(30)}`;
    await db.put(k, v);
    model.set(k, v);
  }
  await db.delete('k0001');
  model.delete('k0001');
  await db.close();
  return model;
}

describe('a read-only open', () => {
  it('on media that refuses every write: reads everything, writes nothing, refuses writes with READ_ONLY', async () => {
    const model = await filled();
    const before = await files(dir);
    const { fs, attempts } = readOnlyMedia(nodeFileSystem);
    const db = await DB.open(dir, { ...SMALL, fs, readOnly: true });
    expect(Object.fromEntries(await db.iterator().all())).toEqual(Object.fromEntries([...model].sort()));
    expect(await db.get('k0002')).toBe(model.get('k0002'));
    expect(await db.get('k0001')).toBeUndefined();
    for (const attempt of [
      () => db.put('a', 'b'),
      () => db.delete('k0002'),
      () => db.batch([{ type: 'put', key: 'a', value: 'b' }]),
      () => db.flush(),
      () => db.compact(),
    ]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReadOnlyError);
      expect(err).toMatchObject({ code: 'READ_ONLY' });
    }
    await db.sync();
    for await (const _ of db.wal.readFrom({ segmentId: 0, offset: 0 })) break;
    await db.close();
    expect(attempts).toEqual([]);
    expect(await files(dir)).toBe(before);
  });

  it('a torn WAL tail is read past, not truncated', async () => {
    const model = await filled();
    const walDir = path.join(dir, 'wal');
    const segs = (await fsp.readdir(walDir)).filter((n) => n.endsWith('.wal')).sort();
    const last = path.join(walDir, segs[segs.length - 1]!);
    await fsp.appendFile(last, Buffer.from([7, 7, 7, 7, 7, 7, 7])); // a torn frame header
    const before = await files(dir);
    const db = await DB.open(dir, { ...SMALL, readOnly: true });
    expect((await db.iterator().all()).length).toBe(model.size);
    expect(db.stats().walRecovery.bytesTruncated).toBe(7);
    await db.close();
    expect(await files(dir)).toBe(before);
  });

  it('while another handle holds the DB and keeps writing, flushing and compacting', async () => {
    const writer = await DB.open(dir, SMALL);
    for (let i = 0; i < 300; i++) await writer.put(`k${String(i).padStart(4, '0')}`, `first-${i}`);
    await writer.flush();
    for (let i = 300; i < 350; i++) await writer.put(`k${String(i).padStart(4, '0')}`, `first-${i}`);
    // A second writer is LOCKED; a reader is not.
    await expect(DB.open(dir, SMALL)).rejects.toMatchObject({ code: 'LOCKED' });
    const reader = await DB.open(dir, { ...SMALL, readOnly: true });
    expect(await reader.get('k0349')).toBe('first-349');
    const it = reader.iterator();
    expect(await it.next()).toEqual(['k0000', 'first-0']);
    // The writer rewrites everything and compacts: every table the reader holds is deleted.
    for (let i = 0; i < 350; i++) await writer.put(`k${String(i).padStart(4, '0')}`, `second-${i}`);
    await writer.compact();
    // The reader still reads the DB as it was when it opened.
    let n = 1;
    for await (const [, v] of it) {
      expect(v).toMatch(/^first-/);
      n++;
    }
    expect(n).toBe(350);
    expect(await reader.get('k0100')).toBe('first-100');
    await reader.close();
    // A new reader sees the writer's state.
    const again = await DB.open(dir, { ...SMALL, readOnly: true });
    expect(await again.get('k0100')).toBe('second-100');
    await again.close();
    await writer.close();
  });

  it('of a directory with no DB is an error and creates nothing', async () => {
    const mem = new MemFileSystem();
    const err = await DB.open(DIR, { fs: new ProcessFs(mem), readOnly: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect(err).toMatchObject({ errno: 'ENOENT' });
    expect(mem.listFiles()).toEqual([]);
  });

  it("with recovery: 'salvage' is refused (salvage moves files), and readOnly must be a boolean", async () => {
    await filled();
    await expect(DB.open(dir, { ...SMALL, readOnly: true, recovery: 'salvage' })).rejects.toBeInstanceOf(InvalidConfigError);
    await expect(DB.open(dir, { ...SMALL, readOnly: 'yes' as unknown as boolean })).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      option: 'readOnly',
    });
  });

  it('with another valueEncoding than the DB was made with is INVALID_CONFIG', async () => {
    await filled();
    await expect(DB.open(dir, { ...SMALL, valueEncoding: 'json', readOnly: true })).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      option: 'valueEncoding',
    });
  });
});
