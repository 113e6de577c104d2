#!/usr/bin/env node
/**
 * The `sediment` command (`npx sediment <command> <dir> ...`): verify, inspect, dump, scan,
 * get, put, del, stats, compact, checkpoint, backup, restore, backups. See program.ts, and `sediment --help`.
 *
 * @module
 */
import { run } from './program.js';

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`sediment: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 4;
  },
);
