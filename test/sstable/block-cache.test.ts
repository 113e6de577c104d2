import { describe, expect, it } from 'vitest';
import { Block } from '../../src/sstable/block.js';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import { BLOCK_OVERHEAD, BlockCache, type CacheEntry } from '../../src/sstable/block-cache.js';

/** A valid block of exactly `size` bytes (size >= 16): one entry padded by its value. */
function block(size: number): Block {
  const b = new BlockBuilder(16);
  // 2 bytes of shared/unshared lengths, the value length varint, 1 key byte, 8 bytes of restarts.
  const valueLength = size - 11 - (size - 12 >= 128 ? 2 : 1);
  b.add(Uint8Array.of(0x61), new Uint8Array(0), 0, new Uint8Array(valueLength));
  const data = new Uint8Array(b.finish());
  if (data.length !== size) throw new Error(`block of ${data.length} bytes, wanted ${size}`);
  return new Block(data, { file: 'f', offset: 0 });
}
const charge = (size: number) => size + BLOCK_OVERHEAD;

describe('BlockCache', () => {
  it('counts hits and misses', () => {
    const c = new BlockCache(10_000);
    const b = block(100);
    expect(c.get(1, 0)).toBeUndefined();
    c.insert(1, 0, b);
    expect(c.get(1, 0)).toBe(b);
    expect(c.get(2, 0)).toBeUndefined();
    expect(c.stats()).toMatchObject({ hits: 1, misses: 2, inserts: 1, blocks: 1, usedBytes: charge(100) });
  });

  it('evicts a block not used since it was inserted or last given a second chance', () => {
    const c = new BlockCache(3 * charge(100));
    const [a, b, d, e] = [block(100), block(100), block(100), block(100)];
    c.insert(1, 0, a);
    c.insert(1, 100, b);
    c.insert(2, 0, d);
    expect(c.get(1, 0)).toBe(a); // a is referenced: it gets a second chance, b goes
    c.insert(2, 100, e);
    expect(c.get(1, 100)).toBeUndefined();
    expect(c.get(1, 0)).toBe(a);
    expect(c.get(2, 0)).toBe(d);
    expect(c.get(2, 100)).toBe(e);
    expect(c.stats()).toMatchObject({ evictions: 1, blocks: 3, usedBytes: 3 * charge(100) });
    expect(c.usedBytes).toBeLessThanOrEqual(c.capacityBytes);
  });

  it('gives a referenced block a second chance, once', () => {
    const c = new BlockCache(3 * charge(100));
    const [a, b, d, e, f] = [block(100), block(100), block(100), block(100), block(100)];
    c.insert(1, 0, a);
    c.insert(1, 1, b);
    c.insert(1, 2, d);
    c.get(1, 0);
    c.get(1, 1);
    c.get(1, 2);
    // Every block referenced: one round clears the bits and moves them on, then the oldest goes.
    c.insert(1, 3, e);
    expect(c.get(1, 3)).toBe(e); // never the block being inserted
    expect(c.get(1, 0)).toBeUndefined();
    expect(c.stats()).toMatchObject({ evictions: 1, blocks: 3 });
    // b and d lost their bits and were not used since; e was (just above).
    c.insert(1, 4, f);
    expect(c.get(1, 1)).toBeUndefined();
    expect([c.get(1, 2), c.get(1, 3), c.get(1, 4)]).toEqual([d, e, f]);
  });

  it('hands out entries that find their block again until it is evicted', () => {
    const c = new BlockCache(2 * charge(100));
    const [a, b, d] = [block(100), block(100), block(100)];
    const ea = c.insert(1, 0, a)!;
    expect(c.hit(ea)).toBe(a);
    expect(c.lookup(1, 0)).toBe(ea);
    expect(c.stats()).toMatchObject({ hits: 2, misses: 0 });
    c.insert(1, 1, b);
    c.insert(1, 2, d); // a was referenced: b goes first
    expect(c.hit(ea)).toBe(a);
    // a loses its bit when its turn comes, then goes the turn after.
    for (let i = 3; i < 7; i++) c.insert(1, i, block(100));
    expect(ea.block).toBeUndefined();
    expect(c.hit(ea)).toBeUndefined();
    const stats = c.stats();
    expect(stats.hits).toBe(3); // the evicted entry's lookup is not a hit (nor a miss: the reader asks the map next)
    const again = c.insert(1, 0, a)!;
    expect(again).not.toBe(ea);
    c.evictFile(1);
    expect(again.block).toBeUndefined();
    const last = c.insert(2, 0, a)!;
    c.clear();
    expect(last.block).toBeUndefined();
    expect(c.insert(1, 0, block(5000))).toBeUndefined();
  });

  it('empties the slot that keeps an entry when the entry goes', () => {
    const c = new BlockCache(2 * charge(100));
    const slots: (CacheEntry | undefined)[] = [undefined, undefined, undefined];
    c.keep(c.insert(1, 0, block(100))!, slots, 0);
    c.keep(c.insert(1, 1, block(100))!, slots, 1);
    expect(slots.map((e) => e?.block !== undefined)).toEqual([true, true, false]);
    c.keep(c.insert(1, 2, block(100))!, slots, 2); // evicts block 0
    expect(slots.map((e) => e !== undefined)).toEqual([false, true, true]);
    c.evictFile(1);
    expect(slots).toEqual([undefined, undefined, undefined]);
    c.keep(c.insert(1, 0, block(100))!, slots, 0);
    c.clear();
    expect(slots[0]).toBeUndefined();
    // A closed reader's slots let go of their entries, which stay cached.
    const e = c.insert(1, 0, block(100))!;
    c.keep(e, slots, 0);
    c.unkeep(slots);
    expect(slots[0]).toBeUndefined();
    expect(c.lookup(1, 0)).toBe(e);
    c.keep(e, slots, 1);
    c.evictFile(1);
    expect(slots[1]).toBeUndefined();
  });

  it('evicts several small blocks for one large one, and skips blocks over the budget', () => {
    const c = new BlockCache(1000);
    for (let i = 0; i < 4; i++) c.insert(1, i, block(40));
    c.insert(1, 99, block(800));
    expect(c.usedBytes).toBeLessThanOrEqual(1000);
    expect(c.get(1, 99)).toBeDefined();
    c.insert(1, 100, block(5000));
    expect(c.get(1, 100)).toBeUndefined();
    expect(c.get(1, 99)).toBeDefined();
    expect(new BlockCache(0).capacityBytes).toBe(0);
  });

  it('replaces a block inserted twice without double counting', () => {
    const c = new BlockCache(10_000);
    c.insert(1, 0, block(100));
    const again = block(200);
    c.insert(1, 0, again);
    expect(c.get(1, 0)).toBe(again);
    expect(c.usedBytes).toBe(charge(200));
    expect(c.stats().blocks).toBe(1);
  });

  it('evicts one file, or everything', () => {
    const c = new BlockCache(100_000);
    for (let i = 0; i < 5; i++) c.insert(1, i * 100, block(20));
    for (let i = 0; i < 3; i++) c.insert(2, i * 100, block(20));
    expect(c.evictFile(1)).toBe(5);
    expect(c.evictFile(1)).toBe(0);
    expect(c.get(1, 0)).toBeUndefined();
    expect(c.get(2, 0)).toBeDefined();
    expect(c.usedBytes).toBe(3 * charge(20));
    c.insert(1, 0, block(20)); // the file's map is recreated
    expect(c.get(1, 0)).toBeDefined();
    c.clear();
    expect(c.usedBytes).toBe(0);
    expect(c.get(2, 0)).toBeUndefined();
  });

  it('validates its budget', () => {
    expect(() => new BlockCache(-1)).toThrow(RangeError);
    expect(() => new BlockCache(1.5)).toThrow(RangeError);
    expect(() => new BlockCache('1' as unknown as number)).toThrow(TypeError);
  });
});
