/**
 * Spawning the child processes of the SIGKILL tests: a fixture, built to JavaScript by the
 * global setup (build.ts), which prints `loaded` once its modules are in, waits for `go` on
 * stdin, and prints `ready` once it is working.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, inject } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The built JavaScript of `script`, a TypeScript file of this repo (absolute, or relative to
 * `cwd`), as the global setup compiled it: run it with `node`, no tsx.
 */
export function builtScript(script: string, cwd = REPO): string {
  const rel = path.relative(REPO, path.resolve(cwd, script));
  const file = path.join(inject('testBuild'), rel.replace(/\.ts$/, '.js'));
  if (!fs.existsSync(file)) throw new Error(`${rel} is not in the test build: add it to ENTRIES in test/support/build.ts`);
  return file;
}

/**
 * What one test file spawns and creates: `live` holds its children (SIGKILLed after each test, by
 * their handles: only this file's), `tempDir()` makes directories (removed after the file).
 */
export function fixtureScope(prefix: string): { live: Set<ChildProcess>; tempDir(): string } {
  const live = new Set<ChildProcess>();
  const roots: string[] = [];
  afterEach(() => {
    for (const c of live) c.kill('SIGKILL');
    live.clear();
  });
  afterAll(() => {
    for (const d of roots.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  return {
    live,
    tempDir(): string {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
      roots.push(d);
      return d;
    },
  };
}

/** A spawned fixture. */
export interface Child<A> {
  child: ChildProcess;
  loaded: Promise<void>;
  ready: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  go(): void;
  stderr(): string;
  args: A;
}

/**
 * Runs `script` (its build, see {@link builtScript}) with `args` (as JSON) in `cwd`, tracked in
 * `live` until it exits.
 * `describe()` adds context (a log file) to the error when the child exits too early.
 */
export function spawnFixture<A>(script: string, args: A, cwd: string, live: Set<ChildProcess>, describe: () => string): Child<A> {
  const child = spawn(process.execPath, [builtScript(script, cwd), JSON.stringify(args)], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  const waitFor = (word: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const check = (): boolean => {
        if (out.split('\n').includes(word)) {
          resolve();
          return true;
        }
        return false;
      };
      if (check()) return;
      const onData = (): void => void (check() && child.stdout!.off('data', onData));
      child.stdout!.on('data', onData);
      void exited.then(({ code, signal }) => {
        if (!check()) reject(new Error(`child exited (code ${code}, signal ${signal}) before "${word}":\n${err}\n${describe()}`));
      });
    });
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (err += s));
  const loaded = waitFor('loaded');
  const ready = waitFor('ready');
  // Avoid unhandled rejections when a test fails before awaiting these.
  loaded.catch(() => undefined);
  ready.catch(() => undefined);
  return { child, loaded, ready, exited, go: () => child.stdin!.write('go\n'), stderr: () => err, args };
}

/** A file's text, or '' if it cannot be read (not written yet). */
export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Copies a store's directory as a crash left it, for verifying the copy. Socket files are left
 * out: a killed holder leaves its lock socket (`LOCK-<id>.sock`), and `fs.cpSync` refuses them.
 */
export function copyStore(dir: string, copy: string): void {
  fs.cpSync(dir, copy, { recursive: true, filter: (src) => !fs.lstatSync(src).isSocket() });
}
