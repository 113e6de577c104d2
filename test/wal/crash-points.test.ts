/**
 * Systematic crash-point enumeration (RELIABILITY.md §6.22, §6.23; Pebble's
 * TestDBWALRotationCrash, SQLite's TH3 crash tests).
 *
 * A fixed workload (open, about 60 appends mixed with batches, concurrent appends, flushes and
 * syncs, constant rotation from a tiny maxSegmentSize, a deleteSegmentsBefore, close) runs on a
 * FaultFileSystem over a MemFileSystem. For k = 0, 1, 2, ... the power fails just before the
 * k-th mutating file operation (crashAtMutatingOp): crash images are taken with unsynced data
 * and directory operations dropped, kept, and kept as a random prefix (several seeds). Each
 * image must reopen in strict mode and be Prefix-OK with respect to what the workload had been
 * told before the crash. The loop ends when the workload completes without reaching k.
 *
 * Compound failure: for a sample of the images, the recovery itself is crashed at each of its
 * mutating operations; recovering again without faults must succeed with exactly the records the
 * undisturbed recovery found, and recovering twice with no writes in between changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { FaultFileSystem, crashAtMutatingOp } from '../../src/fs/fault.js';
import type { FileSystem } from '../../src/fs/types.js';
import {
  ProcessFs,
  Record,
  Wal,
  checkPrefixOk,
  comparePositions,
  describeRecord,
  frameBytes,
  posStr,
  prepareMem,
  readAll,
  seeded,
  tick,
  view,
  walOptions,
  Tracker,
  type LogEntry,
  type Snapshot,
  policyOptions,
  type PolicyCfg,
} from './helpers/harness.js';

interface Cfg extends PolicyCfg {
  name: string;
  maxSegmentSize: number;
}

type MakeRecord = (i: number) => Record;

/** The workload's records: varied sizes, a tombstone, expiries, compression, one oversized record. */
const plainRecord: MakeRecord = (i) => {
  const key = `key-${String(i).padStart(3, '0')}`;
  if (i % 11 === 7) return Record.delete(key);
  const sizes = [0, 5, 17, 40, 90, 3, 150];
  let value: Uint8Array = Buffer.alloc(sizes[i % sizes.length]!, 0x41 + (i % 26));
  if (i === 30) value = Buffer.alloc(900, 0x30); // larger than maxSegmentSize: a segment of its own
  const options: Parameters<typeof Record.put>[2] = {};
  if (i % 5 === 2) options.expiresAt = 1_700_000_000_000 + i;
  if (i % 9 === 4) {
    options.compression = i % 2 === 0 ? 'lz4' : 'zstd';
    value = Buffer.alloc(120, 0x61 + (i % 3));
  }
  return Record.put(key, value, options);
};

/** Records whose values embed a complete, valid WAL frame (user data that looks like the log). */
const frameRecord: MakeRecord = (i) => {
  if (i % 2 === 1) return plainRecord(i);
  return Record.put(`framed-${i}`, Buffer.concat([Buffer.from('<'), frameBytes(String(i)), Buffer.alloc(30 + (i % 5) * 10, 0x5a)]));
};

const optionsOf = (cfg: Cfg): Parameters<typeof walOptions>[1] => policyOptions(cfg, cfg.maxSegmentSize);

/** The fixed workload. Every await rejects once the file system is dead, which ends it. */
async function workload(fs: FileSystem, cfg: Cfg, t: Tracker, total = 60): Promise<void> {
  const { wal } = await Wal.open(walOptions(fs, optionsOf(cfg)));
  let i = 0;
  const next = (): number => i++;
  for (let round = 0; i < total; round++) {
    switch (round % 6) {
      case 0:
        await t.append(wal, next());
        break;
      case 1:
        await t.batch(wal, [next(), next(), next()]);
        break;
      case 2:
        // Group commit: appends, a batch and a sync in flight at once.
        await Promise.all([
          t.append(wal, next()),
          t.append(wal, next()),
          t.batch(wal, [next(), next()]),
          t.sync(wal),
          t.append(wal, next()),
        ]);
        break;
      case 3:
        await t.append(wal, next());
        await t.sync(wal);
        break;
      case 4:
        await tick(); // lets preallocation (setImmediate) interleave with the writer
        await t.append(wal, next());
        break;
      default: {
        const pending = [t.append(wal, next()), t.append(wal, next())];
        await wal.flush();
        await Promise.all(pending);
      }
    }
    if (round === 14) {
      // Delete the segments before a durable record's position (record 12 is synced by now).
      const target = t.written.find((x) => x.seq === 12)!;
      await t.deleteBefore(wal, target.pos!);
    }
  }
  await wal.close();
  t.closed();
}

interface Image {
  label: string;
  fs: MemFileSystem;
  /** Process-crash-like image (everything written kept): every acked record must survive. */
  ackedSurvive: boolean;
}

const PREFIX_SEEDS = [1, 2];

/** Recovers a copy of `image` (strict) and returns what it holds; the image itself is untouched. */
async function recoverCopy(image: MemFileSystem, cfg: Cfg): Promise<{ entries: LogEntry[]; truncated: number }> {
  const proc = new ProcessFs(image.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }));
  const { wal, recovery } = await Wal.open(walOptions(proc, optionsOf(cfg)));
  try {
    const entries = await readAll(wal);
    expect(recovery.validRecords).toBe(entries.length);
    return { entries, truncated: recovery.bytesTruncated };
  } finally {
    await wal.close();
  }
}

function sameEntries(a: readonly LogEntry[], b: readonly LogEntry[]): string | undefined {
  if (a.length !== b.length) return `${a.length} records vs ${b.length}`;
  for (let i = 0; i < a.length; i++) {
    if (view(a[i]!.record) !== view(b[i]!.record)) return `record ${i}: ${describeRecord(a[i]!.record)} vs ${describeRecord(b[i]!.record)}`;
    if (comparePositions(a[i]!.position, b[i]!.position) !== 0)
      return `record ${i} at ${posStr(a[i]!.position)} vs ${posStr(b[i]!.position)}`;
  }
  return undefined;
}

interface LoopResult {
  crashPoints: number;
  /** Crash points just before an operation on the segment state file (SEGMENTS, SEGMENTS.tmp). */
  stateCrashPoints: number;
  images: number;
  compoundPoints: number;
  violations: string[];
}

/**
 * Crashes the workload at every mutating op k; checks every image; runs the compound loop on
 * every `compoundEvery`-th crash point.
 */
async function crashLoop(cfg: Cfg, make: MakeRecord, compoundEvery: number, total = 60): Promise<LoopResult> {
  const res: LoopResult = { crashPoints: 0, stateCrashPoints: 0, images: 0, compoundPoints: 0, violations: [] };
  const always = cfg.fsync === 'always';
  for (let k = 0; ; k++) {
    const mem = await prepareMem(new MemFileSystem());
    const t = new Tracker(always, make);
    let crash: { op: string; snap: Snapshot; images: Image[] } | undefined;
    const fs = new FaultFileSystem(
      new ProcessFs(mem),
      crashAtMutatingOp(k, (op) => {
        crash = {
          op: `${op.kind} ${op.path}${op.length !== undefined ? ` (${op.length})` : ''}`,
          snap: t.snapshot(),
          images: [
            { label: 'drop', fs: mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }), ackedSurvive: false },
            { label: 'keep', fs: mem.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }), ackedSurvive: true },
            ...PREFIX_SEEDS.map((s) => ({
              label: `prefix#${s}`,
              fs: mem.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(s * 100_003 + k) }),
              ackedSurvive: false,
            })),
          ],
        };
      }),
    );
    const completed = await workload(fs, cfg, t, total).then(
      () => true,
      () => false,
    );
    if (crash === undefined) {
      // The workload finished without reaching op k: every crash point is covered.
      expect(completed, 'the workload failed without a crash').toBe(true);
      break;
    }
    res.crashPoints++;
    if (/\/SEGMENTS(\.tmp)?\b/.test(crash.op)) res.stateCrashPoints++;
    for (const image of crash.images) {
      res.images++;
      const where = `k=${k} (before ${crash.op}), image ${image.label}`;
      let baseline: LogEntry[];
      try {
        baseline = (await recoverCopy(image.fs, cfg)).entries;
        checkPrefixOk(baseline, { ...crash.snap, ackedSurvive: image.ackedSurvive });
      } catch (err) {
        res.violations.push(`${where}: ${(err as Error).message}`);
        continue;
      }
      // Compound failure on a sample: every compoundEvery-th crash point, alternating the image.
      const sampled = k % compoundEvery === 0 && image.label === ((k / compoundEvery) % 2 === 0 ? 'drop' : 'prefix#1');
      if (sampled) {
        res.compoundPoints += await compound(image.fs, cfg, baseline, where, res.violations);
      }
    }
  }
  return res;
}

/**
 * Crashes the recovery of `image` at each of its mutating ops k2, then recovers without faults:
 * it must succeed with exactly `baseline`; and recovering twice with no writes in between
 * (crash right after recovery, or clean close) must give identical results.
 */
async function compound(image: MemFileSystem, cfg: Cfg, baseline: LogEntry[], where: string, violations: string[]): Promise<number> {
  let points = 0;
  for (let k2 = 0; ; k2++) {
    const copy = image.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
    const images2: Array<{ label: string; fs: MemFileSystem }> = [];
    const fault = new FaultFileSystem(
      new ProcessFs(copy),
      crashAtMutatingOp(k2, () => {
        images2.push(
          { label: 'drop', fs: copy.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }) },
          { label: 'prefix', fs: copy.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(k2 + 7) }) },
        );
      }),
    );
    const opened = await Wal.open(walOptions(fault, optionsOf(cfg))).then(
      (r) => r,
      () => undefined,
    );
    if (opened) {
      fault.injector = undefined; // recovery is over: let the instance close normally
      await opened.wal.close();
      if (images2.length === 0) return points; // recovery finished without reaching k2
      violations.push(`${where}: recovery resolved although it crashed at its op ${k2}`);
      return points;
    }
    if (images2.length === 0) {
      violations.push(`${where}: recovery failed with no fault at its op ${k2}`);
      return points;
    }
    points++;
    for (const img of images2) {
      const w = `${where}, recovery crashed at its op ${k2} (${img.label})`;
      try {
        // Recover again without faults: same records as the undisturbed recovery.
        const first = await recoverCopy(img.fs, cfg);
        const d1 = sameEntries(first.entries, baseline);
        if (d1) violations.push(`${w}: second recovery differs from the first: ${d1}`);

        // Idempotent (a): recover, lose power at once, recover again.
        const proc = new ProcessFs(img.fs.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }));
        const a = await Wal.open(walOptions(proc, optionsOf(cfg)));
        const ra = await readAll(a.wal);
        const after = proc.inner as MemFileSystem;
        const again = after.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' });
        proc.kill();
        const b = await Wal.open(walOptions(new ProcessFs(again), optionsOf(cfg)));
        const rb = await readAll(b.wal);
        await b.wal.close();
        const d2 = sameEntries(ra, rb);
        if (d2) violations.push(`${w}: recovery then power loss then recovery differs: ${d2}`);
        if (b.recovery.truncations.length > 0)
          violations.push(`${w}: a recovery right after a recovery truncated ${JSON.stringify(b.recovery.truncations)}`);

        // Idempotent (b): recover, close cleanly, recover again: nothing left to repair.
        const mem = img.fs.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
        const c = await Wal.open(walOptions(new ProcessFs(mem), optionsOf(cfg)));
        const rc = await readAll(c.wal);
        await c.wal.close();
        const e = await Wal.open(walOptions(new ProcessFs(mem), optionsOf(cfg)));
        const re = await readAll(e.wal);
        await e.wal.close();
        const d3 = sameEntries(rc, re);
        if (d3) violations.push(`${w}: recovery, close, recovery differs: ${d3}`);
        if (e.recovery.bytesTruncated !== 0)
          violations.push(`${w}: a recovery after a clean close truncated ${e.recovery.bytesTruncated} bytes`);
      } catch (err) {
        violations.push(`${w}: ${(err as Error).message}`);
      }
    }
  }
}

function report(name: string, r: LoopResult): void {
  // Shown by vitest with --reporter=verbose; handy for the coverage numbers.
  console.log(
    `${name}: ${r.crashPoints} crash points (${r.stateCrashPoints} at state file writes), ${r.images} images checked, ${r.compoundPoints} compound crash points, ${r.violations.length} violations`,
  );
}

const CONFIGS: Cfg[] = [
  { name: "'always' (preallocation default: on)", fsync: 'always', maxSegmentSize: 400 },
  { name: "'always', preallocate: false", fsync: 'always', preallocate: false, maxSegmentSize: 300 },
  { name: '{ batchMs: 1 } (preallocation default: on)', fsync: { batchMs: 1 }, maxSegmentSize: 500 },
  { name: '{ batchMs: 1 }, preallocate: false', fsync: { batchMs: 1 }, preallocate: false, maxSegmentSize: 250 },
  { name: "'os' (preallocation default: off)", fsync: 'os', maxSegmentSize: 350 },
  { name: "'os', preallocate: 256", fsync: 'os', preallocate: 256, maxSegmentSize: 600 },
  // Background write-back syncs (bytesPerSync) racing the appends and the rotation's seal.
  { name: "'os', bytesPerSync: 150", fsync: 'os', bytesPerSync: 150, maxSegmentSize: 700 },
];

describe('crash at every mutating file operation of a fixed workload', () => {
  for (const cfg of CONFIGS) {
    it(`${cfg.name}, maxSegmentSize ${cfg.maxSegmentSize}`, async () => {
      const r = await crashLoop(cfg, plainRecord, 12);
      report(cfg.name, r);
      expect(r.crashPoints).toBeGreaterThan(60);
      // Fresh create (tmp write, sync, rename, dir sync), every rotation's record, and the GC's
      // floor (two slots) are crash points too.
      expect(r.stateCrashPoints).toBeGreaterThan(10);
      expect(r.compoundPoints).toBeGreaterThan(5);
      expect(r.violations.slice(0, 5)).toEqual([]);
    });
  }
});

describe('crash at every mutating file operation: values that embed valid WAL frames', () => {
  // A value may legitimately hold bytes that form a valid frame (a log stored in a log, a
  // replication payload). A crash that tears such a record must still be a clean torn tail.
  const cfgs: Cfg[] = [
    { name: "'os'", fsync: 'os', maxSegmentSize: 700 },
    { name: '{ batchMs: 1 }, preallocate: false', fsync: { batchMs: 1 }, preallocate: false, maxSegmentSize: 700 },
  ];
  for (const cfg of cfgs) {
    it(`${cfg.name}: every image reopens in strict mode and is Prefix-OK`, async () => {
      const r = await crashLoop(cfg, frameRecord, 1_000_000, 24);
      report(`frames, ${cfg.name}`, r);
      expect(r.crashPoints).toBeGreaterThan(20);
      expect(r.violations.slice(0, 3)).toEqual([]);
    });
  }
});

describe('the crash simulator itself', () => {
  it('MemFileSystem crash images hold the bytes each write carried, even when the writer reuses its Buffer', async () => {
    // Runs the WAL on a raw MemFileSystem (no ProcessFs copy). The WAL encodes every flush into
    // one reused Buffer; MemFileSystem must snapshot the bytes of each unsynced write.
    const mem = await prepareMem(new MemFileSystem());
    const { wal } = await Wal.open(walOptions(mem, { fsync: 'os' }));
    const t = new Tracker(false, plainRecord);
    for (let i = 0; i < 6; i++) await t.append(wal, i);
    const snap = t.snapshot();
    const bad: string[] = [];
    for (let seed = 0; seed < 40; seed++) {
      const img = mem.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'drop', rng: seeded(seed) });
      try {
        checkPrefixOk((await recoverCopy(img, { name: 'os', fsync: 'os', maxSegmentSize: 1 << 20 })).entries, snap);
      } catch (err) {
        bad.push(`seed ${seed}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    await wal.close();
    expect(bad.slice(0, 3)).toEqual([]);
  });
});
