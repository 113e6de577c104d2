/**
 * The names of a {@link NodeFileSystem} lock's files in the locked directory. They live in the
 * fs layer, which takes the lock; `src/db/filenames.ts` re-exports them with every other name a
 * DB directory holds.
 *
 * @module
 */

/** The lock file off Linux: created exclusively, holds the owner's pid. */
export const LOCK_FILE = 'LOCK';

const LOCK_SOCKET = /^LOCK-[0-9a-f]{16}\.sock$/;

/** `LOCK-<token>.sock`: a lock socket on Linux, one per holder or dead holder (`token`: 16 hex digits). */
export function lockSocketFileName(token: string): string {
  return `LOCK-${token}.sock`;
}

/** Whether `name` is a lock socket's name. */
export function isLockSocketFileName(name: string): boolean {
  return LOCK_SOCKET.test(name);
}
