/**
 * Adversarial review of issue #9's changes: limits, encodings, refusals, read-only opens, repair
 * and resources, tried as an adversary and as a new user would. Each test states a README claim
 * and tries to break it.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DB } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import { ClosedError, CorruptionError, DecodeError, InvalidConfigError, ReadOnlyError } from '../../src/errors.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { FaultFileSystem } from '../../src/fs/fault.js';
import { readCurrentManifest } from '../../src/db/manifest.js';
import { tableFileName } from '../../src/db/filenames.js';
import { encodeOptionsFile } from '../../src/db/options-file.js';
import { DIR, ProcessFs, openOn, render, scan, walFiles } from './helpers/harness.js';
import { spawnFixture } from '../support/child.js';

const REPO = path.resolve(import.meta.dirname, '../..');

const rejection = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe('size limits', () => {
  it('a key and a value of exactly maxKeySize / maxValueSize, with a TTL, in a batch: accepted, and survive reopen, flush and compaction', async () => {
    const mem = new MemFileSystem();
    const opts: DBOptions = {
      maxKeySize: 300,
      maxValueSize: 5000,
      valueEncoding: 'binary',
      keyEncoding: 'binary',
      walSegmentSize: 4096,
      fsync: 'os',
    };
    let { db } = await openOn<Buffer, Buffer>(mem, opts);
    const k = (c: number): Buffer => Buffer.alloc(300, c);
    const v = (c: number): Buffer => Buffer.alloc(5000, c);
    await db.batch([
      { type: 'put', key: k(1), value: v(1), ttlMs: 1e12 },
      { type: 'put', key: k(2), value: v(2) },
      { type: 'put', key: k(3), value: v(3), ttlMs: 1e12 },
    ]);
    await expect(db.put(Buffer.alloc(301), v(0))).rejects.toThrow(RangeError);
    await expect(db.put(k(4), Buffer.alloc(5001))).rejects.toThrow(RangeError);
    await db.close();
    ({ db } = await openOn<Buffer, Buffer>(mem, opts));
    expect(db.stats().walRecovery.corruptionDetected).toBe(false);
    expect((await scan(db)).length).toBe(3);
    await db.compact();
    await db.close();
    ({ db } = await openOn<Buffer, Buffer>(mem, opts));
    expect((await db.get(k(3)))?.equals(v(3))).toBe(true);
    await db.close();
  });

  it('maxValueSize: 0 accepts only empty values', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { maxValueSize: 0, valueEncoding: 'utf8' });
    await db.put('a', '');
    await expect(db.put('b', 'x')).rejects.toThrow(RangeError);
    expect(await db.get('a')).toBe('');
    await db.close();
  });

  // README: "lowering them limits new writes only". A key stored under a larger maxKeySize must
  // still be readable (get) and deletable after a reopen with a lower one.
  it('a key stored under a larger maxKeySize can still be read with get after a reopen with a lower maxKeySize', async () => {
    const mem = new MemFileSystem();
    let { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8' });
    const long = 'k'.repeat(500);
    await db.put(long, 'value');
    await db.close();
    ({ db } = await openOn<string, string>(mem, { valueEncoding: 'utf8', maxKeySize: 100 }));
    // The iterator returns it...
    expect((await scan(db)).map(([k]) => k)).toEqual([long]);
    // ...but get of the very key the iterator returned is a RangeError.
    const got = await db.get(long).catch((e: unknown) => e);
    await db.close();
    expect(got).toBe('value');
  });

  it('a key stored under a larger maxKeySize can still be deleted after a reopen with a lower maxKeySize', async () => {
    const mem = new MemFileSystem();
    let { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8' });
    const long = 'k'.repeat(500);
    await db.put(long, 'value');
    await db.close();
    ({ db } = await openOn<string, string>(mem, { valueEncoding: 'utf8', maxKeySize: 100 }));
    const err = await rejection(db.delete(long));
    const left = (await scan(db)).length;
    await db.close();
    expect(err).toBeUndefined();
    expect(left).toBe(0);
  });

  it('values over a lowered maxValueSize: read, replayed, flushed and compacted fine', async () => {
    const mem = new MemFileSystem();
    let { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8', memtableSize: 1 << 20, walSegmentSize: 4096 });
    for (let i = 0; i < 20; i++) await db.put(`k${i}`, String(i).repeat(3000));
    await db.flush();
    for (let i = 20; i < 40; i++) await db.put(`k${i}`, String(i).repeat(3000));
    await db.close();
    ({ db } = await openOn<string, string>(mem, {
      valueEncoding: 'utf8',
      maxValueSize: 10,
      memtableSize: 4096,
      walSegmentSize: 4096,
      l0CompactionTrigger: 2,
    }));
    expect((await scan(db)).length).toBe(40);
    await db.compact();
    expect((await db.get('k39'))?.length).toBe(6000);
    await db.close();
  });
});

describe('encodings', () => {
  const tricky = ['\ufeff', '\ufeffbom', 'a\u0000b', '\u0000', '\ufffd', 'x\ufffdy', '\uffff', '\u{10ffff}', '', 'é', 'e\u0301'];

  for (const valueEncoding of ['utf8', 'json', 'msgpack'] as const) {
    it(`keys and ${valueEncoding} values with a BOM, NUL, U+FFFD, U+FFFF, U+10FFFF round-trip through memtable, WAL replay and tables`, async () => {
      const mem = new MemFileSystem();
      let { db } = await openOn<string, unknown>(mem, { valueEncoding });
      const keys = tricky.filter((k) => k !== '');
      for (const k of keys) await db.put(k, `v${k}`);
      // As a Uint8Array too: the same key.
      await db.put(Buffer.from('\ufffdz', 'utf8'), 'bytes');
      const check = async (): Promise<void> => {
        for (const k of keys) expect(await db.get(k), JSON.stringify(k)).toBe(`v${k}`);
        const got = await scan(db);
        expect(got.map(([k]) => k).sort()).toEqual([...keys, '\ufffdz'].sort());
        for (const [k, v] of got) expect(await db.get(k)).toEqual(v);
        expect(await db.get('\ufffdz')).toBe('bytes');
      };
      await check();
      await db.close();
      ({ db } = await openOn<string, unknown>(mem, { valueEncoding }));
      await check();
      await db.compact();
      await check();
      await db.close();
    });
  }

  it("the empty string key under 'utf8'", async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8' });
    const err = await rejection(db.put('', 'empty'));
    if (err === undefined) {
      expect(await db.get('')).toBe('empty');
      expect(await scan(db)).toEqual([['', 'empty']]);
    } else {
      expect(err).toBeInstanceOf(TypeError);
    }
    await db.close();
  });

  it('a value that does not decode is a DecodeError carrying its key, from get and from the iterator (a 0.1.0 DB reopened with another valueEncoding)', async () => {
    const mem = new MemFileSystem();
    let { db } = await openOn<string, Buffer>(mem, { valueEncoding: 'binary' });
    await db.put('good', Buffer.from([0x01])); // msgpack 1, utf8 "\x01"
    await db.put('bad', Buffer.from([0xc1])); // never used in msgpack; invalid UTF-8
    await db.close();
    await mem.unlink(`${DIR}/OPTIONS`); // as if 0.1.0 made it: the next open adopts its options
    for (const valueEncoding of ['msgpack', 'utf8', 'json'] as const) {
      const m = mem.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
      ({ db } = (await openOn(m, { valueEncoding })) as unknown as { db: DB<string, Buffer> });
      const e1 = await rejection(db.get('bad'));
      expect(e1, valueEncoding).toBeInstanceOf(DecodeError);
      expect(Buffer.from((e1 as DecodeError).key).toString()).toBe('bad');
      const it = db.iterator();
      const e2 = await rejection(it.all());
      expect(e2, valueEncoding).toBeInstanceOf(DecodeError);
      // The iterator is released after the error: next() is done or ClosedError, nothing else.
      const after = await it.next().then(
        (v) => v,
        (e: unknown) => e,
      );
      expect(after === undefined || after instanceof ClosedError, String(after)).toBe(true);
      // A bounded iterator that skips the bad key works (0x01 is no JSON text).
      if (valueEncoding !== 'json') expect((await scan(db, { gt: 'bad' })).map(([k]) => k)).toEqual(['good']);
      await db.close();
    }
  });

  it('msgpack bytes that decode to something the encoding never writes are DecodeErrors, not wrong values', async () => {
    const foreign: [string, number[]][] = [
      ['0xc1 (never used)', [0xc1]],
      ['invalid UTF-8 in a str', [0xa2, 0xff, 0xfe]],
      ['invalid UTF-8 in a map key', [0x81, 0xa1, 0xff, 0x01]],
      ['invalid UTF-8 inside an array', [0x92, 0x01, 0xa1, 0x80]],
      ['uint64 past 2^53', [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
      ['ext 0 (msgpackr: undefined)', [0xd4, 0x00, 0x00]],
      ['an invalid timestamp', [0xd4, 0xff, 0x00]],
      ['0xc1 nested in a map', [0x81, 0xa1, 0x61, 0xc1]],
    ];
    const valid: [string, unknown][] = [
      ['U+FFFD stored on purpose', 'a\ufffdb'],
      [
        'U+FFFD in a nested key and value, with bytes and a Date',
        { 'k\ufffd': ['\ufffd', Uint8Array.of(0xff, 0xfe), new Date(1_700_000_000_123)], n: 2 ** 40, f: 1.5 },
      ],
    ];
    const mem = new MemFileSystem();
    const { db } = await openOn<string, Buffer>(mem, { valueEncoding: 'binary' });
    for (const [name, bytes] of foreign) await db.put(name, Buffer.from(bytes));
    await db.close();
    await mem.unlink(`${DIR}/OPTIONS`); // as if 0.1.0 made it: the next open adopts msgpack
    const m = await openOn<string, unknown>(mem, { valueEncoding: 'msgpack' });
    for (const [name] of foreign) {
      const got = await m.db.get(name).then(
        (v) => ({ value: v }),
        (e: unknown) => e,
      );
      expect(got, name).toBeInstanceOf(DecodeError);
    }
    for (const [name, v] of valid) await m.db.put(name, v as never);
    await m.db.compact();
    for (const [name, v] of valid) expect(render(await m.db.get(name)), name).toBe(render(v));
    await m.db.close();
  });

  it('a keyEncoding mismatch is refused before anything is written, and the DB still opens with the right one', async () => {
    const mem = new MemFileSystem();
    let { db } = await openOn<Buffer, string>(mem, { keyEncoding: 'binary', valueEncoding: 'utf8' });
    await db.put(Buffer.from([0xff, 0x00]), 'x');
    await db.close();
    const before = mem.listFiles().map((f) => `${f}:${Buffer.from(mem.readFileBytes(f)).toString('hex')}`);
    const err = await rejection(openOn(mem, { keyEncoding: 'utf8', valueEncoding: 'utf8' }));
    expect(err).toBeInstanceOf(InvalidConfigError);
    expect(err).toMatchObject({ option: 'keyEncoding' });
    const err2 = await rejection(openOn(mem, { keyEncoding: 'utf8', valueEncoding: 'utf8', readOnly: true }));
    expect(err2).toBeInstanceOf(InvalidConfigError);
    expect(mem.listFiles().map((f) => `${f}:${Buffer.from(mem.readFileBytes(f)).toString('hex')}`)).toEqual(before);
    ({ db } = await openOn<Buffer, string>(mem, { keyEncoding: 'binary', valueEncoding: 'utf8' }));
    expect(await db.get(Buffer.from([0xff, 0x00]))).toBe('x');
    await db.close();
  });
});

describe('refusals happen before the WAL append', () => {
  /** Records in the WAL, through the DB's read-only view. */
  async function walRecords(db: DB<string, unknown>): Promise<number> {
    let n = 0;
    for await (const _ of db.wal.readFrom({ segmentId: 0, offset: 0 })) n++;
    return n;
  }

  it('every bad write leaves the WAL as it was', async () => {
    const mem = new MemFileSystem();
    let now: unknown = 1_700_000_000_000;
    const { db } = await openOn<string, unknown>(mem, { maxKeySize: 10, maxValueSize: 100, clock: () => now as number });
    await db.put('ok', 1);
    const base = await walRecords(db);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const bad: [string, () => Promise<void>][] = [
      ['key over maxKeySize', () => db.put('k'.repeat(11), 1)],
      ['value over maxValueSize', () => db.put('k', 'x'.repeat(200))],
      ['Map value', () => db.put('k', new Map())],
      ['undefined value', () => db.put('k', undefined)],
      ['circular value', () => db.put('k', circular)],
      ['lone surrogate key', () => db.put('\ud800', 1)],
      ['invalid UTF-8 Uint8Array key', () => db.put(Uint8Array.of(0xff), 1)],
      ['number key', () => db.put(5 as unknown as string, 1)],
      ['ttlMs 0', () => db.put('k', 1, { ttlMs: 0 })],
      ['ttlMs NaN', () => db.put('k', 1, { ttlMs: NaN })],
      ['ttlMs string', () => db.put('k', 1, { ttlMs: '5' as unknown as number })],
      ['ttlMs MAX_SAFE_INTEGER', () => db.put('k', 1, { ttlMs: Number.MAX_SAFE_INTEGER })],
      ['sync not boolean', () => db.put('k', 1, { sync: 1 as unknown as boolean })],
      [
        'batch: bad op in the middle',
        () =>
          db.batch([
            { type: 'put', key: 'a', value: 1 },
            { type: 'put', key: 'b', value: () => 1 },
            { type: 'del', key: 'c' },
          ]),
      ],
      ['batch: unknown type', () => db.batch([{ type: 'put', key: 'a', value: 1 }, { type: 'merge' } as never])],
      ['batch: null op', () => db.batch([{ type: 'put', key: 'a', value: 1 }, null as never])],
      [
        'batch: huge ttl in the middle',
        () =>
          db.batch([
            { type: 'put', key: 'a', value: 1 },
            { type: 'put', key: 'b', value: 1, ttlMs: 2 ** 60 },
          ]),
      ],
      ['batch: a string, not an array', () => db.batch('abc' as never)],
      [
        'batch: del with invalid key',
        () =>
          db.batch([
            { type: 'put', key: 'a', value: 1 },
            { type: 'del', key: {} as never },
          ]),
      ],
      ['delete of a key over maxKeySize', () => db.delete('k'.repeat(11))],
      ['-0 value', () => db.put('k', -0)],
    ];
    for (const [what, write] of bad) {
      const err = await rejection(write());
      expect(err, what).toBeInstanceOf(Error);
      expect(err instanceof TypeError || err instanceof RangeError, `${what}: ${String(err)}`).toBe(true);
    }
    for (const t of [NaN, -1, 2 ** 53, '1', undefined, Infinity]) {
      now = t;
      expect(await rejection(db.put('k', 1, { ttlMs: 1000 })), `clock ${String(t)}`).toBeInstanceOf(Error);
    }
    now = 1_700_000_000_000;
    expect(await walRecords(db)).toBe(base);
    expect((await scan(db)).map(([k]) => k)).toEqual(['ok']);
    await db.close();
  });

  it('a batch with a sparse array or a getter that throws: refused, nothing written', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, unknown>(mem);
    // biome-ignore lint/suspicious/noSparseArray: the hole at index 1 is the input under test (batch must refuse it)
    const sparse = [{ type: 'put', key: 'a', value: 1 }, , { type: 'put', key: 'c', value: 3 }] as never;
    expect(await rejection(db.batch(sparse))).toBeInstanceOf(TypeError);
    let reads = 0;
    const sneaky = {
      type: 'put',
      key: 'x',
      get value() {
        reads++;
        if (reads > 1) throw new Error('read twice');
        return 1;
      },
    };
    await db.batch([sneaky as never]).catch(() => undefined);
    expect(reads).toBe(1);
    expect((await scan(db)).map(([k]) => k).filter((k) => k !== 'x')).toEqual([]);
    await db.close();
  });

  it('a key that changes after put resolved/was called does not change what is stored', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<Buffer, Buffer>(mem, { keyEncoding: 'binary', valueEncoding: 'binary' });
    const k = Buffer.from('key1');
    const v = Buffer.from('val1');
    const p = db.put(k, v);
    k[3] = 0x32;
    v[3] = 0x32;
    await p;
    expect((await db.get(Buffer.from('key1')))?.toString()).toBe('val1');
    expect(await db.get(Buffer.from('key2'))).toBeUndefined();
    await db.close();
  });
});

describe('papercuts a new user meets', () => {
  // `ttl` for `ttlMs`: the key silently never expires. DB.open and iterator() refuse unknown
  // option names (issue #9, 7 and 8); put/delete/batch options and batch operations do not.
  it('a misspelt write option (ttl for ttlMs, synch for sync) is refused, not ignored', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8' });
    const errors = [
      await rejection(db.put('a', 'b', { ttl: 1000 } as never)),
      await rejection(db.put('a', 'b', { synch: true } as never)),
      await rejection(db.delete('a', { synch: true } as never)),
      await rejection(db.batch([{ type: 'put', key: 'a', value: 'b', ttl: 1000 } as never])),
      await rejection(db.batch([{ type: 'put', key: 'a', value: 'b' }], { synch: true } as never)),
    ];
    await db.close();
    for (const e of errors) expect(e).toBeInstanceOf(TypeError);
  });

  it('a batch larger than a WAL segment: atomic, all there after reopen, flush and a power loss', async () => {
    const mem = new MemFileSystem();
    const opts: DBOptions = { valueEncoding: 'utf8', walSegmentSize: 4096, memtableSize: 1 << 20, fsync: 'os' };
    let { db } = await openOn<string, string>(mem, opts);
    await db.put('before', 'x', { sync: true });
    const ops = Array.from({ length: 40 }, (_, i) => ({
      type: 'put' as const,
      key: `b${String(i).padStart(2, '0')}`,
      value: String(i).repeat(400),
    }));
    await db.batch(ops, { sync: true });
    const image = mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' });
    await db.close();
    for (const m of [mem, image]) {
      ({ db } = await openOn<string, string>(m, opts));
      expect((await scan(db)).length).toBe(41);
      await db.flush();
      await db.close();
      ({ db } = await openOn<string, string>(m, opts));
      expect((await scan(db)).length).toBe(41);
      await db.close();
    }
  });
});

describe('odd but valid input', () => {
  it('a batch that writes one key several times: the last op wins, in the memtable, after a flush and after a replay', async () => {
    const mem = new MemFileSystem();
    const opts: DBOptions = { valueEncoding: 'utf8', memtableSize: 1 << 20 };
    let { db } = await openOn<string, string>(mem, opts);
    await db.batch([
      { type: 'put', key: 'a', value: '1' },
      { type: 'del', key: 'a' },
      { type: 'put', key: 'a', value: '3' },
      { type: 'put', key: 'b', value: '1' },
      { type: 'del', key: 'b' },
    ]);
    expect(await scan(db)).toEqual([['a', '3']]);
    await db.close();
    ({ db } = await openOn<string, string>(mem, opts));
    expect(await scan(db)).toEqual([['a', '3']]);
    await db.flush();
    expect(await scan(db)).toEqual([['a', '3']]);
    await db.close();
  });

  it('a meter that throws everywhere changes nothing: writes, flushes, compactions and close work', async () => {
    const mem = new MemFileSystem();
    const boom = (): never => {
      throw new Error('meter boom');
    };
    const meter = { counter: boom, histogram: boom, event: boom, track: boom };
    const { db } = await openOn<string, string>(mem, {
      valueEncoding: 'utf8',
      memtableSize: 1024,
      l0CompactionTrigger: 2,
      l0SlowdownTrigger: 2,
      l0StopTrigger: 3,
      maxFrozenMemtables: 1,
      meter: meter as never,
    });
    for (let i = 0; i < 300; i++) await db.put(`k${i}`, 'v'.repeat(50));
    await db.compact();
    expect(db.stats().backgroundError).toBeUndefined();
    expect((await scan(db)).length).toBe(300);
    await db.close();
  });

  it('iterator options at their edges', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8' });
    for (const k of ['a', 'b', 'c']) await db.put(k, k);
    expect(await scan(db, { gt: undefined, lt: undefined, reverse: undefined, limit: undefined })).toHaveLength(3);
    expect(await scan(db, { limit: 0 })).toHaveLength(0);
    expect(await scan(db, { limit: Number.MAX_SAFE_INTEGER })).toHaveLength(3);
    expect(await scan(db, { limit: -1, reverse: true })).toEqual([
      ['c', 'c'],
      ['b', 'b'],
      ['a', 'a'],
    ]);
    expect(await scan(db, { gte: 'c', lte: 'a' })).toEqual([]);
    expect(await scan(db, { gt: 'a', gte: 'a' })).toHaveLength(3); // the inclusive bound wins
    expect(await db.iterator({ lt: Uint8Array.of(0xff) }).all()).toHaveLength(3); // any bytes as a bound
    expect(() => db.iterator({ limit: 1.5 })).toThrow(RangeError);
    expect(() => db.iterator({ limit: -2 })).toThrow(RangeError);
    expect(() => db.iterator({ limit: NaN })).toThrow(RangeError);
    expect(() => db.iterator({ gt: null as never })).toThrow(TypeError);
    await db.close();
  });
});

describe('close and iterators', () => {
  it('close while an iterator is mid-way: next() rejects with ClosedError, every time', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, {
      valueEncoding: 'utf8',
      memtableSize: 4096,
      walSegmentSize: 4096,
      l0CompactionTrigger: 2,
    });
    for (let i = 0; i < 500; i++) await db.put(`k${String(i).padStart(4, '0')}`, 'v'.repeat(50));
    await db.flush();
    const it = db.iterator();
    const unstarted = db.iterator();
    for (let i = 0; i < 10; i++) await it.next();
    await db.close();
    expect(await rejection(it.next())).toBeInstanceOf(ClosedError);
    expect(await rejection(it.next())).toBeInstanceOf(ClosedError);
    expect(await rejection(unstarted.next())).toBeInstanceOf(ClosedError);
    expect(() => db.iterator()).toThrow(ClosedError);
    await expect(db.get('k0001')).rejects.toBeInstanceOf(ClosedError);
  });

  // README: close() "waits for in-flight writes". A write called before close() that is held by
  // a write stall (L0 slowdown, or frozen memtables awaiting flush) is rejected instead: with
  // ClosedError "the WAL is closed" (slowdown: it reaches the WAL after close closed it) or "the
  // database is closed" (stop: close stops the flush it waits for). Nothing is lost (it was never
  // acknowledged), but close does not wait for it.
  for (const mode of ['slowdown', 'stop'] as const) {
    it(`a write called before close() but held by a write stall (${mode}) completes`, async () => {
      const mem = new MemFileSystem();
      const opts: DBOptions =
        mode === 'slowdown'
          ? { valueEncoding: 'utf8', memtableSize: 1024, l0CompactionTrigger: 2, l0SlowdownTrigger: 2, l0StopTrigger: 1000 }
          : { valueEncoding: 'utf8', memtableSize: 1024, maxFrozenMemtables: 1 };
      const { db } = await openOn<string, string>(mem, opts);
      let i = 0;
      if (mode === 'slowdown') while (db.stats().levels[0]!.tables < 3) await db.put(`a${i++}`, 'v'.repeat(60));
      else while (db.stats().frozenMemtables < 1) await db.put(`a${i++}`, 'v'.repeat(60));
      const late = db.put('late', 'x');
      const closing = db.close();
      const err = await rejection(late);
      await closing;
      expect(err).toBeUndefined();
    });
  }

  it('reads after close() was called but before it finished', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8' });
    await db.put('a', 'b');
    const closing = db.close();
    const r = await db.get('a').catch((e: unknown) => e);
    await closing;
    expect(r === 'b' || r instanceof ClosedError).toBe(true);
  });
});

describe('repair', () => {
  async function damagedDB(): Promise<{ mem: MemFileSystem; damage: () => Promise<void> }> {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8', compression: 'none', memtableSize: 1 << 20 });
    for (let i = 0; i < 100; i++) await db.put(`a${String(i).padStart(3, '0')}`, 'x'.repeat(100));
    await db.flush();
    for (let i = 0; i < 100; i++) await db.put(`b${String(i).padStart(3, '0')}`, 'y'.repeat(100));
    await db.flush();
    for (let i = 0; i < 10; i++) await db.put(`c${i}`, 'unflushed');
    await db.close();
    const damage = async (): Promise<void> => {
      const current = (await readCurrentManifest(mem, DIR))!;
      const t = current.state.levels.flat()[0]!;
      const file = `${DIR}/${tableFileName(t.fileNumber)}`;
      const bytes = mem.readFileBytes(file);
      bytes[300]! ^= 0x55;
      mem.writeFileBytes(file, bytes);
    };
    return { mem, damage };
  }

  it('repair, damage again, repair again (quarantine/ exists already): both succeed, nothing from the WAL lost', async () => {
    const { mem, damage } = await damagedDB();
    await damage();
    const r1 = await DB.repair(DIR, { fs: new ProcessFs(mem) });
    expect(r1.tablesDamaged.length).toBe(1);
    await damage();
    const r2 = await DB.repair(DIR, { fs: new ProcessFs(mem) });
    expect(r2.tablesDamaged.length).toBe(1);
    const r3 = await DB.repair(DIR, { fs: new ProcessFs(mem) });
    expect(r3.changed).toBe(false);
    const { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8' });
    for (let i = 0; i < 10; i++) expect(await db.get(`c${i}`)).toBe('unflushed');
    await db.compact();
    await db.put('z', 'z');
    await db.close();
    expect(mem.listFiles().filter((f) => f.includes('quarantine')).length).toBe(2);
  });

  it('repair while a read-only handle is open: the handle keeps reading its snapshot; repair succeeds', async () => {
    const { mem, damage } = await damagedDB();
    await damage();
    const { db: reader } = await openOn<string, string>(mem, { valueEncoding: 'utf8', readOnly: true });
    const r = await DB.repair(DIR, { fs: new ProcessFs(mem) });
    expect(r.tablesDamaged.length).toBe(1);
    expect(await reader.get('c3')).toBe('unflushed');
    // Keys in undamaged blocks still read from the handle's (old) tables.
    expect(await reader.get('b099')).toBe('y'.repeat(100));
    await reader.close();
  });

  it('CURRENT deleted by hand, data only in the WAL (after GC) and in tables: open refuses, repair rebuilds, nothing lost', async () => {
    const mem = new MemFileSystem();
    const opts: DBOptions = { valueEncoding: 'utf8', walSegmentSize: 4096, memtableSize: 8192 };
    let { db } = await openOn<string, string>(mem, opts);
    for (let i = 0; i < 300; i++) await db.put(`k${String(i).padStart(3, '0')}`, `v${i}`.padEnd(60, '.'));
    await db.close();
    expect(walFiles(mem).some((f) => f.endsWith('0000000000000000.wal'))).toBe(false); // GC ran
    await mem.unlink(`${DIR}/CURRENT`);
    expect(await rejection(openOn(mem, opts))).toBeInstanceOf(CorruptionError);
    const r = await DB.repair(DIR, { fs: new ProcessFs(mem) });
    expect(r.manifestRebuilt).toBe(true);
    ({ db } = await openOn<string, string>(mem, opts));
    expect((await scan(db)).length).toBe(300);
    await db.close();
  });

  it('CURRENT deleted by hand, nothing ever flushed: repair rebuilds from the WAL alone', async () => {
    const mem = new MemFileSystem();
    const opts: DBOptions = { valueEncoding: 'utf8', walSegmentSize: 4096, memtableSize: 1 << 20 };
    let { db } = await openOn<string, string>(mem, opts);
    for (let i = 0; i < 100; i++) await db.put(`k${String(i).padStart(3, '0')}`, `v${i}`.padEnd(60, '.'));
    await db.close();
    await mem.unlink(`${DIR}/CURRENT`);
    expect(await rejection(openOn(mem, opts))).toBeInstanceOf(CorruptionError);
    const r = await DB.repair(DIR, { fs: new ProcessFs(mem) });
    expect(r.manifestRebuilt).toBe(true);
    ({ db } = await openOn<string, string>(mem, opts));
    expect((await scan(db)).length).toBe(100);
    await db.close();
  });

  it('repair refuses unknown option names and an fs of the wrong shape with InvalidConfigError, before touching the disk', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn(mem);
    await db.close();
    const fs = new ProcessFs(mem);
    const e1 = await rejection(DB.repair(DIR, { fs, compresion: 'none' } as never));
    expect(e1).toBeInstanceOf(InvalidConfigError);
    expect(String(e1)).toContain('compresion');
    const e2 = await rejection(DB.repair(DIR, { fs: {} as never }));
    expect(e2).toBeInstanceOf(InvalidConfigError);
    expect(String(e2)).toMatch(/fs/);
    const e3 = await rejection(DB.repair(DIR, { fs, compression: 'zstd' } as never));
    expect(e3).toBeInstanceOf(InvalidConfigError);
    expect(fs.mutatingOps).toBe(0);
  });

  it('repair of a DB that is not one (a directory of other files) changes nothing', async () => {
    const mem = new MemFileSystem();
    await mem.mkdir(DIR);
    mem.writeFileBytes(`${DIR}/notes.txt`, Buffer.from('hello'));
    const r = await DB.repair(DIR, { fs: new ProcessFs(mem) });
    expect(r.changed).toBe(false);
    expect(mem.listFiles()).toEqual([`${DIR}/notes.txt`]);
  });
});

describe('read-only opens', () => {
  it('of a damaged OPTIONS: CorruptionError naming it, nothing written', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn(mem);
    await db.put('a', 1);
    await db.close();
    const bytes = mem.readFileBytes(`${DIR}/OPTIONS`);
    bytes[20]! ^= 1;
    mem.writeFileBytes(`${DIR}/OPTIONS`, bytes);
    const before = mem.listFiles().map((f) => `${f}:${Buffer.from(mem.readFileBytes(f)).toString('hex')}`);
    const err = await rejection(openOn(mem, { readOnly: true }));
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).file).toBe(`${DIR}/OPTIONS`);
    expect(mem.listFiles().map((f) => `${f}:${Buffer.from(mem.readFileBytes(f)).toString('hex')}`)).toEqual(before);
  });

  it('an OPTIONS file with a valid checksum but limits no DB.open accepts: CorruptionError naming it, also read-only', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn(mem);
    await db.close();
    mem.writeFileBytes(
      `${DIR}/OPTIONS`,
      encodeOptionsFile({ formatVersion: 1, keyEncoding: 'utf8', valueEncoding: 'msgpack', maxKeySize: 2 ** 40, maxValueSize: 100 }),
    );
    for (const readOnly of [false, true]) {
      const err = await rejection(openOn(mem, { readOnly }));
      expect(err, String(err)).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file).toBe(`${DIR}/OPTIONS`);
    }
  });

  it('of a 0.1.0 DB (no OPTIONS, no SEGMENTS): reads everything, writes nothing', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8', memtableSize: 4096, walSegmentSize: 4096 });
    for (let i = 0; i < 200; i++) await db.put(`k${String(i).padStart(3, '0')}`, `v${i}`.repeat(10));
    await db.close();
    await mem.unlink(`${DIR}/OPTIONS`);
    await mem.unlink(`${DIR}/wal/SEGMENTS`);
    const before = mem.listFiles().map((f) => `${f}:${Buffer.from(mem.readFileBytes(f)).toString('hex')}`);
    const { db: r } = await openOn<string, string>(mem, { valueEncoding: 'utf8', readOnly: true, memtableSize: 1024 });
    expect((await scan(r)).length).toBe(200);
    expect(await rejection(r.put('x', 'y'))).toBeInstanceOf(ReadOnlyError);
    await r.close();
    expect(mem.listFiles().map((f) => `${f}:${Buffer.from(mem.readFileBytes(f)).toString('hex')}`)).toEqual(before);
  });

  // A 0.1.0 DB has no record of the limits it was written with. Adopting the limits of the first
  // open that finds it makes WAL recovery drop a larger record at the tail as a torn write:
  // an acknowledged, synced write is silently gone.
  it('a 0.1.0 DB opened with a lower maxValueSize than it was written with keeps its acknowledged tail record (or refuses loudly)', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8', fsync: 'always' });
    await db.put('a', 'small');
    await db.put('big', 'x'.repeat(5000)); // acknowledged, synced, at the WAL's tail
    await db.close();
    await mem.unlink(`${DIR}/OPTIONS`);
    await mem.unlink(`${DIR}/wal/SEGMENTS`);
    const opened = await openOn<string, string>(mem, { valueEncoding: 'utf8', maxKeySize: 16, maxValueSize: 1000 }).then(
      async ({ db: d }) => {
        const keys = (await scan(d)).map(([k]) => k);
        const recovery = d.stats().walRecovery;
        await d.close();
        return { keys, recovery };
      },
      (e: unknown) => e,
    );
    if (opened instanceof Error) return; // refused loudly: fine
    const { keys, recovery } = opened as { keys: string[]; recovery: { corruptionDetected: boolean } };
    expect({ keys, corruptionDetected: recovery.corruptionDetected }).toEqual({ keys: ['a', 'big'], corruptionDetected: false });
  });

  // A power loss in the middle of the 0.1.0 adoption (after the WAL wrote SEGMENTS.tmp, before
  // it renamed it): the DB is still a 0.1.0 DB (no OPTIONS), but it no longer opens.
  it('a 0.1.0 DB whose adoption was cut by a power loss (SEGMENTS.tmp left, no SEGMENTS, no OPTIONS) opens strict', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8', walSegmentSize: 4096 });
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, 'v'.repeat(100));
    await db.close();
    await mem.unlink(`${DIR}/OPTIONS`);
    await mem.unlink(`${DIR}/wal/SEGMENTS`);
    let image: MemFileSystem | undefined;
    const fs = new FaultFileSystem(new ProcessFs(mem), (op) => {
      if (!image && op.kind === 'rename' && op.path.endsWith('SEGMENTS.tmp'))
        image = mem.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
      return undefined;
    });
    const d = await DB.open(DIR, { fs, valueEncoding: 'utf8', walSegmentSize: 4096 });
    await d.close();
    expect(image!.listFiles()).toContain(`${DIR}/wal/SEGMENTS.tmp`);
    expect(image!.listFiles()).not.toContain(`${DIR}/wal/SEGMENTS`);
    const { db: again } = await openOn<string, string>(image!, { valueEncoding: 'utf8', walSegmentSize: 4096 });
    expect((await scan(again)).length).toBe(50);
    await again.close();
  });
});

describe('read-only opens racing a writer that reopens with a raised maxValueSize', () => {
  /**
   * The reader reads OPTIONS (limits 16 + 1000), then, before it scans the WAL, a writer opens with
   * maxValueSize 5000 (OPTIONS rewritten first, as it must), writes a 3000-byte value and a small
   * one, acknowledged and synced. The reader then scans the WAL with the old limit.
   */
  async function race(): Promise<{ result: unknown; keys?: string[] }> {
    const mem = new MemFileSystem();
    {
      const { db } = await openOn<string, string>(mem, { valueEncoding: 'utf8', maxKeySize: 16, maxValueSize: 1000 });
      await db.put('a', 'small');
      await db.close();
    }
    let pause: (() => void) | undefined;
    const paused = new Promise<void>((resolve) => (pause = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = false;
    const readerFs = new Proxy(mem, {
      get(target, name) {
        const f = Reflect.get(target, name) as (...a: unknown[]) => unknown;
        if (name !== 'readdir' && name !== 'open') return typeof f === 'function' ? f.bind(target) : f;
        return async (p: string, ...rest: unknown[]) => {
          if (!held && p.startsWith(`${DIR}/wal`)) {
            held = true;
            pause!();
            await released;
          }
          return f.call(target, p, ...rest);
        };
      },
    });
    const opening = DB.open<string, string>(DIR, {
      fs: readerFs,
      valueEncoding: 'utf8',
      maxKeySize: 16,
      maxValueSize: 1000,
      readOnly: true,
    }).then(
      async (db) => {
        const keys = (await scan(db)).map(([k]) => k);
        await db.close();
        return { result: 'opened', keys };
      },
      (e: unknown) => ({ result: e }),
    );
    await paused;
    const { db: writer } = await openOn<string, string>(mem, { valueEncoding: 'utf8', maxKeySize: 16, maxValueSize: 5000 });
    await writer.put('big', 'x'.repeat(3000), { sync: true });
    await writer.put('z', 'after', { sync: true });
    release();
    const out = await opening;
    await writer.close();
    return out;
  }

  // Today: CorruptionError "record length 3008 over the limit 1080 (a valid record follows)". The
  // read-only open retries only when CURRENT changed; OPTIONS changed instead.
  it('never a false CorruptionError: the reader sees a state that existed', async () => {
    const out = await race();
    expect(out.result, String(out.result)).toBe('opened');
    // Any prefix of the writer's writes is a state that existed.
    expect([['a'], ['a', 'big'], ['a', 'big', 'z']].map((k) => JSON.stringify(k))).toContain(JSON.stringify(out.keys));
  });
});

describe('resources on the real file system', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sediment-adv-'));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  const fds = async (): Promise<number> => (await fsp.readdir('/proc/self/fd')).length;

  it('200 open/close cycles (writes, flushes, iterators left unfinished, read-only handles) leak no file descriptor', {
    timeout: 120_000,
  }, async () => {
    const opts: DBOptions = { valueEncoding: 'utf8', memtableSize: 4096, walSegmentSize: 4096, l0CompactionTrigger: 2 };
    {
      const db = await DB.open<string, string>(dir, opts);
      for (let i = 0; i < 300; i++) await db.put(`k${String(i).padStart(4, '0')}`, 'x'.repeat(60));
      await db.close();
    }
    const start = await fds();
    for (let round = 0; round < 200; round++) {
      const db = await DB.open<string, string>(dir, opts);
      await db.put(`r${round}`, 'y'.repeat(100));
      const it = db.iterator();
      await it.next();
      if (round % 10 === 0) await db.flush();
      if (round % 50 === 0) await db.compact();
      await db.close();
      if (round % 4 === 0) {
        const ro = await DB.open<string, string>(dir, { ...opts, readOnly: true });
        const it2 = ro.iterator();
        await it2.next();
        await ro.close();
      }
      // Failed opens release what they opened too.
      if (round % 20 === 0) await rejection(DB.open(dir, { ...opts, valueEncoding: 'json' }));
    }
    const end = await fds();
    if (process.env.DB_TEST_VERBOSE) console.log(`file descriptors: ${start} before, ${end} after 200 cycles`);
    expect(end - start).toBeLessThanOrEqual(2);
  });

  for (const [flushEvery, compactEvery] of [
    [5, 17],
    [1, 3],
  ] as const) {
    it(`read-only opens beside a writer in another process (flush every ${flushEvery}, compact every ${compactEvery}): never an error, never a state that did not exist`, {
      timeout: 120_000,
    }, async () => {
      const N = 50;
      const opts: DBOptions = { valueEncoding: 'utf8', memtableSize: 4096, walSegmentSize: 4096 };
      {
        const db = await DB.open<string, string>(dir, opts);
        await db.batch([
          ...Array.from({ length: N }, (_, i) => ({
            type: 'put' as const,
            key: `a${String(i).padStart(3, '0')}`,
            value: 'g0'.padEnd(80, '.'),
          })),
          { type: 'put', key: 'counter', value: '0' },
        ]);
        await db.close();
      }
      const live = new Set<import('node:child_process').ChildProcess>();
      const w = spawnFixture(
        path.join(REPO, 'test/fixtures/adv-ro-writer.ts'),
        { dir, flushEvery, compactEvery, n: N },
        REPO,
        live,
        () => '',
      );
      const failures: string[] = [];
      const kinds = new Map<string, number>();
      let opens = 0;
      try {
        await w.loaded;
        w.go();
        await w.ready;
        const deadline = Date.now() + 8_000;
        while (Date.now() < deadline) {
          let ro: DB<string, string> | undefined;
          try {
            ro = await DB.open<string, string>(dir, { ...opts, readOnly: true });
            opens++;
            const all = await scan(ro);
            const a = all.filter(([k]) => k.startsWith('a'));
            const c = all.find(([k]) => k === 'counter')?.[1];
            const gens = new Set(a.map(([, v]) => v.replace(/\.+$/, '')));
            if (a.length !== N || gens.size !== 1 || [...gens][0] !== `g${c}`)
              failures.push(`${a.length} keys, generations ${[...gens].slice(0, 3).join(',')}, counter ${c}`);
          } catch (err) {
            const kind = String(err).replace(/\d+/g, '#').slice(0, 200);
            kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
            failures.push(String(err));
          } finally {
            await ro?.close().catch(() => undefined);
          }
        }
      } finally {
        for (const c of live) c.kill('SIGKILL');
      }
      const gen = await fsp.readFile(`${dir}.gen`, 'utf8').catch(() => '?');
      await fsp.rm(`${dir}.gen`, { force: true });
      if (process.env.DB_TEST_VERBOSE)
        console.log(`read-only opens: ${opens} ok, ${failures.length} failed; writer generations: ${gen}`, Object.fromEntries(kinds));
      expect(Object.fromEntries(kinds)).toEqual({});
      expect(failures.slice(0, 5)).toEqual([]);
      expect(opens).toBeGreaterThan(20);
    });
  }

  for (const [FLUSH_EVERY, COMPACT_EVERY] of [
    [7, 23],
    [1, 3],
  ] as const) {
    it(`a read-only handle beside a writer that flushes (every ${FLUSH_EVERY}), compacts (every ${COMPACT_EVERY}) and collects the WAL in a loop: never a CorruptionError, never a state that did not exist`, {
      timeout: 120_000,
    }, async () => {
      const opts: DBOptions = {
        valueEncoding: 'utf8',
        memtableSize: 4096,
        walSegmentSize: 4096,
        tableFileSize: 4096,
        levelBaseSize: 8192,
        l0CompactionTrigger: 2,
        fsync: 'os',
      };
      const writer = await DB.open<string, string>(dir, opts);
      // Invariant of every state the writer passes through: keys a000..a049 all hold the same
      // generation (written by one batch), and counter holds the last generation.
      const N = 50;
      const gen = async (g: number): Promise<void> => {
        const ops = Array.from({ length: N }, (_, i) => ({
          type: 'put' as const,
          key: `a${String(i).padStart(3, '0')}`,
          value: `g${g}`.padEnd(80, '.'),
        }));
        await writer.batch([...ops, { type: 'put', key: 'counter', value: String(g) }]);
      };
      await gen(0);
      let stop = false;
      let written = 0;
      const writing = (async () => {
        for (let g = 1; !stop; g++) {
          await gen(g);
          written = g;
          if (g % FLUSH_EVERY === 0) await writer.flush();
          if (g % COMPACT_EVERY === 0) await writer.compact();
        }
      })();
      const failures: string[] = [];
      let opens = 0;
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && opens < 150) {
        let ro: DB<string, string> | undefined;
        try {
          ro = await DB.open<string, string>(dir, { ...opts, readOnly: true });
          opens++;
          const all = await scan(ro);
          const a = all.filter(([k]) => k.startsWith('a'));
          const c = all.find(([k]) => k === 'counter')?.[1];
          const gens = new Set(a.map(([, v]) => v.replace(/\.+$/, '')));
          if (a.length !== N || gens.size !== 1 || [...gens][0] !== `g${c}`) {
            failures.push(`open ${opens}: ${a.length} keys, generations ${[...gens].slice(0, 3).join(',')}, counter ${c}`);
          }
        } catch (err) {
          failures.push(`open ${opens}: ${String(err)}`);
        } finally {
          await ro?.close().catch(() => undefined);
        }
      }
      stop = true;
      await writing;
      await writer.close();
      if (process.env.DB_TEST_VERBOSE) console.log('read-only opens beside a writer:', opens, 'generations written:', written);
      expect(failures.slice(0, 5)).toEqual([]);
      expect(opens).toBeGreaterThan(20);
    });
  }
});
