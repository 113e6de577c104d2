/**
 * Shared helpers for the DB tests on the in-memory and fault-injecting file systems: tiny
 * options that make every run flush and compact, a seeded PRNG, a killable "process" view of a
 * MemFileSystem that hands writes on as plain copies, a bytewise-ordered Map model, the
 * Prefix-OK checker for crash images, and the on-disk consistency check (no orphan tables, no
 * stale manifest).
 */
import * as path from 'node:path';
import { DB, type BatchOperation, type IteratorOptions } from '../../../src/db/index.js';
import type { DBOptions } from '../../../src/db/options.js';
import { parseManifestFileName, readCurrentManifest } from '../../../src/db/manifest.js';
import { parseTableFileName, tableFileName } from '../../../src/db/compaction.js';
import type { DirectoryLock, FileHandle, FileStat, FileSystem, OpenMode } from '../../../src/fs/types.js';
import { MemFileSystem } from '../../../src/fs/mem.js';

export const DIR = '/db';

/** Sizes small enough that a few dozen writes flush, and a few hundred compact through levels. */
export const TINY = {
  memtableSize: 1024,
  tableFileSize: 4096,
  levelBaseSize: 8192,
  l0CompactionTrigger: 2,
  walSegmentSize: 4096,
} as const satisfies DBOptions;

/** mulberry32: a small seeded PRNG so crash images are reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const noop = (): void => undefined;
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Lets pending background work (microtasks, setImmediate slices) run. */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await tick();
}

/** Resolves `p`, or rejects with a clear message if it takes longer than `ms` (a hang is a bug). */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** A plain Uint8Array copy of `buffer[offset..offset+length)`. */
function plainCopy(buffer: Uint8Array, offset: number, length: number): Uint8Array {
  const copy = new Uint8Array(length);
  copy.set(buffer.subarray(offset, offset + length));
  return copy;
}

function deadError(op: string, file: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`EIO: process is dead, ${op} '${file}'`);
  err.code = 'EIO';
  return err;
}

/**
 * One process's view of a MemFileSystem.
 *
 * - Writes are handed on as plain copies. Workaround for a bug in src/fs/mem.ts: `Inode.write`
 *   records a pending (unsynced) write as `src.slice()`, which for a Node Buffer is a view, not a
 *   copy; writers that reuse a Buffer (the WAL does) would make a 'prefix' crash image hold bytes
 *   of later writes at the offsets of earlier ones.
 * - `kill()` models the process dying: its locks are released and every later operation fails
 *   with EIO, so an abandoned DB can never touch the file system again.
 */
export class ProcessFs implements FileSystem {
  #dead = false;
  readonly #locks = new Set<DirectoryLock>();

  constructor(readonly inner: FileSystem) {}

  get dead(): boolean {
    return this.#dead;
  }

  kill(): void {
    this.#dead = true;
    for (const lock of this.#locks) void lock.release().catch(noop);
    this.#locks.clear();
  }

  check(op: string, file: string): void {
    if (this.#dead) throw deadError(op, file);
  }

  async open(file: string, mode: OpenMode): Promise<FileHandle> {
    this.check('open', file);
    return new ProcessHandle(this, await this.inner.open(file, mode));
  }
  async readdir(dir: string): Promise<string[]> {
    this.check('readdir', dir);
    return this.inner.readdir(dir);
  }
  async mkdir(dir: string): Promise<void> {
    this.check('mkdir', dir);
    return this.inner.mkdir(dir);
  }
  async stat(file: string): Promise<FileStat> {
    this.check('stat', file);
    return this.inner.stat(file);
  }
  async rename(from: string, to: string): Promise<void> {
    this.check('rename', from);
    return this.inner.rename(from, to);
  }
  async unlink(file: string): Promise<void> {
    this.check('unlink', file);
    return this.inner.unlink(file);
  }
  async syncDir(dir: string): Promise<void> {
    this.check('syncDir', dir);
    return this.inner.syncDir(dir);
  }
  async lock(dir: string): Promise<DirectoryLock> {
    this.check('lock', dir);
    const lock = await this.inner.lock(dir);
    this.#locks.add(lock);
    return {
      release: async () => {
        if (!this.#locks.delete(lock)) return;
        await lock.release();
      },
    };
  }
}

class ProcessHandle implements FileHandle {
  constructor(
    private readonly proc: ProcessFs,
    private readonly inner: FileHandle,
  ) {}
  get path(): string {
    return this.inner.path;
  }
  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.proc.check('read', this.path);
    return this.inner.read(buffer, offset, length, position);
  }
  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.proc.check('read', this.path);
    return this.inner.readSync(buffer, offset, length, position);
  }
  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.proc.check('write', this.path);
    return this.inner.write(plainCopy(buffer, offset, length), 0, length, position);
  }
  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.proc.check('write', this.path);
    return this.inner.writeSync(plainCopy(buffer, offset, length), 0, length, position);
  }
  async datasync(): Promise<void> {
    this.proc.check('fdatasync', this.path);
    return this.inner.datasync();
  }
  async truncate(size: number): Promise<void> {
    this.proc.check('ftruncate', this.path);
    return this.inner.truncate(size);
  }
  async size(): Promise<number> {
    this.proc.check('fstat', this.path);
    return this.inner.size();
  }
  async close(): Promise<void> {
    // The descriptor is released even by a dead process.
    return this.inner.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Model

/** Bytewise order of utf8 strings: the DB's key order. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** A model value with its optional expiry (ms since the epoch). */
export interface ModelEntry<V> {
  value: V;
  expiresAt: number | undefined;
}

export type Model<V> = Map<string, ModelEntry<V>>;

/** One write as the model sees it: the operations of a put, a delete or a batch. */
export type WriteOps<V> = BatchOperation<string, V>[];

/** Applies `ops` to `m` at time `now` (TTLs become absolute expiries as in the DB: ceil(now + ttl)). */
export function applyOps<V>(m: Model<V>, ops: readonly BatchOperation<string, V>[], now: number): void {
  for (const op of ops) {
    if (op.type === 'put') {
      m.set(op.key, { value: op.value, expiresAt: op.ttlMs === undefined ? undefined : Math.ceil(now + op.ttlMs) });
    } else {
      m.delete(op.key);
    }
  }
}

/** The live entries of the model at `now`, in key order, within the bounds of `opts`. */
export function modelScan<V>(m: Model<V>, now: number, opts: IteratorOptions<string> = {}): [string, V][] {
  let out: [string, V][] = [];
  for (const [k, e] of m) {
    if (e.expiresAt !== undefined && e.expiresAt <= now) continue;
    if (opts.gt !== undefined && compareUtf8(k, opts.gt) <= 0) continue;
    if (opts.gte !== undefined && compareUtf8(k, opts.gte) < 0) continue;
    if (opts.lt !== undefined && compareUtf8(k, opts.lt) >= 0) continue;
    if (opts.lte !== undefined && compareUtf8(k, opts.lte) > 0) continue;
    out.push([k, e.value]);
  }
  out.sort((a, b) => compareUtf8(a[0], b[0]));
  if (opts.reverse) out.reverse();
  const limit = opts.limit ?? -1;
  if (limit >= 0 && limit !== Infinity) out = out.slice(0, limit);
  return out;
}

export function modelGet<V>(m: Model<V>, key: string, now: number): V | undefined {
  const e = m.get(key);
  if (!e || (e.expiresAt !== undefined && e.expiresAt <= now)) return undefined;
  return e.value;
}

/** Everything the DB holds, through an iterator. */
export async function scan<K, V>(db: DB<K, V>, opts: IteratorOptions<K> = {}): Promise<[K, V][]> {
  const out: [K, V][] = [];
  for await (const kv of db.iterator(opts)) out.push(kv);
  return out;
}

/** A stable rendering for comparisons (Buffers and Uint8Arrays as hex, Dates as ISO). */
export function render(v: unknown): string {
  return JSON.stringify(v, function (this: unknown, key: string, value: unknown) {
    const raw = (this as Record<string, unknown>)[key];
    if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw).toString('hex') };
    if (raw instanceof Date) return { $date: raw.toISOString() };
    if (value === undefined) return { $undefined: true };
    return value;
  });
}

// ---------------------------------------------------------------------------------------------
// Writes, durability and Prefix-OK

/** One write the workload issued, and what the DB told it. */
export interface TrackedWrite<V> {
  ops: WriteOps<V>;
  /** Clock at the write (for TTLs). */
  now: number;
  acked: boolean;
  durable: boolean;
}

/**
 * The writes issued so far, in issue order (the workloads issue writes one at a time, so issue
 * order is WAL order), and what is known durable: a write resolved with `sync: true` or under
 * `fsync: 'always'` (and every write resolved before it), writes resolved before a `flush()` or
 * `close()` that resolved.
 */
export class WriteLog<V> {
  readonly writes: TrackedWrite<V>[] = [];

  constructor(readonly always: boolean) {}

  /** Issues a write: `run` performs it; the write is tracked from the moment it is issued. */
  track(ops: WriteOps<V>, now: number, sync: boolean, run: () => Promise<void>): Promise<void> {
    const w: TrackedWrite<V> = { ops, now, acked: false, durable: false };
    this.writes.push(w);
    const index = this.writes.length - 1;
    const p = run().then(() => {
      w.acked = true;
      if (sync || this.always) this.#durableThrough(index);
    });
    p.catch(noop);
    return p;
  }

  /** Every write acknowledged so far becomes durable once `p` resolves (a flush, a close). */
  async barrier(p: Promise<void>): Promise<void> {
    const acked = this.writes.filter((w) => w.acked);
    await p;
    for (const w of acked) w.durable = true;
  }

  #durableThrough(index: number): void {
    for (let i = 0; i <= index; i++) if (this.writes[i]!.acked || i === index) this.writes[i]!.durable = true;
  }

  /**
   * What the workload knew at this instant: writes issued, the shortest prefix that must survive
   * a power loss (`mustKeep`) and the shortest that must survive a process crash (`acked`).
   */
  snapshot(): { issued: number; mustKeep: number; acked: number } {
    let mustKeep = 0;
    let acked = 0;
    this.writes.forEach((w, i) => {
      if (w.durable) mustKeep = i + 1;
      if (w.acked) acked = i + 1;
    });
    return { issued: this.writes.length, mustKeep, acked };
  }
}

/**
 * Prefix-OK: the recovered state equals the state after some prefix `writes[0..i)` with
 * `mustKeep <= i <= issued` (no durable write lost, no half batch, no value never written).
 * `states[i]` is the rendered model state after the first i writes. Returns the matching prefix
 * lengths (empty when none match).
 */
export function matchingPrefixes(states: readonly string[], got: string, mustKeep: number, issued: number): number[] {
  const out: number[] = [];
  for (let i = mustKeep; i <= issued && i < states.length; i++) if (states[i] === got) out.push(i);
  return out;
}

/** Rendered model states after each prefix of `writes` (index i: after the first i writes), read at `now`. */
export function prefixStates<V>(base: Model<V>, writes: readonly { ops: WriteOps<V>; now: number }[], now: number): string[] {
  const m: Model<V> = new Map(base);
  const out = [render(modelScan(m, now))];
  for (const w of writes) {
    applyOps(m, w.ops, w.now);
    out.push(render(modelScan(m, now)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// On-disk consistency

/**
 * Checks the files of a closed DB in `fs`: `CURRENT` names a manifest that exists; no other
 * MANIFEST and no CURRENT.tmp remain; every table the manifest names exists with its recorded
 * size; no table file the manifest does not name remains. Returns the problems found.
 */
export async function diskProblems(fs: MemFileSystem, dir = DIR): Promise<string[]> {
  const problems: string[] = [];
  const current = await readCurrentManifest(fs, dir);
  if (!current) return ['no CURRENT'];
  const live = new Map<number, number>();
  for (const level of current.state.levels) for (const t of level) live.set(t.fileNumber, t.size);
  const files = fs.listFiles().filter((f) => path.posix.dirname(f) === dir);
  for (const f of files) {
    const name = path.posix.basename(f);
    const table = parseTableFileName(name);
    const manifest = parseManifestFileName(name);
    if (table !== undefined && !live.has(table)) problems.push(`orphan table ${name}`);
    if (manifest !== undefined && manifest !== current.number) problems.push(`stale manifest ${name} (CURRENT names ${current.number})`);
    if (name === 'CURRENT.tmp') problems.push('CURRENT.tmp left behind');
  }
  for (const [n, size] of live) {
    const file = path.posix.join(dir, tableFileName(n));
    if (!files.includes(file)) problems.push(`missing table ${tableFileName(n)}`);
    else if (fs.readFileBytes(file).length !== size) problems.push(`table ${tableFileName(n)} has ${fs.readFileBytes(file).length} bytes, manifest says ${size}`);
  }
  return problems;
}

/**
 * Entries in the tables of the current manifest (retried: a background install may replace the
 * manifest between reading CURRENT and reading the manifest it names).
 */
export async function manifestEntries(fs: MemFileSystem, dir = DIR): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      const m = await readCurrentManifest(fs, dir);
      return m ? m.state.levels.flat().reduce((n, t) => n + t.entries, 0) : 0;
    } catch (err) {
      if (attempt >= 5) throw err;
      await tick();
    }
  }
}

/** The table files in `dir`. */
export function tableFiles(fs: MemFileSystem, dir = DIR): string[] {
  return fs.listFiles().filter((f) => path.posix.dirname(f) === dir && parseTableFileName(path.posix.basename(f)) !== undefined);
}

/** The WAL segment files of the DB in `dir`. */
export function walFiles(fs: MemFileSystem, dir = DIR): string[] {
  return fs.listFiles().filter((f) => f.startsWith(`${dir}/wal/`) && f.endsWith('.wal'));
}

/** Opens a DB through a fresh ProcessFs over `mem`. */
export async function openOn<K = string, V = unknown>(mem: MemFileSystem, options: DBOptions = {}): Promise<{ db: DB<K, V>; proc: ProcessFs }> {
  const proc = new ProcessFs(mem);
  const db = await DB.open<K, V>(DIR, { ...options, fs: proc });
  return { db, proc };
}

/** Closes `db`, ignoring errors, and gives up after `ms` (an abandoned DB on a dead file system). */
export async function closeQuietly(db: { close(): Promise<void> } | undefined, ms = 5000): Promise<void> {
  if (!db) return;
  await withTimeout(db.close().catch(noop), ms, 'close of an abandoned DB').catch(noop);
}
