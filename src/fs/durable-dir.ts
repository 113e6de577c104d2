/**
 * Creating a directory durably: `mkdir -p` makes entries that a power loss can undo until each
 * new directory's parent is fsynced.
 *
 * @module
 */
import * as path from 'node:path';
import type { FileSystem } from './types.js';

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
