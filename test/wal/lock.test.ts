/**
 * Exclusive open on the real file system: "a second Wal.open of the same directory, from this
 * process, a worker thread or another process, fails at once with a locked error; a holder
 * killed with SIGKILL does not block the next open." And the life cycle around it: close()
 * releases the directory, is idempotent, and every later call rejects with code 'CLOSED'.
 *
 * Worker threads run test/fixtures/wal-lock-worker.mjs, plain JavaScript that loads the real
 * TypeScript WAL (src/wal/index.ts) through tsx's tsImport API: a worker cannot take tsx's
 * `--import` loader in its execArgv. So the worker exercises Wal.open itself, not just the lock
 * primitive. Child processes run test/fixtures/wal-lock-holder.ts, built by the global setup
 * (test/support/build.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { builtScript } from '../support/child.js';
import { claimSocketFile } from '../../src/fs/node.js';
import { segmentFileName } from '../../src/wal/format.js';
import { ClosedError, CorruptionError, LockedError, Record, Wal } from '../../src/wal/index.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HOLDER = path.join(REPO, 'test/fixtures/wal-lock-holder.ts');
const WORKER = path.join(REPO, 'test/fixtures/wal-lock-worker.mjs');

const tmpRoots: string[] = [];
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-'));
  tmpRoots.push(d);
  return path.join(d, 'wal');
}

const openWals: Wal[] = [];
const children = new Set<ChildProcess>();
const workers = new Set<Worker>();
afterEach(async () => {
  for (const w of openWals.splice(0)) await w.close().catch(() => undefined);
  for (const c of children) c.kill('SIGKILL');
  children.clear();
  for (const w of workers) await w.terminate();
  workers.clear();
});
afterAll(() => {
  for (const d of tmpRoots.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function open(dir: string): Promise<Wal> {
  const { wal } = await Wal.open({ dir, fsync: 'os' });
  openWals.push(wal);
  return wal;
}

/** Resolves with what Wal.open rejected with; fails if it opened. */
async function openFails(dir: string, opts: { recovery?: 'strict' | 'salvage' } = {}): Promise<Error & { code?: string }> {
  let wal: Wal;
  try {
    ({ wal } = await Wal.open({ dir, fsync: 'os', ...opts }));
  } catch (err) {
    return err as Error & { code?: string };
  }
  await wal.close();
  return expect.fail('the second Wal.open succeeded');
}

/** Hashes of the directory's regular files (the lock's socket file holds no bytes). */
function snapshot(dir: string): { [name: string]: string } {
  const out: { [name: string]: string } = {};
  for (const name of fs.readdirSync(dir).sort()) {
    if (!fs.lstatSync(path.join(dir, name)).isFile()) continue;
    out[name] = createHash('sha256')
      .update(fs.readFileSync(path.join(dir, name)))
      .digest('hex');
  }
  return out;
}

async function keys(wal: Wal): Promise<string[]> {
  const out: string[] = [];
  for await (const { record } of wal.readFrom({ segmentId: 0, offset: 0 })) out.push(Buffer.from(record.key).toString());
  return out;
}

/** The lock socket files in `dir`. */
const lockSockets = (dir: string): string[] => fs.readdirSync(dir).filter((n) => /^LOCK-[0-9a-f]{16}\.sock$/.test(n));

/** Whether this machine lets us run a process in a new network namespace (root, or user namespaces). */
const CAN_UNSHARE_NET = process.platform === 'linux' && spawnSync('unshare', ['-n', 'true']).status === 0;

// --- child processes and workers ----------------------------------------------------------

interface Child {
  child: ChildProcess;
  /** The next JSON line the child prints. */
  message(): Promise<{ [k: string]: unknown }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs the holder fixture; `netns`: in a network namespace of its own (`unshare -n`), as a container would. */
function runHolder(dir: string, mode: 'try' | 'hold', netns = false): Child {
  const argv = [process.execPath, builtScript(HOLDER), JSON.stringify({ dir, mode })];
  if (netns) argv.unshift('unshare', '-n');
  const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  const waiting: ((line: string | undefined) => void)[] = [];
  const lines: string[] = [];
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      done = true;
      for (const w of waiting.splice(0)) w(undefined);
      resolve({ code, signal });
    }),
  );
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
    for (let i = out.indexOf('\n'); i >= 0; i = out.indexOf('\n')) {
      const line = out.slice(0, i);
      out = out.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const message = async (): Promise<{ [k: string]: unknown }> => {
    const line = lines.shift() ?? (done ? undefined : await new Promise<string | undefined>((resolve) => waiting.push(resolve)));
    if (line === undefined) return expect.fail(`child exited without a message:\n${err}`);
    return JSON.parse(line) as { [k: string]: unknown };
  };
  return { child, message, exited };
}

function runWorker(dir: string, mode: 'try' | 'hold'): { worker: Worker; message(): Promise<{ [k: string]: unknown }> } {
  const worker = new Worker(WORKER, { workerData: { dir, mode } });
  workers.add(worker);
  const queue: { [k: string]: unknown }[] = [];
  const waiting: ((m: { [k: string]: unknown }) => void)[] = [];
  let failure: Error | undefined;
  const failed: ((e: Error) => void)[] = [];
  worker.on('message', (m: { [k: string]: unknown }) => {
    const w = waiting.shift();
    if (w) {
      failed.shift();
      w(m);
    } else queue.push(m);
  });
  worker.on('error', (e) => {
    failure = e;
    for (const f of failed.splice(0)) f(e);
  });
  const message = (): Promise<{ [k: string]: unknown }> => {
    const m = queue.shift();
    if (m) return Promise.resolve(m);
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      waiting.push(resolve);
      failed.push(reject);
    });
  };
  return { worker, message };
}

// ----------------------------------------------------------------------------------------------

describe('exclusive open', () => {
  it('a second open in the same process rejects with LOCKED at once; the first keeps working', async () => {
    const dir = tempDir();
    const wal = await open(dir);
    await wal.append(Record.put('a', '1'));
    await wal.flush();
    const before = snapshot(dir);
    for (const recovery of ['strict', 'salvage'] as const) {
      const err = await openFails(dir, { recovery });
      expect(err).toBeInstanceOf(LockedError);
      expect(err.code).toBe('LOCKED');
    }
    // The same directory through another path (a symlink) is the same directory.
    const link = path.join(path.dirname(dir), 'link');
    fs.symlinkSync(dir, link);
    expect((await openFails(link)).code).toBe('LOCKED');
    expect(snapshot(dir)).toEqual(before);
    // The first handle is unaffected.
    await wal.append(Record.put('b', '2'));
    await wal.sync();
    expect(await keys(wal)).toEqual(['a', 'b']);
    await wal.close();
    // ...and once it is closed, the directory opens again.
    const again = await open(dir);
    expect(await keys(again)).toEqual(['a', 'b']);
  });

  it('many concurrent opens of one directory: exactly one wins, the rest are LOCKED', async () => {
    const dir = tempDir();
    fs.mkdirSync(dir, { recursive: true });
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => Wal.open({ dir, fsync: 'os' })));
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    for (const r of won) openWals.push(r.value.wal);
    expect(won).toHaveLength(1);
    for (const r of lost) expect((r.reason as { code?: string }).code).toBe('LOCKED');
  });

  it('from a worker thread: LOCKED while this thread holds it, and the reverse', async () => {
    const dir = tempDir();
    const wal = await open(dir);
    const t = runWorker(dir, 'try');
    expect(await t.message()).toMatchObject({ ok: false, code: 'LOCKED', name: 'LockedError' });
    await wal.close();

    const h = runWorker(dir, 'hold');
    expect(await h.message()).toEqual({ held: true });
    const err = await openFails(dir);
    expect(err.code).toBe('LOCKED');
    h.worker.postMessage('close');
    expect(await h.message()).toEqual({ closed: true });
    const mine = await open(dir);
    await mine.close();

    // A worker terminated while holding the log (no close) does not leave the directory locked.
    const k = runWorker(dir, 'hold');
    expect(await k.message()).toEqual({ held: true });
    expect((await openFails(dir)).code).toBe('LOCKED');
    await k.worker.terminate();
    workers.delete(k.worker);
    const after = await open(dir);
    await after.close();
  });

  it('from another process: LOCKED while this process holds it', async () => {
    const dir = tempDir();
    const wal = await open(dir);
    await wal.append(Record.put('mine', 'x'));
    const c = runHolder(dir, 'try');
    expect(await c.message()).toMatchObject({ ok: false, code: 'LOCKED', name: 'LockedError' });
    expect((await c.exited).code).toBe(0);
    expect(await keys(wal)).toEqual(['mine']);
  });

  it('a holder process killed with SIGKILL does not block the next open', async () => {
    const dir = tempDir();
    const h = runHolder(dir, 'hold');
    const held = await h.message();
    expect(held).toMatchObject({ held: true });
    // While it lives, neither this process nor another can open.
    expect((await openFails(dir)).code).toBe('LOCKED');
    const t = runHolder(dir, 'try');
    expect(await t.message()).toMatchObject({ ok: false, code: 'LOCKED' });
    h.child.kill('SIGKILL');
    expect((await h.exited).signal).toBe('SIGKILL');
    const { wal, recovery } = await Wal.open({ dir, fsync: 'os' });
    openWals.push(wal);
    expect(recovery.validRecords).toBe(1);
    expect(await keys(wal)).toEqual(['held-by']);
    // And another process can open it after this one closes.
    await wal.close();
    const t2 = runHolder(dir, 'try');
    expect(await t2.message()).toEqual({ ok: true });
  });

  // Abstract socket names belong to a network namespace; the lock's socket file does not.
  it.skipIf(!CAN_UNSHARE_NET)(
    'from another network namespace (a container sharing the directory): LOCKED both ways; SIGKILL frees it',
    async () => {
      const dir = tempDir();
      const wal = await open(dir);
      const t = runHolder(dir, 'try', true);
      expect(await t.message()).toMatchObject({ ok: false, code: 'LOCKED', name: 'LockedError' });
      await wal.close();
      expect(lockSockets(dir)).toEqual([]); // close removed this process's socket file

      const h = runHolder(dir, 'hold', true);
      expect(await h.message()).toMatchObject({ held: true });
      expect((await openFails(dir)).code).toBe('LOCKED');
      h.child.kill('SIGKILL');
      expect((await h.exited).signal).toBe('SIGKILL');
      // Its socket file is left behind, refusing connections: it does not block.
      expect(lockSockets(dir)).toHaveLength(1);
      const after = await open(dir);
      expect(await keys(after)).toEqual(['held-by']);
      await after.close();
    },
  );

  it("lock socket files: a dead holder's is deleted once stale; a live one locks, also past the socket path limit", async () => {
    // A directory whose socket path is over the 107 bytes a socket address holds.
    const dir = path.join(tempDir(), 'd'.repeat(120));
    fs.mkdirSync(dir, { recursive: true });
    const first = await claimSocketFile(dir);
    expect(first).toBeDefined();
    expect(lockSockets(dir)).toHaveLength(1);
    await expect(claimSocketFile(dir)).rejects.toMatchObject({ code: 'ELOCKED' });
    expect(lockSockets(dir)).toHaveLength(1); // the loser removed its own
    await first!.release();
    expect(lockSockets(dir)).toEqual([]);

    // A holder killed with SIGKILL leaves its socket file; young, it is skipped, stale, deleted.
    const h = runHolder(dir, 'hold');
    expect(await h.message()).toMatchObject({ held: true });
    h.child.kill('SIGKILL');
    await h.exited;
    const [dead] = lockSockets(dir);
    expect(dead).toBeDefined();
    const young = await claimSocketFile(dir);
    expect(lockSockets(dir)).toContain(dead);
    await young!.release();
    const stale = await claimSocketFile(dir, 0);
    expect(lockSockets(dir)).not.toContain(dead);
    expect(lockSockets(dir)).toHaveLength(1);
    await stale!.release();
  });

  it('a strict open refused for corruption releases the lock', async () => {
    const dir = tempDir();
    const { wal } = await Wal.open({ dir, fsync: 'os', maxSegmentSize: 256 });
    for (let i = 0; i < 12; i++) await wal.append(Record.put(`k${i}`, 'v'.repeat(60)));
    expect(wal.stats().activeSegmentId).toBeGreaterThan(1);
    await wal.close();
    // Flip a byte of the first record of segment 0 (not the last segment).
    const file = path.join(dir, segmentFileName(0));
    const b = fs.readFileSync(file);
    b[40]! ^= 0x10;
    fs.writeFileSync(file, b);
    const err = await openFails(dir);
    expect(err).toBeInstanceOf(CorruptionError);
    // Not LOCKED: the refused open let go of the directory.
    const { wal: salvaged, recovery } = await Wal.open({ dir, fsync: 'os', maxSegmentSize: 256, recovery: 'salvage' });
    openWals.push(salvaged);
    expect(recovery.corruptionDetected).toBe(true);
  });
});

describe('close', () => {
  it('releases the directory: open/close cycles reopen it every time', async () => {
    const dir = tempDir();
    for (let i = 0; i < 5; i++) {
      const { wal, recovery } = await Wal.open({ dir, fsync: 'os' });
      expect(recovery.validRecords).toBe(i);
      await wal.append(Record.put(`k${i}`, 'v'));
      await wal.close();
    }
    const wal = await open(dir);
    expect(await keys(wal)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
  });

  it('is idempotent: every call returns the same promise, before and after it settles', async () => {
    const dir = tempDir();
    const { wal } = await Wal.open({ dir, fsync: { batchMs: 5 } });
    await wal.append(Record.put('a', '1'));
    const p1 = wal.close();
    const p2 = wal.close();
    expect(p2).toBe(p1);
    await p1;
    const p3 = wal.close();
    expect(p3).toBe(p1);
    await expect(p3).resolves.toBeUndefined();
  });

  it('appends queued before close are written; every call after close rejects with CLOSED', async () => {
    const dir = tempDir();
    const { wal } = await Wal.open({ dir, fsync: 'always' });
    const early = [wal.append(Record.put('q1', 'v')), wal.appendBatch([Record.put('q2', 'v'), Record.put('q3', 'v')])];
    const closing = wal.close();
    // Made while closing: refused.
    const during = wal.append(Record.put('late', 'v'));
    await expect(during).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(Promise.all(early)).resolves.toHaveLength(2);
    await closing;

    const isClosed = (e: unknown): void => {
      expect(e).toBeInstanceOf(ClosedError);
      expect((e as ClosedError).code).toBe('CLOSED');
    };
    for (const call of [
      () => wal.append(Record.put('x', 'y')),
      () => wal.appendBatch([Record.put('x', 'y'), Record.put('z', 'w')]),
      () => wal.appendBatch([]),
      () => wal.flush(),
      () => wal.sync(),
      () => wal.deleteSegmentsBefore({ segmentId: 1, offset: 0 }),
    ]) {
      const p = call();
      expect(p).toBeInstanceOf(Promise);
      await p.then(
        () => expect.fail('a call after close resolved'),
        (e: unknown) => isClosed(e),
      );
    }
    // readFrom throws (synchronously) rather than returning a rejecting iterator.
    let thrown: unknown;
    try {
      const it = wal.readFrom({ segmentId: 0, offset: 0 });
      await it.next();
    } catch (e) {
      thrown = e;
    }
    isClosed(thrown);

    const again = await open(dir);
    expect(await keys(again)).toEqual(['q1', 'q2', 'q3']);
  });

  it('a reader created before close fails with CLOSED when iterated after it', async () => {
    const dir = tempDir();
    const { wal } = await Wal.open({ dir, fsync: 'os' });
    await wal.append(Record.put('a', '1'));
    const reader = wal.readFrom({ segmentId: 0, offset: 0 });
    await wal.close();
    await expect(reader.next()).rejects.toMatchObject({ code: 'CLOSED' });
  });
});
