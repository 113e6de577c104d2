/**
 * A {@link FileSystem} in another thread: {@link serveFileSystem} runs on the thread that owns a
 * file system and answers requests on a `MessagePort`; {@link RemoteFileSystem}, in a worker,
 * sends them. The DB's background worker does its I/O through it when the DB was opened with a
 * file system of the caller's own (an in-memory, crashable or fault-injecting one, as the tests
 * use), so that every byte the worker writes still goes through that file system; with the real
 * disk the worker opens files itself and this module is not involved.
 *
 * Asynchronous calls are messages with an id, answered by a message. The synchronous ones
 * (`readSync`, `writeSync`, which table cursors use) cannot wait for a message: the worker posts
 * the request and blocks in `Atomics.wait` on a shared control word until the serving thread has
 * done the work and filled the shared data buffer. Only the worker blocks; the serving thread
 * answers from its event loop like any other message.
 *
 * Shared memory of one channel:
 * ```
 *  control (Int32Array of 2):  [0] state: 0 idle / 1 answered    [1] result: bytes (>= 0), or
 *                                                                 -(1 + length of a JSON error in data)
 *  data    (Uint8Array of SYNC_CHUNK bytes): the bytes read or to write, or the JSON error
 * ```
 *
 * Errors cross as {@link WireError}s: their errno `code` survives, so the layers above wrap them
 * in `IoError` exactly as they would a local error.
 *
 * @module
 */
import type { MessagePort } from 'node:worker_threads';
import { errorFromWire, errorToWire, type WireError } from '../wire-error.js';
import type { DirectoryLock, FileHandle, FileStat, FileSystem, OpenMode } from './types.js';

/** Bytes moved per synchronous round trip; larger reads and writes take several. */
export const SYNC_CHUNK = 1024 * 1024;

/** The shared memory of a channel's synchronous calls; create it with {@link syncChannel}. */
export interface SyncChannel {
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

/** A new {@link SyncChannel}, to hand to both ends. */
export function syncChannel(): SyncChannel {
  return { control: new SharedArrayBuffer(8), data: new SharedArrayBuffer(SYNC_CHUNK) };
}

type FsOp = 'open' | 'readdir' | 'mkdir' | 'stat' | 'rename' | 'link' | 'unlink' | 'rmdir' | 'syncDir';
type HandleOp = 'read' | 'write' | 'datasync' | 'truncate' | 'size' | 'close';

/** A request from the worker. */
type Request =
  | { id: number; kind: 'fs'; op: FsOp; args: unknown[] }
  | { id: number; kind: 'handle'; op: HandleOp; handle: number; args: unknown[] }
  | { kind: 'sync'; op: 'readSync' | 'writeSync'; handle: number; length: number; position: number };

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

/**
 * Answers {@link RemoteFileSystem} requests arriving on `port` with `fs`. Handles the remote side
 * leaves open when the port closes (its thread died) are closed. Returns a function that stops
 * serving (and closes those handles too).
 */
export function serveFileSystem(fs: FileSystem, port: MessagePort, sync: SyncChannel): () => Promise<void> {
  const handles = new Map<number, FileHandle>();
  let nextHandle = 1;
  const control = new Int32Array(sync.control);
  const data = new Uint8Array(sync.data);

  const answerSync = (result: number): void => {
    Atomics.store(control, 1, result);
    Atomics.store(control, 0, 1);
    Atomics.notify(control, 0);
  };

  const handleOf = (id: number): FileHandle => {
    const h = handles.get(id);
    if (!h) throw Object.assign(new Error(`remote file handle ${id} is not open`), { code: 'EBADF' });
    return h;
  };

  const runFs = async (op: FsOp, args: unknown[]): Promise<unknown> => {
    switch (op) {
      case 'open': {
        const h = await fs.open(args[0] as string, args[1] as OpenMode);
        const id = nextHandle++;
        handles.set(id, h);
        return id;
      }
      case 'readdir':
        return fs.readdir(args[0] as string);
      case 'mkdir':
        return fs.mkdir(args[0] as string);
      case 'stat':
        return fs.stat(args[0] as string);
      case 'rename':
        return fs.rename(args[0] as string, args[1] as string);
      case 'link':
        return fs.link ? fs.link(args[0] as string, args[1] as string) : Promise.reject(notSupported('link'));
      case 'unlink':
        return fs.unlink(args[0] as string);
      case 'rmdir':
        return fs.rmdir ? fs.rmdir(args[0] as string) : Promise.reject(notSupported('rmdir'));
      case 'syncDir':
        return fs.syncDir(args[0] as string);
    }
  };

  const runHandle = async (op: HandleOp, id: number, args: unknown[]): Promise<unknown> => {
    const h = handleOf(id);
    switch (op) {
      case 'read': {
        const length = args[0] as number;
        const buf = new Uint8Array(length);
        const n = await h.read(buf, 0, length, args[1] as number);
        return buf.subarray(0, n);
      }
      case 'write': {
        const bytes = args[0] as Uint8Array;
        return h.write(bytes, 0, bytes.length, args[1] as number);
      }
      case 'datasync':
        return h.datasync();
      case 'truncate':
        return h.truncate(args[0] as number);
      case 'size':
        return h.size();
      case 'close':
        handles.delete(id);
        return h.close();
    }
  };

  const onMessage = (req: Request): void => {
    if (req.kind === 'sync') {
      try {
        const h = handleOf(req.handle);
        const n = req.op === 'readSync' ? h.readSync(data, 0, req.length, req.position) : h.writeSync(data, 0, req.length, req.position);
        answerSync(n);
      } catch (err) {
        const json = Buffer.from(JSON.stringify(errorToWire(err)), 'utf8');
        const length = Math.min(json.length, data.length);
        data.set(json.subarray(0, length));
        answerSync(-(1 + length));
      }
      return;
    }
    const work = req.kind === 'fs' ? runFs(req.op, req.args) : runHandle(req.op, req.handle, req.args);
    work.then(
      (value) => port.postMessage({ id: req.id, ok: true, value } satisfies Reply),
      (err: unknown) => port.postMessage({ id: req.id, ok: false, error: errorToWire(err) } satisfies Reply),
    );
  };

  const closeAll = async (): Promise<void> => {
    const open = [...handles.values()];
    handles.clear();
    for (const h of open) await h.close().catch(() => undefined);
  };
  port.on('message', onMessage);
  port.on('close', () => void closeAll());
  return async () => {
    port.off('message', onMessage);
    port.close();
    await closeAll();
  };
}

/** What an optional operation the served file system lacks fails with. */
function notSupported(op: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOTSUP: the served file system has no ${op}`), { code: 'ENOTSUP' });
}

/** The worker's end of a served file system. See the module comment. */
export class RemoteFileSystem implements FileSystem {
  readonly #port: MessagePort;
  readonly #control: Int32Array;
  readonly #data: Uint8Array;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  #nextId = 1;

  constructor(port: MessagePort, sync: SyncChannel) {
    this.#port = port;
    this.#control = new Int32Array(sync.control);
    this.#data = new Uint8Array(sync.data);
    port.on('message', (reply: Reply) => {
      const p = this.#pending.get(reply.id);
      if (!p) return;
      this.#pending.delete(reply.id);
      if (reply.ok) p.resolve(reply.value);
      else p.reject(errorFromWire(reply.error));
    });
  }

  /** @internal */
  request(req: Omit<Extract<Request, { kind: 'fs' }>, 'id'> | Omit<Extract<Request, { kind: 'handle' }>, 'id'>): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#port.postMessage({ ...req, id });
    });
  }

  /** @internal One synchronous round trip of at most {@link SYNC_CHUNK} bytes through `data`. */
  syncCall(op: 'readSync' | 'writeSync', handle: number, length: number, position: number): number {
    Atomics.store(this.#control, 0, 0);
    this.#port.postMessage({ kind: 'sync', op, handle, length, position } satisfies Request);
    while (Atomics.wait(this.#control, 0, 0, 60_000) === 'timed-out') {
      // The serving thread is busy or gone; keep waiting (a dead owner terminates this worker).
    }
    const result = Atomics.load(this.#control, 1);
    if (result >= 0) return result;
    const json = Buffer.from(this.#data.subarray(0, -result - 1)).toString('utf8');
    throw errorFromWire(JSON.parse(json) as WireError);
  }

  /** @internal */
  get data(): Uint8Array {
    return this.#data;
  }

  /** Closes the port; requests still pending reject. */
  close(): void {
    this.#port.close();
    for (const p of this.#pending.values()) p.reject(new Error('the remote file system was closed'));
    this.#pending.clear();
  }

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const id = (await this.request({ kind: 'fs', op: 'open', args: [path, mode] })) as number;
    return new RemoteFileHandle(this, path, id, mode === 'read');
  }

  async readdir(dir: string): Promise<string[]> {
    return (await this.request({ kind: 'fs', op: 'readdir', args: [dir] })) as string[];
  }

  async mkdir(dir: string): Promise<void> {
    await this.request({ kind: 'fs', op: 'mkdir', args: [dir] });
  }

  async stat(path: string): Promise<FileStat> {
    return (await this.request({ kind: 'fs', op: 'stat', args: [path] })) as FileStat;
  }

  async rename(from: string, to: string): Promise<void> {
    await this.request({ kind: 'fs', op: 'rename', args: [from, to] });
  }

  async link(from: string, to: string): Promise<void> {
    await this.request({ kind: 'fs', op: 'link', args: [from, to] });
  }

  async unlink(path: string): Promise<void> {
    await this.request({ kind: 'fs', op: 'unlink', args: [path] });
  }

  async rmdir(dir: string): Promise<void> {
    await this.request({ kind: 'fs', op: 'rmdir', args: [dir] });
  }

  async syncDir(dir: string): Promise<void> {
    await this.request({ kind: 'fs', op: 'syncDir', args: [dir] });
  }

  /** Locks stay with the thread that owns the file system: a remote end never takes one. */
  lock(dir: string): Promise<DirectoryLock> {
    return Promise.reject(Object.assign(new Error(`a remote file system takes no locks (${dir})`), { code: 'ENOTSUP' }));
  }
}

/**
 * A handle of a {@link RemoteFileSystem}. A handle opened for reading only reads ahead: each
 * synchronous round trip fetches a whole {@link SYNC_CHUNK} and later reads inside it are served
 * from that copy, so that a table cursor pays one round trip per MiB rather than one per block.
 * Safe because such a handle cannot write, and sediment never changes a file others read.
 */
class RemoteFileHandle implements FileHandle {
  readonly path: string;
  readonly #fs: RemoteFileSystem;
  readonly #id: number;
  /** Read-ahead of a read-only handle: bytes of the file from `#aheadAt`. */
  readonly #ahead: Uint8Array | undefined;
  #aheadAt = 0;
  #aheadLength = 0;

  constructor(fs: RemoteFileSystem, path: string, id: number, readOnly: boolean) {
    this.#fs = fs;
    this.path = path;
    this.#id = id;
    this.#ahead = readOnly ? new Uint8Array(SYNC_CHUNK) : undefined;
  }

  #call(op: HandleOp, args: unknown[]): Promise<unknown> {
    return this.#fs.request({ kind: 'handle', op, handle: this.#id, args });
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const bytes = (await this.#call('read', [length, position])) as Uint8Array;
    buffer.set(bytes, offset);
    return bytes.length;
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    const ahead = this.#ahead;
    if (ahead && length <= SYNC_CHUNK) {
      const inside = position >= this.#aheadAt && position + length <= this.#aheadAt + this.#aheadLength;
      if (!inside) {
        // The window is empty until the read succeeds: a failed read must not leave it claiming
        // the old window's bytes at the new position.
        this.#aheadLength = 0;
        const n = this.#fs.syncCall('readSync', this.#id, SYNC_CHUNK, position);
        ahead.set(this.#fs.data.subarray(0, n));
        this.#aheadAt = position;
        this.#aheadLength = n;
      }
      const n = Math.max(0, Math.min(length, this.#aheadAt + this.#aheadLength - position));
      buffer.set(ahead.subarray(position - this.#aheadAt, position - this.#aheadAt + n), offset);
      return n;
    }
    let done = 0;
    while (done < length) {
      const want = Math.min(SYNC_CHUNK, length - done);
      const n = this.#fs.syncCall('readSync', this.#id, want, position + done);
      buffer.set(this.#fs.data.subarray(0, n), offset + done);
      done += n;
      if (n < want) break;
    }
    return done;
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    // A copy of exactly the bytes to write: posting a view would clone its whole ArrayBuffer.
    return (await this.#call('write', [buffer.slice(offset, offset + length), position])) as number;
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    let done = 0;
    while (done < length) {
      const want = Math.min(SYNC_CHUNK, length - done);
      this.#fs.data.set(buffer.subarray(offset + done, offset + done + want));
      const n = this.#fs.syncCall('writeSync', this.#id, want, position + done);
      done += n;
      if (n < want) break;
    }
    return done;
  }

  async datasync(): Promise<void> {
    await this.#call('datasync', []);
  }

  async truncate(size: number): Promise<void> {
    await this.#call('truncate', [size]);
  }

  async size(): Promise<number> {
    return (await this.#call('size', [])) as number;
  }

  async close(): Promise<void> {
    await this.#call('close', []);
  }
}
