/**
 * `sediment dump` and `sediment scan`: entries as JSON lines, `{"key": ..., "value": ...}`, in
 * key order (descending with `--reverse`), from a read-only handle (no lock, nothing written:
 * they run beside a live writer and read the DB as it was when they opened it).
 *
 * - `dump <dir> [--gte k] [--lt k] [--limit n] [--reverse]`: the whole DB or a slice of it; with
 *   `--wal`, the WAL's records instead, in log order, each with its position, its type (`put` or
 *   `del`), its expiry if it has one, and whether the manifest says it is already in the tables
 *   (`flushed`). A progress bar on stderr when stderr is a terminal.
 * - `scan <dir> [--gt k] [--gte k] [--lt k] [--lte k] [--prefix p] [--limit n] [--reverse]`: a
 *   range, with every bound of the iterator (the inclusive bound wins when both are given, as in
 *   Level) or a key prefix.
 *
 * Keys print as strings under the utf8 key encoding, as base64 under binary; values as JSON
 * under msgpack and json (bytes inside a msgpack value as base64, a Date as its ISO string), as
 * a string under utf8, as base64 under binary. Bounds are given the way keys print.
 *
 * @module
 */
import * as path from 'node:path';
import { decodeKey, decodeValue, encodeKey } from '../db/encoding.js';
import type { IteratorOptions } from '../db/index.js';
import { WAL_DIR } from '../db/filenames.js';
import { readCurrentManifest } from '../db/manifest.js';
import { parseSegmentFileName, segmentFileName } from '../wal/format.js';
import { comparePositions, type Position } from '../wal/position.js';
import {
  EXIT,
  type Out,
  UsageError,
  countingTableReads,
  fs,
  keyOut,
  openDB,
  parseKey,
  progressBar,
  tableBytes,
  toCliError,
  toJson,
  valueOut,
  type EncodingFlags,
} from './common.js';

/** Range flags of dump and scan. */
export interface RangeFlags extends EncodingFlags {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
  prefix?: string;
  limit?: number;
  reverse?: boolean;
}

/** `sediment dump`. */
export async function dumpCommand(dir: string, o: RangeFlags & { wal?: boolean }, out: Out): Promise<number> {
  return o.wal ? dumpWal(dir, o, out) : iterate(dir, o, out, true);
}

/** `sediment scan`. */
export async function scanCommand(dir: string, o: RangeFlags, out: Out): Promise<number> {
  return iterate(dir, o, out, false);
}

async function iterate(dir: string, o: RangeFlags, out: Out, withProgress: boolean): Promise<number> {
  let read = 0;
  const { db, enc } = await openDB(dir, o, { readOnly: true, fs: countingTableReads(fs, (n) => (read += n)) });
  const progress = withProgress ? progressBar('dump', await tableBytes(dir), 'bytes') : undefined;
  try {
    const options = iteratorOptions(o, enc.keyEncoding);
    let n = 0;
    for await (const [key, value] of db.iterator(options)) {
      await out.line(toJson({ key: keyOut(key), value: valueOut(value, enc.valueEncoding) }));
      if (++n % 256 === 0) progress?.update(read);
    }
    return EXIT.OK;
  } catch (err) {
    throw toCliError(err, dir);
  } finally {
    progress?.stop();
    await db.close().catch(() => undefined);
  }
}

/** The iterator options of the range flags; bounds are given as keys print. */
function iteratorOptions(o: RangeFlags, keyEncoding: 'utf8' | 'binary'): IteratorOptions<unknown> {
  const options: IteratorOptions<unknown> = { reverse: o.reverse === true };
  if (o.limit !== undefined) options.limit = o.limit;
  for (const name of ['gt', 'gte', 'lt', 'lte'] as const) {
    const v = o[name];
    if (v !== undefined) options[name] = parseKey(v, keyEncoding, `--${name}`);
  }
  if (o.prefix !== undefined) {
    if (o.gt !== undefined || o.gte !== undefined || o.lt !== undefined || o.lte !== undefined) {
      throw new UsageError('--prefix cannot be combined with --gt, --gte, --lt or --lte');
    }
    const p = encodeKey(keyEncoding, parseKey(o.prefix, keyEncoding, '--prefix'), 'bound');
    options.gte = Buffer.from(p);
    const end = prefixEnd(p);
    if (end) options.lt = end;
  }
  return options;
}

/** The smallest key greater than every key starting with `prefix`, or undefined if there is none (all 0xff). */
export function prefixEnd(prefix: Uint8Array): Buffer | undefined {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      b[i]!++;
      return b.subarray(0, i + 1);
    }
  }
  return undefined;
}

/**
 * The WAL's records, in log order (newest first with `--reverse`), filtered by the range
 * flags: one JSON line each with its position.
 */
async function dumpWal(dir: string, o: RangeFlags & { wal?: boolean }, out: Out): Promise<number> {
  const { db, enc } = await openDB(dir, o, { readOnly: true });
  try {
    const opts = iteratorOptions(o, enc.keyEncoding);
    const lower = opts.gte as Uint8Array | string | undefined;
    const upper = opts.lt as Uint8Array | string | undefined;
    const lo = lower === undefined ? undefined : encodeKey(enc.keyEncoding, lower, 'bound');
    const hi = upper === undefined ? undefined : encodeKey(enc.keyEncoding, upper, 'bound');
    // The manifest's flushed position: records at or before it are in the tables already.
    const flushed = (await readCurrentManifest(fs, dir).catch(() => undefined))?.state.flushedThrough ?? null;
    const limit = o.limit === undefined || o.limit < 0 ? Infinity : o.limit;
    const sizes = await segmentSizes(dir);
    const progress = progressBar('dump', sizes.total, 'bytes');
    // --reverse keeps the last `limit` matches (all of them without a limit), then prints them backwards.
    const kept: string[] = [];
    let printed = 0;
    try {
      for await (const { record, position, seq } of db.wal.readFrom({ segmentId: 0, offset: 0 })) {
        if (printed >= limit) break;
        if (lo && Buffer.compare(record.key, lo) < 0) continue;
        if (hi && Buffer.compare(record.key, hi) >= 0) continue;
        const line = toJson(walLine(record, position, seq, flushed, enc.keyEncoding, enc.valueEncoding));
        if (o.reverse) {
          kept.push(line);
          if (kept.length > limit) kept.shift();
        } else {
          await out.line(line);
          printed++;
        }
        progress.update((sizes.before.get(position.segmentId) ?? 0) + position.offset);
      }
    } finally {
      progress.stop();
    }
    for (let i = kept.length - 1; i >= 0; i--) await out.line(kept[i]!);
    return EXIT.OK;
  } catch (err) {
    throw toCliError(err, dir);
  } finally {
    await db.close().catch(() => undefined);
  }
}

interface WalRecordLike {
  key: Uint8Array;
  value: Uint8Array;
  tombstone: boolean;
  expiresAt: number | undefined;
}

function walLine(
  r: WalRecordLike,
  position: Position,
  seq: number | undefined,
  flushed: Position | null,
  keyEncoding: 'utf8' | 'binary',
  valueEncoding: 'msgpack' | 'json' | 'utf8' | 'binary',
): object {
  const line: Record<string, unknown> = {
    // The ops of one write (a batch) share its position; each has its own seq (none in a format 1 DB).
    position: { segmentId: position.segmentId, offset: position.offset },
    ...(seq === undefined ? {} : { seq }),
    type: r.tombstone ? 'del' : 'put',
    key: keyOut(decodeKey(keyEncoding, r.key)),
  };
  if (!r.tombstone) line.value = valueOut(decodeValue(valueEncoding, r.value, r.key), valueEncoding);
  if (r.expiresAt !== undefined) line.expiresAt = r.expiresAt;
  line.flushed = flushed !== null && comparePositions(position, flushed) <= 0;
  return line;
}

/** The WAL's total size, and for each segment the bytes of the segments before it (a progress bar's measure). */
async function segmentSizes(dir: string): Promise<{ total: number; before: Map<number, number> }> {
  const walDir = path.join(dir, WAL_DIR);
  const ids: number[] = [];
  for (const name of await fs.readdir(walDir).catch(() => [] as string[])) {
    const id = parseSegmentFileName(name);
    if (id !== undefined) ids.push(id);
  }
  const before = new Map<number, number>();
  let total = 0;
  for (const id of ids.sort((a, b) => a - b)) {
    before.set(id, total);
    total += await fs.stat(path.join(walDir, segmentFileName(id))).then(
      (s) => s.size,
      () => 0,
    );
  }
  return { total, before };
}
