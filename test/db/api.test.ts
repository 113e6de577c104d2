/**
 * The DB's API contract on the in-memory file system: bad input (TypeError, RangeError, nothing
 * written), CLOSED after close, LOCKED, INVALID_CONFIG, TTLs with a controllable clock (expiry,
 * iterators, compaction dropping expired entries without resurrecting older values), value and
 * key encodings (round trips, bytewise key order, returned bytes owned by the caller), `db.wal`
 * and `stats()`.
 */
import { describe, expect, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { DB, type BatchOperation } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import { readCurrentManifest } from '../../src/db/manifest.js';
import { ClosedError, InvalidConfigError, LockedError } from '../../src/errors.js';
import { Wal } from '../../src/wal/index.js';
import {
  DIR,
  ProcessFs,
  TINY,
  compareUtf8,
  diskProblems,
  openOn,
  render,
  scan,
  settle,
  tableFiles,
  walFiles,
  footprint,
} from './helpers/harness.js';

const T0 = 1_700_000_000_000;

async function fresh<K = string, V = unknown>(options: DBOptions = {}): Promise<{ mem: MemFileSystem; db: DB<K, V> }> {
  const mem = new MemFileSystem();
  const { db } = await openOn<K, V>(mem, { fsync: 'os', ...options });
  return { mem, db };
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

function circularObject(): unknown {
  const o: Record<string, unknown> = { a: 1 };
  o.self = o;
  return o;
}

function circularArray(): unknown {
  const a: unknown[] = [1];
  a.push({ inner: a });
  return a;
}

// ---------------------------------------------------------------------------------------------

describe('bad input', () => {
  const badKeysUtf8: [string, unknown][] = [
    ['number', 5],
    ['null', null],
    ['undefined', undefined],
    ['boolean', true],
    ['object', { k: 1 }],
    ['array', ['a']],
    ['BigInt', 1n],
    ['Symbol', Symbol('k')],
    ['ArrayBuffer', new ArrayBuffer(2)],
  ];

  it('a key of the wrong type: TypeError from every method, nothing written', async () => {
    const { db } = await fresh<unknown, unknown>();
    await db.put('k', 'old');
    const before = footprint(db);
    for (const [what, key] of badKeysUtf8) {
      await expect(db.put(key, 'v'), what).rejects.toThrow(TypeError);
      await expect(db.delete(key), what).rejects.toThrow(TypeError);
      await expect(db.get(key), what).rejects.toThrow(TypeError);
      await expect(db.batch([{ type: 'put', key, value: 'v' }]), what).rejects.toThrow(TypeError);
      await expect(db.batch([{ type: 'del', key }]), what).rejects.toThrow(TypeError);
      if (key === undefined) continue; // an undefined bound is an absent bound
      for (const bound of ['gt', 'gte', 'lt', 'lte'] as const)
        expect(() => db.iterator({ [bound]: key }), `${what} as ${bound}`).toThrow(TypeError);
    }
    expect(footprint(db)).toBe(before);
    expect(await db.get('k')).toBe('old');
    await db.close();
  });

  it("under keyEncoding 'binary' a string key is a TypeError; Uint8Array keys work under both encodings", async () => {
    const { db } = await fresh<unknown, unknown>({ keyEncoding: 'binary' });
    await expect(db.put('a', 1)).rejects.toThrow(TypeError);
    await expect(db.get('a')).rejects.toThrow(TypeError);
    await expect(db.delete('a')).rejects.toThrow(TypeError);
    expect(() => db.iterator({ gt: 'a' })).toThrow(TypeError);
    await db.put(new Uint8Array([1, 2]), 1);
    expect(await db.get(Buffer.from([1, 2]))).toBe(1);
    await db.close();
    const { db: u } = await fresh<unknown, unknown>();
    await u.put(new Uint8Array([0x61, 0x62]), 1);
    expect(await u.get('ab')).toBe(1);
    expect(await scan(u)).toEqual([['ab', 1]]);
    await u.close();
  });

  const badMsgpack: [string, () => unknown][] = [
    ['undefined', () => undefined],
    ['a function', () => () => 1],
    ['a BigInt', () => 10n],
    ['a Symbol', () => Symbol('v')],
    ['a Map', () => new Map([['a', 1]])],
    ['a Set', () => new Set([1])],
    ['a class instance', () => new Point(1, 2)],
    ['a RegExp', () => /x/],
    ['an Error', () => new Error('x')],
    ['an invalid Date', () => new Date(NaN)],
    ['a circular object', circularObject],
    ['a circular array', circularArray],
    // biome-ignore lint/suspicious/noSparseArray: the hole is the value under test (a hole is not undefined)
    ['an array with a hole', () => [1, , 3]],
    ['an object with an undefined property', () => ({ a: 1, b: undefined })],
    ['a nested Map', () => ({ a: [{ b: new Map() }] })],
    ['a nested function', () => [1, { f: () => 2 }]],
    ['a nested BigInt', () => ({ n: [1n] })],
    ['an ArrayBuffer', () => new ArrayBuffer(4)],
    ['a DataView', () => new DataView(new ArrayBuffer(4))],
    ['an Int16Array', () => new Int16Array([1, -1])],
    ['a Float64Array', () => new Float64Array([0.5])],
    ['a Uint8ClampedArray', () => new Uint8ClampedArray([1])],
    ['a boxed string', () => new String('s')],
    ['a Promise', () => Promise.resolve(1)],
  ];

  const badJson: [string, () => unknown][] = [
    ['NaN', () => NaN],
    ['Infinity', () => Infinity],
    ['-Infinity', () => -Infinity],
    ['a nested NaN', () => ({ a: [1, NaN] })],
    ['undefined', () => undefined],
    ['a function', () => () => 1],
    ['a BigInt', () => 1n],
    ['a Map', () => new Map()],
    ['a Date', () => new Date(0)],
    ['a Uint8Array', () => new Uint8Array(2)],
    ['a class instance', () => new Point(1, 2)],
    ['a circular object', circularObject],
    ['a circular array', circularArray],
    ['an object with an undefined property', () => ({ a: undefined })],
  ];

  const cases: [DBOptions['valueEncoding'], [string, () => unknown][]][] = [
    ['msgpack', badMsgpack],
    ['json', badJson],
    [
      'utf8',
      [
        ['a number', () => 1],
        ['a Buffer', () => Buffer.from('x')],
        ['null', () => null],
        ['an object', () => ({ s: 'x' })],
      ],
    ],
    [
      'binary',
      [
        ['a string', () => 'x'],
        ['a number', () => 1],
        ['an array of bytes', () => [1, 2]],
        ['an ArrayBuffer', () => new ArrayBuffer(2)],
        ['null', () => null],
      ],
    ],
  ];

  for (const [encoding, bad] of cases) {
    it(`valueEncoding '${encoding}': values it cannot represent reject with TypeError before anything is written`, async () => {
      const { mem, db } = await fresh<string, unknown>({ valueEncoding: encoding });
      const good = encoding === 'binary' ? Buffer.from('old') : 'old';
      await db.put('k', good);
      await db.put('other', good);
      const before = footprint(db);
      for (const [what, make] of bad) {
        // Rejected, not thrown: the methods return promises.
        let p: Promise<void> | undefined;
        expect(() => (p = db.put('k', make())), what).not.toThrow();
        await expect(p, what).rejects.toThrow(TypeError);
        await expect(db.batch([{ type: 'put', key: 'k', value: make() }]), what).rejects.toThrow(TypeError);
        // Only the last operation is bad: none of the batch is written.
        await expect(
          db.batch([
            { type: 'del', key: 'other' },
            { type: 'put', key: 'new', value: good },
            { type: 'put', key: 'k', value: make() },
          ]),
          what,
        ).rejects.toThrow(TypeError);
        expect(footprint(db), what).toBe(before);
      }
      expect(render(await db.get('k'))).toBe(render(good));
      expect(render(await db.get('other'))).toBe(render(good));
      expect(await db.get('new')).toBeUndefined();
      // Nothing reached the WAL either: a reopen sees exactly the two good puts.
      await db.close();
      const records: string[] = [];
      const { db: again } = await openOn<string, unknown>(mem, { valueEncoding: encoding });
      for await (const e of again.wal.readFrom({ segmentId: 0, offset: 0 })) records.push(Buffer.from(e.record.key).toString());
      expect(records).toEqual(['k', 'other']);
      await again.close();
    });
  }

  it('oversized keys and values (maxKeySize, maxValueSize): RangeError, nothing written', async () => {
    const { db } = await fresh<string, unknown>({ maxKeySize: 16, maxValueSize: 32, valueEncoding: 'utf8' });
    await db.put('k', 'old');
    const before = footprint(db);
    await expect(db.put('k'.repeat(17), 'v')).rejects.toThrow(RangeError);
    await expect(db.put('é'.repeat(9), 'v')).rejects.toThrow(RangeError); // 18 bytes in UTF-8
    await expect(db.delete('k'.repeat(17))).rejects.toThrow(RangeError);
    await expect(db.get('k'.repeat(17))).rejects.toThrow(RangeError);
    await expect(db.put('k', 'v'.repeat(33))).rejects.toThrow(RangeError);
    await expect(db.put('k', 'é'.repeat(17))).rejects.toThrow(RangeError);
    await expect(
      db.batch([
        { type: 'put', key: 'a', value: 'fine' },
        { type: 'del', key: 'k' },
        { type: 'put', key: 'b', value: 'v'.repeat(33) },
      ]),
    ).rejects.toThrow(RangeError);
    await expect(
      db.batch([
        { type: 'put', key: 'a', value: 'fine' },
        { type: 'del', key: 'k'.repeat(17) },
      ]),
    ).rejects.toThrow(RangeError);
    expect(footprint(db)).toBe(before);
    expect(await db.get('k')).toBe('old');
    expect(await db.get('a')).toBeUndefined();
    // At the limits exactly: accepted.
    await db.put('k'.repeat(16), 'v'.repeat(32));
    expect(await db.get('k'.repeat(16))).toBe('v'.repeat(32));
    await db.close();
  });

  it('a bad ttlMs: RangeError (TypeError for a non-number), nothing written', async () => {
    const { db } = await fresh<string, unknown>({ clock: () => T0 });
    await db.put('k', 'old');
    const before = footprint(db);
    for (const ttlMs of [0, -1, -0.5, NaN, Infinity, -Infinity]) {
      await expect(db.put('k', 'v', { ttlMs }), String(ttlMs)).rejects.toThrow(RangeError);
      await expect(
        db.batch([
          { type: 'del', key: 'x' },
          { type: 'put', key: 'k', value: 'v', ttlMs },
        ]),
        String(ttlMs),
      ).rejects.toThrow(RangeError);
    }
    for (const ttlMs of ['100', null, {}, 10n] as unknown[]) {
      await expect(db.put('k', 'v', { ttlMs: ttlMs as number })).rejects.toThrow(TypeError);
    }
    expect(footprint(db)).toBe(before);
    expect(await db.get('k')).toBe('old');
    await db.close();
  });

  it('bad write options and batch shapes: TypeError, nothing written', async () => {
    const { db } = await fresh<string, unknown>();
    await db.put('k', 'old');
    const before = footprint(db);
    await expect(db.put('k', 'v', { sync: 'yes' as unknown as boolean })).rejects.toThrow(TypeError);
    await expect(db.put('k', 'v', null as unknown as undefined)).rejects.toThrow(TypeError);
    await expect(db.put('k', 'v', 5 as unknown as undefined)).rejects.toThrow(TypeError);
    await expect(db.delete('k', { sync: 1 as unknown as boolean })).rejects.toThrow(TypeError);
    await expect(db.batch([{ type: 'put', key: 'k', value: 'v' }], { sync: 'no' as unknown as boolean })).rejects.toThrow(TypeError);
    await expect(db.batch('ops' as unknown as [])).rejects.toThrow(TypeError);
    await expect(db.batch([null as unknown as BatchOperation<string, unknown>])).rejects.toThrow(TypeError);
    await expect(
      db.batch([{ type: 'put', key: 'a', value: 1 }, { type: 'upsert', key: 'k', value: 1 } as unknown as BatchOperation<string, unknown>]),
    ).rejects.toThrow(TypeError);
    expect(() => db.iterator(null as unknown as undefined)).toThrow(TypeError);
    expect(() => db.iterator({ limit: 'ten' as unknown as number })).toThrow(TypeError);
    expect(footprint(db)).toBe(before);
    // An empty batch is fine and writes nothing.
    await db.batch([]);
    expect(footprint(db)).toBe(before);
    expect(await db.get('k')).toBe('old');
    expect(await db.get('a')).toBeUndefined();
    await db.close();
  });
});

// ---------------------------------------------------------------------------------------------

describe('close, CLOSED and LOCKED', () => {
  it('every method rejects (or throws) with CLOSED after close; close is idempotent', async () => {
    const { mem, db } = await fresh<string, unknown>();
    await db.put('k', 1);
    const early = db.iterator();
    const pending = db.put('in-flight', 2);
    const closing = db.close();
    expect(db.close()).toBe(closing);
    // Writes issued while closing are refused.
    await expect(db.put('late', 3)).rejects.toMatchObject({ code: 'CLOSED' });
    await closing;
    await pending; // a write issued before close completes
    await db.close();
    const closed = { code: 'CLOSED' };
    await expect(db.put('k', 1)).rejects.toBeInstanceOf(ClosedError);
    await expect(db.put('k', 1)).rejects.toMatchObject(closed);
    await expect(db.delete('k')).rejects.toMatchObject(closed);
    await expect(db.batch([{ type: 'del', key: 'k' }])).rejects.toMatchObject(closed);
    await expect(db.batch([])).rejects.toMatchObject(closed);
    await expect(db.get('k')).rejects.toMatchObject(closed);
    expect(() => db.iterator()).toThrow(ClosedError);
    await expect(early.next()).rejects.toMatchObject(closed);
    await expect(db.flush()).rejects.toMatchObject(closed);
    await expect(db.compact()).rejects.toMatchObject(closed);
    // Bad input after close: either error is fine, but nothing is written.
    await expect(db.put(5 as unknown as string, 1)).rejects.toThrow();
    const { db: again } = await openOn<string, unknown>(mem);
    expect(await scan(again)).toEqual([
      ['in-flight', 2],
      ['k', 1],
    ]);
    await again.close();
    await settle();
    expect(await diskProblems(mem)).toEqual([]);
  });

  it('a second open of the same directory on the same file system is LOCKED until the first closes', async () => {
    const mem = new MemFileSystem();
    const fs = new ProcessFs(mem);
    const first = await DB.open<string, unknown>(DIR, { fs, fsync: 'os' });
    await first.put('k', 1);
    const files = mem.listFiles();
    const second = DB.open(DIR, { fs, fsync: 'os' });
    await expect(second).rejects.toBeInstanceOf(LockedError);
    await expect(DB.open(DIR, { fs: new ProcessFs(mem) })).rejects.toMatchObject({ code: 'LOCKED' });
    // The refused open touched nothing and the first handle works on.
    expect(mem.listFiles()).toEqual(files);
    await first.put('k', 2);
    expect(await first.get('k')).toBe(2);
    await first.close();
    const third = await DB.open<string, unknown>(DIR, { fs, fsync: 'os' });
    expect(await third.get('k')).toBe(2);
    await third.close();
  });

  it('bad options reject with INVALID_CONFIG before anything touches the disk', async () => {
    const bad: [string, unknown][] = [
      ['memtableSize', 0],
      ['memtableSize', -1],
      ['memtableSize', 1.5],
      ['memtableSize', '4096'],
      ['memtableSize', 512],
      ['keyEncoding', 'ascii'],
      ['valueEncoding', 'cbor'],
      ['compression', 'zstd'],
      ['compression', true],
      ['fsync', 'never'],
      ['fsync', { batchMs: 0 }],
      ['fsync', { batchMs: -5 }],
      ['fsync', { batchMs: 'soon' }],
      ['fsync', null],
      ['blockCacheSize', -1],
      ['maxKeySize', 0],
      ['maxValueSize', -1],
      ['walSegmentSize', 100],
      ['tableFileSize', 1],
      ['levelBaseSize', 0],
      ['levelMultiplier', 1],
      ['l0CompactionTrigger', 1],
      ['l0SlowdownTrigger', 1],
      ['maxFrozenMemtables', 0],
      ['recovery', 'lenient'],
      ['clock', 5],
      ['fs', 'disk'],
    ];
    for (const [name, v] of bad) {
      const mem = new MemFileSystem();
      const opts = { [name]: v, ...(name === 'fs' ? {} : { fs: new ProcessFs(mem) }) } as DBOptions;
      const err = await DB.open(DIR, opts).then(
        async (db) => {
          await db.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err, `${name}: ${JSON.stringify(v)}`).toBeInstanceOf(InvalidConfigError);
      expect(err).toMatchObject({ code: 'INVALID_CONFIG', option: name });
      expect(await mem.readdir('/'), `${name}: nothing created`).toEqual([]);
    }
    const mem = new MemFileSystem();
    await expect(
      DB.open(DIR, { fs: new ProcessFs(mem), l0CompactionTrigger: 4, l0SlowdownTrigger: 8, l0StopTrigger: 8 }),
    ).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      option: 'l0StopTrigger',
    });
    await expect(DB.open('', { fs: new ProcessFs(mem) })).rejects.toThrow(TypeError);
    await expect(DB.open(DIR, 'fast' as unknown as DBOptions)).rejects.toThrow(TypeError);
    expect(await mem.readdir('/')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('TTL', () => {
  it('an entry is visible before its expiry and absent at and after it, in the memtable and in tables', async () => {
    let now = T0;
    const { mem, db: first } = await fresh<string, unknown>({ clock: () => now });
    let db = first;
    await db.put('short', 's', { ttlMs: 100 });
    await db.put('fraction', 'f', { ttlMs: 0.5 }); // expires at ceil(T0 + 0.5) = T0 + 1
    await db.batch([
      { type: 'put', key: 'batched', value: 'b', ttlMs: 50 },
      { type: 'put', key: 'forever', value: 'p' },
    ]);
    const visible = async (): Promise<string[]> => (await scan(db)).map(([k]) => k);
    expect(await visible()).toEqual(['batched', 'forever', 'fraction', 'short']);
    for (const phase of ['memtable', 'table', 'reopened'] as const) {
      now = T0;
      expect(await db.get('fraction'), phase).toBe('f');
      now = T0 + 1;
      expect(await db.get('fraction'), phase).toBeUndefined();
      now = T0 + 49;
      expect(await db.get('batched'), phase).toBe('b');
      expect(await visible(), phase).toEqual(['batched', 'forever', 'short']);
      now = T0 + 50;
      expect(await db.get('batched'), phase).toBeUndefined();
      now = T0 + 99;
      expect(await db.get('short'), phase).toBe('s');
      expect(await visible(), phase).toEqual(['forever', 'short']);
      expect(await scan(db, { gte: 'short', lte: 'short' }), phase).toEqual([['short', 's']]);
      now = T0 + 100;
      expect(await db.get('short'), phase).toBeUndefined();
      expect(await visible(), phase).toEqual(['forever']);
      expect(await scan(db, { reverse: true }), phase).toEqual([['forever', 'p']]);
      now = T0;
      if (phase === 'memtable') {
        await db.flush();
        expect(db.stats().memtable.entries).toBe(0);
      }
      if (phase === 'table') {
        await db.close();
        ({ db } = await openOn<string, unknown>(mem, { clock: () => now }));
      }
    }
    // An iterator reads at the time of its creation.
    now = T0 + 99;
    const iter = db.iterator();
    now = T0 + 100;
    expect((await iter.all()).map(([k]) => k)).toEqual(['forever', 'short']);
    await db.close();
  });

  it('compaction drops expired entries', async () => {
    let now = T0;
    const { mem, db } = await fresh<string, unknown>({ ...TINY, memtableSize: 1 << 20, clock: () => now, valueEncoding: 'utf8' });
    for (let i = 0; i < 200; i++) await db.put(`k${String(i).padStart(3, '0')}`, 'x'.repeat(40), i % 2 === 0 ? { ttlMs: 1000 } : {});
    await db.compact();
    const entries = async (): Promise<number> => {
      const m = await readCurrentManifest(mem, DIR);
      return m!.state.levels.flat().reduce((n, t) => n + t.entries, 0);
    };
    expect(await entries()).toBe(200);
    now = T0 + 1000;
    await db.compact();
    expect(await entries()).toBe(100);
    expect((await scan(db)).length).toBe(100);
    // All expired: nothing is left at all.
    for (let i = 1; i < 200; i += 2) await db.put(`k${String(i).padStart(3, '0')}`, 'y', { ttlMs: 10 });
    now += 10;
    await db.compact();
    expect(await entries()).toBe(0);
    expect(db.stats().levels.every((l) => l.tables === 0)).toBe(true);
    await db.close();
    await settle();
    expect(tableFiles(mem)).toEqual([]);
  });

  it('an expired entry never resurrects an older value from a deeper level', async () => {
    let now = T0;
    const options: DBOptions = {
      ...TINY,
      fsync: 'os',
      valueEncoding: 'utf8',
      compression: 'none',
      levelBaseSize: 4096,
      levelMultiplier: 2,
      tableFileSize: 4096,
      clock: () => now,
    };
    const { mem, db } = await fresh<string, string>(options);
    const k = 'key-0150';
    const filler = (i: number, round: number): string => `${i}:${round}:`.padEnd(90, String.fromCharCode(0x41 + ((i * 7 + round) % 26)));
    // v1 and ~50 KB of neighbours, compacted and spread over several levels.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 300; i++) await db.put(`key-${String(i).padStart(4, '0')}`, i === 150 ? `v1-${round}` : filler(i, round));
    }
    await db.compact();
    const levelOf = async (key: string): Promise<number[]> => {
      const m = await readCurrentManifest(mem, DIR);
      const b = Buffer.from(key);
      return m!.state.levels.flatMap((tables, l) =>
        tables.some((t) => Buffer.compare(t.smallest, b) <= 0 && Buffer.compare(b, t.largest) <= 0) ? [l] : [],
      );
    };
    // Let the size compactions push data down.
    for (let i = 0; i < 20; i++) {
      await db.put(`zz-${i}`, filler(i, 9));
      await db.flush();
    }
    const deep = await levelOf(k);
    expect(Math.max(...deep), `levels holding ${k}: ${deep}`).toBeGreaterThanOrEqual(2);
    expect(await db.get(k)).toBe('v1-1');

    await db.put(k, 'v2', { ttlMs: 50 });
    await db.flush();
    expect(await db.get(k)).toBe('v2');
    now += 50;
    const check = async (when: string): Promise<void> => {
      expect(await db.get(k), when).toBeUndefined();
      const seen = (await scan(db, { gte: 'key-0140', lte: 'key-0160' })).map(([key]) => key);
      expect(seen, when).not.toContain(k);
      expect(seen, when).toHaveLength(20);
    };
    await check('expired, before any compaction');
    // Partial compactions: more flushes push the expired entry from L0 down level by level.
    for (let i = 0; i < 30; i++) {
      await db.put(`key-${String(i * 10 + 1).padStart(4, '0')}`, filler(i, 3));
      await db.flush();
      await check(`after flush ${i} and the compactions it started`);
    }
    await db.compact();
    await check('after a full compaction');
    await db.close();
    const { db: again } = await openOn<string, string>(mem, options);
    expect(await again.get(k)).toBeUndefined();
    await again.close();
  });
});

// ---------------------------------------------------------------------------------------------

/** A comparable rendering that keeps what toEqual blurs: -0, Buffer vs Uint8Array bytes, Dates. */
function exact(v: unknown): unknown {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : Number.isNaN(v) ? 'NaN' : v;
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (v instanceof Date) return { date: v.getTime() };
  if (Array.isArray(v)) return v.map(exact);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, exact(x)]));
  return v;
}

/** Puts every value, then reads each back from the memtable, from a table, and after a reopen. */
async function roundTrip(
  options: DBOptions,
  values: [string, unknown][],
  check: (got: unknown, want: unknown, what: string) => void,
): Promise<void> {
  const mem = new MemFileSystem();
  let { db } = await openOn<string, unknown>(mem, { fsync: 'os', ...options });
  for (const [k, v] of values) await db.put(k, v);
  await db.batch(values.map(([k, v]) => ({ type: 'put' as const, key: `batch:${k}`, value: v })));
  const all = [...values, ...values.map(([k, v]): [string, unknown] => [`batch:${k}`, v])];
  for (const where of ['memtable', 'table', 'WAL replay', 'table after reopen'] as const) {
    for (const [k, v] of all) check(await db.get(k), v, `${k} from the ${where}`);
    const scanned = new Map(await scan(db));
    for (const [k, v] of all) check(scanned.get(k), v, `${k} from an iterator over the ${where}`);
    if (where === 'memtable') await db.flush();
    if (where === 'table') {
      // Put them again (unflushed): the reopen replays them from the WAL.
      for (const [k, v] of all) await db.put(k, v);
      await db.close();
      ({ db } = await openOn<string, unknown>(mem, { fsync: 'os', ...options }));
    }
    if (where === 'WAL replay') {
      await db.close();
      ({ db } = await openOn<string, unknown>(mem, { fsync: 'os', ...options, memtableSize: 1024 }));
      await db.compact();
    }
  }
  await db.close();
}

const exactly = (got: unknown, want: unknown, what: string): void => {
  expect(exact(got), what).toEqual(exact(want));
};

describe('value encodings round-trip', () => {
  it('msgpack: nested objects, arrays, Dates, Uint8Arrays, null, booleans, floats, integers, unicode', async () => {
    const values: [string, unknown][] = [
      ['null', null],
      ['true', true],
      ['false', false],
      ['zero', 0],
      ['ints', [1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, 2 ** 31 - 1, -(2 ** 31), 2 ** 32, 2 ** 53 - 1, -(2 ** 53 - 1)]],
      ['floats', [0.1, -0.5, 1.5, Math.PI, 1e-300, 5e-324, 1.7976931348623157e308, -1e21, 2 ** 64]],
      ['special numbers', [NaN, Infinity, -Infinity]],
      ['strings', ['', 'plain', 'é', '日本語', '\u{1F600}', 'nul\u0000byte', 'e\u0301', '\uffff', 'x'.repeat(70_000)]],
      [
        'dates',
        [new Date(0), new Date(1_700_000_000_123), new Date(-1), new Date(-62_135_596_800_000), new Date(8.64e15), new Date(-8.64e15)],
      ],
      ['bytes', [new Uint8Array(0), new Uint8Array([0, 1, 255]), Buffer.from('buffer'), new Uint8Array(70_000).fill(7)]],
      ['byte view', new Uint8Array([9, 8, 7, 6, 5]).subarray(1, 4)],
      ['empty object', {}],
      ['empty array', []],
      [
        'nested',
        {
          name: 'sediment',
          tags: ['a', 'b', { deep: [null, true, [1, [2, [3]]]] }],
          when: new Date(1_600_000_000_000),
          blob: new Uint8Array([1, 2, 3]),
          stats: { mean: -12.75, n: 0, ok: false },
          'key with spaces': 'v',
          '': 'empty key',
          日本: 'unicode key',
        },
      ],
      ['null-prototype object', Object.assign(Object.create(null) as object, { a: 1, b: [2] })],
    ];
    await roundTrip({ valueEncoding: 'msgpack' }, values, exactly);
  });

  it('msgpack and json: -0 is refused (both would read it back as 0), nothing written', async () => {
    for (const valueEncoding of ['msgpack', 'json'] as const) {
      const { db } = await fresh<string, unknown>({ valueEncoding });
      for (const value of [-0, { z: [-0] }]) {
        await expect(db.put('k', value)).rejects.toThrow(TypeError);
        expect(await db.get('k')).toBeUndefined();
      }
      expect(db.wal.stats().records).toBe(0);
    }
  });

  it("msgpack: an own '__proto__' key round-trips or is refused, never renamed", async () => {
    const value = JSON.parse('{"__proto__": {"x": 1}, "a": 2}') as unknown;
    const { db } = await fresh<string, unknown>({ valueEncoding: 'msgpack' });
    const stored = await db.put('k', value).then(
      () => true,
      (err: unknown) => {
        expect(err).toBeInstanceOf(TypeError);
        return false;
      },
    );
    if (stored) {
      const got = (await db.get('k')) as object;
      expect(Object.keys(got)).toEqual(['__proto__', 'a']);
      expect(JSON.stringify(got)).toBe(JSON.stringify(value));
    }
    await db.close();
  });

  it('json: nested objects, arrays, finite numbers, unicode strings, null, booleans', async () => {
    const values: [string, unknown][] = [
      ['null', null],
      ['bools', [true, false]],
      ['numbers', [0, 1, -1, 0.1, -0.5, 1e21, 2 ** 53 - 1, 5e-324, 1.7976931348623157e308]],
      ['strings', ['', 'é', '日本語', '\u{1F600}', 'quote " and \\ backslash', 'nul\u0000', 'lone \ud800 surrogate']],
      ['nested', { a: [1, { b: [null, 'x', { c: true }] }], '': 0, 'k é': 'v' }],
      ['own __proto__', JSON.parse('{"__proto__": {"x": 1}}') as unknown],
      ['empty', [{}, []]],
    ];
    await roundTrip({ valueEncoding: 'json' }, values, (got, want, what) => {
      expect(JSON.stringify(got), what).toBe(JSON.stringify(want));
      expect(exact(got), what).toEqual(exact(JSON.parse(JSON.stringify(want))));
    });
  });

  it('utf8: strings, empty and unicode', async () => {
    const values: [string, unknown][] = [
      ['empty', ''],
      ['ascii', 'hello'],
      ['unicode', 'é日本語\u{1F600}e\u0301'],
      ['nul', 'a\u0000b'],
      ['long', 'ü'.repeat(50_000)],
    ];
    await roundTrip({ valueEncoding: 'utf8' }, values, (got, want, what) => {
      expect(typeof got, what).toBe('string');
      expect(got, what).toBe(want);
    });
  });

  it('binary: bytes come back as Buffers with the same bytes (views included)', async () => {
    const backing = new Uint8Array([1, 2, 3, 4, 5, 6]);
    const values: [string, unknown][] = [
      ['empty', new Uint8Array(0)],
      ['bytes', new Uint8Array([0, 127, 128, 255])],
      ['buffer', Buffer.from('a buffer')],
      ['view', backing.subarray(2, 4)],
      ['big', new Uint8Array(100_000).map((_, i) => i % 251)],
    ];
    await roundTrip({ valueEncoding: 'binary' }, values, (got, want, what) => {
      expect(Buffer.isBuffer(got), what).toBe(true);
      exactly(got, want, what);
    });
  });

  it('strings UTF-8 cannot represent (lone surrogates) are refused or round-trip, never silently changed', async () => {
    for (const valueEncoding of ['utf8', 'msgpack'] as const) {
      const { db } = await fresh<string, unknown>({ valueEncoding });
      const value = valueEncoding === 'utf8' ? 'a\ud800b' : { s: 'a\udc00b' };
      const stored = await db.put('k', value).then(
        () => true,
        (err: unknown) => {
          expect(err).toBeInstanceOf(TypeError);
          return false;
        },
      );
      if (stored) expect(await db.get('k'), valueEncoding).toEqual(value);
      await db.close();
    }
  });

  it('two distinct keys never collide (lone surrogates in utf8 keys are refused or kept apart)', async () => {
    const { db } = await fresh<string, unknown>();
    const results = await Promise.allSettled([db.put('\ud800', 'high'), db.put('\udfff', 'low')]);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(TypeError);
    if (results.every((r) => r.status === 'fulfilled')) {
      expect(await db.get('\ud800')).toBe('high');
      expect(await db.get('\udfff')).toBe('low');
      expect((await scan(db)).length).toBe(2);
    }
    await db.close();
  });
});

describe('key encodings and order', () => {
  it('utf8 keys come back as strings in bytewise order of their UTF-8 bytes', async () => {
    const keys = ['b', 'a', 'é', '\u{1F600}', 'z', 'ab', 'A', '', '\uffff', 'a\u0000', '~'];
    const sorted = [...keys].sort(compareUtf8);
    // Bytewise, not UTF-16 order: U+FFFF (ef bf bf) sorts before U+1F600 (f0 9f 98 80).
    expect(sorted.indexOf('\uffff')).toBeLessThan(sorted.indexOf('\u{1F600}'));
    const { db } = await fresh<string, unknown>({ ...TINY, memtableSize: 1024 });
    for (const [i, k] of keys.entries()) await db.put(k, i);
    for (const stage of ['memtable and tables', 'compacted']) {
      const got = await scan(db);
      expect(
        got.map(([k]) => k),
        stage,
      ).toEqual(sorted);
      for (const [k] of got) expect(typeof k).toBe('string');
      expect(
        (await scan(db, { reverse: true })).map(([k]) => k),
        stage,
      ).toEqual([...sorted].reverse());
      expect(
        (await scan(db, { gt: 'a', lt: 'é' })).map(([k]) => k),
        stage,
      ).toEqual(sorted.filter((k) => compareUtf8(k, 'a') > 0 && compareUtf8(k, 'é') < 0));
      expect(
        (await scan(db, { gte: 'z', limit: 2 })).map(([k]) => k),
        stage,
      ).toEqual(['z', '~']);
      expect(
        (await scan(db, { lte: 'b', reverse: true, limit: 3 })).map(([k]) => k),
        stage,
      ).toEqual(['b', 'ab', 'a\u0000']);
      await db.compact();
    }
    await db.close();
  });

  it('binary keys come back as Buffers in bytewise order, [0xff] last', async () => {
    const { db } = await fresh<Uint8Array, unknown>({ keyEncoding: 'binary', ...TINY });
    const keys = [[0xff], [0x00], [0x61], [0xc3, 0xa9], [0x62], [0x00, 0x00], [0xfe, 0xff, 0xff], [0x7f]].map((b) => new Uint8Array(b));
    for (const [i, k] of keys.entries()) await db.put(k, i);
    const want = [...keys].sort((a, b) => Buffer.compare(a, b)).map((k) => Buffer.from(k).toString('hex'));
    expect(want[want.length - 1]).toBe('ff');
    for (const stage of ['memtable', 'compacted']) {
      const got = await scan(db);
      for (const [k] of got) expect(Buffer.isBuffer(k), stage).toBe(true);
      expect(
        got.map(([k]) => Buffer.from(k).toString('hex')),
        stage,
      ).toEqual(want);
      expect(
        (await scan(db, { gt: new Uint8Array([0x61]), lte: Buffer.from([0xfe, 0xff, 0xff]) })).map(([k]) => Buffer.from(k).toString('hex')),
        stage,
      ).toEqual(['62', '7f', 'c3a9', 'feffff']);
      expect(await db.get(Buffer.from([0xff])), stage).toBe(0);
      await db.compact();
    }
    await db.close();
  });
});

describe('large keys and values', () => {
  it('keys up to maxKeySize and large values go through flushes and compactions', async () => {
    const { mem, db } = await fresh<string, unknown>({ ...TINY, valueEncoding: 'binary', compression: 'lz4' });
    const big = (n: number, c: string): string => c.repeat(n);
    const entries: [string, Buffer][] = [
      [big(1, 'a'), Buffer.alloc(0)],
      [big(1000, 'b'), Buffer.alloc(5000, 1)],
      [big(65_536, 'c'), Buffer.alloc(10, 2)],
      [`${big(65_535, 'c')}d`, Buffer.from(Buffer.alloc(200_000).map((_, i) => (i * 31) % 256))],
      [big(40_000, 'é').slice(0, 32_768), Buffer.from('two-byte chars')],
    ];
    for (const [k, v] of entries) await db.put(k, v);
    const sorted = [...entries].sort((a, b) => compareUtf8(a[0], b[0]));
    const check = async (stage: string): Promise<void> => {
      for (const [k, v] of entries) expect(Buffer.compare((await db.get(k)) as Buffer, v), `${stage}: ${k.length}-char key`).toBe(0);
      const got = await scan(db);
      expect(
        got.map(([k]) => k.length),
        stage,
      ).toEqual(sorted.map(([k]) => k.length));
      expect(
        got.every(([k, v], i) => k === sorted[i]![0] && Buffer.compare(v as Buffer, sorted[i]![1]) === 0),
        stage,
      ).toBe(true);
    };
    await check('memtable');
    await db.flush();
    await check('table');
    await db.compact();
    await check('compacted');
    await db.close();
    const { db: again } = await openOn<string, unknown>(mem, { valueEncoding: 'binary' });
    expect(((await again.get(big(65_536, 'c'))) as Buffer).length).toBe(10);
    await again.close();
  });
});

describe('close under load', () => {
  it('closing while writes are stalled behind flushes: every write resolves or rejects with CLOSED, and every resolved one is kept', async () => {
    const { mem, db } = await fresh<string, number>({
      ...TINY,
      maxFrozenMemtables: 1,
      l0CompactionTrigger: 2,
      l0SlowdownTrigger: 2,
      l0StopTrigger: 3,
    });
    const ok: string[] = [];
    const errors: unknown[] = [];
    // Ten writers, each writing one key after another until the DB refuses.
    const writers = Array.from({ length: 10 }, async (_, w) => {
      for (let i = 0; i < 1000; i++) {
        const k = `w${w}-${String(i).padStart(4, '0')}`;
        try {
          await db.put(k, i);
          ok.push(k);
        } catch (err) {
          errors.push(err);
          return;
        }
      }
    });
    while (db.stats().writeStalls === 0 && ok.length < 5000) await new Promise((r) => setTimeout(r, 1));
    expect(db.stats().writeStalls).toBeGreaterThan(0);
    const closing = db.close();
    await Promise.all(writers);
    await closing;
    expect(errors.length).toBe(10);
    for (const err of errors) expect(err).toMatchObject({ code: 'CLOSED' });
    const { db: again } = await openOn<string, number>(mem);
    const got = new Set((await scan(again)).map(([k]) => k));
    expect(got.size).toBe(ok.length);
    for (const k of ok) expect(got.has(k), k).toBe(true);
    await again.close();
    await settle();
    expect(await diskProblems(mem)).toEqual([]);
  });
});

describe('returned keys and values belong to the caller', () => {
  for (const where of ['memtable', 'table'] as const) {
    it(`mutating a value or key read from the ${where} changes nothing in the DB`, async () => {
      const { mem, db } = await fresh<Buffer, unknown>({ keyEncoding: 'binary', valueEncoding: 'binary' });
      await db.put(Buffer.from('k1'), Buffer.from('abc'));
      await db.put(Buffer.from('k2'), Buffer.from('def'));
      if (where === 'table') await db.flush();
      const v = (await db.get(Buffer.from('k1'))) as Buffer;
      v[0] = 0x7a;
      expect(((await db.get(Buffer.from('k1'))) as Buffer).toString(), 'value from get').toBe('abc');
      for await (const [k, val] of db.iterator()) {
        k[0] = 0x5a;
        (val as Buffer)[0] = 0x5a;
      }
      const after = (await scan(db)).map(([k, val]) => `${k.toString()}=${(val as Buffer).toString()}`);
      expect(after, 'keys and values from an iterator').toEqual(['k1=abc', 'k2=def']);
      await db.flush();
      await db.close();
      const { db: again } = await openOn<Buffer, unknown>(mem, { keyEncoding: 'binary', valueEncoding: 'binary' });
      expect(
        (await scan(again)).map(([k, val]) => `${k.toString()}=${(val as Buffer).toString()}`),
        'after a flush and reopen',
      ).toEqual(['k1=abc', 'k2=def']);
      await again.close();
    });
  }

  it('mutating a Uint8Array inside a msgpack value read from the DB changes nothing', async () => {
    const { db } = await fresh<string, { b: Uint8Array }>();
    await db.put('k', { b: new Uint8Array([1, 2, 3]) });
    const got = (await db.get('k'))!;
    got.b[0] = 99;
    expect([...(await db.get('k'))!.b]).toEqual([1, 2, 3]);
    await db.close();
  });

  for (const kind of ['Uint8Array', 'Buffer'] as const) {
    it(`mutating a ${kind} key or value right after put() or batch() changes nothing in the DB, nor in its WAL`, async () => {
      // A caller reusing one buffer for the next write is common; Buffer#slice is a view, so a
      // "copy" made with it would let the caller rewrite what the DB stores.
      const make = (bytes: number[]): Uint8Array => (kind === 'Buffer' ? Buffer.from(bytes) : new Uint8Array(bytes));
      const { mem, db } = await fresh<Uint8Array, Uint8Array>({ keyEncoding: 'binary', valueEncoding: 'binary' });
      const key = make([0x6b]);
      const value = make([1, 2, 3]);
      const put = db.put(key, value);
      key[0] = 0x6c; // before the write resolved (before the WAL write, even)
      value[0] = 9;
      await put;
      const bKey = make([0x61]);
      const bValue = make([4, 5]);
      const batch = db.batch([{ type: 'put', key: bKey, value: bValue }]);
      bKey[0] = 0x62;
      bValue[0] = 8;
      await batch;
      key[0] = 0x6d; // and after
      value[1] = 9;
      const check = async (d: DB<Uint8Array, Uint8Array>): Promise<void> => {
        expect([...(await d.get(make([0x6b])))!]).toEqual([1, 2, 3]);
        expect([...(await d.get(make([0x61])))!]).toEqual([4, 5]);
        for (const k of [0x6c, 0x6d, 0x62]) expect(await d.get(make([k]))).toBeUndefined();
      };
      await check(db);
      await db.close();
      const { db: again } = await openOn<Uint8Array, Uint8Array>(mem, { fsync: 'os', keyEncoding: 'binary', valueEncoding: 'binary' });
      await check(again); // replayed from the WAL
      await again.close();
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('db.wal, stats() and reads after writes', () => {
  it('db.wal is a read-only view of the WAL: readFrom yields the records of the writes', async () => {
    const { db } = await fresh<string, unknown>({ valueEncoding: 'utf8' });
    expect(db.wal).not.toBeInstanceOf(Wal);
    await db.put('a', '1');
    await db.delete('b');
    await db.batch([
      { type: 'put', key: 'c', value: '3', ttlMs: 1000 },
      { type: 'del', key: 'd' },
    ]);
    const seen: string[] = [];
    for await (const { record } of db.wal.readFrom({ segmentId: 0, offset: 0 })) {
      seen.push(
        `${record.tombstone ? 'del' : 'put'} ${Buffer.from(record.key).toString()}${record.tombstone ? '' : `=${Buffer.from(record.value).toString()}`}${record.expiresAt ? ' ttl' : ''}`,
      );
    }
    expect(seen).toEqual(['put a=1', 'del b', 'put c=3 ttl', 'del d']);
    expect(db.wal.stats()).toEqual(db.stats().wal);
    // Each write, a batch too, is one WAL record holding a write batch (see wal-view.ts).
    expect(db.wal.stats().records).toBe(3);
    expect(db.wal.stats().batches).toBe(0);
    await db.close();
  });

  it('flush writes the memtable to a table and deletes the WAL segments it covered', async () => {
    const { mem, db } = await fresh<string, unknown>({ walSegmentSize: 4096, memtableSize: 1 << 20, valueEncoding: 'utf8' });
    for (let i = 0; i < 200; i++) await db.put(`k${i}`, 'v'.repeat(50));
    const before = walFiles(mem).length;
    expect(before).toBeGreaterThan(2);
    await db.flush();
    expect(db.stats().levels[0]!.tables).toBe(1);
    expect(db.stats().memtable.entries).toBe(0);
    expect(walFiles(mem).length).toBeLessThan(before);
    expect(db.stats().wal.segmentsDeleted).toBe(before - walFiles(mem).length);
    await db.close();
    const { db: again } = await openOn<string, unknown>(mem, { valueEncoding: 'utf8' });
    expect(again.stats().memtable.entries).toBe(0); // nothing left to replay
    expect((await scan(again)).length).toBe(200);
    await again.close();
  });

  it('stats() reports the documented fields', async () => {
    const { db } = await fresh<string, unknown>({ ...TINY, fsync: 'os', valueEncoding: 'utf8', l0CompactionTrigger: 1000 });
    const s0 = db.stats();
    expect(Object.keys(s0).sort()).toEqual(
      [
        'memtable',
        'frozenMemtables',
        'memory',
        'levels',
        'lastSequence',
        'blockCache',
        'writeStalls',
        'writeStallMs',
        'writeSlowdowns',
        'writeSlowdownMs',
        'flushes',
        'compactions',
        'trivialMoves',
        'compactionsRunning',
        'compactionDebtBytes',
        'compactionTime',
        'l0CompactionL1BytesRead',
        'userBytes',
        'flushBytes',
        'compactionBytesRead',
        'compactionBytesWritten',
        'writeAmplification',
        'backgroundError',
        'background',
        'wal',
        'walRecovery',
        'changes',
      ].sort(),
    );
    expect(s0.levels).toHaveLength(7);
    expect(s0.levels.every((l) => l.tables === 0 && l.bytes === 0)).toBe(true);
    expect(s0).toMatchObject({
      memtable: { bytes: 0, entries: 0 },
      frozenMemtables: 0,
      lastSequence: 0,
      flushes: 0,
      compactions: 0,
      userBytes: 0,
      writeAmplification: 0,
      backgroundError: undefined,
    });
    expect(s0.walRecovery).toMatchObject({ validRecords: 0, corruptionDetected: false });
    for (const f of ['hits', 'misses', 'usedBytes', 'capacityBytes'] as const) expect(typeof s0.blockCache[f]).toBe('number');

    await db.put('key', 'value');
    await db.batch([
      { type: 'put', key: 'k2', value: 'v2' },
      { type: 'del', key: 'k3' },
    ]);
    const s1 = db.stats();
    expect(s1.lastSequence).toBe(3);
    expect(s1.memtable.entries).toBe(3);
    expect(s1.memtable.bytes).toBeGreaterThan(0);
    expect(s1.userBytes).toBe('key'.length + 'value'.length + 'k2'.length + 'v2'.length + 'k3'.length);
    // One WAL record per write: the batch is one record (with its seqs, write-batch.ts).
    expect(s1.wal.records).toBe(2);

    await db.flush();
    for (let i = 0; i < 3; i++) {
      await db.put(`x${i}`, 'y'.repeat(100));
      await db.flush();
    }
    const s2 = db.stats();
    expect(s2.memtable.entries).toBe(0);
    expect(s2.flushes).toBe(4);
    expect(s2.levels[0]!.tables).toBe(4);
    expect(s2.levels[0]!.bytes).toBeGreaterThan(0);
    expect(s2.flushBytes).toBe(s2.levels[0]!.bytes);
    await db.compact();
    const s3 = db.stats();
    expect(s3.compactions).toBeGreaterThanOrEqual(1);
    expect(s3.levels[0]!.tables).toBe(0);
    expect(s3.compactionBytesRead).toBe(s2.levels[0]!.bytes);
    expect(s3.compactionBytesWritten).toBe(s3.levels.reduce((n, l) => n + l.bytes, 0));
    expect(s3.writeAmplification).toBeCloseTo((s3.flushBytes + s3.compactionBytesWritten) / s3.userBytes, 10);
    expect(s3.lastSequence).toBe(6);
    await db.close();
    const { db: again } = await openOn<string, unknown>(new MemFileSystem());
    expect(again.stats().walRecovery.validRecords).toBe(0);
    await again.close();
  });

  it('a read issued after a write resolved sees it, also with concurrent writers', async () => {
    const { db } = await fresh<string, number>({ ...TINY, fsync: { batchMs: 1 } });
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const k = `w${i % 50}-${i}`;
        await db.put(k, i);
        expect(await db.get(k)).toBe(i);
        await db.batch([
          { type: 'del', key: k },
          { type: 'put', key: `${k}/b`, value: -1 - i },
        ]);
        expect(await db.get(k)).toBeUndefined();
        expect(await db.get(`${k}/b`)).toBe(-1 - i);
      }),
    );
    expect((await scan(db)).length).toBe(200);
    await db.close();
  });
});

describe('WAL growth', () => {
  it('overwriting the same keys still flushes and collects WAL segments (the memtable stays small, the WAL does not)', async () => {
    const { mem, db } = await fresh<string, string>({ valueEncoding: 'utf8', memtableSize: 4096, walSegmentSize: 4096 });
    const value = 'v'.repeat(100);
    for (let i = 0; i < 3000; i++) await db.put(`k${i % 3}`, `${value}${i}`);
    await settle();
    expect(db.stats().memtable.entries).toBeLessThanOrEqual(3);
    expect(db.stats().flushes).toBeGreaterThan(5);
    // ~400 KB went through the WAL; what remains is bounded by a few memtables' worth.
    expect(walFiles(mem).length).toBeLessThan(12);
    expect(await db.get('k2')).toBe(`${value}2999`);
    await db.close();
  });
});
