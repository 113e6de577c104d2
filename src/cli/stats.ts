/**
 * `sediment stats <dir>`: the DB's state as one JSON document, from a read-only handle: tables
 * and bytes per level, the last sequence number, the memtable a reopen rebuilds from the WAL,
 * the WAL's segments and position, what WAL recovery found, and bytes on disk. (The counters of
 * a running DB, such as flushes and write stalls, belong to its own process: `db.stats()`.)
 *
 * @module
 */
import * as path from 'node:path';
import { WAL_DIR } from '../db/filenames.js';
import type { DBStats } from '../db/index.js';
import { parseSegmentFileName } from '../wal/format.js';
import { EXIT, type Out, fs, openDB, tableBytes, toJson } from './common.js';

/** `sediment stats`. */
export async function statsCommand(dir: string, out: Out): Promise<number> {
  const { db } = await openDB(dir, {}, { readOnly: true });
  let s: DBStats;
  try {
    s = db.stats();
  } finally {
    await db.close().catch(() => undefined);
  }
  let walBytes = 0;
  const walDir = path.join(dir, WAL_DIR);
  for (const name of await fs.readdir(walDir).catch(() => [] as string[])) {
    if (parseSegmentFileName(name) !== undefined)
      walBytes += await fs.stat(path.join(walDir, name)).then(
        (x) => x.size,
        () => 0,
      );
  }
  const tables = await tableBytes(dir);
  const report = {
    levels: s.levels.map((l, level) => ({ level, tables: l.tables, bytes: l.bytes })),
    tables: s.levels.reduce((a, l) => a + l.tables, 0),
    lastSequence: s.lastSequence,
    memtable: { ...s.memtable, frozen: s.frozenMemtables },
    wal: {
      segments: s.wal.segments,
      oldestSegmentId: s.wal.oldestSegmentId,
      activeSegmentId: s.wal.activeSegmentId,
      position: s.wal.writtenPosition,
    },
    walRecovery: s.walRecovery,
    disk: { tables, wal: walBytes, total: tables + walBytes },
  };
  await out.line(toJson(report, 2));
  return EXIT.OK;
}
