/**
 * Injected I/O errors and on-disk damage (RELIABILITY.md §6.13, §6.14, §6.16-18, §6.20).
 *
 * - ENOSPC and EIO at each step of a flush (table create, write, datasync, directory sync, the
 *   manifest write and datasync, CURRENT.tmp, the CURRENT rename, the final directory sync) and
 *   of a compaction: reads go on and return the right values; `stats().backgroundError` holds
 *   the error; later writes reject with it; no WAL segment whose records are not in a durable
 *   table was deleted (a power loss right after the failure, and a reopen with the fault cleared,
 *   both recover every acknowledged write); the reopened DB leaves no orphans.
 * - Errors in background compactions and a disk filling up under a steady write load.
 * - EIO on the WAL's fdatasync under fsync 'always': the write rejects, and so do later ones.
 * - One fault (once or for good) at a random mutating operation of a workload that flushes and
 *   compacts: the DB never hangs, reads return exactly the acknowledged writes, and both a power
 *   loss and a reopen with the fault cleared give a Prefix-OK state.
 * - Damaged tables: a flipped byte in a data block surfaces as a CorruptionError (code
 *   'CORRUPTION', naming the file) from get and from iterators, never as a wrong value; damage to
 *   a table's metadata, to CURRENT or to the MANIFEST makes DB.open reject with CORRUPTION,
 *   never open a silently empty DB, and leaves the files as they were.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemFileSystem } from '../../src/fs/mem.js';
import { FaultFileSystem, failNth, shortWriteThenFail, type FsOpKind, type Injector } from '../../src/fs/fault.js';
import { DB } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import { CorruptionError, IoError } from '../../src/errors.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import {
  DIR,
  ProcessFs,
  TINY,
  WriteLog,
  closeQuietly,
  diskProblems,
  matchingPrefixes,
  noop,
  openOn,
  prefixStates,
  render,
  scan,
  settle,
  tableFiles,
  walFiles,
  withTimeout,
  type WriteOps,
} from './helpers/harness.js';

type Val = string;

interface Harness {
  mem: MemFileSystem;
  ffs: FaultFileSystem;
  db: DB<string, Val>;
  /** Every acknowledged write, as the model: key -> value (undefined: deleted). */
  model: Map<string, Val | undefined>;
}

async function setup(options: DBOptions = {}): Promise<Harness> {
  const mem = new MemFileSystem();
  const ffs = new FaultFileSystem(new ProcessFs(mem));
  const db = await DB.open<string, Val>(DIR, { fsync: 'os', valueEncoding: 'utf8', ...options, fs: ffs });
  return { mem, ffs, db, model: new Map() };
}

const key = (i: number): string => `key-${String(i).padStart(4, '0')}`;
const value = (i: number, round: number): string => `value ${i} round ${round} `.padEnd(60 + (i % 7) * 10, '=');

/** Writes keys [from, to) for `round` (every 5th a delete), the last one synced: all durable. */
async function writeRange(h: Harness, from: number, to: number, round: number): Promise<void> {
  for (let i = from; i < to; i++) {
    const sync = i === to - 1;
    if (i % 5 === 4 && round > 0) {
      await h.db.delete(key(i), { sync });
      h.model.set(key(i), undefined);
    } else {
      await h.db.put(key(i), value(i, round), { sync });
      h.model.set(key(i), value(i, round));
    }
  }
}

function expected(model: Map<string, Val | undefined>): [string, Val][] {
  return [...model.entries()]
    .filter((e): e is [string, Val] => e[1] !== undefined)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Every get and a full scan in both directions agree with the model. */
async function expectModel(db: DB<string, Val>, model: Map<string, Val | undefined>): Promise<void> {
  for (const [k, v] of model) expect(await db.get(k), k).toBe(v);
  const want = expected(model);
  expect(await scan(db)).toEqual(want);
  expect(await scan(db, { reverse: true })).toEqual([...want].reverse());
}

/**
 * After a failed flush or compaction: reads work, the error is in stats and stops writes; a power
 * loss now, and a reopen with the fault cleared, both recover every acknowledged (here: durable)
 * write, and leave no orphans.
 */
async function expectFailedButSafe(h: Harness, code: string | undefined): Promise<IoError> {
  const bg = h.db.stats().backgroundError;
  expect(bg).toBeInstanceOf(IoError);
  const err = bg as IoError;
  if (code) expect(err.errno).toBe(code);

  await expectModel(h.db, h.model);
  await expect(h.db.put('after', 'x')).rejects.toBe(err);
  await expect(h.db.delete(key(0))).rejects.toBe(err);
  await expect(h.db.batch([{ type: 'put', key: 'after', value: 'x' }])).rejects.toBe(err);
  await expect(h.db.flush()).rejects.toBe(err);
  await expect(h.db.compact()).rejects.toBe(err);
  expect(await h.db.get('after')).toBeUndefined();

  // Power loss right now: nothing acknowledged is lost (every write in the model was synced).
  const image = h.mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' });
  const crashed = await openOn<string, Val>(image, { fsync: 'os', valueEncoding: 'utf8' });
  await expectModel(crashed.db, h.model);
  await crashed.db.close();
  await settle();
  expect(await diskProblems(image)).toEqual([]);

  // Clean reopen on the same file system with the fault cleared.
  h.ffs.injector = undefined;
  await h.db.close().catch(noop);
  const again = await DB.open<string, Val>(DIR, { fsync: 'os', valueEncoding: 'utf8', fs: h.ffs });
  await expectModel(again, h.model);
  expect(again.stats().backgroundError).toBeUndefined();
  // ... and works: it flushes, compacts and keeps the result.
  await again.put('after', 'reopened', { sync: true });
  h.model.set('after', 'reopened');
  await again.compact();
  await expectModel(again, h.model);
  await again.close();
  await settle();
  expect(await diskProblems(h.mem)).toEqual([]);
  return err;
}

interface Step {
  name: string;
  kinds: FsOpKind | FsOpKind[];
  n: number;
  path?: RegExp;
  /** The step runs once the new manifest is durable: the job may report the error or succeed. */
  afterInstall?: boolean;
  codes?: string[];
}

/** The file operations of a flush (or of a compaction), in order. */
const STEPS: Step[] = [
  { name: 'table create', kinds: 'open', n: 0, path: /\.sst$/ },
  { name: 'table write', kinds: ['write', 'writeSync'], n: 0, path: /\.sst$/ },
  { name: 'table datasync', kinds: 'datasync', n: 0, path: /\.sst$/ },
  { name: 'directory sync before the manifest', kinds: 'syncDir', n: 0 },
  { name: 'manifest create', kinds: 'open', n: 0, path: /MANIFEST-/ },
  { name: 'manifest write', kinds: ['write', 'writeSync'], n: 0, path: /MANIFEST-/ },
  { name: 'manifest datasync', kinds: 'datasync', n: 0, path: /MANIFEST-/ },
  { name: 'CURRENT.tmp write', kinds: ['write', 'writeSync'], n: 0, path: /CURRENT\.tmp/ },
  { name: 'CURRENT.tmp datasync', kinds: 'datasync', n: 0, path: /CURRENT\.tmp/ },
  { name: 'CURRENT rename', kinds: 'rename', n: 0, path: /CURRENT/ },
  { name: 'directory sync after the rename', kinds: 'syncDir', n: 1 },
  { name: 'old manifest unlink', kinds: 'unlink', n: 0, path: /MANIFEST-/, afterInstall: true, codes: ['EIO'] },
];

function inject(step: Step, code: string): Injector {
  return failNth(step.kinds, step.n, code, step.path ? { path: step.path } : {});
}

describe('ENOSPC and EIO during a flush', () => {
  for (const step of STEPS) {
    for (const code of step.codes ?? ['ENOSPC', 'EIO']) {
      it(`${code} at ${step.name}: reads go on, writes stop, nothing needed is deleted`, async () => {
        // Small WAL segments: the flush has older segments it would delete after the install.
        const h = await setup({ memtableSize: 1 << 20, walSegmentSize: 4096 });
        await writeRange(h, 0, 60, 0);
        await h.db.flush();
        await writeRange(h, 30, 120, 1);
        const walBefore = walFiles(h.mem);
        expect(walBefore.length).toBeGreaterThan(1);

        h.ffs.injector = inject(step, code);
        const flushed = await withTimeout(h.db.flush(), 10_000, 'the failing flush').then(
          () => undefined,
          (err: unknown) => err,
        );
        if (!step.afterInstall) {
          expect(flushed).toBeInstanceOf(IoError);
          expect((flushed as IoError).errno).toBe(code);
          // Until the manifest is durable, no WAL segment may go.
          expect(walFiles(h.mem)).toEqual(walBefore);
        }
        if (flushed === undefined) {
          // The flush completed (the failed step came after the install): it must not have
          // reported success while failing, and the DB keeps working.
          expect(h.db.stats().backgroundError).toBeUndefined();
          return;
        }
        const err = await expectFailedButSafe(h, code);
        expect(flushed).toBe(err);
      });
    }
  }

  it('EIO when deleting covered WAL segments after the install: nothing is lost', async () => {
    const h = await setup({ memtableSize: 1 << 20, walSegmentSize: 4096 });
    await writeRange(h, 0, 120, 0);
    expect(walFiles(h.mem).length).toBeGreaterThan(1);
    h.ffs.injector = failNth('unlink', 0, 'EIO', { path: /\.wal$/ });
    const flushed = await withTimeout(h.db.flush(), 10_000, 'the failing flush').then(
      () => undefined,
      (err: unknown) => err,
    );
    if (flushed === undefined) {
      await expectModel(h.db, h.model);
      await h.db.close();
      return;
    }
    await expectFailedButSafe(h, 'EIO');
  });

  it('a flush failing in the background (memtable full) stops writes with the error', async () => {
    const h = await setup({ ...TINY, fsync: 'os' });
    h.ffs.injector = failNth(['write', 'writeSync'], 0, 'ENOSPC', { path: /\.sst$/ });
    let rejected: unknown;
    for (let i = 0; i < 2000 && rejected === undefined; i++) {
      await h.db.put(key(i % 300), value(i, 0), { sync: true }).then(
        () => h.model.set(key(i % 300), value(i, 0)),
        (err: unknown) => (rejected = err),
      );
    }
    expect(rejected).toBeInstanceOf(IoError);
    expect(rejected).toBe(h.db.stats().backgroundError);
    await expectFailedButSafe(h, 'ENOSPC');
  });
});

describe('ENOSPC and EIO during a compaction', () => {
  const COMPACTION_STEPS = STEPS.filter((s) => s.name !== 'old manifest unlink');
  for (const step of COMPACTION_STEPS) {
    for (const code of ['ENOSPC', 'EIO']) {
      it(`${code} at ${step.name} of a full compaction`, async () => {
        // No automatic compaction: L0 keeps the four flushed tables until compact().
        const h = await setup({ ...TINY, memtableSize: 1 << 20, l0CompactionTrigger: 1000 });
        for (let round = 0; round < 4; round++) {
          await writeRange(h, round * 20, round * 20 + 60, round);
          await h.db.flush();
        }
        expect(h.db.stats().levels[0]!.tables).toBe(4);
        const tablesBefore = tableFiles(h.mem);

        h.ffs.injector = inject(step, code);
        const compacted = await withTimeout(h.db.compact(), 10_000, 'the failing compaction').then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(compacted).toBeInstanceOf(IoError);
        expect((compacted as IoError).errno).toBe(code);
        // The inputs are all still needed: none was deleted.
        for (const t of tablesBefore) expect(h.mem.listFiles()).toContain(t);
        const err = await expectFailedButSafe(h, code);
        expect(compacted).toBe(err);
      });
    }
  }

  for (const code of ['ENOSPC', 'EIO']) {
    for (const n of [0, 3, 9]) {
      it(`${code} on table write #${n} of the background flushes and compactions under a steady write load`, async () => {
        const h = await setup({ ...TINY, fsync: 'os' });
        // Fail the n-th table write after the first few flushes, and every one after it.
        let seen = 0;
        const armed: Injector = (op) => {
          if ((op.kind !== 'write' && op.kind !== 'writeSync') || !/\.sst$/.test(op.path)) return undefined;
          return seen++ >= 6 + n ? { error: code } : undefined;
        };
        h.ffs.injector = armed;
        let rejected: unknown;
        for (let i = 0; i < 3000 && rejected === undefined; i++) {
          const k = key((i * 37) % 400);
          const sync = i % 10 === 9;
          if (i % 11 === 10) {
            await h.db.delete(k, { sync }).then(
              () => h.model.set(k, undefined),
              (err: unknown) => (rejected = err),
            );
          } else {
            await h.db.put(k, value(i, 1), { sync }).then(
              () => h.model.set(k, value(i, 1)),
              (err: unknown) => (rejected = err),
            );
          }
        }
        expect(rejected).toBeInstanceOf(IoError);
        expect(h.db.stats().compactions + h.db.stats().flushes).toBeGreaterThan(0);
        // Unsynced acknowledged writes may be lost in the power loss of expectFailedButSafe:
        // make everything acknowledged durable first through the WAL, which is still healthy.
        await h.db.sync();
        await expectFailedButSafe(h, code);
      });
    }
  }
});

describe('a disk filling up', () => {
  for (const n of [5, 40, 200]) {
    it(`a short write then ENOSPC (write #${n}): acknowledged writes survive, the DB reopens`, async () => {
      const h = await setup({ ...TINY, fsync: 'os' });
      h.ffs.injector = shortWriteThenFail(n, 7, 'ENOSPC');
      const acked = new Map<string, Val | undefined>();
      let rejected: unknown;
      for (let i = 0; i < 1000 && rejected === undefined; i++) {
        const k = key((i * 13) % 200);
        await h.db.put(k, value(i, 2)).then(
          () => acked.set(k, value(i, 2)),
          (err: unknown) => (rejected = err),
        );
      }
      expect(rejected).toBeInstanceOf(IoError);
      // Reads still answer from what was acknowledged.
      for (const [k, v] of acked) expect(await h.db.get(k)).toBe(v);
      await expect(h.db.put('more', 'x')).rejects.toBeInstanceOf(IoError);
      // Space is freed; a process crash (no power loss) keeps every acknowledged write.
      h.ffs.injector = undefined;
      const image = h.mem.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
      await closeQuietly(h.db);
      const { db } = await openOn<string, Val>(image, { fsync: 'os', valueEncoding: 'utf8' });
      for (const [k, v] of acked) expect(await db.get(k), k).toBe(v);
      await db.put('more', 'y', { sync: true });
      await db.close();
      await settle();
      expect(await diskProblems(image)).toEqual([]);
    });
  }
});

describe("EIO on the WAL's fdatasync", () => {
  it("under fsync 'always': the write rejects, later writes reject, reads go on, reopen is Prefix-OK", async () => {
    const h = await setup({ fsync: 'always' });
    await writeRange(h, 0, 20, 0);
    h.ffs.injector = failNth('datasync', 0, 'EIO', { path: /\.wal$/ });
    const failed = h.db.put(key(3), 'never acknowledged');
    await expect(failed).rejects.toMatchObject({ code: 'IO', errno: 'EIO' });
    await expect(h.db.put(key(4), 'later')).rejects.toMatchObject({ code: 'IO' });
    await expect(h.db.batch([{ type: 'del', key: key(5) }])).rejects.toMatchObject({ code: 'IO' });
    expect(h.db.wal.stats().failure).toBeDefined();
    // Reads are unaffected by the failed writes.
    await expectModel(h.db, h.model);
    h.ffs.injector = undefined;
    await expect(h.db.put(key(4), 'still failed')).rejects.toMatchObject({ code: 'IO' });
    await h.db.close().catch(noop);
    // After a power loss: every acknowledged write; the failed one may or may not be there.
    const image = h.mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' });
    const { db } = await openOn<string, Val>(image, { fsync: 'always', valueEncoding: 'utf8' });
    const got3 = await db.get(key(3));
    expect([value(3, 0), 'never acknowledged']).toContain(got3);
    h.model.set(key(3), got3);
    await expectModel(db, h.model);
    await db.close();
  });

  it('with sync: true under fsync os: the write rejects and writing stops', async () => {
    const h = await setup({ fsync: 'os' });
    await writeRange(h, 0, 20, 0);
    h.ffs.injector = failNth('datasync', 0, 'EIO', { path: /\.wal$/ });
    await expect(h.db.put(key(1), 'x', { sync: true })).rejects.toMatchObject({ code: 'IO', errno: 'EIO' });
    await expect(h.db.put(key(2), 'y')).rejects.toMatchObject({ code: 'IO' });
    for (let i = 2; i < 20; i++) expect(await h.db.get(key(i))).toBe(h.model.get(key(i)));
    await h.db.close().catch(noop);
  });
});

describe('one fault at a random mutating operation', () => {
  const T0 = 1_700_000_000_000;
  const writeAt = (i: number): { ops: WriteOps<Val>; sync: boolean } => {
    const k = key((i * 7) % 60);
    const sync = i % 10 === 9;
    if (i % 9 === 4)
      return {
        ops: [
          { type: 'put', key: k, value: value(i, 3) },
          { type: 'del', key: key((i * 7 + 1) % 60) },
        ],
        sync,
      };
    if (i % 6 === 5) return { ops: [{ type: 'del', key: k }], sync };
    return { ops: [{ type: 'put', key: k, value: value(i, 3) }], sync };
  };
  const WRITES = Array.from({ length: 240 }, (_, i) => writeAt(i));
  const STATES = prefixStates(
    new Map(),
    WRITES.map((w) => ({ ops: w.ops, now: T0 })),
    T0,
  );

  it('the DB never hangs, reads show the acknowledged writes, power loss and reopen are Prefix-OK', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 700 }),
        fc.constantFrom('EIO', 'ENOSPC'),
        fc.boolean(),
        fc.constantFrom<DBOptions['fsync']>('os', 'always', { batchMs: 1 }),
        async (n, code, persistent, fsync) => {
          const options: DBOptions = { ...TINY, memtableSize: 4096, fsync, valueEncoding: 'utf8' };
          const mem = new MemFileSystem();
          const ffs = new FaultFileSystem(new ProcessFs(mem));
          let seen = 0;
          let fired = false;
          ffs.injector = (op) => {
            if (!op.mutating) return undefined;
            const i = seen++;
            if (i === n || (persistent && i > n)) {
              fired = true;
              return { error: code };
            }
            return undefined;
          };
          const log = new WriteLog<Val>(fsync === 'always');
          let db: DB<string, Val> | undefined;
          let stopped: unknown;
          try {
            db = await withTimeout(DB.open<string, Val>(DIR, { ...options, fs: ffs }), 10_000, 'DB.open');
            const d = db;
            for (let i = 0; i < WRITES.length && stopped === undefined; i++) {
              const w = WRITES[i]!;
              await withTimeout(
                log.track(w.ops, T0, w.sync, () => d.batch(w.ops, { sync: w.sync })),
                10_000,
                `write ${i}`,
              ).catch((err: unknown) => (stopped = err));
              if (i === 120 && stopped === undefined)
                await withTimeout(log.barrier(d.flush()), 10_000, 'flush').catch((err: unknown) => (stopped = err));
            }
            if (stopped === undefined)
              await withTimeout(log.barrier(d.compact()), 10_000, 'compact').catch((err: unknown) => (stopped = err));
          } catch (err) {
            stopped = err; // the open itself failed
          }
          if (stopped !== undefined) {
            expect(fired, `a failure without a fault: ${String(stopped)}`).toBe(true);
            expect(String(stopped)).not.toMatch(/did not settle/);
          }
          const snap = log.snapshot();
          if (db) {
            // Reads show the acknowledged writes, and the failed one wholly or not at all (a write
            // whose append succeeded but whose sync failed is applied, then rejected).
            const reads = render(await scan(db));
            expect([STATES[snap.acked], STATES[snap.issued]], 'reads after the fault').toContain(reads);
          }
          // A power loss now.
          const image = mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' });
          const crashed = await openOn<string, Val>(image, options);
          const afterCrash = render(await scan(crashed.db));
          expect(
            matchingPrefixes(STATES, afterCrash, snap.mustKeep, snap.issued).length,
            `power loss: ${snap.issued} issued, ${snap.mustKeep} durable`,
          ).toBeGreaterThan(0);
          await crashed.db.close();
          await settle();
          expect(await diskProblems(image)).toEqual([]);
          // The fault clears; the process restarts (the page cache survived).
          ffs.injector = undefined;
          await closeQuietly(db);
          const { db: again } = await openOn<string, Val>(mem, options);
          const afterReopen = render(await scan(again));
          expect(
            matchingPrefixes(STATES, afterReopen, snap.acked, snap.issued).length,
            `reopen: ${snap.issued} issued, ${snap.acked} acknowledged`,
          ).toBeGreaterThan(0);
          await again.put('after', 'fault', { sync: true });
          await again.compact();
          expect(await again.get('after')).toBe('fault');
          await again.close();
          await settle();
          expect(await diskProblems(mem)).toEqual([]);
        },
      ),
      { numRuns: Math.max(1, Math.round(80 * Number(process.env.FC_RUNS_SCALE ?? 1))) },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Damage

/** A closed DB whose data are all in tables (nothing to replay), with its table files. */
async function tablesOnly(
  compression: 'lz4' | 'none',
): Promise<{ mem: MemFileSystem; model: Map<string, Val | undefined>; tables: string[] }> {
  const h = await setup({ memtableSize: 1 << 20, compression });
  await writeRange(h, 0, 150, 0);
  await h.db.flush();
  await h.db.close();
  const tables = tableFiles(h.mem);
  expect(tables.length).toBeGreaterThan(0);
  return { mem: h.mem, model: h.model, tables };
}

async function dataBytes(mem: MemFileSystem, file: string): Promise<number> {
  const reader = await TableReader.open(mem, file);
  try {
    expect(reader.properties.dataBlockCount).toBeGreaterThan(1);
    return reader.properties.dataBytes;
  } finally {
    await reader.close();
  }
}

function flipped(bytes: Uint8Array, offset: number, mask = 0x01): Uint8Array {
  const copy = bytes.slice();
  copy[offset] = copy[offset]! ^ mask;
  return copy;
}

/** Offsets to damage in [from, to): both ends and a stride through the middle. */
function sampleOffsets(from: number, to: number, count: number): number[] {
  const out = new Set<number>([from, from + 1, to - 2, to - 1]);
  const step = Math.max(1, Math.floor((to - from) / count));
  for (let o = from; o < to; o += step) out.add(o);
  return [...out].filter((o) => o >= from && o < to).sort((a, b) => a - b);
}

function expectCorruption(err: unknown, file?: string): void {
  expect(err, String(err)).toBeInstanceOf(CorruptionError);
  expect((err as CorruptionError).code).toBe('CORRUPTION');
  if (file) expect((err as CorruptionError).file).toBe(file);
}

describe('a damaged table', () => {
  for (const compression of ['none', 'lz4'] as const) {
    it(`a flipped byte in a data block (${compression}): CORRUPTION from get and iterators, never a wrong value`, async () => {
      const { mem, model, tables } = await tablesOnly(compression);
      const file = tables[0]!;
      const original = mem.readFileBytes(file);
      const end = await dataBytes(mem, file);
      const offsets = sampleOffsets(0, end, 60);
      for (const offset of offsets) {
        for (const mask of [0x01, 0x80]) {
          mem.writeFileBytes(file, flipped(original, offset, mask));
          const { db } = await openOn<string, Val>(mem, { fsync: 'os', valueEncoding: 'utf8', blockCacheSize: 0 });
          let corruptions = 0;
          for (const [k, v] of model) {
            try {
              expect(await db.get(k), `${k} with byte ${offset} ^ ${mask}`).toBe(v);
            } catch (err) {
              if (!(err instanceof CorruptionError)) throw err;
              expectCorruption(err, file);
              corruptions++;
            }
          }
          expect(corruptions, `byte ${offset} ^ ${mask} was not detected by any get`).toBeGreaterThan(0);
          for (const reverse of [false, true]) {
            const seen: [string, Val][] = [];
            let failure: unknown;
            try {
              for await (const kv of db.iterator({ reverse })) seen.push(kv);
            } catch (err) {
              failure = err;
            }
            expectCorruption(failure, file);
            // What it yielded before the damage is right.
            const want = expected(model);
            expect(seen).toEqual((reverse ? [...want].reverse() : want).slice(0, seen.length));
          }
          await db.close();
        }
      }
      mem.writeFileBytes(file, original);
      const { db } = await openOn<string, Val>(mem, { fsync: 'os', valueEncoding: 'utf8' });
      await expectModel(db, model);
      await db.close();
    });
  }

  it("damage to a table's filter, properties, index or footer makes DB.open reject with CORRUPTION", async () => {
    const { mem, tables } = await tablesOnly('lz4');
    const file = tables[0]!;
    const original = mem.readFileBytes(file);
    const start = await dataBytes(mem, file);
    const files = mem.listFiles();
    for (const offset of sampleOffsets(start, original.length, 80)) {
      mem.writeFileBytes(file, flipped(original, offset));
      const err = await DB.open(DIR, { fs: new ProcessFs(mem), valueEncoding: 'utf8' }).then(
        async (db) => {
          await db.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expectCorruption(err, file);
      expect(mem.listFiles()).toEqual(files);
    }
    for (const size of [0, 10, original.length - 57, original.length - 1]) {
      mem.writeFileBytes(file, original.subarray(0, size));
      await expect(DB.open(DIR, { fs: new ProcessFs(mem), valueEncoding: 'utf8' }), `table cut to ${size} bytes`).rejects.toMatchObject({
        code: 'CORRUPTION',
      });
      expect(mem.listFiles()).toEqual(files);
    }
  });

  it('a table the manifest names but the directory lacks makes DB.open reject with CORRUPTION', async () => {
    const { mem, tables } = await tablesOnly('none');
    await mem.unlink(tables[0]!);
    await mem.syncDir(DIR);
    await expect(DB.open(DIR, { fs: new ProcessFs(mem), valueEncoding: 'utf8' })).rejects.toMatchObject({ code: 'CORRUPTION' });
  });
});

describe('a damaged CURRENT or MANIFEST', () => {
  async function damagedOpen(mem: MemFileSystem, what: string): Promise<void> {
    const files = mem.listFiles();
    const err = await DB.open(DIR, { fs: new ProcessFs(mem), valueEncoding: 'utf8' }).then(
      async (db) => {
        const n = (await scan(db)).length;
        await db.close();
        return new Error(`DB.open succeeded on ${what} (${n} entries)`);
      },
      (e: unknown) => e,
    );
    expectCorruption(err);
    // A refused open changes nothing on disk.
    expect(mem.listFiles(), what).toEqual(files);
  }

  it('CURRENT: flipped bytes, cut, emptied, garbage, or missing while tables exist', async () => {
    const { mem } = await tablesOnly('none');
    const file = path.posix.join(DIR, 'CURRENT');
    const original = mem.readFileBytes(file);
    for (let offset = 0; offset < original.length; offset++) {
      for (const mask of [0x01, 0x20]) {
        mem.writeFileBytes(file, flipped(original, offset, mask));
        await damagedOpen(mem, `CURRENT with byte ${offset} ^ ${mask}`);
      }
    }
    for (let size = 0; size < original.length; size++) {
      mem.writeFileBytes(file, original.subarray(0, size));
      await damagedOpen(mem, `CURRENT cut to ${size} bytes`);
    }
    mem.writeFileBytes(file, Buffer.from('MANIFEST-999999 00000000\n'));
    await damagedOpen(mem, 'CURRENT naming a missing manifest with a bad checksum');
    mem.writeFileBytes(file, Buffer.concat([original, Buffer.from('x')]));
    await damagedOpen(mem, 'CURRENT with trailing garbage');
    await mem.unlink(file);
    await mem.syncDir(DIR);
    await damagedOpen(mem, 'a directory with tables and no CURRENT');
    mem.writeFileBytes(file, original);
    const { db } = await openOn(mem, { valueEncoding: 'utf8' });
    expect((await scan(db)).length).toBeGreaterThan(0);
    await db.close();
  });

  it('CURRENT missing while only the WAL holds data', async () => {
    const h = await setup({ memtableSize: 1 << 20 });
    await writeRange(h, 0, 10, 0);
    await h.db.close();
    expect(tableFiles(h.mem)).toEqual([]);
    await h.mem.unlink(path.posix.join(DIR, 'CURRENT'));
    await h.mem.syncDir(DIR);
    await damagedOpen(h.mem, 'a directory with a WAL and no CURRENT');
  });

  it('MANIFEST: every flipped byte, cuts, and a missing manifest', async () => {
    const { mem } = await tablesOnly('none');
    const manifest = mem.listFiles().find((f) => /MANIFEST-\d+$/.test(f))!;
    const original = mem.readFileBytes(manifest);
    for (let offset = 0; offset < original.length; offset++) {
      mem.writeFileBytes(manifest, flipped(original, offset));
      await damagedOpen(mem, `MANIFEST with byte ${offset} flipped`);
    }
    for (const size of [0, 8, 19, 20, original.length - 1]) {
      mem.writeFileBytes(manifest, original.subarray(0, size));
      await damagedOpen(mem, `MANIFEST cut to ${size} bytes`);
    }
    mem.writeFileBytes(manifest, Buffer.concat([original, Buffer.alloc(4)]));
    await damagedOpen(mem, 'MANIFEST with trailing zeros');
    await mem.unlink(manifest);
    await mem.syncDir(DIR);
    await damagedOpen(mem, 'a missing MANIFEST');
  });
});

describe('a damaged WAL', () => {
  /** 20 writes flushed into a table, then 10 more in the same WAL segment; closed. */
  async function flushedThenMore(): Promise<{ mem: MemFileSystem; segment: string; flushedEnd: number }> {
    const h = await setup({ memtableSize: 1 << 20 });
    await writeRange(h, 0, 20, 0);
    await h.db.flush();
    const flushedEnd = h.db.wal.stats().writtenPosition.offset;
    await writeRange(h, 20, 30, 0);
    await h.db.close();
    const segments = walFiles(h.mem);
    expect(segments).toHaveLength(1);
    return { mem: h.mem, segment: segments[0]!, flushedEnd };
  }

  const all = Array.from({ length: 30 }, (_, i): [string, Val] => [key(i), value(i, 0)]);

  for (const where of ['already flushed into a table', 'not yet flushed'] as const) {
    it(`a flipped byte in a record ${where}: strict open rejects with CORRUPTION unless the record is in a table; salvage opens, keeps the tables and takes new writes`, async () => {
      const { mem, segment, flushedEnd } = await flushedThenMore();
      const bytes = mem.readFileBytes(segment);
      const offset = where === 'already flushed into a table' ? 100 : flushedEnd + 60;
      mem.writeFileBytes(segment, flipped(bytes, offset));
      const files = mem.listFiles();
      if (where === 'already flushed into a table') {
        // Those records are in a table already: the DB tells the WAL it does not need them, so a
        // strict open resumes past the damage and loses nothing.
        const { db: strict } = await openOn<string, Val>(mem, { valueEncoding: 'utf8' });
        expect(await scan(strict)).toEqual(all);
        await strict.close();
      } else {
        await expect(DB.open(DIR, { fs: new ProcessFs(mem), valueEncoding: 'utf8' })).rejects.toMatchObject({ code: 'CORRUPTION' });
        expect(mem.listFiles()).toEqual(files);
      }

      const opened = await DB.open<string, Val>(DIR, { fs: new ProcessFs(mem), valueEncoding: 'utf8', recovery: 'salvage' }).then(
        (db) => db,
        (err: unknown) => err as Error,
      );
      expect(opened, `salvage open: ${String(opened)}`).toBeInstanceOf(DB);
      const db = opened as DB<string, Val>;
      const got = await scan(db);
      // Everything in the table, then a prefix of the rest.
      expect(got.length).toBeGreaterThanOrEqual(20);
      expect(got).toEqual(all.slice(0, got.length));
      if (where === 'already flushed into a table') expect(got, 'the damaged records were not needed').toEqual(all);
      await db.put('new', 'after salvage', { sync: true });
      await db.close();
      const { db: again } = await openOn<string, Val>(mem, { valueEncoding: 'utf8' });
      expect(await again.get('new')).toBe('after salvage');
      expect((await scan(again)).filter(([k]) => k !== 'new')).toEqual(got);
      await again.close();
    });
  }
});
