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
import { readCurrentManifest } from '../../../src/db/manifest.js';
import { parseFileName, tableFileName } from '../../../src/db/filenames.js';
import type { MemFileSystem } from '../../../src/fs/mem.js';

export const DIR = '/db';

/** Sizes small enough that a few dozen writes flush, and a few hundred compact through levels. */
export const TINY = {
  memtableSize: 1024,
  tableFileSize: 4096,
  levelBaseSize: 8192,
  l0CompactionTrigger: 2,
  walSegmentSize: 4096,
} as const satisfies DBOptions;

export { seeded, noop, tick, sleep, settle, withTimeout, ProcessFs } from '../../support/process.js';
import { ProcessFs, noop, tick, withTimeout } from '../../support/process.js';

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
    const parsed = parseFileName(name);
    if (parsed?.type === 'table' && !live.has(parsed.number)) problems.push(`orphan table ${name}`);
    if (parsed?.type === 'manifest' && parsed.number !== current.number)
      problems.push(`stale manifest ${name} (CURRENT names ${current.number})`);
    if (parsed?.type === 'currentTmp') problems.push('CURRENT.tmp left behind');
  }
  for (const [n, size] of live) {
    const file = path.posix.join(dir, tableFileName(n));
    if (!files.includes(file)) problems.push(`missing table ${tableFileName(n)}`);
    else if (fs.readFileBytes(file).length !== size)
      problems.push(`table ${tableFileName(n)} has ${fs.readFileBytes(file).length} bytes, manifest says ${size}`);
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
  return fs.listFiles().filter((f) => path.posix.dirname(f) === dir && parseFileName(path.posix.basename(f))?.type === 'table');
}

/** The WAL segment files of the DB in `dir`. */
export function walFiles(fs: MemFileSystem, dir = DIR): string[] {
  return fs.listFiles().filter((f) => f.startsWith(`${dir}/wal/`) && f.endsWith('.wal'));
}

/** Opens a DB through a fresh ProcessFs over `mem`. */
export async function openOn<K = string, V = unknown>(
  mem: MemFileSystem,
  options: DBOptions = {},
): Promise<{ db: DB<K, V>; proc: ProcessFs }> {
  const proc = new ProcessFs(mem);
  const db = await DB.open<K, V>(DIR, { ...options, fs: proc });
  return { db, proc };
}

/** Closes `db`, ignoring errors, and gives up after `ms` (an abandoned DB on a dead file system). */
export async function closeQuietly(db: { close(): Promise<void> } | undefined, ms = 5000): Promise<void> {
  if (!db) return;
  await withTimeout(db.close().catch(noop), ms, 'close of an abandoned DB').catch(noop);
}

/** What must not change when a write is refused: the WAL's records and bytes, the sequence, the memtable. */
export function footprint(db: DB<unknown, unknown>): string {
  const s = db.stats();
  return JSON.stringify({
    wal: s.wal.records,
    bytes: s.wal.bytes,
    pending: s.wal.pendingAppends,
    seq: s.lastSequence,
    mem: s.memtable,
    user: s.userBytes,
  });
}
