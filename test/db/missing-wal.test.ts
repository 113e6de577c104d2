/**
 * Missing WAL segments are loud (issue #9): a segment deleted by hand, the first, one in the
 * middle, the one holding the manifest's flushed position or the newest, or the whole `wal/`
 * directory, is a `CorruptionError` naming what is missing under 'strict', and a reported loss
 * under 'salvage'; never a DB that opens with acknowledged writes silently gone.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { CorruptionError } from '../../src/errors.js';
import { readCurrentManifest } from '../../src/db/manifest.js';
import { DIR, openOn, scan, walFiles } from './helpers/harness.js';

const KEYS = 150;
const value = (i: number): string => `value-${i}-${'x'.repeat(60)}`;

/** A DB with KEYS acknowledged writes over several WAL segments; `flushAt` writes flush once at that key. */
async function build(flushAt?: number): Promise<MemFileSystem> {
  const mem = new MemFileSystem();
  const { db } = await openOn<string, string>(mem, { fsync: 'os', walSegmentSize: 4096, memtableSize: 1 << 20, valueEncoding: 'utf8' });
  for (let i = 0; i < KEYS; i++) {
    await db.put(`k${String(i).padStart(3, '0')}`, value(i));
    if (i === flushAt) await db.flush();
  }
  await db.close();
  return mem;
}

function segments(mem: MemFileSystem): string[] {
  return walFiles(mem).sort();
}

async function openErr(mem: MemFileSystem, recovery: 'strict' | 'salvage' = 'strict'): Promise<unknown> {
  return openOn(mem, { fsync: 'os', walSegmentSize: 4096, memtableSize: 1 << 20, valueEncoding: 'utf8', recovery }).then(
    async ({ db }) => {
      const keys = (await scan(db)).length;
      await db.close();
      return { opened: true, keys };
    },
    (e: unknown) => e,
  );
}

describe('a WAL segment deleted by hand', () => {
  it('the oldest, with nothing flushed: CorruptionError naming it; salvage opens and reports the loss', async () => {
    const mem = await build();
    const segs = segments(mem);
    expect(segs.length).toBeGreaterThan(3);
    await mem.unlink(segs[0]!);
    const err = await openErr(mem);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).file).toBe(segs[0]);

    const { db } = await openOn(mem, { fsync: 'os', walSegmentSize: 4096, valueEncoding: 'utf8', recovery: 'salvage' });
    const r = db.stats().walRecovery;
    expect(r.corruptionDetected).toBe(true);
    expect(r.missingSegments).toContain(0);
    await db.put('after', 'salvage');
    expect(await db.get('after')).toBe('salvage');
    await db.close();
    // Salvaged once, the DB opens strict again.
    const { db: again } = await openOn(mem, { fsync: 'os', walSegmentSize: 4096, valueEncoding: 'utf8' });
    expect(await again.get('after')).toBe('salvage');
    await again.close();
  });

  it('one in the middle, and the newest: CorruptionError naming it', async () => {
    for (const which of ['middle', 'newest'] as const) {
      const mem = await build();
      const segs = segments(mem);
      const victim = which === 'middle' ? segs[Math.floor(segs.length / 2)]! : segs[segs.length - 1]!;
      await mem.unlink(victim);
      const err = await openErr(mem);
      expect(err, which).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file, which).toBe(victim);
    }
  });

  it('the segment holding the flushed position and the next: CorruptionError', async () => {
    const mem = await build(60);
    const state = (await readCurrentManifest(mem, DIR))!.state;
    const at = state.flushedThrough!;
    const holding = segments(mem).find((f) => Number(path.basename(f, '.wal')) === at.segmentId)!;
    expect(holding).toBeDefined();
    const next = segments(mem).find((f) => Number(path.basename(f, '.wal')) === at.segmentId + 1)!;
    await mem.unlink(holding);
    if (next) await mem.unlink(next);
    const err = await openErr(mem);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).file).toBe(holding);
  });

  it("the whole wal/ directory: CorruptionError; 'salvage' opens what the tables hold, reporting the loss", async () => {
    for (const flushAt of [undefined, 60]) {
      const mem = await build(flushAt);
      for (const f of mem.listFiles().filter((f) => f.startsWith(`${DIR}/wal/`))) await mem.unlink(f);
      const err = await openErr(mem, 'strict');
      expect(err, String(flushAt)).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file).toMatch(/wal/);
      const { db } = await openOn<string, string>(mem, { fsync: 'os', walSegmentSize: 4096, valueEncoding: 'utf8', recovery: 'salvage' });
      const r = db.stats().walRecovery;
      expect(r.corruptionDetected, String(flushAt)).toBe(true);
      expect(r.stateRebuilt).toBe(true);
      expect((await scan(db)).length).toBe(flushAt === undefined ? 0 : flushAt + 1);
      await db.put('after', 'salvage');
      await db.close();
      const { db: again } = await openOn<string, string>(mem, { fsync: 'os', walSegmentSize: 4096, valueEncoding: 'utf8' });
      expect(await again.get('after')).toBe('salvage');
      await again.close();
    }
  });

  it('wal/ replaced by an older copy of itself: CorruptionError, not the old log taken as current', async () => {
    const mem = new MemFileSystem();
    const opts = { fsync: 'os', walSegmentSize: 4096, memtableSize: 1 << 20, valueEncoding: 'utf8' } as const;
    const { db } = await openOn<string, string>(mem, opts);
    for (let i = 0; i < 20; i++) await db.put(`k${i}`, value(i));
    await db.close();
    const old = new Map(
      mem
        .listFiles()
        .filter((f) => f.startsWith(`${DIR}/wal/`))
        .map((f) => [f, mem.readFileBytes(f)]),
    );
    const { db: again } = await openOn<string, string>(mem, opts);
    for (let i = 20; i < 120; i++) await again.put(`k${i}`, value(i));
    await again.flush(); // the flushed position is in a segment the old copy never had
    for (let i = 120; i < 150; i++) await again.put(`k${i}`, value(i)); // only in the WAL
    await again.close();
    for (const f of mem.listFiles().filter((f) => f.startsWith(`${DIR}/wal/`))) await mem.unlink(f);
    for (const [f, bytes] of old) mem.writeFileBytes(f, bytes);
    const err = await openErr(mem);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as Error).message).toContain('never created');
  });

  it('a DB made by sediment 0.1.0 (no OPTIONS, no wal/SEGMENTS) opens strict, and is tracked from then on', async () => {
    const mem = await build(60);
    await mem.unlink(`${DIR}/OPTIONS`);
    await mem.unlink(`${DIR}/wal/SEGMENTS`);
    const opts = { fsync: 'os', walSegmentSize: 4096, memtableSize: 1 << 20, valueEncoding: 'utf8' } as const;
    const { db } = await openOn<string, string>(mem, opts);
    expect(db.stats().walRecovery).toMatchObject({ corruptionDetected: false, stateRebuilt: true });
    expect((await scan(db)).length).toBe(KEYS);
    await db.close();
    expect(mem.listFiles()).toContain(`${DIR}/OPTIONS`);
    expect(mem.listFiles()).toContain(`${DIR}/wal/SEGMENTS`);
    // From now on a deleted segment is caught.
    const segs = segments(mem);
    await mem.unlink(segs[segs.length - 1]!);
    expect(await openErr(mem)).toBeInstanceOf(CorruptionError);
  });

  it('segments below the flushed position that GC already deleted are not missing', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { fsync: 'os', walSegmentSize: 4096, memtableSize: 8192, valueEncoding: 'utf8' });
    for (let i = 0; i < 600; i++) await db.put(`k${i % 200}`, value(i));
    await db.flush();
    const s = db.stats();
    expect(s.flushes).toBeGreaterThan(1);
    expect(s.wal.segmentsDeleted).toBeGreaterThan(0);
    await db.close();
    const { db: again } = await openOn<string, string>(mem, {
      fsync: 'os',
      walSegmentSize: 4096,
      memtableSize: 8192,
      valueEncoding: 'utf8',
    });
    expect(again.stats().walRecovery.corruptionDetected).toBe(false);
    expect((await scan(again)).length).toBe(200);
    await again.close();
  });
});
