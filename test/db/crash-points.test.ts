/**
 * Systematic crash-point enumeration for the DB (RELIABILITY.md §6.16-19, §6.22; SQLite's TH3
 * crash tests, Pebble's TestDBWALRotationCrash).
 *
 * A fixed workload (open; 150 writes, puts, deletes and batches over 50 keys, with a synced
 * write every 20; db.flush(); 50 more writes; db.compact(); close; fewer writes under fsync
 * 'always', where each write costs two operations) runs with tiny sizes, so it
 * rotates WAL segments, flushes memtables, compacts L0 into L1 and beyond in the background,
 * installs manifests and deletes WAL segments, tables and old manifests. It runs on a
 * FaultFileSystem over a MemFileSystem. For k = 0, 1, 2, ... the power fails just before the
 * k-th mutating file operation (crashAtMutatingOp): two crash images are taken, one with unsynced
 * data and directory operations dropped, one keeping a seeded random prefix of them (of both, or
 * of the data only, alternately). The loop ends when the workload completes without reaching k.
 *
 * For every image:
 * - DB.open succeeds;
 * - the state is Prefix-OK: the state after some prefix of the issued writes that includes every
 *   write acknowledged as durable before the crash (synced, or before a flush that resolved);
 * - after a clean close, CURRENT names the only manifest, every table it names exists, and no
 *   other table and no CURRENT.tmp remains;
 * - (image with everything unsynced dropped) reopening gives the same state (recovery is
 *   idempotent), and the recovered DB works: a synced write survives one more power loss.
 *
 * Compound failure (§6.23): for three crash images, the recovery itself (with a smaller memtable,
 * so that replaying the WAL flushes tables, installs manifests and deletes WAL segments) is
 * crashed at each of its mutating operations; recovering again must succeed and give exactly the
 * state of an undisturbed recovery, with no orphans.
 */
import { describe, expect, it } from 'vitest';
import { MemFileSystem, type CrashOptions } from '../../src/fs/mem.js';
import { FaultFileSystem, crashAtMutatingOp, type FsOp } from '../../src/fs/fault.js';
import { DB } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import type { FsyncPolicy } from '../../src/wal/options.js';
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
  seeded,
  settle,
  withTimeout,
  type WriteOps,
} from './helpers/harness.js';

const T0 = 1_700_000_000_000;

interface Cfg {
  name: string;
  fsync: FsyncPolicy;
  options: DBOptions;
  /** Writes before the explicit flush, and between it and the full compaction. */
  phase1: number;
  phase2: number;
}

/** The workload's writes, fixed: the same list every run. */
function workloadWrites(count: number): { ops: WriteOps<string>; sync: boolean }[] {
  const key = (n: number): string => `k${String(n % 50).padStart(2, '0')}`;
  const out: { ops: WriteOps<string>; sync: boolean }[] = [];
  for (let i = 0; i < count; i++) {
    const sync = i % 20 === 19;
    const value = `v${i}:`.padEnd(8 + (i % 5) * 30, String.fromCharCode(0x61 + (i % 26)));
    if (i % 10 === 9) {
      out.push({
        ops: [
          { type: 'put', key: key(i * 7), value: `${value}/a` },
          { type: 'del', key: key(i * 7 + 1) },
          { type: 'put', key: key(i * 7 + 2), value: `${value}/c` },
        ],
        sync,
      });
    } else if (i % 6 === 5) {
      out.push({ ops: [{ type: 'del', key: key(i * 7) }], sync });
    } else {
      out.push({ ops: [{ type: 'put', key: key(i * 7), value }], sync });
    }
  }
  return out;
}

const WRITES = workloadWrites(200);
/** Rendered model state after each prefix of the workload's writes (no TTLs: time-independent). */
const STATES = prefixStates(
  new Map(),
  WRITES.map((w) => ({ ops: w.ops, now: T0 })),
  T0,
);

/**
 * Runs the workload on `fs`, tracking writes in `log`. Stops at the first failure (after a crash
 * every operation fails); never hangs (each step is bounded).
 */
async function workload(fs: FaultFileSystem, cfg: Cfg, log: WriteLog<string>): Promise<{ completed: boolean; error: unknown }> {
  let db: DB<string, string> | undefined;
  const run = async (): Promise<void> => {
    db = await DB.open<string, string>(DIR, { ...cfg.options, fs, valueEncoding: 'utf8' });
    const d = db;
    const write = (i: number): Promise<void> => {
      const w = WRITES[i]!;
      return log.track(w.ops, T0, w.sync, () => {
        const op = w.ops[0]!;
        if (w.ops.length > 1) return d.batch(w.ops, { sync: w.sync });
        return op.type === 'put' ? d.put(op.key, op.value, { sync: w.sync }) : d.delete(op.key, { sync: w.sync });
      });
    };
    for (let i = 0; i < cfg.phase1; i++) await write(i);
    await log.barrier(d.flush());
    for (let i = cfg.phase1; i < cfg.phase1 + cfg.phase2; i++) await write(i);
    await log.barrier(d.compact());
    await log.barrier(d.close());
  };
  try {
    // Nothing may hang, before or after the crash: every step either resolves or rejects.
    await withTimeout(run(), 30_000, 'the workload');
    return { completed: true, error: undefined };
  } catch (error) {
    await closeQuietly(db);
    return { completed: false, error };
  }
}

interface Image {
  label: string;
  /** Also check idempotence and that the recovered DB survives one more power loss. */
  full: boolean;
  crash: CrashOptions;
}

/** The crash images taken at crash point k: everything unsynced dropped, and a seeded random prefix. */
function images(k: number, seedBase: number): Image[] {
  const seed = seedBase + k;
  return [
    { label: 'drop/drop', full: true, crash: { unsyncedData: 'drop', unsyncedDirOps: 'drop' } },
    k % 2 === 0
      ? { label: `prefix/prefix seed ${seed}`, full: false, crash: { unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(seed) } }
      : { label: `prefix/drop seed ${seed}`, full: false, crash: { unsyncedData: 'prefix', unsyncedDirOps: 'drop', rng: seeded(seed) } },
  ];
}

/** Checks one crash image; returns the problems found. */
async function checkImage(image: MemFileSystem, full: boolean, cfg: Cfg, snap: { issued: number; mustKeep: number }): Promise<string[]> {
  const problems: string[] = [];
  const options: DBOptions = { ...cfg.options, valueEncoding: 'utf8' };
  let db: DB<string, string> | undefined;
  try {
    try {
      ({ db } = await withTimeout(openOn<string, string>(image, options), 10_000, 'recovery'));
    } catch (err) {
      return [`DB.open failed: ${String(err)}`];
    }
    const got = render(await scan(db));
    const matches = matchingPrefixes(STATES, got, snap.mustKeep, snap.issued);
    if (matches.length === 0) {
      const any = STATES.indexOf(got);
      problems.push(
        `not Prefix-OK: ${snap.issued} writes issued, the first ${snap.mustKeep} durable; the DB holds ` +
          (any >= 0 ? `the state after ${any} writes` : `a state after no prefix: ${got.slice(0, 300)}`),
      );
    }
    await db.close();
    db = undefined;
    await settle();
    for (const p of await diskProblems(image)) problems.push(`after recovery and close: ${p}`);
    if (!full) return problems;

    // Recovery is idempotent.
    ({ db } = await openOn<string, string>(image, options));
    const again = render(await scan(db));
    if (again !== got) problems.push('a second recovery gives a different state');

    // The recovered DB works: a synced write survives another power loss.
    await db.put('marker', 'synced', { sync: true });
    const second = image.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' });
    await closeQuietly(db);
    db = undefined;
    ({ db } = await openOn<string, string>(second, options));
    const marker = await db.get('marker');
    if (marker !== 'synced') problems.push(`a synced write after recovery was lost in the next power loss (got ${String(marker)})`);
    const rest = render((await scan(db)).filter(([k]) => k !== 'marker'));
    if (rest !== got) problems.push('the next power loss after recovery changed the recovered state');
    await db.close();
    db = undefined;
  } catch (err) {
    problems.push(`check failed: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await closeQuietly(db);
  }
  return problems;
}

interface Summary {
  crashPoints: number;
  images: number;
  failures: string[];
  kinds: Map<string, number>;
}

async function enumerate(cfg: Cfg, seedBase: number): Promise<Summary> {
  const summary: Summary = { crashPoints: 0, images: 0, failures: [], kinds: new Map() };
  for (let k = 0; ; k++) {
    const mem = new MemFileSystem();
    const proc = new ProcessFs(mem);
    const log = new WriteLog<string>(cfg.fsync === 'always');
    let taken: { image: MemFileSystem; label: string; full: boolean }[] = [];
    let snap = { issued: 0, mustKeep: 0 };
    let crashOp: FsOp | undefined;
    const fs = new FaultFileSystem(
      proc,
      crashAtMutatingOp(k, (op) => {
        crashOp = op;
        snap = log.snapshot();
        taken = images(k, seedBase).map((im) => ({ image: mem.crashClone(im.crash), label: im.label, full: im.full }));
      }),
    );
    const outcome = await workload(fs, cfg, log);
    if (!crashOp) {
      // The workload finished without reaching k: every crash point is covered.
      expect(outcome.completed, `workload failed without a crash: ${String(outcome.error)}`).toBe(true);
      const final = render(await reopenScan(mem, cfg));
      expect(final).toBe(STATES[cfg.phase1 + cfg.phase2]);
      break;
    }
    proc.kill();
    summary.crashPoints++;
    summary.kinds.set(crashOp.kind, (summary.kinds.get(crashOp.kind) ?? 0) + 1);
    for (const { image, label, full } of taken) {
      summary.images++;
      const problems = await checkImage(image, full, cfg, snap);
      for (const p of problems) {
        summary.failures.push(
          `k=${k} (before ${crashOp.kind} ${crashOp.path}${crashOp.to ? ` -> ${crashOp.to}` : ''}), image ${label}: ${p}`,
        );
      }
    }
  }
  return summary;
}

async function reopenScan(mem: MemFileSystem, cfg: Cfg): Promise<[string, string][]> {
  const { db } = await openOn<string, string>(mem, { ...cfg.options, valueEncoding: 'utf8' });
  try {
    return await scan(db);
  } finally {
    await db.close().catch(noop);
  }
}

/** Failures grouped by kind (digits blurred), each with its count and first occurrence. */
function groupFailures(failures: readonly string[]): string[] {
  const groups = new Map<string, { count: number; first: string }>();
  for (const f of failures) {
    const kind = f
      .replace(/^k=\d+ \(before (\w+) [^)]*\), image ([\w/]+)[^:]*: /, '$1, $2: ')
      .replace(/\d+/g, '#')
      .slice(0, 160);
    const g = groups.get(kind);
    if (g) g.count++;
    else groups.set(kind, { count: 1, first: f });
  }
  return [...groups.values()].map((g) => `${g.count} x ${g.first}`);
}

// memtableSize: about 20 of the workload's entries per memtable (some 120 bytes each in the arena
// memtable, overwritten versions included), so that it flushes and compacts many times.
const CONFIGS: Cfg[] = [
  {
    name: "fsync 'os', background worker",
    fsync: 'os',
    options: { ...TINY, memtableSize: 2560, fsync: 'os', background: 'worker' },
    phase1: 150,
    phase2: 50,
  },
  {
    name: "fsync 'always', no compression, background inline",
    fsync: 'always',
    options: { ...TINY, memtableSize: 2560, fsync: 'always', compression: 'none', background: 'inline' },
    phase1: 100,
    phase2: 40,
  },
];

describe('DB crash at every mutating file operation', () => {
  for (const [i, cfg] of CONFIGS.entries()) {
    it(`recovers a Prefix-OK, clean, working DB from every crash point (${cfg.name})`, { timeout: 180_000 }, async () => {
      const s = await enumerate(cfg, 1000 * (i + 1));
      if (process.env.DB_TEST_VERBOSE)
        console.log(cfg.name, s.crashPoints, 'crash points,', s.images, 'images', Object.fromEntries(s.kinds));
      // The workload really flushes, compacts and deletes files before it completes.
      expect(s.kinds.get('rename') ?? 0).toBeGreaterThan(10);
      expect(s.kinds.get('unlink') ?? 0).toBeGreaterThan(10);
      expect(s.crashPoints).toBeGreaterThan(100);
      expect(groupFailures(s.failures), `${s.failures.length} of ${s.images} crash images failed`).toEqual([]);
    });
  }
});

/** Runs the workload until a power loss just before its k-th mutating operation; the image, or undefined if it never gets there. */
async function imageAt(cfg: Cfg, k: number): Promise<{ image: MemFileSystem; snap: { issued: number; mustKeep: number } } | undefined> {
  const mem = new MemFileSystem();
  const proc = new ProcessFs(mem);
  const log = new WriteLog<string>(cfg.fsync === 'always');
  let taken: { image: MemFileSystem; snap: { issued: number; mustKeep: number } } | undefined;
  const fs = new FaultFileSystem(
    proc,
    crashAtMutatingOp(k, () => {
      taken = { image: mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }), snap: log.snapshot() };
    }),
  );
  await workload(fs, cfg, log);
  proc.kill();
  return taken;
}

describe('a crash during recovery', () => {
  it('recovery crashed at any of its operations, then recovered again, gives the state of an undisturbed recovery', {
    timeout: 120_000,
  }, async () => {
    const cfg = CONFIGS[0]!;
    // Recovering with a smaller memtable than the writer's makes the replay flush, so recovery
    // itself writes tables, installs manifests and deletes WAL segments.
    const recoveryOptions: DBOptions = { ...cfg.options, memtableSize: 1024, valueEncoding: 'utf8' };
    const checkOptions: DBOptions = { ...cfg.options, valueEncoding: 'utf8' };
    let recoveryCrashPoints = 0;
    const failures: string[] = [];
    // Three crash images, spread over the workload, whose recovery has WAL records to flush.
    const bases: { k: number; image: MemFileSystem; want: string }[] = [];
    for (let k = 40; bases.length < 3; k += 20) {
      if (bases.length > 0 && k - bases[bases.length - 1]!.k < 120) continue;
      const base = await imageAt(cfg, k);
      expect(base, `the workload reaches mutating operation ${k} with three suitable images before it`).toBeDefined();
      const { image, snap } = base!;
      // The undisturbed recovery.
      const ref = await openOn<string, string>(image.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }), recoveryOptions);
      const want = render(await scan(ref.db));
      const flushes = ref.db.stats().flushes;
      await ref.db.close();
      expect(matchingPrefixes(STATES, want, snap.mustKeep, snap.issued).length, `k=${k}: Prefix-OK`).toBeGreaterThan(0);
      if (flushes >= 2) bases.push({ k, image, want });
    }
    for (const { k, image, want } of bases) {
      for (let j = 0; ; j++) {
        const disk = image.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
        const proc = new ProcessFs(disk);
        let taken: { label: string; image: MemFileSystem }[] = [];
        const fs = new FaultFileSystem(
          proc,
          crashAtMutatingOp(j, () => {
            taken = [
              j % 2 === 0
                ? { label: 'drop/drop', image: disk.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }) }
                : {
                    label: `prefix/prefix seed ${k * 1000 + j}`,
                    image: disk.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(k * 1000 + j) }),
                  },
            ];
          }),
        );
        let db: DB<string, string> | undefined;
        try {
          db = await withTimeout(DB.open<string, string>(DIR, { ...recoveryOptions, fs }), 10_000, 'recovery');
          await scan(db);
          await withTimeout(db.close(), 10_000, 'close after recovery');
        } catch {
          // The crash (or the failures after it).
        } finally {
          await closeQuietly(db);
          proc.kill();
        }
        if (taken.length === 0) break;
        recoveryCrashPoints++;
        for (const t of taken) {
          try {
            const again = await withTimeout(openOn<string, string>(t.image, checkOptions), 10_000, 'second recovery');
            const got = render(await scan(again.db));
            await again.db.close();
            await settle();
            if (got !== want)
              failures.push(
                `k=${k}, recovery crashed at its operation ${j}, image ${t.label}: the second recovery differs from an undisturbed one`,
              );
            for (const p of await diskProblems(t.image)) failures.push(`k=${k}, j=${j}, ${t.label}: ${p}`);
          } catch (err) {
            failures.push(`k=${k}, recovery crashed at its operation ${j}, image ${t.label}: the second recovery failed: ${String(err)}`);
          }
        }
      }
    }
    if (process.env.DB_TEST_VERBOSE) console.log('recovery crash points', recoveryCrashPoints);
    expect(recoveryCrashPoints).toBeGreaterThan(100);
    expect(groupFailures(failures)).toEqual([]);
  });
});
