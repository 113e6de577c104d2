import { afterEach, describe, expect, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import {
  ClosedError,
  InvalidConfigError,
  Record,
  Wal,
  comparePositions,
  type LogEntry,
  type Meter,
  type Position,
  type WalEvent,
  type WalOptions,
} from '../../src/wal/index.js';

const open: Wal[] = [];
afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((w) => w.close()));
});

async function openWal(fs: MemFileSystem, options: Partial<WalOptions> = {}) {
  const result = await Wal.open({ dir: '/db', fs, fsync: 'os', ...options });
  open.push(result.wal);
  return result;
}

async function readAll(wal: Wal, from: Position = { segmentId: 0, offset: 0 }): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const e of wal.readFrom(from)) out.push(e);
  return out;
}

const text = (b: Uint8Array) => Buffer.from(b).toString();

describe('Wal basics', () => {
  it('appends, reads back in order, and reopens with the same records', async () => {
    const fs = new MemFileSystem();
    const { wal, recovery } = await openWal(fs);
    expect(recovery).toMatchObject({
      validRecords: 0,
      segmentsScanned: 0,
      bytesTruncated: 0,
      corruptionDetected: false,
      lastPosition: null,
    });
    const p1 = await wal.append(Record.put('a', '1'));
    const p2 = await wal.append(Record.delete('b'));
    const batch = await wal.appendBatch([Record.put('c', '3'), Record.put('d', '4', { expiresAt: 5 })]);
    expect(comparePositions(p1, p2)).toBeLessThan(0);
    expect(comparePositions(p2, batch[0]!)).toBeLessThan(0);
    expect(comparePositions(wal.currentPosition(), batch[1]!)).toBeGreaterThan(0);

    const entries = await readAll(wal);
    expect(entries.map((e) => text(e.record.key))).toEqual(['a', 'b', 'c', 'd']);
    expect(entries.map((e) => e.position)).toEqual([p1, p2, ...batch]);
    expect(entries[1]!.record.tombstone).toBe(true);
    expect(entries[3]!.record.expiresAt).toBe(5); // expired records are still replayed

    await wal.close();
    const again = await openWal(fs);
    expect(again.recovery).toMatchObject({ validRecords: 4, lastPosition: batch[1] });
    expect((await readAll(again.wal)).map((e) => text(e.record.value))).toEqual(['1', '', '3', '4']);
  });

  it("records from readFrom own their bytes: no view into the reader's chunk buffer", async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs);
    for (let i = 0; i < 200; i++) await wal.append(Record.put(`k${i}`, Buffer.alloc(500, i)));
    const entries = await readAll(wal);
    expect(entries).toHaveLength(200);
    entries.forEach((e, i) => {
      expect(text(e.record.key)).toBe(`k${i}`);
      expect(Buffer.from(e.record.value).equals(Buffer.alloc(500, i))).toBe(true);
      // A kept record must not pin the reader's 1 MiB chunk (nor change if it were reused): it
      // holds a copy, in Node's buffer pool (a slab of Buffer.poolSize, 8 KiB, shared by copies).
      expect(e.record.value.buffer.byteLength).toBeLessThanOrEqual(Buffer.poolSize);
    });
  });

  it('readFrom starts at a position, and at the next record from a non-boundary offset', async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs);
    const ps: Position[] = [];
    for (let i = 0; i < 10; i++) ps.push(await wal.append(Record.put(`k${i}`, `v${i}`)));
    expect((await readAll(wal, ps[4])).map((e) => text(e.record.key))).toEqual(['k4', 'k5', 'k6', 'k7', 'k8', 'k9']);
    const inside = { segmentId: ps[4]!.segmentId, offset: ps[4]!.offset + 3 };
    expect((await readAll(wal, inside))[0]!.position).toEqual(ps[5]);
    expect(await readAll(wal, wal.currentPosition())).toEqual([]);
  });

  it('rotates segments past maxSegmentSize and reads across them', async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs, { maxSegmentSize: 300 });
    for (let i = 0; i < 50; i++) await wal.append(Record.put(`key-${i}`, 'x'.repeat(40)));
    const stats = wal.stats();
    expect(stats.segments).toBeGreaterThan(5);
    expect(stats.rotations).toBe(stats.segments - 1);
    const entries = await readAll(wal);
    expect(entries.map((e) => text(e.record.key))).toEqual(Array.from({ length: 50 }, (_, i) => `key-${i}`));
    expect(fs.listFiles().filter((f) => f.endsWith('.wal'))).toHaveLength(stats.segments);
  });

  it('keeps a batch in one segment even when it is bigger than maxSegmentSize', async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs, { maxSegmentSize: 200 });
    await wal.append(Record.put('first', 'x'));
    const ps = await wal.appendBatch(Array.from({ length: 10 }, (_, i) => Record.put(`b${i}`, 'y'.repeat(30))));
    expect(new Set(ps.map((p) => p.segmentId)).size).toBe(1);
    expect(ps[0]!.segmentId).toBe(1);
    await wal.close();
    const again = await openWal(fs, { maxSegmentSize: 200 });
    expect(again.recovery.validRecords).toBe(11);
  });

  it('reads records appended while iterating, until it catches up', async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs, { maxSegmentSize: 400 });
    for (let i = 0; i < 5; i++) await wal.append(Record.put(`k${i}`, 'v'.repeat(50)));
    const seen: string[] = [];
    let appended = 5;
    for await (const e of wal.readFrom({ segmentId: 0, offset: 0 })) {
      seen.push(text(e.record.key));
      if (appended < 20) await wal.append(Record.put(`k${appended++}`, 'v'.repeat(50)));
    }
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => `k${i}`));
  });

  it('deleteSegmentsBefore deletes old segments, never the active one; old positions read from the oldest kept', async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs, { maxSegmentSize: 200 });
    const ps: Position[] = [];
    for (let i = 0; i < 30; i++) ps.push(await wal.append(Record.put(`k${i}`, 'v'.repeat(30))));
    const cut = ps[20]!;
    const before = wal.stats().segments;
    const deleted = await wal.deleteSegmentsBefore(cut);
    expect(deleted).toBe(cut.segmentId); // segments 0 .. cut-1
    expect(wal.stats().oldestSegmentId).toBe(cut.segmentId);
    expect(wal.stats().segments).toBe(before - deleted);
    const rest = await readAll(wal, { segmentId: 0, offset: 0 });
    expect(rest[0]!.position.segmentId).toBe(cut.segmentId);
    expect(rest.map((e) => text(e.record.key))).toContain('k29');
    // A position far in the future still leaves the active segment alone.
    await wal.deleteSegmentsBefore({ segmentId: 1e9, offset: 0 });
    expect(wal.stats().segments).toBe(1);
    expect(await wal.append(Record.put('after', 'gc'))).toMatchObject({ segmentId: wal.stats().activeSegmentId });
    await wal.close();
    const again = await openWal(fs, { maxSegmentSize: 200 });
    expect((await readAll(again.wal)).map((e) => text(e.record.key)).at(-1)).toBe('after');
  });

  it('retain holds segment deletion until the last hold is released, then deletes before the furthest position asked', async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs, { maxSegmentSize: 200 });
    const ps: Position[] = [];
    for (let i = 0; i < 30; i++) ps.push(await wal.append(Record.put(`k${i}`, 'v'.repeat(30))));
    const segments = wal.stats().segments;
    const a = wal.retain();
    expect(a.position).toEqual(wal.currentPosition());
    expect(a.segmentIds).toEqual(Array.from({ length: segments }, (_, i) => i));
    const b = wal.retain();
    await wal.append(Record.put('later', 'v'.repeat(200))); // rotates: not in the holds' lists
    expect(a.segmentIds.at(-1)).toBe(a.position.segmentId);
    expect(await wal.deleteSegmentsBefore(ps[10]!)).toBe(0);
    expect(await wal.deleteSegmentsBefore(ps[25]!)).toBe(0);
    expect(await wal.deleteSegmentsBefore(ps[5]!)).toBe(0);
    expect(wal.stats().segmentsDeleted).toBe(0);
    a.release();
    a.release(); // idempotent: b still holds
    await wal.flush();
    expect(wal.stats().segmentsDeleted).toBe(0);
    b.release();
    await wal.close(); // waits for the deferred deletion
    expect(wal.stats().segmentsDeleted).toBe(ps[25]!.segmentId);
    expect(wal.stats().oldestSegmentId).toBe(ps[25]!.segmentId);
    // A deletion deferred past close is dropped: the segments stay.
    const again = await openWal(fs, { maxSegmentSize: 200 });
    const hold = again.wal.retain();
    await again.wal.deleteSegmentsBefore(again.wal.currentPosition());
    const before = again.wal.stats().segments;
    await again.wal.close();
    hold.release();
    expect(again.wal.stats().segments).toBe(before);
    expect(fs.listFiles().filter((f) => f.endsWith('.wal')).length).toBe(before);
  });

  it('a caller awaiting appends in a tight loop does not starve timers: the event loop keeps turning', async () => {
    // Appends resolve through microtasks; without the WAL yielding once in a while, a loop like
    // this would never let a timer run (nor the { batchMs } fsync timer).
    for (const fsync of ['os', { batchMs: 3 }] as const) {
      const fs = new MemFileSystem();
      const { wal } = await openWal(fs, { fsync });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      // Counted, not timed: the loop runs until the interval has fired 10 times (at least 10 ms,
      // however slow the machine), or gives up after far more appends than that takes. A WAL that
      // starved timers would never let it fire.
      let appended = 0;
      while (ticks < 10 && appended < 2_000_000) {
        await wal.append(Record.put(`k${appended}`, 'v'));
        appended++;
      }
      clearInterval(timer);
      expect(ticks).toBe(10);
      expect(appended).toBeGreaterThan(10);
      if (fsync !== 'os') expect(wal.stats().fsyncs).toBeGreaterThan(1);
      await wal.close();
    }
  });

  it('large records awaited in a loop yield by bytes too: a turn holds at most ~64 KiB of them', async () => {
    // A DB writes a whole batch as one record: counted in records alone, 64 batches of 1000 puts
    // would fit one event-loop turn (half a second of work). Counted in turns, not timed.
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs, { fsync: 'os', maxSegmentSize: 64 << 20 });
    let turns = 0;
    let stop = false;
    const turn = (): void => {
      turns++;
      if (!stop) setImmediate(turn);
    };
    setImmediate(turn);
    const value = 'v'.repeat(64 << 10);
    for (let i = 0; i < 64; i++) await wal.append(Record.put(`k${i}`, value));
    stop = true;
    // 64 x 64 KiB = 4 MiB: the budget is checked before a write, so one 64 KiB record passes
    // it and ends the turn: a turn per record (all 64 in one turn before the byte budget).
    expect(turns).toBeGreaterThanOrEqual(60);
    await wal.close();
  });

  it('reports measurements to a meter', async () => {
    const events: WalEvent[] = [];
    const counters = new Map<string, number>();
    const meter: Meter = {
      counter: (n, d) => counters.set(n, (counters.get(n) ?? 0) + d),
      histogram: () => undefined,
      event: (e) => events.push(e),
    };
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs, { meter, maxSegmentSize: 200, fsync: 'always' });
    await Promise.all(Array.from({ length: 10 }, (_, i) => wal.append(Record.put(`k${i}`, 'v'.repeat(30)))));
    await wal.deleteSegmentsBefore(wal.currentPosition());
    expect(counters.get('wal.records')).toBe(10);
    expect(counters.get('wal.fsyncs')).toBeGreaterThan(0);
    expect(events.some((e) => e.type === 'segment-roll')).toBe(true);
    expect(events.some((e) => e.type === 'fsync')).toBe(true);
    expect(events.some((e) => e.type === 'segments-deleted')).toBe(true);
  });

  it('a throwing meter does not break the log', async () => {
    const bad: Meter = {
      counter: () => {
        throw new Error('meter');
      },
      histogram: () => {
        throw new Error('meter');
      },
      event: () => {
        throw new Error('meter');
      },
    };
    const { wal } = await openWal(new MemFileSystem(), { meter: bad, fsync: 'always' });
    await expect(wal.append(Record.put('k', 'v'))).resolves.toBeDefined();
  });
});

describe('Wal bad input and lifecycle', () => {
  it('rejects wrong argument types with TypeError and changes nothing', async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs);
    const end = wal.currentPosition();
    await expect(wal.append('k' as unknown as Record)).rejects.toThrow(TypeError);
    await expect(wal.appendBatch([Record.put('a', 'b'), {} as Record])).rejects.toThrow(TypeError);
    await expect(wal.appendBatch('x' as unknown as Record[])).rejects.toThrow(TypeError);
    await expect(wal.deleteSegmentsBefore({ segmentId: -1, offset: 0 })).rejects.toThrow(TypeError);
    await expect(wal.readFrom({ segmentId: 'a' } as unknown as Position).next()).rejects.toThrow(TypeError);
    expect(wal.currentPosition()).toEqual(end);
  });

  it('rejects oversized records with RangeError, the whole batch with them', async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs, { maxRecordSize: 100 });
    await expect(wal.append(Record.put('k', 'v'.repeat(200)))).rejects.toThrow(RangeError);
    await expect(wal.appendBatch([Record.put('a', 'b'), Record.put('k', 'v'.repeat(200))])).rejects.toThrow(RangeError);
    expect(await readAll(wal)).toEqual([]);
    await expect(wal.append(Record.put('k', 'v'))).resolves.toBeDefined();
  });

  it.each([
    [{ maxSegmentSize: 0 }, 'maxSegmentSize'],
    [{ maxSegmentSize: 1.5 }, 'maxSegmentSize'],
    [{ maxRecordSize: -1 }, 'maxRecordSize'],
    [{ fsync: 'sometimes' }, 'fsync'],
    [{ fsync: { batchMs: 0 } }, 'fsync.batchMs'],
    [{ fsync: { batchMs: 5, extra: 1 } }, 'fsync'],
    [{ recovery: 'lenient' }, 'recovery'],
    [{ meter: {} }, 'meter'],
    [{ preallocate: -5 }, 'preallocate'],
    [{ bytesPerSync: -1 }, 'bytesPerSync'],
    [{ bytesPerSync: 'lots' }, 'bytesPerSync'],
    [{ dir: '' }, 'dir'],
  ])('rejects invalid option %j with INVALID_CONFIG', async (bad, option) => {
    const fs = new MemFileSystem();
    const err = await Wal.open({ dir: '/db', fs, ...(bad as object) } as WalOptions).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidConfigError);
    expect(err).toMatchObject({ code: 'INVALID_CONFIG', option });
    expect(fs.listFiles()).toEqual([]); // nothing touched
  });

  it('close drains queued appends, is idempotent, and later calls reject with CLOSED', async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs, { fsync: { batchMs: 50 } });
    const pending = Array.from({ length: 20 }, (_, i) => wal.append(Record.put(`k${i}`, 'v')));
    const c1 = wal.close();
    const c2 = wal.close();
    expect(c1).toBe(c2);
    await c1;
    await expect(Promise.all(pending)).resolves.toHaveLength(20);
    for (const call of [
      () => wal.append(Record.put('k', 'v')),
      () => wal.appendBatch([Record.put('k', 'v')]),
      () => wal.sync(),
      () => wal.flush(),
      () => wal.deleteSegmentsBefore({ segmentId: 0, offset: 0 }),
      () => wal.readFrom({ segmentId: 0, offset: 0 }).next(),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClosedError);
      expect(err).toMatchObject({ code: 'CLOSED' });
    }
    // Everything drained was made durable by close: a power loss now keeps all 20.
    const after = await openWal(fs.crashClone());
    expect(after.recovery.validRecords).toBe(20);
  });

  it('a second open of the same directory is LOCKED until the first closes', async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs);
    await expect(Wal.open({ dir: '/db', fs })).rejects.toMatchObject({ code: 'LOCKED' });
    await wal.append(Record.put('still', 'works'));
    await wal.close();
    const again = await openWal(fs);
    expect(again.recovery.validRecords).toBe(1);
  });

  it('sync makes resolved appends durable under every policy', async () => {
    for (const fsync of ['os', 'always', { batchMs: 1000 }] as const) {
      const fs = new MemFileSystem();
      const { wal } = await openWal(fs, { fsync, maxSegmentSize: 300 });
      for (let i = 0; i < 20; i++) await wal.append(Record.put(`k${i}`, 'v'.repeat(20)));
      await wal.sync();
      const crashed = await openWal(fs.crashClone());
      expect(crashed.recovery.validRecords).toBe(20);
      await wal.close();
    }
  });

  it("'os' keeps appends out of stable storage until sync", async () => {
    const fs = new MemFileSystem();
    const { wal } = await openWal(fs, { fsync: 'os' });
    await wal.append(Record.put('k', 'v'));
    const crashed = await openWal(fs.crashClone());
    expect(crashed.recovery.validRecords).toBe(0);
    await wal.close();
  });
});
