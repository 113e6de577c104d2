import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { type Entry, MAX_SEQ, compareKeys } from '../../src/entry.js';
import {
  type ArenaChunks,
  RECORD_HEADER_SIZE,
  compareRecordKeys,
  decodeRecord,
  encodeRecord,
  entryRecordSize,
  keyPrefix,
  recordKeyPrefix,
  recordSeq,
  recordSizeAt,
  scanArena,
  sortedArenaAddresses,
  sortByPrefix,
  sortedArenaEntries,
} from '../../src/memtable/arena-format.js';
import { Memtable } from '../../src/memtable/memtable.js';
import { bodyArb, bytes, drain, hex, keyArb, makeEntry, plain } from '../sstable/helpers.js';

/** The record of `entry` alone, in a chunk of its exact size. */
function record(entry: Entry): Uint8Array {
  const chunk = new Uint8Array(new SharedArrayBuffer(entryRecordSize(entry)));
  expect(encodeRecord(chunk, 0, entry)).toBe(chunk.length);
  return chunk;
}

/** The same bytes in an arena of one chunk. */
function arenaOf(...records: Uint8Array[]): ArenaChunks {
  const size = records.reduce((n, r) => n + r.length, 0);
  const chunk = new Uint8Array(new SharedArrayBuffer(size + 7)); // a little unused tail
  let at = 0;
  for (const r of records) {
    chunk.set(r, at);
    at += r.length;
  }
  return { chunks: [chunk.buffer as SharedArrayBuffer], ends: [at] };
}

describe('arena record layout', () => {
  it('lays out a put: lengths, seq (7 bytes), flags, key, value (golden bytes)', () => {
    const e: Entry = { key: bytes('ab'), seq: 0x01_0203_0405, kind: 'put', value: bytes('xyz') };
    expect(hex(record(e))).toBe(
      [
        '02000000', // key length
        '03000000', // value length
        '05040302010000', // seq, u56 little-endian
        '00', // flags
        '6162', // key
        '78797a', // value
      ].join(''),
    );
  });

  it('lays out a tombstone with an expiry, and the largest seq (golden bytes)', () => {
    const e: Entry = { key: bytes('k'), seq: MAX_SEQ, kind: 'delete', value: new Uint8Array(0), expiresAt: 0x11_2233_4455 };
    expect(hex(record(e))).toBe(
      [
        '01000000', // key length
        '00000000', // value length
        'ffffffffffff1f', // seq 2^53 - 1
        '03', // flags: delete | expires
        '6b', // key
        '5544332211000000', // expiresAt, u64 little-endian, after the value
      ].join(''),
    );
  });

  it('lays out an empty key and value: a bare header', () => {
    const e: Entry = { key: new Uint8Array(0), seq: 0, kind: 'put', value: new Uint8Array(0) };
    expect(hex(record(e))).toBe('00'.repeat(RECORD_HEADER_SIZE));
  });

  test.prop([keyArb, bodyArb])('decodes what it encodes', (key, body) => {
    const e = makeEntry(key, body);
    const r = record(e);
    expect(plain(decodeRecord(r, 0))).toEqual(plain(e));
    expect(recordSeq(r, 0)).toBe(e.seq);
    expect(recordSizeAt(r, 0)).toBe(r.length);
  });

  it('decodes views into the chunk, not copies', () => {
    const r = record({ key: bytes('key'), seq: 1, kind: 'put', value: bytes('value') });
    const e = decodeRecord(r, 0);
    expect(e.key.buffer).toBe(r.buffer);
    expect(e.value.buffer).toBe(r.buffer);
  });

  test.prop([keyArb, keyArb])('compares record keys as compareKeys does, prefixes first', (a, b) => {
    const ra = record({ key: a, seq: 1, kind: 'put', value: bytes('v') });
    const rb = record({ key: b, seq: 2, kind: 'put', value: bytes('w') });
    const want = Math.sign(compareKeys(a, b));
    expect(Math.sign(compareRecordKeys(new DataView(ra.buffer), 0, new DataView(rb.buffer), 0))).toBe(want);
    // Differing prefixes order as the keys do; equal prefixes say nothing.
    const pa = keyPrefix(a);
    const pb = keyPrefix(b);
    if (pa !== pb) expect(Math.sign(pa - pb)).toBe(want);
    expect(recordKeyPrefix(ra, 0)).toBe(pa);
  });

  it('zero-pads short keys in the prefix', () => {
    expect(keyPrefix(new Uint8Array(0))).toBe(0);
    expect(keyPrefix(Uint8Array.of(0xff))).toBe(0xff00_0000);
    expect(keyPrefix(Uint8Array.of(1, 2, 3))).toBe(0x0102_0300);
    expect(keyPrefix(Uint8Array.of(1, 2, 3, 4, 5))).toBe(0x0102_0304);
  });
});

describe('scanArena', () => {
  it('gives every record in append order, chunk after chunk', () => {
    const a = record({ key: bytes('b'), seq: 1, kind: 'put', value: bytes('1') });
    const b = record({ key: bytes('a'), seq: 2, kind: 'delete', value: new Uint8Array(0) });
    const one = arenaOf(a, b);
    const two = arenaOf(a);
    const arena: ArenaChunks = { chunks: [...one.chunks, ...two.chunks], ends: [...one.ends, ...two.ends] };
    expect(scanArena(arena)).toEqual([0, a.length, 2 ** 20]);
  });

  it('refuses an end past its chunk, and a record past its end', () => {
    const a = record({ key: bytes('key'), seq: 1, kind: 'put', value: bytes('value') });
    const arena = arenaOf(a);
    expect(() => scanArena({ chunks: arena.chunks, ends: [a.length + 100] })).toThrow(RangeError);
    expect(() => scanArena({ chunks: arena.chunks, ends: [a.length - 1] })).toThrow(/runs past the end/);
    expect(() => scanArena({ chunks: arena.chunks, ends: [5] })).toThrow(/header/);
  });
});

describe('sortedArenaEntries', () => {
  it('keeps per key the highest seq, and of equal seqs the record appended last', () => {
    const put = (k: string, seq: number, v: string): Uint8Array => record({ key: bytes(k), seq, kind: 'put', value: bytes(v) });
    const arena = arenaOf(put('b', 5, 'b5'), put('a', 3, 'a3'), put('b', 4, 'b4 ignored'), put('a', 3, 'a3 again'), put('c', 1, 'c1'));
    expect([...sortedArenaEntries(arena)].map((e) => `${Buffer.from(e.key)}=${Buffer.from(e.value)}`)).toEqual([
      'a=a3 again',
      'b=b5',
      'c=c1',
    ]);
    expect(sortedArenaAddresses(arena).length).toBe(3);
  });

  test.prop([fc.array(fc.oneof(fc.constantFrom(0, 1, 0xffff_ffff), fc.nat({ max: 0xffff_ffff })), { maxLength: 300 })])(
    'orders record numbers by prefix, then number, packed or with a comparator',
    (list) => {
      const prefixes = Uint32Array.from(list);
      const want = list.map((_, i) => i).sort((i, j) => prefixes[i]! - prefixes[j]! || i - j);
      expect([...sortByPrefix(prefixes)]).toEqual(want);
      expect([...sortByPrefix(prefixes, 0)]).toEqual(want);
    },
  );

  it('gives nothing for an empty arena', () => {
    expect([...sortedArenaEntries({ chunks: [], ends: [] })]).toEqual([]);
  });
});

// Keys from a small set so that overwrites are common; seqs from a small range so that equal
// seqs happen; values empty, small, or (rarely) larger than an arena chunk.
const fewKeys = fc.oneof(keyArb, fc.constantFrom(...['', 'a', 'ab', 'abcd', 'abcde', 'b'].map((s) => bytes(s))));
const valueArb = fc.oneof(
  { weight: 20, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 3, arbitrary: fc.uint8Array({ minLength: 3000, maxLength: 40_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }).map((k) => new Uint8Array(k * 700_000).fill(k)) },
);
const putArb = fc.record({
  key: fewKeys,
  seq: fc.oneof(fc.nat(20), fc.constant(MAX_SEQ)),
  kind: fc.constantFrom<'put' | 'delete'>('put', 'put', 'delete'),
  value: valueArb,
  expiresAt: fc.option(fc.maxSafeNat(), { nil: undefined }),
});
type Step = { op: 'put'; entry: Entry } | { op: 'check' };
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 10, arbitrary: putArb.map((b) => ({ op: 'put' as const, entry: makeEntry(b.key, b) })) },
  { weight: 1, arbitrary: fc.constant({ op: 'check' as const }) },
);

describe('sortedArenaEntries against the memtable', () => {
  test.prop([fc.array(stepArb, { maxLength: 150 })], { numRuns: 120 })(
    "gives exactly a frozen memtable's iteration, for every freeze along the way",
    (steps) => {
      const m = new Memtable();
      const views: { arena: ArenaChunks; want: ReturnType<typeof drain> }[] = [];
      for (const step of steps) {
        if (step.op === 'put') m.put(step.entry);
        else {
          const f = m.freeze();
          views.push({ arena: f.arena(), want: drain(f) });
        }
      }
      const f = m.freeze();
      views.push({ arena: f.arena(), want: drain(f) });
      // Earlier views too, though the memtable took writes after them: their arenas end where they froze.
      for (const { arena, want } of views) expect(drain(sortedArenaEntries(arena))).toEqual(want);
    },
  );
});

describe('sortedArenaAddresses, the radix sort', () => {
  // Many records whose keys share long prefixes, with zero bytes and lengths around the 4-byte
  // digits, so that runs of equal digits go several digits deep.
  const deepKey = fc
    .tuple(fc.constantFrom('', 'user', 'user:000', 'user:000\0', 'a'.repeat(70)), fc.array(fc.constantFrom(0, 1, 0xff), { maxLength: 6 }))
    .map(([head, tail]) => Uint8Array.from([...Buffer.from(head, 'latin1'), ...tail]));
  test.prop([fc.array(fc.tuple(deepKey, fc.nat(5), fc.boolean()), { minLength: 20, maxLength: 400 })], { numRuns: 60 })(
    "gives a frozen memtable's entries however deep the keys agree",
    (puts) => {
      const m = new Memtable();
      for (const [key, seq, del] of puts)
        m.put({ key, seq, kind: del ? 'delete' : 'put', value: del ? new Uint8Array(0) : Uint8Array.of(seq) });
      const f = m.freeze();
      expect(drain(sortedArenaEntries(f.arena()))).toEqual(drain(f));
    },
  );
});
