/**
 * `db.checkpoint(target)`: a consistent, openable copy of the DB as of the call, in a new
 * directory, while reads and writes go on (RocksDB's Checkpoint).
 *
 * The instant. `db.checkpoint` takes its {@link CopySource} synchronously, before it returns: it
 * pins the current version (its tables stay on disk whatever compactions delete meanwhile),
 * notes the manifest state that version belongs to, and retains the WAL at its current write
 * position (no segment is deleted until the copy ends; a deletion a flush asks for meanwhile
 * runs then). The copy is the manifest's tables plus the WAL records after its flushed position
 * up to that write position, cut exactly there. So every write that resolved before the call is
 * in the copy (its record was written before it resolved), and no write made after the call is
 * (its record lands after the cut). A write in flight during the call is in the copy if its
 * record had been handed to the OS (under `fsync: 'always'` it may still have been waiting for
 * its fdatasync), else not: as after a crash, a write that had not resolved may or may not be
 * there.
 *
 * The copy. Tables are hard-linked when the target is on the same file system (a table never
 * changes once written), copied otherwise (`EXDEV`, or a file system without links). The WAL
 * segments needed are copied (the last one cut at the position), with a `SEGMENTS` file of their
 * own; `OPTIONS` and a manifest of the pinned state are written, `CURRENT` last (copy.ts has the
 * order and what a crash leaves). Every file is fdatasynced and every directory fsynced: once the
 * promise resolves, the copy survives a power loss. The copy is a DB of its own: opening it
 * replays its WAL tail, and it shares nothing with the source but the linked tables' bytes.
 *
 * @module
 */
import * as path from 'node:path';
import { segmentFileName } from '../wal/format.js';
import type { Position } from '../wal/position.js';
import { WAL_DIR, tableFileName } from './filenames.js';
import { type CopySource, TargetWriter, checkDirArg, copyFile, linkOrCopy, neededSegments } from './copy.js';

/** What `db.checkpoint` did. */
export interface CheckpointInfo {
  /** The copy's directory. */
  dir: string;
  /** Tables hard-linked, and tables copied (another file system, or no hard links). */
  tablesLinked: number;
  tablesCopied: number;
  /** WAL segments copied (the last one cut at `walEnd`). */
  walSegments: number;
  /** Bytes copied: tables that could not be linked, and the WAL tail. */
  bytesCopied: number;
  /** Where the copy's WAL ends: the source's write position at the call. */
  walEnd: Position;
  durationMs: number;
}

/** Writes the checkpoint of `source` into `target`; releases `source` in every case. */
export async function writeCheckpoint(source: CopySource, target: unknown): Promise<CheckpointInfo> {
  const t0 = performance.now();
  try {
    const dir = checkDirArg(target, 'the checkpoint target');
    const fs = source.fs;
    const out = new TargetWriter(fs, dir, 'checkpoint');
    await out.claim();
    try {
      let tablesLinked = 0;
      let tablesCopied = 0;
      let bytesCopied = 0;
      for (const level of source.state.levels) {
        for (const t of level) {
          const r = await linkOrCopy(fs, path.join(source.dir, tableFileName(t.fileNumber)), out.tablePath(t.fileNumber));
          if (r.linked) tablesLinked++;
          else tablesCopied++;
          bytesCopied += r.bytes;
        }
      }
      const end = source.walEnd;
      const wal = await out.addWal(neededSegments(source), async (id, file) => {
        const from = path.join(source.dir, WAL_DIR, segmentFileName(id));
        return (await copyFile(fs, from, file, id === end.segmentId ? end.offset : undefined)).bytes;
      });
      bytesCopied += wal.bytes;
      await out.commit(source.persisted, { ...source.state, levels: source.state.levels.map((l) => [...l]) });
      return {
        dir,
        tablesLinked,
        tablesCopied,
        walSegments: wal.segments,
        bytesCopied,
        walEnd: { ...end },
        durationMs: performance.now() - t0,
      };
    } catch (err) {
      await out.abort();
      throw err;
    }
  } finally {
    source.release();
  }
}
