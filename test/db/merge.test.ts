/**
 * The merge cursors (src/db/merge.ts): `findTable`, `LevelCursor` over real tables (several
 * blocks each, written with TableWriter to a MemFileSystem), and `MergingCursor` (newest wins,
 * both directions, empty inputs), alone and composed.
 */
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareKeys, type Entry, type EntryCursor } from '../../src/entry.js';
import { findTable, HeapMergingCursor, LevelCursor, type LevelTable, MergingCursor } from '../../src/db/merge.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { writeTable } from '../../src/sstable/table-writer.js';
import { checkCursorMoves, plain, type PlainEntry } from '../sstable/helpers.js';

const key = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const put = (k: string, seq: number, value = `${k}@${seq}`): Entry => ({
  key: key(k),
  seq,
  kind: 'put',
  value: key(value),
  expiresAt: undefined,
});
const del = (k: string, seq: number): Entry => ({ key: key(k), seq, kind: 'delete', value: new Uint8Array(0), expiresAt: undefined });
const keysOf = (entries: readonly (Entry | PlainEntry)[]): string[] =>
  entries.map((e) => (typeof e.key === 'string' ? Buffer.from(e.key, 'hex') : Buffer.from(e.key)).toString('latin1'));

/** A cursor over a sorted array: the smallest EntryCursor there is. */
class ArrayCursor implements EntryCursor {
  readonly #entries: readonly Entry[];
  #i = -1;
  constructor(entries: readonly Entry[]) {
    this.#entries = entries;
  }
  get current(): Entry | undefined {
    return this.#entries[this.#i];
  }
  #at(i: number): Entry | undefined {
    this.#i = i >= 0 && i < this.#entries.length ? i : -1;
    return this.current;
  }
  seek(k: Uint8Array): Entry | undefined {
    return this.#at(this.#entries.findIndex((e) => compareKeys(e.key, k) >= 0));
  }
  seekForPrev(k: Uint8Array): Entry | undefined {
    return this.#at(this.#entries.findLastIndex((e) => compareKeys(e.key, k) <= 0));
  }
  seekToFirst(): Entry | undefined {
    return this.#at(0);
  }
  seekToLast(): Entry | undefined {
    return this.#at(this.#entries.length - 1);
  }
  next(): Entry | undefined {
    return this.#i < 0 ? undefined : this.#at(this.#i + 1);
  }
  prev(): Entry | undefined {
    return this.#i < 0 ? undefined : this.#at(this.#i - 1);
  }
  *[Symbol.iterator](): Iterator<Entry> {
    for (let e = this.current; e; e = this.next()) yield e;
  }
}

/** Drains a merging cursor. */
function drainMerge(m: { next(): Entry | undefined }): PlainEntry[] {
  const out: PlainEntry[] = [];
  for (let e = m.next(); e; e = m.next()) out.push(plain(e));
  return out;
}

// ---------------------------------------------------------------------------------------------
// A level of real tables

const fs = new MemFileSystem();
const readers: TableReader[] = [];
let fileNo = 0;

/** A table of `entries` (sorted), in blocks of a few entries each. */
async function level(...tables: Entry[][]): Promise<LevelTable[]> {
  const out: LevelTable[] = [];
  for (const entries of tables) {
    const fileNumber = ++fileNo;
    const file = `/db/${fileNumber}.sst`;
    await writeTable(fs, file, entries, { blockSize: 64, restartInterval: 2, compression: 'none' });
    const reader = await TableReader.open(fs, file, { fileNumber });
    readers.push(reader);
    const meta = {
      fileNumber,
      size: 0,
      smallest: entries[0]!.key,
      largest: entries[entries.length - 1]!.key,
      minSeq: 0,
      maxSeq: 0,
      entries: entries.length,
    };
    out.push({ meta, reader });
  }
  return out;
}

/** `n` puts with keys `<prefix>00`, `<prefix>02`, ... (even numbers: odd ones fall in the gaps). */
function run(prefix: string, n: number, seq = 1): Entry[] {
  return Array.from({ length: n }, (_, i) => put(`${prefix}${String(2 * i).padStart(2, '0')}`, seq));
}

let three: LevelTable[];
let all: Entry[];

beforeAll(async () => {
  await fs.mkdir('/db');
  const a = run('b', 12);
  const b = run('d', 1);
  const c = run('f', 20);
  three = await level(a, b, c);
  all = [...a, ...b, ...c];
});

afterAll(async () => {
  for (const r of readers) await r.close();
});

describe('findTable', () => {
  const tables = (...ranges: [string, string][]): LevelTable[] =>
    ranges.map(([lo, hi], i) => ({
      meta: { fileNumber: i, size: 0, smallest: key(lo), largest: key(hi), minSeq: 0, maxSeq: 0, entries: 1 },
      reader: {} as TableReader,
    }));

  it('is the first table whose largest key is at or after the key', () => {
    const t = tables(['b', 'd'], ['f', 'f'], ['h', 'k']);
    const at = (k: string): number => findTable(t, key(k));
    expect([at('a'), at('b'), at('c'), at('d'), at('e'), at('f'), at('g'), at('h'), at('k'), at('l')]).toEqual([
      0, 0, 0, 0, 1, 1, 2, 2, 2, 3,
    ]);
    expect(at('')).toBe(0);
    expect(at('d\0')).toBe(1); // just past a table's largest key
  });

  it('an empty level: 0 for any key', () => {
    expect(findTable([], key('x'))).toBe(0);
  });
});

describe('LevelCursor', () => {
  it('walks every table as one sequence, forward and backward', () => {
    const c = new LevelCursor(three, false);
    expect(c.current).toBeUndefined();
    const forward: Entry[] = [];
    for (let e = c.seekToFirst(); e; e = c.next()) forward.push(e);
    expect(forward.map(plain)).toEqual(all.map(plain));
    expect(c.current).toBeUndefined();
    const backward: Entry[] = [];
    for (let e = c.seekToLast(); e; e = c.prev()) backward.push(e);
    expect(backward.map(plain)).toEqual([...all].reverse().map(plain));
    // for...of yields from where it stands, forward.
    c.seek(key('f30'));
    expect(keysOf([...c])).toEqual(['f30', 'f32', 'f34', 'f36', 'f38']);
  });

  it('seek, seekForPrev, and turning around, at every key, between keys and beyond both ends', () => {
    const probes = ['', 'a', 'b', 'b00', 'b01', 'b22', 'b23', 'c', 'd00', 'd00\0', 'e', 'f00', 'f19', 'f38', 'f39', 'z'];
    for (const e of all) probes.push(Buffer.from(e.key).toString('latin1'));
    for (const p of probes) checkCursorMoves(new LevelCursor(three, false), all, key(p));
    // One cursor reused for every probe: no state carries over.
    const c = new LevelCursor(three, true);
    for (const p of probes) checkCursorMoves(c, all, key(p));
  });

  it('crosses table boundaries in both directions, turning around at each', () => {
    const c = new LevelCursor(three, false);
    expect(keysOf([c.seek(key('b22'))!, c.next()!, c.next()!, c.prev()!, c.prev()!, c.prev()!])).toEqual([
      'b22',
      'd00',
      'f00',
      'd00',
      'b22',
      'b20',
    ]);
    expect(keysOf([c.seekForPrev(key('e'))!, c.prev()!, c.next()!, c.next()!])).toEqual(['d00', 'b22', 'd00', 'f00']);
  });

  it('a seek into a gap between tables lands on the next table; a seekForPrev, on the previous one', () => {
    const c = new LevelCursor(three, false);
    expect(keysOf([c.seek(key('c'))!])).toEqual(['d00']);
    expect(keysOf([c.seekForPrev(key('c'))!])).toEqual(['b22']);
    expect(c.seek(key('g'))).toBeUndefined();
    expect(c.seekForPrev(key('a'))).toBeUndefined();
    expect(c.current).toBeUndefined();
    expect(c.next()).toBeUndefined();
    expect(c.prev()).toBeUndefined();
  });

  it('an empty level is an empty cursor', () => {
    const c = new LevelCursor([], false);
    for (const move of [() => c.seekToFirst(), () => c.seekToLast(), () => c.seek(key('a')), () => c.seekForPrev(key('z'))]) {
      expect(move()).toBeUndefined();
      expect(c.current).toBeUndefined();
      expect(c.next()).toBeUndefined();
      expect(c.prev()).toBeUndefined();
    }
    expect([...c]).toEqual([]);
  });

  it('a level of one table is that table', () => {
    const c = new LevelCursor([three[1]!], false);
    checkCursorMoves(c, run('d', 1), key('d00'));
    checkCursorMoves(c, run('d', 1), key('c'));
    checkCursorMoves(c, run('d', 1), key('e'));
  });
});

describe('MergingCursor', () => {
  const newer = [put('a', 9), del('c', 8), put('e', 7)];
  const older = [put('a', 3), put('b', 2), put('c', 1), put('d', 4), put('e', 1), put('f', 5)];

  const forward = (...sources: Entry[][]): MergingCursor => {
    const cursors = sources.map((s) => new ArrayCursor(s));
    for (const c of cursors) c.seekToFirst();
    return new MergingCursor(cursors, false);
  };

  it('yields each key once, from the newest source that has it, tombstones included', () => {
    expect(drainMerge(forward(newer, older))).toEqual(
      [put('a', 9), put('b', 2), del('c', 8), put('d', 4), put('e', 7), put('f', 5)].map(plain),
    );
  });

  it('source order decides, not sequence numbers: the first source is the newest', () => {
    expect(drainMerge(forward(older, newer))).toEqual(
      [put('a', 3), put('b', 2), put('c', 1), put('d', 4), put('e', 1), put('f', 5)].map(plain),
    );
  });

  it('in reverse: descending keys, still newest first', () => {
    const cursors = [new ArrayCursor(newer), new ArrayCursor(older)];
    for (const c of cursors) c.seekToLast();
    expect(drainMerge(new MergingCursor(cursors, true))).toEqual(
      [put('f', 5), put('e', 7), put('d', 4), del('c', 8), put('b', 2), put('a', 9)].map(plain),
    );
  });

  it('starts where its sources stand: seek for forward, seekForPrev for reverse', () => {
    const fwd = [new ArrayCursor(newer), new ArrayCursor(older)];
    for (const c of fwd) c.seek(key('bb'));
    expect(keysOf(drainMerge(new MergingCursor(fwd, false)))).toEqual(['c', 'd', 'e', 'f']);
    const rev = [new ArrayCursor(newer), new ArrayCursor(older)];
    for (const c of rev) c.seekForPrev(key('dd'));
    expect(drainMerge(new MergingCursor(rev, true))).toEqual([put('d', 4), del('c', 8), put('b', 2), put('a', 9)].map(plain));
  });

  it('no sources, empty sources and exhausted sources give nothing, and keep giving nothing', () => {
    expect(new MergingCursor([], false).next()).toBeUndefined();
    expect(new MergingCursor([], true).next()).toBeUndefined();
    const m = forward([], [], []);
    expect(m.next()).toBeUndefined();
    expect(m.next()).toBeUndefined();
    const one = forward([], [put('k', 1)], []);
    expect(keysOf([one.next()!])).toEqual(['k']);
    expect(one.next()).toBeUndefined();
    expect(one.next()).toBeUndefined();
    // An unpositioned source is an empty one.
    expect(drainMerge(new MergingCursor([new ArrayCursor(newer)], false))).toEqual([]);
  });

  test.prop(
    [
      fc.array(fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 25 }), { minLength: 0, maxLength: 5 }),
      fc.integer({ min: -1, max: 41 }),
      fc.boolean(),
    ],
    { numRuns: 200 },
  )('matches a model: for each key in range, the entry of the first source holding it', (keySets, start, reverse) => {
    const name = (n: number): string => `k${String(n).padStart(2, '0')}`;
    // Source i's entries carry seq i, so the winner is visible in the output.
    const sources = keySets.map((ks, i) => [...ks].sort((x, y) => x - y).map((n) => put(name(n), i)));
    const want = new Map<string, Entry>();
    sources.forEach((entries) => {
      for (const e of entries) if (!want.has(Buffer.from(e.key).toString('latin1'))) want.set(Buffer.from(e.key).toString('latin1'), e);
    });
    let expected = [...want.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
    const from = start < 0 ? undefined : key(name(start));
    if (from) expected = expected.filter((e) => (reverse ? compareKeys(e.key, from) <= 0 : compareKeys(e.key, from) >= 0));
    if (reverse) expected.reverse();
    const cursors = sources.map((s) => new ArrayCursor(s));
    for (const c of cursors) {
      if (reverse) from ? c.seekForPrev(from) : c.seekToLast();
      else from ? c.seek(from) : c.seekToFirst();
    }
    expect(drainMerge(new MergingCursor(cursors, reverse))).toEqual(expected.map(plain));
  });
});

describe('HeapMergingCursor (forward, for compactions)', () => {
  const newer = [put('a', 9), del('c', 8), put('e', 7)];
  const older = [put('a', 3), put('b', 2), put('c', 1), put('d', 4), put('e', 1), put('f', 5)];
  const heap = (...sources: Entry[][]): HeapMergingCursor => {
    const cursors = sources.map((s) => new ArrayCursor(s));
    for (const c of cursors) c.seekToFirst();
    return new HeapMergingCursor(cursors);
  };

  it('yields each key once, from the newest source that has it; source order decides ties', () => {
    expect(drainMerge(heap(newer, older))).toEqual(
      [put('a', 9), put('b', 2), del('c', 8), put('d', 4), put('e', 7), put('f', 5)].map(plain),
    );
    expect(drainMerge(heap(older, newer))).toEqual(
      [put('a', 3), put('b', 2), put('c', 1), put('d', 4), put('e', 1), put('f', 5)].map(plain),
    );
  });

  it('no sources, empty and unpositioned sources give nothing, and keep giving nothing', () => {
    expect(new HeapMergingCursor([]).next()).toBeUndefined();
    const m = heap([], [], []);
    expect(m.next()).toBeUndefined();
    expect(m.next()).toBeUndefined();
    expect(new HeapMergingCursor([new ArrayCursor(newer)]).next()).toBeUndefined();
  });

  test.prop([fc.array(fc.uniqueArray(fc.integer({ min: 0, max: 60 }), { maxLength: 30 }), { minLength: 0, maxLength: 20 })], {
    numRuns: 300,
  })('gives what MergingCursor gives, for any number of sources (the same key in many of them included)', (keySets) => {
    const name = (n: number): string => `k${String(n).padStart(2, '0')}`;
    const sources = keySets.map((ks, i) => [...ks].sort((x, y) => x - y).map((n) => put(name(n), i)));
    const linear = sources.map((s) => new ArrayCursor(s));
    for (const c of linear) c.seekToFirst();
    expect(drainMerge(heap(...sources))).toEqual(drainMerge(new MergingCursor(linear, false)));
  });
});

describe('composed: a merge over table cursors and a level cursor', () => {
  it('an L0 table shadows the level below; both directions', async () => {
    const [l0] = await level([put('b02', 50, 'new'), del('b10', 51), put('d00', 52, 'new'), put('e', 53)]);
    const make = (reverse: boolean, at?: string): MergingCursor => {
      const sources: EntryCursor[] = [l0!.reader.iterator({ fillCache: false }), new LevelCursor(three, false)];
      for (const s of sources) {
        if (at === undefined) reverse ? s.seekToLast() : s.seekToFirst();
        else reverse ? s.seekForPrev(key(at)) : s.seek(key(at));
      }
      return new MergingCursor(sources, reverse);
    };
    const model = new Map<string, Entry>();
    for (const e of all) model.set(Buffer.from(e.key).toString('latin1'), e);
    for (const e of [put('b02', 50, 'new'), del('b10', 51), put('d00', 52, 'new'), put('e', 53)])
      model.set(Buffer.from(e.key).toString('latin1'), e);
    const sorted = [...model.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => plain(e));
    expect(drainMerge(make(false))).toEqual(sorted);
    expect(drainMerge(make(true))).toEqual([...sorted].reverse());
    const fromD = sorted.findIndex((e) => e.key === Buffer.from('d00').toString('hex'));
    expect(drainMerge(make(false, 'c'))).toEqual(sorted.slice(fromD));
    expect(drainMerge(make(true, 'c'))).toEqual(sorted.slice(0, fromD).reverse());
  });
});
