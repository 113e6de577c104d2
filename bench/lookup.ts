/**
 * The lookup path (issue #11): point reads and full scans of a compacted DB, against lmdb's
 * synchronous `get` and `getRange` in the same process.
 *
 * Builds a DB of `--n` keys (16 B decimal keys, the even numbers; 100 B values, half random and
 * half a copy of that half, as bench/db.ts writes them) in random order, compacts it fully, and
 * fills lmdb with the same data; one read of every key warms the block cache. Then, in rounds, each workload runs for `--ms` on each engine in
 * turn, so that a burst of load from other processes hits every engine alike:
 *
 * | workload      | sediment                                 | lmdb                      |
 * | ------------- | ---------------------------------------- | ------------------------- |
 * | getSync       | `db.getSync(k)` in a loop                | `db.get(k)` in a loop     |
 * | get           | `await db.get(k)`, one at a time         | (same as getSync)         |
 * | missSync      | `db.getSync(k)`, keys not in the DB      | `db.get(k)`, same keys    |
 * | miss          | `await db.get(k)`, keys not in the DB    | (same as missSync)        |
 * | scan          | `for await` over `db.iterator()`         | `for...of` over `getRange()` |
 * | nextv         | `nextv(1000)` until empty                | (same as scan)            |
 *
 * Keys are built before the clock starts (one Buffer each), read in a fixed random order.
 * `--cpu` divides by the process's CPU time instead of the elapsed time: on a machine shared with
 * other work it moves less from run to run (a process waiting for a CPU is not charged).
 *
 * A/B comparison: `--impl=label:path` (repeatable) loads the DB module from `path` (e.g. a build
 * of another commit: `tsc -p tsconfig.build.json --outDir /tmp/old/dist`, then
 * `--impl=old:/tmp/old/dist/db/index.js`); each implementation gets its own copy of the data and
 * its turn in every round. Default: this checkout's sources (through tsx).
 *
 * ```sh
 * npx tsx bench/lookup.ts                        # 200k keys, 3 rounds of 1 s per workload and engine
 * npx tsx bench/lookup.ts --only=getSync,miss --rounds=5
 * node --cpu-prof --import tsx bench/lookup.ts --only=getSync --no-lmdb --rounds=1 --ms=5000
 * ```
 *
 * `--live` skips the full compaction: the DB as a random load leaves it (memtable, L0 tables; the
 * owed flushes and L0 compactions done), as bench:db's reads family reads it.
 *
 * Prints, per workload and engine, the median ops/s over the rounds with the range, the GC
 * pauses of the timed runs (perf_hooks 'gc' entries, main thread), and the
 * ratio to lmdb and (with several `--impl`) to the first implementation: the median of the
 * per-round ratios, each taken between runs a second apart, which a change in the machine's load
 * moves less than the ops/s themselves.
 *
 * @module
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { open as openLmdb } from 'lmdb';
import { fmtInt, mdTable, now } from './lib.js';
import { lookupKey, lookupValue, permutation } from './lookup-data.js';

const KEY = 16;
const WORKLOADS = ['getSync', 'get', 'missSync', 'miss', 'scan', 'nextv'] as const;
type Workload = (typeof WORKLOADS)[number];

interface Args {
  n: number;
  ms: number;
  rounds: number;
  impls: { label: string; path: string }[];
  lmdb: boolean;
  only: Workload[];
  /** Time by the process's CPU time (user + system) instead of the wall clock. */
  cpu: boolean;
  /**
   * Leave sediment's DB as the load left it (memtable, L0 tables, owed compactions done but no
   * full compaction): the state of a live DB, as `npm run bench:db -- --only=reads` reads it.
   */
  live: boolean;
  /** Value size in bytes (100 by default). */
  value: number;
  /** sediment's `blockCacheSize`; undefined: the default. */
  cache: number | undefined;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    n: 200_000,
    ms: 1000,
    rounds: 3,
    impls: [],
    lmdb: true,
    only: [...WORKLOADS],
    cpu: false,
    live: false,
    value: 100,
    cache: undefined,
  };
  for (const arg of argv) {
    const [name, value = ''] = arg.replace(/^--/, '').split('=', 2) as [string, string?];
    if (name === 'n') a.n = Number(value.replace(/k$/i, '000').replace(/M$/, '000000'));
    else if (name === 'ms') a.ms = Number(value);
    else if (name === 'rounds') a.rounds = Number(value);
    else if (name === 'no-lmdb') a.lmdb = false;
    else if (name === 'cpu') a.cpu = true;
    else if (name === 'live') a.live = true;
    else if (name === 'value') a.value = Number(value);
    else if (name === 'cache') a.cache = Number(value.replace(/[Mm]$/, '')) * (/[Mm]$/.test(value) ? 1024 * 1024 : 1);
    else if (name === 'only') a.only = value.split(',') as Workload[];
    else if (name === 'impl') {
      const at = value.indexOf(':');
      a.impls.push({ label: value.slice(0, at), path: path.resolve(value.slice(at + 1)) });
    } else {
      console.error(
        'usage: tsx bench/lookup.ts [--n=200k] [--ms=1000] [--rounds=3] [--only=getSync,get,missSync,miss,scan,nextv] [--no-lmdb] [--cpu] [--live] [--value=100] [--cache=64M] [--impl=label:path]...',
      );
      process.exit(2);
    }
  }
  for (const w of a.only) if (!WORKLOADS.includes(w)) throw new Error(`unknown workload ${w}`);
  if (a.impls.length === 0) a.impls.push({ label: 'sediment', path: new URL('../src/db/index.js', import.meta.url).pathname });
  return a;
}

const args = parseArgs(process.argv.slice(2));
const N = args.n;
const VALUE = args.value;
const keyOf = (i: number, odd: boolean): Buffer => lookupKey(i, odd);
const valueFor = (i: number): Buffer => lookupValue(i, VALUE);
const order = permutation(N, 4);
const hits: Buffer[] = Array.from(order, (i) => keyOf(i, false));
const misses: Buffer[] = Array.from(order, (i) => keyOf(i, true));

/** What a workload needs from an engine. */
interface Engine {
  label: string;
  getSync(k: Buffer): Buffer | undefined;
  /** Undefined for an engine without an asynchronous get: `get` and `miss` then time `getSync`. */
  get: ((k: Buffer) => Promise<Buffer | undefined>) | undefined;
  /** Entries seen by one full scan. */
  scan(): Promise<number> | number;
  nextv(): Promise<number> | number;
  /** What the engine holds, for the report. */
  describe(): string;
  close(): Promise<void>;
}

interface DBModule {
  DB: {
    open(
      dir: string,
      options: object,
    ): Promise<{
      batch(ops: { type: 'put'; key: Buffer; value: Buffer }[]): Promise<void>;
      compact(): Promise<void>;
      getSync(k: Buffer): Buffer | undefined;
      get(k: Buffer): Promise<Buffer | undefined>;
      iterator(): AsyncIterable<[Buffer, Buffer]> & { nextv(n: number): Promise<[Buffer, Buffer][]>; close(): Promise<void> };
      stats(): {
        frozenMemtables: number;
        memtable: { entries: number };
        levels: { tables: number; bytes: number }[];
        blockCache: { hits: number; misses: number; blocks: number; usedBytes: number };
      };
      close(): Promise<void>;
    }>;
  };
}

const dirs: string[] = [];
function tempDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sediment-lookup-${tag}-`));
  dirs.push(dir);
  return dir;
}

async function openSediment(label: string, modulePath: string): Promise<Engine> {
  const { DB } = (await import(pathToFileURL(modulePath).href)) as DBModule;
  const db = await DB.open(tempDir(label), {
    keyEncoding: 'binary',
    valueEncoding: 'binary',
    ...(args.cache === undefined ? {} : { blockCacheSize: args.cache }),
  });
  const fill = permutation(N, 1);
  for (let i = 0; i < N; i += 1000) {
    const ops = [];
    for (let j = i; j < Math.min(N, i + 1000); j++)
      ops.push({ type: 'put' as const, key: keyOf(fill[j]!, false), value: valueFor(fill[j]!) });
    await db.batch(ops);
  }
  if (!args.live) await db.compact();
  else {
    // The owed flushes and compactions, as bench:db's reads family waits for them.
    for (let t = 0; t < 3000; t++) {
      const s = db.stats();
      if (s.frozenMemtables === 0 && s.levels[0]!.tables < 4) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  // Steady state: every block in the cache before the clock starts.
  for (const k of hits) if (db.getSync(k) === undefined) throw new Error(`${label}: key ${k.toString('latin1')} missing`);
  return {
    label,
    getSync: (k) => db.getSync(k),
    get: (k) => db.get(k),
    async scan() {
      let n = 0;
      for await (const [k, v] of db.iterator()) n += k.length > 0 && v.length > 0 ? 1 : 0;
      return n;
    },
    async nextv() {
      const it = db.iterator();
      let n = 0;
      for (let chunk = await it.nextv(1000); chunk.length > 0; chunk = await it.nextv(1000)) n += chunk.length;
      await it.close();
      return n;
    },
    describe() {
      const s = db.stats();
      const levels = s.levels
        .map((l, i) => (l.tables > 0 ? `L${i}: ${l.tables} tables, ${(l.bytes / 1e6).toFixed(1)} MB` : ''))
        .filter(Boolean);
      const c = s.blockCache;
      return `memtable: ${fmtInt(s.memtable.entries)} entries; ${levels.join('; ')}; block cache: ${fmtInt(c.blocks)} blocks, ${(c.usedBytes / 1e6).toFixed(1)} MB, ${fmtInt(c.hits)} hits, ${fmtInt(c.misses)} misses`;
    },
    close: () => db.close(),
  };
}

async function openLmdbEngine(): Promise<Engine> {
  const db = openLmdb<Buffer, Buffer>({ path: path.join(tempDir('lmdb'), 'lmdb'), encoding: 'binary', keyEncoding: 'binary' });
  const fill = permutation(N, 1);
  for (let i = 0; i < N; i += 10_000) {
    await db.transaction(() => {
      for (let j = i; j < Math.min(N, i + 10_000); j++) db.putSync(keyOf(fill[j]!, false), valueFor(fill[j]!));
    });
  }
  await db.flushed;
  const scan = (): number => {
    let n = 0;
    for (const { key, value } of db.getRange()) n += key.length > 0 && value.length > 0 ? 1 : 0;
    return n;
  };
  return {
    label: 'lmdb',
    getSync: (k) => db.get(k),
    get: undefined,
    scan,
    nextv: scan,
    describe: () => '',
    close: () => db.close(),
  };
}

/** GC pauses (perf_hooks 'gc' entries) seen during the timed runs, per workload and engine. */
interface GcTally {
  count: number;
  totalMs: number;
  maxMs: number;
  over2ms: number;
}
const gcTallies = new Map<string, GcTally>();
let gcTally: GcTally | undefined;
const gcObserver = new PerformanceObserver((list) => {
  if (gcTally === undefined) return;
  for (const entry of list.getEntries()) {
    gcTally.count++;
    gcTally.totalMs += entry.duration;
    gcTally.maxMs = Math.max(gcTally.maxMs, entry.duration);
    if (entry.duration >= 2) gcTally.over2ms++;
  }
});
gcObserver.observe({ entryTypes: ['gc'] });

/** Ops per second of `workload` on `e`, run for about `ms`; `gc` (when given) receives its GC pauses. */
async function measure(e: Engine, workload: Workload, ms: number, gc?: GcTally): Promise<number> {
  // Entries are delivered asynchronously: those of an earlier run arrive before this one starts.
  await new Promise((resolve) => setImmediate(resolve));
  gcTally = gc;
  const keys = workload === 'missSync' || workload === 'miss' ? misses : hits;
  const t0 = now();
  const cpu0 = process.cpuUsage();
  const deadline = t0 + ms;
  let ops = 0;
  let found = 0;
  const get = e.get;
  switch (get === undefined && workload === 'get' ? 'getSync' : get === undefined && workload === 'miss' ? 'missSync' : workload) {
    case 'getSync':
    case 'missSync':
      for (let i = 0; ; ) {
        for (const stop = i + 64; i < stop; i++) if (e.getSync(keys[i % N]!) !== undefined) found++;
        if (now() >= deadline) {
          ops = i;
          break;
        }
      }
      break;
    case 'get':
    case 'miss':
      for (let i = 0; ; ) {
        for (const stop = i + 64; i < stop; i++) if ((await get!(keys[i % N]!)) !== undefined) found++;
        if (now() >= deadline) {
          ops = i;
          break;
        }
      }
      break;
    case 'scan':
    case 'nextv':
      do {
        const n = await (workload === 'scan' ? e.scan() : e.nextv());
        if (n !== N) throw new Error(`${e.label} ${workload} saw ${n} entries, expected ${N}`);
        ops += n;
        found += n;
      } while (now() < deadline);
      break;
  }
  const cpu = process.cpuUsage(cpu0);
  for (const entry of gcObserver.takeRecords()) {
    if (gc === undefined) break;
    gc.count++;
    gc.totalMs += entry.duration;
    gc.maxMs = Math.max(gc.maxMs, entry.duration);
    if (entry.duration >= 2) gc.over2ms++;
  }
  gcTally = undefined;
  const elapsed = args.cpu ? (cpu.user + cpu.system) / 1000 : now() - t0;
  const expected = workload === 'missSync' || workload === 'miss' ? 0 : ops;
  if (found !== expected) throw new Error(`${e.label} ${workload}: found ${found} of ${ops}, expected ${expected}`);
  return ops / (elapsed / 1000);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const engines: Engine[] = [];
const t0 = now();
for (const impl of args.impls) {
  engines.push(await openSediment(impl.label, impl.path));
  console.error(`${impl.label}: ${fmtInt(N)} keys written${args.live ? '' : ' and compacted'} (${((now() - t0) / 1000).toFixed(1)} s)`);
}
if (args.lmdb) engines.push(await openLmdbEngine());

// One warm-up pass, not counted.
for (const w of args.only) for (const e of engines) await measure(e, w, Math.min(200, args.ms));

const results = new Map<string, number[]>();
for (let r = 0; r < args.rounds; r++) {
  for (const w of args.only) {
    for (const e of engines) {
      const key = `${w}\t${e.label}`;
      if (!results.has(key)) results.set(key, []);
      if (!gcTallies.has(key)) gcTallies.set(key, { count: 0, totalMs: 0, maxMs: 0, over2ms: 0 });
      results.get(key)!.push(await measure(e, w, args.ms, gcTallies.get(key)));
    }
  }
  console.error(`round ${r + 1}/${args.rounds} done`);
}

const rows: string[][] = [];
for (const w of args.only) {
  for (const e of engines) {
    const xs = results.get(`${w}\t${e.label}`)!;
    const ratio = (base: number[] | undefined): string => {
      if (base === undefined || base === xs) return '';
      const r = xs.map((x, i) => x / base[i]!);
      return `${median(r).toFixed(2)}x (${Math.min(...r).toFixed(2)}-${Math.max(...r).toFixed(2)})`;
    };
    const gc = gcTallies.get(`${w}\t${e.label}`)!;
    const row = [
      w,
      e.label,
      fmtInt(median(xs)),
      `${fmtInt(Math.min(...xs))} - ${fmtInt(Math.max(...xs))}`,
      `${gc.maxMs.toFixed(1)} / ${gc.over2ms} / ${gc.totalMs.toFixed(0)}`,
    ];
    if (args.lmdb) row.push(e.label === 'lmdb' ? '' : ratio(results.get(`${w}\tlmdb`)));
    if (args.impls.length > 1) row.push(e.label === 'lmdb' ? '' : ratio(results.get(`${w}\t${engines[0]!.label}`)));
    rows.push(row);
  }
}
console.log(
  `${fmtInt(N)} keys of ${KEY} B, values of ${VALUE} B, ${args.rounds} rounds of ${args.ms} ms, ops per ${args.cpu ? 'CPU' : 'wall-clock'} second; node ${process.version}, load ${os.loadavg()[0]!.toFixed(2)}`,
);
const head = ['workload', 'engine', 'ops/s (median)', 'range', 'GC: longest ms / pauses >= 2 ms / total ms'];
if (args.lmdb) head.push('vs lmdb');
if (args.impls.length > 1) head.push(`vs ${engines[0]!.label}`);
console.log(mdTable(head, rows));
for (const e of engines) if (e.describe()) console.log(`${e.label}: ${e.describe()}`);

gcObserver.disconnect();
for (const e of engines) await e.close();
for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
