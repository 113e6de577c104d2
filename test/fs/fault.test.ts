import { describe, expect, it } from 'vitest';
import {
  combine,
  crashAtMutatingOp,
  FaultFileSystem,
  failAt,
  failNth,
  shortWriteThenFail,
  type FsOp,
  type Injector,
} from '../../src/fs/fault.js';
import { MemFileSystem } from '../../src/fs/mem.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const code = (c: string) => expect.objectContaining({ code: c });

async function setup(injector?: Injector): Promise<{ mem: MemFileSystem; fs: FaultFileSystem }> {
  const mem = new MemFileSystem();
  await mem.mkdir('/db');
  await mem.syncDir('/');
  return { mem, fs: new FaultFileSystem(mem, injector) };
}

/** An injector that records every op it sees and lets it run. */
function recorder(): { ops: FsOp[]; injector: Injector } {
  const ops: FsOp[] = [];
  return { ops, injector: (op) => void ops.push(op) };
}

describe('FaultFileSystem', () => {
  it('passes operations through and counts them', async () => {
    const { mem, fs } = await setup();
    const h = await fs.open('/db/f', 'create'); // mutating
    expect(h.writeSync(bytes('abc'), 0, 3, 0)).toBe(3); // mutating
    expect(await h.write(bytes('de'), 0, 2, 3)).toBe(2); // mutating
    await h.datasync(); // mutating
    await fs.syncDir('/db'); // mutating
    const buf = new Uint8Array(5);
    expect(await h.read(buf, 0, 5, 0)).toBe(5);
    expect(h.readSync(buf, 0, 5, 0)).toBe(5);
    expect(await h.size()).toBe(5);
    expect(h.path).toBe('/db/f');
    await h.close();
    expect(await fs.readdir('/db')).toEqual(['f']);
    expect(await fs.stat('/db/f')).toEqual({ size: 5, isDirectory: false });
    await fs.mkdir('/db/sub'); // mutating
    await fs.rename('/db/f', '/db/g'); // mutating
    await fs.unlink('/db/g'); // mutating
    const lock = await fs.lock('/db');
    await lock.release();
    expect(fs.ops).toBe(15);
    expect(fs.mutatingOps).toBe(8);
    expect(mem.listFiles()).toEqual([]);
  });

  it('describes each operation to the injector', async () => {
    const { ops, injector } = recorder();
    const { fs } = await setup(injector);
    const h = await fs.open('/db/f', 'create');
    h.writeSync(bytes('abcd'), 1, 2, 0);
    await h.truncate(7);
    await h.read(new Uint8Array(4), 0, 4, 0);
    await h.close();
    const ro = await fs.open('/db/f', 'read');
    await ro.close();
    await fs.rename('/db/f', '/db/g');
    expect(ops).toEqual([
      { index: 0, kind: 'open', path: '/db/f', mutating: true },
      { index: 1, kind: 'writeSync', path: '/db/f', mutating: true, length: 2 },
      { index: 2, kind: 'truncate', path: '/db/f', mutating: true, length: 7 },
      { index: 3, kind: 'read', path: '/db/f', mutating: false, length: 4 },
      { index: 4, kind: 'close', path: '/db/f', mutating: false },
      { index: 5, kind: 'open', path: '/db/f', mutating: false },
      { index: 6, kind: 'close', path: '/db/f', mutating: false },
      { index: 7, kind: 'rename', path: '/db/f', to: '/db/g', mutating: true },
    ]);
  });

  it('fails without running the op, and can get its injector later', async () => {
    const { mem, fs } = await setup();
    const h = await fs.open('/db/f', 'create');
    fs.injector = () => ({ error: 'EIO' });
    await expect(h.write(bytes('abc'), 0, 3, 0)).rejects.toEqual(code('EIO'));
    expect(() => h.writeSync(bytes('abc'), 0, 3, 0)).toThrow(code('EIO')); // synchronously
    await expect(fs.unlink('/db/f')).rejects.toEqual(code('EIO'));
    const err: unknown = await fs.stat('/db/f').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: 'EIO', syscall: 'stat', path: '/db/f' });
    fs.injector = undefined;
    expect(mem.readFileBytes('/db/f').length).toBe(0);
    expect(mem.listFiles()).toEqual(['/db/f']);
  });

  it('describes links and rmdirs as mutating, and fails them with ENOTSUP over a file system without them', async () => {
    const { ops, injector } = recorder();
    const { mem, fs } = await setup(injector);
    await (await fs.open('/db/f', 'create')).close();
    await fs.mkdir('/db/sub');
    await fs.link('/db/f', '/db/sub/f');
    await fs.unlink('/db/sub/f');
    await fs.rmdir('/db/sub');
    expect(ops.slice(2)).toEqual([
      { index: 2, kind: 'mkdir', path: '/db/sub', mutating: true },
      { index: 3, kind: 'link', path: '/db/f', to: '/db/sub/f', mutating: true },
      { index: 4, kind: 'unlink', path: '/db/sub/f', mutating: true },
      { index: 5, kind: 'rmdir', path: '/db/sub', mutating: true },
    ]);
    expect(mem.listFiles()).toEqual(['/db/f']);
    const bare = new FaultFileSystem({ ...mem, open: mem.open.bind(mem), link: undefined, rmdir: undefined } as never);
    await expect(bare.link('/db/f', '/db/g')).rejects.toEqual(code('ENOTSUP'));
    await expect(bare.rmdir('/db')).rejects.toEqual(code('ENOTSUP'));
    expect(bare.mutatingOps).toBe(2);
  });

  it('rejects a shortWrite answer for an operation that is not a write', async () => {
    const { fs } = await setup(() => ({ shortWrite: 1 }));
    await expect(fs.stat('/db')).rejects.toBeInstanceOf(TypeError);
  });
});

describe('failAt', () => {
  it('fails the op with that global index, once', async () => {
    const { mem, fs } = await setup(failAt(1, 'ENOSPC'));
    const h = await fs.open('/db/f', 'create'); // op 0
    await expect(h.write(bytes('abc'), 0, 3, 0)).rejects.toEqual(code('ENOSPC')); // op 1
    expect(mem.readFileBytes('/db/f').length).toBe(0);
    expect(await h.write(bytes('abc'), 0, 3, 0)).toBe(3); // op 2
    expect(dec.decode(mem.readFileBytes('/db/f'))).toBe('abc');
  });
});

describe('failNth', () => {
  it('fails the n-th op of a kind once', async () => {
    const { fs } = await setup(failNth('datasync', 1, 'EIO'));
    const h = await fs.open('/db/f', 'create');
    await h.datasync();
    await expect(h.datasync()).rejects.toEqual(code('EIO'));
    await h.datasync();
    await h.datasync();
  });

  it('fails that op and every later one of those kinds when persistent', async () => {
    const { fs } = await setup(failNth(['write', 'writeSync'], 1, 'EIO', { persistent: true }));
    const h = await fs.open('/db/f', 'create');
    expect(h.writeSync(bytes('a'), 0, 1, 0)).toBe(1);
    await h.datasync(); // other kinds are unaffected
    await expect(h.write(bytes('b'), 0, 1, 1)).rejects.toEqual(code('EIO'));
    expect(() => h.writeSync(bytes('b'), 0, 1, 1)).toThrow(code('EIO'));
    await expect(h.write(bytes('b'), 0, 1, 1)).rejects.toEqual(code('EIO'));
    expect(await h.size()).toBe(1);
  });

  it('counts only ops whose path matches', async () => {
    const { fs } = await setup(failNth(['open', 'rename'], 0, 'EACCES', { path: /MANIFEST/g }));
    await (await fs.open('/db/LOG', 'create')).close();
    await (await fs.open('/db/tmp', 'create')).close();
    await expect(fs.rename('/db/tmp', '/db/MANIFEST-1')).rejects.toEqual(code('EACCES'));
    await fs.rename('/db/tmp', '/db/MANIFEST-1');
    await (await fs.open('/db/MANIFEST-2', 'create')).close();
  });
});

describe('shortWriteThenFail', () => {
  it('writes exactly the first bytes of the n-th write, then fails every write', async () => {
    const { mem, fs } = await setup(shortWriteThenFail(1, 3));
    const h = await fs.open('/db/f', 'create');
    expect(h.writeSync(bytes('0123'), 0, 4, 0)).toBe(4);
    expect(await h.write(bytes('abcdefgh'), 0, 8, 4)).toBe(3);
    expect(dec.decode(mem.readFileBytes('/db/f'))).toBe('0123abc');
    expect(() => h.writeSync(bytes('x'), 0, 1, 7)).toThrow(code('ENOSPC'));
    await expect(h.write(bytes('x'), 0, 1, 7)).rejects.toEqual(code('ENOSPC'));
    await h.datasync(); // only writes fail
    expect(dec.decode(mem.readFileBytes('/db/f'))).toBe('0123abc');
  });

  it('clamps the short write to the length asked and honours the code', async () => {
    const { mem, fs } = await setup(shortWriteThenFail(0, 100, 'EFBIG'));
    const h = await fs.open('/db/f', 'create');
    expect(h.writeSync(bytes('abcdef'), 2, 2, 0)).toBe(2);
    expect(dec.decode(mem.readFileBytes('/db/f'))).toBe('cd');
    expect(() => h.writeSync(bytes('x'), 0, 1, 2)).toThrow(code('EFBIG'));
  });

  it('can write zero bytes', async () => {
    const { mem, fs } = await setup(shortWriteThenFail(0, 0));
    const h = await fs.open('/db/f', 'create');
    expect(await h.write(bytes('abc'), 0, 3, 0)).toBe(0);
    expect(mem.readFileBytes('/db/f').length).toBe(0);
  });
});

describe('crashAtMutatingOp', () => {
  it('calls back before the k-th mutating op, then fails it and everything after', async () => {
    let snapshot: MemFileSystem | undefined;
    let crashOp: FsOp | undefined;
    const { mem, fs } = await setup();
    fs.injector = crashAtMutatingOp(3, (op) => {
      crashOp = op;
      snapshot = mem.crashClone();
    });
    const h = await fs.open('/db/f', 'create'); // mutating 0
    await fs.syncDir('/db'); // mutating 1
    h.writeSync(bytes('abc'), 0, 3, 0); // mutating 2
    expect(h.readSync(new Uint8Array(3), 0, 3, 0)).toBe(3); // not mutating: runs
    expect(snapshot).toBeUndefined();
    await expect(h.datasync()).rejects.toEqual(code('EIO')); // mutating 3: crash
    expect(crashOp).toMatchObject({ kind: 'datasync', index: 4, mutating: true });
    // The callback ran before the sync, so the write is not durable in the snapshot.
    expect(snapshot?.listFiles()).toEqual(['/db/f']);
    expect(snapshot?.readFileBytes('/db/f').length).toBe(0);
    // Dead: every later op fails, mutating or not, and nothing reaches the inner fs.
    await expect(h.read(new Uint8Array(1), 0, 1, 0)).rejects.toEqual(code('EIO'));
    await expect(h.close()).rejects.toEqual(code('EIO'));
    await expect(fs.stat('/db/f')).rejects.toEqual(code('EIO'));
    await expect(fs.open('/db/g', 'create')).rejects.toEqual(code('EIO'));
    expect(mem.listFiles()).toEqual(['/db/f']);
  });

  it('drives a systematic crash loop over every mutating op of a workload', async () => {
    // Workload: write a new CURRENT atomically (temp file, sync, rename, syncDir).
    async function workload(fs: FaultFileSystem, content: string): Promise<void> {
      const h = await fs.open('/db/CURRENT.tmp', 'create');
      const b = bytes(content);
      await h.write(b, 0, b.length, 0);
      await h.datasync();
      await h.close();
      await fs.rename('/db/CURRENT.tmp', '/db/CURRENT');
      await fs.syncDir('/db');
    }
    const base = new MemFileSystem();
    await base.mkdir('/db');
    base.writeFileBytes('/db/CURRENT', bytes('v1'));

    let states = 0;
    for (let k = 0; ; k++) {
      const mem = base.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
      let crashed: MemFileSystem | undefined;
      const fs = new FaultFileSystem(
        mem,
        crashAtMutatingOp(k, () => (crashed = mem.crashClone())),
      );
      const finished = await workload(fs, 'v2').then(
        () => true,
        () => false,
      );
      if (finished) {
        expect(crashed).toBeUndefined();
        expect(dec.decode(mem.crashClone().readFileBytes('/db/CURRENT'))).toBe('v2');
        break;
      }
      expect(crashed).toBeDefined();
      if (crashed === undefined) break;
      // After a crash at any point CURRENT is whole: the old or the new content.
      expect(['v1', 'v2']).toContain(dec.decode(crashed.readFileBytes('/db/CURRENT')));
      states++;
    }
    expect(states).toBe(5); // open(create), write, datasync, rename, syncDir
  });
});

describe('combine', () => {
  it('lets the first answer win while every injector sees every op', async () => {
    const seen: number[] = [];
    const counting: Injector = (op) => void seen.push(op.index);
    const { fs } = await setup(combine(counting, failAt(1, 'EIO'), failAt(1, 'ENOSPC'), failAt(2, 'EROFS'), counting));
    await fs.stat('/db');
    await expect(fs.stat('/db')).rejects.toEqual(code('EIO'));
    await expect(fs.stat('/db')).rejects.toEqual(code('EROFS'));
    await fs.stat('/db');
    expect(seen).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
  });
});
