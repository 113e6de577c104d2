/**
 * Adversarial crash enumeration (issue #9 review): a power loss before every mutating file
 * operation of
 * - the first open of a new DB (OPTIONS -> WAL -> CURRENT), then writes, a flush and a close;
 * - the open of a DB made by sediment 0.1.0 (no OPTIONS, no wal/SEGMENTS), whose replay flushes;
 * - an open that raises maxValueSize (the OPTIONS rewrite), then writes that use the new limit;
 * - DB.repair of a DB with a damaged table, and of one with a damaged manifest, both with
 *   unflushed WAL data.
 * After each crash image (several policies for unsynced data and directory operations), the DB
 * must open, hold every write acknowledged as durable and no write that was not issued (a prefix
 * of the issued writes, over the base state), and still work.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemFileSystem, type CrashOptions } from '../../src/fs/mem.js';
import { FaultFileSystem, crashAtMutatingOp, type FsOp } from '../../src/fs/fault.js';
import { DB } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import { readCurrentManifest } from '../../src/db/manifest.js';
import { tableFileName } from '../../src/db/filenames.js';
import { DIR, ProcessFs, closeQuietly, noop, openOn, scan, seeded, withTimeout } from './helpers/harness.js';

const POLICIES: [string, (k: number) => CrashOptions][] = [
  ['drop/drop', () => ({ unsyncedData: 'drop', unsyncedDirOps: 'drop' })],
  ['keep/keep', () => ({ unsyncedData: 'keep', unsyncedDirOps: 'keep' })],
  ['keep/drop', () => ({ unsyncedData: 'keep', unsyncedDirOps: 'drop' })],
  ['drop/keep', () => ({ unsyncedData: 'drop', unsyncedDirOps: 'keep' })],
  ['prefix/prefix', (k) => ({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(7919 * k + 1) })],
];

/** The writes a workload issued and which of them are known durable. */
class Log {
  issued = 0;
  durable = 0;
  snapshot(): { issued: number; durable: number } {
    return { issued: this.issued, durable: this.durable };
  }
}

const key = (i: number): string => `w${String(i).padStart(4, '0')}`;

/**
 * Runs `workload` on a copy of `base` once per crash point k (power loss just before the k-th
 * mutating file operation), and `check`s every crash image. Returns the problems and counts.
 */
async function enumerate(
  base: MemFileSystem,
  workload: (fs: FaultFileSystem, log: Log) => Promise<void>,
  check: (image: MemFileSystem, snap: { issued: number; durable: number }) => Promise<string[]>,
): Promise<{ points: number; images: number; problems: string[] }> {
  const problems: string[] = [];
  let images = 0;
  for (let k = 0; ; k++) {
    const mem = base.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
    const proc = new ProcessFs(mem);
    const log = new Log();
    let taken: { label: string; image: MemFileSystem }[] = [];
    let snap = { issued: 0, durable: 0 };
    let at: FsOp | undefined;
    const fs = new FaultFileSystem(
      proc,
      crashAtMutatingOp(k, (op) => {
        at = op;
        snap = log.snapshot();
        taken = POLICIES.map(([label, p]) => ({ label, image: mem.crashClone(p(k)) }));
      }),
    );
    let error: unknown;
    try {
      await withTimeout(workload(fs, log), 30_000, 'workload');
    } catch (err) {
      error = err;
    }
    proc.kill();
    if (!at) {
      if (error) problems.push(`the workload failed without a crash: ${String(error)}`);
      return { points: k, images, problems };
    }
    for (const { label, image } of taken) {
      images++;
      for (const p of await check(image, snap))
        problems.push(`k=${k} (before ${at.kind} ${at.path}${at.to ? ` -> ${at.to}` : ''}), ${label}: ${p}`);
    }
  }
}

/** Expects `got` (a scan) to be `baseKeys` plus writes 0..j-1 for some durable <= j <= issued. */
function prefixProblems(got: [string, string][], baseKeys: Map<string, string>, snap: { issued: number; durable: number }): string[] {
  const want = new Map(baseKeys);
  const wrote = got.filter(([k]) => k.startsWith('w'));
  const others = got.filter(([k]) => !k.startsWith('w'));
  const problems: string[] = [];
  if (JSON.stringify(others) !== JSON.stringify([...want].sort())) {
    problems.push(`base state changed: ${others.length} of ${want.size} base keys, e.g. ${JSON.stringify(others.slice(0, 2))}`);
  }
  const j = wrote.length;
  for (let i = 0; i < j; i++) {
    if (wrote[i]![0] !== key(i) || wrote[i]![1] !== valueFor(i)) {
      problems.push(`write ${i} wrong: ${JSON.stringify(wrote[i]).slice(0, 80)}`);
      break;
    }
  }
  if (j < snap.durable) problems.push(`lost durable writes: ${j} of ${snap.durable} durable writes present`);
  if (j > snap.issued) problems.push(`${j} writes present but only ${snap.issued} issued`);
  return problems;
}

const valueFor = (i: number): string => `v${i}-`.padEnd(40 + (i % 7) * 25, String.fromCharCode(97 + (i % 26)));

/** Opens `image`, checks the state, and that a synced write survives another power loss. */
async function checkOpens(
  image: MemFileSystem,
  options: DBOptions,
  baseKeys: Map<string, string>,
  snap: { issued: number; durable: number },
): Promise<string[]> {
  let db: DB<string, string> | undefined;
  try {
    try {
      ({ db } = await withTimeout(openOn<string, string>(image, options), 10_000, 'open'));
    } catch (err) {
      return [`DB.open failed: ${String(err)}`];
    }
    const problems = prefixProblems(await scan(db), baseKeys, snap);
    await db.put('zz-marker', 'synced', { sync: true });
    const second = image.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' });
    await db.close();
    db = undefined;
    ({ db } = await openOn<string, string>(second, options));
    if ((await db.get('zz-marker')) !== 'synced') problems.push('a synced write after recovery was lost in the next power loss');
    await db.close();
    db = undefined;
    return problems;
  } catch (err) {
    return [`check failed: ${(err as Error).stack ?? String(err)}`];
  } finally {
    await closeQuietly(db);
  }
}

const SMALL: DBOptions = {
  memtableSize: 2048,
  walSegmentSize: 4096,
  tableFileSize: 4096,
  levelBaseSize: 8192,
  l0CompactionTrigger: 2,
  fsync: 'os',
  valueEncoding: 'utf8',
};

/** Writes `n` puts from `from`, each synced, tracking them in `log`. */
async function writes(db: DB<string, string>, log: Log, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i++) {
    log.issued = i + 1;
    await db.put(key(i), valueFor(i), { sync: true });
    log.durable = i + 1;
  }
}

function group(problems: string[]): string[] {
  const g = new Map<string, { n: number; first: string }>();
  for (const p of problems) {
    const kind = p
      .replace(/^k=\d+ /, '')
      .replace(/\d+/g, '#')
      .slice(0, 140);
    const e = g.get(kind);
    if (e) e.n++;
    else g.set(kind, { n: 1, first: p });
  }
  return [...g.values()].map((e) => `${e.n} x ${e.first}`);
}

describe('power loss at every file operation', () => {
  it('of a first open (new DB), then writes, a flush and a close: the DB opens with every durable write', {
    timeout: 300_000,
  }, async () => {
    const base = new MemFileSystem();
    const r = await enumerate(
      base,
      async (fs, log) => {
        const db = await DB.open<string, string>(DIR, { ...SMALL, fs });
        try {
          await writes(db, log, 0, 12);
          await db.flush();
          await writes(db, log, 12, 6);
        } finally {
          await db.close().catch(noop);
        }
      },
      (image, snap) => checkOpens(image, SMALL, new Map(), snap),
    );
    if (process.env.DB_TEST_VERBOSE) console.log('first open:', r.points, 'crash points,', r.images, 'images');
    expect(r.points).toBeGreaterThan(30);
    expect(group(r.problems)).toEqual([]);
  });

  // Fails today at the crash points inside the WAL's adoption (SEGMENTS.tmp written, not yet
  // renamed): the next open is a CorruptionError "the WAL state file is missing while 2 segment
  // file(s) exist", because recovery refuses to adopt a log beside a SEGMENTS.tmp.
  it('of the open of a 0.1.0 DB (no OPTIONS, no wal/SEGMENTS) whose replay flushes: every acknowledged write stays', {
    timeout: 300_000,
  }, async () => {
    const { mem, baseKeys } = await legacyDB();
    // The replay flushes: memtableSize below what the WAL holds.
    const opts: DBOptions = { ...SMALL, memtableSize: 1024 };
    const r = await enumerate(
      mem,
      async (fs, log) => {
        const db = await DB.open<string, string>(DIR, { ...opts, fs });
        try {
          await writes(db, log, 0, 6);
        } finally {
          await db.close().catch(noop);
        }
      },
      (image, snap) => checkOpens(image, opts, baseKeys, snap),
    );
    if (process.env.DB_TEST_VERBOSE) console.log('0.1.0 open:', r.points, 'crash points,', r.images, 'images');
    expect(r.points).toBeGreaterThan(20);
    expect(group(r.problems)).toEqual([]);
  });

  it('of an open that raises maxValueSize (OPTIONS rewritten), then large writes; checked by an open with the old, lower limit', {
    timeout: 300_000,
  }, async () => {
    const mem = new MemFileSystem();
    const low: DBOptions = { ...SMALL, memtableSize: 1 << 20, maxValueSize: 500 };
    const baseKeys = new Map<string, string>();
    {
      const { db } = await openOn<string, string>(mem, low);
      for (let i = 0; i < 10; i++) {
        const v = `base${i}`.padEnd(400, '.');
        baseKeys.set(`b${i}`, v);
        await db.put(`b${i}`, v);
      }
      await db.close();
    }
    const big = (i: number): string => `v${i}-`.padEnd(3000 + i, 'B');
    const r = await enumerate(
      mem,
      async (fs, log) => {
        const db = await DB.open<string, string>(DIR, { ...low, maxValueSize: 5000, fs });
        try {
          for (let i = 0; i < 4; i++) {
            log.issued = i + 1;
            await db.put(key(i), big(i), { sync: true });
            log.durable = i + 1;
          }
        } finally {
          await db.close().catch(noop);
        }
      },
      async (image, snap) => {
        let db: DB<string, string> | undefined;
        try {
          ({ db } = await openOn<string, string>(image, low));
          const got = await scan(db);
          const problems: string[] = [];
          const wrote = got.filter(([k]) => k.startsWith('w'));
          if (got.length - wrote.length !== baseKeys.size) problems.push(`base keys: ${got.length - wrote.length}`);
          if (wrote.length < snap.durable)
            problems.push(
              `lost durable writes: ${wrote.length} of ${snap.durable}; recovery ${JSON.stringify(db.stats().walRecovery).slice(0, 300)}`,
            );
          wrote.forEach(([k, v], i) => {
            if (k !== key(i) || v !== big(i)) problems.push(`write ${i} wrong`);
          });
          return problems;
        } catch (err) {
          return [`open with the lower limit failed: ${String(err)}`];
        } finally {
          await closeQuietly(db);
        }
      },
    );
    expect(r.points).toBeGreaterThan(5);
    expect(group(r.problems)).toEqual([]);
  });

  for (const damage of ['table', 'manifest'] as const) {
    it(`of DB.repair (damaged ${damage}, unflushed WAL data): the DB opens after every crash, the WAL data is all there`, {
      timeout: 300_000,
    }, async () => {
      const { mem, baseKeys, lost } = await damagedDB(damage);
      const unflushed = new Map([...baseKeys].filter(([k]) => k.startsWith('u')));
      const r = await enumerate(
        mem,
        async (fs) => {
          await DB.repair(DIR, { fs });
        },
        async (image) => {
          let db: DB<string, string> | undefined;
          try {
            // Whatever the crash left (the old state before the switch, the repaired one after),
            // a second repair finishes the job.
            await DB.repair(DIR, { fs: image });
            ({ db } = await openOn<string, string>(image, SMALL));
            const problems: string[] = [];
            for (const [k, v] of unflushed) {
              const got = await db.get(k).catch((e: unknown) => `threw ${String(e)}`);
              if (got !== v) {
                problems.push(`unflushed WAL write ${k} is ${String(got).slice(0, 40)}`);
                break;
              }
            }
            for (const [k, v] of baseKeys) {
              if (lost.has(k)) continue;
              const got = await db.get(k).catch((e: unknown) => `threw ${String(e)}`);
              if (got !== v) {
                problems.push(`key ${k} outside the lost range is ${String(got).slice(0, 40)}`);
                break;
              }
            }
            // Writable, compacts, and a third repair finds nothing to do.
            await db.put('after', 'x', { sync: true });
            await db.compact();
            await db.close();
            db = undefined;
            const again = await DB.repair(DIR, { fs: image });
            if (again.changed)
              problems.push(`a third repair still changed something: ${JSON.stringify(again.tablesDamaged.map((t) => t.reason))}`);
            ({ db } = await openOn<string, string>(image, SMALL));
            if ((await db.get('after')) !== 'x') problems.push('a write after the repair is gone');
            return problems;
          } catch (err) {
            return [`failed: ${String(err)}`];
          } finally {
            await closeQuietly(db);
          }
        },
      );
      if (process.env.DB_TEST_VERBOSE) console.log(`repair (${damage}):`, r.points, 'crash points,', r.images, 'images');
      expect(r.points).toBeGreaterThan(10);
      expect(group(r.problems)).toEqual([]);
    });
  }
});

/** A DB as sediment 0.1.0 left it: tables, GC'd WAL segments, unflushed records; no OPTIONS, no SEGMENTS. */
async function legacyDB(): Promise<{ mem: MemFileSystem; baseKeys: Map<string, string> }> {
  const mem = new MemFileSystem();
  const baseKeys = new Map<string, string>();
  const { db } = await openOn<string, string>(mem, { ...SMALL, memtableSize: 1 << 20 });
  for (let i = 0; i < 60; i++) {
    const k = `a${String(i).padStart(3, '0')}`;
    const v = `legacy${i}`.padEnd(100, '-');
    baseKeys.set(k, v);
    await db.put(k, v);
    if (i === 30) await db.flush();
  }
  await db.close();
  await mem.unlink(path.posix.join(DIR, 'OPTIONS'));
  await mem.unlink(path.posix.join(DIR, 'wal', 'SEGMENTS'));
  return { mem: mem.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }), baseKeys };
}

/** A DB with two tables, one damaged in a data block (or a damaged manifest), and unflushed WAL writes. */
async function damagedDB(what: 'table' | 'manifest'): Promise<{ mem: MemFileSystem; baseKeys: Map<string, string>; lost: Set<string> }> {
  const mem = new MemFileSystem();
  const baseKeys = new Map<string, string>();
  const opts: DBOptions = { ...SMALL, memtableSize: 1 << 20, compression: 'none' };
  const { db } = await openOn<string, string>(mem, opts);
  for (let i = 0; i < 80; i++) {
    const k = `t${String(i).padStart(3, '0')}`;
    const v = `table${i}`.padEnd(150, '=');
    baseKeys.set(k, v);
    await db.put(k, v);
    if (i === 39) await db.flush();
  }
  await db.flush();
  for (let i = 0; i < 30; i++) {
    const k = `u${String(i).padStart(3, '0')}`;
    const v = `unflushed${i}`;
    baseKeys.set(k, v);
    await db.put(k, v);
  }
  await db.close();
  const lost = new Set<string>();
  const current = (await readCurrentManifest(mem, DIR))!;
  if (what === 'manifest') {
    const name = path.posix.join(DIR, `MANIFEST-${String(current.number).padStart(6, '0')}`);
    const bytes = mem.readFileBytes(name);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    mem.writeFileBytes(name, bytes);
  } else {
    const t = current.state.levels.flat()[0]!;
    const file = path.posix.join(DIR, tableFileName(t.fileNumber));
    const bytes = mem.readFileBytes(file);
    bytes[200]! ^= 0xff; // inside the first data block
    mem.writeFileBytes(file, bytes);
    // Anything in that table may be lost.
    for (const k of baseKeys.keys()) if (k >= Buffer.from(t.smallest).toString() && k <= Buffer.from(t.largest).toString()) lost.add(k);
  }
  return { mem, baseKeys, lost };
}
