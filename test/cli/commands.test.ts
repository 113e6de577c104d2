/**
 * The other `sediment` commands, run as child processes on real directories: get, put, del,
 * dump (and --wal), scan, inspect, stats and compact; exit codes; usage on bad arguments;
 * encodings from the DB's OPTIONS file; stderr empty when piped, a progress bar on a terminal.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DB } from '../../src/db/index.js';
import { fixtureScope } from '../support/child.js';
import { OPTIONS, ROOT, command, filesIn, jsonLines, key, makeDb, sediment, snapshot, useBuiltCli } from './helpers.js';

const scope = fixtureScope('sediment-cli-');
useBuiltCli();
let pristine: string;
let expected: Map<string, unknown>;

function copy(): string {
  const d = path.join(scope.tempDir(), 'db');
  fs.cpSync(pristine, d, { recursive: true });
  return d;
}

beforeAll(async () => {
  pristine = path.join(scope.tempDir(), 'db');
  expected = await makeDb(pristine);
});

describe.concurrent('sediment', () => {
  it('put, del and get: values as JSON, get exits 1 (silently) for an absent key', async () => {
    const dir = copy();
    expect(await sediment(['put', dir, 'new', '{"a":[1,2,{"b":null}]}'])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await sediment(['del', dir, key('a', 1)])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await sediment(['put', dir, 'neg', '--ttl', '3600000', '--', '-5'])).toEqual({ code: 0, stdout: '', stderr: '' });
    const [got, deleted, neg] = await Promise.all([
      sediment(['get', dir, 'new']),
      sediment(['get', dir, key('a', 1)]),
      sediment(['get', dir, 'neg']),
    ]);
    expect(got).toEqual({ code: 0, stdout: '{"a":[1,2,{"b":null}]}\n', stderr: '' });
    expect(deleted).toEqual({ code: 1, stdout: '', stderr: '' });
    expect(neg).toEqual({ code: 0, stdout: '-5\n', stderr: '' });
    // And the application sees the CLI's writes.
    const db = await DB.open(dir, { readOnly: true });
    expect(await db.get('new')).toEqual({ a: [1, 2, { b: null }] });
    expect(await db.get(key('a', 1))).toBeUndefined();
    await db.close();
  });

  it('dump: every entry as a JSON line in key order; --gte, --lt, --limit, --reverse; read-only', async () => {
    const dir = copy();
    const before = snapshot(dir);
    const [all, slice] = await Promise.all([
      sediment(['dump', dir]),
      sediment(['dump', dir, '--gte', key('b', 10), '--lt', key('b', 20), '--limit', '4', '--reverse']),
    ]);
    expect(all.stderr).toBe('');
    expect(all.code).toBe(0);
    expect(jsonLines(all)).toEqual([...expected].map(([k, v]) => ({ key: k, value: v })));
    expect(slice).toMatchObject({ code: 0, stderr: '' });
    expect(jsonLines(slice)).toEqual([19, 18, 17, 16].map((i) => ({ key: key('b', i), value: expected.get(key('b', i)) })));
    expect(snapshot(dir)).toEqual(before);
  });

  it('dump --wal: the WAL records in log order with their positions, deletes and expiries', async () => {
    const run = await sediment(['dump', pristine, '--wal']);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const lines = jsonLines(run) as {
      position: { segmentId: number; offset: number };
      seq?: number;
      type: string;
      key: string;
      value?: unknown;
      expiresAt?: number;
      flushed: boolean;
    }[];
    for (let i = 1; i < lines.length; i++) {
      // The ops of one batch share its position; seqs grow by one along the log.
      const [a, b] = [lines[i - 1]!.position, lines[i]!.position];
      expect(a.segmentId < b.segmentId || (a.segmentId === b.segmentId && a.offset <= b.offset)).toBe(true);
      expect(lines[i]!.seq).toBe(lines[i - 1]!.seq! + 1);
    }
    const unflushed = lines.filter((l) => !l.flushed);
    expect(unflushed.map((l) => l.key)).toEqual([
      ...Array.from({ length: 150 }, (_, i) => key('b', i)),
      key('a', 3),
      'e:1',
      'e:2',
      key('c', 0),
      'e:ttl',
    ]);
    expect(unflushed.find((l) => l.key === key('a', 3))).toEqual({
      position: expect.any(Object),
      seq: expect.any(Number),
      type: 'del',
      key: key('a', 3),
      flushed: false,
    });
    expect(unflushed[unflushed.length - 1]).toMatchObject({ type: 'put', key: 'e:ttl', value: 'later', expiresAt: expect.any(Number) });
    expect(unflushed[1]).toMatchObject({ type: 'put', value: expected.get(key('b', 1)) });
  });

  it('scan: a prefix, and bounds where the inclusive one wins', async () => {
    const [prefix, bounds] = await Promise.all([
      sediment(['scan', pristine, '--prefix', 'e:']),
      sediment(['scan', pristine, '--gt', key('d', 1), '--gte', key('d', 1), '--lte', key('d', 4), '--lt', key('d', 2)]),
    ]);
    expect(prefix).toMatchObject({ code: 0, stderr: '' });
    expect(jsonLines(prefix)).toEqual([
      { key: 'e:1', value: true },
      { key: 'e:2', value: 2.5 },
      { key: 'e:ttl', value: 'later' },
    ]);
    expect(jsonLines(bounds)).toEqual([1, 2, 3, 4].map((i) => ({ key: key('d', i), value: `d${i}` })));
  });

  it('binary keys and values as base64, encodings from the OPTIONS file, a contradicting flag refused', async () => {
    const dir = path.join(scope.tempDir(), 'bin');
    const db = await DB.open(dir, { keyEncoding: 'binary', valueEncoding: 'binary' });
    await db.put(Buffer.from([0, 255, 1]), Buffer.from('raw bytes'));
    await db.close();
    const k = Buffer.from([0xfe, 0x00]).toString('base64');
    const v = Buffer.from([1, 2, 3, 250]).toString('base64');
    expect(await sediment(['put', dir, k, v])).toEqual({ code: 0, stdout: '', stderr: '' });
    const [get, dump, wrong, badKey] = await Promise.all([
      sediment(['get', dir, k, '--key-encoding', 'binary', '--value-encoding', 'binary']),
      sediment(['dump', dir]),
      sediment(['get', dir, k, '--value-encoding', 'json']),
      sediment(['get', dir, 'not base64!']),
    ]);
    expect(get).toEqual({ code: 0, stdout: `${v}\n`, stderr: '' });
    expect(jsonLines(dump)).toEqual([
      { key: Buffer.from([0, 255, 1]).toString('base64'), value: Buffer.from('raw bytes').toString('base64') },
      { key: k, value: v },
    ]);
    expect(wrong).toMatchObject({ code: 2, stdout: '' });
    expect(wrong.stderr).toMatch(/^sediment: invalid option valueEncoding: this DB was created with valueEncoding 'binary'/);
    expect(badKey).toMatchObject({ code: 2, stdout: '' });
    expect(badKey.stderr).toMatch(/key is not base64[\s\S]*Usage: sediment get/);
  });

  it('inspect: tables per level with key ranges, counts and sequence numbers, the WAL and its flushed position', async () => {
    const [json, text] = await Promise.all([sediment(['inspect', pristine, '--json']), sediment(['inspect', pristine])]);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    const r = JSON.parse(json.stdout) as {
      options: { keyEncoding: string; valueEncoding: string };
      manifest: { file: string; lastSequence: number; flushedThrough: { segmentId: number; offset: number } };
      levels: {
        level: number;
        tables: {
          file: string;
          entries: number;
          tombstones: number;
          minSeq: number;
          maxSeq: number;
          smallest: string;
          largest: string;
          size: number;
        }[];
      }[];
      wal: { segments: { file: string; size: number }[]; records: number; recordsAfterFlushed: number };
    };
    expect(r.options).toMatchObject({ keyEncoding: 'utf8', valueEncoding: 'msgpack' });
    expect(r.manifest.file).toBe(filesIn(pristine, /^MANIFEST-/)[0]);
    const l0 = r.levels[0]!.tables;
    expect(l0).toEqual([expect.objectContaining({ entries: 40, tombstones: 1, smallest: key('d', 0), largest: key('d', 39) })]);
    const l1 = r.levels[1]!.tables;
    expect(l1.reduce((a, t) => a + t.entries, 0)).toBe(300);
    expect(l1[0]!.smallest).toBe(key('a', 0));
    expect(l1[l1.length - 1]!.largest).toBe(key('c', 149));
    for (const t of [...l0, ...l1]) {
      expect(t.size).toBe(fs.statSync(path.join(pristine, t.file)).size);
      expect(t.minSeq).toBeLessThanOrEqual(t.maxSeq);
    }
    expect(r.manifest.lastSequence).toBe(341);
    expect(r.wal.segments.map((s) => s.file)).toEqual(filesIn(path.join(pristine, 'wal'), /\.wal$/).map((f) => `wal/${f}`));
    expect(r.wal.recordsAfterFlushed).toBe(155);
    expect(text).toMatchObject({ code: 0, stderr: '' });
    expect(text.stdout).toMatch(/^L0 +1 table\(s\)/m);
    expect(text.stdout).toMatch(
      new RegExp(`WAL flushed through ${r.manifest.flushedThrough.segmentId}:${r.manifest.flushedThrough.offset}`),
    );
    expect(text.stdout).toMatch(/1 tombstones +seq \d+\.\.\d+ +keys "d0000" \.\. "d0039"/);
  });

  it('stats: levels, sequence, memtable, WAL and disk usage as JSON', async () => {
    const run = await sediment(['stats', pristine]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const s = JSON.parse(run.stdout) as {
      tables: number;
      lastSequence: number;
      memtable: { entries: number };
      wal: { segments: number };
      disk: { tables: number; wal: number };
    };
    expect(s.tables).toBe(filesIn(pristine, /\.sst$/).length);
    expect(s.lastSequence).toBe(341 + 155);
    expect(s.memtable.entries).toBe(155);
    expect(s.wal.segments).toBe(filesIn(path.join(pristine, 'wal'), /\.wal$/).length);
    expect(s.disk.tables).toBeGreaterThan(0);
  });

  it('compact: one full compaction, the data unchanged, a summary on stdout and nothing on stderr', async () => {
    const dir = copy();
    const run = await sediment(['compact', dir]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^compacted .*: \d+ table\(s\), \d+ bytes -> \d+ table\(s\), \d+ bytes in \d+ ms\n$/);
    const db = await DB.open(dir, { ...OPTIONS, readOnly: true });
    expect(db.stats().levels[0]!.tables).toBe(0);
    expect(db.stats().memtable.entries).toBe(0);
    const entries = await db.iterator().all();
    await db.close();
    expect(entries).toEqual([...expected]);
  });

  it('exits 2 with the usage on bad arguments, having touched nothing', async () => {
    const dir = copy();
    const before = snapshot(dir);
    const runs = await Promise.all([
      sediment([]),
      sediment(['frobnicate', dir]),
      sediment(['get', dir]),
      sediment(['dump', dir, '--limit', 'ten']),
      sediment(['dump', dir, '--value-encoding', 'yaml']),
      sediment(['put', dir, 'k', 'not json', '--no-such-flag']),
      sediment(['put', dir, 'k', 'not json']),
    ]);
    for (const run of runs) {
      expect(run.code, run.stderr).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/Usage: sediment/);
    }
    expect(runs[6]!.stderr).toMatch(/under valueEncoding 'msgpack' the value is JSON/);
    expect(snapshot(dir)).toEqual(before);
    const help = await sediment(['--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/Exit codes:/);
  });

  it('exits 4 on corruption met while reading, and for a directory without a DB', async () => {
    const dir = copy();
    const table = filesIn(dir, /\.sst$/).find((t) => !fs.readFileSync(path.join(dir, t)).includes('d0000'))!;
    const bytes = fs.readFileSync(path.join(dir, table));
    bytes[10]! ^= 0xff;
    fs.writeFileSync(path.join(dir, table), bytes);
    const empty = scope.tempDir();
    const [dump, put] = await Promise.all([sediment(['dump', dir]), sediment(['put', empty, 'k', '1'])]);
    expect(dump.code).toBe(4);
    expect(dump.stderr).toMatch(/^sediment: CORRUPTION: corruption in .*\.sst at offset 0: .*\(sediment verify .* checks everything\)\n$/);
    expect(put).toMatchObject({ code: 4, stdout: '' });
    expect(put.stderr).toMatch(/no sediment database in/);
    expect(fs.readdirSync(empty)).toEqual([]);
  });

  it('stops quietly when the reader of its output goes away (dump | head)', async () => {
    const [exe, ...pre] = command();
    const child = spawn(exe!, [...pre, 'dump', pristine], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  const hasScript = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!hasScript)('draws a progress bar on stderr only when it is a terminal', async () => {
    // `script` gives the command a terminal; its stdout goes to /dev/null, so what comes back is stderr.
    const cmd = `${command()
      .map((a) => `'${a}'`)
      .join(' ')} verify '${pristine}' > /dev/null`;
    const tty = await new Promise<string>((resolve) => {
      const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.once('close', () => resolve(out));
    });
    expect(tty).toMatch(/verify \[[^\]]*\] \d+% \| \d+\/\d+ bytes/);
  });
});
