/**
 * The DB's meter: its own counters, histograms and events (flushes, compactions, write stalls,
 * background errors) beside its WAL's, a throwing meter that breaks nothing, a bad one refused.
 */
import { describe, expect, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { FaultFileSystem } from '../../src/fs/fault.js';
import type { DBMeter, DBEvent } from '../../src/db/index.js';
import type { WalEvent } from '../../src/wal/index.js';
import { DB } from '../../src/db/index.js';
import { DIR, TINY, openOn } from './helpers/harness.js';

function recording(): { meter: DBMeter; counters: Map<string, number>; histograms: Map<string, number[]>; events: (WalEvent | DBEvent)[] } {
  const counters = new Map<string, number>();
  const histograms = new Map<string, number[]>();
  const events: (WalEvent | DBEvent)[] = [];
  const meter: DBMeter = {
    counter: (name, delta) => counters.set(name, (counters.get(name) ?? 0) + delta),
    histogram: (name, value) => histograms.set(name, [...(histograms.get(name) ?? []), value]),
    event: (e) => events.push(e),
  };
  return { meter, counters, histograms, events };
}

describe('the DB meter', () => {
  it('counts flushes, compactions and their bytes as stats() does, and the WAL reports through it', async () => {
    const r = recording();
    const { db } = await openOn<string, string>(new MemFileSystem(), { ...TINY, fsync: 'os', valueEncoding: 'utf8', meter: r.meter });
    for (let i = 0; i < 400; i++) await db.put(`k${i % 150}`, `v${i}`.padEnd(40, 'x'));
    await db.compact();
    const s = db.stats();
    expect(s.flushes).toBeGreaterThan(1);
    expect(s.compactions).toBeGreaterThan(0);
    expect(r.counters.get('db.flushes')).toBe(s.flushes);
    expect(r.counters.get('db.flush_bytes')).toBe(s.flushBytes);
    expect(r.counters.get('db.compactions')).toBe(s.compactions);
    expect(r.counters.get('db.compaction_read_bytes')).toBe(s.compactionBytesRead);
    expect(r.counters.get('db.compaction_written_bytes')).toBe(s.compactionBytesWritten);
    expect(r.counters.get('db.write_stalls') ?? 0).toBe(s.writeStalls);
    expect(r.histograms.get('db.flush_ms')!.length).toBe(s.flushes);
    expect(r.events.filter((e) => e.type === 'flush').length).toBe(s.flushes);
    expect(r.events.filter((e) => e.type === 'compaction').length).toBe(s.compactions);
    expect(r.counters.get('wal.records')).toBe(400);
    await db.close();
  });

  it('reports a background error once', async () => {
    const r = recording();
    const mem = new MemFileSystem();
    const ffs = new FaultFileSystem(mem);
    const db = await DB.open<string, string>(DIR, { ...TINY, fsync: 'os', valueEncoding: 'utf8', meter: r.meter, fs: ffs });
    ffs.injector = (op) => (op.kind === 'write' && op.path.endsWith('.sst') ? { error: 'ENOSPC' } : undefined);
    await expect(
      db
        .flush()
        .then(() => db.put('a', 'b'))
        .then(() => db.flush()),
    ).rejects.toMatchObject({ code: 'IO' });
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, 'v'.repeat(40)).catch(() => undefined);
    await db.put('x', 'y').catch(() => undefined);
    expect(r.counters.get('db.background_errors')).toBe(1);
    expect(r.events.filter((e) => e.type === 'background-error')).toHaveLength(1);
    ffs.injector = undefined;
    await db.close();
  });

  it('a throwing meter breaks nothing; a meter without its methods is INVALID_CONFIG', async () => {
    const boom = (): never => {
      throw new Error('meter failure');
    };
    const { db } = await openOn<string, string>(new MemFileSystem(), {
      ...TINY,
      fsync: 'os',
      valueEncoding: 'utf8',
      meter: { counter: boom, histogram: boom, event: boom },
    });
    for (let i = 0; i < 200; i++) await db.put(`k${i}`, 'v'.repeat(40));
    await db.compact();
    expect(await db.get('k7')).toBe('v'.repeat(40));
    await db.close();
    await expect(
      DB.open(DIR, { fs: new MemFileSystem(), meter: { counter: () => undefined } as unknown as DBMeter }),
    ).rejects.toMatchObject({ code: 'INVALID_CONFIG', option: 'meter' });
  });
});
