import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The slowest files (each 20-90 s of a run), longest first. They start first, so that the two
 * workers end together: started last, one of them would run alone for its whole length while
 * the other worker idles. Vitest orders by the durations of the previous run when it has them
 * (node_modules/.vite), which a fresh CI checkout does not.
 */
const SLOWEST = [
  'test/db/crash-points.test.ts',
  'test/db/compaction.test.ts',
  'test/level/abstract-suite.test.ts',
  'test/wal/sigkill.test.ts',
  'test/db/adversarial.test.ts',
  'test/wal/adversarial.test.ts',
  'test/db/sigkill.test.ts',
  'test/db/crash-first-open.test.ts',
  'test/db/background.test.ts',
  'test/db/repair.test.ts',
  'test/wal/surgery.test.ts',
  'test/db/model.test.ts',
  'test/wal/crash-points.test.ts',
  'test/wal/model.test.ts',
  'test/db/faults.test.ts',
  'test/replica/replica.test.ts',
  'test/cli/commands.test.ts',
];

/** {@link SLOWEST} first, in its order; then the rest as vitest orders them. */
class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification): number => {
      const i = SLOWEST.findIndex((s) => f.moduleId.endsWith(s));
      return i < 0 ? SLOWEST.length : i;
    };
    // Array.prototype.sort is stable: the rest keep vitest's order.
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Compiles the child processes' scripts once per run (see the file).
    globalSetup: ['test/support/build.ts'],
    // Crash tests spawn child processes and hammer the disk: two files at a time on two cores.
    maxWorkers: 2,
    sequence: { sequencer: SlowestFirst },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
