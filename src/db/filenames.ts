/**
 * Every file name in a DB directory, as LevelDB's `filename.h`: the builders and one parser.
 * docs/FORMAT.md ("The DB directory") says what writes each file, when, and in what order.
 *
 * ```
 * <dir>/
 *   CURRENT            names the live manifest (manifest.ts)
 *   CURRENT.tmp        CURRENT being replaced
 *   MANIFEST-000007    a manifest: number, 6 digits or more
 *   000012.sst         a table: number, 6 digits or more
 *   OPTIONS            the options that decide what the bytes mean (options-file.ts)
 *   OPTIONS.tmp        OPTIONS being replaced
 *   IDENTITY           the DB's id, made by its first backup (identity.ts)
 *   IDENTITY.tmp       IDENTITY being written
 *   SLOTS              the change feed's retention slots (slots.ts)
 *   SLOTS.tmp          SLOTS being replaced
 *   LOCK               a NodeFileSystem's lock off Linux: the holder's pid (src/fs/node.ts)
 *   LOCK-<16 hex>.sock a NodeFileSystem's lock socket on Linux, one per holder or dead holder
 *   wal/               the WAL: its segments, SEGMENTS and quarantine/ (src/wal/format.ts)
 *   quarantine/        what DB.repair moved aside: <stamp>-<original name>
 * ```
 * Table numbers come from the manifest's `nextFileNumber`; manifest numbers count up from 1, one
 * per manifest installed (a separate sequence: `000003.sst` and `MANIFEST-000003` may both
 * exist). A number is written zero-padded to at least 6 digits; the parser takes only the names
 * the builders make (`00001.sst`, `0000001.sst`, `MANIFEST-1` are not sediment's), and only
 * numbers below 2^53.
 *
 * @module
 */

import { isLockSocketFileName, LOCK_FILE } from '../fs/lock-names.js';

export const CURRENT_FILE = 'CURRENT';
/** What `CURRENT` is written as before it is renamed over `CURRENT`. */
export const CURRENT_TMP_FILE = 'CURRENT.tmp';
export const OPTIONS_FILE = 'OPTIONS';
/** What `OPTIONS` is written as before it is renamed over `OPTIONS`. */
export const OPTIONS_TMP_FILE = 'OPTIONS.tmp';
/** The DB's id, which keys its tables in a backup directory (identity.ts). */
export const IDENTITY_FILE = 'IDENTITY';
/** What `IDENTITY` is written as before it is renamed into place. */
export const IDENTITY_TMP_FILE = 'IDENTITY.tmp';
/** The WAL's directory. */
/** The change feed's retention slots (slots.ts). */
export const SLOTS_FILE = 'SLOTS';
/** What `SLOTS` is written as before it is renamed over `SLOTS`. */
export const SLOTS_TMP_FILE = 'SLOTS.tmp';
export const WAL_DIR = 'wal';
/** Where `DB.repair` moves damaged files (the WAL's salvage has its own, inside `wal/`). */
export const QUARANTINE_DIR = 'quarantine';
export { LOCK_FILE, lockSocketFileName } from '../fs/lock-names.js';

/** What a name in a DB directory is; see {@link parseFileName}. */
export type FileType =
  | 'table'
  | 'manifest'
  | 'current'
  | 'currentTmp'
  | 'options'
  | 'optionsTmp'
  | 'identity'
  | 'identityTmp'
  | 'slots'
  | 'slotsTmp'
  | 'lock'
  | 'lockSocket'
  | 'wal'
  | 'quarantine';

/** A parsed name: tables and manifests carry their number. */
export type ParsedFileName =
  | { type: 'table' | 'manifest'; number: number }
  | { type: Exclude<FileType, 'table' | 'manifest'>; number?: undefined };

const FIXED = new Map<string, ParsedFileName>(
  (
    [
      [CURRENT_FILE, 'current'],
      [CURRENT_TMP_FILE, 'currentTmp'],
      [OPTIONS_FILE, 'options'],
      [OPTIONS_TMP_FILE, 'optionsTmp'],
      [IDENTITY_FILE, 'identity'],
      [IDENTITY_TMP_FILE, 'identityTmp'],
      [SLOTS_FILE, 'slots'],
      [SLOTS_TMP_FILE, 'slotsTmp'],
      [LOCK_FILE, 'lock'],
      [WAL_DIR, 'wal'],
      [QUARANTINE_DIR, 'quarantine'],
    ] as const
  ).map(([name, type]) => [name, Object.freeze({ type })]),
);

const TABLE = /^(\d{6,})\.sst$/;
const MANIFEST = /^MANIFEST-(\d{6,})$/;

function padded(n: number): string {
  return String(n).padStart(6, '0');
}

/** `NNNNNN.sst`: table number `n`. */
export function tableFileName(n: number): string {
  return `${padded(n)}.sst`;
}

/** `MANIFEST-NNNNNN`: manifest number `n`. */
export function manifestFileName(n: number): string {
  return `MANIFEST-${padded(n)}`;
}

/**
 * The name `DB.repair` gives a file it moves into `quarantine/`: the repair's `stamp`
 * (`<ms since the epoch>-<8 hex digits>`, fresh per repair, so that a later repair never
 * overwrites what an earlier one moved), a dash, and the file's own name.
 */
export function quarantinedFileName(stamp: string, name: string): string {
  return `${stamp}-${name}`;
}

/**
 * What `name` (a bare name, no directory) is in a DB directory, or undefined if it is none of
 * sediment's. Only the exact names the builders make are taken: a number must be zero-padded
 * to 6 digits exactly when it is shorter, and below 2^53.
 */
export function parseFileName(name: string): ParsedFileName | undefined {
  const fixed = FIXED.get(name);
  if (fixed) return fixed;
  let m = TABLE.exec(name);
  if (m) return numbered('table', m[1]!, tableFileName, name);
  m = MANIFEST.exec(name);
  if (m) return numbered('manifest', m[1]!, manifestFileName, name);
  if (isLockSocketFileName(name)) return { type: 'lockSocket' };
  return undefined;
}

function numbered(type: 'table' | 'manifest', digits: string, build: (n: number) => string, name: string): ParsedFileName | undefined {
  const n = Number(digits);
  // The builder's own output only: no extra leading zeros, nothing a number cannot hold exactly.
  return Number.isSafeInteger(n) && build(n) === name ? { type, number: n } : undefined;
}

/** The numbers of the files of `type` among `names`, in the order found. */
export function fileNumbers(names: readonly string[], type: 'table' | 'manifest'): number[] {
  const out: number[] = [];
  for (const name of names) {
    const p = parseFileName(name);
    if (p?.type === type) out.push(p.number!);
  }
  return out;
}
