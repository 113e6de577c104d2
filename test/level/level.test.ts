/**
 * SedimentLevel beyond what abstract-level's shared suite checks (abstract-suite.test.ts runs
 * that): sediment's errors as Level's codes with the sediment error as `cause`, open's
 * `createIfMissing`/`errorIfExists` against real directories, sediment's options (checked in the
 * constructor, `readOnly`, `ttlMs`, `sync`), `clear()` leaving alone what was written after it
 * began, and the directory being a sediment DB of bytes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DB } from '../../src/db/index.js';
import { CorruptionError, InvalidConfigError, LockedError, ReadOnlyError } from '../../src/errors.js';
import { SedimentLevel } from '../../src/level/index.js';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** A path for a new database (its directory does not exist yet). */
function location(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-level-'));
  roots.push(root);
  return path.join(root, 'db');
}

/** The rejection of `p` (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; cause?: Error & { code?: string; cause?: unknown } }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string; cause?: Error & { code?: string; cause?: unknown } };
  }
  throw new Error('expected a rejection');
}

describe('SedimentLevel', () => {
  it('works as a Level store: deferred open, encodings, sublevels, iterators, snapshots', async () => {
    const db = new SedimentLevel<string, { n: number }>(location(), { valueEncoding: 'json', fsync: 'os' });
    await db.put('b', { n: 2 }); // before open: deferred
    await db.batch([
      { type: 'put', key: 'a', value: { n: 1 } },
      { type: 'put', key: 'c', value: { n: 3 } },
    ]);
    expect(db.status).toBe('open');
    expect(await db.get('a')).toEqual({ n: 1 });
    expect(db.getSync('c')).toEqual({ n: 3 });
    expect(await db.hasMany(['a', 'x'])).toEqual([true, false]);
    const snapshot = db.snapshot();
    await db.del('a');
    expect(await db.get('a', { snapshot })).toEqual({ n: 1 });
    expect(await db.keys({ snapshot }).all()).toEqual(['a', 'b', 'c']);
    await snapshot.close();
    expect(await db.iterator({ gt: 'a', lte: 'c', reverse: true }).all()).toEqual([
      ['c', { n: 3 }],
      ['b', { n: 2 }],
    ]);
    const users = db.sublevel<string, string>('users', { valueEncoding: 'utf8' });
    await users.put('ada', 'Ada Lovelace');
    expect(await users.get('ada')).toBe('Ada Lovelace');
    expect(await db.keys({ keyEncoding: 'utf8' }).all()).toEqual(['!users!ada', 'b', 'c']);
    await db.close();
  });

  it('is a sediment DB of bytes: DB.open reads it with the binary encodings', async () => {
    const dir = location();
    const db = new SedimentLevel<string, { v: number[] }>(dir, { valueEncoding: 'json' });
    await db.put('k', { v: [1, 2] });
    await db.close();
    const raw = await DB.open(dir, { keyEncoding: 'binary', valueEncoding: 'binary' });
    expect((await raw.get(Buffer.from('k')))?.toString()).toBe('{"v":[1,2]}');
    await raw.close();
    // Another value encoding is not the same DB: the open's cause says which option.
    await expect(DB.open(dir, { valueEncoding: 'json' })).rejects.toBeInstanceOf(InvalidConfigError);
  });

  it('checks sediment options in the constructor and leaves Level and userland options to abstract-level', () => {
    expect(() => new SedimentLevel(location(), { memtableSize: -1 })).toThrow(InvalidConfigError);
    expect(() => new SedimentLevel(location(), { fsync: 'never' as 'os' })).toThrow(InvalidConfigError);
    expect(() => new SedimentLevel('')).toThrow(TypeError);
    const options = { userland: 1, fsync: 'os' } as { fsync: 'os' };
    const db = new SedimentLevel(location(), options);
    return db.close();
  });

  it('maps a held lock to LEVEL_LOCKED, with the LockedError as cause', async () => {
    const dir = location();
    const first = new SedimentLevel(dir);
    await first.open();
    const second = new SedimentLevel(dir);
    const err = await rejection(second.open());
    expect(err.code).toBe('LEVEL_DATABASE_NOT_OPEN');
    expect(err.cause?.code).toBe('LEVEL_LOCKED');
    expect(err.cause?.cause).toBeInstanceOf(LockedError);
    expect(second.status).toBe('closed');
    await first.close();
    await second.open(); // free once the first closed
    await second.close();
  });

  it('maps damage to LEVEL_CORRUPTION, with the CorruptionError as cause', async () => {
    const dir = location();
    const db = new SedimentLevel(dir);
    await db.put('a', 'b');
    await db.close();
    fs.writeFileSync(path.join(dir, 'CURRENT'), 'garbage\n');
    const err = await rejection(db.open());
    expect(err.code).toBe('LEVEL_DATABASE_NOT_OPEN');
    expect(err.cause?.code).toBe('LEVEL_CORRUPTION');
    expect(err.cause?.cause).toBeInstanceOf(CorruptionError);
  });

  it('createIfMissing: false refuses a location without a database, and creates nothing', async () => {
    const dir = location();
    const db = new SedimentLevel(dir, { createIfMissing: false });
    const err = await rejection(db.open());
    expect(err.code).toBe('LEVEL_DATABASE_NOT_OPEN');
    expect(err.cause?.code).toBe('LEVEL_NOT_FOUND');
    expect(err.cause?.message).toMatch(/does not exist/);
    expect(fs.existsSync(dir)).toBe(false);
    fs.mkdirSync(dir); // an empty directory holds no database either
    expect((await rejection(db.open())).cause?.code).toBe('LEVEL_NOT_FOUND');
    expect(fs.readdirSync(dir)).toEqual([]);
    await db.open({ createIfMissing: true });
    await db.close();
    await db.open(); // the constructor's createIfMissing: false, and the DB exists now
    await db.close();
  });

  it('errorIfExists: true refuses an existing database', async () => {
    const dir = location();
    const db = new SedimentLevel(dir);
    await db.open({ errorIfExists: true }); // new: fine
    await db.close();
    const err = await rejection(db.open({ errorIfExists: true }));
    expect(err.code).toBe('LEVEL_DATABASE_NOT_OPEN');
    expect(err.cause?.code).toBe('LEVEL_EXISTS');
    expect(err.cause?.message).toMatch(/exists/);
  });

  it('readOnly: writes reject with LEVEL_READONLY, reads work', async () => {
    const dir = location();
    const writer = new SedimentLevel(dir);
    await writer.put('a', '1');
    await writer.close();
    const reader = new SedimentLevel(dir, { readOnly: true });
    expect(await reader.get('a')).toBe('1');
    const err = await rejection(reader.put('b', '2'));
    expect(err.code).toBe('LEVEL_READONLY');
    expect(err.cause).toBeInstanceOf(ReadOnlyError);
    await reader.close();
  });

  it('passes arguments sediment refuses through as they are (no Level code)', async () => {
    const db = new SedimentLevel(location(), { maxKeySize: 8 });
    await expect(db.put('a key longer than eight bytes', 'v')).rejects.toBeInstanceOf(RangeError);
    await db.close();
  });

  it('ttlMs (put, batch, chained batch) and sync are sediment write options', async () => {
    let now = 1_000_000;
    const db = new SedimentLevel(location(), { clock: () => now });
    await db.put('p', 'v', { ttlMs: 1000, sync: true });
    await db.batch(
      [
        { type: 'put', key: 'b1', value: 'v' },
        { type: 'put', key: 'b2', value: 'v', ttlMs: 5000 },
      ],
      { ttlMs: 1000 },
    );
    await db
      .batch()
      .put('c', 'v', { ttlMs: 1000 } as object)
      .put('forever', 'v')
      .write({ sync: true });
    expect(await db.keys().all()).toEqual(['b1', 'b2', 'c', 'forever', 'p']);
    now += 1000;
    expect(await db.keys().all()).toEqual(['b2', 'forever']);
    expect(await db.get('p')).toBeUndefined();
    expect(await db.has('c')).toBe(false);
    now += 4000;
    expect(await db.keys().all()).toEqual(['forever']);
    await expect(db.put('x', 'v', { ttlMs: -1 })).rejects.toBeInstanceOf(RangeError);
    await db.close();
  });

  it('clear() deletes what was there when it was called, never a write made after', async () => {
    const db = new SedimentLevel(location(), { fsync: 'os' });
    const keys = Array.from({ length: 3000 }, (_, i) => `k${String(i).padStart(5, '0')}`);
    await db.batch(keys.map((key) => ({ type: 'put' as const, key, value: 'old' })));
    const cleared = db.clear({ gte: 'k', lt: 'l' });
    // Issued after clear() but while it runs (it deletes 1024 keys at a time): they must stay.
    const late = [db.put('k00000', 'new'), db.put('k02999', 'new'), db.put('k01500', 'new'), db.put('k99999', 'new')];
    await Promise.all([cleared, ...late]);
    expect(await db.iterator().all()).toEqual([
      ['k00000', 'new'],
      ['k01500', 'new'],
      ['k02999', 'new'],
      ['k99999', 'new'],
    ]);
    // limit and reverse: the last 10 keys (k99999, then k02999 down to k02991).
    await db.batch(keys.map((key) => ({ type: 'put' as const, key, value: 'x' })));
    await db.clear({ reverse: true, limit: 10 });
    expect(await db.keys({ reverse: true, limit: 1 }).all()).toEqual(['k02990']);
    expect(await db.keys({ gte: 'k02990' }).all()).toEqual(['k02990']);
    await db.close();
  });

  it('an aborted signal rejects a long read in progress with LEVEL_ABORTED', async () => {
    const db = new SedimentLevel(location(), { fsync: 'os' });
    await db.batch(Array.from({ length: 5000 }, (_, i) => ({ type: 'put' as const, key: String(i).padStart(5, '0'), value: 'v' })));
    const ac = new AbortController();
    const it = db.iterator({ signal: ac.signal });
    const all = it.all();
    setImmediate(() => ac.abort()); // after the first chunks, before the end
    const err = await rejection(all);
    expect(err.code).toBe('LEVEL_ABORTED');
    expect(err.name).toBe('AbortError');
    await db.close();
  });

  it('seek follows Level: a target before the range ends the iterator, a later seek revives it', async () => {
    const db = new SedimentLevel(location(), { fsync: 'os' });
    await db.batch(['a', 'b', 'c', 'd'].map((key) => ({ type: 'put' as const, key, value: key })));
    const it = db.keys({ gt: 'b' });
    it.seek('a');
    expect(await it.next()).toBeUndefined();
    it.seek('c');
    expect(await it.all()).toEqual(['c', 'd']);
    const rev = db.keys({ lt: 'c', reverse: true });
    rev.seek('c');
    expect(await rev.next()).toBeUndefined();
    rev.seek('b');
    expect(await rev.all()).toEqual(['b', 'a']);
    await db.close();
  });
});
