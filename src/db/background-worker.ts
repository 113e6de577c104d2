/**
 * The background worker's entry point: a `worker_threads` worker that runs flush and compaction
 * jobs (`compaction-job.ts`) for every DB of the process and posts back the tables they wrote.
 * See `background.ts` for the DB's side and the message protocol.
 *
 * The worker opens the files itself: with the real disk through its own `NodeFileSystem`, with a
 * file system of the DB's caller through a {@link RemoteFileSystem} served by the DB's thread.
 *
 * A `cancel` message aborts its job's signal: the job stops at its next slice, removes its
 * outputs, and the worker answers `cancelled`.
 *
 * The descriptors this thread opens through `node:fs` are its own: Node closes every one a worker
 * left open when the worker ends, by `terminate()` or by an uncaught error (the "unmanaged fds"
 * Node tracks per worker), so a killed worker leaks none (`background.test.ts` counts them).
 *
 * @module
 */
import { type MessagePort, parentPort } from 'node:worker_threads';
import { nodeFileSystem } from '../fs/node.js';
import { RemoteFileSystem } from '../fs/remote.js';
import type { FileSystem } from '../fs/types.js';
import { flushSourceEntries } from '../memtable/flush-source.js';
import { TableReader } from '../sstable/table-reader.js';
import { errorToWire } from '../wire-error.js';
import type { FromWorker, ToWorker } from './background.js';
import { JobCancelledError, runCompactionJob, runFlushJob } from './compaction-job.js';
import { tableFileName } from './filenames.js';
import * as path from 'node:path';
import type { WrittenTable } from './table-sink.js';

const port: MessagePort | null = parentPort;
if (!port) throw new Error('background-worker.js runs as a worker thread');

/** Per running job: file numbers the DB granted and not yet used, a pending request, its cancel. */
const jobs = new Map<number, { numbers: number[]; waiting: ((n: number[]) => void) | undefined; cancel: AbortController }>();

const post = (m: FromWorker): void => port.postMessage(m);

async function fileNumber(id: number): Promise<number> {
  const job = jobs.get(id)!;
  if (job.numbers.length === 0) {
    job.numbers = await new Promise<number[]>((resolve) => {
      job.waiting = resolve;
      post({ type: 'numbers', id, count: 4 });
    });
  }
  return job.numbers.shift()!;
}

/**
 * The written tables, with keys copied into buffers of their own: a key may view a larger buffer
 * (posting it would clone all of it) or a memtable's shared arena (posting it would share the
 * chunk, which the table's metadata would then keep alive). `Buffer#slice` is a view, hence the
 * Uint8Array constructor.
 */
function detach(tables: WrittenTable[]): WrittenTable[] {
  return tables.map((t) => ({
    path: t.path,
    meta: { ...t.meta, smallest: new Uint8Array(t.meta.smallest), largest: new Uint8Array(t.meta.largest) },
  }));
}

async function run(msg: Extract<ToWorker, { type: 'job' }>): Promise<void> {
  const { id, job } = msg;
  const cancel = new AbortController();
  jobs.set(id, { numbers: [], waiting: undefined, cancel });
  const signal = cancel.signal;
  const remote = msg.fs ? new RemoteFileSystem(msg.fs.port, msg.fs.sync) : undefined;
  const fs: FileSystem = remote ?? nodeFileSystem;
  try {
    const newFileNumber = (): Promise<number> => fileNumber(id);
    const result =
      job.kind === 'flush'
        ? await runFlushJob(flushSourceEntries(job.source), job, { fs, newFileNumber, signal })
        : await runCompactionJob(job, {
            fs,
            openInput: (meta) => TableReader.open(fs, path.join(job.dir, tableFileName(meta.fileNumber))),
            releaseInput: (reader) => reader.close(),
            newFileNumber,
            signal,
          });
    post({ type: 'done', id, result: { tables: detach(result.tables), profile: result.profile } });
  } catch (err) {
    if (err instanceof JobCancelledError) post({ type: 'cancelled', id });
    else post({ type: 'failed', id, error: errorToWire(err) });
  } finally {
    jobs.delete(id);
    remote?.close();
  }
}

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'job') void run(msg);
  else if (msg.type === 'numbers') {
    const job = jobs.get(msg.id);
    const resolve = job?.waiting;
    if (job && resolve) {
      job.waiting = undefined;
      resolve(msg.numbers);
    }
  } else if (msg.type === 'cancel') {
    jobs.get(msg.id)?.cancel.abort(new JobCancelledError());
  } else if (msg.type === 'memory') {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (msg.gc && gc) gc();
    post({ type: 'memory', id: msg.id, usage: process.memoryUsage() });
  } else if (msg.type === 'crash') {
    // For the tests: an uncaught error, as a bug in the worker would throw.
    setImmediate(() => {
      throw new Error('background worker crash requested by a test');
    });
  }
});

post({ type: 'ready' });
