/**
 * Random reads of data past the block cache (issue #11), A/B in one process.
 *
 * `build`: loads `--n` keys (lookup.ts's keys and values) in random order, batches of 1000, default
 * options but for `--cache`; waits for the owed flushes and compactions; closes. The directory is kept.
 * `read`: opens that directory read-only once per `--impl` (each with its own block cache, all
 * sharing the page cache), reads every key once (warm-up), then in rounds runs `--ms` of random
 * `getSync` (and `await get`) of loaded keys on each implementation in turn, timed by the process's CPU time.
 *
 * ```sh
 * npx tsx bench/cold.ts build --dir=/tmp/cold-2M --n=2M
 * npx tsx bench/cold.ts read --dir=/tmp/cold-2M --n=2M --impl=old:/tmp/old/dist/db/index.js --impl=new:src/db/index.ts
 * npx tsx bench/cold.ts read --dir=/tmp/cold-2M --n=2M --only=getSync --profile=/tmp/reads.cpuprofile
 * ```
 *
 * `--profile=FILE` writes a CPU profile (node:inspector) of the timed rounds only: with
 * `node --cpu-prof` the load and the warm-up, which read every key once, would fill most of it.
 *
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Keys } from './db-data.js';
import { lookupKey, lookupValue, permutation } from './lookup-data.js';
import { fmtInt, mdTable, now } from './lib.js';

interface Args {
  cmd: string;
  dir: string;
  n: number;
  value: number;
  cache: number | undefined;
  ms: number;
  rounds: number;
  impls: { label: string; path: string }[];
  only: string[];
  /** Where to write a CPU profile of the timed rounds only (not the load or the warm-up). */
  profile: string | undefined;
}

function count(v: string): number {
  const m = /^([\d.]+)([kKmM]?)$/.exec(v);
  if (!m) throw new Error(`bad count ${v}`);
  return Math.round(Number(m[1]) * (m[2] === '' ? 1 : /k/i.test(m[2]!) ? 1e3 : 1e6));
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    cmd: argv[0] ?? '',
    dir: '',
    n: 1_000_000,
    value: 100,
    cache: undefined,
    ms: 1000,
    rounds: 5,
    impls: [],
    only: ['getSync', 'get'],
    profile: undefined,
  };
  for (const arg of argv.slice(1)) {
    const [name, value = ''] = arg.replace(/^--/, '').split('=', 2) as [string, string?];
    if (name === 'dir') a.dir = value;
    else if (name === 'n') a.n = count(value);
    else if (name === 'value') a.value = Number(value);
    else if (name === 'cache') a.cache = /[mM]$/.test(value) ? Number(value.slice(0, -1)) * 1024 * 1024 : Number(value);
    else if (name === 'ms') a.ms = Number(value);
    else if (name === 'rounds') a.rounds = Number(value);
    else if (name === 'only') a.only = value.split(',');
    else if (name === 'profile') a.profile = path.resolve(value);
    else if (name === 'impl') {
      const at = value.indexOf(':');
      a.impls.push({ label: value.slice(0, at), path: path.resolve(value.slice(at + 1)) });
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (a.impls.length === 0) a.impls.push({ label: 'src', path: new URL('../src/db/index.js', import.meta.url).pathname });
  return a;
}

const args = parseArgs(process.argv.slice(2));
const N = args.n;
const keyOf = (i: number): Buffer => lookupKey(i);
const valueFor = (i: number): Buffer => lookupValue(i, args.value);

interface DBLike {
  batch(ops: { type: 'put'; key: Buffer; value: Buffer }[]): Promise<void>;
  getSync(k: Buffer): Buffer | undefined;
  get(k: Buffer): Promise<Buffer | undefined>;
  stats(): {
    frozenMemtables: number;
    compactionsRunning: number;
    memtable: { entries: number };
    levels: { tables: number; bytes: number; debtBytes: number }[];
    blockCache: { hits: number; misses: number; blocks: number; usedBytes: number };
  };
  close(): Promise<void>;
}
interface DBModule {
  DB: { open(dir: string, options: object): Promise<DBLike> };
}

const options = (readOnly: boolean): object => ({
  keyEncoding: 'binary',
  valueEncoding: 'binary',
  readOnly,
  ...(args.cache === undefined ? {} : { blockCacheSize: args.cache }),
});

function describe(db: DBLike): string {
  const s = db.stats();
  const levels = s.levels
    .map((l, i) => (l.tables > 0 ? `L${i}: ${l.tables} tables, ${(l.bytes / 1e6).toFixed(1)} MB` : ''))
    .filter(Boolean);
  const c = s.blockCache;
  return `memtable: ${fmtInt(s.memtable.entries)} entries; ${levels.join('; ')}; cache: ${fmtInt(c.blocks)} blocks, ${(c.usedBytes / 1e6).toFixed(1)} MB, ${fmtInt(c.hits)} hits, ${fmtInt(c.misses)} misses`;
}

if (args.cmd === 'build') {
  const { DB } = (await import(pathToFileURL(args.impls[0]!.path).href)) as DBModule;
  const db = await DB.open(args.dir, options(false));
  const fill = permutation(N, 1);
  const t0 = now();
  for (let i = 0; i < N; i += 1000) {
    const ops = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) ops.push({ type: 'put' as const, key: keyOf(fill[j]!), value: valueFor(fill[j]!) });
    await db.batch(ops);
  }
  for (let t = 0; t < 30_000; t++) {
    const s = db.stats();
    if (s.frozenMemtables === 0 && s.compactionsRunning === 0 && s.levels.every((l) => l.debtBytes === 0)) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  console.log(`built ${fmtInt(N)} in ${((now() - t0) / 1000).toFixed(1)} s: ${describe(db)}`);
  await db.close();
} else if (args.cmd === 'read') {
  const dbs: { label: string; db: DBLike }[] = [];
  for (const impl of args.impls) {
    const { DB } = (await import(pathToFileURL(impl.path).href)) as DBModule;
    dbs.push({ label: impl.label, db: await DB.open(args.dir, options(true)) });
  }
  // Keys made as they are read (bench:db's Keys): 2M key buffers held for the run would be most
  // of the heap, and every full GC would mark them.
  const order = permutation(N, 4);
  const keyGen = new Keys();
  const key = (i: number): Buffer => keyGen.key(order[i % N]!);
  for (const { label, db } of dbs) {
    for (let i = 0; i < N; i++) if (db.getSync(key(i)) === undefined) throw new Error(`${label}: key ${key(i).toString('latin1')} missing`);
  }
  let at = 0;
  const measure = async (db: DBLike, w: string, ms: number): Promise<{ ops: number; cpuUs: number }> => {
    const cpu0 = process.cpuUsage();
    const deadline = now() + ms;
    let ops = 0;
    if (w === 'getSync') {
      do {
        for (let j = 0; j < 64; j++, ops++) if (db.getSync(key(at++)) === undefined) throw new Error('missing');
      } while (now() < deadline);
    } else {
      do {
        for (let j = 0; j < 64; j++, ops++) if ((await db.get(key(at++))) === undefined) throw new Error('missing');
      } while (now() < deadline);
    }
    const c = process.cpuUsage(cpu0);
    return { ops, cpuUs: c.user + c.system };
  };
  for (const w of args.only) for (const { db } of dbs) await measure(db, w, 200);
  const profiler = args.profile ? await startProfile() : undefined;
  const res = new Map<string, number[]>();
  for (let r = 0; r < args.rounds; r++) {
    for (const w of args.only) {
      for (const { label, db } of dbs) {
        const m = await measure(db, w, args.ms);
        const k = `${w}\t${label}`;
        if (!res.has(k)) res.set(k, []);
        res.get(k)!.push(m.ops / (m.cpuUs / 1e6));
      }
    }
  }
  if (profiler) await profiler.stop(args.profile!);
  const med = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const rows: string[][] = [];
  for (const w of args.only) {
    const base = res.get(`${w}\t${dbs[0]!.label}`)!;
    for (const { label } of dbs) {
      const xs = res.get(`${w}\t${label}`)!;
      const ratio = med(xs.map((x, i) => x / base[i]!));
      rows.push([
        w,
        label,
        fmtInt(med(xs)),
        `${fmtInt(Math.min(...xs))} - ${fmtInt(Math.max(...xs))}`,
        `${(1e6 / med(xs)).toFixed(2)}`,
        ratio.toFixed(2),
      ]);
    }
  }
  console.log(
    `${fmtInt(N)} keys, ${args.value} B values, cache ${args.cache ?? 'default'}, ${args.rounds} rounds of ${args.ms} ms, ops per CPU second`,
  );
  console.log(mdTable(['workload', 'impl', 'ops/s (median)', 'range', 'CPU us/op', `vs ${dbs[0]!.label}`], rows));
  for (const { label, db } of dbs) console.log(`${label}: ${describe(db)}`);
  for (const { db } of dbs) await db.close();
} else {
  console.error(
    'usage: tsx bench/cold.ts build|read --dir=DIR [--n=1M] [--value=100] [--cache=64M] [--ms=1000] [--rounds=5] [--impl=label:path]... [--profile=FILE.cpuprofile]',
  );
  process.exit(2);
}

/** A CPU profile of what runs from now until `stop` (node:inspector, this thread). */
async function startProfile(): Promise<{ stop(file: string): Promise<void> }> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    async stop(file: string): Promise<void> {
      const { profile } = await session.post('Profiler.stop');
      await fs.promises.writeFile(file, JSON.stringify(profile));
      session.disconnect();
      console.log(`CPU profile of the timed rounds: ${file}`);
    },
  };
}
