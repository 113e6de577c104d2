import { describe, expect } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { crc32c, crc32cAppend, maskCrc, maskedCrc32c, unmaskCrc } from '../../src/util/crc32c.js';

describe('crc32c', () => {
  test('matches the Castagnoli check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  test.prop([fc.uint8Array({ maxLength: 300 }), fc.nat(300), fc.nat(300)])(
    'the JavaScript path and the native path agree on every range',
    (bytes, a, b) => {
      const start = Math.min(a, b, bytes.length);
      const end = Math.min(Math.max(a, b), bytes.length);
      expect(crc32c(bytes, start, end)).toBe(nativeCrc32c(bytes.subarray(start, end)));
    },
  );

  test.prop([fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 })])(
    'crc32cAppend(crc(A), B) is crc(A followed by B), on both paths',
    (a, b) => {
      const whole = nativeCrc32c(Buffer.concat([a, b]));
      expect(crc32cAppend(crc32c(a), b)).toBe(whole);
      expect(crc32cAppend(crc32c(a), Buffer.concat([Buffer.from([1, 2]), b, Buffer.from([3])]), 2, 2 + b.length)).toBe(whole);
    },
  );

  test.prop([fc.integer({ min: 0, max: 0xffffffff })])('mask is invertible and changes the value', (crc) => {
    expect(unmaskCrc(maskCrc(crc))).toBe(crc);
    expect(maskCrc(crc)).not.toBe(crc);
  });

  test('masked crc of a known input (golden)', () => {
    expect(maskedCrc32c(Buffer.from('123456789')).toString(16)).toBe(maskCrc(0xe3069283).toString(16));
  });
});
