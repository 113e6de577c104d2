/**
 * `IDENTITY`: a DB's id, a random UUID made by the DB's first backup. A backup directory keys
 * the tables it shares between backups by it (a table number is unique within one DB, not
 * across DBs), so that backups of several DBs can share one directory without mixing tables.
 *
 * One line of ASCII: the UUID (lowercase, 36 characters), a space, the masked CRC-32C of the
 * UUID's bytes as 8 lowercase hex digits, a newline:
 * `6f1c2a8e-4b7d-4c1e-9a52-0d3e8f7b6a41 c2f4c900\n`. Anything else is a `CorruptionError`.
 *
 * A checkpoint or a restore makes a new DB, without `IDENTITY`: it gets its own id at its first
 * backup, so that its tables (whose numbers go on from the original's) never mix with the
 * original's. A DB directory copied by hand (cp -r) keeps the original's id: remove `IDENTITY`
 * from the copy before backing both up into one directory.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { CorruptionError, errnoOf, IoError, ReadOnlyError } from '../errors.js';
import type { FileSystem } from '../fs/types.js';
import { maskedCrc32c } from '../util/crc32c.js';
import { IDENTITY_FILE, IDENTITY_TMP_FILE } from './filenames.js';
import { readSmallFile, replaceFile } from './manifest.js';

const LINE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) ([0-9a-f]{8})\n$/;

/** The bytes of an `IDENTITY` file holding `id`. */
export function encodeIdentity(id: string): Buffer {
  return Buffer.from(`${id} ${maskedCrc32c(Buffer.from(id, 'latin1')).toString(16).padStart(8, '0')}\n`, 'latin1');
}

/** The id an `IDENTITY` file's bytes hold; `CorruptionError` naming `file` for anything else. */
export function decodeIdentity(bytes: Uint8Array, file: string): string {
  const m = LINE.exec(Buffer.from(bytes).toString('latin1'));
  if (!m || encodeIdentity(m[1]!).toString('latin1') !== Buffer.from(bytes).toString('latin1')) {
    throw new CorruptionError('IDENTITY is damaged', { file, offset: 0 });
  }
  return m[1]!;
}

/** `dir`'s id, or undefined when it has none yet. */
export async function readIdentity(fs: FileSystem, dir: string): Promise<string | undefined> {
  const file = path.join(dir, IDENTITY_FILE);
  let bytes: Buffer;
  try {
    bytes = await readSmallFile(fs, file, 4096);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    if (err instanceof CorruptionError) throw err;
    throw new IoError('read', file, err);
  }
  return decodeIdentity(bytes, file);
}

/**
 * `dir`'s id, made now (durably: `IDENTITY.tmp` written and synced, renamed, the directory
 * fsynced) if it has none. A read-only handle makes none: `ReadOnlyError`.
 */
export async function ensureIdentity(fs: FileSystem, dir: string, readOnly: boolean): Promise<string> {
  const existing = await readIdentity(fs, dir);
  if (existing !== undefined) return existing;
  if (readOnly) {
    throw new ReadOnlyError('the database', "a first backup (it records the DB's id in IDENTITY; back it up once from a writable handle)");
  }
  const id = randomUUID();
  await replaceFile(fs, path.join(dir, IDENTITY_FILE), path.join(dir, IDENTITY_TMP_FILE), encodeIdentity(id));
  return id;
}
