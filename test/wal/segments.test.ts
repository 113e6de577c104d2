/**
 * Missing segments (issue #9, point 2): the WAL records durably which segments exist (the
 * `SEGMENTS` state file: the GC floor and the next segment id) and checks the directory against
 * it at open. A segment missing anywhere, the first and the newest included, is corruption:
 * strict refuses the open naming the missing file and changes nothing; salvage keeps the longest
 * valid prefix, quarantines the rest, reports what is missing and never reuses a lost id.
 *
 * Surgery on real files (node:fs), as in surgery.test.ts.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { segmentFileName } from '../../src/wal/format.js';
import { STATE_FILE_NAME, STATE_SLOT_HEADER_SIZE } from '../../src/wal/segment-state.js';
import {
  CorruptionError,
  InvalidConfigError,
  Record,
  Wal,
  type Position,
  type RecoveryInfo,
  type WalOptions,
} from '../../src/wal/index.js';

const tmpRoots: string[] = [];
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-seg-'));
  tmpRoots.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpRoots.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const SEGMENT = 400;
const seg = (dir: string, id: number): string => path.join(dir, segmentFileName(id));
const stateFile = (dir: string): string => path.join(dir, STATE_FILE_NAME);
const segIds = (dir: string): number[] =>
  fs
    .readdirSync(dir)
    .filter((n) => /^\d{16}\.wal$/.test(n))
    .map((n) => Number(n.slice(0, 16)))
    .sort((a, b) => a - b);

interface Entry {
  key: string;
  position: Position;
}

/** A log whose active segment is `last` (segments 0..last), each holding a few records. */
async function buildLog(dir: string, last = 3, opts: Partial<WalOptions> = {}): Promise<Entry[]> {
  const { wal } = await Wal.open({ dir, fsync: 'os', maxSegmentSize: SEGMENT, ...opts });
  const entries: Entry[] = [];
  for (let i = 0; ; i++) {
    const key = `k${String(i).padStart(4, '0')}`;
    const position = await wal.append(Record.put(key, 'v'.repeat(60 + (i % 5) * 10)));
    entries.push({ key, position });
    if (position.segmentId === last && entries.filter((e) => e.position.segmentId === last).length >= 2) break;
  }
  await wal.close();
  return entries;
}

async function openWal(dir: string, opts: Partial<WalOptions> = {}): Promise<{ wal: Wal; recovery: RecoveryInfo }> {
  return Wal.open({ dir, fsync: 'os', maxSegmentSize: SEGMENT, ...opts });
}

async function keys(wal: Wal): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const { record, position } of wal.readFrom({ segmentId: 0, offset: 0 }))
    out.push({ key: Buffer.from(record.key).toString(), position });
  return out;
}

async function openAndRead(dir: string, opts: Partial<WalOptions> = {}): Promise<{ recovery: RecoveryInfo; entries: Entry[] }> {
  const { wal, recovery } = await openWal(dir, opts);
  try {
    return { recovery, entries: await keys(wal) };
  } finally {
    await wal.close();
  }
}

/** Every file under `dir` with a hash of its bytes. */
function snapshot(dir: string): { [name: string]: string } {
  const out: { [name: string]: string } = {};
  const walk = (d: string, rel: string): void => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const r = path.join(rel, ent.name);
      if (ent.isDirectory()) {
        out[`${r}/`] = 'dir';
        walk(path.join(d, ent.name), r);
      } else {
        out[r] = createHash('sha256')
          .update(fs.readFileSync(path.join(d, ent.name)))
          .digest('hex');
      }
    }
  };
  walk(dir, '');
  return out;
}

/** Strict open must reject with CORRUPTION naming `file`, having changed nothing. */
async function expectStrictRejects(dir: string, file: string, opts: Partial<WalOptions> = {}): Promise<CorruptionError> {
  const before = fs.existsSync(dir) ? snapshot(dir) : undefined;
  const err = await openWal(dir, opts).then(
    async ({ wal, recovery }) => {
      await wal.close();
      return expect.fail(`open succeeded; recovery ${JSON.stringify(recovery)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CorruptionError);
  const c = err as CorruptionError;
  expect(c.code).toBe('CORRUPTION');
  expect(c.file).toBe(file);
  expect(c.message).toContain(file);
  if (before) expect(snapshot(dir), 'a refused open changed the directory').toEqual(before);
  else expect(fs.existsSync(dir), 'a refused open created the directory').toBe(false);
  return c;
}

/** Appends until the log rotated `n` times; returns the positions. */
async function appendRotating(wal: Wal, n: number, tag: string): Promise<Position[]> {
  const out: Position[] = [];
  const start = wal.stats().rotations;
  for (let i = 0; wal.stats().rotations < start + n || i < 2; i++) out.push(await wal.append(Record.put(`${tag}${i}`, 'w'.repeat(90))));
  return out;
}

describe('a missing segment is detected wherever it is', () => {
  it('segment 0 deleted: strict rejects naming it; salvage reports it, quarantines the rest, and continues after the highest id', async () => {
    const dir = path.join(tempDir(), 'wal');
    await buildLog(dir);
    fs.unlinkSync(seg(dir, 0));
    const err = await expectStrictRejects(dir, seg(dir, 0));
    expect(err.segmentId).toBe(0);
    expect(err.message).toMatch(/segment 0 is missing/);

    const moved = [1, 2, 3].map((id) => fs.readFileSync(seg(dir, id)));
    const { wal, recovery } = await openWal(dir, { recovery: 'salvage' });
    expect(recovery.missingSegments).toEqual([0]);
    expect(recovery.corruptionDetected).toBe(true);
    expect(recovery.validRecords).toBe(0);
    expect(recovery.quarantined.map((q) => q.segmentId)).toEqual([3, 2, 1]);
    for (const q of recovery.quarantined) expect(fs.readFileSync(q.file).equals(moved[q.segmentId - 1]!)).toBe(true);
    expect(await keys(wal)).toEqual([]);
    // Ids 0..3 are never reused.
    const p = await wal.append(Record.put('after', 'salvage'));
    expect(p.segmentId).toBe(4);
    await wal.close();
    const again = await openAndRead(dir);
    expect(again.recovery.corruptionDetected).toBe(false);
    expect(again.recovery.missingSegments).toEqual([]);
    expect(again.entries.map((e) => e.key)).toEqual(['after']);
  });

  it('a middle segment deleted: strict rejects naming it; salvage keeps the prefix and never recreates the lost ids', async () => {
    const dir = path.join(tempDir(), 'wal');
    const entries = await buildLog(dir, 4);
    fs.unlinkSync(seg(dir, 2));
    const err = await expectStrictRejects(dir, seg(dir, 2));
    expect(err.segmentId).toBe(2);

    const { wal, recovery } = await openWal(dir, { recovery: 'salvage' });
    expect(recovery.missingSegments).toEqual([2]);
    expect(recovery.quarantined.map((q) => q.segmentId)).toEqual([4, 3]);
    const kept = entries.filter((e) => e.position.segmentId < 2);
    expect(await keys(wal)).toEqual(kept);
    // Appends continue in segment 1, then rotate past every id the log ever had.
    const ps = await appendRotating(wal, 3, 'new');
    const ids = new Set(ps.map((p) => p.segmentId));
    for (const lost of [2, 3, 4]) expect(ids.has(lost), `id ${lost} reused`).toBe(false);
    expect([...ids].filter((id) => id > 1)[0]).toBe(5);
    await wal.close();
    expect(segIds(dir).filter((id) => id >= 2 && id <= 4)).toEqual([]);
    // The hole is recorded: a strict reopen accepts it.
    const again = await openAndRead(dir);
    expect(again.recovery.corruptionDetected).toBe(false);
    expect(again.entries.map((e) => e.key)).toEqual([...kept.map((e) => e.key), ...ps.map((_, i) => `new${i}`)]);
  });

  it('the newest segment deleted: strict rejects naming it (its records would silently vanish); salvage reports it', async () => {
    const dir = path.join(tempDir(), 'wal');
    const entries = await buildLog(dir, 3);
    fs.unlinkSync(seg(dir, 3));
    const err = await expectStrictRejects(dir, seg(dir, 3));
    expect(err.segmentId).toBe(3);

    const { wal, recovery } = await openWal(dir, { recovery: 'salvage' });
    expect(recovery.missingSegments).toEqual([3]);
    expect(recovery.corruptionDetected).toBe(true);
    expect(recovery.quarantined).toEqual([]);
    expect(await keys(wal)).toEqual(entries.filter((e) => e.position.segmentId < 3));
    const ps = await appendRotating(wal, 1, 'new');
    expect(ps.some((p) => p.segmentId === 3)).toBe(false);
    await wal.close();
    expect((await openAndRead(dir)).recovery.corruptionDetected).toBe(false);
  });

  it('every segment deleted: strict rejects naming the first; salvage starts an empty log after the highest id', async () => {
    const dir = path.join(tempDir(), 'wal');
    await buildLog(dir, 3);
    for (const id of [0, 1, 2, 3]) fs.unlinkSync(seg(dir, id));
    const err = await expectStrictRejects(dir, seg(dir, 0));
    expect(err.message).toMatch(/missing/);
    // Also with createIfMissing: false.
    await expectStrictRejects(dir, seg(dir, 0), { createIfMissing: false });

    const { wal, recovery } = await openWal(dir, { recovery: 'salvage' });
    expect(recovery.missingSegments).toEqual([0, 1, 2, 3]);
    expect(recovery.corruptionDetected).toBe(true);
    expect(recovery.validRecords).toBe(0);
    expect(wal.currentPosition().segmentId).toBe(4);
    await wal.close();
    expect((await openAndRead(dir)).recovery.missingSegments).toEqual([]);
  });

  it('after GC, a segment missing above the floor is detected; below it, nothing is expected', async () => {
    const dir = path.join(tempDir(), 'wal');
    const entries = await buildLog(dir, 5);
    const { wal } = await openWal(dir);
    expect(await wal.deleteSegmentsBefore(entries.find((e) => e.position.segmentId === 3)!.position)).toBe(3);
    await wal.close();
    expect(segIds(dir)).toEqual([3, 4, 5]);
    const clean = await openAndRead(dir);
    expect(clean.recovery.missingSegments).toEqual([]);
    expect(clean.entries).toEqual(entries.filter((e) => e.position.segmentId >= 3));
    fs.unlinkSync(seg(dir, 3));
    await expectStrictRejects(dir, seg(dir, 3));
  });

  it('missing segments below discardBefore are not an error, and the floor is raised for later opens', async () => {
    const dir = path.join(tempDir(), 'wal');
    const entries = await buildLog(dir, 4);
    fs.unlinkSync(seg(dir, 0));
    fs.unlinkSync(seg(dir, 1));
    const from = entries.find((e) => e.position.segmentId === 2)!.position;
    const { recovery, entries: got } = await openAndRead(dir, { discardBefore: from });
    expect(recovery.missingSegments).toEqual([]);
    expect(recovery.corruptionDetected).toBe(false);
    expect(got).toEqual(entries.filter((e) => e.position.segmentId >= 2));
    // Without discardBefore: the floor now says segments 0 and 1 are gone on purpose.
    expect((await openAndRead(dir)).recovery.missingSegments).toEqual([]);
    // But segment 2 itself is still needed.
    fs.unlinkSync(seg(dir, 2));
    await expectStrictRejects(dir, seg(dir, 2), { discardBefore: from });
  });
});

describe('the state file', () => {
  it('deleted while segments exist: strict rejects naming it; salvage rebuilds it from the segments', async () => {
    const dir = path.join(tempDir(), 'wal');
    const entries = await buildLog(dir, 3);
    fs.unlinkSync(stateFile(dir));
    await expectStrictRejects(dir, stateFile(dir));
    await expectStrictRejects(dir, stateFile(dir), { createIfMissing: false });
    const { recovery, entries: got } = await openAndRead(dir, { recovery: 'salvage' });
    expect(recovery.corruptionDetected).toBe(true);
    expect(recovery.missingSegments).toEqual([]);
    expect(got).toEqual(entries);
    expect(fs.existsSync(stateFile(dir))).toBe(true);
    const again = await openAndRead(dir);
    expect(again.recovery.corruptionDetected).toBe(false);
    expect(again.entries).toEqual(entries);
  });

  it('a bit flip in either slot falls back to the other; in both slots it is corruption naming the file', async () => {
    const root = tempDir();
    const pristine = path.join(root, 'pristine');
    const entries = await buildLog(pristine, 3);
    // The last state update was a GC, then a rotation: both kinds of update must survive losing
    // their slot.
    {
      const { wal } = await openWal(pristine);
      await wal.deleteSegmentsBefore(entries.find((e) => e.position.segmentId === 1)!.position);
      await appendRotating(wal, 1, 'r');
      await wal.close();
    }
    const want = (await openAndRead(pristine)).entries;
    const bytes = fs.readFileSync(stateFile(pristine));
    expect(bytes.length % 2).toBe(0);
    const slot = bytes.length / 2;
    const dir = path.join(root, 'wal');
    const restore = (): void => {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.cpSync(pristine, dir, { recursive: true });
    };
    for (const s of [0, 1]) {
      for (const offset of [0, 9, 16, 24, 32, STATE_SLOT_HEADER_SIZE - 1, slot - 1]) {
        restore();
        const b = fs.readFileSync(stateFile(dir));
        b[s * slot + offset]! ^= 0x04;
        fs.writeFileSync(stateFile(dir), b);
        const { recovery, entries: got } = await openAndRead(dir);
        expect(got, `slot ${s}, byte ${offset}`).toEqual(want);
        expect(recovery.missingSegments).toEqual([]);
      }
    }
    restore();
    const b = fs.readFileSync(stateFile(dir));
    b[3]! ^= 1;
    b[slot + 40]! ^= 1;
    fs.writeFileSync(stateFile(dir), b);
    const err = await expectStrictRejects(dir, stateFile(dir));
    expect(err.message).toMatch(/no valid slot/);
    // Salvage rebuilds it from the segments present.
    const salvaged = await openAndRead(dir, { recovery: 'salvage' });
    expect(salvaged.recovery).toMatchObject({ corruptionDetected: true, stateRebuilt: true, missingSegments: [] });
    expect(salvaged.entries).toEqual(want);
    expect((await openAndRead(dir)).recovery.corruptionDetected).toBe(false);
    // Cut short or emptied: corruption too.
    restore();
    fs.truncateSync(stateFile(dir), 10);
    await expectStrictRejects(dir, stateFile(dir));
  });

  it('an older copy of the state file (restored from a backup) is detected: segments exist that it never recorded', async () => {
    const dir = path.join(tempDir(), 'wal');
    await buildLog(dir, 1);
    const old = fs.readFileSync(stateFile(dir));
    const { wal } = await openWal(dir);
    await appendRotating(wal, 3, 'more');
    await wal.close();
    fs.writeFileSync(stateFile(dir), old);
    const err = await expectStrictRejects(dir, stateFile(dir));
    expect(err.message).toMatch(/not recorded/);
  });

  it('an interrupted GC (floor recorded, segments not yet deleted) is finished at open, silently', async () => {
    const dir = path.join(tempDir(), 'wal');
    const entries = await buildLog(dir, 4);
    const saved = [0, 1].map((id) => fs.readFileSync(seg(dir, id)));
    const { wal } = await openWal(dir);
    expect(await wal.deleteSegmentsBefore(entries.find((e) => e.position.segmentId === 2)!.position)).toBe(2);
    await wal.close();
    // Put the deleted files back, as a crash between recording the floor and unlinking leaves them.
    saved.forEach((b, id) => {
      fs.writeFileSync(seg(dir, id), b);
    });
    const { recovery, entries: got } = await openAndRead(dir);
    expect(recovery.corruptionDetected).toBe(false);
    expect(recovery.missingSegments).toEqual([]);
    expect(recovery.quarantined).toEqual([]);
    expect(got).toEqual(entries.filter((e) => e.position.segmentId >= 2));
    expect(segIds(dir)).toEqual([2, 3, 4]);
  });
});

describe('createIfMissing', () => {
  it('false: a missing directory, or a directory with no log, is corruption; nothing is created', async () => {
    const root = tempDir();
    const dir = path.join(root, 'wal');
    await expectStrictRejects(dir, dir, { createIfMissing: false });
    fs.mkdirSync(dir);
    await expectStrictRejects(dir, stateFile(dir), { createIfMissing: false });
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('false: an existing log opens; the whole directory deleted is corruption', async () => {
    const dir = path.join(tempDir(), 'wal');
    const entries = await buildLog(dir, 2);
    expect((await openAndRead(dir, { createIfMissing: false })).entries).toEqual(entries);
    fs.rmSync(dir, { recursive: true });
    await expectStrictRejects(dir, dir, { createIfMissing: false });
    // The default creates an empty log.
    const fresh = await openAndRead(dir);
    expect(fresh.entries).toEqual([]);
    expect(fresh.recovery.missingSegments).toEqual([]);
  });

  it("false with recovery: 'salvage': a missing log starts empty, reported as corruption", async () => {
    const dir = path.join(tempDir(), 'wal');
    const { wal, recovery } = await Wal.open({ dir, createIfMissing: false, recovery: 'salvage' });
    expect(recovery).toMatchObject({ corruptionDetected: true, stateRebuilt: true, validRecords: 0 });
    await wal.close();
    // Once salvaged, it is a log like any other.
    const again = await Wal.open({ dir, createIfMissing: false });
    expect(again.recovery.corruptionDetected).toBe(false);
    await again.wal.close();
  });

  it('is validated like the other options', async () => {
    const err = await Wal.open({ dir: path.join(tempDir(), 'x'), createIfMissing: 'no' as unknown as boolean }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidConfigError);
    expect(err).toMatchObject({ option: 'createIfMissing' });
  });
});

describe('Wal.open options', () => {
  it('misspelt option names and an fs that is not a FileSystem are INVALID_CONFIG naming them; nothing is created', async () => {
    const root = tempDir();
    const dir = path.join(root, 'wal');
    for (const [options, option] of [
      [{ dir, maxSegmentSze: 4096 }, 'maxSegmentSze'],
      [{ dir, fsyncPolicy: 'always' }, 'fsyncPolicy'],
      [{ dir, fs: {} }, 'fs'],
      [{ dir, fs: { open: () => undefined } }, 'fs'],
    ] as const) {
      const err = await Wal.open(options as unknown as WalOptions).catch((e: unknown) => e);
      expect(err, option).toBeInstanceOf(InvalidConfigError);
      expect(err).toMatchObject({ option });
    }
    expect(fs.existsSync(dir)).toBe(false);
  });
});

describe('adoptUntracked: a log made before the state file existed', () => {
  it('opens strict without reporting corruption, writes the state file, and is tracked from then on', async () => {
    const dir = path.join(tempDir(), 'wal');
    const entries = await buildLog(dir, 3);
    fs.rmSync(stateFile(dir));
    await expect(openAndRead(dir)).rejects.toBeInstanceOf(CorruptionError);
    const adopted = await openAndRead(dir, { adoptUntracked: true });
    expect(adopted.entries).toEqual(entries);
    expect(adopted.recovery).toMatchObject({ corruptionDetected: false, stateRebuilt: true, missingSegments: [] });
    expect(fs.existsSync(stateFile(dir))).toBe(true);
    const segs = fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.wal'))
      .sort();
    fs.rmSync(path.join(dir, segs[0]!));
    await expect(openAndRead(dir, { adoptUntracked: true })).rejects.toBeInstanceOf(CorruptionError);
  });
});
