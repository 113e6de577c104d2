/**
 * The compaction picker (src/db/compaction.ts): `levelTarget`, `pickCompaction` (the L0 trigger,
 * size scores, round-robin pointers, overlap selection, nothing to do) and `fullCompaction`, over
 * versions of fake tables (the picker reads only their metadata).
 */
import { describe, expect, it } from 'vitest';
import {
  compactionDebt,
  fullCompaction,
  grandparentsOf,
  isTrivialMove,
  levelTarget,
  MAX_COMPACTION_FACTOR,
  maxGrandparentOverlap,
  pickCompaction,
  type CompactionPlan,
  type CompactionSettings,
} from '../../src/db/compaction.js';
import { GrandparentLimit } from '../../src/db/compaction-job.js';
import { LEVELS, Version, type LiveTable } from '../../src/db/version.js';
import type { TableReader } from '../../src/sstable/table-reader.js';

const S: CompactionSettings = { l0CompactionTrigger: 4, levelBaseSize: 1000, levelMultiplier: 10 };
const key = (s: string): Uint8Array => Buffer.from(s, 'latin1');

let nextNumber = 1;
/** A table holding keys `smallest..largest`, of `size` bytes; its reader is never touched. */
function table(smallest: string, largest: string, size = 100): LiveTable {
  const meta = { fileNumber: nextNumber++, size, smallest: key(smallest), largest: key(largest), minSeq: 1, maxSeq: 1, entries: 1 };
  return { meta, reader: {} as TableReader, refs: 0 };
}

/** A version whose levels are `levels` (missing ones empty). */
function version(...levels: LiveTable[][]): Version {
  const all = Array.from({ length: LEVELS }, (_, l) => levels[l] ?? []);
  return new Version(all, () => undefined);
}

/** A plan with its inputs as file numbers. */
function numbers(plan: CompactionPlan | undefined): unknown {
  return plan && { ...plan, inputs: plan.inputs.map((tables) => tables.map((t) => t.meta.fileNumber)) };
}

const ids = (tables: LiveTable[]): number[] => tables.map((t) => t.meta.fileNumber);
const NONE: (Uint8Array | undefined)[] = [];

describe('levelTarget', () => {
  it('is the base size at L1 and grows by the multiplier per level', () => {
    expect([1, 2, 3, 6].map((l) => levelTarget(l, S))).toEqual([1000, 10_000, 100_000, 100_000_000]);
    expect(levelTarget(4, { ...S, levelMultiplier: 2 })).toBe(8000);
  });
});

describe('pickCompaction: nothing to do', () => {
  it('an empty version', () => {
    expect(pickCompaction(version(), S, NONE)).toBeUndefined();
  });

  it('L0 one table short of the trigger, and every level at (not over) its target', () => {
    const v = version(
      [table('a', 'z'), table('a', 'z'), table('a', 'z')],
      [table('a', 'c', 500), table('d', 'f', 500)],
      [table('a', 'z', 10_000)],
      [],
      [],
      [],
      [table('a', 'z', 1e12)],
    );
    expect(pickCompaction(v, S, NONE)).toBeUndefined();
  });

  it('the last level is never a source, however large: it has no level below it', () => {
    expect(pickCompaction(version([], [], [], [], [], [], [table('a', 'z', 1e15)]), S, NONE)).toBeUndefined();
  });
});

describe('pickCompaction: the L0 trigger', () => {
  it('at the trigger, every L0 table (newest first, as they are) goes with the L1 tables their union overlaps', () => {
    const l0 = [table('m', 'p'), table('c', 'e'), table('f', 'h'), table('g', 'n')];
    const before = table('a', 'b');
    const touchesLow = table('b', 'c'); // ends exactly at the union's smallest key
    const inside = table('i', 'j');
    const touchesHigh = table('p', 'q'); // starts exactly at the union's largest key
    const after = table('q1', 'z');
    const v = version(l0, [before, touchesLow, inside, touchesHigh, after]);
    const plan = pickCompaction(v, S, NONE)!;
    expect(numbers(plan)).toEqual({ inputs: [ids(l0), ids([touchesLow, inside, touchesHigh])], level: 0, outputLevel: 1, reason: 'l0' });
    // The plan holds copies: the version's levels are not the plan's to change.
    expect(plan.inputs[0]).not.toBe(v.levels[0]);
  });

  it('with nothing in L1 to overlap, L0 goes down alone (disjoint L0 tables: a trivial move)', () => {
    const l0 = [table('a', 'b'), table('c', 'd'), table('e', 'f'), table('g', 'h'), table('i', 'j')];
    expect(numbers(pickCompaction(version(l0, [table('x', 'z')]), S, NONE))).toEqual({
      inputs: [ids(l0), []],
      level: 0,
      outputLevel: 1,
      reason: 'l0',
      trivialMove: true,
    });
    // Overlapping L0 tables must be merged: no move.
    const overlapping = [table('a', 'c'), table('b', 'd'), table('e', 'f'), table('g', 'h')];
    expect(pickCompaction(version(overlapping, [table('x', 'z')]), S, NONE)?.trivialMove).toBeUndefined();
  });

  it('one table short of the trigger it waits, even with L1 empty', () => {
    expect(
      pickCompaction(version([table('a', 'b'), table('c', 'd'), table('e', 'f')]), { ...S, l0CompactionTrigger: 4 }, NONE),
    ).toBeUndefined();
    expect(pickCompaction(version([table('a', 'b'), table('c', 'd')]), { ...S, l0CompactionTrigger: 2 }, NONE)?.level).toBe(0);
  });
});

describe('pickCompaction: size scores', () => {
  it('a level over its target is compacted into the next one', () => {
    const l1 = [table('a', 'c', 600), table('d', 'f', 600)]; // 1200 / 1000
    expect(numbers(pickCompaction(version([], l1), S, NONE))).toMatchObject({ level: 1, outputLevel: 2, reason: 'size' });
  });

  it('the level most over its target wins; on a tie the upper one', () => {
    const l1 = [table('a', 'c', 1500)]; // 1.5
    const l2 = [table('a', 'c', 20_000)]; // 2
    const l3 = [table('a', 'c', 150_000)]; // 1.5
    expect(pickCompaction(version([], l1, l2, l3), S, NONE)?.level).toBe(2);
    const tie = [table('a', 'c', 15_000)]; // 1.5, as L1
    expect(pickCompaction(version([], l1, tie), S, NONE)?.level).toBe(1);
  });

  it('L0 scores its table count over the trigger: it beats a level with a lower score, not one with a higher', () => {
    const l0 = (n: number): LiveTable[] => Array.from({ length: n }, () => table('a', 'z'));
    const l1 = [table('a', 'c', 1500)]; // 1.5
    expect(pickCompaction(version(l0(4), l1), S, NONE)?.level).toBe(1); // L0 at 1.0
    expect(pickCompaction(version(l0(8), l1), S, NONE)?.level).toBe(0); // L0 at 2.0
    expect(pickCompaction(version(l0(6), [table('a', 'c', 1500)]), S, NONE)?.level).toBe(0); // 1.5 each: L0 first
  });

  it('L5 may go into L6', () => {
    const plan = pickCompaction(version([], [], [], [], [], [table('a', 'c', 1e8)], [table('b', 'd')]), S, NONE);
    expect(plan).toMatchObject({ level: 5, outputLevel: 6, reason: 'size' });
    expect(plan!.inputs[1]).toHaveLength(1);
  });
});

describe('pickCompaction: which table, and what it overlaps', () => {
  const l1 = [table('a', 'c', 400), table('e', 'g', 400), table('i', 'k', 400)]; // 1200: over
  const l2 = [table('a', 'a1'), table('b', 'e'), table('f', 'f'), table('g', 'h'), table('h1', 'z')];
  const v = version([], l1, l2);
  const pick = (pointer: string | undefined): unknown => {
    const pointers: (Uint8Array | undefined)[] = [];
    pointers[1] = pointer === undefined ? undefined : key(pointer);
    return numbers(pickCompaction(v, S, pointers));
  };

  const plan = (from: LiveTable, into: LiveTable[]): unknown => ({
    inputs: [ids([from]), ids(into)],
    level: 1,
    outputLevel: 2,
    reason: 'size',
  });

  it('without a pointer, the first table', () => {
    expect(pick(undefined)).toEqual(plan(l1[0]!, [l2[0]!, l2[1]!]));
  });

  it('round robin: the first table that starts after the pointer (the largest key last compacted)', () => {
    expect(pick('c')).toEqual(plan(l1[1]!, [l2[1]!, l2[2]!, l2[3]!])); // e..g: b..e, f..f, g..h
    expect(pick('g')).toEqual(plan(l1[2]!, [l2[4]!]));
    // A pointer in a gap, or one equal to a table's smallest key, moves on to the next table.
    expect(pick('d')).toEqual(plan(l1[1]!, [l2[1]!, l2[2]!, l2[3]!]));
    expect(pick('e')).toEqual(plan(l1[2]!, [l2[4]!]));
  });

  it('past the last table it wraps around to the first', () => {
    expect(pick('k')).toEqual(plan(l1[0]!, [l2[0]!, l2[1]!]));
    expect(pick('zzz')).toEqual(plan(l1[0]!, [l2[0]!, l2[1]!]));
  });

  it('a pointer of another level is not this level’s', () => {
    const pointers: (Uint8Array | undefined)[] = [undefined, undefined, key('c')];
    expect(numbers(pickCompaction(v, S, pointers))).toEqual(plan(l1[0]!, [l2[0]!, l2[1]!]));
  });

  it('overlap is inclusive at both ends, and takes nothing outside', () => {
    const src = [table('m', 'p', 2000)];
    const below = [table('a', 'l'), table('l1', 'm'), table('n', 'n'), table('p', 'q'), table('q1', 'z')];
    expect(numbers(pickCompaction(version([], src, below), S, NONE))).toMatchObject({ inputs: [ids(src), ids(below.slice(1, 4))] });
    expect(numbers(pickCompaction(version([], src, [table('a', 'l'), table('q', 'z')]), S, NONE))).toMatchObject({
      inputs: [ids(src), []],
    });
  });
});

describe('fullCompaction', () => {
  it('nothing at all: undefined', () => {
    expect(fullCompaction(version())).toBeUndefined();
  });

  it('every table, newest level first, into the deepest level holding data (at least L1)', () => {
    const l0 = [table('a', 'b'), table('c', 'd')];
    expect(numbers(fullCompaction(version(l0)))).toEqual({
      inputs: [ids(l0), [], [], [], [], [], []],
      level: 0,
      outputLevel: 1,
      reason: 'manual',
    });
    const l1 = [table('a', 'b')];
    const l3 = [table('a', 'z')];
    expect(numbers(fullCompaction(version(l0, l1, [], l3)))).toEqual({
      inputs: [ids(l0), ids(l1), [], ids(l3), [], [], []],
      level: 0,
      outputLevel: 3,
      reason: 'manual',
    });
    expect(fullCompaction(version([], [], [], [], [], [], [table('a', 'b')]))?.outputLevel).toBe(6);
  });

  it('the plan holds copies of the levels', () => {
    const v = version([table('a', 'b')], [table('c', 'd')]);
    const plan = fullCompaction(v)!;
    plan.inputs.forEach((tables, l) => {
      expect(tables).toEqual(v.levels[l]);
      expect(tables).not.toBe(v.levels[l]);
    });
  });
});

describe('trivial moves', () => {
  const T: CompactionSettings = { ...S, tableFileSize: 100 }; // grandparent limit: 1000 bytes

  it('a table of a level over its target that overlaps nothing below moves; one that overlaps something does not', () => {
    const lone = table('m', 'p', 2000);
    expect(pickCompaction(version([], [lone], [table('a', 'l'), table('q', 'z')]), T, NONE)).toMatchObject({
      level: 1,
      outputLevel: 2,
      trivialMove: true,
    });
    expect(pickCompaction(version([], [lone], [table('a', 'm')]), T, NONE)?.trivialMove).toBeUndefined();
  });

  it('not when the table overlaps more than the grandparent limit of the level below the output level', () => {
    const src = table('b', 'y', 2000);
    const gp = (size: number): LiveTable[] => [table('a', 'c', size), table('d', 'e', size)];
    expect(pickCompaction(version([], [src], [], gp(500)), T, NONE)?.trivialMove).toBe(true); // 1000: at the limit
    expect(pickCompaction(version([], [src], [], gp(501)), T, NONE)?.trivialMove).toBeUndefined();
    // Without a table size (no limit) only an empty grandparent level allows it.
    expect(pickCompaction(version([], [src], [], gp(1)), S, NONE)?.trivialMove).toBeUndefined();
  });

  it('never for a manual compaction, and never with output-level inputs', () => {
    const v = version([table('a', 'b')]);
    expect(isTrivialMove(v, fullCompaction(v)!, T)).toBe(false);
    const t = table('a', 'b');
    expect(isTrivialMove(v, { inputs: [[t], [table('a', 'a')]], level: 1, outputLevel: 2, reason: 'size' }, T)).toBe(false);
    expect(isTrivialMove(v, { inputs: [[], []], level: 1, outputLevel: 2, reason: 'size' }, T)).toBe(false);
  });

  it('the grandparents of a plan are the tables of the level below the output that its range overlaps', () => {
    const gps = [table('a', 'b'), table('c', 'f'), table('g', 'h'), table('x', 'z')];
    const v = version([table('d', 'e'), table('c', 'g')], [], gps);
    const plan = pickCompaction(v, { ...T, l0CompactionTrigger: 2 }, NONE)!;
    expect(ids(grandparentsOf(v, plan))).toEqual(ids(gps.slice(1, 3)));
    expect(
      grandparentsOf(version([], [], [], [], [], [table('a', 'z')]), {
        inputs: [[table('a', 'b')], []],
        level: 6,
        outputLevel: 6,
        reason: 'size',
      }),
    ).toEqual([]);
    expect(maxGrandparentOverlap(T)).toBe(1000);
    expect(maxGrandparentOverlap(S)).toBe(0);
  });
});

describe('GrandparentLimit (LevelDB ShouldStopBefore)', () => {
  const gp = (smallest: string, largest: string, size: number) => ({ smallest: key(smallest), largest: key(largest), size });

  it('cuts once the output has passed more than the limit of grandparent bytes, and starts counting again', () => {
    const limit = new GrandparentLimit([gp('a', 'b', 60), gp('c', 'd', 60), gp('e', 'f', 60), gp('g', 'h', 60)], 100);
    const cuts = ['a', 'b', 'c', 'd', 'd1', 'e', 'f1', 'g', 'h1', 'z'].map((k) => limit.shouldStopBefore(key(k)));
    // 'c' passes a..b (60), 'd1' passes c..d (120 > 100: cut, reset), 'f1' passes e..f (60),
    // 'h1' passes g..h (120: cut).
    expect(cuts).toEqual([false, false, false, false, true, false, false, false, true, false]);
  });

  it('grandparents passed before the first key do not count', () => {
    const limit = new GrandparentLimit([gp('a', 'b', 500), gp('c', 'd', 500)], 100);
    expect(limit.shouldStopBefore(key('x'))).toBe(false);
    expect(limit.shouldStopBefore(key('y'))).toBe(false);
  });

  it('no limit (0) never cuts', () => {
    const limit = new GrandparentLimit([gp('a', 'b', 1e9)], 0);
    expect(['a', 'c', 'z'].map((k) => limit.shouldStopBefore(key(k)))).toEqual([false, false, false]);
  });
});

describe('compactionDebt', () => {
  it('L0: all its bytes once at the trigger; deeper levels: bytes over their target; the last level: none', () => {
    const l0 = [table('a', 'b', 10), table('a', 'b', 20), table('a', 'b', 30)];
    expect(compactionDebt(version(l0), S)[0]).toBe(0);
    const v = version([...l0, table('a', 'b', 40)], [table('a', 'b', 1500)], [table('a', 'b', 9000)], [], [], [], [table('a', 'z', 1e12)]);
    expect(compactionDebt(v, S)).toEqual([100, 500, 0, 0, 0, 0, 0]);
  });
});

describe('a size compaction takes its level back to its target in one job', () => {
  // L1 target 1000: 6 tables of 400 bytes (2400) are 1400 over.
  const l1 = [
    table('a', 'b', 400),
    table('c', 'd', 400),
    table('e', 'f', 400),
    table('g', 'h', 400),
    table('i', 'j', 400),
    table('k', 'l', 400),
  ];
  const l2 = [table('a', 'c1'), table('d1', 'g1'), table('h1', 'z')];
  const v = version([], l1, l2);

  it('consecutive tables from the round-robin position until their bytes cover the excess', () => {
    expect(numbers(pickCompaction(v, S, NONE))).toMatchObject({
      inputs: [ids(l1.slice(0, 4)), ids(l2.slice(0, 2))],
      level: 1,
      outputLevel: 2,
    });
    const pointers: (Uint8Array | undefined)[] = [undefined, key('d')];
    // From e..f on: the run stops at the level's end rather than wrap around.
    expect(numbers(pickCompaction(v, S, pointers))).toMatchObject({ inputs: [ids(l1.slice(2)), ids(l2.slice(1))] });
  });

  it('at most MAX_COMPACTION_FACTOR table sizes, and always at least one table', () => {
    expect(MAX_COMPACTION_FACTOR).toBe(25);
    // tableFileSize 40: the cap is 1000 bytes, two tables.
    expect(numbers(pickCompaction(v, { ...S, tableFileSize: 40 }, NONE))).toMatchObject({
      inputs: [ids(l1.slice(0, 2)), ids(l2.slice(0, 1))],
    });
    // The cap counts the next level's tables too: with l2's first table at 500 bytes, 400 + 400 + 500 > 1000.
    const heavy = version([], l1, [table('a', 'c1', 500), ...l2.slice(1)]);
    expect((pickCompaction(heavy, { ...S, tableFileSize: 40 }, NONE)?.inputs[0] ?? []).length).toBe(1);
    // A cap below one table still takes one.
    expect(numbers(pickCompaction(v, { ...S, tableFileSize: 1 }, NONE))).toMatchObject({
      inputs: [ids(l1.slice(0, 1)), ids(l2.slice(0, 1))],
    });
  });
});
