/**
 * Vitest global setup: compiles the sources and the scripts the tests run as child processes
 * (test/fixtures, the abstract-level suite, the CLI holder, the examples) to JavaScript, once per
 * run, into a temp directory beside a link to this repo's node_modules. Tests spawn
 * `node <build>/x.js` ({@link builtScript} in child.ts) instead of `node --import tsx x.ts`.
 *
 * Why: a tsx start costs about 0.5-1 s of CPU per child more than the built file, and a DB
 * child's background worker thread compiles the sources through tsx once more. The SIGKILL tests
 * alone start some seventy children. The built children run the same sources (tsc's output, as
 * `npm run build` makes it, without the type check), and the DB's worker starts from
 * `background-worker.js`, as in the published package.
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The directory holding the compiled repo (src/, test/, examples/ as .js). */
    testBuild: string;
  }
}

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** What the children run, and every module they import (tsc follows the imports). */
const ENTRIES = ['src/**/*.ts', 'test/fixtures/*.ts', 'test/level/abstract-suite.ts', 'test/cli/holder.ts', 'examples/**/*.ts'];

function build(out: string): void {
  const config = path.join(out, 'tsconfig.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      extends: path.join(REPO, 'tsconfig.json'),
      compilerOptions: { rootDir: REPO, outDir: out, noCheck: true, noEmit: false, sourceMap: false, declaration: false },
      include: ENTRIES.map((e) => path.join(REPO, e)),
    }),
  );
  const tsc = spawnSync(path.join(REPO, 'node_modules/.bin/tsc'), ['-p', config], { cwd: REPO, encoding: 'utf8' });
  if (tsc.status !== 0 || !fs.existsSync(path.join(out, 'src/db/background-worker.js')))
    throw new Error(`building the child processes' scripts failed (tsc exit ${tsc.status}):\n${tsc.stdout}${tsc.stderr}`);
}

export default function setup(project: TestProject): () => void {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-test-build-'));
  // The built files are ES modules that import this repo's packages.
  fs.writeFileSync(path.join(out, 'package.json'), '{ "type": "module" }\n');
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(out, 'node_modules'));
  build(out);
  // Watch mode: rebuild before a rerun, so the children run the edited sources.
  project.onTestsRerun(() => build(out));
  project.provide('testBuild', out);
  return () => fs.rmSync(out, { recursive: true, force: true });
}
