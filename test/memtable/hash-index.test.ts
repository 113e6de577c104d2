/**
 * The memtable's hash index (point lookups) against a Map model: through growth, overwrites,
 * puts ignored as older, frozen views taken at random points, and keys whose hashes collide.
 */
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import type { Entry } from '../../src/entry.js';
import { Found } from '../../src/found.js';
import { Arena } from '../../src/memtable/arena.js';
import { HashIndex } from '../../src/memtable/hash-index.js';
import { type FrozenMemtable, Memtable } from '../../src/memtable/memtable.js';
import { keyHash } from '../../src/util/hash.js';
import { bloomHash } from '../../src/sstable/bloom.js';
import { bytes, hex, keyArb } from '../sstable/helpers.js';

type Model = Map<string, { seq: number; kind: string; value: string; expiresAt: number | undefined }>;

function viaFind(m: Memtable | FrozenMemtable, k: Uint8Array, f: Found) {
  if (!m.find(k, keyHash(k), f)) return undefined;
  return { seq: f.seq, kind: f.kind, value: hex(f.value()), expiresAt: f.expiresAt };
}

function viaGet(m: Memtable | FrozenMemtable, k: Uint8Array) {
  const e = m.get(k);
  return e && { seq: e.seq, kind: e.kind, value: hex(e.value), expiresAt: e.expiresAt };
}

const opArb = fc.record({
  key: keyArb,
  seq: fc.integer({ min: 0, max: 60 }),
  del: fc.boolean(),
  value: fc.uint8Array({ maxLength: 40 }),
  expires: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }),
  freeze: fc.integer({ min: 0, max: 30 }),
});

describe('memtable hash index', () => {
  it('uses the bloom filters’ hash, so that a lookup hashes once', () => {
    for (const s of ['', 'a', 'ab', 'abc', 'abcd', 'abcde', '0000000000123456']) expect(keyHash(bytes(s))).toBe(bloomHash(bytes(s)));
  });

  test.prop([fc.array(opArb, { maxLength: 400 }), fc.array(keyArb, { maxLength: 40 })], { numRuns: 60 })(
    'find and get equal a Map model, in the live memtable and in every frozen view, as it was at its freeze',
    (ops, probes) => {
      const m = new Memtable();
      const model: Model = new Map();
      const views: [FrozenMemtable, Model][] = [];
      const f = new Found();
      for (const op of ops) {
        const entry: Entry = op.del
          ? { key: op.key, seq: op.seq, kind: 'delete', value: new Uint8Array(0), expiresAt: op.expires }
          : { key: op.key, seq: op.seq, kind: 'put', value: op.value, expiresAt: op.expires };
        const k = hex(op.key);
        const old = model.get(k);
        const stored = m.put(entry);
        expect(stored).toBe(old === undefined || op.seq >= old.seq);
        if (stored) model.set(k, { seq: op.seq, kind: entry.kind, value: hex(entry.value), expiresAt: op.expires });
        if (op.freeze === 0) views.push([m.freeze(), new Map(model)]);
      }
      const keys = [...ops.map((o) => o.key), ...probes];
      for (const k of keys) {
        expect(viaFind(m, k, f)).toEqual(model.get(hex(k)));
        expect(viaGet(m, k)).toEqual(model.get(hex(k)));
        for (const [view, then] of views) {
          expect(viaFind(view, k, f)).toEqual(then.get(hex(k)));
          expect(viaGet(view, k)).toEqual(then.get(hex(k)));
        }
      }
    },
  );

  it('grows past many doublings and still finds every key, and no absent one', () => {
    const m = new Memtable();
    const n = 20_000;
    for (let i = 0; i < n; i++) m.put({ key: bytes(`${String(i).padStart(16, '0')}`), seq: i, kind: 'put', value: bytes(`v${i}`) });
    // Every key overwritten once: replace, not add.
    for (let i = 0; i < n; i += 2) m.put({ key: bytes(`${String(i).padStart(16, '0')}`), seq: n + i, kind: 'put', value: bytes(`w${i}`) });
    const f = new Found();
    for (let i = 0; i < n; i++) {
      const k = bytes(`${String(i).padStart(16, '0')}`);
      expect(m.find(k, keyHash(k), f)).toBe(true);
      expect(Buffer.from(f.value()).toString()).toBe(i % 2 === 0 ? `w${i}` : `v${i}`);
      const absent = bytes(`${String(i).padStart(15, '0')}x`);
      expect(m.find(absent, keyHash(absent), f)).toBe(false);
    }
  });

  it('doubles incrementally: keys found, replaced and added while they move, and no put places them all', () => {
    const arena = new Arena();
    const index = new HashIndex();
    const keys: Uint8Array[] = [];
    const records: number[] = [];
    const check = () => {
      for (let i = 0; i < keys.length; i++) expect(index.find(keyHash(keys[i]!), keys[i]!, arena)).toBe(records[i]);
      const absent = bytes('absent');
      expect(index.find(keyHash(absent), absent, arena)).toBe(-1);
    };
    let sawMoving = false;
    for (let i = 0; i < 3000; i++) {
      const k = bytes(`key-${i}`);
      keys.push(k);
      const r = arena.append({ key: k, seq: i, kind: 'put', value: bytes('v') });
      index.add(r, keyHash(k));
      records.push(r);
      if (index.moving) {
        sawMoving = true;
        // Replace a key (maybe not moved yet) while the move is under way.
        const j = (i * 7919) % keys.length;
        const r2 = arena.append({ key: keys[j]!, seq: 10_000 + i, kind: 'put', value: bytes('w') });
        index.replace(records[j]!, r2, keyHash(keys[j]!));
        records[j] = r2;
        if (i % 97 === 0) check();
      }
    }
    expect(sawMoving).toBe(true);
    check();
  });

  it('tells apart keys whose hashes collide, by their bytes', () => {
    // Every key under one hash: the whole table is one probe run.
    const arena = new Arena();
    const index = new HashIndex();
    const keys = Array.from({ length: 300 }, (_, i) => bytes(`k${i}`));
    for (const [i, k] of keys.entries()) {
      const r = arena.append({ key: k, seq: i, kind: 'put', value: bytes(`v${i}`) });
      index.add(r, 42);
    }
    expect(index.capacity).toBeGreaterThanOrEqual(600);
    for (const [i, k] of keys.entries()) expect(index.find(42, k, arena)).toBe(i);
    expect(index.find(42, bytes('k300'), arena)).toBe(-1);
    expect(index.find(43, bytes('k1'), arena)).toBe(-1);
    // A replacement moves the key to its new record, others stay.
    const r = arena.append({ key: keys[7]!, seq: 1000, kind: 'put', value: bytes('new') });
    index.replace(7, r, 42);
    expect(index.find(42, keys[7]!, arena)).toBe(r);
    expect(index.find(42, keys[8]!, arena)).toBe(8);
    expect(() => index.replace(9999, r + 1, 42)).toThrow(/not indexed/);
  });
});
