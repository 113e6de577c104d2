/**
 * Real-process crash tests: a child writer (test/fixtures/wal-writer.ts) appends to a WAL on the
 * real file system and is killed with SIGKILL at a random moment; the parent reopens the log
 * (strict recovery) and checks the durability contract:
 *
 * - every acknowledged record (its append / appendBatch resolved) is there, with its exact bytes:
 *   "append resolves only after its bytes are in the operating system: a SIGKILL of the process
 *   after that loses nothing" (the page cache survives a process kill, so this holds under every
 *   fsync policy);
 * - records come back in append order, without gaps or duplicates;
 * - batches are all or nothing, and the log never ends inside one;
 * - nothing that was never issued appears;
 * - recovery of a killed writer's directory succeeds in strict mode, only ever trims the tail of
 *   the last segment, and never quarantines anything.
 *
 * Every kill is followed by more writing into the same directory by the next writer, so recovery
 * runs after recovery. Half of the verifications open a *copy* of the crashed directory, so that
 * the next writer itself recovers the crash; its recovery report must match the parent's.
 *
 * The next writer is spawned while the current one runs (it waits for a "go" on stdin before it
 * opens the WAL), so its start-up (its build loading: test/support/build.ts) is hidden behind the
 * current run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { comparePositions, Wal, type FsyncPolicy, type Position, type RecoveryInfo } from '../../src/wal/index.js';
// Type only: importing the fixture's values would run it.
import type { WriterArgs } from '../fixtures/wal-writer.js';
import { keyOf, prng, seqOfKey, unitLength, valueFor } from '../fixtures/wal-workload.js';
import { copyStore, fixtureScope, readText as readLog, spawnFixture, type Child } from '../support/child.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WRITER = path.join(REPO, 'test/fixtures/wal-writer.ts');

const { live, tempDir } = fixtureScope('sediment-');

type Writer = Child<WriterArgs>;

function spawnWriter(args: WriterArgs): Writer {
  return spawnFixture(WRITER, args, REPO, live, () => readLog(args.logFile));
}

/** What the writers' log files say. */
interface LogFacts {
  /** Acknowledged units: [start, length]. */
  acked: [number, number][];
  /** One past the highest sequence number ever issued. */
  issuedEnd: number;
  /** The recovery info each writer got from Wal.open, by generation. */
  opens: (RecoveryInfo | undefined)[];
  /** Where each writer resumed, by generation. */
  resumes: (number | undefined)[];
  errors: string[];
}

function parseLogs(files: string[]): LogFacts {
  const facts: LogFacts = { acked: [], issuedEnd: 0, opens: [], resumes: [], errors: [] };
  files.forEach((file, gen) => {
    const lines = readLog(file).split('\n');
    // The text after the last newline is a line the kill may have cut short: ignored.
    lines.pop();
    for (const line of lines) {
      const unit = /^([ia]) (\d+) (\d+)$/.exec(line);
      if (unit) {
        const s = Number(unit[2]);
        const n = Number(unit[3]);
        if (unit[1] === 'a') facts.acked.push([s, n]);
        else facts.issuedEnd = Math.max(facts.issuedEnd, s + n);
        continue;
      }
      const sp = line.indexOf(' ');
      const tag = line.slice(0, sp);
      const rest = line.slice(sp + 1);
      if (tag === 'open') facts.opens[gen] = JSON.parse(rest) as RecoveryInfo;
      else if (tag === 'resume') facts.resumes[gen] = Number(rest);
      else if (tag === 'err') facts.errors.push(rest);
      else expect.fail(`unexpected line in ${file}: ${line}`);
    }
  });
  return facts;
}

interface Verified {
  records: number;
  recovery: RecoveryInfo;
  maxAckedEnd: number;
  segments: number;
}

/**
 * Opens `dir` (strict) and checks the log against the writers' logs. Returns the number of
 * records in the log.
 */
async function verify(dir: string, logs: string[], maxSegmentSize: number): Promise<Verified> {
  const facts = parseLogs(logs);
  expect(facts.errors, 'a writer failed').toEqual([]);
  const lastSegment = Math.max(
    ...fs
      .readdirSync(dir)
      .filter((n) => /^\d{16}\.wal$/.test(n))
      .map((n) => Number(n.slice(0, 16))),
  );
  const { wal, recovery } = await Wal.open({ dir, maxSegmentSize, fsync: 'os' });
  try {
    let seq = 0;
    let unitStart = 0;
    let unitLen = unitLength(0);
    let prev: Position | undefined;
    for await (const { record, position } of wal.readFrom({ segmentId: 0, offset: 0 })) {
      if (seq === unitStart + unitLen) {
        unitStart = seq;
        unitLen = unitLength(seq);
      }
      const got = seqOfKey(record.key);
      if (got !== seq)
        expect.fail(`record #${seq} at ${JSON.stringify(position)} has key of seq ${got}: a gap, a duplicate or a foreign record`);
      if (!Buffer.from(record.value).equals(valueFor(seq, unitStart, unitLen))) expect.fail(`record #${seq} has wrong value bytes`);
      if (!Buffer.from(record.key).equals(keyOf(seq))) expect.fail(`record #${seq} has wrong key bytes`);
      expect(record.tombstone).toBe(false);
      if (prev && comparePositions(prev, position) >= 0) expect.fail(`positions out of order at #${seq}`);
      prev = position;
      seq++;
    }
    const records = seq;
    // The log ends on a unit boundary: no batch is partly there.
    expect(
      records === 0 || records === unitStart + unitLen,
      `log of ${records} records ends inside the batch ${unitStart}+${unitLen}`,
    ).toBe(true);
    // Nothing that was never issued.
    expect(records).toBeLessThanOrEqual(facts.issuedEnd);
    // Every acknowledged unit is there, entirely.
    let maxAckedEnd = 0;
    for (const [s, n] of facts.acked) maxAckedEnd = Math.max(maxAckedEnd, s + n);
    expect(maxAckedEnd, 'an acknowledged record is missing').toBeLessThanOrEqual(records);
    // Recovery agrees with what we read, trimmed only the last segment, quarantined nothing.
    expect(recovery.validRecords).toBe(records);
    expect(recovery.quarantined).toEqual([]);
    const stats = wal.stats();
    for (const t of recovery.truncations) expect(t.segmentId, 'recovery cut a segment other than the last').toBe(lastSegment);
    return { records, recovery, maxAckedEnd, segments: stats.segments };
  } finally {
    await wal.close();
  }
}

interface Summary {
  kills: number;
  records: number;
  acked: number;
  writtenNotAcked: number;
  truncations: Record<string, number>;
  segments: number;
  childRecoveries: number;
}

/**
 * Runs `kills` writer generations in `root`/wal, killing each after 30..300 ms of writing, and
 * verifying after each kill.
 */
async function killLoop(opts: {
  kills: number;
  seed: number;
  maxSegmentSize: number;
  bytesPerSync?: number;
  policy: (gen: number) => FsyncPolicy;
}): Promise<Summary> {
  const root = tempDir();
  const dir = path.join(root, 'wal');
  const rand = prng(opts.seed);
  const logs: string[] = [];
  const argsOf = (gen: number): WriterArgs => ({
    dir,
    fsync: opts.policy(gen),
    maxSegmentSize: opts.maxSegmentSize,
    ...(opts.bytesPerSync === undefined ? {} : { bytesPerSync: opts.bytesPerSync }),
    logFile: path.join(root, `gen-${gen}.log`),
    seed: opts.seed * 1000 + gen,
  });
  const summary: Summary = { kills: 0, records: 0, acked: 0, writtenNotAcked: 0, truncations: {}, segments: 0, childRecoveries: 0 };
  let expectedChildRecovery: RecoveryInfo | undefined;
  let expectedResume = 0;
  let next: Writer | undefined = spawnWriter(argsOf(0));
  for (let gen = 0; gen < opts.kills; gen++) {
    const w: Writer = next!;
    logs.push(w.args.logFile);
    await w.loaded;
    w.go();
    await w.ready;
    // The next generation loads while this one writes.
    next = gen + 1 < opts.kills ? spawnWriter(argsOf(gen + 1)) : undefined;
    const delay = 30 + Math.floor(rand() * 270);
    await new Promise((r) => setTimeout(r, delay));
    w.child.kill('SIGKILL');
    const { code, signal } = await w.exited;
    if (signal !== 'SIGKILL') expect.fail(`writer ${gen} exited by itself (code ${code}):\n${w.stderr()}\n${readLog(w.args.logFile)}`);
    summary.kills++;

    // The writer resumed where the previous verification found the log's end...
    const facts = parseLogs(logs);
    expect(facts.resumes[gen], `writer ${gen} resumed at the wrong record`).toBe(expectedResume);
    // ...and, when it recovered a crashed directory itself, found what the parent found in a copy.
    if (expectedChildRecovery) {
      const got = facts.opens[gen]!;
      expect(got.validRecords).toBe(expectedChildRecovery.validRecords);
      expect(got.bytesTruncated).toBe(expectedChildRecovery.bytesTruncated);
      expect(got.lastPosition).toEqual(expectedChildRecovery.lastPosition);
      expect(got.truncations).toEqual(expectedChildRecovery.truncations);
      summary.childRecoveries++;
    }

    let v: Verified;
    if (gen % 2 === 1 && gen + 1 < opts.kills) {
      // Verify a copy; leave the crash for the next writer to recover.
      const copy = path.join(root, `copy-${gen}`);
      copyStore(dir, copy);
      v = await verify(copy, logs, opts.maxSegmentSize);
      fs.rmSync(copy, { recursive: true, force: true });
      expectedChildRecovery = v.recovery;
    } else {
      v = await verify(dir, logs, opts.maxSegmentSize);
      expectedChildRecovery = undefined;
    }
    expectedResume = v.records;
    summary.records = v.records;
    summary.acked = v.maxAckedEnd;
    summary.writtenNotAcked += v.records - v.maxAckedEnd;
    summary.segments = v.segments;
    for (const t of v.recovery.truncations) summary.truncations[t.reason] = (summary.truncations[t.reason] ?? 0) + 1;
  }
  // Something was actually written and acknowledged (the kills did not all land before writing).
  expect(summary.acked).toBeGreaterThan(0);
  return summary;
}

function report(name: string, s: Summary): void {
  // One line per run, for the record of what the kills exercised.
  console.log(
    `[sigkill ${name}] kills=${s.kills} records=${s.records} segments=${s.segments} ` +
      `written-but-unacked-at-kill=${s.writtenNotAcked} child-recoveries=${s.childRecoveries} truncations=${JSON.stringify(s.truncations)}`,
  );
}

const KILLS_PER_POLICY = 10;

describe('SIGKILL of a writer loses no acknowledged append', () => {
  const policies: { name: string; policy: FsyncPolicy; seed: number; bytesPerSync?: number }[] = [
    { name: "'os'", policy: 'os', seed: 11 },
    // Background write-back syncs every 4 KiB: kills land while they run and during the seals.
    { name: "'os', bytesPerSync: 4 KiB", policy: 'os', seed: 55, bytesPerSync: 4096 },
    { name: '{ batchMs: 5 }', policy: { batchMs: 5 }, seed: 22 },
    { name: "'always'", policy: 'always', seed: 33 },
  ];

  it.each(policies)('fsync $name: kill, recover, continue, repeatedly', async ({ name, policy, seed, bytesPerSync }) => {
    const s = await killLoop({ kills: KILLS_PER_POLICY, seed, maxSegmentSize: 64 * 1024, bytesPerSync, policy: () => policy });
    report(name, s);
    expect(s.kills).toBe(KILLS_PER_POLICY);
  });

  it('kills during heavy rotation with tiny segments (policies alternating between writers)', async () => {
    const cycle: FsyncPolicy[] = ['os', { batchMs: 2 }, 'always'];
    const s = await killLoop({ kills: 6, seed: 44, maxSegmentSize: 512, policy: (gen) => cycle[gen % cycle.length]! });
    report('tiny segments', s);
    expect(s.segments).toBeGreaterThan(10); // it rotated, a lot
  });
});
