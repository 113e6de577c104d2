/**
 * The disk's own figures, measured with raw node:fs in the benchmark's run, temp directory and
 * record sizes, as the baselines the WAL is compared with:
 * - a naive `fs.writeSync` of one pre-encoded, record-sized buffer per append;
 * - 1 MiB sequential writes with one fdatasync at the end, and with one after each write;
 * - serial write(1 KiB) + fdatasync on a growing file, and on a pre-zeroed, synced file
 *   (overwriting allocated blocks: no size change for fdatasync to journal), the latter also
 *   with the fdatasync sent through the libuv thread pool as the WAL sends it.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  KiB,
  MiB,
  bestOf,
  fmtInt,
  fmtMB,
  fmtSize,
  fmtUs,
  loopFor,
  mbPerSec,
  mdTable,
  now,
  opsPerSec,
  progress,
  usPerOp,
  withTempDir,
  type Timed,
} from './lib.js';

/** Durations (ms) and sizes of the baseline runs. */
export interface DiskConfig {
  runs: number;
  sizes: readonly number[];
  warmMs: number;
  naiveMs: number;
  seqBytes: number;
  seqSyncEachBytes: number;
  serialSyncMs: number;
  /** No naive run writes more than this. */
  maxRunBytes: number;
  /** Room for the overwrite baseline; far more than its run uses. */
  prezeroBytes: number;
}

export interface Baselines {
  naive: { size: number; appendsPerSec: number; mbPerSec: number }[];
  /** 1 MiB writes, one fdatasync at the end: MB/s. */
  seqMBps: number;
  /** 1 MiB writes, each followed by fdatasync: MB/s. */
  seqSyncEachMBps: number;
  /** Serial write(1 KiB) + fdatasyncSync, file growing. */
  syncGrow: Timed;
  /** Serial write(1 KiB) + fdatasyncSync, overwriting a pre-zeroed, synced file. */
  syncOverwrite: Timed;
  /** As `syncOverwrite` but fdatasync through the libuv thread pool, as the WAL calls it. */
  syncOverwriteAsync: Timed;
}

/** Opens `name` in `dir` for writing, runs `fn`, closes and deletes it (dropping its dirty pages). */
function withFile<T>(dir: string, name: string, fn: (fd: number) => T): T {
  const file = path.join(dir, name);
  const fd = fs.openSync(file, 'w');
  try {
    return fn(fd);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

/** One `fs.writeSync` of a pre-encoded, record-sized buffer per append. */
function naiveWriteSync(cfg: DiskConfig, dir: string, size: number): Timed {
  const buf = randomBytes(size);
  const maxOps = Math.floor(cfg.maxRunBytes / size);
  return withFile(dir, `naive-${size}`, (fd) => {
    loopFor(cfg.warmMs, maxOps, () => fs.writeSync(fd, buf));
    const r = loopFor(cfg.naiveMs, maxOps, () => fs.writeSync(fd, buf));
    return { ops: r.ops, bytes: r.ops * size, ms: r.ms };
  });
}

/** 1 MiB sequential writes of `total` bytes, with one final fdatasync or one after each write. */
function sequentialWrites(dir: string, total: number, syncEach: boolean): Timed {
  const chunk = randomBytes(MiB);
  return withFile(dir, 'seq', (fd) => {
    const t0 = now();
    for (let done = 0; done < total; done += MiB) {
      if (fs.writeSync(fd, chunk) !== MiB) throw new Error('short write');
      if (syncEach) fs.fdatasyncSync(fd);
    }
    if (!syncEach) fs.fdatasyncSync(fd);
    return { ops: total / MiB, bytes: total, ms: now() - t0 };
  });
}

/** Writes and syncs `bytes` of zeros at the start of `fd`. */
function prezero(fd: number, bytes: number): void {
  const zeros = Buffer.alloc(MiB);
  for (let at = 0; at < bytes; at += MiB) fs.writeSync(fd, zeros, 0, MiB, at);
  fs.fdatasyncSync(fd);
}

/**
 * Serial write(1 KiB) + fdatasync at consecutive offsets: the disk's durable-append rate for a
 * growing file, or (`overwrite`) for a file whose blocks were already written and synced.
 */
function serialWriteFdatasync(cfg: DiskConfig, dir: string, overwrite: boolean): Timed {
  const rec = randomBytes(KiB);
  return withFile(dir, overwrite ? 'sync-overwrite' : 'sync-grow', (fd) => {
    if (overwrite) prezero(fd, cfg.prezeroBytes);
    let pos = 0;
    const op = (): void => {
      fs.writeSync(fd, rec, 0, KiB, pos);
      fs.fdatasyncSync(fd);
      pos += KiB;
    };
    const room = overwrite ? cfg.prezeroBytes / KiB : Number.MAX_SAFE_INTEGER;
    const warm = loopFor(Math.min(50, cfg.warmMs), room, op);
    const r = loopFor(cfg.serialSyncMs, room - warm.ops, op);
    return { ops: r.ops, bytes: r.ops * KiB, ms: r.ms };
  });
}

const fdatasyncAsync = (fd: number): Promise<void> =>
  new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));

/** `serialWriteFdatasync(overwrite)` with the fdatasync on the thread pool: one round trip more. */
async function serialWriteFdatasyncAsync(cfg: DiskConfig, dir: string): Promise<Timed> {
  const rec = randomBytes(KiB);
  const file = path.join(dir, 'sync-overwrite-async');
  const fd = fs.openSync(file, 'w');
  try {
    prezero(fd, cfg.prezeroBytes);
    let pos = 0;
    const run = async (ms: number): Promise<Timed> => {
      const t0 = now();
      let ops = 0;
      while (now() - t0 < ms && pos + KiB <= cfg.prezeroBytes) {
        fs.writeSync(fd, rec, 0, KiB, pos);
        await fdatasyncAsync(fd);
        pos += KiB;
        ops++;
      }
      return { ops, bytes: ops * KiB, ms: now() - t0 };
    };
    await run(Math.min(50, cfg.warmMs));
    return await run(cfg.serialSyncMs);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

/** Measures every baseline, each the best of `cfg.runs` attempts, in a fresh temp directory. */
export async function measureDisk(cfg: DiskConfig): Promise<Baselines> {
  const best = <T extends Timed>(fn: () => Promise<T> | T): Promise<T> => bestOf(cfg.runs, fn, opsPerSec);
  return withTempDir('baseline', async (dir) => {
    const naive: Baselines['naive'] = [];
    for (const size of cfg.sizes) {
      progress(`baseline: naive writeSync, ${fmtSize(size)} records`);
      const t = await best(() => naiveWriteSync(cfg, dir, size));
      naive.push({ size, appendsPerSec: opsPerSec(t), mbPerSec: mbPerSec(t) });
    }
    progress(`baseline: ${fmtSize(cfg.seqBytes)} of 1 MiB writes + fdatasync`);
    const seq = await best(() => sequentialWrites(dir, cfg.seqBytes, false));
    const seqSyncEach = await best(() => sequentialWrites(dir, cfg.seqSyncEachBytes, true));
    progress('baseline: serial write(1 KiB) + fdatasync, growing / overwriting');
    const syncGrow = await best(() => serialWriteFdatasync(cfg, dir, false));
    const syncOverwrite = await best(() => serialWriteFdatasync(cfg, dir, true));
    const syncOverwriteAsync = await best(() => serialWriteFdatasyncAsync(cfg, dir));
    return { naive, seqMBps: mbPerSec(seq), seqSyncEachMBps: mbPerSec(seqSyncEach), syncGrow, syncOverwrite, syncOverwriteAsync };
  });
}

export function baselineReport(b: Baselines, cfg: DiskConfig): string {
  const naive = mdTable(
    ['naive fs.writeSync per record', 'appends/s', 'MB/s'],
    b.naive.map((n) => [fmtSize(n.size), fmtInt(n.appendsPerSec), fmtMB(n.mbPerSec)]),
  );
  const seq = mdTable(
    ['sequential 1 MiB writes', 'MB/s'],
    [
      [`${fmtSize(cfg.seqBytes)}, one fdatasync at the end`, fmtMB(b.seqMBps)],
      [`${fmtSize(cfg.seqSyncEachBytes)}, fdatasync after each write`, fmtMB(b.seqSyncEachMBps)],
    ],
  );
  const row = (name: string, t: Timed): string[] => [name, fmtInt(opsPerSec(t)), fmtUs(usPerOp(t))];
  const sync = mdTable(
    ['serial write(1 KiB) + fdatasync', 'ops/s', 'per op'],
    [
      row('growing file (fdatasyncSync)', b.syncGrow),
      row('overwriting a pre-zeroed, synced file (fdatasyncSync)', b.syncOverwrite),
      row('overwriting, fs.fdatasync via the libuv thread pool', b.syncOverwriteAsync),
    ],
  );
  return [naive, seq, sync].join('\n\n');
}
