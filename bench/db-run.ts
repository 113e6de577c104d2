/**
 * Measuring machinery of bench/db.ts: the operation driver (bounded concurrency, one latency
 * sample per operation), percentiles, the event-loop lag monitor, sediment's background-work
 * tracker, /proc/self/io counters and on-disk sizes.
 *
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import type { DBStats } from '../src/index.js';
import { compactionNeeded } from './db-engines.js';

export const now = (): number => performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// --- driver ----------------------------------------------------------------------------------

export interface Run {
  ops: number;
  ms: number;
  /** Latency of each operation in microseconds, in issue order. */
  lat: Float64Array;
  /** performance.now() at each operation's completion, when asked for. */
  ends: Float64Array | undefined;
}

/**
 * Runs `op(0)`, `op(1)`, ... with up to `concurrency` operations in flight (that many async
 * loops, each awaiting its own operation), until `total` were issued or `maxMs` passed. An
 * operation's latency is from its call to its promise settling. An operation that returns a
 * plain value (a synchronous API) is not awaited: its loop just goes on, so a synchronous engine
 * runs as a plain synchronous loop whatever the concurrency.
 *
 * Timestamps are `performance.now()` (a double, ~40 ns resolution here, no allocation per call),
 * written into preallocated Float64Arrays: every operation is sampled.
 */
export async function drive(total: number, concurrency: number, maxMs: number, op: (i: number) => unknown, wantEnds = false): Promise<Run> {
  const lat = new Float64Array(total);
  const ends = wantEnds ? new Float64Array(total) : undefined;
  let next = 0;
  let stop = false;
  const t0 = now();
  const deadline = t0 + maxMs;
  const worker = async (): Promise<void> => {
    while (!stop && next < total) {
      const i = next++;
      const s = now();
      const r = op(i);
      if (r !== undefined && r !== null && typeof (r as { then?: unknown }).then === 'function') await r;
      const e = now();
      lat[i] = (e - s) * 1000;
      if (ends) ends[i] = e;
      if (e >= deadline) stop = true;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  const ms = now() - t0;
  return { ops: next, ms, lat: lat.subarray(0, next), ends: ends?.subarray(0, next) };
}

// --- statistics ------------------------------------------------------------------------------

export interface Percentiles {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Percentiles (nearest rank) of `values`; sorts a copy. */
export function percentiles(values: ArrayLike<number>): Percentiles {
  const n = values.length;
  if (n === 0) return { count: 0, p50: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return { count: n, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: sorted[n - 1]!, mean: sum / n };
}

// --- event loop ------------------------------------------------------------------------------

export interface LoopLag {
  p99Ms: number;
  maxMs: number;
  /** Timer samples taken; few samples mean long event-loop turns. */
  samples: number;
}

/**
 * perf_hooks.monitorEventLoopDelay at 1 ms resolution: how late a 1 ms timer fires. If the
 * timer never fired, the loop never turned during the run: the lag is the whole run.
 */
export function loopLagMonitor(): { stop(): LoopLag } {
  const h = monitorEventLoopDelay({ resolution: 1 });
  const t0 = now();
  h.enable();
  return {
    stop() {
      h.disable();
      if (h.count === 0) {
        const ms = now() - t0;
        return { p99Ms: ms, maxMs: ms, samples: 0 };
      }
      // Values are in ns and include the 1 ms timer period itself.
      return { p99Ms: h.percentile(99) / 1e6, maxMs: h.max / 1e6, samples: h.count };
    },
  };
}

/** Event-loop delay over a run: perf_hooks.monitorEventLoopDelay percentiles, in ms. */
export interface LoopDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
}

/**
 * perf_hooks.monitorEventLoopDelay({ resolution: 1 }): Node records the interval between ticks
 * of a 1 ms timer, so an idle loop reads about 1 ms and a loop blocked for 20 ms reads about 21.
 * If the timer never fired, the loop never turned: every figure is the whole run.
 */
export function loopDelayMonitor(): { stop(): LoopDelay } {
  const h = monitorEventLoopDelay({ resolution: 1 });
  const t0 = now();
  h.enable();
  return {
    stop() {
      h.disable();
      if (h.count === 0) {
        const ms = now() - t0;
        return { p50Ms: ms, p99Ms: ms, maxMs: ms, samples: 0 };
      }
      return { p50Ms: h.percentile(50) / 1e6, p99Ms: h.percentile(99) / 1e6, maxMs: h.max / 1e6, samples: h.count };
    },
  };
}

// --- garbage collection ----------------------------------------------------------------------

/** Garbage-collection pauses of the main thread's heap during a run (PerformanceObserver 'gc'). */
export interface GcStats {
  /** Sum of the pauses, ms. */
  totalMs: number;
  /** totalMs / wall time of the run. */
  share: number;
  count: number;
  /** Pauses of at least 2 ms and at least 5 ms. */
  over2ms: number;
  over5ms: number;
  maxMs: number;
  /** Pauses and their total by kind: minor (scavenge), major (mark-compact), incremental, weakcb. */
  byKind: Record<string, { count: number; ms: number }>;
}

const GC_KINDS: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };

/**
 * Collects the 'gc' performance entries whose pause started during the run. Entries are
 * delivered asynchronously; stop() takes the ones still buffered.
 */
export function gcMonitor(): { stop(): GcStats } {
  const entries: PerformanceEntry[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) entries.push(e);
  });
  obs.observe({ entryTypes: ['gc'] });
  const t0 = now();
  return {
    stop() {
      const t1 = now();
      for (const e of obs.takeRecords()) entries.push(e);
      obs.disconnect();
      const s: GcStats = { totalMs: 0, share: 0, count: 0, over2ms: 0, over5ms: 0, maxMs: 0, byKind: {} };
      for (const e of entries) {
        if (e.startTime < t0 || e.startTime > t1) continue;
        const d = e.duration;
        s.totalMs += d;
        s.count++;
        if (d >= 2) s.over2ms++;
        if (d >= 5) s.over5ms++;
        s.maxMs = Math.max(s.maxMs, d);
        const kind = GC_KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other';
        const k = s.byKind[kind] ?? { count: 0, ms: 0 };
        s.byKind[kind] = k;
        k.count++;
        k.ms += d;
      }
      s.share = t1 > t0 ? s.totalMs / (t1 - t0) : 0;
      return s;
    },
  };
}

// --- memory ----------------------------------------------------------------------------------

/** Largest resident set size seen, sampled every `everyMs` (process.memoryUsage.rss()), in bytes. */
export function rssSampler(everyMs = 100): { peek(): number; stop(): number } {
  let max = process.memoryUsage.rss();
  const timer = setInterval(() => {
    max = Math.max(max, process.memoryUsage.rss());
  }, everyMs);
  return {
    peek: () => Math.max(max, process.memoryUsage.rss()),
    stop() {
      clearInterval(timer);
      max = Math.max(max, process.memoryUsage.rss());
      return max;
    },
  };
}

// --- sediment background work ----------------------------------------------------------------

/**
 * Samples `stats()` every 5 ms (a timer, so a busy loop samples less often) and afterwards
 * tells which operations completed while a compaction (or a flush) was running. An interval
 * between two samples counts as compacting if either end saw compaction work pending (see
 * {@link compactionNeeded}) or the compaction counter moved; likewise for flushes (a frozen
 * memtable waiting, or the flush counter moved).
 */
export class BackgroundTracker {
  readonly #stats: () => DBStats;
  readonly #t: number[] = [];
  readonly #compacting: boolean[] = [];
  readonly #flushing: boolean[] = [];
  readonly #compactions: number[] = [];
  readonly #flushes: number[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(stats: () => DBStats) {
    this.#stats = stats;
  }

  #sample(): void {
    const s = this.#stats();
    this.#t.push(now());
    this.#compacting.push(compactionNeeded(s));
    this.#flushing.push(s.frozenMemtables > 0);
    this.#compactions.push(s.compactions);
    this.#flushes.push(s.flushes);
  }

  start(): this {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 5);
    return this;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#sample();
  }

  #busy(k: number, what: 'compaction' | 'flush'): boolean {
    const flag = what === 'compaction' ? this.#compacting : this.#flushing;
    const count = what === 'compaction' ? this.#compactions : this.#flushes;
    return flag[k]! || flag[k + 1]! || count[k + 1]! > count[k]!;
  }

  /** Share of the run's wall time during which `what` ran. */
  busyShare(what: 'compaction' | 'flush'): number {
    let busy = 0;
    for (let k = 0; k + 1 < this.#t.length; k++) if (this.#busy(k, what)) busy += this.#t[k + 1]! - this.#t[k]!;
    const total = this.#t[this.#t.length - 1]! - this.#t[0]!;
    return total > 0 ? busy / total : 0;
  }

  /** Latencies of the operations that completed while `what` ran, and of the others. */
  split(lat: Float64Array, ends: Float64Array, what: 'compaction' | 'flush'): { during: Float64Array; outside: Float64Array } {
    const t = this.#t;
    const during = new Float64Array(lat.length);
    const outside = new Float64Array(lat.length);
    let d = 0;
    let o = 0;
    for (let i = 0; i < lat.length; i++) {
      const e = ends[i]!;
      // Last sample at or before e.
      let lo = 0;
      let hi = t.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (t[mid]! <= e) lo = mid;
        else hi = mid - 1;
      }
      const k = Math.min(lo, t.length - 2);
      if (k >= 0 && this.#busy(k, what)) during[d++] = lat[i]!;
      else outside[o++] = lat[i]!;
    }
    return { during: during.subarray(0, d), outside: outside.subarray(0, o) };
  }

  get samples(): number {
    return this.#t.length;
  }
}

// --- CPU ------------------------------------------------------------------------------------

/** CPU used by this process (all threads) and time its main thread waited for a CPU. */
export interface CpuCounters {
  /** user + system ms, all threads (process.cpuUsage). */
  processMs: number;
  /** ms the main thread was runnable but not running (/proc/self/schedstat run_delay); NaN where missing. */
  mainWaitMs: number;
}

export function readCpu(): CpuCounters {
  const u = process.cpuUsage();
  let wait = NaN;
  try {
    wait = Number(fs.readFileSync('/proc/self/schedstat', 'utf8').split(' ')[1]) / 1e6;
  } catch {
    // not Linux
  }
  return { processMs: (u.user + u.system) / 1000, mainWaitMs: wait };
}

export function cpuDelta(a: CpuCounters, b: CpuCounters): CpuCounters {
  return { processMs: b.processMs - a.processMs, mainWaitMs: b.mainWaitMs - a.mainWaitMs };
}

/** `some` avg10 of /proc/pressure/cpu: share of time at least one runnable task waited for a CPU. */
export function cpuPressure(): string {
  try {
    const line = fs.readFileSync('/proc/pressure/cpu', 'utf8').split('\n')[0] ?? '';
    const m = /avg10=([\d.]+) avg60=([\d.]+) avg300=([\d.]+)/.exec(line);
    return m ? `${m[1]}% / ${m[2]}% / ${m[3]}% (10 s / 60 s / 300 s)` : 'unknown';
  } catch {
    return 'unknown';
  }
}

// --- I/O counters and sizes ------------------------------------------------------------------

/** This process's I/O counters (all threads), from /proc/self/io; undefined where missing. */
export interface IoCounters {
  /** Bytes passed to write(2)/pwrite(2) and friends. */
  wchar: number;
  /** Bytes of page cache this process dirtied: what the storage will be asked to write. */
  writeBytes: number;
  /** Dirtied bytes dropped before writeback (files truncated or deleted first). */
  cancelledWriteBytes: number;
}

export function readIo(): IoCounters | undefined {
  try {
    const text = fs.readFileSync('/proc/self/io', 'utf8');
    const get = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { wchar: get('wchar'), writeBytes: get('write_bytes'), cancelledWriteBytes: get('cancelled_write_bytes') };
  } catch {
    return undefined;
  }
}

export function ioDelta(a: IoCounters | undefined, b: IoCounters | undefined): IoCounters | undefined {
  if (!a || !b) return undefined;
  return {
    wchar: b.wchar - a.wchar,
    writeBytes: b.writeBytes - a.writeBytes,
    cancelledWriteBytes: b.cancelledWriteBytes - a.cancelledWriteBytes,
  };
}

export interface DiskUsage {
  /** Sum of file sizes (st_size). */
  apparent: number;
  /** Sum of allocated blocks (st_blocks * 512): smaller for sparse files, larger for preallocation. */
  allocated: number;
  files: number;
  /** Apparent bytes by file suffix ('.sst', '.wal', '.ldb', '.log', '.mdb', ...). */
  bySuffix: Record<string, number>;
}

export function diskUsage(dir: string): DiskUsage {
  const u: DiskUsage = { apparent: 0, allocated: 0, files: 0, bySuffix: {} };
  const walk = (d: string): void => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (ent.isFile()) {
        const st = fs.statSync(p);
        u.apparent += st.size;
        u.allocated += st.blocks * 512;
        u.files++;
        const suffix = path.extname(ent.name) || ent.name;
        u.bySuffix[suffix] = (u.bySuffix[suffix] ?? 0) + st.size;
      }
    }
  };
  walk(dir);
  return u;
}
