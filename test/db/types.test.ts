/**
 * Type tests of the public DB API (issue #9): `npm test` runs `tsc --noEmit` over this file, so a
 * signature that stops accepting what the README promises, or types a result wrongly, fails the
 * build. The `@ts-expect-error` lines fail it if they start to compile. At run time each case
 * also checks that the types tell the truth about the values.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { DB, type DBIterator, type DBMeter, type JsonValue, type Snapshot, type WalView } from '../../src/db/index.js';
import type { Position } from '../../src/wal/index.js';

const fs = (): MemFileSystem => new MemFileSystem();

describe('types of the public API', () => {
  it('default options: string keys, unknown values; a Uint8Array key is always accepted', async () => {
    const db = await DB.open('/db', { fs: fs() });
    expectTypeOf(db).toEqualTypeOf<DB<string, unknown>>();
    await db.put(new Uint8Array([0x61]), 1);
    await db.put('b', { x: 1 });
    await db.delete(new Uint8Array([0x62]));
    await db.batch([
      { type: 'put', key: new Uint8Array([0x63]), value: 3 },
      { type: 'del', key: 'a' },
    ]);
    expectTypeOf(db.get(new Uint8Array([0x61]))).toEqualTypeOf<Promise<unknown>>();
    const it = db.iterator({ gte: new Uint8Array([0x61]), lt: 'z' });
    expectTypeOf(it).toEqualTypeOf<DBIterator<string, unknown>>();
    const all = await it.all();
    expectTypeOf(all).toEqualTypeOf<[string, unknown][]>();
    expect(typeof all[0]![0]).toBe('string');
    // @ts-expect-error a number is no key
    await expect(db.put(5, 1)).rejects.toThrow(TypeError);
    await db.close();
  });

  it("keyEncoding 'binary': keys are Buffers, in and out", async () => {
    const db = await DB.open('/db', { fs: fs(), keyEncoding: 'binary' });
    expectTypeOf(db).toEqualTypeOf<DB<Buffer, unknown>>();
    await db.put(Buffer.from('a'), 1);
    await db.put(new Uint8Array([0x62]), 2);
    // @ts-expect-error a string is no key under 'binary'
    await expect(db.put('c', 3)).rejects.toThrow(TypeError);
    const all = await db.iterator().all();
    expectTypeOf(all).toEqualTypeOf<[Buffer, unknown][]>();
    expect(Buffer.isBuffer(all[0]![0])).toBe(true);
    await db.close();
  });

  it('value encodings type the values', async () => {
    const utf8 = await DB.open('/db', { fs: fs(), valueEncoding: 'utf8' });
    expectTypeOf(utf8).toEqualTypeOf<DB<string, string>>();
    await utf8.put('k', 'v');
    // @ts-expect-error a number is no utf8 value
    await expect(utf8.put('k', 5)).rejects.toThrow(TypeError);
    expectTypeOf(await utf8.get('k')).toEqualTypeOf<string | undefined>();
    await utf8.close();

    const binary = await DB.open('/db', { fs: fs(), keyEncoding: 'binary', valueEncoding: 'binary' });
    expectTypeOf(binary).toEqualTypeOf<DB<Buffer, Buffer>>();
    await binary.put(new Uint8Array([1]), new Uint8Array([2])); // any Uint8Array in, Buffers out
    const v = await binary.get(new Uint8Array([1]));
    expectTypeOf(v).toEqualTypeOf<Buffer | undefined>();
    expect(Buffer.isBuffer(v)).toBe(true);
    await binary.close();

    const json = await DB.open('/db', { fs: fs(), valueEncoding: 'json' });
    expectTypeOf(json).toEqualTypeOf<DB<string, JsonValue>>();
    await json.put('k', { a: [1, 'x', null] });
    await json.close();
  });

  it('explicit type arguments still work', async () => {
    interface Order {
      id: number;
      items: string[];
    }
    const db = await DB.open<string, Order>('/db', { fs: fs() });
    await db.put('o1', { id: 1, items: ['a'] });
    // @ts-expect-error not an Order
    await db.put('o2', { id: 'x' }).catch(() => undefined);
    expectTypeOf(await db.get('o1')).toEqualTypeOf<Order | undefined>();
    await db.close();
  });

  it('db.wal is a read-only WalView', async () => {
    const db = await DB.open('/db', { fs: fs() });
    expectTypeOf(db.wal).toEqualTypeOf<WalView>();
    expectTypeOf(db.wal.currentPosition()).toEqualTypeOf<Position>();
    // @ts-expect-error no deleteSegmentsBefore through the DB
    expect(db.wal.deleteSegmentsBefore).toBeUndefined();
    // @ts-expect-error no append through the DB
    expect(db.wal.append).toBeUndefined();
    await db.close();
  });

  it('unknown options do not compile (and are refused at run time)', async () => {
    // @ts-expect-error misspelt
    await expect(DB.open('/db', { fs: fs(), memTableSize: 1 })).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
  });
});

describe('types of the read API, the Level store and the meter', () => {
  it('snapshots, getSync, has, getMany and the iterator methods are typed', async () => {
    const db = await DB.open('/db', { fs: fs(), valueEncoding: 'utf8' });
    await db.put('a', '1');
    const snap = db.snapshot();
    expectTypeOf(snap).toEqualTypeOf<Snapshot>();
    expectTypeOf(db.getSync('a', { snapshot: snap })).toEqualTypeOf<string | undefined>();
    expectTypeOf(await db.has('a')).toEqualTypeOf<boolean>();
    expectTypeOf(await db.getMany(['a', 'b'])).toEqualTypeOf<(string | undefined)[]>();
    const it = db.iterator({ snapshot: snap, gte: 'a' });
    expectTypeOf(await it.next()).toEqualTypeOf<[string, string] | undefined>();
    expectTypeOf(await it.nextv(10)).toEqualTypeOf<[string, string][]>();
    expectTypeOf(it.seek).parameters.toEqualTypeOf<[string | Uint8Array]>();
    await it.close();
    // @ts-expect-error an unknown read option
    expect(() => db.getSync('a', { snap })).toThrow(TypeError);
    snap.close();
    await db.close();
  });

  it('SedimentLevel is an AbstractLevel; PrometheusMeter is a DBMeter', async () => {
    const { SedimentLevel } = await import('../../src/level/index.js');
    const { PrometheusMeter } = await import('../../src/prometheus/index.js');
    const { AbstractLevel } = await import('abstract-level');
    const lvl = new SedimentLevel<string, { n: number }>('/tmp/sediment-types-never-opened', { valueEncoding: 'json' });
    expect(lvl).toBeInstanceOf(AbstractLevel);
    // Never called (it would open the store): compiled, so that the value type must flow through.
    const use = async (l: typeof lvl): Promise<void> => {
      const v: { n: number } | undefined = await l.get('k');
      const w: { n: number } | undefined = l.getSync('k');
      // @ts-expect-error not the value type
      const x: string | undefined = await l.get('k');
      void [v, w, x];
    };
    void use;
    expectTypeOf<InstanceType<typeof PrometheusMeter>>().toMatchTypeOf<DBMeter>();
  });
});
