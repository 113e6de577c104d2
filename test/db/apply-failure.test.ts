/**
 * A logged write that the memtable then fails to take (it cannot be refused there: everything
 * is checked before the append; what remains is running out of memory) must not leave half a
 * batch visible: the write rejects, writes and reads stop with the same error, and a reopen
 * recovers the whole batch from the WAL.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { Memtable } from '../../src/memtable/index.js';
import { openOn, scan } from './helpers/harness.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('a memtable insert that throws mid-batch', () => {
  it('rejects the write, stops writes, snapshots, iterators and reads (no half batch), and a reopen has the whole batch', async () => {
    const mem = new MemFileSystem();
    const { db } = await openOn<string, string>(mem, { fsync: 'os', valueEncoding: 'utf8' });
    await db.put('a', 'old-a');
    await db.put('b', 'old-b');

    const original = Memtable.prototype.insertFrom;
    let calls = 0;
    vi.spyOn(Memtable.prototype, 'insertFrom').mockImplementation(function (this: Memtable, ...args) {
      if (++calls === 2) throw new RangeError('Array buffer allocation failed');
      return original.apply(this, args);
    });
    const batch = db.batch([
      { type: 'put', key: 'a', value: 'new-a' },
      { type: 'put', key: 'b', value: 'new-b' },
      { type: 'put', key: 'c', value: 'new-c' },
    ]);
    await expect(batch).rejects.toThrow('Array buffer allocation failed');
    expect(calls).toBe(2); // the first op reached the memtable: a read now could see half the batch
    vi.restoreAllMocks();

    const stopped = /a logged write could not be applied to the memtable/;
    expect(() => db.getSync('a')).toThrow(stopped);
    await expect(db.get('b')).rejects.toThrow(stopped);
    await expect(db.has('a')).rejects.toThrow(stopped);
    await expect(db.getMany(['a', 'c'])).rejects.toThrow(stopped);
    expect(() => db.iterator()).toThrow(stopped);
    expect(() => db.snapshot()).toThrow(stopped);
    await expect(db.put('d', 'x')).rejects.toThrow(stopped);
    await db.close().catch(() => undefined);

    const { db: again } = await openOn<string, string>(mem, { fsync: 'os', valueEncoding: 'utf8' });
    expect(await scan(again)).toEqual([
      ['a', 'new-a'],
      ['b', 'new-b'],
      ['c', 'new-c'],
    ]);
    await again.close();
  });
});
