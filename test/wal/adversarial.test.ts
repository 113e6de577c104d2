/**
 * Adversarial review of the segment state file (`SEGMENTS`) and the missing-segment rules.
 *
 * Crafted and damaged state files, absurd arguments, crash points under concurrency and a
 * read-only reader beside a writer that rotates and deletes. Every case checks the README's
 * promises: a recovered log never returns wrong bytes or loses an acknowledged record, never
 * deletes what it cannot prove is garbage, every loss is loud, and a crash never raises a false
 * alarm.
 */
import { describe, expect, it } from 'vitest';
import { FaultFileSystem, crashAtMutatingOp, type FsOp } from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { maskedCrc32c } from '../../src/util/crc32c.js';
import { segmentFileName } from '../../src/wal/format.js';
import {
  STATE_FILE_NAME,
  STATE_MAX_ROOM,
  STATE_SLOT_HEADER_SIZE,
  StateFile,
  encodeSlot,
  readStateFile,
  type SegmentState,
} from '../../src/wal/segment-state.js';
import { CorruptionError, Record, Wal, type Position, type WalOptions } from '../../src/wal/index.js';
import {
  DIR,
  ProcessFs,
  Tracker,
  checkPrefixOk,
  noop,
  prepareMem,
  readAll,
  seeded,
  view,
  walOptions,
  type Snapshot,
} from './helpers/harness.js';
import { withTimeout } from '../support/process.js';

const SEGMENT = 300;
const STATE = `${DIR}/${STATE_FILE_NAME}`;
const segPath = (id: number): string => `${DIR}/${segmentFileName(id)}`;

function stateBytes(state: SegmentState, room = 5, seqs: [number, number] = [1, 2]): Uint8Array {
  const slot = STATE_SLOT_HEADER_SIZE + 16 * room;
  const buf = Buffer.alloc(2 * slot);
  encodeSlot(buf, 0, slot, state, seqs[0]);
  encodeSlot(buf, slot, slot, state, seqs[1]);
  return buf;
}

const opts = (mem: MemFileSystem, extra: Partial<WalOptions> = {}): WalOptions =>
  walOptions(new ProcessFs(mem), { fsync: 'os', maxSegmentSize: SEGMENT, ...extra });

/** A log on a MemFileSystem with segments 0..last, closed. Returns the keys in order. */
async function buildLog(mem: MemFileSystem, last: number): Promise<string[]> {
  const { wal } = await Wal.open(opts(mem));
  const keys: string[] = [];
  for (let i = 0; wal.currentPosition().segmentId < last || keys.length === 0; i++) {
    const key = `k${String(i).padStart(4, '0')}`;
    await wal.append(Record.put(key, 'v'.repeat(70)));
    keys.push(key);
  }
  await wal.close();
  return keys;
}

async function keysOf(mem: MemFileSystem, extra: Partial<WalOptions> = {}): Promise<string[]> {
  const { wal } = await Wal.open(opts(mem, extra));
  try {
    return (await readAll(wal)).map((e) => Buffer.from(e.record.key).toString());
  } finally {
    await wal.close();
  }
}

describe('a crafted state file cannot make recovery hang or allocate without bound', () => {
  for (const next of [2 ** 31, 2 ** 40, Number.MAX_SAFE_INTEGER - 1]) {
    it(`next = ${next} (segments 0..2 present): strict rejects at once naming a missing segment; salvage finishes`, async () => {
      const mem = await prepareMem(new MemFileSystem());
      const keys = await buildLog(mem, 2);
      mem.writeFileBytes(STATE, stateBytes({ floor: 0, next, holes: [] }));
      const err = await withTimeout(
        Wal.open(opts(mem)).then(
          () => undefined,
          (e: unknown) => e,
        ),
        5000,
        'strict open',
      );
      expect(err).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file).toBe(segPath(3));
      const { wal, recovery } = await withTimeout(Wal.open(opts(mem, { recovery: 'salvage' })), 5000, 'salvage open');
      expect(recovery.corruptionDetected).toBe(true);
      expect(recovery.missingSegments[0]).toBe(3);
      expect(recovery.missingSegments).toHaveLength(Math.min(10_000, next - 3));
      expect(recovery.missingSegmentCount).toBe(next - 3);
      expect((await readAll(wal)).map((e) => Buffer.from(e.record.key).toString())).toEqual(keys);
      await wal.close();
    });
  }
});

describe('segment ids near 2^53: a state the file cannot hold is never written', () => {
  it('a fresh log with discardBefore at the last safe id: open rejects with IoError EOVERFLOW and writes no state file', async () => {
    const mem = await prepareMem(new MemFileSystem());
    const err = await Wal.open(opts(mem, { discardBefore: { segmentId: Number.MAX_SAFE_INTEGER, offset: 0 } })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IO', errno: 'EOVERFLOW' });
    expect(mem.listFiles().filter((f) => f.startsWith(DIR))).toEqual([]);
    // The directory still opens as a new log.
    expect(await keysOf(mem)).toEqual([]);
  });

  it('a log whose ids run out: rotation fails the log loudly, every acked record reopens, the state file stays readable', async () => {
    const mem = await prepareMem(new MemFileSystem());
    const last = Number.MAX_SAFE_INTEGER - 2;
    mem.writeFileBytes(STATE, stateBytes({ floor: last, next: last, holes: [] }));
    const { wal } = await Wal.open(opts(mem));
    const acked: string[] = [];
    let failure: unknown;
    for (let i = 0; i < 40 && failure === undefined; i++) {
      await wal.append(Record.put(`k${i}`, 'v'.repeat(70))).then(
        () => acked.push(`k${i}`),
        (e: unknown) => (failure = e),
      );
    }
    expect(failure).toMatchObject({ code: 'IO', errno: 'EOVERFLOW' });
    await wal.close().catch(() => undefined);
    const { wal: again, recovery } = await Wal.open(opts(mem)).catch((e: unknown) => {
      // The last segment is full and no new id is left: refused loudly, never a false corruption.
      expect(e).toMatchObject({ code: 'IO', errno: 'EOVERFLOW' });
      return Wal.open(opts(mem, { readOnly: true }));
    });
    expect(recovery.corruptionDetected).toBe(false);
    expect((await readAll(again)).map((e) => Buffer.from(e.record.key).toString())).toEqual(acked);
    await again.close();
  });
});

/** A closed log with segments 0..4 (four rotations since open: the two slots differ). */
async function fiveSegments(): Promise<{ mem: MemFileSystem; keys: string[]; files: Map<string, Uint8Array> }> {
  const mem = await prepareMem(new MemFileSystem());
  const keys = await buildLog(mem, 4);
  const files = new Map(mem.listFiles().map((f) => [f, mem.readFileBytes(f)]));
  return { mem, keys, files };
}

function restore(mem: MemFileSystem, files: Map<string, Uint8Array>): void {
  for (const f of mem.listFiles()) if (!files.has(f)) void mem.unlink(f);
  for (const [f, b] of files) mem.writeFileBytes(f, b);
}

function sameFiles(mem: MemFileSystem, files: Map<string, Uint8Array>): boolean {
  const now = mem.listFiles();
  return now.length === files.size && now.every((f) => files.has(f) && Buffer.from(mem.readFileBytes(f)).equals(files.get(f)!));
}

describe('damage to the state file', () => {
  it('every bit position of either slot: the log opens with every record, and the damaged slot is rewritten', async () => {
    const { mem, keys, files } = await fiveSegments();
    const original = files.get(STATE)!;
    let cases = 0;
    for (let byte = 0; byte < original.length; byte++) {
      for (const bit of [0, 7]) {
        restore(mem, files);
        const bytes = Uint8Array.from(original);
        bytes[byte]! ^= 1 << ((byte + bit) % 8);
        mem.writeFileBytes(STATE, bytes);
        const { wal, recovery } = await Wal.open(opts(mem));
        expect(recovery.missingSegments, `byte ${byte}`).toEqual([]);
        expect(
          (await readAll(wal)).map((e) => Buffer.from(e.record.key).toString()),
          `byte ${byte}`,
        ).toEqual(keys);
        await wal.close();
        // Both slots are whole again: damaging the other slot now still opens.
        const half = original.length / 2;
        const after = Uint8Array.from(mem.readFileBytes(STATE));
        after[(byte + half) % original.length]! ^= 0x10;
        mem.writeFileBytes(STATE, after);
        expect(await keysOf(mem), `byte ${byte}, then the other slot`).toEqual(keys);
        cases++;
      }
    }
    expect(cases).toBe(original.length * 2);
  });

  it('both slots damaged, truncated at every length, or grown: strict rejects naming SEGMENTS, changing nothing; salvage keeps every record', async () => {
    const { mem, keys, files } = await fiveSegments();
    const original = files.get(STATE)!;
    const half = original.length / 2;
    const variants: Array<[string, Uint8Array]> = [];
    for (let i = 0; i < half; i += 3) {
      const b = Uint8Array.from(original);
      b[i]! ^= 0x01;
      b[half + ((i * 7) % half)]! ^= 0x80;
      variants.push([`flip ${i} and ${half + ((i * 7) % half)}`, b]);
    }
    for (let n = 0; n < original.length; n++) variants.push([`cut to ${n}`, original.slice(0, n)]);
    for (const extra of [1, 16, 32, half, original.length])
      variants.push([`grown by ${extra}`, Buffer.concat([original, Buffer.alloc(extra)])]);
    variants.push(['all zeros', new Uint8Array(original.length)]);
    for (const [what, bytes] of variants) {
      restore(mem, files);
      mem.writeFileBytes(STATE, bytes);
      const before = new Map(mem.listFiles().map((f) => [f, mem.readFileBytes(f)]));
      const err = await Wal.open(opts(mem)).then(
        async ({ wal }) => {
          await wal.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err, what).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file, what).toBe(STATE);
      expect(sameFiles(mem, before), `${what}: a refused open changed files`).toBe(true);
      const ro = await Wal.open(opts(mem, { readOnly: true })).catch((e: unknown) => e);
      expect(ro, `${what} (readOnly)`).toBeInstanceOf(CorruptionError);
      const { wal, recovery } = await Wal.open(opts(mem, { recovery: 'salvage' }));
      expect(recovery.stateRebuilt, what).toBe(true);
      expect(recovery.corruptionDetected, what).toBe(true);
      expect(
        (await readAll(wal)).map((e) => Buffer.from(e.record.key).toString()),
        what,
      ).toEqual(keys);
      await wal.close();
      expect(await keysOf(mem), `${what}: strict after salvage`).toEqual(keys);
    }
  });

  const crafted: Array<[string, SegmentState]> = [
    ['next below the segments present (an older copy)', { floor: 0, next: 2, holes: [] }],
    ['next one below the newest segment, which holds records', { floor: 0, next: 4, holes: [] }],
    ['a hole over present segments', { floor: 0, next: 5, holes: [{ from: 1, to: 3 }] }],
    ['floor above present segments', { floor: 3, next: 5, holes: [] }],
    ['next far above (a state file from a longer log)', { floor: 0, next: 9, holes: [] }],
    ['floor = next = 0 (a state file from an empty log)', { floor: 0, next: 0, holes: [] }],
  ];
  for (const [what, state] of crafted) {
    it(`a valid state file that disagrees with the segments: ${what}`, async () => {
      const { mem, keys, files } = await fiveSegments();
      mem.writeFileBytes(STATE, stateBytes(state));
      const before = new Map(mem.listFiles().map((f) => [f, mem.readFileBytes(f)]));
      const strict = await Wal.open(opts(mem)).then(
        async ({ wal, recovery }) => {
          const got = (await readAll(wal)).map((e) => Buffer.from(e.record.key).toString());
          await wal.close();
          return { got, recovery };
        },
        (e: unknown) => e,
      );
      if (state.floor === 3) {
        // Raising the floor is what GC does: segments below it are garbage by definition.
        expect(strict).toMatchObject({ got: keys.slice((await segmentIndexes(files, 3, 4))[0]) });
        return;
      }
      expect(strict, what).toBeInstanceOf(CorruptionError);
      expect(sameFiles(mem, before), 'a refused open changed files').toBe(true);
      const inSegments1and2 = new Set(await segmentIndexes(files, 1, 2));
      const { wal, recovery } = await Wal.open(opts(mem, { recovery: 'salvage' }));
      const got = (await readAll(wal)).map((e) => Buffer.from(e.record.key).toString());
      await wal.close();
      if (state.holes.length > 0) {
        // Segments inside a range an earlier salvage gave up are strangers: quarantined, loudly.
        expect(recovery.quarantined.map((q) => q.segmentId)).toEqual([2, 1]);
        expect(got).toEqual(keys.filter((_, i) => !inSegments1and2.has(i)));
      } else {
        // Salvage keeps a prefix; whatever it does not keep is reported, and something was reported.
        expect(keys.slice(0, got.length)).toEqual(got);
      }
      expect(recovery.corruptionDetected, `${what}: salvage reports the disagreement`).toBe(true);
      if (got.length < keys.length) expect(recovery.quarantined.length + recovery.missingSegmentCount).toBeGreaterThan(0);
      expect(await keysOf(mem), 'strict after salvage').toEqual(got);
      restore(mem, before);
    });
  }
});

/** Indexes (in append order) of the records in segments from..to of a closed log's files. */
async function segmentIndexes(files: Map<string, Uint8Array>, from: number, to: number): Promise<number[]> {
  const mem = await prepareMem(new MemFileSystem());
  for (const [f, b] of files) mem.writeFileBytes(f, b);
  const { wal } = await Wal.open(opts(mem, { readOnly: true }));
  const out: number[] = [];
  (await readAll(wal)).forEach((e, i) => {
    if (e.position.segmentId >= from && e.position.segmentId <= to) out.push(i);
  });
  await wal.close();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Crash points under concurrency

const CRASH_SEGMENT = 240;
const crashRec = (i: number): Record =>
  Record.put(`c${String(i).padStart(3, '0')}`, Buffer.alloc([12, 50, 3, 80, 30][i % 5]!, 0x41 + (i % 26)));

interface CrashRun {
  phase: 1 | 2;
  discard: Position | undefined;
}

/**
 * Bursts of concurrent appends and batches that cross rotations, each GC racing the next burst
 * (and so the rotations it causes), syncs, and a close issued while the last burst (and its
 * rotation) is still in flight. Phase 2 reopens with discardBefore and does it again.
 */
async function racingWorkload(fs: FileSystemLike, t: Tracker, run: CrashRun, fsync: 'os' | 'always'): Promise<void> {
  const o = (discard?: Position): WalOptions =>
    walOptions(fs, {
      fsync,
      maxSegmentSize: CRASH_SEGMENT,
      preallocate: fsync === 'always' ? 256 : false,
      ...(discard ? { discardBefore: discard } : {}),
    });
  let i = 0;
  const burst = (wal: Wal): Promise<unknown> =>
    Promise.all([t.append(wal, i++), t.append(wal, i++), t.batch(wal, [i++, i++, i++]), t.append(wal, i++), t.append(wal, i++)]);
  const phase = async (wal: Wal, rounds: number): Promise<void> => {
    let gc: Promise<void> | undefined;
    let last: Promise<unknown> | undefined;
    for (let r = 0; r < rounds; r++) {
      last = burst(wal);
      last.catch(noop);
      if (r % 3 === 2) {
        // Delete before the first record of the previous burst: a GC racing this burst's rotations.
        const target = t.written[Math.max(0, t.written.length - 14)]!;
        if (target.pos) gc = t.deleteBefore(wal, target.pos);
        gc?.catch(noop);
      }
      if (r === rounds - 1) break; // close with the last burst in flight
      await last;
      await gc;
      if (r % 4 === 1) await t.sync(wal);
    }
    const closing = wal.close();
    closing.catch(noop);
    await last;
    await gc;
    await closing;
    t.closed();
  };
  run.phase = 1;
  await phase((await Wal.open(o())).wal, 7);
  run.phase = 2;
  run.discard = t.written[Math.floor(t.written.length / 2)]!.pos!;
  await phase((await Wal.open(o(run.discard))).wal, 6);
}

type FileSystemLike = ConstructorParameters<typeof FaultFileSystem>[0];

describe('crash at every mutating operation while appends, rotations and GC race', () => {
  for (const fsync of ['os', 'always'] as const) {
    it(`fsync '${fsync}': every image reopens strict (and read-only, and by salvage) with the same Prefix-OK records`, async () => {
      const violations: string[] = [];
      let points = 0;
      let statePoints = 0;
      let images = 0;
      for (let k = 0; ; k++) {
        const mem = await prepareMem(new MemFileSystem());
        const t = new Tracker(fsync === 'always', crashRec);
        const run: CrashRun = { phase: 1, discard: undefined };
        let crash: { op: FsOp; snap: Snapshot; discard: Position | undefined; images: Array<[string, MemFileSystem, boolean]> } | undefined;
        const fs = new FaultFileSystem(
          new ProcessFs(mem),
          crashAtMutatingOp(k, (op) => {
            const snap = t.snapshot();
            let s = snap;
            if (run.phase === 2 && run.discard) {
              let sD = snap.written.findIndex((x) => x.pos === undefined || x.pos.segmentId >= run.discard!.segmentId);
              if (sD < 0) sD = snap.written.length;
              s = { written: snap.written, minStart: Math.max(snap.minStart, sD), maxStart: Math.max(snap.maxStart, sD) };
            }
            crash = {
              op,
              snap: s,
              discard: run.phase === 2 ? run.discard : undefined,
              images: [
                ['drop', mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }), false],
                ['keep', mem.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }), true],
                ['prefix', mem.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(k * 7 + 3) }), false],
                ['prefix2', mem.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'drop', rng: seeded(k * 13 + 1) }), false],
              ],
            };
          }),
        );
        const done = await racingWorkload(fs, t, run, fsync).then(
          () => true,
          (e: unknown) => e,
        );
        if (!crash) {
          expect(done, 'the workload failed without a crash').toBe(true);
          break;
        }
        points++;
        if (crash.op.path.includes(STATE_FILE_NAME)) statePoints++;
        for (const [label, img, ackedSurvive] of crash.images) {
          images++;
          const where = `k=${k} (before ${crash.op.kind} ${crash.op.path}), image ${label}`;
          const o = (extra: Partial<WalOptions> = {}): WalOptions =>
            walOptions(new ProcessFs(img.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' })), {
              fsync,
              maxSegmentSize: CRASH_SEGMENT,
              ...(crash!.discard ? { discardBefore: crash!.discard } : {}),
              ...extra,
            });
          try {
            const read = async (extra: Partial<WalOptions>): Promise<string> => {
              const { wal, recovery } = await Wal.open(o(extra));
              try {
                if (recovery.missingSegments.length > 0 || recovery.corruptionDetected)
                  throw new Error(`false alarm: ${JSON.stringify(recovery)}`);
                const entries = await readAll(wal);
                checkPrefixOk(entries, { ...crash!.snap, ackedSurvive });
                return entries.map((e) => `${view(e.record)}@${e.position.segmentId}:${e.position.offset}`).join(',');
              } finally {
                await wal.close();
              }
            };
            const ro = await read({ readOnly: true });
            const strict = await read({});
            const salvage = await read({ recovery: 'salvage' });
            if (ro !== strict) throw new Error('read-only open saw other records than the writable one');
            if (salvage !== strict) throw new Error('salvage saw other records than strict');
          } catch (err) {
            violations.push(`${where}: ${(err as Error).message.split('\n')[0]}`);
          }
        }
      }
      console.log(
        `racing crash loop (${fsync}): ${points} crash points (${statePoints} at the state file), ${images} images, ${violations.length} violations`,
      );
      expect(points).toBeGreaterThan(100);
      expect(violations.slice(0, 8)).toEqual([]);
    }, 600_000);
  }
});

// ---------------------------------------------------------------------------------------------
// Salvage with holes, crashed at every step, the state file outgrowing its slots

describe('salvage that grows the state file, crashed at every mutating operation', () => {
  it('each image: salvage again keeps the same prefix (or more), reports the loss, and a strict open then agrees', async () => {
    // A log with 5 holes (a slot's room), built by five salvages; then a sixth gap to salvage.
    const base = await prepareMem(new MemFileSystem());
    let n = 0;
    const kept: string[] = [];
    const grow = async (mem: MemFileSystem): Promise<string[]> => {
      const { wal } = await Wal.open(opts(mem));
      const added: Array<{ key: string; seg: number }> = [];
      const start = wal.stats().rotations;
      while (wal.stats().rotations < start + 3) {
        const key = `h${n++}`;
        added.push({ key, seg: (await wal.append(Record.put(key, 'v'.repeat(80)))).segmentId });
      }
      await wal.close();
      const newest = Math.max(...added.map((a) => a.seg));
      await mem.unlink(segPath(newest - 1));
      return added.filter((a) => a.seg < newest - 1).map((a) => a.key);
    };
    for (let round = 0; round < 5; round++) {
      kept.push(...(await grow(base)));
      const { wal } = await Wal.open(opts(base, { recovery: 'salvage' }));
      await wal.close();
    }
    const stateSize = base.readFileBytes(STATE).length;
    const expected = [...kept, ...(await grow(base))];
    let points = 0;
    let grew = 0;
    const violations: string[] = [];
    for (let k = 0; ; k++) {
      const mem = base.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
      let imgs: Array<[string, MemFileSystem]> | undefined;
      let at = '';
      const fs = new FaultFileSystem(
        new ProcessFs(mem),
        crashAtMutatingOp(k, (op) => {
          at = `${op.kind} ${op.path}`;
          imgs = [
            ['drop', mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' })],
            ['keep', mem.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' })],
            ['prefix', mem.crashClone({ unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(k + 99) })],
          ];
        }),
      );
      const opened = await Wal.open(walOptions(fs, { fsync: 'os', maxSegmentSize: SEGMENT, recovery: 'salvage' })).then(
        (r) => r,
        () => undefined,
      );
      if (opened) {
        fs.injector = undefined;
        expect(imgs).toBeUndefined();
        expect((await readAll(opened.wal)).map((e) => Buffer.from(e.record.key).toString())).toEqual(expected);
        await opened.wal.close();
        if (mem.readFileBytes(STATE).length > stateSize) grew++;
        break;
      }
      points++;
      for (const [label, img] of imgs!) {
        const where = `k=${k} (before ${at}), image ${label}`;
        try {
          const strict = await Wal.open(opts(img.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' }))).then(
            async ({ wal }) => {
              const got = (await readAll(wal)).map((e) => Buffer.from(e.record.key).toString());
              await wal.close();
              return got;
            },
            (e: unknown) => e,
          );
          const { wal, recovery } = await Wal.open(opts(img, { recovery: 'salvage' }));
          const got = (await readAll(wal)).map((e) => Buffer.from(e.record.key).toString());
          await wal.close();
          if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`salvage kept [${got.length}] vs [${expected.length}]`);
          if (Array.isArray(strict)) {
            // The crashed salvage got as far as recording the new state: nothing is missing any more.
            if (JSON.stringify(strict) !== JSON.stringify(expected)) throw new Error(`strict found ${strict.length} records`);
          } else {
            if (!(strict instanceof CorruptionError)) throw new Error(`strict failed with ${String(strict)}`);
            if (!recovery.corruptionDetected) throw new Error('salvage after a refused strict open reported nothing');
          }
          const again = await keysOf(img);
          if (JSON.stringify(again) !== JSON.stringify(expected)) throw new Error('strict after salvage differs');
        } catch (err) {
          violations.push(`${where}: ${(err as Error).message.split('\n')[0]}`);
        }
      }
    }
    console.log(`salvage crash loop: ${points} crash points, 3 images each, ${violations.length} violations`);
    expect(grew).toBe(1);
    expect(points).toBeGreaterThan(10);
    expect(violations.slice(0, 8)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Read-only opens beside a writer

/** Every operation of `inner` waits a random few event-loop turns first: interleavings vary. */
class DelayFs extends FaultFileSystem {
  constructor(inner: FileSystemLike, rng: () => number) {
    super(inner);
    const wrap = <K extends 'open' | 'readdir' | 'stat' | 'rename' | 'unlink' | 'syncDir'>(name: K): void => {
      const orig = (this[name] as (...a: unknown[]) => Promise<unknown>).bind(this);
      (this as unknown as { [k: string]: unknown })[name] = async (...args: unknown[]) => {
        for (let n = Math.floor(rng() * 4); n > 0; n--) await new Promise<void>((r) => setImmediate(r));
        const out = await orig(...args);
        for (let n = Math.floor(rng() * 3); n > 0; n--) await new Promise<void>((r) => setImmediate(r));
        return out;
      };
    };
    for (const m of ['open', 'readdir', 'stat', 'rename', 'unlink', 'syncDir'] as const) wrap(m);
  }
}

describe('read-only opens while a writer rotates, deletes and reopens', () => {
  it('never a false alarm, never a wrong or out-of-order record, across random interleavings', async () => {
    const problems: string[] = [];
    let opens = 0;
    for (let seed = 1; seed <= 6; seed++) {
      const mem = await prepareMem(new MemFileSystem());
      const rng = seeded(seed);
      const value = (i: number): string => `value-${i}-`.padEnd(20 + (i % 7) * 9, String.fromCharCode(97 + (i % 26)));
      let stop = false;
      let n = 0;
      const writer = (async () => {
        for (let round = 0; !stop && round < 40; round++) {
          const { wal } = await Wal.open(
            walOptions(new DelayFs(mem, seeded(seed * 1000 + round)), { fsync: round % 2 ? 'os' : 'always', maxSegmentSize: 260 }),
          );
          for (let b = 0; b < 6 && !stop; b++) {
            const ps = Array.from({ length: 4 }, () => {
              const i = n++;
              return wal.append(Record.put(`k${String(i).padStart(6, '0')}`, value(i)));
            });
            const gcAt = await ps[0]!;
            const gc = b % 2 ? wal.deleteSegmentsBefore(gcAt) : Promise.resolve(0);
            await Promise.all([...ps, gc]);
          }
          await wal.close();
        }
      })();
      while (!stop) {
        const reader = new DelayFs(mem, seeded(rng() * 1e9));
        try {
          opens++;
          const { wal, recovery } = await Wal.open(walOptions(reader, { readOnly: true, maxSegmentSize: 260 }));
          if (recovery.corruptionDetected || recovery.missingSegments.length > 0)
            problems.push(`seed ${seed}: ${JSON.stringify(recovery)}`);
          let prev = -1;
          for await (const e of wal.readFrom({ segmentId: 0, offset: 0 })) {
            const i = Number(Buffer.from(e.record.key).toString().slice(1));
            if (i <= prev) problems.push(`seed ${seed}: k${i} after k${prev}`);
            if (Buffer.from(e.record.value).toString() !== value(i)) problems.push(`seed ${seed}: wrong bytes for k${i}`);
            prev = i;
          }
          await wal.close();
        } catch (err) {
          problems.push(`seed ${seed}: ${(err as Error).message.split('\n')[0]}`);
        }
        if (n > 600) stop = true;
      }
      await writer;
    }
    console.log(`read-only beside a writer: ${opens} opens, ${problems.length} problems`);
    expect(opens).toBeGreaterThan(50);
    expect(problems.slice(0, 8)).toEqual([]);
  }, 300_000);
});

// ---------------------------------------------------------------------------------------------
// Misuse

describe('misuse', () => {
  it('deleteSegmentsBefore with absurd positions: bad ones are TypeErrors that leave the log working; far ones spare the active segment', async () => {
    const mem = await prepareMem(new MemFileSystem());
    const keys = await buildLog(mem, 4);
    const { wal } = await Wal.open(opts(mem));
    for (const bad of [NaN, -1, 1.5, Infinity, 2 ** 53, '3', null]) {
      await expect(wal.deleteSegmentsBefore({ segmentId: bad as number, offset: 0 })).rejects.toBeInstanceOf(TypeError);
      await expect(wal.deleteSegmentsBefore({ segmentId: 1, offset: bad as number })).rejects.toBeInstanceOf(TypeError);
    }
    await expect(wal.deleteSegmentsBefore(null as unknown as Position)).rejects.toBeInstanceOf(TypeError);
    expect(wal.stats().failure).toBeUndefined();
    // Before the oldest segment: nothing.
    expect(await wal.deleteSegmentsBefore({ segmentId: 0, offset: 0 })).toBe(0);
    // The active segment's own position: everything before it, never it.
    const active = wal.currentPosition().segmentId;
    expect(await wal.deleteSegmentsBefore(wal.currentPosition())).toBe(active);
    // Far beyond the log, twice, concurrently with appends that rotate.
    const appends = Array.from({ length: 12 }, (_, i) => wal.append(Record.put(`z${i}`, 'v'.repeat(70))));
    const gcs = [
      wal.deleteSegmentsBefore({ segmentId: Number.MAX_SAFE_INTEGER, offset: 0 }),
      wal.deleteSegmentsBefore({ segmentId: 1e12, offset: 5 }),
    ];
    await Promise.all([...appends, ...gcs]);
    const a2 = wal.currentPosition().segmentId;
    expect(wal.stats().oldestSegmentId).toBeLessThanOrEqual(a2);
    await wal.close();
    const after = await keysOf(mem);
    expect(after.length).toBeGreaterThan(0);
    expect([...keys, ...Array.from({ length: 12 }, (_, i) => `z${i}`)].slice(-after.length)).toEqual(after);
  });

  it('close while a rotation waits on a slow fdatasync: the rotation finishes or fails loudly, and every acked record reopens', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const mem = await prepareMem(new MemFileSystem());
      const fs = new DelayFs(mem, seeded(seed));
      const { wal } = await Wal.open(walOptions(fs, { fsync: 'always', maxSegmentSize: SEGMENT }));
      const acked: string[] = [];
      const ps = Array.from({ length: 15 }, (_, i) =>
        wal.append(Record.put(`r${i}`, 'v'.repeat(60))).then(() => acked.push(`r${i}`), noop),
      );
      for (let t = 0; t < seed; t++) await new Promise<void>((r) => setImmediate(r));
      await wal.close();
      await Promise.all(ps);
      // Under 'always' an acked record is durable: a power loss now keeps every one, in order.
      const got = await keysOf(mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }));
      expect(got).toEqual(Array.from({ length: got.length }, (_, i) => `r${i}`));
      expect(got).toEqual(expect.arrayContaining(acked));
    }
  });

  it('two read-only handles and a writer at once; read-only beside a leftover SEGMENTS.tmp leaves it, the writer removes it', async () => {
    const mem = await prepareMem(new MemFileSystem());
    const keys = await buildLog(mem, 3);
    mem.writeFileBytes(`${DIR}/SEGMENTS.tmp`, new Uint8Array([1, 2, 3]));
    const { wal: w } = await Wal.open(opts(mem, { readOnly: true }));
    const { wal: r1 } = await Wal.open(opts(mem, { readOnly: true }));
    const { wal: r2 } = await Wal.open(opts(mem, { readOnly: true }));
    expect(mem.listFiles()).toContain(`${DIR}/SEGMENTS.tmp`);
    expect((await readAll(r1)).map((e) => Buffer.from(e.record.key).toString())).toEqual(keys);
    expect((await readAll(r2)).map((e) => Buffer.from(e.record.key).toString())).toEqual(keys);
    await Promise.all([w.close(), r1.close(), r2.close()]);
    const { wal: writer } = await Wal.open(opts(mem));
    expect(mem.listFiles()).not.toContain(`${DIR}/SEGMENTS.tmp`);
    const { wal: r3 } = await Wal.open(opts(mem, { readOnly: true }));
    expect((await readAll(r3)).map((e) => Buffer.from(e.record.key).toString())).toEqual(keys);
    await r3.close();
    await writer.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Hot path

describe('the hot path', () => {
  it('appends touch the state file only at rotation: one write and one fdatasync each', async () => {
    const mem = await prepareMem(new MemFileSystem());
    const fault = new FaultFileSystem(new ProcessFs(mem));
    const stateOps: string[] = [];
    let ops = 0;
    fault.injector = (op) => {
      ops++;
      if (op.path.includes(STATE_FILE_NAME)) stateOps.push(op.kind);
      return undefined;
    };
    const { wal } = await Wal.open(walOptions(fault, { fsync: 'os', maxSegmentSize: 1 << 20 }));
    stateOps.length = 0;
    ops = 0;
    for (let i = 0; i < 2000; i++) await wal.append(Record.put(`k${i}`, 'v'.repeat(20)));
    await Promise.all(Array.from({ length: 2000 }, (_, i) => wal.append(Record.put(`q${i}`, 'v'.repeat(20)))));
    expect(stateOps).toEqual([]);
    // One file operation per write(2): lone appends one each, the concurrent burst coalesced.
    expect(ops).toBeLessThan(2000 + 50);
    const rotations = wal.stats().rotations;
    for (let i = 0; i < 3000; i++) await wal.append(Record.put(`r${i}`, 'v'.repeat(900)));
    const more = wal.stats().rotations - rotations;
    expect(more).toBeGreaterThan(1);
    expect(stateOps).toEqual(Array.from({ length: more }, () => ['write', 'datasync']).flat());
    await wal.close();
  });
});

/** `inner`, with `before()` awaited ahead of every read of a file whose path `match` accepts. */
function readHook(inner: FileSystemLike, match: (file: string) => boolean, before: () => Promise<void>): FileSystemLike {
  return new Proxy(inner, {
    get(target, prop) {
      const v = (target as unknown as { [k: string | symbol]: unknown })[prop];
      if (prop !== 'open' || typeof v !== 'function') return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      return async (file: string, mode: Parameters<FileSystemLike['open']>[1]) => {
        const h = await target.open(file, mode);
        if (!match(file)) return h;
        return new Proxy(h, {
          get(t, p) {
            const f = (t as unknown as { [k: string | symbol]: unknown })[p];
            if (typeof f !== 'function') return f;
            if (p !== 'read') return (f as (...a: unknown[]) => unknown).bind(t);
            return async (...args: Parameters<typeof h.read>) => {
              await before();
              return h.read(...args);
            };
          },
        });
      };
    },
  });
}

describe("a read-only open racing the writer's appends in the newest segment", () => {
  for (const [fsync, perRead, once] of [
    ['os', 2, false],
    [{ batchMs: 1 }, 2, false],
    [{ batchMs: 1 }, 1, false],
    [{ batchMs: 1 }, 1, true],
    [{ batchMs: 1 }, 3, true],
  ] as const) {
    it(`fsync ${JSON.stringify(fsync)}, ${perRead} record(s) appended before ${once ? 'one read' : 'each read'}: bytes that turn into records between two reads are not damage`, async () => {
      const mem = await prepareMem(new MemFileSystem());
      const { wal: writer } = await Wal.open(walOptions(mem, { fsync, maxSegmentSize: 1 << 20, preallocate: 64 * 1024 }));
      const keys: string[] = [];
      let n = 0;
      const more = async (): Promise<void> => {
        for (let j = 0; j < perRead; j++) {
          const key = `w${n++}`;
          await writer.append(Record.put(key, 'v'.repeat(40 + (n % 5) * 20)));
          keys.push(key);
        }
      };
      for (let i = 0; i < 10; i++) await more();
      await new Promise((r) => setTimeout(r, 10)); // preallocation lands
      const problems: string[] = [];
      for (let attempt = 0; attempt < 10; attempt++) {
        let reads = 0;
        const fs = readHook(
          mem,
          (f) => f.endsWith('.wal'),
          async () => {
            if (once ? reads++ === attempt : reads++ >= attempt) await more();
          },
        );
        try {
          const { wal, recovery } = await Wal.open(walOptions(fs, { readOnly: true }));
          if (recovery.corruptionDetected) problems.push(`attempt ${attempt}: corruption reported`);
          const got = (await readAll(wal)).map((e) => Buffer.from(e.record.key).toString());
          if (got.length < 10 * perRead || JSON.stringify(keys.slice(0, got.length)) !== JSON.stringify(got))
            problems.push(`attempt ${attempt}: ${got.length} records`);
          await wal.close();
        } catch (err) {
          problems.push(`attempt ${attempt}: ${(err as Error).message.split('\n')[0]}`);
        }
      }
      await writer.close();
      expect(problems).toEqual([]);
    });
  }
});

/** Every operation of `inner`, and every read of a file it opened, first waits one event-loop turn. */
function slowFs(inner: FileSystemLike): FileSystemLike {
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  return new Proxy(inner, {
    get(target, prop) {
      const v = (target as unknown as { [k: string | symbol]: unknown })[prop];
      if (typeof v !== 'function') return v;
      if (prop === 'open') {
        return async (file: string, mode: Parameters<FileSystemLike['open']>[1]) => {
          await turn();
          const h = await target.open(file, mode);
          return new Proxy(h, {
            get(t, p) {
              const f = (t as unknown as { [k: string | symbol]: unknown })[p];
              if (typeof f !== 'function') return f;
              if (p !== 'read' && p !== 'size') return (f as (...a: unknown[]) => unknown).bind(t);
              return async (...args: unknown[]) => {
                await turn();
                return (f as (...a: unknown[]) => unknown).apply(t, args);
              };
            },
          });
        };
      }
      return async (...args: unknown[]) => {
        await turn();
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('read-only opens beside a writer that rotates faster than a scan', () => {
  for (const [label, fsync, segment] of [
    ['rotating every few records', 'os', 1200],
    ['appending into preallocated zeros', { batchMs: 1 }, 1 << 22],
  ] as const) {
    it(`${label}: every open succeeds and reads a consistent prefix`, async () => {
      const mem = await prepareMem(new MemFileSystem());
      const { wal: writer } = await Wal.open(
        walOptions(mem, { fsync, maxSegmentSize: segment, preallocate: fsync === 'os' ? false : 1 << 16 }),
      );
      let stop = false;
      let n = 0;
      const work = (async () => {
        while (!stop) {
          await Promise.all([0, 1, 2, 3, 4, 5].map(() => writer.append(Record.put(`k${String(n++).padStart(7, '0')}`, 'v'.repeat(100)))));
          if (n % 600 === 0) await writer.deleteSegmentsBefore(writer.currentPosition());
          await new Promise<void>((r) => setImmediate(r));
        }
      })();
      const problems: string[] = [];
      let opens = 0;
      // Counted, not timed: at least 80 opens, and on until the writer has rotated and collected
      // segments under them (600 records between deleteSegmentsBefore calls), however loaded the machine.
      while (opens < 80 || n < 1800) {
        opens++;
        try {
          const { wal, recovery } = await Wal.open(walOptions(slowFs(mem), { readOnly: true, maxSegmentSize: segment }));
          if (recovery.corruptionDetected) problems.push('corruption reported');
          let prev = '';
          for await (const e of wal.readFrom({ segmentId: 0, offset: 0 })) {
            const key = Buffer.from(e.record.key).toString();
            if (key <= prev) problems.push(`${key} after ${prev}`);
            prev = key;
          }
          await wal.close();
        } catch (err) {
          problems.push((err as Error).message.split('\n')[0]!);
        }
      }
      stop = true;
      await work;
      await writer.close();
      console.log(`read-only beside a fast writer (${label}): ${opens} opens, ${n} records written, ${problems.length} problems`);
      expect(problems.slice(0, 5)).toEqual([]);
    }, 60_000);
  }
});

describe('the state file never grows past what its readers accept', () => {
  it(`${STATE_MAX_ROOM} holes are written and read back; one more is refused (EFBIG), never written`, async () => {
    const mem = await prepareMem(new MemFileSystem());
    const holes = (n: number): SegmentState => ({
      floor: 0,
      next: 2 * n + 1,
      holes: Array.from({ length: n }, (_, i) => ({ from: 2 * i + 1, to: 2 * i + 2 })),
    });
    const f = await StateFile.create(mem, DIR, holes(STATE_MAX_ROOM));
    await f.close();
    const loaded = await readStateFile(mem, DIR);
    expect(loaded?.state.holes.length).toBe(STATE_MAX_ROOM);
    const before = mem.readFileBytes(STATE);
    await expect(StateFile.create(mem, DIR, holes(STATE_MAX_ROOM + 1))).rejects.toMatchObject({ code: 'IO', errno: 'EFBIG' });
    expect(Buffer.from(mem.readFileBytes(STATE)).equals(before)).toBe(true);
    // Through update: the file fails, the state on disk stays readable.
    const g = await StateFile.open(mem, DIR, loaded!);
    await expect(
      g.update((s) => ({ ...s, next: s.next + 2, holes: [...s.holes, { from: s.next, to: s.next + 1 }] }), true),
    ).rejects.toMatchObject({ errno: 'EFBIG' });
    await g.close();
    expect((await readStateFile(mem, DIR))?.state.holes.length).toBe(STATE_MAX_ROOM);
  });

  it('a state a reader would refuse (next of 2^53) is refused by the writer', async () => {
    const mem = await prepareMem(new MemFileSystem());
    await expect(StateFile.create(mem, DIR, { floor: 2 ** 53, next: 2 ** 53, holes: [] })).rejects.toBeInstanceOf(Error);
    expect(await readStateFile(mem, DIR)).toBeUndefined();
  });
});

describe('discardBefore beyond every segment present, with no state file to say so', () => {
  it('adoptUntracked: strict refuses naming the segment the caller needs; salvage lists it as missing', async () => {
    const mem = await prepareMem(new MemFileSystem());
    const keys = await buildLog(mem, 3);
    await mem.unlink(STATE);
    // The caller stored everything through segment 5, which this log (0..3) never had.
    const discard = { segmentId: 5, offset: 40 };
    const err = await Wal.open(opts(mem, { adoptUntracked: true, discardBefore: discard })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).file).toBe(segPath(5));
    expect(mem.listFiles().filter((f) => f.endsWith('.wal'))).toHaveLength(4);
    const { wal, recovery } = await Wal.open(opts(mem, { recovery: 'salvage', discardBefore: discard }));
    expect(recovery.corruptionDetected).toBe(true);
    expect(recovery.missingSegments).toContain(5);
    await wal.close();
    expect(keys.length).toBeGreaterThan(0);
  });
});

describe('a segment name past 2^53', () => {
  it("9999999999999999.wal is no segment of sediment's: strict and salvage opens ignore it instead of failing on a rounded id", async () => {
    const mem = await prepareMem(new MemFileSystem());
    const keys = await buildLog(mem, 2);
    mem.writeFileBytes(`${DIR}/9999999999999999.wal`, new Uint8Array(64));
    expect(await keysOf(mem)).toEqual(keys);
    expect(await keysOf(mem, { recovery: 'salvage' })).toEqual(keys);
    expect(mem.listFiles()).toContain(`${DIR}/9999999999999999.wal`);
  });
});

describe('a torn header on a segment the state file recorded', () => {
  it('is damage, not a crash (a header is synced before its segment is recorded): recovered, and reported as corruption', async () => {
    const mem = await prepareMem(new MemFileSystem());
    const keys = await buildLog(mem, 3);
    const kept = keys.slice(0, (await segmentIndexes(new Map(mem.listFiles().map((f) => [f, mem.readFileBytes(f)])), 3, 3))[0]);
    // The newest segment, holding records, cut to 10 bytes: its records are gone.
    mem.writeFileBytes(segPath(3), mem.readFileBytes(segPath(3)).slice(0, 10));
    const { wal, recovery } = await Wal.open(opts(mem));
    expect((await readAll(wal)).map((e) => Buffer.from(e.record.key).toString())).toEqual(kept);
    await wal.close();
    expect(recovery.truncations).toMatchObject([{ segmentId: 3, offset: 0, bytes: 10, reason: 'torn-segment-header' }]);
    expect(recovery.corruptionDetected).toBe(true);
  });

  it('but not on the one segment a crash during rotation leaves unrecorded', async () => {
    const mem = await prepareMem(new MemFileSystem());
    const keys = await buildLog(mem, 3);
    // Segment 4 created (cut short by the crash) but never recorded: next is still 4.
    mem.writeFileBytes(segPath(4), new Uint8Array(10));
    const { wal, recovery } = await Wal.open(opts(mem));
    expect((await readAll(wal)).map((e) => Buffer.from(e.record.key).toString())).toEqual(keys);
    await wal.close();
    expect(recovery.truncations).toMatchObject([{ segmentId: 4, reason: 'torn-segment-header' }]);
    expect(recovery.corruptionDetected).toBe(false);
  });
});

describe('state files whose checksums are valid but whose contents no writer makes', () => {
  const bad: Array<[string, (b: Buffer, slot: number) => void]> = [
    [
      'overlapping holes',
      (b, at) =>
        encodeSlot(
          b,
          at,
          128,
          {
            floor: 0,
            next: 9,
            holes: [
              { from: 1, to: 4 },
              { from: 3, to: 5 },
            ],
          },
          at ? 2 : 1,
        ),
    ],
    ['floor above next', (b, at) => encodeSlot(b, at, 128, { floor: 7, next: 5, holes: [] }, at ? 2 : 1)],
    ['a hole past next', (b, at) => encodeSlot(b, at, 128, { floor: 0, next: 5, holes: [{ from: 2, to: 9 }] }, at ? 2 : 1)],
    [
      'a hole count of 2^32 - 1',
      (b, at) => {
        encodeSlot(b, at, 128, { floor: 0, next: 5, holes: [] }, at ? 2 : 1);
        b.writeUInt32LE(0xffffffff, at + 12);
        b.writeUInt32LE(slotChecksum(b, at, 128), at + 44);
      },
    ],
    [
      'next of 2^64 - 1',
      (b, at) => {
        encodeSlot(b, at, 128, { floor: 0, next: 5, holes: [] }, at ? 2 : 1);
        b.fill(0xff, at + 32, at + 40);
        b.writeUInt32LE(slotChecksum(b, at, 128), at + 44);
      },
    ],
  ];
  for (const [what, write] of bad) {
    it(`${what} in both slots: strict rejects naming SEGMENTS, salvage rebuilds it with every record`, async () => {
      const { mem, keys } = await fiveSegments();
      const b = Buffer.alloc(256);
      write(b, 0);
      write(b, 128);
      mem.writeFileBytes(STATE, b);
      const err = await withTimeout(
        Wal.open(opts(mem)).catch((e: unknown) => e),
        5000,
        'strict open',
      );
      expect(err).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file).toBe(STATE);
      const { wal, recovery } = await withTimeout(Wal.open(opts(mem, { recovery: 'salvage' })), 5000, 'salvage open');
      expect(recovery.stateRebuilt).toBe(true);
      expect((await readAll(wal)).map((e) => Buffer.from(e.record.key).toString())).toEqual(keys);
      await wal.close();
    });
  }
});

function slotChecksum(b: Buffer, at: number, size: number): number {
  return maskedCrc32c(Buffer.concat([b.subarray(at, at + 44), b.subarray(at + 48, at + size)]));
}
