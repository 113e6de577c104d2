/**
 * `Wal.appendWith` (internal, the DB's write path): the sink is told where each record went, in
 * append order and before its promise resolves; a failed write or a refusal tells the sink `failed` and rejects;
 * a sink that throws rejects its own append only.
 */
import { describe, expect, it } from 'vitest';
import { FaultFileSystem, type Injector } from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import type { FsyncPolicy } from '../../src/wal/options.js';
import type { AppendSink } from '../../src/wal/wal.js';
import { ProcessFs, Record, Wal, posStr, prepareMem, readAll, walOptions } from './helpers/harness.js';

async function open(fsync: FsyncPolicy, injector?: Injector): Promise<{ wal: Wal; fault: FaultFileSystem }> {
  const fault = new FaultFileSystem(new ProcessFs(await prepareMem(new MemFileSystem())), injector);
  // Small segments: the concurrent appends rotate.
  const { wal } = await Wal.open(walOptions(fault, { fsync, maxSegmentSize: 4096 }));
  return { wal, fault };
}

const rec = (i: number): Record => Record.put(`k${String(i).padStart(3, '0')}`, Buffer.alloc(100 + (i % 7) * 30, i));

/** A sink that logs what it is told, and whether its append had resolved by then. */
function sink(log: string[], i: number, settled: Set<number>): AppendSink {
  return {
    written: (segmentId, offset) => {
      expect(settled.has(i)).toBe(false);
      log.push(`${i}@${segmentId}:${offset}`);
    },
    failed: (err) => {
      log.push(`${i} failed ${err.message}`);
    },
  };
}

describe('Wal.appendWith', () => {
  for (const fsync of ['os', 'always', { batchMs: 5 }] as const) {
    it(`tells each sink its record's position, in append order, before the append resolves (fsync ${JSON.stringify(fsync)})`, async () => {
      const { wal } = await open(fsync);
      const log: string[] = [];
      const settled = new Set<number>();
      // One at a time (a lone writer writes at once), then 60 together (queued, over rotations).
      for (let i = 0; i < 5; i++) {
        await wal.appendWith(rec(i), sink(log, i, settled));
        settled.add(i);
      }
      await Promise.all(
        Array.from({ length: 60 }, (_, j) =>
          wal.appendWith(rec(5 + j), sink(log, 5 + j, settled)).then((v) => {
            expect(v).toBeUndefined();
            settled.add(5 + j);
          }),
        ),
      );
      const entries = await readAll(wal);
      expect(entries.map((e) => e.record.key.toString())).toEqual(Array.from({ length: 65 }, (_, i) => `k${String(i).padStart(3, '0')}`));
      expect(log).toEqual(entries.map((e, i) => `${i}@${posStr(e.position)}`));
      expect(new Set(entries.map((e) => e.position.segmentId)).size).toBeGreaterThan(1);
      await wal.close();
    });
  }

  it("under 'always', a sink is told only once its record is on stable storage (a crash then keeps it)", async () => {
    const mem = await prepareMem(new MemFileSystem());
    const { wal } = await Wal.open(walOptions(new ProcessFs(mem), { fsync: 'always', maxSegmentSize: 4096 }));
    // When each sink is told, the image a power loss would leave right then (unsynced data dropped).
    const images: { i: number; segmentId: number; offset: number; image: MemFileSystem }[] = [];
    const tell = (i: number): AppendSink => ({
      written: (segmentId, offset) =>
        images.push({ i, segmentId, offset, image: mem.crashClone({ unsyncedData: 'drop', unsyncedDirOps: 'drop' }) }),
      failed: (err) => {
        throw err;
      },
    });
    for (let i = 0; i < 3; i++) await wal.appendWith(rec(i), tell(i));
    await Promise.all(Array.from({ length: 30 }, (_, j) => wal.appendWith(rec(3 + j), tell(3 + j))));
    await wal.close();
    expect(images).toHaveLength(33);
    for (const { i, segmentId, offset, image } of images) {
      const { wal: recovered } = await Wal.open(walOptions(new ProcessFs(image), { fsync: 'always', maxSegmentSize: 4096 }));
      const found = (await readAll(recovered)).find((e) => e.position.segmentId === segmentId && e.position.offset === offset);
      expect(found?.record.key.toString(), `record ${i}`).toBe(`k${String(i).padStart(3, '0')}`);
      await recovered.close();
    }
  });

  it('tells the sinks of a failed write failed and rejects their appends, and tells the sink of a refused one too', async () => {
    let failing = false;
    const { wal } = await open('os', (op) => (failing && op.kind === 'writeSync' ? { error: 'EIO' } : undefined));
    const log: string[] = [];
    const settled = new Set<number>();
    // Two together: the next appends queue and share one write.
    await Promise.all([0, 1].map((i) => wal.appendWith(rec(i), sink(log, i, settled))));
    failing = true;
    const results = await Promise.allSettled([2, 3, 4].map((i) => wal.appendWith(rec(i), sink(log, i, settled))));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(log.slice(2).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['2 failed', '3 failed', '4 failed']);
    // Refused now that the log has failed: the sink is told all the same.
    await expect(wal.appendWith(rec(9), sink(log, 9, settled))).rejects.toThrow(/EIO/);
    expect(log.slice(5).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['9 failed']);
    await wal.close().catch(() => undefined);
  });

  it("tells a lone writer's sink failed when its write (made at once) fails", async () => {
    let failing = false;
    const { wal } = await open('os', (op) => (failing && op.kind === 'writeSync' ? { error: 'EIO' } : undefined));
    const log: string[] = [];
    const settled = new Set<number>();
    await wal.appendWith(rec(0), sink(log, 0, settled));
    await wal.appendWith(rec(1), sink(log, 1, settled));
    failing = true;
    await expect(wal.appendWith(rec(2), sink(log, 2, settled))).rejects.toThrow(/EIO/);
    expect(log.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual([log[0], log[1], '2 failed']);
    await wal.close().catch(() => undefined);
  });

  it('rejects only the append whose sink throws', async () => {
    const { wal } = await open('os');
    const told: number[] = [];
    const boom = new Error('boom');
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) =>
        wal.appendWith(rec(i), {
          written: () => {
            told.push(i);
            if (i === 2) throw boom;
          },
          failed: () => told.push(-1),
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toBe(boom);
    expect(told).toEqual([0, 1, 2, 3]);
    // The record is in the log all the same: the sink's refusal is the caller's business.
    expect((await readAll(wal)).length).toBe(4);
    await wal.close();
  });
});
