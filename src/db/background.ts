/**
 * Where the DB's heavy background work runs: building tables for flushes (sorting a frozen
 * memtable's arena, which the worker reads in place) and merging them for compactions
 * (`compaction-job.ts`). By default (`background: 'worker'`) in one long-lived
 * `worker_threads` worker shared by every DB of the process, so that the application's thread
 * only admits writes, serves reads and installs results; with `background: 'inline'` on the DB's
 * own thread, in slices, for runtimes without workers.
 *
 * Protocol (structured-clone messages on the worker's port):
 * ```
 *  DB thread -> worker   { type: 'job', id, job, fs? }        fs: a served file system's port
 *                        { type: 'numbers', id, numbers }     file numbers the job asked for
 *  worker -> DB thread   { type: 'ready' }                    loaded, takes jobs
 *                        { type: 'numbers', id, count }       "allocate me `count` file numbers"
 *                        { type: 'done', id, result }         the synced output tables, and a profile
 *                        { type: 'failed', id, error }        a WireError; outputs already removed
 * ```
 * Keys in the returned metadata are copied into buffers of their own before posting: posting a
 * view clones the whole buffer behind it.
 *
 * A worker that dies (an uncaught error, `terminate()`) fails every job it was running with a
 * {@link BackgroundWorkerError} that lists the file numbers those jobs were granted; the DB
 * removes those files (no manifest names them) and runs the job again on a new worker. Nothing
 * a dead worker wrote is ever installed.
 *
 * The worker is `unref`ed while it has no job, so it never keeps a process alive.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { serveFileSystem, syncChannel, type SyncChannel } from '../fs/remote.js';
import type { FileSystem } from '../fs/types.js';
import { errorFromWire, type WireError } from '../wire-error.js';
import type { CompactionJob, FlushJob, JobResult } from './compaction-job.js';

/** Where background work runs: see the module comment. */
export type BackgroundMode = 'worker' | 'inline';

/** A job as posted to the worker. */
export type WorkerJob = CompactionJob | FlushJob;

/** @internal Messages to the worker. */
export type ToWorker =
  | { type: 'job'; id: number; job: WorkerJob; fs: { port: MessagePort; sync: SyncChannel } | undefined }
  | { type: 'numbers'; id: number; numbers: number[] }
  | { type: 'crash' };

/** @internal Messages from the worker. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'numbers'; id: number; count: number }
  | { type: 'done'; id: number; result: JobResult }
  | { type: 'failed'; id: number; error: WireError };

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

interface RunningJob {
  allocate: (count: number) => number[];
  granted: number[];
  resolve: (result: JobResult) => void;
  reject: (err: Error) => void;
}

/** Starts the worker from the build (`background-worker.js`), or from the sources through tsx. */
function spawn(): Worker {
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

  #worker: Worker | undefined;
  /** Resolves when the running worker has loaded (or died). */
  #ready: Promise<void> = Promise.resolve();
  readonly #jobs = new Map<number, RunningJob>();
  #nextId = 1;
  /** Workers started so far (a restart after a death counts one more). */
  started = 0;

  #start(): Worker {
    const worker = spawn();
    this.started++;
    let failure: unknown;
    this.#ready = new Promise((resolve) => {
      worker.on('message', (msg: FromWorker) => (msg.type === 'ready' ? resolve() : this.#onMessage(worker, msg)));
      worker.once('exit', () => resolve());
    });
    worker.on('error', (err) => {
      failure = err;
    });
    // Idle until a job arrives: an idle worker must not keep the process alive.
    worker.unref();
    worker.on('exit', (code) => {
      if (this.#worker === worker) this.#worker = undefined;
      const jobs = [...this.#jobs.values()];
      this.#jobs.clear();
      for (const job of jobs) {
        job.reject(
          new BackgroundWorkerError(`the background worker exited (code ${code}) while it ran a job`, job.granted, { cause: failure }),
        );
      }
    });
    return worker;
  }

  #onMessage(worker: Worker, msg: Exclude<FromWorker, { type: 'ready' }>): void {
    const job = this.#jobs.get(msg.id);
    if (!job) return;
    if (msg.type === 'numbers') {
      const numbers = job.allocate(msg.count);
      job.granted.push(...numbers);
      worker.postMessage({ type: 'numbers', id: msg.id, numbers } satisfies ToWorker);
      return;
    }
    this.#jobs.delete(msg.id);
    if (this.#jobs.size === 0) worker.unref();
    if (msg.type === 'done') job.resolve(msg.result);
    else job.reject(errorFromWire(msg.error));
  }

  /**
   * Runs `job` in the worker. `fs` is the DB's file system when it is not the real disk: the
   * worker then does its I/O through it. `allocate(count)` grants `count` new table file numbers.
   */
  async run(job: WorkerJob, fs: FileSystem | undefined, allocate: (count: number) => number[]): Promise<JobResult> {
    this.#worker ??= this.#start();
    const worker = this.#worker;
    const id = this.#nextId++;
    let served: { port: MessagePort; sync: SyncChannel } | undefined;
    let stop: (() => Promise<void>) | undefined;
    if (fs) {
      const channel = new MessageChannel();
      const sync = syncChannel();
      stop = serveFileSystem(fs, channel.port1, sync);
      served = { port: channel.port2, sync };
    }
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
          if (this.#jobs.size === 0) worker.unref();
          reject(err);
        }
      });
    } finally {
      await stop?.();
    }
  }

  /**
   * Starts the worker if none runs, so that the first job does not wait for it to load; resolves
   * once it runs. DB.open calls it without waiting.
   */
  warm(): Promise<void> {
    this.#worker ??= this.#start();
    return this.#ready;
  }

  /** @internal For the tests: kills the worker now, as a crash would. */
  async terminate(): Promise<void> {
    await this.#worker?.terminate();
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
