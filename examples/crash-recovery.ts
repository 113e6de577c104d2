/**
 * `npm start` (or `npx tsx examples/crash-recovery.ts [dir]`): the database surviving a crash.
 *
 * A child process writes to a DB as fast as it can, eight writes in flight at once (default
 * options, except a 256 KiB memtable so that it flushes tables while it runs). Most writes are
 * single puts; every tenth is an order: a batch of three keys that must appear together. After
 * each write resolves, the child notes its number in an "ack" file. The parent kills the child
 * with SIGKILL mid-stream, reopens the DB, and checks that every acknowledged write is there with
 * its exact value, and that every order is whole. Then it shows what recovery did, the tables per
 * level, and a range query. The data lives in a fresh directory under the OS temp dir, removed at
 * the end (pass a new or empty directory as the first argument to keep it). Exits non-zero if
 * anything acknowledged is missing.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { DB, type BatchOperation } from '../src/index.js';

type Value = { [k: string]: string | number | string[] };

const pad = (n: number): string => String(n).padStart(8, '0');
const isOrder = (seq: number): boolean => seq % 10 === 9;
/** WAL segment files; the WAL directory also holds its lock (`LOCK-*.sock`, or `LOCK`). */
const isSegment = (name: string): boolean => /^\d{16}\.wal$/.test(name);

/** What write `seq` stores: a user record, or for an order, the order and its two lines. */
function writeOf(seq: number): [string, Value][] {
  if (!isOrder(seq)) {
    return [
      [
        `user:${pad(seq)}`,
        { seq, name: `user ${seq}`, email: `u${seq}@example.org`, score: (seq * 7919) % 1000, bio: 'lorem ipsum '.repeat(1 + (seq % 9)) },
      ],
    ];
  }
  return [
    [`order:${pad(seq)}`, { seq, customer: `user:${pad(seq - 1)}`, lines: 2, total: 30 + (seq % 70) }],
    [`order:${pad(seq)}:line:1`, { seq, sku: `sku-${seq % 97}`, qty: 1 + (seq % 3) }],
    [`order:${pad(seq)}:line:2`, { seq, sku: `sku-${seq % 89}`, qty: 1, gift: ['wrap', 'card'] }],
  ];
}

async function child(dir: string): Promise<void> {
  const db = await DB.open<string, Value>(path.join(dir, 'db'), { memtableSize: 256 * 1024 });
  const ack = fs.openSync(path.join(dir, 'acked'), 'a');
  let seq = 0;
  process.send?.('ready');
  // Eight writers in flight at once, like a server handling concurrent requests.
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (;;) {
        const mine = seq++;
        const w = writeOf(mine);
        if (w.length === 1) await db.put(w[0]![0], w[0]![1]);
        else await db.batch(w.map(([key, value]): BatchOperation<string, Value> => ({ type: 'put', key, value })));
        fs.writeSync(ack, `${mine}\n`); // the acknowledgement: only after the write resolved
      }
    }),
  );
}

async function parent(dir: string, keep: boolean): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  console.log(`sediment DB crash demo, data in ${dir}\n`);
  const self = fileURLToPath(import.meta.url);
  const repo = path.resolve(path.dirname(self), '..');
  const proc = spawn(process.execPath, ['--import', 'tsx', self, '--child', dir], {
    cwd: repo,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.once('exit', (_code, signal) => resolve(signal)));
  const started = await Promise.race([
    new Promise<boolean>((resolve) => proc.once('message', () => resolve(true))),
    exited.then(() => false),
  ]);
  if (!started) throw new Error('the writer process failed to start');
  await new Promise((r) => setTimeout(r, 600 + Math.random() * 600));
  proc.kill('SIGKILL');
  if ((await exited) !== 'SIGKILL') throw new Error('the writer process stopped before it was killed');

  const acked = fs.readFileSync(path.join(dir, 'acked'), 'utf8').split('\n').filter(Boolean).map(Number);
  const files = fs.readdirSync(path.join(dir, 'db'));
  console.log(
    `writer killed with SIGKILL after ${acked.length} acknowledged writes (${acked.filter(isOrder).length} of them 3-key order batches)`,
  );
  console.log(
    `on disk at the kill: ${files.filter((f) => f.endsWith('.sst')).length} table files, ${fs.readdirSync(path.join(dir, 'db', 'wal')).filter(isSegment).length} WAL segment(s), ${files.filter((f) => !f.endsWith('.sst')).join(', ')}`,
  );

  const t0 = performance.now();
  const db = await DB.open<string, Value>(path.join(dir, 'db'), { memtableSize: 256 * 1024 });
  const stats = db.stats();
  console.log(`\nreopened in ${(performance.now() - t0).toFixed(1)} ms; WAL recovery report:`);
  console.log(stats.walRecovery);
  console.log(
    `tables per level: ${stats.levels.map((l, i) => `L${i}=${l.tables}`).join(' ')}; ${stats.memtable.entries} entries replayed into the memtable`,
  );

  // One scan of everything, then every acknowledged write, with its exact value; orders whole.
  const all = new Map<string, Value>();
  for await (const [key, value] of db.iterator()) all.set(key, value);
  let missing = 0;
  for (const seq of acked) {
    const w = writeOf(seq);
    if (w.every(([key, value]) => isDeepStrictEqual(all.get(key), value))) continue;
    missing++;
    if (missing <= 5) console.log(`  MISSING: write #${seq} (${w.map(([k]) => k).join(', ')})`);
  }
  // Writes that made it without being acknowledged (in flight at the kill), and orders cut in half.
  const ackedSet = new Set(acked);
  let extra = 0;
  let partial = 0;
  const orderKeys = new Map<number, number>();
  for (const [key, value] of all) {
    const seq = value.seq as number;
    if (key.startsWith('order:')) orderKeys.set(seq, (orderKeys.get(seq) ?? 0) + 1);
    else if (!ackedSet.has(seq)) extra++;
  }
  for (const [seq, keys] of orderKeys) {
    if (keys !== 3) partial++;
    if (!ackedSet.has(seq)) extra++;
  }
  console.log(
    `\n${acked.length - missing} of ${acked.length} acknowledged writes are back with their exact values; ${extra} more were written but not yet acknowledged`,
  );
  console.log(partial === 0 ? 'no order is half-written ✔' : `${partial} order batch(es) HALF-APPLIED ✘`);
  console.log(missing === 0 ? 'every acknowledged write survived the crash ✔' : `LOST ${missing} acknowledged writes ✘`);

  // A range query: five users from the middle, and the newest order with its lines.
  const users = acked.filter((s) => !isOrder(s)).sort((a, b) => a - b);
  const mid = users[Math.floor(users.length / 2)] ?? 0;
  console.log(`\nrange query gte 'user:${pad(mid)}', limit 5:`);
  for await (const [key, value] of db.iterator({ gte: `user:${pad(mid)}`, lt: 'user;', limit: 5 }))
    console.log(`  ${key} -> ${value.name}, score ${value.score}`);
  console.log(`newest order (reverse range query, limit 3):`);
  for await (const [key, value] of db.iterator({ gte: 'order:', lt: 'order;', reverse: true, limit: 3 }))
    console.log(`  ${key} -> ${JSON.stringify(value)}`);

  await db.put('after-crash', { note: 'the database goes on' });
  await db.close();
  console.log(`\nwrote one more key after recovery and closed the DB${keep ? ` (kept in ${dir})` : '; temp dir removed'}`);
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  if (missing > 0 || partial > 0) process.exitCode = 1;
}

const args = process.argv.slice(2);
if (args[0] === '--child') await child(args[1]!);
else if (args[0] !== undefined && fs.existsSync(args[0]) && fs.readdirSync(args[0]).length > 0) {
  console.error(`${args[0]} is not empty: pass a new or empty directory (the demo starts from an empty database)`);
  process.exitCode = 2;
} else await parent(args[0] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-crash-')), args[0] !== undefined);
