/**
 * The background worker: flushes and compactions run in a worker thread that does its I/O through the DB's
 * file system (served to it) or the real disk (opened by itself); a worker that dies mid-job
 * (terminate(), an uncaught error) never leaves a lost or half-installed table, and the job runs
 * again on a new worker, and its file descriptors are closed with it; I/O errors inside the
 * worker become the DB's background error, typed as they would be inline; a worker that cannot
 * start makes the DB run its jobs inline, and say so.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { BackgroundWorker } from '../../src/db/background.js';
import { DB } from '../../src/db/db.js';
import type { DBOptions } from '../../src/db/options.js';
import { IoError } from '../../src/errors.js';
import { FaultFileSystem, type FsOp, type Injector } from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { DIR, closeQuietly, footprint, tableFiles, TINY } from './helpers/harness.js';

const OPTIONS = { ...TINY, valueEncoding: 'utf8', background: 'worker' } as const satisfies DBOptions;
const KEYS = 400;
const value = (i: number, round: number): string => `value-${round}-${i}`.padEnd(40, '.');

/** A fault file system whose injector the test sets once the interesting phase starts. */
function trapped(mem: MemFileSystem): { fs: FaultFileSystem; set(trap: Injector | undefined): void } {
  let trap: Injector | undefined;
  const fs = new FaultFileSystem(mem, (op) => trap?.(op));
  return { fs, set: (t) => (trap = t) };
}

/** Writes two rounds over KEYS keys and flushes, so that a full compaction has work to merge. */
async function load(db: DB<string, string>): Promise<void> {
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < KEYS; i++) await db.put(`k${String(i).padStart(4, '0')}`, value(i, round));
    await db.flush();
  }
}

async function expectAll(db: DB<string, string>): Promise<void> {
  for (let i = 0; i < KEYS; i++) expect(await db.get(`k${String(i).padStart(4, '0')}`)).toBe(value(i, 1));
  let n = 0;
  for await (const [,] of db.iterator()) n++;
  expect(n).toBe(KEYS);
}

/** The process's open file descriptors on files in `dir` (all threads share them). */
function fdsIn(dir: string): string[] {
  const open: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) open.push(target);
    } catch {
      // closed meanwhile (the readdir's own descriptor, another thread's)
    }
  }
  return open;
}

const isTableWrite = (op: FsOp): boolean => op.kind === 'write' && op.path.endsWith('.sst');

/** Kills the background worker at the first table write from now on; returns "has it?". */
function killAtFirstTableWrite(set: (trap: Injector) => void, death: 'terminate' | 'uncaught error'): () => boolean {
  let killed = false;
  set((op) => {
    if (!killed && isTableWrite(op)) {
      killed = true;
      if (death === 'terminate') void BackgroundWorker.shared().terminate();
      else BackgroundWorker.shared().crash();
    }
    return undefined;
  });
  return () => killed;
}

let db: DB<string, string> | undefined;
afterEach(async () => {
  await closeQuietly(db);
  db = undefined;
});

describe('background worker', () => {
  it('runs flushes and compactions in the worker, through the DB file system, with the same result as inline', async () => {
    const contents: string[] = [];
    for (const background of ['worker', 'inline'] as const) {
      const mem = new MemFileSystem();
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem, background });
      await load(db);
      await db.compact();
      const s = db.stats();
      expect(s.background.mode).toBe(background);
      // Two flushes, the automatic L0 compaction and the full one.
      if (background === 'worker') expect(s.background.workerJobs).toBeGreaterThanOrEqual(3);
      else expect(s.background.workerJobs).toBe(0);
      expect(s.levels[0]!.tables).toBe(0);
      await expectAll(db);
      contents.push(JSON.stringify(await db.iterator().all()));
      await db.close();
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
      await expectAll(db);
      await db.close();
      db = undefined;
    }
    expect(contents[0]).toBe(contents[1]);
  });

  for (const death of ['terminate', 'uncaught error'] as const) {
    it(`a worker that dies mid-flush (${death}) installs nothing; the flush runs again on a new worker`, async () => {
      const mem = new MemFileSystem();
      const { fs, set } = trapped(mem);
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs, l0CompactionTrigger: 100 });
      for (let i = 0; i < KEYS; i++) await db.put(`k${String(i).padStart(4, '0')}`, value(i, 1));
      const started = BackgroundWorker.shared().started;
      const killed = killAtFirstTableWrite(set, death);
      await db.flush();
      expect(killed()).toBe(true);
      const s = db.stats();
      expect(s.flushes).toBeGreaterThanOrEqual(1);
      expect(s.background.workerDeaths).toBe(1);
      expect(s.backgroundError).toBeUndefined();
      expect(BackgroundWorker.shared().started).toBe(started + 1);
      expect(tableFiles(mem)).toHaveLength(s.levels[0]!.tables);
      await expectAll(db);
      await db.close();
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
      await expectAll(db);
    });

    it(`a worker that dies mid-compaction (${death}) installs nothing; the job runs again on a new worker`, async () => {
      const mem = new MemFileSystem();
      const { fs, set } = trapped(mem);
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs });
      await load(db);
      const started = BackgroundWorker.shared().started;
      const killed = killAtFirstTableWrite(set, death);
      await db.compact();
      expect(killed()).toBe(true);
      const s = db.stats();
      expect(s.background.workerDeaths).toBe(1);
      expect(s.backgroundError).toBeUndefined();
      expect(BackgroundWorker.shared().started).toBe(started + 1);
      await expectAll(db);
      // Only the live tables are on disk: what the dead worker wrote was removed.
      const live = s.levels.reduce((n, l) => n + l.tables, 0);
      expect(tableFiles(mem)).toHaveLength(live);
      await db.close();
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
      await expectAll(db);
    });
  }

  it('a worker that keeps dying becomes the background error; the data stays whole', async () => {
    const mem = new MemFileSystem();
    const { fs, set } = trapped(mem);
    db = await DB.open<string, string>(DIR, { ...OPTIONS, fs });
    await load(db);
    let kills = 0;
    set((op) => {
      if (isTableWrite(op)) {
        kills++;
        void BackgroundWorker.shared().terminate();
      }
      return undefined;
    });
    const err = await db.compact().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).name).toBe('BackgroundWorkerError');
    expect(db.stats().backgroundError).toBe(err);
    expect(db.stats().background.workerDeaths).toBe(3);
    expect(kills).toBeGreaterThanOrEqual(3);
    // Writes stop, loudly; reads go on.
    await expect(db.put('x', 'y')).rejects.toBe(err);
    await expectAll(db);
    set(undefined);
    await db.close();
    db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
    await expectAll(db);
    await db.compact();
    await expectAll(db);
  });

  it('ENOSPC on a flush inside the worker is the background error; the memtable stays readable and the WAL keeps it', async () => {
    const mem = new MemFileSystem();
    const { fs, set } = trapped(mem);
    db = await DB.open<string, string>(DIR, { ...OPTIONS, fs });
    for (let i = 0; i < KEYS; i++) await db.put(`k${String(i).padStart(4, '0')}`, value(i, 1));
    set((op) => (isTableWrite(op) ? { error: 'ENOSPC' } : undefined));
    const err = await db.flush().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).errno).toBe('ENOSPC');
    expect(db.stats().backgroundError).toBe(err);
    await expectAll(db);
    set(undefined);
    await db.close();
    db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
    await expectAll(db);
    expect(tableFiles(mem)).toHaveLength(db.stats().levels.reduce((n, l) => n + l.tables, 0));
  });

  for (const errno of ['ENOSPC', 'EIO'] as const) {
    it(`${errno} on a table write inside the worker is the background error, typed as inline; nothing is installed`, async () => {
      const mem = new MemFileSystem();
      const { fs, set } = trapped(mem);
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs });
      await load(db);
      const before = footprint(db as unknown as DB<unknown, unknown>);
      set((op) => (isTableWrite(op) ? { error: errno } : undefined));
      const err = await db.compact().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(IoError);
      expect((err as IoError).errno).toBe(errno);
      expect((err as IoError).file).toMatch(/\.sst$/);
      expect(db.stats().backgroundError).toBe(err);
      expect(db.stats().background.workerDeaths).toBe(0);
      expect(footprint(db as unknown as DB<unknown, unknown>)).toBe(before);
      set(undefined);
      await db.close();
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
      await expectAll(db);
      // The failed job's partial table was removed (by the worker, or at this open).
      const live = db.stats().levels.reduce((n, l) => n + l.tables, 0);
      expect(tableFiles(mem)).toHaveLength(live);
    });
  }

  it('EIO on a synchronous read of an input table inside the worker is an IoError naming the table', async () => {
    const mem = new MemFileSystem();
    const { fs, set } = trapped(mem);
    db = await DB.open<string, string>(DIR, { ...OPTIONS, fs, blockCacheSize: 0 });
    await load(db);
    set((op) => (op.kind === 'readSync' && op.path.endsWith('.sst') ? { error: 'EIO' } : undefined));
    const err = await db.compact().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).errno).toBe('EIO');
    expect((err as IoError).file).toMatch(/\.sst$/);
    set(undefined);
    await db.close();
    db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
    await expectAll(db);
  });

  it('on the real disk the worker opens the files itself; killing it mid-compaction loses nothing', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sediment-bg-'));
    try {
      const opts = { ...OPTIONS, tableFileSize: 64 * 1024, memtableSize: 256 * 1024 } as const;
      db = await DB.open<string, string>(dir, opts);
      const big = 20_000;
      for (let round = 0; round < 2; round++) {
        const writes: Promise<void>[] = [];
        for (let i = 0; i < big; i++) writes.push(db.put(`k${String(i).padStart(6, '0')}`, value(i, round)));
        await Promise.all(writes);
        await db.flush();
      }
      const compaction = db.compact();
      while (BackgroundWorker.shared().running === 0) await new Promise((r) => setImmediate(r));
      await BackgroundWorker.shared().terminate();
      await compaction;
      expect(db.stats().backgroundError).toBeUndefined();
      expect(db.stats().background.workerDeaths).toBeLessThanOrEqual(1);
      await db.close();
      db = await DB.open<string, string>(dir, opts);
      const s = db.stats();
      const live = s.levels.reduce((n, l) => n + l.tables, 0);
      const files = (await fsp.readdir(dir)).filter((f) => f.endsWith('.sst'));
      expect(files).toHaveLength(live);
      let n = 0;
      for await (const [k, v] of db.iterator()) {
        expect(v).toBe(value(Number(k.slice(1)), 1));
        n++;
      }
      expect(n).toBe(big);
    } finally {
      await closeQuietly(db);
      db = undefined;
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it.runIf(fs.existsSync('/proc/self/fd'))('a worker killed mid-compaction on the real disk leaves no file descriptor open', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sediment-fd-'));
    try {
      const opts = { ...OPTIONS, tableFileSize: 64 * 1024, memtableSize: 256 * 1024 } as const;
      db = await DB.open<string, string>(dir, opts);
      for (let round = 0; round < 2; round++) {
        await Promise.all(Array.from({ length: 10_000 }, (_, i) => db!.put(`k${String(i).padStart(6, '0')}`, value(i, round))));
        await db.flush();
      }
      const tables = (): number => fdsIn(dir).filter((f) => f.endsWith('.sst')).length;
      const dbOwn = tables(); // the DB thread's table readers
      let settled = false;
      const compaction = db.compact().finally(() => (settled = true));
      // The worker opens the inputs itself: wait until it holds some, then kill it.
      while (!settled && (tables() <= dbOwn || BackgroundWorker.shared().running === 0)) await new Promise((r) => setImmediate(r));
      expect(settled).toBe(false);
      await BackgroundWorker.shared().terminate();
      await compaction;
      expect(db.stats().background.workerDeaths).toBeGreaterThanOrEqual(1);
      await db.close();
      db = undefined;
      // Node closes what a worker opened through node:fs when it ends: nothing is left open.
      expect(fdsIn(dir)).toEqual([]);
    } finally {
      await closeQuietly(db);
      db = undefined;
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  const unstartable = {
    'the constructor throws': () => {
      throw new Error('no worker threads in this runtime');
    },
    'background-worker.js is missing (a bundle)': () => new Worker(new URL('file:///nonexistent/sediment/background-worker.js')),
  };
  for (const [why, spawn] of Object.entries(unstartable)) {
    it(`a worker that cannot start (${why}): the DB runs its jobs inline, warns once, and says so in stats()`, async () => {
      const warnings: Error[] = [];
      const onWarning = (w: Error): void => {
        if ((w as { code?: string }).code === 'SEDIMENT_BACKGROUND_INLINE') warnings.push(w);
      };
      process.on('warning', onWarning);
      const previous = BackgroundWorker.replaceShared(new BackgroundWorker(spawn));
      try {
        const mem = new MemFileSystem();
        db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
        await load(db);
        await db.compact();
        await expectAll(db);
        const s = db.stats();
        expect(s.backgroundError).toBeUndefined();
        expect(s.background).toMatchObject({ mode: 'inline', workerJobs: 0, workerDeaths: 0 });
        expect(s.background.fallbackReason).toMatch(/could not|nonexistent|no worker threads/);
        expect(s.levels[0]!.tables).toBe(0);
        await db.close();
        // A second DB of the process: inline at once, no second warning.
        db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
        await db.put('x', 'y');
        await db.flush();
        expect(db.stats().background.mode).toBe('inline');
        await db.close();
        db = undefined;
        await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
        expect(warnings).toHaveLength(1);
        expect(warnings[0]!.message).toMatch(/inline/);
      } finally {
        BackgroundWorker.replaceShared(previous);
        process.off('warning', onWarning);
      }
    });
  }

  it('refuses an unknown background mode before touching the disk', async () => {
    const mem = new MemFileSystem();
    await expect(DB.open(DIR, { fs: mem, background: 'threads' as never })).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      option: 'background',
    });
    expect(mem.listFiles()).toEqual([]);
  });
});
