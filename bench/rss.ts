/**
 * Where the memory of a big random load goes (issue #10's peak-RSS goal): the load of
 * `npm run bench:db -- --only=load` (16 B keys, 100 B values, batches of 1000, each awaited,
 * default options) in this process, sampled every `--every` ms: the process's RSS (anonymous and
 * file-backed, from /proc/self/status), the main thread's and the background worker's heaps,
 * external and ArrayBuffer bytes, and the DB's own accounting (`stats().memory`: memtables,
 * frozen memtables, block cache, table readers; frozen memtables and L0 tables alive).
 * After the load it waits for the owed compactions and reports them per level (from the meter's
 * events): jobs, bytes read and written, time, and where the time went.
 *
 * ```sh
 * npm run build && tsx bench/rss.ts --n=3000000          # the build in dist/ (what users run)
 * tsx bench/rss.ts --n=1000000 --src                     # the sources through tsx
 * tsx bench/rss.ts --n=3000000 --json=out.json --every=100
 * ```
 *
 * One run is one sample: on this shared machine compare builds by alternating runs and taking
 * medians. The figures of record are in bench/results/rss.md.
 *
 * @module
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Keys, permutation, Values } from './db-data.js';

type SedimentModule = typeof import('../src/index.js');
type BackgroundModule = typeof import('../src/db/background.js');
type DBEvent = Parameters<NonNullable<import('../src/index.js').DBMeter['event']>>[0];

const arg = (name: string, fallback: string): string =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const fromSrc = process.argv.includes('--src');
const n = Number(arg('n', '3000000'));
const batch = Number(arg('batch', '1000'));
const everyMs = Number(arg('every', '200'));
const segment = Number(arg('segment', String(Math.max(batch, Math.floor(n / 10)))));
const jsonOut = arg('json', '');
/** Longest wait for the owed compactions after the load, s. */
const settleMax = Number(arg('settle-max', '600'));
/** `--gc` (with node --expose-gc): a full GC in both threads before each sample: live bytes, not garbage. */
const forceGc = process.argv.includes('--gc');
const gc = (globalThis as { gc?: () => void }).gc;
if (forceGc && !gc) throw new Error('--gc needs node --expose-gc (NODE_OPTIONS=--expose-gc)');

/** `--dist=dir`: a build other than dist/ (relative to the repository), for A/B runs. */
const distDir = arg('dist', 'dist');

async function load<T>(rel: string): Promise<T> {
  if (fromSrc) return (await import(`../src/${rel}.js`)) as T;
  const entry = new URL(`../${distDir}/${rel}.js`, import.meta.url);
  if (!fs.existsSync(entry)) throw new Error(`${entry.pathname} is missing: run npm run build first (or pass --src)`);
  return (await import(entry.href)) as T;
}

const { DB } = await load<SedimentModule>('index');
const { BackgroundWorker } = await load<BackgroundModule>('db/background');

const MB = 1e6;
const mb = (b: number | undefined): string => (b === undefined ? '-' : (b / MB).toFixed(1));

/** VmRSS, RssAnon, RssFile, RssShmem from /proc/self/status, bytes. */
function procRss(): { rss: number; anon: number; file: number; shmem: number } {
  const text = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem') };
}

/**
 * The process's resident memory by kind of mapping (/proc/self/smaps): the brk heap, anonymous
 * mappings by size (glibc's thread arenas are 64 MiB reservations, V8's pages 256 KiB, large
 * mallocs and array buffers their own size), file mappings.
 */
function smapsSummary(): string {
  const text = fs.readFileSync('/proc/self/smaps', 'utf8');
  const buckets = new Map<string, { n: number; rss: number }>();
  let kind = '';
  let size = 0;
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (m) {
      size = (Number.parseInt(m[2]!, 16) - Number.parseInt(m[1]!, 16)) / 1024;
      const name = m[4]!;
      if (name === '[heap]') kind = 'brk heap';
      else if (name.startsWith('[')) kind = name;
      else if (name !== '') kind = 'files';
      else if (size >= 65536) kind = 'anon >= 64 MiB (malloc arenas)';
      else if (size >= 1024) kind = 'anon 1-64 MiB';
      else kind = 'anon < 1 MiB';
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r) {
      const b = buckets.get(kind) ?? { n: 0, rss: 0 };
      b.n++;
      b.rss += Number(r[1]) * 1024;
      buckets.set(kind, b);
    }
  }
  return [...buckets.entries()]
    .sort((a, b) => b[1].rss - a[1].rss)
    .map(([k, b]) => `${k}: ${b.n} maps, ${mb(b.rss)} MB`)
    .join('; ');
}

interface Sample {
  t: number;
  puts: number;
  rss: number;
  anon: number;
  file: number;
  mainHeap: number;
  mainHeapTotal: number;
  workerHeapTotal: number | undefined;
  mainExternal: number;
  mainArrayBuffers: number;
  workerHeap: number | undefined;
  workerExternal: number | undefined;
  workerArrayBuffers: number | undefined;
  memtable: number;
  memtableEntries: number;
  frozen: number;
  frozenBytes: number;
  blockCache: number;
  tableReaders: number;
  tables: number;
  l0: number;
}

const events: DBEvent[] = [];
const meter = {
  counter: () => undefined,
  histogram: () => undefined,
  event: (e: DBEvent) => void events.push(e),
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-rss-'));
const db = await DB.open<Buffer, Buffer>(dir, { keyEncoding: 'binary', valueEncoding: 'binary', meter });
const keys = new Keys();
const values = new Values(100);
const order = permutation(n, 5);
const samples: Sample[] = [];
let puts = 0;
let sampling = false;
const t0 = performance.now();

async function sample(): Promise<void> {
  if (sampling) return;
  sampling = true;
  try {
    if (forceGc) gc!();
    const m = process.memoryUsage();
    const w = await BackgroundWorker.shared().memoryUsage(forceGc);
    const s = db.stats();
    const p = procRss();
    samples.push({
      t: performance.now() - t0,
      puts,
      rss: p.rss,
      anon: p.anon,
      file: p.file,
      mainHeap: m.heapUsed,
      mainHeapTotal: m.heapTotal,
      workerHeapTotal: w?.heapTotal,
      mainExternal: m.external,
      mainArrayBuffers: m.arrayBuffers,
      workerHeap: w?.heapUsed,
      workerExternal: w?.external,
      workerArrayBuffers: w?.arrayBuffers,
      memtable: s.memory.memtableBytes,
      memtableEntries: s.memtable.entries,
      frozen: s.frozenMemtables,
      frozenBytes: s.memory.frozenMemtableBytes,
      blockCache: s.memory.blockCacheBytes,
      tableReaders: s.memory.tableReaderBytes,
      tables: s.levels.reduce((a, l) => a + l.tables, 0),
      l0: s.levels[0]!.tables,
    });
  } finally {
    sampling = false;
  }
}

const row = (s: Sample): string =>
  [
    s.puts.toLocaleString('en-US').padStart(11),
    mb(s.rss).padStart(7),
    mb(s.anon).padStart(7),
    mb(s.mainHeap).padStart(6),
    mb(s.mainArrayBuffers).padStart(6),
    mb(s.workerHeap).padStart(6),
    mb(s.workerArrayBuffers).padStart(6),
    mb(s.memtable).padStart(6),
    `${s.frozen}:${mb(s.frozenBytes)}`.padStart(8),
    mb(s.blockCache).padStart(6),
    mb(s.tableReaders).padStart(6),
    String(s.l0).padStart(3),
  ].join(' ');
const header = '       puts     rss    anon  mHeap   mAB   wHeap   wAB    mem   frozen  cache  readers L0';

const timer = setInterval(() => void sample(), everyMs);
process.stderr.write(`${header}\n`);
const cpu0 = process.cpuUsage();
const segments: { upTo: number; putsPerSec: number }[] = [];
let segStart = performance.now();
let lastPrinted = 0;
for (let b = 0; b * batch < n; b++) {
  const ops: { type: 'put'; key: Buffer; value: Buffer }[] = [];
  for (let i = b * batch; i < Math.min(n, (b + 1) * batch); i++) {
    const j = order(i);
    ops.push({ type: 'put', key: keys.key(j), value: values.value(j, 0) });
  }
  await db.batch(ops);
  puts += ops.length;
  if (puts % segment === 0 || puts === n) {
    const t = performance.now();
    segments.push({ upTo: puts, putsPerSec: segment / ((t - segStart) / 1000) });
    segStart = t;
  }
  if (samples.length > lastPrinted && samples.length % Math.max(1, Math.round(2000 / everyMs)) === 0) {
    lastPrinted = samples.length;
    process.stderr.write(`${row(samples[samples.length - 1]!)}\n`);
  }
}
const loadMs = performance.now() - t0;
const smapsAtEnd = smapsSummary();
const cpu = process.cpuUsage(cpu0);
await sample();
const maxRssKernel = process.resourceUsage().maxRSS * 1024;
clearInterval(timer);
const peak = samples.reduce((a, s) => (s.rss > a.rss ? s : a), samples[0]!);
const max = (f: (s: Sample) => number | undefined): number => Math.max(...samples.map((s) => f(s) ?? 0));

// Owed compactions, then what the compactions of the load and after it did, per level.
const loadEvents = events.length;
const settle0 = performance.now();
for (;;) {
  const s = db.stats();
  if (s.compactionDebtBytes === 0 && s.compactionsRunning === 0 && s.frozenMemtables === 0) break;
  if (performance.now() - settle0 > settleMax * 1000) {
    process.stdout.write(`owed compactions not done after ${settleMax} s: stopped waiting\n`);
    break;
  }
  await new Promise((r) => setTimeout(r, 20));
}
const settleMs = performance.now() - settle0;
const final = db.stats();
await db.close();
fs.rmSync(dir, { recursive: true, force: true });

interface LevelWork {
  jobs: number;
  moves: number;
  read: number;
  written: number;
  ms: number;
  readMs: number;
  writeMs: number;
  finishMs: number;
  yieldedMs: number;
  inputTables: number;
}
function levelWork(from: number, to: number): Map<string, LevelWork> {
  const by = new Map<string, LevelWork>();
  for (const e of events.slice(from, to)) {
    const key = e.type === 'flush' ? 'flush' : e.type === 'compaction' ? `L${e.level}->L${e.outputLevel}` : undefined;
    if (key === undefined) continue;
    const w = by.get(key) ?? {
      jobs: 0,
      moves: 0,
      read: 0,
      written: 0,
      ms: 0,
      readMs: 0,
      writeMs: 0,
      finishMs: 0,
      yieldedMs: 0,
      inputTables: 0,
    };
    w.jobs++;
    if (e.type === 'flush') {
      w.ms += e.durationMs;
      w.written += e.bytes;
    } else if (e.type === 'compaction') {
      w.ms += e.durationMs;
      if (e.trivialMove) w.moves++;
      w.read += e.bytesRead;
      w.written += e.bytesWritten;
      w.inputTables += (e.inputTables ?? []).reduce((a, b) => a + b, 0);
      if (e.profile) {
        w.readMs += e.profile.readMs;
        w.writeMs += e.profile.writeMs;
        w.finishMs += e.profile.finishMs;
        w.yieldedMs += e.profile.yieldedMs;
      }
    }
    by.set(key, w);
  }
  return by;
}
function workTable(title: string, by: Map<string, LevelWork>): string {
  const lines = [`${title}:`, '  step      jobs moves  read MB  written MB  wall s  read s  write s  finish s  yielded s  input tables'];
  for (const [k, w] of [...by.entries()].sort()) {
    lines.push(
      `  ${k.padEnd(9)} ${String(w.jobs).padStart(4)} ${String(w.moves).padStart(5)} ${mb(w.read).padStart(8)} ${mb(w.written).padStart(11)} ${(w.ms / 1000).toFixed(1).padStart(7)} ${(w.readMs / 1000).toFixed(1).padStart(7)} ${(w.writeMs / 1000).toFixed(1).padStart(8)} ${(w.finishMs / 1000).toFixed(1).padStart(9)} ${(w.yieldedMs / 1000).toFixed(1).padStart(10)} ${String(w.inputTables).padStart(13)}`,
    );
  }
  return lines.join('\n');
}

const userBytes = n * (16 + 100);
const fullest = samples.reduce((a, s) => (s.memtable > a.memtable ? s : a), samples[0]!);
const summary = [
  `sediment rss harness: ${n.toLocaleString('en-US')} random puts, batches of ${batch}, ${fromSrc ? 'src/ through tsx' : `${distDir}/`}, MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? '-'}${forceGc ? ', full GC before each sample' : ''}`,
  `load: ${(loadMs / 1000).toFixed(1)} s, ${Math.round(n / (loadMs / 1000)).toLocaleString('en-US')} puts/s; main-thread CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s (process CPU incl. worker: ${(process.resourceUsage().userCPUTime / 1e6 + process.resourceUsage().systemCPUTime / 1e6).toFixed(1)} s)`,
  `segments puts/s: ${segments.map((s) => Math.round(s.putsPerSec)).join(' ')}`,
  `peak RSS ${mb(peak.rss)} MB (kernel max ${mb(maxRssKernel)} MB) at ${peak.puts.toLocaleString('en-US')} puts; at the peak: ${header.trim()}`,
  `  ${row(peak)}`,
  `smaps at the end of the load: ${smapsAtEnd}`,
  `heap totals at the peak: main ${mb(peak.mainHeapTotal)}, worker ${mb(peak.workerHeapTotal)}`,
  `maxima: main heap ${mb(max((s) => s.mainHeap))}, main ArrayBuffers ${mb(max((s) => s.mainArrayBuffers))}, worker heap ${mb(max((s) => s.workerHeap))}, worker ArrayBuffers ${mb(max((s) => s.workerArrayBuffers))}, memtable ${mb(max((s) => s.memtable))}, frozen ${max((s) => s.frozen)} (${mb(max((s) => s.frozenBytes))} MB), block cache ${mb(max((s) => s.blockCache))}, table readers ${mb(max((s) => s.tableReaders))}, L0 ${max((s) => s.l0)}`,
  `fullest memtable sampled: ${mb(fullest.memtable)} MB for ${fullest.memtableEntries.toLocaleString('en-US')} entries of 116 B: ${(fullest.memtable / Math.max(1, fullest.memtableEntries * 116)).toFixed(2)}x the raw bytes`,
  `owed after the load: ${(settleMs / 1000).toFixed(1)} s; write amplification ${final.writeAmplification.toFixed(2)} (user ${mb(userBytes)} MB); levels ${final.levels
    .map((l, i) => `L${i} ${l.tables}/${mb(l.bytes)}MB`)
    .filter((_, i) => final.levels[i]!.tables > 0)
    .join(', ')}`,
  workTable('during the load', levelWork(0, loadEvents)),
  workTable('owed after it', levelWork(loadEvents, events.length)),
].join('\n');
process.stdout.write(`${summary}\n`);
if (jsonOut)
  fs.writeFileSync(jsonOut, JSON.stringify({ n, batch, loadMs, settleMs, segments, samples, peak, maxRssKernel, summary }, null, 1));
