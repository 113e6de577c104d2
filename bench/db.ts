/**
 * The DB benchmark: `npm run bench:db` (`tsx bench/db.ts [--quick] [--n=1M] [--big=10M] [--engines=...] [--only=...] [--src] [--json[=file]]`;
 * `--help` lists every flag, bench/README.md explains them). `npm run bench:db` builds the package
 * first and measures sediment's build (dist/); `--src` measures the TypeScript sources through tsx.
 *
 * sediment against classic-level (LevelDB) and lmdb, in the same run, on the same temp file
 * system, with the same keys and values, through the same driver:
 *
 * - Keys: 16 B, the zero-padded decimal of 2*i (db_bench style); a miss is the odd number
 *   between two keys, so it falls inside the key range and bloom filters have to reject it.
 * - Values: 100 B, 50 pseudo-random bytes repeated twice (compressible ~50%, like db_bench's
 *   compression ratio 0.5), from a 1 MB pool.
 * - Workloads (n entries, 1M by default):
 *   fillseq (ascending), fillrandom (random order), overwrite (every key again, random order),
 *   readrandom hits and misses, readseq (full iterator scan), deleterandom (every key, random
 *   order): writes run with 64 operations in flight (64 async loops, each awaiting its own);
 *   fillrandom also awaited one at a time; readrandom hits also one at a time.
 *   fillsync: durable puts with 1 and with 16 writers, for a few seconds each.
 * - Each (workload family, engine) gets a fresh directory under os.tmpdir(), removed afterwards.
 *   Families: seq (fillseq), random (fillrandom, overwrite, reads, readseq, deleterandom on one
 *   DB), fillrandom-1, fillsync-1, fillsync-16.
 * - Every operation's latency is sampled (p50/p99/p99.9/max). Write phases also record the
 *   event-loop lag (monitorEventLoopDelay, 1 ms resolution), the process's write I/O
 *   (/proc/self/io: wchar = bytes handed to write(2), write_bytes = page cache dirtied), and for
 *   sediment the latencies of puts completed while a compaction ran vs not, stalls, and its
 *   write amplification from db.stats(). After each write phase sediment is given time to finish
 *   the compactions it owes (it is the only engine whose backlog is observable); that time is
 *   reported and counted in its write I/O but not in its ops/s.
 * - Ratios are sediment ÷ the other engine: above 1.00x sediment does more ops/s (or, for
 *   latencies, takes longer).
 *
 * The families of issues #10 and #11 (concurrent, fillbatch, reads, load, load-1k) run one child
 * process per engine (bench/db-units.ts, bench/db-child.ts) and add event-loop delay percentiles,
 * GC pauses, peak RSS and sediment's counters; their report and the targets are in
 * bench/db-report.ts.
 *
 * Report (markdown) on stdout, progress on stderr; the JSON, the report and a chart
 * (bench/db-chart.ts) in bench/results/ (latest.json, latest.md, latest.svg, and a timestamped JSON).
 *
 * @module
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chartData, renderChart } from './db-chart.js';
import { targets, unitReport, type FillRandom1 } from './db-report.js';
import { UNIT_FAMILIES, type UnitResult, type UnitSpec } from './db-units.js';
import { cpuSample, cpuShare, fmtInt, fmtPct, fmtX, loadAverage, machineInfo, mdTable, rng, shuffledIndexes } from './lib.js';
import {
  ENGINE_NAMES,
  ENGINE_SETTINGS,
  SEDIMENT_SOURCE,
  compactionNeeded,
  openEngine,
  type BulkOp,
  type Engine,
  type EngineName,
  type SedimentEngine,
} from './db-engines.js';
import {
  BackgroundTracker,
  diskUsage,
  drive,
  ioDelta,
  loopLagMonitor,
  now,
  percentiles,
  cpuDelta,
  cpuPressure,
  readCpu,
  readIo,
  sleep,
  type CpuCounters,
  type DiskUsage,
  type IoCounters,
  type LoopLag,
  type Percentiles,
} from './db-run.js';

// --- arguments -------------------------------------------------------------------------------

interface Args {
  n: number;
  /** Entries of the big load (load family), and of the 1 KiB-value load (load-1k). */
  big: number;
  big1k: number;
  /** Puts per batch: fillbatch, load, load-1k and the untimed loads of the reads family. */
  batch: number;
  /** Duration of each random-read phase of the reads and load families. */
  readMs: number;
  /** Upper bound of each write phase of the concurrent and fillbatch families, and of each load. */
  longCapMs: number;
  /** Where the JSON results and the chart go; undefined with --no-results. */
  resultsDir: string | undefined;
  quick: boolean;
  engines: EngineName[];
  only: Set<string> | undefined;
  json: string | undefined;
  inflight: number;
  /** Upper bound of the time-bounded runs (reads, fillrandom awaited one at a time). */
  capMs: number;
  /** Upper bound of the timed part of the n-entry write phases; the rest is written untimed. */
  writeCapMs: number;
  syncMs: number;
}

function count(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(s);
  if (!m) throw new Error(`not a count: ${s}`);
  const mult = m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1e3 : 1e6;
  return Math.round(Number(m[1]) * mult);
}

/** Families run in this process (the first benchmark's), then those run one child process per engine. */
const MAIN_FAMILIES = ['seq', 'random', 'fillrandom-1', 'fillsync-1', 'fillsync-16'] as const;
type Family = (typeof MAIN_FAMILIES)[number];
const FAMILIES: readonly string[] = [...MAIN_FAMILIES, ...UNIT_FAMILIES];

function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    n: 1_000_000,
    big: 10_000_000,
    big1k: 1_000_000,
    batch: 1000,
    readMs: 5000,
    longCapMs: 600_000,
    resultsDir: fileURLToPath(new URL('./results/', import.meta.url)),
    quick: false,
    engines: [...ENGINE_NAMES],
    only: undefined,
    json: undefined,
    inflight: 64,
    capMs: 3000,
    writeCapMs: 15000,
    syncMs: 2500,
  };
  const given = new Set<string>();
  for (const arg of argv) {
    const [k, v] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    given.add(k);
    if (k === '--n' && v) a.n = count(v);
    else if (k === '--quick') a.quick = true;
    else if (k === '--big' && v) a.big = count(v);
    else if (k === '--big1k' && v) a.big1k = count(v);
    else if (k === '--batch' && v) a.batch = count(v);
    else if (k === '--read-ms' && v) a.readMs = count(v);
    else if (k === '--long-cap-ms' && v) a.longCapMs = count(v);
    else if (k === '--results' && v) a.resultsDir = path.resolve(v);
    else if (k === '--no-results') a.resultsDir = undefined;
    else if (k === '--engines' && v)
      a.engines = v.split(',').map((e) => {
        if (!(ENGINE_NAMES as readonly string[]).includes(e)) throw new Error(`unknown engine ${e}`);
        return e as EngineName;
      });
    else if (k === '--only' && v) a.only = new Set(v.split(','));
    else if (k === '--json') a.json = v ?? 'db-bench.json';
    else if (k === '--src')
      continue; // read by db-engines.ts
    else if (k === '--inflight' && v) a.inflight = count(v);
    else if (k === '--cap-ms' && v) a.capMs = count(v);
    else if (k === '--sync-ms' && v) a.syncMs = count(v);
    else if (k === '--write-cap-ms' && v) a.writeCapMs = count(v);
    else if (k === '--help' || k === '-h') {
      console.log(
        'usage: tsx bench/db.ts [--quick] [--n=1M] [--big=10M] [--big1k=1M] [--engines=sediment,classic-level,lmdb] [--only=' +
          FAMILIES.join(',') +
          '] [--inflight=64] [--batch=1000] [--cap-ms=3000] [--write-cap-ms=15000] [--sync-ms=2500] [--read-ms=5000] [--long-cap-ms=600000]' +
          ' [--results=bench/results | --no-results] [--src] [--json[=file]]',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${arg} (try --help)`);
  }
  if (a.only) for (const f of a.only) if (!FAMILIES.includes(f)) throw new Error(`unknown family ${f}`);
  if (a.quick) {
    // Seconds per family: a smoke test of every code path, not figures to compare.
    const quick: [string, () => void][] = [
      ['--n', () => (a.n = 50_000)],
      ['--big', () => (a.big = 200_000)],
      ['--big1k', () => (a.big1k = 50_000)],
      ['--cap-ms', () => (a.capMs = 1000)],
      ['--write-cap-ms', () => (a.writeCapMs = 5000)],
      ['--sync-ms', () => (a.syncMs = 1000)],
      ['--read-ms', () => (a.readMs = 1000)],
      ['--long-cap-ms', () => (a.longCapMs = 60_000)],
    ];
    for (const [flag, set] of quick) if (!given.has(flag)) set();
  }
  if (a.batch < 1) throw new Error('--batch must be at least 1');
  return a;
}

const args = parseArgs(process.argv.slice(2));
const N = args.n;
const runFamily = (f: string): boolean => !args.only || args.only.has(f);
/** The in-process families' keys and orders are generated only if one of them runs. */
const GEN = MAIN_FAMILIES.some(runFamily) ? N : 1;
const KEY = 16;
const VALUE = 100;
const ENTRY = KEY + VALUE;

// --- data ------------------------------------------------------------------------------------

function permutation(n: number, seed: number): Uint32Array {
  return shuffledIndexes(n, rng(seed));
}

function keyBuffer(n: number, odd: boolean): Buffer {
  const b = Buffer.allocUnsafe(n * KEY);
  for (let i = 0; i < n; i++) b.write(String(2 * i + (odd ? 1 : 0)).padStart(KEY, '0'), i * KEY, 'latin1');
  return b;
}

const POOL_VALUES = 10_000;
function valuePool(): Buffer {
  const r = rng(7);
  const b = Buffer.allocUnsafe(POOL_VALUES * VALUE);
  for (let i = 0; i < POOL_VALUES; i++) {
    const at = i * VALUE;
    for (let j = 0; j < VALUE / 2; j++) b[at + j] = r() & 0xff;
    b.copy(b, at + VALUE / 2, at, at + VALUE / 2);
  }
  return b;
}

if (GEN > 1) progress(`generating ${fmtInt(N)} keys, permutations and a value pool`);
const hitKeys = keyBuffer(GEN, false);
const missKeys = keyBuffer(GEN, true);
const pool = valuePool();
const permFill = permutation(GEN, 1);
const permOverwrite = permutation(GEN, 2);
const permDelete = permutation(GEN, 3);
const readIdx = (() => {
  const r = rng(4);
  const a = new Uint32Array(GEN);
  for (let i = 0; i < GEN; i++) a[i] = r() % GEN;
  return a;
})();

const key = (j: number): Buffer => hitKeys.subarray(j * KEY, j * KEY + KEY);
const missKey = (j: number): Buffer => missKeys.subarray(j * KEY, j * KEY + KEY);
/** Value of key j, generation g (0: fills, 1: overwrite). */
const value = (j: number, g: number): Buffer => {
  const at = ((j * 7919 + g * 4999) % POOL_VALUES) * VALUE;
  return pool.subarray(at, at + VALUE);
};

// --- results ---------------------------------------------------------------------------------

interface SedimentPhase {
  /** Compactions and flushes finished, stalls and slowdowns during the timed part. */
  compactions: number;
  flushes: number;
  writeStalls: number;
  writeStallMs: number;
  writeSlowdowns: number;
  userBytes: number;
  flushBytes: number;
  compactionBytesRead: number;
  compactionBytesWritten: number;
  /** (flushBytes + compactionBytesWritten) / userBytes of this phase, settle included. */
  writeAmplification: number;
  duringCompaction: Percentiles;
  outsideCompaction: Percentiles;
  duringFlush: Percentiles;
  compactionShare: number;
  flushShare: number;
  /** Timed puts that took over 100 ms. */
  putsOver100ms: number;
}

interface OpResult {
  family: Family;
  workload: string;
  engine: EngineName;
  mode: string;
  ops: number;
  ms: number;
  opsPerSec: number;
  mbPerSec: number;
  lat: Percentiles;
  loop: LoopLag | undefined;
  settleMs: number | undefined;
  /** Write I/O of the whole phase: timed part, untimed completion and sediment's settle. */
  io: IoCounters | undefined;
  /** User bytes of the whole phase (timed and untimed). */
  userBytes: number;
  /** Operations written after the timed part ran out of time, unmeasured, to reach n entries. */
  untimedOps: number;
  /** CPU during the timed part. */
  cpu: CpuCounters;
  sediment: SedimentPhase | undefined;
}

interface SizeResult {
  after: string;
  engine: EngineName;
  liveEntries: number;
  rawBytes: number;
  usage: DiskUsage;
  describe: string;
  sedimentWA: number | undefined;
  sedimentLevels: { tables: number; bytes: number }[] | undefined;
}

const results: OpResult[] = [];
const sizes: SizeResult[] = [];
const notes: string[] = [];

function progress(message: string): void {
  process.stderr.write(`  .. ${message}\n`);
}

const isSediment = (e: Engine): e is SedimentEngine => e.name === 'sediment';

/** Waits for sediment's owed compactions and flushes (up to 2 min); 0 for the others. */
async function settle(e: Engine): Promise<number> {
  if (!isSediment(e)) return 0;
  const t0 = now();
  for (;;) {
    const s = e.stats();
    if (!compactionNeeded(s) && s.frozenMemtables === 0) break;
    if (now() - t0 > 120_000) {
      notes.push(`sediment did not settle within 120 s (${e.describe()})`);
      break;
    }
    await sleep(20);
  }
  return now() - t0;
}

interface PhaseSpec {
  workload: string;
  mode: string;
  total: number;
  concurrency: number;
  maxMs: number;
  bytesPerOp: number;
  op: (i: number) => unknown;
  kind: 'write' | 'read';
  /**
   * Operation i as a bulk item: when given, the operations the time limit left out are written
   * untimed, in atomic batches (the later phases need all n entries).
   */
  item?: (i: number) => BulkOp;
}

/** Operations per batch of the untimed completion of a capped phase. */
const COMPLETE_BATCH = 10_000;

async function phase(ctx: { family: Family; engine: Engine }, p: PhaseSpec): Promise<OpResult> {
  const { engine } = ctx;
  progress(`${ctx.family}: ${engine.name} ${p.workload} (${p.mode})`);
  const write = p.kind === 'write';
  const sed = write && isSediment(engine) ? engine : undefined;
  const before = sed?.stats();
  const tracker = sed ? new BackgroundTracker(() => sed.stats()).start() : undefined;
  const io0 = write ? readIo() : undefined;
  const cpu0 = readCpu();
  const lag = write ? loopLagMonitor() : undefined;
  const run = await drive(p.total, p.concurrency, p.maxMs, p.op, tracker !== undefined);
  const loop = lag?.stop();
  const cpu = cpuDelta(cpu0, readCpu());
  tracker?.stop();
  const mid = sed?.stats();
  let untimedOps = 0;
  if (p.item && run.ops < p.total) {
    untimedOps = p.total - run.ops;
    progress(
      `${ctx.family}: ${engine.name} ${p.workload}: timed part ended after ${fmtInt(run.ops)} ops; writing the other ${fmtInt(untimedOps)} untimed`,
    );
    const tu = now();
    for (let at = run.ops; at < p.total; at += COMPLETE_BATCH) {
      const ops: BulkOp[] = [];
      for (let i = at; i < Math.min(p.total, at + COMPLETE_BATCH); i++) ops.push(p.item(i));
      await engine.bulk(ops);
    }
    notes.push(
      `${engine.name} ${p.workload}: ${fmtInt(run.ops)} ops timed (${(p.maxMs / 1000).toFixed(1)} s limit), ` +
        `the other ${fmtInt(untimedOps)} written untimed in batches of ${fmtInt(COMPLETE_BATCH)} (${((now() - tu) / 1000).toFixed(1)} s).`,
    );
  }
  const settleMs = write && isSediment(engine) ? await settle(engine) : undefined;
  const io = write ? ioDelta(io0, readIo()) : undefined;
  let sediment: SedimentPhase | undefined;
  if (sed && before && mid && tracker && run.ends) {
    const after = sed.stats();
    const c = tracker.split(run.lat, run.ends, 'compaction');
    const f = tracker.split(run.lat, run.ends, 'flush');
    type Counter =
      | 'compactions'
      | 'flushes'
      | 'writeStalls'
      | 'writeStallMs'
      | 'writeSlowdowns'
      | 'userBytes'
      | 'flushBytes'
      | 'compactionBytesRead'
      | 'compactionBytesWritten';
    /** Whole phase, settle included: for write amplification. */
    const d = (k: Counter): number => after[k] - before[k];
    /** Timed part only: what the measured puts went through. */
    const dt = (k: Counter): number => mid[k] - before[k];
    sediment = {
      compactions: dt('compactions'),
      flushes: dt('flushes'),
      writeStalls: dt('writeStalls'),
      writeStallMs: dt('writeStallMs'),
      writeSlowdowns: dt('writeSlowdowns'),
      userBytes: d('userBytes'),
      flushBytes: d('flushBytes'),
      compactionBytesRead: d('compactionBytesRead'),
      compactionBytesWritten: d('compactionBytesWritten'),
      writeAmplification: d('userBytes') > 0 ? (d('flushBytes') + d('compactionBytesWritten')) / d('userBytes') : 0,
      duringCompaction: percentiles(c.during),
      outsideCompaction: percentiles(c.outside),
      duringFlush: percentiles(f.during),
      compactionShare: tracker.busyShare('compaction'),
      flushShare: tracker.busyShare('flush'),
      putsOver100ms: run.lat.reduce((n, us) => (us > 100_000 ? n + 1 : n), 0),
    };
  }
  const r: OpResult = {
    family: ctx.family,
    workload: p.workload,
    engine: engine.name,
    mode: p.mode,
    ops: run.ops,
    ms: run.ms,
    opsPerSec: run.ops / (run.ms / 1000),
    mbPerSec: (run.ops * p.bytesPerOp) / 1e6 / (run.ms / 1000),
    lat: percentiles(run.lat),
    loop,
    settleMs,
    io,
    userBytes: (run.ops + untimedOps) * p.bytesPerOp,
    untimedOps,
    cpu,
    sediment,
  };
  results.push(r);
  return r;
}

async function scanPhase(ctx: { family: Family; engine: Engine }, expected: number): Promise<void> {
  const { engine } = ctx;
  progress(`${ctx.family}: ${engine.name} readseq`);
  const lat = new Float64Array(expected + 1);
  let n = 0;
  let bytes = 0;
  const cpu0 = readCpu();
  const t0 = now();
  let prev = t0;
  await engine.scan((kl, vl) => {
    const t = now();
    if (n < lat.length) lat[n] = (t - prev) * 1000;
    prev = t;
    n++;
    bytes += kl + vl;
  });
  const ms = now() - t0;
  const cpu = cpuDelta(cpu0, readCpu());
  if (n !== expected) throw new Error(`${engine.name} readseq saw ${n} entries, expected ${expected}`);
  results.push({
    family: ctx.family,
    workload: 'readseq',
    engine: engine.name,
    mode: engine.name === 'lmdb' ? 'for-of over getRange()' : 'for await over iterator()',
    ops: n,
    ms,
    opsPerSec: n / (ms / 1000),
    mbPerSec: bytes / 1e6 / (ms / 1000),
    lat: percentiles(lat.subarray(0, Math.min(n, lat.length))),
    loop: undefined,
    settleMs: undefined,
    io: undefined,
    userBytes: bytes,
    untimedOps: 0,
    cpu,
    sediment: undefined,
  });
}

function recordSize(after: string, engine: Engine, dir: string, liveEntries: number): void {
  const s = isSediment(engine) ? engine.stats() : undefined;
  sizes.push({
    after,
    engine: engine.name,
    liveEntries,
    rawBytes: liveEntries * ENTRY,
    usage: diskUsage(dir),
    describe: engine.describe(),
    sedimentWA: s?.writeAmplification,
    sedimentLevels: s?.levels,
  });
}

/** Reads a sample of keys outside the clock and checks what comes back. */
async function verify(engine: Engine, what: string, keys: Buffer[], expect: (i: number) => Buffer | undefined): Promise<void> {
  for (let i = 0; i < keys.length; i++) {
    const got = await engine.get(keys[i]!);
    const want = expect(i);
    const ok = want === undefined ? got === undefined : got !== undefined && Buffer.compare(got, want) === 0;
    if (!ok)
      throw new Error(
        `${engine.name}: ${what}: key ${keys[i]!.toString('latin1')} read ${got === undefined ? 'nothing' : `${got.length} bytes`}, expected ${want === undefined ? 'nothing' : 'its value'}`,
      );
  }
}

const SAMPLE = Math.min(GEN, 1000);
const sampleIdx = Array.from({ length: SAMPLE }, (_, i) => readIdx[i]!);

// --- families --------------------------------------------------------------------------------

const W = args.inflight;
const inflight = `${W} in flight`;
let syncMsTotal = 0;

/**
 * Writes back what earlier engines left dirty in the page cache, so that it does not slow the
 * next engine's writes and syncs down.
 */
function syncDisk(): void {
  const ts = now();
  try {
    execFileSync('sync', { stdio: 'ignore' });
  } catch {
    // no sync(1): carry on
  }
  syncMsTotal += now() - ts;
}

async function withEngine(family: Family, name: EngineName, fn: (e: Engine, dir: string) => Promise<void>): Promise<void> {
  syncDisk();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sediment-bench-db-${family}-${name}-`));
  let engine: Engine | undefined;
  try {
    engine = await openEngine(name, dir);
    await fn(engine, dir);
  } finally {
    await engine?.close().catch((err: unknown) => notes.push(`${name} close failed: ${String(err)}`));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const fillItem =
  (perm: Uint32Array | undefined, g: number) =>
  (i: number): BulkOp => {
    const j = perm ? perm[i]! : i;
    return [key(j), value(j, g)];
  };
const fill = (e: Engine, perm: Uint32Array | undefined, g: number) => (i: number) => {
  const j = perm ? perm[i]! : i;
  return e.put(key(j), value(j, g));
};

async function familySeq(name: EngineName): Promise<void> {
  await withEngine('seq', name, async (e, dir) => {
    const ctx = { family: 'seq' as const, engine: e };
    await phase(ctx, {
      workload: 'fillseq',
      mode: inflight,
      total: N,
      concurrency: W,
      maxMs: args.writeCapMs,
      bytesPerOp: ENTRY,
      op: fill(e, undefined, 0),
      kind: 'write',
      item: fillItem(undefined, 0),
    });
    await verify(e, 'after fillseq', sampleIdx.map(key), (i) => value(sampleIdx[i]!, 0));
    recordSize('fillseq', e, dir, N);
  });
}

async function familyRandom(name: EngineName): Promise<void> {
  await withEngine('random', name, async (e, dir) => {
    const ctx = { family: 'random' as const, engine: e };
    await phase(ctx, {
      workload: 'fillrandom',
      mode: inflight,
      total: N,
      concurrency: W,
      maxMs: args.writeCapMs,
      bytesPerOp: ENTRY,
      op: fill(e, permFill, 0),
      kind: 'write',
      item: fillItem(permFill, 0),
    });
    await verify(e, 'after fillrandom', sampleIdx.map(key), (i) => value(sampleIdx[i]!, 0));
    recordSize('fillrandom', e, dir, N);
    await phase(ctx, {
      workload: 'overwrite',
      mode: inflight,
      total: N,
      concurrency: W,
      maxMs: args.writeCapMs,
      bytesPerOp: ENTRY,
      op: fill(e, permOverwrite, 1),
      kind: 'write',
      item: fillItem(permOverwrite, 1),
    });
    await verify(e, 'after overwrite', sampleIdx.map(key), (i) => value(sampleIdx[i]!, 1));
    recordSize('overwrite', e, dir, N);
    const sync = e.name === 'lmdb';
    const readMode = sync ? 'synchronous get in a loop' : inflight;
    await phase(ctx, {
      workload: 'readrandom (hits)',
      mode: readMode,
      total: N,
      concurrency: W,
      maxMs: args.capMs,
      bytesPerOp: ENTRY,
      op: (i) => e.get(key(readIdx[i]!)),
      kind: 'read',
    });
    await phase(ctx, {
      workload: 'readrandom (hits, 1 at a time)',
      mode: sync ? 'synchronous get in a loop' : 'awaited one at a time',
      total: N,
      concurrency: 1,
      maxMs: args.capMs / 2,
      bytesPerOp: ENTRY,
      op: (i) => e.get(key(readIdx[(i + 7919) % N]!)),
      kind: 'read',
    });
    await phase(ctx, {
      workload: 'readrandom (misses)',
      mode: readMode,
      total: N,
      concurrency: W,
      maxMs: args.capMs,
      bytesPerOp: KEY,
      op: (i) => e.get(missKey(readIdx[i]!)),
      kind: 'read',
    });
    await verify(e, 'misses', sampleIdx.map(missKey), () => undefined);
    await scanPhase(ctx, N);
    await phase(ctx, {
      workload: 'deleterandom',
      mode: inflight,
      total: N,
      concurrency: W,
      maxMs: args.writeCapMs,
      bytesPerOp: KEY,
      op: (i) => e.del(key(permDelete[i]!)),
      kind: 'write',
      item: (i) => [key(permDelete[i]!), undefined],
    });
    await verify(e, 'after deleterandom', sampleIdx.map(key), () => undefined);
    recordSize('deleterandom', e, dir, 0);
  });
}

async function familyFillRandom1(name: EngineName): Promise<void> {
  await withEngine('fillrandom-1', name, async (e) => {
    const ctx = { family: 'fillrandom-1' as const, engine: e };
    await phase(ctx, {
      workload: 'fillrandom (1 at a time)',
      mode: 'awaited one at a time',
      total: N,
      concurrency: 1,
      maxMs: args.capMs,
      bytesPerOp: ENTRY,
      op: fill(e, permFill, 0),
      kind: 'write',
    });
  });
}

async function familySync(name: EngineName, writers: 1 | 16): Promise<void> {
  const family = writers === 1 ? ('fillsync-1' as const) : ('fillsync-16' as const);
  await withEngine(family, name, async (e) => {
    const ctx = { family, engine: e };
    await phase(ctx, {
      workload: `fillsync (${writers} writer${writers > 1 ? 's' : ''})`,
      mode: writers === 1 ? 'awaited one at a time' : '16 in flight',
      total: N,
      concurrency: writers,
      maxMs: args.syncMs,
      bytesPerOp: ENTRY,
      op: (i) => e.putSync(key(permFill[i]!), value(permFill[i]!, 0)),
      kind: 'write',
    });
  });
}

// --- families in child processes ------------------------------------------------------------

const MiB = 1024 * 1024;
/** Puts per segment of a load's puts/s series: a million, or a tenth of a load under 2M; whole batches. */
const segmentFor = (n: number): number => {
  const s = n >= 2_000_000 ? 1_000_000 : n / 10;
  return Math.max(1, Math.round(s / args.batch)) * args.batch;
};

/** The units of the selected child-process families, in run order. */
function unitSpecs(): UnitSpec[] {
  const specs: UnitSpec[] = [];
  const base = {
    n: N,
    valueBytes: VALUE,
    inflight: W,
    batch: args.batch,
    capMs: args.longCapMs,
    readMs: args.readMs,
    segment: segmentFor(N),
    src: process.argv.includes('--src'),
    writeBuffer: undefined,
  };
  const engines = args.engines;
  if (runFamily('concurrent')) {
    for (const mb of [64, 4])
      for (const engine of engines.filter((e) => e !== 'lmdb'))
        specs.push({ ...base, family: 'concurrent', engine, label: `${engine} ${mb} MiB`, writeBuffer: mb * MiB });
    if (engines.includes('lmdb')) specs.push({ ...base, family: 'concurrent', engine: 'lmdb', label: 'lmdb' });
  }
  for (const family of ['fillbatch', 'reads'] as const)
    if (runFamily(family)) for (const engine of engines) specs.push({ ...base, family, engine, label: engine });
  if (runFamily('load'))
    for (const engine of engines)
      specs.push({ ...base, family: 'load', engine, label: engine, n: args.big, segment: segmentFor(args.big) });
  if (runFamily('load-1k'))
    for (const engine of engines)
      specs.push({ ...base, family: 'load-1k', engine, label: engine, n: args.big1k, valueBytes: 1024, segment: segmentFor(args.big1k) });
  return specs;
}

const CHILD = fileURLToPath(new URL('./db-child.ts', import.meta.url));

/** Runs one unit in a child process (bench/db-child.ts) and returns its result; undefined (and a note) if it failed. */
function runChild(spec: UnitSpec): UnitResult | undefined {
  syncDisk();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `sediment-bench-db-${spec.family}-${spec.engine}-`));
  const dir = path.join(work, 'db');
  fs.mkdirSync(dir);
  const specFile = path.join(work, 'spec.json');
  const resultFile = path.join(work, 'result.json');
  fs.writeFileSync(specFile, JSON.stringify(spec));
  try {
    // The child's stdout goes to our stderr: stdout holds only the report.
    const r = spawnSync(process.execPath, [...process.execArgv, CHILD, specFile, dir, resultFile, ...(spec.src ? ['--src'] : [])], {
      stdio: ['ignore', 2, 2],
    });
    if (r.status !== 0 || !fs.existsSync(resultFile)) {
      notes.push(
        `${spec.family} ${spec.label}: the child process failed (${r.error ? String(r.error) : `exit ${r.status ?? r.signal}`}); see stderr`,
      );
      return undefined;
    }
    return JSON.parse(fs.readFileSync(resultFile, 'utf8')) as UnitResult;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// --- run -------------------------------------------------------------------------------------

const startedAt = new Date();
const loadStart = loadAverage();
const pressureStart = cpuPressure();
const cpu0 = cpuSample();
const t0 = now();
const familyMs: Record<string, number> = {};
const timed = async (family: string, fn: () => Promise<void>): Promise<void> => {
  const t = now();
  await fn();
  familyMs[family] = (familyMs[family] ?? 0) + (now() - t);
};
for (const name of args.engines) if (runFamily('seq')) await timed('seq', () => familySeq(name));
for (const name of args.engines) if (runFamily('random')) await timed('random', () => familyRandom(name));
for (const name of args.engines) if (runFamily('fillrandom-1')) await timed('fillrandom-1', () => familyFillRandom1(name));
for (const name of args.engines) if (runFamily('fillsync-1')) await timed('fillsync-1', () => familySync(name, 1));
for (const name of args.engines) if (runFamily('fillsync-16')) await timed('fillsync-16', () => familySync(name, 16));
const units: UnitResult[] = [];
for (const spec of unitSpecs()) {
  const t = now();
  const r = runChild(spec);
  familyMs[spec.family] = (familyMs[spec.family] ?? 0) + (now() - t);
  if (r) units.push(r);
}
const totalMs = now() - t0;
const loadEnd = loadAverage();
const pressureEnd = cpuPressure();
const share = cpuShare(cpu0, cpuSample());

// --- report ----------------------------------------------------------------------------------

const MBf = (b: number): string => (b / 1e6).toFixed(1);
const us = (x: number): string => (Number.isFinite(x) ? (x >= 100 ? fmtInt(x) : x.toFixed(1)) : '-');
const ratio = (a: number | undefined, b: number | undefined): string =>
  a && b && Number.isFinite(a) && Number.isFinite(b) ? fmtX(a / b) : '-';
const find = (workload: string, engine: EngineName): OpResult | undefined =>
  results.find((r) => r.workload === workload && r.engine === engine);

const out: string[] = [];
const print = (s = ''): void => {
  out.push(s);
};

print(`# sediment DB benchmark (${startedAt.toISOString()})`);
print();
print(
  mdTable(
    ['', ''],
    [
      ...machineInfo().filter(([k]) => !k.startsWith('load')),
      ['sediment code under test', SEDIMENT_SOURCE],
      ['load average at start (1/5/15 min)', loadStart],
      ['load average at end (1/5/15 min)', loadEnd],
      ['CPU pressure at start (PSI some)', pressureStart],
      ['CPU pressure at end (PSI some)', pressureEnd],
      [
        'CPU busy during the run (all CPUs)',
        share ? `${(share.busy * 100).toFixed(0)}%, of which other processes ${(share.others * 100).toFixed(0)}%` : 'unknown',
      ],
      ['entries (n)', `${fmtInt(N)} x (${KEY} B key + ${VALUE} B value) = ${MBf(N * ENTRY)} MB raw`],
      ['write concurrency', `${W} in flight unless noted`],
      ['total time', `${(totalMs / 1000).toFixed(0)} s (of which sync(1) between engines ${(syncMsTotal / 1000).toFixed(1)} s)`],
      [
        'time limits',
        `n-entry write phases: ${(args.writeCapMs / 1000).toFixed(0)} s timed, rest untimed; reads ${(args.capMs / 1000).toFixed(1)} s (1 at a time: ${(args.capMs / 2000).toFixed(1)} s); fillrandom 1 at a time ${(args.capMs / 1000).toFixed(1)} s; fillsync ${(args.syncMs / 1000).toFixed(1)} s`,
      ],
      ...(units.some((u) => u.spec.family === 'load' || u.spec.family === 'load-1k')
        ? [
            [
              'big loads',
              `load: ${fmtInt(args.big)} x ${VALUE} B values; load-1k: ${fmtInt(args.big1k)} x 1 KiB values; batches of ${fmtInt(args.batch)}`,
            ],
          ]
        : []),
      [
        'time per family',
        Object.entries(familyMs)
          .map(([f, ms]) => `${f} ${(ms / 1000).toFixed(0)} s`)
          .join(', '),
      ],
      ['peak RSS of this process', `${MBf(process.resourceUsage().maxRSS * 1024)} MB (the child-process families report their own)`],
    ],
  ),
);
const cores = os.cpus().length;
const load1 = Number(loadStart.split(' / ')[0]);
const waitShare = (() => {
  let wait = 0;
  let wall = 0;
  for (const r of [...results, ...units.flatMap((u) => u.phases)]) {
    if (Number.isFinite(r.cpu.mainWaitMs)) {
      wait += r.cpu.mainWaitMs;
      wall += r.ms;
    }
  }
  return wall > 0 ? wait / wall : NaN;
})();
if (load1 > cores * 0.5 || (share && share.others > 0.25) || waitShare > 0.1) {
  print();
  print(
    `**Shared machine:** load average ${loadStart} at start and ${loadEnd} at end on ${cores} CPUs; ` +
      (share ? `other processes used ${(share.others * 100).toFixed(0)}% of all CPUs during the run; ` : '') +
      `the benchmark's main thread spent ${(waitShare * 100).toFixed(0)}% of the measured time runnable but waiting for a CPU (/proc/self/schedstat). ` +
      'Absolute figures and tail latencies are inflated and noisy (a descheduled main thread shows up as a latency spike and as event-loop lag); ' +
      'ratios are more robust, but engines ran one after another, not interleaved, so they saw different moments of the load. ' +
      'The "CPU" column of each table says how much the process got: proc = CPU time of all its threads / wall time, wait = main thread waiting for a CPU / wall time.',
  );
}
print();
print('## Settings');
print();
for (const name of args.engines) print(`- **${name}**: ${ENGINE_SETTINGS[name]}`);
print(
  '- Durability compared: sediment (fdatasync within 5 ms) and lmdb (fdatasync after each commit, overlapping the next) sync on their own; ' +
    'classic-level with sync: false never fdatasyncs, so its plain writes are the least durable of the three. fillsync compares durable writes.',
);
print('- Latency: from the call to the promise settling (lmdb reads: the synchronous call), sampled for every operation, in microseconds.');
print('- MB/s: user bytes (key + value for puts and read hits, key only for deletes and misses) per second, 10^6 B.');
if (units.length > 0)
  print(
    `- ${[...new Set(units.map((u) => u.spec.family))].join(', ')}: each engine (and write buffer) in a child process of its own (bench/db-child.ts), ` +
      "with the settings above except the concurrent family's write buffers; keys and values made on the fly (bench/db-data.ts).",
  );
print();

const WORKLOADS = [...new Set(results.map((r) => r.workload))];
if (WORKLOADS.length > 0) print('## Workloads');
for (const w of WORKLOADS) {
  const rows = results.filter((r) => r.workload === w);
  const sed = rows.find((r) => r.engine === 'sediment');
  print();
  print(`### ${w}`);
  print();
  const modes = [...new Set(rows.map((r) => `${r.engine}: ${r.mode}`))];
  print(`Mode: ${modes.join('; ')}.`);
  print();
  const isWrite = rows.some((r) => r.loop);
  print(
    mdTable(
      [
        'engine',
        'ops',
        'ops/s',
        'MB/s',
        'p50 us',
        'p99 us',
        'p99.9 us',
        'max us',
        ...(isWrite ? ['loop lag p99/max ms'] : []),
        'CPU proc / wait',
        'sediment/this ops/s',
        'sediment/this p99',
      ],
      rows.map((r) => [
        r.engine,
        fmtInt(r.ops),
        fmtInt(r.opsPerSec),
        r.mbPerSec.toFixed(1),
        us(r.lat.p50),
        us(r.lat.p99),
        us(r.lat.p999),
        us(r.lat.max),
        ...(isWrite ? [r.loop ? `${r.loop.p99Ms.toFixed(1)} / ${r.loop.maxMs.toFixed(1)}` : '-'] : []),
        `${fmtPct(r.cpu.processMs / r.ms)} / ${Number.isFinite(r.cpu.mainWaitMs) ? fmtPct(r.cpu.mainWaitMs / r.ms) : '-'}`,
        ratio(sed?.opsPerSec, r.opsPerSec),
        ratio(sed?.lat.p99, r.lat.p99),
      ]),
    ),
  );
}

const engines = args.engines;
if (WORKLOADS.length > 0) {
  print();
  print('## Summary (ops/s; ratio = sediment / other, above 1.00x sediment is faster)');
  print();
  print(
    mdTable(
      [
        'workload',
        ...engines.map((e) => `${e} ops/s`),
        ...engines.filter((e) => e !== 'sediment').map((e) => `sed/${e === 'classic-level' ? 'classic' : e}`),
        ...engines.map((e) => `${e === 'classic-level' ? 'classic' : e} p99 us`),
      ],
      WORKLOADS.map((w) => {
        const sed = find(w, 'sediment');
        return [
          w,
          ...engines.map((e) => (find(w, e) ? fmtInt(find(w, e)!.opsPerSec) : '-')),
          ...engines.filter((e) => e !== 'sediment').map((e) => ratio(sed?.opsPerSec, find(w, e)?.opsPerSec)),
          ...engines.map((e) => us(find(w, e)?.lat.p99 ?? NaN)),
        ];
      }),
    ),
  );
}

if (sizes.length > 0) {
  print();
  print('## On-disk size');
  print();
  print(
    "Sum of file sizes in the engine's directory right after the phase (sediment: after its owed compactions finished), WAL/log included; raw = live entries x 116 B. " +
      'sediment deletes a WAL segment (16 MiB by default) only once flushes cover all of it, so up to a segment and a half of already-flushed WAL stays on disk.',
  );
  print();
  print(
    mdTable(
      ['after', 'engine', 'live', 'raw MB', 'on disk MB', 'allocated MB', 'disk/raw', 'breakdown (MB)', 'structure'],
      sizes.map((s) => [
        s.after,
        s.engine,
        fmtInt(s.liveEntries),
        MBf(s.rawBytes),
        MBf(s.usage.apparent),
        MBf(s.usage.allocated),
        s.rawBytes > 0 ? fmtX(s.usage.apparent / s.rawBytes) : '-',
        Object.entries(s.usage.bySuffix)
          .filter(([, b]) => b >= 1e5)
          .map(([k, b]) => `${k} ${MBf(b)}`)
          .join(', '),
        s.describe,
      ]),
    ),
  );
  const ratiosAt = (after: string): string =>
    ['classic-level', 'lmdb']
      .map((o) => {
        const a = sizes.find((s) => s.after === after && s.engine === 'sediment');
        const b = sizes.find((s) => s.after === after && s.engine === o);
        return a && b ? `sediment/${o} ${fmtX(a.usage.apparent / b.usage.apparent)}` : '';
      })
      .filter(Boolean)
      .join(', ');
  print();
  for (const after of [...new Set(sizes.map((s) => s.after))]) if (ratiosAt(after)) print(`- size after ${after}: ${ratiosAt(after)}`);
}

const writes = results.filter((r) => r.io || r.sediment);
if (writes.length > 0) {
  print();
  print('## Write amplification');
  print();
  print(
    'Whole phase (untimed completion and sediment settle included). wchar: bytes this process handed to write(2)/pwrite(2), all threads ' +
      '(/proc/self/io; WAL/log, tables, lmdb pages, sediment WAL preallocation zeros), divided by user bytes. ' +
      'classic-level compacts in the background after a phase ends, so some of its I/O lands in the next phase. ' +
      'sediment tables WA = (flushBytes + compactionBytesWritten) / userBytes from db.stats() (tables only, WAL not included). ' +
      '(/proc/self/io write_bytes is in the JSON but not shown: this kernel charges a whole large folio each time one is dirtied, so small synced writes look hundreds of times larger.)',
  );
  print();
  print(
    mdTable(
      [
        'phase',
        'engine',
        'untimed ops',
        'user MB',
        'wchar MB',
        'wchar/user',
        'sediment tables WA',
        'flush MB',
        'compaction MB r/w',
        'settle s',
      ],
      writes.map((r) => [
        r.workload,
        r.engine,
        fmtInt(r.untimedOps),
        MBf(r.userBytes),
        r.io ? MBf(r.io.wchar) : '-',
        r.io ? fmtX(r.io.wchar / r.userBytes) : '-',
        r.sediment ? fmtX(r.sediment.writeAmplification) : '-',
        r.sediment ? MBf(r.sediment.flushBytes) : '-',
        r.sediment ? `${MBf(r.sediment.compactionBytesRead)} / ${MBf(r.sediment.compactionBytesWritten)}` : '-',
        r.settleMs !== undefined ? (r.settleMs / 1000).toFixed(1) : '-',
      ]),
    ),
  );
  const cum = sizes.filter((s) => s.engine === 'sediment' && s.sedimentWA !== undefined);
  if (cum.length > 0)
    print(
      `\nsediment cumulative tables WA (db.stats().writeAmplification since open): ${cum.map((s) => `after ${s.after} ${fmtX(s.sedimentWA!)}`).join(', ')}.`,
    );
}

const sedWrites = results.filter((r) => r.sediment);
if (sedWrites.length > 0) {
  print();
  print('## sediment: put latency while compaction runs');
  print();
  print(
    "Every put's latency, split by whether it completed while a compaction was running (stats() sampled every 5 ms: compaction work pending, " +
      'i.e. L0 >= 4 tables or a level past its target, or the compaction counter moved) and while a flush was running (a frozen memtable waiting). ' +
      "Compactions/flushes finished, puts > 100 ms and db.stats() stall counters cover the timed part only (writeStalls counts the first writer of each stall: writers queued behind it are not counted); settle s: how long sediment took, once the phase's writes were done, " +
      'to finish the compactions it owed. Loop lag: how late a 1 ms timer fired (monitorEventLoopDelay) during the timed part.',
  );
  print();
  print(
    mdTable(
      [
        'phase',
        'compactions / flushes finished',
        'time compacting',
        'puts during / outside',
        'p50 us during / outside',
        'p99 us during / outside',
        'p99.9 us during / outside',
        'max us during / outside',
        'p99 us during flush',
        'puts > 100 ms',
        'writeStalls (writeStallMs)',
        'writeSlowdowns',
        'loop lag p99 / max ms',
        'settle s',
      ],
      sedWrites.map((r) => {
        const s = r.sediment!;
        const d = s.duringCompaction;
        const o = s.outsideCompaction;
        return [
          `${r.workload} (${r.mode})`,
          `${fmtInt(s.compactions)} / ${fmtInt(s.flushes)}`,
          `${(s.compactionShare * 100).toFixed(0)}%`,
          `${fmtInt(d.count)} / ${fmtInt(o.count)}`,
          `${us(d.p50)} / ${us(o.p50)}`,
          `${us(d.p99)} / ${us(o.p99)}`,
          `${us(d.p999)} / ${us(o.p999)}`,
          `${us(d.max)} / ${us(o.max)}`,
          us(s.duringFlush.p99),
          fmtInt(s.putsOver100ms),
          `${fmtInt(s.writeStalls)} (${fmtInt(s.writeStallMs)})`,
          fmtInt(s.writeSlowdowns),
          r.loop ? `${r.loop.p99Ms.toFixed(1)} / ${r.loop.maxMs.toFixed(1)}` : '-',
          r.settleMs !== undefined ? (r.settleMs / 1000).toFixed(1) : '-',
        ];
      }),
    ),
  );
}

const fillrandom1: FillRandom1 | undefined = results.some((r) => r.family === 'fillrandom-1')
  ? Object.fromEntries(results.filter((r) => r.family === 'fillrandom-1').map((r) => [r.engine, r.opsPerSec]))
  : undefined;
const goals = targets(units, fillrandom1);
print(unitReport(units, fillrandom1, goals));

if (notes.length > 0) {
  print();
  print('## Notes');
  print();
  for (const n of notes) print(`- ${n}`);
}

console.log(out.join('\n'));

// --- JSON and chart --------------------------------------------------------------------------

const jsonText = `${JSON.stringify(
  {
    startedAt,
    argv: process.argv.slice(2),
    machine: Object.fromEntries(machineInfo()),
    loadStart,
    loadEnd,
    cpuShare: share,
    totalMs,
    familyMs,
    n: N,
    big: args.big,
    big1k: args.big1k,
    keyBytes: KEY,
    valueBytes: VALUE,
    inflight: W,
    batch: args.batch,
    quick: args.quick,
    settings: Object.fromEntries(args.engines.map((e) => [e, ENGINE_SETTINGS[e]])),
    targets: goals,
    results,
    sizes,
    units,
    notes,
  },
  null,
  2,
)}\n`;

if (args.json) {
  fs.writeFileSync(args.json, jsonText);
  progress(`wrote ${args.json}`);
}

if (args.resultsDir) {
  const dir = args.resultsDir;
  fs.mkdirSync(dir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const json = [path.join(dir, `${stamp}.json`), path.join(dir, 'latest.json')];
  for (const f of json) fs.writeFileSync(f, jsonText);
  const md = path.join(dir, 'latest.md');
  fs.writeFileSync(md, `${out.join('\n')}\n`);
  // The repository's formatter checks JSON and markdown under bench/ (npm test runs biome check):
  // format them as it would, so that a run's files can be committed as they are.
  try {
    const biome = fileURLToPath(new URL('../node_modules/@biomejs/biome/bin/biome', import.meta.url));
    execFileSync(process.execPath, [biome, 'format', '--write', ...json, md], { stdio: 'ignore' });
  } catch {
    // no biome, or the directory is outside the project: the files are valid as written
  }
  try {
    const title = `sediment DB benchmark, ${startedAt.toISOString()}${args.quick ? ' (--quick: small n, smoke test)' : ''}`;
    fs.writeFileSync(path.join(dir, 'latest.svg'), await renderChart(chartData(results, units, title)));
  } catch (err) {
    progress(`the chart failed: ${String(err)}`);
  }
  progress(`wrote ${json.join(', ')}, latest.md and latest.svg`);
}
