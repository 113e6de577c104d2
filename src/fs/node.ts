/**
 * The real file system, over `node:fs`.
 *
 * Callbacks rather than `fs/promises` FileHandles: one thread-pool round trip per call and no
 * FileHandle object per open, which matters for fdatasync latency. `datasync` is `fdatasync(2)`.
 *
 * Locking: Node has no flock/fcntl. On Linux the lock is a Unix socket bound in the abstract
 * namespace under a name derived from the directory's device and inode. The kernel makes the
 * name exclusive across processes and threads and frees it when the process dies, SIGKILL
 * included, so there is no stale lock to detect. Elsewhere a `LOCK` file created with O_EXCL
 * holds the pid, and a lock whose pid is dead is taken over.
 *
 * @module
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DirectoryLock, FileHandle, FileStat, FileSystem, OpenMode } from './types.js';

const OPEN_FLAGS: Record<OpenMode, number> = {
  read: fs.constants.O_RDONLY,
  readwrite: fs.constants.O_RDWR,
  create: fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL,
};

function call<T>(fn: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

class NodeFileHandle implements FileHandle {
  #fd: number;
  #closed = false;

  constructor(
    readonly path: string,
    fd: number,
  ) {
    this.#fd = fd;
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return call((cb) => fs.read(this.#fd, buffer, offset, length, position, cb));
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    return fs.readSync(this.#fd, buffer, offset, length, position);
  }

  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return call((cb) => fs.write(this.#fd, buffer, offset, length, position, cb));
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    return fs.writeSync(this.#fd, buffer, offset, length, position);
  }

  datasync(): Promise<void> {
    return call<void>((cb) => fs.fdatasync(this.#fd, (err) => cb(err, undefined)));
  }

  truncate(size: number): Promise<void> {
    return call<void>((cb) => fs.ftruncate(this.#fd, size, (err) => cb(err, undefined)));
  }

  async size(): Promise<number> {
    const st = await call<fs.Stats>((cb) => fs.fstat(this.#fd, cb));
    return st.size;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await call<void>((cb) => fs.close(this.#fd, (err) => cb(err, undefined)));
  }
}

/** The real file system. One shared instance is exported as {@link nodeFileSystem}. */
export class NodeFileSystem implements FileSystem {
  async open(file: string, mode: OpenMode): Promise<FileHandle> {
    const fd = await call<number>((cb) => fs.open(file, OPEN_FLAGS[mode], 0o644, cb));
    return new NodeFileHandle(file, fd);
  }

  readdir(dir: string): Promise<string[]> {
    return fs.promises.readdir(dir);
  }

  async mkdir(dir: string): Promise<void> {
    await fs.promises.mkdir(dir, { recursive: true });
  }

  async stat(file: string): Promise<FileStat> {
    const st = await fs.promises.stat(file);
    return { size: st.size, isDirectory: st.isDirectory() };
  }

  rename(from: string, to: string): Promise<void> {
    return fs.promises.rename(from, to);
  }

  unlink(file: string): Promise<void> {
    return fs.promises.unlink(file);
  }

  async syncDir(dir: string): Promise<void> {
    // Directory fsync is how POSIX makes a create, rename or unlink durable. Windows cannot open
    // a directory for fsync and has no such requirement.
    if (process.platform === 'win32') return;
    const fd = await call<number>((cb) => fs.open(dir, fs.constants.O_RDONLY, cb));
    try {
      await call<void>((cb) => fs.fsync(fd, (err) => cb(err, undefined)));
    } finally {
      await call<void>((cb) => fs.close(fd, (err) => cb(err, undefined)));
    }
  }

  async lock(dir: string): Promise<DirectoryLock> {
    return process.platform === 'linux' ? lockWithAbstractSocket(dir) : lockWithPidFile(dir);
  }
}

/** The shared real file system. */
export const nodeFileSystem: FileSystem = new NodeFileSystem();

function lockedError(dir: string, detail: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${dir} is locked: ${detail}`), { code: 'ELOCKED' });
}

async function lockWithAbstractSocket(dir: string): Promise<DirectoryLock> {
  const st = await fs.promises.stat(dir, { bigint: true });
  const name = `\0sediment-lock-${st.dev}-${st.ino}`;
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? lockedError(dir, 'held by a live handle') : err);
    });
    server.listen({ path: name, exclusive: true }, () => resolve());
  });
  server.unref(); // the lock must not keep the process alive
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function lockWithPidFile(dir: string): Promise<DirectoryLock> {
  const file = path.join(dir, 'LOCK');
  const token = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.promises.writeFile(file, token, { flag: 'wx' });
      return {
        async release() {
          const now = await fs.promises.readFile(file, 'utf8').catch(() => '');
          if (now === token) await fs.promises.unlink(file).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const held = await fs.promises.readFile(file, 'utf8').catch(() => '');
      const pid = Number.parseInt(held, 10);
      if (Number.isInteger(pid) && pid !== process.pid && !isAlive(pid)) {
        await fs.promises.unlink(file).catch(() => undefined); // stale: its holder died
        continue;
      }
      throw lockedError(dir, `LOCK file held by pid ${held.trim() || '?'}`);
    }
  }
  throw lockedError(dir, 'LOCK file contended');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
