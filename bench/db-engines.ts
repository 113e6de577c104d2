/**
 * The three engines of bench/db.ts behind one small interface, opened with settings that make
 * their durability comparable. What each setting means is in {@link ENGINE_SETTINGS}, which the
 * report prints.
 *
 * Every operation returns either a promise or (lmdb's reads) a plain value: the driver awaits
 * only promises, so a synchronous API is measured as synchronous.
 *
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { open as openLmdb, type RootDatabase } from 'lmdb';
import type { DBStats } from '../src/index.js';

type SedimentModule = typeof import('../src/index.js');

/**
 * Which sediment is measured: the tsc build in dist/ (what the package ships, and what
 * `npm run bench:db` builds first), or with `--src` the TypeScript sources through tsx, whose
 * keepNames wrappers make every hot-path closure slower (20-40% on the WAL's appends).
 */
export const SEDIMENT_SOURCE = process.argv.includes('--src') ? 'src/ through tsx' : 'tsc build in dist/';

async function loadSediment(): Promise<SedimentModule> {
  if (process.argv.includes('--src')) return import('../src/index.js');
  const entry = new URL('../dist/index.js', import.meta.url);
  if (!fs.existsSync(entry)) throw new Error(`${entry.pathname} is missing: run npm run build first (or pass --src)`);
  return (await import(entry.href)) as SedimentModule;
}

const { DB } = await loadSediment();

export type EngineName = 'sediment' | 'classic-level' | 'lmdb';
export const ENGINE_NAMES: readonly EngineName[] = ['sediment', 'classic-level', 'lmdb'];

/** How each engine is opened and what a resolved write means, printed with the report. */
export const ENGINE_SETTINGS: Record<EngineName, string> = {
  sediment:
    "DB.open(dir, { keyEncoding: 'binary', valueEncoding: 'binary' }), everything else default: fsync { batchMs: 5 } " +
    '(a put resolves once its WAL record is written to the OS; an fdatasync follows within 5 ms), 64 MiB memtable, LZ4 blocks, 64 MiB block cache. ' +
    'fillsync: put(k, v, { sync: true }) (resolves after an fdatasync covering it; concurrent syncs are group-committed).',
  'classic-level':
    "new ClassicLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' }), defaults otherwise: Snappy compression, 4 MiB write buffer, " +
    '8 MiB block cache. put resolves once LevelDB wrote its log record to the OS; it never fdatasyncs on its own (sync: false). ' +
    'fillsync: put(k, v, { sync: true }) (an fdatasync per write batch).',
  lmdb:
    "open({ path, encoding: 'binary', keyEncoding: 'binary' }), defaults otherwise: overlappingSync on (Linux default), noSync off, " +
    'commitDelay 0, no compression. put resolves when its transaction commits (visible, in the OS); the fdatasync of that commit ' +
    'runs after it, overlapping the next transaction. get/getRange are synchronous (memory map). ' +
    'fillsync: await put(k, v), then await db.flushed (the commit is on stable storage).',
};

export type BulkOp = readonly [key: Buffer, value: Buffer | undefined];

/** What the benchmark needs from an engine. */
export interface Engine {
  readonly name: EngineName;
  put(key: Buffer, value: Buffer): Promise<unknown>;
  /** A write that resolves only once it is on stable storage. */
  putSync(key: Buffer, value: Buffer): Promise<unknown>;
  get(key: Buffer): Promise<Buffer | undefined> | Buffer | undefined;
  del(key: Buffer): Promise<unknown>;
  /** Untimed bulk load: puts (value given) and deletes (value undefined) in one atomic batch. */
  bulk(ops: readonly BulkOp[]): Promise<unknown>;
  /** Full forward scan; `onEntry` is called once per entry with its key and value lengths. */
  scan(onEntry: (keyLength: number, valueLength: number) => void): Promise<void>;
  /**
   * Full forward scan in chunks: `iterator().nextv(size)` until it returns `[]` (sediment,
   * classic-level); undefined where the engine has no such call (lmdb: its getRange is synchronous).
   */
  scanNextv?(size: number, onEntry: (keyLength: number, valueLength: number) => void): Promise<void>;
  /** A synchronous read (sediment's getSync; lmdb's get is already synchronous); undefined for classic-level. */
  getSync?(key: Buffer): Buffer | undefined;
  close(): Promise<void>;
  /** Engine-specific state worth printing (levels, tables, pages), one line. */
  describe(): string;
}

export interface SedimentEngine extends Engine {
  readonly name: 'sediment';
  stats(): DBStats;
}

/** What a workload may change from the settings above. */
export interface EngineOptions {
  /**
   * Write buffer: sediment's `memtableSize`, classic-level's `writeBufferSize`; lmdb has none
   * (ignored). Undefined: the engine's default (64 MiB and 4 MiB).
   */
  writeBuffer?: number | undefined;
}

export async function openEngine(name: EngineName, dir: string, options: EngineOptions = {}): Promise<Engine> {
  switch (name) {
    case 'sediment':
      return openSediment(dir, options);
    case 'classic-level':
      return openClassic(dir, options);
    case 'lmdb':
      return openLmdbEngine(dir);
  }
}

/** The write-buffer size each engine uses when none is given. */
export const DEFAULT_WRITE_BUFFER: Record<EngineName, number | undefined> = {
  sediment: 64 * 1024 * 1024,
  'classic-level': 4 * 1024 * 1024,
  lmdb: undefined,
};

/** sediment's default block cache budget (`blockCacheSize`), for the peak-RSS budget. */
export const SEDIMENT_BLOCK_CACHE = 64 * 1024 * 1024;

export async function openSediment(dir: string, options: EngineOptions = {}): Promise<SedimentEngine> {
  const db = await DB.open<Buffer, Buffer>(dir, {
    keyEncoding: 'binary',
    valueEncoding: 'binary',
    ...(options.writeBuffer == null ? {} : { memtableSize: options.writeBuffer }),
  });
  return {
    name: 'sediment',
    put: (k, v) => db.put(k, v),
    putSync: (k, v) => db.put(k, v, { sync: true }),
    get: (k) => db.get(k),
    del: (k) => db.delete(k),
    bulk: (ops) => db.batch(ops.map(([key, value]) => (value ? { type: 'put' as const, key, value } : { type: 'del' as const, key }))),
    async scan(onEntry) {
      for await (const [k, v] of db.iterator()) onEntry(k.length, v.length);
    },
    async scanNextv(size, onEntry) {
      const it = db.iterator();
      try {
        for (let chunk = await it.nextv(size); chunk.length > 0; chunk = await it.nextv(size))
          for (const [k, v] of chunk) onEntry(k.length, v.length);
      } finally {
        await it.close();
      }
    },
    getSync: (k) => db.getSync(k),
    close: () => db.close(),
    stats: () => db.stats(),
    describe() {
      const s = db.stats();
      const levels = s.levels.map((l, i) => (l.tables > 0 ? `L${i} ${l.tables} (${(l.bytes / 1e6).toFixed(1)} MB)` : '')).filter(Boolean);
      return `tables per level: ${levels.join(', ') || 'none'}; memtable ${s.memtable.entries} entries, ${s.frozenMemtables} frozen`;
    },
  };
}

async function openClassic(dir: string, options: EngineOptions): Promise<Engine> {
  const db = new ClassicLevel<Buffer, Buffer>(dir, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
    ...(options.writeBuffer == null ? {} : { writeBufferSize: options.writeBuffer }),
  });
  await db.open();
  return {
    name: 'classic-level',
    put: (k, v) => db.put(k, v),
    putSync: (k, v) => db.put(k, v, { sync: true }),
    get: (k) => db.get(k),
    del: (k) => db.del(k),
    bulk: (ops) => db.batch(ops.map(([key, value]) => (value ? { type: 'put' as const, key, value } : { type: 'del' as const, key }))),
    async scan(onEntry) {
      for await (const [k, v] of db.iterator()) onEntry(k.length, v.length);
    },
    async scanNextv(size, onEntry) {
      const it = db.iterator();
      try {
        for (let chunk = await it.nextv(size); chunk.length > 0; chunk = await it.nextv(size))
          for (const [k, v] of chunk) onEntry(k.length, v.length);
      } finally {
        await it.close();
      }
    },
    close: () => db.close(),
    describe() {
      const files: string[] = [];
      for (let l = 0; l < 7; l++) {
        const n = Number(db.getProperty(`leveldb.num-files-at-level${l}`));
        if (n > 0) files.push(`L${l} ${n}`);
      }
      return `tables per level: ${files.join(', ') || 'none'}`;
    },
  };
}

async function openLmdbEngine(dir: string): Promise<Engine> {
  const db: RootDatabase<Buffer, Buffer> = openLmdb<Buffer, Buffer>({
    path: path.join(dir, 'lmdb'),
    encoding: 'binary',
    keyEncoding: 'binary',
  });
  return {
    name: 'lmdb',
    put: (k, v) => db.put(k, v),
    async putSync(k, v) {
      await db.put(k, v);
      await db.flushed;
    },
    get: (k) => db.get(k),
    getSync: (k) => db.get(k),
    del: (k) => db.remove(k),
    bulk: (ops) =>
      db.transaction(() => {
        for (const [k, v] of ops) {
          if (v) db.putSync(k, v);
          else db.removeSync(k);
        }
      }),
    async scan(onEntry) {
      for (const { key, value } of db.getRange()) onEntry(key.length, value.length);
    },
    close: () => db.close(),
    describe() {
      const s = db.getStats() as {
        treeDepth?: number;
        treeBranchPageCount?: number;
        treeLeafPageCount?: number;
        overflowPages?: number;
        entryCount?: number;
      };
      return `B+tree depth ${s.treeDepth}, ${s.treeBranchPageCount} branch + ${s.treeLeafPageCount} leaf pages, ${s.overflowPages ?? 0} overflow, ${s.entryCount} entries`;
    },
  };
}

/**
 * Whether sediment owes or runs a compaction, from its public stats: compaction debt (L0 at
 * `l0CompactionTrigger` tables, or a level past its target) or a compaction running. While this
 * holds the compaction lane is busy (it loops while `pickCompaction` finds work); it turns false
 * when the last compaction installs.
 */
export function compactionNeeded(s: DBStats): boolean {
  return s.compactionDebtBytes > 0 || s.compactionsRunning > 0;
}
