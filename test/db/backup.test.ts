/**
 * Incremental backups: `db.backup(dir)`, `DB.restore`, `DB.listBackups`, `DB.pruneBackups`.
 *
 * - A backup taken while 64 writers run restores to a DB holding every write resolved before the
 *   call and none started after it resolved.
 * - The second backup copies only the tables the first lacks (bytes written counted), plus its
 *   manifest, OPTIONS and WAL tail; restoring each id gives exactly the state at that backup.
 * - Backups of several DBs share a directory without mixing tables; two DBs with one IDENTITY
 *   are refused.
 * - A damaged file (table, WAL segment, manifest, index) is a CorruptionError naming it, and the
 *   target is left empty.
 * - Pruning keeps the newest N and removes every file no kept backup needs.
 * - Refusals: a read-only handle without IDENTITY, a closed DB, a busy directory, bad targets
 *   and ids.
 * - A power loss at every mutating operation of a backup leaves the earlier backups restorable,
 *   the new one absent or complete, and the source intact.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ClosedError, CorruptionError, DB, LockedError, ReadOnlyError } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import { FaultFileSystem, crashAtMutatingOp, type FsOp } from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import type { FileHandle, OpenMode } from '../../src/fs/types.js';
import { decodeIndex, encodeIndex } from '../../src/db/backup.js';
import { decodeIdentity, encodeIdentity } from '../../src/db/identity.js';
import { checkCopy, writersAround } from './helpers/copies.js';
import { DIR, ProcessFs, TINY, closeQuietly, render, scan, seeded, withTimeout } from './helpers/harness.js';

const BACKUPS = '/backups';
const open: DB<string, string>[] = [];
afterEach(async () => {
  for (const db of open.splice(0)) await closeQuietly(db);
});

async function openDb(dir: string, options: DBOptions): Promise<DB<string, string>> {
  const db = await DB.open<string, string>(dir, { valueEncoding: 'utf8', ...options });
  open.push(db);
  return db;
}

async function restored(mem: MemFileSystem, id: number | undefined, target: string): Promise<string> {
  await DB.restore(BACKUPS, target, { fs: mem, ...(id === undefined ? {} : { id }) });
  const db = await openDb(target, { fs: mem, readOnly: true });
  const got = render(await scan(db));
  await db.close();
  return got;
}

async function fill(db: DB<string, string>, from: number, count: number, tag: string): Promise<void> {
  for (let i = from; i < from + count; i++) await db.put(`k${String(i).padStart(4, '0')}`, `${tag}${i}`.padEnd(40, '.'));
}

/** Bytes written under `prefix`, by file, counted through a FaultFileSystem. */
function counting(mem: MemFileSystem, prefix: string): { fs: FaultFileSystem; bytes: Map<string, number>; reset(): void } {
  const bytes = new Map<string, number>();
  const fs = new FaultFileSystem(mem, (op) => {
    if ((op.kind === 'write' || op.kind === 'writeSync') && op.path.startsWith(prefix))
      bytes.set(op.path, (bytes.get(op.path) ?? 0) + op.length!);
    return undefined;
  });
  return { fs, bytes, reset: () => bytes.clear() };
}

const sum = (m: Map<string, number>, pred: (file: string) => boolean = () => true): number =>
  [...m].filter(([f]) => pred(f)).reduce((n, [, b]) => n + b, 0);

describe('golden bytes', () => {
  const ID = '6f1c2a8e-4b7d-4c1e-9a52-0d3e8f7b6a41';
  it('IDENTITY: the UUID, a space, its masked CRC-32C in 8 hex digits, a newline (the example in FORMAT.md)', () => {
    const bytes = encodeIdentity(ID);
    expect(bytes.toString('latin1')).toBe(`${ID} c2f4c900\n`);
    expect(decodeIdentity(bytes, '/db/IDENTITY')).toBe(ID);
    for (let i = 0; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i]! ^= 0x01;
      expect(() => decodeIdentity(bad, '/db/IDENTITY'), `byte ${i}`).toThrow(CorruptionError);
    }
  });

  it('BACKUP-<id>: the example in FORMAT.md, decoded back; every flipped byte is a CorruptionError', () => {
    const files = [
      {
        kind: 'table',
        path: `shared/${ID}/000001-1a2b3c4d.sst`,
        size: 300,
        crc: '1a2b3c4d',
        number: 1,
        meta: { size: 300, smallest: '61', largest: '62', minSeq: 1, maxSeq: 2, entries: 2 },
      },
      { kind: 'manifest', path: 'private/000001/MANIFEST', size: 120, crc: '0a0b0c0d' },
      { kind: 'options', path: 'private/000001/OPTIONS', size: 134, crc: 'a7b5e6c6' },
      { kind: 'wal', path: 'private/000001/0000000000000000.wal', size: 90, crc: '01020304', number: 0 },
    ] as const;
    const index = { id: 1, createdAt: 1700000000000, dbId: ID, lastSeq: 2, walEnd: { segmentId: 0, offset: 90 }, files: [...files] };
    const bytes = encodeIndex(index);
    const text = bytes.toString('utf8');
    expect(text.startsWith('SDMTBACKUP 1\n{"id":1,"createdAt":1700000000000,')).toBe(true);
    expect(text.endsWith('"number":0}]}\ncrc32c 10a1646b\n')).toBe(true);
    expect(decodeIndex(bytes, '/b/BACKUP-000001', 1)).toEqual(index);
    expect(() => decodeIndex(bytes, '/b/BACKUP-000002', 2)).toThrow(CorruptionError); // another id
    for (let i = 0; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i]! ^= 0x01;
      expect(() => decodeIndex(bad, '/b/BACKUP-000001', 1), `byte ${i}`).toThrow(CorruptionError);
    }
    // A path other than the one its fields give (outside the directory, say) is refused, checksum or not.
    const evil = { ...index, files: [...files.slice(1), { ...files[0], path: '../../etc/000001-1a2b3c4d.sst' }] };
    expect(() => decodeIndex(encodeIndex(evil as never), '/b/BACKUP-000001', 1)).toThrow(/bad file entry/);
  });
});

describe('db.backup while 64 writers run', () => {
  it('restores to every write resolved before the call and none started after it resolved', { timeout: 60_000 }, async () => {
    const mem = new MemFileSystem();
    const db = await openDb(DIR, { ...TINY, memtableSize: 16 * 1024, walSegmentSize: 16 * 1024, fs: mem });
    for (let i = 0; i < 200; i++) await db.put(`base${String(i).padStart(3, '0')}`, `b${i}`);
    await db.flush();
    const { writes, info } = await writersAround(db, () => db.backup(BACKUPS));
    expect(info).toMatchObject({ id: 1, tablesShared: 0 });
    await DB.restore(BACKUPS, '/restored', { fs: mem });
    const copy = await openDb('/restored', { fs: mem });
    const got = new Map(await scan(copy));
    checkCopy(writes, got);
    for (let i = 0; i < 200; i++) expect(got.get(`base${String(i).padStart(3, '0')}`)).toBe(`b${i}`);
    await db.put('after', 'x');
    expect(await db.get('after')).toBe('x');
  });
});

describe('incremental backups', () => {
  it('the second backup copies only the tables the first lacks; each id restores its own state', { timeout: 30_000 }, async () => {
    const mem = new MemFileSystem();
    const c = counting(mem, `${BACKUPS}/`);
    const db = await openDb(DIR, { ...TINY, memtableSize: 4096, l0CompactionTrigger: 100, background: 'inline', fs: c.fs });
    const states: string[] = [];
    await fill(db, 0, 300, 'a');
    await db.flush();
    await fill(db, 300, 20, 'tail'); // in the WAL only
    const sstables = (): string[] => mem.listFiles().filter((f) => f.startsWith(`${DIR}/`) && f.endsWith('.sst'));
    const first = await db.backup(BACKUPS);
    states.push(render(await scan(db)));
    const set1 = new Set(sstables());
    const tables1 = set1.size;
    expect(first).toMatchObject({ id: 1, tablesShared: 0 });
    expect(first.filesCopied).toBe(first.files);
    const notIndex = (f: string): boolean => !f.includes('/BACKUP-');
    expect(sum(c.bytes, notIndex)).toBe(first.bytesCopied);
    expect(first.bytes).toBe(first.bytesCopied);

    // New tables (no compaction: the old ones stay), then a second backup.
    await fill(db, 1000, 150, 'b');
    await db.flush();
    const created = sstables().filter((f) => !set1.has(f));
    const tables2 = sstables().length;
    const newTables = tables2 - tables1;
    expect(created.length).toBe(newTables);
    expect(newTables).toBeGreaterThan(0);
    c.reset();
    const second = await db.backup(BACKUPS);
    states.push(render(await scan(db)));
    expect(second.id).toBe(2);
    expect(second.tablesShared).toBe(tables1);
    // Exactly the new tables' bytes went into shared/; every other byte into the backup's own files.
    const newTableBytes = created.reduce((n, f) => n + mem.readFileBytes(f).length, 0);
    expect(sum(c.bytes, (f) => f.includes('/shared/'))).toBe(newTableBytes);
    expect(new Set([...c.bytes.keys()].filter((f) => f.includes('/shared/'))).size).toBe(newTables);
    expect(mem.listFiles().filter((f) => f.startsWith(`${BACKUPS}/shared/`)).length).toBe(tables2);
    expect(sum(c.bytes, notIndex)).toBe(second.bytesCopied);
    expect(second.filesCopied).toBe(newTables + (second.files - tables2));
    expect(second.bytes).toBeGreaterThan(second.bytesCopied);

    // A compaction replaces every table: the third backup copies the new ones.
    await db.compact();
    await fill(db, 2000, 10, 'c');
    const third = await db.backup(BACKUPS);
    states.push(render(await scan(db)));
    expect(third.tablesShared).toBe(0);
    await db.close();

    expect((await DB.listBackups(BACKUPS, { fs: mem })).map((b) => b.id)).toEqual([1, 2, 3]);
    for (const [i, want] of states.entries()) expect(await restored(mem, i + 1, `/r${i + 1}`)).toBe(want);
    expect(await restored(mem, undefined, '/latest')).toBe(states[2]);
    // A restored DB is a DB of its own: writable, with no IDENTITY until its first backup.
    const r = await openDb('/r1', { fs: mem, ...TINY });
    await r.put('new', 'n');
    expect(mem.listFiles()).not.toContain('/r1/IDENTITY');
    const rb = await r.backup(BACKUPS);
    expect(rb.tablesShared).toBe(0);
    expect(rb.dbId).not.toBe(third.dbId);
  });

  it('backups of several DBs share one directory; two DBs with one IDENTITY are refused', { timeout: 30_000 }, async () => {
    const mem = new MemFileSystem();
    const a = await openDb('/a', { ...TINY, background: 'inline', fs: mem });
    const b = await openDb('/b', { ...TINY, background: 'inline', fs: mem });
    await fill(a, 0, 200, 'A');
    await fill(b, 0, 200, 'B');
    await a.flush();
    await b.flush();
    const ia = await a.backup(BACKUPS);
    const ib = await b.backup(BACKUPS);
    expect(ib.tablesShared).toBe(0); // B's table 5 is not A's table 5
    expect(ia.dbId).not.toBe(ib.dbId);
    expect(await restored(mem, ia.id, '/ra')).toBe(render(await scan(a)));
    expect(await restored(mem, ib.id, '/rb')).toBe(render(await scan(b)));
    // A checkpoint is a new DB: its backups get their own id.
    await a.checkpoint('/acp');
    const cp = await openDb('/acp', { ...TINY, background: 'inline', fs: mem });
    expect((await cp.backup(BACKUPS)).dbId).not.toBe(ia.dbId);

    // A directory copied by hand keeps A's IDENTITY; once its tables differ, its backup is refused.
    await a.close();
    for (const f of mem.listFiles().filter((x) => x.startsWith('/a/'))) {
      const to = `/copy/${f.slice(3)}`;
      await mem.mkdir(path.posix.dirname(to));
      mem.writeFileBytes(to, mem.readFileBytes(f));
    }
    // The same steps in both (a memtable that holds every write, then one flush and one full
    // compaction), so that their tables get the same numbers; values of other lengths, so that
    // those tables differ in size.
    const big = { ...TINY, memtableSize: 1 << 20, background: 'inline', fs: mem } as const;
    const copy = await openDb('/copy', big);
    const a2 = await openDb('/a', big);
    for (let i = 0; i < 200; i++) await copy.put(`k${String(i).padStart(4, '0')}`, `C${i}`.padEnd(60, '.'));
    await copy.compact();
    for (let i = 0; i < 200; i++) await a2.put(`k${String(i).padStart(4, '0')}`, `D${i}`.padEnd(40, '.'));
    await a2.compact();
    expect(copy.stats().levels.map((l) => l.tables)).toEqual(a2.stats().levels.map((l) => l.tables));
    await a2.backup(BACKUPS);
    const err = await copy.backup(BACKUPS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).file).toMatch(/^\/backups\/shared\//);
    expect((err as Error).message).toMatch(/IDENTITY/);
  });
});

describe('restore of a damaged backup', () => {
  async function backupWithTail(): Promise<{ mem: MemFileSystem; want: string }> {
    const mem = new MemFileSystem();
    const db = await openDb(DIR, { ...TINY, background: 'inline', fs: mem });
    await fill(db, 0, 200, 'a');
    await db.flush();
    await fill(db, 500, 20, 't');
    await db.backup(BACKUPS);
    const want = render(await scan(db));
    await db.close();
    return { mem, want };
  }

  const damages: [string, RegExp][] = [
    ['a table', /\/shared\/.*\.sst$/],
    ['a WAL segment', /\/private\/000001\/\d{16}\.wal$/],
    ['the manifest', /\/private\/000001\/MANIFEST$/],
    ['OPTIONS', /\/private\/000001\/OPTIONS$/],
    ['the index', /\/BACKUP-000001$/],
  ];
  for (const [what, pattern] of damages) {
    it(`${what}: a CorruptionError naming it, and nothing left in the target`, async () => {
      const { mem, want } = await backupWithTail();
      const file = mem.listFiles().find((f) => pattern.test(f))!;
      expect(file).toBeDefined();
      const bytes = mem.readFileBytes(file);
      const flipped = bytes.slice();
      flipped[Math.floor(bytes.length / 2)]! ^= 0x10;
      mem.writeFileBytes(file, flipped);
      const err = await DB.restore(BACKUPS, '/target', { fs: mem }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file).toBe(file);
      expect(mem.listFiles().filter((f) => f.startsWith('/target'))).toEqual([]);
      // Repaired, the same backup restores.
      mem.writeFileBytes(file, bytes);
      expect(await restored(mem, 1, '/target')).toBe(want);
    });
  }

  it('a truncated table is caught too', async () => {
    const { mem } = await backupWithTail();
    const file = mem.listFiles().find((f) => f.endsWith('.sst') && f.startsWith(`${BACKUPS}/`))!;
    mem.writeFileBytes(file, mem.readFileBytes(file).subarray(0, 100));
    await expect(DB.restore(BACKUPS, '/target', { fs: mem })).rejects.toMatchObject({ code: 'CORRUPTION', file });
  });
});

describe('pruneBackups', () => {
  it('keeps the newest N and removes every file no kept backup needs', { timeout: 30_000 }, async () => {
    const mem = new MemFileSystem();
    const db = await openDb(DIR, { ...TINY, background: 'inline', fs: mem });
    const states: string[] = [];
    for (let round = 0; round < 4; round++) {
      await fill(db, round * 37, 150, `r${round}`);
      if (round === 2) await db.compact();
      else await db.flush();
      await db.backup(BACKUPS);
      states.push(render(await scan(db)));
    }
    // Leftovers of a crashed backup are removed too.
    mem.writeFileBytes(`${BACKUPS}/BACKUP-000009.tmp`, Buffer.from('x'));
    const info = await DB.pruneBackups(BACKUPS, { keep: 2, fs: mem });
    expect(info).toMatchObject({ deleted: [1, 2], kept: [3, 4] });
    expect(info.filesRemoved).toBeGreaterThan(2);
    expect((await DB.listBackups(BACKUPS, { fs: mem })).map((b) => b.id)).toEqual([3, 4]);
    await expect(DB.restore(BACKUPS, '/gone', { fs: mem, id: 1 })).rejects.toMatchObject({ code: 'IO', errno: 'ENOENT' });
    expect(await restored(mem, 3, '/r3')).toBe(states[2]);
    expect(await restored(mem, 4, '/r4')).toBe(states[3]);
    // Exactly the files the kept indexes list remain (and their indexes).
    const listed = new Set<string>();
    for (const id of [3, 4]) {
      const text = Buffer.from(mem.readFileBytes(`${BACKUPS}/BACKUP-00000${id}`)).toString();
      for (const f of JSON.parse(text.split('\n')[1]!).files as { path: string }[]) listed.add(`${BACKUPS}/${f.path}`);
      listed.add(`${BACKUPS}/BACKUP-00000${id}`);
    }
    expect(mem.listFiles().filter((f) => f.startsWith(`${BACKUPS}/`))).toEqual([...listed].sort());
    // Pruning again changes nothing; keep must be at least 1.
    expect(await DB.pruneBackups(BACKUPS, { keep: 2, fs: mem })).toMatchObject({ deleted: [], filesRemoved: 0 });
    await expect(DB.pruneBackups(BACKUPS, { keep: 0, fs: mem })).rejects.toBeInstanceOf(RangeError);
  });
});

/** A file system whose creation of a file under `/backups/private/` waits at a gate. */
class GatedFs extends FaultFileSystem {
  gate: Promise<void> | undefined;
  reached: (() => void) | undefined;
  override async open(file: string, mode: OpenMode): Promise<FileHandle> {
    if (this.gate && mode === 'create' && file.includes('/private/')) {
      this.reached?.();
      await this.gate;
    }
    return super.open(file, mode);
  }
}

describe('backup refusals', () => {
  it('a read-only handle backs up only a DB that has an IDENTITY; a closed DB refuses', async () => {
    const mem = new MemFileSystem();
    const db = await openDb(DIR, { ...TINY, background: 'inline', fs: mem });
    await fill(db, 0, 100, 'a');
    await db.close();
    const ro = await openDb(DIR, { fs: mem, readOnly: true });
    await expect(ro.backup(BACKUPS)).rejects.toBeInstanceOf(ReadOnlyError);
    expect(mem.listFiles().filter((f) => f.startsWith(BACKUPS))).toEqual([]);
    await ro.close();
    await expect(ro.backup(BACKUPS)).rejects.toBeInstanceOf(ClosedError);
    const rw = await openDb(DIR, { fs: mem });
    await rw.backup(BACKUPS);
    await rw.close();
    const ro2 = await openDb(DIR, { fs: mem, readOnly: true });
    expect((await ro2.backup(BACKUPS)).id).toBe(2);
  });

  it('LOCKED while another backup runs into the directory', async () => {
    const mem = new MemFileSystem();
    const fs = new GatedFs(mem);
    const db = await openDb(DIR, { ...TINY, background: 'inline', fs });
    await fill(db, 0, 100, 'a');
    let open!: () => void;
    fs.gate = new Promise((r) => (open = r));
    const reached = new Promise<void>((r) => (fs.reached = r));
    const first = db.backup(BACKUPS);
    await reached;
    await expect(db.backup(BACKUPS)).rejects.toBeInstanceOf(LockedError);
    await expect(DB.pruneBackups(BACKUPS, { keep: 1, fs: mem })).rejects.toBeInstanceOf(LockedError);
    fs.gate = undefined;
    open();
    expect((await first).id).toBe(1);
    expect((await db.backup(BACKUPS)).id).toBe(2);
  });

  it('restore refuses a target that is not empty, a directory without backups, an unknown or bad id', async () => {
    const mem = new MemFileSystem();
    const db = await openDb(DIR, { ...TINY, background: 'inline', fs: mem });
    await fill(db, 0, 50, 'a');
    await expect(DB.restore(BACKUPS, '/t', { fs: mem })).rejects.toMatchObject({ code: 'IO', errno: 'ENOENT' });
    await mem.mkdir('/empty');
    await expect(DB.restore('/empty', '/t', { fs: mem })).rejects.toMatchObject({ code: 'IO', errno: 'ENOENT' });
    await db.backup(BACKUPS);
    await expect(DB.restore(BACKUPS, DIR, { fs: mem })).rejects.toMatchObject({ code: 'IO', errno: 'ENOTEMPTY' });
    await expect(DB.restore(BACKUPS, '/t', { fs: mem, id: 7 })).rejects.toMatchObject({ code: 'IO', errno: 'ENOENT' });
    await expect(DB.restore(BACKUPS, '/t', { fs: mem, id: 0 })).rejects.toBeInstanceOf(RangeError);
    await expect(DB.restore(BACKUPS, '/t', { fs: mem, id: 1.5 })).rejects.toBeInstanceOf(RangeError);
    await expect(DB.restore('', '/t', { fs: mem })).rejects.toBeInstanceOf(TypeError);
    await expect(DB.restore(BACKUPS, '/t', { fs: {} as never })).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    expect(mem.listFiles().filter((f) => f.startsWith('/t'))).toEqual([]);
    expect(await mem.readdir('/')).not.toContain('t');
  });
});

describe('a power loss during a backup', () => {
  it('leaves earlier backups restorable, the new one absent or complete, the source intact', { timeout: 120_000 }, async () => {
    const base = new MemFileSystem();
    const options: DBOptions = { ...TINY, memtableSize: 4096, background: 'inline', l0CompactionTrigger: 100 };
    let first: string;
    let want: string;
    {
      const db = await openDb(DIR, { ...options, fs: base });
      await fill(db, 0, 200, 'a');
      await db.flush();
      await db.backup(BACKUPS);
      first = render(await scan(db));
      await fill(db, 150, 200, 'b');
      await db.flush();
      await fill(db, 900, 30, 'tail');
      await db.sync();
      want = render(await scan(db));
      await db.close();
    }
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
        // 'keep' at every point: whether the last operations' point (the index's rename) gets a
        // 'keep' image must not depend on the parity of the count of operations before it.
        images = [
          { label: 'drop', image: disk.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }) },
          { label: 'keep', image: disk.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }) },
          ...(k % 2 === 0
            ? [{ label: 'prefix', image: disk.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(k) }) }]
            : []),
        ];
      });
      const outcome = await withTimeout(
        db.backup(BACKUPS).then(
          () => 'done',
          () => 'failed',
        ),
        10_000,
        'the backup',
      );
      await closeQuietly(db);
      proc.kill();
      if (!at) {
        expect(outcome).toBe('done');
        break;
      }
      points++;
      for (const { label, image } of images) {
        const where = `k=${k} (before ${at.kind} ${at.path}), ${label}`;
        try {
          const src = await DB.open<string, string>(DIR, { ...options, fs: image, valueEncoding: 'utf8' });
          if (render(await scan(src)) !== want) failures.push(`${where}: the source changed`);
          const ids = (await DB.listBackups(BACKUPS, { fs: image })).map((b) => b.id);
          if (ids.length === 2) complete++;
          if (ids[0] !== 1 || ids.length > 2) failures.push(`${where}: backups ${ids.join(',')}`);
          if ((await restored(image, 1, '/r1')) !== first) failures.push(`${where}: backup 1 restores differently`);
          if (ids.length === 2 && (await restored(image, 2, '/r2')) !== want) failures.push(`${where}: backup 2 restores differently`);
          // The next backup works, and cleans up what the crash left.
          const next = await src.backup(BACKUPS);
          if (next.id !== ids.length + 1) failures.push(`${where}: the next backup got id ${next.id}`);
          await src.close();
          if ((await restored(image, next.id, `/r${next.id}x`)) !== want) failures.push(`${where}: the next backup restores differently`);
          const stray = image.listFiles().filter((f) => f.startsWith(BACKUPS) && (f.endsWith('.tmp') || /private\/00000[^1-3]/.test(f)));
          if (stray.length > 0) failures.push(`${where}: leftovers ${stray.join(', ')}`);
        } catch (err) {
          failures.push(`${where}: ${String(err)}`);
        }
      }
    }
    if (process.env.DB_TEST_VERBOSE) console.log(points, 'crash points,', complete, 'images with the new backup');
    expect(points).toBeGreaterThan(20);
    expect(complete).toBeGreaterThan(0);
    expect(failures).toEqual([]);
  });
});
