/**
 * Real-process crash tests of the DB: a child writer (test/fixtures/db-writer.ts) writes to a DB
 * on the real file system, with sizes so small that it flushes and compacts all the time, and is
 * killed with SIGKILL; the parent reopens the DB and checks it against the expected state built
 * from the writers' acknowledgements (RocksDB db_stress's "expected state"):
 *
 * - every acknowledged write is visible: a key holds the value of its last acknowledged write,
 *   unless a later write to it was issued and not acknowledged, in which case it holds the old
 *   value or the new one (the writer keeps at most one write per key in flight, so there is at
 *   most one such write). Whichever it holds is the key's state from then on: a value once seen
 *   after a recovery must survive every later recovery;
 * - deleted keys stay deleted (no resurrection from older tables), and nothing appears that was
 *   never written;
 * - a batch is all or nothing: a group's slots all show the same batch, whole;
 * - get and the iterators (whole range, bounded, reversed) agree;
 * - right after open, the directory holds exactly what the current manifest names: no orphan
 *   table from an interrupted flush or compaction, no older MANIFEST, no CURRENT.tmp;
 * - the DB opens every time (strict WAL recovery), in the parent and in the next writer.
 *
 * The kills are aimed: the writer publishes in a flag file what its background job is doing
 * (idle, flushing, compacting, or opening, i.e. recovering), and the parent waits for the state
 * it wants before it kills. The state reported for a kill is the one the flag showed afterwards.
 *
 * Every kill is followed by more writing into the same directory by the next writer, so recovery
 * runs after recovery. Every other verification opens a *copy* of the crashed directory, leaving
 * the crash for the next writer to recover (and the next verification to check).
 *
 * To verify the state right after open, before the background job it starts can change the
 * directory, the parent opens the DB through a file system that holds back table creation until
 * the checks are done, with a memtable too large to flush during the WAL replay.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DB } from '../../src/db/index.js';
import { readCurrentManifest } from '../../src/db/manifest.js';
import { manifestFileName, tableFileName } from '../../src/db/filenames.js';
import { NodeFileSystem, nodeFileSystem } from '../../src/fs/node.js';
import type { FileHandle, OpenMode } from '../../src/fs/types.js';
import type { BackgroundMode } from '../../src/db/background.js';
import type { FsyncPolicy, RecoveryInfo } from '../../src/wal/index.js';
import {
  batchPuts,
  FLAG_WIDTH,
  GROUPS,
  groupSize,
  opOfValue,
  prng,
  SINGLE_KEYS,
  singleKey,
  slotKey,
  valueFor,
  writerOptions,
  type WriterArgs,
} from '../fixtures/db-writer.js';
import { copyStore, fixtureScope, readText, spawnFixture, type Child } from '../support/child.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WRITER = path.join(REPO, 'test/fixtures/db-writer.ts');

const { live, tempDir } = fixtureScope('sediment-db-');

// -- writers -------------------------------------------------------------------------------------

type Writer = Child<WriterArgs>;

function spawnWriter(args: WriterArgs): Writer {
  return spawnFixture(WRITER, args, REPO, live, () => errLines(args.ackFile));
}

function errLines(ackFile: string): string {
  return readText(ackFile)
    .split('\n')
    .filter((l) => l.startsWith('err '))
    .join('\n');
}

type State = 'opening' | 'idle' | 'flushing' | 'compacting';

function readFlag(file: string): { state: State | ''; flushes: number; compactions: number; stalls: number } {
  const [state = '', f = '0', c = '0', s = '0'] = readText(file).slice(0, FLAG_WIDTH).trim().split(' ');
  return { state: state as State | '', flushes: Number(f), compactions: Number(c), stalls: Number(s) };
}

// -- the expected state --------------------------------------------------------------------------

/** A key's value in the model: the op that put it, or a delete (or never written: null). */
type Val = { op: number; del: boolean } | null;

const absent = (v: Val | undefined): boolean => v === null || v === undefined || v.del;

/** The expected state: per key and group, the settled value and the write in flight at the kill. */
class Model {
  readonly singles: { state: Val; pending?: Val }[] = Array.from({ length: SINGLE_KEYS }, () => ({ state: null }));
  readonly groups: { state: number | null; pending?: number }[] = Array.from({ length: GROUPS }, () => ({ state: null }));
  acked = 0;
  issued = 0;
  synced = 0;
  opens: { walRecovery: RecoveryInfo; levels: number[]; flushes: number }[] = [];

  /** Applies a writer's ack file. */
  apply(file: string): void {
    const lines = readText(file).split('\n');
    lines.pop(); // a line the kill may have cut short
    const inflight = new Map<number, { single: number } | { group: number }>();
    for (const line of lines) {
      if (line.startsWith('err ')) expect.fail(`the writer failed: ${line}`);
      if (line.startsWith('open ')) {
        this.opens.push(JSON.parse(line.slice(5)) as Model['opens'][number]);
        continue;
      }
      const parts = line.split(' ');
      const op = Number(parts[1]);
      if (parts[0] === 'i') {
        this.issued++;
        if (parts[4] === 's') this.synced++;
        if (parts[2] === 'b') {
          const g = this.groups[Number(parts[3])]!;
          expect(g.pending, `two batches in flight on group ${parts[3]}`).toBeUndefined();
          g.pending = op;
          inflight.set(op, { group: Number(parts[3]) });
        } else {
          const i = Number(parts[3]!.slice(2));
          const s = this.singles[i]!;
          expect(s.pending, `two writes in flight on ${parts[3]}`).toBeUndefined();
          s.pending = { op, del: parts[2] === 'd' };
          inflight.set(op, { single: i });
        }
      } else if (parts[0] === 'a') {
        this.acked++;
        const t = inflight.get(op);
        if (!t) expect.fail(`ack of op ${op}, never issued`);
        if ('group' in t) {
          const g = this.groups[t.group]!;
          g.state = g.pending!;
          delete g.pending;
        } else {
          const s = this.singles[t.single]!;
          s.state = s.pending!;
          delete s.pending;
        }
      } else expect.fail(`unexpected line in ${file}: ${line}`);
    }
  }
}

// -- verification --------------------------------------------------------------------------------

/**
 * The real file system, except that creating a table waits until `release()`: the DB's
 * background job cannot change the table set while the parent checks the directory.
 */
class GatedFs extends NodeFileSystem {
  #released = false;
  #waiting: (() => void)[] = [];
  release(): void {
    this.#released = true;
    for (const w of this.#waiting.splice(0)) w();
  }
  override async open(p: string, mode: OpenMode): Promise<FileHandle> {
    if (mode === 'create' && p.endsWith('.sst') && !this.#released) await new Promise<void>((r) => this.#waiting.push(r));
    return super.open(p, mode);
  }
}

interface Verified {
  /** Writes in flight at the kill, and how many of them made it. */
  pending: number;
  landed: number;
  /** Files the open removed: tables no manifest names, older manifests, CURRENT.tmp. */
  cleaned: number;
  tables: number[];
  walRecovery: RecoveryInfo;
  keys: number;
}

const KNOWN_KEY = /^(?:s:(\d{5})|g:(\d{4}):(\d))$/;

/** Opens `dir`, checks it against the model, settles the model's in-flight writes, closes. */
async function verify(dir: string, model: Model, fsync: FsyncPolicy, rand: () => number): Promise<Verified> {
  const before = await readCurrentManifest(nodeFileSystem, dir);
  const beforeNames = fs.readdirSync(dir);
  const stale = (names: string[], current: number, tables: Set<number>): string[] =>
    names.filter((n) => {
      if (n === 'CURRENT' || n === 'OPTIONS' || n === 'wal') return false;
      // Lock socket files: this open's, and a killed holder's until it is stale (src/fs/node.ts).
      if (/^LOCK-[0-9a-f]{16}\.sock$/.test(n)) return false;
      if (n === manifestFileName(current)) return false;
      const t = /^(\d{6,})\.sst$/.exec(n);
      return !(t && tables.has(Number(t[1])));
    });
  const cleaned = before ? stale(beforeNames, before.number, new Set(before.state.levels.flat().map((t) => t.fileNumber))).length : 0;

  const gate = new GatedFs();
  // A memtable too large to flush during the replay, and triggers no table set reaches: the
  // verifying DB starts no background job (and the gate would hold one back if it did).
  const db = await DB.open<string, string>(dir, {
    ...writerOptions(fsync),
    memtableSize: 256 * 2 ** 20,
    l0CompactionTrigger: 1000,
    levelBaseSize: 2 ** 40,
    fs: gate,
  });
  const failures: string[] = [];
  const fail = (msg: string): void => void (failures.length < 30 && failures.push(msg));
  let pending = 0;
  let landed = 0;
  let keys = 0;
  try {
    // The directory right after open: exactly what the manifest names.
    const current = (await readCurrentManifest(nodeFileSystem, dir))!;
    const liveTables = new Set(current.state.levels.flat().map((t) => t.fileNumber));
    const names = fs.readdirSync(dir);
    expect(
      stale(names, current.number, liveTables),
      'files the open should have removed (orphan tables, old manifests, CURRENT.tmp)',
    ).toEqual([]);
    for (const n of liveTables) expect(names, `table ${n} named by the manifest is missing`).toContain(tableFileName(n));
    const stats = db.stats();
    expect(stats.levels.map((l) => l.tables)).toEqual(current.state.levels.map((l) => l.length));
    expect(stats.backgroundError).toBeUndefined();

    // Everything, in order, only keys the workload writes.
    const scan = new Map<string, string>();
    let prev: string | undefined;
    const entries = await db.iterator().all();
    for (const [k, v] of entries) {
      if (prev !== undefined && !(Buffer.compare(Buffer.from(prev), Buffer.from(k)) < 0)) fail(`iterator order: ${prev} then ${k}`);
      prev = k;
      const m = KNOWN_KEY.exec(k);
      if (
        !m ||
        (m[1] !== undefined && Number(m[1]) >= SINGLE_KEYS) ||
        (m[2] !== undefined && (Number(m[2]) >= GROUPS || Number(m[3]) >= groupSize(Number(m[2]))))
      ) {
        fail(`a key the workload never writes: ${k}`);
      }
      scan.set(k, v);
    }
    keys = scan.size;

    // Point reads agree with the scan.
    const check = async (key: string): Promise<string | undefined> => {
      const got = await db.get(key);
      if (got !== scan.get(key)) fail(`get(${key}) = ${describeGot(key, got)} but the iterator shows ${describeGot(key, scan.get(key))}`);
      return scan.get(key);
    };

    // Bounded and reversed ranges agree with the scan.
    for (let r = 0; r < 3; r++) {
      const a = entries[Math.floor(rand() * entries.length)]?.[0] ?? 's:00000';
      const b = entries[Math.floor(rand() * entries.length)]?.[0] ?? 's:99999';
      const [lo, hi] = a < b ? [a, b] : [b, a];
      const want = entries.filter(([k]) => k > lo && k < hi).map(([k]) => k);
      const fwd = (await db.iterator({ gt: lo, lt: hi }).all()).map(([k]) => k);
      const rev = (await db.iterator({ gte: lo, lte: hi, reverse: true, limit: 40 }).all()).map(([k]) => k);
      const wantRev = entries
        .filter(([k]) => k >= lo && k <= hi)
        .map(([k]) => k)
        .reverse()
        .slice(0, 40);
      if (JSON.stringify(fwd) !== JSON.stringify(want))
        fail(`iterator gt ${lo} lt ${hi}: ${fwd.length} keys, the full scan has ${want.length}`);
      if (JSON.stringify(rev) !== JSON.stringify(wantRev))
        fail(`reverse iterator gte ${lo} lte ${hi} limit 40 disagrees with the full scan`);
    }

    // Single keys against the expected state.
    for (let i = 0; i < SINGLE_KEYS; i++) {
      const key = singleKey(i);
      const m = model.singles[i]!;
      const got = await check(key);
      let now: Val;
      if (got === undefined) {
        if (!absent(m.state) && !m.pending?.del) {
          fail(
            `${key} is missing: its last acknowledged write is ${describeVal(m.state)}${m.pending ? `, in flight ${describeVal(m.pending)}` : ''}`,
          );
        }
        now = absent(m.state) ? m.state : m.pending!;
      } else {
        const op = opOfValue(key, got);
        if (op < 0 || got !== valueFor(key, op)) fail(`${key} holds bytes no write produced: ${got.slice(0, 60)}...`);
        const ok = (v: Val | undefined): boolean => !!v && !v.del && v.op === op;
        if (!ok(m.state) && !ok(m.pending)) {
          fail(
            `${key} holds op ${op}; expected ${describeVal(m.state)}${m.pending ? ` or, in flight, ${describeVal(m.pending)}` : ''}${m.state?.del ? ' (a deleted key came back)' : ''}`,
          );
        }
        now = { op, del: false };
      }
      if (m.pending !== undefined) {
        pending++;
        if (sameVal(now, m.pending) && !sameVal(now, m.state)) landed++;
      }
      m.state = now;
      delete m.pending;
    }

    // Groups: each shows one batch, whole, the last acknowledged one or the one in flight.
    for (let g = 0; g < GROUPS; g++) {
      const m = model.groups[g]!;
      const vals: (string | undefined)[] = [];
      for (let j = 0; j < groupSize(g); j++) vals.push(await check(slotKey(g, j)));
      let now: number | null;
      if (vals.every((v) => v === undefined)) {
        if (m.state !== null) fail(`group ${g} is empty: its last acknowledged batch is op ${m.state}`);
        now = null;
      } else {
        const op = vals[0] === undefined ? -1 : opOfValue(slotKey(g, 0), vals[0]);
        const whole = vals.every((v, j) => v === (batchPuts(op, j) ? valueFor(slotKey(g, j), op) : undefined));
        if (!whole) {
          fail(
            `group ${g} shows a partial or mixed batch: slots hold ${vals.map((v, j) => (v === undefined ? '-' : opOfValue(slotKey(g, j), v))).join(',')}`,
          );
        }
        if (op !== m.state && op !== m.pending) {
          fail(
            `group ${g} shows batch op ${op}; expected op ${m.state}${m.pending !== undefined ? ` or, in flight, op ${m.pending}` : ''}`,
          );
        }
        now = op;
      }
      if (m.pending !== undefined) {
        pending++;
        if (now === m.pending) landed++;
      }
      m.state = now;
      delete m.pending;
    }
    if (failures.length > 0) expect.fail(`${failures.length} check(s) failed after recovery:\n  ${failures.join('\n  ')}`);
    return { pending, landed, cleaned, tables: stats.levels.map((l) => l.tables), walRecovery: stats.walRecovery, keys };
  } finally {
    gate.release();
    await db.close();
  }
}

function sameVal(a: Val | undefined, b: Val | undefined): boolean {
  return absent(a) ? absent(b) : !absent(b) && a!.op === b!.op;
}

function describeVal(v: Val | undefined): string {
  return v === null || v === undefined ? 'none (never written)' : v.del ? `delete (op ${v.op})` : `put (op ${v.op})`;
}

function describeGot(key: string, v: string | undefined): string {
  return v === undefined ? 'absent' : `op ${opOfValue(key, v)}`;
}

// -- the kill loop -------------------------------------------------------------------------------

type Target = State | 'any';

interface Summary {
  kills: number;
  byState: Record<string, number>;
  acked: number;
  issued: number;
  synced: number;
  pending: number;
  landed: number;
  cleaned: number;
  flushes: number;
  compactions: number;
  stalls: number;
  truncations: number;
  keys: number;
  tables: number[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls the flag file until it shows `state` (or `timeoutMs` passes); true if it did. */
async function waitForState(flagFile: string, state: State, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if (readFlag(flagFile).state === state) return true;
    await sleep(1);
  }
  return false;
}

async function killLoop(opts: { policy: FsyncPolicy; background: BackgroundMode; seed: number; targets: Target[] }): Promise<Summary> {
  const root = tempDir();
  const dir = path.join(root, 'db');
  const rand = prng(opts.seed);
  const model = new Model();
  const argsOf = (gen: number): WriterArgs => ({
    dir,
    fsync: opts.policy,
    background: opts.background,
    ackFile: path.join(root, `gen-${gen}.ack`),
    flagFile: path.join(root, `gen-${gen}.flag`),
    opBase: gen * 10_000_000,
    seed: opts.seed * 1000 + gen,
    writers: 6,
  });
  const s: Summary = {
    kills: 0,
    byState: {},
    acked: 0,
    issued: 0,
    synced: 0,
    pending: 0,
    landed: 0,
    cleaned: 0,
    flushes: 0,
    compactions: 0,
    stalls: 0,
    truncations: 0,
    keys: 0,
    tables: [],
  };
  // The next two generations load (their modules and the worker's, some 0.5 s of CPU) while one writes.
  const gens = opts.targets.length;
  const queue: Writer[] = [spawnWriter(argsOf(0))];
  if (gens > 1) queue.push(spawnWriter(argsOf(1)));
  for (let gen = 0; gen < gens; gen++) {
    const w = queue.shift()!;
    const target = opts.targets[gen]!;
    await w.loaded;
    w.go();
    if (gen + 2 < gens) queue.push(spawnWriter(argsOf(gen + 2)));
    if (target === 'opening') {
      await waitForState(w.args.flagFile, 'opening', 5000);
      await sleep(Math.floor(rand() * 4));
    } else {
      await w.ready;
      await sleep(100 + Math.floor(rand() * 300));
      if (target !== 'any') await waitForState(w.args.flagFile, target, 1500);
    }
    w.child.kill('SIGKILL');
    const { code, signal } = await w.exited;
    if (signal !== 'SIGKILL') expect.fail(`writer ${gen} exited by itself (code ${code}):\n${w.stderr()}\n${errLines(w.args.ackFile)}`);
    const flag = readFlag(w.args.flagFile);
    const state = flag.state || 'loading';
    s.kills++;
    s.byState[state] = (s.byState[state] ?? 0) + 1;
    s.flushes += flag.flushes;
    s.compactions += flag.compactions;
    s.stalls += flag.stalls;

    model.apply(w.args.ackFile);
    let v: Verified;
    if (gen % 2 === 1 && gen + 1 < gens) {
      // Verify a copy; leave the crash for the next writer to recover.
      const copy = path.join(root, `copy-${gen}`);
      copyStore(dir, copy);
      v = await verify(copy, model, opts.policy, rand);
      fs.rmSync(copy, { recursive: true, force: true });
    } else {
      v = await verify(dir, model, opts.policy, rand);
    }
    s.pending += v.pending;
    s.landed += v.landed;
    s.cleaned += v.cleaned;
    s.truncations += v.walRecovery.truncations.length;
    s.keys = v.keys;
    s.tables = v.tables;
  }
  s.acked = model.acked;
  s.issued = model.issued;
  s.synced = model.synced;
  // Writers that recovered a crash themselves: strict recovery never found corruption.
  for (const o of model.opens) {
    expect(o.walRecovery.corruptionDetected).toBe(false);
    expect(o.walRecovery.quarantined).toEqual([]);
  }
  expect(s.acked).toBeGreaterThan(0);
  return s;
}

function report(name: string, s: Summary): void {
  console.log(
    `[db sigkill ${name}] kills=${s.kills} ${JSON.stringify(s.byState)} acked=${s.acked}/${s.issued} (sync ${s.synced}) ` +
      `in-flight-at-kill=${s.pending} (landed ${s.landed}) flushes=${s.flushes} compactions=${s.compactions} stalls=${s.stalls} ` +
      `files-cleaned-at-open=${s.cleaned} wal-truncations=${s.truncations} keys=${s.keys} tables=${JSON.stringify(s.tables)}`,
  );
}

// Aim: two idle, three flushing, two compacting, one while the writer recovers (opening).
const TARGETS: Target[] = ['flushing', 'compacting', 'idle', 'flushing', 'opening', 'compacting', 'flushing', 'idle'];

describe('SIGKILL of a DB writer loses no acknowledged write', () => {
  // Background work in the worker thread for two policies, on the DB's thread for the third.
  const policies: { name: string; policy: FsyncPolicy; background: BackgroundMode; seed: number }[] = [
    { name: "'os'", policy: 'os', background: 'worker', seed: 101 },
    { name: '{ batchMs: 5 }', policy: { batchMs: 5 }, background: 'inline', seed: 202 },
    { name: "'always'", policy: 'always', background: 'worker', seed: 303 },
  ];

  it.each(policies)(
    'fsync $name, background $background: kills while idle, flushing, compacting and recovering; reopen, verify, continue',
    async ({ name, policy, background, seed }) => {
      const s = await killLoop({ policy, background, seed, targets: TARGETS });
      report(name, s);
      expect(s.kills).toBe(TARGETS.length);
      // The kills hit background work, not only quiet moments.
      expect((s.byState.flushing ?? 0) + (s.byState.compacting ?? 0)).toBeGreaterThanOrEqual(2);
      expect(s.flushes).toBeGreaterThan(0);
    },
  );
});
