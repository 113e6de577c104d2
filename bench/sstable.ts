/**
 * SSTable and memtable benchmark: `npm run bench:sstable [-- entries]`.
 *
 * 1M entries (default) of 16 B keys and 100 B values on the real file system in os.tmpdir():
 * table build MB/s (no compression and LZ4), point lookups/s for present and absent keys with a
 * warm block cache and with none (OS page cache only), full scan MB/s forward and reverse, and
 * memtable inserts/s and lookups/s. MB are 10^6 bytes of user data (keys + values).
 *
 * Keys: an 8-byte big-endian ascending number with random gaps, then 8 random bytes, so that they
 * are sorted by construction but share only short prefixes. Values: pseudo-random bytes (LZ4 finds
 * nothing to save) unless noted. Absent keys share a present key's first 8 bytes, so they fall
 * inside the table's key range and the bloom filter has to reject them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nodeFileSystem } from '../src/fs/node.js';
import type { Entry } from '../src/entry.js';
import { Memtable } from '../src/memtable/memtable.js';
import { BlockCache, TableReader, TableWriter } from '../src/sstable/index.js';
import { rng } from './lib.js';

const N = Number(process.argv[2] ?? 1_000_000);
const KEY = 16;
const VALUE = 100;
const LOOKUPS = Math.min(N, 300_000);

function makeData(): { keys: Buffer[]; absent: Buffer[]; values: Buffer[] } {
  const r = rng(42);
  const keyBytes = Buffer.allocUnsafe(N * KEY);
  const absentBytes = Buffer.allocUnsafe(LOOKUPS * KEY);
  const valueBytes = Buffer.allocUnsafe(N * VALUE);
  for (let i = 0; i < valueBytes.length; i += 4) valueBytes.writeUInt32LE(r(), i);
  const keys: Buffer[] = [];
  const values: Buffer[] = [];
  let n = 0;
  for (let i = 0; i < N; i++) {
    n += 1 + (r() % 1000);
    const k = keyBytes.subarray(i * KEY, (i + 1) * KEY);
    k.writeUIntBE(Math.floor(n / 2 ** 32), 0, 4);
    k.writeUInt32BE(n >>> 0, 4);
    k.writeUInt32LE(r(), 8);
    k.writeUInt32LE(r(), 12);
    keys.push(k);
    values.push(valueBytes.subarray(i * VALUE, (i + 1) * VALUE));
  }
  const absent: Buffer[] = [];
  for (let i = 0; i < LOOKUPS; i++) {
    const a = absentBytes.subarray(i * KEY, (i + 1) * KEY);
    keys[r() % N]!.copy(a, 0, 0, 8);
    a.writeUInt32LE(r(), 8);
    a.writeUInt32LE(r(), 12);
    absent.push(a);
  }
  return { keys, absent, values };
}

/** `count` items drawn at random (with replacement). */
function sample<T>(items: T[], count: number, seed: number): T[] {
  const r = rng(seed);
  return Array.from({ length: count }, () => items[r() % items.length]!);
}

/** A random permutation of `items` (Fisher-Yates). */
function permutation<T>(items: T[], seed: number): T[] {
  const r = rng(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = r() % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function time<T>(fn: () => T): { ms: number; result: T } {
  const t0 = performance.now();
  const result = fn();
  return { ms: performance.now() - t0, result };
}

async function timeAsync<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const t0 = performance.now();
  const result = await fn();
  return { ms: performance.now() - t0, result };
}

const rows: { metric: string; value: string; note: string }[] = [];
const fmt = (x: number) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
function row(metric: string, value: number, unit: string, note = ''): void {
  rows.push({ metric, value: `${fmt(value)} ${unit}`, note });
  console.error(`  ${metric}: ${fmt(value)} ${unit} ${note}`);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-bench-'));
  try {
    console.error(`sediment sstable bench: ${N.toLocaleString('en-US')} entries, ${KEY} B keys, ${VALUE} B values`);
    const { keys, absent, values } = makeData();
    const entries: Entry[] = keys.map((key, i) => ({ key, seq: i + 1, kind: 'put', value: values[i]! }));
    const userMB = (N * (KEY + VALUE)) / 1e6;

    // Memtable: inserts in random order, then lookups.
    const order = permutation(entries, 7);
    const m = new Memtable();
    const ins = time(() => {
      for (const e of order) m.put(e);
    });
    row('memtable insert', N / (ins.ms / 1000), 'ops/s', `${m.size.toLocaleString('en-US')} keys, random order`);
    const probe = sample(keys, LOOKUPS, 8);
    const mget = time(() => {
      let found = 0;
      for (const k of probe) if (m.get(k) !== undefined) found++;
      return found;
    });
    row('memtable get (present)', LOOKUPS / (mget.ms / 1000), 'ops/s');
    const mscan = time(() => {
      let n = 0;
      for (const c = m.iterator(); c.current !== undefined; c.next()) n++;
      return n;
    });
    row('memtable scan', N / (mscan.ms / 1000), 'entries/s');

    // Table build, without and with LZ4.
    const files: Record<string, string> = {};
    for (const compression of ['none', 'lz4'] as const) {
      const file = path.join(dir, `${compression}.sst`);
      files[compression] = file;
      const build = await timeAsync(async () => {
        const w = await TableWriter.create(nodeFileSystem, file, { compression });
        for (const e of entries) await w.add(e);
        return w.finish();
      });
      const size = fs.statSync(file).size;
      const note = `file ${(size / 1e6).toFixed(1)} MB, datasync included`;
      row(`table build (${compression})`, userMB / (build.ms / 1000), 'MB/s', note);
    }

    // Compressible values (JSON-like), for LZ4's sake.
    {
      const jsonValue = (i: number) =>
        Buffer.from(`{"id":${i},"user":"user${i % 1000}","ok":true,"tags":["a","b"],"n":${i * 7}}`.padEnd(VALUE));
      const json = entries.map((e, i) => ({ ...e, value: jsonValue(i) }));
      for (const compression of ['none', 'lz4'] as const) {
        const file = path.join(dir, `json-${compression}.sst`);
        const build = await timeAsync(async () => {
          const w = await TableWriter.create(nodeFileSystem, file, { compression });
          for (const e of json) await w.add(e);
          return w.finish();
        });
        const note = `file ${(fs.statSync(file).size / 1e6).toFixed(1)} MB`;
        row(`table build, JSON values (${compression})`, userMB / (build.ms / 1000), 'MB/s', note);
      }
    }

    // Lookups and scans.
    const present = sample(keys, LOOKUPS, 9);
    for (const compression of ['none', 'lz4'] as const) {
      const cache = new BlockCache(512 * 1024 * 1024);
      const reader = await TableReader.open(nodeFileSystem, files[compression]!, { cache, fileNumber: 1 });
      // Warm the cache with one scan.
      for (const c = reader.iterator(); c.current !== undefined; c.next());
      const g = time(() => {
        let found = 0;
        for (const k of present) if (reader.get(k) !== undefined) found++;
        return found;
      });
      if (g.result !== LOOKUPS) throw new Error(`found ${g.result} of ${LOOKUPS}`);
      row(`get present, warm cache (${compression})`, LOOKUPS / (g.ms / 1000), 'ops/s');
      const a = time(() => {
        let found = 0;
        for (const k of absent) if (reader.get(k) !== undefined) found++;
        return found;
      });
      const filtered = `${reader.stats.filtered.toLocaleString('en-US')} answered by the filter`;
      row(`get absent, warm cache (${compression})`, LOOKUPS / (a.ms / 1000), 'ops/s', filtered);
      const scan = time(() => {
        let n = 0;
        for (const c = reader.iterator(); c.current !== undefined; c.next()) n++;
        return n;
      });
      const perSecond = `${fmt(N / (scan.ms / 1000))} entries/s`;
      row(`scan forward, warm cache (${compression})`, userMB / (scan.ms / 1000), 'MB/s', perSecond);
      const rscan = time(() => {
        let n = 0;
        for (const c = reader.iterator({ reverse: true }); c.current !== undefined; c.prev()) n++;
        return n;
      });
      row(`scan reverse, warm cache (${compression})`, userMB / (rscan.ms / 1000), 'MB/s');
      const ga = await timeAsync(async () => {
        let found = 0;
        for (const k of present.slice(0, 50_000)) if ((await reader.getAsync(k)) !== undefined) found++;
        return found;
      });
      row(`getAsync present, warm cache (${compression})`, 50_000 / (ga.ms / 1000), 'ops/s');
      await reader.close();

      const cold = await TableReader.open(nodeFileSystem, files[compression]!);
      const cg = time(() => {
        let found = 0;
        for (const k of present.slice(0, 100_000)) if (cold.get(k) !== undefined) found++;
        return found;
      });
      row(`get present, no block cache (${compression})`, 100_000 / (cg.ms / 1000), 'ops/s', 'OS page cache');
      const cscan = time(() => {
        let n = 0;
        for (const c = cold.iterator({ fillCache: false }); c.current !== undefined; c.next()) n++;
        return n;
      });
      row(`scan forward, no block cache (${compression})`, userMB / (cscan.ms / 1000), 'MB/s', 'OS page cache');
      await cold.close();
    }

    const n = N.toLocaleString('en-US');
    console.log(`\nsediment sstable bench: ${n} entries, ${KEY} B keys, ${VALUE} B values, Node ${process.version}\n`);
    const w = Math.max(...rows.map((r) => r.metric.length));
    const v = Math.max(...rows.map((r) => r.value.length));
    for (const r of rows) console.log(`${r.metric.padEnd(w)}  ${r.value.padStart(v)}  ${r.note}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
