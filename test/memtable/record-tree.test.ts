import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { compareKeys } from '../../src/entry.js';
import { Arena, PROBE } from '../../src/memtable/arena.js';
import { RecordTree } from '../../src/memtable/record-tree.js';

/**
 * A record tree over an arena, fed as the memtable feeds it: each record appended, then linked
 * unless its key already holds a record with a higher seq (then taken back). `put` returns the
 * record linked or -1.
 */
function make(): { arena: Arena; tree: RecordTree; put(key: Uint8Array, seq: number): number } {
  const arena = new Arena();
  const tree = new RecordTree(arena);
  return {
    arena,
    tree,
    put(key, seq) {
      const r = arena.append({ key, seq, kind: 'put', value: new Uint8Array(0), expiresAt: undefined });
      const old = tree.prepare(r);
      if (old >= 0 && arena.seq(old) > seq) {
        arena.truncate(r);
        return -1;
      }
      tree.link(r);
      return r;
    },
  };
}

/** What a reader of the records below `limit` should see: per key, its newest record below the limit, in key order. */
function expected(records: readonly { key: Uint8Array; record: number }[], limit: number): number[] {
  const newest = new Map<string, { key: Uint8Array; record: number }>();
  for (const r of records) {
    if (r.record >= limit) continue;
    const k = Buffer.from(r.key).toString('hex');
    const had = newest.get(k);
    if (had === undefined || r.record > had.record) newest.set(k, r);
  }
  return [...newest.values()].sort((a, b) => compareKeys(a.key, b.key)).map((r) => r.record);
}

function forward(tree: RecordTree, limit: number): number[] {
  const out: number[] = [];
  for (let r = tree.first(limit); r >= 0; r = tree.next(r, limit)) out.push(r);
  return out;
}

function backward(tree: RecordTree, limit: number): number[] {
  const out: number[] = [];
  for (let r = tree.last(limit); r >= 0; r = tree.prev(r, limit)) out.push(r);
  return out;
}

const keyArb = fc.uint8Array({ minLength: 1, maxLength: 3, max: 3 });

describe('RecordTree', () => {
  it('is empty before the first record, at any limit', () => {
    const { tree, arena } = make();
    arena.setProbe(Uint8Array.of(1));
    for (const limit of [0, 10]) {
      expect([tree.first(limit), tree.last(limit), tree.seek(PROBE, limit), tree.seekForPrev(PROBE, limit)]).toEqual([-1, -1, -1, -1]);
    }
    expect(tree.records).toBe(0);
  });

  it('keeps every version of a key, newest first, and shows each reader the newest it may see', () => {
    const { tree, put } = make();
    const records: { key: Uint8Array; record: number }[] = [];
    // 3000 records over 40 keys: towers several levels high, ~75 versions per key.
    let x = 12345;
    for (let i = 0; i < 3000; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      const key = Buffer.from(`k${(x >>> 8) % 40}`);
      records.push({ key, record: put(key, i + 1) });
    }
    expect(tree.records).toBe(3000);
    for (const limit of [0, 1, 17, 500, 2999, 3000]) {
      const want = expected(records, limit);
      expect(forward(tree, limit)).toEqual(want);
      expect(backward(tree, limit)).toEqual([...want].reverse());
    }
  });

  it('never links a record whose key holds a higher seq; an equal seq goes in front', () => {
    const { tree, put } = make();
    expect(put(Buffer.from('a'), 5)).toBe(0);
    expect(put(Buffer.from('a'), 4)).toBe(-1);
    expect(put(Buffer.from('a'), 5)).toBe(1);
    expect(tree.records).toBe(2);
    expect(forward(tree, 2)).toEqual([1]);
    expect(forward(tree, 1)).toEqual([0]);
  });

  test.prop([fc.array(fc.tuple(keyArb, fc.nat(3)), { maxLength: 300 }), fc.array(keyArb, { maxLength: 8 }), fc.nat(300)], {
    numRuns: 200,
  })('seeks, steps and turns around as a sorted model of each reader does', (ops, probes, limitSeed) => {
    const { tree, arena, put } = make();
    const records: { key: Uint8Array; record: number }[] = [];
    const seqs = new Map<string, number>();
    let seq = 0;
    for (const [key, older] of ops) {
      // Mostly newer seqs; now and then one older than the key's, which must be ignored.
      const k = Buffer.from(key).toString('hex');
      const s = older === 0 && seqs.has(k) ? seqs.get(k)! - 1 : ++seq;
      const r = put(key, s);
      if (r >= 0) {
        records.push({ key, record: r });
        seqs.set(k, s);
      }
    }
    const total = records.length;
    for (const limit of [total, limitSeed % (total + 1)]) {
      const want = expected(records, limit);
      expect(forward(tree, limit)).toEqual(want);
      expect(backward(tree, limit)).toEqual([...want].reverse());
      const keyOf = (r: number): Uint8Array => arena.entry(r).key;
      for (const probe of probes) {
        arena.setProbe(probe);
        const ge = want.find((r) => compareKeys(keyOf(r), probe) >= 0) ?? -1;
        const le = [...want].reverse().find((r) => compareKeys(keyOf(r), probe) <= 0) ?? -1;
        expect(tree.seek(PROBE, limit)).toBe(ge);
        expect(tree.seekForPrev(PROBE, limit)).toBe(le);
        // Turning around from a seek position: back one key, then forward again.
        if (ge >= 0) {
          const i = want.indexOf(ge);
          expect(tree.prev(ge, limit)).toBe(i > 0 ? want[i - 1]! : -1);
          expect(tree.next(ge, limit)).toBe(i + 1 < want.length ? want[i + 1]! : -1);
        }
      }
    }
  });

  it('orders every key again when a late key shortens the prefix the arena skips', () => {
    // 2,000 keys sharing 12 bytes, linked while the entries' key bytes are the ones after them;
    // then keys that share less (and one that shares nothing), which change every entry's bytes.
    const { tree, arena, put } = make();
    const keys: Uint8Array[] = [];
    const enc = new TextEncoder();
    let seq = 0;
    for (let i = 0; i < 2000; i++) keys.push(enc.encode(`user:0000000${String((i * 7919) % 2000).padStart(6, '0')}`));
    for (const k of keys) put(k, ++seq);
    const late = [enc.encode('user:00'), enc.encode('user:1'), enc.encode('a'), enc.encode('user:0000000001000x'), enc.encode('')];
    for (const k of late.slice(0, 4)) {
      keys.push(k);
      put(k, ++seq);
    }
    const sorted = [...keys].sort(compareKeys).map((k) => Buffer.from(k).toString());
    const limit = arena.records;
    const seen = forward(tree, limit).map((r) => Buffer.from(arena.entry(r).key).toString());
    expect(seen).toEqual(sorted);
    expect(backward(tree, limit).map((r) => Buffer.from(arena.entry(r).key).toString())).toEqual([...sorted].reverse());
    for (const k of [...keys, late[4]!, enc.encode('user:0000000000999z'), enc.encode('zz')]) {
      arena.setProbe(k);
      const r = tree.seek(PROBE, limit);
      const want = sorted.find((s) => compareKeys(Buffer.from(s), k) >= 0);
      expect(r < 0 ? undefined : Buffer.from(arena.entry(r).key).toString()).toBe(want);
    }
  });

  it('links keys in ascending, descending and alternating runs, overwrites among them, in order', () => {
    // Runs in key order: the last leaf's append path, and splits that keep full leaves.
    const { tree, arena, put } = make();
    const key = (i: number) => Uint8Array.of(0, (i >> 8) & 0xff, i & 0xff);
    const seqOf = new Map<number, number>();
    let seq = 0;
    const ins = (i: number) => {
      seqOf.set(i, ++seq);
      put(key(i), seq);
    };
    for (let i = 0; i < 3000; i += 3) ins(i); // ascending
    for (let i = 2999; i >= 0; i -= 3) ins(i); // descending, between them
    for (let i = 0; i < 1000; i++) ins(i % 2 === 0 ? 1 + 3 * i : 3 * (999 - i)); // alternating ends
    for (let i = 0; i < 3000; i += 7) ins(i); // overwrites in order
    const limit = arena.records;
    const want = [...seqOf.keys()].sort((a, b) => a - b);
    const got = forward(tree, limit).map((r) => {
      const k = arena.entry(r).key;
      return (k[1]! << 8) | k[2]!;
    });
    expect(got).toEqual(want);
    for (const r of forward(tree, limit)) {
      const k = arena.entry(r).key;
      expect(arena.seq(r)).toBe(seqOf.get((k[1]! << 8) | k[2]!));
    }
    expect(backward(tree, limit)).toEqual(forward(tree, limit).reverse());
  });

  it('matches a sorted model through thousands of leaves and inner splits, at every kind of limit', () => {
    // 60,000 records over 6,000 keys sharing a prefix (a tree three levels deep), with overwrites,
    // puts older than the key's (ignored) and a run in key order in the middle; readers at
    // limits before, inside and after that run.
    const { tree, arena, put } = make();
    let x = 12345;
    const rand = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return (x >>> 8) % n;
    };
    const keyOf = (i: number) => new TextEncoder().encode(`k:${String(i).padStart(6, '0')}`);
    const records: { key: Uint8Array; record: number }[] = [];
    const seqs = new Map<number, number>();
    let seq = 0;
    const limits: number[] = [];
    const insert = (i: number) => {
      const older = seqs.has(i) && rand(10) === 0;
      const s = older ? seqs.get(i)! - 1 : ++seq;
      const r = put(keyOf(i), s);
      if (r >= 0) {
        records.push({ key: keyOf(i), record: r });
        seqs.set(i, s);
      } else expect(older).toBe(true);
    };
    for (let n = 0; n < 30_000; n++) insert(rand(6000));
    limits.push(arena.records);
    for (let i = 6000; i < 12_000; i++) insert(i); // in key order, past every key so far
    limits.push(arena.records);
    for (let n = 0; n < 24_000; n++) insert(rand(12_000));
    limits.push(arena.records, 1, 0, Math.floor(arena.records / 3));
    for (const limit of limits) {
      const want = expected(records, limit);
      expect(forward(tree, limit)).toEqual(want);
      expect(backward(tree, limit)).toEqual([...want].reverse());
      for (let p = 0; p < 300; p++) {
        const probe =
          p % 3 === 0 ? keyOf(rand(12_500)) : new TextEncoder().encode(`k:${String(rand(12_500)).padStart(6, '0')}${p % 2 ? '' : '5'}`);
        arena.setProbe(probe);
        const gi = want.findIndex((r) => compareKeys(arena.entry(r).key, probe) >= 0);
        const ge = gi < 0 ? -1 : want[gi]!;
        let li = want.length - 1;
        while (li >= 0 && compareKeys(arena.entry(want[li]!).key, probe) > 0) li--;
        expect(tree.seek(PROBE, limit)).toBe(ge);
        expect(tree.seekForPrev(PROBE, limit)).toBe(li < 0 ? -1 : want[li]!);
        if (gi >= 0) {
          expect(tree.next(ge, limit)).toBe(gi + 1 < want.length ? want[gi + 1]! : -1);
          expect(tree.prev(ge, limit)).toBe(gi > 0 ? want[gi - 1]! : -1);
        }
      }
    }
  });

  it('refuses to step from a record it never linked, instead of searching forever', () => {
    const { tree, put } = make();
    for (let i = 0; i < 100; i++) put(Uint8Array.of(i), i + 1);
    expect(() => tree.next(500, 100)).toThrow(/not in the memtable's index/);
    expect(() => tree.prev(-3, 100)).toThrow(/not in the memtable's index/);
  });
});
