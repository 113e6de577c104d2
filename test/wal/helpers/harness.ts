/**
 * Shared helpers for the WAL's model, crash-point and fault tests: a seeded PRNG, a "process"
 * wrapper over a MemFileSystem that can be killed (its lock released, every later operation
 * failing), record specs, replay helpers and the Prefix-OK checker.
 */
import fc from 'fast-check';
import { FrameType, SEGMENT_HEADER_SIZE } from '../../../src/wal/format.js';
import { encodeFrame } from '../../../src/wal/frame.js';
import {
  Record,
  Wal,
  comparePositions,
  type RecordCompression,
  type LogEntry,
  type FsyncPolicy,
  type Position,
  type WalOptions,
} from '../../../src/wal/index.js';
import type { FileSystem } from '../../../src/fs/types.js';
import type { MemFileSystem } from '../../../src/fs/mem.js';

export const DIR = '/db/wal';

export { seeded, noop, tick, sleep, ProcessFs } from '../../support/process.js';
import { noop } from '../../support/process.js';

export async function prepareMem(mem: MemFileSystem): Promise<MemFileSystem> {
  await mem.mkdir(DIR);
  await mem.syncDir('/db');
  await mem.syncDir('/');
  return mem;
}

// ---------------------------------------------------------------------------------------------
// Records

/** What a generated record looks like; the real key gets a unique sequence suffix at run time. */
export interface RecSpec {
  tombstone: boolean;
  key: string;
  value: Uint8Array;
  expiresAt: number | undefined;
  compression: RecordCompression;
  /** The value embeds a complete, valid WAL frame (user data that looks like the log). */
  embedFrame: boolean;
}

/** A complete, valid WAL frame holding a small record: bytes that recovery could mistake for data. */
export function frameBytes(tag: string): Uint8Array {
  const buf = Buffer.alloc(256);
  const end = encodeFrame(buf, 0, FrameType.FULL, Record.put(`inner-${tag}`, `inner value ${tag}`));
  return Uint8Array.prototype.slice.call(buf, 0, end);
}

/** Builds the record for `spec` with a key made unique by `seq`. */
export function makeRecord(spec: RecSpec, seq: number): Record {
  const key = `${spec.key}.${seq}`;
  if (spec.tombstone) return Record.delete(key);
  let value = spec.value;
  if (spec.embedFrame) value = Buffer.concat([Buffer.from('<'), frameBytes(String(seq)), value, Buffer.alloc(24, 0x5a)]);
  // A frame-bearing value is stored raw, so the frame's bytes really are in the segment.
  return Record.put(key, value, { expiresAt: spec.expiresAt, compression: spec.embedFrame ? 'none' : spec.compression });
}

/** A comparable rendering of everything a record carries. */
export function view(r: Record): string {
  const exp = r.expiresAt === undefined ? '-' : String(r.expiresAt);
  return `${r.tombstone ? 'DEL' : 'PUT'}|${exp}|${r.compression}|${Buffer.from(r.key).toString('hex')}|${Buffer.from(r.value).toString('hex')}`;
}

/** A short human description for failure messages. */
export function describeRecord(r: Record): string {
  const key = Buffer.from(r.key).toString('utf8');
  return `${r.tombstone ? 'del' : 'put'}(${key}, ${r.value.length}B${r.expiresAt !== undefined ? `, exp ${r.expiresAt}` : ''}${r.compression !== 'none' ? `, ${r.compression}` : ''})`;
}

const smallBytes = fc.uint8Array({ minLength: 0, maxLength: 24 });
const mediumBytes = fc.uint8Array({ minLength: 25, maxLength: 180 });
const compressible = fc
  .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 40, max: 400 }))
  .map(([b, n]) => new Uint8Array(n).fill(b));

/** Arbitrary record specs. `embedFrame` only when `withFrames`. */
export function recSpecArb(withFrames = false): fc.Arbitrary<RecSpec> {
  return fc
    .record({
      tombstone: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
      key: fc.constantFrom('a', 'b', 'c', 'k\u00e9', ''),
      value: fc.oneof({ weight: 5, arbitrary: smallBytes }, { weight: 3, arbitrary: mediumBytes }, { weight: 1, arbitrary: compressible }),
      expiresAt: fc.option(
        fc.oneof(
          fc.integer({ min: 1, max: 0x7fffffff }),
          fc.constantFrom(2 ** 32, 2 ** 32 + 1, 1_700_000_000_123, Number.MAX_SAFE_INTEGER),
        ),
        { nil: undefined, freq: 3 },
      ),
      compression: fc.constantFrom<RecordCompression>('none', 'none', 'lz4', 'zstd'),
      embedFrame: withFrames ? fc.integer({ min: 0, max: 2 }).map((n) => n === 0) : fc.constant(false),
    })
    .map((s) => (s.tombstone ? { ...s, expiresAt: undefined, compression: 'none' as const } : s));
}

// ---------------------------------------------------------------------------------------------
// Reading and checking

/** Every entry `readFrom(from)` yields. */
export async function readAll(wal: Wal, from: Position = { segmentId: 0, offset: 0 }): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const e of wal.readFrom(from)) out.push(e);
  return out;
}

export function posStr(p: Position | undefined): string {
  return p === undefined ? '?' : `${p.segmentId}:${p.offset}`;
}

/** A record as the tests track it: what was submitted, and what the WAL told us about it. */
export interface Tracked {
  seq: number;
  view: string;
  desc: string;
  /** One id per append/appendBatch call: a batch is all or nothing. */
  batch: number;
  /** Its promise resolved. */
  acked: boolean;
  /** Covered by durability: acked under 'always', a resolved sync, or a clean close. */
  durable: boolean;
  pos: Position | undefined;
}

export interface PrefixExpectation {
  /** The submitted records, in append order (some perhaps never written). */
  written: readonly Tracked[];
  /** The recovered log must start at an index in [minStart, maxStart] (whole deleted segments). */
  minStart?: number;
  maxStart?: number;
  /** Process crash or 'keep': every acked record must survive, not only the durable ones. */
  ackedSurvive?: boolean;
}

/**
 * Prefix-OK: `recovered` is written[s..e) for an allowed start s, record for record, with the same
 * bytes and (for records whose position the WAL reported) the same positions; it holds every
 * durable record from s on (every acked one with `ackedSurvive`); it ends on a batch boundary.
 * Throws a descriptive error otherwise. Returns s and e.
 */
export function checkPrefixOk(recovered: readonly LogEntry[], x: PrefixExpectation): { start: number; end: number } {
  const { written } = x;
  const minStart = x.minStart ?? 0;
  const maxStart = x.maxStart ?? minStart;
  const must = (r: Tracked): boolean => r.durable || (x.ackedSurvive === true && r.acked);
  const fail = (msg: string): never => {
    const got = recovered.map((e) => `${describeRecord(e.record)}@${posStr(e.position)}`).join(', ');
    const exp = written.map((r, i) => `#${i}${r.durable ? 'D' : r.acked ? 'A' : '-'}b${r.batch} ${r.desc}@${posStr(r.pos)}`).join(', ');
    throw new Error(`Prefix-OK violated: ${msg}\n  recovered (${recovered.length}): [${got}]\n  written (${written.length}): [${exp}]`);
  };
  let start: number;
  if (recovered.length === 0) {
    start = maxStart;
  } else {
    const first = view(recovered[0]!.record);
    start = -1;
    for (let i = minStart; i <= Math.min(maxStart, written.length - 1); i++) {
      if (written[i]!.view === first) {
        start = i;
        break;
      }
    }
    if (start < 0) fail(`the first recovered record is not a written record at an allowed start [${minStart}, ${maxStart}]`);
    if (start > minStart && recovered[0]!.position.offset !== SEGMENT_HEADER_SIZE) {
      fail(`the log starts at #${start}, which is not the first record of a segment`);
    }
  }
  const end = start + recovered.length;
  if (end > written.length) fail(`more records recovered than were ever written from #${start}`);
  for (let j = 0; j < recovered.length; j++) {
    const w = written[start + j]!;
    const e = recovered[j]!;
    if (view(e.record) !== w.view) fail(`record ${j} (#${start + j}) differs: got ${describeRecord(e.record)}, wrote ${w.desc}`);
    if (w.pos !== undefined && comparePositions(w.pos, e.position) !== 0) {
      fail(`record #${start + j} moved from ${posStr(w.pos)} to ${posStr(e.position)}`);
    }
    if (j > 0 && comparePositions(recovered[j - 1]!.position, e.position) >= 0) fail(`positions not increasing at ${j}`);
  }
  for (let i = end; i < written.length; i++) {
    if (must(written[i]!)) fail(`#${i} (${written[i]!.desc}) was ${written[i]!.durable ? 'durable' : 'acknowledged'} but is missing`);
  }
  if (end > start && end < written.length && written[end - 1]!.batch === written[end]!.batch) {
    fail(`half a batch is visible: #${end - 1} recovered, #${end} of the same batch missing`);
  }
  return { start, end };
}

export interface Snapshot {
  written: Tracked[];
  minStart: number;
  maxStart: number;
}

/** Follows the workload: what it submitted, and what the WAL had told it. */
export class Tracker {
  readonly written: Tracked[] = [];
  #batch = 0;
  deletion: { state: 'none' | 'inflight' | 'done'; segmentId: number } = { state: 'none', segmentId: 0 };

  constructor(
    readonly always: boolean,
    readonly make: (i: number) => Record,
  ) {}

  #track(i: number, batch: number): { t: Tracked; rec: Record } {
    const rec = this.make(i);
    const t: Tracked = { seq: i, view: view(rec), desc: describeRecord(rec), batch, acked: false, durable: false, pos: undefined };
    this.written.push(t);
    return { t, rec };
  }

  append(wal: Wal, i: number): Promise<void> {
    const { t, rec } = this.#track(i, this.#batch++);
    const p = wal.append(rec).then((pos) => {
      t.pos = pos;
      t.acked = true;
      if (this.always) t.durable = true;
    });
    p.catch(noop); // the workload may stop awaiting after a crash
    return p;
  }

  batch(wal: Wal, is: number[]): Promise<void> {
    const b = this.#batch++;
    const items = is.map((i) => this.#track(i, b));
    const p = wal.appendBatch(items.map((x) => x.rec)).then((positions) => {
      items.forEach(({ t }, j) => {
        t.pos = positions[j];
        t.acked = true;
        if (this.always) t.durable = true;
      });
    });
    p.catch(noop);
    return p;
  }

  sync(wal: Wal): Promise<void> {
    const covered = this.written.filter((t) => t.acked);
    const p = wal.sync().then(() => {
      for (const t of covered) t.durable = true;
    });
    p.catch(noop);
    return p;
  }

  async deleteBefore(wal: Wal, pos: Position): Promise<void> {
    this.deletion = { state: 'inflight', segmentId: pos.segmentId };
    await wal.deleteSegmentsBefore(pos);
    this.deletion.state = 'done';
  }

  /**
   * After a reopen: the log is now `entries` (records the tracker wrote, matched by content);
   * they keep their durability flags and positions; new appends follow them.
   */
  rebase(entries: readonly LogEntry[]): void {
    const byView = new Map(this.written.map((t) => [t.view, t]));
    const next: Tracked[] = [];
    for (const e of entries) {
      const t = byView.get(view(e.record));
      if (t === undefined) throw new Error(`rebase: ${describeRecord(e.record)} was never written`);
      next.push({ ...t, pos: e.position, acked: true });
    }
    this.written.length = 0;
    this.written.push(...next);
    this.deletion = { state: 'none', segmentId: 0 };
  }

  closed(): void {
    for (const t of this.written) t.durable = true;
  }

  /** What the workload knew at this instant. */
  snapshot(): Snapshot {
    const written = this.written.map((t) => ({ ...t, pos: t.pos && { ...t.pos } }));
    let minStart = 0;
    let maxStart = 0;
    if (this.deletion.state !== 'none') {
      let sDel = written.findIndex((t) => t.pos === undefined || t.pos.segmentId >= this.deletion.segmentId);
      if (sDel < 0) sDel = written.length;
      maxStart = sDel;
      if (this.deletion.state === 'done') minStart = sDel;
    }
    return { written, minStart, maxStart };
  }
}

/** Options for opening the WAL in tests: strict recovery unless told otherwise. */
export function walOptions(fs: FileSystem, o: Omit<WalOptions, 'dir' | 'fs'>): WalOptions {
  return { dir: DIR, fs, recovery: 'strict', ...o };
}

/** What the WAL tests vary between configurations: the fsync policy and its background work. */
export interface PolicyCfg {
  fsync: FsyncPolicy;
  preallocate?: boolean | number;
  bytesPerSync?: number;
}

/** Options for {@link walOptions} from a configuration; optional fields are passed only when set. */
export function policyOptions(cfg: PolicyCfg, maxSegmentSize: number): Omit<WalOptions, 'dir' | 'fs'> {
  const o: Omit<WalOptions, 'dir' | 'fs'> = { fsync: cfg.fsync, maxSegmentSize };
  if (cfg.preallocate !== undefined) o.preallocate = cfg.preallocate;
  if (cfg.bytesPerSync !== undefined) o.bytesPerSync = cfg.bytesPerSync;
  return o;
}

/** Segment ids present in the directory of `fs`. */
export async function segmentIds(fs: FileSystem): Promise<number[]> {
  const names = await fs.readdir(DIR);
  return names
    .map((n) => /^(\d{16})\.wal$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

export { Wal, Record, comparePositions, type LogEntry, type Position };
