/**
 * A fault-injecting {@link FileSystem} wrapper, after Pebble's `errorfs` and SQLite's I/O error
 * tests.
 *
 * Before each operation, on the file system or on a handle it opened, {@link FaultFileSystem}
 * describes the operation as an {@link FsOp} and asks its {@link Injector}, which may let it run,
 * fail it with an errno code, or (for writes) cut it short. The factories below cover the usual
 * cases: fail the n-th operation, a short write then a full disk, and "crash before the k-th
 * mutating operation" for the systematic crash loop over {@link MemFileSystem.crashClone}.
 *
 * @module
 */
import type { DirectoryLock, FileHandle, FileStat, FileSystem, OpenMode } from './types.js';
import type { MemFileSystem } from './mem.js';

/** The operations a {@link FaultFileSystem} reports. */
export type FsOpKind =
  | 'open'
  | 'readdir'
  | 'mkdir'
  | 'stat'
  | 'rename'
  | 'unlink'
  | 'syncDir'
  | 'lock'
  | 'link'
  | 'rmdir'
  | 'read'
  | 'readSync'
  | 'write'
  | 'writeSync'
  | 'datasync'
  | 'truncate'
  | 'size'
  | 'close';

/** One operation, as shown to an {@link Injector} before it runs. */
export interface FsOp {
  /** Position among all operations of this file system, from 0. */
  index: number;
  kind: FsOpKind;
  /** The path operated on: the handle's path for handle operations, the source for `rename` and `link`. */
  path: string;
  /** The destination of a `rename` or a `link`. */
  to?: string;
  /** Whether the operation changes state: writes, syncs, truncates, renames, links, unlinks, mkdirs, rmdirs, creates. */
  mutating: boolean;
  /** Bytes requested by a read or write; the new size for a truncate. */
  length?: number;
}

/** What an {@link Injector} decides: run the operation (`undefined`), fail it, or cut a write short. */
export type Fault = undefined | { error: string } | { shortWrite: number };

/** Decides the fate of each operation. Injectors may keep state: they see every operation, in order. */
export type Injector = (op: FsOp) => Fault;

const MUTATING: ReadonlySet<FsOpKind> = new Set<FsOpKind>([
  'write',
  'writeSync',
  'datasync',
  'truncate',
  'rename',
  'link',
  'unlink',
  'rmdir',
  'syncDir',
  'mkdir',
]);

/** An errno-style error for an injected fault. */
function injectedError(code: string, op: FsOp): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${op.kind} '${op.path}' (op ${op.index})`);
  err.code = code;
  err.syscall = op.kind;
  err.path = op.path;
  return err;
}

/** What an optional operation the inner file system lacks fails with. */
function notSupported(syscall: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOTSUP: the file system has no ${syscall}, ${syscall} '${file}'`), {
    code: 'ENOTSUP',
    syscall,
    path: file,
  });
}

/** Counts and vets an operation; returns the byte count of an injected short write, if any. */
type Check = (kind: FsOpKind, path: string, extra?: OpExtra) => number | undefined;

interface OpExtra {
  length?: number;
  to?: string;
  mutating?: boolean;
}

/**
 * Wraps a {@link FileSystem} and consults {@link FaultFileSystem.injector} before every operation.
 * Counts operations in {@link FaultFileSystem.ops} and the mutating ones in
 * {@link FaultFileSystem.mutatingOps}, faulted or not.
 */
export class FaultFileSystem implements FileSystem {
  /** Operations seen so far (the next operation's `index`). */
  ops = 0;
  /** Mutating operations seen so far. */
  mutatingOps = 0;

  constructor(
    readonly inner: FileSystem,
    /** Consulted before every operation; `undefined` lets everything run. */
    public injector: Injector | undefined = undefined,
  ) {}

  /** Describes an operation, counts it and asks the injector; throws an injected error. */
  readonly #check: Check = (kind, path, extra = {}) => {
    const mutating = extra.mutating ?? MUTATING.has(kind);
    const op: FsOp = { index: this.ops++, kind, path, mutating };
    if (extra.length !== undefined) op.length = extra.length;
    if (extra.to !== undefined) op.to = extra.to;
    if (mutating) this.mutatingOps++;
    const fault = this.injector?.(op);
    if (fault === undefined) return undefined;
    if ('error' in fault) throw injectedError(fault.error, op);
    if (kind !== 'write' && kind !== 'writeSync') {
      throw new TypeError(`injector answered shortWrite for a ${kind} operation`);
    }
    return Math.max(0, Math.min(fault.shortWrite, op.length ?? 0));
  };

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    this.#check('open', path, { mutating: mode === 'create' });
    return new FaultFileHandle(this.#check, await this.inner.open(path, mode));
  }

  async readdir(dir: string): Promise<string[]> {
    this.#check('readdir', dir);
    return this.inner.readdir(dir);
  }

  async mkdir(dir: string): Promise<void> {
    this.#check('mkdir', dir);
    return this.inner.mkdir(dir);
  }

  async stat(path: string): Promise<FileStat> {
    this.#check('stat', path);
    return this.inner.stat(path);
  }

  async rename(from: string, to: string): Promise<void> {
    this.#check('rename', from, { to });
    return this.inner.rename(from, to);
  }

  async unlink(path: string): Promise<void> {
    this.#check('unlink', path);
    return this.inner.unlink(path);
  }

  async syncDir(dir: string): Promise<void> {
    this.#check('syncDir', dir);
    return this.inner.syncDir(dir);
  }

  /** Counted (and faulted) even when the inner file system has no `link`: that one fails with `ENOTSUP`. */
  async link(from: string, to: string): Promise<void> {
    this.#check('link', from, { to });
    if (!this.inner.link) throw notSupported('link', from);
    return this.inner.link(from, to);
  }

  async rmdir(dir: string): Promise<void> {
    this.#check('rmdir', dir);
    if (!this.inner.rmdir) throw notSupported('rmdir', dir);
    return this.inner.rmdir(dir);
  }

  async lock(dir: string): Promise<DirectoryLock> {
    this.#check('lock', dir);
    return this.inner.lock(dir);
  }
}

class FaultFileHandle implements FileHandle {
  constructor(
    private readonly check: Check,
    private readonly inner: FileHandle,
  ) {}

  get path(): string {
    return this.inner.path;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.check('read', this.path, { length });
    return this.inner.read(buffer, offset, length, position);
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.check('readSync', this.path, { length });
    return this.inner.readSync(buffer, offset, length, position);
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const short = this.check('write', this.path, { length });
    return this.inner.write(buffer, offset, short ?? length, position);
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    const short = this.check('writeSync', this.path, { length });
    return this.inner.writeSync(buffer, offset, short ?? length, position);
  }

  async datasync(): Promise<void> {
    this.check('datasync', this.path);
    return this.inner.datasync();
  }

  async truncate(size: number): Promise<void> {
    this.check('truncate', this.path, { length: size });
    return this.inner.truncate(size);
  }

  async size(): Promise<number> {
    this.check('size', this.path);
    return this.inner.size();
  }

  async close(): Promise<void> {
    // Like close(2), the descriptor is released even when an error is reported.
    try {
      this.check('close', this.path);
    } finally {
      await this.inner.close();
    }
  }
}

/** Fails the operation whose global `index` is given with errno `code`, once. */
export function failAt(index: number, code: string): Injector {
  let fired = false;
  return (op) => {
    if (fired || op.index !== index) return undefined;
    fired = true;
    return { error: code };
  };
}

/** Options of {@link failNth}. */
export interface FailNthOptions {
  /** Also fail every later operation of those kinds. Default false (fail once). */
  persistent?: boolean;
  /** Only operations whose path (or rename destination) matches count. */
  path?: RegExp;
}

/**
 * Fails the `n`-th (0-based) operation of the given kind(s) with errno `code`; with `persistent`,
 * that operation and every later one of those kinds.
 */
export function failNth(kinds: FsOpKind | FsOpKind[], n: number, code: string, options: FailNthOptions = {}): Injector {
  const wanted = new Set(Array.isArray(kinds) ? kinds : [kinds]);
  let seen = 0;
  return (op) => {
    if (!wanted.has(op.kind) || !matchesPath(op, options.path)) return undefined;
    const i = seen++;
    return i === n || (options.persistent === true && i > n) ? { error: code } : undefined;
  };
}

function matchesPath(op: FsOp, pattern: RegExp | undefined): boolean {
  if (pattern === undefined) return true;
  // A stateful (global or sticky) RegExp would match differently each call: reset it.
  pattern.lastIndex = 0;
  if (pattern.test(op.path)) return true;
  pattern.lastIndex = 0;
  return op.to !== undefined && pattern.test(op.to);
}

/**
 * The `n`-th (0-based) write, of either write kind, writes only its first `bytes` bytes (clamped to
 * the length asked) and every later write fails with `code`: a disk filling up mid-write.
 */
export function shortWriteThenFail(n: number, bytes: number, code = 'ENOSPC'): Injector {
  let writes = 0;
  return (op) => {
    if (op.kind !== 'write' && op.kind !== 'writeSync') return undefined;
    const i = writes++;
    if (i < n) return undefined;
    return i === n ? { shortWrite: Math.min(bytes, op.length ?? bytes) } : { error: code };
  };
}

/**
 * Simulates a power loss just before the `k`-th (0-based) mutating operation: calls `onCrash(op)`
 * before that operation runs (the place to take {@link MemFileSystem.crashClone}), then fails it
 * and every later operation, of any kind, with `EIO`, since the process is as good as dead.
 */
export function crashAtMutatingOp(k: number, onCrash: (op: FsOp) => void): Injector {
  let mutating = 0;
  let crashed = false;
  return (op) => {
    if (crashed) return { error: 'EIO' };
    if (!op.mutating || mutating++ !== k) return undefined;
    crashed = true;
    onCrash(op);
    return { error: 'EIO' };
  };
}

/**
 * Combines injectors: every injector sees every operation (so counting ones stay in step), and
 * the first one that answers something other than `undefined` decides.
 */
export function combine(...injectors: Injector[]): Injector {
  return (op) => {
    let decided: Fault;
    for (const injector of injectors) {
      const fault = injector(op);
      decided ??= fault;
    }
    return decided;
  };
}
