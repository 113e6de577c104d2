import { describe, expect, it } from 'vitest';
import { test } from '@fast-check/vitest';
import { type Entry, MAX_SEQ, compareKeys } from '../../src/entry.js';
import {
  RECORD_HEADER_SIZE,
  compareRecordKeys,
  decodeRecord,
  encodeRecord,
  entryRecordSize,
  recordSeq,
  recordSizeAt,
} from '../../src/memtable/arena-format.js';
import { bodyArb, bytes, hex, keyArb, makeEntry, plain } from '../sstable/helpers.js';

/** The record of `entry` alone, in a chunk of its exact size. */
function record(entry: Entry): Uint8Array {
  const chunk = new Uint8Array(new SharedArrayBuffer(entryRecordSize(entry)));
  expect(encodeRecord(chunk, 0, entry)).toBe(chunk.length);
  return chunk;
}

describe('arena record layout', () => {
  it('lays out a put: lengths, seq (7 bytes), flags, key, value (golden bytes)', () => {
    const e: Entry = { key: bytes('ab'), seq: 0x01_0203_0405, kind: 'put', value: bytes('xyz') };
    expect(hex(record(e))).toBe(
      [
        '02000000', // key length
        '03000000', // value length
        '05040302010000', // seq, u56 little-endian
        '00', // flags
        '6162', // key
        '78797a', // value
      ].join(''),
    );
  });

  it('lays out a tombstone with an expiry, and the largest seq (golden bytes)', () => {
    const e: Entry = { key: bytes('k'), seq: MAX_SEQ, kind: 'delete', value: new Uint8Array(0), expiresAt: 0x11_2233_4455 };
    expect(hex(record(e))).toBe(
      [
        '01000000', // key length
        '00000000', // value length
        'ffffffffffff1f', // seq 2^53 - 1
        '03', // flags: delete | expires
        '6b', // key
        '5544332211000000', // expiresAt, u64 little-endian, after the value
      ].join(''),
    );
  });

  it('lays out an empty key and value: a bare header', () => {
    const e: Entry = { key: new Uint8Array(0), seq: 0, kind: 'put', value: new Uint8Array(0) };
    expect(hex(record(e))).toBe('00'.repeat(RECORD_HEADER_SIZE));
  });

  test.prop([keyArb, bodyArb])('decodes what it encodes', (key, body) => {
    const e = makeEntry(key, body);
    const r = record(e);
    expect(plain(decodeRecord(r, 0))).toEqual(plain(e));
    expect(recordSeq(r, 0)).toBe(e.seq);
    expect(recordSizeAt(r, 0)).toBe(r.length);
  });

  it('decodes views into the chunk, not copies', () => {
    const r = record({ key: bytes('key'), seq: 1, kind: 'put', value: bytes('value') });
    const e = decodeRecord(r, 0);
    expect(e.key.buffer).toBe(r.buffer);
    expect(e.value.buffer).toBe(r.buffer);
  });

  test.prop([keyArb, keyArb])('compares record keys as compareKeys does', (a, b) => {
    const ra = record({ key: a, seq: 1, kind: 'put', value: bytes('v') });
    const rb = record({ key: b, seq: 2, kind: 'put', value: bytes('w') });
    const want = Math.sign(compareKeys(a, b));
    expect(Math.sign(compareRecordKeys(new DataView(ra.buffer), 0, new DataView(rb.buffer), 0))).toBe(want);
  });
});
