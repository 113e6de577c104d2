/**
 * The chart of bench/db.ts: a Vega-Lite spec compiled and rendered to SVG by Vega in this
 * process (pure JavaScript, `renderer: 'none'` + `toSVG()`: no browser, no canvas, no network).
 * Three panels: ops/s per workload and engine (log scale); put latency and event-loop delay of
 * the concurrent writes; puts/s along the big loads.
 *
 * @module
 */
import * as fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { bufferLabel } from './db-report.js';
import type { UnitResult } from './db-units.js';
import { fmtInt } from './lib.js';

const MiB = 1024 * 1024;

/** What the chart needs of a result of bench/db.ts's in-process families. */
export interface InProcessResult {
  family: string;
  workload: string;
  engine: string;
  opsPerSec: number;
}

export interface ThroughputPoint {
  workload: string;
  engine: string;
  opsPerSec: number;
}

export interface DelayPoint {
  /** Engine and write buffer: 'sediment 4 MiB'. */
  config: string;
  metric: string;
  ms: number;
}

export interface LoadPoint {
  engine: string;
  /** Which load: '100 B values'. */
  values: string;
  /** Puts loaded at the end of the segment, millions. */
  millions: number;
  opsPerSec: number;
}

export interface ChartData {
  title: string;
  throughput: ThroughputPoint[];
  delays: DelayPoint[];
  loads: LoadPoint[];
}

const ENGINES = ['sediment', 'classic-level', 'lmdb'];
const COLORS = ['#d95f02', '#1b9e77', '#7570b3'];
/** Lighter shades for the small (4 MiB) write buffer. */
const LIGHT = ['#fdae6b', '#99d8c9', '#bcbddc'];

/** 'sediment 4 MiB' -> sediment's colour, lighter for the 4 MiB write buffer. */
function configColor(config: string): string {
  const i = Math.max(0, ENGINES.indexOf(config.split(' ')[0] ?? ''));
  return (config.includes(' 4 MiB') ? LIGHT : COLORS)[i]!;
}

/** The Vega-Lite spec of the chart (kept apart from rendering, for anyone who wants to restyle it). */
export function chartSpec(d: ChartData): vl.TopLevelSpec {
  const panels: object[] = [];
  /** A log axis from the power of ten below the smallest figure (so that the shortest bar shows) to the one above the largest. */
  const logDomain = (xs: number[]): [number, number] => [
    10 ** Math.floor(Math.log10(Math.max(1e-3, Math.min(...xs) * 0.9))),
    10 ** Math.ceil(Math.log10(Math.max(1e-3, Math.max(...xs) * 1.1))),
  ];
  const engineColor = { field: 'engine', type: 'nominal', scale: { domain: ENGINES, range: COLORS }, title: 'engine' };
  if (d.throughput.length > 0)
    panels.push({
      title: 'Operations per second (log scale; longer is faster)',
      data: { values: d.throughput },
      width: 560,
      height: { step: 9 },
      mark: { type: 'bar', tooltip: true },
      encoding: {
        y: { field: 'workload', type: 'nominal', sort: null, title: null, axis: { labelLimit: 320 } },
        yOffset: { field: 'engine', type: 'nominal', scale: { domain: ENGINES } },
        x: {
          field: 'opsPerSec',
          type: 'quantitative',
          stack: null,
          scale: { type: 'log', domain: logDomain(d.throughput.map((p) => p.opsPerSec)) },
          title: 'ops/s',
        },
        color: engineColor,
      },
    });
  const configs = [...new Set(d.delays.map((p) => p.config))];
  if (d.delays.length > 0)
    panels.push({
      title: 'Concurrent puts (fill + overwrite): put latency and event-loop delay (log scale; shorter is better)',
      data: { values: d.delays },
      width: { step: 14 },
      height: 260,
      mark: { type: 'bar', tooltip: true },
      encoding: {
        x: { field: 'metric', type: 'nominal', sort: null, title: null },
        xOffset: { field: 'config', type: 'nominal', sort: null },
        y: {
          field: 'ms',
          type: 'quantitative',
          stack: null,
          scale: { type: 'log', domain: logDomain(d.delays.map((p) => p.ms)) },
          title: 'ms',
        },
        color: {
          field: 'config',
          type: 'nominal',
          sort: null,
          title: 'engine, write buffer',
          scale: { domain: configs, range: configs.map(configColor) },
          legend: { labelLimit: 240 },
        },
      },
    });
  if (d.loads.length > 0)
    panels.push({
      title: 'Random load in batches of 1000: puts/s per segment',
      data: { values: d.loads },
      width: 560,
      height: 240,
      mark: { type: 'line', point: true, tooltip: true },
      encoding: {
        x: { field: 'millions', type: 'quantitative', title: 'puts so far (millions)' },
        y: { field: 'opsPerSec', type: 'quantitative', title: 'puts/s' },
        color: engineColor,
        strokeDash: { field: 'values', type: 'nominal', title: 'values' },
      },
    });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: d.title, anchor: 'start' },
    vconcat: panels,
    spacing: 40,
    resolve: { scale: { color: 'independent' } },
    config: { font: 'sans-serif', background: 'white', aria: false },
  } as vl.TopLevelSpec;
}

/** The chart's figures: every workload's ops/s, the concurrent writes' delays, the loads' series. */
export function chartData(results: readonly InProcessResult[], units: readonly UnitResult[], title: string): ChartData {
  const throughput: ChartData['throughput'] = [];
  for (const r of results) throughput.push({ workload: `${r.workload} [${r.family}]`, engine: r.engine, opsPerSec: r.opsPerSec });
  const of = (family: string): readonly UnitResult[] => units.filter((u) => u.spec.family === family);
  for (const mb of [64, 4])
    for (const u of of('concurrent').filter((x) => x.spec.engine === 'lmdb' || x.spec.writeBuffer === mb * MiB)) {
      const p = u.phases.find((x) => x.workload === 'fillrandom + overwrite');
      if (p) throughput.push({ workload: `concurrent puts, ${mb} MiB write buffers`, engine: u.spec.engine, opsPerSec: p.opsPerSec });
    }
  for (const u of of('fillbatch'))
    throughput.push({ workload: 'fillbatch (1000 per batch)', engine: u.spec.engine, opsPerSec: u.phases[0]!.opsPerSec });
  for (const u of of('reads'))
    for (const p of u.phases) {
      const how = p.mode.startsWith('await')
        ? 'await get'
        : p.mode.startsWith('getSync')
          ? 'getSync'
          : p.mode.includes('nextv')
            ? 'nextv'
            : 'for await';
      // lmdb's synchronous get is the peer of both sediment's get and getSync, its getRange of both scans.
      const rows = u.spec.engine !== 'lmdb' ? [how] : p.workload === 'readseq' ? ['for await', 'nextv'] : ['await get', 'getSync'];
      for (const h of rows) throughput.push({ workload: `${p.workload} (${h})`, engine: u.spec.engine, opsPerSec: p.opsPerSec });
    }
  for (const family of ['load', 'load-1k'])
    for (const u of of(family)) {
      const vb = u.spec.valueBytes >= 1024 ? '1 KiB' : `${u.spec.valueBytes} B`;
      throughput.push({ workload: `load ${fmtInt(u.spec.n)} x ${vb}`, engine: u.spec.engine, opsPerSec: u.phases[0]!.opsPerSec });
      const rd = u.phases.find((p) => p.workload.startsWith('readrandom after'));
      if (rd)
        throughput.push({ workload: `readrandom after load ${fmtInt(u.spec.n)} x ${vb}`, engine: u.spec.engine, opsPerSec: rd.opsPerSec });
    }
  const delays: ChartData['delays'] = [];
  for (const u of of('concurrent')) {
    const p = u.phases.find((x) => x.workload === 'fillrandom + overwrite');
    if (!p?.lat || !p.eld) continue;
    const config = u.spec.engine === 'lmdb' ? 'lmdb' : `${u.spec.engine} ${bufferLabel(u)}`;
    for (const [metric, ms] of [
      ['put p50', p.lat.p50 / 1000],
      ['put p99', p.lat.p99 / 1000],
      ['put max', p.lat.max / 1000],
      ['ELD p50', p.eld.p50Ms],
      ['ELD p99', p.eld.p99Ms],
      ['ELD max', p.eld.maxMs],
      ['longest GC', p.gc?.maxMs ?? NaN],
    ] as const)
      if (Number.isFinite(ms) && ms > 0) delays.push({ config, metric, ms });
  }
  const loads: ChartData['loads'] = [];
  for (const family of ['load', 'load-1k'])
    for (const u of of(family))
      for (const sgm of u.load?.segments ?? [])
        loads.push({
          engine: u.spec.engine,
          values: u.spec.valueBytes >= 1024 ? '1 KiB' : `${u.spec.valueBytes} B`,
          millions: sgm.upTo / 1e6,
          opsPerSec: sgm.opsPerSec,
        });
  return { title, throughput, delays, loads };
}

/** The chart as an SVG document. */
export async function renderChart(d: ChartData): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(chartSpec(d)).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    // A static picture: a title instead of Vega's ARIA roles on its groups (which Biome, linting the
    // repository's SVG files, takes for interactive elements given non-interactive roles).
    const title = d.title.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const bare = svg.replace(/ (role|aria-roledescription)="[^"]*"/g, '');
    return `${bare.replace(/^(<svg[^>]*>)/, `$1<title>${title}</title>`)}\n`;
  } finally {
    view.finalize();
  }
}

// `tsx bench/db-chart.ts [results.json] [out.svg]`: draws the chart again from a saved run (default bench/results/latest.json and latest.svg).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const from = process.argv[2] ?? new URL('./results/latest.json', import.meta.url);
  const to = process.argv[3] ?? new URL('./results/latest.svg', import.meta.url);
  const saved = JSON.parse(fs.readFileSync(from, 'utf8')) as {
    startedAt: string;
    quick?: boolean;
    results: InProcessResult[];
    units: UnitResult[];
  };
  const title = `sediment DB benchmark, ${saved.startedAt}${saved.quick ? ' (--quick: small n, smoke test)' : ''}`;
  fs.writeFileSync(to, await renderChart(chartData(saved.results, saved.units, title)));
}
