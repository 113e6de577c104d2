/**
 * Leveled compaction: which tables to merge ({@link pickCompaction}); the merge itself is a job
 * (`compaction-job.ts`).
 *
 * - L0 holds flushed memtables, which overlap; once it has `l0CompactionTrigger` tables they are
 *   all merged with the L1 tables they overlap.
 * - Level n >= 1 has a size target, `levelBaseSize * levelMultiplier^(n-1)`. The level most over
 *   its target gives one table (taken round-robin through the key space) to merge with the
 *   tables it overlaps in level n+1.
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
}

export interface CompactionSettings {
  l0CompactionTrigger: number;
  levelBaseSize: number;
  levelMultiplier: number;
}

/** Target bytes of level `l` (>= 1). */
export function levelTarget(l: number, s: CompactionSettings): number {
  return s.levelBaseSize * s.levelMultiplier ** (l - 1);
}

function overlapping(tables: readonly LiveTable[], smallest: Uint8Array, largest: Uint8Array): LiveTable[] {
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
  if (best === 0) {
    const [lo, hi] = range(l0);
    return { inputs: [[...l0], overlapping(v.levels[1]!, lo, hi)], level: 0, outputLevel: 1, reason: 'l0' };
  }
  const tables = v.levels[best]!;
  const after = pointers[best];
  const pick = (after && tables.find((t) => compareKeys(t.meta.smallest, after) > 0)) || tables[0]!;
  return {
    inputs: [[pick], overlapping(v.levels[best + 1]!, pick.meta.smallest, pick.meta.largest)],
    level: best,
    outputLevel: best + 1,
    reason: 'size',
  };
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
