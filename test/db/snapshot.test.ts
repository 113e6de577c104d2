/**
 * Snapshots and the read API (issue #11): `db.snapshot()`, `get`/`getSync`/`has`/`getMany` with
 * `{ snapshot }`, and iterators with `next`, `nextv`, `seek`, `keys`/`values`, both directions and
 * limits. A model test takes snapshots at random points of random writes, deletes, batches,
 * flushes and compactions (with TTLs under a controlled clock), and checks every read API through
 * every open snapshot against the model as it was when the snapshot was taken, and the latest
 * state after a reopen. Snapshots keep their tables on disk across compactions and release them
 * when closed.
 */
import { describe, expect, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import type { DB, Snapshot } from '../../src/db/index.js';
import { ClosedError } from '../../src/errors.js';
import { TINY, compareUtf8, diskProblems, openOn, seeded, settle, tableFiles } from './helpers/harness.js';

type Model = Map<string, { value: string; expiresAt: number | undefined }>;

const T0 = 1_700_000_000_000;
const KEYS = Array.from({ length: 40 }, (_, i) => `key-${String(i).padStart(2, '0')}`);

function live(m: Model, now: number): [string, string][] {
  return [...m]
    .filter(([, e]) => e.expiresAt === undefined || e.expiresAt > now)
    .map(([k, e]): [string, string] => [k, e.value])
    .sort((a, b) => compareUtf8(a[0], b[0]));
}

interface Taken {
  snap: Snapshot;
  model: [string, string][];
}

/** Every read API through `snap` (or the DB's current state) against `want`, with a random range. */
async function checkReads(db: DB<string, string>, snap: Snapshot | undefined, want: [string, string][], rand: () => number): Promise<void> {
  const opts = snap ? { snapshot: snap } : undefined;
  const wantMap = new Map(want);
  const probes = [...KEYS.filter(() => rand() < 0.3), 'absent', 'key-99'];
  for (const k of probes) {
    expect(await db.get(k, opts), `get ${k}`).toBe(wantMap.get(k));
    expect(db.getSync(k, opts), `getSync ${k}`).toBe(wantMap.get(k));
    expect(await db.has(k, opts), `has ${k}`).toBe(wantMap.has(k));
  }
  expect(await db.getMany(probes, opts)).toEqual(probes.map((k) => wantMap.get(k)));

  const a = KEYS[Math.floor(rand() * KEYS.length)]!;
  const b = KEYS[Math.floor(rand() * KEYS.length)]!;
  const [lo, hi] = compareUtf8(a, b) <= 0 ? [a, b] : [b, a];
  const reverse = rand() < 0.5;
  const limit = rand() < 0.3 ? Math.floor(rand() * 5) : -1;
  const loIn = rand() < 0.5;
  const hiIn = rand() < 0.5;
  const inRange = want.filter(([k]) => compareUtf8(k, lo) >= (loIn ? 0 : 1) && compareUtf8(k, hi) <= (hiIn ? 0 : -1));
  const ordered = reverse ? [...inRange].reverse() : inRange;
  const expected = limit >= 0 ? ordered.slice(0, limit) : ordered;
  const bounds = { ...(loIn ? { gte: lo } : { gt: lo }), ...(hiIn ? { lte: hi } : { lt: hi }) };
  const base = { ...bounds, reverse, limit, ...(snap ? { snapshot: snap } : {}) };

  // next, one at a time
  const it1 = db.iterator(base);
  const got1: [string, string][] = [];
  for (let e = await it1.next(); e !== undefined; e = await it1.next()) got1.push(e);
  await it1.close();
  expect(got1).toEqual(expected);
  // nextv in chunks
  const it2 = db.iterator(base);
  const got2: [string, string][] = [];
  for (let chunk = await it2.nextv(3); chunk.length > 0; chunk = await it2.nextv(3)) got2.push(...chunk);
  await it2.close();
  expect(got2).toEqual(expected);
  // for await, keys only and values only
  const got3: [string, string][] = [];
  for await (const kv of db.iterator(base)) got3.push(kv);
  expect(got3).toEqual(expected);
  expect((await db.iterator({ ...base, values: false }).all()).map(([k, v]) => [k, v])).toEqual(expected.map(([k]) => [k, undefined]));
  expect((await db.iterator({ ...base, keys: false }).all()).map(([k, v]) => [k, v])).toEqual(expected.map(([, v]) => [undefined, v]));
  // seek to a random key: the entries from there on, in the iterator's direction and range
  const target = KEYS[Math.floor(rand() * KEYS.length)]!;
  const it4 = db.iterator({ ...base, limit: -1 });
  await it4.next();
  it4.seek(target);
  // A target outside the range, before it in the iterator's direction, leaves nothing (abstract-level's rule).
  const outside = reverse ? compareUtf8(target, hi) > (hiIn ? 0 : -1) : compareUtf8(target, lo) < (loIn ? 0 : 1);
  const after = outside ? [] : ordered.filter(([k]) => (reverse ? compareUtf8(k, target) <= 0 : compareUtf8(k, target) >= 0));
  expect(await it4.nextv(1000)).toEqual(after);
  await it4.close();
}

describe('snapshots', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`model test, seed ${seed}: every read API through every open snapshot equals the model when it was taken`, async () => {
      const rand = seeded(seed);
      let now = T0;
      const mem = new MemFileSystem();
      let { db } = await openOn<string, string>(mem, { ...TINY, fsync: 'os', valueEncoding: 'utf8', clock: () => now });
      const model: Model = new Map();
      const taken: Taken[] = [];
      for (let step = 0; step < 300; step++) {
        const r = rand();
        const key = KEYS[Math.floor(rand() * KEYS.length)]!;
        if (r < 0.45) {
          const value = `v${step}-${'x'.repeat(Math.floor(rand() * 60))}`;
          const ttlMs = rand() < 0.15 ? 1 + Math.floor(rand() * 50) : undefined;
          await db.put(key, value, ttlMs === undefined ? undefined : { ttlMs });
          model.set(key, { value, expiresAt: ttlMs === undefined ? undefined : Math.ceil(now + ttlMs) });
        } else if (r < 0.6) {
          await db.delete(key);
          model.delete(key);
        } else if (r < 0.7) {
          const ops = Array.from({ length: 1 + Math.floor(rand() * 5) }, (_, i) =>
            rand() < 0.7
              ? { type: 'put' as const, key: KEYS[Math.floor(rand() * KEYS.length)]!, value: `b${step}.${i}` }
              : { type: 'del' as const, key: KEYS[Math.floor(rand() * KEYS.length)]! },
          );
          await db.batch(ops);
          for (const op of ops) {
            if (op.type === 'put') model.set(op.key, { value: op.value, expiresAt: undefined });
            else model.delete(op.key);
          }
        } else if (r < 0.75) {
          await db.flush();
        } else if (r < 0.78) {
          await db.compact();
        } else if (r < 0.83) {
          taken.push({ snap: db.snapshot(), model: live(model, now) });
        } else if (r < 0.86 && taken.length > 0) {
          const [t] = taken.splice(Math.floor(rand() * taken.length), 1);
          t!.snap.close();
          t!.snap.close(); // idempotent
          await expect(db.get('k', { snapshot: t!.snap })).rejects.toBeInstanceOf(ClosedError);
        } else if (r < 0.9) {
          now += Math.floor(rand() * 30);
        } else if (r < 0.95 && taken.length > 0) {
          const t = taken[Math.floor(rand() * taken.length)]!;
          await checkReads(db, t.snap, t.model, rand);
        } else {
          await checkReads(db, undefined, live(model, now), rand);
        }
      }
      for (const t of taken) await checkReads(db, t.snap, t.model, rand);
      await checkReads(db, undefined, live(model, now), rand);
      await db.close();
      for (const t of taken) expect(t.snap.closed).toBe(true); // the DB's close released them
      ({ db } = await openOn<string, string>(mem, { ...TINY, fsync: 'os', valueEncoding: 'utf8', clock: () => now }));
      await checkReads(db, undefined, live(model, now), rand);
      await db.close();
      await settle();
      expect(await diskProblems(mem)).toEqual([]);
    });
  }

  it('keeps its tables on disk across compactions and releases them when closed', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { ...TINY, fsync: 'os', valueEncoding: 'utf8', l0CompactionTrigger: 1000 });
    for (let i = 0; i < 60; i++) await db.put(KEYS[i % KEYS.length]!, `first-${i}`.padEnd(40, '.'));
    await db.flush();
    const pinned = tableFiles(mem);
    expect(pinned.length).toBeGreaterThan(1);
    const snap = db.snapshot();
    for (let i = 0; i < 60; i++) await db.put(KEYS[i % KEYS.length]!, `second-${i}`);
    await db.compact();
    await settle();
    for (const f of pinned) expect(mem.listFiles()).toContain(f);
    expect(await db.get(KEYS[0]!, { snapshot: snap })).toMatch(/^first-/);
    expect(await db.get(KEYS[0]!)).toMatch(/^second-/);
    // An iterator from the snapshot outlives the snapshot's close.
    const it = db.iterator({ snapshot: snap });
    snap.close();
    await settle();
    for (const f of pinned) expect(mem.listFiles()).toContain(f);
    expect((await it.all()).every(([, v]) => v.startsWith('first-'))).toBe(true);
    await settle();
    for (const f of pinned) expect(mem.listFiles()).not.toContain(f);
    await db.close();
    expect(await diskProblems(mem)).toEqual([]);
  });

  it('bad read options: TypeError; a snapshot of another DB or of a closed DB is refused', async () => {
    const { db } = await openOn<string, string>(new MemFileSystem(), { fsync: 'os', valueEncoding: 'utf8' });
    const { db: other } = await openOn<string, string>(new MemFileSystem(), { fsync: 'os', valueEncoding: 'utf8' });
    await db.put('a', '1');
    await expect(db.get('a', { snapshot: other.snapshot() })).rejects.toThrow(TypeError);
    await expect(db.get('a', { snapshot: {} as Snapshot })).rejects.toThrow(TypeError);
    await expect(db.get('a', { snapshot: 1 } as never)).rejects.toThrow(TypeError);
    await expect(db.get('a', { snap: 1 } as never)).rejects.toThrow(TypeError);
    expect(() => db.getSync(5 as never)).toThrow(TypeError);
    await expect(db.getMany('a' as never)).rejects.toThrow(TypeError);
    expect(() => db.iterator({ snapshot: other.snapshot() })).toThrow(TypeError);
    expect(() => db.iterator({ keys: 'no' as never })).toThrow(TypeError);
    const it = db.iterator();
    await expect(it.nextv(-1)).rejects.toThrow(RangeError);
    await expect(it.nextv(1.5)).rejects.toThrow(RangeError);
    await it.close();
    await expect(it.next()).rejects.toBeInstanceOf(ClosedError);
    expect(() => it.seek('a')).toThrow(ClosedError);
    const snap = db.snapshot();
    await db.close();
    expect(snap.closed).toBe(true);
    expect(() => db.snapshot()).toThrow(ClosedError);
    expect(() => db.getSync('a')).toThrow(ClosedError);
    await expect(db.has('a')).rejects.toBeInstanceOf(ClosedError);
    await other.close();
  });

  it('using: a snapshot closes at the end of its block', async () => {
    const { db } = await openOn<string, string>(new MemFileSystem(), { fsync: 'os', valueEncoding: 'utf8' });
    await db.put('a', '1');
    let seen: Snapshot;
    {
      using snap = db.snapshot();
      seen = snap;
      await db.put('a', '2');
      expect(await db.get('a', { snapshot: snap })).toBe('1');
    }
    expect(seen.closed).toBe(true);
    await db.close();
  });
});

describe('long scans leave the event loop free', () => {
  it('next(), nextv(), all() and for await each yield to the event loop while they read thousands of entries', async () => {
    const { db } = await openOn<string, string>(new MemFileSystem(), { fsync: 'os', valueEncoding: 'utf8' });
    await db.batch(Array.from({ length: 5000 }, (_, i) => ({ type: 'put' as const, key: `k${String(i).padStart(5, '0')}`, value: 'v' })));
    const ticks = async (scan: () => Promise<number>): Promise<{ n: number; ticks: number }> => {
      let count = 0;
      let running = true;
      const tick = (): void => {
        if (!running) return;
        count++;
        setImmediate(tick);
      };
      setImmediate(tick);
      const n = await scan();
      running = false;
      return { n, ticks: count };
    };
    const scans: [string, () => Promise<number>][] = [
      ['all', async () => (await db.iterator().all()).length],
      [
        'for await',
        async () => {
          let n = 0;
          for await (const _ of db.iterator()) n++;
          return n;
        },
      ],
      [
        'nextv(5000)',
        async () => {
          const it = db.iterator();
          const n = (await it.nextv(5000)).length;
          await it.close();
          return n;
        },
      ],
      [
        'next',
        async () => {
          const it = db.iterator();
          let n = 0;
          while ((await it.next()) !== undefined) n++;
          await it.close();
          return n;
        },
      ],
    ];
    for (const [what, scan] of scans) {
      const r = await ticks(scan);
      expect(r.n, what).toBe(5000);
      expect(r.ticks, what).toBeGreaterThanOrEqual(3);
    }
    await db.close();
  });
});
