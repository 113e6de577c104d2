/**
 * Crash points around the segment state file (issue #9, point 2): power loss before every
 * mutating file operation of a workload that creates a log, rotates, deletes segments, reopens
 * with `discardBefore` (the DB's flushed position: the floor is raised, then segments deleted),
 * rotates and deletes again. Every crash image must reopen in strict mode with no false
 * CorruptionError (no segment reported missing that was deleted on purpose or never recorded)
 * and be Prefix-OK; then the reopen itself is crashed at each of its mutating operations, and a
 * further reopen must find the same records.
 *
 * Also: ENOSPC / EIO on the state file fails the operation loudly (fresh create, rotation,
 * deleteSegmentsBefore), and what is on disk then still reopens.
 */
import { describe, expect, it } from 'vitest';
import { FaultFileSystem, crashAtMutatingOp, type FsOp } from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import type { FileSystem } from '../../src/fs/types.js';
import { IoError, type WalOptions } from '../../src/wal/index.js';
import { STATE_FILE_NAME } from '../../src/wal/segment-state.js';
import {
  ProcessFs,
  Record,
  Tracker,
  Wal,
  checkPrefixOk,
  prepareMem,
  readAll,
  seeded,
  segmentIds,
  walOptions,
  type LogEntry,
  type Position,
  type Snapshot,
} from './helpers/harness.js';

const SEGMENT = 260;
const rec = (i: number): Record => Record.put(`k${String(i).padStart(3, '0')}`, Buffer.alloc([20, 60, 5, 90][i % 4]!, 0x41 + (i % 26)));

interface Run {
  phase: 1 | 2;
  discard: Position | undefined;
}

const options = (fs: FileSystem, discard: Position | undefined, extra: Partial<WalOptions> = {}): WalOptions =>
  walOptions(fs, { fsync: 'os', maxSegmentSize: SEGMENT, ...(discard ? { discardBefore: discard } : {}), ...extra });

/** Phase 1: a new log, rotations, a GC, close. Phase 2: reopen with discardBefore, more of the same. */
async function workload(fs: FileSystem, t: Tracker, run: Run): Promise<void> {
  run.phase = 1;
  let { wal } = await Wal.open(options(fs, undefined));
  for (let i = 0; i < 16; i++) {
    await t.append(wal, i);
    if (i % 5 === 4) await t.sync(wal);
  }
  await t.deleteBefore(wal, t.written[7]!.pos!);
  for (let i = 16; i < 22; i++) await t.append(wal, i);
  await wal.close();
  t.closed();

  run.phase = 2;
  run.discard = t.written.find((x) => x.seq === 12)!.pos!;
  ({ wal } = await Wal.open(options(fs, run.discard)));
  for (let i = 22; i < 34; i++) {
    await t.append(wal, i);
    if (i % 4 === 1) await t.sync(wal);
  }
  await t.deleteBefore(wal, t.written.find((x) => x.seq === 26)!.pos!);
  await t.append(wal, 34);
  await wal.close();
  t.closed();
}

/** The expectation for an image taken now: phase 2 starts no earlier than discardBefore's segment. */
function expectation(snap: Snapshot, run: Run): Snapshot {
  if (run.phase === 1 || !run.discard) return snap;
  let sD = snap.written.findIndex((x) => x.pos === undefined || x.pos.segmentId >= run.discard!.segmentId);
  if (sD < 0) sD = snap.written.length;
  return { written: snap.written, minStart: Math.max(snap.minStart, sD), maxStart: Math.max(snap.maxStart, sD) };
}

async function reopen(img: MemFileSystem, discard: Position | undefined): Promise<LogEntry[]> {
  const { wal, recovery } = await Wal.open(options(new ProcessFs(img), discard));
  try {
    expect(recovery.missingSegments).toEqual([]);
    return await readAll(wal);
  } finally {
    await wal.close();
  }
}

describe('crash at every mutating operation: create, rotate, GC, reopen with discardBefore', () => {
  it('no false CorruptionError, no lost acknowledged record, and recovery itself survives crashes', async () => {
    const violations: string[] = [];
    let points = 0;
    let statePoints = 0;
    let compound = 0;
    for (let k = 0; ; k++) {
      const mem = await prepareMem(new MemFileSystem());
      const t = new Tracker(false, rec);
      const run: Run = { phase: 1, discard: undefined };
      let crash: { op: FsOp; snap: Snapshot; discard: Position | undefined; images: Array<[string, MemFileSystem, boolean]> } | undefined;
      const fs = new FaultFileSystem(
        new ProcessFs(mem),
        crashAtMutatingOp(k, (op) => {
          crash = {
            op,
            snap: expectation(t.snapshot(), run),
            discard: run.phase === 2 ? run.discard : undefined,
            images: [
              ['drop', mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }), false],
              ['keep', mem.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }), true],
              ['prefix', mem.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(k * 31 + 5) }), false],
            ],
          };
        }),
      );
      const done = await workload(fs, t, run).then(
        () => true,
        () => false,
      );
      if (!crash) {
        expect(done, 'the workload failed without a crash').toBe(true);
        break;
      }
      points++;
      if (crash.op.path.includes(STATE_FILE_NAME)) statePoints++;
      for (const [label, img, ackedSurvive] of crash.images) {
        const where = `k=${k} (before ${crash.op.kind} ${crash.op.path}, phase ${run.phase}), image ${label}`;
        let baseline: LogEntry[];
        try {
          baseline = await reopen(img.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }), crash.discard);
          checkPrefixOk(baseline, { ...crash.snap, ackedSurvive });
        } catch (err) {
          violations.push(`${where}: ${(err as Error).message.split('\n')[0]}`);
          continue;
        }
        if (label !== 'drop') continue;
        // Crash the reopen at each of its own mutating operations; reopening again finds the same.
        for (let k2 = 0; ; k2++) {
          const copy = img.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
          let img2: MemFileSystem | undefined;
          const f2 = new FaultFileSystem(
            new ProcessFs(copy),
            crashAtMutatingOp(k2, () => {
              img2 = copy.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(k2 + 11) });
            }),
          );
          const opened = await Wal.open(options(f2, crash.discard)).then(
            (r) => r,
            () => undefined,
          );
          if (opened) {
            f2.injector = undefined;
            await opened.wal.close();
            break;
          }
          if (!img2) {
            violations.push(`${where}: reopen failed with no crash at its op ${k2}`);
            break;
          }
          compound++;
          try {
            const again = await reopen(img2, crash.discard);
            const a = again.map((e) => Buffer.from(e.record.key).toString()).join(',');
            const b = baseline.map((e) => Buffer.from(e.record.key).toString()).join(',');
            if (a !== b) violations.push(`${where}, reopen crashed at its op ${k2}: [${a}] vs [${b}]`);
          } catch (err) {
            violations.push(`${where}, reopen crashed at its op ${k2}: ${(err as Error).message.split('\n')[0]}`);
          }
        }
      }
    }
    console.log(
      `state crash loop: ${points} crash points (${statePoints} at state file operations), ${compound} compound points, ${violations.length} violations`,
    );
    expect(points).toBeGreaterThan(80);
    expect(statePoints).toBeGreaterThan(15);
    expect(compound).toBeGreaterThan(50);
    expect(violations.slice(0, 5)).toEqual([]);
  });
});

describe('I/O errors on the state file fail the operation loudly', () => {
  const failOn = (match: (op: FsOp) => boolean, code: string) => {
    let armed = true;
    let fired: FsOp | undefined;
    return {
      fired: () => fired,
      injector: (op: FsOp) => {
        if (armed && match(op)) {
          armed = false;
          fired = op;
          return { error: code };
        }
        return undefined;
      },
    };
  };
  const isState = (op: FsOp): boolean => op.path.endsWith(`/${STATE_FILE_NAME}`) || op.path.endsWith(`/${STATE_FILE_NAME}.tmp`);

  for (const [name, kind, code] of [
    ['writing the new state file', 'write', 'ENOSPC'],
    ['syncing the new state file', 'datasync', 'EIO'],
    ['renaming the new state file into place', 'rename', 'EIO'],
  ] as const) {
    it(`a new log: ${name} fails with ${code}: open rejects with IoError, and a later open works`, async () => {
      const mem = await prepareMem(new MemFileSystem());
      const f = failOn((op) => isState(op) && op.kind === kind, code);
      const err = await Wal.open(options(new FaultFileSystem(new ProcessFs(mem), f.injector), undefined)).catch((e: unknown) => e);
      expect(f.fired()).toBeDefined();
      expect(err).toBeInstanceOf(IoError);
      expect(err).toMatchObject({ errno: code });
      for (const img of [mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }), mem]) {
        const { wal } = await Wal.open(options(new ProcessFs(img), undefined));
        await wal.append(rec(1));
        await wal.close();
      }
    });
  }

  for (const [kind, code] of [
    ['write', 'ENOSPC'],
    ['datasync', 'EIO'],
  ] as const) {
    it(`rotation: the state ${kind} fails with ${code}: the log fails for good; reopen recovers every acked record`, async () => {
      const mem = await prepareMem(new MemFileSystem());
      const fault = new FaultFileSystem(new ProcessFs(mem));
      const { wal } = await Wal.open(options(fault, undefined));
      const t = new Tracker(false, rec);
      for (let i = 0; i < 3; i++) await t.append(wal, i);
      const f = failOn((op) => isState(op) && op.kind === kind, code);
      fault.injector = f.injector;
      const outcomes = await Promise.allSettled(Array.from({ length: 8 }, (_, j) => t.append(wal, 3 + j)));
      expect(f.fired(), 'a rotation wrote the state file').toBeDefined();
      const failed = outcomes.filter((o) => o.status === 'rejected');
      expect(failed.length).toBeGreaterThan(0);
      const error = wal.stats().failure;
      expect(error).toBeInstanceOf(IoError);
      expect(error).toMatchObject({ errno: code });
      await expect(wal.append(rec(99))).rejects.toBe(error);
      await expect(wal.close()).rejects.toBe(error);
      fault.injector = undefined;
      // A power loss now, and a plain reopen (the page cache kept).
      checkPrefixOk(await reopen(mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }), undefined), { written: t.written });
      checkPrefixOk(await reopen(mem, undefined), { written: t.written, ackedSurvive: true });
    });

    it(`deleteSegmentsBefore: the state ${kind} fails with ${code}: it rejects, deletes nothing, the log fails; reopen is clean`, async () => {
      const mem = await prepareMem(new MemFileSystem());
      const fault = new FaultFileSystem(new ProcessFs(mem));
      const { wal } = await Wal.open(options(fault, undefined));
      const t = new Tracker(false, rec);
      for (let i = 0; i < 14; i++) await t.append(wal, i);
      await t.sync(wal);
      const before = await segmentIds(mem);
      expect(before.length).toBeGreaterThan(3);
      const f = failOn((op) => isState(op) && op.kind === kind, code);
      fault.injector = f.injector;
      const err = await t.deleteBefore(wal, t.written[12]!.pos!).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IoError);
      expect(err).toMatchObject({ errno: code });
      expect(await segmentIds(mem)).toEqual(before);
      expect(wal.stats().failure).toBe(err);
      await expect(wal.close()).rejects.toBe(err);
      fault.injector = undefined;
      // The deletion failed, so it may or may not take effect (a failed fdatasync may still have
      // written the new floor): the log starts at the first record or at the first one kept.
      const snap = t.snapshot();
      const dropped = await reopen(mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }), undefined);
      checkPrefixOk(dropped, snap);
      checkPrefixOk(await reopen(mem, undefined), { ...snap, ackedSurvive: true });
    });
  }
});
