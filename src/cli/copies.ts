/**
 * Copies of a DB from the command line:
 * - `sediment checkpoint <dir> <target>`: a consistent copy of the DB in a new (or empty)
 *   directory, tables hard-linked where they can be;
 * - `sediment backup <dir> <backupDir> [--keep N]`: an incremental backup, then (with `--keep`)
 *   every backup but the N newest deleted;
 * - `sediment restore <backupDir> <target> [--id N]`: the latest backup (or backup N) as a new
 *   DB in a new (or empty) directory;
 * - `sediment backups <backupDir>`: the backups, one JSON line each.
 *
 * `checkpoint` and `backup` open the DB for writing (exit 3, LOCKED, while another process has
 * it open: there, call `db.checkpoint` or `db.backup` in that process). Each prints one line
 * on stdout. Failures exit 4: a target that is not empty, a damaged backup (the file is named),
 * a backup that is not there.
 *
 * @module
 */
import { DB } from '../db/index.js';
import { CorruptionError, LockedError, SedimentError } from '../errors.js';
import { CliError, EXIT, type Out, openDB, toCliError, toJson } from './common.js';

/** Errors of a backup directory: the CLI's own words for them (not "no database"). */
function backupError(err: unknown, backupDir: string): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof LockedError) return new CliError(`LOCKED: ${err.message}`, EXIT.LOCKED);
  if (err instanceof CorruptionError) {
    return new CliError(
      `CORRUPTION: ${err.message} (the backup is damaged: restore another, see sediment backups ${backupDir})`,
      EXIT.FAILED,
    );
  }
  if (err instanceof SedimentError) return new CliError(`${err.code}: ${err.message}`, EXIT.FAILED);
  return toCliError(err);
}

/** `sediment checkpoint`. */
export async function checkpointCommand(dir: string, target: string, out: Out): Promise<number> {
  const { db } = await openDB(dir, {}, { readOnly: false });
  let line: string;
  try {
    const c = await db.checkpoint(target);
    line =
      `checkpoint of ${dir} in ${target}: ${c.tablesLinked} table(s) linked, ${c.tablesCopied} copied, ` +
      `${c.walSegments} WAL segment(s), ${c.bytesCopied} bytes copied in ${Math.round(c.durationMs)} ms`;
  } catch (err) {
    await db.close().catch(() => undefined);
    throw backupError(err, target);
  }
  await db.close();
  await out.line(line);
  return EXIT.OK;
}

/** `sediment backup`. */
export async function backupCommand(dir: string, backupDir: string, o: { keep?: number }, out: Out): Promise<number> {
  const { db } = await openDB(dir, {}, { readOnly: false });
  let line: string;
  try {
    const b = await db.backup(backupDir);
    line =
      `backup ${b.id} of ${dir} in ${backupDir}: ${b.files} file(s), ${b.bytes} bytes; copied ${b.filesCopied} file(s), ` +
      `${b.bytesCopied} bytes (${b.tablesShared} table(s) already there) in ${Math.round(b.durationMs)} ms`;
  } catch (err) {
    await db.close().catch(() => undefined);
    throw backupError(err, backupDir);
  }
  await db.close();
  if (o.keep !== undefined) {
    const p = await DB.pruneBackups(backupDir, { keep: o.keep }).catch((err: unknown) => {
      throw backupError(err, backupDir);
    });
    line += `; deleted backup(s) [${p.deleted.join(', ')}], ${p.filesRemoved} file(s), ${p.bytesRemoved} bytes`;
  }
  await out.line(line);
  return EXIT.OK;
}

/** `sediment restore`. */
export async function restoreCommand(backupDir: string, target: string, o: { id?: number }, out: Out): Promise<number> {
  try {
    const r = await DB.restore(backupDir, target, o.id === undefined ? {} : { id: o.id });
    await out.line(
      `restored backup ${r.id} of ${backupDir} in ${target}: ${r.files} file(s), ${r.bytes} bytes in ${Math.round(r.durationMs)} ms`,
    );
    return EXIT.OK;
  } catch (err) {
    throw backupError(err, backupDir);
  }
}

/** `sediment backups`. */
export async function backupsCommand(backupDir: string, out: Out): Promise<number> {
  let list: Awaited<ReturnType<typeof DB.listBackups>>;
  try {
    list = await DB.listBackups(backupDir);
  } catch (err) {
    throw backupError(err, backupDir);
  }
  for (const b of list) await out.line(toJson({ ...b, createdAt: new Date(b.createdAt).toISOString() }));
  return EXIT.OK;
}
