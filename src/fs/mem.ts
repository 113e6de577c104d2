/**
 * An in-memory, crashable file system for power-loss tests, after Pebble's `CrashableMem` and
 * LevelDB's `FaultInjectionTestEnv`.
 *
 * Durability model. Every file (inode) holds its current bytes and its *durable* bytes, plus the
 * ordered list of writes and truncates made since its last `datasync`. Every directory holds its
 * current entries and its *durable* entries, plus the ordered list of entry changes (create,
 * rename, unlink, mkdir) made since its last `syncDir`. {@link MemFileSystem.crashClone} builds the
 * state a fresh boot would see after a power loss: durable state, plus none, all, or a random
 * prefix of the pending operations (for files, the last kept write may be torn). A file whose
 * directory entry never became durable is gone after a crash even if its data was synced.
 *
 * Everything happens synchronously at call time, so operations take effect in the order they are
 * issued, as on a real file system.
 *
 * @module
 */
import * as path from 'node:path';
import type { DirectoryLock, FileHandle, FileStat, FileSystem, OpenMode } from './types.js';

/** What a crash does with operations that were not yet synced. */
export type UnsyncedPolicy = 'drop' | 'keep' | 'prefix';

/** Options of {@link MemFileSystem.crashClone}. */
export interface CrashOptions {
  /** Writes and truncates since a file's last `datasync`. Default `drop`. */
  unsyncedData?: UnsyncedPolicy;
  /** Creates, renames, unlinks and mkdirs since a directory's last `syncDir`. Default `drop`. */
  unsyncedDirOps?: UnsyncedPolicy;
  /** Random source in [0, 1) for the `prefix` policies. Default `Math.random`. */
  rng?: () => number;
}

/** Builds an errno-style error like Node's (`code`, `syscall`, `path`). */
function fsError(code: string, syscall: string, file: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: ${MESSAGES[code] ?? 'error'}, ${syscall} '${file}'`);
  err.code = code;
  err.syscall = syscall;
  err.path = file;
  return err;
}

const MESSAGES: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'file already exists',
  EISDIR: 'illegal operation on a directory',
  ENOTDIR: 'not a directory',
  ENOTEMPTY: 'directory not empty',
  EINVAL: 'invalid argument',
  EBADF: 'bad file descriptor',
  EBUSY: 'resource busy or locked',
  EPERM: 'operation not permitted',
  ELOCKED: 'directory is locked',
};

/** A random integer in [0, n) from a [0, 1) source, robust to sources that return 1. */
function randomInt(rng: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(rng() * n));
}

/** A byte array with a logical length that grows by doubling. Bytes past `length` are always zero. */
class ByteBuffer {
  #bytes: Uint8Array;
  #length: number;

  constructor(initial: Uint8Array = new Uint8Array(0)) {
    this.#bytes = new Uint8Array(Math.max(64, initial.length));
    this.#bytes.set(initial);
    this.#length = initial.length;
  }

  get length(): number {
    return this.#length;
  }

  /** A view of the current content, valid until the next mutation. */
  view(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }

  /** Writes `src` at `position`, zero-filling any gap; an empty write changes nothing (as pwrite). */
  write(position: number, src: Uint8Array): void {
    if (src.length === 0) return;
    const end = position + src.length;
    this.#reserve(end);
    this.#bytes.set(src, position);
    this.#length = Math.max(this.#length, end);
  }

  truncate(size: number): void {
    if (size < this.#length) this.#bytes.fill(0, size, this.#length);
    else this.#reserve(size);
    this.#length = size;
  }

  #reserve(capacity: number): void {
    if (capacity <= this.#bytes.length) return;
    const grown = new Uint8Array(Math.max(capacity, this.#bytes.length * 2));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }
}

/** An unsynced change to a file's data. */
type DataOp = { kind: 'write'; position: number; bytes: Uint8Array } | { kind: 'truncate'; size: number };

/** A file: current content, durable content, and the unsynced operations between them. */
class Inode {
  readonly content: ByteBuffer;
  #durableLength: number;
  /**
   * The durable bytes, once an unsynced operation has touched the first `#durableLength` bytes of
   * `content`. Until then they are shared with `content`, which keeps append-then-sync (the WAL's
   * pattern) free of copies: a sync is O(1).
   */
  #durableCopy: Uint8Array | null = null;
  #pending: DataOp[] = [];

  constructor(initial?: Uint8Array) {
    this.content = new ByteBuffer(initial);
    this.#durableLength = this.content.length;
  }

  write(position: number, src: Uint8Array): void {
    if (src.length === 0) return;
    if (position < this.#durableLength) this.#preserveDurable();
    // A copy: Buffer#slice is a view, and callers reuse their buffers.
    this.#pending.push({ kind: 'write', position, bytes: Uint8Array.prototype.slice.call(src) });
    this.content.write(position, src);
  }

  truncate(size: number): void {
    if (size < this.#durableLength) this.#preserveDurable();
    this.#pending.push({ kind: 'truncate', size });
    this.content.truncate(size);
  }

  sync(): void {
    this.#durableCopy = null;
    this.#durableLength = this.content.length;
    this.#pending = [];
  }

  /** Replaces the content and makes it durable at once (test surgery). */
  replaceDurably(bytes: Uint8Array): void {
    this.content.truncate(0);
    this.content.write(0, bytes);
    this.sync();
  }

  durableBytes(): Uint8Array {
    return this.#durableCopy ?? this.content.view().subarray(0, this.#durableLength);
  }

  /** The content a power loss leaves, under `policy` for the unsynced operations. */
  afterCrash(policy: UnsyncedPolicy, rng: () => number): Uint8Array {
    if (policy === 'keep') return this.content.view().slice();
    if (policy === 'drop' || this.#pending.length === 0) return this.durableBytes().slice();
    const kept = randomInt(rng, this.#pending.length + 1);
    const result = new ByteBuffer(this.durableBytes());
    for (let i = 0; i < kept; i++) {
      const op = this.#pending[i] as DataOp;
      if (op.kind === 'truncate') result.truncate(op.size);
      else if (i < kept - 1) result.write(op.position, op.bytes);
      else result.write(op.position, op.bytes.subarray(0, 1 + randomInt(rng, op.bytes.length))); // torn
    }
    return result.view().slice();
  }

  #preserveDurable(): void {
    this.#durableCopy ??= this.content.view().slice(0, this.#durableLength);
  }
}

type Node = Inode | Directory;

/** One entry change; `node` undefined removes the entry. */
interface EntryChange {
  name: string;
  node: Node | undefined;
}

/** A directory: current entries, durable entries, and the unsynced changes between them. */
class Directory {
  readonly entries: Map<string, Node>;
  #durable: Map<string, Node>;
  /** Each element is applied atomically (a same-directory rename is one element of two changes). */
  #pending: EntryChange[][] = [];

  constructor(entries = new Map<string, Node>()) {
    this.entries = entries;
    this.#durable = new Map(entries);
  }

  apply(changes: EntryChange[]): void {
    this.#pending.push(changes);
    applyChanges(this.entries, changes);
  }

  sync(): void {
    if (this.#pending.length === 0) return;
    this.#durable = new Map(this.entries);
    this.#pending = [];
  }

  /** Adds an entry that is durable at once, without syncing other pending changes (test surgery). */
  addDurably(name: string, node: Node): void {
    this.entries.set(name, node);
    this.#durable.set(name, node);
  }

  /** The entries a power loss leaves, under `policy` for the unsynced changes. */
  afterCrash(policy: UnsyncedPolicy, rng: () => number): Map<string, Node> {
    if (policy === 'keep') return new Map(this.entries);
    if (policy === 'drop' || this.#pending.length === 0) return new Map(this.#durable);
    const kept = randomInt(rng, this.#pending.length + 1);
    const result = new Map(this.#durable);
    for (const changes of this.#pending.slice(0, kept)) applyChanges(result, changes);
    return result;
  }
}

function applyChanges(entries: Map<string, Node>, changes: EntryChange[]): void {
  for (const { name, node } of changes) {
    if (node === undefined) entries.delete(name);
    else entries.set(name, node);
  }
}

/** Normalises `file` to an absolute posix path without a trailing `/`; relative paths start at `/`. */
function normalize(file: string): string {
  return path.posix.resolve('/', file);
}

/** The components of a normalised path (`[]` for the root). */
function components(normalized: string): string[] {
  return normalized === '/' ? [] : normalized.slice(1).split('/');
}

class MemFileHandle implements FileHandle {
  #closed = false;

  constructor(
    readonly path: string,
    private readonly inode: Inode,
    private readonly writable: boolean,
  ) {}

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.readSync(buffer, offset, length, position);
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.#checkOpen('read');
    checkRange(buffer, offset, length, position);
    const content = this.inode.content.view();
    const n = Math.max(0, Math.min(length, content.length - position));
    buffer.set(content.subarray(position, position + n), offset);
    return n;
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.writeSync(buffer, offset, length, position);
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.#checkOpen('write');
    if (!this.writable) throw fsError('EBADF', 'write', this.path);
    checkRange(buffer, offset, length, position);
    this.inode.write(position, buffer.subarray(offset, offset + length));
    return length;
  }

  async datasync(): Promise<void> {
    this.#checkOpen('fdatasync');
    this.inode.sync();
  }

  async truncate(size: number): Promise<void> {
    this.#checkOpen('ftruncate');
    if (!this.writable || !Number.isInteger(size) || size < 0) throw fsError('EINVAL', 'ftruncate', this.path);
    this.inode.truncate(size);
  }

  async size(): Promise<number> {
    this.#checkOpen('fstat');
    return this.inode.content.length;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #checkOpen(syscall: string): void {
    if (this.#closed) throw fsError('EBADF', syscall, this.path);
  }
}

function checkRange(buffer: Uint8Array, offset: number, length: number, position: number): void {
  const ok =
    Number.isInteger(offset) &&
    Number.isInteger(length) &&
    Number.isInteger(position) &&
    offset >= 0 &&
    length >= 0 &&
    position >= 0 &&
    offset + length <= buffer.length;
  if (!ok) throw new RangeError(`bad range: offset ${offset}, length ${length}, position ${position}`);
}

/**
 * An in-memory {@link FileSystem} that tracks what is durable, for power-loss tests: take a
 * {@link MemFileSystem.crashClone} at any instant and reopen the store on it.
 *
 * Differences from a real file system that tests may meet: opening a directory fails with
 * `EISDIR` in every mode, and `stat` of a directory reports size 0.
 */
export class MemFileSystem implements FileSystem {
  #root: Directory;
  readonly #locks = new Set<string>();

  constructor() {
    this.#root = new Directory();
  }

  async open(file: string, mode: OpenMode): Promise<FileHandle> {
    const p = normalize(file);
    if (p === '/') throw fsError(mode === 'create' ? 'EEXIST' : 'EISDIR', 'open', file);
    const { dir, name } = this.#parent(p, 'open');
    const existing = dir.entries.get(name);
    if (mode === 'create') {
      if (existing !== undefined) throw fsError('EEXIST', 'open', file);
      const inode = new Inode();
      dir.apply([{ name, node: inode }]);
      return new MemFileHandle(file, inode, true);
    }
    if (existing === undefined) throw fsError('ENOENT', 'open', file);
    if (existing instanceof Directory) throw fsError('EISDIR', 'open', file);
    return new MemFileHandle(file, existing, mode === 'readwrite');
  }

  async readdir(dir: string): Promise<string[]> {
    return [...this.#directory(dir, 'scandir').entries.keys()];
  }

  async mkdir(dir: string): Promise<void> {
    let current = this.#root;
    const names = components(normalize(dir));
    for (const [i, name] of names.entries()) {
      const node = current.entries.get(name);
      if (node instanceof Directory) {
        current = node;
      } else if (node !== undefined) {
        throw fsError(i === names.length - 1 ? 'EEXIST' : 'ENOTDIR', 'mkdir', dir);
      } else {
        const created = new Directory();
        current.apply([{ name, node: created }]);
        current = created;
      }
    }
  }

  async stat(file: string): Promise<FileStat> {
    const node = this.#lookup(normalize(file), 'stat', file);
    return node instanceof Directory ? { size: 0, isDirectory: true } : { size: node.content.length, isDirectory: false };
  }

  async rename(from: string, to: string): Promise<void> {
    const src = normalize(from);
    const dst = normalize(to);
    if (src === '/' || dst === '/') throw fsError('EBUSY', 'rename', from);
    const a = this.#parent(src, 'rename');
    const b = this.#parent(dst, 'rename');
    const node = a.dir.entries.get(a.name);
    if (node === undefined) throw fsError('ENOENT', 'rename', from);
    if (src === dst) return;
    checkRenameTarget(node, b.dir.entries.get(b.name), src, dst, to);
    if (a.dir === b.dir) {
      a.dir.apply([
        { name: a.name, node: undefined },
        { name: b.name, node },
      ]);
    } else {
      // Each directory's change becomes durable with its own syncDir, as on ext4 or xfs.
      b.dir.apply([{ name: b.name, node }]);
      a.dir.apply([{ name: a.name, node: undefined }]);
    }
  }

  async unlink(file: string): Promise<void> {
    const p = normalize(file);
    if (p === '/') throw fsError('EISDIR', 'unlink', file);
    const { dir, name } = this.#parent(p, 'unlink');
    const node = dir.entries.get(name);
    if (node === undefined) throw fsError('ENOENT', 'unlink', file);
    if (node instanceof Directory) throw fsError('EISDIR', 'unlink', file);
    dir.apply([{ name, node: undefined }]); // open handles keep the inode alive
  }

  /** A second name for a file: durable after `syncDir` of `to`'s directory, as a create is. */
  async link(from: string, to: string): Promise<void> {
    const node = this.#lookup(normalize(from), 'link', from);
    if (node instanceof Directory) throw fsError('EPERM', 'link', from);
    const dst = normalize(to);
    if (dst === '/') throw fsError('EEXIST', 'link', to);
    const { dir, name } = this.#parent(dst, 'link');
    if (dir.entries.has(name)) throw fsError('EEXIST', 'link', to);
    dir.apply([{ name, node }]);
  }

  /** Removes an empty directory: durable after `syncDir` of its parent. */
  async rmdir(dir: string): Promise<void> {
    const p = normalize(dir);
    if (p === '/') throw fsError('EBUSY', 'rmdir', dir);
    const node = this.#lookup(p, 'rmdir', dir);
    if (!(node instanceof Directory)) throw fsError('ENOTDIR', 'rmdir', dir);
    if (node.entries.size > 0) throw fsError('ENOTEMPTY', 'rmdir', dir);
    this.#parent(p, 'rmdir').dir.apply([{ name: path.posix.basename(p), node: undefined }]);
  }

  async syncDir(dir: string): Promise<void> {
    this.#directory(dir, 'fsync').sync();
  }

  async lock(dir: string): Promise<DirectoryLock> {
    const key = normalize(dir);
    this.#directory(dir, 'lock');
    if (this.#locks.has(key)) throw fsError('ELOCKED', 'lock', dir);
    this.#locks.add(key);
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        this.#locks.delete(key);
      },
    };
  }

  /**
   * A new, independent file system holding the state a power loss at this instant leaves: durable
   * data and directory entries, plus the unsynced operations `options` keeps. In the clone all state
   * is durable and no lock is held; this file system is left unchanged.
   */
  crashClone(options: CrashOptions = {}): MemFileSystem {
    const ctx: CloneContext = {
      data: options.unsyncedData ?? 'drop',
      dirOps: options.unsyncedDirOps ?? 'drop',
      rng: options.rng ?? Math.random,
      inodes: new Map(),
      dirs: new Set([this.#root]),
    };
    const clone = new MemFileSystem();
    clone.#root = cloneDirectory(this.#root, ctx);
    return clone;
  }

  /** Test aid: the current content of a file (durable or not), as a copy. */
  readFileBytes(file: string): Uint8Array {
    const node = this.#lookup(normalize(file), 'open', file);
    if (node instanceof Directory) throw fsError('EISDIR', 'read', file);
    return node.content.view().slice();
  }

  /**
   * Test aid for corruption surgery: replaces a file's content, durably. A missing file is created
   * with a durable directory entry (its directory must exist); other pending changes stay pending.
   */
  writeFileBytes(file: string, bytes: Uint8Array): void {
    const p = normalize(file);
    if (p === '/') throw fsError('EISDIR', 'open', file);
    const { dir, name } = this.#parent(p, 'open');
    const node = dir.entries.get(name);
    if (node instanceof Directory) throw fsError('EISDIR', 'open', file);
    if (node !== undefined) node.replaceDurably(bytes);
    else dir.addDurably(name, new Inode(bytes));
  }

  /** Test aid: the paths of all files (not directories) in the current state, sorted. */
  listFiles(): string[] {
    const out: string[] = [];
    const walk = (dir: Directory, prefix: string): void => {
      for (const [name, node] of dir.entries) {
        const p = `${prefix}/${name}`;
        if (node instanceof Directory) walk(node, p);
        else out.push(p);
      }
    };
    walk(this.#root, '');
    return out.sort();
  }

  /** The node at normalised path `p`, or ENOENT / ENOTDIR. */
  #lookup(p: string, syscall: string, original: string): Node {
    let node: Node = this.#root;
    for (const name of components(p)) {
      if (!(node instanceof Directory)) throw fsError('ENOTDIR', syscall, original);
      const next: Node | undefined = node.entries.get(name);
      if (next === undefined) throw fsError('ENOENT', syscall, original);
      node = next;
    }
    return node;
  }

  #directory(dir: string, syscall: string): Directory {
    const node = this.#lookup(normalize(dir), syscall, dir);
    if (!(node instanceof Directory)) throw fsError('ENOTDIR', syscall, dir);
    return node;
  }

  /** The existing directory that holds normalised path `p`, and `p`'s last component. */
  #parent(p: string, syscall: string): { dir: Directory; name: string } {
    const parent = this.#lookup(path.posix.dirname(p), syscall, p);
    if (!(parent instanceof Directory)) throw fsError('ENOTDIR', syscall, p);
    return { dir: parent, name: path.posix.basename(p) };
  }
}

/** Rejects a rename whose target cannot be replaced by `node`, with Linux's error codes. */
function checkRenameTarget(node: Node, target: Node | undefined, src: string, dst: string, to: string): void {
  if (node instanceof Directory) {
    if (dst.startsWith(`${src}/`)) throw fsError('EINVAL', 'rename', to);
    if (target instanceof Inode) throw fsError('ENOTDIR', 'rename', to);
    if (target instanceof Directory && target.entries.size > 0) throw fsError('ENOTEMPTY', 'rename', to);
  } else if (target instanceof Directory) {
    throw fsError('EISDIR', 'rename', to);
  }
}

interface CloneContext {
  data: UnsyncedPolicy;
  dirOps: UnsyncedPolicy;
  rng: () => number;
  /** One clone per inode, so a file reachable under two names (a half-durable rename) stays one file. */
  inodes: Map<Inode, Inode>;
  /** Directories already placed, so a half-durable directory move cannot yield a cycle or a double. */
  dirs: Set<Directory>;
}

function cloneDirectory(dir: Directory, ctx: CloneContext): Directory {
  const entries = new Map<string, Node>();
  for (const [name, node] of dir.afterCrash(ctx.dirOps, ctx.rng)) {
    if (node instanceof Inode) {
      let copy = ctx.inodes.get(node);
      if (copy === undefined) {
        copy = new Inode(node.afterCrash(ctx.data, ctx.rng));
        ctx.inodes.set(node, copy);
      }
      entries.set(name, copy);
    } else if (!ctx.dirs.has(node)) {
      ctx.dirs.add(node);
      entries.set(name, cloneDirectory(node, ctx));
    }
  }
  return new Directory(entries);
}
