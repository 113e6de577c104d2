/**
 * The `sediment` command line: commander parses it, each command lives in its own module.
 *
 * Exit codes (see {@link EXIT}): 0 done (verify: all intact); 1 a negative answer (get: no such
 * key; verify: damage found); 2 bad arguments, with the command's usage on stderr, or an
 * encoding flag the DB's OPTIONS file contradicts; 3 LOCKED (a writable command, checkpoint,
 * backup or verify, on a DB another process holds open; or a backup directory a backup or prune
 * holds); 4 any other failure (no database there, corruption met while reading, an I/O error, a
 * copy's target that is not empty, a damaged or missing backup). Output goes to stdout; stderr carries errors, and a progress bar for
 * verify, dump and compact only when it is a terminal.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { compactCommand } from './compact.js';
import { backupCommand, backupsCommand, checkpointCommand, restoreCommand } from './copies.js';
import { EXIT, KEY_ENCODING_CHOICES, Out, UsageError, VALUE_ENCODING_CHOICES, exitQuietlyOnEpipe, toCliError } from './common.js';
import { dumpCommand, scanCommand } from './dump.js';
import { inspectCommand } from './inspect.js';
import { delCommand, getCommand, putCommand } from './kv.js';
import { statsCommand } from './stats.js';
import { verifyCommand } from './verify.js';

const EXIT_CODES = `
Exit codes:
  0  done (verify: every checksum of every file passed)
  1  get: no such key; verify: damage found (each damaged file and offset is printed)
  2  bad arguments (usage follows), or an encoding flag the database's OPTIONS file contradicts
  3  LOCKED: another process holds the database open (writable commands, checkpoint, backup and
     verify), or a backup or prune runs on the backup directory
  4  anything else failed: no database there, corruption met while reading, an I/O error, a copy's
     target that is not empty, a damaged or missing backup

Keys are given and printed as text under the utf8 key encoding, as base64 under binary. Values
are JSON under the msgpack and json value encodings, text under utf8, base64 under binary. The
encodings default to the ones the database records. A key or value starting with '-' goes
after '--': sediment put ./db k -- -5`;

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function wholeNumber(min: number, what: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`${what}, got ${JSON.stringify(text)}`);
    return n;
  };
}

const keyEncoding = (): Option =>
  new Option('--key-encoding <encoding>', "how keys are given and printed (default: the database's)").choices(KEY_ENCODING_CHOICES);
const valueEncoding = (): Option =>
  new Option('--value-encoding <encoding>', "how values are given and printed (default: the database's, else msgpack)").choices(
    VALUE_ENCODING_CHOICES,
  );
const limit = (): Option =>
  new Option('--limit <n>', 'at most n entries (-1: no limit)').argParser(wholeNumber(-1, 'a whole number, -1 for no limit'));

/** Runs the command line `argv` (without node and the script); resolves to the exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  exitQuietlyOnEpipe();
  const out = new Out();
  let code: number = EXIT.OK;
  let dir: string | undefined;
  /** An action: records its exit code; a bad argument found inside it gets the usage treatment. */
  const act =
    <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      dir = typeof args[0] === 'string' ? args[0] : undefined;
      try {
        code = await fn(...args);
      } catch (err) {
        if (err instanceof UsageError)
          (args[args.length - 1] as Command).error(`error: ${err.message}`, { exitCode: EXIT.USAGE, code: 'sediment.usage' });
        throw err;
      }
    };

  const program = new Command('sediment')
    .description('Check, inspect and edit a sediment database directory.')
    .version(version(), '-V, --version')
    .exitOverride()
    .showHelpAfterError(true)
    .addHelpText('after', EXIT_CODES);

  program
    .command('verify')
    .description(
      'check every checksum of every WAL segment, table and manifest, changing nothing; exit 1 naming each damaged file and offset',
    )
    .argument('<dir>', 'database directory')
    .option('--json', 'print the report as JSON')
    .action(act((d: string, o: { json?: boolean }) => verifyCommand(d, o, out)));

  program
    .command('inspect')
    .description(
      'WAL segments, tables per level with key ranges, sequence numbers, sizes, entry and tombstone counts, the WAL position the tables cover',
    )
    .argument('<dir>', 'database directory')
    .option('--json', 'print the report as JSON')
    .action(act((d: string, o: { json?: boolean }) => inspectCommand(d, o, out)));

  program
    .command('dump')
    .description('every entry as a JSON line {"key","value"} in key order; with --wal, the WAL records with their positions')
    .argument('<dir>', 'database directory')
    .option('--wal', 'the WAL records instead, in log order, with their positions')
    .option('--gte <key>', 'from this key on')
    .option('--lt <key>', 'up to, not including, this key')
    .addOption(limit())
    .option('--reverse', 'descending key order (with --wal: newest first)')
    .addOption(valueEncoding())
    .addOption(keyEncoding())
    .action(act((d: string, o: Parameters<typeof dumpCommand>[1]) => dumpCommand(d, o, out)));

  program
    .command('scan')
    .description('the entries of a range as JSON lines {"key","value"}')
    .argument('<dir>', 'database directory')
    .option('--gt <key>', 'keys greater than this')
    .option('--gte <key>', 'keys greater than or equal to this (wins over --gt)')
    .option('--lt <key>', 'keys less than this')
    .option('--lte <key>', 'keys less than or equal to this (wins over --lt)')
    .option('--prefix <prefix>', 'keys starting with this')
    .addOption(limit())
    .option('--reverse', 'descending key order')
    .addOption(valueEncoding())
    .addOption(keyEncoding())
    .action(act((d: string, o: Parameters<typeof scanCommand>[1]) => scanCommand(d, o, out)));

  program
    .command('get')
    .description('print the value of a key; exit 1 when there is none')
    .argument('<dir>', 'database directory')
    .argument('<key>', 'the key')
    .addOption(valueEncoding())
    .addOption(keyEncoding())
    .action(act((d: string, k: string, o: Parameters<typeof getCommand>[2]) => getCommand(d, k, o, out)));

  program
    .command('put')
    .description('store a value (durably: with sync)')
    .argument('<dir>', 'database directory')
    .argument('<key>', 'the key')
    .argument('<value>', 'the value: JSON under msgpack and json, text under utf8, base64 under binary')
    .addOption(
      new Option('--ttl <ms>', 'expire after this many milliseconds').argParser(
        wholeNumber(1, 'a whole number of milliseconds, at least 1'),
      ),
    )
    .option('--create', 'create the database if the directory has none')
    .addOption(valueEncoding())
    .addOption(keyEncoding())
    .action(act((d: string, k: string, v: string, o: Parameters<typeof putCommand>[3]) => putCommand(d, k, v, o)));

  program
    .command('del')
    .description('delete a key (durably: with sync); deleting an absent key is fine')
    .argument('<dir>', 'database directory')
    .argument('<key>', 'the key')
    .addOption(keyEncoding())
    .action(act((d: string, k: string, o: Parameters<typeof delCommand>[2]) => delCommand(d, k, o)));

  program
    .command('stats')
    .description('tables and bytes per level, sequence number, memtable, WAL and disk usage, as JSON')
    .argument('<dir>', 'database directory')
    .action(act((d: string) => statsCommand(d, out)));

  program
    .command('compact')
    .description('full compaction: flush, then merge every table into the deepest level in use')
    .argument('<dir>', 'database directory')
    .action(act((d: string) => compactCommand(d, out)));

  program
    .command('checkpoint')
    .description('a consistent copy of the database in a new or empty directory (tables hard-linked where possible)')
    .argument('<dir>', 'database directory')
    .argument('<target>', 'the new directory (must not exist, or be empty)')
    .action(act((d: string, t: string) => checkpointCommand(d, t, out)));

  program
    .command('backup')
    .description('an incremental backup of the database into a backup directory (created if missing)')
    .argument('<dir>', 'database directory')
    .argument('<backupDir>', 'the backup directory')
    .addOption(
      new Option('--keep <n>', 'then delete every backup but the n newest').argParser(wholeNumber(1, 'a whole number, at least 1')),
    )
    .action(act((d: string, b: string, o: { keep?: number }) => backupCommand(d, b, o, out)));

  program
    .command('restore')
    .description('the latest backup (or --id N) of a backup directory, as a new database in a new or empty directory')
    .argument('<backupDir>', 'the backup directory')
    .argument('<target>', 'the new database directory (must not exist, or be empty)')
    .addOption(new Option('--id <n>', 'the backup to restore (default: the latest)').argParser(wholeNumber(1, 'a backup id, at least 1')))
    .action(act((b: string, t: string, o: { id?: number }) => restoreCommand(b, t, o, out)));

  program
    .command('backups')
    .description('the backups of a backup directory, oldest first, one JSON line each')
    .argument('<backupDir>', 'the backup directory')
    .action(act((b: string) => backupsCommand(b, out)));

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed the message and the usage (or the help or version asked for).
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    const e = toCliError(err, dir);
    process.stderr.write(`sediment: ${e.message}\n`);
    return e.exitCode;
  }
}
