/**
 * Read-only open (issue #9, point 11, WAL part): `readOnly: true` takes no lock and writes
 * nothing. It scans as recovery does, treats a crash-shaped torn tail as the end of the log
 * (reported, file untouched), and refuses any other damage (strict only). Writes reject with
 * `ReadOnlyError`.
 *
 * Tests run as root, where chmod does not stop writes: a FileSystem wrapper that throws on every
 * mutating call proves that none is made.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeFileSystem } from '../../src/fs/node.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import type { DirectoryLock, FileHandle, FileStat, FileSystem, OpenMode } from '../../src/fs/types.js';
import { segmentFileName } from '../../src/wal/format.js';
import { STATE_FILE_NAME } from '../../src/wal/segment-state.js';
import {
  CorruptionError,
  InvalidConfigError,
  ReadOnlyError,
  Record,
  Wal,
  type LogEntry,
  type Position,
  type WalOptions,
} from '../../src/wal/index.js';

const tmpRoots: string[] = [];
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-ro-'));
  tmpRoots.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpRoots.splice(0)) {
    chmodTree(d, 0o755, 0o644);
    fs.rmSync(d, { recursive: true, force: true });
  }
});

function chmodTree(dir: string, dirMode: number, fileMode: number): void {
  if (!fs.existsSync(dir)) return;
  fs.chmodSync(dir, dirMode);
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) chmodTree(p, dirMode, fileMode);
    else if (ent.isFile()) fs.chmodSync(p, fileMode);
  }
}

/** A FileSystem that refuses every call that could change anything, and counts the refusals. */
class NoWriteFs implements FileSystem {
  readonly refused: string[] = [];
  constructor(readonly inner: FileSystem) {}

  #refuse(what: string): never {
    this.refused.push(what);
    throw Object.assign(new Error(`EROFS: ${what} refused by the test`), { code: 'EROFS' });
  }

  async open(p: string, mode: OpenMode): Promise<FileHandle> {
    if (mode !== 'read') this.#refuse(`open(${p}, ${mode})`);
    const h = await this.inner.open(p, mode);
    const refuse = (what: string): never => this.#refuse(`${what}(${p})`);
    return {
      path: h.path,
      read: (b, o, l, pos) => h.read(b, o, l, pos),
      readSync: (b, o, l, pos) => h.readSync(b, o, l, pos),
      write: async () => refuse('write'),
      writeSync: () => refuse('writeSync'),
      datasync: async () => refuse('datasync'),
      truncate: async () => refuse('truncate'),
      size: () => h.size(),
      close: () => h.close(),
    };
  }
  readdir(d: string): Promise<string[]> {
    return this.inner.readdir(d);
  }
  stat(p: string): Promise<FileStat> {
    return this.inner.stat(p);
  }
  async mkdir(d: string): Promise<void> {
    this.#refuse(`mkdir(${d})`);
  }
  async rename(a: string): Promise<void> {
    this.#refuse(`rename(${a})`);
  }
  async unlink(p: string): Promise<void> {
    this.#refuse(`unlink(${p})`);
  }
  async syncDir(d: string): Promise<void> {
    this.#refuse(`syncDir(${d})`);
  }
  async lock(d: string): Promise<DirectoryLock> {
    return this.#refuse(`lock(${d})`);
  }
}

function snapshot(dir: string): { [name: string]: string } {
  const out: { [name: string]: string } = {};
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    out[ent.name] = ent.isFile() ? createHash('sha256').update(fs.readFileSync(p)).digest('hex') : ent.isDirectory() ? 'dir' : 'other';
  }
  return out;
}

const SEGMENT = 400;

async function buildLog(dir: string, n = 20, opts: Partial<WalOptions> = {}): Promise<Position[]> {
  const { wal } = await Wal.open({ dir, fsync: 'os', maxSegmentSize: SEGMENT, ...opts });
  const ps: Position[] = [];
  for (let i = 0; i < n; i++) ps.push(await wal.append(Record.put(`k${i}`, 'v'.repeat(50 + (i % 4) * 20))));
  await wal.close();
  return ps;
}

async function readKeys(wal: Wal, from: Position = { segmentId: 0, offset: 0 }): Promise<string[]> {
  const out: string[] = [];
  for await (const e of wal.readFrom(from)) out.push(Buffer.from(e.record.key).toString());
  return out;
}

async function expectRefusesWrites(wal: Wal): Promise<void> {
  for (const call of [
    () => wal.append(Record.put('k', 'v')),
    () => wal.appendBatch([Record.put('k', 'v'), Record.put('l', 'w')]),
    () => wal.sync(),
    () => wal.flush(),
    () => wal.deleteSegmentsBefore({ segmentId: 99, offset: 0 }),
  ]) {
    const err = await call().then(
      () => expect.fail('a write succeeded on a read-only log'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ReadOnlyError);
    expect(err).toMatchObject({ code: 'READ_ONLY' });
  }
}

describe('readOnly: true', () => {
  it('on a chmod-read-only directory, with a FileSystem that refuses every mutation: reads everything, writes nothing', async () => {
    const dir = path.join(tempDir(), 'wal');
    const ps = await buildLog(dir, 30);
    const before = snapshot(dir);
    chmodTree(dir, 0o555, 0o444);
    try {
      const guard = new NoWriteFs(nodeFileSystem);
      const { wal, recovery } = await Wal.open({ dir, fs: guard, readOnly: true, maxSegmentSize: SEGMENT });
      expect(recovery).toMatchObject({
        validRecords: 30,
        corruptionDetected: false,
        truncations: [],
        quarantined: [],
        missingSegments: [],
      });
      expect(recovery.lastPosition).toEqual(ps[29]);
      expect(await readKeys(wal)).toEqual(ps.map((_, i) => `k${i}`));
      expect(await readKeys(wal, ps[10]!)).toEqual(ps.slice(10).map((_, i) => `k${i + 10}`));
      expect(wal.currentPosition().segmentId).toBe(ps[29]!.segmentId);
      expect(wal.stats()).toMatchObject({ records: 0, segments: ps[29]!.segmentId + 1, activeSegmentId: ps[29]!.segmentId });
      await expectRefusesWrites(wal);
      await wal.close();
      await wal.close();
      await expect(wal.append(Record.put('k', 'v'))).rejects.toMatchObject({ code: 'CLOSED' });
      expect(guard.refused).toEqual([]);
      // The real file system, as root (chmod does not stop root): still nothing changes.
      const plain = await Wal.open({ dir, readOnly: true });
      expect(await readKeys(plain.wal)).toHaveLength(30);
      expect(snapshot(dir)).toEqual(before); // no lock socket while it is open either
      await plain.wal.close();
    } finally {
      chmodTree(dir, 0o755, 0o644);
    }
    expect(snapshot(dir)).toEqual(before); // no lock socket, no state write, nothing
  });

  it('a torn tail is the end of the log: reported as a truncation, the file untouched', async () => {
    const dir = path.join(tempDir(), 'wal');
    const ps = await buildLog(dir, 12);
    const last = path.join(dir, segmentFileName(ps[11]!.segmentId));
    const size = fs.statSync(last).size;
    fs.truncateSync(last, size - 7); // the last record torn
    fs.appendFileSync(last, Buffer.alloc(0)); // keep the mtime moving
    const before = snapshot(dir);
    const guard = new NoWriteFs(nodeFileSystem);
    const { wal, recovery } = await Wal.open({ dir, fs: guard, readOnly: true, maxSegmentSize: SEGMENT });
    expect(recovery.validRecords).toBe(11);
    expect(recovery.truncations).toEqual([
      { segmentId: ps[11]!.segmentId, offset: ps[11]!.offset, bytes: size - 7 - ps[11]!.offset, reason: 'torn-record' },
    ]);
    expect(recovery.bytesTruncated).toBe(size - 7 - ps[11]!.offset);
    expect(recovery.corruptionDetected).toBe(false);
    expect(await readKeys(wal)).toEqual(ps.slice(0, 11).map((_, i) => `k${i}`));
    expect(wal.currentPosition()).toEqual(ps[11]);
    await wal.close();
    expect(guard.refused).toEqual([]);
    expect(snapshot(dir)).toEqual(before);
    // A writable open then repairs it the same way.
    const { wal: w, recovery: r } = await Wal.open({ dir, fsync: 'os', maxSegmentSize: SEGMENT });
    expect(r.truncations).toEqual(recovery.truncations);
    await w.close();
  });

  it('zeros after the last record (preallocation) are the end of the log', async () => {
    const dir = path.join(tempDir(), 'wal');
    const ps = await buildLog(dir, 5);
    const last = path.join(dir, segmentFileName(ps[4]!.segmentId));
    fs.appendFileSync(last, Buffer.alloc(4096));
    const guard = new NoWriteFs(nodeFileSystem);
    const { wal, recovery } = await Wal.open({ dir, fs: guard, readOnly: true });
    expect(recovery.truncations).toMatchObject([{ reason: 'zero-tail', bytes: 4096 }]);
    expect(await readKeys(wal)).toHaveLength(5);
    await wal.close();
    expect(guard.refused).toEqual([]);
  });

  it('other damage, a missing segment or a damaged state file: CorruptionError, nothing written', async () => {
    const root = tempDir();
    const pristine = path.join(root, 'pristine');
    const ps = await buildLog(pristine, 30);
    expect(ps[29]!.segmentId).toBeGreaterThan(2);
    const dir = path.join(root, 'wal');
    const restore = (): void => {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.cpSync(pristine, dir, { recursive: true });
    };
    const cases: Array<[string, () => string]> = [
      [
        'bit flip in segment 0',
        () => {
          const f = path.join(dir, segmentFileName(0));
          const b = fs.readFileSync(f);
          b[45]! ^= 1;
          fs.writeFileSync(f, b);
          return f;
        },
      ],
      [
        'segment 1 missing',
        () => {
          const f = path.join(dir, segmentFileName(1));
          fs.unlinkSync(f);
          return f;
        },
      ],
      [
        'the newest segment missing',
        () => {
          const f = path.join(dir, segmentFileName(ps[29]!.segmentId));
          fs.unlinkSync(f);
          return f;
        },
      ],
      [
        'the state file missing',
        () => {
          const f = path.join(dir, STATE_FILE_NAME);
          fs.unlinkSync(f);
          return f;
        },
      ],
      [
        'the state file garbled',
        () => {
          const f = path.join(dir, STATE_FILE_NAME);
          fs.writeFileSync(f, Buffer.alloc(fs.statSync(f).size, 0x55));
          return f;
        },
      ],
    ];
    for (const [name, damage] of cases) {
      restore();
      const file = damage();
      const before = snapshot(dir);
      const guard = new NoWriteFs(nodeFileSystem);
      const err = await Wal.open({ dir, fs: guard, readOnly: true }).then(
        () => expect.fail(`${name}: opened`),
        (e: unknown) => e,
      );
      expect(err, name).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file, name).toBe(file);
      expect(guard.refused, name).toEqual([]);
      expect(snapshot(dir), name).toEqual(before);
    }
  });

  it('salvage with readOnly, or a non-boolean readOnly, is refused with InvalidConfigError', async () => {
    const dir = path.join(tempDir(), 'wal');
    for (const bad of [{ readOnly: true, recovery: 'salvage' }, { readOnly: 1 }] as const) {
      const err = await Wal.open({ dir, ...(bad as object) } as WalOptions).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidConfigError);
      expect(err).toMatchObject({ option: 'readOnly' });
    }
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('a missing directory: an empty log by default, CorruptionError with createIfMissing: false; nothing is created', async () => {
    const dir = path.join(tempDir(), 'nothing-here');
    const guard = new NoWriteFs(nodeFileSystem);
    const { wal, recovery } = await Wal.open({ dir, fs: guard, readOnly: true });
    expect(recovery.validRecords).toBe(0);
    expect(await readKeys(wal)).toEqual([]);
    await expectRefusesWrites(wal);
    await wal.close();
    await expect(Wal.open({ dir, fs: guard, readOnly: true, createIfMissing: false })).rejects.toBeInstanceOf(CorruptionError);
    expect(guard.refused).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('while another handle holds the directory open for writing: no LOCKED, a consistent view, the writer undisturbed', async () => {
    const dir = path.join(tempDir(), 'wal');
    // { batchMs } preallocates zeros ahead of the writer: the reader must see them as the end.
    const { wal: writer } = await Wal.open({ dir, fsync: { batchMs: 2 }, maxSegmentSize: 1024 });
    const written: string[] = [];
    for (let i = 0; i < 40; i++) {
      await writer.append(Record.put(`w${i}`, 'x'.repeat(40)));
      written.push(`w${i}`);
    }
    await new Promise((r) => setTimeout(r, 20)); // let the preallocation land
    const guard = new NoWriteFs(nodeFileSystem);
    const { wal: reader, recovery } = await Wal.open({ dir, fs: guard, readOnly: true });
    expect(recovery.validRecords).toBe(40);
    expect(recovery.corruptionDetected).toBe(false);
    const at = reader.currentPosition();
    expect(at).toEqual(writer.currentPosition());
    // The writer goes on (and rotates); the reader's view ends where it opened.
    const more = Array.from({ length: 40 }, (_, i) => writer.append(Record.put(`m${i}`, 'y'.repeat(40))));
    await Promise.all(more);
    expect(await readKeys(reader)).toEqual(written);
    await expectRefusesWrites(reader);
    await reader.close();
    expect(guard.refused).toEqual([]);
    // A second read-only handle opened now sees the new records too.
    const { wal: reader2 } = await Wal.open({ dir, readOnly: true });
    expect(await readKeys(reader2)).toHaveLength(80);
    await reader2.close();
    await writer.append(Record.put('last', 'z'));
    await writer.close();
    const { wal: again, recovery: r2 } = await Wal.open({ dir, fsync: 'os' });
    expect(r2.corruptionDetected).toBe(false);
    expect(await readKeys(again)).toHaveLength(81);
    await again.close();
  });

  it('concurrent read-only opens while the writer rotates and deletes segments never see a false corruption', async () => {
    const mem = new MemFileSystem();
    const dir = '/db/wal';
    const { wal: writer } = await Wal.open({ dir, fs: mem, fsync: 'os', maxSegmentSize: 300 });
    let last: Position | undefined;
    let stop = false;
    const work = (async () => {
      for (let i = 0; !stop; i++) {
        last = await writer.append(Record.put(`k${i}`, 'v'.repeat(60)));
        if (i % 10 === 9) await writer.deleteSegmentsBefore(last);
        if (i % 3 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    const problems: string[] = [];
    for (let n = 0; n < 60; n++) {
      try {
        const { wal: r } = await Wal.open({ dir, fs: mem, readOnly: true });
        const got: LogEntry[] = [];
        for await (const e of r.readFrom({ segmentId: 0, offset: 0 })) got.push(e);
        await r.close();
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    stop = true;
    await work;
    await writer.close();
    expect(problems).toEqual([]);
  });
});
