/**
 * Golden bytes of the DB directory's own files (docs/FORMAT.md, "DB directory"): a manifest,
 * `CURRENT`, `OPTIONS`. If one of these changes, the on-disk format changed: bump the file's
 * version and FORMAT.md.
 */
import { describe, expect, it } from 'vitest';
import { CURRENT_FILE, manifestFileName, OPTIONS_FILE } from '../../src/db/filenames.js';
import {
  decodeCurrent,
  decodeManifest,
  encodeCurrent,
  encodeManifest,
  installManifest,
  readCurrentManifest,
  type ManifestState,
} from '../../src/db/manifest.js';
import {
  decodeOptionsFile,
  encodeOptionsFile,
  readOptionsFile,
  writeOptionsFile,
  type PersistedOptions,
} from '../../src/db/options-file.js';
import { CorruptionError } from '../../src/errors.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { maskedCrc32c as maskedCrcOf } from '../../src/util/crc32c.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ascii = (s: string): string => Buffer.from(s, 'latin1').toString('hex');

/** msgpack fixstr of an ASCII name. */
const str = (s: string): string => (0xa0 + s.length).toString(16) + ascii(s);

const STATE: ManifestState = {
  nextFileNumber: 5,
  lastSeq: 300,
  flushedThrough: { segmentId: 2, offset: 4096 },
  levels: [
    [
      {
        fileNumber: 4,
        size: 1234,
        smallest: Buffer.from('a'),
        largest: Buffer.from('k'),
        minSeq: 1,
        maxSeq: 300,
        entries: 7,
      },
    ],
    [],
  ],
};

const STATE_PAYLOAD = [
  'de0004', // map of 4 (msgpackr writes map16 whatever the count)
  `${str('nextFileNumber')}05`,
  `${str('lastSeq')}cd012c`, // uint16 300
  `${str('flushedThrough')}de0002${str('segmentId')}02${str('offset')}cd1000`,
  `${str('levels')}92`, // array of 2 levels
  '91', // L0: 1 table
  'de0007',
  `${str('fileNumber')}04`,
  `${str('size')}cd04d2`, // 1234
  `${str('smallest')}c40161`, // bin8 "a"
  `${str('largest')}c4016b`, // bin8 "k"
  `${str('minSeq')}01`,
  `${str('maxSeq')}cd012c`,
  `${str('entries')}07`,
  '90', // L1: empty
].join('');

const STATE_BYTES = [
  '53444d544d414e49', // "SDMTMANI"
  '01000000', // version 1
  '98000000', // payload length 152
  '1399cbfd', // masked CRC-32C of the payload
  STATE_PAYLOAD,
].join('');

/** What decoding gives, with the keys as hex (decoding makes Buffers of them). */
function plainState(s: ManifestState): unknown {
  return { ...s, levels: s.levels.map((level) => level.map((t) => ({ ...t, smallest: hex(t.smallest), largest: hex(t.largest) }))) };
}

/** Every single-byte change of `bytes`: each byte xor 0x01 and xor 0xff. */
function* flips(bytes: Uint8Array): Generator<[number, number, Uint8Array]> {
  for (let i = 0; i < bytes.length; i++) {
    for (const mask of [0x01, 0xff]) {
      const b = Uint8Array.from(bytes);
      b[i]! ^= mask;
      yield [i, mask, b];
    }
  }
}

describe('MANIFEST-<n> (version 1): golden bytes', () => {
  it('a state with a table and a flushed position encodes to exactly these bytes, and decodes back', () => {
    const bytes = encodeManifest(STATE);
    expect(STATE_PAYLOAD.length / 2).toBe(152);
    expect(hex(bytes)).toBe(STATE_BYTES);
    expect(plainState(decodeManifest(bytes, 'MANIFEST-000009'))).toEqual(plainState(STATE));
  });

  it("a new DB's first manifest: the example in FORMAT.md", () => {
    const empty: ManifestState = { nextFileNumber: 1, lastSeq: 0, flushedThrough: null, levels: [[]] };
    const bytes = encodeManifest(empty);
    expect(hex(bytes)).toBe(
      [
        '53444d544d414e49',
        '01000000',
        '35000000', // 53
        '08d2f655',
        'de0004',
        `${str('nextFileNumber')}01`,
        `${str('lastSeq')}00`,
        `${str('flushedThrough')}c0`, // nil
        `${str('levels')}9190`, // [[]]
      ].join(''),
    );
    expect(decodeManifest(bytes, 'm')).toEqual(empty);
  });

  it('integers from 2^32 on are float64; the field order is fixed whatever order the object has', () => {
    const big: ManifestState = {
      levels: [],
      flushedThrough: { offset: 32, segmentId: 2 ** 40 },
      lastSeq: 2 ** 32,
      nextFileNumber: 2 ** 53 - 1,
    };
    const payload = hex(encodeManifest(big).subarray(20));
    expect(payload).toBe(
      [
        'de0004',
        `${str('nextFileNumber')}cb433fffffffffffff`,
        `${str('lastSeq')}cb41f0000000000000`,
        `${str('flushedThrough')}de0002${str('segmentId')}cb4270000000000000${str('offset')}20`,
        `${str('levels')}90`,
      ].join(''),
    );
    expect(decodeManifest(encodeManifest(big), 'm')).toEqual(big);
  });

  it('fields outside the format are not written', () => {
    const extra = { ...STATE, note: 'x', levels: STATE.levels.map((l) => l.map((t) => ({ ...t, path: '/x' }))) } as ManifestState;
    expect(hex(encodeManifest(extra))).toBe(STATE_BYTES);
  });

  it('every flipped byte is a CorruptionError', () => {
    const bytes = encodeManifest(STATE);
    let n = 0;
    for (const [i, mask, b] of flips(bytes)) {
      expect(() => decodeManifest(b, 'MANIFEST-000009'), `byte ${i} ^ ${mask}`).toThrow(CorruptionError);
      n++;
    }
    expect(n).toBe(2 * 172);
  });

  it('a uint64 integer (another encoder) is refused: it decodes as a BigInt', () => {
    // The empty manifest with nextFileNumber written as uint64 1, re-checksummed.
    const payload = Buffer.from(
      [
        'de0004',
        `${str('nextFileNumber')}cf0000000000000001`,
        `${str('lastSeq')}00`,
        `${str('flushedThrough')}c0`,
        `${str('levels')}90`,
      ].join(''),
      'hex',
    );
    const good = encodeManifest({ nextFileNumber: 1, lastSeq: 0, flushedThrough: null, levels: [] });
    const forged = Buffer.concat([good.subarray(0, 20), payload]);
    forged.writeUInt32LE(payload.length, 12);
    forged.writeUInt32LE(maskedCrcOf(payload), 16);
    expect(() => decodeManifest(forged, 'm')).toThrow(/wrong shape/);
  });
});

describe('CURRENT: golden bytes', () => {
  it('is the manifest name, a space, the crc of the name in 8 hex digits, a newline', () => {
    expect(encodeCurrent(3).toString('latin1')).toBe('MANIFEST-000003 557e2aa8\n');
    expect(decodeCurrent(Buffer.from('MANIFEST-000003 557e2aa8\n', 'latin1'), CURRENT_FILE)).toBe(3);
    expect(decodeCurrent(encodeCurrent(1234567), CURRENT_FILE)).toBe(1234567);
  });

  it('every flipped byte is a CorruptionError', () => {
    const bytes = encodeCurrent(3);
    for (const [i, mask, b] of flips(bytes)) {
      expect(() => decodeCurrent(b, CURRENT_FILE), `byte ${i} ^ ${mask}`).toThrow(CorruptionError);
    }
  });

  it.each([
    ['cut short', 'MANIFEST-000003 557e2aa8'],
    ['something after the line', 'MANIFEST-000003 557e2aa8\n\n'],
    ['uppercase hex', 'MANIFEST-000003 557E2AA8\n'],
    ['a name the parser does not take (even well checksummed)', currentOf('MANIFEST-3')],
    ['a table named', currentOf('000003.sst')],
    ['empty', ''],
  ])('%s is a CorruptionError', (_name, text) => {
    expect(() => decodeCurrent(Buffer.from(text, 'latin1'), CURRENT_FILE)).toThrow(CorruptionError);
  });

  it('installManifest writes exactly these bytes under these names, and reads them back', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    await installManifest(fs, '/db', 9, STATE, undefined);
    expect(fs.listFiles().sort()).toEqual(['/db/CURRENT', `/db/${manifestFileName(9)}`]);
    expect(hex(fs.readFileBytes('/db/MANIFEST-000009'))).toBe(STATE_BYTES);
    expect(Buffer.from(fs.readFileBytes('/db/CURRENT')).toString('latin1')).toBe(encodeCurrent(9).toString('latin1'));
    const back = await readCurrentManifest(fs, '/db');
    expect(back!.number).toBe(9);
    expect(plainState(back!.state)).toEqual(plainState(STATE));
  });
});

describe('OPTIONS: golden bytes', () => {
  const P: PersistedOptions = {
    formatVersion: 1,
    keyEncoding: 'utf8',
    valueEncoding: 'msgpack',
    maxKeySize: 65536,
    maxValueSize: 16777216,
  };
  const TEXT =
    'SDMTOPTS 1\n' +
    '{"formatVersion":1,"keyEncoding":"utf8","valueEncoding":"msgpack","maxKeySize":65536,"maxValueSize":16777216}\n' +
    'crc32c a7b5e6c6\n';

  it('the defaults encode to exactly the bytes in FORMAT.md, and decode back', () => {
    expect(encodeOptionsFile(P).toString('latin1')).toBe(TEXT);
    expect(decodeOptionsFile(Buffer.from(TEXT, 'latin1'), OPTIONS_FILE)).toEqual(P);
  });

  it('the field order is fixed whatever order the object has', () => {
    const shuffled = {
      maxValueSize: 16777216,
      maxKeySize: 65536,
      valueEncoding: 'msgpack',
      keyEncoding: 'utf8',
      formatVersion: 1,
    } as const;
    expect(encodeOptionsFile(shuffled).toString('latin1')).toBe(TEXT);
  });

  it('every flipped byte is a CorruptionError', () => {
    for (const [i, mask, b] of flips(Buffer.from(TEXT, 'latin1'))) {
      expect(() => decodeOptionsFile(b, OPTIONS_FILE), `byte ${i} ^ ${mask}`).toThrow(CorruptionError);
    }
  });

  it('writeOptionsFile writes exactly these bytes as OPTIONS', async () => {
    const fs = new MemFileSystem();
    await fs.mkdir('/db');
    await writeOptionsFile(fs, '/db', P);
    expect(fs.listFiles()).toEqual(['/db/OPTIONS']);
    expect(Buffer.from(fs.readFileBytes('/db/OPTIONS')).toString('latin1')).toBe(TEXT);
    expect(await readOptionsFile(fs, '/db')).toEqual(P);
  });
});

function currentOf(name: string): string {
  return `${name} ${maskedCrcOf(Buffer.from(name, 'latin1')).toString(16).padStart(8, '0')}\n`;
}

// ---------------------------------------------------------------------------------------------

import { encodeWriteBatch, decodeWriteBatch, setBatchSeq, WRITE_BATCH_TAG } from '../../src/db/write-batch.js';
import { Record as WalRecord } from '../../src/wal/record.js';

describe('the write batch (one WAL record per DB write, write-batch.ts)', () => {
  const ops = [
    { kind: 'put' as const, key: Buffer.from('ab'), value: Buffer.from('xyz'), expiresAt: undefined },
    { kind: 'delete' as const, key: Buffer.from('c'), value: new Uint8Array(0), expiresAt: undefined },
    { kind: 'put' as const, key: Buffer.from('d'), value: new Uint8Array(0), expiresAt: 0x1_0000_0002 },
  ];
  const GOLDEN = [
    '01', // tag
    '0700000001000000', // seq 2^32 + 7, u64 LE
    '03000000', // 3 ops
    `01 02000000 03000000 ${ascii('ab')}${ascii('xyz')}`, // put ab=xyz
    `02 01000000 ${ascii('c')}`, // delete c
    `81 01000000 00000000 0200000001000000 ${ascii('d')}`, // put d='' expiring at 2^32 + 2
  ]
    .join('')
    .replaceAll(' ', '');

  it('encodes to the documented bytes and decodes back', () => {
    const bytes = encodeWriteBatch(ops, 0x1_0000_0007);
    expect(hex(bytes)).toBe(GOLDEN);
    expect(bytes[0]).toBe(WRITE_BATCH_TAG);
    const d = decodeWriteBatch(bytes);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.batch.seq).toBe(0x1_0000_0007);
    expect(d.batch.ops.map((o) => [o.kind, hex(o.key), hex(o.value), o.expiresAt])).toEqual(
      ops.map((o) => [o.kind, hex(o.key), hex(o.value), o.expiresAt]),
    );
  });

  it('the seq is patched in place at append time', () => {
    const bytes = encodeWriteBatch(ops);
    expect(hex(bytes.subarray(1, 9))).toBe('0000000000000000');
    setBatchSeq(bytes, 0x1_0000_0007);
    expect(hex(bytes)).toBe(GOLDEN);
  });

  it('as a WAL record: an opaque payload, flags byte 0x10 then the batch', () => {
    const bytes = encodeWriteBatch(ops, 0x1_0000_0007);
    const r = WalRecord.opaque(bytes);
    const buf = Buffer.alloc(r.payloadSize);
    expect(r.encodeInto(buf, 0)).toBe(1 + bytes.length);
    expect(hex(buf)).toBe(`10${GOLDEN}`);
  });
});
