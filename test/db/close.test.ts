/**
 * close() does not wait for housekeeping: a flush or compaction running when it is called is
 * cancelled, in the worker and inline. The job stops, removes its outputs and installs nothing;
 * a flush() or compact() the caller was waiting on rejects with ClosedError; the cancellation is
 * not a background error; the reopened DB has every acknowledged write (the WAL kept what a
 * cancelled flush was writing).
 *
 * A job is held at the creation of its first output table (a gate in the file system) until
 * close() was called, so each test knows the job was mid-way, whatever the machine's speed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DB } from '../../src/db/db.js';
import type { DBOptions } from '../../src/db/options.js';
import { ClosedError } from '../../src/errors.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { type FileSystem, requiredOperations } from '../../src/fs/types.js';
import { closeQuietly, DIR, tableFiles, TINY } from './helpers/harness.js';

const KEYS = 800;
const key = (i: number): string => `k${String(i).padStart(4, '0')}`;
const value = (i: number, round: number): string => `value-${round}-${i}`.padEnd(40, '.');

/**
 * `mem`, with a gate on table creation: once armed with `after`, the creation of a table file
 * after `after` more have been created waits until `open()` is called. `held` resolves when a
 * creation is waiting.
 */
function gated(mem: MemFileSystem): { fs: FileSystem; arm(after: number): Promise<void>; open(): void } {
  let countdown: number | undefined;
  let release: (() => void) | undefined;
  let gate: Promise<void> = Promise.resolve();
  let reached: (() => void) | undefined;
  const fs: FileSystem = {
    ...requiredOperations(mem),
    async open(file, mode) {
      if (mode === 'create' && file.endsWith('.sst') && countdown !== undefined && countdown-- === 0) {
        countdown = undefined;
        reached?.();
        await gate;
      }
      return mem.open(file, mode);
    },
  };
  return {
    fs,
    arm(after) {
      countdown = after;
      gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      return new Promise<void>((resolve) => {
        reached = resolve;
      });
    },
    open: () => release?.(),
  };
}

/**
 * Closes `db` while `gate` holds one of its jobs, and lets the job go once close() has cancelled
 * it; the cancel is counted and is no background error.
 */
async function closeWhileHeld(db: DB<string, string>, gate: { open(): void }): Promise<void> {
  const closing = db.close();
  await new Promise((r) => setImmediate(r)); // close() has cancelled the job: its turn came
  gate.open();
  await closing;
  expect(db.stats().background.cancelledJobs).toBe(1);
  expect(db.stats().backgroundError).toBeUndefined();
}

async function expectAll(db: DB<string, string>, round: number): Promise<void> {
  for (let i = 0; i < KEYS; i++) expect(await db.get(key(i))).toBe(value(i, round));
  expect(await db.iterator().all()).toHaveLength(KEYS);
}

async function write(db: DB<string, string>, round: number): Promise<void> {
  await Promise.all(Array.from({ length: KEYS }, (_, i) => db.put(key(i), value(i, round))));
}

/** What a promise settled with. */
const outcome = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => 'resolved',
    (err: unknown) => err,
  );

let db: DB<string, string> | undefined;
afterEach(async () => {
  await closeQuietly(db);
  db = undefined;
});

for (const background of ['worker', 'inline'] as const) {
  // Tables far bigger than the data (one output table), compaction only when asked.
  const OPTIONS = {
    ...TINY,
    memtableSize: 1 << 20,
    tableFileSize: 1 << 20,
    l0CompactionTrigger: 100,
    valueEncoding: 'utf8',
    background,
  } as const satisfies DBOptions;

  describe(`close() cancels background work (${background})`, () => {
    it('a compact() running when close() is called rejects with ClosedError; nothing is installed, its output is removed', async () => {
      const mem = new MemFileSystem();
      const g = gated(mem);
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: g.fs });
      for (let round = 0; round < 2; round++) {
        await write(db, round);
        await db.flush();
      }
      const before = tableFiles(mem);
      expect(before).toHaveLength(2);
      const held = g.arm(0);
      const compaction = outcome(db.compact());
      await held;
      await closeWhileHeld(db, g);
      expect(await compaction).toBeInstanceOf(ClosedError);
      expect(db.stats().compactions).toBe(0);
      // The output table was created (the gate let it through) and removed by the cancelled job.
      expect(tableFiles(mem)).toEqual(before);
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
      expect(db.stats().levels[0]!.tables).toBe(2);
      await expectAll(db, 1);
    });

    it('a flush() running when close() is called rejects with ClosedError; the WAL keeps the memtable', async () => {
      const mem = new MemFileSystem();
      const g = gated(mem);
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: g.fs });
      await write(db, 0);
      await db.flush();
      await write(db, 1);
      const before = tableFiles(mem);
      const held = g.arm(0);
      const flush = outcome(db.flush());
      await held;
      await closeWhileHeld(db, g);
      expect(await flush).toBeInstanceOf(ClosedError);
      expect(tableFiles(mem)).toEqual(before);
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
      expect(db.stats().levels[0]!.tables).toBe(1);
      await expectAll(db, 1);
    });

    it('an automatic compaction running when close() is called is cancelled; writes acknowledged before are all there', async () => {
      const mem = new MemFileSystem();
      const g = gated(mem);
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: g.fs, l0CompactionTrigger: 2 });
      await write(db, 0);
      await db.flush();
      await write(db, 1);
      // The next table created is this flush's; the one after, the compaction it triggers.
      const held = g.arm(1);
      await db.flush();
      await held;
      const before = tableFiles(mem);
      expect(before).toHaveLength(2);
      await write(db, 2); // in the memtable and the WAL only
      await closeWhileHeld(db, g);
      expect(tableFiles(mem)).toEqual(before);
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem, l0CompactionTrigger: 100 });
      expect(db.stats().levels[0]!.tables).toBe(2);
      await expectAll(db, 2);
    });

    it('the DB closes as before when nothing runs, and a job queued after the cancel never starts', async () => {
      const mem = new MemFileSystem();
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
      await write(db, 0);
      const closing = db.close();
      await expect(db.flush()).rejects.toBeInstanceOf(ClosedError);
      await expect(db.compact()).rejects.toBeInstanceOf(ClosedError);
      await closing;
      expect(db.stats().background.cancelledJobs).toBe(0);
      expect(tableFiles(mem)).toEqual([]);
      db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: mem });
      await expectAll(db, 0);
    });
  });
}
