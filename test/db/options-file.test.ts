/**
 * The OPTIONS file (issue #9, point 5b): the options that decide what the stored bytes mean are
 * kept in the DB directory, and a reopen with other ones is refused instead of returning wrong
 * values.
 *
 * First the file functions on the in-memory file system: format, round trip, damage (every bit
 * flip, every truncation), crashes at every step of a write (the tmp file written but not
 * renamed included), I/O errors, the checks. Then `DB.open`: mismatches refused with
 * INVALID_CONFIG and nothing changed on disk, OPTIONS durable before the first CURRENT at every
 * crash point, a DB without OPTIONS (made by 0.1.0) adopted, lowered size limits not costing
 * acknowledged WAL records.
 */
import { describe, expect, it } from 'vitest';
import { DB } from '../../src/db/index.js';
import type { DBOptions } from '../../src/db/options.js';
import {
  DB_FORMAT_VERSION,
  LEGACY_MAX_KEY_SIZE,
  LEGACY_MAX_VALUE_SIZE,
  checkPersistedOptions,
  decodeOptionsFile,
  encodeOptionsFile,
  openOptionsFile,
  persistedOptionsOf,
  readOptionsFile,
  writeOptionsFile,
  type PersistedOptions,
} from '../../src/db/options-file.js';
import { OPTIONS_FILE, OPTIONS_TMP_FILE } from '../../src/db/filenames.js';
import { CorruptionError, InvalidConfigError, IoError } from '../../src/errors.js';
import { FaultFileSystem, crashAtMutatingOp, failNth } from '../../src/fs/fault.js';
import { MemFileSystem, type CrashOptions } from '../../src/fs/mem.js';
import { maskedCrc32c } from '../../src/util/crc32c.js';

const DIR = '/db';
const FILE = `${DIR}/${OPTIONS_FILE}`;
const TMP = `${DIR}/${OPTIONS_TMP_FILE}`;
const KiB = 1024;
const MiB = 1024 * KiB;

const A: PersistedOptions = {
  formatVersion: DB_FORMAT_VERSION,
  keyEncoding: 'utf8',
  valueEncoding: 'msgpack',
  maxKeySize: 64 * KiB,
  maxValueSize: 16 * MiB,
};
const B: PersistedOptions = {
  formatVersion: DB_FORMAT_VERSION,
  keyEncoding: 'binary',
  valueEncoding: 'json',
  maxKeySize: 100,
  maxValueSize: 1000,
};

const resolved = (p: PersistedOptions): Parameters<typeof persistedOptionsOf>[0] => ({
  keyEncoding: p.keyEncoding,
  valueEncoding: p.valueEncoding,
  maxKeySize: p.maxKeySize,
  maxValueSize: p.maxValueSize,
});

async function memWithDir(): Promise<MemFileSystem> {
  const mem = new MemFileSystem();
  await mem.mkdir(DIR);
  await mem.syncDir('/');
  return mem;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

/** A well-checksummed OPTIONS file with any header version and body: for content checks past the CRC. */
function craft(body: string, version = '1'): Buffer {
  const head = Buffer.from(`SDMTOPTS ${version}\n${body}\n`, 'latin1');
  return Buffer.concat([head, Buffer.from(`crc32c ${maskedCrc32c(head).toString(16).padStart(8, '0')}\n`, 'latin1')]);
}

const POLICIES: [string, CrashOptions][] = [
  ['drop', { unsyncedData: 'drop', unsyncedDirOps: 'drop' }],
  ['keep', { unsyncedData: 'keep', unsyncedDirOps: 'keep' }],
  ['data kept, dir ops dropped', { unsyncedData: 'keep', unsyncedDirOps: 'drop' }],
  ['data dropped, dir ops kept', { unsyncedData: 'drop', unsyncedDirOps: 'keep' }],
  ...[1, 2, 3, 4, 5].map((seed): [string, CrashOptions] => [
    `prefix ${seed}`,
    { unsyncedData: 'prefix', unsyncedDirOps: 'prefix', rng: seeded(seed) },
  ]),
];

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------

describe('the OPTIONS file format', () => {
  it('is three lines of text: header with version, JSON body, masked CRC-32C of the two', () => {
    const text = encodeOptionsFile(A).toString('latin1');
    const lines = text.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe('SDMTOPTS 1');
    expect(JSON.parse(lines[1]!)).toEqual(A);
    expect(lines[2]).toMatch(/^crc32c [0-9a-f]{8}$/);
    expect(lines[3]).toBe('');
    expect(encodeOptionsFile(A).equals(craft(lines[1]!))).toBe(true);
  });

  it('decodes what it encodes', () => {
    for (const p of [A, B]) expect(decodeOptionsFile(encodeOptionsFile(p), FILE)).toEqual(p);
  });

  it('persists the encodings and the size limits, and nothing else', () => {
    const p = persistedOptionsOf({
      keyEncoding: 'binary',
      valueEncoding: 'utf8',
      maxKeySize: 10,
      maxValueSize: 20,
      compression: 'none',
      memtableSize: 4096,
    } as never);
    expect(p).toEqual({ formatVersion: DB_FORMAT_VERSION, keyEncoding: 'binary', valueEncoding: 'utf8', maxKeySize: 10, maxValueSize: 20 });
  });

  it('fields it does not know are ignored (a newer sediment adds only fields an older one may ignore, or bumps the version)', () => {
    const body = JSON.stringify({ ...A, someFutureHint: true });
    expect(decodeOptionsFile(craft(body), FILE)).toEqual(A);
  });

  const badContent: [string, Buffer, RegExp][] = [
    ['a newer file version', craft(JSON.stringify(A), '2'), /version 2/],
    ['a version that is not a number', craft(JSON.stringify(A), 'x'), /header/],
    ['a newer DB format version', craft(JSON.stringify({ ...A, formatVersion: DB_FORMAT_VERSION + 1 })), /format version/],
    ['a body that is not JSON', craft('{"keyEncoding":'), /JSON/],
    ['a body that is an array', craft('[]'), /shape|field/],
    ['an unknown key encoding', craft(JSON.stringify({ ...A, keyEncoding: 'latin1' })), /keyEncoding/],
    ['an unknown value encoding', craft(JSON.stringify({ ...A, valueEncoding: 'cbor' })), /valueEncoding/],
    ['a missing value encoding', craft(JSON.stringify({ ...A, valueEncoding: undefined })), /valueEncoding/],
    ['a negative maxValueSize', craft(JSON.stringify({ ...A, maxValueSize: -1 })), /maxValueSize/],
    ['a fractional maxKeySize', craft(JSON.stringify({ ...A, maxKeySize: 1.5 })), /maxKeySize/],
  ];
  for (const [what, bytes, reason] of badContent) {
    it(`a well-checksummed file with ${what} is a CorruptionError naming the file`, () => {
      let err: unknown;
      try {
        decodeOptionsFile(bytes, FILE);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file).toBe(FILE);
      expect((err as CorruptionError).reason).toMatch(reason);
    });
  }
});

describe('readOptionsFile and writeOptionsFile', () => {
  it('read: undefined when there is no OPTIONS file; after a write, what was written', async () => {
    const mem = await memWithDir();
    expect(await readOptionsFile(mem, DIR)).toBeUndefined();
    await writeOptionsFile(mem, DIR, A);
    expect(await readOptionsFile(mem, DIR)).toEqual(A);
    expect(mem.listFiles()).toEqual([FILE]);
    await writeOptionsFile(mem, DIR, B);
    expect(await readOptionsFile(mem, DIR)).toEqual(B);
    expect(mem.listFiles()).toEqual([FILE]);
  });

  it('write is durable when it resolves: a power loss right after keeps the new file', async () => {
    const mem = await memWithDir();
    await writeOptionsFile(mem, DIR, A);
    expect(await readOptionsFile(mem.crashClone(), DIR)).toEqual(A);
    await writeOptionsFile(mem, DIR, B);
    expect(await readOptionsFile(mem.crashClone(), DIR)).toEqual(B);
  });

  it('every single bit flip is a CorruptionError naming the file', async () => {
    const mem = await memWithDir();
    await writeOptionsFile(mem, DIR, A);
    const good = mem.readFileBytes(FILE);
    for (let i = 0; i < good.length * 8; i++) {
      const bad = good.slice();
      bad[i >> 3]! ^= 1 << (i & 7);
      mem.writeFileBytes(FILE, bad);
      const err = await rejection(readOptionsFile(mem, DIR));
      expect(err, `bit ${i}`).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file).toBe(FILE);
    }
  });

  it('every truncation, an empty file and appended bytes are CorruptionErrors naming the file', async () => {
    const mem = await memWithDir();
    await writeOptionsFile(mem, DIR, A);
    const good = mem.readFileBytes(FILE);
    const damaged = [
      ...Array.from({ length: good.length }, (_, n) => good.subarray(0, n)),
      Buffer.concat([good, Buffer.from('\n')]),
      Buffer.concat([good, good]),
      Buffer.alloc(good.length),
    ];
    for (const bad of damaged) {
      mem.writeFileBytes(FILE, bad);
      const err = await rejection(readOptionsFile(mem, DIR));
      expect(err, `${bad.length} bytes`).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).file).toBe(FILE);
    }
  });

  it('a huge file is a CorruptionError, not read whole', async () => {
    const mem = await memWithDir();
    mem.writeFileBytes(FILE, new Uint8Array(8 * MiB));
    expect(await rejection(readOptionsFile(mem, DIR))).toBeInstanceOf(CorruptionError);
  });

  it('a crash between the tmp write and the rename leaves the old file (or none), and the next write succeeds', async () => {
    for (const previous of [A, undefined]) {
      const mem = await memWithDir();
      if (previous) await writeOptionsFile(mem, DIR, previous);
      // The tmp file complete and synced, the rename never happened.
      mem.writeFileBytes(TMP, encodeOptionsFile(B));
      expect(await readOptionsFile(mem, DIR)).toEqual(previous);
      // A torn tmp file is no different.
      mem.writeFileBytes(TMP, encodeOptionsFile(B).subarray(0, 7));
      expect(await readOptionsFile(mem, DIR)).toEqual(previous);
      await writeOptionsFile(mem, DIR, B);
      expect(await readOptionsFile(mem, DIR)).toEqual(B);
      expect(mem.listFiles()).toEqual([FILE]);
    }
  });

  it('a power loss at any step of a write leaves the old or the new file, never a damaged one, and the next write succeeds', async () => {
    for (const previous of [A, undefined]) {
      let images = 0;
      for (let k = 0; ; k++) {
        const mem = await memWithDir();
        if (previous) await writeOptionsFile(mem, DIR, previous);
        const clones: [string, MemFileSystem][] = [];
        const fs = new FaultFileSystem(
          mem,
          crashAtMutatingOp(k, () => {
            for (const [name, policy] of POLICIES) clones.push([name, mem.crashClone(policy)]);
          }),
        );
        const done = await writeOptionsFile(fs, DIR, B).then(
          () => true,
          (err: unknown) => {
            expect(err).toBeInstanceOf(IoError);
            return false;
          },
        );
        for (const [name, image] of clones) {
          images++;
          const got = await readOptionsFile(image, DIR);
          expect([previous, B], `crash before mutating op ${k}, ${name}`).toContainEqual(got);
          await writeOptionsFile(image, DIR, A);
          expect(await readOptionsFile(image, DIR)).toEqual(A);
        }
        if (done) break;
      }
      expect(images).toBeGreaterThan(20);
    }
  });

  it('I/O errors are IoErrors naming the file, and a failed write leaves the old file', async () => {
    const mem = await memWithDir();
    await writeOptionsFile(mem, DIR, A);
    for (const kind of ['write', 'datasync', 'rename', 'syncDir'] as const) {
      const fs = new FaultFileSystem(mem, failNth(kind, 0, 'EIO'));
      const err = await rejection(writeOptionsFile(fs, DIR, B));
      expect(err, kind).toBeInstanceOf(IoError);
      expect((err as IoError).errno).toBe('EIO');
      expect([FILE, TMP, DIR]).toContain((err as IoError).file);
      if (kind !== 'syncDir') expect(await readOptionsFile(mem, DIR), kind).toEqual(A);
      await writeOptionsFile(mem, DIR, A);
    }
    const err = await rejection(readOptionsFile(new FaultFileSystem(mem, failNth('read', 0, 'EIO')), DIR));
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).file).toBe(FILE);
  });
});

describe('checkPersistedOptions', () => {
  it('no stored options (a DB made by 0.1.0): the current encodings are adopted, with the largest limits 0.1.0 accepted', () => {
    // Nothing says which limits wrote its WAL: recovery must read every record 0.1.0 could have acknowledged.
    expect(checkPersistedOptions(undefined, resolved(B))).toEqual({
      ...B,
      formatVersion: 1, // its WAL holds single-op records: the open upgrades it (db.ts #upgrade)
      maxKeySize: LEGACY_MAX_KEY_SIZE,
      maxValueSize: LEGACY_MAX_VALUE_SIZE,
    });
  });

  it('the same options pass unchanged', () => {
    expect(checkPersistedOptions(A, resolved(A))).toEqual(A);
  });

  for (const option of ['keyEncoding', 'valueEncoding'] as const) {
    it(`another ${option} is an InvalidConfigError naming the option and both values`, () => {
      const stored = { ...A, [option]: B[option] };
      let err: unknown;
      try {
        checkPersistedOptions(stored, resolved(A));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidConfigError);
      expect((err as InvalidConfigError).option).toBe(option);
      expect((err as InvalidConfigError).code).toBe('INVALID_CONFIG');
      expect((err as Error).message).toContain(`'${A[option]}'`);
      expect((err as Error).message).toContain(`'${B[option]}'`);
    });
  }

  it('size limits are high-water marks: a larger limit raises the stored one, a smaller one keeps it', () => {
    expect(checkPersistedOptions(A, { ...resolved(A), maxKeySize: A.maxKeySize * 2 })).toEqual({ ...A, maxKeySize: A.maxKeySize * 2 });
    expect(checkPersistedOptions(A, { ...resolved(A), maxValueSize: 10 })).toEqual(A);
    expect(checkPersistedOptions(A, { ...resolved(A), maxKeySize: 1, maxValueSize: 32 * MiB })).toEqual({ ...A, maxValueSize: 32 * MiB });
  });
});

describe('openOptionsFile (what DB.open does)', () => {
  it('a fresh directory gets the current options, even over a stale or damaged OPTIONS of an open that never committed', async () => {
    const mem = await memWithDir();
    expect(await openOptionsFile(mem, DIR, resolved(A), { fresh: true })).toEqual(A);
    expect(await readOptionsFile(mem, DIR)).toEqual(A);
    expect(await openOptionsFile(mem, DIR, resolved(B), { fresh: true })).toEqual(B);
    mem.writeFileBytes(FILE, Buffer.from('garbage'));
    expect(await openOptionsFile(mem, DIR, resolved(A), { fresh: true })).toEqual(A);
    expect(await readOptionsFile(mem, DIR)).toEqual(A);
  });

  it('an existing DB without OPTIONS adopts the current encodings (and the largest limits 0.1.0 accepted) and writes them', async () => {
    const mem = await memWithDir();
    const adopted = { ...B, formatVersion: 1, maxKeySize: LEGACY_MAX_KEY_SIZE, maxValueSize: LEGACY_MAX_VALUE_SIZE };
    expect(await openOptionsFile(mem, DIR, resolved(B), { fresh: false })).toEqual(adopted);
    expect(await readOptionsFile(mem.crashClone(), DIR)).toEqual(adopted);
  });

  it('an existing DB with matching OPTIONS: nothing is written', async () => {
    const mem = await memWithDir();
    await writeOptionsFile(mem, DIR, A);
    const fs = new FaultFileSystem(mem);
    expect(await openOptionsFile(fs, DIR, { ...resolved(A), maxValueSize: 5 }, { fresh: false })).toEqual(A);
    expect(fs.mutatingOps).toBe(0);
  });

  it('an existing DB opened with larger limits: OPTIONS is rewritten with them', async () => {
    const mem = await memWithDir();
    await writeOptionsFile(mem, DIR, A);
    const raised = { ...A, maxValueSize: 32 * MiB };
    expect(await openOptionsFile(mem, DIR, resolved(raised), { fresh: false })).toEqual(raised);
    expect(await readOptionsFile(mem.crashClone(), DIR)).toEqual(raised);
  });

  it('an existing DB opened with another encoding: InvalidConfigError, nothing written', async () => {
    const mem = await memWithDir();
    await writeOptionsFile(mem, DIR, A);
    const before = mem.readFileBytes(FILE);
    const fs = new FaultFileSystem(mem);
    const err = await rejection(openOptionsFile(fs, DIR, { ...resolved(A), valueEncoding: 'utf8' }, { fresh: false }));
    expect(err).toBeInstanceOf(InvalidConfigError);
    expect((err as InvalidConfigError).option).toBe('valueEncoding');
    expect(fs.mutatingOps).toBe(0);
    expect(Buffer.from(mem.readFileBytes(FILE)).equals(before)).toBe(true);
  });

  it('an existing DB with a damaged OPTIONS: CorruptionError, nothing written', async () => {
    const mem = await memWithDir();
    mem.writeFileBytes(FILE, encodeOptionsFile(A).subarray(0, 20));
    const fs = new FaultFileSystem(mem);
    const err = await rejection(openOptionsFile(fs, DIR, resolved(A), { fresh: false }));
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).file).toBe(FILE);
    expect(fs.mutatingOps).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Through DB.open: these hold once db.ts calls openOptionsFile (see src/db/options-file.ts).

async function openDb<K = string, V = unknown>(fs: MemFileSystem | FaultFileSystem, options: DBOptions = {}): Promise<DB<K, V>> {
  return DB.open<K, V>(DIR, { fsync: 'os', ...options, fs });
}

function snapshotFiles(mem: MemFileSystem): Map<string, string> {
  return new Map(mem.listFiles().map((f) => [f, Buffer.from(mem.readFileBytes(f)).toString('hex')]));
}

describe('DB.open and the OPTIONS file', () => {
  it('a new DB writes OPTIONS with its encodings and limits', async () => {
    const mem = new MemFileSystem();
    const db = await openDb(mem, { keyEncoding: 'binary', valueEncoding: 'json', maxKeySize: 100, maxValueSize: 1000 });
    await db.close();
    expect(await readOptionsFile(mem, DIR)).toEqual(B);
  });

  it("the issue #9 case: utf8 '5' reopened as msgpack is refused with INVALID_CONFIG naming valueEncoding, nothing changed on disk", async () => {
    const mem = new MemFileSystem();
    let db = await openDb<string, string>(mem, { valueEncoding: 'utf8' });
    await db.put('n', '5');
    await db.close();
    const before = snapshotFiles(mem);
    for (const valueEncoding of ['msgpack', 'json', 'binary', undefined] as const) {
      const err = await rejection(openDb(mem, valueEncoding === undefined ? {} : { valueEncoding }));
      expect(err, String(valueEncoding)).toBeInstanceOf(InvalidConfigError);
      expect((err as InvalidConfigError).option).toBe('valueEncoding');
      expect((err as Error).message).toContain("'utf8'");
      expect((err as Error).message).toContain(`'${valueEncoding ?? 'msgpack'}'`);
      expect(snapshotFiles(mem)).toEqual(before);
    }
    db = await openDb<string, string>(mem, { valueEncoding: 'utf8' });
    expect(await db.get('n')).toBe('5');
    await db.close();
  });

  it('another keyEncoding is refused with INVALID_CONFIG naming keyEncoding', async () => {
    const mem = new MemFileSystem();
    let db = await openDb<Uint8Array, unknown>(mem, { keyEncoding: 'binary' });
    await db.put(new Uint8Array([0xff]), 1);
    await db.close();
    const err = await rejection(openDb(mem));
    expect(err).toBeInstanceOf(InvalidConfigError);
    expect((err as InvalidConfigError).option).toBe('keyEncoding');
    db = await openDb<Uint8Array, unknown>(mem, { keyEncoding: 'binary' });
    expect(await db.get(new Uint8Array([0xff]))).toBe(1);
    await db.close();
  });

  it('a DB without OPTIONS (made by 0.1.0) adopts the options of its next open, which then bind', async () => {
    const mem = new MemFileSystem();
    let db = await openDb<string, string>(mem, { valueEncoding: 'utf8' });
    await db.put('a', 'x');
    await db.close();
    await mem.unlink(FILE);
    await mem.syncDir(DIR);
    db = await openDb<string, string>(mem, { valueEncoding: 'utf8' });
    expect(await db.get('a')).toBe('x');
    await db.close();
    expect((await readOptionsFile(mem, DIR))?.valueEncoding).toBe('utf8');
    expect(await rejection(openDb(mem, { valueEncoding: 'json' }))).toBeInstanceOf(InvalidConfigError);
  });

  it('a damaged OPTIONS rejects the open with CorruptionError naming it', async () => {
    const mem = new MemFileSystem();
    const db = await openDb(mem);
    await db.put('a', 1);
    await db.close();
    const bad = mem.readFileBytes(FILE);
    bad[15]! ^= 0x04;
    mem.writeFileBytes(FILE, bad);
    const err = await rejection(openDb(mem));
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).file).toBe(FILE);
  });

  it('a leftover OPTIONS.tmp is removed by the next open', async () => {
    const mem = new MemFileSystem();
    let db = await openDb(mem);
    await db.close();
    mem.writeFileBytes(TMP, encodeOptionsFile(B));
    db = await openDb(mem);
    await db.close();
    expect(mem.listFiles()).not.toContain(TMP);
    expect(await readOptionsFile(mem, DIR)).toEqual(A);
  });

  it('OPTIONS is durable before the first CURRENT: at every crash point of a first open, a committed DB has its OPTIONS', async () => {
    const wanted: PersistedOptions = { ...A, valueEncoding: 'utf8' };
    let committed = 0;
    let uncommitted = 0;
    for (let k = 0; ; k++) {
      const mem = new MemFileSystem();
      const clones: [string, MemFileSystem][] = [];
      const fs = new FaultFileSystem(
        mem,
        crashAtMutatingOp(k, () => {
          for (const [name, policy] of POLICIES) clones.push([name, mem.crashClone(policy)]);
        }),
      );
      const db = await openDb(fs, { valueEncoding: 'utf8' }).catch(() => undefined);
      for (const [name, image] of clones) {
        const where = `crash before mutating op ${k}, ${name}`;
        if (image.listFiles().includes(`${DIR}/CURRENT`)) {
          committed++;
          expect(await readOptionsFile(image, DIR), where).toEqual(wanted);
          expect(await rejection(openDb(image, { valueEncoding: 'msgpack' })), where).toBeInstanceOf(InvalidConfigError);
        } else {
          uncommitted++;
          // Nothing was committed: any options open it, and become its options.
          const other = await openDb(image, { valueEncoding: 'json' });
          await other.close();
          expect((await readOptionsFile(image, DIR))?.valueEncoding, where).toBe('json');
        }
      }
      if (db) {
        await db.close();
        break;
      }
    }
    expect(committed).toBeGreaterThan(0);
    expect(uncommitted).toBeGreaterThan(0);
  });

  it('reopening with lower maxKeySize/maxValueSize keeps an acknowledged large record at the WAL tail (limits are high-water marks)', async () => {
    const mem = new MemFileSystem();
    let db = await openDb<string, string>(mem, { valueEncoding: 'utf8', fsync: 'always' });
    await db.put('b', 'y');
    await db.put('a', 'x'.repeat(1000)); // acknowledged and synced, still only in the WAL
    await db.close();
    db = await openDb<string, string>(mem, { valueEncoding: 'utf8', fsync: 'always', maxKeySize: 10, maxValueSize: 100 });
    expect(db.stats().walRecovery.corruptionDetected).toBe(false);
    expect((await db.get('a'))?.length).toBe(1000);
    expect(await db.get('b')).toBe('y');
    // The lower limits hold for new writes.
    await expect(db.put('c', 'z'.repeat(101))).rejects.toThrow(RangeError);
    await db.close();
    expect(await readOptionsFile(mem, DIR)).toEqual({ ...A, valueEncoding: 'utf8' });
  });

  it('compression is not persisted: tables record their own, and a reopen with another one reads them', async () => {
    const mem = new MemFileSystem();
    let db = await openDb(mem, { compression: 'lz4' });
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, 'v'.repeat(200));
    await db.flush();
    await db.close();
    db = await openDb(mem, { compression: 'none' });
    expect(await db.get('k7')).toBe('v'.repeat(200));
    await db.put('new', 1);
    await db.flush();
    await db.close();
    db = await openDb(mem, { compression: 'lz4' });
    expect(await db.get('new')).toBe(1);
    expect(await db.get('k49')).toBe('v'.repeat(200));
    await db.close();
  });
});
