import { describe, expect, it } from 'vitest';
import { decodeWriteBatch } from '../../src/db/write-batch.js';
import {
  batchOps,
  checkedKey,
  checkWriteOptions,
  deleteOp,
  MAX_WRITE_BYTES,
  PUT_OPTIONS,
  prepare,
  putOp,
  WRITE_OPTIONS,
} from '../../src/db/write-input.js';

const opts = {
  keyEncoding: 'utf8',
  valueEncoding: 'utf8',
  maxKeySize: 8,
  maxValueSize: 16,
  clock: () => 1_000,
} as const;

describe('write input', () => {
  it('encodes a key and refuses one over the limit it is given', () => {
    expect(Buffer.from(checkedKey(opts, 'abc')).toString()).toBe('abc');
    expect(() => checkedKey(opts, 'abcdefghi')).toThrow(RangeError);
    expect(Buffer.from(checkedKey(opts, 'abcdefghi', 9)).toString()).toBe('abcdefghi');
    expect(() => checkedKey(opts, 42)).toThrow(TypeError);
  });

  it('checks a delete against the largest maxKeySize ever allowed, a put against maxKeySize', () => {
    expect(deleteOp(opts, 12, 'abcdefghij').kind).toBe('delete');
    expect(() => putOp(opts, 'abcdefghij', 'v', undefined)).toThrow(RangeError);
    expect(() => putOp(opts, 'k', 'x'.repeat(17), undefined)).toThrow(/maxValueSize/);
  });

  it('derives an expiry from the clock and refuses bad TTLs and clocks', () => {
    expect(putOp(opts, 'k', 'v', 10).expiresAt).toBe(1_010);
    expect(putOp(opts, 'k', 'v', undefined).expiresAt).toBeUndefined();
    expect(() => putOp(opts, 'k', 'v', '10')).toThrow(TypeError);
    expect(() => putOp(opts, 'k', 'v', 0)).toThrow(RangeError);
    expect(() => putOp(opts, 'k', 'v', Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => putOp(opts, 'k', 'v', 2 ** 53)).toThrow(/past 2\^53/);
    expect(() => putOp({ ...opts, clock: () => 'now' as unknown as number }, 'k', 'v', 10)).toThrow(TypeError);
    expect(() => putOp({ ...opts, clock: () => -1 }, 'k', 'v', 10)).toThrow(RangeError);
  });

  it('checks every batch operation, refusing unknown types and field names', () => {
    const ops = batchOps(opts, 8, [
      { type: 'put', key: 'a', value: '1' },
      { type: 'del', key: 'b' },
    ]);
    expect(ops.map((o) => o.kind)).toEqual(['put', 'delete']);
    expect(batchOps(opts, 8, [])).toEqual([]);
    expect(() => batchOps(opts, 8, 'nope')).toThrow(/array/);
    expect(() => batchOps(opts, 8, [null])).toThrow(/object/);
    expect(() => batchOps(opts, 8, [{ type: 'merge', key: 'a' }])).toThrow(/'put' or 'del'/);
    expect(() => batchOps(opts, 8, [{ type: 'del', key: 'a', value: 'x' }])).toThrow(/unknown batch del operation field 'value'/);
    expect(() => batchOps(opts, 8, [{ type: 'put', key: 'a', value: '1', ttl: 5 }])).toThrow(/field 'ttl'/);
  });

  it('encodes ops as one write batch with seq 0 and counts the user bytes', () => {
    const p = prepare([putOp(opts, 'ab', 'xyz', undefined), deleteOp(opts, 8, 'c')]);
    expect(p.count).toBe(2);
    expect(p.userBytes).toBe(6);
    const decoded = decodeWriteBatch(p.batch);
    expect(decoded.ok && decoded.batch.ops.map((o) => [o.kind, Buffer.from(o.key).toString()])).toEqual([
      ['put', 'ab'],
      ['delete', 'c'],
    ]);
  });

  it('refuses a write over the limit of one write before encoding it', () => {
    const big = { kind: 'put' as const, key: new Uint8Array(1), value: new Uint8Array(MAX_WRITE_BYTES), expiresAt: undefined };
    expect(() => prepare([big])).toThrow(/limit of one write/);
  });

  it('checks write options: names, and sync as a boolean', () => {
    expect(() => checkWriteOptions(undefined, WRITE_OPTIONS)).not.toThrow();
    expect(() => checkWriteOptions({ sync: true }, WRITE_OPTIONS)).not.toThrow();
    expect(() => checkWriteOptions({ ttlMs: 5 }, WRITE_OPTIONS)).toThrow(/unknown write option field 'ttlMs'/);
    expect(() => checkWriteOptions({ ttlMs: 5 }, PUT_OPTIONS)).not.toThrow();
    expect(() => checkWriteOptions({ sync: 1 }, WRITE_OPTIONS)).toThrow(/sync must be a boolean/);
    expect(() => checkWriteOptions(null, WRITE_OPTIONS)).toThrow(/must be an object/);
  });
});
