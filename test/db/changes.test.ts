/**
 * The change feed (`db.changes`, `ackChanges`, `releaseChanges`; src/db/changes.ts): order,
 * batches whole, `next` semantics, tailing, retention slots holding WAL segments across flushes
 * and restarts, acknowledgements letting them go, typed errors for expired, future and
 * non-boundary positions, bad arguments and a closed DB, `maxRetainedBytes`, and a power loss at
 * every step of a slot update.
 */
import { describe, expect, it } from 'vitest';
import { type Change, DB } from '../../src/db/index.js';
import { decodeSlotsFile, encodeSlotsFile } from '../../src/db/slots.js';
import {
  ChangesExpiredError,
  ClosedError,
  InvalidPositionError,
  ReadOnlyError,
  SlotDroppedError,
  UnknownSlotError,
} from '../../src/errors.js';
import { crashAtMutatingOp, FaultFileSystem } from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import type { Position } from '../../src/wal/position.js';
import { DIR, walFiles } from './helpers/harness.js';

type Db = DB<string, string>;
const open = (fs: MemFileSystem | FaultFileSystem, o: Parameters<typeof DB.open>[1] = {}): Promise<Db> =>
  DB.open<string, string>(DIR, { fs, valueEncoding: 'utf8', background: 'inline', ...o });

/** Takes `n` changes from a feed (then leaves it open). */
async function take(feed: AsyncIterator<Change<string, string>>, n: number): Promise<Change<string, string>[]> {
  const out: Change<string, string>[] = [];
  while (out.length < n) {
    const r = await feed.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

/** Takes `n` changes from a new feed, then ends it (an open feed holds its WAL segments). */
async function takeAndEnd(feed: AsyncIterator<Change<string, string>>, n: number): Promise<Change<string, string>[]> {
  try {
    return await take(feed, n);
  } finally {
    await feed.return!();
  }
}

/** Everything a feed gives until it catches up (read-only handles end there; otherwise `n`). */
const brief = (c: Change<string, string>): string => `${c.seq} ${c.type} ${c.key}${c.type === 'put' ? `=${c.value}` : ''}`;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('db.changes()', () => {
  it('yields every write in commit order with seqs, a batch as consecutive changes sharing its position, then tails live writes', async () => {
    const mem = new MemFileSystem();
    const db = await open(mem);
    await db.put('a', '1');
    await db.batch([
      { type: 'put', key: 'b', value: '2', ttlMs: 60_000 },
      { type: 'del', key: 'a' },
      { type: 'put', key: 'c', value: '3' },
    ]);
    const feed = db.changes();
    const first = await take(feed, 4);
    expect(first.map(brief)).toEqual(['1 put a=1', '2 put b=2', '3 del a', '4 put c=3']);
    expect(first[1]!.expiresAt).toBeGreaterThan(Date.now());
    expect(first[2]!.value).toBeUndefined();
    // The batch's ops share its position; all but the last resume at it, the last after it.
    const [, b1, b2, b3] = first;
    expect(b1!.position).toEqual(b2!.position);
    expect(b2!.position).toEqual(b3!.position);
    expect(b1!.next).toEqual(b1!.position);
    expect(b2!.next).toEqual(b1!.position);
    expect(b3!.next.offset).toBeGreaterThan(b3!.position.offset);
    expect(first[0]!.next).toEqual(b1!.position);
    // Caught up: the next change is the next write.
    const pending = feed.next();
    await db.put('d', '4');
    const r = await pending;
    expect(r.done).toBe(false);
    expect(brief(r.value as Change<string, string>)).toBe('5 put d=4');
    expect(db.stats().changes.feeds).toBe(1);
    await feed.return!();
    expect(db.stats().changes.feeds).toBe(0);
    await db.close();
  });

  it('resuming from a `next` inside a batch replays the whole batch; from the last next, what follows', async () => {
    const mem = new MemFileSystem();
    const db = await open(mem);
    await db.batch([
      { type: 'put', key: 'x', value: '1' },
      { type: 'put', key: 'y', value: '2' },
    ]);
    await db.put('z', '3');
    const all = await take(db.changes(), 3);
    const again = await take(db.changes({ since: all[0]!.next }), 3);
    expect(again.map(brief)).toEqual(all.map(brief));
    const rest = await take(db.changes({ since: all[1]!.next }), 1);
    expect(rest.map(brief)).toEqual(['3 put z=3']);
    await db.close();
  });

  it('the DB close ends a waiting feed cleanly; break ends it and releases its hold', async () => {
    const mem = new MemFileSystem();
    const db = await open(mem);
    await db.put('a', '1');
    const seen: string[] = [];
    for await (const c of db.changes()) {
      seen.push(brief(c));
      break;
    }
    expect(seen).toEqual(['1 put a=1']);
    expect(db.stats().changes.feeds).toBe(0);
    const feed = db.changes();
    await take(feed, 1);
    const waiting = feed.next();
    await db.close();
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(await feed.next()).toEqual({ done: true, value: undefined });
  });

  it('seqs and positions are the same after a restart', async () => {
    const mem = new MemFileSystem();
    let db = await open(mem);
    for (let i = 0; i < 5; i++) await db.put(`k${i}`, String(i));
    await db.batch([
      { type: 'del', key: 'k0' },
      { type: 'put', key: 'k9', value: '9' },
    ]);
    const before = await take(db.changes(), 7);
    await db.close();
    db = await open(mem);
    const after = await take(db.changes(), 7);
    expect(after).toEqual(before);
    await db.close();
  });
});

describe("positions that are not the feed's", () => {
  it('a position whose segment is gone: ChangesExpiredError; past the last write or not at a boundary: InvalidPositionError', async () => {
    const mem = new MemFileSystem();
    const db = await open(mem, { walSegmentSize: 4096 });
    for (let i = 0; i < 100; i++) await db.put(`k${i}`, 'v'.repeat(40));
    const reader = db.changes();
    const [first] = await take(reader, 1);
    await reader.return!(); // an open feed would hold its segments
    await db.flush();
    expect(walFiles(mem).length).toBe(1);
    const expired = await rejection(db.changes({ since: first!.position }).next());
    expect(expired).toBeInstanceOf(ChangesExpiredError);
    expect((expired as ChangesExpiredError).code).toBe('CHANGES_EXPIRED');
    const end = db.wal.currentPosition();
    const future = await rejection(db.changes({ since: { segmentId: end.segmentId, offset: end.offset + 1 } }).next());
    expect(future).toBeInstanceOf(InvalidPositionError);
    expect(await rejection(db.changes({ since: { segmentId: end.segmentId + 1, offset: 32 } }).next())).toBeInstanceOf(
      InvalidPositionError,
    );
    await db.put('after', 'x');
    const [c] = await take(db.changes({ since: end }), 1);
    expect(c!.key).toBe('after');
    const inside = await rejection(db.changes({ since: { segmentId: c!.position.segmentId, offset: c!.position.offset + 3 } }).next());
    expect(inside).toBeInstanceOf(InvalidPositionError);
    expect(await rejection(db.changes({ since: { segmentId: c!.position.segmentId, offset: 5 } }).next())).toBeInstanceOf(
      InvalidPositionError,
    );
    await db.close();
  });

  it('bad arguments and a closed DB: typed errors, nothing created', async () => {
    const mem = new MemFileSystem();
    const db = await open(mem);
    expect(() => db.changes({ since: { segmentId: -1, offset: 0 } })).toThrow(TypeError);
    expect(() => db.changes({ since: 'x' as unknown as Position })).toThrow(TypeError);
    expect(() => db.changes({ retain: '' })).toThrow(RangeError);
    expect(() => db.changes({ retain: 5 as unknown as string })).toThrow(TypeError);
    expect(() => db.changes({ sinse: 1 } as unknown as object)).toThrow(TypeError);
    expect(() => db.changes(null as unknown as object)).toThrow(TypeError);
    await expect(db.ackChanges('nope', { segmentId: 0, offset: 32 })).rejects.toBeInstanceOf(UnknownSlotError);
    await expect(db.releaseChanges('nope')).rejects.toBeInstanceOf(UnknownSlotError);
    await expect(db.ackChanges(7 as unknown as string, { segmentId: 0, offset: 32 })).rejects.toBeInstanceOf(TypeError);
    // A retained feed with a bad position creates no slot.
    await expect(db.changes({ since: { segmentId: 99, offset: 32 }, retain: 's' }).next()).rejects.toBeInstanceOf(InvalidPositionError);
    expect(db.stats().changes.slots).toEqual([]);
    expect(await mem.readdir(DIR)).not.toContain('SLOTS');
    await db.close();
    expect(() => db.changes()).toThrow(ClosedError);
    await expect(db.ackChanges('s', { segmentId: 0, offset: 32 })).rejects.toBeInstanceOf(ClosedError);
    await expect(db.releaseChanges('s')).rejects.toBeInstanceOf(ClosedError);
  });

  it('a read-only handle: a feed ends once caught up; no slot can be made or moved', async () => {
    const mem = new MemFileSystem();
    const db = await open(mem);
    await db.put('a', '1');
    await db.put('b', '2');
    await db.close();
    const ro = await open(mem, { readOnly: true });
    const seen: string[] = [];
    for await (const c of ro.changes()) seen.push(brief(c));
    expect(seen).toEqual(['1 put a=1', '2 put b=2']);
    expect(() => ro.changes({ retain: 'r' })).toThrow(ReadOnlyError);
    await expect(ro.ackChanges('r', { segmentId: 0, offset: 32 })).rejects.toBeInstanceOf(ReadOnlyError);
    await expect(ro.releaseChanges('r')).rejects.toBeInstanceOf(ReadOnlyError);
    await ro.close();
  });
});

describe('retention slots', () => {
  it('a slot keeps WAL segments across flushes and restarts; acknowledging lets them go; releasing drops it', async () => {
    const mem = new MemFileSystem();
    let db = await open(mem, { walSegmentSize: 4096 });
    const feed = db.changes({ retain: 'r' });
    for (let i = 0; i < 100; i++) await db.put(`k${i}`, 'v'.repeat(40));
    const got = await take(feed, 100);
    await feed.return!(); // reading alone moves nothing; closing the feed neither
    const segments = walFiles(mem).length;
    expect(segments).toBeGreaterThan(2);
    await db.flush();
    expect(walFiles(mem).length).toBe(segments);
    expect(db.stats().changes.slots).toEqual([{ name: 'r', position: { segmentId: 0, offset: 32 }, retainedBytes: expect.any(Number) }]);
    expect(db.stats().changes.slots[0]!.retainedBytes).toBeGreaterThan(0);
    await db.close();
    db = await open(mem, { walSegmentSize: 4096 });
    expect(walFiles(mem).length).toBe(segments);
    // The slot's consumer resumes where it acknowledged (nothing yet): from the start.
    const resumed = await takeAndEnd(db.changes({ retain: 'r' }), 100);
    expect(resumed).toEqual(got);
    await db.ackChanges('r', got[59]!.next);
    expect(walFiles(mem).length).toBeLessThan(segments);
    expect(walFiles(mem).length).toBeGreaterThan(1);
    await expect(db.ackChanges('r', got[10]!.next)).rejects.toBeInstanceOf(InvalidPositionError);
    await db.ackChanges('r', got[59]!.next); // the same position again: a no-op
    const fromSlot = await takeAndEnd(db.changes({ retain: 'r' }), 1);
    expect(fromSlot[0]!.seq).toBe(61);
    await db.releaseChanges('r');
    expect(walFiles(mem).length).toBe(1);
    expect(db.stats().changes.slots).toEqual([]);
    await db.close();
    db = await open(mem, { walSegmentSize: 4096 });
    expect(db.stats().changes.slots).toEqual([]);
    await db.close();
  });

  it("a checkpoint does not copy the slots: the copy opens with none, and its seqs are the source's", async () => {
    const mem = new MemFileSystem();
    const db = await open(mem, { walSegmentSize: 4096 });
    const f = db.changes({ retain: 'r' });
    await f.ready;
    await f.return!();
    for (let i = 0; i < 30; i++) await db.put(`k${i}`, 'v'.repeat(40));
    await db.checkpoint('/copy');
    await db.close();
    expect(await mem.readdir('/copy')).not.toContain('SLOTS');
    const copy = await DB.open<string, string>('/copy', { fs: mem, valueEncoding: 'utf8', background: 'inline' });
    expect(copy.stats().changes.slots).toEqual([]);
    expect(copy.stats().lastSequence).toBe(30);
    await copy.put('after', 'x');
    expect(copy.stats().lastSequence).toBe(31);
    await copy.close();
  });

  it('an open feed without a slot holds its segments while it reads', async () => {
    const mem = new MemFileSystem();
    const db = await open(mem, { walSegmentSize: 4096 });
    for (let i = 0; i < 100; i++) await db.put(`k${i}`, 'v'.repeat(40));
    const feed = db.changes();
    await take(feed, 10);
    await db.flush();
    const rest = await take(feed, 90);
    expect(rest.map((c) => c.seq)).toEqual(Array.from({ length: 90 }, (_, i) => i + 11));
    await feed.return!();
    await db.put('x', 'y');
    await db.flush();
    expect(walFiles(mem).length).toBe(1);
    await db.close();
  });

  it('maxRetainedBytes: a slot past it is dropped (durably, counted, a meter event) and its feed and acks fail with SlotDroppedError', async () => {
    const mem = new MemFileSystem();
    const events: unknown[] = [];
    const meter = {
      counter: () => undefined,
      histogram: () => undefined,
      event: (e: { type: string }) => void (e.type.startsWith('changes') && events.push(e)),
    };
    let db = await open(mem, { walSegmentSize: 4096, maxRetainedBytes: 8192, meter });
    const feed = db.changes({ retain: 'slow' });
    await db.put('first', '1');
    const [c] = await take(feed, 1);
    for (let i = 0; i < 200; i++) await db.put(`k${i}`, 'v'.repeat(40));
    await db.flush();
    expect(db.stats().changes.slotsDropped).toBe(1);
    expect(db.stats().changes.slots).toEqual([]);
    expect(events).toMatchObject([{ type: 'changes-slot-dropped', slot: 'slow', maxRetainedBytes: 8192 }]);
    await expect(take(feed, 1)).rejects.toBeInstanceOf(SlotDroppedError);
    await expect(db.ackChanges('slow', c!.next)).rejects.toBeInstanceOf(SlotDroppedError);
    expect(walFiles(mem).length).toBe(1);
    await db.close();
    db = await open(mem, { walSegmentSize: 4096, maxRetainedBytes: 8192 });
    expect(db.stats().changes.slots).toEqual([]);
    await db.close();
  });

  it('the SLOTS file: golden bytes (docs/FORMAT.md), and any damage is a CorruptionError naming it', () => {
    expect(encodeSlotsFile(new Map([['replica', { segmentId: 3, offset: 4096 }]])).toString('latin1')).toBe(
      'SDMTSLOT 1\n{"slots":{"replica":{"segmentId":3,"offset":4096}}}\ncrc32c a196cbf6\n',
    );
    const bytes = encodeSlotsFile(
      new Map([
        ['b', { segmentId: 3, offset: 4096 }],
        ['a', { segmentId: 1, offset: 32 }],
      ]),
    );
    const text = bytes.toString('latin1');
    expect(text.split('\n').slice(0, 2)).toEqual([
      'SDMTSLOT 1',
      '{"slots":{"a":{"segmentId":1,"offset":32},"b":{"segmentId":3,"offset":4096}}}',
    ]);
    expect(text).toMatch(/\ncrc32c [0-9a-f]{8}\n$/);
    expect([...decodeSlotsFile(bytes, 'SLOTS')]).toEqual([
      ['a', { segmentId: 1, offset: 32 }],
      ['b', { segmentId: 3, offset: 4096 }],
    ]);
    for (let i = 0; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i]! ^= 0x01;
      expect(() => decodeSlotsFile(bad, 'SLOTS')).toThrow(/SLOTS/);
    }
  });

  it('a power loss at every step of a slot update leaves the old slots or the new ones', async () => {
    const base = new MemFileSystem();
    let db = await open(base, { walSegmentSize: 4096 });
    const feed = db.changes({ retain: 'r' });
    for (let i = 0; i < 60; i++) await db.put(`k${i}`, 'v'.repeat(40));
    const got = await take(feed, 60);
    await feed.return!();
    await db.close();
    const target = got[30]!.next;
    const outcomes = new Set<string>();
    for (let k = 0; ; k++) {
      const mem = base.crashClone();
      let image: MemFileSystem | undefined;
      const fault = new FaultFileSystem(mem);
      db = await open(mem, { walSegmentSize: 4096 });
      await db.close();
      fault.injector = undefined;
      const dbf = await open(fault as unknown as MemFileSystem, { walSegmentSize: 4096 });
      fault.injector = crashAtMutatingOp(k, () => {
        image = mem.crashClone();
      });
      const acked = await dbf.ackChanges('r', target).then(
        () => true,
        () => false,
      );
      await dbf.close().catch(() => undefined);
      if (image === undefined) {
        expect(acked).toBe(true);
        break;
      }
      const after = await open(image, { walSegmentSize: 4096 });
      const slot = after.stats().changes.slots[0]!;
      const state = slot.position.offset === 32 && slot.position.segmentId === 0 ? 'old' : 'new';
      if (state === 'new') expect(slot.position).toEqual(target);
      outcomes.add(state);
      // Whatever survived, the feed from the slot works and starts at a change.
      const [c] = await take(after.changes({ retain: 'r' }), 1);
      expect(c!.seq).toBe(state === 'old' ? 1 : 32);
      await after.close();
    }
    expect(outcomes.has('old')).toBe(true);
  });
});
