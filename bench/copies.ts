/**
 * Copies benchmark: `npm run bench:copies [-- entries] [--compact]`.
 *
 * A DB of 100,000 (default) 1 KB pseudo-random values under 16 B keys (about 100 MB of tables),
 * flushed (or, with `--compact`, fully compacted into many tables), plus about 8 MB of records
 * left in the WAL, on the real file system in os.tmpdir(). Times, twice each: a checkpoint with
 * the tables hard-linked, one with them copied (the DB's `fs` has no `link`), one into /dev/shm
 * when it exists (another file system: EXDEV, so copied); a first backup, a second one after
 * 5,000 more writes and a flush (incremental), a restore of it (every file's CRC checked), and,
 * for comparison, a block-by-block table check of the restored tables.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DB } from '../src/db/index.js';
import { NodeFileSystem, nodeFileSystem } from '../src/fs/node.js';
import type { FileSystem } from '../src/fs/types.js';
import { checkTable } from '../src/sstable/table-check.js';

const N = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 100_000);
const COMPACT = process.argv.includes('--compact');

/** The real file system, without `link`: every table is copied. */
const noLinkFileSystem: FileSystem = Object.assign(new NodeFileSystem(), { link: undefined });

const ms = (t0: number): number => Math.round(performance.now() - t0);

function du(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    n += e.isDirectory() ? du(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size;
  }
  return n;
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-bench-copies-'));
  const dir = path.join(root, 'db');
  const opts = { valueEncoding: 'binary', keyEncoding: 'binary', fsync: 'os' } as const;
  try {
    const db = await DB.open(dir, opts);
    const value = Buffer.alloc(1000);
    let t0 = performance.now();
    for (let i = 0; i < N; i += 64) {
      const writes: Promise<void>[] = [];
      for (let j = i; j < Math.min(N, i + 64); j++) {
        for (let b = 0; b < value.length; b += 4) value.writeUInt32LE((j * 2654435761 + b * 40503) >>> 0, b);
        const k = Buffer.alloc(16);
        k.writeUInt32BE((j * 7919) % N, 0);
        writes.push(db.put(k, Buffer.from(value)));
      }
      await Promise.all(writes);
    }
    await db.flush();
    if (COMPACT) await db.compact();
    for (let i = 0; i < 8000; i++) await db.put(Buffer.from(`tail${i}`), value);
    const s = db.stats();
    const tables = s.levels.reduce((n, l) => n + l.tables, 0);
    const tableBytes = s.levels.reduce((n, l) => n + l.bytes, 0);
    console.log(
      `fill ${ms(t0)} ms: ${tables} tables, ${(tableBytes / 1e6).toFixed(1)} MB of tables, ${(du(dir) / 1e6).toFixed(1)} MB in all`,
    );

    const checkpoint = async (d: DB<Buffer, Buffer>, label: string, target: string): Promise<void> => {
      const c = await d.checkpoint(target);
      console.log(
        `checkpoint, ${label}: ${Math.round(c.durationMs)} ms (${c.tablesLinked} linked, ${c.tablesCopied} copied, ${(c.bytesCopied / 1e6).toFixed(1)} MB copied)`,
      );
    };
    for (let r = 0; r < 2; r++) await checkpoint(db, 'tables linked', path.join(root, `cp-link-${r}`));
    await db.close();
    const copying = await DB.open(dir, { ...opts, fs: noLinkFileSystem });
    for (let r = 0; r < 2; r++) await checkpoint(copying, 'tables copied', path.join(root, `cp-copy-${r}`));
    if (fs.existsSync('/dev/shm')) {
      const shm = fs.mkdtempSync('/dev/shm/sediment-bench-copies-');
      try {
        await checkpoint(copying, 'into /dev/shm (EXDEV)', path.join(shm, 'cp'));
      } finally {
        fs.rmSync(shm, { recursive: true, force: true });
      }
    }
    await copying.close();

    const again = await DB.open(dir, opts);
    const backups = path.join(root, 'backups');
    const first = await again.backup(backups);
    console.log(
      `first backup: ${Math.round(first.durationMs)} ms, ${first.filesCopied} files, ${(first.bytesCopied / 1e6).toFixed(1)} MB copied`,
    );
    for (let i = 0; i < 5000; i++) await again.put(Buffer.from(`more${i}`), value);
    await again.flush();
    const second = await again.backup(backups);
    console.log(
      `second backup: ${Math.round(second.durationMs)} ms, ${second.filesCopied} files, ${(second.bytesCopied / 1e6).toFixed(1)} MB copied, ${second.tablesShared} tables shared`,
    );
    await again.close();
    const restored = path.join(root, 'restored');
    const r = await DB.restore(backups, restored);
    console.log(`restore: ${Math.round(r.durationMs)} ms, ${(r.bytes / 1e6).toFixed(1)} MB, every file's CRC checked`);
    t0 = performance.now();
    let blocks = 0;
    for (const f of fs.readdirSync(restored).filter((n) => n.endsWith('.sst'))) {
      blocks += (await checkTable(nodeFileSystem, path.join(restored, f))).blocks;
    }
    console.log(`for comparison, a block-by-block check of the restored tables: ${ms(t0)} ms (${blocks} blocks)`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

await main();
