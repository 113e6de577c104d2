/**
 * The same checks against the real file system and the in-memory one, so that MemFileSystem
 * behaves like NodeFileSystem wherever sediment can tell.
 */
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { NodeFileSystem } from '../../src/fs/node.js';
import type { FileHandle, FileSystem } from '../../src/fs/types.js';

interface Subject {
  fs: FileSystem;
  root: string;
  cleanup(): void;
}

const subjects: { name: string; make: () => Promise<Subject> }[] = [
  {
    name: 'MemFileSystem',
    make: async () => {
      const fs = new MemFileSystem();
      await fs.mkdir('/tmp/sediment-test');
      return { fs, root: '/tmp/sediment-test', cleanup: () => undefined };
    },
  },
  {
    name: 'NodeFileSystem',
    make: async () => {
      const root = nodeFs.mkdtempSync(path.join(os.tmpdir(), 'sediment-'));
      return { fs: new NodeFileSystem(), root, cleanup: () => nodeFs.rmSync(root, { recursive: true, force: true }) };
    },
  },
];

const enc = new TextEncoder();
const dec = new TextDecoder();
const code = (c: string) => expect.objectContaining({ code: c });

describe.each(subjects)('FileSystem conformance: $name', ({ make }) => {
  let fs: FileSystem;
  let root: string;
  let cleanup: () => void;
  const handles: FileHandle[] = [];
  const p = (...parts: string[]): string => path.join(root, ...parts);

  beforeEach(async () => {
    ({ fs, root, cleanup } = await make());
  });

  afterEach(async () => {
    for (const h of handles.splice(0)) await h.close();
    cleanup();
  });

  async function open(file: string, mode: 'read' | 'readwrite' | 'create'): Promise<FileHandle> {
    const h = await fs.open(file, mode);
    handles.push(h);
    return h;
  }

  async function put(file: string, s: string): Promise<void> {
    const h = await open(file, 'create');
    const b = enc.encode(s);
    expect(await h.write(b, 0, b.length, 0)).toBe(b.length);
  }

  async function contents(file: string): Promise<string> {
    const h = await open(file, 'read');
    const buf = new Uint8Array(await h.size());
    expect(await h.read(buf, 0, buf.length, 0)).toBe(buf.length);
    return dec.decode(buf);
  }

  it('opens: create must not exist, read and readwrite must', async () => {
    await put(p('f'), 'x');
    await expect(fs.open(p('f'), 'create')).rejects.toEqual(code('EEXIST'));
    await expect(fs.open(p('g'), 'read')).rejects.toEqual(code('ENOENT'));
    await expect(fs.open(p('g'), 'readwrite')).rejects.toEqual(code('ENOENT'));
    await expect(fs.open(p('nodir', 'g'), 'create')).rejects.toEqual(code('ENOENT'));
    await expect(fs.open(p('f', 'g'), 'create')).rejects.toEqual(code('ENOTDIR'));
    await expect(fs.open(root, 'readwrite')).rejects.toEqual(code('EISDIR'));
  });

  it('reads and writes at explicit positions, zero-filling gaps', async () => {
    const h = await open(p('f'), 'create');
    expect(await h.write(enc.encode('abcdef'), 1, 3, 0)).toBe(3); // "bcd"
    expect(h.writeSync(enc.encode('XY'), 0, 2, 6)).toBe(2);
    expect(await h.size()).toBe(8);
    const buf = new Uint8Array(10).fill(255);
    expect(await h.read(buf, 1, 9, 0)).toBe(8);
    expect([...buf]).toEqual([255, 98, 99, 100, 0, 0, 0, 88, 89, 255]);
    expect(h.readSync(buf, 0, 4, 6)).toBe(2);
    expect(await h.read(buf, 0, 4, 8)).toBe(0);
    expect(await h.read(buf, 0, 4, 100)).toBe(0);
    expect(h.writeSync(buf, 0, 0, 100)).toBe(0); // an empty write does not extend the file
    expect(await h.size()).toBe(8);
    await h.datasync();
  });

  it('rejects writes through a read-only handle', async () => {
    await put(p('f'), 'abc');
    const h = await open(p('f'), 'read');
    expect(() => h.writeSync(enc.encode('x'), 0, 1, 0)).toThrow(code('EBADF'));
    await expect(h.write(enc.encode('x'), 0, 1, 0)).rejects.toEqual(code('EBADF'));
    await expect(h.truncate(0)).rejects.toEqual(code('EINVAL'));
    expect(await contents(p('f'))).toBe('abc');
  });

  it('truncates: shrinking drops bytes, growing adds zeros', async () => {
    await put(p('f'), 'abcdef');
    const h = await open(p('f'), 'readwrite');
    await h.truncate(2);
    expect(await h.size()).toBe(2);
    await h.truncate(4);
    const buf = new Uint8Array(4);
    expect(await h.read(buf, 0, 4, 0)).toBe(4);
    expect([...buf]).toEqual([97, 98, 0, 0]);
    expect((await fs.stat(p('f'))).size).toBe(4);
  });

  it('closes idempotently, and a closed handle fails with EBADF', async () => {
    await put(p('f'), 'abc');
    const h = await fs.open(p('f'), 'read');
    await h.close();
    await h.close();
    await expect(h.read(new Uint8Array(1), 0, 1, 0)).rejects.toEqual(code('EBADF'));
  });

  it('lists, stats and makes directories', async () => {
    await fs.mkdir(p('a', 'b'));
    await fs.mkdir(p('a', 'b'));
    await fs.mkdir(`${p('a')}/`);
    await put(p('a', 'f'), 'hello');
    expect((await fs.readdir(p('a'))).sort()).toEqual(['b', 'f']);
    expect(await fs.readdir(p('a', 'b'))).toEqual([]);
    expect(await fs.stat(p('a', 'f'))).toEqual({ size: 5, isDirectory: false });
    expect((await fs.stat(p('a', 'b'))).isDirectory).toBe(true);
    await expect(fs.stat(p('nope'))).rejects.toEqual(code('ENOENT'));
    await expect(fs.stat(p('a', 'f', 'x'))).rejects.toEqual(code('ENOTDIR'));
    await expect(fs.readdir(p('nope'))).rejects.toEqual(code('ENOENT'));
    await expect(fs.readdir(p('a', 'f'))).rejects.toEqual(code('ENOTDIR'));
    await expect(fs.mkdir(p('a', 'f'))).rejects.toEqual(code('EEXIST'));
    await expect(fs.mkdir(p('a', 'f', 'g'))).rejects.toEqual(code('ENOTDIR'));
    await fs.syncDir(p('a'));
    await expect(fs.syncDir(p('nope'))).rejects.toEqual(code('ENOENT'));
  });

  it('renames, replacing an existing file', async () => {
    await put(p('tmp'), 'new');
    await put(p('CURRENT'), 'old');
    const old = await open(p('CURRENT'), 'read');
    await fs.rename(p('tmp'), p('CURRENT'));
    expect((await fs.readdir(root)).sort()).toEqual(['CURRENT']);
    expect(await contents(p('CURRENT'))).toBe('new');
    const buf = new Uint8Array(3);
    expect(await old.read(buf, 0, 3, 0)).toBe(3); // the replaced file lives on through its handle
    expect(dec.decode(buf)).toBe('old');
    await fs.rename(p('CURRENT'), p('CURRENT'));
    await expect(fs.rename(p('nope'), p('x'))).rejects.toEqual(code('ENOENT'));
    await expect(fs.rename(p('CURRENT'), p('nodir', 'x'))).rejects.toEqual(code('ENOENT'));
    await fs.mkdir(p('d'));
    await expect(fs.rename(p('CURRENT'), p('d'))).rejects.toEqual(code('EISDIR'));
    await fs.rename(p('CURRENT'), p('d', 'moved'));
    expect(await contents(p('d', 'moved'))).toBe('new');
    await fs.syncDir(root);
  });

  it('unlinks files, not directories; an open handle keeps working', async () => {
    await put(p('f'), 'abc');
    const h = await open(p('f'), 'readwrite');
    await fs.unlink(p('f'));
    expect(await fs.readdir(root)).toEqual([]);
    await expect(fs.stat(p('f'))).rejects.toEqual(code('ENOENT'));
    expect(h.writeSync(enc.encode('d'), 0, 1, 3)).toBe(1);
    await h.datasync();
    expect(await h.size()).toBe(4);
    await expect(fs.unlink(p('f'))).rejects.toEqual(code('ENOENT'));
    await fs.mkdir(p('d'));
    await expect(fs.unlink(p('d'))).rejects.toEqual(code('EISDIR'));
    await put(p('f'), 'fresh'); // the name is free again
    expect(await contents(p('f'))).toBe('fresh');
  });

  it('links: a second name for the same file, which outlives the first', async () => {
    await put(p('a'), 'abc');
    await fs.mkdir(p('d'));
    await fs.link!(p('a'), p('d', 'b'));
    expect(await contents(p('d', 'b'))).toBe('abc');
    const h = await open(p('a'), 'readwrite');
    expect(await h.write(enc.encode('xyz'), 0, 3, 3)).toBe(3); // one file: a write through one name shows through the other
    expect(await contents(p('d', 'b'))).toBe('abcxyz');
    await fs.unlink(p('a'));
    expect(await contents(p('d', 'b'))).toBe('abcxyz');
    await put(p('c'), 'c');
    await expect(fs.link!(p('c'), p('d', 'b'))).rejects.toEqual(code('EEXIST'));
    await expect(fs.link!(p('nope'), p('x'))).rejects.toEqual(code('ENOENT'));
    await expect(fs.link!(p('c'), p('nodir', 'x'))).rejects.toEqual(code('ENOENT'));
    await expect(fs.link!(p('d'), p('e'))).rejects.toEqual(code('EPERM'));
    await fs.syncDir(p('d'));
  });

  it('removes empty directories only', async () => {
    await fs.mkdir(p('d', 'e'));
    await expect(fs.rmdir!(p('d'))).rejects.toEqual(code('ENOTEMPTY'));
    await fs.rmdir!(p('d', 'e'));
    await fs.rmdir!(p('d'));
    expect(await fs.readdir(root)).toEqual([]);
    await expect(fs.rmdir!(p('d'))).rejects.toEqual(code('ENOENT'));
    await put(p('f'), 'x');
    await expect(fs.rmdir!(p('f'))).rejects.toEqual(code('ENOTDIR'));
    await fs.syncDir(root);
  });

  it('locks a directory exclusively until release', async () => {
    const lock = await fs.lock(root);
    await expect(fs.lock(root)).rejects.toEqual(code('ELOCKED'));
    await lock.release();
    await lock.release();
    const again = await fs.lock(root);
    await again.release();
  });
});
