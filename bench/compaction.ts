/**
 * Where compaction time goes, and what it costs the writers: sediment alone, the `concurrent`
 * workload of bench/db.ts (16 B keys, 100 B values, `--inflight` puts in flight, n random fills
 * then n random overwrites) or the `load` one (`--load`: n random puts in batches of 1000), in
 * this process, with the compaction profile the DB reports (its meter's compaction events and
 * `stats()`), sampled every 100 ms.
 *
 * ```
 * npx tsx bench/compaction.ts --memtable-mib=4 --n=1m        # concurrent, 4 MiB memtable
 * npx tsx bench/compaction.ts --load --n=2m                  # the load, default options
 * npx tsx bench/compaction.ts --dist ...                     # dist/ instead of the sources
 * ```
 * Prints CPU-time-independent figures first (write amplification, bytes rewritten per user
 * byte, L0 peak, stalls), then wall and CPU time (process.cpuUsage: every thread of the process).
 *
 * @module
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { JobProfile } from '../src/db/compaction-job.js';
import { Keys, permutation, Values } from './db-data.js';

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k!, v ?? 'true'] as const;
  }),
);
const count = (s: string | undefined, d: number): number => {
  if (!s) return d;
  const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(s);
  if (!m) throw new Error(`bad count ${s}`);
  return Math.round(Number(m[1]) * (m[2]?.toLowerCase() === 'k' ? 1e3 : m[2]?.toLowerCase() === 'm' ? 1e6 : 1));
};
const load = args.has('load');
const n = count(args.get('n'), load ? 2e6 : 1e6);
const inflight = count(args.get('inflight'), 64);
const memtableMiB = args.has('memtable-mib') ? Number(args.get('memtable-mib')) : undefined;
const extra = args.has('options') ? (JSON.parse(args.get('options')!) as Record<string, unknown>) : {};

const mod = (await import(args.has('dist') ? '../dist/index.js' : '../src/index.js')) as typeof import('../src/index.js');
const { DB } = mod;

const jobs: {
  level: number;
  inputBytes: number;
  bytesRead: number;
  bytesWritten: number;
  durationMs: number;
  inputTables?: number[];
  profile?: JobProfile;
}[] = [];
const meter = {
  counter: () => undefined,
  histogram: () => undefined,
  event: (e: { type: string }) => {
    if (e.type === 'compaction') jobs.push(e as unknown as (typeof jobs)[number]);
  },
};

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sediment-compaction-'));
const db = await DB.open<Buffer, Buffer>(dir, {
  keyEncoding: 'binary',
  valueEncoding: 'binary',
  meter: meter as never,
  ...(memtableMiB ? { memtableSize: memtableMiB * 1024 * 1024 } : {}),
  ...extra,
});
const keys = new Keys();
const values = new Values(100);

let maxL0 = 0;
let maxFrozen = 0;
let samples = 0;
let idleOverTrigger = 0;
let overTrigger = 0;
const trigger = (extra.l0CompactionTrigger as number | undefined) ?? 4;
const sampler = setInterval(() => {
  const s = db.stats();
  samples++;
  maxL0 = Math.max(maxL0, s.levels[0]!.tables);
  maxFrozen = Math.max(maxFrozen, s.frozenMemtables);
  if (s.levels[0]!.tables >= trigger) {
    overTrigger++;
    if (s.compactionsRunning === 0) idleOverTrigger++;
  }
}, 100);

const cpu0 = process.cpuUsage();
const t0 = performance.now();
const segments: number[] = [];
if (load) {
  const order = permutation(n, 1);
  const seg = Math.max(1000, Math.floor(n / 10));
  let segStart = performance.now();
  for (let i = 0; i < n; i += 1000) {
    const ops = [];
    for (let k = i; k < Math.min(n, i + 1000); k++) {
      const j = order(k);
      ops.push({ type: 'put' as const, key: keys.key(j), value: values.value(j, 0) });
    }
    await db.batch(ops);
    if ((i + 1000) % seg === 0) {
      const now = performance.now();
      segments.push(Math.round((seg / (now - segStart)) * 1000));
      segStart = now;
    }
  }
} else {
  for (const [seed, g] of [
    [1, 0],
    [2, 1],
  ] as const) {
    const order = permutation(n, seed);
    let next = 0;
    await Promise.all(
      Array.from({ length: inflight }, async () => {
        for (let i = next++; i < n; i = next++) {
          const j = order(i);
          await db.put(keys.key(j), values.value(j, g));
        }
      }),
    );
  }
}
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
clearInterval(sampler);
const s = db.stats();
const timedJobs = jobs.length;
await db.compact().catch(() => undefined);
const settled = db.stats();
await db.close();
await fs.rm(dir, { recursive: true, force: true });

const MB = (b: number): string => (b / 1e6).toFixed(1);
const puts = load ? n : 2 * n;
const sum = (f: (p: JobProfile) => number, list = jobs.slice(0, timedJobs)): number =>
  list.reduce((a, j) => a + (j.profile ? f(j.profile) : 0), 0);
const l0jobs = jobs.slice(0, timedJobs).filter((j) => j.level === 0 && j.profile);
const report = {
  workload: load ? `load ${n} in batches of 1000` : `concurrent ${n} fill + ${n} overwrite, ${inflight} in flight`,
  memtableMiB: memtableMiB ?? 64,
  options: extra,
  putsPerSec: Math.round((puts / ms) * 1000),
  wallS: +(ms / 1000).toFixed(1),
  cpuS: +((cpu.user + cpu.system) / 1e6).toFixed(1),
  cpuUsPerPut: +((cpu.user + cpu.system) / puts).toFixed(2),
  segments,
  writeAmplification: +s.writeAmplification.toFixed(2),
  settledWA: +((settled.flushBytes + settled.compactionBytesWritten) / settled.userBytes).toFixed(2),
  userMB: MB(s.userBytes),
  flushMB: MB(s.flushBytes),
  compactionMBReadWritten: `${MB(s.compactionBytesRead)} / ${MB(s.compactionBytesWritten)}`,
  compactions: s.compactions,
  trivialMoves: s.trivialMoves,
  l0CompactionL1MB: MB(s.l0CompactionL1BytesRead),
  l0ToL1Jobs: l0jobs.length,
  l0ToL1InputTablesLast5: l0jobs.length ? l0jobs.map((j) => (j.inputTables ?? []).join('+')).slice(-5) : [],
  stalls: s.writeStalls,
  stallMs: Math.round(s.writeStallMs),
  slowdowns: s.writeSlowdowns,
  slowdownMs: Math.round(s.writeSlowdownMs),
  maxL0,
  maxFrozen,
  levels: s.levels.map((l) => `${l.tables}/${MB(l.bytes)}`).join(' '),
  l0OverTriggerShare: samples ? +(overTrigger / samples).toFixed(2) : 0,
  l0OverTriggerNoCompactionShare: samples ? +(idleOverTrigger / samples).toFixed(2) : 0,
  perLevel: [0, 1, 2, 3, 4, 5].map((l) => {
    const js = jobs.slice(0, timedJobs).filter((j) => j.level === l);
    return `L${l}: ${js.length} jobs, ${MB(js.reduce((a, j) => a + j.bytesRead, 0))} MB read, ${MB(js.reduce((a, j) => a + j.bytesWritten, 0))} MB written`;
  }),
  compactionTime: {
    jobS: +(sum((p) => p.totalMs) / 1000).toFixed(1),
    readS: +(sum((p) => p.readMs) / 1000).toFixed(1),
    writeS: +(sum((p) => p.writeMs) / 1000).toFixed(1),
    finishS: +(sum((p) => p.finishMs) / 1000).toFixed(1),
    yieldedS: +(sum((p) => p.yieldedMs) / 1000).toFixed(1),
    grandparentCuts: sum((p) => p.grandparentCuts),
  },
};
console.log(JSON.stringify(report, null, 1));
