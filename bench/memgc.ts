/**
 * What the garbage collector does during concurrent puts (issue #10, §2), two builds A/B:
 *
 * ```sh
 * npx tsx bench/memgc.ts                              # dist/ (npm run build first), 3 runs
 * npx tsx bench/memgc.ts --dist=/tmp/base/dist --dist=dist --runs=3 --n=1M --mib=64
 * npx tsx bench/memgc.ts --keep=/tmp/gc                # also keep each run's V8 trace there
 * ```
 *
 * Each run is a child process (`node --trace-gc-nvp`) that opens a DB from one build's `dist/`
 * with a `--mib` MiB memtable and does bench:db's `concurrent` workload: 64 async loops each
 * awaiting its own put, `--n` random fills (16 B keys, 100 B values) then `--n` random
 * overwrites. Runs alternate between the builds. Per run, from V8's own trace (one line per
 * collection of the main thread) and from `perf_hooks` 'gc' entries:
 *
 * - work the collector was given, which a loaded machine does not change: bytes that survived
 *   scavenges, bytes promoted to the old generation, number of scavenges and mark-compacts;
 * - the pauses as measured (wall clock: on a shared machine they stretch when a GC helper thread
 *   waits for a CPU, so compare medians, never one run): total, longest, over 2 and 5 ms;
 * - the child's CPU time and puts per CPU-second.
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Keys, Values, permutation } from './db-data.js';
import { drive } from './db-run.js';

interface ChildResult {
  puts: number;
  ms: number;
  cpuMs: number;
  pauses: number[];
}

interface RunResult extends ChildResult {
  dist: string;
  scavenges: number;
  markCompacts: number;
  survivedMB: number;
  promotedMB: number;
  /** Longest pause by V8's trace, per kind. */
  longestScavenge: number;
  longestMarkCompact: number;
}

const SELF = fileURLToPath(import.meta.url);

async function child(dist: string, n: number, mib: number): Promise<void> {
  const { DB } = (await import(pathToFileURL(path.resolve(dist, 'index.js')).href)) as typeof import('../src/index.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgc-'));
  try {
    const db = await DB.open<Buffer, Buffer>(dir, { keyEncoding: 'binary', valueEncoding: 'binary', memtableSize: mib * 1024 * 1024 });
    const keys = new Keys();
    const values = new Values(100);
    const pauses: number[] = [];
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) pauses.push(e.duration);
    });
    obs.observe({ entryTypes: ['gc'] });
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let puts = 0;
    for (const [seed, g] of [
      [1, 0],
      [2, 1],
    ] as const) {
      const order = permutation(n, seed);
      puts += (await drive(n, 64, 10 * 60_000, (i) => db.put(keys.key(order(i)), values.value(order(i), g)))).ops;
    }
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    for (const e of obs.takeRecords()) pauses.push(e.duration);
    obs.disconnect();
    await db.close();
    const r: ChildResult = { puts, ms, cpuMs: (cpu.user + cpu.system) / 1000, pauses };
    process.stderr.write(`RESULT ${JSON.stringify(r)}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The fields of V8's `--trace-gc-nvp` lines (`[pid:isolate] 277 ms: pause=1.8 gc=s promoted=...`)
 * of the main thread's isolate: the one of the first line (loading the code collects long before
 * the DB starts its background worker, whose isolate's collections do not stop the event loop).
 */
function nvp(stdout: string): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  let main: string | undefined;
  for (const line of stdout.split('\n')) {
    if (!line.includes(' pause=')) continue;
    const isolate = line.slice(0, line.indexOf(']') + 1);
    main ??= isolate;
    if (isolate !== main) continue;
    const fields: Record<string, string> = {};
    for (const kv of line.split(' ')) {
      const eq = kv.indexOf('=');
      if (eq > 0) fields[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    out.push(fields);
  }
  return out;
}

function runOnce(dist: string, n: number, mib: number): RunResult {
  const r = spawnSync(
    process.execPath,
    ['--trace-gc-nvp', ...process.execArgv, SELF, '--child', `--dist=${dist}`, `--n=${n}`, `--mib=${mib}`],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 30,
    },
  );
  const line = r.stderr.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || line === undefined) throw new Error(`child failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const res = JSON.parse(line.slice(7)) as ChildResult;
  const keep = arg('keep')[0];
  if (keep !== undefined)
    fs.writeFileSync(path.join(keep, `nvp-${path.basename(path.dirname(path.resolve(dist)))}-${Date.now()}.txt`), r.stdout);
  const gcs = nvp(r.stdout);
  const num = (f: Record<string, string>, k: string): number => Number(f[k] ?? 0);
  const scav = gcs.filter((f) => f.gc === 's');
  const mc = gcs.filter((f) => f.gc === 'mc');
  return {
    ...res,
    dist,
    scavenges: scav.length,
    markCompacts: mc.length,
    survivedMB: scav.reduce((s, f) => s + num(f, 'new_space_survived'), 0) / 1e6,
    promotedMB: gcs.reduce((s, f) => s + num(f, 'promoted'), 0) / 1e6,
    longestScavenge: Math.max(0, ...scav.map((f) => num(f, 'pause'))),
    longestMarkCompact: Math.max(0, ...mc.map((f) => num(f, 'pause'))),
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function arg(name: string): string[] {
  return process.argv.filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
}

function count(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(s);
  if (!m) throw new Error(`not a count: ${s}`);
  return Math.round(Number(m[1]) * (m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1e3 : 1e6));
}

const n = count(arg('n')[0] ?? '1M');
const mib = Number(arg('mib')[0] ?? 64);
const dists = arg('dist');
if (process.argv.includes('--child')) await child(dists[0]!, n, mib);
else {
  const builds = dists.length > 0 ? dists : [fileURLToPath(new URL('../dist', import.meta.url))];
  const runs = Number(arg('runs')[0] ?? 3);
  const results: RunResult[] = [];
  for (let i = 0; i < runs; i++)
    for (const dist of builds) {
      process.stderr.write(`run ${i + 1}/${runs}: ${dist}\n`);
      const r = runOnce(dist, n, mib);
      results.push(r);
      process.stderr.write(
        `  ${r.puts} puts, ${((r.puts / r.cpuMs) * 1000).toFixed(0)}/CPU-s, GC ${r.pauses.reduce((a, b) => a + b, 0).toFixed(0)} ms, longest ${Math.max(...r.pauses).toFixed(1)} ms, ` +
          `${r.scavenges} scavenges (survived ${r.survivedMB.toFixed(0)} MB), ${r.markCompacts} mark-compacts, promoted ${r.promotedMB.toFixed(1)} MB\n`,
      );
    }
  console.log(
    `| build | puts | puts/CPU-s | CPU s | GC ms | pauses > 2 / > 5 ms | longest ms (scavenge / mark-compact) | scavenges | survived MB | promoted MB | mark-compacts |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const dist of builds) {
    const rs = results.filter((r) => r.dist === dist);
    const m = (f: (r: RunResult) => number, d = 0): string => median(rs.map(f)).toFixed(d);
    console.log(
      `| ${dist} | ${m((r) => r.puts)} | ${m((r) => (r.puts / r.cpuMs) * 1000)} | ${m((r) => r.cpuMs / 1000, 1)} | ${m((r) => r.pauses.reduce((a, b) => a + b, 0))} | ` +
        `${m((r) => r.pauses.filter((p) => p > 2).length)} / ${m((r) => r.pauses.filter((p) => p > 5).length)} | ` +
        `${m((r) => Math.max(...r.pauses), 1)} (${m((r) => r.longestScavenge, 1)} / ${m((r) => r.longestMarkCompact, 1)}) | ` +
        `${m((r) => r.scavenges)} | ${m((r) => r.survivedMB)} | ${m((r) => r.promotedMB, 1)} | ${m((r) => r.markCompacts)} |`,
    );
  }
  console.log(`\nmedians of ${runs} runs per build, alternating; ${n} fills + ${n} overwrites, 64 in flight, ${mib} MiB memtable`);
}
