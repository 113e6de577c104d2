/**
 * The file-system interface: every byte sediment reads or writes goes through it, so that tests
 * can swap the real disk ({@link NodeFileSystem}) for a crashable in-memory one
 * ({@link MemFileSystem}) or wrap either in a fault injector ({@link FaultFileSystem}).
 *
 * Paths are plain strings joined with `/`-style separators by `node:path`; implementations do not
 * resolve them against a working directory of their own.
 *
 * Errors are thrown as Node's are: objects with an errno `code` (`ENOENT`, `EEXIST`, `ENOSPC`,
 * `EIO`...). The layers above wrap them in `IoError` where the failure is the caller's concern.
 *
 * @module
 */

/**
 * How {@link FileSystem.open} opens a file.
 * - `read`: read only; the file must exist.
 * - `readwrite`: read and write; the file must exist.
 * - `create`: read and write; the file must NOT exist (O_CREAT | O_EXCL). The new directory
 *   entry is durable only after {@link FileSystem.syncDir} of its directory.
 */
export type OpenMode = 'read' | 'readwrite' | 'create';

/** An open file. Positions are absolute byte offsets; there is no implicit file pointer. */
export interface FileHandle {
  /** The path the file was opened with. */
  readonly path: string;

  /** Reads up to `length` bytes at `position` into `buffer[offset..]`; returns bytes read (0 at EOF). */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;

  /** Synchronous {@link read}: for short reads on a hot path (a cached block, a small header). */
  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number;

  /**
   * Writes `buffer[offset..offset+length]` at `position`; returns the bytes written, which may be
   * fewer than asked (a short write: the caller must continue or give up, never assume). Once
   * the promise settles the handle keeps no reference to `buffer`: the caller may reuse it (a
   * file system that queues writes copies them).
   */
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;

  /**
   * Synchronous {@link write}. Handing bytes to the OS page cache takes microseconds, and doing it
   * without a thread-pool round trip is what lets the WAL resolve an append as soon as its bytes
   * are in the OS.
   */
  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number;

  /** fdatasync: the file's data and size are on stable storage when this resolves. */
  datasync(): Promise<void>;

  /** Sets the file's size (shrinking drops bytes; growing adds zeros). Durable after {@link datasync}. */
  truncate(size: number): Promise<void>;

  /** The file's current size in bytes. */
  size(): Promise<number>;

  /** Closes the handle. Unsynced data is not made durable by closing. */
  close(): Promise<void>;
}

/** What {@link FileSystem.stat} reports. */
export interface FileStat {
  size: number;
  isDirectory: boolean;
}

/** An exclusive hold on a directory, released by {@link DirectoryLock.release} or process death. */
export interface DirectoryLock {
  release(): Promise<void>;
}

/** The operations sediment needs from a file system. */
export interface FileSystem {
  open(path: string, mode: OpenMode): Promise<FileHandle>;
  /** Names (not paths) of the entries in `dir`, in no particular order. */
  readdir(dir: string): Promise<string[]>;
  /** Creates `dir` and its missing parents; no error if it exists. Not durable until `syncDir` of the parent. */
  mkdir(dir: string): Promise<void>;
  stat(path: string): Promise<FileStat>;
  /** Atomically replaces `to` with `from`. Durable after `syncDir` of both directories. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file. Durable after `syncDir` of its directory. */
  unlink(path: string): Promise<void>;
  /** fsync of a directory: entries created, renamed or removed in it are durable when this resolves. */
  syncDir(dir: string): Promise<void>;
  /**
   * Takes an exclusive lock on `dir` for this handle. A second `lock` of the same directory, from
   * this process, a worker thread or another process, rejects with an error whose `code` is
   * `ELOCKED` until the first is released or its process dies (even by SIGKILL).
   */
  lock(dir: string): Promise<DirectoryLock>;
  /**
   * Optional: makes `to` a second name of the file `from` (a hard link). `to` must not exist
   * (`EEXIST`); `from` must be a file (`EPERM` for a directory). Fails with `EXDEV` when the two
   * are on different file systems, and `EPERM` or `ENOTSUP` where the file system has no hard
   * links. The new entry is durable after `syncDir` of `to`'s directory; the data is the file's
   * own (durable as far as it was synced). Without it, a checkpoint copies its tables.
   */
  link?(from: string, to: string): Promise<void>;
  /** Optional: removes an empty directory (`ENOTEMPTY` otherwise). Durable after `syncDir` of its parent. */
  rmdir?(dir: string): Promise<void>;
}

/** The methods every {@link FileSystem} has. */
const FILE_SYSTEM_METHODS = ['open', 'readdir', 'mkdir', 'stat', 'rename', 'unlink', 'syncDir', 'lock'] as const;

/**
 * `fs`'s required operations, each one calling `fs`'s: the base of a wrapper that replaces some
 * of them (`{ ...requiredOperations(fs), open: ... }`). The optional ones (`link`, `rmdir`) are
 * left out, so the wrapper has them only if it adds them.
 */
export function requiredOperations(fs: FileSystem): FileSystem {
  return {
    open: (path, mode) => fs.open(path, mode),
    readdir: (dir) => fs.readdir(dir),
    mkdir: (dir) => fs.mkdir(dir),
    stat: (path) => fs.stat(path),
    rename: (from, to) => fs.rename(from, to),
    unlink: (path) => fs.unlink(path),
    syncDir: (dir) => fs.syncDir(dir),
    lock: (dir) => fs.lock(dir),
  };
}

/**
 * Why `value`, given as an `fs` option, is not a {@link FileSystem}, or undefined if it looks like
 * one. The option checks of `Wal.open`, `DB.open` and `DB.repair` share it.
 */
export function fileSystemProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `must be a FileSystem object, got ${String(value)}`;
  const missing = FILE_SYSTEM_METHODS.filter((m) => typeof (value as Record<string, unknown>)[m] !== 'function');
  return missing.length > 0 ? `is not a FileSystem: it has no ${missing.join(', ')} method` : undefined;
}
