/**
 * Resources (issue #9): a closed DB holds no file descriptor, whatever was left unfinished (an
 * iterator pinning obsolete tables, a flush whose manifest install failed), and errors keep
 * their meaning on the way up (an internal error is not an I/O error; `errnoOf` of an `IoError`
 * is its errno). File descriptors are counted in /proc/self/fd, on the real file system.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { readdirSync } from 'node:fs';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BackgroundWorker } from '../../src/db/background.js';
import { DB } from '../../src/db/index.js';
import { ClosedError, IoError, errnoOf, ioStep } from '../../src/errors.js';
import { FaultFileSystem } from '../../src/fs/fault.js';
import { nodeFileSystem } from '../../src/fs/node.js';

const hasProcFd = (() => {
  try {
    readdirSync('/proc/self/fd');
    return true;
  } catch {
    return false;
  }
})();

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sediment-fd-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const SMALL = {
  memtableSize: 16 * 1024,
  tableFileSize: 8 * 1024,
  levelBaseSize: 32 * 1024,
  l0CompactionTrigger: 2,
  walSegmentSize: 16 * 1024,
  fsync: 'os',
} as const;

describe.skipIf(!hasProcFd)('file descriptors', () => {
  // The background worker is a thread with descriptors of its own (its message ports), and it
  // stays for the life of the process once started: start it before counting.
  beforeAll(() => BackgroundWorker.shared().warm());

  it('close releases every table reader, also those an unfinished iterator pins after compactions made them obsolete', async () => {
    const base = openFds();
    const db = await DB.open<string, string>(dir, { ...SMALL, valueEncoding: 'utf8' });
    for (let i = 0; i < 3000; i++) await db.put(`k${String(i).padStart(5, '0')}`, 'v'.repeat(40));
    await db.flush();
    const it = db.iterator();
    expect(await it.next()).toBeDefined(); // pins the current tables
    for (let i = 0; i < 3000; i++) await db.put(`k${String(i).padStart(5, '0')}`, 'w'.repeat(40));
    await db.compact(); // every table the iterator pins is now obsolete, kept open for it
    const during = openFds();
    expect(during).toBeGreaterThan(base);
    await db.close();
    expect(openFds()).toBe(base);
    await expect(it.next()).rejects.toBeInstanceOf(ClosedError);
    expect(openFds()).toBe(base);
  });

  it('a snapshot keeps its tables open across a compaction and releases them when closed; one left open is released by close', async () => {
    const base = openFds();
    const db = await DB.open<string, string>(dir, { ...SMALL, valueEncoding: 'utf8' });
    for (let i = 0; i < 3000; i++) await db.put(`k${String(i).padStart(5, '0')}`, 'v'.repeat(40));
    await db.flush();
    const snap = db.snapshot();
    const tablesAtSnapshot = (await fsp.readdir(dir)).filter((n) => n.endsWith('.sst'));
    for (let i = 0; i < 3000; i++) await db.put(`k${String(i).padStart(5, '0')}`, 'w'.repeat(40));
    await db.compact();
    // The compaction replaced the tables; the snapshot still holds (and reads) the old ones.
    const held = openFds();
    expect(await db.get('k00007', { snapshot: snap })).toBe('v'.repeat(40));
    expect(await db.get('k00007')).toBe('w'.repeat(40));
    snap.close();
    await new Promise((r) => setTimeout(r, 50)); // the obsolete tables' deletion runs in the background
    expect(openFds()).toBeLessThan(held);
    const left = (await fsp.readdir(dir)).filter((n) => n.endsWith('.sst'));
    for (const t of tablesAtSnapshot) expect(left).not.toContain(t);
    const open = db.snapshot(); // left open: close releases it
    await db.close();
    expect(open.closed).toBe(true);
    expect(openFds()).toBe(base);
  });

  it('a flush whose manifest install fails leaves no reader open once the DB is closed', async () => {
    const base = openFds();
    const ffs = new FaultFileSystem(nodeFileSystem);
    const db = await DB.open<string, string>(dir, { ...SMALL, valueEncoding: 'utf8', fs: ffs });
    for (let i = 0; i < 100; i++) await db.put(`k${i}`, 'v'.repeat(40));
    // Fail the manifest write of the flush: the new table is written, synced and opened first.
    ffs.injector = (op) => (op.kind === 'open' && path.basename(op.path).startsWith('MANIFEST-') ? { error: 'EIO' } : undefined);
    await expect(db.flush()).rejects.toBeInstanceOf(IoError);
    ffs.injector = undefined;
    await db.close();
    expect(openFds()).toBe(base);
    // The table file that no manifest names is deleted at the next open, and nothing was lost.
    const again = await DB.open<string, string>(dir, { ...SMALL, valueEncoding: 'utf8' });
    expect(await again.get('k99')).toBe('v'.repeat(40));
    expect((await again.iterator().all()).length).toBe(100);
    await again.close();
    expect(openFds()).toBe(base);
  });

  it('a failed open releases what it opened', async () => {
    const base = openFds();
    const db = await DB.open<string, string>(dir, { ...SMALL, valueEncoding: 'utf8' });
    for (let i = 0; i < 2000; i++) await db.put(`k${i}`, 'v'.repeat(40));
    await db.flush();
    await db.close();
    const tables = (await fsp.readdir(dir)).filter((n) => n.endsWith('.sst')).sort();
    expect(tables.length).toBeGreaterThan(1);
    await fsp.rm(path.join(dir, tables[tables.length - 1]!));
    await expect(DB.open(dir, { ...SMALL, valueEncoding: 'utf8' })).rejects.toMatchObject({ code: 'CORRUPTION' });
    expect(openFds()).toBe(base);
  });
});

describe('errors keep their meaning', () => {
  it('ioStep passes sediment errors and errors without an errno through; OS errors become IoError', async () => {
    const closed = new ClosedError('the thing');
    await expect(ioStep('read', '/f', () => Promise.reject(closed))).rejects.toBe(closed);
    const bug = new TypeError('x is not a function');
    await expect(ioStep('read', '/f', () => Promise.reject(bug))).rejects.toBe(bug);
    const eio = Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
    const wrapped = await ioStep('read', '/f', () => Promise.reject(eio)).catch((e: unknown) => e);
    expect(wrapped).toBeInstanceOf(IoError);
    expect(wrapped).toMatchObject({ code: 'IO', errno: 'EIO', op: 'read', file: '/f' });
    expect(errnoOf(wrapped)).toBe('EIO');
    expect(errnoOf(new IoError('write', '/f', new Error('no code')))).toBeUndefined();
  });
});

describe('memory the DB accounts for (stats().memory)', () => {
  it('holds at most maxFrozenMemtables frozen memtables, and a block cache within its budget', async () => {
    const db = await DB.open<string, string>(dir, {
      memtableSize: 16 * 1024,
      maxFrozenMemtables: 1,
      blockCacheSize: 64 * 1024,
      valueEncoding: 'utf8',
      background: 'inline',
    });
    const value = 'v'.repeat(100);
    let maxFrozen = 0;
    let sawFrozenBytes = false;
    const check = (): void => {
      const s = db.stats();
      maxFrozen = Math.max(maxFrozen, s.frozenMemtables);
      expect(s.memory.memtableBytes).toBe(s.memtable.bytes);
      if (s.frozenMemtables === 0) expect(s.memory.frozenMemtableBytes).toBe(0);
      else {
        sawFrozenBytes = true;
        // One memtable's worth each: frozen past the threshold by at most the batch that crossed it.
        expect(s.memory.frozenMemtableBytes).toBeGreaterThan(0);
        expect(s.memory.frozenMemtableBytes).toBeLessThanOrEqual(s.frozenMemtables * 2 * 16 * 1024);
      }
      expect(s.memory.blockCacheBytes).toBe(s.blockCache.usedBytes);
      expect(s.memory.blockCacheBytes).toBeLessThanOrEqual(64 * 1024);
    };
    // 32 writers at once: writes keep arriving while flushes run.
    await Promise.all(
      Array.from({ length: 32 }, async (_, w) => {
        for (let i = 0; i < 100; i++) {
          await db.put(`k${String(i * 32 + w).padStart(6, '0')}`, value);
          check();
        }
      }),
    );
    await db.flush();
    expect(maxFrozen).toBe(1);
    expect(sawFrozenBytes).toBe(true);
    expect(db.stats().memory.tableReaderBytes).toBeGreaterThan(0);
    for (let i = 0; i < 3200; i++) {
      expect(await db.get(`k${String(i).padStart(6, '0')}`)).toBe(value);
      if (i % 100 === 0) check();
    }
    check();
    expect(db.stats().memory.blockCacheBytes).toBeGreaterThan(0);
    await db.close();
  });
});
