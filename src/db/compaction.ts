/**
 * Leveled compaction: which tables to merge ({@link pickCompaction}); the merge itself is a job
 * (`compaction-job.ts`).
 *
 * - L0 holds flushed memtables, which overlap; once it has `l0CompactionTrigger` tables they are
 *   all merged with the L1 tables they overlap.
 * - Level n >= 1 has a size target, `levelBaseSize * levelMultiplier^(n-1)`. The level most over
 *   its target gives a run of consecutive tables (taken round-robin through the key space) to
 *   merge with the tables they overlap in level n+1: as many as its excess over the target (at
 *   least one, while the job reads at most {@link MAX_COMPACTION_FACTOR} table sizes), so that
 *   one job brings the level back to its target. (One table per job left L1 at 3x its target in bench/compaction.ts:
 *   L0, refilling meanwhile, won every pick, and each L0->L1 rewrote all of that L1.)
 * - A trivial move: inputs that overlap nothing in the output level (and little in the level
 *   below it) change level in the manifest only, with no rewrite (LevelDB's `IsTrivialMove`).
 * - An output table is cut once it overlaps more than `maxGrandparentOverlap` bytes of the level
 *   below the output level (LevelDB's grandparent limit), so that compacting it later stays small.
 *
 * @module
 */
import { compareKeys } from '../entry.js';
import { LEVELS, type LiveTable, type Version } from './version.js';

/** What a compaction merges and where it writes. */
export interface CompactionPlan {
  /** Input tables, newest data first (L0 newest first, then the source level, then the target level). */
  inputs: LiveTable[][];
  /** Level the inputs come from (the upper one). */
  level: number;
  outputLevel: number;
  reason: 'l0' | 'size' | 'manual';
  /**
   * Set when the inputs can move to the output level as they are: one source level only, whose
   * tables overlap neither each other nor anything in the output level, and each overlaps at
   * most `maxGrandparentOverlap` bytes of the level below the output level.
   */
  trivialMove?: true;
}

export interface CompactionSettings {
  l0CompactionTrigger: number;
  levelBaseSize: number;
  levelMultiplier: number;
  /** Target size of a compaction's output table; the grandparent limit is a multiple of it. */
  tableFileSize?: number;
}

/** Output tables overlap at most this many target-sizes of the grandparent level (LevelDB's 10). */
export const GRANDPARENT_OVERLAP_FACTOR = 10;

/**
 * A size compaction that takes several tables reads at most this many target table sizes, its
 * tables and what they overlap in the next level together (RocksDB's max_compaction_bytes: 25).
 */
export const MAX_COMPACTION_FACTOR = 25;

/** Bytes of the grandparent level one output table may overlap (0: no table size set, no limit). */
export function maxGrandparentOverlap(s: CompactionSettings): number {
  return s.tableFileSize === undefined ? 0 : GRANDPARENT_OVERLAP_FACTOR * s.tableFileSize;
}

/** Target bytes of level `l` (>= 1). */
export function levelTarget(l: number, s: CompactionSettings): number {
  return s.levelBaseSize * s.levelMultiplier ** (l - 1);
}

export function overlapping(tables: readonly LiveTable[], smallest: Uint8Array, largest: Uint8Array): LiveTable[] {
  return tables.filter((t) => compareKeys(t.meta.largest, smallest) >= 0 && compareKeys(t.meta.smallest, largest) <= 0);
}

function range(tables: readonly LiveTable[]): [Uint8Array, Uint8Array] {
  let lo = tables[0]!.meta.smallest;
  let hi = tables[0]!.meta.largest;
  for (const t of tables) {
    if (compareKeys(t.meta.smallest, lo) < 0) lo = t.meta.smallest;
    if (compareKeys(t.meta.largest, hi) > 0) hi = t.meta.largest;
  }
  return [lo, hi];
}

/**
 * The compaction to run now, or undefined. `pointers[l]` is the largest key last compacted out
 * of level l (the round-robin position), updated by the caller.
 */
export function pickCompaction(v: Version, s: CompactionSettings, pointers: (Uint8Array | undefined)[]): CompactionPlan | undefined {
  const l0 = v.levels[0]!;
  let best = -1;
  let bestScore = 1;
  if (l0.length >= s.l0CompactionTrigger) {
    best = 0;
    bestScore = l0.length / s.l0CompactionTrigger;
  }
  for (let l = 1; l < LEVELS - 1; l++) {
    const score = v.levelBytes(l) / levelTarget(l, s);
    if (score > bestScore) {
      best = l;
      bestScore = score;
    }
  }
  if (best < 0) return undefined;
  let plan: CompactionPlan;
  if (best === 0) {
    const [lo, hi] = range(l0);
    plan = { inputs: [[...l0], overlapping(v.levels[1]!, lo, hi)], level: 0, outputLevel: 1, reason: 'l0' };
  } else {
    const tables = v.levels[best]!;
    const after = pointers[best];
    let first = after ? tables.findIndex((t) => compareKeys(t.meta.smallest, after) > 0) : 0;
    if (first < 0) first = 0;
    const excess = v.levelBytes(best) - levelTarget(best, s);
    const cap = s.tableFileSize === undefined ? Infinity : MAX_COMPACTION_FACTOR * s.tableFileSize;
    const below = v.levels[best + 1]!;
    const picked = [tables[first]!];
    let bytes = tables[first]!.meta.size;
    for (let i = first + 1; i < tables.length && bytes < excess; i++) {
      const t = tables[i]!;
      // The cap counts what the job reads: these tables and what they overlap below.
      if (bytes + t.meta.size + overlapBytes(below, picked[0]!.meta.smallest, t.meta.largest) > cap) break;
      picked.push(t);
      bytes += t.meta.size;
    }
    const lo = picked[0]!.meta.smallest;
    const hi = picked[picked.length - 1]!.meta.largest;
    plan = {
      inputs: [picked, overlapping(below, lo, hi)],
      level: best,
      outputLevel: best + 1,
      reason: 'size',
    };
  }
  if (isTrivialMove(v, plan, s)) plan.trivialMove = true;
  return plan;
}

/** True when no two of `tables` overlap. */
function disjoint(tables: readonly LiveTable[]): boolean {
  const sorted = [...tables].sort((a, b) => compareKeys(a.meta.smallest, b.meta.smallest));
  for (let i = 1; i < sorted.length; i++) if (compareKeys(sorted[i - 1]!.meta.largest, sorted[i]!.meta.smallest) >= 0) return false;
  return true;
}

/** Bytes of `tables` in `smallest..largest`. */
function overlapBytes(tables: readonly LiveTable[], smallest: Uint8Array, largest: Uint8Array): number {
  let n = 0;
  for (const t of overlapping(tables, smallest, largest)) n += t.meta.size;
  return n;
}

/**
 * True when `plan`'s inputs can change level without a rewrite (see {@link CompactionPlan}).
 * Tombstones and expired entries move along; a later compaction drops them.
 */
export function isTrivialMove(v: Version, plan: CompactionPlan, s: CompactionSettings): boolean {
  if (plan.reason === 'manual' || plan.inputs.length !== 2 || plan.inputs[1]!.length > 0) return false;
  const upper = plan.inputs[0]!;
  if (upper.length === 0 || !disjoint(upper)) return false;
  const grandparents = plan.outputLevel + 1 < LEVELS ? v.levels[plan.outputLevel + 1]! : [];
  const max = maxGrandparentOverlap(s);
  if (max === 0) return grandparents.length === 0;
  return upper.every((t) => overlapBytes(grandparents, t.meta.smallest, t.meta.largest) <= max);
}

/** The tables of the level below `plan`'s output level that its key range overlaps, in key order. */
export function grandparentsOf(v: Version, plan: CompactionPlan): LiveTable[] {
  if (plan.outputLevel + 1 >= LEVELS) return [];
  const upper = plan.inputs.flat();
  if (upper.length === 0) return [];
  const [lo, hi] = range(upper);
  return overlapping(v.levels[plan.outputLevel + 1]!, lo, hi);
}

/**
 * Compaction debt: per level, the bytes a compaction would have to move out of it to bring it
 * back to its target. L0's target is a table count: all of L0 once it reaches
 * `l0CompactionTrigger` tables, else nothing. The last level has no target.
 */
export function compactionDebt(v: Version, s: CompactionSettings): number[] {
  return v.levels.map((_, l) => {
    const bytes = v.levelBytes(l);
    if (l === 0) return v.levels[0]!.length >= s.l0CompactionTrigger ? bytes : 0;
    if (l === LEVELS - 1) return 0;
    return Math.max(0, bytes - levelTarget(l, s));
  });
}

/** Everything merged into the deepest level that holds data (at least L1). */
export function fullCompaction(v: Version): CompactionPlan | undefined {
  let deepest = 0;
  let count = 0;
  for (let l = 0; l < LEVELS; l++) {
    if (v.levels[l]!.length > 0) deepest = l;
    count += v.levels[l]!.length;
  }
  if (count === 0) return undefined;
  const outputLevel = Math.max(1, deepest);
  return { inputs: v.levels.map((level) => [...level]), level: 0, outputLevel, reason: 'manual' };
}
