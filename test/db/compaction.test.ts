/**
 * Compaction as the DB runs it: trivial moves (tables that change level in the manifest only),
 * the round-robin compaction pointers the manifest keeps, the grandparent-overlap limit of a
 * compaction job's output tables, and honest write-stall statistics. The picker's pure parts are
 * in compaction-picker.test.ts.
 *
 * The trivial-move crash test: ascending keys make disjoint L0 tables, which move to L1 and L2
 * without a rewrite. The power fails before each mutating file operation in turn (everything
 * unsynced dropped, or a seeded random prefix of it kept); every image must open, hold a prefix
 * of the writes that includes every write acknowledged as synced, with the right bytes, and leave
 * a clean directory after close.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BackgroundMode } from '../../src/db/background.js';
import { GrandparentLimit, runCompactionJob, type CompactionJob } from '../../src/db/compaction-job.js';
import { tableFileName } from '../../src/db/filenames.js';
import { DB } from '../../src/db/index.js';
import { readCurrentManifest, type TableMeta } from '../../src/db/manifest.js';
import { compareKeys, type Entry } from '../../src/entry.js';
import { crashAtMutatingOp, FaultFileSystem } from '../../src/fs/fault.js';
import { MemFileSystem, type CrashOptions } from '../../src/fs/mem.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { writeTable } from '../../src/sstable/table-writer.js';
import { closeQuietly, DIR, diskProblems, openOn, scan, seeded, TINY, withTimeout } from './helpers/harness.js';

const MODES: BackgroundMode[] = ['inline', 'worker'];
const keyOf = (i: number): string => `key${String(i).padStart(5, '0')}`;
const valueFor = (i: number): string => `value-${i}-`.padEnd(40, String.fromCharCode(0x61 + (i % 26)));

/** Waits until the DB owes no compaction and runs none; throws once background work has failed. */
async function quiesce(db: DB<string, string>): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const s = db.stats();
    if (s.backgroundError !== undefined) throw s.backgroundError;
    if (s.compactionsRunning === 0 && s.compactionDebtBytes === 0 && s.frozenMemtables === 0) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('compactions did not settle');
}

describe.each(MODES)('trivial moves (background %s)', (background) => {
  const OPTIONS = { ...TINY, background, valueEncoding: 'utf8' as const };

  it('ascending keys: L0 tables move down without a rewrite, and every key reads back, also after reopening', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, OPTIONS);
    for (let i = 0; i < 400; i++) await db.put(keyOf(i), valueFor(i));
    await db.flush();
    await quiesce(db);
    const s = db.stats();
    expect(s.trivialMoves).toBeGreaterThan(0);
    // Moves write nothing: with ascending keys every compaction is a move, so no table bytes
    // were written but the flushes'.
    expect(s.compactionBytesWritten).toBe(0);
    expect(s.levels.slice(1).some((l) => l.tables > 0)).toBe(true);
    const want = Array.from({ length: 400 }, (_, i) => [keyOf(i), valueFor(i)]);
    expect(await scan(db)).toEqual(want);
    await db.close();
    expect(await diskProblems(mem)).toEqual([]);
    const { db: again } = await openOn<string, string>(mem, OPTIONS);
    expect(await scan(again)).toEqual(want);
    for (const i of [0, 137, 399]) expect(await again.get(keyOf(i))).toBe(valueFor(i));
    await again.close();
  });

  it('a crash at any mutating file operation keeps every synced write, a prefix of the others, and no orphan', async () => {
    const WRITES = 120;
    const images: { label: string; fs: MemFileSystem; synced: number; issued: number }[] = [];
    const rng = seeded(41);
    for (let k = 0; ; k++) {
      const mem = new MemFileSystem();
      let taken = false;
      let synced = -1;
      let issued = 0;
      const fault = new FaultFileSystem(
        mem,
        crashAtMutatingOp(k, () => {
          taken = true;
          const crashes: [string, CrashOptions][] = [
            ['dropped', {}],
            ['prefix', { unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng }],
          ];
          for (const [label, options] of crashes) images.push({ label: `k=${k} ${label}`, fs: mem.crashClone(options), synced, issued });
        }),
      );
      let db: DB<string, string> | undefined;
      try {
        await withTimeout(
          (async () => {
            db = await DB.open<string, string>(DIR, { ...OPTIONS, fs: fault });
            for (let i = 0; i < WRITES; i++) {
              const sync = i % 20 === 19;
              issued = i + 1;
              await db.put(keyOf(i), valueFor(i), { sync });
              if (sync) synced = i;
            }
            await db.flush();
            await quiesce(db);
            await db.close();
          })(),
          30_000,
          'the workload',
        );
      } catch {
        await closeQuietly(db);
      }
      if (!taken) {
        expect(k).toBeGreaterThan(20); // the workload did reach the moves: many operations
        break;
      }
      // Keep the images' count bounded: check them as they come.
      for (const image of images.splice(0)) {
        const { db: opened } = await openOn<string, string>(image.fs, OPTIONS);
        const got = await scan(opened);
        // A prefix of the writes (ascending keys, each awaited), with their exact values...
        expect(got, image.label).toEqual(Array.from({ length: got.length }, (_, i) => [keyOf(i), valueFor(i)]));
        // ...that holds every write acknowledged as synced, and none not yet issued.
        expect(got.length, image.label).toBeGreaterThanOrEqual(image.synced + 1);
        expect(got.length, image.label).toBeLessThanOrEqual(image.issued);
        await opened.close();
        expect(await diskProblems(image.fs), image.label).toEqual([]);
      }
    }
  }, 600_000);
});

describe('compaction pointers', () => {
  it('a size compaction records its round-robin position in the manifest, and a reopened DB starts from it', async () => {
    const mem = new MemFileSystem();
    const options = { ...TINY, valueEncoding: 'utf8' as const, background: 'inline' as const };
    const { db } = await openOn<string, string>(mem, options);
    // Random keys (overlapping tables: merges, not moves) until L1 has been compacted into L2.
    const rng = seeded(7);
    for (let i = 0; i < 1500; i++) await db.put(keyOf(Math.floor(rng() * 3000)), valueFor(i));
    await db.flush();
    await quiesce(db);
    await db.close();
    const manifest = await readCurrentManifest(mem, DIR);
    const pointers = manifest!.state.compactPointers;
    expect(pointers?.[1]).toBeInstanceOf(Uint8Array);
    // The pointer is the largest key of a table that left L1: a key that was written.
    expect(Buffer.from(pointers![1]!).toString()).toMatch(/^key\d{5}$/);
    // Reopened, the DB goes on from there (and keeps it in the manifests it installs).
    const { db: again } = await openOn<string, string>(mem, options);
    for (let i = 0; i < 300; i++) await again.put(keyOf(Math.floor(rng() * 3000)), valueFor(i));
    await again.flush();
    await quiesce(again);
    await again.close();
    expect((await readCurrentManifest(mem, DIR))!.state.compactPointers?.[1]).toBeInstanceOf(Uint8Array);
    expect(await diskProblems(mem)).toEqual([]);
  });
});

describe('a compaction job cuts its output at the grandparent-overlap limit', () => {
  it('no output table overlaps more than the limit plus one grandparent table; without grandparents it cuts by size only', async () => {
    const mem = new MemFileSystem();
    await mem.mkdir(DIR);
    const enc = (s: string): Uint8Array => Buffer.from(s);
    const entry = (i: number, seq: number): Entry => ({
      key: enc(keyOf(i)),
      seq,
      kind: 'put',
      value: enc(valueFor(i)),
      expiresAt: undefined,
    });
    // One input table with keys 0..999.
    const inputFile = path.join(DIR, tableFileName(1));
    const props = await writeTable(
      mem,
      inputFile,
      Array.from({ length: 1000 }, (_, i) => entry(i, i + 1)),
    );
    const input: TableMeta = {
      fileNumber: 1,
      size: (await mem.stat(inputFile)).size,
      smallest: props.smallestKey!,
      largest: props.largestKey!,
      minSeq: props.minSeq,
      maxSeq: props.maxSeq,
      entries: props.entryCount,
    };
    // Grandparents: 20 tables of 1000 bytes, each covering 50 keys.
    const grandparents = Array.from({ length: 20 }, (_, g) => ({
      smallest: enc(keyOf(g * 50)),
      largest: enc(keyOf(g * 50 + 49)),
      size: 1000,
    }));
    let next = 10;
    const job = (overlap: number, gps: typeof grandparents): CompactionJob => ({
      kind: 'compaction',
      dir: DIR,
      compression: 'none',
      inputs: [[input], []],
      overlappingFirst: false,
      below: [],
      tableFileSize: 1 << 30,
      grandparents: gps,
      maxGrandparentOverlap: overlap,
      now: 0,
    });
    const env = {
      fs: mem,
      openInput: (meta: TableMeta) => TableReader.open(mem, path.join(DIR, tableFileName(meta.fileNumber))),
      releaseInput: (r: TableReader) => r.close(),
      newFileNumber: () => next++,
    };
    const limited = await runCompactionJob(job(3000, grandparents), env);
    expect(limited.tables.length).toBeGreaterThan(3);
    expect(limited.profile.grandparentCuts).toBe(limited.tables.length - 1);
    expect(limited.profile.entriesIn).toBe(1000);
    expect(limited.profile.entriesOut).toBe(1000);
    let total = 0;
    for (const t of limited.tables) {
      total += t.meta.entries;
      const overlapped = grandparents.filter(
        (g) => compareKeys(g.largest, t.meta.smallest) >= 0 && compareKeys(g.smallest, t.meta.largest) <= 0,
      );
      expect(overlapped.length * 1000).toBeLessThanOrEqual(3000 + 2 * 1000);
    }
    expect(total).toBe(1000);
    // Consecutive outputs do not overlap and stay in key order.
    for (let i = 1; i < limited.tables.length; i++) {
      expect(compareKeys(limited.tables[i - 1]!.meta.largest, limited.tables[i]!.meta.smallest)).toBeLessThan(0);
    }
    const unlimited = await runCompactionJob(job(0, grandparents), env);
    expect(unlimited.tables).toHaveLength(1);
    expect((await runCompactionJob(job(3000, []), env)).tables).toHaveLength(1);
    // The limiter alone: a key past many grandparents cuts once, then counting starts again.
    const limit = new GrandparentLimit(grandparents, 3000);
    expect(limit.shouldStopBefore(enc(keyOf(0)))).toBe(false);
    expect(limit.shouldStopBefore(enc(keyOf(999)))).toBe(true);
    expect(limit.shouldStopBefore(enc(keyOf(999)))).toBe(false);
  });
});

describe('write-stall statistics', () => {
  it('stop and slowdown times are wall time (never more than the run took), and each write counts at most once', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, {
      ...TINY,
      valueEncoding: 'utf8',
      background: 'inline',
      l0SlowdownTrigger: 2,
      l0StopTrigger: 3,
      maxFrozenMemtables: 1,
    });
    const t0 = performance.now();
    let n = 0;
    await Promise.all(
      Array.from({ length: 32 }, async (_, w) => {
        for (let i = 0; i < 40; i++) {
          await db.put(`w${w}-${i}`, valueFor(i));
          n++;
        }
      }),
    );
    const wall = performance.now() - t0;
    const s = db.stats();
    // 32 writers waiting together: the old sum of waits would be many times the wall time.
    expect(s.writeStalls).toBeGreaterThan(0);
    expect(s.writeStallMs).toBeGreaterThan(0);
    expect(s.writeStallMs).toBeLessThanOrEqual(wall);
    expect(s.writeSlowdownMs).toBeLessThanOrEqual(wall);
    expect(s.writeStallMs + s.writeSlowdownMs).toBeLessThanOrEqual(wall);
    expect(s.writeStalls + s.writeSlowdowns).toBeLessThanOrEqual(n);
    await db.close();
  });
});
