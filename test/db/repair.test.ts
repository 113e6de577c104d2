/**
 * repairDB (src/db/repair.ts), on the in-memory file system with the real DB:
 * - a flipped byte in one data block: reads of its keys throw CORRUPTION and the first
 *   compaction stops all writes (the state of issue #9, point 6); after the repair the DB opens,
 *   takes writes and compacts, every key outside the reported lost ranges reads back its exact
 *   value, the lost range is exactly the damaged block's keys, and the damaged file is in
 *   quarantine/, byte for byte;
 * - damage in a newer table over older data: keys in the lost range read an older value or
 *   nothing, never anything never written;
 * - a truncated table, a table deleted by hand, a damaged filter or properties block;
 * - a healthy DB: nothing changes; a DB that is open: LockedError; an I/O error during the
 *   repair: it rejects and the DB is as it was; a failure after the switch: reported, not thrown;
 * - a damaged data block on the real disk, repaired with the default file system;
 * - a damaged or missing manifest (CURRENT cut or deleted, MANIFEST flipped or deleted): the
 *   manifest is rebuilt from the tables (overlapping ones merged by sequence number, disjoint
 *   ones kept as they are) and the DB reads back exactly what it held, WAL tail included;
 * - a power loss before each mutating step of a repair (unsynced changes dropped or kept): the DB
 *   opens, in the old state or the repaired one, the damaged file survives somewhere, and a
 *   second repair finishes the job.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DB } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import { readCurrentManifest, type TableMeta } from '../../src/db/manifest.js';
import { tableFileName } from '../../src/db/filenames.js';
import { repairDB, type KeyRange, type RepairReport } from '../../src/db/repair.js';
import { compareKeys } from '../../src/entry.js';
import { CorruptionError, LockedError } from '../../src/errors.js';
import { FaultFileSystem, crashAtMutatingOp, failNth } from '../../src/fs/fault.js';
import { MemFileSystem, type UnsyncedPolicy } from '../../src/fs/mem.js';
import { TableInspector } from '../../src/sstable/table-check.js';
import { decodeFooter } from '../../src/sstable/footer.js';
import { FOOTER_SIZE } from '../../src/sstable/format.js';
import { nodeFileSystem } from '../../src/fs/node.js';
import { tempDir } from '../sstable/helpers.js';
import { DIR, ProcessFs, diskProblems, openOn, scan, seeded } from './helpers/harness.js';

type Model = Map<string, string>;

const OPTS = {
  fsync: 'os',
  valueEncoding: 'utf8',
  memtableSize: 16 * 1024,
  tableFileSize: 24 * 1024,
  levelBaseSize: 4 * 1024 * 1024,
  l0CompactionTrigger: 16,
  walSegmentSize: 64 * 1024,
} as const satisfies DBOptions;

const QDIR = `${DIR}/quarantine`;
const key = (i: number): string => `key-${String(i).padStart(5, '0')}`;

function valueFor(rand: () => number, i: number, gen: number): string {
  let s = `g${gen}-${i}-`;
  const n = 20 + Math.floor(rand() * 40);
  while (s.length < n) s += Math.floor(rand() * 36).toString(36);
  return s;
}

async function open(mem: MemFileSystem, options: DBOptions = {}): Promise<DB<string, string>> {
  return (await openOn<string, string>(mem, { ...OPTS, ...options })).db;
}

async function putAll(db: DB<string, string>, entries: [string, string][]): Promise<void> {
  for (let i = 0; i < entries.length; i += 100) {
    await db.batch(entries.slice(i, i + 100).map(([k, v]) => ({ type: 'put' as const, key: k, value: v })));
  }
}

/** `n` keys written once and compacted into L1 (several tables of several blocks each). */
async function build(n: number, seed = 1): Promise<{ mem: MemFileSystem; model: Model }> {
  const mem = new MemFileSystem();
  const rand = seeded(seed);
  const model: Model = new Map();
  const db = await open(mem);
  const entries: [string, string][] = [];
  for (let i = 0; i < n; i++) entries.push([key(i), valueFor(rand, i, 0)]);
  await putAll(db, entries);
  for (const [k, v] of entries) model.set(k, v);
  await db.compact();
  await db.close();
  return { mem, model };
}

async function tablesAt(mem: MemFileSystem, level: number): Promise<TableMeta[]> {
  const m = await readCurrentManifest(mem, DIR);
  return m!.state.levels[level]!;
}

const tablePath = (t: TableMeta): string => `${DIR}/${tableFileName(t.fileNumber)}`;

/** Flips a byte in the middle of data block `b` of `file`; returns the keys that block held. */
async function damageBlock(mem: MemFileSystem, file: string, b: number): Promise<string[]> {
  const t = await TableInspector.open(mem, file);
  expect(t.blockCount).toBeGreaterThan(b + 1);
  const info = t.block(b);
  const keys = (await t.readBlock(b)).map((e) => Buffer.from(e.key).toString('utf8'));
  await t.close();
  const bytes = mem.readFileBytes(file);
  bytes[info.offset + (info.size >> 1)]! ^= 0x20;
  mem.writeFileBytes(file, bytes);
  return keys;
}

/** Ranges as hex strings, for comparisons. */
const hexRanges = (ranges: readonly KeyRange[]): string[][] =>
  ranges.map((r) => [Buffer.from(r.smallest).toString('hex'), Buffer.from(r.largest).toString('hex')]);

function inRanges(k: string, ranges: readonly KeyRange[]): boolean {
  const b = Buffer.from(k, 'utf8');
  return ranges.some((r) => compareKeys(b, r.smallest) >= 0 && compareKeys(b, r.largest) <= 0);
}

function lostRanges(report: RepairReport): KeyRange[] {
  return [...report.tablesDamaged.flatMap((d) => d.lostRanges), ...report.tablesMissing.flatMap((m) => m.lostRanges)];
}

/**
 * Every model key outside `lost` reads back its exact value; one inside reads its value, one of
 * `older` values it had, or nothing. Returns how many keys inside read as absent.
 */
async function expectOutsideExact(
  db: DB<string, string>,
  model: Model,
  lost: readonly KeyRange[],
  older?: Map<string, Set<string>>,
): Promise<number> {
  let absent = 0;
  for (const [k, v] of model) {
    const got = await db.get(k);
    if (!inRanges(k, lost)) {
      expect(got, k).toBe(v);
      continue;
    }
    if (got === undefined) absent++;
    else if (got !== v) expect(older?.get(k)?.has(got), `${k} read ${got}`).toBe(true);
  }
  // The iterator agrees with the gets, and never fails.
  const seen = await scan(db);
  for (const [k, v] of seen) if (!inRanges(k, lost)) expect(v, k).toBe(model.get(k));
  expect(seen.filter(([k]) => !inRanges(k, lost)).length).toBe([...model.keys()].filter((k) => !inRanges(k, lost)).length);
  return absent;
}

/** After a repair: writes (a new key, an overwrite, a delete), a compaction and a reopen work. */
async function expectWritable(
  mem: MemFileSystem,
  model: Model,
  lost: readonly KeyRange[],
  older?: Map<string, Set<string>>,
): Promise<void> {
  const outside = [...model.keys()].filter((k) => !inRanges(k, lost));
  const [overwritten, deleted] = [outside[0]!, outside[outside.length - 1]!];
  let db = await open(mem);
  await db.put('after-repair', 'yes');
  await db.put(overwritten, 'overwritten after repair');
  await db.delete(deleted);
  model.set('after-repair', 'yes');
  model.set(overwritten, 'overwritten after repair');
  model.delete(deleted);
  await db.compact();
  expect(db.stats().backgroundError).toBeUndefined();
  expect(await db.get(deleted)).toBeUndefined();
  await expectOutsideExact(db, model, lost, older);
  await db.close();
  expect(await diskProblems(mem)).toEqual([]);
  db = await open(mem);
  expect(await db.get(overwritten)).toBe('overwritten after repair');
  expect(await db.get(deleted)).toBeUndefined();
  await expectOutsideExact(db, model, lost, older);
  await db.close();
}

/** Waits (a bounded while) until `db` reports a background error. */
async function backgroundError(db: DB<string, string>): Promise<Error> {
  for (let i = 0; i < 500 && !db.stats().backgroundError; i++) await new Promise((r) => setTimeout(r, 2));
  return db.stats().backgroundError!;
}

function quarantineFiles(mem: MemFileSystem): string[] {
  return mem.listFiles().filter((f) => f.startsWith(`${QDIR}/`));
}

function snapshot(mem: MemFileSystem): Map<string, string> {
  return new Map(mem.listFiles().map((f) => [f, Buffer.from(mem.readFileBytes(f)).toString('hex')]));
}

describe('repairDB: a damaged data block', () => {
  it('compaction stops writes; repair quarantines the table, reports the exact lost range, and the DB is writable again', async () => {
    const { mem, model } = await build(3000);
    const l1 = await tablesAt(mem, 1);
    expect(l1.length).toBeGreaterThanOrEqual(4);
    const victim = l1[2]!;
    const file = tablePath(victim);
    const lostKeys = await damageBlock(mem, file, 1);
    const damagedBytes = mem.readFileBytes(file);

    // The failing state: reads of the block throw, other reads work, and the first compaction
    // that reads the table (here a background L0 compaction) stops all writes...
    const trigger = { l0CompactionTrigger: 2 } as const;
    let db = await open(mem, trigger);
    await expect(db.get(lostKeys[0]!)).rejects.toBeInstanceOf(CorruptionError);
    expect(await db.get(key(0))).toBe(model.get(key(0)));
    const victimKeys = [...model.keys()].filter((k) => inRanges(k, [victim]) && !lostKeys.includes(k));
    for (const [n, k] of [victimKeys[0]!, victimKeys[victimKeys.length - 1]!].entries()) {
      await db.put(k, `newer ${n}`);
      model.set(k, `newer ${n}`);
      await db.flush();
    }
    expect(await backgroundError(db)).toBeInstanceOf(CorruptionError);
    await expect(db.put('x', 'y')).rejects.toBeInstanceOf(CorruptionError);
    await db.close();
    // ...for good: reopening brings the same compaction back.
    db = await open(mem, trigger);
    expect(await backgroundError(db)).toBeInstanceOf(CorruptionError);
    await expect(db.put('x', 'y')).rejects.toBeInstanceOf(CorruptionError);
    await db.close();
    db = await open(mem);
    await expect(db.compact()).rejects.toBeInstanceOf(CorruptionError);
    await db.close();
    const before = await readCurrentManifest(mem, DIR);
    expect(before!.state.levels[0]!.length).toBe(2);
    expect(before!.state.levels[1]!.map((t) => t.fileNumber)).toEqual(l1.map((t) => t.fileNumber));

    const report = await DB.repair(DIR, { fs: mem });
    expect(report.changed).toBe(true);
    expect(report.manifestRebuilt).toBe(false);
    expect(report.tablesChecked).toBe(before!.state.levels.flat().length);
    expect(report.tablesMissing).toEqual([]);
    expect(report.tablesDamaged).toHaveLength(1);
    const d = report.tablesDamaged[0]!;
    expect(d).toMatchObject({ file, fileNumber: victim.fileNumber, level: 1, blocksLost: 1, lostRangeUnknown: false });
    expect(d.reason).toMatch(/corruption in .*000\d+\.sst at offset \d+: /);
    expect(d.entriesRecovered).toBe(victim.entries - lostKeys.length);
    expect(d.entriesLost).toBe(lostKeys.length);
    expect(report.entriesRecovered).toBe(d.entriesRecovered);
    // The lost range is exactly the damaged block: its keys and no other key of the DB.
    expect(d.lostRanges).toHaveLength(1);
    for (const k of model.keys()) expect(inRanges(k, d.lostRanges), k).toBe(lostKeys.includes(k));
    // The damaged file is in quarantine, byte for byte, and gone from the DB directory.
    expect(d.quarantinedAs.startsWith(`${QDIR}/`)).toBe(true);
    expect(report.quarantined).toEqual([d.quarantinedAs]);
    expect(quarantineFiles(mem)).toEqual([d.quarantinedAs]);
    expect(mem.readFileBytes(d.quarantinedAs)).toEqual(damagedBytes);
    expect(mem.listFiles()).not.toContain(file);
    expect(await diskProblems(mem)).toEqual([]);

    // The new manifest: same level, same place, counters kept or advanced.
    const after = (await readCurrentManifest(mem, DIR))!;
    expect(after.state.flushedThrough).toEqual(before!.state.flushedThrough);
    expect(after.state.lastSeq).toBe(before!.state.lastSeq);
    const newL1 = after.state.levels[1]!;
    expect(newL1.map((t) => t.fileNumber)).toEqual(l1.map((t) => (t === victim ? newL1[2]!.fileNumber : t.fileNumber)));
    expect(newL1[2]!.fileNumber).toBeGreaterThanOrEqual(before!.state.nextFileNumber);
    expect(after.state.nextFileNumber).toBeGreaterThan(newL1[2]!.fileNumber);
    expect(report.tablesWritten).toEqual([tablePath(newL1[2]!)]);
    for (let i = 1; i < newL1.length; i++) expect(compareKeys(newL1[i - 1]!.largest, newL1[i]!.smallest)).toBeLessThan(0);

    db = await open(mem);
    const absent = await expectOutsideExact(db, model, d.lostRanges);
    expect(absent).toBe(lostKeys.length);
    await db.close();
    await expectWritable(mem, model, d.lostRanges);
  });

  it('damage in a newer table over older data: a key in the lost range reads an older value or nothing, never anything else', async () => {
    const { mem, model } = await build(2000, 2);
    const rand = seeded(22);
    const older = new Map<string, Set<string>>();
    let db = await open(mem, { memtableSize: 512 * 1024 });
    // Overwrite every third key and delete every seventh, into L0 tables over the L1 data.
    const ops: [string, string | undefined][] = [];
    for (let i = 0; i < 2000; i++) {
      if (i % 7 === 0) ops.push([key(i), undefined]);
      else if (i % 3 === 0) ops.push([key(i), valueFor(rand, i, 1)]);
    }
    for (const [k, v] of ops) {
      older.set(k, new Set([model.get(k)!]));
      if (v === undefined) {
        await db.delete(k);
        model.delete(k);
      } else {
        await db.put(k, v);
        model.set(k, v);
      }
    }
    await db.flush();
    await db.close();
    const l0 = await tablesAt(mem, 0);
    expect(l0.length).toBeGreaterThanOrEqual(1);
    const victim = l0.reduce((a, b) => (b.size > a.size ? b : a));
    await damageBlock(mem, tablePath(victim), 0);

    const report = await repairDB(DIR, { fs: mem });
    expect(report.tablesDamaged).toHaveLength(1);
    expect(report.tablesDamaged[0]!.level).toBe(0);
    const lost = lostRanges(report);
    // Deleted keys count as "absent" in the model: check them too.
    const all: Model = new Map(model);
    db = await open(mem);
    await expectOutsideExact(db, all, lost, older);
    let resurfaced = 0;
    for (const k of older.keys()) {
      if (!inRanges(k, lost)) {
        expect(await db.get(k)).toBe(model.get(k));
        continue;
      }
      const got = await db.get(k);
      if (got !== model.get(k)) {
        expect(got === undefined || older.get(k)!.has(got), `${k} read ${got}`).toBe(true);
        if (got !== undefined) resurfaced++;
      }
    }
    // What the module comment warns about: the older version below shows through.
    expect(resurfaced).toBeGreaterThan(0);
    await db.close();
    await expectWritable(mem, all, lost, older);
  });
});

describe('repairDB: other damage', () => {
  it('a truncated table: the whole table range is reported lost, the rest reads back', async () => {
    const { mem, model } = await build(2000, 3);
    const victim = (await tablesAt(mem, 1))[1]!;
    const file = tablePath(victim);
    const bytes = mem.readFileBytes(file);
    mem.writeFileBytes(file, bytes.subarray(0, bytes.length >> 1));
    await expect(DB.open(DIR, { ...OPTS, fs: new ProcessFs(mem) })).rejects.toMatchObject({ code: 'CORRUPTION' });

    const report = await repairDB(DIR, { fs: mem });
    expect(report.tablesDamaged).toHaveLength(1);
    const d = report.tablesDamaged[0]!;
    expect(d).toMatchObject({ file, level: 1, entriesRecovered: 0, entriesLost: victim.entries, lostRangeUnknown: false });
    expect(hexRanges(d.lostRanges)).toEqual(hexRanges([victim]));
    expect(mem.readFileBytes(d.quarantinedAs)).toEqual(bytes.subarray(0, bytes.length >> 1));
    expect(report.tablesWritten).toEqual([]);
    const db = await open(mem);
    expect(await expectOutsideExact(db, model, d.lostRanges)).toBe(victim.entries);
    await db.close();
    await expectWritable(mem, model, d.lostRanges);
  });

  it('a table deleted by hand: reported missing with its range, dropped from the manifest', async () => {
    const { mem, model } = await build(2000, 4);
    const victim = (await tablesAt(mem, 1))[0]!;
    await mem.unlink(tablePath(victim));
    await mem.syncDir(DIR);
    await expect(DB.open(DIR, { ...OPTS, fs: new ProcessFs(mem) })).rejects.toMatchObject({ code: 'CORRUPTION' });

    const report = await repairDB(DIR, { fs: mem });
    expect(report.tablesDamaged).toEqual([]);
    expect(report.tablesMissing).toHaveLength(1);
    expect(report.tablesMissing[0]).toMatchObject({
      file: tablePath(victim),
      fileNumber: victim.fileNumber,
      level: 1,
      entriesLost: victim.entries,
    });
    expect(hexRanges(report.tablesMissing[0]!.lostRanges)).toEqual(hexRanges([victim]));
    expect(report.quarantined).toEqual([]);
    expect((await tablesAt(mem, 1)).map((t) => t.fileNumber)).not.toContain(victim.fileNumber);
    await expectWritable(mem, model, lostRanges(report));
  });

  for (const part of ['filter', 'properties'] as const) {
    it(`a damaged ${part} block: open refuses; repair rewrites every entry, nothing lost`, async () => {
      const { mem, model } = await build(2000, 5);
      const victim = (await tablesAt(mem, 1))[1]!;
      const file = tablePath(victim);
      const bytes = mem.readFileBytes(file);
      const footer = decodeFooter(bytes.subarray(bytes.length - FOOTER_SIZE), bytes.length, file);
      bytes[footer[part].offset + 1]! ^= 0x01;
      mem.writeFileBytes(file, bytes);
      await expect(DB.open(DIR, { ...OPTS, fs: new ProcessFs(mem) })).rejects.toMatchObject({ code: 'CORRUPTION' });

      const report = await repairDB(DIR, { fs: mem });
      expect(report.tablesDamaged).toHaveLength(1);
      const d = report.tablesDamaged[0]!;
      expect(d.lostRanges).toEqual([]);
      expect(d.blocksLost).toBe(0);
      expect(d.entriesRecovered).toBe(victim.entries);
      expect(d.entriesLost).toBe(0);
      expect(mem.readFileBytes(d.quarantinedAs)).toEqual(bytes);
      const db = await open(mem);
      expect(await scan(db)).toEqual([...model].sort(([a], [b]) => compareKeys(Buffer.from(a), Buffer.from(b))));
      await db.close();
      await expectWritable(mem, model, []);
    });
  }

  it('a healthy DB: nothing changes, the report is empty', async () => {
    const { mem } = await build(1500, 6);
    const before = snapshot(mem);
    const report = await repairDB(DIR, { fs: mem });
    expect(report).toMatchObject({
      changed: false,
      tablesDamaged: [],
      tablesMissing: [],
      entriesRecovered: 0,
      manifestRebuilt: false,
      tablesWritten: [],
      quarantined: [],
    });
    expect(report.tablesChecked).toBe((await tablesAt(mem, 1)).length);
    expect(snapshot(mem)).toEqual(before);
  });

  it('an I/O error during the repair: it rejects, and the DB is exactly as before', async () => {
    const { mem, model } = await build(2000, 8);
    const victim = (await tablesAt(mem, 1))[1]!;
    const lostKeys = await damageBlock(mem, tablePath(victim), 1);
    const before = snapshot(mem);
    for (const [kind, n] of [
      ['write', 0],
      ['datasync', 0],
      ['rename', 0],
      ['syncDir', 2],
    ] as const) {
      const ffs = new FaultFileSystem(mem, failNth(kind, n, 'EIO', { path: /\.sst|quarantine|MANIFEST|CURRENT|\/db$/ }));
      const err = await repairDB(DIR, { fs: ffs }).catch((e: unknown) => e);
      expect(err, `${kind} #${n}`).toMatchObject({ code: 'IO', errno: 'EIO' });
      // Nothing the DB uses changed; only a quarantine copy (or its directory) may be left.
      const now = snapshot(mem);
      for (const [f, bytes] of before) expect(now.get(f), `${f} after a failed ${kind}`).toBe(bytes);
      for (const f of now.keys()) if (!before.has(f)) expect(f.startsWith(`${QDIR}/`), `${f} left by a failed ${kind}`).toBe(true);
    }
    const report = await repairDB(DIR, { fs: mem });
    expect(report.tablesDamaged).toHaveLength(1);
    const db = await open(mem);
    for (const [k, v] of model) expect(await db.get(k)).toBe(lostKeys.includes(k) ? undefined : v);
    await db.close();
  });

  it('a failure after the switch (moving the original over its copy) is reported, not thrown: the copy is the evidence', async () => {
    const { mem, model } = await build(2000, 12);
    const victim = (await tablesAt(mem, 1))[0]!;
    const file = tablePath(victim);
    const lostKeys = await damageBlock(mem, file, 1);
    const damaged = mem.readFileBytes(file);
    const ffs = new FaultFileSystem(mem, failNth('rename', 0, 'EIO', { path: /^\/db\/\d+\.sst$/ }));
    const report = await repairDB(DIR, { fs: ffs });
    expect(report.changed).toBe(true);
    expect(report.cleanupErrors).toHaveLength(1);
    expect(report.cleanupErrors[0]).toMatch(/moving .*\.sst into quarantine.*EIO/);
    expect(mem.readFileBytes(report.tablesDamaged[0]!.quarantinedAs)).toEqual(damaged);
    // The original is a leftover the next open deletes; the copy stays.
    const db = await open(mem);
    for (const [k, v] of model) expect(await db.get(k)).toBe(lostKeys.includes(k) ? undefined : v);
    await db.close();
    expect(mem.listFiles()).not.toContain(file);
    expect(await diskProblems(mem)).toEqual([]);
    expect(mem.readFileBytes(report.tablesDamaged[0]!.quarantinedAs)).toEqual(damaged);
  });

  it('an empty or new directory: nothing to repair; a missing one: an error', async () => {
    const mem = new MemFileSystem();
    await mem.mkdir(DIR);
    expect((await repairDB(DIR, { fs: mem })).changed).toBe(false);
    expect(mem.listFiles()).toEqual([]);
    await expect(repairDB('/nowhere', { fs: mem })).rejects.toMatchObject({ code: 'IO', errno: 'ENOENT' });
  });

  it('refuses to run beside an open DB (LockedError), and runs once it is closed', async () => {
    const { mem } = await build(500, 7);
    const db = await open(mem);
    await expect(repairDB(DIR, { fs: mem })).rejects.toBeInstanceOf(LockedError);
    await db.close();
    expect((await repairDB(DIR, { fs: mem })).changed).toBe(false);
  });
});

describe('repairDB: on the real disk', () => {
  it('a damaged data block in a DB in a temp directory: repaired with the default file system', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const opts = { ...OPTS, fsync: 'os' } as const;
      let db = await DB.open<string, string>(dir, opts);
      const rand = seeded(50);
      const model: Model = new Map();
      const entries: [string, string][] = [];
      for (let i = 0; i < 2000; i++) entries.push([key(i), valueFor(rand, i, 0)]);
      await putAll(db, entries);
      for (const [k, v] of entries) model.set(k, v);
      await db.compact();
      await db.close();
      const victim = (await readCurrentManifest(nodeFileSystem, dir))!.state.levels[1]![1]!;
      const file = path.join(dir, tableFileName(victim.fileNumber));
      const t = await TableInspector.open(nodeFileSystem, file);
      const info = t.block(1);
      const lostKeys = (await t.readBlock(1)).map((e) => Buffer.from(e.key).toString());
      await t.close();
      const bytes = fs.readFileSync(file);
      bytes[info.offset + 7]! ^= 0x01;
      fs.writeFileSync(file, bytes);

      db = await DB.open<string, string>(dir, opts);
      await expect(repairDB(dir)).rejects.toBeInstanceOf(LockedError);
      await expect(db.compact()).rejects.toBeInstanceOf(CorruptionError);
      await db.close();

      const report = await repairDB(dir);
      expect(report.tablesDamaged).toHaveLength(1);
      const d = report.tablesDamaged[0]!;
      for (const k of model.keys()) expect(inRanges(k, d.lostRanges)).toBe(lostKeys.includes(k));
      expect(fs.readFileSync(d.quarantinedAs)).toEqual(bytes);
      expect(fs.existsSync(file)).toBe(false);
      db = await DB.open<string, string>(dir, opts);
      for (const [k, v] of model) expect(await db.get(k)).toBe(lostKeys.includes(k) ? undefined : v);
      await db.put('after', 'repair');
      await db.compact();
      expect(await db.get('after')).toBe('repair');
      await db.close();
    } finally {
      cleanup();
    }
  });
});

describe('repairDB: a damaged or missing manifest', () => {
  /** A DB with data in L1, newer overwrites and deletes in L0, and a WAL tail never flushed. */
  async function layered(seed: number): Promise<{ mem: MemFileSystem; model: Model; older: Map<string, Set<string>> }> {
    const { mem, model } = await build(2000, seed);
    const rand = seeded(seed * 7);
    const older = new Map<string, Set<string>>();
    const db = await open(mem);
    const write = async (i: number, gen: number): Promise<void> => {
      const k = key(i);
      if (model.has(k)) older.set(k, new Set([...(older.get(k) ?? []), model.get(k)!]));
      if ((i + gen) % 5 === 0) {
        await db.delete(k);
        model.delete(k);
      } else {
        const v = valueFor(rand, i, gen);
        await db.put(k, v);
        model.set(k, v);
      }
    };
    for (let i = 0; i < 2000; i += 3) await write(i, 1);
    await db.flush();
    for (let i = 0; i < 2000; i += 4) await write(i, 2);
    await db.flush();
    for (let i = 1; i < 2000; i += 50) await write(i, 3); // stays in the WAL
    await db.close();
    expect((await tablesAt(mem, 0)).length).toBeGreaterThan(0);
    expect((await tablesAt(mem, 1)).length).toBeGreaterThan(0);
    return { mem, model, older };
  }

  const manifestName = async (mem: MemFileSystem): Promise<string> => mem.listFiles().find((f) => /\/MANIFEST-\d+$/.test(f))!;

  const damages: [string, (mem: MemFileSystem) => Promise<void>][] = [
    [
      'a flipped byte in the MANIFEST',
      async (mem) => {
        const f = await manifestName(mem);
        const b = mem.readFileBytes(f);
        b[b.length >> 1]! ^= 0x01;
        mem.writeFileBytes(f, b);
      },
    ],
    ['CURRENT cut short', async (mem) => mem.writeFileBytes(`${DIR}/CURRENT`, mem.readFileBytes(`${DIR}/CURRENT`).subarray(0, 5))],
    [
      'CURRENT deleted',
      async (mem) => {
        await mem.unlink(`${DIR}/CURRENT`);
        await mem.syncDir(DIR);
      },
    ],
    [
      'the MANIFEST deleted',
      async (mem) => {
        await mem.unlink(await manifestName(mem));
        await mem.syncDir(DIR);
      },
    ],
  ];

  for (const [what, damage] of damages) {
    it(`${what}: the manifest is rebuilt from the tables and every key reads back exactly`, async () => {
      const { mem, model } = await layered(10 + damages.findIndex(([w]) => w === what));
      const manifestBytes = mem.readFileBytes(await manifestName(mem));
      await damage(mem);
      await expect(DB.open(DIR, { ...OPTS, fs: new ProcessFs(mem) })).rejects.toMatchObject({ code: 'CORRUPTION' });

      const report = await repairDB(DIR, { fs: mem });
      expect(report.manifestRebuilt).toBe(true);
      expect(report.manifestError).toMatch(/CURRENT|manifest|MANIFEST/);
      expect(report.tablesDamaged).toEqual([]);
      expect(report.tablesMissing).toEqual([]);
      expect(report.changed).toBe(true);
      // The old manifest (if it was there) and a damaged CURRENT are kept in quarantine.
      if (what !== 'the MANIFEST deleted') {
        expect(quarantineFiles(mem).some((f) => /MANIFEST-\d+$/.test(f))).toBe(true);
        if (what === 'CURRENT cut short') expect(quarantineFiles(mem).some((f) => f.endsWith('-CURRENT'))).toBe(true);
        if (what !== 'a flipped byte in the MANIFEST') {
          expect(quarantineFiles(mem).map((f) => mem.readFileBytes(f))).toContainEqual(manifestBytes);
        }
      }
      const m = (await readCurrentManifest(mem, DIR))!;
      expect(m.state.flushedThrough).toBeNull();
      expect(m.state.levels[0]).toEqual([]);
      const l1 = m.state.levels[1]!;
      for (let i = 1; i < l1.length; i++) expect(compareKeys(l1[i - 1]!.largest, l1[i]!.smallest)).toBeLessThan(0);

      const db = await open(mem);
      const want = [...model].sort(([a], [b]) => compareKeys(Buffer.from(a), Buffer.from(b)));
      expect(await scan(db)).toEqual(want);
      for (const [k, v] of model) expect(await db.get(k)).toBe(v);
      await db.close();
      await expectWritable(mem, model, []);
    });
  }

  it('disjoint tables (one level) are kept as they are in a rebuild: no table is rewritten', async () => {
    const { mem, model } = await build(2000, 9);
    const l1 = await tablesAt(mem, 1);
    const f = await manifestName(mem);
    const b = mem.readFileBytes(f);
    b[b.length - 3]! ^= 0x40;
    mem.writeFileBytes(f, b);
    const report = await repairDB(DIR, { fs: mem });
    expect(report.manifestRebuilt).toBe(true);
    expect(report.tablesChecked).toBe(l1.length);
    expect(report.tablesWritten).toEqual([]);
    const rebuilt = (await readCurrentManifest(mem, DIR))!.state;
    expect(rebuilt.levels[1]!.map((t) => [t.fileNumber, t.size, t.entries, t.minSeq, t.maxSeq])).toEqual(
      l1.map((t) => [t.fileNumber, t.size, t.entries, t.minSeq, t.maxSeq]),
    );
    expect(rebuilt.lastSeq).toBe(Math.max(...l1.map((t) => t.maxSeq)));
    expect(rebuilt.nextFileNumber).toBeGreaterThan(Math.max(...l1.map((t) => t.fileNumber)));
    await expectWritable(mem, model, []);
  });

  it('a damaged MANIFEST and a damaged table block: rebuilt; outside the lost range exact, inside older or nothing', async () => {
    const { mem, model, older } = await layered(20);
    const victim = (await tablesAt(mem, 1))[1]!;
    const lostKeys = await damageBlock(mem, tablePath(victim), 1);
    const f = await manifestName(mem);
    const b = mem.readFileBytes(f);
    b[30]! ^= 0x04;
    mem.writeFileBytes(f, b);

    const report = await repairDB(DIR, { fs: mem });
    expect(report.manifestRebuilt).toBe(true);
    expect(report.tablesDamaged).toHaveLength(1);
    const d = report.tablesDamaged[0]!;
    expect(d).toMatchObject({ file: tablePath(victim), level: null, blocksLost: 1 });
    for (const k of lostKeys) expect(inRanges(k, d.lostRanges)).toBe(true);
    const db = await open(mem);
    await expectOutsideExact(db, model, d.lostRanges, older);
    await db.close();
    await expectWritable(mem, model, d.lostRanges, older);
  });
});

describe('repairDB: a power loss at each step', () => {
  for (const policy of ['drop', 'keep'] as UnsyncedPolicy[]) {
    it(`damaged block, unsynced changes ${policy === 'drop' ? 'dropped' : 'kept'}: the DB opens, the evidence survives, a second repair finishes`, async () => {
      const { mem: base, model } = await build(1200, 30);
      const victim = (await tablesAt(base, 1))[1]!;
      const file = tablePath(victim);
      const lostKeys = new Set(await damageBlock(base, file, 1));
      const damaged = Buffer.from(base.readFileBytes(file));
      let finalReport: RepairReport | undefined;
      let crashes = 0;
      const states = new Set<string>();
      for (let k = 0; !finalReport; k++) {
        const mem = base.crashClone();
        let image: MemFileSystem | undefined;
        const ffs = new FaultFileSystem(
          mem,
          crashAtMutatingOp(k, () => {
            image = mem.crashClone({ unsyncedData: policy, unsyncedDirOps: policy });
          }),
        );
        const outcome = await repairDB(DIR, { fs: ffs }).then(
          (r) => r,
          (e: unknown) => e,
        );
        if (!image) {
          expect(outcome, `run ${k}`).not.toBeInstanceOf(Error);
          finalReport = outcome as RepairReport;
          break;
        }
        crashes++;
        // The damaged table survives, whole: in the DB directory or in quarantine/ (never a .tmp).
        const holders = image.listFiles().filter((f) => !f.endsWith('.tmp') && (f === file || f.startsWith(`${QDIR}/`)));
        expect(
          holders.some((f) => Buffer.from(image!.readFileBytes(f)).equals(damaged)),
          `crash before mutating op ${k}: the damaged table is gone`,
        ).toBe(true);
        // The DB opens, in the old state or the repaired one.
        const repaired = !(await readCurrentManifest(image, DIR))!.state.levels.flat().some((t) => t.fileNumber === victim.fileNumber);
        states.add(repaired ? 'repaired' : 'old');
        let db = await open(image);
        for (const [kk, v] of model) {
          if (!lostKeys.has(kk)) expect(await db.get(kk), `${kk} after a crash at ${k}`).toBe(v);
          else if (repaired) expect(await db.get(kk)).toBeUndefined();
          else await expect(db.get(kk)).rejects.toBeInstanceOf(CorruptionError);
        }
        await db.close();
        if (repaired) {
          expect(quarantineFiles(image).some((f) => !f.endsWith('.tmp') && Buffer.from(image!.readFileBytes(f)).equals(damaged))).toBe(
            true,
          );
        } else {
          expect(image.listFiles()).toContain(file);
        }
        // A second repair finishes the job.
        const again = await repairDB(DIR, { fs: image });
        expect(again.changed).toBe(!repaired);
        db = await open(image);
        for (const [kk, v] of model) expect(await db.get(kk)).toBe(lostKeys.has(kk) ? undefined : v);
        await db.put('x', 'y');
        await db.compact();
        await db.close();
        expect(await diskProblems(image)).toEqual([]);
      }
      expect(crashes).toBeGreaterThan(8);
      expect([...states].sort()).toEqual(['old', 'repaired']);
      expect(finalReport.tablesDamaged).toHaveLength(1);
    });
  }

  it('manifest rebuild: a crash at any step leaves the DB as it was (refused) or rebuilt; a second repair finishes', async () => {
    const { mem: base, model } = await build(1200, 40);
    const f = base.listFiles().find((x) => /\/MANIFEST-\d+$/.test(x))!;
    const b = base.readFileBytes(f);
    b[b.length >> 1]! ^= 0x01;
    base.writeFileBytes(f, b);
    let done = false;
    const states = new Set<string>();
    for (let k = 0; !done; k++) {
      const mem = base.crashClone();
      let image: MemFileSystem | undefined;
      const ffs = new FaultFileSystem(
        mem,
        crashAtMutatingOp(k, () => {
          image = mem.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(k) });
        }),
      );
      await repairDB(DIR, { fs: ffs }).catch(() => undefined);
      if (!image) {
        done = true;
        break;
      }
      const opened = await DB.open<string, string>(DIR, { ...OPTS, fs: new ProcessFs(image) }).then(
        (db) => db,
        (e: unknown) => e,
      );
      states.add(opened instanceof DB ? 'rebuilt' : 'refused');
      if (opened instanceof DB) {
        expect(await scan(opened)).toEqual([...model].sort(([x], [y]) => compareKeys(Buffer.from(x), Buffer.from(y))));
        await opened.close();
      } else {
        expect(opened).toBeInstanceOf(CorruptionError);
      }
      await repairDB(DIR, { fs: image });
      const db = await open(image);
      expect(await scan(db)).toEqual([...model].sort(([x], [y]) => compareKeys(Buffer.from(x), Buffer.from(y))));
      await db.close();
    }
    expect([...states].sort()).toEqual(['rebuilt', 'refused']);
  });
});
