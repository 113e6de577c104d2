/**
 * Issue #9, point 12 (WAL part): after a failed write, the WAL trims the partial bytes off the
 * segment (best effort). That trim used to run unawaited, so close() could close the segment's
 * handle, and resolve, while it was still in flight. close() must wait for it.
 */
import { describe, expect, it } from 'vitest';
import { FaultFileSystem } from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import type { DirectoryLock, FileHandle, FileStat, FileSystem, OpenMode } from '../../src/fs/types.js';
import { IoError, Record, Wal } from '../../src/wal/index.js';

/** Delegates to `inner`; a handle's truncate waits for `gate` while it is set, and every step is logged. */
class GatedFs implements FileSystem {
  readonly log: string[] = [];
  gate: Promise<void> | undefined;
  constructor(readonly inner: FileSystem) {}

  async open(p: string, mode: OpenMode): Promise<FileHandle> {
    const h = await this.inner.open(p, mode);
    const log = this.log;
    const currentGate = (): Promise<void> | undefined => this.gate;
    return {
      path: h.path,
      read: (b, o, l, pos) => h.read(b, o, l, pos),
      readSync: (b, o, l, pos) => h.readSync(b, o, l, pos),
      write: (b, o, l, pos) => h.write(b, o, l, pos),
      writeSync: (b, o, l, pos) => h.writeSync(b, o, l, pos),
      datasync: () => h.datasync(),
      size: () => h.size(),
      async truncate(size: number): Promise<void> {
        log.push(`truncate-start ${p} ${size}`);
        const gate = currentGate();
        if (gate) await gate;
        await h.truncate(size);
        log.push(`truncate-done ${p} ${size}`);
      },
      async close(): Promise<void> {
        log.push(`close ${p}`);
        await h.close();
      },
    };
  }
  readdir(d: string): Promise<string[]> {
    return this.inner.readdir(d);
  }
  mkdir(d: string): Promise<void> {
    return this.inner.mkdir(d);
  }
  stat(p: string): Promise<FileStat> {
    return this.inner.stat(p);
  }
  rename(a: string, b: string): Promise<void> {
    return this.inner.rename(a, b);
  }
  unlink(p: string): Promise<void> {
    return this.inner.unlink(p);
  }
  syncDir(d: string): Promise<void> {
    return this.inner.syncDir(d);
  }
  lock(d: string): Promise<DirectoryLock> {
    return this.inner.lock(d);
  }
}

describe('close after a failed write', () => {
  for (const lone of [true, false]) {
    it(`waits for the trim of the partial write before closing the segment (${lone ? 'lone writer' : 'queued appends'})`, async () => {
      const mem = new MemFileSystem();
      const gated = new GatedFs(mem);
      let failing = 0; // 1: the next segment write lands 10 bytes; 2: the one after fails
      const fault = new FaultFileSystem(gated, (op) => {
        if (failing === 0 || op.kind !== 'writeSync' || !op.path.endsWith('.wal')) return undefined;
        if (failing === 1) {
          failing = 2;
          return { shortWrite: 10 };
        }
        failing = 0;
        return { error: 'ENOSPC' };
      });
      const { wal } = await Wal.open({ dir: '/db', fs: fault, fsync: 'os', preallocate: false });
      await wal.append(Record.put('a', '1'));
      // A lone writer writes inside append(); after a write of two records, appends queue for a flush.
      if (lone) await wal.append(Record.put('b', '2'));
      else await wal.appendBatch([Record.put('b', '2'), Record.put('b2', '2')]);
      const end = wal.currentPosition();
      const seg = `/db/${'0'.repeat(16)}.wal`;

      let release!: () => void;
      gated.gate = new Promise<void>((r) => (release = r));
      failing = 1;
      const attempts = lone ? [wal.append(Record.put('c', '3'))] : [wal.append(Record.put('c', '3')), wal.append(Record.put('d', '4'))];
      const results = await Promise.allSettled(attempts);
      for (const r of results) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(IoError);
      }
      expect(gated.log).toContain(`truncate-start ${seg} ${end.offset}`);

      let closed = false;
      const closing = wal.close().finally(() => (closed = true));
      closing.catch(() => undefined);
      for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
      expect(closed, 'close() resolved while the trim was still running').toBe(false);
      expect(gated.log, 'the segment was closed under the running trim').not.toContain(`close ${seg}`);

      release();
      await expect(closing).rejects.toBeInstanceOf(IoError);
      const done = gated.log.indexOf(`truncate-done ${seg} ${end.offset}`);
      expect(done).toBeGreaterThanOrEqual(0);
      expect(gated.log.indexOf(`close ${seg}`)).toBeGreaterThan(done);
      // The partial bytes are gone: the segment ends at the last acknowledged record.
      expect(mem.readFileBytes(seg).length).toBe(end.offset);
    });
  }
});
