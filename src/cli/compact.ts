/**
 * `sediment compact <dir>`: opens the DB for writing (exit 3, LOCKED, while another process has
 * it open), runs a full compaction (flushing the memtable the WAL replays first) and closes it.
 * A progress bar on stderr, when stderr is a terminal, measures the table bytes read; stdout
 * gets one line: tables and bytes before and after.
 *
 * @module
 */
import { EXIT, type Out, countingTableReads, fs, openDB, progressBar, tableBytes, toCliError } from './common.js';

/** `sediment compact`. */
export async function compactCommand(dir: string, out: Out): Promise<number> {
  let read = 0;
  const { db } = await openDB(dir, {}, { readOnly: false, fs: countingTableReads(fs, (n) => (read += n)) });
  const count = (): { tables: number; bytes: number } =>
    db.stats().levels.reduce((a, l) => ({ tables: a.tables + l.tables, bytes: a.bytes + l.bytes }), { tables: 0, bytes: 0 });
  const before = count();
  const t0 = performance.now();
  const progress = progressBar('compact', await tableBytes(dir), 'bytes');
  read = 0;
  const timer = setInterval(() => progress.update(read), 100);
  const stop = (): void => {
    clearInterval(timer);
    progress.stop();
  };
  try {
    await db.compact();
  } catch (err) {
    stop();
    await db.close().catch(() => undefined);
    throw toCliError(err, dir);
  }
  const after = count();
  stop();
  await db.close(); // a failure of its final sync fails the command
  const ms = Math.round(performance.now() - t0);
  await out.line(
    `compacted ${dir}: ${before.tables} table(s), ${before.bytes} bytes -> ${after.tables} table(s), ${after.bytes} bytes in ${ms} ms`,
  );
  return EXIT.OK;
}
