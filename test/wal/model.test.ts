/**
 * Model-based tests of the WAL on the crashable in-memory file system (RELIABILITY.md §4, §6.1,
 * §6.21). The model is the list of records in append order, each marked acked (its promise
 * resolved), durable (acked under 'always', covered by a resolved sync, or written before a clean
 * close) and with a batch id. Commands drive a real Wal on a MemFileSystem; a Crash takes
 * `crashClone()` (power loss) at a random instant, possibly with appends, batches and syncs in
 * flight, abandons the old instance for good and recovers on the clone. After every crash the
 * recovered log must be Prefix-OK: a prefix of the written sequence, byte for byte and in order,
 * holding every durable record, ending on a batch boundary, with nothing never written.
 *
 * Kill is a process crash (SIGKILL): the page cache survives, so every acked record must too, and
 * the log must stay Prefix-OK across later power losses.
 *
 * Replay a failure with FC_SEED=<seed> FC_PATH=<path> FC_REPLAY=<replayPath> npx vitest run test/wal/model.test.ts -t '<test name>'
 * (FC_RUNS_SCALE=10 for a longer soak, FC_SHRINK_MS to shrink longer).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemFileSystem } from '../../src/fs/mem.js';
import {
  ProcessFs,
  Wal,
  checkPrefixOk,
  comparePositions,
  describeRecord,
  makeRecord,
  posStr,
  prepareMem,
  readAll,
  recSpecArb,
  seeded,
  segmentIds,
  sleep,
  tick,
  view,
  walOptions,
  type Position,
  type RecSpec,
  type Tracked,
  policyOptions,
  type PolicyCfg,
} from './helpers/harness.js';

// ---------------------------------------------------------------------------------------------
// Model and system under test

interface Cfg extends PolicyCfg {
  name: string;
}

interface Model {
  /** The log as `readFrom(0)` should return it, plus (during a Crash) the records in flight. */
  log: Tracked[];
  nextSeq: number;
  nextBatch: number;
}

interface Real {
  cfg: Cfg;
  maxSegmentSize: number;
  mem: MemFileSystem;
  proc: ProcessFs;
  wal: Wal;
  /** Bumped at every crash: callbacks of an abandoned instance must not touch the model. */
  epoch: number;
  /** Rejections seen while no crash was happening: always a failure. */
  unexpected: unknown[];
  crashes: number;
  kills: number;
}

type Cmd = fc.AsyncCommand<Model, Real>;

const always = (r: Real): boolean => r.cfg.fsync === 'always';

async function openWal(r: Real, fs: ProcessFs): Promise<Awaited<ReturnType<typeof Wal.open>>> {
  return Wal.open(walOptions(fs, policyOptions(r.cfg, r.maxSegmentSize)));
}

function track(m: Model, batch: number, spec: RecSpec): { t: Tracked; rec: ReturnType<typeof makeRecord> } {
  const seq = m.nextSeq++;
  const rec = makeRecord(spec, seq);
  const t: Tracked = { seq, view: view(rec), desc: describeRecord(rec), batch, acked: false, durable: false, pos: undefined };
  m.log.push(t);
  return { t, rec };
}

/** Appends one record; the returned promise never rejects (a rejection is recorded instead). */
function submitAppend(m: Model, r: Real, spec: RecSpec): Promise<void> {
  const { t, rec } = track(m, m.nextBatch++, spec);
  const epoch = r.epoch;
  return r.wal.append(rec).then(
    (pos) => {
      if (r.epoch !== epoch) return;
      t.pos = pos;
      t.acked = true;
      if (always(r)) t.durable = true;
    },
    (err: unknown) => {
      if (r.epoch === epoch) r.unexpected.push(err);
    },
  );
}

function submitBatch(m: Model, r: Real, specs: readonly RecSpec[]): Promise<void> {
  const batch = m.nextBatch++;
  const items = specs.map((s) => track(m, batch, s));
  const epoch = r.epoch;
  return r.wal.appendBatch(items.map((i) => i.rec)).then(
    (positions) => {
      if (r.epoch !== epoch) return;
      if (positions.length !== items.length) r.unexpected.push(new Error(`batch of ${items.length} got ${positions.length} positions`));
      for (let i = 1; i < positions.length; i++) {
        const a = positions[i - 1]!;
        const b = positions[i]!;
        if (a.segmentId !== b.segmentId || a.offset >= b.offset)
          r.unexpected.push(new Error(`batch split or misordered: ${posStr(a)} then ${posStr(b)}`));
      }
      items.forEach(({ t }, i) => {
        t.pos = positions[i];
        t.acked = true;
        if (always(r)) t.durable = true;
      });
    },
    (err: unknown) => {
      if (r.epoch === epoch) r.unexpected.push(err);
    },
  );
}

/** sync(): on success, every record acked before the call is durable. */
function submitSync(m: Model, r: Real): Promise<void> {
  const covered = m.log.filter((t) => t.acked);
  const epoch = r.epoch;
  return r.wal.sync().then(
    () => {
      if (r.epoch === epoch) for (const t of covered) t.durable = true;
    },
    (err: unknown) => {
      if (r.epoch === epoch) r.unexpected.push(err);
    },
  );
}

function assertNoUnexpected(r: Real): void {
  if (r.unexpected.length > 0) {
    const e = r.unexpected[0];
    throw new Error(`unexpected rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }
}

/** The log read from the start equals the model, bytes and positions. */
async function expectLogEquals(r: Real, expected: readonly Tracked[], from?: Position): Promise<void> {
  const got = await readAll(r.wal, from);
  const g = got.map((e) => `${describeRecord(e.record)}@${posStr(e.position)}`);
  const x = expected.map((t) => `${t.desc}@${posStr(t.pos)}`);
  if (
    got.length !== expected.length ||
    got.some(
      (e, i) =>
        view(e.record) !== expected[i]!.view || (expected[i]!.pos !== undefined && comparePositions(e.position, expected[i]!.pos!) !== 0),
    )
  ) {
    throw new Error(
      `readFrom(${posStr(from ?? { segmentId: 0, offset: 0 })}) differs from the model\n  got:      [${g.join(', ')}]\n  expected: [${x.join(', ')}]`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

class AppendCmd implements Cmd {
  constructor(readonly spec: RecSpec) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    await submitAppend(m, r, this.spec);
    assertNoUnexpected(r);
    if (always(r)) {
      const s = r.wal.stats();
      expect(s.durablePosition, "'always': acked means durable").toEqual(s.writtenPosition);
    }
  }
  toString = (): string => `Append(${JSON.stringify(specStr(this.spec))})`;
}

class BatchCmd implements Cmd {
  constructor(readonly specs: readonly RecSpec[]) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    await submitBatch(m, r, this.specs);
    assertNoUnexpected(r);
  }
  toString = (): string => `Batch(${this.specs.length})`;
}

/** n appends and batches in flight at once. */
class ConcurrentCmd implements Cmd {
  constructor(readonly items: ReadonlyArray<RecSpec | readonly RecSpec[]>) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const first = m.log.length;
    await Promise.all(this.items.map((it) => (Array.isArray(it) ? submitBatch(m, r, it as RecSpec[]) : submitAppend(m, r, it as RecSpec))));
    assertNoUnexpected(r);
    const mine = m.log.slice(first);
    for (let i = 1; i < mine.length; i++) {
      if (comparePositions(mine[i - 1]!.pos!, mine[i]!.pos!) >= 0) throw new Error(`concurrent appends out of call order at ${i}`);
    }
  }
  toString = (): string => `Concurrent(${this.items.map((i) => (Array.isArray(i) ? `B${i.length}` : 'A')).join(',')})`;
}

class SyncCmd implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    await submitSync(m, r);
    assertNoUnexpected(r);
    const s = r.wal.stats();
    expect(s.durablePosition, 'after sync() the durable point is the written point').toEqual(s.writtenPosition);
  }
  toString = (): string => 'Sync';
}

/** Appends in flight, then flush(): once it resolves they are all in the OS, hence readable. */
class FlushCmd implements Cmd {
  constructor(readonly specs: readonly RecSpec[]) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const pending = this.specs.map((s) => submitAppend(m, r, s));
    await r.wal.flush();
    const got = await readAll(r.wal);
    expect(
      got.map((e) => view(e.record)),
      'flush() resolved before its appends were readable',
    ).toEqual(m.log.map((t) => t.view));
    await Promise.all(pending);
    assertNoUnexpected(r);
  }
  toString = (): string => `Flush(${this.specs.length})`;
}

class ReadCmd implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    await expectLogEquals(r, m.log);
  }
  toString = (): string => 'Read';
}

/** readFrom an acked position (or one byte into that record: starts at the next record). */
class ReadFromCmd implements Cmd {
  constructor(
    readonly pct: number,
    readonly inside: boolean,
  ) {}
  check = (m: Model): boolean => m.log.length > 0;
  async run(m: Model, r: Real): Promise<void> {
    const i = Math.floor((this.pct * m.log.length) / 101);
    const p = m.log[i]!.pos!;
    if (this.inside) await expectLogEquals(r, m.log.slice(i + 1), { segmentId: p.segmentId, offset: p.offset + 1 });
    else await expectLogEquals(r, m.log.slice(i), p);
  }
  toString = (): string => `ReadFrom(${this.pct}%${this.inside ? ', +1 byte' : ''})`;
}

/** Clean close and reopen: everything written is durable and recovered untouched. */
class ReopenCmd implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    await r.wal.close();
    const proc = new ProcessFs(r.mem);
    const { wal, recovery } = await openWal(r, proc);
    r.proc = proc;
    r.wal = wal;
    expect(recovery.bytesTruncated, 'a clean close leaves nothing to truncate').toBe(0);
    expect(recovery.validRecords).toBe(m.log.length);
    for (const t of m.log) t.durable = true;
    await expectLogEquals(r, m.log);
  }
  toString = (): string => 'Reopen';
}

/** Deletes the segments before a durable record's position (101%: before stats().durablePosition). */
class DeleteCmd implements Cmd {
  constructor(readonly pct: number) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const durable = m.log.filter((t) => t.durable);
    let p: Position;
    if (this.pct > 100) p = r.wal.stats().durablePosition;
    else if (durable.length === 0) return;
    else p = durable[Math.floor((this.pct * durable.length) / 101)]!.pos!;
    const active = r.wal.stats().activeSegmentId;
    const before = await segmentIds(r.proc);
    const n = await r.wal.deleteSegmentsBefore(p);
    const victims = before.filter((id) => id < p.segmentId && id !== active);
    expect(n).toBe(victims.length);
    expect(await segmentIds(r.proc)).toEqual(before.filter((id) => !victims.includes(id)));
    m.log = m.log.filter((t) => t.pos!.segmentId >= p.segmentId);
  }
  toString = (): string => `DeleteSegmentsBefore(${this.pct > 100 ? 'durablePosition' : `${this.pct}%`})`;
}

/** Lets background work run: preallocation (setImmediate) and the batchMs timer. */
class PauseCmd implements Cmd {
  constructor(readonly wait: Wait) {}
  check = (): boolean => true;
  async run(_m: Model, r: Real): Promise<void> {
    await waitFor(this.wait);
    assertNoUnexpected(r);
  }
  toString = (): string => `Pause(${this.wait.n} ${this.wait.kind})`;
}

type Step = { t: 'append'; spec: RecSpec; wait: boolean } | { t: 'batch'; specs: RecSpec[]; wait: boolean } | { t: 'sync'; wait: boolean };
type Wait = { kind: 'micro' | 'immediate' | 'ms'; n: number };

/** Runs in-flight work against the current instance; never rejects. */
async function runScript(m: Model, r: Real, steps: readonly Step[]): Promise<void> {
  const epoch = r.epoch;
  for (const s of steps) {
    if (r.epoch !== epoch) return;
    const p = s.t === 'append' ? submitAppend(m, r, s.spec) : s.t === 'batch' ? submitBatch(m, r, s.specs) : submitSync(m, r);
    if (s.wait) await p;
  }
}

async function waitFor(w: Wait): Promise<void> {
  if (w.kind === 'micro') for (let i = 0; i < w.n; i++) await Promise.resolve();
  else if (w.kind === 'immediate') for (let i = 0; i < w.n; i++) await tick();
  else await sleep(w.n);
}

function scriptStr(steps: readonly Step[], w: Wait): string {
  const s = steps.map((x) => (x.t === 'append' ? 'A' : x.t === 'batch' ? `B${x.specs.length}` : 'S') + (x.wait ? '!' : '')).join(',');
  return `[${s}] after ${w.n} ${w.kind}`;
}

type Keep = 'drop' | 'prefix' | 'keep';

/** Power loss at a random instant, maybe with work in flight; recover on the crash clone. */
class CrashCmd implements Cmd {
  constructor(
    readonly data: Keep,
    readonly dirOps: Keep,
    readonly seed: number,
    readonly steps: readonly Step[],
    readonly wait: Wait,
  ) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    void runScript(m, r, this.steps);
    await waitFor(this.wait);
    // The crash instant: image, abandon the old instance, freeze what the model knew.
    const clone = r.mem.crashClone({ unsyncedData: this.data, unsyncedDirOps: this.dirOps, rng: seeded(this.seed) });
    r.proc.kill();
    r.epoch++;
    const snapshot = m.log.map((t) => ({ ...t }));
    assertNoUnexpected(r);

    const proc = new ProcessFs(clone);
    const { wal, recovery } = await openWal(r, proc);
    r.mem = clone;
    r.proc = proc;
    r.wal = wal;
    r.crashes++;
    const got = await readAll(wal);
    const { end } = checkPrefixOk(got, { written: snapshot, ackedSurvive: this.data === 'keep' });
    expect(recovery.validRecords).toBe(got.length);
    m.log = snapshot.slice(0, end).map((t, j) => ({ ...t, pos: got[j]!.position, acked: true, durable: true }));
  }
  toString = (): string => `Crash(data=${this.data}, dirOps=${this.dirOps}, seed=${this.seed}, ${scriptStr(this.steps, this.wait)})`;
}

/** Process crash (SIGKILL) at a random instant: the page cache survives, so every acked record does. */
class KillCmd implements Cmd {
  constructor(
    readonly steps: readonly Step[],
    readonly wait: Wait,
  ) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    void runScript(m, r, this.steps);
    await waitFor(this.wait);
    r.proc.kill();
    r.epoch++;
    const snapshot = m.log.map((t) => ({ ...t }));
    assertNoUnexpected(r);

    const proc = new ProcessFs(r.mem);
    const { wal, recovery } = await openWal(r, proc);
    r.proc = proc;
    r.wal = wal;
    r.kills++;
    const got = await readAll(wal);
    const { end } = checkPrefixOk(got, { written: snapshot, ackedSurvive: true });
    expect(recovery.validRecords).toBe(got.length);
    // Recovered records are part of the log now; they are durable only if they were.
    m.log = snapshot.slice(0, end).map((t, j) => ({ ...t, pos: got[j]!.position, acked: true }));
  }
  toString = (): string => `Kill(${scriptStr(this.steps, this.wait)})`;
}

function specStr(s: RecSpec): string {
  return `${s.tombstone ? 'del' : 'put'} ${s.key} ${s.value.length}B${s.embedFrame ? ' +frame' : ''}${s.compression !== 'none' ? ` ${s.compression}` : ''}${s.expiresAt !== undefined ? ` exp=${s.expiresAt}` : ''}`;
}

/**
 * Fails a command that does not settle within HANG_MS: a promise of the WAL that never settles
 * (a lost append, a sync or close that never returns) is a bug, reported and shrunk like any
 * other. In-memory commands take milliseconds; the limit only turns a hang into a failure.
 */
const HANG_MS = 5_000;

class Guarded implements Cmd {
  constructor(readonly inner: Cmd) {}
  check(m: Readonly<Model>): boolean {
    return this.inner.check(m) as boolean;
  }
  async run(m: Model, r: Real): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.inner.toString()} did not settle within ${HANG_MS} ms (a WAL promise never settled)`)),
        HANG_MS,
      );
    });
    try {
      await Promise.race([this.inner.run(m, r), hang]);
    } finally {
      clearTimeout(timer);
    }
  }
  toString(): string {
    return this.inner.toString();
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

function commandArbs(opts: { withFrames: boolean; kill: boolean; crashWeight: number; keeps: Keep[] }): fc.Arbitrary<Cmd>[] {
  const spec = recSpecArb(opts.withFrames);
  const specs = (max: number): fc.Arbitrary<RecSpec[]> => fc.array(spec, { minLength: 1, maxLength: max });
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ t: fc.constant('append' as const), spec, wait: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('batch' as const), specs: specs(4), wait: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('sync' as const), wait: fc.boolean() }) },
  );
  const wait: fc.Arbitrary<Wait> = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 150 }).map((n) => ({ kind: 'micro' as const, n })) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 4 }).map((n) => ({ kind: 'immediate' as const, n })) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }).map((n) => ({ kind: 'ms' as const, n })) },
  );
  const steps = fc.array(step, { maxLength: 8 });
  const keep = fc.constantFrom(...opts.keeps);
  const arbs: fc.Arbitrary<Cmd>[] = [
    spec.map((s) => new AppendCmd(s)),
    spec.map((s) => new AppendCmd(s)),
    specs(5).map((s) => new BatchCmd(s)),
    fc.array(fc.oneof(spec, specs(3)), { minLength: 2, maxLength: 12 }).map((items) => new ConcurrentCmd(items)),
    fc.constant(new SyncCmd()),
    specs(6).map((s) => new FlushCmd(s)),
    fc.constant(new ReadCmd()),
    fc.tuple(fc.integer({ min: 0, max: 100 }), fc.boolean()).map(([p, inside]) => new ReadFromCmd(p, inside)),
    fc.constant(new ReopenCmd()),
    fc.integer({ min: 0, max: 101 }).map((p) => new DeleteCmd(p)),
    fc
      .oneof(
        fc.integer({ min: 1, max: 6 }).map((n) => ({ kind: 'immediate' as const, n })),
        fc.integer({ min: 1, max: 3 }).map((n) => ({ kind: 'ms' as const, n })),
      )
      .map((w) => new PauseCmd(w)),
  ];
  for (let i = 0; i < opts.crashWeight; i++) {
    arbs.push(fc.tuple(keep, keep, fc.nat(), steps, wait).map(([d, o, seed, st, w]) => new CrashCmd(d, o, seed, st, w)));
  }
  if (opts.kill) {
    arbs.push(fc.tuple(steps, wait).map(([st, w]) => new KillCmd(st, w)));
    arbs.push(fc.tuple(steps, wait).map(([st, w]) => new KillCmd(st, w)));
  }
  return arbs.map((a) => a.map((c) => new Guarded(c) as Cmd));
}

const CONFIGS: Cfg[] = [
  { name: "'always' (preallocation default: on)", fsync: 'always' },
  { name: "'always', preallocate: false", fsync: 'always', preallocate: false },
  { name: '{ batchMs: 2 } (preallocation default: on)', fsync: { batchMs: 2 } },
  { name: '{ batchMs: 1 }, preallocate: false', fsync: { batchMs: 1 }, preallocate: false },
  { name: "'os' (preallocation default: off)", fsync: 'os' },
  { name: "'os', preallocate: 512, bytesPerSync: 300", fsync: 'os', preallocate: 512, bytesPerSync: 300 },
];

const envSeed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const envPath = process.env.FC_PATH;
const envReplay = process.env.FC_REPLAY;
/** FC_RUNS_SCALE=10 runs ten times as many cases (for soak runs; the default keeps the file fast). */
const runsScale = Number(process.env.FC_RUNS_SCALE ?? 1);
/** Time budget for shrinking a failure (FC_SHRINK_MS; default 1 s). The search itself is never time-bounded. */
const shrinkMs = Number(process.env.FC_SHRINK_MS ?? 1_000);

async function runModel(
  cfg: Cfg,
  cmdArbs: fc.Arbitrary<Cmd>[],
  numRuns: number,
): Promise<{ runs: number; crashes: number; kills: number }> {
  const totals = { runs: 0, crashes: 0, kills: 0 };
  const cmdsArb = fc.commands(cmdArbs, envReplay === undefined ? { size: 'medium' } : { size: 'medium', replayPath: envReplay });
  const property = fc.asyncProperty(fc.integer({ min: 200, max: 2000 }), cmdsArb, async (maxSegmentSize, cmds) => {
    const mem = await prepareMem(new MemFileSystem());
    const proc = new ProcessFs(mem);
    const real: Real = { cfg, maxSegmentSize, mem, proc, wal: undefined as unknown as Wal, epoch: 0, unexpected: [], crashes: 0, kills: 0 };
    real.wal = (await openWal(real, proc)).wal;
    try {
      await fc.asyncModelRun(() => ({ model: { log: [], nextSeq: 0, nextBatch: 0 } as Model, real }), cmds);
    } finally {
      // Stop the last instance (timers, preallocation) whatever happened.
      real.proc.kill();
      real.epoch++;
      totals.runs++;
      totals.crashes += real.crashes;
      totals.kills += real.kills;
    }
  });
  // The search: a fixed number of runs, not bounded by time, stopping at the first failure.
  const search: fc.Parameters<[number, Iterable<Cmd>]> = { numRuns: Math.max(1, Math.round(numRuns * runsScale)), endOnFailure: true };
  if (envSeed !== undefined) search.seed = envSeed;
  if (envPath !== undefined) search.path = envPath;
  const found = await fc.check(property, search);
  if (!found.failed) return totals;
  // Shrinking replays the counterexample by seed and path, within a time budget so that a
  // failing property does not take minutes on a shared machine (the partially shrunk
  // counterexample is reported; if the replay does not fail again, the original is).
  const shrunk = await fc.check(property, {
    seed: found.seed,
    path: found.counterexamplePath ?? undefined,
    endOnFailure: false,
    interruptAfterTimeLimit: shrinkMs,
  });
  const report = shrunk.failed ? shrunk : found;
  throw new Error(fc.defaultReportMessage(report) ?? 'property failed', { cause: report.errorInstance });
}

// ---------------------------------------------------------------------------------------------

describe('WAL model: power loss at random points (Prefix-OK)', () => {
  for (const cfg of CONFIGS) {
    it(`${cfg.name}`, async () => {
      const arbs = commandArbs({ withFrames: false, kill: false, crashWeight: 3, keeps: ['drop', 'prefix', 'prefix', 'keep'] });
      const t = await runModel(cfg, arbs, 25);
      expect(t.crashes).toBeGreaterThan(10);
    });
  }
});

describe('WAL model: process crashes (Kill) mixed with power loss', () => {
  for (const cfg of [CONFIGS[0]!, CONFIGS[3]!, CONFIGS[4]!]) {
    it(`${cfg.name}`, async () => {
      const arbs = commandArbs({ withFrames: false, kill: true, crashWeight: 2, keeps: ['drop', 'prefix'] });
      const t = await runModel(cfg, arbs, 20);
      expect(t.kills).toBeGreaterThan(8);
    });
  }
});

describe('WAL model: values that embed valid WAL frames, torn by power loss', () => {
  for (const cfg of [CONFIGS[3]!, CONFIGS[4]!]) {
    it(`${cfg.name}`, async () => {
      const arbs = commandArbs({ withFrames: true, kill: false, crashWeight: 4, keeps: ['prefix'] });
      const t = await runModel(cfg, arbs, 20);
      expect(t.crashes).toBeGreaterThan(8);
    });
  }
});
