/**
 * abstract-level's own shared test suite against SedimentLevel, as part of `npm test`: runs
 * abstract-suite.ts (built to JavaScript by the global setup) under tape in a child process (the suite is CommonJS, written for tape, and
 * opens about a thousand databases) and reads its TAP output. Green means: the child exited 0,
 * tape counted no failure, every planned assertion ran and passed (none skipped or marked todo),
 * and at least {@link MIN_PASSING} of them did (5,168 with abstract-level 3.1.1 and the features
 * SedimentLevel claims: a drop means tests were switched off).
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { builtScript } from '../support/child.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SUITE = path.join(REPO, 'test/level/abstract-suite.ts');
const MIN_PASSING = 5168;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runSuite(): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [builtScript(SUITE)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The number after `# <label>` in tape's summary, or undefined if the line is missing. */
function summary(out: string, label: string): number | undefined {
  const m = new RegExp(`^# ${label}\\s+(\\d+)$`, 'm').exec(out);
  return m ? Number(m[1]) : undefined;
}

/** Each failing assertion with its YAML block, for the test's message. */
function failures(out: string): string {
  return out
    .split('\n')
    .reduce<string[]>((acc, line, i, lines) => {
      if (line.startsWith('not ok')) acc.push([lines[i - 1] ?? '', ...lines.slice(i, i + 12)].join('\n'));
      return acc;
    }, [])
    .join('\n\n');
}

it('passes abstract-level 3.1 shared test suite, every assertion', { timeout: 300_000 }, async () => {
  const run = await runSuite();
  const { stdout } = run;
  const tests = summary(stdout, 'tests');
  const pass = summary(stdout, 'pass');
  const fail = summary(stdout, 'fail') ?? 0;
  const context = `exit ${run.code} ${run.signal ?? ''}\n${failures(stdout)}\n${run.stderr.slice(-4000)}`;
  expect(fail, context).toBe(0);
  expect(run.code, context).toBe(0);
  expect(stdout, context).toMatch(/^# ok$/m);
  expect(tests, context).toBeDefined();
  expect(pass, context).toBe(tests);
  // The plan line is the number of assertions that ran: all of them passed.
  expect(stdout).toMatch(new RegExp(`^1\\.\\.${tests}$`, 'm'));
  expect(stdout, 'no assertion skipped or left to do').not.toMatch(/# (SKIP|TODO)/i);
  expect(pass!).toBeGreaterThanOrEqual(MIN_PASSING);
});
