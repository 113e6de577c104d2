/**
 * `sediment verify`, run as a child process on real directories: intact, damaged (a flipped byte
 * in a table block, a WAL segment, the manifest, a slot of the WAL's state file; a deleted
 * segment; several at once), cut the way a crash cuts, and held open by a live process. Verify
 * must name every damaged file and offset, exit 1 for damage, 0 only when everything is
 * intact, 3 while a live process holds the DB, and never change a byte.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixtureScope, spawnFixture } from '../support/child.js';
import { ROOT, filesIn, flip, makeDb, sediment, snapshot, useBuiltCli, type Run } from './helpers.js';

const scope = fixtureScope('sediment-cli-verify-');
useBuiltCli();
let pristine: string;

/** A copy of the pristine DB to damage. */
function copy(): string {
  const d = path.join(scope.tempDir(), 'db');
  fs.cpSync(pristine, d, { recursive: true });
  return d;
}

function segments(dir: string): string[] {
  return filesIn(path.join(dir, 'wal'), /^\d{16}\.wal$/);
}

/** The DAMAGED lines of a text report, as [file, offset] pairs. */
function damaged(run: Run): [string, number | undefined][] {
  return run.stdout
    .split('\n')
    .filter((l) => l.startsWith('DAMAGED  '))
    .map((l) => {
      const m = /^DAMAGED {2}(\S+)(?: at offset (\d+))?: /.exec(l);
      if (!m) throw new Error(`unexpected line: ${l}`);
      return [m[1]!, m[2] === undefined ? undefined : Number(m[2])];
    });
}

beforeAll(async () => {
  pristine = path.join(scope.tempDir(), 'db');
  await makeDb(pristine);
  expect(segments(pristine).length).toBeGreaterThanOrEqual(3);
  expect(filesIn(pristine, /\.sst$/).length).toBeGreaterThanOrEqual(2);
});

describe.concurrent('sediment verify', () => {
  it('passes an intact DB: every file listed, exit 0, nothing on stderr, no byte changed', async () => {
    const dir = copy();
    const before = snapshot(dir);
    const run = await sediment(['verify', dir]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^intact: \d+ files checked/m);
    for (const f of [...filesIn(dir, /\.sst$|^MANIFEST-|^OPTIONS$|^CURRENT$/), ...segments(dir).map((s) => `wal/${s}`), 'wal/SEGMENTS']) {
      expect(run.stdout).toContain(`ok       ${f}  `);
    }
    expect(damaged(run)).toEqual([]);
    expect(snapshot(dir)).toEqual(before);
    expect(filesIn(dir, /^LOCK/)).toEqual([]);
  });

  it('names a table whose data block has a flipped byte, with the block offset', async () => {
    const dir = copy();
    const table = filesIn(dir, /\.sst$/)[0]!;
    flip(path.join(dir, table), 10); // inside data block 0, which starts the file
    const before = snapshot(dir);
    const run = await sediment(['verify', dir]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('');
    expect(damaged(run)).toEqual([[table, 0]]);
    expect(run.stdout).toMatch(new RegExp(`DAMAGED {2}${table} at offset 0: data block 0 .*checksum`));
    expect(run.stdout).toMatch(new RegExp(`^DAMAGED: 1 problem\\(s\\) in 1 file\\(s\\) of .*: ${table}$`, 'm'));
    expect(snapshot(dir)).toEqual(before);
  });

  it('names a WAL segment with a flipped byte, with the offset of the damaged record', async () => {
    const dir = copy();
    const seg = segments(dir)[1]!;
    flip(path.join(dir, 'wal', seg), 100);
    const run = await sediment(['verify', dir]);
    expect(run.code).toBe(1);
    const found = damaged(run);
    expect(found).toHaveLength(1);
    expect(found[0]![0]).toBe(`wal/${seg}`);
    expect(found[0]![1]).toBeGreaterThanOrEqual(32); // after the segment header
    expect(found[0]![1]).toBeLessThanOrEqual(100);
    expect(run.stdout).toMatch(/checksum mismatch \(a valid record follows at offset \d+\)/);
  });

  it('names the manifest with a flipped byte, and a segment that was deleted', async () => {
    const dir = copy();
    const manifest = filesIn(dir, /^MANIFEST-/)[0]!;
    flip(path.join(dir, manifest), fs.statSync(path.join(dir, manifest)).size - 5);
    const seg = segments(dir)[1]!;
    fs.rmSync(path.join(dir, 'wal', seg));
    const run = await sediment(['verify', dir]);
    expect(run.code).toBe(1);
    expect(damaged(run)).toEqual([
      [manifest, 16], // the checksum field
      [`wal/${seg}`, undefined],
    ]);
    expect(run.stdout).toMatch(new RegExp(`DAMAGED {2}wal/${seg}: missing`));
    // With the manifest unreadable, every table file is still checked.
    for (const t of filesIn(dir, /\.sst$/)) expect(run.stdout).toContain(`ok       ${t}  not in any readable manifest`);
  });

  it('names every damaged file at once, as JSON with --json, and changes none of them', async () => {
    const dir = copy();
    const [t1, t2] = filesIn(dir, /\.sst$/);
    flip(path.join(dir, t1!), 10);
    flip(path.join(dir, t2!), fs.statSync(path.join(dir, t2!)).size - 1); // the footer
    const segs = segments(dir);
    flip(path.join(dir, 'wal', segs[0]!), 5); // the segment header
    flip(path.join(dir, 'wal', 'SEGMENTS'), 20); // one slot of the state file
    const newest = path.join(dir, 'wal', segs[segs.length - 1]!);
    fs.truncateSync(newest, fs.statSync(newest).size - 3); // a torn tail: what a crash leaves
    const before = snapshot(dir);
    const run = await sediment(['verify', dir, '--json']);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('');
    const report = JSON.parse(run.stdout) as {
      ok: boolean;
      damaged: { file: string; offset?: number; message: string }[];
      notes: { file: string; message: string }[];
    };
    expect(report.ok).toBe(false);
    expect(report.damaged.map((d) => d.file).sort()).toEqual([t1!, t2!, `wal/${segs[0]}`, 'wal/SEGMENTS'].sort());
    expect(report.damaged.find((d) => d.file === t1)).toMatchObject({ offset: 0 });
    expect(report.damaged.find((d) => d.file === `wal/${segs[0]}`)).toMatchObject({
      offset: 0,
      message: expect.stringMatching(/segment header/),
    });
    expect(report.damaged.find((d) => d.file === 'wal/SEGMENTS')).toMatchObject({ offset: 0, message: expect.stringMatching(/slot 0/) });
    // The torn tail is a note: the next open truncates it.
    expect(report.notes).toEqual([
      expect.objectContaining({ file: `wal/${segs[segs.length - 1]}`, message: expect.stringMatching(/torn-record.*crash/) }),
    ]);
    expect(snapshot(dir)).toEqual(before);
  });

  it('passes a DB whose newest segment was cut by a crash, and leaves the cut in place', async () => {
    const dir = copy();
    const segs = segments(dir);
    const newest = path.join(dir, 'wal', segs[segs.length - 1]!);
    const size = fs.statSync(newest).size;
    fs.truncateSync(newest, size - 3);
    fs.appendFileSync(newest, Buffer.alloc(4096)); // and zeros, as preallocation leaves
    const run = await sediment(['verify', dir]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^note {5}wal\/\d{16}\.wal at offset \d+: torn-record/m);
    expect(fs.statSync(newest).size).toBe(size - 3 + 4096);
  });

  it('says LOCKED and exits 3 while a live process holds the DB; passes once it is gone', async () => {
    const dir = copy();
    // Its own set of children: the scope's afterEach kills every child of the file, and these
    // tests run concurrently.
    const live = new Set<ChildProcess>();
    const holder = spawnFixture('test/cli/holder.ts', { dir }, ROOT, live, () => '');
    try {
      await holder.ready;
      const [locked, put, get] = await Promise.all([
        sediment(['verify', dir]),
        sediment(['put', dir, 'k', '1']),
        sediment(['get', dir, 'held']),
      ]);
      expect(locked.code).toBe(3);
      expect(locked.stdout).toBe('');
      expect(locked.stderr).toMatch(/^sediment: LOCKED: .*held open by a live process/);
      expect(put.code).toBe(3);
      expect(put.stderr).toMatch(/^sediment: LOCKED: /);
      // Read-only commands work beside it.
      expect(get).toMatchObject({ code: 0, stdout: '"by a live process"\n', stderr: '' });
    } finally {
      holder.child.kill('SIGKILL');
      await holder.exited;
    }
    // A killed holder leaves its lock socket and preallocated zeros: neither is damage.
    const after = await sediment(['verify', dir]);
    expect(after.stderr).toBe('');
    expect(after.code).toBe(0);
  });

  it('exits 4 for a directory that is missing or holds no DB, 2 without a directory', async () => {
    const empty = scope.tempDir();
    const [missing, none, usage] = await Promise.all([
      sediment(['verify', path.join(empty, 'nope')]),
      sediment(['verify', empty]),
      sediment(['verify']),
    ]);
    expect(missing).toMatchObject({ code: 4, stdout: '' });
    expect(missing.stderr).toMatch(/no such directory/);
    expect(none).toMatchObject({ code: 4, stdout: '' });
    expect(none.stderr).toMatch(/no sediment database/);
    expect(fs.readdirSync(empty)).toEqual([]);
    expect(usage).toMatchObject({ code: 2, stdout: '' });
    expect(usage.stderr).toMatch(/missing required argument 'dir'[\s\S]*Usage: sediment verify/);
  });
});
