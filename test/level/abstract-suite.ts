/**
 * abstract-level's own shared test suite, run against SedimentLevel under tape, as classic-level
 * and memory-level run it: one factory, a fresh directory per call. The suite re-runs itself
 * through a sublevel. Run by abstract-suite.test.ts as a child process (its build, `node`),
 * which checks the TAP summary; or by hand: `npx tsx test/level/abstract-suite.ts`.
 *
 * Every database gets its own directory under one temp root, removed when tape finishes. The
 * factory asks for `fsync: 'os'` (writes resolve once in the OS, as classic-level's default
 * `sync: false`): the suite opens about a thousand databases and checks Level semantics, not
 * durability, which sediment's own tests cover.
 *
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'tape';
import suite from 'abstract-level/test/index.js';
import { SedimentLevel } from '../../src/level/index.js';

const root = mkdtempSync(join(tmpdir(), 'sediment-level-suite-'));
let databases = 0;

test.onFinish(() => {
  rmSync(root, { recursive: true, force: true });
});

suite({
  test,
  factory(options) {
    // A directory that does not exist yet: createIfMissing and errorIfExists are tested for real.
    return new SedimentLevel(join(root, String(databases++)), { fsync: 'os', ...options });
  },
});
