/**
 * Test support shared by the WAL and DB harnesses: a seeded PRNG, timing helpers, and
 * {@link ProcessFs}, which models the process that owns a file system dying.
 *
 * @module
 */
import type { DirectoryLock, FileHandle, FileStat, FileSystem, OpenMode } from '../../src/fs/types.js';

/** mulberry32: a small seeded PRNG so crash images are reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const noop = (): void => undefined;
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Lets pending background work (microtasks, setImmediate slices) run. */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await tick();
}

/** Resolves `p`, or rejects with a clear message if it takes longer than `ms` (a hang is a bug). */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, guard]);
  } finally {
    clearTimeout(timer);
  }
}

function deadError(op: string, file: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`EIO: process is dead, ${op} '${file}'`);
  err.code = 'EIO';
  return err;
}

/**
 * One process's view of a MemFileSystem.
 *
 * - `kill()` models the process dying: its locks are released and every later operation fails
 *   with EIO, so an abandoned DB can never touch the file system again.
 */
export class ProcessFs implements FileSystem {
  #dead = false;
  readonly #locks = new Set<DirectoryLock>();

  constructor(readonly inner: FileSystem) {}

  get dead(): boolean {
    return this.#dead;
  }

  kill(): void {
    this.#dead = true;
    for (const lock of this.#locks) void lock.release().catch(noop);
    this.#locks.clear();
  }

  check(op: string, file: string): void {
    if (this.#dead) throw deadError(op, file);
  }

  async open(file: string, mode: OpenMode): Promise<FileHandle> {
    this.check('open', file);
    return new ProcessHandle(this, await this.inner.open(file, mode));
  }
  async readdir(dir: string): Promise<string[]> {
    this.check('readdir', dir);
    return this.inner.readdir(dir);
  }
  async mkdir(dir: string): Promise<void> {
    this.check('mkdir', dir);
    return this.inner.mkdir(dir);
  }
  async stat(file: string): Promise<FileStat> {
    this.check('stat', file);
    return this.inner.stat(file);
  }
  async rename(from: string, to: string): Promise<void> {
    this.check('rename', from);
    return this.inner.rename(from, to);
  }
  async unlink(file: string): Promise<void> {
    this.check('unlink', file);
    return this.inner.unlink(file);
  }
  async syncDir(dir: string): Promise<void> {
    this.check('syncDir', dir);
    return this.inner.syncDir(dir);
  }
  async lock(dir: string): Promise<DirectoryLock> {
    this.check('lock', dir);
    const lock = await this.inner.lock(dir);
    this.#locks.add(lock);
    return {
      release: async () => {
        if (!this.#locks.delete(lock)) return;
        await lock.release();
      },
    };
  }
}

class ProcessHandle implements FileHandle {
  constructor(
    private readonly proc: ProcessFs,
    private readonly inner: FileHandle,
  ) {}
  get path(): string {
    return this.inner.path;
  }
  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.proc.check('read', this.path);
    return this.inner.read(buffer, offset, length, position);
  }
  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.proc.check('read', this.path);
    return this.inner.readSync(buffer, offset, length, position);
  }
  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.proc.check('write', this.path);
    return this.inner.write(buffer, offset, length, position);
  }
  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.proc.check('write', this.path);
    return this.inner.writeSync(buffer, offset, length, position);
  }
  async datasync(): Promise<void> {
    this.proc.check('fdatasync', this.path);
    return this.inner.datasync();
  }
  async truncate(size: number): Promise<void> {
    this.proc.check('ftruncate', this.path);
    return this.inner.truncate(size);
  }
  async size(): Promise<number> {
    this.proc.check('fstat', this.path);
    return this.inner.size();
  }
  async close(): Promise<void> {
    // The descriptor is released even by a dead process.
    return this.inner.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Model

/** Bytewise order of utf8 strings: the DB's key order. */
