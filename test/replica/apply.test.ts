/**
 * The replica follower's apply step (examples/replica/follower.ts `Follower.apply`) on a real DB,
 * without NATS: units applied with their bookmark, duplicates skipped, and every unit that does
 * not fit the bookmark (a gap, an overlap, another DB's positions) refused with nothing written;
 * TTLs carried as absolute expiries; the bookmark surviving a reopen.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { APPLIED_KEY, DATA, Follower, ReplicaGapError } from '../../examples/replica/follower.js';
import type { WireChange, WireUnit } from '../../examples/replica/protocol.js';

const dirs: string[] = [];
const open: Follower[] = [];
afterEach(async () => {
  for (const f of open.splice(0)) await f.db.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function follower(dir?: string, clock?: () => number): Promise<{ f: Follower; dir: string }> {
  const d = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-apply-'));
  if (!dir) dirs.push(d);
  const f = await Follower.open(d, clock ? { clock } : {});
  open.push(f);
  return { f, dir: d };
}

/** A unit at WAL offset `at` (segment 1) with the given changes. */
const unit = (at: number, changes: WireChange[]): WireUnit => ({
  v: 1,
  position: { segmentId: 1, offset: at },
  next: { segmentId: 1, offset: at + 10 },
  changes,
});
const put = (seq: number, key: string, value: string, expiresAt?: number): WireChange =>
  expiresAt === undefined ? { seq, type: 'put', key, value } : { seq, type: 'put', key, value, expiresAt };
const del = (seq: number, key: string): WireChange => ({ seq, type: 'del', key });

async function contents(f: Follower): Promise<[string, string][]> {
  return f.db.iterator().all();
}

describe('Follower.apply', () => {
  it('applies units in one batch with the bookmark, and skips what it applied', async () => {
    const { f, dir } = await follower();
    await f.apply(unit(0, [put(1, 'a', '1'), put(2, 'b', '2'), del(3, 'c')]), 1);
    await f.apply(unit(10, [del(4, 'a')]), 2);
    expect(f.applied).toEqual({ seq: 4, next: { segmentId: 1, offset: 20 }, streamSeq: 2, changes: 4 });
    const before = await contents(f);
    expect(before).toEqual([
      [`${DATA}b`, '2'],
      [APPLIED_KEY, JSON.stringify(f.applied)],
    ]);
    // Redelivered or republished: skipped, nothing written.
    await f.apply(unit(0, [put(1, 'a', '1'), put(2, 'b', '2'), del(3, 'c')]), 3);
    await f.apply(unit(10, [del(4, 'a')]), 4);
    expect(f.status.duplicates).toBe(2);
    expect(await contents(f)).toEqual(before);
    // The bookmark is in the DB: a reopened follower knows where it is.
    await f.db.close();
    open.splice(open.indexOf(f), 1);
    const { f: again } = await follower(dir);
    expect(again.applied).toEqual({ seq: 4, next: { segmentId: 1, offset: 20 }, streamSeq: 2, changes: 4 });
    await again.apply(unit(20, [put(5, 'z', 'last')]), 5);
    expect(await again.db.get(`${DATA}z`)).toBe('last');
  });

  it('refuses a gap, an overlap and another DB, writing nothing', async () => {
    const { f } = await follower();
    await f.apply(unit(0, [put(1, 'a', '1'), put(2, 'b', '2')]), 1);
    const before = await contents(f);
    const refusals: [WireUnit, RegExp][] = [
      [unit(10, [put(4, 'x', 'gap')]), /starts at leader seq 4, but the last applied is 2: changes 3\.\.3 are missing/],
      [unit(10, [put(2, 'x', 'o'), put(3, 'y', 'o')]), /starts at leader seq 2, but the last applied is 2: it overlaps/],
      // Seqs say "applied", the position says "new": another DB's numbering.
      [unit(50, [put(1, 'x', 'foreign')]), /another leader DB/],
      // Seqs say "new", the position says "before the bookmark".
      [unit(5, [put(3, 'x', 'foreign')]), /another leader DB/],
    ];
    for (const [u, message] of refusals) {
      await expect(f.apply(u, 9)).rejects.toThrow(ReplicaGapError);
      await expect(f.apply(u, 9)).rejects.toThrow(message);
    }
    expect(await contents(f)).toEqual(before);
    expect(f.applied.seq).toBe(2);
  });

  it('carries a TTL as its absolute expiry, and applies an expiry already past as a delete', async () => {
    let now = 1_000_000;
    const { f } = await follower(undefined, () => now);
    await f.apply(unit(0, [put(1, 'old', 'v0')]), 1);
    await f.apply(unit(10, [put(2, 'ttl', 'v1', now + 5000), put(3, 'old', 'v2', now - 1)]), 2);
    expect(await f.db.get(`${DATA}ttl`)).toBe('v1');
    expect(await f.db.get(`${DATA}old`)).toBeUndefined(); // deleted, not left at v0
    now += 4999;
    expect(await f.db.get(`${DATA}ttl`)).toBe('v1');
    now += 1;
    expect(await f.db.get(`${DATA}ttl`)).toBeUndefined();
  });
});
