/**
 * The replica example's message format (examples/replica/protocol.ts, docs/FORMAT.md): golden
 * bytes, and every malformed message refused before a follower applies anything.
 */
import { describe, expect, it } from 'vitest';
import { decodeUnit, encodeUnit, messageId, streamNames, type WireUnit } from '../../examples/replica/protocol.js';

const unit: WireUnit = {
  v: 1,
  position: { segmentId: 3, offset: 128 },
  next: { segmentId: 3, offset: 210 },
  changes: [
    { seq: 41, type: 'put', key: 'a', value: '1', expiresAt: 1767225600000 },
    { seq: 42, type: 'del', key: 'b' },
  ],
};

const GOLDEN =
  '{"v":1,"position":{"segmentId":3,"offset":128},"next":{"segmentId":3,"offset":210},' +
  '"changes":[{"seq":41,"type":"put","key":"a","value":"1","expiresAt":1767225600000},{"seq":42,"type":"del","key":"b"}]}';

const bytes = (o: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(o));

describe('replica protocol', () => {
  it('encodes a unit as the documented JSON, its id as its first position', () => {
    expect(Buffer.from(encodeUnit(unit)).toString('utf8')).toBe(GOLDEN);
    expect(decodeUnit(new TextEncoder().encode(GOLDEN))).toEqual(unit);
    expect(messageId(unit.position)).toBe('3:128');
    expect(streamNames('main')).toEqual({ stream: 'SEDIMENT_main', subject: 'sediment.main.changes' });
  });

  it('refuses names that are not a stream name', () => {
    for (const n of ['', 'a.b', 'a b', 'x'.repeat(65), 'a*', 'a>']) expect(() => streamNames(n)).toThrow(TypeError);
  });

  it('refuses every malformed message', () => {
    const bad: unknown[] = [
      { ...unit, v: 2 },
      { ...unit, position: { segmentId: -1, offset: 0 } },
      { ...unit, next: { segmentId: 1 } },
      { ...unit, changes: [] },
      {
        ...unit,
        changes: [
          { seq: 1, type: 'put', key: 'a', value: '1' },
          { seq: 3, type: 'del', key: 'b' },
        ],
      },
      {
        ...unit,
        changes: [
          { seq: 2, type: 'put', key: 'a', value: '1' },
          { seq: 2, type: 'del', key: 'b' },
        ],
      },
      { ...unit, changes: [{ seq: 0, type: 'del', key: 'a' }] },
      { ...unit, changes: [{ seq: 1.5, type: 'del', key: 'a' }] },
      { ...unit, changes: [{ seq: 1, type: 'put', key: 'a' }] },
      { ...unit, changes: [{ seq: 1, type: 'put', key: 'a', value: 7 }] },
      { ...unit, changes: [{ seq: 1, type: 'put', key: 1, value: 'x' }] },
      { ...unit, changes: [{ seq: 1, type: 'merge', key: 'a', value: 'x' }] },
      { ...unit, changes: [{ seq: 1, type: 'put', key: 'a', value: 'x', expiresAt: 'soon' }] },
    ];
    for (const b of bad) expect(() => decodeUnit(bytes(b)), JSON.stringify(b)).toThrow(Error);
    expect(() => decodeUnit(new Uint8Array([0x7b, 0xff, 0x7d]))).toThrow(TypeError); // not UTF-8
    expect(() => decodeUnit(new TextEncoder().encode('{"v":1,'))).toThrow(SyntaxError);
  });
});
