/**
 * `sediment get`, `put` and `del`: one key at a time.
 *
 * - `get <dir> <key>` reads from a read-only handle (no lock: it works beside a live writer) and
 *   prints the value: as JSON under the msgpack and json value encodings, the bare text under
 *   utf8, base64 under binary. Exit 1, printing nothing, when the key is absent (never written,
 *   deleted, or expired).
 * - `put <dir> <key> <value> [--ttl ms] [--create]` and `del <dir> <key>` open the DB for
 *   writing (exit 3, LOCKED, while another process has it open), write with `sync: true` and
 *   close. Values are given as they print. `put` refuses a directory without a DB unless
 *   `--create`.
 *
 * Keys are the text under the utf8 key encoding, base64 under binary. A key or value that
 * starts with `-` follows `--`: `sediment put dir k -- -5`.
 *
 * @module
 */
import {
  EXIT,
  type Out,
  UsageError,
  formatValue,
  openDB,
  parseKey,
  parseValue,
  toCliError,
  type AnyDB,
  type EncodingFlags,
} from './common.js';

/** `sediment get`. */
export async function getCommand(dir: string, keyText: string, o: EncodingFlags, out: Out): Promise<number> {
  const { db, enc } = await openDB(dir, o, { readOnly: true });
  try {
    const key = parseKey(keyText, enc.keyEncoding);
    const value = await argument(() => db.get(key));
    if (value === undefined) return EXIT.NO;
    await out.line(formatValue(value, enc.valueEncoding));
    return EXIT.OK;
  } catch (err) {
    throw toCliError(err, dir);
  } finally {
    await db.close().catch(() => undefined);
  }
}

/** `sediment put`. */
export async function putCommand(
  dir: string,
  keyText: string,
  valueText: string,
  o: EncodingFlags & { ttl?: number; create?: boolean },
): Promise<number> {
  const { db, enc } = await openDB(dir, o, { readOnly: false, create: o.create === true });
  try {
    const key = parseKey(keyText, enc.keyEncoding);
    const value = parseValue(valueText, enc.valueEncoding);
    await argument(() => db.put(key, value, { sync: true, ...(o.ttl === undefined ? {} : { ttlMs: o.ttl }) }));
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  await close(db, dir);
  return EXIT.OK;
}

/** `sediment del`. */
export async function delCommand(dir: string, keyText: string, o: EncodingFlags): Promise<number> {
  const { db, enc } = await openDB(dir, o, { readOnly: false });
  try {
    const key = parseKey(keyText, enc.keyEncoding);
    await argument(() => db.delete(key, { sync: true }));
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  await close(db, dir);
  return EXIT.OK;
}

/**
 * Runs a DB call on arguments from the command line: the `TypeError` or `RangeError` it throws
 * for a key or value the encodings refuse (a key over maxKeySize, a value json cannot hold) is a
 * bad argument.
 */
async function argument<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
}

/** Closes a writable handle: a failure there (the final sync) fails the command. */
async function close(db: AnyDB, dir: string): Promise<void> {
  try {
    await db.close();
  } catch (err) {
    throw toCliError(err, dir);
  }
}
