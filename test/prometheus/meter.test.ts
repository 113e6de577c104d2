/**
 * sediment/prometheus: a real DB (and a raw WAL) on real directories with a PrometheusMeter,
 * real writes, flushes and compactions, the registry scraped as text (and over HTTP on
 * 127.0.0.1), every value checked against stats(); meters sharing a registry; tracking and
 * untracking; the options refused; the example run to completion; prom-client imported nowhere
 * else in sediment.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Counter, Registry, type OpenMetricsContentType } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DB, type DBStats } from '../../src/db/index.js';
import { Record as WalRecord, Wal } from '../../src/wal/index.js';
import { FaultFileSystem } from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { PrometheusMeter } from '../../src/prometheus/index.js';
import { builtScript, fixtureScope } from '../support/child.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const scope = fixtureScope('sediment-prometheus-');

/** Small enough that a thousand writes flush many times and compact through the levels. */
const SMALL = {
  memtableSize: 8 * 1024,
  tableFileSize: 8 * 1024,
  levelBaseSize: 32 * 1024,
  l0CompactionTrigger: 2,
  walSegmentSize: 8 * 1024,
  // No timer-driven fdatasync that could land between a scrape and the stats() it is checked against.
  fsync: 'os',
  valueEncoding: 'utf8',
} as const;

/** The metrics the issue asks for, at least. */
const REQUIRED = [
  'sediment_wal_records_total',
  'sediment_wal_bytes_total',
  'sediment_wal_fsyncs_total',
  'sediment_wal_fsync_duration_seconds',
  'sediment_wal_segments',
  'sediment_flushes_total',
  'sediment_compactions_total',
  'sediment_compaction_read_bytes_total',
  'sediment_compaction_written_bytes_total',
  'sediment_write_stalls_total',
  'sediment_write_stall_seconds_total',
  'sediment_memtable_bytes',
  'sediment_level_tables',
  'sediment_level_bytes',
  'sediment_block_cache_hits_total',
  'sediment_block_cache_misses_total',
  'sediment_background_errors_total',
  'sediment_background_worker_deaths_total',
];

interface Scrape {
  /** `name{a="x",b="y"}` (labels sorted) -> value. */
  values: Map<string, number>;
  /** Metric name -> its `# TYPE`. */
  types: Map<string, string>;
}

/** Parses the Prometheus text format (enough of it: no escaped quotes or commas in label values). */
function parse(text: string): Scrape {
  const values = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name!, type!);
    } else if (line !== '' && !line.startsWith('#')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`not a sample line: ${line}`);
      const labels = m[2] ? m[2].split(',').sort().join(',') : '';
      values.set(labels ? `${m[1]}{${labels}}` : m[1]!, m[3] === '+Inf' ? Infinity : Number(m[3]));
    }
  }
  return { values, types };
}

/** The value of one series, which must be there. */
function value(s: Scrape, series: string): number {
  const v = s.values.get(series);
  if (v === undefined) throw new Error(`no series ${series} in the scrape`);
  return v;
}

/** `{db="x"}`-style label suffix for a series name, with `extra` labels; sorted as `parse` sorts them. */
function series(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return parts.length ? `${name}{${parts.sort().join(',')}}` : name;
}

/** Every value a DB's stats() says, checked against a scrape of its meter. */
function expectMatchesStats(scrape: Scrape, s: DBStats, labels: Record<string, string> = {}): void {
  const at = (name: string, extra: Record<string, string> = {}): number =>
    value(scrape, series(`sediment_${name}`, { ...labels, ...extra }));
  expect(at('wal_records_total')).toBe(s.wal.records);
  expect(at('wal_bytes_total')).toBe(s.wal.bytes);
  expect(at('wal_writes_total')).toBe(s.wal.writes);
  expect(at('wal_fsyncs_total')).toBe(s.wal.fsyncs);
  expect(at('wal_fsync_duration_seconds_count')).toBe(s.wal.fsyncs);
  expect(at('wal_fsync_duration_seconds_bucket', { le: '+Inf' })).toBe(s.wal.fsyncs);
  expect(at('wal_segments')).toBe(s.wal.segments);
  expect(at('wal_failures_total')).toBe(0);
  expect(at('flushes_total')).toBe(s.flushes);
  expect(at('flush_written_bytes_total')).toBe(s.flushBytes);
  expect(at('flush_duration_seconds_count')).toBe(s.flushes);
  expect(at('compactions_total')).toBe(s.compactions);
  expect(at('compaction_read_bytes_total')).toBe(s.compactionBytesRead);
  expect(at('compaction_written_bytes_total')).toBe(s.compactionBytesWritten);
  expect(at('compaction_duration_seconds_count')).toBe(s.compactions);
  expect(at('write_stalls_total')).toBe(s.writeStalls);
  expect(at('write_stall_seconds_total')).toBeCloseTo(s.writeStallMs / 1000, 9);
  expect(at('background_errors_total')).toBe(0);
  expect(at('memtable_bytes')).toBe(s.memtable.bytes);
  expect(at('frozen_memtables')).toBe(s.frozenMemtables);
  s.levels.forEach((l, i) => {
    expect(at('level_tables', { level: String(i) })).toBe(l.tables);
    expect(at('level_bytes', { level: String(i) })).toBe(l.bytes);
  });
  expect(scrape.values.has(series('sediment_level_tables', { ...labels, level: String(s.levels.length) }))).toBe(false);
  expect(at('block_cache_hits_total')).toBe(s.blockCache.hits);
  expect(at('block_cache_misses_total')).toBe(s.blockCache.misses);
  expect(at('block_cache_bytes')).toBe(s.blockCache.usedBytes);
}

/** The stats that must not move between a scrape and the stats() it is checked against. */
function counters(s: DBStats): unknown {
  const { walRecovery: _r, ...rest } = s;
  return { ...rest, wal: { ...s.wal, failure: undefined } };
}

/** Scrapes `registry` between two stats() calls that agree, so that nothing moved meanwhile. */
async function scrapeQuiet(registry: Registry, db: DB<string, string>): Promise<{ scrape: Scrape; text: string; stats: DBStats }> {
  const before = db.stats();
  const text = await registry.metrics();
  const stats = db.stats();
  expect(counters(stats)).toEqual(counters(before));
  return { scrape: parse(text), text, stats };
}

/** Writes that flush and compact, then reads that hit the tables, then a few writes left in the memtable. */
async function workload(db: DB<string, string>, n = 1000): Promise<void> {
  const key = (i: number): string => `key:${String(i).padStart(5, '0')}`;
  for (let i = 0; i < n; i += 20) {
    await Promise.all(Array.from({ length: 20 }, (_, j) => db.put(key((i + j) % (n / 2)), `value ${i + j} `.padEnd(60, '.'))));
  }
  await db.flush();
  for (let i = 0; i < n / 2; i += 3) expect(await db.get(key(i))).toMatch(/^value /);
  await db.compact();
  for (let i = 0; i < n / 2; i += 7) await db.get(key(i));
  for (let i = 0; i < 10; i++) await db.put(`fresh:${i}`, 'in the memtable');
}

/** Serves `registry` on 127.0.0.1 at an ephemeral port, as the example does. */
async function serve(registry: Registry): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    void registry.metrics().then((text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('PrometheusMeter on a DB', () => {
  it('reports what stats() says after writes, flushes and compactions, in the text format and over HTTP', async () => {
    const registry = new Registry();
    const meter = new PrometheusMeter({ registry });
    const db = await DB.open<string, string>(scope.tempDir(), { ...SMALL, meter });
    const untrack = meter.track(db);
    try {
      await workload(db);
      const { scrape, text, stats } = await scrapeQuiet(registry, db);

      // The workload did what the checks need: every number below is a real one.
      expect(stats.wal.fsyncs).toBeGreaterThan(0);
      expect(stats.flushes).toBeGreaterThan(3);
      expect(stats.compactions).toBeGreaterThan(0);
      expect(stats.compactionBytesRead).toBeGreaterThan(0);
      expect(stats.memtable.bytes).toBeGreaterThan(0);
      expect(stats.levels.some((l) => l.bytes > 0)).toBe(true);
      expect(stats.blockCache.hits).toBeGreaterThan(0);
      expect(stats.blockCache.misses).toBeGreaterThan(0);
      expectMatchesStats(scrape, stats);

      for (const name of REQUIRED) expect(scrape.types.has(name), name).toBe(true);
      for (const [name, type] of scrape.types) {
        if (name.endsWith('_total')) expect(type, name).toBe('counter');
        else if (name.endsWith('_seconds')) expect(type, name).toBe('histogram');
        else expect(type, name).toBe('gauge');
      }
      expect(value(scrape, 'sediment_wal_fsync_duration_seconds_sum')).toBeGreaterThan(0);
      expect(value(scrape, 'sediment_wal_fsync_duration_seconds_sum')).toBeLessThan(60); // seconds, not ms

      // Over HTTP: the same text, served as Prometheus's content type.
      const server = await serve(registry);
      try {
        const res = await fetch(server.url);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
        const overHttp = parse(await res.text());
        expect(overHttp.values).toEqual(scrape.values);
        expect(db.stats().wal.records).toBe(stats.wal.records);
      } finally {
        await server.close();
      }
      expect(text.endsWith('\n')).toBe(true);
    } finally {
      untrack();
      await db.close();
      meter.unregister();
    }
  });

  it('keeps counting across scrapes, and counters never go down when a DB is closed or untracked', async () => {
    const registry = new Registry();
    const meter = new PrometheusMeter({ registry });
    const dir = scope.tempDir();
    let db = await DB.open<string, string>(dir, { ...SMALL, meter });
    let untrack = meter.track(db);
    await workload(db, 400);
    const first = (await scrapeQuiet(registry, db)).scrape;
    await workload(db, 400);
    const { scrape: second, stats } = await scrapeQuiet(registry, db);
    expectMatchesStats(second, stats);
    expect(value(second, 'sediment_wal_records_total')).toBe(2 * value(first, 'sediment_wal_records_total'));

    // A closed DB still tracked: its last state, no error.
    await db.close();
    const closed = parse(await registry.metrics());
    expect(value(closed, 'sediment_block_cache_hits_total')).toBe(stats.blockCache.hits);

    // Untracked: the state is gone, the block cache counters keep what it counted.
    untrack();
    untrack(); // idempotent
    const gone = parse(await registry.metrics());
    expect(value(gone, 'sediment_wal_segments')).toBe(0);
    expect(value(gone, 'sediment_memtable_bytes')).toBe(0);
    expect([...gone.values.keys()].some((k) => k.startsWith('sediment_level_'))).toBe(false);
    expect(value(gone, 'sediment_block_cache_hits_total')).toBe(stats.blockCache.hits);
    expect(value(gone, 'sediment_block_cache_misses_total')).toBe(stats.blockCache.misses);
    expect(value(gone, 'sediment_wal_records_total')).toBe(stats.wal.records);

    // Reopened with the same meter: the counters go on from there.
    db = await DB.open<string, string>(dir, { ...SMALL, meter });
    untrack = meter.track(db);
    await db.put('one', 'more');
    const again = parse(await registry.metrics());
    expect(value(again, 'sediment_wal_records_total')).toBe(stats.wal.records + 1);
    expect(value(again, 'sediment_block_cache_hits_total')).toBe(stats.blockCache.hits + db.stats().blockCache.hits);
    expect(value(again, 'sediment_level_tables{level="1"}')).toBe(db.stats().levels[1]!.tables);
    untrack();
    await db.close();
    meter.unregister();
  });

  it('counts a background error and a failed WAL', async () => {
    const registry = new Registry();
    const meter = new PrometheusMeter({ registry });
    const ffs = new FaultFileSystem(new MemFileSystem());
    const db = await DB.open<string, string>('/db', { ...SMALL, meter, fs: ffs });
    meter.track(db);
    ffs.injector = (op) => (op.kind === 'write' && op.path.endsWith('.sst') ? { error: 'ENOSPC' } : undefined);
    await expect(db.put('a', 'b').then(() => db.flush())).rejects.toMatchObject({ code: 'IO' });
    await db.put('c', 'd').catch(() => undefined);
    expect(db.stats().backgroundError).toBeDefined();
    let scrape = parse(await registry.metrics());
    expect(value(scrape, 'sediment_background_errors_total')).toBe(1);
    expect(value(scrape, 'sediment_wal_failures_total')).toBe(0);

    // The WAL's own failure: an fdatasync that fails.
    ffs.injector = (op) => (op.kind === 'datasync' ? { error: 'EIO' } : undefined);
    await db.sync().catch(() => undefined);
    scrape = parse(await registry.metrics());
    expect(value(scrape, 'sediment_wal_failures_total')).toBe(1);
    expect(value(scrape, 'sediment_background_errors_total')).toBe(1);
    ffs.injector = undefined;
    await db.close().catch(() => undefined);
    meter.unregister();
  });
});

describe('PrometheusMeter on a raw WAL', () => {
  it('reports the WAL counters, fsync histogram and segments', async () => {
    const registry = new Registry();
    const meter = new PrometheusMeter({ registry });
    const { wal } = await Wal.open({ dir: scope.tempDir(), meter, fsync: 'always', maxSegmentSize: 4096 });
    const untrack = meter.track(wal);
    try {
      for (let i = 0; i < 30; i++) await wal.append(WalRecord.put(`k${i}`, 'v'.repeat(200)));
      await wal.appendBatch([WalRecord.put('a', '1'), WalRecord.delete('b')]);
      const s = wal.stats();
      const scrape = parse(await registry.metrics());
      expect(s.segments).toBeGreaterThan(1);
      expect(value(scrape, 'sediment_wal_records_total')).toBe(32);
      expect(value(scrape, 'sediment_wal_records_total')).toBe(s.records);
      expect(value(scrape, 'sediment_wal_bytes_total')).toBe(s.bytes);
      expect(value(scrape, 'sediment_wal_fsyncs_total')).toBe(s.fsyncs);
      expect(value(scrape, 'sediment_wal_fsync_duration_seconds_count')).toBe(s.fsyncs);
      expect(value(scrape, 'sediment_wal_segments')).toBe(s.segments);
      expect(value(scrape, 'sediment_flushes_total')).toBe(0);
      expect(value(scrape, 'sediment_memtable_bytes')).toBe(0);
      expect([...scrape.values.keys()].some((k) => k.startsWith('sediment_level_'))).toBe(false);
    } finally {
      untrack();
      await wal.close();
      meter.unregister();
    }
  });
});

describe('meters sharing a registry', () => {
  it('refuses a second meter with the same prefix and no labels, with a message that says what to do', () => {
    const registry = new Registry();
    const a = new PrometheusMeter({ registry });
    expect(() => new PrometheusMeter({ registry })).toThrow(
      expect.objectContaining({
        code: 'INVALID_CONFIG',
        option: 'labels',
        message: expect.stringMatching(/labels \(e\.g\. \{ db: 'users' \}\) or prefix/),
      }),
    );
    // Another prefix is another set of metrics.
    const b = new PrometheusMeter({ registry, prefix: 'cache_' });
    expect(registry.getSingleMetric('cache_wal_records_total')).toBeDefined();
    a.unregister();
    b.unregister();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
  });

  it('shares the metrics between meters with distinct labels, one series each, each matching its DB', async () => {
    const registry = new Registry();
    const users = new PrometheusMeter({ registry, labels: { db: 'users' } });
    const orders = new PrometheusMeter({ registry, labels: { db: 'orders' } });
    expect(() => new PrometheusMeter({ registry, labels: { db: 'users' } })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', option: 'labels', message: expect.stringMatching(/same labels/) }),
    );
    expect(() => new PrometheusMeter({ registry, labels: { shard: '1' } })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringMatching(/labels db/) }),
    );
    expect(() => new PrometheusMeter({ registry })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));

    const dbU = await DB.open<string, string>(scope.tempDir(), { ...SMALL, meter: users });
    const dbO = await DB.open<string, string>(scope.tempDir(), { ...SMALL, meter: orders });
    users.track(dbU);
    orders.track(dbO);
    await workload(dbU, 600);
    await workload(dbO, 200);
    const scrape = parse(await registry.metrics());
    expectMatchesStats(scrape, dbU.stats(), { db: 'users' });
    expectMatchesStats(scrape, dbO.stats(), { db: 'orders' });
    expect(scrape.values.has('sediment_wal_records_total')).toBe(false); // no unlabelled series

    // One leaves: its series go, the other's stay; its labels are free again.
    users.unregister();
    const after = parse(await registry.metrics());
    expect([...after.values.keys()].some((k) => k.includes('db="users"'))).toBe(false);
    expect(value(after, 'sediment_wal_records_total{db="orders"}')).toBe(dbO.stats().wal.records);
    const users2 = new PrometheusMeter({ registry, labels: { db: 'users' } });
    expect(value(parse(await registry.metrics()), 'sediment_wal_fsync_duration_seconds_count{db="users"}')).toBe(0);
    expect(() => users.track(dbU)).toThrow(expect.objectContaining({ code: 'CLOSED' }));

    await dbU.close();
    await dbO.close();
    orders.unregister();
    users2.unregister();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
  });

  it('refuses a registry that already has one of the names, registering nothing', () => {
    const registry = new Registry();
    new Counter({ name: 'sediment_flushes_total', help: 'mine', registers: [registry] });
    expect(() => new PrometheusMeter({ registry })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', option: 'registry', message: expect.stringMatching(/sediment_flushes_total/) }),
    );
    expect(registry.getMetricsAsArray()).toHaveLength(1);
  });

  it('starts afresh after registry.clear()', async () => {
    const registry = new Registry();
    const a = new PrometheusMeter({ registry });
    registry.clear();
    const b = new PrometheusMeter({ registry });
    b.counter('wal.records', 2);
    a.counter('wal.records', 5); // reports into metrics no longer registered
    expect(value(parse(await registry.metrics()), 'sediment_wal_records_total')).toBe(2);
    a.unregister(); // does not touch b's metrics
    expect(registry.getSingleMetric('sediment_wal_records_total')).toBeDefined();
    b.unregister();
  });

  it('works with an OpenMetrics registry', async () => {
    const registry = new Registry<OpenMetricsContentType>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const meter = new PrometheusMeter({ registry });
    meter.counter('wal.records', 3);
    meter.histogram('wal.fsync_ms', 2);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE sediment_wal_records counter\n');
    expect(text).toContain('sediment_wal_records_total 3\n');
    expect(text).toContain('sediment_wal_fsync_duration_seconds_sum 0.002\n');
    meter.unregister();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
  });
});

describe('PrometheusMeter options and arguments', () => {
  it('refuses unknown options, bad prefixes and labels, and things that cannot be tracked', () => {
    const registry = new Registry();
    const bad = (options: unknown, option: string): void =>
      expect(() => new PrometheusMeter(options as never)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', option }));
    bad({ registry, prefx: 'x_' }, 'prefx');
    bad({ registry, prefix: 'no-dashes_' }, 'prefix');
    bad({ registry, prefix: 7 }, 'prefix');
    bad({ registry: {} }, 'registry');
    bad({ registry, labels: { level: 'x' } }, 'labels');
    bad({ registry, labels: { le: 'x' } }, 'labels');
    bad({ registry, labels: { __name: 'x' } }, 'labels');
    bad({ registry, labels: { 'a-b': 'x' } }, 'labels');
    bad({ registry, labels: { db: 1 } }, 'labels');
    bad({ registry, labels: 'db' }, 'labels');
    expect(registry.getMetricsAsArray()).toHaveLength(0);

    const meter = new PrometheusMeter({ registry, prefix: '' });
    expect(registry.getSingleMetric('wal_records_total')).toBeDefined();
    expect(() => meter.track({} as never)).toThrow(TypeError);
    expect(() => meter.track(null as never)).toThrow(TypeError);
    meter.unregister();
    meter.unregister(); // idempotent
    expect(() => meter.track({ stats: () => ({}) } as never)).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  it('uses prom-client’s global registry by default', () => {
    const meter = new PrometheusMeter({ prefix: 'sediment_default_test_' });
    expect(meter.registry.getSingleMetric('sediment_default_test_wal_records_total')).toBeDefined();
    meter.unregister();
    expect(meter.registry.getSingleMetric('sediment_default_test_wal_records_total')).toBeUndefined();
  });

  it('ignores names it does not know (a newer DB may report more)', async () => {
    const registry = new Registry();
    const meter = new PrometheusMeter({ registry });
    meter.counter('db.something_new' as never, 5);
    meter.histogram('db.something_new_ms' as never, 5);
    expect(await registry.metrics()).not.toContain('something_new');
    meter.unregister();
  });
});

describe('the package', () => {
  it('imports prom-client only from src/prometheus', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (
          p.endsWith('.ts') &&
          !p.startsWith(path.join(ROOT, 'src', 'prometheus') + path.sep) &&
          fs.readFileSync(p, 'utf8').includes('prom-client')
        )
          offenders.push(p);
      }
    };
    walk(path.join(ROOT, 'src'));
    expect(offenders).toEqual([]);
  });

  it('exports sediment/prometheus', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      exports: Record<string, { types: string; default: string }>;
    };
    expect(pkg.exports['./prometheus']).toEqual({ types: './dist/prometheus/index.d.ts', default: './dist/prometheus/index.js' });
  });

  it('runs examples/metrics-server.ts --once to completion: it scrapes itself over HTTP and exits 0', async () => {
    const child = spawn(process.execPath, [builtScript('examples/metrics-server.ts'), '--once'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    scope.live.add(child);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    scope.live.delete(child);
    expect(code, err).toBe(0);
    expect(out).toMatch(/^metrics at http:\/\/127\.0\.0\.1:\d+\/metrics$/m);
    expect(out).toContain('GET /metrics: 200 text/plain; version=0.0.4; charset=utf-8');
    const scrape = parse(out.slice(out.indexOf('# HELP')));
    for (const name of REQUIRED) expect(scrape.types.has(name), name).toBe(true);
    expect(value(scrape, 'sediment_flushes_total')).toBeGreaterThan(0);
    expect(value(scrape, 'sediment_compactions_total')).toBeGreaterThan(0);
    expect(value(scrape, 'sediment_block_cache_hits_total')).toBeGreaterThan(0);
    expect(value(scrape, 'sediment_memtable_bytes')).toBeGreaterThan(0);
  });
});

describe('DB.open tracks the DB for its meter', () => {
  it('the state is scraped without a track() call, and the DB is untracked when it closes', async () => {
    const registry = new Registry();
    const meter = new PrometheusMeter({ registry });
    const db = await DB.open<string, string>(scope.tempDir(), { ...SMALL, meter });
    await workload(db, 300);
    const { scrape, stats } = await scrapeQuiet(registry, db);
    expectMatchesStats(scrape, stats);
    await db.close();
    // Untracked: a second DB's state alone is reported, not the sum of both.
    const db2 = await DB.open<string, string>(scope.tempDir(), { ...SMALL, meter });
    await db2.put('a', 'b');
    const second = await scrapeQuiet(registry, db2);
    expect(value(second.scrape, series('sediment_memtable_bytes'))).toBe(second.stats.memtable.bytes);
    await db2.close();
    meter.unregister();
  });
});
