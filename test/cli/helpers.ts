/**
 * Support for the CLI tests: running the real `sediment` command as a child process, making a
 * DB whose files cover every kind the CLI reads, damaging files, and snapshotting a directory's
 * bytes.
 *
 * The command runs as `npx sediment` runs it: the file package.json's `bin` names, built by tsc
 * (as `npm run build` builds it, without the type check) into a temp directory beside a link to
 * this repo's node_modules, and executed through its shebang. A tsx start costs about 0.5 s of
 * CPU more than the built file, times the fifty runs of these tests.
 *
 * @module
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { DB, type DBOptions } from '../../src/db/index.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The sources' entry point, for running through tsx. */
export const MAIN = path.join(ROOT, 'src/cli/main.ts');

let bin: string | undefined;

/**
 * Builds the package into a temp directory before the file's tests (removed after them), and
 * makes {@link sediment} run the `bin` it declares.
 */
export function useBuiltCli(): void {
  let root: string | undefined;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-cli-build-'));
    const tsc = spawnSync(
      path.join(ROOT, 'node_modules/.bin/tsc'),
      ['-p', 'tsconfig.build.json', '--outDir', path.join(root, 'dist'), '--noCheck', '--sourceMap', 'false', '--declaration', 'false'],
      { cwd: ROOT, encoding: 'utf8' },
    );
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: { sediment: string } };
    const file = path.join(root, pkg.bin.sediment);
    if (!fs.existsSync(file)) throw new Error(`the build made no ${pkg.bin.sediment}:\n${tsc.stdout}${tsc.stderr}`);
    fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(root, 'package.json'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'));
    fs.chmodSync(file, 0o755);
    bin = file;
  });
  afterAll(() => {
    bin = undefined;
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });
}

/** What a run of the command left. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The command line that runs `sediment`: the built bin (see {@link useBuiltCli}), else the sources through tsx. */
export function command(): string[] {
  return bin ? [bin] : [process.execPath, '--import', 'tsx', MAIN];
}

/** Runs `sediment ...args` to completion; stdin, stdout and stderr are pipes. */
export function sediment(args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const [exe, ...pre] = command();
    const child = spawn(exe!, [...pre, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The JSON lines of a run's stdout. */
export function jsonLines(run: Run): unknown[] {
  return run.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as unknown);
}

/** Small sizes: a few tables, and a WAL of several segments whose records are not all flushed. */
export const OPTIONS = { memtableSize: 1024 * 1024, walSegmentSize: 4096, fsync: 'os' } as const satisfies DBOptions;

export const key = (prefix: string, i: number): string => `${prefix}${String(i).padStart(4, '0')}`;

/**
 * Makes a DB in `dir`: `a` and `c` keys flushed and compacted into L1, `d` keys flushed into an
 * L0 table, then `b` keys, a delete of a table key, a batch and a key with a TTL left in the WAL
 * (several segments). Returns what the DB holds, in key order.
 */
export async function makeDb(dir: string): Promise<Map<string, unknown>> {
  const expected = new Map<string, unknown>();
  const db = await DB.open(dir, OPTIONS);
  const put = async (k: string, v: unknown): Promise<void> => {
    await db.put(k, v);
    expected.set(k, v);
  };
  for (let i = 0; i < 150; i++) await put(key('a', i), { i, s: 'x'.repeat(30) });
  await db.flush();
  for (let i = 0; i < 150; i++) await put(key('c', i), [i, 'y'.repeat(30)]);
  await db.flush();
  await db.compact();
  for (let i = 0; i < 40; i++) await put(key('d', i), `d${i}`);
  await db.delete(key('d', 7));
  expected.delete(key('d', 7));
  await db.flush();
  for (let i = 0; i < 150; i++) await put(key('b', i), i % 3 === 0 ? null : { n: i, t: 'z'.repeat(30) });
  await db.delete(key('a', 3));
  expected.delete(key('a', 3));
  await db.batch([
    { type: 'put', key: 'e:1', value: true },
    { type: 'put', key: 'e:2', value: 2.5 },
    { type: 'del', key: key('c', 0) },
  ]);
  expected.set('e:1', true).set('e:2', 2.5).delete(key('c', 0));
  await db.put('e:ttl', 'later', { ttlMs: 3_600_000 });
  expected.set('e:ttl', 'later');
  await db.close();
  return new Map([...expected].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
}

/** The names of `dir`'s files matching `re`, sorted. */
export function filesIn(dir: string, re: RegExp): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => re.test(n))
    .sort();
}

/** XORs the byte at `offset` of `file` with 0xff. */
export function flip(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Every file under `dir` (but lock sockets) with its bytes, to show that a command changed nothing. */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(path.relative(dir, p), fs.readFileSync(p).toString('base64'));
    }
  };
  walk(dir);
  return out;
}
