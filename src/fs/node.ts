/**
 * The real file system, over `node:fs`.
 *
 * Callbacks rather than `fs/promises` FileHandles: one thread-pool round trip per call and no
 * FileHandle object per open, which matters for fdatasync latency. `datasync` is `fdatasync(2)`.
 *
 * Locking: Node has no flock/fcntl. On Linux the lock is two listening Unix sockets:
 * - one bound in the abstract namespace under a name derived from the directory's device and
 *   inode. The kernel makes the name exclusive across processes and threads and frees it when
 *   the process dies, SIGKILL included. But abstract names belong to a network namespace: a
 *   process in another one (a container sharing the volume) does not see it;
 * - so also a socket file `LOCK-<random>.sock` in the directory, which every process that can
 *   reach the directory can connect to. See {@link claimSocketFile}.
 * Elsewhere a `LOCK` file created with O_EXCL holds the pid, and a lock whose pid is dead is
 * taken over.
 *
 * @module
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { isLockSocketFileName, LOCK_FILE, lockSocketFileName } from './lock-names.js';
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

  link(from: string, to: string): Promise<void> {
    return fs.promises.link(from, to);
  }

  rmdir(dir: string): Promise<void> {
    return fs.promises.rmdir(dir);
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
    return process.platform === 'linux' ? lockWithSockets(dir) : lockWithPidFile(dir);
  }
}

/** The shared real file system. */
export const nodeFileSystem: FileSystem = new NodeFileSystem();

function lockedError(dir: string, detail: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${dir} is locked: ${detail}`), { code: 'ELOCKED' });
}

async function lockWithSockets(dir: string): Promise<DirectoryLock> {
  const local = await lockWithAbstractSocket(dir);
  let shared: DirectoryLock | undefined;
  try {
    shared = await claimSocketFile(dir);
  } catch (err) {
    await local.release();
    throw err;
  }
  return {
    async release() {
      await shared?.release();
      await local.release();
    },
  };
}

/**
 * A lock socket file that refuses connections is a dead holder's (the kernel does not remove
 * socket files). It is deleted only once older than this: a live holder's file also refuses for
 * the instant between its bind and its listen, and deleting it then could hide that holder from
 * a third opener. Younger, it is passed over (it does not lock the directory either).
 */
export const STALE_LOCK_SOCKET_MS = 10_000;
/** Errors of a file system that cannot hold socket files: the abstract lock is then the lock. */
const NO_SOCKET_FILES = new Set(['EOPNOTSUPP', 'ENOTSUP', 'EPERM']);

/**
 * The directory-wide half of the Linux lock, for processes in other network namespaces: create,
 * then look. It binds a socket file of its own, `LOCK-<random>.sock`, listening; then lists the
 * directory, and if any other lock socket file accepts a connection, its holder is alive: this
 * one closes its own and the directory is locked. Of two openers, the one that lists second
 * finds the other's socket (each binds before it lists), so at most one goes on; in a tight race
 * both may back off, and both get a locked error, as from any held lock.
 *
 * Resolves to undefined on a file system that cannot hold socket files. @internal exported for
 * tests, with `staleMs`.
 */
export async function claimSocketFile(dir: string, staleMs = STALE_LOCK_SOCKET_MS): Promise<DirectoryLock | undefined> {
  const name = lockSocketFileName(randomBytes(8).toString('hex'));
  // A socket address holds at most 107 bytes of path: a longer one goes through the directory's
  // descriptor in /proc, which must stay open while the socket does (closing the server
  // unlinks its file by that path).
  let dirFd: number | undefined;
  let base = dir;
  if (Buffer.byteLength(path.join(dir, name)) > 100) {
    dirFd = await call<number>((cb) => fs.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, cb));
    base = `/proc/self/fd/${dirFd}`;
  }
  const closeDir = async (): Promise<void> => {
    if (dirFd !== undefined) await call<void>((cb) => fs.close(dirFd!, (err) => cb(err, undefined))).catch(() => undefined);
  };
  const server = net.createServer((conn) => conn.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: path.join(base, name) }, () => resolve());
    });
  } catch (err) {
    await closeDir();
    const code = (err as NodeJS.ErrnoException).code ?? '';
    // No /proc (some sandboxes) makes the long-path form fail: the abstract lock then too.
    if (NO_SOCKET_FILES.has(code) || (dirFd !== undefined && code === 'ENOENT')) return undefined;
    throw err;
  }
  server.unref(); // the lock must not keep the process alive
  const release = async (): Promise<void> => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await closeDir();
  };
  try {
    for (const other of await fs.promises.readdir(dir)) {
      if (other === name || !isLockSocketFileName(other)) continue;
      const state = await probeSocket(path.join(base, other));
      if (state === 'live') throw lockedError(dir, `held by a live handle (${other}), maybe in another network namespace`);
      if (state === 'dead') await removeIfOlder(path.join(dir, other), staleMs);
    }
  } catch (err) {
    await release();
    throw err;
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await release();
    },
  };
}

/**
 * Whether a lock socket file has a listener: 'live' if a connection is accepted or fails for
 * any reason but these: refused or not a socket ('dead'), or no longer there ('gone').
 */
function probeSocket(file: string): Promise<'live' | 'dead' | 'gone'> {
  return new Promise((resolve) => {
    const conn = net.connect({ path: file });
    conn.once('connect', () => {
      conn.destroy();
      resolve('live');
    });
    conn.once('error', (err: NodeJS.ErrnoException) => {
      conn.destroy();
      resolve(err.code === 'ENOENT' ? 'gone' : err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK' ? 'dead' : 'live');
    });
  });
}

async function removeIfOlder(file: string, ms: number): Promise<void> {
  const st = await fs.promises.lstat(file).catch(() => undefined);
  if (st?.isSocket() && Date.now() - st.ctimeMs >= ms) await fs.promises.unlink(file).catch(() => undefined);
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
  const file = path.join(dir, LOCK_FILE);
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
