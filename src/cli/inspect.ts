/**
 * `sediment inspect <dir> [--json]`: what the DB holds and where, from a read-only handle (no
 * lock, nothing written): its recorded options; the manifest (file, last sequence number, next
 * file number, the WAL position the tables cover); per level, each table with its size, entry,
 * tombstone and expiring counts, data blocks, sequence range and key range; the WAL's segments
 * with their sizes, the state file's floor and next id, the records in the log and how many lie
 * after the flushed position (replayed into the memtable on open), and what recovery found.
 * Keys print as strings under the utf8 key encoding, base64 under binary.
 *
 * @module
 */
import * as path from 'node:path';
import { decodeKey } from '../db/encoding.js';
import { CURRENT_FILE, WAL_DIR, manifestFileName, tableFileName } from '../db/filenames.js';
import { readCurrentManifest, type ManifestState } from '../db/manifest.js';
import { CorruptionError, errnoOf } from '../errors.js';
import { TableInspector } from '../sstable/table-check.js';
import { parseSegmentFileName, segmentFileName } from '../wal/format.js';
import { comparePositions, type Position } from '../wal/position.js';
import { readStateFile } from '../wal/segment-state.js';
import { EXIT, type Out, fs, keyOut, openDB, toJson, type AnyDB } from './common.js';

/** One table, as inspect shows it. */
export interface TableInfo {
  file: string;
  fileNumber: number;
  size: number;
  entries: number;
  /** From the table's properties block; null when that block is unreadable. */
  tombstones: number | null;
  expiring: number | null;
  dataBlocks: number | null;
  compression: string | null;
  minSeq: number;
  maxSeq: number;
  smallest: string;
  largest: string;
}

/** What inspect reports. */
export interface InspectReport {
  dir: string;
  options: { formatVersion: number; keyEncoding: string; valueEncoding: string; maxKeySize: number; maxValueSize: number } | null;
  manifest: { file: string; lastSequence: number; nextFileNumber: number; flushedThrough: Position | null };
  levels: { level: number; tables: TableInfo[]; bytes: number; entries: number }[];
  wal: {
    segments: { id: number; file: string; size: number }[];
    bytes: number;
    floor: number | null;
    next: number | null;
    records: number;
    recordsAfterFlushed: number;
    lastPosition: Position | null;
    recovery: {
      bytesTruncated: number;
      corruptionDetected: boolean;
      truncations: { segmentId: number; offset: number; bytes: number; reason: string }[];
    };
  };
  memtable: { entries: number; bytes: number; frozen: number };
}

/** `sediment inspect`. */
export async function inspectCommand(dir: string, o: { json?: boolean }, out: Out): Promise<number> {
  const { db, enc } = await openDB(dir, {}, { readOnly: true });
  let report: InspectReport;
  try {
    report = await inspect(dir, db, enc.keyEncoding, enc.stored ?? null);
  } finally {
    await db.close().catch(() => undefined);
  }
  if (o.json) await out.line(toJson(report, 2));
  else for (const line of describe(report)) await out.line(line);
  return EXIT.OK;
}

async function inspect(dir: string, db: AnyDB, keyEncoding: 'utf8' | 'binary', options: InspectReport['options']): Promise<InspectReport> {
  const key = (bytes: Uint8Array): string => keyOut(decodeKey(keyEncoding, bytes));
  // The manifest is read again beside the handle: a writer may install a new one (and delete
  // the tables the old one named) meanwhile, so a table gone missing means read it again.
  let manifest: { number: number; state: ManifestState } | undefined;
  let levels: InspectReport['levels'] = [];
  for (let attempt = 1; ; attempt++) {
    manifest = await readCurrentManifest(fs, dir);
    if (!manifest) throw new CorruptionError('CURRENT is missing', { file: path.join(dir, CURRENT_FILE), offset: 0 });
    try {
      levels = [];
      for (let l = 0; l < manifest.state.levels.length; l++) {
        const tables: TableInfo[] = [];
        for (const meta of manifest.state.levels[l]!) {
          const file = path.join(dir, tableFileName(meta.fileNumber));
          const t = await TableInspector.open(fs, file);
          const p = t.properties;
          await t.close();
          tables.push({
            file: tableFileName(meta.fileNumber),
            fileNumber: meta.fileNumber,
            size: meta.size,
            entries: meta.entries,
            tombstones: p?.tombstoneCount ?? null,
            expiring: p?.expiringCount ?? null,
            dataBlocks: p?.dataBlockCount ?? null,
            compression: p?.compression ?? null,
            minSeq: meta.minSeq,
            maxSeq: meta.maxSeq,
            smallest: key(meta.smallest),
            largest: key(meta.largest),
          });
        }
        levels.push({
          level: l,
          tables,
          bytes: tables.reduce((a, t) => a + t.size, 0),
          entries: tables.reduce((a, t) => a + t.entries, 0),
        });
      }
      break;
    } catch (err) {
      if (attempt >= 5 || errnoOf((err as { cause?: unknown }).cause) !== 'ENOENT') throw err;
    }
  }

  const walDir = path.join(dir, WAL_DIR);
  const segments: InspectReport['wal']['segments'] = [];
  for (const name of await fs.readdir(walDir)) {
    const id = parseSegmentFileName(name);
    if (id === undefined) continue;
    const size = await fs.stat(path.join(walDir, name)).then(
      (s) => s.size,
      () => 0,
    );
    segments.push({ id, file: `${WAL_DIR}/${segmentFileName(id)}`, size });
  }
  segments.sort((a, b) => a.id - b.id);
  const state = await readStateFile(fs, walDir).catch(() => undefined);
  const flushed = manifest.state.flushedThrough;
  let after = 0;
  for await (const { position } of db.wal.readFrom(flushed ?? { segmentId: 0, offset: 0 })) {
    if (!flushed || comparePositions(position, flushed) > 0) after++;
  }
  const s = db.stats();
  const r = s.walRecovery;
  return {
    dir,
    options: options && { ...options },
    manifest: {
      file: manifestFileName(manifest.number),
      lastSequence: manifest.state.lastSeq,
      nextFileNumber: manifest.state.nextFileNumber,
      flushedThrough: flushed,
    },
    levels,
    wal: {
      segments,
      bytes: segments.reduce((a, x) => a + x.size, 0),
      floor: state?.state.floor ?? null,
      next: state?.state.next ?? null,
      records: r.validRecords,
      recordsAfterFlushed: after,
      lastPosition: r.lastPosition,
      recovery: { bytesTruncated: r.bytesTruncated, corruptionDetected: r.corruptionDetected, truncations: r.truncations },
    },
    memtable: { entries: s.memtable.entries, bytes: s.memtable.bytes, frozen: s.frozenMemtables },
  };
}

function pos(p: Position | null): string {
  return p ? `${p.segmentId}:${p.offset}` : 'none';
}

/** The report as text, a line per fact. */
function describe(r: InspectReport): string[] {
  const lines: string[] = [];
  const o = r.options;
  lines.push(`database   ${r.dir}`);
  lines.push(
    o
      ? `options    keyEncoding ${o.keyEncoding}, valueEncoding ${o.valueEncoding}, format ${o.formatVersion}, maxKeySize ${o.maxKeySize}, maxValueSize ${o.maxValueSize}`
      : 'options    no OPTIONS file (a database made by sediment 0.1.0): utf8 keys, msgpack values',
  );
  const m = r.manifest;
  lines.push(
    `manifest   ${m.file}: last sequence ${m.lastSequence}, next file number ${m.nextFileNumber}, WAL flushed through ${pos(m.flushedThrough)}`,
  );
  const total = r.levels.reduce((a, l) => a + l.tables.length, 0);
  if (total === 0) lines.push('tables     none');
  for (const level of r.levels) {
    if (level.tables.length === 0) continue;
    lines.push(`L${level.level}         ${level.tables.length} table(s), ${level.bytes} bytes, ${level.entries} entries`);
    for (const t of level.tables) {
      const tomb = t.tombstones === null ? 'tombstones unknown (properties unreadable)' : `${t.tombstones} tombstones`;
      lines.push(
        `  ${t.file}  ${t.size} bytes  ${t.entries} entries  ${tomb}  seq ${t.minSeq}..${t.maxSeq}  keys ${JSON.stringify(t.smallest)} .. ${JSON.stringify(t.largest)}`,
      );
    }
  }
  const w = r.wal;
  lines.push(`wal        ${w.segments.length} segment(s), ${w.bytes} bytes; floor ${w.floor ?? '?'}, next id ${w.next ?? '?'}`);
  for (const s of w.segments) lines.push(`  ${s.file}  ${s.size} bytes`);
  lines.push(
    `           ${w.records} records, ${w.recordsAfterFlushed} after the flushed position (in the memtable once opened); last record at ${pos(w.lastPosition)}`,
  );
  for (const t of w.recovery.truncations) {
    lines.push(
      `recovery   segment ${t.segmentId}: ${t.bytes} bytes from offset ${t.offset} are a ${t.reason} (a read-only open leaves them; the next writable open truncates them)`,
    );
  }
  lines.push(
    `memtable   ${r.memtable.entries} entries, ${r.memtable.bytes} bytes${r.memtable.frozen > 0 ? `, ${r.memtable.frozen} frozen` : ''}`,
  );
  return lines;
}
