import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemFileSystem } from '../../src/fs/mem.js';
import type { FileHandle } from '../../src/fs/types.js';
import { seeded } from '../support/process.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const text = (b: Uint8Array): string => dec.decode(b);

async function write(h: FileHandle, s: string, position: number): Promise<void> {
  const b = bytes(s);
  expect(await h.write(b, 0, b.length, position)).toBe(b.length);
}

/** A MemFileSystem with a durable directory `/db`. */
async function freshFs(): Promise<MemFileSystem> {
  const fs = new MemFileSystem();
  await fs.mkdir('/db');
  await fs.syncDir('/');
  return fs;
}

/** Creates `file` with `content`, data and directory entry durable. */
async function durableFile(fs: MemFileSystem, file: string, content: string, dir = '/db'): Promise<void> {
  const h = await fs.open(file, 'create');
  await write(h, content, 0);
  await h.datasync();
  await h.close();
  await fs.syncDir(dir);
}

function exists(fs: MemFileSystem, file: string): boolean {
  return fs.listFiles().includes(file);
}

describe('MemFileSystem crash model: file data', () => {
  it('keeps synced data and drops unsynced data by default', async () => {
    const fs = await freshFs();
    const h = await fs.open('/db/f', 'create');
    await fs.syncDir('/db');
    await write(h, 'hello', 0);
    await h.datasync();
    await write(h, ' world', 5);
    expect(text(fs.readFileBytes('/db/f'))).toBe('hello world');

    const crashed = fs.crashClone();
    expect(text(crashed.readFileBytes('/db/f'))).toBe('hello');
    expect(text(fs.readFileBytes('/db/f'))).toBe('hello world'); // the original is unchanged
  });

  it("keeps unsynced data and directory changes with 'keep'", async () => {
    const fs = await freshFs();
    const h = await fs.open('/db/f', 'create');
    await write(h, 'abc', 0);
    await h.truncate(2);
    const crashed = fs.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
    expect(text(crashed.readFileBytes('/db/f'))).toBe('ab');
  });

  it('preserves durable bytes when an unsynced write overwrites them', async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/f', 'aaaaaaaa');
    const h = await fs.open('/db/f', 'readwrite');
    await write(h, 'BB', 2);
    await write(h, 'CCCCCCCCCC', 6);
    expect(text(fs.readFileBytes('/db/f'))).toBe('aaBBaaCCCCCCCCCC');
    expect(text(fs.crashClone().readFileBytes('/db/f'))).toBe('aaaaaaaa');
    await h.datasync();
    expect(text(fs.crashClone().readFileBytes('/db/f'))).toBe('aaBBaaCCCCCCCCCC');
  });

  it('makes truncates durable only after datasync', async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/f', 'abcdef');
    const h = await fs.open('/db/f', 'readwrite');
    await h.truncate(3);
    expect(await h.size()).toBe(3);
    expect(text(fs.crashClone().readFileBytes('/db/f'))).toBe('abcdef');
    await h.datasync();
    expect(text(fs.crashClone().readFileBytes('/db/f'))).toBe('abc');
    await h.truncate(5); // growing zero-fills
    await h.datasync();
    expect([...fs.crashClone().readFileBytes('/db/f')]).toEqual([97, 98, 99, 0, 0]);
  });

  it('shrink then regrow reads zeros, not the old bytes', async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/f', 'abcdef');
    const h = await fs.open('/db/f', 'readwrite');
    await h.truncate(1);
    await write(h, 'Z', 4);
    expect([...fs.readFileBytes('/db/f')]).toEqual([97, 0, 0, 0, 90]);
    expect(text(fs.crashClone().readFileBytes('/db/f'))).toBe('abcdef');
  });

  it("'prefix' reaches every prefix of the unsynced writes, including torn ones", async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/f', 'base');
    const h = await fs.open('/db/f', 'readwrite');
    await write(h, 'AAAA', 4);
    await write(h, 'BBBB', 8);
    await write(h, 'CCCC', 12);
    const seen = new Set<string>();
    for (let seed = 0; seed < 400; seed++) {
      seen.add(text(fs.crashClone({ unsyncedData: 'prefix', rng: seeded(seed) }).readFileBytes('/db/f')));
    }
    // base, then each of the 3 writes torn at 1..4 bytes: 1 + 3 * 4 states.
    const expected = new Set<string>(['base']);
    let full = 'base';
    for (const c of 'ABC') {
      for (let t = 1; t <= 4; t++) expected.add(full + c.repeat(t));
      full += c.repeat(4);
    }
    expect(seen).toEqual(expected);
  });

  it('a pending write keeps its own bytes when the caller reuses its Buffer (as the WAL does)', async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/f', 'base');
    const h = await fs.open('/db/f', 'readwrite');
    const buf = Buffer.from('AAAA');
    h.writeSync(buf, 0, 4, 4);
    buf.write('BBBB'); // reused for the next write, as a Buffer#slice "copy" would not survive
    h.writeSync(buf, 0, 4, 8);
    const seen = new Set<string>();
    for (let seed = 0; seed < 200; seed++)
      seen.add(text(fs.crashClone({ unsyncedData: 'prefix', rng: seeded(seed) }).readFileBytes('/db/f')));
    for (const state of seen)
      expect(['base', 'baseA', 'baseAA', 'baseAAA', 'baseAAAA', 'baseAAAAB', 'baseAAAABB', 'baseAAAABBB', 'baseAAAABBBB']).toContain(state);
    expect(seen.has('baseAAAA')).toBe(true);
  });

  it('is cheap for an append-and-sync workload (a few MB, thousands of syncs)', async () => {
    const fs = await freshFs();
    const h = await fs.open('/db/wal', 'create');
    const chunk = new Uint8Array(1024).fill(7);
    for (let i = 0; i < 4096; i++) {
      h.writeSync(chunk, 0, chunk.length, i * chunk.length);
      await h.datasync();
    }
    await fs.syncDir('/db');
    expect(await h.size()).toBe(4 * 1024 * 1024);
    expect(fs.crashClone().readFileBytes('/db/wal').length).toBe(4 * 1024 * 1024);
  });
});

type DataOp = { kind: 'write'; position: number; data: Uint8Array } | { kind: 'truncate'; size: number } | { kind: 'sync' };

const dataOpArb: fc.Arbitrary<DataOp> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      position: fc.nat({ max: 40 }),
      data: fc.uint8Array({ minLength: 0, maxLength: 12 }),
    }),
    weight: 5,
  },
  { arbitrary: fc.record({ kind: fc.constant('truncate' as const), size: fc.nat({ max: 40 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('sync' as const) }), weight: 2 },
);

/** A plain model of a file's content. */
function applyToModel(content: number[], op: DataOp): number[] {
  if (op.kind === 'truncate') {
    const out = content.slice(0, op.size);
    while (out.length < op.size) out.push(0);
    return out;
  }
  if (op.kind === 'write' && op.data.length > 0) {
    const out = content.slice();
    while (out.length < op.position) out.push(0);
    op.data.forEach((b, i) => {
      out[op.position + i] = b;
    });
    return out;
  }
  return content;
}

/** Every content a crash may leave: durable, then each unsynced op applied, the last maybe torn. */
function allowedStates(durable: number[], unsynced: DataOp[]): Set<string> {
  const states = new Set<string>([durable.join(',')]);
  let state = durable;
  for (const op of unsynced) {
    if (op.kind === 'write') {
      for (let t = 1; t < op.data.length; t++) {
        states.add(applyToModel(state, { ...op, data: op.data.subarray(0, t) }).join(','));
      }
    }
    state = applyToModel(state, op);
    states.add(state.join(','));
  }
  return states;
}

describe('MemFileSystem crash model: prefix property', () => {
  it('every crash state is the durable content plus a prefix of the unsynced ops', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(dataOpArb, { maxLength: 25 }), fc.integer(), async (ops, seed) => {
        const fs = await freshFs();
        const h = await fs.open('/db/f', 'create');
        await fs.syncDir('/db');
        let durable: number[] = [];
        let current: number[] = [];
        let unsynced: DataOp[] = [];
        for (const op of ops) {
          if (op.kind === 'sync') {
            await h.datasync();
            durable = current;
            unsynced = [];
            continue;
          }
          if (op.kind === 'write') await h.write(op.data, 0, op.data.length, op.position);
          else await h.truncate(op.size);
          current = applyToModel(current, op);
          if (op.kind !== 'write' || op.data.length > 0) unsynced.push(op);
        }
        expect([...fs.readFileBytes('/db/f')]).toEqual(current);
        expect([...fs.crashClone().readFileBytes('/db/f')]).toEqual(durable);
        expect([...fs.crashClone({ unsyncedData: 'keep' }).readFileBytes('/db/f')]).toEqual(current);
        const allowed = allowedStates(durable, unsynced);
        const rng = seeded(seed);
        for (let i = 0; i < 20; i++) {
          const state = fs.crashClone({ unsyncedData: 'prefix', rng }).readFileBytes('/db/f');
          expect(allowed.has([...state].join(','))).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('every crash state of a directory is its durable entries plus a prefix of its changes', async () => {
    type DirOp = { kind: 'create' | 'unlink' | 'sync'; name: string } | { kind: 'rename'; name: string; to: string };
    const name = fc.constantFrom('a', 'b', 'c', 'd');
    const dirOpArb: fc.Arbitrary<DirOp> = fc.oneof(
      fc.record({ kind: fc.constantFrom('create' as const, 'unlink' as const, 'sync' as const), name }),
      fc.record({ kind: fc.constant('rename' as const), name, to: name }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(dirOpArb, { maxLength: 20 }), fc.integer(), async (ops, seed) => {
        const fs = await freshFs();
        const content = new Map<string, string>(); // the model: name -> content tag
        let durable = new Map<string, string>();
        const states: Map<string, string>[] = [];
        let n = 0;
        for (const op of ops) {
          if (op.kind === 'sync') {
            await fs.syncDir('/db');
            durable = new Map(content);
            states.length = 0;
            continue;
          }
          const tag = content.get(op.name);
          if (op.kind === 'create') {
            if (tag !== undefined) continue;
            const t = `v${n++}`;
            const h = await fs.open(`/db/${op.name}`, 'create');
            await write(h, t, 0);
            await h.datasync();
            content.set(op.name, t);
          } else if (tag === undefined) {
            continue;
          } else if (op.kind === 'unlink') {
            await fs.unlink(`/db/${op.name}`);
            content.delete(op.name);
          } else if (op.kind === 'rename') {
            if (op.to === op.name) continue;
            await fs.rename(`/db/${op.name}`, `/db/${op.to}`);
            content.delete(op.name);
            content.set(op.to, tag);
          }
          states.push(new Map(content));
        }
        const show = (m: Map<string, string>): string => JSON.stringify([...m].sort(([x], [y]) => x.localeCompare(y)));
        const allowed = new Set([durable, ...states].map(show));
        const rng = seeded(seed);
        for (let i = 0; i < 20; i++) {
          const crashed = fs.crashClone({ unsyncedDirOps: 'prefix', rng });
          const got = new Map<string, string>();
          for (const entry of await crashed.readdir('/db')) got.set(entry, text(crashed.readFileBytes(`/db/${entry}`)));
          expect(allowed.has(show(got))).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('MemFileSystem crash model: directories', () => {
  it('a created file disappears if its directory is not synced, even with synced data', async () => {
    const fs = await freshFs();
    const h = await fs.open('/db/f', 'create');
    await write(h, 'data', 0);
    await h.datasync();
    expect(exists(fs.crashClone(), '/db/f')).toBe(false);
    await fs.syncDir('/db');
    expect(text(fs.crashClone().readFileBytes('/db/f'))).toBe('data');
  });

  it('a dir-synced file with unsynced data comes back with its durable content only', async () => {
    const fs = await freshFs();
    const h = await fs.open('/db/f', 'create');
    await fs.syncDir('/db');
    await write(h, 'data', 0);
    const crashed = fs.crashClone();
    expect(await crashed.readdir('/db')).toEqual(['f']);
    expect(crashed.readFileBytes('/db/f').length).toBe(0);
  });

  it('makes a rename durable only after syncDir, and keeps the replaced file until then', async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/CURRENT', 'old');
    await durableFile(fs, '/db/tmp', 'new');
    await fs.rename('/db/tmp', '/db/CURRENT');
    expect(fs.listFiles()).toEqual(['/db/CURRENT']);
    expect(text(fs.readFileBytes('/db/CURRENT'))).toBe('new');

    const before = fs.crashClone();
    expect(before.listFiles()).toEqual(['/db/CURRENT', '/db/tmp']);
    expect(text(before.readFileBytes('/db/CURRENT'))).toBe('old');

    await fs.syncDir('/db');
    const after = fs.crashClone();
    expect(after.listFiles()).toEqual(['/db/CURRENT']);
    expect(text(after.readFileBytes('/db/CURRENT'))).toBe('new');
  });

  it('a same-directory rename is atomic under prefix crashes', async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/a', 'x');
    await fs.rename('/db/a', '/db/b');
    for (let seed = 0; seed < 50; seed++) {
      const files = fs.crashClone({ unsyncedDirOps: 'prefix', rng: seeded(seed) }).listFiles();
      expect([['/db/a'], ['/db/b']]).toContainEqual(files);
    }
  });

  it('a rename across directories needs a syncDir of each side', async () => {
    const fs = await freshFs();
    await fs.mkdir('/db/archive');
    await fs.syncDir('/db');
    await durableFile(fs, '/db/f', 'x');
    await fs.rename('/db/f', '/db/archive/f');
    await fs.syncDir('/db/archive');
    // The destination is durable, the source's removal is not: the file has two names.
    const half = fs.crashClone();
    expect(half.listFiles()).toEqual(['/db/archive/f', '/db/f']);
    const h = await half.open('/db/f', 'readwrite');
    await write(h, 'y', 0);
    expect(text(half.readFileBytes('/db/archive/f'))).toBe('y'); // one inode, two names
    await fs.syncDir('/db');
    expect(fs.crashClone().listFiles()).toEqual(['/db/archive/f']);
  });

  it('makes an unlink durable only after syncDir', async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/f', 'x');
    await fs.unlink('/db/f');
    expect(fs.listFiles()).toEqual([]);
    expect(text(fs.crashClone().readFileBytes('/db/f'))).toBe('x');
    await fs.syncDir('/db');
    expect(fs.crashClone().listFiles()).toEqual([]);
  });

  it('a new directory vanishes with its files unless its parent is synced', async () => {
    const fs = await freshFs();
    await fs.mkdir('/db/sub/deeper');
    await fs.syncDir('/db/sub');
    await durableFile(fs, '/db/sub/f', 'x', '/db/sub');
    expect(fs.crashClone().listFiles()).toEqual([]);
    expect(await fs.crashClone().readdir('/db')).toEqual([]);
    await fs.syncDir('/db');
    const crashed = fs.crashClone();
    expect(crashed.listFiles()).toEqual(['/db/sub/f']);
    expect((await crashed.readdir('/db/sub')).sort()).toEqual(['deeper', 'f']);
  });

  it('makes a link durable only after syncDir of its directory; the two names stay one file in a crash image', async () => {
    const fs = await freshFs();
    await fs.mkdir('/db/copy');
    await fs.syncDir('/db');
    await durableFile(fs, '/db/f', 'abc');
    await fs.link('/db/f', '/db/copy/f');
    expect(fs.crashClone().listFiles()).toEqual(['/db/f']);
    await fs.syncDir('/db/copy');
    const crashed = fs.crashClone();
    expect(crashed.listFiles()).toEqual(['/db/copy/f', '/db/f']);
    const h = await crashed.open('/db/f', 'readwrite');
    await write(h, 'X', 0);
    expect(text(crashed.readFileBytes('/db/copy/f'))).toBe('Xbc');
    // The data is the file's: what was not synced is not in the linked name either.
    const w = await fs.open('/db/f', 'readwrite');
    await write(w, 'Y', 3);
    expect(text(fs.crashClone().readFileBytes('/db/copy/f'))).toBe('abc');
  });

  it('makes an rmdir durable only after syncDir of the parent', async () => {
    const fs = await freshFs();
    await fs.mkdir('/db/sub');
    await fs.syncDir('/db');
    await fs.rmdir('/db/sub');
    expect(await fs.readdir('/db')).toEqual([]);
    expect(await fs.crashClone().readdir('/db')).toEqual(['sub']);
    await fs.syncDir('/db');
    expect(await fs.crashClone().readdir('/db')).toEqual([]);
  });

  it('keeps an unlinked file usable through an open handle', async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/f', 'abc');
    const h = await fs.open('/db/f', 'readwrite');
    await fs.unlink('/db/f');
    await fs.syncDir('/db');
    expect(await fs.readdir('/db')).toEqual([]);
    await write(h, 'XYZ', 3);
    await h.datasync();
    const buf = new Uint8Array(6);
    expect(await h.read(buf, 0, 6, 0)).toBe(6);
    expect(text(buf)).toBe('abcXYZ');
    expect(await h.size()).toBe(6);
    expect(fs.crashClone().listFiles()).toEqual([]);
    await h.close();
  });
});

describe('MemFileSystem crash clones', () => {
  it('are independent of the original, both ways', async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/f', 'abc');
    const h = await fs.open('/db/f', 'readwrite');
    const clone = fs.crashClone();

    await write(h, 'X', 0);
    await h.datasync();
    expect(text(clone.readFileBytes('/db/f'))).toBe('abc');

    const ch = await clone.open('/db/f', 'readwrite');
    await write(ch, 'Y', 1);
    await clone.unlink('/db/f');
    await (await clone.open('/db/g', 'create')).close();
    expect(text(fs.readFileBytes('/db/f'))).toBe('Xbc');
    expect(fs.listFiles()).toEqual(['/db/f']);
  });

  it('start fully durable and without locks', async () => {
    const fs = await freshFs();
    await fs.lock('/db');
    const h = await fs.open('/db/f', 'create');
    await write(h, 'abc', 0);
    const clone = fs.crashClone({ unsyncedData: 'keep', unsyncedDirOps: 'keep' });
    expect(text(clone.crashClone().readFileBytes('/db/f'))).toBe('abc');
    const lock = await clone.lock('/db');
    await lock.release();
  });
});

describe('MemFileSystem basics', () => {
  it('normalises paths: relative, trailing slash, dot segments', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('a/b/');
    const h = await fs.open('/a/./b/../b/f', 'create');
    await write(h, 'x', 0);
    expect(await fs.readdir('a/b')).toEqual(['f']);
    expect(text(fs.readFileBytes('a//b/f'))).toBe('x');
    expect(await fs.readdir('/')).toEqual(['a']);
    expect(await fs.stat('/')).toEqual({ size: 0, isDirectory: true });
  });

  it('reports errno codes like Node', async () => {
    const fs = await freshFs();
    await durableFile(fs, '/db/f', 'abc');
    const code = (code: string) => expect.objectContaining({ code });
    await expect(fs.open('/db/missing', 'read')).rejects.toEqual(code('ENOENT'));
    await expect(fs.open('/db/missing', 'readwrite')).rejects.toEqual(code('ENOENT'));
    await expect(fs.open('/nodir/f', 'create')).rejects.toEqual(code('ENOENT'));
    await expect(fs.open('/db/f/x', 'create')).rejects.toEqual(code('ENOTDIR'));
    await expect(fs.open('/db/f', 'create')).rejects.toEqual(code('EEXIST'));
    await expect(fs.open('/db', 'readwrite')).rejects.toEqual(code('EISDIR'));
    await expect(fs.open('/', 'read')).rejects.toEqual(code('EISDIR'));
    await expect(fs.unlink('/db/missing')).rejects.toEqual(code('ENOENT'));
    await expect(fs.unlink('/db')).rejects.toEqual(code('EISDIR'));
    await expect(fs.readdir('/db/f')).rejects.toEqual(code('ENOTDIR'));
    await expect(fs.readdir('/nope')).rejects.toEqual(code('ENOENT'));
    await expect(fs.stat('/db/nope')).rejects.toEqual(code('ENOENT'));
    await expect(fs.mkdir('/db/f')).rejects.toEqual(code('EEXIST'));
    await expect(fs.mkdir('/db/f/g')).rejects.toEqual(code('ENOTDIR'));
    await expect(fs.rename('/db/nope', '/db/x')).rejects.toEqual(code('ENOENT'));
    await expect(fs.rename('/db/f', '/db')).rejects.toEqual(code('EISDIR'));
    await expect(fs.syncDir('/nope')).rejects.toEqual(code('ENOENT'));
    await expect(fs.lock('/nope')).rejects.toEqual(code('ENOENT'));
    const err = await fs.open('/db/missing', 'read').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);

    const ro = await fs.open('/db/f', 'read');
    expect(() => ro.writeSync(bytes('x'), 0, 1, 0)).toThrow(code('EBADF'));
    await expect(ro.truncate(0)).rejects.toEqual(code('EINVAL'));
    await ro.close();
    await ro.close(); // idempotent
    await expect(ro.read(new Uint8Array(1), 0, 1, 0)).rejects.toEqual(code('EBADF'));
    expect(() => ro.readSync(new Uint8Array(1), 0, 1, 0)).toThrow(code('EBADF'));
    await expect(ro.size()).rejects.toEqual(code('EBADF'));
    await expect(ro.datasync()).rejects.toEqual(code('EBADF'));
    const rw = await fs.open('/db/f', 'readwrite');
    expect(() => rw.readSync(new Uint8Array(1), 0, 2, 0)).toThrow(RangeError);
    expect(() => rw.writeSync(new Uint8Array(1), 0, 1, -1)).toThrow(RangeError);
  });

  it('locks a directory exclusively until release', async () => {
    const fs = await freshFs();
    await fs.mkdir('/other');
    const lock = await fs.lock('/db');
    await expect(fs.lock('/db/')).rejects.toEqual(expect.objectContaining({ code: 'ELOCKED' }));
    const other = await fs.lock('/other');
    await lock.release();
    await lock.release(); // idempotent
    const again = await fs.lock('db');
    await expect(fs.lock('/db')).rejects.toEqual(expect.objectContaining({ code: 'ELOCKED' }));
    await again.release();
    await other.release();
    await expect(fs.lock('/db/f')).rejects.toBeDefined();
  });

  it('provides test aids: readFileBytes, writeFileBytes (durable), listFiles', async () => {
    const fs = await freshFs();
    await fs.mkdir('/db/z');
    await durableFile(fs, '/db/b', 'bbb');
    fs.writeFileBytes('/db/a', bytes('new file'));
    fs.writeFileBytes('/db/b', bytes('X'));
    await (await fs.open('/db/z/c', 'create')).close();
    expect(fs.listFiles()).toEqual(['/db/a', '/db/b', '/db/z/c']);
    const crashed = fs.crashClone();
    expect(crashed.listFiles()).toEqual(['/db/a', '/db/b']);
    expect(text(crashed.readFileBytes('/db/a'))).toBe('new file');
    expect(text(crashed.readFileBytes('/db/b'))).toBe('X');
    const copy = fs.readFileBytes('/db/b');
    copy[0] = 0;
    expect(text(fs.readFileBytes('/db/b'))).toBe('X');
    expect(() => fs.readFileBytes('/db/nope')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => fs.writeFileBytes('/nodir/x', bytes('x'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
