/**
 * The memtable, old and new, in one run: the arena memtable (`src/memtable`) against the B+ tree
 * of latin1 strings to entry objects it replaced (copied below, as of commit edba740).
 *
 * ```sh
 * npx tsx bench/memtable.ts               # 1M random 16 B keys / 100 B values, and a 64 MiB sort
 * npx tsx bench/memtable.ts --n=200000    # fewer entries
 * npx tsx bench/memtable.ts --sort-mib=16 # a smaller memtable for the flush source
 * npx tsx bench/memtable.ts --runs=3      # best of 3 attempts per implementation (default 2)
 * ```
 *
 * Each measurement runs in a child process of its own (`--expose-gc`), so that one
 * implementation's garbage and freed memory do not weigh on the other's figures. Per
 * implementation: inserts/s (fresh pooled `Buffer`s per insert, as the DB's encoders give them),
 * memory held per entry after a full GC (heap + array buffers, which count the arena's
 * `SharedArrayBuffer`s, and RSS), `approximateBytes` per entry, gets/s of random present keys, a
 * full scan of a frozen view, and the garbage collector's time during the inserts and the gets
 * (`perf_hooks` 'gc' entries: total and longest pause). Then what a flush in the worker reads of a
 * sealed memtable of `--sort-mib` MiB (`flush-source.ts`): the source made on the DB's thread, the
 * walk of the tree's leaves, every entry decoded; against iterating the same frozen memtable. Throughput is given
 * per wall-clock second and per CPU-second of the process (all its threads, the GC's included):
 * on a shared machine the second moves less. The best of `--runs` attempts (inserts/s + gets/s)
 * per implementation, alternating.
 *
 * @module
 */
import { fork } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as btree from 'sorted-btree';
import type { Entry } from '../src/entry.js';
import { flushSourceEntries } from '../src/memtable/flush-source.js';
import { Memtable } from '../src/memtable/memtable.js';
import { visibleRecords } from '../src/memtable/record-tree.js';

const MiB = 1024 * 1024;
const KEY = 16;
const VALUE = 100;

// --- the old memtable (src/memtable/memtable.ts at edba740, its put/get/freeze/iterate paths) ---

type OldTree = btree.default<string, Entry>;
type OldTreeClass = new (entries: undefined, compare: (a: string, b: string) => number) => OldTree;
const btreeExports = btree as unknown as { default: OldTreeClass | { default: OldTreeClass } };
const OldBTree: OldTreeClass = typeof btreeExports.default === 'function' ? btreeExports.default : btreeExports.default.default;
const OLD_ENTRY_OVERHEAD = 320;
const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
function binaryKey(key: Uint8Array): string {
  const buf = Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return buf.toString('latin1');
}
const charge = (e: Entry): number => 2 * e.key.length + e.value.length + OLD_ENTRY_OVERHEAD;

class OldMemtable {
  #tree: OldTree = new OldBTree(undefined, compareStrings);
  #bytes = 0;
  insertChecked(stored: Entry): boolean {
    const k = binaryKey(stored.key);
    if (!this.#tree.set(k, stored, false)) {
      const old = this.#tree.get(k)!;
      if (old.seq > stored.seq) return false;
      this.#bytes -= charge(old);
      this.#tree.set(k, stored, true);
    }
    this.#bytes += charge(stored);
    return true;
  }
  get(key: Uint8Array): Entry | undefined {
    return this.#tree.get(binaryKey(key));
  }
  get approximateBytes(): number {
    return this.#bytes;
  }
  get size(): number {
    return this.#tree.size;
  }
  freeze(): Iterable<Entry> {
    const view = this.#tree.clone();
    view.freeze();
    return {
      *[Symbol.iterator]() {
        for (const [, e] of view.entries()) yield e;
      },
    };
  }
}

interface Table {
  insertChecked(e: Entry): boolean;
  get(key: Uint8Array): Entry | undefined;
  readonly approximateBytes: number;
  readonly size: number;
  freeze(): Iterable<Entry>;
}

// --- measuring ------------------------------------------------------------------------------

declare const gc: () => void;

interface GcStats {
  ms: number;
  longest: number;
  count: number;
}

/** Collects 'gc' performance entries; {@link within} sums those that started in a time range. */
class GcWatch {
  readonly #entries: { start: number; duration: number }[] = [];
  readonly #obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) this.#entries.push({ start: e.startTime, duration: e.duration });
  });
  constructor() {
    this.#obs.observe({ entryTypes: ['gc'] });
  }
  async within(t0: number, t1: number): Promise<GcStats> {
    await new Promise((r) => setTimeout(r, 50)); // entries are delivered asynchronously
    const s = { ms: 0, longest: 0, count: 0 };
    for (const e of this.#entries) {
      if (e.start < t0 || e.start > t1) continue;
      s.ms += e.duration;
      s.longest = Math.max(s.longest, e.duration);
      s.count++;
    }
    return s;
  }
  stop(): void {
    this.#obs.disconnect();
  }
}

/**
 * Memory held after a full GC: the JavaScript heap and array buffers (`arrayBuffers` counts
 * `SharedArrayBuffer`s, which `external` leaves out), and the resident set.
 */
const held = (): { heap: number; rss: number } => {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
};

/** CPU milliseconds (user + system, all threads) since `from`. */
const cpuMs = (from: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1000;
};

interface TableResult {
  impl: string;
  n: number;
  size: number;
  insertsPerSec: number;
  insertsPerCpuSec: number;
  getsPerSec: number;
  getsPerCpuSec: number;
  scanPerSec: number;
  heapPerEntry: number;
  rssPerEntry: number;
  approxPerEntry: number;
  gcInsert: GcStats;
  gcGet: GcStats;
}

async function measureTable(impl: 'old' | 'arena', n: number): Promise<TableResult> {
  const keys = Buffer.allocUnsafe(n * KEY);
  randomFillSync(keys);
  const pool = Buffer.allocUnsafe(MiB);
  randomFillSync(pool);
  const watch = new GcWatch();
  const before = held();
  const table: Table = impl === 'old' ? new OldMemtable() : new Memtable();

  let c0 = process.cpuUsage();
  let t0 = performance.now();
  for (let i = 0; i < n; i++) {
    // Fresh arrays per write, as the DB's encoders hand them over (pooled Buffers).
    const key = Buffer.from(keys.subarray(i * KEY, (i + 1) * KEY));
    const at = (i * 7919) % (MiB - VALUE);
    const value = Buffer.from(pool.subarray(at, at + VALUE));
    table.insertChecked({ key, seq: i + 1, kind: 'put', value, expiresAt: undefined });
  }
  let t1 = performance.now();
  const insertMs = t1 - t0;
  const insertCpu = cpuMs(c0);
  const gcInsert = await watch.within(t0, t1);
  const after = held();

  const probes: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const j = (i * 2654435761) % n;
    probes.push(keys.subarray(j * KEY, (j + 1) * KEY));
  }
  gc(); // the probes are the bench's: promote them now, not in the timed loop's scavenges
  c0 = process.cpuUsage();
  t0 = performance.now();
  let found = 0;
  for (let i = 0; i < n; i++) if (table.get(probes[i]!) !== undefined) found++;
  t1 = performance.now();
  const getCpu = cpuMs(c0);
  if (found !== n) throw new Error(`${impl}: found ${found} of ${n}`);
  const getMs = t1 - t0;
  const gcGet = await watch.within(t0, t1);

  t0 = performance.now();
  let scanned = 0;
  for (const e of table.freeze()) scanned += e.key.length > 0 ? 1 : 0;
  const scanMs = performance.now() - t0;
  watch.stop();

  return {
    impl,
    n,
    size: table.size,
    insertsPerSec: n / (insertMs / 1000),
    insertsPerCpuSec: n / (insertCpu / 1000),
    getsPerSec: n / (getMs / 1000),
    getsPerCpuSec: n / (getCpu / 1000),
    scanPerSec: scanned / (scanMs / 1000),
    heapPerEntry: (after.heap - before.heap) / n,
    rssPerEntry: (after.rss - before.rss) / n,
    approxPerEntry: table.approximateBytes / n,
    gcInsert,
    gcGet,
  };
}

interface SortResult {
  keys: 'random' | 'shared';
  mib: number;
  entries: number;
  records: number;
  arenaBytes: number;
  /** `flushSource()` on the DB's thread. */
  sourceMs: number;
  /** `visibleRecords`: the walk of the leaves, in key order (the worker's). */
  walkMs: number;
  walkCpuMs: number;
  /** `flushSourceEntries`, every entry decoded. */
  entriesMs: number;
  iterateMs: number;
}

/**
 * What a flush in the worker reads of a sealed memtable of `mib` MiB: random 16 B keys, or keys
 * whose first 8 bytes are the same (`user:000` and 8 random bytes), as keys with a common prefix
 * often are.
 */
async function measureSort(mib: number, keys: 'random' | 'shared'): Promise<SortResult> {
  const m = new Memtable();
  const key = Buffer.allocUnsafe(KEY);
  const value = Buffer.allocUnsafe(VALUE);
  randomFillSync(value);
  let records = 0;
  let made = 0;
  // Key number j: its bytes are a function of j (j itself, for uniqueness, and a hash of it), so
  // that writing key j again overwrites it. One write in ten overwrites an earlier key, so the
  // walk also steps over older versions.
  const makeKey = (j: number): void => {
    const h = Math.imul(j ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
    if (keys === 'shared') {
      key.write('user:000', 0, 'latin1');
      key.writeUInt32BE(h, 8);
      key.writeUInt32BE(j, 12);
    } else {
      key.writeUInt32BE(h, 0);
      key.writeUInt32BE(j, 4);
      key.writeUInt32BE(Math.imul(h, 0x85ebca6b) >>> 0, 8);
      key.writeUInt32BE(Math.imul(h, 0xc2b2ae35) >>> 0, 12);
    }
  };
  while (m.approximateBytes < mib * MiB) {
    makeKey(records % 10 === 9 ? Math.floor(Math.random() * made) : made++);
    m.insertChecked({ key, seq: records + 1, kind: 'put', value, expiresAt: undefined });
    records++;
  }
  const frozen = m.seal();
  gc();
  let t0 = performance.now();
  const source = frozen.flushSource();
  const sourceMs = performance.now() - t0;
  let arenaBytes = 0;
  for (const e of source.arena.ends) arenaBytes += e;
  gc();
  const c0 = process.cpuUsage();
  t0 = performance.now();
  const visible = visibleRecords(source.order);
  const walkMs = performance.now() - t0;
  const walkCpuMs = cpuMs(c0);
  gc();
  t0 = performance.now();
  let count = 0;
  for (const e of flushSourceEntries(source)) count += e.seq > 0 ? 1 : 0;
  const entriesMs = performance.now() - t0;
  t0 = performance.now();
  let iterated = 0;
  for (const e of frozen) iterated += e.seq > 0 ? 1 : 0;
  const iterateMs = performance.now() - t0;
  if (count !== frozen.size || iterated !== frozen.size || visible.length !== frozen.size) {
    throw new Error(`flush source: ${count} / ${visible.length} entries, the memtable holds ${frozen.size}`);
  }
  return { keys, mib, entries: frozen.size, records, arenaBytes, sourceMs, walkMs, walkCpuMs, entriesMs, iterateMs };
}

// --- the parent: runs the children, prints the report ---------------------------------------

function arg(name: string, fallback: number): number {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? fallback : Number(a.slice(name.length + 3));
}

function child<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const p = fork(fileURLToPath(import.meta.url), args, { execArgv: [...process.execArgv, '--expose-gc'], stdio: 'inherit' });
    let result: T | undefined;
    p.on('message', (m) => {
      result = m as T;
    });
    p.on('error', reject);
    p.on('exit', (code) =>
      code === 0 && result !== undefined ? resolve(result) : reject(new Error(`child ${args.join(' ')} exited ${code}`)),
    );
  });
}

const fmt = (x: number, digits = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const k = (x: number): string => `${fmt(x / 1000)}k`;

async function main(): Promise<void> {
  const role = process.argv.find((x) => x.startsWith('--child='))?.slice(8);
  const n = arg('n', 1_000_000);
  const sortMib = arg('sort-mib', 64);
  if (role === 'old' || role === 'arena') {
    process.send!(await measureTable(role, n));
    return;
  }
  if (role === 'sort-random' || role === 'sort-shared') {
    process.send!(await measureSort(sortMib, role === 'sort-random' ? 'random' : 'shared'));
    return;
  }
  console.error(`memtable bench: ${fmt(n)} random ${KEY} B keys / ${VALUE} B values; node ${process.version}`);
  const runs = arg('runs', 2);
  const best = new Map<string, TableResult>();
  for (let r = 0; r < runs; r++) {
    for (const impl of ['old', 'arena'] as const) {
      console.error(`  ${impl}, attempt ${r + 1} of ${runs}...`);
      const t = await child<TableResult>([`--child=${impl}`, `--n=${n}`]);
      const b = best.get(impl);
      if (b === undefined || t.insertsPerSec + t.getsPerSec > b.insertsPerSec + b.getsPerSec) best.set(impl, t);
    }
  }
  const rows = [best.get('old')!, best.get('arena')!];
  const sorts: SortResult[] = [];
  for (const keys of ['random', 'shared']) {
    console.error(`  flush source of ${sortMib} MiB, ${keys} keys...`);
    sorts.push(await child<SortResult>([`--child=sort-${keys}`, `--sort-mib=${sortMib}`]));
  }

  const raw = KEY + VALUE;
  console.log(`## Memtable: ${fmt(n)} random ${KEY} B keys / ${VALUE} B values (raw ${raw} B per entry), node ${process.version}\n`);
  console.log('| | B+ tree of entry objects (old) | arena (new) |');
  console.log('| --- | --- | --- |');
  const line = (name: string, f: (r: TableResult) => string): void => console.log(`| ${name} | ${rows.map(f).join(' | ')} |`);
  line('inserts/s (per CPU-second)', (r) => `${k(r.insertsPerSec)} (${k(r.insertsPerCpuSec)})`);
  line('gets/s, random present keys (per CPU-second)', (r) => `${k(r.getsPerSec)} (${k(r.getsPerCpuSec)})`);
  line('frozen scan, entries/s', (r) => k(r.scanPerSec));
  line('held per entry: heap + array buffers', (r) => `${fmt(r.heapPerEntry)} B (${fmt(r.heapPerEntry / raw, 2)}x raw)`);
  line('held per entry: RSS', (r) => `${fmt(r.rssPerEntry)} B`);
  line('approximateBytes per entry', (r) => `${fmt(r.approxPerEntry)} B`);
  line(
    'GC during inserts: total / longest',
    (r) => `${fmt(r.gcInsert.ms)} ms / ${fmt(r.gcInsert.longest, 1)} ms (${r.gcInsert.count} GCs)`,
  );
  line('GC during gets: total / longest', (r) => `${fmt(r.gcGet.ms)} ms / ${fmt(r.gcGet.longest, 1)} ms (${r.gcGet.count} GCs)`);
  const sort = sorts[0]!;
  console.log(
    `\n## A flush's reading of a sealed ${sort.mib} MiB memtable (${fmt(sort.entries)} keys, ${fmt(sort.records)} records, one in ten an overwrite; ${fmt(sort.arenaBytes / MiB, 1)} MiB of records)\n`,
  );
  console.log('| ms | random keys | keys sharing their first 8 bytes |');
  console.log('| --- | --- | --- |');
  const sline = (name: string, f: (r: SortResult) => string): void => console.log(`| ${name} | ${sorts.map(f).join(' | ')} |`);
  sline("flushSource(), on the DB's thread", (r) => fmt(r.sourceMs, 1));
  sline('visibleRecords: the walk of the leaves (CPU)', (r) => `${fmt(r.walkMs)} (${fmt(r.walkCpuMs)})`);
  sline('flushSourceEntries, every entry decoded', (r) => fmt(r.entriesMs));
  sline('iterating the frozen memtable (its B+ tree)', (r) => fmt(r.iterateMs));
}

await main();
