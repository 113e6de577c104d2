/**
 * The report of the child-process workloads (bench/db-units.ts) and the targets of issues #10
 * and #11: markdown tables, and the target list as data for the JSON.
 *
 * Ratios are this engine ÷ the peer named in the column: above 1.00x this engine does more
 * operations per second (or, for latencies and delays, takes longer).
 *
 * @module
 */
import { DEFAULT_WRITE_BUFFER, SEDIMENT_BLOCK_CACHE, type EngineName } from './db-engines.js';
import type { PhaseResult, UnitFamily, UnitResult } from './db-units.js';
import { fmtInt, fmtX, mdTable } from './lib.js';

const MiB = 1024 * 1024;
const MBf = (b: number | undefined): string => (b === undefined || !Number.isFinite(b) ? '-' : (b / 1e6).toFixed(1));
const MiBf = (b: number | undefined): string => (b === undefined || !Number.isFinite(b) ? '-' : `${fmtInt(b / MiB)} MiB`);
const us = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : x >= 100 ? fmtInt(x) : x.toFixed(1));
const ms1 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : x >= 100 ? fmtInt(x) : x.toFixed(1));
const ratio = (a: number | undefined, b: number | undefined): string =>
  a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? fmtX(a / b) : '-';
const pct = (r: number | undefined): string => (r === undefined || !Number.isFinite(r) ? '-' : `${(r * 100).toFixed(1)}%`);

/** Write-buffer label: '64 MiB'; lmdb has none. */
export const bufferLabel = (u: UnitResult): string => {
  const b = u.spec.writeBuffer ?? DEFAULT_WRITE_BUFFER[u.spec.engine];
  return b === undefined ? 'n/a' : `${b / MiB} MiB`;
};

const bufferOf = (u: UnitResult): number | undefined => u.spec.writeBuffer ?? DEFAULT_WRITE_BUFFER[u.spec.engine];

const phase = (u: UnitResult | undefined, workload: string, mode?: string): PhaseResult | undefined =>
  u?.phases.find((p) => p.workload === workload && (mode === undefined || p.mode === mode));

function unitsOf(units: readonly UnitResult[], family: UnitFamily): UnitResult[] {
  return units.filter((u) => u.spec.family === family);
}

function unitOf(units: readonly UnitResult[], family: UnitFamily, engine: EngineName, buffer?: number): UnitResult | undefined {
  return units.find((u) => u.spec.family === family && u.spec.engine === engine && (buffer === undefined || bufferOf(u) === buffer));
}

const cpuCell = (p: PhaseResult): string =>
  `${((p.cpu.processMs / p.ms) * 100).toFixed(0)}% / ${Number.isFinite(p.cpu.mainWaitMs) ? `${((p.cpu.mainWaitMs / p.ms) * 100).toFixed(0)}%` : '-'}`;
const eldCell = (p: PhaseResult): string => (p.eld ? `${ms1(p.eld.p50Ms)} / ${ms1(p.eld.p99Ms)} / ${ms1(p.eld.maxMs)}` : '-');
const gcKinds = (p: PhaseResult): string =>
  p.gc
    ? Object.entries(p.gc.byKind)
        .filter(([k]) => k !== 'weakcb')
        .map(([k, v]) => `${k} ${v.count} (${fmtInt(v.ms)} ms)`)
        .join(', ') || 'none'
    : '-';

// --- sections --------------------------------------------------------------------------------

function concurrentSection(units: readonly UnitResult[], print: (s?: string) => void): void {
  const cs = unitsOf(units, 'concurrent');
  if (cs.length === 0) return;
  const n = cs[0]!.spec.n;
  print();
  print(
    `## Concurrent writes (#10): ${cs[0]!.spec.inflight} puts in flight, ${fmtInt(n)} random fills then ${fmtInt(n)} random overwrites`,
  );
  print();
  print(
    `${cs[0]!.spec.inflight} async loops, each awaiting its own put; 16 B keys, ${cs[0]!.spec.valueBytes} B values; the overwrite follows the fill without a pause. ` +
      'Each configuration runs in a process of its own. sediment and classic-level run with a 64 MiB and a 4 MiB write buffer ' +
      "(memtableSize; writeBufferSize, whose default is 4 MiB); lmdb has no such setting and runs once. 'vs classic-level' compares with classic-level at the same write buffer " +
      "(lmdb: with classic-level's default). Put latency: call to settled promise, every put. ELD: monitorEventLoopDelay({ resolution: 1 }), the interval between 1 ms timer ticks " +
      '(an idle loop reads ~1 ms). GC: PerformanceObserver gc entries (main-thread pauses). CPU: process CPU / wall, main thread waiting for a CPU / wall.',
  );
  print();
  const classicFor = (u: UnitResult): UnitResult | undefined =>
    unitOf(cs, 'concurrent', 'classic-level', u.spec.engine === 'lmdb' ? DEFAULT_WRITE_BUFFER['classic-level'] : bufferOf(u));
  const lmdb = unitOf(cs, 'concurrent', 'lmdb');
  const rows: string[][] = [];
  for (const u of cs)
    for (const p of u.phases) {
      const c = phase(classicFor(u), p.workload);
      const l = phase(lmdb, p.workload);
      rows.push([
        u.spec.engine,
        bufferLabel(u),
        p.workload,
        fmtInt(p.ops),
        fmtInt(p.opsPerSec),
        u.spec.engine === 'classic-level' ? '-' : ratio(p.opsPerSec, c?.opsPerSec),
        u.spec.engine === 'lmdb' ? '-' : ratio(p.opsPerSec, l?.opsPerSec),
        `${us(p.lat?.p50)} / ${us(p.lat?.p99)} / ${us(p.lat?.max)}`,
        eldCell(p),
        p.gc ? `${fmtInt(p.gc.totalMs)} (${pct(p.gc.share)})` : '-',
        p.gc ? `${p.gc.over2ms} / ${p.gc.over5ms}` : '-',
        p.gc ? ms1(p.gc.maxMs) : '-',
        MBf(p.rss),
        cpuCell(p),
      ]);
    }
  print(
    mdTable(
      [
        'engine',
        'write buffer',
        'phase',
        'puts',
        'puts/s',
        'vs classic-level',
        'vs lmdb',
        'put p50 / p99 / max us',
        'ELD p50 / p99 / max ms',
        'GC ms (% of wall)',
        'GC pauses >= 2 / >= 5 ms',
        'longest GC ms',
        'peak RSS MB',
        'CPU proc / wait',
      ],
      rows,
    ),
  );
  print();
  print(
    mdTable(
      ['engine', 'write buffer', 'GC pauses by kind (fillrandom + overwrite)'],
      cs.map((u) => [u.spec.engine, bufferLabel(u), gcKinds(phase(u, 'fillrandom + overwrite') ?? u.phases[0]!)]),
    ),
  );
  const sed = cs.filter((u) => u.spec.engine === 'sediment');
  if (sed.length > 0) {
    print();
    print(
      "sediment's db.stats() over each phase. Stalls: writes held while writes were stopped (too many frozen memtables, or L0 at its stop trigger), " +
        'including those queued behind them, and the wall time writes were stopped (writeStalls, writeStallMs); slowdowns: writes delayed by the L0 slowdown ' +
        '(one 1 ms delay per group of waiting writes) and not stopped, and the wall time of those delays (writeSlowdowns, writeSlowdownMs). ' +
        'WA = (flushBytes + compactionBytesWritten) / userBytes over the phase; "WA settled" adds the compactions ' +
        'it still owed after the last put (finished untimed; "settle s"). Max L0 / frozen: most L0 tables and frozen memtables seen (stats() every 100 ms).',
    );
    print();
    const srows: string[][] = [];
    for (const u of sed)
      for (const p of u.phases) {
        const s = p.sediment;
        if (!s) continue;
        const last = p.workload === 'fillrandom + overwrite';
        srows.push([
          bufferLabel(u),
          p.workload,
          `${fmtInt(s.writeStalls)} (${fmtInt(s.writeStallMs)} ms)`,
          `${fmtInt(s.writeSlowdowns)} (${fmtInt(s.writeSlowdownMs ?? 0)} ms)`,
          fmtInt(s.flushes),
          fmtInt(s.compactions),
          MBf(s.userBytes),
          MBf(s.flushBytes),
          `${MBf(s.compactionBytesRead)} / ${MBf(s.compactionBytesWritten)}`,
          fmtX(s.writeAmplification),
          last && u.settledWriteAmplification !== undefined ? fmtX(u.settledWriteAmplification) : '-',
          last && u.settleMs !== undefined ? (u.settleMs / 1000).toFixed(1) : '-',
          `${s.maxL0Tables} / ${s.maxFrozenMemtables}`,
        ]);
      }
    print(
      mdTable(
        [
          'memtable',
          'phase',
          'stalls (time)',
          'slowdowns',
          'flushes',
          'compactions',
          'user MB',
          'flush MB',
          'compaction MB r / w',
          'WA',
          'WA settled',
          'settle s',
          'max L0 / frozen',
        ],
        srows,
      ),
    );
  }
  print();
  for (const u of cs) print(`- ${u.spec.engine} ${bufferLabel(u)} at the end: ${u.describe}`);
}

function fillbatchSection(units: readonly UnitResult[], print: (s?: string) => void, fillrandom1: FillRandom1 | undefined): void {
  const fs = unitsOf(units, 'fillbatch');
  if (fs.length === 0) return;
  print();
  print(`## fillbatch (#10): ${fmtInt(fs[0]!.spec.n)} random puts in batches of ${fmtInt(fs[0]!.spec.batch)}`);
  print();
  print(
    "Each batch awaited before the next is built; each engine's bulk call: sediment db.batch, classic-level db.batch, lmdb db.transaction(() => putSync x 1000) " +
      '(its default overlappingSync: the promise resolves at commit, the fdatasync overlaps the next transaction). Latency per batch.',
  );
  print();
  const c = phase(unitOf(fs, 'fillbatch', 'classic-level'), 'fillbatch');
  const l = phase(unitOf(fs, 'fillbatch', 'lmdb'), 'fillbatch');
  print(
    mdTable(
      [
        'engine',
        'puts',
        'puts/s',
        'vs classic-level',
        'vs lmdb',
        'batch p50 / p99 / max ms',
        'ELD p50 / p99 / max ms',
        'GC ms (% of wall)',
        'longest GC ms',
        'sediment stalls (time)',
        'CPU proc / wait',
      ],
      fs.map((u) => {
        const p = u.phases[0]!;
        return [
          u.spec.engine,
          fmtInt(p.ops),
          fmtInt(p.opsPerSec),
          ratio(p.opsPerSec, c?.opsPerSec),
          ratio(p.opsPerSec, l?.opsPerSec),
          p.lat ? `${ms1(p.lat.p50 / 1000)} / ${ms1(p.lat.p99 / 1000)} / ${ms1(p.lat.max / 1000)}` : '-',
          eldCell(p),
          p.gc ? `${fmtInt(p.gc.totalMs)} (${pct(p.gc.share)})` : '-',
          p.gc ? ms1(p.gc.maxMs) : '-',
          p.sediment ? `${fmtInt(p.sediment.writeStalls)} (${fmtInt(p.sediment.writeStallMs)} ms)` : '-',
          cpuCell(p),
        ];
      }),
    ),
  );
  if (fillrandom1) {
    print();
    print(
      `fillrandom awaited one at a time is measured by the fillrandom-1 family (in the main process, above): ${Object.entries(fillrandom1)
        .map(([e, v]) => `${e} ${fmtInt(v)}/s`)
        .join(', ')}.`,
    );
  }
}

function readsSection(units: readonly UnitResult[], print: (s?: string) => void): void {
  const rs = unitsOf(units, 'reads');
  if (rs.length === 0) return;
  print();
  print(`## Reads (#11): ${fmtInt(rs[0]!.spec.n)} entries`);
  print();
  print(
    `Each engine in a process of its own: ${fmtInt(rs[0]!.spec.n)} entries loaded in random order in batches of ${fmtInt(rs[0]!.spec.batch)} (untimed; sediment's owed compactions finished), ` +
      `then ${(rs[0]!.spec.readMs / 1000).toFixed(1)} s of each random read, one at a time: existing keys (readrandom) and keys between them (readmissing), ` +
      "with `await db.get` (sediment, classic-level) and with a synchronous get (sediment's getSync; lmdb's get is synchronous, its only kind, so it is the peer of both); " +
      'then full scans (readseq: sediment and classic-level with for await and with nextv(1000), lmdb for-of over getRange()). Latency: every call, us.',
  );
  print();
  const rows: string[][] = [];
  for (const w of ['readrandom', 'readmissing', 'readseq']) {
    const lm = phase(unitOf(rs, 'reads', 'lmdb'), w);
    const cl = unitOf(rs, 'reads', 'classic-level');
    for (const u of rs)
      for (const p of u.phases.filter((x) => x.workload === w)) {
        const c = phase(cl, w, p.mode) ?? phase(cl, w);
        rows.push([
          w,
          u.spec.engine,
          p.mode,
          fmtInt(p.ops),
          fmtInt(p.opsPerSec),
          `${us(p.lat?.p50)} / ${us(p.lat?.p99)} / ${us(p.lat?.max)}`,
          u.spec.engine === 'classic-level' ? '-' : ratio(p.opsPerSec, c?.opsPerSec),
          u.spec.engine === 'lmdb' ? '-' : ratio(p.opsPerSec, lm?.opsPerSec),
          p.gc ? `${ms1(p.gc.maxMs)} (${p.gc.over2ms}, ${fmtInt(p.gc.totalMs)} ms)` : '-',
          cpuCell(p),
        ]);
      }
  }
  print(
    mdTable(
      [
        'workload',
        'engine',
        'how',
        'ops',
        'ops/s',
        'p50 / p99 / max us',
        'vs classic-level',
        'vs lmdb',
        'longest GC ms (pauses >= 2 ms, GC total)',
        'CPU proc / wait',
      ],
      rows,
    ),
  );
  print();
  for (const u of rs) print(`- ${u.spec.engine} after the load: ${u.describe}`);
}

function loadSection(units: readonly UnitResult[], family: 'load' | 'load-1k', print: (s?: string) => void): void {
  const ls = unitsOf(units, family).filter((u) => u.load);
  if (ls.length === 0) return;
  const s0 = ls[0]!.spec;
  const vb = s0.valueBytes >= 1024 ? `${s0.valueBytes / 1024} KiB` : `${s0.valueBytes} B`;
  print();
  print(
    `## Random load of ${fmtInt(s0.n)} entries with ${vb} values, batches of ${fmtInt(s0.batch)} (#11${family === 'load-1k' ? ', reported only' : ''})`,
  );
  print();
  print(
    `Default options, each engine in a process of its own; keys in a pseudo-random order (each once), each batch awaited. Puts/s per segment of ${fmtInt(s0.segment)} puts. ` +
      'Peak RSS: process.memoryUsage.rss() sampled every 100 ms during the load (kernel maxRSS of the process at the end of the load beside it). ' +
      "sediment's tables WA = (flushBytes + compactionBytesWritten) / userBytes over the load, from db.stats() (settled: with the compactions it owed at the end); compaction MB: read / written during the load. " +
      "Then, after sediment's owed compactions (settle s, untimed), random gets of loaded keys one at a time (sediment, classic-level: await get; lmdb: its synchronous get); " +
      "'vs reads' compares with the same engine's readrandom on the reads family's DB.",
  );
  print();
  const cl = ls.find((u) => u.spec.engine === 'classic-level');
  const clLast = cl?.load?.segments.at(-1);
  // The same engine-independent reads in the same run: 'readrandom after' of each peer.
  const readAfter = (engine: string) =>
    ls.find((u) => u.spec.engine === engine)?.phases.find((x) => x.workload.startsWith('readrandom after'));
  print(
    mdTable(
      [
        'engine',
        'loaded',
        'time s',
        'puts/s',
        'first segment',
        'last segment',
        'last / first',
        'last vs classic-level',
        'stalls (time)',
        'slowdowns',
        'tables WA (settled)',
        'compaction MB r / w',
        'peak RSS (kernel max) MB',
        'settle s',
        'readrandom after ops/s',
        'p99 us',
        'vs reads',
        'vs classic-level',
        'vs lmdb',
        'longest GC ms (pauses >= 2 ms)',
      ],
      ls.map((u) => {
        const L = u.load!;
        const p = u.phases[0]!;
        const first = L.segments[0];
        const last = L.segments.at(-1);
        const rd = u.phases.find((x) => x.workload.startsWith('readrandom after'));
        const ref = phase(unitOf(units, 'reads', u.spec.engine), 'readrandom', rd?.mode);
        return [
          u.spec.engine,
          fmtInt(L.loaded),
          (p.ms / 1000).toFixed(1),
          fmtInt(p.opsPerSec),
          first ? fmtInt(first.opsPerSec) : '-',
          last ? fmtInt(last.opsPerSec) : '-',
          ratio(last?.opsPerSec, first?.opsPerSec),
          u.spec.engine === 'classic-level' ? '-' : ratio(last?.opsPerSec, clLast?.opsPerSec),
          p.sediment ? `${fmtInt(p.sediment.writeStalls)} (${fmtInt(p.sediment.writeStallMs)} ms)` : '-',
          p.sediment ? fmtInt(p.sediment.writeSlowdowns) : '-',
          p.sediment
            ? `${fmtX(p.sediment.writeAmplification)} (${u.settledWriteAmplification !== undefined ? fmtX(u.settledWriteAmplification) : '-'})`
            : '-',
          p.sediment ? `${MBf(p.sediment.compactionBytesRead)} / ${MBf(p.sediment.compactionBytesWritten)}` : '-',
          `${MBf(L.peakRss)} (${MBf(L.maxRss)})`,
          L.settleMs !== undefined ? (L.settleMs / 1000).toFixed(1) : '-',
          rd ? fmtInt(rd.opsPerSec) : '-',
          us(rd?.lat?.p99),
          ratio(rd?.opsPerSec, ref?.opsPerSec),
          u.spec.engine === 'classic-level' ? '-' : ratio(rd?.opsPerSec, readAfter('classic-level')?.opsPerSec),
          u.spec.engine === 'lmdb' ? '-' : ratio(rd?.opsPerSec, readAfter('lmdb')?.opsPerSec),
          rd?.gc ? `${ms1(rd.gc.maxMs)} (${rd.gc.over2ms})` : '-',
        ];
      }),
    ),
  );
  print();
  const segs = Math.max(...ls.map((u) => u.load!.segments.length));
  const sedU = ls.find((u) => u.spec.engine === 'sediment');
  print(
    mdTable(
      [
        'puts so far',
        ...ls.map((u) => `${u.spec.engine} puts/s`),
        ...(sedU ? ['sediment stalls (time)', 'sediment slowdowns', 'sediment L0 tables'] : []),
        ...ls.map((u) => `${u.spec.engine} RSS MB`),
      ],
      Array.from({ length: segs }, (_, i) => {
        const ref = ls.map((u) => u.load!.segments[i]).find(Boolean)!;
        const ss = sedU?.load?.segments[i];
        return [
          fmtInt(ref.upTo),
          ...ls.map((u) => (u.load!.segments[i] ? fmtInt(u.load!.segments[i]!.opsPerSec) : '-')),
          ...(sedU
            ? [
                ss ? `${fmtInt(ss.writeStalls ?? 0)} (${fmtInt(ss.writeStallMs ?? 0)} ms)` : '-',
                ss ? fmtInt(ss.writeSlowdowns ?? 0) : '-',
                ss ? String(ss.l0Tables ?? '-') : '-',
              ]
            : []),
          ...ls.map((u) => (u.load!.segments[i] ? MBf(u.load!.segments[i]!.rss) : '-')),
        ];
      }),
    ),
  );
  print();
  for (const u of ls) print(`- ${u.spec.engine} at the end of the load: ${u.describe}`);
}

// --- targets ---------------------------------------------------------------------------------

export interface Target {
  target: string;
  measured: string;
  goal: string;
  /** true: pass, false: miss, undefined: not measured in this run. */
  pass: boolean | undefined;
  /** The figure compared with the goal (a ratio, a share, ms, bytes), for the JSON. */
  value: number | undefined;
}

/** ops/s of fillrandom awaited one at a time, per engine, from the in-process fillrandom-1 family. */
export type FillRandom1 = Partial<Record<EngineName, number>>;

export function targets(units: readonly UnitResult[], fillrandom1: FillRandom1 | undefined): Target[] {
  const t: Target[] = [];
  const add = (
    target: string,
    goal: string,
    value: number | undefined,
    ok: (v: number) => boolean,
    measured: (v: number) => string,
  ): void => {
    const fine = value !== undefined && Number.isFinite(value);
    t.push({
      target,
      goal,
      value: fine ? value : undefined,
      pass: fine ? ok(value) : undefined,
      measured: fine ? measured(value) : 'not measured',
    });
  };
  const x = (v: number): string => fmtX(v);
  // #10: concurrent writes
  for (const mb of [64, 4]) {
    const s = phase(unitOf(units, 'concurrent', 'sediment', mb * MiB), 'fillrandom + overwrite');
    const c = phase(unitOf(units, 'concurrent', 'classic-level', mb * MiB), 'fillrandom + overwrite');
    const both = s && c;
    add(
      `concurrent puts (64 in flight, fill + overwrite), ${mb} MiB write buffers, vs classic-level`,
      '>= 2.00x',
      both ? s.opsPerSec / c.opsPerSec : undefined,
      (v) => v >= 2,
      (v) => `${x(v)} (${fmtInt(s!.opsPerSec)} vs ${fmtInt(c!.opsPerSec)}/s)`,
    );
    add(
      `event-loop delay p99 during concurrent puts, ${mb} MiB, vs classic-level`,
      '<= 0.50x',
      both && s.eld && c.eld ? s.eld.p99Ms / c.eld.p99Ms : undefined,
      (v) => v <= 0.5,
      (v) => `${x(v)} (${ms1(s!.eld!.p99Ms)} vs ${ms1(c!.eld!.p99Ms)} ms)`,
    );
    add(
      `event-loop delay max during concurrent puts, ${mb} MiB, vs classic-level`,
      '<= 1.00x',
      both && s.eld && c.eld ? s.eld.maxMs / c.eld.maxMs : undefined,
      (v) => v <= 1,
      (v) => `${x(v)} (${ms1(s!.eld!.maxMs)} vs ${ms1(c!.eld!.maxMs)} ms)`,
    );
    add(
      `put latency p99 during concurrent puts, ${mb} MiB, vs classic-level`,
      '<= 1.00x',
      both && s.lat && c.lat ? s.lat.p99 / c.lat.p99 : undefined,
      (v) => v <= 1,
      (v) => `${x(v)} (${us(s!.lat!.p99)} vs ${us(c!.lat!.p99)} us)`,
    );
    add(
      `GC time during concurrent puts, sediment ${mb} MiB`,
      '<= 3.0% of wall time',
      s?.gc?.share,
      (v) => v <= 0.03,
      (v) => `${pct(v)} (${fmtInt(s!.gc!.totalMs)} ms)`,
    );
    add(
      `longest GC pause during concurrent puts, sediment ${mb} MiB`,
      '<= 2 ms (no pause > 2 ms)',
      s?.gc?.maxMs,
      (v) => v <= 2,
      (v) => `${ms1(v)} ms (${s!.gc!.over2ms} pauses >= 2 ms, ${s!.gc!.over5ms} >= 5 ms)`,
    );
  }
  // #10: fillrandom awaited one at a time, fillbatch
  if (fillrandom1) {
    const sed = fillrandom1.sediment;
    const peers = Object.entries(fillrandom1).filter(([e]) => e !== 'sediment') as [EngineName, number][];
    const best = peers.sort((a, b) => b[1] - a[1])[0];
    add(
      'fillrandom, each put awaited, vs the best peer',
      '>= 10.00x',
      sed !== undefined && best ? sed / best[1] : undefined,
      (v) => v >= 10,
      (v) => `${x(v)} (${fmtInt(sed!)} vs ${best![0]} ${fmtInt(best![1])}/s)`,
    );
  } else
    add(
      'fillrandom, each put awaited, vs the best peer',
      '>= 10.00x',
      undefined,
      () => false,
      () => '',
    );
  {
    const s = phase(unitOf(units, 'fillbatch', 'sediment'), 'fillbatch');
    const l = phase(unitOf(units, 'fillbatch', 'lmdb'), 'fillbatch');
    add(
      'fillbatch (batches of 1000) vs lmdb',
      '>= 1.50x',
      s && l ? s.opsPerSec / l.opsPerSec : undefined,
      (v) => v >= 1.5,
      (v) => `${x(v)} (${fmtInt(s!.opsPerSec)} vs ${fmtInt(l!.opsPerSec)}/s)`,
    );
  }
  // #11: the big load
  {
    const s = unitOf(units, 'load', 'sediment');
    const c = unitOf(units, 'load', 'classic-level');
    const n = s?.spec.n ?? c?.spec.n;
    const big = n ? `${n >= 1e6 ? `${n / 1e6}M` : fmtInt(n)}-entry load` : 'load';
    const sLast = s?.load?.segments.at(-1);
    const sFirst = s?.load?.segments[0];
    const cLast = c?.load?.segments.at(-1);
    const complete = (u: UnitResult | undefined): boolean => u?.phases[0]?.complete === true;
    add(
      `${big}: last segment's puts/s vs classic-level's last segment`,
      '>= 2.00x',
      sLast && cLast && complete(s) && complete(c) ? sLast.opsPerSec / cLast.opsPerSec : undefined,
      (v) => v >= 2,
      (v) => `${x(v)} (${fmtInt(sLast!.opsPerSec)} vs ${fmtInt(cLast!.opsPerSec)}/s)`,
    );
    add(
      `${big}: last segment's puts/s vs sediment's first segment`,
      '>= 0.80x',
      sLast && sFirst && complete(s) ? sLast.opsPerSec / sFirst.opsPerSec : undefined,
      (v) => v >= 0.8,
      (v) => `${x(v)} (${fmtInt(sLast!.opsPerSec)} vs ${fmtInt(sFirst!.opsPerSec)}/s)`,
    );
    const budget = (s?.spec.writeBuffer ?? DEFAULT_WRITE_BUFFER.sediment!) + SEDIMENT_BLOCK_CACHE;
    add(
      `${big}: sediment's peak RSS vs classic-level's + memtable + block cache budgets`,
      `<= classic-level + ${budget / MiB} MiB`,
      s?.load && c?.load ? s.load.peakRss - c.load.peakRss : undefined,
      (v) => v <= budget,
      (v) => `${MBf(s!.load!.peakRss)} vs ${MBf(c!.load!.peakRss)} MB (${v >= 0 ? '+' : ''}${MiBf(v)})`,
    );
    const rd = s?.phases.find((p) => p.workload.startsWith('readrandom after'));
    const ref = phase(unitOf(units, 'reads', 'sediment'), 'readrandom', rd?.mode);
    const refN = unitOf(units, 'reads', 'sediment')?.spec.n;
    add(
      `readrandom (await get) after the ${big} vs at ${refN ? fmtInt(refN) : 'n'} entries (reads family)`,
      '>= 0.50x',
      rd && ref ? rd.opsPerSec / ref.opsPerSec : undefined,
      (v) => v >= 0.5,
      (v) => `${x(v)} (${fmtInt(rd!.opsPerSec)} vs ${fmtInt(ref!.opsPerSec)}/s)`,
    );
  }
  // #11: reads
  {
    const s = unitOf(units, 'reads', 'sediment');
    const l = unitOf(units, 'reads', 'lmdb');
    const lget = phase(l, 'readrandom');
    const lmiss = phase(l, 'readmissing');
    const lseq = phase(l, 'readseq');
    const cmp = (label: string, a: PhaseResult | undefined, b: PhaseResult | undefined, goal: number): void =>
      add(
        label,
        `>= ${goal.toFixed(2)}x`,
        a && b ? a.opsPerSec / b.opsPerSec : undefined,
        (v) => v >= goal,
        (v) => `${x(v)} (${fmtInt(a!.opsPerSec)} vs ${fmtInt(b!.opsPerSec)}/s)`,
      );
    cmp('readrandom: sediment await get vs lmdb get (synchronous)', phase(s, 'readrandom', 'await get, one at a time'), lget, 1);
    cmp('readrandom: sediment getSync vs lmdb get', phase(s, 'readrandom', 'getSync'), lget, 1.5);
    cmp('readmissing: sediment await get vs lmdb get', phase(s, 'readmissing', 'await get, one at a time'), lmiss, 3);
    cmp('readmissing: sediment getSync vs lmdb get', phase(s, 'readmissing', 'getSync'), lmiss, 3);
    cmp('readseq: sediment for await vs lmdb getRange', phase(s, 'readseq', 'for await over iterator()'), lseq, 1.5);
    cmp('readseq: sediment nextv(1000) vs lmdb getRange', phase(s, 'readseq', 'iterator().nextv(1000) until []'), lseq, 1.5);
  }
  return t;
}

/** Markdown of the child-process families and the targets. */
export function unitReport(units: readonly UnitResult[], fillrandom1: FillRandom1 | undefined, tgs: readonly Target[]): string {
  const out: string[] = [];
  const print = (s = ''): void => {
    out.push(s);
  };
  concurrentSection(units, print);
  fillbatchSection(units, print, fillrandom1);
  readsSection(units, print);
  loadSection(units, 'load', print);
  loadSection(units, 'load-1k', print);
  const notes = units.flatMap((u) => u.notes);
  if (notes.length > 0) {
    print();
    print('Notes on these families:');
    print();
    for (const n of notes) print(`- ${n}`);
  }
  print();
  print('## Targets (issues #10 and #11)');
  print();
  print(
    mdTable(
      ['target', 'measured', 'goal', 'result'],
      tgs.map((g) => [g.target, g.measured, g.goal, g.pass === undefined ? '-' : g.pass ? 'pass' : 'MISS']),
    ),
  );
  const missing = tgs.filter((g) => g.pass === undefined).length;
  if (missing > 0)
    print(`\n${missing} target(s) not measured in this run ('-'): their families were not selected, or a family did not finish.`);
  return out.join('\n');
}
