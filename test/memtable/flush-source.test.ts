import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { type Entry, MAX_SEQ, compareKeys } from '../../src/entry.js';
import { type FlushSource, flushSourceEntries } from '../../src/memtable/flush-source.js';
import { Memtable } from '../../src/memtable/memtable.js';
import { visibleRecords } from '../../src/memtable/record-tree.js';
import { bytes, drain, keyArb, makeEntry } from '../sstable/helpers.js';

// Keys from a small set so that overwrites are common; seqs from a small range so that equal
// and older seqs happen; values empty, small, or (rarely) larger than an arena chunk.
const fewKeys = fc.oneof(keyArb, fc.constantFrom(...['', 'a', 'ab', 'abcd', 'abcde', 'b'].map((s) => bytes(s))));
const valueArb = fc.oneof(
  { weight: 20, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 3, arbitrary: fc.uint8Array({ minLength: 3000, maxLength: 40_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }).map((k) => new Uint8Array(k * 700_000).fill(k)) },
);
const putArb: fc.Arbitrary<Entry> = fc
  .record({
    key: fewKeys,
    seq: fc.oneof(fc.nat(20), fc.constant(MAX_SEQ)),
    kind: fc.constantFrom<'put' | 'delete'>('put', 'put', 'delete'),
    value: valueArb,
    expiresAt: fc.option(fc.maxSafeNat(), { nil: undefined }),
  })
  .map((b) => makeEntry(b.key, b));

/** A sealed memtable's source, as a worker receives it: cloned as `postMessage` clones it (the shared buffers shared). */
function posted(m: Memtable): { source: FlushSource; want: ReturnType<typeof drain> } {
  const view = m.seal();
  return { source: structuredClone(view.flushSource()), want: drain(view) };
}

describe('flushSourceEntries', () => {
  test.prop([fc.array(putArb, { maxLength: 200 })], { numRuns: 150 })(
    "gives exactly a sealed memtable's iteration: one entry per key, the memtable's, in key order",
    (puts) => {
      const m = new Memtable();
      for (const e of puts) m.put(e);
      const { source, want } = posted(m);
      const got = drain(flushSourceEntries(source));
      expect(got).toEqual(want);
      // And against a model that knows no tree: per key, the highest seq (equal seqs: the later put).
      const model = new Map<string, Entry>();
      for (const e of puts) {
        const k = Buffer.from(e.key).toString('latin1');
        const old = model.get(k);
        if (old === undefined || e.seq >= old.seq) model.set(k, e);
      }
      const sorted = [...model.values()].sort((a, b) => compareKeys(a.key, b.key));
      expect(got).toEqual(drain(sorted));
    },
  );

  it('walks a tree of three levels, with overwrites and ignored older puts', () => {
    const m = new Memtable();
    const value = new Uint8Array(8);
    let seq = 0;
    // 40k keys in a pseudo-random order, then 20k overwrites and 5k puts older than what they meet.
    for (let i = 0; i < 40_000; i++) m.put({ key: bytes(String((i * 7919) % 40_000).padStart(8, '0')), seq: ++seq, kind: 'put', value });
    for (let i = 0; i < 20_000; i++) m.put({ key: bytes(String((i * 104_729) % 40_000).padStart(8, '0')), seq: ++seq, kind: 'put', value });
    for (let i = 0; i < 5000; i++) {
      expect(m.put({ key: bytes(String((i * 31) % 40_000).padStart(8, '0')), seq: 1, kind: 'delete', value: new Uint8Array(0) })).toBe(
        false,
      );
    }
    const { source, want } = posted(m);
    const got = drain(flushSourceEntries(source));
    expect(got.length).toBe(40_000);
    expect(got).toEqual(want);
  });

  it('gives nothing for a sealed empty memtable', () => {
    expect([...flushSourceEntries(new Memtable().seal().flushSource())]).toEqual([]);
  });

  it('refuses damaged arrays with a RangeError instead of looping or reading garbage', () => {
    const m = new Memtable();
    for (let i = 0; i < 100; i++) m.put({ key: bytes(`k${i}`), seq: i + 1, kind: 'put', value: bytes('v') });
    const damaged = (
      damage: (s: {
        arena: { chunks: readonly SharedArrayBuffer[]; ends: number[] };
        order: { leafRec: Int32Array; leafCount: Int32Array; leafNext: Int32Array };
        addresses: Float64Array;
      }) => void,
    ): (() => void) => {
      // A copy of the arrays (not the memtable's shared ones), damaged.
      const s = m.seal().flushSource();
      const copy = {
        arena: { chunks: s.arena.chunks, ends: [...s.arena.ends] },
        addresses: Float64Array.from(s.addresses),
        order: {
          ...s.order,
          leafRec: Int32Array.from(s.order.leafRec),
          leafCount: Int32Array.from(s.order.leafCount),
          leafNext: Int32Array.from(s.order.leafNext),
        },
      };
      damage(copy);
      return () => [...flushSourceEntries(copy)];
    };
    expect(damaged(() => undefined)).not.toThrow();
    expect(damaged((s) => s.order.leafNext.fill(0))).toThrow(/cycle/);
    expect(damaged((s) => s.order.leafNext.fill(1 << 30))).toThrow(/out of range/);
    expect(damaged((s) => s.order.leafCount.fill(33))).toThrow(/slots/);
    expect(damaged((s) => s.order.leafRec.fill(-5))).toThrow(/record -5/);
    expect(damaged((s) => s.addresses.fill(2 ** 40))).toThrow(/no address or record inside the arena/);
    expect(damaged((s) => s.addresses.fill(-1))).toThrow(/no address or record inside the arena/);
    // An address near the end of its chunk, whose record would run past it.
    expect(damaged((s) => s.addresses.fill(s.arena.ends[0]! - 4))).toThrow(/no address or record inside the arena/);
    expect(damaged((s) => (s.arena.ends[0] = 20))).toThrow(/no address or record inside the arena/);
    // A limit below every record: nothing is visible.
    expect(visibleRecords({ ...m.seal().flushSource().order, limit: 0 }).length).toBe(0);
  });
});

describe('Memtable.seal', () => {
  it('ends the writes: every way of writing throws, and the view stays as it was', () => {
    const m = new Memtable();
    m.put({ key: bytes('a'), seq: 1, kind: 'put', value: bytes('1') });
    const view = m.seal();
    const before = drain(view);
    expect(() => m.put({ key: bytes('b'), seq: 2, kind: 'put', value: bytes('2') })).toThrow(/sealed/);
    expect(() => m.insertChecked({ key: bytes('b'), seq: 2, kind: 'put', value: bytes('2') })).toThrow(/sealed/);
    const src = bytes('b2');
    expect(() => m.insertFrom(src, 0, 1, 1, 2, false, undefined)).toThrow(/sealed/);
    expect(drain(view)).toEqual(before);
    expect(drain(m.freeze())).toEqual(before);
    expect(m.get(bytes('b'))).toBeUndefined();
  });

  it('gives a flush source only for the sealed view: a view of a memtable still written to has none', () => {
    const m = new Memtable();
    m.put({ key: bytes('a'), seq: 1, kind: 'put', value: bytes('1') });
    expect(() => m.freeze().flushSource()).toThrow(/not sealed/);
    expect(() => m.seal().flushSource()).not.toThrow();
  });
});
