/**
 * Small helpers shared by the benchmarks: units, timing loops, temp directories, machine
 * information and markdown tables. Nothing here knows about the WAL.
 *
 * @module
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
/** Decimal megabyte: MB/s and GB/s are 10^6 and 10^9 bytes per second, as disks are quoted. */
export const MB = 1e6;

/** Milliseconds, sub-microsecond resolution, monotonic. */
export const now = (): number => performance.now();

/** What a timed run did: operations completed, bytes moved, and how long it took. */
export interface Timed {
  ops: number;
  bytes: number;
  ms: number;
}

export const opsPerSec = (t: Timed): number => t.ops / (t.ms / 1000);
export const mbPerSec = (t: Timed): number => t.bytes / MB / (t.ms / 1000);
/** Microseconds per operation. */
export const usPerOp = (t: Timed): number => (t.ms * 1000) / t.ops;

/**
 * Calls `fn` until `ms` have passed or it was called `maxOps` times. The clock is read once
 * every 32 calls so that reading it does not weigh on microsecond-sized operations.
 */
export function loopFor(ms: number, maxOps: number, fn: (i: number) => void): { ops: number; ms: number } {
  const t0 = now();
  const deadline = t0 + ms;
  let i = 0;
  while (i < maxOps) {
    const stop = Math.min(maxOps, i + 32);
    for (; i < stop; i++) fn(i);
    if (now() >= deadline) break;
  }
  return { ops: i, ms: now() - t0 };
}

/** What {@link warmPageCache} writes before each attempt: as much as the largest single run. */
const WARM_BYTES = 1 * GiB;

/**
 * Writes `bytes` to a temporary file in os.tmpdir() and deletes it (dirty pages of a deleted file
 * are dropped, never written back), so that the pages a measurement is about to write into were
 * just handed out and freed. In this VM, memory left free for a few seconds goes back to the host
 * (free page reporting, DAMON), and the next first touch of each page costs a host fault:
 * page-cache writes then run at 300-600 MB/s instead of 2-4 GB/s (see {@link pageCacheProbe}).
 * Without this, a figure depends on how long the machine sat idle before it, and a baseline and
 * the WAL measured one after the other are not compared on equal terms.
 */
export function warmPageCache(bytes = WARM_BYTES): void {
  if (bytes <= 0) return;
  const file = path.join(os.tmpdir(), `sediment-bench-warm-${process.pid}`);
  const fd = fs.openSync(file, 'w');
  try {
    const chunk = Buffer.alloc(MiB, 0x5a);
    for (let at = 0; at < bytes; at += MiB) fs.writeSync(fd, chunk, 0, MiB, at);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

/**
 * Runs `fn` `runs` times back to back and keeps the attempt with the highest `score`. Best-of
 * filters out other processes' bursts. Before each attempt, baselines and WAL alike, the page
 * cache is warmed ({@link warmPageCache}).
 */
export async function bestOf<T>(runs: number, fn: () => Promise<T> | T, score: (t: T) => number): Promise<T & { attempts: number[] }> {
  let best: T | undefined;
  const attempts: number[] = [];
  for (let i = 0; i < runs; i++) {
    warmPageCache();
    const t = await fn();
    attempts.push(score(t));
    if (best === undefined || score(t) > score(best)) best = t;
  }
  return { ...(best as T), attempts };
}

/** Runs `fn` in a fresh directory under os.tmpdir() and removes the directory afterwards. */
export async function withTempDir<T>(tag: string, fn: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sediment-bench-${tag}-`));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Total size of the regular files in `dir` whose names end with `suffix`. */
export function dirBytes(dir: string, suffix: string): number {
  let total = 0;
  for (const name of fs.readdirSync(dir)) {
    if (name.endsWith(suffix)) total += fs.statSync(path.join(dir, name)).size;
  }
  return total;
}

// --- formatting ------------------------------------------------------------------------------

export const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
export const fmtMB = (n: number): string => (n >= 100 ? fmtInt(n) : n.toFixed(1));
export const fmtX = (r: number): string => `${r.toFixed(2)}x`;
export const fmtPct = (r: number): string => `${(r * 100).toFixed(0)}%`;
/** A percentage with one decimal: for a measured value set against a threshold (59.7% is not 60%). */
export const fmtPct1 = (r: number): string => `${(r * 100).toFixed(1)}%`;
export const fmtUs = (us: number): string => `${us.toFixed(0)} us`;
export const fmtMs = (ms: number): string => `${ms.toFixed(0)} ms`;

/** Human name of a record or buffer size: 100 B, 1 KiB, 10 KiB, 1 MiB. */
export function fmtSize(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} B`;
}

/** Cells that look like figures are right-aligned. */
const FIGURE = /^[-+~]?[\d,.]+( ?(x|%|us|ms|MB\/s|GB\/s))?( .*)?$/;

/** A markdown table, padded so that it also reads well in a terminal. */
export function mdTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const right = head.map((_, i) => rows.length > 0 && rows.every((r) => FIGURE.test(r[i] ?? '')));
  const line = (cells: readonly string[]): string =>
    `| ${widths.map((w, i) => (right[i] ? (cells[i] ?? '').padStart(w) : (cells[i] ?? '').padEnd(w))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (right[i] ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

// --- environment -----------------------------------------------------------------------------

/** What the figures were measured on, as label/value pairs. */
export function machineInfo(): [string, string][] {
  const cpus = os.cpus();
  const dir = os.tmpdir();
  return [
    ['node', process.version],
    ['os', `${os.type()} ${os.release()} ${os.arch()}`],
    ['cpus', `${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown'}`],
    ['memory', `${(os.totalmem() / GiB).toFixed(1)} GiB`],
    ['temp dir', `${dir} (${fileSystemOf(dir)})`],
    ['load average (1/5/15 min)', loadAverage()],
  ];
}

/**
 * Page-cache write speed into memory the kernel has not handed out lately, then into the pages
 * just freed. In a VM whose free memory is returned to the host (free page reporting, balloon),
 * the first touch of a page costs a host fault: page-cache writes can run at a tenth of their
 * speed until memory is reused. Every write-heavy figure below depends on this.
 */
export function pageCacheProbe(dir: string, bytes = 128 * MiB): { coldMBps: number; reusedMBps: number } {
  const chunk = Buffer.alloc(MiB, 0x5a);
  const file = path.join(dir, 'page-cache-probe');
  const once = (): number => {
    const fd = fs.openSync(file, 'w');
    const t0 = now();
    for (let at = 0; at < bytes; at += MiB) fs.writeSync(fd, chunk);
    const ms = now() - t0;
    fs.closeSync(fd);
    fs.rmSync(file); // dirty pages of a deleted file are dropped, never written back
    return bytes / MB / (ms / 1000);
  };
  const coldMBps = once();
  return { coldMBps, reusedMBps: once() };
}

/** CPU time of the whole machine and of this process, to tell how busy other processes were. */
export interface CpuSample {
  /** Busy jiffies summed over all CPUs (user, nice, system, irq, softirq, steal). */
  busy: number;
  total: number;
  /** This process: user + system microseconds (all its threads). */
  selfUs: number;
}

export function cpuSample(): CpuSample | undefined {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
    const busy = user! + nice! + system! + irq! + softirq! + (steal ?? 0);
    const u = process.cpuUsage();
    return { busy, total: busy + idle! + iowait!, selfUs: u.user + u.system };
  } catch {
    return undefined; // not Linux
  }
}

/** Share of all CPUs that was busy between two samples, and how much of it was other processes. */
export function cpuShare(a: CpuSample | undefined, b: CpuSample | undefined): { busy: number; others: number } | undefined {
  if (!a || !b || b.total <= a.total) return undefined;
  const ticks = 100; // USER_HZ: /proc/stat counts hundredths of a second on Linux
  const wallCpuSeconds = (b.total - a.total) / ticks;
  const busy = (b.busy - a.busy) / ticks;
  const self = (b.selfUs - a.selfUs) / 1e6;
  return { busy: busy / wallCpuSeconds, others: Math.max(0, busy - self) / wallCpuSeconds };
}

export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' / ');
}

/** `df -T`'s device and type for `dir`, or 'unknown' where df is missing or differs. */
function fileSystemOf(dir: string): string {
  try {
    const out = execFileSync('df', ['-T', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const fields = out.trim().split('\n').slice(1).join(' ').split(/\s+/);
    return fields.length >= 2 ? `${fields[1]} on ${fields[0]}` : 'unknown';
  } catch {
    return 'unknown';
  }
}

// --- command line ----------------------------------------------------------------------------

export interface BenchArgs {
  /** Where to write the results as JSON, if asked. */
  json: string | undefined;
  /** Shorter runs (about a third of the time), one attempt each: a smoke test, noisier figures. */
  quick: boolean;
  /** Attempts per measurement; the best is reported. */
  runs: number;
  /**
   * The tsc build to benchmark (default `dist`, what the package ships and `npm run bench:wal`
   * builds first), or undefined with `--src`: the TypeScript sources as tsx runs them.
   */
  dist: string | undefined;
}

export function parseArgs(argv: readonly string[]): BenchArgs {
  const args: BenchArgs = { json: undefined, quick: false, runs: 0, dist: 'dist' };
  for (const arg of argv) {
    if (arg === '--quick') args.quick = true;
    else if (arg === '--json') args.json = 'wal-bench.json';
    else if (arg.startsWith('--json=')) args.json = arg.slice('--json='.length);
    else if (arg === '--dist') args.dist = 'dist';
    else if (arg.startsWith('--dist=')) args.dist = arg.slice('--dist='.length);
    else if (arg === '--src') args.dist = undefined;
    else if (/^--runs=[1-9]\d*$/.test(arg)) args.runs = Number(arg.slice('--runs='.length));
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: tsx bench/wal.ts [--quick] [--runs=N] [--dist[=dir] | --src] [--json[=file]]');
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${arg} (try --help)`);
    }
  }
  if (args.runs === 0) args.runs = args.quick ? 1 : 2;
  return args;
}

/** Progress goes to stderr so that stdout holds only the report. */
export function progress(message: string): void {
  process.stderr.write(`  .. ${message}\n`);
}

/** `0..n-1` in the random order that `next` (a u32 generator) draws: a Fisher-Yates shuffle. */
export function shuffledIndexes(n: number, next: () => number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = next() % (i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** mulberry32: deterministic pseudo-random 32-bit integers, for reproducible key orders. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
