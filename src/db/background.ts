/**
 * Where the DB's heavy background work runs: building tables for flushes (sorting a frozen
 * memtable's arena, which the worker reads in place) and merging them for compactions
 * (`compaction-job.ts`). By default (`background: 'worker'`) in one long-lived
 * `worker_threads` worker shared by every DB of the process, so that the application's thread
 * only admits writes, serves reads and installs results; with `background: 'inline'` on the DB's
 * own thread, in slices, for runtimes without workers. Each DB runs its jobs through its own
 * {@link BackgroundJobs}: the mode, retries after a worker death, the fallback, cancellation.
 *
 * Protocol (structured-clone messages on the worker's port):
 * ```
 *  DB thread -> worker   { type: 'job', id, job, fs? }        fs: a served file system's port
 *                        { type: 'numbers', id, numbers }     file numbers the job asked for
 *                        { type: 'cancel', id }               abandon the job (the DB closes)
 *  worker -> DB thread   { type: 'ready' }                    loaded, takes jobs
 *                        { type: 'numbers', id, count }       "allocate me `count` file numbers"
 *                        { type: 'done', id, result }         the synced output tables, and a profile
 *                        { type: 'failed', id, error }        a WireError; outputs already removed
 *                        { type: 'cancelled', id }            stopped on `cancel`; outputs already removed
 * ```
 * Keys in the returned metadata are copied into buffers of their own before posting: posting a
 * view clones the whole buffer behind it.
 *
 * A worker that dies (an uncaught error, `terminate()`) fails every job it was running with a
 * {@link BackgroundWorkerError} that lists the file numbers those jobs were granted; the DB
 * removes those files (no manifest names them) and runs the job again on a new worker. Nothing
 * a dead worker wrote is ever installed. The descriptors it opened are closed by Node when it
 * ends (see `background-worker.ts`).
 *
 * A worker that cannot start (`node:worker_threads` is missing, the constructor throws, or it
 * exits before it is `ready`: a bundle without `background-worker.js` next to this module, a
 * resource limit) is not retried:
 * the process emits one warning (`SEDIMENT_BACKGROUND_INLINE`) and from then on every DB of the
 * process runs its jobs inline, as with `background: 'inline'`; `stats().background` says so,
 * with the reason.
 *
 * Cancellation (`close()` does not wait for housekeeping): {@link BackgroundJobs.cancel} aborts
 * the DB's signal. An inline job sees it at its next slice; a job in the worker is sent `cancel`,
 * and the DB waits for its `cancelled` (or its death), so that its outputs are removed before
 * the DB releases its directory. Either way the job rejects with {@link JobCancelledError}, which
 * is not a background error, and every later job of that DB rejects with it at once.
 *
 * The worker is `unref`ed while it has no job, so it never keeps a process alive.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type { MessagePort, Worker } from 'node:worker_threads';
import { serveFileSystem, syncChannel, type SyncChannel } from '../fs/remote.js';
import type { FileSystem } from '../fs/types.js';
import * as path from 'node:path';
import { errorFromWire, type WireError } from '../wire-error.js';
import { type CompactionJob, type FlushJob, JobCancelledError, type JobResult } from './compaction-job.js';
import { tableFileName } from './filenames.js';
import type { DBMeter } from './meter.js';

/** Where background work runs: see the module comment. */
export type BackgroundMode = 'worker' | 'inline';

/** A job as posted to the worker. */
export type WorkerJob = CompactionJob | FlushJob;

/** @internal Messages to the worker. */
export type ToWorker =
  | { type: 'job'; id: number; job: WorkerJob; fs: { port: MessagePort; sync: SyncChannel } | undefined }
  | { type: 'numbers'; id: number; numbers: number[] }
  | { type: 'cancel'; id: number }
  | { type: 'memory'; id: number; gc: boolean }
  | { type: 'crash' };

/** @internal Messages from the worker. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'numbers'; id: number; count: number }
  | { type: 'done'; id: number; result: JobResult }
  | { type: 'failed'; id: number; error: WireError }
  | { type: 'cancelled'; id: number }
  | { type: 'memory'; id: number; usage: NodeJS.MemoryUsage };

/** The background worker died while it ran a job. */
export class BackgroundWorkerError extends Error {
  constructor(
    message: string,
    /** Table file numbers granted to the failed job: files by those names are the dead job's. */
    readonly fileNumbers: readonly number[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BackgroundWorkerError';
  }
}

/** The background worker could not start: see the module comment. */
class WorkerStartError extends Error {
  constructor(cause: Error) {
    super(`the background worker could not start: ${cause.message}`, { cause });
    this.name = 'WorkerStartError';
  }
}

interface RunningJob {
  allocate: (count: number) => number[];
  granted: number[];
  resolve: (result: JobResult) => void;
  reject: (err: Error) => void;
}

/**
 * `node:worker_threads`, loaded when a worker starts: in a runtime without it, the require throws
 * there, and the DB runs its jobs inline (a static import would make this module fail to load).
 */
function threads(): typeof import('node:worker_threads') {
  return createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
}

/** Starts the worker from the build (`background-worker.js`), or from the sources through tsx. */
function spawn(): Worker {
  const { Worker } = threads();
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./background-worker.js', here));
  // Running from TypeScript sources (the tests, tsx): the worker compiles them through tsx too.
  const api = pathToFileURL(
    createRequire(here)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const entry = new URL('./background-worker.ts', here).href;
  return new Worker(`import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(here)}))`, {
    eval: true,
  });
}

/** The process's background worker: see the module comment. */
export class BackgroundWorker {
  static #shared: BackgroundWorker | undefined;

  /** The worker every DB of this process shares. */
  static shared(): BackgroundWorker {
    BackgroundWorker.#shared ??= new BackgroundWorker();
    return BackgroundWorker.#shared;
  }

  /**
   * @internal For the tests: makes `worker` the shared one (undefined: a new one on next use);
   * returns the one it replaces.
   */
  static replaceShared(worker: BackgroundWorker | undefined): BackgroundWorker | undefined {
    const previous = BackgroundWorker.#shared;
    BackgroundWorker.#shared = worker;
    return previous;
  }

  readonly #spawn: () => Worker;
  #worker: Worker | undefined;
  /** Resolves when the running worker has loaded (or died). */
  #ready: Promise<void> = Promise.resolve();
  readonly #jobs = new Map<number, RunningJob>();
  #nextId = 1;
  /** Why the worker could not start: set once, then every job runs inline. */
  #unavailable: Error | undefined;
  /** A worker {@link terminate} was called on: its exit is a death, not a failed start. */
  #terminated: Worker | undefined;
  /** Jobs waiting for the worker to load (it is ref'd meanwhile). */
  #loading = 0;
  /** Workers started so far (a restart after a death counts one more). */
  started = 0;
  /** Pending {@link memoryUsage} answers, by id. */
  readonly #memoryQueries = new Map<number, (usage: NodeJS.MemoryUsage | undefined) => void>();

  /** `spawn` (for the tests) starts the worker thread; by default from the build or the sources. */
  constructor(spawnWorker: () => Worker = spawn) {
    this.#spawn = spawnWorker;
  }

  /** Why the worker could not start (the process's DBs then run their jobs inline), or undefined. */
  get unavailable(): Error | undefined {
    return this.#unavailable;
  }

  #start(): Worker | undefined {
    let worker: Worker;
    try {
      worker = this.#spawn();
    } catch (err) {
      this.#cannotStart(err);
      return undefined;
    }
    this.started++;
    let failure: unknown;
    let loaded = false;
    this.#ready = new Promise((resolve) => {
      worker.on('message', (msg: FromWorker) => {
        if (msg.type !== 'ready') this.#onMessage(worker, msg);
        else {
          loaded = true;
          resolve();
        }
      });
      worker.once('exit', () => resolve());
    });
    worker.on('error', (err) => {
      failure = err;
    });
    // Idle until a job arrives: an idle worker must not keep the process alive.
    worker.unref();
    worker.on('exit', (code) => {
      if (this.#worker === worker) this.#worker = undefined;
      if (!loaded && this.#terminated !== worker) {
        this.#cannotStart(failure ?? new Error(`it exited with code ${code} before it was ready`));
      }
      for (const answer of this.#memoryQueries.values()) answer(undefined);
      this.#memoryQueries.clear();
      const jobs = [...this.#jobs.values()];
      this.#jobs.clear();
      for (const job of jobs) {
        job.reject(
          loaded
            ? new BackgroundWorkerError(`the background worker exited (code ${code}) while it ran a job`, job.granted, { cause: failure })
            : new WorkerStartError(this.#unavailable ?? new Error(`it exited with code ${code} before it was ready`)),
        );
      }
    });
    return worker;
  }

  /** Records that the worker cannot start, and says so once (a process warning). */
  #cannotStart(err: unknown): void {
    if (this.#unavailable) return;
    this.#unavailable = err instanceof Error ? err : new Error(String(err));
    process.emitWarning(
      `sediment: the background worker could not start (${this.#unavailable.message}); flushes and compactions run inline, on the thread of each DB`,
      { code: 'SEDIMENT_BACKGROUND_INLINE' },
    );
  }

  #onMessage(worker: Worker, msg: Exclude<FromWorker, { type: 'ready' }>): void {
    if (msg.type === 'memory') {
      this.#memoryQueries.get(msg.id)?.(msg.usage);
      this.#memoryQueries.delete(msg.id);
      return;
    }
    const job = this.#jobs.get(msg.id);
    if (!job) return;
    if (msg.type === 'numbers') {
      const numbers = job.allocate(msg.count);
      job.granted.push(...numbers);
      worker.postMessage({ type: 'numbers', id: msg.id, numbers } satisfies ToWorker);
      return;
    }
    this.#jobs.delete(msg.id);
    if (this.#jobs.size === 0 && this.#loading === 0) worker.unref();
    if (msg.type === 'done') job.resolve(msg.result);
    else if (msg.type === 'cancelled') job.reject(new JobCancelledError());
    else job.reject(errorFromWire(msg.error));
  }

  /**
   * The running, loaded worker (started if none runs), or undefined if it cannot start. For a
   * job (`forJob`), the worker keeps the process alive while it loads, as it will while it runs
   * the job: nothing else may be left to keep the event loop running.
   */
  async #loaded(forJob: boolean): Promise<Worker | undefined> {
    for (;;) {
      if (this.#unavailable) return undefined;
      this.#worker ??= this.#start();
      const worker = this.#worker;
      if (!worker) continue; // the start failed: #unavailable says why
      if (forJob) {
        worker.ref();
        this.#loading++;
      }
      try {
        await this.#ready;
      } finally {
        if (forJob && --this.#loading === 0 && this.#jobs.size === 0) worker.unref();
      }
      // Still running: loaded. Otherwise it ended while loading (terminated: start another).
      if (this.#worker === worker) return worker;
    }
  }

  /** True once a worker runs; false if it cannot start (see the module comment). */
  async available(): Promise<boolean> {
    return (await this.#loaded(true)) !== undefined;
  }

  /**
   * Runs `job` in the worker. `fs` is the DB's file system when it is not the real disk: the
   * worker then does its I/O through it. `allocate(count)` grants `count` new table file numbers.
   * `signal` cancels the job: it rejects with {@link JobCancelledError} once the worker has
   * stopped it and removed its outputs. Rejects with a `WorkerStartError` (and runs nothing) if
   * the worker cannot start, with a {@link BackgroundWorkerError} if it dies meanwhile.
   */
  async run(job: WorkerJob, fs: FileSystem | undefined, allocate: (count: number) => number[], signal?: AbortSignal): Promise<JobResult> {
    const worker = await this.#loaded(true);
    if (!worker) throw new WorkerStartError(this.#unavailable!);
    signal?.throwIfAborted();
    const id = this.#nextId++;
    let served: { port: MessagePort; sync: SyncChannel } | undefined;
    let stop: (() => Promise<void>) | undefined;
    if (fs) {
      const channel = new (threads().MessageChannel)();
      const sync = syncChannel();
      stop = serveFileSystem(fs, channel.port1, sync);
      served = { port: channel.port2, sync };
    }
    const cancel = (): void => {
      if (this.#jobs.has(id)) worker.postMessage({ type: 'cancel', id } satisfies ToWorker);
    };
    try {
      return await new Promise<JobResult>((resolve, reject) => {
        this.#jobs.set(id, { allocate, granted: [], resolve, reject });
        worker.ref();
        const msg: ToWorker = { type: 'job', id, job, fs: served };
        try {
          worker.postMessage(msg, served ? [served.port] : []);
        } catch (err) {
          // Nothing was posted (a value that cannot be cloned): the job never started.
          this.#jobs.delete(id);
          if (this.#jobs.size === 0 && this.#loading === 0) worker.unref();
          reject(err);
          return;
        }
        signal?.addEventListener('abort', cancel, { once: true });
      });
    } finally {
      signal?.removeEventListener('abort', cancel);
      await stop?.();
    }
  }

  /**
   * Starts the worker if none runs, so that the first job does not wait for it to load; resolves
   * once it runs (or could not start). DB.open calls it without waiting.
   */
  async warm(): Promise<void> {
    await this.#loaded(false);
  }

  /**
   * @internal The worker's `process.memoryUsage()` (its heap, external and ArrayBuffer bytes; rss
   * is the process's), or undefined if no worker runs. With `gc`, after a full garbage collection
   * when the process runs with `--expose-gc`. For benchmarks (bench/rss.ts).
   */
  memoryUsage(gc = false): Promise<NodeJS.MemoryUsage | undefined> {
    const worker = this.#worker;
    if (!worker) return Promise.resolve(undefined);
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#memoryQueries.set(id, resolve);
      worker.postMessage({ type: 'memory', id, gc } satisfies ToWorker);
    });
  }

  /** @internal For the tests: kills the worker now, as a crash would. */
  async terminate(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    this.#terminated = worker;
    await worker.terminate();
  }

  /** @internal For the tests: makes the worker throw an uncaught error. */
  crash(): void {
    this.#worker?.postMessage({ type: 'crash' } satisfies ToWorker);
  }

  /** @internal Jobs running now. */
  get running(): number {
    return this.#jobs.size;
  }
}

/** Runs of a job on a worker that keeps dying before the DB gives up (a background error). */
export const WORKER_ATTEMPTS = 3;

/** What a DB's {@link BackgroundJobs} needs from it. */
export interface JobHost {
  dir: string;
  /** The DB's file system: served to the worker unless it is the real disk (`served` false). */
  fs: FileSystem;
  served: boolean;
  /** Allocates a table file number. */
  newFileNumber(): number;
  meter: DBMeter;
}

/** Where a DB's background work runs, and what became of it: `stats().background`. */
export interface BackgroundStats {
  /** Where jobs run now: the `background` option, or `'inline'` if the worker could not start. */
  mode: BackgroundMode;
  /** Set when `'worker'` was asked and the jobs run inline: why the worker could not start. */
  fallbackReason?: string;
  /** Jobs this DB handed to the worker. */
  workerJobs: number;
  /** Times the worker died while running one of them (the job then ran again). */
  workerDeaths: number;
  /** Jobs that `close()` cancelled (they installed nothing). */
  cancelledJobs: number;
}

/** One DB's background jobs: see the module comment. */
export class BackgroundJobs {
  readonly #requested: BackgroundMode;
  readonly #host: JobHost;
  readonly #cancel = new AbortController();
  #workerJobs = 0;
  #workerDeaths = 0;
  #cancelledJobs = 0;

  constructor(mode: BackgroundMode, host: JobHost) {
    this.#requested = mode;
    this.#host = host;
  }

  /** True once {@link cancel} was called. */
  get cancelled(): boolean {
    return this.#cancel.signal.aborted;
  }

  /** Cancels the running jobs and every later one: they reject with {@link JobCancelledError}. */
  cancel(): void {
    if (!this.cancelled) this.#cancel.abort(new JobCancelledError());
  }

  /**
   * Runs a job where this DB's background work runs: `job()` in the worker, or `inline(signal)`
   * on this thread (with `background: 'inline'`, or when the worker cannot start). A worker that
   * dies mid-job leaves files under the numbers it was granted: they are removed, and the job runs
   * again on a new worker, up to {@link WORKER_ATTEMPTS} times in all.
   */
  async run(job: () => WorkerJob, inline: (signal: AbortSignal) => Promise<JobResult>): Promise<JobResult> {
    const signal = this.#cancel.signal;
    try {
      signal.throwIfAborted();
      if (this.#requested === 'inline') return await inline(signal);
      const worker = BackgroundWorker.shared();
      const host = this.#host;
      const allocate = (count: number): number[] => Array.from({ length: count }, () => host.newFileNumber());
      for (let attempt = 1; ; attempt++) {
        if (!(await worker.available())) return await inline(signal);
        try {
          this.#workerJobs++;
          return await worker.run(job(), host.served ? host.fs : undefined, allocate, signal);
        } catch (err) {
          if (err instanceof WorkerStartError) {
            this.#workerJobs--; // it ran nothing: the next round runs it inline
            continue;
          }
          if (!(err instanceof BackgroundWorkerError)) throw err;
          this.#workerDeaths++;
          host.meter.counter('db.background_worker_deaths', 1);
          for (const n of err.fileNumbers) {
            // What stays is removed at the next open.
            await host.fs.unlink(path.join(host.dir, tableFileName(n))).catch(() => undefined);
          }
          signal.throwIfAborted();
          if (attempt >= WORKER_ATTEMPTS) throw err;
        }
      }
    } catch (err) {
      if (err instanceof JobCancelledError) this.#cancelledJobs++;
      throw err;
    }
  }

  /** See {@link BackgroundStats}. */
  stats(): BackgroundStats {
    const failed = this.#requested === 'worker' ? BackgroundWorker.shared().unavailable : undefined;
    return {
      mode: failed ? 'inline' : this.#requested,
      ...(failed ? { fallbackReason: failed.message } : {}),
      workerJobs: this.#workerJobs,
      workerDeaths: this.#workerDeaths,
      cancelledJobs: this.#cancelledJobs,
    };
  }
}
