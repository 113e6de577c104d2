/**
 * Creating a directory durably (`mkdir -p` makes entries that a power loss can undo until each
 * new directory's parent is fsynced), and claiming it with its lock.
 *
 * @module
 */
import * as path from 'node:path';
import { IoError, LockedError, errnoOf } from '../errors.js';
import type { DirectoryLock, FileSystem } from './types.js';

/**
 * Creates `dir` (and missing parents) and fsyncs the parent of every directory it created, plus
 * `dir`'s own parent, so the whole path survives a power loss.
 */
export async function makeDurableDir(fs: FileSystem, dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const exists = await fs.stat(d).then(
      () => true,
      (err: { code?: unknown }) => {
        if (err.code === 'ENOENT') return false;
        throw err;
      },
    );
    if (exists || path.dirname(d) === d) break;
    missing.push(d);
  }
  await fs.mkdir(dir);
  const parents = new Set(missing.map((d) => path.dirname(d)));
  parents.add(path.dirname(path.resolve(dir)));
  // Top down: a parent's entry is durable before its children's.
  for (const p of [...parents].sort((a, b) => a.length - b.length)) await fs.syncDir(p);
}

/**
 * What every store does first: create `dir` durably and take its exclusive lock. Rejects with
 * `LockedError` if another handle holds it, `IoError` if the OS fails.
 */
export async function claimDirectory(fs: FileSystem, dir: string): Promise<DirectoryLock> {
  try {
    await makeDurableDir(fs, dir);
  } catch (err) {
    throw new IoError('mkdir', dir, err);
  }
  try {
    return await fs.lock(dir);
  } catch (err) {
    if (errnoOf(err) === 'ELOCKED') throw new LockedError(dir, (err as Error).message);
    throw new IoError('lock', dir, err);
  }
}
