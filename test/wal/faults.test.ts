/**
 * Fault tests of the WAL on the in-memory file system (RELIABILITY.md §6.2, §6.12, §6.13, §6.14):
 * fsyncgate (EIO on fdatasync under each policy), short writes then ENOSPC, failures during
 * rotation, group commit and write coalescing measured with FaultFileSystem counters, the
 * { batchMs } timer, directory fsyncs after segment creation, deletion and truncation, and what a
 * reopen must do after a failure or a process crash.
 */
import { describe, expect, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { FaultFileSystem, shortWriteThenFail, type FsOp, type Injector } from '../../src/fs/fault.js';
import { IoError } from '../../src/wal/index.js';
import {
  DIR,
  ProcessFs,
  Record,
  Tracker,
  Wal,
  checkPrefixOk,
  noop,
  prepareMem,
  readAll,
  seeded,
  sleep,
  tick,
  walOptions,
  type LogEntry,
  policyOptions,
  type PolicyCfg,
} from './helpers/harness.js';

interface Cfg extends PolicyCfg {
  maxSegmentSize?: number;
}

const opts = (cfg: Cfg): Parameters<typeof walOptions>[1] => policyOptions(cfg, cfg.maxSegmentSize ?? 1 << 20);

/** Records of a few sizes; key k<i> makes each unique. */
const rec = (i: number): Record => Record.put(`k${String(i).padStart(3, '0')}`, Buffer.alloc([10, 40, 3, 90][i % 4]!, 0x40 + (i % 50)));

interface Setup {
  mem: MemFileSystem;
  proc: ProcessFs;
  fault: FaultFileSystem;
  wal: Wal;
  t: Tracker;
}

async function setup(cfg: Cfg, injector?: Injector): Promise<Setup> {
  const mem = await prepareMem(new MemFileSystem());
  const proc = new ProcessFs(mem);
  const fault = new FaultFileSystem(proc, injector);
  const { wal } = await Wal.open(walOptions(fault, opts(cfg)));
  return { mem, proc, fault, wal, t: new Tracker(cfg.fsync === 'always', rec) };
}

/** A promise's outcome, without ever leaving a rejection unhandled. */
async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** Fails the first operation `match` accepts (once), recording every operation it sees. */
function failFirst(match: (op: FsOp) => boolean, code: string): { ops: FsOp[]; fired: () => FsOp | undefined; injector: Injector } {
  const ops: FsOp[] = [];
  let fired: FsOp | undefined;
  return {
    ops,
    fired: () => fired,
    injector: (op) => {
      ops.push(op);
      if (fired === undefined && match(op)) {
        fired = op;
        return { error: code };
      }
      return undefined;
    },
  };
}

function expectIoError(err: unknown, errno: string): asserts err is IoError {
  expect(err).toBeInstanceOf(IoError);
  expect(err).toMatchObject({ code: 'IO', errno });
  expect((err as IoError).cause).toMatchObject({ code: errno });
}

/** After a failure: every write, batch, flush, sync and delete rejects with the very same error. */
async function expectFailedForGood(wal: Wal, err: unknown): Promise<void> {
  expect(wal.stats().failure).toBe(err);
  await expect(wal.append(rec(900))).rejects.toBe(err);
  await expect(wal.appendBatch([rec(901), rec(902)])).rejects.toBe(err);
  await expect(wal.flush()).rejects.toBe(err);
  await expect(wal.deleteSegmentsBefore({ segmentId: 1, offset: 0 })).rejects.toBe(err);
  // No later sync() ever resolves, even though the disk works again.
  for (let i = 0; i < 3; i++) {
    await expect(wal.sync()).rejects.toBe(err);
    await tick();
  }
  expect(wal.stats().failure).toBe(err);
}

/**
 * Reopens on the same file system (the fault cleared; the page cache kept): must succeed in
 * strict mode, hold every acked record, and be Prefix-OK; then a durable append and a power loss
 * must leave a Prefix-OK log holding it (so what the reopen found is on stable storage too).
 */
async function expectReopenRecovers(mem: MemFileSystem, cfg: Cfg, t: Tracker, extra = 2): Promise<LogEntry[]> {
  const proc = new ProcessFs(mem);
  const { wal } = await Wal.open(walOptions(proc, opts(cfg)));
  const got = await readAll(wal);
  checkPrefixOk(got, { written: t.written, ackedSurvive: true });
  t.rebase(got);
  for (let i = 0; i < extra; i++) await t.append(wal, 500 + i);
  await t.sync(wal);
  for (const [label, crashed] of [
    ['drop', mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' })],
    ['prefix', mem.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(7) })],
  ] as const) {
    const { wal: w } = await Wal.open(walOptions(new ProcessFs(crashed), opts(cfg))).catch((err: unknown) => {
      throw new Error(`strict open after the reopen and a power loss (${label}) failed: ${(err as Error).message}`);
    });
    checkPrefixOk(await readAll(w), { written: t.written });
    await w.close();
  }
  await wal.close();
  return got;
}

const isSegment = (op: FsOp): boolean => op.path.endsWith('.wal');

/**
 * After a fdatasync that no caller awaited (a timer's, a write-back's) failed with EIO: the log
 * is failed for good with that error, the failed sync was not retried, close rejects with it,
 * and a reopen recovers every acked record.
 */
async function expectBackgroundSyncFailed(s: Pick<Setup, 'mem' | 'wal' | 't'>, cfg: Cfg, f: ReturnType<typeof failFirst>): Promise<void> {
  const err = s.wal.stats().failure;
  expect(f.fired()).toBeDefined();
  expectIoError(err, 'EIO');
  await expectFailedForGood(s.wal, err);
  expect(f.ops.filter((op) => op.kind === 'datasync' && isSegment(op))).toHaveLength(1);
  await expect(s.wal.close()).rejects.toBe(err);
  await expectReopenRecovers(s.mem, cfg, s.t);
}
const segName = (id: number): string => `${DIR}/${String(id).padStart(16, '0')}.wal`;

// ---------------------------------------------------------------------------------------------

describe('EIO on fdatasync (fsyncgate): the log fails for good', () => {
  for (const preallocate of [false, undefined]) {
    it(`'always'${preallocate === false ? ', preallocate: false' : ' (preallocation default: on)'}: pending appends reject, nothing is retried, reopen recovers`, async () => {
      const cfg: Cfg = { fsync: 'always', preallocate, maxSegmentSize: 4096 };
      const { mem, fault, wal, t } = await setup(cfg);
      for (let i = 0; i < 10; i++) await t.append(wal, i);
      await tick();
      // Fail the next fdatasync, once: the writer's (the appends below flush in this turn).
      const f = failFirst((op) => op.kind === 'datasync', 'EIO');
      fault.injector = f.injector;
      const results = await Promise.all([t.append(wal, 10), t.append(wal, 11), t.batch(wal, [12, 13]), t.append(wal, 14)].map(settle));
      expect(f.fired()).toBeDefined();
      const first = results[0]!;
      expect(first.ok).toBe(false);
      const err = (first as { error: unknown }).error;
      expectIoError(err, 'EIO');
      for (const r of results) expect(r).toEqual({ ok: false, error: err });
      await expectFailedForGood(wal, err);
      await sleep(10);
      // The failed fdatasync was not retried as if the data were safe.
      expect(f.ops.filter((op) => op.kind === 'datasync' && isSegment(op))).toHaveLength(1);
      await expect(wal.close()).rejects.toBe(err);
      expect(f.ops.filter((op) => op.kind === 'datasync' && isSegment(op))).toHaveLength(1);
      // close() released the lock: reopening works, and every record acked before the failure is there.
      await expectReopenRecovers(mem, cfg, t);
    });
  }

  for (const preallocate of [false, undefined]) {
    it(`{ batchMs: 2 }${preallocate === false ? ', preallocate: false' : ''}: the timer's fdatasync fails, later appends reject`, async () => {
      const cfg: Cfg = { fsync: { batchMs: 2 }, preallocate, maxSegmentSize: 4096 };
      const { mem, fault, wal, t } = await setup(cfg);
      for (let i = 0; i < 5; i++) await t.append(wal, i);
      await sleep(20); // the timer synced them; preallocation is done
      const f = failFirst((op) => op.kind === 'datasync', 'EIO');
      fault.injector = f.injector;
      await t.append(wal, 5); // resolves: its bytes are in the OS
      for (let i = 0; i < 400 && wal.stats().failure === undefined; i++) await sleep(5);
      await expectBackgroundSyncFailed({ mem, wal, t }, cfg, f);
    });
  }

  it("'os': sync() rejects with EIO, and so does every later call", async () => {
    const cfg: Cfg = { fsync: 'os', maxSegmentSize: 4096 };
    const { mem, fault, wal, t } = await setup(cfg);
    for (let i = 0; i < 6; i++) await t.append(wal, i);
    await t.sync(wal);
    for (let i = 6; i < 9; i++) await t.append(wal, i);
    const f = failFirst((op) => op.kind === 'datasync', 'EIO');
    fault.injector = f.injector;
    const [a, b] = await Promise.all([settle(wal.sync()), settle(wal.sync())]);
    expect(a.ok).toBe(false);
    const err = (a as { error: unknown }).error;
    expectIoError(err, 'EIO');
    expect(b).toEqual({ ok: false, error: err });
    await expectFailedForGood(wal, err);
    expect(f.ops.filter((op) => op.kind === 'datasync' && isSegment(op))).toHaveLength(1);
    await expect(wal.close()).rejects.toBe(err);
    await expectReopenRecovers(mem, cfg, t);
  });

  it("'os': a failed background write-back fdatasync (bytesPerSync) fails the log too", async () => {
    // Nobody waits for these syncs, but their error is the segment's: swallowing it would let a
    // later sync() "succeed" over pages the kernel may have dropped (fsyncgate).
    const cfg: Cfg = { fsync: 'os', bytesPerSync: 500, maxSegmentSize: 1 << 16 };
    const { mem, fault, wal, t } = await setup(cfg);
    const f = failFirst((op) => op.kind === 'datasync' && isSegment(op), 'EIO');
    fault.injector = f.injector;
    // Appends resolve (their bytes are in the OS) until the failure surfaces.
    for (let i = 0; i < 100 && wal.stats().failure === undefined; i++) await settle(t.append(wal, i));
    for (let i = 0; i < 100 && wal.stats().failure === undefined; i++) await sleep(2);
    await expectBackgroundSyncFailed({ mem, wal, t }, cfg, f);
  });

  it('a failed fdatasync of preallocated space fails the log too: it is a failed fdatasync of the segment', async () => {
    // Preallocation fdatasyncs its zeros on the segment's own handle, in the background. When
    // that fdatasync fails the error must not be swallowed: on Linux the error is reported once
    // per file description, so the writer's next fdatasync would "succeed" and ack records whose
    // pages may have been dropped (fsyncgate).
    const cfg: Cfg = { fsync: 'always', preallocate: 4096, maxSegmentSize: 1 << 16 };
    const mem = await prepareMem(new MemFileSystem());
    const f = failFirst((op) => op.kind === 'datasync' && isSegment(op), 'EIO');
    const fault = new FaultFileSystem(new ProcessFs(mem));
    const { wal } = await Wal.open(walOptions(fault, opts(cfg)));
    fault.injector = f.injector; // from here the first segment fdatasync is preallocation's
    for (let i = 0; i < 10 && f.fired() === undefined; i++) await tick();
    expect(f.fired(), 'preallocation issued an fdatasync').toBeDefined();
    const err = wal.stats().failure;
    const outcome = await settle(wal.append(rec(1)));
    await wal.close().catch(noop);
    expect(err, 'stats().failure after a failed fdatasync').toBeDefined();
    expect(outcome).toEqual({ ok: false, error: err });
  });
});

// ---------------------------------------------------------------------------------------------

describe('short write then ENOSPC', () => {
  const cfgs: Array<{ name: string; cfg: Cfg }> = [
    { name: "'always', preallocate: false", cfg: { fsync: 'always', preallocate: false, maxSegmentSize: 400 } },
    { name: "'always' (preallocation default: on)", cfg: { fsync: 'always', maxSegmentSize: 400 } },
    { name: '{ batchMs: 1 }', cfg: { fsync: { batchMs: 1 }, maxSegmentSize: 300 } },
    { name: "'os'", cfg: { fsync: 'os', maxSegmentSize: 350 } },
  ];

  /** A small workload with rotation; returns how it ended. */
  async function run(cfg: Cfg, fs: FaultFileSystem, t: Tracker): Promise<{ wal: Wal | undefined; error: unknown }> {
    let wal: Wal | undefined;
    try {
      wal = (await Wal.open(walOptions(fs, opts(cfg)))).wal;
      for (let i = 0; i < 24; i += 4) {
        await t.append(wal, i);
        await t.batch(wal, [i + 1, i + 2]);
        if (i % 8 === 0) await tick();
        await Promise.all([t.append(wal, i + 3), t.sync(wal)]);
      }
      await wal.close();
      t.closed();
      return { wal, error: undefined };
    } catch (error) {
      return { wal, error };
    }
  }

  for (const { name, cfg } of cfgs) {
    it(`${name}: at every write of a workload, the failing call rejects with ENOSPC, the log is failed, reopen is Prefix-OK`, async () => {
      // Count the writes of an undisturbed run.
      const probe = new FaultFileSystem(new ProcessFs(await prepareMem(new MemFileSystem())));
      const counted: FsOp[] = [];
      probe.injector = (op) => void counted.push(op);
      expect((await run(cfg, probe, new Tracker(cfg.fsync === 'always', rec))).error).toBeUndefined();
      const writes = counted.filter((op) => op.kind === 'write' || op.kind === 'writeSync').length;
      expect(writes).toBeGreaterThan(15);

      let failures = 0;
      for (let n = 0; n < writes; n++) {
        // (A cut to 0 bytes is not tried: write(2) never returns 0 for a non-empty buffer, and the
        // WAL reports such a write as its own EIO, 'write made no progress'.)
        for (const bytes of [1, 19, 100]) {
          const mem = await prepareMem(new MemFileSystem());
          const t = new Tracker(cfg.fsync === 'always', rec);
          const fs = new FaultFileSystem(new ProcessFs(mem), shortWriteThenFail(n, bytes, 'ENOSPC'));
          const { wal, error } = await run(cfg, fs, t);
          const where = `write #${n} cut to ${bytes} bytes`;
          if (error === undefined) continue; // the short write hit preallocation zeros and nothing wrote after
          failures++;
          expectIoError(error, 'ENOSPC');
          if (wal !== undefined) {
            expect(wal.stats().failure, where).toBe(error);
            await expect(wal.append(rec(999))).rejects.toBe(error);
            await expect(wal.close()).rejects.toBe(error);
          }
          // The partial record is never followed by another: strict reopen succeeds and is Prefix-OK.
          await expectReopenRecovers(mem, cfg, t).catch((err: unknown) => {
            throw new Error(`${where}: ${(err as Error).message}`);
          });
        }
      }
      expect(failures).toBeGreaterThan(writes);
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('failures during segment rotation', () => {
  // 'os' without preallocation: the only fdatasyncs are the seal of the old segment and the new
  // segment's header. Records of 76-byte frames: three fit in a 300-byte segment.
  const big = (i: number): Record => Record.put(`r${String(i).padStart(4, '0')}`, Buffer.alloc(50, 0x61 + (i % 20)));
  const cases: Array<{ name: string; cfg: Cfg; match: (op: FsOp) => boolean; code: string }> = [
    {
      name: 'trimming the old segment (truncate) fails with EIO',
      cfg: { fsync: 'os', preallocate: 1024, maxSegmentSize: 300 },
      match: (op) => op.kind === 'truncate',
      code: 'EIO',
    },
    {
      name: "the old segment's sealing fdatasync fails with EIO",
      cfg: { fsync: 'os', maxSegmentSize: 300 },
      match: (op) => op.kind === 'datasync' && op.path === segName(0),
      code: 'EIO',
    },
    {
      name: 'creating the new segment fails with ENOSPC',
      cfg: { fsync: 'os', maxSegmentSize: 300 },
      match: (op) => op.kind === 'open' && op.mutating,
      code: 'ENOSPC',
    },
    {
      name: "writing the new segment's header fails with ENOSPC",
      cfg: { fsync: 'os', maxSegmentSize: 300 },
      match: (op) => (op.kind === 'writeSync' || op.kind === 'write') && op.path === segName(1),
      code: 'ENOSPC',
    },
    {
      name: "the new segment's header fdatasync fails with EIO",
      cfg: { fsync: 'os', maxSegmentSize: 300 },
      match: (op) => op.kind === 'datasync' && op.path === segName(1),
      code: 'EIO',
    },
    {
      name: 'the directory fsync after creating the new segment fails with EIO',
      cfg: { fsync: 'os', maxSegmentSize: 300 },
      match: (op) => op.kind === 'syncDir' && op.path === DIR,
      code: 'EIO',
    },
    // The new segment is recorded in the segment state file before anything is appended to it.
    {
      name: 'recording the new segment in the state file fails with ENOSPC',
      cfg: { fsync: 'os', maxSegmentSize: 300 },
      match: (op) => op.kind === 'write' && op.path === `${DIR}/SEGMENTS`,
      code: 'ENOSPC',
    },
    {
      name: "the state file's fdatasync after recording the new segment fails with EIO",
      cfg: { fsync: 'os', maxSegmentSize: 300 },
      match: (op) => op.kind === 'datasync' && op.path === `${DIR}/SEGMENTS`,
      code: 'EIO',
    },
  ];
  for (const c of cases) {
    it(`${c.name}: the log fails, reopen recovers, and what it found survives a later power loss`, async () => {
      const { mem, fault, wal } = await setup(c.cfg);
      const tr = new Tracker(false, big);
      for (let i = 0; i < 3; i++) await tr.append(wal, i); // not synced: sealing must fdatasync
      for (let i = 0; i < 5; i++) await tick(); // preallocation, when on, fills the segment
      const f = failFirst(c.match, c.code);
      fault.injector = f.injector;
      const outcome = await settle(tr.append(wal, 3)); // does not fit: rotation
      expect(f.fired(), 'the targeted operation ran').toBeDefined();
      expect(outcome.ok).toBe(false);
      const err = (outcome as { error: unknown }).error;
      expectIoError(err, c.code);
      await expectFailedForGood(wal, err);
      await expect(wal.close()).rejects.toBe(err);
      await expectReopenRecovers(mem, c.cfg, tr);
    });
  }
});

describe('preallocation on a disk that is momentarily full', () => {
  it('a zero write cut short by ENOSPC leaves no bytes after the end of a sealed segment', async () => {
    // Preallocation is an optimisation and may fail; but the bytes a failed zero write did land
    // lie past the segment's logical end, and sealing must still cut them off, or the sealed
    // segment ends in damage that strict recovery refuses.
    const cfg: Cfg = { fsync: 'always', preallocate: 40, maxSegmentSize: 400 };
    let diskFull = 0; // 1: the next write lands 1 byte, 2: the one after fails with ENOSPC
    const { mem, fault, wal } = await setup(cfg);
    fault.injector = (op) => {
      if (diskFull === 0 || op.kind !== 'writeSync') return undefined;
      if (diskFull === 1) {
        diskFull = 2;
        return { shortWrite: 1 };
      }
      diskFull = 0;
      return { error: 'ENOSPC' };
    };
    const tr = new Tracker(true, (i) => Record.put(`p${i}`, Buffer.alloc(i === 0 ? 300 : 100, 0x70)));
    await tr.append(wal, 0); // frame of 322 bytes: end 354, zeroing of [354, 394) scheduled
    diskFull = 1;
    for (let i = 0; i < 5; i++) await tick(); // the zero write lands 1 byte, then ENOSPC
    expect(diskFull, 'the zero write ran into the full disk').toBe(0);
    expect(wal.stats().failure).toBeUndefined(); // preallocation failing is not the writer's failure
    await tr.append(wal, 1); // does not fit: rotation seals segment 0
    await wal.close();
    await expectReopenRecovers(mem, cfg, tr);
  });
});

// ---------------------------------------------------------------------------------------------

describe('reopening after a failure or a process crash', () => {
  // Frames of exactly 32 bytes (payload 5 + 1 + 10): four fill a 160-byte segment to the byte.
  const small = (i: number): Record => Record.put('k', `v${String(i).padStart(9, '0')}`);
  const cfg: Cfg = { fsync: 'os', maxSegmentSize: 32 + 4 * 32 };

  it('after a failed sync(), a recovered segment that is exactly full is made durable before records go to a new one', async () => {
    const { mem, fault, wal } = await setup(cfg);
    const t = new Tracker(false, small);
    for (let i = 0; i < 4; i++) await t.append(wal, i);
    expect(wal.stats().writtenPosition).toEqual({ segmentId: 0, offset: 160 });
    fault.injector = failFirst((op) => op.kind === 'datasync', 'EIO').injector;
    await expect(wal.sync()).rejects.toMatchObject({ code: 'IO', errno: 'EIO' });
    await expect(wal.close()).rejects.toMatchObject({ errno: 'EIO' });
    // Reopen (the records are in the page cache), append, sync, lose power.
    await expectReopenRecovers(mem, cfg, t);
  });

  it('after a process crash (SIGKILL), a recovered segment that is exactly full is made durable before records go to a new one', async () => {
    const { mem, proc, wal } = await setup(cfg);
    const t = new Tracker(false, small);
    for (let i = 0; i < 4; i++) await t.append(wal, i);
    proc.kill(); // the page cache keeps the four records; none is on stable storage yet
    await expectReopenRecovers(mem, cfg, t);
  });

  it('after a process crash between creating a segment and fsyncing the directory, reopen makes the segment durable before acking into it', async () => {
    const c: Cfg = { fsync: 'always', preallocate: false, maxSegmentSize: 160 };
    const mem = await prepareMem(new MemFileSystem());
    const proc = new ProcessFs(mem);
    let armed = false;
    const fault = new FaultFileSystem(proc, (op) => {
      if (armed && op.kind === 'syncDir' && op.path === DIR) {
        proc.kill(); // dies just before the directory fsync that would make 1.wal durable
        return { error: 'EIO' };
      }
      return undefined;
    });
    const { wal } = await Wal.open(walOptions(fault, opts(c)));
    const t = new Tracker(true, small);
    for (let i = 0; i < 4; i++) await t.append(wal, i);
    armed = true;
    await settle(t.append(wal, 4)); // rotation: 1.wal created, header synced, then the crash
    expect(proc.dead).toBe(true);
    expect(mem.listFiles()).toContain(segName(1));
    await expectReopenRecovers(mem, c, t);
  });
});

// ---------------------------------------------------------------------------------------------

describe('group commit and write coalescing (FaultFileSystem counters)', () => {
  /** Records every operation, and lets the test add its own events to the same timeline. */
  function timeline(): { events: Array<FsOp | string>; injector: Injector } {
    const events: Array<FsOp | string> = [];
    return { events, injector: (op) => void events.push(op) };
  }
  const opsOf = (events: Array<FsOp | string>, kind: FsOp['kind']): FsOp[] =>
    events.filter((e): e is FsOp => typeof e !== 'string' && e.kind === kind && isSegment(e));

  for (const preallocate of [false, undefined]) {
    it(`'always'${preallocate === false ? ', preallocate: false' : ''}: 64 concurrent appends cost far fewer than 64 fdatasyncs, and none resolves before one covering it`, async () => {
      const { fault, wal } = await setup({ fsync: 'always', preallocate });
      for (let i = 0; i < 5; i++) await tick();
      const tl = timeline();
      fault.injector = tl.injector;
      const before = wal.stats().fsyncs;
      const positions = await Promise.all(
        Array.from({ length: 64 }, (_, i) =>
          wal.append(rec(i)).then((pos) => {
            tl.events.push(`resolved ${i}`);
            return pos;
          }),
        ),
      );
      const datasyncs = opsOf(tl.events, 'datasync');
      expect(datasyncs.length).toBeGreaterThanOrEqual(1);
      expect(datasyncs.length).toBeLessThanOrEqual(3);
      expect(wal.stats().fsyncs - before).toBeLessThanOrEqual(3);
      expect(opsOf(tl.events, 'writeSync').length).toBeLessThanOrEqual(3);
      // Each append resolves only after an fdatasync that started after the write holding it.
      for (let i = 0; i < 64; i++) {
        const at = tl.events.indexOf(`resolved ${i}`);
        const end = positions[i]!.offset + 16 + rec(i).payloadSize;
        let written = -1;
        let bytes = 0;
        for (let j = 0; j < at; j++) {
          const e = tl.events[j]!;
          if (typeof e !== 'string' && e.kind === 'writeSync' && isSegment(e) && e.length !== undefined && written < 0) {
            bytes += e.length;
            if (positions[0]!.offset + bytes >= end && preallocate === false) written = j;
          }
        }
        if (preallocate === false) {
          expect(written, `the write holding append ${i}`).toBeGreaterThanOrEqual(0);
          const covered = tl.events.slice(written + 1, at).some((e) => typeof e !== 'string' && e.kind === 'datasync' && isSegment(e));
          expect(covered, `append ${i} resolved without an fdatasync after its write`).toBe(true);
        } else {
          expect(tl.events.slice(0, at).some((e) => typeof e !== 'string' && e.kind === 'datasync' && isSegment(e))).toBe(true);
        }
      }
      await wal.close();
    });
  }

  it("'always', preallocate: false: one awaited append at a time costs one write and one fdatasync each", async () => {
    const { fault, wal } = await setup({ fsync: 'always', preallocate: false });
    const tl = timeline();
    fault.injector = tl.injector;
    for (let i = 0; i < 20; i++) await wal.append(rec(i));
    expect(opsOf(tl.events, 'writeSync')).toHaveLength(20);
    expect(opsOf(tl.events, 'datasync')).toHaveLength(20);
    await wal.close();
  });

  it("'os', bytesPerSync: a background fdatasync per bytesPerSync bytes written, which no append waits for", async () => {
    const { fault, wal } = await setup({ fsync: 'os', bytesPerSync: 1000 });
    const tl = timeline();
    fault.injector = tl.injector;
    let bytes = 0;
    for (let i = 0; i < 100; i++) {
      const before = wal.currentPosition().offset;
      await wal.append(rec(i)); // resolves at once: no append waits for the write-back sync
      bytes += wal.currentPosition().offset - before;
    }
    await sleep(20);
    const syncs = opsOf(tl.events, 'datasync').length;
    // One sync starts once 1000 unsynced bytes have built up and none is in flight.
    expect(syncs).toBeGreaterThanOrEqual(Math.floor(bytes / 2000));
    expect(syncs).toBeLessThanOrEqual(Math.ceil(bytes / 1000));
    expect(wal.stats().fsyncs).toBe(syncs);
    expect(wal.stats().durablePosition.offset).toBeGreaterThan(wal.currentPosition().offset - 1000);
    await wal.close();
  });

  it("'os': one awaited append at a time costs exactly one write and no fdatasync", async () => {
    const { fault, wal } = await setup({ fsync: 'os', bytesPerSync: 0 });
    const tl = timeline();
    fault.injector = tl.injector;
    const before = wal.stats();
    for (let i = 0; i < 50; i++) {
      const writes = wal.stats().writes;
      const appended = wal.append(rec(i));
      // From the second on, a lone writer's record is written before append returns (no flush turn).
      if (i > 0) expect(wal.stats().writes).toBe(writes + 1);
      await appended;
    }
    await sleep(20);
    expect(opsOf(tl.events, 'writeSync')).toHaveLength(50);
    expect(tl.events.filter((e) => typeof e !== 'string' && e.mutating && e.kind !== 'writeSync')).toEqual([]);
    expect(wal.stats().writes - before.writes).toBe(50);
    expect(wal.stats().fsyncs - before.fsyncs).toBe(0);
    // 'os' syncs only when asked: one sync() costs one fdatasync.
    await wal.sync();
    expect(opsOf(tl.events, 'datasync')).toHaveLength(1);
    await wal.close();
  });

  it("'os': 64 concurrent appends coalesce into one write", async () => {
    const { fault, wal } = await setup({ fsync: 'os' });
    const tl = timeline();
    fault.injector = tl.injector;
    await Promise.all(Array.from({ length: 64 }, (_, i) => wal.append(rec(i))));
    expect(opsOf(tl.events, 'writeSync')).toHaveLength(1);
    expect(wal.stats().writes).toBe(1);
    await wal.close();
  });

  it("'os': after a lone writer, appends made together still coalesce (the first may be written alone)", async () => {
    const { wal } = await setup({ fsync: 'os', bytesPerSync: 0 });
    for (let i = 0; i < 5; i++) await wal.append(rec(i));
    const lone = wal.stats().writes;
    expect(lone).toBe(5);
    const first = await Promise.all(Array.from({ length: 64 }, (_, i) => wal.append(rec(100 + i))));
    expect(wal.stats().writes - lone).toBe(2);
    // 64 writers each awaiting its own appends: one write per round, none alone.
    const before = wal.stats().writes;
    await Promise.all(
      Array.from({ length: 64 }, async (_, w) => {
        for (let round = 0; round < 10; round++) await wal.append(rec(1000 + 64 * round + w));
      }),
    );
    expect(wal.stats().writes - before).toBe(10);
    // Order is append order throughout: positions increase.
    const positions = first.map((p) => p.offset);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    await wal.close();
  });
});

// ---------------------------------------------------------------------------------------------

describe('{ batchMs } timer', () => {
  for (const preallocate of [false, undefined]) {
    it(`{ batchMs: 5 }${preallocate === false ? ', preallocate: false' : ''}: an append is made durable within the window with no further append`, async () => {
      const cfg: Cfg = { fsync: { batchMs: 5 }, preallocate };
      const { mem, wal, t } = await setup(cfg);
      await sleep(20);
      // Three awaited appends, each followed by ten windows with no further append: the first
      // goes through the flush queue, the next two are written alone inside append (a lone
      // writer). Each path must arm the timer itself.
      const writes = wal.stats().writes;
      for (let i = 1; i <= 3; i++) {
        await t.append(wal, i);
        await sleep(50);
      }
      expect(wal.stats().writes - writes).toBe(3);
      const crashed = mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' });
      const { wal: w } = await Wal.open(walOptions(new ProcessFs(crashed), opts(cfg)));
      const got = await readAll(w);
      checkPrefixOk(got, { written: t.written, ackedSurvive: true });
      expect(got).toHaveLength(3);
      await w.close();
      await wal.close();
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('directory fsyncs: segment creation, deletion and recovery truncation', () => {
  /** An op timeline with markers the test adds. */
  function recorder(): { events: Array<FsOp | string>; injector: Injector; mark(m: string): void } {
    const events: Array<FsOp | string> = [];
    return { events, injector: (op) => void events.push(op), mark: (m) => void events.push(m) };
  }
  const isOp = (e: FsOp | string): e is FsOp => typeof e !== 'string';
  const syncsDirBetween = (events: Array<FsOp | string>, from: number, to: number): boolean =>
    events.slice(from + 1, to).some((e) => isOp(e) && e.kind === 'syncDir' && e.path === DIR);
  const nextIndex = (events: Array<FsOp | string>, from: number, pred: (e: FsOp | string) => boolean): number => {
    for (let i = from + 1; i < events.length; i++) if (pred(events[i]!)) return i;
    return events.length;
  };

  for (const cfg of [
    { fsync: 'always', maxSegmentSize: 300 },
    { fsync: 'os', maxSegmentSize: 300 },
    { fsync: { batchMs: 1 }, preallocate: false, maxSegmentSize: 300 },
  ] as Cfg[]) {
    it(`${JSON.stringify(cfg.fsync)}${cfg.preallocate === false ? ', preallocate: false' : ''}: every segment creation and deletion is followed by a directory fsync before anything relies on it`, async () => {
      const mem = await prepareMem(new MemFileSystem());
      const r = recorder();
      const fs = new FaultFileSystem(new ProcessFs(mem), r.injector);
      r.mark('open');
      const { wal } = await Wal.open(walOptions(fs, opts(cfg)));
      r.mark('opened');
      const positions = [];
      for (let i = 0; i < 30; i++) {
        const pos = await wal.append(rec(i));
        r.mark(`acked ${pos.segmentId}`);
        positions.push(pos);
        if (i % 7 === 3) await tick();
      }
      await wal.sync();
      r.mark('delete');
      const n = await wal.deleteSegmentsBefore(positions[20]!);
      r.mark('deleted');
      expect(n).toBeGreaterThan(1);
      await wal.close();
      r.mark('closed');

      const ev = r.events;
      const creates = ev.map((e, i) => [e, i] as const).filter(([e]) => isOp(e) && e.kind === 'open' && e.mutating && isSegment(e));
      expect(creates.length).toBeGreaterThan(3);
      for (const [e, i] of creates) {
        const id = Number(/(\d{16})\.wal$/.exec((e as FsOp).path)![1]);
        // Before the next segment is created, before open() resolves, and before any record in it is acked.
        const limit = Math.min(
          nextIndex(ev, i, (x) => isOp(x) && x.kind === 'open' && x.mutating && isSegment(x)),
          nextIndex(ev, i, (x) => x === 'opened' || x === `acked ${id}`),
        );
        expect(syncsDirBetween(ev, i, limit), `creation of segment ${id} (op ${(e as FsOp).index}) is followed by syncDir(${DIR})`).toBe(
          true,
        );
      }
      const unlinks = ev.map((e, i) => [e, i] as const).filter(([e]) => isOp(e) && e.kind === 'unlink');
      expect(unlinks).toHaveLength(n);
      for (const [e, i] of unlinks) {
        const limit = Math.min(
          nextIndex(ev, i, (x) => isOp(x) && x.kind === 'unlink'),
          ev.indexOf('deleted'),
        );
        expect(syncsDirBetween(ev, i, limit), `unlink of ${(e as FsOp).path} is followed by syncDir(${DIR})`).toBe(true);
      }
    });
  }

  it('every truncation and header rewrite by recovery is made durable and followed by a directory fsync before open resolves', async () => {
    const cases: Array<{ name: string; damage(mem: MemFileSystem): void }> = [
      {
        name: 'torn record at the tail',
        damage: (mem) => {
          const f = segName(0);
          const bytes = mem.readFileBytes(f);
          mem.writeFileBytes(f, bytes.subarray(0, bytes.length - 5));
        },
      },
      {
        name: 'zero tail (preallocation)',
        damage: (mem) => {
          const f = segName(0);
          mem.writeFileBytes(f, Buffer.concat([mem.readFileBytes(f), Buffer.alloc(4096)]));
        },
      },
      {
        name: 'a newest segment with a torn header',
        damage: (mem) => {
          mem.writeFileBytes(segName(1), Buffer.from('SDMTWAL'));
        },
      },
    ];
    for (const c of cases) {
      const mem = await prepareMem(new MemFileSystem());
      const { wal } = await Wal.open(walOptions(new ProcessFs(mem), { fsync: 'os' }));
      for (let i = 0; i < 5; i++) await wal.append(rec(i));
      await wal.close();
      c.damage(mem);
      const r = recorder();
      r.mark('open');
      const { wal: w, recovery } = await Wal.open(walOptions(new FaultFileSystem(new ProcessFs(mem), r.injector), { fsync: 'os' }));
      r.mark('opened');
      expect(recovery.truncations.length, c.name).toBe(1);
      const ev = r.events;
      const opened = ev.indexOf('opened');
      const truncs = ev
        .map((e, i) => [e, i] as const)
        .filter(([e]) => isOp(e) && (e.kind === 'truncate' || e.kind === 'writeSync' || e.kind === 'write'));
      expect(truncs.length, c.name).toBeGreaterThan(0);
      for (const [e, i] of truncs) {
        const p = (e as FsOp).path;
        expect(
          ev.slice(i + 1, opened).some((x) => isOp(x) && x.kind === 'datasync' && x.path === p),
          `${c.name}: ${(e as FsOp).kind} of ${p} is fdatasynced`,
        ).toBe(true);
        expect(syncsDirBetween(ev, i, opened), `${c.name}: ${(e as FsOp).kind} of ${p} is followed by syncDir(${DIR})`).toBe(true);
      }
      expect((await readAll(w)).length, c.name).toBe(c.name.startsWith('torn record') ? 4 : 5);
      await w.close();
    }
  });

  it('trimming preallocated zeros (at rotation and at close) is made durable before the next segment is created and before close resolves', async () => {
    // The invariant in wal.ts: "A segment is fdatasynced and cut to its logical end *before* its
    // successor is created, so every segment but the last ends cleanly on disk".
    const mem = await prepareMem(new MemFileSystem());
    const r = recorder();
    const { wal } = await Wal.open(
      walOptions(new FaultFileSystem(new ProcessFs(mem), r.injector), { fsync: 'always', maxSegmentSize: 400 }),
    );
    for (let i = 0; i < 20; i++) {
      await wal.append(rec(i));
      await tick(); // preallocation runs between appends
    }
    await wal.close();
    r.mark('closed');
    const ev = r.events;
    const truncs = ev.map((e, i) => [e, i] as const).filter(([e]) => isOp(e) && e.kind === 'truncate');
    expect(truncs.length).toBeGreaterThan(1);
    const problems: string[] = [];
    for (const [e, i] of truncs) {
      const p = (e as FsOp).path;
      const limit = Math.min(
        nextIndex(ev, i, (x) => isOp(x) && x.kind === 'open' && x.mutating),
        ev.indexOf('closed'),
      );
      if (!ev.slice(i + 1, limit).some((x) => isOp(x) && x.kind === 'datasync' && x.path === p)) {
        problems.push(
          `truncate(${(e as FsOp).length}) of ${p} (op ${(e as FsOp).index}) is not fdatasynced before ${limit < ev.indexOf('closed') ? 'the next segment is created' : 'close resolves'}`,
        );
      }
    }
    expect(problems).toEqual([]);
    // Consequence: a power loss now must leave a log that opens in strict mode.
    const crashed = mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' });
    await expect(
      Wal.open(walOptions(new ProcessFs(crashed), { fsync: 'always', maxSegmentSize: 400 })).then((o) => o.wal.close()),
    ).resolves.toBeUndefined();
  });
});
