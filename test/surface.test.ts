/**
 * The public surface (issue #12): each entry point exports exactly its listed names, nothing
 * internal (no `ioStep`, no `errnoOf`), and one name per concept.
 */
import { describe, expect, it } from 'vitest';
import * as root from '../src/index.js';
import * as db from '../src/db/index.js';

describe('public surface', () => {
  it("'sediment' exports the DB, the WAL, the errors and the file system, nothing internal", () => {
    const names = Object.keys(root).sort();
    expect(names).toEqual(
      [
        'ChangeFeed',
        'ChangesExpiredError',
        'InvalidPositionError',
        'SlotDroppedError',
        'UnknownSlotError',
        'ClosedError',
        'CorruptionError',
        'DB',
        'DBIterator',
        'DecodeError',
        'InvalidConfigError',
        'IoError',
        'LockedError',
        'NodeFileSystem',
        'ReadOnlyError',
        'Record',
        'SedimentError',
        'Snapshot',
        'WAL_FORMAT_VERSION',
        'Wal',
        'comparePositions',
        'loadZstd',
        'noopMeter',
        'nodeFileSystem',
      ].sort(),
    );
  });

  it("'sediment/db' exports the DB, its snapshot and iterator, and the errors", () => {
    const names = Object.keys(db);
    for (const internal of ['ioStep', 'errnoOf']) expect(names).not.toContain(internal);
    for (const name of ['DB', 'DBIterator', 'Snapshot', 'CorruptionError', 'ReadOnlyError', 'DecodeError']) expect(names).toContain(name);
  });
});

describe('no top-level await', () => {
  it('no module under src/ awaits at its top level (Node refuses to require() such a module)', async () => {
    const fs = await import('node:fs');
    const path = await import('node:path');
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts') && /^(?:await |const .* = await |let .* = await )/m.test(fs.readFileSync(p, 'utf8'))) offenders.push(p);
      }
    };
    walk(path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'src'));
    expect(offenders).toEqual([]);
  });
});

describe("'sediment/wal'", () => {
  it('exports the log, its record and the errors, nothing internal', async () => {
    const wal = await import('../src/wal/index.js');
    const names = Object.keys(wal);
    for (const internal of ['ioStep', 'errnoOf']) expect(names).not.toContain(internal);
    for (const name of ['Wal', 'Record', 'loadZstd', 'CorruptionError', 'ReadOnlyError']) expect(names).toContain(name);
  });
});
