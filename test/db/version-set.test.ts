/**
 * applyEdit: the pure half of installing a flush or a compaction (levels in, levels out).
 */
import { describe, expect, it } from 'vitest';
import type { TableMeta } from '../../src/db/manifest.js';
import { applyEdit } from '../../src/db/version-set.js';

const key = (s: string): Uint8Array => Buffer.from(s);
function table(fileNumber: number, smallest: string, largest: string): { meta: TableMeta } {
  return { meta: { fileNumber, size: 100, smallest: key(smallest), largest: key(largest), minSeq: 1, maxSeq: 2, entries: 3 } };
}
const numbers = (levels: { meta: TableMeta }[][]): number[][] => levels.map((l) => l.map((t) => t.meta.fileNumber));

describe('applyEdit', () => {
  const base = [[table(5, 'a', 'z'), table(4, 'c', 'm')], [table(1, 'a', 'f'), table(2, 'g', 'p')], [], []];

  it('a flush puts its table first in L0 (newest first) and changes nothing else', () => {
    const out = applyEdit(base, { added: [{ level: 0, table: table(6, 'b', 'c') }], removed: new Set() });
    expect(numbers(out)).toEqual([[6, 5, 4], [1, 2], [], []]);
  });

  it('a compaction removes its inputs and places its outputs in key order at the output level', () => {
    const out = applyEdit(base, {
      added: [
        { level: 1, table: table(8, 'h', 'k') },
        { level: 1, table: table(7, 'b', 'e') },
      ],
      removed: new Set([4, 2]),
    });
    expect(numbers(out)).toEqual([[5], [1, 7, 8], [], []]);
    expect(out[1]!.map((t) => Buffer.from(t.meta.smallest).toString())).toEqual(['a', 'b', 'h']);
  });

  it('applies to whatever is current: an L0 table a flush added meanwhile survives a compaction edit', () => {
    const afterFlush = applyEdit(base, { added: [{ level: 0, table: table(9, 'x', 'y') }], removed: new Set() });
    const out = applyEdit(afterFlush, { added: [{ level: 1, table: table(10, 'a', 'z') }], removed: new Set([5, 4, 1, 2]) });
    expect(numbers(out)).toEqual([[9], [10], [], []]);
  });

  it('does not change its inputs', () => {
    const before = JSON.stringify(numbers(base));
    applyEdit(base, { added: [{ level: 2, table: table(11, 'a', 'b') }], removed: new Set([5, 1]) });
    expect(JSON.stringify(numbers(base))).toBe(before);
  });

  it('an empty edit gives equal levels; removing an unknown number is harmless', () => {
    expect(numbers(applyEdit(base, { added: [], removed: new Set([99]) }))).toEqual(numbers(base));
  });
});
