/**
 * `db.checkpoint(target)`: a consistent, openable copy of the DB as of the call.
 *
 * - 64 writers run through the call: the copy holds every write that resolved before the call,
 *   none that started after the checkpoint resolved, and of each writer's sequential writes a
 *   prefix (the copy is a cut of the WAL); the source keeps working; a snapshot and an iterator
 *   taken before it read the same; on the in-memory and the real file system.
 * - Flushes and compactions during a checkpoint (held at a gate) delete neither a table nor a
 *   WAL segment the copy needs; the WAL deletion a flush asked for runs once the copy is done.
 * - Tables are linked where the file system links, copied on EXDEV or without link.
 * - Refusals (a target that is not empty or is a file, a closed DB, a bad argument) write
 *   nothing; a read-only handle can checkpoint; a failure mid-copy removes what it wrote.
 * - A power loss (or a process crash) at every mutating file operation of a checkpoint leaves
 *   the source intact and the target either a complete copy or without CURRENT.
 */
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ClosedError, DB, IoError, LockedError } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import { FaultFileSystem, crashAtMutatingOp, failNth, type FsOp } from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { NodeFileSystem } from '../../src/fs/node.js';
import { type FileSystem, requiredOperations } from '../../src/fs/types.js';
import { checkCopy, writersAround } from './helpers/copies.js';
import { DIR, ProcessFs, TINY, closeQuietly, diskProblems, render, scan, seeded, walFiles, withTimeout } from './helpers/harness.js';

const TARGET = '/copies/cp';
const open: DB<string, string>[] = [];
const tmpDirs: string[] = [];
afterEach(async () => {
  for (const db of open.splice(0)) await closeQuietly(db);
  for (const d of tmpDirs.splice(0)) nodeFs.rmSync(d, { recursive: true, force: true });
});

async function openDb(dir: string, options: DBOptions): Promise<DB<string, string>> {
  const db = await DB.open<string, string>(dir, { valueEncoding: 'utf8', ...options });
  open.push(db);
  return db;
}

async function contents(dir: string, options: DBOptions): Promise<Map<string, string>> {
  const db = await DB.open<string, string>(dir, { valueEncoding: 'utf8', ...options, readOnly: true });
  try {
    return new Map(await scan(db));
  } finally {
    await db.close();
  }
}

/** A file system whose `link` (or copy, when it has none) waits at a gate: the checkpoint stops mid-copy. */
class GatedFs extends FaultFileSystem {
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  reached: Promise<void> = Promise.resolve();
  #reached: (() => void) | undefined;

  shut(): void {
    this.#gate = new Promise((r) => (this.#open = r));
    this.reached = new Promise((r) => (this.#reached = r));
  }

  openGate(): void {
    this.#open?.();
    this.#gate = undefined;
  }

  override async link(from: string, to: string): Promise<void> {
    if (this.#gate && to.startsWith('/copies/')) {
      this.#reached?.();
      await this.#gate;
    }
    return super.link(from, to);
  }
}

describe('db.checkpoint while 64 writers run', () => {
  for (const where of ['memory', 'disk'] as const) {
    it(`the copy holds every write resolved before the call and none started after it resolved (${where})`, {
      timeout: 60_000,
    }, async () => {
      let fs: FileSystem;
      let dir: string;
      let target: string;
      if (where === 'memory') {
        fs = new MemFileSystem();
        dir = DIR;
        target = TARGET;
      } else {
        fs = new NodeFileSystem();
        const root = nodeFs.mkdtempSync(path.join(os.tmpdir(), 'sediment-cp-'));
        tmpDirs.push(root);
        dir = path.join(root, 'db');
        target = path.join(root, 'copies', 'cp');
      }
      const options: DBOptions = { ...TINY, memtableSize: 16 * 1024, walSegmentSize: 16 * 1024, fs };
      const db = await openDb(dir, options);
      for (let i = 0; i < 200; i++) await db.put(`base${String(i).padStart(3, '0')}`, `b${i}`);
      await db.flush();
      const snap = db.snapshot();
      const it = db.iterator({ gte: 'base', lt: 'basf' });
      const first = await it.nextv(10);
      const { writes, info } = await writersAround(db, () => db.checkpoint(target));
      expect(info).toMatchObject({ dir: target, tablesCopied: 0 });
      expect(info.tablesLinked).toBeGreaterThan(0);

      const copy = await contents(target, { fs });
      checkCopy(writes, copy);
      for (let i = 0; i < 200; i++) expect(copy.get(`base${String(i).padStart(3, '0')}`)).toBe(`b${i}`);

      // The snapshot and the iterator read what they read before; the source has everything.
      expect(render([...first, ...(await it.all())])).toBe(render(await scan(db, { gte: 'base', lt: 'basf' })));
      expect(await db.get('w00-00000', { snapshot: snap })).toBeUndefined();
      snap.close();
      const all = writes.flat();
      for (const t of all.slice(0, 500)) expect(await db.get(t.key)).toBe(t.value);
      // The source keeps working: writes, a compaction, a reopen.
      await db.put('after', 'yes');
      await db.compact();
      await db.close();
      const reopened = await contents(dir, { fs });
      expect(reopened.size).toBe(all.length + 200 + 1);
      // The copy is a DB of its own: writable, and unaffected by the source's changes.
      const cp = await openDb(target, { ...TINY, fs });
      expect(await cp.get('after')).toBeUndefined();
      await cp.put('copy-only', '1');
      await cp.compact();
      await cp.close();
      expect((await contents(dir, { fs })).get('copy-only')).toBeUndefined();
    });
  }
});

describe('db.checkpoint and concurrent maintenance', () => {
  it('flushes and compactions during a checkpoint delete no table or WAL segment it needs; held WAL deletion runs after', {
    timeout: 30_000,
  }, async () => {
    const mem = new MemFileSystem();
    const fs = new GatedFs(mem);
    const options: DBOptions = { ...TINY, memtableSize: 64 * 1024, l0CompactionTrigger: 100, background: 'inline', fs };
    const db = await openDb(DIR, options);
    const model = new Map<string, string>();
    const put = async (k: string, v: string): Promise<void> => {
      await db.put(k, v);
      model.set(k, v);
    };
    for (let i = 0; i < 300; i++) await put(`k${String(i % 120).padStart(3, '0')}`, `a${i}`.padEnd(30, '.'));
    await db.flush();
    for (let i = 0; i < 300; i++) await put(`k${String(i % 200).padStart(3, '0')}`, `b${i}`.padEnd(30, '.')); // in the WAL only
    const want = render([...model].sort(([a], [b]) => (a < b ? -1 : 1)));
    const segmentsBefore = walFiles(mem).length;
    const deletedBefore = db.stats().wal.segmentsDeleted;
    expect(segmentsBefore).toBeGreaterThan(1);

    fs.shut();
    const cp = db.checkpoint(TARGET);
    await fs.reached; // stopped at its first link
    for (let i = 0; i < 200; i++) await put(`k${String(i % 150).padStart(3, '0')}`, `c${i}`.padEnd(30, '.'));
    await db.compact(); // flushes (asks for WAL deletion) and merges every table away
    expect(db.stats().wal.segmentsDeleted).toBe(deletedBefore);
    expect(walFiles(mem).length).toBeGreaterThan(segmentsBefore);
    fs.openGate();
    await cp;
    expect(render(await scan(await openDb(TARGET, { ...TINY, fs: mem })))).toBe(want);
    // The deletion asked for during the checkpoint has run (after it).
    await db.put('x', 'y');
    await db.flush();
    await db.close();
    expect(db.stats().wal.segmentsDeleted).toBeGreaterThan(deletedBefore + segmentsBefore - 2);
    expect(walFiles(mem).length).toBeLessThanOrEqual(2);
    expect(await diskProblems(mem)).toEqual([]);
  });
});

/** A file system over `mem` whose link fails with `code`, or that has no link at all. */
function noLinkFs(mem: MemFileSystem, code: string | undefined): FileSystem {
  const fs = requiredOperations(mem);
  if (code) fs.link = () => Promise.reject(Object.assign(new Error(code), { code }));
  return fs;
}

describe('db.checkpoint: link or copy', () => {
  for (const code of ['EXDEV', 'EPERM', 'ENOTSUP', undefined]) {
    it(`copies the tables when link ${code ? `fails with ${code}` : 'is missing'}`, async () => {
      const mem = new MemFileSystem();
      const fs = noLinkFs(mem, code);
      const db = await openDb(DIR, { ...TINY, background: 'inline', fs });
      for (let i = 0; i < 100; i++) await db.put(`k${i}`, `v${i}`.padEnd(40, '-'));
      await db.flush();
      await db.put('tail', 'in the WAL');
      const info = await db.checkpoint(TARGET);
      expect(info.tablesLinked).toBe(0);
      expect(info.tablesCopied).toBeGreaterThan(0);
      expect(info.bytesCopied).toBeGreaterThan(0);
      expect(render(await scan(await openDb(TARGET, { fs: mem })))).toBe(render(await scan(db)));
    });
  }

  it('a link failing with another error fails the checkpoint, which removes what it wrote', async () => {
    const mem = new MemFileSystem();
    const fs = noLinkFs(mem, 'EIO');
    const db = await openDb(DIR, { ...TINY, background: 'inline', fs });
    for (let i = 0; i < 100; i++) await db.put(`k${i}`, `v${i}`.padEnd(40, '-'));
    await db.flush();
    await expect(db.checkpoint(TARGET)).rejects.toMatchObject({ code: 'IO', errno: 'EIO', op: 'link' });
    expect(mem.listFiles().filter((f) => f.startsWith('/copies/'))).toEqual([]);
  });
});

describe('db.checkpoint refusals and failures', () => {
  async function setup(options: DBOptions = {}): Promise<{ mem: MemFileSystem; db: DB<string, string> }> {
    const mem = new MemFileSystem();
    const db = await openDb(DIR, { ...TINY, background: 'inline', fs: mem, ...options });
    for (let i = 0; i < 60; i++) await db.put(`k${i}`, `v${i}`.padEnd(40, '-'));
    await db.flush();
    await db.put('tail', 't');
    return { mem, db };
  }

  it('refuses a target that is not empty or is a file, and a bad argument, writing nothing', async () => {
    const { mem, db } = await setup();
    await mem.mkdir('/copies/full');
    mem.writeFileBytes('/copies/full/x', Buffer.from('x'));
    mem.writeFileBytes('/copies/file', Buffer.from('f'));
    const copies = (): string[] => mem.listFiles().filter((f) => f.startsWith('/copies'));
    const before = copies();
    const errors = [
      await db.checkpoint('/copies/full').catch((e: unknown) => e),
      await db.checkpoint('/copies/file').catch((e: unknown) => e),
      await db.checkpoint(DIR).catch((e: unknown) => e),
    ];
    expect(errors.map((e) => [(e as IoError).constructor, (e as IoError).errno])).toEqual([
      [IoError, 'ENOTEMPTY'],
      [IoError, 'ENOTDIR'],
      [IoError, 'ENOTEMPTY'],
    ]);
    await expect(db.checkpoint('' as string)).rejects.toBeInstanceOf(TypeError);
    await expect(db.checkpoint(undefined as unknown as string)).rejects.toBeInstanceOf(TypeError);
    expect(copies()).toEqual(before);
    expect(await mem.readdir('/copies')).toEqual(['full', 'file']);
    // Nothing held: WAL deletion goes on, and an empty directory is a fine target.
    await db.flush();
    await mem.mkdir('/copies/empty');
    await db.checkpoint('/copies/empty');
    expect(render(await scan(await openDb('/copies/empty', { fs: mem })))).toBe(render(await scan(db)));
  });

  it('refuses on a closed DB; a read-only handle can checkpoint', async () => {
    const { mem, db } = await setup();
    const want = render(await scan(db));
    await db.close();
    await expect(db.checkpoint(TARGET)).rejects.toBeInstanceOf(ClosedError);
    expect(await mem.readdir('/')).toEqual(['db']);
    const ro = await openDb(DIR, { fs: mem, readOnly: true });
    const info = await ro.checkpoint(TARGET);
    expect(info.tablesLinked).toBeGreaterThan(0);
    expect(render(await scan(await openDb(TARGET, { fs: mem })))).toBe(want);
  });

  it('close waits for a running checkpoint; the target is locked meanwhile', async () => {
    const mem = new MemFileSystem();
    const fs = new GatedFs(mem);
    const db = await openDb(DIR, { ...TINY, background: 'inline', fs });
    for (let i = 0; i < 60; i++) await db.put(`k${i}`, `v${i}`.padEnd(40, '-'));
    await db.flush();
    fs.shut();
    const cp = db.checkpoint(TARGET);
    await fs.reached;
    // The target is locked while it is written.
    await expect(DB.open(TARGET, { fs: mem })).rejects.toBeInstanceOf(LockedError);
    let closed = false;
    const closing = db.close().then(() => (closed = true));
    await expect(db.checkpoint('/copies/other')).rejects.toBeInstanceOf(ClosedError);
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    fs.openGate();
    await cp;
    await closing;
    expect((await contents(TARGET, { fs: mem })).size).toBe(60);
  });

  it('a failure mid-copy (ENOSPC) rejects, removes what it wrote, and leaves the source working', async () => {
    for (let n = 0; n < 6; n++) {
      const mem = new MemFileSystem();
      const fs = new FaultFileSystem(mem);
      const { db } = await setup({ fs, memtableSize: 1 << 20 });
      fs.injector = failNth(['write', 'writeSync', 'datasync', 'rename'], n, 'ENOSPC', { path: /^\/copies\// });
      const err: unknown = await db.checkpoint(TARGET).catch((e: unknown) => e);
      expect(err, `failure ${n}`).toMatchObject({ code: 'IO', errno: 'ENOSPC' });
      expect(mem.listFiles().filter((f) => f.startsWith('/copies'))).toEqual([]);
      expect(await mem.readdir('/copies')).toEqual([]);
      fs.injector = undefined;
      await db.put('more', 'm');
      await db.flush();
      await db.checkpoint(TARGET);
      const want = render(await scan(db));
      await db.close();
      expect(render(await scan(await openDb(TARGET, { fs: mem })))).toBe(want);
    }
  });
});

describe('a power loss during a checkpoint', () => {
  it('leaves the source intact and the target complete or without CURRENT, at every mutating operation', {
    timeout: 120_000,
  }, async () => {
    // The source: tables on two levels and a WAL tail over several segments, then quiet.
    const base = new MemFileSystem();
    const options: DBOptions = { ...TINY, background: 'inline', l0CompactionTrigger: 100, fsync: 'os' };
    {
      const db = await openDb(DIR, { ...options, fs: base });
      for (let i = 0; i < 300; i++) await db.put(`k${String(i % 97).padStart(3, '0')}`, `a${i}`.padEnd(30, '.'));
      await db.compact();
      for (let i = 0; i < 100; i++) await db.put(`k${String(i % 150).padStart(3, '0')}`, `b${i}`.padEnd(30, '.'));
      await db.flush();
      for (let i = 0; i < 60; i++) await db.put(`t${String(i).padStart(3, '0')}`, `c${i}`.padEnd(30, '.'));
      await db.sync();
      await db.close();
    }
    const want = render(await scan(await openDb(DIR, { ...options, fs: base.crashClone() })));
    let points = 0;
    let complete = 0;
    const failures: string[] = [];
    for (let k = 0; ; k++) {
      const disk = base.crashClone();
      const proc = new ProcessFs(disk);
      const fs = new FaultFileSystem(proc);
      const db = await DB.open<string, string>(DIR, { ...options, fs, valueEncoding: 'utf8' });
      let images: { label: string; image: MemFileSystem }[] = [];
      let at: FsOp | undefined;
      fs.injector = crashAtMutatingOp(k, (op) => {
        at = op;
        images = [
          { label: 'drop', image: disk.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }) },
          { label: 'prefix', image: disk.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(k) }) },
          // A process crash: everything written so far stays.
          { label: 'keep', image: disk.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }) },
        ];
      });
      const outcome = await withTimeout(
        db.checkpoint(TARGET).then(
          () => 'done',
          () => 'failed',
        ),
        10_000,
        'the checkpoint',
      );
      await closeQuietly(db);
      proc.kill();
      if (!at) {
        // Past the last mutating operation: the checkpoint completed.
        expect(outcome).toBe('done');
        const copy = await openDb(TARGET, { ...options, fs: disk.crashClone() });
        expect(render(await scan(copy))).toBe(want);
        break;
      }
      points++;
      for (const { label, image } of images) {
        const where = `k=${k} (before ${at.kind} ${at.path}), ${label}`;
        try {
          const src = await DB.open<string, string>(DIR, { ...options, fs: image, valueEncoding: 'utf8' });
          const got = render(await scan(src));
          await src.close();
          if (got !== want) failures.push(`${where}: the source changed`);
          for (const p of await diskProblems(image)) failures.push(`${where}: source: ${p}`);
          const hasCurrent = await image.stat(`${TARGET}/CURRENT`).then(
            () => true,
            () => false,
          );
          if (hasCurrent) {
            complete++;
            const copy = await DB.open<string, string>(TARGET, { ...options, fs: image, valueEncoding: 'utf8' });
            if (render(await scan(copy)) !== want) failures.push(`${where}: the target has CURRENT but not the source's state`);
            await copy.close();
          }
        } catch (err) {
          failures.push(`${where}: ${String(err)}`);
        }
      }
    }
    if (process.env.DB_TEST_VERBOSE) console.log(points, 'crash points,', complete, 'images with a complete target');
    expect(points).toBeGreaterThan(20);
    expect(complete).toBeGreaterThan(0);
    expect(failures).toEqual([]);
  });
});
