/**
 * What the background worker costs (issue #10: "on a 2-core machine say what the worker costs a
 * single writer"): the same writes with `background: 'worker'` (the default) and
 * `background: 'inline'`, alternating in one process so that a burst of load from elsewhere hits
 * both modes alike.
 *
 * Workloads (16 B random decimal keys, 100 B values as bench/db.ts writes them), `--n` puts each
 * on a fresh DB with a 4 MiB memtable (so that flushes and compactions run throughout, as with
 * LevelDB's write buffer) and, with `--big-memtable`, with the 64 MiB default:
 *
 * | workload | what runs |
 * | -------- | --------- |
 * | one      | one writer: each `put` awaited before the next |
 * | inflight | 64 writers, each awaiting its own `put` |
 *
 * Reported per workload and mode (median over `--rounds`): puts/s by the wall clock; CPU time
 * per put of the whole process (every thread: `process.cpuUsage()`); the main thread's busy time
 * per put (event-loop utilization x elapsed time: what the application's thread pays; on a
 * loaded machine it includes time spent waiting for a CPU); the event-loop delay p99 and max
 * (`monitorEventLoopDelay`, 1 ms resolution); and how long the `db.flush()` after the timed puts
 * took (the memtable left over, and any flush the run still owed).
 *
 * ```sh
 * npm run bench:worker                        # 300k puts, 3 rounds
 * npx tsx bench/worker-cost.ts --n=100k --rounds=1 --src
 * ```
 *
 * @module
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { fmtInt, loadAverage, mdTable, now } from './lib.js';

const KEY = 16;
const VALUE = 100;
const MODES = ['worker', 'inline'] as const;
type Mode = (typeof MODES)[number];
const WORKLOADS = ['one', 'inflight'] as const;
type Workload = (typeof WORKLOADS)[number];

interface Args {
  n: number;
  rounds: number;
  src: boolean;
  bigMemtable: boolean;
}

function parseCount(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(s);
  if (!m) throw new Error(`not a count: ${s}`);
  const scale = m[2] === '' ? 1 : /k/i.test(m[2]!) ? 1e3 : 1e6;
  return Math.round(Number(m[1]) * scale);
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { n: 300_000, rounds: 3, src: false, bigMemtable: false };
  for (const a of argv) {
    if (a.startsWith('--n=')) args.n = parseCount(a.slice(4));
    else if (/^--rounds=[1-9]\d*$/.test(a)) args.rounds = Number(a.slice(9));
    else if (a === '--src') args.src = true;
    else if (a === '--big-memtable') args.bigMemtable = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: tsx bench/worker-cost.ts [--n=300k] [--rounds=3] [--big-memtable] [--src]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  return args;
}

interface DBLike {
  put(key: string, value: Uint8Array): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
}
interface DBModule {
  DB: { open(dir: string, options: object): Promise<DBLike> };
}

interface Sample {
  putsPerSec: number;
  cpuUsPerPut: number;
  mainUsPerPut: number;
  eldP99: number;
  eldMax: number;
  flushMs: number;
}

/** Keys: random distinct 16 B decimals; values: 50 random bytes twice (compressible ~50%). */
function makeData(n: number): { keys: string[]; values: Buffer[] } {
  let seed = 0x9e3779b9;
  const rand = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const keys = order.map((i) => String(2 * i).padStart(KEY, '0'));
  const values: Buffer[] = [];
  for (let i = 0; i < 1024; i++) {
    const half = Buffer.alloc(VALUE / 2);
    for (let b = 0; b < half.length; b++) half[b] = Math.floor(rand() * 256);
    values.push(Buffer.concat([half, half]));
  }
  return { keys, values };
}

async function runOnce(
  mod: DBModule,
  mode: Mode,
  workload: Workload,
  memtableSize: number,
  data: { keys: string[]; values: Buffer[] },
): Promise<Sample> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sediment-worker-cost-${mode}-`));
  try {
    const db = await mod.DB.open(dir, { background: mode, memtableSize, valueEncoding: 'binary' });
    const { keys, values } = data;
    const n = keys.length;
    const eld = monitorEventLoopDelay({ resolution: 1 });
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    eld.enable();
    const t0 = now();
    if (workload === 'one') {
      for (let i = 0; i < n; i++) await db.put(keys[i]!, values[i & 1023]!);
    } else {
      let next = 0;
      const writer = async (): Promise<void> => {
        while (next < n) {
          const i = next++;
          await db.put(keys[i]!, values[i & 1023]!);
        }
      };
      await Promise.all(Array.from({ length: 64 }, writer));
    }
    const ms = now() - t0;
    eld.disable();
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0);
    const t1 = now();
    await db.flush();
    const flushMs = now() - t1;
    await db.close();
    return {
      putsPerSec: n / (ms / 1000),
      cpuUsPerPut: (cpu.user + cpu.system) / n,
      mainUsPerPut: (elu.utilization * ms * 1000) / n,
      eldP99: eld.percentile(99) / 1e6,
      eldMax: eld.max / 1e6,
      flushMs,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const entry = args.src ? new URL('../src/index.ts', import.meta.url) : pathToFileURL(path.resolve('dist/index.js'));
  const mod = (await import(entry.href)) as DBModule;
  const data = makeData(args.n);
  const memtables = args.bigMemtable ? [4 << 20, 64 << 20] : [4 << 20];
  const samples = new Map<string, Sample[]>();
  for (let r = 0; r < args.rounds; r++) {
    for (const memtableSize of memtables)
      for (const workload of WORKLOADS)
        for (const mode of r % 2 === 0 ? MODES : [...MODES].reverse()) {
          const s = await runOnce(mod, mode, workload, memtableSize, data);
          const key = `${memtableSize}|${workload}|${mode}`;
          samples.set(key, [...(samples.get(key) ?? []), s]);
        }
    console.error(`round ${r + 1}/${args.rounds} done`);
  }
  const rows: string[][] = [];
  for (const memtableSize of memtables)
    for (const workload of WORKLOADS) {
      const med = (mode: Mode, f: (s: Sample) => number): number => median(samples.get(`${memtableSize}|${workload}|${mode}`)!.map(f));
      for (const mode of MODES)
        rows.push([
          `${memtableSize >> 20} MiB`,
          workload === 'one' ? '1 writer, awaited' : '64 in flight',
          mode,
          fmtInt(med(mode, (s) => s.putsPerSec)),
          med(mode, (s) => s.cpuUsPerPut).toFixed(2),
          med(mode, (s) => s.mainUsPerPut).toFixed(2),
          `${med(mode, (s) => s.eldP99).toFixed(1)} / ${med(mode, (s) => s.eldMax).toFixed(1)}`,
          fmtInt(med(mode, (s) => s.flushMs)),
        ]);
      const ratio = med('worker', (s) => s.putsPerSec) / med('inline', (s) => s.putsPerSec);
      rows.push(['', '', 'worker / inline', `${ratio.toFixed(2)}x`, '', '', '', '']);
    }
  console.log(
    `${fmtInt(args.n)} random puts (16 B keys, 100 B values) per run, ${args.rounds} round(s), medians; ${os.cpus().length} CPUs, load ${loadAverage()}, node ${process.version}\n`,
  );
  console.log(
    mdTable(
      [
        'memtable',
        'workload',
        'background',
        'puts/s',
        'CPU us/put (all threads)',
        'main thread busy us/put',
        'ELD p99 / max ms',
        'flush after, ms',
      ],
      rows,
    ),
  );
}

await main();
