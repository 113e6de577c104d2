/**
 * Every refusal happens before anything is written (issue #9): writes whose expiry the record
 * codec cannot represent, clocks that return garbage, unknown or malformed options, iterator
 * options out of range, and the read-only view of the WAL that `db.wal` gives. Each test checks
 * the error and that the DB, its WAL and the directory are as they were, also after a reopen.
 */
import { describe, expect, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { DB, type BatchOperation } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import { InvalidConfigError } from '../../src/errors.js';
import { Record } from '../../src/wal/index.js';
import { DIR, ProcessFs, footprint, openOn, scan } from './helpers/harness.js';

const T0 = 1_700_000_000_000;

// Meant as "never expire", or just too far: each puts the expiry past 2^53 - 1 ms.
const HUGE_TTLS = [Number.MAX_SAFE_INTEGER, 2 ** 60, 1e300, 2 ** 64 + 86_400_000, Number.MAX_SAFE_INTEGER - T0 + 1];

describe('a write whose expiry cannot be represented is refused before the WAL append', () => {
  it('put with a huge ttlMs: RangeError, nothing logged, the old value stays, and the next strict open works', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, unknown>(mem, { fsync: 'os', clock: () => T0 });
    await db.put('k', 'old');
    await db.put('j', 'kept');
    const before = footprint(db);
    for (const ttlMs of HUGE_TTLS) {
      await expect(db.put('k', 'new', { ttlMs }), String(ttlMs)).rejects.toThrow(RangeError);
    }
    expect(footprint(db)).toBe(before);
    expect(await db.get('k')).toBe('old');
    await db.put('after', 'acknowledged');
    await db.close();

    for (const recovery of ['strict', 'salvage'] as const) {
      const { db: again } = await openOn<string, unknown>(mem, { fsync: 'os', clock: () => T0, recovery });
      expect(again.stats().walRecovery.corruptionDetected).toBe(false);
      expect(await scan(again)).toEqual([
        ['after', 'acknowledged'],
        ['j', 'kept'],
        ['k', 'old'],
      ]);
      await again.close();
    }
  });

  it('a batch with such an op in the middle: RangeError, no op of it is visible, before or after a reopen and a flush', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, unknown>(mem, { fsync: 'os', clock: () => T0 });
    await db.put('b', 'old');
    const before = footprint(db);
    for (const ttlMs of HUGE_TTLS) {
      const ops: BatchOperation<string, unknown>[] = [
        { type: 'put', key: 'a', value: 1 },
        { type: 'del', key: 'b' },
        { type: 'put', key: 'c', value: 3, ttlMs },
        { type: 'put', key: 'd', value: 4 },
      ];
      await expect(db.batch(ops), String(ttlMs)).rejects.toThrow(RangeError);
    }
    expect(footprint(db)).toBe(before);
    expect(await scan(db)).toEqual([['b', 'old']]);
    await db.flush();
    await db.close();
    const { db: again } = await openOn<string, unknown>(mem, { fsync: 'os', clock: () => T0 });
    expect(await scan(again)).toEqual([['b', 'old']]);
    await again.close();
  });

  it('a clock returning garbage: a put with a TTL is refused, nothing written; without a TTL it works', async () => {
    const clocks: [string, unknown][] = [
      ['NaN', NaN],
      ['Infinity', Infinity],
      ['-Infinity', -Infinity],
      ['negative', -1],
      ['2^53', 2 ** 53],
      ['a string', '1700000000000'],
      ['undefined', undefined],
    ];
    for (const [what, value] of clocks) {
      const mem = new MemFileSystem();
      const { db } = await openOn<string, unknown>(mem, { fsync: 'os', clock: () => value as number });
      await db.put('k', 'old');
      const before = footprint(db);
      await expect(db.put('k', 'new', { ttlMs: 1000 }), what).rejects.toThrow(typeof value === 'number' ? RangeError : TypeError);
      await expect(
        db.batch([
          { type: 'put', key: 'x', value: 1 },
          { type: 'put', key: 'k', value: 'new', ttlMs: 5 },
        ]),
        what,
      ).rejects.toThrow();
      expect(footprint(db), what).toBe(before);
      await db.put('plain', 1);
      expect(await db.get('k')).toBe('old');
      await db.close();
      const { db: again } = await openOn<string, unknown>(mem, { fsync: 'os' });
      expect(await scan(again), what).toEqual([
        ['k', 'old'],
        ['plain', 1],
      ]);
      await again.close();
    }
  });

  it('an expiry at exactly 2^53 - 1 is accepted and survives a reopen and a flush', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, unknown>(mem, { fsync: 'os', clock: () => T0 });
    await db.put('k', 'v', { ttlMs: Number.MAX_SAFE_INTEGER - T0 });
    await db.close();
    const { db: again } = await openOn<string, unknown>(mem, { fsync: 'os', clock: () => T0 });
    expect(await again.get('k')).toBe('v');
    await again.flush();
    expect(await again.get('k')).toBe('v');
    await again.close();
  });

  it('the raw WAL: Record.put refuses a ttlMs or expiresAt the codec cannot represent', () => {
    for (const ttlMs of [Number.MAX_SAFE_INTEGER, 2 ** 60, 1e300]) {
      expect(() => Record.put('k', 'v', { ttlMs }), String(ttlMs)).toThrow(RangeError);
    }
    for (const expiresAt of [2 ** 53, 2 ** 64, 1e300, Number.MAX_SAFE_INTEGER + 2]) {
      expect(() => Record.put('k', 'v', { expiresAt }), String(expiresAt)).toThrow(RangeError);
    }
    expect(Record.put('k', 'v', { expiresAt: Number.MAX_SAFE_INTEGER }).expiresAt).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe('options are checked whole before anything touches the disk', () => {
  async function refused(options: unknown): Promise<{ err: unknown; mem: MemFileSystem }> {
    const mem = new MemFileSystem();
    const opts = { fs: new ProcessFs(mem), ...(options as object) } as DBOptions;
    const err = await DB.open(DIR, opts).then(
      async (db) => {
        await db.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    return { err, mem };
  }

  it('an fsync policy with extra fields is INVALID_CONFIG, and no file is written', async () => {
    for (const fsync of [
      { batchMs: 5, extra: 1 },
      { batchMs: 5, batchMS: 6 },
    ]) {
      const { err, mem } = await refused({ fsync });
      expect(err, JSON.stringify(fsync)).toBeInstanceOf(InvalidConfigError);
      expect(err).toMatchObject({ option: 'fsync' });
      expect(await mem.readdir('/')).toEqual([]);
    }
  });

  it('misspelt option names are refused, naming them', async () => {
    for (const name of ['memTableSize', 'valueEncodng', 'fsyncPolicy', 'readonly']) {
      const { err, mem } = await refused({ [name]: 1 });
      expect(err, name).toBeInstanceOf(InvalidConfigError);
      expect(err).toMatchObject({ code: 'INVALID_CONFIG', option: name });
      expect((err as Error).message).toContain(name);
      expect(await mem.readdir('/')).toEqual([]);
    }
  });

  it('an fs that is not a FileSystem is INVALID_CONFIG naming what it lacks', async () => {
    for (const fs of [{}, { stat: () => undefined }, [], 5]) {
      const err = await DB.open(DIR, { fs: fs as never }).then(
        async (db) => {
          await db.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err, JSON.stringify(fs)).toBeInstanceOf(InvalidConfigError);
      expect(err).toMatchObject({ option: 'fs' });
    }
  });
});

describe('iterator options', () => {
  async function filled(): Promise<DB<string, unknown>> {
    const { db } = await openOn<string, unknown>(new MemFileSystem(), { fsync: 'os' });
    await db.batch(['a', 'b', 'c', 'd', 'e'].map((key, i) => ({ type: 'put' as const, key, value: i })));
    return db;
  }

  it('limit: a non-negative integer, -1 or Infinity; anything else is a RangeError (TypeError for a non-number)', async () => {
    const db = await filled();
    for (const limit of [1.5, -2, -0.5, -Infinity, NaN]) expect(() => db.iterator({ limit }), String(limit)).toThrow(RangeError);
    for (const limit of ['2', null, true] as unknown[])
      expect(() => db.iterator({ limit: limit as number }), String(limit)).toThrow(TypeError);
    expect((await db.iterator({ limit: 0 }).all()).length).toBe(0);
    expect((await db.iterator({ limit: 2 }).all()).length).toBe(2);
    expect((await db.iterator({ limit: -1 }).all()).length).toBe(5);
    expect((await db.iterator({ limit: Infinity }).all()).length).toBe(5);
    await db.close();
  });

  it('reverse must be a boolean', async () => {
    const db = await filled();
    for (const reverse of ['false', 'true', 1, 0, null] as unknown[]) {
      expect(() => db.iterator({ reverse: reverse as boolean }), String(reverse)).toThrow(TypeError);
    }
    expect((await db.iterator({ reverse: false }).all())[0]![0]).toBe('a');
    expect((await db.iterator({ reverse: true }).all())[0]![0]).toBe('e');
    await db.close();
  });

  it('with both gt and gte (or lt and lte) the inclusive bound wins, as in abstract-level', async () => {
    const db = await filled();
    const keys = async (o: object): Promise<string[]> => (await db.iterator(o).all()).map(([k]) => k);
    expect(await keys({ gt: 'b', gte: 'c' })).toEqual(['c', 'd', 'e']);
    expect(await keys({ gt: 'c', gte: 'b' })).toEqual(['b', 'c', 'd', 'e']);
    expect(await keys({ lt: 'd', lte: 'c' })).toEqual(['a', 'b', 'c']);
    expect(await keys({ lt: 'c', lte: 'd' })).toEqual(['a', 'b', 'c', 'd']);
    expect(await keys({ gt: 'b', gte: 'c', reverse: true })).toEqual(['e', 'd', 'c']);
    await db.close();
  });

  it('unknown iterator options are refused', async () => {
    const db = await filled();
    expect(() => db.iterator({ start: 'a' } as object)).toThrow(TypeError);
    expect(() => db.iterator({ gte: 'a', limt: 1 } as object)).toThrow(/limt/);
    await db.close();
  });
});

describe('db.wal is a read-only view', () => {
  it('offers readFrom, currentPosition and stats; nothing that writes or deletes', async () => {
    const { db } = await openOn<string, unknown>(new MemFileSystem(), { fsync: 'os', valueEncoding: 'utf8' });
    await db.put('a', '1');
    const view = db.wal as unknown as { [k: string]: unknown };
    for (const name of ['append', 'appendBatch', 'deleteSegmentsBefore', 'sync', 'flush', 'close']) {
      expect(view[name], name).toBeUndefined();
    }
    const seen: string[] = [];
    for await (const { record } of db.wal.readFrom({ segmentId: 0, offset: 0 })) seen.push(Buffer.from(record.key).toString());
    expect(seen).toEqual(['a']);
    expect(db.wal.currentPosition().segmentId).toBeGreaterThanOrEqual(0);
    expect(db.wal.stats()).toEqual(db.stats().wal);
    await db.put('b', '2');
    expect(await scan(db)).toEqual([
      ['a', '1'],
      ['b', '2'],
    ]);
    await db.close();
  });
});

describe('maintenance called just before close', () => {
  it('flush() and compact() running when close() is called reject with CLOSED; close does not wait for them; nothing is lost', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, unknown>(mem, { fsync: 'os' });
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, i);
    const flushed = db.flush();
    const closed = db.close();
    await expect(flushed).rejects.toMatchObject({ code: 'CLOSED' });
    await closed;

    const { db: again } = await openOn<string, unknown>(mem, { fsync: 'os' });
    // The cancelled flush installed nothing: the WAL gave the writes back.
    expect(again.stats().levels[0]!.tables).toBe(0);
    expect((await scan(again)).length).toBe(50);
    await again.flush();
    for (let i = 50; i < 80; i++) await again.put(`k${i}`, i);
    await again.flush();
    const compacted = again.compact();
    const closedAgain = again.close();
    await expect(compacted).rejects.toMatchObject({ code: 'CLOSED' });
    await closedAgain;

    const { db: third } = await openOn<string, unknown>(mem, { fsync: 'os' });
    expect(third.stats().levels.reduce((n, l) => n + l.tables, 0)).toBe(2);
    expect((await scan(third)).length).toBe(80);
    await third.close();
  });

  it('flush() and compact() called after close() reject with CLOSED', async () => {
    const { db } = await openOn<string, unknown>(new MemFileSystem(), { fsync: 'os' });
    const closed = db.close();
    await expect(db.flush()).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(db.compact()).rejects.toMatchObject({ code: 'CLOSED' });
    await closed;
  });
});
