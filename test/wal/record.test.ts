import { beforeAll, describe, expect, it } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import { Record, checkPayload, decodeRecord } from '../../src/wal/record.js';
import { checkFrame, checkSegmentHeader, encodeFrame, encodeSegmentHeader } from '../../src/wal/frame.js';
import { FrameType, FRAME_HEADER_SIZE } from '../../src/wal/format.js';
import { loadZstd } from '../../src/wal/record.js';

// zstd's codec loads on first use (Wal.open loads it); these tests make records without a log.
beforeAll(() => loadZstd());

const MAX = 1 << 20;

function frameOf(r: Record, type: FrameType = FrameType.FULL): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_SIZE + r.payloadSize);
  expect(encodeFrame(b, 0, type, r)).toBe(b.length);
  return b;
}

describe('record codec: golden bytes (format version 1)', () => {
  // If one of these changes, the on-disk format changed: bump FORMAT_VERSION and docs/FORMAT.md.
  it.each([
    ['put k=v', () => Record.put('k', 'v'), '934c0e9607000000893fef9b0100000000010000006b76'],
    ['delete k', () => Record.delete('k'), 'cf1bf1b20600000060db4f230100000001010000006b'],
    [
      'put with expiry',
      () => Record.put(Uint8Array.from([0, 255]), 'xyz', { expiresAt: 1_700_000_000_123 }),
      '26485fe612000000e7a29c9b0100000002020000007b68e5cf8b01000000ff78797a',
    ],
  ])('%s', (_name, make, hex) => {
    const frame = frameOf(make());
    expect(frame.toString('hex')).toBe(hex);
    const check = checkFrame(frame, 0, frame.length, MAX);
    expect(check.kind).toBe('frame');
  });

  it('segment headers', () => {
    expect(encodeSegmentHeader(0).toString('hex')).toBe('53444d5457414c0101000000000000000000000000000000000000003a72c6a0');
    expect(encodeSegmentHeader(5).toString('hex')).toBe('53444d5457414c010100000000000000050000000000000000000000e758259a');
    expect(checkSegmentHeader(encodeSegmentHeader(5), 5)).toBeUndefined();
    expect(checkSegmentHeader(encodeSegmentHeader(5), 6)).toMatch(/id 5/);
  });
});

describe('Record', () => {
  it('takes strings as UTF-8 and copies byte arrays', () => {
    const bytes = Uint8Array.from([1, 2, 3]);
    const r = Record.put('é', bytes);
    expect(Buffer.from(r.key).toString('hex')).toBe('c3a9');
    bytes[0] = 9;
    expect([...r.value]).toEqual([1, 2, 3]);
    expect(r.tombstone).toBe(false);
    expect(r.expiresAt).toBeUndefined();
    // Buffers too (whose own slice() is a view), and views into larger arrays: only their bytes.
    const backing = Buffer.from('xxkey-1value-1xx');
    const key = backing.subarray(2, 7);
    const value = new Uint8Array(backing.buffer, backing.byteOffset + 7, 7);
    const b = Record.put(key, value);
    backing.fill(0x5a);
    expect(Buffer.from(b.key).toString()).toBe('key-1');
    expect(Buffer.from(b.value).toString()).toBe('value-1');
    expect(b.payloadSize).toBe(Record.put('key-1', 'value-1').payloadSize);
  });

  it('rejects wrong types with TypeError and bad TTLs with RangeError', () => {
    expect(() => Record.put(42 as unknown as string, 'v')).toThrow(TypeError);
    expect(() => Record.put('k', null as unknown as string)).toThrow(TypeError);
    expect(() => Record.delete({} as unknown as string)).toThrow(TypeError);
    expect(() => Record.put('k', 'v', { compression: 'gzip' as 'lz4' })).toThrow(TypeError);
    expect(() => Record.put('k', 'v', { ttlMs: '5' as unknown as number })).toThrow(TypeError);
    expect(() => Record.put('k', 'v', { ttlMs: -1 })).toThrow(RangeError);
    expect(() => Record.put('k', 'v', { ttlMs: Number.NaN })).toThrow(RangeError);
    expect(() => Record.put('k', 'v', { expiresAt: 1.5 })).toThrow(RangeError);
    expect(() => Record.put('k', 'v', { ttlMs: 5, expiresAt: 5 })).toThrow(TypeError);
  });

  it('stores TTL as an absolute expiry', () => {
    const before = Date.now();
    const r = Record.put('k', 'v', { ttlMs: 1000 });
    expect(r.expiresAt).toBeGreaterThanOrEqual(before + 1000);
    expect(r.isExpired(r.expiresAt! - 1)).toBe(false);
    expect(r.isExpired(r.expiresAt!)).toBe(true);
  });

  it.each(['lz4', 'zstd'] as const)('compresses values with %s and round-trips them', (compression) => {
    const value = Buffer.from('abc'.repeat(1000));
    const r = Record.put('k', value, { compression });
    expect(r.compression).toBe(compression);
    expect(r.payloadSize).toBeLessThan(value.length);
    const frame = frameOf(r);
    const decoded = decodeRecord(frame.subarray(FRAME_HEADER_SIZE), MAX);
    expect(decoded.ok && Buffer.from(decoded.record.value).equals(value)).toBe(true);
    expect(decoded.ok && decoded.record.compression).toBe(compression);
  });

  it('stores an incompressible value raw', () => {
    const r = Record.put('k', Uint8Array.from([7]), { compression: 'lz4' });
    expect(r.compression).toBe('none');
  });
});

const arbRecord = fc.oneof(
  fc
    .record({
      key: fc.uint8Array({ maxLength: 40 }),
      value: fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.string({ maxLength: 200 }).map((s) => s.repeat(3)),
      ),
      expiresAt: fc.option(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
      compression: fc.constantFrom('none', 'lz4', 'zstd') as fc.Arbitrary<'none' | 'lz4' | 'zstd'>,
    })
    .map(({ key, value, expiresAt, compression }) => Record.put(key, value, { expiresAt, compression })),
  fc.uint8Array({ maxLength: 40 }).map((k) => Record.delete(k)),
);

describe('record codec: properties', () => {
  test.prop([arbRecord])('decode(encode(r)) = r', (r) => {
    const frame = frameOf(r);
    const decoded = decodeRecord(frame.subarray(FRAME_HEADER_SIZE), MAX);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    const d = decoded.record;
    expect(Buffer.from(d.key).equals(Buffer.from(r.key))).toBe(true);
    expect(Buffer.from(d.value).equals(Buffer.from(r.value))).toBe(true);
    expect(d.tombstone).toBe(r.tombstone);
    expect(d.expiresAt).toBe(r.expiresAt);
  });

  test.prop([fc.uint8Array({ maxLength: 200 })])('decoding arbitrary bytes is total', (bytes) => {
    const result = decodeRecord(bytes, 1000);
    expect(typeof result.ok).toBe('boolean');
    checkPayload(bytes, 1000);
    const frame = checkFrame(bytes, 0, bytes.length, 1000);
    expect(['frame', 'short', 'bad']).toContain(frame.kind);
  });

  test.prop([arbRecord, fc.nat(), fc.integer({ min: 0, max: 7 })])('any single bit flip in a frame is detected', (r, at, bit) => {
    const frame = frameOf(r);
    const i = at % frame.length;
    frame[i]! ^= 1 << bit;
    expect(checkFrame(frame, 0, frame.length, MAX).kind).not.toBe('frame');
  });

  it('a length over the limit is damage, not an allocation', () => {
    const frame = frameOf(Record.put('k', Buffer.alloc(100)));
    const check = checkFrame(frame, 0, frame.length, 50);
    expect(check).toMatchObject({ kind: 'bad' });
  });

  it('zeros are never a frame', () => {
    expect(checkFrame(Buffer.alloc(64), 0, 64, MAX).kind).toBe('bad');
  });
});
