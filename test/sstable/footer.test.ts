import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../../src/errors.js';
import { maskedCrc32c } from '../../src/util/crc32c.js';
import { putU32 } from '../../src/sstable/coding.js';
import { decodeFooter, encodeFooter } from '../../src/sstable/footer.js';
import { FOOTER_SIZE } from '../../src/sstable/format.js';
import { decodeProperties, encodeProperties, type TableProperties } from '../../src/sstable/properties.js';
import { bytes, hex } from './helpers.js';

const footer = {
  filter: { offset: 100, size: 20 },
  properties: { offset: 125, size: 30 },
  index: { offset: 160, size: 40 },
};
const fileSize = 205 + FOOTER_SIZE;

describe('footer', () => {
  it('encodes byte for byte (golden)', () => {
    const f = encodeFooter(footer);
    expect(f.length).toBe(56);
    expect(hex(f)).toBe(
      [
        '6400000000000000', // filter offset 100
        '7d00000000000000', // properties offset 125
        'a000000000000000', // index offset 160
        '14000000', // filter size 20
        '1e000000', // properties size 30
        '28000000', // index size 40
        '00000000', // flags
        '01000000', // version 1
        hex(f.subarray(44, 48)), // crc, checked below
        '53444d5453535401', // "SDMTSST" 0x01
      ].join(''),
    );
    expect(hex(f.subarray(44, 48))).toBe('ea1f494d');
    expect(decodeFooter(f, fileSize, 'f.sst')).toEqual(footer);
  });

  const damaged = (mutate: (b: Uint8Array) => void, recrc = false): Uint8Array => {
    const f = encodeFooter(footer);
    mutate(f);
    if (recrc) putU32(f, 44, maskedCrc32c(f, 0, 44));
    return f;
  };

  it.each([
    ['bad magic', damaged((b) => (b[55] = 2)), /magic/],
    ['another version', damaged((b) => (b[40] = 2), true), /version 2/],
    ['a checksum mismatch', damaged((b) => (b[0] = 99)), /checksum/],
    ['unknown flags', damaged((b) => (b[36] = 1), true), /flags/],
    ['blocks that do not tile', damaged((b) => (b[8] = 126), true), /tile/],
    ['an offset of 2^53', damaged((b) => (b[6] = 0x20), true), /range/],
  ])('rejects %s', (_name, f, message) => {
    expect(() => decodeFooter(f, fileSize, 'f.sst')).toThrow(CorruptionError);
    expect(() => decodeFooter(f, fileSize, 'f.sst')).toThrow(message);
    try {
      decodeFooter(f, fileSize, 'f.sst');
    } catch (err) {
      expect((err as CorruptionError).offset).toBe(fileSize - 56);
      expect((err as CorruptionError).unreadableBytes).toBe(56);
    }
  });

  it('rejects a footer that does not end where the file ends', () => {
    expect(() => decodeFooter(encodeFooter(footer), fileSize + 1, 'f.sst')).toThrow(/tile/);
  });
});

describe('properties', () => {
  const props: TableProperties = {
    entryCount: 10,
    tombstoneCount: 2,
    expiringCount: 1,
    minSeq: 5,
    maxSeq: 2 ** 40,
    dataBlockCount: 2,
    rawKeyBytes: 30,
    rawValueBytes: 1000,
    dataBytes: 900,
    compression: 'lz4',
    smallestKey: bytes('a'),
    largestKey: bytes('zz'),
  };
  const where = { file: 'f.sst', offset: 7 };

  it('round-trips (golden)', () => {
    const enc = encodeProperties(props);
    expect(hex(enc)).toBe('0a020105808080808020021ee807840701' + '0161' + '027a7a');
    const back = decodeProperties(enc, where);
    expect({ ...back, smallestKey: hex(back.smallestKey!), largestKey: hex(back.largestKey!) }).toEqual({
      ...props,
      smallestKey: '61',
      largestKey: '7a7a',
    });
  });

  it('round-trips an empty table', () => {
    const empty: TableProperties = {
      ...props,
      entryCount: 0,
      tombstoneCount: 0,
      expiringCount: 0,
      minSeq: 0,
      maxSeq: 0,
      dataBlockCount: 0,
      rawKeyBytes: 0,
      rawValueBytes: 0,
      dataBytes: 0,
      compression: 'none',
      smallestKey: undefined,
      largestKey: undefined,
    };
    expect(decodeProperties(encodeProperties(empty), where)).toEqual(empty);
  });

  it.each([
    ['more tombstones than entries', { tombstoneCount: 11 }],
    ['min seq above max seq', { minSeq: 2 ** 41 }],
    ['smallest key above largest', { smallestKey: bytes('zzz') }],
    ['no data blocks', { dataBlockCount: 0 }],
    ['an empty table with keys', { entryCount: 0, tombstoneCount: 0, expiringCount: 0 }],
  ])('rejects %s', (_name, patch) => {
    expect(() => decodeProperties(encodeProperties({ ...props, ...patch }), where)).toThrow(CorruptionError);
  });

  it('rejects truncation, stray bytes and unknown compression', () => {
    const enc = encodeProperties(props);
    for (let cut = 0; cut < enc.length; cut++) {
      expect(() => decodeProperties(enc.subarray(0, cut), where)).toThrow(CorruptionError);
    }
    expect(() => decodeProperties(Uint8Array.from([...enc, 0]), where)).toThrow(/stray/);
    const bad = new Uint8Array(enc);
    bad[16] = 9;
    expect(() => decodeProperties(bad, where)).toThrow(/compression/);
  });
});
