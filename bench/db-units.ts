/**
 * The workloads of issues #10 and #11 (concurrent, fillbatch, reads, load, load-1k), one
 * (workload family, engine, write buffer) per child process: bench/db.ts starts
 * bench/db-child.ts for each, so that every engine starts with a fresh heap (GC figures) and a
 * fresh resident set (peak RSS), and nothing an earlier engine left behind is counted.
 *
 * - concurrent: `inflight` (64) async loops, each awaiting its own put: n random fills, then n
 *   random overwrites (no pause between), then (sediment) the owed compactions, untimed.
 * - fillbatch: n random puts in batches of `batch` (1000), each batch awaited before the next,
 *   through each engine's bulk call (sediment `db.batch`, classic-level `db.batch`, lmdb
 *   `db.transaction` of `putSync`s).
 * - load, load-1k: n random puts in batches of `batch`, default options, puts/s per segment of
 *   `segment` puts, peak RSS; then (after sediment's owed compactions) random gets of loaded keys.
 * - reads: n entries loaded in batches (untimed), owed compactions done, then random gets of
 *   existing keys (`await get` one at a time, and getSync), of missing keys, and full scans.
 *
 * @module
 */
import type { DBStats } from '../src/db/stats.js';
import { type EngineName, type EngineOptions, type Engine, type SedimentEngine, compactionNeeded, openEngine } from './db-engines.js';
import { Keys, Values, permutation, randomIndexes } from './db-data.js';
import {
  type CpuCounters,
  type GcStats,
  type LoopDelay,
  type Percentiles,
  cpuDelta,
  drive,
  gcMonitor,
  loopDelayMonitor,
  now,
  percentiles,
  readCpu,
  rssSampler,
  sleep,
} from './db-run.js';

export const UNIT_FAMILIES = ['concurrent', 'fillbatch', 'reads', 'load', 'load-1k'] as const;
export type UnitFamily = (typeof UNIT_FAMILIES)[number];

export interface UnitSpec {
  family: UnitFamily;
  engine: EngineName;
  /** Engine and, where set, write buffer: 'sediment 4 MiB'. */
  label: string;
  /** Write buffer (sediment memtableSize, classic-level writeBufferSize); undefined: default. */
  writeBuffer: number | undefined;
  /** Entries (distinct keys) to write. */
  n: number;
  valueBytes: number;
  /** Puts in flight (concurrent). */
  inflight: number;
  /** Puts per batch (fillbatch, load, and the untimed loads). */
  batch: number;
  /** Upper bound of each timed write phase (and of a whole load), ms. */
  capMs: number;
  /** Duration of each timed random-read phase, ms. */
  readMs: number;
  /** Load: puts per segment of the puts/s series. */
  segment: number;
  /** `--src`: sediment from the sources (passed on to the child). */
  src: boolean;
}

/** The stats() counters a phase reports the change of. */
type SedimentCounters = Pick<
  DBStats,
  | 'writeStalls'
  | 'writeStallMs'
  | 'writeSlowdowns'
  | 'writeSlowdownMs'
  | 'flushes'
  | 'compactions'
  | 'userBytes'
  | 'flushBytes'
  | 'compactionBytesRead'
  | 'compactionBytesWritten'
>;

/** What sediment's stats() counters did over a phase. */
export interface SedimentDelta extends SedimentCounters {
  /** (flushBytes + compactionBytesWritten) / userBytes over the phase. */
  writeAmplification: number;
  /** Most L0 tables and frozen memtables seen (stats() sampled every 100 ms). */
  maxL0Tables: number;
  maxFrozenMemtables: number;
}

export interface PhaseResult {
  workload: string;
  /** How the engine was driven: 'await get', 'getSync', '64 in flight', 'batches of 1000', ... */
  mode: string;
  ops: number;
  ms: number;
  opsPerSec: number;
  /** Latency in microseconds, per operation (per batch where `latPer` is 'batch'). */
  lat: Percentiles | undefined;
  latPer: 'op' | 'batch';
  eld: LoopDelay | undefined;
  gc: GcStats | undefined;
  cpu: CpuCounters;
  /** Peak RSS sampled during the phase, bytes. */
  rss: number | undefined;
  sediment: SedimentDelta | undefined;
  /** False when the time cap stopped the phase before n operations. */
  complete: boolean;
}

export interface LoadSegment {
  /** Puts loaded at the end of the segment. */
  upTo: number;
  ms: number;
  opsPerSec: number;
  writeStalls: number | undefined;
  writeStallMs: number | undefined;
  writeSlowdowns: number | undefined;
  /** L0 tables at the end of the segment (sediment). */
  l0Tables: number | undefined;
  rss: number;
}

export interface LoadResult {
  loaded: number;
  segments: LoadSegment[];
  /** Peak of process.memoryUsage.rss() sampled every 100 ms during the load, bytes. */
  peakRss: number;
  /** process.resourceUsage().maxRSS at the end of the load (the kernel's high-water mark), bytes. */
  maxRss: number;
  /** sediment: time its owed compactions took after the load, before the reads. */
  settleMs: number | undefined;
}

export interface UnitResult {
  spec: UnitSpec;
  phases: PhaseResult[];
  load: LoadResult | undefined;
  /** sediment: write amplification including the owed compactions finished after the last write phase. */
  settledWriteAmplification: number | undefined;
  settleMs: number | undefined;
  /** Engine state at the end (levels, tables, pages). */
  describe: string;
  notes: string[];
}

// --- helpers ---------------------------------------------------------------------------------

const isSediment = (e: Engine): e is SedimentEngine => e.name === 'sediment';

function progress(spec: UnitSpec, message: string): void {
  process.stderr.write(`  .. ${spec.family}: ${spec.label} ${message}\n`);
}

/** Waits for sediment's owed compactions and flushes (up to 5 min); undefined for the others. */
async function settle(e: Engine, notes: string[]): Promise<number | undefined> {
  if (!isSediment(e)) return undefined;
  const t0 = now();
  for (;;) {
    const s = e.stats();
    if (!compactionNeeded(s) && s.frozenMemtables === 0) break;
    if (now() - t0 > 300_000) {
      notes.push('sediment did not finish its owed compactions within 300 s');
      break;
    }
    await sleep(20);
  }
  return now() - t0;
}

/** A counter a phase reports the change of (one of {@link SedimentCounters}). */
type Counter = keyof SedimentCounters;

/** What {@link startMeasures} collected over a phase, before any statistics are computed. */
interface Measures {
  eld: LoopDelay;
  gc: GcStats;
  cpu: CpuCounters;
  rss: number;
  sediment: SedimentDelta | undefined;
}

/**
 * Starts measuring a phase: event-loop delay, GC pauses, CPU, peak RSS and (sediment, for
 * writes) its counters. `stop()` does nothing heavy, so that measures of an enclosing run do not
 * see it; percentiles are computed afterwards ({@link phaseResult}).
 */
function startMeasures(e: Engine, write: boolean): { stop(): Measures } {
  const sed = write && isSediment(e) ? e : undefined;
  const before = sed?.stats();
  let maxL0 = 0;
  let maxFrozen = 0;
  const watch = sed
    ? setInterval(() => {
        const s = sed.stats();
        maxL0 = Math.max(maxL0, s.levels[0]?.tables ?? 0);
        maxFrozen = Math.max(maxFrozen, s.frozenMemtables);
      }, 100)
    : undefined;
  const rss = rssSampler();
  const gc = gcMonitor();
  const eld = loopDelayMonitor();
  const cpu0 = readCpu();
  return {
    stop() {
      const cpu = cpuDelta(cpu0, readCpu());
      const loop = eld.stop();
      const gcs = gc.stop();
      const peak = rss.stop();
      clearInterval(watch);
      let sediment: SedimentDelta | undefined;
      if (sed && before) {
        const after = sed.stats();
        maxL0 = Math.max(maxL0, after.levels[0]?.tables ?? 0);
        maxFrozen = Math.max(maxFrozen, after.frozenMemtables);
        sediment = sedimentDelta((k) => after[k] - before[k], maxL0, maxFrozen);
      }
      return { eld: loop, gc: gcs, cpu, rss: peak, sediment };
    },
  };
}

function sedimentDelta(d: (k: Counter) => number, maxL0Tables: number, maxFrozenMemtables: number): SedimentDelta {
  return {
    writeStalls: d('writeStalls'),
    writeStallMs: d('writeStallMs'),
    writeSlowdowns: d('writeSlowdowns'),
    writeSlowdownMs: d('writeSlowdownMs'),
    flushes: d('flushes'),
    compactions: d('compactions'),
    userBytes: d('userBytes'),
    flushBytes: d('flushBytes'),
    compactionBytesRead: d('compactionBytesRead'),
    compactionBytesWritten: d('compactionBytesWritten'),
    writeAmplification: d('userBytes') > 0 ? (d('flushBytes') + d('compactionBytesWritten')) / d('userBytes') : 0,
    maxL0Tables,
    maxFrozenMemtables,
  };
}

interface Timed {
  ops: number;
  ms: number;
  lat: Float64Array | undefined;
  complete: boolean;
}

function phaseResult(t: Timed, m: Measures, what: { workload: string; mode: string; latPer: 'op' | 'batch' }): PhaseResult {
  return {
    workload: what.workload,
    mode: what.mode,
    ops: t.ops,
    ms: t.ms,
    opsPerSec: t.ops / (t.ms / 1000),
    lat: t.lat ? percentiles(t.lat) : undefined,
    latPer: what.latPer,
    eld: m.eld,
    gc: m.gc,
    cpu: m.cpu,
    rss: m.rss,
    sediment: m.sediment,
    complete: t.complete,
  };
}

/** Measures one timed phase (see {@link startMeasures}) around `body`, which returns the operations done and the latencies. */
async function measured(
  e: Engine,
  body: () => Promise<Timed>,
  what: { workload: string; mode: string; latPer: 'op' | 'batch'; write: boolean },
): Promise<PhaseResult> {
  const m = startMeasures(e, what.write);
  const t = await body();
  return phaseResult(t, m.stop(), what);
}

/** Writes entries [from, to) of `order` (values of generation g) in batches, untimed. */
async function loadUntimed(
  e: Engine,
  keys: Keys,
  values: Values,
  order: (i: number) => number,
  range: { from: number; to: number; batch: number; g: number },
) {
  const { from, to, batch, g } = range;
  for (let at = from; at < to; at += batch) {
    const ops: [Buffer, Buffer][] = [];
    for (let i = at; i < Math.min(to, at + batch); i++) {
      const j = order(i);
      ops.push([keys.key(j), values.value(j, g)]);
    }
    await e.bulk(ops);
  }
}

/** Reads a sample of keys outside the clock and checks what comes back. */
async function verify(e: Engine, keys: Keys, values: Values, n: number, g: number, what: string): Promise<void> {
  const idx = randomIndexes(n, 99);
  for (let s = 0; s < Math.min(n, 200); s++) {
    const j = idx();
    const got = await e.get(keys.key(j));
    if (!got || Buffer.compare(got, values.value(j, g)) !== 0)
      throw new Error(`${e.name} ${what}: key ${j} read back wrong (${got?.length ?? 'nothing'})`);
    if ((await e.get(keys.key(j, true))) !== undefined) throw new Error(`${e.name} ${what}: missing key ${j} found`);
  }
}

/** sync: the engine's synchronous read in a loop; otherwise `await get` one at a time (lmdb: its get is synchronous). */
function readMode(e: Engine, sync: boolean): string {
  if (e.name === 'lmdb') return 'get (synchronous)';
  return sync ? 'getSync' : 'await get, one at a time';
}

/**
 * Calls `op` one at a time for `maxMs`, awaiting it only if it returns a promise (a synchronous
 * API runs as a plain loop), with every call's latency in microseconds, stored in 1M-sample
 * chunks so that a fast loop needs no array sized in advance.
 */
async function timedLoop(maxMs: number, op: () => unknown): Promise<{ ops: number; ms: number; lat: Float64Array }> {
  const CHUNK = 1 << 20;
  const chunks: Float64Array[] = [];
  let cur = new Float64Array(CHUNK);
  let k = 0;
  let ops = 0;
  const t0 = now();
  const deadline = t0 + maxMs;
  for (;;) {
    const s = now();
    const r = op();
    if (r !== undefined && r !== null && typeof (r as { then?: unknown }).then === 'function') await r;
    const t = now();
    if (k === CHUNK) {
      chunks.push(cur);
      cur = new Float64Array(CHUNK);
      k = 0;
    }
    cur[k++] = (t - s) * 1000;
    ops++;
    if (t >= deadline) break;
  }
  const ms = now() - t0;
  chunks.push(cur.subarray(0, k));
  const lat = new Float64Array(ops);
  let at = 0;
  for (const c of chunks) {
    lat.set(c, at);
    at += c.length;
  }
  return { ops, ms, lat };
}

async function randomReads(
  e: Engine,
  spec: UnitSpec,
  keys: Keys,
  n: number,
  opts: { workload: string; sync: boolean; miss: boolean; seed: number },
) {
  const idx = randomIndexes(n, opts.seed);
  const get = opts.sync ? e.getSync!.bind(e) : e.get.bind(e);
  progress(spec, `${opts.workload} (${readMode(e, opts.sync)})`);
  return measured(
    e,
    async () => {
      const r = await timedLoop(spec.readMs, () => get(keys.key(idx(), opts.miss)));
      return { ...r, complete: true };
    },
    { workload: opts.workload, mode: readMode(e, opts.sync), latPer: 'op', write: false },
  );
}

// --- families --------------------------------------------------------------------------------

async function concurrent(e: Engine, spec: UnitSpec, r: UnitResult): Promise<void> {
  const keys = new Keys();
  const values = new Values(spec.valueBytes);
  const mode = `${spec.inflight} in flight`;
  // The two phases as one run (the figures the targets use) around the two phases' own measures;
  // every percentile is computed once both have stopped, so that sorting a phase's latencies
  // does not show up as event-loop delay of the whole run.
  const whole = startMeasures(e, true);
  const timed: [string, Timed, Measures][] = [];
  for (const [workload, seed, g] of [
    ['fillrandom', 1, 0],
    ['overwrite', 2, 1],
  ] as const) {
    const order = permutation(spec.n, seed);
    progress(spec, `${workload} (${mode})`);
    const m = startMeasures(e, true);
    const run = await drive(spec.n, spec.inflight, spec.capMs, (i) => {
      const j = order(i);
      return e.put(keys.key(j), values.value(j, g));
    });
    timed.push([workload, { ops: run.ops, ms: run.ms, lat: run.lat, complete: run.ops >= spec.n }, m.stop()]);
    if (run.ops < spec.n) {
      r.notes.push(`${spec.label} ${workload}: ${run.ops} puts timed (${spec.capMs / 1000} s cap), the rest written untimed in batches`);
      await loadUntimed(e, keys, values, order, { from: run.ops, to: spec.n, batch: 10_000, g });
    }
  }
  const all = whole.stop();
  for (const [workload, t, m] of timed) r.phases.push(phaseResult(t, m, { workload, mode, latPer: 'op' }));
  const lat = new Float64Array(timed.reduce((n, [, t]) => n + t.ops, 0));
  let at = 0;
  for (const [, t] of timed) {
    lat.set(t.lat!, at);
    at += t.ops;
  }
  r.phases.push(
    phaseResult(
      { ops: lat.length, ms: timed.reduce((ms, [, t]) => ms + t.ms, 0), lat, complete: timed.every(([, t]) => t.complete) },
      all,
      { workload: 'fillrandom + overwrite', mode, latPer: 'op' },
    ),
  );
  if (isSediment(e) && all.sediment) {
    const s0 = e.stats();
    progress(spec, 'finishing owed compactions (untimed)');
    r.settleMs = await settle(e, r.notes);
    const s1 = e.stats();
    const d = all.sediment;
    r.settledWriteAmplification =
      d.userBytes > 0
        ? (d.flushBytes +
            d.compactionBytesWritten +
            (s1.flushBytes - s0.flushBytes) +
            (s1.compactionBytesWritten - s0.compactionBytesWritten)) /
          d.userBytes
        : 0;
  }
  await verify(e, keys, values, spec.n, 1, 'after overwrite');
}

async function fillbatch(e: Engine, spec: UnitSpec, r: UnitResult): Promise<void> {
  const keys = new Keys();
  const values = new Values(spec.valueBytes);
  const order = permutation(spec.n, 1);
  const mode = `batches of ${spec.batch}, each awaited`;
  progress(spec, `fillbatch (${mode})`);
  const phase = await measured(
    e,
    async () => {
      const batches = Math.ceil(spec.n / spec.batch);
      const lat = new Float64Array(batches);
      const t0 = now();
      const deadline = t0 + spec.capMs;
      let done = 0;
      let b = 0;
      for (; b < batches; b++) {
        const s = now();
        const ops: [Buffer, Buffer][] = [];
        for (let i = b * spec.batch; i < Math.min(spec.n, (b + 1) * spec.batch); i++) {
          const j = order(i);
          ops.push([keys.key(j), values.value(j, 0)]);
        }
        await e.bulk(ops);
        const t = now();
        lat[b] = (t - s) * 1000;
        done += ops.length;
        if (t >= deadline) {
          b++;
          break;
        }
      }
      return { ops: done, ms: now() - t0, lat: lat.subarray(0, b), complete: done >= spec.n };
    },
    { workload: 'fillbatch', mode, latPer: 'batch', write: true },
  );
  r.phases.push(phase);
  if (!phase.complete) r.notes.push(`${spec.label} fillbatch: stopped by the ${spec.capMs / 1000} s cap after ${phase.ops} puts`);
}

async function load(e: Engine, spec: UnitSpec, r: UnitResult): Promise<void> {
  const keys = new Keys();
  const values = new Values(spec.valueBytes);
  const order = permutation(spec.n, 5);
  const mode = `batches of ${spec.batch}, each awaited`;
  const workload = `load ${spec.valueBytes >= 1024 ? `${spec.valueBytes / 1024} KiB` : `${spec.valueBytes} B`} values`;
  progress(spec, `${workload}: ${spec.n} random puts (${mode})`);
  const sed = isSediment(e) ? e : undefined;
  const segments: LoadSegment[] = [];
  let rssWatch: ReturnType<typeof rssSampler> | undefined;
  const phase = await measured(
    e,
    async () => {
      rssWatch = rssSampler();
      const batches = Math.ceil(spec.n / spec.batch);
      const lat = new Float64Array(batches);
      const t0 = now();
      const deadline = t0 + spec.capMs;
      let segStart = t0;
      let segStats = sed?.stats();
      let done = 0;
      let b = 0;
      let stopped = false;
      for (; b < batches && !stopped; b++) {
        const s = now();
        const ops: [Buffer, Buffer][] = [];
        for (let i = b * spec.batch; i < Math.min(spec.n, (b + 1) * spec.batch); i++) {
          const j = order(i);
          ops.push([keys.key(j), values.value(j, 0)]);
        }
        await e.bulk(ops);
        const t = now();
        lat[b] = (t - s) * 1000;
        done += ops.length;
        if (t >= deadline) stopped = true;
        if (done % spec.segment === 0 || done === spec.n || stopped) {
          const st = sed?.stats();
          const prevUpTo = segments.length > 0 ? segments[segments.length - 1]!.upTo : 0;
          segments.push({
            upTo: done,
            ms: t - segStart,
            opsPerSec: (done - prevUpTo) / ((t - segStart) / 1000),
            writeStalls: st && segStats ? st.writeStalls - segStats.writeStalls : undefined,
            writeStallMs: st && segStats ? st.writeStallMs - segStats.writeStallMs : undefined,
            writeSlowdowns: st && segStats ? st.writeSlowdowns - segStats.writeSlowdowns : undefined,
            l0Tables: st?.levels[0]?.tables,
            rss: rssWatch.peek(),
          });
          progress(spec, `${workload}: ${done} puts, ${Math.round(segments[segments.length - 1]!.opsPerSec)}/s in the last segment`);
          segStart = t;
          segStats = st;
        }
      }
      return { ops: done, ms: now() - t0, lat: lat.subarray(0, b), complete: done >= spec.n };
    },
    { workload, mode, latPer: 'batch', write: true },
  );
  const peakRss = rssWatch!.stop();
  const maxRss = process.resourceUsage().maxRSS * 1024;
  r.phases.push(phase);
  if (!phase.complete) r.notes.push(`${spec.label} ${workload}: stopped by the ${spec.capMs / 1000} s cap after ${phase.ops} puts`);
  progress(spec, 'finishing owed compactions (untimed)');
  const s0 = sed?.stats();
  const settleMs = await settle(e, r.notes);
  r.settleMs = settleMs;
  const s1 = sed?.stats();
  const d = phase.sediment;
  if (d && s0 && s1 && d.userBytes > 0) {
    r.settledWriteAmplification =
      (d.flushBytes +
        d.compactionBytesWritten +
        (s1.flushBytes - s0.flushBytes) +
        (s1.compactionBytesWritten - s0.compactionBytesWritten)) /
      d.userBytes;
  }
  r.load = { loaded: phase.ops, segments, peakRss, maxRss, settleMs };
  if (phase.complete) await verify(e, keys, values, phase.ops, 0, `after ${workload}`);
  // Random reads of loaded keys; only a complete load has exactly keys [0, n).
  if (phase.complete)
    r.phases.push(
      await randomReads(e, spec, keys, phase.ops, { workload: `readrandom after ${workload}`, sync: false, miss: false, seed: 11 }),
    );
}

async function reads(e: Engine, spec: UnitSpec, r: UnitResult): Promise<void> {
  const keys = new Keys();
  const values = new Values(spec.valueBytes);
  progress(spec, `loading ${spec.n} entries in batches of ${spec.batch} (untimed)`);
  await loadUntimed(e, keys, values, permutation(spec.n, 1), { from: 0, to: spec.n, batch: spec.batch, g: 0 });
  r.settleMs = await settle(e, r.notes);
  await verify(e, keys, values, spec.n, 0, 'after the load');
  r.phases.push(await randomReads(e, spec, keys, spec.n, { workload: 'readrandom', sync: false, miss: false, seed: 4 }));
  if (e.getSync && e.name !== 'lmdb')
    r.phases.push(await randomReads(e, spec, keys, spec.n, { workload: 'readrandom', sync: true, miss: false, seed: 5 }));
  r.phases.push(await randomReads(e, spec, keys, spec.n, { workload: 'readmissing', sync: false, miss: true, seed: 6 }));
  if (e.getSync && e.name !== 'lmdb')
    r.phases.push(await randomReads(e, spec, keys, spec.n, { workload: 'readmissing', sync: true, miss: true, seed: 7 }));
  const scans: [string, (f: (k: number, v: number) => void) => Promise<void>][] = [
    [e.name === 'lmdb' ? 'for-of over getRange()' : 'for await over iterator()', (f) => e.scan(f)],
  ];
  if (e.scanNextv) scans.push(['iterator().nextv(1000) until []', (f) => e.scanNextv!(1000, f)]);
  for (const [mode, scan] of scans) {
    progress(spec, `readseq (${mode})`);
    r.phases.push(
      await measured(
        e,
        async () => {
          let n = 0;
          const t0 = now();
          await scan(() => {
            n++;
          });
          const ms = now() - t0;
          if (n !== spec.n) throw new Error(`${e.name} readseq (${mode}) saw ${n} entries, expected ${spec.n}`);
          return { ops: n, ms, lat: undefined, complete: true };
        },
        { workload: 'readseq', mode, latPer: 'op', write: false },
      ),
    );
  }
}

/** Runs one unit in this process: opens the engine in `dir`, runs the family, closes it. */
export async function runUnit(spec: UnitSpec, dir: string): Promise<UnitResult> {
  const options: EngineOptions = { writeBuffer: spec.writeBuffer };
  const e = await openEngine(spec.engine, dir, options);
  const r: UnitResult = {
    spec,
    phases: [],
    load: undefined,
    settledWriteAmplification: undefined,
    settleMs: undefined,
    describe: '',
    notes: [],
  };
  try {
    if (spec.family === 'concurrent') await concurrent(e, spec, r);
    else if (spec.family === 'fillbatch') await fillbatch(e, spec, r);
    else if (spec.family === 'reads') await reads(e, spec, r);
    else await load(e, spec, r);
    r.describe = e.describe();
  } finally {
    await e.close();
  }
  return r;
}
