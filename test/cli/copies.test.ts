/**
 * `sediment checkpoint`, `backup`, `restore` and `backups`, run as child processes (the built bin)
 * on real directories: the copies hold the DB's data, a second backup shares the first's tables,
 * `--keep` prunes, `--id` picks a backup; exit 3 while the DB is open elsewhere, 4 for a target
 * that is not empty, a missing or damaged backup, 2 for bad arguments, each having touched
 * nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DB } from '../../src/db/index.js';
import { fixtureScope } from '../support/child.js';
import { OPTIONS, jsonLines, makeDb, sediment, snapshot, useBuiltCli } from './helpers.js';

const scope = fixtureScope('sediment-cli-copies-');
useBuiltCli();
let pristine: string;
let expected: Map<string, unknown>;

function copy(): string {
  const d = path.join(scope.tempDir(), 'db');
  fs.cpSync(pristine, d, { recursive: true });
  return d;
}

async function entries(dir: string): Promise<[unknown, unknown][]> {
  const db = await DB.open(dir, { ...OPTIONS, readOnly: true });
  try {
    return await db.iterator().all();
  } finally {
    await db.close();
  }
}

beforeAll(async () => {
  pristine = path.join(scope.tempDir(), 'db');
  expected = await makeDb(pristine);
});

describe.concurrent('sediment copies', () => {
  it('checkpoint: a copy with every entry, tables linked; a target that is not empty is refused (exit 4)', async () => {
    const dir = copy();
    const target = path.join(scope.tempDir(), 'cp');
    const run = await sediment(['checkpoint', dir, target]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^checkpoint of .* in .*: [1-9]\d* table\(s\) linked, 0 copied, \d+ WAL segment\(s\), \d+ bytes copied in \d+ ms\n$/,
    );
    expect(await entries(target)).toEqual([...expected]);
    const again = await sediment(['checkpoint', dir, target]);
    expect(again.code).toBe(4);
    expect(again.stderr).toMatch(/ENOTEMPTY/);
  });

  it('backup, backup --keep, backups and restore [--id]', async () => {
    const dir = copy();
    const backups = path.join(scope.tempDir(), 'backups');
    const first = await sediment(['backup', dir, backups]);
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(
      /^backup 1 of .*: \d+ file\(s\), \d+ bytes; copied \d+ file\(s\), \d+ bytes \(0 table\(s\) already there\)/,
    );
    const db = await DB.open(dir, OPTIONS);
    await db.put('later', 1);
    await db.close();
    const second = await sediment(['backup', dir, backups]);
    expect(second.stdout).toMatch(/^backup 2 .*\([1-9]\d* table\(s\) already there\)/);
    const third = await sediment(['backup', dir, backups, '--keep', '2']);
    expect(third.code).toBe(0);
    expect(third.stdout).toMatch(/deleted backup\(s\) \[1\]/);
    const list = await sediment(['backups', backups]);
    expect(list.code).toBe(0);
    expect(jsonLines(list).map((b) => (b as { id: number }).id)).toEqual([2, 3]);

    const latest = path.join(scope.tempDir(), 'latest');
    const restored = await sediment(['restore', backups, latest]);
    expect(restored).toMatchObject({ code: 0, stderr: '' });
    expect(restored.stdout).toMatch(/^restored backup 3 of /);
    expect(await entries(latest)).toEqual([...new Map([...expected, ['later', 1]])].sort(([a], [b]) => (String(a) < String(b) ? -1 : 1)));
    const two = path.join(scope.tempDir(), 'two');
    expect((await sediment(['restore', backups, two, '--id', '2'])).code).toBe(0);
    expect((await entries(two)).length).toBe(expected.size + 1);
  });

  it('exit 3 while the DB is open elsewhere, 4 for a missing or damaged backup, 2 for bad arguments', async () => {
    const dir = copy();
    const backups = path.join(scope.tempDir(), 'backups');
    expect((await sediment(['backup', dir, backups])).code).toBe(0);
    const before = snapshot(backups);
    const db = await DB.open(dir, OPTIONS);
    const locked = await sediment(['backup', dir, backups]);
    await db.close();
    expect(locked.code).toBe(3);
    expect(locked.stderr).toMatch(/LOCKED/);

    const target = path.join(scope.tempDir(), 't');
    const missing = await sediment(['restore', backups, target, '--id', '9']);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/ENOENT/);
    const table = fs
      .readdirSync(path.join(backups, 'shared'))
      .map((d) => path.join(backups, 'shared', d, fs.readdirSync(path.join(backups, 'shared', d))[0]!))[0]!;
    const bytes = fs.readFileSync(table);
    bytes[bytes.length >> 1]! ^= 0x01;
    fs.writeFileSync(table, bytes);
    const damaged = await sediment(['restore', backups, target]);
    expect(damaged.code).toBe(4);
    expect(damaged.stderr).toContain(`CORRUPTION: corruption in ${table}`);
    expect(fs.existsSync(target)).toBe(false);
    const bad = await Promise.all([
      sediment(['restore', backups]),
      sediment(['restore', backups, target, '--id', 'x']),
      sediment(['backup', dir]),
    ]);
    for (const run of bad) {
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/Usage: sediment/);
    }
    bytes[bytes.length >> 1]! ^= 0x01;
    fs.writeFileSync(table, bytes);
    expect(snapshot(backups)).toEqual(before);
  });
});
