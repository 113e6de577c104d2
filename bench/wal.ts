/**
 * The WAL benchmark: `npm run bench:wal [-- --quick] [--runs=N] [--dist[=dir] | --src] [--json[=file]]`.
 * `npm run bench:wal` builds the package first and measures the build (dist/), the JavaScript
 * that users run; `--src` measures the TypeScript sources through tsx instead.
 *
 * It measures the disk's own figures with raw node:fs first, in the same run, the same temp
 * file system and with the same record sizes, then the WAL against them:
 *
 * 1. Baselines (bench/disk.ts): a naive `fs.writeSync` per record; 1 MiB sequential writes
 *    with one fdatasync at the end, and with an fdatasync after each; serial write(1 KiB) +
 *    fdatasync on a growing file and on a pre-zeroed, synced file (overwriting allocated blocks).
 * 2. `append` under each fsync policy x record size (100 B, 1 KiB, 10 KiB on disk, frame header
 *    included; 16-byte keys, values filling the rest) x (awaited one at a time | 64 in flight,
 *    i.e. 64 async loops each awaiting its own appends).
 * 3. `appendBatch` of 1000 x 1 KiB records under 'os' and 'always'.
 * 4. Durable appends under 'always' with 1, 16 and 256 writers, and preallocation on vs off.
 * 5. Replay (`readFrom` from the start) and recovery (`Wal.open` over segments in the page cache).
 * 6. The targets: measured value, goal, pass or miss.
 *
 * Records are built before the clock starts: what is timed is the WAL, not `Record.put`.
 * Before each attempt the page cache is warmed (bench/lib.ts warmPageCache: in this VM, memory
 * left idle goes back to the host and its first touch is slow). Every run uses a fresh
 * directory under os.tmpdir(), warms up briefly, and is bounded in both
 * time and bytes. Each measurement is made `--runs` times back to back (default 2) and the
 * best attempt is reported, baselines and WAL alike. The report (markdown) goes to stdout,
 * progress to stderr.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FsyncPolicy, Record, Wal } from '../src/index.js';
import { baselineReport, measureDisk, type Baselines } from './disk.js';
import {
  GiB,
  KiB,
  MB,
  MiB,
  bestOf,
  cpuSample,
  cpuShare,
  dirBytes,
  fmtInt,
  fmtMB,
  fmtMs,
  fmtPct,
  fmtPct1,
  fmtSize,
  fmtX,
  loadAverage,
  machineInfo,
  mbPerSec,
  mdTable,
  now,
  opsPerSec,
  pageCacheProbe,
  parseArgs,
  progress,
  withTempDir,
  type Timed,
} from './lib.js';

const args = parseArgs(process.argv.slice(2));

type WalModule = typeof import('../src/index.js');

/**
 * The WAL under test: the tsc build (default `dist`, `npm run build`), or with `--src` the
 * TypeScript sources as tsx runs them. tsx compiles with esbuild's keepNames, which wraps every
 * function created on the hot path in a `__name(fn, "...")` call (an Object.defineProperty):
 * measurably slower than the JavaScript the package ships.
 */
async function loadWal(dist: string | undefined): Promise<{ lib: WalModule; source: string }> {
  if (dist === undefined) return { lib: await import('../src/index.js'), source: 'src/ through tsx (esbuild, keepNames)' };
  const entry = path.resolve(dist, 'index.js');
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: run npm run build first`);
  const built = fs.statSync(path.resolve(dist, 'wal', 'wal.js')).mtimeMs;
  const srcDir = new URL('../src/wal/', import.meta.url);
  const newest = Math.max(...fs.readdirSync(srcDir).map((n) => fs.statSync(new URL(n, srcDir)).mtimeMs));
  const stale = newest > built ? ' (OLDER than src/wal: rebuild)' : '';
  return { lib: (await import(pathToFileURL(entry).href)) as WalModule, source: `tsc build in ${dist}${stale}` };
}

const { lib, source: WAL_SOURCE } = await loadWal(args.dist);
const scaled = (ms: number): number => Math.round(args.quick ? ms * 0.3 : ms);

/** Record sizes on disk, frame header included. */
const SIZES = [100, KiB, 10 * KiB] as const;

/** Durations (ms) and sizes of every run; `--quick` shortens them. */
const CFG = {
  runs: args.runs,
  sizes: SIZES,
  warmMs: scaled(150),
  naiveMs: scaled(800),
  seqBytes: (args.quick ? 128 : 512) * MiB,
  seqSyncEachBytes: (args.quick ? 64 : 256) * MiB,
  serialSyncMs: scaled(1000),
  appendMs: scaled(1000),
  alwaysMs: scaled(1500),
  writersMs: scaled(2000),
  batchMs: scaled(1500),
  replayBytes: (args.quick ? 256 : 512) * MiB,
  /** No single run writes more than this, so the page cache's dirty limits stay out of the way. */
  maxRunBytes: 1 * GiB,
  /** Room for the overwrite baseline; far more than a second of serial fdatasyncs uses. */
  prezeroBytes: 64 * MiB,
};

const KEY_BYTES = 16;
/** Frame header bytes in front of every record payload (src/wal/format.ts). */
const FRAME_HEADER_BYTES = 16;
const IN_FLIGHT = 64;
const BATCH_RECORDS = 1000;
const CPUS = `${os.cpus().length} CPUs`;
/** The harness lets the event loop turn at least this often, as a server doing I/O would. */
const YIELD_EVERY_MS = 1;

interface Policy {
  name: string;
  fsync: FsyncPolicy;
}
const POLICIES: readonly Policy[] = [
  { name: "'os'", fsync: 'os' },
  { name: '{ batchMs: 5 }', fsync: { batchMs: 5 } },
  { name: "'always'", fsync: 'always' },
];

// --- records ---------------------------------------------------------------------------------

/** `count` distinct records (keys differ, values are random) taking `frameSize` bytes on disk. */
function makeRecords(frameSize: number, count: number): Record[] {
  const fixed = FRAME_HEADER_BYTES + lib.Record.put(new Uint8Array(KEY_BYTES), new Uint8Array(0)).payloadSize;
  const value = randomBytes(frameSize - fixed);
  const records = Array.from({ length: count }, (_, i) => lib.Record.put(`k${String(i).padStart(KEY_BYTES - 1, '0')}`, value));
  if (records[0]!.payloadSize + FRAME_HEADER_BYTES !== frameSize) throw new Error(`record size mismatch for ${frameSize}`);
  return records;
}

// --- driving the WAL ---------------------------------------------------------------------------

/**
 * Shared stop/yield control of a set of async loops. Appends under 'os' resolve through
 * microtasks only, so loops that never wait for I/O could starve the event loop: the batchMs
 * timer and the background preallocation would not run. The WAL yields after 64 flushes in a
 * turn on its own; the harness does not rely on it: every YIELD_EVERY_MS the control opens a gate
 * that every loop awaits, which lets the microtask queue drain and the event loop turn once, as
 * it would in a server that also does other I/O. That costs one turn per millisecond. Under
 * 'always' it also breaks the writers' lockstep, as real clients are not in step: writers resolved
 * after the gate opens append one turn later and miss the fdatasync that has just started (the
 * appends/fsync column shows how the WAL's group commit copes).
 */
class LoopControl {
  ops = 0;
  stopped = false;
  gate: Promise<void> | undefined;
  /** Longest time between two clock readings, i.e. between 16 consecutive completions (ms). */
  maxGapMs = 0;
  #calls = 0;
  readonly #deadline: number;
  readonly #maxOps: number;
  #nextYield: number;
  #lastTick: number;

  constructor(ms: number, maxOps: number) {
    const t = now();
    this.#deadline = t + ms;
    this.#maxOps = maxOps;
    this.#nextYield = t + YIELD_EVERY_MS;
    this.#lastTick = t;
  }

  /** Counts `n` completed operations; reads the clock every 16 calls. */
  done(n: number): void {
    this.ops += n;
    if (this.ops >= this.#maxOps) this.stopped = true;
    else if ((++this.#calls & 15) === 0) this.#tick();
  }

  #tick(): void {
    const t = now();
    this.maxGapMs = Math.max(this.maxGapMs, t - this.#lastTick);
    this.#lastTick = t;
    if (t >= this.#deadline) {
      this.stopped = true;
    } else if (t >= this.#nextYield && !this.gate) {
      this.#nextYield = t + YIELD_EVERY_MS;
      this.gate = new Promise((resolve) =>
        setImmediate(() => {
          this.gate = undefined;
          resolve();
        }),
      );
    }
  }
}

/** One writer: awaits its own appends one at a time, cycling through `records` from `first`. */
async function appendLoop(wal: Wal, records: readonly Record[], first: number, ctl: LoopControl): Promise<void> {
  for (let i = first % records.length; !ctl.stopped; i = (i + 1) % records.length) {
    if (ctl.gate) await ctl.gate;
    await wal.append(records[i]!);
    ctl.done(1);
  }
}

/** `writers` concurrent append loops for `ms` (or `maxOps` appends); ops = appends resolved. */
async function driveAppends(
  wal: Wal,
  records: readonly Record[],
  writers: number,
  ms: number,
  maxOps: number,
): Promise<{ ops: number; ms: number; maxGapMs: number }> {
  const ctl = new LoopControl(ms, maxOps);
  const t0 = now();
  await Promise.all(Array.from({ length: writers }, (_, w) => appendLoop(wal, records, w, ctl)));
  return { ops: ctl.ops, ms: now() - t0, maxGapMs: ctl.maxGapMs };
}

interface AppendResult extends Timed {
  policy: string;
  size: number;
  writers: number;
  preallocate: 'default' | boolean;
  appendsPerSec: number;
  mbPerSec: number;
  /** Coalescing: appends per write(2). */
  appendsPerWrite: number;
  /** Durable appends per fdatasync (group commit). */
  appendsPerFsync: number;
  fsyncs: number;
  rotations: number;
  /** Longest gap between 16 consecutive completions: rotation and fsync stalls show here. */
  maxStallMs: number;
  /** appends/s of every attempt. */
  attempts?: number[];
}

interface AppendSpec {
  policy: Policy;
  size: number;
  writers: number;
  ms: number;
  preallocate?: boolean;
}

/** Best of `CFG.runs` attempts by throughput. */
const best = <T extends Timed>(fn: () => Promise<T> | T): Promise<T & { attempts: number[] }> => bestOf(CFG.runs, fn, opsPerSec);

/** Best of `CFG.runs` attempts of {@link walAppendsOnce}. */
const walAppends = (spec: AppendSpec): Promise<AppendResult> => best(() => walAppendsOnce(spec));

/** Opens a WAL in a fresh directory, warms up, and times `spec.writers` append loops. */
async function walAppendsOnce(spec: AppendSpec): Promise<AppendResult> {
  return withTempDir('append', async (dir) => {
    const extra = spec.preallocate === undefined ? {} : { preallocate: spec.preallocate };
    const { wal } = await lib.Wal.open({ dir, fsync: spec.policy.fsync, ...extra });
    try {
      const records = makeRecords(spec.size, Math.max(IN_FLIGHT, spec.writers));
      const maxOps = Math.floor(CFG.maxRunBytes / spec.size);
      await driveAppends(wal, records, spec.writers, CFG.warmMs, maxOps);
      const before = wal.stats();
      const r = await driveAppends(wal, records, spec.writers, spec.ms, maxOps);
      const after = wal.stats();
      const bytes = after.bytes - before.bytes;
      if (bytes !== r.ops * spec.size) throw new Error(`WAL wrote ${bytes} bytes for ${r.ops} records of ${spec.size}`);
      const fsyncs = after.fsyncs - before.fsyncs;
      return {
        policy: spec.policy.name,
        size: spec.size,
        writers: spec.writers,
        preallocate: spec.preallocate ?? 'default',
        ops: r.ops,
        bytes,
        ms: r.ms,
        appendsPerSec: opsPerSec({ ...r, bytes }),
        mbPerSec: mbPerSec({ ...r, bytes }),
        appendsPerWrite: r.ops / Math.max(1, after.writes - before.writes),
        appendsPerFsync: fsyncs > 0 ? r.ops / fsyncs : 0,
        fsyncs,
        rotations: after.rotations - before.rotations,
        maxStallMs: r.maxGapMs,
      };
    } finally {
      await wal.close();
    }
  });
}

const modeName = (writers: number): string => (writers === 1 ? 'one at a time' : `${writers} in flight`);

async function runAppendMatrix(): Promise<AppendResult[]> {
  const results: AppendResult[] = [];
  for (const policy of POLICIES) {
    for (const size of SIZES) {
      for (const writers of [1, IN_FLIGHT]) {
        progress(`append: ${policy.name}, ${fmtSize(size)}, ${modeName(writers)}`);
        const ms = policy.fsync === 'always' ? CFG.alwaysMs : CFG.appendMs;
        results.push(await walAppends({ policy, size, writers, ms }));
      }
    }
  }
  return results;
}

/** The baseline an append result is compared with: naive writeSync, or the disk's fdatasync rate. */
function appendRatio(r: AppendResult, b: Baselines): string {
  if (r.policy === "'always'") return `${fmtX(r.appendsPerSec / opsPerSec(b.syncOverwrite))} fdatasync`;
  const naive = b.naive.find((n) => n.size === r.size)!;
  return `${fmtX(r.appendsPerSec / naive.appendsPerSec)} naive`;
}

function appendReport(results: readonly AppendResult[], b: Baselines): string {
  return mdTable(
    ['policy', 'record', 'mode', 'appends/s', 'MB/s', 'vs baseline', 'appends/write', 'fsyncs', 'appends/fsync', 'rotations', 'max stall'],
    results.map((r) => [
      r.policy,
      fmtSize(r.size),
      modeName(r.writers),
      fmtInt(r.appendsPerSec),
      fmtMB(r.mbPerSec),
      appendRatio(r, b),
      r.appendsPerWrite.toFixed(1),
      String(r.fsyncs),
      // Under 'os' the only fsyncs are rotations': appends per fsync means nothing there.
      r.policy === "'os'" || r.fsyncs === 0 ? '-' : r.appendsPerFsync.toFixed(1),
      String(r.rotations),
      fmtMs(r.maxStallMs),
    ]),
  );
}

// --- appendBatch -------------------------------------------------------------------------------

interface BatchResult extends Timed {
  policy: string;
  recordsPerSec: number;
  mbPerSec: number;
  fsyncs: number;
  rotations: number;
  attempts?: number[];
}

async function batchLoop(wal: Wal, batch: readonly Record[], ctl: LoopControl): Promise<void> {
  while (!ctl.stopped) {
    if (ctl.gate) await ctl.gate;
    await wal.appendBatch(batch);
    ctl.done(batch.length);
  }
}

/**
 * `appendBatch` of 1000 x 1 KiB records awaited one at a time. Under 'os' the timed window ends
 * with `sync()`, so the figure is durable throughput, comparable to the sequential baseline.
 */
async function walBatches(policy: Policy): Promise<BatchResult> {
  return withTempDir('batch', async (dir) => {
    const { wal } = await lib.Wal.open({ dir, fsync: policy.fsync });
    try {
      const batch = makeRecords(KiB, BATCH_RECORDS);
      const maxOps = Math.floor(CFG.maxRunBytes / KiB);
      await batchLoop(wal, batch, new LoopControl(CFG.warmMs, maxOps));
      await wal.sync();
      const before = wal.stats();
      const ctl = new LoopControl(CFG.batchMs, maxOps);
      const t0 = now();
      await batchLoop(wal, batch, ctl);
      await wal.sync();
      const ms = now() - t0;
      const after = wal.stats();
      const t: Timed = { ops: ctl.ops, bytes: after.bytes - before.bytes, ms };
      return {
        policy: policy.name,
        ...t,
        recordsPerSec: opsPerSec(t),
        mbPerSec: mbPerSec(t),
        fsyncs: after.fsyncs - before.fsyncs,
        rotations: after.rotations - before.rotations,
      };
    } finally {
      await wal.close();
    }
  });
}

async function runBatches(): Promise<BatchResult[]> {
  const out: BatchResult[] = [];
  for (const policy of POLICIES.filter((p) => p.fsync === 'os' || p.fsync === 'always')) {
    progress(`appendBatch(${BATCH_RECORDS} x 1 KiB): ${policy.name}`);
    out.push(await best(() => walBatches(policy)));
  }
  return out;
}

/**
 * Each policy against its raw equivalent: 'os' (timed through a final sync()) against 1 MiB
 * writes with one fdatasync at the end; 'always' (one fdatasync per batch) against 1 MiB writes
 * each followed by fdatasync.
 */
function batchReport(results: readonly BatchResult[], b: Baselines): string {
  return mdTable(
    ['appendBatch(1000 x 1 KiB)', 'records/s', 'MB/s', 'baseline', 'baseline MB/s', 'vs baseline', 'fsyncs', 'rotations'],
    results.map((r) => {
      const osPolicy = r.policy === "'os'";
      const base = osPolicy ? b.seqMBps : b.seqSyncEachMBps;
      return [
        osPolicy ? `'os', timed through a final sync()` : r.policy,
        fmtInt(r.recordsPerSec),
        fmtMB(r.mbPerSec),
        osPolicy ? '1 MiB writes + 1 fdatasync' : '1 MiB write + fdatasync, each',
        fmtMB(base),
        fmtPct(r.mbPerSec / base),
        String(r.fsyncs),
        String(r.rotations),
      ];
    }),
  );
}

// --- 'always' with many writers -------------------------------------------------------------------

const ALWAYS: Policy = POLICIES.find((p) => p.fsync === 'always')!;

async function runWriters(): Promise<AppendResult[]> {
  const out: AppendResult[] = [];
  for (const writers of [1, 16, 256]) {
    progress(`'always': ${writers} writer(s), 1 KiB`);
    out.push(await walAppends({ policy: ALWAYS, size: KiB, writers, ms: CFG.writersMs }));
  }
  progress(`'always': 1 writer, 1 KiB, preallocate: false`);
  out.push(await walAppends({ policy: ALWAYS, size: KiB, writers: 1, ms: CFG.writersMs, preallocate: false }));
  return out;
}

function writersReport(results: readonly AppendResult[], b: Baselines): string {
  const one = results.find((r) => r.writers === 1 && r.preallocate === 'default')!;
  return mdTable(
    [
      'writers',
      'preallocate',
      'durable appends/s',
      'MB/s',
      'appends/fsync',
      'vs fdatasync, growing',
      'vs fdatasync, overwriting',
      'vs 1 writer',
    ],
    results.map((r) => [
      String(r.writers),
      r.preallocate === 'default' ? 'default (8 MiB)' : String(r.preallocate),
      fmtInt(r.appendsPerSec),
      fmtMB(r.mbPerSec),
      r.appendsPerFsync.toFixed(1),
      fmtPct(r.appendsPerSec / opsPerSec(b.syncGrow)),
      fmtPct(r.appendsPerSec / opsPerSec(b.syncOverwrite)),
      fmtX(r.appendsPerSec / one.appendsPerSec),
    ]),
  );
}

// --- replay and recovery ------------------------------------------------------------------------------

interface ReplayResult {
  logBytes: number;
  records: number;
  segments: number;
  fillMBps: number;
  /** Each timed `Wal.open`, in ms. */
  recoveryMs: number[];
  recoveryMBps: number;
  /** Each timed replay, in ms. */
  replayMs: number[];
  replayMBps: number;
  replayRecordsPerSec: number;
}

/** Fills a log with ~`bytes` of 1 KiB records via appendBatch under 'os', then closes it. */
async function fillLog(dir: string, bytes: number): Promise<{ records: number; ms: number }> {
  const batch = makeRecords(KiB, BATCH_RECORDS);
  const { wal } = await lib.Wal.open({ dir, fsync: 'os' });
  const t0 = now();
  let records = 0;
  try {
    while (records * KiB < bytes) {
      await wal.appendBatch(batch);
      records += batch.length;
    }
  } finally {
    await wal.close();
  }
  return { records, ms: now() - t0 };
}

/**
 * Times `Wal.open` (scan + verify of every frame) at least twice, the first being a warm-up of
 * the code; leaves the last WAL open for replay.
 */
async function timeRecovery(dir: string, records: number): Promise<{ wal: Wal; ms: number[] }> {
  const ms: number[] = [];
  const attempts = Math.max(2, CFG.runs);
  for (let attempt = 1; ; attempt++) {
    const t0 = now();
    const { wal, recovery } = await lib.Wal.open({ dir, fsync: 'os' });
    ms.push(now() - t0);
    if (recovery.validRecords !== records || recovery.truncations.length > 0) {
      await wal.close();
      throw new Error(`recovery found ${recovery.validRecords} records of ${records}, ${recovery.truncations.length} truncations`);
    }
    if (attempt === attempts) return { wal, ms };
    await wal.close();
  }
}

async function timeReplay(wal: Wal, records: number): Promise<number> {
  const t0 = now();
  let n = 0;
  for await (const entry of wal.readFrom({ segmentId: 0, offset: 0 })) {
    if (entry.record.value.length === 0) throw new Error('replayed an empty value');
    n++;
  }
  const ms = now() - t0;
  if (n !== records) throw new Error(`replay yielded ${n} records of ${records}`);
  return ms;
}

async function runReplay(): Promise<ReplayResult> {
  return withTempDir('replay', async (dir) => {
    progress(`replay/recovery: writing ${fmtSize(CFG.replayBytes)} of 1 KiB records`);
    const fill = await fillLog(dir, CFG.replayBytes);
    const logBytes = dirBytes(dir, '.wal');
    const segments = fs.readdirSync(dir).filter((n) => n.endsWith('.wal')).length;
    progress('replay/recovery: Wal.open, then readFrom(start)');
    const { wal, ms: recoveryMs } = await timeRecovery(dir, fill.records);
    const replayMs: number[] = [];
    try {
      for (let i = 0; i < CFG.runs; i++) replayMs.push(await timeReplay(wal, fill.records));
    } finally {
      await wal.close();
    }
    const bestRecovery = Math.min(...recoveryMs);
    const bestReplay = Math.min(...replayMs);
    return {
      logBytes,
      records: fill.records,
      segments,
      fillMBps: logBytes / MB / (fill.ms / 1000),
      recoveryMs,
      recoveryMBps: logBytes / MB / (bestRecovery / 1000),
      replayMs,
      replayMBps: logBytes / MB / (bestReplay / 1000),
      replayRecordsPerSec: fill.records / (bestReplay / 1000),
    };
  });
}

function replayReport(r: ReplayResult): string {
  const what = `${fmtMB(r.logBytes / MB)} MB, ${fmtInt(r.records)} x 1 KiB records, ${r.segments} segments`;
  return mdTable(
    ['replay / recovery', 'MB/s', 'records/s', 'time'],
    [
      [`fill (appendBatch, 'os', incl. close): ${what}`, fmtMB(r.fillMBps), '-', '-'],
      [
        `recovery: Wal.open on cached segments (best of ${r.recoveryMs.length})`,
        fmtMB(r.recoveryMBps),
        fmtInt(r.records / (Math.min(...r.recoveryMs) / 1000)),
        r.recoveryMs.map(fmtMs).join(', '),
      ],
      [
        `replay: readFrom({ segmentId: 0, offset: 0 }) (best of ${r.replayMs.length})`,
        fmtMB(r.replayMBps),
        fmtInt(r.replayRecordsPerSec),
        r.replayMs.map(fmtMs).join(', '),
      ],
    ],
  );
}

// --- targets ------------------------------------------------------------------------------------------

interface Target {
  target: string;
  measured: string;
  goal: string;
  pass: boolean;
}

function find(results: readonly AppendResult[], policy: string, size: number, writers: number): AppendResult {
  const r = results.find((x) => x.policy === policy && x.size === size && x.writers === writers && x.preallocate === 'default');
  if (!r) throw new Error(`no result for ${policy} ${size} ${writers}`);
  return r;
}

function targets(
  b: Baselines,
  appends: readonly AppendResult[],
  batches: readonly BatchResult[],
  writers: readonly AppendResult[],
  replay: ReplayResult,
): Target[] {
  const naive1k = b.naive.find((n) => n.size === KiB)!.appendsPerSec;
  const os64 = find(appends, "'os'", KiB, IN_FLIGHT).appendsPerSec;
  const os1 = find(appends, "'os'", KiB, 1).appendsPerSec;
  const batchOs = batches.find((x) => x.policy === "'os'")!;
  const w1 = find(writers, "'always'", KiB, 1).appendsPerSec;
  const w16 = find(writers, "'always'", KiB, 16).appendsPerSec;
  const grow = opsPerSec(b.syncGrow);
  const over = opsPerSec(b.syncOverwrite);
  return [
    { target: "'os' 1 KiB, 64 in flight", measured: `${fmtInt(os64)}/s`, goal: '>= 550,000/s', pass: os64 >= 550_000 },
    {
      target: "'os' 1 KiB, 64 in flight vs naive writeSync",
      measured: `${fmtX(os64 / naive1k)} (${fmtInt(naive1k)}/s)`,
      goal: '> 1.00x',
      pass: os64 > naive1k,
    },
    {
      target: "'os' 1 KiB, one at a time vs naive writeSync",
      measured: fmtPct1(os1 / naive1k),
      goal: '>= 60%',
      pass: os1 >= 0.6 * naive1k,
    },
    {
      target: "appendBatch(1000 x 1 KiB) 'os' + sync() vs 1 MiB writes + fdatasync",
      measured: `${fmtPct1(batchOs.mbPerSec / b.seqMBps)} (${fmtMB(batchOs.mbPerSec)} of ${fmtMB(b.seqMBps)} MB/s)`,
      goal: '>= 50%',
      pass: batchOs.mbPerSec >= 0.5 * b.seqMBps,
    },
    {
      target: "'always' 1 writer vs fdatasync rate, growing file",
      measured: `${fmtPct1(w1 / grow)} (${fmtInt(w1)} of ${fmtInt(grow)}/s)`,
      goal: '>= 70%',
      pass: w1 >= 0.7 * grow,
    },
    {
      target: "'always' 1 writer vs fdatasync rate, overwriting",
      measured: `${fmtPct1(w1 / over)} (${fmtInt(w1)} of ${fmtInt(over)}/s)`,
      goal: '>= 70%',
      pass: w1 >= 0.7 * over,
    },
    { target: "'always' 16 writers vs 1 writer", measured: `${fmtX(w16 / w1)} (${fmtInt(w16)}/s)`, goal: '>= 10x', pass: w16 >= 10 * w1 },
    {
      target: 'recovery of cached segments',
      measured: `${fmtMB(replay.recoveryMBps)} MB/s`,
      goal: '>= 1,000 MB/s',
      pass: replay.recoveryMBps >= 1000,
    },
  ];
}

function targetReport(ts: readonly Target[]): string {
  return mdTable(
    ['target', 'measured', 'goal', 'result'],
    ts.map((t) => [t.target, t.measured, t.goal, t.pass ? 'pass' : 'MISS']),
  );
}

// --- main ---------------------------------------------------------------------------------------------

let sectionStart = cpuSample();

/**
 * Prints a report section. For measured sections it adds how busy the CPUs were outside this
 * process while they ran: on a shared machine that is what makes a figure trustworthy or not.
 */
function section(title: string, body: string, measured = true): void {
  const share = measured ? cpuShare(sectionStart, cpuSample()) : undefined;
  const note = share ? `\n\n_CPU used outside this process during these runs: ${fmtPct(share.others)} of ${CPUS}._` : '';
  console.log(`## ${title}\n\n${body}${note}\n`);
  sectionStart = cpuSample();
}

async function main(): Promise<void> {
  const started = now();
  const cpu0 = cpuSample();
  console.log(`# sediment WAL benchmark${args.quick ? ' (--quick)' : ''}\n`);
  console.log(
    `MB = 10^6 bytes. Record sizes are bytes on disk (16 B frame header + payload; 16 B keys). ` +
      `Every figure is the best of ${CFG.runs} back-to-back attempt(s).\n`,
  );
  const probe = await withTempDir('probe', (dir) => pageCacheProbe(dir));
  const machine: [string, string][] = [
    ...machineInfo(),
    ['WAL code under test', WAL_SOURCE],
    ['page-cache writes, 1 MiB (first touch / reused pages)', `${fmtMB(probe.coldMBps)} / ${fmtMB(probe.reusedMBps)} MB/s`],
  ];
  section('Machine', mdTable(['', ''], machine), false);

  const base = await measureDisk(CFG);
  section('Disk baselines (raw node:fs, same run, same temp dir)', baselineReport(base, CFG));

  const appends = await runAppendMatrix();
  section(
    'append by policy, record size and concurrency',
    `${appendReport(appends, base)}\n\n"vs baseline": naive writeSync of the same size for 'os' and batchMs; the overwriting ` +
      `fdatasync rate for 'always'. "max stall": longest gap between 16 consecutive completions.`,
  );

  const batches = await runBatches();
  section('appendBatch', batchReport(batches, base));

  const writers = await runWriters();
  section("'always': durable appends with concurrent writers (1 KiB)", writersReport(writers, base));

  const replay = await runReplay();
  section('Replay and recovery', replayReport(replay));

  const ts = targets(base, appends, batches, writers, replay);
  section('Targets', targetReport(ts), false);
  const share = cpuShare(cpu0, cpuSample());
  const busy = share
    ? `; CPUs ${fmtPct(share.busy)} busy, ${fmtPct(share.others)} outside this process (other processes, kernel threads)`
    : '';
  console.log(`Finished in ${((now() - started) / 1000).toFixed(0)} s; load average at the end ${loadAverage()}${busy}.`);

  if (args.json) {
    const json = {
      date: new Date().toISOString(),
      machine: Object.fromEntries(machine),
      config: CFG,
      cpu: share,
      baselines: base,
      appends,
      batches,
      writers,
      replay,
      targets: ts,
    };
    fs.writeFileSync(args.json, `${JSON.stringify(json, null, 2)}\n`);
    progress(`results written to ${args.json}`);
  }
}

await main();
