/**
 * The `SLOTS` file: the change feed's retention slots (`db.changes({ retain })`), each a name and
 * the WAL position its consumer acknowledged (`ackChanges`): WAL segments wholly before the
 * lowest slot position are kept, whatever the flushes say. docs/FORMAT.md has the same layout.
 *
 * Layout: three lines of ASCII text, as `OPTIONS` (options-file.ts):
 * ```
 * SDMTSLOT 1\n
 * {"slots":{"replica":{"segmentId":3,"offset":4096}}}\n
 * crc32c 89abcdef\n
 * ```
 * Line 1: magic and file version. Line 2: the JSON body, one line: `slots` maps each slot name
 * (a string of 1 to 200 characters) to a position of non-negative safe integers; names in
 * ascending order, so the same slots always make the same bytes. Line 3: the masked CRC-32C of
 * every byte of lines 1 and 2, as 8 lowercase hex digits. Anything else is a `CorruptionError`
 * naming the file. No file means no slot.
 *
 * Writing is atomic: `SLOTS.tmp` is written and fdatasynced, renamed over `SLOTS`, and the
 * directory fsynced; a crash anywhere leaves the old file (or none) or the new one, plus perhaps
 * a stale `SLOTS.tmp`, which the next write replaces and `DB.open` deletes. Checkpoints and
 * backups do not copy it: a copy starts with no slot.
 *
 * @module
 */
import * as path from 'node:path';
import { CorruptionError, errnoOf, IoError } from '../errors.js';
import type { FileSystem } from '../fs/types.js';
import { maskedCrc32c } from '../util/crc32c.js';
import type { Position } from '../wal/position.js';
import { SLOTS_FILE, SLOTS_TMP_FILE } from './filenames.js';
import { readSmallFile, replaceFile } from './manifest.js';

/** Version of the file's layout (line 1). */
export const SLOTS_FILE_VERSION = 1;
/** Longest slot name, in UTF-16 code units. */
export const MAX_SLOT_NAME = 200;
const MAGIC = 'SDMTSLOT';
const MAX_SLOTS_FILE = 1024 * 1024;
const TRAILER = /\ncrc32c ([0-9a-f]{8})\n$/;

/** Slot name to acknowledged position. */
export type Slots = ReadonlyMap<string, Position>;

/** Throws `TypeError`/`RangeError` unless `name` is a slot name. */
export function checkSlotName(name: unknown): asserts name is string {
  if (typeof name !== 'string') throw new TypeError(`a retention slot name must be a string, got ${name === null ? 'null' : typeof name}`);
  if (name.length === 0 || name.length > MAX_SLOT_NAME)
    throw new RangeError(`a retention slot name must have 1 to ${MAX_SLOT_NAME} characters, got ${name.length}`);
  if (!(name as string & { isWellFormed(): boolean }).isWellFormed())
    throw new TypeError('a retention slot name must be well-formed Unicode');
}

/** The bytes of a `SLOTS` file recording `slots`. */
export function encodeSlotsFile(slots: Slots): Buffer {
  const body: { [name: string]: { segmentId: number; offset: number } } = {};
  for (const name of [...slots.keys()].sort()) {
    const p = slots.get(name)!;
    body[name] = { segmentId: p.segmentId, offset: p.offset };
  }
  const head = Buffer.from(`${MAGIC} ${SLOTS_FILE_VERSION}\n${JSON.stringify({ slots: body })}\n`, 'utf8');
  return Buffer.concat([head, Buffer.from(`crc32c ${maskedCrc32c(head).toString(16).padStart(8, '0')}\n`, 'latin1')]);
}

/** Decodes a `SLOTS` file; throws `CorruptionError` naming `file` for anything but a valid one. */
export function decodeSlotsFile(bytes: Uint8Array, file: string): Map<string, Position> {
  const fail = (reason: string, offset = 0): never => {
    throw new CorruptionError(reason, { file, offset });
  };
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buf.toString('latin1');
  const trailer = TRAILER.exec(text);
  if (!trailer) return fail('SLOTS file does not end with its checksum line (truncated or damaged)');
  const covered = trailer.index + 1;
  if (maskedCrc32c(buf, 0, covered) !== Number.parseInt(trailer[1]!, 16)) fail('SLOTS checksum mismatch', covered);
  const lines = buf.subarray(0, covered).toString('utf8').split('\n');
  if (lines.length !== 3) fail('SLOTS file must have a header line and one body line');
  const header = /^SDMTSLOT (\d{1,9})$/.exec(lines[0]!);
  if (!header) fail('not a sediment SLOTS file (bad header)');
  if (Number(header![1]) !== SLOTS_FILE_VERSION)
    fail(`unsupported SLOTS file version ${header![1]} (this sediment reads ${SLOTS_FILE_VERSION})`);
  let body: unknown;
  try {
    body = JSON.parse(lines[1]!);
  } catch {
    fail('SLOTS body is not JSON');
  }
  const slots = (body as { slots?: unknown } | null)?.slots;
  if (typeof slots !== 'object' || slots === null || Array.isArray(slots)) return fail('SLOTS body has the wrong shape');
  const out = new Map<string, Position>();
  for (const [name, p] of Object.entries(slots as object)) {
    const { segmentId, offset } = (p ?? {}) as { segmentId?: unknown; offset?: unknown };
    const nat = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
    if (name.length === 0 || name.length > MAX_SLOT_NAME || !nat(segmentId) || !nat(offset))
      fail(`SLOTS entry ${JSON.stringify(name)} is not valid`);
    out.set(name, { segmentId: segmentId as number, offset: offset as number });
  }
  return out;
}

/** Reads `dir`'s slots (none without a file). `CorruptionError` if the file is damaged. */
export async function readSlotsFile(fs: FileSystem, dir: string): Promise<Map<string, Position>> {
  const file = path.join(dir, SLOTS_FILE);
  let bytes: Buffer;
  try {
    bytes = await readSmallFile(fs, file, MAX_SLOTS_FILE);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return new Map();
    if (err instanceof CorruptionError) throw err;
    throw new IoError('read', file, err);
  }
  return decodeSlotsFile(bytes, file);
}

/** Makes `slots` the content of `dir`'s `SLOTS` file, atomically and durably (see the module comment). */
export async function writeSlotsFile(fs: FileSystem, dir: string, slots: Slots): Promise<void> {
  const bytes = encodeSlotsFile(slots);
  if (bytes.length > MAX_SLOTS_FILE) throw new RangeError(`too many retention slots: the SLOTS file would take ${bytes.length} bytes`);
  await replaceFile(fs, path.join(dir, SLOTS_FILE), path.join(dir, SLOTS_TMP_FILE), bytes);
}
