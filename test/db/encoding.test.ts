/**
 * Key and value encodings (issue #9, points 4 and 5a): keys round-trip or are refused, and
 * values that do not decode fail with a typed `DecodeError` carrying the key.
 *
 * Unit tests of `encodeKey` / `decodeKey` / `decodeValue`, then the same rules through `DB`
 * on the in-memory file system (keys refused before anything is written; iterator bounds exempt;
 * bytes another writer put in the WAL reading back as `DecodeError`, never as a wrong value).
 */
import { fc, test as fcTest } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { DB } from '../../src/db/index.js';
import { decodeKey, decodeValue, encodeKey, encodeValue, VALUE_ENCODINGS, type ValueEncoding } from '../../src/db/encoding.js';
import { DecodeError, SedimentError } from '../../src/errors.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { Record } from '../../src/wal/record.js';
import { Wal } from '../../src/wal/wal.js';
import { footprint } from './helpers/harness.js';

const DIR = '/db';
const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Byte strings that are not UTF-8, each for its own reason. */
const NOT_UTF8: [string, Uint8Array][] = [
  ['0xff (never in UTF-8)', bytes(0xff)],
  ['0xfe (never in UTF-8)', bytes(0xfe)],
  ['a lone continuation byte', bytes(0x80)],
  ['a truncated 2-byte sequence', bytes(0xc3)],
  ['a truncated 3-byte sequence after ASCII', bytes(0x61, 0xe2, 0x82)],
  ['an overlong NUL (c0 80)', bytes(0xc0, 0x80)],
  ['an overlong "/" (e0 80 af)', bytes(0xe0, 0x80, 0xaf)],
  ['an encoded surrogate (ed a0 80)', bytes(0xed, 0xa0, 0x80)],
  ['a code point past U+10FFFF (f4 90 80 80)', bytes(0xf4, 0x90, 0x80, 0x80)],
  ['valid text then 0xff', bytes(0x61, 0x62, 0xff)],
];

/** Byte strings that are UTF-8, including the edge cases a lenient or a too-strict check gets wrong. */
const UTF8: [string, Uint8Array][] = [
  ['empty', bytes()],
  ['ASCII', Buffer.from('user:1')],
  ['NUL', bytes(0x00)],
  ['é', Buffer.from('é')],
  ['U+FFFD itself', Buffer.from('\ufffd')],
  ['a BOM', bytes(0xef, 0xbb, 0xbf, 0x61)],
  ['U+FFFF', Buffer.from('\uffff')],
  ['U+10FFFF', Buffer.from('\u{10ffff}')],
  ['an emoji', Buffer.from('\u{1F600}')],
];

async function open<K = string, V = unknown>(mem: MemFileSystem, options: Parameters<typeof DB.open>[1] = {}): Promise<DB<K, V>> {
  return DB.open<K, V>(DIR, { fs: mem, fsync: 'os', ...options });
}

async function scan<K, V>(db: DB<K, V>, opts: Parameters<DB<K, V>['iterator']>[0] = {}): Promise<[K, V][]> {
  return db.iterator(opts).all();
}

/** Appends raw records to the WAL of the closed DB in DIR, as another writer could. */
async function appendRaw(mem: MemFileSystem, records: Record[]): Promise<void> {
  const { wal } = await Wal.open({ dir: `${DIR}/wal`, fs: mem, fsync: 'always' });
  for (const r of records) await wal.append(r);
  await wal.close();
}

// ---------------------------------------------------------------------------------------------

describe("keys under 'utf8': encodeKey and decodeKey", () => {
  for (const [what, key] of NOT_UTF8) {
    it(`a Uint8Array key that is not UTF-8 is refused with TypeError: ${what}`, () => {
      expect(() => encodeKey('utf8', key)).toThrow(TypeError);
      expect(() => encodeKey('utf8', key, 'key')).toThrow(/UTF-8/);
      // Also as a Buffer, and as a view into a larger buffer.
      expect(() => encodeKey('utf8', Buffer.from(key))).toThrow(TypeError);
      const big = new Uint8Array(key.length + 4).fill(0x61);
      big.set(key, 2);
      expect(() => encodeKey('utf8', big.subarray(2, 2 + key.length))).toThrow(TypeError);
    });
  }

  for (const [what, key] of UTF8) {
    it(`a Uint8Array key that is UTF-8 is accepted and reads back as the equivalent string: ${what}`, () => {
      const enc = encodeKey('utf8', key);
      expect(hex(enc)).toBe(hex(key));
      const back = decodeKey('utf8', enc);
      expect(typeof back).toBe('string');
      expect(hex(Buffer.from(back as string, 'utf8'))).toBe(hex(key));
      expect(hex(encodeKey('utf8', back))).toBe(hex(key));
    });
  }

  it('a valid key that is a view into a larger buffer is judged by its own bytes only', () => {
    const big = bytes(0xff, 0x61, 0x62, 0xff);
    expect(hex(encodeKey('utf8', big.subarray(1, 3)))).toBe('6162');
  });

  it('as an iterator bound, any bytes are accepted (compared bytewise, never stored nor returned)', () => {
    for (const [, key] of [...NOT_UTF8, ...UTF8]) expect(hex(encodeKey('utf8', key, 'bound'))).toBe(hex(key));
    // A string bound still has to be well-formed: a lone surrogate has no bytes to compare.
    expect(() => encodeKey('utf8', '\ud800', 'bound')).toThrow(TypeError);
    expect(() => encodeKey('utf8', 5, 'bound')).toThrow(TypeError);
  });

  it("under 'binary' any Uint8Array is a key, and a string is not", () => {
    for (const [, key] of [...NOT_UTF8, ...UTF8]) {
      expect(hex(encodeKey('binary', key))).toBe(hex(key));
      expect(hex(decodeKey('binary', key) as Buffer)).toBe(hex(key));
    }
    expect(() => encodeKey('binary', 'a')).toThrow(TypeError);
  });

  fcTest.prop([fc.uint8Array({ maxLength: 12 })], { numRuns: 2000 })(
    'every Uint8Array key under utf8 is refused or round-trips exactly',
    (key) => {
      let enc: Uint8Array;
      try {
        enc = encodeKey('utf8', key);
      } catch (err) {
        expect(err).toBeInstanceOf(TypeError);
        // Refused only if the bytes really are not UTF-8.
        expect(Buffer.from(Buffer.from(key).toString('utf8'), 'utf8').equals(key)).toBe(false);
        return;
      }
      const back = decodeKey('utf8', enc) as string;
      expect(hex(encodeKey('utf8', back))).toBe(hex(key));
    },
  );

  fcTest.prop([fc.string({ unit: 'binary', maxLength: 8 })])('a well-formed string key round-trips through bytes', (s) => {
    fc.pre((s as string & { isWellFormed(): boolean }).isWellFormed());
    expect(decodeKey('utf8', encodeKey('utf8', s))).toBe(s);
  });
});

// ---------------------------------------------------------------------------------------------

describe('decodeValue: a value that does not decode is a DecodeError carrying the key', () => {
  const KEY = Buffer.from('user:1');

  function decodeError(encoding: ValueEncoding, value: Uint8Array, key: Uint8Array = KEY): DecodeError {
    try {
      decodeValue(encoding, value, key);
    } catch (err) {
      expect(err).toBeInstanceOf(DecodeError);
      return err as DecodeError;
    }
    throw new Error(`${encoding} decoded ${hex(value)} without an error`);
  }

  const undecodable: [ValueEncoding, string, Uint8Array][] = [
    ['msgpack', 'utf8 text (trailing bytes after the first value)', Buffer.from('hello')],
    ['msgpack', 'two values', bytes(0x01, 0x02)],
    ['msgpack', 'empty', bytes()],
    ['msgpack', 'a truncated string', bytes(0xa5, 0x61)],
    ['msgpack', 'a truncated map', bytes(0x82, 0xa1, 0x61, 0x01)],
    ['msgpack', 'an unknown extension type', bytes(0xd4, 0x05, 0x00)],
    ['json', 'not JSON', Buffer.from('hello')],
    ['json', 'empty', bytes()],
    ['json', 'truncated', Buffer.from('{"a":')],
    ['json', 'msgpack bytes', encodeValue('msgpack', { a: 1 })],
    ['json', 'invalid UTF-8 inside a JSON string', bytes(0x22, 0xff, 0x22)],
    ['utf8', '0xff', bytes(0xff)],
    ['utf8', 'an encoded surrogate', bytes(0x61, 0xed, 0xa0, 0x80)],
    ['utf8', 'a truncated sequence at the end', bytes(0x61, 0xc3)],
    ['utf8', 'msgpack of a number', encodeValue('msgpack', 1000)],
  ];

  for (const [encoding, what, value] of undecodable) {
    it(`${encoding}: ${what}`, () => {
      const err = decodeError(encoding, value);
      expect(err).toBeInstanceOf(SedimentError);
      expect(err.code).toBe('DECODE');
      expect(err.name).toBe('DecodeError');
      expect(err.encoding).toBe(encoding);
      expect(err.key).toBeInstanceOf(Uint8Array);
      expect(hex(err.key)).toBe(hex(KEY));
      expect(err.cause).toBeInstanceOf(Error);
      expect(err.message).toContain('user:1');
      expect(err.message).toContain(encoding);
    });
  }

  it("msgpack: the cause is msgpackr's error, and msgpackr decodes normally afterwards", () => {
    const err = decodeError('msgpack', Buffer.from('hello'));
    expect((err.cause as Error).message).toMatch(/end of buffer not reached/);
    expect(decodeValue('msgpack', encodeValue('msgpack', { a: [1, 'x'] }), KEY)).toEqual({ a: [1, 'x'] });
  });

  it('json: the cause is the SyntaxError of JSON.parse', () => {
    expect(decodeError('json', Buffer.from('{')).cause).toBeInstanceOf(SyntaxError);
  });

  it('the key in the error is a copy: changing the bytes passed in changes nothing', () => {
    const key = Buffer.from('k1');
    const err = decodeError('utf8', bytes(0xff), key);
    key[0] = 0x7a;
    expect(Buffer.from(err.key).toString()).toBe('k1');
  });

  it('a key that is not printable text shows as hex in the message; a long key is shortened', () => {
    expect(decodeError('utf8', bytes(0xff), bytes(0x00, 0xff, 0x10)).message).toContain('00ff10');
    const long = Buffer.alloc(10_000, 0x61);
    const err = decodeError('utf8', bytes(0xff), long);
    expect(err.message.length).toBeLessThan(500);
    expect(err.key.length).toBe(10_000);
  });

  it('values that do decode are returned, whatever they contain (U+FFFD stored on purpose included)', () => {
    for (const s of ['', 'hello', '\ufffd', 'a\ufffdb', 'é\u{1F600}', '\ufeffbom']) {
      expect(decodeValue('utf8', encodeValue('utf8', s), KEY)).toBe(s);
      expect(decodeValue('json', encodeValue('json', { s }), KEY)).toEqual({ s });
      expect(decodeValue('msgpack', encodeValue('msgpack', { s }), KEY)).toEqual({ s });
    }
  });

  it("'binary' never fails and returns a copy", () => {
    const stored = bytes(0xff, 0xfe);
    const v = decodeValue('binary', stored, KEY) as Buffer;
    expect(hex(v)).toBe('fffe');
    v[0] = 0;
    expect(stored[0]).toBe(0xff);
  });

  it('every encoding decodes what it encoded (a view into a larger buffer included)', () => {
    const samples: { [E in ValueEncoding]: unknown } = {
      msgpack: { a: [1, null, 'x'] },
      json: [1, { b: 'é' }],
      utf8: 'text',
      binary: Buffer.from([1, 2]),
    };
    for (const enc of VALUE_ENCODINGS) {
      const b = encodeValue(enc, samples[enc]);
      const big = new Uint8Array(b.length + 6).fill(0xff);
      big.set(b, 3);
      expect(decodeValue(enc, big.subarray(3, 3 + b.length), KEY)).toEqual(samples[enc]);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('through the DB', () => {
  it("under the default keyEncoding 'utf8', keys that are not UTF-8 are refused by every write and read, nothing written", async () => {
    const mem = new MemFileSystem();
    const db = await open<unknown, unknown>(mem);
    await db.put('k', 'old');
    const before = footprint(db);
    for (const [what, key] of NOT_UTF8) {
      await expect(db.put(key, 'v'), what).rejects.toThrow(TypeError);
      await expect(db.delete(key), what).rejects.toThrow(TypeError);
      await expect(db.get(key), what).rejects.toThrow(TypeError);
      await expect(
        db.batch([
          { type: 'put', key: 'ok', value: 1 },
          { type: 'put', key, value: 'v' },
        ]),
        what,
      ).rejects.toThrow(TypeError);
      await expect(db.batch([{ type: 'del', key }]), what).rejects.toThrow(TypeError);
    }
    expect(footprint(db)).toBe(before);
    expect(await scan(db)).toEqual([['k', 'old']]);
    await db.close();
  });

  it('the issue #9 case: [0xff] and [0xfe] no longer both come back as "\\ufffd"', async () => {
    const mem = new MemFileSystem();
    const db = await open<unknown, unknown>(mem);
    await expect(db.put(bytes(0xff), 1)).rejects.toThrow(TypeError);
    await expect(db.put(bytes(0xfe), 2)).rejects.toThrow(TypeError);
    expect(await scan(db)).toEqual([]);
    await db.close();
  });

  it('Uint8Array keys that are UTF-8 work under utf8: every key the iterator returns can be read and deleted', async () => {
    const mem = new MemFileSystem();
    const db = await open<unknown, unknown>(mem, { memtableSize: 1024 });
    for (const [i, [, key]] of UTF8.entries()) await db.put(key, i);
    for (const stage of ['memtable', 'tables']) {
      const got = await scan(db);
      expect(got.length, stage).toBe(UTF8.length);
      for (const [k, v] of got) {
        expect(typeof k, stage).toBe('string');
        expect(await db.get(k), stage).toBe(v);
        expect(hex(Buffer.from(k as string, 'utf8')), stage).toBe(hex(UTF8[v as number]![1]));
      }
      await db.flush();
    }
    for (const [k] of await scan(db)) await db.delete(k);
    expect(await scan(db)).toEqual([]);
    await db.close();
  });

  it('iterator bounds given as bytes that are not UTF-8 are accepted and compare bytewise', async () => {
    const mem = new MemFileSystem();
    const db = await open<unknown, unknown>(mem);
    for (const k of ['a', 'é', 'z', '\u{1F600}']) await db.put(k, k);
    // 0xff never occurs in UTF-8: a bound past every key.
    expect((await scan(db, { lt: bytes(0xff) })).map(([k]) => k)).toEqual(['a', 'z', 'é', '\u{1F600}']);
    // 0xc3 alone (the first byte of é) sorts just before é.
    expect((await scan(db, { gte: bytes(0xc3) })).map(([k]) => k)).toEqual(['é', '\u{1F600}']);
    expect((await scan(db, { gt: bytes(0xc3), lte: bytes(0xf0), reverse: true })).map(([k]) => k)).toEqual(['é']);
    await db.close();
  });

  it('utf8 values another writer stored as invalid UTF-8: get and the iterator reject with DecodeError naming the key', async () => {
    const mem = new MemFileSystem();
    let db = await open<string, string>(mem, { valueEncoding: 'utf8' });
    await db.put('good', 'fine');
    await db.close();
    await appendRaw(mem, [Record.put(Buffer.from('bad'), bytes(0x61, 0xff))]);
    db = await open<string, string>(mem, { valueEncoding: 'utf8' });
    expect(await db.get('good')).toBe('fine');
    const err = await db.get('bad').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DecodeError);
    expect((err as DecodeError).code).toBe('DECODE');
    expect(Buffer.from((err as DecodeError).key).toString()).toBe('bad');
    expect((err as DecodeError).encoding).toBe('utf8');
    await expect(scan(db)).rejects.toThrow(DecodeError);
    // The bad key can still be deleted, and then everything reads.
    await db.delete('bad');
    expect(await scan(db)).toEqual([['good', 'fine']]);
    await db.close();
  });

  it('msgpack values with trailing bytes (written raw) reject with DecodeError, also from a table', async () => {
    const mem = new MemFileSystem();
    let db = await open<string, unknown>(mem);
    await db.close();
    await appendRaw(mem, [Record.put(Buffer.from('k'), Buffer.from('hello'))]);
    db = await open<string, unknown>(mem);
    await expect(db.get('k')).rejects.toThrow(DecodeError);
    await db.flush();
    const err = await db.get('k').then(
      () => undefined,
      (e: unknown) => e as DecodeError,
    );
    expect(err?.code).toBe('DECODE');
    expect(err?.encoding).toBe('msgpack');
    expect(Buffer.from(err!.key).toString()).toBe('k');
    expect((err!.cause as Error).message).toMatch(/end of buffer not reached/);
    await db.close();
  });
});
