/**
 * `npx tsx examples/wal-demo.ts [dir]`: the raw WAL surviving a crash.
 *
 * A child process appends records as fast as it can (fsync policy `{ batchMs: 5 }`) and, after
 * each append resolves, notes its sequence number in an "ack" file. The parent kills the child
 * with SIGKILL mid-stream, reopens the log, and checks that every acknowledged record came back,
 * byte for byte, in order. The data lives in a fresh directory under the OS temp dir, removed at
 * the end (pass a new or empty directory as the first argument to keep it). Exits non-zero if
 * anything acknowledged is missing.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Record, Wal } from '../src/index.js';

const valueFor = (seq: number): string => `value #${seq} `.repeat(1 + (seq % 7));

async function child(dir: string): Promise<void> {
  const { wal } = await Wal.open({ dir, fsync: { batchMs: 5 }, maxSegmentSize: 256 * 1024 });
  const ack = fs.openSync(path.join(dir, 'acked'), 'a');
  let seq = 0;
  process.send?.('ready');
  // Eight writers in flight at once, like a server handling concurrent requests.
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (;;) {
        const mine = seq++;
        await wal.append(Record.put(`seq:${String(mine).padStart(10, '0')}`, valueFor(mine)));
        fs.writeSync(ack, `${mine}\n`); // the acknowledgement: only after append resolved
      }
    }),
  );
}

async function parent(dir: string, keep: boolean): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  console.log(`sediment WAL crash demo, data in ${dir}\n`);
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
  await new Promise((r) => setTimeout(r, 400 + Math.random() * 400));
  proc.kill('SIGKILL');
  if ((await exited) !== 'SIGKILL') throw new Error('the writer process stopped before it was killed');

  const acked = fs.readFileSync(path.join(dir, 'acked'), 'utf8').split('\n').filter(Boolean).map(Number);
  console.log(`writer killed with SIGKILL after ${acked.length} acknowledged appends`);

  const t0 = performance.now();
  const { wal, recovery } = await Wal.open({ dir });
  console.log(`reopened in ${(performance.now() - t0).toFixed(1)} ms; recovery report:`);
  console.log(recovery);

  const found = new Map<number, string>();
  for await (const { record } of wal.readFrom({ segmentId: 0, offset: 0 })) {
    found.set(Number(Buffer.from(record.key).toString().slice(4)), Buffer.from(record.value).toString());
  }
  const missing = acked.filter((seq) => found.get(seq) !== valueFor(seq));
  console.log(`\n${found.size} records recovered (${found.size - acked.length} more were written but not yet acknowledged)`);
  console.log(
    missing.length === 0 ? 'every acknowledged record is back, byte for byte ✔' : `LOST ${missing.length} acknowledged records ✘`,
  );

  const pos = await wal.append(Record.put('after-crash', 'the log goes on'));
  console.log(`\nappended after recovery at segment ${pos.segmentId}, offset ${pos.offset}`);
  console.log(wal.stats());
  await wal.close();
  console.log(`\nclosed the log${keep ? ` (kept in ${dir})` : '; temp dir removed'}`);
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  if (missing.length > 0) process.exitCode = 1;
}

const args = process.argv.slice(2);
if (args[0] === '--child') await child(args[1]!);
else if (args[0] !== undefined && fs.existsSync(args[0]) && fs.readdirSync(args[0]).length > 0) {
  console.error(`${args[0]} is not empty: pass a new or empty directory (the demo starts from an empty log)`);
  process.exitCode = 2;
} else await parent(args[0] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-demo-')), args[0] !== undefined);
