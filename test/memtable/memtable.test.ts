import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { type Entry, compareKeys } from '../../src/entry.js';
import { RECORD_INDEX_BYTES } from '../../src/memtable/arena.js';
import { INDEX_BYTES_PER_ENTRY, INDEX_BYTES_PER_RECORD, Memtable } from '../../src/memtable/memtable.js';
import { bodyArb, bytes, checkCursorMoves, drain, forwardFrom, hex, keyArb, makeEntry, plain, reverseFrom } from '../sstable/helpers.js';

const put = (key: string, seq: number, value = `v${seq}`): Entry => ({
  key: bytes(key),
  seq,
  kind: 'put',
  value: bytes(value),
});
const del = (key: string, seq: number): Entry => ({ key: bytes(key), seq, kind: 'delete', value: new Uint8Array(0) });

// Keys are views into the arena: plain Uint8Arrays, whatever the caller put.
const key = (e: Entry | undefined) => e && Buffer.from(e.key).toString();
const keysOf = (it: Iterable<Entry>) => [...it].map((e) => Buffer.from(e.key).toString());

describe('Memtable', () => {
  it('stores one entry per key and returns it', () => {
    const m = new Memtable();
    expect(m.put(put('a', 1))).toBe(true);
    expect(m.put(put('b', 2))).toBe(true);
    expect(m.size).toBe(2);
    expect(plain(m.get(bytes('a'))!)).toEqual(plain(put('a', 1)));
    expect(m.get(bytes('c'))).toBeUndefined();
    expect(m.minSeq).toBe(1);
    expect(m.maxSeq).toBe(2);
  });

  it('lets a newer or equal seq replace, and ignores an older one', () => {
    const m = new Memtable();
    m.put(put('k', 5, 'five'));
    expect(m.put(put('k', 4, 'four'))).toBe(false);
    expect(Buffer.from(m.get(bytes('k'))!.value).toString()).toBe('five');
    expect(m.put(put('k', 5, 'five again'))).toBe(true);
    expect(Buffer.from(m.get(bytes('k'))!.value).toString()).toBe('five again');
    expect(m.put(del('k', 6))).toBe(true);
    expect(m.get(bytes('k'))!.kind).toBe('delete');
    expect(m.size).toBe(1);
  });

  it('stores a tombstone with an empty value, even when value is omitted', () => {
    const m = new Memtable();
    m.put({ key: bytes('x'), seq: 1, kind: 'delete' } as unknown as Entry);
    const e = m.get(bytes('x'))!;
    expect(e.kind).toBe('delete');
    expect(e.value.length).toBe(0);
  });

  it('orders keys bytewise, strings by their UTF-8 bytes', () => {
    const m = new Memtable();
    const keys = [[0xff, 0x00], [0x80], [0x7f], [], [0x00], [0x00, 0x00], [0x7f, 0xff]].map((a) => Uint8Array.from(a));
    keys.forEach((key, i) => {
      m.put({ key, seq: i, kind: 'put', value: new Uint8Array(0) });
    });
    const sorted = [...keys].sort(compareKeys).map(hex);
    expect([...m.freeze()].map((e) => hex(e.key))).toEqual(sorted);
    expect(sorted).toEqual(['', '00', '0000', '7f', '7fff', '80', 'ff00']);

    const s = new Memtable();
    for (const [i, k] of ['é', 'z', 'Z', 'éa'].entries()) s.put(put(k, i));
    expect([...s.freeze()].map((e) => Buffer.from(e.key).toString())).toEqual(['Z', 'z', 'é', 'éa']);
  });

  it('accepts plain Uint8Array keys as well as Buffers', () => {
    const m = new Memtable();
    const backing = new Uint8Array([9, 1, 2, 3, 9]);
    m.put({ key: backing.subarray(1, 4), seq: 1, kind: 'put', value: new Uint8Array([7]) });
    expect(m.get(Uint8Array.from([1, 2, 3]))?.value).toEqual(new Uint8Array([7]));
    expect(m.get(Buffer.from([1, 2, 3]))).toBeDefined();
  });

  it('rejects invalid entries with TypeError or RangeError', () => {
    const m = new Memtable();
    const bad = (e: unknown) => () => m.put(e as Entry);
    expect(bad(null)).toThrow(TypeError);
    expect(bad({ key: 'a', seq: 1, kind: 'put', value: bytes('') })).toThrow(TypeError);
    expect(bad({ key: bytes('a'), seq: '1', kind: 'put', value: bytes('') })).toThrow(TypeError);
    expect(bad({ key: bytes('a'), seq: -1, kind: 'put', value: bytes('') })).toThrow(RangeError);
    expect(bad({ key: bytes('a'), seq: 1.5, kind: 'put', value: bytes('') })).toThrow(RangeError);
    expect(bad({ key: bytes('a'), seq: 2 ** 53, kind: 'put', value: bytes('') })).toThrow(RangeError);
    expect(bad({ key: bytes('a'), seq: 1, kind: 'merge', value: bytes('') })).toThrow(TypeError);
    expect(bad({ key: bytes('a'), seq: 1, kind: 'put', value: 'x' })).toThrow(TypeError);
    expect(bad({ key: bytes('a'), seq: 1, kind: 'delete', value: bytes('x') })).toThrow(RangeError);
    expect(bad({ key: bytes('a'), seq: 1, kind: 'put', value: bytes(''), expiresAt: -5 })).toThrow(RangeError);
    expect(bad({ key: bytes('a'), seq: 1, kind: 'put', value: bytes(''), expiresAt: '5' })).toThrow(TypeError);
    expect(() => m.get('a' as unknown as Uint8Array)).toThrow(TypeError);
    expect(m.size).toBe(0);
  });

  it('tracks the memory held: every record appended with its tree entry, and the hash index per key', () => {
    const m = new Memtable();
    const record = (key: number, value: number) => 16 + key + value + RECORD_INDEX_BYTES + INDEX_BYTES_PER_RECORD;
    expect(m.approximateBytes).toBe(0);
    m.put(put('key', 1, 'x'.repeat(100)));
    expect(m.approximateBytes).toBe(record(3, 100) + INDEX_BYTES_PER_ENTRY);
    // An overwrite appends its record: the old one stays in the arena (frozen views may read it).
    m.put(put('key', 2, 'x'.repeat(10)));
    expect(m.approximateBytes).toBe(record(3, 100) + record(3, 10) + INDEX_BYTES_PER_ENTRY);
    m.put(del('key', 3));
    const held = record(3, 100) + record(3, 10) + record(3, 0) + INDEX_BYTES_PER_ENTRY;
    expect(m.approximateBytes).toBe(held);
    // An ignored put leaves nothing behind.
    m.put(put('key', 1, 'ignored'));
    expect(m.approximateBytes).toBe(held);
    const view = m.freeze();
    m.put({ ...put('other', 4), expiresAt: 5 });
    expect(m.approximateBytes).toBe(held + record(5, 2) + 8 + INDEX_BYTES_PER_ENTRY);
    expect(view.approximateBytes).toBe(held);
  });

  it('freezes in O(1) into a view that later writes do not change', () => {
    const m = new Memtable();
    for (let i = 0; i < 1000; i++) m.put(put(`k${String(i).padStart(4, '0')}`, i));
    const view = m.freeze();
    const before = drain(view);
    for (let i = 0; i < 1000; i += 3) m.put(del(`k${String(i).padStart(4, '0')}`, 2000 + i));
    for (let i = 0; i < 500; i++) m.put(put(`n${i}`, 5000 + i));
    expect(drain(view)).toEqual(before);
    expect(view.size).toBe(1000);
    expect(view.get(bytes('k0000'))!.kind).toBe('put');
    expect(m.get(bytes('k0000'))!.kind).toBe('delete');
    expect(view.maxSeq).toBe(999);
    expect(m.size).toBe(1500);
  });

  it('gives cursors a snapshot: writes during an iteration do not disturb it', () => {
    const m = new Memtable();
    for (let i = 0; i < 100; i++) m.put(put(`k${String(i).padStart(3, '0')}`, i));
    const seen: string[] = [];
    let i = 0;
    for (const e of m.iterator()) {
      seen.push(Buffer.from(e.key).toString());
      m.put(put(`k${String(i++).padStart(3, '0')}x`, 1000 + i));
    }
    expect(seen.length).toBe(100);
    expect(m.size).toBe(200);
  });

  it('iterates forward and backward from a start key, and turns around', () => {
    const m = new Memtable();
    for (const k of ['b', 'd', 'f']) m.put(put(k, 1));
    const keys = (it: Iterable<Entry>) => [...it].map((e) => Buffer.from(e.key).toString());
    expect(keys(m.iterator())).toEqual(['b', 'd', 'f']);
    expect(keys(m.iterator({ start: bytes('c') }))).toEqual(['d', 'f']);
    expect(keys(m.iterator({ start: bytes('d') }))).toEqual(['d', 'f']);
    expect(keys(m.iterator({ reverse: true }))).toEqual(['f', 'd', 'b']);
    expect(keys(m.iterator({ start: bytes('e'), reverse: true }))).toEqual(['d', 'b']);
    expect(keys(m.iterator({ start: bytes('d'), reverse: true }))).toEqual(['d', 'b']);
    expect(keys(m.iterator({ start: bytes('a'), reverse: true }))).toEqual([]);
    expect(keys(m.iterator({ start: bytes('g') }))).toEqual([]);
    const c = m.iterator({ start: bytes('d') });
    expect(key(c.next())).toBe('f');
    expect(key(c.prev())).toBe('d');
    expect(key(c.prev())).toBe('b');
    expect(key(c.next())).toBe('d');
    expect(key(c.prev())).toBe('b');
    expect(c.prev()).toBeUndefined();
    expect(c.next()).toBeUndefined();
    expect(() => c.seek('x' as unknown as Uint8Array)).toThrow(TypeError);
  });

  it('copies what it is given: the caller may reuse its arrays', () => {
    const m = new Memtable();
    const key = bytes('key');
    const value = bytes('value');
    m.put({ key, seq: 1, kind: 'put', value });
    key.fill(0);
    value.fill(0);
    expect(m.get(bytes('key'))!.value).toEqual(new Uint8Array(bytes('value')));
    expect(m.get(key)).toBeUndefined();
  });

  it('holds values larger than an arena chunk, between small ones', () => {
    const m = new Memtable();
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => i * 7);
    m.put(put('a', 1));
    m.put({ key: bytes('big'), seq: 2, kind: 'put', value: big });
    m.put(put('c', 3));
    expect(Buffer.compare(m.get(bytes('big'))!.value, big)).toBe(0);
    expect(keysOf(m.iterator())).toEqual(['a', 'big', 'c']);
    expect(
      m
        .freeze()
        .arena()
        .chunks.some((c) => c.byteLength >= big.length),
    ).toBe(true);
  });

  it('keeps a frozen view and the bytes of its arena as they were, whatever is written after', () => {
    const m = new Memtable();
    for (let i = 0; i < 300; i++) m.put(put(`k${String(i).padStart(3, '0')}`, i, 'v'.repeat(i)));
    const view = m.freeze();
    const entries = drain(view);
    const arena = view.arena();
    const ends = [...arena.ends];
    const used = arena.chunks.map((c, i) => Buffer.from(new Uint8Array(c, 0, ends[i])));
    // Overwrites with higher, equal and lower seqs, tombstones, new keys, a new chunk's worth.
    for (let i = 0; i < 300; i += 2) m.put(put(`k${String(i).padStart(3, '0')}`, i + (i % 4 === 0 ? 1000 : 0), 'new'));
    for (let i = 1; i < 300; i += 4) m.put(del(`k${String(i).padStart(3, '0')}`, 2000 + i));
    for (let i = 0; i < 2000; i++) m.put(put(`n${i}`, 5000 + i, 'x'.repeat(500)));
    expect(drain(view)).toEqual(entries);
    expect(view.arena().ends).toEqual(ends);
    expect(view.arena().chunks.map((c, i) => Buffer.from(new Uint8Array(c, 0, ends[i])))).toEqual(used);
    expect(view.get(bytes('k000'))!.seq).toBe(0);
    expect(m.get(bytes('k000'))!.seq).toBe(1000);
    expect(m.get(bytes('k002'))!.seq).toBe(2);
    expect(m.get(bytes('k001'))!.kind).toBe('delete');
  });

  it('runs cursors independently of each other and of lookups in between', () => {
    const m = new Memtable();
    for (let i = 0; i < 500; i++) m.put(put(`k${String(i * 2).padStart(4, '0')}`, i));
    const a = m.iterator();
    const b = m.iterator({ reverse: true });
    expect(key(a.seek(bytes('k0101')))).toBe('k0102');
    expect(key(b.seekForPrev(bytes('k0101')))).toBe('k0100');
    expect(m.get(bytes('k0500'))).toBeDefined();
    expect(m.get(bytes('zzz'))).toBeUndefined();
    expect(key(a.next())).toBe('k0104');
    expect(key(b.prev())).toBe('k0098');
    expect(key(b.next())).toBe('k0100');
    expect(key(a.prev())).toBe('k0102');
    expect(m.smallestKey && Buffer.from(m.smallestKey).toString()).toBe('k0000');
    expect(m.largestKey && Buffer.from(m.largestKey).toString()).toBe('k0998');
    // Iterating while reading.
    let n = 0;
    for (const e of m.iterator()) {
      expect(m.get(e.key)!.seq).toBe(e.seq);
      n++;
    }
    expect(n).toBe(500);
  });

  it('orders keys sharing a long prefix, and keeps order when a key sharing less of it arrives late', () => {
    const m = new Memtable();
    const key = (s: string) => Buffer.from(s, 'latin1');
    const want: string[] = [];
    // 2000 zero-padded decimals: they share their first 12 bytes.
    for (let i = 0; i < 2000; i++) {
      const k = String((i * 7919) % 2000).padStart(16, '0');
      m.put({ key: key(k), kind: 'put', seq: i + 1, value: key('v') });
      want.push(k);
    }
    const view = m.freeze();
    // Each shares less: the arena reads every record's bytes again, for the view's tree too.
    for (const k of ['00000000001', '0000', '', '1', '0000000000000000\x00']) {
      m.put({ key: key(k), kind: 'put', seq: 10_000 + want.length, value: key('v') });
      want.push(k);
    }
    want.sort((a, b) => compareKeys(key(a), key(b)));
    const strings = (entries: Iterable<Entry>) => [...entries].map((e) => Buffer.from(e.key).toString('latin1'));
    expect(strings(m.freeze())).toEqual(want);
    expect(strings(view)).toEqual(want.filter((k) => k.length === 16));
    // Seeks from keys before, inside and after the shared prefix.
    for (const probe of ['', '/', '0', '000000000000', '0000000000001000', '0000000000001000\x00', '00000000000019999', '2']) {
      const from = want.filter((k) => compareKeys(key(k), key(probe)) >= 0);
      expect(strings(m.iterator({ start: key(probe) }))).toEqual(from);
      const to = want.filter((k) => compareKeys(key(k), key(probe)) <= 0).reverse();
      expect(strings(m.iterator({ start: key(probe), reverse: true }))).toEqual(to);
    }
    for (const k of want) expect(m.get(key(k))?.seq).toBeGreaterThan(0);
    expect(m.get(key('00000000000019999'))).toBeUndefined();
  });

  it('handles an empty memtable', () => {
    const m = new Memtable();
    expect([...m.iterator()]).toEqual([]);
    expect(m.iterator({ reverse: true }).current).toBeUndefined();
    expect(m.smallestKey).toBeUndefined();
    expect(m.minSeq).toBeUndefined();
    expect(m.freeze().minSeq).toBe(0);
  });
});

type Op = { op: 'put'; key: Uint8Array; body: ReturnType<typeof makeEntry> } | { op: 'freeze' } | { op: 'check'; probe: Uint8Array };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.tuple(keyArb, bodyArb).map(([key, b]) => ({ op: 'put' as const, key, body: makeEntry(key, b) })),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'freeze' as const }) },
  { weight: 2, arbitrary: keyArb.map((probe) => ({ op: 'check' as const, probe })) },
);

/**
 * Keys that mostly share a long prefix (as zero-padded numbers do), with now and then one that
 * shares less of it, or sorts before or after all of it: the comparator skips the prefix every
 * key in the memtable shares, and such a key lowers it while entries are there.
 */
const prefixedKeyArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('key:0000000', 'key:0000001') },
      { weight: 1, arbitrary: fc.constantFrom('', 'key:', 'key:00', 'a', 'z', 'key:0000000\x00') },
    ),
    fc.uint8Array({ maxLength: 10 }),
  )
  .map(([prefix, tail]) => Uint8Array.from([...Buffer.from(prefix, 'latin1'), ...tail]));

function opsOf(key: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Op> {
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc.tuple(key, bodyArb).map(([k, b]) => ({ op: 'put' as const, key: k, body: makeEntry(k, b) })),
    },
    { weight: 1, arbitrary: fc.constant({ op: 'freeze' as const }) },
    { weight: 2, arbitrary: key.map((probe) => ({ op: 'check' as const, probe })) },
  );
}

describe('Memtable model', () => {
  test.prop([fc.array(opArb, { maxLength: 120 })], { numRuns: 150 })(
    'matches a sorted array under overwrites, deletes, seeks and frozen views',
    (ops) => checkModel(ops),
  );

  test.prop([fc.array(opsOf(prefixedKeyArb), { maxLength: 200 })], { numRuns: 150 })(
    'matches a sorted array with keys sharing a long prefix, and keys that share less of it',
    (ops) => checkModel(ops),
  );
});

function checkModel(ops: readonly Op[]): void {
  const m = new Memtable();
  const model = new Map<string, Entry>();
  const sorted = (): Entry[] => [...model.values()].sort((a, b) => compareKeys(a.key, b.key));
  const views: { view: ReturnType<Memtable['freeze']>; entries: Entry[] }[] = [];
  for (const op of ops) {
    if (op.op === 'put') {
      const old = model.get(hex(op.key));
      const applies = old === undefined || old.seq <= op.body.seq;
      expect(m.put(op.body)).toBe(applies);
      if (applies) model.set(hex(op.key), op.body);
    } else if (op.op === 'freeze') {
      views.push({ view: m.freeze(), entries: sorted() });
    } else {
      const entries = sorted();
      expect(drain(m.iterator({ start: op.probe }))).toEqual(forwardFrom(entries, op.probe).map(plain));
      expect(drain(m.iterator({ start: op.probe, reverse: true }))).toEqual(reverseFrom(entries, op.probe).map(plain));
      checkCursorMoves(m.iterator(), entries, op.probe);
      const got = m.get(op.probe);
      const want = model.get(hex(op.probe));
      expect(got && plain(got)).toEqual(want && plain(want));
    }
  }
  const entries = sorted();
  expect(m.size).toBe(entries.length);
  expect(drain(m.freeze())).toEqual(entries.map(plain));
  expect(drain(m.iterator({ reverse: true }))).toEqual([...entries].reverse().map(plain));
  for (const e of entries) expect(plain(m.get(e.key)!)).toEqual(plain(e));
  for (const { view, entries: snap } of views) {
    expect(view.size).toBe(snap.length);
    expect(drain(view)).toEqual(snap.map(plain));
    expect(drain(view.iterator({ reverse: true }))).toEqual([...snap].reverse().map(plain));
    for (const e of snap) expect(plain(view.get(e.key)!)).toEqual(plain(e));
  }
}
